/* checkpoint.h - training checkpoints that a crash can never leave half-written.
 *
 * A checkpoint is a directory <run dir>/checkpoints/step-<8 digits>/ holding
 *   model/        the policy as a Hugging Face directory (model_save: safetensors, config.json,
 *                 tokenizer files)
 *   optim.bin     AdamW state: a small header, then m and v as raw fp32
 *   state.json    the step, the data cursor (epoch, position), the run id and the policy version
 * It is written under a temporary name (step-N.tmp-<pid>) and renamed into place, so a
 * directory called step-N is always complete; leftovers of a killed writer are removed on
 * the next save. The random draws of a step are keyed by (seed, step), so no generator
 * state needs saving: a resumed run repeats exactly what the uninterrupted run would do. */
#ifndef RLVR_CHECKPOINT_H
#define RLVR_CHECKPOINT_H

#include <stdint.h>

#include "err.h"
#include "model.h"
#include "optim.h"

typedef struct ckpt_state {
    int64_t step;           /* optimizer steps completed */
    int64_t epoch;          /* data sampler position */
    int64_t cursor;
    int64_t run_id;         /* the run's row in the run store */
    int64_t policy_version; /* equals step for the trainer */
} ckpt_state;

/* Writes checkpoint `st->step` under run_dir/checkpoints and keeps the newest `keep`
 * (0 keeps all). Returns 0, or -1 with the message in e (nothing half-written remains). */
int ckpt_save(const char *run_dir, const model *m, const rl_adamw *opt, const ckpt_state *st, int keep,
              rlvr_err *e);

/* ckpt_save, with `extra` writing more of the run's state (the PPO critic) into the
 * checkpoint's temporary directory `dir` before it is renamed into place, so that it is
 * complete together with the rest or not there at all. Returns 0, or -1 with e set. */
typedef int (*ckpt_extra_fn)(const char *dir, void *ctx, rlvr_err *e);
int ckpt_save_extra(const char *run_dir, const model *m, const rl_adamw *opt, const ckpt_state *st, int keep,
                    ckpt_extra_fn extra, void *extra_ctx, rlvr_err *e);

/* The newest complete checkpoint directory under run_dir/checkpoints (caller frees), or
 * NULL with e set when there is none. */
char *ckpt_latest(const char *run_dir, rlvr_err *e);

/* Reads state.json and optim.bin of checkpoint directory `dir` into *st and *opt (already
 * initialized for the model's parameter count; a mismatch is an error naming the file).
 * The model itself is loaded with model_load(dir/model). */
int ckpt_load_state(const char *dir, ckpt_state *st, rl_adamw *opt, rlvr_err *e);

#endif
