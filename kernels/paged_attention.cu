// paged_attention.cu - the rollout engine's kernels on a paged KV cache: the step's block
// copies (copy on write of a shared partial block), the K/V write through the slot
// mapping, and attention through block tables in three forms - plain (decode, prefill
// chunks, verification of draft tokens), split-KV for long contexts, and cascade for
// groups of samples sharing a prompt - with the log-sum-exp merge the last two share.
// CPU twins: paged_attention_forward, paged_attention_split_forward,
// cascade_attention_forward and attention_merge in core/cpu_paged_attention.c.
//
// Layout (kernels.h): one layer's pool k_cache, v_cache [n_blocks, block_size, KV, D];
// position p of a sequence at slot table[p >> log2(block_size)] * block_size +
// (p & (block_size - 1)). Query rows q [T, H, D]; query head h reads kv head
// h / (H / KV) in place.
//
// On the CUDA cores one kernel serves every form (bf16 with heads of 64 or 128 and H / KV
// <= 16 goes to the tensor-core kernels of attention_tc.cu instead, except the plain
// form). A thread block owns one kv head g, a set of query rows that read the same block
// table (a tile of one sequence's new rows, or in cascade phase 1 a tile of a group's
// rows), all H / KV query heads of g for each row ("slots", up to 64: 8 warps x SPW), and
// one key range per row: [lo, hi_r). It walks the keys in tiles of 32 positions from lo:
// the tile's K and V rows are gathered through the block table into shared memory as fp32
// (16-byte loads where the rows allow it), each warp then takes its slots one at a time
// with one key per lane (a whole fp32 dot product in a fixed order), folds the 32 scores
// into an online softmax (warp max, warp sum) and adds p_j v_j over the head dimension
// spread across the lanes. Every K/V row is read once per kv head per thread block, and a
// slot's arithmetic does not depend on which other slots, rows or sequences share the
// launch: the results are batch-invariant and repeat bit for bit. Forms differ only in the
// key ranges and in where results go:
//   plain     [0, pos + 1), written as out (dtype) and lse;
//   split     [c * split_len, min((c + 1) * split_len, pos + 1)) for chunk c = blockIdx.z,
//             a partial (fp32 out, lse) per chunk, merged in chunk order;
//   cascade   phase 1 [0, prefix_len) for a group's rows through its first table,
//             phase 2 [prefix_len, pos + 1), each a partial, merged.
// Partials live in a scratch [parts][T * H][D] floats followed by [parts][T * H] lse; an
// empty range writes lse = -inf, which the merge skips (attention_merge's rule), so
// unused chunks of short rows cost nothing and change nothing.
//
// Speed (H100, 2026-12-07, docs/benchmarks.md): the split form's decode took 29.7 us a
// layer at batch 64 for 17 MB of K/V (5.7 us at copy bandwidth), and its merge 11.5 us:
// each of the H / KV warps of a block reads the whole tile again from shared memory, and
// the gather waits on the table and then the rows once a tile. That is why bf16 decode
// now runs on the tensor cores (all of a kv head's query heads in one mma tile, cp.async
// double buffering), whose speed has not been measured yet.
//
// Indices come from the host's bookkeeping; a thread block that finds its sequence's
// indices inconsistent (a block id outside the pool, more positions than its table, more
// new rows than positions) writes NaN into its rows instead of reading outside the pool.
#include <climits>
#include <cstdint>

#include "attention_tc.cuh"
#include "cuda_common.cuh"

#define PA_KT 32                          // keys per tile: one per lane
#define PA_WARPS 8                        // 256 threads
#define PA_THREADS (PA_WARPS * 32)
#define PA_SLOTS 64                       // query slots per thread block at most: (row, head) pairs
#define PA_MAX_D 256
#define PA_MAX_BLOCK_LOG2 20
#define FULL_MASK 0xffffffffu
#define TC_SPLIT_ROUND 64                 // the tensor-core split's chunks: whole 64-key tiles

enum pa_mode { PA_PLAIN = 0, PA_SPLIT = 1, PA_PREFIX = 2, PA_SUFFIX = 3 };

// Everything a launch of paged_attention_kernel reads (by value, in constant memory).
struct pa_params {
    const void *q, *k_cache, *v_cache;
    void *out;                 // final results (part_out == NULL): out [T, H, D] dtype, lse [T, H]
    float *lse;
    float *part_out, *part_lse; // partial results: part (part0 + blockIdx.z) of [parts][T * H][D], [parts][T * H]
    const int *block_tables, *cu_q, *seq_lens, *cu_groups, *prefix_blocks;
    int mode, n_seqs, n_groups, max_blocks, T, n_blocks, bs_log2, H, KV, D, group;
    int qt;        // query rows per thread block (qt * group <= PA_SLOTS)
    int tiles;     // row tiles per sequence (or group): blockIdx.x = unit * tiles + tile
    int split_len; // PA_SPLIT: positions per chunk
    int part0;
    int vec;       // cache rows load 16 bytes at a time (D * sizeof(T) % 16 == 0, aligned pools)
    float scale;
};

// ---- attention --------------------------------------------------------------------------
//
// A slot's arithmetic is spelled with explicit roundings (__fmaf_rn, __fmul_rn, __fadd_rn),
// so that the instantiations for one and for eight slots a warp, which a row may run in
// depending on the rest of its batch, cannot contract or order it differently.
//
// Grid (unit * tiles + tile, kv head g, chunk); unit is a sequence (plain, split, cascade
// phase 2) or a group (phase 1). 8 warps; slot s = r * group + j (row r of the tile, query
// head g * group + j) belongs to warp s % 8, as its (s / 8)-th slot. Shared memory (fp32):
// Q [qt * group][D], K tile [32][KS], V tile [32][D]. The K row stride KS = D + 4 when
// D % 4 == 0 (the dot product then reads Q and K 16 bytes at a time, and lane i's row
// starts 4 i banks along, so each quarter warp's 16-byte reads hit distinct banks), else
// D + 1 (one float at a time).
// Decode's one slot a warp keeps three blocks resident an SM (at most 85 registers).
template <typename T, int DL, int SPW>
__global__ void __launch_bounds__(PA_THREADS, SPW == 1 ? 3 : 1) paged_attention_kernel(const pa_params p) {
    extern __shared__ __align__(16) float smem[]; // 16-byte reads of Q and K below
    const int D = p.D, group = p.group, g = blockIdx.y;
    const int unit = blockIdx.x / p.tiles, tile = blockIdx.x % p.tiles;
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int bs_mask = (1 << p.bs_log2) - 1;
    // Which rows [r_lo, r_hi) the unit has (paged_unit_at), and each row's keys [lo, hi):
    // row r (global) of a causal unit sees positions up to pos0 + (r - r_lo); a phase-1 row
    // sees [0, fixed_hi); the split caps every row at its chunk's end.
    const bool causal = p.mode != PA_PREFIX;
    paged_unit u;
    if (!paged_unit_at(u, p.mode == PA_PREFIX ? PAGED_PREFIX : p.mode == PA_SUFFIX ? PAGED_SUFFIX : PAGED_WHOLE, unit,
                       p.cu_q, p.seq_lens, p.block_tables, p.cu_groups, p.prefix_blocks, p.n_seqs, p.n_groups, p.T,
                       p.max_blocks, p.bs_log2))
        return;
    const int r_lo = u.r_lo, r_hi = u.r_hi, pos0 = u.pos0, fixed_hi = u.hi, *table = u.table;
    int lo = u.lo, lo_end = INT_MAX;
    bool bad = u.bad;
    if (p.mode == PA_SPLIT) {
        lo = (int)blockIdx.z * p.split_len, lo_end = lo + p.split_len; // the launcher keeps these in int
        bad = bad || p.seq_lens[unit] > (long long)gridDim.z * p.split_len;
    }
    bad = bad || r_hi - r_lo > p.tiles * p.qt; // rows no tile would cover
    const int row0 = r_lo + tile * p.qt;
    if (row0 >= r_hi) return; // the whole block leaves together
    const int n_rows = min(p.qt, r_hi - row0), n_slots = n_rows * group;
    // rows of a tile are consecutive positions, so the last row reaches furthest
    auto row_hi = [&](int r) { return min(causal ? pos0 + (row0 - r_lo) + r + 1 : fixed_hi, lo_end); };
    const int kmax = row_hi(n_rows - 1);

    const bool vec4 = (D & 3) == 0;
    const int KS = vec4 ? D + 4 : D + 1;
    float *Qs = smem, *Ks = Qs + (size_t)p.qt * group * D, *Vs = Ks + PA_KT * KS;
    float m[SPW], l[SPW], o[SPW][DL];
    int hi[SPW];
#pragma unroll
    for (int i = 0; i < SPW; i++) {
        const int slot = warp + PA_WARPS * i;
        hi[i] = slot < n_slots ? row_hi(slot / group) : lo;
        m[i] = -INFINITY, l[i] = 0.0f;
#pragma unroll
        for (int c = 0; c < DL; c++) o[i][c] = 0.0f;
    }

    if (!bad && kmax > lo) {
        const T *q = static_cast<const T *>(p.q);
        for (int idx = tid; idx < n_slots * D; idx += PA_THREADS) {
            const int slot = idx / D, d = idx - slot * D, r = slot / group, j = slot - r * group;
            Qs[idx] = load_f(q + ((size_t)(row0 + r) * p.H + g * group + j) * D + d);
        }
        const T *kc = static_cast<const T *>(p.k_cache), *vc = static_cast<const T *>(p.v_cache);
        for (int k0 = lo; k0 < kmax; k0 += PA_KT) {
            __syncthreads(); // the previous tile is consumed (and, the first time, Q is staged)
            // Gather keys k0 .. k0 + 31 (zeros past kmax) through the block table.
            int block_bad = 0;
            if (p.vec) {
                constexpr int VEC = 16 / sizeof(T);
                const int nv = D / VEC;
                for (int idx = tid; idx < PA_KT * nv; idx += PA_THREADS) {
                    const int j = idx / nv, c = (idx - j * nv) * VEC, pos = k0 + j;
                    float kf[VEC], vf[VEC];
                    bool loaded = false;
                    if (pos < kmax) {
                        const int blk = table[pos >> p.bs_log2];
                        if (blk >= 0 && blk < p.n_blocks) {
                            const size_t slot = ((size_t)blk << p.bs_log2) + (pos & bs_mask);
                            const size_t off = (slot * p.KV + g) * D + c;
                            load_w<T, VEC>(kc + off, kf); // cuda_common.cuh: one 16-byte load
                            load_w<T, VEC>(vc + off, vf);
                            loaded = true;
                        } else {
                            block_bad = 1;
                        }
                    }
                    // p.vec implies D % 4 == 0, so KS = D + 4 and both rows take 16-byte stores
#pragma unroll
                    for (int x = 0; x < VEC; x += 4) {
                        *reinterpret_cast<float4 *>(Ks + j * KS + c + x) =
                            loaded ? make_float4(kf[x], kf[x + 1], kf[x + 2], kf[x + 3]) : make_float4(0, 0, 0, 0);
                        *reinterpret_cast<float4 *>(Vs + j * D + c + x) =
                            loaded ? make_float4(vf[x], vf[x + 1], vf[x + 2], vf[x + 3]) : make_float4(0, 0, 0, 0);
                    }
                }
            } else {
                for (int idx = tid; idx < PA_KT * D; idx += PA_THREADS) {
                    const int j = idx / D, d = idx - j * D, pos = k0 + j;
                    float kf = 0.0f, vf = 0.0f;
                    if (pos < kmax) {
                        const int blk = table[pos >> p.bs_log2];
                        if (blk >= 0 && blk < p.n_blocks) {
                            const size_t slot = ((size_t)blk << p.bs_log2) + (pos & bs_mask);
                            const size_t off = (slot * p.KV + g) * D + d;
                            kf = load_f(kc + off), vf = load_f(vc + off);
                        } else {
                            block_bad = 1;
                        }
                    }
                    Ks[j * KS + d] = kf;
                    Vs[j * D + d] = vf;
                }
            }
            if (__syncthreads_or(block_bad)) { // the same answer in every thread
                bad = true;
                break;
            }
#pragma unroll
            for (int i = 0; i < SPW; i++) {
                const int slot = warp + PA_WARPS * i;
                if (slot >= n_slots || k0 >= hi[i]) continue; // the same for every lane of the warp
                const int nk = min(PA_KT, hi[i] - k0);        // keys of this tile the slot sees
                const bool valid = lane < nk;
                float s = -INFINITY;
                if (valid) {
                    const float *qs = Qs + slot * D, *ks = Ks + lane * KS;
                    float dot = 0.0f; // summed in the order d = 0, 1, .. either way
                    if (vec4) {
                        for (int d = 0; d < D; d += 4) {
                            const float4 qv = *reinterpret_cast<const float4 *>(qs + d);
                            const float4 kv = *reinterpret_cast<const float4 *>(ks + d);
                            dot = __fmaf_rn(qv.x, kv.x, dot);
                            dot = __fmaf_rn(qv.y, kv.y, dot);
                            dot = __fmaf_rn(qv.z, kv.z, dot);
                            dot = __fmaf_rn(qv.w, kv.w, dot);
                        }
                    } else {
                        for (int d = 0; d < D; d++) dot = __fmaf_rn(qs[d], ks[d], dot);
                    }
                    s = __fmul_rn(p.scale, dot);
                }
                const float m_new = fmaxf(m[i], warp_max(s)); // finite: lane 0's key is valid
                const float pr = valid ? expf(s - m_new) : 0.0f;
                const float corr = expf(m[i] - m_new); // 0 on the slot's first tile (m = -inf)
                l[i] = __fmaf_rn(l[i], corr, warp_sum(pr));
#pragma unroll
                for (int c = 0; c < DL; c++) o[i][c] = __fmul_rn(o[i][c], corr);
                for (int j = 0; j < nk; j++) {
                    const float pj = __shfl_sync(FULL_MASK, pr, j);
#pragma unroll
                    for (int c = 0; c < DL; c++) {
                        const int d = lane + 32 * c;
                        if (d < D) o[i][c] = __fmaf_rn(pj, Vs[j * D + d], o[i][c]);
                    }
                }
                m[i] = m_new;
            }
        }
    }

    const size_t TH = (size_t)p.T * p.H;
    const int part = p.part0 + (int)blockIdx.z;
    if (bad) { // NaN into every row of the tile (the last tile also takes rows no tile covers)
        const int rows_end = tile == p.tiles - 1 ? r_hi : row0 + n_rows;
        for (int idx = tid; idx < (rows_end - row0) * group * D; idx += PA_THREADS) {
            const int slot = idx / D, d = idx - slot * D, r = slot / group, j = slot - r * group;
            const size_t row = (size_t)(row0 + r) * p.H + g * group + j;
            if (p.part_out) {
                p.part_out[((size_t)part * TH + row) * D + d] = NAN;
                if (d == 0) p.part_lse[(size_t)part * TH + row] = NAN;
            } else {
                store_f(static_cast<T *>(p.out) + row * D + d, NAN);
                if (d == 0) p.lse[row] = NAN;
            }
        }
        return;
    }
#pragma unroll
    for (int i = 0; i < SPW; i++) {
        const int slot = warp + PA_WARPS * i;
        if (slot >= n_slots) continue;
        const int r = slot / group, j = slot - r * group;
        const size_t row = (size_t)(row0 + r) * p.H + g * group + j;
        const bool empty = hi[i] <= lo; // no key: o = 0, lse = -inf (a partial the merge skips)
        const float inv = empty ? 0.0f : 1.0f / l[i];
        const float row_lse = empty ? -INFINITY : __fadd_rn(m[i], logf(l[i]));
        if (p.part_out) {
            float *dst = p.part_out + ((size_t)part * TH + row) * D;
#pragma unroll
            for (int c = 0; c < DL; c++) {
                const int d = lane + 32 * c;
                if (d < D) dst[d] = o[i][c] * inv;
            }
            if (lane == 0) p.part_lse[(size_t)part * TH + row] = row_lse;
        } else {
            T *dst = static_cast<T *>(p.out) + row * D;
#pragma unroll
            for (int c = 0; c < DL; c++) {
                const int d = lane + 32 * c;
                if (d < D) store_f(dst + d, o[i][c] * inv);
            }
            if (lane == 0) p.lse[row] = row_lse;
        }
    }
}

// ---- merge ------------------------------------------------------------------------------
//
// out, lse of each of `rows` (row, head) pairs from n_parts partials: with M the largest
// part lse and w_p = exp(lse_p - M), out = sum_p w_p o_p / sum_p w_p and lse = M + log of
// that sum, both summed in part order; a part with lse = -inf weighs nothing and is not
// read (a NaN lse makes the row NaN). One warp per row: the lanes read 32 parts' lse at once, then
// the weighted rows, the head dimension across the lanes, with no load waiting on
// another. (CPU twin: attention_merge, which merges pairwise in double: equal to fp32
// rounding.)
template <typename T>
__global__ void __launch_bounds__(256) paged_merge_kernel(T *out, float *lse, const float *part_out,
                                                          const float *part_lse, int n_parts, int rows, int D) {
    const int row = blockIdx.x * 8 + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows) return;
    float mx = -INFINITY;
    for (int p = lane; p < n_parts; p += 32) mx = fmaxf(mx, part_lse[(size_t)p * rows + row]);
    mx = warp_max(mx);
    float o[PA_MAX_D / 32], sum = 0.0f;
#pragma unroll
    for (int c = 0; c < PA_MAX_D / 32; c++) o[c] = 0.0f;
    for (int p0 = 0; p0 < n_parts; p0 += 32) {
        const float lp = p0 + lane < n_parts ? part_lse[(size_t)(p0 + lane) * rows + row] : -INFINITY;
        const float w = lp == -INFINITY ? 0.0f : expf(lp - mx); // NaN stays NaN
        const int n = min(32, n_parts - p0);
        for (int i = 0; i < n; i++) {
            const float wi = __shfl_sync(FULL_MASK, w, i);
            if (wi == 0.0f) continue; // the same for every lane; empty parts change nothing
            sum += wi;                // in part order, whatever the empty parts between
            const float *ob = part_out + ((size_t)(p0 + i) * rows + row) * D;
#pragma unroll
            for (int c = 0; c < PA_MAX_D / 32; c++) {
                const int d = lane + 32 * c;
                if (d < D) o[c] = fmaf(wi, ob[d], o[c]);
            }
        }
    }
    const bool empty = mx == -INFINITY && sum == 0.0f; // no part saw a key
    const float inv = empty ? 0.0f : 1.0f / sum;
#pragma unroll
    for (int c = 0; c < PA_MAX_D / 32; c++) {
        const int d = lane + 32 * c;
        if (d < D) store_f(out + (size_t)row * D + d, o[c] * inv);
    }
    if (lane == 0) lse[row] = empty ? -INFINITY : mx + logf(sum);
}

// ---- block copy and K/V write -------------------------------------------------------------
//
// Both move whole rows of bytes: 16 at a time when every address involved is 16-byte
// aligned (vec), else 2 (every dtype's size is a multiple of 2).

__device__ __forceinline__ void copy_bytes(char *dst, const char *src, size_t bytes, int vec, int t, int nt) {
    size_t done = 0;
    if (vec) {
        const size_t n16 = bytes / 16;
        for (size_t i = t; i < n16; i += nt)
            reinterpret_cast<uint4 *>(dst)[i] = reinterpret_cast<const uint4 *>(src)[i];
        done = n16 * 16;
    }
    for (size_t i = done / 2 + t; i < bytes / 2; i += nt)
        reinterpret_cast<uint16_t *>(dst)[i] = reinterpret_cast<const uint16_t *>(src)[i];
}

// Grid (copy, layer * 2 + (0: K, 1: V)); 256 threads copy the first n_tokens slots of
// block src into block dst: n_tokens * KV * D contiguous elements.
__global__ void __launch_bounds__(256) kv_block_copy_kernel(char *k_cache, char *v_cache, const int *copies,
                                                            size_t layer_stride_bytes, int n_blocks, int block_size,
                                                            size_t row_bytes, int vec) {
    const int src = copies[3 * blockIdx.x], dst = copies[3 * blockIdx.x + 1], n = copies[3 * blockIdx.x + 2];
    if (src < 0 || src >= n_blocks || dst < 0 || dst >= n_blocks || n < 0 || n > block_size) return;
    char *base = (blockIdx.y & 1 ? v_cache : k_cache) + (size_t)(blockIdx.y >> 1) * layer_stride_bytes;
    const size_t block_bytes = (size_t)block_size * row_bytes;
    copy_bytes(base + (size_t)dst * block_bytes, base + (size_t)src * block_bytes, (size_t)n * row_bytes, vec,
               threadIdx.x, blockDim.x);
}

// Grid (ceil(T / 8), 2: K, V); a warp per row t copies its KV * D elements into its slot.
__global__ void __launch_bounds__(256) kv_write_kernel(char *k_cache, char *v_cache, const char *k, const char *v,
                                                       size_t ld_bytes, const int *slot_mapping, int T, int n_slots,
                                                       size_t row_bytes, int vec) {
    const int t = blockIdx.x * 8 + threadIdx.x / 32;
    if (t >= T) return;
    const int slot = slot_mapping[t];
    if (slot < 0 || slot >= n_slots) return; // -1: a row whose K/V are not kept
    const char *src = (blockIdx.y ? v : k) + (size_t)t * ld_bytes;
    char *dst = (blockIdx.y ? v_cache : k_cache) + (size_t)slot * row_bytes;
    copy_bytes(dst, src, row_bytes, vec, threadIdx.x % 32, 32);
}

// ---- launchers ----------------------------------------------------------------------------

static int ilog2_pow2(int x) { // log2 of a power of two, -1 for anything else
    if (x <= 0 || (x & (x - 1))) return -1;
    int n = 0;
    while ((1 << n) != x) n++;
    return n;
}

static int check_pool(const char *fn, kern_dtype dt, int n_blocks, int block_size, int KV, int D, rlvr_err *e) {
    if (dt != KERN_F32 && dt != KERN_BF16) return err_set(e, "%s: unknown dtype %d", fn, (int)dt);
    const int lg = ilog2_pow2(block_size);
    if (lg < 0 || lg > PA_MAX_BLOCK_LOG2)
        return err_set(e, "%s: block_size %d is not a power of two in [1, %d]", fn, block_size,
                       1 << PA_MAX_BLOCK_LOG2);
    if (n_blocks <= 0 || (long long)n_blocks * block_size > INT_MAX)
        return err_set(e, "%s: n_blocks %d (n_blocks * block_size must be in [1, %d])", fn, n_blocks, INT_MAX);
    if (KV <= 0 || KV > 65535 || D <= 0 || D > PA_MAX_D)
        return err_set(e, "%s: bad head shape KV=%d D=%d (KV in [1, 65535], D in [1, %d])", fn, KV, D, PA_MAX_D);
    return 0;
}

extern "C" int kern_kv_block_copy(kern_dtype dt, void *k_cache, void *v_cache, const int *copies, int n_copies,
                                  int n_layers, size_t layer_stride, int n_blocks, int block_size, int KV, int D,
                                  void *stream, rlvr_err *e) {
    if (check_pool("kv_block_copy", dt, n_blocks, block_size, KV, D, e)) return -1;
    if (n_copies < 0 || n_layers <= 0 || n_layers > 32767)
        return err_set(e, "kv_block_copy: n_copies=%d n_layers=%d (n_layers in [1, 32767])", n_copies, n_layers);
    const size_t esize = kern_dtype_size(dt), row_bytes = (size_t)KV * D * esize;
    if (n_layers > 1 && layer_stride < (size_t)n_blocks * block_size * KV * D)
        return err_set(e, "kv_block_copy: layer_stride %zu is less than a layer's pool (%zu elements)", layer_stride,
                       (size_t)n_blocks * block_size * KV * D);
    if (n_copies == 0) return 0;
    if (!k_cache || !v_cache || !copies) return err_set(e, "kv_block_copy: NULL pool or copies");
    const void *pools[] = {k_cache, v_cache};
    const int vec = aligned16(pools, 2) && (layer_stride * esize) % 16 == 0 &&
                    (block_size * row_bytes) % 16 == 0;
    const dim3 grid((unsigned)n_copies, (unsigned)(2 * n_layers));
    kv_block_copy_kernel<<<grid, 256, 0, (cudaStream_t)stream>>>((char *)k_cache, (char *)v_cache, copies,
                                                                 layer_stride * esize, n_blocks, block_size, row_bytes,
                                                                 vec);
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

extern "C" int kern_kv_write(kern_dtype dt, void *k_cache, void *v_cache, const void *k, const void *v, size_t ld,
                             const int *slot_mapping, int T, int n_blocks, int block_size, int KV, int D, void *stream,
                             rlvr_err *e) {
    if (check_pool("kv_write", dt, n_blocks, block_size, KV, D, e)) return -1;
    if (T < 0 || ld < (size_t)KV * D)
        return err_set(e, "kv_write: T=%d, ld %zu (a row of k is at least KV * D = %d elements)", T, ld, KV * D);
    if (T == 0) return 0;
    if (!k_cache || !v_cache || !k || !v || !slot_mapping) return err_set(e, "kv_write: NULL pool, k, v or slots");
    const size_t esize = kern_dtype_size(dt), row_bytes = (size_t)KV * D * esize;
    const void *rows[] = {k_cache, v_cache, k, v};
    const int vec = aligned16(rows, 4) && (ld * esize) % 16 == 0 && row_bytes % 16 == 0;
    const dim3 grid((unsigned)((T + 7) / 8), 2);
    kv_write_kernel<<<grid, 256, 0, (cudaStream_t)stream>>>((char *)k_cache, (char *)v_cache, (const char *)k,
                                                            (const char *)v, ld * esize, slot_mapping, T,
                                                            n_blocks * block_size, row_bytes, vec);
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

// The checks every attention form shares; fills the fields of p they determine.
static int check_attention(const char *fn, kern_dtype dt, const void *out, const float *lse, const void *q,
                           const void *k_cache, const void *v_cache, const kern_paged_batch *b, int n_blocks,
                           int block_size, int H, int KV, int D, pa_params *p, rlvr_err *e) {
    if (check_pool(fn, dt, n_blocks, block_size, KV, D, e)) return -1;
    if (!b) return err_set(e, "%s: NULL batch", fn);
    if (H <= 0 || H % KV || H / KV > PA_SLOTS)
        return err_set(e, "%s: H=%d with KV=%d (H must be a multiple of KV, with H / KV <= %d)", fn, H, KV,
                       PA_SLOTS);
    if (b->n_seqs <= 0 || b->T <= 0 || b->max_q <= 0 || b->max_q > b->T || b->max_blocks <= 0 ||
        (long long)b->max_blocks * block_size > INT_MAX || (long long)b->T * H > INT_MAX)
        return err_set(e, "%s: bad batch n_seqs=%d T=%d max_q=%d max_blocks=%d (need n_seqs, T >= 1, "
                       "1 <= max_q <= T, max_blocks * block_size <= %d)",
                       fn, b->n_seqs, b->T, b->max_q, b->max_blocks, INT_MAX);
    if (!out || !lse || !q || !k_cache || !v_cache || !b->block_tables || !b->cu_q || !b->seq_lens)
        return err_set(e, "%s: NULL tensor or batch array", fn);
    *p = pa_params{};
    p->q = q, p->k_cache = k_cache, p->v_cache = v_cache, p->out = (void *)out, p->lse = (float *)lse;
    p->block_tables = b->block_tables, p->cu_q = b->cu_q, p->seq_lens = b->seq_lens;
    p->n_seqs = b->n_seqs, p->max_blocks = b->max_blocks, p->T = b->T, p->n_blocks = n_blocks;
    p->bs_log2 = ilog2_pow2(block_size), p->H = H, p->KV = KV, p->D = D, p->group = H / KV;
    p->scale = 1.0f / sqrtf((float)D);
    const void *pools[] = {k_cache, v_cache};
    p->vec = aligned16(pools, 2) && (D * kern_dtype_size(dt)) % 16 == 0;
    return 0;
}

// Row tiles for units of up to max_rows rows: qt rows a block (qt * group <= PA_SLOTS).
static int set_tiles(const char *fn, pa_params *p, int max_rows, long long units, rlvr_err *e) {
    p->qt = PA_SLOTS / p->group < max_rows ? PA_SLOTS / p->group : max_rows;
    p->tiles = (max_rows + p->qt - 1) / p->qt;
    if (units * p->tiles > INT_MAX)
        return err_set(e, "%s: %lld units of %d row tiles is too large a grid", fn, units, p->tiles);
    return 0;
}

static size_t attention_smem(const pa_params *p) {
    const int ks = p->D % 4 == 0 ? p->D + 4 : p->D + 1; // the kernel's K row stride
    return ((size_t)p->qt * p->group * p->D + (size_t)PA_KT * (ks + p->D)) * sizeof(float);
}

template <typename T> static int launch_attention(const pa_params *p, dim3 grid, cudaStream_t s, rlvr_err *e) {
    const size_t smem = attention_smem(p);
#define PA_LAUNCH(DL, SPW)                                                                           \
    do {                                                                                             \
        CUDA_CHECK(cudaFuncSetAttribute(paged_attention_kernel<T, DL, SPW>,                          \
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),     \
                   e);                                                                               \
        paged_attention_kernel<T, DL, SPW><<<grid, PA_THREADS, smem, s>>>(*p);                       \
    } while (0)
#define PA_LAUNCH_SPW(DL)                                                                            \
    do {                                                                                             \
        if (p->qt * p->group <= PA_WARPS) PA_LAUNCH(DL, 1);                                          \
        else PA_LAUNCH(DL, PA_SLOTS / PA_WARPS);                                                     \
    } while (0)
    // DL >= ceil(D / 32) accumulators a lane, SPW slots a warp. Decode (a row's H / KV <= 8
    // heads) takes one slot a warp, which keeps registers, hence occupancy, where the
    // memory-bound case needs them; prefill tiles and cascade phase 1 take 8 (64 slots).
    // Six instantiations a dtype keep the build short; unused accumulators cost registers only.
    if (p->D <= 64) PA_LAUNCH_SPW(2);
    else if (p->D <= 128) PA_LAUNCH_SPW(4);
    else PA_LAUNCH_SPW(8);
#undef PA_LAUNCH_SPW
#undef PA_LAUNCH
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

static int launch_attention_dt(kern_dtype dt, const pa_params *p, dim3 grid, cudaStream_t s, rlvr_err *e) {
    return dt == KERN_BF16 ? launch_attention<bf16>(p, grid, s, e) : launch_attention<float>(p, grid, s, e);
}

static int launch_merge(kern_dtype dt, void *out, float *lse, const float *part_out, const float *part_lse,
                        int n_parts, int rows, int D, cudaStream_t s, rlvr_err *e) {
    const unsigned blocks = (unsigned)((rows + 7) / 8);
    if (dt == KERN_BF16)
        paged_merge_kernel<bf16><<<blocks, 256, 0, s>>>((bf16 *)out, lse, part_out, part_lse, n_parts, rows, D);
    else
        paged_merge_kernel<float><<<blocks, 256, 0, s>>>((float *)out, lse, part_out, part_lse, n_parts, rows, D);
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

// Partial results of n_parts parts: [n_parts][T * H][D] then [n_parts][T * H] floats.
static size_t parts_bytes(int n_parts, int T, int H, int D) {
    return (size_t)n_parts * T * H * ((size_t)D + 1) * sizeof(float);
}

extern "C" int kern_paged_attention_forward(kern_dtype dt, void *out, float *lse, const void *q, const void *k_cache,
                                            const void *v_cache, const kern_paged_batch *b, int n_blocks,
                                            int block_size, int H, int KV, int D, void *stream, rlvr_err *e) {
    pa_params p;
    if (check_attention("paged_attention_forward", dt, out, lse, q, k_cache, v_cache, b, n_blocks, block_size, H,
                        KV, D, &p, e) ||
        set_tiles("paged_attention_forward", &p, b->max_q, b->n_seqs, e))
        return -1;
    p.mode = PA_PLAIN;
    const dim3 grid((unsigned)(b->n_seqs * p.tiles), (unsigned)KV, 1);
    return launch_attention_dt(dt, &p, grid, (cudaStream_t)stream, e);
}

// The tensor-core kernels (attention_tc.cu) take bf16 with D 64 or 128, H / KV <= 16 and
// 16-byte aligned tensors.
static bool tc_eligible(kern_dtype dt, const pa_params *p, const void *scratch) {
    const void *ptrs[] = {p->out, p->q, p->k_cache, p->v_cache, scratch ? scratch : p->out};
    return dt == KERN_BF16 && p->group <= 16 && attn_tc_supported(p->D, ptrs, 5);
}

static tc_paged tc_of(const pa_params *p, const kern_paged_batch *b, int form) {
    tc_paged t = {};
    t.form = form, t.out = (bf16 *)p->out, t.lse = p->lse;
    t.q = (const bf16 *)p->q, t.k_cache = (const bf16 *)p->k_cache, t.v_cache = (const bf16 *)p->v_cache;
    t.block_tables = b->block_tables, t.cu_q = b->cu_q, t.seq_lens = b->seq_lens;
    t.cu_groups = b->cu_groups, t.prefix_blocks = b->prefix_blocks;
    t.n_units = b->n_seqs, t.max_rows = b->max_q, t.n_seqs = b->n_seqs, t.n_groups = b->n_groups;
    t.max_blocks = b->max_blocks, t.T = b->T, t.n_blocks = p->n_blocks, t.bs_log2 = p->bs_log2;
    t.H = p->H, t.KV = p->KV, t.D = p->D;
    return t;
}

extern "C" int kern_paged_attention_tc_forward(void *out, float *lse, const void *q, const void *k_cache,
                                               const void *v_cache, const kern_paged_batch *b, int n_blocks,
                                               int block_size, int H, int KV, int D, void *stream, rlvr_err *e) {
    const char *fn = "paged_attention_tc_forward";
    pa_params p;
    if (check_attention(fn, KERN_BF16, out, lse, q, k_cache, v_cache, b, n_blocks, block_size, H, KV, D, &p, e))
        return -1;
    if (!tc_eligible(KERN_BF16, &p, NULL))
        return err_set(e, "%s: needs H / KV <= 16 (got %d), D 64 or 128 (got %d) and 16-byte aligned tensors", fn,
                       H / KV, D);
    const tc_paged t = tc_of(&p, b, TC_PAGED_EXACT);
    return attn_tc_paged(&t, (cudaStream_t)stream, e);
}

// Chunks of split_len covering max_seq_len positions; 0 when the split is unusable.
static long long split_chunks(int max_seq_len, int split_len) {
    if (max_seq_len <= 0 || split_len <= 0) return 0;
    const long long n = ((long long)max_seq_len + split_len - 1) / split_len;
    return n <= 65535 && n * split_len <= INT_MAX ? n : 0;
}

// The tensor-core split's chunks covering max_seq_len: split_len rounded up to whole 64-key
// tiles (fewer chunks than split_len's, a function of split_len alone); 0 when unusable.
static long long tc_chunks(int max_seq_len, int split_len, int *tc_len) {
    const long long len = ((long long)split_len + TC_SPLIT_ROUND - 1) / TC_SPLIT_ROUND * TC_SPLIT_ROUND;
    *tc_len = split_len > 0 && len <= INT_MAX ? (int)len : 0;
    return *tc_len ? split_chunks(max_seq_len, *tc_len) : 0;
}

extern "C" size_t kern_paged_attention_split_scratch(int T, int H, int D, int max_seq_len, int split_len) {
    const long long n = split_chunks(max_seq_len, split_len);
    if (T <= 0 || H <= 0 || D <= 0 || !n) return 0;
    return parts_bytes((int)n, T, H, D);
}

extern "C" int kern_paged_attention_split_forward(kern_dtype dt, void *out, float *lse, const void *q,
                                                  const void *k_cache, const void *v_cache,
                                                  const kern_paged_batch *b, int n_blocks, int block_size, int H,
                                                  int KV, int D, int split_len, void *scratch, void *stream,
                                                  rlvr_err *e) {
    pa_params p;
    if (check_attention("paged_attention_split_forward", dt, out, lse, q, k_cache, v_cache, b, n_blocks,
                        block_size, H, KV, D, &p, e) ||
        set_tiles("paged_attention_split_forward", &p, b->max_q, b->n_seqs, e))
        return -1;
    const long long n_chunks = split_chunks(b->max_seq_len, split_len);
    if (!n_chunks)
        return err_set(e, "paged_attention_split_forward: max_seq_len %d with split_len %d (both >= 1, at most "
                       "65535 chunks)", b->max_seq_len, split_len);
    if (!scratch) return err_set(e, "paged_attention_split_forward: NULL scratch");
    const size_t TH = (size_t)b->T * H;
    float *part_out = (float *)scratch, *part_lse = part_out + (size_t)n_chunks * TH * D;
    cudaStream_t s = (cudaStream_t)stream;
    if (tc_eligible(dt, &p, scratch)) {
        int len;
        const long long n = tc_chunks(b->max_seq_len, split_len, &len);
        if (!n)
            return err_set(e, "paged_attention_split_forward: max_seq_len %d with split_len %d rounded up to whole "
                           "key tiles (at most 65535 chunks, in int)", b->max_seq_len, split_len);
        tc_paged t = tc_of(&p, b, TC_PAGED_SPLIT);
        t.part_out = part_out, t.part_lse = part_out + (size_t)n * TH * D;
        t.split_len = len, t.n_chunks = (int)n;
        if (attn_tc_paged(&t, s, e)) return -1;
        return launch_merge(dt, out, lse, t.part_out, t.part_lse, (int)n, (int)TH, D, s, e);
    }
    p.mode = PA_SPLIT, p.split_len = split_len;
    p.part_out = part_out, p.part_lse = part_lse;
    const dim3 grid((unsigned)(b->n_seqs * p.tiles), (unsigned)KV, (unsigned)n_chunks);
    if (launch_attention_dt(dt, &p, grid, s, e)) return -1;
    return launch_merge(dt, out, lse, p.part_out, p.part_lse, (int)n_chunks, (int)TH, D, s, e);
}

extern "C" size_t kern_cascade_attention_scratch(int T, int H, int D, int max_seq_len, int split_len) {
    if (T <= 0 || H <= 0 || D <= 0) return 0;
    int len;
    const long long n = D == 64 || D == 128 ? tc_chunks(max_seq_len, split_len, &len) : 0;
    return parts_bytes(n > 1 ? 2 * (int)n : 2, T, H, D); // both phases' chunks on the tensor cores
}

extern "C" int kern_cascade_attention_forward(kern_dtype dt, void *out, float *lse, const void *q,
                                              const void *k_cache, const void *v_cache, const kern_paged_batch *b,
                                              int n_blocks, int block_size, int H, int KV, int D, int split_len,
                                              void *scratch, void *stream, rlvr_err *e) {
    const char *fn = "cascade_attention_forward";
    pa_params p;
    if (check_attention(fn, dt, out, lse, q, k_cache, v_cache, b, n_blocks, block_size, H, KV, D, &p, e)) return -1;
    if (!b->cu_groups || !b->prefix_blocks || b->n_groups <= 0 || b->n_groups > b->n_seqs ||
        b->max_group_rows <= 0 || b->max_group_rows > b->T)
        return err_set(e, "%s: bad groups n_groups=%d max_group_rows=%d (need cu_groups, prefix_blocks, "
                       "1 <= n_groups <= n_seqs = %d, 1 <= max_group_rows <= T = %d)",
                       fn, b->n_groups, b->max_group_rows, b->n_seqs, b->T);
    if (!scratch) return err_set(e, "%s: NULL scratch", fn);
    const size_t TH = (size_t)b->T * H;
    cudaStream_t s = (cudaStream_t)stream;
    if (tc_eligible(dt, &p, scratch)) {
        int len;
        const long long n = tc_chunks(b->max_seq_len, split_len, &len);
        // phase 2's chunks start at a prefix: every chunk's end, prefix included, in int
        if (!n || ((long long)b->max_blocks * block_size + n * len > INT_MAX))
            return err_set(e, "%s: max_seq_len %d with split_len %d (both >= 1, at most 65535 chunks, the table's "
                           "positions plus the chunks' in int)", fn, b->max_seq_len, split_len);
        // phase 1: parts 0 .. n - 1, each group's rows against chunks of its prefix; phase 2:
        // parts n .. 2n - 1, each row against chunks of its positions past the prefix
        tc_paged t = tc_of(&p, b, TC_PAGED_PREFIX);
        t.part_out = (float *)scratch, t.part_lse = t.part_out + 2 * n * TH * D;
        t.split_len = len, t.n_chunks = (int)n;
        t.n_units = b->n_groups, t.max_rows = b->max_group_rows;
        if (attn_tc_paged(&t, s, e)) return -1;
        t.form = TC_PAGED_SUFFIX, t.part0 = (int)n, t.n_units = b->n_seqs, t.max_rows = b->max_q;
        if (attn_tc_paged(&t, s, e)) return -1;
        return launch_merge(dt, out, lse, t.part_out, t.part_lse, 2 * (int)n, (int)TH, D, s, e);
    }
    p.cu_groups = b->cu_groups, p.prefix_blocks = b->prefix_blocks, p.n_groups = b->n_groups;
    p.part_out = (float *)scratch, p.part_lse = p.part_out + 2 * TH * D;
    // phase 1: each group's rows against its shared prefix, as part 0
    pa_params p1 = p;
    if (set_tiles(fn, &p1, b->max_group_rows, b->n_groups, e)) return -1;
    p1.mode = PA_PREFIX, p1.part0 = 0;
    if (launch_attention_dt(dt, &p1, dim3((unsigned)(b->n_groups * p1.tiles), (unsigned)KV, 1), s, e)) return -1;
    // phase 2: each row against its own positions past the prefix, as part 1
    pa_params p2 = p;
    if (set_tiles(fn, &p2, b->max_q, b->n_seqs, e)) return -1;
    p2.mode = PA_SUFFIX, p2.part0 = 1;
    if (launch_attention_dt(dt, &p2, dim3((unsigned)(b->n_seqs * p2.tiles), (unsigned)KV, 1), s, e)) return -1;
    return launch_merge(dt, out, lse, p.part_out, p.part_lse, 2, (int)TH, D, s, e);
}
