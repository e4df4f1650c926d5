// cuda_emu.h - the subset of CUDA that kernels/sampling.cu uses, on the host, for
// emulate_sampling.sh: each thread of a block is a fiber (emu_runtime.cpp) that runs until
// it reaches a barrier. __syncthreads waits for the block; a warp intrinsic deposits the
// lane's value, waits for the 32 lanes of its warp, reads, and waits again. A kernel whose
// threads reach barriers in different orders deadlocks here (reported, then abort), and
// shared memory is a static (one copy per block, blocks run one after another). Arithmetic
// is the host's: expf is glibc's, so probabilities equal the CPU twin's bit for bit.
#ifndef RLVR_CUDA_EMU_H
#define RLVR_CUDA_EMU_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <algorithm>

#include "kernels.h"
extern "C" {
#include "safetensors.h" // st_bf16_to_f32, st_f32_to_bf16
}

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
using std::max;
using std::min;

struct emu_dim3 {
    unsigned x, y, z;
};
extern int emu_cur, emu_block, emu_nthreads; // the running fiber's thread index, its block, the block size
extern int emu_block_y, emu_block_z;         // the block's other coordinates (0 unless emu_launch sets them)
extern emu_dim3 emu_grid;                    // the grid (emu_launch's; x = 1 for emu_run_block's callers)
extern double emu_dyn_smem[];                // the kernel's dynamic shared memory (EMU_DYN_SMEM_BYTES)
extern uint64_t emu_slots[64][32];           // one value per lane, for the warp intrinsics
#define EMU_DYN_SMEM_BYTES (256 * 1024)
#define threadIdx (emu_dim3{(unsigned)emu_cur, 0, 0})
#define blockIdx (emu_dim3{(unsigned)emu_block, (unsigned)emu_block_y, (unsigned)emu_block_z})
#define blockDim (emu_dim3{(unsigned)emu_nthreads, 0, 0})
#define gridDim emu_grid

void emu_syncthreads(void);
int emu_syncthreads_or(int pred);
void emu_warp_barrier(void);
// Runs fn(arg) on nthreads fibers as block `block` (emu_runtime.cpp).
void emu_run_block(int block, int nthreads, void (*fn)(void *), void *arg);
#define __syncthreads() emu_syncthreads()
#define __syncthreads_or(pred) emu_syncthreads_or(pred)
#define __syncwarp() emu_warp_barrier()

template <class T> static inline uint64_t emu_pack(T v) {
    uint64_t u = 0;
    memcpy(&u, &v, sizeof v);
    return u;
}
template <class T> static inline T emu_unpack(uint64_t u) {
    T v;
    memcpy(&v, &u, sizeof v);
    return v;
}
// Every lane of the warp deposits v; each gets lane src's (its own when src < 0).
template <class T> static inline T emu_exchange(T v, int src) {
    const int lane = emu_cur & 31, w = emu_cur >> 5;
    emu_slots[w][lane] = emu_pack(v);
    emu_warp_barrier();
    T r = src >= 0 ? emu_unpack<T>(emu_slots[w][src]) : v;
    emu_warp_barrier();
    return r;
}
template <class T> static inline T __shfl_xor_sync(unsigned, T v, int o) { return emu_exchange(v, (emu_cur & 31) ^ o); }
template <class T> static inline T __shfl_up_sync(unsigned, T v, int d) {
    const int lane = emu_cur & 31;
    return emu_exchange(v, lane >= d ? lane - d : -1);
}
template <class T> static inline T __shfl_sync(unsigned, T v, int src) { return emu_exchange(v, src); }
// Bit l set when lane l's value satisfies `same` against this lane's.
static inline unsigned emu_lanes_where(uint64_t mine, int equal) {
    const int lane = emu_cur & 31, w = emu_cur >> 5;
    emu_slots[w][lane] = mine;
    emu_warp_barrier();
    unsigned r = 0;
    for (int l = 0; l < 32; l++) r |= (unsigned)(equal ? emu_slots[w][l] == mine : emu_slots[w][l] != 0) << l;
    emu_warp_barrier();
    return r;
}
static inline unsigned __ballot_sync(unsigned, int pred) { return emu_lanes_where(pred != 0, 0); }
static inline unsigned __match_any_sync(unsigned, int v) { return emu_lanes_where((uint32_t)v, 1); }
static inline int __ffs(unsigned x) { return ffs((int)x); }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __clz(unsigned x) { return x ? __builtin_clz(x) : 32; }
static inline uint32_t __umulhi(uint32_t a, uint32_t b) { return (uint32_t)(((uint64_t)a * b) >> 32); }
static inline unsigned atomicAdd(unsigned *p, unsigned v) { // fibers never interleave within it
    unsigned old = *p;
    *p += v;
    return old;
}
template <class T> static inline T __ldg(const T *p) { return *p; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline uint32_t __float_as_uint(float f) { return emu_pack(f) & 0xffffffffu; }
static inline float __uint_as_float(uint32_t u) { return emu_unpack<float>(u); }


// What the kernels host_cu.py converts add: dim3 and launches of a whole grid, bf16 (round
// to nearest even, as __float2bfloat16_rn) and its pairs, float4, and the runtime calls
// their launchers make, which cannot fail here.
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef void *cudaStream_t;
typedef int cudaError_t;
#define cudaSuccess 0
#define cudaFuncAttributeMaxDynamicSharedMemorySize 0
template <class F> static inline cudaError_t cudaFuncSetAttribute(F, int, int) { return cudaSuccess; }
static inline cudaError_t cudaGetLastError(void) { return cudaSuccess; }
#define cudaDevAttrMultiProcessorCount 16
static inline cudaError_t cudaGetDevice(int *d) { return *d = 0, cudaSuccess; }
static inline cudaError_t cudaDeviceGetAttribute(int *v, int, int) { return *v = 132, cudaSuccess; } // an H100's SMs
#define CUDA_CHECK(call, e)                                                                                            \
    do {                                                                                                               \
        if ((call) != cudaSuccess) return err_set((e), "%s failed", #call);                                           \
    } while (0)
#define __align__(n) alignas(n)
#define __shared__

// Every block of the grid, one after another, each on `threads` fibers running body().
template <class F> static inline void emu_launch(dim3 grid, unsigned threads, size_t smem, cudaStream_t, F body) {
    if (smem > EMU_DYN_SMEM_BYTES) {
        fprintf(stderr, "emu: %zu bytes of dynamic shared memory (at most %d)\n", smem, EMU_DYN_SMEM_BYTES);
        abort();
    }
    emu_grid = emu_dim3{grid.x, grid.y, grid.z};
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                emu_block_y = (int)y, emu_block_z = (int)z;
                emu_run_block((int)x, (int)threads, [](void *f) { (*(F *)f)(); }, &body);
            }
    emu_block_y = emu_block_z = 0;
}

struct __nv_bfloat16 {
    uint16_t bits;
};
// the conversions of the checkpoint reader (core/safetensors.c), which round the same way
static inline float __bfloat162float(__nv_bfloat16 h) { return st_bf16_to_f32(h.bits); }
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16{st_f32_to_bf16(f)}; }
struct __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
static inline float __low2float(__nv_bfloat162 v) { return __bfloat162float(v.x); }
static inline float __high2float(__nv_bfloat162 v) { return __bfloat162float(v.y); }
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
static inline float2 make_float2(float x, float y) { return float2{x, y}; }
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};

#endif
