// adamw.cu - AdamW and global-norm gradient clipping on the GPU. CPU twins:
// rl_adamw_step and rl_clip_grad_norm in rl/optim.c, whose operation order these
// kernels follow (torch's single-tensor AdamW), so the two agree to fp32 rounding.
//
// The gradient norm is deterministic: a fixed grid of blocks each sums a fixed strided
// slice into one partial (tree reduction in shared memory), and one block then sums the
// partials in index order. No atomics, so the norm - and every clipped gradient - is
// the same bit for bit from run to run.
//
// The clip factor can be applied on its own (kern_grad_scale, as clip_grad_norm_ does) or
// inside the AdamW kernel as it reads each gradient (kern_adamw_step's clip_workspace):
// the same double multiply and rounding, so the two give the same weights bit for bit,
// and the fused form saves a read and a write of every gradient.
#include <cuda_bf16.h>
#include <stdint.h>

#include "cuda_check.h"
#include "kernels.h"

#define NORM_BLOCKS 512
#define NORM_THREADS 256

// Workspace layout: [NORM_BLOCKS] partial sums, the norm, the clip factor (doubles).
static double *clip_factor_of(void *workspace) { return (double *)workspace + NORM_BLOCKS + 1; }

// g scaled by the clip factor in double and rounded once, as the CPU twin does.
__device__ __forceinline__ float clipped(float g, const double *factor) {
    return factor && *factor < 1.0 ? (float)((double)g * *factor) : g;
}

// One parameter's update, in torch's single-tensor AdamW order.
__device__ __forceinline__ void adamw_one(float &p, float &mi, float &vi, float g, float w1, float b2,
                                          float one_minus_b2, float eps, float decay, float bc2_sqrt,
                                          float step_size) {
    p = p * decay;
    // __fmul_rn/__fadd_rn keep the compiler from contracting into FMAs the CPU twin does not use.
    mi = w1 < 0.5f ? __fadd_rn(mi, __fmul_rn(w1, __fsub_rn(g, mi))) : __fsub_rn(g, __fmul_rn(__fsub_rn(g, mi), 1.0f - w1));
    vi = __fadd_rn(__fmul_rn(vi, b2), __fmul_rn(one_minus_b2, __fmul_rn(g, g)));
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
    p = __fadd_rn(p, __fmul_rn(-step_size, __fdiv_rn(mi, denom)));
}

// Thread i updates parameters 4i .. 4i+3 with 16-byte loads and stores (the kernel is
// bound by memory: 30 bytes per parameter), or parameter i alone when `vec` is false
// (an operand not 16-byte aligned); the launcher covers a tail of n % 4 with the latter.
__global__ void adamw_kernel(float *params, __nv_bfloat16 *params_bf16, const float *grads, const double *factor,
                             float *m, float *v, size_t n, bool vec, float w1, float b2, float one_minus_b2,
                             float eps, float decay, float bc2_sqrt, float step_size) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (vec) {
        if (i >= n / 4) return;
        float4 p = ((float4 *)params)[i], g = ((const float4 *)grads)[i], mi = ((float4 *)m)[i], vi = ((float4 *)v)[i];
        float *pp = &p.x, *gg = &g.x, *mm = &mi.x, *vv = &vi.x;
#pragma unroll
        for (int j = 0; j < 4; j++)
            adamw_one(pp[j], mm[j], vv[j], clipped(gg[j], factor), w1, b2, one_minus_b2, eps, decay, bc2_sqrt,
                      step_size);
        ((float4 *)params)[i] = p, ((float4 *)m)[i] = mi, ((float4 *)v)[i] = vi;
        if (params_bf16) {
            __nv_bfloat162 lo = __floats2bfloat162_rn(p.x, p.y), hi = __floats2bfloat162_rn(p.z, p.w);
            uint2 packed = make_uint2(*(uint32_t *)&lo, *(uint32_t *)&hi);
            ((uint2 *)params_bf16)[i] = packed;
        }
        return;
    }
    if (i >= n) return;
    float p = params[i], mi = m[i], vi = v[i];
    adamw_one(p, mi, vi, clipped(grads[i], factor), w1, b2, one_minus_b2, eps, decay, bc2_sqrt, step_size);
    m[i] = mi;
    v[i] = vi;
    params[i] = p;
    if (params_bf16) params_bf16[i] = __float2bfloat16_rn(p);
}

extern "C" int kern_adamw_step(float *params, void *params_bf16, const float *grads, void *clip_workspace, float *m,
                               float *v, size_t n, long long step, double lr, double beta1, double beta2, double eps,
                               double weight_decay, void *stream, rlvr_err *e) {
    if (step < 1) return err_set(e, "adamw: step must be >= 1 (got %lld)", step);
    if (n == 0) return 0;
    // Scalars are formed in double and rounded once, as torch (and the CPU twin) do.
    const double bc1 = 1.0 - pow(beta1, (double)step);
    const double bc2_sqrt = sqrt(1.0 - pow(beta2, (double)step));
    const int threads = 256;
    const double *factor = clip_workspace ? clip_factor_of(clip_workspace) : NULL;
    const float w1 = (float)(1.0 - beta1), b2 = (float)beta2, omb2 = (float)(1.0 - beta2), fe = (float)eps,
                decay = (float)(1.0 - lr * weight_decay), bc = (float)bc2_sqrt, step_size = (float)(lr / bc1);
    // 16-byte vectors need params, grads, m, v aligned (and 8 bytes for the bf16 copy)
    const bool vec = ((uintptr_t)params | (uintptr_t)grads | (uintptr_t)m | (uintptr_t)v) % 16 == 0 &&
                     (uintptr_t)params_bf16 % 8 == 0;
    size_t done = 0;
    if (vec && n >= 4) {
        done = n / 4 * 4;
        adamw_kernel<<<(unsigned)((n / 4 + threads - 1) / threads), threads, 0, (cudaStream_t)stream>>>(
            params, (__nv_bfloat16 *)params_bf16, grads, factor, m, v, done, true, w1, b2, omb2, fe, decay, bc,
            step_size);
    }
    if (done < n) { // the tail, or everything when misaligned
        const size_t rest = n - done;
        __nv_bfloat16 *pb = params_bf16 ? (__nv_bfloat16 *)params_bf16 + done : NULL;
        adamw_kernel<<<(unsigned)((rest + threads - 1) / threads), threads, 0, (cudaStream_t)stream>>>(
            params + done, pb, grads + done, factor, m + done, v + done, rest, false, w1, b2, omb2, fe, decay, bc,
            step_size);
    }
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

__global__ void scale_kernel(float *g, size_t n, const double *factor) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) g[i] = clipped(g[i], factor);
}

extern "C" int kern_grad_norm(const float *grads, size_t n, double max_norm, void *workspace, double *norm_host,
                              void *stream, rlvr_err *e) {
    if (!workspace) return err_set(e, "grad_norm: no workspace");
    cudaStream_t s = (cudaStream_t)stream;
    double *partials = (double *)workspace;
    double *norm_dev = partials + NORM_BLOCKS;
    grad_norm_partials_kernel<<<NORM_BLOCKS, NORM_THREADS, 0, s>>>(grads, n, partials);
    grad_norm_final_kernel<<<1, NORM_THREADS, 0, s>>>(partials, max_norm, norm_dev, clip_factor_of(workspace));
    CUDA_CHECK(cudaGetLastError(), e);
    if (norm_host) {
        CUDA_CHECK(cudaMemcpyAsync(norm_host, norm_dev, sizeof(double), cudaMemcpyDeviceToHost, s), e);
        CUDA_CHECK(cudaStreamSynchronize(s), e);
    }
    return 0;
}

extern "C" int kern_grad_scale(float *grads, size_t n, void *workspace, void *stream, rlvr_err *e) {
    if (!workspace) return err_set(e, "grad_scale: no workspace");
    if (n == 0) return 0;
    scale_kernel<<<(unsigned)((n + 255) / 256), 256, 0, (cudaStream_t)stream>>>(grads, n, clip_factor_of(workspace));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

extern "C" int kern_clip_grad_norm(float *grads, size_t n, double max_norm, void *workspace, double *norm_host,
                                   void *stream, rlvr_err *e) {
    if (kern_grad_norm(grads, n, max_norm, workspace, norm_host, stream, e) != 0) return -1;
    return max_norm > 0 ? kern_grad_scale(grads, n, workspace, stream, e) : 0;
}

extern "C" size_t kern_clip_grad_norm_workspace(void) { return (NORM_BLOCKS + 2) * sizeof(double); }
