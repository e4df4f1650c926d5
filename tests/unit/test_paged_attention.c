/* test_paged_attention.c - the CPU reference of attention against a paged KV cache
 * (core/cpu_paged_attention.c) on block tables kept by rollout/kv_pages: equal bit for bit
 * to the packed attention_forward on the same K/V (decode, k > 1 verification rows and a
 * whole prefill), split along the keys equal to it, the cascade form equal to the plain one for GRPO-style groups forked
 * from a shared prompt, truncation then re-append (with copy on write), and the
 * log-sum-exp merge. */
#include <math.h>

#include "testing.h"

#include "cpu_ops.h"
#include "kv_pages.h"
#include "rng.h"

enum { H = 6, KV = 2, D = 16, BS = 4, NB = 96, MAXLEN = 64 };

typedef struct cache {
    kv_pages *p;
    float *k, *v; /* [NB, BS, KV, D] */
} cache;

static void cache_init(cache *c) {
    rlvr_err e;
    c->p = kv_pages_new(NB, BS, 16, MAXLEN, &e);
    assert_non_null(c->p);
    c->k = calloc((size_t)NB * BS * KV * D, sizeof(float));
    c->v = calloc((size_t)NB * BS * KV * D, sizeof(float));
}

static void cache_free(cache *c) {
    kv_pages_free(c->p);
    free(c->k), free(c->v);
}

/* Appends n positions to seq and writes their K/V rows k, v [n, KV, D], running the copy
 * on write kv_append asks for first (what the device does). */
static void cache_append(cache *c, int seq, int n, const float *k, const float *v) {
    rlvr_err e;
    kv_copy cp;
    const int pos0 = kv_seq_len(c->p, seq), row = KV * D;
    int r = kv_append(c->p, seq, n, &cp, &e);
    assert_true(r >= 0);
    if (r == 1) {
        memcpy(c->k + (size_t)cp.dst * BS * row, c->k + (size_t)cp.src * BS * row, (size_t)cp.n_tokens * row * 4);
        memcpy(c->v + (size_t)cp.dst * BS * row, c->v + (size_t)cp.src * BS * row, (size_t)cp.n_tokens * row * 4);
    }
    int slots[MAXLEN];
    kv_slot_mapping(c->p, seq, pos0, n, slots);
    for (int i = 0; i < n; i++) {
        memcpy(c->k + (size_t)slots[i] * row, k + (size_t)i * row, (size_t)row * 4);
        memcpy(c->v + (size_t)slots[i] * row, v + (size_t)i * row, (size_t)row * 4);
    }
}

static float *randn(rng_stream *r, size_t n) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = rng_stream_normal(r);
    return x;
}

/* One sequence's contiguous K/V [len, KV, D] (what a non-paged cache would hold) and its
 * queries [len, H, D]; the test appends it to a paged cache and compares. */
typedef struct seq_data {
    int len, n_new, id;
    float *q, *k, *v;
} seq_data;

static void seq_data_init(seq_data *s, rng_stream *r, int len, int n_new) {
    s->len = len, s->n_new = n_new;
    s->q = randn(r, (size_t)len * H * D);
    s->k = randn(r, (size_t)len * KV * D);
    s->v = randn(r, (size_t)len * KV * D);
}

static void seq_data_free(seq_data *s) { free(s->q), free(s->k), free(s->v); }

/* attention_forward over the whole sequence; its last n_new rows are what paged attention
 * must give. out [n_new, H, D], lse [n_new, H]. */
static void packed_last_rows(const seq_data *s, float *out, float *lse) {
    float *o = malloc((size_t)s->len * H * D * 4), *l = malloc((size_t)s->len * H * 4);
    int cu[2] = {0, s->len};
    attention_forward(o, l, s->q, s->k, s->v, cu, 1, H, KV, D);
    const int skip = s->len - s->n_new;
    memcpy(out, o + (size_t)skip * H * D, (size_t)s->n_new * H * D * 4);
    memcpy(lse, l + (size_t)skip * H, (size_t)s->n_new * H * 4);
    free(o), free(l);
}

/* The paged call's inputs for sequences ss[0..n): queries packed, tables, lengths. */
typedef struct call {
    int n, T, cu_q[17], seq_lens[16], tables[16 * 16];
    float *q, *out, *lse;
} call;

static void call_build(call *cl, const cache *c, const seq_data *ss, int n) {
    cl->n = n, cl->cu_q[0] = 0;
    for (int i = 0; i < n; i++) cl->cu_q[i + 1] = cl->cu_q[i] + ss[i].n_new;
    cl->T = cl->cu_q[n];
    cl->q = malloc((size_t)cl->T * H * D * 4);
    cl->out = malloc((size_t)cl->T * H * D * 4);
    cl->lse = malloc((size_t)cl->T * H * 4);
    assert_true(c->p->max_blocks <= 16);
    for (int i = 0; i < n; i++) {
        cl->seq_lens[i] = kv_seq_len(c->p, ss[i].id);
        assert_int_equal(cl->seq_lens[i], ss[i].len);
        memcpy(cl->tables + i * c->p->max_blocks, kv_block_table(c->p, ss[i].id), (size_t)c->p->max_blocks * 4);
        memcpy(cl->q + (size_t)cl->cu_q[i] * H * D, ss[i].q + (size_t)(ss[i].len - ss[i].n_new) * H * D,
               (size_t)ss[i].n_new * H * D * 4);
    }
}

static void call_free(call *cl) { free(cl->q), free(cl->out), free(cl->lse); }

static void paged(call *cl, const cache *c) {
    float scratch[MAXLEN];
    paged_attention_forward(cl->out, cl->lse, cl->q, c->k, c->v, cl->tables, c->p->max_blocks, cl->cu_q,
                            cl->seq_lens, cl->n, BS, H, KV, D, scratch);
}

/* Every sequence's paged rows equal the packed forward's, bit for bit. */
static void expect_packed(const call *cl, const seq_data *ss) {
    for (int i = 0; i < cl->n; i++) {
        float *o = malloc((size_t)ss[i].n_new * H * D * 4), *l = malloc((size_t)ss[i].n_new * H * 4);
        packed_last_rows(&ss[i], o, l);
        assert_memory_equal(o, cl->out + (size_t)cl->cu_q[i] * H * D, (size_t)ss[i].n_new * H * D * 4);
        assert_memory_equal(l, cl->lse + (size_t)cl->cu_q[i] * H, (size_t)ss[i].n_new * H * 4);
        free(o), free(l);
    }
}

static void test_paged_equals_packed(void **state) {
    (void)state;
    rng_stream r;
    rng_stream_init(&r, 31, 0);
    cache c;
    cache_init(&c);
    /* decode, 3-token verification, a whole prefill, decode, 4 tokens */
    const int lens[] = {1, 7, 16, 23, 9}, n_new[] = {1, 3, 16, 1, 4}, n = 5;
    seq_data ss[5];
    int done[5] = {0};
    for (int i = 0; i < n; i++) {
        seq_data_init(&ss[i], &r, lens[i], n_new[i]);
        rlvr_err e;
        ss[i].id = kv_seq_new(c.p, &e);
    }
    /* appended in interleaved chunks, so each table names scattered blocks */
    for (int left = 1; left;) {
        left = 0;
        for (int i = 0; i < n; i++) {
            int k = 1 + (int)rng_stream_below(&r, 5);
            if (k > lens[i] - done[i]) k = lens[i] - done[i];
            cache_append(&c, ss[i].id, k, ss[i].k + (size_t)done[i] * KV * D, ss[i].v + (size_t)done[i] * KV * D);
            done[i] += k;
            left |= done[i] < lens[i];
        }
    }
    call cl;
    call_build(&cl, &c, ss, n);
    paged(&cl, &c);
    expect_packed(&cl, ss);
    /* split along the keys (long-context decode): chunks of 1, 3, a block, 5 blocks; one
     * chunk holding every key is the plain computation bit for bit */
    const int splits[] = {1, 3, BS, 5 * BS, MAXLEN};
    float *out = malloc((size_t)cl.T * H * D * 4), *lse = malloc((size_t)cl.T * H * 4), scratch[MAXLEN + D];
    for (int k = 0; k < 5; k++) {
        paged_attention_split_forward(out, lse, cl.q, c.k, c.v, cl.tables, c.p->max_blocks, cl.cu_q, cl.seq_lens,
                                      n, BS, H, KV, D, splits[k], scratch);
        if (splits[k] == MAXLEN) {
            assert_memory_equal(out, cl.out, (size_t)cl.T * H * D * 4);
            assert_memory_equal(lse, cl.lse, (size_t)cl.T * H * 4);
        }
        for (size_t i = 0; i < (size_t)cl.T * H * D; i++)
            assert_true(fabsf(out[i] - cl.out[i]) <= 2e-6f * (1 + fabsf(cl.out[i])));
        for (size_t i = 0; i < (size_t)cl.T * H; i++) assert_true(fabsf(lse[i] - cl.lse[i]) <= 2e-6f * (1 + fabsf(lse[i])));
    }
    free(out), free(lse);
    call_free(&cl);
    for (int i = 0; i < n; i++) seq_data_free(&ss[i]);
    cache_free(&c);
}

/* Groups forked from a prompt (GRPO): plain paged attention equals the packed forward on
 * each sample's own K/V, and the cascade form equals the plain one. */
static void test_cascade_equals_plain(void **state) {
    (void)state;
    rng_stream r;
    rng_stream_init(&r, 32, 0);
    cache c;
    cache_init(&c);
    /* prompts of 13 (3 full blocks and a shared partial one), 8 (2 full blocks) and 3 (none) */
    const int prompt_len[] = {13, 8, 3}, group_size[] = {4, 3, 1}, n_groups = 3;
    seq_data ss[8];
    int cu_groups[4] = {0}, prefix_blocks[3], n = 0;
    rlvr_err e;
    for (int g = 0; g < n_groups; g++) {
        const int P = prompt_len[g];
        seq_data prompt;
        seq_data_init(&prompt, &r, P, 0);
        const int first = kv_seq_new(c.p, &e);
        cache_append(&c, first, P, prompt.k, prompt.v);
        for (int j = 0; j < group_size[g]; j++, n++) {
            /* sample j: the prompt's K/V, then its own suffix; the last 1..3 rows are queries */
            const int suffix = 1 + (int)rng_stream_below(&r, 9), n_new = 1 + (int)rng_stream_below(&r, 3);
            seq_data_init(&ss[n], &r, P + suffix, n_new < suffix ? n_new : suffix);
            memcpy(ss[n].k, prompt.k, (size_t)P * KV * D * 4);
            memcpy(ss[n].v, prompt.v, (size_t)P * KV * D * 4);
            ss[n].id = j == 0 ? first : kv_fork(c.p, first, &e);
        }
        for (int i = cu_groups[g]; i < n; i++) /* suffixes after all forks: copies on write */
            cache_append(&c, ss[i].id, ss[i].len - P, ss[i].k + (size_t)P * KV * D, ss[i].v + (size_t)P * KV * D);
        cu_groups[g + 1] = n;
        prefix_blocks[g] = P / BS;
        for (int i = cu_groups[g] + 1; i < n; i++)
            assert_memory_equal(kv_block_table(c.p, ss[i].id), kv_block_table(c.p, ss[cu_groups[g]].id),
                                (size_t)prefix_blocks[g] * sizeof(int));
        seq_data_free(&prompt);
    }
    call cl;
    call_build(&cl, &c, ss, n);
    paged(&cl, &c);
    expect_packed(&cl, ss);
    float *out = malloc((size_t)cl.T * H * D * 4), *lse = malloc((size_t)cl.T * H * 4);
    float *scratch = malloc(cascade_attention_scratch(cl.T, H, D, MAXLEN) * sizeof(float));
    cascade_attention_forward(out, lse, cl.q, c.k, c.v, cl.tables, c.p->max_blocks, cl.cu_q, cl.seq_lens, n,
                              cu_groups, prefix_blocks, n_groups, BS, H, KV, D, scratch);
    for (size_t i = 0; i < (size_t)cl.T * H * D; i++)
        assert_true(fabsf(out[i] - cl.out[i]) <= 2e-6f * (1 + fabsf(cl.out[i])));
    for (size_t i = 0; i < (size_t)cl.T * H; i++) assert_true(fabsf(lse[i] - cl.lse[i]) <= 2e-6f * (1 + fabsf(lse[i])));
    /* the group without a shared block is the plain computation, merged with nothing */
    const size_t last = (size_t)cl.cu_q[cu_groups[2]] * H;
    assert_memory_equal(out + last * D, cl.out + last * D, (size_t)(cl.T * H - last) * D * 4);
    free(out), free(lse), free(scratch);
    call_free(&cl);
    for (int i = 0; i < n; i++) seq_data_free(&ss[i]);
    cache_free(&c);
}

/* Speculative decoding's rejection: a sequence cut back to an earlier length and extended
 * with other tokens reads exactly its new contents, and a sequence it shared blocks with
 * keeps its own. */
static void test_truncate_then_reappend(void **state) {
    (void)state;
    rng_stream r;
    rng_stream_init(&r, 33, 0);
    cache c;
    cache_init(&c);
    rlvr_err e;
    seq_data parent, child;
    seq_data_init(&parent, &r, 18, 2);
    parent.id = kv_seq_new(c.p, &e);
    cache_append(&c, parent.id, 18, parent.k, parent.v);
    /* the child shares all 5 blocks, keeps 10 positions (half of a shared block) and
     * appends 6 others: the half block is copied, the parent's positions 10.. untouched */
    seq_data_init(&child, &r, 16, 6);
    memcpy(child.k, parent.k, 10 * KV * D * 4);
    memcpy(child.v, parent.v, 10 * KV * D * 4);
    child.id = kv_fork(c.p, parent.id, &e);
    kv_truncate(c.p, child.id, 10);
    cache_append(&c, child.id, 6, child.k + 10 * KV * D, child.v + 10 * KV * D);
    seq_data both[2] = {parent, child};
    call cl;
    call_build(&cl, &c, both, 2);
    paged(&cl, &c);
    expect_packed(&cl, both);
    call_free(&cl);
    /* the parent cut to 5 (inside block 1, still shared with the child) and 3 new rows */
    seq_data cut;
    seq_data_init(&cut, &r, 8, 3);
    memcpy(cut.k, parent.k, 5 * KV * D * 4);
    memcpy(cut.v, parent.v, 5 * KV * D * 4);
    cut.id = parent.id;
    const int free_before = kv_free_blocks(c.p);
    kv_truncate(c.p, parent.id, 5);
    assert_int_equal(kv_free_blocks(c.p), free_before + 3); /* blocks 2..4 were the parent's alone */
    cache_append(&c, parent.id, 3, cut.k + 5 * KV * D, cut.v + 5 * KV * D);
    seq_data after[2] = {cut, child};
    call_build(&cl, &c, after, 2);
    paged(&cl, &c);
    expect_packed(&cl, after);
    call_free(&cl);
    seq_data_free(&parent), seq_data_free(&child), seq_data_free(&cut);
    cache_free(&c);
}

static void test_merge(void **state) {
    (void)state;
    rng_stream r;
    rng_stream_init(&r, 34, 0);
    const int rows = 5;
    float *a = randn(&r, rows * D), *b = randn(&r, rows * D), la[5], lb[5];
    for (int i = 0; i < rows; i++) la[i] = rng_stream_normal(&r), lb[i] = rng_stream_normal(&r);
    /* an empty key set changes nothing; merging into an empty one copies */
    float *o = malloc(rows * D * 4), lo[5], empty[5];
    memcpy(o, a, rows * D * 4), memcpy(lo, la, sizeof lo);
    for (int i = 0; i < rows; i++) empty[i] = -INFINITY;
    attention_merge(o, lo, b, empty, rows, D);
    assert_memory_equal(o, a, rows * D * 4);
    assert_memory_equal(lo, la, sizeof lo);
    float *z = calloc(rows * D, 4), lz[5];
    memcpy(lz, empty, sizeof lz);
    attention_merge(z, lz, b, lb, rows, D);
    assert_memory_equal(z, b, rows * D * 4);
    assert_memory_equal(lz, lb, sizeof lz);
    /* the formula, and the order of the two sets does not matter */
    float *ab = malloc(rows * D * 4), *ba = malloc(rows * D * 4), lab[5], lba[5];
    memcpy(ab, a, rows * D * 4), memcpy(lab, la, sizeof lab);
    memcpy(ba, b, rows * D * 4), memcpy(lba, lb, sizeof lba);
    attention_merge(ab, lab, b, lb, rows, D);
    attention_merge(ba, lba, a, la, rows, D);
    for (int i = 0; i < rows; i++) {
        const double l = log(exp(la[i]) + exp(lb[i]));
        assert_true(fabs(lab[i] - l) < 1e-6 && fabs(lba[i] - l) < 1e-6);
        for (int d = 0; d < D; d++) {
            const double want = (exp(la[i]) * a[i * D + d] + exp(lb[i]) * b[i * D + d]) / exp(l);
            assert_true(fabs(ab[i * D + d] - want) < 1e-5 && fabs(ba[i * D + d] - want) < 1e-5);
        }
    }
    free(a), free(b), free(o), free(z), free(ab), free(ba);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paged_equals_packed),
        cmocka_unit_test(test_cascade_equals_plain),
        cmocka_unit_test(test_truncate_then_reappend),
        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
