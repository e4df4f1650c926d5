/* host_kernels.c - every launcher of kernels/kernels.h on host memory through its CPU
 * twin in core/cpu_ops.c, for testing what runs on top of the kernels (the GPU model's
 * orchestration in kernels/model_gpu.c, and `device = "cuda"` end to end) on machines
 * without a GPU. "Device memory" is host memory; bf16 buffers hold bf16 bits, widened to
 * fp32 before each twin runs and rounded to nearest even when stored, as the kernels
 * load and store them (arithmetic inside a kernel is fp32 here everywhere, where the real
 * attention kernels round P and dS to bf16 on the tensor cores). Linked in place of
 * rlvr_kernels: it defines every symbol kernels.h declares, so no object of the real
 * library is pulled in. Not the kernels' test: tests/gpu/ compares those with the twins. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "kernels.h"
#include "rng.h"
#include "safetensors.h"
#include "sampling.h"

/* The attention, paged attention, sampling, batch-invariant product, RoPE and SwiGLU launchers are weak:
 * the scripts of tests/gpu/emu link the real kernels (the .cu files compiled for the host,
 * on fibers) over them. */
#define REPLACEABLE __attribute__((weak))

int kern_device_count(rlvr_err *e) { return 1; }

int kern_device_info_get(int device, kern_device_info *info, rlvr_err *e) {
    if (device != 0) return err_set(e, "host emulation: no device %d", device);
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "host emulation of the CUDA kernels");
    info->free_memory = info->total_memory = (size_t)64 << 30;
    return 0;
}

/* Fresh "device" memory is filled with a NaN pattern (0x7fc0 bf16 / 0x7fc07fc0 fp32), so
 * that reading what no one wrote shows up as NaN in the results. */
void *kern_malloc(size_t bytes, rlvr_err *e) {
    uint16_t *p = malloc(bytes ? bytes : 1);
    if (!p) {
        err_set(e, "host emulation: out of memory for %zu bytes", bytes);
        return NULL;
    }
    for (size_t i = 0; i < bytes / 2; i++) p[i] = 0x7fc0;
    return p;
}

void kern_free(void *p) { free(p); }
int kern_memcpy_h2d(void *dst, const void *src, size_t bytes, rlvr_err *e) { return memcpy(dst, src, bytes), 0; }
int kern_memcpy_d2h(void *dst, const void *src, size_t bytes, rlvr_err *e) { return memcpy(dst, src, bytes), 0; }
int kern_memcpy_d2d(void *dst, const void *src, size_t bytes, rlvr_err *e) { return memcpy(dst, src, bytes), 0; }
int kern_synchronize(rlvr_err *e) { return 0; }
int kern_memzero(void *p, size_t bytes, void *stream, rlvr_err *e) { return memset(p, 0, bytes), 0; }
size_t kern_dtype_size(kern_dtype t) { return t == KERN_BF16 ? 2 : 4; }

/* Streams are a name only (launches here run at once); nothing can be captured, so the
 * callers run their launches directly (graph-captured paths are tested on a GPU). */
void *kern_stream_new(rlvr_err *e) {
    static int stream;
    return &stream;
}
void kern_stream_free(void *stream) {}
int kern_graphs_supported(void) { return 0; }
int kern_graph_begin(void *stream, rlvr_err *e) { return err_set(e, "host emulation: no CUDA graphs"); }
int kern_graph_end(void *stream, kern_graph **graph, rlvr_err *e) {
    *graph = NULL;
    return err_set(e, "host emulation: no CUDA graphs");
}
int kern_graph_launch(kern_graph *graph, void *stream, rlvr_err *e) {
    return err_set(e, "host emulation: no CUDA graphs");
}
void kern_graph_free(kern_graph *graph) {}
/* launches run at once, in call order: every wait is already satisfied */
void *kern_event_new(rlvr_err *e) {
    static int event;
    return &event;
}
void kern_event_free(void *event) {}
int kern_stream_wait(void *waiter, void *waited, void *event, rlvr_err *e) { return 0; }

struct kern_blas {
    int unused;
};
kern_blas *kern_blas_new(rlvr_err *e) {
    kern_blas *b = calloc(1, sizeof *b);
    if (!b) err_set(e, "out of memory");
    return b;
}
void kern_blas_free(kern_blas *b) { free(b); }

/* ---- dtype plumbing: each launcher works on fp32 views of its buffers ---------------------- */

/* An fp32 view of n values of dtype dt at p: p itself for fp32, else a widened copy
 * (read = 0: uninitialized, for outputs that are only written). */
static float *view(kern_dtype dt, const void *p, size_t n, int read) {
    if (!p) return NULL;
    if (dt == KERN_F32) return (float *)p;
    float *f = calloc(n ? n : 1, sizeof *f); /* zeroed: -O3 cannot see that outputs are written */
    if (!f) abort(); /* a test helper: out of memory ends the test */
    if (read)
        for (size_t i = 0; i < n; i++) f[i] = st_bf16_to_f32(((const uint16_t *)p)[i]);
    return f;
}

/* Ends a view: an output is rounded back into p; the copy is freed. */
static void done(kern_dtype dt, void *p, float *f, size_t n, int write) {
    if (!p || dt == KERN_F32) return;
    if (write)
        for (size_t i = 0; i < n; i++) ((uint16_t *)p)[i] = st_f32_to_bf16(f[i]);
    free(f);
}

/* ---- launchers ------------------------------------------------------------------------------- */

int kern_gemm(kern_blas *blas, kern_dtype ab, kern_dtype c, int trans_a, int trans_b, int M, int N, int K,
              float alpha, const void *A, int lda, const void *B, int ldb, float beta, void *C, int ldc,
              const void *bias, void *stream, rlvr_err *e) {
    size_t na = (size_t)(trans_a ? K : M) * lda, nb = (size_t)(trans_b ? N : K) * ldb, nc = (size_t)M * ldc;
    float *a = view(ab, A, na, 1), *b = view(ab, B, nb, 1), *cc = view(c, C, nc, 1), *bi = view(c, bias, N, 1);
    cpu_sgemm(trans_a, trans_b, M, N, K, alpha, a, lda, b, ldb, beta, cc, ldc);
    if (bi)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) cc[(size_t)i * ldc + j] += bi[j];
    done(ab, (void *)A, a, na, 0);
    done(ab, (void *)B, b, nb, 0);
    done(c, C, cc, nc, 1);
    done(c, (void *)bias, bi, N, 0);
    return 0;
}

int kern_matmul_forward(kern_blas *blas, kern_dtype dt, void *out, const void *inp, const void *w, const void *bias,
                        int T, int IC, int OC, void *stream, rlvr_err *e) {
    size_t no = (size_t)T * OC, ni = (size_t)T * IC, nw = (size_t)OC * IC;
    float *o = view(dt, out, no, 0), *i = view(dt, inp, ni, 1), *ww = view(dt, w, nw, 1), *b = view(dt, bias, OC, 1);
    matmul_forward(o, i, ww, b, T, IC, OC);
    done(dt, out, o, no, 1);
    done(dt, (void *)inp, i, ni, 0);
    done(dt, (void *)w, ww, nw, 0);
    done(dt, (void *)bias, b, OC, 0);
    return 0;
}

/* Each element summed over k in increasing order from 0, then + bias, then rounded: the
 * same order for any T, as the kernel's. Weak, so emulate_gemm_inv.sh's kernel can stand in. */
REPLACEABLE int kern_matmul_invariant(kern_dtype out_dt, void *out, const void *inp, const void *w, const void *bias,
                                      int T, int IC, int OC, int tile, void *stream, rlvr_err *e) {
    if (T <= 0 || IC <= 0 || OC <= 0 || IC % 8 || (uintptr_t)inp % 16 || (uintptr_t)w % 16 || (uintptr_t)out % 8 ||
        tile < KERN_INV_TILE_AUTO || tile > KERN_INV_TILE_LARGE)
        return err_set(e, "matmul_invariant: bad call T=%d IC=%d OC=%d tile %d (IC a multiple of 8, aligned operands)",
                       T, IC, OC, tile);
    const uint16_t *x = inp, *ww = w, *b = bias;
    for (int t = 0; t < T; t++)
        for (int o = 0; o < OC; o++) {
            float acc = 0.0f;
            for (int k = 0; k < IC; k++)
                acc += st_bf16_to_f32(x[(size_t)t * IC + k]) * st_bf16_to_f32(ww[(size_t)o * IC + k]);
            if (b) acc += st_bf16_to_f32(b[o]);
            if (out_dt == KERN_BF16)
                ((uint16_t *)out)[(size_t)t * OC + o] = st_f32_to_bf16(acc);
            else
                ((float *)out)[(size_t)t * OC + o] = acc;
        }
    return 0;
}

int kern_matmul_backward(kern_blas *blas, kern_dtype dt, void *dinp, int accumulate, float *dw, float *dbias,
                         const void *dout, const void *inp, const void *w, int T, int IC, int OC, void *stream,
                         rlvr_err *e) {
    size_t no = (size_t)T * OC, ni = (size_t)T * IC, nw = (size_t)OC * IC;
    if (dinp && !accumulate) memset(dinp, 0, ni * kern_dtype_size(dt)); /* written over: as if zeroed */
    float *di = view(dt, dinp, ni, 1), *d = view(dt, dout, no, 1), *i = view(dt, inp, ni, 1), *ww = view(dt, w, nw, 1);
    matmul_backward(di, dw, dbias, d, i, ww, T, IC, OC);
    done(dt, dinp, di, ni, 1);
    done(dt, (void *)dout, d, no, 0);
    done(dt, (void *)inp, i, ni, 0);
    done(dt, (void *)w, ww, nw, 0);
    return 0;
}

int kern_embedding_forward(kern_dtype dt, void *out, const void *table, const int *tokens, int T, int C,
                           void *stream, rlvr_err *e) {
    size_t s = kern_dtype_size(dt);
    for (int t = 0; t < T; t++) memcpy((char *)out + (size_t)t * C * s, (const char *)table + (size_t)tokens[t] * C * s, C * s);
    return 0;
}

int kern_embedding_backward(kern_dtype dt, float *dtable, const void *dout, const int *order, const int *starts,
                            const int *unique, int n_unique, int C, void *stream, rlvr_err *e) {
    /* the kernel's order: each distinct token's rows in increasing t */
    for (int u = 0; u < n_unique; u++)
        for (int i = starts[u]; i < starts[u + 1]; i++)
            for (int c = 0; c < C; c++) {
                size_t at = (size_t)order[i] * C + c;
                float g = dt == KERN_F32 ? ((const float *)dout)[at] : st_bf16_to_f32(((const uint16_t *)dout)[at]);
                dtable[(size_t)unique[u] * C + c] += g;
            }
    return 0;
}

int kern_rmsnorm_forward(kern_dtype dt, void *out, float *rstd, const void *x, const void *weight, int T, int C,
                         float eps, void *stream, rlvr_err *e) {
    size_t n = (size_t)T * C;
    float *o = view(dt, out, n, 0), *xx = view(dt, x, n, 1), *w = view(dt, weight, C, 1);
    rmsnorm_forward(o, rstd, xx, w, T, C, eps);
    done(dt, out, o, n, 1);
    done(dt, (void *)x, xx, n, 0);
    done(dt, (void *)weight, w, C, 0);
    return 0;
}

int kern_residual_rmsnorm_forward(kern_dtype dt, void *res_out, void *out, float *rstd, const void *x, const void *y,
                                  const void *weight, int T, int C, float eps, void *stream, rlvr_err *e) {
    if (kern_residual_add(dt, res_out, x, y, (size_t)T * C, stream, e) != 0) return -1;
    return kern_rmsnorm_forward(dt, out, rstd, res_out, weight, T, C, eps, stream, e); /* reads the rounded sum */
}

int kern_rmsnorm_backward(kern_dtype dt, void *dx, float *dweight, const void *dout, const void *x,
                          const void *weight, const float *rstd, int T, int C, void *scratch, void *stream,
                          rlvr_err *e) {
    size_t n = (size_t)T * C;
    float *d = view(dt, dx, n, 1), *g = view(dt, dout, n, 1), *xx = view(dt, x, n, 1), *w = view(dt, weight, C, 1);
    rmsnorm_backward(d, dweight, g, xx, w, rstd, T, C);
    done(dt, dx, d, n, 1);
    done(dt, (void *)dout, g, n, 0);
    done(dt, (void *)x, xx, n, 0);
    done(dt, (void *)weight, w, C, 0);
    return 0;
}

size_t kern_rmsnorm_backward_scratch(int T, int C) { return 1; }

int kern_residual_add(kern_dtype dt, void *out, const void *a, const void *b, size_t n, void *stream, rlvr_err *e) {
    float *fa = view(dt, a, n, 1), *fb = view(dt, b, n, 1), *fo = view(dt, out, n, 0);
    for (size_t i = 0; i < n; i++) fo[i] = fa[i] + fb[i];
    /* out may alias a or b: both inputs are read before anything is stored */
    done(dt, out, fo, n, 1);
    done(dt, (void *)a, fa, n, 0);
    done(dt, (void *)b, fb, n, 0);
    return 0;
}

int kern_cast(kern_dtype to, void *dst, kern_dtype from, const void *src, size_t n, void *stream, rlvr_err *e) {
    float *s = view(from, src, n, 1), *d = view(to, dst, n, 0);
    if (d != s) memmove(d, s, n * sizeof(float));
    done(to, dst, d, n, 1);
    done(from, (void *)src, s, n, 0);
    return 0;
}

REPLACEABLE
int kern_rope_forward(kern_dtype dt, void *x, const float *inv_freq, const int *pos, int T, int NH, int D,
                      void *stream, rlvr_err *e) {
    size_t n = (size_t)T * NH * D;
    float *f = view(dt, x, n, 1);
    rope_forward(f, inv_freq, pos, T, NH, D);
    done(dt, x, f, n, 1);
    return 0;
}

REPLACEABLE
int kern_rope_backward(kern_dtype dt, void *dx, const float *inv_freq, const int *pos, int T, int NH, int D,
                       void *stream, rlvr_err *e) {
    size_t n = (size_t)T * NH * D;
    float *f = view(dt, dx, n, 1);
    rope_backward(f, inv_freq, pos, T, NH, D);
    done(dt, dx, f, n, 1);
    return 0;
}

REPLACEABLE
int kern_swiglu_forward(kern_dtype dt, void *h, const void *gate, const void *up, size_t n, void *stream,
                        rlvr_err *e) {
    float *fh = view(dt, h, n, 0), *g = view(dt, gate, n, 1), *u = view(dt, up, n, 1);
    swiglu_forward(fh, g, u, n);
    done(dt, h, fh, n, 1);
    done(dt, (void *)gate, g, n, 0);
    done(dt, (void *)up, u, n, 0);
    return 0;
}

REPLACEABLE
int kern_swiglu_forward_stacked(kern_dtype dt, void *h, const void *gate_up, int rows, int I, void *stream,
                                rlvr_err *e) {
    const size_t n = (size_t)rows * I;
    float *fh = view(dt, h, n, 0), *gu = view(dt, gate_up, 2 * n, 1);
    for (int t = 0; t < rows; t++)
        swiglu_forward(fh + (size_t)t * I, gu + (size_t)t * 2 * I, gu + (size_t)t * 2 * I + I, (size_t)I);
    done(dt, h, fh, n, 1);
    done(dt, (void *)gate_up, gu, 2 * n, 0);
    return 0;
}

REPLACEABLE
int kern_swiglu_backward(kern_dtype dt, void *dgate, void *dup, const void *dh, const void *gate, const void *up,
                         size_t n, void *stream, rlvr_err *e) {
    float *dg = view(dt, dgate, n, 0), *du = view(dt, dup, n, 0), *d = view(dt, dh, n, 1), *g = view(dt, gate, n, 1),
          *u = view(dt, up, n, 1);
    swiglu_backward(dg, du, d, g, u, n);
    done(dt, dgate, dg, n, 1);
    done(dt, dup, du, n, 1);
    done(dt, (void *)dh, d, n, 0);
    done(dt, (void *)gate, g, n, 0);
    done(dt, (void *)up, u, n, 0);
    return 0;
}

REPLACEABLE
size_t kern_lmhead_workspace(kern_dtype dt, int T, int chunk) {
    return (size_t)LMHEAD_ROW_BLOCK * LMHEAD_VOCAB_CHUNK * sizeof(float);
}

/* probs and chunk_max are accepted and left alone: the twin always works from the logits
 * in fp32 (what the kept bf16 probabilities approximate). */
/* One row's logz, logp of target (NaN outside [0, V)) and entropy from its logits, in one
 * fixed order: the invariant LM head and kern_lmhead_logprobs_of_logits share it, as the
 * kernels share their fold. */
static void row_logprobs(const float *row, int V, int target, float *logz, float *logp, float *entropy) {
    float mx = -INFINITY;
    for (int v = 0; v < V; v++) mx = row[v] > mx ? row[v] : mx;
    double s = 0, w = 0;
    for (int v = 0; v < V; v++) {
        const double p = exp((double)row[v] - mx);
        s += p, w += p * row[v];
    }
    const double lz = mx + log(s);
    if (logz) *logz = (float)lz;
    if (logp) *logp = target >= 0 && target < V ? (float)(row[target] - lz) : NAN;
    if (entropy) *entropy = (float)(lz - w / s);
}

/* The invariant LM head: each row's logits as kern_matmul_invariant makes them, then
 * row_logprobs. */
static int lmhead_invariant(float *logz, float *logp, float *entropy, const void *x, const void *w,
                            const int *targets, int T, int C, int V, rlvr_err *e) {
    float *row = malloc((size_t)V * sizeof *row);
    if (!row) return err_set(e, "host emulation: out of memory");
    for (int t = 0; t < T; t++) {
        if (kern_matmul_invariant(KERN_F32, row, (const uint16_t *)x + (size_t)t * C, w, NULL, 1, C, V,
                                  KERN_INV_TILE_AUTO, NULL, e) != 0) {
            free(row);
            return -1;
        }
        row_logprobs(row, V, targets ? targets[t] : -1, logz ? logz + t : NULL, logp ? logp + t : NULL,
                     entropy ? entropy + t : NULL);
    }
    free(row);
    return 0;
}

REPLACEABLE
int kern_lmhead_logprobs_of_logits(float *logz, float *logp, const float *logits, const int *targets, int T, int V,
                                   int chunk, void *workspace, void *stream, rlvr_err *e) {
    if (T <= 0 || V <= 0 || chunk <= 0 || (chunk % 8 && chunk < V))
        return err_set(e, "lmhead_logprobs_of_logits: bad shape T=%d V=%d chunk=%d", T, V, chunk);
    for (int t = 0; t < T; t++)
        row_logprobs(logits + (size_t)t * V, V, targets ? targets[t] : -1, logz ? logz + t : NULL,
                     logp ? logp + t : NULL, NULL);
    return 0;
}

REPLACEABLE
int kern_lmhead_logprobs(kern_blas *blas, kern_dtype dt, int invariant, float *logz, float *logp, float *entropy,
                         const void *x, const void *w, const int *targets, int T, int C, int V, int chunk,
                         void *workspace, void *probs, float *chunk_max, void *stream, rlvr_err *e) {
    if (invariant) {
        if (dt != KERN_BF16) return err_set(e, "lmhead_logprobs: the batch-invariant product is bf16 only");
        return lmhead_invariant(logz, logp, entropy, x, w, targets, T, C, V, e);
    }
    size_t nx = (size_t)T * C, nw = (size_t)V * C;
    float *fx = view(dt, x, nx, 1), *fw = view(dt, w, nw, 1);
    float *lz = logz ? logz : malloc((size_t)T * sizeof *lz);
    if (!lz) abort();
    lmhead_logprobs(lz, logp, entropy, fx, fw, targets, T, C, V);
    if (!logz) free(lz);
    done(dt, (void *)x, fx, nx, 0);
    done(dt, (void *)w, fw, nw, 0);
    return 0;
}

REPLACEABLE
int kern_lmhead_backward(kern_blas *blas, kern_dtype dt, int invariant, float *dx, float *dw, const void *x,
                         const void *w, const int *targets, const float *dlogp, const float *dentropy,
                         const float *logz, const float *entropy, int T, int C, int V, int chunk, void *workspace,
                         const void *probs, const float *chunk_max, void *stream, rlvr_err *e) {
    size_t nx = (size_t)T * C, nw = (size_t)V * C;
    float *fx = view(dt, x, nx, 1), *fw = view(dt, w, nw, 1);
    float *tdx = dx ? dx : calloc(nx, sizeof *tdx), *tdw = dw ? dw : calloc(nw, sizeof *tdw);
    if (!tdx || !tdw) abort();
    lmhead_backward(tdx, tdw, fx, fw, targets, dlogp, dentropy, logz, entropy, T, C, V, workspace);
    if (!dx) free(tdx);
    if (!dw) free(tdw);
    done(dt, (void *)x, fx, nx, 0);
    done(dt, (void *)w, fw, nw, 0);
    return 0;
}

REPLACEABLE
int kern_attention_forward(kern_dtype dt, void *out, float *lse, const void *q, const void *k, const void *v,
                           const int *cu_seqlens, int n_seqs, int max_seqlen, int H, int KV, int D, void *stream,
                           rlvr_err *e) {
    size_t T = (size_t)cu_seqlens[n_seqs], nq = T * H * D, nk = T * KV * D;
    float *o = view(dt, out, nq, 0), *fq = view(dt, q, nq, 1), *fk = view(dt, k, nk, 1), *fv = view(dt, v, nk, 1);
    attention_forward(o, lse, fq, fk, fv, cu_seqlens, n_seqs, H, KV, D);
    done(dt, out, o, nq, 1);
    done(dt, (void *)q, fq, nq, 0);
    done(dt, (void *)k, fk, nk, 0);
    done(dt, (void *)v, fv, nk, 0);
    return 0;
}

REPLACEABLE
int kern_attention_backward(kern_dtype dt, void *dq, void *dk, void *dv, const void *dout, const void *q,
                            const void *k, const void *v, const void *out, const float *lse, const int *cu_seqlens,
                            int n_seqs, int max_seqlen, int T, int H, int KV, int D, void *scratch, void *stream,
                            rlvr_err *e) {
    size_t nq = (size_t)T * H * D, nk = (size_t)T * KV * D;
    float *fdq = view(dt, dq, nq, 1), *fdk = view(dt, dk, nk, 1), *fdv = view(dt, dv, nk, 1),
          *fdo = view(dt, dout, nq, 1), *fq = view(dt, q, nq, 1), *fk = view(dt, k, nk, 1), *fv = view(dt, v, nk, 1),
          *fo = view(dt, out, nq, 1);
    attention_backward(fdq, fdk, fdv, fdo, fq, fk, fv, fo, lse, cu_seqlens, n_seqs, H, KV, D);
    done(dt, dq, fdq, nq, 1);
    done(dt, dk, fdk, nk, 1);
    done(dt, dv, fdv, nk, 1);
    done(dt, (void *)dout, fdo, nq, 0);
    done(dt, (void *)q, fq, nq, 0);
    done(dt, (void *)k, fk, nk, 0);
    done(dt, (void *)v, fv, nk, 0);
    done(dt, (void *)out, fo, nq, 0);
    return 0;
}

REPLACEABLE
size_t kern_attention_backward_scratch(int T, int H, int KV, int D) {
    (void)T, (void)H, (void)KV, (void)D;
    return 1;
}

/* The clip workspace holds the factor kern_grad_norm computed. */
static double clip_factor(const void *workspace) { return *(const double *)workspace; }

static void scale_by(float *dst, const float *src, size_t n, double factor) {
    for (size_t i = 0; i < n; i++) dst[i] = factor < 1.0 ? (float)(src[i] * factor) : src[i];
}

int kern_adamw_step(float *params, void *params_bf16, const float *grads, void *clip_workspace, float *m, float *v,
                    size_t n, long long step, double lr, double beta1, double beta2, double eps, double weight_decay,
                    void *stream, rlvr_err *e) {
    if (step < 1) return err_set(e, "adamw: step must be >= 1 (got %lld)", step);
    float *g = NULL;
    if (clip_workspace) { /* scaled as read, grads left as they are */
        if (!(g = calloc(n ? n : 1, sizeof(float)))) return err_set(e, "host emulation: out of memory");
        scale_by(g, grads, n, clip_factor(clip_workspace));
    }
    adamw_update(params, g ? g : grads, m, v, n, step, lr, beta1, beta2, eps, weight_decay); /* the twin */
    free(g);
    if (params_bf16)
        for (size_t i = 0; i < n; i++) ((uint16_t *)params_bf16)[i] = st_f32_to_bf16(params[i]);
    return 0;
}

int kern_grad_norm(const float *grads, size_t n, double max_norm, void *workspace, double *norm_host, void *stream,
                   rlvr_err *e) {
    double sum = 0.0; /* clip_grad_norm's sum, without its scaling */
    for (size_t i = 0; i < n; i++) sum += (double)grads[i] * grads[i];
    double norm = sqrt(sum), coef = max_norm > 0 ? max_norm / (norm + 1e-6) : 1.0;
    *(double *)workspace = coef < 1.0 ? coef : 1.0;
    if (norm_host) *norm_host = norm;
    return 0;
}

int kern_grad_scale(float *grads, size_t n, void *workspace, void *stream, rlvr_err *e) {
    scale_by(grads, grads, n, clip_factor(workspace));
    return 0;
}

int kern_clip_grad_norm(float *grads, size_t n, double max_norm, void *workspace, double *norm_host, void *stream,
                        rlvr_err *e) {
    double norm = clip_grad_norm(grads, n, max_norm);
    if (norm_host) *norm_host = norm;
    return 0;
}

size_t kern_clip_grad_norm_workspace(void) { return sizeof(double); }

/* ---- paged KV cache: the pool and the batch arrays are host memory here ------------------- */

REPLACEABLE
int kern_kv_block_copy(kern_dtype dt, void *k_cache, void *v_cache, const int *copies, int n_copies, int n_layers,
                       size_t layer_stride, int n_blocks, int block_size, int KV, int D, void *stream, rlvr_err *e) {
    if (n_copies < 0 || n_layers <= 0 || (n_copies && !copies))
        return err_set(e, "host emulation: kv_block_copy: n_copies=%d n_layers=%d", n_copies, n_layers);
    const size_t es = kern_dtype_size(dt), row = (size_t)KV * D * es, block = row * block_size;
    for (int l = 0; l < n_layers; l++)
        for (int c = 0; c < n_copies; c++) {
            const int src = copies[3 * c], dst = copies[3 * c + 1], n = copies[3 * c + 2];
            if (src < 0 || src >= n_blocks || dst < 0 || dst >= n_blocks || n < 0 || n > block_size) continue;
            for (int kv = 0; kv < 2; kv++) {
                char *base = (char *)(kv ? v_cache : k_cache) + (size_t)l * layer_stride * es;
                memcpy(base + dst * block, base + src * block, (size_t)n * row);
            }
        }
    return 0;
}

REPLACEABLE
int kern_kv_write(kern_dtype dt, void *k_cache, void *v_cache, const void *k, const void *v, size_t ld,
                  const int *slot_mapping, int T, int n_blocks, int block_size, int KV, int D, void *stream,
                  rlvr_err *e) {
    if (T < 0 || ld < (size_t)KV * D) return err_set(e, "host emulation: kv_write: T=%d ld=%zu", T, ld);
    const size_t es = kern_dtype_size(dt), row = (size_t)KV * D * es;
    for (int t = 0; t < T; t++) {
        const int slot = slot_mapping[t];
        if (slot < 0 || slot >= n_blocks * block_size) continue;
        memcpy((char *)k_cache + slot * row, (const char *)k + t * ld * es, row);
        memcpy((char *)v_cache + slot * row, (const char *)v + t * ld * es, row);
    }
    return 0;
}

REPLACEABLE
int kern_rope_kv_write(kern_dtype dt, void *q, const void *k, const void *v, void *k_cache, void *v_cache,
                       const float *inv_freq, const int *pos, const int *slot_mapping, int T, int H, int KV, int D,
                       int n_blocks, int block_size, void *stream, rlvr_err *e) {
    /* k stays as it was: its rotation goes to the cache through a copy */
    const size_t kbytes = (size_t)T * KV * D * kern_dtype_size(dt);
    void *kr = malloc(kbytes ? kbytes : 1);
    if (!kr) return err_set(e, "host emulation: rope_kv_write: out of memory");
    memcpy(kr, k, kbytes);
    int rc = kern_rope_forward(dt, q, inv_freq, pos, T, H, D, stream, e);
    rc = rc ? rc : kern_rope_forward(dt, kr, inv_freq, pos, T, KV, D, stream, e);
    rc = rc ? rc : kern_kv_write(dt, k_cache, v_cache, kr, v, (size_t)KV * D, slot_mapping, T, n_blocks, block_size,
                                 KV, D, stream, e);
    free(kr);
    return rc;
}

/* Runs the twin of `form` (0 plain, 1 split, 2 cascade) on fp32 views of q and the pool. */
static int paged_twin(int form, kern_dtype dt, void *out, float *lse, const void *q, const void *k_cache,
                      const void *v_cache, const kern_paged_batch *b, int n_blocks, int block_size, int H, int KV,
                      int D, int split_len, rlvr_err *e) {
    if (!b || b->n_seqs <= 0 || b->T <= 0 || H <= 0 || KV <= 0 || H % KV || D <= 0 || block_size <= 0 ||
        (form == 1 && split_len <= 0) || (form == 2 && (!b->cu_groups || !b->prefix_blocks || b->n_groups <= 0)))
        return err_set(e, "host emulation: paged attention: bad arguments");
    int max_len = 1;
    for (int i = 0; i < b->n_seqs; i++)
        if (b->seq_lens[i] > max_len) max_len = b->seq_lens[i];
    const size_t nq = (size_t)b->T * H * D, pool = (size_t)n_blocks * block_size * KV * D;
    float *o = view(dt, out, nq, 0), *fq = view(dt, q, nq, 1), *fk = view(dt, k_cache, pool, 1),
          *fv = view(dt, v_cache, pool, 1);
    size_t n_scratch = form == 0 ? (size_t)max_len
                       : form == 1 ? (size_t)split_len + D
                                   : cascade_attention_scratch(b->T, H, D, max_len);
    float *scratch = malloc(n_scratch * sizeof(float));
    if (!scratch) abort();
    if (form == 0)
        paged_attention_forward(o, lse, fq, fk, fv, b->block_tables, b->max_blocks, b->cu_q, b->seq_lens, b->n_seqs,
                                block_size, H, KV, D, scratch);
    else if (form == 1)
        paged_attention_split_forward(o, lse, fq, fk, fv, b->block_tables, b->max_blocks, b->cu_q, b->seq_lens,
                                      b->n_seqs, block_size, H, KV, D, split_len, scratch);
    else
        cascade_attention_forward(o, lse, fq, fk, fv, b->block_tables, b->max_blocks, b->cu_q, b->seq_lens,
                                  b->n_seqs, b->cu_groups, b->prefix_blocks, b->n_groups, block_size, H, KV, D,
                                  scratch);
    free(scratch);
    done(dt, out, o, nq, 1);
    done(dt, (void *)q, fq, nq, 0);
    done(dt, (void *)k_cache, fk, pool, 0);
    done(dt, (void *)v_cache, fv, pool, 0);
    return 0;
}

REPLACEABLE
int kern_paged_attention_forward(kern_dtype dt, void *out, float *lse, const void *q, const void *k_cache,
                                 const void *v_cache, const kern_paged_batch *b, int n_blocks, int block_size, int H,
                                 int KV, int D, void *stream, rlvr_err *e) {
    return paged_twin(0, dt, out, lse, q, k_cache, v_cache, b, n_blocks, block_size, H, KV, D, 0, e);
}

REPLACEABLE
size_t kern_paged_attention_split_scratch(int T, int H, int D, int max_seq_len, int split_len) { return 1; }

REPLACEABLE
int kern_paged_attention_split_forward(kern_dtype dt, void *out, float *lse, const void *q, const void *k_cache,
                                       const void *v_cache, const kern_paged_batch *b, int n_blocks, int block_size,
                                       int H, int KV, int D, int split_len, void *scratch, void *stream,
                                       rlvr_err *e) {
    return paged_twin(1, dt, out, lse, q, k_cache, v_cache, b, n_blocks, block_size, H, KV, D, split_len, e);
}

REPLACEABLE
size_t kern_cascade_attention_scratch(int T, int H, int D, int max_seq_len, int split_len) { return 1; }

REPLACEABLE
int kern_cascade_attention_forward(kern_dtype dt, void *out, float *lse, const void *q, const void *k_cache,
                                   const void *v_cache, const kern_paged_batch *b, int n_blocks, int block_size,
                                   int H, int KV, int D, int split_len, void *scratch, void *stream, rlvr_err *e) {
    return paged_twin(2, dt, out, lse, q, k_cache, v_cache, b, n_blocks, block_size, H, KV, D, 0, e);
}

/* In the training attention's order: each sequence's keys gathered from the pool into a
 * packed sequence of seq_lens[i] positions whose last n_new rows of q are the new rows,
 * then attention_forward over it - the twin kern_attention_forward runs - so a row's out and
 * lse are the bits the host training forward gives the same position. */
REPLACEABLE
int kern_paged_attention_tc_forward(void *out, float *lse, const void *q, const void *k_cache, const void *v_cache,
                                    const kern_paged_batch *b, int n_blocks, int block_size, int H, int KV, int D,
                                    void *stream, rlvr_err *e) {
    if (!b || b->n_seqs <= 0 || b->T <= 0 || H <= 0 || KV <= 0 || H % KV || H / KV > 16 || (D != 64 && D != 128))
        return err_set(e, "host emulation: paged_attention_tc_forward: bad arguments (H / KV <= 16, D 64 or 128)");
    const uint16_t *qb = q, *kb = k_cache, *vb = v_cache;
    uint16_t *ob = out;
    for (int i = 0; i < b->n_seqs; i++) {
        const int n_new = b->cu_q[i + 1] - b->cu_q[i], len = b->seq_lens[i], pos0 = len - n_new;
        if (n_new == 0) continue;
        if (pos0 < 0 || len > b->max_blocks * block_size)
            return err_set(e, "host emulation: paged_attention_tc_forward: sequence %d has bad lengths", i);
        const size_t nq = (size_t)len * H * D, nk = (size_t)len * KV * D;
        float *fq = calloc(nq, sizeof *fq), *fk = malloc(nk * sizeof *fk), *fv = malloc(nk * sizeof *fv);
        float *fo = malloc(nq * sizeof *fo), *fl = malloc((size_t)len * H * sizeof *fl);
        if (!fq || !fk || !fv || !fo || !fl) abort();
        for (int p = 0; p < len; p++) {
            const int blk = b->block_tables[(size_t)i * b->max_blocks + p / block_size];
            if (blk < 0 || blk >= n_blocks) abort(); /* the engine's tables are consistent */
            const size_t slot = (size_t)blk * block_size + p % block_size;
            for (size_t j = 0; j < (size_t)KV * D; j++) {
                fk[(size_t)p * KV * D + j] = st_bf16_to_f32(kb[slot * KV * D + j]);
                fv[(size_t)p * KV * D + j] = st_bf16_to_f32(vb[slot * KV * D + j]);
            }
        }
        for (int r = 0; r < n_new; r++)
            for (size_t j = 0; j < (size_t)H * D; j++)
                fq[(size_t)(pos0 + r) * H * D + j] = st_bf16_to_f32(qb[(size_t)(b->cu_q[i] + r) * H * D + j]);
        const int cu[2] = {0, len};
        attention_forward(fo, fl, fq, fk, fv, cu, 1, H, KV, D);
        for (int r = 0; r < n_new; r++) {
            const size_t row = (size_t)(b->cu_q[i] + r) * H;
            for (size_t j = 0; j < (size_t)H * D; j++)
                ob[row * D + j] = st_f32_to_bf16(fo[(size_t)(pos0 + r) * H * D + j]);
            memcpy(lse + row, fl + (size_t)(pos0 + r) * H, (size_t)H * sizeof(float));
        }
        free(fq), free(fk), free(fv), free(fo), free(fl);
    }
    return 0;
}

/* ---- sampling: the CPU sampler itself (rollout/sampling.c), row by row ----------------------- */

REPLACEABLE
int kern_sample(const float *logits, int N, int V, const kern_sample_params *params, const uint64_t *seq_ids,
                const uint64_t *positions, uint64_t seed, int *tokens, float *logp, void *stream, rlvr_err *e) {
    sampler s;
    if (sample_init(&s, V, e) != 0) return -1;
    for (int i = 0; i < N; i++) {
        const sample_params p = {params[i].temperature, params[i].top_k, params[i].top_p, params[i].min_p};
        float lp;
        tokens[i] = sample_next(&s, logits + (size_t)i * V, &p, seed, seq_ids[i], positions[i], &lp);
        if (logp) logp[i] = lp;
    }
    sample_free(&s);
    return 0;
}

REPLACEABLE
int kern_rng_uniform(float *out, uint32_t *bits, const uint64_t *keys, int n, void *stream, rlvr_err *e) {
    for (int i = 0; i < n; i++) {
        const uint64_t seed = keys[3 * i], stream_id = keys[3 * i + 1], pos = keys[3 * i + 2];
        out[i] = rng_uniform(seed, stream_id, pos, 0);
        /* core/rng.c's block: key = seed, counter = (position, stream), low words first */
        const uint32_t ctr[4] = {(uint32_t)pos, (uint32_t)(pos >> 32), (uint32_t)stream_id, (uint32_t)(stream_id >> 32)};
        const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
        if (bits) rng_philox4x32(ctr, key, bits + 4 * (size_t)i);
    }
    return 0;
}
