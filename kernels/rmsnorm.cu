// rmsnorm.cu - RMSNorm forward (fp32). CPU twin: rmsnorm_forward in core/cpu_ops.c.
//
// Launch: one block of 256 threads per row t. Each thread sums the squares of a strided
// slice of the row, then a fixed-shape tree (warp shuffles, then one warp over the
// per-warp partials) reduces them: the order never depends on timing, so the result is
// bit-identical run to run (no atomics).
#include "cuda_check.h"
#include "kernels.h"

#define RMSNORM_THREADS 256

__global__ void rmsnorm_forward_kernel(float *out, float *rstd, const float *x, const float *weight, int C,
                                       float eps) {
    const int t = blockIdx.x;
    const float *row = x + (size_t)t * C;
    float sum = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) sum += row[c] * row[c];

    // Reduce within each warp, then across the warps of the block.
    for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    __shared__ float warp_sums[RMSNORM_THREADS / 32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) warp_sums[warp] = sum;
    __syncthreads();
    __shared__ float s_rstd;
    if (warp == 0) {
        float v = lane < RMSNORM_THREADS / 32 ? warp_sums[lane] : 0.0f;
        for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
        if (lane == 0) {
            s_rstd = rsqrtf(v / C + eps);
            if (rstd) rstd[t] = s_rstd;
        }
    }
    __syncthreads();
    const float r = s_rstd;
    float *o = out + (size_t)t * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] = row[c] * r * weight[c];
}

extern "C" int kern_rmsnorm_forward(float *out, float *rstd, const float *x, const float *weight, int T, int C,
                                    float eps, void *stream, rlvr_err *e) {
    if (T <= 0 || C <= 0) return err_set(e, "rmsnorm_forward: bad shape T=%d C=%d", T, C);
    rmsnorm_forward_kernel<<<T, RMSNORM_THREADS, 0, (cudaStream_t)stream>>>(out, rstd, x, weight, C, eps);
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}
