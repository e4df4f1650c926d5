/* model_shapes.h - a model_config of a given architecture and shape with the defaults the
 * GPU model's tests use (RoPE theta 10000, eps 1e-6, init range 0.02, no bos/eos), for
 * tests/gpu/test_model_gpu.c and tests/unit/test_model_gpu_plan.c. */
#ifndef RLVR_TEST_MODEL_SHAPES_H
#define RLVR_TEST_MODEL_SHAPES_H

#include "model.h"

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

#endif
