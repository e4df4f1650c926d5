// gemm_inv.cu - the batch-invariant linear layer (kern_matmul_invariant): bf16 operands on
// the tensor cores, written so that an output element's bits do not depend on how many
// rows the call has or where its row sits among them.
//
// Why not cuBLASLt: its heuristic picks another kernel for another number of rows (and
// splits K across thread blocks for skinny products), so a token's activations in a
// rollout's decode step of 64 rows and in the trainer's forward of 8192 rows are sums in
// different orders, and the rollout's log-probabilities drift from the trainer's.
//
// The invariant: every output element is acc = 0, then one mma.sync m16n8k16 per 16
// columns of K, k = 0, 16, 32, .. in that order, into one fp32 accumulator (columns of K
// past its end are zeros in every tile shape alike), then acc + bias in fp32 and one
// rounding to the output's dtype. The tile shapes below differ only in how many rows and
// columns a thread block and a warp take and how many K tiles are in flight; none splits
// K, so all of them give the same bits (tests/gpu/test_gemm_inv.c checks it). The tensor
// core computes each element of a product from its own row and column alone.
//
// A block computes a BM x BN tile with warps of WM x WN, K in steps of 32 through a ring
// of STAGES shared buffers filled by cp.async (the next tiles copy while this one
// multiplies). Shared rows are padded by 16 bytes so ldmatrix's 8 rows hit distinct banks.
#include "cuda_common.cuh"
#include "mma.cuh"

#define INV_BK 32
#define INV_LD (INV_BK + 8) // bf16 per shared row

// Copies K-tile kt of rows r0.. (count rows, of which `valid_rows` exist) of x [.., K] into
// dst [rows][INV_LD]; columns past K and rows past the end are zeros.
template <int ROWS, int THREADS>
__device__ __forceinline__ void inv_load_tile(bf16 *dst, const bf16 *x, int r0, int valid_rows, int K, int kt) {
    constexpr int CH = INV_BK / 8; // 16-byte chunks per row
    for (int i = threadIdx.x; i < ROWS * CH; i += THREADS) {
        const int r = i / CH, col = kt * INV_BK + (i % CH) * 8;
        const bool ok = r < valid_rows && col < K;
        cp_async16(dst + r * INV_LD + (i % CH) * 8, ok ? x + (size_t)(r0 + r) * K + col : x, ok);
    }
}

template <typename TO> __device__ __forceinline__ void inv_store2(TO *p, float a, float b, bool both) {
    store_f(p, a);
    if (both) store_f(p + 1, b);
}

// out[M, N] = inp[M, K] @ w[N, K]^T (+ bias[N]); TO is the output's type (bf16 or fp32).
template <int BM, int BN, int WM, int WN, int STAGES, typename TO>
__global__ void __launch_bounds__((BM / WM) * (BN / WN) * 32)
    inv_gemm_kernel(TO *out, const bf16 *inp, const bf16 *w, const bf16 *bias, int M, int N, int K) {
    constexpr int WARPS_N = BN / WN, THREADS = (BM / WM) * WARPS_N * 32, MF = WM / 16, NF = WN / 8;
    static_assert(WM % 16 == 0 && WN % 16 == 0 && BM % WM == 0 && BN % WN == 0, "warp tiles of 16 x 16");
    extern __shared__ __align__(16) unsigned char smem_inv[];
    bf16 *As = (bf16 *)smem_inv, *Ws = As + STAGES * BM * INV_LD;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN, rows = min(BM, M - m0), cols = min(BN, N - n0);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wm = (warp / WARPS_N) * WM, wn = (warp % WARPS_N) * WN;
    const int n_tiles = (K + INV_BK - 1) / INV_BK;

    float acc[MF][NF][4];
#pragma unroll
    for (int i = 0; i < MF; i++)
#pragma unroll
        for (int j = 0; j < NF; j++) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.0f;

    // Tiles 0 .. STAGES-2 in flight before the first product; one commit per tile slot
    // (empty past the end), so "all but STAGES-2 groups done" always means "tile kt here".
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < n_tiles) {
            inv_load_tile<BM, THREADS>(As + s * BM * INV_LD, inp, m0, rows, K, s);
            inv_load_tile<BN, THREADS>(Ws + s * BN * INV_LD, w, n0, cols, K, s);
        }
        cp_async_commit();
    }
    for (int kt = 0; kt < n_tiles; kt++) {
        cp_async_wait<STAGES - 2>();
        __syncthreads(); // tile kt is here for every thread; the buffer of tile kt - 1 is free
        const int next = kt + STAGES - 1;
        if (next < n_tiles) {
            inv_load_tile<BM, THREADS>(As + (next % STAGES) * BM * INV_LD, inp, m0, rows, K, next);
            inv_load_tile<BN, THREADS>(Ws + (next % STAGES) * BN * INV_LD, w, n0, cols, K, next);
        }
        cp_async_commit();
        const bf16 *At = As + (kt % STAGES) * BM * INV_LD, *Wt = Ws + (kt % STAGES) * BN * INV_LD;
#pragma unroll
        for (int kk = 0; kk < INV_BK / 16; kk++) {
            uint32_t af[MF][4];
#pragma unroll
            for (int i = 0; i < MF; i++) load_a<INV_LD>(af[i], At, wm + 16 * i, kk * 16);
#pragma unroll
            for (int j = 0; j < NF / 2; j++) {
                uint32_t bf[4];
                load_b_rows<INV_LD>(bf, Wt, wn + 16 * j, kk * 16);
#pragma unroll
                for (int i = 0; i < MF; i++) {
                    mma_bf16(acc[i][2 * j], af[i], bf[0], bf[1]);
                    mma_bf16(acc[i][2 * j + 1], af[i], bf[2], bf[3]);
                }
            }
        }
    }
    cp_async_wait<0>(); // no copy outlives the block (the tail's groups are empty)

    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int j = 0; j < NF; j++) {
        const int c = n0 + wn + 8 * j + 2 * t; // this lane's two columns: c, c + 1
        if (c >= N) continue;
        const bool both = c + 1 < N;
        const float b0 = bias ? __bfloat162float(bias[c]) : 0.0f;
        const float b1 = bias && both ? __bfloat162float(bias[c + 1]) : 0.0f;
#pragma unroll
        for (int i = 0; i < MF; i++)
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int r = m0 + wm + 16 * i + g + 8 * half;
                if (r < M)
                    inv_store2(out + (size_t)r * N + c, acc[i][j][2 * half] + b0, acc[i][j][2 * half + 1] + b1, both);
            }
    }
}

// The tile shapes (KERN_INV_TILE_*): large for the trainer's thousands of rows, small for
// a decode step's tens, medium between.
template <typename TO>
static int inv_launch(int tile, TO *out, const bf16 *inp, const bf16 *w, const bf16 *bias, int M, int N, int K,
                      cudaStream_t s, rlvr_err *e) {
#define INV_RUN(BM, BN, WM, WN, ST)                                                                                    \
    do {                                                                                                               \
        const size_t smem = (size_t)(ST) * ((BM) + (BN)) * INV_LD * sizeof(bf16);                                     \
        auto kernel = inv_gemm_kernel<BM, BN, WM, WN, ST, TO>;                                                         \
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), e);          \
        const dim3 grid((unsigned)((N + (BN)-1) / (BN)), (unsigned)((M + (BM)-1) / (BM)));                            \
        kernel<<<grid, ((BM) / (WM)) * ((BN) / (WN)) * 32, smem, s>>>(out, inp, w, bias, M, N, K);                    \
    } while (0)
    switch (tile) {
    case KERN_INV_TILE_LARGE: INV_RUN(128, 128, 64, 32, 4); break;
    case KERN_INV_TILE_MEDIUM: INV_RUN(64, 64, 32, 32, 4); break;
    default: INV_RUN(64, 16, 16, 16, 4); break;
    }
#undef INV_RUN
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

// The device's multiprocessors (the first call asks; a process uses one device).
static int inv_sm_count(void) {
    static int n = 0;
    if (!n) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n < 1)
            n = 132;
    }
    return n;
}

// The largest tile that still gives every multiprocessor a block: speed only, never bits.
static int inv_auto_tile(int M, int N) {
    const long sms = inv_sm_count();
    if ((long)((M + 127) / 128) * ((N + 127) / 128) >= sms) return KERN_INV_TILE_LARGE;
    if ((long)((M + 63) / 64) * ((N + 63) / 64) >= sms) return KERN_INV_TILE_MEDIUM;
    return KERN_INV_TILE_SMALL;
}

extern "C" int kern_matmul_invariant(kern_dtype out_dt, void *out, const void *inp, const void *w, const void *bias,
                                     int T, int IC, int OC, int tile, void *stream, rlvr_err *e) {
    if (T <= 0 || IC <= 0 || OC <= 0) return err_set(e, "matmul_invariant: bad shape T=%d IC=%d OC=%d", T, IC, OC);
    if (out_dt != KERN_F32 && out_dt != KERN_BF16) return err_set(e, "matmul_invariant: unknown output dtype");
    if (IC % 8 || (uintptr_t)inp % 16 || (uintptr_t)w % 16 || (uintptr_t)out % 8)
        return err_set(e, "matmul_invariant: needs IC a multiple of 8 (got %d) and 16-byte aligned operands", IC);
    if (tile == KERN_INV_TILE_AUTO) tile = inv_auto_tile(T, OC);
    if (tile != KERN_INV_TILE_LARGE && tile != KERN_INV_TILE_MEDIUM && tile != KERN_INV_TILE_SMALL)
        return err_set(e, "matmul_invariant: unknown tile %d", tile);
    cudaStream_t s = (cudaStream_t)stream;
    const bf16 *x = (const bf16 *)inp, *wt = (const bf16 *)w, *b = (const bf16 *)bias;
    if (out_dt == KERN_BF16) return inv_launch(tile, (bf16 *)out, x, wt, b, T, OC, IC, s, e);
    return inv_launch(tile, (float *)out, x, wt, b, T, OC, IC, s, e);
}
