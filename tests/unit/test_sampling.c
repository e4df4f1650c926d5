/* test_sampling.c - token selection (greedy, temperature, top-k, top-p, min-p) against
 * the distributions they define, and generation: greedy equals transformers' greedy on
 * the fixtures; the same seed gives the same samples whatever the batch composition. */
#include "testing.h"

#include "model_fixture.h"

#include <math.h>

#include "model.h"
#include "safetensors.h"
#include "sampling.h"

static const sample_params GREEDY = {0.0f, 0, 1.0f, 0.0f};

static void test_greedy_is_argmax(void **state) {
    (void)state;
    sampler s;
    rlvr_err e;
    assert_int_equal(sample_init(&s, 5, &e), 0);
    float logits[5] = {0.1f, 2.0f, -1.0f, 2.0f, 1.9f};
    float lp = 1.0f;
    assert_int_equal(sample_next(&s, logits, &GREEDY, 1, 2, 3, &lp), 1); /* ties: lowest id */
    assert_true(lp == 0.0f);
    /* top_k = 1 at any temperature is greedy, for any key */
    sample_params k1 = {1.5f, 1, 1.0f, 0.0f};
    for (int pos = 0; pos < 200; pos++) assert_int_equal(sample_next(&s, logits, &k1, 9, 0, pos, NULL), 1);
    sample_free(&s);
}

/* Draws over many positions: frequencies against the expected distribution. */
static void check_distribution(const float *logits, int V, const sample_params *p, const double *want) {
    sampler s;
    rlvr_err e;
    assert_int_equal(sample_init(&s, V, &e), 0);
    int counts[16] = {0}, N = 20000;
    for (int pos = 0; pos < N; pos++) {
        float lp;
        int t = sample_next(&s, logits, p, 1234, 7, (uint64_t)pos, &lp);
        assert_true(t >= 0 && t < V);
        if (want[t] == 0.0) fail_msg("token %d sampled but filtered out", t);
        assert_true(fabs(lp - log(want[t])) < 1e-4); /* the reported log-probability is the sampled distribution's */
        counts[t]++;
    }
    for (int v = 0; v < V; v++) {
        double f = (double)counts[v] / N, sd = sqrt(want[v] * (1 - want[v]) / N);
        if (fabs(f - want[v]) > 5 * sd + 1e-9) fail_msg("token %d: frequency %g, expected %g", v, f, want[v]);
    }
    sample_free(&s);
}

static void test_distributions(void **state) {
    (void)state;
    /* probabilities 0.5, 0.25, 0.15, 0.1 at temperature 1 */
    float logits[4] = {logf(0.5f), logf(0.25f), logf(0.15f), logf(0.1f)};
    double full[4] = {0.5, 0.25, 0.15, 0.1};
    check_distribution(logits, 4, &(sample_params){1.0f, 0, 1.0f, 0.0f}, full);
    /* temperature 2: p ~ sqrt(p) */
    double t2[4], z = 0;
    for (int i = 0; i < 4; i++) z += t2[i] = sqrt(full[i]);
    for (int i = 0; i < 4; i++) t2[i] /= z;
    check_distribution(logits, 4, &(sample_params){2.0f, 0, 1.0f, 0.0f}, t2);
    /* top-k 2 */
    double k2[4] = {0.5 / 0.75, 0.25 / 0.75, 0, 0};
    check_distribution(logits, 4, &(sample_params){1.0f, 2, 1.0f, 0.0f}, k2);
    /* top-p 0.8: 0.5 + 0.25 < 0.8, so 0.15 joins */
    double p8[4] = {0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0};
    check_distribution(logits, 4, &(sample_params){1.0f, 0, 0.8f, 0.0f}, p8);
    /* min-p 0.25: keep p >= 0.125 */
    double m25[4] = {0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9, 0};
    check_distribution(logits, 4, &(sample_params){1.0f, 0, 1.0f, 0.25f}, m25);
    /* all three together: top-k 3, then top-p 0.7 of what is left (0.5/0.9 < 0.7 <= 0.75/0.9), min-p off */
    double all[4] = {0.5 / 0.75, 0.25 / 0.75, 0, 0};
    check_distribution(logits, 4, &(sample_params){1.0f, 3, 0.7f, 0.1f}, all);
}

static void test_param_checks(void **state) {
    (void)state;
    rlvr_err e;
    assert_int_equal(sample_params_check(&(sample_params){-1.0f, 0, 1.0f, 0.0f}, &e), -1);
    assert_non_null(strstr(e.msg, "temperature must be >= 0"));
    assert_int_equal(sample_params_check(&(sample_params){1.0f, -2, 1.0f, 0.0f}, &e), -1);
    assert_int_equal(sample_params_check(&(sample_params){1.0f, 0, 0.0f, 0.0f}, &e), -1);
    assert_non_null(strstr(e.msg, "top_p must be in (0, 1]"));
    assert_int_equal(sample_params_check(&(sample_params){1.0f, 0, 1.0f, 1.5f}, &e), -1);
    assert_int_equal(sample_params_check(&(sample_params){0.7f, 20, 0.9f, 0.05f}, &e), 0);
}

/* sample_generate at temperature 0 reproduces transformers' greedy continuation. */
static void test_generate_greedy_matches_transformers(void **state) {
    (void)state;
    const char *cases[] = {"llama_gqa", "llama3_tied_bias", "qwen2_tied", "qwen2_sharded_fp16", "qwen3", "mistral"};
    for (int c = 0; c < 6; c++) {
        model *m = fixture_model(cases[c]);
        char path[1200];
        snprintf(path, sizeof path, "%s/tests/fixtures/model/%s/expected.safetensors", getenv("RLVR_SOURCE_DIR"), cases[c]);
        st_file f;
        rlvr_err e;
        assert_int_equal(st_open(&f, path, &e), 0);
        int64_t tokens[64], lens[8], greedy[16];
        assert_int_equal(st_to_i64(st_find(&f, "tokens"), tokens, &e), 0);
        assert_int_equal(st_to_i64(st_find(&f, "seq_lens"), lens, &e), 0);
        const st_tensor *g = st_find(&f, "greedy");
        assert_int_equal(st_to_i64(g, greedy, &e), 0);
        int prompt[64], out[16];
        for (int i = 0; i < lens[0]; i++) prompt[i] = (int)tokens[i];
        sample_seq q = {.prompt = prompt, .n_prompt = (int)lens[0], .seq_id = 0, .out = out};
        sample_gen_opts o = {.params = GREEDY, .seed = 1, .max_new = (int)g->numel};
        assert_int_equal(sample_generate(m, &q, 1, &o, &e), 0);
        assert_int_equal(q.n_out, g->numel);
        assert_int_equal(q.finish, ROLLOUT_LENGTH);
        for (int i = 0; i < q.n_out; i++) assert_int_equal(out[i], greedy[i]);
        st_close(&f);
        model_free(m);
    }
}

/* Five sequences (two prompts, several samples each), generated all together, one at a
 * time, and in reverse order in batches of two: the same tokens. */
static void test_samples_independent_of_batch(void **state) {
    (void)state;
    model *m = fixture_model("qwen2_tied");
    int p0[] = {5, 17, 33}, p1[] = {40, 2, 81, 9, 60, 11};
    enum { N = 5, MAX = 12 };
    int outs[3][N][MAX], lens[3][N];
    sample_gen_opts o = {.params = {1.0f, 0, 0.95f, 0.0f}, .seed = 77, .max_new = MAX};
    rlvr_err e;
    for (int run = 0; run < 3; run++) {
        sample_seq q[N];
        for (int i = 0; i < N; i++) {
            int id = run == 2 ? N - 1 - i : i; /* run 2: reversed */
            q[i] = (sample_seq){.prompt = id < 3 ? p0 : p1, .n_prompt = id < 3 ? 3 : 6, .seq_id = (uint64_t)id,
                                .out = outs[run][id]};
        }
        o.batch = run == 0 ? 0 : run == 1 ? 1 : 2;
        assert_int_equal(sample_generate(m, q, N, &o, &e), 0);
        for (int i = 0; i < N; i++) lens[run][run == 2 ? N - 1 - i : i] = q[i].n_out;
    }
    for (int run = 1; run < 3; run++)
        for (int i = 0; i < N; i++) {
            assert_int_equal(lens[run][i], lens[0][i]);
            assert_memory_equal(outs[run][i], outs[0][i], sizeof(int) * (size_t)lens[0][i]);
        }
    /* the same prompt under different sequence ids gives different samples */
    assert_memory_not_equal(outs[0][0], outs[0][1], sizeof(int) * MAX);
    model_free(m);
}

/* A stop id ends a sequence, kept as its last token, with finish "stop". */
static void test_stop_ids(void **state) {
    (void)state;
    model *m = fixture_model("llama_gqa");
    int prompt[] = {3, 4, 5}, out[8];
    sample_seq q = {.prompt = prompt, .n_prompt = 3, .out = out};
    sample_gen_opts o = {.params = GREEDY, .max_new = 8};
    rlvr_err e;
    assert_int_equal(sample_generate(m, &q, 1, &o, &e), 0);
    assert_int_equal(q.n_out, 8);
    int stop = out[2]; /* the third greedy token becomes a stop id */
    int first = 0;
    while (out[first] != stop) first++;
    o.stop_ids = &stop;
    o.n_stop = 1;
    assert_int_equal(sample_generate(m, &q, 1, &o, &e), 0);
    assert_int_equal(q.n_out, first + 1);
    assert_int_equal(out[first], stop);
    assert_int_equal(q.finish, ROLLOUT_STOP);
    o.max_new = 0;
    assert_int_equal(sample_generate(m, &q, 1, &o, &e), -1);
    model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_is_argmax),
        cmocka_unit_test(test_distributions),
        cmocka_unit_test(test_param_checks),
        cmocka_unit_test(test_generate_greedy_matches_transformers),
        cmocka_unit_test(test_samples_independent_of_batch),
        cmocka_unit_test(test_stop_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
