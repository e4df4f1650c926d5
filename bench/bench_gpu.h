/* bench_gpu.h - what the GPU benchmarks share: with no CUDA device, a "skipped: <why>"
 * line (a benchmark that cannot run is not an error: exit 0); else the device's name; and
 * the median time of synchronized runs. */
#ifndef RLVR_BENCH_GPU_H
#define RLVR_BENCH_GPU_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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

static inline double bench_gpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline int bench_gpu_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef int (*bench_gpu_fn)(void *ctx, rlvr_err *e);

/* Median seconds of `iters` runs of fn, each synchronized, after two warm-ups; an error
 * ends the program with "prog: message". */
static inline double bench_gpu_median_s(bench_gpu_fn fn, void *ctx, int iters, const char *prog) {
    rlvr_err e = {{0}};
    double *t = malloc((size_t)iters * sizeof *t);
    if (!t) {
        fprintf(stderr, "%s: out of memory\n", prog);
        exit(1);
    }
    for (int i = -2; i < iters; i++) {
        double t0 = bench_gpu_now();
        if (fn(ctx, &e) != 0 || kern_synchronize(&e) != 0) {
            fprintf(stderr, "%s: %s\n", prog, e.msg);
            exit(1);
        }
        if (i >= 0) t[i] = bench_gpu_now() - t0;
    }
    qsort(t, (size_t)iters, sizeof *t, bench_gpu_cmp_double);
    double med = t[iters / 2];
    free(t);
    return med;
}

#endif
