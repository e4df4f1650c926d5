/* policy_loss.h - the clipped policy-gradient objective, the KL penalty, and how
 * per-token losses are aggregated, with their gradients with respect to the current
 * log-probabilities (the model's backward pass starts from these).
 *
 * Per token, with ratio r = exp(clamp(logp - old_logp, -20, 20)) and advantage A
 * (verl's compute_policy_loss_vanilla; PPO, DAPO clip-higher, dual-clip PPO):
 *   l1 = -A r,  l2 = -A clamp(r, 1 - clip_low, 1 + clip_high),  l = max(l1, l2)
 *   dual clip (clip_c > 1, only where A < 0): l = min(l, -A clip_c)
 *
 * Aggregation over the real tokens (mask) of B sequences of n_b tokens each:
 *   token_mean                sum_bt l / sum_b n_b
 *   seq_mean_token_mean       mean_b (sum_t l / n_b)
 *   seq_mean_token_sum        mean_b (sum_t l)
 *   seq_mean_token_sum_norm   sum_bt l / L, L a constant (the padded length T; Dr. GRPO)
 *
 * KL to the reference model per token, with d = logp - ref_logp (verl's kl_penalty):
 *   k1 = d,  k2 = d^2 / 2,  k3 = exp(-d) + d - 1 (clamped to [-10, 10]; Schulman's
 *   unbiased low-variance estimator with r = p_ref / p). */
#ifndef RLVR_POLICY_LOSS_H
#define RLVR_POLICY_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef enum rl_agg {
    RL_AGG_TOKEN_MEAN,
    RL_AGG_SEQ_MEAN_TOKEN_MEAN,
    RL_AGG_SEQ_MEAN_TOKEN_SUM,
    RL_AGG_SEQ_MEAN_TOKEN_SUM_NORM,
} rl_agg;

typedef enum rl_kl_kind { RL_KL_K1, RL_KL_K2, RL_KL_K3 } rl_kl_kind;

/* Config names ("token_mean", ..., "k1", "k2", "k3"); -1 when unknown. */
int rl_agg_parse(const char *name);
int rl_kl_parse(const char *name);

/* The weight each real token's loss gets in the aggregate: w[b*T + t] (0 on padding),
 * so that loss = sum w * l and dloss/dl = w. */
int rl_agg_weights(rl_agg agg, const uint8_t *mask, int B, int T, float *w, rlvr_err *e);

typedef struct rl_pg_params {
    double clip_low, clip_high;
    double clip_c; /* 0: no dual clip; otherwise > 1 */
    rl_agg agg;
} rl_pg_params;

typedef struct rl_pg_stats {
    double loss;            /* the aggregated policy loss */
    double clip_frac;       /* tokens where the clipped branch was larger (token mean) */
    double clip_frac_lower; /* tokens where the dual clip bound applied (token mean) */
    double ppo_kl;          /* token mean of old_logp - logp */
} rl_pg_stats;

/* Policy loss over [B, T]; dlogp (may be NULL) receives dloss/dlogp per token. */
int rl_policy_loss(const float *logp, const float *old_logp, const float *adv, const uint8_t *mask, int B, int T,
                   const rl_pg_params *p, float *dlogp, rl_pg_stats *stats, rlvr_err *e);

/* The same loss over n tokens with the aggregation weights given (rl_agg_weights of the
 * whole minibatch), so that a minibatch can be processed in micro-batches: each call adds
 * its tokens' sums into *acc and writes dlogp (may be NULL) for its tokens. */
typedef struct rl_pg_sums {
    double loss, clipped, lower, ppo_kl, count;
} rl_pg_sums;
void rl_policy_loss_weighted(const float *logp, const float *old_logp, const float *adv, const float *w,
                             const uint8_t *mask, size_t n, const rl_pg_params *p, float *dlogp, rl_pg_sums *acc);
void rl_pg_stats_from_sums(const rl_pg_sums *acc, rl_pg_stats *stats);

/* Per-token KL estimate kl[B, T] (0 on padding) and its derivative dkl/dlogp (may be NULL). */
void rl_kl_per_token(rl_kl_kind kind, const float *logp, const float *ref_logp, const uint8_t *mask, int B, int T,
                     float *kl, float *dkl);

/* coef * aggregate(kl); adds coef * w * dkl into dlogp when it is not NULL. Returns the loss term. */
double rl_kl_loss(rl_kl_kind kind, double coef, rl_agg agg, const float *logp, const float *ref_logp,
                  const uint8_t *mask, int B, int T, float *dlogp, rlvr_err *e);

#endif
