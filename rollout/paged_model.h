/* paged_model.h - the model's forward against a paged KV cache, on the CPU: the host twin
 * of the GPU rollout engine's forward, and what tests the engine's host side end to end
 * with a real model.
 *
 * It runs a fwd_batch (fwd_batch.h): each row's K/V go to its slot of the pool, each
 * sequence attends to its positions through its block table, and each draw gets the
 * logits of its row. The arithmetic is model_forward's (core/model.c) operation for
 * operation, so a sequence's logits do not depend on the batch, on prefill chunking or on
 * sharing its prompt's blocks: generation through the scheduler equals sample_generate
 * token for token (tests/unit/test_paged_model.c, BLAS off). */
#ifndef RLVR_PAGED_MODEL_H
#define RLVR_PAGED_MODEL_H

#include "err.h"
#include "fwd_batch.h"
#include "kv_pages.h"
#include "model.h"

typedef struct paged_model {
    const model *m;
    int n_blocks, block_size, max_tokens, max_len, max_draws;
    float *k, *v; /* [L, n_blocks * block_size, KV*D] the pool, K after RoPE */
    float *work;  /* activations for max_tokens rows and one sequence's attention */
} paged_model;

/* A pool of n_blocks blocks of block_size for model m, and room for forwards of up to
 * max_tokens rows, sequences of max_len positions and max_draws logit rows. */
int paged_model_init(paged_model *pm, const model *m, int n_blocks, int block_size, int max_tokens, int max_len,
                     int max_draws, rlvr_err *e);
void paged_model_free(paged_model *pm);

/* Runs a step's block copies (kv_copy: slots 0 .. n_tokens-1 of src into dst, every
 * layer, K and V); before the forward that follows them. */
void paged_model_copy(paged_model *pm, const kv_copy *copies, int n_copies);

/* The forward of batch b: writes logits [b->n_draws, V], row d for draw d. -1 when b
 * exceeds the room given to paged_model_init. */
int paged_model_forward(paged_model *pm, const fwd_batch *b, float *logits, rlvr_err *e);

#endif
