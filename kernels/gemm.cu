// gemm.cu - matrix products through cuBLASLt, and the linear layer built on them.
// CPU twins: cpu_sgemm, matmul_forward and matmul_backward in core/cpu_ops.c.
//
// rlvr's tensors are row-major; cuBLASLt's are column-major. A row-major C[M, N] is the
// column-major C^T[N, M], and C = op(A) op(B) is C^T = op(B)^T op(A)^T, so every call
// hands cuBLASLt B as its "A" and A as its "B", with m = N and n = M. Accumulation is
// always fp32 (CUBLAS_COMPUTE_32F: no TF32 for fp32 inputs). For a fixed shape, layout
// and workspace cuBLASLt picks the same algorithm every time and its reductions (split-K
// included) have a fixed order, so results repeat bit for bit run to run; the test
// checks it.
#include <cublasLt.h>

#include "cuda_common.cuh"

#define BLAS_WORKSPACE_BYTES (32u << 20) // what NVIDIA recommends for Hopper

struct kern_blas {
    cublasLtHandle_t lt;
    void *workspace; // [BLAS_WORKSPACE_BYTES] device memory for split-K partials
};

#define CUBLAS_CHECK(call, e)                                                                        \
    do {                                                                                             \
        cublasStatus_t cublas_check_status_ = (call);                                                \
        if (cublas_check_status_ != CUBLAS_STATUS_SUCCESS)                                           \
            return err_set((e), "%s:%d: %s: %s", __FILE__, __LINE__, #call,                          \
                           cublasLtGetStatusString(cublas_check_status_));                           \
    } while (0)

extern "C" kern_blas *kern_blas_new(rlvr_err *e) {
    kern_blas *b = (kern_blas *)calloc(1, sizeof *b);
    if (!b) {
        err_set(e, "out of memory");
        return NULL;
    }
    cublasStatus_t st = cublasLtCreate(&b->lt);
    if (st != CUBLAS_STATUS_SUCCESS) {
        err_set(e, "cublasLtCreate: %s", cublasLtGetStatusString(st));
        free(b);
        return NULL;
    }
    cudaError_t ct = cudaMalloc(&b->workspace, BLAS_WORKSPACE_BYTES);
    if (ct != cudaSuccess) {
        err_set(e, "cuBLASLt workspace (%u bytes): %s", BLAS_WORKSPACE_BYTES, cudaGetErrorString(ct));
        cublasLtDestroy(b->lt);
        free(b);
        return NULL;
    }
    return b;
}

extern "C" void kern_blas_free(kern_blas *b) {
    if (!b) return;
    cudaFree(b->workspace);
    cublasLtDestroy(b->lt);
    free(b);
}

extern "C" size_t kern_dtype_size(kern_dtype t) { return t == KERN_BF16 ? 2 : 4; }

static cudaDataType_t cuda_type(kern_dtype t) { return t == KERN_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

// The largest power of two (up to 256) that divides the address. cuBLASLt's heuristic
// assumes 256-byte aligned matrices unless told otherwise, and may then pick a kernel
// that fails on, say, a vocabulary chunk starting at an odd row of a bf16 matrix.
static uint32_t alignment(const void *p) {
    uint32_t a = 256;
    while (a > 1 && (uintptr_t)p % a) a /= 2;
    return a;
}

// C[m, n] += bias[n], one block per row m: the bias epilogue's work, for the shapes where
// cuBLASLt offers no algorithm with that epilogue.
template <typename T> __global__ void add_bias_kernel(T *C, const T *bias, int N, int ldc) {
    T *row = C + (size_t)blockIdx.x * ldc;
    for (int n = threadIdx.x; n < N; n += blockDim.x) store_f(row + n, load_f(row + n) + load_f(bias + n));
}

// The descriptors of one call; freed by gemm_descs_free whatever happened.
typedef struct gemm_descs {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulPreference_t pref;
} gemm_descs;

static void gemm_descs_free(gemm_descs *d) {
    if (d->pref) cublasLtMatmulPreferenceDestroy(d->pref);
    if (d->c) cublasLtMatrixLayoutDestroy(d->c);
    if (d->b) cublasLtMatrixLayoutDestroy(d->b);
    if (d->a) cublasLtMatrixLayoutDestroy(d->a);
    if (d->op) cublasLtMatmulDescDestroy(d->op);
}

static int gemm_run(kern_blas *blas, gemm_descs *d, kern_dtype ab, kern_dtype ct, int trans_a, int trans_b, int M,
                    int N, int K, float alpha, const void *A, int lda, const void *B, int ldb, float beta, void *C,
                    int ldc, const void *bias, cudaStream_t stream, rlvr_err *e) {
    // Column-major view (see the top of the file): cuBLASLt's A is our B, its B our A.
    cublasOperation_t op_a = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&d->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), e);
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a), e);
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b), e);
    if (bias) {
        // Bias over the rows of the column-major D, i.e. over the columns N of our C.
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), e);
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias), e);
    }
    // Stored shapes (rows x cols, column-major) of what cuBLASLt calls A, B and C.
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d->a, cuda_type(ab), trans_b ? K : N, trans_b ? N : K, ldb), e);
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d->b, cuda_type(ab), trans_a ? M : K, trans_a ? K : M, lda), e);
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d->c, cuda_type(ct), N, M, ldc), e);
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&d->pref), e);
    size_t ws = BLAS_WORKSPACE_BYTES;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d->pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws),
                 e);
    const uint32_t align_a = alignment(B), align_b = alignment(A), align_c = alignment(C);
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d->pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                                      sizeof align_a),
                 e);
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d->pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                                                      sizeof align_b),
                 e);
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d->pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c,
                                                      sizeof align_c),
                 e);
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d->pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c,
                                                      sizeof align_c),
                 e);
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(blas->lt, d->op, d->a, d->b, d->c, d->c, d->pref, 1, &heur, &found),
                 e);
    const void *bias_after = NULL; // set when no algorithm takes the bias epilogue for this shape
    if (found < 1 && bias) {
        cublasLtEpilogue_t none = CUBLASLT_EPILOGUE_DEFAULT;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &none, sizeof none), e);
        CUBLAS_CHECK(
            cublasLtMatmulAlgoGetHeuristic(blas->lt, d->op, d->a, d->b, d->c, d->c, d->pref, 1, &heur, &found), e);
        bias_after = bias;
    }
    if (found < 1)
        return err_set(e, "gemm: cuBLASLt has no algorithm for M=%d N=%d K=%d (%s inputs, %s output%s)", M, N, K,
                       ab == KERN_BF16 ? "bf16" : "fp32", ct == KERN_BF16 ? "bf16" : "fp32", bias ? ", bias" : "");
    CUBLAS_CHECK(cublasLtMatmul(blas->lt, d->op, &alpha, B, d->a, A, d->b, &beta, C, d->c, C, d->c, &heur.algo,
                                blas->workspace, ws, stream),
                 e);
    if (bias_after) {
        if (ct == KERN_BF16)
            add_bias_kernel<bf16><<<M, 256, 0, stream>>>((bf16 *)C, (const bf16 *)bias_after, N, ldc);
        else
            add_bias_kernel<float><<<M, 256, 0, stream>>>((float *)C, (const float *)bias_after, N, ldc);
        CUDA_CHECK(cudaGetLastError(), e);
    }
    return 0;
}

extern "C" int kern_gemm(kern_blas *blas, kern_dtype ab, kern_dtype ct, int trans_a, int trans_b, int M, int N, int K,
                         float alpha, const void *A, int lda, const void *B, int ldb, float beta, void *C, int ldc,
                         const void *bias, void *stream, rlvr_err *e) {
    if (M <= 0 || N <= 0 || K <= 0) return err_set(e, "gemm: bad shape M=%d N=%d K=%d", M, N, K);
    if ((ab != KERN_F32 && ab != KERN_BF16) || (ct != KERN_F32 && ct != KERN_BF16))
        return err_set(e, "gemm: unknown dtype");
    if (lda < (trans_a ? M : K) || ldb < (trans_b ? K : N) || ldc < N)
        return err_set(e, "gemm: leading dimension too small (lda=%d ldb=%d ldc=%d for M=%d N=%d K=%d)", lda, ldb,
                       ldc, M, N, K);
    gemm_descs d = {0, 0, 0, 0, 0};
    int rc = gemm_run(blas, &d, ab, ct, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias,
                      (cudaStream_t)stream, e);
    gemm_descs_free(&d);
    return rc;
}

// dbias[o] += sum_t dout[t, o], in two passes with a fixed order (no atomics):
// bias_partial_kernel sums row group g (rows g*R .. g*R + R - 1) of 64 columns per block
// into partial[g, :] - lane l takes columns l and l + 32, warp w every 8th row from w, and
// the 8 warps' sums are added in order - then bias_sum_kernel adds the groups in order.
// Spreading the rows over groups keeps the whole GPU reading (a block per 32 columns that
// walks all T rows left most multiprocessors idle). The partials live in the cuBLASLt
// workspace: the same stream, after the GEMMs that use it have run.
#define BIAS_COLS 64
#define BIAS_WARPS 8

template <typename T>
__global__ void bias_partial_kernel(float *partial, const T *dout, int rows, int cols, int rows_per_group) {
    __shared__ float sums[BIAS_WARPS][BIAS_COLS];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, c0 = blockIdx.x * BIAS_COLS + lane;
    const int r0 = blockIdx.y * rows_per_group, r1 = min(rows, r0 + rows_per_group);
    float a = 0.0f, b = 0.0f;
    for (int t = r0 + warp; t < r1; t += BIAS_WARPS) {
        const T *row = dout + (size_t)t * cols;
        if (c0 < cols) a += load_f(row + c0);
        if (c0 + 32 < cols) b += load_f(row + c0 + 32);
    }
    sums[warp][lane] = a, sums[warp][lane + 32] = b;
    __syncthreads();
    if (threadIdx.x < BIAS_COLS) {
        const int c = blockIdx.x * BIAS_COLS + threadIdx.x;
        float total = 0.0f;
        for (int w = 0; w < BIAS_WARPS; w++) total += sums[w][threadIdx.x];
        if (c < cols) partial[(size_t)blockIdx.y * cols + c] = total;
    }
}

__global__ void bias_sum_kernel(float *dbias, const float *partial, int groups, int cols) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float sum = 0.0f;
    for (int g = 0; g < groups; g++) sum += partial[(size_t)g * cols + c];
    dbias[c] += sum;
}

// Row groups: about 64 rows each, at most 256 groups, and no more than the workspace holds.
static int bias_groups(int rows, int cols) {
    int groups = (rows + 63) / 64;
    if (groups > 256) groups = 256;
    const size_t fit = BLAS_WORKSPACE_BYTES / ((size_t)cols * sizeof(float));
    if ((size_t)groups > fit) groups = (int)fit;
    return groups < 1 ? 1 : groups;
}

extern "C" int kern_matmul_forward(kern_blas *blas, kern_dtype dt, void *out, const void *inp, const void *w,
                                   const void *bias, int T, int IC, int OC, void *stream, rlvr_err *e) {
    // out[T, OC] = inp[T, IC] @ w[OC, IC]^T (+ bias[OC] in cuBLASLt's epilogue)
    return kern_gemm(blas, dt, dt, 0, 1, T, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out, OC, bias, stream, e);
}

extern "C" int kern_matmul_backward(kern_blas *blas, kern_dtype dt, void *dinp, int accumulate, float *dw,
                                    float *dbias, const void *dout, const void *inp, const void *w, int T, int IC,
                                    int OC, void *stream, rlvr_err *e) {
    // dinp[T, IC] (+)= dout[T, OC] @ w[OC, IC], in the activations' dtype
    if (dinp && kern_gemm(blas, dt, dt, 0, 0, T, IC, OC, 1.0f, dout, OC, w, IC, accumulate ? 1.0f : 0.0f, dinp, IC,
                          NULL, stream, e))
        return -1;
    // dw[OC, IC] += dout^T @ inp, accumulated in fp32 (the gradients' dtype)
    if (kern_gemm(blas, dt, KERN_F32, 1, 0, OC, IC, T, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC, NULL, stream, e))
        return -1;
    if (dbias) {
        if ((size_t)OC * sizeof(float) > BLAS_WORKSPACE_BYTES)
            return err_set(e, "matmul_backward: bias of %d outputs is larger than the workspace", OC);
        const int groups = bias_groups(T, OC), per_group = (T + groups - 1) / groups;
        const dim3 grid((unsigned)((OC + BIAS_COLS - 1) / BIAS_COLS), (unsigned)groups);
        float *partial = (float *)blas->workspace;
        cudaStream_t s = (cudaStream_t)stream;
        KERN_DISPATCH(dt, e,
                      (bias_partial_kernel<float><<<grid, BIAS_WARPS * 32, 0, s>>>(partial, (const float *)dout, T, OC,
                                                                                 per_group)),
                      (bias_partial_kernel<bf16><<<grid, BIAS_WARPS * 32, 0, s>>>(partial, (const bf16 *)dout, T, OC,
                                                                                per_group)));
        bias_sum_kernel<<<(unsigned)((OC + 255) / 256), 256, 0, s>>>(dbias, partial, groups, OC);
        CUDA_CHECK(cudaGetLastError(), e);
    }
    return 0;
}
