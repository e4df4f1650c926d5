/* kernels_nocuda.c - the kernels interface in a build without CUDA: no devices. */
#include "kernels.h"

int kern_device_count(rlvr_err *e) {
    err_set(e, "built without CUDA (nvcc was not found when rlvr was configured)");
    return 0;
}

int kern_device_info_get(int device, kern_device_info *info, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

void *kern_malloc(size_t bytes, rlvr_err *e) {
    err_set(e, "built without CUDA");
    return NULL;
}

void kern_free(void *p) {}

int kern_memcpy_h2d(void *dst, const void *src, size_t bytes, rlvr_err *e) { return err_set(e, "built without CUDA"); }
int kern_memcpy_d2h(void *dst, const void *src, size_t bytes, rlvr_err *e) { return err_set(e, "built without CUDA"); }
int kern_memcpy_d2d(void *dst, const void *src, size_t bytes, rlvr_err *e) { return err_set(e, "built without CUDA"); }
int kern_synchronize(rlvr_err *e) { return err_set(e, "built without CUDA"); }
int kern_memzero(void *p, size_t bytes, void *stream, rlvr_err *e) { return err_set(e, "built without CUDA"); }

void *kern_stream_new(rlvr_err *e) {
    err_set(e, "built without CUDA");
    return NULL;
}
void kern_stream_free(void *stream) {}
int kern_graphs_supported(void) { return 0; }
int kern_graph_begin(void *stream, rlvr_err *e) { return err_set(e, "built without CUDA"); }
int kern_graph_end(void *stream, kern_graph **graph, rlvr_err *e) {
    *graph = NULL;
    return err_set(e, "built without CUDA");
}
int kern_graph_launch(kern_graph *graph, void *stream, rlvr_err *e) { return err_set(e, "built without CUDA"); }
void kern_graph_free(kern_graph *graph) {}
void *kern_event_new(rlvr_err *e) {
    err_set(e, "built without CUDA");
    return NULL;
}
void kern_event_free(void *event) {}
int kern_stream_wait(void *waiter, void *waited, void *event, rlvr_err *e) { return err_set(e, "built without CUDA"); }

size_t kern_dtype_size(kern_dtype t) { return t == KERN_BF16 ? 2 : 4; }

kern_blas *kern_blas_new(rlvr_err *e) {
    err_set(e, "built without CUDA");
    return NULL;
}

void kern_blas_free(kern_blas *b) {}

int kern_gemm(kern_blas *blas, kern_dtype ab, kern_dtype c, int trans_a, int trans_b, int M, int N, int K,
              float alpha, const void *A, int lda, const void *B, int ldb, float beta, void *C, int ldc,
              const void *bias, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_matmul_forward(kern_blas *blas, kern_dtype dt, void *out, const void *inp, const void *w, const void *bias,
                        int T, int IC, int OC, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_matmul_invariant(kern_dtype out_dt, void *out, const void *inp, const void *w, const void *bias, int T,
                          int IC, int OC, int tile, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_matmul_backward(kern_blas *blas, kern_dtype dt, void *dinp, int accumulate, float *dw, float *dbias,
                         const void *dout, const void *inp, const void *w, int T, int IC, int OC, void *stream,
                         rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_embedding_forward(kern_dtype dt, void *out, const void *table, const int *tokens, int T, int C,
                           void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_embedding_backward(kern_dtype dt, float *dtable, const void *dout, const int *order, const int *starts,
                            const int *unique, int n_unique, int C, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_rmsnorm_forward(kern_dtype dt, void *out, float *rstd, const void *x, const void *weight, int T, int C,
                         float eps, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_residual_rmsnorm_forward(kern_dtype dt, void *res_out, void *out, float *rstd, const void *x, const void *y,
                                  const void *weight, int T, int C, float eps, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_rmsnorm_backward(kern_dtype dt, void *dx, float *dweight, const void *dout, const void *x,
                          const void *weight, const float *rstd, int T, int C, void *scratch, void *stream,
                          rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

size_t kern_rmsnorm_backward_scratch(int T, int C) { return 0; }

int kern_residual_add(kern_dtype dt, void *out, const void *a, const void *b, size_t n, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_cast(kern_dtype to, void *dst, kern_dtype from, const void *src, size_t n, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_rope_forward(kern_dtype dt, void *x, const float *inv_freq, const int *pos, int T, int NH, int D,
                      void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_rope_kv_write(kern_dtype dt, void *q, const void *k, const void *v, void *k_cache, void *v_cache,
                       const float *inv_freq, const int *pos, const int *slot_mapping, int T, int H, int KV, int D,
                       int n_blocks, int block_size, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_rope_backward(kern_dtype dt, void *dx, const float *inv_freq, const int *pos, int T, int NH, int D,
                       void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_swiglu_forward(kern_dtype dt, void *h, const void *gate, const void *up, size_t n, void *stream,
                        rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_swiglu_forward_stacked(kern_dtype dt, void *h, const void *gate_up, int rows, int I, void *stream,
                                rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_swiglu_backward(kern_dtype dt, void *dgate, void *dup, const void *dh, const void *gate, const void *up,
                         size_t n, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

size_t kern_lmhead_workspace(kern_dtype dt, int T, int chunk) { return 0; }

int kern_lmhead_logprobs(kern_blas *blas, kern_dtype dt, int invariant, float *logz, float *logp, float *entropy,
                         const void *x, const void *w, const int *targets, int T, int C, int V, int chunk,
                         void *workspace, void *probs, float *chunk_max, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_lmhead_logprobs_of_logits(float *logz, float *logp, const float *logits, const int *targets, int T, int V,
                                   int chunk, void *workspace, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_lmhead_backward(kern_blas *blas, kern_dtype dt, int invariant, float *dx, float *dw, const void *x,
                         const void *w, const int *targets, const float *dlogp, const float *dentropy,
                         const float *logz, const float *entropy, int T, int C, int V, int chunk, void *workspace,
                         const void *probs, const float *chunk_max, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_attention_forward(kern_dtype dt, void *out, float *lse, const void *q, const void *k, const void *v,
                           const int *cu_seqlens, int n_seqs, int max_seqlen, int H, int KV, int D, void *stream,
                           rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_attention_backward(kern_dtype dt, void *dq, void *dk, void *dv, const void *dout, const void *q,
                            const void *k, const void *v, const void *out, const float *lse, const int *cu_seqlens,
                            int n_seqs, int max_seqlen, int T, int H, int KV, int D, void *scratch, void *stream,
                            rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

size_t kern_attention_backward_scratch(int T, int H, int KV, int D) {
    (void)T, (void)H, (void)KV, (void)D;
    return 0;
}

int kern_adamw_step(float *params, void *params_bf16, const float *grads, void *clip_workspace, float *m, float *v,
                    size_t n, long long step, double lr, double beta1, double beta2, double eps, double weight_decay,
                    void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_grad_norm(const float *grads, size_t n, double max_norm, void *workspace, double *norm_host, void *stream,
                   rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_grad_scale(float *grads, size_t n, void *workspace, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_clip_grad_norm(float *grads, size_t n, double max_norm, void *workspace, double *norm_host, void *stream,
                        rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

size_t kern_clip_grad_norm_workspace(void) { return 0; }

int kern_kv_block_copy(kern_dtype dt, void *k_cache, void *v_cache, const int *copies, int n_copies, int n_layers,
                       size_t layer_stride, int n_blocks, int block_size, int KV, int D, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_kv_write(kern_dtype dt, void *k_cache, void *v_cache, const void *k, const void *v, size_t ld,
                  const int *slot_mapping, int T, int n_blocks, int block_size, int KV, int D, void *stream,
                  rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_paged_attention_forward(kern_dtype dt, void *out, float *lse, const void *q, const void *k_cache,
                                 const void *v_cache, const kern_paged_batch *b, int n_blocks, int block_size, int H,
                                 int KV, int D, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

size_t kern_paged_attention_split_scratch(int T, int H, int D, int max_seq_len, int split_len) { return 0; }

int kern_paged_attention_split_forward(kern_dtype dt, void *out, float *lse, const void *q, const void *k_cache,
                                       const void *v_cache, const kern_paged_batch *b, int n_blocks, int block_size,
                                       int H, int KV, int D, int split_len, void *scratch, void *stream,
                                       rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

size_t kern_cascade_attention_scratch(int T, int H, int D, int max_seq_len, int split_len) { return 0; }

int kern_paged_attention_tc_forward(void *out, float *lse, const void *q, const void *k_cache, const void *v_cache,
                                    const kern_paged_batch *b, int n_blocks, int block_size, int H, int KV, int D,
                                    void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_cascade_attention_forward(kern_dtype dt, void *out, float *lse, const void *q, const void *k_cache,
                                   const void *v_cache, const kern_paged_batch *b, int n_blocks, int block_size,
                                   int H, int KV, int D, int split_len, void *scratch, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_sample(const float *logits, int N, int V, const kern_sample_params *params, const uint64_t *seq_ids,
                const uint64_t *positions, uint64_t seed, int *tokens, float *logp, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}

int kern_rng_uniform(float *out, uint32_t *bits, const uint64_t *keys, int n, void *stream, rlvr_err *e) {
    return err_set(e, "built without CUDA");
}
