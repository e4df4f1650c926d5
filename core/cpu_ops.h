/* cpu_ops.h - the CPU reference of the model's layers, one function per layer, written
 * to be read (llm.c style). Every CUDA kernel in kernels/ is tested against these. */
#ifndef RLVR_CPU_OPS_H
#define RLVR_CPU_OPS_H

#include <stddef.h>

/* RMSNorm forward: out[t, c] = x[t, c] * rstd[t] * weight[c], with
 * rstd[t] = 1 / sqrt(mean_c(x[t, :]^2) + eps). x, out: [T, C]; weight: [C];
 * rstd: [T] (may be NULL), kept for the backward pass. Sums in double. */
void rmsnorm_forward(float *out, float *rstd, const float *x, const float *weight, int T, int C, float eps);

/* RMSNorm backward, accumulating: dx[T, C] += d/dx, dweight[C] += d/dweight, given the
 * forward's x and rstd. dx may be NULL (the input needs no gradient). */
void rmsnorm_backward(float *dx, float *dweight, const float *dout, const float *x, const float *weight,
                      const float *rstd, int T, int C);

/* Matrix products. Row-major sgemm: C[M, N] = alpha * op(A) op(B) + beta * C, op = transpose
 * when the flag is set; through cblas_sgemm when built with BLAS and not switched off,
 * else a plain C loop. */
void cpu_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc);
/* 1 when BLAS is compiled in and in use. cpu_set_blas(0) switches to the C loop (tests run
 * both paths); cpu_set_blas(1) has no effect without BLAS. */
int cpu_blas_enabled(void);
void cpu_set_blas(int on);

/* Linear layer: out[T, OC] = inp[T, IC] @ w[OC, IC]^T + bias[OC] (bias may be NULL). */
void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int T, int IC, int OC);
/* Its backward, accumulating: dinp[T, IC] += dout @ w, dw[OC, IC] += dout^T @ inp,
 * dbias[OC] += sum_t dout. Any of dinp, dbias may be NULL. */
void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w, int T,
                     int IC, int OC);

/* Rotary embedding, rotate-half convention (Hugging Face): for each head's pair
 * (x[i], x[i + D/2]) at position p, angle p * inv_freq[i]:
 * (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin). x: [T, NH, D], in place; pos: [T]. */
void rope_forward(float *x, const float *inv_freq, const int *pos, int T, int NH, int D);
/* The transpose rotation, applied in place to the gradient. */
void rope_backward(float *dx, const float *inv_freq, const int *pos, int T, int NH, int D);

/* SwiGLU: h[n] = silu(gate[n]) * up[n], silu(g) = g * sigmoid(g). */
void swiglu_forward(float *h, const float *gate, const float *up, size_t n);
/* Writes (not accumulates) dgate and dup from dh. */
void swiglu_backward(float *dgate, float *dup, const float *dh, const float *gate, const float *up, size_t n);

/* LM head and softmax statistics without a [T, V] logits tensor: logits of a block of
 * LMHEAD_ROW_BLOCK rows and LMHEAD_VOCAB_CHUNK vocabulary entries at a time,
 * logits[t, v] = x[t, :] . w[v, :], with x: [T, C], w: [V, C]. An online softmax keeps per
 * row the running max, s = sum exp(l - max) and sum exp(l - max) * l (in double), so
 * logz[t] = log sum_v exp(logits[t, v]), logp[t] = logits[t, targets[t]] - logz[t] and
 * entropy[t] = logz[t] - E_p[logits] (logp, entropy, targets may be NULL; logz is always
 * written). Row blocks run on cpu_parallel_for threads. */
enum { LMHEAD_ROW_BLOCK = 64, LMHEAD_VOCAB_CHUNK = 2048 };
void lmhead_logprobs(float *logz, float *logp, float *entropy, const float *x, const float *w, const int *targets,
                     int T, int C, int V);
/* Backward of L = sum_t dlogp[t] logp[t] + dentropy[t] entropy[t] (either may be NULL),
 * given lmhead_logprobs' logz and entropy, accumulating: dx[T, C] += dL/dx and
 * dw[V, C] += dL/dw. d L / d logits[t, v] = dlogp (1[v = target] - p_v)
 * - dentropy p_v (log p_v + entropy). scratch: LMHEAD_ROW_BLOCK * LMHEAD_VOCAB_CHUNK floats. */
void lmhead_backward(float *dx, float *dw, const float *x, const float *w, const int *targets, const float *dlogp,
                     const float *dentropy, const float *logz, const float *entropy, int T, int C, int V,
                     float *scratch);

/* Row r of S [n, P] (the scores of the query at position p0 + r) becomes its causal
 * softmax: probabilities over positions 0 .. p0 + r (max subtracted, sum in double), zeros
 * after. lse (may be NULL) gets row r's log-sum-exp at lse[r * lse_stride]. What the
 * inference attention of model_forward and of rollout's paged_model runs between its two
 * products. */
void causal_softmax_rows(float *S, int n, int P, int p0, float *lse, size_t lse_stride);

/* Causal self-attention over packed variable-length sequences (the training layout):
 * sequence i holds tokens cu_seqlens[i] .. cu_seqlens[i + 1] - 1 at positions 0.., and a
 * token attends to the tokens of its own sequence up to itself. q: [T, H, D];
 * k, v: [T, KV, D], query head h reading kv head h / (H / KV) (grouped-query attention);
 * out: [T, H, D]; lse: [T, H] the log-sum-exp of the token's scaled scores
 * (scale 1 / sqrt(D)), kept for backward. The same arithmetic as model_forward's
 * attention (fp32 scores, softmax sums in double). */
void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, const int *cu_seqlens,
                       int n_seqs, int H, int KV, int D);
/* Its backward, accumulating dq [T, H, D], dk, dv [T, KV, D] from dout [T, H, D] and the
 * forward's out and lse: with p_j = exp(s_j - lse), dp_j = dout . v_j and
 * delta = dout . out, ds_j = p_j (dp_j - delta); dq += scale ds_j k_j,
 * dk_j += scale ds_j q, dv_j += p_j dout. */
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const float *lse, const int *cu_seqlens, int n_seqs, int H,
                        int KV, int D);

/* ---- attention against a paged KV cache (rollout; core/cpu_paged_attention.c) ----------
 * One layer's cache: k_cache, v_cache [n_blocks, block_size, KV, D]. Sequence i's position
 * p lives in row block_tables[i * max_blocks + p / block_size] * block_size + p % block_size
 * (rollout/kv_pages.h keeps the tables). Sequence i brings n_new = cu_q[i + 1] - cu_q[i]
 * query rows of q [T, H, D], its last tokens: row r at position seq_lens[i] - n_new + r,
 * whose K/V are already written to the cache. Decode (n_new = 1), a prefill chunk and the
 * verification of k > 1 draft tokens are the same call. */

/* Each query row attends causally to its sequence's positions 0 .. its own: out [T, H, D],
 * lse [T, H]. The arithmetic of attention_forward, so a sequence's rows equal the packed
 * forward's bit for bit. scratch: max(seq_lens) floats. */
void paged_attention_forward(float *out, float *lse, const float *q, const float *k_cache, const float *v_cache,
                             const int *block_tables, int max_blocks, const int *cu_q, const int *seq_lens,
                             int n_seqs, int block_size, int H, int KV, int D, float *scratch);

/* paged_attention_forward computed the way a split-KV ("flash decoding") kernel spreads a
 * long context over thread blocks: each row's keys 0 .. its position cut into chunks of
 * split_len positions from 0, each chunk attended alone, the partial results merged in
 * chunk order by attention_merge (a fixed order, so the result never depends on the
 * batch). Equal to paged_attention_forward to fp32 rounding, bit for bit where one chunk
 * holds every key. scratch: split_len + D floats. */
void paged_attention_split_forward(float *out, float *lse, const float *q, const float *k_cache,
                                   const float *v_cache, const int *block_tables, int max_blocks, const int *cu_q,
                                   const int *seq_lens, int n_seqs, int block_size, int H, int KV, int D,
                                   int split_len, float *scratch);

/* The same numbers (to fp32 rounding) in the cascade form of shared-prefix decoding: the
 * sequences cu_groups[g] .. cu_groups[g + 1] - 1 of group g share the first
 * prefix_blocks[g] entries of their block tables (the same block ids: a GRPO group's
 * prompt), and every query of the group lies past them. Phase 1 attends every query of
 * the group to the shared prefix (a kernel reads each prefix block once for the whole
 * group); phase 2 attends each query to its own sequence from the prefix's end on; the
 * two are merged by attention_merge. scratch: cascade_attention_scratch(..) floats. */
void cascade_attention_forward(float *out, float *lse, const float *q, const float *k_cache, const float *v_cache,
                               const int *block_tables, int max_blocks, const int *cu_q, const int *seq_lens,
                               int n_seqs, const int *cu_groups, const int *prefix_blocks, int n_groups,
                               int block_size, int H, int KV, int D, float *scratch);
size_t cascade_attention_scratch(int T, int H, int D, int max_seq_len);

/* Merges, in place, attention over two disjoint key sets of the same query rows: with
 * m = max(lse, lse_b), a = exp(lse - m), b = exp(lse_b - m):
 * out = (a out + b out_b) / (a + b), lse = m + log(a + b) (in double). A set with no key
 * has lse = -inf and leaves the other as it is. out, out_b: [rows, D]; lse, lse_b: [rows]. */
void attention_merge(float *out, float *lse, const float *out_b, const float *lse_b, int rows, int D);

/* Embedding: out[t, :] = table[tokens[t], :] for out [T, C], table [V, C]. */
void embedding_forward(float *out, const float *table, const int *tokens, int T, int C);
/* Its backward, accumulating: dtable[tokens[t], :] += dout[t, :] for t = 0, 1, .. in order
 * (the order a GPU kernel must follow to give the same bits). */
void embedding_backward(float *dtable, const float *dout, const int *tokens, int T, int C);
/* Groups the rows of each distinct token for a deterministic scatter-add: order[T] holds
 * t = 0..T-1 sorted by (tokens[t], t); group u covers order[starts[u] .. starts[u + 1])
 * and is token unique[u]. starts has room for T + 1, unique for T. Returns the number of
 * groups, or -1 when out of memory. */
int embedding_group_rows(const int *tokens, int T, int *order, int *starts, int *unique);

/* AdamW update number `step` (from 1) of params [n] from grads, with fp32 moments m, v
 * [n], in torch's single-tensor AdamW order of operations. CPU twin of kern_adamw_step;
 * rl_adamw_step (rl/optim.h) calls it. */
void adamw_update(float *params, const float *grads, float *m, float *v, size_t n, long long step, double lr,
                  double beta1, double beta2, double eps, double weight_decay);
/* The global L2 norm of grads [n] (summed in double), and when max_norm > 0 grads scaled
 * so the norm is at most max_norm (torch's clip_grad_norm_, 1e-6 added to the norm).
 * Returns the norm before clipping. CPU twin of kern_clip_grad_norm. */
double clip_grad_norm(float *grads, size_t n, double max_norm);

/* Runs fn(ctx, i) for i in [0, n) on up to cpu_threads() POSIX threads (fn must not write
 * what another i writes). cpu_set_threads(n) sets the count (default 1). */
void cpu_parallel_for(int n, void (*fn)(void *ctx, int i), void *ctx);
void cpu_set_threads(int n);
/* Threads OpenBLAS uses inside one matrix product (no-op without BLAS; n < 1 leaves it). */
void cpu_set_blas_threads(int n);
int cpu_threads(void);

#endif
