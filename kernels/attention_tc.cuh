// attention_tc.cuh - the tensor-core attention kernels (attention_tc.cu) that
// attention.cu's launchers hand bf16 work with head size 64 or 128 to. Same layouts and
// meaning as kern_attention_forward / kern_attention_backward (kernels.h).
#ifndef RLVR_ATTENTION_TC_CUH
#define RLVR_ATTENTION_TC_CUH

#include <cuda_runtime.h>

#include "cuda_common.cuh"

// True when D is 64 or 128 and every pointer is 16-byte aligned (cp.async's chunks).
bool attn_tc_supported(int D, const void *const *ptrs, int n_ptrs);

// fp32 scratch the backward needs for grouped-query heads (per-query-head dK, dV).
size_t attn_tc_scratch_bytes(int T, int H, int KV, int D);

int attn_tc_forward(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, const int *cu_seqlens,
                    int n_seqs, int max_seqlen, int H, int KV, int D, cudaStream_t s, rlvr_err *e);

// The rollout engine's attention over a paged KV cache on the tensor cores (kernels.h's
// kern_paged_batch layout; paged_attention.cu's launchers check the arguments: H / KV <= 16,
// D 64 or 128, 16-byte aligned tensors). Forms:
//   TC_PAGED_EXACT   each row against [0, pos + 1) in attn_tc_forward's order, into out, lse
//                    (kern_paged_attention_tc_forward);
//   TC_PAGED_SPLIT   each row's keys in n_chunks chunks of split_len from 0;
//   TC_PAGED_PREFIX  cascade phase 1: a group's rows against its shared prefix, in chunks;
//   TC_PAGED_SUFFIX  cascade phase 2: each row past its group's prefix, in chunks;
// the last three write chunk c's partial (fp32 out, lse; empty: 0, -inf) as part part0 + c
// of part_out [parts][T * H][D], part_lse [parts][T * H].
enum { TC_PAGED_EXACT = 0, TC_PAGED_SPLIT = 1, TC_PAGED_PREFIX = 2, TC_PAGED_SUFFIX = 3 };

// Where one unit of a paged attention launch stands (both paged kernels read it so): its
// rows [r_lo, r_hi), its block table, the position of its first row (causal units) and
// its keys' bounds [lo, hi) - for a group (prefix) its shared prefix [0, prefix), for a
// sequence past its group's prefix (suffix) [prefix, INT_MAX), else [0, INT_MAX). False
// when the unit names no rows (its blocks leave); bad when its indices are inconsistent.
enum { PAGED_WHOLE, PAGED_PREFIX, PAGED_SUFFIX };
struct paged_unit {
    int r_lo, r_hi, pos0, lo, hi;
    const int *table;
    bool bad;
};
__device__ __forceinline__ bool paged_unit_at(paged_unit &u, int kind, int unit, const int *cu_q, const int *seq_lens,
                                              const int *block_tables, const int *cu_groups,
                                              const int *prefix_blocks, int n_seqs, int n_groups, int T,
                                              int max_blocks, int bs_log2) {
    u.pos0 = 0, u.lo = 0, u.hi = 0x7fffffff, u.bad = false;
    if (kind == PAGED_PREFIX) {
        const int s0 = cu_groups[unit], s1 = cu_groups[unit + 1];
        if (s0 < 0 || s1 <= s0 || s1 > n_seqs) return false; // an empty group, or none a block can name
        u.r_lo = cu_q[s0], u.r_hi = cu_q[s1];
        if (u.r_lo < 0 || u.r_hi < u.r_lo || u.r_hi > T) return false;
        const int pb = prefix_blocks[unit];
        u.bad = pb < 0 || pb > max_blocks;
        u.hi = u.bad ? 0 : pb << bs_log2;
        u.table = block_tables + (size_t)s0 * max_blocks;
        return true;
    }
    u.r_lo = cu_q[unit], u.r_hi = cu_q[unit + 1];
    if (u.r_lo < 0 || u.r_hi < u.r_lo || u.r_hi > T) return false;
    const int len = seq_lens[unit];
    u.pos0 = len - (u.r_hi - u.r_lo);
    u.bad = u.pos0 < 0 || len > (long long)max_blocks << bs_log2;
    u.table = block_tables + (size_t)unit * max_blocks;
    if (kind != PAGED_SUFFIX) return true;
    if (unit < cu_groups[0] || unit >= cu_groups[n_groups]) {
        u.bad = true;
        return true;
    }
    int a = 0, b = n_groups; // the group holding the sequence: the last a with cu_groups[a] <= unit
    while (b - a > 1) {
        const int mid = (a + b) / 2;
        if (cu_groups[mid] <= unit) a = mid;
        else b = mid;
    }
    const int pb = prefix_blocks[a];
    if (pb < 0 || pb > max_blocks) u.bad = true;
    else u.lo = pb << bs_log2;
    u.bad = u.bad || u.pos0 < u.lo; // every query lies past the shared prefix
    return true;
}
struct tc_paged {
    int form;
    bf16 *out;
    float *lse;
    float *part_out, *part_lse;
    int part0, n_chunks, split_len;
    const bf16 *q, *k_cache, *v_cache;
    const int *block_tables, *cu_q, *seq_lens, *cu_groups, *prefix_blocks;
    int n_units;  // sequences, or groups for TC_PAGED_PREFIX
    int max_rows; // rows of the largest unit
    int n_seqs, n_groups, max_blocks, T, n_blocks, bs_log2, H, KV, D;
};
int attn_tc_paged(const tc_paged *p, cudaStream_t s, rlvr_err *e);

// delta[T, H] = rowsum(dout * out) must be computed already; dkdv_scratch holds
// attn_tc_scratch_bytes(T, H, KV, D) bytes (NULL when that is 0).
int attn_tc_backward(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                     const float *lse, const float *delta, float *dkdv_scratch, const int *cu_seqlens, int n_seqs,
                     int max_seqlen, int T, int H, int KV, int D, cudaStream_t s, rlvr_err *e);

#endif
