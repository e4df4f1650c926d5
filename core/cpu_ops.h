/* cpu_ops.h - the CPU reference of the model's layers, one function per layer, written
 * to be read (llm.c style). Every CUDA kernel in kernels/ is tested against these. */
#ifndef RLVR_CPU_OPS_H
#define RLVR_CPU_OPS_H

/* RMSNorm forward: out[t, c] = x[t, c] * rstd[t] * weight[c], with
 * rstd[t] = 1 / sqrt(mean_c(x[t, :]^2) + eps). x, out: [T, C]; weight: [C];
 * rstd: [T] (may be NULL), kept for the backward pass. Sums in double. */
void rmsnorm_forward(float *out, float *rstd, const float *x, const float *weight, int T, int C, float eps);

#endif
