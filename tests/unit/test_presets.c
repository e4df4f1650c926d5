/* test_presets.c - each `preset` resolves to config values that, run through rl/'s
 * advantages, policy loss and KL loss, reproduce that recipe's own published objective
 * on a fixed batch (tests/reference/preset_golden.py): loss, advantages and gradient
 * within 2e-5. And a preset is a set of defaults: keys given beside it win. */
#include <math.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "rl.h"
#include "testing.h"
#include "util.h"

static float *floats(const cJSON *arr) {
    int n = cJSON_GetArraySize(arr);
    float *out = malloc((size_t)n * sizeof *out);
    for (int i = 0; i < n; i++) out[i] = (float)cJSON_GetArrayItem(arr, i)->valuedouble;
    return out;
}

static void near(const char *what, double got, double want) {
    if (fabs(got - want) > 2e-5 + 2e-5 * fabs(want)) fail_msg("%s: got %.9g, want %.9g", what, got, want);
}

static void presets_reproduce_their_recipes(void **state) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/rl/presets.json", getenv("RLVR_SOURCE_DIR"));
    rlvr_err e = {{0}};
    char *text = util_read_file(path, NULL, &e);
    if (!text) fail_msg("%s", e.msg);
    cJSON *g = cJSON_Parse(text);
    free(text);
    int B = cJSON_GetObjectItem(g, "B")->valueint, T = cJSON_GetObjectItem(g, "T")->valueint;
    size_t n = (size_t)B * T;
    float *m = floats(cJSON_GetObjectItem(g, "mask")), *scores = floats(cJSON_GetObjectItem(g, "scores"));
    float *logp = floats(cJSON_GetObjectItem(g, "logp")), *old = floats(cJSON_GetObjectItem(g, "old_logp"));
    float *ref = floats(cJSON_GetObjectItem(g, "ref_logp"));
    uint8_t *mask = malloc(n);
    for (size_t i = 0; i < n; i++) mask[i] = m[i] != 0;
    int64_t *group = malloc((size_t)B * sizeof *group);
    for (int b = 0; b < B; b++) group[b] = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "group"), b)->valueint;
    float *adv = malloc(n * sizeof *adv), *grad = malloc(n * sizeof *grad);

    const cJSON *p;
    int count = 0;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(g, "presets")) {
        rlvr_config c;
        assert_int_equal(config_init(&c, &e), 0);
        char set[64];
        snprintf(set, sizeof set, "preset=%s", p->string);
        if (config_set(&c, set, &e) != 0) fail_msg("%s", e.msg);
        /* Everything below comes from the resolved config, nothing from the preset's name. */
        rl_batch_shape s = {B, T, mask, group};
        int kind = rl_adv_kind_parse(c.algo_advantage);
        assert_int_equal(rl_outcome_advantages(kind, &s, scores, (float)c.algo_adv_eps, adv, &e), 0);
        const cJSON *want_adv = cJSON_GetObjectItem(p, "advantages");
        for (size_t i = 0; i < n; i++)
            if (mask[i]) near(p->string, adv[i], cJSON_GetArrayItem(want_adv, (int)i)->valuedouble);
        rl_pg_params pp = {c.algo_clip_low, c.algo_clip_high, c.algo_clip_c, rl_agg_parse(c.algo_loss_agg)};
        rl_pg_stats st;
        assert_int_equal(rl_policy_loss(logp, old, adv, mask, B, T, &pp, grad, &st, &e), 0);
        double loss = st.loss;
        if (c.algo_kl_coef > 0) {
            loss += rl_kl_loss(rl_kl_parse(c.algo_kl_estimator), c.algo_kl_coef, pp.agg, logp, ref, mask, B, T, grad,
                               &e);
        }
        char label[64];
        snprintf(label, sizeof label, "preset %s loss", p->string);
        near(label, loss, cJSON_GetObjectItem(p, "loss")->valuedouble);
        const cJSON *want_grad = cJSON_GetObjectItem(p, "grad");
        snprintf(label, sizeof label, "preset %s grad", p->string);
        for (size_t i = 0; i < n; i++)
            if (mask[i]) near(label, grad[i], cJSON_GetArrayItem(want_grad, (int)i)->valuedouble);
        config_free(&c);
        count++;
    }
    assert_int_equal(count, 5);
    free(m), free(scores), free(logp), free(old), free(ref), free(mask), free(group), free(adv), free(grad);
    cJSON_Delete(g);
}

static void keys_beside_a_preset_win(void **state) {
    char *dir = test_tmpdir("presets");
    /* Table order does not matter: the preset applies first, the file's keys after. */
    char *p = test_write(dir, "c.lua", "return { algo = { clip_high = 0.4 }, preset = 'dapo', learning_rate = 3e-6 }\n");
    rlvr_config c;
    rlvr_err e = {{0}};
    assert_int_equal(config_init(&c, &e), 0);
    if (config_load_file(&c, p, &e) != 0) fail_msg("%s", e.msg);
    assert_true(c.algo_clip_high == 0.4);      /* the file's */
    assert_true(c.learning_rate == 3e-6);      /* the file's */
    assert_true(c.algo_dynamic_sampling == 1); /* the preset's */
    assert_string_equal(c.algo_loss_agg, "token_mean");
    /* A later --set preset=... replaces them all. */
    assert_int_equal(config_set(&c, "preset=verl", &e), 0);
    assert_true(c.algo_clip_high == 0.2 && c.algo_clip_c == 3.0 && c.algo_kl_coef == 0.001);
    /* The resolved config names the preset and every key; loading it back changes nothing. */
    char *lua = config_to_lua(&c);
    char *q = test_write(dir, "resolved.lua", lua);
    rlvr_config d;
    assert_int_equal(config_init(&d, &e), 0);
    if (config_load_file(&d, q, &e) != 0) fail_msg("%s", e.msg);
    assert_null(config_diff(&c, &d));
    assert_int_equal(config_set(&d, "preset=ppo", &e), -1);
    assert_non_null(strstr(e.msg, "expected one of none|grpo|dr_grpo|dapo|trl|verl"));
    config_free(&c), config_free(&d);
    free(lua), free(p), free(q), free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(presets_reproduce_their_recipes),
        cmocka_unit_test(keys_beside_a_preset_win),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
