/* fuzz_tokenizer.c - encode/decode/streaming fuzz target for the tokenizer.
 *
 * Input: byte 0 picks the tokenizer (gpt2, qwen2.5, llama3, tinyllama-llama2) and flags
 * (bit 2: add special tokens, bit 3: skip special tokens when decoding); the rest is the
 * text, arbitrary bytes. Checked: encode succeeds with ids in range, decode is valid UTF-8,
 * streaming decode equals the full decode, and valid UTF-8 round-trips exactly through the
 * byte-level tokenizers without a normalizer (gpt2, llama3). A violation aborts.
 *
 * Built as a plain program (CMake, tests/tools) it replays the files named on its command
 * line (or every file of a directory): tests/cli/test_tokenizer_fuzz.sh replays the saved
 * inputs in tests/fixtures/tokenizer/fuzz/ that way. Built with -DRLVR_LIBFUZZER and clang's
 * -fsanitize=fuzzer it is a libFuzzer target (docs/tokenizer.md gives the command).
 * Tokenizers come from $RLVR_FUZZ_TOKENIZERS (default ../shared/data/tokenizers). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"
#include "util.h"

static const char *NAMES[] = {"gpt2", "qwen2.5", "llama3", "tinyllama-llama2"};
static tok_tokenizer *TOKS[4];
static int loaded;

static void load_all(void) {
    if (loaded) return;
    loaded = 1;
    const char *dir = getenv("RLVR_FUZZ_TOKENIZERS");
    if (!dir) dir = "../shared/data/tokenizers";
    for (int i = 0; i < 4; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, NAMES[i]);
        rlvr_err e = {{0}};
        TOKS[i] = tok_load(path, &e);
        if (!TOKS[i]) fprintf(stderr, "fuzz_tokenizer: %s (skipped)\n", e.msg);
    }
}

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_tokenizer: invariant broken: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_all();
    if (size < 1) return 0;
    int which = data[0] & 3, add_special = (data[0] >> 2) & 1, skip = (data[0] >> 3) & 1;
    tok_tokenizer *t = TOKS[which];
    if (!t) return 0;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    tok_ids ids = {0};
    rlvr_err e = {{0}};
    check(tok_encode(t, text, n, add_special, &ids, &e) == 0, "encode failed");
    for (size_t i = 0; i < ids.n; i++) check(ids.ids[i] >= 0 && ids.ids[i] < tok_vocab_size(t), "id out of range");
    size_t dn;
    char *d = tok_decode(t, ids.ids, ids.n, skip, &dn, &e);
    check(d != NULL, "decode failed");
    check(util_utf8_invalid_at(d, dn) < 0, "decode is not valid UTF-8");
    if ((which == 0 || which == 2) && !add_special && !skip && util_utf8_invalid_at(text, n) < 0)
        check(dn == n && memcmp(d, text, n) == 0, "valid UTF-8 does not round-trip");
    tok_stream *s = tok_stream_new(t, skip, &e);
    check(s != NULL, "stream");
    sbuf all;
    sb_init(&all);
    for (size_t i = 0; i < ids.n; i++) {
        size_t before = all.len;
        check(tok_stream_push(s, ids.ids[i], &all, &e) == 0, "stream push failed");
        check(util_utf8_invalid_at(all.s ? all.s + before : "", all.len - before) < 0, "stream emitted half a character");
    }
    check(tok_stream_finish(s, &all, &e) == 0, "stream finish failed");
    check(all.len == dn && memcmp(all.s ? all.s : "", d, dn) == 0, "stream differs from decode");
    sb_free(&all);
    tok_stream_free(s);
    free(d);
    tok_ids_free(&ids);
    return 0;
}

#ifndef RLVR_LIBFUZZER
static int run_file(const char *path) {
    size_t len;
    char *buf = util_read_file(path, &len, NULL);
    if (!buf) {
        fprintf(stderr, "fuzz_tokenizer: cannot read %s\n", path);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    int bad = 0, n = 0;
    for (int i = 1; i < argc; i++) {
        if (util_is_dir(argv[i])) {
            DIR *dir = opendir(argv[i]);
            struct dirent *ent;
            while (dir && (ent = readdir(dir)) != NULL) {
                if (ent->d_name[0] == '.') continue;
                char *p = util_path_join(argv[i], ent->d_name);
                bad |= run_file(p);
                n++;
                free(p);
            }
            if (dir) closedir(dir);
        } else {
            bad |= run_file(argv[i]);
            n++;
        }
    }
    for (int i = 0; i < 4; i++) tok_free(TOKS[i]);
    printf("fuzz_tokenizer: %d inputs replayed\n", n);
    return bad;
}
#endif
