/* test_tokenizer_bytes.c - the byte-level tokenizer tok_write_byte_level writes: it loads, id b
 * is byte b, invalid UTF-8 reads as HF reads it, special tokens are single ids, the ChatML
 * template renders. (tests/reference/check_byte_tokenizer.py compares it with HF by hand.) */
#include "testing.h"

#include <dirent.h>

#include <cjson/cJSON.h>

#include "tokenizer.h"

static tok_tokenizer *load_fresh(char **dir_out) {
    rlvr_err e = {{0}};
    char *dir = test_tmpdir("tok_bytes");
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/model", dir); /* created by the writer */
    assert_int_equal(tok_write_byte_level(sub, &e), 0);
    tok_tokenizer *t = tok_load(sub, &e);
    if (!t) fail_msg("%s", e.msg);
    *dir_out = dir;
    return t;
}

static void encode(tok_tokenizer *t, const char *s, size_t n, tok_ids *v) {
    rlvr_err e = {{0}};
    v->n = 0;
    assert_int_equal(tok_encode(t, s, n, 1, v, &e), 0);
}

static void vocab_and_specials(void **state) {
    (void)state;
    char *dir;
    tok_tokenizer *t = load_fresh(&dir);
    assert_int_equal(tok_vocab_size(t), TOK_BYTE_VOCAB);
    assert_int_equal(tok_eos_id(t), TOK_BYTE_EOS);
    assert_string_equal(tok_eos_token(t), "<|im_end|>");
    assert_null(tok_bos_token(t));
    assert_string_equal(tok_id_to_token(t, 32), "Ġ"); /* GPT-2's character for the space byte */
    assert_string_equal(tok_id_to_token(t, 'a'), "a");
    assert_string_equal(tok_id_to_token(t, 0), "Ā");
    assert_string_equal(tok_id_to_token(t, 173), "Ń"); /* the soft hyphen, the last unprintable byte */
    const char *specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tok_token_to_id(t, specials[i]), 256 + i);
        assert_true(tok_is_special(t, 256 + i));
    }
    assert_false(tok_is_special(t, 255));
    /* each id b decodes to the byte b when the bytes form valid UTF-8 */
    rlvr_err e = {{0}};
    for (int b = 0; b < 128; b++) {
        int32_t id = b;
        size_t len;
        char *s = tok_decode(t, &id, 1, 0, &len, &e);
        assert_non_null(s);
        assert_int_equal(len, 1);
        assert_int_equal((unsigned char)s[0], b);
        free(s);
    }
    /* specials are single ids inside text, and skipped on request */
    tok_ids v = {0};
    const char *text = "<|im_start|>user\nhi<|im_end|><|endoftext|>";
    encode(t, text, strlen(text), &v);
    int32_t want[] = {257, 'u', 's', 'e', 'r', '\n', 'h', 'i', 258, 256};
    assert_int_equal(v.n, 10);
    assert_memory_equal(v.ids, want, sizeof want);
    char *s = tok_decode(t, v.ids, v.n, 0, NULL, &e);
    assert_string_equal(s, text);
    free(s);
    s = tok_decode(t, v.ids, v.n, 1, NULL, &e);
    assert_string_equal(s, "user\nhi");
    free(s);
    tok_ids_free(&v);
    /* the writer left exactly its two files (no temporaries) */
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/model", dir);
    DIR *d = opendir(sub);
    assert_non_null(d);
    int files = 0;
    for (struct dirent *ent; (ent = readdir(d)) != NULL;)
        if (ent->d_name[0] != '.') {
            files++;
            assert_true(!strcmp(ent->d_name, "tokenizer.json") || !strcmp(ent->d_name, "tokenizer_config.json"));
        }
    closedir(d);
    assert_int_equal(files, 2);
    tok_free(t);
    free(dir);
}

/* Invalid UTF-8 is read as Python's bytes.decode('utf-8', 'replace') reads it (each maximal
 * ill-formed subpart is one U+FFFD, bytes EF BF BD), and byte ids that are not UTF-8 decode to
 * U+FFFD as HF's from_utf8_lossy does. */
static void invalid_utf8(void **state) {
    (void)state;
    char *dir;
    tok_tokenizer *t = load_fresh(&dir);
    static const struct {
        const char *in;
        const char *ids_as_bytes;
    } cases[] = {
        {"\xff", "\xef\xbf\xbd"},
        {"a\xc3", "a\xef\xbf\xbd"},
        {"\xe6\x97z", "\xef\xbf\xbdz"},              /* a truncated 3-byte character: one subpart */
        {"\xc0\x80", "\xef\xbf\xbd\xef\xbf\xbd"},    /* C0 starts nothing: two */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* a surrogate: three */
        {"\xf0\x9f\x99\x82", "\xf0\x9f\x99\x82"},    /* valid: its own bytes */
    };
    tok_ids v = {0};
    rlvr_err e = {{0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        encode(t, cases[i].in, strlen(cases[i].in), &v);
        const char *w = cases[i].ids_as_bytes;
        assert_int_equal(v.n, strlen(w));
        for (size_t k = 0; k < v.n; k++) assert_int_equal(v.ids[k], (unsigned char)w[k]);
    }
    int32_t lone[] = {0xC3}, cut[] = {'a', 0xE6, 0x97, 'b'}, two[] = {0xFF, 0xFE};
    char *s = tok_decode(t, lone, 1, 0, NULL, &e);
    assert_string_equal(s, "\xef\xbf\xbd");
    free(s);
    s = tok_decode(t, cut, 4, 0, NULL, &e);
    assert_string_equal(s, "a\xef\xbf\xbd" "b");
    free(s);
    s = tok_decode(t, two, 2, 0, NULL, &e);
    assert_string_equal(s, "\xef\xbf\xbd\xef\xbf\xbd");
    free(s);
    int32_t bad = TOK_BYTE_VOCAB;
    assert_null(tok_decode(t, &bad, 1, 0, NULL, &e));
    tok_ids_free(&v);
    tok_free(t);
    free(dir);
}

/* Random valid NFC text (ASCII, precomposed Latin, CJK, emoji, specials) round-trips exactly and
 * its ids are its bytes, specials aside; random bytes decode(encode()) to the replaced text. */
static void round_trips(void **state) {
    (void)state;
    char *dir;
    tok_tokenizer *t = load_fresh(&dir);
    static const char *const pieces[] = {"a", " ", "\n", "\t", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x99\x82",
                                         "42", "<|im_end|>", "<|im_", "\x01", "\x7f"};
    uint64_t x = 88172645463325252ull;
    tok_ids v = {0};
    rlvr_err e = {{0}};
    for (int it = 0; it < 300; it++) {
        char buf[512];
        size_t n = 0;
        int k = (int)(x % 24);
        for (int j = 0; j < k; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const char *p = pieces[x % (sizeof pieces / sizeof *pieces)];
            memcpy(buf + n, p, strlen(p));
            n += strlen(p);
        }
        encode(t, buf, n, &v);
        size_t len;
        char *s = tok_decode(t, v.ids, v.n, 0, &len, &e);
        assert_int_equal(len, n);
        assert_memory_equal(s, buf, n);
        free(s);
        /* random bytes: decoding the ids gives the replaced text, which encodes to the same ids */
        for (int j = 0; j < 40; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[j] = (char)(x >> 24);
        }
        encode(t, buf, 40, &v);
        s = tok_decode(t, v.ids, v.n, 0, &len, &e);
        assert_int_equal(util_utf8_invalid_at(s, len), -1);
        tok_ids w = {0};
        assert_int_equal(tok_encode(t, s, len, 0, &w, &e), 0);
        assert_int_equal(w.n, v.n);
        assert_memory_equal(w.ids, v.ids, v.n * sizeof *v.ids);
        tok_ids_free(&w);
        free(s);
    }
    tok_ids_free(&v);
    tok_free(t);
    free(dir);
}

static void chat_template(void **state) {
    (void)state;
    char *dir;
    tok_tokenizer *t = load_fresh(&dir);
    rlvr_err e = {{0}};
    tok_message m[] = {{"system", "Be brief."}, {"user", "2+2?"}, {"assistant", "4"}, {"user", "3+3?"}};
    char *s = tok_chat_render(t, m, 4, 1, &e);
    if (!s) fail_msg("%s", e.msg);
    assert_string_equal(s, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
                           "<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\n3+3?<|im_end|>\n"
                           "<|im_start|>assistant\n");
    free(s);
    s = tok_chat_render(t, m + 1, 1, 0, &e); /* no default system prompt */
    assert_string_equal(s, "<|im_start|>user\n2+2?<|im_end|>\n");
    free(s);
    tok_free(t);
    free(dir);
}

/* cJSON's allocations fail one after another: each failure is an "out of memory" error and never a
 * truncated file (what was written is whole: it loads). */
static long alloc_budget;
static void *failing_malloc(size_t n) {
    return alloc_budget-- > 0 ? malloc(n) : NULL;
}

static void out_of_memory(void **state) {
    (void)state;
    char *dir = test_tmpdir("tok_bytes_oom");
    cJSON_Hooks hooks = {failing_malloc, free};
    int failures = 0;
    for (long budget = 0;; budget += 7) {
        char sub[1100];
        snprintf(sub, sizeof sub, "%s/m%ld", dir, budget);
        rlvr_err e = {{0}};
        alloc_budget = budget;
        cJSON_InitHooks(&hooks);
        int rc = tok_write_byte_level(sub, &e);
        cJSON_InitHooks(NULL);
        char path[1200];
        snprintf(path, sizeof path, "%s/tokenizer_config.json", sub);
        if (rc == 0) {
            tok_tokenizer *t = tok_load(sub, &e);
            assert_non_null(t);
            assert_int_equal(tok_vocab_size(t), TOK_BYTE_VOCAB);
            tok_free(t);
            break;
        }
        failures++;
        assert_string_equal(e.msg, "out of memory");
        assert_false(access(path, F_OK) == 0); /* the config is written last */
        snprintf(path, sizeof path, "%s/tokenizer.json", sub);
        if (access(path, F_OK) == 0) { /* the first file is whole */
            tok_tokenizer *t = tok_load(path, &e);
            assert_non_null(t);
            assert_int_equal(tok_vocab_size(t), TOK_BYTE_VOCAB);
            tok_free(t);
        }
    }
    assert_true(failures > 100); /* the budget stepped through both files */
    free(dir);
}

static void write_errors(void **state) {
    (void)state;
    rlvr_err e = {{0}};
    char *dir = test_tmpdir("tok_bytes_err");
    char *file = test_write(dir, "plain", "x");
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/inside", file); /* a directory under a regular file */
    assert_int_equal(tok_write_byte_level(sub, &e), -1);
    assert_non_null(strstr(e.msg, "plain"));
    free(file);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vocab_and_specials), cmocka_unit_test(invalid_utf8), cmocka_unit_test(round_trips),
        cmocka_unit_test(chat_template),      cmocka_unit_test(out_of_memory), cmocka_unit_test(write_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
