/* fwd_batch.h - the flat index arrays one forward over the paged KV cache reads, built
 * on the host from a scheduler step (scheduler.h) and copied to the device as they are.
 *
 * Sequences are reordered so that the sequences of one group that share its prompt
 * blocks (sched_item.prefix_blocks > 0) are contiguous: cascade attention
 * (cascade_attention_forward in core/cpu_ops.h) takes them as cu_groups / prefix_blocks.
 * Every other sequence is a group of its own with no shared prefix. Token rows follow the
 * sequences' new order. */
#ifndef RLVR_FWD_BATCH_H
#define RLVR_FWD_BATCH_H

#include "err.h"
#include "scheduler.h"

typedef struct fwd_batch {
    int cap_seqs, cap_tokens, cap_draws, max_blocks; /* room, fixed at fwd_batch_init */
    int n_seqs, n_tokens, n_draws, n_groups;
    int *tokens;        /* [T] fed token ids */
    int *positions;     /* [T] their positions (RoPE) */
    int *slot_mapping;  /* [T] pool slot (block * block_size + offset) their K/V are written to */
    int *cu_q;          /* [n_seqs + 1] sequence i's rows are cu_q[i] .. cu_q[i + 1] - 1 */
    int *seq_lens;      /* [n_seqs] cache length once the rows are written */
    int *block_tables;  /* [n_seqs, max_blocks] */
    int *item;          /* [n_seqs] the sched_batch item each sequence came from */
    int *cu_groups;     /* [n_groups + 1] sequences cu_groups[g] .. cu_groups[g + 1] - 1 form group g */
    int *prefix_blocks; /* [n_groups] leading table entries group g's sequences share */
    int *logit_rows;    /* [n_draws] the row whose logits draw d samples from (its item's last row) */
} fwd_batch;

/* Room for a scheduler's largest step: max_running sequences and draws, max_tokens rows,
 * tables max_blocks wide (kv_pages.max_blocks). One allocation. */
int fwd_batch_init(fwd_batch *b, int max_running, int max_tokens, int max_blocks, rlvr_err *e);
void fwd_batch_free(fwd_batch *b);

/* Fills b from step (the pool p gives tables and slots). No allocation; -1 with a message
 * when the step exceeds the room given to fwd_batch_init. */
int fwd_batch_build(fwd_batch *b, const sched_batch *step, const kv_pages *p, rlvr_err *e);

#endif
