/* fwd_batch.c - a scheduler step flattened into the arrays of one paged forward, with
 * the sequences that share a prompt gathered for cascade attention. */
#include "fwd_batch.h"

#include <string.h>

int fwd_batch_init(fwd_batch *b, int max_running, int max_tokens, int max_blocks, rlvr_err *e) {
    memset(b, 0, sizeof *b);
    if (max_running < 1 || max_tokens < 1 || max_blocks < 1)
        return err_set(e, "forward batch: sequences %d, tokens %d, table width %d must be >= 1", max_running,
                       max_tokens, max_blocks);
    const size_t S = (size_t)max_running, T = (size_t)max_tokens;
    /* per token: tokens, positions, slots; per sequence: cu_q and cu_groups (one more
     * each), seq_lens, item, prefix_blocks, logit_rows (draws: a group's prompt draws G,
     * and G counts toward max_running), the tables, and the placed flags of the build */
    const size_t n = 3 * T + 6 * S + 2 + S * (size_t)max_blocks + S;
    int *w = rollout_malloc(n * sizeof *w);
    if (!w) return err_set(e, "forward batch: out of memory for %d sequences", max_running);
    b->cap_seqs = max_running, b->cap_tokens = max_tokens, b->cap_draws = max_running, b->max_blocks = max_blocks;
    b->tokens = w, w += T;
    b->positions = w, w += T;
    b->slot_mapping = w, w += T;
    b->cu_q = w, w += S + 1;
    b->seq_lens = w, w += S;
    b->item = w, w += S;
    b->cu_groups = w, w += S + 1;
    b->prefix_blocks = w, w += S;
    b->logit_rows = w, w += S;
    b->block_tables = w;
    return 0;
}

void fwd_batch_free(fwd_batch *b) {
    rollout_free(b->tokens);
    memset(b, 0, sizeof *b);
}

/* Appends item k of the step as the next sequence. */
static void add_seq(fwd_batch *b, const sched_batch *step, const kv_pages *p, int k) {
    const sched_item *it = &step->items[k];
    const int i = b->n_seqs++, row0 = b->n_tokens;
    b->item[i] = k;
    b->cu_q[i] = row0;
    b->seq_lens[i] = it->pos + it->n_tokens;
    memcpy(b->block_tables + (size_t)i * b->max_blocks, kv_block_table(p, it->seq), (size_t)b->max_blocks * sizeof(int));
    memcpy(b->tokens + row0, step->tokens + it->first_token, (size_t)it->n_tokens * sizeof(int));
    for (int t = 0; t < it->n_tokens; t++) b->positions[row0 + t] = it->pos + t;
    kv_slot_mapping(p, it->seq, it->pos, it->n_tokens, b->slot_mapping + row0);
    b->n_tokens += it->n_tokens;
    b->cu_q[i + 1] = b->n_tokens;
    for (int d = it->first_draw; d < it->first_draw + it->n_draws; d++) b->logit_rows[d] = b->n_tokens - 1;
}

int fwd_batch_build(fwd_batch *b, const sched_batch *step, const kv_pages *p, rlvr_err *e) {
    if (step->n_items > b->cap_seqs || step->n_tokens > b->cap_tokens || step->n_draws > b->cap_draws ||
        p->max_blocks != b->max_blocks)
        return err_set(e, "forward batch: a step of %d sequences, %d tokens and %d draws (tables %d wide) exceeds "
                          "the room for %d, %d and %d (%d wide)",
                       step->n_items, step->n_tokens, step->n_draws, p->max_blocks, b->cap_seqs, b->cap_tokens,
                       b->cap_draws, b->max_blocks);
    b->n_seqs = b->n_tokens = b->n_groups = 0;
    b->n_draws = step->n_draws;
    /* the flags live past the tables: 1 once an item is placed */
    int *placed = b->block_tables + (size_t)b->cap_seqs * b->max_blocks;
    memset(placed, 0, (size_t)step->n_items * sizeof *placed);
    b->cu_groups[0] = 0;
    for (int k = 0; k < step->n_items; k++) {
        if (placed[k]) continue;
        const sched_item *it = &step->items[k];
        /* a sharing item brings the other sharing items of its group along, in step order */
        for (int j = k; j < step->n_items; j++) {
            const sched_item *o = &step->items[j];
            if (j != k && (placed[j] || it->prefix_blocks == 0 || o->group != it->group || o->prefix_blocks == 0))
                continue;
            placed[j] = 1;
            add_seq(b, step, p, j);
        }
        b->prefix_blocks[b->n_groups] = it->prefix_blocks;
        b->cu_groups[++b->n_groups] = b->n_seqs;
    }
    return 0;
}
