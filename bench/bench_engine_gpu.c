/* bench_engine_gpu.c - decode throughput of the GPU rollout engine (engine_generate with a
 * gpu_model: paged KV cache, shared-prompt groups, CUDA graphs for decode steps, sampling
 * on the device) on Qwen2.5-0.5B and -1.5B shapes with random weights.
 *
 *   bench_engine_gpu [--model 0.5b|1.5b] [--batch 1,64,256] [--prompt 512] [--group 8]
 *                    [--new 512] [--reps 2] [--eager] [--invariant]
 *
 * For each batch B: B samples decoded together, in groups of min(G, B) sharing a random
 * prompt of P tokens, N new tokens each at temperature 1 with no stop token (every sample
 * runs to N). Two timings, each the best of --reps after one warm-up run:
 *   prefill  engine_generate with N = 1 (the prompts' forward and the first draw);
 *   full     engine_generate with N new tokens;
 * decode = full - prefill over the N - 1 decode steps: ms per step and tokens/s. The
 * roofline of a decode step reads every bf16 weight once and each sample's K and V up to
 * its position (P + N/2 on average: the engine reads a shared prompt once per sample);
 * its time is those bytes over the device-to-device copy bandwidth measured here (a 1 GiB
 * cudaMemcpy reads and writes 2 GiB). Prints one RESULT line per batch for
 * bench/run_engine_gpu.sh, which sets transformers' generate beside it. --invariant runs the
 * batch-invariant forward (gpu_model_opts.invariant: the products of kern_matmul_invariant,
 * attention in the training attention's order), impl "rlvr-inv". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_gpu.h"
#include "bench_models.h"
#include "engine.h"
#include "model.h"
#include "model_gpu.h"
#include "util.h"

static void die(const char *what, const rlvr_err *e) {
    fprintf(stderr, "bench_engine_gpu: %s: %s\n", what, e ? e->msg : "");
    exit(1);
}

/* Device-to-device copy bandwidth in bytes/s (bytes read + bytes written), median of 10. */
static double copy_bandwidth(void) {
    rlvr_err e = {{0}};
    const size_t bytes = (size_t)1 << 30;
    void *a = kern_malloc(bytes, &e), *b = a ? kern_malloc(bytes, &e) : NULL;
    if (!a || !b || kern_memzero(a, bytes, NULL, &e) != 0) die("copy bandwidth", &e);
    double t[10];
    for (int i = -2; i < 10; i++) {
        double t0 = bench_gpu_now();
        if (kern_memcpy_d2d(b, a, bytes, &e) != 0 || kern_synchronize(&e) != 0) die("copy bandwidth", &e);
        if (i >= 0) t[i] = bench_gpu_now() - t0;
    }
    qsort(t, 10, sizeof *t, bench_gpu_cmp_double);
    kern_free(a);
    kern_free(b);
    return 2.0 * (double)bytes / t[5];
}

typedef struct gen {
    sample_seq *seqs;
    int *prompts, *out;
    int n;
} gen;

static void gen_init(gen *g, int B, int G, int P, int N, int vocab) {
    int groups = (B + G - 1) / G;
    g->n = B;
    g->seqs = calloc((size_t)B, sizeof *g->seqs);
    g->prompts = malloc((size_t)groups * P * sizeof *g->prompts);
    g->out = malloc((size_t)B * N * sizeof *g->out);
    if (!g->seqs || !g->prompts || !g->out) die("out of memory", NULL);
    uint64_t s = 777;
    for (size_t i = 0; i < (size_t)groups * P; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        g->prompts[i] = (int)((s >> 33) % (uint64_t)vocab);
    }
    for (int k = 0; k < B; k++)
        g->seqs[k] = (sample_seq){.prompt = g->prompts + (size_t)(k / G) * P, .n_prompt = P, .seq_id = (uint64_t)k,
                                  .out = g->out + (size_t)k * N};
}

static void gen_free(gen *g) {
    free(g->seqs);
    free(g->prompts);
    free(g->out);
}

/* Best seconds of reps runs of engine_generate with max_new new tokens, after a warm-up
 * (eo->graph_steps, when set, counts the last run's graph replays). */
static double time_generate(model *m, gen *g, int max_new, const engine_opts *eo, int reps) {
    rlvr_err e = {{0}};
    sample_gen_opts o = {.params = {1.0f, 0, 1.0f, 0.0f}, .seed = 11, .max_new = max_new};
    double best = 1e30;
    for (int r = -1; r < reps; r++) {
        double t0 = bench_gpu_now();
        if (engine_generate(m, g->seqs, g->n, &o, eo, NULL, &e) != 0) die("engine_generate", &e);
        double t = bench_gpu_now() - t0;
        if (r >= 0 && t < best) best = t;
        for (int k = 0; k < g->n; k++)
            if (g->seqs[k].n_out != max_new) die("a sample stopped early", NULL);
    }
    return best;
}

int main(int argc, char **argv) {
    const char *name = "0.5b", *batches = "1,64,256";
    int P = 512, G = 8, N = 512, reps = 2, eager = 0, invariant = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--eager") == 0) eager = 1;
        else if (strcmp(a, "--invariant") == 0) invariant = 1;
        else if (!v) {
            fprintf(stderr, "bench_engine_gpu: %s needs a value\n", a);
            return 2;
        } else if (strcmp(a, "--model") == 0) name = v, i++;
        else if (strcmp(a, "--batch") == 0) batches = v, i++;
        else if (strcmp(a, "--prompt") == 0) P = atoi(v), i++;
        else if (strcmp(a, "--group") == 0) G = atoi(v), i++;
        else if (strcmp(a, "--new") == 0) N = atoi(v), i++;
        else if (strcmp(a, "--reps") == 0) reps = atoi(v), i++;
        else {
            fprintf(stderr, "bench_engine_gpu: unknown option %s\n", a);
            return 2;
        }
    }
    model_config c = bench_qwen25("bench_engine_gpu", name);
    if (P < 1 || G < 1 || N < 2 || reps < 1 || P + N > c.max_positions) {
        fprintf(stderr, "bench_engine_gpu: --prompt, --group and --reps must be >= 1, --new >= 2, and prompt + new "
                        "<= %d\n", c.max_positions);
        return 2;
    }
    if (!bench_gpu_present()) return 0;
    rlvr_err e = {{0}};
    model *m = model_new(&c, &e);
    if (!m) die("model", &e);
    bench_fill_weights(m);
    gpu_model_opts go = {.dtype = KERN_BF16, .max_tokens = 1, .max_seqs = 1, .train = 0, .invariant = invariant};
    gpu_model *g = gpu_model_new(m, &go, &e);
    if (!g) die("gpu_model_new", &e);
    const double bw = copy_bandwidth();
    const double w_bytes = 2.0 * (double)m->n_params;
    const double kv_token = 2.0 * 2.0 * c.layers * c.kv_heads * c.head_dim; /* K and V, bf16 */
    printf("Qwen2.5-%s shape: %zu parameters (%.2f GB bf16), KV %.0f bytes/token; copy bandwidth %.0f GB/s; %s%s\n",
           name, m->n_params, w_bytes / 1e9, kv_token, bw / 1e9, eager ? "eager" : "CUDA graphs",
           invariant ? ", batch-invariant" : "");
    char list[256];
    snprintf(list, sizeof list, "%s", batches);
    for (char *p = strtok(list, ","); p; p = strtok(NULL, ",")) {
        int B = atoi(p);
        if (B < 1) die("--batch entries must be >= 1", NULL);
        int Gb = G < B ? G : B;
        long long graph_steps = 0;
        engine_opts eo = {.gpu = g, .eager = eager, .graph_steps = &graph_steps};
        gen gp, gf;
        gen_init(&gp, B, Gb, P, 1, c.vocab);
        gen_init(&gf, B, Gb, P, N, c.vocab);
        double t_pre = time_generate(m, &gp, 1, &eo, reps);
        double t_full = time_generate(m, &gf, N, &eo, reps); /* last: graph_steps is the full run's */
        double step = (t_full - t_pre) / (N - 1);
        double roof = (w_bytes + (double)B * kv_token * (P + N / 2.0)) / bw;
        printf("rlvr  B=%-4d (groups of %d): prefill %.1f ms, decode %.3f ms/step (%.0f tokens/s), "
               "all %.0f tokens/s; roofline %.3f ms/step -> %.1f%% of it; %lld of %d decode steps from graphs\n",
               B, Gb, 1e3 * t_pre, 1e3 * step, B / step, (double)B * N / t_full, 1e3 * roof, 100 * roof / step,
               graph_steps, N - 1);
        printf("RESULT impl=rlvr%s model=%s batch=%d prompt=%d new=%d prefill_ms=%.2f step_ms=%.4f decode_tps=%.1f "
               "total_tps=%.1f roof_ms=%.4f\n",
               invariant ? "-inv" : eager ? "-eager" : "", name, B, P, N, 1e3 * t_pre, 1e3 * step, B / step,
               (double)B * N / t_full, 1e3 * roof);
        fflush(stdout);
        gen_free(&gp);
        gen_free(&gf);
    }
    gpu_model_free(g);
    model_free(m);
    return 0;
}
