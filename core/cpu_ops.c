/* cpu_ops.c - CPU reference layers. */
#include "cpu_ops.h"

#include <float.h>
#include <math.h>
#include <stddef.h>

void rmsnorm_forward(float *out, float *rstd, const float *x, const float *weight, int T, int C, float eps) {
    for (int t = 0; t < T; t++) {
        const float *row = x + (size_t)t * C;
        double sum = 0.0;
        for (int c = 0; c < C; c++) sum += (double)row[c] * row[c];
        float r = (float)(1.0 / sqrt(sum / C + eps));
        if (rstd) rstd[t] = r;
        float *o = out + (size_t)t * C;
        for (int c = 0; c < C; c++) o[c] = row[c] * r * weight[c];
    }
}

void rmsnorm_backward(float *dx, float *dweight, const float *dout, const float *x, const float *weight,
                      const float *rstd, int T, int C) {
    /* y = x * r * w with r = (mean(x^2) + eps)^-1/2; dr/dx_c = -r^3 x_c / C, so
     * dx_c = r * w_c dy_c - r^3 / C * x_c * sum_k(dy_k w_k x_k). */
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * C, *dy = dout + (size_t)t * C;
        float r = rstd[t];
        double dot = 0.0;
        for (int c = 0; c < C; c++) {
            dot += (double)dy[c] * weight[c] * xr[c];
            dweight[c] += dy[c] * xr[c] * r;
        }
        if (!dx) continue;
        float *d = dx + (size_t)t * C;
        float k = (float)(dot * r * r * r / C);
        for (int c = 0; c < C; c++) d[c] += r * weight[c] * dy[c] - k * xr[c];
    }
}

#ifdef RLVR_HAVE_BLAS
#include <cblas.h>
static int use_blas = 1;
#else
static int use_blas = 0;
#endif

int cpu_blas_enabled(void) { return use_blas; }
void cpu_set_blas_threads(int n) {
#ifdef RLVR_HAVE_BLAS
    if (n > 0) openblas_set_num_threads(n);
#else
    (void)n;
#endif
}
void cpu_set_blas(int on) {
#ifdef RLVR_HAVE_BLAS
    use_blas = on != 0;
#else
    (void)on;
#endif
}

void cpu_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc) {
#ifdef RLVR_HAVE_BLAS
    if (use_blas) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
                    alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#endif
    /* op(A)[i, k] = trans_a ? A[k * lda + i] : A[i * lda + k]; likewise op(B)[k, j].
     * The k loop is outermost-but-one so that the innermost j loop walks C and, when B is
     * not transposed, B contiguously. */
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) for (int j = 0; j < N; j++) c[j] = 0.0f;
        else if (beta != 1.0f) for (int j = 0; j < N; j++) c[j] *= beta;
        if (trans_b) {
            for (int j = 0; j < N; j++) {
                const float *b = B + (size_t)j * ldb;
                float sum = 0.0f;
                for (int k = 0; k < K; k++) sum += (trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) * b[k];
                c[j] += alpha * sum;
            }
        } else {
            for (int k = 0; k < K; k++) {
                float a = alpha * (trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
                const float *b = B + (size_t)k * ldb;
                for (int j = 0; j < N; j++) c[j] += a * b[j];
            }
        }
    }
}

void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int T, int IC, int OC) {
    cpu_sgemm(0, 1, T, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out, OC);
    if (bias)
        for (int t = 0; t < T; t++)
            for (int o = 0; o < OC; o++) out[(size_t)t * OC + o] += bias[o];
}

void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w, int T,
                     int IC, int OC) {
    if (dinp) cpu_sgemm(0, 0, T, IC, OC, 1.0f, dout, OC, w, IC, 1.0f, dinp, IC);
    cpu_sgemm(1, 0, OC, IC, T, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC);
    if (dbias)
        for (int t = 0; t < T; t++)
            for (int o = 0; o < OC; o++) dbias[o] += dout[(size_t)t * OC + o];
}

void rope_forward(float *x, const float *inv_freq, const int *pos, int T, int NH, int D) {
    int half = D / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            /* fp32 angle, as transformers computes it */
            float ang = (float)pos[t] * inv_freq[i];
            float c = cosf(ang), s = sinf(ang);
            for (int h = 0; h < NH; h++) {
                float *v = x + ((size_t)t * NH + h) * D;
                float x1 = v[i], x2 = v[i + half];
                v[i] = x1 * c - x2 * s;
                v[i + half] = x2 * c + x1 * s;
            }
        }
}

void rope_backward(float *dx, const float *inv_freq, const int *pos, int T, int NH, int D) {
    int half = D / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            float ang = (float)pos[t] * inv_freq[i];
            float c = cosf(ang), s = sinf(ang);
            for (int h = 0; h < NH; h++) {
                float *v = dx + ((size_t)t * NH + h) * D;
                float d1 = v[i], d2 = v[i + half];
                v[i] = d1 * c + d2 * s;
                v[i + half] = d2 * c - d1 * s;
            }
        }
}

void swiglu_forward(float *h, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        h[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void swiglu_backward(float *dgate, float *dup, const float *dh, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], sig = 1.0f / (1.0f + expf(-g));
        dup[i] = dh[i] * g * sig;
        dgate[i] = dh[i] * up[i] * sig * (1.0f + g * (1.0f - sig)); /* d silu/dg */
    }
}

/* ---- LM head ---------------------------------------------------------------------------- */

#include <stdlib.h>

typedef struct lp_job {
    const float *x, *w;
    const int *targets;
    float *logz, *logp, *entropy; /* [T] each; logz always */
    int T, C, V;
} lp_job;

/* Rows [b*LMHEAD_ROW_BLOCK, ..): an online softmax over vocabulary chunks keeps, per row,
 * the running max mx, s = sum exp(l - mx) and w = sum exp(l - mx) * l; at the end
 * logZ = mx + log s and entropy = logZ - w / s. */
static void lp_block(void *ctx, int b) {
    const lp_job *j = ctx;
    int t0 = b * LMHEAD_ROW_BLOCK, tb = j->T - t0 < LMHEAD_ROW_BLOCK ? j->T - t0 : LMHEAD_ROW_BLOCK;
    int V = j->V, C = j->C;
    float *blk = malloc((size_t)LMHEAD_ROW_BLOCK * LMHEAD_VOCAB_CHUNK * sizeof(float));
    double mx[LMHEAD_ROW_BLOCK], s[LMHEAD_ROW_BLOCK], w[LMHEAD_ROW_BLOCK], tl[LMHEAD_ROW_BLOCK];
    if (!blk) abort(); /* a 512 KB scratch: failing here means the process is out of memory */
    for (int r = 0; r < tb; r++) mx[r] = -INFINITY, s[r] = w[r] = 0.0, tl[r] = 0.0;
    for (int v0 = 0; v0 < V; v0 += LMHEAD_VOCAB_CHUNK) {
        int vc = V - v0 < LMHEAD_VOCAB_CHUNK ? V - v0 : LMHEAD_VOCAB_CHUNK;
        cpu_sgemm(0, 1, tb, vc, C, 1.0f, j->x + (size_t)t0 * C, C, j->w + (size_t)v0 * C, C, 0.0f, blk, vc);
        for (int r = 0; r < tb; r++) {
            const float *row = blk + (size_t)r * vc;
            double cm = mx[r];
            for (int v = 0; v < vc; v++)
                if (row[v] > cm) cm = row[v];
            if (cm > mx[r]) {
                double f = exp(mx[r] - cm);
                s[r] *= f;
                w[r] *= f;
                mx[r] = cm;
            }
            for (int v = 0; v < vc; v++) {
                double p = exp(row[v] - mx[r]);
                s[r] += p;
                w[r] += p * row[v];
            }
            int tg = j->targets ? j->targets[t0 + r] : -1;
            if (tg >= v0 && tg < v0 + vc) tl[r] = row[tg - v0];
        }
    }
    for (int r = 0; r < tb; r++) {
        double logz = mx[r] + log(s[r]);
        j->logz[t0 + r] = (float)logz;
        if (j->logp) j->logp[t0 + r] = (float)(tl[r] - logz);
        if (j->entropy) j->entropy[t0 + r] = (float)(logz - w[r] / s[r]);
    }
    free(blk);
}

void lmhead_logprobs(float *logz, float *logp, float *entropy, const float *x, const float *w, const int *targets,
                     int T, int C, int V) {
    lp_job j = {x, w, targets, logz, logp, entropy, T, C, V};
    cpu_parallel_for((T + LMHEAD_ROW_BLOCK - 1) / LMHEAD_ROW_BLOCK, lp_block, &j);
}

void lmhead_backward(float *dx, float *dw, const float *x, const float *w, const int *targets, const float *dlogp,
                     const float *dentropy, const float *logz, const float *entropy, int T, int C, int V,
                     float *scratch) {
    float *blk = scratch;
    for (int t0 = 0; t0 < T; t0 += LMHEAD_ROW_BLOCK) {
        int tb = T - t0 < LMHEAD_ROW_BLOCK ? T - t0 : LMHEAD_ROW_BLOCK;
        for (int v0 = 0; v0 < V; v0 += LMHEAD_VOCAB_CHUNK) {
            int vc = V - v0 < LMHEAD_VOCAB_CHUNK ? V - v0 : LMHEAD_VOCAB_CHUNK;
            cpu_sgemm(0, 1, tb, vc, C, 1.0f, x + (size_t)t0 * C, C, w + (size_t)v0 * C, C, 0.0f, blk, vc);
            for (int r = 0; r < tb; r++) {
                int t = t0 + r;
                float *row = blk + (size_t)r * vc;
                float dlp = dlogp ? dlogp[t] : 0.0f, den = dentropy ? dentropy[t] : 0.0f;
                for (int v = 0; v < vc; v++) {
                    float lp = row[v] - logz[t], p = expf(lp);
                    float d = -dlp * p - den * p * (lp + entropy[t]);
                    if (v0 + v == targets[t]) d += dlp;
                    row[v] = d;
                }
            }
            /* dx[tb, C] += dl[tb, vc] @ w[vc, C]; dw[vc, C] += dl^T @ x[tb, C] */
            cpu_sgemm(0, 0, tb, C, vc, 1.0f, blk, vc, w + (size_t)v0 * C, C, 1.0f, dx + (size_t)t0 * C, C);
            cpu_sgemm(1, 0, vc, C, tb, 1.0f, blk, vc, x + (size_t)t0 * C, C, 1.0f, dw + (size_t)v0 * C, C);
        }
    }
}

/* ---- attention over packed sequences ---------------------------------------------------- */

void causal_softmax_rows(float *S, int n, int P, int p0, float *lse, size_t lse_stride) {
    for (int r = 0; r < n; r++) {
        float *row = S + (size_t)r * P;
        const int last = p0 + r; /* a token sees positions 0..its own */
        float mx = -FLT_MAX;
        for (int k = 0; k <= last; k++) mx = row[k] > mx ? row[k] : mx;
        double sum = 0.0;
        for (int k = 0; k <= last; k++) sum += row[k] = expf(row[k] - mx);
        const float inv = (float)(1.0 / sum);
        for (int k = 0; k <= last; k++) row[k] *= inv;
        for (int k = last + 1; k < P; k++) row[k] = 0.0f;
        if (lse) lse[(size_t)r * lse_stride] = mx + (float)log(sum);
    }
}

void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, const int *cu_seqlens,
                       int n_seqs, int H, int KV, int D) {
    const int group = H / KV;
    const float scale = 1.0f / sqrtf((float)D);
    int max_len = 0;
    for (int i = 0; i < n_seqs; i++)
        if (cu_seqlens[i + 1] - cu_seqlens[i] > max_len) max_len = cu_seqlens[i + 1] - cu_seqlens[i];
    float *sc = malloc((size_t)(max_len ? max_len : 1) * sizeof *sc);
    if (!sc) abort(); /* one row of scores: failing here means the process is out of memory */
    for (int i = 0; i < n_seqs; i++) {
        const int start = cu_seqlens[i], len = cu_seqlens[i + 1] - start;
        for (int r = 0; r < len; r++)
            for (int h = 0; h < H; h++) {
                const int g = h / group;
                const float *qr = q + ((size_t)(start + r) * H + h) * D;
                float mx = -INFINITY;
                for (int j = 0; j <= r; j++) {
                    const float *kr = k + ((size_t)(start + j) * KV + g) * D;
                    float dot = 0.0f;
                    for (int d = 0; d < D; d++) dot += qr[d] * kr[d];
                    sc[j] = scale * dot;
                    if (sc[j] > mx) mx = sc[j];
                }
                double sum = 0.0;
                for (int j = 0; j <= r; j++) sum += sc[j] = expf(sc[j] - mx);
                const float inv = (float)(1.0 / sum);
                float *o = out + ((size_t)(start + r) * H + h) * D;
                for (int d = 0; d < D; d++) o[d] = 0.0f;
                for (int j = 0; j <= r; j++) {
                    const float *vr = v + ((size_t)(start + j) * KV + g) * D, p = sc[j] * inv;
                    for (int d = 0; d < D; d++) o[d] += p * vr[d];
                }
                lse[(size_t)(start + r) * H + h] = mx + (float)log(sum);
            }
    }
    free(sc);
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const float *lse, const int *cu_seqlens, int n_seqs, int H,
                        int KV, int D) {
    const int group = H / KV;
    const float scale = 1.0f / sqrtf((float)D);
    for (int i = 0; i < n_seqs; i++) {
        const int start = cu_seqlens[i], len = cu_seqlens[i + 1] - start;
        for (int r = 0; r < len; r++)
            for (int h = 0; h < H; h++) {
                const int g = h / group;
                const size_t row = (size_t)(start + r) * H + h;
                const float *qr = q + row * D, *dor = dout + row * D, *o = out + row * D;
                float *dqr = dq + row * D, delta = 0.0f;
                for (int d = 0; d < D; d++) delta += dor[d] * o[d];
                for (int j = 0; j <= r; j++) {
                    const size_t kvrow = (size_t)(start + j) * KV + g;
                    const float *kr = k + kvrow * D, *vr = v + kvrow * D;
                    float dot = 0.0f, dp = 0.0f;
                    for (int d = 0; d < D; d++) dot += qr[d] * kr[d], dp += dor[d] * vr[d];
                    const float p = expf(scale * dot - lse[row]), ds = p * (dp - delta) * scale;
                    float *dkr = dk + kvrow * D, *dvr = dv + kvrow * D;
                    for (int d = 0; d < D; d++) {
                        dqr[d] += ds * kr[d];
                        dkr[d] += ds * qr[d];
                        dvr[d] += p * dor[d];
                    }
                }
            }
    }
}

/* ---- embedding ------------------------------------------------------------------------------ */

#include <string.h>

void embedding_forward(float *out, const float *table, const int *tokens, int T, int C) {
    for (int t = 0; t < T; t++) memcpy(out + (size_t)t * C, table + (size_t)tokens[t] * C, (size_t)C * sizeof(float));
}

void embedding_backward(float *dtable, const float *dout, const int *tokens, int T, int C) {
    for (int t = 0; t < T; t++) {
        float *row = dtable + (size_t)tokens[t] * C;
        const float *d = dout + (size_t)t * C;
        for (int c = 0; c < C; c++) row[c] += d[c];
    }
}

/* (token, t) pairs sort by token, then by t: a stable order without a V-sized table. */
static int cmp_token_row(const void *a, const void *b) {
    const int *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

int embedding_group_rows(const int *tokens, int T, int *order, int *starts, int *unique) {
    int *pairs = malloc((size_t)(T > 0 ? T : 1) * 2 * sizeof(int));
    if (!pairs) return -1;
    for (int t = 0; t < T; t++) pairs[2 * t] = tokens[t], pairs[2 * t + 1] = t;
    qsort(pairs, (size_t)T, 2 * sizeof(int), cmp_token_row);
    int n = 0;
    for (int i = 0; i < T; i++) {
        order[i] = pairs[2 * i + 1];
        if (i == 0 || pairs[2 * i] != pairs[2 * i - 2]) {
            unique[n] = pairs[2 * i];
            starts[n++] = i;
        }
    }
    starts[n] = T;
    free(pairs);
    return n;
}

/* ---- threads ---------------------------------------------------------------------------- */

#include <pthread.h>

static int n_threads = 1;
void cpu_set_threads(int n) { n_threads = n < 1 ? 1 : n > 256 ? 256 : n; }
int cpu_threads(void) { return n_threads; }

typedef struct par_job {
    void (*fn)(void *, int);
    void *ctx;
    int n, first, step;
} par_job;

static void *par_worker(void *p) {
    par_job *j = p;
    for (int i = j->first; i < j->n; i += j->step) j->fn(j->ctx, i);
    return NULL;
}

void cpu_parallel_for(int n, void (*fn)(void *ctx, int i), void *ctx) {
    int nt = n_threads < n ? n_threads : n;
    if (nt <= 1) {
        for (int i = 0; i < n; i++) fn(ctx, i);
        return;
    }
#ifdef RLVR_HAVE_BLAS
    /* GEMMs inside the jobs run on the job's own thread: OpenBLAS threads on top of ours
     * would oversubscribe the cores. */
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
#endif
    pthread_t th[256];
    par_job jobs[256];
    int started[256] = {0};
    for (int k = 0; k < nt; k++) {
        jobs[k] = (par_job){fn, ctx, n, k, nt};
        if (k > 0) started[k] = pthread_create(&th[k], NULL, par_worker, &jobs[k]) == 0;
    }
    par_worker(&jobs[0]);
    for (int k = 1; k < nt; k++) {
        if (started[k]) pthread_join(th[k], NULL);
        else par_worker(&jobs[k]); /* a thread that could not start: its share runs here */
    }
#ifdef RLVR_HAVE_BLAS
    openblas_set_num_threads(blas_threads);
#endif
}

void adamw_update(float *params, const float *grads, float *m, float *v, size_t n, long long step, double lr,
                  double beta1, double beta2, double eps, double weight_decay) {
    /* 1 - beta is formed in double and rounded once, as torch passes it as a scalar. */
    const float b2 = (float)beta2, one_minus_b2 = (float)(1.0 - beta2);
    const double bc1 = 1.0 - pow(beta1, (double)step);
    const double bc2_sqrt = sqrt(1.0 - pow(beta2, (double)step));
    const float step_size = (float)(lr / bc1);
    const float decay = (float)(1.0 - lr * weight_decay);
    /* The operation order is torch's single-tensor AdamW: m by lerp (whose formula
     * switches at weight 0.5), v by mul then addcmul, and p += -step * (m / denom). */
    const float w1 = (float)(1.0 - beta1);
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        params[i] *= decay;
        m[i] = w1 < 0.5f ? m[i] + w1 * (g - m[i]) : g - (g - m[i]) * (1.0f - w1);
        v[i] = v[i] * b2 + one_minus_b2 * (g * g);
        float denom = sqrtf(v[i]) / (float)bc2_sqrt + (float)eps;
        params[i] += -step_size * (m[i] / denom);
    }
}

double clip_grad_norm(float *grads, size_t n, double max_norm) {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += (double)grads[i] * grads[i];
    double norm = sqrt(sum);
    if (max_norm > 0) {
        double coef = max_norm / (norm + 1e-6);
        if (coef < 1.0)
            for (size_t i = 0; i < n; i++) grads[i] = (float)(grads[i] * coef);
    }
    return norm;
}
