/* optim.c - AdamW and gradient clipping, computed in the order torch uses so results
 * agree to fp32 rounding. */
#include "optim.h"

#include "cpu_ops.h"

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
    adamw_update(params, grads, o->m, o->v, o->n, o->step, lr, o->beta1, o->beta2, o->eps, o->weight_decay);
}

double rl_clip_grad_norm(float *grads, size_t n, double max_norm) { return clip_grad_norm(grads, n, max_norm); }
