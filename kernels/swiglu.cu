// swiglu.cu - SwiGLU forward and backward, elementwise (the MLP's h = silu(gate) * up).
// CPU twins: swiglu_forward and swiglu_backward in core/cpu_ops.c, whose formulas these
// follow; expf here is CUDA's accurate one (2 ulp), not the fast-math intrinsic.
#include <stdint.h>

#include "cuda_common.cuh"

#define SWIGLU_THREADS 256
#define SWIGLU_MAX_BLOCKS 65535u

static unsigned swiglu_blocks(size_t n) {
    size_t b = (n + SWIGLU_THREADS - 1) / SWIGLU_THREADS;
    return b < SWIGLU_MAX_BLOCKS ? (unsigned)b : SWIGLU_MAX_BLOCKS;
}

// Each thread takes 16 bytes of every operand at a time (vec16: 8 bf16 or 4 fp32 values).
// Elements past the last whole vector (and misaligned operands) go through the same
// per-element functions one at a time, so every element gets the same arithmetic.

__device__ __forceinline__ float silu(float g) { return g / (1.0f + expf(-g)); }

template <typename T> __global__ void swiglu_forward_kernel(T *h, const T *gate, const T *up, size_t n, bool vec) {
    typedef vec16<T> V;
    const size_t n_vec = vec ? n / V::N : 0, stride = (size_t)gridDim.x * blockDim.x;
    const size_t first = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (size_t i = first; i < n_vec; i += stride) {
        const V g = ((const V *)gate)[i], u = ((const V *)up)[i];
        V o;
#pragma unroll
        for (int j = 0; j < V::N; j++) store_f(&o.v[j], silu(load_f(&g.v[j])) * load_f(&u.v[j]));
        ((V *)h)[i] = o;
    }
    for (size_t i = n_vec * V::N + first; i < n; i += stride) store_f(h + i, silu(load_f(gate + i)) * load_f(up + i));
}

// h [rows, I] from gate_up [rows, 2I] (row t: its gate, then its up), as the kernel above
// computes each element; vec when I is a whole number of 16-byte vectors and all aligned.
template <typename T>
__global__ void swiglu_forward_stacked_kernel(T *h, const T *gate_up, size_t rows, int I, bool vec) {
    typedef vec16<T> V;
    const size_t stride = (size_t)gridDim.x * blockDim.x, first = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (vec) {
        const int per_row = I / V::N;
        for (size_t i = first; i < rows * per_row; i += stride) {
            const size_t t = i / per_row, c = i % per_row;
            const V g = ((const V *)(gate_up + t * 2 * I))[c], u = ((const V *)(gate_up + t * 2 * I + I))[c];
            V o;
#pragma unroll
            for (int j = 0; j < V::N; j++) store_f(&o.v[j], silu(load_f(&g.v[j])) * load_f(&u.v[j]));
            ((V *)(h + t * I))[c] = o;
        }
        return;
    }
    for (size_t i = first; i < rows * I; i += stride) {
        const size_t t = i / I, c = i % I;
        store_f(h + i, silu(load_f(gate_up + t * 2 * I + c)) * load_f(gate_up + t * 2 * I + I + c));
    }
}

// d silu(g) / dg = sig(g) (1 + g (1 - sig(g))).
__device__ __forceinline__ void swiglu_grad(float d, float g, float u, float *dg, float *du) {
    const float sig = 1.0f / (1.0f + expf(-g));
    *du = d * g * sig;
    *dg = d * u * sig * (1.0f + g * (1.0f - sig));
}

template <typename T>
__global__ void swiglu_backward_kernel(T *dgate, T *dup, const T *dh, const T *gate, const T *up, size_t n, bool vec) {
    typedef vec16<T> V;
    const size_t n_vec = vec ? n / V::N : 0, stride = (size_t)gridDim.x * blockDim.x;
    const size_t first = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (size_t i = first; i < n_vec; i += stride) {
        const V d = ((const V *)dh)[i], g = ((const V *)gate)[i], u = ((const V *)up)[i];
        V dg, du;
#pragma unroll
        for (int j = 0; j < V::N; j++) {
            float a, b;
            swiglu_grad(load_f(&d.v[j]), load_f(&g.v[j]), load_f(&u.v[j]), &a, &b);
            store_f(&dg.v[j], a), store_f(&du.v[j], b);
        }
        ((V *)dgate)[i] = dg, ((V *)dup)[i] = du;
    }
    for (size_t i = n_vec * V::N + first; i < n; i += stride) {
        float a, b;
        swiglu_grad(load_f(dh + i), load_f(gate + i), load_f(up + i), &a, &b);
        store_f(dgate + i, a), store_f(dup + i, b);
    }
}

// Threads for n elements taken 16 bytes at a time (an upper bound when misaligned: the
// grid-stride loops cover the rest).
static unsigned vec_blocks(kern_dtype dt, size_t n) { return swiglu_blocks(n / (dt == KERN_BF16 ? 8 : 4) + 1); }

extern "C" int kern_swiglu_forward(kern_dtype dt, void *h, const void *gate, const void *up, size_t n, void *stream,
                                   rlvr_err *e) {
    if (n == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    const void *ptrs[] = {h, gate, up};
    const bool vec = aligned16(ptrs, 3);
    const unsigned blocks = vec_blocks(dt, n);
    KERN_DISPATCH(dt, e,
                  (swiglu_forward_kernel<float><<<blocks, SWIGLU_THREADS, 0, s>>>((float *)h, (const float *)gate,
                                                                                  (const float *)up, n, vec)),
                  (swiglu_forward_kernel<bf16><<<blocks, SWIGLU_THREADS, 0, s>>>((bf16 *)h, (const bf16 *)gate,
                                                                                 (const bf16 *)up, n, vec)));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

extern "C" int kern_swiglu_forward_stacked(kern_dtype dt, void *h, const void *gate_up, int rows, int I,
                                           void *stream, rlvr_err *e) {
    if (rows < 0 || I < 0) return err_set(e, "swiglu_forward_stacked: rows=%d I=%d", rows, I);
    if (rows == 0 || I == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    const void *ptrs[] = {h, gate_up};
    const int per_vec = dt == KERN_BF16 ? 8 : 4;
    const bool vec = aligned16(ptrs, 2) && I % per_vec == 0;
    const unsigned blocks = vec_blocks(dt, (size_t)rows * I);
    KERN_DISPATCH(dt, e,
                  (swiglu_forward_stacked_kernel<float><<<blocks, SWIGLU_THREADS, 0, s>>>(
                      (float *)h, (const float *)gate_up, (size_t)rows, I, vec)),
                  (swiglu_forward_stacked_kernel<bf16><<<blocks, SWIGLU_THREADS, 0, s>>>(
                      (bf16 *)h, (const bf16 *)gate_up, (size_t)rows, I, vec)));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

extern "C" int kern_swiglu_backward(kern_dtype dt, void *dgate, void *dup, const void *dh, const void *gate,
                                    const void *up, size_t n, void *stream, rlvr_err *e) {
    if (n == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    const void *ptrs[] = {dgate, dup, dh, gate, up};
    const bool vec = aligned16(ptrs, 5);
    const unsigned blocks = vec_blocks(dt, n);
    KERN_DISPATCH(dt, e,
                  (swiglu_backward_kernel<float><<<blocks, SWIGLU_THREADS, 0, s>>>(
                      (float *)dgate, (float *)dup, (const float *)dh, (const float *)gate, (const float *)up, n, vec)),
                  (swiglu_backward_kernel<bf16><<<blocks, SWIGLU_THREADS, 0, s>>>(
                      (bf16 *)dgate, (bf16 *)dup, (const bf16 *)dh, (const bf16 *)gate, (const bf16 *)up, n, vec)));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}
