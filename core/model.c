/* model.c - the CPU reference transformer: parameters (one allocation, carved into
 * named tensors), checkpoints in and out, forward over a KV cache, chunked
 * log-probabilities, and backward for every parameter. fp32 throughout; GEMMs through
 * cpu_sgemm (BLAS when available), attention on cpu_parallel_for threads. */
#include "model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "rng.h"
#include "safetensors.h"
#include "util.h"

/* ---- parameters ------------------------------------------------------------------------- */

/* Carves one parameter out of `base` at *off (base NULL: only counts) and records it. */
static float *carve(model *m, float *base, size_t *off, const char *name, int ndim, int64_t d0, int64_t d1) {
    size_t numel = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    float *p = base ? base + *off : NULL;
    if (base) {
        model_param *t = &m->table[m->n_table];
        snprintf(t->name, sizeof t->name, "%s", name);
        t->ndim = ndim;
        t->shape[0] = d0;
        t->shape[1] = ndim == 2 ? d1 : 0;
        t->numel = numel;
        t->data = p;
    }
    m->n_table++;
    *off += numel;
    return p;
}

/* The parameter layout, in Hugging Face names. Called once with base = NULL to count. */
static size_t layout(model *m, float *base) {
    const model_config *c = &m->cfg;
    int C = c->hidden, D = c->head_dim, HD = c->heads * D, KVD = c->kv_heads * D, I = c->intermediate;
    size_t off = 0;
    char n[96];
    m->n_table = 0;
    m->embed = carve(m, base, &off, "model.embed_tokens.weight", 2, c->vocab, C);
    for (int l = 0; l < c->layers; l++) {
        model_layer *L = base ? &m->layer[l] : NULL;
        model_layer dummy;
        if (!L) L = &dummy;
#define P(field, suffix, nd, a, b)                                                                                     \
    do {                                                                                                               \
        snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                                                        \
        L->field = carve(m, base, &off, n, nd, a, b);                                                                  \
    } while (0)
        P(input_norm, "input_layernorm.weight", 1, C, 0);
        P(wq, "self_attn.q_proj.weight", 2, HD, C);
        L->bq = NULL;
        if (c->qkv_bias) P(bq, "self_attn.q_proj.bias", 1, HD, 0);
        P(wk, "self_attn.k_proj.weight", 2, KVD, C);
        L->bk = NULL;
        if (c->qkv_bias) P(bk, "self_attn.k_proj.bias", 1, KVD, 0);
        P(wv, "self_attn.v_proj.weight", 2, KVD, C);
        L->bv = NULL;
        if (c->qkv_bias) P(bv, "self_attn.v_proj.bias", 1, KVD, 0);
        P(wo, "self_attn.o_proj.weight", 2, C, HD);
        L->bo = NULL;
        if (c->o_bias) P(bo, "self_attn.o_proj.bias", 1, C, 0);
        L->q_norm = L->k_norm = NULL;
        if (c->qk_norm) {
            P(q_norm, "self_attn.q_norm.weight", 1, D, 0);
            P(k_norm, "self_attn.k_norm.weight", 1, D, 0);
        }
        P(post_norm, "post_attention_layernorm.weight", 1, C, 0);
        P(w_gate, "mlp.gate_proj.weight", 2, I, C);
        P(w_up, "mlp.up_proj.weight", 2, I, C);
        P(w_down, "mlp.down_proj.weight", 2, C, I);
#undef P
    }
    m->final_norm = carve(m, base, &off, "model.norm.weight", 1, C, 0);
    m->lm_head = c->tie_embeddings ? m->embed : carve(m, base, &off, "lm_head.weight", 2, c->vocab, C);
    return off;
}

/* RoPE inverse frequencies, with llama3 scaling (transformers' _compute_llama3_parameters). */
static void compute_inv_freq(model *m) {
    const model_config *c = &m->cfg;
    int D = c->head_dim;
    for (int i = 0; i < D / 2; i++) {
        float f = (float)(1.0 / pow(c->rope_theta, (double)(2 * i) / D));
        if (c->rope_llama3) {
            double old = c->rope_original_max_positions;
            double low_wavelen = old / c->rope_low_freq_factor, high_wavelen = old / c->rope_high_freq_factor;
            double wavelen = 2.0 * M_PI / f;
            double scaled = wavelen > low_wavelen ? f / c->rope_factor : f;
            if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
                double smooth = (old / wavelen - c->rope_low_freq_factor) /
                                (c->rope_high_freq_factor - c->rope_low_freq_factor);
                scaled = (1.0 - smooth) * scaled / c->rope_factor + smooth * scaled;
            }
            f = (float)scaled;
        }
        m->inv_freq[i] = f;
    }
}

static model *model_alloc(const model_config *c, rlvr_err *e) {
    model *m = calloc(1, sizeof *m);
    if (!m) {
        err_set(e, "out of memory");
        return NULL;
    }
    m->cfg = *c;
    m->n_params = layout(m, NULL);
    int n_table = m->n_table;
    m->table = calloc((size_t)n_table + 1, sizeof *m->table);
    m->layer = calloc((size_t)c->layers, sizeof *m->layer);
    m->inv_freq = calloc((size_t)c->head_dim / 2 + 1, sizeof *m->inv_freq);
    m->params = malloc(m->n_params * sizeof(float));
    if (!m->table || !m->layer || !m->inv_freq || !m->params) {
        err_set(e, "out of memory for %zu parameters", m->n_params);
        model_free(m);
        return NULL;
    }
    layout(m, m->params);
    compute_inv_freq(m);
    return m;
}

model *model_load(const char *dir, rlvr_err *e) {
    char *cfg_path = util_path_join(dir, "config.json");
    if (!cfg_path) {
        err_set(e, "out of memory");
        return NULL;
    }
    char *text = util_read_file(cfg_path, NULL, e);
    model_config c;
    if (!text || model_config_parse(&c, text, cfg_path, e) != 0) {
        free(text);
        free(cfg_path);
        return NULL;
    }
    free(cfg_path);
    model *m = model_alloc(&c, e);
    if (!m) {
        free(text);
        return NULL;
    }
    m->config_json = text;
    m->source_dir = util_strdup(dir);
    st_set set;
    if (!m->source_dir || st_set_open(&set, dir, e) != 0) {
        if (!m->source_dir) err_set(e, "out of memory");
        model_free(m);
        return NULL;
    }
    int rc = 0;
    for (int i = 0; i < m->n_table && rc == 0; i++) {
        model_param *p = &m->table[i];
        const char *file = NULL;
        const st_tensor *t = st_set_find(&set, p->name, &file);
        if (!t) {
            rc = err_set(e, "%s: tensor '%s' is missing", dir, p->name);
            break;
        }
        int ok = t->ndim == p->ndim && t->shape[0] == p->shape[0] && (p->ndim == 1 || t->shape[1] == p->shape[1]);
        if (!ok) {
            char want[64], got[128] = "";
            if (p->ndim == 2) snprintf(want, sizeof want, "[%lld, %lld]", (long long)p->shape[0], (long long)p->shape[1]);
            else snprintf(want, sizeof want, "[%lld]", (long long)p->shape[0]);
            size_t k = 0;
            for (int d = 0; d < t->ndim && k < sizeof got - 24; d++)
                k += (size_t)snprintf(got + k, sizeof got - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
            rc = err_set(e, "%s: tensor '%s' has shape [%s], the config needs %s", file, p->name, got, want);
            break;
        }
        if (st_to_f32(t, p->data, e) != 0) rc = err_prefix(e, "%s", file);
    }
    st_set_close(&set);
    if (rc != 0) {
        model_free(m);
        return NULL;
    }
    return m;
}

model *model_init(const model_config *c, uint64_t seed, rlvr_err *e) {
    if (model_config_check(c, "model init", e) != 0) return NULL;
    model *m = model_alloc(c, e);
    if (!m) return NULL;
    for (int i = 0; i < m->n_table; i++) {
        model_param *p = &m->table[i];
        int is_norm = strstr(p->name, "norm") != NULL, is_bias = strstr(p->name, ".bias") != NULL;
        rng_stream r;
        rng_stream_init(&r, seed, 0x1000 + (uint64_t)i); /* one stream per parameter */
        for (size_t k = 0; k < p->numel; k++)
            p->data[k] = is_norm ? 1.0f : is_bias ? 0.0f : c->init_range * rng_stream_normal(&r);
    }
    return m;
}

model *model_new(const model_config *c, rlvr_err *e) {
    if (model_config_check(c, "model", e) != 0) return NULL;
    return model_alloc(c, e);
}

static void acts_free(model_acts *a);

void model_free(model *m) {
    if (!m) return;
    acts_free(m->acts);
    free(m->params);
    free(m->grads);
    free(m->table);
    free(m->layer);
    free(m->inv_freq);
    free(m->source_dir);
    free(m->config_json);
    free(m);
}

int model_alloc_grads(model *m, rlvr_err *e) {
    if (!m->grads) {
        m->grads = calloc(m->n_params, sizeof(float));
        if (!m->grads) return err_set(e, "out of memory for %zu gradients", m->n_params);
    }
    for (int i = 0; i < m->n_table; i++) m->table[i].grad = m->grads + (m->table[i].data - m->params);
    return 0;
}

void model_zero_grads(model *m) {
    if (m->grads) memset(m->grads, 0, m->n_params * sizeof(float));
}

const model_param *model_find_param(const model *m, const char *name) {
    for (int i = 0; i < m->n_table; i++)
        if (strcmp(m->table[i].name, name) == 0) return &m->table[i];
    return NULL;
}

/* The files besides the weights that make a model directory usable: copied on save. */
static const char *const TOKENIZER_FILES[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
    "tokenizer.model", "added_tokens.json", "generation_config.json", "chat_template.jinja",
};

int model_save(const model *m, const char *dir, rlvr_err *e) {
    if (util_mkdir_p(dir, e) != 0) return -1;
    st_write_tensor *ts = calloc((size_t)m->n_table, sizeof *ts);
    if (!ts) return err_set(e, "out of memory");
    for (int i = 0; i < m->n_table; i++) {
        const model_param *p = &m->table[i];
        ts[i] = (st_write_tensor){.name = p->name, .data = p->data, .ndim = p->ndim, .shape = {p->shape[0], p->shape[1]}};
    }
    char *path = util_path_join(dir, "model.safetensors");
    int rc = path ? st_write(path, ts, (size_t)m->n_table, ST_F32, e) : err_set(e, "out of memory");
    free(path);
    free(ts);
    if (rc != 0) return -1;
    /* config.json: the loaded one with its dtype set to float32 (keeps every key we do not
     * model), or one written from the config for an initialized model. */
    char *json = NULL;
    if (m->config_json) {
        cJSON *root = cJSON_Parse(m->config_json);
        if (root) {
            cJSON_DeleteItemFromObjectCaseSensitive(root, "torch_dtype");
            cJSON_DeleteItemFromObjectCaseSensitive(root, "dtype");
            cJSON_AddStringToObject(root, "torch_dtype", "float32");
            json = cJSON_Print(root);
            cJSON_Delete(root);
        }
    } else json = model_config_to_json(&m->cfg);
    if (!json) return err_set(e, "%s: out of memory writing config.json", dir);
    char *cfg_path = util_path_join(dir, "config.json");
    rc = cfg_path ? util_write_file_atomic(cfg_path, json, strlen(json), e) : err_set(e, "out of memory");
    free(cfg_path);
    free(json);
    if (rc != 0 || !m->source_dir) return rc;
    for (size_t i = 0; i < sizeof TOKENIZER_FILES / sizeof *TOKENIZER_FILES && rc == 0; i++) {
        char *src = util_path_join(m->source_dir, TOKENIZER_FILES[i]);
        char *dst = util_path_join(dir, TOKENIZER_FILES[i]);
        if (!src || !dst) rc = err_set(e, "out of memory");
        else if (util_is_file(src)) {
            size_t len = 0;
            char *data = util_read_file(src, &len, e);
            rc = data ? util_write_file_atomic(dst, data, len, e) : -1;
            free(data);
        }
        free(src);
        free(dst);
    }
    return rc;
}

/* ---- KV cache ------------------------------------------------------------------------------ */

model_kv *model_kv_new(const model *m, int slots, int max_len, rlvr_err *e) {
    if (slots < 1 || max_len < 1) {
        err_set(e, "KV cache needs at least one slot and one position");
        return NULL;
    }
    model_kv *kv = calloc(1, sizeof *kv);
    if (!kv) {
        err_set(e, "out of memory");
        return NULL;
    }
    kv->layers = m->cfg.layers;
    kv->slots = slots;
    kv->max_len = max_len;
    kv->kv_dim = m->cfg.kv_heads * m->cfg.head_dim;
    size_t n = (size_t)kv->layers * slots * max_len * kv->kv_dim;
    kv->len = calloc((size_t)slots, sizeof *kv->len);
    kv->k = malloc(n * sizeof(float));
    kv->v = malloc(n * sizeof(float));
    if (!kv->len || !kv->k || !kv->v) {
        model_kv_free(kv);
        err_set(e, "out of memory for a KV cache of %d x %d positions", slots, max_len);
        return NULL;
    }
    return kv;
}

void model_kv_free(model_kv *kv) {
    if (!kv) return;
    free(kv->len);
    free(kv->k);
    free(kv->v);
    free(kv);
}

void model_kv_truncate(model_kv *kv, int slot, int len) {
    if (slot >= 0 && slot < kv->slots && len >= 0 && len < kv->len[slot]) kv->len[slot] = len;
}

/* Row of layer l, slot s, position p in the cache's k or v. */
static float *kv_row(const model_kv *kv, float *base, int l, int s, int p) {
    return base + (((size_t)l * kv->slots + s) * kv->max_len + p) * kv->kv_dim;
}

/* ---- activations ------------------------------------------------------------------------------ */

/* What the forward keeps for backward, for up to `cap` tokens. */
struct model_acts {
    float *buf;
    const model_kv *kv;       /* the cache of the last forward (backward reads k and v there) */
    int cap, T, n_seqs, from_zero;
    int *tokens, *pos, *slot; /* [T] */
    int *seq_start, *seq_len, *seq_slot; /* [n_seqs], grown with the call */
    int seq_cap;
    float *x;                 /* [L+1, T, C] residual stream entering each layer; x[L] leaves the last */
    float *rstd1, *rstd2;     /* [L, T] */
    float *xn1, *xn2;         /* [L, T, C] normalized inputs of attention and MLP */
    float *q_raw;             /* [L, T, H*D] q projection (before qk norm and RoPE) */
    float *k_raw;             /* [L, T, KV*D] */
    float *q_rstd, *k_rstd;   /* [L, T, H], [L, T, KV] qk-norm rstd */
    float *q;                 /* [L, T, H*D] after qk norm and RoPE */
    float *att;               /* [L, T, H*D] attention output per head */
    float *lse;               /* [L, T, H] log-sum-exp of each head's scores */
    float *x_mid;             /* [L, T, C] residual after attention */
    float *gate, *up, *h;     /* [L, T, I] */
    float *rstdf;             /* [T] */
    float *xnf;               /* [T, C] final normalized hidden states */
    float *scratch;           /* [T, max(C, KV*D)] k then v before they go into the cache */
};

static void acts_free(model_acts *a) {
    if (!a) return;
    free(a->buf);
    free(a->seq_start);
    free(a);
}

static int acts_reserve(model *m, int T, int n_seqs, rlvr_err *e) {
    model_acts *a = m->acts;
    if (!a) {
        a = m->acts = calloc(1, sizeof *a);
        if (!a) return err_set(e, "out of memory");
    }
    if (n_seqs > a->seq_cap) {
        int *s = realloc(a->seq_start, (size_t)n_seqs * 3 * sizeof(int));
        if (!s) return err_set(e, "out of memory");
        a->seq_start = s;
        a->seq_len = s + n_seqs;
        a->seq_slot = s + 2 * n_seqs;
        a->seq_cap = n_seqs;
    }
    if (T <= a->cap) return 0;
    const model_config *c = &m->cfg;
    size_t L = (size_t)c->layers, C = (size_t)c->hidden, HD = (size_t)c->heads * c->head_dim,
           KVD = (size_t)c->kv_heads * c->head_dim, I = (size_t)c->intermediate, H = (size_t)c->heads,
           KV = (size_t)c->kv_heads, t = (size_t)T;
    size_t sizes[] = {(L + 1) * t * C, L * t, L * t, L * t * C, L * t * C, L * t * HD, L * t * KVD, L * t * H,
                      L * t * KV, L * t * HD, L * t * HD, L * t * H, L * t * C, L * t * I, L * t * I, L * t * I,
                      t, t * C, 2 * t * (C > KVD ? C : KVD), 3 * t};
    float **dst[] = {&a->x, &a->rstd1, &a->rstd2, &a->xn1, &a->xn2, &a->q_raw, &a->k_raw, &a->q_rstd,
                     &a->k_rstd, &a->q, &a->att, &a->lse, &a->x_mid, &a->gate, &a->up, &a->h,
                     &a->rstdf, &a->xnf, &a->scratch, NULL};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) total += sizes[i];
    float *buf = malloc(total * sizeof(float));
    if (!buf) return err_set(e, "out of memory for activations of %d tokens", T);
    free(a->buf);
    a->buf = buf;
    size_t off = 0;
    for (size_t i = 0; dst[i]; i++) {
        *dst[i] = buf + off;
        off += sizes[i];
    }
    /* the token bookkeeping (ints) lives in the last 3T floats' space */
    int *ints = (int *)(buf + off);
    a->tokens = ints;
    a->pos = ints + T;
    a->slot = ints + 2 * T;
    a->cap = T;
    return 0;
}

/* ---- forward ------------------------------------------------------------------------------- */

typedef struct attn_job {
    const model *m;
    const model_kv *kv;
    int l;
    const float *q; /* [T, H*D] */
    float *att, *lse;
    int failed;     /* set by a job that could not get its scratch */
} attn_job;

/* One (sequence, query head): softmax(Q K^T / sqrt(D)) V as two matrix products over the
 * slot's cached positions 0..P-1, with the causal mask applied between them.
 * Q: the sequence's n new rows of head h (row stride H*D); K, V: kv head g of the cache
 * (row stride KV*D); S: [n, P] scores, then probabilities. */
static void attn_forward_head(void *ctx, int i) {
    attn_job *j = ctx;
    const model_config *c = &j->m->cfg;
    const model_acts *a = j->m->acts;
    int H = c->heads, D = c->head_dim, HD = H * D, KVD = c->kv_heads * D, group = c->heads / c->kv_heads;
    int sq = i / H, h = i % H, g = h / group;
    int start = a->seq_start[sq], n = a->seq_len[sq], slot = a->seq_slot[sq], p0 = a->pos[start], P = p0 + n;
    float *S = malloc((size_t)n * P * sizeof(float));
    if (!S) {
        j->failed = 1;
        return;
    }
    const float *K = kv_row(j->kv, j->kv->k, j->l, slot, 0) + (size_t)g * D;
    const float *Vv = kv_row(j->kv, j->kv->v, j->l, slot, 0) + (size_t)g * D;
    cpu_sgemm(0, 1, n, P, D, 1.0f / sqrtf((float)D), j->q + (size_t)start * HD + (size_t)h * D, HD, K, KVD, 0.0f, S,
              P);
    causal_softmax_rows(S, n, P, p0, j->lse + (size_t)start * H + h, (size_t)H);
    cpu_sgemm(0, 0, n, D, P, 1.0f, S, P, Vv, KVD, 0.0f, j->att + (size_t)start * HD + (size_t)h * D, HD);
    free(S);
}

int model_forward(model *m, model_kv *kv, int n_seqs, const int *slots, const int *n_new, const int *tokens,
                  rlvr_err *e) {
    const model_config *c = &m->cfg;
    int T = 0, from_zero = 1;
    for (int i = 0; i < n_seqs; i++) {
        int s = slots[i];
        if (s < 0 || s >= kv->slots) return err_set(e, "sequence %d: KV slot %d out of range [0, %d)", i, s, kv->slots);
        for (int k = 0; k < i; k++)
            if (slots[k] == s) return err_set(e, "sequences %d and %d use the same KV slot %d", k, i, s);
        if (n_new[i] < 1) return err_set(e, "sequence %d: no new tokens", i);
        if (kv->len[s] + n_new[i] > kv->max_len)
            return err_set(e, "sequence %d: %d positions exceed the KV cache's %d", i, kv->len[s] + n_new[i], kv->max_len);
        if (c->sliding_window && kv->len[s] + n_new[i] > c->sliding_window)
            return err_set(e, "sequence %d: %d positions exceed the sliding window (%d), which is not supported", i,
                           kv->len[s] + n_new[i], c->sliding_window);
        if (kv->len[s] != 0) from_zero = 0;
        T += n_new[i];
    }
    if (T < 1) return err_set(e, "forward: no tokens");
    for (int i = 0, t = 0; i < n_seqs; i++)
        for (int k = 0; k < n_new[i]; k++, t++)
            if (tokens[t] < 0 || tokens[t] >= c->vocab)
                return err_set(e, "sequence %d: token id %d is outside the vocabulary [0, %d)", i, tokens[t], c->vocab);
    if (m->acts) m->acts->T = 0; /* nothing to read back until this forward completes */
    if (acts_reserve(m, T, n_seqs, e) != 0) return -1;
    model_acts *a = m->acts;
    a->T = T;
    a->n_seqs = n_seqs;
    a->from_zero = from_zero;
    a->kv = kv;
    for (int i = 0, t = 0; i < n_seqs; i++) {
        a->seq_start[i] = t;
        a->seq_len[i] = n_new[i];
        a->seq_slot[i] = slots[i];
        for (int k = 0; k < n_new[i]; k++, t++) {
            a->tokens[t] = tokens[t];
            a->pos[t] = kv->len[slots[i]] + k;
            a->slot[t] = slots[i];
        }
    }
    int C = c->hidden, D = c->head_dim, H = c->heads, KV = c->kv_heads, HD = H * D, KVD = KV * D, I = c->intermediate;
    size_t TC = (size_t)T * C;
    embedding_forward(a->x, m->embed, a->tokens, T, C);
    float *k_new = a->scratch, *v_new = a->scratch + (size_t)T * (C > KVD ? C : KVD);
    for (int l = 0; l < c->layers; l++) {
        const model_layer *w = &m->layer[l];
        float *x = a->x + l * TC, *xn1 = a->xn1 + l * TC, *x_mid = a->x_mid + l * TC, *xn2 = a->xn2 + l * TC;
        float *q_raw = a->q_raw + (size_t)l * T * HD, *k_raw = a->k_raw + (size_t)l * T * KVD;
        float *q = a->q + (size_t)l * T * HD, *att = a->att + (size_t)l * T * HD;
        float *gate = a->gate + (size_t)l * T * I, *up = a->up + (size_t)l * T * I, *h = a->h + (size_t)l * T * I;
        /* attention */
        rmsnorm_forward(xn1, a->rstd1 + (size_t)l * T, x, w->input_norm, T, C, c->rms_eps);
        matmul_forward(q_raw, xn1, w->wq, w->bq, T, C, HD);
        matmul_forward(k_raw, xn1, w->wk, w->bk, T, C, KVD);
        matmul_forward(v_new, xn1, w->wv, w->bv, T, C, KVD);
        if (c->qk_norm) {
            rmsnorm_forward(q, a->q_rstd + (size_t)l * T * H, q_raw, w->q_norm, T * H, D, c->rms_eps);
            rmsnorm_forward(k_new, a->k_rstd + (size_t)l * T * KV, k_raw, w->k_norm, T * KV, D, c->rms_eps);
        } else {
            memcpy(q, q_raw, (size_t)T * HD * sizeof(float));
            memcpy(k_new, k_raw, (size_t)T * KVD * sizeof(float));
        }
        rope_forward(q, m->inv_freq, a->pos, T, H, D);
        rope_forward(k_new, m->inv_freq, a->pos, T, KV, D);
        for (int t = 0; t < T; t++) {
            memcpy(kv_row(kv, kv->k, l, a->slot[t], a->pos[t]), k_new + (size_t)t * KVD, KVD * sizeof(float));
            memcpy(kv_row(kv, kv->v, l, a->slot[t], a->pos[t]), v_new + (size_t)t * KVD, KVD * sizeof(float));
        }
        attn_job job = {m, kv, l, q, att, a->lse + (size_t)l * T * H, 0};
        cpu_parallel_for(n_seqs * H, attn_forward_head, &job);
        if (job.failed) {
            a->T = 0;
            return err_set(e, "forward: out of memory for attention scores");
        }
        matmul_forward(x_mid, att, w->wo, w->bo, T, HD, C);
        for (size_t i = 0; i < TC; i++) x_mid[i] += x[i];
        /* MLP */
        rmsnorm_forward(xn2, a->rstd2 + (size_t)l * T, x_mid, w->post_norm, T, C, c->rms_eps);
        matmul_forward(gate, xn2, w->w_gate, NULL, T, C, I);
        matmul_forward(up, xn2, w->w_up, NULL, T, C, I);
        swiglu_forward(h, gate, up, (size_t)T * I);
        float *x_next = a->x + (l + 1) * TC;
        matmul_forward(x_next, h, w->w_down, NULL, T, I, C);
        for (size_t i = 0; i < TC; i++) x_next[i] += x_mid[i];
    }
    rmsnorm_forward(a->xnf, a->rstdf, a->x + c->layers * TC, m->final_norm, T, C, c->rms_eps);
    for (int i = 0; i < n_seqs; i++) kv->len[slots[i]] += n_new[i];
    return 0;
}

void model_logits(model *m, const int *rows, int n, float *out) {
    const model_config *c = &m->cfg;
    int C = c->hidden;
    /* gather the rows so that one GEMM computes every logit: out[n, V] = rows[n, C] @ lm_head^T */
    float *x = malloc((size_t)n * C * sizeof(float));
    if (!x) { /* too little memory for n rows: one row at a time needs none */
        for (int i = 0; i < n; i++)
            cpu_sgemm(0, 1, 1, c->vocab, C, 1.0f, m->acts->xnf + (size_t)rows[i] * C, C, m->lm_head, C, 0.0f,
                      out + (size_t)i * c->vocab, c->vocab);
        return;
    }
    for (int i = 0; i < n; i++) memcpy(x + (size_t)i * C, m->acts->xnf + (size_t)rows[i] * C, C * sizeof(float));
    cpu_sgemm(0, 1, n, c->vocab, C, 1.0f, x, C, m->lm_head, C, 0.0f, out, c->vocab);
    free(x);
}

/* ---- log-probabilities over vocabulary chunks ------------------------------------------------------ */

/* The LM head and its softmax statistics live in cpu_ops.c (lmhead_logprobs), the CPU
 * twin of the GPU's chunked LM head. */
static void logprobs_internal(model *m, const int *targets, float *logz, float *logp, float *entropy) {
    lmhead_logprobs(logz, logp, entropy, m->acts->xnf, m->lm_head, targets, m->acts->T, m->cfg.hidden, m->cfg.vocab);
}

void model_logprobs(model *m, const int *targets, float *logp, float *entropy) {
    float *logz = malloc((size_t)m->acts->T * sizeof(float));
    if (!logz) abort();
    logprobs_internal(m, targets, logz, logp, entropy);
    free(logz);
}

/* ---- backward ---------------------------------------------------------------------------------- */

typedef struct attn_bwd_job {
    const model *m;
    const model_kv *kv;
    int l;
    const float *q, *att, *lse, *datt; /* [T, H*D], [T, H*D], [T, H], [T, H*D] */
    float *dq, *dk, *dv;               /* [T, H*D], [T, KV*D], [T, KV*D] */
} attn_bwd_job;

/* One (sequence, kv head): every query head of the group over every token of the
 * sequence. Writes dq of those heads and dk/dv of that kv head for the sequence's tokens,
 * which no other job touches. With p_k = exp(s_k - lse) and dp_k = dout . v_k:
 * ds_k = p_k (dp_k - dout . out), dq += scale ds_k k_k, dk_k += scale ds_k q, dv_k += p_k dout. */
static void attn_backward_one(void *ctx, int i) {
    const attn_bwd_job *j = ctx;
    const model_config *c = &j->m->cfg;
    const model_acts *a = j->m->acts;
    int H = c->heads, KV = c->kv_heads, D = c->head_dim, group = H / KV, HD = H * D, KVD = KV * D;
    int sq = i / KV, g = i % KV, start = a->seq_start[sq], n = a->seq_len[sq], slot = a->seq_slot[sq];
    float scale = 1.0f / sqrtf((float)D);
    for (int t = start; t < start + n; t++)
        for (int h = g * group; h < (g + 1) * group; h++) {
            const float *q = j->q + (size_t)t * HD + (size_t)h * D, *dout = j->datt + (size_t)t * HD + (size_t)h * D;
            const float *out = j->att + (size_t)t * HD + (size_t)h * D;
            float *dq = j->dq + (size_t)t * HD + (size_t)h * D;
            float lse = j->lse[(size_t)t * H + h], dd = 0.0f;
            for (int d = 0; d < D; d++) dd += dout[d] * out[d];
            for (int k = 0; k <= a->pos[t]; k++) {
                const float *kr = kv_row(j->kv, j->kv->k, j->l, slot, k) + (size_t)g * D;
                const float *vr = kv_row(j->kv, j->kv->v, j->l, slot, k) + (size_t)g * D;
                float sc = 0.0f, dp = 0.0f;
                for (int d = 0; d < D; d++) sc += q[d] * kr[d], dp += dout[d] * vr[d];
                float p = expf(sc * scale - lse), ds = p * (dp - dd) * scale;
                float *dk = j->dk + (size_t)(start + k) * KVD + (size_t)g * D;
                float *dv = j->dv + (size_t)(start + k) * KVD + (size_t)g * D;
                for (int d = 0; d < D; d++) {
                    dq[d] += ds * kr[d];
                    dk[d] += ds * q[d];
                    dv[d] += p * dout[d];
                }
            }
        }
}

#define GRAD(ptr) ((ptr) ? m->grads + ((ptr) - m->params) : NULL)

/* Checks that a backward can run through the last forward. */
static int backward_ready(const model *m, rlvr_err *e) {
    const model_acts *a = m->acts;
    if (!m->grads) return err_set(e, "backward: gradients are not allocated (model_alloc_grads)");
    if (!a || a->T == 0) return err_set(e, "backward: no forward to go back through");
    if (!a->from_zero) return err_set(e, "backward: the last forward must start every sequence at position 0");
    return 0;
}

/* The backward from d xnf (the final normed hidden states, [T, C]) down to the embedding:
 * the one layer loop both model_backward (from the LM head) and model_backward_hidden (from
 * a head of the caller's, the critic's value head) go through. */
static int backward_trunk(model *m, const float *dxnf, rlvr_err *e) {
    model_acts *a = m->acts;
    const model_config *c = &m->cfg;
    int T = a->T, C = c->hidden, D = c->head_dim, H = c->heads, KV = c->kv_heads, HD = H * D, KVD = KV * D,
        I = c->intermediate;
    /* scratch: dx, dxn [T, C]; dh, dgate, dup [T, I]; datt, dq, dq_raw [T, HD]; dk, dk_raw, dv [T, KVD] */
    size_t tc = (size_t)T * C, ti = (size_t)T * I, thd = (size_t)T * HD, tkv = (size_t)T * KVD;
    size_t total = 2 * tc + 3 * ti + 3 * thd + 3 * tkv;
    float *buf = calloc(total, sizeof(float));
    if (!buf) return err_set(e, "backward: out of memory for %d tokens", T);
    float *dx = buf, *dxn = dx + tc, *dh = dxn + tc, *dgate = dh + ti, *dup = dgate + ti, *datt = dup + ti,
          *dq = datt + thd, *dq_raw = dq + thd, *dk = dq_raw + thd, *dk_raw = dk + tkv, *dv = dk_raw + tkv;

    rmsnorm_backward(dx, GRAD(m->final_norm), dxnf, a->x + c->layers * tc, m->final_norm, a->rstdf, T, C);

    for (int l = c->layers - 1; l >= 0; l--) {
        const model_layer *w = &m->layer[l];
        const float *x = a->x + l * tc, *xn1 = a->xn1 + l * tc, *x_mid = a->x_mid + l * tc, *xn2 = a->xn2 + l * tc;
        const float *gate = a->gate + (size_t)l * ti, *up = a->up + (size_t)l * ti, *h = a->h + (size_t)l * ti;
        /* MLP: dx is d x_{l+1}; it flows to x_mid through the residual unchanged */
        memset(dh, 0, ti * sizeof(float));
        matmul_backward(dh, GRAD(w->w_down), NULL, dx, h, w->w_down, T, I, C);
        swiglu_backward(dgate, dup, dh, gate, up, ti);
        memset(dxn, 0, tc * sizeof(float));
        matmul_backward(dxn, GRAD(w->w_gate), NULL, dgate, xn2, w->w_gate, T, C, I);
        matmul_backward(dxn, GRAD(w->w_up), NULL, dup, xn2, w->w_up, T, C, I);
        rmsnorm_backward(dx, GRAD(w->post_norm), dxn, x_mid, w->post_norm, a->rstd2 + (size_t)l * T, T, C);
        /* attention: dx is now d x_mid */
        memset(datt, 0, thd * sizeof(float));
        matmul_backward(datt, GRAD(w->wo), GRAD(w->bo), dx, a->att + (size_t)l * thd, w->wo, T, HD, C);
        memset(dq, 0, thd * sizeof(float));
        memset(dk, 0, tkv * sizeof(float));
        memset(dv, 0, tkv * sizeof(float));
        attn_bwd_job job = {m, a->kv, l, a->q + (size_t)l * thd, a->att + (size_t)l * thd, a->lse + (size_t)l * T * H,
                            datt, dq, dk, dv};
        cpu_parallel_for(a->n_seqs * KV, attn_backward_one, &job);
        rope_backward(dq, m->inv_freq, a->pos, T, H, D);
        rope_backward(dk, m->inv_freq, a->pos, T, KV, D);
        const float *gq = dq, *gk = dk;
        if (c->qk_norm) {
            memset(dq_raw, 0, thd * sizeof(float));
            memset(dk_raw, 0, tkv * sizeof(float));
            rmsnorm_backward(dq_raw, GRAD(w->q_norm), dq, a->q_raw + (size_t)l * thd, w->q_norm,
                             a->q_rstd + (size_t)l * T * H, T * H, D);
            rmsnorm_backward(dk_raw, GRAD(w->k_norm), dk, a->k_raw + (size_t)l * tkv, w->k_norm,
                             a->k_rstd + (size_t)l * T * KV, T * KV, D);
            gq = dq_raw;
            gk = dk_raw;
        }
        memset(dxn, 0, tc * sizeof(float));
        matmul_backward(dxn, GRAD(w->wq), GRAD(w->bq), gq, xn1, w->wq, T, C, HD);
        matmul_backward(dxn, GRAD(w->wk), GRAD(w->bk), gk, xn1, w->wk, T, C, KVD);
        matmul_backward(dxn, GRAD(w->wv), GRAD(w->bv), dv, xn1, w->wv, T, C, KVD);
        rmsnorm_backward(dx, GRAD(w->input_norm), dxn, x, w->input_norm, a->rstd1 + (size_t)l * T, T, C);
    }
    embedding_backward(GRAD(m->embed), dx, a->tokens, T, C);
    free(buf);
    return 0;
}

int model_backward(model *m, const int *targets, const float *dlogp, const float *dentropy, rlvr_err *e) {
    if (backward_ready(m, e) != 0) return -1;
    model_acts *a = m->acts;
    int T = a->T, C = m->cfg.hidden, V = m->cfg.vocab;
    for (int t = 0; t < T; t++)
        if (targets[t] < 0 || targets[t] >= V)
            return err_set(e, "backward: target %d of token %d is outside the vocabulary [0, %d)", targets[t], t, V);
    /* scratch: dxnf [T, C]; logz, entropy [T]; a logits block */
    size_t tc = (size_t)T * C;
    float *buf = calloc(tc + 2 * (size_t)T + (size_t)LMHEAD_ROW_BLOCK * LMHEAD_VOCAB_CHUNK, sizeof(float));
    if (!buf) return err_set(e, "backward: out of memory for %d tokens", T);
    float *dxnf = buf, *logz = dxnf + tc, *entropy = logz + T, *blk = entropy + T;
    logprobs_internal(m, targets, logz, NULL, entropy);
    lmhead_backward(dxnf, m->grads + (m->lm_head - m->params), a->xnf, m->lm_head, targets, dlogp, dentropy, logz,
                    entropy, T, C, V, blk);
    int rc = backward_trunk(m, dxnf, e);
    free(buf);
    return rc;
}

const float *model_hidden(const model *m) { return m->acts && m->acts->T > 0 ? m->acts->xnf : NULL; }

int model_backward_hidden(model *m, const float *dhidden, rlvr_err *e) {
    if (backward_ready(m, e) != 0) return -1;
    return backward_trunk(m, dhidden, e);
}

void model_set_threads(int n) { cpu_set_threads(n); }
