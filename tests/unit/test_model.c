/* test_model.c - the CPU reference transformer against transformers' outputs
 * (tests/fixtures/model/, written by tests/reference/make_model_fixtures.py): logits,
 * log-probabilities, entropies, gradients of every parameter and greedy continuations,
 * for every supported architecture; through the KV cache, k > 1 tokens at a time and
 * after truncation; with BLAS and with the plain C loops; after save and reload. */
#include "testing.h"

#include <cjson/cJSON.h>
#include <math.h>

#include "cpu_ops.h"
#include "model.h"
#include "safetensors.h"
#include "util.h"

static const char *const CASES[] = {"llama_gqa", "llama3_tied_bias", "qwen2_tied", "qwen2_sharded_fp16", "qwen3",
                                    "mistral"};
#define N_CASES (sizeof CASES / sizeof *CASES)

typedef struct expected {
    st_file f;
    int T, S, V, G;
    int tokens[64], seq_lens[8], targets[64], greedy[16];
    float *logits, logp[64], entropy[64], w_logp[64], w_entropy[64];
} expected;

static char *case_dir(const char *name) {
    char *d = malloc(1024);
    snprintf(d, 1024, "%s/tests/fixtures/model/%s", getenv("RLVR_SOURCE_DIR"), name);
    return d;
}

static void read_ints(const st_file *f, const char *name, int *out, int *n) {
    const st_tensor *t = st_find(f, name);
    assert_non_null(t);
    int64_t v[64];
    assert_true(t->numel <= 64);
    rlvr_err e;
    assert_int_equal(st_to_i64(t, v, &e), 0);
    for (int i = 0; i < t->numel; i++) out[i] = (int)v[i];
    if (n) *n = (int)t->numel;
}

static void read_floats(const st_file *f, const char *name, float *out) {
    const st_tensor *t = st_find(f, name);
    assert_non_null(t);
    rlvr_err e;
    assert_int_equal(st_to_f32(t, out, &e), 0);
}

static void expected_load(expected *x, const char *dir) {
    char path[1100];
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    rlvr_err e;
    if (st_open(&x->f, path, &e) != 0) fail_msg("%s", e.msg);
    read_ints(&x->f, "tokens", x->tokens, &x->T);
    read_ints(&x->f, "seq_lens", x->seq_lens, &x->S);
    read_ints(&x->f, "targets", x->targets, NULL);
    read_ints(&x->f, "greedy", x->greedy, &x->G);
    const st_tensor *lt = st_find(&x->f, "logits");
    x->V = (int)lt->shape[1];
    x->logits = malloc((size_t)lt->numel * sizeof(float));
    read_floats(&x->f, "logits", x->logits);
    read_floats(&x->f, "logp", x->logp);
    read_floats(&x->f, "entropy", x->entropy);
    read_floats(&x->f, "w_logp", x->w_logp);
    read_floats(&x->f, "w_entropy", x->w_entropy);
}

static void expected_free(expected *x) {
    free(x->logits);
    st_close(&x->f);
}

static model *load(const char *dir) {
    rlvr_err e;
    model *m = model_load(dir, &e);
    if (!m) fail_msg("%s", e.msg);
    return m;
}

static float max_abs_diff(const float *a, const float *b, size_t n) {
    float d = 0.0f;
    for (size_t i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

/* Runs the fixture's sequences as one batch from empty slots and checks every logit. */
static void check_batch_logits(model *m, const expected *x, const char *name) {
    rlvr_err e;
    model_kv *kv = model_kv_new(m, x->S, 32, &e);
    assert_non_null(kv);
    int slots[8];
    for (int s = 0; s < x->S; s++) slots[s] = s;
    if (model_forward(m, kv, x->S, slots, x->seq_lens, x->tokens, &e) != 0) fail_msg("%s", e.msg);
    int rows[64];
    for (int t = 0; t < x->T; t++) rows[t] = t;
    float *logits = malloc((size_t)x->T * x->V * sizeof(float));
    model_logits(m, rows, x->T, logits);
    float d = max_abs_diff(logits, x->logits, (size_t)x->T * x->V);
    if (d > 1e-4f) fail_msg("%s: logits differ by %g", name, d);
    float logp[64], ent[64];
    model_logprobs(m, x->targets, logp, ent);
    assert_true(max_abs_diff(logp, x->logp, x->T) < 1e-4f);
    assert_true(max_abs_diff(ent, x->entropy, x->T) < 1e-4f);
    free(logits);
    model_kv_free(kv);
}

static void test_fixture_logits(void **state) {
    (void)state;
    for (int blas = 1; blas >= 0; blas--) {
        cpu_set_blas(blas);
        for (size_t c = 0; c < N_CASES; c++) {
            char *dir = case_dir(CASES[c]);
            expected x;
            expected_load(&x, dir);
            model *m = load(dir);
            check_batch_logits(m, &x, CASES[c]);
            model_free(m);
            expected_free(&x);
            free(dir);
        }
    }
    cpu_set_blas(1);
}

/* Incremental decoding: sequence 1 in one call, sequence 0 in pieces of 1, 3 and the
 * rest against its cache (k > 1 new tokens: what speculative verification does), then
 * truncated back and re-run: every logit equals the full forward's. */
static void test_kv_cache_increments_and_truncation(void **state) {
    (void)state;
    rlvr_err e;
    for (size_t c = 0; c < N_CASES; c++) {
        char *dir = case_dir(CASES[c]);
        expected x;
        expected_load(&x, dir);
        model *m = load(dir);
        model_kv *kv = model_kv_new(m, 3, 32, &e);
        float *got = malloc((size_t)x.V * 8 * sizeof(float));
        int n0 = x.seq_lens[0];
        int pieces[] = {1, 3, n0 - 4};
        int done = 0, slot = 2; /* a slot other than the sequence's index */
        for (int p = 0; p < 3; p++) {
            assert_int_equal(model_forward(m, kv, 1, &slot, &pieces[p], x.tokens + done, &e), 0);
            int rows[8];
            for (int r = 0; r < pieces[p]; r++) rows[r] = r;
            model_logits(m, rows, pieces[p], got);
            float d = max_abs_diff(got, x.logits + (size_t)done * x.V, (size_t)pieces[p] * x.V);
            if (d > 1e-4f) fail_msg("%s: piece %d differs by %g", CASES[c], p, d);
            done += pieces[p];
        }
        assert_int_equal(kv->len[slot], n0);
        model_kv_truncate(kv, slot, 2);
        assert_int_equal(kv->len[slot], 2);
        int rest = n0 - 2;
        assert_int_equal(model_forward(m, kv, 1, &slot, &rest, x.tokens + 2, &e), 0);
        int last = rest - 1;
        model_logits(m, &last, 1, got);
        assert_true(max_abs_diff(got, x.logits + (size_t)(n0 - 1) * x.V, x.V) < 1e-4f);
        /* the cache refuses to overflow */
        int big = 40;
        assert_int_equal(model_forward(m, kv, 1, &slot, &big, x.tokens, &e), -1);
        assert_non_null(strstr(e.msg, "exceed the KV cache"));
        free(got);
        model_kv_free(kv);
        model_free(m);
        expected_free(&x);
        free(dir);
    }
}

/* Greedy decoding through the KV cache equals transformers' greedy continuation. */
static void test_greedy_matches_transformers(void **state) {
    (void)state;
    rlvr_err e;
    for (size_t c = 0; c < N_CASES; c++) {
        char *dir = case_dir(CASES[c]);
        expected x;
        expected_load(&x, dir);
        model *m = load(dir);
        model_kv *kv = model_kv_new(m, 1, 32, &e);
        float *logits = malloc((size_t)x.V * sizeof(float));
        int slot = 0, n = x.seq_lens[0], tok[64];
        memcpy(tok, x.tokens, sizeof(int) * (size_t)n);
        const int *feed = tok;
        for (int g = 0; g < x.G; g++) {
            assert_int_equal(model_forward(m, kv, 1, &slot, &n, feed, &e), 0);
            int last = n - 1;
            model_logits(m, &last, 1, logits);
            int best = 0;
            for (int v = 1; v < x.V; v++)
                if (logits[v] > logits[best]) best = v;
            if (best != x.greedy[g]) fail_msg("%s: greedy step %d: %d, transformers %d", CASES[c], g, best, x.greedy[g]);
            tok[0] = best;
            feed = tok;
            n = 1;
        }
        free(logits);
        model_kv_free(kv);
        model_free(m);
        expected_free(&x);
        free(dir);
    }
}

/* Gradients of L = sum w_logp*logp + w_entropy*entropy for every parameter, against
 * torch's, within 1e-3 of each tensor's largest gradient. */
static void test_gradients_match_torch(void **state) {
    (void)state;
    rlvr_err e;
    for (int blas = 1; blas >= 0; blas--) {
        cpu_set_blas(blas);
        for (size_t c = 0; c < N_CASES; c++) {
            char *dir = case_dir(CASES[c]);
            expected x;
            expected_load(&x, dir);
            model *m = load(dir);
            assert_int_equal(model_alloc_grads(m, &e), 0);
            model_kv *kv = model_kv_new(m, x.S, 32, &e);
            int slots[8];
            for (int s = 0; s < x.S; s++) slots[s] = s;
            assert_int_equal(model_forward(m, kv, x.S, slots, x.seq_lens, x.tokens, &e), 0);
            if (model_backward(m, x.targets, x.w_logp, x.w_entropy, &e) != 0) fail_msg("%s", e.msg);
            for (int i = 0; i < m->n_table; i++) {
                const model_param *p = &m->table[i];
                char key[128];
                snprintf(key, sizeof key, "grad.%s", p->name);
                const st_tensor *t = st_find(&x.f, key);
                if (!t) fail_msg("%s: no %s in the fixture", CASES[c], key);
                assert_int_equal((size_t)t->numel, p->numel);
                float *want = malloc(p->numel * sizeof(float));
                assert_int_equal(st_to_f32(t, want, &e), 0);
                float scale = 0.0f;
                for (size_t k = 0; k < p->numel; k++) scale = fmaxf(scale, fabsf(want[k]));
                float d = max_abs_diff(p->grad, want, p->numel);
                if (d > 1e-3f * scale + 1e-7f)
                    fail_msg("%s: %s: gradient differs by %g (largest %g)", CASES[c], p->name, d, scale);
                free(want);
            }
            model_kv_free(kv);
            model_free(m);
            expected_free(&x);
            free(dir);
        }
    }
    cpu_set_blas(1);
}

/* The loss of the gradient check, in double over the fp32 log-probabilities. */
static double fd_loss(model *m, model_kv *kv, const int *seq_lens, const int *tokens, const int *targets,
                      const float *wl, const float *we, int T) {
    rlvr_err e;
    int slots[2] = {0, 1};
    kv->len[0] = kv->len[1] = 0;
    assert_int_equal(model_forward(m, kv, 2, slots, seq_lens, tokens, &e), 0);
    float lp[128], en[128];
    assert_true(T <= 128);
    model_logprobs(m, targets, lp, en);
    double L = 0.0;
    for (int t = 0; t < T; t++) L += (double)wl[t] * lp[t] + (double)we[t] * en[t];
    return L;
}

/* A tiny model of architecture archs[a] for finite differences (Qwen2 tied, Qwen3 with q/k
 * norms), its norms and biases moved off their init (by a pattern of `mul`, `mod`, `off`)
 * so that their gradients are generic. */
static model *fd_model(model_arch arch, int a, uint64_t seed, int mul, int mod, float off) {
    rlvr_err e;
    model_config c = {.arch = arch, .vocab = 20, .hidden = 16, .layers = 2, .heads = 4, .kv_heads = 2,
                      .head_dim = 6, .intermediate = 24, .max_positions = 32, .rope_theta = 10000.0f,
                      .rms_eps = 1e-6f, .init_range = 0.3f, .tie_embeddings = a == 1,
                      .qkv_bias = arch == MODEL_QWEN2, .qk_norm = arch == MODEL_QWEN3,
                      .bos_token_id = -1, .eos_token_id = -1};
    model *m = model_init(&c, seed, &e);
    assert_non_null(m);
    for (int i = 0; i < m->n_table; i++)
        if (m->table[i].ndim == 1)
            for (size_t k = 0; k < m->table[i].numel; k++)
                m->table[i].data[k] += 0.1f * (float)((k * (size_t)mul + (size_t)i) % (size_t)mod) - off;
    return m;
}

/* Finite differences on a freshly initialized model of each architecture: a few entries
 * of every parameter tensor, central differences. */
static void test_gradient_finite_differences(void **state) {
    (void)state;
    rlvr_err e;
    const model_arch archs[] = {MODEL_LLAMA, MODEL_QWEN2, MODEL_QWEN3, MODEL_MISTRAL};
    for (int a = 0; a < 4; a++) {
        model *m = fd_model(archs[a], a, 7 + a, 7, 5, 0.2f);
        assert_int_equal(model_alloc_grads(m, &e), 0);
        model_kv *kv = model_kv_new(m, 2, 8, &e);
        int seq_lens[2] = {5, 3}, tokens[8] = {1, 5, 9, 3, 19, 2, 2, 7}, targets[8] = {5, 9, 3, 19, 0, 2, 7, 11};
        float wl[8] = {1.0f, -0.5f, 0.7f, 0.3f, -1.1f, 0.9f, 0.4f, -0.6f};
        float we[8] = {0.2f, -0.3f, 0.5f, 0.1f, -0.4f, 0.25f, -0.15f, 0.3f};
        fd_loss(m, kv, seq_lens, tokens, targets, wl, we, 8);
        assert_int_equal(model_backward(m, targets, wl, we, &e), 0);
        for (int i = 0; i < m->n_table; i++) {
            model_param *p = &m->table[i];
            for (int probe = 0; probe < 3; probe++) {
                size_t k = (size_t)(probe * 7919 + i * 31) % p->numel;
                float saved = p->data[k], h = 1e-2f;
                p->data[k] = saved + h;
                double lp = fd_loss(m, kv, seq_lens, tokens, targets, wl, we, 8);
                p->data[k] = saved - h;
                double lm = fd_loss(m, kv, seq_lens, tokens, targets, wl, we, 8);
                p->data[k] = saved;
                double fd = (lp - lm) / (2.0 * h), an = p->grad[k];
                if (fabs(fd - an) > 2e-2 * fabs(an) + 2e-3)
                    fail_msg("arch %d: %s[%zu]: analytic %g, finite differences %g", a, p->name, k, an, fd);
            }
        }
        model_kv_free(kv);
        model_free(m);
    }
}

/* The loss of the hidden-state gradient check: sum_tc wh[t, c] * hidden[t, c]. */
static double fd_hidden_loss(model *m, model_kv *kv, const int *seq_lens, const int *tokens, const float *wh, int T) {
    rlvr_err e;
    int slots[2] = {0, 1};
    kv->len[0] = kv->len[1] = 0;
    assert_int_equal(model_forward(m, kv, 2, slots, seq_lens, tokens, &e), 0);
    const float *hid = model_hidden(m);
    assert_non_null(hid);
    double L = 0.0;
    for (size_t i = 0; i < (size_t)T * m->cfg.hidden; i++) L += (double)wh[i] * hid[i];
    return L;
}

/* model_backward_hidden (the critic's path: a gradient on the final normed hidden states)
 * against finite differences on every parameter tensor of each architecture; lm_head gets
 * no gradient from it. */
static void test_hidden_backward_finite_differences(void **state) {
    (void)state;
    rlvr_err e;
    const model_arch archs[] = {MODEL_LLAMA, MODEL_QWEN2, MODEL_QWEN3, MODEL_MISTRAL};
    for (int a = 0; a < 4; a++) {
        model *m = fd_model(archs[a], a, 11 + a, 5, 7, 0.3f);
        assert_int_equal(model_alloc_grads(m, &e), 0);
        assert_null(model_hidden(m));
        assert_int_equal(model_backward_hidden(m, NULL, &e), -1); /* no forward yet */
        model_kv *kv = model_kv_new(m, 2, 8, &e);
        int seq_lens[2] = {5, 3}, tokens[8] = {1, 5, 9, 3, 19, 2, 2, 7};
        float wh[8 * 16];
        for (int i = 0; i < 8 * 16; i++) wh[i] = 0.05f * (float)((i * 37) % 23) - 0.5f;
        fd_hidden_loss(m, kv, seq_lens, tokens, wh, 8);
        assert_int_equal(model_backward_hidden(m, wh, &e), 0);
        for (int i = 0; i < m->n_table; i++) {
            model_param *p = &m->table[i];
            if (!m->cfg.tie_embeddings && strcmp(p->name, "lm_head.weight") == 0) {
                for (size_t k = 0; k < p->numel; k++) assert_true(p->grad[k] == 0.0f);
                continue;
            }
            for (int probe = 0; probe < 3; probe++) {
                size_t k = (size_t)(probe * 7919 + i * 31) % p->numel;
                if (strcmp(p->name, "model.embed_tokens.weight") == 0) k = (size_t)tokens[probe] * 16 + (size_t)probe;
                float saved = p->data[k], h = 1e-2f;
                p->data[k] = saved + h;
                double lp = fd_hidden_loss(m, kv, seq_lens, tokens, wh, 8);
                p->data[k] = saved - h;
                double lm = fd_hidden_loss(m, kv, seq_lens, tokens, wh, 8);
                p->data[k] = saved;
                double fd = (lp - lm) / (2.0 * h), an = p->grad[k];
                if (fabs(fd - an) > 2e-2 * fabs(an) + 2e-3)
                    fail_msg("arch %d: %s[%zu]: analytic %g, finite differences %g", a, p->name, k, an, fd);
            }
        }
        model_kv_free(kv);
        model_free(m);
    }
}

/* A vocabulary wider than one chunk (2048) and more tokens than one row block (64): the
 * chunked log-probabilities and entropies equal those of the full logits, and the
 * gradient of lm_head rows in later chunks matches finite differences. */
static void test_logprobs_across_vocab_chunks(void **state) {
    (void)state;
    rlvr_err e;
    model_config c = {.arch = MODEL_LLAMA, .vocab = 4500, .hidden = 8, .layers = 1, .heads = 2, .kv_heads = 1,
                      .head_dim = 4, .intermediate = 16, .max_positions = 64, .rope_theta = 10000.0f,
                      .rms_eps = 1e-6f, .init_range = 0.5f, .bos_token_id = -1, .eos_token_id = -1};
    model *m = model_init(&c, 3, &e);
    assert_non_null(m);
    assert_int_equal(model_alloc_grads(m, &e), 0);
    enum { T = 70 };
    int lens[2] = {40, 30}, slots[2] = {0, 1}, tokens[T], targets[T], rows[T];
    float wl[T], we[T];
    for (int t = 0; t < T; t++) {
        tokens[t] = (t * 977 + 5) % c.vocab;
        targets[t] = (t * 2311 + 4400) % c.vocab; /* spread over every chunk */
        rows[t] = t;
        wl[t] = (float)((t % 7) - 3) / 3.0f;
        we[t] = (float)((t % 5) - 2) / 4.0f;
    }
    model_kv *kv = model_kv_new(m, 2, 64, &e);
    assert_int_equal(model_forward(m, kv, 2, slots, lens, tokens, &e), 0);
    float *logits = malloc((size_t)T * c.vocab * sizeof(float)), lp[T], en[T];
    model_logits(m, rows, T, logits);
    model_logprobs(m, targets, lp, en);
    for (int t = 0; t < T; t++) {
        const float *l = logits + (size_t)t * c.vocab;
        double mx = -INFINITY, s = 0.0, w = 0.0;
        for (int v = 0; v < c.vocab; v++) mx = fmax(mx, l[v]);
        for (int v = 0; v < c.vocab; v++) s += exp(l[v] - mx), w += exp(l[v] - mx) * l[v];
        double logz = mx + log(s);
        assert_true(fabs(lp[t] - (l[targets[t]] - logz)) < 1e-4);
        assert_true(fabs(en[t] - (logz - w / s)) < 1e-4);
    }
    assert_int_equal(model_backward(m, targets, wl, we, &e), 0);
    const model_param *head = model_find_param(m, "lm_head.weight");
    assert_non_null(head);
    const size_t probes[] = {2048 * 8 + 3, 4100 * 8 + 5, (size_t)targets[10] * 8 + 1, 4499 * 8 + 7};
    for (int i = 0; i < 4; i++) {
        size_t k = probes[i];
        float saved = head->data[k], h = 1e-2f;
        double L[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            head->data[k] = saved + (sgn ? -h : h);
            L[sgn] = fd_loss(m, kv, lens, tokens, targets, wl, we, T);
        }
        head->data[k] = saved;
        double fd = (L[0] - L[1]) / (2.0 * h), an = head->grad[k];
        if (fabs(fd - an) > 2e-2 * fabs(an) + 2e-3) fail_msg("lm_head[%zu]: analytic %g, finite differences %g", k, an, fd);
    }
    free(logits);
    model_kv_free(kv);
    model_free(m);
}

/* Saved as a Hugging Face directory and loaded back: the same logits (fp32 on disk). */
static void test_save_and_reload(void **state) {
    (void)state;
    rlvr_err e;
    char *tmp = test_tmpdir("model_save");
    for (size_t c = 0; c < N_CASES; c++) {
        char *dir = case_dir(CASES[c]);
        expected x;
        expected_load(&x, dir);
        model *m = load(dir);
        char out[1200];
        snprintf(out, sizeof out, "%s/%s", tmp, CASES[c]);
        if (model_save(m, out, &e) != 0) fail_msg("%s", e.msg);
        model_free(m);
        char gen[1300];
        snprintf(gen, sizeof gen, "%s/generation_config.json", out);
        assert_true(util_is_file(gen)); /* copied beside the weights */
        m = load(out);
        check_batch_logits(m, &x, CASES[c]);
        model_free(m);
        expected_free(&x);
        free(dir);
    }
    free(tmp);
}

/* An initialized model saves and loads back bit for bit, config included. */
static void test_init_round_trip(void **state) {
    (void)state;
    rlvr_err e;
    model_config c = {.arch = MODEL_QWEN2, .vocab = 50, .hidden = 16, .layers = 1, .heads = 4, .kv_heads = 2,
                      .head_dim = 4, .intermediate = 32, .max_positions = 64, .rope_theta = 1e6f, .rms_eps = 1e-6f,
                      .init_range = 0.02f, .tie_embeddings = 1, .qkv_bias = 1, .bos_token_id = -1, .eos_token_id = 3};
    model *m = model_init(&c, 42, &e);
    assert_non_null(m);
    char *tmp = test_tmpdir("model_init");
    assert_int_equal(model_save(m, tmp, &e), 0);
    model *r = load(tmp);
    assert_int_equal(r->n_params, m->n_params);
    assert_memory_equal(r->params, m->params, m->n_params * sizeof(float));
    assert_int_equal(r->cfg.tie_embeddings, 1);
    assert_int_equal(r->cfg.qkv_bias, 1);
    assert_int_equal(r->cfg.eos_token_id, 3);
    assert_true(fabsf(r->cfg.rope_theta - 1e6f) < 1.0f);
    /* same seed, same weights; another seed, others */
    model *m2 = model_init(&c, 42, &e), *m3 = model_init(&c, 43, &e);
    assert_memory_equal(m2->params, m->params, m->n_params * sizeof(float));
    assert_memory_not_equal(m3->params, m->params, m->n_params * sizeof(float));
    model_free(m);
    model_free(m2);
    model_free(m3);
    model_free(r);
    free(tmp);
}

static void expect_config_error(const char *json, const char *needle) {
    model_config c;
    rlvr_err e = {{0}};
    assert_int_equal(model_config_parse(&c, json, "config.json", &e), -1);
    if (!strstr(e.msg, needle)) fail_msg("message '%s' lacks '%s'", e.msg, needle);
}

static void test_config_errors(void **state) {
    (void)state;
    expect_config_error("{\"architectures\": [\"GPT2LMHeadModel\"]}",
                        "architecture 'GPT2LMHeadModel' is not supported (supported: LlamaForCausalLM, Qwen2ForCausalLM");
    expect_config_error("[1]", "not a JSON object");
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 32}", "missing 'vocab_size'");
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 10, \"hidden_size\": 32, "
                        "\"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"num_key_value_heads\": 3, "
                        "\"intermediate_size\": 8}",
                        "must be a multiple of num_key_value_heads");
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 10, \"hidden_size\": 32, "
                        "\"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"intermediate_size\": 8, "
                        "\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4}}",
                        "rope scaling type 'yarn' is not supported");
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": -3}", "'vocab_size' must be");
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 10, \"hidden_size\": 32, "
                        "\"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"intermediate_size\": 8, "
                        "\"hidden_act\": \"gelu\"}",
                        "hidden_act must be \"silu\"");
    /* the same parse accepts transformers 5's rope_parameters with llama3 scaling */
    model_config c;
    rlvr_err e;
    assert_int_equal(model_config_parse(&c,
                                        "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 10, "
                                        "\"hidden_size\": 32, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, "
                                        "\"intermediate_size\": 8, \"rope_parameters\": {\"rope_type\": \"llama3\", "
                                        "\"rope_theta\": 500000.0, \"factor\": 32.0, \"low_freq_factor\": 1.0, "
                                        "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}}",
                                        "c", &e),
                     0);
    assert_int_equal(c.rope_llama3, 1);
    assert_true(c.rope_theta == 500000.0f && c.rope_factor == 32.0f);
    assert_int_equal(c.head_dim, 8);
    /* each architecture's defaults, as transformers applies them */
    const char *base = "\"vocab_size\": 10, \"hidden_size\": 32, \"num_hidden_layers\": 1, "
                       "\"num_attention_heads\": 4, \"intermediate_size\": 8";
    char json[512];
    snprintf(json, sizeof json, "{\"architectures\": [\"Qwen3ForCausalLM\"], %s}", base);
    assert_int_equal(model_config_parse(&c, json, "c", &e), 0);
    assert_int_equal(c.head_dim, 128);
    assert_int_equal(c.qk_norm, 1);
    snprintf(json, sizeof json, "{\"architectures\": [\"MistralForCausalLM\"], %s}", base);
    assert_int_equal(model_config_parse(&c, json, "c", &e), 0);
    assert_int_equal(c.sliding_window, 4096);
    snprintf(json, sizeof json, "{\"architectures\": [\"MistralForCausalLM\"], \"sliding_window\": null, %s}", base);
    assert_int_equal(model_config_parse(&c, json, "c", &e), 0);
    assert_int_equal(c.sliding_window, 0);
    snprintf(json, sizeof json, "{\"architectures\": [\"Qwen2ForCausalLM\"], \"sliding_window\": 4, %s}", base);
    assert_int_equal(model_config_parse(&c, json, "c", &e), 0);
    assert_int_equal(c.sliding_window, 0); /* use_sliding_window defaults to false */
    assert_int_equal(c.qkv_bias, 1);
}

/* config.json files shaped like published checkpoints' (SmolLM-135M, TinyLlama-1.1B,
 * Llama-3.2-1B, Qwen2.5-0.5B, Qwen3-0.6B): the fields the model uses. */
static void test_published_configs(void **state) {
    (void)state;
    model_config c;
    rlvr_err e;
    assert_int_equal(model_config_parse(&c,
        "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 576, \"intermediate_size\": 1536, "
        "\"max_position_embeddings\": 2048, \"num_attention_heads\": 9, \"num_hidden_layers\": 30, "
        "\"num_key_value_heads\": 3, \"rms_norm_eps\": 1e-05, \"rope_scaling\": null, \"rope_theta\": 10000.0, "
        "\"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\", \"vocab_size\": 49152, \"bos_token_id\": 0, "
        "\"eos_token_id\": 0, \"hidden_act\": \"silu\", \"pretraining_tp\": 1, \"model_type\": \"llama\"}", "smollm", &e), 0);
    assert_int_equal(c.head_dim, 64);
    assert_int_equal(c.tie_embeddings, 1);
    assert_int_equal(c.kv_heads, 3);
    assert_true(c.rms_eps == 1e-5f);
    assert_int_equal(model_config_parse(&c,
        "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 2048, \"intermediate_size\": 5632, "
        "\"max_position_embeddings\": 2048, \"num_attention_heads\": 32, \"num_hidden_layers\": 22, "
        "\"num_key_value_heads\": 4, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, "
        "\"tie_word_embeddings\": false, \"vocab_size\": 32000, \"bos_token_id\": 1, \"eos_token_id\": 2}", "tinyllama", &e), 0);
    assert_int_equal(c.head_dim, 64);
    assert_int_equal(c.eos_token_id, 2);
    assert_int_equal(model_config_parse(&c,
        "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 2048, \"intermediate_size\": 8192, "
        "\"max_position_embeddings\": 131072, \"num_attention_heads\": 32, \"num_hidden_layers\": 16, "
        "\"num_key_value_heads\": 8, \"head_dim\": 64, \"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, "
        "\"rope_scaling\": {\"factor\": 32.0, \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0, "
        "\"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}, \"tie_word_embeddings\": true, "
        "\"vocab_size\": 128256, \"bos_token_id\": 128000, \"eos_token_id\": [128001, 128008, 128009]}", "llama3.2", &e), 0);
    assert_int_equal(c.rope_llama3, 1);
    assert_int_equal(c.rope_original_max_positions, 8192);
    assert_true(c.rope_theta == 500000.0f && c.rope_factor == 32.0f);
    assert_int_equal(c.eos_token_id, 128001);
    assert_int_equal(model_config_parse(&c,
        "{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 896, \"intermediate_size\": 4864, "
        "\"max_position_embeddings\": 32768, \"max_window_layers\": 21, \"num_attention_heads\": 14, "
        "\"num_hidden_layers\": 24, \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, "
        "\"sliding_window\": 32768, \"tie_word_embeddings\": true, \"use_sliding_window\": false, "
        "\"vocab_size\": 151936, \"eos_token_id\": 151643}", "qwen2.5", &e), 0);
    assert_int_equal(c.head_dim, 64);
    assert_int_equal(c.qkv_bias, 1);
    assert_int_equal(c.o_bias, 0);
    assert_int_equal(c.sliding_window, 0);
    assert_int_equal(model_config_parse(&c,
        "{\"architectures\": [\"Qwen3ForCausalLM\"], \"attention_bias\": false, \"head_dim\": 128, "
        "\"hidden_size\": 1024, \"intermediate_size\": 3072, \"max_position_embeddings\": 40960, "
        "\"num_attention_heads\": 16, \"num_hidden_layers\": 28, \"num_key_value_heads\": 8, "
        "\"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000, \"tie_word_embeddings\": true, "
        "\"vocab_size\": 151936}", "qwen3", &e), 0);
    assert_int_equal(c.head_dim, 128); /* != hidden / heads = 64 */
    assert_int_equal(c.qk_norm, 1);
    assert_int_equal(c.qkv_bias, 0);
}

static void test_missing_and_misshapen_tensors(void **state) {
    (void)state;
    rlvr_err e;
    char *tmp = test_tmpdir("model_bad");
    model_config c = {.arch = MODEL_LLAMA, .vocab = 10, .hidden = 8, .layers = 1, .heads = 2, .kv_heads = 2,
                      .head_dim = 4, .intermediate = 8, .max_positions = 16, .rope_theta = 1e4f, .rms_eps = 1e-6f,
                      .init_range = 0.02f, .bos_token_id = -1, .eos_token_id = -1};
    model *m = model_init(&c, 1, &e);
    assert_int_equal(model_save(m, tmp, &e), 0);
    model_free(m);
    /* a config that wants more layers than the weights have */
    char *cfg = malloc(2000);
    snprintf(cfg, 2000,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 10, \"hidden_size\": 8, "
             "\"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"intermediate_size\": 8}");
    free(test_write(tmp, "config.json", cfg));
    assert_null(model_load(tmp, &e));
    assert_non_null(strstr(e.msg, "tensor 'model.layers.1.input_layernorm.weight' is missing"));
    snprintf(cfg, 2000,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 12, \"hidden_size\": 8, "
             "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"intermediate_size\": 8}");
    free(test_write(tmp, "config.json", cfg));
    assert_null(model_load(tmp, &e));
    assert_non_null(strstr(e.msg, "tensor 'model.embed_tokens.weight' has shape [10, 8], the config needs [12, 8]"));
    /* token ids outside the vocabulary are refused */
    snprintf(cfg, 2000,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 10, \"hidden_size\": 8, "
             "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"intermediate_size\": 8}");
    free(test_write(tmp, "config.json", cfg));
    m = load(tmp);
    model_kv *kv = model_kv_new(m, 1, 4, &e);
    int slot = 0, n = 2, toks[2] = {3, 10};
    assert_int_equal(model_forward(m, kv, 1, &slot, &n, toks, &e), -1);
    assert_non_null(strstr(e.msg, "token id 10 is outside the vocabulary [0, 10)"));
    model_kv_free(kv);
    model_free(m);
    free(cfg);
    free(tmp);
    /* a sequence longer than a sliding window is refused, not silently computed in full */
    c.arch = MODEL_MISTRAL;
    c.sliding_window = 4;
    m = model_init(&c, 1, &e);
    kv = model_kv_new(m, 1, 8, &e);
    int five = 5, ids[5] = {1, 2, 3, 4, 5};
    assert_int_equal(model_forward(m, kv, 1, &slot, &five, ids, &e), -1);
    assert_non_null(strstr(e.msg, "exceed the sliding window (4)"));
    model_kv_free(kv);
    model_free(m);
}

/* stas/tiny-random-llama-2 (bf16, from ../shared) against the reference logits that came with it. */
static void test_shared_tiny_llama(void **state) {
    (void)state;
    char dir[1024], ref[1100];
    snprintf(dir, sizeof dir, "%s/../shared/data/models/tiny-random-llama-2-hf", getenv("RLVR_SOURCE_DIR"));
    snprintf(ref, sizeof ref, "%s/reference_logits.lunaflux.json", dir);
    if (!util_is_file(ref)) {
        printf("skipped: %s is absent\n", ref);
        skip();
    }
    rlvr_err e;
    char *text = util_read_file(ref, NULL, &e);
    assert_non_null(text);
    cJSON *root = cJSON_Parse(text);
    model *m = load(dir);
    const cJSON *cases = cJSON_GetObjectItem(root, "model_cases");
    int n_cases = 0;
    float *logits = malloc((size_t)m->cfg.vocab * sizeof(float));
    for (const cJSON *c = cases->child; c; c = c->next, n_cases++) {
        const cJSON *ids = cJSON_GetObjectItem(c, "input_ids");
        int n = cJSON_GetArraySize(ids), toks[256], slot = 0;
        for (int i = 0; i < n; i++) toks[i] = cJSON_GetArrayItem(ids, i)->valueint;
        model_kv *kv = model_kv_new(m, 1, n + 8, &e);
        assert_int_equal(model_forward(m, kv, 1, &slot, &n, toks, &e), 0);
        int last = n - 1;
        model_logits(m, &last, 1, logits);
        for (const cJSON *s = cJSON_GetObjectItem(c, "sampled_logits")->child; s; s = s->next) {
            float want = (float)s->valuedouble, got = logits[atoi(s->string)];
            if (fabsf(got - want) > 1e-4f) fail_msg("token %s: %g, reference %g", s->string, got, want);
        }
        /* greedy continuation, through the cache */
        const cJSON *cont = cJSON_GetObjectItem(c, "greedy_continuation");
        for (const cJSON *g = cont ? cont->child : NULL; g; g = g->next) {
            int best = 0;
            for (int v = 1; v < m->cfg.vocab; v++)
                if (logits[v] > logits[best]) best = v;
            assert_int_equal(best, g->valueint);
            int one = 1, zero = 0;
            assert_int_equal(model_forward(m, kv, 1, &slot, &one, &best, &e), 0);
            model_logits(m, &zero, 1, logits);
        }
        model_kv_free(kv);
    }
    assert_true(n_cases > 0);
    free(logits);
    model_free(m);
    cJSON_Delete(root);
    free(text);
}

/* The plain C sgemm equals BLAS's on odd shapes and every transpose combination. */
static void test_sgemm_paths_agree(void **state) {
    (void)state;
    int M = 7, N = 13, K = 11;
    float A[7 * 11 + 11 * 7], B[11 * 13 + 13 * 11], C1[7 * 13], C2[7 * 13];
    for (int i = 0; i < (int)(sizeof A / sizeof *A); i++) A[i] = (float)((i * 37) % 17) / 7.0f - 1.0f;
    for (int i = 0; i < (int)(sizeof B / sizeof *B); i++) B[i] = (float)((i * 53) % 19) / 9.0f - 1.0f;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            for (int i = 0; i < M * N; i++) C1[i] = C2[i] = (float)i / 10.0f;
            cpu_set_blas(0);
            cpu_sgemm(ta, tb, M, N, K, 0.5f, A, ta ? M : K, B, tb ? K : N, 1.0f, C1, N);
            /* the definition, in double */
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0.0;
                    for (int k = 0; k < K; k++)
                        s += (double)(ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
                    C2[i * N + j] += (float)(0.5 * s);
                }
            assert_true(max_abs_diff(C1, C2, (size_t)M * N) < 1e-5f);
            cpu_set_blas(1);
            for (int i = 0; i < M * N; i++) C1[i] = (float)i / 10.0f;
            cpu_sgemm(ta, tb, M, N, K, 0.5f, A, ta ? M : K, B, tb ? K : N, 1.0f, C1, N);
            assert_true(max_abs_diff(C1, C2, (size_t)M * N) < 1e-5f);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgemm_paths_agree),
        cmocka_unit_test(test_fixture_logits),
        cmocka_unit_test(test_kv_cache_increments_and_truncation),
        cmocka_unit_test(test_greedy_matches_transformers),
        cmocka_unit_test(test_gradients_match_torch),
        cmocka_unit_test(test_gradient_finite_differences),
        cmocka_unit_test(test_hidden_backward_finite_differences),
        cmocka_unit_test(test_logprobs_across_vocab_chunks),
        cmocka_unit_test(test_save_and_reload),
        cmocka_unit_test(test_init_round_trip),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_published_configs),
        cmocka_unit_test(test_missing_and_misshapen_tensors),
        cmocka_unit_test(test_shared_tiny_llama),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
