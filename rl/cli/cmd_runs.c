/* cmd_runs.c - `rlvr runs [DIR]`: one line per run found under DIR (default ./runs),
 * read-only, so it is safe while runs are writing. A run recorded as running whose
 * process is gone shows as "died". */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "store.h"
#include "util.h"

typedef struct runs_ctx {
    const char *path;
    int shown, header_done;
} runs_ctx;

static int print_run(const store_run_summary *r, void *p) {
    runs_ctx *c = p;
    const char *status = store_run_shown_status(r);
    if (!c->header_done) {
        printf("%-20s %-11s %6s %8s %9s  %-20s  %s\n", "NAME", "STATUS", "STEP", "REWARD", "SAMPLES", "STARTED",
               "DATABASE");
        c->header_done = 1;
    }
    char step[24], reward[24];
    if (r->last_step >= 0) snprintf(step, sizeof step, "%lld", (long long)r->last_step);
    else snprintf(step, sizeof step, "-");
    if (isfinite(r->last_reward)) snprintf(reward, sizeof reward, "%.4f", r->last_reward);
    else snprintf(reward, sizeof reward, "-");
    printf("%-20s %-11s %6s %8s %9lld  %-20s  %s\n", r->name, status, step, reward, (long long)r->n_samples,
           r->started_at, c->path);
    c->shown++;
    return 0;
}

static int runs_run(const cli_args *a) {
    const char *dir = a->n_pos ? a->pos[0] : "runs";
    rlvr_err e = {{0}};
    char **paths = NULL;
    size_t n = 0;
    if (store_find_run_dbs(dir, &paths, &n, &e) != 0) {
        cmd_error("%s", e.msg);
        return EXIT_USAGE;
    }
    runs_ctx c = {0};
    int status = EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        store *s = store_open_readonly(paths[i], &e);
        if (!s) {
            cmd_error("%s", e.msg);
            status = EXIT_FAIL;
            continue;
        }
        c.path = paths[i];
        if (store_list_runs(s, print_run, &c, &e) != 0) {
            cmd_error("%s: %s", paths[i], e.msg);
            status = EXIT_FAIL;
        }
        store_close(s);
    }
    if (c.shown == 0 && status == EXIT_OK) printf("no runs in %s\n", dir);
    store_free_paths(paths, n);
    return status;
}

const command cmd_runs = {
    .name = "runs",
    .summary = "List the runs in a runs directory with status and last step",
    .usage = "[DIR] [options]",
    .details = "DIR is a runs directory (default ./runs; each run is DIR/NAME/run.db), one run's\n"
               "directory, or a run.db file. Databases are opened read-only.",
    .opts = NULL,
    .n_opts = 0,
    .max_positional = 1,
    .run = runs_run,
};
