// cuda_common.cuh - what the kernels share: loading and storing activations of either
// dtype (fp32, or bf16 widened to fp32 for arithmetic and rounded to nearest even on
// store), and a block-wide sum whose order is fixed by the block's shape alone, so that
// every reduction built on it is bit-identical from run to run.
#ifndef RLVR_CUDA_COMMON_CUH
#define RLVR_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <stdint.h>

#include "cuda_check.h"
#include "kernels.h"

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float load_f(const float *p) { return *p; }
__device__ __forceinline__ float load_f(const bf16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store_f(float *p, float v) { *p = v; }
__device__ __forceinline__ void store_f(bf16 *p, float v) { *p = __float2bfloat16_rn(v); }

// v rounded to T and widened back: what a store to T and a reload would give.
__device__ __forceinline__ float round_as(float v, const float *) { return v; }
__device__ __forceinline__ float round_as(float v, const bf16 *) { return __bfloat162float(__float2bfloat16_rn(v)); }

// Sixteen bytes of T (8 bf16 or 4 fp32), aligned: one 128-bit load or store. Kernels bound
// by memory take their operands this way; 2-byte loads leave most of each transaction unused.
template <typename T> struct __align__(16) vec16 {
    enum { N = 16 / sizeof(T) };
    T v[N];
};

// W consecutive elements of T at p as fp32, and back: W = 1 is a plain element; otherwise
// W * sizeof(T) is a whole number of 16-byte vectors and p is 16-byte aligned.
template <typename T, int W> __device__ __forceinline__ void load_w(const T *p, float *v) {
    if constexpr (W == 1) {
        v[0] = load_f(p);
    } else {
        static_assert((W * sizeof(T)) % 16 == 0, "whole 16-byte vectors");
        constexpr int N = vec16<T>::N;
#pragma unroll
        for (int k = 0; k < W / N; k++) {
            const vec16<T> x = ((const vec16<T> *)p)[k];
#pragma unroll
            for (int j = 0; j < N; j++) v[k * N + j] = load_f(&x.v[j]);
        }
    }
}

template <typename T, int W> __device__ __forceinline__ void store_w(T *p, const float *v) {
    if constexpr (W == 1) {
        store_f(p, v[0]);
    } else {
        static_assert((W * sizeof(T)) % 16 == 0, "whole 16-byte vectors");
        constexpr int N = vec16<T>::N;
#pragma unroll
        for (int k = 0; k < W / N; k++) {
            vec16<T> x;
#pragma unroll
            for (int j = 0; j < N; j++) store_f(&x.v[j], v[k * N + j]);
            ((vec16<T> *)p)[k] = x;
        }
    }
}

// Whether every pointer is 16-byte aligned (host side: picks the vector path).
static inline bool aligned16(const void *const *p, int n) {
    for (int i = 0; i < n; i++)
        if ((uintptr_t)p[i] % 16) return false;
    return true;
}

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
