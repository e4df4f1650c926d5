/* paged_model.c - model_forward's layer loop over a paged pool. Only the K/V addressing
 * differs from core/model.c: rows are written through the slot mapping and each
 * sequence's keys and values are gathered through its block table before the same two
 * matrix products and softmax. Keep the two in step. */
#include "paged_model.h"

#include <math.h>
#include <string.h>

#include "cpu_ops.h"
#include "rollout.h"

/* Activation pointers carved from pm->work for T rows (shapes as in model.h). */
typedef struct acts {
    float *x, *xn, *x_mid;        /* [T, C] */
    float *q_raw, *q, *att;       /* [T, H*D] */
    float *k_raw, *k_new, *v_new; /* [T, KV*D] */
    float *gate, *up, *h;         /* [T, I] */
    float *scores;                /* [T, max_len] one sequence's rows at a time */
    float *k_seq, *v_seq;         /* [max_len, D] one kv head of one sequence, gathered */
    float *final;                 /* [max_draws, C] */
} acts;

static size_t carve(const paged_model *pm, acts *a) {
    const model_config *c = &pm->m->cfg;
    const size_t T = (size_t)pm->max_tokens, C = (size_t)c->hidden, HD = (size_t)c->heads * c->head_dim,
                 KVD = (size_t)c->kv_heads * c->head_dim, I = (size_t)c->intermediate, P = (size_t)pm->max_len;
    float **dst[] = {&a->x, &a->xn, &a->x_mid, &a->q_raw, &a->q, &a->att, &a->k_raw, &a->k_new, &a->v_new,
                     &a->gate, &a->up, &a->h, &a->scores, &a->k_seq, &a->v_seq, &a->final};
    const size_t sizes[] = {T * C, T * C, T * C, T * HD, T * HD, T * HD, T * KVD, T * KVD, T * KVD,
                            T * I, T * I, T * I, T * P, P * (size_t)c->head_dim, P * (size_t)c->head_dim,
                            (size_t)pm->max_draws * C};
    size_t off = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        if (pm->work) *dst[i] = pm->work + off;
        off += sizes[i];
    }
    return off;
}

int paged_model_init(paged_model *pm, const model *m, int n_blocks, int block_size, int max_tokens, int max_len,
                     int max_draws, rlvr_err *e) {
    memset(pm, 0, sizeof *pm);
    if (n_blocks < 1 || block_size < 1 || max_tokens < 1 || max_len < 1 || max_draws < 1)
        return err_set(e, "paged model: blocks %d, block size %d, tokens %d, length %d, draws %d must be >= 1",
                       n_blocks, block_size, max_tokens, max_len, max_draws);
    *pm = (paged_model){m, n_blocks, block_size, max_tokens, max_len, max_draws, NULL, NULL, NULL};
    acts a;
    const size_t n_work = carve(pm, &a);
    const size_t n_pool = (size_t)m->cfg.layers * n_blocks * block_size * m->cfg.kv_heads * m->cfg.head_dim;
    pm->k = rollout_malloc(n_pool * sizeof(float));
    pm->v = rollout_malloc(n_pool * sizeof(float));
    pm->work = rollout_malloc(n_work * sizeof(float));
    if (!pm->k || !pm->v || !pm->work) {
        paged_model_free(pm);
        return err_set(e, "paged model: out of memory for %d blocks of %d tokens", n_blocks, block_size);
    }
    return 0;
}

void paged_model_free(paged_model *pm) {
    rollout_free(pm->k), rollout_free(pm->v), rollout_free(pm->work);
    memset(pm, 0, sizeof *pm);
}

/* Row `slot` of layer l's pool: [KV*D]. */
static float *pool_row(const paged_model *pm, float *pool, int l, size_t slot) {
    const size_t KVD = (size_t)pm->m->cfg.kv_heads * pm->m->cfg.head_dim;
    return pool + ((size_t)l * pm->n_blocks * pm->block_size + slot) * KVD;
}

void paged_model_copy(paged_model *pm, const kv_copy *copies, int n_copies) {
    const size_t KVD = (size_t)pm->m->cfg.kv_heads * pm->m->cfg.head_dim, bs = (size_t)pm->block_size;
    for (int i = 0; i < n_copies; i++)
        for (int l = 0; l < pm->m->cfg.layers; l++) {
            const size_t n = (size_t)copies[i].n_tokens * KVD * sizeof(float);
            memcpy(pool_row(pm, pm->k, l, copies[i].dst * bs), pool_row(pm, pm->k, l, copies[i].src * bs), n);
            memcpy(pool_row(pm, pm->v, l, copies[i].dst * bs), pool_row(pm, pm->v, l, copies[i].src * bs), n);
        }
}

/* Attention of sequence i of b in layer l, attn_forward_head's arithmetic: per kv head,
 * the sequence's K and V gathered [P, D]; per query head, S = Q K^T / sqrt(D) [n, P],
 * a causal softmax per row, att = S V. */
static void attend_sequence(const paged_model *pm, const fwd_batch *b, int i, int l, acts *a) {
    const model_config *c = &pm->m->cfg;
    const int H = c->heads, KV = c->kv_heads, D = c->head_dim, HD = H * D, group = H / KV;
    const int start = b->cu_q[i], n = b->cu_q[i + 1] - start, P = b->seq_lens[i], p0 = P - n, bs = pm->block_size;
    const int *table = b->block_tables + (size_t)i * b->max_blocks;
    for (int g = 0; g < KV; g++) {
        for (int p = 0; p < P; p++) {
            const size_t slot = (size_t)table[p / bs] * bs + p % bs;
            memcpy(a->k_seq + (size_t)p * D, pool_row(pm, pm->k, l, slot) + (size_t)g * D, (size_t)D * sizeof(float));
            memcpy(a->v_seq + (size_t)p * D, pool_row(pm, pm->v, l, slot) + (size_t)g * D, (size_t)D * sizeof(float));
        }
        for (int h = g * group; h < (g + 1) * group; h++) {
            float *S = a->scores;
            cpu_sgemm(0, 1, n, P, D, 1.0f / sqrtf((float)D), a->q + (size_t)start * HD + (size_t)h * D, HD, a->k_seq,
                      D, 0.0f, S, P);
            causal_softmax_rows(S, n, P, p0, NULL, 0);
            cpu_sgemm(0, 0, n, D, P, 1.0f, S, P, a->v_seq, D, 0.0f, a->att + (size_t)start * HD + (size_t)h * D, HD);
        }
    }
}

int paged_model_forward(paged_model *pm, const fwd_batch *b, float *logits, rlvr_err *e) {
    const model *m = pm->m;
    const model_config *c = &m->cfg;
    const int T = b->n_tokens;
    for (int i = 0; i < b->n_seqs; i++)
        if (b->seq_lens[i] > pm->max_len)
            return err_set(e, "paged model: a sequence of %d positions passes max_len %d", b->seq_lens[i], pm->max_len);
    if (T > pm->max_tokens || b->n_draws > pm->max_draws)
        return err_set(e, "paged model: %d rows and %d draws pass the room for %d and %d", T, b->n_draws,
                       pm->max_tokens, pm->max_draws);
    for (int t = 0; t < T; t++)
        if (b->tokens[t] < 0 || b->tokens[t] >= c->vocab)
            return err_set(e, "paged model: token id %d is outside the vocabulary [0, %d)", b->tokens[t], c->vocab);
    acts a;
    carve(pm, &a);
    const int C = c->hidden, D = c->head_dim, H = c->heads, KV = c->kv_heads, HD = H * D, KVD = KV * D,
              I = c->intermediate;
    const size_t TC = (size_t)T * C;
    embedding_forward(a.x, m->embed, b->tokens, T, C);
    for (int l = 0; l < c->layers; l++) {
        const model_layer *w = &m->layer[l];
        /* attention */
        rmsnorm_forward(a.xn, NULL, a.x, w->input_norm, T, C, c->rms_eps);
        matmul_forward(a.q_raw, a.xn, w->wq, w->bq, T, C, HD);
        matmul_forward(a.k_raw, a.xn, w->wk, w->bk, T, C, KVD);
        matmul_forward(a.v_new, a.xn, w->wv, w->bv, T, C, KVD);
        if (c->qk_norm) {
            rmsnorm_forward(a.q, NULL, a.q_raw, w->q_norm, T * H, D, c->rms_eps);
            rmsnorm_forward(a.k_new, NULL, a.k_raw, w->k_norm, T * KV, D, c->rms_eps);
        } else {
            memcpy(a.q, a.q_raw, (size_t)T * HD * sizeof(float));
            memcpy(a.k_new, a.k_raw, (size_t)T * KVD * sizeof(float));
        }
        rope_forward(a.q, m->inv_freq, b->positions, T, H, D);
        rope_forward(a.k_new, m->inv_freq, b->positions, T, KV, D);
        for (int t = 0; t < T; t++) {
            memcpy(pool_row(pm, pm->k, l, (size_t)b->slot_mapping[t]), a.k_new + (size_t)t * KVD, KVD * sizeof(float));
            memcpy(pool_row(pm, pm->v, l, (size_t)b->slot_mapping[t]), a.v_new + (size_t)t * KVD, KVD * sizeof(float));
        }
        for (int i = 0; i < b->n_seqs; i++) attend_sequence(pm, b, i, l, &a);
        matmul_forward(a.x_mid, a.att, w->wo, w->bo, T, HD, C);
        for (size_t i = 0; i < TC; i++) a.x_mid[i] += a.x[i];
        /* MLP; the next layer's input overwrites x */
        rmsnorm_forward(a.xn, NULL, a.x_mid, w->post_norm, T, C, c->rms_eps);
        matmul_forward(a.gate, a.xn, w->w_gate, NULL, T, C, I);
        matmul_forward(a.up, a.xn, w->w_up, NULL, T, C, I);
        swiglu_forward(a.h, a.gate, a.up, (size_t)T * I);
        matmul_forward(a.x, a.h, w->w_down, NULL, T, I, C);
        for (size_t i = 0; i < TC; i++) a.x[i] += a.x_mid[i];
    }
    /* the final norm and LM head of the draws' rows only (each row's result is its own) */
    for (int d = 0; d < b->n_draws; d++)
        memcpy(a.final + (size_t)d * C, a.x + (size_t)b->logit_rows[d] * C, (size_t)C * sizeof(float));
    rmsnorm_forward(a.final, NULL, a.final, m->final_norm, b->n_draws, C, c->rms_eps);
    cpu_sgemm(0, 1, b->n_draws, c->vocab, C, 1.0f, a.final, C, m->lm_head, C, 0.0f, logits, c->vocab);
    return 0;
}
