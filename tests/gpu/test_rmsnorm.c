/* test_rmsnorm.c - RMSNorm forward (alone and fused with the residual add) and backward
 * against the CPU twins (rmsnorm_forward, rmsnorm_backward) on odd and real shapes, fp32
 * and bf16, and bit-for-bit repeatability (every reduction has a fixed order).
 *
 * Tolerances. fp32 forward: 2e-6 relative + 1e-6 absolute (rsqrtf and a tree-shaped sum
 * against the CPU's double sum: a few ulps). bf16: inputs rounded to bf16 before both
 * sides; the output's own rounding is 2^-8 relative. Backward: sums over C (dx) or over T
 * (dweight) in another order, bounded by 1e-5 times the sum of the magnitudes behind each
 * output; dx in bf16 adds its 2^-8 rounding. Accumulated outputs start from random values. */
#include "cpu_ops.h"
#include "gpu_test.h"
#include "rng.h"

static float *random_array(rng_stream *r, size_t n, float mean, float scale, kern_dtype dt) {
    float *x = calloc(n ? n : 1, sizeof *x); /* calloc: some gcc versions cannot see the loop fill it */
    for (size_t i = 0; i < n; i++) x[i] = mean + scale * rng_stream_normal(r);
    gpu_round_to(dt, x, n);
    return x;
}

static void check_forward(kern_dtype dt, int T, int C, int fused) {
    rlvr_err e = {{0}};
    size_t n = (size_t)T * C;
    rng_stream r;
    rng_stream_init(&r, 1234, (uint64_t)(T * 100000 + C) * 4 + (uint64_t)dt * 2 + (uint64_t)fused);
    float *x = random_array(&r, n, 0.0f, 3.0f, dt), *y = random_array(&r, n, 0.0f, 1.0f, dt);
    float *w = random_array(&r, C, 1.0f, 0.1f, dt);
    float *res = malloc(n * sizeof *res), *want = malloc(n * sizeof *want), *want_rstd = malloc((size_t)T * 4);
    float *got = malloc(n * sizeof *got), *got_res = malloc(n * sizeof *got_res), *got_rstd = malloc((size_t)T * 4);
    float *again = malloc(n * sizeof *again);
    /* CPU: the model's residual add (rounded to the activations' dtype), then the norm */
    for (size_t i = 0; i < n; i++) res[i] = fused ? x[i] + y[i] : x[i];
    gpu_round_to(dt, res, n);
    rmsnorm_forward(want, want_rstd, res, w, T, C, 1e-6f);

    void *dx = gpu_upload(dt, x, n), *dy = gpu_upload(dt, y, n), *dw = gpu_upload(dt, w, C);
    void *dout = gpu_upload(dt, y, n), *dres = gpu_upload(dt, y, n); /* poisoned with y: must be overwritten */
    float *drstd = gpu_upload(KERN_F32, y, T);
    for (int run = 0; run < 2; run++) {
        if (fused)
            CHECK(kern_residual_rmsnorm_forward(dt, dres, dout, drstd, dx, dy, dw, T, C, 1e-6f, NULL, &e) == 0, "%s",
                  e.msg);
        else
            CHECK(kern_rmsnorm_forward(dt, dout, drstd, dx, dw, T, C, 1e-6f, NULL, &e) == 0, "%s", e.msg);
        gpu_download(dt, run ? again : got, dout, n);
    }
    gpu_download(KERN_F32, got_rstd, drstd, T);
    if (fused) gpu_download(dt, got_res, dres, n);

    char what[128];
    snprintf(what, sizeof what, "rmsnorm%s %s T=%d C=%d: out", fused ? "+residual" : "", gpu_dtype_name(dt), T, C);
    double err = gpu_check_close(what, got, want, NULL, n, 1e-6, dt == KERN_BF16 ? 1.0 / 256 : 2e-6, 0);
    snprintf(what, sizeof what, "rmsnorm %s T=%d C=%d: rstd", gpu_dtype_name(dt), T, C);
    gpu_check_close(what, got_rstd, want_rstd, NULL, T, 0, 2e-6, 0);
    if (fused) {
        snprintf(what, sizeof what, "residual %s T=%d C=%d", gpu_dtype_name(dt), T, C);
        gpu_check_close(what, got_res, res, NULL, n, 0, 0, 0); /* one rounded add: exact */
    }
    CHECK(memcmp(got, again, n * sizeof(float)) == 0, "T=%d C=%d: two runs differ", T, C);
    printf("rmsnorm%-9s %s T=%-5d C=%-5d max |gpu - cpu| = %.3g\n", fused ? "+residual" : "", gpu_dtype_name(dt), T, C,
           err);
    kern_free(dx), kern_free(dy), kern_free(dw), kern_free(dout), kern_free(dres), kern_free(drstd);
    free(x), free(y), free(w), free(res), free(want), free(want_rstd), free(got), free(got_res), free(got_rstd);
    free(again);
}

static void check_backward(kern_dtype dt, int T, int C, int with_dx) {
    rlvr_err e = {{0}};
    size_t n = (size_t)T * C;
    rng_stream r;
    rng_stream_init(&r, 4321, (uint64_t)(T * 100000 + C) * 2 + (uint64_t)dt);
    float *x = random_array(&r, n, 0.0f, 2.0f, dt), *w = random_array(&r, C, 1.0f, 0.1f, dt);
    float *dy = random_array(&r, n, 0.0f, 1.0f, dt);
    float *dx0 = random_array(&r, n, 0.0f, 0.5f, dt), *dw0 = random_array(&r, C, 0.0f, 0.5f, KERN_F32);
    float *out = malloc(n * sizeof *out), *rstd = malloc((size_t)T * sizeof *rstd);
    rmsnorm_forward(out, rstd, x, w, T, C, 1e-6f);
    float *want_dx = malloc(n * sizeof(float)), *want_dw = malloc((size_t)C * sizeof(float));
    memcpy(want_dx, dx0, n * sizeof(float));
    memcpy(want_dw, dw0, (size_t)C * sizeof(float));
    rmsnorm_backward(with_dx ? want_dx : NULL, want_dw, dy, x, w, rstd, T, C);
    /* magnitudes behind each output: the same formulas on absolute values, with the two
     * terms of dx added rather than subtracted */
    float *scale_dx = malloc(n * sizeof(float)), *scale_dw = malloc((size_t)C * sizeof(float));
    for (int c = 0; c < C; c++) scale_dw[c] = fabsf(dw0[c]);
    for (int t = 0; t < T; t++) {
        double dot = 0;
        for (int c = 0; c < C; c++) {
            size_t i = (size_t)t * C + c;
            dot += fabs((double)dy[i] * w[c] * x[i]);
            scale_dw[c] += fabsf(dy[i] * x[i] * rstd[t]);
        }
        float k = (float)(dot * rstd[t] * rstd[t] * rstd[t] / C);
        for (int c = 0; c < C; c++) {
            size_t i = (size_t)t * C + c;
            scale_dx[i] = fabsf(dx0[i]) + fabsf(rstd[t] * w[c] * dy[i]) + k * fabsf(x[i]);
        }
    }

    void *d_x = gpu_upload(dt, x, n), *d_w = gpu_upload(dt, w, C), *d_dy = gpu_upload(dt, dy, n);
    float *d_rstd = gpu_upload(KERN_F32, rstd, T);
    void *scratch = kern_malloc(kern_rmsnorm_backward_scratch(T, C), &e);
    CHECK(scratch != NULL, "%s", e.msg);
    float *got_dx[2], *got_dw[2];
    for (int run = 0; run < 2; run++) {
        void *d_dx = gpu_upload(dt, dx0, n);
        float *d_dw = gpu_upload(KERN_F32, dw0, C);
        CHECK(kern_rmsnorm_backward(dt, with_dx ? d_dx : NULL, d_dw, d_dy, d_x, d_w, d_rstd, T, C, scratch, NULL, &e) ==
                  0,
              "%s", e.msg);
        got_dx[run] = malloc(n * sizeof(float));
        got_dw[run] = malloc((size_t)C * sizeof(float));
        gpu_download(dt, got_dx[run], d_dx, n);
        gpu_download(KERN_F32, got_dw[run], d_dw, C);
        kern_free(d_dx), kern_free(d_dw);
    }
    char what[128];
    snprintf(what, sizeof what, "rmsnorm backward %s T=%d C=%d: dx", gpu_dtype_name(dt), T, C);
    double e_dx = gpu_check_close(what, got_dx[0], want_dx, scale_dx, n, 1e-30, dt == KERN_BF16 ? 1.0 / 256 : 0, 1e-5);
    snprintf(what, sizeof what, "rmsnorm backward %s T=%d C=%d: dweight", gpu_dtype_name(dt), T, C);
    double e_dw = gpu_check_close(what, got_dw[0], want_dw, scale_dw, C, 1e-30, 0, 1e-5);
    CHECK(memcmp(got_dx[0], got_dx[1], n * sizeof(float)) == 0 && memcmp(got_dw[0], got_dw[1], (size_t)C * 4) == 0,
          "rmsnorm backward %s T=%d C=%d: two runs differ", gpu_dtype_name(dt), T, C);
    printf("rmsnorm backward %s T=%-5d C=%-5d dx=%d max |gpu - cpu| dx %.3g dweight %.3g\n", gpu_dtype_name(dt), T, C,
           with_dx, e_dx, e_dw);
    kern_free(d_x), kern_free(d_w), kern_free(d_dy), kern_free(d_rstd), kern_free(scratch);
    for (int run = 0; run < 2; run++) free(got_dx[run]), free(got_dw[run]);
    free(x), free(w), free(dy), free(dx0), free(dw0), free(out), free(rstd), free(want_dx), free(want_dw);
    free(scale_dx), free(scale_dw);
}

int main(void) {
    gpu_test_require_device();
    /* Odd sizes (not multiples of the block or warp), real hidden sizes, and T past the
     * backward's 512 row groups. */
    const int shapes[][2] = {{1, 1}, {3, 7}, {5, 33}, {17, 255}, {64, 896}, {7, 1536}, {129, 3584}, {2, 8191}, {1100, 64}, {3, 16384}};
    for (int dt = 0; dt < 2; dt++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            check_forward((kern_dtype)dt, shapes[i][0], shapes[i][1], 0);
            check_forward((kern_dtype)dt, shapes[i][0], shapes[i][1], 1);
            check_backward((kern_dtype)dt, shapes[i][0], shapes[i][1], 1);
        }
    check_backward(KERN_F32, 33, 129, 0); /* weight gradient only */
    /* Bad shapes are errors, not launches. */
    rlvr_err e = {{0}};
    CHECK(kern_rmsnorm_forward(KERN_F32, NULL, NULL, NULL, NULL, 0, 8, 1e-6f, NULL, &e) == -1, "T=0 accepted");
    CHECK(kern_rmsnorm_backward(KERN_F32, NULL, NULL, NULL, NULL, NULL, NULL, 4, 8, NULL, NULL, &e) == -1,
          "no scratch accepted");
    CHECK(kern_rmsnorm_forward((kern_dtype)7, NULL, NULL, NULL, NULL, 4, 8, 1e-6f, NULL, &e) == -1,
          "unknown dtype accepted");
    return gpu_test_finish();
}
