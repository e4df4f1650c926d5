/* bench_models.h - the model shapes the GPU benchmarks run: Qwen2.5-0.5B and -1.5B
 * (the configs of the Hugging Face checkpoints), with cheap random weights. */
#ifndef RLVR_BENCH_MODELS_H
#define RLVR_BENCH_MODELS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* The config of Qwen2.5-<name> (name "0.5b" or "1.5b"); anything else ends the program
 * with "prog: --model must be 0.5b or 1.5b". */
static inline model_config bench_qwen25(const char *prog, const char *name) {
    model_config c = {0};
    c.arch = MODEL_QWEN2;
    c.vocab = 151936;
    c.max_positions = 32768;
    c.rope_theta = 1000000.0f;
    c.rms_eps = 1e-6f;
    c.init_range = 0.02f;
    c.tie_embeddings = 1;
    c.qkv_bias = 1;
    c.bos_token_id = -1;
    c.eos_token_id = 151643;
    if (strcmp(name, "0.5b") == 0) {
        c.hidden = 896, c.layers = 24, c.heads = 14, c.kv_heads = 2, c.intermediate = 4864;
    } else if (strcmp(name, "1.5b") == 0) {
        c.hidden = 1536, c.layers = 28, c.heads = 12, c.kv_heads = 2, c.intermediate = 8960;
    } else {
        fprintf(stderr, "%s: --model must be 0.5b or 1.5b\n", prog);
        exit(2);
    }
    c.head_dim = c.hidden / c.heads;
    return c;
}

/* Cheap random weights (a 64-bit LCG, uniform with std init_range): normal draws for
 * 1.5 billion parameters would take longer than the benchmark. Norms 1, biases 0. */
static inline void bench_fill_weights(model *m) {
    uint64_t s = 0x9e3779b97f4a7c15ull;
    float a = m->cfg.init_range * sqrtf(3.0f);
    for (int i = 0; i < m->n_table; i++) {
        model_param *p = &m->table[i];
        int is_norm = strstr(p->name, "norm") != NULL, is_bias = strstr(p->name, ".bias") != NULL;
        for (size_t k = 0; k < p->numel; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            float u = (float)(s >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
            p->data[k] = is_norm ? 1.0f : is_bias ? 0.0f : a * (2.0f * u - 1.0f);
        }
    }
}

#endif
