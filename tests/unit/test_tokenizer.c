/* test_tokenizer.c - rlvr's tokenizer against HF `tokenizers` and transformers: identical ids
 * on the corpus (tests/fixtures/tokenizer/, from tests/reference/gen_tokenizer_fixtures.py)
 * for every tokenizer in ../shared/data/tokenizers, the same decodes, streaming decode equal
 * to a full decode, llama.cpp's test vectors, chat templates byte for byte, load errors, and
 * random bytes (ASan/UBSan catch what a crash would). Skips what ../shared lacks. */
#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>

#include "rng.h"
#include "testing.h"
#include "tokenizer.h"
#include "tokenizer_internal.h"
#include "util.h"

/* the real tokenizers in ../shared, then two small ones trained by the reference script on
 * the corpus (fixtures: always present) for features the real files do not use */
static const char *NAMES[] = {"gpt2", "qwen2.5", "llama3", "tinyllama-llama2", "synth-metaspace", "synth-split"};
#define N_TOKS 6
#define N_REAL 4
static tok_tokenizer *TOKS[N_TOKS];
static char *SRC;

static char *path_of(const char *fmt, const char *a) {
    char *p = malloc(2048);
    snprintf(p, 2048, fmt, SRC, a);
    return p;
}

static int setup(void **state) {
    const char *src = getenv("RLVR_SOURCE_DIR");
    SRC = util_strdup(src ? src : ".");
    for (int i = 0; i < N_TOKS; i++) {
        char *p = path_of(i < N_REAL ? "%s/../shared/data/tokenizers/%s" : "%s/tests/fixtures/tokenizer/%s.json",
                          NAMES[i]);
        rlvr_err e = {{0}};
        if (util_is_dir(p) || util_is_file(p)) {
            TOKS[i] = tok_load(p, &e);
            if (!TOKS[i]) fail_msg("%s: %s", p, e.msg);
        } else printf("skipped: %s is not present\n", p);
        free(p);
    }
    return 0;
}

static int teardown(void **state) {
    for (int i = 0; i < N_TOKS; i++) tok_free(TOKS[i]);
    free(SRC);
    return 0;
}

/* Reads a JSONL file into an array of cJSON objects. */
static cJSON **read_jsonl(const char *path, size_t *n) {
    char *text = util_read_file(path, NULL, NULL);
    if (!text) fail_msg("cannot read %s", path);
    cJSON **v = NULL;
    size_t k = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        if (!o) fail_msg("%s: bad line", path);
        v = realloc(v, (k + 1) * sizeof *v);
        v[k++] = o;
    }
    free(text);
    *n = k;
    return v;
}

static void free_jsonl(cJSON **v, size_t n) {
    for (size_t i = 0; i < n; i++) cJSON_Delete(v[i]);
    free(v);
}

static char *unhex(const char *hex, size_t *n) {
    size_t len = strlen(hex) / 2;
    char *out = malloc(len + 1);
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    out[len] = 0;
    *n = len;
    return out;
}

static void assert_ids_equal(const tok_ids *got, const cJSON *want, const char *what, size_t line) {
    size_t n = (size_t)cJSON_GetArraySize(want);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, want) {
        if (i >= got->n || got->ids[i] != it->valueint)
            fail_msg("%s, corpus line %zu: id %zu is %ld, HF says %d (%zu ids vs %zu)", what, line + 1, i,
                     i < got->n ? (long)got->ids[i] : -1L, it->valueint, got->n, n);
        i++;
    }
    if (got->n != n) fail_msg("%s, corpus line %zu: %zu ids, HF has %zu", what, line + 1, got->n, n);
}

static void assert_text_equal(const char *got, size_t got_n, const char *want_hex, const char *what, size_t line) {
    size_t wn;
    char *want = unhex(want_hex, &wn);
    if (got_n != wn || memcmp(got, want, wn) != 0)
        fail_msg("%s, corpus line %zu: '%s' vs HF '%s'", what, line + 1, got, want);
    free(want);
}

/* Identical ids (with and without special tokens) and identical decodes on every line. */
static void corpus_matches_hf(void **state) {
    char *cpath = path_of("%s/tests/fixtures/tokenizer/%s", "corpus.jsonl");
    size_t nc;
    cJSON **corpus = read_jsonl(cpath, &nc);
    free(cpath);
    assert_true(nc >= 70);
    for (int k = 0; k < N_TOKS; k++) {
        if (!TOKS[k]) continue;
        char name[128];
        snprintf(name, sizeof name, "%s.expected.jsonl", NAMES[k]);
        char *epath = path_of("%s/tests/fixtures/tokenizer/%s", name);
        size_t ne;
        cJSON **exp = read_jsonl(epath, &ne);
        free(epath);
        assert_int_equal(ne, nc + 1);
        for (size_t i = 0; i < nc; i++) {
            size_t n;
            char *text = unhex(cJSON_GetObjectItem(corpus[i], "hex")->valuestring, &n);
            tok_ids ids = {0}, ids_sp = {0};
            rlvr_err e = {{0}};
            assert_int_equal(tok_encode(TOKS[k], text, n, 0, &ids, &e), 0);
            assert_int_equal(tok_encode(TOKS[k], text, n, 1, &ids_sp, &e), 0);
            assert_ids_equal(&ids, cJSON_GetObjectItem(exp[i], "ids"), NAMES[k], i);
            assert_ids_equal(&ids_sp, cJSON_GetObjectItem(exp[i], "ids_special"), NAMES[k], i);
            size_t dn;
            char *d = tok_decode(TOKS[k], ids.ids, ids.n, 0, &dn, &e);
            assert_non_null(d);
            assert_text_equal(d, dn, cJSON_GetObjectItem(exp[i], "decoded")->valuestring, NAMES[k], i);
            /* exact round trip wherever HF's decode gives the text back (everywhere but
             * normalization, SentencePiece's leading space and invalid UTF-8) */
            size_t hn;
            char *hf = unhex(cJSON_GetObjectItem(exp[i], "decoded")->valuestring, &hn);
            if (hn == n && memcmp(hf, text, n) == 0) assert_memory_equal(d, text, n);
            else if (k == 0 || k == 2) /* gpt2, llama3: no normalizer; only invalid UTF-8 may differ */
                assert_true(util_utf8_invalid_at(text, n) >= 0);
            free(hf);
            free(d);
            d = tok_decode(TOKS[k], ids.ids, ids.n, 1, &dn, &e);
            assert_text_equal(d, dn, cJSON_GetObjectItem(exp[i], "decoded_skip")->valuestring, NAMES[k], i);
            free(d);
            d = tok_decode(TOKS[k], ids.ids, ids.n / 2, 0, &dn, &e);
            assert_text_equal(d, dn, cJSON_GetObjectItem(exp[i], "decoded_half")->valuestring, NAMES[k], i);
            free(d);
            tok_ids_free(&ids);
            tok_ids_free(&ids_sp);
            free(text);
        }
        free_jsonl(exp, ne);
    }
    free_jsonl(corpus, nc);
}

/* The 100 kB text: the corpus texts joined by "\n", repeated until >= 100,000 bytes. */
static void big_text_matches_hf(void **state) {
    char *cpath = path_of("%s/tests/fixtures/tokenizer/%s", "corpus.jsonl");
    size_t nc;
    cJSON **corpus = read_jsonl(cpath, &nc);
    free(cpath);
    sbuf chunk, big;
    sb_init(&chunk);
    sb_init(&big);
    int firstc = 1;
    for (size_t i = 0; i < nc; i++) {
        if (!cJSON_GetObjectItem(corpus[i], "text")) continue; /* the invalid-UTF-8 lines are not in it */
        size_t n;
        char *t = unhex(cJSON_GetObjectItem(corpus[i], "hex")->valuestring, &n);
        if (!firstc) sb_putc(&chunk, '\n');
        sb_putn(&chunk, t, n);
        firstc = 0;
        free(t);
    }
    size_t size = 0;
    while (size < 100000) {
        if (size) sb_putc(&big, '\n');
        sb_putn(&big, chunk.s, chunk.len);
        size += chunk.len + 1;
    }
    for (int k = 0; k < N_TOKS; k++) {
        if (!TOKS[k]) continue;
        char name[128];
        snprintf(name, sizeof name, "%s.expected.jsonl", NAMES[k]);
        char *epath = path_of("%s/tests/fixtures/tokenizer/%s", name);
        size_t ne;
        cJSON **exp = read_jsonl(epath, &ne);
        free(epath);
        const cJSON *b = cJSON_GetObjectItem(exp[ne - 1], "big");
        assert_non_null(b);
        assert_int_equal((size_t)cJSON_GetObjectItem(b, "bytes")->valuedouble, big.len);
        tok_ids ids = {0};
        rlvr_err e = {{0}};
        for (int rep = 0; rep < 2; rep++) { /* the second pass runs from the word cache */
            ids.n = 0;
            assert_int_equal(tok_encode(TOKS[k], big.s, big.len, 0, &ids, &e), 0);
            uint64_t h = 0xCBF29CE484222325ull;
            for (size_t i = 0; i < ids.n; i++) {
                uint32_t v = (uint32_t)ids.ids[i];
                for (int byte = 0; byte < 4; byte++) h = (h ^ ((v >> (8 * byte)) & 0xFF)) * 0x100000001B3ull;
            }
            char hex[17];
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
            assert_int_equal(ids.n, (size_t)cJSON_GetObjectItem(b, "n")->valuedouble);
            assert_string_equal(hex, cJSON_GetObjectItem(b, "fnv")->valuestring);
        }
        tok_ids_free(&ids);
        free_jsonl(exp, ne);
    }
    sb_free(&chunk);
    sb_free(&big);
    free_jsonl(corpus, nc);
}

static void assert_valid_utf8_chunk(const char *s, size_t n) {
    assert_true(util_utf8_invalid_at(s, n) < 0);
}

/* Streaming: the pieces concatenate to the full decode, each piece is whole UTF-8. */
static void streaming_decode_equals_full_decode(void **state) {
    char *cpath = path_of("%s/tests/fixtures/tokenizer/%s", "corpus.jsonl");
    size_t nc;
    cJSON **corpus = read_jsonl(cpath, &nc);
    free(cpath);
    for (int k = 0; k < N_TOKS; k++) {
        if (!TOKS[k]) continue;
        for (size_t i = 0; i < nc; i++) {
            size_t n;
            char *text = unhex(cJSON_GetObjectItem(corpus[i], "hex")->valuestring, &n);
            tok_ids ids = {0};
            rlvr_err e = {{0}};
            assert_int_equal(tok_encode(TOKS[k], text, n, 1, &ids, &e), 0);
            for (int skip = 0; skip < 2; skip++) {
                tok_stream *s = tok_stream_new(TOKS[k], skip, &e);
                sbuf all;
                sb_init(&all);
                for (size_t j = 0; j < ids.n; j++) {
                    sbuf piece;
                    sb_init(&piece);
                    assert_int_equal(tok_stream_push(s, ids.ids[j], &piece, &e), 0);
                    assert_valid_utf8_chunk(piece.s ? piece.s : "", piece.len);
                    if (piece.len) sb_putn(&all, piece.s, piece.len);
                    sb_free(&piece);
                }
                assert_int_equal(tok_stream_finish(s, &all, &e), 0);
                size_t dn;
                char *d = tok_decode(TOKS[k], ids.ids, ids.n, skip, &dn, &e);
                if (all.len != dn || memcmp(all.s ? all.s : "", d, dn) != 0)
                    fail_msg("%s line %zu skip %d: stream '%s' vs decode '%s'", NAMES[k], i + 1, skip,
                             all.s ? all.s : "", d);
                free(d);
                sb_free(&all);
                tok_stream_free(s);
            }
            tok_ids_free(&ids);
            free(text);
        }
    }
    free_jsonl(corpus, nc);
}

/* A 4-byte emoji decoded byte token by byte token: nothing until the character is whole. */
static void streaming_holds_back_partial_characters(void **state) {
    if (!TOKS[1]) skip();
    tok_ids ids = {0};
    rlvr_err e = {{0}};
    const char *text = "a\xF0\xAA\x9B\x96"; /* a + U+2A6D6: qwen2.5 splits the character over 3 tokens */
    assert_int_equal(tok_encode(TOKS[1], text, strlen(text), 0, &ids, &e), 0);
    tok_stream *s = tok_stream_new(TOKS[1], 0, &e);
    sbuf out;
    sb_init(&out);
    size_t emitted_before_last = 0;
    for (size_t j = 0; j < ids.n; j++) {
        assert_int_equal(tok_stream_push(s, ids.ids[j], &out, &e), 0);
        assert_valid_utf8_chunk(out.s, out.len);
        if (j + 2 == ids.n) emitted_before_last = out.len;
    }
    assert_true(ids.n >= 3);
    assert_int_equal(emitted_before_last, 1); /* only "a" */
    assert_string_equal(out.s, text);
    /* a sample that ends inside a character: finish gives U+FFFD */
    tok_stream_free(s);
    s = tok_stream_new(TOKS[1], 0, &e);
    sb_free(&out);
    sb_init(&out);
    for (size_t j = 0; j + 1 < ids.n; j++) assert_int_equal(tok_stream_push(s, ids.ids[j], &out, &e), 0);
    assert_int_equal(tok_stream_finish(s, &out, &e), 0);
    assert_string_equal(out.s, "a\xEF\xBF\xBD");
    assert_int_equal(tok_stream_push(s, 1 << 30, &out, &e), -1);
    assert_non_null(strstr(e.msg, "not in the vocabulary"));
    sb_free(&out);
    tok_stream_free(s);
    tok_ids_free(&ids);
}

/* llama.cpp's tokenizer test vectors (expected ids from HF), read from ../shared. */
static void llama_cpp_vectors(void **state) {
    static const char *pairs[][2] = {
        {"gpt-2", "gpt2"}, {"llama-bpe", "llama3"}, {"qwen2", "qwen2.5"}, {"llama-spm", "tinyllama-llama2"}};
    int checked = 0;
    for (int p = 0; p < 4; p++) {
        int k = 0;
        while (k < N_TOKS && strcmp(NAMES[k], pairs[p][1]) != 0) k++;
        char name[128];
        snprintf(name, sizeof name, "ggml-vocab-%s.gguf.inp", pairs[p][0]);
        char *inp_path = path_of("%s/../shared/data/tokenizers/llama.cpp-vocab-tests/%s", name);
        snprintf(name, sizeof name, "ggml-vocab-%s.gguf.out", pairs[p][0]);
        char *out_path = path_of("%s/../shared/data/tokenizers/llama.cpp-vocab-tests/%s", name);
        char *inp = util_read_file(inp_path, NULL, NULL), *out = util_read_file(out_path, NULL, NULL);
        free(inp_path);
        free(out_path);
        if (!inp || !out || !TOKS[k]) {
            free(inp), free(out);
            continue;
        }
        const char *sep = "\n__ggml_vocab_test__\n";
        char *cur = inp, *line = out;
        int n = 0;
        for (char *next; (next = strstr(cur, sep)) != NULL; cur = next + strlen(sep)) {
            char *eol = strchr(line, '\n');
            assert_non_null(eol);
            *eol = 0;
            tok_ids ids = {0};
            rlvr_err e = {{0}};
            assert_int_equal(tok_encode(TOKS[k], cur, (size_t)(next - cur), 0, &ids, &e), 0);
            sbuf got;
            sb_init(&got);
            for (size_t i = 0; i < ids.n; i++) sb_printf(&got, " %d", ids.ids[i]);
            const char *want = line;
            while (*want == ' ') want++;
            const char *g = got.s ? got.s : "";
            while (*g == ' ') g++;
            if (strcmp(g, want) != 0) fail_msg("%s vector %d: got '%s', want '%s'", pairs[p][0], n, g, want);
            sb_free(&got);
            tok_ids_free(&ids);
            line = eol + 1;
            n++;
        }
        assert_true(n >= 40);
        checked++;
        free(inp);
        free(out);
    }
    if (!checked) printf("skipped: no llama.cpp vectors\n");
}

/* Every rendering in chat.jsonl: by family, and through the tokenizer's own template. */
static void chat_templates_match_transformers(void **state) {
    char *path = path_of("%s/tests/fixtures/tokenizer/%s", "chat.jsonl");
    size_t n;
    cJSON **recs = read_jsonl(path, &n);
    free(path);
    assert_true(n >= 40);
    for (size_t r = 0; r < n; r++) {
        const char *fam = cJSON_GetObjectItem(recs[r], "family")->valuestring;
        if (!strncmp(fam, "jinja:", 6)) continue; /* templates rlvr does not recognise: below */
        const cJSON *bos = cJSON_GetObjectItem(recs[r], "bos"), *eos = cJSON_GetObjectItem(recs[r], "eos");
        const cJSON *msgs = cJSON_GetObjectItem(recs[r], "messages");
        int agp = cJSON_IsTrue(cJSON_GetObjectItem(recs[r], "add_generation_prompt"));
        size_t nm = (size_t)cJSON_GetArraySize(msgs);
        tok_message *m = calloc(nm, sizeof *m);
        for (size_t i = 0; i < nm; i++) {
            const cJSON *it = cJSON_GetArrayItem(msgs, (int)i);
            m[i].role = cJSON_GetObjectItem(it, "role")->valuestring;
            m[i].content = cJSON_GetObjectItem(it, "content")->valuestring;
        }
        const char *want = cJSON_GetObjectItem(recs[r], "rendered")->valuestring;
        rlvr_err e = {{0}};
        char *got = tok_chat_render_family(fam, cJSON_IsString(bos) ? bos->valuestring : NULL,
                                           cJSON_IsString(eos) ? eos->valuestring : NULL, m, nm, agp, &e);
        if (!got) fail_msg("%s: %s", fam, e.msg);
        if (strcmp(got, want) != 0) fail_msg("%s record %zu:\n got  '%s'\n want '%s'", fam, r, got, want);
        free(got);
        /* the real checkpoints' own templates are recognised and render the same */
        int k = !strcmp(fam, "qwen2.5") ? 1 : !strcmp(fam, "llama3") ? 2 : !strcmp(fam, "zephyr") ? 3 : -1;
        if (k >= 0 && TOKS[k]) {
            assert_string_equal(tok_chat_family(TOKS[k]), fam);
            got = tok_chat_render(TOKS[k], m, nm, agp, &e);
            assert_non_null(got);
            assert_string_equal(got, want);
            free(got);
        }
        free(m);
    }
    free_jsonl(recs, n);
    static const char *files[][2] = {{"smollm2.jinja", "smollm2"}, {"deepseek-r1.jinja", "deepseek-r1"}};
    /* the Jinja subset renders every one of these templates the same way */
    path = path_of("%s/tests/fixtures/tokenizer/%s", "chat.jsonl");
    recs = read_jsonl(path, &n);
    free(path);
    for (size_t r = 0; r < n; r++) {
        const char *fam = cJSON_GetObjectItem(recs[r], "family")->valuestring;
        int k = !strcmp(fam, "qwen2.5") ? 1 : !strcmp(fam, "llama3") ? 2 : !strcmp(fam, "zephyr") ? 3 : -1;
        char *tmpl = NULL;
        if (k >= 0) {
            if (!TOKS[k]) continue;
            tmpl = util_strdup(tok_chat_template_text(TOKS[k]));
        } else {
            char *p = path_of("%s/tests/fixtures/tokenizer/templates/%s.jinja",
                              strncmp(fam, "jinja:", 6) ? fam : fam + 6);
            tmpl = util_read_file(p, NULL, NULL);
            free(p);
        }
        assert_non_null(tmpl);
        const cJSON *bos = cJSON_GetObjectItem(recs[r], "bos"), *eos = cJSON_GetObjectItem(recs[r], "eos");
        const cJSON *msgs = cJSON_GetObjectItem(recs[r], "messages");
        size_t nm = (size_t)cJSON_GetArraySize(msgs);
        tok_message *m = calloc(nm, sizeof *m);
        for (size_t i = 0; i < nm; i++) {
            const cJSON *it = cJSON_GetArrayItem(msgs, (int)i);
            m[i].role = cJSON_GetObjectItem(it, "role")->valuestring;
            m[i].content = cJSON_GetObjectItem(it, "content")->valuestring;
        }
        rlvr_err e = {{0}};
        char *got = tok_jinja_render(tmpl, cJSON_IsString(bos) ? bos->valuestring : NULL,
                                     cJSON_IsString(eos) ? eos->valuestring : NULL, m, nm,
                                     cJSON_IsTrue(cJSON_GetObjectItem(recs[r], "add_generation_prompt")), &e);
        const cJSON *err = cJSON_GetObjectItem(recs[r], "error");
        if (err) { /* the template raised in transformers: rlvr refuses with its message */
            assert_null(got);
            if (!strstr(e.msg, err->valuestring)) fail_msg("jinja %s: '%s' lacks '%s'", fam, e.msg, err->valuestring);
            free(m);
            free(tmpl);
            continue;
        }
        if (!got) fail_msg("jinja %s: %s", fam, e.msg);
        const char *want = cJSON_GetObjectItem(recs[r], "rendered")->valuestring;
        if (strcmp(got, want) != 0) fail_msg("jinja %s record %zu:\n got  '%s'\n want '%s'", fam, r, got, want);
        free(got);
        free(m);
        free(tmpl);
    }
    free_jsonl(recs, n);
    for (int i = 0; i < 2; i++) {
        char *p = path_of("%s/tests/fixtures/tokenizer/templates/%s", files[i][0]);
        char *text = util_read_file(p, NULL, NULL);
        assert_non_null(text);
        assert_string_equal(tok_chat_family_of(text), files[i][1]);
        free(text);
        free(p);
    }
    assert_null(tok_chat_family_of("{{ messages }}"));
}

/* A tiny tokenizer written to a temporary directory, for loading errors and templates. */
static const char *TINY =
    "{\"added_tokens\":[{\"id\":3,\"content\":\"<eos>\",\"special\":true}],"
    "\"normalizer\":null,\"pre_tokenizer\":%s,\"decoder\":null,\"post_processor\":null,"
    "\"model\":{\"type\":\"%s\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[%s]}}";

static tok_tokenizer *load_tiny(const char *dir, const char *pretok, const char *type, const char *merges,
                                const char *config, rlvr_err *e) {
    char json[2048];
    snprintf(json, sizeof json, TINY, pretok, type, merges);
    free(test_write(dir, "tokenizer.json", json));
    char cfg[2048];
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
    remove(cfg);
    if (config) free(test_write(dir, "tokenizer_config.json", config));
    return tok_load(dir, e);
}

static void load_errors_name_the_problem(void **state) {
    char *dir = test_tmpdir("tok_errors");
    rlvr_err e = {{0}};
    tok_tokenizer *t = load_tiny(dir, "null", "BPE", "\"a b\"", NULL, &e);
    assert_non_null(t);
    tok_ids ids = {0};
    assert_int_equal(tok_encode(t, "abab<eos>b", 10, 0, &ids, &e), 0);
    assert_int_equal(ids.n, 4);
    assert_int_equal(ids.ids[0], 2), assert_int_equal(ids.ids[1], 2), assert_int_equal(ids.ids[2], 3);
    assert_int_equal(ids.ids[3], 1);
    tok_ids_free(&ids);
    /* no chat template: the message says how to give one */
    tok_message m = {"user", "hi"};
    assert_null(tok_chat_render(t, &m, 1, 1, &e));
    assert_non_null(strstr(e.msg, "Lua function"));
    tok_free(t);

    assert_null(load_tiny(dir, "null", "WordPiece", "\"a b\"", NULL, &e));
    assert_non_null(strstr(e.msg, "model type 'WordPiece' is not supported"));
    assert_null(load_tiny(dir, "{\"type\":\"BertPreTokenizer\"}", "BPE", "\"a b\"", NULL, &e));
    assert_non_null(strstr(e.msg, "pre-tokenizer type 'BertPreTokenizer' is not supported"));
    assert_null(load_tiny(dir, "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"}", "BPE",
                          "\"a b\"", NULL, &e));
    assert_non_null(strstr(e.msg, "regex"));
    assert_null(load_tiny(dir, "{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},\"behavior\":\"Contiguous\"}",
                          "BPE", "\"a b\"", NULL, &e));
    assert_non_null(strstr(e.msg, "Contiguous"));
    assert_null(load_tiny(dir, "null", "BPE", "\"a c\"", NULL, &e));
    assert_non_null(strstr(e.msg, "merge 0"));
    assert_null(load_tiny(dir, "null", "BPE", "\"a b c\"", NULL, &e));
    assert_non_null(strstr(e.msg, "merge 0"));

    /* an unrecognised template is an error that names the way out */
    t = load_tiny(dir, "null", "BPE", "[\"a\",\"b\"]", "{\"chat_template\": \"{{ messages }}\", \"eos_token\": \"<eos>\"}", &e);
    assert_non_null(t);
    assert_null(tok_chat_family(t));
    assert_null(tok_chat_render(t, &m, 1, 1, &e)); /* {{ messages }}: a list, which the subset cannot print */
    assert_non_null(strstr(e.msg, "not one rlvr recognises"));
    assert_non_null(strstr(e.msg, "cannot print a list"));
    assert_non_null(strstr(e.msg, "Lua function"));
    assert_string_equal(tok_eos_token(t), "<eos>");
    assert_int_equal(tok_eos_id(t), 3);
    assert_int_equal(tok_token_to_id(t, "ab"), 2);
    assert_string_equal(tok_id_to_token(t, 2), "ab");
    assert_true(tok_is_special(t, 3));
    assert_false(tok_is_special(t, 2));
    assert_int_equal(tok_vocab_size(t), 4);
    int32_t bad = 7;
    assert_null(tok_decode(t, &bad, 1, 0, NULL, &e));
    assert_non_null(strstr(e.msg, "token id 7"));

    tok_free(t);
    /* an unrecognised template inside the subset renders through it */
    t = load_tiny(dir, "null", "BPE", "[\"a\",\"b\"]",
                  "{\"chat_template\": \"{% for m in messages %}<{{ m.role }}>{{ m['content'] | trim }}{% endfor %}"
                  "{% if add_generation_prompt %}<assistant>{% endif %}\", \"eos_token\": \"<eos>\"}",
                  &e);
    assert_non_null(t);
    tok_message sp = {"user", "  hi  "};
    char *r = tok_chat_render(t, &sp, 1, 1, &e);
    assert_non_null(r);
    assert_string_equal(r, "<user>hi<assistant>");
    free(r);

    /* ... and a Lua function renders instead */
    luabox_opts lo = {.max_instructions = 100000};
    luabox *box = luabox_new(&lo, &e);
    assert_non_null(box);
    lua_State *L = luabox_state(box);
    assert_int_equal(luaL_dostring(L, "return function(msgs, opts)\n"
                                      "  local out = {}\n"
                                      "  for _, m in ipairs(msgs) do out[#out+1] = '[' .. m.role .. ']' .. m.content end\n"
                                      "  if opts.add_generation_prompt then out[#out+1] = '[assistant]' end\n"
                                      "  return table.concat(out) .. opts.eos_token\n"
                                      "end"),
                     0);
    tok_message two[2] = {{"system", "S"}, {"user", "U"}};
    char *s = tok_chat_render_lua(box, -1, t, two, 2, 1, &e);
    assert_non_null(s);
    assert_string_equal(s, "[system]S[user]U[assistant]<eos>");
    free(s);
    s = tok_chat_render_lua(box, -1, t, two, 2, 0, &e);
    assert_string_equal(s, "[system]S[user]U<eos>");
    free(s);
    lua_pop(L, 1);
    assert_int_equal(luaL_dostring(L, "return function() return 42 end"), 0);
    assert_null(tok_chat_render_lua(box, -1, t, two, 2, 1, &e));
    assert_non_null(strstr(e.msg, "not a string"));
    lua_pop(L, 1);
    assert_int_equal(luaL_dostring(L, "return function() error('boom') end"), 0);
    assert_null(tok_chat_render_lua(box, -1, t, two, 2, 1, &e));
    assert_non_null(strstr(e.msg, "boom"));
    lua_pop(L, 1);
    assert_int_equal(luaL_dostring(L, "return function() while true do end end"), 0);
    assert_null(tok_chat_render_lua(box, -1, t, two, 2, 1, &e));
    assert_non_null(strstr(e.msg, "chat template function"));
    lua_pop(L, 1);
    assert_int_equal(lua_gettop(L), 0);
    luabox_free(box);
    tok_free(t);

    /* missing file, bad JSON, unknown family, empty conversation */
    char missing[1200];
    snprintf(missing, sizeof missing, "%s/none.json", dir);
    assert_null(tok_load(missing, &e));
    assert_non_null(strstr(e.msg, "none.json"));
    free(test_write(dir, "bad.json", "{\"model\": "));
    snprintf(missing, sizeof missing, "%s/bad.json", dir);
    assert_null(tok_load(missing, &e));
    assert_non_null(strstr(e.msg, "not a valid tokenizer.json"));
    assert_null(tok_chat_render_family("vicuna", NULL, NULL, two, 2, 1, &e));
    assert_non_null(strstr(e.msg, "'vicuna' is not known"));
    assert_null(tok_chat_render_family("llama3", NULL, NULL, two, 0, 1, &e));
    assert_non_null(strstr(e.msg, "no messages"));
    tok_message tool = {"tool", "{}"};
    assert_null(tok_chat_render_family("deepseek-r1", NULL, NULL, &tool, 1, 1, &e));
    assert_non_null(strstr(e.msg, "role 'tool'"));
    free(dir);
}

/* Random bytes (invalid UTF-8, special-token fragments, long runs) through encode and
 * decode: no crash (ASan/UBSan), decode is valid UTF-8, and valid text round-trips exactly
 * for the byte-level tokenizers without a normalizer. */
static void random_bytes_encode_decode(void **state) {
    static const char *frags[] = {"<|im_start|>", "<|endoftext|>", "<|eot_id|>", "<s>", "</s>", "<unk>", " ",
                                  "\n", "  ", "'s", "123", "\xF0\x9F\x98\x80", "\xE2\x96\x81", "\xC3\xA9",
                                  "e\xCC\x81", "<0x41>", "\xE4\xB8\xAD", "<|", "|>"};
    char buf[700];
    for (int k = 0; k < N_TOKS; k++) {
        if (!TOKS[k]) continue;
        for (uint64_t it = 0; it < 300; it++) {
            size_t n = 0;
            size_t target = (size_t)(rng_uniform(11, (uint64_t)k, it, 0) * 600);
            for (uint32_t j = 1; n < target; j++) {
                float u = rng_uniform(11, (uint64_t)k, it, j);
                if (u < 0.4f) buf[n++] = (char)(int)(rng_uniform(12, (uint64_t)k, it, j) * 256);
                else if (u < 0.7f) buf[n++] = (char)(32 + (int)(rng_uniform(12, (uint64_t)k, it, j) * 95));
                else {
                    const char *f = frags[(int)(rng_uniform(13, (uint64_t)k, it, j) * 19) % 19];
                    size_t l = strlen(f);
                    if (n + l > sizeof buf) break;
                    memcpy(buf + n, f, l);
                    n += l;
                }
            }
            tok_ids ids = {0};
            rlvr_err e = {{0}};
            assert_int_equal(tok_encode(TOKS[k], buf, n, (int)(it & 1), &ids, &e), 0);
            for (size_t i = 0; i < ids.n; i++) assert_true(ids.ids[i] >= 0 && ids.ids[i] < tok_vocab_size(TOKS[k]));
            size_t dn;
            char *d = tok_decode(TOKS[k], ids.ids, ids.n, 0, &dn, &e);
            assert_non_null(d);
            assert_true(util_utf8_invalid_at(d, dn) < 0);
            if ((k == 0 || k == 2) && !(it & 1) && util_utf8_invalid_at(buf, n) < 0) {
                assert_int_equal(dn, n);
                assert_memory_equal(d, buf, n);
            }
            free(d);
            tok_ids_free(&ids);
        }
    }
}

/* Several threads encoding with one tokenizer (the word cache is taken with a try-lock)
 * get the same ids as one thread. */
typedef struct enc_job {
    tok_tokenizer *t;
    const char *text;
    size_t n;
    tok_ids ids;
    int rc;
} enc_job;

static void *encode_job(void *p) {
    enc_job *j = p;
    rlvr_err e = {{0}};
    for (int rep = 0; rep < 20 && j->rc == 0; rep++) {
        j->ids.n = 0;
        j->rc = tok_encode(j->t, j->text, j->n, 0, &j->ids, &e);
    }
    return NULL;
}

static void concurrent_encodes_agree(void **state) {
    int k = TOKS[1] ? 1 : 4; /* qwen2.5, or a synthetic one without ../shared */
    const char *text = "I'm sure they'll say 12345 words, 你好 and 😀 again and again and again.\n";
    tok_ids want = {0};
    rlvr_err e = {{0}};
    assert_int_equal(tok_encode(TOKS[k], text, strlen(text), 0, &want, &e), 0);
    pthread_t th[4];
    enc_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (enc_job){.t = TOKS[k], .text = text, .n = strlen(text)};
        assert_int_equal(pthread_create(&th[i], NULL, encode_job, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].rc, 0);
        assert_int_equal(jobs[i].ids.n, want.n);
        assert_memory_equal(jobs[i].ids.ids, want.ids, want.n * sizeof(int32_t));
        tok_ids_free(&jobs[i].ids);
    }
    tok_ids_free(&want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(corpus_matches_hf),
        cmocka_unit_test(big_text_matches_hf),
        cmocka_unit_test(streaming_decode_equals_full_decode),
        cmocka_unit_test(streaming_holds_back_partial_characters),
        cmocka_unit_test(llama_cpp_vectors),
        cmocka_unit_test(chat_templates_match_transformers),
        cmocka_unit_test(load_errors_name_the_problem),
        cmocka_unit_test(random_bytes_encode_decode),
        cmocka_unit_test(concurrent_encodes_agree),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
