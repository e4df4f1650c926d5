/* engine.h - the rollout engine's loop over the paged KV cache: groups of samples that
 * share a prompt go through the continuous-batching scheduler (scheduler.h), each step's
 * block copies and forward run on paged_model (paged_model.h, the CPU) or, given a
 * gpu_model, on gpu_paged (kernels/model_gpu.h: the GPU, with that model's weights in
 * place). Every draw is keyed by (seed, the sample's seq_id, its position), exactly as
 * sample_generate keys it: on the CPU sample_next draws from logits on the host; on the GPU
 * kern_sample draws on the device (the same filters and key; only the tokens and their
 * log-probabilities come back), agreeing with sample_next except where a draw lies within
 * rounding of a token boundary.
 *
 * Against sample_generate: the prompt of consecutive sequences with equal prompts is
 * prefilled once and its KV blocks shared; sequences join and leave the running batch
 * every step instead of in fixed batches. With the same logits every token and
 * log-probability is the same (tests/unit/test_paged_model.c, BLAS off; with BLAS the
 * two forwards may round differently). */
#ifndef RLVR_ENGINE_H
#define RLVR_ENGINE_H

#include "err.h"
#include "model.h"
#include "model_gpu.h"
#include "sampling.h"
#include "scheduler.h"

typedef struct engine_opts {
    int block_size; /* tokens per KV block; 0: 16 */
    int n_blocks;   /* the pool; 0: enough that no running sample is ever preempted */
    int max_tokens; /* tokens per forward (decodes + prefill chunks); 0: running samples + 1024 */
    int watermark;  /* free blocks an admission leaves; 0: 1 */
    gpu_model *gpu; /* NULL: the forward on the CPU; else on the GPU with this model's weights
                       (the model's config must be m's); sampling on the device too */
    int eager;      /* GPU: launch every decode step's kernels directly instead of replaying
                       CUDA graphs (model_gpu_paged.c) */
    long long *graph_steps; /* GPU, may be NULL: receives the steps replayed from graphs */
} engine_opts;

/* Generates seqs[0..n) as sample_generate does. o->batch bounds the running samples (0:
 * all), raised to the largest group: a group's samples start together. Fills each sequence's out, out_logp, n_out and finish; *stats (may be NULL)
 * gets the scheduler's totals. */
int engine_generate(model *m, sample_seq *seqs, int n, const sample_gen_opts *o, const engine_opts *eo,
                    sched_stats *stats, rlvr_err *e);

/* Device memory engine_generate takes on the GPU (KV pool and step buffers, what
 * gpu_paged_new checks) for n_groups prompts of at most max_prompt tokens with group_size
 * samples each, under o and eo: the worst case, every prompt max_prompt long. For a
 * memory plan made before any generation. */
size_t engine_gpu_bytes(const model_config *c, kern_dtype dt, int n_groups, int group_size, int max_prompt,
                        const sample_gen_opts *o, const engine_opts *eo);

#endif
