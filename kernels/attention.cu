// attention.cu - causal self-attention over packed variable-length sequences with
// grouped-query heads, forward and backward, in the FlashAttention manner (Dao et al.,
// 2022; FlashAttention-2, 2023): scores are made tile by tile in shared memory and
// folded into an online softmax, so no [T, T] matrix exists. Query head h reads kv head
// h / (H / KV) in place: K and V are never copied per query head.
// CPU twins: attention_forward and attention_backward in core/cpu_ops.c.
//
// Layout: q, out, dout [T, H, D]; k, v [T, KV, D]; sequence s holds tokens
// cu_seqlens[s] .. cu_seqlens[s + 1] - 1 at positions 0.. and attends within itself.
//
// Two sets of kernels. bf16 with D = 64 or 128 (the common head sizes) runs its matrix
// products on the tensor cores through WMMA (the *_tc_kernel functions, below).
// Everything else - fp32 and other head sizes - computes in fp32 on the CUDA cores
// (bf16 operands are widened as they are staged in shared memory), written for clarity
// and exactness against the CPU twin rather than speed. There each warp's 32 lanes take
// 32 keys of a tile at once (one full dot product per lane, so the softmax needs one warp
// max and one warp sum per 32 keys), and the head dimension is spread over the lanes for
// the P V product (DL >= ceil(D / 32) elements per lane, a template argument so the
// accumulators stay in registers). D may be any size up to 256.
//
// Determinism: the backward does not use FlashAttention-2's atomic adds into dQ. One
// kernel makes dQ per query tile (like the forward), another dK and dV per key tile,
// each output element written by one thread in a fixed loop order; the cost is
// computing the scores twice. Results repeat bit for bit.
#include <mma.h>

#include "cuda_common.cuh"

using namespace nvcuda;

#define ATT_BR 32   // query rows per block (forward and dQ)
#define ATT_BC 32   // keys per tile: one per lane
#define ATT_WARPS 4 // 128 threads
#define ATT_RPW (ATT_BR / ATT_WARPS) // query rows per warp
#define ATT_KB 16   // keys per block in the dK/dV kernel
#define ATT_KPW (ATT_KB / ATT_WARPS) // keys per warp there
#define ATT_MAX_D 256
#define FULL_MASK 0xffffffffu

// Stages rows [row0, row0 + n) of head `head` of x [T, heads, D] (rows at or past `len`
// as zeros) into dst[n][stride] as fp32. All threads of the block take part.
template <typename T>
__device__ void stage_rows(float *dst, int stride, const T *x, int start, int row0, int n, int len, int heads,
                           int head, int D) {
    for (int i = threadIdx.x; i < n * D; i += blockDim.x) {
        const int r = i / D, d = i % D, row = row0 + r;
        dst[r * stride + d] = row < len ? load_f(x + ((size_t)(start + row) * heads + head) * D + d) : 0.0f;
    }
}

// ---- forward ----------------------------------------------------------------------------
//
// Grid (query tile, head h, sequence); 4 warps; warp w owns query rows w*8 .. w*8+7 of
// the tile. Shared memory (fp32): Q tile [32][D], K tile [32][D+1] (the +1 spreads a
// lane-per-key dot product over all 32 banks), V tile [32][D].
template <typename T, int DL>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    attention_forward_kernel(T *out, float *lse, const T *q, const T *k, const T *v, const int *cu_seqlens, int H,
                             int KV, int D, float scale) {
    extern __shared__ float smem[];
    float *Qs = smem, *Ks = Qs + ATT_BR * D, *Vs = Ks + ATT_BC * (D + 1);
    const int h = blockIdx.y, seq = blockIdx.z, g = h / (H / KV);
    const int start = cu_seqlens[seq], len = cu_seqlens[seq + 1] - start, q0 = blockIdx.x * ATT_BR;
    if (q0 >= len) return; // the whole block leaves together
    const int rows = min(ATT_BR, len - q0), lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    stage_rows(Qs, D, q, start, q0, ATT_BR, len, H, h, D);

    float m[ATT_RPW], l[ATT_RPW], o[ATT_RPW][DL];
#pragma unroll
    for (int i = 0; i < ATT_RPW; i++) {
        m[i] = -INFINITY, l[i] = 0.0f;
#pragma unroll
        for (int c = 0; c < DL; c++) o[i][c] = 0.0f;
    }
    // Causal: the tile's last query row is q0 + rows - 1, so keys 0 .. q0 + rows - 1.
    for (int k0 = 0; k0 < q0 + rows; k0 += ATT_BC) {
        __syncthreads(); // the previous tile is consumed (and, the first time, Q is staged)
        stage_rows(Ks, D + 1, k, start, k0, ATT_BC, len, KV, g, D);
        stage_rows(Vs, D, v, start, k0, ATT_BC, len, KV, g, D);
        __syncthreads();
#pragma unroll
        for (int i = 0; i < ATT_RPW; i++) {
            const int r = warp * ATT_RPW + i, qi = q0 + r;
            if (r >= rows || k0 > qi) continue; // same for every lane: the shuffles below see a full warp
            const int kj = k0 + lane;
            const bool valid = kj <= qi; // qi < len, so kj is inside the sequence
            float s = -INFINITY;
            if (valid) {
                float dot = 0.0f;
                for (int d = 0; d < D; d++) dot += Qs[r * D + d] * Ks[lane * (D + 1) + d];
                s = scale * dot;
            }
            const float m_new = fmaxf(m[i], warp_max(s)); // finite: lane 0's key k0 <= qi is valid
            const float p = valid ? expf(s - m_new) : 0.0f;
            const float corr = expf(m[i] - m_new); // 0 on the row's first tile (m = -inf)
            l[i] = l[i] * corr + warp_sum(p);
#pragma unroll
            for (int c = 0; c < DL; c++) o[i][c] *= corr;
            for (int j = 0; j < ATT_BC; j++) {
                const float pj = __shfl_sync(FULL_MASK, p, j);
#pragma unroll
                for (int c = 0; c < DL; c++) {
                    const int d = lane + 32 * c;
                    if (d < D) o[i][c] += pj * Vs[j * D + d];
                }
            }
            m[i] = m_new;
        }
    }
#pragma unroll
    for (int i = 0; i < ATT_RPW; i++) {
        const int r = warp * ATT_RPW + i;
        if (r >= rows) continue;
        const size_t row = (size_t)(start + q0 + r) * H + h;
        const float inv = 1.0f / l[i];
#pragma unroll
        for (int c = 0; c < DL; c++) {
            const int d = lane + 32 * c;
            if (d < D) store_f(out + row * D + d, o[i][c] * inv);
        }
        if (lane == 0) lse[row] = m[i] + logf(l[i]);
    }
}

// ---- forward on the tensor cores (bf16, D a multiple of 16 up to 128) ------------------------------
//
// The same algorithm with the two matrix products on the tensor cores through WMMA
// (16x16x16 bf16 tiles, fp32 accumulation), as FlashAttention does: per block 64 query
// rows (16 per warp) against tiles of 64 keys. A warp computes its S = Q K^T block into
// shared memory, its lanes fold S into the online softmax (lane pair 2i, 2i+1 owns row i,
// 32 keys each) and write P = exp(S - m) rounded to bf16, then P V goes through the
// tensor cores into shared memory and is added to the row's output, kept in registers
// (lane 2i + half holds half of row i's D values). P in bf16 is FlashAttention's
// precision; lse comes from the fp32 scores. Shared memory (bf16 rows padded by 16 bytes,
// fp32 rows by 16 bytes, so consecutive rows start in different banks): Q, K, V tiles
// [64][D+8]; per warp S [16][68] fp32, P [16][72] bf16, PV [16][D+4] fp32.
#define TC_BR 64
#define TC_BC 64
#define TC_PAD 8

static size_t tc_smem_bytes(int D) {
    return (size_t)3 * 64 * (D + TC_PAD) * 2 + (size_t)ATT_WARPS * 16 * (TC_BC + 4) * 4 +
           (size_t)ATT_WARPS * 16 * (TC_BC + TC_PAD) * 2 + (size_t)ATT_WARPS * 16 * (D + 4) * 4;
}

// Stages rows [row0, row0 + n) of head `head` of x [T, heads, D] into dst[n][stride] as
// bf16 (zeros past `len`).
__device__ void stage_rows_bf16(bf16 *dst, int stride, const bf16 *x, int start, int row0, int n, int len,
                                int heads, int head, int D) {
    for (int i = threadIdx.x; i < n * D; i += blockDim.x) {
        const int r = i / D, d = i % D, row = row0 + r;
        dst[r * stride + d] = row < len ? x[((size_t)(start + row) * heads + head) * D + d] : __float2bfloat16_rn(0.0f);
    }
}

template <int D>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    attention_forward_tc_kernel(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
                                const int *cu_seqlens, int H, int KV, float scale) {
    extern __shared__ __align__(128) unsigned char smem_tc[];
    constexpr int LD = D + TC_PAD, LS = TC_BC + 4, LP = TC_BC + TC_PAD, LO = D + 4, HALF = D / 2;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    bf16 *Qs = (bf16 *)smem_tc, *Ks = Qs + TC_BR * LD, *Vs = Ks + TC_BC * LD;
    float *Ss = (float *)(Vs + TC_BC * LD) + warp * 16 * LS;
    bf16 *Ps = (bf16 *)((float *)(Vs + TC_BC * LD) + ATT_WARPS * 16 * LS) + warp * 16 * LP;
    float *Os = (float *)((bf16 *)((float *)(Vs + TC_BC * LD) + ATT_WARPS * 16 * LS) + ATT_WARPS * 16 * LP) +
                warp * 16 * LO;
    const int h = blockIdx.y, seq = blockIdx.z, g = h / (H / KV);
    const int start = cu_seqlens[seq], len = cu_seqlens[seq + 1] - start, q0 = blockIdx.x * TC_BR;
    if (q0 >= len) return;
    const int rows = min(TC_BR, len - q0);
    stage_rows_bf16(Qs, LD, q, start, q0, TC_BR, len, H, h, D);

    const int i = lane / 2, half = lane % 2;  // this lane's row of the warp's 16, and which half
    const int qi = q0 + warp * 16 + i;        // its query position in the sequence
    float m = -INFINITY, l = 0.0f, o[HALF];
#pragma unroll
    for (int c = 0; c < HALF; c++) o[c] = 0.0f;
    const int warp_last = min(q0 + warp * 16 + 15, q0 + rows - 1); // the warp's last real row
    for (int k0 = 0; k0 < q0 + rows; k0 += TC_BC) {
        __syncthreads();
        stage_rows_bf16(Ks, LD, k, start, k0, TC_BC, len, KV, g, D);
        stage_rows_bf16(Vs, LD, v, start, k0, TC_BC, len, KV, g, D);
        __syncthreads();
        if (warp * 16 >= rows || k0 > warp_last) continue; // no row of this warp sees these keys
        // S[16][64] = Q[warp rows] K[k0 .. k0+63]^T
#pragma unroll
        for (int n = 0; n < TC_BC / 16; n++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb; // K^T: K rows as columns
                wmma::load_matrix_sync(fa, Qs + warp * 16 * LD + kk * 16, LD);
                wmma::load_matrix_sync(fb, Ks + n * 16 * LD + kk * 16, LD);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(Ss + n * 16, acc, LS, wmma::mem_row_major);
        }
        __syncwarp();
        // online softmax over this lane's 32 keys, combined with its partner lane's
        const bool row_real = qi < q0 + rows;
        float tile_max = -INFINITY;
        for (int c = half * 32; c < half * 32 + 32; c++)
            if (row_real && k0 + c <= qi) tile_max = fmaxf(tile_max, scale * Ss[i * LS + c]);
        tile_max = fmaxf(tile_max, __shfl_xor_sync(FULL_MASK, tile_max, 1));
        const float m_new = fmaxf(m, tile_max);
        float psum = 0.0f;
        for (int c = half * 32; c < half * 32 + 32; c++) {
            float p = 0.0f;
            if (row_real && k0 + c <= qi) p = expf(scale * Ss[i * LS + c] - m_new);
            psum += p;
            Ps[i * LP + c] = __float2bfloat16_rn(p);
        }
        psum += __shfl_xor_sync(FULL_MASK, psum, 1);
        // m_new = -inf: the row has seen no key yet (keys past it, or a padding row): keep it empty
        const float corr = m_new == -INFINITY ? 1.0f : expf(m - m_new);
        l = l * corr + psum;
        m = m_new;
        __syncwarp();
        // PV[16][D] = P[16][64] V[k0 .. k0+63]
#pragma unroll
        for (int n = 0; n < D / 16; n++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int kk = 0; kk < TC_BC / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
                wmma::load_matrix_sync(fa, Ps + kk * 16, LP);
                wmma::load_matrix_sync(fb, Vs + kk * 16 * LD + n * 16, LD);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(Os + n * 16, acc, LO, wmma::mem_row_major);
        }
        __syncwarp();
#pragma unroll
        for (int c = 0; c < HALF; c++) o[c] = o[c] * corr + Os[i * LO + half * HALF + c];
        __syncwarp(); // S, P and PV are rewritten by the next tile
    }
    if (qi < q0 + rows) {
        const size_t row = (size_t)(start + qi) * H + h;
        const float inv = 1.0f / l;
#pragma unroll
        for (int c = 0; c < HALF; c++) out[row * D + half * HALF + c] = __float2bfloat16_rn(o[c] * inv);
        if (half == 0) lse[row] = m + logf(l);
    }
}

// ---- backward ---------------------------------------------------------------------------

// delta[t, h] = dout[t, h, :] . out[t, h, :], one warp per (t, h).
template <typename T> __global__ void attention_delta_kernel(float *delta, const T *dout, const T *out, int rows, int D) {
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows) return;
    float sum = 0.0f;
    for (int d = lane; d < D; d += 32) sum += load_f(dout + (size_t)row * D + d) * load_f(out + (size_t)row * D + d);
    sum = warp_sum(sum);
    if (lane == 0) delta[row] = sum;
}

// dQ: grid (query tile, head, sequence) as the forward. Per row qi and key j:
// p = exp(scale q.k_j - lse), ds = p (dout.v_j - delta) scale, dq += ds k_j.
// Shared (fp32): Q [32][D], dO [32][D], K [32][D+1], V [32][D+1].
template <typename T, int DL>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    attention_dq_kernel(T *dq, const T *dout, const T *q, const T *k, const T *v, const float *lse,
                        const float *delta, const int *cu_seqlens, int H, int KV, int D, float scale) {
    extern __shared__ float smem[];
    float *Qs = smem, *DOs = Qs + ATT_BR * D, *Ks = DOs + ATT_BR * D, *Vs = Ks + ATT_BC * (D + 1);
    const int h = blockIdx.y, seq = blockIdx.z, g = h / (H / KV);
    const int start = cu_seqlens[seq], len = cu_seqlens[seq + 1] - start, q0 = blockIdx.x * ATT_BR;
    if (q0 >= len) return;
    const int rows = min(ATT_BR, len - q0), lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    stage_rows(Qs, D, q, start, q0, ATT_BR, len, H, h, D);
    stage_rows(DOs, D, dout, start, q0, ATT_BR, len, H, h, D);
    float acc[ATT_RPW][DL], row_lse[ATT_RPW], row_delta[ATT_RPW];
#pragma unroll
    for (int i = 0; i < ATT_RPW; i++) {
        const int r = warp * ATT_RPW + i;
        const size_t row = (size_t)(start + q0 + r) * H + h;
        row_lse[i] = r < rows ? lse[row] : 0.0f;
        row_delta[i] = r < rows ? delta[row] : 0.0f;
#pragma unroll
        for (int c = 0; c < DL; c++) acc[i][c] = 0.0f;
    }
    for (int k0 = 0; k0 < q0 + rows; k0 += ATT_BC) {
        __syncthreads();
        stage_rows(Ks, D + 1, k, start, k0, ATT_BC, len, KV, g, D);
        stage_rows(Vs, D + 1, v, start, k0, ATT_BC, len, KV, g, D);
        __syncthreads();
#pragma unroll
        for (int i = 0; i < ATT_RPW; i++) {
            const int r = warp * ATT_RPW + i, qi = q0 + r;
            if (r >= rows || k0 > qi) continue;
            float ds = 0.0f;
            if (k0 + lane <= qi) {
                float dot = 0.0f, dp = 0.0f;
                for (int d = 0; d < D; d++) {
                    dot += Qs[r * D + d] * Ks[lane * (D + 1) + d];
                    dp += DOs[r * D + d] * Vs[lane * (D + 1) + d];
                }
                const float p = expf(scale * dot - row_lse[i]);
                ds = p * (dp - row_delta[i]) * scale;
            }
            for (int j = 0; j < ATT_BC; j++) {
                const float dsj = __shfl_sync(FULL_MASK, ds, j);
#pragma unroll
                for (int c = 0; c < DL; c++) {
                    const int d = lane + 32 * c;
                    if (d < D) acc[i][c] += dsj * Ks[j * (D + 1) + d];
                }
            }
        }
    }
#pragma unroll
    for (int i = 0; i < ATT_RPW; i++) {
        const int r = warp * ATT_RPW + i;
        if (r >= rows) continue;
        T *dst = dq + ((size_t)(start + q0 + r) * H + h) * D;
#pragma unroll
        for (int c = 0; c < DL; c++) {
            const int d = lane + 32 * c;
            if (d < D) store_f(dst + d, load_f(dst + d) + acc[i][c]);
        }
    }
}

// dK, dV: grid (key tile of 16, kv head g, sequence); warp w owns keys w*4 .. w*4+3 of
// the tile. For every query head of g's group, in order, and every query tile from the
// first that can see the keys to the end of the sequence, lane i takes query row i:
// dv_j += p_ij dout_i, dk_j += ds_ij q_i. Shared (fp32): K [16][D], V [16][D],
// Q [32][D+1], dO [32][D+1].
template <typename T, int DL>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    attention_dkdv_kernel(T *dk, T *dv, const T *dout, const T *q, const T *k, const T *v, const float *lse,
                          const float *delta, const int *cu_seqlens, int H, int KV, int D, float scale) {
    extern __shared__ float smem[];
    float *Ks = smem, *Vs = Ks + ATT_KB * D, *Qs = Vs + ATT_KB * D, *DOs = Qs + ATT_BR * (D + 1);
    const int g = blockIdx.y, seq = blockIdx.z, group = H / KV;
    const int start = cu_seqlens[seq], len = cu_seqlens[seq + 1] - start, k0 = blockIdx.x * ATT_KB;
    if (k0 >= len) return;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    stage_rows(Ks, D, k, start, k0, ATT_KB, len, KV, g, D);
    stage_rows(Vs, D, v, start, k0, ATT_KB, len, KV, g, D);
    float dk_acc[ATT_KPW][DL], dv_acc[ATT_KPW][DL];
#pragma unroll
    for (int jj = 0; jj < ATT_KPW; jj++)
#pragma unroll
        for (int c = 0; c < DL; c++) dk_acc[jj][c] = dv_acc[jj][c] = 0.0f;
    for (int h = g * group; h < (g + 1) * group; h++)
        for (int q0 = (k0 / ATT_BR) * ATT_BR; q0 < len; q0 += ATT_BR) {
            __syncthreads(); // the previous query tile is consumed (and, the first time, K and V are staged)
            stage_rows(Qs, D + 1, q, start, q0, ATT_BR, len, H, h, D);
            stage_rows(DOs, D + 1, dout, start, q0, ATT_BR, len, H, h, D);
            __syncthreads();
            const int qi = q0 + lane;
            const size_t row = (size_t)(start + qi) * H + h;
            const float row_lse = qi < len ? lse[row] : 0.0f, row_delta = qi < len ? delta[row] : 0.0f;
#pragma unroll
            for (int jj = 0; jj < ATT_KPW; jj++) {
                const int j = warp * ATT_KPW + jj, kj = k0 + j;
                if (kj >= len) continue; // same for every lane
                float p = 0.0f, ds = 0.0f;
                if (qi < len && qi >= kj) {
                    float dot = 0.0f, dp = 0.0f;
                    for (int d = 0; d < D; d++) {
                        dot += Qs[lane * (D + 1) + d] * Ks[j * D + d];
                        dp += DOs[lane * (D + 1) + d] * Vs[j * D + d];
                    }
                    p = expf(scale * dot - row_lse);
                    ds = p * (dp - row_delta) * scale;
                }
                for (int i = 0; i < 32; i++) {
                    const float pi = __shfl_sync(FULL_MASK, p, i), dsi = __shfl_sync(FULL_MASK, ds, i);
#pragma unroll
                    for (int c = 0; c < DL; c++) {
                        const int d = lane + 32 * c;
                        if (d < D) {
                            dv_acc[jj][c] += pi * DOs[i * (D + 1) + d];
                            dk_acc[jj][c] += dsi * Qs[i * (D + 1) + d];
                        }
                    }
                }
            }
        }
#pragma unroll
    for (int jj = 0; jj < ATT_KPW; jj++) {
        const int kj = k0 + warp * ATT_KPW + jj;
        if (kj >= len) continue;
        const size_t off = ((size_t)(start + kj) * KV + g) * D;
#pragma unroll
        for (int c = 0; c < DL; c++) {
            const int d = lane + 32 * c;
            if (d < D) {
                store_f(dk + off + d, load_f(dk + off + d) + dk_acc[jj][c]);
                store_f(dv + off + d, load_f(dv + off + d) + dv_acc[jj][c]);
            }
        }
    }
}

// ---- backward on the tensor cores (bf16, D = 64 or 128) -------------------------------------------
//
// The two backward kernels with their matrix products on the tensor cores, as
// FlashAttention-2's backward does, still without atomics. dS and P are rounded to bf16
// before they multiply K, Q and dO (FlashAttention's precision); their fp32 inputs
// (S, dP) come from fp32 accumulation.
//
// dQ: per block 64 query rows (16 per warp) against tiles of 64 keys. Per tile a warp
// makes S = Q K^T and dP = dO V^T [16][64] into shared memory, its lane pairs turn them
// into dS = P (dP - delta) scale (P = exp(scale S - lse)), and dS K [16][D] is added to
// the rows' dQ kept in registers. Shared: Q, dO, K, V [64][D+8] bf16; per warp S, dP
// [16][68] fp32, dS [16][72] bf16, dS K [16][D+4] fp32.
static size_t tc_dq_smem_bytes(int D) {
    return (size_t)4 * 64 * (D + TC_PAD) * 2 +
           (size_t)ATT_WARPS * (2 * 16 * (TC_BC + 4) * 4 + 16 * (TC_BC + TC_PAD) * 2 + 16 * (D + 4) * 4);
}

// acc[16][16 * NB] (fp32, row-major, ld lda) = a[16][16 * KB] (bf16, row-major, ld la)
// times b: [16 * KB][16 * NB] bf16 read row-major (ld lb), or, when B_COL, as the transpose
// of a row-major [16 * NB][16 * KB] matrix. One warp; every lane takes part.
template <int NB, int KB, bool B_COL>
__device__ void warp_mma(float *acc, int lacc, const bf16 *a, int la, const bf16 *b, int lb) {
#pragma unroll
    for (int n = 0; n < NB; n++) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
        wmma::fill_fragment(c, 0.0f);
#pragma unroll
        for (int kk = 0; kk < KB; kk++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
            wmma::load_matrix_sync(fa, a + kk * 16, la);
            if (B_COL) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
                wmma::load_matrix_sync(fb, b + n * 16 * lb + kk * 16, lb);
                wmma::mma_sync(c, fa, fb, c);
            } else {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
                wmma::load_matrix_sync(fb, b + kk * 16 * lb + n * 16, lb);
                wmma::mma_sync(c, fa, fb, c);
            }
        }
        wmma::store_matrix_sync(acc + n * 16, c, lacc, wmma::mem_row_major);
    }
}

template <int D>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    attention_dq_tc_kernel(bf16 *dq, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                           const float *lse, const float *delta, const int *cu_seqlens, int H, int KV, float scale) {
    extern __shared__ __align__(128) unsigned char smem_tc[];
    constexpr int LD = D + TC_PAD, LS = TC_BC + 4, LP = TC_BC + TC_PAD, LO = D + 4, HALF = D / 2;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    bf16 *Qs = (bf16 *)smem_tc, *DOs = Qs + 64 * LD, *Ks = DOs + 64 * LD, *Vs = Ks + 64 * LD;
    unsigned char *mine = (unsigned char *)(Vs + 64 * LD) +
                          (size_t)warp * (2 * 16 * LS * 4 + 16 * LP * 2 + 16 * LO * 4);
    float *Ss = (float *)mine, *DPs = Ss + 16 * LS;
    bf16 *DSs = (bf16 *)(DPs + 16 * LS);
    float *Os = (float *)(DSs + 16 * LP);
    const int h = blockIdx.y, seq = blockIdx.z, g = h / (H / KV);
    const int start = cu_seqlens[seq], len = cu_seqlens[seq + 1] - start, q0 = blockIdx.x * TC_BR;
    if (q0 >= len) return;
    const int rows = min(TC_BR, len - q0);
    stage_rows_bf16(Qs, LD, q, start, q0, TC_BR, len, H, h, D);
    stage_rows_bf16(DOs, LD, dout, start, q0, TC_BR, len, H, h, D);
    const int i = lane / 2, half = lane % 2, qi = q0 + warp * 16 + i;
    const bool row_real = qi < q0 + rows;
    const size_t row = (size_t)(start + qi) * H + h;
    const float row_lse = row_real ? lse[row] : 0.0f, row_delta = row_real ? delta[row] : 0.0f;
    float acc[HALF];
#pragma unroll
    for (int c = 0; c < HALF; c++) acc[c] = 0.0f;
    const int warp_last = min(q0 + warp * 16 + 15, q0 + rows - 1);
    for (int k0 = 0; k0 < q0 + rows; k0 += TC_BC) {
        __syncthreads();
        stage_rows_bf16(Ks, LD, k, start, k0, TC_BC, len, KV, g, D);
        stage_rows_bf16(Vs, LD, v, start, k0, TC_BC, len, KV, g, D);
        __syncthreads();
        if (warp * 16 >= rows || k0 > warp_last) continue;
        warp_mma<TC_BC / 16, D / 16, true>(Ss, LS, Qs + warp * 16 * LD, LD, Ks, LD);   // S = Q K^T
        warp_mma<TC_BC / 16, D / 16, true>(DPs, LS, DOs + warp * 16 * LD, LD, Vs, LD); // dP = dO V^T
        __syncwarp();
        for (int c = half * 32; c < half * 32 + 32; c++) {
            float ds = 0.0f;
            if (row_real && k0 + c <= qi) {
                const float p = expf(scale * Ss[i * LS + c] - row_lse);
                ds = p * (DPs[i * LS + c] - row_delta) * scale;
            }
            DSs[i * LP + c] = __float2bfloat16_rn(ds);
        }
        __syncwarp();
        warp_mma<D / 16, TC_BC / 16, false>(Os, LO, DSs, LP, Ks, LD); // dS K
        __syncwarp();
#pragma unroll
        for (int c = 0; c < HALF; c++) acc[c] += Os[i * LO + half * HALF + c];
        __syncwarp();
    }
    if (row_real) {
        bf16 *dst = dq + row * D + half * HALF;
#pragma unroll
        for (int c = 0; c < HALF; c++) dst[c] = __float2bfloat16_rn(__bfloat162float(dst[c]) + acc[c]);
    }
}

// dK, dV: per block 64 keys (16 per warp) of kv head g; for each query head of g's group
// and each tile of 64 queries that can see the keys, a warp makes S^T = K Q^T and
// dP^T = V dO^T [16][64], its lane pairs (one key row each, 32 queries per lane) form
// P^T and dS^T in bf16, and P^T dO and dS^T Q [16][D] are added to the keys' dV and dK
// in registers. Shared: K, V, Q, dO [64][D+8] bf16; lse and delta of the 64 queries; per
// warp S^T, dP^T [16][68] fp32, P^T, dS^T [16][72] bf16, a [16][D+4] fp32 product.
static size_t tc_dkdv_smem_bytes(int D) {
    return (size_t)4 * 64 * (D + TC_PAD) * 2 + 2 * 64 * 4 +
           (size_t)ATT_WARPS * (2 * 16 * (TC_BC + 4) * 4 + 2 * 16 * (TC_BC + TC_PAD) * 2 + 16 * (D + 4) * 4);
}

template <int D>
__global__ void __launch_bounds__(ATT_WARPS * 32)
    attention_dkdv_tc_kernel(bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                             const float *lse, const float *delta, const int *cu_seqlens, int H, int KV,
                             float scale) {
    extern __shared__ __align__(128) unsigned char smem_tc[];
    constexpr int LD = D + TC_PAD, LS = TC_BC + 4, LP = TC_BC + TC_PAD, LO = D + 4, HALF = D / 2;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    bf16 *Ks = (bf16 *)smem_tc, *Vs = Ks + 64 * LD, *Qs = Vs + 64 * LD, *DOs = Qs + 64 * LD;
    float *Ls = (float *)(DOs + 64 * LD), *Dl = Ls + 64;
    unsigned char *mine = (unsigned char *)(Dl + 64) +
                          (size_t)warp * (2 * 16 * LS * 4 + 2 * 16 * LP * 2 + 16 * LO * 4);
    float *St = (float *)mine, *DPt = St + 16 * LS;
    bf16 *Pt = (bf16 *)(DPt + 16 * LS), *DSt = Pt + 16 * LP;
    float *Os = (float *)(DSt + 16 * LP);
    const int g = blockIdx.y, seq = blockIdx.z, group = H / KV;
    const int start = cu_seqlens[seq], len = cu_seqlens[seq + 1] - start, k0 = blockIdx.x * 64;
    if (k0 >= len) return;
    stage_rows_bf16(Ks, LD, k, start, k0, 64, len, KV, g, D);
    stage_rows_bf16(Vs, LD, v, start, k0, 64, len, KV, g, D);
    const int i = lane / 2, half = lane % 2, kj = k0 + warp * 16 + i;
    float dk_acc[HALF], dv_acc[HALF];
#pragma unroll
    for (int c = 0; c < HALF; c++) dk_acc[c] = dv_acc[c] = 0.0f;
    const int warp_first = k0 + warp * 16; // the warp's first key
    for (int h = g * group; h < (g + 1) * group; h++)
        for (int q0 = k0; q0 < len; q0 += 64) { // queries before k0 see none of these keys
            __syncthreads();
            stage_rows_bf16(Qs, LD, q, start, q0, 64, len, H, h, D);
            stage_rows_bf16(DOs, LD, dout, start, q0, 64, len, H, h, D);
            if (threadIdx.x < 64) {
                const int qq = q0 + threadIdx.x;
                const size_t row = (size_t)(start + qq) * H + h;
                Ls[threadIdx.x] = qq < len ? lse[row] : 0.0f;
                Dl[threadIdx.x] = qq < len ? delta[row] : 0.0f;
            }
            __syncthreads();
            if (warp_first >= len || q0 + 63 < warp_first) continue; // no key of this warp is seen here
            warp_mma<4, D / 16, true>(St, LS, Ks + warp * 16 * LD, LD, Qs, LD);   // S^T = K Q^T
            warp_mma<4, D / 16, true>(DPt, LS, Vs + warp * 16 * LD, LD, DOs, LD); // dP^T = V dO^T
            __syncwarp();
            for (int c = half * 32; c < half * 32 + 32; c++) {
                const int qq = q0 + c;
                float p = 0.0f, ds = 0.0f;
                if (kj < len && qq < len && qq >= kj) {
                    p = expf(scale * St[i * LS + c] - Ls[c]);
                    ds = p * (DPt[i * LS + c] - Dl[c]) * scale;
                }
                Pt[i * LP + c] = __float2bfloat16_rn(p);
                DSt[i * LP + c] = __float2bfloat16_rn(ds);
            }
            __syncwarp();
            warp_mma<D / 16, 4, false>(Os, LO, Pt, LP, DOs, LD); // P^T dO
            __syncwarp();
#pragma unroll
            for (int c = 0; c < HALF; c++) dv_acc[c] += Os[i * LO + half * HALF + c];
            __syncwarp();
            warp_mma<D / 16, 4, false>(Os, LO, DSt, LP, Qs, LD); // dS^T Q
            __syncwarp();
#pragma unroll
            for (int c = 0; c < HALF; c++) dk_acc[c] += Os[i * LO + half * HALF + c];
            __syncwarp();
        }
    if (kj < len) {
        const size_t off = ((size_t)(start + kj) * KV + g) * D + half * HALF;
#pragma unroll
        for (int c = 0; c < HALF; c++) {
            dk[off + c] = __float2bfloat16_rn(__bfloat162float(dk[off + c]) + dk_acc[c]);
            dv[off + c] = __float2bfloat16_rn(__bfloat162float(dv[off + c]) + dv_acc[c]);
        }
    }
}

// ---- launchers ----------------------------------------------------------------------------

static int check_shape(const char *fn, int n_seqs, int max_seqlen, int H, int KV, int D, rlvr_err *e) {
    if (n_seqs <= 0 || n_seqs > 65535 || max_seqlen <= 0 || H <= 0 || KV <= 0 || H % KV || D <= 0 ||
        D > ATT_MAX_D)
        return err_set(e, "%s: bad shape n_seqs=%d max_seqlen=%d H=%d KV=%d D=%d (H must be a multiple of KV, D <= %d)",
                       fn, n_seqs, max_seqlen, H, KV, D, ATT_MAX_D);
    return 0;
}

// Launches KERNEL<T, DL> with DL the least of 2, 4, 8 that is >= ceil(D / 32) (three
// instantiations rather than eight keep the build short; a lane's unused slots cost only
// registers), after raising its shared-memory limit (past the default 48 KB for large D).
#define ATT_LAUNCH(KERNEL, T, grid, smem, stream, ...)                                               \
    do {                                                                                             \
        if (D <= 64) ATT_LAUNCH_DL(KERNEL, T, 2, grid, smem, stream, __VA_ARGS__);                   \
        else if (D <= 128) ATT_LAUNCH_DL(KERNEL, T, 4, grid, smem, stream, __VA_ARGS__);             \
        else ATT_LAUNCH_DL(KERNEL, T, 8, grid, smem, stream, __VA_ARGS__);                           \
    } while (0)
#define ATT_LAUNCH_DL(KERNEL, T, DL, grid, smem, stream, ...)                                        \
    do {                                                                                             \
        CUDA_CHECK(cudaFuncSetAttribute(KERNEL<T, DL>, cudaFuncAttributeMaxDynamicSharedMemorySize,  \
                                        (int)(smem)),                                                \
                   e);                                                                               \
        KERNEL<T, DL><<<grid, ATT_WARPS * 32, smem, stream>>>(__VA_ARGS__);                          \
    } while (0)

extern "C" int kern_attention_forward(kern_dtype dt, void *out, float *lse, const void *q, const void *k,
                                      const void *v, const int *cu_seqlens, int n_seqs, int max_seqlen, int H,
                                      int KV, int D, void *stream, rlvr_err *e) {
    if (check_shape("attention_forward", n_seqs, max_seqlen, H, KV, D, e)) return -1;
    cudaStream_t s = (cudaStream_t)stream;
    const dim3 grid((unsigned)((max_seqlen + ATT_BR - 1) / ATT_BR), (unsigned)H, (unsigned)n_seqs);
    const size_t smem = ((size_t)ATT_BR * D + (size_t)ATT_BC * (D + 1) + (size_t)ATT_BC * D) * sizeof(float);
    const float scale = 1.0f / sqrtf((float)D);
    if (dt == KERN_BF16 && (D == 64 || D == 128)) { // the tensor-core kernel
        const dim3 tgrid((unsigned)((max_seqlen + TC_BR - 1) / TC_BR), (unsigned)H, (unsigned)n_seqs);
        const size_t tsmem = tc_smem_bytes(D);
        if (D == 64) {
            CUDA_CHECK(cudaFuncSetAttribute(attention_forward_tc_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            (int)tsmem),
                       e);
            attention_forward_tc_kernel<64><<<tgrid, ATT_WARPS * 32, tsmem, s>>>(
                (bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, cu_seqlens, H, KV, scale);
        } else {
            CUDA_CHECK(cudaFuncSetAttribute(attention_forward_tc_kernel<128>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize, (int)tsmem),
                       e);
            attention_forward_tc_kernel<128><<<tgrid, ATT_WARPS * 32, tsmem, s>>>(
                (bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, cu_seqlens, H, KV, scale);
        }
        CUDA_CHECK(cudaGetLastError(), e);
        return 0;
    }
    KERN_DISPATCH(dt, e,
                  ATT_LAUNCH(attention_forward_kernel, float, grid, smem, s, (float *)out, lse, (const float *)q,
                             (const float *)k, (const float *)v, cu_seqlens, H, KV, D, scale),
                  ATT_LAUNCH(attention_forward_kernel, bf16, grid, smem, s, (bf16 *)out, lse, (const bf16 *)q,
                             (const bf16 *)k, (const bf16 *)v, cu_seqlens, H, KV, D, scale));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

extern "C" size_t kern_attention_backward_scratch(int T, int H) {
    return T > 0 && H > 0 ? (size_t)T * H * sizeof(float) : 0;
}

extern "C" int kern_attention_backward(kern_dtype dt, void *dq, void *dk, void *dv, const void *dout, const void *q,
                                       const void *k, const void *v, const void *out, const float *lse,
                                       const int *cu_seqlens, int n_seqs, int max_seqlen, int T, int H, int KV, int D,
                                       void *scratch, void *stream, rlvr_err *e) {
    if (check_shape("attention_backward", n_seqs, max_seqlen, H, KV, D, e)) return -1;
    if (T <= 0 || !scratch) return err_set(e, "attention_backward: T=%d, scratch %p", T, scratch);
    cudaStream_t s = (cudaStream_t)stream;
    float *delta = (float *)scratch;
    const float scale = 1.0f / sqrtf((float)D);
    const int rows = T * H;
    const unsigned delta_blocks = (unsigned)((rows + 7) / 8); // 8 warps of 32 per block, a warp per row
    const dim3 qgrid((unsigned)((max_seqlen + ATT_BR - 1) / ATT_BR), (unsigned)H, (unsigned)n_seqs);
    const dim3 kgrid((unsigned)((max_seqlen + ATT_KB - 1) / ATT_KB), (unsigned)KV, (unsigned)n_seqs);
    const size_t dq_smem = ((size_t)2 * ATT_BR * D + (size_t)2 * ATT_BC * (D + 1)) * sizeof(float);
    const size_t kv_smem = ((size_t)2 * ATT_KB * D + (size_t)2 * ATT_BR * (D + 1)) * sizeof(float);
    if (dt == KERN_F32) {
        attention_delta_kernel<float><<<delta_blocks, 256, 0, s>>>(delta, (const float *)dout, (const float *)out,
                                                                   rows, D);
        ATT_LAUNCH(attention_dq_kernel, float, qgrid, dq_smem, s, (float *)dq, (const float *)dout, (const float *)q,
                   (const float *)k, (const float *)v, lse, delta, cu_seqlens, H, KV, D, scale);
        ATT_LAUNCH(attention_dkdv_kernel, float, kgrid, kv_smem, s, (float *)dk, (float *)dv, (const float *)dout,
                   (const float *)q, (const float *)k, (const float *)v, lse, delta, cu_seqlens, H, KV, D, scale);
    } else if (dt == KERN_BF16 && (D == 64 || D == 128)) { // the tensor-core kernels
        attention_delta_kernel<bf16><<<delta_blocks, 256, 0, s>>>(delta, (const bf16 *)dout, (const bf16 *)out, rows,
                                                                  D);
        const dim3 tq((unsigned)((max_seqlen + 63) / 64), (unsigned)H, (unsigned)n_seqs);
        const dim3 tk((unsigned)((max_seqlen + 63) / 64), (unsigned)KV, (unsigned)n_seqs);
        const size_t sq = tc_dq_smem_bytes(D), sk = tc_dkdv_smem_bytes(D);
        if (D == 64) {
            CUDA_CHECK(cudaFuncSetAttribute(attention_dq_tc_kernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            (int)sq),
                       e);
            CUDA_CHECK(cudaFuncSetAttribute(attention_dkdv_tc_kernel<64>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sk),
                       e);
            attention_dq_tc_kernel<64><<<tq, ATT_WARPS * 32, sq, s>>>((bf16 *)dq, (const bf16 *)dout, (const bf16 *)q,
                                                                      (const bf16 *)k, (const bf16 *)v, lse, delta,
                                                                      cu_seqlens, H, KV, scale);
            attention_dkdv_tc_kernel<64><<<tk, ATT_WARPS * 32, sk, s>>>(
                (bf16 *)dk, (bf16 *)dv, (const bf16 *)dout, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, lse,
                delta, cu_seqlens, H, KV, scale);
        } else {
            CUDA_CHECK(cudaFuncSetAttribute(attention_dq_tc_kernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            (int)sq),
                       e);
            CUDA_CHECK(cudaFuncSetAttribute(attention_dkdv_tc_kernel<128>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sk),
                       e);
            attention_dq_tc_kernel<128><<<tq, ATT_WARPS * 32, sq, s>>>((bf16 *)dq, (const bf16 *)dout,
                                                                       (const bf16 *)q, (const bf16 *)k,
                                                                       (const bf16 *)v, lse, delta, cu_seqlens, H, KV,
                                                                       scale);
            attention_dkdv_tc_kernel<128><<<tk, ATT_WARPS * 32, sk, s>>>(
                (bf16 *)dk, (bf16 *)dv, (const bf16 *)dout, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, lse,
                delta, cu_seqlens, H, KV, scale);
        }
    } else if (dt == KERN_BF16) {
        attention_delta_kernel<bf16><<<delta_blocks, 256, 0, s>>>(delta, (const bf16 *)dout, (const bf16 *)out, rows,
                                                                  D);
        ATT_LAUNCH(attention_dq_kernel, bf16, qgrid, dq_smem, s, (bf16 *)dq, (const bf16 *)dout, (const bf16 *)q,
                   (const bf16 *)k, (const bf16 *)v, lse, delta, cu_seqlens, H, KV, D, scale);
        ATT_LAUNCH(attention_dkdv_kernel, bf16, kgrid, kv_smem, s, (bf16 *)dk, (bf16 *)dv, (const bf16 *)dout,
                   (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, lse, delta, cu_seqlens, H, KV, D, scale);
    } else {
        return err_set(e, "attention_backward: unknown dtype %d", (int)dt);
    }
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}
