/* run_setup.h - what every command that starts a run does first: resolve the config
 * from a file and --set overrides, and load the datasets it names. Shared by train
 * (and later sft and eval). */
#ifndef RLVR_RUN_SETUP_H
#define RLVR_RUN_SETUP_H

#include "cli.h"
#include "config.h"
#include "dataset.h"

/* config_init, then the positional CONFIG.lua if given, then each --set in order, then
 * --db, then config_check. On failure the config is freed. */
int run_setup_config(rlvr_config *cfg, const cli_args *a, rlvr_err *e);

/* The run database path: cfg->db, or <output_dir>/<name>/run.db. Caller frees. */
char *run_setup_db_path(const rlvr_config *cfg);

typedef struct run_data {
    dataset train, eval;
} run_data;

/* Loads data.train / data.eval (JSONL) or generates the arithmetic task; a given
 * model.path must be a directory. */
int run_setup_data(run_data *d, const rlvr_config *cfg, rlvr_err *e);
void run_data_free(run_data *d);

#endif
