/* kernels.h - the CUDA side of rlvr: device discovery and kernel launchers.
 *
 * Launchers take device pointers and a stream and return 0, or -1 with a message in
 * `e` (never exit): library code reports CUDA errors, only the CLI prints them. Every
 * kernel has a CPU twin in core/ and a test against it in tests/gpu/ (run them all on
 * a GPU with tests/gpu/run_on_device.sh). Without CUDA (kernels_nocuda.c) discovery
 * answers "built without CUDA" and launchers fail.
 *
 * Determinism: every kernel here repeats bit for bit from run to run on one GPU. No
 * reduction uses atomics; each says below how its order is fixed. */
#ifndef RLVR_KERNELS_H
#define RLVR_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices. 0 when there is none or rlvr was built without CUDA,
 * with the reason in `e` ("built without CUDA", "no CUDA device: ..."). */
int kern_device_count(rlvr_err *e);

typedef struct kern_device_info {
    char name[256];
    int major, minor;        /* compute capability */
    int multiprocessors;
    size_t total_memory, free_memory;
} kern_device_info;

int kern_device_info_get(int device, kern_device_info *info, rlvr_err *e);

/* Device memory (thin wrappers that report errors through rlvr_err). */
void *kern_malloc(size_t bytes, rlvr_err *e);
void kern_free(void *p);
int kern_memcpy_h2d(void *dst, const void *src, size_t bytes, rlvr_err *e);
int kern_memcpy_d2h(void *dst, const void *src, size_t bytes, rlvr_err *e);
/* Device to device, synchronous (what the decode benchmark times as the copy bandwidth). */
int kern_memcpy_d2d(void *dst, const void *src, size_t bytes, rlvr_err *e);
int kern_synchronize(rlvr_err *e);
/* Sets `bytes` of device memory at p to zero, in stream order (for the launchers that
 * accumulate into their outputs). */
int kern_memzero(void *p, size_t bytes, void *stream, rlvr_err *e);

/* ---- streams and CUDA graphs (kernels/device.cu) ---------------------------------------------- */

/* A stream of its own (blocking: the synchronous copies above stay ordered with it), for
 * work that is captured into graphs, which the legacy default stream cannot be. */
void *kern_stream_new(rlvr_err *e);
void kern_stream_free(void *stream);

/* 1 when launches can be captured into CUDA graphs and replayed (a CUDA build); 0 without
 * (no CUDA, or the host emulation of the kernels). */
int kern_graphs_supported(void);
/* Capture: every launch on `stream` between begin and end is recorded, not run; end
 * instantiates the recording into *graph (kern_graph_free frees it). A launch replays it
 * on `stream` with the device pointers and launch parameters it was captured with, so
 * a caller changes inputs only by writing the device memory those pointers name. */
typedef struct kern_graph kern_graph;
int kern_graph_begin(void *stream, rlvr_err *e);
int kern_graph_end(void *stream, kern_graph **graph, rlvr_err *e);
int kern_graph_launch(kern_graph *graph, void *stream, rlvr_err *e);
void kern_graph_free(kern_graph *graph);

/* Fork and join: launches put on `waiter` after kern_stream_wait wait for what was put on
 * `waited` before it, through `event` (kern_event_new; an event serves one wait at a time,
 * re-recorded by each call). Inside a capture this is an edge of the graph, so a captured
 * step can run two independent branches at once. */
void *kern_event_new(rlvr_err *e);
void kern_event_free(void *event);
int kern_stream_wait(void *waiter, void *waited, void *event, rlvr_err *e);

/* Activations' element type. Parameters are read in the activations' dtype (the bf16
 * copy that kern_adamw_step writes, or fp32); gradients of parameters, RMSNorm's rstd,
 * and log-probabilities are always fp32. bf16 values are rounded to nearest even on
 * store; arithmetic is fp32. */
typedef enum kern_dtype { KERN_F32 = 0, KERN_BF16 = 1 } kern_dtype;
size_t kern_dtype_size(kern_dtype t);

/* ---- matrix products (kernels/gemm.cu) ------------------------------------------------------- */

/* A cuBLASLt handle and its 32 MiB workspace. One per stream in use. */
typedef struct kern_blas kern_blas;
kern_blas *kern_blas_new(rlvr_err *e);
void kern_blas_free(kern_blas *b);

/* Row-major, as cpu_sgemm: C[M, N] = alpha * op(A) op(B) + beta * C (+ bias[N] added to
 * every row when bias is not NULL, in cuBLASLt's epilogue). A, B of dtype `ab`; C and bias
 * of dtype `c`; fp32 accumulation (no TF32). Deterministic: cuBLASLt's choice of kernel
 * and its reduction order depend on the shape, dtypes and operands' alignment alone.
 * CPU twin: cpu_sgemm. */
int kern_gemm(kern_blas *blas, kern_dtype ab, kern_dtype c, int trans_a, int trans_b, int M, int N, int K,
              float alpha, const void *A, int lda, const void *B, int ldb, float beta, void *C, int ldc,
              const void *bias, void *stream, rlvr_err *e);

/* Linear layer: out[T, OC] = inp[T, IC] @ w[OC, IC]^T + bias[OC] (bias may be NULL), all of
 * dtype dt. Deterministic. CPU twin: matmul_forward. */
int kern_matmul_forward(kern_blas *blas, kern_dtype dt, void *out, const void *inp, const void *w, const void *bias,
                        int T, int IC, int OC, void *stream, rlvr_err *e);
/* Its backward: dinp[T, IC] (+)= dout @ w (dtype dt; may be NULL), added to dinp when
 * accumulate is set and written over it otherwise (then dinp need not be zeroed first),
 * dw[OC, IC] += dout^T @ inp and dbias[OC] += sum_t dout (fp32; dbias may be NULL).
 * dbias is a fixed-order column sum (no atomics). CPU twin: matmul_backward. */
int kern_matmul_backward(kern_blas *blas, kern_dtype dt, void *dinp, int accumulate, float *dw, float *dbias,
                         const void *dout, const void *inp, const void *w, int T, int IC, int OC, void *stream,
                         rlvr_err *e);

/* The batch-invariant linear layer (kernels/gemm_inv.cu): out[T, OC] = inp[T, IC] @
 * w[OC, IC]^T + bias[OC] (bias may be NULL) with inp, w and bias bf16 and out bf16 or fp32
 * (out_dt). Each output element is the same sum in the same order whatever T, the row's
 * place among the T rows and the tile shape: fp32 from 0, one tensor-core product per 16
 * columns of IC in increasing order, then + bias, then one rounding. So a token's row has
 * the same bits in a decode step of 64 rows as in a training forward of 8192, which
 * cuBLASLt (another kernel for another row count) does not promise. tile:
 * KERN_INV_TILE_AUTO picks by shape (speed only); tests pin each shape to check that they
 * agree. Needs IC a multiple of 8, inp and w 16-byte aligned, out 8-byte aligned.
 * Deterministic. CPU twin: matmul_forward (equal to fp32 rounding). */
enum { KERN_INV_TILE_AUTO = 0, KERN_INV_TILE_SMALL = 1, KERN_INV_TILE_MEDIUM = 2, KERN_INV_TILE_LARGE = 3 };
int kern_matmul_invariant(kern_dtype out_dt, void *out, const void *inp, const void *w, const void *bias, int T,
                          int IC, int OC, int tile, void *stream, rlvr_err *e);

/* ---- embedding (kernels/embedding.cu) -------------------------------------------------------- */

/* out[t, :] = table[tokens[t], :]; out [T, C], table [V, C] (dtype dt), tokens [T] device
 * ints in [0, V). CPU twin: embedding_forward. */
int kern_embedding_forward(kern_dtype dt, void *out, const void *table, const int *tokens, int T, int C,
                           void *stream, rlvr_err *e);
/* dtable[tokens[t], :] += dout[t, :] (dtable fp32, dout dtype dt) without atomics: order,
 * starts, unique are embedding_group_rows' output (core/cpu_ops.h) copied to the device,
 * n_unique its return value; one block per distinct token adds that token's rows in
 * increasing t, the CPU twin's order, so fp32 results match embedding_backward bit for bit. */
int kern_embedding_backward(kern_dtype dt, float *dtable, const void *dout, const int *order, const int *starts,
                            const int *unique, int n_unique, int C, void *stream, rlvr_err *e);

/* ---- normalization, residual, RoPE, SwiGLU ---------------------------------------------------- */

/* RMSNorm forward: out[t, c] = x[t, c] / sqrt(mean_c(x[t, :]^2) + eps) * weight[c].
 * x, out: [T, C]; weight: [C] (all dtype dt); rstd (fp32, may be NULL): [T], saved for
 * backward. CPU twin: rmsnorm_forward. Deterministic (fixed reduction order). */
int kern_rmsnorm_forward(kern_dtype dt, void *out, float *rstd, const void *x, const void *weight, int T, int C,
                         float eps, void *stream, rlvr_err *e);

/* The residual add fused with the next RMSNorm: res_out = x + y, then
 * out = rmsnorm(res_out) as kern_rmsnorm_forward (res_out rounded to dt before the norm
 * reads it). x, y, res_out, out: [T, C]; res_out may alias x. CPU twin: the add loop of
 * model_forward followed by rmsnorm_forward. Deterministic. */
int kern_residual_rmsnorm_forward(kern_dtype dt, void *res_out, void *out, float *rstd, const void *x, const void *y,
                                  const void *weight, int T, int C, float eps, void *stream, rlvr_err *e);

/* RMSNorm backward, accumulating: dx[T, C] += d/dx (dtype dt; may be NULL) and
 * dweight[C] += d/dweight (fp32), given the forward's x, weight (dt) and rstd (fp32).
 * dweight is summed over rows without atomics: each of a fixed number of blocks writes
 * a partial row into `scratch` (kern_rmsnorm_backward_scratch(T, C) bytes of device
 * memory), then one pass adds them in block order. CPU twin: rmsnorm_backward. */
int kern_rmsnorm_backward(kern_dtype dt, void *dx, float *dweight, const void *dout, const void *x,
                          const void *weight, const float *rstd, int T, int C, void *scratch, void *stream,
                          rlvr_err *e);
size_t kern_rmsnorm_backward_scratch(int T, int C);

/* out[n] = a[n] + b[n] (out may alias a or b). Elementwise, deterministic. */
int kern_residual_add(kern_dtype dt, void *out, const void *a, const void *b, size_t n, void *stream, rlvr_err *e);

/* Converts n values between dtypes (e.g. an fp32 gradient into the bf16 stream);
 * bf16 rounds to nearest even. Deterministic. */
int kern_cast(kern_dtype to, void *dst, kern_dtype from, const void *src, size_t n, void *stream, rlvr_err *e);

/* Rotary embedding, rotate-half (Hugging Face), in place on x [T, NH, D] (dtype dt):
 * each pair (x[i], x[i + D/2]) at position pos[t] turns by pos[t] * inv_freq[i] (an fp32
 * angle, as transformers computes it). inv_freq: [D/2] fp32, pos: [T] int, both device
 * memory. Backward applies the transpose rotation to the gradient, in place.
 * Elementwise, deterministic. CPU twins: rope_forward, rope_backward. */
int kern_rope_forward(kern_dtype dt, void *x, const float *inv_freq, const int *pos, int T, int NH, int D,
                      void *stream, rlvr_err *e);

/* The rollout engine's RoPE and K/V write in one launch: q [T, H, D] turned in place as
 * kern_rope_forward does; k [T, KV, D] turned the same way into slot slot_mapping[t] of
 * one layer's pool (k_cache, v_cache [n_blocks * block_size, KV, D]) and v copied beside it;
 * a slot of -1 or outside the pool keeps nothing (k itself is left as it was). The same
 * bits as kern_rope_forward on q and k, then kern_kv_write. */
int kern_rope_kv_write(kern_dtype dt, void *q, const void *k, const void *v, void *k_cache, void *v_cache,
                       const float *inv_freq, const int *pos, const int *slot_mapping, int T, int H, int KV, int D,
                       int n_blocks, int block_size, void *stream, rlvr_err *e);
int kern_rope_backward(kern_dtype dt, void *dx, const float *inv_freq, const int *pos, int T, int NH, int D,
                       void *stream, rlvr_err *e);

/* SwiGLU: h[n] = silu(gate[n]) * up[n]; backward writes (not accumulates) dgate and dup
 * from dh. All dtype dt. Elementwise, deterministic. CPU twins: swiglu_forward,
 * swiglu_backward. */
int kern_swiglu_forward(kern_dtype dt, void *h, const void *gate, const void *up, size_t n, void *stream,
                        rlvr_err *e);
int kern_swiglu_backward(kern_dtype dt, void *dgate, void *dup, const void *dh, const void *gate, const void *up,
                         size_t n, void *stream, rlvr_err *e);
/* The forward from one product of the stacked gate and up weights: h [rows, I] from
 * gate_up [rows, 2I], row t holding its gate then its up; the same bits as
 * kern_swiglu_forward on the two halves. */
int kern_swiglu_forward_stacked(kern_dtype dt, void *h, const void *gate_up, int rows, int I, void *stream,
                                rlvr_err *e);

/* ---- LM head with log-probabilities (kernels/lmhead.cu) ------------------------------------------ */

/* logits[t, v] = x[t, :] . w[v, :] for x: [T, C] and w: [V, C] (dtype dt), consumed `chunk`
 * vocabulary rows at a time so that only a [T, chunk] block ever exists. Writes (fp32,
 * each may be NULL) logz[t] = log sum_v exp(logits[t, v]), logp[t] =
 * logits[t, targets[t]] - logz[t] (NaN where the target is outside [0, V); targets may be
 * NULL when logp is) and entropy[t] = logz[t] - E_p[logits[t, :]]. `workspace` is device
 * memory of kern_lmhead_workspace(dt, T, chunk) bytes. Rows are independent: a caller
 * short of memory runs row ranges one after another. Deterministic (fixed-order sums;
 * cuBLASLt's GEMM is deterministic). With `invariant` (bf16 only) each chunk's logits come
 * from kern_matmul_invariant, so a row's results do not depend on T or the row's place:
 * the bits kern_lmhead_logprobs_of_logits gives the same row from the rollout engine's
 * logits. CPU twin: lmhead_logprobs (model_logprobs). */
size_t kern_lmhead_workspace(kern_dtype dt, int T, int chunk);
/* What the bf16 forward may keep for its backward, so that the backward need not
 * recompute the logits (a GEMM as large as the forward's): the probabilities relative to
 * each chunk's maximum, p[t, v] = exp(logits[t, v] - max over the chunk), rounded to bf16
 * (relative error 2^-9, as FlashAttention rounds P), in probs [T, V], and those maxima in
 * chunk_max [T, kern_lmhead_chunks(V, chunk)]. */
static inline int kern_lmhead_chunks(int V, int chunk) { return chunk > 0 ? (V + chunk - 1) / chunk : 0; }
int kern_lmhead_logprobs(kern_blas *blas, kern_dtype dt, int invariant, float *logz, float *logp, float *entropy,
                         const void *x, const void *w, const int *targets, int T, int C, int V, int chunk,
                         void *workspace, void *probs, float *chunk_max, void *stream, rlvr_err *e);
/* logz and logp (either may be NULL) of kern_lmhead_logprobs from logits [T, V] fp32 that
 * are already made (the rollout engine's, from kern_matmul_invariant), folded chunk by
 * chunk in the order kern_lmhead_logprobs folds them: the same logits and chunk give the
 * same bits. chunk a multiple of 8 (or >= V), logits 16-byte aligned; workspace of
 * kern_lmhead_workspace(KERN_F32, T, 1) bytes. */
int kern_lmhead_logprobs_of_logits(float *logz, float *logp, const float *logits, const int *targets, int T, int V,
                                   int chunk, void *workspace, void *stream, rlvr_err *e);
/* Backward of L = sum_t dlogp[t] logp[t] + dentropy[t] entropy[t] (dlogp, dentropy may be
 * NULL), given the forward's logz and entropy: accumulates dx[T, C] += dL/dx and
 * dw[V, C] += dL/dw (fp32; either may be NULL). With probs and chunk_max (bf16 only) it
 * takes the probabilities the forward kept; without them it recomputes each chunk's
 * logits (with the forward's `invariant` choice). targets must lie in [0, V). Same
 * workspace as the forward. Deterministic. CPU twin: lmhead_backward (model_backward). */
int kern_lmhead_backward(kern_blas *blas, kern_dtype dt, int invariant, float *dx, float *dw, const void *x,
                         const void *w, const int *targets, const float *dlogp, const float *dentropy,
                         const float *logz, const float *entropy, int T, int C, int V, int chunk, void *workspace,
                         const void *probs, const float *chunk_max, void *stream, rlvr_err *e);

/* ---- attention (kernels/attention.cu) ------------------------------------------------------- */

/* Causal self-attention over packed variable-length sequences, FlashAttention-style
 * (tiles in shared memory, online softmax, no [T, T] scores), with grouped-query heads
 * read in place. q, out: [T, H, D]; k, v: [T, KV, D] (dtype dt); cu_seqlens: [n_seqs + 1]
 * int device memory, sequence s being tokens cu_seqlens[s] .. cu_seqlens[s + 1] - 1 at
 * positions 0..; max_seqlen bounds the longest. lse: [T, H] fp32, the log-sum-exp of each
 * row's scores (scale 1/sqrt(D)), for backward. H a multiple of KV, D <= 256. bf16 with
 * D = 64 or 128 and 16-byte aligned tensors runs on the tensor cores (P rounded to bf16 before P V, as FlashAttention
 * does); other cases in fp32 on the CUDA cores. Deterministic (no atomics).
 * CPU twin: attention_forward. */
int kern_attention_forward(kern_dtype dt, void *out, float *lse, const void *q, const void *k, const void *v,
                           const int *cu_seqlens, int n_seqs, int max_seqlen, int H, int KV, int D, void *stream,
                           rlvr_err *e);
/* Its backward, accumulating dq [T, H, D], dk, dv [T, KV, D] (dtype dt) from dout and the
 * forward's out and lse. dQ and dK/dV come from two kernels that each own their outputs
 * (no atomic adds, unlike FlashAttention-2): deterministic. bf16 with D = 64 or 128 runs
 * on the tensor cores (P and dS rounded to bf16 before their products); other cases in
 * fp32 on the CUDA cores. `scratch` is device memory of
 * kern_attention_backward_scratch(T, H, KV, D) bytes. CPU twin: attention_backward. */
int kern_attention_backward(kern_dtype dt, void *dq, void *dk, void *dv, const void *dout, const void *q,
                            const void *k, const void *v, const void *out, const float *lse, const int *cu_seqlens,
                            int n_seqs, int max_seqlen, int T, int H, int KV, int D, void *scratch, void *stream,
                            rlvr_err *e);
size_t kern_attention_backward_scratch(int T, int H, int KV, int D);

/* ---- paged KV cache of the rollout engine (kernels/paged_attention.cu) ------------------------
 * One layer's pool: k_cache, v_cache [n_blocks, block_size, KV, D] (dtype dt); position p of
 * a sequence lives in slot table[p / block_size] * block_size + p % block_size
 * (rollout/kv_pages.h hands out tables, slot mappings and copy orders). block_size is a
 * power of two; D <= 256, any size (rows whose bytes are a multiple of 16 and 16-byte
 * aligned pools load 16 bytes at a time, others element by element). */

/* The copies of one step (kv_copy of rollout/kv_pages.h: copies [n_copies, 3] device ints
 * src, dst, n_tokens): slots 0 .. n_tokens-1 of block src into block dst, K and V, for
 * n_layers layers whose pools lie layer_stride elements apart (k_cache, v_cache: layer
 * 0's). The copies must be disjoint (no block both a source and a destination); a copy
 * naming a block outside [0, n_blocks) or n_tokens outside [0, block_size] is skipped.
 * Exact. CPU twin: the memcpy of paged_model_copy. */
int kern_kv_block_copy(kern_dtype dt, void *k_cache, void *v_cache, const int *copies, int n_copies, int n_layers,
                       size_t layer_stride, int n_blocks, int block_size, int KV, int D, void *stream, rlvr_err *e);

/* Row t of k, v (dtype dt; row t at k + t * ld, ld >= KV * D elements, e.g. a fused QKV
 * tensor) into slot slot_mapping[t] of one layer's pool (slot_mapping: [T] device ints);
 * a slot of -1, or outside [0, n_blocks * block_size), is skipped. Exact. CPU twin:
 * kv_slot_mapping and the row copies of paged_model_forward. */
int kern_kv_write(kern_dtype dt, void *k_cache, void *v_cache, const void *k, const void *v, size_t ld,
                  const int *slot_mapping, int T, int n_blocks, int block_size, int KV, int D, void *stream,
                  rlvr_err *e);

/* A forward's sequences as the paged attention kernels read them (all pointers device
 * ints, as rollout/fwd_batch.h lays them out; the maxima are the host's, for the grids). */
typedef struct kern_paged_batch {
    const int *block_tables; /* [n_seqs, max_blocks] */
    const int *cu_q;         /* [n_seqs + 1] sequence i's query rows cu_q[i] .. cu_q[i + 1] - 1; cu_q[0] = 0 */
    const int *seq_lens;     /* [n_seqs] cache length once the rows are written; row r of sequence i is at
                                position seq_lens[i] - n_new + r, n_new = cu_q[i + 1] - cu_q[i] */
    int n_seqs, max_blocks;  /* n_seqs >= 1 */
    int T;                   /* cu_q[n_seqs]: query rows */
    int max_q;               /* >= every n_new */
    int max_seq_len;         /* >= every seq_lens[i] (split-KV sizes its grid and scratch by it) */
    /* cascade only (NULL / 0 otherwise): sequences cu_groups[g] .. cu_groups[g + 1] - 1 form
     * group g (every sequence in one group: cu_groups[0] = 0, cu_groups[n_groups] = n_seqs)
     * and share their first prefix_blocks[g] table entries, every query lying past them */
    const int *cu_groups;    /* [n_groups + 1] */
    const int *prefix_blocks; /* [n_groups] */
    int n_groups;
    int max_group_rows;      /* >= cu_q[cu_groups[g + 1]] - cu_q[cu_groups[g]] for every g */
} kern_paged_batch;

/* Attention of every query row of q [T, H, D] (dtype dt) to its sequence's positions 0 ..
 * its own through the block tables, query head h reading kv head h / (H / KV) in place:
 * out [T, H, D] (dt), lse [T, H] fp32 (scale 1/sqrt(D)). Decode (n_new = 1), prefill chunks
 * and the verification of k > 1 draft tokens are the same call. One thread block per
 * (sequence, kv head, tile of query rows) owns a query row's whole sum: fp32 dot products,
 * an online softmax over tiles of 32 keys in a fixed order, so a row's result does not
 * depend on the other sequences of the call (batch-invariant) and repeats bit for bit.
 * H / KV <= 64. A sequence whose indices are inconsistent (a block id outside the pool,
 * seq_lens past its table, n_new past max_q or seq_lens) gets NaN rows, never a read
 * outside the arrays. CPU twin: paged_attention_forward (equal to fp32 rounding). */
int kern_paged_attention_forward(kern_dtype dt, void *out, float *lse, const void *q, const void *k_cache,
                                 const void *v_cache, const kern_paged_batch *b, int n_blocks, int block_size, int H,
                                 int KV, int D, void *stream, rlvr_err *e);

/* The same, split-KV ("flash decoding") for long contexts: each row's keys cut into chunks
 * of split_len positions from 0, one thread block per (chunk, sequence, kv head, row
 * tile) writing a partial result to scratch, then the partials merged in chunk order (fp32,
 * each part weighted by exp(lse - max lse)). The split is fixed, so results stay
 * batch-invariant; a sequence longer than the chunks reach (at least max_seq_len) gets NaN
 * rows, never a sum over part of its keys.
 * bf16 with D 64 or 128, H / KV <= 16 and 16-byte aligned tensors runs on the tensor
 * cores (P rounded to bf16, as FlashAttention does), in chunks of split_len rounded up to
 * 64 positions. scratch: kern_paged_attention_split_scratch(..) bytes of device memory.
 * CPU twin: paged_attention_split_forward. */
size_t kern_paged_attention_split_scratch(int T, int H, int D, int max_seq_len, int split_len);
int kern_paged_attention_split_forward(kern_dtype dt, void *out, float *lse, const void *q, const void *k_cache,
                                       const void *v_cache, const kern_paged_batch *b, int n_blocks, int block_size,
                                       int H, int KV, int D, int split_len, void *scratch, void *stream,
                                       rlvr_err *e);

/* The same in the training attention's order (bf16, D 64 or 128, H / KV <= 16, 16-byte
 * aligned tensors): each query row sums its keys as kern_attention_forward's tensor-core
 * kernel sums the same row of a packed sequence - key tiles of 64 positions from 0, the same
 * products, exponentials and roundings in the same order, no split - so a row's out and
 * lse have that forward's bits when q and the cached K/V do. The rollout engine's
 * batch-invariant mode uses it, so that its sampling log-probabilities are the trainer's.
 * A thread block per (tile of 16 / (H / KV) rows a warp, kv head, sequence). Inconsistent
 * indices give NaN rows as above. Compared with kern_attention_forward bit for bit in
 * tests/gpu/test_paged_attention.c. */
int kern_paged_attention_tc_forward(void *out, float *lse, const void *q, const void *k_cache, const void *v_cache,
                                    const kern_paged_batch *b, int n_blocks, int block_size, int H, int KV, int D,
                                    void *stream, rlvr_err *e);

/* Cascade attention for groups sharing prompt blocks (b's cu_groups, prefix_blocks):
 * phase 1, one thread block per (group, kv head, tile of up to 64 / (H / KV) of the group's
 * query rows) attends them to the shared prefix, so the prefix is read once for a group of
 * G decode rows when G * H / KV <= 64; phase 2 each row to its own positions from the
 * prefix's end on; then the parts are merged as attention_merge does. In bf16 with D 64 or
 * 128, H / KV <= 16 and 16-byte aligned tensors both phases run on the tensor cores and
 * cut their keys in chunks of split_len rounded up to 64 (a partial per chunk; the other
 * cases ignore split_len). scratch: kern_cascade_attention_scratch(T, H, D, b->max_seq_len,
 * split_len) bytes. CPU twin: cascade_attention_forward. */
size_t kern_cascade_attention_scratch(int T, int H, int D, int max_seq_len, int split_len);
int kern_cascade_attention_forward(kern_dtype dt, void *out, float *lse, const void *q, const void *k_cache,
                                   const void *v_cache, const kern_paged_batch *b, int n_blocks, int block_size,
                                   int H, int KV, int D, int split_len, void *scratch, void *stream, rlvr_err *e);

/* AdamW on fp32 master weights with fp32 state (m, v: [n]), step counted from 1; when
 * params_bf16 is not NULL it receives the updated weights rounded to bf16 (the copy the
 * forward pass reads). clip_workspace (may be NULL) is the workspace of a kern_grad_norm
 * whose clip factor has not been applied yet: each gradient is scaled by it as it is read,
 * exactly as kern_grad_scale would (grads itself is left unscaled). CPU twin: adamw_update
 * (core/cpu_ops.h), which rl_adamw_step calls. */
int kern_adamw_step(float *params, void *params_bf16, const float *grads, void *clip_workspace, float *m, float *v,
                    size_t n, long long step, double lr, double beta1, double beta2, double eps, double weight_decay,
                    void *stream, rlvr_err *e);

/* Global L2 norm of grads [n] (deterministic: no atomics), and the factor that clips it to
 * max_norm, min(1, max_norm / (norm + 1e-6)) (1 when max_norm <= 0), left in `workspace`
 * (device memory of kern_clip_grad_norm_workspace() bytes) for kern_grad_scale or
 * kern_adamw_step. The norm goes to *norm_host (may be NULL: then nothing waits for the GPU). */
int kern_grad_norm(const float *grads, size_t n, double max_norm, void *workspace, double *norm_host, void *stream,
                   rlvr_err *e);
/* Multiplies grads [n] by the clip factor a kern_grad_norm left in workspace. */
int kern_grad_scale(float *grads, size_t n, void *workspace, void *stream, rlvr_err *e);
/* Both: clip_grad_norm_ on the device. CPU twin: clip_grad_norm (core/cpu_ops.h). */
int kern_clip_grad_norm(float *grads, size_t n, double max_norm, void *workspace, double *norm_host, void *stream,
                        rlvr_err *e);
size_t kern_clip_grad_norm_workspace(void);

/* ---- sampling (kernels/sampling.cu) ----------------------------------------------------------- */

/* One row's sampling parameters: the fields of sample_params (rollout/sampling.h), which
 * the caller has checked with sample_params_check. temperature 0 is greedy; top_k 0 (or
 * >= V), top_p 1 and min_p 0 are off. */
typedef struct kern_sample_params {
    float temperature;
    int top_k;
    float top_p;
    float min_p;
} kern_sample_params;

/* Draws one token per row of logits [N, V] (fp32) as sample_next does: greedy (argmax,
 * lowest id on ties) or temperature, then top-k, top-p and min-p, then the uniform
 * rng_uniform(seed, seq_ids[i], positions[i], 0) walked over the kept tokens in id order.
 * params [N], seq_ids [N], positions [N] are device memory; tokens [N] receives the ids and
 * logp [N] (may be NULL) their log-probabilities under the distribution drawn from (0 for
 * greedy). One block per row with fixed-order sums: a row's token and log-probability are
 * the same bits whatever other rows share the call. Probabilities are recomputed on each
 * pass, nothing is sorted; kernels/sampling.cu describes the passes. Agrees with the CPU
 * twin except where its draw (or a top-p threshold) lies within rounding of a token
 * boundary. */
int kern_sample(const float *logits, int N, int V, const kern_sample_params *params, const uint64_t *seq_ids,
                const uint64_t *positions, uint64_t seed, int *tokens, float *logp, void *stream, rlvr_err *e);

/* The device's Philox4x32-10, for testing it against core/rng.c: keys [n, 3] hold (seed,
 * stream, position); out[i] = rng_uniform(seed, stream, position, 0) and bits [n, 4] (may be
 * NULL) the raw block. All device memory. */
int kern_rng_uniform(float *out, uint32_t *bits, const uint64_t *keys, int n, void *stream, rlvr_err *e);

#ifdef __cplusplus
}
#endif

#endif
