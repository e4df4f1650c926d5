/* sampling.c - token selection (temperature, top-k, top-p, min-p, greedy) with
 * counter-based randomness, and the CPU reference's decoding loop. */
#include "sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

int sample_params_check(const sample_params *p, rlvr_err *e) {
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return err_set(e, "temperature must be >= 0 (0 is greedy), got %g", p->temperature);
    if (p->top_k < 0) return err_set(e, "top_k must be >= 0 (0 is off), got %d", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) return err_set(e, "top_p must be in (0, 1], got %g", p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f)) return err_set(e, "min_p must be in [0, 1], got %g", p->min_p);
    return 0;
}

int sample_init(sampler *s, int vocab, rlvr_err *e) {
    s->vocab = vocab;
    s->prob = malloc((size_t)vocab * sizeof *s->prob);
    s->order = malloc((size_t)vocab * sizeof *s->order);
    s->keep = malloc((size_t)vocab);
    if (!s->prob || !s->order || !s->keep) {
        sample_free(s);
        return err_set(e, "out of memory for a sampler of %d tokens", vocab);
    }
    return 0;
}

void sample_free(sampler *s) {
    free(s->prob);
    free(s->order);
    free(s->keep);
    memset(s, 0, sizeof *s);
}

/* qsort has no context argument: the probabilities being sorted are passed through this
 * thread-local pointer. Descending probability, then ascending id (a total order, so the
 * result never depends on the sort's stability). */
static _Thread_local const float *sort_prob;
static int by_prob_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_prob[i] != sort_prob[j]) return sort_prob[i] > sort_prob[j] ? -1 : 1;
    return i < j ? -1 : i > j;
}

int sample_next(sampler *s, const float *logits, const sample_params *p, uint64_t seed, uint64_t seq_id,
                uint64_t position, float *logp) {
    int V = s->vocab, best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (p->temperature == 0.0f) {
        if (logp) *logp = 0.0f;
        return best;
    }
    /* unnormalized probabilities relative to the most likely token: prob[best] = 1 */
    float inv_t = 1.0f / p->temperature, top = logits[best];
    for (int v = 0; v < V; v++) {
        s->prob[v] = expf((logits[v] - top) * inv_t);
        s->keep[v] = 1;
    }
    int k = p->top_k > 0 && p->top_k < V ? p->top_k : V;
    if (k < V || p->top_p < 1.0f) {
        for (int v = 0; v < V; v++) s->order[v] = v;
        sort_prob = s->prob;
        qsort(s->order, (size_t)V, sizeof *s->order, by_prob_desc);
        for (int r = k; r < V; r++) s->keep[s->order[r]] = 0;
        if (p->top_p < 1.0f) {
            double kept = 0.0, cum = 0.0;
            for (int r = 0; r < k; r++) kept += s->prob[s->order[r]];
            int r = 0;
            for (; r < k; r++) {
                cum += s->prob[s->order[r]];
                if (cum >= p->top_p * kept) break;
            }
            for (r = r + 1; r < k; r++) s->keep[s->order[r]] = 0;
        }
    }
    if (p->min_p > 0.0f)
        for (int v = 0; v < V; v++)
            if (s->prob[v] < p->min_p) s->keep[v] = 0; /* prob[best] = 1, so this is p < min_p * p_max */
    double total = 0.0;
    for (int v = 0; v < V; v++)
        if (s->keep[v]) total += s->prob[v];
    double u = (double)rng_uniform(seed, seq_id, position, 0) * total, cum = 0.0;
    int chosen = best;
    for (int v = 0; v < V; v++) {
        if (!s->keep[v]) continue;
        chosen = v;
        cum += s->prob[v];
        if (cum > u) break;
    }
    if (logp) *logp = (float)log(s->prob[chosen] / total);
    return chosen;
}

int sample_generate(model *m, sample_seq *seqs, int n, const sample_gen_opts *o, rlvr_err *e) {
    if (sample_params_check(&o->params, e) != 0) return -1;
    if (o->max_new < 1) return err_set(e, "max_new_tokens must be >= 1");
    int V = m->cfg.vocab, batch = o->batch > 0 && o->batch < n ? o->batch : n;
    int max_prompt = 0;
    for (int i = 0; i < n; i++) {
        if (seqs[i].n_prompt < 1) return err_set(e, "sequence %d: empty prompt", i);
        if (seqs[i].n_prompt > max_prompt) max_prompt = seqs[i].n_prompt;
    }
    sampler s;
    if (sample_init(&s, V, e) != 0) return -1;
    model_kv *kv = model_kv_new(m, batch, max_prompt + o->max_new, e);
    float *logits = malloc((size_t)batch * V * sizeof(float));
    int *slots = malloc((size_t)batch * 4 * sizeof(int));
    int *tokens = NULL;
    int rc = 0;
    if (!kv || !logits || !slots) {
        rc = kv ? err_set(e, "out of memory") : -1;
        goto done;
    }
    int *n_new = slots + batch, *rows = n_new + batch, *which = rows + batch;
    size_t total_prompt = 0;
    for (int i = 0; i < n; i++) total_prompt += (size_t)seqs[i].n_prompt;
    tokens = malloc((total_prompt + (size_t)batch) * sizeof(int));
    if (!tokens) {
        rc = err_set(e, "out of memory");
        goto done;
    }
    for (int b0 = 0; b0 < n && rc == 0; b0 += batch) {
        int nb = n - b0 < batch ? n - b0 : batch;
        /* prefill: every prompt of the batch in one forward */
        size_t t = 0;
        for (int i = 0; i < nb; i++) {
            sample_seq *q = &seqs[b0 + i];
            kv->len[i] = 0;
            slots[i] = i;
            n_new[i] = q->n_prompt;
            memcpy(tokens + t, q->prompt, (size_t)q->n_prompt * sizeof(int));
            t += (size_t)q->n_prompt;
            rows[i] = (int)t - 1;
            which[i] = b0 + i;
            q->n_out = 0;
            q->finish = ROLLOUT_LENGTH;
        }
        int active = nb;
        if (model_forward(m, kv, nb, slots, n_new, tokens, e) != 0) {
            rc = -1;
            break;
        }
        while (active > 0) {
            model_logits(m, rows, active, logits);
            int next_active = 0;
            for (int i = 0; i < active; i++) {
                sample_seq *q = &seqs[which[i]];
                float lp;
                int tok = sample_next(&s, logits + (size_t)i * V, &o->params, o->seed, q->seq_id,
                                      (uint64_t)(q->n_prompt + q->n_out), &lp);
                q->out[q->n_out] = tok;
                if (q->out_logp) q->out_logp[q->n_out] = lp;
                q->n_out++;
                int stop = 0;
                for (int k = 0; k < o->n_stop; k++) stop |= tok == o->stop_ids[k];
                if (stop) q->finish = ROLLOUT_STOP;
                if (stop || q->n_out >= o->max_new) continue;
                /* still going: it feeds its token in the next step */
                slots[next_active] = slots[i];
                which[next_active] = which[i];
                tokens[next_active] = tok;
                n_new[next_active] = 1;
                rows[next_active] = next_active;
                next_active++;
            }
            active = next_active;
            if (active > 0 && model_forward(m, kv, active, slots, n_new, tokens, e) != 0) {
                rc = -1;
                break;
            }
        }
    }
done:
    free(tokens);
    free(slots);
    free(logits);
    model_kv_free(kv);
    sample_free(&s);
    return rc;
}
