/* cmd_reward.c - `rlvr reward --script NAME|FILE.lua --in IN.jsonl`: score completions
 * with a reward script on every core and write each input line back with its reward,
 * parts, status and error, in input order. A malformed line is reported with its line
 * number and skipped; a sample whose verifier fails gets the fallback reward. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "jsonl.h"
#include "rewards.h"
#include "util.h"

/* Lines scored at once: enough to keep every thread busy, small enough to stream. */
#define REWARD_BATCH 512

static const cli_opt REWARD_OPTS[] = {
    {"script", "NAME|FILE.lua", "built-in script (math, gsm8k, think_format, math_r1, code) or a Lua file", 0},
    {"in", "IN.jsonl", "input: one JSON object per line with `completion` and the fields the script reads ('-' = stdin)", 0},
    {"out", "OUT.jsonl", "output (default: stdout)", 0},
    {"jobs", "N", "scoring threads (default: every core)", 0},
    {"fallback", "X", "reward of a sample whose verifier errors or runs out of budget (default 0)", 0},
    {"timeout-ms", "MS", "wall-clock budget of one reward call (default 2000)", 0},
    {"max-instructions", "N", "Lua instruction budget of one reward call (default 100000000)", 0},
    {"max-memory-mb", "MB", "memory budget of each Lua state (default 256)", 0},
    {"code-timeout-ms", "MS", "wall-clock limit of one sandboxed program (default 10000)", 0},
    {"code-memory-mb", "MB", "address-space limit of one sandboxed program (default 1024)", 0},
    {"unsafe-no-sandbox", NULL, "run model-written code WITHOUT isolation (only for code you trust)", 0},
};

typedef struct reward_totals {
    long n, errors, timeouts, skipped;
    double sum;
} reward_totals;

static void put_result(cJSON *obj, const rw_result *r) {
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "reward");
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "parts");
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "status");
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "error");
    cJSON_AddNumberToObject(obj, "reward", r->reward);
    cJSON *parts = cJSON_AddObjectToObject(obj, "parts");
    for (size_t i = 0; parts && i < r->n_parts; i++) cJSON_AddNumberToObject(parts, r->parts[i].name, r->parts[i].value);
    cJSON_AddStringToObject(obj, "status", rw_status_name(r->status));
    if (r->error) cJSON_AddStringToObject(obj, "error", r->error);
    else cJSON_AddNullToObject(obj, "error");
}

static int flush_batch(rw_scorer *s, cJSON **objs, size_t n, FILE *out, reward_totals *t, rlvr_err *e) {
    rw_result *res = calloc(n ? n : 1, sizeof *res);
    if (!res) return err_set(e, "out of memory");
    int st = rw_score_batch(s, (const cJSON *const *)objs, n, res, e);
    for (size_t i = 0; i < n; i++) {
        if (st == 0) {
            put_result(objs[i], &res[i]);
            char *line = cJSON_PrintUnformatted(objs[i]);
            if (line) {
                fputs(line, out);
                fputc('\n', out);
                free(line);
            }
            t->n++;
            t->sum += res[i].reward;
            if (res[i].status == RW_ERROR) t->errors++;
            if (res[i].status == RW_TIMEOUT) t->timeouts++;
        }
        rw_result_clear(&res[i]);
        cJSON_Delete(objs[i]);
    }
    free(res);
    return st;
}

static int reward_run(const cli_args *a) {
    rlvr_err e = {{0}};
    const char *script = cli_get(a, "script"), *in = cli_get(a, "in"), *out_path = cli_get(a, "out");
    if (!script || !in) {
        cmd_error("reward: %s is required (usage: rlvr reward --script NAME|FILE.lua --in IN.jsonl)",
                  !script ? "--script" : "--in");
        return EXIT_USAGE;
    }
    long long jobs, timeout_ms, max_instr, mem_mb, code_ms, code_mb;
    double fallback;
    if (cli_int(a, "jobs", 0, &jobs, &e) || cli_int(a, "timeout-ms", 2000, &timeout_ms, &e) ||
        cli_int(a, "max-instructions", 100000000, &max_instr, &e) || cli_int(a, "max-memory-mb", 256, &mem_mb, &e) ||
        cli_int(a, "code-timeout-ms", 10000, &code_ms, &e) || cli_int(a, "code-memory-mb", 1024, &code_mb, &e) ||
        cli_num(a, "fallback", 0.0, &fallback, &e)) {
        cmd_error("%s", e.msg);
        return EXIT_USAGE;
    }
    if (jobs < 0 || jobs > 1024 || timeout_ms < 1 || max_instr < 1000 || mem_mb < 1 || code_ms < 1 || code_mb < 16 ||
        !isfinite(fallback)) {
        cmd_error("reward: out of range: --jobs 0..1024, --timeout-ms >= 1, --max-instructions >= 1000, "
                  "--max-memory-mb >= 1, --code-timeout-ms >= 1, --code-memory-mb >= 16, --fallback finite");
        return EXIT_USAGE;
    }
    sbx_opts so = {.wall_s = code_ms / 1000.0, .memory_bytes = (size_t)code_mb << 20,
                   .unsafe_no_sandbox = cli_has(a, "unsafe-no-sandbox")};
    sbx_set_default_opts(&so);
    if (so.unsafe_no_sandbox) fprintf(stderr, "rlvr: warning: --unsafe-no-sandbox: model-written code runs with your user's rights\n");

    jsonl_reader rd;
    if (jsonl_open(&rd, in, &e) != 0) {
        cmd_error("%s", e.msg);
        return EXIT_USAGE;
    }
    rw_opts o = {.script = script, .fallback = fallback, .timeout_s = timeout_ms / 1000.0,
                 .max_instructions = max_instr, .max_memory = (size_t)mem_mb << 20, .jobs = (int)jobs};
    double t0 = util_now();
    rw_scorer *s = rw_scorer_new(&o, &e);
    if (!s) {
        cmd_error("%s", e.msg);
        jsonl_close(&rd);
        return EXIT_USAGE;
    }
    FILE *out = stdout;
    if (out_path && !(out = fopen(out_path, "w"))) {
        err_errno(&e, out_path);
        cmd_error("%s", e.msg);
        rw_scorer_free(s);
        jsonl_close(&rd);
        return EXIT_USAGE;
    }
    double t_start = util_now();
    reward_totals t = {0};
    cJSON *batch[REWARD_BATCH];
    size_t n = 0;
    int status = EXIT_OK;
    for (;;) {
        cJSON *obj = NULL;
        jsonl_status js = jsonl_next(&rd, &obj, &e);
        if (js == JSONL_EOF) break;
        if (js == JSONL_IO_ERROR) {
            cmd_error("%s", e.msg);
            status = EXIT_FAIL;
            break;
        }
        if (js == JSONL_BAD_LINE) {
            cmd_error("%s (line skipped)", e.msg);
            t.skipped++;
            continue;
        }
        if (!jsonl_get_string(obj, "completion")) {
            cmd_error("%s:%ld: no \"completion\" string (line skipped)", rd.name, rd.line);
            cJSON_Delete(obj);
            t.skipped++;
            continue;
        }
        batch[n++] = obj;
        if (n == REWARD_BATCH) {
            if (flush_batch(s, batch, n, out, &t, &e) != 0) {
                n = 0;
                cmd_error("%s", e.msg);
                status = EXIT_FAIL;
                break;
            }
            n = 0;
        }
    }
    if (n > 0 && flush_batch(s, batch, n, out, &t, &e) != 0) {
        cmd_error("%s", e.msg);
        status = EXIT_FAIL;
    }
    double secs = util_now() - t_start;
    if (out != stdout && fclose(out) != 0) {
        err_errno(&e, out_path);
        cmd_error("%s", e.msg);
        status = EXIT_FAIL;
    } else if (out == stdout) fflush(stdout);
    fprintf(stderr,
            "rlvr reward: %ld samples, mean reward %.4f, %ld errors, %ld timeouts, %ld lines skipped, "
            "%.1f samples/s (%d threads; script loaded in %.2fs)\n",
            t.n, t.n ? t.sum / (double)t.n : 0.0, t.errors, t.timeouts, t.skipped, secs > 0 ? (double)t.n / secs : 0.0,
            rw_scorer_jobs(s), t_start - t0);
    rw_scorer_free(s);
    jsonl_close(&rd);
    return status;
}

const command cmd_reward = {
    .name = "reward",
    .summary = "Score completions with a reward script",
    .usage = "--script NAME|FILE.lua --in IN.jsonl [options]",
    .details = "Each input line is a JSON object with `completion` and the fields the script reads\n"
               "(e.g. answer, tests, entry_point). Each output line is the input object plus\n"
               "\"reward\", \"parts\", \"status\" (ok|error|timeout) and \"error\", in input order.\n"
               "Malformed lines are reported with their line number and skipped. Built-in scripts:\n"
               "math, gsm8k, think_format, math_r1, code (see docs/rewards.md).",
    .opts = REWARD_OPTS,
    .n_opts = (int)(sizeof REWARD_OPTS / sizeof REWARD_OPTS[0]),
    .max_positional = 0,
    .run = reward_run,
};
