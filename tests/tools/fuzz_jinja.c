/* fuzz_jinja.c - fuzz target for the chat-template Jinja subset (core/jinja.c): arbitrary
 * template text rendered over a fixed conversation must either render or fail with a
 * message, never crash, hang or leak. Built as a plain program it replays files or
 * directories given on the command line (tests/cli/test_tokenizer_fuzz.sh replays
 * tests/fixtures/tokenizer/fuzz-jinja/); with -DRLVR_LIBFUZZER and -fsanitize=fuzzer it is a
 * libFuzzer target (docs/tokenizer.md). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *tmpl = malloc(size + 1);
    if (!tmpl) return 0;
    memcpy(tmpl, data, size);
    tmpl[size] = 0; /* a NUL inside ends the template early, as a C string would */
    tok_message msgs[3] = {{"system", "Be brief."}, {"user", "What is 2+2?"}, {"assistant", "<think>x</think>4"}};
    rlvr_err e = {{0}};
    char *out = tok_jinja_render(tmpl, "<s>", "</s>", msgs, 3, (int)(size & 1), &e);
    if (!out && !e.msg[0]) {
        fprintf(stderr, "fuzz_jinja: failed without a message\n");
        abort();
    }
    free(out);
    free(tmpl);
    return 0;
}

#ifndef RLVR_LIBFUZZER
int main(int argc, char **argv) {
    int n = 0;
    for (int i = 1; i < argc; i++) {
        DIR *dir = util_is_dir(argv[i]) ? opendir(argv[i]) : NULL;
        struct dirent *ent;
        while (dir && (ent = readdir(dir)) != NULL) {
            if (ent->d_name[0] == '.') continue;
            char *p = util_path_join(argv[i], ent->d_name);
            size_t len;
            char *buf = util_read_file(p, &len, NULL);
            if (buf) LLVMFuzzerTestOneInput((const uint8_t *)buf, len), n++;
            free(buf);
            free(p);
        }
        if (dir) closedir(dir);
    }
    printf("fuzz_jinja: %d inputs replayed\n", n);
    return 0;
}
#endif
