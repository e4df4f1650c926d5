/* bench_kernels.c - speed of the GPU kernels on Qwen2.5-0.5B shapes (C 896, 14 query and
 * 2 KV heads of 64, I 4864, V 151,936) in bf16, over B packed sequences of L tokens:
 * the MLP's up projection forward and backward (cuBLASLt), causal attention forward and
 * backward, the vocabulary-chunked LM head with log-probabilities forward and backward,
 * and the memory-bound kernels. tests/reference/bench_torch_kernels.py times PyTorch's
 * peers of the same operations on the same shapes; run both in one device call.
 *
 *   bench_kernels [--batch B] [--seq L] [--iters N] [--chunk V_CHUNK]
 *                 [--heads H] [--kv-heads KV] [--head-dim D]
 *
 * --heads, --kv-heads and --head-dim change the attention and RoPE shapes only (12, 2
 * and 128 are Qwen2.5-1.5B's).
 *
 * Times are the median of N runs after two warm-ups, each run synchronized; inputs are
 * random normal (never zeros). FLOP counts: 2 T I C for a linear forward, twice that for
 * its backward (dX and dW); attention forward 4 D H sum_s L_s (L_s + 1) / 2 (the causal
 * half of Q K^T and P V), backward 2.5 times the forward (FlashAttention's count: the
 * recomputation is not credited); LM head forward 2 T C V, backward 3 times (logits
 * recomputed, dX, dW). Memory-bound kernels report the bytes they must move per second. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_gpu.h"
#include "kernels.h"
#include "rng.h"
#include "safetensors.h"

/* Random normal bf16 (scale s) in device memory. */
static void *dev_randn(size_t n, float s, uint64_t seed) {
    rlvr_err e = {{0}};
    uint16_t *h = malloc(n * 2);
    void *d = kern_malloc(n * 2, &e);
    if (!h || !d) {
        fprintf(stderr, "bench_kernels: %s\n", d ? "out of memory" : e.msg);
        exit(1);
    }
    rng_stream r;
    rng_stream_init(&r, seed, 0);
    for (size_t i = 0; i < n; i++) h[i] = st_f32_to_bf16(s * rng_stream_normal(&r));
    if (kern_memcpy_h2d(d, h, n * 2, &e) != 0) {
        fprintf(stderr, "bench_kernels: %s\n", e.msg);
        exit(1);
    }
    free(h);
    return d;
}

static void *dev_zeros(size_t bytes) {
    rlvr_err e = {{0}};
    void *d = kern_malloc(bytes, &e), *h = calloc(1, bytes);
    if (!d || !h || kern_memcpy_h2d(d, h, bytes, &e) != 0) {
        fprintf(stderr, "bench_kernels: %s\n", e.msg[0] ? e.msg : "out of memory");
        exit(1);
    }
    free(h);
    return d;
}

/* Median seconds of `iters` synchronized runs after two warm-ups. */
static double time_it(bench_gpu_fn fn, void *ctx, int iters) { return bench_gpu_median_s(fn, ctx, iters, "bench_kernels"); }

typedef struct bench {
    kern_blas *blas;
    int T, C, I, H, KV, D, V, chunk, n_seqs, L;
    void *x, *w_up, *up, *dup, *dx, *q, *k, *v, *att, *datt, *dq, *dk, *dv, *xn, *w_head, *norm_w, *gate, *h;
    float *dw_up, *lse, *att_scratch, *logz, *logp, *ent, *dlogp, *dxn, *dw_head, *rstd, *dnorm_w, *norm_scratch;
    int *cu, *targets, *pos;
    float *inv_freq;
    void *lm_ws;
} bench;

static int linear_fwd(void *c, rlvr_err *e) {
    bench *b = c;
    return kern_matmul_forward(b->blas, KERN_BF16, b->up, b->x, b->w_up, NULL, b->T, b->C, b->I, NULL, e);
}
static int linear_bwd(void *c, rlvr_err *e) {
    bench *b = c;
    return kern_matmul_backward(b->blas, KERN_BF16, b->dx, 1, b->dw_up, NULL, b->dup, b->x, b->w_up, b->T, b->C, b->I,
                                NULL, e);
}
static int attn_fwd(void *c, rlvr_err *e) {
    bench *b = c;
    return kern_attention_forward(KERN_BF16, b->att, b->lse, b->q, b->k, b->v, b->cu, b->n_seqs, b->L, b->H, b->KV,
                                  b->D, NULL, e);
}
static int attn_bwd(void *c, rlvr_err *e) {
    bench *b = c;
    return kern_attention_backward(KERN_BF16, b->dq, b->dk, b->dv, b->datt, b->q, b->k, b->v, b->att, b->lse, b->cu,
                                   b->n_seqs, b->L, b->T, b->H, b->KV, b->D, b->att_scratch, NULL, e);
}
static int lm_fwd(void *c, rlvr_err *e) {
    bench *b = c;
    return kern_lmhead_logprobs(b->blas, KERN_BF16, 0, b->logz, b->logp, b->ent, b->xn, b->w_head, b->targets, b->T,
                                b->C, b->V, b->chunk, b->lm_ws, NULL, NULL, NULL, e);
}
static int lm_bwd(void *c, rlvr_err *e) {
    bench *b = c;
    return kern_lmhead_backward(b->blas, KERN_BF16, 0, b->dxn, b->dw_head, b->xn, b->w_head, b->targets, b->dlogp,
                                b->dlogp, b->logz, b->ent, b->T, b->C, b->V, b->chunk, b->lm_ws, NULL, NULL, NULL, e);
}
static int norm_fwd(void *c, rlvr_err *e) {
    bench *b = c;
    return kern_rmsnorm_forward(KERN_BF16, b->xn, b->rstd, b->x, b->norm_w, b->T, b->C, 1e-6f, NULL, e);
}
static int norm_bwd(void *c, rlvr_err *e) {
    bench *b = c;
    return kern_rmsnorm_backward(KERN_BF16, b->dx, b->dnorm_w, b->xn, b->x, b->norm_w, b->rstd, b->T, b->C,
                                 b->norm_scratch, NULL, e);
}
static int swiglu_fwd(void *c, rlvr_err *e) {
    bench *b = c;
    return kern_swiglu_forward(KERN_BF16, b->h, b->gate, b->up, (size_t)b->T * b->I, NULL, e);
}
static int rope_fwd(void *c, rlvr_err *e) {
    bench *b = c;
    return kern_rope_forward(KERN_BF16, b->q, b->inv_freq, b->pos, b->T, b->H, b->D, NULL, e);
}

int main(int argc, char **argv) {
    int B = 8, L = 1024, iters = 20, chunk = 16384, H = 14, KV = 2, D = 64;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--batch") == 0) B = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seq") == 0) L = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--iters") == 0) iters = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--chunk") == 0) chunk = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--heads") == 0) H = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--kv-heads") == 0) KV = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--head-dim") == 0) D = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_kernels: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (B < 1 || L < 1 || iters < 1 || chunk < 1 || H < 1 || KV < 1 || H % KV || D < 2 || D % 2) {
        fprintf(stderr, "bench_kernels: --batch, --seq, --iters, --chunk, --heads and --kv-heads must be >= 1, "
                        "--heads a multiple of --kv-heads, --head-dim even\n");
        return 2;
    }
    if (!bench_gpu_present()) return 0;
    rlvr_err e = {{0}};
    bench b = {0};
    b.blas = kern_blas_new(&e);
    if (!b.blas) {
        fprintf(stderr, "bench_kernels: %s\n", e.msg);
        return 1;
    }
    b.n_seqs = B, b.L = L, b.T = B * L, b.C = 896, b.I = 4864, b.H = H, b.KV = KV, b.D = D, b.V = 151936;
    b.chunk = chunk;
    const size_t T = (size_t)b.T, C = (size_t)b.C, I = (size_t)b.I, HD = (size_t)b.H * b.D, KVD = (size_t)b.KV * b.D;
    b.x = dev_randn(T * C, 1.0f, 1), b.w_up = dev_randn(I * C, 0.02f, 2), b.up = dev_randn(T * I, 1.0f, 3);
    b.dup = dev_randn(T * I, 1.0f, 4), b.dx = dev_zeros(T * C * 2), b.dw_up = dev_zeros(I * C * 4);
    b.q = dev_randn(T * HD, 1.0f, 5), b.k = dev_randn(T * KVD, 1.0f, 6), b.v = dev_randn(T * KVD, 1.0f, 7);
    b.att = dev_zeros(T * HD * 2), b.datt = dev_randn(T * HD, 1.0f, 8), b.dq = dev_zeros(T * HD * 2);
    b.dk = dev_zeros(T * KVD * 2), b.dv = dev_zeros(T * KVD * 2), b.lse = dev_zeros(T * b.H * 4);
    b.att_scratch = dev_zeros(kern_attention_backward_scratch(b.T, b.H, b.KV, b.D));
    b.xn = dev_randn(T * C, 1.0f, 9), b.w_head = dev_randn((size_t)b.V * C, 0.05f, 10);
    b.logz = dev_zeros(T * 4), b.logp = dev_zeros(T * 4), b.ent = dev_zeros(T * 4), b.dlogp = dev_zeros(T * 4);
    b.dxn = dev_zeros(T * C * 4), b.dw_head = dev_zeros((size_t)b.V * C * 4);
    b.lm_ws = dev_zeros(kern_lmhead_workspace(KERN_BF16, b.T, chunk));
    b.norm_w = dev_randn(C, 1.0f, 11), b.rstd = dev_zeros(T * 4), b.dnorm_w = dev_zeros(C * 4);
    b.norm_scratch = dev_zeros(kern_rmsnorm_backward_scratch(b.T, b.C));
    b.gate = dev_randn(T * I, 1.0f, 12), b.h = dev_zeros(T * I * 2);
    int *cu = malloc((size_t)(B + 1) * sizeof(int)), *targets = malloc(T * sizeof(int)), *pos = malloc(T * sizeof(int));
    float *inv_freq = malloc((size_t)b.D / 2 * sizeof(float));
    for (int s = 0; s <= B; s++) cu[s] = s * L;
    for (size_t t = 0; t < T; t++) targets[t] = (int)((t * 7919u) % (size_t)b.V), pos[t] = (int)(t % (size_t)L);
    for (int i = 0; i < b.D / 2; i++) inv_freq[i] = 1.0f / powf(1000000.0f, 2.0f * i / b.D);
    b.cu = dev_zeros((size_t)(B + 1) * sizeof(int)), b.targets = dev_zeros(T * sizeof(int));
    b.pos = dev_zeros(T * sizeof(int)), b.inv_freq = dev_zeros((size_t)b.D / 2 * sizeof(float));
    if (kern_memcpy_h2d(b.cu, cu, (size_t)(B + 1) * sizeof(int), &e) || kern_memcpy_h2d(b.targets, targets, T * 4, &e) ||
        kern_memcpy_h2d(b.pos, pos, T * 4, &e) || kern_memcpy_h2d(b.inv_freq, inv_freq, (size_t)b.D / 2 * 4, &e)) {
        fprintf(stderr, "bench_kernels: %s\n", e.msg);
        return 1;
    }
    /* dlogp = 1 for every token (any non-zero weights do) */
    float *ones = malloc(T * 4);
    for (size_t t = 0; t < T; t++) ones[t] = 1.0f;
    kern_memcpy_h2d(b.dlogp, ones, T * 4, &e);
    free(ones);

    printf("shape: %d sequences x %d tokens (T = %d), attention %d/%d heads x %d, bf16, median of %d runs\n", B, L,
           b.T, H, KV, D, iters);
    double lin = 2.0 * T * C * I, att = 0;
    for (int s = 0; s < B; s++) att += 4.0 * b.D * b.H * (double)L * (L + 1) / 2;
    double lm = 2.0 * T * C * b.V;
    struct {
        const char *name;
        bench_gpu_fn fn;
        double flops, bytes;
    } rows[] = {
        {"linear 896->4864 forward", linear_fwd, lin, 0},
        {"linear 896->4864 backward (dX, dW)", linear_bwd, 2 * lin, 0},
        {"attention forward", attn_fwd, att, 0},
        {"attention backward", attn_bwd, 2.5 * att, 0},
        {"LM head + log-probs forward", lm_fwd, lm, 0},
        {"LM head + log-probs backward", lm_bwd, 3 * lm, 0},
        {"RMSNorm forward", norm_fwd, 0, (double)T * C * 2 * 2},
        {"RMSNorm backward", norm_bwd, 0, (double)T * C * 2 * 4},
        {"SwiGLU forward", swiglu_fwd, 0, (double)T * I * 2 * 3},
        {"RoPE forward (q)", rope_fwd, 0, (double)T * HD * 2 * 2},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double t = time_it(rows[i].fn, &b, iters);
        if (rows[i].flops > 0)
            printf("%-38s %9.3f ms %8.1f TFLOP/s\n", rows[i].name, t * 1e3, rows[i].flops / t * 1e-12);
        else
            printf("%-38s %9.3f ms %8.1f GB/s\n", rows[i].name, t * 1e3, rows[i].bytes / t * 1e-9);
    }
    free(cu), free(targets), free(pos), free(inv_freq);
    kern_blas_free(b.blas);
    return 0;
}
