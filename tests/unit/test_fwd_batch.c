/* test_fwd_batch.c - the host side of the paged rollout end to end, on the CPU: the
 * scheduler's steps flattened by fwd_batch_build, K/V written through the slot mapping
 * into a pool after the step's block copies, then paged_attention_forward and
 * cascade_attention_forward run on the flat arrays. Every drawing row must equal (plain:
 * bit for bit; cascade: to fp32 rounding) attention_forward over that sample's own
 * tokens laid out contiguously; and each cascade group must be the sharing sequences of
 * one scheduler group, whole. */
#include <math.h>

#include "testing.h"

#include "cpu_ops.h"
#include "fwd_batch.h"
#include "rng.h"

enum { H = 4, KV = 2, D = 8, VOCAB = 30, ROW = KV * D };

/* The K, V and Q rows of a token at a position: random, keyed by both (RoPE makes them
 * depend on the position too). */
static void token_rows(int token, int pos, float *k, float *v, float *q) {
    rng_stream r;
    rng_stream_init(&r, 1000 + (uint64_t)token, (uint64_t)pos);
    for (int i = 0; i < ROW; i++) k[i] = rng_stream_normal(&r), v[i] = rng_stream_normal(&r);
    for (int i = 0; i < H * D; i++) q[i] = rng_stream_normal(&r);
}

typedef struct sim {
    sched_opts o;
    scheduler *s;
    fwd_batch b;
    float *kc, *vc;            /* [n_blocks, block_size, KV, D] */
    int known[64][128], n_known[64];
    long long rows_checked, cascade_groups;
} sim;

/* attention_forward over sample's tokens 0 .. len-1; its last row into out [H, D], lse [H]. */
static void alone_last_row(const sim *m, int sample, int len, float *out, float *lse) {
    float *q = malloc((size_t)len * H * D * 4), *k = malloc((size_t)len * ROW * 4), *v = malloc((size_t)len * ROW * 4);
    float *o = malloc((size_t)len * H * D * 4), *l = malloc((size_t)len * H * 4);
    for (int t = 0; t < len; t++)
        token_rows(m->known[sample][t], t, k + (size_t)t * ROW, v + (size_t)t * ROW, q + (size_t)t * H * D);
    int cu[2] = {0, len};
    attention_forward(o, l, q, k, v, cu, 1, H, KV, D);
    memcpy(out, o + (size_t)(len - 1) * H * D, H * D * 4);
    memcpy(lse, l + (size_t)(len - 1) * H, H * 4);
    free(q), free(k), free(v), free(o), free(l);
}

/* Checks the grouping: a cascade group is every sharing item of one scheduler group, and
 * its sequences name the same prefix blocks. */
static void check_groups(const fwd_batch *b, const sched_batch *st) {
    assert_int_equal(b->cu_groups[b->n_groups], b->n_seqs);
    for (int g = 0; g < b->n_groups; g++) {
        const int first = b->cu_groups[g], pb = b->prefix_blocks[g];
        const sched_item *it0 = &st->items[b->item[first]];
        if (pb == 0) {
            assert_int_equal(b->cu_groups[g + 1] - first, 1);
            continue;
        }
        int members = 0;
        for (int k = 0; k < st->n_items; k++) members += st->items[k].group == it0->group && st->items[k].prefix_blocks;
        assert_int_equal(b->cu_groups[g + 1] - first, members);
        for (int i = first; i < b->cu_groups[g + 1]; i++) {
            assert_int_equal(st->items[b->item[i]].group, it0->group);
            assert_int_equal(st->items[b->item[i]].prefix_blocks, pb);
            assert_memory_equal(b->block_tables + (size_t)i * b->max_blocks,
                                b->block_tables + (size_t)first * b->max_blocks, (size_t)pb * sizeof(int));
        }
    }
}

static void run_step(sim *m, const sched_batch *st) {
    rlvr_err e;
    fwd_batch *b = &m->b;
    const kv_pages *p = sched_pages(m->s);
    const int bs = m->o.block_size;
    assert_int_equal(fwd_batch_build(b, st, p, &e), 0);
    assert_int_equal(b->n_tokens, st->n_tokens);
    check_groups(b, st);
    for (int c = 0; c < st->n_copies; c++) {
        const kv_copy *cp = &st->copies[c];
        memcpy(m->kc + (size_t)cp->dst * bs * ROW, m->kc + (size_t)cp->src * bs * ROW, (size_t)cp->n_tokens * ROW * 4);
        memcpy(m->vc + (size_t)cp->dst * bs * ROW, m->vc + (size_t)cp->src * bs * ROW, (size_t)cp->n_tokens * ROW * 4);
    }
    float *q = malloc((size_t)b->n_tokens * H * D * 4);
    for (int t = 0; t < b->n_tokens; t++)
        token_rows(b->tokens[t], b->positions[t], m->kc + (size_t)b->slot_mapping[t] * ROW,
                   m->vc + (size_t)b->slot_mapping[t] * ROW, q + (size_t)t * H * D);
    float *out = malloc((size_t)b->n_tokens * H * D * 4), *lse = malloc((size_t)b->n_tokens * H * 4);
    float *cout = malloc((size_t)b->n_tokens * H * D * 4), *clse = malloc((size_t)b->n_tokens * H * 4);
    float *scratch = malloc(cascade_attention_scratch(b->n_tokens, H, D, m->o.max_len) * 4);
    paged_attention_forward(out, lse, q, m->kc, m->vc, b->block_tables, b->max_blocks, b->cu_q, b->seq_lens,
                            b->n_seqs, bs, H, KV, D, scratch);
    cascade_attention_forward(cout, clse, q, m->kc, m->vc, b->block_tables, b->max_blocks, b->cu_q, b->seq_lens,
                              b->n_seqs, b->cu_groups, b->prefix_blocks, b->n_groups, bs, H, KV, D, scratch);
    for (int g = 0; g < b->n_groups; g++) m->cascade_groups += b->prefix_blocks[g] > 0;
    int drawn[64];
    for (int d = 0; d < st->n_draws; d++) {
        const int sample = st->draws[d].sample, row = b->logit_rows[d], pos = st->draws[d].position;
        assert_int_equal(b->positions[row], pos - 1);
        assert_int_equal(m->n_known[sample], pos);
        float want[H * D], want_lse[H];
        alone_last_row(m, sample, pos, want, want_lse);
        assert_memory_equal(out + (size_t)row * H * D, want, sizeof want);
        assert_memory_equal(lse + (size_t)row * H, want_lse, sizeof want_lse);
        for (int i = 0; i < H * D; i++) assert_true(fabsf(cout[(size_t)row * H * D + i] - want[i]) <= 2e-6f * (1 + fabsf(want[i])));
        for (int h = 0; h < H; h++) assert_true(fabsf(clse[(size_t)row * H + h] - want_lse[h]) <= 2e-6f * (1 + fabsf(want_lse[h])));
        m->rows_checked++;
        /* the token: any function of the sample and position (this test is about attention) */
        rng_stream r;
        rng_stream_init(&r, 77, (uint64_t)sample * 4096 + (uint64_t)pos);
        drawn[d] = (int)rng_stream_below(&r, VOCAB);
        m->known[sample][m->n_known[sample]++] = drawn[d];
    }
    assert_int_equal(sched_commit(m->s, drawn, &e), 0);
    free(q), free(out), free(lse), free(cout), free(clse), free(scratch);
}

static void run_sim(const sched_opts *o, uint64_t seed, int n_groups, sim *m) {
    rlvr_err e;
    memset(m, 0, sizeof *m);
    m->o = *o;
    m->s = sched_new(o, &e);
    assert_non_null(m->s);
    assert_int_equal(fwd_batch_init(&m->b, o->max_running, o->max_tokens, sched_pages(m->s)->max_blocks, &e), 0);
    m->kc = calloc((size_t)o->n_blocks * o->block_size * ROW, 4);
    m->vc = calloc((size_t)o->n_blocks * o->block_size * ROW, 4);
    rng_stream r;
    rng_stream_init(&r, seed, 0);
    const int stops[] = {0};
    for (int g = 0; g < n_groups; g++) {
        int prompt[40], n_prompt = 1 + (int)rng_stream_below(&r, 30), n_samples = 1 + (int)rng_stream_below(&r, 5);
        for (int i = 0; i < n_prompt; i++) prompt[i] = 1 + (int)rng_stream_below(&r, VOCAB - 1);
        sched_group sg = {prompt, n_prompt, n_samples, 1 + (int)rng_stream_below(&r, 20), stops, 1};
        const int first = sched_add_group(m->s, &sg, &e);
        assert_true(first >= 0 && first + n_samples <= 64);
        for (int j = 0; j < n_samples; j++) {
            memcpy(m->known[first + j], prompt, (size_t)n_prompt * sizeof(int));
            m->n_known[first + j] = n_prompt;
        }
    }
    sched_batch st;
    int r2;
    while ((r2 = sched_step(m->s, &st, &e)) == 1) run_step(m, &st);
    assert_int_equal(r2, 0);
    assert_int_equal(kv_free_blocks(sched_pages(m->s)), o->n_blocks);
    free(m->kc), free(m->vc);
    fwd_batch_free(&m->b);
    sched_free(m->s);
}

static void test_rollout_attention_equals_alone(void **state) {
    (void)state;
    sim m;
    sched_opts o = {.n_blocks = 120, .block_size = 4, .max_running = 16, .max_tokens = 24, .max_len = 64,
                    .watermark = 1};
    run_sim(&o, 5, 8, &m);
    assert_true(m.rows_checked > 100);
    assert_true(m.cascade_groups > 0);
    /* a pool so small that samples are preempted and recomputed */
    o.n_blocks = 14, o.block_size = 4;
    run_sim(&o, 6, 6, &m);
    assert_true(m.rows_checked > 50);
}

static void test_build_refuses_a_step_too_large(void **state) {
    (void)state;
    rlvr_err e;
    sched_opts o = {.n_blocks = 32, .block_size = 4, .max_running = 4, .max_tokens = 16, .max_len = 32};
    scheduler *s = sched_new(&o, &e);
    const int prompt[12] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
    sched_group g = {prompt, 12, 2, 4, NULL, 0};
    assert_true(sched_add_group(s, &g, &e) >= 0);
    sched_batch st;
    assert_int_equal(sched_step(s, &st, &e), 1);
    fwd_batch b;
    assert_int_equal(fwd_batch_init(&b, 4, 8, sched_pages(s)->max_blocks, &e), 0);
    assert_int_equal(fwd_batch_build(&b, &st, sched_pages(s), &e), -1);
    assert_non_null(strstr(e.msg, "12 tokens"));
    fwd_batch_free(&b);
    assert_int_equal(fwd_batch_init(&b, 0, 8, 8, &e), -1);
    sched_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollout_attention_equals_alone),
        cmocka_unit_test(test_build_refuses_a_step_too_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
