/* bench_gpu.h - what the GPU benchmarks share: with no CUDA device, a "skipped: <why>"
 * line (a benchmark that cannot run is not an error: exit 0); else the device's name. */
#ifndef RLVR_BENCH_GPU_H
#define RLVR_BENCH_GPU_H

#include <stdio.h>

#include "kernels.h"

/* 1 when device 0 is there (its name printed), 0 when the benchmark should skip. */
static inline int bench_gpu_present(void) {
    rlvr_err e = {{0}};
    if (kern_device_count(&e) <= 0) {
        printf("skipped: %s\n", e.msg);
        return 0;
    }
    kern_device_info info;
    if (kern_device_info_get(0, &info, &e) == 0) printf("device: %s\n", info.name);
    return 1;
}

#endif
