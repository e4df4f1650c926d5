/* rollout.h - the public header of rollout/: generating samples.
 *
 * Now: why a sample ended, sampling one token from logits (sampling.h), and the host side
 * of the GPU engine: the paged KV cache's bookkeeping (kv_pages.h), continuous batching
 * (scheduler.h) and a step's flat forward inputs (fwd_batch.h); see docs/rollout.md.
 * Later: the engine's kernels and speculative decoding. */
#ifndef RLVR_ROLLOUT_H
#define RLVR_ROLLOUT_H

typedef enum rollout_finish { ROLLOUT_STOP = 0, ROLLOUT_LENGTH } rollout_finish;

/* "stop" (an end-of-sequence token or stop string) or "length" (max_new_tokens):
 * the values of samples.finish_reason in the run store. */
const char *rollout_finish_name(rollout_finish f);

#endif
