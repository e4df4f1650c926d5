/* critic.c - the PPO critic: a transformer with a value head, its forward over
 * (prompt, completion) sequences, the clipped value-loss update in micro-batches, and
 * its files. */
#include "critic.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"
#include "util.h"
#include "value_loss.h"

#define CRITIC_OPTIM_MAGIC "RLVRCRIT"
#define HEAD_FILE "value_head.safetensors"

/* ---- construction ------------------------------------------------------------------------ */

rl_critic *rl_critic_new(model *m, const rl_critic_opts *o, rlvr_err *e) {
    rl_critic *c = calloc(1, sizeof *c);
    size_t nh = (size_t)m->cfg.hidden + 1;
    if (!c || !(c->head = calloc(nh, sizeof *c->head)) || !(c->dhead = calloc(nh, sizeof *c->dhead))) {
        if (c) free(c->head);
        free(c);
        model_free(m);
        err_set(e, "out of memory for the critic");
        return NULL;
    }
    c->m = m;
    c->o = *o;
    if (model_alloc_grads(m, e) != 0 ||
        rl_adamw_init(&c->opt, m->n_params, o->beta1, o->beta2, o->eps, o->weight_decay, e) != 0 ||
        rl_adamw_init(&c->opt_head, nh, o->beta1, o->beta2, o->eps, o->weight_decay, e) != 0) {
        rl_critic_free(c);
        return NULL;
    }
    return c;
}

void rl_critic_free(rl_critic *c) {
    if (!c) return;
    model_free(c->m);
    free(c->head);
    free(c->dhead);
    rl_adamw_free(&c->opt);
    rl_adamw_free(&c->opt_head);
    free(c);
}

/* Reads score.weight [1, C] and score.bias [1] of path into head [C + 1]. */
static int load_head(float *head, int C, const char *path, rlvr_err *e) {
    st_file f;
    if (st_open(&f, path, e) != 0) return -1;
    const st_tensor *w = st_find(&f, "score.weight"), *b = st_find(&f, "score.bias");
    int rc = -1;
    if (!w || !b) err_set(e, "%s: needs tensors 'score.weight' and 'score.bias' (the value head)", path);
    else if (w->ndim != 2 || w->shape[0] != 1 || w->shape[1] != C || b->ndim != 1 || b->shape[0] != 1)
        err_set(e, "%s: the value head must be score.weight [1, %d] and score.bias [1] (the model's hidden size is %d)",
                path, C, C);
    else if (st_to_f32(w, head, e) == 0 && st_to_f32(b, head + C, e) == 0) rc = 0;
    else err_prefix(e, "%s", path);
    st_close(&f);
    return rc;
}

rl_critic *rl_critic_load(const char *dir, const char *what, int vocab, int max_len, const rl_critic_opts *o,
                          rlvr_err *e) {
    model *m = model_load(dir, e);
    if (!m) {
        err_prefix(e, "%s = \"%s\"", what, dir);
        return NULL;
    }
    if (m->cfg.vocab != vocab) {
        err_set(e,
                "%s = \"%s\": the model's vocabulary is %d tokens, the policy's %d; the critic reads the policy's "
                "token ids, so it needs the policy's tokenizer",
                what, dir, m->cfg.vocab, vocab);
        model_free(m);
        return NULL;
    }
    if (m->cfg.max_positions < max_len) {
        err_set(e, "%s = \"%s\": the model's context of %d positions is shorter than the %d the samples need", what,
                dir, m->cfg.max_positions, max_len);
        model_free(m);
        return NULL;
    }
    rl_critic *c = rl_critic_new(m, o, e);
    if (!c) return NULL;
    char *hp = util_path_join(dir, HEAD_FILE);
    int rc = hp ? 0 : err_set(e, "out of memory");
    if (rc == 0 && util_is_file(hp) && load_head(c->head, c->m->cfg.hidden, hp, e) != 0)
        rc = err_prefix(e, "%s", what);
    free(hp);
    if (rc != 0) {
        rl_critic_free(c);
        return NULL;
    }
    return c;
}

/* ---- files ------------------------------------------------------------------------------- */

static int write_optim(const char *path, const rl_critic *c, rlvr_err *e) {
    FILE *f = fopen(path, "wb");
    if (!f) return err_set(e, "%s: cannot write: %s", path, strerror(errno));
    uint64_t n[2] = {c->opt.n, c->opt_head.n};
    int64_t step = c->opt.step;
    int ok = fwrite(CRITIC_OPTIM_MAGIC, 8, 1, f) == 1 && fwrite(n, sizeof n, 1, f) == 1 &&
             fwrite(&step, sizeof step, 1, f) == 1;
    const rl_adamw *os[2] = {&c->opt, &c->opt_head};
    for (int k = 0; k < 2 && ok; k++)
        ok = fwrite(os[k]->m, sizeof(float), os[k]->n, f) == os[k]->n &&
             fwrite(os[k]->v, sizeof(float), os[k]->n, f) == os[k]->n;
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : err_set(e, "%s: write failed: %s", path, strerror(errno));
}

int rl_critic_save(const rl_critic *c, const char *dir, rlvr_err *e) {
    int C = c->m->cfg.hidden;
    char *hp = util_path_join(dir, HEAD_FILE), *op = util_path_join(dir, "optim.bin");
    int rc = -1;
    if (!hp || !op) err_set(e, "out of memory");
    else if (util_mkdir_p(dir, e) == 0 && model_save(c->m, dir, e) == 0) {
        st_write_tensor t[2] = {{"score.weight", c->head, 2, {1, C}}, {"score.bias", c->head + C, 1, {1}}};
        if (st_write(hp, t, 2, ST_F32, e) == 0 && write_optim(op, c, e) == 0) {
            int fd = open(dir, O_RDONLY);
            if (fd < 0 || fsync(fd) != 0) err_set(e, "%s: fsync failed: %s", dir, strerror(errno));
            else rc = 0;
            if (fd >= 0) close(fd);
        }
    }
    free(hp);
    free(op);
    return rc;
}

int rl_critic_load_optim(rl_critic *c, const char *dir, rlvr_err *e) {
    char *path = util_path_join(dir, "optim.bin");
    if (!path) return err_set(e, "out of memory");
    FILE *f = fopen(path, "rb");
    int rc = -1;
    char magic[8];
    uint64_t n[2];
    int64_t step;
    if (!f) err_set(e, "%s: cannot read: %s", path, strerror(errno));
    else if (fread(magic, 8, 1, f) != 1 || memcmp(magic, CRITIC_OPTIM_MAGIC, 8) != 0 || fread(n, sizeof n, 1, f) != 1 ||
             fread(&step, sizeof step, 1, f) != 1)
        err_set(e, "%s: not an rlvr critic optimizer state file", path);
    else if (n[0] != c->opt.n || n[1] != c->opt_head.n)
        err_set(e, "%s: holds state for %llu + %llu parameters, the critic has %zu + %zu", path,
                (unsigned long long)n[0], (unsigned long long)n[1], c->opt.n, c->opt_head.n);
    else {
        rl_adamw *os[2] = {&c->opt, &c->opt_head};
        int ok = 1;
        for (int k = 0; k < 2 && ok; k++)
            ok = fread(os[k]->m, sizeof(float), os[k]->n, f) == os[k]->n &&
                 fread(os[k]->v, sizeof(float), os[k]->n, f) == os[k]->n;
        if (!ok || fgetc(f) != EOF) err_set(e, "%s: truncated or oversized", path);
        else {
            c->opt.step = c->opt_head.step = step;
            rc = 0;
        }
    }
    if (f) fclose(f);
    free(path);
    return rc;
}

/* ---- micro-batches ----------------------------------------------------------------------- */

/* Scratch for micro-batches of up to max_seqs sequences of up to max_len positions. */
typedef struct critic_batch {
    model_kv *kv;
    int max_seqs, max_len;
    int *slots, *n_new, *tokens; /* [max_seqs], [max_seqs], [max_seqs * max_len] */
    int *first;                  /* [max_seqs] row of each sequence's first completion token's value */
    float *dhidden;              /* [max_seqs * max_len, C] */
} critic_batch;

static void cb_free(critic_batch *b) {
    model_kv_free(b->kv);
    free(b->slots);
    free(b->n_new);
    free(b->tokens);
    free(b->first);
    free(b->dhidden);
}

static int cb_init(critic_batch *b, const rl_critic *c, const rl_seq *seqs, int B, int max_seqs, rlvr_err *e) {
    memset(b, 0, sizeof *b);
    int max_len = 1;
    for (int i = 0; i < B; i++)
        if (seqs[i].n_prompt + seqs[i].n_completion - 1 > max_len) max_len = seqs[i].n_prompt + seqs[i].n_completion - 1;
    b->max_seqs = max_seqs;
    b->max_len = max_len;
    size_t n = (size_t)max_seqs * max_len;
    b->kv = model_kv_new(c->m, max_seqs, max_len, e);
    if (!b->kv) return -1;
    b->slots = malloc((size_t)max_seqs * sizeof *b->slots);
    b->n_new = malloc((size_t)max_seqs * sizeof *b->n_new);
    b->first = malloc((size_t)max_seqs * sizeof *b->first);
    b->tokens = malloc(n * sizeof *b->tokens);
    b->dhidden = malloc(n * (size_t)c->m->cfg.hidden * sizeof *b->dhidden);
    if (!b->slots || !b->n_new || !b->first || !b->tokens || !b->dhidden) {
        cb_free(b);
        return err_set(e, "out of memory for a critic micro-batch of %d sequences of %d tokens", max_seqs, max_len);
    }
    return 0;
}

/* Forward of seqs[0..n) through the critic's transformer, then the head: values[i*T + j]
 * for completion token j of sequence i (its hidden row n_prompt - 1 + j). */
static int cb_forward(critic_batch *b, rl_critic *c, const rl_seq *seqs, int n, int T, float *values, rlvr_err *e) {
    int C = c->m->cfg.hidden, t = 0;
    for (int i = 0; i < n; i++) {
        int len = seqs[i].n_prompt + seqs[i].n_completion - 1;
        if (seqs[i].n_prompt < 1 || seqs[i].n_completion < 1)
            return err_set(e, "critic: a sequence needs a prompt token and a completion token");
        b->slots[i] = i;
        b->n_new[i] = len;
        b->first[i] = t + seqs[i].n_prompt - 1;
        model_kv_truncate(b->kv, i, 0);
        memcpy(b->tokens + t, seqs[i].ids, (size_t)len * sizeof(int));
        t += len;
    }
    if (model_forward(c->m, b->kv, n, b->slots, b->n_new, b->tokens, e) != 0) return -1;
    const float *hid = model_hidden(c->m);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < seqs[i].n_completion && j < T; j++) {
            const float *h = hid + (size_t)(b->first[i] + j) * C;
            double v = c->head[C];
            for (int k = 0; k < C; k++) v += (double)c->head[k] * h[k];
            values[(size_t)i * T + j] = (float)v;
        }
    return 0;
}

/* Backward through the last cb_forward from dvalue [n, T]: the head's gradient into
 * dhead, the hidden states' into the transformer's gradients. */
static int cb_backward(critic_batch *b, rl_critic *c, const rl_seq *seqs, int n, int T, const float *dvalue,
                       rlvr_err *e) {
    int C = c->m->cfg.hidden, rows = 0;
    for (int i = 0; i < n; i++) rows += b->n_new[i];
    memset(b->dhidden, 0, (size_t)rows * C * sizeof *b->dhidden);
    const float *hid = model_hidden(c->m);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < seqs[i].n_completion && j < T; j++) {
            float dv = dvalue[(size_t)i * T + j];
            if (dv == 0.0f) continue;
            size_t row = (size_t)(b->first[i] + j) * C;
            for (int k = 0; k < C; k++) {
                b->dhidden[row + k] = dv * c->head[k];
                c->dhead[k] += dv * hid[row + k];
            }
            c->dhead[C] += dv;
        }
    return model_backward_hidden(c->m, b->dhidden, e);
}

int rl_critic_values(rl_critic *c, const rl_seq *seqs, int B, int T, float *values, rlvr_err *e) {
    int micro = c->o.micro_batch_size < B ? c->o.micro_batch_size : B;
    critic_batch b;
    if (cb_init(&b, c, seqs, B, micro, e) != 0) return -1;
    int rc = 0;
    for (int i = 0; i < B && rc == 0; i += micro) {
        int n = B - i < micro ? B - i : micro;
        rc = cb_forward(&b, c, seqs + i, n, T, values + (size_t)i * T, e);
    }
    cb_free(&b);
    return rc;
}

/* ---- the update --------------------------------------------------------------------------- */

/* clip_grad_norm_ over the trunk and the head as one parameter set. */
static double clip_both(rl_critic *c) {
    size_t nh = (size_t)c->m->cfg.hidden + 1;
    double n1 = rl_clip_grad_norm(c->m->grads, c->m->n_params, 0.0), n2 = rl_clip_grad_norm(c->dhead, nh, 0.0);
    double norm = sqrt(n1 * n1 + n2 * n2), max_norm = c->o.max_grad_norm;
    if (max_norm > 0 && isfinite(norm)) {
        double coef = max_norm / (norm + 1e-6);
        if (coef < 1.0) {
            for (size_t i = 0; i < c->m->n_params; i++) c->m->grads[i] = (float)(c->m->grads[i] * coef);
            for (size_t i = 0; i < nh; i++) c->dhead[i] = (float)(c->dhead[i] * coef);
        }
    }
    return norm;
}

int rl_critic_update(rl_critic *c, const rl_seq *seqs, int B, int T, const uint8_t *mask, const float *old_values,
                     const float *returns, long long lr_step, rl_critic_stats *st, rlvr_err *e) {
    memset(st, 0, sizeof *st);
    int micro = c->o.micro_batch_size, mb = c->o.minibatch_size > 0 && c->o.minibatch_size < B ? c->o.minibatch_size : B;
    size_t BT = (size_t)B * T, nh = (size_t)c->m->cfg.hidden + 1;
    float *w = malloc(BT * sizeof *w), *v = malloc(BT * sizeof *v), *dv = malloc(BT * sizeof *dv);
    critic_batch b;
    int rc = 0;
    if (!w || !v || !dv) rc = err_set(e, "out of memory for the critic's batch of %d samples", B);
    else rc = cb_init(&b, c, seqs, B, micro < mb ? micro : mb, e);
    if (rc != 0) {
        free(w), free(v), free(dv);
        return -1;
    }
    double lr = rl_lr_at(&c->o.sched, lr_step);
    rl_vf_sums all = {0};
    for (int ep = 0; ep < c->o.ppo_epochs && rc == 0; ep++)
        for (int m0 = 0; m0 < B && rc == 0; m0 += mb) {
            int nb = B - m0 < mb ? B - m0 : mb;
            size_t off = (size_t)m0 * T, nt = (size_t)nb * T;
            int any = 0;
            for (size_t i = 0; i < nt; i++) any |= mask[off + i];
            if (!any) continue; /* every sample masked: nothing to fit */
            if ((rc = rl_agg_weights(c->o.agg, mask + off, nb, T, w + off, e)) != 0) break;
            model_zero_grads(c->m);
            memset(c->dhead, 0, nh * sizeof *c->dhead);
            rl_vf_sums acc = {0};
            for (int i = m0; i < m0 + nb && rc == 0; i += micro) {
                int n = m0 + nb - i < micro ? m0 + nb - i : micro;
                size_t o = (size_t)i * T, cnt = (size_t)n * T;
                if ((rc = cb_forward(&b, c, seqs + i, n, T, v + o, e)) != 0) break;
                rl_value_loss_weighted(v + o, old_values + o, returns + o, w + o, mask + o, cnt, c->o.cliprange_value,
                                       dv + o, &acc);
                rc = cb_backward(&b, c, seqs + i, n, T, dv + o, e);
            }
            if (rc != 0) break;
            double gn = clip_both(c);
            if (!isfinite(gn)) {
                rc = err_set(e, "the critic's gradient norm is %g (the value loss diverged); lower critic.learning_rate",
                             gn);
                break;
            }
            rl_adamw_step(&c->opt, c->m->params, c->m->grads, lr);
            rl_adamw_step(&c->opt_head, c->head, c->dhead, lr);
            st->vf_loss += acc.loss;
            st->grad_norm += gn;
            st->updates++;
            all.clipped += acc.clipped;
            all.count += acc.count;
        }
    if (st->updates) {
        st->vf_loss /= st->updates;
        st->grad_norm /= st->updates;
    }
    st->vf_clipfrac = all.count ? all.clipped / all.count : NAN;
    cb_free(&b);
    free(w), free(v), free(dv);
    return rc;
}
