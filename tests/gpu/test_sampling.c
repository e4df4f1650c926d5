/* test_sampling.c - kern_sample (kernels/sampling.cu) against its CPU twin sample_next
 * (rollout/sampling.c), and the device's Philox against core/rng.c.
 *
 * (a) Philox: the raw block and rng_uniform, bit for bit, on many (seed, stream, position)
 *     keys, edge values included.
 * (b) Greedy: the same token as the CPU on every row, maxima tied at several ids included
 *     (lowest id wins), log-probability 0.
 * (c) Sampled rows, V = 151,936, 1,000 and 7, temperatures and top-k / top-p / min-p
 *     combinations (all off included), some rows with logits rounded to 1/8 so that
 *     probabilities tie at the top-k and top-p thresholds, some with -inf logits. The GPU
 *     computes each probability with CUDA's expf (within 2 ulp) and sums in another
 *     order; glibc's expf is within 1 ulp. So a probability, and any mass, may differ from
 *     the CPU's by 3 * 2^-23 relative (3.6e-7), no more. A row is "borderline" when that
 *     could change the outcome, with a margin of BORDER = 1e-6 (relative): the CPU's draw
 *     within BORDER * total of a cumulative boundary, a top-p cumulative mass within
 *     BORDER * kept of the threshold, the last kept and first dropped top-k
 *     probabilities (of different logits) within BORDER of each other, or a probability
 *     within BORDER of min_p. Other rows must give the CPU's token and a log-probability
 *     within 1e-4; borderline rows are counted (the test fails when they pass 1% of the
 *     rows), and when only the draw is borderline the GPU's token must still lie within
 *     BORDER of the draw in the CPU's cumulative distribution. (The first draft
 *     said 1e-4: with 151,936 tokens a drawn token holds ~1e-4 of the mass, so most rows
 *     would be "borderline" at that margin, and nothing would be tested.) Logit scales are
 *     chosen peaked enough (like a language model's) that borderline rows are rare.
 * (d) Batch invariance: 65 rows of mixed parameters, each sampled alone and within the
 *     batch in two orders: the same token and log-probability bits.
 * Every call runs twice and must repeat bit for bit. Per case the test prints rows, equal
 * tokens, borderline rows, the largest log-probability difference and the time per call.
 * RLVR_GPU_TEST_SHORT=1 (run_on_device.sh --sanitize) leaves out V = 151,936. */
#include <time.h>

#include "gpu_test.h"
#include "rng.h"
#include "sampling.h"

#define BORDER 1e-6
#define QWEN_V 151936

static int short_run;
static long total_rows, total_borderline;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *dev_copy(const void *host, size_t bytes) {
    rlvr_err e = {{0}};
    void *d = kern_malloc(bytes ? bytes : 1, &e);
    if (!d || kern_memcpy_h2d(d, host, bytes, &e) != 0) {
        fprintf(stderr, "dev_copy: %s\n", e.msg);
        exit(1);
    }
    return d;
}

/* kern_sample on host arrays: tokens and logp of N rows; returns the milliseconds of the
 * call (launch to synchronize). */
static double gpu_sample(const float *logits, int N, int V, const kern_sample_params *prm, const uint64_t *seq,
                         const uint64_t *pos, uint64_t seed, int *tok, float *lp) {
    rlvr_err e = {{0}};
    float *d_logits = dev_copy(logits, (size_t)N * V * sizeof(float));
    kern_sample_params *d_prm = dev_copy(prm, (size_t)N * sizeof *prm);
    uint64_t *d_seq = dev_copy(seq, (size_t)N * sizeof *seq), *d_pos = dev_copy(pos, (size_t)N * sizeof *pos);
    for (int i = 0; i < N; i++) tok[i] = -7, lp[i] = 123.0f; /* poison: must be overwritten */
    int *d_tok = dev_copy(tok, (size_t)N * sizeof *tok);
    float *d_lp = dev_copy(lp, (size_t)N * sizeof *lp);
    double t0 = now_ms();
    CHECK(kern_sample(d_logits, N, V, d_prm, d_seq, d_pos, seed, d_tok, d_lp, NULL, &e) == 0, "%s", e.msg);
    CHECK(kern_synchronize(&e) == 0, "%s", e.msg);
    double ms = now_ms() - t0;
    CHECK(kern_memcpy_d2h(tok, d_tok, (size_t)N * sizeof *tok, &e) == 0, "%s", e.msg);
    CHECK(kern_memcpy_d2h(lp, d_lp, (size_t)N * sizeof *lp, &e) == 0, "%s", e.msg);
    kern_free(d_logits), kern_free(d_prm), kern_free(d_seq), kern_free(d_pos), kern_free(d_tok), kern_free(d_lp);
    return ms;
}

/* ---- (a) Philox ------------------------------------------------------------------------------ */

static void check_philox(int n) {
    rlvr_err e = {{0}};
    uint64_t *keys = malloc((size_t)n * 3 * sizeof *keys);
    static const uint64_t edge[] = {0, 1, 0xffffffffull, 0x100000000ull, 0x7fffffffffffffffull, UINT64_MAX};
    rng_stream r;
    rng_stream_init(&r, 2024, 17);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 3; j++) {
            uint64_t x = rng_stream_u64(&r);
            /* a quarter of the keys are small (sequence ids and positions are) or edge values */
            if (x % 4 == 0) x = i < 216 ? edge[(i / (j == 0 ? 1 : j == 1 ? 6 : 36)) % 6] : x % 100000;
            keys[3 * i + j] = x;
        }
    float *out = malloc((size_t)n * sizeof *out);
    uint32_t *bits = malloc((size_t)n * 4 * sizeof *bits);
    uint64_t *d_keys = dev_copy(keys, (size_t)n * 3 * sizeof *keys);
    float *d_out = kern_malloc((size_t)n * sizeof *out, &e);
    uint32_t *d_bits = kern_malloc((size_t)n * 4 * sizeof *bits, &e);
    CHECK(d_out && d_bits, "%s", e.msg);
    CHECK(kern_rng_uniform(d_out, d_bits, d_keys, n, NULL, &e) == 0, "%s", e.msg);
    CHECK(kern_memcpy_d2h(out, d_out, (size_t)n * sizeof *out, &e) == 0, "%s", e.msg);
    CHECK(kern_memcpy_d2h(bits, d_bits, (size_t)n * 4 * sizeof *bits, &e) == 0, "%s", e.msg);
    int bad_bits = 0, bad_uniform = 0;
    for (int i = 0; i < n; i++) {
        uint64_t seed = keys[3 * i], stream = keys[3 * i + 1], position = keys[3 * i + 2];
        uint32_t ctr[4] = {(uint32_t)position, (uint32_t)(position >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
        uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, want[4];
        rng_philox4x32(ctr, key, want);
        if (memcmp(want, bits + 4 * i, sizeof want) != 0 && bad_bits++ == 0)
            CHECK(0, "philox block of key %d (seed %llu stream %llu position %llu) differs", i,
                  (unsigned long long)seed, (unsigned long long)stream, (unsigned long long)position);
        for (int lane = 0; lane < 4; lane++) { /* lanes 1..3 from the device's raw bits */
            float got = lane == 0 ? out[i] : (float)(bits[4 * i + lane] >> 8) * (1.0f / 16777216.0f);
            float u = rng_uniform(seed, stream, position, (uint32_t)lane);
            if (memcmp(&got, &u, sizeof u) != 0 && bad_uniform++ == 0)
                CHECK(0, "uniform of key %d lane %d: %.9g, want %.9g", i, lane, got, u);
        }
    }
    printf("philox: %d keys, %d blocks differ, %d uniforms differ\n", n, bad_bits, bad_uniform);
    CHECK(kern_rng_uniform(d_out, NULL, d_keys, 0, NULL, &e) == -1, "n = 0 accepted");
    kern_free(d_keys), kern_free(d_out), kern_free(d_bits);
    free(keys), free(out), free(bits);
}

/* ---- rows and their CPU reference ---------------------------------------------------------------- */

typedef struct row_case {
    float temperature, top_p, min_p;
    int top_k;
} row_case;

static sample_params to_cpu(const kern_sample_params *k) {
    sample_params p = {k->temperature, k->top_k, k->top_p, k->min_p};
    return p;
}

/* Fills one row of logits: a standard normal times `scale`, rounded to 1/8 when `quantize`
 * (ties), with a fraction `masked` of -inf (never the first id, so a finite one remains). */
static void make_row(float *x, int V, rng_stream *r, float scale, int quantize, float masked) {
    for (int v = 0; v < V; v++) {
        float l = scale * rng_stream_normal(r);
        if (quantize) l = roundf(l * 8.0f) / 8.0f;
        if (v > 0 && masked > 0 && rng_stream_uniform(r) < masked) l = -INFINITY;
        x[v] = l;
    }
}

static const float *sort_prob;
static int by_prob_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_prob[i] != sort_prob[j]) return sort_prob[i] > sort_prob[j] ? -1 : 1;
    return i < j ? -1 : i > j;
}

/* What the CPU did with one row: its token and log-probability, and whether rounding
 * could move the outcome (see the top): through a filter, or through the draw alone. */
typedef struct cpu_row {
    int token;
    float logp;
    int filter_borderline, draw_borderline;
} cpu_row;

static cpu_row cpu_reference(sampler *s, int *order, const float *x, const kern_sample_params *kp, uint64_t seed,
                             uint64_t seq, uint64_t pos) {
    cpu_row c = {0, 0, 0, 0};
    sample_params p = to_cpu(kp);
    c.token = sample_next(s, x, &p, seed, seq, pos, &c.logp);
    if (p.temperature == 0.0f) return c;
    const int V = s->vocab, k = p.top_k > 0 && p.top_k < V ? p.top_k : V;
    /* s->prob and s->keep are what sample_next left: the probabilities and the kept set */
    if (k < V || p.top_p < 1.0f) {
        for (int v = 0; v < V; v++) order[v] = v;
        sort_prob = s->prob;
        qsort(order, (size_t)V, sizeof *order, by_prob_desc);
        if (k < V) {
            float a = s->prob[order[k - 1]], b = s->prob[order[k]];
            if (x[order[k - 1]] != x[order[k]] && fabs((double)a - b) <= BORDER * a) c.filter_borderline = 1;
        }
        if (p.top_p < 1.0f) {
            double kept = 0.0, cum = 0.0, prev = 0.0;
            for (int r = 0; r < k; r++) kept += s->prob[order[r]];
            double theta = p.top_p * kept;
            int r = 0;
            for (; r < k; r++) {
                prev = cum;
                cum += s->prob[order[r]];
                if (cum >= theta) break;
            }
            if (fabs(cum - theta) <= BORDER * kept || (r > 0 && fabs(prev - theta) <= BORDER * kept))
                c.filter_borderline = 1;
        }
    }
    if (p.min_p > 0.0f)
        for (int v = 0; v < V; v++)
            if (fabs((double)s->prob[v] - p.min_p) <= BORDER * p.min_p) c.filter_borderline = 1;
    double total = 0.0;
    for (int v = 0; v < V; v++)
        if (s->keep[v]) total += s->prob[v];
    double u = (double)rng_uniform(seed, seq, pos, 0) * total, before = 0.0;
    for (int v = 0; v < c.token; v++)
        if (s->keep[v]) before += s->prob[v];
    double after = before + s->prob[c.token];
    if (u - before <= BORDER * total || after - u <= BORDER * total) c.draw_borderline = 1;
    return c;
}

/* For a draw-only borderline row: the GPU's token is kept on the CPU and its cumulative
 * interval lies within BORDER of the draw. */
static int near_draw(const sampler *s, int token, uint64_t seed, uint64_t seq, uint64_t pos) {
    if (token < 0 || token >= s->vocab || !s->keep[token]) return 0;
    double total = 0.0, before = 0.0;
    for (int v = 0; v < s->vocab; v++)
        if (s->keep[v]) total += s->prob[v];
    for (int v = 0; v < token; v++)
        if (s->keep[v]) before += s->prob[v];
    double u = (double)rng_uniform(seed, seq, pos, 0) * total;
    return before - BORDER * total <= u && u < before + s->prob[token] + BORDER * total;
}

/* ---- (b) greedy ---------------------------------------------------------------------------------- */

/* N rows of V logits with their parameters and keys, what the GPU drew for them (tokens,
 * log-probs) and a rerun's draws, and the CPU reference's scratch. */
typedef struct sample_case {
    int N, V;
    float *x, *lp, *lp2;
    kern_sample_params *prm;
    uint64_t *seq, *pos;
    int *tok, *tok2, *order;
} sample_case;

static sample_case case_new(int N, int V) {
    sample_case c = {.N = N, .V = V};
    c.x = malloc((size_t)N * V * sizeof *c.x), c.lp = malloc((size_t)N * 4), c.lp2 = malloc((size_t)N * 4);
    c.prm = malloc((size_t)N * sizeof *c.prm);
    c.seq = malloc((size_t)N * 8), c.pos = malloc((size_t)N * 8);
    c.tok = malloc((size_t)N * sizeof(int)), c.tok2 = malloc((size_t)N * sizeof(int));
    c.order = malloc((size_t)V * sizeof(int));
    return c;
}

static void case_free(sample_case *c) {
    free(c->x), free(c->lp), free(c->lp2), free(c->prm), free(c->seq), free(c->pos), free(c->tok), free(c->tok2);
    free(c->order);
}

/* Draws every row on the GPU twice (the second into tok2, lp2), checks the two runs agree
 * bit for bit, and returns the first run's milliseconds. */
static double case_draw(sample_case *c, uint64_t seed, const char *what) {
    double ms = gpu_sample(c->x, c->N, c->V, c->prm, c->seq, c->pos, seed, c->tok, c->lp);
    gpu_sample(c->x, c->N, c->V, c->prm, c->seq, c->pos, seed, c->tok2, c->lp2);
    CHECK(memcmp(c->tok, c->tok2, (size_t)c->N * sizeof(int)) == 0 && memcmp(c->lp, c->lp2, (size_t)c->N * 4) == 0,
          "%s V=%d: two runs differ", what, c->V);
    return ms;
}

static void check_greedy(int V, int N) {
    rng_stream r;
    rng_stream_init(&r, 5, (uint64_t)V);
    sample_case sc = case_new(N, V);
    float *x = sc.x, *lp = sc.lp;
    kern_sample_params *prm = sc.prm;
    uint64_t *seq = sc.seq, *pos = sc.pos;
    int *tok = sc.tok, *order = sc.order;
    for (int i = 0; i < N; i++) {
        float *row = x + (size_t)i * V;
        int kind = i % 5;
        make_row(row, V, &r, 2.0f, kind == 1, kind == 4 ? 0.5f : 0.0f);
        if (kind == 1 || kind == 4) { /* the maximum tied at up to 4 ids, one of them maybe the last */
            float top = 20.0f;
            for (int j = 0; j < 4; j++) row[j == 3 ? V - 1 : (int)rng_stream_below(&r, (uint64_t)V)] = top;
        } else if (kind == 2) { /* a constant row: token 0 */
            for (int v = 0; v < V; v++) row[v] = 0.5f;
        } else if (kind == 3) { /* -inf everywhere but two tied ids */
            for (int v = 0; v < V; v++) row[v] = -INFINITY;
            row[V - 1] = 1.0f;
            row[(int)rng_stream_below(&r, (uint64_t)V)] = 1.0f;
        }
        prm[i].temperature = 0.0f; /* the filters are ignored when greedy */
        prm[i].top_k = (int)rng_stream_below(&r, 5);
        prm[i].top_p = i % 2 ? 0.5f : 1.0f;
        prm[i].min_p = i % 3 ? 0.0f : 0.2f;
        seq[i] = rng_stream_u64(&r), pos[i] = rng_stream_below(&r, 4096);
    }
    double ms = case_draw(&sc, 11, "greedy");
    sampler s;
    rlvr_err e = {{0}};
    CHECK(sample_init(&s, V, &e) == 0, "%s", e.msg);
    int equal = 0, reported = 0;
    for (int i = 0; i < N; i++) {
        cpu_row c = cpu_reference(&s, order, x + (size_t)i * V, &prm[i], 11, seq[i], pos[i]);
        if (tok[i] == c.token && lp[i] == 0.0f) equal++;
        else if (!reported++) /* the first difference only */
            CHECK(0, "greedy V=%d row %d: token %d logp %g, want %d and 0", V, i, tok[i], lp[i], c.token);
    }
    CHECK(equal == N, "greedy V=%d: %d of %d rows differ", V, N - equal, N);
    printf("greedy  V=%-6d rows %-4d equal %-4d %.3f ms/call\n", V, N, equal, ms);
    sample_free(&s);
    case_free(&sc);
}

/* ---- (c) sampled rows ------------------------------------------------------------------------------ */

static void check_sampled(int V, const row_case *rc, int N, uint64_t seed) {
    rng_stream r;
    rng_stream_init(&r, seed, (uint64_t)V * 31 + (uint64_t)(rc->top_k + 1000 * rc->top_p));
    sample_case sc = case_new(N, V);
    float *x = sc.x, *lp = sc.lp;
    kern_sample_params *prm = sc.prm;
    uint64_t *seq = sc.seq, *pos = sc.pos;
    int *tok = sc.tok, *order = sc.order;
    for (int i = 0; i < N; i++) {
        /* peaked like a language model's distribution: the logit scale over the temperature
         * is 4.5..6 for the large vocabulary, 1..4 for the small ones */
        float lo = V > 10000 ? 4.5f : 1.0f, hi = V > 10000 ? 6.0f : 4.0f;
        float scale = rc->temperature * (lo + (hi - lo) * rng_stream_uniform(&r));
        make_row(x + (size_t)i * V, V, &r, scale, i % 4 == 1, i % 4 == 3 ? 0.3f : 0.0f);
        prm[i].temperature = rc->temperature, prm[i].top_k = rc->top_k;
        prm[i].top_p = rc->top_p, prm[i].min_p = rc->min_p;
        seq[i] = rng_stream_below(&r, 1u << 20), pos[i] = rng_stream_below(&r, 32768);
    }
    double ms = case_draw(&sc, seed, "sampled");
    sampler s;
    rlvr_err e = {{0}};
    CHECK(sample_init(&s, V, &e) == 0, "%s", e.msg);
    int equal = 0, border_filter = 0, border_draw = 0, reported = 0;
    double max_dlp = 0.0;
    for (int i = 0; i < N; i++) {
        cpu_row c = cpu_reference(&s, order, x + (size_t)i * V, &prm[i], seed, seq[i], pos[i]);
        if (tok[i] == c.token) {
            equal++;
            double d = fabs((double)lp[i] - c.logp);
            if (!(d <= 1e-4) && !reported++)
                CHECK(0, "sampled V=%d row %d token %d: logp %.9g, want %.9g", V, i, tok[i], lp[i], c.logp);
            if (d > max_dlp) max_dlp = d;
        } else if (c.filter_borderline) {
            border_filter++;
        } else if (c.draw_borderline) {
            border_draw++;
            if (!near_draw(&s, tok[i], seed, seq[i], pos[i]) && !reported++)
                CHECK(0, "sampled V=%d row %d: token %d is not next to the draw (CPU: %d)", V, i, tok[i], c.token);
        } else if (!reported++) {
            CHECK(0, "sampled V=%d row %d (T=%g k=%d p=%g min_p=%g): token %d logp %g, want %d logp %g", V, i,
                  rc->temperature, rc->top_k, rc->top_p, rc->min_p, tok[i], lp[i], c.token, c.logp);
        }
    }
    total_rows += N;
    total_borderline += border_filter + border_draw;
    printf("sampled V=%-6d T=%-4g k=%-5d p=%-6g min_p=%-5g rows %-4d equal %-4d borderline %d+%d max|dlogp| %.2g "
           "%.3f ms/call\n",
           V, rc->temperature, rc->top_k, rc->top_p, rc->min_p, N, equal, border_filter, border_draw, max_dlp, ms);
    sample_free(&s);
    case_free(&sc);
}

/* ---- (d) batch invariance ---------------------------------------------------------------------------- */

static void check_batch_invariance(int V) {
    enum { N = 65 };
    rng_stream r;
    rng_stream_init(&r, 77, (uint64_t)V);
    float *x = malloc((size_t)N * V * sizeof *x), *xr = malloc((size_t)N * V * sizeof *xr);
    kern_sample_params prm[N], prm_r[N];
    uint64_t seq[N], pos[N], seq_r[N], pos_r[N];
    int tok[N], tok_r[N], tok1[N];
    float lp[N], lp_r[N], lp1[N];
    for (int i = 0; i < N; i++) {
        int kind = i % 6;
        prm[i].temperature = kind == 0 ? 0.0f : 0.5f + 0.25f * (float)(i % 5);
        prm[i].top_k = kind == 2 || kind == 5 ? 1 + (int)rng_stream_below(&r, 300) : 0;
        prm[i].top_p = kind == 3 || kind == 5 ? 0.5f + 0.45f * rng_stream_uniform(&r) : 1.0f;
        prm[i].min_p = kind == 4 || kind == 5 ? 0.1f * rng_stream_uniform(&r) : 0.0f;
        make_row(x + (size_t)i * V, V, &r, prm[i].temperature * 5.0f + 1.0f, i % 7 == 1, 0.0f);
        seq[i] = rng_stream_below(&r, 1000), pos[i] = rng_stream_below(&r, 1000);
    }
    uint64_t seed = 99;
    double ms = gpu_sample(x, N, V, prm, seq, pos, seed, tok, lp);
    /* the batch rotated by 31: row i lands at index (i + 31) % N */
    for (int i = 0; i < N; i++) {
        int j = (i + 31) % N;
        memcpy(xr + (size_t)j * V, x + (size_t)i * V, (size_t)V * sizeof *x);
        prm_r[j] = prm[i], seq_r[j] = seq[i], pos_r[j] = pos[i];
    }
    gpu_sample(xr, N, V, prm_r, seq_r, pos_r, seed, tok_r, lp_r);
    int same = 0, reported = 0;
    for (int i = 0; i < N; i++) {
        gpu_sample(x + (size_t)i * V, 1, V, &prm[i], &seq[i], &pos[i], seed, &tok1[i], &lp1[i]);
        int j = (i + 31) % N;
        int ok = tok1[i] == tok[i] && tok1[i] == tok_r[j] && memcmp(&lp1[i], &lp[i], 4) == 0 &&
                 memcmp(&lp1[i], &lp_r[j], 4) == 0;
        if (ok) same++;
        else if (!reported++)
            CHECK(0, "batch invariance V=%d row %d: alone %d (%.9g), in the batch %d (%.9g), rotated %d (%.9g)", V, i,
                  tok1[i], lp1[i], tok[i], lp[i], tok_r[j], lp_r[j]);
    }
    CHECK(same == N, "batch invariance V=%d: %d of %d rows differ", V, N - same, N);
    printf("batch   V=%-6d rows %d alone = in batch = rotated: %d  %.3f ms/call of %d rows\n", V, N, same, ms, N);
    free(x), free(xr);
}

static void check_arguments(void) {
    rlvr_err e = {{0}};
    float x[4] = {0, 1, 2, 3};
    kern_sample_params p = {1.0f, 0, 1.0f, 0.0f};
    uint64_t id = 0;
    float *d_x = dev_copy(x, sizeof x);
    kern_sample_params *d_p = dev_copy(&p, sizeof p);
    uint64_t *d_id = dev_copy(&id, sizeof id);
    int *d_tok = kern_malloc(sizeof(int), &e);
    CHECK(kern_sample(d_x, 0, 4, d_p, d_id, d_id, 1, d_tok, NULL, NULL, &e) == -1, "N = 0 accepted");
    CHECK(kern_sample(d_x, 1, 0, d_p, d_id, d_id, 1, d_tok, NULL, NULL, &e) == -1, "V = 0 accepted");
    CHECK(kern_sample(NULL, 1, 4, d_p, d_id, d_id, 1, d_tok, NULL, NULL, &e) == -1, "no logits accepted");
    CHECK(kern_sample(d_x, 1, 4, d_p, d_id, d_id, 1, NULL, NULL, NULL, &e) == -1, "no tokens accepted");
    CHECK(strstr(e.msg, "required") != NULL, "message: %s", e.msg);
    /* logp may be NULL */
    CHECK(kern_sample(d_x, 1, 4, d_p, d_id, d_id, 1, d_tok, NULL, NULL, &e) == 0, "%s", e.msg);
    CHECK(kern_synchronize(&e) == 0, "%s", e.msg);
    kern_free(d_x), kern_free(d_p), kern_free(d_id), kern_free(d_tok);
}

int main(void) {
    gpu_test_require_device();
    const char *short_env = getenv("RLVR_GPU_TEST_SHORT");
    short_run = short_env && strcmp(short_env, "1") == 0;
    check_arguments();
    check_philox(short_run ? 4096 : 200000);
    const int vocabs[3] = {7, 1000, QWEN_V};
    for (int k = 0; k < 3; k++) {
        if (vocabs[k] == QWEN_V && short_run) continue;
        check_greedy(vocabs[k], vocabs[k] == QWEN_V ? 40 : 200);
    }
    const row_case cases[] = {
        {1.0f, 1.0f, 0.0f, 0},     /* temperature only */
        {0.7f, 1.0f, 0.0f, 50},    /* top-k */
        {1.0f, 0.9f, 0.0f, 0},     /* top-p */
        {0.6f, 1.0f, 0.1f, 0},     /* min-p */
        {1.3f, 0.95f, 0.05f, 200}, /* all three */
        {1.0f, 1.0f, 0.0f, 1},     /* top-k 1: the argmax, logp 0 */
        {2.0f, 0.5f, 0.0f, 0},     /* hot, narrow nucleus */
        {0.9f, 0.999f, 0.01f, 1000},
        {1.0f, 0.3f, 0.5f, 0},
        {1.0f, 1.0f, 0.0f, -1}, /* top-k V - 1 (set below) */
    };
    const int n_cases = (int)(sizeof cases / sizeof cases[0]);
    for (int k = 0; k < 3; k++) {
        int V = vocabs[k];
        if (V == QWEN_V && short_run) continue;
        for (int c = 0; c < n_cases; c++) {
            row_case rc = cases[c];
            if (rc.top_k < 0) rc.top_k = V - 1;
            check_sampled(V, &rc, V == QWEN_V ? 48 : 400, 1000 + (uint64_t)c);
        }
    }
    printf("sampled rows %ld, borderline %ld (%.2f%%)\n", total_rows, total_borderline,
           total_rows ? 100.0 * total_borderline / total_rows : 0.0);
    CHECK(total_borderline * 100 <= total_rows, "more than 1%% of the rows are borderline");
    check_batch_invariance(1000);
    check_batch_invariance(7);
    if (!short_run) check_batch_invariance(QWEN_V);
    return gpu_test_finish();
}
