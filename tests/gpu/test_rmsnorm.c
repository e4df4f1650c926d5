/* test_rmsnorm.c - the RMSNorm kernel against its CPU twin on odd and real shapes, and
 * bit-for-bit repeatability (the reduction order is fixed). fp32 tolerance: 2e-6
 * relative + 1e-6 absolute (rsqrtf and the tree-shaped sum differ from the CPU's
 * double-precision sum by a few ulps). */
#include <math.h>
#include <string.h>

#include "cpu_ops.h"
#include "gpu_test.h"
#include "rng.h"

static void check_shape(int T, int C) {
    size_t n = (size_t)T * C;
    float *x = malloc(n * sizeof *x), *w = malloc((size_t)C * sizeof *w);
    float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got), *again = malloc(n * sizeof *again);
    float *want_rstd = malloc((size_t)T * sizeof(float)), *got_rstd = malloc((size_t)T * sizeof(float));
    rng_stream r;
    rng_stream_init(&r, 1234, (uint64_t)(T * 100000 + C));
    for (size_t i = 0; i < n; i++) x[i] = 3.0f * rng_stream_normal(&r);
    for (int c = 0; c < C; c++) w[c] = 1.0f + 0.1f * rng_stream_normal(&r);
    rmsnorm_forward(want, want_rstd, x, w, T, C, 1e-6f);

    rlvr_err e = {{0}};
    float *dx = kern_malloc(n * sizeof(float), &e), *dw = kern_malloc((size_t)C * sizeof(float), &e);
    float *dout = kern_malloc(n * sizeof(float), &e), *drstd = kern_malloc((size_t)T * sizeof(float), &e);
    CHECK(dx && dw && dout && drstd, "%s", e.msg);
    CHECK(kern_memcpy_h2d(dx, x, n * sizeof(float), &e) == 0, "%s", e.msg);
    CHECK(kern_memcpy_h2d(dw, w, (size_t)C * sizeof(float), &e) == 0, "%s", e.msg);
    CHECK(kern_rmsnorm_forward(dout, drstd, dx, dw, T, C, 1e-6f, NULL, &e) == 0, "%s", e.msg);
    CHECK(kern_memcpy_d2h(got, dout, n * sizeof(float), &e) == 0, "%s", e.msg);
    CHECK(kern_memcpy_d2h(got_rstd, drstd, (size_t)T * sizeof(float), &e) == 0, "%s", e.msg);
    CHECK(kern_rmsnorm_forward(dout, NULL, dx, dw, T, C, 1e-6f, NULL, &e) == 0, "%s", e.msg);
    CHECK(kern_memcpy_d2h(again, dout, n * sizeof(float), &e) == 0, "%s", e.msg);

    double max_err = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (err > max_err) max_err = err;
        if (err > 1e-6 + 2e-6 * fabs(want[i])) {
            CHECK(0, "T=%d C=%d: out[%zu] = %.9g, CPU %.9g", T, C, i, got[i], want[i]);
            break;
        }
    }
    for (int t = 0; t < T; t++)
        if (fabs(got_rstd[t] - want_rstd[t]) > 2e-6 * want_rstd[t]) {
            CHECK(0, "T=%d C=%d: rstd[%d] = %.9g, CPU %.9g", T, C, t, got_rstd[t], want_rstd[t]);
            break;
        }
    CHECK(memcmp(got, again, n * sizeof(float)) == 0, "T=%d C=%d: two runs differ", T, C);
    printf("rmsnorm T=%-5d C=%-5d max |gpu - cpu| = %.3g\n", T, C, max_err);
    kern_free(dx);
    kern_free(dw);
    kern_free(dout);
    kern_free(drstd);
    free(x), free(w), free(want), free(got), free(again), free(want_rstd), free(got_rstd);
}

int main(void) {
    gpu_test_require_device();
    /* Odd sizes (not multiples of the block or warp) and the hidden sizes of real models. */
    const int shapes[][2] = {{1, 1}, {3, 7}, {5, 33}, {17, 255}, {64, 896}, {7, 1536}, {129, 3584}, {2, 8191}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_shape(shapes[i][0], shapes[i][1]);
    /* Bad shapes are errors, not launches. */
    rlvr_err e = {{0}};
    CHECK(kern_rmsnorm_forward(NULL, NULL, NULL, NULL, 0, 8, 1e-6f, NULL, &e) == -1, "T=0 accepted");
    printf("%d passed, %d failed\n", gpu_failures ? 0 : 1, gpu_failures ? 1 : 0);
    return gpu_failures ? 1 : 0;
}
