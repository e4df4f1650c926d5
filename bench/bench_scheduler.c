/* bench_scheduler.c - the host's share of a rollout step: sched_step + fwd_batch_build +
 * sched_commit with no model, at the shapes (prompt 512, G = 8, 512 new tokens,
 * 16-token blocks). A decode step of a small model on an H100 takes milliseconds; this is
 * the time the CPU adds to each, and so must stay far below it.
 *
 * usage: bench_scheduler [prompts per batch ...]   (default: 8 32, i.e. batch 64 and 256) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fwd_batch.h"
#include "scheduler.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs n_prompts groups to the end in a pool of n_blocks; prints the mean host time per step. */
static int run(int n_prompts, int n_blocks, const char *label) {
    enum { G = 8, PROMPT = 512, MAX_NEW = 512, BLOCK = 16 };
    rlvr_err e;
    const sched_opts o = {.n_blocks = n_blocks, .block_size = BLOCK, .max_running = n_prompts * G,
                          .max_tokens = 8192, .max_len = PROMPT + MAX_NEW, .watermark = 4};
    scheduler *s = sched_new(&o, &e);
    fwd_batch b;
    if (!s || fwd_batch_init(&b, o.max_running, o.max_tokens, sched_pages(s)->max_blocks, &e) < 0) {
        fprintf(stderr, "bench_scheduler: %s\n", e.msg);
        sched_free(s);
        return 1;
    }
    int *prompt = malloc(PROMPT * sizeof *prompt), *drawn = malloc((size_t)o.max_running * sizeof *drawn);
    for (int i = 0; i < PROMPT; i++) prompt[i] = 100 + i;
    for (int g = 0; g < n_prompts; g++) {
        const sched_group sg = {prompt, PROMPT, G, MAX_NEW, NULL, 0};
        if (sched_add_group(s, &sg, &e) < 0) {
            fprintf(stderr, "bench_scheduler: %s\n", e.msg);
            return 1;
        }
    }
    sched_batch st;
    double host = 0;
    int r;
    for (;;) {
        const double t0 = now();
        if ((r = sched_step(s, &st, &e)) != 1) break;
        if (fwd_batch_build(&b, &st, sched_pages(s), &e) < 0) break;
        for (int d = 0; d < st.n_draws; d++) drawn[d] = 1000 + (st.draws[d].sample * 7 + st.draws[d].position) % 500;
        if (sched_commit(s, drawn, &e) < 0) break;
        host += now() - t0;
    }
    if (r != 0) {
        fprintf(stderr, "bench_scheduler: %s\n", e.msg);
        return 1;
    }
    const sched_stats ss = sched_get_stats(s);
    printf("| %d | %s | %d | %lld | %lld | %.1f | %.3f |\n", n_prompts * G, label, n_blocks, ss.steps, ss.preempted,
           1e6 * host / (double)ss.steps, 1e6 * host / (double)ss.tokens);
    free(prompt), free(drawn);
    fwd_batch_free(&b);
    sched_free(s);
    return 0;
}

int main(int argc, char **argv) {
    int counts[8] = {8, 32}, n = 2;
    if (argc > 1) {
        n = 0;
        for (int i = 1; i < argc && n < 8; i++) counts[n++] = atoi(argv[i]);
    }
    printf("| batch | pool | blocks | steps | preempted | host us/step | host us/token |\n|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        /* every sample's whole length fits; then a pool with room for half of them */
        const int full = counts[i] * (512 / 16 + 8 * (511 + 15) / 16);
        if (run(counts[i], full, "all fit") || run(counts[i], full / 2, "half fit")) return 1;
    }
    return 0;
}
