/* optim.h - AdamW with fp32 state, and clipping gradients by their global L2 norm.
 *
 * The update is torch.optim.AdamW's (decoupled weight decay, Loshchilov & Hutter):
 *   p <- p (1 - lr wd)
 *   m <- b1 m + (1 - b1) g;    v <- b2 v + (1 - b2) g^2
 *   p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * and clipping is torch.nn.utils.clip_grad_norm_'s: with n = ||g||_2 over every
 * parameter, g <- g * max_norm / (n + 1e-6) when that factor is below 1. */
#ifndef RLVR_OPTIM_H
#define RLVR_OPTIM_H

#include <stddef.h>

#include "err.h"

typedef struct rl_adamw {
    size_t n;        /* number of parameters */
    float *m, *v;    /* [n] first and second moments (fp32, owned) */
    long long step;  /* updates taken so far */
    double beta1, beta2, eps, weight_decay;
} rl_adamw;

/* Allocates zeroed state for n parameters. */
int rl_adamw_init(rl_adamw *o, size_t n, double beta1, double beta2, double eps, double weight_decay, rlvr_err *e);
void rl_adamw_free(rl_adamw *o);

/* One update of params [n] with grads [n] at learning rate lr. */
void rl_adamw_step(rl_adamw *o, float *params, const float *grads, double lr);

/* The global L2 norm of grads [n] (in double), and, when max_norm > 0, scales grads so
 * the norm is at most max_norm. Returns the norm before clipping (the logged grad_norm). */
double rl_clip_grad_norm(float *grads, size_t n, double max_norm);

#endif
