// adamw.cu - AdamW and global-norm gradient clipping on the GPU. CPU twins:
// rl_adamw_step and rl_clip_grad_norm in rl/optim.c, whose operation order these
// kernels follow (torch's single-tensor AdamW), so the two agree to fp32 rounding.
//
// The gradient norm is deterministic: a fixed grid of blocks each sums a fixed strided
// slice into one partial (tree reduction in shared memory), and one block then sums the
// partials in index order. No atomics, so the norm - and every clipped gradient - is
// the same bit for bit from run to run.
#include <cuda_bf16.h>

#include "cuda_check.h"
#include "kernels.h"

#define NORM_BLOCKS 512
#define NORM_THREADS 256

__global__ void adamw_kernel(float *params, __nv_bfloat16 *params_bf16, const float *grads, float *m, float *v,
                             size_t n, float lr, float w1, float b2, float one_minus_b2, float eps, float decay,
                             float bc2_sqrt, float step_size) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = grads[i];
    float p = params[i] * decay;
    float mi = m[i], vi = v[i];
    // __fmul_rn/__fadd_rn keep the compiler from contracting into FMAs the CPU twin does not use.
    mi = w1 < 0.5f ? __fadd_rn(mi, __fmul_rn(w1, __fsub_rn(g, mi))) : __fsub_rn(g, __fmul_rn(__fsub_rn(g, mi), 1.0f - w1));
    vi = __fadd_rn(__fmul_rn(vi, b2), __fmul_rn(one_minus_b2, __fmul_rn(g, g)));
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
    p = __fadd_rn(p, __fmul_rn(-step_size, __fdiv_rn(mi, denom)));
    m[i] = mi;
    v[i] = vi;
    params[i] = p;
    if (params_bf16) params_bf16[i] = __float2bfloat16_rn(p);
}

extern "C" int kern_adamw_step(float *params, void *params_bf16, const float *grads, float *m, float *v, size_t n,
                               long long step, double lr, double beta1, double beta2, double eps,
                               double weight_decay, void *stream, rlvr_err *e) {
    if (step < 1) return err_set(e, "adamw: step must be >= 1 (got %lld)", step);
    if (n == 0) return 0;
    // Scalars are formed in double and rounded once, as torch (and the CPU twin) do.
    const double bc1 = 1.0 - pow(beta1, (double)step);
    const double bc2_sqrt = sqrt(1.0 - pow(beta2, (double)step));
    const int threads = 256;
    const unsigned blocks = (unsigned)((n + threads - 1) / threads);
    adamw_kernel<<<blocks, threads, 0, (cudaStream_t)stream>>>(
        params, (__nv_bfloat16 *)params_bf16, grads, m, v, n, (float)lr, (float)(1.0 - beta1), (float)beta2,
        (float)(1.0 - beta2), (float)eps, (float)(1.0 - lr * weight_decay), (float)bc2_sqrt, (float)(lr / bc1));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

// Each block sums squares of a strided slice in double (as the CPU twin does).
__global__ void grad_norm_partials_kernel(const float *g, size_t n, double *partials) {
    __shared__ double shared[NORM_THREADS];
    double sum = 0.0;
    for (size_t i = (size_t)blockIdx.x * NORM_THREADS + threadIdx.x; i < n; i += (size_t)NORM_BLOCKS * NORM_THREADS)
        sum += (double)g[i] * g[i];
    shared[threadIdx.x] = sum;
    __syncthreads();
    for (int s = NORM_THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) shared[threadIdx.x] += shared[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) partials[blockIdx.x] = shared[0];
}

// One block: sum the partials in a fixed order, write the norm and the clip factor.
__global__ void grad_norm_final_kernel(const double *partials, double max_norm, double *norm_out, double *scale_out) {
    __shared__ double shared[NORM_THREADS];
    double sum = 0.0;
    for (int i = threadIdx.x; i < NORM_BLOCKS; i += NORM_THREADS) sum += partials[i];
    shared[threadIdx.x] = sum;
    __syncthreads();
    for (int s = NORM_THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) shared[threadIdx.x] += shared[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        double norm = sqrt(shared[0]);
        double coef = max_norm > 0 ? max_norm / (norm + 1e-6) : 1.0;
        *norm_out = norm;
        *scale_out = coef < 1.0 ? coef : 1.0;
    }
}

// Scales in double and rounds once, as the CPU twin does.
__global__ void scale_kernel(float *g, size_t n, const double *scale) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n && *scale < 1.0) g[i] = (float)((double)g[i] * *scale);
}

extern "C" int kern_clip_grad_norm(float *grads, size_t n, double max_norm, void *workspace, double *norm_host,
                                   void *stream, rlvr_err *e) {
    cudaStream_t s = (cudaStream_t)stream;
    double *partials = (double *)workspace;
    double *norm_dev = partials + NORM_BLOCKS;
    double *scale_dev = norm_dev + 1;
    grad_norm_partials_kernel<<<NORM_BLOCKS, NORM_THREADS, 0, s>>>(grads, n, partials);
    grad_norm_final_kernel<<<1, NORM_THREADS, 0, s>>>(partials, max_norm, norm_dev, scale_dev);
    if (max_norm > 0 && n > 0) scale_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(grads, n, scale_dev);
    CUDA_CHECK(cudaGetLastError(), e);
    if (norm_host) {
        CUDA_CHECK(cudaMemcpyAsync(norm_host, norm_dev, sizeof(double), cudaMemcpyDeviceToHost, s), e);
        CUDA_CHECK(cudaStreamSynchronize(s), e);
    }
    return 0;
}

extern "C" size_t kern_clip_grad_norm_workspace(void) { return (NORM_BLOCKS + 2) * sizeof(double); }
