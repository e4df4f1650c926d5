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
// One attention kernel serves every form. A thread block owns one kv head g, a set of
// query rows that read the same block table (a tile of one sequence's new rows, or in
// cascade phase 1 a tile of a group's rows), all H / KV query heads of g for each row
// ("slots", taken 8 at a time), and one key range per row: [lo, hi_r). Its 8 warps split
// the keys by position - warp w takes the 32-key tiles w, w + 8, .. of the range - and
// each scores its tiles against all 8 slots of a pass with one key per lane (a whole fp32
// dot product in a fixed order, the K row read once for the 8), folds them into an online
// softmax per slot and adds p_j v_j; the 8 warps' partials are then merged in warp order.
// A slot's arithmetic depends on its query and key range alone, not on which other
// slots, rows or sequences share the launch: the results are batch-invariant and repeat
// bit for bit. Forms differ only in the key ranges and in where results go:
//   plain     [0, pos + 1), written as out (dtype) and lse;
//   split     [c * split_len, min((c + 1) * split_len, pos + 1)) for chunk c = blockIdx.z,
//             a partial (fp32 out, lse) per chunk, merged in chunk order;
//   cascade   phase 1 [0, prefix_len) for a group's rows through its first table,
//             phase 2 [prefix_len, pos + 1), each a partial, merged.
// Partials live in a scratch [parts][T * H][D] floats followed by [parts][T * H] lse; an
// empty range writes lse = -inf, which the merge skips (attention_merge's rule), so
// unused chunks of short rows cost nothing and change nothing.
//
// Speed (the design's aim, not yet measured on a GPU). Decode should be bound by reading
// K/V: each row is read from device memory once per (kv head, pass), straight into
// registers, with no barrier between tiles (a warp's tiles are its own). The previous design gathered one 32-key tile at a time into shared
// memory for the whole block and scored it one slot a warp; on an H100 its split-KV
// decode took 29.7 us a layer at batch 64 for 17 MB of K/V (5.7 us at copy bandwidth).
// bench/bench_paged_attention and bench/bench_engine_gpu measure it.
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
#define PA_PASS 8                         // query slots a pass: (row, head) pairs scored together
#define PA_SLOTS 64                       // query heads a kv head at most (H / KV)
#define PA_MAX_D 256
#define PA_MAX_BLOCK_LOG2 20
#define FULL_MASK 0xffffffffu

enum pa_mode { PA_PLAIN = 0, PA_SPLIT = 1, PA_PREFIX = 2, PA_SUFFIX = 3 };

// Everything a launch of paged_attention_kernel reads (by value, in constant memory).
struct pa_params {
    const void *q, *k_cache, *v_cache;
    void *out;                 // final results (part_out == NULL): out [T, H, D] dtype, lse [T, H]
    float *lse;
    float *part_out, *part_lse; // partial results: part (part0 + blockIdx.z) of [parts][T * H][D], [parts][T * H]
    const int *block_tables, *cu_q, *seq_lens, *cu_groups, *prefix_blocks;
    int mode, n_seqs, n_groups, max_blocks, T, n_blocks, bs_log2, H, KV, D, group;
    int qt;        // query rows per thread block (qt * group <= PA_PASS, or 1)
    int tiles;     // row tiles per sequence (or group): blockIdx.x = unit * tiles + tile
    int split_len; // PA_SPLIT: positions per chunk
    int part0;
    int vec;       // cache rows load 16 bytes at a time (D * sizeof(T) % 16 == 0, aligned pools)
    float scale;
};

// ---- attention --------------------------------------------------------------------------
//
// A slot's arithmetic is spelled with explicit roundings (__fmaf_rn, __fmul_rn, __fadd_rn)
// so that nothing the compiler does with the code around it can contract or reorder it.
//
// Grid (unit * tiles + tile, kv head g, chunk); unit is a sequence (plain, split, cascade
// phase 2) or a group (phase 1). The thread block's slots s = r * group + j (row r of the
// tile, query head g * group + j) go in passes of PA_PASS. In a pass, warp w takes the
// key tiles [lo + 32 (w + 8 i), +32) for i = 0, 1, .. below the pass's last key, one key a
// lane: the lane reads its key's K row straight from the pool (16 bytes at a time where
// rows allow) and dots it with every slot's query (in shared memory, read by broadcast),
// so a K row is read once for up to 8 heads. Each slot then folds the tile's 32 scores
// into its online softmax (warp max, warp sum) and adds p_j v_j for the tile's keys in
// order, the warp reading key j's V row with each lane holding DL consecutive dimensions.
// After the pass's keys, warp i merges slot i's 8 warp partials in warp order. Which warp
// takes a key depends on its position alone, so a slot's result does not depend on the
// other slots, rows or sequences of the launch.
//
// Shared memory (floats): the pass's queries Q [PA_PASS][D]; per warp, its tile's
// probabilities P [32 keys][PA_PASS] and the keys' pool rows (ints) [32]; the warps'
// partials M [PA_WARPS][PA_PASS][D + 2] (o, then m and l).
template <typename T, int N> struct alignas(N * sizeof(T) < 16 ? N * sizeof(T) : 16) vecn {
    T v[N];
};

// Elements d0 .. d0 + N - 1 (those below D) of a row as fp32: one vector load when the
// row's vectors are 16-byte aligned (vec) and all N lie in the row, else one at a time.
template <typename T, int N>
__device__ __forceinline__ void load_part(const T *row, int d0, int D, bool vec, float *v) {
    if (vec && d0 + N <= D) {
        const vecn<T, N> x = *reinterpret_cast<const vecn<T, N> *>(row + d0);
#pragma unroll
        for (int c = 0; c < N; c++) v[c] = load_f(&x.v[c]);
    } else {
#pragma unroll
        for (int c = 0; c < N; c++) v[c] = d0 + c < D ? load_f(row + d0 + c) : 0.0f;
    }
}

static size_t attention_smem_floats(int D) {
    return (size_t)PA_PASS * D + (size_t)PA_WARPS * PA_KT * PA_PASS + (size_t)PA_WARPS * PA_KT +
           (size_t)PA_WARPS * PA_PASS * (D + 2);
}

template <typename T, int DL>
__global__ void __launch_bounds__(PA_THREADS, 2) paged_attention_kernel(const pa_params p) {
    extern __shared__ __align__(16) float smem[]; // 16-byte reads of Q and P below
    const int D = p.D, group = p.group, g = blockIdx.y;
    const int unit = blockIdx.x / p.tiles, tile = blockIdx.x % p.tiles;
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int bs_mask = (1 << p.bs_log2) - 1;
    const long long table_positions = (long long)p.max_blocks << p.bs_log2;

    // Which rows [r_lo, r_hi) the unit has, and each row's keys [lo, hi): row r (global)
    // of a causal unit sees positions up to pos0 + (r - r_lo); a phase-1 row sees
    // [0, fixed_hi); the split caps every row at its chunk's end.
    int r_lo, r_hi, pos0 = 0, lo = 0, fixed_hi = 0, lo_end = INT_MAX;
    const bool causal = p.mode != PA_PREFIX;
    const int *table;
    bool bad = false;
    if (p.mode == PA_PREFIX) {
        const int s0 = p.cu_groups[unit], s1 = p.cu_groups[unit + 1];
        if (s0 < 0 || s1 <= s0 || s1 > p.n_seqs) return; // an empty group, or none this block can name
        r_lo = p.cu_q[s0], r_hi = p.cu_q[s1];
        if (r_lo < 0 || r_hi < r_lo || r_hi > p.T) return;
        const int pb = p.prefix_blocks[unit];
        bad = pb < 0 || pb > p.max_blocks;
        fixed_hi = bad ? 0 : pb << p.bs_log2;
        table = p.block_tables + (size_t)s0 * p.max_blocks;
    } else {
        r_lo = p.cu_q[unit], r_hi = p.cu_q[unit + 1];
        if (r_lo < 0 || r_hi < r_lo || r_hi > p.T) return;
        const int len = p.seq_lens[unit];
        pos0 = len - (r_hi - r_lo);
        bad = pos0 < 0 || len > table_positions;
        table = p.block_tables + (size_t)unit * p.max_blocks;
        if (p.mode == PA_SPLIT) {
            lo = (int)blockIdx.z * p.split_len, lo_end = lo + p.split_len; // the launcher keeps these in int
            bad = bad || len > (long long)gridDim.z * p.split_len;
        } else if (p.mode == PA_SUFFIX) {
            // the group holding this sequence: the last gi with cu_groups[gi] <= unit
            int a = 0, b = p.n_groups; // cu_groups is nondecreasing; search [a, b)
            if (unit < p.cu_groups[0] || unit >= p.cu_groups[p.n_groups]) {
                bad = true;
            } else {
                while (b - a > 1) {
                    const int mid = (a + b) / 2;
                    if (p.cu_groups[mid] <= unit) a = mid;
                    else b = mid;
                }
                const int pb = p.prefix_blocks[a];
                if (pb < 0 || pb > p.max_blocks) bad = true;
                else lo = pb << p.bs_log2;
                bad = bad || pos0 < lo; // every query lies past the shared prefix
            }
        }
    }
    bad = bad || r_hi - r_lo > p.tiles * p.qt; // rows no tile would cover
    const int row0 = r_lo + tile * p.qt;
    if (row0 >= r_hi) return; // the whole block leaves together
    const int n_rows = min(p.qt, r_hi - row0), n_slots = n_rows * group;
    // rows of a tile are consecutive positions, so the last row reaches furthest
    auto row_hi = [&](int r) { return min(causal ? pos0 + (row0 - r_lo) + r + 1 : fixed_hi, lo_end); };
    const size_t TH = (size_t)p.T * p.H;
    const int part = p.part0 + (int)blockIdx.z;
    auto out_row = [&](int slot) { // the (row, head) pair of a slot
        const int r = slot / group, j = slot - r * group;
        return (size_t)(row0 + r) * p.H + g * group + j;
    };

    if (!bad && row_hi(n_rows - 1) <= lo) { // no key for any row (a chunk past the sequence)
        // lse = -inf alone marks an empty part: the merge skips it without reading its values
        for (int slot = tid; slot < n_slots; slot += PA_THREADS) {
            if (p.part_out) p.part_lse[(size_t)part * TH + out_row(slot)] = -INFINITY;
            else p.lse[out_row(slot)] = -INFINITY; // not reached: a plain row sees its own position
        }
        return;
    }

    float *Qs = smem, *Ps = Qs + PA_PASS * D;
    int *Js = reinterpret_cast<int *>(Ps + PA_WARPS * PA_KT * PA_PASS);
    float *Ms = reinterpret_cast<float *>(Js + PA_WARPS * PA_KT);
    float *ps = Ps + warp * PA_KT * PA_PASS; // this warp's P [32][PA_PASS]
    int *js = Js + warp * PA_KT;
    const T *q = static_cast<const T *>(p.q);
    const T *kc = static_cast<const T *>(p.k_cache), *vc = static_cast<const T *>(p.v_cache);
    const bool vec = p.vec;
    constexpr int VEC = 16 / sizeof(T);
    const int d_lane = lane * DL; // this lane's dimensions: d_lane .. d_lane + DL - 1

    for (int s0 = 0; s0 < n_slots && !bad; s0 += PA_PASS) {
        const int ns = min(PA_PASS, n_slots - s0);
        const int kmax = row_hi((s0 + ns - 1) / group); // the pass's last slot reaches furthest
        float m[PA_PASS], l[PA_PASS], o[PA_PASS][DL];
        int hi[PA_PASS];
#pragma unroll
        for (int i = 0; i < PA_PASS; i++) {
            hi[i] = i < ns ? row_hi((s0 + i) / group) : lo;
            m[i] = -INFINITY, l[i] = 0.0f;
#pragma unroll
            for (int c = 0; c < DL; c++) o[i][c] = 0.0f;
        }
        __syncthreads(); // the previous pass is done with Q and M
        for (int idx = tid; idx < PA_PASS * D; idx += PA_THREADS) {
            const int i = idx / D, d = idx - i * D; // zeros for missing slots: never used, but defined
            Qs[idx] = i < ns ? load_f(q + out_row(s0 + i) * D + d) : 0.0f;
        }
        __syncthreads();

        int block_bad = 0;
        for (int k0 = lo + warp * PA_KT; k0 < kmax; k0 += PA_WARPS * PA_KT) {
            // this lane's key: its slot in the pool (n_blocks * block_size fits an int), or -1 past kmax
            const int pos = k0 + lane;
            int krow = -1;
            if (pos < kmax) {
                const int blk = table[pos >> p.bs_log2];
                if (blk >= 0 && blk < p.n_blocks) krow = (blk << p.bs_log2) + (pos & bs_mask);
                else block_bad = 1;
            }
            // its scores against the pass's slots, each a dot product in the order d = 0, 1, ..
            float dot[PA_PASS];
#pragma unroll
            for (int i = 0; i < PA_PASS; i++) dot[i] = 0.0f;
            if (krow >= 0) {
                const T *kr = kc + ((size_t)krow * p.KV + g) * D;
                if (vec) {
#pragma unroll
                    for (int d0 = 0; d0 < 32 * DL; d0 += VEC) {
                        if (d0 >= D) break;
                        float kf[VEC];
                        load_w<T, VEC>(kr + d0, kf);
#pragma unroll
                        for (int x = 0; x < VEC; x += 4) {
#pragma unroll
                            for (int i = 0; i < PA_PASS; i++) {
                                const float4 qv = *reinterpret_cast<const float4 *>(Qs + i * D + d0 + x);
                                dot[i] = __fmaf_rn(qv.x, kf[x], dot[i]);
                                dot[i] = __fmaf_rn(qv.y, kf[x + 1], dot[i]);
                                dot[i] = __fmaf_rn(qv.z, kf[x + 2], dot[i]);
                                dot[i] = __fmaf_rn(qv.w, kf[x + 3], dot[i]);
                            }
                        }
                    }
                } else {
                    for (int d = 0; d < D; d++) {
                        const float kf = load_f(kr + d);
#pragma unroll
                        for (int i = 0; i < PA_PASS; i++) dot[i] = __fmaf_rn(Qs[i * D + d], kf, dot[i]);
                    }
                }
            }
            // the online softmax of each slot that sees this tile (uniform across the warp)
            float pr[PA_PASS];
#pragma unroll
            for (int i = 0; i < PA_PASS; i++) {
                pr[i] = 0.0f;
                if (i >= ns || k0 >= hi[i]) continue;
                const bool valid = krow >= 0 && pos < hi[i];
                const float s = valid ? __fmul_rn(p.scale, dot[i]) : -INFINITY;
                const float m_new = fmaxf(m[i], warp_max(s)); // finite unless lane 0's block is bad
                pr[i] = valid ? expf(s - m_new) : 0.0f;
                const float corr = expf(m[i] - m_new); // 0 on the slot's first tile (m = -inf)
                l[i] = __fmaf_rn(l[i], corr, warp_sum(pr[i]));
#pragma unroll
                for (int c = 0; c < DL; c++) o[i][c] = __fmul_rn(o[i][c], corr);
                m[i] = m_new;
            }
#pragma unroll
            for (int i = 0; i < PA_PASS; i += 4)
                *reinterpret_cast<float4 *>(ps + lane * PA_PASS + i) =
                    make_float4(pr[i], pr[i + 1], pr[i + 2], pr[i + 3]);
            js[lane] = krow;
            __syncwarp();
            // p_j v_j for each slot's keys of the tile, in key order
            const int nk = min(PA_KT, kmax - k0);
            for (int j = 0; j < nk; j++) {
                const int vrow = js[j];
                if (vrow < 0) continue; // a bad block: the rows become NaN below
                float v[DL];
                load_part<T, DL>(vc + ((size_t)vrow * p.KV + g) * D, d_lane, D, vec, v);
                const float4 pa = *reinterpret_cast<const float4 *>(ps + j * PA_PASS);
                const float4 pb = *reinterpret_cast<const float4 *>(ps + j * PA_PASS + 4);
                const float pj[8] = {pa.x, pa.y, pa.z, pa.w, pb.x, pb.y, pb.z, pb.w};
#pragma unroll
                for (int i = 0; i < PA_PASS; i++) {
                    if (i >= ns || k0 + j >= hi[i]) continue; // keys the slot sees, and no others
#pragma unroll
                    for (int c = 0; c < DL; c++) o[i][c] = __fmaf_rn(pj[i], v[c], o[i][c]);
                }
            }
            __syncwarp(); // P and the rows are read before the next tile writes them
        }
        if (__syncthreads_or(block_bad)) { // the same answer in every thread
            bad = true;
            break;
        }
        // the warps' partials, then warp i merges slot i's in warp order
#pragma unroll
        for (int i = 0; i < PA_PASS; i++) {
            if (i >= ns) continue;
            float *mw = Ms + (size_t)(warp * PA_PASS + i) * (D + 2);
#pragma unroll
            for (int c = 0; c < DL; c++)
                if (d_lane + c < D) mw[d_lane + c] = o[i][c];
            if (lane == 0) mw[D] = m[i], mw[D + 1] = l[i];
        }
        __syncthreads();
        if (warp < ns) {
            const int i = warp;
            float mx = -INFINITY;
            for (int w = 0; w < PA_WARPS; w++) mx = fmaxf(mx, Ms[(size_t)(w * PA_PASS + i) * (D + 2) + D]);
            float lsum = 0.0f, acc[DL];
#pragma unroll
            for (int c = 0; c < DL; c++) acc[c] = 0.0f;
            if (mx != -INFINITY) {
                for (int w = 0; w < PA_WARPS; w++) {
                    const float *mw = Ms + (size_t)(w * PA_PASS + i) * (D + 2);
                    if (mw[D] == -INFINITY) continue; // a warp with no key for the slot
                    const float f = expf(mw[D] - mx);
                    lsum = __fmaf_rn(mw[D + 1], f, lsum);
#pragma unroll
                    for (int c = 0; c < DL; c++)
                        if (d_lane + c < D) acc[c] = __fmaf_rn(mw[d_lane + c], f, acc[c]);
                }
            }
            const bool empty = mx == -INFINITY; // no key: o = 0, lse = -inf (a partial the merge skips)
            const float inv = empty ? 0.0f : 1.0f / lsum;
            const float row_lse = empty ? -INFINITY : __fadd_rn(mx, logf(lsum));
            const size_t row = out_row(s0 + i);
            if (p.part_out) {
                float *dst = p.part_out + ((size_t)part * TH + row) * D;
#pragma unroll
                for (int c = 0; c < DL; c++)
                    if (d_lane + c < D) dst[d_lane + c] = acc[c] * inv;
                if (lane == 0) p.part_lse[(size_t)part * TH + row] = row_lse;
            } else {
                T *dst = static_cast<T *>(p.out) + row * D;
#pragma unroll
                for (int c = 0; c < DL; c++)
                    if (d_lane + c < D) store_f(dst + d_lane + c, acc[c] * inv);
                if (lane == 0) p.lse[row] = row_lse;
            }
        }
    }

    if (bad) { // NaN into every row of the tile (the last tile also takes rows no tile covers)
        const int rows_end = tile == p.tiles - 1 ? r_hi : row0 + n_rows;
        for (int idx = tid; idx < (rows_end - row0) * group * D; idx += PA_THREADS) {
            const int slot = idx / D, d = idx - slot * D;
            const size_t row = out_row(slot);
            if (p.part_out) {
                p.part_out[((size_t)part * TH + row) * D + d] = NAN;
                if (d == 0) p.part_lse[(size_t)part * TH + row] = NAN;
            } else {
                store_f(static_cast<T *>(p.out) + row * D + d, NAN);
                if (d == 0) p.lse[row] = NAN;
            }
        }
    }
}

// ---- merge ------------------------------------------------------------------------------
//
// out, lse of each of `rows` (row, head) pairs from n_parts partials merged in part order,
// attention_merge's arithmetic step for step: starting from (0, -inf), a part with
// lse = -inf is skipped (its values are not read: they may never have been written), the
// first other one is taken as it is, each later one merged in double with
// m = max(la, lb), a = exp(la - m), b = exp(lb - m), rounding o and lse to fp32 after
// every step. One warp per row, the head dimension across the lanes (DL values a lane).
// The parts come in batches of PM whose loads all go out before the batch is merged, so
// a part's loads do not wait on the previous part's arithmetic.
#define PM 8
template <typename T, int DL>
__global__ void __launch_bounds__(256) paged_merge_kernel(T *out, float *lse, const float *part_out,
                                                          const float *part_lse, int n_parts, int rows, int D) {
    const int row = blockIdx.x * 8 + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows) return;
    float o[DL];
#pragma unroll
    for (int c = 0; c < DL; c++) o[c] = 0.0f;
    float acc_lse = -INFINITY;
    for (int p0 = 0; p0 < n_parts; p0 += PM) {
        float lb_f[PM], ob[PM][DL];
#pragma unroll
        for (int k = 0; k < PM; k++) lb_f[k] = p0 + k < n_parts ? part_lse[(size_t)(p0 + k) * rows + row] : -INFINITY;
#pragma unroll
        for (int k = 0; k < PM; k++) {
            const float *src = part_out + ((size_t)(p0 + k) * rows + row) * D;
#pragma unroll
            for (int c = 0; c < DL; c++) {
                const int d = lane + 32 * c;
                ob[k][c] = lb_f[k] != -INFINITY && d < D ? src[d] : 0.0f;
            }
        }
#pragma unroll
        for (int k = 0; k < PM; k++) {
            if (lb_f[k] == -INFINITY) continue;
            if (acc_lse == -INFINITY) {
#pragma unroll
                for (int c = 0; c < DL; c++) o[c] = ob[k][c];
                acc_lse = lb_f[k];
                continue;
            }
            const double la = acc_lse, lb = lb_f[k], mx = la > lb ? la : lb, a = exp(la - mx), b = exp(lb - mx);
            const double inv = 1.0 / (a + b);
#pragma unroll
            for (int c = 0; c < DL; c++) o[c] = (float)((a * o[c] + b * ob[k][c]) * inv);
            acc_lse = (float)(mx + log(a + b));
        }
    }
#pragma unroll
    for (int c = 0; c < DL; c++) {
        const int d = lane + 32 * c;
        if (d < D) store_f(out + (size_t)row * D + d, o[c]);
    }
    if (lane == 0) lse[row] = acc_lse;
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

// Row tiles for units of up to max_rows rows: qt rows a block, as many as fill a pass
// (qt * group <= PA_PASS) and at least one, so a decode row's heads take one pass.
static int set_tiles(const char *fn, pa_params *p, int max_rows, long long units, rlvr_err *e) {
    const int fill = p->group < PA_PASS ? PA_PASS / p->group : 1;
    p->qt = fill < max_rows ? fill : max_rows;
    p->tiles = (max_rows + p->qt - 1) / p->qt;
    if (units * p->tiles > INT_MAX)
        return err_set(e, "%s: %lld units of %d row tiles is too large a grid", fn, units, p->tiles);
    return 0;
}

template <typename T> static int launch_attention(const pa_params *p, dim3 grid, cudaStream_t s, rlvr_err *e) {
    const size_t smem = attention_smem_floats(p->D) * sizeof(float);
#define PA_LAUNCH(DL)                                                                                \
    do {                                                                                             \
        CUDA_CHECK(cudaFuncSetAttribute(paged_attention_kernel<T, DL>,                               \
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),     \
                   e);                                                                               \
        paged_attention_kernel<T, DL><<<grid, PA_THREADS, smem, s>>>(*p);                            \
    } while (0)
    // DL >= ceil(D / 32) dimensions a lane; three instantiations a dtype keep the build
    // short (unused accumulators cost registers only).
    if (p->D <= 64) PA_LAUNCH(2);
    else if (p->D <= 128) PA_LAUNCH(4);
    else PA_LAUNCH(8);
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
#define PM_LAUNCH(DL)                                                                                      \
    do {                                                                                                   \
        if (dt == KERN_BF16)                                                                               \
            paged_merge_kernel<bf16, DL><<<blocks, 256, 0, s>>>((bf16 *)out, lse, part_out, part_lse,       \
                                                                n_parts, rows, D);                         \
        else                                                                                               \
            paged_merge_kernel<float, DL><<<blocks, 256, 0, s>>>((float *)out, lse, part_out, part_lse,     \
                                                                 n_parts, rows, D);                        \
    } while (0)
    if (D <= 64) PM_LAUNCH(2);
    else if (D <= 128) PM_LAUNCH(4);
    else PM_LAUNCH(8);
#undef PM_LAUNCH
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

extern "C" int kern_paged_attention_tc_forward(void *out, float *lse, const void *q, const void *k_cache,
                                               const void *v_cache, const kern_paged_batch *b, int n_blocks,
                                               int block_size, int H, int KV, int D, void *stream, rlvr_err *e) {
    const char *fn = "paged_attention_tc_forward";
    pa_params p;
    if (check_attention(fn, KERN_BF16, out, lse, q, k_cache, v_cache, b, n_blocks, block_size, H, KV, D, &p, e))
        return -1;
    const void *ptrs[] = {out, q, k_cache, v_cache};
    if (H / KV > 16 || !attn_tc_supported(D, ptrs, 4))
        return err_set(e, "%s: needs H / KV <= 16 (got %d), D 64 or 128 (got %d) and 16-byte aligned tensors", fn,
                       H / KV, D);
    return attn_tc_paged_forward((bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k_cache, (const bf16 *)v_cache,
                                 b->block_tables, b->cu_q, b->seq_lens, b->n_seqs, b->max_blocks, b->T, b->max_q,
                                 n_blocks, p.bs_log2, H, KV, D, (cudaStream_t)stream, e);
}

// Chunks of split_len covering max_seq_len positions; 0 when the split is unusable.
static long long split_chunks(int max_seq_len, int split_len) {
    if (max_seq_len <= 0 || split_len <= 0) return 0;
    const long long n = ((long long)max_seq_len + split_len - 1) / split_len;
    return n <= 65535 && n * split_len <= INT_MAX ? n : 0;
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
    p.mode = PA_SPLIT, p.split_len = split_len;
    p.part_out = (float *)scratch, p.part_lse = p.part_out + (size_t)n_chunks * TH * D;
    cudaStream_t s = (cudaStream_t)stream;
    const dim3 grid((unsigned)(b->n_seqs * p.tiles), (unsigned)KV, (unsigned)n_chunks);
    if (launch_attention_dt(dt, &p, grid, s, e)) return -1;
    return launch_merge(dt, out, lse, p.part_out, p.part_lse, (int)n_chunks, (int)TH, D, s, e);
}

extern "C" size_t kern_cascade_attention_scratch(int T, int H, int D) {
    if (T <= 0 || H <= 0 || D <= 0) return 0;
    return parts_bytes(2, T, H, D);
}

extern "C" int kern_cascade_attention_forward(kern_dtype dt, void *out, float *lse, const void *q,
                                              const void *k_cache, const void *v_cache, const kern_paged_batch *b,
                                              int n_blocks, int block_size, int H, int KV, int D, void *scratch,
                                              void *stream, rlvr_err *e) {
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
    p.cu_groups = b->cu_groups, p.prefix_blocks = b->prefix_blocks, p.n_groups = b->n_groups;
    p.part_out = (float *)scratch, p.part_lse = p.part_out + 2 * TH * D;
    cudaStream_t s = (cudaStream_t)stream;
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
