/* kernels.h - the CUDA side of rlvr: device discovery and kernel launchers.
 *
 * Launchers take device pointers and a stream and return 0, or -1 with a message in
 * `e` (never exit): library code reports CUDA errors, only the CLI prints them. Every
 * kernel has a CPU twin in core/ and a test against it in tests/gpu/. Without CUDA
 * (kernels_nocuda.c) discovery answers "built without CUDA" and launchers fail. */
#ifndef RLVR_KERNELS_H
#define RLVR_KERNELS_H

#include <stddef.h>

#include "err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices. 0 when there is none or rlvr was built without CUDA,
 * with the reason in `e` ("built without CUDA", "no CUDA device: ..."). */
int kern_device_count(rlvr_err *e);

typedef struct kern_device_info {
    char name[256];
    int major, minor;        /* compute capability */
    int multiprocessors;
    size_t total_memory, free_memory;
} kern_device_info;

int kern_device_info_get(int device, kern_device_info *info, rlvr_err *e);

/* Device memory (thin wrappers that report errors through rlvr_err). */
void *kern_malloc(size_t bytes, rlvr_err *e);
void kern_free(void *p);
int kern_memcpy_h2d(void *dst, const void *src, size_t bytes, rlvr_err *e);
int kern_memcpy_d2h(void *dst, const void *src, size_t bytes, rlvr_err *e);
int kern_synchronize(rlvr_err *e);

/* RMSNorm forward, fp32: out[t, c] = x[t, c] / sqrt(mean_c(x[t, :]^2) + eps) * weight[c].
 * x, out: [T, C]; weight: [C]; rstd (optional, may be NULL): [T], saved for backward.
 * CPU twin: rmsnorm_forward in core/cpu_ops.h. Deterministic (fixed reduction order). */
int kern_rmsnorm_forward(float *out, float *rstd, const float *x, const float *weight, int T, int C, float eps,
                         void *stream, rlvr_err *e);

#ifdef __cplusplus
}
#endif

#endif
