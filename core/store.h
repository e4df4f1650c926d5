/* store.h - the run store: one SQLite database per run directory.
 *
 * WAL mode, foreign keys on, schema versioned by PRAGMA user_version with forward
 * migrations. Everything a step produces (its metrics, its samples, their reward parts)
 * is written in one transaction, so a process killed at any moment leaves a database
 * that passes integrity_check and holds every step that finished. See docs/run-store.md. */
#ifndef RLVR_STORE_H
#define RLVR_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct store store;

/* The schema version this build writes; older databases are migrated on open, newer
 * ones are refused with a message naming both versions. */
#define STORE_SCHEMA_VERSION 1

/* Opens (creating it and its directory when `create` is set) the database at `path`. */
store *store_open(const char *path, int create, rlvr_err *e);
/* Opens an existing database read-only (for `rlvr runs` and reports). */
store *store_open_readonly(const char *path, rlvr_err *e);
void store_close(store *s);
/* The underlying handle, for tests and reports that run their own SQL. */
struct sqlite3 *store_db(store *s);
/* The path the store was opened with (for messages). */
const char *store_path(store *s);

/* Applies the forward migrations to a raw handle until PRAGMA user_version reaches
 * `target_version` (0..STORE_SCHEMA_VERSION), each in its own transaction with its
 * version bump. `name` names the database in messages. store_open calls it with
 * STORE_SCHEMA_VERSION; tests call it to build a database as an older rlvr left it. */
int store_migrate(struct sqlite3 *db, int target_version, const char *name, rlvr_err *e);

typedef struct store_run_info {
    const char *name;
    const char *config_lua;   /* the fully resolved config (config_to_lua) */
    const char *rlvr_version;
    const char *model_path;
    int64_t seed;
    const char *status;       /* "running", "dry-run", ... */
} store_run_info;

/* Inserts a run; returns its id (> 0) or -1. Records started_at, host and pid. */
int64_t store_run_begin(store *s, const store_run_info *info, rlvr_err *e);
/* Sets status ("finished", "failed", "interrupted") and finished_at. */
int store_run_finish(store *s, int64_t run_id, const char *status, rlvr_err *e);

/* Continues run `run_id` after a restart from the checkpoint of step `last_step`: in one
 * transaction, deletes the steps after it (with their metrics, samples and rewards: they
 * are redone) and marks the run running under this process. *dropped (may be NULL) gets
 * the number of steps removed. */
int store_run_resume(store *s, int64_t run_id, int64_t last_step, int64_t *dropped, rlvr_err *e);
/* A metric the steps table has no column for (e.g. "reward/accuracy_mean"). */
typedef struct store_metric {
    const char *name;
    double value;
} store_metric;

/* One step's metrics. NaN means "not measured" and is stored as NULL. */
typedef struct store_step {
    int64_t step;
    double started_at; /* Unix seconds */
    double wall_s;
    double reward_mean, reward_std, accuracy;
    double loss, kl, entropy, grad_norm, lr, clip_frac;
    double adv_mean, adv_std;
    double response_len_mean, response_len_max, frac_truncated, frac_zero_std_groups;
    int64_t tokens_generated;
    double gen_s, score_s, train_s;
    double gen_tokens_per_s, train_tokens_per_s;
    const store_metric *extra;
    int n_extra;
} store_step;

/* Initializes every double of `st` to NaN and the rest to zero. */
void store_step_init(store_step *st);

typedef struct store_reward {
    const char *name;   /* "accuracy", "format", ... or "reward" for a single number */
    double value;       /* NaN (e.g. a verifier that failed) is stored as NULL */
    const char *status; /* "ok", "error" or "timeout"; NULL means "ok" */
    const char *detail; /* the error message, or NULL */
} store_reward;

typedef struct store_sample {
    int64_t prompt_id;
    int group_index, sample_index;
    const char *prompt, *completion;
    int n_prompt_tokens, n_completion_tokens;
    const char *finish_reason; /* "stop" or "length" */
    double reward, advantage;
    int64_t policy_version;
    const int32_t *completion_ids; /* n_completion_tokens ids, or NULL */
    const float *logprobs;         /* the sampling log-prob of each completion token, or NULL */
    const store_reward *rewards;
    int n_rewards;
} store_sample;

/* Writes a step, its samples and their reward parts in one transaction. Writing a step
 * that is already stored for this run is an error (no upsert: a resumed run must start
 * after its last stored step), and any failure rolls the whole step back. */
int store_write_step(store *s, int64_t run_id, const store_step *st, const store_sample *samples, int n_samples,
                     rlvr_err *e);

/* Appends to the events table ("info", "warning", "error"). */
int store_event(store *s, int64_t run_id, const char *level, const char *message, rlvr_err *e);

/* One row of `rlvr runs`. */
typedef struct store_run_summary {
    int64_t id;
    char name[128];
    char status[32];
    char started_at[32];
    int64_t last_step;     /* -1 when no step finished */
    double last_reward;    /* NaN when unknown */
    int64_t n_samples;
    int64_t pid;
    char host[128];
    char finished_at[32];  /* "" while unfinished */
    /* Whether the recorded process still exists: 1 alive, 0 gone, -1 cannot tell (the run
     * was recorded on another host). Only checked for status "running". A recycled pid can
     * make a dead run look alive; it cannot make a live one look dead. */
    int alive;
} store_run_summary;

/* Calls `fn` for each run in the database, oldest first. A non-zero return from `fn`
 * stops the listing and is returned. */
int store_list_runs(store *s, int (*fn)(const store_run_summary *, void *), void *ctx, rlvr_err *e);

/* The status to show for a run: "died" for a "running" run whose process is gone on
 * this host, else the recorded status. */
const char *store_run_shown_status(const store_run_summary *r);

/* Finds the run databases `rlvr runs DIR` lists: DIR/<any>/run.db one level down, sorted
 * by path; or DIR/run.db when DIR is a run directory; or DIR itself when it is a file.
 * Sets *paths to an array the caller frees with store_free_paths; *n may be 0. Returns -1
 * with a message naming DIR when it does not exist or cannot be read. */
int store_find_run_dbs(const char *dir, char ***paths, size_t *n, rlvr_err *e);
void store_free_paths(char **paths, size_t n);

#endif
