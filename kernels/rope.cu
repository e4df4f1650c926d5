// rope.cu - rotary position embedding, rotate-half convention (Hugging Face), forward
// and backward, in place. CPU twins: rope_forward and rope_backward in core/cpu_ops.c.
//
// Launch: one block per token t, its threads over the (head, pair) grid NH x D/2. The
// angle pos[t] * inv_freq[i] is formed in fp32 as transformers (and the CPU twin) do,
// and cosf/sinf are CUDA's accurate versions (full range reduction), so positions in
// the tens of thousands still agree with the CPU to a few ulps.
#include <climits>

#include "cuda_common.cuh"

#define ROPE_THREADS 256

// (x1, x2) -> (x1 c - x2 s, x2 c + x1 s), each product and sum rounded once (no fused
// multiply-add), so that the two kernels below, which the training forward and the rollout
// engine run on the same rows, give the same bits.
__device__ __forceinline__ void rope_turn(float x1, float x2, float c, float s, float *y1, float *y2) {
    *y1 = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
    *y2 = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
}

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
        float y1, y2;
        rope_turn(load_f(v + i), load_f(v + i + half), c, s, &y1, &y2);
        store_f(v + i, y1);
        store_f(v + i + half, y2);
    }
}

// The rollout engine's decode step in one launch: q [T, H, D] turned in place, k [T, KV, D]
// turned and, with v, written to the row's pool slot (slot_mapping[t]; -1 or outside the
// pool: not kept). The same arithmetic as rope_kernel on q and k then kv_write_kernel.
template <typename T>
__global__ void rope_kv_write_kernel(T *q, const T *k, const T *v, T *k_cache, T *v_cache, const float *inv_freq,
                                     const int *pos, const int *slot_mapping, int H, int KV, int D, int n_slots) {
    const int t = blockIdx.x, half = D / 2, slot = slot_mapping[t];
    const bool keep = slot >= 0 && slot < n_slots;
    const float p = (float)pos[t];
    T *qrow = q + (size_t)t * H * D;
    const T *krow = k + (size_t)t * KV * D, *vrow = v + (size_t)t * KV * D;
    T *kdst = k_cache + (size_t)(keep ? slot : 0) * KV * D, *vdst = v_cache + (size_t)(keep ? slot : 0) * KV * D;
    for (int j = threadIdx.x; j < (H + KV) * half; j += blockDim.x) {
        const int h = j / half, i = j % half;
        if (h >= H && !keep) continue; // a k row kept nowhere
        float c, s;
        sincosf(p * inv_freq[i], &s, &c);
        const T *src = h < H ? qrow + (size_t)h * D : krow + (size_t)(h - H) * D;
        T *dst = h < H ? qrow + (size_t)h * D : kdst + (size_t)(h - H) * D;
        float y1, y2;
        rope_turn(load_f(src + i), load_f(src + i + half), c, s, &y1, &y2);
        store_f(dst + i, y1);
        store_f(dst + i + half, y2);
    }
    if (keep)
        for (int j = threadIdx.x; j < KV * D; j += blockDim.x) vdst[j] = vrow[j];
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

extern "C" int kern_rope_kv_write(kern_dtype dt, void *q, const void *k, const void *v, void *k_cache, void *v_cache,
                                  const float *inv_freq, const int *pos, const int *slot_mapping, int T, int H, int KV,
                                  int D, int n_blocks, int block_size, void *stream, rlvr_err *e) {
    if (T <= 0 || H <= 0 || KV <= 0 || D <= 0 || D % 2 || n_blocks <= 0 || block_size <= 0 ||
        (long long)n_blocks * block_size > INT_MAX)
        return err_set(e, "rope_kv_write: bad shape T=%d H=%d KV=%d D=%d, pool of %d blocks of %d", T, H, KV, D,
                       n_blocks, block_size);
    if (!q || !k || !v || !k_cache || !v_cache || !inv_freq || !pos || !slot_mapping)
        return err_set(e, "rope_kv_write: NULL tensor");
    cudaStream_t s = (cudaStream_t)stream;
    const int n_slots = n_blocks * block_size;
    KERN_DISPATCH(dt, e,
                  (rope_kv_write_kernel<float><<<T, ROPE_THREADS, 0, s>>>(
                      (float *)q, (const float *)k, (const float *)v, (float *)k_cache, (float *)v_cache, inv_freq,
                      pos, slot_mapping, H, KV, D, n_slots)),
                  (rope_kv_write_kernel<bf16><<<T, ROPE_THREADS, 0, s>>>(
                      (bf16 *)q, (const bf16 *)k, (const bf16 *)v, (bf16 *)k_cache, (bf16 *)v_cache, inv_freq, pos,
                      slot_mapping, H, KV, D, n_slots)));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

extern "C" int kern_rope_backward(kern_dtype dt, void *dx, const float *inv_freq, const int *pos, int T, int NH,
                                  int D, void *stream, rlvr_err *e) {
    return rope_launch(dt, dx, inv_freq, pos, T, NH, D, -1.0f, stream, e);
}
