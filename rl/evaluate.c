/* evaluate.c - held-out accuracy: greedy completions of every evaluation prompt, scored by
 * the run's reward script. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "run_ctx.h"
#include "sampling.h"
#include "trainer.h"

/* The `accuracy` part when the script returns one, else the reward. */
static double accuracy_of(const rw_result *r) {
    double v;
    return rw_result_part(r, "accuracy", &v) ? v : r->reward;
}

/* One line of `rlvr eval --samples`: the row's id, prompt and answer, the completion, and
 * what the script made of it. */
static int write_sample(FILE *f, const ds_row *row, const char *completion, const sample_seq *s,
                        const rw_result *r, rlvr_err *e) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return err_set(e, "out of memory");
    cJSON_AddNumberToObject(o, "id", (double)row->id);
    cJSON_AddStringToObject(o, "prompt", row->prompt);
    if (row->answer) cJSON_AddStringToObject(o, "answer", row->answer);
    cJSON_AddStringToObject(o, "completion", completion);
    cJSON_AddNumberToObject(o, "completion_tokens", s->n_out);
    cJSON_AddStringToObject(o, "finish_reason", rollout_finish_name(s->finish));
    cJSON_AddNumberToObject(o, "reward", r->reward);
    cJSON *parts = cJSON_AddObjectToObject(o, "parts");
    for (size_t k = 0; parts && k < r->n_parts; k++) cJSON_AddNumberToObject(parts, r->parts[k].name, r->parts[k].value);
    cJSON_AddStringToObject(o, "status", rw_status_name(r->status));
    if (r->error) cJSON_AddStringToObject(o, "error", r->error);
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!line) return err_set(e, "out of memory");
    int bad = fprintf(f, "%s\n", line) < 0;
    free(line);
    return bad ? err_errno(e, "writing the evaluation samples") : 0;
}

int rl_ctx_evaluate(rl_ctx *c, const dataset *d, const rl_prompt *prompts, FILE *samples, double *accuracy,
                    double *reward_mean, rlvr_err *e) {
    size_t n = d->n;
    int max_new = (int)c->cfg->rollout_max_new_tokens;
    if (n == 0) return err_set(e, "no evaluation prompts");
    if (rl_ctx_sync_host(c, e) != 0) return -1; /* generation runs on the host model */
    sample_seq *seqs = calloc(n, sizeof *seqs);
    int *outs = malloc(n * (size_t)max_new * sizeof *outs);
    cJSON **inputs = calloc(n, sizeof *inputs);
    rw_result *res = calloc(n, sizeof *res);
    char **texts = calloc(n, sizeof *texts);
    int rc = -1;
    if (!seqs || !outs || !inputs || !res || !texts) {
        err_set(e, "out of memory for %zu evaluation samples", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        seqs[i] = (sample_seq){.prompt = prompts[i].ids, .n_prompt = prompts[i].n, .seq_id = i,
                               .out = outs + i * (size_t)max_new};
    sample_gen_opts o = {.params = {.temperature = 0, .top_k = 0, .top_p = 1, .min_p = 0},
                         .seed = c->cfg->seed, .max_new = max_new, .stop_ids = c->stop_ids, .n_stop = c->n_stop,
                         .batch = (int)c->cfg->micro_batch_size * 4};
    if (sample_generate(c->m, seqs, (int)n, &o, e) != 0) goto done;
    for (size_t i = 0; i < n; i++) {
        texts[i] = tok_decode(c->tok, (const int32_t *)seqs[i].out, (size_t)seqs[i].n_out, 1, NULL, e);
        if (!texts[i]) goto done;
        inputs[i] = rl_reward_input(&d->rows[i], texts[i], seqs[i].n_out, rollout_finish_name(seqs[i].finish));
        if (!inputs[i]) {
            err_set(e, "out of memory");
            goto done;
        }
    }
    if (rw_score_batch(c->scorer, (const cJSON *const *)inputs, n, res, e) != 0) goto done;
    double acc = 0, rew = 0;
    for (size_t i = 0; i < n; i++) {
        acc += accuracy_of(&res[i]);
        rew += res[i].reward;
        if (samples && write_sample(samples, &d->rows[i], texts[i], &seqs[i], &res[i], e) != 0) goto done;
    }
    *accuracy = acc / (double)n;
    *reward_mean = rew / (double)n;
    rc = 0;
done:
    for (size_t i = 0; inputs && i < n; i++) cJSON_Delete(inputs[i]);
    for (size_t i = 0; res && i < n; i++) rw_result_clear(&res[i]);
    for (size_t i = 0; texts && i < n; i++) free(texts[i]);
    free(texts);
    free(inputs);
    free(res);
    free(seqs);
    free(outs);
    return rc;
}

int rl_evaluate(const rlvr_config *cfg, const dataset *eval, FILE *out, FILE *samples, double *accuracy,
                double *reward_mean, int *usage_error, rlvr_err *e) {
    *usage_error = 1;
    if (!*cfg->model_path)
        return err_set(e, "model.path is empty: rlvr eval evaluates a trained model (e.g. --set "
                          "model.path=runs/NAME/model)");
    rl_ctx c;
    if (rl_ctx_open(&c, cfg, NULL, NULL, eval, NULL, 0, 0, 1, NULL, out, usage_error, e) != 0) return -1;
    int rc = rl_ctx_evaluate(&c, eval, c.eval_prompts, samples, accuracy, reward_mean, e);
    rl_ctx_close(&c, NULL);
    return rc;
}
