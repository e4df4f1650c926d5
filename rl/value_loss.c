/* value_loss.c - the critic's clipped value loss. Sums in double. */
#include "value_loss.h"

#include <math.h>
#include <stdlib.h>

void rl_value_loss_weighted(const float *values, const float *old_values, const float *returns, const float *w,
                            const uint8_t *mask, size_t n, double cliprange, float *dvalue, rl_vf_sums *acc) {
    for (size_t i = 0; i < n; i++) {
        if (!mask[i]) {
            if (dvalue) dvalue[i] = 0.0f;
            continue;
        }
        double v = values[i], old = old_values[i], r = returns[i];
        double vclip = v < old - cliprange ? old - cliprange : v > old + cliprange ? old + cliprange : v;
        double l1 = (v - r) * (v - r), l2 = (vclip - r) * (vclip - r);
        int clipped = l2 > l1;
        acc->loss += 0.5 * w[i] * (clipped ? l2 : l1);
        acc->clipped += clipped;
        acc->count += 1;
        /* The clipped branch is constant in v outside the range (and equals the unclipped
         * one inside it), so only the unclipped branch carries a gradient. */
        if (dvalue) dvalue[i] = clipped ? 0.0f : (float)(w[i] * (v - r));
    }
}

void rl_vf_stats_from_sums(const rl_vf_sums *acc, rl_vf_stats *stats) {
    stats->loss = acc->loss;
    stats->clip_frac = acc->count > 0 ? acc->clipped / acc->count : 0.0;
}

int rl_value_loss(const float *values, const float *old_values, const float *returns, const uint8_t *mask, int B,
                  int T, double cliprange, rl_agg agg, float *dvalue, rl_vf_stats *stats, rlvr_err *e) {
    size_t n = (size_t)B * T;
    float *w = malloc((n ? n : 1) * sizeof *w);
    if (!w) return err_set(e, "out of memory");
    if (rl_agg_weights(agg, mask, B, T, w, e) != 0) {
        free(w);
        return -1;
    }
    rl_vf_sums acc = {0};
    rl_value_loss_weighted(values, old_values, returns, w, mask, n, cliprange, dvalue, &acc);
    rl_vf_stats_from_sums(&acc, stats);
    free(w);
    return 0;
}

double rl_explained_variance(const float *values, const float *returns, const uint8_t *mask, size_t n) {
    double sr = 0, sd = 0, cnt = 0;
    for (size_t i = 0; i < n; i++)
        if (mask[i]) sr += returns[i], sd += (double)returns[i] - values[i], cnt += 1;
    if (cnt < 2) return NAN;
    double mr = sr / cnt, md = sd / cnt, vr = 0, vd = 0;
    for (size_t i = 0; i < n; i++) {
        if (!mask[i]) continue;
        double r = returns[i] - mr, d = (double)returns[i] - values[i] - md;
        vr += r * r;
        vd += d * d;
    }
    if (vr == 0) return NAN;
    return 1.0 - vd / vr;
}
