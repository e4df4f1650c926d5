/* model_config.c - config.json of the supported architectures: parsing (with each
 * architecture's defaults as transformers applies them) and writing. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util.h"

const char *const MODEL_SUPPORTED = "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM";

static const struct {
    const char *cls, *type;
    model_arch arch;
} ARCHS[] = {
    {"LlamaForCausalLM", "llama", MODEL_LLAMA},
    {"Qwen2ForCausalLM", "qwen2", MODEL_QWEN2},
    {"Qwen3ForCausalLM", "qwen3", MODEL_QWEN3},
    {"MistralForCausalLM", "mistral", MODEL_MISTRAL},
};

/* An integer key: absent -> def; present but not an integer in [lo, hi] -> error. */
static int get_int(const cJSON *root, const char *key, long def, long lo, long hi, int *out, const char *name,
                   rlvr_err *e) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        if (def < lo) return err_set(e, "%s: missing '%s'", name, key);
        *out = (int)def;
        return 0;
    }
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) || j->valuedouble < lo || j->valuedouble > hi)
        return err_set(e, "%s: '%s' must be an integer in [%ld, %ld]", name, key, lo, hi);
    *out = (int)j->valuedouble;
    return 0;
}

static int get_num(const cJSON *root, const char *key, double def, float *out, const char *name, rlvr_err *e) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        *out = (float)def;
        return 0;
    }
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || j->valuedouble <= 0)
        return err_set(e, "%s: '%s' must be a positive number", name, key);
    *out = (float)j->valuedouble;
    return 0;
}

static int get_bool(const cJSON *root, const char *key, int def, int *out, const char *name, rlvr_err *e) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(j)) return err_set(e, "%s: '%s' must be true or false", name, key);
    *out = cJSON_IsTrue(j);
    return 0;
}

/* The first id of an int or a list of ints (eos_token_id may be either), or -1. */
static int get_token_id(const cJSON *root, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (cJSON_IsArray(j)) j = cJSON_GetArrayItem(j, 0);
    if (cJSON_IsNumber(j) && j->valuedouble >= 0 && j->valuedouble < 1e9) return (int)j->valuedouble;
    return -1;
}

static int parse_rope(model_config *c, const cJSON *root, const char *name, rlvr_err *e) {
    /* transformers 5 writes "rope_parameters" (with rope_theta inside); older versions
     * "rope_theta" and "rope_scaling". Both are read. */
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params))
        return err_set(e, "%s: 'rope_parameters' must be an object", name);
    if (get_num(root, "rope_theta", 10000.0, &c->rope_theta, name, e) != 0) return -1;
    if (cJSON_IsObject(params) && get_num(params, "rope_theta", c->rope_theta, &c->rope_theta, name, e) != 0) return -1;
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (!sc || cJSON_IsNull(sc)) sc = cJSON_IsObject(params) ? params : NULL;
    if (!sc) return 0;
    if (!cJSON_IsObject(sc)) return err_set(e, "%s: 'rope_scaling' must be an object or null", name);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(sc, "rope_type");
    if (!cJSON_IsString(type)) type = cJSON_GetObjectItemCaseSensitive(sc, "type");
    const char *t = cJSON_IsString(type) ? type->valuestring : "default";
    if (strcmp(t, "default") == 0) return 0;
    if (strcmp(t, "llama3") != 0)
        return err_set(e, "%s: rope scaling type '%s' is not supported (supported: default, llama3)", name, t);
    c->rope_llama3 = 1;
    if (get_num(sc, "factor", 8.0, &c->rope_factor, name, e) != 0 ||
        get_num(sc, "low_freq_factor", 1.0, &c->rope_low_freq_factor, name, e) != 0 ||
        get_num(sc, "high_freq_factor", 4.0, &c->rope_high_freq_factor, name, e) != 0 ||
        get_int(sc, "original_max_position_embeddings", 8192, 1, 1 << 30, &c->rope_original_max_positions, name, e) != 0)
        return -1;
    if (c->rope_high_freq_factor <= c->rope_low_freq_factor)
        return err_set(e, "%s: llama3 rope scaling needs high_freq_factor > low_freq_factor", name);
    return 0;
}

int model_config_check(const model_config *c, const char *name, rlvr_err *e) {
    if (c->heads % c->kv_heads != 0)
        return err_set(e, "%s: num_attention_heads (%d) must be a multiple of num_key_value_heads (%d)", name, c->heads,
                       c->kv_heads);
    if (c->head_dim % 2 != 0) return err_set(e, "%s: head_dim (%d) must be even for rotary embeddings", name, c->head_dim);
    /* Bounds that keep every size product well inside size_t and int on the way. */
    double per_layer = (double)c->hidden * c->head_dim * (2.0 * c->heads + 2.0 * c->kv_heads) +
                       3.0 * c->hidden * c->intermediate;
    double total = per_layer * c->layers + 2.0 * c->vocab * c->hidden;
    if ((double)c->heads * c->head_dim > 1 << 20 || (double)c->vocab * c->hidden > 4e9 || total > 4e11)
        return err_set(e, "%s: model too large (%.3g parameters)", name, total);
    return 0;
}

int model_config_parse(model_config *c, const char *json, const char *name, rlvr_err *e) {
    memset(c, 0, sizeof *c);
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return err_set(e, "%s: not a JSON object", name);
    }
    int rc = -1;
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const char *cls = cJSON_IsString(a0) ? a0->valuestring : NULL;
    const char *type = cJSON_IsString(mt) ? mt->valuestring : NULL;
    int found = -1;
    for (int i = 0; i < 4; i++)
        if ((cls && strcmp(cls, ARCHS[i].cls) == 0) || (!cls && type && strcmp(type, ARCHS[i].type) == 0)) found = i;
    if (found < 0) {
        err_set(e, "%s: architecture '%s' is not supported (supported: %s)", name,
                cls ? cls : type ? type : "(none given)", MODEL_SUPPORTED);
        goto done;
    }
    c->arch = ARCHS[found].arch;
    const int BIG = 1 << 24;
    if (get_int(root, "vocab_size", -1, 1, BIG, &c->vocab, name, e) != 0 ||
        get_int(root, "hidden_size", -1, 1, 1 << 20, &c->hidden, name, e) != 0 ||
        get_int(root, "num_hidden_layers", -1, 1, 4096, &c->layers, name, e) != 0 ||
        get_int(root, "num_attention_heads", -1, 1, 4096, &c->heads, name, e) != 0 ||
        get_int(root, "num_key_value_heads", c->heads, 1, 4096, &c->kv_heads, name, e) != 0 ||
        get_int(root, "intermediate_size", -1, 1, BIG, &c->intermediate, name, e) != 0 ||
        get_int(root, "max_position_embeddings", 2048, 1, 1 << 30, &c->max_positions, name, e) != 0)
        goto done;
    if (c->arch != MODEL_QWEN3 && c->hidden % c->heads != 0 && !cJSON_GetObjectItemCaseSensitive(root, "head_dim")) {
        err_set(e, "%s: hidden_size (%d) is not a multiple of num_attention_heads (%d) and no head_dim is given", name,
                c->hidden, c->heads);
        goto done;
    }
    /* Qwen3Config's head_dim defaults to 128; the others' to hidden_size / heads. */
    int default_head_dim = c->arch == MODEL_QWEN3 ? 128 : c->hidden / c->heads;
    if (get_int(root, "head_dim", default_head_dim, 2, 1 << 14, &c->head_dim, name, e) != 0 ||
        get_num(root, "rms_norm_eps", 1e-6, &c->rms_eps, name, e) != 0 ||
        get_num(root, "initializer_range", 0.02, &c->init_range, name, e) != 0 ||
        get_bool(root, "tie_word_embeddings", 0, &c->tie_embeddings, name, e) != 0 || parse_rope(c, root, name, e) != 0)
        goto done;
    int attention_bias = 0, mlp_bias = 0, use_sw = c->arch == MODEL_MISTRAL;
    if (get_bool(root, "attention_bias", 0, &attention_bias, name, e) != 0 ||
        get_bool(root, "mlp_bias", 0, &mlp_bias, name, e) != 0 ||
        get_bool(root, "use_sliding_window", use_sw, &use_sw, name, e) != 0)
        goto done;
    if (mlp_bias) {
        err_set(e, "%s: mlp_bias = true is not supported", name);
        goto done;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0)) {
        err_set(e, "%s: hidden_act must be \"silu\" (SwiGLU MLP)", name);
        goto done;
    }
    switch (c->arch) {
    case MODEL_QWEN2: c->qkv_bias = 1; break; /* Qwen2 always has q/k/v biases, never an o bias */
    case MODEL_QWEN3: /* attention_bias covers q/k/v/o, as in Llama */
        c->qk_norm = 1;
        c->qkv_bias = c->o_bias = attention_bias;
        break;
    case MODEL_LLAMA: c->qkv_bias = c->o_bias = attention_bias; break;
    case MODEL_MISTRAL: break;
    }
    /* sliding_window: null means none; absent means MistralConfig's default, 4096. */
    const cJSON *sw = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
    if (use_sw && !(sw && cJSON_IsNull(sw)) &&
        get_int(root, "sliding_window", c->arch == MODEL_MISTRAL ? 4096 : 0, 0, 1 << 30, &c->sliding_window, name, e) != 0)
        goto done;
    c->bos_token_id = get_token_id(root, "bos_token_id");
    c->eos_token_id = get_token_id(root, "eos_token_id");
    rc = model_config_check(c, name, e);
done:
    cJSON_Delete(root);
    return rc;
}

char *model_config_to_json(const model_config *c) {
    int i = 0;
    while (ARCHS[i].arch != c->arch) i++;
    cJSON *r = cJSON_CreateObject();
    cJSON *archs = cJSON_AddArrayToObject(r, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(ARCHS[i].cls));
    cJSON_AddStringToObject(r, "model_type", ARCHS[i].type);
    cJSON_AddNumberToObject(r, "vocab_size", c->vocab);
    cJSON_AddNumberToObject(r, "hidden_size", c->hidden);
    cJSON_AddNumberToObject(r, "num_hidden_layers", c->layers);
    cJSON_AddNumberToObject(r, "num_attention_heads", c->heads);
    cJSON_AddNumberToObject(r, "num_key_value_heads", c->kv_heads);
    cJSON_AddNumberToObject(r, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(r, "intermediate_size", c->intermediate);
    cJSON_AddNumberToObject(r, "max_position_embeddings", c->max_positions);
    cJSON_AddNumberToObject(r, "rms_norm_eps", c->rms_eps);
    cJSON_AddNumberToObject(r, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(r, "initializer_range", c->init_range);
    cJSON_AddStringToObject(r, "hidden_act", "silu");
    cJSON_AddBoolToObject(r, "tie_word_embeddings", c->tie_embeddings);
    if (c->arch == MODEL_LLAMA || c->arch == MODEL_QWEN3) cJSON_AddBoolToObject(r, "attention_bias", c->qkv_bias);
    if (c->arch == MODEL_QWEN2 || c->arch == MODEL_QWEN3) cJSON_AddBoolToObject(r, "use_sliding_window", 0);
    if (c->arch == MODEL_MISTRAL) {
        if (c->sliding_window) cJSON_AddNumberToObject(r, "sliding_window", c->sliding_window);
        else cJSON_AddNullToObject(r, "sliding_window");
    }
    if (c->rope_llama3) {
        cJSON *s = cJSON_AddObjectToObject(r, "rope_scaling");
        cJSON_AddStringToObject(s, "rope_type", "llama3");
        cJSON_AddNumberToObject(s, "factor", c->rope_factor);
        cJSON_AddNumberToObject(s, "low_freq_factor", c->rope_low_freq_factor);
        cJSON_AddNumberToObject(s, "high_freq_factor", c->rope_high_freq_factor);
        cJSON_AddNumberToObject(s, "original_max_position_embeddings", c->rope_original_max_positions);
    }
    if (c->bos_token_id >= 0) cJSON_AddNumberToObject(r, "bos_token_id", c->bos_token_id);
    if (c->eos_token_id >= 0) cJSON_AddNumberToObject(r, "eos_token_id", c->eos_token_id);
    cJSON_AddStringToObject(r, "torch_dtype", "float32");
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    return s;
}
