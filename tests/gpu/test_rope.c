/* test_rope.c - rotate-half RoPE forward and backward against the CPU twins (rope_forward,
 * rope_backward) on odd and real head shapes, positions up to 40,000, fp32 and bf16.
 * Tolerance: each output is x1 cos -/+ x2 sin; CUDA's sincosf and glibc's cosf/sinf differ
 * by an ulp or two, so the bound is 1e-6 * (|x1| + |x2|) (plus 2^-8 relative for the bf16
 * rounding of the result). The backward runs on the GPU forward's output on both sides;
 * backward after forward must give back the input (within 4e-6, or two bf16 roundings),
 * and runs repeat bit for bit. */
#include "cpu_ops.h"
#include "gpu_test.h"
#include "rng.h"

static void check_rope(kern_dtype dt, int T, int NH, int D, int max_pos) {
    rlvr_err e = {{0}};
    size_t n = (size_t)T * NH * D;
    int half = D / 2;
    rng_stream r;
    rng_stream_init(&r, 55, (uint64_t)T * 7777u + (uint64_t)NH * 31u + (uint64_t)D + (uint64_t)dt * 1000003u);
    float *x = malloc(n * sizeof *x), *inv_freq = malloc((size_t)half * sizeof(float));
    int *pos = malloc((size_t)T * sizeof(int));
    for (size_t i = 0; i < n; i++) x[i] = rng_stream_normal(&r);
    gpu_round_to(dt, x, n);
    for (int i = 0; i < half; i++) inv_freq[i] = (float)(1.0 / pow(1000000.0, (double)(2 * i) / D));
    for (int t = 0; t < T; t++) pos[t] = (int)rng_stream_below(&r, (uint64_t)max_pos);
    float *want = malloc(n * sizeof(float)), *want_back = malloc(n * sizeof(float)), *scale = malloc(n * sizeof(float));
    memcpy(want, x, n * sizeof(float));
    rope_forward(want, inv_freq, pos, T, NH, D);
    for (size_t row = 0; row < (size_t)T * NH; row++)
        for (int i = 0; i < half; i++) {
            float s = fabsf(x[row * D + i]) + fabsf(x[row * D + i + half]);
            scale[row * D + i] = scale[row * D + i + half] = s;
        }

    void *dx = gpu_upload(dt, x, n), *dx2 = gpu_upload(dt, x, n);
    float *d_freq = gpu_upload(KERN_F32, inv_freq, half);
    int *d_pos = kern_malloc((size_t)T * sizeof(int), &e);
    CHECK(d_pos && kern_memcpy_h2d(d_pos, pos, (size_t)T * sizeof(int), &e) == 0, "%s", e.msg);
    float *got = malloc(n * sizeof(float)), *again = malloc(n * sizeof(float)), *back = malloc(n * sizeof(float));
    CHECK(kern_rope_forward(dt, dx, d_freq, d_pos, T, NH, D, NULL, &e) == 0, "%s", e.msg);
    CHECK(kern_rope_forward(dt, dx2, d_freq, d_pos, T, NH, D, NULL, &e) == 0, "%s", e.msg);
    gpu_download(dt, got, dx, n);
    gpu_download(dt, again, dx2, n);
    memcpy(want_back, got, n * sizeof(float)); /* the backward of both starts from the GPU's forward */
    rope_backward(want_back, inv_freq, pos, T, NH, D);
    CHECK(kern_rope_backward(dt, dx, d_freq, d_pos, T, NH, D, NULL, &e) == 0, "%s", e.msg);
    gpu_download(dt, back, dx, n);
    double rel = dt == KERN_BF16 ? 1.0 / 256 : 0;
    char what[128];
    snprintf(what, sizeof what, "rope %s T=%d NH=%d D=%d forward", gpu_dtype_name(dt), T, NH, D);
    double e_f = gpu_check_close(what, got, want, scale, n, 1e-30, rel, 1e-6);
    snprintf(what, sizeof what, "rope %s T=%d NH=%d D=%d backward", gpu_dtype_name(dt), T, NH, D);
    double e_b = gpu_check_close(what, back, want_back, scale, n, 1e-30, rel, 1e-6);
    snprintf(what, sizeof what, "rope %s T=%d NH=%d D=%d backward(forward(x)) = x", gpu_dtype_name(dt), T, NH, D);
    gpu_check_close(what, back, x, scale, n, 1e-30, rel, dt == KERN_BF16 ? 2.0 / 256 : 4e-6);
    CHECK(memcmp(got, again, n * sizeof(float)) == 0, "%s: two runs differ", what);
    printf("rope %s T=%-4d NH=%-3d D=%-4d max |gpu - cpu| forward %.3g backward %.3g\n", gpu_dtype_name(dt), T, NH, D,
           e_f, e_b);
    kern_free(dx), kern_free(dx2), kern_free(d_freq), kern_free(d_pos);
    free(x), free(inv_freq), free(pos), free(want), free(want_back), free(scale), free(got), free(again), free(back);
}

int main(void) {
    gpu_test_require_device();
    for (int dt = 0; dt < 2; dt++) {
        check_rope((kern_dtype)dt, 1, 1, 2, 1);
        check_rope((kern_dtype)dt, 7, 3, 6, 100);
        check_rope((kern_dtype)dt, 33, 14, 64, 40000); /* Qwen2.5-0.5B: 14 query heads of 64 */
        check_rope((kern_dtype)dt, 65, 2, 64, 40000);  /* its 2 KV heads */
        check_rope((kern_dtype)dt, 19, 32, 128, 8192); /* Llama/Qwen 7-8B */
        check_rope((kern_dtype)dt, 5, 5, 258, 131072); /* odd head count, D/2 odd, long context */
    }
    rlvr_err e = {{0}};
    CHECK(kern_rope_forward(KERN_F32, NULL, NULL, NULL, 4, 2, 7, NULL, &e) == -1, "odd D accepted");
    return gpu_test_finish();
}
