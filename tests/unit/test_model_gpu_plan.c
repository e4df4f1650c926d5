/* test_model_gpu_plan.c - the GPU training model's memory plan, which is computed and
 * checked on the host before any device work, so it is tested everywhere (the GPU-side
 * model is tested in tests/gpu/test_model_gpu.c): the parameter count of a config agrees
 * with model_init's, a plan larger than free memory is refused with every size and the
 * remedies named, recomputation shrinks what is kept, and without a usable GPU
 * gpu_model_new fails with CUDA's reason instead of crashing. */
#include "kernels.h"
#include "model.h"
#include "model_gpu.h"
#include "testing.h"

#include "../gpu/model_shapes.h"

static void param_count_matches_model_init(void **state) {
    model_config cs[3] = {shape_config(MODEL_LLAMA, 300, 64, 2, 4, 2, 16, 96, 512),
                          shape_config(MODEL_QWEN2, 97, 48, 1, 6, 3, 8, 40, 512),
                          shape_config(MODEL_QWEN3, 128, 32, 3, 2, 1, 24, 64, 512)};
    cs[0].qkv_bias = cs[0].o_bias = 1;
    cs[1].qkv_bias = cs[1].tie_embeddings = 1;
    cs[2].qk_norm = cs[2].tie_embeddings = 1;
    for (int i = 0; i < 3; i++) {
        rlvr_err e = {{0}};
        model *m = model_init(&cs[i], 1, &e);
        assert_non_null(m);
        assert_int_equal(gpu_model_param_count(&cs[i]), m->n_params);
        model_free(m);
    }
    /* Qwen2.5-0.5B, the published count */
    model_config q = shape_config(MODEL_QWEN2, 151936, 896, 24, 14, 2, 64, 4864, 512);
    q.qkv_bias = q.tie_embeddings = 1;
    assert_int_equal(gpu_model_param_count(&q), 494032768);
}

static void plan_refuses_what_does_not_fit(void **state) {
    model_config q = shape_config(MODEL_QWEN2, 151936, 896, 24, 14, 2, 64, 4864, 512);
    q.qkv_bias = q.tie_embeddings = 1;
    gpu_model_opts o = {.dtype = KERN_BF16, .max_tokens = 16 * 4096, .max_seqs = 16, .train = 1};
    gpu_mem_plan p, pr;
    gpu_mem_plan_compute(&q, &o, &p);
    size_t n = 494032768;
    assert_int_equal(p.weights, n * 6); /* fp32 master + bf16 copy */
    assert_int_equal(p.grads, n * 4);
    assert_int_equal(p.optimizer, n * 8);
    assert_int_equal(p.total, p.weights + p.grads + p.optimizer + p.activations + p.workspace + p.headroom);
    size_t gib = (size_t)1 << 30;
    rlvr_err e = {{0}};
    assert_int_equal(gpu_mem_plan_check(&p, &o, 24 * gib, 80 * gib, &e), -1);
    assert_non_null(strstr(e.msg, "GPU memory plan needs"));
    assert_non_null(strstr(e.msg, "24.00 GiB of the device's 80.00 GiB is free"));
    assert_non_null(strstr(e.msg, "micro_batch_size"));
    assert_non_null(strstr(e.msg, "65536 tokens per micro-batch"));
    assert_non_null(strstr(e.msg, "train.recompute = true"));
    assert_int_equal(gpu_mem_plan_check(&p, &o, p.total, 80 * gib, &e), 0);
    /* recomputation keeps one layer's activations instead of 24 */
    o.recompute = 1;
    gpu_mem_plan_compute(&q, &o, &pr);
    assert_true(pr.activations * 8 < p.activations);
    assert_int_equal(pr.weights, p.weights);
    assert_int_equal(gpu_mem_plan_check(&pr, &o, 2 * gib, 80 * gib, &e), -1);
    assert_non_null(strstr(e.msg, "alone do not fit"));
    /* forward only (a frozen reference): bf16 weights and nothing else per parameter */
    o.train = 0;
    gpu_mem_plan_compute(&q, &o, &pr);
    assert_int_equal(pr.weights, n * 2);
    assert_int_equal(pr.grads + pr.optimizer, 0);
    char buf[1024];
    gpu_mem_plan_format(&p, buf, sizeof buf);
    assert_non_null(strstr(buf, "activations"));
    assert_non_null(strstr(buf, "494032768 parameters"));
}

static void no_device_is_a_clear_error(void **state) {
    rlvr_err e = {{0}};
    if (kern_device_count(&e) > 0) skip(); /* a machine with a GPU: tests/gpu covers it */
    model_config c = shape_config(MODEL_LLAMA, 64, 32, 1, 2, 1, 16, 48, 512);
    model *m = model_init(&c, 3, &e);
    assert_non_null(m);
    gpu_model_opts o = {.dtype = KERN_F32, .max_tokens = 64, .max_seqs = 2, .train = 1};
    memset(&e, 0, sizeof e);
    assert_null(gpu_model_new(m, &o, &e));
    assert_true(strstr(e.msg, "CUDA") != NULL);
    model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(param_count_matches_model_init),
        cmocka_unit_test(plan_refuses_what_does_not_fit),
        cmocka_unit_test(no_device_is_a_clear_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
