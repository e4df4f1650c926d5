/* advantages.h - advantage estimators for outcome-rewarded samples.
 *
 * A batch is B samples laid out as [B, T] token slots (T = the longest completion);
 * mask[b*T + t] is 1 for the completion's real tokens and 0 for padding. Samples of
 * one prompt share a group id. Every estimator writes a per-token advantage [B, T]
 * (0 on padding), following the published formulas as verl's core_algos.py computes
 * them, so runs can be compared with that toolkit:
 *
 *   grpo          A_i = (r_i - mean_g) / (std_g + eps), std unbiased (N-1); a group of
 *                 one gets mean 0, std 1 (DeepSeekMath, GRPO)
 *   dr_grpo       A_i = r_i - mean_g (Dr. GRPO: no std normalization)
 *   rloo          A_i = G/(G-1) (r_i - mean_g) = r_i - mean of the others (RLOO)
 *   reinforce_pp  returns R_t = sum_{k>=t} gamma^(k-t) r_k over token rewards, then
 *                 whitened over every real token of the batch (REINFORCE++)
 *   gae           delta_t = r_t + gamma V_{t+1} - V_t, A_t = sum (gamma lam)^k delta_{t+k},
 *                 returns = A + V, then A whitened over the batch (PPO with a critic)
 *
 * "Whitened" is (x - mean) / sqrt(var + 1e-8) with the unbiased variance over masked
 * tokens (verl's masked_whiten with shift_mean). */
#ifndef RLVR_ADVANTAGES_H
#define RLVR_ADVANTAGES_H

#include <stdint.h>

#include "err.h"

typedef enum rl_adv_kind { RL_ADV_GRPO, RL_ADV_DR_GRPO, RL_ADV_RLOO, RL_ADV_REINFORCE_PP, RL_ADV_GAE } rl_adv_kind;

/* "grpo", "dr_grpo", "rloo", "reinforce_pp", "gae" (the config's algo.advantage); -1 otherwise. */
int rl_adv_kind_parse(const char *name);

typedef struct rl_batch_shape {
    int B, T;              /* samples, token slots per sample */
    const uint8_t *mask;   /* [B, T] */
    const int64_t *group;  /* [B] group id of each sample (its prompt) */
} rl_batch_shape;

/* Token rewards [B, T]: each sample's outcome score on its last real token, minus
 * kl_coef * kl[b, t] on every real token when kl is not NULL (KL in the reward). */
void rl_token_rewards(const rl_batch_shape *s, const float *scores, const float *kl, float kl_coef, float *rewards);

/* Outcome advantages (grpo, dr_grpo, rloo) from the scores [B]; eps as algo.adv_eps.
 * Fails on a sample with no real token. */
int rl_outcome_advantages(rl_adv_kind kind, const rl_batch_shape *s, const float *scores, float eps, float *adv,
                          rlvr_err *e);

/* REINFORCE++: returns over token rewards [B, T], whitened over the batch. */
int rl_reinforce_pp_advantages(const rl_batch_shape *s, const float *rewards, float gamma, float *adv, float *returns,
                               rlvr_err *e);

/* GAE from token rewards and the critic's values [B, T]; advantages whitened. */
int rl_gae_advantages(const rl_batch_shape *s, const float *rewards, const float *values, float gamma, float lam,
                      float *adv, float *returns, rlvr_err *e);

/* Whitens x [B, T] in place over the masked tokens (needs at least 2 of them). */
int rl_masked_whiten(const rl_batch_shape *s, float *x, rlvr_err *e);

#endif
