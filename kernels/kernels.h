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

/* AdamW on fp32 master weights with fp32 state (m, v: [n]), step counted from 1; when
 * params_bf16 is not NULL it receives the updated weights rounded to bf16 (the copy the
 * forward pass reads). CPU twin: rl_adamw_step in rl/optim.c. */
int kern_adamw_step(float *params, void *params_bf16, const float *grads, float *m, float *v, size_t n,
                    long long step, double lr, double beta1, double beta2, double eps, double weight_decay,
                    void *stream, rlvr_err *e);

/* Global L2 norm of grads [n], and when max_norm > 0 scales them so it is at most
 * max_norm (clip_grad_norm_). Deterministic: no atomics. `workspace` is device memory of
 * kern_clip_grad_norm_workspace() bytes; the norm before clipping goes to *norm_host
 * (may be NULL: then nothing waits for the GPU). CPU twin: rl_clip_grad_norm. */
int kern_clip_grad_norm(float *grads, size_t n, double max_norm, void *workspace, double *norm_host, void *stream,
                        rlvr_err *e);
size_t kern_clip_grad_norm_workspace(void);

#ifdef __cplusplus
}
#endif

#endif
