/* test_engine_gpu.c - the rollout engine with its forward on the GPU (engine_opts.gpu:
 * gpu_paged over the gpu_model's weights, kernels/model_gpu_paged.c) against the same
 * engine on the CPU (paged_model), on random llama-, qwen2- and qwen3-shaped models:
 * 3 prompts x 4 samples sharing each prompt's KV blocks, 12 new tokens, greedy, at
 * temperature 1, and at temperature 0.7 with top-k, top-p and min-p, in fp32. The GPU
 * engine samples on the device (kern_sample), the CPU engine with sample_next; its decode
 * steps replay CUDA graphs (each one, padded from 12 rows to 16), and with the graphs off
 * it samples the same tokens. The logits
 * of the two forwards differ by float rounding only (cuBLASLt's and the CPU's sums run in
 * other orders), so every sampled token must be the same and every sampling
 * log-probability within 1e-4. Then the weights change on the GPU
 * side alone (gpu_model_upload of perturbed weights, as an optimizer step would write
 * them) and the GPU engine must follow the new weights with no other call. A gpu_model
 * of another shape is refused, and so is a KV pool larger than the device's free memory,
 * by its sizes, before any allocation. The same samples scheduled one group at a time,
 * and interleaved so that no prompt is shared, must give the same tokens and log-probs
 * within 1e-4 (the printout says whether bit for bit). Without a device it skips; tests/CMakeLists.txt also builds
 * it against the host emulation of the kernels (test_engine_gpu_host). */
#include "engine.h"
#include "gpu_test.h"
#include "model_gpu.h"
#include "model_shapes.h"

enum { N_GROUPS = 3, G = 4, MAX_NEW = 12, N = N_GROUPS * G };

static const int PROMPTS[N_GROUPS][9] = {{5, 17, 33, 2, 61, 8, 40, 9, 12}, {40, 2, 81, 9, 60}, {7, 7, 30, 44, 1, 90}};
static const int PROMPT_LEN[N_GROUPS] = {9, 5, 6};

/* greedy; the plain softmax; temperature with every filter (top-k 40 alone cuts every row
 * of these vocabularies) */
static const sample_params GREEDY = {0.0f, 0, 1.0f, 0.0f}, PLAIN = {1.0f, 0, 1.0f, 0.0f},
                           FILTERED = {0.7f, 40, 0.9f, 0.02f};

typedef struct outputs {
    int tokens[N][MAX_NEW], n[N];
    float logp[N][MAX_NEW];
    long long graph_steps;
} outputs;

/* How the 12 samples are scheduled: all together, sharing each prompt's blocks; one group
 * of 4 at a time (o.batch = G); or interleaved so that no two neighbours share a prompt,
 * which makes every sample a group of its own (no prefix sharing: 12 prefills). */
enum layout { TOGETHER, BY_GROUP, UNSHARED };

/* 0 when it ran; else the error is in e. Sample i (seq_id i) always lands in out row i. */
static int generate_as(model *m, gpu_model *g, sample_params sp, int eager, enum layout lay, outputs *out,
                       rlvr_err *e) {
    sample_seq q[N];
    for (int k = 0; k < N; k++) {
        const int i = lay == UNSHARED ? (k % N_GROUPS) * G + k / N_GROUPS : k;
        q[k] = (sample_seq){.prompt = PROMPTS[i / G], .n_prompt = PROMPT_LEN[i / G], .seq_id = (uint64_t)i,
                            .out = out->tokens[i], .out_logp = out->logp[i]};
    }
    sample_gen_opts o = {.params = sp, .seed = 42, .max_new = MAX_NEW, .batch = lay == BY_GROUP ? G : 0};
    engine_opts eo = {.gpu = g, .eager = eager, .graph_steps = &out->graph_steps};
    if (engine_generate(m, q, N, &o, g ? &eo : NULL, NULL, e) != 0) return -1;
    for (int k = 0; k < N; k++) out->n[q[k].seq_id] = q[k].n_out;
    return 0;
}

static int generate(model *m, gpu_model *g, sample_params sp, int eager, outputs *out, rlvr_err *e) {
    return generate_as(m, g, sp, eager, TOGETHER, out, e);
}

/* The same samples scheduled another way: the same tokens, log-probs within `tol` (the
 * engine's own kernels are batch-invariant; cuBLASLt may pick another algorithm for
 * another number of rows). */
static void check_layout(const char *what, model *m, gpu_model *g, sample_params sp, const outputs *ref,
                         enum layout lay, double tol) {
    rlvr_err e = {{0}};
    outputs o;
    const char *name = lay == BY_GROUP ? "one group at a time" : "no prefix sharing";
    CHECK(generate_as(m, g, sp, 0, lay, &o, &e) == 0, "%s, %s: %s", what, name, e.msg);
    if (gpu_failures) return;
    double max_dlp = 0;
    int same_bits = 1;
    for (int i = 0; i < N; i++) {
        CHECK(o.n[i] == ref->n[i] && !memcmp(o.tokens[i], ref->tokens[i], (size_t)ref->n[i] * sizeof(int)),
              "%s, %s: sample %d's tokens differ from all 12 decoding together", what, name, i);
        for (int k = 0; k < o.n[i] && k < ref->n[i]; k++) {
            const double d = fabs((double)o.logp[i][k] - ref->logp[i][k]);
            if (!(d <= max_dlp)) max_dlp = isnan(d) ? INFINITY : d;
            same_bits = same_bits && !memcmp(&o.logp[i][k], &ref->logp[i][k], sizeof(float));
        }
    }
    CHECK(max_dlp <= tol, "%s, %s: log-probs differ by %.3g", what, name, max_dlp);
    printf("%-28s %-20s tokens equal, log-probs %s (max |dlogp| %.3g)\n", what, name,
           same_bits ? "bit for bit" : "within tolerance", max_dlp);
}

/* The GPU engine's outputs go to *gpu_out (may be NULL). */
static void compare(const char *what, model *m, gpu_model *g, sample_params sp, outputs *gpu_out) {
    rlvr_err e = {{0}};
    outputs cpu, gpu, eager;
    CHECK(generate(m, NULL, sp, 0, &cpu, &e) == 0, "%s: CPU engine: %s", what, e.msg);
    CHECK(generate(m, g, sp, 0, &gpu, &e) == 0, "%s: GPU engine: %s", what, e.msg);
    CHECK(generate(m, g, sp, 1, &eager, &e) == 0, "%s: GPU engine, no graphs: %s", what, e.msg);
    if (gpu_failures) return;
    /* every decode step from a graph (12 samples padded to 16 rows) where the build has them */
    CHECK(eager.graph_steps == 0 && gpu.graph_steps == (kern_graphs_supported() ? MAX_NEW - 1 : 0),
          "%s: %lld and %lld decode steps from graphs", what, gpu.graph_steps, eager.graph_steps);
    for (int i = 0; i < N; i++)
        CHECK(eager.n[i] == gpu.n[i] && !memcmp(eager.tokens[i], gpu.tokens[i], (size_t)gpu.n[i] * sizeof(int)),
              "%s: sample %d: the graphs' tokens differ from the direct launches'", what, i);
    int same = 0, total = 0;
    double max_dlp = 0;
    for (int i = 0; i < N; i++) {
        CHECK(gpu.n[i] == cpu.n[i], "%s: sample %d has %d tokens, the CPU's %d", what, i, gpu.n[i], cpu.n[i]);
        for (int k = 0; k < cpu.n[i] && k < gpu.n[i]; k++) {
            total++;
            if (gpu.tokens[i][k] != cpu.tokens[i][k]) {
                CHECK(0, "%s: sample %d token %d is %d, the CPU's %d", what, i, k, gpu.tokens[i][k], cpu.tokens[i][k]);
                break;
            }
            same++;
            double d = fabs((double)gpu.logp[i][k] - cpu.logp[i][k]);
            if (!(d <= max_dlp)) max_dlp = isnan(d) ? INFINITY : d; /* NaN counts as the worst */
            CHECK(isfinite(cpu.logp[i][k]), "%s: sample %d token %d: log-prob %g", what, i, k, cpu.logp[i][k]);
        }
    }
    CHECK(max_dlp <= 1e-4, "%s: sampling log-probs differ by %.3g", what, max_dlp);
    printf("%-28s T=%-3g top-k %-2d top-p %-3g min-p %-4g tokens equal %d of %d, max |dlogp| %.3g\n", what,
           sp.temperature, sp.top_k, sp.top_p, sp.min_p, same, total, max_dlp);
    check_layout(what, m, g, sp, &gpu, BY_GROUP, 1e-4);
    check_layout(what, m, g, sp, &gpu, UNSHARED, 1e-4);
    if (gpu_out) *gpu_out = gpu;
}

static int differ(const outputs *a, const outputs *b) {
    for (int i = 0; i < N; i++)
        if (a->n[i] != b->n[i] || memcmp(a->tokens[i], b->tokens[i], (size_t)a->n[i] * sizeof(int)) != 0) return 1;
    return 0;
}

static gpu_model *gpu_for(const model *m, rlvr_err *e) {
    gpu_model_opts o = {.dtype = KERN_F32, .max_tokens = 64, .max_seqs = 4, .train = 0};
    return gpu_model_new(m, &o, e);
}

int main(void) {
    gpu_test_require_device();
    model_config cfgs[3] = {shape_config(MODEL_LLAMA, 512, 256, 2, 4, 2, 64, 512, 4096),
                            shape_config(MODEL_QWEN2, 397, 192, 2, 6, 2, 32, 320, 4096),
                            shape_config(MODEL_QWEN3, 1000, 256, 3, 2, 1, 128, 384, 4096)};
    const char *names[3] = {"llama (biases, GQA)", "qwen2 (tied, qkv bias)", "qwen3 (qk norm, tied)"};
    cfgs[0].qkv_bias = cfgs[0].o_bias = 1;
    cfgs[1].qkv_bias = cfgs[1].tie_embeddings = 1;
    cfgs[2].qk_norm = cfgs[2].tie_embeddings = 1;
    for (int s = 0; s < 3; s++) {
        rlvr_err e = {{0}};
        model *m = random_model(&cfgs[s], 100 + (uint64_t)s);
        gpu_model *g = gpu_for(m, &e);
        CHECK(g != NULL, "%s: %s", names[s], e.msg);
        if (!g) {
            model_free(m);
            continue;
        }
        outputs before, after;
        compare(names[s], m, g, GREEDY, NULL);
        compare(names[s], m, g, FILTERED, NULL);
        compare(names[s], m, g, PLAIN, &before);
        /* new weights on the device only, then on the host for the CPU reference */
        for (size_t i = 0; i < m->n_params; i++) m->params[i] *= 1.0f + 0.25f * ((float)(i % 7) - 3.0f) / 3.0f;
        CHECK(gpu_model_upload(g, m, &e) == 0, "%s", e.msg);
        char what[96];
        snprintf(what, sizeof what, "%.6s, new weights", names[s]);
        compare(what, m, g, PLAIN, &after);
        CHECK(differ(&before, &after), "%s: the GPU engine's samples did not change with the weights", names[s]);
        gpu_model_free(g);
        model_free(m);
    }
    /* a gpu_model of another shape */
    rlvr_err e = {{0}};
    model *a = random_model(&cfgs[0], 1), *b = random_model(&cfgs[1], 2);
    gpu_model *gb = gpu_for(b, &e);
    CHECK(gb != NULL, "%s", e.msg);
    if (gb) {
        outputs out;
        CHECK(generate(a, gb, GREEDY, 0, &out, &e) == -1 && strstr(e.msg, "parameters"),
              "a GPU model of another shape: %s", e.msg);
        /* 2^26 blocks of 16 positions: a terabyte of K/V */
        gpu_paged *big = gpu_paged_new(gb, 1 << 26, 16, 64, 8, 4, 8, &e);
        CHECK(!big && strstr(e.msg, "KV pool (67108864 blocks of 16 positions)") && strstr(e.msg, "free"),
              "an oversized pool: %s", big ? "accepted" : e.msg);
        gpu_paged_free(big);
        gpu_model_free(gb);
    }
    model_free(a);
    model_free(b);
    return gpu_test_finish();
}
