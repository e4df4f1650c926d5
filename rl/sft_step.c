/* sft_step.c - one supervised step: the prompt as the model sees it (chat template), the
 * response and an end-of-sequence token; loss = mean negative log-likelihood over the
 * response tokens only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "run_ctx.h"
#include "seq_batch.h"
#include "util.h"

int rl_sft_step(rl_ctx *c, const dataset *train, const dataset *eval, int do_eval, double *loss, rlvr_err *e) {
    const rlvr_config *cfg = c->cfg;
    double t_start = util_now();
    int B = (int)cfg->sft_batch_size, micro = (int)cfg->micro_batch_size;
    size_t *rows = malloc((size_t)B * sizeof *rows);
    rl_seq *seqs = calloc((size_t)B, sizeof *seqs);
    int **ids = calloc((size_t)B, sizeof *ids);
    int rc = -1, T = 0, max_len = 0;
    float *logp = NULL, *dlogp = NULL;
    rl_seq_batch sb = {0};
    if (!rows || !seqs || !ids) {
        err_set(e, "out of memory");
        goto done;
    }
    ds_sampler_next(&c->sampler, (size_t)B, rows);
    long long tokens = 0;
    for (int i = 0; i < B; i++) {
        const ds_row *row = &train->rows[rows[i]];
        const rl_prompt *p = &c->train_prompts[rows[i]];
        const char *resp = cJSON_GetObjectItemCaseSensitive(row->fields, cfg->sft_response_key)->valuestring;
        tok_ids r = {0};
        if (tok_encode(c->tok, resp, strlen(resp), 0, &r, e) != 0) {
            tok_ids_free(&r);
            goto done;
        }
        int n = (int)r.n + 1; /* the response, then end-of-sequence: the model learns to stop */
        if (p->n + n > c->m->cfg.max_positions) {
            tok_ids_free(&r);
            char where[600];
            rl_row_where(train, row, where, sizeof where);
            err_set(e, "%s: prompt and response are %d tokens, more than the model's context of %d", where, p->n + n,
                    c->m->cfg.max_positions);
            goto done;
        }
        if (!(ids[i] = malloc((size_t)(p->n + n) * sizeof **ids))) {
            tok_ids_free(&r);
            err_set(e, "out of memory");
            goto done;
        }
        memcpy(ids[i], p->ids, (size_t)p->n * sizeof **ids);
        for (size_t k = 0; k < r.n; k++) ids[i][p->n + (int)k] = r.ids[k];
        ids[i][p->n + n - 1] = c->stop_ids[0];
        tok_ids_free(&r);
        seqs[i] = (rl_seq){.ids = ids[i], .n_prompt = p->n, .n_completion = n};
        if (n > T) T = n;
        if (p->n + n - 1 > max_len) max_len = p->n + n - 1;
        tokens += n;
    }
    logp = calloc((size_t)B * T, sizeof *logp);
    dlogp = calloc((size_t)B * T, sizeof *dlogp);
    if (!logp || !dlogp) {
        err_set(e, "out of memory");
        goto done;
    }
    if (rl_seq_batch_init(&sb, c->m, c->gpu, micro < B ? micro : B, max_len, e) != 0) goto done;
    /* token_mean: every response token weighs 1 / tokens in the batch. */
    for (int i = 0; i < B; i++)
        for (int t = 0; t < seqs[i].n_completion; t++) dlogp[(size_t)i * T + t] = (float)(-1.0 / (double)tokens);
    if (rl_ctx_zero_grads(c, e) != 0) goto done;
    double nll = 0;
    for (int i = 0; i < B; i += micro) {
        int n = B - i < micro ? B - i : micro;
        if (rl_seq_forward(&sb, seqs + i, n, T, logp + (size_t)i * T, NULL, e) != 0 ||
            rl_seq_backward(&sb, seqs + i, n, T, dlogp + (size_t)i * T, NULL, e) != 0)
            goto done;
        for (int k = i; k < i + n; k++)
            for (int t = 0; t < seqs[k].n_completion; t++) nll -= logp[(size_t)k * T + t];
    }
    double gn = 0;
    if (rl_ctx_clip_grads(c, &gn, e) != 0) goto done;
    if (!isfinite(gn)) {
        err_set(e, "step %lld: the gradient norm is %g (the loss diverged); lower learning_rate",
                (long long)c->step + 1, gn);
        goto done;
    }
    double lr = rl_lr_at(&c->sched, c->step);
    if (rl_ctx_optimizer_step(c, lr, e) != 0) goto done;
    c->step++;
    double train_s = util_now() - t_start;
    store_metric extra[2];
    int n_extra = 0;
    double acc = NAN, rew = NAN;
    if (do_eval) {
        if (rl_ctx_evaluate(c, eval, c->eval_prompts, NULL, &acc, &rew, e) != 0) goto done;
        extra[n_extra++] = (store_metric){"eval/accuracy", acc};
        extra[n_extra++] = (store_metric){"eval/reward_mean", rew};
        fprintf(c->out, "eval after step %lld: accuracy %.1f%%, reward %.3f (%zu problems)\n", (long long)c->step,
                100 * acc, rew, eval->n);
    }
    store_step st;
    store_step_init(&st);
    st.step = c->step;
    st.started_at = util_unix_time() - (util_now() - t_start);
    st.wall_s = util_now() - t_start;
    st.loss = nll / (double)tokens;
    st.grad_norm = gn;
    st.lr = lr;
    st.train_s = train_s;
    st.train_tokens_per_s = train_s > 0 ? (double)tokens / train_s : NAN;
    st.extra = extra;
    st.n_extra = n_extra;
    if (store_write_step(c->st, c->run_id, &st, NULL, 0, e) != 0) goto done;
    *loss = st.loss;
    rc = 0;
done:
    rl_seq_batch_free(&sb);
    for (int i = 0; ids && i < B; i++) free(ids[i]);
    free(ids);
    free(rows);
    free(seqs);
    free(logp);
    free(dlogp);
    return rc;
}
