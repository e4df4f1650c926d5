/* critic.h - the value model of PPO (algo.advantage = "gae"): a transformer of its own
 * with a value head, Linear(C -> 1) with bias, on its final normed hidden states, and
 * its own AdamW.
 *
 * V_t of completion token t is the head at the position the policy predicts token t from
 * (n_prompt - 1 + t), as verl's critic takes values[:, -response_length - 1 : -1].
 * The head starts at zero (weight and bias): the first step's values are exactly 0, so no
 * random baseline enters the first advantages (GAE then reduces to discounted returns),
 * and the trunk receives gradient (w * dV) from the second update on, once w has moved.
 * (transformers' ForTokenClassification head, verl's critic, draws w from N(0, 0.02).)
 *
 * On disk a critic is a Hugging Face model directory (model_save: config.json,
 * model.safetensors, tokenizer files; loadable by transformers, which ignores the head)
 * plus value_head.safetensors with `score.weight` [1, C] and `score.bias` [1] (the names
 * of transformers' *ForTokenClassification head with num_labels = 1), and optim.bin with
 * its AdamW state. */
#ifndef RLVR_CRITIC_H
#define RLVR_CRITIC_H

#include <stdint.h>

#include "err.h"
#include "model.h"
#include "optim.h"
#include "policy_loss.h"
#include "schedule.h"
#include "seq_batch.h"

typedef struct rl_critic_opts {
    double beta1, beta2, eps, weight_decay; /* AdamW, as the policy's */
    double max_grad_norm;                   /* over the trunk and the head together; 0: no clipping */
    rl_lr_schedule sched;                   /* peak = critic.learning_rate */
    double cliprange_value;
    rl_agg agg;
    int ppo_epochs, minibatch_size, micro_batch_size; /* minibatch_size 0: the whole batch */
} rl_critic_opts;

typedef struct rl_critic {
    model *m;               /* the transformer (its lm_head is not used) */
    float *head;            /* [C + 1]: the value head's weight [C], then its bias */
    float *dhead;           /* [C + 1] its gradient */
    rl_adamw opt, opt_head; /* AdamW state of m's parameters and of the head */
    rl_critic_opts o;
} rl_critic;

/* A critic from model directory `dir`: the head from dir/value_head.safetensors when the
 * directory has one, else zero. The model must have the policy's vocabulary `vocab` and
 * room for max_len positions; errors name `what` (the config key). */
rl_critic *rl_critic_load(const char *dir, const char *what, int vocab, int max_len, const rl_critic_opts *o,
                          rlvr_err *e);
/* A critic on model `m` (taken over, freed on failure too) with a zero head. */
rl_critic *rl_critic_new(model *m, const rl_critic_opts *o, rlvr_err *e);
void rl_critic_free(rl_critic *c);

/* Writes the model directory, value_head.safetensors and optim.bin into `dir` (created). */
int rl_critic_save(const rl_critic *c, const char *dir, rlvr_err *e);
/* Reads dir/optim.bin into the critic's optimizers (a parameter count mismatch is an error). */
int rl_critic_load_optim(rl_critic *c, const char *dir, rlvr_err *e);

/* V [B, T] of seqs[0..B) (completion token t of sequence b at values[b*T + t]; padding
 * untouched), forward only, micro_batch_size sequences at a time. */
int rl_critic_values(rl_critic *c, const rl_seq *seqs, int B, int T, float *values, rlvr_err *e);

typedef struct rl_critic_stats {
    double vf_loss, vf_clipfrac, grad_norm; /* means over the updates (clip fraction over tokens) */
    int updates;
} rl_critic_stats;

/* ppo_epochs passes of minibatch updates of the clipped value loss (value_loss.h) over the
 * batch: targets `returns` [B, T], clipping around `old_values` [B, T], loss over the tokens
 * of `mask` [B, T], aggregated with the minibatch's weights so that micro_batch_size does
 * not change the update. `lr_step` is the step the learning rate is taken at. */
int rl_critic_update(rl_critic *c, const rl_seq *seqs, int B, int T, const uint8_t *mask, const float *old_values,
                     const float *returns, long long lr_step, rl_critic_stats *st, rlvr_err *e);

#endif
