/* bench_engine_cpu.c - GRPO-shaped generation on the CPU: P prompts of L tokens, G samples
 * each, N new tokens per sample (no stop token, so both sides generate the same tokens),
 * with the plain decoding loop (sample_generate: every sample prefills its own copy of the
 * prompt, fixed batches) beside the rollout engine (engine_generate: each prompt
 * prefilled once and its KV blocks shared, continuous batching), on the same ~10M-
 * parameter Qwen2-shaped model as bench_cpu_forward.
 *
 *   bench_engine_cpu [--prompts P] [--group G] [--prompt-len L] [--new N] [--threads T]
 *                    [--blas 0|1] [--iters K]
 *
 * Reports tokens generated per second for each (best of K runs), their ratio, and how
 * many samples came out token-for-token identical (all of them with --blas 0; with BLAS
 * the two forwards may round differently). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "engine.h"
#include "model.h"
#include "sampling.h"
#include "util.h"

typedef struct run {
    sample_seq *seqs;
    int *out;
    double best_s;
} run;

static int setup(run *r, const int *prompts, int P, int G, int L, int N) {
    r->seqs = calloc((size_t)P * G, sizeof *r->seqs);
    r->out = calloc((size_t)P * G * N, sizeof *r->out);
    r->best_s = 1e30;
    if (!r->seqs || !r->out) return -1;
    for (int k = 0; k < P * G; k++)
        r->seqs[k] = (sample_seq){.prompt = prompts + (size_t)(k / G) * L, .n_prompt = L, .seq_id = (uint64_t)k,
                                  .out = r->out + (size_t)k * N};
    return 0;
}

int main(int argc, char **argv) {
    int P = 8, G = 16, L = 128, N = 128, threads = 1, blas = 1, iters = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i];
        const int v = atoi(argv[i + 1]);
        if (strcmp(a, "--prompts") == 0) P = v;
        else if (strcmp(a, "--group") == 0) G = v;
        else if (strcmp(a, "--prompt-len") == 0) L = v;
        else if (strcmp(a, "--new") == 0) N = v;
        else if (strcmp(a, "--threads") == 0) threads = v;
        else if (strcmp(a, "--blas") == 0) blas = v;
        else if (strcmp(a, "--iters") == 0) iters = v;
        else {
            fprintf(stderr, "bench_engine_cpu: unknown option %s\n", a);
            return 2;
        }
    }
    if (P < 1 || G < 1 || L < 1 || N < 1 || threads < 1 || iters < 1 || L + N > 1024) {
        fprintf(stderr, "bench_engine_cpu: counts must be >= 1 and prompt-len + new <= 1024\n");
        return 2;
    }
    rlvr_err e;
    /* bench_cpu_forward's model: 8192 x 256 tied embeddings + 10 layers x 0.79M */
    model_config c = {.arch = MODEL_QWEN2, .vocab = 8192, .hidden = 256, .layers = 10, .heads = 8, .kv_heads = 4,
                      .head_dim = 32, .intermediate = 768, .max_positions = 1024, .rope_theta = 10000.0f,
                      .rms_eps = 1e-6f, .init_range = 0.02f, .tie_embeddings = 1, .qkv_bias = 1,
                      .bos_token_id = -1, .eos_token_id = -1};
    model *m = model_init(&c, 1, &e);
    if (!m) {
        fprintf(stderr, "bench_engine_cpu: %s\n", e.msg);
        return 1;
    }
    model_set_threads(threads);
    cpu_set_blas_threads(1);
    cpu_set_blas(blas);
    int *prompts = malloc((size_t)P * L * sizeof *prompts);
    run plain, paged;
    if (!prompts || setup(&plain, prompts, P, G, L, N) || setup(&paged, prompts, P, G, L, N)) {
        fprintf(stderr, "bench_engine_cpu: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)P * L; i++) prompts[i] = (int)((i * 7919u + 13u) % (unsigned)c.vocab);
    const sample_gen_opts o = {.params = {1.0f, 0, 1.0f, 0.0f}, .seed = 3, .max_new = N};
    for (int it = 0; it < iters; it++) { /* alternate, so that both see the same machine */
        double t0 = util_now();
        if (sample_generate(m, plain.seqs, P * G, &o, &e) != 0) goto fail;
        double t1 = util_now();
        if (engine_generate(m, paged.seqs, P * G, &o, NULL, NULL, &e) != 0) goto fail;
        double t2 = util_now();
        if (t1 - t0 < plain.best_s) plain.best_s = t1 - t0;
        if (t2 - t1 < paged.best_s) paged.best_s = t2 - t1;
    }
    int same = 0;
    for (int k = 0; k < P * G; k++)
        same += plain.seqs[k].n_out == paged.seqs[k].n_out &&
                memcmp(plain.seqs[k].out, paged.seqs[k].out, (size_t)plain.seqs[k].n_out * sizeof(int)) == 0;
    const double tokens = (double)P * G * N;
    printf("shape: %d prompts x %d samples, prompt %d, %d new tokens, threads %d, BLAS %s, best of %d\n", P, G, L, N,
           threads, blas && cpu_blas_enabled() ? "on" : "off", iters);
    printf("sample_generate %8.0f tokens/s (%.2f s)\n", tokens / plain.best_s, plain.best_s);
    printf("engine_generate %8.0f tokens/s (%.2f s)  x%.2f\n", tokens / paged.best_s, paged.best_s,
           plain.best_s / paged.best_s);
    printf("identical samples: %d of %d\n", same, P * G);
    return 0;
fail:
    fprintf(stderr, "bench_engine_cpu: %s\n", e.msg);
    return 1;
}
