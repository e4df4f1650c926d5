/* test_rope.c - rotate-half RoPE forward and backward against the CPU twins (rope_forward,
 * rope_backward) on odd and real head shapes, positions up to 40,000, fp32 and bf16.
 * Tolerance: each output is x1 cos -/+ x2 sin; CUDA's sincosf and glibc's cosf/sinf differ
 * by an ulp or two, so the bound is 1e-6 * (|x1| + |x2|) (plus 2^-8 relative for the bf16
 * rounding of the result). The backward runs on the GPU forward's output on both sides;
 * backward after forward must give back the input (within 4e-6, or two bf16 roundings),
 * and runs repeat bit for bit. The rollout engine's kern_rope_kv_write must give q and the
 * kept K/V rows the bits of kern_rope_forward then kern_kv_write (its batch-invariant mode
 * needs the trainer's K), skip slots of -1 and past the pool, and leave k as it was. */
#include "cpu_ops.h"
#include "gpu_test.h"
#include "rng.h"

static void check_rope(kern_dtype dt, int T, int NH, int D, int max_pos) {
    rlvr_err e = {{0}};
    size_t n = (size_t)T * NH * D;
    int half = D / 2;
    rng_stream r;
    rng_stream_init(&r, 55, (uint64_t)T * 7777u + (uint64_t)NH * 31u + (uint64_t)D + (uint64_t)dt * 1000003u);
    float *x = malloc(n * sizeof *x), *inv_freq = malloc((size_t)half * sizeof(float));
    int *pos = malloc((size_t)T * sizeof(int));
    for (size_t i = 0; i < n; i++) x[i] = rng_stream_normal(&r);
    gpu_round_to(dt, x, n);
    for (int i = 0; i < half; i++) inv_freq[i] = (float)(1.0 / pow(1000000.0, (double)(2 * i) / D));
    for (int t = 0; t < T; t++) pos[t] = (int)rng_stream_below(&r, (uint64_t)max_pos);
    float *want = malloc(n * sizeof(float)), *want_back = malloc(n * sizeof(float)), *scale = malloc(n * sizeof(float));
    memcpy(want, x, n * sizeof(float));
    rope_forward(want, inv_freq, pos, T, NH, D);
    for (size_t row = 0; row < (size_t)T * NH; row++)
        for (int i = 0; i < half; i++) {
            float s = fabsf(x[row * D + i]) + fabsf(x[row * D + i + half]);
            scale[row * D + i] = scale[row * D + i + half] = s;
        }

    void *dx = gpu_upload(dt, x, n), *dx2 = gpu_upload(dt, x, n);
    float *d_freq = gpu_upload(KERN_F32, inv_freq, half);
    int *d_pos = kern_malloc((size_t)T * sizeof(int), &e);
    CHECK(d_pos && kern_memcpy_h2d(d_pos, pos, (size_t)T * sizeof(int), &e) == 0, "%s", e.msg);
    float *got = malloc(n * sizeof(float)), *again = malloc(n * sizeof(float)), *back = malloc(n * sizeof(float));
    CHECK(kern_rope_forward(dt, dx, d_freq, d_pos, T, NH, D, NULL, &e) == 0, "%s", e.msg);
    CHECK(kern_rope_forward(dt, dx2, d_freq, d_pos, T, NH, D, NULL, &e) == 0, "%s", e.msg);
    gpu_download(dt, got, dx, n);
    gpu_download(dt, again, dx2, n);
    memcpy(want_back, got, n * sizeof(float)); /* the backward of both starts from the GPU's forward */
    rope_backward(want_back, inv_freq, pos, T, NH, D);
    CHECK(kern_rope_backward(dt, dx, d_freq, d_pos, T, NH, D, NULL, &e) == 0, "%s", e.msg);
    gpu_download(dt, back, dx, n);
    double rel = dt == KERN_BF16 ? 1.0 / 256 : 0;
    char what[128];
    snprintf(what, sizeof what, "rope %s T=%d NH=%d D=%d forward", gpu_dtype_name(dt), T, NH, D);
    double e_f = gpu_check_close(what, got, want, scale, n, 1e-30, rel, 1e-6);
    snprintf(what, sizeof what, "rope %s T=%d NH=%d D=%d backward", gpu_dtype_name(dt), T, NH, D);
    double e_b = gpu_check_close(what, back, want_back, scale, n, 1e-30, rel, 1e-6);
    snprintf(what, sizeof what, "rope %s T=%d NH=%d D=%d backward(forward(x)) = x", gpu_dtype_name(dt), T, NH, D);
    gpu_check_close(what, back, x, scale, n, 1e-30, rel, dt == KERN_BF16 ? 2.0 / 256 : 4e-6);
    CHECK(memcmp(got, again, n * sizeof(float)) == 0, "%s: two runs differ", what);
    printf("rope %s T=%-4d NH=%-3d D=%-4d max |gpu - cpu| forward %.3g backward %.3g\n", gpu_dtype_name(dt), T, NH, D,
           e_f, e_b);
    kern_free(dx), kern_free(dx2), kern_free(d_freq), kern_free(d_pos);
    free(x), free(inv_freq), free(pos), free(want), free(want_back), free(scale), free(got), free(again), free(back);
}

/* kern_rope_kv_write against kern_rope_forward on q and k, then kern_kv_write, bit for bit,
 * on T rows whose slots are shuffled over a pool of 2T slots (every fifth row kept nowhere:
 * -1, or a slot past the pool). */
static void check_rope_kv_write(kern_dtype dt, int T, int H, int KV, int D) {
    rlvr_err e = {{0}};
    const size_t nq = (size_t)T * H * D, nk = (size_t)T * KV * D, bs = 4, n_blocks = (size_t)(2 * T + 3) / 4;
    const size_t pool = n_blocks * bs * KV * D, es = kern_dtype_size(dt);
    rng_stream r;
    rng_stream_init(&r, 56, (uint64_t)T * 31u + (uint64_t)D + (uint64_t)dt);
    float *x = malloc((nq + 2 * nk + pool) * sizeof(float)), *inv_freq = malloc((size_t)D / 2 * sizeof(float));
    for (size_t i = 0; i < nq + 2 * nk + pool; i++) x[i] = rng_stream_normal(&r);
    gpu_round_to(dt, x, nq + 2 * nk + pool);
    for (int i = 0; i < D / 2; i++) inv_freq[i] = (float)(1.0 / pow(1000000.0, (double)(2 * i) / D));
    int *pos = malloc((size_t)T * sizeof(int)), *slots = malloc((size_t)T * sizeof(int));
    for (int t = 0; t < T; t++) {
        pos[t] = (int)rng_stream_below(&r, 40000);
        slots[t] = t % 5 == 4 ? (t % 10 == 4 ? -1 : (int)(n_blocks * bs) + t) : (int)((t * 7 + 3) % (2 * T));
    }
    for (int t = 0; t < T; t++) /* distinct kept slots */
        for (int u = 0; u < t; u++)
            if (slots[u] == slots[t] && slots[t] >= 0 && slots[t] < (int)(n_blocks * bs)) slots[t] = -1;
    int *d_pos = kern_malloc((size_t)T * sizeof(int), &e), *d_slots = kern_malloc((size_t)T * sizeof(int), &e);
    CHECK(d_pos && d_slots && kern_memcpy_h2d(d_pos, pos, (size_t)T * sizeof(int), &e) == 0 &&
              kern_memcpy_h2d(d_slots, slots, (size_t)T * sizeof(int), &e) == 0,
          "%s", e.msg);
    float *d_freq = gpu_upload(KERN_F32, inv_freq, (size_t)D / 2);
    void *q1 = gpu_upload(dt, x, nq), *k1 = gpu_upload(dt, x + nq, nk), *v = gpu_upload(dt, x + nq + nk, nk);
    void *q2 = gpu_upload(dt, x, nq), *k2 = gpu_upload(dt, x + nq, nk);
    void *kc1 = gpu_upload(dt, x + nq + 2 * nk, pool), *vc1 = gpu_upload(dt, x + nq + 2 * nk, pool);
    void *kc2 = gpu_upload(dt, x + nq + 2 * nk, pool), *vc2 = gpu_upload(dt, x + nq + 2 * nk, pool);
    /* the separate launches */
    CHECK(kern_rope_forward(dt, q1, d_freq, d_pos, T, H, D, NULL, &e) == 0 &&
              kern_rope_forward(dt, k1, d_freq, d_pos, T, KV, D, NULL, &e) == 0 &&
              kern_kv_write(dt, kc1, vc1, k1, v, (size_t)KV * D, d_slots, T, (int)n_blocks, (int)bs, KV, D, NULL,
                            &e) == 0,
          "%s", e.msg);
    /* the fused one */
    CHECK(kern_rope_kv_write(dt, q2, k2, v, kc2, vc2, d_freq, d_pos, d_slots, T, H, KV, D, (int)n_blocks, (int)bs,
                             NULL, &e) == 0,
          "%s", e.msg);
    const size_t big = pool > nq ? pool : nq;
    char *a = malloc(big * es), *b = malloc(big * es);
    int same = 1;
    kern_memcpy_d2h(a, q1, nq * es, &e), kern_memcpy_d2h(b, q2, nq * es, &e);
    same &= !memcmp(a, b, nq * es);
    kern_memcpy_d2h(a, kc1, pool * es, &e), kern_memcpy_d2h(b, kc2, pool * es, &e);
    same &= !memcmp(a, b, pool * es);
    kern_memcpy_d2h(a, vc1, pool * es, &e), kern_memcpy_d2h(b, vc2, pool * es, &e);
    same &= !memcmp(a, b, pool * es);
    float *k_after = malloc(nk * sizeof(float));
    gpu_download(dt, k_after, k2, nk);
    const int k_kept = !memcmp(k_after, x + nq, nk * sizeof(float));
    CHECK(same, "rope_kv_write %s T=%d H=%d KV=%d D=%d: q or the pool differ from rope then kv_write",
          gpu_dtype_name(dt), T, H, KV, D);
    CHECK(k_kept, "rope_kv_write %s: k changed", gpu_dtype_name(dt));
    printf("rope_kv_write %s T=%-3d H=%-2d KV=%d D=%-3d: bit for bit rope then kv_write, k untouched\n",
           gpu_dtype_name(dt), T, H, KV, D);
    kern_free(d_pos), kern_free(d_slots), kern_free(d_freq), kern_free(q1), kern_free(k1), kern_free(v);
    kern_free(q2), kern_free(k2), kern_free(kc1), kern_free(vc1), kern_free(kc2), kern_free(vc2);
    free(x), free(inv_freq), free(pos), free(slots), free(a), free(b), free(k_after);
}

int main(void) {
    gpu_test_require_device();
    for (int dt = 0; dt < 2; dt++) {
        check_rope((kern_dtype)dt, 1, 1, 2, 1);
        check_rope((kern_dtype)dt, 7, 3, 6, 100);
        check_rope((kern_dtype)dt, 33, 14, 64, 40000); /* Qwen2.5-0.5B: 14 query heads of 64 */
        check_rope((kern_dtype)dt, 65, 2, 64, 40000);  /* its 2 KV heads */
        check_rope((kern_dtype)dt, 19, 32, 128, 8192); /* Llama/Qwen 7-8B */
        check_rope((kern_dtype)dt, 5, 5, 258, 131072); /* odd head count, D/2 odd, long context */
        check_rope_kv_write((kern_dtype)dt, 37, 14, 2, 64);
        check_rope_kv_write((kern_dtype)dt, 9, 12, 2, 128);
        check_rope_kv_write((kern_dtype)dt, 5, 3, 3, 6);
    }
    rlvr_err e = {{0}};
    CHECK(kern_rope_forward(KERN_F32, NULL, NULL, NULL, 4, 2, 7, NULL, &e) == -1, "odd D accepted");
    CHECK(kern_rope_kv_write(KERN_F32, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 4, 2, 1, 7, 8, 16, NULL,
                             &e) == -1,
          "rope_kv_write: odd D accepted");
    return gpu_test_finish();
}
