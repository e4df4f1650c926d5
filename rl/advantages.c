/* advantages.c - GRPO, Dr. GRPO, RLOO, REINFORCE++ and GAE advantages. Sums are in
 * double so results do not depend on the order samples arrive in. */
#include "advantages.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int rl_adv_kind_parse(const char *name) {
    static const char *const names[] = {"grpo", "dr_grpo", "rloo", "reinforce_pp", "gae"};
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

/* Index of the last real token of sample b, or -1 if it has none. */
static int last_token(const rl_batch_shape *s, int b) {
    for (int t = s->T - 1; t >= 0; t--)
        if (s->mask[(size_t)b * s->T + t]) return t;
    return -1;
}

void rl_token_rewards(const rl_batch_shape *s, const float *scores, const float *kl, float kl_coef, float *rewards) {
    for (int b = 0; b < s->B; b++) {
        int last = last_token(s, b);
        for (int t = 0; t < s->T; t++) {
            size_t i = (size_t)b * s->T + t;
            float r = 0.0f;
            if (s->mask[i] && kl) r -= kl_coef * kl[i];
            if (t == last) r += scores[b];
            rewards[i] = s->mask[i] ? r : 0.0f;
        }
    }
}

int rl_outcome_advantages(rl_adv_kind kind, const rl_batch_shape *s, const float *scores, float eps, float *adv,
                          rlvr_err *e) {
    if (kind != RL_ADV_GRPO && kind != RL_ADV_DR_GRPO && kind != RL_ADV_RLOO)
        return err_set(e, "outcome advantages: estimator %d needs token rewards", (int)kind);
    for (int b = 0; b < s->B; b++)
        if (last_token(s, b) < 0) return err_set(e, "sample %d has no completion tokens", b);
    for (int b = 0; b < s->B; b++) {
        /* Group statistics over every sample with this sample's group id. O(B^2) in
         * the worst case, which at RL batch sizes (hundreds) is nothing. */
        double sum = 0.0, sum2 = 0.0;
        int n = 0;
        for (int j = 0; j < s->B; j++)
            if (s->group[j] == s->group[b]) {
                sum += scores[j];
                n++;
            }
        double mean = sum / n;
        for (int j = 0; j < s->B; j++)
            if (s->group[j] == s->group[b]) sum2 += (scores[j] - mean) * (scores[j] - mean);
        double a;
        if (n == 1) {
            /* verl: a group of one has mean 0 and (for GRPO) std 1; RLOO leaves it as is. */
            a = kind == RL_ADV_GRPO ? scores[b] / (1.0 + eps) : scores[b];
        } else if (kind == RL_ADV_GRPO) {
            double std = sqrt(sum2 / (n - 1));
            a = (scores[b] - mean) / (std + eps);
        } else if (kind == RL_ADV_DR_GRPO) {
            a = scores[b] - mean;
        } else {
            a = (scores[b] - mean) * n / (n - 1);
        }
        for (int t = 0; t < s->T; t++) {
            size_t i = (size_t)b * s->T + t;
            adv[i] = s->mask[i] ? (float)a : 0.0f;
        }
    }
    return 0;
}

int rl_masked_whiten(const rl_batch_shape *s, float *x, rlvr_err *e) {
    size_t n_all = (size_t)s->B * s->T;
    double sum = 0.0, count = 0.0;
    for (size_t i = 0; i < n_all; i++)
        if (s->mask[i]) {
            sum += x[i];
            count += 1.0;
        }
    if (count < 2) return err_set(e, "whitening needs at least 2 tokens, the batch has %.0f", count);
    double mean = sum / count, var = 0.0;
    for (size_t i = 0; i < n_all; i++)
        if (s->mask[i]) var += (x[i] - mean) * (x[i] - mean);
    var = var / count * (count / (count - 1.0)); /* unbiased, as masked_var(unbiased=True) */
    double inv = 1.0 / sqrt(var + 1e-8);
    for (size_t i = 0; i < n_all; i++) x[i] = s->mask[i] ? (float)((x[i] - mean) * inv) : 0.0f;
    return 0;
}

int rl_reinforce_pp_advantages(const rl_batch_shape *s, const float *rewards, float gamma, float *adv, float *returns,
                               rlvr_err *e) {
    for (int b = 0; b < s->B; b++) {
        double running = 0.0;
        for (int t = s->T - 1; t >= 0; t--) {
            size_t i = (size_t)b * s->T + t;
            running = rewards[i] + gamma * running;
            returns[i] = (float)running;
            /* Padding after the end resets the running return (verl: "reset after EOS"). */
            running *= s->mask[i];
        }
    }
    memcpy(adv, returns, (size_t)s->B * s->T * sizeof *adv);
    return rl_masked_whiten(s, adv, e);
}

int rl_gae_advantages(const rl_batch_shape *s, const float *rewards, const float *values, float gamma, float lam,
                      float *adv, float *returns, rlvr_err *e) {
    for (int b = 0; b < s->B; b++) {
        double last_gae = 0.0, next_value = 0.0;
        for (int t = s->T - 1; t >= 0; t--) {
            size_t i = (size_t)b * s->T + t;
            double delta = rewards[i] + gamma * next_value - values[i];
            double gae = delta + gamma * lam * last_gae;
            /* Padding carries the next real position's value and advantage through. */
            if (s->mask[i]) {
                next_value = values[i];
                last_gae = gae;
            }
            adv[i] = (float)(s->mask[i] ? gae : last_gae);
        }
        for (int t = 0; t < s->T; t++) {
            size_t i = (size_t)b * s->T + t;
            returns[i] = adv[i] + values[i];
        }
    }
    return rl_masked_whiten(s, adv, e);
}
