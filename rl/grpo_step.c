/* grpo_step.c - one RL step: sample G completions per prompt, score them, compute
 * advantages, update the policy with the clipped objective, log everything.
 *
 * Layout: the step's kept samples form a batch [B, T] with T = rollout.max_new_tokens
 * (a constant, which seq_mean_token_sum_norm divides by, as Dr. GRPO prescribes). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "advantages.h"
#include "engine.h"
#include "policy_loss.h"
#include "run_ctx.h"
#include "sampling.h"
#include "seq_batch.h"
#include "util.h"
#include "value_loss.h"

typedef struct gsample {
    size_t row;          /* dataset row */
    int group, index;    /* group (prompt) within the step, sample within the group */
    int *ids;            /* prompt then completion tokens */
    int n_prompt, n_out;
    float *sample_logp;  /* [n_out] under the sampling distribution */
    rollout_finish finish;
    char *text;          /* decoded completion (special tokens skipped) */
    rw_result rw;
    int kept;            /* in the training batch */
    double advantage;    /* the first token's advantage (NaN when not trained on) */
} gsample;

typedef struct grpo_batch {
    gsample *s;
    size_t n, cap;
    int groups_seen, groups_zero_std, groups_kept;
    double gen_s, score_s;
    long long gen_tokens;
    sched_stats engine; /* the rollout engine's totals over the step's rounds */
} grpo_batch;

static void batch_free(grpo_batch *b) {
    for (size_t i = 0; i < b->n; i++) {
        free(b->s[i].ids);
        free(b->s[i].sample_logp);
        free(b->s[i].text);
        rw_result_clear(&b->s[i].rw);
    }
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* One generation round: P prompts x G samples, decoded and scored; groups whose rewards
 * all agree are dropped when dynamic sampling is on. */
static int sample_round(rl_ctx *c, const dataset *train, grpo_batch *b, int round, rlvr_err *e) {
    const rlvr_config *cfg = c->cfg;
    int P = (int)cfg->rollout_prompts_per_step, G = (int)cfg->rollout_group_size, max_new = (int)cfg->rollout_max_new_tokens;
    size_t n = (size_t)P * G, base = b->n;
    size_t *rows = malloc((size_t)P * sizeof *rows);
    sample_seq *seqs = calloc(n, sizeof *seqs);
    int *outs = malloc(n * (size_t)max_new * sizeof *outs);
    float *lps = malloc(n * (size_t)max_new * sizeof *lps);
    cJSON **inputs = calloc(n, sizeof *inputs);
    rw_result *res = calloc(n, sizeof *res);
    int rc = -1;
    if (!rows || !seqs || !outs || !lps || !inputs || !res) {
        err_set(e, "out of memory for %zu samples", n);
        goto done;
    }
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : n;
        while (cap < b->n + n) cap *= 2;
        gsample *s = realloc(b->s, cap * sizeof *s);
        if (!s) {
            err_set(e, "out of memory");
            goto done;
        }
        b->s = s;
        b->cap = cap;
    }
    ds_sampler_next(&c->sampler, (size_t)P, rows);
    for (int g = 0; g < P; g++)
        for (int j = 0; j < G; j++) {
            size_t k = (size_t)g * G + j;
            const rl_prompt *p = &c->train_prompts[rows[g]];
            seqs[k] = (sample_seq){.prompt = p->ids, .n_prompt = p->n, .seq_id = k,
                                   .out = outs + k * (size_t)max_new, .out_logp = lps + k * (size_t)max_new};
        }
    sample_gen_opts o = {.params = {(float)cfg->rollout_temperature, (int)cfg->rollout_top_k,
                                    (float)cfg->rollout_top_p, (float)cfg->rollout_min_p},
                         .seed = rl_step_seed(cfg->seed, c->step, (uint64_t)round), .max_new = max_new,
                         .stop_ids = c->stop_ids, .n_stop = c->n_stop};
    /* the CPU decodes a few micro-batches at a time; the GPU all of the round together (its KV
     * pool sized for them, refused up front when free memory cannot hold it) */
    o.batch = rl_rollout_on_gpu(c) ? 0 : (int)cfg->micro_batch_size * 4;
    double t0 = util_now();
    /* the rollout engine: each prompt prefilled once for its G samples, continuous batching */
    sched_stats es;
    engine_opts eo = {.gpu = rl_rollout_on_gpu(c) ? c->gpu : NULL};
    if (engine_generate(c->m, seqs, (int)n, &o, &eo, &es, e) != 0) goto done;
    b->gen_s += util_now() - t0;
    b->engine.steps += es.steps, b->engine.tokens += es.tokens, b->engine.copies += es.copies;
    b->engine.preempted += es.preempted, b->engine.prompt_reforks += es.prompt_reforks;
    for (size_t k = 0; k < n; k++) {
        const sample_seq *q = &seqs[k];
        gsample *s = &b->s[b->n++];
        memset(s, 0, sizeof *s);
        s->row = rows[k / (size_t)G];
        s->group = b->groups_seen + (int)(k / (size_t)G);
        s->index = (int)(k % (size_t)G);
        s->n_prompt = q->n_prompt;
        s->n_out = q->n_out;
        s->finish = q->finish;
        s->advantage = NAN;
        s->ids = malloc((size_t)(q->n_prompt + q->n_out) * sizeof *s->ids);
        s->sample_logp = malloc((size_t)(q->n_out ? q->n_out : 1) * sizeof *s->sample_logp);
        if (!s->ids || !s->sample_logp) {
            err_set(e, "out of memory");
            goto done;
        }
        memcpy(s->ids, q->prompt, (size_t)q->n_prompt * sizeof *s->ids);
        memcpy(s->ids + q->n_prompt, q->out, (size_t)q->n_out * sizeof *s->ids);
        memcpy(s->sample_logp, q->out_logp, (size_t)q->n_out * sizeof *s->sample_logp);
        b->gen_tokens += q->n_out;
        if (!(s->text = tok_decode(c->tok, (const int32_t *)q->out, (size_t)q->n_out, 1, NULL, e))) goto done;
        if (!(inputs[k] = rl_reward_input(&train->rows[s->row], s->text, s->n_out, rollout_finish_name(s->finish)))) {
            err_set(e, "out of memory");
            goto done;
        }
    }
    t0 = util_now();
    if (rw_score_batch(c->scorer, (const cJSON *const *)inputs, n, res, e) != 0) goto done;
    b->score_s += util_now() - t0;
    for (size_t k = 0; k < n; k++) {
        b->s[base + k].rw = res[k];
        memset(&res[k], 0, sizeof res[k]);
    }
    for (int g = 0; g < P; g++) {
        gsample *grp = &b->s[base + (size_t)g * G];
        int same = 1;
        for (int j = 1; j < G; j++) same &= grp[j].rw.reward == grp[0].rw.reward;
        b->groups_zero_std += same && G > 1;
        int keep = !(cfg->algo_dynamic_sampling && same) && b->groups_kept < P;
        for (int j = 0; j < G; j++) grp[j].kept = keep;
        b->groups_kept += keep;
    }
    b->groups_seen += P;
    rc = 0;
done:
    for (size_t k = 0; inputs && k < n; k++) cJSON_Delete(inputs[k]);
    for (size_t k = 0; res && k < n; k++) rw_result_clear(&res[k]);
    free(inputs);
    free(res);
    free(rows);
    free(seqs);
    free(outs);
    free(lps);
    return rc;
}

/* Training arrays of the kept samples. */
typedef struct train_arrays {
    int B, T;
    gsample **s;      /* [B] */
    rl_seq *seqs;     /* [B] */
    uint8_t *mask;    /* [B, T] tokens the loss sees (truncated samples left out with mask_truncated) */
    uint8_t *tokens;  /* [B, T] every completion token: what advantages are computed over */
    int64_t *group;   /* [B] */
    float *scores;    /* [B] */
    float *adv, *old_logp, *ref_logp, *logp, *ent, *dlogp, *dent, *w, *kl; /* [B, T] */
} train_arrays;

static void arrays_free(train_arrays *a) {
    free(a->s);
    free(a->seqs);
    free(a->mask);
    free(a->tokens);
    free(a->group);
    free(a->scores);
    free(a->adv);
    free(a->old_logp);
    free(a->ref_logp);
    free(a->logp);
    free(a->ent);
    free(a->dlogp);
    free(a->dent);
    free(a->w);
    free(a->kl);
}

static int arrays_init(train_arrays *a, rl_ctx *c, grpo_batch *b, rlvr_err *e) {
    memset(a, 0, sizeof *a);
    for (size_t i = 0; i < b->n; i++) a->B += b->s[i].kept;
    a->T = (int)c->cfg->rollout_max_new_tokens;
    size_t B = (size_t)(a->B ? a->B : 1), BT = B * (size_t)a->T;
    a->s = calloc(B, sizeof *a->s);
    a->seqs = calloc(B, sizeof *a->seqs);
    a->mask = calloc(BT, 1);
    a->tokens = calloc(BT, 1);
    a->group = calloc(B, sizeof *a->group);
    a->scores = calloc(B, sizeof *a->scores);
    float **fs[] = {&a->adv, &a->old_logp, &a->ref_logp, &a->logp, &a->ent, &a->dlogp, &a->dent, &a->w, &a->kl};
    int ok = a->s && a->seqs && a->mask && a->tokens && a->group && a->scores;
    for (size_t i = 0; i < sizeof fs / sizeof *fs; i++) ok &= (*fs[i] = calloc(BT, sizeof(float))) != NULL;
    if (!ok) return err_set(e, "out of memory for a batch of %d samples", a->B);
    int k = 0;
    for (size_t i = 0; i < b->n; i++) {
        gsample *s = &b->s[i];
        if (!s->kept) continue;
        a->s[k] = s;
        a->seqs[k] = (rl_seq){.ids = s->ids, .n_prompt = s->n_prompt, .n_completion = s->n_out};
        a->group[k] = s->group;
        a->scores[k] = (float)s->rw.reward;
        int masked = c->cfg->algo_mask_truncated && s->finish == ROLLOUT_LENGTH;
        for (int t = 0; t < s->n_out; t++) {
            a->tokens[(size_t)k * a->T + t] = 1;
            a->mask[(size_t)k * a->T + t] = !masked;
        }
        k++;
    }
    return 0;
}

/* Forward-only log-probs of `mdl` (on `gpu` when not NULL) for every kept sample, in
 * micro-batches. */
static int logprobs_of(rl_ctx *c, model *mdl, gpu_model *gpu, train_arrays *a, float *out, rlvr_err *e) {
    int micro = (int)c->cfg->micro_batch_size;
    rl_seq_batch sb;
    if (rl_seq_batch_init(&sb, mdl, gpu, micro < a->B ? micro : a->B, c->max_prompt + a->T, e) != 0) return -1;
    int rc = 0;
    for (int i = 0; i < a->B && rc == 0; i += micro) {
        int n = a->B - i < micro ? a->B - i : micro;
        rc = rl_seq_forward(&sb, a->seqs + i, n, a->T, out + (size_t)i * a->T, NULL, e);
    }
    rl_seq_batch_free(&sb);
    return rc;
}

typedef struct update_stats {
    double loss, kl, entropy, clip_frac, grad_norm, ppo_kl;
    int updates;
    int first_pass_all; /* the first minibatch pass ran every sample (none skipped) */
} update_stats;

/* ppo_epochs passes of minibatch updates over the batch. */
static int update_policy(rl_ctx *c, train_arrays *a, int have_old, update_stats *us, rlvr_err *e) {
    const rlvr_config *cfg = c->cfg;
    int T = a->T, micro = (int)cfg->micro_batch_size;
    int mb = cfg->algo_minibatch_size > 0 ? (int)cfg->algo_minibatch_size : a->B;
    rl_pg_params pg = {.clip_low = cfg->algo_clip_low, .clip_high = cfg->algo_clip_high, .clip_c = cfg->algo_clip_c,
                       .agg = (rl_agg)rl_agg_parse(cfg->algo_loss_agg)};
    rl_kl_kind klk = (rl_kl_kind)rl_kl_parse(cfg->algo_kl_estimator);
    int kl_in_loss = c->ref && !cfg->algo_kl_in_reward;
    double ent_sum = 0, ent_n = 0, kl_sum = 0, kl_n = 0;
    rl_pg_sums acc_all = {0};
    rl_seq_batch sb;
    if (rl_seq_batch_init(&sb, c->m, c->gpu, micro < mb ? micro : mb, c->max_prompt + T, e) != 0) return -1;
    int rc = 0;
    double lr = rl_lr_at(&c->sched, c->step);
    us->first_pass_all = 1;
    for (long long ep = 0; ep < cfg->algo_ppo_epochs && rc == 0; ep++)
        for (int m0 = 0; m0 < a->B && rc == 0; m0 += mb) {
            int nb = a->B - m0 < mb ? a->B - m0 : mb;
            size_t off = (size_t)m0 * T, nt = (size_t)nb * T;
            int any = 0;
            for (size_t i = 0; i < nt; i++) any |= a->mask[off + i];
            if (!any) { /* every sample masked (all truncated): nothing to learn */
                if (ep == 0) us->first_pass_all = 0;
                continue;
            }
            if ((rc = rl_agg_weights(pg.agg, a->mask + off, nb, T, a->w + off, e)) != 0) break;
            if ((rc = rl_ctx_zero_grads(c, e)) != 0) break;
            rl_pg_sums acc = {0};
            for (int i = m0; i < m0 + nb && rc == 0; i += micro) {
                int n = m0 + nb - i < micro ? m0 + nb - i : micro;
                size_t o = (size_t)i * T, cnt = (size_t)n * T;
                if ((rc = rl_seq_forward(&sb, a->seqs + i, n, T, a->logp + o, a->ent + o, e)) != 0) break;
                const float *old = have_old ? a->old_logp + o : a->logp + o;
                rl_policy_loss_weighted(a->logp + o, old, a->adv + o, a->w + o, a->mask + o, cnt, &pg, a->dlogp + o,
                                        &acc);
                if (kl_in_loss) {
                    rl_kl_per_token(klk, a->logp + o, a->ref_logp + o, a->mask + o, n, T, a->kl + o, a->dent + o);
                    for (size_t t = 0; t < cnt; t++) {
                        if (!a->mask[o + t]) continue;
                        acc.loss += cfg->algo_kl_coef * a->w[o + t] * a->kl[o + t];
                        a->dlogp[o + t] += (float)(cfg->algo_kl_coef * a->w[o + t] * a->dent[o + t]);
                        kl_sum += a->kl[o + t];
                        kl_n += 1;
                    }
                }
                for (size_t t = 0; t < cnt; t++) {
                    a->dent[o + t] = a->mask[o + t] ? (float)(-cfg->algo_entropy_coef * a->w[o + t]) : 0.0f;
                    if (!a->mask[o + t]) continue;
                    acc.loss -= cfg->algo_entropy_coef * a->w[o + t] * a->ent[o + t];
                    ent_sum += a->ent[o + t];
                    ent_n += 1;
                }
                rc = rl_seq_backward(&sb, a->seqs + i, n, T, a->dlogp + o,
                                     cfg->algo_entropy_coef != 0 ? a->dent + o : NULL, e);
            }
            if (rc != 0) break;
            double gn = 0;
            if ((rc = rl_ctx_clip_grads(c, &gn, e)) != 0) break;
            if (!isfinite(gn)) {
                rc = err_set(e, "step %lld: the gradient norm is %g (the loss diverged); lower learning_rate",
                             (long long)c->step + 1, gn);
                break;
            }
            if ((rc = rl_ctx_optimizer_step(c, lr, e)) != 0) break;
            us->loss += acc.loss;
            us->grad_norm += gn;
            us->updates++;
            acc_all.clipped += acc.clipped;
            acc_all.ppo_kl += acc.ppo_kl;
            acc_all.count += acc.count;
        }
    rl_seq_batch_free(&sb);
    if (us->updates) {
        us->loss /= us->updates;
        us->grad_norm /= us->updates;
    }
    rl_pg_stats pst;
    rl_pg_stats_from_sums(&acc_all, &pst);
    us->clip_frac = acc_all.count ? pst.clip_frac : NAN;
    us->ppo_kl = acc_all.count ? pst.ppo_kl : NAN;
    us->entropy = ent_n ? ent_sum / ent_n : NAN;
    us->kl = kl_n ? kl_sum / kl_n : NAN;
    return rc;
}

/* Advantages of the kept samples (KL in the reward first when configured). GAE reads the
 * critic's values [B, T] and writes the returns [B, T] the critic learns. */
static int compute_advantages(rl_ctx *c, train_arrays *a, const float *values, float *gae_returns, rlvr_err *e) {
    const rlvr_config *cfg = c->cfg;
    /* A truncated sample still counts in its group's statistics; only the loss skips it. */
    rl_batch_shape sh = {.B = a->B, .T = a->T, .mask = a->tokens, .group = a->group};
    int kind = rl_adv_kind_parse(cfg->algo_advantage);
    float *rewards = malloc((size_t)a->B * a->T * sizeof *rewards), *returns = malloc((size_t)a->B * a->T * sizeof *returns);
    int rc = -1;
    if (!rewards || !returns) {
        err_set(e, "out of memory");
        goto done;
    }
    if (c->ref && cfg->algo_kl_in_reward) {
        rl_kl_per_token((rl_kl_kind)rl_kl_parse(cfg->algo_kl_estimator), a->old_logp, a->ref_logp, a->tokens, a->B,
                        a->T, a->kl, NULL);
        rl_token_rewards(&sh, a->scores, a->kl, (float)cfg->algo_kl_coef, rewards);
        /* Outcome estimators see each sample's summed token rewards (verl's GRPO does too). */
        for (int b = 0; b < a->B; b++) {
            double sum = 0;
            for (int t = 0; t < a->T; t++) sum += rewards[(size_t)b * a->T + t];
            if (kind != RL_ADV_REINFORCE_PP && kind != RL_ADV_GAE) a->scores[b] = (float)sum;
        }
    } else rl_token_rewards(&sh, a->scores, NULL, 0.0f, rewards);
    if (kind == RL_ADV_REINFORCE_PP)
        rc = rl_reinforce_pp_advantages(&sh, rewards, (float)cfg->algo_gamma, a->adv, returns, e);
    else if (kind == RL_ADV_GAE)
        rc = rl_gae_advantages(&sh, rewards, values, (float)cfg->algo_gamma, (float)cfg->algo_lam, a->adv, gae_returns,
                               e);
    else rc = rl_outcome_advantages((rl_adv_kind)kind, &sh, a->scores, (float)cfg->algo_adv_eps, a->adv, e);
done:
    free(rewards);
    free(returns);
    return rc;
}

static double mean_of(const double *v, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += v[i];
    return n ? s / (double)n : NAN;
}

static double std_of(const double *v, size_t n) {
    if (n < 2) return n ? 0.0 : NAN;
    double m = mean_of(v, n), s = 0;
    for (size_t i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
    return sqrt(s / (double)(n - 1));
}

/* Per-part means and the accuracy (the `accuracy` part), as extra metrics. */
typedef struct metric_list {
    store_metric m[96];
    char names[96][80];
    int n;
} metric_list;

static void metric_add(metric_list *l, const char *name, double v) {
    if (l->n >= 96) return;
    snprintf(l->names[l->n], sizeof l->names[l->n], "%s", name);
    l->m[l->n] = (store_metric){l->names[l->n], v};
    l->n++;
}

static int write_step(rl_ctx *c, const dataset *train, grpo_batch *b, train_arrays *a, const update_stats *us,
                      double t_start, double train_s, metric_list *ml, double *reward_mean, double *accuracy,
                      rlvr_err *e) {
    const rlvr_config *cfg = c->cfg;
    store_step st;
    store_step_init(&st);
    size_t n = b->n;
    double *r = malloc((n ? n : 1) * sizeof *r), *tmp = malloc((n ? n : 1) * sizeof *tmp);
    store_sample *ss = calloc(n ? n : 1, sizeof *ss);
    size_t n_rw = 0;
    for (size_t i = 0; i < n; i++) n_rw += b->s[i].rw.n_parts ? b->s[i].rw.n_parts : 1;
    store_reward *rws = calloc(n_rw ? n_rw : 1, sizeof *rws);
    int rc = -1;
    if (!r || !tmp || !ss || !rws) {
        err_set(e, "out of memory");
        goto done;
    }
    double len_sum = 0, len_max = 0, trunc = 0;
    for (size_t i = 0; i < n; i++) {
        r[i] = b->s[i].rw.reward;
        len_sum += b->s[i].n_out;
        if (b->s[i].n_out > len_max) len_max = b->s[i].n_out;
        trunc += b->s[i].finish == ROLLOUT_LENGTH;
    }
    st.step = c->step; /* 1-based: the number of updates after this step */
    st.started_at = util_unix_time() - (util_now() - t_start);
    st.reward_mean = mean_of(r, n);
    st.reward_std = std_of(r, n);
    /* Part statistics, over the parts the first sample returned (scripts return the same set). */
    int has_acc = 0;
    for (size_t k = 0; n && k < b->s[0].rw.n_parts; k++) {
        const char *pname = b->s[0].rw.parts[k].name;
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (rw_result_part(&b->s[i].rw, pname, &tmp[m])) m++;
        char name[96];
        snprintf(name, sizeof name, "reward/%s_mean", pname);
        metric_add(ml, name, mean_of(tmp, m));
        snprintf(name, sizeof name, "reward/%s_std", pname);
        metric_add(ml, name, std_of(tmp, m));
        if (strcmp(pname, "accuracy") == 0) st.accuracy = mean_of(tmp, m), has_acc = 1;
    }
    if (!has_acc) st.accuracy = NAN;
    size_t errors = 0, timeouts = 0;
    for (size_t i = 0; i < n; i++) errors += b->s[i].rw.status == RW_ERROR, timeouts += b->s[i].rw.status == RW_TIMEOUT;
    metric_add(ml, "reward/errors", (double)errors);
    metric_add(ml, "reward/timeouts", (double)timeouts);
    metric_add(ml, "batch/groups_generated", b->groups_seen);
    metric_add(ml, "batch/groups_trained", b->groups_kept);
    /* the rollout engine's work: model calls, tokens fed (prompts once per group, then one a
     * sample a step), KV block copies (copy on write), preemptions and prompt re-forks */
    metric_add(ml, "rollout/engine_forward_calls", (double)b->engine.steps);
    metric_add(ml, "rollout/engine_tokens_fed", (double)b->engine.tokens);
    metric_add(ml, "rollout/engine_block_copies", (double)b->engine.copies);
    metric_add(ml, "rollout/engine_preempted", (double)b->engine.preempted);
    metric_add(ml, "rollout/engine_prompt_reforks", (double)b->engine.prompt_reforks);
    if (!isnan(us->ppo_kl)) metric_add(ml, "actor/ppo_kl", us->ppo_kl);
    double adv_sum = 0, adv_sq = 0, adv_n = 0;
    for (size_t i = 0; i < (size_t)a->B * a->T; i++)
        if (a->mask[i]) adv_sum += a->adv[i], adv_sq += (double)a->adv[i] * a->adv[i], adv_n += 1;
    if (adv_n > 0) {
        st.adv_mean = adv_sum / adv_n;
        st.adv_std = adv_n > 1 ? sqrt(fmax(0.0, (adv_sq - adv_sum * adv_sum / adv_n) / (adv_n - 1))) : 0.0;
    }
    if (us->updates) st.loss = us->loss, st.grad_norm = us->grad_norm;
    st.kl = us->kl;
    st.entropy = us->entropy;
    st.clip_frac = us->clip_frac;
    st.lr = rl_lr_at(&c->sched, c->step - 1);
    st.response_len_mean = n ? len_sum / (double)n : NAN;
    st.response_len_max = len_max;
    st.frac_truncated = n ? trunc / (double)n : NAN;
    st.frac_zero_std_groups = b->groups_seen ? (double)b->groups_zero_std / b->groups_seen : NAN;
    st.tokens_generated = b->gen_tokens;
    st.gen_s = b->gen_s;
    st.score_s = b->score_s;
    st.train_s = train_s;
    st.gen_tokens_per_s = b->gen_s > 0 ? (double)b->gen_tokens / b->gen_s : NAN;
    double train_tokens = 0;
    for (int i = 0; i < a->B; i++) train_tokens += a->seqs[i].n_prompt + a->seqs[i].n_completion;
    st.train_tokens_per_s = train_s > 0 ? train_tokens * (double)cfg->algo_ppo_epochs / train_s : NAN;
    st.wall_s = util_now() - t_start;
    size_t q = 0;
    for (size_t i = 0; i < n; i++) {
        gsample *s = &b->s[i];
        const ds_row *row = &train->rows[s->row];
        store_reward *first = &rws[q];
        const char *status = rw_status_name(s->rw.status);
        if (s->rw.n_parts == 0) {
            rws[q++] = (store_reward){.name = "reward", .value = s->rw.reward, .status = status, .detail = s->rw.error};
        } else {
            for (size_t k = 0; k < s->rw.n_parts; k++)
                rws[q++] = (store_reward){.name = s->rw.parts[k].name, .value = s->rw.parts[k].value,
                                          .status = status, .detail = s->rw.error};
        }
        ss[i] = (store_sample){.prompt_id = row->id, .group_index = s->group, .sample_index = s->index,
                               .prompt = row->prompt, .completion = s->text, .n_prompt_tokens = s->n_prompt,
                               .n_completion_tokens = s->n_out, .finish_reason = rollout_finish_name(s->finish),
                               .reward = s->rw.reward, .advantage = s->advantage, .policy_version = c->step - 1,
                               .completion_ids = (const int32_t *)(s->ids + s->n_prompt),
                               .logprobs = s->sample_logp, .rewards = first,
                               .n_rewards = (int)(&rws[q] - first)};
    }
    st.extra = ml->m;
    st.n_extra = ml->n;
    rc = store_write_step(c->st, c->run_id, &st, ss, (int)n, e);
    *reward_mean = st.reward_mean;
    *accuracy = st.accuracy;
done:
    free(r);
    free(tmp);
    free(ss);
    free(rws);
    return rc;
}

/* The critic's update on the step's returns, and its metrics (verl's critic/ names where
 * verl has them): the values before the update against the returns. */
static int update_critic(rl_ctx *c, train_arrays *a, const float *values, const float *returns, metric_list *ml,
                         rlvr_err *e) {
    rl_critic_stats cs;
    if (rl_critic_update(c->critic, a->seqs, a->B, a->T, a->mask, values, returns, c->step, &cs, e) != 0)
        return err_prefix(e, "step %lld", (long long)c->step + 1);
    double vs = 0, rs = 0, n = 0;
    for (size_t i = 0; i < (size_t)a->B * a->T; i++)
        if (a->tokens[i]) vs += values[i], rs += returns[i], n += 1;
    if (cs.updates) {
        metric_add(ml, "critic/vf_loss", cs.vf_loss);
        metric_add(ml, "critic/vf_clipfrac", cs.vf_clipfrac);
        metric_add(ml, "critic/grad_norm", cs.grad_norm);
    }
    metric_add(ml, "critic/values_mean", n ? vs / n : NAN);
    metric_add(ml, "critic/returns_mean", n ? rs / n : NAN);
    metric_add(ml, "critic/explained_variance", rl_explained_variance(values, returns, a->tokens, (size_t)a->B * a->T));
    metric_add(ml, "critic/lr", rl_lr_at(&c->critic->o.sched, c->step));
    return 0;
}

/* How far the trainer's log-probabilities of the sampled tokens, under the weights that
 * generated them, are from the rollout's sampling log-probabilities (verl logs the same as
 * training/rollout_probs_diff_*): 0 when the two paths compute alike. Only meaningful when
 * the rollout sampled from the plain softmax (temperature 1, no top-k/top-p/min-p), so
 * logged only then. train_lp: [B, T], under the rollout's weights. */
static void logp_mismatch(const rl_ctx *c, const train_arrays *a, const float *train_lp, metric_list *ml) {
    const rlvr_config *cfg = c->cfg;
    if (cfg->rollout_temperature != 1.0 || (cfg->rollout_top_k > 0 && cfg->rollout_top_k < c->m->cfg.vocab) ||
        cfg->rollout_top_p < 1.0 || cfg->rollout_min_p > 0.0)
        return;
    double max = 0, sum = 0;
    size_t n = 0;
    for (int i = 0; i < a->B; i++)
        for (int t = 0; t < a->s[i]->n_out; t++) {
            const double d = fabs((double)train_lp[(size_t)i * a->T + t] - a->s[i]->sample_logp[t]);
            max = d > max ? d : max;
            sum += d, n++;
        }
    if (!n) return;
    metric_add(ml, "rollout/logp_diff_max", max);
    metric_add(ml, "rollout/logp_diff_mean", sum / (double)n);
}

int rl_grpo_step(rl_ctx *c, const dataset *train, const dataset *eval, int do_eval, double *reward_mean,
                 double *accuracy, rlvr_err *e) {
    const rlvr_config *cfg = c->cfg;
    double t_start = util_now();
    grpo_batch b = {0};
    train_arrays a;
    memset(&a, 0, sizeof a);
    update_stats us = {0};
    metric_list *ml = calloc(1, sizeof *ml);
    float *values = NULL, *returns = NULL; /* [B, T] the critic's, with algo.advantage = "gae" */
    int rc = -1;
    if (!ml) {
        err_set(e, "out of memory");
        goto done;
    }
    /* CPU rollouts run on the host model; GPU rollouts read the GPU's weights in place */
    if (!rl_rollout_on_gpu(c) && rl_ctx_sync_host(c, e) != 0) goto done;
    int rounds = cfg->algo_dynamic_sampling ? (int)cfg->algo_max_sampling_rounds : 1;
    for (int round = 0; round < rounds && b.groups_kept < cfg->rollout_prompts_per_step; round++)
        if (sample_round(c, train, &b, round, e) != 0) goto done;
    if (arrays_init(&a, c, &b, e) != 0) goto done;
    double t_train = util_now();
    if (a.B > 0) {
        int many_updates = cfg->algo_ppo_epochs > 1 ||
                           (cfg->algo_minibatch_size > 0 && cfg->algo_minibatch_size < a.B);
        int have_old = many_updates || (c->ref && cfg->algo_kl_in_reward);
        if (have_old && logprobs_of(c, c->m, c->gpu, &a, a.old_logp, e) != 0) goto done;
        if (c->ref && logprobs_of(c, c->ref, c->gpu_ref, &a, a.ref_logp, e) != 0) goto done;
        if (c->critic) {
            size_t BT = (size_t)a.B * a.T;
            if (!(values = calloc(BT, sizeof *values)) || !(returns = calloc(BT, sizeof *returns))) {
                err_set(e, "out of memory");
                goto done;
            }
            if (rl_critic_values(c->critic, a.seqs, a.B, a.T, values, e) != 0) goto done;
        }
        if (compute_advantages(c, &a, values, returns, e) != 0) goto done;
        for (int i = 0; i < a.B; i++) a.s[i]->advantage = a.adv[(size_t)i * a.T];
        if (c->critic && update_critic(c, &a, values, returns, ml, e) != 0) goto done;
        if (!c->critic || c->step >= cfg->critic_warmup_steps) {
            if (update_policy(c, &a, have_old, &us, e) != 0) goto done;
            /* without old log-probs there was one pass over one minibatch: its log-probs
             * came before the only update, under the rollout's weights */
            if (have_old) logp_mismatch(c, &a, a.old_logp, ml);
            else if (us.first_pass_all) logp_mismatch(c, &a, a.logp, ml);
        } else {
            us.clip_frac = us.ppo_kl = us.entropy = us.kl = NAN; /* critic warmup: the policy waits */
            if (have_old) logp_mismatch(c, &a, a.old_logp, ml);
        }
    } else {
        us.clip_frac = us.ppo_kl = us.entropy = us.kl = NAN;
        char msg[160];
        snprintf(msg, sizeof msg, "step %lld: every group's rewards were equal; no update", (long long)c->step + 1);
        if (store_event(c->st, c->run_id, "warning", msg, e) != 0) goto done;
    }
    double train_s = util_now() - t_train;
    c->step++;
    if (do_eval) {
        double acc, rew;
        if (rl_ctx_evaluate(c, eval, c->eval_prompts, NULL, &acc, &rew, e) != 0) goto done;
        metric_add(ml, "eval/accuracy", acc);
        metric_add(ml, "eval/reward_mean", rew);
        fprintf(c->out, "eval after step %lld: accuracy %.1f%%, reward %.3f (%zu problems)\n", (long long)c->step,
                100 * acc, rew, eval->n);
    }
    if (write_step(c, train, &b, &a, &us, t_start, train_s, ml, reward_mean, accuracy, e) != 0) goto done;
    rc = 0;
done:
    arrays_free(&a);
    batch_free(&b);
    free(ml);
    free(values);
    free(returns);
    return rc;
}
