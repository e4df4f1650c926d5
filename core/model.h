/* model.h - the decoder-only transformer of the supported Hugging Face architectures
 * (Llama, Qwen2, Qwen3, Mistral): loading and saving checkpoints, random initialization,
 * and the CPU reference: forward with a KV cache, per-token log-probabilities and
 * entropies, and backward for every parameter.
 *
 * Letters used in shapes: V vocabulary, C hidden size, L layers, H query heads,
 * KV key/value heads, D head dim, I MLP intermediate size, T tokens in one forward call
 * (all sequences' new tokens, concatenated), S sequence slots of a KV cache, P cache length. */
#ifndef RLVR_MODEL_H
#define RLVR_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef enum model_arch { MODEL_LLAMA, MODEL_QWEN2, MODEL_QWEN3, MODEL_MISTRAL } model_arch;

/* The architectures' class names, as config.json spells them, comma-separated (for messages). */
extern const char *const MODEL_SUPPORTED;

typedef struct model_config {
    model_arch arch;
    int vocab, hidden, layers, heads, kv_heads, head_dim, intermediate, max_positions;
    float rope_theta, rms_eps, init_range;
    int tie_embeddings;
    int qkv_bias;    /* bias on q/k/v projections (always for Qwen2; attention_bias for the others) */
    int o_bias;      /* bias on the output projection (attention_bias for Llama/Qwen3) */
    int qk_norm;     /* per-head RMSNorm on q and k before RoPE (Qwen3) */
    int sliding_window; /* Mistral/Qwen2: 0 = none; sequences longer than it are refused */
    /* rope_scaling type llama3 (0 = none). */
    int rope_llama3;
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_positions;
    int bos_token_id, eos_token_id; /* -1 when absent */
} model_config;

/* Parses a config.json text. `name` names it in messages. An unsupported architecture is
 * an error naming it and the supported list. */
int model_config_parse(model_config *c, const char *json, const char *name, rlvr_err *e);
/* Checks a config's shapes (heads divisible by kv heads, even head_dim, size bounds). */
int model_config_check(const model_config *c, const char *name, rlvr_err *e);
/* The config.json of `c` (a text the caller frees), loadable by transformers. */
char *model_config_to_json(const model_config *c);

/* One named parameter tensor: its Hugging Face name, shape and storage. */
typedef struct model_param {
    char name[96];
    int ndim;
    int64_t shape[2];
    size_t numel;
    float *data; /* into model.params */
    float *grad; /* into model.grads; NULL until model_alloc_grads */
} model_param;

typedef struct model_layer {
    float *input_norm;      /* [C] */
    float *wq, *bq;         /* [H*D, C], [H*D] (bq NULL without qkv bias) */
    float *wk, *bk;         /* [KV*D, C], [KV*D] */
    float *wv, *bv;         /* [KV*D, C], [KV*D] */
    float *q_norm, *k_norm; /* [D] each (NULL without qk norm) */
    float *wo, *bo;         /* [C, H*D], [C] */
    float *post_norm;       /* [C] */
    float *w_gate, *w_up;   /* [I, C] each */
    float *w_down;          /* [C, I] */
} model_layer;

typedef struct model_acts model_acts; /* forward activations, private to model.c */

typedef struct model {
    model_config cfg;
    char *source_dir;   /* the directory loaded from (tokenizer files are copied from it on save), or NULL */
    char *config_json;  /* the config.json text loaded (rewritten on save), or NULL for an initialized model */
    float *params;      /* one allocation: every parameter, carved below */
    float *grads;       /* the same layout, or NULL */
    size_t n_params;
    model_param *table; /* [n_table]: every parameter with its name */
    int n_table;
    float *embed;       /* [V, C] */
    model_layer *layer; /* [L] */
    float *final_norm;  /* [C] */
    float *lm_head;     /* [V, C]; == embed when tied */
    float *inv_freq;    /* [D/2] RoPE frequencies after scaling */
    model_acts *acts;
} model;

/* Loads DIR (config.json + safetensors). bf16/fp16 weights are widened to fp32. */
model *model_load(const char *dir, rlvr_err *e);
/* A model with random weights (normal(0, init_range) matrices, unit norms, zero biases). */
model *model_init(const model_config *c, uint64_t seed, rlvr_err *e);
/* A model of config c whose parameters are allocated but not set: the caller fills
 * m->params (a benchmark's cheap random weights; model_init draws normals, which takes
 * minutes at billions of parameters). */
model *model_new(const model_config *c, rlvr_err *e);
void model_free(model *m);

/* Writes DIR/config.json and DIR/model.safetensors (fp32), and copies the tokenizer files of
 * the directory the model was loaded from. DIR is created when missing. */
int model_save(const model *m, const char *dir, rlvr_err *e);

/* Allocates the gradient buffer (zeroed) and points every table entry's grad into it. */
int model_alloc_grads(model *m, rlvr_err *e);
void model_zero_grads(model *m);
const model_param *model_find_param(const model *m, const char *name);

/* ---- KV cache ---------------------------------------------------------------------------- */

/* S sequence slots of up to P positions each: k, v are [L, S, P, KV*D] (k after RoPE). */
typedef struct model_kv {
    int layers, slots, max_len, kv_dim;
    int *len;  /* [S] positions filled per slot */
    float *k, *v;
} model_kv;

model_kv *model_kv_new(const model *m, int slots, int max_len, rlvr_err *e);
void model_kv_free(model_kv *kv);
/* Forgets positions >= len of one slot (len <= its current length). */
void model_kv_truncate(model_kv *kv, int slot, int len);

/* ---- forward / backward -------------------------------------------------------------------- */

/* Runs n_seqs sequences forward: sequence i appends n_new[i] tokens (T = sum n_new, the
 * tokens concatenated in `tokens`) to KV slot slots[i], at positions len[slot]..; each new
 * token attends to its slot's earlier positions and itself. k > 1 new tokens against an
 * existing cache is the same call (speculative verification). The final hidden states of
 * the T tokens are kept for model_logits / model_logprobs / model_backward. */
int model_forward(model *m, model_kv *kv, int n_seqs, const int *slots, const int *n_new, const int *tokens,
                  rlvr_err *e);

/* Logits of rows[0..n) of the last forward's tokens: out is [n, V]. */
void model_logits(model *m, const int *rows, int n, float *out);

/* For each of the last forward's T tokens: logp[t] = log softmax(logits[t])[targets[t]] and
 * entropy[t] (either may be NULL), without holding more than a chunk of the vocabulary. */
void model_logprobs(model *m, const int *targets, float *logp, float *entropy);

/* Backward of L = sum_t dlogp[t] * logp[t] + dentropy[t] * entropy[t] (dentropy may be
 * NULL) through the last forward, accumulating into the gradients (model_alloc_grads first).
 * Needs the last forward to have started every sequence at position 0, and its KV cache
 * unchanged since. */
int model_backward(model *m, const int *targets, const float *dlogp, const float *dentropy, rlvr_err *e);

/* The last forward's final normed hidden states [T, C] (the LM head's input; rows in the
 * forward's token order), or NULL before a forward. Valid until the next forward. A value
 * head reads its inputs here. */
const float *model_hidden(const model *m);

/* Backward of L = sum_tc dhidden[t, c] * hidden[t, c] (dhidden [T, C], a gradient on
 * model_hidden's states) through the last forward, accumulating into every parameter's
 * gradient except lm_head (the hidden states do not depend on it). Same conditions as
 * model_backward, whose layer loop it shares. */
int model_backward_hidden(model *m, const float *dhidden, rlvr_err *e);

/* Threads for the non-GEMM work (attention, norms, vocab chunks); default 1. */
void model_set_threads(int n);

#endif
