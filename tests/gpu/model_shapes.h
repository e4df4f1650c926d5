/* model_shapes.h - a model_config of a given architecture and shape with the defaults the
 * GPU model's tests use (RoPE theta 10000, eps 1e-6, init range 0.02, no bos/eos), for
 * tests/gpu/test_model_gpu.c, test_engine_gpu.c and tests/unit/test_model_gpu_plan.c, and
 * random weights for such a config. */
#ifndef RLVR_TEST_MODEL_SHAPES_H
#define RLVR_TEST_MODEL_SHAPES_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "rng.h"

static inline model_config shape_config(model_arch arch, int V, int C, int L, int H, int KV, int D, int I,
                                        int max_positions) {
    model_config c = {0};
    c.arch = arch;
    c.vocab = V;
    c.hidden = C;
    c.layers = L;
    c.heads = H;
    c.kv_heads = KV;
    c.head_dim = D;
    c.intermediate = I;
    c.max_positions = max_positions;
    c.rope_theta = 10000.0f;
    c.rms_eps = 1e-6f;
    c.init_range = 0.02f;
    c.bos_token_id = c.eos_token_id = -1;
    return c;
}

/* Random parameters: matrices normal with std 1/sqrt(fan-in) (the embedding 2.5/sqrt(C),
 * so that a tied head's logits have a standard deviation near 2.5, not sqrt(C)),
 * norm weights 1 + 0.1 normal, biases 0.1 normal. */
static inline model *random_model(const model_config *c, uint64_t seed) {
    rlvr_err e = {{0}};
    model *m = model_init(c, seed, &e);
    if (!m) {
        fprintf(stderr, "model_init: %s\n", e.msg);
        exit(1);
    }
    for (int i = 0; i < m->n_table; i++) {
        model_param *p = &m->table[i];
        rng_stream r;
        rng_stream_init(&r, seed + 77, (uint64_t)i);
        int is_norm = strstr(p->name, "norm") != NULL, is_bias = strstr(p->name, ".bias") != NULL;
        int is_embed = strcmp(p->name, "model.embed_tokens.weight") == 0;
        float std = is_norm || is_bias ? 0.1f : is_embed ? 2.5f / sqrtf((float)c->hidden) : 1.0f / sqrtf((float)p->shape[1]);
        for (size_t k = 0; k < p->numel; k++) p->data[k] = (is_norm ? 1.0f : 0.0f) + std * rng_stream_normal(&r);
    }
    return m;
}

#endif
