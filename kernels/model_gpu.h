/* model_gpu.h - the training model on a GPU: the CPU `model`'s parameters uploaded once
 * (fp32 master weights, a bf16 or fp32 working copy the kernels read, fp32 gradients,
 * fp32 AdamW moments), forward over packed sequences from position 0, per-token
 * log-probabilities and entropies of given targets, backward into the fp32 gradients,
 * global-norm clipping and AdamW on the device, and the weights downloaded back into the
 * host model for checkpoints and for the CPU rollout engine.
 *
 * Packing: a micro-batch is n sequences laid end to end in one row of T tokens; sequence
 * s holds tokens cu_seqlens[s] .. cu_seqlens[s + 1] - 1 at positions 0.., and attention
 * never crosses a boundary (kern_attention_* take cu_seqlens). No padding exists.
 *
 * Memory: everything is allocated once, from a plan computed from the model config and
 * the largest micro-batch (gpu_mem_plan_compute), checked against the device's free
 * memory before the first allocation, so a run that cannot fit fails at start with the
 * sizes named, never with an out-of-memory in the middle of a step.
 *
 * Determinism: every kernel underneath repeats bit for bit, and the host issues them in
 * a fixed order on one stream, so two runs from the same weights and batches give the
 * same bits. Activation recomputation keeps only each layer's input and reruns the layer
 * forward (the same calls in the same order) before its backward: the gradients are the
 * same bits as without it.
 *
 * Compiled in every build; without CUDA gpu_model_new fails ("built without CUDA") and
 * only the plan functions are of use. Letters in shapes are model.h's. */
#ifndef RLVR_MODEL_GPU_H
#define RLVR_MODEL_GPU_H

#include <stddef.h>

#include "err.h"
#include "kernels.h"
#include "model.h"

typedef struct gpu_model_opts {
    kern_dtype dtype;   /* activations and the working copy of the weights: KERN_BF16 or KERN_F32 */
    int max_tokens;     /* T bound: tokens of one packed micro-batch */
    int max_seqs;       /* sequences of one packed micro-batch */
    int recompute;      /* keep only each layer's input; recompute the layer in backward */
    int train;          /* 0: forward only (a frozen reference): no gradients, optimizer or fp32 master in bf16 */
    int lm_chunk;       /* vocabulary rows per LM-head chunk (a tuning knob); 0: the default, 8192 */
    int lm_keep_probs;  /* bf16 training without recompute: keep the LM head's probabilities from forward
                         * for backward ([T, V] bf16: T V 2 bytes of activations, what the chunked LM
                         * head otherwise never holds) instead of recomputing the logits (a GEMM the
                         * size of the LM head's forward); off by default */
    int invariant;      /* bf16: every forward product through kern_matmul_invariant (the linear layers and
                         * the LM head's logits), so that a token's forward has the same bits whatever the
                         * micro-batch around it; the rollout engine on this model then uses the paged
                         * attention in the training attention's order, and its sampling log-probabilities
                         * are the trainer's bit for bit (model_gpu_paged.c). Backward is unchanged. */
    double beta1, beta2, eps, weight_decay; /* AdamW (train only), as rl/optim.h */
} gpu_model_opts;

/* Bytes of device memory by category, for one gpu_model. */
typedef struct gpu_mem_plan {
    size_t n_params;
    size_t weights;     /* fp32 master (train) + the bf16 working copy (bf16) */
    size_t grads;       /* fp32, one per parameter (train) */
    size_t optimizer;   /* AdamW m and v, fp32 (train) */
    size_t activations; /* what forward keeps for backward */
    size_t workspace;   /* backward scratch, LM-head chunks, cuBLASLt workspace, reductions */
    size_t headroom;    /* left free for the CUDA runtime and cuBLASLt's own allocations */
    size_t total;       /* the sum of the above */
} gpu_mem_plan;

/* The number of parameters of config c (model_init's n_params, without allocating). */
size_t gpu_model_param_count(const model_config *c);

/* The plan of a gpu_model for config c and options o. */
void gpu_mem_plan_compute(const model_config *c, const gpu_model_opts *o, gpu_mem_plan *p);
/* One line per category ("weights 1.23 GiB" ...) into buf (always terminated). */
void gpu_mem_plan_format(const gpu_mem_plan *p, char *buf, size_t n);
/* 0 when p->total fits in free_bytes; else -1 with a message naming every size, the free
 * and total memory, and what to lower (micro_batch_size, sequence length, recompute). */
int gpu_mem_plan_check(const gpu_mem_plan *p, const gpu_model_opts *o, size_t free_bytes, size_t total_bytes,
                       rlvr_err *e);

typedef struct gpu_model gpu_model;

/* Plans, checks the plan against device 0's free memory, allocates and uploads m's
 * parameters (gradients and AdamW state zeroed, step 0). The plan is kept (gpu_model_plan). */
gpu_model *gpu_model_new(const model *m, const gpu_model_opts *o, rlvr_err *e);
void gpu_model_free(gpu_model *g);
const gpu_mem_plan *gpu_model_plan(const gpu_model *g);

/* Parameters between host and device: upload replaces the master weights (and refreshes
 * the working copy); download writes the fp32 master weights into m->params (a
 * forward-only bf16 model has none: an error). m must have g's config. */
int gpu_model_upload(gpu_model *g, const model *m, rlvr_err *e);
int gpu_model_download(gpu_model *g, model *m, rlvr_err *e);
/* 0 when host model m has g's shape (parameters, hidden size, layers, vocabulary); else
 * -1 with a message. */
int gpu_model_check_host(const gpu_model *g, const model *m, rlvr_err *e);
/* The fp32 gradients, in model.params' layout (n_params floats). */
int gpu_model_download_grads(gpu_model *g, float *grads, rlvr_err *e);

/* Forward of n_seqs packed sequences of seq_len[i] tokens each (T = their sum, at most
 * max_tokens), every sequence from position 0; tokens[T] and targets[T] in [0, V).
 * Writes logp[t] = log p(targets[t] | tokens up to t) and entropy[t] (host arrays [T],
 * either may be NULL) and keeps what backward needs. */
int gpu_model_forward(gpu_model *g, int n_seqs, const int *seq_len, const int *tokens, const int *targets,
                      float *logp, float *entropy, rlvr_err *e);
/* Backward of L = sum_t dlogp[t] logp[t] + dentropy[t] entropy[t] (host arrays [T];
 * dentropy may be NULL) through the last forward, accumulating into the gradients. */
int gpu_model_backward(gpu_model *g, const float *dlogp, const float *dentropy, rlvr_err *e);

int gpu_model_zero_grads(gpu_model *g, rlvr_err *e);
/* rl_clip_grad_norm on the device: *norm (may be NULL) gets the norm before clipping. */
int gpu_model_clip_grad_norm(gpu_model *g, double max_norm, double *norm, rlvr_err *e);
/* rl_adamw_step on the device: the step count advances by one, then every parameter is
 * updated and the working copy refreshed. */
int gpu_model_adamw_step(gpu_model *g, double lr, rlvr_err *e);
/* AdamW state between host and device (m, v: n_params floats each), for checkpoints. */
int gpu_model_optimizer_upload(gpu_model *g, const float *m, const float *v, long long step, rlvr_err *e);
int gpu_model_optimizer_download(gpu_model *g, float *m, float *v, long long *step, rlvr_err *e);

/* ---- the rollout engine's forward over a paged KV cache (model_gpu_paged.c) ----------------- */

/* One step of the engine as host arrays (rollout/fwd_batch.h's fields, which the engine
 * passes as they are): n_tokens rows over n_seqs sequences, n_draws rows whose logits are
 * wanted. Shapes as kern_paged_batch (kernels.h) and fwd_batch. */
typedef struct gpu_paged_step {
    int n_seqs, n_tokens, n_draws, max_blocks;
    const int *tokens, *positions, *slot_mapping; /* [n_tokens] */
    const int *cu_q, *seq_lens;                   /* [n_seqs + 1], [n_seqs] */
    const int *block_tables;                      /* [n_seqs, max_blocks] */
    const int *logit_rows;                        /* [n_draws] */
    /* groups sharing prompt blocks (fwd_batch's; n_groups 0: none): sequences cu_groups[g] ..
     * cu_groups[g + 1] - 1 share their first prefix_blocks[g] table entries, every new row
     * past them. The bf16 engine's cascade attention reads those blocks once a group. */
    int n_groups;
    const int *cu_groups, *prefix_blocks; /* [n_groups + 1], [n_groups] */
} gpu_paged_step;

typedef struct gpu_paged gpu_paged;

/* A KV pool of n_blocks blocks of block_size positions (every layer, K and V, in g's
 * dtype; one more block past them that padding rows use) and room for steps of up to
 * max_tokens rows, max_seqs sequences with tables max_blocks wide and max_draws logit
 * rows. The forward reads g's weights where they are (a training model's working copy:
 * after an optimizer step the next forward uses the new weights, no copy). g must outlive
 * the result. Decode steps replay CUDA graphs where the build has them (see
 * model_gpu_paged.c); gpu_paged_use_graphs(p, 0) runs every launch directly instead. */
gpu_paged *gpu_paged_new(gpu_model *g, int n_blocks, int block_size, int max_tokens, int max_seqs, int max_blocks,
                         int max_draws, rlvr_err *e);
void gpu_paged_free(gpu_paged *p);
void gpu_paged_use_graphs(gpu_paged *p, int on);
/* Decode steps run from graphs so far. */
long long gpu_paged_graph_steps(const gpu_paged *p);
/* Device bytes a gpu_paged of these sizes takes (pool and activations). */
/* 0 when the engine can run config c batch-invariantly (gpu_model_opts.invariant: the
 * attention in the training attention's tensor-core order needs head size 64 or 128 and at
 * most 16 query heads a kv head); else -1 with a message naming both. gpu_paged_new checks
 * it; rlvr train checks it at the start. */
int gpu_paged_check_invariant(const model_config *c, rlvr_err *e);
size_t gpu_paged_bytes(const model_config *c, kern_dtype dt, int n_blocks, int block_size, int max_tokens,
                       int max_seqs, int max_blocks, int max_draws);

/* The step's block copies (kv_copy triples src, dst, n_tokens: host ints [n_copies, 3]),
 * every layer, K and V; before the forward that follows them. */
int gpu_paged_copy(gpu_paged *p, const int *copies, int n_copies, rlvr_err *e);

/* The forward of one step: each row's K/V written to its slot, each sequence attending to
 * its positions through its block table (kern_paged_attention_forward), and the logits
 * [n_draws, V] of the draw rows in fp32: on the device (gpu_paged_logits) and, when
 * logits is not NULL, copied to the host. The arithmetic of gpu_model_forward's layers on
 * these rows; CPU twin: paged_model_forward (rollout/paged_model.h). */
int gpu_paged_forward(gpu_paged *p, const gpu_paged_step *s, float *logits, rlvr_err *e);
const float *gpu_paged_logits(const gpu_paged *p);

/* Draws a token from each of the n logit rows the last forward left (n must be its
 * n_draws) with kern_sample on the device, keyed by (seed, seq_ids[d], positions[d]) and
 * the same params for every row: tokens[d] and logp[d] (may be NULL; the log-probability
 * under the distribution drawn from) come back to the host, the logits stay on the device.
 * Host arrays [n]. */
int gpu_paged_sample(gpu_paged *p, int n, const kern_sample_params *params, uint64_t seed, const uint64_t *seq_ids,
                     const uint64_t *positions, int *tokens, float *logp, rlvr_err *e);

#endif
