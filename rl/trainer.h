/* trainer.h - the runs rlvr makes: RL training (rlvr train), supervised fine-tuning
 * (rlvr sft) and evaluation (rlvr eval), on the CPU reference.
 *
 * A run lives in <output_dir>/<name>/: run.db (the run store), checkpoints/step-N/
 * (checkpoint.h), model/ (the final model, a Hugging Face directory) and, for a model
 * initialized from scratch, tokenizer/ (its byte-level tokenizer). Everything a user can
 * get wrong (config, data, reward script, prompt lengths) is checked before the first
 * model computation. */
#ifndef RLVR_TRAINER_H
#define RLVR_TRAINER_H

#include <stdio.h>

#include "config.h"
#include "dataset.h"
#include "err.h"

typedef enum rl_run_kind { RL_RUN_TRAIN, RL_RUN_SFT } rl_run_kind;

typedef struct rl_run_opts {
    const rlvr_config *cfg;
    const char *config_lua; /* the resolved config, stored with the run */
    const dataset *train, *eval;
    const char *db_path;
    int resume;        /* continue from the newest checkpoint of the run directory */
    FILE *out;         /* progress and summaries */
} rl_run_opts;

/* Runs GRPO/PPO (RL_RUN_TRAIN) or SFT to cfg->steps. Returns 0; -1 with the message in e.
 * *usage_error is set when the failure is the user's input (exit status 2). */
int rl_run(rl_run_kind kind, const rl_run_opts *o, int *usage_error, rlvr_err *e);

/* Greedy held-out evaluation of cfg->model.path (or the initialized model) on `eval`:
 * prints and returns accuracy (mean of the script's `accuracy` part, else of the reward);
 * each problem's completion and reward parts go to `samples` as JSONL (may be NULL). */
int rl_evaluate(const rlvr_config *cfg, const dataset *eval, FILE *out, FILE *samples, double *accuracy,
                double *reward_mean, int *usage_error, rlvr_err *e);

#endif
