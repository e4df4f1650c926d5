/* cmd_init.c - `rlvr init --out DIR [shape options] [--tokenizer byte|PATH]`: a randomly
 * initialized model directory (config.json + model.safetensors, and a tokenizer) that
 * transformers and rlvr both load: tiny from-scratch models and test models. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "model.h"
#include "tokenizer.h"
#include "util.h"

static const cli_opt INIT_OPTS[] = {
    {"out", "DIR", "the model directory to write (created; existing files in it are replaced)", 0},
    {"arch", "NAME", "llama, qwen2, qwen3 or mistral (default qwen2)", 0},
    {"hidden", "N", "hidden size (default 64)", 0},
    {"layers", "N", "transformer layers (default 2)", 0},
    {"heads", "N", "attention heads (default 4)", 0},
    {"kv-heads", "N", "key/value heads, dividing --heads (default 2)", 0},
    {"head-dim", "N", "per-head dimension (default hidden / heads)", 0},
    {"intermediate", "N", "MLP intermediate size (default 256)", 0},
    {"vocab", "N", "vocabulary size (default: the tokenizer's; 256 without --tokenizer)", 0},
    {"max-positions", "N", "context length (default 512)", 0},
    {"rope-theta", "X", "RoPE base (default 10000)", 0},
    {"untied", NULL, "a separate lm_head (default: tied to the embeddings)", 0},
    {"init-range", "X", "standard deviation of the random matrices (default 0.02)", 0},
    {"eos", "ID", "end-of-sequence token id written to config.json (default: the tokenizer's eos, else none)", 0},
    {"tokenizer", "byte|PATH", "write the byte-level tokenizer, or copy the one at PATH (tokenizer.json or a model directory)", 0},
    {"seed", "N", "random seed (default 1)", 0},
};

/* Removes dir/name when it exists: a file of an earlier tokenizer left beside the new one would
 * be read with it (chat_template.jinja overrides tokenizer_config.json's template). */
static int remove_stale(const char *dir, const char *name, rlvr_err *e) {
    char *path = util_path_join(dir, name);
    if (!path) return err_set(e, "out of memory");
    int rc = unlink(path) != 0 && errno != ENOENT ? err_set(e, "%s: cannot remove: %s", path, strerror(errno)) : 0;
    free(path);
    return rc;
}

/* Copies the file `from` to dir/name atomically; a missing source is an error when `required`,
 * else the destination is removed (so no file of an earlier tokenizer stays). */
static int copy_file(const char *from, const char *dir, const char *name, int required, rlvr_err *e) {
    if (!from) return err_set(e, "out of memory");
    if (!required && !util_is_file(from)) return remove_stale(dir, name, e);
    char *to = util_path_join(dir, name);
    size_t len;
    char *data = to ? util_read_file(from, &len, e) : NULL;
    int rc = !to ? err_set(e, "out of memory") : data ? util_write_file_atomic(to, data, len, e) : -1;
    free(data);
    free(to);
    return rc;
}

/* Writes the tokenizer --tokenizer names into the model directory `out`: the byte-level one, or
 * copies of the files tok_load reads (tokenizer.json, and tokenizer_config.json and
 * chat_template.jinja beside it). */
static int write_tokenizer(const char *spec, const char *out, rlvr_err *e) {
    if (strcmp(spec, "byte") == 0)
        return remove_stale(out, "chat_template.jinja", e) != 0 ? -1 : tok_write_byte_level(out, e);
    int is_dir = util_is_dir(spec);
    char *dir = is_dir ? util_strdup(spec) : util_dirname(spec);
    char *json = is_dir ? util_path_join(spec, "tokenizer.json") : util_strdup(spec);
    char *cfg = dir ? util_path_join(dir, "tokenizer_config.json") : NULL;
    char *jinja = dir ? util_path_join(dir, "chat_template.jinja") : NULL;
    int rc = copy_file(json, out, "tokenizer.json", 1, e);
    if (rc == 0) rc = copy_file(cfg, out, "tokenizer_config.json", 0, e);
    if (rc == 0) rc = copy_file(jinja, out, "chat_template.jinja", 0, e);
    free(dir);
    free(json);
    free(cfg);
    free(jinja);
    return rc;
}

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
    /* The tokenizer sets the defaults of --vocab and --eos. */
    const char *tok_spec = cli_get(a, "tokenizer");
    long long def_vocab = 256, def_eos = -1;
    int32_t tok_vocab = 0;
    if (tok_spec && strcmp(tok_spec, "byte") == 0) {
        tok_vocab = TOK_BYTE_VOCAB;
        def_vocab = TOK_BYTE_VOCAB;
        def_eos = TOK_BYTE_EOS;
    } else if (tok_spec) {
        tok_tokenizer *t = tok_load(tok_spec, &e);
        if (!t) {
            cmd_error("init: --tokenizer: %s", e.msg);
            return EXIT_USAGE;
        }
        tok_vocab = tok_vocab_size(t);
        def_vocab = tok_vocab;
        def_eos = tok_eos_id(t);
        tok_free(t);
    }
    int head_dim = 0;
    const int_opt ints[] = {
        {"hidden", 64, 2, 1 << 16, &c.hidden},          {"layers", 2, 1, 1024, &c.layers},
        {"heads", 4, 1, 1024, &c.heads},                {"kv-heads", 2, 1, 1024, &c.kv_heads},
        {"head-dim", 0, 0, 1 << 14, &head_dim},         {"intermediate", 256, 1, 1 << 20, &c.intermediate},
        {"vocab", def_vocab, 1, 1 << 24, &c.vocab},           {"max-positions", 512, 1, 1 << 24, &c.max_positions},
        {"eos", def_eos, -1, 1 << 24, &c.eos_token_id},
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
    if (c.vocab < tok_vocab) {
        cmd_error("init: --vocab %d is smaller than the tokenizer's vocabulary (%d tokens)", c.vocab, (int)tok_vocab);
        return EXIT_USAGE;
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
    if (model_save(m, out, &e) != 0 || (tok_spec && write_tokenizer(tok_spec, out, &e) != 0)) {
        cmd_error("init: %s", e.msg);
        model_free(m);
        return EXIT_FAIL;
    }
    printf("wrote %s: %s, %zu parameters (%d layers, hidden %d, %d/%d heads of %d, vocab %d)%s%s\n", out,
           names[c.arch], m->n_params, c.layers, c.hidden, c.heads, c.kv_heads, c.head_dim, c.vocab,
           tok_spec ? ", tokenizer " : "", tok_spec ? tok_spec : "");
    model_free(m);
    return EXIT_OK;
}

const command cmd_init = {
    .name = "init",
    .summary = "Create a randomly initialized model directory",
    .usage = "--out DIR [--arch qwen2] [--hidden 64] [--layers 2] [--tokenizer byte|PATH] [options]",
    .details = "Writes DIR/config.json and DIR/model.safetensors (fp32), loadable by rlvr and by\n"
               "transformers. Matrices are normal(0, --init-range), norms 1, biases 0; the same\n"
               "--seed gives the same weights.\n"
               "--tokenizer byte writes a byte-level tokenizer (ids 0-255 are the bytes,\n"
               "<|endoftext|> 256, <|im_start|> 257, <|im_end|> 258; ChatML chat template) and\n"
               "makes --vocab default to 259 and --eos to 258. --tokenizer PATH copies\n"
               "tokenizer.json, tokenizer_config.json and chat_template.jinja (when present) from\n"
               "PATH (a tokenizer.json or a model directory); --vocab defaults to its vocabulary\n"
               "size and --eos to its eos token. --vocab may exceed the tokenizer's vocabulary,\n"
               "never fall short of it.",
    .opts = INIT_OPTS,
    .n_opts = sizeof INIT_OPTS / sizeof *INIT_OPTS,
    .max_positional = 0,
    .run = init_run,
};
