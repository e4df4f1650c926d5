/* value_loss.h - PPO's clipped value loss for the critic, with its gradient with respect
 * to the predicted values (the critic's backward starts from it), as verl's
 * core_algos.compute_value_loss computes it:
 *
 *   vclip = clamp(v, old_v - cliprange, old_v + cliprange)
 *   l     = 0.5 * max((v - R)^2, (vclip - R)^2)          R = the GAE returns
 *
 * aggregated over the real tokens with the policy's aggregation (policy_loss.h). The clip
 * fraction is the token mean of (vclip - R)^2 > (v - R)^2: the tokens whose gradient the
 * clip removed. */
#ifndef RLVR_VALUE_LOSS_H
#define RLVR_VALUE_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "policy_loss.h"

typedef struct rl_vf_stats {
    double loss;     /* the aggregated value loss */
    double clip_frac; /* token mean of the clipped branch being the larger */
} rl_vf_stats;

/* Sums over tokens, so that a minibatch can be processed in micro-batches. */
typedef struct rl_vf_sums {
    double loss, clipped, count;
} rl_vf_sums;

/* The loss over n tokens with aggregation weights w (rl_agg_weights of the whole
 * minibatch): adds this call's tokens into *acc and writes dvalue (may be NULL),
 * dloss/dvalue per token (0 on padding). */
void rl_value_loss_weighted(const float *values, const float *old_values, const float *returns, const float *w,
                            const uint8_t *mask, size_t n, double cliprange, float *dvalue, rl_vf_sums *acc);
void rl_vf_stats_from_sums(const rl_vf_sums *acc, rl_vf_stats *stats);

/* The value loss over [B, T] with aggregation `agg`; dvalue may be NULL. */
int rl_value_loss(const float *values, const float *old_values, const float *returns, const uint8_t *mask, int B,
                  int T, double cliprange, rl_agg agg, float *dvalue, rl_vf_stats *stats, rlvr_err *e);

/* Explained variance of the values as predictors of the returns over the masked tokens:
 * 1 - Var(R - V) / Var(R) (unbiased variances, as verl logs critic/vf_explained_var);
 * NaN with fewer than 2 tokens or constant returns. */
double rl_explained_variance(const float *values, const float *returns, const uint8_t *mask, size_t n);

#endif
