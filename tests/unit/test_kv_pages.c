/* test_kv_pages.c - the paged KV cache's bookkeeping (rollout/kv_pages.c): fork shares
 * blocks, copy on write of a shared partial block, appends that fail change nothing,
 * truncation returns blocks, and random operation sequences checked against a model that
 * records which token each position of each sequence holds. */
#include "testing.h"

#include "kv_pages.h"
#include "rng.h"

static void test_fork_shares_and_copy_on_write(void **state) {
    (void)state;
    rlvr_err e;
    kv_pages *p = kv_pages_new(16, 4, 8, 64, &e);
    assert_non_null(p);
    int a = kv_seq_new(p, &e);
    assert_int_equal(a, 0);
    kv_copy c = {-1, -1, -1};
    assert_int_equal(kv_append(p, a, 10, &c, &e), 0); /* 3 blocks, the last holds 2 of 4 */
    assert_int_equal(kv_seq_blocks(p, a), 3);
    assert_int_equal(kv_free_blocks(p), 13);
    int kids[3];
    for (int i = 0; i < 3; i++) kids[i] = kv_fork(p, a, &e);
    assert_int_equal(kv_free_blocks(p), 13); /* no block taken: shared */
    const int *ta = kv_block_table(p, a);
    for (int i = 0; i < 3; i++) assert_int_equal(kv_refcount(p, ta[i]), 4);
    for (int k = 0; k < 3; k++) assert_memory_equal(kv_block_table(p, kids[k]), ta, 3 * sizeof(int));
    /* a child writes into the shared partial block: it is copied first, the parent keeps it */
    const int shared_last = ta[2];
    assert_int_equal(kv_append_need(p, kids[0], 1), 1);
    assert_int_equal(kv_append(p, kids[0], 1, &c, &e), 1);
    assert_int_equal(c.src, shared_last);
    assert_int_equal(c.n_tokens, 2);
    assert_int_not_equal(c.dst, shared_last);
    assert_int_equal(kv_block_table(p, kids[0])[2], c.dst);
    assert_int_equal(kv_refcount(p, c.dst), 1);
    assert_int_equal(kv_refcount(p, shared_last), 3);
    assert_int_equal(kv_refcount(p, ta[0]), 4); /* full blocks stay shared */
    /* two more holders copy; the last one left writes in place */
    assert_int_equal(kv_append(p, kids[1], 2, &c, &e), 1);
    assert_int_equal(kv_append(p, kids[2], 3, &c, &e), 1); /* 10 + 3 = 13: copy, then a 4th block */
    assert_int_equal(kv_seq_blocks(p, kids[2]), 4);
    assert_int_equal(kv_refcount(p, shared_last), 1);
    assert_int_equal(kv_append_need(p, a, 2), 0);
    assert_int_equal(kv_append(p, a, 2, &c, &e), 0);
    assert_int_equal(kv_block_table(p, a)[2], shared_last);
    /* a fork at a block boundary appends into a new block, no copy */
    int d = kv_fork(p, a, &e); /* a: 12 positions, 3 full blocks */
    assert_int_equal(kv_append_need(p, d, 1), 1);
    assert_int_equal(kv_append(p, d, 1, &c, &e), 0);
    assert_int_equal(kv_refcount(p, shared_last), 2);
    /* slot mapping: position -> block * block_size + offset */
    int slots[3];
    kv_slot_mapping(p, d, 11, 2, slots);
    assert_int_equal(slots[0], shared_last * 4 + 3);
    assert_int_equal(slots[1], kv_block_table(p, d)[3] * 4 + 0);
    kv_seq_free(p, a), kv_seq_free(p, d);
    for (int k = 0; k < 3; k++) kv_seq_free(p, kids[k]);
    assert_int_equal(kv_free_blocks(p), 16);
    kv_pages_free(p);
}

static void test_append_fails_cleanly(void **state) {
    (void)state;
    rlvr_err e;
    kv_pages *p = kv_pages_new(5, 4, 2, 40, &e);
    int a = kv_seq_new(p, &e), b = kv_fork(p, a, &e);
    assert_int_equal(kv_append(p, a, 6, NULL, &e), 0); /* 2 blocks */
    kv_seq_free(p, b);
    b = kv_fork(p, a, &e);
    int before_table[10], before_len = kv_seq_len(p, b);
    memcpy(before_table, kv_block_table(p, b), sizeof before_table);
    /* b at 6 shares a half-full block: 1 copy + ceil(20/4) - 2 = 4 blocks, 3 free */
    assert_int_equal(kv_append_need(p, b, 14), 4);
    assert_int_equal(kv_append(p, b, 14, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "need 4 free blocks, the pool has 3"));
    assert_int_equal(kv_seq_len(p, b), before_len);
    assert_memory_equal(kv_block_table(p, b), before_table, sizeof before_table);
    assert_int_equal(kv_free_blocks(p), 3);
    assert_int_equal(kv_refcount(p, kv_block_table(p, a)[1]), 2);
    /* past the length limit */
    assert_int_equal(kv_append(p, a, 35, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "pass the limit of 40"));
    /* all ids in use */
    assert_int_equal(kv_seq_new(p, &e), -1);
    assert_non_null(strstr(e.msg, "all 2 sequence ids"));
    assert_int_equal(kv_fork(p, a, &e), -1);
    kv_seq_free(p, a), kv_seq_free(p, b);
    assert_int_equal(kv_free_blocks(p), 5);
    kv_pages_free(p);
    assert_null(kv_pages_new(0, 16, 1, 1, &e));
    assert_non_null(strstr(e.msg, "must be >= 1"));
}

static void test_truncate_returns_blocks(void **state) {
    (void)state;
    rlvr_err e;
    kv_pages *p = kv_pages_new(8, 4, 2, 32, &e);
    int a = kv_seq_new(p, &e);
    kv_append(p, a, 17, NULL, &e); /* 5 blocks */
    assert_int_equal(kv_free_blocks(p), 3);
    int b = kv_fork(p, a, &e);
    kv_truncate(p, a, 9); /* keeps 3 blocks; the 2 dropped are still b's */
    assert_int_equal(kv_free_blocks(p), 3);
    assert_int_equal(kv_block_table(p, a)[3], -1);
    kv_truncate(p, b, 8); /* b drops 3 blocks: 2 of them now free */
    assert_int_equal(kv_free_blocks(p), 5);
    /* a's kept partial block (positions 8..) is no longer shared: appending writes in place */
    assert_int_equal(kv_append_need(p, a, 3), 0);
    /* b's truncation to a block boundary keeps no partial block */
    assert_int_equal(kv_append_need(p, b, 1), 1);
    kv_truncate(p, a, 0);
    assert_int_equal(kv_seq_len(p, a), 0);
    kv_seq_free(p, a), kv_seq_free(p, b);
    assert_int_equal(kv_free_blocks(p), 8);
    kv_pages_free(p);
}

static void test_blocks_for_bytes(void **state) {
    (void)state;
    /* Qwen2.5-0.5B: 24 layers, 2 kv heads of 64, bf16, 16-token blocks: 196,608 bytes a block */
    assert_int_equal(kv_blocks_for_bytes((size_t)1 << 30, 24, 2, 64, 2, 16), 5461);
    assert_int_equal(kv_blocks_for_bytes(196608, 24, 2, 64, 2, 16), 1);
    assert_int_equal(kv_blocks_for_bytes(196607, 24, 2, 64, 2, 16), 0);
    assert_int_equal(kv_blocks_for_bytes(SIZE_MAX, 1, 1, 1, 1, 1), INT32_MAX);
    assert_int_equal(kv_blocks_for_bytes(1000, 0, 1, 1, 1, 1), 0);
    assert_int_equal(kv_blocks_for_bytes(SIZE_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX), 0);
}

/* ---- random operations against a model ------------------------------------------------ */

enum { NB = 24, BS = 4, NS = 6, MAXLEN = 40 };

typedef struct world {
    kv_pages *p;
    int mem[NB * BS];        /* the "device": a tag per slot */
    int want[NS][MAXLEN];    /* the model: the tag each position of each live sequence holds */
    int live[NS];
    int next_tag;
} world;

/* Every invariant of kv_pages.h, and every live position reads back its tag. */
static void check(const world *w) {
    const kv_pages *p = w->p;
    int count[NB] = {0}, on_free[NB] = {0};
    for (int s = 0; s < NS; s++) {
        if (!w->live[s]) {
            assert_int_equal(kv_seq_len(p, s), -1);
            continue;
        }
        const int *t = kv_block_table(p, s), nb = kv_seq_blocks(p, s);
        for (int i = 0; i < p->max_blocks; i++) {
            if (i < nb) {
                assert_true(t[i] >= 0 && t[i] < NB);
                count[t[i]]++;
            } else
                assert_int_equal(t[i], -1);
        }
        for (int pos = 0; pos < kv_seq_len(p, s); pos++) {
            int slot;
            kv_slot_mapping(p, s, pos, 1, &slot);
            assert_int_equal(w->mem[slot], w->want[s][pos]);
        }
    }
    for (int i = 0; i < kv_free_blocks(p); i++) {
        int b = p->free_list[i];
        assert_int_equal(on_free[b], 0);
        on_free[b] = 1;
    }
    for (int b = 0; b < NB; b++) {
        assert_int_equal(kv_refcount(p, b), count[b]);
        assert_int_equal(on_free[b], count[b] == 0);
    }
}

static void do_append(world *w, int s, int n) {
    kv_pages *p = w->p;
    rlvr_err e;
    const int len = kv_seq_len(p, s), need = kv_append_need(p, s, n), free_before = kv_free_blocks(p);
    kv_copy c;
    int r = kv_append(p, s, n, &c, &e);
    if (need > free_before || len + n > MAXLEN) {
        assert_int_equal(r, -1);
        assert_int_equal(kv_seq_len(p, s), len);
        assert_int_equal(kv_free_blocks(p), free_before);
        return;
    }
    assert_true(r == 0 || r == 1);
    assert_int_equal(kv_free_blocks(p), free_before - need);
    if (r == 1) {
        assert_int_equal(c.n_tokens, len % BS);
        memcpy(w->mem + c.dst * BS, w->mem + c.src * BS, (size_t)c.n_tokens * sizeof(int));
    }
    const int *t = kv_block_table(p, s);
    for (int pos = len; pos < len + n; pos++) {
        int slot;
        kv_slot_mapping(p, s, pos, 1, &slot);
        assert_int_equal(kv_refcount(p, t[pos / BS]), 1); /* only ever write an unshared block */
        w->mem[slot] = w->want[s][pos] = ++w->next_tag;
    }
}

static void test_random_operations_keep_invariants(void **state) {
    (void)state;
    rng_stream r;
    rng_stream_init(&r, 2024, 0);
    for (int round = 0; round < 40; round++) {
        world w = {0};
        rlvr_err e;
        w.p = kv_pages_new(NB, BS, NS, MAXLEN, &e);
        assert_non_null(w.p);
        for (int op = 0; op < 300; op++) {
            const int s = (int)rng_stream_below(&r, NS), kind = (int)rng_stream_below(&r, 10);
            if (!w.live[s]) {
                if (kind < 5) continue;
                /* a fork of some live sequence, else a new one */
                int parent = -1;
                for (int i = 0; i < NS && parent < 0; i++)
                    if (w.live[(s + i) % NS] && kind < 8) parent = (s + i) % NS;
                int id = parent >= 0 ? kv_fork(w.p, parent, &e) : kv_seq_new(w.p, &e);
                assert_true(id >= 0);
                w.live[id] = 1;
                if (parent >= 0) memcpy(w.want[id], w.want[parent], sizeof w.want[id]);
            } else if (kind < 6) {
                do_append(&w, s, (int)rng_stream_below(&r, 9));
            } else if (kind < 9) {
                int len = kv_seq_len(w.p, s);
                kv_truncate(w.p, s, (int)rng_stream_below(&r, (uint64_t)len + 1));
            } else {
                kv_seq_free(w.p, s);
                w.live[s] = 0;
            }
            check(&w);
        }
        for (int s = 0; s < NS; s++)
            if (w.live[s]) kv_seq_free(w.p, s);
        assert_int_equal(kv_free_blocks(w.p), NB); /* no leak */
        kv_pages_free(w.p);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_shares_and_copy_on_write),
        cmocka_unit_test(test_append_fails_cleanly),
        cmocka_unit_test(test_truncate_returns_blocks),
        cmocka_unit_test(test_blocks_for_bytes),
        cmocka_unit_test(test_random_operations_keep_invariants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
