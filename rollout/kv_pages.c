/* kv_pages.c - reference-counted blocks, block tables and copy on write for the paged KV
 * cache. Every operation is O(blocks it touches); nothing allocates after kv_pages_new. */
#include "kv_pages.h"

#include "rollout.h"

#include <assert.h>
#include <limits.h>
#include <stdint.h>

kv_pages *kv_pages_new(int n_blocks, int block_size, int max_seqs, int max_len, rlvr_err *e) {
    if (n_blocks < 1 || block_size < 1 || max_seqs < 1 || max_len < 1)
        return err_set(e, "kv cache: blocks %d, block size %d, sequences %d, length %d: each must be >= 1", n_blocks,
                       block_size, max_seqs, max_len),
               NULL;
    const int max_blocks = (int)(((long long)max_len + block_size - 1) / block_size);
    /* four int arrays, one of them max_seqs * max_blocks wide */
    const size_t n_ints = 2 * (size_t)n_blocks + 2 * (size_t)max_seqs + (size_t)max_seqs * (size_t)max_blocks;
    if (n_ints > (SIZE_MAX - sizeof(kv_pages)) / sizeof(int))
        return err_set(e, "kv cache: %d sequences of %d blocks is too large", max_seqs, max_blocks), NULL;
    kv_pages *p = rollout_malloc(sizeof *p + n_ints * sizeof(int));
    if (!p) return err_set(e, "kv cache: out of memory for %d blocks and %d sequences", n_blocks, max_seqs), NULL;
    int *w = (int *)(p + 1);
    p->n_blocks = n_blocks, p->block_size = block_size, p->max_seqs = max_seqs, p->max_blocks = max_blocks;
    p->refcount = w, w += n_blocks;
    p->free_list = w, w += n_blocks;
    p->len = w, w += max_seqs;
    p->free_seqs = w, w += max_seqs;
    p->block_table = w;
    /* stacks filled so that block 0 and sequence 0 come out first (readable tests) */
    for (int b = 0; b < n_blocks; b++) p->refcount[b] = 0, p->free_list[b] = n_blocks - 1 - b;
    p->n_free = n_blocks;
    for (int s = 0; s < max_seqs; s++) p->len[s] = -1, p->free_seqs[s] = max_seqs - 1 - s;
    p->n_free_seqs = max_seqs;
    for (size_t i = 0; i < (size_t)max_seqs * max_blocks; i++) p->block_table[i] = -1;
    return p;
}

void kv_pages_free(kv_pages *p) { rollout_free(p); }

static int *table_of(kv_pages *p, int seq) { return p->block_table + (size_t)seq * p->max_blocks; }

static void block_release(kv_pages *p, int b) {
    assert(p->refcount[b] > 0);
    if (--p->refcount[b] == 0) p->free_list[p->n_free++] = b;
}

static int block_take(kv_pages *p) {
    assert(p->n_free > 0);
    int b = p->free_list[--p->n_free];
    p->refcount[b] = 1;
    return b;
}

static int seq_take(kv_pages *p, rlvr_err *e) {
    if (p->n_free_seqs == 0) return err_set(e, "kv cache: all %d sequence ids are in use", p->max_seqs);
    int s = p->free_seqs[--p->n_free_seqs];
    p->len[s] = 0;
    return s;
}

int kv_seq_new(kv_pages *p, rlvr_err *e) { return seq_take(p, e); }

int kv_fork(kv_pages *p, int parent, rlvr_err *e) {
    assert(parent >= 0 && parent < p->max_seqs && p->len[parent] >= 0);
    int child = seq_take(p, e);
    if (child < 0) return -1;
    const int *from = table_of(p, parent);
    int *to = table_of(p, child), nb = kv_seq_blocks(p, parent);
    for (int i = 0; i < nb; i++) to[i] = from[i], p->refcount[from[i]]++;
    p->len[child] = p->len[parent];
    return child;
}

/* 1 when the next slot written by `seq` lies in a block it shares and that already holds
 * some of its positions: that block must be copied before the write. */
static int needs_cow(const kv_pages *p, int seq) {
    const int len = p->len[seq];
    if (len % p->block_size == 0) return 0;
    return p->refcount[kv_block_table(p, seq)[len / p->block_size]] > 1;
}

int kv_append_need(const kv_pages *p, int seq, int n) {
    assert(seq >= 0 && seq < p->max_seqs && p->len[seq] >= 0 && n >= 0);
    if (n == 0) return 0;
    const long long have = kv_seq_blocks(p, seq), bs = p->block_size;
    const long long want = ((long long)p->len[seq] + n + bs - 1) / bs;
    return (int)(want - have) + needs_cow(p, seq);
}

int kv_append(kv_pages *p, int seq, int n, kv_copy *copy, rlvr_err *e) {
    assert(seq >= 0 && seq < p->max_seqs && p->len[seq] >= 0 && n >= 0);
    const long long max_len = (long long)p->max_blocks * p->block_size;
    if (p->len[seq] + (long long)n > max_len)
        return err_set(e, "kv cache: sequence %d: %d + %d positions pass the limit of %lld", seq, p->len[seq], n,
                       max_len);
    const int need = kv_append_need(p, seq, n);
    if (need > p->n_free)
        return err_set(e, "kv cache: sequence %d: %d more positions need %d free blocks, the pool has %d", seq, n,
                       need, p->n_free);
    if (n == 0) return 0;
    int *table = table_of(p, seq), n_copies = 0;
    if (needs_cow(p, seq)) {
        const int i = p->len[seq] / p->block_size, src = table[i], dst = block_take(p);
        block_release(p, src); /* still held by another sequence: count >= 1 after this */
        table[i] = dst;
        if (copy) *copy = (kv_copy){src, dst, p->len[seq] % p->block_size};
        n_copies = 1;
    }
    const int have = kv_seq_blocks(p, seq);
    p->len[seq] += n;
    for (int i = have; i < kv_seq_blocks(p, seq); i++) table[i] = block_take(p);
    return n_copies;
}

void kv_truncate(kv_pages *p, int seq, int len) {
    assert(seq >= 0 && seq < p->max_seqs && len >= 0 && len <= p->len[seq]);
    int *table = table_of(p, seq);
    const int keep = (len + p->block_size - 1) / p->block_size;
    for (int i = kv_seq_blocks(p, seq) - 1; i >= keep; i--) {
        block_release(p, table[i]);
        table[i] = -1;
    }
    p->len[seq] = len;
}

void kv_seq_free(kv_pages *p, int seq) {
    kv_truncate(p, seq, 0);
    p->len[seq] = -1;
    p->free_seqs[p->n_free_seqs++] = seq;
}

void kv_slot_mapping(const kv_pages *p, int seq, int pos0, int n, int *slots) {
    assert(pos0 >= 0 && pos0 + n <= p->len[seq]);
    const int *table = kv_block_table(p, seq), bs = p->block_size;
    for (int i = 0; i < n; i++) {
        const int pos = pos0 + i;
        slots[i] = table[pos / bs] * bs + pos % bs;
    }
}

int kv_blocks_for_bytes(size_t bytes, int layers, int kv_heads, int head_dim, int bytes_per_elem, int block_size) {
    if (layers < 1 || kv_heads < 1 || head_dim < 1 || bytes_per_elem < 1 || block_size < 1) return 0;
    /* bytes of one block, K and V of every layer; a product past 64 bits fits in no memory */
    const uint64_t dims[] = {2, (uint64_t)layers, (uint64_t)kv_heads, (uint64_t)head_dim, (uint64_t)bytes_per_elem,
                             (uint64_t)block_size};
    uint64_t per_block = 1;
    for (size_t i = 0; i < sizeof dims / sizeof *dims; i++) {
        if (per_block > UINT64_MAX / dims[i]) return 0;
        per_block *= dims[i];
    }
    const uint64_t n = (uint64_t)bytes / per_block;
    return n >= (uint64_t)INT_MAX ? INT_MAX : (int)n;
}
