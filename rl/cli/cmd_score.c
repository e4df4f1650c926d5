/* cmd_score.c - `rlvr score --model DIR --in FILE.jsonl`: per-token log-probabilities
 * (and entropies) of given sequences under a model, on the CPU reference. Each line holds
 * "text" or "token_ids" (every token after the first is scored), or "prompt" and
 * "completion" texts or "prompt_ids" and "completion_ids" (the completion is scored). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "jsonl.h"
#include "model.h"
#include "token_ids.h"

static const cli_opt SCORE_OPTS[] = {
    {"model", "DIR", "Hugging Face model directory", 0},
    {"in", "FILE", "JSONL input (\"-\" is stdin)", 0},
    {"tokenizer", "PATH", "tokenizer.json or a directory holding one, for text (default: the model directory's)", 0},
    {"out", "FILE", "write the JSONL here instead of stdout", 0},
    {"threads", "N", "CPU threads (default: online CPUs, at most 8)", 0},
};

/* The ids of one part of a line: `ids_key` (ids) or `text_key` (text, needing the tokenizer).
 * Returns 1 when the line has neither, 0 with ids, -1 with `e` filled. */
static int part_ids(model *m, tok_tokenizer *t, const char *dir, const cJSON *obj, const char *raw, const char *ids_key,
                    const char *text_key, int add_special, int **ids, int *n, rlvr_err *e) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, ids_key);
    if (arr) return ids_from_json(arr, m->cfg.vocab, ids_key, ids, n, e);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(obj, text_key);
    if (!text) return 1;
    if (!cJSON_IsString(text)) return err_set(e, "\"%s\" must be a string", text_key);
    if (!t) {
        char what[32], hint[32];
        snprintf(what, sizeof what, "\"%s\"", text_key);
        snprintf(hint, sizeof hint, "\"%s\"", ids_key);
        return no_tokenizer_error(e, what, dir, hint);
    }
    if (json_has_nul_escape(raw)) return err_set(e, "the text contains U+0000 (\\u0000), which rlvr cannot read");
    return text_to_ids(t, text->valuestring, add_special, m->cfg.vocab, ids, n, e);
}

/* Scores one line; returns 0, or -1 with the message in e. Text is encoded as transformers'
 * tokenizer(text) encodes it (with the post-processor's special tokens, e.g. a BOS); a prompt
 * and a completion are encoded separately (the completion without special tokens) and
 * concatenated, so the completion's tokens are exactly its own encoding. */
static int score_line(model *m, tok_tokenizer *t, const char *dir, const cJSON *obj, const char *raw, FILE *f,
                      long line, rlvr_err *e) {
    int *ids = NULL, *comp = NULL, n = 0, n_comp = 0, rc;
    int first; /* index of the first scored token */
    if ((rc = part_ids(m, t, dir, obj, raw, "token_ids", "text", 1, &ids, &n, e)) < 0) return -1;
    if (rc == 0) first = 1;
    else {
        int *pids = NULL, np = 0;
        rc = part_ids(m, t, dir, obj, raw, "prompt_ids", "prompt", 1, &pids, &np, e);
        if (rc < 0) return -1;
        int rc2 = rc == 0 ? part_ids(m, t, dir, obj, raw, "completion_ids", "completion", 0, &comp, &n_comp, e) : 1;
        if (rc2 != 0) {
            free(pids);
            if (rc2 < 0) return -1;
            return err_set(e, "no \"text\" or \"token_ids\", nor a prompt (\"prompt\" or \"prompt_ids\") and a "
                              "completion (\"completion\" or \"completion_ids\")");
        }
        n = np + n_comp;
        ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
        if (!ids) {
            free(pids);
            free(comp);
            return err_set(e, "out of memory");
        }
        memcpy(ids, pids, (size_t)np * sizeof *ids);
        memcpy(ids + np, comp, (size_t)n_comp * sizeof *ids);
        free(pids);
        first = np;
        if (np < 1) {
            free(ids);
            free(comp);
            return err_set(e, "the prompt must hold at least one token");
        }
    }
    rc = -1;
    if (n < 2 || first >= n) {
        free(ids);
        free(comp);
        return err_set(e, "nothing to score (at least one token after the first is needed)");
    }
    /* The model predicts token t+1 from position t: run tokens[0..n-1) and score tokens[1..n).
     * The cache is sized to the line (a model's full context can be gigabytes). */
    int slot = 0, len = n - 1;
    model_kv *kv = model_kv_new(m, 1, len, e);
    float *lp = malloc((size_t)n * 2 * sizeof(float)), *ent = lp ? lp + n : NULL;
    if (kv && !lp) err_set(e, "out of memory");
    else if (kv && model_forward(m, kv, 1, &slot, &len, ids, e) == 0) {
        model_logprobs(m, ids + 1, lp, ent);
        fprintf(f, "{\"line\": %ld, \"token_ids\": ", line);
        ids_print(f, ids + first, n - first);
        fputs(", \"logprobs\": ", f);
        floats_print(f, lp + first - 1, n - first);
        fputs(", \"entropies\": ", f);
        floats_print(f, ent + first - 1, n - first);
        fputs("}\n", f);
        rc = 0;
    }
    model_kv_free(kv);
    free(lp);
    free(ids);
    free(comp);
    return rc;
}

static int score_run(const cli_args *a) {
    rlvr_err e = {{0}};
    const char *dir = cli_get(a, "model"), *in = cli_get(a, "in");
    if (!dir || !in) {
        cmd_error("score: --model DIR and --in FILE.jsonl are required");
        return EXIT_USAGE;
    }
    if (threads_option(a, &e) != 0) {
        cmd_error("score: %s", e.msg);
        return EXIT_USAGE;
    }
    model *m = model_load(dir, &e);
    if (!m) {
        cmd_error("%s", e.msg);
        return EXIT_USAGE;
    }
    tok_tokenizer *t = NULL;
    if (cli_tokenizer(a, dir, &t, &e) != 0) {
        cmd_error("score: %s", e.msg);
        model_free(m);
        return EXIT_USAGE;
    }
    jsonl_reader r;
    if (jsonl_open(&r, in, &e) != 0) {
        cmd_error("%s", e.msg);
        tok_free(t);
        model_free(m);
        return EXIT_USAGE;
    }
    FILE *f = stdout;
    const char *out_path = cli_get(a, "out");
    int status = EXIT_OK;
    if (out_path && !(f = fopen(out_path, "w"))) {
        cmd_error("%s: cannot write", out_path);
        f = stdout;
        status = EXIT_FAIL;
    }
    while (status == EXIT_OK) {
        cJSON *obj = NULL;
        jsonl_status st = jsonl_next(&r, &obj, &e);
        if (st == JSONL_EOF) break;
        if (st != JSONL_OK) {
            cmd_error("%s", e.msg);
            status = EXIT_USAGE;
            break;
        }
        if (score_line(m, t, dir, obj, r.buf, f, r.line, &e) != 0) {
            cmd_error("%s:%ld: %s", r.name, r.line, e.msg);
            status = EXIT_USAGE;
        }
        cJSON_Delete(obj);
    }
    if (f != stdout && fclose(f) != 0 && status == EXIT_OK) {
        cmd_error("%s: write failed", out_path);
        status = EXIT_FAIL;
    }
    jsonl_close(&r);
    tok_free(t);
    model_free(m);
    return status;
}

const command cmd_score = {
    .name = "score",
    .summary = "Per-token log-probabilities of given text or token ids",
    .usage = "--model DIR --in FILE.jsonl [--tokenizer PATH] [options]",
    .details = "Each input line holds \"text\" or \"token_ids\": [..] (every token after the first\n"
               "is scored), or a prompt and a completion, each as text (\"prompt\", \"completion\")\n"
               "or ids (\"prompt_ids\", \"completion_ids\") (the completion's tokens are scored).\n"
               "Text needs a tokenizer: --tokenizer PATH, else the model directory's\n"
               "tokenizer.json. \"text\" and \"prompt\" are encoded as transformers'\n"
               "tokenizer(text) encodes them (with the post-processor's special tokens, e.g. a\n"
               "BOS); \"completion\" is encoded on its own without special tokens and appended to\n"
               "the prompt's ids (so the ids at the seam may differ from encoding the joined\n"
               "text). Each output line: line, token_ids (the scored tokens), logprobs and\n"
               "entropies (of the model's distribution at each scored position).",
    .opts = SCORE_OPTS,
    .n_opts = sizeof SCORE_OPTS / sizeof *SCORE_OPTS,
    .max_positional = 0,
    .run = score_run,
};
