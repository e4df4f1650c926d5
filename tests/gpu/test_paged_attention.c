/* test_paged_attention.c - the rollout engine's paged KV cache kernels
 * (kernels/paged_attention.cu) against their CPU twins: block copies and the K/V write
 * bit for bit against memcpy, and attention through block tables - plain, split-KV and
 * cascade - against paged_attention_forward, paged_attention_split_forward and
 * cascade_attention_forward (core/cpu_paged_attention.c), on random pools whose block
 * tables are shuffled (no sequence's blocks are contiguous), odd head layouts (14/2 x 64,
 * 12/2 x 128, 7/7 x 40, 6/3 x 30, 8/2 x 256, 16/1 x 64), block sizes 1, 4, 8, 16 and 32,
 * decode (n_new = 1), prefill chunks (37 rows), verification of 4 draft tokens, contexts
 * of 3000 positions cut into chunks of 512, and GRPO-like groups of 8 samples sharing
 * prompt blocks; fp32 and bf16.
 *
 * Tolerances. Both sides start from the same numbers (q and the pool rounded to bf16 on
 * the host in bf16 runs) and compute in fp32; sums run in other orders (an online softmax
 * over tiles of 32 keys against the twin's max pass then sum), so out is within
 * 3e-5 * max(1, max |out|) (values ~N(0, 1), up to 3000 keys), plus in bf16 2^-8 |out|
 * (the kernel's output is rounded to bf16 once), and lse within 2e-5 + 1e-5 |lse|. Every
 * case prints its largest differences. Outputs start as NaN, so a row left unwritten
 * fails; two runs must agree bit for bit; and one sequence's (or group's) rows computed
 * alone must equal, bit for bit, the same rows computed inside a batch of 17 others
 * (batch invariance).
 *
 * RLVR_GPU_TEST_SHORT=1 (run_on_device.sh --sanitize) leaves out the 3000-position
 * split-KV case and the largest batches. The argument checks of the launchers run on the
 * host before any device work, so they run (and must pass) without a GPU too. */
#include <math.h>

#include "cpu_ops.h"
#include "gpu_test.h"
#include "rng.h"

static int short_run = 0;

static float *randn(rng_stream *r, size_t n, kern_dtype dt) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = rng_stream_normal(r);
    gpu_round_to(dt, x, n);
    return x;
}

static int *upload_ints(const int *host, size_t n) {
    rlvr_err e = {{0}};
    int *dev = kern_malloc((n ? n : 1) * sizeof(int), &e);
    if (!dev || kern_memcpy_h2d(dev, host, n * sizeof(int), &e) != 0) {
        fprintf(stderr, "upload_ints: %s\n", e.msg);
        exit(1);
    }
    return dev;
}

/* A device array of n NaNs in dtype dt: what a kernel leaves unwritten reads as NaN. */
static void *upload_nans(kern_dtype dt, size_t n) {
    float *nans = malloc((n ? n : 1) * sizeof *nans);
    for (size_t i = 0; i < n; i++) nans[i] = NAN;
    void *dev = gpu_upload(dt, nans, n);
    free(nans);
    return dev;
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > m) m = fabs(x[i]);
    return m;
}

/* ---- a batch of sequences over a shuffled pool -------------------------------------------- */

typedef struct scene {
    int H, KV, D, bs, n_blocks, max_blocks, n_seqs, T, max_q, max_len, n_groups, max_group_rows;
    int *tables;        /* [n_seqs, max_blocks], -1 past each sequence's blocks */
    int *cu_q, *lens;   /* [n_seqs + 1], [n_seqs] */
    int *cu_groups;     /* [n_groups + 1] */
    int *prefix_blocks; /* [n_groups] */
    float *k, *v;       /* [n_blocks, bs, KV, D], rounded to the dtype */
    float *q;           /* [T, H, D] */
    int owns_pool;
} scene;

static void scene_finish(scene *s) {
    s->cu_q[0] = 0;
    s->max_q = 0, s->max_len = 0, s->max_group_rows = 0;
    for (int i = 0; i < s->n_seqs; i++) {
        const int n = s->cu_q[i + 1] - s->cu_q[i];
        if (n > s->max_q) s->max_q = n;
        if (s->lens[i] > s->max_len) s->max_len = s->lens[i];
    }
    s->T = s->cu_q[s->n_seqs];
    for (int g = 0; g < s->n_groups; g++) {
        const int rows = s->cu_q[s->cu_groups[g + 1]] - s->cu_q[s->cu_groups[g]];
        if (rows > s->max_group_rows) s->max_group_rows = rows;
    }
}

/* n_seqs sequences of lens[i] positions whose last n_new[i] are the query rows, in
 * n_groups groups of group_size[g] consecutive sequences that share their first
 * group_pb[g] blocks (the first sequence's; the others' tables name the same ids). Every
 * other block comes from a shuffled pool with a few blocks to spare. */
static scene scene_new(kern_dtype dt, uint64_t seed, int H, int KV, int D, int bs, int n_seqs, const int *lens,
                       const int *n_new, int n_groups, const int *group_size, const int *group_pb) {
    scene s = {.H = H, .KV = KV, .D = D, .bs = bs, .n_seqs = n_seqs, .n_groups = n_groups, .owns_pool = 1};
    rng_stream r;
    rng_stream_init(&r, seed, (uint64_t)H * 1000003u + (uint64_t)D * 1009u + (uint64_t)bs * 7u + (uint64_t)dt);
    s.cu_q = malloc((size_t)(n_seqs + 1) * sizeof(int));
    s.lens = malloc((size_t)n_seqs * sizeof(int));
    s.cu_groups = malloc((size_t)(n_groups + 1) * sizeof(int));
    s.prefix_blocks = malloc((size_t)n_groups * sizeof(int));
    int need = 0;
    s.cu_q[0] = 0;
    for (int i = 0; i < n_seqs; i++) {
        s.lens[i] = lens[i];
        s.cu_q[i + 1] = s.cu_q[i] + n_new[i];
        const int nb = (lens[i] + bs - 1) / bs;
        if (nb + 1 > s.max_blocks) s.max_blocks = nb + 1; /* a spare column of -1 */
        need += nb;
    }
    s.cu_groups[0] = 0;
    for (int g = 0; g < n_groups; g++) {
        s.cu_groups[g + 1] = s.cu_groups[g] + group_size[g];
        s.prefix_blocks[g] = group_pb[g];
        for (int i = s.cu_groups[g]; i < s.cu_groups[g + 1]; i++) {
            if (n_new[i] < 1 || lens[i] - n_new[i] < group_pb[g] * bs) {
                fprintf(stderr, "scene_new: sequence %d's queries do not lie past its group's prefix\n", i);
                exit(1);
            }
            if (i > s.cu_groups[g]) need -= group_pb[g];
        }
    }
    if (s.cu_groups[n_groups] != n_seqs) {
        fprintf(stderr, "scene_new: groups cover %d of %d sequences\n", s.cu_groups[n_groups], n_seqs);
        exit(1);
    }
    s.n_blocks = need + 5;
    int *perm = malloc((size_t)s.n_blocks * sizeof(int));
    for (int b = 0; b < s.n_blocks; b++) perm[b] = b;
    for (int b = s.n_blocks - 1; b > 0; b--) {
        const int j = (int)rng_stream_below(&r, (uint64_t)b + 1), t = perm[b];
        perm[b] = perm[j], perm[j] = t;
    }
    s.tables = malloc((size_t)n_seqs * s.max_blocks * sizeof(int));
    for (size_t i = 0; i < (size_t)n_seqs * s.max_blocks; i++) s.tables[i] = -1;
    int next = 0;
    for (int g = 0; g < n_groups; g++)
        for (int i = s.cu_groups[g]; i < s.cu_groups[g + 1]; i++) {
            const int nb = (lens[i] + bs - 1) / bs;
            for (int b = 0; b < nb; b++)
                s.tables[(size_t)i * s.max_blocks + b] = i > s.cu_groups[g] && b < group_pb[g]
                                                             ? s.tables[(size_t)s.cu_groups[g] * s.max_blocks + b]
                                                             : perm[next++];
        }
    free(perm);
    scene_finish(&s);
    const size_t pool = (size_t)s.n_blocks * bs * KV * D;
    s.k = randn(&r, pool, dt), s.v = randn(&r, pool, dt);
    s.q = randn(&r, (size_t)s.T * H * D, dt);
    return s;
}

/* The sequences [s0, s1) of s, which must be whole groups [g0, g1), as a batch of their
 * own over the same pool (shared, not copied). */
static scene scene_sub(const scene *s, int s0, int s1, int g0, int g1) {
    scene t = *s;
    t.owns_pool = 0;
    t.n_seqs = s1 - s0, t.n_groups = g1 - g0;
    t.tables = malloc((size_t)t.n_seqs * s->max_blocks * sizeof(int));
    memcpy(t.tables, s->tables + (size_t)s0 * s->max_blocks, (size_t)t.n_seqs * s->max_blocks * sizeof(int));
    t.cu_q = malloc((size_t)(t.n_seqs + 1) * sizeof(int));
    t.lens = malloc((size_t)t.n_seqs * sizeof(int));
    for (int i = 0; i <= t.n_seqs; i++) t.cu_q[i] = s->cu_q[s0 + i] - s->cu_q[s0];
    for (int i = 0; i < t.n_seqs; i++) t.lens[i] = s->lens[s0 + i];
    t.cu_groups = malloc((size_t)(t.n_groups + 1) * sizeof(int));
    t.prefix_blocks = malloc((size_t)t.n_groups * sizeof(int));
    for (int g = 0; g <= t.n_groups; g++) t.cu_groups[g] = s->cu_groups[g0 + g] - s0;
    for (int g = 0; g < t.n_groups; g++) t.prefix_blocks[g] = s->prefix_blocks[g0 + g];
    if (t.cu_groups[0] != 0 || t.cu_groups[t.n_groups] != t.n_seqs) {
        fprintf(stderr, "scene_sub: sequences %d..%d are not groups %d..%d\n", s0, s1, g0, g1);
        exit(1);
    }
    scene_finish(&t);
    const size_t row_floats = (size_t)s->H * s->D;
    t.q = malloc(((size_t)t.T ? (size_t)t.T : 1) * row_floats * sizeof(float));
    memcpy(t.q, s->q + (size_t)s->cu_q[s0] * row_floats, (size_t)t.T * row_floats * sizeof(float));
    return t;
}

static void scene_free(scene *s) {
    free(s->tables), free(s->cu_q), free(s->lens), free(s->cu_groups), free(s->prefix_blocks), free(s->q);
    if (s->owns_pool) free(s->k), free(s->v);
}

/* ---- running the three forms -------------------------------------------------------------- */

typedef enum form { FORM_PLAIN, FORM_SPLIT, FORM_CASCADE } form;
static const char *form_name(form f) { return f == FORM_PLAIN ? "plain" : f == FORM_SPLIT ? "split" : "cascade"; }

static void run_cpu(const scene *s, form f, int split_len, float *out, float *lse) {
    if (f == FORM_PLAIN) {
        float *sc = malloc((size_t)s->max_len * sizeof(float));
        paged_attention_forward(out, lse, s->q, s->k, s->v, s->tables, s->max_blocks, s->cu_q, s->lens, s->n_seqs,
                                s->bs, s->H, s->KV, s->D, sc);
        free(sc);
    } else if (f == FORM_SPLIT) {
        float *sc = malloc((size_t)(split_len + s->D) * sizeof(float));
        paged_attention_split_forward(out, lse, s->q, s->k, s->v, s->tables, s->max_blocks, s->cu_q, s->lens,
                                      s->n_seqs, s->bs, s->H, s->KV, s->D, split_len, sc);
        free(sc);
    } else {
        float *sc = malloc(cascade_attention_scratch(s->T, s->H, s->D, s->max_len) * sizeof(float));
        cascade_attention_forward(out, lse, s->q, s->k, s->v, s->tables, s->max_blocks, s->cu_q, s->lens, s->n_seqs,
                                  s->cu_groups, s->prefix_blocks, s->n_groups, s->bs, s->H, s->KV, s->D, sc);
        free(sc);
    }
}

/* The kernel's out (widened to floats) and lse for scene s. */
static void run_gpu(kern_dtype dt, const scene *s, form f, int split_len, float *out, float *lse) {
    rlvr_err e = {{0}};
    const size_t pool = (size_t)s->n_blocks * s->bs * s->KV * s->D, nq = (size_t)s->T * s->H * s->D;
    const size_t nl = (size_t)s->T * s->H;
    void *d_k = gpu_upload(dt, s->k, pool), *d_v = gpu_upload(dt, s->v, pool), *d_q = gpu_upload(dt, s->q, nq);
    void *d_out = upload_nans(dt, nq);
    float *d_lse = upload_nans(KERN_F32, nl);
    int *d_tables = upload_ints(s->tables, (size_t)s->n_seqs * s->max_blocks);
    int *d_cu = upload_ints(s->cu_q, (size_t)s->n_seqs + 1), *d_lens = upload_ints(s->lens, (size_t)s->n_seqs);
    int *d_groups = upload_ints(s->cu_groups, (size_t)s->n_groups + 1);
    int *d_pb = upload_ints(s->prefix_blocks, (size_t)s->n_groups);
    const kern_paged_batch b = {.block_tables = d_tables,
                                .cu_q = d_cu,
                                .seq_lens = d_lens,
                                .n_seqs = s->n_seqs,
                                .max_blocks = s->max_blocks,
                                .T = s->T,
                                .max_q = s->max_q,
                                .max_seq_len = s->max_len,
                                .cu_groups = d_groups,
                                .prefix_blocks = d_pb,
                                .n_groups = s->n_groups,
                                .max_group_rows = s->max_group_rows};
    void *scratch = NULL;
    int rc;
    if (f == FORM_PLAIN) {
        rc = kern_paged_attention_forward(dt, d_out, d_lse, d_q, d_k, d_v, &b, s->n_blocks, s->bs, s->H, s->KV, s->D,
                                          NULL, &e);
    } else if (f == FORM_SPLIT) {
        scratch = kern_malloc(kern_paged_attention_split_scratch(s->T, s->H, s->D, s->max_len, split_len), &e);
        rc = scratch ? kern_paged_attention_split_forward(dt, d_out, d_lse, d_q, d_k, d_v, &b, s->n_blocks, s->bs,
                                                          s->H, s->KV, s->D, split_len, scratch, NULL, &e)
                     : -1;
    } else {
        scratch = kern_malloc(kern_cascade_attention_scratch(s->T, s->H, s->D, s->max_len, split_len), &e);
        rc = scratch ? kern_cascade_attention_forward(dt, d_out, d_lse, d_q, d_k, d_v, &b, s->n_blocks, s->bs, s->H,
                                                      s->KV, s->D, split_len, scratch, NULL, &e)
                     : -1;
    }
    CHECK(rc == 0, "%s: %s", form_name(f), e.msg);
    CHECK(kern_synchronize(&e) == 0, "%s: %s", form_name(f), e.msg);
    gpu_download(dt, out, d_out, nq);
    gpu_download(KERN_F32, lse, d_lse, nl);
    kern_free(d_k), kern_free(d_v), kern_free(d_q), kern_free(d_out), kern_free(d_lse), kern_free(d_tables);
    kern_free(d_cu), kern_free(d_lens), kern_free(d_groups), kern_free(d_pb), kern_free(scratch);
}

/* One form on one scene against its twin, run twice (bit for bit the same). */
/* bf16 with D = 64 or 128 runs on the tensor cores with P rounded to bf16 (as
 * FlashAttention does): 2^-8 of sum_j p_j |v_j| more. That sum is the CPU twin's output
 * with |v| for v: returned where the tensor cores take the form (bf16, D 64 or 128, H / KV
 * <= 16, not the plain form), else NULL: the CUDA-core kernels keep fp32's bound. */
static float *magnitudes(kern_dtype dt, const scene *s, form f, int split_len) {
    if (dt != KERN_BF16 || f == FORM_PLAIN || (s->D != 64 && s->D != 128) || s->H / s->KV > 16) return NULL;
    const size_t pool = (size_t)s->n_blocks * s->bs * s->KV * s->D, nl = (size_t)s->T * s->H;
    scene a = *s;
    a.v = malloc(pool * sizeof(float));
    for (size_t i = 0; i < pool; i++) a.v[i] = fabsf(s->v[i]);
    float *mag = malloc(nl * s->D * sizeof(float)), *lse = malloc(nl * sizeof(float));
    run_cpu(&a, f, split_len, mag, lse);
    free(a.v), free(lse);
    return mag;
}

static void check_form(kern_dtype dt, const char *name, const scene *s, form f, int split_len) {
    const size_t nq = (size_t)s->T * s->H * s->D, nl = (size_t)s->T * s->H;
    float *want = malloc(nq * sizeof(float)), *want_lse = malloc(nl * sizeof(float));
    float *got = malloc(nq * sizeof(float)), *got_lse = malloc(nl * sizeof(float));
    float *again = malloc(nq * sizeof(float)), *again_lse = malloc(nl * sizeof(float));
    run_cpu(s, f, split_len, want, want_lse);
    run_gpu(dt, s, f, split_len, got, got_lse);
    run_gpu(dt, s, f, split_len, again, again_lse);
    const double scale = max_abs(want, nq) > 1.0 ? max_abs(want, nq) : 1.0;
    float *mag = magnitudes(dt, s, f, split_len);
    char what[200], shape[160];
    snprintf(shape, sizeof shape, "%s %s %s seqs=%d T=%d H=%d KV=%d D=%d block=%d max_len=%d split_len=%d",
             form_name(f), name, gpu_dtype_name(dt), s->n_seqs, s->T, s->H, s->KV, s->D, s->bs, s->max_len,
             f != FORM_PLAIN ? split_len : 0);
    snprintf(what, sizeof what, "%s: out", shape);
    const double rel = dt == KERN_BF16 ? 1.0 / 256 : 0.0;
    const double e_o = gpu_check_close(what, got, want, mag, nq, 3e-5 * scale, rel, rel);
    snprintf(what, sizeof what, "%s: lse", shape);
    const double e_l = gpu_check_close(what, got_lse, want_lse, NULL, nl, 2e-5, 1e-5, 0);
    CHECK(memcmp(got, again, nq * sizeof(float)) == 0 && memcmp(got_lse, again_lse, nl * sizeof(float)) == 0,
          "%s: two runs differ", shape);
    printf("%s: max |diff| out %.3g (%.3g of max |out| %.3g) lse %.3g\n", shape, e_o, e_o / scale, scale, e_l);
    free(mag), free(want), free(want_lse), free(got), free(got_lse), free(again), free(again_lse);
}

/* The rows of sequences [s0, s1) (groups [g0, g1)) computed in the whole batch and alone
 * must be the same bits: a row's result may not depend on the rest of the batch. */
static void check_invariance(kern_dtype dt, const scene *s, form f, int split_len, int s0, int s1, int g0, int g1) {
    scene alone = scene_sub(s, s0, s1, g0, g1);
    const size_t row = (size_t)s->H * s->D, nq = (size_t)s->T * row, nl = (size_t)s->T * s->H;
    float *all = malloc(nq * sizeof(float)), *all_lse = malloc(nl * sizeof(float));
    float *one = malloc((size_t)alone.T * row * sizeof(float));
    float *one_lse = malloc((size_t)alone.T * s->H * sizeof(float));
    run_gpu(dt, s, f, split_len, all, all_lse);
    run_gpu(dt, &alone, f, split_len, one, one_lse);
    const size_t r0 = (size_t)s->cu_q[s0];
    const int same = memcmp(all + r0 * row, one, (size_t)alone.T * row * sizeof(float)) == 0 &&
                     memcmp(all_lse + r0 * s->H, one_lse, (size_t)alone.T * s->H * sizeof(float)) == 0;
    CHECK(same, "%s %s: sequences %d..%d alone differ from the same rows in a batch of %d", form_name(f),
          gpu_dtype_name(dt), s0, s1 - 1, s->n_seqs);
    printf("batch invariance %s %s: sequences %d..%d (%d rows) alone %s inside %d sequences\n", form_name(f),
           gpu_dtype_name(dt), s0, s1 - 1, alone.T, same ? "==" : "!=", s->n_seqs);
    free(all), free(all_lse), free(one), free(one_lse);
    scene_free(&alone);
}

/* Every sequence a group of its own without a shared prefix (plain and split ignore groups). */
static scene scene_plain(kern_dtype dt, uint64_t seed, int H, int KV, int D, int bs, int n, const int *lens,
                         const int *n_new) {
    int *ones = malloc((size_t)n * sizeof(int)), *zeros = calloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++) ones[i] = 1;
    scene s = scene_new(dt, seed, H, KV, D, bs, n, lens, n_new, n, ones, zeros);
    free(ones), free(zeros);
    return s;
}

static void check_attention_forms(kern_dtype dt) {
    { /* decode, Qwen2.5-0.5B heads */
        static const int lens[] = {1, 2, 17, 100, 257, 613}, n_new[] = {1, 1, 1, 1, 1, 1};
        scene s = scene_plain(dt, 1, 14, 2, 64, 16, 6, lens, n_new);
        check_form(dt, "decode", &s, FORM_PLAIN, 0);
        check_form(dt, "decode", &s, FORM_SPLIT, 64);
        scene_free(&s);
    }
    { /* prefill chunks of 37 rows, verification of 4 draft tokens, Qwen2.5-1.5B heads, block 1 */
        static const int lens[] = {37, 80, 41, 4, 300}, n_new[] = {37, 37, 4, 4, 1};
        scene s = scene_plain(dt, 2, 12, 2, 128, 1, 5, lens, n_new);
        check_form(dt, "prefill+verify", &s, FORM_PLAIN, 0);
        check_form(dt, "prefill+verify", &s, FORM_SPLIT, 100);
        scene_free(&s);
    }
    { /* multi-head, D = 40, block 8 */
        static const int lens[] = {5, 90, 200}, n_new[] = {1, 37, 4};
        scene s = scene_plain(dt, 3, 7, 7, 40, 8, 3, lens, n_new);
        check_form(dt, "mha", &s, FORM_PLAIN, 0);
        scene_free(&s);
    }
    { /* D = 30: rows not a multiple of 16 bytes (element-wise loads), block 32 */
        static const int lens[] = {33, 64, 65}, n_new[] = {1, 4, 33};
        scene s = scene_plain(dt, 4, 6, 3, 30, 32, 3, lens, n_new);
        check_form(dt, "odd-d", &s, FORM_PLAIN, 0);
        check_form(dt, "odd-d", &s, FORM_SPLIT, 32);
        scene_free(&s);
    }
    { /* D = 256 */
        static const int lens[] = {70, 300}, n_new[] = {4, 1};
        scene s = scene_plain(dt, 5, 8, 2, 256, 16, 2, lens, n_new);
        check_form(dt, "d256", &s, FORM_PLAIN, 0);
        check_form(dt, "d256", &s, FORM_SPLIT, 128);
        scene_free(&s);
    }
    { /* 16 query heads on one kv head: a decode row fills 16 slots; block 4 */
        static const int lens[] = {50, 3, 129}, n_new[] = {1, 2, 9};
        scene s = scene_plain(dt, 6, 16, 1, 64, 4, 3, lens, n_new);
        check_form(dt, "group16", &s, FORM_PLAIN, 0);
        scene_free(&s);
    }
    { /* split-KV over long contexts: 3000 positions in chunks of 512 */
        static const int lens[] = {3000, 1, 513, 1024, 2999}, n_new[] = {1, 1, 4, 1, 37};
        static const int lens_short[] = {1100, 1, 513}, n_new_short[] = {1, 1, 4};
        scene s = short_run ? scene_plain(dt, 7, 14, 2, 64, 16, 3, lens_short, n_new_short)
                            : scene_plain(dt, 7, 14, 2, 64, 16, 5, lens, n_new);
        check_form(dt, "long", &s, FORM_SPLIT, 512);
        check_form(dt, "long", &s, FORM_PLAIN, 0);
        scene_free(&s);
    }
    { /* cascade: two GRPO groups of 8 samples sharing prompt blocks (100 and 37 positions,
       * 6 and 2 full 16-token blocks), decode and verification rows, a group of 4 whose
       * prompt fills no whole block, and two sequences on their own */
        static const int sizes[] = {8, 8, 4, 1, 1}, pb[] = {6, 2, 0, 0, 0};
        int lens[22], n_new[22];
        for (int i = 0; i < 8; i++) lens[i] = 100 + 1 + 7 * i, n_new[i] = 1;
        for (int i = 8; i < 16; i++) lens[i] = 37 + 4 + 3 * (i - 8), n_new[i] = i % 2 ? 4 : 1;
        for (int i = 16; i < 20; i++) lens[i] = 10 + i, n_new[i] = 1;
        lens[20] = 50, n_new[20] = 37, lens[21] = 1, n_new[21] = 1;
        scene s = scene_new(dt, 8, 14, 2, 64, 16, 22, lens, n_new, 5, sizes, pb);
        check_form(dt, "groups", &s, FORM_CASCADE, 16);
        scene_free(&s);
    }
    { /* cascade, Qwen2.5-1.5B heads, block 1: a group of 8 sharing 64 prompt blocks, one of 3 */
        static const int sizes[] = {8, 3}, pb[] = {64, 5};
        int lens[11], n_new[11];
        for (int i = 0; i < 8; i++) lens[i] = 64 + 1 + 5 * i, n_new[i] = 1;
        for (int i = 8; i < 11; i++) lens[i] = 5 + 2 + i, n_new[i] = 2;
        scene s = scene_new(dt, 9, 12, 2, 128, 1, 11, lens, n_new, 2, sizes, pb);
        check_form(dt, "groups", &s, FORM_CASCADE, 100);
        scene_free(&s);
    }
}

/* One sequence among 17 others, and one group among others, alone and in the batch. */
static void check_batch_invariance(kern_dtype dt) {
    int lens[18], n_new[18];
    for (int i = 0; i < 18; i++) {
        lens[i] = 20 + (i * 397) % (short_run ? 300 : 1500);
        n_new[i] = i % 3 == 0 ? 4 : i % 5 == 0 ? 37 : 1;
    }
    lens[9] = short_run ? 700 : 1400, n_new[9] = 4; /* the sequence checked: several chunks */
    scene s = scene_plain(dt, 10, 14, 2, 64, 16, 18, lens, n_new);
    check_invariance(dt, &s, FORM_PLAIN, 0, 9, 10, 9, 10);
    check_invariance(dt, &s, FORM_SPLIT, 256, 9, 10, 9, 10);
    /* a decode row runs in the one-slot-a-warp kernel alone, in the eight-slot one beside
     * prefill chunks: the same bits either way */
    check_invariance(dt, &s, FORM_PLAIN, 0, 7, 8, 7, 8);
    scene_free(&s);

    static const int sizes[] = {1, 8, 8, 1}, pb[] = {0, 5, 3, 0};
    int glens[18], gnew[18];
    glens[0] = 50, gnew[0] = 37;
    for (int i = 1; i < 9; i++) glens[i] = 80 + 2 * i, gnew[i] = 1;
    for (int i = 9; i < 17; i++) glens[i] = 50 + i, gnew[i] = i % 2 ? 4 : 1;
    glens[17] = 300, gnew[17] = 1;
    scene c = scene_new(dt, 11, 14, 2, 64, 16, 18, glens, gnew, 4, sizes, pb);
    check_invariance(dt, &c, FORM_CASCADE, 64, 1, 9, 1, 2);
    scene_free(&c);
}

/* Inconsistent indices give the sequence NaN rows and leave the others as they are (and,
 * under compute-sanitizer, read nothing outside the pool): a table entry past the pool,
 * and a max_q below a sequence's rows. Not in the host emulation, whose twin would read
 * past the pool. */
/* ---- the training attention's order (kern_paged_attention_tc_forward) ----------------------- */

/* bf16: every new row of s through the paged kernel must be, bit for bit, the same row of
 * kern_attention_forward (the trainer's) over the sequences laid out whole - K and V
 * gathered from the pool, q of the earlier positions random - for decode rows, prefill
 * chunks and verification rows alike. */
static void check_tc_scene(const char *name, const scene *s) {
    rlvr_err e = {{0}};
    const int H = s->H, KV = s->KV, D = s->D;
    int *cu = malloc((size_t)(s->n_seqs + 1) * sizeof(int));
    cu[0] = 0;
    for (int i = 0; i < s->n_seqs; i++) cu[i + 1] = cu[i] + s->lens[i];
    const size_t P = (size_t)cu[s->n_seqs], qrow = (size_t)H * D, krow = (size_t)KV * D;
    rng_stream r;
    rng_stream_init(&r, 77, P);
    float *pq = randn(&r, P * qrow, KERN_BF16), *pk = malloc(P * krow * sizeof(float)), *pv = malloc(P * krow * 4);
    for (int i = 0; i < s->n_seqs; i++) {
        const int n_new = s->cu_q[i + 1] - s->cu_q[i], pos0 = s->lens[i] - n_new;
        for (int p = 0; p < s->lens[i]; p++) {
            const size_t slot = (size_t)s->tables[(size_t)i * s->max_blocks + p / s->bs] * s->bs + p % s->bs;
            memcpy(pk + (cu[i] + p) * krow, s->k + slot * krow, krow * sizeof(float));
            memcpy(pv + (cu[i] + p) * krow, s->v + slot * krow, krow * sizeof(float));
        }
        memcpy(pq + (cu[i] + pos0) * qrow, s->q + (size_t)s->cu_q[i] * qrow, (size_t)n_new * qrow * sizeof(float));
    }
    /* the trainer's attention over the whole sequences */
    void *d_pq = gpu_upload(KERN_BF16, pq, P * qrow), *d_pk = gpu_upload(KERN_BF16, pk, P * krow);
    void *d_pv = gpu_upload(KERN_BF16, pv, P * krow), *d_pout = upload_nans(KERN_BF16, P * qrow);
    float *d_plse = upload_nans(KERN_F32, P * H);
    int *d_cu = upload_ints(cu, (size_t)s->n_seqs + 1);
    CHECK(kern_attention_forward(KERN_BF16, d_pout, d_plse, d_pq, d_pk, d_pv, d_cu, s->n_seqs, s->max_len, H, KV, D,
                                 NULL, &e) == 0,
          "%s", e.msg);
    float *pout = malloc(P * qrow * sizeof(float)), *plse = malloc(P * H * sizeof(float));
    gpu_download(KERN_BF16, pout, d_pout, P * qrow);
    gpu_download(KERN_F32, plse, d_plse, P * H);
    /* the engine's, through the tables */
    const size_t pool = (size_t)s->n_blocks * s->bs * krow, nq = (size_t)s->T * qrow;
    void *d_k = gpu_upload(KERN_BF16, s->k, pool), *d_v = gpu_upload(KERN_BF16, s->v, pool);
    void *d_q = gpu_upload(KERN_BF16, s->q, nq), *d_out = upload_nans(KERN_BF16, nq);
    float *d_lse = upload_nans(KERN_F32, (size_t)s->T * H);
    int *d_tables = upload_ints(s->tables, (size_t)s->n_seqs * s->max_blocks);
    int *d_cuq = upload_ints(s->cu_q, (size_t)s->n_seqs + 1), *d_lens = upload_ints(s->lens, (size_t)s->n_seqs);
    const kern_paged_batch b = {.block_tables = d_tables, .cu_q = d_cuq, .seq_lens = d_lens, .n_seqs = s->n_seqs,
                                .max_blocks = s->max_blocks, .T = s->T, .max_q = s->max_q, .max_seq_len = s->max_len};
    CHECK(kern_paged_attention_tc_forward(d_out, d_lse, d_q, d_k, d_v, &b, s->n_blocks, s->bs, H, KV, D, NULL, &e) ==
              0,
          "%s: %s", name, e.msg);
    float *out = malloc(nq * sizeof(float)), *lse = malloc((size_t)s->T * H * sizeof(float));
    gpu_download(KERN_BF16, out, d_out, nq);
    gpu_download(KERN_F32, lse, d_lse, (size_t)s->T * H);
    int differ = 0;
    for (int i = 0; i < s->n_seqs && !differ; i++) {
        const int n_new = s->cu_q[i + 1] - s->cu_q[i], pos0 = s->lens[i] - n_new;
        for (int j = 0; j < n_new && !differ; j++) {
            const size_t at = (size_t)s->cu_q[i] + j, pat = (size_t)cu[i] + pos0 + j;
            if (memcmp(out + at * qrow, pout + pat * qrow, qrow * sizeof(float)) ||
                memcmp(lse + at * H, plse + pat * H, (size_t)H * sizeof(float))) {
                CHECK(0, "%s: sequence %d row %d (position %d) differs from the training attention's", name, i, j,
                      pos0 + j);
                differ = 1;
            }
        }
    }
    printf("paged tc %s H=%d KV=%d D=%d block=%d seqs=%d rows=%d max_len=%d: %s the training attention's rows\n",
           name, H, KV, D, s->bs, s->n_seqs, s->T, s->max_len, differ ? "DIFFERS from" : "bit for bit");
    kern_free(d_pq), kern_free(d_pk), kern_free(d_pv), kern_free(d_pout), kern_free(d_plse), kern_free(d_cu);
    kern_free(d_k), kern_free(d_v), kern_free(d_q), kern_free(d_out), kern_free(d_lse), kern_free(d_tables);
    kern_free(d_cuq), kern_free(d_lens);
    free(cu), free(pq), free(pk), free(pv), free(pout), free(plse), free(out), free(lse);
}

static void check_training_order(void) {
    { /* decode, Qwen2.5-0.5B heads (7 a kv head: two rows a warp tile) */
        static const int lens[] = {1, 2, 63, 64, 65, 129, 613}, n_new[] = {1, 1, 1, 1, 1, 1, 1};
        scene s = scene_plain(KERN_BF16, 31, 14, 2, 64, 16, 7, lens, n_new);
        check_tc_scene("decode", &s);
        scene_free(&s);
    }
    { /* a prefill chunk, 4 verification rows and a whole prompt, Qwen2.5-1.5B heads */
        static const int lens[] = {100, 70, 37}, n_new[] = {37, 4, 37};
        scene s = scene_plain(KERN_BF16, 32, 12, 2, 128, 8, 3, lens, n_new);
        check_tc_scene("prefill", &s);
        scene_free(&s);
    }
    { /* one query head a kv head (16 rows a tile) and sixteen (one row), block size 1 */
        static const int lens[] = {90, 5}, n_new[] = {20, 5};
        scene a = scene_plain(KERN_BF16, 33, 4, 4, 64, 1, 2, lens, n_new);
        check_tc_scene("group 1", &a);
        scene_free(&a);
        scene b = scene_plain(KERN_BF16, 34, 16, 1, 128, 32, 2, lens, n_new);
        check_tc_scene("group 16", &b);
        scene_free(&b);
    }
    if (!short_run) { /* GRPO: 8 samples of a 512-token prompt 300 tokens into decoding */
        int lens[8], n_new[8];
        for (int i = 0; i < 8; i++) lens[i] = 812 - 37 * i, n_new[i] = 1;
        scene s = scene_plain(KERN_BF16, 35, 14, 2, 64, 16, 8, lens, n_new);
        check_tc_scene("group of 8", &s);
        scene_free(&s);
    }
}

#ifndef RLVR_HOST_EMULATION
static void check_bad_indices(kern_dtype dt) {
    static const int lens[] = {40, 50, 60}, n_new[] = {1, 4, 2};
    for (int c = 0; c < 3; c++) {
        scene s = scene_plain(dt, 12, 14, 2, 64, 16, 3, lens, n_new);
        const size_t row = (size_t)s.H * s.D, nq = (size_t)s.T * row, nl = (size_t)s.T * s.H;
        float *want = malloc(nq * sizeof(float)), *want_lse = malloc(nl * sizeof(float));
        float *got = malloc(nq * sizeof(float)), *got_lse = malloc(nl * sizeof(float));
        run_cpu(&s, FORM_PLAIN, 0, want, want_lse);
        float *mag = magnitudes(dt, &s, c == 1 ? FORM_SPLIT : FORM_PLAIN, 16);
        const char *what = c == 2 ? "max_q below a sequence's rows" : "a block id past the pool";
        if (c == 2) s.max_q = 2;
        else s.tables[(size_t)1 * s.max_blocks + 1] = s.n_blocks + 3;
        const form f = c == 1 ? FORM_SPLIT : FORM_PLAIN;
        run_gpu(dt, &s, f, 16, got, got_lse);
        int nan_rows = 1;
        for (size_t i = (size_t)s.cu_q[1] * row; i < (size_t)s.cu_q[2] * row; i++) nan_rows &= isnan(got[i]) != 0;
        for (size_t i = (size_t)s.cu_q[1] * s.H; i < (size_t)s.cu_q[2] * s.H; i++) nan_rows &= isnan(got_lse[i]) != 0;
        CHECK(nan_rows, "%s %s, %s: the sequence's rows are not all NaN", form_name(f), gpu_dtype_name(dt), what);
        char label[160];
        for (int i = 0; i < 3; i += 2) { /* the sequences around it are untouched */
            snprintf(label, sizeof label, "%s %s, %s: sequence %d out", form_name(f), gpu_dtype_name(dt), what, i);
            gpu_check_close(label, got + (size_t)s.cu_q[i] * row, want + (size_t)s.cu_q[i] * row,
                            mag ? mag + (size_t)s.cu_q[i] * row : NULL,
                            (size_t)(s.cu_q[i + 1] - s.cu_q[i]) * row, 1e-4, dt == KERN_BF16 ? 1.0 / 256 : 0.0,
                            dt == KERN_BF16 ? 1.0 / 256 : 0.0);
            snprintf(label, sizeof label, "%s %s, %s: sequence %d lse", form_name(f), gpu_dtype_name(dt), what, i);
            gpu_check_close(label, got_lse + (size_t)s.cu_q[i] * s.H, want_lse + (size_t)s.cu_q[i] * s.H, NULL,
                            (size_t)(s.cu_q[i + 1] - s.cu_q[i]) * s.H, 2e-5, 1e-5, 0);
        }
        printf("bad indices %s %s, %s: sequence's rows %s, the others as before\n", form_name(f),
               gpu_dtype_name(dt), what, nan_rows ? "NaN" : "NOT NaN");
        free(mag), free(want), free(want_lse), free(got), free(got_lse);
        scene_free(&s);
    }
}
#endif

/* ---- block copies and the K/V write, bit for bit ------------------------------------------ */

static void check_block_copy(kern_dtype dt, int n_blocks, int bs, int KV, int D, int n_layers) {
    rlvr_err e = {{0}};
    rng_stream r;
    rng_stream_init(&r, 12, (uint64_t)n_blocks * 31u + (uint64_t)bs * 7u + (uint64_t)D + dt);
    const size_t layer = (size_t)n_blocks * bs * KV * D, stride = layer + 40; /* layers apart by more than a pool */
    const size_t n = stride * n_layers, block = (size_t)bs * KV * D;
    float *k = randn(&r, n, dt), *v = randn(&r, n, dt);
    /* disjoint copies: sources and destinations from one shuffle; all, none and some rows */
    int *perm = malloc((size_t)n_blocks * sizeof(int));
    for (int b = 0; b < n_blocks; b++) perm[b] = b;
    for (int b = n_blocks - 1; b > 0; b--) {
        const int j = (int)rng_stream_below(&r, (uint64_t)b + 1), t = perm[b];
        perm[b] = perm[j], perm[j] = t;
    }
    const int n_copies = n_blocks / 2 + 1;
    int *copies = malloc((size_t)n_copies * 3 * sizeof(int));
    for (int c = 0; c < n_copies - 1; c++) {
        copies[3 * c] = perm[2 * c], copies[3 * c + 1] = perm[2 * c + 1];
        copies[3 * c + 2] = c == 0 ? bs : c == 1 ? 0 : (int)rng_stream_below(&r, (uint64_t)bs + 1);
    }
    /* a copy naming a block outside the pool is skipped */
    copies[3 * (n_copies - 1)] = n_blocks, copies[3 * (n_copies - 1) + 1] = perm[0];
    copies[3 * (n_copies - 1) + 2] = bs;
    float *want_k = malloc(n * sizeof(float)), *want_v = malloc(n * sizeof(float));
    memcpy(want_k, k, n * sizeof(float)), memcpy(want_v, v, n * sizeof(float));
    for (int l = 0; l < n_layers; l++)
        for (int c = 0; c < n_copies - 1; c++) {
            const size_t src = l * stride + copies[3 * c] * block, dst = l * stride + copies[3 * c + 1] * block;
            const size_t len = (size_t)copies[3 * c + 2] * KV * D * sizeof(float);
            memcpy(want_k + dst, want_k + src, len), memcpy(want_v + dst, want_v + src, len);
        }
    void *d_k = gpu_upload(dt, k, n), *d_v = gpu_upload(dt, v, n);
    int *d_copies = upload_ints(copies, (size_t)n_copies * 3);
    CHECK(kern_kv_block_copy(dt, d_k, d_v, d_copies, n_copies, n_layers, stride, n_blocks, bs, KV, D, NULL, &e) == 0,
          "%s", e.msg);
    CHECK(kern_synchronize(&e) == 0, "%s", e.msg);
    gpu_download(dt, k, d_k, n), gpu_download(dt, v, d_v, n);
    const int same = memcmp(k, want_k, n * sizeof(float)) == 0 && memcmp(v, want_v, n * sizeof(float)) == 0;
    CHECK(same, "block copy %s blocks=%d block=%d KV=%d D=%d layers=%d: pools differ from memcpy", gpu_dtype_name(dt),
          n_blocks, bs, KV, D, n_layers);
    printf("block copy %s blocks=%d block=%d KV=%d D=%d layers=%d copies=%d: %s\n", gpu_dtype_name(dt), n_blocks, bs,
           KV, D, n_layers, n_copies, same ? "exact" : "DIFFERENT");
    kern_free(d_k), kern_free(d_v), kern_free(d_copies);
    free(k), free(v), free(want_k), free(want_v), free(perm), free(copies);
}

/* k and v read from a fused [T, H + 2 KV, D] projection (ld = (H + 2 KV) D), as a QKV
 * output lays them out, into shuffled slots; some rows are not kept (-1) and one slot is
 * past the pool (skipped). */
static void check_kv_write(kern_dtype dt, int n_blocks, int bs, int KV, int D, int H, int T) {
    rlvr_err e = {{0}};
    rng_stream r;
    rng_stream_init(&r, 13, (uint64_t)n_blocks * 31u + (uint64_t)bs * 7u + (uint64_t)D + dt);
    const int n_slots = n_blocks * bs;
    const size_t ld = (size_t)(H + 2 * KV) * D, pool = (size_t)n_slots * KV * D, row = (size_t)KV * D;
    float *qkv = randn(&r, (size_t)T * ld, dt), *k = randn(&r, pool, dt), *v = randn(&r, pool, dt);
    int *perm = malloc((size_t)n_slots * sizeof(int)), *slots = malloc((size_t)T * sizeof(int));
    for (int i = 0; i < n_slots; i++) perm[i] = i;
    for (int i = n_slots - 1; i > 0; i--) {
        const int j = (int)rng_stream_below(&r, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (int t = 0; t < T; t++) slots[t] = t % 5 == 3 ? -1 : perm[t];
    slots[T - 1] = n_slots;
    float *want_k = malloc(pool * sizeof(float)), *want_v = malloc(pool * sizeof(float));
    memcpy(want_k, k, pool * sizeof(float)), memcpy(want_v, v, pool * sizeof(float));
    for (int t = 0; t < T; t++)
        if (slots[t] >= 0 && slots[t] < n_slots) {
            memcpy(want_k + (size_t)slots[t] * row, qkv + t * ld + (size_t)H * D, row * sizeof(float));
            memcpy(want_v + (size_t)slots[t] * row, qkv + t * ld + (size_t)(H + KV) * D, row * sizeof(float));
        }
    void *d_qkv = gpu_upload(dt, qkv, (size_t)T * ld), *d_k = gpu_upload(dt, k, pool), *d_v = gpu_upload(dt, v, pool);
    int *d_slots = upload_ints(slots, (size_t)T);
    const size_t esize = kern_dtype_size(dt);
    const char *src_k = (const char *)d_qkv + (size_t)H * D * esize, *src_v = src_k + row * esize;
    CHECK(kern_kv_write(dt, d_k, d_v, src_k, src_v, ld, d_slots, T, n_blocks, bs, KV, D, NULL, &e) == 0, "%s", e.msg);
    CHECK(kern_synchronize(&e) == 0, "%s", e.msg);
    gpu_download(dt, k, d_k, pool), gpu_download(dt, v, d_v, pool);
    const int same = memcmp(k, want_k, pool * sizeof(float)) == 0 && memcmp(v, want_v, pool * sizeof(float)) == 0;
    CHECK(same, "kv write %s T=%d KV=%d D=%d: pools differ from the row copies", gpu_dtype_name(dt), T, KV, D);
    printf("kv write %s T=%d KV=%d D=%d ld=%zu block=%d: %s\n", gpu_dtype_name(dt), T, KV, D, ld, bs,
           same ? "exact" : "DIFFERENT");
    kern_free(d_qkv), kern_free(d_k), kern_free(d_v), kern_free(d_slots);
    free(qkv), free(k), free(v), free(perm), free(slots), free(want_k), free(want_v);
}

/* ---- argument checks (host only: no device needed) ---------------------------------------- */

#define EXPECT_REJECT(call, needle)                                                                  \
    do {                                                                                             \
        rlvr_err e_ = {{0}};                                                                         \
        rlvr_err *e = &e_;                                                                           \
        const int rc_ = (call);                                                                      \
        CHECK(rc_ == -1 && strstr(e_.msg, needle), "%s: returned %d, message '%s' (want '%s')", #call, rc_, \
              e_.msg, needle);                                                                       \
    } while (0)

#ifndef RLVR_HOST_EMULATION
static void check_arguments(void) {
    static char fake[64]; /* never dereferenced: every call below fails its checks first */
    void *p = fake;
    int ints[4] = {0};
    kern_paged_batch b = {.block_tables = ints, .cu_q = ints, .seq_lens = ints, .n_seqs = 1, .max_blocks = 4,
                          .T = 1, .max_q = 1, .max_seq_len = 10, .cu_groups = ints, .prefix_blocks = ints,
                          .n_groups = 1, .max_group_rows = 1};
    kern_paged_batch bad = b;
    EXPECT_REJECT(kern_paged_attention_forward(KERN_F32, p, p, p, p, p, &b, 8, 12, 4, 2, 64, NULL, e), "block_size");
    EXPECT_REJECT(kern_paged_attention_forward(KERN_F32, p, p, p, p, p, &b, 8, 0, 4, 2, 64, NULL, e), "block_size");
    EXPECT_REJECT(kern_paged_attention_forward((kern_dtype)7, p, p, p, p, p, &b, 8, 16, 4, 2, 64, NULL, e), "dtype");
    EXPECT_REJECT(kern_paged_attention_forward(KERN_F32, p, p, p, p, p, &b, 8, 16, 6, 4, 64, NULL, e),
                  "multiple of KV");
    EXPECT_REJECT(kern_paged_attention_forward(KERN_F32, p, p, p, p, p, &b, 8, 16, 65, 1, 64, NULL, e), "H / KV");
    EXPECT_REJECT(kern_paged_attention_forward(KERN_BF16, p, p, p, p, p, &b, 8, 16, 4, 2, 300, NULL, e), "D=300");
    EXPECT_REJECT(kern_paged_attention_forward(KERN_F32, p, p, p, p, p, &b, 0, 16, 4, 2, 64, NULL, e), "n_blocks");
    EXPECT_REJECT(kern_paged_attention_forward(KERN_F32, p, p, p, p, p, NULL, 8, 16, 4, 2, 64, NULL, e), "batch");
    bad.max_q = 2;
    EXPECT_REJECT(kern_paged_attention_forward(KERN_F32, p, p, p, p, p, &bad, 8, 16, 4, 2, 64, NULL, e), "max_q");
    bad = b, bad.n_seqs = 0;
    EXPECT_REJECT(kern_paged_attention_forward(KERN_F32, p, p, p, p, p, &bad, 8, 16, 4, 2, 64, NULL, e), "n_seqs");
    bad = b, bad.cu_q = NULL;
    EXPECT_REJECT(kern_paged_attention_forward(KERN_F32, p, p, p, p, p, &bad, 8, 16, 4, 2, 64, NULL, e), "NULL");
    EXPECT_REJECT(kern_paged_attention_forward(KERN_F32, NULL, p, p, p, p, &b, 8, 16, 4, 2, 64, NULL, e), "NULL");
    EXPECT_REJECT(kern_paged_attention_split_forward(KERN_F32, p, p, p, p, p, &b, 8, 16, 4, 2, 64, 0, p, NULL, e),
                  "split_len");
    EXPECT_REJECT(kern_paged_attention_split_forward(KERN_F32, p, p, p, p, p, &b, 8, 16, 4, 2, 64, 4, NULL, NULL, e),
                  "scratch");
    bad = b, bad.max_seq_len = 0;
    EXPECT_REJECT(kern_paged_attention_split_forward(KERN_F32, p, p, p, p, p, &bad, 8, 16, 4, 2, 64, 4, p, NULL, e),
                  "max_seq_len");
    bad = b, bad.n_groups = 0;
    EXPECT_REJECT(kern_cascade_attention_forward(KERN_F32, p, p, p, p, p, &bad, 8, 16, 4, 2, 64, 64, p, NULL, e),
                  "groups");
    bad = b, bad.prefix_blocks = NULL;
    EXPECT_REJECT(kern_cascade_attention_forward(KERN_F32, p, p, p, p, p, &bad, 8, 16, 4, 2, 64, 64, p, NULL, e),
                  "groups");
    EXPECT_REJECT(kern_cascade_attention_forward(KERN_F32, p, p, p, p, p, &b, 8, 16, 4, 2, 64, 64, NULL, NULL, e),
                  "scratch");
    EXPECT_REJECT(kern_kv_write(KERN_F32, p, p, p, p, 100, ints, 1, 8, 16, 2, 64, NULL, e), "ld");
    EXPECT_REJECT(kern_kv_write(KERN_BF16, p, p, p, p, 128, ints, 1, 8, 3, 2, 64, NULL, e), "block_size");
    EXPECT_REJECT(kern_kv_write(KERN_BF16, NULL, p, p, p, 128, ints, 1, 8, 16, 2, 64, NULL, e), "NULL");
    EXPECT_REJECT(kern_kv_block_copy(KERN_F32, p, p, ints, 1, 0, 0, 8, 16, 2, 64, NULL, e), "n_layers");
    EXPECT_REJECT(kern_kv_block_copy(KERN_F32, p, p, ints, 1, 2, 100, 8, 16, 2, 64, NULL, e), "layer_stride");
    EXPECT_REJECT(kern_kv_block_copy(KERN_F32, p, p, NULL, 1, 1, 0, 8, 16, 2, 64, NULL, e), "NULL");
    EXPECT_REJECT(kern_kv_block_copy(KERN_F32, p, p, ints, 1, 1, 0, 8, 16, 0, 64, NULL, e), "KV=0");
    /* sizes of the scratches: none for unusable shapes, two parts for cascade */
    CHECK(kern_paged_attention_split_scratch(4, 2, 8, 100, 0) == 0, "split scratch with split_len 0");
    CHECK(kern_paged_attention_split_scratch(4, 2, 8, 100, 30) == 4 * (size_t)(4 * 2 * 9) * sizeof(float),
          "split scratch: 4 chunks of [T * H][D + 1] floats");
    CHECK(kern_cascade_attention_scratch(3, 2, 8, 100, 30) == 2 * (size_t)(3 * 2 * 9) * sizeof(float),
          "cascade scratch: 2 parts of [T * H][D + 1] floats (D 8: no tensor cores)");
    CHECK(kern_cascade_attention_scratch(3, 2, 64, 200, 30) == 8 * (size_t)(3 * 2 * 65) * sizeof(float),
          "cascade scratch, D 64: twice 4 chunks of 64 positions of [T * H][D + 1] floats");
}

#endif

int main(void) {
    const char *short_env = getenv("RLVR_GPU_TEST_SHORT");
    short_run = short_env && strcmp(short_env, "1") == 0;
#ifndef RLVR_HOST_EMULATION /* the emulation (tests/host_gpu) checks less, with other messages */
    check_arguments();
#endif
    rlvr_err e = {{0}};
    if (kern_device_count(&e) <= 0) { /* the host-side checks above have run; nothing else can */
        printf("skipped: %s (argument checks: %s)\n", e.msg, gpu_failures ? "FAILED" : "passed");
        return gpu_failures ? 1 : GPU_TEST_SKIP;
    }
    gpu_test_require_device(); /* prints the device */
    for (int dt = 0; dt < 2; dt++) {
        const kern_dtype t = (kern_dtype)dt;
        check_block_copy(t, 21, 16, 2, 64, 3);
        check_block_copy(t, 9, 1, 3, 5, 2); /* rows of 15 elements: 2-byte copies */
        check_block_copy(t, 12, 8, 7, 40, 1);
        check_kv_write(t, 13, 16, 2, 64, 14, 150);
        check_kv_write(t, 40, 1, 3, 30, 6, 33); /* rows not a multiple of 16 bytes */
        check_attention_forms(t);
        check_batch_invariance(t);
        if (t == KERN_BF16) check_training_order();
#ifndef RLVR_HOST_EMULATION
        check_bad_indices(t);
#endif
    }
    return gpu_test_finish();
}
