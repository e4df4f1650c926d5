// mma_emu.h - kernels/mma.cuh's PTX section on the host, for kernels emulated on the
// fibers of cuda_emu.h (host_cu.py puts it in that section's place). ldmatrix and
// mma.sync are warp collectives here as on the GPU: each lane deposits its operands,
// the warp waits, each lane reads what the instruction's fragment layout (mma.cuh) gives
// it, the warp waits again. A product sums its 16 terms in increasing k and adds them to
// the accumulator: exact products (bf16 x bf16 fits in fp32), but not the tensor core's
// rounding, so emulated results match the GPU's to fp32 rounding, not bit for bit, while
// every emulated kernel that makes the same products in the same order agrees with every
// other bit for bit - which is what the batch-invariance tests check.
// cp.async copies at once (nothing is in flight, so waits are no-ops): a kernel that read a
// buffer before waiting for it would pass here and fail on the GPU.
#ifndef RLVR_MMA_EMU_H
#define RLVR_MMA_EMU_H

static uint32_t emu_frag[64][32][6]; // per warp and lane: a[4], b0, b1

static inline void cp_async16(void *dst, const void *src, bool valid) {
    if (valid)
        memcpy(dst, src, 16);
    else
        memset(dst, 0, 16);
}
static inline void cp_async_commit() {}
template <int N> static inline void cp_async_wait() {}

static inline uint16_t emu_bits(const bf16 *p) { return p->bits; }

// trans = 0: r[i] of lane 4g + t is row g, columns 2t, 2t + 1 of matrix i (rows addressed
// by lanes 8i .. 8i + 7); trans = 1: rows 2t, 2t + 1 of column g.
static inline void emu_ldmatrix(uint32_t r[4], const bf16 *p, int trans) {
    const int lane = emu_cur & 31, w = emu_cur >> 5, g = lane / 4, t = lane % 4;
    emu_slots[w][lane] = (uint64_t)(uintptr_t)p;
    emu_warp_barrier();
    for (int i = 0; i < 4; i++) {
        const bf16 *row_g = (const bf16 *)(uintptr_t)emu_slots[w][8 * i + g];
        const bf16 *row_a = (const bf16 *)(uintptr_t)emu_slots[w][8 * i + 2 * t];
        const bf16 *row_b = (const bf16 *)(uintptr_t)emu_slots[w][8 * i + 2 * t + 1];
        r[i] = trans ? emu_bits(row_a + g) | (uint32_t)emu_bits(row_b + g) << 16
                     : emu_bits(row_g + 2 * t) | (uint32_t)emu_bits(row_g + 2 * t + 1) << 16;
    }
    emu_warp_barrier();
}
static inline void ldsm_x4(uint32_t r[4], const bf16 *p) { emu_ldmatrix(r, p, 0); }
static inline void ldsm_x4_trans(uint32_t r[4], const bf16 *p) { emu_ldmatrix(r, p, 1); }

static inline float emu_half(uint32_t reg, int hi) { return st_bf16_to_f32((uint16_t)(hi ? reg >> 16 : reg)); }

// c[16x8] += a[16x16] b[16x8] with mma.sync m16n8k16's fragments (mma.cuh).
static inline void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    const int lane = emu_cur & 31, w = emu_cur >> 5, g = lane / 4, t = lane % 4;
    uint32_t *mine = emu_frag[w][lane];
    memcpy(mine, a, 4 * sizeof(uint32_t));
    mine[4] = b0, mine[5] = b1;
    emu_warp_barrier();
    float d[4];
    for (int o = 0; o < 4; o++) {
        const int row = g + 8 * (o / 2), col = 2 * t + o % 2;
        float sum = 0.0f;
        for (int k = 0; k < 16; k++) {
            // A[row][k]: lane 4 (row % 8) + (k % 8) / 2, register (row >= 8) + 2 (k >= 8), half k % 2
            const uint32_t *fa = emu_frag[w][4 * (row % 8) + (k % 8) / 2];
            const float av = emu_half(fa[(row >= 8) + 2 * (k >= 8)], k % 2);
            // B[k][col]: lane 4 col + (k % 8) / 2, b0 for k < 8 else b1, half k % 2
            const uint32_t *fb = emu_frag[w][4 * col + (k % 8) / 2];
            sum += av * emu_half(fb[4 + (k >= 8)], k % 2);
        }
        d[o] = c[o] + sum;
    }
    emu_warp_barrier();
    memcpy(c, d, sizeof d);
}

static inline uint32_t pack_bf16(float lo, float hi) {
    return st_f32_to_bf16(lo) | (uint32_t)st_f32_to_bf16(hi) << 16;
}

#endif
