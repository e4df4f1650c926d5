/* model_gpu_paged.c - the rollout engine's forward on the GPU: the layers of
 * gpu_model_forward over a step's new rows, their K/V kept in a paged pool and attention
 * read through block tables (kernels/paged_attention.cu), then the logits of the rows
 * that draw a token. It reads the gpu_model's weights in place, so a training model's
 * optimizer step is seen by the next rollout without a copy. CPU twin:
 * paged_model_forward (rollout/paged_model.c), which the tests compare with. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model_gpu_impl.h"

struct gpu_paged {
    gpu_model *g;
    int n_blocks, block_size, max_tokens, max_seqs, max_blocks, max_draws;
    size_t layer_elems; /* one layer's pool, K or V: n_blocks * block_size * KV * D */
    void *pool;         /* K of every layer, then V of every layer */
    void *mem;          /* activations and index arrays */
    /* activations, max_tokens rows unless said */
    void *x, *x_mid, *xn, *tmp, *q, *q_raw, *k, *k_raw, *v, *att, *gate, *up, *h;
    float *lse;            /* [T, H] */
    void *rows, *rows_n;   /* [max_draws, C] */
    float *logits;         /* [max_draws, V] */
    int *tokens, *positions, *slots, *cu_q, *seq_lens, *tables, *logit_rows, *copies;
    /* sampling: the draws' parameters and keys in (params [n], seq ids [n], positions [n],
     * laid out for the call's n), their tokens [n] then log-probs [n] out; host staging */
    void *sample_in, *sample_out, *h_sample;
    int n_draws; /* rows of logits the last forward left */
};

enum { SAMPLE_IN_ROW = sizeof(kern_sample_params) + 2 * sizeof(uint64_t), SAMPLE_OUT_ROW = sizeof(int) + sizeof(float) };

/* Carves (or, with base NULL, counts) the activations and index arrays. */
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
    p->gate = take(b, T * I * ds);
    p->up = take(b, T * I * ds);
    p->h = take(b, T * I * ds);
    p->lse = take(b, T * (size_t)c->heads * sizeof(float));
    p->rows = take(b, R * C * ds);
    p->rows_n = take(b, R * C * ds);
    p->logits = take(b, R * (size_t)c->vocab * sizeof(float));
    p->tokens = take(b, T * i4);
    p->positions = take(b, T * i4);
    p->slots = take(b, T * i4);
    p->cu_q = take(b, ((size_t)p->max_seqs + 1) * i4);
    p->seq_lens = take(b, (size_t)p->max_seqs * i4);
    p->tables = take(b, (size_t)p->max_seqs * p->max_blocks * i4);
    p->logit_rows = take(b, R * i4);
    p->copies = take(b, (size_t)p->max_seqs * 3 * i4); /* a step copies at most a block a sequence */
    p->sample_in = take(b, R * SAMPLE_IN_ROW);
    p->sample_out = take(b, R * SAMPLE_OUT_ROW);
}

static size_t pool_bytes(const model_config *c, kern_dtype dt, int n_blocks, int block_size) {
    return 2 * (size_t)c->layers * n_blocks * block_size * c->kv_heads * c->head_dim * kern_dtype_size(dt);
}

size_t gpu_paged_bytes(const model_config *c, kern_dtype dt, int n_blocks, int block_size, int max_tokens,
                       int max_seqs, int max_blocks, int max_draws) {
    gpu_paged p = {.max_tokens = max_tokens, .max_seqs = max_seqs, .max_blocks = max_blocks, .max_draws = max_draws};
    bump b = {NULL, 0};
    paged_layout(&p, c, dt, &b);
    return pool_bytes(c, dt, n_blocks, block_size) + b.off;
}

gpu_paged *gpu_paged_new(gpu_model *g, int n_blocks, int block_size, int max_tokens, int max_seqs, int max_blocks,
                         int max_draws, rlvr_err *e) {
    const model_config *c = &g->cfg;
    if (n_blocks < 1 || block_size < 1 || (block_size & (block_size - 1)) || max_tokens < 1 || max_seqs < 1 ||
        max_blocks < 1 || max_draws < 1) {
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
    gpu_paged *p = calloc(1, sizeof *p);
    if (!p) {
        err_set(e, "out of memory");
        return NULL;
    }
    *p = (gpu_paged){.g = g, .n_blocks = n_blocks, .block_size = block_size, .max_tokens = max_tokens,
                     .max_seqs = max_seqs, .max_blocks = max_blocks, .max_draws = max_draws};
    p->layer_elems = (size_t)n_blocks * block_size * c->kv_heads * c->head_dim;
    bump b = {NULL, 0};
    paged_layout(p, c, g->o.dtype, &b);
    if (!(p->h_sample = malloc((size_t)max_draws * SAMPLE_IN_ROW))) {
        err_set(e, "out of memory");
        gpu_paged_free(p);
        return NULL;
    }
    if (!(p->pool = kern_malloc(pool_bytes(c, g->o.dtype, n_blocks, block_size), e)) ||
        !(p->mem = kern_malloc(b.off, e))) {
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
    kern_free(p->pool);
    kern_free(p->mem);
    free(p->h_sample);
    free(p);
}

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
    if (kern_kv_block_copy(p->g->o.dtype, pool_of(p, 0, 0), pool_of(p, 0, 1), p->copies, n_copies, c->layers,
                           p->layer_elems, p->n_blocks, p->block_size, c->kv_heads, c->head_dim, NULL, e) != 0)
        return -1;
    return 0;
}

/* The step's index arrays onto the device, after checking them against the room. */
static int upload_step(gpu_paged *p, const gpu_paged_step *s, int *max_q, int *max_len, rlvr_err *e) {
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
    *max_q = 0, *max_len = 0;
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
        if (s->seq_lens[i] > *max_len) *max_len = s->seq_lens[i];
    }
    for (int t = 0; t < s->n_tokens; t++)
        if (s->tokens[t] < 0 || s->tokens[t] >= c->vocab)
            return err_set(e, "GPU paged forward: row %d is token %d, outside the vocabulary [0, %d)", t, s->tokens[t],
                           c->vocab);
    for (int d = 0; d < s->n_draws; d++)
        if (s->logit_rows[d] < 0 || s->logit_rows[d] >= s->n_tokens)
            return err_set(e, "GPU paged forward: draw %d reads row %d of %d", d, s->logit_rows[d], s->n_tokens);
    size_t T = (size_t)s->n_tokens, S = (size_t)s->n_seqs, i4 = sizeof(int);
    TRY(kern_memcpy_h2d(p->tokens, s->tokens, T * i4, e));
    TRY(kern_memcpy_h2d(p->positions, s->positions, T * i4, e));
    TRY(kern_memcpy_h2d(p->slots, s->slot_mapping, T * i4, e));
    TRY(kern_memcpy_h2d(p->cu_q, s->cu_q, (S + 1) * i4, e));
    TRY(kern_memcpy_h2d(p->seq_lens, s->seq_lens, S * i4, e));
    TRY(kern_memcpy_h2d(p->tables, s->block_tables, S * (size_t)s->max_blocks * i4, e));
    if (s->n_draws) TRY(kern_memcpy_h2d(p->logit_rows, s->logit_rows, (size_t)s->n_draws * i4, e));
    return 0;
}

/* What the paged attention of one step reads besides the layer's activations. */
typedef struct paged_attend {
    gpu_paged *p;
    const kern_paged_batch *pb;
    int T;
} paged_attend;

/* The engine's attention: the rows' K/V into their slots, then every row against its
 * sequence through the block table. */
static int paged_attention(void *ctx, int l, const gm_slot *s, rlvr_err *e) {
    const paged_attend *a = ctx;
    gpu_paged *p = a->p;
    const model_config *c = &p->g->cfg;
    kern_dtype dt = p->g->o.dtype;
    TRY(kern_kv_write(dt, pool_of(p, l, 0), pool_of(p, l, 1), s->k, s->v, (size_t)c->kv_heads * c->head_dim,
                      p->slots, a->T, p->n_blocks, p->block_size, c->kv_heads, c->head_dim, NULL, e));
    return kern_paged_attention_forward(dt, s->att, s->lse, s->q, pool_of(p, l, 0), pool_of(p, l, 1), a->pb,
                                        p->n_blocks, p->block_size, c->heads, c->kv_heads, c->head_dim, NULL, e);
}

int gpu_paged_forward(gpu_paged *p, const gpu_paged_step *s, float *logits, rlvr_err *e) {
    gpu_model *g = p->g;
    const model_config *c = &g->cfg;
    kern_dtype dt = g->o.dtype;
    int max_q = 0, max_len = 0;
    p->n_draws = 0;
    TRY(upload_step(p, s, &max_q, &max_len, e));
    const int T = s->n_tokens, C = c->hidden, R = s->n_draws;
    kern_paged_batch pb = {.block_tables = p->tables, .cu_q = p->cu_q, .seq_lens = p->seq_lens,
                           .n_seqs = s->n_seqs, .max_blocks = s->max_blocks, .T = T, .max_q = max_q,
                           .max_seq_len = max_len};
    TRY(kern_embedding_forward(dt, p->x, g->embed, p->tokens, T, C, NULL, e));
    /* the layer's activations; nothing is kept for a backward (no rstd), xn serves both norms */
    gm_slot acts = {.xn1 = p->xn, .xn2 = p->xn, .x_mid = p->x_mid, .q_raw = p->q_raw, .q = p->q, .k_raw = p->k_raw,
                 .k = p->k, .v = p->v, .att = p->att, .lse = p->lse, .gate = p->gate, .up = p->up, .h = p->h};
    paged_attend pa = {p, &pb, T};
    for (int l = 0; l < c->layers; l++)
        TRY(gm_layer_forward(g, l, T, p->positions, p->x, &acts, p->tmp, paged_attention, &pa, p->x, e));
    if (R == 0) return 0;
    /* the draw rows only: gathered (an embedding lookup into x), normed, times the head */
    TRY(kern_embedding_forward(dt, p->rows, p->x, p->logit_rows, R, C, NULL, e));
    TRY(kern_rmsnorm_forward(dt, p->rows_n, NULL, p->rows, g->final_norm, R, C, c->rms_eps, NULL, e));
    TRY(kern_gemm(g->blas, dt, KERN_F32, 0, 1, R, c->vocab, C, 1.0f, p->rows_n, C, g->lm_head, C, 0.0f, p->logits,
                  c->vocab, NULL, NULL, e));
    if (logits) TRY(kern_memcpy_d2h(logits, p->logits, (size_t)R * c->vocab * sizeof(float), e));
    p->n_draws = R;
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
    TRY(kern_sample(p->logits, n, p->g->cfg.vocab, (const kern_sample_params *)d, (const uint64_t *)(d + np),
                    (const uint64_t *)(d + np + nk), seed, d_tok, d_logp, NULL, e));
    /* one copy out: the tokens, then their log-probs */
    TRY(kern_memcpy_d2h(h, p->sample_out, (size_t)n * SAMPLE_OUT_ROW, e));
    memcpy(tokens, h, (size_t)n * sizeof(int));
    if (logp) memcpy(logp, h + (size_t)n * sizeof(int), (size_t)n * sizeof(float));
    return 0;
}
