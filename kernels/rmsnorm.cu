// rmsnorm.cu - RMSNorm forward (alone, or fused with the residual add before it) and
// backward, fp32 or bf16 activations. CPU twins: rmsnorm_forward and rmsnorm_backward in
// core/cpu_ops.c.
//
// Launch: one block per row t; each thread walks a strided slice of the row, W elements
// at a time: W = 8 (16-byte accesses, 2-byte ones waste most of each transaction) when C
// is a multiple of 8 and the operands are 16-byte aligned, else 1. The block has as many
// threads as the row has W-slices, up to 256, rounded up to a warp. Row sums go through
// block_sum (cuda_common.cuh), whose order depends on the block shape alone, which depends
// on C and the alignment alone, so results are bit-identical run to run and do not
// depend on the number of rows (no atomics anywhere).
#include "cuda_common.cuh"

#define RMSNORM_MAX_THREADS 256
// Row groups of the backward's weight gradient: block b sums rows b, b + G, b + 2G, ...
// into its own partial; a fixed G keeps the summation order independent of the device.
#define RMSNORM_BWD_GROUPS 512
// The backward keeps its block's weight-gradient partial in shared memory up to this
// many columns (48 KB), else in its row of the global partials.
#define RMSNORM_SMEM_COLS 12288

static int vec_width(int C, const void *const *ptrs, int n) { return C % 8 == 0 && aligned16(ptrs, n) ? 8 : 1; }

static int row_threads(int C, int W) {
    int slices = (C + W - 1) / W, t = (slices + 31) / 32 * 32;
    return t < RMSNORM_MAX_THREADS ? t : RMSNORM_MAX_THREADS;
}

// When y is not NULL the row is first x + y, rounded to T and stored to res_out; the norm
// then uses the rounded sum.
template <typename T, int W>
__global__ void rmsnorm_forward_kernel(T *out, float *rstd, T *res_out, const T *x, const T *y, const T *weight,
                                       int C, float eps) {
    __shared__ float scratch[33];
    const size_t base = (size_t)blockIdx.x * C;
    const T *row = x + base;
    float sum = 0.0f;
    for (int c = threadIdx.x * W; c < C; c += blockDim.x * W) {
        float v[W];
        load_w<T, W>(row + c, v);
        if (y) {
            float u[W];
            load_w<T, W>(y + base + c, u);
#pragma unroll
            for (int j = 0; j < W; j++) v[j] = round_as(v[j] + u[j], row);
            store_w<T, W>(res_out + base + c, v);
        }
#pragma unroll
        for (int j = 0; j < W; j++) sum += v[j] * v[j];
    }
    if (y) row = res_out + base; // each thread rereads only what it wrote: no barrier needed
    sum = block_sum(sum, scratch);
    const float r = rsqrtf(sum / C + eps);
    if (rstd && threadIdx.x == 0) rstd[blockIdx.x] = r;
    for (int c = threadIdx.x * W; c < C; c += blockDim.x * W) {
        float v[W], w[W];
        load_w<T, W>(row + c, v);
        load_w<T, W>(weight + c, w);
#pragma unroll
        for (int j = 0; j < W; j++) v[j] = v[j] * r * w[j];
        store_w<T, W>(out + base + c, v);
    }
}

static int rmsnorm_launch(kern_dtype dt, void *out, float *rstd, void *res_out, const void *x, const void *y,
                          const void *weight, int T, int C, float eps, void *stream, rlvr_err *e) {
    if (T <= 0 || C <= 0) return err_set(e, "rmsnorm_forward: bad shape T=%d C=%d", T, C);
    cudaStream_t s = (cudaStream_t)stream;
    const void *ptrs[] = {out, x, weight, y ? y : x, res_out ? res_out : x};
    const int W = vec_width(C, ptrs, 5), threads = row_threads(C, W);
#define RMSNORM_FWD(TT, WW)                                                                                            \
    rmsnorm_forward_kernel<TT, WW><<<T, threads, 0, s>>>((TT *)out, rstd, (TT *)res_out, (const TT *)x,               \
                                                         (const TT *)y, (const TT *)weight, C, eps)
    if (W == 8)
        KERN_DISPATCH(dt, e, RMSNORM_FWD(float, 8), RMSNORM_FWD(bf16, 8));
    else
        KERN_DISPATCH(dt, e, RMSNORM_FWD(float, 1), RMSNORM_FWD(bf16, 1));
#undef RMSNORM_FWD
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

extern "C" int kern_rmsnorm_forward(kern_dtype dt, void *out, float *rstd, const void *x, const void *weight, int T,
                                    int C, float eps, void *stream, rlvr_err *e) {
    return rmsnorm_launch(dt, out, rstd, NULL, x, NULL, weight, T, C, eps, stream, e);
}

extern "C" int kern_residual_rmsnorm_forward(kern_dtype dt, void *res_out, void *out, float *rstd, const void *x,
                                             const void *y, const void *weight, int T, int C, float eps,
                                             void *stream, rlvr_err *e) {
    if (!y || !res_out) return err_set(e, "residual_rmsnorm_forward: y and res_out are required");
    return rmsnorm_launch(dt, out, rstd, res_out, x, y, weight, T, C, eps, stream, e);
}

// y = x r w with r = (mean(x^2) + eps)^-1/2, so (as the CPU twin derives)
// dx_c = r w_c dy_c - r^3 / C * x_c * sum_k(dy_k w_k x_k), and dweight_c = sum_t dy_c x_c r.
// Block b handles rows b, b + gridDim.x, ... and sums its weight-gradient partial in shared
// memory (global memory past RMSNORM_SMEM_COLS), then writes it to partial[b, :]. Each
// thread touches only its own columns of it, so no barrier guards it.
template <typename T, int W>
__global__ void rmsnorm_backward_kernel(T *dx, float *partial, const T *dout, const T *x, const T *weight,
                                        const float *rstd, int rows, int C, bool part_in_smem) {
    __shared__ float scratch[33];
    extern __shared__ float part_smem[];
    float *part = part_in_smem ? part_smem : partial + (size_t)blockIdx.x * C;
    for (int c = threadIdx.x * W; c < C; c += blockDim.x * W)
#pragma unroll
        for (int j = 0; j < W; j++) part[c + j] = 0.0f;
    for (int t = blockIdx.x; t < rows; t += gridDim.x) {
        const size_t base = (size_t)t * C;
        const float r = rstd[t];
        float dot = 0.0f;
        for (int c = threadIdx.x * W; c < C; c += blockDim.x * W) {
            float dy[W], xv[W], w[W];
            load_w<T, W>(dout + base + c, dy);
            load_w<T, W>(x + base + c, xv);
            load_w<T, W>(weight + c, w);
#pragma unroll
            for (int j = 0; j < W; j++) {
                dot += dy[j] * w[j] * xv[j];
                part[c + j] += dy[j] * xv[j] * r;
            }
        }
        if (!dx) continue; // uniform over the block: no thread skips a barrier the others reach
        dot = block_sum(dot, scratch);
        const float k = dot * r * r * r / C;
        for (int c = threadIdx.x * W; c < C; c += blockDim.x * W) {
            float dy[W], xv[W], w[W], d[W];
            load_w<T, W>(dout + base + c, dy);
            load_w<T, W>(x + base + c, xv);
            load_w<T, W>(weight + c, w);
            load_w<T, W>(dx + base + c, d);
#pragma unroll
            for (int j = 0; j < W; j++) d[j] = d[j] + r * w[j] * dy[j] - k * xv[j];
            store_w<T, W>(dx + base + c, d);
        }
    }
    if (part_in_smem)
        for (int c = threadIdx.x * W; c < C; c += blockDim.x * W)
#pragma unroll
            for (int j = 0; j < W; j++) partial[(size_t)blockIdx.x * C + c + j] = part[c + j];
}

// dweight[c] += sum over groups g = 0..G-1 of partial[g, c], in that order.
__global__ void rmsnorm_dweight_kernel(float *dweight, const float *partial, int groups, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float sum = 0.0f;
    for (int g = 0; g < groups; g++) sum += partial[(size_t)g * C + c];
    dweight[c] += sum;
}

static int bwd_groups(int T) { return T < RMSNORM_BWD_GROUPS ? T : RMSNORM_BWD_GROUPS; }

extern "C" size_t kern_rmsnorm_backward_scratch(int T, int C) {
    return T > 0 && C > 0 ? (size_t)bwd_groups(T) * C * sizeof(float) : 0;
}

extern "C" int kern_rmsnorm_backward(kern_dtype dt, void *dx, float *dweight, const void *dout, const void *x,
                                     const void *weight, const float *rstd, int T, int C, void *scratch,
                                     void *stream, rlvr_err *e) {
    if (T <= 0 || C <= 0) return err_set(e, "rmsnorm_backward: bad shape T=%d C=%d", T, C);
    if (!scratch) return err_set(e, "rmsnorm_backward: no scratch");
    cudaStream_t s = (cudaStream_t)stream;
    const int groups = bwd_groups(T);
    float *partial = (float *)scratch;
    const void *ptrs[] = {dout, x, weight, dx ? dx : x};
    const int W = vec_width(C, ptrs, 4), threads = row_threads(C, W);
    const bool in_smem = C <= RMSNORM_SMEM_COLS;
    const size_t smem = in_smem ? (size_t)C * sizeof(float) : 0;
#define RMSNORM_BWD(TT, WW)                                                                                            \
    rmsnorm_backward_kernel<TT, WW><<<groups, threads, smem, s>>>((TT *)dx, partial, (const TT *)dout,              \
                                                                  (const TT *)x, (const TT *)weight, rstd, T, C,  \
                                                                  in_smem)
    if (W == 8)
        KERN_DISPATCH(dt, e, RMSNORM_BWD(float, 8), RMSNORM_BWD(bf16, 8));
    else
        KERN_DISPATCH(dt, e, RMSNORM_BWD(float, 1), RMSNORM_BWD(bf16, 1));
#undef RMSNORM_BWD
    CUDA_CHECK(cudaGetLastError(), e);
    rmsnorm_dweight_kernel<<<(C + 255) / 256, 256, 0, s>>>(dweight, partial, groups, C);
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}
