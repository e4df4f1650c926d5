/* test_attention_cpu.c - the CPU twin of the GPU attention (attention_forward,
 * attention_backward in core/cpu_ops.c): against a float64 softmax written out here, packing
 * invariance (sequences packed together score as they do alone), grouped-query heads
 * equal to their kv heads copied out, and the backward against central finite differences
 * of the forward. */
#include <math.h>

#include "testing.h"

#include "cpu_ops.h"
#include "rng.h"

static float *randn(rng_stream *r, size_t n) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = rng_stream_normal(r);
    return x;
}

/* float64 attention of one sequence of L tokens at base row `start`. */
static void reference(double *out, double *lse, const float *q, const float *k, const float *v, int start, int L,
                      int H, int KV, int D) {
    double *sc = malloc((size_t)L * sizeof *sc);
    for (int r = 0; r < L; r++)
        for (int h = 0; h < H; h++) {
            int g = h / (H / KV);
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j <= r; j++) {
                double dot = 0;
                for (int d = 0; d < D; d++)
                    dot += (double)q[((size_t)(start + r) * H + h) * D + d] * k[((size_t)(start + j) * KV + g) * D + d];
                sc[j] = dot / sqrt((double)D);
                if (sc[j] > mx) mx = sc[j];
            }
            for (int j = 0; j <= r; j++) sum += sc[j] = exp(sc[j] - mx);
            for (int d = 0; d < D; d++) {
                double o = 0;
                for (int j = 0; j <= r; j++) o += sc[j] / sum * v[((size_t)(start + j) * KV + g) * D + d];
                out[((size_t)(start + r) * H + h) * D + d] = o;
            }
            lse[(size_t)(start + r) * H + h] = mx + log(sum);
        }
    free(sc);
}

static void test_forward_matches_float64_and_packing(void **state) {
    (void)state;
    const int lens[] = {1, 5, 0, 17}, n_seqs = 4, H = 6, KV = 2, D = 12;
    int cu[5] = {0};
    for (int s = 0; s < n_seqs; s++) cu[s + 1] = cu[s] + lens[s];
    const int T = cu[n_seqs];
    rng_stream r;
    rng_stream_init(&r, 5, 0);
    float *q = randn(&r, (size_t)T * H * D), *k = randn(&r, (size_t)T * KV * D), *v = randn(&r, (size_t)T * KV * D);
    float *out = malloc((size_t)T * H * D * 4), *lse = malloc((size_t)T * H * 4);
    double *ro = malloc((size_t)T * H * D * 8), *rl = malloc((size_t)T * H * 8);
    attention_forward(out, lse, q, k, v, cu, n_seqs, H, KV, D);
    for (int s = 0; s < n_seqs; s++) reference(ro, rl, q, k, v, cu[s], lens[s], H, KV, D);
    for (size_t i = 0; i < (size_t)T * H * D; i++) assert_true(fabs(out[i] - ro[i]) < 1e-5);
    for (size_t i = 0; i < (size_t)T * H; i++) assert_true(fabs(lse[i] - rl[i]) < 1e-5);
    /* the last sequence alone, at row 0, gives the same numbers bit for bit */
    int cu1[2] = {0, lens[3]};
    float *alone = malloc((size_t)lens[3] * H * D * 4), *alone_lse = malloc((size_t)lens[3] * H * 4);
    attention_forward(alone, alone_lse, q + (size_t)cu[3] * H * D, k + (size_t)cu[3] * KV * D,
                      v + (size_t)cu[3] * KV * D, cu1, 1, H, KV, D);
    assert_memory_equal(alone, out + (size_t)cu[3] * H * D, (size_t)lens[3] * H * D * 4);
    assert_memory_equal(alone_lse, lse + (size_t)cu[3] * H, (size_t)lens[3] * H * 4);
    /* a one-token sequence attends only to itself: out = v */
    for (int h = 0; h < H; h++)
        for (int d = 0; d < D; d++) assert_true(out[(size_t)h * D + d] == v[(size_t)(h / 3) * D + d]);
    free(q), free(k), free(v), free(out), free(lse), free(ro), free(rl), free(alone), free(alone_lse);
}

static void test_gqa_equals_copied_heads(void **state) {
    (void)state;
    const int T = 9, H = 4, KV = 2, D = 8, group = H / KV;
    int cu[2] = {0, T};
    rng_stream r;
    rng_stream_init(&r, 6, 0);
    float *q = randn(&r, (size_t)T * H * D), *k = randn(&r, (size_t)T * KV * D), *v = randn(&r, (size_t)T * KV * D);
    float *kx = malloc((size_t)T * H * D * 4), *vx = malloc((size_t)T * H * D * 4);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            memcpy(kx + ((size_t)t * H + h) * D, k + ((size_t)t * KV + h / group) * D, D * 4);
            memcpy(vx + ((size_t)t * H + h) * D, v + ((size_t)t * KV + h / group) * D, D * 4);
        }
    float *o1 = malloc((size_t)T * H * D * 4), *o2 = malloc((size_t)T * H * D * 4);
    float *l1 = malloc((size_t)T * H * 4), *l2 = malloc((size_t)T * H * 4);
    attention_forward(o1, l1, q, k, v, cu, 1, H, KV, D);
    attention_forward(o2, l2, q, kx, vx, cu, 1, H, H, D);
    assert_memory_equal(o1, o2, (size_t)T * H * D * 4);
    assert_memory_equal(l1, l2, (size_t)T * H * 4);
    /* and the backward: dk of a kv head is the sum of its copies' */
    float *dout = randn(&r, (size_t)T * H * D);
    float *dq1 = calloc((size_t)T * H * D, 4), *dk1 = calloc((size_t)T * KV * D, 4), *dv1 = calloc((size_t)T * KV * D, 4);
    float *dq2 = calloc((size_t)T * H * D, 4), *dk2 = calloc((size_t)T * H * D, 4), *dv2 = calloc((size_t)T * H * D, 4);
    attention_backward(dq1, dk1, dv1, dout, q, k, v, o1, l1, cu, 1, H, KV, D);
    attention_backward(dq2, dk2, dv2, dout, q, kx, vx, o2, l2, cu, 1, H, H, D);
    for (size_t i = 0; i < (size_t)T * H * D; i++) assert_true(fabsf(dq1[i] - dq2[i]) <= 1e-6f * (1 + fabsf(dq1[i])));
    for (int t = 0; t < T; t++)
        for (int g = 0; g < KV; g++)
            for (int d = 0; d < D; d++) {
                float sk = 0, sv = 0;
                for (int h = g * group; h < (g + 1) * group; h++)
                    sk += dk2[((size_t)t * H + h) * D + d], sv += dv2[((size_t)t * H + h) * D + d];
                size_t i = ((size_t)t * KV + g) * D + d;
                assert_true(fabsf(dk1[i] - sk) <= 1e-5f * (1 + fabsf(sk)));
                assert_true(fabsf(dv1[i] - sv) <= 1e-5f * (1 + fabsf(sv)));
            }
    free(q), free(k), free(v), free(kx), free(vx), free(o1), free(o2), free(l1), free(l2), free(dout);
    free(dq1), free(dk1), free(dv1), free(dq2), free(dk2), free(dv2);
}

/* L = sum dout . out in double, for finite differences */
static double loss(const float *dout, const float *q, const float *k, const float *v, const int *cu, int n_seqs,
                   int T, int H, int KV, int D) {
    float *out = malloc((size_t)T * H * D * 4), *lse = malloc((size_t)T * H * 4);
    attention_forward(out, lse, q, k, v, cu, n_seqs, H, KV, D);
    double l = 0;
    for (size_t i = 0; i < (size_t)T * H * D; i++) l += (double)dout[i] * out[i];
    free(out), free(lse);
    return l;
}

static void test_backward_finite_differences(void **state) {
    (void)state;
    const int n_seqs = 2, H = 4, KV = 2, D = 6, T = 7;
    int cu[3] = {0, 3, T};
    rng_stream r;
    rng_stream_init(&r, 7, 0);
    float *q = randn(&r, (size_t)T * H * D), *k = randn(&r, (size_t)T * KV * D), *v = randn(&r, (size_t)T * KV * D);
    float *dout = randn(&r, (size_t)T * H * D);
    float *out = malloc((size_t)T * H * D * 4), *lse = malloc((size_t)T * H * 4);
    attention_forward(out, lse, q, k, v, cu, n_seqs, H, KV, D);
    float *dq = calloc((size_t)T * H * D, 4), *dk = calloc((size_t)T * KV * D, 4), *dv = calloc((size_t)T * KV * D, 4);
    attention_backward(dq, dk, dv, dout, q, k, v, out, lse, cu, n_seqs, H, KV, D);
    struct {
        float *x, *g;
        size_t n;
    } params[3] = {{q, dq, (size_t)T * H * D}, {k, dk, (size_t)T * KV * D}, {v, dv, (size_t)T * KV * D}};
    const float h = 1e-2f;
    for (int p = 0; p < 3; p++)
        for (size_t i = 0; i < params[p].n; i += 5) {
            float keep = params[p].x[i];
            params[p].x[i] = keep + h;
            double up = loss(dout, q, k, v, cu, n_seqs, T, H, KV, D);
            params[p].x[i] = keep - h;
            double down = loss(dout, q, k, v, cu, n_seqs, T, H, KV, D);
            params[p].x[i] = keep;
            double fd = (up - down) / (2.0 * h);
            if (fabs(fd - params[p].g[i]) > 2e-3 * (1 + fabs(fd)))
                fail_msg("tensor %d element %zu: backward %.6g, finite difference %.6g", p, i, params[p].g[i], fd);
        }
    free(q), free(k), free(v), free(dout), free(out), free(lse), free(dq), free(dk), free(dv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_float64_and_packing),
        cmocka_unit_test(test_gqa_equals_copied_heads),
        cmocka_unit_test(test_backward_finite_differences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
