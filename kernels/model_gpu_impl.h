/* model_gpu_impl.h - the gpu_model's insides, shared by the files that run it:
 * model_gpu.c (the training pass) and model_gpu_paged.c (the rollout engine's forward over
 * a paged KV cache, reading the same weights). Not part of the API (model_gpu.h). */
#ifndef RLVR_MODEL_GPU_IMPL_H
#define RLVR_MODEL_GPU_IMPL_H

#include "model_gpu.h"

/* kern_blas_new's cuBLASLt workspace (kernels.h), counted in the plans. */
#define BLAS_WORKSPACE ((size_t)32 << 20)

/* One layer's saved activations (model.c's model_acts, for one layer). q and k are after
 * qk-norm and RoPE; q_raw and k_raw (qk_norm only) are the projections before them. */
typedef struct gm_slot {
    float *rstd1, *rstd2;       /* [T] */
    float *q_rstd, *k_rstd;     /* [T, H], [T, KV] (qk_norm) */
    float *lse;                 /* [T, H] */
    void *xn1, *x_mid, *xn2;    /* [T, C] */
    void *q_raw, *q, *att;      /* [T, H*D] (q_raw: qk_norm) */
    void *k_raw, *k, *v;        /* [T, KV*D] (k_raw: qk_norm) */
    void *gate, *up, *h;        /* [T, I] */
    void *gate_up;              /* [T, 2I] or NULL: gate and up from one product (forward only) */
} gm_slot;

/* Device buffers carved from the activation and workspace allocations. */
typedef struct gm_bufs {
    /* activations */
    void *x;          /* [L+1, T, C] the residual stream entering each layer (2 ping-pong rows forward-only) */
    void *xnf;        /* [T, C] final normalized hidden states */
    void *lm_probs;   /* [T, V] bf16: the LM head's kept probabilities (keeps_lm_probs), else NULL */
    float *lm_cmax;   /* [T, kern_lmhead_chunks(V, chunk)] their chunk maxima */
    float *rstdf;     /* [T] */
    /* workspace */
    void *tmp;        /* [T, C] attention and MLP outputs before their residual add */
    void *dx, *dxn;   /* [T, C] d residual stream, d normalized input */
    float *dxnf;      /* [T, C] fp32: the LM head's gradient into the final norm */
    void *dh, *dgate, *dup;            /* [T, I] */
    void *datt, *dq, *dq_raw;          /* [T, H*D] */
    void *dk, *dv, *dk_raw;            /* [T, KV*D] */
    void *norm_scratch, *att_scratch, *lm_ws, *clip_ws;
    float *inv_freq;                   /* [D/2] */
    float *logz, *logp, *ent, *dlogp, *dent; /* [T] */
    int *tokens, *targets, *pos;       /* [T] */
    int *cu;                           /* [S+1] */
    int *order, *starts, *unique;      /* [T], [T+1], [T] embedding backward's row groups */
} gm_bufs;

/* Device pointers of one layer's weights (working copy) and gradients. */
#define GM_LAYER_FIELDS(X)                                                                                             \
    X(input_norm) X(wq) X(bq) X(wk) X(bk) X(wv) X(bv) X(q_norm) X(k_norm) X(wo) X(bo) X(post_norm) X(w_gate) X(w_up)  \
        X(w_down)
typedef struct gm_layer {
#define X(f) void *f;
    GM_LAYER_FIELDS(X)
#undef X
} gm_layer;
typedef struct gm_layer_grad {
#define X(f) float *f;
    GM_LAYER_FIELDS(X)
#undef X
} gm_layer_grad;

struct gpu_model {
    model_config cfg;
    gpu_model_opts o;
    gpu_mem_plan plan;
    size_t n_params, dsz;
    kern_blas *blas;
    void *stream;       /* every launch goes here (a stream of its own, so the engine can capture graphs) */
    float *master;      /* [n_params] fp32 (train, or the working copy itself in fp32) */
    void *work;         /* [n_params] what the kernels read: == master in fp32 */
    float *grads, *m, *v;
    void *act_mem, *ws_mem;
    gm_bufs b;
    gm_slot *slots;     /* [n_slots]: L when every layer is kept, else 1 */
    int n_slots;
    gm_layer *w;        /* [L] */
    gm_layer_grad *gw;  /* [L] (train) */
    void *embed, *final_norm, *lm_head;
    float *g_embed, *g_final_norm, *g_lm_head;
    long long opt_step;
    /* gpu_model_clip_grad_norm measured the norm and left its clip factor in b.clip_ws
     * without scaling the gradients: the AdamW step applies it as it reads each gradient
     * (a read and write of every gradient saved); anything else that reads or adds to the
     * gradients first applies it (apply_pending_clip). */
    int clip_pending;
    /* the last forward */
    int T, n_seqs, max_seqlen, n_unique, have_forward;
    int *h_pos, *h_cu, *h_order, *h_starts, *h_unique; /* host staging */
};

/* A second stream for gm_layer_forward's independent products (k and v beside q, up beside
 * gate), with a cuBLASLt handle of its own (a workspace serves one stream) and the events
 * that fork it from the model's stream and join it back. Small batches leave most of the
 * GPU idle in each of these products; two at once fill more of it. The kernels and their
 * results are the same either way. */
typedef struct gm_side {
    void *stream;
    kern_blas *blas;
    void *fork, *join;
} gm_side;
int gm_side_init(gm_side *s, rlvr_err *e);
void gm_side_free(gm_side *s);

/* Attention of layer l for gm_layer_forward: reads s->q, s->k (after RoPE, or before it
 * when gm_layer_forward had no positions: the callback applies it) and s->v, writes
 * s->att and s->lse. ctx is the caller's. */
typedef int (*gm_attention_fn)(void *ctx, int l, const gm_slot *s, rlvr_err *e);

/* One transformer layer over T rows at positions pos (device ints; NULL: `attend` applies
 * RoPE, as the rollout engine does with its K/V write): x_in -> x_out (may be
 * NULL: stop after the MLP's SwiGLU, as recomputation before backward does; may be x_in),
 * activations in s (rstd fields may be NULL: not kept), tmp [T, C] scratch, attention by
 * `attend`, the independent products on `side` when it is not NULL. The training forward
 * (model_gpu.c) and the rollout engine's paged forward (model_gpu_paged.c) both run it, so
 * they make the same calls in the same order. */
int gm_layer_forward(gpu_model *g, int l, int T, const int *pos, const void *x_in, gm_slot *s, void *tmp,
                     gm_attention_fn attend, void *ctx, const gm_side *side, void *x_out, rlvr_err *e);

/* Vocabulary rows per LM-head chunk (gpu_model_opts.lm_chunk or the default, at most V):
 * the engine folds its logits in the trainer's chunks. */
int gm_lm_chunk(const gpu_model *g);

/* Returns -1 from the enclosing function when call fails (the error is already in e). */
#define TRY(call)                                                                                                      \
    do {                                                                                                               \
        if ((call) != 0) return -1;                                                                                    \
    } while (0)

/* Carving one allocation into buffers: with base NULL, only counting its bytes. */
typedef struct bump {
    char *base;
    size_t off;
} bump;

/* Takes `bytes` (rounded up to 256, cuBLASLt's preferred alignment) from b. */
static inline void *take(bump *b, size_t bytes) {
    size_t at = b->off;
    b->off += (bytes + 255) & ~(size_t)255;
    return b->base ? b->base + at : NULL;
}

#endif
