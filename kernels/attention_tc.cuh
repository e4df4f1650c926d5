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

// The rollout engine's paged forward in attn_tc_forward's order (kern_paged_attention_tc_forward,
// whose checks have passed: H / KV <= 16, D 64 or 128, 16-byte aligned tensors).
int attn_tc_paged_forward(bf16 *out, float *lse, const bf16 *q, const bf16 *k_cache, const bf16 *v_cache,
                          const int *block_tables, const int *cu_q, const int *seq_lens, int n_seqs, int max_blocks,
                          int T, int max_q, int n_blocks, int bs_log2, int H, int KV, int D, cudaStream_t s,
                          rlvr_err *e);

// delta[T, H] = rowsum(dout * out) must be computed already; dkdv_scratch holds
// attn_tc_scratch_bytes(T, H, KV, D) bytes (NULL when that is 0).
int attn_tc_backward(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                     const float *lse, const float *delta, float *dkdv_scratch, const int *cu_seqlens, int n_seqs,
                     int max_seqlen, int T, int H, int KV, int D, cudaStream_t s, rlvr_err *e);

#endif
