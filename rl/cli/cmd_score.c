/* cmd_score.c - `rlvr score --model DIR --in FILE.jsonl`: per-token log-probabilities
 * (and entropies) of given token sequences under a model, on the CPU reference. Each
 * line holds "token_ids": [..] (every token after the first is scored) or "prompt_ids"
 * and "completion_ids" (the completion is scored). */
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
    {"out", "FILE", "write the JSONL here instead of stdout", 0},
    {"threads", "N", "CPU threads (default: online CPUs, at most 8)", 0},
};

/* Scores one line; returns 0, or -1 with the message in e. */
static int score_line(model *m, const cJSON *obj, FILE *f, long line, rlvr_err *e) {
    int *ids = NULL, *comp = NULL, n = 0, n_comp = 0, rc = -1;
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(obj, "token_ids");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(obj, "prompt_ids");
    const cJSON *co = cJSON_GetObjectItemCaseSensitive(obj, "completion_ids");
    int first; /* index of the first scored token */
    if (tok) {
        if (ids_from_json(tok, m->cfg.vocab, "token_ids", &ids, &n, e) != 0) return -1;
        first = 1;
    } else if (pr && co) {
        int *pids = NULL, np = 0;
        if (ids_from_json(pr, m->cfg.vocab, "prompt_ids", &pids, &np, e) != 0) return -1;
        if (ids_from_json(co, m->cfg.vocab, "completion_ids", &comp, &n_comp, e) != 0) {
            free(pids);
            return -1;
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
            return err_set(e, "'prompt_ids' must hold at least one token");
        }
    } else return err_set(e, "no \"token_ids\" (or \"prompt_ids\" and \"completion_ids\"); text needs the tokenizer, which has not landed yet");
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
    jsonl_reader r;
    if (jsonl_open(&r, in, &e) != 0) {
        cmd_error("%s", e.msg);
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
        if (score_line(m, obj, f, r.line, &e) != 0) {
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
    model_free(m);
    return status;
}

const command cmd_score = {
    .name = "score",
    .summary = "Per-token log-probabilities of given token ids",
    .usage = "--model DIR --in FILE.jsonl [options]",
    .details = "Each input line holds \"token_ids\": [..] (every token after the first is scored)\n"
               "or \"prompt_ids\" and \"completion_ids\" (the completion's tokens are scored). Each\n"
               "output line: line, token_ids (the scored tokens), logprobs and entropies (of the\n"
               "model's distribution at each scored position). Text needs the tokenizer, which\n"
               "has not landed yet.",
    .opts = SCORE_OPTS,
    .n_opts = sizeof SCORE_OPTS / sizeof *SCORE_OPTS,
    .max_positional = 0,
    .run = score_run,
};
