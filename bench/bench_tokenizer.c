/* bench_tokenizer.c - single-thread encode throughput of rlvr's tokenizer.
 *
 *   bench_tokenizer --tokenizer PATH --docs DOCS.jsonl [--reps N]
 *
 * DOCS.jsonl holds {"hex": ...} lines (each document's UTF-8 bytes in hex: JSON strings cannot
 * carry U+0000 through cJSON, and the test corpus has one). Each repetition encodes every document in order (one
 * tok_encode call per document, no special tokens); the best repetition gives MB/s of UTF-8
 * input. The first repetition runs on a fresh tokenizer (empty word cache) and is reported
 * apart as "cold". Prints one JSON line: {"tokenizer", "bytes", "ids", "cold_mb_s", "mb_s"}.
 * tests/reference/bench_hf_tokenizer.py runs this beside HF tokenizers in the same run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonl.h"
#include "tokenizer.h"
#include "util.h"

int main(int argc, char **argv) {
    const char *tok_path = NULL, *docs_path = NULL;
    int reps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokenizer")) tok_path = argv[i + 1];
        else if (!strcmp(argv[i], "--docs")) docs_path = argv[i + 1];
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    }
    if (!tok_path || !docs_path || reps < 1) {
        fprintf(stderr, "usage: bench_tokenizer --tokenizer PATH --docs DOCS.jsonl [--reps N]\n");
        return 2;
    }
    rlvr_err e = {{0}};
    jsonl_reader r;
    if (jsonl_open(&r, docs_path, &e) != 0) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    char **docs = NULL;
    size_t *lens = NULL, n = 0, bytes = 0;
    cJSON *obj;
    jsonl_status st;
    while ((st = jsonl_next(&r, &obj, &e)) == JSONL_OK) {
        const char *hex = jsonl_get_string(obj, "hex");
        if (hex) {
            docs = realloc(docs, (n + 1) * sizeof *docs);
            lens = realloc(lens, (n + 1) * sizeof *lens);
            size_t len = strlen(hex) / 2;
            docs[n] = malloc(len + 1);
            for (size_t i = 0; i < len; i++) {
                unsigned v;
                sscanf(hex + 2 * i, "%2x", &v);
                docs[n][i] = (char)v;
            }
            lens[n] = len;
            bytes += lens[n++];
        }
        cJSON_Delete(obj);
    }
    jsonl_close(&r);
    if (st != JSONL_EOF) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    tok_tokenizer *t = tok_load(tok_path, &e);
    if (!t) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    tok_ids ids = {0};
    double best = 1e30, cold = 0;
    size_t total_ids = 0;
    for (int rep = 0; rep < reps; rep++) {
        double t0 = util_now();
        total_ids = 0;
        for (size_t i = 0; i < n; i++) {
            ids.n = 0;
            if (tok_encode(t, docs[i], lens[i], 0, &ids, &e) != 0) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
            }
            total_ids += ids.n;
        }
        double dt = util_now() - t0;
        if (rep == 0) cold = dt;
        if (dt < best) best = dt;
    }
    printf("{\"tokenizer\": \"%s\", \"docs\": %zu, \"bytes\": %zu, \"ids\": %zu, \"cold_mb_s\": %.2f, \"mb_s\": %.2f}\n",
           tok_path, n, bytes, total_ids, bytes / cold / 1e6, bytes / best / 1e6);
    tok_ids_free(&ids);
    tok_free(t);
    for (size_t i = 0; i < n; i++) free(docs[i]);
    free(docs);
    free(lens);
    return 0;
}
