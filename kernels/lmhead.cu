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
// dx += dl @ W_chunk and dW_chunk += dl^T @ x with two more GEMMs: three GEMMs per chunk,
// the same 3x the forward's FLOPs that a materialized-logits backward costs.
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

// One block per row t: fold logits[t, 0..vc) (vocabulary v0..v0+vc) into the row's state.
__global__ void lm_fold_kernel(float *m, float *tl, double *s, double *w, const float *logits, const int *targets,
                               int vc, int v0) {
    __shared__ float scratch[33];
    const int t = blockIdx.x;
    const float *row = logits + (size_t)t * vc;
    float cm = -INFINITY;
    for (int v = threadIdx.x; v < vc; v += blockDim.x) cm = fmaxf(cm, row[v]);
    cm = block_max(cm, scratch);
    const float m_old = m[t], m_new = fmaxf(m_old, cm);
    float cs = 0.0f, cw = 0.0f;
    for (int v = threadIdx.x; v < vc; v += blockDim.x) {
        float p = expf(row[v] - m_new);
        cs += p;
        cw += p * row[v];
    }
    cs = block_sum(cs, scratch);
    cw = block_sum(cw, scratch);
    if (threadIdx.x == 0) {
        // exp(-inf) = 0 on the first chunk: the empty state scales away.
        double f = exp((double)m_old - (double)m_new);
        s[t] = s[t] * f + cs;
        w[t] = w[t] * f + cw;
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

extern "C" int kern_lmhead_logprobs(kern_blas *blas, kern_dtype dt, float *logz, float *logp, float *entropy,
                                    const void *x, const void *w, const int *targets, int T, int C, int V, int chunk,
                                    void *workspace, void *stream, rlvr_err *e) {
    if (check_args("lmhead_logprobs", dt, T, C, V, chunk, workspace, e)) return -1;
    cudaStream_t st = (cudaStream_t)stream;
    lm_ws ws = carve(workspace, T, chunk);
    const size_t row_bytes = (size_t)C * kern_dtype_size(dt);
    lm_init_kernel<<<(T + 255) / 256, 256, 0, st>>>(ws.m, ws.tl, ws.s, ws.w, T);
    CUDA_CHECK(cudaGetLastError(), e);
    for (int v0 = 0; v0 < V; v0 += chunk) {
        int vc = V - v0 < chunk ? V - v0 : chunk;
        // logits[T, vc] = x[T, C] @ w[v0:v0+vc, C]^T
        if (kern_gemm(blas, dt, KERN_F32, 0, 1, T, vc, C, 1.0f, x, C, (const char *)w + (size_t)v0 * row_bytes, C,
                      0.0f, ws.logits, vc, NULL, stream, e))
            return -1;
        lm_fold_kernel<<<T, LMHEAD_THREADS, 0, st>>>(ws.m, ws.tl, ws.s, ws.w, ws.logits, targets, vc, v0);
        CUDA_CHECK(cudaGetLastError(), e);
    }
    lm_finish_kernel<<<(T + 255) / 256, 256, 0, st>>>(logz, logp, entropy, ws.m, ws.tl, ws.s, ws.w, T);
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

// One block per row t over the chunk: dl_v = dlogp (1[v = target] - p_v)
// - dentropy p_v (log p_v + H), with p_v = exp(l_v - logz). Written in place over the
// fp32 logits, or rounded into dl16 when the GEMM operands are bf16.
template <typename T>
__global__ void lm_dlogits_kernel(T *dl, float *logits, const int *targets, const float *dlogp,
                                  const float *dentropy, const float *logz, const float *entropy, int vc, int v0) {
    const int t = blockIdx.x;
    float *row = logits + (size_t)t * vc;
    T *out = dl + (size_t)t * vc;
    const float dlp = dlogp ? dlogp[t] : 0.0f, den = dentropy ? dentropy[t] : 0.0f, lz = logz[t], h = entropy[t];
    const int tg = targets[t];
    for (int v = threadIdx.x; v < vc; v += blockDim.x) {
        float lp = row[v] - lz, p = expf(lp);
        float d = -dlp * p - den * p * (lp + h);
        if (v0 + v == tg) d += dlp;
        store_f(out + v, d);
    }
}

extern "C" int kern_lmhead_backward(kern_blas *blas, kern_dtype dt, float *dx, float *dw, const void *x,
                                    const void *w, const int *targets, const float *dlogp, const float *dentropy,
                                    const float *logz, const float *entropy, int T, int C, int V, int chunk,
                                    void *workspace, void *stream, rlvr_err *e) {
    if (check_args("lmhead_backward", dt, T, C, V, chunk, workspace, e)) return -1;
    if (!targets || !logz || !entropy) return err_set(e, "lmhead_backward: targets, logz and entropy are required");
    cudaStream_t st = (cudaStream_t)stream;
    lm_ws ws = carve(workspace, T, chunk);
    const size_t row_bytes = (size_t)C * kern_dtype_size(dt);
    for (int v0 = 0; v0 < V; v0 += chunk) {
        int vc = V - v0 < chunk ? V - v0 : chunk;
        const void *w_chunk = (const char *)w + (size_t)v0 * row_bytes;
        if (kern_gemm(blas, dt, KERN_F32, 0, 1, T, vc, C, 1.0f, x, C, w_chunk, C, 0.0f, ws.logits, vc, NULL, stream,
                      e))
            return -1;
        const void *dl;
        if (dt == KERN_BF16) {
            lm_dlogits_kernel<bf16><<<T, LMHEAD_THREADS, 0, st>>>((bf16 *)ws.dl16, ws.logits, targets, dlogp,
                                                                  dentropy, logz, entropy, vc, v0);
            dl = ws.dl16;
        } else {
            lm_dlogits_kernel<float><<<T, LMHEAD_THREADS, 0, st>>>(ws.logits, ws.logits, targets, dlogp, dentropy,
                                                                   logz, entropy, vc, v0);
            dl = ws.logits;
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
