/* cpu_paged_attention.c - the CPU reference of attention against a paged KV cache, the
 * twin of the rollout's decode, prefill-chunk and verification kernels: plain, split
 * along the keys (long-context decode), cascade (shared prefix once per group), and the
 * log-sum-exp merge the last two share. Layouts are described in cpu_ops.h. */
#include "cpu_ops.h"

#include <assert.h>
#include <math.h>

/* Row of kv head g at position pos of a sequence: through its block table. */
static const float *cache_row(const float *cache, const int *table, int pos, int block_size, int KV, int g, int D) {
    const size_t slot = (size_t)table[pos / block_size] * block_size + pos % block_size;
    return cache + (slot * KV + g) * D;
}

/* Softmax attention of one query row qr [D] to positions [k_begin, k_end) of kv head g:
 * writes the normalized o [D] and its log-sum-exp (o = 0 and -inf for an empty range).
 * The operations and their order are attention_forward's: fp32 dot products, a max pass,
 * exp sums in double, p = e * (1 / sum) accumulated in fp32. sc: k_end - k_begin floats. */
static float attend_range(float *o, const float *qr, const float *k_cache, const float *v_cache, const int *table,
                          int k_begin, int k_end, int block_size, int KV, int g, int D, float *sc) {
    const float scale = 1.0f / sqrtf((float)D);
    for (int d = 0; d < D; d++) o[d] = 0.0f;
    if (k_end <= k_begin) return -INFINITY;
    float mx = -INFINITY;
    for (int j = k_begin; j < k_end; j++) {
        const float *kr = cache_row(k_cache, table, j, block_size, KV, g, D);
        float dot = 0.0f;
        for (int d = 0; d < D; d++) dot += qr[d] * kr[d];
        sc[j - k_begin] = scale * dot;
        if (sc[j - k_begin] > mx) mx = sc[j - k_begin];
    }
    double sum = 0.0;
    for (int j = 0; j < k_end - k_begin; j++) sum += sc[j] = expf(sc[j] - mx);
    const float inv = (float)(1.0 / sum);
    for (int j = k_begin; j < k_end; j++) {
        const float *vr = cache_row(v_cache, table, j, block_size, KV, g, D), p = sc[j - k_begin] * inv;
        for (int d = 0; d < D; d++) o[d] += p * vr[d];
    }
    return mx + (float)log(sum);
}

void paged_attention_forward(float *out, float *lse, const float *q, const float *k_cache, const float *v_cache,
                             const int *block_tables, int max_blocks, const int *cu_q, const int *seq_lens,
                             int n_seqs, int block_size, int H, int KV, int D, float *scratch) {
    const int group = H / KV;
    for (int i = 0; i < n_seqs; i++) {
        const int *table = block_tables + (size_t)i * max_blocks;
        const int n_new = cu_q[i + 1] - cu_q[i], pos0 = seq_lens[i] - n_new;
        assert(pos0 >= 0);
        for (int r = 0; r < n_new; r++)
            for (int h = 0; h < H; h++) {
                const size_t row = (size_t)(cu_q[i] + r) * H + h;
                lse[row] = attend_range(out + row * D, q + row * D, k_cache, v_cache, table, 0, pos0 + r + 1,
                                        block_size, KV, h / group, D, scratch);
            }
    }
}

void paged_attention_split_forward(float *out, float *lse, const float *q, const float *k_cache,
                                   const float *v_cache, const int *block_tables, int max_blocks, const int *cu_q,
                                   const int *seq_lens, int n_seqs, int block_size, int H, int KV, int D,
                                   int split_len, float *scratch) {
    assert(split_len > 0);
    const int group = H / KV;
    float *part = scratch, *sc = scratch + D;
    for (int i = 0; i < n_seqs; i++) {
        const int *table = block_tables + (size_t)i * max_blocks;
        const int n_new = cu_q[i + 1] - cu_q[i], pos0 = seq_lens[i] - n_new;
        for (int r = 0; r < n_new; r++)
            for (int h = 0; h < H; h++) {
                const size_t row = (size_t)(cu_q[i] + r) * H + h;
                const int n_keys = pos0 + r + 1;
                float *o = out + row * D;
                for (int d = 0; d < D; d++) o[d] = 0.0f;
                lse[row] = -INFINITY;
                for (int k0 = 0; k0 < n_keys; k0 += split_len) {
                    const int k1 = k0 + split_len < n_keys ? k0 + split_len : n_keys;
                    float part_lse = attend_range(part, q + row * D, k_cache, v_cache, table, k0, k1, block_size,
                                                  KV, h / group, D, sc);
                    attention_merge(o, lse + row, part, &part_lse, 1, D);
                }
            }
    }
}

size_t cascade_attention_scratch(int T, int H, int D, int max_seq_len) {
    return (size_t)T * H * ((size_t)D + 1) + (size_t)max_seq_len;
}

void cascade_attention_forward(float *out, float *lse, const float *q, const float *k_cache, const float *v_cache,
                               const int *block_tables, int max_blocks, const int *cu_q, const int *seq_lens,
                               int n_seqs, const int *cu_groups, const int *prefix_blocks, int n_groups,
                               int block_size, int H, int KV, int D, float *scratch) {
    const int group = H / KV, T = cu_q[n_seqs];
    float *suffix_out = scratch, *suffix_lse = scratch + (size_t)T * H * D, *sc = suffix_lse + (size_t)T * H;
    for (int gi = 0; gi < n_groups; gi++) {
        const int prefix_len = prefix_blocks[gi] * block_size;
        /* phase 1: every query of the group against the shared prefix, read through the
         * first sequence's table (the others name the same blocks) */
        const int *shared = block_tables + (size_t)cu_groups[gi] * max_blocks;
        for (int i = cu_groups[gi]; i < cu_groups[gi + 1]; i++) {
            assert(seq_lens[i] - (cu_q[i + 1] - cu_q[i]) >= prefix_len);
            for (size_t row = (size_t)cu_q[i] * H; row < (size_t)cu_q[i + 1] * H; row++)
                lse[row] = attend_range(out + row * D, q + row * D, k_cache, v_cache, shared, 0, prefix_len,
                                        block_size, KV, (int)(row % H) / group, D, sc);
        }
        /* phase 2: each query against its own positions prefix_len .. itself */
        for (int i = cu_groups[gi]; i < cu_groups[gi + 1]; i++) {
            const int *table = block_tables + (size_t)i * max_blocks;
            const int n_new = cu_q[i + 1] - cu_q[i], pos0 = seq_lens[i] - n_new;
            for (int r = 0; r < n_new; r++)
                for (int h = 0; h < H; h++) {
                    const size_t row = (size_t)(cu_q[i] + r) * H + h;
                    suffix_lse[row] = attend_range(suffix_out + row * D, q + row * D, k_cache, v_cache, table,
                                                   prefix_len, pos0 + r + 1, block_size, KV, h / group, D, sc);
                }
        }
    }
    /* phase 3: the exact merge */
    attention_merge(out, lse, suffix_out, suffix_lse, T * H, D);
}

void attention_merge(float *out, float *lse, const float *out_b, const float *lse_b, int rows, int D) {
    for (int r = 0; r < rows; r++) {
        const double la = lse[r], lb = lse_b[r];
        if (lb == -INFINITY) continue;
        float *o = out + (size_t)r * D;
        const float *ob = out_b + (size_t)r * D;
        if (la == -INFINITY) {
            for (int d = 0; d < D; d++) o[d] = ob[d];
            lse[r] = lse_b[r];
            continue;
        }
        const double m = la > lb ? la : lb, a = exp(la - m), b = exp(lb - m), inv = 1.0 / (a + b);
        for (int d = 0; d < D; d++) o[d] = (float)((a * o[d] + b * ob[d]) * inv);
        lse[r] = (float)(m + log(a + b));
    }
}
