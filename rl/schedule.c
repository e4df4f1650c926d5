/* schedule.c - learning-rate schedules. */
#include "schedule.h"

#include <math.h>
#include <string.h>

double rl_lr_at(const rl_lr_schedule *s, long long step) {
    if (step < 0) step = 0;
    /* Warmup: step 0 trains at peak/(warmup+1) rather than 0, so no step is wasted. */
    if (step < s->warmup) return s->peak * (double)(step + 1) / (double)(s->warmup + 1);
    if (s->kind == RL_LR_CONSTANT) return s->peak;
    long long span = s->total - s->warmup;
    if (span <= 1) return s->peak;
    double progress = (double)(step - s->warmup) / (double)(span - 1);
    if (progress > 1) progress = 1;
    double cosine = 0.5 * (1.0 + cos(M_PI * progress));
    return s->peak * (s->min_ratio + (1.0 - s->min_ratio) * cosine);
}

int rl_lr_kind_parse(const char *name) {
    if (strcmp(name, "constant") == 0) return RL_LR_CONSTANT;
    if (strcmp(name, "cosine") == 0) return RL_LR_COSINE;
    return -1;
}
