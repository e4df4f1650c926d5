/* test_swiglu.c - SwiGLU forward and backward against the CPU twins (swiglu_forward,
 * swiglu_backward), fp32 and bf16, on sizes that are not multiples of a block or of a
 * 16-byte vector and one past the grid's 65535-block cap (grid-stride loop), with
 * aligned and misaligned operands (vector and element paths). Inputs span |g| up to ~12 so the
 * sigmoid's tails are exercised. Tolerance: 2e-6 relative to the magnitudes behind each
 * output (CUDA's expf and glibc's differ by an ulp or two; near the zero of
 * 1 + g (1 - sig) relative error is unbounded, hence the magnitude), plus the 2^-8
 * rounding of bf16 outputs. The stacked form (kern_swiglu_forward_stacked: gate and up
 * side by side in one [rows, 2I] product, the rollout engine's) must give
 * kern_swiglu_forward's bits on the halves, with I a whole number of vectors or not. */
#include "cpu_ops.h"
#include "gpu_test.h"
#include "rng.h"

/* shift > 0 starts every device operand that many elements into its buffer: no longer
 * 16-byte aligned, so the kernels take their one-element-at-a-time path throughout. */
static void *upload_shifted(kern_dtype dt, const float *x, size_t n, int shift) {
    float *padded = calloc(n + (size_t)shift, 4);
    memcpy(padded + shift, x, n * 4);
    char *d = gpu_upload(dt, padded, n + (size_t)shift);
    free(padded);
    return d + (size_t)shift * kern_dtype_size(dt);
}

static void check_swiglu(kern_dtype dt, size_t n, int shift) {
    rlvr_err e = {{0}};
    rng_stream r;
    rng_stream_init(&r, 66, (uint64_t)n * 2 + (uint64_t)dt);
    float *g = malloc(n * 4), *u = malloc(n * 4), *dh = malloc(n * 4);
    for (size_t i = 0; i < n; i++) g[i] = 4.0f * rng_stream_normal(&r), u[i] = rng_stream_normal(&r),
                                  dh[i] = rng_stream_normal(&r);
    gpu_round_to(dt, g, n), gpu_round_to(dt, u, n), gpu_round_to(dt, dh, n);
    float *want_h = malloc(n * 4), *want_dg = malloc(n * 4), *want_du = malloc(n * 4);
    float *s_h = malloc(n * 4), *s_dg = malloc(n * 4), *s_du = malloc(n * 4);
    swiglu_forward(want_h, g, u, n);
    swiglu_backward(want_dg, want_du, dh, g, u, n);
    for (size_t i = 0; i < n; i++) {
        float sig = 1.0f / (1.0f + expf(-g[i]));
        s_h[i] = fabsf(g[i] * sig * u[i]);
        s_du[i] = fabsf(dh[i] * g[i] * sig);
        s_dg[i] = fabsf(dh[i] * u[i] * sig) * (1.0f + fabsf(g[i]));
    }
    void *d_g = upload_shifted(dt, g, n, shift), *d_u = upload_shifted(dt, u, n, shift);
    void *d_dh = upload_shifted(dt, dh, n, shift);
    void *d_h = upload_shifted(dt, dh, n, shift), *d_dg = upload_shifted(dt, u, n, shift); /* poisoned */
    void *d_du = upload_shifted(dt, g, n, shift);
    CHECK(kern_swiglu_forward(dt, d_h, d_g, d_u, n, NULL, &e) == 0, "%s", e.msg);
    CHECK(kern_swiglu_backward(dt, d_dg, d_du, d_dh, d_g, d_u, n, NULL, &e) == 0, "%s", e.msg);
    float *got_h = malloc(n * 4), *got_dg = malloc(n * 4), *got_du = malloc(n * 4);
    gpu_download(dt, got_h, d_h, n);
    gpu_download(dt, got_dg, d_dg, n);
    gpu_download(dt, got_du, d_du, n);
    double rel = dt == KERN_BF16 ? 1.0 / 256 : 0;
    char what[96];
    snprintf(what, sizeof what, "swiglu %s n=%zu shift=%d: h", gpu_dtype_name(dt), n, shift);
    double e_h = gpu_check_close(what, got_h, want_h, s_h, n, 1e-30, rel, 2e-6);
    snprintf(what, sizeof what, "swiglu %s n=%zu shift=%d: dgate", gpu_dtype_name(dt), n, shift);
    double e_dg = gpu_check_close(what, got_dg, want_dg, s_dg, n, 1e-30, rel, 2e-6);
    snprintf(what, sizeof what, "swiglu %s n=%zu shift=%d: dup", gpu_dtype_name(dt), n, shift);
    double e_du = gpu_check_close(what, got_du, want_du, s_du, n, 1e-30, rel, 2e-6);
    printf("swiglu %s n=%-9zu shift %d max |gpu - cpu| h %.3g dgate %.3g dup %.3g\n", gpu_dtype_name(dt), n, shift,
           e_h, e_dg, e_du);
    void *bufs[] = {d_g, d_u, d_dh, d_h, d_dg, d_du};
    for (int i = 0; i < 6; i++) kern_free((char *)bufs[i] - (size_t)shift * kern_dtype_size(dt));
    free(g), free(u), free(dh), free(want_h), free(want_dg), free(want_du), free(s_h), free(s_dg), free(s_du);
    free(got_h), free(got_dg), free(got_du);
}

/* kern_swiglu_forward_stacked on [rows, 2I] against kern_swiglu_forward on the two halves
 * copied apart, bit for bit. */
static void check_stacked(kern_dtype dt, int rows, int I) {
    rlvr_err e = {{0}};
    const size_t n = (size_t)rows * I;
    rng_stream r;
    rng_stream_init(&r, 67, n + (uint64_t)dt);
    float *gu = malloc(2 * n * 4), *g = malloc(n * 4), *u = malloc(n * 4);
    for (size_t i = 0; i < 2 * n; i++) gu[i] = 4.0f * rng_stream_normal(&r);
    gpu_round_to(dt, gu, 2 * n);
    for (int t = 0; t < rows; t++)
        for (int c = 0; c < I; c++)
            g[(size_t)t * I + c] = gu[(size_t)t * 2 * I + c], u[(size_t)t * I + c] = gu[(size_t)t * 2 * I + I + c];
    void *d_gu = gpu_upload(dt, gu, 2 * n), *d_g = gpu_upload(dt, g, n), *d_u = gpu_upload(dt, u, n);
    void *d_h1 = gpu_upload(dt, g, n), *d_h2 = gpu_upload(dt, u, n); /* poisoned */
    CHECK(kern_swiglu_forward(dt, d_h1, d_g, d_u, n, NULL, &e) == 0, "%s", e.msg);
    CHECK(kern_swiglu_forward_stacked(dt, d_h2, d_gu, rows, I, NULL, &e) == 0, "%s", e.msg);
    float *h1 = malloc(n * 4), *h2 = malloc(n * 4);
    gpu_download(dt, h1, d_h1, n);
    gpu_download(dt, h2, d_h2, n);
    CHECK(!memcmp(h1, h2, n * 4), "swiglu stacked %s rows=%d I=%d: differs from the halves'", gpu_dtype_name(dt), rows,
          I);
    printf("swiglu stacked %s rows=%-3d I=%-5d: bit for bit the halves'\n", gpu_dtype_name(dt), rows, I);
    kern_free(d_gu), kern_free(d_g), kern_free(d_u), kern_free(d_h1), kern_free(d_h2);
    free(gu), free(g), free(u), free(h1), free(h2);
}

int main(void) {
    gpu_test_require_device();
    const size_t sizes[] = {1, 31, 257, 77 * 4864, (size_t)65535 * 256 + 1001};
    const char *short_env = getenv("RLVR_GPU_TEST_SHORT"); /* the emulation: not the grid's cap */
    const size_t n_sizes = sizeof sizes / sizeof sizes[0] - (short_env && strcmp(short_env, "1") == 0);
    for (int dt = 0; dt < 2; dt++)
        for (size_t i = 0; i < n_sizes; i++) {
            check_swiglu((kern_dtype)dt, sizes[i], 0);
            check_swiglu((kern_dtype)dt, sizes[i], 1); /* misaligned operands */
        }
    for (int dt = 0; dt < 2; dt++) {
        check_stacked((kern_dtype)dt, 37, 4864); /* Qwen2.5-0.5B's MLP: whole vectors */
        check_stacked((kern_dtype)dt, 5, 13);    /* element by element */
        check_stacked((kern_dtype)dt, 1, 1);
    }
    rlvr_err e = {{0}};
    CHECK(kern_swiglu_forward_stacked(KERN_F32, NULL, NULL, -1, 4, NULL, &e) == -1, "stacked: rows -1 accepted");
    return gpu_test_finish();
}
