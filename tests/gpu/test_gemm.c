/* test_gemm.c - the cuBLASLt linear layer (forward with the bias epilogue, backward dX, dW,
 * dbias) and kern_gemm's transposes against the CPU twins (matmul_forward,
 * matmul_backward, cpu_sgemm) on odd and real shapes, in fp32 and bf16.
 *
 * Both sides start from the same numbers (inputs rounded to bf16 first in the bf16 runs),
 * and bf16 x bf16 products are exact in fp32, so what differs is the order of fp32 sums:
 * the bound is 1e-5 * sum_k |a_k b_k| (the magnitude behind each output, computed by the
 * same CPU product on absolute values), plus, where the output is bf16, the rounding of
 * the result: 2^-8 relative. Where an epilogue adds to the product (the bias, or beta * C
 * when dX accumulates), cuBLASLt rounds the product to bf16 before the addition, an
 * error of up to 2^-9 of the product's magnitude, which cancellation can make many ulps
 * of the sum (measured on an H100: 2.6 ulps of a small result); the bound adds 2^-8 *
 * that magnitude. Accumulating outputs start from random values, not zeros.
 * Two runs must agree bit for bit. */
#include "cpu_ops.h"
#include "gpu_test.h"
#include "rng.h"

static kern_blas *blas;

static float *random_array(rng_stream *r, size_t n, float scale, kern_dtype dt) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_stream_normal(r);
    gpu_round_to(dt, x, n);
    return x;
}

static float *abs_copy(const float *x, size_t n) {
    float *a = malloc((n ? n : 1) * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = fabsf(x[i]);
    return a;
}

static void check_linear(kern_dtype dt, int T, int IC, int OC, int with_bias) {
    rlvr_err e = {{0}};
    rng_stream r;
    rng_stream_init(&r, 7, (uint64_t)T * 1000003u + (uint64_t)IC * 1009u + (uint64_t)OC + (uint64_t)dt);
    size_t n_in = (size_t)T * IC, n_w = (size_t)OC * IC, n_out = (size_t)T * OC;
    float *inp = random_array(&r, n_in, 1.0f, dt), *w = random_array(&r, n_w, 0.05f, dt);
    float *bias = with_bias ? random_array(&r, OC, 0.5f, dt) : NULL;
    float *dout = random_array(&r, n_out, 1.0f, dt);
    float *dinp0 = random_array(&r, n_in, 0.1f, dt), *dw0 = random_array(&r, n_w, 0.1f, KERN_F32);
    float *dbias0 = random_array(&r, OC, 0.1f, KERN_F32);
    char what[160];

    /* CPU reference and magnitudes */
    float *want_out = malloc(n_out * sizeof(float)), *scale_out = malloc(n_out * sizeof(float));
    matmul_forward(want_out, inp, w, bias, T, IC, OC);
    float *a_inp = abs_copy(inp, n_in), *a_w = abs_copy(w, n_w), *a_dout = abs_copy(dout, n_out);
    float *a_bias = bias ? abs_copy(bias, OC) : NULL;
    matmul_forward(scale_out, a_inp, a_w, a_bias, T, IC, OC);
    float *want_dinp = malloc(n_in * sizeof(float)), *want_dw = malloc(n_w * sizeof(float));
    float *want_dbias = malloc((size_t)OC * sizeof(float));
    memcpy(want_dinp, dinp0, n_in * sizeof(float));
    memcpy(want_dw, dw0, n_w * sizeof(float));
    memcpy(want_dbias, dbias0, (size_t)OC * sizeof(float));
    matmul_backward(want_dinp, want_dw, want_dbias, dout, inp, w, T, IC, OC);
    float *scale_dinp = abs_copy(dinp0, n_in), *scale_dw = abs_copy(dw0, n_w), *scale_dbias = abs_copy(dbias0, OC);
    matmul_backward(scale_dinp, scale_dw, scale_dbias, a_dout, a_inp, a_w, T, IC, OC);

    /* GPU, twice */
    float *poison = malloc(n_out * sizeof(float));
    for (size_t i = 0; i < n_out; i++) poison[i] = NAN;
    void *d_inp = gpu_upload(dt, inp, n_in), *d_w = gpu_upload(dt, w, n_w), *d_dout = gpu_upload(dt, dout, n_out);
    void *d_bias = bias ? gpu_upload(dt, bias, OC) : NULL;
    float *got[2][4];
    for (int run = 0; run < 2; run++) {
        void *d_out = gpu_upload(dt, poison, n_out); /* NaN: every element must be written */
        void *d_dinp = gpu_upload(dt, dinp0, n_in);
        float *d_dw = gpu_upload(KERN_F32, dw0, n_w), *d_dbias = gpu_upload(KERN_F32, dbias0, OC);
        CHECK(kern_matmul_forward(blas, dt, d_out, d_inp, d_w, d_bias, T, IC, OC, NULL, &e) == 0, "%s", e.msg);
        CHECK(kern_matmul_backward(blas, dt, d_dinp, 1, d_dw, d_dbias, d_dout, d_inp, d_w, T, IC, OC, NULL, &e) == 0,
              "%s", e.msg);
        CHECK(kern_synchronize(&e) == 0, "%s", e.msg);
        got[run][0] = malloc(n_out * sizeof(float)), got[run][1] = malloc(n_in * sizeof(float));
        got[run][2] = malloc(n_w * sizeof(float)), got[run][3] = malloc((size_t)OC * sizeof(float));
        gpu_download(dt, got[run][0], d_out, n_out);
        gpu_download(dt, got[run][1], d_dinp, n_in);
        gpu_download(KERN_F32, got[run][2], d_dw, n_w);
        gpu_download(KERN_F32, got[run][3], d_dbias, OC);
        kern_free(d_out), kern_free(d_dinp), kern_free(d_dw), kern_free(d_dbias);
    }
    double round_rel = dt == KERN_BF16 ? 1.0 / 256 : 0.0;
    double stol_out = 1e-5 + (dt == KERN_BF16 && with_bias ? 1.0 / 256 : 0.0); /* product rounded, then + bias */
    double stol_dinp = 1e-5 + (dt == KERN_BF16 ? 1.0 / 256 : 0.0);             /* product rounded, then + dinp */
    snprintf(what, sizeof what, "%s T=%d IC=%d OC=%d bias=%d: out", gpu_dtype_name(dt), T, IC, OC, with_bias);
    double e_out = gpu_check_close(what, got[0][0], want_out, scale_out, n_out, 1e-30, round_rel, stol_out);
    snprintf(what, sizeof what, "%s T=%d IC=%d OC=%d: dinp", gpu_dtype_name(dt), T, IC, OC);
    double e_dinp = gpu_check_close(what, got[0][1], want_dinp, scale_dinp, n_in, 1e-30, round_rel, stol_dinp);
    snprintf(what, sizeof what, "%s T=%d IC=%d OC=%d: dw", gpu_dtype_name(dt), T, IC, OC);
    double e_dw = gpu_check_close(what, got[0][2], want_dw, scale_dw, n_w, 1e-30, 0.0, 1e-5);
    snprintf(what, sizeof what, "%s T=%d IC=%d OC=%d: dbias", gpu_dtype_name(dt), T, IC, OC);
    double e_db = gpu_check_close(what, got[0][3], want_dbias, scale_dbias, OC, 1e-30, 0.0, 1e-5);
    const size_t sizes[4] = {n_out, n_in, n_w, (size_t)OC};
    for (int k = 0; k < 4; k++) /* bf16 outputs were widened exactly on download */
        CHECK(memcmp(got[0][k], got[1][k], sizes[k] * sizeof(float)) == 0,
              "%s T=%d IC=%d OC=%d: output %d differs between two runs", gpu_dtype_name(dt), T, IC, OC, k);
    printf("linear %s T=%-4d IC=%-5d OC=%-5d bias=%d max |diff| out %.2g dinp %.2g dw %.2g dbias %.2g\n",
           gpu_dtype_name(dt), T, IC, OC, with_bias, e_out, e_dinp, e_dw, e_db);

    /* accumulate = 0: dinp starts as NaN and must come out as dout @ w alone */
    {
        float *want0 = calloc(n_in, sizeof(float)), *scale0 = calloc(n_in, sizeof(float));
        float *dw_scratch = calloc(n_w, sizeof(float)), *got0 = malloc(n_in * sizeof(float));
        matmul_backward(want0, dw_scratch, NULL, dout, inp, w, T, IC, OC);
        matmul_backward(scale0, dw_scratch, NULL, a_dout, a_inp, a_w, T, IC, OC);
        for (size_t i = 0; i < n_in; i++) got0[i] = NAN;
        void *d_dinp = gpu_upload(dt, got0, n_in);
        float *d_dw = gpu_upload(KERN_F32, dw0, n_w);
        CHECK(kern_matmul_backward(blas, dt, d_dinp, 0, d_dw, NULL, d_dout, d_inp, d_w, T, IC, OC, NULL, &e) == 0,
              "%s", e.msg);
        gpu_download(dt, got0, d_dinp, n_in);
        snprintf(what, sizeof what, "%s T=%d IC=%d OC=%d: dinp written over", gpu_dtype_name(dt), T, IC, OC);
        gpu_check_close(what, got0, want0, scale0, n_in, 1e-30, round_rel, 1e-5);
        kern_free(d_dinp), kern_free(d_dw);
        free(want0), free(scale0), free(dw_scratch), free(got0);
    }

    for (int run = 0; run < 2; run++)
        for (int k = 0; k < 4; k++) free(got[run][k]);
    kern_free(d_inp), kern_free(d_w), kern_free(d_dout), kern_free(d_bias);
    free(inp), free(w), free(bias), free(dout), free(dinp0), free(dw0), free(dbias0), free(poison);
    free(want_out), free(scale_out), free(a_inp), free(a_w), free(a_dout), free(a_bias);
    free(want_dinp), free(want_dw), free(want_dbias), free(scale_dinp), free(scale_dw), free(scale_dbias);
}

/* kern_gemm directly: every transpose combination, alpha and beta not 1, padded leading
 * dimensions, fp32 output from bf16 inputs, and matrices that start `offset` elements
 * into their buffers (not 16-byte aligned), as a vocabulary chunk of the LM head can. */
static void check_gemm(kern_dtype ab, kern_dtype ct, int ta, int tb, int M, int N, int K, int offset) {
    rlvr_err e = {{0}};
    rng_stream r;
    rng_stream_init(&r, 8, (uint64_t)(ta * 2 + tb) * 7919u + (uint64_t)M * 31u + (uint64_t)N + (uint64_t)K * 977u);
    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = random_array(&r, na, 1.0f, ab), *B = random_array(&r, nb, 1.0f, ab), *C0 = random_array(&r, nc, 1.0f, ct);
    float *want = malloc(nc * sizeof(float)), *scale = abs_copy(C0, nc), *got = malloc(nc * sizeof(float));
    float *aA = abs_copy(A, na), *aB = abs_copy(B, nb);
    memcpy(want, C0, nc * sizeof(float));
    cpu_sgemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, -2.0f, want, ldc);
    for (size_t i = 0; i < nc; i++) scale[i] *= 2.0f;
    cpu_sgemm(ta, tb, M, N, K, 0.5f, aA, lda, aB, ldb, 1.0f, scale, ldc);
    /* device copies with `offset` elements of padding in front */
    float *pA = calloc(na + offset, 4), *pB = calloc(nb + offset, 4), *pC = calloc(nc + offset, 4);
    memcpy(pA + offset, A, na * 4), memcpy(pB + offset, B, nb * 4), memcpy(pC + offset, C0, nc * 4);
    void *dA = gpu_upload(ab, pA, na + offset), *dB = gpu_upload(ab, pB, nb + offset);
    void *dC = gpu_upload(ct, pC, nc + offset);
    size_t ea = (size_t)offset * kern_dtype_size(ab), ec = (size_t)offset * kern_dtype_size(ct);
    CHECK(kern_gemm(blas, ab, ct, ta, tb, M, N, K, 0.5f, (char *)dA + ea, lda, (char *)dB + ea, ldb, -2.0f,
                    (char *)dC + ec, ldc, NULL, NULL, &e) == 0,
          "%s", e.msg);
    gpu_download(ct, pC, dC, nc + offset);
    memcpy(got, pC + offset, nc * 4);
    for (int i = 0; i < offset; i++) CHECK(pC[i] == 0.0f, "gemm wrote before C (element %d)", i - offset);
    free(pA), free(pB), free(pC);
    char what[128];
    snprintf(what, sizeof what, "gemm %s->%s ta=%d tb=%d M=%d N=%d K=%d offset=%d", gpu_dtype_name(ab),
             gpu_dtype_name(ct), ta, tb, M, N, K, offset);
    double err = gpu_check_close(what, got, want, scale, nc, 1e-30, ct == KERN_BF16 ? 1.0 / 256 : 0.0, 1e-5);
    printf("%s max |diff| %.2g\n", what, err);
    kern_free(dA), kern_free(dB), kern_free(dC);
    free(A), free(B), free(C0), free(want), free(scale), free(got), free(aA), free(aB);
}

int main(void) {
    gpu_test_require_device();
    rlvr_err e = {{0}};
    blas = kern_blas_new(&e);
    CHECK(blas != NULL, "%s", e.msg);
    if (!blas) return gpu_test_finish();
    /* odd shapes, then Qwen2.5-0.5B's projections (C 896, KV*D 128, I 4864) and a 1.5B one */
    const int shapes[][3] = {{1, 1, 1}, {3, 7, 5}, {17, 33, 65}, {31, 127, 129}, {129, 896, 128},
                             {77, 896, 4864}, {64, 4864, 896}, {33, 1536, 1536}};
    for (int dt = 0; dt < 2; dt++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            check_linear((kern_dtype)dt, shapes[i][0], shapes[i][1], shapes[i][2], (int)(i % 2 == 0));
    check_linear(KERN_BF16, 50, 896, 1152, 1); /* q, k, v fused with Qwen's bias */
    /* dbias over many row groups: a short last group (4099 = 64 * 64 + 3), and the
     * 256-group cap with empty groups at the end (16411 rows) */
    check_linear(KERN_BF16, 4099, 64, 200, 1);
    check_linear(KERN_F32, 16411, 16, 70, 1);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            check_gemm(KERN_F32, KERN_F32, ta, tb, 19, 23, 41, 0);
            check_gemm(KERN_BF16, KERN_F32, ta, tb, 64, 40, 300, 0);
            check_gemm(KERN_BF16, KERN_BF16, ta, tb, 5, 130, 77, 0);
            check_gemm(KERN_BF16, KERN_F32, ta, tb, 33, 64, 96, 1); /* 2-byte aligned operands */
            check_gemm(KERN_F32, KERN_F32, ta, tb, 16, 16, 16, 3);  /* 4-byte aligned */
        }
    /* bad shapes and leading dimensions are errors, not launches */
    CHECK(kern_gemm(blas, KERN_F32, KERN_F32, 0, 0, 0, 4, 4, 1, NULL, 4, NULL, 4, 0, NULL, 4, NULL, NULL, &e) == -1,
          "M=0 accepted");
    CHECK(kern_gemm(blas, KERN_F32, KERN_F32, 0, 0, 4, 4, 4, 1, NULL, 3, NULL, 4, 0, NULL, 4, NULL, NULL, &e) == -1,
          "lda < K accepted");
    kern_blas_free(blas);
    return gpu_test_finish();
}
