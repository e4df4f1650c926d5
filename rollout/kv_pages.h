/* kv_pages.h - the bookkeeping of a paged KV cache: which block of the pool holds which
 * token of which sequence. Indices only; the K/V tensors live on the device, laid out
 * [n_blocks, block_size, KV, D] per layer, and are read and written through what this
 * module hands out (block tables, slot mappings, copy ops).
 *
 * A pool of n_blocks blocks of block_size token slots each. A sequence owns a block table
 * (the blocks holding its positions 0, 1, .. in order: position p lives in block
 * table[p / block_size] at offset p % block_size) and a length. Blocks are shared by
 * reference count: kv_fork gives a child every block of its parent without copying, which
 * is how the G samples of a GRPO group read the K/V of their one prefilled prompt.
 *
 * Invariants (checked by tests/unit/test_kv_pages.c): a block's reference count is the
 * number of block-table entries naming it; a block is on the free list iff its count is 0;
 * a sequence only ever writes into blocks whose count is 1 (kv_append copies a shared
 * last block first, "copy on write"). */
#ifndef RLVR_KV_PAGES_H
#define RLVR_KV_PAGES_H

#include <stddef.h>

#include "err.h"

/* A block copy the device must run before it writes the step's new K/V: slots
 * 0 .. n_tokens-1 of block src are copied into the same slots of block dst, every layer,
 * K and V. */
typedef struct kv_copy {
    int src, dst, n_tokens;
} kv_copy;

typedef struct kv_pages {
    int n_blocks, block_size;
    int max_seqs;       /* sequence ids are 0 .. max_seqs-1 */
    int max_blocks;     /* block-table width: a sequence holds at most max_blocks * block_size positions */
    int *refcount;      /* [n_blocks] block-table entries naming each block */
    int *free_list;     /* [n_blocks] free block ids, a stack: free_list[0 .. n_free) */
    int n_free;
    int *block_table;   /* [max_seqs, max_blocks] row s: the blocks of sequence s, -1 past its end */
    int *len;           /* [max_seqs] positions reserved per sequence; -1: the id is not in use */
    int *free_seqs;     /* [max_seqs] unused sequence ids, a stack: free_seqs[0 .. n_free_seqs) */
    int n_free_seqs;
} kv_pages;

/* A pool of n_blocks blocks of block_size slots, for up to max_seqs sequences of at most
 * max_len positions each (rounded up to whole blocks: max_blocks * block_size). One
 * allocation; kv_pages_free releases it. */
kv_pages *kv_pages_new(int n_blocks, int block_size, int max_seqs, int max_len, rlvr_err *e);
void kv_pages_free(kv_pages *p);

/* A new empty sequence: its id, or -1 when all max_seqs ids are in use. */
int kv_seq_new(kv_pages *p, rlvr_err *e);

/* A new sequence sharing every block of `parent` (each block's count + 1) with the same
 * length; no K/V moves. Its id, or -1 when all ids are in use. */
int kv_fork(kv_pages *p, int parent, rlvr_err *e);

/* Free blocks kv_append(p, seq, n) would take: the blocks past the sequence's last one
 * that positions len .. len+n-1 reach, plus one when the last block is shared and only
 * partly filled (it is copied first). */
int kv_append_need(const kv_pages *p, int seq, int n);

/* Reserves slots for positions len .. len+n-1 of `seq` (the device writes their K/V through
 * kv_slot_mapping) and sets the length to len + n. When the last block is shared and only
 * partly filled, it is replaced by a fresh block and *copy (when not NULL) receives the
 * copy the device must run first; returns the number of copies (0 or 1). Returns -1 and
 * changes nothing when the pool has fewer free blocks than kv_append_need (the message
 * says how many it needs and has) or the length would pass max_len. */
int kv_append(kv_pages *p, int seq, int n, kv_copy *copy, rlvr_err *e);

/* Shortens `seq` to len <= its length: blocks wholly past len go back to the pool (count
 * - 1; free at 0), O(blocks dropped). A partly kept last block stays as it is; the next
 * kv_append overwrites its stale slots, after a copy if it is still shared. */
void kv_truncate(kv_pages *p, int seq, int len);

/* Drops every block of `seq` and returns its id to the unused ones. */
void kv_seq_free(kv_pages *p, int seq);

/* Writes slots[i] = block * block_size + offset of position pos0 + i, i < n (all below the
 * sequence's length): the flat slot index the device writes K/V row pos0 + i to. */
void kv_slot_mapping(const kv_pages *p, int seq, int pos0, int n, int *slots);

static inline int kv_free_blocks(const kv_pages *p) { return p->n_free; }
static inline int kv_seq_len(const kv_pages *p, int seq) { return p->len[seq]; }
/* The blocks of `seq`: ceil(len / block_size) entries of a row max_blocks wide. */
static inline const int *kv_block_table(const kv_pages *p, int seq) {
    return p->block_table + (size_t)seq * p->max_blocks;
}
static inline int kv_seq_blocks(const kv_pages *p, int seq) {
    return (p->len[seq] + p->block_size - 1) / p->block_size;
}
static inline int kv_refcount(const kv_pages *p, int block) { return p->refcount[block]; }

/* Blocks (K and V of every layer, block_size tokens each) that fit in `bytes`:
 * bytes / (2 * layers * kv_heads * head_dim * bytes_per_elem * block_size), capped at
 * INT_MAX; 0 when any size is below 1 or one block alone would pass 64 bits. */
int kv_blocks_for_bytes(size_t bytes, int layers, int kv_heads, int head_dim, int bytes_per_elem, int block_size);

#endif
