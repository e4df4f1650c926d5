/* test_rl_golden.c - every advantage estimator, clip variant, loss aggregation and KL
 * estimator against golden values computed with torch (tests/reference/rl_golden.py,
 * following verl's published formulas), gradients included. Tolerance: 2e-5 absolute
 * plus 2e-5 relative (fp32 against fp32). */
#include <math.h>

#include <cjson/cJSON.h>

#include "rl.h"
#include "testing.h"
#include "util.h"

static cJSON *golden;
static int B, T;
static uint8_t *mask;
static int64_t *group;
static float *scores, *logp, *old_logp, *ref_logp, *values;

static float *floats(const cJSON *arr) {
    int n = cJSON_GetArraySize(arr);
    float *out = malloc((size_t)n * sizeof *out);
    for (int i = 0; i < n; i++) out[i] = (float)cJSON_GetArrayItem(arr, i)->valuedouble;
    return out;
}

static const cJSON *get(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) fail_msg("golden.json has no '%s'", k);
    return v;
}

static void near(const char *what, double got, double want) {
    if (fabs(got - want) > 2e-5 + 2e-5 * fabs(want)) fail_msg("%s: got %.9g, want %.9g", what, got, want);
}

static void near_all(const char *what, const float *got, const cJSON *want) {
    int n = cJSON_GetArraySize(want);
    assert_int_equal(n, B * T);
    for (int i = 0; i < n; i++) {
        if (!mask[i]) continue; /* padding positions are not compared */
        char label[128];
        snprintf(label, sizeof label, "%s[%d]", what, i);
        near(label, got[i], cJSON_GetArrayItem(want, i)->valuedouble);
    }
}

static int setup(void **state) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/rl/golden.json", getenv("RLVR_SOURCE_DIR"));
    rlvr_err e = {{0}};
    char *text = util_read_file(path, NULL, &e);
    if (!text) fail_msg("%s", e.msg);
    golden = cJSON_Parse(text);
    free(text);
    B = get(golden, "B")->valueint;
    T = get(golden, "T")->valueint;
    float *m = floats(get(golden, "mask"));
    mask = malloc((size_t)B * T);
    for (int i = 0; i < B * T; i++) mask[i] = m[i] != 0.0f;
    free(m);
    group = malloc((size_t)B * sizeof *group);
    for (int b = 0; b < B; b++) group[b] = cJSON_GetArrayItem(get(golden, "group"), b)->valueint;
    scores = floats(get(golden, "scores"));
    logp = floats(get(golden, "logp"));
    old_logp = floats(get(golden, "old_logp"));
    ref_logp = floats(get(golden, "ref_logp"));
    values = floats(get(golden, "values"));
    return 0;
}

static int teardown(void **state) {
    cJSON_Delete(golden);
    free(mask), free(group), free(scores), free(logp), free(old_logp), free(ref_logp), free(values);
    return 0;
}

static void outcome_advantages(void **state) {
    rl_batch_shape s = {B, T, mask, group};
    const cJSON *want = get(golden, "advantages");
    const char *names[] = {"grpo", "dr_grpo", "rloo"};
    float *adv = malloc((size_t)B * T * sizeof *adv);
    rlvr_err e = {{0}};
    for (int k = 0; k < 3; k++) {
        int kind = rl_adv_kind_parse(names[k]);
        assert_true(kind >= 0);
        assert_int_equal(rl_outcome_advantages(kind, &s, scores, 1e-6f, adv, &e), 0);
        near_all(names[k], adv, get(want, names[k]));
        for (int i = 0; i < B * T; i++)
            if (!mask[i]) assert_true(adv[i] == 0.0f);
    }
    assert_int_equal(rl_adv_kind_parse("ppo"), -1);
    free(adv);
}

static void token_level_advantages(void **state) {
    rl_batch_shape s = {B, T, mask, group};
    size_t n = (size_t)B * T;
    float *kl = malloc(n * sizeof *kl), *rew = malloc(n * sizeof *rew), *adv = malloc(n * sizeof *adv),
          *ret = malloc(n * sizeof *ret);
    rl_kl_per_token(RL_KL_K1, logp, ref_logp, mask, B, T, kl, NULL);
    rl_token_rewards(&s, scores, kl, 0.05f, rew);
    near_all("token_rewards", rew, get(golden, "token_rewards_kl005"));
    rlvr_err e = {{0}};
    assert_int_equal(rl_reinforce_pp_advantages(&s, rew, 0.99f, adv, ret, &e), 0);
    near_all("reinforce_pp", adv, get(get(golden, "advantages"), "reinforce_pp"));
    near_all("reinforce_pp returns", ret, get(golden, "returns_reinforce_pp"));
    assert_int_equal(rl_gae_advantages(&s, rew, values, 0.95f, 0.9f, adv, ret, &e), 0);
    near_all("gae", adv, get(get(golden, "advantages"), "gae"));
    near_all("gae returns", ret, get(golden, "returns_gae"));
    free(kl), free(rew), free(adv), free(ret);
}

static void policy_losses_and_gradients(void **state) {
    float *adv = floats(get(golden, "adv_for_loss"));
    float *grad = malloc((size_t)B * T * sizeof *grad);
    const cJSON *c;
    int cases = 0;
    cJSON_ArrayForEach(c, get(golden, "policy")) {
        rl_pg_params p = {get(c, "clip_low")->valuedouble, get(c, "clip_high")->valuedouble,
                          get(c, "clip_c")->valuedouble, rl_agg_parse(get(c, "agg")->valuestring)};
        rl_pg_stats st;
        rlvr_err e = {{0}};
        assert_int_equal(rl_policy_loss(logp, old_logp, adv, mask, B, T, &p, grad, &st, &e), 0);
        char label[128];
        snprintf(label, sizeof label, "policy clip=(%g,%g,%g) %s", p.clip_low, p.clip_high, p.clip_c,
                 get(c, "agg")->valuestring);
        near(label, st.loss, get(c, "loss")->valuedouble);
        near("clip_frac", st.clip_frac, get(c, "clip_frac")->valuedouble);
        near("clip_frac_lower", st.clip_frac_lower, get(c, "clip_frac_lower")->valuedouble);
        near("ppo_kl", st.ppo_kl, get(c, "ppo_kl")->valuedouble);
        near_all(label, grad, get(c, "grad"));
        cases++;
    }
    assert_int_equal(cases, 16);
    free(adv);
    free(grad);
}

static void kl_losses_and_gradients(void **state) {
    float *grad = malloc((size_t)B * T * sizeof *grad);
    const cJSON *c;
    int cases = 0;
    cJSON_ArrayForEach(c, get(golden, "kl")) {
        int est = rl_kl_parse(get(c, "estimator")->valuestring);
        int agg = rl_agg_parse(get(c, "agg")->valuestring);
        assert_true(est >= 0 && agg >= 0);
        memset(grad, 0, (size_t)B * T * sizeof *grad);
        rlvr_err e = {{0}};
        double loss = rl_kl_loss(est, get(c, "coef")->valuedouble, agg, logp, ref_logp, mask, B, T, grad, &e);
        char label[128];
        snprintf(label, sizeof label, "kl %s %s", get(c, "estimator")->valuestring, get(c, "agg")->valuestring);
        near(label, loss, get(c, "loss")->valuedouble);
        near_all(label, grad, get(c, "grad"));
        cases++;
    }
    assert_int_equal(cases, 12);
    free(grad);
}

/* The critic's clipped value loss (verl's compute_value_loss) on the GAE returns: loss,
 * clip fraction and gradient for three clip ranges (one that never clips) under every
 * aggregation; micro-batched sums equal the whole batch's; explained variance. */
static void value_losses_and_gradients(void **state) {
    size_t n = (size_t)B * T;
    float *kl = malloc(n * sizeof *kl), *rew = malloc(n * sizeof *rew), *adv = malloc(n * sizeof *adv),
          *ret = malloc(n * sizeof *ret), *grad = malloc(n * sizeof *grad), *grad2 = malloc(n * sizeof *grad2),
          *w = malloc(n * sizeof *w);
    float *vpreds = floats(get(golden, "vpreds"));
    rl_batch_shape s = {B, T, mask, group};
    rl_kl_per_token(RL_KL_K1, logp, ref_logp, mask, B, T, kl, NULL);
    rl_token_rewards(&s, scores, kl, 0.05f, rew);
    rlvr_err e = {{0}};
    assert_int_equal(rl_gae_advantages(&s, rew, values, 0.95f, 0.9f, adv, ret, &e), 0);
    const cJSON *c;
    int cases = 0;
    cJSON_ArrayForEach(c, get(golden, "value")) {
        int agg = rl_agg_parse(get(c, "agg")->valuestring);
        double clip = get(c, "cliprange")->valuedouble;
        rl_vf_stats st;
        assert_int_equal(rl_value_loss(vpreds, values, ret, mask, B, T, clip, agg, grad, &st, &e), 0);
        char label[128];
        snprintf(label, sizeof label, "value loss clip=%g %s", clip, get(c, "agg")->valuestring);
        near(label, st.loss, get(c, "loss")->valuedouble);
        near("vf clip_frac", st.clip_frac, get(c, "clip_frac")->valuedouble);
        near_all(label, grad, get(c, "grad"));
        /* Micro-batches of 2 sequences with the whole batch's weights: the same sums. */
        assert_int_equal(rl_agg_weights(agg, mask, B, T, w, &e), 0);
        rl_vf_sums acc = {0};
        for (int b = 0; b < B; b += 2) {
            size_t o = (size_t)b * T, cnt = (size_t)(B - b < 2 ? B - b : 2) * T;
            rl_value_loss_weighted(vpreds + o, values + o, ret + o, w + o, mask + o, cnt, clip, grad2 + o, &acc);
        }
        rl_vf_stats st2;
        rl_vf_stats_from_sums(&acc, &st2);
        near("micro-batched value loss", st2.loss, st.loss);
        near("micro-batched clip_frac", st2.clip_frac, st.clip_frac);
        near_all("micro-batched grad", grad2, get(c, "grad"));
        cases++;
    }
    assert_int_equal(cases, 12);
    near("explained variance", rl_explained_variance(vpreds, ret, mask, n),
         get(golden, "explained_variance")->valuedouble);
    assert_true(isnan(rl_explained_variance(vpreds, ret, mask, 1)));
    free(kl), free(rew), free(adv), free(ret), free(grad), free(grad2), free(w), free(vpreds);
}

static void bad_batches_are_errors(void **state) {
    uint8_t none[4] = {0, 0, 0, 0};
    int64_t g[2] = {0, 0};
    float sc[2] = {1, 0}, adv[4], lp[4] = {0}, w[4];
    rl_batch_shape s = {2, 2, none, g};
    rlvr_err e = {{0}};
    assert_int_equal(rl_outcome_advantages(RL_ADV_GRPO, &s, sc, 1e-6f, adv, &e), -1);
    assert_non_null(strstr(e.msg, "no completion tokens"));
    assert_int_equal(rl_agg_weights(RL_AGG_TOKEN_MEAN, none, 2, 2, w, &e), -1);
    rl_pg_params p = {0.2, 0.2, 0, RL_AGG_TOKEN_MEAN};
    assert_int_equal(rl_policy_loss(lp, lp, lp, none, 2, 2, &p, NULL, NULL, &e), -1);
    /* Whitening one token is undefined. */
    uint8_t one[4] = {1, 0, 0, 0};
    rl_batch_shape s1 = {2, 2, one, g};
    float x[4] = {1, 2, 3, 4};
    assert_int_equal(rl_masked_whiten(&s1, x, &e), -1);
    assert_int_equal(rl_agg_parse("mean"), -1);
    assert_int_equal(rl_kl_parse("k4"), -1);
}

static void equal_rewards_give_zero_advantage(void **state) {
    /* A group whose samples all scored the same teaches nothing: every estimator gives 0. */
    uint8_t m[6] = {1, 1, 1, 1, 1, 1};
    int64_t g[3] = {5, 5, 5};
    float sc[3] = {0.7f, 0.7f, 0.7f}, adv[6];
    rl_batch_shape s = {3, 2, m, g};
    rlvr_err e = {{0}};
    for (int kind = RL_ADV_GRPO; kind <= RL_ADV_RLOO; kind++) {
        assert_int_equal(rl_outcome_advantages(kind, &s, sc, 1e-6f, adv, &e), 0);
        for (int i = 0; i < 6; i++) assert_true(fabsf(adv[i]) < 1e-6f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(outcome_advantages),       cmocka_unit_test(token_level_advantages),
        cmocka_unit_test(policy_losses_and_gradients), cmocka_unit_test(kl_losses_and_gradients),
        cmocka_unit_test(value_losses_and_gradients),
        cmocka_unit_test(bad_batches_are_errors),    cmocka_unit_test(equal_rewards_give_zero_advantage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
