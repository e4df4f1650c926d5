/* test_scheduler.c - continuous batching (rollout/scheduler.c) driven by a simulated
 * device: a "K/V" value per pool slot written through the slot mapping, and a next-token
 * function of the sample, the position and every value the sample's block table reads
 * back. A sample's output therefore equals the one it has alone only when its cache
 * holds exactly its own tokens: misplaced writes, a missed copy on write or a block
 * freed while still read all change it. Checked: outputs equal running each sample
 * alone, prompt blocks shared by the group's samples, the token and sequence limits,
 * preemption under tiny pools, every block back in the pool at the end. */
#include "testing.h"

#include "fwd_batch.h"
#include "rng.h"
#include "scheduler.h"

enum { VOCAB = 40 };

static uint64_t mix(uint64_t x) { /* splitmix64's finalizer */
    x ^= x >> 30, x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27, x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
static uint64_t kv_value(int token, int pos) { return mix(((uint64_t)(unsigned)token << 32) | (unsigned)pos); }
static uint64_t ctx_push(uint64_t h, uint64_t value) { return mix(h ^ value) + 0x9e3779b97f4a7c15ULL; }
static int next_token(uint64_t ctx, int sample, int position) {
    return (int)(mix(ctx ^ mix(((uint64_t)(unsigned)sample << 32) | (unsigned)position)) % VOCAB);
}

typedef struct spec {
    int n_prompt, n_samples, max_new;
    int prompt[64];
} spec;

static const int STOPS[] = {0, 1};

/* The sample alone: prompt, then one token at a time from its whole context. */
static int run_alone(const spec *g, int sample, int *out) {
    int seq[160], n = g->n_prompt, n_out = 0;
    memcpy(seq, g->prompt, (size_t)n * sizeof(int));
    for (;;) {
        uint64_t h = 0;
        for (int q = 0; q < n; q++) h = ctx_push(h, kv_value(seq[q], q));
        int t = next_token(h, sample, n);
        out[n_out++] = seq[n++] = t;
        if (t == STOPS[0] || t == STOPS[1] || n_out == g->max_new) return n_out;
    }
}

typedef struct run_stats {
    int steps, max_items, max_tokens_seen;
    long long copies, preempted, reforks;
    int saw_shared_prefix; /* an item with prefix_blocks > 0 beside another of its group */
} run_stats;

/* A freed block's slots read as garbage, so a sequence that reads a block it no longer
 * holds, or positions never written since it took the block, is caught. */
static void poison_free_blocks(const kv_pages *p, uint64_t *mem) {
    for (int b = 0; b < p->n_blocks; b++)
        if (kv_refcount(p, b) == 0)
            for (int i = 0; i < p->block_size; i++) mem[(size_t)b * p->block_size + i] = 0xdeadULL + (uint64_t)i;
}

/* Runs every group through the scheduler and the simulated device, checking each step,
 * and compares every sample with run_alone. */
static void run_all(const sched_opts *o, const spec *groups, int n_groups, run_stats *st) {
    rlvr_err e;
    scheduler *s = sched_new(o, &e);
    assert_non_null(s);
    int first[64];
    for (int g = 0; g < n_groups; g++) {
        sched_group sg = {groups[g].prompt, groups[g].n_prompt, groups[g].n_samples, groups[g].max_new, STOPS, 2};
        first[g] = sched_add_group(s, &sg, &e);
        assert_true(first[g] >= 0);
    }
    const kv_pages *p = sched_pages(s);
    const int bs = o->block_size;
    uint64_t *mem = calloc((size_t)o->n_blocks * bs, sizeof *mem);
    int *written = calloc((size_t)o->n_blocks * bs, sizeof *written);
    int *slots = malloc((size_t)o->max_len * sizeof *slots), *drawn = malloc(64 * 8 * sizeof *drawn);
    uint8_t *is_dst = calloc((size_t)o->n_blocks, 1), *is_src = calloc((size_t)o->n_blocks, 1);
    memset(st, 0, sizeof *st);
    /* what the test knows each sample's sequence to be: prompt + tokens drawn */
    static int known[64 * 8][160];
    int n_known[64 * 8] = {0};
    for (int g = 0; g < n_groups; g++)
        for (int j = 0; j < groups[g].n_samples; j++) {
            memcpy(known[first[g] + j], groups[g].prompt, (size_t)groups[g].n_prompt * sizeof(int));
            n_known[first[g] + j] = groups[g].n_prompt;
        }
    sched_batch step;
    int r;
    while ((r = sched_step(s, &step, &e)) == 1) {
        assert_true(++st->steps < 200000); /* no livelock */
        assert_true(step.n_tokens <= o->max_tokens && step.n_items <= o->max_running);
        if (step.n_items > st->max_items) st->max_items = step.n_items;
        if (step.n_tokens > st->max_tokens_seen) st->max_tokens_seen = step.n_tokens;
        st->copies += step.n_copies;
        st->preempted += step.n_preempted;
        poison_free_blocks(p, mem);
        /* copies: disjoint sources and destinations, run before the writes */
        for (int c = 0; c < step.n_copies; c++) {
            const kv_copy *cp = &step.copies[c];
            assert_true(cp->n_tokens > 0 && cp->n_tokens < bs);
            assert_int_equal(is_dst[cp->dst], 0);
            is_dst[cp->dst] = 1, is_src[cp->src] = 1;
        }
        for (int c = 0; c < step.n_copies; c++) {
            const kv_copy *cp = &step.copies[c];
            assert_int_equal(is_src[cp->dst], 0);
            memcpy(mem + (size_t)cp->dst * bs, mem + (size_t)cp->src * bs, (size_t)cp->n_tokens * sizeof *mem);
        }
        for (int c = 0; c < step.n_copies; c++) {
            is_dst[step.copies[c].dst] = 0;
            is_src[step.copies[c].src] = 0;
        }
        /* the forward writes: each slot once, into unshared blocks only */
        for (int i = 0; i < step.n_items; i++) {
            const sched_item *it = &step.items[i];
            for (int k = 0; k < i; k++) assert_int_not_equal(step.items[k].seq, it->seq);
            assert_true(it->pos + it->n_tokens <= kv_seq_len(p, it->seq));
            kv_slot_mapping(p, it->seq, it->pos, it->n_tokens, slots);
            for (int t = 0; t < it->n_tokens; t++) {
                assert_int_equal(kv_refcount(p, slots[t] / bs), 1);
                assert_int_not_equal(written[slots[t]], st->steps);
                written[slots[t]] = st->steps;
                mem[slots[t]] = kv_value(step.tokens[it->first_token + t], it->pos + t);
            }
            /* items of one group sharing the prompt read the same leading blocks */
            for (int k = 0; k < i && it->prefix_blocks > 0; k++)
                if (step.items[k].group == it->group && step.items[k].prefix_blocks > 0) {
                    assert_int_equal(step.items[k].prefix_blocks, it->prefix_blocks);
                    assert_memory_equal(kv_block_table(p, step.items[k].seq), kv_block_table(p, it->seq),
                                        (size_t)it->prefix_blocks * sizeof(int));
                    st->saw_shared_prefix = 1;
                }
        }
        /* then the reads: each drawing item's last row sees positions 0 .. pos + n_tokens - 1 */
        for (int i = 0; i < step.n_items; i++) {
            const sched_item *it = &step.items[i];
            if (!it->n_draws) continue;
            const int end = it->pos + it->n_tokens, *want = known[step.draws[it->first_draw].sample];
            kv_slot_mapping(p, it->seq, 0, end, slots);
            uint64_t h = 0;
            for (int q = 0; q < end; q++) {
                assert_true(mem[slots[q]] == kv_value(want[q], q)); /* the cache holds this sample's tokens */
                h = ctx_push(h, mem[slots[q]]);
            }
            for (int d = it->first_draw; d < it->first_draw + it->n_draws; d++) {
                assert_int_equal(step.draws[d].position, end);
                drawn[d] = next_token(h, step.draws[d].sample, end);
            }
        }
        for (int d = 0; d < step.n_draws; d++) {
            const int sm = step.draws[d].sample;
            assert_int_equal(step.draws[d].position, n_known[sm]);
            known[sm][n_known[sm]++] = drawn[d];
        }
        assert_int_equal(sched_commit(s, drawn, &e), 0);
        poison_free_blocks(p, mem);
    }
    assert_int_equal(r, 0);
    assert_int_equal(kv_free_blocks(p), o->n_blocks); /* every block back */
    const sched_stats ss = sched_get_stats(s);
    assert_int_equal(st->preempted, ss.preempted);
    assert_int_equal(st->steps, ss.steps);
    assert_int_equal(st->copies, ss.copies);
    st->reforks = ss.prompt_reforks;
    for (int g = 0; g < n_groups; g++)
        for (int j = 0; j < groups[g].n_samples; j++) {
            int want[160], n_want = run_alone(&groups[g], first[g] + j, want), n_out, done;
            rollout_finish fin;
            const int *out = sched_output(s, first[g] + j, &n_out, &done, &fin);
            assert_int_equal(done, 1);
            assert_int_equal(n_out, n_want);
            assert_memory_equal(out, want, (size_t)n_want * sizeof(int));
            assert_int_equal(fin, out[n_out - 1] <= 1 ? ROLLOUT_STOP : ROLLOUT_LENGTH);
        }
    free(mem), free(written), free(slots), free(drawn), free(is_dst), free(is_src);
    sched_free(s);
}

static void make_groups(rng_stream *r, spec *groups, int n_groups, int max_prompt, int max_g, int max_new) {
    for (int g = 0; g < n_groups; g++) {
        spec *sp = &groups[g];
        sp->n_prompt = 1 + (int)rng_stream_below(r, (uint64_t)max_prompt);
        sp->n_samples = 1 + (int)rng_stream_below(r, (uint64_t)max_g);
        sp->max_new = 1 + (int)rng_stream_below(r, (uint64_t)max_new);
        for (int i = 0; i < sp->n_prompt; i++) sp->prompt[i] = 2 + (int)rng_stream_below(r, VOCAB - 2);
    }
}

/* run_all over n_groups groups drawn from `seed`. */
static void run_drawn(uint64_t seed, int n_groups, int max_prompt, int max_g, int max_new, const sched_opts *o,
                      run_stats *st) {
    rng_stream r;
    rng_stream_init(&r, seed, 0);
    spec groups[16];
    make_groups(&r, groups, n_groups, max_prompt, max_g, max_new);
    run_all(o, groups, n_groups, st);
}

static void test_outputs_equal_alone(void **state) {
    (void)state;
    sched_opts o = {.n_blocks = 600, .block_size = 4, .max_running = 20, .max_tokens = 64, .max_len = 80,
                    .watermark = 2};
    run_stats st;
    run_drawn(11, 16, 40, 8, 30, &o, &st);
    assert_int_equal(st.preempted, 0);
    assert_true(st.max_items > 16); /* samples of several groups ran together, up to the limit */
    assert_true(st.saw_shared_prefix);
}

static void test_prompt_blocks_shared_not_copied(void **state) {
    (void)state;
    rlvr_err e;
    sched_opts o = {.n_blocks = 32, .block_size = 4, .max_running = 8, .max_tokens = 64, .max_len = 32};
    scheduler *s = sched_new(&o, &e);
    const int prompt[10] = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
    sched_group g = {prompt, 10, 4, 6, NULL, 0};
    assert_int_equal(sched_add_group(s, &g, &e), 0);
    sched_batch st;
    assert_int_equal(sched_step(s, &st, &e), 1);
    assert_int_equal(st.n_items, 1); /* the prompt, once */
    assert_int_equal(st.n_tokens, 10);
    assert_int_equal(st.n_draws, 4);
    assert_int_equal(kv_free_blocks(sched_pages(s)), 29);
    assert_int_equal(sched_step(s, &st, &e), -1); /* not committed */
    assert_non_null(strstr(e.msg, "not committed"));
    const int first[4] = {20, 21, 22, 23};
    assert_int_equal(sched_commit(s, first, &e), 0);
    assert_int_equal(kv_free_blocks(sched_pages(s)), 29); /* forks take no block */
    assert_int_equal(sched_step(s, &st, &e), 1);
    assert_int_equal(st.n_items, 4);
    /* the shared half-full last block is copied for 3 samples, the 4th writes in place */
    assert_int_equal(st.n_copies, 3);
    const kv_pages *p = sched_pages(s);
    const int *t0 = kv_block_table(p, st.items[0].seq);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(st.items[i].prefix_blocks, 2);
        assert_int_equal(st.items[i].pos, 10);
        assert_int_equal(st.tokens[i], first[i]);
        assert_int_equal(st.draws[i].position, 11);
        const int *t = kv_block_table(p, st.items[i].seq);
        assert_int_equal(t[0], t0[0]);
        assert_int_equal(t[1], t0[1]);
    }
    assert_int_equal(kv_refcount(p, t0[0]), 4);
    assert_int_equal(kv_refcount(p, t0[1]), 4);
    assert_int_equal(kv_free_blocks(p), 26);
    sched_free(s);
}

static void test_chunked_prefill_under_budget(void **state) {
    (void)state;
    sched_opts o = {.n_blocks = 200, .block_size = 8, .max_running = 12, .max_tokens = 7, .max_len = 80,
                    .watermark = 1};
    run_stats st;
    run_drawn(12, 6, 60, 4, 20, &o, &st);
    assert_true(st.max_tokens_seen == 7);
}

static void test_preemption_in_tiny_pool(void **state) {
    (void)state;
    /* the longest sample needs at most (20 + 30 - 1) / 4 -> 13 blocks; give 14 */
    sched_opts o = {.n_blocks = 14, .block_size = 4, .max_running = 16, .max_tokens = 32, .max_len = 64,
                    .watermark = 1};
    run_stats st;
    run_drawn(13, 6, 20, 6, 30, &o, &st);
    assert_true(st.preempted > 0);
    assert_true(st.reforks > 0); /* some preempted samples took their prompt blocks back from a sibling */
}

static void test_random_configurations(void **state) {
    (void)state;
    rng_stream r;
    rng_stream_init(&r, 14, 0);
    long long preempted = 0;
    for (int round = 0; round < 60; round++) {
        spec groups[16];
        const int n_groups = 1 + (int)rng_stream_below(&r, 16), max_g = 1 + (int)rng_stream_below(&r, 8);
        make_groups(&r, groups, n_groups, 1 + (int)rng_stream_below(&r, 50), max_g,
                    1 + (int)rng_stream_below(&r, 40));
        sched_opts o = {.block_size = 1 + (int)rng_stream_below(&r, 8), .max_tokens = 1 + (int)rng_stream_below(&r, 40),
                        .max_len = 100, .watermark = (int)rng_stream_below(&r, 4)};
        o.max_running = max_g + (int)rng_stream_below(&r, 12);
        int longest = 0;
        for (int g = 0; g < n_groups; g++) {
            int need = (groups[g].n_prompt + groups[g].max_new - 1 + o.block_size - 1) / o.block_size;
            if (need > longest) longest = need;
        }
        o.n_blocks = longest + (int)rng_stream_below(&r, 3 * (uint64_t)longest + 1);
        run_stats st;
        run_all(&o, groups, n_groups, &st);
        preempted += st.preempted;
    }
    assert_true(preempted > 0);
}

static void test_refusals(void **state) {
    (void)state;
    rlvr_err e;
    sched_opts o = {.n_blocks = 4, .block_size = 4, .max_running = 4, .max_tokens = 16, .max_len = 40};
    scheduler *s = sched_new(&o, &e);
    int prompt[20] = {0};
    const struct {
        int n_prompt, n_samples, max_new;
        const char *msg;
    } bad[] = {
        {17, 2, 1, "group 0: the prompt of 17 tokens needs 5 blocks of 4 tokens, the pool has 4"},
        {16, 2, 2, "group 0: prompt 16 + max_new 2 - 1 positions need 5 blocks of 4 tokens, the pool has 4 (a sample"},
        {8, 5, 2, "group 0: 5 samples, but at most 4 sequences run at once"},
        {0, 2, 2, "group 0: the prompt is empty"},
        {8, 2, 40, "group 0: prompt 8 + max_new 40 - 1 = 47 positions pass max_len 40"},
        {8, 0, 2, "group 0: samples 0 and max_new 2 must be >= 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sched_group g = {prompt, bad[i].n_prompt, bad[i].n_samples, bad[i].max_new, NULL, 0};
        assert_int_equal(sched_add_group(s, &g, &e), -1);
        assert_non_null(strstr(e.msg, bad[i].msg));
    }
    assert_int_equal(sched_commit(s, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "no step"));
    sched_batch st;
    assert_int_equal(sched_step(s, &st, &e), 0); /* nothing queued: done */
    sched_free(s);
    o.max_tokens = 0;
    assert_null(sched_new(&o, &e));
}

/* ---- out of memory ------------------------------------------------------------------ */

static int alloc_countdown; /* allocations that succeed before one fails; < 0: all succeed */
static void *failing_alloc(void *ptr, size_t size) {
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    if (alloc_countdown == 0) return NULL;
    if (alloc_countdown > 0) alloc_countdown--;
    return realloc(ptr, size);
}

/* Sets up a scheduler of 20 groups (past the first growth of its arrays) and a forward
 * batch, then runs every step with no allocation allowed. 0 when set-up ran out of memory
 * (after checking the message; everything is freed, which ASan's leak check confirms). */
static int setup_and_run(void) {
    rlvr_err e = {{0}};
    const sched_opts o = {.n_blocks = 10, .block_size = 4, .max_running = 12, .max_tokens = 16, .max_len = 40,
                          .watermark = 1};
    scheduler *s = sched_new(&o, &e);
    fwd_batch b = {0};
    int ok = s != NULL;
    for (int g = 0; g < 20 && ok; g++) {
        const int prompt[6] = {g + 2, 3, 4, 5, 6, 7}, stop = 1;
        sched_group sg = {prompt, 3 + g % 4, 4, 6, &stop, 1};
        ok = sched_add_group(s, &sg, &e) >= 0;
    }
    if (ok) ok = fwd_batch_init(&b, o.max_running, o.max_tokens, sched_pages(s)->max_blocks, &e) == 0;
    if (!ok) {
        assert_non_null(strstr(e.msg, "out of memory"));
        fwd_batch_free(&b);
        sched_free(s);
        return 0;
    }
    alloc_countdown = 0; /* a step must not allocate */
    sched_batch st;
    int r, drawn[12];
    while ((r = sched_step(s, &st, &e)) == 1) {
        assert_int_equal(fwd_batch_build(&b, &st, sched_pages(s), &e), 0);
        for (int d = 0; d < st.n_draws; d++) drawn[d] = (st.draws[d].sample + st.draws[d].position) % 7;
        assert_int_equal(sched_commit(s, drawn, &e), 0);
    }
    assert_int_equal(r, 0);
    assert_true(sched_get_stats(s).preempted > 0); /* preemption does not allocate either */
    alloc_countdown = -1;
    fwd_batch_free(&b);
    sched_free(s);
    return 1;
}

static void test_out_of_memory_at_every_allocation(void **state) {
    (void)state;
    rollout_set_alloc(failing_alloc);
    int n = 0;
    for (; n < 1000; n++) {
        alloc_countdown = n;
        if (setup_and_run()) break;
    }
    rollout_set_alloc(NULL);
    assert_true(n > 10 && n < 1000); /* every allocation of set-up failed once */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outputs_equal_alone),
        cmocka_unit_test(test_prompt_blocks_shared_not_copied),
        cmocka_unit_test(test_chunked_prefill_under_budget),
        cmocka_unit_test(test_preemption_in_tiny_pool),
        cmocka_unit_test(test_random_configurations),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_out_of_memory_at_every_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
