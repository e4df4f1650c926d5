/* test_attention.c - the FlashAttention-style causal attention (forward, and backward into
 * q, k, v) against its CPU twin (attention_forward, attention_backward) over packed
 * sequences of odd lengths (an empty one included), grouped-query and multi-head layouts,
 * head sizes 40 to 256, fp32 and bf16. PyTorch's scaled_dot_product_attention is the
 * second reference: tests/reference/check_attention_torch.py, run on the GPU machine.
 *
 * Tolerances. Both sides start from the same numbers (bf16-rounded in bf16 runs) and use
 * fp32 scores; sums run in other orders (online softmax over tiles of 32 keys against
 * the CPU's one pass), so out is within 2e-5 absolute (values are ~N(0, 1)), plus in bf16
 * 2^-8 of |out| and of sum_j p_j |v_j| (the tensor-core kernel rounds P to bf16), and lse
 * within 2e-5 + 1e-6 relative; gradients within 1e-4 of the magnitudes behind them
 * (sum_j |ds_j| |k_j| for dq, with |ds| = p (|dout| . |v| + |dout| . |out|) scale term by
 * term so that no cancellation hides an error; sum_i |ds_i| |q_i| for dk;
 * sum_i p_i |dout_i| for dv); the CPU backward reads the GPU forward's out, as a
 * training step would. bf16 outputs add their rounding, 2^-8 relative, and 2^-8 of the
 * magnitudes (the tensor-core backward rounds P and dS to bf16). Outputs
 * start poisoned (out, lse) or random (the accumulated gradients), and two runs must
 * agree bit for bit. */
#include "cpu_ops.h"
#include "gpu_test.h"
#include "rng.h"

static float *randn(rng_stream *r, size_t n, float scale, kern_dtype dt) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_stream_normal(r);
    gpu_round_to(dt, x, n);
    return x;
}

/* The magnitudes behind each gradient element (see the top of the file). */
static void magnitudes(float *mo, float *mq, float *mk, float *mv, const float *dout, const float *q, const float *k,
                       const float *v, const float *out, const float *lse, const int *cu, int n_seqs, int H, int KV,
                       int D) {
    const int group = H / KV;
    const float scale = 1.0f / sqrtf((float)D);
    for (int s = 0; s < n_seqs; s++)
        for (int r = cu[s]; r < cu[s + 1]; r++)
            for (int h = 0; h < H; h++) {
                const size_t row = (size_t)r * H + h;
                const float *qr = q + row * D, *dr = dout + row * D, *o = out + row * D;
                float dmag = 0.0f;
                for (int d = 0; d < D; d++) dmag += fabsf(dr[d] * o[d]);
                for (int j = cu[s]; j <= r; j++) {
                    const size_t kv = (size_t)j * KV + h / group;
                    const float *kr = k + kv * D, *vr = v + kv * D;
                    float dot = 0.0f, pmag = 0.0f;
                    for (int d = 0; d < D; d++) dot += qr[d] * kr[d], pmag += fabsf(dr[d] * vr[d]);
                    const float p = expf(scale * dot - lse[row]), ds = p * (pmag + dmag) * scale;
                    for (int d = 0; d < D; d++) {
                        mo[row * D + d] += p * fabsf(vr[d]);
                        mq[row * D + d] += ds * fabsf(kr[d]);
                        mk[kv * D + d] += ds * fabsf(qr[d]);
                        mv[kv * D + d] += p * fabsf(dr[d]);
                    }
                }
            }
}

static void check_attention(kern_dtype dt, const int *lens, int n_seqs, int H, int KV, int D) {
    rlvr_err e = {{0}};
    int *cu = malloc((size_t)(n_seqs + 1) * sizeof(int)), max_len = 0;
    cu[0] = 0;
    for (int s = 0; s < n_seqs; s++) {
        cu[s + 1] = cu[s] + lens[s];
        if (lens[s] > max_len) max_len = lens[s];
    }
    const int T = cu[n_seqs];
    const size_t nq = (size_t)T * H * D, nk = (size_t)T * KV * D, nl = (size_t)T * H;
    rng_stream r;
    rng_stream_init(&r, 101, (uint64_t)T * 7919u + (uint64_t)H * 131u + (uint64_t)KV * 17u + (uint64_t)D * 3u + dt);
    float *q = randn(&r, nq, 1.0f, dt), *k = randn(&r, nk, 1.0f, dt), *v = randn(&r, nk, 1.0f, dt);
    float *dout = randn(&r, nq, 1.0f, dt);
    float *dq0 = randn(&r, nq, 0.1f, dt), *dk0 = randn(&r, nk, 0.1f, dt), *dv0 = randn(&r, nk, 0.1f, dt);

    float *want_out = malloc(nq * 4), *want_lse = malloc(nl * 4);
    attention_forward(want_out, want_lse, q, k, v, cu, n_seqs, H, KV, D);

    void *d_q = gpu_upload(dt, q, nq), *d_k = gpu_upload(dt, k, nk), *d_v = gpu_upload(dt, v, nk);
    void *d_dout = gpu_upload(dt, dout, nq);
    int *d_cu = kern_malloc((size_t)(n_seqs + 1) * sizeof(int), &e);
    void *scratch = kern_malloc(kern_attention_backward_scratch(T, H, KV, D), &e);
    CHECK(d_cu && scratch && kern_memcpy_h2d(d_cu, cu, (size_t)(n_seqs + 1) * sizeof(int), &e) == 0, "%s", e.msg);
    float *got[2][5];
    for (int run = 0; run < 2; run++) {
        void *d_out = gpu_upload(dt, dout, nq); /* poisoned */
        float *d_lse = gpu_upload(KERN_F32, dout, nl);
        void *d_dq = gpu_upload(dt, dq0, nq), *d_dk = gpu_upload(dt, dk0, nk), *d_dv = gpu_upload(dt, dv0, nk);
        CHECK(kern_attention_forward(dt, d_out, d_lse, d_q, d_k, d_v, d_cu, n_seqs, max_len, H, KV, D, NULL, &e) == 0,
              "%s", e.msg);
        CHECK(kern_attention_backward(dt, d_dq, d_dk, d_dv, d_dout, d_q, d_k, d_v, d_out, d_lse, d_cu, n_seqs, max_len,
                                      T, H, KV, D, scratch, NULL, &e) == 0,
              "%s", e.msg);
        CHECK(kern_synchronize(&e) == 0, "%s", e.msg);
        got[run][0] = malloc(nq * 4), got[run][1] = malloc(nl * 4), got[run][2] = malloc(nq * 4);
        got[run][3] = malloc(nk * 4), got[run][4] = malloc(nk * 4);
        gpu_download(dt, got[run][0], d_out, nq);
        gpu_download(KERN_F32, got[run][1], d_lse, nl);
        gpu_download(dt, got[run][2], d_dq, nq);
        gpu_download(dt, got[run][3], d_dk, nk);
        gpu_download(dt, got[run][4], d_dv, nk);
        kern_free(d_out), kern_free(d_lse), kern_free(d_dq), kern_free(d_dk), kern_free(d_dv);
    }
    /* CPU backward from the GPU's own (rounded) out, as a training step reads it */
    const float *out_r = got[0][0];
    float *want_dq = malloc(nq * 4), *want_dk = malloc(nk * 4), *want_dv = malloc(nk * 4);
    memcpy(want_dq, dq0, nq * 4), memcpy(want_dk, dk0, nk * 4), memcpy(want_dv, dv0, nk * 4);
    attention_backward(want_dq, want_dk, want_dv, dout, q, k, v, out_r, want_lse, cu, n_seqs, H, KV, D);
    float *mq = malloc(nq * 4), *mk = malloc(nk * 4), *mv = malloc(nk * 4), *mo = calloc(nq, 4);
    for (size_t i = 0; i < nq; i++) mq[i] = fabsf(dq0[i]);
    for (size_t i = 0; i < nk; i++) mk[i] = fabsf(dk0[i]), mv[i] = fabsf(dv0[i]);
    magnitudes(mo, mq, mk, mv, dout, q, k, v, out_r, want_lse, cu, n_seqs, H, KV, D);

    const double rel = dt == KERN_BF16 ? 1.0 / 256 : 0.0;
    char what[160], shape[96];
    snprintf(shape, sizeof shape, "%s seqs=%d T=%d H=%d KV=%d D=%d", gpu_dtype_name(dt), n_seqs, T, H, KV, D);
    snprintf(what, sizeof what, "attention %s: out", shape);
    /* bf16 with D = 64 or 128 runs on the tensor cores with P rounded to bf16 (as
     * FlashAttention does): 2^-8 of sum_j p_j |v_j| more */
    double e_o = gpu_check_close(what, got[0][0], want_out, mo, nq, 2e-5, rel, rel);
    snprintf(what, sizeof what, "attention %s: lse", shape);
    double e_l = gpu_check_close(what, got[0][1], want_lse, NULL, nl, 2e-5, 1e-6, 0);
    snprintf(what, sizeof what, "attention %s: dq", shape);
    const double stol = 1e-4 + rel; /* + dS and P rounded to bf16 on the tensor cores */
    double e_dq = gpu_check_close(what, got[0][2], want_dq, mq, nq, 1e-30, rel, stol);
    snprintf(what, sizeof what, "attention %s: dk", shape);
    double e_dk = gpu_check_close(what, got[0][3], want_dk, mk, nk, 1e-30, rel, stol);
    snprintf(what, sizeof what, "attention %s: dv", shape);
    double e_dv = gpu_check_close(what, got[0][4], want_dv, mv, nk, 1e-30, rel, stol);
    const size_t sizes[5] = {nq, nl, nq, nk, nk};
    for (int i = 0; i < 5; i++)
        CHECK(memcmp(got[0][i], got[1][i], sizes[i] * 4) == 0, "attention %s: output %d differs between runs", shape, i);
    printf("attention %s max |diff| out %.2g lse %.2g dq %.2g dk %.2g dv %.2g\n", shape, e_o, e_l, e_dq, e_dk, e_dv);

    for (int run = 0; run < 2; run++)
        for (int i = 0; i < 5; i++) free(got[run][i]);
    kern_free(d_q), kern_free(d_k), kern_free(d_v), kern_free(d_dout), kern_free(d_cu), kern_free(scratch);
    free(cu), free(q), free(k), free(v), free(dout), free(dq0), free(dk0), free(dv0), free(want_out), free(want_lse);
    free(want_dq), free(want_dk), free(want_dv), free(mq), free(mk), free(mv), free(mo);
}

int main(void) {
    gpu_test_require_device();
    /* RLVR_GPU_TEST_SHORT=1 (run_on_device.sh --sanitize) leaves out the longest shapes */
    const char *short_env = getenv("RLVR_GPU_TEST_SHORT");
    const int short_run = short_env && strcmp(short_env, "1") == 0;
    static const int one[] = {1}, mixed[] = {1, 7, 33, 64, 100}, empty_mid[] = {5, 0, 9}, qwen[] = {129, 300},
                     long_one[] = {50}, mha[] = {77, 1}, odd_d[] = {31, 45},
                     long_mixed[] = {200, 64, 129}, qwen15[] = {700, 333}, long_gqa[] = {1030, 17};
    for (int dt = 0; dt < 2; dt++) {
        kern_dtype t = (kern_dtype)dt;
        check_attention(t, one, 1, 1, 1, 64);
        check_attention(t, mixed, 5, 4, 2, 64);       /* tile edges: 1, 7, 33, 64, 100 tokens */
        check_attention(t, empty_mid, 3, 2, 1, 32);   /* an empty sequence between two others */
        check_attention(t, qwen, 2, 14, 2, 64);       /* Qwen2.5-0.5B heads: 14 query, 2 KV, 64 wide */
        check_attention(t, mha, 2, 8, 8, 128);        /* multi-head (no grouping), D = 128 */
        check_attention(t, long_mixed, 3, 4, 2, 64);  /* several 64-row tensor-core tiles */
        if (!short_run) { /* the CPU references take seconds here, minutes under compute-sanitizer */
            check_attention(t, qwen15, 2, 12, 2, 128);  /* Qwen2.5-1.5B heads: 12 query, 2 KV, 128 wide */
            check_attention(t, long_gqa, 2, 14, 2, 64); /* many tiles, double-buffered loads, group of 7 */
        }
        check_attention(t, long_one, 1, 4, 1, 256);   /* D = 256 (Gemma-like), group of 4 */
        check_attention(t, odd_d, 2, 6, 3, 40);       /* a head size that is not a multiple of 32 */
    }
    rlvr_err e = {{0}};
    CHECK(kern_attention_forward(KERN_F32, NULL, NULL, NULL, NULL, NULL, NULL, 1, 8, 6, 4, 64, NULL, &e) == -1,
          "H not a multiple of KV accepted");
    CHECK(kern_attention_forward(KERN_F32, NULL, NULL, NULL, NULL, NULL, NULL, 1, 8, 4, 4, 512, NULL, &e) == -1,
          "D = 512 accepted");
    return gpu_test_finish();
}
