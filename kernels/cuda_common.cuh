// cuda_common.cuh - what the kernels share: loading and storing activations of either
// dtype (fp32, or bf16 widened to fp32 for arithmetic and rounded to nearest even on
// store), and a block-wide sum whose order is fixed by the block's shape alone, so that
// every reduction built on it is bit-identical from run to run.
#ifndef RLVR_CUDA_COMMON_CUH
#define RLVR_CUDA_COMMON_CUH

#include <cuda_bf16.h>

#include "cuda_check.h"
#include "kernels.h"

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float load_f(const float *p) { return *p; }
__device__ __forceinline__ float load_f(const bf16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store_f(float *p, float v) { *p = v; }
__device__ __forceinline__ void store_f(bf16 *p, float v) { *p = __float2bfloat16_rn(v); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// Sum over a block of up to 1024 threads (a multiple of 32): each warp reduces by
// shuffles, then warp 0 reduces the per-warp partials. Every thread gets the total.
// `scratch` holds 33 floats; the function syncs before reusing it, so back-to-back
// calls with one scratch are safe.
__device__ __forceinline__ float block_sum(float v, float *scratch) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads(); // a previous call may still be reading scratch
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < n_warps ? scratch[lane] : 0.0f;
        w = warp_sum(w);
        if (lane == 0) scratch[32] = w;
    }
    __syncthreads();
    return scratch[32];
}

__device__ __forceinline__ float block_max(float v, float *scratch) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < n_warps ? scratch[lane] : -INFINITY;
        w = warp_max(w);
        if (lane == 0) scratch[32] = w;
    }
    __syncthreads();
    return scratch[32];
}

// Launches KERNEL<float> or KERNEL<bf16> by dtype; the kernel's first template argument
// is the activation type. Used inside the launchers, which return -1 on a bad dtype.
#define KERN_DISPATCH(dt, e, CALL_F32, CALL_BF16)                                                    \
    do {                                                                                             \
        if ((dt) == KERN_F32) {                                                                      \
            CALL_F32;                                                                                \
        } else if ((dt) == KERN_BF16) {                                                              \
            CALL_BF16;                                                                               \
        } else {                                                                                     \
            return err_set((e), "%s: unknown dtype %d", __func__, (int)(dt));                        \
        }                                                                                            \
    } while (0)

#endif
