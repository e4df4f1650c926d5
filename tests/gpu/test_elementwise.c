/* test_elementwise.c - the residual add (CPU twin: the add loop of model_forward) and dtype
 * conversion: both are one rounding of an exact fp32 value, so the GPU must match the CPU
 * bit for bit, including in place (out aliasing an input) and past the grid's cap. */
#include "gpu_test.h"
#include "rng.h"

static void check_add(kern_dtype dt, size_t n) {
    rlvr_err e = {{0}};
    rng_stream r;
    rng_stream_init(&r, 77, (uint64_t)n * 2 + (uint64_t)dt);
    float *a = malloc(n * 4), *b = malloc(n * 4), *want = malloc(n * 4), *got = malloc(n * 4);
    for (size_t i = 0; i < n; i++) a[i] = rng_stream_normal(&r), b[i] = 0.01f * rng_stream_normal(&r);
    gpu_round_to(dt, a, n), gpu_round_to(dt, b, n);
    for (size_t i = 0; i < n; i++) want[i] = a[i] + b[i];
    gpu_round_to(dt, want, n);
    void *d_a = gpu_upload(dt, a, n), *d_b = gpu_upload(dt, b, n);
    CHECK(kern_residual_add(dt, d_a, d_a, d_b, n, NULL, &e) == 0, "%s", e.msg); /* in place, as the model adds */
    gpu_download(dt, got, d_a, n);
    char what[64];
    snprintf(what, sizeof what, "residual add %s n=%zu", gpu_dtype_name(dt), n);
    gpu_check_close(what, got, want, NULL, n, 0, 0, 0);
    printf("%s: exact\n", what);
    kern_free(d_a), kern_free(d_b);
    free(a), free(b), free(want), free(got);
}

static void check_cast(size_t n) {
    rlvr_err e = {{0}};
    rng_stream r;
    rng_stream_init(&r, 78, n);
    float *x = malloc(n * 4), *want = malloc(n * 4), *got = malloc(n * 4), *back = malloc(n * 4);
    for (size_t i = 0; i < n; i++) x[i] = 100.0f * rng_stream_normal(&r);
    memcpy(want, x, n * 4);
    gpu_round_to(KERN_BF16, want, n);
    float *d_x = gpu_upload(KERN_F32, x, n), *d_back = gpu_upload(KERN_F32, x, n);
    void *d_b = gpu_upload(KERN_BF16, x, n);
    CHECK(kern_cast(KERN_BF16, d_b, KERN_F32, d_x, n, NULL, &e) == 0, "%s", e.msg);
    gpu_download(KERN_BF16, got, d_b, n);
    CHECK(kern_cast(KERN_F32, d_back, KERN_BF16, d_b, n, NULL, &e) == 0, "%s", e.msg);
    gpu_download(KERN_F32, back, d_back, n);
    gpu_check_close("cast fp32 -> bf16", got, want, NULL, n, 0, 0, 0);
    gpu_check_close("cast bf16 -> fp32", back, want, NULL, n, 0, 0, 0);
    printf("cast n=%zu: exact both ways\n", n);
    kern_free(d_x), kern_free(d_back), kern_free(d_b);
    free(x), free(want), free(got), free(back);
}

int main(void) {
    gpu_test_require_device();
    const size_t sizes[] = {1, 255, 100003, (size_t)65535 * 256 + 77};
    for (int dt = 0; dt < 2; dt++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) check_add((kern_dtype)dt, sizes[i]);
    check_cast(1);
    check_cast(1000001);
    rlvr_err e = {{0}};
    CHECK(kern_cast((kern_dtype)3, NULL, KERN_F32, NULL, 4, NULL, &e) == -1, "unknown dtype accepted");
    return gpu_test_finish();
}
