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
