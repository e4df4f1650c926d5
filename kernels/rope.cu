// rope.cu - rotary position embedding, rotate-half convention (Hugging Face), forward
// and backward, in place. CPU twins: rope_forward and rope_backward in core/cpu_ops.c.
//
// Launch: one block per token t, its threads over the (head, pair) grid NH x D/2. The
// angle pos[t] * inv_freq[i] is formed in fp32 as transformers (and the CPU twin) do,
// and cosf/sinf are CUDA's accurate versions (full range reduction), so positions in
// the tens of thousands still agree with the CPU to a few ulps.
#include "cuda_common.cuh"

#define ROPE_THREADS 256

// sign = +1: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin); sign = -1 rotates back by the
// same angle (the transpose), which is the backward.
template <typename T>
__global__ void rope_kernel(T *x, const float *inv_freq, const int *pos, int NH, int D, float sign) {
    const int t = blockIdx.x, half = D / 2;
    const float p = (float)pos[t];
    T *row = x + (size_t)t * NH * D;
    for (int k = threadIdx.x; k < NH * half; k += blockDim.x) {
        const int h = k / half, i = k % half;
        float c, s;
        sincosf(p * inv_freq[i], &s, &c);
        s *= sign;
        T *v = row + (size_t)h * D;
        float x1 = load_f(v + i), x2 = load_f(v + i + half);
        store_f(v + i, x1 * c - x2 * s);
        store_f(v + i + half, x2 * c + x1 * s);
    }
}

static int rope_launch(kern_dtype dt, void *x, const float *inv_freq, const int *pos, int T, int NH, int D,
                       float sign, void *stream, rlvr_err *e) {
    if (T <= 0 || NH <= 0 || D <= 0 || D % 2) return err_set(e, "rope: bad shape T=%d NH=%d D=%d", T, NH, D);
    cudaStream_t s = (cudaStream_t)stream;
    KERN_DISPATCH(dt, e,
                  (rope_kernel<float><<<T, ROPE_THREADS, 0, s>>>((float *)x, inv_freq, pos, NH, D, sign)),
                  (rope_kernel<bf16><<<T, ROPE_THREADS, 0, s>>>((bf16 *)x, inv_freq, pos, NH, D, sign)));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

extern "C" int kern_rope_forward(kern_dtype dt, void *x, const float *inv_freq, const int *pos, int T, int NH, int D,
                                 void *stream, rlvr_err *e) {
    return rope_launch(dt, x, inv_freq, pos, T, NH, D, 1.0f, stream, e);
}

extern "C" int kern_rope_backward(kern_dtype dt, void *dx, const float *inv_freq, const int *pos, int T, int NH,
                                  int D, void *stream, rlvr_err *e) {
    return rope_launch(dt, dx, inv_freq, pos, T, NH, D, -1.0f, stream, e);
}
