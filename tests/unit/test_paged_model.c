/* test_paged_model.c - the rollout engine (engine_generate: the scheduler, fwd_batch, the
 * block copies and paged_model's forward, each draw sampled with sample_next keyed by
 * (seed, the sample's seq_id, position)) end to end with real models (the llama, qwen2
 * and qwen3 fixtures). Every sample's tokens and sampling log-probs must equal sample_generate's
 * (the CPU decoding loop over a contiguous cache) bit for bit: with the prompt shared by
 * G samples, prefill in chunks, and preemption in a pool barely larger than one sample.
 * BLAS is off: its kernels may sum in an order that depends on the matrix sizes. */
#include "testing.h"

#include "model_fixture.h"

#include "cpu_ops.h"
#include "engine.h"
#include "sampling.h"

enum { N_GROUPS = 3, G = 4, MAX_NEW = 14, N_SAMPLES = N_GROUPS * G };

static const int PROMPTS[N_GROUPS][9] = {{5, 17, 33, 2, 61, 8, 40, 9, 12}, {40, 2, 81, 9, 60}, {7, 7, 30, 44, 1, 90}};
static const int PROMPT_LEN[N_GROUPS] = {9, 5, 6};

typedef struct outputs {
    int tokens[N_SAMPLES][MAX_NEW], n[N_SAMPLES];
    float logp[N_SAMPLES][MAX_NEW];
} outputs;

/* The CPU decoding loop: every sample a sequence of its own, sequence id = its index. */
static void reference(model *m, const sample_gen_opts *o, outputs *ref) {
    sample_seq q[N_SAMPLES];
    for (int i = 0; i < N_SAMPLES; i++)
        q[i] = (sample_seq){.prompt = PROMPTS[i / G], .n_prompt = PROMPT_LEN[i / G], .seq_id = (uint64_t)i,
                            .out = ref->tokens[i], .out_logp = ref->logp[i]};
    rlvr_err e;
    assert_int_equal(sample_generate(m, q, N_SAMPLES, o, &e), 0);
    for (int i = 0; i < N_SAMPLES; i++) ref->n[i] = q[i].n_out;
}

/* The engine (rollout/engine.h): groups of G through the scheduler and the paged forward. */
static sched_stats engine(model *m, const sample_gen_opts *o, const engine_opts *eo, outputs *out) {
    sample_seq q[N_SAMPLES];
    for (int i = 0; i < N_SAMPLES; i++)
        q[i] = (sample_seq){.prompt = PROMPTS[i / G], .n_prompt = PROMPT_LEN[i / G], .seq_id = (uint64_t)i,
                            .out = out->tokens[i], .out_logp = out->logp[i]};
    rlvr_err e;
    sched_stats stats;
    assert_int_equal(engine_generate(m, q, N_SAMPLES, o, eo, &stats, &e), 0);
    for (int i = 0; i < N_SAMPLES; i++) out->n[i] = q[i].n_out;
    return stats;
}

static void expect_equal(const outputs *a, const outputs *b) {
    for (int i = 0; i < N_SAMPLES; i++) {
        assert_int_equal(a->n[i], b->n[i]);
        assert_memory_equal(a->tokens[i], b->tokens[i], (size_t)a->n[i] * sizeof(int));
        assert_memory_equal(a->logp[i], b->logp[i], (size_t)a->n[i] * sizeof(float));
    }
}

static void test_engine_equals_cpu_generation(void **state) {
    (void)state;
    const char *names[] = {"llama_gqa", "qwen2_tied", "qwen3"};
    const int blas = cpu_blas_enabled();
    cpu_set_blas(0);
    for (int k = 0; k < 3; k++) {
        model *m = fixture_model(names[k]);
        const int stop = 3;
        const sample_gen_opts o = {.params = {0.9f, 0, 0.95f, 0.0f}, .seed = 11, .max_new = MAX_NEW, .stop_ids = &stop,
                                   .n_stop = 1};
        outputs ref, out;
        reference(m, &o, &ref);
        /* the engine's own pool sizing: nothing preempted, the prompts' blocks shared */
        sched_stats st = engine(m, &o, NULL, &out);
        expect_equal(&out, &ref);
        assert_int_equal(st.preempted, 0);
        /* a roomy pool of small blocks: the prompts' half-filled last blocks copied */
        engine_opts eo = {.block_size = 4, .n_blocks = 64, .max_tokens = 64, .watermark = 1};
        st = engine(m, &o, &eo, &out);
        expect_equal(&out, &ref);
        assert_true(st.copies > 0);
        /* prompts prefilled 3 tokens a step beside the decodes */
        eo.max_tokens = 3;
        engine(m, &o, &eo, &out);
        expect_equal(&out, &ref);
        /* a pool of 7 blocks (the longest sample needs (9 + 14 - 1) / 4 -> 6): preemption */
        eo.max_tokens = 64, eo.n_blocks = 7;
        st = engine(m, &o, &eo, &out);
        expect_equal(&out, &ref);
        assert_true(st.preempted > 0);
        model_free(m);
    }
    cpu_set_blas(blas);
}

/* Groups are runs of consecutive equal prompts, compared by content (a prompt seen again
 * later is a group of its own); sequence ids key the draws, not the order. Bad input is
 * refused before any work. */
static void test_engine_groups_and_errors(void **state) {
    (void)state;
    const int blas = cpu_blas_enabled();
    cpu_set_blas(0);
    model *m = fixture_model("qwen2_tied");
    const sample_gen_opts o = {.params = {1.0f, 0, 1.0f, 0.0f}, .seed = 5, .max_new = 6};
    enum { N = 6 };
    int copy[5] = {40, 2, 81, 9, 60}; /* equal to PROMPTS[1] at another address */
    const int *prompt[N] = {PROMPTS[1], copy, PROMPTS[2], PROMPTS[2], PROMPTS[1], PROMPTS[1]};
    const int len[N] = {5, 5, 6, 6, 5, 5};
    int out[3][N][6], n_out[3][N];
    float lp[3][N][6];
    for (int run = 0; run < 3; run++) { /* sample_generate; the engine; the engine one sample at a time */
        sample_seq q[N];
        for (int i = 0; i < N; i++)
            q[i] = (sample_seq){.prompt = prompt[i], .n_prompt = len[i], .seq_id = (uint64_t)(100 + 7 * i),
                                .out = out[run][i], .out_logp = lp[run][i]};
        rlvr_err e;
        sched_stats st;
        sample_gen_opts one = o;
        one.batch = 1; /* raised to the largest group (2): a group's samples start together */
        if (run == 0) assert_int_equal(sample_generate(m, q, N, &o, &e), 0);
        else assert_int_equal(engine_generate(m, q, N, run == 1 ? &o : &one, NULL, &st, &e), 0);
        for (int i = 0; i < N; i++) n_out[run][i] = q[i].n_out;
    }
    for (int run = 1; run < 3; run++)
        for (int i = 0; i < N; i++) {
            assert_int_equal(n_out[0][i], n_out[run][i]);
            assert_memory_equal(out[0][i], out[run][i], (size_t)n_out[0][i] * sizeof(int));
            assert_memory_equal(lp[0][i], lp[run][i], (size_t)n_out[0][i] * sizeof(float));
        }
    int toks[6];
    sample_seq bad = {.prompt = copy, .n_prompt = 0, .out = toks};
    rlvr_err e;
    assert_int_equal(engine_generate(m, &bad, 1, &o, NULL, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "empty prompt"));
    bad.n_prompt = 5;
    sample_gen_opts none = o;
    none.max_new = 0;
    assert_int_equal(engine_generate(m, &bad, 1, &none, NULL, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "max_new_tokens"));
    assert_int_equal(engine_generate(m, &bad, 0, &o, NULL, NULL, &e), -1);
    model_free(m);
    cpu_set_blas(blas);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_equals_cpu_generation),
        cmocka_unit_test(test_engine_groups_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
