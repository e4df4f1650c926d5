// lmhead.cu - the LM head with per-token log-probabilities and entropies, forward and
// backward, chunked over the vocabulary so that no [T, V] logits tensor ever exists
// (llm.c keeps the whole of it; with V = 151,936 that is 600 KB per token in fp32).
// CPU twins: lmhead_logprobs and lmhead_backward in core/cpu_ops.c, which model_logprobs
// and model_backward use.
//
// Per chunk of `chunk` vocabulary rows: one cuBLASLt GEMM writes logits[T, vc] (fp32,
// from bf16 or fp32 operands), then one block per token folds the chunk into that row's
// online-softmax state (running max m, s = sum exp(l - m), w = sum exp(l - m) l, the
// target's logit). s and w are kept in double across chunks, as the CPU twin does; each
// chunk's sums are fixed-order fp32 block sums, so the whole is deterministic.
//
// Backward recomputes each chunk's logits, turns them into dL/dlogits in place (rounded
// to bf16 into a second buffer when the operands are bf16) and accumulates
// dx += dl @ W_chunk and dW_chunk += dl^T @ x with two more GEMMs. A bf16 forward may
// instead keep, per chunk, exp(logits - the chunk's max) rounded to bf16 (half the bytes
// of fp32 logits, and 2^-9 relative error where bf16 logits would have |l| 2^-9): then the
// backward reads those and skips the recomputing GEMM, 2 GEMMs per chunk instead of 3.
#include "cuda_common.cuh"

#define LMHEAD_THREADS 256

// Workspace layout: [T] m (float), [T] target logit (float), [T] s, [T] w (double), then
// the fp32 logits chunk [T, chunk], then (bf16 only) the bf16 gradient chunk [T, chunk].
static size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

typedef struct lm_ws {
    float *m, *tl;
    double *s, *w;
    float *logits;
    void *dl16;
} lm_ws;

static lm_ws carve(void *workspace, int T, int chunk) {
    char *p = (char *)workspace;
    lm_ws ws;
    ws.m = (float *)p;
    p += align256((size_t)T * sizeof(float));
    ws.tl = (float *)p;
    p += align256((size_t)T * sizeof(float));
    ws.s = (double *)p;
    p += align256((size_t)T * sizeof(double));
    ws.w = (double *)p;
    p += align256((size_t)T * sizeof(double));
    ws.logits = (float *)p;
    p += align256((size_t)T * chunk * sizeof(float));
    ws.dl16 = p;
    return ws;
}

extern "C" size_t kern_lmhead_workspace(kern_dtype dt, int T, int chunk) {
    if (T <= 0 || chunk <= 0) return 0;
    size_t bytes = 2 * align256((size_t)T * sizeof(float)) + 2 * align256((size_t)T * sizeof(double)) +
                   align256((size_t)T * chunk * sizeof(float));
    if (dt == KERN_BF16) bytes += align256((size_t)T * chunk * 2);
    return bytes;
}

__global__ void lm_init_kernel(float *m, float *tl, double *s, double *w, int T) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= T) return;
    m[t] = -INFINITY;
    tl[t] = NAN; // stays NaN (and so does logp) when the target is outside [0, V)
    s[t] = 0.0;
    w[t] = 0.0;
}

// One block per row t: fold logits[t, 0..vc) (row stride ld; vocabulary v0..v0+vc) into the
// row's state,
// reading the chunk once: each thread keeps an online softmax over its own elements (W at
// a time: 8 when vc is a multiple of 8, 1 otherwise), rescaled to the chunk's max at the end.
template <int W>
__global__ void lm_fold_kernel(float *m, float *tl, double *s, double *w, const float *logits, int ld,
                               const int *targets, int vc, int v0, bf16 *probs, int ld_probs, float *cmax,
                               int cm_stride) {
    __shared__ float scratch[33];
    const int t = blockIdx.x;
    const float *row = logits + (size_t)t * ld;
    float tm = -INFINITY, ts = 0.0f, tw = 0.0f; // this thread's max, sum exp(l - tm), sum exp(l - tm) l
    for (int v = threadIdx.x * W; v < vc; v += blockDim.x * W) {
        float l[W];
        load_w<float, W>(row + v, l);
#pragma unroll
        for (int j = 0; j < W; j++) {
            if (l[j] > tm) { // exp(-inf) = 0 on a thread's first element
                const float f = expf(tm - l[j]);
                ts = ts * f + 1.0f;
                tw = tw * f + l[j];
                tm = l[j];
            } else if (l[j] > -INFINITY) {
                const float p = expf(l[j] - tm);
                ts += p;
                tw += p * l[j];
            }
        }
    }
    const float cm = block_max(tm, scratch);
    if (probs) { // kept for backward: exp(l - cm), the row reread from cache
        bf16 *prow = probs + (size_t)t * ld_probs + v0;
        for (int v = threadIdx.x * W; v < vc; v += blockDim.x * W) {
            float l[W];
            load_w<float, W>(row + v, l);
#pragma unroll
            for (int j = 0; j < W; j++) l[j] = cm > -INFINITY ? expf(l[j] - cm) : 0.0f;
            store_w<bf16, W>(prow + v, l);
        }
        if (threadIdx.x == 0) cmax[(size_t)t * cm_stride] = cm;
    }
    const float m_old = m[t], m_new = fmaxf(m_old, cm);
    const float f = tm > -INFINITY ? expf(tm - m_new) : 0.0f;
    const float cs = block_sum(ts * f, scratch);
    const float cw = block_sum(tw * f, scratch);
    if (threadIdx.x == 0) {
        // exp(-inf) = 0 on the first chunk: the empty state scales away.
        double fd = exp((double)m_old - (double)m_new);
        s[t] = s[t] * fd + cs;
        w[t] = w[t] * fd + cw;
        m[t] = m_new;
        int tg = targets ? targets[t] : -1;
        if (tg >= v0 && tg < v0 + vc) tl[t] = row[tg - v0];
    }
}

__global__ void lm_finish_kernel(float *logz, float *logp, float *entropy, const float *m, const float *tl,
                                 const double *s, const double *w, int T) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= T) return;
    double lz = (double)m[t] + log(s[t]);
    if (logz) logz[t] = (float)lz;
    if (logp) logp[t] = (float)((double)tl[t] - lz);
    if (entropy) entropy[t] = (float)(lz - w[t] / s[t]);
}

static int check_args(const char *fn, kern_dtype dt, int T, int C, int V, int chunk, const void *workspace,
                      rlvr_err *e) {
    if (T <= 0 || C <= 0 || V <= 0 || chunk <= 0)
        return err_set(e, "%s: bad shape T=%d C=%d V=%d chunk=%d", fn, T, C, V, chunk);
    if (dt != KERN_F32 && dt != KERN_BF16) return err_set(e, "%s: unknown dtype %d", fn, (int)dt);
    if (!workspace) return err_set(e, "%s: no workspace", fn);
    return 0;
}

// logits[T, vc] = x[T, C] @ w[v0:v0+vc, C]^T into the workspace: through the
// batch-invariant kernel when asked (bf16), so that a row's logits are the bits the rollout
// engine's kern_matmul_invariant gave it.
static int chunk_logits(kern_blas *blas, kern_dtype dt, int invariant, float *logits, const void *x,
                        const void *w_chunk, int T, int vc, int C, void *stream, rlvr_err *e) {
    if (invariant)
        return kern_matmul_invariant(KERN_F32, logits, x, w_chunk, NULL, T, C, vc, KERN_INV_TILE_AUTO, stream, e);
    return kern_gemm(blas, dt, KERN_F32, 0, 1, T, vc, C, 1.0f, x, C, w_chunk, C, 0.0f, logits, vc, NULL, stream, e);
}

// Folds chunk v0..v0+vc of each row of logits (row stride ld) into the workspace's state.
// W = 8 exactly when vc and V are multiples of 8, whatever else holds: the vector width
// sets the order of the sums, and kern_lmhead_logprobs_of_logits must fold the same rows
// in the same order as kern_lmhead_logprobs.
static int fold_chunk(lm_ws *ws, const float *logits, int ld, const int *targets, int T, int V, int vc, int v0,
                      bf16 *probs, float *cmax, int n_chunks, cudaStream_t st, rlvr_err *e) {
    if (vc % 8 == 0 && V % 8 == 0)
        lm_fold_kernel<8><<<T, LMHEAD_THREADS, 0, st>>>(ws->m, ws->tl, ws->s, ws->w, logits, ld, targets, vc, v0,
                                                        probs, V, cmax, n_chunks);
    else
        lm_fold_kernel<1><<<T, LMHEAD_THREADS, 0, st>>>(ws->m, ws->tl, ws->s, ws->w, logits, ld, targets, vc, v0,
                                                        probs, V, cmax, n_chunks);
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

extern "C" int kern_lmhead_logprobs(kern_blas *blas, kern_dtype dt, int invariant, float *logz, float *logp,
                                    float *entropy, const void *x, const void *w, const int *targets, int T, int C,
                                    int V, int chunk, void *workspace, void *probs, float *chunk_max, void *stream,
                                    rlvr_err *e) {
    if (check_args("lmhead_logprobs", dt, T, C, V, chunk, workspace, e)) return -1;
    if ((probs != NULL) != (chunk_max != NULL)) return err_set(e, "lmhead_logprobs: probs and chunk_max go together");
    if (probs && dt != KERN_BF16) return err_set(e, "lmhead_logprobs: kept probabilities are bf16 only");
    if (invariant && dt != KERN_BF16) return err_set(e, "lmhead_logprobs: the batch-invariant product is bf16 only");
    if (probs && (uintptr_t)probs % 16)
        return err_set(e, "lmhead_logprobs: kept probabilities must be 16-byte aligned");
    cudaStream_t st = (cudaStream_t)stream;
    lm_ws ws = carve(workspace, T, chunk);
    const size_t row_bytes = (size_t)C * kern_dtype_size(dt);
    const int n_chunks = kern_lmhead_chunks(V, chunk);
    lm_init_kernel<<<(T + 255) / 256, 256, 0, st>>>(ws.m, ws.tl, ws.s, ws.w, T);
    CUDA_CHECK(cudaGetLastError(), e);
    for (int v0 = 0, ci = 0; v0 < V; v0 += chunk, ci++) {
        int vc = V - v0 < chunk ? V - v0 : chunk;
        if (chunk_logits(blas, dt, invariant, ws.logits, x, (const char *)w + (size_t)v0 * row_bytes, T, vc, C, stream,
                         e) ||
            fold_chunk(&ws, ws.logits, vc, targets, T, V, vc, v0, (bf16 *)probs, chunk_max ? chunk_max + ci : NULL,
                       n_chunks, st, e))
            return -1;
    }
    lm_finish_kernel<<<(T + 255) / 256, 256, 0, st>>>(logz, logp, entropy, ws.m, ws.tl, ws.s, ws.w, T);
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

extern "C" int kern_lmhead_logprobs_of_logits(float *logz, float *logp, const float *logits, const int *targets,
                                              int T, int V, int chunk, void *workspace, void *stream, rlvr_err *e) {
    if (check_args("lmhead_logprobs_of_logits", KERN_F32, T, 1, V, chunk, workspace, e)) return -1;
    if ((uintptr_t)logits % 16 || (chunk % 8 && chunk < V))
        return err_set(e, "lmhead_logprobs_of_logits: needs 16-byte aligned logits and a chunk that is a multiple of 8 "
                          "or covers the vocabulary (got %d of %d)", chunk, V);
    cudaStream_t st = (cudaStream_t)stream;
    lm_ws ws = carve(workspace, T, 1);
    lm_init_kernel<<<(T + 255) / 256, 256, 0, st>>>(ws.m, ws.tl, ws.s, ws.w, T);
    CUDA_CHECK(cudaGetLastError(), e);
    for (int v0 = 0; v0 < V; v0 += chunk) {
        int vc = V - v0 < chunk ? V - v0 : chunk;
        if (fold_chunk(&ws, logits + v0, V, targets, T, V, vc, v0, NULL, NULL, 0, st, e)) return -1;
    }
    lm_finish_kernel<<<(T + 255) / 256, 256, 0, st>>>(logz, logp, NULL, ws.m, ws.tl, ws.s, ws.w, T);
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

// dL/dlogit of one vocabulary entry with probability p and log-probability lp:
// dlogp (1[target] - p) - dentropy p (lp + H).
__device__ __forceinline__ float dlogit(float p, float lp, float dlp, float den, float h, bool target) {
    float d = -dlp * p - den * p * (lp + h);
    return target ? d + dlp : d;
}

// One block per row t over the chunk, from the recomputed fp32 logits: p_v = exp(l_v -
// logz). Written in place over the logits, or rounded into dl16 when the GEMM operands are
// bf16; W elements at a time as in lm_fold_kernel.
template <typename T, int W>
__global__ void lm_dlogits_kernel(T *dl, float *logits, const int *targets, const float *dlogp,
                                  const float *dentropy, const float *logz, const float *entropy, int vc, int v0) {
    const int t = blockIdx.x;
    float *row = logits + (size_t)t * vc;
    T *out = dl + (size_t)t * vc;
    const float dlp = dlogp ? dlogp[t] : 0.0f, den = dentropy ? dentropy[t] : 0.0f, lz = logz[t], h = entropy[t];
    const int tg = targets[t] - v0;
    for (int v = threadIdx.x * W; v < vc; v += blockDim.x * W) {
        float l[W];
        load_w<float, W>(row + v, l);
#pragma unroll
        for (int j = 0; j < W; j++) {
            const float lp = l[j] - lz;
            l[j] = dlogit(expf(lp), lp, dlp, den, h, v + j == tg);
        }
        store_w<T, W>(out + v, l);
    }
}

// The same from what the forward kept: q_v = exp(l_v - cm) in bf16 and the chunk's max
// cm, so p_v = q_v exp(cm - logz) and log p_v = log q_v + cm - logz (q_v = 0: p_v = 0).
template <int W>
__global__ void lm_dlogits_kept_kernel(bf16 *dl, const bf16 *probs, int ld_probs, const float *cmax, int cm_stride,
                                       const int *targets, const float *dlogp, const float *dentropy,
                                       const float *logz, const float *entropy, int vc, int v0) {
    const int t = blockIdx.x;
    const bf16 *row = probs + (size_t)t * ld_probs + v0;
    bf16 *out = dl + (size_t)t * vc;
    const float dlp = dlogp ? dlogp[t] : 0.0f, den = dentropy ? dentropy[t] : 0.0f, h = entropy[t];
    const float shift = cmax[(size_t)t * cm_stride] - logz[t], scale = expf(shift);
    const int tg = targets[t] - v0;
    for (int v = threadIdx.x * W; v < vc; v += blockDim.x * W) {
        float q[W];
        load_w<bf16, W>(row + v, q);
#pragma unroll
        for (int j = 0; j < W; j++)
            q[j] = q[j] > 0.0f ? dlogit(q[j] * scale, logf(q[j]) + shift, dlp, den, h, v + j == tg)
                               : (v + j == tg ? dlp : 0.0f);
        store_w<bf16, W>(out + v, q);
    }
}

// Launches lm_dlogits_kernel<T, 8> when the chunk's rows are whole 16-byte vectors.
template <typename T>
static void launch_dlogits(T *dl, float *logits, const int *targets, const float *dlogp, const float *dentropy,
                           const float *logz, const float *entropy, int T_rows, int vc, int v0, cudaStream_t st) {
    if (vc % 8 == 0)
        lm_dlogits_kernel<T, 8><<<T_rows, LMHEAD_THREADS, 0, st>>>(dl, logits, targets, dlogp, dentropy, logz,
                                                                   entropy, vc, v0);
    else
        lm_dlogits_kernel<T, 1><<<T_rows, LMHEAD_THREADS, 0, st>>>(dl, logits, targets, dlogp, dentropy, logz,
                                                                   entropy, vc, v0);
}

extern "C" int kern_lmhead_backward(kern_blas *blas, kern_dtype dt, int invariant, float *dx, float *dw,
                                    const void *x, const void *w, const int *targets, const float *dlogp,
                                    const float *dentropy,
                                    const float *logz, const float *entropy, int T, int C, int V, int chunk,
                                    void *workspace, const void *probs, const float *chunk_max, void *stream,
                                    rlvr_err *e) {
    if (check_args("lmhead_backward", dt, T, C, V, chunk, workspace, e)) return -1;
    if (!targets || !logz || !entropy) return err_set(e, "lmhead_backward: targets, logz and entropy are required");
    if ((probs != NULL) != (chunk_max != NULL)) return err_set(e, "lmhead_backward: probs and chunk_max go together");
    if (probs && dt != KERN_BF16) return err_set(e, "lmhead_backward: kept probabilities are bf16 only");
    if (invariant && dt != KERN_BF16) return err_set(e, "lmhead_backward: the batch-invariant product is bf16 only");
    cudaStream_t st = (cudaStream_t)stream;
    lm_ws ws = carve(workspace, T, chunk);
    const size_t row_bytes = (size_t)C * kern_dtype_size(dt);
    const int n_chunks = kern_lmhead_chunks(V, chunk);
    for (int v0 = 0, ci = 0; v0 < V; v0 += chunk, ci++) {
        int vc = V - v0 < chunk ? V - v0 : chunk;
        const void *w_chunk = (const char *)w + (size_t)v0 * row_bytes;
        const void *dl;
        if (probs) {
            const bool vec = vc % 8 == 0 && V % 8 == 0 && v0 % 8 == 0 && (uintptr_t)probs % 16 == 0;
            const bf16 *p = (const bf16 *)probs;
            if (vec)
                lm_dlogits_kept_kernel<8><<<T, LMHEAD_THREADS, 0, st>>>((bf16 *)ws.dl16, p, V, chunk_max + ci, n_chunks,
                                                                        targets, dlogp, dentropy, logz, entropy, vc,
                                                                        v0);
            else
                lm_dlogits_kept_kernel<1><<<T, LMHEAD_THREADS, 0, st>>>((bf16 *)ws.dl16, p, V, chunk_max + ci, n_chunks,
                                                                        targets, dlogp, dentropy, logz, entropy, vc,
                                                                        v0);
            dl = ws.dl16;
        } else {
            if (chunk_logits(blas, dt, invariant, ws.logits, x, w_chunk, T, vc, C, stream, e)) return -1;
            if (dt == KERN_BF16) {
                launch_dlogits((bf16 *)ws.dl16, ws.logits, targets, dlogp, dentropy, logz, entropy, T, vc, v0, st);
                dl = ws.dl16;
            } else {
                launch_dlogits(ws.logits, ws.logits, targets, dlogp, dentropy, logz, entropy, T, vc, v0, st);
                dl = ws.logits;
            }
        }
        CUDA_CHECK(cudaGetLastError(), e);
        // dx[T, C] += dl[T, vc] @ w[vc, C];  dw[v0:v0+vc, C] += dl^T @ x[T, C]
        if (dx && kern_gemm(blas, dt, KERN_F32, 0, 0, T, C, vc, 1.0f, dl, vc, w_chunk, C, 1.0f, dx, C, NULL, stream, e))
            return -1;
        if (dw && kern_gemm(blas, dt, KERN_F32, 1, 0, vc, C, T, 1.0f, dl, vc, x, C, 1.0f, dw + (size_t)v0 * C, C, NULL,
                            stream, e))
            return -1;
    }
    return 0;
}
