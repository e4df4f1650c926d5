/* scheduler.h - continuous batching over the paged KV cache (kv_pages.h): which sequences
 * the next model call runs, and on which tokens.
 *
 * Work arrives as groups: a prompt, G samples, max_new, stop ids. A group's prompt is
 * prefilled once, in chunks under the per-step token budget, into one sequence; the last
 * row's logits give each of the G samples its first token, and the sequence is then
 * forked into G, which share the prompt's blocks by reference count. Each step decodes one
 * token per running sample and fills the rest of the budget with prefill chunks; samples
 * that draw a stop id or reach max_new leave and free their blocks, and waiting work joins
 * while blocks allow.
 *
 * The loop a caller runs (the model, the device and the sampler are the caller's):
 *     while ((r = sched_step(s, &st, e)) == 1) {
 *         run st.copies (block copies), then the forward over st.items: an item feeds
 *           st.tokens[first_token .. + n_tokens) at positions pos.., writing their K/V
 *           through kv_slot_mapping(sched_pages(s), seq, pos, n_tokens, ..);
 *         for each draw d: sample a token from the logits of its item's last row,
 *           keyed by (seed, the sample's sequence id, d.position);
 *         sched_commit(s, drawn_tokens, e);
 *     }
 *
 * Policy. Admission is first come first served (preempted samples before new groups) and
 * reserves a sequence's whole known length (the prompt, or prompt + tokens so far) plus
 * `watermark` free blocks for running samples to grow into. When a decode step needs more
 * blocks than are free, the most recently admitted work is preempted: its blocks are
 * freed and it is queued to recompute prompt + generated tokens later (outputs are the
 * same: a draw depends only on its sample's tokens; a sample whose group still holds the
 * prompt's blocks forks them again and recomputes only the rest); a step that preempts
 * admits nothing. A group whose prompt + max_new - 1 positions do not fit in the whole
 * pool is refused when added, so the oldest running work can always proceed and the
 * loop never deadlocks. The loop above and fwd_batch.h turn a step into a forward. */
#ifndef RLVR_SCHEDULER_H
#define RLVR_SCHEDULER_H

#include "err.h"
#include "kv_pages.h"
#include "rollout.h"

typedef struct sched_opts {
    int n_blocks, block_size; /* the pool (kv_blocks_for_bytes sizes it) */
    int max_running;          /* sequences at once; a group being prefilled counts its G samples */
    int max_tokens;           /* tokens fed per step: one per decode, plus prefill chunks */
    int max_len;              /* longest sequence, prompt + max_new - 1: the block-table width */
    int watermark;            /* free blocks an admission must leave */
} sched_opts;

typedef struct sched_group {
    const int *prompt; /* [n_prompt] token ids, copied */
    int n_prompt;
    int n_samples; /* G */
    int max_new;   /* tokens generated per sample at most, the stop token included */
    const int *stop_ids; /* [n_stop], copied: a drawn stop id ends its sample (and is kept) */
    int n_stop;
} sched_group;

/* One sequence's part of a model call. */
typedef struct sched_item {
    int seq;           /* kv_pages sequence: its block table is kv_block_table(sched_pages(s), seq) */
    int pos;           /* position of the first fed token: the cache holds 0 .. pos-1 before the call */
    int n_tokens;      /* tokens fed: step.tokens[first_token .. first_token + n_tokens) */
    int first_token;
    int group;
    int prefix_blocks; /* leading blocks holding the group's shared prompt: the same block ids in every
                          item of this group with prefix_blocks > 0 (cascade attention reads them once) */
    int n_draws;       /* tokens drawn from the logits of this item's last row: 0 for a prefill chunk that
                          does not end the prompt, G at the end of a group's prompt, else 1 */
    int first_draw;    /* step.draws[first_draw .. first_draw + n_draws) */
} sched_item;

typedef struct sched_draw {
    int sample;   /* sample index: the group's first sample (sched_add_group) + index in the group */
    int position; /* position of the drawn token in its sample's sequence (keys the random draw) */
} sched_draw;

/* The work of one model call. Arrays belong to the scheduler; valid until sched_commit. */
typedef struct sched_batch {
    const sched_item *items;
    int n_items;
    const int *tokens; /* [n_tokens] the fed tokens, item after item */
    int n_tokens;
    const sched_draw *draws;
    int n_draws;
    const kv_copy *copies; /* block copies to run before the forward writes; no block is both
                              a source and a destination, so they may run in parallel */
    int n_copies;
    int n_preempted; /* sequences preempted to plan this step */
} sched_batch;

typedef struct scheduler scheduler;

/* A scheduler over a pool of o->n_blocks blocks. Allocates everything a step needs now. */
scheduler *sched_new(const sched_opts *o, rlvr_err *e);
void sched_free(scheduler *s);

/* Queues a group; returns its first sample's index (samples are numbered in the order
 * groups are added), or -1 with a message when it can never run: an empty prompt, no
 * samples, max_new < 1, more samples than max_running, prompt + max_new - 1 past max_len,
 * or more blocks than the pool holds. */
int sched_add_group(scheduler *s, const sched_group *g, rlvr_err *e);

/* Plans the next model call into *step: returns 1, or 0 when every sample has finished,
 * or -1 when the previous step was not committed. */
int sched_step(scheduler *s, sched_batch *step, rlvr_err *e);

/* Reports the step's drawn tokens, tokens[i] for step.draws[i]: samples advance, those
 * that drew a stop id or reached max_new finish and free their blocks, and groups whose
 * prompt ended fork into their samples. */
int sched_commit(scheduler *s, const int *tokens, rlvr_err *e);

/* The tokens sample `sample` has generated so far ([*n_out]) and, once it has finished
 * (returns 1 then in *done), why. */
const int *sched_output(const scheduler *s, int sample, int *n_out, int *done, rollout_finish *finish);

/* The pool, read by the device side for block tables and slot mappings. */
const kv_pages *sched_pages(const scheduler *s);

/* Totals since sched_new, for logs and tests. */
typedef struct sched_stats {
    long long steps, tokens, copies; /* model calls, tokens fed, block copies */
    long long preempted;             /* sequences preempted */
    long long prompt_reforks;        /* preempted samples that took their group's prompt blocks
                                        from a running sibling instead of recomputing them */
} sched_stats;
sched_stats sched_get_stats(const scheduler *s);

#endif
