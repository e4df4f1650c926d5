/* cmd_eval.c - `rlvr eval [CONFIG.lua] --model DIR`: greedy held-out accuracy of a model on
 * data.eval (or the arithmetic task's held-out problems) with the config's reward script. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "run_setup.h"
#include "trainer.h"
#include "util.h"

static const cli_opt EVAL_OPTS[] = {
    {"model", "DIR", "the model to evaluate (sets model.path)", 0},
    {"samples", "FILE", "write every problem's completion and reward parts to FILE (JSONL)", 0},
    {"set", "KEY=VALUE", "override a config key (repeatable)", 1},
};

static int eval_run(const cli_args *a) {
    rlvr_config cfg;
    rlvr_err e = {{0}};
    if (run_setup_config(&cfg, a, &e) != 0) {
        cmd_error("%s", e.msg);
        return EXIT_USAGE;
    }
    const char *dir = cli_get(a, "model");
    if (dir) {
        free(cfg.model_path);
        cfg.model_path = util_strdup(dir);
    }
    run_data data;
    int status = EXIT_OK, usage = 1;
    double acc, rew;
    if (run_setup_data(&data, &cfg, &e) != 0) {
        cmd_error("%s", e.msg);
        config_free(&cfg);
        return EXIT_USAGE;
    }
    const char *samples_path = cli_get(a, "samples");
    FILE *samples = NULL;
    if (samples_path && !(samples = fopen(samples_path, "w"))) {
        cmd_error("%s: %s", samples_path, strerror(errno));
        status = EXIT_USAGE;
    } else if (rl_evaluate(&cfg, &data.eval, stdout, samples, &acc, &rew, &usage, &e) != 0) {
        cmd_error("%s", e.msg);
        status = usage ? EXIT_USAGE : EXIT_FAIL;
    } else if (samples && fflush(samples) != 0) {
        cmd_error("%s: %s", samples_path, strerror(errno));
        status = EXIT_FAIL;
    } else {
        printf("accuracy: %.1f%% (%zu problems), mean reward %.4f, model %s\n", 100 * acc, data.eval.n, rew,
               cfg.model_path);
    }
    if (samples && fclose(samples) != 0 && status == EXIT_OK) {
        cmd_error("%s: %s", samples_path, strerror(errno));
        status = EXIT_FAIL;
    }
    run_data_free(&data);
    config_free(&cfg);
    return status;
}

const command cmd_eval = {
    .name = "eval",
    .summary = "Evaluate a model's accuracy on a dataset with a reward script",
    .usage = "[CONFIG.lua] --model DIR [options]",
    .details = "Generates one greedy completion per data.eval prompt (the arithmetic task's held-out\n"
               "problems when data.eval is empty) and scores it with reward.script. Accuracy is\n"
               "the mean of the script's `accuracy` part, or of the reward when it has none.\n"
               "--samples FILE writes one JSON object per problem: id, prompt, answer, completion,\n"
               "completion_tokens, finish_reason, reward, parts, status (and error).",
    .opts = EVAL_OPTS,
    .n_opts = sizeof EVAL_OPTS / sizeof EVAL_OPTS[0],
    .max_positional = 1,
    .run = eval_run,
};
