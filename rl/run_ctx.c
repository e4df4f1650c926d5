/* run_ctx.c - opening a run: every check that needs no model first, then the model, the
 * tokenizer, the reward scorer, the optimizer, the run store and (on --resume) the
 * newest checkpoint. */
#include "run_ctx.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_ops.h"
#include "engine.h"
#include "rng.h"
#include "sampling.h"
#include "seq_batch.h"
#include "util.h"

#ifndef RLVR_VERSION_STRING
#define RLVR_VERSION_STRING "0.1.0"
#endif

uint64_t rl_step_seed(uint64_t seed, int64_t step, uint64_t purpose) {
    return rng_u64(seed, 0x5eed000000000000ull | purpose, (uint64_t)step);
}

/* ---- prompts ----------------------------------------------------------------------------- */

int rl_encode_prompt(rl_ctx *c, const char *text, rl_prompt *out, rlvr_err *e) {
    const char *mode = c->cfg->tokenizer_chat_template;
    char *rendered = NULL;
    tok_message msg = {"user", text};
    int add_special = 0;
    if (strcmp(mode, "none") == 0 || (strcmp(mode, "auto") == 0 && !tok_chat_template_text(c->tok))) {
        add_special = 1; /* raw text: BOS/EOS as the tokenizer's post-processor says */
    } else if (strcmp(mode, "auto") == 0) {
        rendered = tok_chat_render(c->tok, &msg, 1, 1, e);
        if (!rendered) return err_prefix(e, "rendering the chat template");
    } else {
        rendered = tok_chat_render_family(mode, tok_bos_token(c->tok), tok_eos_token(c->tok), &msg, 1, 1, e);
        if (!rendered) return err_prefix(e, "tokenizer.chat_template = \"%s\"", mode);
    }
    tok_ids ids = {0};
    const char *s = rendered ? rendered : text;
    int rc = tok_encode(c->tok, s, strlen(s), add_special, &ids, e);
    free(rendered);
    if (rc != 0) {
        tok_ids_free(&ids);
        return -1;
    }
    out->n = (int)ids.n;
    out->ids = malloc((ids.n ? ids.n : 1) * sizeof *out->ids);
    if (!out->ids) {
        tok_ids_free(&ids);
        return err_set(e, "out of memory");
    }
    for (size_t i = 0; i < ids.n; i++) out->ids[i] = ids.ids[i];
    tok_ids_free(&ids);
    return 0;
}

void rl_row_where(const dataset *d, const ds_row *r, char *buf, size_t n) {
    if (r->line > 0) snprintf(buf, n, "%s:%ld", d->source, r->line);
    else snprintf(buf, n, "%s row %lld", d->source, (long long)r->id);
}

static void prompts_free(rl_prompt *p, size_t n) {
    if (!p) return;
    for (size_t i = 0; i < n; i++) free(p[i].ids);
    free(p);
}

/* Encodes every row's prompt (and for SFT checks the response field), so a prompt too
 * long for the context is an error naming its row before any model work. */
static int encode_rows(rl_ctx *c, const dataset *d, const char *response_key, rl_prompt **out, size_t *n_out,
                       rlvr_err *e) {
    *out = calloc(d->n ? d->n : 1, sizeof **out);
    if (!*out) return err_set(e, "out of memory");
    *n_out = d->n;
    long long max_prompt = c->cfg->data_max_prompt_tokens;
    long long room = c->m->cfg.max_positions - (response_key ? 0 : c->cfg->rollout_max_new_tokens);
    for (size_t i = 0; i < d->n; i++) {
        const ds_row *r = &d->rows[i];
        char where[600];
        rl_row_where(d, r, where, sizeof where);
        if (rl_encode_prompt(c, r->prompt, &(*out)[i], e) != 0) return err_prefix(e, "%s", where);
        int n = (*out)[i].n;
        if (n < 1) return err_set(e, "%s: the prompt is empty after tokenization", where);
        if (n > max_prompt)
            return err_set(e, "%s: the prompt is %d tokens, more than data.max_prompt_tokens = %lld", where, n,
                           max_prompt);
        if (n > room)
            return err_set(e,
                           "%s: the prompt is %d tokens; with rollout.max_new_tokens = %lld it does not fit the "
                           "model's context of %d positions",
                           where, n, c->cfg->rollout_max_new_tokens, c->m->cfg.max_positions);
        if (response_key) {
            const cJSON *resp = cJSON_GetObjectItemCaseSensitive(r->fields, response_key);
            if (!cJSON_IsString(resp) || !*resp->valuestring)
                return err_set(e, "%s: no string field '%s' (sft.response_key) to learn", where, response_key);
            if (strcmp(c->cfg->device, "cuda") == 0) { /* the GPU's memory plan needs the longest sequence */
                tok_ids ids = {0};
                if (tok_encode(c->tok, resp->valuestring, strlen(resp->valuestring), 0, &ids, e) != 0) {
                    tok_ids_free(&ids);
                    return err_prefix(e, "%s", where);
                }
                int len = n + (int)ids.n + 1; /* prompt, response, end-of-sequence */
                tok_ids_free(&ids);
                if (len > c->max_sft_seq) c->max_sft_seq = len;
            }
        }
        if (n > c->max_prompt) c->max_prompt = n;
    }
    return 0;
}

/* Every row must carry the fields the reward script declares it reads. */
static int check_reward_fields(const rw_scorer *s, const dataset *d, const char *script, rlvr_err *e) {
    const char *const *names;
    size_t n = rw_scorer_fields(s, &names);
    for (size_t i = 0; i < d->n; i++)
        for (size_t k = 0; k < n; k++)
            if (!cJSON_GetObjectItemCaseSensitive(d->rows[i].fields, names[k])) {
                char where[600];
                rl_row_where(d, &d->rows[i], where, sizeof where);
                return err_set(e, "%s: no field '%s', which reward script '%s' reads", where, names[k], script);
            }
    return 0;
}

cJSON *rl_reward_input(const ds_row *row, const char *completion, int completion_tokens, const char *finish_reason) {
    cJSON *o = cJSON_Duplicate(row->fields, 1);
    if (!o) return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(o, "completion");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "completion_tokens");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "finish_reason");
    if (!cJSON_GetObjectItemCaseSensitive(o, "prompt")) cJSON_AddStringToObject(o, "prompt", row->prompt);
    if (!cJSON_GetObjectItemCaseSensitive(o, "answer") && row->answer) cJSON_AddStringToObject(o, "answer", row->answer);
    if (!cJSON_AddStringToObject(o, "completion", completion) ||
        !cJSON_AddNumberToObject(o, "completion_tokens", completion_tokens) ||
        !cJSON_AddStringToObject(o, "finish_reason", finish_reason)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- model and tokenizer ------------------------------------------------------------------ */

static model_config init_config(const rlvr_config *cfg, int vocab, int eos) {
    model_config m = {0};
    m.arch = strcmp(cfg->model_init_arch, "llama") == 0 ? MODEL_LLAMA
             : strcmp(cfg->model_init_arch, "qwen3") == 0 ? MODEL_QWEN3
                                                          : MODEL_QWEN2;
    m.vocab = vocab;
    m.hidden = (int)cfg->model_init_hidden;
    m.layers = (int)cfg->model_init_layers;
    m.heads = (int)cfg->model_init_heads;
    m.kv_heads = (int)cfg->model_init_kv_heads;
    m.head_dim = m.hidden / m.heads;
    m.intermediate = (int)cfg->model_init_intermediate;
    m.max_positions = (int)cfg->model_init_max_positions;
    m.rope_theta = 10000.0f;
    m.rms_eps = 1e-6f;
    m.init_range = 0.02f;
    m.tie_embeddings = 1;
    m.qkv_bias = m.arch == MODEL_QWEN2;
    m.qk_norm = m.arch == MODEL_QWEN3;
    m.bos_token_id = -1;
    m.eos_token_id = eos;
    return m;
}

/* The policy: the checkpoint's model on resume, else model.path, else a fresh model whose
 * vocabulary is the tokenizer's. `ref_too` also builds the frozen reference (the run's
 * starting weights). */
static int open_model(rl_ctx *c, const char *ckpt_dir, int ref_too, rlvr_err *e) {
    const rlvr_config *cfg = c->cfg;
    char *tok_path = NULL;
    int rc = -1;
    if (*cfg->tokenizer_path) tok_path = util_strdup(cfg->tokenizer_path);
    else if (*cfg->model_path) tok_path = util_strdup(cfg->model_path);
    else {
        /* A model from scratch gets the byte-level tokenizer, kept in the run directory. */
        tok_path = util_path_join(c->run_dir, "tokenizer");
        char *json = tok_path ? util_path_join(tok_path, "tokenizer.json") : NULL;
        if (!json) rc = err_set(e, "out of memory");
        else if (!util_is_file(json) && (util_mkdir_p(tok_path, e) != 0 || tok_write_byte_level(tok_path, e) != 0)) {
            free(json);
            goto done;
        }
        free(json);
    }
    if (!tok_path) {
        err_set(e, "out of memory");
        goto done;
    }
    if (!(c->tok = tok_load(tok_path, e))) {
        if (*cfg->model_path && !*cfg->tokenizer_path)
            err_prefix(e, "model.path = \"%s\" has no usable tokenizer (set tokenizer.path)", cfg->model_path);
        goto done;
    }
    if (ckpt_dir) {
        char *mdir = util_path_join(ckpt_dir, "model");
        c->m = mdir ? model_load(mdir, e) : NULL;
        free(mdir);
    } else if (*cfg->model_path) {
        c->m = model_load(cfg->model_path, e);
    } else {
        model_config mc = init_config(cfg, tok_vocab_size(c->tok), tok_eos_id(c->tok));
        if (model_config_check(&mc, "model.init", e) == 0) c->m = model_init(&mc, cfg->seed, e);
    }
    if (!c->m) goto done;
    if (!*cfg->model_path && !c->m->source_dir) c->m->source_dir = util_strdup(tok_path); /* saved with the model */
    if (tok_vocab_size(c->tok) > c->m->cfg.vocab) {
        err_set(e, "the tokenizer (%s) has %d tokens, more than the model's vocabulary of %d", tok_path,
                (int)tok_vocab_size(c->tok), c->m->cfg.vocab);
        goto done;
    }
    if (ref_too) {
        if (*cfg->model_path) c->ref = model_load(cfg->model_path, e);
        else {
            model_config mc = init_config(cfg, tok_vocab_size(c->tok), tok_eos_id(c->tok));
            c->ref = model_init(&mc, cfg->seed, e);
        }
        if (!c->ref) goto done;
    }
    rc = 0;
done:
    free(tok_path);
    return rc;
}

/* The PPO critic (algo.advantage = "gae"): the checkpoint's on resume, else critic.path,
 * else the policy's starting model (model.path, or the same initialization). */
static int open_critic(rl_ctx *c, const char *ckpt_dir, rlvr_err *e) {
    const rlvr_config *cfg = c->cfg;
    double lr = cfg->critic_learning_rate > 0 ? cfg->critic_learning_rate : 10.0 * cfg->learning_rate;
    rl_critic_opts o = {.beta1 = cfg->adam_beta1, .beta2 = cfg->adam_beta2, .eps = cfg->adam_eps,
                        .weight_decay = cfg->weight_decay, .max_grad_norm = cfg->max_grad_norm,
                        .sched = {.kind = (rl_lr_kind)rl_lr_kind_parse(cfg->lr_schedule), .peak = lr,
                                  .warmup = cfg->warmup_steps, .total = cfg->steps, .min_ratio = cfg->min_lr_ratio},
                        .cliprange_value = cfg->algo_cliprange_value, .agg = (rl_agg)rl_agg_parse(cfg->algo_loss_agg),
                        .ppo_epochs = (int)cfg->algo_ppo_epochs, .minibatch_size = (int)cfg->algo_minibatch_size,
                        .micro_batch_size = (int)cfg->micro_batch_size};
    int vocab = c->m->cfg.vocab, max_len = c->max_prompt + (int)cfg->rollout_max_new_tokens;
    if (ckpt_dir) {
        char *dir = util_path_join(ckpt_dir, "critic");
        if (!dir) return err_set(e, "out of memory");
        c->critic = rl_critic_load(dir, "the checkpoint's critic", vocab, max_len, &o, e);
        int rc = c->critic ? rl_critic_load_optim(c->critic, dir, e) : -1;
        free(dir);
        return rc;
    }
    if (*cfg->critic_path || *cfg->model_path) {
        const char *key = *cfg->critic_path ? "critic.path" : "model.path";
        c->critic = rl_critic_load(*cfg->critic_path ? cfg->critic_path : cfg->model_path, key, vocab, max_len, &o, e);
        return c->critic ? 0 : -1;
    }
    model_config mc = init_config(cfg, tok_vocab_size(c->tok), tok_eos_id(c->tok));
    model *m = model_init(&mc, cfg->seed, e);
    if (!m) return -1;
    /* saved with the policy's tokenizer files, as the policy is */
    if (c->m->source_dir && !(m->source_dir = util_strdup(c->m->source_dir))) {
        model_free(m);
        return err_set(e, "out of memory");
    }
    c->critic = rl_critic_new(m, &o, e);
    return c->critic ? 0 : -1;
}

/* Generation stops at the tokenizer's end-of-sequence token, the model config's, and the
 * end-of-turn tokens of the chat formats (a chat model ends its answer with them). */
static int collect_stop_ids(rl_ctx *c, rlvr_err *e) {
    static const char *const turn_ends[] = {"<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end_of_text|>",
                                            "</s>", "<｜end▁of▁sentence｜>"};
    int cand[2 + sizeof turn_ends / sizeof *turn_ends], n = 0;
    cand[n++] = tok_eos_id(c->tok);
    cand[n++] = c->m->cfg.eos_token_id;
    for (size_t i = 0; i < sizeof turn_ends / sizeof *turn_ends; i++) cand[n++] = tok_token_to_id(c->tok, turn_ends[i]);
    c->stop_ids = malloc(sizeof cand);
    if (!c->stop_ids) return err_set(e, "out of memory");
    for (int i = 0; i < n; i++) {
        if (cand[i] < 0 || cand[i] >= c->m->cfg.vocab) continue;
        int dup = 0;
        for (int k = 0; k < c->n_stop; k++) dup |= c->stop_ids[k] == cand[i];
        if (!dup) c->stop_ids[c->n_stop++] = cand[i];
    }
    if (c->n_stop == 0) return err_set(e, "the tokenizer and the model name no end-of-sequence token: samples could not end");
    return 0;
}

/* ---- the run store ------------------------------------------------------------------------ */

static int open_store(rl_ctx *c, const char *config_lua, const char *db_path, const ckpt_state *resumed,
                      const char *kind, rlvr_err *e) {
    if (!(c->st = store_open(db_path, 1, e))) return -1;
    char msg[512];
    if (resumed) {
        int64_t dropped = 0;
        c->run_id = resumed->run_id;
        if (store_run_resume(c->st, c->run_id, resumed->step, &dropped, e) != 0) return -1;
        snprintf(msg, sizeof msg, "resumed from the checkpoint of step %lld (%lld later step(s) discarded, redone)",
                 (long long)resumed->step, (long long)dropped);
        return store_event(c->st, c->run_id, "info", msg, e);
    }
    store_run_info info = {.name = c->cfg->name, .config_lua = config_lua, .rlvr_version = RLVR_VERSION_STRING,
                           .model_path = c->cfg->model_path, .seed = (int64_t)c->cfg->seed, .status = "running"};
    if ((c->run_id = store_run_begin(c->st, &info, e)) < 0) return -1;
    snprintf(msg, sizeof msg, "%s started: %d parameters, %lld steps", kind, (int)c->m->n_params, c->cfg->steps);
    return store_event(c->st, c->run_id, "info", msg, e);
}

/* A new run must not write over a finished or interrupted one in the same directory. */
static int check_fresh(const char *run_dir, rlvr_err *e) {
    char *ck = util_path_join(run_dir, "checkpoints"), *md = util_path_join(run_dir, "model");
    int used = (ck && util_is_dir(ck)) || (md && util_is_dir(md));
    free(ck);
    free(md);
    if (used)
        return err_set(e,
                       "%s already holds a run: continue it with --resume, or start another with --set name=NEW "
                       "(or delete the directory)",
                       run_dir);
    return 0;
}

/* ---- the GPU ------------------------------------------------------------------------------ */

/* device = "cuda" needs a device: checked before any model work. */
static int check_cuda(rlvr_err *e) {
    rlvr_err why = {{0}};
    if (kern_device_count(&why) > 0) return 0;
    if (strncmp(why.msg, "no CUDA device", 14) == 0) return err_set(e, "device = \"cuda\" but %s", why.msg);
    return err_set(e, "device = \"cuda\" but no CUDA device: %s", why.msg);
}

int rl_rollout_on_gpu(const rl_ctx *c) { return c->gpu && strcmp(c->cfg->rollout_device, "cpu") != 0; }

/* Rollouts on the GPU: the engine's KV pool and step buffers for a round of
 * prompts_per_step x group_size samples, every prompt as long as the longest, printed and
 * checked against what the models left free, before the first step instead of at its
 * rollout (grpo_step.c decodes a round's samples together). */
static int check_gpu_rollouts(rl_ctx *c, kern_dtype dt, rlvr_err *e) {
    const rlvr_config *cfg = c->cfg;
    if (cfg->train_batch_invariant && gpu_paged_check_invariant(&c->m->cfg, e) != 0)
        return err_prefix(e, "train.batch_invariant = true with GPU rollouts (set it to false or rollout.device = "
                             "\"cpu\")");
    const sample_gen_opts o = {.max_new = (int)cfg->rollout_max_new_tokens, .batch = 0};
    const long long n = cfg->rollout_prompts_per_step * cfg->rollout_group_size;
    if (n > INT32_MAX / 4)
        return err_set(e, "rollout.prompts_per_step x rollout.group_size = %lld samples is too many to decode at once", n);
    const size_t need = engine_gpu_bytes(&c->m->cfg, dt, (int)cfg->rollout_prompts_per_step,
                                         (int)cfg->rollout_group_size, c->max_prompt, &o, NULL);
    const double gib = 1 << 30;
    fprintf(c->out, "rollout engine on the GPU: KV pool and step buffers %.3f GiB (%lld samples of up to %lld tokens)\n",
            (double)need / gib, n, (long long)c->max_prompt + cfg->rollout_max_new_tokens);
    kern_device_info info;
    if (kern_device_info_get(0, &info, e) != 0) return -1;
    const size_t headroom = gpu_model_plan(c->gpu)->headroom;
    if (need + headroom > info.free_memory)
        return err_set(e, "device = \"cuda\": the rollout engine needs %.2f GiB for %lld samples of up to %lld tokens "
                          "but only %.2f GiB of the device's %.2f GiB is free after the models; lower "
                          "rollout.prompts_per_step x rollout.group_size or rollout.max_new_tokens, or set "
                          "rollout.device = \"cpu\"",
                       (double)need / gib, n, (long long)c->max_prompt + cfg->rollout_max_new_tokens,
                       (double)info.free_memory / gib, (double)info.total_memory / gib);
    return 0;
}

/* The policy's training copy on the GPU, planned for micro_batch_size sequences of the
 * longest training sequence (SFT: the longest prompt + response; RL: the longest prompt +
 * rollout.max_new_tokens), packed into one row; then the reference's forward-only copy.
 * Each plan is printed and checked against free memory before it allocates. */
static int open_gpu(rl_ctx *c, int sft, rlvr_err *e) {
    const rlvr_config *cfg = c->cfg;
    long long max_seq = sft ? c->max_sft_seq : (long long)c->max_prompt + cfg->rollout_max_new_tokens;
    long long micro = cfg->micro_batch_size;
    if (max_seq * micro > 1 << 30)
        return err_set(e, "micro_batch_size = %lld sequences of up to %lld tokens is too large a micro-batch", micro,
                       max_seq);
    gpu_model_opts o = {.dtype = strcmp(cfg->train_dtype, "fp32") == 0 ? KERN_F32 : KERN_BF16,
                        .max_tokens = (int)(max_seq * micro), .max_seqs = (int)micro,
                        .recompute = (int)cfg->train_recompute, .train = 1,
                        .invariant = (int)cfg->train_batch_invariant, .beta1 = cfg->adam_beta1,
                        .beta2 = cfg->adam_beta2, .eps = cfg->adam_eps, .weight_decay = cfg->weight_decay};
    char plan[1024];
    gpu_mem_plan p;
    gpu_mem_plan_compute(&c->m->cfg, &o, &p);
    gpu_mem_plan_format(&p, plan, sizeof plan);
    fprintf(c->out, "policy on the GPU (%s, %d tokens per micro-batch%s%s)\n%s", cfg->train_dtype, o.max_tokens,
            o.recompute ? ", recompute" : "", o.invariant ? ", batch-invariant" : "", plan);
    if (!(c->gpu = gpu_model_new(c->m, &o, e)))
        return err_prefix(e, o.invariant ? "device = \"cuda\", train.batch_invariant = true" : "device = \"cuda\"");
    if (c->ref) {
        o.train = 0;
        o.recompute = 0;
        o.invariant = 0; /* its log-probs feed the KL only, never a comparison with the rollout's */
        gpu_mem_plan_compute(&c->ref->cfg, &o, &p);
        gpu_mem_plan_format(&p, plan, sizeof plan);
        fprintf(c->out, "reference model on the GPU (forward only)\n%s", plan);
        if (!(c->gpu_ref = gpu_model_new(c->ref, &o, e)))
            return err_prefix(e, "device = \"cuda\": the reference model");
    }
    return !sft && rl_rollout_on_gpu(c) ? check_gpu_rollouts(c, o.dtype, e) : 0;
}

int rl_ctx_open(rl_ctx *c, const rlvr_config *cfg, const char *config_lua, const dataset *train,
                const dataset *eval, const char *db_path, int resume, int need_optimizer, int with_scorer,
                const char *response_key, FILE *out, int *usage_error, rlvr_err *e) {
    memset(c, 0, sizeof *c);
    c->cfg = cfg;
    c->out = out;
    c->run_id = -1;
    *usage_error = 1;
    char *ckpt_dir = NULL;
    ckpt_state ck = {0};
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    model_set_threads(cfg->threads > 0 ? (int)cfg->threads : (int)(cpus < 1 ? 1 : cpus));
    cpu_set_blas_threads((int)cfg->blas_threads);
    if (!(c->run_dir = util_path_join(cfg->output_dir, cfg->name))) return err_set(e, "out of memory");
    if (resume && !(ckpt_dir = ckpt_latest(c->run_dir, e))) {
        err_prefix(e, "--resume");
        goto fail;
    }
    if (!resume && need_optimizer && check_fresh(c->run_dir, e) != 0) goto fail;
    if (strcmp(cfg->device, "cuda") == 0 && check_cuda(e) != 0) {
        *usage_error = 0;
        goto fail;
    }
    if (cfg->rollout_stop.n > 0) {
        err_set(e, "rollout.stop: stop strings are not supported by the CPU engine; stop tokens are the "
                   "tokenizer's end-of-sequence and end-of-turn tokens");
        goto fail;
    }

    /* Checks that need no model: the reward script loads and self-tests, and every row
     * has the fields it reads. */
    if (with_scorer) {
        rw_opts ro = {.script = cfg->reward_script, .fallback = cfg->reward_fallback,
                      .timeout_s = cfg->reward_timeout_ms / 1000.0, .max_instructions = cfg->reward_max_instructions,
                      .max_memory = (size_t)cfg->reward_max_memory_mb << 20, .jobs = (int)cfg->reward_jobs};
        if (!(c->scorer = rw_scorer_new(&ro, e))) goto fail;
        if ((train && check_reward_fields(c->scorer, train, cfg->reward_script, e) != 0) ||
            (eval && check_reward_fields(c->scorer, eval, cfg->reward_script, e) != 0))
            goto fail;
    }
    if (open_model(c, ckpt_dir, need_optimizer && cfg->algo_kl_coef > 0 && !response_key, e) != 0) goto fail;
    if (collect_stop_ids(c, e) != 0) goto fail;
    if ((train && encode_rows(c, train, response_key, &c->train_prompts, &c->n_train_prompts, e) != 0) ||
        (eval && encode_rows(c, eval, NULL, &c->eval_prompts, &c->n_eval_prompts, e) != 0))
        goto fail;
    /* The critic is checked (critic.path a model with the policy's vocabulary) before the run starts. */
    if (need_optimizer && !response_key && strcmp(cfg->algo_advantage, "gae") == 0 &&
        open_critic(c, resume ? ckpt_dir : NULL, e) != 0)
        goto fail;

    *usage_error = 0;
    if (need_optimizer) {
        if (rl_adamw_init(&c->opt, c->m->n_params, cfg->adam_beta1, cfg->adam_beta2, cfg->adam_eps,
                          cfg->weight_decay, e) != 0)
            goto fail;
        if (strcmp(cfg->device, "cuda") == 0) {
            if (open_gpu(c, response_key != NULL, e) != 0) goto fail;
        } else if (model_alloc_grads(c->m, e) != 0)
            goto fail;
        c->sched = (rl_lr_schedule){.kind = (rl_lr_kind)rl_lr_kind_parse(cfg->lr_schedule),
                                    .peak = cfg->learning_rate, .warmup = cfg->warmup_steps,
                                    .total = cfg->steps, .min_ratio = cfg->min_lr_ratio};
        if (train && ds_sampler_init(&c->sampler, train->n, cfg->seed, (int)cfg->data_shuffle, e) != 0) goto fail;
        if (resume) {
            if (ckpt_load_state(ckpt_dir, &ck, &c->opt, e) != 0) goto fail;
            if (c->gpu && gpu_model_optimizer_upload(c->gpu, c->opt.m, c->opt.v, c->opt.step, e) != 0) goto fail;
            if (train && ds_sampler_seek(&c->sampler, ck.epoch, (size_t)ck.cursor, e) != 0) goto fail;
            c->step = ck.step;
        }
        if (open_store(c, config_lua, db_path, resume ? &ck : NULL, response_key ? "sft" : "train", e) != 0)
            goto fail;
        if (resume)
            fprintf(out, "resumed %s from %s (step %lld)\n", c->run_dir, ckpt_dir, (long long)c->step);
    }
    free(ckpt_dir);
    return 0;
fail:
    free(ckpt_dir);
    rl_ctx_close(c, "failed");
    return -1;
}

void rl_ctx_close(rl_ctx *c, const char *status) {
    if (c->st && c->run_id > 0) {
        rlvr_err e = {{0}};
        if (store_run_finish(c->st, c->run_id, status, &e) != 0) fprintf(stderr, "rlvr: %s\n", e.msg);
    }
    store_close(c->st);
    rw_scorer_free(c->scorer);
    prompts_free(c->train_prompts, c->n_train_prompts);
    prompts_free(c->eval_prompts, c->n_eval_prompts);
    gpu_model_free(c->gpu);
    gpu_model_free(c->gpu_ref);
    model_free(c->m);
    model_free(c->ref);
    rl_critic_free(c->critic);
    tok_free(c->tok);
    free(c->stop_ids);
    rl_adamw_free(&c->opt);
    ds_sampler_free(&c->sampler);
    free(c->run_dir);
    memset(c, 0, sizeof *c);
}

int rl_ctx_zero_grads(rl_ctx *c, rlvr_err *e) {
    if (c->gpu) return gpu_model_zero_grads(c->gpu, e);
    model_zero_grads(c->m);
    return 0;
}

int rl_ctx_clip_grads(rl_ctx *c, double *norm, rlvr_err *e) {
    if (c->gpu) return gpu_model_clip_grad_norm(c->gpu, c->cfg->max_grad_norm, norm, e);
    *norm = rl_clip_grad_norm(c->m->grads, c->m->n_params, c->cfg->max_grad_norm);
    return 0;
}

int rl_ctx_optimizer_step(rl_ctx *c, double lr, rlvr_err *e) {
    if (!c->gpu) {
        rl_adamw_step(&c->opt, c->m->params, c->m->grads, lr);
        return 0;
    }
    if (gpu_model_adamw_step(c->gpu, lr, e) != 0) return -1;
    c->opt.step++; /* the host m and v are refreshed only for checkpoints (rl_ctx_checkpoint) */
    c->host_stale = 1;
    return 0;
}

/* Rollouts and evaluation still run on the CPU model (the GPU generation engine is issue
 * 8's), so before they read it, it receives the weights just trained. */
int rl_ctx_sync_host(rl_ctx *c, rlvr_err *e) {
    if (!c->gpu || !c->host_stale) return 0;
    if (gpu_model_download(c->gpu, c->m, e) != 0) return -1;
    c->host_stale = 0;
    return 0;
}

/* Writes the critic into a checkpoint's directory, as critic/. */
static int save_critic(const char *dir, void *critic, rlvr_err *e) {
    char *cdir = util_path_join(dir, "critic");
    if (!cdir) return err_set(e, "out of memory");
    int rc = rl_critic_save(critic, cdir, e);
    free(cdir);
    return rc;
}

int rl_ctx_checkpoint(rl_ctx *c, rlvr_err *e) {
    if (c->gpu) { /* the device holds the current weights and AdamW state: bring them home first */
        long long step = 0;
        if (rl_ctx_sync_host(c, e) != 0 || gpu_model_optimizer_download(c->gpu, c->opt.m, c->opt.v, &step, e) != 0)
            return err_prefix(e, "checkpoint");
        c->opt.step = step;
    }
    ckpt_state st = {.step = c->step, .epoch = c->sampler.epoch, .cursor = (int64_t)c->sampler.cursor,
                     .run_id = c->run_id, .policy_version = c->step};
    return ckpt_save_extra(c->run_dir, c->m, &c->opt, &st, (int)c->cfg->keep_checkpoints,
                           c->critic ? save_critic : NULL, c->critic, e);
}
