/* test_dataset.c - JSONL rows (and every way a line can be wrong), and the arithmetic
 * task: answers checked by an independent evaluator, splits disjoint, reproducible. */
#include "datasets.h"
#include "jsonl.h"
#include "testing.h"

static char *dir;

static int setup(void **state) {
    dir = test_tmpdir("dataset");
    return 0;
}

static int teardown(void **state) {
    free(dir);
    return 0;
}

static void loads_rows_and_keeps_all_fields(void **state) {
    char *p = test_write(dir, "ok.jsonl",
                         "{\"prompt\": \"What is 1+1?\", \"answer\": \"2\", \"level\": 3}\n"
                         "\n"
                         "  \n"
                         "{\"prompt\": \"caf\xc3\xa9\", \"answer\": 1234, \"tests\": [\"assert f()\"]}\r\n");
    dataset d;
    rlvr_err e = {{0}};
    assert_int_equal(ds_load_jsonl(&d, p, "prompt", "answer", &e), 0);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.rows[0].prompt, "What is 1+1?");
    assert_string_equal(d.rows[0].answer, "2");
    assert_int_equal(d.rows[0].line, 1);
    assert_int_equal(d.rows[1].line, 4);
    assert_int_equal(d.rows[1].id, 1);
    assert_string_equal(d.rows[1].answer, "1234"); /* numbers become text */
    assert_non_null(cJSON_GetObjectItem(d.rows[1].fields, "tests"));
    ds_free(&d);
    free(p);
}

/* Loads `text` and expects failure with `want` in the message. */
static void expect_error(const char *text, const char *want) {
    char *p = test_write(dir, "bad.jsonl", text);
    dataset d;
    rlvr_err e = {{0}};
    assert_int_equal(ds_load_jsonl(&d, p, "prompt", "answer", &e), -1);
    if (!strstr(e.msg, want)) fail_msg("message '%s' lacks '%s'", e.msg, want);
    assert_non_null(strstr(e.msg, "bad.jsonl"));
    free(p);
}

static void bad_lines_name_file_and_line(void **state) {
    expect_error("{\"prompt\": \"a\", \"answer\": 1}\n{\"prompt\": \"b\", \"answer\": \n", "bad.jsonl:2: not valid JSON");
    expect_error("{\"prompt\": \"a\", \"answer\": 1}\n[1, 2]\n", "bad.jsonl:2: expected a JSON object, got an array");
    expect_error("\"just a string\"\n", "bad.jsonl:1: expected a JSON object, got a scalar");
    expect_error("{\"prompt\": \"a\xff\", \"answer\": 1}\n", "bad.jsonl:1: invalid UTF-8 at byte 14");
    expect_error("{\"question\": \"a\", \"answer\": 1}\n", "bad.jsonl:1: row has no 'prompt' field (data.prompt_key)");
    expect_error("{\"prompt\": \"a\"}\n", "bad.jsonl:1: row has no 'answer' field (data.answer_key)");
    expect_error("{\"prompt\": 5, \"answer\": 1}\n", "bad.jsonl:1: field 'prompt' must be a string");
    expect_error("{\"prompt\": \"a\", \"answer\": 1} trailing\n", "bad.jsonl:1: not valid JSON");
    expect_error("", "no rows");
    expect_error("\n\n", "no rows");
    dataset d;
    rlvr_err e = {{0}};
    assert_int_equal(ds_load_jsonl(&d, "/nonexistent.jsonl", "prompt", "answer", &e), -1);
    assert_non_null(strstr(e.msg, "/nonexistent.jsonl"));
}

static void reader_continues_after_a_bad_line(void **state) {
    /* `rlvr reward` skips bad lines: the reader must resume at the next line. */
    char *p = test_write(dir, "mixed.jsonl", "{\"a\":1}\nnot json\n{\"a\":2}\n");
    jsonl_reader r;
    rlvr_err e = {{0}};
    assert_int_equal(jsonl_open(&r, p, &e), 0);
    cJSON *o;
    assert_int_equal(jsonl_next(&r, &o, &e), JSONL_OK);
    cJSON_Delete(o);
    assert_int_equal(jsonl_next(&r, &o, &e), JSONL_BAD_LINE);
    assert_non_null(strstr(e.msg, ":2: not valid JSON"));
    assert_int_equal(jsonl_next(&r, &o, &e), JSONL_OK);
    assert_int_equal(cJSON_GetObjectItem(o, "a")->valueint, 2);
    cJSON_Delete(o);
    assert_int_equal(jsonl_next(&r, &o, &e), JSONL_EOF);
    jsonl_close(&r);
    free(p);
}

/* An independent evaluator: recursive descent over "a op b op c" with * binding tighter. */
static long long parse_term(const char **s) {
    long long v = strtoll(*s, (char **)s, 10);
    while (**s == ' ' && (*s)[1] == '*') {
        *s += 3;
        v *= strtoll(*s, (char **)s, 10);
    }
    return v;
}

static long long eval_expr(const char *s) {
    long long v = parse_term(&s);
    while (*s == ' ') {
        char op = s[1];
        s += 3;
        long long t = parse_term(&s);
        v = op == '+' ? v + t : v - t;
    }
    return v;
}

static void arith_answers_are_right(void **state) {
    arith_params p = {1, 3, 3, "+-*"};
    for (uint64_t i = 0; i < 3000; i++) {
        arith_problem prob;
        arith_generate(&p, 1, 0, i, &prob);
        char want[32];
        snprintf(want, sizeof want, "%lld", eval_expr(prob.expr));
        if (strcmp(want, prob.answer) != 0) fail_msg("%s = %s, generator says %s", prob.expr, want, prob.answer);
        /* The worked solution ends with the boxed answer and closes its think block. */
        char tail[64];
        snprintf(tail, sizeof tail, "</think>\n\\boxed{%s}", prob.answer);
        assert_non_null(strstr(prob.solution, tail));
        assert_true(strncmp(prob.solution, "<think>\n", 8) == 0);
    }
}

static void arith_is_reproducible_and_splits_are_disjoint(void **state) {
    arith_params p = {1, 2, 2, "+-*"};
    dataset train, train2, eval;
    rlvr_err e = {{0}};
    assert_int_equal(ds_generate_arith(&train, &p, 3, 0, 2000, NULL, &e), 0);
    assert_int_equal(ds_generate_arith(&train2, &p, 3, 0, 2000, NULL, &e), 0);
    assert_int_equal(ds_generate_arith(&eval, &p, 3, 1, 500, &train, &e), 0);
    assert_int_equal(eval.n, 500);
    for (size_t i = 0; i < train.n; i++) assert_string_equal(train.rows[i].prompt, train2.rows[i].prompt);
    for (size_t i = 0; i < eval.n; i++) {
        const char *x = jsonl_get_string(eval.rows[i].fields, "expr");
        for (size_t j = 0; j < train.n; j++) assert_string_not_equal(x, jsonl_get_string(train.rows[j].fields, "expr"));
    }
    /* Another seed gives other problems. */
    dataset other;
    assert_int_equal(ds_generate_arith(&other, &p, 4, 0, 50, NULL, &e), 0);
    int same = 0;
    for (size_t i = 0; i < 50; i++) same += strcmp(other.rows[i].prompt, train.rows[i].prompt) == 0;
    assert_true(same < 10);
    ds_free(&train);
    ds_free(&train2);
    ds_free(&eval);
    ds_free(&other);
}

static void arith_rejects_bad_params_and_exhaustion(void **state) {
    dataset d;
    rlvr_err e = {{0}};
    arith_params bad = {3, 2, 2, "+"};
    assert_int_equal(ds_generate_arith(&d, &bad, 1, 0, 10, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "min_digits"));
    arith_params badop = {1, 2, 2, "+/"};
    assert_int_equal(ds_generate_arith(&d, &badop, 1, 0, 10, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "'/'"));
    /* One-digit addition has only 100 problems: 500 disjoint held-out ones cannot exist. */
    arith_params tiny = {1, 1, 2, "+"};
    dataset train;
    assert_int_equal(ds_generate_arith(&train, &tiny, 1, 0, 1000, NULL, &e), 0);
    assert_int_equal(ds_generate_arith(&d, &tiny, 1, 1, 500, &train, &e), -1);
    assert_non_null(strstr(e.msg, "distinct from training"));
    ds_free(&train);
}

static void extreme_operands_do_not_overflow(void **state) {
    arith_params p = {18, 18, 8, "*"};
    for (uint64_t i = 0; i < 200; i++) {
        arith_problem prob;
        arith_generate(&p, 9, 0, i, &prob);
        assert_true(strlen(prob.answer) > 0);
    }
}

static void write_then_load_round_trips(void **state) {
    arith_params p = {1, 2, 2, "+-"};
    dataset d, back;
    rlvr_err e = {{0}};
    assert_int_equal(ds_generate_arith(&d, &p, 1, 0, 100, NULL, &e), 0);
    char path[1100];
    snprintf(path, sizeof path, "%s/arith.jsonl", dir);
    assert_int_equal(ds_write_jsonl(&d, path, &e), 0);
    assert_int_equal(ds_load_jsonl(&back, path, "prompt", "answer", &e), 0);
    assert_int_equal(back.n, 100);
    for (size_t i = 0; i < 100; i++) {
        assert_string_equal(back.rows[i].prompt, d.rows[i].prompt);
        assert_string_equal(back.rows[i].answer, d.rows[i].answer);
    }
    ds_free(&d);
    ds_free(&back);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_rows_and_keeps_all_fields),
        cmocka_unit_test(bad_lines_name_file_and_line),
        cmocka_unit_test(reader_continues_after_a_bad_line),
        cmocka_unit_test(arith_answers_are_right),
        cmocka_unit_test(arith_is_reproducible_and_splits_are_disjoint),
        cmocka_unit_test(arith_rejects_bad_params_and_exhaustion),
        cmocka_unit_test(extreme_operands_do_not_overflow),
        cmocka_unit_test(write_then_load_round_trips),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
