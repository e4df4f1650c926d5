/* attention_tool.c - runs rlvr's GPU attention (kern_attention_forward, then
 * kern_attention_backward from zero gradients) on inputs from a file, for
 * tests/reference/check_attention_torch.py to compare with PyTorch's
 * scaled_dot_product_attention on the same GPU.
 *   usage: attention_tool IN OUT
 * IN: int32 dtype (0 fp32, 1 bf16), n_seqs, H, KV, D; int32 cu_seqlens[n_seqs + 1]; then
 * float32 q [T, H, D], k [T, KV, D], v [T, KV, D], dout [T, H, D] (already representable
 * in the dtype). OUT: float32 out, lse [T, H], dq, dk, dv. Exit 0, 1 on a failure (message
 * on stderr), 2 on bad usage or input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "safetensors.h"

static void *load(FILE *f, size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p || fread(p, 1, bytes, f) != bytes) {
        free(p);
        return NULL;
    }
    return p;
}

/* host floats -> device buffer in dt */
static void *to_device(kern_dtype dt, const float *x, size_t n, rlvr_err *e) {
    size_t bytes = (n ? n : 1) * kern_dtype_size(dt);
    uint16_t *tmp = NULL;
    const void *src = x;
    if (dt == KERN_BF16) {
        tmp = malloc(bytes);
        if (!tmp) return NULL;
        for (size_t i = 0; i < n; i++) tmp[i] = st_f32_to_bf16(x[i]);
        src = tmp;
    }
    void *d = kern_malloc(bytes, e);
    if (d && kern_memcpy_h2d(d, src, n * kern_dtype_size(dt), e) != 0) {
        kern_free(d);
        d = NULL;
    }
    free(tmp);
    return d;
}

static int to_host(kern_dtype dt, float *x, const void *d, size_t n, rlvr_err *e) {
    if (dt == KERN_F32) return kern_memcpy_d2h(x, d, n * 4, e);
    uint16_t *tmp = malloc((n ? n : 1) * 2);
    if (!tmp) return err_set(e, "out of memory");
    if (kern_memcpy_d2h(tmp, d, n * 2, e) != 0) {
        free(tmp);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t b = (uint32_t)tmp[i] << 16;
        memcpy(&x[i], &b, 4);
    }
    free(tmp);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: attention_tool IN OUT\n");
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    int32_t hdr[5];
    if (!in || fread(hdr, 4, 5, in) != 5 || hdr[0] < 0 || hdr[0] > 1 || hdr[1] < 1 || hdr[2] < 1 || hdr[3] < 1 ||
        hdr[4] < 1) {
        fprintf(stderr, "attention_tool: %s: bad header\n", argv[1]);
        return 2;
    }
    kern_dtype dt = (kern_dtype)hdr[0];
    int n_seqs = hdr[1], H = hdr[2], KV = hdr[3], D = hdr[4];
    int32_t *cu = load(in, (size_t)(n_seqs + 1) * 4);
    if (!cu || cu[0] != 0) {
        fprintf(stderr, "attention_tool: %s: bad cu_seqlens\n", argv[1]);
        return 2;
    }
    int T = cu[n_seqs], max_len = 0;
    for (int s = 0; s < n_seqs; s++) {
        if (cu[s + 1] < cu[s]) {
            fprintf(stderr, "attention_tool: cu_seqlens decreases at %d\n", s);
            return 2;
        }
        if (cu[s + 1] - cu[s] > max_len) max_len = cu[s + 1] - cu[s];
    }
    size_t nq = (size_t)T * H * D, nk = (size_t)T * KV * D, nl = (size_t)T * H;
    float *q = load(in, nq * 4), *k = load(in, nk * 4), *v = load(in, nk * 4), *dout = load(in, nq * 4);
    fclose(in);
    if (!q || !k || !v || !dout || T < 1) {
        fprintf(stderr, "attention_tool: %s: truncated\n", argv[1]);
        return 2;
    }
    rlvr_err e = {{0}};
    float *zeros = calloc(nq > nk ? nq : nk, 4), *host = malloc((nq > nl ? nq : nl) * 4);
    void *d_q = to_device(dt, q, nq, &e), *d_k = to_device(dt, k, nk, &e), *d_v = to_device(dt, v, nk, &e);
    void *d_dout = to_device(dt, dout, nq, &e), *d_out = to_device(dt, zeros, nq, &e);
    void *d_dq = to_device(dt, zeros, nq, &e), *d_dk = to_device(dt, zeros, nk, &e), *d_dv = to_device(dt, zeros, nk, &e);
    float *d_lse = to_device(KERN_F32, zeros, nl, &e);
    int32_t *d_cu = kern_malloc((size_t)(n_seqs + 1) * 4, &e);
    void *scratch = kern_malloc(kern_attention_backward_scratch(T, H, KV, D), &e);
    FILE *out = fopen(argv[2], "wb");
    int ok = zeros && host && d_q && d_k && d_v && d_dout && d_out && d_dq && d_dk && d_dv && d_lse && d_cu &&
             scratch && out && kern_memcpy_h2d(d_cu, cu, (size_t)(n_seqs + 1) * 4, &e) == 0 &&
             kern_attention_forward(dt, d_out, d_lse, d_q, d_k, d_v, d_cu, n_seqs, max_len, H, KV, D, NULL, &e) == 0 &&
             kern_attention_backward(dt, d_dq, d_dk, d_dv, d_dout, d_q, d_k, d_v, d_out, d_lse, d_cu, n_seqs, max_len,
                                     T, H, KV, D, scratch, NULL, &e) == 0 &&
             kern_synchronize(&e) == 0;
    void *outs[5] = {d_out, d_lse, d_dq, d_dk, d_dv};
    size_t sizes[5] = {nq, nl, nq, nk, nk};
    for (int i = 0; ok && i < 5; i++)
        ok = to_host(i == 1 ? KERN_F32 : dt, host, outs[i], sizes[i], &e) == 0 && fwrite(host, 4, sizes[i], out) == sizes[i];
    if (out && fclose(out) != 0) ok = 0;
    if (!ok) fprintf(stderr, "attention_tool: %s\n", e.msg[0] ? e.msg : "out of memory or write error");
    for (int i = 0; i < 5; i++) kern_free(outs[i]);
    kern_free(d_q), kern_free(d_k), kern_free(d_v), kern_free(d_dout), kern_free(d_cu), kern_free(scratch);
    free(cu), free(q), free(k), free(v), free(dout), free(zeros), free(host);
    return ok ? 0 : 1;
}
