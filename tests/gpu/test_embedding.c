/* test_embedding.c - the embedding lookup and its atomic-free backward against the CPU twins
 * (embedding_forward, embedding_backward): both are copies or the same sequence of fp32
 * additions, so the GPU must match bit for bit, in fp32 and with bf16 gradients (widened
 * exactly), on tokens that repeat heavily (a 50-token vocabulary) and on Qwen2.5's. */
#include "cpu_ops.h"
#include "gpu_test.h"
#include "rng.h"

static void check_embedding(kern_dtype dt, int T, int C, int V) {
    rlvr_err e = {{0}};
    rng_stream r;
    rng_stream_init(&r, 303, (uint64_t)T * 131u + (uint64_t)C * 7u + (uint64_t)V + dt);
    size_t nt = (size_t)V * C, nx = (size_t)T * C;
    float *table = malloc(nt * 4), *dtable0 = malloc(nt * 4), *dout = malloc(nx * 4);
    int *tokens = malloc((size_t)T * sizeof(int)), *order = malloc((size_t)T * sizeof(int));
    int *starts = malloc((size_t)(T + 1) * sizeof(int)), *unique = malloc((size_t)T * sizeof(int));
    for (size_t i = 0; i < nt; i++) table[i] = rng_stream_normal(&r), dtable0[i] = rng_stream_normal(&r);
    for (size_t i = 0; i < nx; i++) dout[i] = rng_stream_normal(&r);
    for (int t = 0; t < T; t++) tokens[t] = (int)rng_stream_below(&r, (uint64_t)V);
    gpu_round_to(dt, table, nt), gpu_round_to(dt, dout, nx);
    float *want_x = malloc(nx * 4), *want_dt = malloc(nt * 4);
    embedding_forward(want_x, table, tokens, T, C);
    memcpy(want_dt, dtable0, nt * 4);
    embedding_backward(want_dt, dout, tokens, T, C);
    int n = embedding_group_rows(tokens, T, order, starts, unique);
    CHECK(n >= 1, "embedding_group_rows failed");

    void *d_table = gpu_upload(dt, table, nt), *d_dout = gpu_upload(dt, dout, nx), *d_x = gpu_upload(dt, dout, nx);
    int *d_tokens = kern_malloc((size_t)T * 4, &e), *d_order = kern_malloc((size_t)T * 4, &e);
    int *d_starts = kern_malloc((size_t)(T + 1) * 4, &e), *d_unique = kern_malloc((size_t)T * 4, &e);
    CHECK(d_tokens && d_order && d_starts && d_unique, "%s", e.msg);
    kern_memcpy_h2d(d_tokens, tokens, (size_t)T * 4, &e), kern_memcpy_h2d(d_order, order, (size_t)T * 4, &e);
    kern_memcpy_h2d(d_starts, starts, (size_t)(n + 1) * 4, &e), kern_memcpy_h2d(d_unique, unique, (size_t)n * 4, &e);
    float *got_x = malloc(nx * 4), *got_dt[2] = {malloc(nt * 4), malloc(nt * 4)};
    CHECK(kern_embedding_forward(dt, d_x, d_table, d_tokens, T, C, NULL, &e) == 0, "%s", e.msg);
    gpu_download(dt, got_x, d_x, nx);
    for (int run = 0; run < 2; run++) {
        float *d_dt = gpu_upload(KERN_F32, dtable0, nt);
        CHECK(kern_embedding_backward(dt, d_dt, d_dout, d_order, d_starts, d_unique, n, C, NULL, &e) == 0, "%s", e.msg);
        gpu_download(KERN_F32, got_dt[run], d_dt, nt);
        kern_free(d_dt);
    }
    char what[96];
    snprintf(what, sizeof what, "embedding %s T=%d C=%d V=%d forward", gpu_dtype_name(dt), T, C, V);
    gpu_check_close(what, got_x, want_x, NULL, nx, 0, 0, 0);
    snprintf(what, sizeof what, "embedding %s T=%d C=%d V=%d backward", gpu_dtype_name(dt), T, C, V);
    gpu_check_close(what, got_dt[0], want_dt, NULL, nt, 0, 0, 0);
    CHECK(memcmp(got_dt[0], got_dt[1], nt * 4) == 0, "%s: two runs differ", what);
    printf("embedding %s T=%-5d C=%-4d V=%-6d (%d distinct tokens): forward and backward exact\n", gpu_dtype_name(dt), T,
           C, V, n);
    kern_free(d_table), kern_free(d_dout), kern_free(d_x), kern_free(d_tokens), kern_free(d_order), kern_free(d_starts);
    kern_free(d_unique);
    free(table), free(dtable0), free(dout), free(tokens), free(order), free(starts), free(unique), free(want_x);
    free(want_dt), free(got_x), free(got_dt[0]), free(got_dt[1]);
}

int main(void) {
    gpu_test_require_device();
    for (int dt = 0; dt < 2; dt++) {
        check_embedding((kern_dtype)dt, 1, 1, 1);
        check_embedding((kern_dtype)dt, 1000, 896, 50);  /* ~20 rows per token */
        check_embedding((kern_dtype)dt, 300, 64, 151936); /* mostly distinct */
        check_embedding((kern_dtype)dt, 77, 257, 3);     /* three tokens, odd width */
    }
    rlvr_err e = {{0}};
    CHECK(kern_embedding_forward(KERN_F32, NULL, NULL, NULL, 0, 4, NULL, &e) == -1, "T=0 accepted");
    return gpu_test_finish();
}
