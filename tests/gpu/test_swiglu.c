/* test_swiglu.c - SwiGLU forward and backward against the CPU twins (swiglu_forward,
 * swiglu_backward), fp32 and bf16, on sizes that are not multiples of a block and one
 * past the grid's 65535-block cap (grid-stride loop). Inputs span |g| up to ~12 so the
 * sigmoid's tails are exercised. Tolerance: 2e-6 relative to the magnitudes behind each
 * output (CUDA's expf and glibc's differ by an ulp or two; near the zero of
 * 1 + g (1 - sig) relative error is unbounded, hence the magnitude), plus the 2^-8
 * rounding of bf16 outputs. */
#include "cpu_ops.h"
#include "gpu_test.h"
#include "rng.h"

static void check_swiglu(kern_dtype dt, size_t n) {
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
    void *d_g = gpu_upload(dt, g, n), *d_u = gpu_upload(dt, u, n), *d_dh = gpu_upload(dt, dh, n);
    void *d_h = gpu_upload(dt, dh, n), *d_dg = gpu_upload(dt, u, n), *d_du = gpu_upload(dt, g, n); /* poisoned */
    CHECK(kern_swiglu_forward(dt, d_h, d_g, d_u, n, NULL, &e) == 0, "%s", e.msg);
    CHECK(kern_swiglu_backward(dt, d_dg, d_du, d_dh, d_g, d_u, n, NULL, &e) == 0, "%s", e.msg);
    float *got_h = malloc(n * 4), *got_dg = malloc(n * 4), *got_du = malloc(n * 4);
    gpu_download(dt, got_h, d_h, n);
    gpu_download(dt, got_dg, d_dg, n);
    gpu_download(dt, got_du, d_du, n);
    double rel = dt == KERN_BF16 ? 1.0 / 256 : 0;
    char what[96];
    snprintf(what, sizeof what, "swiglu %s n=%zu: h", gpu_dtype_name(dt), n);
    double e_h = gpu_check_close(what, got_h, want_h, s_h, n, 1e-30, rel, 2e-6);
    snprintf(what, sizeof what, "swiglu %s n=%zu: dgate", gpu_dtype_name(dt), n);
    double e_dg = gpu_check_close(what, got_dg, want_dg, s_dg, n, 1e-30, rel, 2e-6);
    snprintf(what, sizeof what, "swiglu %s n=%zu: dup", gpu_dtype_name(dt), n);
    double e_du = gpu_check_close(what, got_du, want_du, s_du, n, 1e-30, rel, 2e-6);
    printf("swiglu %s n=%-9zu max |gpu - cpu| h %.3g dgate %.3g dup %.3g\n", gpu_dtype_name(dt), n, e_h, e_dg, e_du);
    kern_free(d_g), kern_free(d_u), kern_free(d_dh), kern_free(d_h), kern_free(d_dg), kern_free(d_du);
    free(g), free(u), free(dh), free(want_h), free(want_dg), free(want_du), free(s_h), free(s_dg), free(s_du);
    free(got_h), free(got_dg), free(got_du);
}

int main(void) {
    gpu_test_require_device();
    const size_t sizes[] = {1, 31, 257, 77 * 4864, (size_t)65535 * 256 + 1001};
    for (int dt = 0; dt < 2; dt++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) check_swiglu((kern_dtype)dt, sizes[i]);
    return gpu_test_finish();
}
