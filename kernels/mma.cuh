// mma.cuh - the tensor-core instructions the bf16 kernels are written with (PTX: mma.sync
// m16n8k16, ldmatrix, cp.async), wrapped one function each so that a kernel reads as
// C and tests/gpu/emu can stand a host version of each in for the assembly.
//
// Fragments of one m16n8k16 product, lane = 4 g + t: A (16 x 16, row-major) holds rows g
// and g + 8 at columns 2t, 2t + 1 (a[0], a[1]) and 2t + 8, 2t + 9 (a[2], a[3]); B (16 x 8)
// holds rows 2t, 2t + 1 (b0) and 2t + 8, 2t + 9 (b1) of column g; the accumulator holds
// rows g (c[0], c[1]) and g + 8 (c[2], c[3]) at columns 2t, 2t + 1. Each register of A and
// B packs two bf16, the lower column (or row of B) in the low half.
#ifndef RLVR_MMA_CUH
#define RLVR_MMA_CUH

#include <stdint.h>

#include "cuda_common.cuh"

// ---- PTX (tests/gpu/emu/mma_emu.h stands in for this section on the host) ----------------------

__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

// 16 bytes global -> shared, asynchronously; zeros instead when !valid (src is not read).
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// Four 8 x 8 bf16 matrices from shared memory: lane 8 i + r gives the address of row r of
// matrix i; r[i] of lane 4 g + t receives row g, columns 2t, 2t + 1 of matrix i (.trans:
// rows 2t, 2t + 1 of column g).
__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t r[4], const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

// c[16x8] += a[16x16] b[16x8], bf16 operands, fp32 accumulators.
__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(const uint32_t *)&v;
}

// ---- end of PTX

// ---- fragments from shared tiles (row stride LD bf16) -----------------------------------------

// A operand: rows r0..r0+15, columns c0..c0+15 of a row-major tile.
template <int LD> __device__ __forceinline__ void load_a(uint32_t a[4], const bf16 *tile, int r0, int c0) {
    const int lane = threadIdx.x % 32, m = lane / 8;
    ldsm_x4(a, tile + (r0 + (m & 1) * 8 + lane % 8) * LD + c0 + (m / 2) * 8);
}

// B operands of two 8-column slices, B[k][n] = tile[n][k] (a tile of K for Q K^T): b[0..1]
// for n0..n0+7, b[2..3] for n0+8..n0+15, k = c0..c0+15.
template <int LD> __device__ __forceinline__ void load_b_rows(uint32_t b[4], const bf16 *tile, int n0, int c0) {
    const int lane = threadIdx.x % 32, m = lane / 8;
    ldsm_x4(b, tile + (n0 + (m / 2) * 8 + lane % 8) * LD + c0 + (m & 1) * 8);
}

// B operands of two 8-column slices, B[k][n] = tile[k][n] (a tile of V for P V),
// transposed as they load: k = k0..k0+15, n = n0..n0+15.
template <int LD> __device__ __forceinline__ void load_b_cols(uint32_t b[4], const bf16 *tile, int k0, int n0) {
    const int lane = threadIdx.x % 32, m = lane / 8;
    ldsm_x4_trans(b, tile + (k0 + (m & 1) * 8 + lane % 8) * LD + n0 + (m / 2) * 8);
}

// The A operand for k-step kk made of accumulators s[2kk], s[2kk + 1] (rounded to bf16).
__device__ __forceinline__ void acc_to_a(uint32_t a[4], const float s0[4], const float s1[4]) {
    a[0] = pack_bf16(s0[0], s0[1]);
    a[1] = pack_bf16(s0[2], s0[3]);
    a[2] = pack_bf16(s1[0], s1[1]);
    a[3] = pack_bf16(s1[2], s1[3]);
}

#endif
