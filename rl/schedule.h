/* schedule.h - the learning rate at each step: linear warmup, then constant or cosine
 * decay to min_lr_ratio * peak (the shape of transformers' get_cosine_schedule_with_warmup,
 * with a floor). */
#ifndef RLVR_SCHEDULE_H
#define RLVR_SCHEDULE_H

typedef enum rl_lr_kind { RL_LR_CONSTANT, RL_LR_COSINE } rl_lr_kind;

typedef struct rl_lr_schedule {
    rl_lr_kind kind;
    double peak;          /* learning_rate */
    long long warmup;     /* warmup_steps */
    long long total;      /* steps */
    double min_ratio;     /* min_lr_ratio (cosine only) */
} rl_lr_schedule;

/* The learning rate for optimizer step `step` (0-based). */
double rl_lr_at(const rl_lr_schedule *s, long long step);

/* Parses "constant" / "cosine"; -1 for anything else. */
int rl_lr_kind_parse(const char *name);

#endif
