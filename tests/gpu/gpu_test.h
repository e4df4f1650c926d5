/* gpu_test.h - shared by the GPU tests: skip (exit 77, which ctest reports as skipped)
 * when there is no CUDA device, a minimal CHECK that reports file:line, bf16 rounding on
 * the host, moving float arrays to and from the device in either dtype, and a tolerance
 * check that names the first element out of bounds. */
#ifndef RLVR_GPU_TEST_H
#define RLVR_GPU_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "safetensors.h"

#define GPU_TEST_SKIP 77

static int gpu_failures = 0;

#define CHECK(cond, ...)                                                                             \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                 \
            fprintf(stderr, __VA_ARGS__);                                                            \
            fputc('\n', stderr);                                                                     \
            gpu_failures++;                                                                          \
        }                                                                                            \
    } while (0)

/* Prints the device, or "skipped: no CUDA device: <why>" and exits 77. */
static inline void gpu_test_require_device(void) {
    rlvr_err e = {{0}};
    if (kern_device_count(&e) <= 0) {
        printf("skipped: %s\n", e.msg);
        exit(GPU_TEST_SKIP);
    }
    kern_device_info info;
    if (kern_device_info_get(0, &info, &e) == 0)
        printf("device: %s (sm_%d%d, %d SMs)\n", info.name, info.major, info.minor, info.multiprocessors);
}

/* Rounds every value to what the dtype can hold, so that the CPU reference and the kernel
 * start from the same numbers. */
static inline void gpu_round_to(kern_dtype dt, float *x, size_t n) {
    if (dt == KERN_BF16)
        for (size_t i = 0; i < n; i++) x[i] = st_bf16_to_f32(st_f32_to_bf16(x[i]));
}

static inline const char *gpu_dtype_name(kern_dtype dt) { return dt == KERN_BF16 ? "bf16" : "fp32"; }

/* A device copy of host floats in dtype dt (the caller frees it with kern_free); exits the
 * test on failure, which is not what a kernel test is about. */
static inline void *gpu_upload(kern_dtype dt, const float *host, size_t n) {
    rlvr_err e = {{0}};
    size_t bytes = (n ? n : 1) * kern_dtype_size(dt);
    void *dev = kern_malloc(bytes, &e);
    void *tmp = malloc(bytes);
    if (!dev || !tmp) {
        fprintf(stderr, "gpu_upload: %s\n", dev ? "out of memory" : e.msg);
        exit(1);
    }
    if (dt == KERN_BF16)
        for (size_t i = 0; i < n; i++) ((uint16_t *)tmp)[i] = st_f32_to_bf16(host[i]);
    else
        memcpy(tmp, host, n * sizeof(float));
    if (kern_memcpy_h2d(dev, tmp, n * kern_dtype_size(dt), &e) != 0) {
        fprintf(stderr, "gpu_upload: %s\n", e.msg);
        exit(1);
    }
    free(tmp);
    return dev;
}

static inline void gpu_download(kern_dtype dt, float *host, const void *dev, size_t n) {
    rlvr_err e = {{0}};
    void *tmp = malloc((n ? n : 1) * kern_dtype_size(dt));
    if (!tmp || kern_memcpy_d2h(tmp, dev, n * kern_dtype_size(dt), &e) != 0) {
        fprintf(stderr, "gpu_download: %s\n", tmp ? e.msg : "out of memory");
        exit(1);
    }
    if (dt == KERN_BF16)
        for (size_t i = 0; i < n; i++) host[i] = st_bf16_to_f32(((uint16_t *)tmp)[i]);
    else
        memcpy(host, tmp, n * sizeof(float));
    free(tmp);
}

/* Checks |got[i] - want[i]| <= atol + rtol * |want[i]| + stol * scale[i] for every i
 * (scale may be NULL: the sum of magnitudes behind want[i], for sums whose order differs),
 * and that got is finite. Returns the largest |got - want|; a failure names the first
 * element out of bounds. */
static inline double gpu_check_close(const char *what, const float *got, const float *want, const float *scale,
                                     size_t n, double atol, double rtol, double stol) {
    double max_err = 0;
    int reported = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        double bound = atol + rtol * fabs(want[i]) + (scale ? stol * scale[i] : 0.0);
        if (!(err <= bound) && !reported) { /* also catches NaN */
            CHECK(0, "%s: element %zu is %.9g, want %.9g (|diff| %.3g > %.3g)", what, i, got[i], want[i], err, bound);
            reported = 1;
        }
        if (err > max_err) max_err = err;
    }
    return max_err;
}

static inline int gpu_test_finish(void) {
    printf("%s\n", gpu_failures ? "FAILED" : "passed");
    return gpu_failures ? 1 : 0;
}

#endif
