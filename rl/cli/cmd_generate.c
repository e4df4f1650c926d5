/* cmd_generate.c - `rlvr generate --model DIR (--prompt TEXT | --prompt-ids IDS | --prompts
 * FILE.jsonl)`: G samples per prompt on the CPU reference, one JSON line per sample. Prompts
 * are text (with the model's tokenizer, or --tokenizer), chat messages, or token ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "jsonl.h"
#include "model.h"
#include "engine.h"
#include "sampling.h"
#include "token_ids.h"

static const cli_opt GEN_OPTS[] = {
    {"model", "DIR", "Hugging Face model directory", 0},
    {"prompt", "TEXT", "one text prompt (needs a tokenizer)", 0},
    {"prompt-ids", "IDS", "one prompt as token ids (\"1 2 3\")", 0},
    {"prompts", "FILE", "JSONL prompts: \"prompt\" (text), \"messages\" (chat) or \"prompt_ids\" (\"-\" is stdin)", 0},
    {"chat", NULL, "render text prompts as one user message through the chat template", 0},
    {"tokenizer", "PATH", "tokenizer.json or a directory holding one (default: the model directory's)", 0},
    {"n", "G", "samples per prompt (default 1)", 0},
    {"max-new-tokens", "N", "tokens generated per sample at most (default 64)", 0},
    {"temperature", "T", "sampling temperature; 0 is greedy (default 1)", 0},
    {"top-k", "K", "keep the K most likely tokens; 0 is off (default 0)", 0},
    {"top-p", "P", "nucleus sampling threshold in (0, 1] (default 1)", 0},
    {"min-p", "P", "keep tokens with p >= P * p_max (default 0)", 0},
    {"seed", "N", "random seed: samples are keyed by (seed, prompt, sample, position) (default 1)", 0},
    {"stop-ids", "IDS", "token ids that end a sample (default: the config's and the tokenizer's eos)", 0},
    {"batch", "N", "sequences decoded together, at least one prompt's --n (default 16)", 0},
    {"threads", "N", "CPU threads (default: online CPUs, at most 8)", 0},
    {"device", "cpu|cuda", "where the forward runs: the CPU, or the GPU engine over a paged KV cache (default cpu)", 0},
    {"dtype", "bf16|fp32", "with --device cuda, the GPU's weights and activations (default bf16)", 0},
    {"out", "FILE", "write the JSONL here instead of stdout", 0},
};

typedef struct prompt_list {
    int **ids;
    int *len;
    int n, cap;
} prompt_list;

static int prompts_add(prompt_list *p, int *ids, int n) {
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 16;
        int **a = realloc(p->ids, (size_t)cap * sizeof *a);
        if (!a) return -1;
        p->ids = a;
        int *l = realloc(p->len, (size_t)cap * sizeof *l);
        if (!l) return -1;
        p->len = l;
        p->cap = cap;
    }
    p->ids[p->n] = ids;
    p->len[p->n++] = n;
    return 0;
}

static void prompts_free(prompt_list *p) {
    for (int i = 0; i < p->n; i++) free(p->ids[i]);
    free(p->ids);
    free(p->len);
}

/* How prompts become ids: the tokenizer (NULL without one), the model directory (for the
 * message that there is none), the vocabulary ids must be in, and --chat. */
typedef struct prompt_ctx {
    tok_tokenizer *tok;
    const char *model_dir;
    int vocab, chat;
} prompt_ctx;

/* A text prompt: encoded as transformers' tokenizer(text) does (with the post-processor's
 * special tokens, e.g. a BOS), or with --chat rendered as one user message with the generation
 * prompt (the template supplies any BOS). `what` names the text in the no-tokenizer error. */
static int text_prompt(const prompt_ctx *c, const char *text, const char *what, const char *ids_hint, int **ids,
                       int *n, rlvr_err *e) {
    if (!c->tok) return no_tokenizer_error(e, what, c->model_dir, ids_hint);
    if (!c->chat) return text_to_ids(c->tok, text, 1, c->vocab, ids, n, e);
    cJSON *msgs = cJSON_CreateArray(), *m = cJSON_CreateObject();
    cJSON_AddItemToArray(msgs, m);
    int rc = cJSON_AddStringToObject(m, "role", "user") && cJSON_AddStringToObject(m, "content", text)
                 ? messages_to_ids(c->tok, msgs, c->vocab, ids, n, e)
                 : err_set(e, "out of memory");
    cJSON_Delete(msgs);
    return rc;
}

/* One JSONL line: "prompt_ids", else "messages", else "prompt". */
static int line_prompt(const prompt_ctx *c, const cJSON *obj, const char *raw, int **ids, int *n, rlvr_err *e) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, "prompt_ids");
    if (arr) return ids_from_json(arr, c->vocab, "prompt_ids", ids, n, e);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(obj, "messages");
    const char *text = jsonl_get_string(obj, "prompt");
    if (!msgs && !text) return err_set(e, "no \"prompt\" (text), \"messages\" (chat) or \"prompt_ids\"");
    if (!c->tok)
        return no_tokenizer_error(e, msgs ? "\"messages\"" : "\"prompt\"", c->model_dir, "\"prompt_ids\"");
    if (json_has_nul_escape(raw)) return err_set(e, "the text contains U+0000 (\\u0000), which rlvr cannot read");
    if (msgs) return messages_to_ids(c->tok, msgs, c->vocab, ids, n, e);
    return text_prompt(c, text, "\"prompt\"", "\"prompt_ids\"", ids, n, e);
}

/* Reads the prompts of --prompt, --prompt-ids or --prompts; returns an exit status. */
static int read_prompts(const cli_args *a, const prompt_ctx *c, prompt_list *p) {
    rlvr_err e = {{0}};
    const char *text = cli_get(a, "prompt"), *id_text = cli_get(a, "prompt-ids"), *file = cli_get(a, "prompts");
    if (!!text + !!id_text + !!file != 1) {
        cmd_error("generate: give exactly one of --prompt TEXT, --prompt-ids IDS and --prompts FILE.jsonl");
        return EXIT_USAGE;
    }
    if (c->chat && id_text) {
        cmd_error("generate: --chat renders text prompts; --prompt-ids are already token ids");
        return EXIT_USAGE;
    }
    if (text && !c->tok) {
        no_tokenizer_error(&e, "--prompt", c->model_dir, "--prompt-ids \"1 2 3\"");
        cmd_error("generate: %s", e.msg);
        return EXIT_USAGE;
    }
    if (text || id_text) {
        int *ids = NULL, n = 0;
        int rc = text ? text_prompt(c, text, "--prompt", "--prompt-ids", &ids, &n, &e)
                      : ids_parse_text(id_text, c->vocab, &ids, &n, &e);
        if (rc == 0 && n == 0) rc = err_set(&e, "the prompt encodes to no tokens");
        if (rc != 0) {
            cmd_error("generate: %s: %s", text ? "--prompt" : "--prompt-ids", e.msg);
            free(ids);
            return EXIT_USAGE;
        }
        if (prompts_add(p, ids, n) != 0) {
            free(ids);
            return EXIT_FAIL;
        }
        return EXIT_OK;
    }
    jsonl_reader r;
    if (jsonl_open(&r, file, &e) != 0) {
        cmd_error("%s", e.msg);
        return EXIT_USAGE;
    }
    int status = EXIT_OK;
    for (;;) {
        cJSON *obj = NULL;
        jsonl_status st = jsonl_next(&r, &obj, &e);
        if (st == JSONL_EOF) break;
        if (st != JSONL_OK) {
            cmd_error("%s", e.msg);
            status = EXIT_USAGE;
            break;
        }
        int *ids = NULL, n = 0;
        int rc = line_prompt(c, obj, r.buf, &ids, &n, &e);
        if (rc == 0 && n == 0) rc = err_set(&e, "the prompt has no tokens");
        if (rc != 0) {
            cmd_error("%s:%ld: %s", r.name, r.line, e.msg);
            free(ids);
            status = EXIT_USAGE;
        } else if (prompts_add(p, ids, n) != 0) {
            free(ids);
            status = EXIT_FAIL;
        }
        cJSON_Delete(obj);
        if (status != EXIT_OK) break;
    }
    jsonl_close(&r);
    if (status == EXIT_OK && p->n == 0) {
        cmd_error("%s: no prompts", file);
        status = EXIT_USAGE;
    }
    return status;
}

/* Appends id to the list unless it is there or outside [0, vocab). */
static void stop_add(int *stop, int *n, int id, int vocab) {
    if (id < 0 || id >= vocab) return;
    for (int i = 0; i < *n; i++)
        if (stop[i] == id) return;
    stop[(*n)++] = id;
}

static int generate_run(const cli_args *a) {
    rlvr_err e = {{0}};
    const char *dir = cli_get(a, "model");
    if (!dir) {
        cmd_error("generate: --model DIR is required");
        return EXIT_USAGE;
    }
    long long n_samples, max_new, top_k, seed, batch;
    double temperature, top_p, min_p;
    if (cli_int(a, "n", 1, &n_samples, &e) != 0 || cli_int(a, "max-new-tokens", 64, &max_new, &e) != 0 ||
        cli_int(a, "top-k", 0, &top_k, &e) != 0 || cli_int(a, "seed", 1, &seed, &e) != 0 ||
        cli_int(a, "batch", 16, &batch, &e) != 0 || cli_num(a, "temperature", 1.0, &temperature, &e) != 0 ||
        cli_num(a, "top-p", 1.0, &top_p, &e) != 0 || cli_num(a, "min-p", 0.0, &min_p, &e) != 0 ||
        threads_option(a, &e) != 0) {
        cmd_error("generate: %s", e.msg);
        return EXIT_USAGE;
    }
    if (n_samples < 1 || n_samples > 1 << 20 || max_new < 1 || max_new > 1 << 20 || batch < 1 || seed < 0 ||
        top_k < 0 || top_k > 1 << 30) {
        cmd_error("generate: --n, --max-new-tokens and --batch must be >= 1, --seed and --top-k >= 0");
        return EXIT_USAGE;
    }
    sample_gen_opts o = {.params = {(float)temperature, (int)top_k, (float)top_p, (float)min_p},
                         .seed = (uint64_t)seed, .max_new = (int)max_new, .batch = (int)batch};
    if (sample_params_check(&o.params, &e) != 0) {
        cmd_error("generate: %s", e.msg);
        return EXIT_USAGE;
    }
    const char *device = cli_get(a, "device"), *dtype = cli_get(a, "dtype");
    if (device && strcmp(device, "cpu") != 0 && strcmp(device, "cuda") != 0) {
        cmd_error("generate: --device must be cpu or cuda, got '%s'", device);
        return EXIT_USAGE;
    }
    if (dtype && strcmp(dtype, "bf16") != 0 && strcmp(dtype, "fp32") != 0) {
        cmd_error("generate: --dtype must be bf16 or fp32, got '%s'", dtype);
        return EXIT_USAGE;
    }
    const int on_gpu = device && strcmp(device, "cuda") == 0;
    if (dtype && !on_gpu) {
        cmd_error("generate: --dtype goes with --device cuda");
        return EXIT_USAGE;
    }
    model *m = model_load(dir, &e);
    if (!m) {
        cmd_error("%s", e.msg);
        return EXIT_USAGE;
    }
    gpu_model *g = NULL; /* --device cuda: the weights on the GPU, forward only */
    int status = EXIT_OK, *stop = NULL, n_stop = 0;
    prompt_list p = {0};
    prompt_ctx pc = {.model_dir = dir, .vocab = m->cfg.vocab, .chat = cli_has(a, "chat")};
    sbuf line;
    sb_init(&line);
    sample_seq *seqs = NULL;
    int *outs = NULL;
    float *lps = NULL;
    FILE *f = stdout;
    if (cli_tokenizer(a, dir, &pc.tok, &e) != 0) {
        cmd_error("generate: %s", e.msg);
        status = EXIT_USAGE;
        goto done;
    }
    if (pc.chat && !pc.tok) {
        no_tokenizer_error(&e, "--chat", dir, "--prompt-ids");
        cmd_error("generate: %s", e.msg);
        status = EXIT_USAGE;
        goto done;
    }
    const char *stop_text = cli_get(a, "stop-ids");
    if (stop_text) {
        if (ids_parse_text(stop_text, m->cfg.vocab, &stop, &n_stop, &e) != 0) {
            cmd_error("generate: --stop-ids: %s", e.msg);
            status = EXIT_USAGE;
            goto done;
        }
    } else if ((stop = malloc(2 * sizeof *stop)) != NULL) {
        stop_add(stop, &n_stop, m->cfg.eos_token_id, m->cfg.vocab);
        if (pc.tok) stop_add(stop, &n_stop, tok_eos_id(pc.tok), m->cfg.vocab);
    }
    o.stop_ids = stop;
    o.n_stop = n_stop;
    if ((status = read_prompts(a, &pc, &p)) != EXIT_OK) goto done;
    size_t total = (size_t)p.n * (size_t)n_samples;
    seqs = calloc(total, sizeof *seqs);
    outs = malloc(total * (size_t)max_new * sizeof *outs);
    lps = malloc(total * (size_t)max_new * sizeof *lps);
    if (!seqs || !outs || !lps) {
        cmd_error("generate: out of memory for %zu samples", total);
        status = EXIT_FAIL;
        goto done;
    }
    for (int i = 0; i < p.n; i++)
        for (long long j = 0; j < n_samples; j++) {
            size_t k = (size_t)i * (size_t)n_samples + (size_t)j;
            seqs[k] = (sample_seq){.prompt = p.ids[i], .n_prompt = p.len[i], .seq_id = k,
                                   .out = outs + k * (size_t)max_new, .out_logp = lps + k * (size_t)max_new};
        }
    if (on_gpu) {
        /* the packed forward's buffers are not used by the engine: the smallest plan */
        gpu_model_opts go = {.dtype = dtype && strcmp(dtype, "fp32") == 0 ? KERN_F32 : KERN_BF16, .max_tokens = 1,
                             .max_seqs = 1, .train = 0};
        if (!(g = gpu_model_new(m, &go, &e))) {
            cmd_error("generate: --device cuda: %s", e.msg);
            status = EXIT_FAIL;
            goto done;
        }
    }
    engine_opts eo = {.gpu = g};
    if (engine_generate(m, seqs, (int)total, &o, &eo, NULL, &e) != 0) {
        cmd_error("generate: %s", e.msg);
        status = EXIT_FAIL;
        goto done;
    }
    const char *out_path = cli_get(a, "out");
    if (out_path && !(f = fopen(out_path, "w"))) {
        cmd_error("%s: cannot write", out_path);
        f = stdout;
        status = EXIT_FAIL;
        goto done;
    }
    for (size_t k = 0; k < total; k++) {
        const sample_seq *q = &seqs[k];
        fprintf(f, "{\"prompt_index\": %zu, \"sample_index\": %zu, \"prompt_ids\": ", k / (size_t)n_samples,
                k % (size_t)n_samples);
        ids_print(f, q->prompt, q->n_prompt);
        fputs(", \"completion_ids\": ", f);
        ids_print(f, q->out, q->n_out);
        if (pc.tok) { /* the sample's text, special tokens (the eos) left out */
            line.len = 0;
            size_t len;
            /* a model's vocabulary may be larger than its tokenizer's (padded embeddings): ids
             * the tokenizer lacks decode to nothing, as in HF's decode */
            int32_t *known = malloc(((size_t)q->n_out + 1) * sizeof *known);
            size_t n_known = 0;
            for (int i = 0; known && i < q->n_out; i++)
                if (q->out[i] < tok_vocab_size(pc.tok)) known[n_known++] = q->out[i];
            char *text = known ? tok_decode(pc.tok, known, n_known, 1, &len, &e) : NULL;
            if (!known) err_set(&e, "out of memory");
            free(known);
            if (!text) {
                cmd_error("generate: %s", e.msg);
                status = EXIT_FAIL;
                goto done;
            }
            json_put_string(&line, text, len);
            free(text);
            if (line.oom) {
                cmd_error("generate: out of memory");
                status = EXIT_FAIL;
                goto done;
            }
            fprintf(f, ", \"completion\": %s", line.s);
        }
        fputs(", \"logprobs\": ", f);
        floats_print(f, q->out_logp, q->n_out);
        fprintf(f, ", \"finish_reason\": \"%s\"}\n", rollout_finish_name(q->finish));
    }
done:
    if (f != stdout && fclose(f) != 0 && status == EXIT_OK) {
        cmd_error("%s: write failed", cli_get(a, "out"));
        status = EXIT_FAIL;
    }
    free(seqs);
    free(outs);
    free(lps);
    free(stop);
    prompts_free(&p);
    sb_free(&line);
    tok_free(pc.tok);
    gpu_model_free(g);
    model_free(m);
    return status;
}

const command cmd_generate = {
    .name = "generate",
    .summary = "Generate samples from a model",
    .usage = "--model DIR (--prompt TEXT | --prompt-ids IDS | --prompts FILE.jsonl) [--chat] [options]",
    .details = "Runs the CPU reference. Prompts are text or token ids. Text needs a tokenizer:\n"
               "--tokenizer PATH, else the model directory's tokenizer.json. A text prompt is\n"
               "encoded as transformers' tokenizer(text) encodes it (with the post-processor's\n"
               "special tokens, e.g. a BOS); with --chat it is rendered as one user message\n"
               "through the chat template with the generation prompt. JSONL lines hold\n"
               "\"prompt\" (text, as --prompt), \"messages\" ([{\"role\", \"content\"}, ...],\n"
               "rendered through the chat template with the generation prompt) or \"prompt_ids\".\n"
               "Sampling stops at the config's and the tokenizer's eos unless --stop-ids.\n"
               "Each sample is one JSON line: prompt_index, sample_index, prompt_ids,\n"
               "completion_ids, completion (with a tokenizer: the decoded text without special\n"
               "tokens; ids beyond the tokenizer's vocabulary decode to nothing), logprobs (of\n"
               "each sampled token under the distribution it was drawn from) and finish_reason\n"
               "(\"stop\" or \"length\"). The same seed gives the same samples whatever --batch is (on the\n"
               "CPU; with --device cuda a matrix product over another number of rows may round\n"
               "differently).",
    .opts = GEN_OPTS,
    .n_opts = sizeof GEN_OPTS / sizeof *GEN_OPTS,
    .max_positional = 0,
    .run = generate_run,
};
