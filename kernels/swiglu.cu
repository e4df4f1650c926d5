// swiglu.cu - SwiGLU forward and backward, elementwise (the MLP's h = silu(gate) * up).
// CPU twins: swiglu_forward and swiglu_backward in core/cpu_ops.c, whose formulas these
// follow; expf here is CUDA's accurate one (2 ulp), not the fast-math intrinsic.
#include "cuda_common.cuh"

#define SWIGLU_THREADS 256
#define SWIGLU_MAX_BLOCKS 65535u

static unsigned swiglu_blocks(size_t n) {
    size_t b = (n + SWIGLU_THREADS - 1) / SWIGLU_THREADS;
    return b < SWIGLU_MAX_BLOCKS ? (unsigned)b : SWIGLU_MAX_BLOCKS;
}

template <typename T> __global__ void swiglu_forward_kernel(T *h, const T *gate, const T *up, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = load_f(gate + i);
        store_f(h + i, g / (1.0f + expf(-g)) * load_f(up + i));
    }
}

// d silu(g) / dg = sig(g) (1 + g (1 - sig(g))).
template <typename T>
__global__ void swiglu_backward_kernel(T *dgate, T *dup, const T *dh, const T *gate, const T *up, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = load_f(gate + i), d = load_f(dh + i), sig = 1.0f / (1.0f + expf(-g));
        store_f(dup + i, d * g * sig);
        store_f(dgate + i, d * load_f(up + i) * sig * (1.0f + g * (1.0f - sig)));
    }
}

extern "C" int kern_swiglu_forward(kern_dtype dt, void *h, const void *gate, const void *up, size_t n, void *stream,
                                   rlvr_err *e) {
    if (n == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    KERN_DISPATCH(dt, e,
                  (swiglu_forward_kernel<float><<<swiglu_blocks(n), SWIGLU_THREADS, 0, s>>>(
                      (float *)h, (const float *)gate, (const float *)up, n)),
                  (swiglu_forward_kernel<bf16><<<swiglu_blocks(n), SWIGLU_THREADS, 0, s>>>(
                      (bf16 *)h, (const bf16 *)gate, (const bf16 *)up, n)));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

extern "C" int kern_swiglu_backward(kern_dtype dt, void *dgate, void *dup, const void *dh, const void *gate,
                                    const void *up, size_t n, void *stream, rlvr_err *e) {
    if (n == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    KERN_DISPATCH(dt, e,
                  (swiglu_backward_kernel<float><<<swiglu_blocks(n), SWIGLU_THREADS, 0, s>>>(
                      (float *)dgate, (float *)dup, (const float *)dh, (const float *)gate, (const float *)up, n)),
                  (swiglu_backward_kernel<bf16><<<swiglu_blocks(n), SWIGLU_THREADS, 0, s>>>(
                      (bf16 *)dgate, (bf16 *)dup, (const bf16 *)dh, (const bf16 *)gate, (const bf16 *)up, n)));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}
