/* test_lmhead.c - the vocabulary-chunked LM head (log-probabilities, entropies, and their
 * backward into x and the head's weights) against its CPU twin (lmhead_logprobs,
 * lmhead_backward: what model_logprobs and model_backward run), fp32 and bf16, on odd
 * vocabularies, chunks that do not divide them, and Qwen2.5's 151,936-token vocabulary.
 *
 * Tolerances. Both sides start from the same numbers (bf16-rounded in bf16 runs) and
 * compute logits in fp32; their sums run in different orders, which moves a logit by
 * ~1e-6 of sum_c |x w|: logz, logp and entropy within 1e-4 + 1e-5 relative. Gradients
 * are sums over V (dx) or T (dw) of dl * w: bounded by a multiple of the magnitudes
 * behind them, sum |dl| |w| with |dl| taken term by term (|dlogp| p + |dentropy| p
 * (|log p| + H) + |dlogp| at the target) so that no cancellation hides an error: 1e-4 of
 * that in fp32, plus 2^-8 in bf16 (dl is rounded to bf16 before its two GEMMs), plus
 * another 2^-8 when the backward takes the probabilities the forward kept (rounded to
 * bf16 too). Two runs must agree bit for bit. */
#include "cpu_ops.h"
#include "gpu_test.h"
#include "rng.h"

static kern_blas *blas;

/* keep (bf16 only): the forward keeps its probabilities and the backward takes them. */
static void check_lmhead(kern_dtype dt, int T, int C, int V, int chunk, int keep) {
    rlvr_err e = {{0}};
    rng_stream r;
    rng_stream_init(&r, 91, (uint64_t)T * 1000003u + (uint64_t)V * 7u + (uint64_t)C + (uint64_t)dt);
    size_t nx = (size_t)T * C, nw = (size_t)V * C, nl = (size_t)T * V;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *dlogp = malloc((size_t)T * 4), *dent = malloc((size_t)T * 4);
    float *dx0 = malloc(nx * 4), *dw0 = malloc(nw * 4);
    int *targets = malloc((size_t)T * sizeof(int));
    const float wscale = 2.5f / sqrtf((float)C); /* logits with a standard deviation near 2.5 */
    for (size_t i = 0; i < nx; i++) x[i] = rng_stream_normal(&r), dx0[i] = 0.1f * rng_stream_normal(&r);
    for (size_t i = 0; i < nw; i++) w[i] = wscale * rng_stream_normal(&r), dw0[i] = 0.01f * rng_stream_normal(&r);
    for (int t = 0; t < T; t++) {
        targets[t] = (int)rng_stream_below(&r, (uint64_t)V);
        dlogp[t] = rng_stream_normal(&r);
        dent[t] = rng_stream_normal(&r);
    }
    gpu_round_to(dt, x, nx), gpu_round_to(dt, w, nw);

    /* CPU twin */
    float *logz = malloc((size_t)T * 4), *logp = malloc((size_t)T * 4), *ent = malloc((size_t)T * 4);
    lmhead_logprobs(logz, logp, ent, x, w, targets, T, C, V);
    float *want_dx = malloc(nx * 4), *want_dw = malloc(nw * 4);
    float *scratch = malloc((size_t)LMHEAD_ROW_BLOCK * LMHEAD_VOCAB_CHUNK * 4);
    memcpy(want_dx, dx0, nx * 4), memcpy(want_dw, dw0, nw * 4);
    lmhead_backward(want_dx, want_dw, x, w, targets, dlogp, dent, logz, ent, T, C, V, scratch);
    /* magnitudes: |dl| term by term, then sum |dl| |w| and sum |dl| |x| */
    float *mag = malloc(nl * 4), *ax = malloc(nx * 4), *aw = malloc(nw * 4);
    float *scale_dx = malloc(nx * 4), *scale_dw = malloc(nw * 4);
    cpu_sgemm(0, 1, T, V, C, 1.0f, x, C, w, C, 0.0f, mag, V);
    for (int t = 0; t < T; t++)
        for (int v = 0; v < V; v++) {
            float *l = mag + (size_t)t * V + v, lp = *l - logz[t], p = expf(lp);
            *l = fabsf(dlogp[t]) * p + fabsf(dent[t]) * p * (fabsf(lp) + fabsf(ent[t])) +
                 (v == targets[t] ? fabsf(dlogp[t]) : 0);
        }
    for (size_t i = 0; i < nx; i++) ax[i] = fabsf(x[i]), scale_dx[i] = fabsf(dx0[i]);
    for (size_t i = 0; i < nw; i++) aw[i] = fabsf(w[i]), scale_dw[i] = fabsf(dw0[i]);
    cpu_sgemm(0, 0, T, C, V, 1.0f, mag, V, aw, C, 1.0f, scale_dx, C);
    cpu_sgemm(1, 0, V, C, T, 1.0f, mag, V, ax, C, 1.0f, scale_dw, C);

    /* GPU, twice */
    void *d_x = gpu_upload(dt, x, nx), *d_w = gpu_upload(dt, w, nw);
    float *d_dlogp = gpu_upload(KERN_F32, dlogp, T), *d_dent = gpu_upload(KERN_F32, dent, T);
    int *d_targets = kern_malloc((size_t)T * sizeof(int), &e);
    CHECK(d_targets && kern_memcpy_h2d(d_targets, targets, (size_t)T * sizeof(int), &e) == 0, "%s", e.msg);
    void *ws = kern_malloc(kern_lmhead_workspace(dt, T, chunk), &e);
    CHECK(ws != NULL, "%s", e.msg);
    void *d_probs = keep ? kern_malloc(nl * 2, &e) : NULL;
    float *d_cmax = keep ? kern_malloc((size_t)T * kern_lmhead_chunks(V, chunk) * 4, &e) : NULL;
    CHECK(!keep || (d_probs && d_cmax), "%s", e.msg);
    float *got[2][5];
    for (int run = 0; run < 2; run++) {
        float *d_logz = gpu_upload(KERN_F32, dlogp, T), *d_logp = gpu_upload(KERN_F32, dlogp, T);
        float *d_ent = gpu_upload(KERN_F32, dlogp, T); /* poisoned: must be overwritten */
        float *d_dx = gpu_upload(KERN_F32, dx0, nx), *d_dw = gpu_upload(KERN_F32, dw0, nw);
        CHECK(kern_lmhead_logprobs(blas, dt, 0, d_logz, d_logp, d_ent, d_x, d_w, d_targets, T, C, V, chunk, ws, d_probs,
                                   d_cmax, NULL, &e) == 0,
              "%s", e.msg);
        CHECK(kern_lmhead_backward(blas, dt, 0, d_dx, d_dw, d_x, d_w, d_targets, d_dlogp, d_dent, d_logz, d_ent, T, C,
                                   V, chunk, ws, d_probs, d_cmax, NULL, &e) == 0,
              "%s", e.msg);
        for (int k = 0; k < 3; k++) got[run][k] = malloc((size_t)T * 4);
        got[run][3] = malloc(nx * 4), got[run][4] = malloc(nw * 4);
        gpu_download(KERN_F32, got[run][0], d_logz, T);
        gpu_download(KERN_F32, got[run][1], d_logp, T);
        gpu_download(KERN_F32, got[run][2], d_ent, T);
        gpu_download(KERN_F32, got[run][3], d_dx, nx);
        gpu_download(KERN_F32, got[run][4], d_dw, nw);
        kern_free(d_logz), kern_free(d_logp), kern_free(d_ent), kern_free(d_dx), kern_free(d_dw);
    }
    char what[128];
    const char *dn = keep ? "bf16 kept" : gpu_dtype_name(dt);
    snprintf(what, sizeof what, "lmhead %s T=%d C=%d V=%d chunk=%d: logz", dn, T, C, V, chunk);
    double e_lz = gpu_check_close(what, got[0][0], logz, NULL, T, 1e-4, 1e-5, 0);
    snprintf(what, sizeof what, "lmhead %s T=%d C=%d V=%d chunk=%d: logp", dn, T, C, V, chunk);
    double e_lp = gpu_check_close(what, got[0][1], logp, NULL, T, 1e-4, 1e-5, 0);
    snprintf(what, sizeof what, "lmhead %s T=%d C=%d V=%d chunk=%d: entropy", dn, T, C, V, chunk);
    double e_h = gpu_check_close(what, got[0][2], ent, NULL, T, 1e-4, 1e-5, 0);
    double stol = 1e-4 + (dt == KERN_BF16 ? 1.0 / 256 : 0) + (keep ? 1.0 / 256 : 0);
    snprintf(what, sizeof what, "lmhead %s T=%d C=%d V=%d chunk=%d: dx", dn, T, C, V, chunk);
    double e_dx = gpu_check_close(what, got[0][3], want_dx, scale_dx, nx, 1e-30, 0, stol);
    snprintf(what, sizeof what, "lmhead %s T=%d C=%d V=%d chunk=%d: dw", dn, T, C, V, chunk);
    double e_dw = gpu_check_close(what, got[0][4], want_dw, scale_dw, nw, 1e-30, 0, stol);
    const size_t sizes[5] = {(size_t)T, (size_t)T, (size_t)T, nx, nw};
    for (int k = 0; k < 5; k++)
        CHECK(memcmp(got[0][k], got[1][k], sizes[k] * 4) == 0, "lmhead %s T=%d V=%d: output %d differs between runs",
              dn, T, V, k);
    printf("lmhead %s T=%-4d C=%-4d V=%-6d chunk=%-5d max |diff| logz %.2g logp %.2g entropy %.2g dx %.2g dw %.2g\n",
           dn, T, C, V, chunk, e_lz, e_lp, e_h, e_dx, e_dw);

    for (int run = 0; run < 2; run++)
        for (int k = 0; k < 5; k++) free(got[run][k]);
    kern_free(d_x), kern_free(d_w), kern_free(d_dlogp), kern_free(d_dent), kern_free(d_targets), kern_free(ws);
    kern_free(d_probs), kern_free(d_cmax);
    free(x), free(w), free(dlogp), free(dent), free(dx0), free(dw0), free(targets), free(logz), free(logp), free(ent);
    free(want_dx), free(want_dw), free(scratch), free(mag), free(ax), free(aw), free(scale_dx), free(scale_dw);
}

/* A target outside the vocabulary gives a NaN log-probability (not a silent number), and
 * logz/entropy of that row stay right. */
static void check_bad_target(void) {
    rlvr_err e = {{0}};
    const int T = 2, C = 4, V = 3;
    float x[8] = {1, 2, 3, 4, -1, 0.5f, 0, 2}, w[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1};
    int targets[2] = {1, V};
    float logz[2], logp[2], ent[2], got_lz[2], got_lp[2];
    lmhead_logprobs(logz, logp, ent, x, w, targets, T, C, V);
    void *d_x = gpu_upload(KERN_F32, x, 8), *d_w = gpu_upload(KERN_F32, w, 12);
    float *d_lz = gpu_upload(KERN_F32, x, 2), *d_lp = gpu_upload(KERN_F32, x, 2);
    int *d_t = kern_malloc(sizeof targets, &e);
    void *ws = kern_malloc(kern_lmhead_workspace(KERN_F32, T, 2), &e);
    CHECK(d_t && ws && kern_memcpy_h2d(d_t, targets, sizeof targets, &e) == 0, "%s", e.msg);
    CHECK(kern_lmhead_logprobs(blas, KERN_F32, 0, d_lz, d_lp, NULL, d_x, d_w, d_t, T, C, V, 2, ws, NULL, NULL, NULL,
                               &e) == 0,
          "%s", e.msg);
    gpu_download(KERN_F32, got_lz, d_lz, 2);
    gpu_download(KERN_F32, got_lp, d_lp, 2);
    CHECK(isnan(got_lp[1]), "logp of an out-of-range target is %g, want NaN", got_lp[1]);
    gpu_check_close("logp, valid target", got_lp, logp, NULL, 1, 1e-6, 1e-6, 0);
    gpu_check_close("logz, out-of-range target", got_lz, logz, NULL, 2, 1e-6, 1e-6, 0);
    CHECK(kern_lmhead_logprobs(blas, KERN_F32, 0, d_lz, d_lp, NULL, d_x, d_w, d_t, T, C, V, 0, ws, NULL, NULL, NULL,
                               &e) == -1,
          "chunk 0 accepted");
    float cmax[4];
    CHECK(kern_lmhead_logprobs(blas, KERN_F32, 0, d_lz, d_lp, NULL, d_x, d_w, d_t, T, C, V, 2, ws, d_lz, cmax, NULL,
                               &e) == -1,
          "kept probabilities accepted in fp32");
    kern_free(d_x), kern_free(d_w), kern_free(d_lz), kern_free(d_lp), kern_free(d_t), kern_free(ws);
}

/* The batch-invariant LM head (bf16): close to the twin; each row's logz, logp and entropy
 * the same bits computed among T rows and alone; and kern_lmhead_logprobs_of_logits, given
 * the whole [T, V] logits from kern_matmul_invariant (the rollout engine's), the same bits
 * as the LM head itself - the rollout's sampling log-probability is the trainer's. */
static void check_invariant(int T, int C, int V, int chunk) {
    rlvr_err e = {{0}};
    rng_stream r;
    rng_stream_init(&r, 21, (uint64_t)T * 7919u + (uint64_t)V);
    float *x = malloc((size_t)T * C * 4), *w = malloc((size_t)V * C * 4);
    int *targets = malloc((size_t)T * sizeof(int));
    for (size_t i = 0; i < (size_t)T * C; i++) x[i] = rng_stream_normal(&r);
    for (size_t i = 0; i < (size_t)V * C; i++) w[i] = 0.1f * rng_stream_normal(&r);
    for (int t = 0; t < T; t++) targets[t] = (int)rng_stream_below(&r, (uint64_t)V);
    gpu_round_to(KERN_BF16, x, (size_t)T * C);
    gpu_round_to(KERN_BF16, w, (size_t)V * C);
    float *want_lz = malloc((size_t)T * 4), *want_lp = malloc((size_t)T * 4), *want_ent = malloc((size_t)T * 4);
    lmhead_logprobs(want_lz, want_lp, want_ent, x, w, targets, T, C, V);
    void *d_x = gpu_upload(KERN_BF16, x, (size_t)T * C), *d_w = gpu_upload(KERN_BF16, w, (size_t)V * C);
    int *d_t = kern_malloc((size_t)T * sizeof(int), &e);
    float *d_out = kern_malloc((size_t)T * 3 * 4, &e), *d_logits = kern_malloc((size_t)T * V * 4, &e);
    void *ws = kern_malloc(kern_lmhead_workspace(KERN_BF16, T, chunk), &e);
    CHECK(d_t && d_out && d_logits && ws && kern_memcpy_h2d(d_t, targets, (size_t)T * sizeof(int), &e) == 0, "%s",
          e.msg);
    float *all = malloc((size_t)T * 3 * 4), *one = malloc(3 * 4), *of_logits = malloc((size_t)T * 2 * 4);
    CHECK(kern_lmhead_logprobs(blas, KERN_BF16, 1, d_out, d_out + T, d_out + 2 * T, d_x, d_w, d_t, T, C, V, chunk, ws,
                               NULL, NULL, NULL, &e) == 0,
          "%s", e.msg);
    gpu_download(KERN_F32, all, d_out, (size_t)T * 3);
    char what[96];
    snprintf(what, sizeof what, "invariant T=%d C=%d V=%d chunk=%d: logz", T, C, V, chunk);
    gpu_check_close(what, all, want_lz, NULL, T, 1e-4, 1e-5, 0);
    snprintf(what, sizeof what, "invariant T=%d C=%d V=%d chunk=%d: logp", T, C, V, chunk);
    gpu_check_close(what, all + T, want_lp, NULL, T, 1e-4, 1e-5, 0);
    int same = 1;
    for (int t = 0; t < T; t += T > 4 ? T / 4 : 1) { /* rows alone */
        CHECK(kern_lmhead_logprobs(blas, KERN_BF16, 1, d_out, d_out + 1, d_out + 2,
                                   (const uint16_t *)d_x + (size_t)t * C, d_w, d_t + t, 1, C, V, chunk, ws, NULL, NULL,
                                   NULL, &e) == 0,
              "%s", e.msg);
        gpu_download(KERN_F32, one, d_out, 3);
        const float row[3] = {all[t], all[T + t], all[2 * T + t]};
        CHECK(memcmp(one, row, sizeof row) == 0, "invariant T=%d V=%d: row %d alone differs from among %d rows", T, V,
              t, T);
        same &= memcmp(one, row, sizeof row) == 0;
    }
    CHECK(kern_matmul_invariant(KERN_F32, d_logits, d_x, d_w, NULL, T, C, V, KERN_INV_TILE_AUTO, NULL, &e) == 0, "%s",
          e.msg);
    CHECK(kern_lmhead_logprobs_of_logits(d_out, d_out + T, d_logits, d_t, T, V, chunk, ws, NULL, &e) == 0, "%s",
          e.msg);
    gpu_download(KERN_F32, of_logits, d_out, (size_t)T * 2);
    CHECK(memcmp(of_logits, all, (size_t)T * 2 * 4) == 0,
          "invariant T=%d V=%d: logz/logp from the whole logits differ from the LM head's", T, V);
    same &= memcmp(of_logits, all, (size_t)T * 2 * 4) == 0;
    CHECK(kern_lmhead_logprobs_of_logits(d_out, d_out + T, d_logits, d_t, T, V, 12, ws, NULL, &e) != 0,
          "a chunk of 12 accepted");
    printf("lmhead invariant T=%-4d C=%-4d V=%-6d chunk=%-5d rows alone, and from whole logits: %s\n", T, C, V, chunk,
           same ? "bit for bit" : "DIFFER");
    kern_free(d_x), kern_free(d_w), kern_free(d_t), kern_free(d_out), kern_free(d_logits), kern_free(ws);
    free(x), free(w), free(targets), free(want_lz), free(want_lp), free(want_ent);
    free(all), free(one), free(of_logits);
}

int main(void) {
    gpu_test_require_device();
    rlvr_err e = {{0}};
    blas = kern_blas_new(&e);
    CHECK(blas != NULL, "%s", e.msg);
    if (!blas) return gpu_test_finish();
    /* dt 0, 1: fp32, bf16; 2: bf16 with the probabilities kept (whole 16-byte vectors where
     * V and the chunk are multiples of 8, element by element elsewhere) */
    for (int k = 0; k < 3; k++) {
        kern_dtype dt = k == 0 ? KERN_F32 : KERN_BF16;
        int keep = k == 2;
        check_lmhead(dt, 1, 8, 5, 3, keep);
        check_lmhead(dt, 5, 33, 100, 7, keep); /* chunks of w start 2-byte aligned in bf16 */
        check_lmhead(dt, 37, 64, 1000, 256, keep);
        check_lmhead(dt, 70, 256, 32001, 4096, keep);
        check_lmhead(dt, 9, 64, 151936, 16384, keep); /* Qwen2.5's vocabulary */
        check_lmhead(dt, 130, 896, 4099, 1024, keep); /* Qwen2.5-0.5B's hidden size */
    }
    check_bad_target();
    check_invariant(5, 64, 1000, 256);       /* the last chunk 232 wide */
    check_invariant(37, 96, 4099, 1024);     /* V odd: every fold element by element */
    check_invariant(64, 896, 151936, 8192);  /* Qwen2.5-0.5B's head at a decode step */
    kern_blas_free(blas);
    return gpu_test_finish();
}
