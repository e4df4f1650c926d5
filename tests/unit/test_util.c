/* test_util.c - strings, suggestions, UTF-8 validation, files. */
#include "testing.h"
#include "util.h"

static void edit_distance_counts_edits(void **state) {
    assert_int_equal(util_edit_distance("", ""), 0);
    assert_int_equal(util_edit_distance("abc", ""), 3);
    assert_int_equal(util_edit_distance("kitten", "sitting"), 3);
    assert_int_equal(util_edit_distance("lerning_rate", "learning_rate"), 1);
    /* A transposition is one edit (optimal string alignment). */
    assert_int_equal(util_edit_distance("tarin", "train"), 1);
    assert_int_equal(util_edit_distance("seed", "seed"), 0);
}

static void suggest_picks_close_names_only(void **state) {
    const char *keys[] = {"learning_rate", "seed", "steps", "device", "warmup_steps"};
    assert_string_equal(util_suggest("lerning_rate", keys, 5), "learning_rate");
    assert_string_equal(util_suggest("sed", keys, 5), "seed");
    assert_string_equal(util_suggest("devcie", keys, 5), "device");
    assert_null(util_suggest("temperature", keys, 5));
    assert_null(util_suggest("x", keys, 5));
}

static void utf8_validation(void **state) {
    assert_int_equal(util_utf8_invalid_at("plain", 5), -1);
    assert_int_equal(util_utf8_invalid_at("caf\xc3\xa9", 5), -1);
    assert_int_equal(util_utf8_invalid_at("\xf0\x9f\x98\x80", 4), -1); /* emoji */
    assert_int_equal(util_utf8_invalid_at("ab\xff", 3), 2);
    assert_int_equal(util_utf8_invalid_at("\xc0\xaf", 2), 0);          /* overlong '/' */
    assert_int_equal(util_utf8_invalid_at("x\xed\xa0\x80", 4), 1);     /* surrogate */
    assert_int_equal(util_utf8_invalid_at("\xf4\x90\x80\x80", 4), 0);  /* > U+10FFFF */
    assert_int_equal(util_utf8_invalid_at("\xe2\x82", 2), 0);          /* truncated */
}

static void lua_string_literal_escapes_everything(void **state) {
    sbuf b;
    sb_init(&b);
    sb_put_lua_string(&b, "a\"b\\c\n\x01" "9\xc3\xa9", 10);
    char *s = sb_take(&b);
    assert_string_equal(s, "\"a\\\"b\\\\c\\n\\0019\xc3\xa9\"");
    free(s);
}

static void sbuf_grows(void **state) {
    sbuf b;
    sb_init(&b);
    for (int i = 0; i < 10000; i++) sb_printf(&b, "%d,", i % 10);
    assert_int_equal(b.len, 20000);
    assert_false(b.oom);
    char *s = sb_take(&b);
    assert_int_equal(strlen(s), 20000);
    assert_memory_equal(s, "0,1,2,", 6);
    free(s);
}

static void atomic_write_and_read_back(void **state) {
    char *dir = test_tmpdir("util");
    char *sub = util_path_join(dir, "a/b/c");
    rlvr_err e = {{0}};
    assert_int_equal(util_mkdir_p(sub, &e), 0);
    assert_true(util_is_dir(sub));
    assert_int_equal(util_mkdir_p(sub, &e), 0); /* again: fine */
    char *file = util_path_join(sub, "x.txt");
    assert_int_equal(util_write_file_atomic(file, "hello\0world", 11, &e), 0);
    size_t len = 0;
    char *text = util_read_file(file, &len, &e);
    assert_non_null(text);
    assert_int_equal(len, 11);
    assert_memory_equal(text, "hello\0world", 11);
    free(text);
    /* A path through a regular file cannot be a directory. */
    char *bad = util_path_join(file, "d");
    assert_int_equal(util_mkdir_p(bad, &e), -1);
    assert_non_null(strstr(e.msg, "x.txt"));
    assert_null(util_read_file("/nonexistent/file", NULL, &e));
    assert_non_null(strstr(e.msg, "/nonexistent/file"));
    free(bad);
    free(file);
    free(sub);
    free(dir);
}

static void paths(void **state) {
    char *p = util_path_join("runs", "x/run.db");
    assert_string_equal(p, "runs/x/run.db");
    free(p);
    p = util_path_join("runs/", "/abs");
    assert_string_equal(p, "/abs");
    free(p);
    p = util_dirname("a/b/c.lua");
    assert_string_equal(p, "a/b");
    free(p);
    p = util_dirname("c.lua");
    assert_string_equal(p, ".");
    free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(edit_distance_counts_edits), cmocka_unit_test(suggest_picks_close_names_only),
        cmocka_unit_test(utf8_validation),            cmocka_unit_test(lua_string_literal_escapes_everything),
        cmocka_unit_test(sbuf_grows),                 cmocka_unit_test(atomic_write_and_read_back),
        cmocka_unit_test(paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
