/* run.c - the loop of a run: steps, progress lines, evaluation, checkpoints and the final
 * model; SIGINT/SIGTERM end it after the current step with a checkpoint. */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"
#include "run_ctx.h"
#include "trainer.h"
#include "util.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

/* Writes the final model to run_dir/model, replacing an older one only once the new one
 * is complete. */
static int save_final(rl_ctx *c, rlvr_err *e) {
    char tmp_name[64];
    snprintf(tmp_name, sizeof tmp_name, "model.tmp-%ld", (long)getpid());
    char *tmp = util_path_join(c->run_dir, tmp_name), *final = util_path_join(c->run_dir, "model");
    char *old = util_path_join(c->run_dir, "model.old");
    int rc = -1;
    if (!tmp || !final || !old) err_set(e, "out of memory");
    else if (rl_ctx_sync_host(c, e) == 0 && model_save(c->m, tmp, e) == 0) {
        if (util_is_dir(final) && rename(final, old) != 0) err_set(e, "%s: cannot move the previous model aside", final);
        else if (rename(tmp, final) != 0) err_set(e, "%s: cannot rename into place", final);
        else rc = 0;
        if (rc == 0 && util_is_dir(old)) util_remove_tree(old);
    }
    free(tmp);
    free(final);
    free(old);
    return rc;
}

int rl_run(rl_run_kind kind, const rl_run_opts *o, int *usage_error, rlvr_err *e) {
    const rlvr_config *cfg = o->cfg;
    int sft = kind == RL_RUN_SFT;
    int with_eval = cfg->eval_every > 0 && o->eval && o->eval->n > 0;
    rl_ctx c;
    if (rl_ctx_open(&c, cfg, o->config_lua, o->train, with_eval ? o->eval : NULL, o->db_path, o->resume, 1,
                    !sft || with_eval, sft ? cfg->sft_response_key : NULL, o->out, usage_error, e) != 0)
        return -1;
    fprintf(o->out, "%s %s: %zu parameters, %zu training prompts, run directory %s\n", sft ? "sft" : "train",
            cfg->name, c.m->n_params, o->train->n, c.run_dir);
    fprintf(o->out, "run database: %s\n", o->db_path);
    g_stop = 0;
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    progress p;
    progress_start(&p, o->out, (progress_mode)progress_mode_parse(cfg->log_progress), "step", cfg->steps);
    if (!p.bar) p.interval = 0; /* lines: one every log_every steps */
    p.start = p.done = c.step;  /* a resumed run's rate and ETA count only this process's steps */
    int rc = 0;
    const char *status = "finished";
    char last_line[256] = "";
    while (c.step < cfg->steps) {
        int last = c.step + 1 == cfg->steps;
        int do_eval = with_eval && ((c.step + 1) % cfg->eval_every == 0 || last);
        char line[256];
        if (sft) {
            double loss;
            rc = rl_sft_step(&c, o->train, o->eval, do_eval, &loss, e);
            snprintf(line, sizeof line, "loss %.4f", loss);
        } else {
            double reward, acc;
            rc = rl_grpo_step(&c, o->train, o->eval, do_eval, &reward, &acc, e);
            if (isnan(acc)) snprintf(line, sizeof line, "reward %.3f", reward);
            else snprintf(line, sizeof line, "reward %.3f  accuracy %.1f%%", reward, 100 * acc);
        }
        if (rc != 0) {
            status = "failed";
            break;
        }
        if (c.step % cfg->log_every == 0 && !last) progress_update(&p, c.step, line);
        if (last) snprintf(last_line, sizeof last_line, "%s", line);
        int save = (cfg->save_every > 0 && c.step % cfg->save_every == 0) || last || g_stop;
        if (save && (rc = rl_ctx_checkpoint(&c, e)) != 0) {
            status = "failed";
            break;
        }
        if (g_stop) {
            status = "interrupted";
            fprintf(o->out, "\nstopped after step %lld; continue with --resume\n", (long long)c.step);
            break;
        }
    }
    p.done = c.step;
    progress_finish(&p, last_line[0] ? last_line : NULL);
    if (rc == 0 && !g_stop && (rc = save_final(&c, e)) != 0) status = "failed";
    if (rc == 0 && !g_stop) fprintf(o->out, "final model: %s/model\n", c.run_dir);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    rl_ctx_close(&c, status);
    if (rc != 0) *usage_error = 0;
    return rc == 0 && g_stop ? (err_set(e, "interrupted"), -1) : rc;
}
