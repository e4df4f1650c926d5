/* run_setup.c - config resolution and data loading shared by run commands. */
#include "run_setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int run_setup_config(rlvr_config *cfg, const cli_args *a, rlvr_err *e) {
    if (config_init(cfg, e) != 0) return -1;
    if (a->n_pos > 0 && config_load_file(cfg, a->pos[0], e) != 0) goto fail;
    const char *set;
    for (int i = 0; (set = cli_nth(a, "set", i)) != NULL; i++)
        if (config_set(cfg, set, e) != 0) goto fail;
    const char *db = cli_get(a, "db");
    if (db) {
        char assignment[4200];
        snprintf(assignment, sizeof assignment, "db=%s", db);
        if (config_set(cfg, assignment, e) != 0) goto fail;
    }
    if (config_check(cfg, e) != 0) goto fail;
    return 0;
fail:
    config_free(cfg);
    return -1;
}

char *run_setup_db_path(const rlvr_config *cfg) {
    if (cfg->db && *cfg->db) return util_strdup(cfg->db);
    char *dir = util_path_join(cfg->output_dir, cfg->name);
    char *path = dir ? util_path_join(dir, "run.db") : NULL;
    free(dir);
    return path;
}

int run_setup_data(run_data *d, const rlvr_config *cfg, rlvr_err *e) {
    memset(d, 0, sizeof *d);
    if (cfg->model_path && *cfg->model_path && !util_is_dir(cfg->model_path))
        return err_set(e, "model.path: '%s' is not a directory", cfg->model_path);
    arith_params ap = {
        .min_digits = (int)cfg->data_arith_min_digits,
        .max_digits = (int)cfg->data_arith_max_digits,
        .terms = (int)cfg->data_arith_terms,
        .ops = cfg->data_arith_ops,
    };
    int rc;
    if (cfg->data_train && *cfg->data_train)
        rc = ds_load_jsonl(&d->train, cfg->data_train, cfg->data_prompt_key, cfg->data_answer_key, e);
    else
        rc = ds_generate_arith(&d->train, &ap, (uint64_t)cfg->seed, 0, (size_t)cfg->data_arith_n_train, NULL, e);
    if (rc) return -1;
    if (cfg->data_eval && *cfg->data_eval)
        rc = ds_load_jsonl(&d->eval, cfg->data_eval, cfg->data_prompt_key, cfg->data_answer_key, e);
    else if (!(cfg->data_train && *cfg->data_train))
        rc = ds_generate_arith(&d->eval, &ap, (uint64_t)cfg->seed, 1, (size_t)cfg->data_arith_n_eval, &d->train, e);
    else
        snprintf(d->eval.source, sizeof d->eval.source, "(none: data.eval is empty)");
    if (rc) {
        ds_free(&d->train);
        return -1;
    }
    return 0;
}

void run_data_free(run_data *d) {
    ds_free(&d->train);
    ds_free(&d->eval);
}
