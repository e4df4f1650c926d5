/* run_ctx.h - what a run holds while it runs (private to rl/): the model, its tokenizer,
 * the reward scorer, the optimizer and the run store, and the helpers the RL, SFT and
 * evaluation loops share. */
#ifndef RLVR_RUN_CTX_H
#define RLVR_RUN_CTX_H

#include <stdint.h>
#include <stdio.h>

#include "checkpoint.h"
#include "config.h"
#include "critic.h"
#include "dataset.h"
#include "model.h"
#include "model_gpu.h"
#include "optim.h"
#include "rewards.h"
#include "sampler.h"
#include "schedule.h"
#include "store.h"
#include "tokenizer.h"

typedef struct rl_prompt {
    int *ids;
    int n;
} rl_prompt;

typedef struct rl_ctx {
    const rlvr_config *cfg;
    char *run_dir;
    model *m;
    model *ref;           /* frozen reference policy (kl_coef > 0), else NULL */
    /* device = "cuda": the policy's training copy (weights, gradients, AdamW state) and the
     * reference's forward-only copy on the GPU. m stays the weights' host copy: rollouts
     * and evaluation run on it, checkpoints are written from it. */
    gpu_model *gpu, *gpu_ref;
    int host_stale;       /* gpu's weights have moved since m last received them */
    rl_critic *critic;    /* the value model (algo.advantage = "gae"), else NULL */
    tok_tokenizer *tok;
    int *stop_ids;
    int n_stop;
    rw_scorer *scorer;    /* NULL for SFT without evaluation */
    rl_adamw opt;
    rl_lr_schedule sched;
    store *st;
    int64_t run_id;
    ds_sampler sampler;
    int64_t step;         /* optimizer steps completed */
    rl_prompt *train_prompts, *eval_prompts; /* encoded once, one per row */
    size_t n_train_prompts, n_eval_prompts;
    int max_prompt;       /* longest encoded prompt */
    int max_sft_seq;      /* SFT on a GPU: longest prompt + response + end-of-sequence, in tokens */
    FILE *out;
} rl_ctx;

/* Checks the data against the reward script and the tokenizer, loads or initializes the
 * model, opens or resumes the run store, restores the newest checkpoint when resuming.
 * `with_scorer`: load the reward script (train; sft when it evaluates). *usage_error tells
 * a user error (bad input) from a failure of the work. */
int rl_ctx_open(rl_ctx *c, const rlvr_config *cfg, const char *config_lua, const dataset *train,
                const dataset *eval, const char *db_path, int resume, int need_optimizer, int with_scorer,
                const char *response_key, FILE *out, int *usage_error, rlvr_err *e);
/* Records the final status and frees everything. */
void rl_ctx_close(rl_ctx *c, const char *status);

/* "file:line" of a row, or "source row N" for a generated one (for messages). */
void rl_row_where(const dataset *d, const ds_row *r, char *buf, size_t n);

/* The token ids of a prompt as the model sees it (chat template applied per the config). */
int rl_encode_prompt(rl_ctx *c, const char *text, rl_prompt *out, rlvr_err *e);

/* The sample a reward script sees: the row's fields plus prompt, completion,
 * completion_tokens and finish_reason. */
cJSON *rl_reward_input(const ds_row *row, const char *completion, int completion_tokens, const char *finish_reason);

/* Greedy generation over `prompts` of `rows` and scoring: mean accuracy (the `accuracy`
 * part when the script returns one, else the reward) and mean reward. When `samples` is
 * not NULL, one JSON line per row goes there (prompt, answer, completion, reward, parts). */
int rl_ctx_evaluate(rl_ctx *c, const dataset *d, const rl_prompt *prompts, FILE *samples, double *accuracy,
                    double *reward_mean, rlvr_err *e);

/* One RL step (generate, score, advantages, update, log; evaluation first when do_eval):
 * c->step advances by one. *reward_mean and *accuracy summarize the step's samples. */
int rl_grpo_step(rl_ctx *c, const dataset *train, const dataset *eval, int do_eval, double *reward_mean,
                 double *accuracy, rlvr_err *e);

/* One SFT step on sft.batch_size rows: mean negative log-likelihood of the response tokens. */
int rl_sft_step(rl_ctx *c, const dataset *train, const dataset *eval, int do_eval, double *loss, rlvr_err *e);

/* Whether rlvr train's rollouts run on the GPU: a policy on the GPU and rollout.device
 * "cuda", or "auto" (which follows device). */
int rl_rollout_on_gpu(const rl_ctx *c);

/* The optimizer's side of a step, on the GPU with device = "cuda", else on the CPU:
 * zeroing the gradients, clipping them to max_grad_norm (*norm: the norm before), and one
 * AdamW update at lr. On the GPU the update leaves the host model stale: */
int rl_ctx_zero_grads(rl_ctx *c, rlvr_err *e);
int rl_ctx_clip_grads(rl_ctx *c, double *norm, rlvr_err *e);
int rl_ctx_optimizer_step(rl_ctx *c, double lr, rlvr_err *e);
/* brings the GPU's weights into the host model when they moved since the last call (a
 * no-op on the CPU). Called where the host model is read: generation, evaluation,
 * checkpoints and the final save, so SFT and extra PPO minibatches copy nothing per update. */
int rl_ctx_sync_host(rl_ctx *c, rlvr_err *e);

/* Writes a checkpoint of the current step. */
int rl_ctx_checkpoint(rl_ctx *c, rlvr_err *e);

/* The sampling seed of a step: runs keyed by (seed, step) repeat exactly after a resume. */
uint64_t rl_step_seed(uint64_t seed, int64_t step, uint64_t purpose);

#endif
