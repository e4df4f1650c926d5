// embedding.cu - the token embedding: lookup forward, and a backward that adds each
// token's gradient rows into its table row without atomics. CPU twins: embedding_forward
// and embedding_backward in core/cpu_ops.c.
//
// Backward: the rows are grouped by token on the host (embedding_group_rows: the rows of
// each distinct token in increasing t), then one block per distinct token adds its rows
// in that order, one thread per column. That is the CPU twin's order of additions
// exactly, so in fp32 the two agree bit for bit, and every run repeats.
#include "cuda_common.cuh"

#define EMBED_THREADS 256

template <typename T> __global__ void embedding_forward_kernel(T *out, const T *table, const int *tokens, int C) {
    const int t = blockIdx.x;
    const T *row = table + (size_t)tokens[t] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) out[(size_t)t * C + c] = row[c];
}

template <typename T>
__global__ void embedding_backward_kernel(float *dtable, const T *dout, const int *order, const int *starts,
                                          const int *unique, int C) {
    const int u = blockIdx.x;
    float *row = dtable + (size_t)unique[u] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = row[c];
        for (int r = starts[u]; r < starts[u + 1]; r++) acc += load_f(dout + (size_t)order[r] * C + c);
        row[c] = acc;
    }
}

extern "C" int kern_embedding_forward(kern_dtype dt, void *out, const void *table, const int *tokens, int T, int C,
                                      void *stream, rlvr_err *e) {
    if (T <= 0 || C <= 0) return err_set(e, "embedding_forward: bad shape T=%d C=%d", T, C);
    cudaStream_t s = (cudaStream_t)stream;
    KERN_DISPATCH(dt, e,
                  (embedding_forward_kernel<float><<<T, EMBED_THREADS, 0, s>>>((float *)out, (const float *)table,
                                                                              tokens, C)),
                  (embedding_forward_kernel<bf16><<<T, EMBED_THREADS, 0, s>>>((bf16 *)out, (const bf16 *)table,
                                                                             tokens, C)));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

extern "C" int kern_embedding_backward(kern_dtype dt, float *dtable, const void *dout, const int *order,
                                       const int *starts, const int *unique, int n_unique, int C, void *stream,
                                       rlvr_err *e) {
    if (n_unique < 0 || C <= 0) return err_set(e, "embedding_backward: bad shape n_unique=%d C=%d", n_unique, C);
    if (n_unique == 0) return 0;
    cudaStream_t s = (cudaStream_t)stream;
    KERN_DISPATCH(dt, e,
                  (embedding_backward_kernel<float><<<n_unique, EMBED_THREADS, 0, s>>>(
                      dtable, (const float *)dout, order, starts, unique, C)),
                  (embedding_backward_kernel<bf16><<<n_unique, EMBED_THREADS, 0, s>>>(
                      dtable, (const bf16 *)dout, order, starts, unique, C)));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}
