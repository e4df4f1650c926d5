/* policy_loss.c - PPO-clip with clip-higher and dual clip, KL estimators, and loss
 * aggregation, each with its gradient. Sums in double. */
#include "policy_loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int rl_agg_parse(const char *name) {
    static const char *const names[] = {"token_mean", "seq_mean_token_mean", "seq_mean_token_sum",
                                        "seq_mean_token_sum_norm"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

int rl_kl_parse(const char *name) {
    if (strcmp(name, "k1") == 0) return RL_KL_K1;
    if (strcmp(name, "k2") == 0) return RL_KL_K2;
    if (strcmp(name, "k3") == 0) return RL_KL_K3;
    return -1;
}

int rl_agg_weights(rl_agg agg, const uint8_t *mask, int B, int T, float *w, rlvr_err *e) {
    long total = 0;
    for (size_t i = 0; i < (size_t)B * T; i++) total += mask[i] != 0;
    if (B <= 0 || T <= 0 || total == 0) return err_set(e, "loss over a batch with no completion tokens");
    for (int b = 0; b < B; b++) {
        long n_b = 0;
        for (int t = 0; t < T; t++) n_b += mask[(size_t)b * T + t] != 0;
        double wb;
        switch (agg) {
        case RL_AGG_TOKEN_MEAN: wb = 1.0 / (double)total; break;
        /* A sequence with no real token contributes nothing (and no division by 0). */
        case RL_AGG_SEQ_MEAN_TOKEN_MEAN: wb = n_b ? 1.0 / ((double)B * n_b) : 0.0; break;
        case RL_AGG_SEQ_MEAN_TOKEN_SUM: wb = 1.0 / B; break;
        case RL_AGG_SEQ_MEAN_TOKEN_SUM_NORM: wb = 1.0 / T; break;
        default: return err_set(e, "unknown loss aggregation %d", (int)agg);
        }
        for (int t = 0; t < T; t++) w[(size_t)b * T + t] = mask[(size_t)b * T + t] ? (float)wb : 0.0f;
    }
    return 0;
}

void rl_policy_loss_weighted(const float *logp, const float *old_logp, const float *adv, const float *w,
                             const uint8_t *mask, size_t n, const rl_pg_params *p, float *dlogp, rl_pg_sums *acc) {
    for (size_t i = 0; i < n; i++) {
        if (!mask[i]) {
            if (dlogp) dlogp[i] = 0.0f;
            continue;
        }
        double d = (double)logp[i] - old_logp[i];
        int saturated = d < -20.0 || d > 20.0;
        d = d < -20.0 ? -20.0 : d > 20.0 ? 20.0 : d;
        double r = exp(d), a = adv[i];
        double lo = 1.0 - p->clip_low, hi = 1.0 + p->clip_high;
        double l1 = -a * r;
        double l2 = -a * (r < lo ? lo : r > hi ? hi : r);
        double l = l1 > l2 ? l1 : l2;
        /* dl/dlogp: the unclipped branch is -A r; a clipped ratio is a constant. Where
         * l1 == l2 the ratio is inside the clip range and both branches agree. */
        double g = (l2 > l1 && (r < lo || r > hi)) ? 0.0 : -a * r;
        if (l2 > l1) acc->clipped += 1;
        if (p->clip_c > 1.0 && a < 0) {
            double l3 = -a * p->clip_c;
            if (l > l3) acc->lower += 1;
            if (l3 < l) {
                l = l3;
                g = 0.0;
            }
        }
        if (saturated) g = 0.0;
        acc->loss += w[i] * l;
        acc->ppo_kl += -d;
        acc->count += 1;
        if (dlogp) dlogp[i] = (float)(w[i] * g);
    }
}

void rl_pg_stats_from_sums(const rl_pg_sums *acc, rl_pg_stats *stats) {
    double count = acc->count > 0 ? acc->count : 1.0;
    stats->loss = acc->loss;
    stats->clip_frac = acc->clipped / count;
    stats->clip_frac_lower = acc->lower / count;
    stats->ppo_kl = acc->ppo_kl / count;
}

int rl_policy_loss(const float *logp, const float *old_logp, const float *adv, const uint8_t *mask, int B, int T,
                   const rl_pg_params *p, float *dlogp, rl_pg_stats *stats, rlvr_err *e) {
    size_t n = (size_t)B * T;
    float *w = malloc(n * sizeof *w);
    if (!w) return err_set(e, "out of memory");
    if (rl_agg_weights(p->agg, mask, B, T, w, e)) {
        free(w);
        return -1;
    }
    rl_pg_sums acc = {0};
    rl_policy_loss_weighted(logp, old_logp, adv, w, mask, n, p, dlogp, &acc);
    free(w);
    if (stats) rl_pg_stats_from_sums(&acc, stats);
    return 0;
}

void rl_kl_per_token(rl_kl_kind kind, const float *logp, const float *ref_logp, const uint8_t *mask, int B, int T,
                     float *kl, float *dkl) {
    for (size_t i = 0; i < (size_t)B * T; i++) {
        double v = 0.0, g = 0.0;
        if (mask[i]) {
            double d = (double)logp[i] - ref_logp[i];
            if (kind == RL_KL_K1) {
                v = d, g = 1.0;
            } else if (kind == RL_KL_K2) {
                v = 0.5 * d * d, g = d;
            } else {
                /* k3 with x = ref - logp clamped to [-20, 20]: exp(x) - x - 1, clamped to [-10, 10]. */
                double x = -d, gx = 1.0;
                if (x < -20.0 || x > 20.0) x = x < -20.0 ? -20.0 : 20.0, gx = 0.0;
                double ex = exp(x);
                v = ex - x - 1.0;
                g = -(ex - 1.0) * gx; /* dx/dlogp = -1 */
                if (v > 10.0 || v < -10.0) v = v > 10.0 ? 10.0 : -10.0, g = 0.0;
            }
        }
        kl[i] = (float)v;
        if (dkl) dkl[i] = (float)g;
    }
}

double rl_kl_loss(rl_kl_kind kind, double coef, rl_agg agg, const float *logp, const float *ref_logp,
                  const uint8_t *mask, int B, int T, float *dlogp, rlvr_err *e) {
    size_t n = (size_t)B * T;
    float *kl = malloc(n * sizeof *kl), *dkl = malloc(n * sizeof *dkl), *w = malloc(n * sizeof *w);
    double loss = NAN;
    if (!kl || !dkl || !w) {
        err_set(e, "out of memory");
    } else if (rl_agg_weights(agg, mask, B, T, w, e) == 0) {
        rl_kl_per_token(kind, logp, ref_logp, mask, B, T, kl, dkl);
        loss = 0.0;
        for (size_t i = 0; i < n; i++) {
            loss += (double)w[i] * kl[i];
            if (dlogp) dlogp[i] += (float)(coef * w[i] * dkl[i]);
        }
        loss *= coef;
    }
    free(kl);
    free(dkl);
    free(w);
    return loss;
}
