// elementwise.cu - the residual add and dtype conversion: one thread per element,
// grid-stride so that any n fits one launch. No reductions, so nothing here depends on
// timing. The residual add's CPU twin is the add loop of model_forward in core/model.c.
#include "cuda_common.cuh"

#define EW_THREADS 256
#define EW_MAX_BLOCKS 65535u

static unsigned ew_blocks(size_t n) {
    size_t b = (n + EW_THREADS - 1) / EW_THREADS;
    return b < EW_MAX_BLOCKS ? (unsigned)b : EW_MAX_BLOCKS;
}

template <typename T> __global__ void residual_add_kernel(T *out, const T *a, const T *b, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        store_f(out + i, load_f(a + i) + load_f(b + i));
}

extern "C" int kern_residual_add(kern_dtype dt, void *out, const void *a, const void *b, size_t n, void *stream,
                                 rlvr_err *e) {
    if (n == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    KERN_DISPATCH(dt, e,
                  (residual_add_kernel<float><<<ew_blocks(n), EW_THREADS, 0, s>>>((float *)out, (const float *)a,
                                                                                  (const float *)b, n)),
                  (residual_add_kernel<bf16><<<ew_blocks(n), EW_THREADS, 0, s>>>((bf16 *)out, (const bf16 *)a,
                                                                                 (const bf16 *)b, n)));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

template <typename To, typename From> __global__ void cast_kernel(To *dst, const From *src, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        store_f(dst + i, load_f(src + i));
}

extern "C" int kern_cast(kern_dtype to, void *dst, kern_dtype from, const void *src, size_t n, void *stream,
                         rlvr_err *e) {
    if (n == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    unsigned blocks = ew_blocks(n);
    if (to == KERN_F32 && from == KERN_BF16)
        cast_kernel<float, bf16><<<blocks, EW_THREADS, 0, s>>>((float *)dst, (const bf16 *)src, n);
    else if (to == KERN_BF16 && from == KERN_F32)
        cast_kernel<bf16, float><<<blocks, EW_THREADS, 0, s>>>((bf16 *)dst, (const float *)src, n);
    else if (to == from && (to == KERN_F32 || to == KERN_BF16))
        CUDA_CHECK(cudaMemcpyAsync(dst, src, n * kern_dtype_size(to), cudaMemcpyDeviceToDevice, s), e);
    else
        return err_set(e, "cast: unknown dtype");
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}
