/* bench_train_gpu.c - training throughput of the GPU model (kernels/model_gpu.h) on
 * Qwen2.5-0.5B and -1.5B shapes with random weights: one optimizer step = zero the
 * gradients, then for each of M micro-batches (gradient accumulation; default 1) forward
 * over a packed micro-batch of B sequences of L tokens with the log-probability of every
 * next token and backward of their mean (cross-entropy), then clip to norm 1, AdamW. tests/reference/bench_torch_train.py is the PyTorch peer (transformers,
 * bf16 autocast over fp32 weights, SDPA, fused AdamW) on the same shapes and batch;
 * bench/run_train_gpu.sh runs both alternately and prints the ratios.
 *
 *   bench_train_gpu --model 0.5b|1.5b [--seqs 1024,4096] [--tokens 8192] [--micro 1] [--steps 5]
 *                   [--warmup 2] [--dtype bf16|fp32] [--recompute] [--lm-keep-probs] [--lm-chunk 8192]
 *                   [--invariant]
 *
 * B = tokens / L per micro-batch; an optimizer step sees M x B x L tokens. Reported per sequence length: tokens/s over the timed steps (each step
 * synchronized), MFU = model FLOPs / (step time x 989 TFLOPS, the H100 SXM's bf16 dense
 * peak) with model FLOPs = 6 N tokens + 6 L_layers H D sum_s L_s^2 (causal attention,
 * forward and backward; recomputation is not credited), the memory plan's total, and the
 * device memory in use after the steps (cudaMemGetInfo: total - free, which includes the
 * CUDA context). One "RESULT" line each, parsed by run_train_gpu.sh. --invariant trains with
 * the batch-invariant forward (gpu_model_opts.invariant), what exact rollout log-probs cost. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_models.h"
#include "model.h"
#include "model_gpu.h"
#include "util.h"

#define PEAK_FLOPS 989e12

static void die(const char *what, const rlvr_err *e) {
    fprintf(stderr, "bench_train_gpu: %s: %s\n", what, e ? e->msg : "");
    exit(1);
}

static double gib(size_t b) { return (double)b / (double)((size_t)1 << 30); }

static void run(const model *m, const char *name, int L, int tokens, int micro, int steps, int warmup,
                kern_dtype dt, int recompute, int lm_keep, int lm_chunk, int invariant) {
    rlvr_err e = {{0}};
    const model_config *c = &m->cfg;
    int B = tokens / L;
    if (B < 1) B = 1;
    int T = B * L;
    gpu_model_opts o = {.dtype = dt, .max_tokens = T, .max_seqs = B, .recompute = recompute, .train = 1, .lm_chunk = lm_chunk, .lm_keep_probs = lm_keep,
                        .invariant = invariant,
                        .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0};
    gpu_model *g = gpu_model_new(m, &o, &e);
    if (!g) die("gpu_model_new", &e);
    int *lens = malloc((size_t)B * sizeof(int)), *tok = malloc((size_t)T * sizeof(int)),
        *tgt = malloc((size_t)T * sizeof(int));
    float *logp = malloc((size_t)T * sizeof(float)), *dlogp = malloc((size_t)T * sizeof(float));
    if (!lens || !tok || !tgt || !logp || !dlogp) die("out of memory", NULL);
    uint64_t s = 12345;
    for (int i = 0; i < B; i++) lens[i] = L;
    for (int t = 0; t < T; t++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tok[t] = (int)((s >> 33) % (uint64_t)c->vocab);
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tgt[t] = (int)((s >> 33) % (uint64_t)c->vocab);
        dlogp[t] = -1.0f / (float)T; /* d(mean cross-entropy) / d logp */
    }
    double t0 = 0, loss = 0;
    for (int it = 0; it < warmup + steps; it++) {
        if (it == warmup) {
            if (kern_synchronize(&e) != 0) die("synchronize", &e);
            t0 = util_now();
        }
        double norm = 0;
        if (gpu_model_zero_grads(g, &e) != 0) die("zero", &e);
        for (int k = 0; k < micro; k++)
            if (gpu_model_forward(g, B, lens, tok, tgt, logp, NULL, &e) != 0 ||
                gpu_model_backward(g, dlogp, NULL, &e) != 0)
                die("micro-batch", &e);
        if (gpu_model_clip_grad_norm(g, 1.0, &norm, &e) != 0 || gpu_model_adamw_step(g, 1e-5, &e) != 0)
            die("optimizer step", &e);
        loss = 0;
        for (int t = 0; t < T; t++) loss -= logp[t];
        loss /= T;
    }
    if (kern_synchronize(&e) != 0) die("synchronize", &e);
    double dt_step = (util_now() - t0) / steps;
    kern_device_info info;
    if (kern_device_info_get(0, &info, &e) != 0) die("device info", &e);
    double step_tokens = (double)T * micro;
    double flops = micro * (6.0 * (double)m->n_params * T + 6.0 * c->layers * c->heads * c->head_dim * (double)B * L * L);
    double mfu = flops / dt_step / PEAK_FLOPS;
    printf("rlvr  %s L=%d B=%d M=%d %s%s%s: %.0f tokens/s, %.1f ms/step, MFU %.1f%%, plan %.2f GiB, device memory in "
           "use %.2f GiB, loss %.4f\n",
           name, L, B, micro, dt == KERN_BF16 ? "bf16" : "fp32", recompute ? " recompute" : "",
           lm_keep ? " lm-keep-probs" : "", step_tokens / dt_step,
           1e3 * dt_step, 100 * mfu, gib(gpu_model_plan(g)->total), gib(info.total_memory - info.free_memory), loss);
    printf("RESULT impl=rlvr model=%s seq=%d batch=%d micro=%d tokens_per_s=%.1f mfu=%.4f mem_gib=%.3f\n", name, L,
           B, micro, step_tokens / dt_step, mfu, gib(info.total_memory - info.free_memory));
    fflush(stdout);
    gpu_model_free(g);
    free(lens);
    free(tok);
    free(tgt);
    free(logp);
    free(dlogp);
}

int main(int argc, char **argv) {
    const char *name = "0.5b", *seqs = "1024,4096";
    int tokens = 8192, micro = 1, steps = 5, warmup = 2, recompute = 0, lm_keep = 0, lm_chunk = 0, invariant = 0;
    kern_dtype dt = KERN_BF16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--recompute") == 0) recompute = 1;
        else if (strcmp(a, "--lm-keep-probs") == 0) lm_keep = 1;
        else if (strcmp(a, "--invariant") == 0) invariant = 1;
        else if (!v) {
            fprintf(stderr, "bench_train_gpu: %s needs a value\n", a);
            return 2;
        } else if (strcmp(a, "--model") == 0) name = v, i++;
        else if (strcmp(a, "--seqs") == 0) seqs = v, i++;
        else if (strcmp(a, "--tokens") == 0) tokens = atoi(v), i++;
        else if (strcmp(a, "--micro") == 0) micro = atoi(v), i++;
        else if (strcmp(a, "--lm-chunk") == 0) lm_chunk = atoi(v), i++;
        else if (strcmp(a, "--steps") == 0) steps = atoi(v), i++;
        else if (strcmp(a, "--warmup") == 0) warmup = atoi(v), i++;
        else if (strcmp(a, "--dtype") == 0) dt = strcmp(v, "fp32") == 0 ? KERN_F32 : KERN_BF16, i++;
        else {
            fprintf(stderr, "bench_train_gpu: unknown option %s\n", a);
            return 2;
        }
    }
    if (steps < 1 || tokens < 1 || micro < 1 || warmup < 0 || lm_chunk < 0) {
        fprintf(stderr, "bench_train_gpu: --steps, --tokens and --micro must be positive\n");
        return 2;
    }
    rlvr_err e = {{0}};
    if (kern_device_count(&e) <= 0) {
        printf("skipped: %s\n", e.msg);
        return 0;
    }
    model_config c = bench_qwen25("bench_train_gpu", name);
    double t = util_now();
    model *m = model_new(&c, &e);
    if (!m) die("model", &e);
    bench_fill_weights(m);
    fprintf(stderr, "bench_train_gpu: Qwen2.5-%s shape, %zu parameters (random weights in %.1f s)\n", name,
            m->n_params, util_now() - t);
    char list[256];
    snprintf(list, sizeof list, "%s", seqs);
    for (char *p = strtok(list, ","); p; p = strtok(NULL, ","))
        run(m, name, atoi(p), tokens, micro, steps, warmup, dt, recompute, lm_keep, lm_chunk, invariant);
    model_free(m);
    return 0;
}
