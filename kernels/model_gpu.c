/* model_gpu.c - the transformer's training pass on the GPU: which kernel runs when, per
 * layer, in the order core/model.c's model_forward and model_backward do the same
 * arithmetic on the CPU (which is what tests/gpu/test_model_gpu.c compares against).
 * Every launch goes to the default stream, so host copies (cudaMemcpy) order with them. */
#include "model_gpu_impl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "safetensors.h"

/* The LM head runs on row blocks of at most LM_ROWS tokens and vocabulary chunks of
 * LM_CHUNK entries: its workspace holds one [LM_ROWS, LM_CHUNK] block of fp32 logits
 * (64 MiB), whatever the micro-batch. */
enum { LM_ROWS = 2048, LM_CHUNK = 8192 };
/* Left free beyond the plan: the CUDA runtime's lazily loaded modules and cuBLASLt's
 * own small allocations. */
#define HEADROOM ((size_t)256 << 20)

/* ---- the plan ---------------------------------------------------------------------------- */

size_t gpu_model_param_count(const model_config *c) {
    size_t C = (size_t)c->hidden, D = (size_t)c->head_dim, HD = (size_t)c->heads * D,
           KVD = (size_t)c->kv_heads * D, I = (size_t)c->intermediate, V = (size_t)c->vocab;
    size_t layer = C + HD * C + 2 * KVD * C + C * HD + C + 3 * I * C;
    if (c->qkv_bias) layer += HD + 2 * KVD;
    if (c->o_bias) layer += C;
    if (c->qk_norm) layer += 2 * D;
    return V * C + (size_t)c->layers * layer + C + (c->tie_embeddings ? 0 : V * C);
}

/* Vocabulary rows per LM-head chunk: opts' choice, else LM_CHUNK, at most the vocabulary. */
static int lm_chunk_of(const model_config *c, const gpu_model_opts *o) {
    int chunk = o->lm_chunk > 0 ? o->lm_chunk : LM_CHUNK;
    return c->vocab < chunk ? c->vocab : chunk;
}

/* Whether forward keeps the LM head's probabilities for backward (kern_lmhead_logprobs):
 * when asked, in bf16 training without recomputation (which is for saving memory, and the
 * probabilities take T V 2 bytes, more than a layer's activations). */
static int keeps_lm_probs(const gpu_model_opts *o) {
    return o->lm_keep_probs && o->train && o->dtype == KERN_BF16 && !o->recompute;
}

static int n_slots_of(const model_config *c, const gpu_model_opts *o) {
    return o->train && !o->recompute ? c->layers : 1;
}

/* Carves the activation (act) and workspace (ws) allocations; with NULL bases it only
 * counts their bytes. slots has n_slots_of entries, or is NULL when counting. */
static void layout(const model_config *c, const gpu_model_opts *o, gm_bufs *b, gm_slot *slots, bump *act, bump *ws) {
    size_t T = (size_t)o->max_tokens, S = (size_t)o->max_seqs, C = (size_t)c->hidden, D = (size_t)c->head_dim,
           H = (size_t)c->heads, KV = (size_t)c->kv_heads, HD = H * D, KVD = KV * D, I = (size_t)c->intermediate,
           L = (size_t)c->layers, dsz = kern_dtype_size(o->dtype), f4 = sizeof(float), i4 = sizeof(int);
    int qk = c->qk_norm;
    b->x = take(act, (o->train ? L + 1 : 2) * T * C * dsz);
    b->xnf = take(act, T * C * dsz);
    b->rstdf = take(act, T * f4);
    b->lm_probs = b->lm_cmax = NULL;
    if (keeps_lm_probs(o)) {
        b->lm_probs = take(act, T * (size_t)c->vocab * 2);
        b->lm_cmax = take(act, T * (size_t)kern_lmhead_chunks(c->vocab, lm_chunk_of(c, o)) * f4);
    }
    int n = n_slots_of(c, o);
    for (int l = 0; l < n; l++) {
        gm_slot dummy, *s = slots ? &slots[l] : &dummy;
        memset(s, 0, sizeof *s);
        s->rstd1 = take(act, T * f4);
        s->rstd2 = take(act, T * f4);
        if (qk) {
            s->q_rstd = take(act, T * H * f4);
            s->k_rstd = take(act, T * KV * f4);
            s->q_raw = take(act, T * HD * dsz);
            s->k_raw = take(act, T * KVD * dsz);
        }
        s->lse = take(act, T * H * f4);
        s->xn1 = take(act, T * C * dsz);
        s->x_mid = take(act, T * C * dsz);
        s->xn2 = take(act, T * C * dsz);
        s->q = take(act, T * HD * dsz);
        s->att = take(act, T * HD * dsz);
        s->k = take(act, T * KVD * dsz);
        s->v = take(act, T * KVD * dsz);
        s->gate = take(act, T * I * dsz);
        s->up = take(act, T * I * dsz);
        s->h = take(act, T * I * dsz);
    }
    b->tmp = take(ws, T * C * dsz);
    b->inv_freq = take(ws, (D / 2) * f4);
    b->logz = take(ws, T * f4);
    b->logp = take(ws, T * f4);
    b->ent = take(ws, T * f4);
    b->tokens = take(ws, T * i4);
    b->targets = take(ws, T * i4);
    b->pos = take(ws, T * i4);
    b->cu = take(ws, (S + 1) * i4);
    int lm_rows = o->max_tokens < LM_ROWS ? o->max_tokens : LM_ROWS;
    int lm_chunk = lm_chunk_of(c, o);
    b->lm_ws = take(ws, kern_lmhead_workspace(o->dtype, lm_rows, lm_chunk));
    if (!o->train) return;
    b->dx = take(ws, T * C * dsz);
    b->dxn = take(ws, T * C * dsz);
    b->dxnf = take(ws, T * C * f4);
    b->dh = take(ws, T * I * dsz);
    b->dgate = take(ws, T * I * dsz);
    b->dup = take(ws, T * I * dsz);
    b->datt = take(ws, T * HD * dsz);
    b->dq = take(ws, T * HD * dsz);
    b->dk = take(ws, T * KVD * dsz);
    b->dv = take(ws, T * KVD * dsz);
    b->dq_raw = qk ? take(ws, T * HD * dsz) : NULL;
    b->dk_raw = qk ? take(ws, T * KVD * dsz) : NULL;
    size_t ns = kern_rmsnorm_backward_scratch(o->max_tokens, c->hidden);
    if (qk) {
        size_t q = kern_rmsnorm_backward_scratch(o->max_tokens * c->heads, c->head_dim);
        ns = q > ns ? q : ns;
    }
    b->norm_scratch = take(ws, ns);
    b->att_scratch = take(ws, kern_attention_backward_scratch(o->max_tokens, c->heads, c->kv_heads, c->head_dim));
    b->clip_ws = take(ws, kern_clip_grad_norm_workspace());
    b->dlogp = take(ws, T * f4);
    b->dent = take(ws, T * f4);
    b->order = take(ws, T * i4);
    b->starts = take(ws, (T + 1) * i4);
    b->unique = take(ws, T * i4);
}

void gpu_mem_plan_compute(const model_config *c, const gpu_model_opts *o, gpu_mem_plan *p) {
    memset(p, 0, sizeof *p);
    size_t n = gpu_model_param_count(c), dsz = kern_dtype_size(o->dtype);
    p->n_params = n;
    /* fp32: the master weights are what the kernels read; bf16: a bf16 working copy, plus
     * the fp32 master when training */
    p->weights = o->dtype == KERN_F32 ? n * 4 : n * dsz + (o->train ? n * 4 : 0);
    p->grads = o->train ? n * 4 : 0;
    p->optimizer = o->train ? 2 * n * 4 : 0;
    gm_bufs b;
    bump act = {NULL, 0}, ws = {NULL, 0};
    layout(c, o, &b, NULL, &act, &ws);
    p->activations = act.off;
    p->workspace = ws.off + BLAS_WORKSPACE;
    p->headroom = HEADROOM;
    p->total = p->weights + p->grads + p->optimizer + p->activations + p->workspace + p->headroom;
}

static double gib(size_t b) { return (double)b / (double)((size_t)1 << 30); }

/* "12.345 GiB", or "12.3 MiB" below a GiB. */
static const char *size_str(size_t b, char *buf, size_t n) {
    if (b >= ((size_t)1 << 30)) snprintf(buf, n, "%9.3f GiB", gib(b));
    else snprintf(buf, n, "%9.1f MiB", (double)b / (double)((size_t)1 << 20));
    return buf;
}

void gpu_mem_plan_format(const gpu_mem_plan *p, char *buf, size_t n) {
    char s[7][32];
    snprintf(buf, n,
             "GPU memory plan (%zu parameters):\n"
             "  weights      %s\n"
             "  gradients    %s\n"
             "  optimizer    %s\n"
             "  activations  %s\n"
             "  workspace    %s\n"
             "  headroom     %s\n"
             "  total        %s\n",
             p->n_params, size_str(p->weights, s[0], 32), size_str(p->grads, s[1], 32),
             size_str(p->optimizer, s[2], 32), size_str(p->activations, s[3], 32), size_str(p->workspace, s[4], 32),
             size_str(p->headroom, s[5], 32), size_str(p->total, s[6], 32));
}

int gpu_mem_plan_check(const gpu_mem_plan *p, const gpu_model_opts *o, size_t free_bytes, size_t total_bytes,
                       rlvr_err *e) {
    if (p->total <= free_bytes) return 0;
    char hint[256];
    if (p->weights + p->grads + p->optimizer + p->headroom + BLAS_WORKSPACE > free_bytes)
        snprintf(hint, sizeof hint, "the weights, gradients and optimizer state alone do not fit: use a smaller model "
                                    "or a GPU with more memory");
    else
        snprintf(hint, sizeof hint, "lower micro_batch_size or the sequence length (now %d tokens per micro-batch)%s",
                 o->max_tokens, o->recompute || !o->train ? "" : ", or set train.recompute = true");
    return err_set(e,
                   "GPU memory plan needs %.2f GiB (weights %.2f, gradients %.2f, optimizer %.2f, activations %.2f, "
                   "workspace %.2f, headroom %.2f GiB) but only %.2f GiB of the device's %.2f GiB is free; %s",
                   gib(p->total), gib(p->weights), gib(p->grads), gib(p->optimizer), gib(p->activations),
                   gib(p->workspace), gib(p->headroom), gib(free_bytes), gib(total_bytes), hint);
}

/* ---- construction -------------------------------------------------------------------------- */

const gpu_mem_plan *gpu_model_plan(const gpu_model *g) { return &g->plan; }

void gpu_model_free(gpu_model *g) {
    if (!g) return;
    kern_blas_free(g->blas);
    kern_stream_free(g->stream);
    if (g->work != (void *)g->master) kern_free(g->work);
    kern_free(g->master);
    kern_free(g->grads);
    kern_free(g->m);
    kern_free(g->v);
    kern_free(g->act_mem);
    kern_free(g->ws_mem);
    free(g->slots);
    free(g->w);
    free(g->gw);
    free(g->h_pos);
    free(g->h_cu);
    free(g->h_order);
    free(g->h_starts);
    free(g->h_unique);
    free(g);
}

/* A host parameter pointer of m as the device working copy / gradient at the same offset. */
static void *dev_w(const gpu_model *g, const model *m, const float *p) {
    return p ? (char *)g->work + (size_t)(p - m->params) * g->dsz : NULL;
}
static float *dev_g(const gpu_model *g, const model *m, const float *p) {
    return p && g->grads ? g->grads + (p - m->params) : NULL;
}

int gpu_model_check_host(const gpu_model *g, const model *m, rlvr_err *e) {
    if (m->n_params != g->n_params || m->cfg.hidden != g->cfg.hidden || m->cfg.layers != g->cfg.layers ||
        m->cfg.vocab != g->cfg.vocab)
        return err_set(e, "GPU model: the host model has %zu parameters, the GPU model %zu", m->n_params, g->n_params);
    return 0;
}

gpu_model *gpu_model_new(const model *m, const gpu_model_opts *o, rlvr_err *e) {
    const model_config *c = &m->cfg;
    if (o->dtype != KERN_F32 && o->dtype != KERN_BF16) {
        err_set(e, "GPU model: unknown dtype %d", (int)o->dtype);
        return NULL;
    }
    if (o->max_tokens < 1 || o->max_seqs < 1 || o->max_seqs > o->max_tokens) {
        err_set(e, "GPU model: a micro-batch of %d tokens in %d sequences", o->max_tokens, o->max_seqs);
        return NULL;
    }
    if (o->invariant && (o->dtype != KERN_BF16 || c->hidden % 8 || c->head_dim % 8 ||
                         c->intermediate % 8 || (lm_chunk_of(c, o) % 8 && lm_chunk_of(c, o) < c->vocab))) {
        err_set(e, "GPU model: the batch-invariant forward needs bf16 and a hidden size, head size, "
                   "intermediate size and LM-head chunk that are multiples of 8 (dtype %s, %d, %d, %d, %d)",
                o->dtype == KERN_BF16 ? "bf16" : "fp32", c->hidden, c->head_dim, c->intermediate,
                lm_chunk_of(c, o));
        return NULL;
    }
    if (gpu_model_param_count(c) != m->n_params) {
        err_set(e, "GPU model: the config gives %zu parameters, the model holds %zu", gpu_model_param_count(c),
                m->n_params);
        return NULL;
    }
    if (kern_device_count(e) <= 0) return NULL;
    kern_device_info info;
    if (kern_device_info_get(0, &info, e) != 0) return NULL;
    gpu_model *g = calloc(1, sizeof *g);
    if (!g) {
        err_set(e, "out of memory");
        return NULL;
    }
    g->cfg = *c;
    g->o = *o;
    g->n_params = m->n_params;
    g->dsz = kern_dtype_size(o->dtype);
    gpu_mem_plan_compute(c, o, &g->plan);
    if (gpu_mem_plan_check(&g->plan, o, info.free_memory, info.total_memory, e) != 0) {
        err_prefix(e, "%s", info.name);
        gpu_model_free(g);
        return NULL;
    }
    int L = c->layers;
    g->n_slots = n_slots_of(c, o);
    g->slots = calloc((size_t)g->n_slots, sizeof *g->slots);
    g->w = calloc((size_t)L, sizeof *g->w);
    g->gw = calloc((size_t)L, sizeof *g->gw);
    size_t T = (size_t)o->max_tokens;
    g->h_pos = malloc(T * sizeof(int));
    g->h_cu = malloc(((size_t)o->max_seqs + 1) * sizeof(int));
    g->h_order = malloc(T * sizeof(int));
    g->h_starts = malloc((T + 1) * sizeof(int));
    g->h_unique = malloc(T * sizeof(int));
    if (!g->slots || !g->w || !g->gw || !g->h_pos || !g->h_cu || !g->h_order || !g->h_starts || !g->h_unique) {
        err_set(e, "out of memory");
        gpu_model_free(g);
        return NULL;
    }
    size_t n = g->n_params;
    int ok = 1;
    if (o->dtype == KERN_F32 || o->train) ok = ok && (g->master = kern_malloc(n * 4, e)) != NULL;
    if (ok) g->work = o->dtype == KERN_F32 ? (void *)g->master : kern_malloc(n * g->dsz, e);
    ok = ok && g->work;
    if (ok && o->train) {
        ok = (g->grads = kern_malloc(n * 4, e)) && (g->m = kern_malloc(n * 4, e)) && (g->v = kern_malloc(n * 4, e));
    }
    bump act = {NULL, 0}, ws = {NULL, 0};
    layout(c, o, &g->b, NULL, &act, &ws);
    ok = ok && (g->act_mem = kern_malloc(act.off, e)) && (g->ws_mem = kern_malloc(ws.off, e));
    ok = ok && (g->blas = kern_blas_new(e)) && (g->stream = kern_stream_new(e));
    if (!ok) {
        err_prefix(e, "GPU model (planned %.2f GiB)", gib(g->plan.total));
        gpu_model_free(g);
        return NULL;
    }
    act = (bump){g->act_mem, 0};
    ws = (bump){g->ws_mem, 0};
    layout(c, o, &g->b, g->slots, &act, &ws);
    for (int l = 0; l < L; l++) {
        const model_layer *hl = &m->layer[l];
#define X(f) g->w[l].f = dev_w(g, m, hl->f), g->gw[l].f = dev_g(g, m, hl->f);
        GM_LAYER_FIELDS(X)
#undef X
    }
    g->embed = dev_w(g, m, m->embed);
    g->final_norm = dev_w(g, m, m->final_norm);
    g->lm_head = dev_w(g, m, m->lm_head);
    g->g_embed = dev_g(g, m, m->embed);
    g->g_final_norm = dev_g(g, m, m->final_norm);
    g->g_lm_head = dev_g(g, m, m->lm_head); /* == g_embed when tied: both gradients add there */
    if (kern_memcpy_h2d(g->b.inv_freq, m->inv_freq, (size_t)(c->head_dim / 2) * sizeof(float), e) != 0 ||
        gpu_model_upload(g, m, e) != 0 ||
        (o->train && (kern_memzero(g->grads, n * 4, g->stream, e) != 0 ||
                      kern_memzero(g->m, n * 4, g->stream, e) != 0 || kern_memzero(g->v, n * 4, g->stream, e) != 0))) {
        gpu_model_free(g);
        return NULL;
    }
    return g;
}

/* ---- parameters and optimizer state ------------------------------------------------------------ */

int gpu_model_upload(gpu_model *g, const model *m, rlvr_err *e) {
    if (gpu_model_check_host(g, m, e) != 0) return -1;
    size_t n = g->n_params;
    if (g->master) {
        if (kern_memcpy_h2d(g->master, m->params, n * 4, e) != 0) return -1;
        if (g->work != (void *)g->master && kern_cast(g->o.dtype, g->work, KERN_F32, g->master, n, g->stream, e) != 0)
            return -1;
        return 0;
    }
    /* forward-only bf16: no master; round on the host in chunks (as kern_cast would) */
    uint16_t *tmp = malloc(((size_t)1 << 20) * sizeof *tmp);
    if (!tmp) return err_set(e, "out of memory");
    for (size_t i0 = 0; i0 < n; i0 += (size_t)1 << 20) {
        size_t k = n - i0 < ((size_t)1 << 20) ? n - i0 : ((size_t)1 << 20);
        for (size_t i = 0; i < k; i++) tmp[i] = st_f32_to_bf16(m->params[i0 + i]);
        if (kern_memcpy_h2d((char *)g->work + i0 * 2, tmp, k * 2, e) != 0) {
            free(tmp);
            return -1;
        }
    }
    free(tmp);
    return 0;
}

int gpu_model_download(gpu_model *g, model *m, rlvr_err *e) {
    if (gpu_model_check_host(g, m, e) != 0) return -1;
    if (!g->master) return err_set(e, "GPU model: a forward-only bf16 model keeps no fp32 weights to download");
    return kern_memcpy_d2h(m->params, g->master, g->n_params * 4, e);
}

static int apply_pending_clip(gpu_model *g, rlvr_err *e) {
    if (!g->clip_pending) return 0;
    g->clip_pending = 0;
    return kern_grad_scale(g->grads, g->n_params, g->b.clip_ws, g->stream, e);
}

int gpu_model_download_grads(gpu_model *g, float *grads, rlvr_err *e) {
    if (!g->grads) return err_set(e, "GPU model: forward-only, no gradients");
    if (apply_pending_clip(g, e) != 0) return -1;
    return kern_memcpy_d2h(grads, g->grads, g->n_params * 4, e);
}

int gpu_model_zero_grads(gpu_model *g, rlvr_err *e) {
    if (!g->grads) return err_set(e, "GPU model: forward-only, no gradients");
    g->clip_pending = 0;
    return kern_memzero(g->grads, g->n_params * 4, g->stream, e);
}

int gpu_model_clip_grad_norm(gpu_model *g, double max_norm, double *norm, rlvr_err *e) {
    if (!g->grads) return err_set(e, "GPU model: forward-only, no gradients");
    if (apply_pending_clip(g, e) != 0) return -1; /* clipping twice clips the clipped gradients */
    double nh = 0;
    if (kern_grad_norm(g->grads, g->n_params, max_norm, g->b.clip_ws, &nh, g->stream, e) != 0) return -1;
    g->clip_pending = max_norm > 0;
    if (norm) *norm = nh;
    return 0;
}

int gpu_model_adamw_step(gpu_model *g, double lr, rlvr_err *e) {
    if (!g->grads) return err_set(e, "GPU model: forward-only, no optimizer");
    g->opt_step++;
    void *work16 = g->work != (void *)g->master ? g->work : NULL;
    void *clip = g->clip_pending ? g->b.clip_ws : NULL;
    g->clip_pending = 0;
    return kern_adamw_step(g->master, work16, g->grads, clip, g->m, g->v, g->n_params, g->opt_step, lr, g->o.beta1,
                           g->o.beta2, g->o.eps, g->o.weight_decay, g->stream, e);
}

int gpu_model_optimizer_upload(gpu_model *g, const float *m, const float *v, long long step, rlvr_err *e) {
    if (!g->grads) return err_set(e, "GPU model: forward-only, no optimizer");
    if (kern_memcpy_h2d(g->m, m, g->n_params * 4, e) != 0 || kern_memcpy_h2d(g->v, v, g->n_params * 4, e) != 0)
        return -1;
    g->opt_step = step;
    return 0;
}

int gpu_model_optimizer_download(gpu_model *g, float *m, float *v, long long *step, rlvr_err *e) {
    if (!g->grads) return err_set(e, "GPU model: forward-only, no optimizer");
    if (kern_memcpy_d2h(m, g->m, g->n_params * 4, e) != 0 || kern_memcpy_d2h(v, g->v, g->n_params * 4, e) != 0)
        return -1;
    *step = g->opt_step;
    return 0;
}

/* ---- forward ---------------------------------------------------------------------------------- */

/* Element i of a dtype-dt buffer. */
static void *at(const gpu_model *g, void *p, size_t i) { return (char *)p + i * g->dsz; }

/* The residual stream entering layer l (l = L: leaving the last layer). */
static void *x_of(const gpu_model *g, int l) {
    size_t row = g->o.train ? (size_t)l : (size_t)(l % 2);
    return at(g, g->b.x, row * (size_t)g->o.max_tokens * g->cfg.hidden);
}

/* The kept LM-head probabilities and chunk maxima from row r0 on (NULL when not kept). */
static void *lm_probs_at(const gpu_model *g, int r0) {
    return g->b.lm_probs ? (char *)g->b.lm_probs + (size_t)r0 * g->cfg.vocab * 2 : NULL;
}
static float *lm_cmax_at(const gpu_model *g, int r0) {
    return g->b.lm_cmax ? g->b.lm_cmax + (size_t)r0 * kern_lmhead_chunks(g->cfg.vocab, lm_chunk_of(&g->cfg, &g->o)) : NULL;
}

static gm_slot *slot_of(const gpu_model *g, int l) { return &g->slots[g->n_slots == 1 ? 0 : l]; }

int gm_side_init(gm_side *s, rlvr_err *e) {
    *s = (gm_side){NULL, NULL, NULL, NULL};
    if ((s->stream = kern_stream_new(e)) && (s->blas = kern_blas_new(e)) && (s->fork = kern_event_new(e)) &&
        (s->join = kern_event_new(e)))
        return 0;
    gm_side_free(s);
    return -1;
}

void gm_side_free(gm_side *s) {
    kern_event_free(s->join);
    kern_event_free(s->fork);
    kern_blas_free(s->blas);
    kern_stream_free(s->stream);
    *s = (gm_side){NULL, NULL, NULL, NULL};
}

/* A forward linear layer: batch-invariant when the model asks for it, cuBLASLt otherwise. */
static int gm_linear(const gpu_model *g, kern_blas *blas, void *out, const void *inp, const void *w, const void *bias,
                     int T, int IC, int OC, void *stream, rlvr_err *e) {
    if (g->o.invariant)
        return kern_matmul_invariant(g->o.dtype, out, inp, w, bias, T, IC, OC, KERN_INV_TILE_AUTO, stream, e);
    return kern_matmul_forward(blas, g->o.dtype, out, inp, w, bias, T, IC, OC, stream, e);
}

int gm_lm_chunk(const gpu_model *g) { return lm_chunk_of(&g->cfg, &g->o); }

int gm_layer_forward(gpu_model *g, int l, int T, const int *pos, const void *x_in, gm_slot *s, void *tmp,
                     gm_attention_fn attend, void *ctx, const gm_side *side, void *x_out, rlvr_err *e) {
    const model_config *c = &g->cfg;
    const gm_layer *w = &g->w[l];
    kern_dtype dt = g->o.dtype;
    int C = c->hidden, D = c->head_dim, H = c->heads, KV = c->kv_heads, HD = H * D, KVD = KV * D,
        I = c->intermediate;
    float eps = c->rms_eps;
    kern_blas *bl = g->blas;
    void *q_dst = c->qk_norm ? s->q_raw : s->q, *k_dst = c->qk_norm ? s->k_raw : s->k;
    /* k and v (and later up) go to the side stream when there is one */
    kern_blas *bl2 = side ? side->blas : bl;
    void *st2 = side ? side->stream : g->stream;
    TRY(kern_rmsnorm_forward(dt, s->xn1, s->rstd1, x_in, w->input_norm, T, C, eps, g->stream, e));
    if (side) TRY(kern_stream_wait(side->stream, g->stream, side->fork, e));
    TRY(gm_linear(g, bl, q_dst, s->xn1, w->wq, w->bq, T, C, HD, g->stream, e));
    TRY(gm_linear(g, bl2, k_dst, s->xn1, w->wk, w->bk, T, C, KVD, st2, e));
    TRY(gm_linear(g, bl2, s->v, s->xn1, w->wv, w->bv, T, C, KVD, st2, e));
    if (side) TRY(kern_stream_wait(g->stream, side->stream, side->join, e));
    if (c->qk_norm) { /* per-head RMSNorm: T*H rows of D */
        TRY(kern_rmsnorm_forward(dt, s->q, s->q_rstd, s->q_raw, w->q_norm, T * H, D, eps, g->stream, e));
        TRY(kern_rmsnorm_forward(dt, s->k, s->k_rstd, s->k_raw, w->k_norm, T * KV, D, eps, g->stream, e));
    }
    if (pos) {
        TRY(kern_rope_forward(dt, s->q, g->b.inv_freq, pos, T, H, D, g->stream, e));
        TRY(kern_rope_forward(dt, s->k, g->b.inv_freq, pos, T, KV, D, g->stream, e));
    }
    TRY(attend(ctx, l, s, e));
    TRY(gm_linear(g, bl, tmp, s->att, w->wo, w->bo, T, HD, C, g->stream, e));
    /* x_mid = x + attention, then xn2 = rmsnorm(x_mid), in one pass */
    TRY(kern_residual_rmsnorm_forward(dt, s->x_mid, s->xn2, s->rstd2, x_in, tmp, w->post_norm, T, C, eps, g->stream,
                                      e));
    if (s->gate_up && (char *)w->w_up == (char *)w->w_gate + (size_t)I * C * g->dsz) {
        /* the up weights lie right after the gate's (the parameter layout): one product of
         * the stacked [2I, C] matrix (batch-invariant: each element the same sum as in its
         * own product) */
        TRY(gm_linear(g, bl, s->gate_up, s->xn2, w->w_gate, NULL, T, C, 2 * I, g->stream, e));
        TRY(kern_swiglu_forward_stacked(dt, s->h, s->gate_up, T, I, g->stream, e));
    } else {
        if (side) TRY(kern_stream_wait(side->stream, g->stream, side->fork, e));
        TRY(gm_linear(g, bl, s->gate, s->xn2, w->w_gate, NULL, T, C, I, g->stream, e));
        TRY(gm_linear(g, bl2, s->up, s->xn2, w->w_up, NULL, T, C, I, st2, e));
        if (side) TRY(kern_stream_wait(g->stream, side->stream, side->join, e));
        TRY(kern_swiglu_forward(dt, s->h, s->gate, s->up, (size_t)T * I, g->stream, e));
    }
    if (!x_out) return 0;
    TRY(gm_linear(g, bl, tmp, s->h, w->w_down, NULL, T, I, C, g->stream, e));
    return kern_residual_add(dt, x_out, s->x_mid, tmp, (size_t)T * C, g->stream, e);
}

/* The training forward's attention: packed sequences (cu_seqlens), causal. */
static int packed_attention(void *ctx, int l, const gm_slot *s, rlvr_err *e) {
    const gpu_model *g = ctx;
    const model_config *c = &g->cfg;
    (void)l;
    return kern_attention_forward(g->o.dtype, s->att, s->lse, s->q, s->k, s->v, g->b.cu, g->n_seqs, g->max_seqlen,
                                  c->heads, c->kv_heads, c->head_dim, g->stream, e);
}

/* Layer l of the training forward from x_in into slot s; x_out (may be NULL:
 * recomputation, where the layer's output is already kept) gets x_mid + MLP. The same
 * calls in the same order whether it runs in the forward pass or recomputes before
 * backward. */
static int layer_forward(gpu_model *g, int l, const void *x_in, gm_slot *s, void *x_out, rlvr_err *e) {
    return gm_layer_forward(g, l, g->T, g->b.pos, x_in, s, g->b.tmp, packed_attention, g, NULL, x_out, e);
}

int gpu_model_forward(gpu_model *g, int n_seqs, const int *seq_len, const int *tokens, const int *targets,
                      float *logp, float *entropy, rlvr_err *e) {
    const model_config *c = &g->cfg;
    g->have_forward = 0;
    if (n_seqs < 1 || n_seqs > g->o.max_seqs)
        return err_set(e, "GPU forward: %d sequences (the micro-batch holds 1 to %d)", n_seqs, g->o.max_seqs);
    int T = 0, max_len = 0;
    for (int i = 0; i < n_seqs; i++) {
        if (seq_len[i] < 1) return err_set(e, "GPU forward: sequence %d has no tokens", i);
        if (c->sliding_window && seq_len[i] > c->sliding_window)
            return err_set(e, "GPU forward: sequence %d: %d positions exceed the sliding window (%d), which is not "
                              "supported", i, seq_len[i], c->sliding_window);
        if (seq_len[i] > g->o.max_tokens - T)
            return err_set(e, "GPU forward: more than the %d tokens of the micro-batch's plan", g->o.max_tokens);
        g->h_cu[i] = T;
        for (int k = 0; k < seq_len[i]; k++) g->h_pos[T + k] = k;
        T += seq_len[i];
        if (seq_len[i] > max_len) max_len = seq_len[i];
    }
    g->h_cu[n_seqs] = T;
    for (int t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= c->vocab)
            return err_set(e, "GPU forward: token %d is id %d, outside the vocabulary [0, %d)", t, tokens[t], c->vocab);
        if (targets[t] < 0 || targets[t] >= c->vocab)
            return err_set(e, "GPU forward: target %d is id %d, outside the vocabulary [0, %d)", t, targets[t],
                           c->vocab);
    }
    g->T = T;
    g->n_seqs = n_seqs;
    g->max_seqlen = max_len;
    gm_bufs *b = &g->b;
    TRY(kern_memcpy_h2d(b->tokens, tokens, (size_t)T * sizeof(int), e));
    TRY(kern_memcpy_h2d(b->targets, targets, (size_t)T * sizeof(int), e));
    TRY(kern_memcpy_h2d(b->pos, g->h_pos, (size_t)T * sizeof(int), e));
    TRY(kern_memcpy_h2d(b->cu, g->h_cu, ((size_t)n_seqs + 1) * sizeof(int), e));
    if (g->o.train) { /* the embedding backward's row groups, fixed by the tokens alone */
        g->n_unique = embedding_group_rows(tokens, T, g->h_order, g->h_starts, g->h_unique);
        if (g->n_unique < 0) return err_set(e, "out of memory");
        TRY(kern_memcpy_h2d(b->order, g->h_order, (size_t)T * sizeof(int), e));
        TRY(kern_memcpy_h2d(b->starts, g->h_starts, ((size_t)g->n_unique + 1) * sizeof(int), e));
        TRY(kern_memcpy_h2d(b->unique, g->h_unique, (size_t)g->n_unique * sizeof(int), e));
    }
    kern_dtype dt = g->o.dtype;
    int C = c->hidden, L = c->layers;
    TRY(kern_embedding_forward(dt, x_of(g, 0), g->embed, b->tokens, T, C, g->stream, e));
    for (int l = 0; l < L; l++) TRY(layer_forward(g, l, x_of(g, l), slot_of(g, l), x_of(g, l + 1), e));
    TRY(kern_rmsnorm_forward(dt, b->xnf, b->rstdf, x_of(g, L), g->final_norm, T, C, c->rms_eps, g->stream, e));
    int chunk = lm_chunk_of(c, &g->o);
    for (int r0 = 0; r0 < T; r0 += LM_ROWS) {
        int R = T - r0 < LM_ROWS ? T - r0 : LM_ROWS;
        TRY(kern_lmhead_logprobs(g->blas, dt, g->o.invariant, b->logz + r0, b->logp + r0, b->ent + r0,
                                 at(g, b->xnf, (size_t)r0 * C), g->lm_head, b->targets + r0, R, C, c->vocab, chunk,
                                 b->lm_ws, lm_probs_at(g, r0), lm_cmax_at(g, r0), g->stream, e));
    }
    if (logp) TRY(kern_memcpy_d2h(logp, b->logp, (size_t)T * sizeof(float), e));
    if (entropy) TRY(kern_memcpy_d2h(entropy, b->ent, (size_t)T * sizeof(float), e));
    g->have_forward = 1;
    return 0;
}

/* ---- backward --------------------------------------------------------------------------------- */

/* Backward of layer l: b->dx holds d x_{l+1} on entry and d x_l on return. */
static int layer_backward(gpu_model *g, int l, rlvr_err *e) {
    const model_config *c = &g->cfg;
    const gm_layer *w = &g->w[l];
    const gm_layer_grad *gw = &g->gw[l];
    gm_slot *s = slot_of(g, l);
    gm_bufs *b = &g->b;
    kern_dtype dt = g->o.dtype;
    kern_blas *bl = g->blas;
    int T = g->T, C = c->hidden, D = c->head_dim, H = c->heads, KV = c->kv_heads, HD = H * D, KVD = KV * D,
        I = c->intermediate;
    size_t ds = g->dsz, thd = (size_t)T * HD * ds, tkv = (size_t)T * KVD * ds;
    const void *x_in = x_of(g, l);
    if (g->o.recompute) TRY(layer_forward(g, l, x_in, s, NULL, e));
    /* MLP: dx is d x_{l+1}, which flows to x_mid through the residual unchanged */
    TRY(kern_matmul_backward(bl, dt, b->dh, 0, gw->w_down, NULL, b->dx, s->h, w->w_down, T, I, C, g->stream, e));
    TRY(kern_swiglu_backward(dt, b->dgate, b->dup, b->dh, s->gate, s->up, (size_t)T * I, g->stream, e));
    TRY(kern_matmul_backward(bl, dt, b->dxn, 0, gw->w_gate, NULL, b->dgate, s->xn2, w->w_gate, T, C, I, g->stream, e));
    TRY(kern_matmul_backward(bl, dt, b->dxn, 1, gw->w_up, NULL, b->dup, s->xn2, w->w_up, T, C, I, g->stream, e));
    TRY(kern_rmsnorm_backward(dt, b->dx, gw->post_norm, b->dxn, s->x_mid, w->post_norm, s->rstd2, T, C,
                              b->norm_scratch, g->stream, e));
    /* attention: dx is now d x_mid */
    TRY(kern_matmul_backward(bl, dt, b->datt, 0, gw->wo, gw->bo, b->dx, s->att, w->wo, T, HD, C, g->stream, e));
    TRY(kern_memzero(b->dq, thd, g->stream, e));
    TRY(kern_memzero(b->dk, tkv, g->stream, e));
    TRY(kern_memzero(b->dv, tkv, g->stream, e));
    TRY(kern_attention_backward(dt, b->dq, b->dk, b->dv, b->datt, s->q, s->k, s->v, s->att, s->lse, b->cu, g->n_seqs,
                                g->max_seqlen, T, H, KV, D, b->att_scratch, g->stream, e));
    TRY(kern_rope_backward(dt, b->dq, b->inv_freq, b->pos, T, H, D, g->stream, e));
    TRY(kern_rope_backward(dt, b->dk, b->inv_freq, b->pos, T, KV, D, g->stream, e));
    void *gq = b->dq, *gk = b->dk;
    if (c->qk_norm) {
        TRY(kern_memzero(b->dq_raw, thd, g->stream, e));
        TRY(kern_memzero(b->dk_raw, tkv, g->stream, e));
        TRY(kern_rmsnorm_backward(dt, b->dq_raw, gw->q_norm, b->dq, s->q_raw, w->q_norm, s->q_rstd, T * H, D,
                                  b->norm_scratch, g->stream, e));
        TRY(kern_rmsnorm_backward(dt, b->dk_raw, gw->k_norm, b->dk, s->k_raw, w->k_norm, s->k_rstd, T * KV, D,
                                  b->norm_scratch, g->stream, e));
        gq = b->dq_raw;
        gk = b->dk_raw;
    }
    TRY(kern_matmul_backward(bl, dt, b->dxn, 0, gw->wq, gw->bq, gq, s->xn1, w->wq, T, C, HD, g->stream, e));
    TRY(kern_matmul_backward(bl, dt, b->dxn, 1, gw->wk, gw->bk, gk, s->xn1, w->wk, T, C, KVD, g->stream, e));
    TRY(kern_matmul_backward(bl, dt, b->dxn, 1, gw->wv, gw->bv, b->dv, s->xn1, w->wv, T, C, KVD, g->stream, e));
    return kern_rmsnorm_backward(dt, b->dx, gw->input_norm, b->dxn, x_in, w->input_norm, s->rstd1, T, C,
                                 b->norm_scratch, g->stream, e);
}

int gpu_model_backward(gpu_model *g, const float *dlogp, const float *dentropy, rlvr_err *e) {
    if (!g->o.train) return err_set(e, "GPU backward: the model is forward-only");
    if (!g->have_forward) return err_set(e, "GPU backward: no forward to go back through");
    const model_config *c = &g->cfg;
    gm_bufs *b = &g->b;
    kern_dtype dt = g->o.dtype;
    int T = g->T, C = c->hidden, L = c->layers;
    size_t tc = (size_t)T * C;
    TRY(apply_pending_clip(g, e)); /* a backward adds to the gradients as they stand */
    TRY(kern_memcpy_h2d(b->dlogp, dlogp, (size_t)T * sizeof(float), e));
    if (dentropy) TRY(kern_memcpy_h2d(b->dent, dentropy, (size_t)T * sizeof(float), e));
    /* LM head: d xnf in fp32, then into the activations' dtype for the final norm */
    TRY(kern_memzero(b->dxnf, tc * sizeof(float), g->stream, e));
    int chunk = lm_chunk_of(c, &g->o);
    for (int r0 = 0; r0 < T; r0 += LM_ROWS) {
        int R = T - r0 < LM_ROWS ? T - r0 : LM_ROWS;
        TRY(kern_lmhead_backward(g->blas, dt, g->o.invariant, b->dxnf + (size_t)r0 * C, g->g_lm_head,
                                 at(g, b->xnf, (size_t)r0 * C), g->lm_head, b->targets + r0, b->dlogp + r0,
                                 dentropy ? b->dent + r0 : NULL, b->logz + r0, b->ent + r0, R, C, c->vocab, chunk,
                                 b->lm_ws, lm_probs_at(g, r0), lm_cmax_at(g, r0), g->stream, e));
    }
    const void *dxnf = b->dxnf;
    if (dt != KERN_F32) {
        TRY(kern_cast(dt, b->dxn, KERN_F32, b->dxnf, tc, g->stream, e));
        dxnf = b->dxn;
    }
    TRY(kern_memzero(b->dx, tc * g->dsz, g->stream, e));
    TRY(kern_rmsnorm_backward(dt, b->dx, g->g_final_norm, dxnf, x_of(g, L), g->final_norm, b->rstdf, T, C,
                              b->norm_scratch, g->stream, e));
    for (int l = L - 1; l >= 0; l--) TRY(layer_backward(g, l, e));
    return kern_embedding_backward(dt, g->g_embed, b->dx, b->order, b->starts, b->unique, g->n_unique, C, g->stream, e);
}
