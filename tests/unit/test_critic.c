/* test_critic.c - the PPO critic (rl/critic.h): its values are the value head on the hidden
 * state the policy predicts each completion token from, whatever the micro-batching; the
 * gradient of the value loss through the head and the transformer matches finite
 * differences; its files round-trip; a model of another vocabulary is refused. */
#include "testing.h"

#include <math.h>

#include "critic.h"
#include "util.h"
#include "value_loss.h"

static model *tiny_model(uint64_t seed) {
    rlvr_err e;
    model_config c = {.arch = MODEL_QWEN2, .vocab = 20, .hidden = 16, .layers = 2, .heads = 4, .kv_heads = 2,
                      .head_dim = 4, .intermediate = 24, .max_positions = 32, .rope_theta = 10000.0f,
                      .rms_eps = 1e-6f, .init_range = 0.3f, .tie_embeddings = 1, .qkv_bias = 1,
                      .bos_token_id = -1, .eos_token_id = -1};
    model *m = model_init(&c, seed, &e);
    assert_non_null(m);
    return m;
}

static rl_critic_opts opts(int micro) {
    rl_critic_opts o = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0, .max_grad_norm = 0.0,
                        .sched = {.kind = RL_LR_CONSTANT, .peak = 0.0, .total = 10},
                        .cliprange_value = 1e6, .agg = RL_AGG_TOKEN_MEAN, .ppo_epochs = 1, .minibatch_size = 0,
                        .micro_batch_size = micro};
    return o;
}

/* Three sequences of different prompt and completion lengths, [B = 3, T = 5]. */
static const int IDS0[] = {1, 2, 3, 4, 5, 6, 7}, IDS1[] = {9, 8, 7, 6}, IDS2[] = {3, 3, 11, 12, 13, 14, 15, 16};
static const rl_seq SEQS[3] = {{IDS0, 3, 4}, {IDS1, 1, 3}, {IDS2, 4, 4}};
enum { B = 3, T = 5 };

static void random_head(rl_critic *c) {
    for (int k = 0; k <= c->m->cfg.hidden; k++) c->head[k] = 0.25f * sinf(1.7f * (float)k + 0.3f);
}

/* V of completion token j is the head on the hidden state at n_prompt - 1 + j of that
 * sequence run alone; the same for every micro-batch size; padding untouched. */
static void values_are_the_head_on_the_predicting_position(void **state) {
    (void)state;
    rlvr_err e;
    for (int micro = 1; micro <= 3; micro++) {
        rl_critic_opts o = opts(micro);
        rl_critic *c = rl_critic_new(tiny_model(3), &o, &e);
        assert_non_null(c);
        random_head(c);
        float v[B * T];
        for (int i = 0; i < B * T; i++) v[i] = -99.0f;
        assert_int_equal(rl_critic_values(c, SEQS, B, T, v, &e), 0);
        int C = c->m->cfg.hidden;
        for (int b = 0; b < B; b++) {
            model_kv *kv = model_kv_new(c->m, 1, 16, &e);
            int slot = 0, n = SEQS[b].n_prompt + SEQS[b].n_completion - 1;
            assert_int_equal(model_forward(c->m, kv, 1, &slot, &n, SEQS[b].ids, &e), 0);
            const float *h = model_hidden(c->m);
            for (int j = 0; j < T; j++) {
                if (j >= SEQS[b].n_completion) {
                    assert_true(v[b * T + j] == -99.0f);
                    continue;
                }
                double want = c->head[C];
                for (int k = 0; k < C; k++) want += (double)c->head[k] * h[(size_t)(SEQS[b].n_prompt - 1 + j) * C + k];
                if (fabs(v[b * T + j] - want) > 1e-5) fail_msg("micro %d: V[%d, %d] = %g, want %g", micro, b, j, v[b * T + j], want);
            }
            model_kv_free(kv);
        }
        rl_critic_free(c);
    }
}

static double value_loss_of(rl_critic *c, const uint8_t *mask, const float *old, const float *ret) {
    rlvr_err e;
    float v[B * T] = {0};
    assert_int_equal(rl_critic_values(c, SEQS, B, T, v, &e), 0);
    rl_vf_stats st;
    assert_int_equal(rl_value_loss(v, old, ret, mask, B, T, c->o.cliprange_value, c->o.agg, NULL, &st, &e), 0);
    return st.loss;
}

/* With lr 0, rl_critic_update leaves the weights and its gradients in place: they match
 * central differences of the value loss, for the head and for every transformer tensor;
 * micro-batches of 1 give the same gradient as one pass. */
static void update_gradient_matches_finite_differences(void **state) {
    (void)state;
    rlvr_err e;
    uint8_t mask[B * T] = {0};
    float old[B * T] = {0}, ret[B * T] = {0};
    for (int b = 0; b < B; b++)
        for (int j = 0; j < SEQS[b].n_completion; j++) {
            mask[b * T + j] = 1;
            ret[b * T + j] = 0.5f + 0.3f * (float)((b * 5 + j * 3) % 7) - 0.9f;
        }
    float *grads1 = NULL, head1[17];
    for (int micro = 3; micro >= 1; micro -= 2) {
        rl_critic_opts o = opts(micro);
        o.agg = RL_AGG_SEQ_MEAN_TOKEN_MEAN;
        rl_critic *c = rl_critic_new(tiny_model(5), &o, &e);
        assert_non_null(c);
        random_head(c);
        rl_critic_stats st;
        assert_int_equal(rl_critic_update(c, SEQS, B, T, mask, old, ret, 0, &st, &e), 0);
        assert_int_equal(st.updates, 1);
        assert_true(fabs(st.vf_loss - value_loss_of(c, mask, old, ret)) < 1e-6 * (1 + st.vf_loss));
        if (micro == 3) {
            grads1 = malloc(c->m->n_params * sizeof *grads1);
            memcpy(grads1, c->m->grads, c->m->n_params * sizeof *grads1);
            memcpy(head1, c->dhead, sizeof head1);
            /* finite differences on the head and a few entries of every tensor */
            for (int k = 0; k <= c->m->cfg.hidden; k += 3) {
                float saved = c->head[k], h = 1e-2f;
                c->head[k] = saved + h;
                double lp = value_loss_of(c, mask, old, ret);
                c->head[k] = saved - h;
                double lm = value_loss_of(c, mask, old, ret);
                c->head[k] = saved;
                double fd = (lp - lm) / (2.0 * h);
                if (fabs(fd - c->dhead[k]) > 2e-2 * fabs(c->dhead[k]) + 1e-4)
                    fail_msg("head[%d]: analytic %g, finite differences %g", k, c->dhead[k], fd);
            }
            for (int i = 0; i < c->m->n_table; i++) {
                model_param *p = &c->m->table[i];
                for (int probe = 0; probe < 2; probe++) {
                    size_t k = (size_t)(probe * 7919 + i * 31) % p->numel;
                    if (i == 0) k = (size_t)IDS2[probe + 2] * 16 + (size_t)probe; /* an embedding row in use */
                    float saved = p->data[k], h = 1e-2f;
                    p->data[k] = saved + h;
                    double lp = value_loss_of(c, mask, old, ret);
                    p->data[k] = saved - h;
                    double lm = value_loss_of(c, mask, old, ret);
                    p->data[k] = saved;
                    double fd = (lp - lm) / (2.0 * h), an = p->grad[k];
                    if (fabs(fd - an) > 2e-2 * fabs(an) + 2e-4)
                        fail_msg("%s[%zu]: analytic %g, finite differences %g", p->name, k, an, fd);
                }
            }
        } else {
            for (size_t k = 0; k < c->m->n_params; k++)
                if (fabsf(grads1[k] - c->m->grads[k]) > 1e-5f + 1e-4f * fabsf(grads1[k]))
                    fail_msg("micro-batches: grad[%zu] %g against %g", k, c->m->grads[k], grads1[k]);
            for (int k = 0; k <= 16; k++) assert_true(fabsf(head1[k] - c->dhead[k]) <= 1e-5f + 1e-4f * fabsf(head1[k]));
        }
        rl_critic_free(c);
    }
    free(grads1);
}

/* A zero head gives zero values; an update moves them toward the returns; save, load and
 * the optimizer state round-trip; a model of another vocabulary and a foreign optim.bin are
 * errors that name what is wrong. */
static void files_round_trip_and_errors(void **state) {
    (void)state;
    rlvr_err e;
    rl_critic_opts o = opts(2);
    o.sched.peak = 1e-2;
    o.max_grad_norm = 1.0;
    rl_critic *c = rl_critic_new(tiny_model(9), &o, &e);
    assert_non_null(c);
    uint8_t mask[B * T] = {0};
    float old[B * T] = {0}, ret[B * T] = {0}, v[B * T] = {0}, v2[B * T] = {0};
    for (int b = 0; b < B; b++)
        for (int j = 0; j < SEQS[b].n_completion; j++) mask[b * T + j] = 1, ret[b * T + j] = 1.0f;
    assert_int_equal(rl_critic_values(c, SEQS, B, T, v, &e), 0);
    for (int i = 0; i < B * T; i++) assert_true(v[i] == 0.0f);
    double first = value_loss_of(c, mask, old, ret);
    rl_critic_stats st;
    for (int k = 0; k < 20; k++) assert_int_equal(rl_critic_update(c, SEQS, B, T, mask, v, ret, k, &st, &e), 0);
    double last = value_loss_of(c, mask, old, ret);
    if (!(last < 0.1 * first)) fail_msg("value loss %g -> %g", first, last);

    char *dir = test_tmpdir("critic");
    char *cdir = util_path_join(dir, "critic");
    assert_int_equal(rl_critic_save(c, cdir, &e), 0);
    rl_critic *d = rl_critic_load(cdir, "critic.path", 20, 16, &o, &e);
    if (!d) fail_msg("%s", e.msg);
    assert_int_equal(rl_critic_load_optim(d, cdir, &e), 0);
    assert_int_equal(rl_critic_values(c, SEQS, B, T, v, &e), 0);
    assert_int_equal(rl_critic_values(d, SEQS, B, T, v2, &e), 0);
    assert_memory_equal(v, v2, sizeof v);
    assert_true(d->opt.step == 20 && d->opt_head.step == 20);
    assert_memory_equal(c->opt.m, d->opt.m, c->opt.n * sizeof(float));
    assert_memory_equal(c->opt_head.v, d->opt_head.v, c->opt_head.n * sizeof(float));
    /* One more identical update keeps them identical. */
    assert_int_equal(rl_critic_update(c, SEQS, B, T, mask, v, ret, 20, &st, &e), 0);
    assert_int_equal(rl_critic_update(d, SEQS, B, T, mask, v2, ret, 20, &st, &e), 0);
    assert_memory_equal(c->m->params, d->m->params, c->m->n_params * sizeof(float));
    assert_memory_equal(c->head, d->head, 17 * sizeof(float));
    rl_critic_free(d);

    assert_null(rl_critic_load(cdir, "critic.path", 21, 16, &o, &e));
    assert_non_null(strstr(e.msg, "critic.path = \""));
    assert_non_null(strstr(e.msg, "the model's vocabulary is 20 tokens, the policy's 21"));
    assert_null(rl_critic_load(cdir, "critic.path", 20, 64, &o, &e));
    assert_non_null(strstr(e.msg, "context of 32 positions is shorter than the 64"));
    /* An optimizer state of another critic shape. */
    rl_critic *w = rl_critic_new(tiny_model(1), &o, &e);
    model_config big = w->m->cfg;
    rl_critic_free(w);
    big.intermediate = 28;
    model *bm = model_init(&big, 1, &e);
    rl_critic *x = rl_critic_new(bm, &o, &e);
    assert_non_null(x);
    assert_int_equal(rl_critic_load_optim(x, cdir, &e), -1);
    assert_non_null(strstr(e.msg, "holds state for"));
    rl_critic_free(x);
    util_remove_tree(dir);
    free(cdir);
    free(dir);
    rl_critic_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_are_the_head_on_the_predicting_position),
        cmocka_unit_test(update_gradient_matches_finite_differences),
        cmocka_unit_test(files_round_trip_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
