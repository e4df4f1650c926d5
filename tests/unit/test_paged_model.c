/* test_paged_model.c - the rollout engine's host side end to end with real models (the
 * llama, qwen2 and qwen3 fixtures): the scheduler, fwd_batch, the block copies and
 * paged_model's forward, sampling each draw with sample_next keyed by (seed, sample,
 * position). Every sample's tokens and sampling log-probs must equal sample_generate's
 * (the CPU decoding loop over a contiguous cache) bit for bit: with the prompt shared by
 * G samples, prefill in chunks, and preemption in a pool barely larger than one sample.
 * BLAS is off: its kernels may sum in an order that depends on the matrix sizes. */
#include "testing.h"

#include "model_fixture.h"

#include "cpu_ops.h"
#include "fwd_batch.h"
#include "paged_model.h"
#include "sampling.h"
#include "scheduler.h"

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

/* The engine: groups of G through the scheduler and the paged forward. */
static sched_stats engine(model *m, const sample_gen_opts *o, const sched_opts *so, outputs *out) {
    rlvr_err e;
    scheduler *s = sched_new(so, &e);
    assert_non_null(s);
    for (int g = 0; g < N_GROUPS; g++) {
        sched_group sg = {PROMPTS[g], PROMPT_LEN[g], G, o->max_new, o->stop_ids, o->n_stop};
        assert_int_equal(sched_add_group(s, &sg, &e), g * G); /* sample index = group * G + j */
    }
    fwd_batch b;
    paged_model pm;
    sampler smp;
    assert_int_equal(fwd_batch_init(&b, so->max_running, so->max_tokens, sched_pages(s)->max_blocks, &e), 0);
    assert_int_equal(paged_model_init(&pm, m, so->n_blocks, so->block_size, so->max_tokens, so->max_len,
                                      so->max_running, &e),
                     0);
    assert_int_equal(sample_init(&smp, m->cfg.vocab, &e), 0);
    float *logits = malloc((size_t)so->max_running * m->cfg.vocab * sizeof *logits);
    int drawn[N_SAMPLES * G];
    sched_batch st;
    int r;
    while ((r = sched_step(s, &st, &e)) == 1) {
        assert_int_equal(fwd_batch_build(&b, &st, sched_pages(s), &e), 0);
        paged_model_copy(&pm, st.copies, st.n_copies);
        assert_int_equal(paged_model_forward(&pm, &b, logits, &e), 0);
        for (int d = 0; d < st.n_draws; d++) {
            const sched_draw *dr = &st.draws[d];
            float lp;
            drawn[d] = sample_next(&smp, logits + (size_t)d * m->cfg.vocab, &o->params, o->seed, (uint64_t)dr->sample,
                                   (uint64_t)dr->position, &lp);
            out->logp[dr->sample][dr->position - PROMPT_LEN[dr->sample / G]] = lp;
        }
        assert_int_equal(sched_commit(s, drawn, &e), 0);
    }
    assert_int_equal(r, 0);
    for (int i = 0; i < N_SAMPLES; i++) {
        int done;
        const int *toks = sched_output(s, i, &out->n[i], &done, NULL);
        assert_true(done);
        memcpy(out->tokens[i], toks, (size_t)out->n[i] * sizeof(int));
    }
    const sched_stats stats = sched_get_stats(s);
    assert_int_equal(kv_free_blocks(sched_pages(s)), so->n_blocks);
    free(logits);
    sample_free(&smp);
    paged_model_free(&pm);
    fwd_batch_free(&b);
    sched_free(s);
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
        /* a roomy pool: the prompts' blocks shared, their half-filled last blocks copied */
        sched_opts so = {.n_blocks = 64, .block_size = 4, .max_running = N_SAMPLES, .max_tokens = 64,
                         .max_len = 32, .watermark = 1};
        sched_stats st = engine(m, &o, &so, &out);
        expect_equal(&out, &ref);
        assert_true(st.copies > 0);
        /* prompts prefilled 3 tokens a step beside the decodes */
        so.max_tokens = 3;
        engine(m, &o, &so, &out);
        expect_equal(&out, &ref);
        /* a pool of 7 blocks (the longest sample needs (9 + 14 - 1) / 4 -> 6): preemption */
        so.max_tokens = 64, so.n_blocks = 7;
        st = engine(m, &o, &so, &out);
        expect_equal(&out, &ref);
        assert_true(st.preempted > 0);
        model_free(m);
    }
    cpu_set_blas(blas);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_equals_cpu_generation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
