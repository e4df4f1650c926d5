/* cmd_train.c - `rlvr train [CONFIG.lua]`: resolve the config (file, then --set
 * overrides), check it and the data it names, and record the run.
 *
 * The trainer itself lands with its own issue; until then `--dry-run` is what runs:
 * it prints the fully resolved config (a Lua chunk that loads back into the same
 * config), checks the datasets row by row, records the run with status "dry-run" and
 * its config in the run store, and stops before any model work. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "datasets.h"
#include "run_setup.h"
#include "store.h"
#include "util.h"

static const cli_opt TRAIN_OPTS[] = {
    {"set", "KEY=VALUE", "override a config key, e.g. --set rollout.temperature=0.7 (repeatable)", 1},
    {"db", "PATH", "run database (default: <output_dir>/<name>/run.db)", 0},
    {"dry-run", NULL, "print the resolved config, check the data, record the run, and stop", 0},
};

static int train_run(const cli_args *a) {
    rlvr_config cfg;
    rlvr_err e = {{0}};
    if (run_setup_config(&cfg, a, &e) != 0) {
        cmd_error("%s", e.msg);
        return EXIT_USAGE;
    }
    if (!cli_has(a, "dry-run")) {
        config_free(&cfg);
        cmd_error("'train' is not available yet");
        fprintf(stderr, "rlvr: (the trainer lands with its own issue; 'rlvr train --dry-run' resolves and checks a config)\n");
        return EXIT_USAGE;
    }

    int status = EXIT_OK;
    char *lua = config_to_lua(&cfg);
    run_data data;
    if (!lua) {
        cmd_error("out of memory");
        config_free(&cfg);
        return EXIT_FAIL;
    }
    /* Everything a user can get wrong is checked before anything is written. */
    if (run_setup_data(&data, &cfg, &e) != 0) {
        cmd_error("%s", e.msg);
        free(lua);
        config_free(&cfg);
        return EXIT_USAGE;
    }
    char *db_path = run_setup_db_path(&cfg);
    store *s = db_path ? store_open(db_path, 1, &e) : NULL;
    if (!s) {
        cmd_error("%s", db_path ? e.msg : "out of memory");
        status = EXIT_FAIL;
    } else {
        fputs(lua, stdout);
        printf("-- train: %zu prompts from %s\n", data.train.n, data.train.source);
        printf("-- eval:  %zu prompts from %s\n", data.eval.n, data.eval.source);
        if (data.train.n > 0) printf("-- first prompt: %s\n", data.train.rows[0].prompt);
        store_run_info info = {
            .name = cfg.name,
            .config_lua = lua,
            .rlvr_version = RLVR_VERSION,
            .model_path = cfg.model_path,
            .seed = (int64_t)cfg.seed,
            .status = "dry-run",
        };
        int64_t run_id = store_run_begin(s, &info, &e);
        char msg[256];
        snprintf(msg, sizeof msg, "dry run: %zu training and %zu held-out prompts checked", data.train.n,
                 data.eval.n);
        if (run_id < 0 || store_event(s, run_id, "info", msg, &e) != 0) {
            cmd_error("%s: %s", db_path, e.msg);
            status = EXIT_FAIL;
        } else {
            printf("-- run database: %s (run %lld, status dry-run)\n", db_path, (long long)run_id);
        }
        store_close(s);
    }
    free(db_path);
    run_data_free(&data);
    free(lua);
    config_free(&cfg);
    return status;
}

const command cmd_train = {
    .name = "train",
    .summary = "Train a model with RL from verifiable rewards (GRPO/PPO)",
    .usage = "[CONFIG.lua] [options]",
    .details = "CONFIG.lua returns a table of settings (see docs/config.md); without it the embedded\n"
               "default runs: CPU, a tiny model, synthetic arithmetic, runs/arith-grpo/run.db.\n"
               "The trainer is not available yet: --dry-run resolves and checks the config and data,\n"
               "prints the resolved config, and records the run with status 'dry-run'.",
    .opts = TRAIN_OPTS,
    .n_opts = sizeof TRAIN_OPTS / sizeof TRAIN_OPTS[0],
    .max_positional = 1,
    .run = train_run,
};
