// attention_tc.cu - the tensor-core path of attention.cu: bf16 with head size 64 or 128,
// the case every model rlvr trains hits. FlashAttention-2's forward (Dao, 2023) and a
// backward without atomics, written with mma.sync (m16n8k16, bf16 in, fp32 accumulate),
// ldmatrix and cp.async, so that scores never leave registers.
//
// Each warp owns 16 rows of its block's tile. The accumulator of one m16n8k16 product
// holds, in lane (group g = lane / 4, t = lane % 4), rows g and g + 8 at columns 2t and
// 2t + 1 of an 8-column slice; two neighbouring slices are exactly the A operand of the
// next product. So S = Q K^T is folded into the online softmax where it lands, rounded to
// bf16 and multiplied by V without a trip through shared memory (FlashAttention-2's
// arrangement). Row reductions take two shuffles: a row lives in the 4 lanes of a group.
// Exponentials are base 2 on scores pre-multiplied by scale * log2(e); lse is returned in
// natural-log units like the CPU twin's.
//
// Tiles of K and V (forward, dQ) or of Q and dO (dK/dV) are double-buffered: the next
// tile is copied with cp.async while the current one is multiplied. Shared rows are
// padded by 16 bytes so the 8 rows an ldmatrix reads fall in different banks.
//
// Backward, deterministic: one kernel makes dQ per query tile (FlashAttention-2 adds
// into dQ atomically instead), one makes dK and dV per key tile and query head. With
// grouped-query heads each query head's dK/dV goes to an fp32 scratch and a third kernel
// adds the group's heads in order; every output element has one writer, so results
// repeat bit for bit.
#include <climits>
#include <stdint.h>

#include "attention_tc.cuh"
#include "cuda_common.cuh"
#include "mma.cuh"

#define TC_WARPS 4
#define TC_THREADS (TC_WARPS * 32)
#define TC_BM 64   // rows per block: 16 per warp (queries in forward/dQ, keys in dK/dV)
#define TC_PAD 8   // bf16 elements of padding per shared row
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

// acc[r][N/8][4] += A_r (rows ra + 16 r .. ra + 16 r + 15 of `a`, D wide) times rows
// n0..n0+N-1 of `b` transposed, for the warp's row groups r = r_first .. RW-1: the S = Q K^T
// shape. Each B fragment is loaded once for all the groups (with RW = 2 a warp reads K
// from shared memory half as often per product as with 16 rows).
template <int D, int N, int LD, int RW>
__device__ __forceinline__ void mma_abt_rw(float acc[][N / 8][4], const bf16 *a, int ra, const bf16 *b, int n0,
                                           int r_first) {
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        uint32_t af[RW][4];
#pragma unroll
        for (int r = 0; r < RW; r++)
            if (r >= r_first) load_a<LD>(af[r], a, ra + 16 * r, kk * 16);
#pragma unroll
        for (int np = 0; np < N / 16; np++) {
            uint32_t bf[4];
            load_b_rows<LD>(bf, b, n0 + np * 16, kk * 16);
#pragma unroll
            for (int r = 0; r < RW; r++)
                if (r >= r_first) {
                    mma_bf16(acc[r][2 * np], af[r], bf[0], bf[1]);
                    mma_bf16(acc[r][2 * np + 1], af[r], bf[2], bf[3]);
                }
        }
    }
}

// acc[r][D/8][4] += P_r (accumulators p[r][K/8][4], rounded to bf16) times rows 0..K-1 of
// `b` (D wide), for r = r_first .. RW-1: the O += P V shape, B fragments shared likewise.
template <int D, int K, int LD, int RW>
__device__ __forceinline__ void mma_pb_rw(float acc[][D / 8][4], float p[][K / 8][4], const bf16 *b, int r_first) {
#pragma unroll
    for (int kk = 0; kk < K / 16; kk++) {
        uint32_t af[RW][4];
#pragma unroll
        for (int r = 0; r < RW; r++)
            if (r >= r_first) acc_to_a(af[r], p[r][2 * kk], p[r][2 * kk + 1]);
#pragma unroll
        for (int dn = 0; dn < D / 16; dn++) {
            uint32_t bf[4];
            load_b_cols<LD>(bf, b, kk * 16, dn * 16);
#pragma unroll
            for (int r = 0; r < RW; r++)
                if (r >= r_first) {
                    mma_bf16(acc[r][2 * dn], af[r], bf[0], bf[1]);
                    mma_bf16(acc[r][2 * dn + 1], af[r], bf[2], bf[3]);
                }
        }
    }
}

// The one-group forms (16 rows per warp), used by the backward kernels.
template <int D, int N, int LD>
__device__ __forceinline__ void mma_abt(float acc[][4], const bf16 *a, int ra, const bf16 *b, int n0) {
    mma_abt_rw<D, N, LD, 1>((float(*)[N / 8][4])acc, a, ra, b, n0, 0);
}
template <int D, int K, int LD>
__device__ __forceinline__ void mma_pb(float acc[][4], float p[][4], const bf16 *b) {
    mma_pb_rw<D, K, LD, 1>((float(*)[D / 8][4])acc, (float(*)[K / 8][4])p, b, 0);
}

__device__ __forceinline__ float quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// Copies rows row0..row0+N-1 of head `head` of x [T, heads, D] into dst [N][D + TC_PAD]
// with cp.async (zeros for rows at or past len). All threads of the block take part.
template <int N, int D>
__device__ __forceinline__ void load_rows(bf16 *dst, const bf16 *x, int start, int row0, int len, int heads,
                                          int head) {
    constexpr int CH = D / 8; // 16-byte chunks per row
    for (int i = threadIdx.x; i < N * CH; i += TC_THREADS) {
        const int r = i / CH, c = i % CH, row = row0 + r;
        const bool ok = row < len;
        cp_async16(dst + r * (D + TC_PAD) + c * 8, x + ((size_t)(start + (ok ? row : 0)) * heads + head) * D + c * 8,
                   ok);
    }
}

// Starts copying the next tiles of K and V (rows row_next.., when `more`) into the buffers
// not in use, then waits until the current ones (buffer `buf`) have arrived. The caller
// syncs the block before reading them.
template <int N, int D>
__device__ __forceinline__ void next_kv_tile(bf16 *Ks, bf16 *Vs, const bf16 *k, const bf16 *v, int start, int row_next,
                                             bool more, int len, int heads, int head, int buf) {
    if (more) {
        load_rows<N, D>(Ks + (buf ^ 1) * N * (D + TC_PAD), k, start, row_next, len, heads, head);
        load_rows<N, D>(Vs + (buf ^ 1) * N * (D + TC_PAD), v, start, row_next, len, heads, head);
        cp_async_commit();
        cp_async_wait<1>();
    } else {
        cp_async_wait<0>();
    }
}

// ---- one warp's rows through a key tile: what the forward and the paged forward share -----------
//
// The training forward (attn_tc_forward_kernel) and the rollout engine's paged forward
// (attn_tc_paged_kernel) call these same functions on the same fragments, so a query row
// sees the same products, exponentials and roundings in the same order in both: its output
// and lse have the same bits when its q and keys do. Masked keys and whole tiles past a
// row's position change nothing (a max with -inf, a factor exp2(0) = 1, products with P = 0).

// Every operation that could be fused or reordered is spelled as an intrinsic that rounds
// once (__fmul_rn, __fadd_rn, __fmaf_rn ...): nvcc contracts a * b + c into an FMA where
// it sees fit, which could differ between the two kernels that inline these functions.

// The online-softmax update of 16 rows by one tile of keys k0.. (FlashAttention-2): s
// holds the tile's scores Q K^T for the lane's rows a (position pos_a) and b (pos_b); they
// are scaled (base 2), keys after a row's position masked when `diag` (some key of the tile
// may lie past some row), and turned into P = exp2(s - new max); the running max m, the
// lane's share l of each row sum and the accumulators o are rescaled to the new max.
template <int NS, int NO>
__device__ __forceinline__ void tc_softmax_tile(float s[NS][4], float o[NO][4], float m[2], float l[2], int k0,
                                                int pos_a, int pos_b, bool diag, float scale_log2) {
    const int t = threadIdx.x % 4;
    float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
    for (int n = 0; n < NS; n++)
#pragma unroll
        for (int c = 0; c < 2; c++) {
            const int key = k0 + n * 8 + 2 * t + c;
            s[n][c] = diag && key > pos_a ? -INFINITY : __fmul_rn(s[n][c], scale_log2);
            s[n][2 + c] = diag && key > pos_b ? -INFINITY : __fmul_rn(s[n][2 + c], scale_log2);
            mx_a = fmaxf(mx_a, s[n][c]);
            mx_b = fmaxf(mx_b, s[n][2 + c]);
        }
    const float mn_a = fmaxf(m[0], quad_max(mx_a)), mn_b = fmaxf(m[1], quad_max(mx_b));
    const float corr_a = exp2f(__fsub_rn(m[0], mn_a)), corr_b = exp2f(__fsub_rn(m[1], mn_b)); // 0 on the first tile
    m[0] = mn_a, m[1] = mn_b;
    float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
    for (int n = 0; n < NS; n++) {
        s[n][0] = exp2f(__fsub_rn(s[n][0], mn_a)), s[n][1] = exp2f(__fsub_rn(s[n][1], mn_a));
        s[n][2] = exp2f(__fsub_rn(s[n][2], mn_b)), s[n][3] = exp2f(__fsub_rn(s[n][3], mn_b));
        sum_a = __fadd_rn(sum_a, __fadd_rn(s[n][0], s[n][1]));
        sum_b = __fadd_rn(sum_b, __fadd_rn(s[n][2], s[n][3]));
    }
    l[0] = __fmaf_rn(l[0], corr_a, sum_a); // the quad adds its lanes' shares at the end
    l[1] = __fmaf_rn(l[1], corr_b, sum_b);
#pragma unroll
    for (int n = 0; n < NO; n++) {
        o[n][0] = __fmul_rn(o[n][0], corr_a), o[n][1] = __fmul_rn(o[n][1], corr_a);
        o[n][2] = __fmul_rn(o[n][2], corr_b), o[n][3] = __fmul_rn(o[n][3], corr_b);
    }
}

// Row `half` (0: the lane's row a, 1: row b) done: the quad adds its lanes' shares of the
// row sum (every lane takes part), then, when dst is not NULL, dst[0..D) = o / sum in bf16
// and *lse = the row's log-sum-exp in natural-log units (lane t = 0).
template <int NO>
__device__ __forceinline__ void tc_store_row(const float o[NO][4], float m, float l, int half, bf16 *dst, float *lse) {
    const int t = threadIdx.x % 4;
    const float sum = quad_sum(l), inv = __fdiv_rn(1.0f, sum);
    if (!dst) return;
#pragma unroll
    for (int n = 0; n < NO; n++)
        *(uint32_t *)(dst + n * 8 + 2 * t) =
            pack_bf16(__fmul_rn(o[n][2 * half], inv), __fmul_rn(o[n][2 * half + 1], inv));
    if (t == 0) *lse = __fmul_rn(__fadd_rn(m, log2f(sum)), LN2);
}

// ---- forward --------------------------------------------------------------------------------
//
// Grid (query tile, head, sequence), the last query tiles (the most keys) first. Each warp
// owns RW groups of 16 query rows (BM = 64 RW rows per block). Shared: Q [BM][D+8], K and
// V [2][BC][D+8].
template <int D, int BC, int RW>
__global__ void __launch_bounds__(TC_THREADS)
    attn_tc_forward_kernel(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, const int *cu_seqlens,
                           int H, int KV, float scale_log2) {
    constexpr int LD = D + TC_PAD, NS = BC / 8, NO = D / 8, BM = TC_WARPS * 16 * RW;
    extern __shared__ __align__(16) unsigned char smem_tc[];
    bf16 *Qs = (bf16 *)smem_tc, *Ks = Qs + BM * LD, *Vs = Ks + 2 * BC * LD;
    const int h = blockIdx.y, seq = blockIdx.z, g = h / (H / KV);
    const int start = cu_seqlens[seq], len = cu_seqlens[seq + 1] - start;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BM;
    if (q0 >= len) return; // the whole block leaves together
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wr = q0 + warp * 16 * RW;                     // the warp's first row; group r starts at wr + 16 r
    const int n_tiles = (min(len, q0 + BM) + BC - 1) / BC; // keys the tile's rows see

    load_rows<BM, D>(Qs, q, start, q0, len, H, h);
    load_rows<BC, D>(Ks, k, start, 0, len, KV, g);
    load_rows<BC, D>(Vs, v, start, 0, len, KV, g);
    cp_async_commit();

    // per group r: accumulators, and for the lane's rows a (wr + 16 r + lane / 4) and b (+ 8)
    // the running max and this lane's share of the row sum
    float o[RW][NO][4], m[RW][2], l[RW][2];
#pragma unroll
    for (int r = 0; r < RW; r++) {
        m[r][0] = m[r][1] = -INFINITY, l[r][0] = l[r][1] = 0.0f;
#pragma unroll
        for (int n = 0; n < NO; n++) o[r][n][0] = o[r][n][1] = o[r][n][2] = o[r][n][3] = 0.0f;
    }
    for (int j = 0; j < n_tiles; j++) {
        const int k0 = j * BC, buf = j & 1;
        next_kv_tile<BC, D>(Ks, Vs, k, v, start, k0 + BC, j + 1 < n_tiles, len, KV, g, buf);
        __syncthreads();
        // Groups whose rows all come before key k0 skip the tile (warp-uniform: a prefix of
        // the groups). Tiles are multiples of 16 keys, so a group that sees key k0 sees it
        // from every row: each row's running max is finite after its first tile.
        int r_first = RW;
#pragma unroll
        for (int r = RW - 1; r >= 0; r--)
            if (k0 <= wr + 16 * r + 15) r_first = r;
        if (r_first < RW) {
            const bf16 *Kt = Ks + buf * BC * LD, *Vt = Vs + buf * BC * LD;
            float s[RW][NS][4];
#pragma unroll
            for (int r = 0; r < RW; r++)
#pragma unroll
                for (int n = 0; n < NS; n++) s[r][n][0] = s[r][n][1] = s[r][n][2] = s[r][n][3] = 0.0f;
            mma_abt_rw<D, BC, LD, RW>(s, Qs, warp * 16 * RW, Kt, 0, r_first);
#pragma unroll
            for (int r = 0; r < RW; r++) {
                if (r < r_first) continue;
                const int gr = wr + 16 * r, row_a = gr + lane / 4;
                tc_softmax_tile<NS, NO>(s[r], o[r], m[r], l[r], k0, row_a, row_a + 8, k0 + BC - 1 > gr, scale_log2);
            }
            mma_pb_rw<D, BC, LD, RW>(o, s, Vt, r_first);
        }
        __syncthreads(); // this buffer is refilled by the next iteration's prefetch
    }
#pragma unroll
    for (int r = 0; r < RW; r++)
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int row = wr + 16 * r + lane / 4 + 8 * half;
            const size_t at = (size_t)(start + row) * H + h;
            tc_store_row<NO>(o[r], m[r][half], l[r][half], half, row < len ? out + at * D : NULL, lse + at);
        }
}

// ---- the rollout engine's forward over a paged KV cache ----------------------------------------
//
// Grid (chunk * row blocks + row block, kv head g, unit), TC_WARPS warps; a unit is a
// sequence, or in cascade phase 1 (TC_PAGED_PREFIX) a group of sequences sharing a prompt.
// A warp owns one 16-row tile: PT = 16 / group of the unit's new rows, each with the
// group's query heads (tile row j is new row j / group at head g * group + j % group; rows
// past PT * group pad it). Keys arrive through the block table in tiles of BC positions
// from the chunk's first key into double buffers; each warp runs tc_softmax_tile with its
// rows' positions on every tile up to its last row's position.
//   exact   (train.batch_invariant) keys [0, pos + 1) in the training forward's tiles, then
//           tc_store_row: a row's arithmetic is the training forward's at the same
//           position, whatever the batch. One warp holds a decode step's row of a kv head
//           (the others help load); no split along the keys, which would change the order.
//   split   keys [c * split_len, ..) of chunk c, a partial (fp32 out, lse) per chunk;
//   prefix  cascade phase 1: every row of a group against [0, prefix) - the prompt's K/V
//           read once for the whole group - in chunks;
//   suffix  cascade phase 2: each row against [prefix, pos + 1), in chunks.
// The partial forms mask keys past the chunk and write an empty partial (lse = -inf
// alone: the merge skips it) for a row that sees no key of its chunk; a block whose chunk
// lies past its unit's keys writes only those and leaves. A unit whose indices
// are inconsistent (seq_lens past its table or below its new rows, a block id outside the
// pool, more rows than the grid covers) gets NaN rows.
template <int D, int BC>
__device__ __forceinline__ bool load_paged_rows(bf16 *dst, const bf16 *cache, const int *table, int k0, int keys,
                                                int n_blocks, int bs_log2, int KV, int g) {
    constexpr int CH = D / 8;
    bool bad = false;
    for (int i = threadIdx.x; i < BC * CH; i += TC_THREADS) {
        const int r = i / CH, c = i % CH, pos = k0 + r;
        const int blk = pos < keys ? table[pos >> bs_log2] : 0;
        const bool ok = pos < keys && blk >= 0 && blk < n_blocks;
        bad |= pos < keys && !ok;
        const size_t slot = ((size_t)blk << bs_log2) | (size_t)(pos & ((1 << bs_log2) - 1));
        cp_async16(dst + r * (D + TC_PAD) + c * 8, cache + ((ok ? slot : 0) * KV + g) * D + c * 8, ok);
    }
    return bad;
}

// A partial row (the lane's row a or b, like tc_store_row): o / sum as fp32 and the lse,
// or, when the row saw no key, lse = -inf alone (the merge reads no o behind it).
template <int NO>
__device__ __forceinline__ void tc_store_part(const float o[NO][4], float m, float l, int half, float *dst, float *lse,
                                              bool empty) {
    const int t = threadIdx.x % 4;
    const float sum = quad_sum(l), inv = 1.0f / sum;
    if (!dst) return;
    if (t == 0) *lse = empty ? -INFINITY : (m + log2f(sum)) * LN2;
    if (empty) return;
#pragma unroll
    for (int n = 0; n < NO; n++)
        *(float2 *)(dst + n * 8 + 2 * t) = make_float2(o[n][2 * half] * inv, o[n][2 * half + 1] * inv);
}

template <int D, int BC, int FORM>
__global__ void __launch_bounds__(TC_THREADS) attn_tc_paged_kernel(const tc_paged p, int row_blocks,
                                                                   float scale_log2) {
    constexpr int LD = D + TC_PAD, NS = BC / 8, NO = D / 8, CH = D / 8;
    constexpr bool causal = FORM != TC_PAGED_PREFIX;
    extern __shared__ __align__(16) unsigned char smem_tc[];
    bf16 *Qs = (bf16 *)smem_tc, *Ks = Qs + TC_WARPS * 16 * LD, *Vs = Ks + 2 * BC * LD;
    const int g = blockIdx.y, unit = blockIdx.z, H = p.H, KV = p.KV, group = H / KV, pt = 16 / group;
    const int chunk = blockIdx.x / row_blocks, tok0 = (blockIdx.x % row_blocks) * TC_WARPS * pt;
    // the unit's rows, table and keys (paged_unit_at), then the keys [lo, hi) of this block's chunk
    paged_unit u;
    if (!paged_unit_at(u, FORM == TC_PAGED_PREFIX ? PAGED_PREFIX : FORM == TC_PAGED_SUFFIX ? PAGED_SUFFIX : PAGED_WHOLE,
                       unit, p.cu_q, p.seq_lens, p.block_tables, p.cu_groups, p.prefix_blocks, p.n_seqs, p.n_groups,
                       p.T, p.max_blocks, p.bs_log2))
        return;
    const int r_lo = u.r_lo, r_hi = u.r_hi, pos0 = u.pos0, *table = u.table;
    int lo = u.lo, hi = u.hi;
    bool bad = u.bad;
    const int n_new = r_hi - r_lo;
    if (FORM != TC_PAGED_EXACT) { // the launcher keeps these in int
        // keys the chunks do not reach (the unit's prefix, or its positions, past them)
        const int reach = FORM == TC_PAGED_PREFIX ? hi : pos0 + n_new;
        bad = bad || reach > (long long)lo + (long long)p.n_chunks * p.split_len;
        lo += chunk * p.split_len;
        hi = min(hi, lo + p.split_len);
    }
    bad = bad || n_new > row_blocks * TC_WARPS * pt; // rows no block covers (the last block NaNs them)
    if (tok0 >= n_new) return;                       // the whole block leaves together
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wtok = tok0 + warp * pt, wn = max(0, min(pt, n_new - wtok)); // the warp's new rows (0: it only loads)
    // keys up to the last position any row of the block sees, within the chunk
    const int kend = bad ? lo : min(hi, causal ? pos0 + min(n_new, tok0 + TC_WARPS * pt) : INT_MAX);
    const int n_tiles = kend > lo ? (kend - lo + BC - 1) / BC : 0;
    const size_t TH = (size_t)p.T * H;
    const int part = p.part0 + chunk;
    if (FORM != TC_PAGED_EXACT && !bad && n_tiles == 0) { // a chunk past the unit's keys: empty partials
        const int end = min(n_new, tok0 + TC_WARPS * pt);
        for (int i = threadIdx.x; i < (end - tok0) * group; i += TC_THREADS)
            p.part_lse[(size_t)part * TH + ((size_t)r_lo + tok0 + i / group) * H + g * group + i % group] = -INFINITY;
        return;
    }

    for (int i = threadIdx.x; i < TC_WARPS * 16 * CH; i += TC_THREADS) {
        const int row = i / CH, c = i % CH, j = row % 16, tok = tok0 + (row / 16) * pt + j / group;
        const bool ok = j < pt * group && tok < n_new;
        const size_t src = ((size_t)(r_lo + (ok ? tok : 0)) * H + g * group + j % group) * D + c * 8;
        cp_async16(Qs + row * LD + c * 8, p.q + (ok ? src : 0), ok);
    }
    bool bad_ids = false;
    if (n_tiles > 0) {
        bad_ids |= load_paged_rows<D, BC>(Ks, p.k_cache, table, lo, kend, p.n_blocks, p.bs_log2, KV, g);
        bad_ids |= load_paged_rows<D, BC>(Vs, p.v_cache, table, lo, kend, p.n_blocks, p.bs_log2, KV, g);
    }
    cp_async_commit();

    // the lane's rows a = lane / 4 and b = a + 8 of the warp's tile, at their positions (a
    // padding row takes the warp's last position: finite, never stored)
    const int last = causal ? pos0 + wtok + max(wn, 1) - 1 : INT_MAX;
    const int ja = lane / 4, jb = ja + 8;
    const int pos_a = causal && ja < wn * group ? pos0 + wtok + ja / group : last;
    const int pos_b = causal && jb < wn * group ? pos0 + wtok + jb / group : last;
    float o[1][NO][4], m[1][2] = {{-INFINITY, -INFINITY}}, l[1][2] = {{0.0f, 0.0f}};
#pragma unroll
    for (int n = 0; n < NO; n++) o[0][n][0] = o[0][n][1] = o[0][n][2] = o[0][n][3] = 0.0f;
    for (int j = 0; j < n_tiles; j++) {
        const int k0 = lo + j * BC, buf = j & 1;
        if (j + 1 < n_tiles) {
            bad_ids |= load_paged_rows<D, BC>(Ks + (buf ^ 1) * BC * LD, p.k_cache, table, k0 + BC, kend, p.n_blocks,
                                              p.bs_log2, KV, g);
            bad_ids |= load_paged_rows<D, BC>(Vs + (buf ^ 1) * BC * LD, p.v_cache, table, k0 + BC, kend, p.n_blocks,
                                              p.bs_log2, KV, g);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (wn > 0 && k0 <= last) { // warp-uniform
            const bf16 *Kt = Ks + buf * BC * LD, *Vt = Vs + buf * BC * LD;
            float sc[1][NS][4];
#pragma unroll
            for (int n = 0; n < NS; n++) sc[0][n][0] = sc[0][n][1] = sc[0][n][2] = sc[0][n][3] = 0.0f;
            mma_abt_rw<D, BC, LD, 1>(sc, Qs, warp * 16, Kt, 0, 0);
            if (FORM != TC_PAGED_EXACT && k0 + BC > hi) { // keys past the chunk (the exact form has none)
#pragma unroll
                for (int n = 0; n < NS; n++)
#pragma unroll
                    for (int c = 0; c < 2; c++)
                        if (k0 + n * 8 + 2 * (lane % 4) + c >= hi) sc[0][n][c] = sc[0][n][2 + c] = -INFINITY;
            }
            tc_softmax_tile<NS, NO>(sc[0], o[0], m[0], l[0], k0, pos_a, pos_b, causal && k0 + BC - 1 > pos0 + wtok,
                                    scale_log2);
            mma_pb_rw<D, BC, LD, 1>(o, sc, Vt, 0);
        }
        __syncthreads(); // this buffer is refilled by the next iteration's prefetch
    }
    bad = __syncthreads_or(bad || bad_ids); // the same answer in every thread
    if (bad) { // NaN into the block's rows (the last row block's reach to the unit's last row)
        cp_async_wait<0>(); // Q's copy (and no tile: kend = lo) is done before the block leaves
        const int end = blockIdx.x % row_blocks == row_blocks - 1 ? n_new : min(n_new, tok0 + TC_WARPS * pt);
        for (int i = threadIdx.x; i < (end - tok0) * group * D; i += TC_THREADS) {
            const int d = i % D, j = i / D % group, tok = tok0 + i / D / group;
            const size_t at = ((size_t)r_lo + tok) * H + g * group + j;
            if (FORM == TC_PAGED_EXACT) {
                p.out[at * D + d] = __float2bfloat16_rn(NAN);
                if (d == 0) p.lse[at] = NAN;
            } else {
                p.part_out[((size_t)part * TH + at) * D + d] = NAN;
                if (d == 0) p.part_lse[(size_t)part * TH + at] = NAN;
            }
        }
        return;
    }
    if (wn == 0) return;
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int jr = half ? jb : ja;
        const bool mine = jr < wn * group;
        const size_t at = ((size_t)r_lo + wtok + (mine ? jr / group : 0)) * H + g * group + jr % group;
        if (FORM == TC_PAGED_EXACT) {
            tc_store_row<NO>(o[0], m[0][half], l[0][half], half, mine ? p.out + at * D : NULL, p.lse + at);
        } else {
            const bool empty = n_tiles == 0 || (causal && (half ? pos_b : pos_a) < lo);
            float *dst = mine ? p.part_out + ((size_t)part * TH + at) * D : NULL;
            tc_store_part<NO>(o[0], m[0][half], l[0][half], half, dst, p.part_lse + (size_t)part * TH + at, empty);
        }
    }
}

// ---- backward: dQ ---------------------------------------------------------------------------
//
// Grid as the forward's, with RW groups of 16 query rows per warp likewise. Per key tile a
// warp makes S = Q K^T and dP = dO V^T for its rows, turns them into dS = P (dP - delta)
// with P = exp(scale S - lse), and adds dS K to dQ in registers; the scale is applied once
// at the end. Shared: Q, dO [BM][D+8], K and V [2][BC][D+8].
template <int D, int BC, int RW>
__global__ void __launch_bounds__(TC_THREADS)
    attn_tc_dq_kernel(bf16 *dq, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v, const float *lse,
                      const float *delta, const int *cu_seqlens, int H, int KV, float scale, float scale_log2) {
    constexpr int LD = D + TC_PAD, NS = BC / 8, NO = D / 8, BM = TC_WARPS * 16 * RW;
    extern __shared__ __align__(16) unsigned char smem_tc[];
    bf16 *Qs = (bf16 *)smem_tc, *DOs = Qs + BM * LD, *Ks = DOs + BM * LD, *Vs = Ks + 2 * BC * LD;
    const int h = blockIdx.y, seq = blockIdx.z, g = h / (H / KV);
    const int start = cu_seqlens[seq], len = cu_seqlens[seq + 1] - start;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BM;
    if (q0 >= len) return;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, t = lane % 4;
    const int wr = q0 + warp * 16 * RW;
    const int n_tiles = (min(len, q0 + BM) + BC - 1) / BC;

    load_rows<BM, D>(Qs, q, start, q0, len, H, h);
    load_rows<BM, D>(DOs, dout, start, q0, len, H, h);
    load_rows<BC, D>(Ks, k, start, 0, len, KV, g);
    load_rows<BC, D>(Vs, v, start, 0, len, KV, g);
    cp_async_commit();
    // rows past the sequence: zero Q and dO make P finite and dS zero; they are not stored
    float lse_r[RW][2], del_r[RW][2], acc[RW][NO][4];
#pragma unroll
    for (int r = 0; r < RW; r++) {
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int row = wr + 16 * r + lane / 4 + 8 * half;
            const size_t i = (size_t)(start + row) * H + h;
            lse_r[r][half] = row < len ? lse[i] * LOG2E : 0.0f;
            del_r[r][half] = row < len ? delta[i] : 0.0f;
        }
#pragma unroll
        for (int n = 0; n < NO; n++) acc[r][n][0] = acc[r][n][1] = acc[r][n][2] = acc[r][n][3] = 0.0f;
    }
    for (int j = 0; j < n_tiles; j++) {
        const int k0 = j * BC, buf = j & 1;
        next_kv_tile<BC, D>(Ks, Vs, k, v, start, k0 + BC, j + 1 < n_tiles, len, KV, g, buf);
        __syncthreads();
        int r_first = RW; // groups whose rows all come before key k0 skip the tile
#pragma unroll
        for (int r = RW - 1; r >= 0; r--)
            if (k0 <= wr + 16 * r + 15) r_first = r;
        if (r_first < RW) {
            const bf16 *Kt = Ks + buf * BC * LD, *Vt = Vs + buf * BC * LD;
            float s[RW][NS][4], dp[RW][NS][4];
#pragma unroll
            for (int r = 0; r < RW; r++)
#pragma unroll
                for (int n = 0; n < NS; n++)
#pragma unroll
                    for (int c = 0; c < 4; c++) s[r][n][c] = dp[r][n][c] = 0.0f;
            mma_abt_rw<D, BC, LD, RW>(s, Qs, warp * 16 * RW, Kt, 0, r_first);
            mma_abt_rw<D, BC, LD, RW>(dp, DOs, warp * 16 * RW, Vt, 0, r_first);
#pragma unroll
            for (int r = 0; r < RW; r++) {
                if (r < r_first) continue;
                const int gr = wr + 16 * r, row_a = gr + lane / 4, row_b = row_a + 8;
                const bool diag = k0 + BC - 1 > gr;
#pragma unroll
                for (int n = 0; n < NS; n++)
#pragma unroll
                    for (int c = 0; c < 2; c++) {
                        const int key = k0 + n * 8 + 2 * t + c;
                        const float p_a = diag && key > row_a ? 0.0f : exp2f(s[r][n][c] * scale_log2 - lse_r[r][0]);
                        const float p_b =
                            diag && key > row_b ? 0.0f : exp2f(s[r][n][2 + c] * scale_log2 - lse_r[r][1]);
                        s[r][n][c] = p_a * (dp[r][n][c] - del_r[r][0]);
                        s[r][n][2 + c] = p_b * (dp[r][n][2 + c] - del_r[r][1]);
                    }
            }
            mma_pb_rw<D, BC, LD, RW>(acc, s, Kt, r_first); // dQ += dS K
        }
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < RW; r++)
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int row = wr + 16 * r + lane / 4 + 8 * half;
            if (row >= len) continue;
            bf16 *dst = dq + ((size_t)(start + row) * H + h) * D + 2 * t;
#pragma unroll
            for (int n = 0; n < NO; n++) {
                const __nv_bfloat162 old = *(const __nv_bfloat162 *)(dst + n * 8);
                *(uint32_t *)(dst + n * 8) = pack_bf16(__low2float(old) + acc[r][n][2 * half] * scale,
                                                       __high2float(old) + acc[r][n][2 * half + 1] * scale);
            }
        }
}

// ---- backward: dK, dV -----------------------------------------------------------------------
//
// Grid (key tile, query head, sequence), the first key tiles (seen by the most queries)
// first. Each warp owns 16 keys and works in the transposed frame: S^T = K Q^T and
// dP^T = V dO^T [16][BQ] per query tile, then dV += P^T dO and dK += dS^T Q, all in
// registers. Shared: K, V [64][D+8]; Q, dO [2][BQ][D+8]; lse (log2 units) and delta
// [2][BQ]. With H == KV the block adds its result into dk, dv (bf16); otherwise it writes
// fp32 rows of this query head to dkh, dvh [T, H, D] for attn_tc_group_sum_kernel.
template <int D, int BQ>
__global__ void __launch_bounds__(TC_THREADS)
    attn_tc_dkdv_kernel(bf16 *dk, bf16 *dv, float *dkh, float *dvh, const bf16 *dout, const bf16 *q, const bf16 *k,
                        const bf16 *v, const float *lse, const float *delta, const int *cu_seqlens, int H, int KV,
                        float scale, float scale_log2) {
    constexpr int LD = D + TC_PAD, NS = BQ / 8, NO = D / 8;
    extern __shared__ __align__(16) unsigned char smem_tc[];
    bf16 *Ks = (bf16 *)smem_tc, *Vs = Ks + TC_BM * LD, *Qs = Vs + TC_BM * LD, *DOs = Qs + 2 * BQ * LD;
    float *Ls = (float *)(DOs + 2 * BQ * LD), *Dl = Ls + 2 * BQ;
    const int h = blockIdx.y, seq = blockIdx.z, g = h / (H / KV);
    const int start = cu_seqlens[seq], len = cu_seqlens[seq + 1] - start, k0 = blockIdx.x * TC_BM;
    if (k0 >= len) return;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, t = lane % 4;
    const int wk = k0 + warp * 16, key_a = wk + lane / 4, key_b = key_a + 8; // this lane's two keys
    const int n_tiles = (len - k0 + BQ - 1) / BQ; // queries k0.. (TC_BM is a multiple of BQ)

    load_rows<TC_BM, D>(Ks, k, start, k0, len, KV, g);
    load_rows<TC_BM, D>(Vs, v, start, k0, len, KV, g);
    load_rows<BQ, D>(Qs, q, start, k0, len, H, h);
    load_rows<BQ, D>(DOs, dout, start, k0, len, H, h);
    cp_async_commit();
    // Queries past the sequence get lse = +inf: P = 0 and dS = 0.
    for (int i = threadIdx.x; i < BQ; i += TC_THREADS) {
        const int qq = k0 + i;
        Ls[i] = qq < len ? lse[(size_t)(start + qq) * H + h] * LOG2E : INFINITY;
        Dl[i] = qq < len ? delta[(size_t)(start + qq) * H + h] : 0.0f;
    }

    float dk_acc[NO][4], dv_acc[NO][4];
#pragma unroll
    for (int n = 0; n < NO; n++)
#pragma unroll
        for (int c = 0; c < 4; c++) dk_acc[n][c] = dv_acc[n][c] = 0.0f;
    for (int j = 0; j < n_tiles; j++) {
        const int q0 = k0 + j * BQ, buf = j & 1;
        if (j + 1 < n_tiles) {
            load_rows<BQ, D>(Qs + (buf ^ 1) * BQ * LD, q, start, q0 + BQ, len, H, h);
            load_rows<BQ, D>(DOs + (buf ^ 1) * BQ * LD, dout, start, q0 + BQ, len, H, h);
            cp_async_commit();
            for (int i = threadIdx.x; i < BQ; i += TC_THREADS) {
                const int qq = q0 + BQ + i;
                Ls[(buf ^ 1) * BQ + i] = qq < len ? lse[(size_t)(start + qq) * H + h] * LOG2E : INFINITY;
                Dl[(buf ^ 1) * BQ + i] = qq < len ? delta[(size_t)(start + qq) * H + h] : 0.0f;
            }
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (q0 + BQ - 1 >= wk) { // some query of the tile sees some key of the warp
            const bf16 *Qt = Qs + buf * BQ * LD, *DOt = DOs + buf * BQ * LD;
            const float *Lt = Ls + buf * BQ, *Dt = Dl + buf * BQ;
            float s[NS][4], dp[NS][4];
#pragma unroll
            for (int n = 0; n < NS; n++)
#pragma unroll
                for (int c = 0; c < 4; c++) s[n][c] = dp[n][c] = 0.0f;
            mma_abt<D, BQ, LD>(s, Ks, warp * 16, Qt, 0);   // S^T = K Q^T
            mma_abt<D, BQ, LD>(dp, Vs, warp * 16, DOt, 0); // dP^T = V dO^T
            const bool diag = q0 < wk + 15;                // some query of the tile is before some key
#pragma unroll
            for (int n = 0; n < NS; n++)
#pragma unroll
                for (int c = 0; c < 2; c++) {
                    const int col = n * 8 + 2 * t + c, qq = q0 + col;
                    const float p_a = diag && qq < key_a ? 0.0f : exp2f(s[n][c] * scale_log2 - Lt[col]);
                    const float p_b = diag && qq < key_b ? 0.0f : exp2f(s[n][2 + c] * scale_log2 - Lt[col]);
                    s[n][c] = p_a, s[n][2 + c] = p_b;
                    dp[n][c] = p_a * (dp[n][c] - Dt[col]);
                    dp[n][2 + c] = p_b * (dp[n][2 + c] - Dt[col]);
                }
            mma_pb<D, BQ, LD>(dv_acc, s, DOt); // dV += P^T dO
            mma_pb<D, BQ, LD>(dk_acc, dp, Qt); // dK += dS^T Q
        }
        __syncthreads();
    }
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int key = half ? key_b : key_a;
        if (key >= len) continue;
        if (dkh) {
            float *dst_k = dkh + ((size_t)(start + key) * H + h) * D + 2 * t;
            float *dst_v = dvh + ((size_t)(start + key) * H + h) * D + 2 * t;
#pragma unroll
            for (int n = 0; n < NO; n++) {
                *(float2 *)(dst_k + n * 8) = make_float2(dk_acc[n][2 * half] * scale, dk_acc[n][2 * half + 1] * scale);
                *(float2 *)(dst_v + n * 8) = make_float2(dv_acc[n][2 * half], dv_acc[n][2 * half + 1]);
            }
        } else {
            const size_t off = ((size_t)(start + key) * KV + g) * D + 2 * t;
#pragma unroll
            for (int n = 0; n < NO; n++) {
                const __nv_bfloat162 ok = *(const __nv_bfloat162 *)(dk + off + n * 8);
                const __nv_bfloat162 ov = *(const __nv_bfloat162 *)(dv + off + n * 8);
                *(uint32_t *)(dk + off + n * 8) = pack_bf16(__low2float(ok) + dk_acc[n][2 * half] * scale,
                                                            __high2float(ok) + dk_acc[n][2 * half + 1] * scale);
                *(uint32_t *)(dv + off + n * 8) = pack_bf16(__low2float(ov) + dv_acc[n][2 * half],
                                                            __high2float(ov) + dv_acc[n][2 * half + 1]);
            }
        }
    }
}

// dk[t, g, :] += sum over the query heads of group g, in order, of dkh[t, h, :]; same for
// dv. One thread per element.
__global__ void attn_tc_group_sum_kernel(bf16 *dk, bf16 *dv, const float *dkh, const float *dvh, size_t n, int H,
                                         int KV, int D) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int group = H / KV;
    const size_t row = i / D, d = i % D, tok = row / KV, g = row % KV;
    float sk = __bfloat162float(dk[i]), sv = __bfloat162float(dv[i]);
    for (int h = (int)g * group; h < ((int)g + 1) * group; h++) {
        const size_t j = (tok * H + h) * D + d;
        sk += dkh[j], sv += dvh[j];
    }
    dk[i] = __float2bfloat16_rn(sk), dv[i] = __float2bfloat16_rn(sv);
}

// ---- launchers --------------------------------------------------------------------------------

// Keys (forward, dQ) or queries (dK/dV) per tile: as many as keep the fp32 tiles of
// scores and accumulators in registers without spilling.
template <int D> struct tc_tiles;
// FWD_RW: row groups of 16 per warp in the forward. Two halve the shared-memory reads of K
// and V per product, which paid at D = 128 (H100, 8 x 1024 tokens: 0.196 -> 0.176 ms; 2 x
// 4096: 0.659 -> 0.569 ms) and cost at D = 64 (0.113 -> 0.130 ms, 0.375 -> 0.422 ms).
template <> struct tc_tiles<64> { enum { FWD_BC = 64, FWD_RW = 1, DQ_BC = 64, DQ_RW = 1, KV_BQ = 64 }; };
template <> struct tc_tiles<128> { enum { FWD_BC = 64, FWD_RW = 2, DQ_BC = 32, DQ_RW = 2, KV_BQ = 32 }; };

static size_t rows_bytes(int rows, int D) { return (size_t)rows * (D + TC_PAD) * sizeof(bf16); }

// Raises a kernel's dynamic shared memory limit past the default 48 KB.
template <typename K> static cudaError_t allow_smem(K kernel, size_t smem) {
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
}

template <int D>
static int forward_d(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, const int *cu, int n_seqs,
                     int max_seqlen, int H, int KV, cudaStream_t s, rlvr_err *e) {
    constexpr int BC = tc_tiles<D>::FWD_BC, RW = tc_tiles<D>::FWD_RW, BM = TC_WARPS * 16 * RW;
    const size_t smem = rows_bytes(BM, D) + 4 * rows_bytes(BC, D);
    const dim3 grid((unsigned)((max_seqlen + BM - 1) / BM), (unsigned)H, (unsigned)n_seqs);
    CUDA_CHECK(allow_smem(attn_tc_forward_kernel<D, BC, RW>, smem), e);
    attn_tc_forward_kernel<D, BC, RW><<<grid, TC_THREADS, smem, s>>>(out, lse, q, k, v, cu, H, KV,
                                                                     LOG2E / sqrtf((float)D));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

template <int D>
static int backward_d(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                      const float *lse, const float *delta, float *dkh, float *dvh, const int *cu, int n_seqs,
                      int max_seqlen, int T, int H, int KV, cudaStream_t s, rlvr_err *e) {
    constexpr int BC = tc_tiles<D>::DQ_BC, DQ_RW = tc_tiles<D>::DQ_RW, DQ_BM = TC_WARPS * 16 * DQ_RW,
                  BQ = tc_tiles<D>::KV_BQ;
    const float scale = 1.0f / sqrtf((float)D), scale_log2 = scale * LOG2E;
    const unsigned tiles = (unsigned)((max_seqlen + TC_BM - 1) / TC_BM),
                   dq_tiles = (unsigned)((max_seqlen + DQ_BM - 1) / DQ_BM);
    const size_t dq_smem = 2 * rows_bytes(DQ_BM, D) + 4 * rows_bytes(BC, D);
    const size_t kv_smem = 2 * rows_bytes(TC_BM, D) + 4 * rows_bytes(BQ, D) + 4 * BQ * sizeof(float);
    const dim3 grid(tiles, (unsigned)H, (unsigned)n_seqs), dq_grid(dq_tiles, (unsigned)H, (unsigned)n_seqs);
    CUDA_CHECK(allow_smem(attn_tc_dq_kernel<D, BC, DQ_RW>, dq_smem), e);
    CUDA_CHECK(allow_smem(attn_tc_dkdv_kernel<D, BQ>, kv_smem), e);
    attn_tc_dq_kernel<D, BC, DQ_RW><<<dq_grid, TC_THREADS, dq_smem, s>>>(dq, dout, q, k, v, lse, delta, cu, H, KV,
                                                                         scale, scale_log2);
    const bool grouped = H != KV;
    attn_tc_dkdv_kernel<D, BQ><<<grid, TC_THREADS, kv_smem, s>>>(dk, dv, grouped ? dkh : NULL, grouped ? dvh : NULL,
                                                                 dout, q, k, v, lse, delta, cu, H, KV, scale,
                                                                 scale_log2);
    if (grouped) {
        const size_t n = (size_t)T * KV * D;
        attn_tc_group_sum_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(dk, dv, dkh, dvh, n, H, KV, D);
    }
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

// The partial forms' key tile: BC = 64 keeps 4 blocks an SM resident at D = 64 and 2 at D = 128.
#define TC_PAGED_BC 64

template <int D, int BC, int FORM> static int paged_launch(const tc_paged *p, cudaStream_t s, rlvr_err *e) {
    const int per_block = TC_WARPS * (16 / (p->H / p->KV));
    const long long row_blocks = (p->max_rows + per_block - 1) / per_block, chunks = FORM ? p->n_chunks : 1;
    if (row_blocks * chunks > INT_MAX || p->n_units > 65535 || p->KV > 65535)
        return err_set(e, "paged attention: %lld row blocks x %lld chunks, %d units, %d kv heads is too large a grid",
                       row_blocks, chunks, p->n_units, p->KV);
    const size_t smem = rows_bytes(TC_WARPS * 16, D) + 4 * rows_bytes(BC, D);
    const dim3 grid((unsigned)(row_blocks * chunks), (unsigned)p->KV, (unsigned)p->n_units);
    CUDA_CHECK(allow_smem(attn_tc_paged_kernel<D, BC, FORM>, smem), e);
    attn_tc_paged_kernel<D, BC, FORM><<<grid, TC_THREADS, smem, s>>>(*p, (int)row_blocks, LOG2E / sqrtf((float)D));
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

template <int D> static int paged_d(const tc_paged *p, cudaStream_t s, rlvr_err *e) {
    switch (p->form) {
    case TC_PAGED_EXACT: return paged_launch<D, tc_tiles<D>::FWD_BC, TC_PAGED_EXACT>(p, s, e); // the forward's order
    case TC_PAGED_SPLIT: return paged_launch<D, TC_PAGED_BC, TC_PAGED_SPLIT>(p, s, e);
    case TC_PAGED_PREFIX: return paged_launch<D, TC_PAGED_BC, TC_PAGED_PREFIX>(p, s, e);
    default: return paged_launch<D, TC_PAGED_BC, TC_PAGED_SUFFIX>(p, s, e);
    }
}

int attn_tc_paged(const tc_paged *p, cudaStream_t s, rlvr_err *e) {
    return p->D == 64 ? paged_d<64>(p, s, e) : paged_d<128>(p, s, e);
}

bool attn_tc_supported(int D, const void *const *ptrs, int n_ptrs) {
    if (D != 64 && D != 128) return false;
    for (int i = 0; i < n_ptrs; i++)
        if ((uintptr_t)ptrs[i] % 16) return false; // cp.async copies 16-byte chunks
    return true;
}

size_t attn_tc_scratch_bytes(int T, int H, int KV, int D) {
    return H != KV && (D == 64 || D == 128) ? (size_t)2 * T * H * D * sizeof(float) : 0;
}

int attn_tc_forward(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, const int *cu_seqlens,
                    int n_seqs, int max_seqlen, int H, int KV, int D, cudaStream_t s, rlvr_err *e) {
    if (D == 64) return forward_d<64>(out, lse, q, k, v, cu_seqlens, n_seqs, max_seqlen, H, KV, s, e);
    return forward_d<128>(out, lse, q, k, v, cu_seqlens, n_seqs, max_seqlen, H, KV, s, e);
}

int attn_tc_backward(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                     const float *lse, const float *delta, float *dkdv_scratch, const int *cu_seqlens, int n_seqs,
                     int max_seqlen, int T, int H, int KV, int D, cudaStream_t s, rlvr_err *e) {
    float *dkh = dkdv_scratch, *dvh = dkdv_scratch ? dkdv_scratch + (size_t)T * H * D : NULL;
    if (D == 64)
        return backward_d<64>(dq, dk, dv, dout, q, k, v, lse, delta, dkh, dvh, cu_seqlens, n_seqs, max_seqlen, T, H,
                              KV, s, e);
    return backward_d<128>(dq, dk, dv, dout, q, k, v, lse, delta, dkh, dvh, cu_seqlens, n_seqs, max_seqlen, T, H, KV,
                           s, e);
}
