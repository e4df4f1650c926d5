/* store_writer - writes a run of synthetic steps into a run store, for the tests that
 * kill it with SIGKILL (test_store_kill) and run the documented queries against what it
 * wrote (test_run_store_doc).
 *
 *   store_writer DB [N_STEPS]
 *
 * Prints "run ID" once, then "step N" after each step has committed (flushed, so the
 * reader knows exactly which steps finished). Without N_STEPS it writes forever.
 * Each step: STORE_WRITER_GROUPS groups of STORE_WRITER_GROUP_SIZE samples, each with an
 * "accuracy" and a "format" reward part. The data is deterministic and covers what the
 * documented queries look for: verifier errors and timeouts, truncated samples, groups
 * whose rewards are all equal, a NaN metric, token ids and log-probs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "util.h"

#define STORE_WRITER_GROUPS 16
#define STORE_WRITER_GROUP_SIZE 4
#define STORE_WRITER_SAMPLES (STORE_WRITER_GROUPS * STORE_WRITER_GROUP_SIZE)
#define STORE_WRITER_MAX_TOKENS 40

/* xorshift64: deterministic, no state outside this file. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static int fail(const char *what, const rlvr_err *e) {
    fprintf(stderr, "store_writer: %s: %s\n", what, e->msg);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: store_writer DB [N_STEPS]\n");
        return 2;
    }
    long long n_steps = argc == 3 ? atoll(argv[2]) : -1;
    rlvr_err e = {{0}};
    store *s = store_open(argv[1], 1, &e);
    if (!s) return fail("open", &e);
    store_run_info info = {.name = "store_writer", .config_lua = "return { steps = 3 }", .model_path = "tiny",
                           .seed = 1234, .status = "running"};
    int64_t run = store_run_begin(s, &info, &e);
    if (run < 0 || store_event(s, run, "info", "run started", &e)) {
        store_close(s);
        return fail("begin", &e);
    }
    printf("run %lld\n", (long long)run);
    fflush(stdout);

    static char prompts[STORE_WRITER_SAMPLES][64], completions[STORE_WRITER_SAMPLES][96];
    static int32_t ids[STORE_WRITER_SAMPLES][STORE_WRITER_MAX_TOKENS];
    static float logprobs[STORE_WRITER_SAMPLES][STORE_WRITER_MAX_TOKENS];
    static store_reward rewards[STORE_WRITER_SAMPLES][2];
    static store_sample samples[STORE_WRITER_SAMPLES];

    for (long long step = 0; n_steps < 0 || step < n_steps; step++) {
        double t0 = util_unix_time();
        int n_errors = 0, n_truncated = 0, n_zero_std = 0;
        double sum_r = 0, sum_r2 = 0, sum_acc = 0, sum_fmt = 0, sum_len = 0, max_len = 0;
        for (int g = 0; g < STORE_WRITER_GROUPS; g++) {
            double group_r[STORE_WRITER_GROUP_SIZE], gmean = 0, gvar = 0;
            for (int k = 0; k < STORE_WRITER_GROUP_SIZE; k++) {
                int i = g * STORE_WRITER_GROUP_SIZE + k;
                store_sample *x = &samples[i];
                int n_tok = 5 + (int)(next_u32() % (STORE_WRITER_MAX_TOKENS - 4));
                /* Group 0 always right and group 1 always wrong: zero-variance groups. */
                int correct = g == 0 ? 1 : g == 1 ? 0 : (int)(next_u32() % 2);
                const char *status = "ok", *detail = NULL;
                if (g > 1 && i % 29 == 3) status = "error", detail = "verify.lua:7: attempt to index a nil value";
                else if (g > 1 && i % 31 == 7) status = "timeout", detail = "verifier exceeded 2 s";
                if (strcmp(status, "ok") != 0) correct = 0, n_errors++;
                const char *finish = n_tok >= STORE_WRITER_MAX_TOKENS - 3 ? "length" : "stop";
                if (finish[0] == 'l') n_tok = STORE_WRITER_MAX_TOKENS, n_truncated++;
                double fmt = g == 0 || g == 1 ? 0.5 : (next_u32() % 2) * 0.5;
                snprintf(prompts[i], sizeof prompts[i], "What is %d + %d?", (int)(step % 50), g);
                snprintf(completions[i], sizeof completions[i], "<answer>%d</answer>",
                         correct ? (int)(step % 50) + g : -1 - k);
                for (int t = 0; t < n_tok; t++) {
                    ids[i][t] = (int32_t)(next_u32() % 151000);
                    logprobs[i][t] = -(float)(next_u32() % 1000) / 250.0f;
                }
                rewards[i][0] = (store_reward){.name = "accuracy", .value = correct, .status = status,
                                               .detail = detail};
                rewards[i][1] = (store_reward){.name = "format", .value = fmt, .status = "ok"};
                *x = (store_sample){.prompt_id = step * STORE_WRITER_GROUPS + g, .group_index = g,
                                    .sample_index = k, .prompt = prompts[i], .completion = completions[i],
                                    .n_prompt_tokens = 12, .n_completion_tokens = n_tok,
                                    .finish_reason = finish, .reward = correct + fmt, .policy_version = step,
                                    .completion_ids = ids[i], .logprobs = logprobs[i], .rewards = rewards[i],
                                    .n_rewards = 2};
                group_r[k] = x->reward;
                gmean += x->reward / STORE_WRITER_GROUP_SIZE;
                sum_r += x->reward, sum_r2 += x->reward * x->reward, sum_acc += correct, sum_fmt += fmt;
                sum_len += n_tok, max_len = n_tok > max_len ? n_tok : max_len;
            }
            for (int k = 0; k < STORE_WRITER_GROUP_SIZE; k++)
                gvar += (group_r[k] - gmean) * (group_r[k] - gmean) / STORE_WRITER_GROUP_SIZE;
            if (gvar == 0) n_zero_std++;
            /* GRPO's group-normalized advantage. */
            for (int k = 0; k < STORE_WRITER_GROUP_SIZE; k++)
                samples[g * STORE_WRITER_GROUP_SIZE + k].advantage = (group_r[k] - gmean) / (sqrt(gvar) + 1e-4);
        }
        const double n = STORE_WRITER_SAMPLES;
        store_metric extra[] = {{"reward/accuracy_mean", sum_acc / n}, {"reward/format_mean", sum_fmt / n}};
        store_step st;
        store_step_init(&st);
        st.step = step;
        st.started_at = t0;
        st.reward_mean = sum_r / n;
        st.reward_std = sqrt(fmax(0, sum_r2 / n - st.reward_mean * st.reward_mean));
        st.accuracy = sum_acc / n;
        st.loss = 0.5 / (1 + step);
        st.kl = step == 0 ? NAN : 0.001 * step; /* not measured before the first update */
        st.lr = 1e-6;
        st.adv_mean = 0;
        st.response_len_mean = sum_len / n;
        st.response_len_max = max_len;
        st.frac_truncated = n_truncated / n;
        st.frac_zero_std_groups = n_zero_std / (double)STORE_WRITER_GROUPS;
        st.tokens_generated = (int64_t)sum_len;
        st.extra = extra;
        st.n_extra = 2;
        /* Plausible timings: the real ones of this loop are microseconds. */
        st.gen_s = 2.0 + 0.01 * (double)(step % 7);
        st.score_s = 0.25;
        st.train_s = 1.5;
        st.gen_tokens_per_s = sum_len / st.gen_s;
        st.train_tokens_per_s = (sum_len + 12 * n) / st.train_s;
        st.wall_s = st.gen_s + st.score_s + st.train_s;
        if (store_write_step(s, run, &st, samples, STORE_WRITER_SAMPLES, &e)) {
            store_close(s);
            return fail("write", &e);
        }
        printf("step %lld\n", step);
        fflush(stdout);
        if (n_errors > 0) {
            char msg[96];
            snprintf(msg, sizeof msg, "step %lld: %d verifier errors or timeouts", step, n_errors);
            if (store_event(s, run, "warning", msg, &e)) {
                store_close(s);
                return fail("event", &e);
            }
        }
    }
    if (store_run_finish(s, run, "finished", &e) || store_event(s, run, "info", "run finished", &e)) {
        store_close(s);
        return fail("finish", &e);
    }
    store_close(s);
    return 0;
}
