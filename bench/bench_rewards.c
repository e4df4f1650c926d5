/* bench_rewards.c - reward throughput: math verification samples/s on one core over the
 * GSM8K test answers (the peer, Math-Verify, runs on the same inputs in
 * tests/reference/bench_math_verify.py), and code-sandbox runs/s on a trivial program.
 *
 *   bench_rewards [GSM8K_TEST.jsonl] [INPUTS_OUT.jsonl]
 *
 * Each GSM8K row gives four completions: the answer boxed, the answer boxed in another
 * form (thousands separators / a trailing ".00" / a dollar sign), a wrong answer boxed, and
 * the answer only in prose (no final answer: must score 0). The inputs and rlvr's
 * verdicts are written to INPUTS_OUT so the peer scores exactly the same pairs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonl.h"
#include "rewards.h"
#include "util.h"

static char *gold_of(const char *answer) {
    const char *h = strstr(answer, "####"), *last = NULL;
    while (h) {
        last = h;
        h = strstr(h + 4, "####");
    }
    if (!last) return NULL;
    last += 4;
    while (*last == ' ') last++;
    size_t n = strcspn(last, "\n");
    char *g = malloc(n + 1);
    memcpy(g, last, n);
    g[n] = 0;
    while (n > 0 && g[n - 1] == ' ') g[--n] = 0;
    return g;
}

static void variants(const char *gold, char out[4][256]) {
    char plain[128];
    size_t k = 0;
    for (const char *p = gold; *p && k < sizeof plain - 1; p++)
        if (*p != ',') plain[k++] = *p;
    plain[k] = 0;
    snprintf(out[0], 256, "Let me work it out step by step.\nSo the answer is $\\boxed{%s}$.", plain);
    long v = atol(plain);
    if (v >= 1000 && strspn(plain, "0123456789") == strlen(plain)) {
        /* 1234567 -> 1,234,567 */
        char grouped[160];
        size_t len = strlen(plain), g = 0;
        for (size_t i = 0; i < len; i++) {
            if (i > 0 && (len - i) % 3 == 0) grouped[g++] = ',';
            grouped[g++] = plain[i];
        }
        grouped[g] = 0;
        snprintf(out[1], 256, "Adding up, we get \\boxed{%s}", grouped);
    }
    else if (v % 2 == 0)
        snprintf(out[1], 256, "The total is \\boxed{%s.00}", plain);
    else
        snprintf(out[1], 256, "She makes \\boxed{\\$%s} in all.", plain);
    snprintf(out[2], 256, "So the answer is \\boxed{%ld}.", v + 1);
    snprintf(out[3], 256, "The answer is %s.", plain);
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "../shared/data/datasets/gsm8k/test.jsonl";
    const char *dump = argc > 2 ? argv[2] : "bench_rewards_inputs.jsonl";
    rlvr_err e;
    jsonl_reader rd;
    if (jsonl_open(&rd, path, &e) != 0) {
        fprintf(stderr, "bench_rewards: %s\n", e.msg);
        return 1;
    }
    size_t cap = 8192, n = 0;
    cJSON **samples = malloc(cap * sizeof *samples);
    cJSON *row;
    jsonl_status st;
    while ((st = jsonl_next(&rd, &row, &e)) != JSONL_EOF) {
        if (st != JSONL_OK) continue;
        char *gold = gold_of(jsonl_get_string(row, "answer") ? jsonl_get_string(row, "answer") : "");
        if (gold) {
            char v[4][256];
            variants(gold, v);
            for (int i = 0; i < 4 && n < cap; i++) {
                cJSON *s = cJSON_CreateObject();
                cJSON_AddStringToObject(s, "completion", v[i]);
                cJSON_AddStringToObject(s, "answer", gold);
                samples[n++] = s;
            }
            free(gold);
        }
        cJSON_Delete(row);
    }
    jsonl_close(&rd);

    rw_opts o = {.script = "math", .timeout_s = 2, .max_instructions = 100000000, .max_memory = 256 << 20, .jobs = 1};
    rw_host *h = rw_host_new(&o, &e);
    if (!h) {
        fprintf(stderr, "bench_rewards: %s\n", e.msg);
        return 1;
    }
    double *reward = calloc(n, sizeof *reward);
    double best = 1e9;
    double correct = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = util_now();
        for (size_t i = 0; i < n; i++) {
            rw_result r;
            rw_host_score(h, samples[i], &r);
            reward[i] = r.reward;
            rw_result_clear(&r);
        }
        double t = util_now() - t0;
        if (t < best) best = t;
    }
    for (size_t i = 0; i < n; i++) correct += reward[i];
    printf("math (rlvr, Lua, 1 core): %zu samples, best of 5: %.3f s, %.0f samples/s; reward 1 on %.0f (expected %zu)\n",
           n, best, (double)n / best, correct, n / 2);
    FILE *f = fopen(dump, "w");
    for (size_t i = 0; f && i < n; i++) {
        cJSON_AddNumberToObject(samples[i], "rlvr_reward", reward[i]);
        char *line = cJSON_PrintUnformatted(samples[i]);
        fprintf(f, "%s\n", line);
        free(line);
    }
    if (f) fclose(f);
    rw_host_free(h);

    /* Code sandbox: a trivial program, sequentially and on the scorer's thread pool. */
    rlvr_err se;
    if (sbx_available(&se) != 0) {
        printf("code sandbox: skipped: %s\n", se.msg);
    } else {
        sbx_opts so = {.wall_s = 10};
        sbx_result r;
        int runs = 40, passed = 0;
        double t0 = util_now();
        for (int i = 0; i < runs; i++) {
            sbx_run_python("def add(a, b):\n    return a + b\nassert add(1, 2) == 3\n", NULL, &so, &r, &se);
            passed += r.verdict == SBX_PASS;
        }
        double t = util_now() - t0;
        printf("code sandbox, sequential: %d runs (%d passed) in %.2f s, %.1f runs/s\n", runs, passed, t, runs / t);
        int jobs = (int)sysconf(_SC_NPROCESSORS_ONLN);
        rw_opts co = {.script = "code", .timeout_s = 20, .max_instructions = 100000000, .max_memory = 64 << 20, .jobs = jobs};
        rw_scorer *sc = rw_scorer_new(&co, &e);
        if (sc) {
            enum { M = 80 };
            cJSON *cs[M];
            rw_result res[M];
            for (int i = 0; i < M; i++)
                cs[i] = cJSON_Parse("{\"completion\": \"def add(a, b):\\n    return a + b\\n\", \"tests\": \"assert add(1, 2) == 3\"}");
            t0 = util_now();
            rw_score_batch(sc, (const cJSON *const *)cs, M, res, &e);
            t = util_now() - t0;
            double sum = 0;
            for (int i = 0; i < M; i++) {
                sum += res[i].reward;
                rw_result_clear(&res[i]);
                cJSON_Delete(cs[i]);
            }
            printf("code script on %d threads: %d samples (%.0f passed) in %.2f s, %.1f runs/s\n", jobs, M, sum, t, M / t);
            rw_scorer_free(sc);
        } else {
            printf("code script: %s\n", e.msg);
        }
    }
    for (size_t i = 0; i < n; i++) cJSON_Delete(samples[i]);
    free(samples);
    free(reward);
    return 0;
}
