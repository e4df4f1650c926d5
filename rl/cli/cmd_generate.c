/* cmd_generate.c - `rlvr generate --model DIR (--prompt IDS | --prompts FILE.jsonl)`:
 * G samples per prompt on the CPU reference, one JSON line per sample. Until the
 * tokenizer lands, prompts are token ids: --prompt "1 2 3", or JSONL lines with
 * "prompt_ids": [1, 2, 3]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "jsonl.h"
#include "model.h"
#include "sampling.h"
#include "token_ids.h"

static const cli_opt GEN_OPTS[] = {
    {"model", "DIR", "Hugging Face model directory", 0},
    {"prompt", "IDS", "one prompt as token ids (\"1 2 3\")", 0},
    {"prompts", "FILE", "JSONL prompts, each line with \"prompt_ids\": [..] (\"-\" is stdin)", 0},
    {"n", "G", "samples per prompt (default 1)", 0},
    {"max-new-tokens", "N", "tokens generated per sample at most (default 64)", 0},
    {"temperature", "T", "sampling temperature; 0 is greedy (default 1)", 0},
    {"top-k", "K", "keep the K most likely tokens; 0 is off (default 0)", 0},
    {"top-p", "P", "nucleus sampling threshold in (0, 1] (default 1)", 0},
    {"min-p", "P", "keep tokens with p >= P * p_max (default 0)", 0},
    {"seed", "N", "random seed: samples are keyed by (seed, prompt, sample, position) (default 1)", 0},
    {"stop-ids", "IDS", "token ids that end a sample (default: the config's eos_token_id)", 0},
    {"batch", "N", "sequences decoded together (default 16)", 0},
    {"threads", "N", "CPU threads (default: online CPUs, at most 8)", 0},
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

/* Reads the prompts of --prompt or --prompts; returns an exit status. */
static int read_prompts(const cli_args *a, int vocab, prompt_list *p) {
    rlvr_err e = {{0}};
    const char *one = cli_get(a, "prompt"), *file = cli_get(a, "prompts");
    if (!!one == !!file) {
        cmd_error("generate: give exactly one of --prompt IDS and --prompts FILE.jsonl");
        return EXIT_USAGE;
    }
    if (one) {
        int *ids, n;
        if (ids_parse_text(one, vocab, &ids, &n, &e) != 0) {
            cmd_error("generate: --prompt: %s", e.msg);
            return EXIT_USAGE;
        }
        if (prompts_add(p, ids, n) != 0) return EXIT_FAIL;
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
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, "prompt_ids");
        int *ids = NULL, n = 0;
        if (!arr) {
            cmd_error("%s:%ld: no \"prompt_ids\" (text prompts need the tokenizer, which has not landed yet)", r.name,
                      r.line);
            status = EXIT_USAGE;
        } else if (ids_from_json(arr, vocab, "prompt_ids", &ids, &n, &e) != 0 || n == 0) {
            cmd_error("%s:%ld: %s", r.name, r.line, n == 0 && !e.msg[0] ? "empty prompt_ids" : e.msg);
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
    model *m = model_load(dir, &e);
    if (!m) {
        cmd_error("%s", e.msg);
        return EXIT_USAGE;
    }
    int status = EXIT_OK, *stop = NULL, n_stop = 0;
    prompt_list p = {0};
    sample_seq *seqs = NULL;
    int *outs = NULL;
    float *lps = NULL;
    FILE *f = stdout;
    const char *stop_text = cli_get(a, "stop-ids");
    if (stop_text) {
        if (ids_parse_text(stop_text, m->cfg.vocab, &stop, &n_stop, &e) != 0) {
            cmd_error("generate: --stop-ids: %s", e.msg);
            status = EXIT_USAGE;
            goto done;
        }
    } else if (m->cfg.eos_token_id >= 0 && m->cfg.eos_token_id < m->cfg.vocab) {
        stop = malloc(sizeof *stop);
        if (stop) stop[n_stop++] = m->cfg.eos_token_id;
    }
    o.stop_ids = stop;
    o.n_stop = n_stop;
    if ((status = read_prompts(a, m->cfg.vocab, &p)) != EXIT_OK) goto done;
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
    if (sample_generate(m, seqs, (int)total, &o, &e) != 0) {
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
    model_free(m);
    return status;
}

const command cmd_generate = {
    .name = "generate",
    .summary = "Generate samples from a model",
    .usage = "--model DIR (--prompt IDS | --prompts FILE.jsonl) [options]",
    .details = "Runs the CPU reference. Until the tokenizer lands, prompts are token ids. Each\n"
               "sample is one JSON line: prompt_index, sample_index, prompt_ids, completion_ids,\n"
               "logprobs (of each sampled token under the distribution it was drawn from) and\n"
               "finish_reason (\"stop\" or \"length\"). The same seed gives the same samples\n"
               "whatever --batch is.",
    .opts = GEN_OPTS,
    .n_opts = sizeof GEN_OPTS / sizeof *GEN_OPTS,
    .max_positional = 0,
    .run = generate_run,
};
