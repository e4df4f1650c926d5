/* test_gemm_inv.c - the batch-invariant linear layer (kern_matmul_invariant) against the
 * CPU twin matmul_forward, and against itself: the point of the kernel is that a row's
 * output has the same bits whatever the call around it.
 *
 * For each shape (odd sizes, K tails shorter than a tile, real ones), bf16 and fp32
 * outputs, with and without bias:
 * - close to matmul_forward on the same bf16-rounded inputs: 1e-5 of sum_k |a_k w_k| (fp32
 *   sums in another order) plus 2^-8 of the value when the output is bf16;
 * - every tile shape (small, medium, large, auto) gives the same bytes;
 * - rows recomputed in calls of their own - one row, a slice starting at an odd row, the
 *   rows in another batch - give the bytes they had in the whole batch;
 * - shapes the kernel cannot take are refused with an error, not computed wrongly.
 * RLVR_GPU_TEST_SHORT=1 (the host emulation) keeps the shapes small. */
#include "cpu_ops.h"
#include "gpu_test.h"
#include "rng.h"

static const int tiles[] = {KERN_INV_TILE_SMALL, KERN_INV_TILE_MEDIUM, KERN_INV_TILE_LARGE, KERN_INV_TILE_AUTO};
static const char *tile_names[] = {"small", "medium", "large", "auto"};

static float *random_bf16(rng_stream *r, size_t n, float scale) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_stream_normal(r);
    gpu_round_to(KERN_BF16, x, n);
    return x;
}

/* Runs the kernel on rows r0 .. r0 + n - 1 of d_inp and returns the output's raw bytes. */
static unsigned char *run(kern_dtype out_dt, const void *d_inp, const void *d_w, const void *d_bias, int r0, int n,
                          int IC, int OC, int tile) {
    rlvr_err e = {{0}};
    const size_t bytes = (size_t)n * OC * kern_dtype_size(out_dt);
    void *d_out = kern_malloc(bytes, &e);
    unsigned char *host = malloc(bytes);
    if (!d_out || !host) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    CHECK(kern_memzero(d_out, bytes, NULL, &e) == 0, "%s", e.msg);
    const void *inp = (const unsigned char *)d_inp + (size_t)r0 * IC * 2;
    CHECK(kern_matmul_invariant(out_dt, d_out, inp, d_w, d_bias, n, IC, OC, tile, NULL, &e) == 0, "%s", e.msg);
    CHECK(kern_synchronize(&e) == 0, "%s", e.msg);
    CHECK(kern_memcpy_d2h(host, d_out, bytes, &e) == 0, "%s", e.msg);
    kern_free(d_out);
    return host;
}

static void check_shape(int T, int IC, int OC, int with_bias, kern_dtype out_dt) {
    rng_stream r;
    rng_stream_init(&r, 11, (uint64_t)T * 1000003u + (uint64_t)IC * 1009u + (uint64_t)OC * 3u + (uint64_t)with_bias);
    const size_t n_in = (size_t)T * IC, n_w = (size_t)OC * IC, n_out = (size_t)T * OC;
    const size_t esz = kern_dtype_size(out_dt), row_bytes = (size_t)OC * esz;
    float *inp = random_bf16(&r, n_in, 1.0f), *w = random_bf16(&r, n_w, 0.05f);
    float *bias = with_bias ? random_bf16(&r, OC, 0.5f) : NULL;
    char what[160];
    snprintf(what, sizeof what, "T=%d IC=%d OC=%d bias=%d out %s", T, IC, OC, with_bias, gpu_dtype_name(out_dt));

    /* the CPU twin, and the magnitude behind each output */
    float *want = malloc(n_out * sizeof(float)), *scale = malloc(n_out * sizeof(float)), *got = malloc(n_out * 4);
    matmul_forward(want, inp, w, bias, T, IC, OC);
    float *a_inp = malloc(n_in * 4), *a_w = malloc(n_w * 4), *a_bias = bias ? malloc((size_t)OC * 4) : NULL;
    for (size_t i = 0; i < n_in; i++) a_inp[i] = fabsf(inp[i]);
    for (size_t i = 0; i < n_w; i++) a_w[i] = fabsf(w[i]);
    for (int i = 0; bias && i < OC; i++) a_bias[i] = fabsf(bias[i]);
    matmul_forward(scale, a_inp, a_w, a_bias, T, IC, OC);

    void *d_inp = gpu_upload(KERN_BF16, inp, n_in), *d_w = gpu_upload(KERN_BF16, w, n_w);
    void *d_bias = bias ? gpu_upload(KERN_BF16, bias, OC) : NULL;
    unsigned char *ref = run(out_dt, d_inp, d_w, d_bias, 0, T, IC, OC, KERN_INV_TILE_SMALL);
    for (size_t i = 0; i < n_out; i++)
        got[i] = out_dt == KERN_BF16 ? st_bf16_to_f32(((uint16_t *)ref)[i]) : ((float *)ref)[i];
    double err = gpu_check_close(what, got, want, scale, n_out, 1e-30, out_dt == KERN_BF16 ? 1.0 / 256 : 0.0, 1e-5);

    int same = 1;
    for (int k = 1; k < 4; k++) {
        unsigned char *o = run(out_dt, d_inp, d_w, d_bias, 0, T, IC, OC, tiles[k]);
        CHECK(memcmp(o, ref, n_out * esz) == 0, "%s: tile %s differs from tile small", what, tile_names[k]);
        same &= memcmp(o, ref, n_out * esz) == 0;
        free(o);
    }
    /* rows in calls of their own: the last row alone, a slice from an odd row, the first
     * half; each with the tile its own size picks and with the large one */
    const int slices[3][2] = {{T - 1, 1}, {T / 3 | 1, T - (T / 3 | 1) < 37 ? T - (T / 3 | 1) : 37}, {0, (T + 1) / 2}};
    for (int s = 0; s < 3; s++) {
        const int r0 = slices[s][0], n = slices[s][1];
        if (r0 < 0 || n < 1 || r0 + n > T) continue;
        for (int k = 2; k < 4; k++) {
            unsigned char *o = run(out_dt, d_inp, d_w, d_bias, r0, n, IC, OC, tiles[k]);
            CHECK(memcmp(o, ref + (size_t)r0 * row_bytes, (size_t)n * row_bytes) == 0,
                  "%s: rows %d..%d alone (tile %s) differ from the whole batch's", what, r0, r0 + n - 1,
                  tile_names[k]);
            same &= memcmp(o, ref + (size_t)r0 * row_bytes, (size_t)n * row_bytes) == 0;
            free(o);
        }
    }
    printf("matmul_invariant %-40s max |diff| %.3g, tiles and row slices %s\n", what, err,
           same ? "bit for bit" : "DIFFER");
    kern_free(d_inp), kern_free(d_w), kern_free(d_bias);
    free(ref), free(inp), free(w), free(bias), free(want), free(scale), free(got), free(a_inp), free(a_w), free(a_bias);
}

/* A row placed among other rows: row 0 of a batch of one must equal the same values at row
 * 57 of a batch of 200 whose other rows are different numbers. */
static void check_other_rows(int IC, int OC) {
    rng_stream r;
    rng_stream_init(&r, 12, (uint64_t)IC * 7u + (uint64_t)OC);
    const int T = 200, at = 57;
    float *batch = random_bf16(&r, (size_t)T * IC, 1.0f), *w = random_bf16(&r, (size_t)OC * IC, 0.05f);
    void *d_batch = gpu_upload(KERN_BF16, batch, (size_t)T * IC), *d_w = gpu_upload(KERN_BF16, w, (size_t)OC * IC);
    void *d_one = gpu_upload(KERN_BF16, batch + (size_t)at * IC, (size_t)IC);
    unsigned char *all = run(KERN_BF16, d_batch, d_w, NULL, 0, T, IC, OC, KERN_INV_TILE_AUTO);
    unsigned char *one = run(KERN_BF16, d_one, d_w, NULL, 0, 1, IC, OC, KERN_INV_TILE_AUTO);
    CHECK(memcmp(one, all + (size_t)at * OC * 2, (size_t)OC * 2) == 0,
          "IC=%d OC=%d: a row alone differs from the same row at %d of %d", IC, OC, at, T);
    printf("matmul_invariant IC=%d OC=%d: a row alone and at row %d of %d: %s\n", IC, OC, at, T,
           memcmp(one, all + (size_t)at * OC * 2, (size_t)OC * 2) == 0 ? "bit for bit" : "DIFFER");
    kern_free(d_batch), kern_free(d_w), kern_free(d_one);
    free(all), free(one), free(batch), free(w);
}

static void check_refusals(void) {
    rlvr_err e = {{0}};
    void *buf = kern_malloc(4096, &e);
    CHECK(kern_matmul_invariant(KERN_BF16, buf, buf, buf, NULL, 2, 12, 4, KERN_INV_TILE_AUTO, NULL, &e) != 0,
          "IC = 12 (not a multiple of 8) was accepted");
    CHECK(kern_matmul_invariant(KERN_BF16, buf, (char *)buf + 2, buf, NULL, 2, 16, 4, KERN_INV_TILE_AUTO, NULL, &e) !=
              0,
          "an input that is not 16-byte aligned was accepted");
    CHECK(kern_matmul_invariant(KERN_BF16, buf, buf, buf, NULL, 0, 16, 4, KERN_INV_TILE_AUTO, NULL, &e) != 0,
          "T = 0 was accepted");
    CHECK(kern_matmul_invariant(KERN_BF16, buf, buf, buf, NULL, 2, 16, 4, 9, NULL, &e) != 0, "tile 9 was accepted");
    kern_free(buf);
}

int main(void) {
    gpu_test_require_device();
    const char *short_env = getenv("RLVR_GPU_TEST_SHORT");
    const int full = !(short_env && *short_env && strcmp(short_env, "0") != 0);
    check_refusals();
    check_shape(1, 16, 8, 0, KERN_BF16);
    check_shape(7, 24, 40, 1, KERN_BF16);      /* K tail of 24 < 32, N not a multiple of 16 */
    check_shape(37, 136, 50, 1, KERN_F32);     /* odd rows, N even but not a tile's multiple */
    check_shape(65, 72, 33, 0, KERN_BF16);     /* odd N: the last column stored alone */
    check_shape(130, 64, 136, 1, KERN_BF16);   /* two large tiles of rows, the second nearly empty */
    check_other_rows(96, 40);
    if (full) {
        check_shape(64, 896, 896, 1, KERN_BF16);   /* Qwen2.5-0.5B q at a decode step of 64 */
        check_shape(300, 896, 4864, 0, KERN_BF16); /* gate/up */
        check_shape(256, 4864, 896, 0, KERN_BF16); /* down: a long K */
        check_shape(513, 896, 1000, 0, KERN_F32);  /* LM head rows in fp32 */
        check_shape(2048, 1536, 256, 1, KERN_BF16); /* a training forward's k of the 1.5B shape */
        check_other_rows(896, 4864);
    }
    return gpu_test_finish();
}
