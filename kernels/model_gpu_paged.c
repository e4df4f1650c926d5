/* model_gpu_paged.c - the rollout engine's forward on the GPU: the layers of
 * gpu_model_forward over a step's new rows, their K/V kept in a paged pool and attention
 * read through block tables (kernels/paged_attention.cu), then the logits of the rows
 * that draw a token. It reads the gpu_model's weights in place, so a training model's
 * optimizer step is seen by the next rollout without a copy. CPU twin:
 * paged_model_forward (rollout/paged_model.c), which the tests compare with.
 *
 * Attention is split-KV with one chunk length for the object's life (a chunk past a
 * sequence's end is empty and the merge skips it). In bf16 with heads of 64 or 128 it is
 * cascade attention on the tensor cores: the samples of a group sharing their prompt's
 * blocks read them once (phase 1, the group's rows in one tile), then each its own
 * positions (phase 2), both in chunks. A row's result depends on its own sequence and its
 * group's shared prefix length, whatever the rest of the batch.
 *
 * Decode steps (one new row per sequence, each drawing) replay CUDA graphs: one per
 * (batch bucket, table-width bucket), powers of two, captured the first time they are
 * needed. The batch is padded to its bucket with rows that read and write a trash block
 * past the pool, the tables to their bucket's width with that block too; the index arrays
 * are laid out by (rows, width) alone, so a graph's pointers name where the next step of
 * its bucket puts them. Replaying skips the per-launch host work (cuBLASLt's descriptors
 * and heuristics, some 300 launches a step), which otherwise bounds small models. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model_gpu_impl.h"

/* Chunks per sequence at most: the split scratch is this many partial results a row. */
#define SPLIT_CHUNKS 16
/* Sequences of a cascade group at most: larger groups are cut (each part reads the prefix
 * once), so a decode graph's grid covers any step of its bucket; 8 decode rows of up to 16
 * / 8 = 2 rows a warp fill one thread block of phase 1 (Qwen2.5's 7 or 6 heads a kv head). */
#define GROUP_SEQS 8

/* Where one step's index arrays lie in the index region (device) and its host mirror. */
typedef struct step_idx {
    int T, S, R, W; /* rows, sequences, draws, table width */
    size_t n;       /* ints in all */
    size_t tokens, positions, slots, cu_q, seq_lens, tables, logit_rows; /* offsets in ints */
    size_t cu_groups, prefix_blocks; /* S groups (some empty): [S + 1], [S] */
} step_idx;

struct gpu_paged {
    gpu_model *g;
    int n_blocks, block_size, max_tokens, max_seqs, max_blocks, max_draws;
    int trash;          /* the block past the pool that padding rows use: n_blocks */
    int split_len;      /* attention chunk length */
    int cascade;        /* attention is cascade on the tensor cores (bf16, not batch-invariant) */
    int exact;          /* attention in the training attention's order (batch-invariant): no scratch */
    int max_group_rows; /* the staged step's most rows in one group */
    size_t layer_elems; /* one layer's pool, K or V: (n_blocks + 1) * block_size * KV * D */
    void *pool;         /* K of every layer, then V of every layer */
    void *mem;          /* activations, scratch and index arrays */
    /* activations, max_tokens rows unless said */
    void *x, *x_mid, *xn, *tmp, *q, *q_raw, *k, *k_raw, *v, *att, *gate, *up, *h;
    float *lse;            /* [T, H] */
    void *split_scratch;   /* kern_paged_attention_split_scratch or kern_cascade_attention_scratch */
    void *rows, *rows_n;   /* [max_draws, C] */
    float *logits;         /* [max_draws, V] */
    int *idx, *h_idx;      /* a step's index arrays (step_idx), device and host */
    size_t idx_ints;
    int *copies;
    /* sampling: the draws' parameters and keys in (params [n], seq ids [n], positions [n],
     * laid out for the call's n), their tokens [n] then log-probs [n] out; host staging */
    void *sample_in, *sample_out, *h_sample;
    void *lm_ws;  /* kern_lmhead_logprobs_of_logits' state for max_draws rows (batch-invariant mode) */
    int n_draws; /* rows of logits the last forward left for sampling */
    /* decode graphs [batch bucket][width bucket] */
    int use_graphs, n_bb, n_wb;
    kern_graph **graphs;
    long long graph_steps;
    gm_side side; /* k, v and up beside q and gate */
};

enum { SAMPLE_IN_ROW = sizeof(kern_sample_params) + 2 * sizeof(uint64_t), SAMPLE_OUT_ROW = sizeof(int) + sizeof(float) };

static int ceil_log2(int x) {
    int l = 0;
    while ((1 << l) < x) l++;
    return l;
}

/* The index arrays of a step of T rows, S sequences, R draws and tables W wide, packed. */
static step_idx idx_layout(int T, int S, int R, int W) {
    step_idx x = {.T = T, .S = S, .R = R, .W = W};
    x.tokens = 0, x.positions = (size_t)T, x.slots = 2 * (size_t)T, x.cu_q = 3 * (size_t)T;
    x.seq_lens = x.cu_q + S + 1, x.tables = x.seq_lens + S, x.logit_rows = x.tables + (size_t)S * W;
    x.cu_groups = x.logit_rows + R, x.prefix_blocks = x.cu_groups + S + 1;
    x.n = x.prefix_blocks + S;
    return x;
}

/* Carves (or, with base NULL, counts) the activations, scratch and index arrays. */
static void paged_layout(gpu_paged *p, const model_config *c, kern_dtype dt, bump *b) {
    size_t T = (size_t)p->max_tokens, C = (size_t)c->hidden, HD = (size_t)c->heads * c->head_dim,
           KVD = (size_t)c->kv_heads * c->head_dim, I = (size_t)c->intermediate, R = (size_t)p->max_draws,
           ds = kern_dtype_size(dt), i4 = sizeof(int);
    p->x = take(b, T * C * ds);
    p->x_mid = take(b, T * C * ds);
    p->xn = take(b, T * C * ds);
    p->tmp = take(b, T * C * ds);
    p->q = take(b, T * HD * ds);
    p->q_raw = c->qk_norm ? take(b, T * HD * ds) : NULL;
    p->k = take(b, T * KVD * ds);
    p->k_raw = c->qk_norm ? take(b, T * KVD * ds) : NULL;
    p->v = take(b, T * KVD * ds);
    p->att = take(b, T * HD * ds);
    /* gate_up [T, 2I]; otherwise its two aligned halves serve as gate and up */
    const size_t half = (T * I * ds + 255) & ~(size_t)255;
    p->gate = take(b, 2 * half);
    p->up = p->gate ? (char *)p->gate + half : NULL;
    p->h = take(b, T * I * ds);
    p->lse = take(b, T * (size_t)c->heads * sizeof(float));
    const int max_len = p->max_blocks * p->block_size;
    p->split_scratch = take(b, p->exact     ? 0
                               : p->cascade ? kern_cascade_attention_scratch(p->max_tokens, c->heads, c->head_dim,
                                                                             max_len, p->split_len)
                                            : kern_paged_attention_split_scratch(p->max_tokens, c->heads,
                                                                                 c->head_dim, max_len, p->split_len));
    p->rows = take(b, R * C * ds);
    p->rows_n = take(b, R * C * ds);
    p->logits = take(b, R * (size_t)c->vocab * sizeof(float));
    /* the largest step: every row, sequence and draw, full-width tables */
    p->idx_ints = idx_layout(p->max_tokens, p->max_seqs, p->max_draws, p->max_blocks).n;
    p->idx = take(b, p->idx_ints * i4);
    p->copies = take(b, (size_t)p->max_seqs * 3 * i4); /* a step copies at most a block a sequence */
    p->sample_in = take(b, R * SAMPLE_IN_ROW);
    p->sample_out = take(b, R * SAMPLE_OUT_ROW);
    p->lm_ws = take(b, kern_lmhead_workspace(KERN_F32, p->max_draws, 1));
}

/* Both pools (K, V) of every layer, with the trash block. */
static size_t pool_bytes(const model_config *c, kern_dtype dt, int n_blocks, int block_size) {
    return 2 * (size_t)c->layers * (n_blocks + 1) * block_size * c->kv_heads * c->head_dim * kern_dtype_size(dt);
}

/* The chunk length for sequences of up to max_len positions: at most SPLIT_CHUNKS chunks,
 * a power of two, at least 16. (A kernel whose 8 warps split a chunk's keys, with chunks
 * of at least 256, was 3.5-10% slower a decode step on an H100, 2026-12-08: docs/benchmarks.md.) */
static int split_len_for(int max_len) {
    int s = 16;
    while ((long long)s * SPLIT_CHUNKS < max_len) s *= 2;
    return s;
}

/* Cascade attention on the tensor cores (kern_cascade_attention_forward's bf16 path) unless
 * the engine must follow the training attention's order. */
static int cascade_for(const model_config *c, kern_dtype dt, int invariant) {
    return !invariant && dt == KERN_BF16 && (c->head_dim == 64 || c->head_dim == 128) && c->heads / c->kv_heads <= 16;
}

size_t gpu_paged_bytes(const model_config *c, kern_dtype dt, int n_blocks, int block_size, int max_tokens,
                       int max_seqs, int max_blocks, int max_draws) {
    gpu_paged p = {.block_size = block_size, .max_tokens = max_tokens, .max_seqs = max_seqs,
                   .max_blocks = max_blocks, .max_draws = max_draws,
                   .split_len = split_len_for(max_blocks * block_size), .cascade = cascade_for(c, dt, 0)};
    bump b = {NULL, 0};
    paged_layout(&p, c, dt, &b);
    return pool_bytes(c, dt, n_blocks, block_size) + b.off + BLAS_WORKSPACE; /* + the side stream's */
}

int gpu_paged_check_invariant(const model_config *c, rlvr_err *e) {
    if ((c->head_dim == 64 || c->head_dim == 128) && c->heads / c->kv_heads <= 16) return 0;
    return err_set(e, "the batch-invariant engine needs a head size of 64 or 128 and at most 16 query heads a kv "
                      "head (the training attention's tensor-core path); this model has %d and %d",
                   c->head_dim, c->heads / c->kv_heads);
}

gpu_paged *gpu_paged_new(gpu_model *g, int n_blocks, int block_size, int max_tokens, int max_seqs, int max_blocks,
                         int max_draws, rlvr_err *e) {
    const model_config *c = &g->cfg;
    if (n_blocks < 1 || block_size < 1 || (block_size & (block_size - 1)) || max_tokens < 1 || max_seqs < 1 ||
        max_blocks < 1 || max_draws < 1 || n_blocks >= INT32_MAX / block_size - 1 ||
        (long long)max_blocks * block_size > INT32_MAX / 2) { /* slots and positions are ints */
        err_set(e, "GPU paged forward: bad sizes (%d blocks of %d positions, %d rows, %d sequences, tables of %d, "
                   "%d draws; the block size a power of two)",
                n_blocks, block_size, max_tokens, max_seqs, max_blocks, max_draws);
        return NULL;
    }
    /* the pool and the activations must fit in what the device has free, with the
     * training model's headroom left: a clear error now, not an out-of-memory mid-step */
    kern_device_info info;
    if (kern_device_info_get(0, &info, e) != 0) return NULL;
    const size_t need = gpu_paged_bytes(c, g->o.dtype, n_blocks, block_size, max_tokens, max_seqs, max_blocks,
                                        max_draws);
    if (need + g->plan.headroom > info.free_memory) {
        err_set(e, "GPU paged forward: the KV pool (%d blocks of %d positions) and activations need %.2f GiB but "
                   "only %.2f GiB of the device's %.2f GiB is free; lower rollout.prompts_per_step x "
                   "rollout.group_size or rollout.max_new_tokens",
                n_blocks, block_size, (double)need / (1 << 30), (double)info.free_memory / (1 << 30),
                (double)info.total_memory / (1 << 30));
        return NULL;
    }
    if (g->o.invariant && gpu_paged_check_invariant(c, e) != 0) return NULL;
    gpu_paged *p = calloc(1, sizeof *p);
    if (!p) {
        err_set(e, "out of memory");
        return NULL;
    }
    *p = (gpu_paged){.g = g, .n_blocks = n_blocks, .block_size = block_size, .max_tokens = max_tokens,
                     .max_seqs = max_seqs, .max_blocks = max_blocks, .max_draws = max_draws, .trash = n_blocks,
                     .split_len = split_len_for(max_blocks * block_size), .use_graphs = kern_graphs_supported(),
                     .cascade = cascade_for(c, g->o.dtype, g->o.invariant), .exact = g->o.invariant};
    p->layer_elems = (size_t)(n_blocks + 1) * block_size * c->kv_heads * c->head_dim;
    p->n_bb = ceil_log2(max_seqs) + 1;
    p->n_wb = ceil_log2(max_blocks) + 1;
    bump b = {NULL, 0};
    paged_layout(p, c, g->o.dtype, &b);
    p->h_sample = malloc((size_t)max_draws * SAMPLE_IN_ROW);
    p->h_idx = malloc(p->idx_ints * sizeof(int));
    p->graphs = calloc((size_t)p->n_bb * p->n_wb, sizeof *p->graphs);
    if (!p->h_sample || !p->h_idx || !p->graphs) {
        err_set(e, "out of memory");
        gpu_paged_free(p);
        return NULL;
    }
    if (!(p->pool = kern_malloc(pool_bytes(c, g->o.dtype, n_blocks, block_size), e)) ||
        !(p->mem = kern_malloc(b.off, e)) || gm_side_init(&p->side, e) != 0) {
        err_prefix(e, "GPU paged forward (KV pool of %d blocks of %d positions)", n_blocks, block_size);
        gpu_paged_free(p);
        return NULL;
    }
    b = (bump){p->mem, 0};
    paged_layout(p, c, g->o.dtype, &b);
    return p;
}

void gpu_paged_free(gpu_paged *p) {
    if (!p) return;
    for (int i = 0; p->graphs && i < p->n_bb * p->n_wb; i++) kern_graph_free(p->graphs[i]);
    free(p->graphs);
    gm_side_free(&p->side);
    kern_free(p->pool);
    kern_free(p->mem);
    free(p->h_idx);
    free(p->h_sample);
    free(p);
}

void gpu_paged_use_graphs(gpu_paged *p, int on) { p->use_graphs = on && kern_graphs_supported(); }
long long gpu_paged_graph_steps(const gpu_paged *p) { return p->graph_steps; }
const float *gpu_paged_logits(const gpu_paged *p) { return p->logits; }

/* Layer l's pool, K (v = 0) or V (v = 1). */
static void *pool_of(const gpu_paged *p, int l, int v) {
    size_t i = ((size_t)v * p->g->cfg.layers + (size_t)l) * p->layer_elems;
    return (char *)p->pool + i * p->g->dsz;
}

int gpu_paged_copy(gpu_paged *p, const int *copies, int n_copies, rlvr_err *e) {
    if (n_copies == 0) return 0;
    if (n_copies < 0 || n_copies > p->max_seqs)
        return err_set(e, "GPU paged forward: %d block copies in one step (room for %d)", n_copies, p->max_seqs);
    const model_config *c = &p->g->cfg;
    if (kern_memcpy_h2d(p->copies, copies, (size_t)n_copies * 3 * sizeof(int), e) != 0) return -1;
    return kern_kv_block_copy(p->g->o.dtype, pool_of(p, 0, 0), pool_of(p, 0, 1), p->copies, n_copies, c->layers,
                              p->layer_elems, p->n_blocks, p->block_size, c->kv_heads, c->head_dim, p->g->stream, e);
}

/* Checks a step against the room and the model; *max_q gets its most new rows of a sequence. */
static int check_step(const gpu_paged *p, const gpu_paged_step *s, int *max_q, rlvr_err *e) {
    if (s->n_seqs < 1 || s->n_seqs > p->max_seqs || s->n_tokens < 1 || s->n_tokens > p->max_tokens ||
        s->n_draws < 0 || s->n_draws > p->max_draws || s->max_blocks < 1 || s->max_blocks > p->max_blocks)
        return err_set(e, "GPU paged forward: a step of %d rows, %d sequences, %d draws and tables of %d (room for "
                          "%d, %d, %d, %d)",
                       s->n_tokens, s->n_seqs, s->n_draws, s->max_blocks, p->max_tokens, p->max_seqs, p->max_draws,
                       p->max_blocks);
    if (s->cu_q[0] != 0 || s->cu_q[s->n_seqs] != s->n_tokens)
        return err_set(e, "GPU paged forward: cu_q runs %d .. %d over %d rows", s->cu_q[0], s->cu_q[s->n_seqs],
                       s->n_tokens);
    const model_config *c = &p->g->cfg;
    *max_q = 0;
    for (int i = 0; i < s->n_seqs; i++) {
        int n_new = s->cu_q[i + 1] - s->cu_q[i];
        if (n_new < 1 || s->seq_lens[i] < n_new || s->seq_lens[i] > s->max_blocks * p->block_size)
            return err_set(e, "GPU paged forward: sequence %d has %d new rows and %d positions (tables hold %d)", i,
                           n_new, s->seq_lens[i], s->max_blocks * p->block_size);
        if (c->sliding_window && s->seq_lens[i] > c->sliding_window)
            return err_set(e, "GPU paged forward: sequence %d: %d positions exceed the sliding window (%d), which is "
                              "not supported",
                           i, s->seq_lens[i], c->sliding_window);
        if (n_new > *max_q) *max_q = n_new;
    }
    for (int t = 0; t < s->n_tokens; t++)
        if (s->tokens[t] < 0 || s->tokens[t] >= c->vocab)
            return err_set(e, "GPU paged forward: row %d is token %d, outside the vocabulary [0, %d)", t, s->tokens[t],
                           c->vocab);
    for (int d = 0; d < s->n_draws; d++)
        if (s->logit_rows[d] < 0 || s->logit_rows[d] >= s->n_tokens)
            return err_set(e, "GPU paged forward: draw %d reads row %d of %d", d, s->logit_rows[d], s->n_tokens);
    if (s->n_groups < 0 || s->n_groups > s->n_seqs || (s->n_groups && (!s->cu_groups || !s->prefix_blocks)) ||
        (s->n_groups && (s->cu_groups[0] != 0 || s->cu_groups[s->n_groups] != s->n_seqs)))
        return err_set(e, "GPU paged forward: %d groups do not cover the step's %d sequences", s->n_groups,
                       s->n_seqs);
    for (int g = 0; g < s->n_groups; g++) { /* members share the prefix's entries; rows lie past it */
        const int s0 = s->cu_groups[g], s1 = s->cu_groups[g + 1], pb = s->prefix_blocks[g];
        if (s1 <= s0 || pb < 0 || pb > s->max_blocks)
            return err_set(e, "GPU paged forward: group %d: sequences %d .. %d, prefix of %d blocks", g, s0, s1 - 1,
                           pb);
        for (int i = s0; i < s1; i++) {
            if (s->seq_lens[i] - (s->cu_q[i + 1] - s->cu_q[i]) < pb * p->block_size ||
                memcmp(s->block_tables + (size_t)i * s->max_blocks, s->block_tables + (size_t)s0 * s->max_blocks,
                       (size_t)pb * sizeof(int)))
                return err_set(e, "GPU paged forward: sequence %d does not share group %d's %d prefix blocks", i,
                               g, pb);
        }
    }
    for (int i = 0; i < s->n_seqs; i++) /* the entries that hold the sequence's positions */
        for (int k = 0; k < (s->seq_lens[i] + p->block_size - 1) / p->block_size; k++) {
            const int b = s->block_tables[(size_t)i * s->max_blocks + k];
            if (b < 0 || b >= p->n_blocks)
                return err_set(e, "GPU paged forward: sequence %d: table entry %d is block %d of a pool of %d", i, k,
                               b, p->n_blocks);
        }
    return 0;
}

/* Fills the host mirror of x's layout from step s, padding it to x's sizes: extra rows are
 * token 0 at position 0 of an extra one-row sequence that writes and reads the trash
 * block, each drawing from its own row; table entries past a sequence's (-1 in fwd_batch)
 * are the trash block. */
static void stage_step(gpu_paged *p, const gpu_paged_step *s, const step_idx *x) {
    int *h = p->h_idx;
    const int n = s->n_tokens, trash_slot = p->trash * p->block_size;
    memcpy(h + x->tokens, s->tokens, (size_t)n * sizeof(int));
    memcpy(h + x->positions, s->positions, (size_t)n * sizeof(int));
    memcpy(h + x->slots, s->slot_mapping, (size_t)n * sizeof(int));
    for (int t = n; t < x->T; t++) h[x->tokens + t] = 0, h[x->positions + t] = 0, h[x->slots + t] = trash_slot;
    memcpy(h + x->cu_q, s->cu_q, ((size_t)s->n_seqs + 1) * sizeof(int));
    memcpy(h + x->seq_lens, s->seq_lens, (size_t)s->n_seqs * sizeof(int));
    for (int i = s->n_seqs; i < x->S; i++) h[x->cu_q + i + 1] = n + (i - s->n_seqs) + 1, h[x->seq_lens + i] = 1;
    for (int i = 0; i < x->S; i++) {
        int *row = h + x->tables + (size_t)i * x->W;
        const int used = i < s->n_seqs ? (s->seq_lens[i] + p->block_size - 1) / p->block_size : 0;
        memcpy(row, s->block_tables + (size_t)i * s->max_blocks, (size_t)used * sizeof(int));
        for (int k = used; k < x->W; k++) row[k] = p->trash;
    }
    memcpy(h + x->logit_rows, s->logit_rows, (size_t)s->n_draws * sizeof(int));
    for (int d = s->n_draws; d < x->R; d++) h[x->logit_rows + d] = n + (d - s->n_draws);
    /* groups of at most GROUP_SEQS sequences (a sequence outside the step's groups, padding
     * too, is one of its own with no prefix), then empty ones up to S */
    int *cu = h + x->cu_groups, *pb = h + x->prefix_blocks, ng = 0, g = 0;
    p->max_group_rows = 1;
    cu[0] = 0;
    for (int i = 0; i < x->S;) {
        while (g < s->n_groups && s->cu_groups[g + 1] <= i) g++;
        const int in_group = g < s->n_groups && i < s->n_seqs;
        const int end = in_group ? s->cu_groups[g + 1] : i + 1, next = end - i > GROUP_SEQS ? i + GROUP_SEQS : end;
        const int rows = h[x->cu_q + next] - h[x->cu_q + i];
        if (rows > p->max_group_rows) p->max_group_rows = rows;
        pb[ng] = in_group ? s->prefix_blocks[g] : 0;
        cu[++ng] = i = next;
    }
    for (; ng < x->S; ng++) cu[ng + 1] = x->S, pb[ng] = 0;
}

/* What the paged attention of one step reads besides the layer's activations. */
typedef struct paged_attend {
    gpu_paged *p;
    const kern_paged_batch *pb;
    const int *slots, *positions;
    int T;
} paged_attend;

/* The engine's attention: RoPE on the rows' q and k and their K/V into their slots (one
 * launch), then every row against its
 * sequence through the block table: cascade (bf16 on the tensor cores) or split-KV, or, in
 * the batch-invariant mode, in the training attention's order
 * (kern_paged_attention_tc_forward). */
static int paged_attention(void *ctx, int l, const gm_slot *s, rlvr_err *e) {
    const paged_attend *a = ctx;
    gpu_paged *p = a->p;
    const model_config *c = &p->g->cfg;
    kern_dtype dt = p->g->o.dtype;
    const int pool_blocks = p->n_blocks + 1;
    TRY(kern_rope_kv_write(dt, s->q, s->k, s->v, pool_of(p, l, 0), pool_of(p, l, 1), p->g->b.inv_freq, a->positions,
                           a->slots, a->T, c->heads, c->kv_heads, c->head_dim, pool_blocks, p->block_size,
                           p->g->stream, e));
    if (p->g->o.invariant)
        return kern_paged_attention_tc_forward(s->att, s->lse, s->q, pool_of(p, l, 0), pool_of(p, l, 1), a->pb,
                                               pool_blocks, p->block_size, c->heads, c->kv_heads, c->head_dim,
                                               p->g->stream, e);
    if (p->cascade)
        return kern_cascade_attention_forward(dt, s->att, s->lse, s->q, pool_of(p, l, 0), pool_of(p, l, 1), a->pb,
                                              pool_blocks, p->block_size, c->heads, c->kv_heads, c->head_dim,
                                              p->split_len, p->split_scratch, p->g->stream, e);
    return kern_paged_attention_split_forward(dt, s->att, s->lse, s->q, pool_of(p, l, 0), pool_of(p, l, 1), a->pb,
                                              pool_blocks, p->block_size, c->heads, c->kv_heads, c->head_dim,
                                              p->split_len, p->split_scratch, p->g->stream, e);
}

/* The launches of one step whose index arrays lie at x in the device region: the layers
 * over x->T rows, then the logits of its x->R draw rows. Run directly, or captured. */
static int forward_launches(gpu_paged *p, const step_idx *x, int max_q, int max_group_rows, rlvr_err *e) {
    gpu_model *g = p->g;
    const model_config *c = &g->cfg;
    kern_dtype dt = g->o.dtype;
    const int T = x->T, C = c->hidden, R = x->R;
    const int *d = p->idx;
    kern_paged_batch pb = {.block_tables = d + x->tables, .cu_q = d + x->cu_q, .seq_lens = d + x->seq_lens,
                           .n_seqs = x->S, .max_blocks = x->W, .T = T, .max_q = max_q,
                           .max_seq_len = x->W * p->block_size, .cu_groups = d + x->cu_groups,
                           .prefix_blocks = d + x->prefix_blocks, .n_groups = x->S,
                           .max_group_rows = max_group_rows};
    TRY(kern_embedding_forward(dt, p->x, g->embed, d + x->tokens, T, C, g->stream, e));
    /* the layer's activations; nothing is kept for a backward (no rstd), xn serves both norms */
    gm_slot acts = {.xn1 = p->xn, .xn2 = p->xn, .x_mid = p->x_mid, .q_raw = p->q_raw, .q = p->q, .k_raw = p->k_raw,
                    .k = p->k, .v = p->v, .att = p->att, .lse = p->lse, .gate = p->gate, .up = p->up, .h = p->h,
                    .gate_up = p->gate};
    paged_attend pa = {p, &pb, d + x->slots, d + x->positions, T};
    for (int l = 0; l < c->layers; l++) /* no positions: paged_attention applies RoPE */
        TRY(gm_layer_forward(g, l, T, NULL, p->x, &acts, p->tmp, paged_attention, &pa, &p->side, p->x, e));
    if (R == 0) return 0;
    /* the draw rows only: gathered (an embedding lookup into x), normed, times the head */
    TRY(kern_embedding_forward(dt, p->rows, p->x, d + x->logit_rows, R, C, g->stream, e));
    TRY(kern_rmsnorm_forward(dt, p->rows_n, NULL, p->rows, g->final_norm, R, C, c->rms_eps, g->stream, e));
    if (g->o.invariant) /* the trainer's LM head makes each row's logits this way too */
        return kern_matmul_invariant(KERN_F32, p->logits, p->rows_n, g->lm_head, NULL, R, C, c->vocab,
                                     KERN_INV_TILE_AUTO, g->stream, e);
    return kern_gemm(g->blas, dt, KERN_F32, 0, 1, R, c->vocab, C, 1.0f, p->rows_n, C, g->lm_head, C, 0.0f, p->logits,
                     c->vocab, NULL, g->stream, e);
}

/* A decode step from its bucket's graph, captured first if it is the bucket's first. */
static int forward_graph(gpu_paged *p, const step_idx *x, rlvr_err *e) {
    kern_graph **slot = &p->graphs[(size_t)ceil_log2(x->S) * p->n_wb + ceil_log2(x->W)];
    if (!*slot) {
        TRY(kern_graph_begin(p->g->stream, e));
        /* a graph serves every later step of its bucket: groups of up to GROUP_SEQS rows */
        int rc = forward_launches(p, x, 1, x->S < GROUP_SEQS ? x->S : GROUP_SEQS, e);
        rlvr_err end_err = {{0}};
        kern_graph *graph = NULL;
        /* the capture ends either way, so the stream is usable after a failed launch */
        if (kern_graph_end(p->g->stream, &graph, rc == 0 ? e : &end_err) != 0 || rc != 0) {
            kern_graph_free(graph);
            return -1;
        }
        *slot = graph;
    }
    TRY(kern_graph_launch(*slot, p->g->stream, e));
    p->graph_steps++;
    return 0;
}

int gpu_paged_forward(gpu_paged *p, const gpu_paged_step *s, float *logits, rlvr_err *e) {
    const model_config *c = &p->g->cfg;
    int max_q = 0;
    p->n_draws = 0;
    TRY(check_step(p, s, &max_q, e));
    int W = 1 << ceil_log2(s->max_blocks);
    if (W > p->max_blocks) W = p->max_blocks;
    /* a decode step of n rows runs as its bucket's graph, padded to the bucket's size */
    int bucket = 1 << ceil_log2(s->n_seqs);
    if (bucket > p->max_seqs) bucket = p->max_seqs;
    const int graph = p->use_graphs && max_q == 1 && s->n_tokens == s->n_seqs && s->n_draws == s->n_seqs &&
                      bucket <= p->max_tokens && bucket <= p->max_draws;
    const step_idx x = graph ? idx_layout(bucket, bucket, bucket, W) : idx_layout(s->n_tokens, s->n_seqs, s->n_draws, W);
    stage_step(p, s, &x);
    TRY(kern_memcpy_h2d(p->idx, p->h_idx, x.n * sizeof(int), e));
    TRY(graph ? forward_graph(p, &x, e) : forward_launches(p, &x, max_q, p->max_group_rows, e));
    if (s->n_draws && logits)
        TRY(kern_memcpy_d2h(logits, p->logits, (size_t)s->n_draws * c->vocab * sizeof(float), e));
    p->n_draws = s->n_draws;
    return 0;
}

int gpu_paged_sample(gpu_paged *p, int n, const kern_sample_params *params, uint64_t seed, const uint64_t *seq_ids,
                     const uint64_t *positions, int *tokens, float *logp, rlvr_err *e) {
    if (n < 1 || n != p->n_draws)
        return err_set(e, "GPU paged forward: %d draws asked of a forward that left %d rows of logits", n, p->n_draws);
    /* one copy in: n copies of the parameters, the sequence ids, the positions */
    const size_t np = (size_t)n * sizeof(kern_sample_params), nk = (size_t)n * sizeof(uint64_t);
    char *h = p->h_sample, *d = p->sample_in;
    for (int i = 0; i < n; i++) memcpy(h + (size_t)i * sizeof *params, params, sizeof *params);
    memcpy(h + np, seq_ids, nk);
    memcpy(h + np + nk, positions, nk);
    TRY(kern_memcpy_h2d(d, h, np + 2 * nk, e));
    int *d_tok = p->sample_out;
    float *d_logp = (float *)(d_tok + n);
    const int V = p->g->cfg.vocab;
    /* Sampling from the model's own softmax in the batch-invariant mode: the log-probability
     * is folded from the logits in the trainer's LM-head order instead of the sampler's, so it
     * is the trainer's bits. Other params sample another distribution, whose log-probability
     * the trainer never computes. */
    const int refold = p->g->o.invariant && params->temperature == 1.0f && (params->top_k <= 0 || params->top_k >= V) &&
                       params->top_p >= 1.0f && params->min_p <= 0.0f;
    TRY(kern_sample(p->logits, n, V, (const kern_sample_params *)d, (const uint64_t *)(d + np),
                    (const uint64_t *)(d + np + nk), seed, d_tok, refold ? NULL : d_logp, p->g->stream, e));
    if (refold)
        TRY(kern_lmhead_logprobs_of_logits(NULL, d_logp, p->logits, d_tok, n, V, gm_lm_chunk(p->g), p->lm_ws,
                                           p->g->stream, e));
    /* one copy out: the tokens, then their log-probs */
    TRY(kern_memcpy_d2h(h, p->sample_out, (size_t)n * SAMPLE_OUT_ROW, e));
    memcpy(tokens, h, (size_t)n * sizeof(int));
    if (logp) memcpy(logp, h + (size_t)n * sizeof(int), (size_t)n * sizeof(float));
    return 0;
}
