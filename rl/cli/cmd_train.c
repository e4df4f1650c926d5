/* cmd_train.c - `rlvr train [CONFIG.lua]` and `rlvr sft [CONFIG.lua]`: resolve the config
 * (file, then --set overrides), load and check the data, and run the trainer (rl/trainer.h).
 *
 * `--dry-run` prints the fully resolved config (a Lua chunk that loads back into the same
 * config), checks the datasets row by row, records the run with status "dry-run" and its
 * config in the run store, and stops before any model work. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "datasets.h"
#include "run_setup.h"
#include "store.h"
#include "trainer.h"
#include "util.h"

static const cli_opt TRAIN_OPTS[] = {
    {"set", "KEY=VALUE", "override a config key, e.g. --set rollout.temperature=0.7 (repeatable)", 1},
    {"db", "PATH", "run database (default: <output_dir>/<name>/run.db)", 0},
    {"dry-run", NULL, "print the resolved config, check the data, record the run, and stop", 0},
    {"resume", NULL, "continue the run from its newest checkpoint", 0},
};

/* Runs the trainer (RL or SFT) on a resolved config. */
static int run_trainer(rl_run_kind kind, rlvr_config *cfg, const cli_args *a) {
    rlvr_err e = {{0}};
    char *lua = config_to_lua(cfg);
    char *db_path = run_setup_db_path(cfg);
    run_data data;
    int status = EXIT_OK, usage = 1;
    if (!lua || !db_path) {
        cmd_error("out of memory");
        status = EXIT_FAIL;
    } else if (run_setup_data(&data, cfg, &e) != 0) {
        cmd_error("%s", e.msg);
        status = EXIT_USAGE;
    } else {
        rl_run_opts o = {.cfg = cfg, .config_lua = lua, .train = &data.train, .eval = &data.eval,
                         .db_path = db_path, .resume = cli_has(a, "resume"), .out = stdout};
        if (rl_run(kind, &o, &usage, &e) != 0) {
            cmd_error("%s", e.msg);
            status = usage ? EXIT_USAGE : EXIT_FAIL;
        }
        run_data_free(&data);
    }
    free(lua);
    free(db_path);
    config_free(cfg);
    return status;
}

static int train_run(const cli_args *a) {
    rlvr_config cfg;
    rlvr_err e = {{0}};
    if (run_setup_config(&cfg, a, &e) != 0) {
        cmd_error("%s", e.msg);
        return EXIT_USAGE;
    }
    if (!cli_has(a, "dry-run")) return run_trainer(RL_RUN_TRAIN, &cfg, a);

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
               "Each step samples rollout.group_size completions per prompt, scores them with\n"
               "reward.script, and updates the policy (algo.*). Checkpoints go to\n"
               "<output_dir>/<name>/checkpoints, the final model to <output_dir>/<name>/model.\n"
               "--resume continues from the newest checkpoint; --dry-run resolves and checks the\n"
               "config and data, prints the resolved config, and records the run as 'dry-run'.",
    .opts = TRAIN_OPTS,
    .n_opts = sizeof TRAIN_OPTS / sizeof TRAIN_OPTS[0],
    .max_positional = 1,
    .run = train_run,
};

static int sft_run(const cli_args *a) {
    rlvr_config cfg;
    rlvr_err e = {{0}};
    if (run_setup_config(&cfg, a, &e) != 0) {
        cmd_error("%s", e.msg);
        return EXIT_USAGE;
    }
    return run_trainer(RL_RUN_SFT, &cfg, a);
}

static const cli_opt SFT_OPTS[] = {
    {"set", "KEY=VALUE", "override a config key, e.g. --set sft.batch_size=32 (repeatable)", 1},
    {"db", "PATH", "run database (default: <output_dir>/<name>/run.db)", 0},
    {"resume", NULL, "continue the run from its newest checkpoint", 0},
};

const command cmd_sft = {
    .name = "sft",
    .summary = "Supervised fine-tuning on prompt/response pairs",
    .usage = "[CONFIG.lua] [options]",
    .details = "Trains on data.train rows: the prompt (through the chat template) and the row's\n"
               "sft.response_key field, then an end-of-sequence token; the loss is the mean negative\n"
               "log-likelihood of the response tokens only. The optimizer, schedule, steps,\n"
               "checkpoint and evaluation keys are those of `rlvr train` (docs/config.md); the\n"
               "final model goes to <output_dir>/<name>/model.",
    .opts = SFT_OPTS,
    .n_opts = sizeof SFT_OPTS / sizeof SFT_OPTS[0],
    .max_positional = 1,
    .run = sft_run,
};
