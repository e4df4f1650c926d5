/* bench_cpu_forward.c - tokens/s of the CPU reference's forward (prefill of B sequences
 * of T tokens, logits for every token) on a ~10M-parameter Qwen2-shaped model.
 *
 *   bench_cpu_forward [--write DIR] [--model DIR] [--batch B] [--seq T] [--iters N] [--threads N]
 *
 * --write DIR saves the initialized model there first, so that
 * tests/reference/bench_torch_cpu_forward.py runs PyTorch on the same weights; see
 * docs/benchmarks.md for the commands and results. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "model.h"
#include "util.h"

int main(int argc, char **argv) {
    const char *write_dir = NULL, *model_dir = NULL;
    int B = 4, T = 256, iters = 5, threads = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--write") == 0) write_dir = argv[i + 1];
        else if (strcmp(argv[i], "--model") == 0) model_dir = argv[i + 1];
        else if (strcmp(argv[i], "--batch") == 0) B = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seq") == 0) T = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--iters") == 0) iters = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0) threads = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_cpu_forward: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (B < 1 || T < 1 || iters < 1 || threads < 1) {
        fprintf(stderr, "bench_cpu_forward: --batch, --seq, --iters and --threads must be >= 1\n");
        return 2;
    }
    rlvr_err e;
    model *m;
    if (model_dir) m = model_load(model_dir, &e);
    else {
        /* ~10M parameters: 8192 x 256 tied embeddings (2.1M) + 10 layers x 0.79M */
        model_config c = {.arch = MODEL_QWEN2, .vocab = 8192, .hidden = 256, .layers = 10, .heads = 8, .kv_heads = 4,
                          .head_dim = 32, .intermediate = 768, .max_positions = 1024, .rope_theta = 10000.0f,
                          .rms_eps = 1e-6f, .init_range = 0.02f, .tie_embeddings = 1, .qkv_bias = 1,
                          .bos_token_id = -1, .eos_token_id = -1};
        m = model_init(&c, 1, &e);
    }
    if (!m) {
        fprintf(stderr, "bench_cpu_forward: %s\n", e.msg);
        return 1;
    }
    if (write_dir && model_save(m, write_dir, &e) != 0) {
        fprintf(stderr, "bench_cpu_forward: %s\n", e.msg);
        return 1;
    }
    model_set_threads(threads);
    int V = m->cfg.vocab, n = B * T;
    int *tokens = malloc((size_t)n * sizeof *tokens), *rows = malloc((size_t)n * sizeof *rows);
    int slots[256], lens[256];
    float *logits = malloc((size_t)n * V * sizeof *logits);
    model_kv *kv = model_kv_new(m, B, T, &e);
    if (!tokens || !rows || !logits || !kv || B > 256) {
        fprintf(stderr, "bench_cpu_forward: out of memory (or --batch > 256)\n");
        return 1;
    }
    /* the same token ids as the PyTorch script: (7 * i + 3) mod V for i over the batch */
    for (int i = 0; i < n; i++) tokens[i] = (int)((7L * i + 3) % V), rows[i] = i;
    for (int b = 0; b < B; b++) slots[b] = b, lens[b] = T;
    double best = 1e30, sum = 0.0;
    for (int it = 0; it < iters + 1; it++) {
        for (int b = 0; b < B; b++) kv->len[b] = 0;
        double t0 = util_now();
        if (model_forward(m, kv, B, slots, lens, tokens, &e) != 0) {
            fprintf(stderr, "bench_cpu_forward: %s\n", e.msg);
            return 1;
        }
        model_logits(m, rows, n, logits);
        double dt = util_now() - t0;
        if (it == 0) continue; /* warm-up */
        if (dt < best) best = dt;
        sum += dt;
    }
    printf("rlvr cpu forward: %zu params, batch %d x %d tokens, %d threads, blas %s: best %.1f ms, mean %.1f ms, "
           "%.0f tokens/s (best)\n",
           m->n_params, B, T, threads, cpu_blas_enabled() ? "on" : "off", best * 1e3, sum / iters * 1e3, n / best);
    printf("checksum logits[0][0..2] = %.6f %.6f %.6f\n", logits[0], logits[1], logits[2]);
    free(tokens);
    free(rows);
    free(logits);
    model_kv_free(kv);
    model_free(m);
    return 0;
}
