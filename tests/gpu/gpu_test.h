/* gpu_test.h - shared by the GPU tests: skip (exit 77, which ctest reports as skipped)
 * when there is no CUDA device, and a minimal CHECK that reports file:line. */
#ifndef RLVR_GPU_TEST_H
#define RLVR_GPU_TEST_H

#include <stdio.h>
#include <stdlib.h>

#include "kernels.h"

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

#endif
