/* rollout.h - the public header of rollout/: generating samples.
 *
 * Now: why a sample ended, sampling one token from logits (sampling.h), and the host side
 * of the GPU engine: the paged KV cache's bookkeeping (kv_pages.h), continuous batching
 * (scheduler.h), a step's flat forward inputs (fwd_batch.h) and the model's forward over
 * the paged pool on the CPU (paged_model.h); see docs/rollout.md.
 * Later: the engine's kernels and speculative decoding. */
#ifndef RLVR_ROLLOUT_H
#define RLVR_ROLLOUT_H

#include <stddef.h>

typedef enum rollout_finish { ROLLOUT_STOP = 0, ROLLOUT_LENGTH } rollout_finish;

/* "stop" (an end-of-sequence token or stop string) or "length" (max_new_tokens):
 * the values of samples.finish_reason in the run store. */
const char *rollout_finish_name(rollout_finish f);

/* The allocator of rollout/'s KV cache bookkeeping, scheduler and forward batches, in
 * Lua's one-function style: f(ptr, size) reallocates ptr to size bytes (ptr NULL:
 * allocates) and returns NULL on failure; f(ptr, 0) frees. NULL restores the C library's.
 * Tests install one that fails the Nth call, to reach every out-of-memory path. Set it
 * before creating rollout objects (an object is freed by the allocator it was made with). */
typedef void *(*rollout_alloc_fn)(void *ptr, size_t size);
void rollout_set_alloc(rollout_alloc_fn f);
/* What rollout/ allocates with: the installed function. */
void *rollout_realloc(void *ptr, size_t size);
static inline void *rollout_malloc(size_t size) { return size ? rollout_realloc(NULL, size) : NULL; }
static inline void rollout_free(void *ptr) {
    if (ptr) rollout_realloc(ptr, 0);
}

#endif
