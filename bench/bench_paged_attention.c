/* bench_paged_attention.c - speed of the rollout engine's decode attention
 * (kernels/paged_attention.cu) in bf16: one decode step of B sequences of L positions each
 * in a pool of 16-token blocks with shuffled tables, as B / G groups of G samples sharing
 * a prompt of P positions, timed as the plain kernel, split-KV (chunks of S positions) and
 * cascade (the prompt read once per group), beside one step's K/V write and its block
 * copies (one partial prompt block per sample). Default shapes are Qwen2.5-0.5B's heads
 * (14 query, 2 KV of 64); --heads 12 --kv-heads 2 --head-dim 128 are Qwen2.5-1.5B's.
 *
 *   bench_paged_attention [--batch B] [--ctx L] [--group G] [--prompt P] [--split S]
 *                         [--iters N] [--heads H] [--kv-heads KV] [--head-dim D]
 *
 * Times are the median of N synchronized runs after two warm-ups. "GB/s" is the K/V bytes
 * a kernel must read once divided by its time: B L KV D 2 (K and V) 2 bytes for plain and
 * split; for cascade the prompt counts once per group. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_gpu.h"
#include "kernels.h"
#include "rng.h"
#include "safetensors.h"

static void die(const char *what, const char *msg) {
    fprintf(stderr, "bench_paged_attention: %s: %s\n", what, msg);
    exit(1);
}

static void *upload(const void *host, size_t bytes) {
    rlvr_err e = {{0}};
    void *d = kern_malloc(bytes ? bytes : 1, &e);
    if (!d || kern_memcpy_h2d(d, host, bytes, &e) != 0) die("upload", e.msg);
    return d;
}

/* n random normal bf16 values in device memory. */
static void *dev_randn(size_t n, uint64_t seed) {
    uint16_t *h = malloc((n ? n : 1) * 2);
    if (!h) die("dev_randn", "out of memory");
    rng_stream r;
    rng_stream_init(&r, seed, 0);
    for (size_t i = 0; i < n; i++) h[i] = st_f32_to_bf16(rng_stream_normal(&r));
    void *d = upload(h, n * 2);
    free(h);
    return d;
}

typedef struct bench {
    int B, L, G, P, S, H, KV, D, bs, n_blocks;
    kern_paged_batch b;
    void *k_cache, *v_cache, *q, *out, *k_new, *v_new, *scratch;
    float *lse;
    int *slots, *copies;
    int which; /* 0 plain, 1 split, 2 cascade, 3 K/V write, 4 block copies */
} bench;

static int run(bench *x, rlvr_err *e) {
    switch (x->which) {
    case 0:
        return kern_paged_attention_forward(KERN_BF16, x->out, x->lse, x->q, x->k_cache, x->v_cache, &x->b,
                                            x->n_blocks, x->bs, x->H, x->KV, x->D, NULL, e);
    case 1:
        return kern_paged_attention_split_forward(KERN_BF16, x->out, x->lse, x->q, x->k_cache, x->v_cache, &x->b,
                                                  x->n_blocks, x->bs, x->H, x->KV, x->D, x->S, x->scratch, NULL, e);
    case 2:
        return kern_cascade_attention_forward(KERN_BF16, x->out, x->lse, x->q, x->k_cache, x->v_cache, &x->b,
                                              x->n_blocks, x->bs, x->H, x->KV, x->D, x->S, x->scratch, NULL, e);
    case 3:
        return kern_kv_write(KERN_BF16, x->k_cache, x->v_cache, x->k_new, x->v_new, (size_t)x->KV * x->D, x->slots,
                             x->B, x->n_blocks, x->bs, x->KV, x->D, NULL, e);
    default:
        return kern_kv_block_copy(KERN_BF16, x->k_cache, x->v_cache, x->copies, x->B, 1, 0, x->n_blocks, x->bs,
                                  x->KV, x->D, NULL, e);
    }
}

static int run_fn(void *x, rlvr_err *e) { return run((bench *)x, e); }

static double time_it(bench *x, int iters) { return bench_gpu_median_s(run_fn, x, iters, "bench_paged_attention"); }

int main(int argc, char **argv) {
    int B = 64, L = 1024, G = 8, P = 512, S = 512, iters = 20, H = 14, KV = 2, D = 64;
    for (int i = 1; i + 1 < argc; i += 2) {
        int *dst = strcmp(argv[i], "--batch") == 0      ? &B
                   : strcmp(argv[i], "--ctx") == 0      ? &L
                   : strcmp(argv[i], "--group") == 0    ? &G
                   : strcmp(argv[i], "--prompt") == 0   ? &P
                   : strcmp(argv[i], "--split") == 0    ? &S
                   : strcmp(argv[i], "--iters") == 0    ? &iters
                   : strcmp(argv[i], "--heads") == 0    ? &H
                   : strcmp(argv[i], "--kv-heads") == 0 ? &KV
                   : strcmp(argv[i], "--head-dim") == 0 ? &D
                                                        : NULL;
        if (!dst) {
            fprintf(stderr, "bench_paged_attention: unknown option %s\n", argv[i]);
            return 2;
        }
        *dst = atoi(argv[i + 1]);
    }
    const int bs = 16;
    if (B < 1 || G < 1 || B % G || P < 0 || L <= P || S < 1 || iters < 1 || KV < 1 || H % KV || D < 1 || D > 256) {
        fprintf(stderr, "bench_paged_attention: need --batch a multiple of --group, 0 <= --prompt < --ctx, "
                        "--heads a multiple of --kv-heads, --head-dim in [1, 256]\n");
        return 2;
    }
    if (!bench_gpu_present()) return 0;
    rlvr_err e = {{0}};

    /* tables: each group's prompt blocks (P / bs whole ones) shared, the rest per sample */
    const int pb = P / bs, per_seq = (L + bs - 1) / bs, n_groups = B / G;
    const int n_blocks = n_groups * pb + B * (per_seq - pb) + B; /* + a block per sample for the copies */
    int *perm = malloc((size_t)n_blocks * sizeof(int)), *tables = malloc((size_t)B * per_seq * sizeof(int));
    rng_stream r;
    rng_stream_init(&r, 5, 0);
    for (int i = 0; i < n_blocks; i++) perm[i] = i;
    for (int i = n_blocks - 1; i > 0; i--) {
        const int j = (int)rng_stream_below(&r, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int next = 0;
    for (int s = 0; s < B; s++)
        for (int blk = 0; blk < per_seq; blk++)
            tables[s * per_seq + blk] = s % G && blk < pb ? tables[(s - s % G) * per_seq + blk] : perm[next++];
    int *cu_q = malloc((size_t)(B + 1) * sizeof(int)), *lens = malloc((size_t)B * sizeof(int));
    int *cu_groups = malloc((size_t)(n_groups + 1) * sizeof(int)), *prefix = malloc((size_t)n_groups * sizeof(int));
    int *slots = malloc((size_t)B * sizeof(int)), *copies = malloc((size_t)B * 3 * sizeof(int));
    for (int s = 0; s <= B; s++) cu_q[s] = s;
    for (int s = 0; s < B; s++) {
        lens[s] = L;
        slots[s] = tables[s * per_seq + (L - 1) / bs] * bs + (L - 1) % bs;
        copies[3 * s] = tables[s * per_seq + pb], copies[3 * s + 1] = perm[next++], copies[3 * s + 2] = bs - 1;
    }
    for (int g = 0; g <= n_groups; g++) cu_groups[g] = g * G;
    for (int g = 0; g < n_groups; g++) prefix[g] = pb;

    bench x = {.B = B, .L = L, .G = G, .P = P, .S = S, .H = H, .KV = KV, .D = D, .bs = bs, .n_blocks = n_blocks};
    const size_t pool = (size_t)n_blocks * bs * KV * D;
    x.k_cache = dev_randn(pool, 1), x.v_cache = dev_randn(pool, 2), x.q = dev_randn((size_t)B * H * D, 3);
    x.k_new = dev_randn((size_t)B * KV * D, 4), x.v_new = dev_randn((size_t)B * KV * D, 5);
    x.out = dev_randn((size_t)B * H * D, 6);
    x.lse = kern_malloc((size_t)B * H * sizeof(float), &e);
    const size_t split_bytes = kern_paged_attention_split_scratch(B, H, D, L, S);
    const size_t cascade_bytes = kern_cascade_attention_scratch(B, H, D, L, S);
    x.scratch = kern_malloc(split_bytes > cascade_bytes ? split_bytes : cascade_bytes, &e);
    if (!x.lse || !x.scratch) die("scratch", e.msg);
    x.slots = upload(slots, (size_t)B * sizeof(int)), x.copies = upload(copies, (size_t)B * 3 * sizeof(int));
    x.b = (kern_paged_batch){.block_tables = upload(tables, (size_t)B * per_seq * sizeof(int)),
                             .cu_q = upload(cu_q, (size_t)(B + 1) * sizeof(int)),
                             .seq_lens = upload(lens, (size_t)B * sizeof(int)),
                             .n_seqs = B,
                             .max_blocks = per_seq,
                             .T = B,
                             .max_q = 1,
                             .max_seq_len = L,
                             .cu_groups = upload(cu_groups, (size_t)(n_groups + 1) * sizeof(int)),
                             .prefix_blocks = upload(prefix, (size_t)n_groups * sizeof(int)),
                             .n_groups = n_groups,
                             .max_group_rows = G};

    printf("decode step: %d sequences x %d positions, groups of %d sharing %d prompt positions, H=%d KV=%d D=%d, "
           "bf16, blocks of %d\n",
           B, L, G, P, H, KV, D, bs);
    const double kv_bytes = (double)B * L * KV * D * 2 * 2;
    const double cascade_bytes_read = ((double)n_groups * pb * bs + (double)B * (L - pb * bs)) * KV * D * 2 * 2;
    const char *names[] = {"plain", "split", "cascade", "kv write", "block copy"};
    for (int w = 0; w < 5; w++) {
        x.which = w;
        const double t = time_it(&x, iters);
        const double bytes = w == 2   ? cascade_bytes_read
                             : w == 3 ? (double)B * KV * D * 2 * 2 * 2
                             : w == 4 ? (double)B * (bs - 1) * KV * D * 2 * 2 * 2
                                      : kv_bytes;
        printf("%-10s %9.1f us  %7.1f GB/s\n", names[w], t * 1e6, bytes / t * 1e-9);
        if (w == 1) printf("           (split_len %d: %d chunks a sequence)\n", S, (L + S - 1) / S);
    }
    kern_free(x.k_cache), kern_free(x.v_cache), kern_free(x.q), kern_free(x.out), kern_free(x.k_new);
    kern_free(x.v_new), kern_free(x.lse), kern_free(x.scratch), kern_free(x.slots), kern_free(x.copies);
    kern_free((void *)x.b.block_tables), kern_free((void *)x.b.cu_q), kern_free((void *)x.b.seq_lens);
    kern_free((void *)x.b.cu_groups), kern_free((void *)x.b.prefix_blocks);
    free(perm), free(tables), free(cu_q), free(lens), free(cu_groups), free(prefix), free(slots), free(copies);
    return 0;
}
