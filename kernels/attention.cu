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
// Two sets of kernels. bf16 with D = 64 or 128 (the common head sizes) runs on the
// tensor cores: attention_tc.cu, FlashAttention-2's arrangement with mma.sync.
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
#include "attention_tc.cuh"
#include "cuda_common.cuh"

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
    const void *ptrs[] = {out, q, k, v};
    if (dt == KERN_BF16 && attn_tc_supported(D, ptrs, 4))
        return attn_tc_forward((bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, cu_seqlens, n_seqs,
                               max_seqlen, H, KV, D, s, e);
    KERN_DISPATCH(dt, e,
                  ATT_LAUNCH(attention_forward_kernel, float, grid, smem, s, (float *)out, lse, (const float *)q,
                             (const float *)k, (const float *)v, cu_seqlens, H, KV, D, scale),
                  ATT_LAUNCH(attention_forward_kernel, bf16, grid, smem, s, (bf16 *)out, lse, (const bf16 *)q,
                             (const bf16 *)k, (const bf16 *)v, cu_seqlens, H, KV, D, scale));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

// delta [T, H] fp32, then (tensor-core path with grouped heads) per-query-head dK, dV.
static size_t delta_bytes(int T, int H) { return ((size_t)T * H * sizeof(float) + 255) / 256 * 256; }

extern "C" size_t kern_attention_backward_scratch(int T, int H, int KV, int D) {
    if (T <= 0 || H <= 0 || KV <= 0) return 0;
    return delta_bytes(T, H) + attn_tc_scratch_bytes(T, H, KV, D);
}

extern "C" int kern_attention_backward(kern_dtype dt, void *dq, void *dk, void *dv, const void *dout, const void *q,
                                       const void *k, const void *v, const void *out, const float *lse,
                                       const int *cu_seqlens, int n_seqs, int max_seqlen, int T, int H, int KV, int D,
                                       void *scratch, void *stream, rlvr_err *e) {
    if (check_shape("attention_backward", n_seqs, max_seqlen, H, KV, D, e)) return -1;
    if (T <= 0 || !scratch) return err_set(e, "attention_backward: T=%d, scratch %p", T, scratch);
    cudaStream_t s = (cudaStream_t)stream;
    float *delta = (float *)scratch;
    const void *ptrs[] = {dq, dk, dv, dout, q, k, v, out};
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
    } else if (dt == KERN_BF16 && attn_tc_supported(D, ptrs, 8)) { // the tensor-core kernels
        attention_delta_kernel<bf16><<<delta_blocks, 256, 0, s>>>(delta, (const bf16 *)dout, (const bf16 *)out, rows,
                                                                  D);
        float *dkdv = attn_tc_scratch_bytes(T, H, KV, D) ? (float *)((char *)scratch + delta_bytes(T, H)) : NULL;
        return attn_tc_backward((bf16 *)dq, (bf16 *)dk, (bf16 *)dv, (const bf16 *)dout, (const bf16 *)q,
                                (const bf16 *)k, (const bf16 *)v, lse, delta, dkdv, cu_seqlens, n_seqs, max_seqlen, T,
                                H, KV, D, s, e);
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
