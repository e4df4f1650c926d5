/* test_model_gpu.c - the GPU training model (kernels/model_gpu.h) against the CPU
 * reference (model_forward + model_logprobs + model_backward in core/model.c) on random
 * models of four shapes, each over packed sequences of different lengths:
 *   llama   GQA (4 heads, 2 kv), head_dim 64, q/k/v and o biases, untied head
 *   qwen2   qkv bias, tied embeddings, head_dim 32, odd vocabulary
 *   qwen3   per-head q/k RMSNorm, tied, head_dim 128, one kv head, 3 layers
 *   odd     multi-head (5 = 5), head_dim 24, hidden 120, 33 sequences (> 2048 tokens:
 *           the LM head's row blocks)
 * Every parameter is random (norm weights 1 + noise, biases nonzero), so a weight or
 * gradient read from the wrong place shows.
 *
 * Tolerances (the GPU sums in other orders than the CPU; errors are measured against
 * the size of what is compared, and printed on every run):
 *   fp32  log-probs and entropies: |diff| <= 1e-4 + 1e-4 |want| per token and 1e-5 on
 *         average; each parameter's gradient: |diff| <= 1e-3 scale per element and
 *         ||diff|| <= 1e-4 ||want|| over the tensor (scale: check_grads).
 *   bf16  (activations and weights rounded to bf16 at every step): log-probs and
 *         entropies |diff| <= 0.25 + 0.05 |want| per token and 0.08 on average;
 *         gradients ||diff|| <= 0.1 ||want|| and |diff| <= 0.5 scale per element. bf16's
 *         rounding through these random models, emulated on the host
 *         (tests/host_gpu), gave up to 0.12 per token (entropy, qwen3), 0.03 on average and
 *         0.04 relative L2 for gradients; the bounds leave room for the tensor cores'
 *         extra roundings (P and dS in bf16). Each run prints the errors it saw.
 * Exact: recomputation on == off, and two runs, bit for bit (bf16 and fp32); AdamW and
 * clipping on the GPU against rl_adamw_step / rl_clip_grad_norm from the same gradients
 * within 1e-6 relative (the kernels follow the CPU's operation order); after an AdamW
 * step the bf16 working copy equals a fresh upload of the downloaded fp32 weights (the
 * forward of both gives the same bits). The memory plan: a plan larger than free memory
 * is refused with a message that names the sizes, before any device is touched. */
#include "cpu_ops.h"
#include "gpu_test.h"
#include "model.h"
#include "model_gpu.h"
#include "optim.h"
#include "model_shapes.h"
#include "rng.h"

typedef struct shape {
    const char *name;
    model_config cfg;
    int n_seqs;
    int lens[40];
} shape;

static shape shapes[4];

static void make_shapes(void) {
    shapes[0] = (shape){"llama", shape_config(MODEL_LLAMA, 512, 256, 2, 4, 2, 64, 512, 4096), 5, {37, 1, 64, 5, 90}};
    shapes[0].cfg.qkv_bias = shapes[0].cfg.o_bias = 1;
    shapes[1] = (shape){"qwen2", shape_config(MODEL_QWEN2, 397, 192, 2, 6, 2, 32, 320, 4096), 4, {13, 71, 2, 40}};
    shapes[1].cfg.qkv_bias = 1;
    shapes[1].cfg.tie_embeddings = 1;
    shapes[2] = (shape){"qwen3", shape_config(MODEL_QWEN3, 1000, 256, 3, 2, 1, 128, 384, 4096), 3, {50, 129, 7}};
    shapes[2].cfg.qk_norm = 1;
    shapes[2].cfg.tie_embeddings = 1;
    shapes[3] = (shape){"odd", shape_config(MODEL_LLAMA, 257, 120, 1, 5, 5, 24, 200, 4096), 33, {0}};
    for (int i = 0; i < 33; i++) shapes[3].lens[i] = 50 + (i * 37) % 31; /* 50..80: 2,107 tokens in all */
}


typedef struct batch {
    int n_seqs, T, max_len;
    const int *lens;
    int *tokens, *targets;
    float *dlogp, *dent;
} batch;

static void make_batch(batch *b, const shape *s, uint64_t seed) {
    b->n_seqs = s->n_seqs;
    b->lens = s->lens;
    b->T = b->max_len = 0;
    for (int i = 0; i < s->n_seqs; i++) {
        b->T += s->lens[i];
        if (s->lens[i] > b->max_len) b->max_len = s->lens[i];
    }
    b->tokens = malloc((size_t)b->T * sizeof(int));
    b->targets = malloc((size_t)b->T * sizeof(int));
    b->dlogp = malloc((size_t)b->T * sizeof(float));
    b->dent = malloc((size_t)b->T * sizeof(float));
    rng_stream r;
    rng_stream_init(&r, seed, 5);
    for (int t = 0; t < b->T; t++) {
        b->tokens[t] = (int)rng_stream_below(&r, (uint64_t)s->cfg.vocab);
        b->targets[t] = (int)rng_stream_below(&r, (uint64_t)s->cfg.vocab);
        b->dlogp[t] = rng_stream_normal(&r) / (float)b->T;
        b->dent[t] = 0.3f * rng_stream_normal(&r) / (float)b->T;
    }
}

static void batch_free(batch *b) {
    free(b->tokens);
    free(b->targets);
    free(b->dlogp);
    free(b->dent);
}

/* The CPU reference: logp, ent [T] and the gradients (in m->grads). */
static void cpu_reference(model *m, const batch *b, float *logp, float *ent) {
    rlvr_err e = {{0}};
    model_kv *kv = model_kv_new(m, b->n_seqs, b->max_len, &e);
    int *slots = malloc((size_t)b->n_seqs * sizeof(int));
    for (int i = 0; i < b->n_seqs; i++) slots[i] = i;
    if (!kv || model_alloc_grads(m, &e) != 0 ||
        model_forward(m, kv, b->n_seqs, slots, b->lens, b->tokens, &e) != 0) {
        fprintf(stderr, "CPU reference: %s\n", e.msg);
        exit(1);
    }
    model_zero_grads(m);
    model_logprobs(m, b->targets, logp, ent);
    if (model_backward(m, b->targets, b->dlogp, b->dent, &e) != 0) {
        fprintf(stderr, "CPU reference backward: %s\n", e.msg);
        exit(1);
    }
    model_kv_free(kv);
    free(slots);
}

/* recompute: 1 recomputes each layer in backward; keep: the LM head keeps its
 * probabilities for backward (bf16 without recompute). */
static gpu_model *gpu_new(const model *m, const batch *b, kern_dtype dt, int recompute, int keep) {
    rlvr_err e = {{0}};
    gpu_model_opts o = {.dtype = dt, .max_tokens = b->T, .max_seqs = b->n_seqs, .recompute = recompute,
                        .lm_keep_probs = keep, .train = 1, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
                        .weight_decay = 0.1};
    gpu_model *g = gpu_model_new(m, &o, &e);
    if (!g) {
        fprintf(stderr, "gpu_model_new: %s\n", e.msg);
        exit(1);
    }
    return g;
}

/* One forward + backward on the GPU from zeroed gradients: logp, ent [T], grads [n_params]. */
static int gpu_run(gpu_model *g, const batch *b, float *logp, float *ent, float *grads) {
    rlvr_err e = {{0}};
    if (gpu_model_zero_grads(g, &e) != 0 ||
        gpu_model_forward(g, b->n_seqs, b->lens, b->tokens, b->targets, logp, ent, &e) != 0 ||
        gpu_model_backward(g, b->dlogp, b->dent, &e) != 0 || (grads && gpu_model_download_grads(g, grads, &e) != 0)) {
        CHECK(0, "GPU run: %s", e.msg);
        return -1;
    }
    return 0;
}

/* Every parameter's gradient, tensor by tensor. A tensor's scale is the larger of its
 * own largest |want| and a tenth of the rms of every gradient (so a tensor whose true
 * gradient nearly cancels, e.g. a key bias, is held to the size of the terms that cancel
 * rather than to their rounding noise). Returns the worst relative L2 error. */
static double check_grads(const char *what, const model *m, const float *got, double elem_tol, double l2_tol) {
    double all2 = 0;
    for (size_t k = 0; k < m->n_params; k++) all2 += (double)m->grads[k] * m->grads[k];
    double floor_rms = 0.1 * sqrt(all2 / (double)m->n_params);
    double worst = 0;
    for (int i = 0; i < m->n_table; i++) {
        const model_param *p = &m->table[i];
        size_t off = (size_t)(p->data - m->params);
        const float *want = m->grads + off, *g = got + off;
        double maxw = floor_rms, d2 = 0, w2 = 0;
        for (size_t k = 0; k < p->numel; k++) {
            double a = fabs(want[k]);
            maxw = a > maxw ? a : maxw;
            w2 += (double)want[k] * want[k];
        }
        double f2 = floor_rms * floor_rms * (double)p->numel;
        w2 = w2 > f2 ? w2 : f2;
        size_t bad = SIZE_MAX;
        for (size_t k = 0; k < p->numel; k++) {
            double d = fabs((double)g[k] - want[k]);
            d2 += d * d;
            if (!(d <= elem_tol * maxw) && bad == SIZE_MAX) bad = k;
        }
        double rel = sqrt(d2 / w2);
        if (rel > worst || rel != rel) worst = rel;
        if (bad != SIZE_MAX)
            CHECK(0, "%s: gradient of %s element %zu (of %zu) is %.9g, want %.9g (|diff| %.3g > %.3g = %g x scale)",
                  what, p->name, bad, p->numel, g[bad], want[bad], fabs((double)g[bad] - want[bad]), elem_tol * maxw,
                  elem_tol);
        CHECK(rel <= l2_tol, "%s: gradient of %s: ||diff|| / ||want|| = %.3g > %.3g (scale %.3g)", what, p->name, rel,
              l2_tol, maxw);
    }
    return worst;
}

/* got against want token by token (|diff| <= atol + rtol |want|) and on average (mean
 * |diff| <= mean_tol). Returns the largest |diff|; *mean gets the mean. */
static double check_vec(const char *what, const float *got, const float *want, int n, double atol, double rtol,
                        double mean_tol, double *mean) {
    double worst = 0, sum = 0;
    int reported = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= atol + rtol * fabs(want[i])) && !reported) {
            CHECK(0, "%s: token %d is %.9g, want %.9g (|diff| %.3g)", what, i, got[i], want[i], d);
            reported = 1;
        }
        if (d > worst || d != d) worst = d;
        sum += d;
    }
    *mean = sum / n;
    CHECK(*mean <= mean_tol, "%s: mean |diff| %.3g > %.3g", what, *mean, mean_tol);
    return worst;
}

static int same_bits(const char *what, const void *a, const void *b, size_t n_floats) {
    if (memcmp(a, b, n_floats * sizeof(float)) == 0) return 1;
    const float *x = a, *y = b;
    for (size_t i = 0; i < n_floats; i++)
        if (memcmp(&x[i], &y[i], sizeof(float)) != 0) {
            CHECK(0, "%s: element %zu differs: %.9g vs %.9g", what, i, x[i], y[i]);
            break;
        }
    return 0;
}

static void test_shape(const shape *s) {
    rlvr_err e = {{0}};
    model *m = random_model(&s->cfg, 1234);
    batch b;
    make_batch(&b, s, 99);
    size_t n = m->n_params, T = (size_t)b.T;
    float *want_logp = malloc(T * 4), *want_ent = malloc(T * 4), *logp = malloc(T * 4), *ent = malloc(T * 4);
    float *logp2 = malloc(T * 4), *ent2 = malloc(T * 4);
    float *grads = malloc(n * 4), *grads2 = malloc(n * 4);
    cpu_reference(m, &b, want_logp, want_ent);
    char what[128];

    /* fp32 against the CPU */
    gpu_model *g = gpu_new(m, &b, KERN_F32, 0, 0);
    if (gpu_run(g, &b, logp, ent, grads) == 0) {
        double ml, me;
        snprintf(what, sizeof what, "%s fp32 logp", s->name);
        double el = check_vec(what, logp, want_logp, b.T, 1e-4, 1e-4, 1e-5, &ml);
        snprintf(what, sizeof what, "%s fp32 entropy", s->name);
        double ee = check_vec(what, ent, want_ent, b.T, 1e-4, 1e-4, 1e-5, &me);
        snprintf(what, sizeof what, "%s fp32", s->name);
        double eg = check_grads(what, m, grads, 1e-3, 1e-4);
        printf("%-6s fp32: %d seqs, %d tokens: logp |diff| max %.3g mean %.3g, entropy max %.3g mean %.3g, "
               "worst gradient rel L2 %.3g\n",
               s->name, b.n_seqs, b.T, el, ml, ee, me, eg);
        /* a second run gives the same bits */
        if (gpu_run(g, &b, logp2, ent2, grads2) == 0) {
            snprintf(what, sizeof what, "%s fp32 rerun logp", s->name);
            same_bits(what, logp, logp2, T);
            snprintf(what, sizeof what, "%s fp32 rerun grads", s->name);
            same_bits(what, grads, grads2, n);
        }
    }
    /* the weights come back as they went */
    model *back = random_model(&s->cfg, 999);
    if (gpu_model_download(g, back, &e) != 0) CHECK(0, "download: %s", e.msg);
    else {
        snprintf(what, sizeof what, "%s download after upload", s->name);
        same_bits(what, back->params, m->params, n);
    }
    model_free(back);
    gpu_model_free(g);

    /* bf16 against the CPU, with the LM head's logits recomputed in backward and with its
     * probabilities kept; reruns bit for bit; recomputation bit for bit */
    for (int keep = 0; keep < 2; keep++) {
        g = gpu_new(m, &b, KERN_BF16, 0, keep);
        if (gpu_run(g, &b, logp, ent, grads) == 0) {
            double ml, me;
            snprintf(what, sizeof what, "%s bf16 logp", s->name);
            double el = check_vec(what, logp, want_logp, b.T, 0.25, 0.05, 0.08, &ml);
            snprintf(what, sizeof what, "%s bf16 entropy", s->name);
            double ee = check_vec(what, ent, want_ent, b.T, 0.25, 0.05, 0.08, &me);
            snprintf(what, sizeof what, "%s bf16", s->name);
            double eg = check_grads(what, m, grads, 0.5, 0.1);
            printf("%-6s bf16%s: logp |diff| max %.3g mean %.3g, entropy max %.3g mean %.3g, worst gradient rel L2 %.3g\n",
                   s->name, keep ? " kept" : "", el, ml, ee, me, eg);
            if (gpu_run(g, &b, logp2, ent2, grads2) == 0) {
                snprintf(what, sizeof what, "%s bf16 rerun logp", s->name);
                same_bits(what, logp, logp2, T);
                snprintf(what, sizeof what, "%s bf16 rerun grads", s->name);
                same_bits(what, grads, grads2, n);
            }
        }
        gpu_model_free(g);
    }
    for (int dt = 0; dt < 2; dt++) {
        kern_dtype d = dt ? KERN_BF16 : KERN_F32;
        gpu_model *g0 = gpu_new(m, &b, d, 0, 0), *g1 = gpu_new(m, &b, d, 1, 0);
        if (gpu_run(g0, &b, logp, ent, grads) == 0 && gpu_run(g1, &b, logp2, ent2, grads2) == 0) {
            snprintf(what, sizeof what, "%s %s recompute logp", s->name, gpu_dtype_name(d));
            same_bits(what, logp, logp2, T);
            snprintf(what, sizeof what, "%s %s recompute entropy", s->name, gpu_dtype_name(d));
            same_bits(what, ent, ent2, T);
            snprintf(what, sizeof what, "%s %s recompute grads", s->name, gpu_dtype_name(d));
            same_bits(what, grads, grads2, n);
        }
        gpu_model_free(g0);
        gpu_model_free(g1);
    }
    free(want_logp);
    free(want_ent);
    free(logp);
    free(ent);
    free(logp2);
    free(ent2);
    free(grads);
    free(grads2);
    batch_free(&b);
    model_free(m);
}

/* Clipping and two AdamW steps on the GPU against rl/optim.c from the same gradients,
 * then the bf16 working copy against a fresh upload of the updated weights. */
static void test_optimizer(const shape *s, kern_dtype dt) {
    rlvr_err e = {{0}};
    model *m = random_model(&s->cfg, 4321);
    batch b;
    make_batch(&b, s, 7);
    size_t n = m->n_params;
    float *grads = malloc(n * 4), *clipped = malloc(n * 4), *params = malloc(n * 4);
    float *logp = malloc((size_t)b.T * 4), *logp2 = malloc((size_t)b.T * 4);
    gpu_model *g = gpu_new(m, &b, dt, 0, 0);
    rl_adamw opt;
    if (rl_adamw_init(&opt, n, 0.9, 0.95, 1e-8, 0.1, &e) != 0) exit(1);
    memcpy(params, m->params, n * 4);
    for (int step = 0; step < 2; step++) {
        if (gpu_run(g, &b, NULL, NULL, grads) != 0) break;
        double norm = 0;
        double max_norm = step == 0 ? 1e-3 : 1e9; /* the first step clips, the second does not */
        if (gpu_model_clip_grad_norm(g, max_norm, &norm, &e) != 0 || gpu_model_download_grads(g, clipped, &e) != 0) {
            CHECK(0, "clip: %s", e.msg);
            break;
        }
        double want_norm = rl_clip_grad_norm(grads, n, max_norm);
        CHECK(fabs(norm - want_norm) <= 1e-9 * want_norm, "%s %s step %d: grad norm %.17g, want %.17g", s->name,
              gpu_dtype_name(dt), step, norm, want_norm);
        char what[96];
        snprintf(what, sizeof what, "%s %s clipped grads step %d", s->name, gpu_dtype_name(dt), step);
        gpu_check_close(what, clipped, grads, NULL, n, 1e-30, 1e-6, 0);
        double lr = step == 0 ? 1e-2 : 3e-3;
        rl_adamw_step(&opt, params, clipped, lr);
        if (gpu_model_adamw_step(g, lr, &e) != 0 || gpu_model_download(g, m, &e) != 0) {
            CHECK(0, "adamw: %s", e.msg);
            break;
        }
        snprintf(what, sizeof what, "%s %s AdamW params step %d", s->name, gpu_dtype_name(dt), step);
        gpu_check_close(what, m->params, params, NULL, n, 1e-12, 1e-6, 0);
    }
    float *mm = malloc(n * 4), *vv = malloc(n * 4);
    long long st = 0;
    if (gpu_model_optimizer_download(g, mm, vv, &st, &e) != 0) CHECK(0, "optimizer download: %s", e.msg);
    else {
        CHECK(st == opt.step, "optimizer step %lld, want %lld", st, opt.step);
        gpu_check_close("AdamW m", mm, opt.m, NULL, n, 1e-20, 1e-6, 0);
        gpu_check_close("AdamW v", vv, opt.v, NULL, n, 1e-20, 1e-6, 0);
    }
    /* the working copy the kernels read is the rounding of the master weights */
    gpu_model *fresh = gpu_new(m, &b, dt, 0, 0);
    if (gpu_run(g, &b, logp, NULL, NULL) == 0 && gpu_run(fresh, &b, logp2, NULL, NULL) == 0) {
        char what[96];
        snprintf(what, sizeof what, "%s %s forward after AdamW vs fresh upload", s->name, gpu_dtype_name(dt));
        same_bits(what, logp, logp2, (size_t)b.T);
    }
    printf("%-6s %s: clipping and AdamW match rl/optim\n", s->name, gpu_dtype_name(dt));
    gpu_model_free(fresh);
    gpu_model_free(g);
    rl_adamw_free(&opt);
    free(mm);
    free(vv);
    free(grads);
    free(clipped);
    free(params);
    free(logp);
    free(logp2);
    batch_free(&b);
    model_free(m);
}

/* The plan of Qwen2.5-1.5B at 64k tokens per micro-batch does not fit 20 GiB: refused,
 * naming the sizes and the remedies; with recompute the activations shrink. Runs
 * without a device. */
static void test_plan_refusal(void) {
    model_config c = shape_config(MODEL_QWEN2, 151936, 1536, 28, 12, 2, 128, 8960, 4096);
    c.qkv_bias = 1;
    c.tie_embeddings = 1;
    gpu_model_opts o = {.dtype = KERN_BF16, .max_tokens = 65536, .max_seqs = 64, .train = 1};
    gpu_mem_plan p, pr;
    gpu_mem_plan_compute(&c, &o, &p);
    size_t n = gpu_model_param_count(&c);
    CHECK(n == 1543714304u, "Qwen2.5-1.5B has %zu parameters, want 1543714304", n);
    CHECK(p.weights == n * 6 && p.grads == n * 4 && p.optimizer == n * 8, "plan weights %zu grads %zu optimizer %zu",
          p.weights, p.grads, p.optimizer);
    rlvr_err e = {{0}};
    size_t gib = (size_t)1 << 30;
    CHECK(gpu_mem_plan_check(&p, &o, 40 * gib, 80 * gib, &e) != 0, "a %.1f GiB plan fits 40 GiB", (double)p.total / gib);
    CHECK(strstr(e.msg, "micro_batch_size") && strstr(e.msg, "train.recompute") && strstr(e.msg, "40.00 GiB") &&
              strstr(e.msg, "activations 125.60"),
          "refusal message: %s", e.msg);
    printf("refusal: %s\n", e.msg);
    /* 20 GiB do not even hold the weights, gradients and optimizer state */
    CHECK(gpu_mem_plan_check(&p, &o, 20 * gib, 80 * gib, &e) != 0 && strstr(e.msg, "alone do not fit"),
          "refusal message at 20 GiB: %s", e.msg);
    CHECK(gpu_mem_plan_check(&p, &o, p.total, 80 * gib, &e) == 0, "a plan that fits exactly is refused: %s", e.msg);
    o.recompute = 1;
    gpu_mem_plan_compute(&c, &o, &pr);
    CHECK(pr.activations * 5 < p.activations, "recompute keeps %zu activation bytes of %zu", pr.activations,
          p.activations);
    char buf[1024];
    gpu_mem_plan_format(&pr, buf, sizeof buf);
    printf("%s", buf);
}

int main(void) {
    make_shapes();
    test_plan_refusal();
    for (int i = 0; i < 4; i++) {
        size_t want = 0;
        rlvr_err e = {{0}};
        model *m = model_init(&shapes[i].cfg, 1, &e);
        if (m) want = m->n_params;
        CHECK(m && gpu_model_param_count(&shapes[i].cfg) == want, "%s: param count %zu, model_init %zu", shapes[i].name,
              gpu_model_param_count(&shapes[i].cfg), want);
        model_free(m);
    }
    if (gpu_failures) return gpu_test_finish(); /* a failure above must not read as a skip */
    gpu_test_require_device();
    { /* on the device: a micro-batch of 2^26 tokens is refused before anything is allocated */
        rlvr_err e = {{0}};
        model *m = random_model(&shapes[0].cfg, 5);
        gpu_model_opts o = {.dtype = KERN_BF16, .max_tokens = 1 << 26, .max_seqs = 1024, .train = 1};
        gpu_model *g = gpu_model_new(m, &o, &e);
        CHECK(!g && strstr(e.msg, "GPU memory plan needs") && strstr(e.msg, "67108864 tokens per micro-batch"),
              "a 2^26-token micro-batch: %s", g ? "accepted" : e.msg);
        gpu_model_free(g);
        model_free(m);
    }
    for (int i = 0; i < 4; i++) test_shape(&shapes[i]);
    test_optimizer(&shapes[1], KERN_F32);
    test_optimizer(&shapes[2], KERN_BF16);
    return gpu_test_finish();
}
