/* cmd_init.c - `rlvr init --out DIR [shape options]`: a randomly initialized model
 * directory (config.json + model.safetensors) that transformers and rlvr both load:
 * tiny from-scratch models and test models. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "model.h"

static const cli_opt INIT_OPTS[] = {
    {"out", "DIR", "the model directory to write (created; existing files in it are replaced)", 0},
    {"arch", "NAME", "llama, qwen2, qwen3 or mistral (default qwen2)", 0},
    {"hidden", "N", "hidden size (default 64)", 0},
    {"layers", "N", "transformer layers (default 2)", 0},
    {"heads", "N", "attention heads (default 4)", 0},
    {"kv-heads", "N", "key/value heads, dividing --heads (default 2)", 0},
    {"head-dim", "N", "per-head dimension (default hidden / heads)", 0},
    {"intermediate", "N", "MLP intermediate size (default 256)", 0},
    {"vocab", "N", "vocabulary size (default 256: byte-level)", 0},
    {"max-positions", "N", "context length (default 512)", 0},
    {"rope-theta", "X", "RoPE base (default 10000)", 0},
    {"untied", NULL, "a separate lm_head (default: tied to the embeddings)", 0},
    {"init-range", "X", "standard deviation of the random matrices (default 0.02)", 0},
    {"eos", "ID", "end-of-sequence token id written to config.json (default: none)", 0},
    {"seed", "N", "random seed (default 1)", 0},
};

typedef struct int_opt {
    const char *name;
    long long def, lo, hi;
    int *dst;
} int_opt;

static int init_run(const cli_args *a) {
    rlvr_err e = {{0}};
    const char *out = cli_get(a, "out");
    if (!out) {
        cmd_error("init: --out DIR is required");
        return EXIT_USAGE;
    }
    model_config c = {.arch = MODEL_QWEN2, .bos_token_id = -1, .eos_token_id = -1, .tie_embeddings = !cli_has(a, "untied")};
    const char *arch = cli_get(a, "arch");
    static const char *const names[] = {"llama", "qwen2", "qwen3", "mistral"};
    if (arch) {
        int k = 0;
        while (k < 4 && strcmp(arch, names[k]) != 0) k++;
        if (k == 4) {
            cmd_error("init: unknown --arch '%s' (llama, qwen2, qwen3 or mistral)", arch);
            return EXIT_USAGE;
        }
        c.arch = (model_arch)k;
    }
    int head_dim = 0;
    const int_opt ints[] = {
        {"hidden", 64, 2, 1 << 16, &c.hidden},          {"layers", 2, 1, 1024, &c.layers},
        {"heads", 4, 1, 1024, &c.heads},                {"kv-heads", 2, 1, 1024, &c.kv_heads},
        {"head-dim", 0, 0, 1 << 14, &head_dim},         {"intermediate", 256, 1, 1 << 20, &c.intermediate},
        {"vocab", 256, 1, 1 << 24, &c.vocab},           {"max-positions", 512, 1, 1 << 24, &c.max_positions},
        {"eos", -1, -1, 1 << 24, &c.eos_token_id},
    };
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        long long v;
        if (cli_int(a, ints[i].name, ints[i].def, &v, &e) != 0) {
            cmd_error("init: %s", e.msg);
            return EXIT_USAGE;
        }
        if (v < ints[i].lo || v > ints[i].hi) {
            cmd_error("init: --%s must be in [%lld, %lld], got %lld", ints[i].name, ints[i].lo, ints[i].hi, v);
            return EXIT_USAGE;
        }
        *ints[i].dst = (int)v;
    }
    if (c.eos_token_id >= c.vocab) {
        cmd_error("init: --eos %d is outside the vocabulary [0, %d)", c.eos_token_id, c.vocab);
        return EXIT_USAGE;
    }
    if (!head_dim && c.hidden % c.heads != 0) {
        cmd_error("init: --hidden %d is not a multiple of --heads %d (give --head-dim)", c.hidden, c.heads);
        return EXIT_USAGE;
    }
    c.head_dim = head_dim ? head_dim : c.hidden / c.heads;
    double theta, range;
    long long seed;
    if (cli_num(a, "rope-theta", 10000.0, &theta, &e) != 0 || cli_num(a, "init-range", 0.02, &range, &e) != 0 ||
        cli_int(a, "seed", 1, &seed, &e) != 0) {
        cmd_error("init: %s", e.msg);
        return EXIT_USAGE;
    }
    if (!(theta > 1.0) || !(range > 0.0) || seed < 0) {
        cmd_error("init: --rope-theta must be > 1, --init-range > 0 and --seed >= 0");
        return EXIT_USAGE;
    }
    c.rope_theta = (float)theta;
    c.init_range = (float)range;
    c.rms_eps = 1e-6f;
    c.qkv_bias = c.arch == MODEL_QWEN2;
    c.qk_norm = c.arch == MODEL_QWEN3;
    model *m = model_init(&c, (uint64_t)seed, &e);
    if (!m) {
        cmd_error("init: %s", e.msg);
        return EXIT_USAGE;
    }
    if (model_save(m, out, &e) != 0) {
        cmd_error("init: %s", e.msg);
        model_free(m);
        return EXIT_FAIL;
    }
    printf("wrote %s: %s, %zu parameters (%d layers, hidden %d, %d/%d heads of %d, vocab %d)\n", out, names[c.arch],
           m->n_params, c.layers, c.hidden, c.heads, c.kv_heads, c.head_dim, c.vocab);
    model_free(m);
    return EXIT_OK;
}

const command cmd_init = {
    .name = "init",
    .summary = "Create a randomly initialized model directory",
    .usage = "--out DIR [--arch qwen2] [--hidden 64] [--layers 2] [options]",
    .details = "Writes DIR/config.json and DIR/model.safetensors (fp32), loadable by rlvr and by\n"
               "transformers. Matrices are normal(0, --init-range), norms 1, biases 0; the same\n"
               "--seed gives the same weights.",
    .opts = INIT_OPTS,
    .n_opts = sizeof INIT_OPTS / sizeof *INIT_OPTS,
    .max_positional = 0,
    .run = init_run,
};
