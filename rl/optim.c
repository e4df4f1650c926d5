/* optim.c - AdamW and gradient clipping, computed in the order torch uses so results
 * agree to fp32 rounding. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int rl_adamw_init(rl_adamw *o, size_t n, double beta1, double beta2, double eps, double weight_decay, rlvr_err *e) {
    memset(o, 0, sizeof *o);
    o->m = calloc(n ? n : 1, sizeof *o->m);
    o->v = calloc(n ? n : 1, sizeof *o->v);
    if (!o->m || !o->v) {
        rl_adamw_free(o);
        return err_set(e, "AdamW: out of memory for %zu parameters", n);
    }
    o->n = n;
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    return 0;
}

void rl_adamw_free(rl_adamw *o) {
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

void rl_adamw_step(rl_adamw *o, float *params, const float *grads, double lr) {
    o->step++;
    /* 1 - beta is formed in double and rounded once, as torch passes it as a scalar. */
    const float b2 = (float)o->beta2, one_minus_b2 = (float)(1.0 - o->beta2);
    const double bc1 = 1.0 - pow(o->beta1, (double)o->step);
    const double bc2_sqrt = sqrt(1.0 - pow(o->beta2, (double)o->step));
    const float step_size = (float)(lr / bc1);
    const float decay = (float)(1.0 - lr * o->weight_decay);
    /* The operation order is torch's single-tensor AdamW: m by lerp (whose formula
     * switches at weight 0.5), v by mul then addcmul, and p += -step * (m / denom). */
    const float w1 = (float)(1.0 - o->beta1);
    for (size_t i = 0; i < o->n; i++) {
        float g = grads[i];
        params[i] *= decay;
        o->m[i] = w1 < 0.5f ? o->m[i] + w1 * (g - o->m[i]) : g - (g - o->m[i]) * (1.0f - w1);
        o->v[i] = o->v[i] * b2 + one_minus_b2 * (g * g);
        float denom = sqrtf(o->v[i]) / (float)bc2_sqrt + (float)o->eps;
        params[i] += -step_size * (o->m[i] / denom);
    }
}

double rl_clip_grad_norm(float *grads, size_t n, double max_norm) {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += (double)grads[i] * grads[i];
    double norm = sqrt(sum);
    if (max_norm > 0) {
        double coef = max_norm / (norm + 1e-6);
        if (coef < 1.0)
            for (size_t i = 0; i < n; i++) grads[i] = (float)(grads[i] * coef);
    }
    return norm;
}
