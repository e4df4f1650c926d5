// sampling.cu - choosing the next token on the GPU: temperature, top-k, top-p, min-p and
// greedy, with the semantics of sample_next (rollout/sampling.c, the CPU twin) and its
// random numbers (a device copy of core/rng.c's Philox4x32-10, bit for bit).
//
// Launch: one CTA of SAMPLE_THREADS (512) threads per row, so a row's result depends on
// its logits, its parameters and its (seed, seq_id, position) alone: every reduction runs
// in an order fixed by the CTA's shape, whatever other rows share the launch, and no
// floating-point sum uses atomics (the only atomics add integer counts, which commute).
//
// Layout. Warp w of the CTA owns the contiguous ids [w R, (w + 1) R) of the row, R being
// V / 16 rounded up to a multiple of 32; its lanes read them 32 at a time (coalesced). A
// lane sums its ids in increasing order, a warp by an xor butterfly (every lane gets the
// same bits), a CTA by thread 0 adding the 16 warp sums in warp order.
//
// The [V] probabilities are never stored: every pass recomputes p[v] = expf((l[v] - l_max)
// / T) from the logits, as sample_next does (so p of the most likely token is exactly 1,
// p <= 1 and p >= 0, and a probability's bits, read as an unsigned integer, order like the
// probability). A pass over V = 151,936 is ~300 expf per thread. The passes:
//   1. argmax (lowest id on ties). Greedy rows (temperature 0) stop here.
//   2. top-k, when 0 < k < V: a radix select (4 passes of 8-bit digits, integer histograms
//      in shared memory) finds the bits K of the k-th largest probability and how many of
//      the tokens at exactly K the k most likely take (rank r among them). The kept set is
//      p > K, plus the r lowest ids with p == K: exactly the CPU's sort by (p desc, id
//      asc) cut at k. When r is not all of them, one more pass finds the r-th such id.
//   3. top-p, when top_p < 1: the cut is the largest probability P whose mass at or above
//      it (within the top-k set) reaches top_p * kept, kept being the top-k set's mass: a
//      radix descent over P's bits, 4 bits (16 bins) per pass, 8 passes, each bin's mass a
//      double sum in a fixed order (every thread adds into its own column of a [16, 512]
//      shared array; then warp b adds bin b's column in thread order). The first pass's
//      bins add up to kept; the last pass's bin is n tokens of probability exactly P, whose
//      mass n P is exact in double, which counts them. The tokens tied at P are taken in
//      id order, as many as the CPU's walk adds before it reaches the threshold:
//      ceil((top_p * kept - mass above P) / P); when that is not all of them, one more
//      pass finds the last one's id.
//   4. min-p is a predicate (p >= min_p: p_max is 1).
//   5. the draw: u = rng_uniform(seed, seq_id, position, 0) * (kept mass), and the token is
//      the first kept id in id order whose cumulative mass exceeds u, found in three
//      levels: the 16 warp ranges' masses, then 16 slices of the chosen range, then one
//      warp scans the chosen slice 32 ids at a time. Its log-probability is
//      log(p / kept mass) in double, rounded to float, as the CPU computes it.
// So greedy costs one pass, temperature alone two, top-k four more, top-p eight more; no
// pass sorts anything. Sums are in double like the CPU's; they add in another order, so a
// probability or a cumulative mass can differ from the CPU's in the last bits (and expf
// here is within 2 ulp, glibc's within 1): a draw that lands within that of a token
// boundary, or a top-p threshold that close to a cumulative mass, can go the other way.
// tests/gpu/test_sampling.c measures how often.
//
// Logits are expected to be finite or -inf, with at least one finite value per row (a NaN
// is never the argmax here, while sample_next's scan can stop at one).
#include <limits.h>
#include <stdint.h>

#include "cuda_common.cuh"

#define SAMPLE_THREADS 512
#define SAMPLE_WARPS (SAMPLE_THREADS / 32)
#define TOPP_BINS 16 // 4-bit digits
static_assert(SAMPLE_WARPS == TOPP_BINS, "find_top_p reduces bin b with warp b");
#define FULL_MASK 0xffffffffu
// Logits a lane loads before using them. A row is one CTA's, so a pass is bound by how many
// loads the CTA keeps in flight: with 4, kern_sample took 79-97 us a step on an H100 at
// V = 151,936 and temperature 1 (two passes and the draw; Nsight Compute, 2026-12-07).
#define SAMPLE_UNROLL 16

// ---- Philox4x32-10, the same bits as core/rng.c ---------------------------------------------

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

// rng.c's block(): key = seed, counter = (position lo, position hi, stream lo, stream hi).
__device__ __forceinline__ void philox_block(uint64_t seed, uint64_t stream, uint64_t position, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)position, c1 = (uint32_t)(position >> 32), c2 = (uint32_t)stream,
             c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
#pragma unroll
    for (int round = 0; round < 10; round++) {
        const uint32_t hi0 = __umulhi(PHILOX_M0, c0), lo0 = PHILOX_M0 * c0;
        const uint32_t hi1 = __umulhi(PHILOX_M1, c2), lo1 = PHILOX_M1 * c2;
        const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0, c1 = lo1, c2 = n2, c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

// rng_uniform(seed, stream, position, lane): 24 random bits scaled into [0, 1), exact.
__device__ __forceinline__ float uniform_of(const uint32_t r[4], int lane) {
    return (float)(r[lane & 3] >> 8) * (1.0f / 16777216.0f);
}

// ---- shared state and fixed-order reductions -------------------------------------------------

struct sample_shared {
    unsigned khist[256];        // top-k radix histogram (integer counts)
    double part[SAMPLE_WARPS];  // per-warp (or per-bin) partial sums
    float best_v[SAMPLE_WARPS]; // per-warp argmax
    int best_i[SAMPLE_WARPS];
    // values thread 0 or warp 0 computes for the whole CTA
    double total, target, base, above, theta, tied_mass;
    int best, digit, rank, ties, lo, hi, result;
};

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(FULL_MASK, v, offset);
    return v;
}

// What one row's passes share: the logits, the probability transform and the warp's range.
struct row_view {
    const float *x; // [V]
    int V;
    int R;      // ids per warp range (a multiple of 32)
    int lo, hi; // this warp's range [lo, hi), clipped to V
    float top, inv_t;

    // sample_next's prob[v] from the logit l = x[v], operation for operation (no FMA).
    __device__ __forceinline__ float prob_of(float l) const { return expf(__fmul_rn(__fsub_rn(l, top), inv_t)); }
    __device__ __forceinline__ float prob(int v) const { return prob_of(__ldg(x + v)); }
};

// Calls fn(v, x[v]) for this lane's ids v = lo + lane + 32 j < hi in increasing order,
// SAMPLE_UNROLL loads issued together (the range's tail too). Lanes may make different
// numbers of calls: fn must not use warp intrinsics.
template <typename F> __device__ __forceinline__ void for_lane_ids(const float *x, int lo, int hi, F fn) {
    for (int v = lo + (threadIdx.x & 31); v < hi; v += 32 * SAMPLE_UNROLL) {
        float l[SAMPLE_UNROLL];
#pragma unroll
        for (int u = 0; u < SAMPLE_UNROLL; u++) l[u] = v + 32 * u < hi ? __ldg(x + v + 32 * u) : 0.0f;
#pragma unroll
        for (int u = 0; u < SAMPLE_UNROLL; u++)
            if (v + 32 * u < hi) fn(v + 32 * u, l[u]);
    }
}

// The kept set. Top-k: bits > kb, or bits == kb and id <= kc; top-p likewise with pb, pc
// (kb = pb = 0, kc = pc = INT_MAX when off); min-p: p >= min_p.
struct filters {
    uint32_t kb, pb;
    int kc, pc;
    float min_p;
    __device__ __forceinline__ bool top_k(int v, uint32_t b) const { return b > kb || (b == kb && v <= kc); }
    __device__ __forceinline__ bool keep(int v, float p) const {
        const uint32_t b = __float_as_uint(p);
        return top_k(v, b) && (b > pb || (b == pb && v <= pc)) && !(p < min_p);
    }
};

// Weights for sums and searches in id order.
struct w_tied { // 1 for a token in the top-k set whose probability has exactly these bits
    row_view r;
    filters f;
    uint32_t bits;
    int need_top_k;
    __device__ __forceinline__ double operator()(int v, float l) const {
        const uint32_t b = __float_as_uint(r.prob_of(l));
        return b == bits && (!need_top_k || f.top_k(v, b)) ? 1.0 : 0.0;
    }
};
struct w_kept_mass { // p within the final kept set
    row_view r;
    filters f;
    __device__ __forceinline__ double operator()(int v, float l) const {
        const float p = r.prob_of(l);
        return f.keep(v, p) ? (double)p : 0.0;
    }
};

// Thread 0: the first of the 16 parts (masses sm.part, starting at cumulative `base`) in
// which the cumulative mass exceeds target, and the cumulative mass before it. A part of
// zero mass is never chosen; when rounding leaves no part exceeding the target, the last
// part of nonzero mass is.
__device__ __forceinline__ void choose_part(sample_shared &sm, double base, double target, int *part,
                                            double *part_base) {
    int last = 0;
    double last_base = base, acc = base;
    for (int j = 0; j < SAMPLE_WARPS; j++) {
        const double m = sm.part[j], next = acc + m;
        if (m > 0.0 && next > target) {
            *part = j, *part_base = acc;
            return;
        }
        if (m > 0.0) last = j, last_base = acc;
        acc = next;
    }
    *part = last, *part_base = last_base;
}

// The first id in id order at which the cumulative sum of w exceeds the target, and the
// total of w (sm.total). target >= 0 is used as given; target < 0 means the draw:
// uniform * total. Three levels (warp ranges, 16 slices of one range, 32 ids at a time in
// one slice) keep the serial part to at most ceil(R / 512) steps of one warp. The result
// always has w > 0 when the total is positive.
template <typename W>
__device__ int find_in_id_order(const row_view &r, const W &w, double target, float uniform, sample_shared &sm) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    // level 0: the warp ranges
    double s = 0.0;
    for_lane_ids(r.x, r.lo, r.hi, [&](int v, float l) { s += w(v, l); });
    s = warp_sum_d(s);
    if (lane == 0) sm.part[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int j = 0; j < SAMPLE_WARPS; j++) t += sm.part[j];
        const double tg = target >= 0.0 ? target : (double)uniform * t;
        int c;
        double base;
        choose_part(sm, 0.0, tg, &c, &base);
        sm.total = t, sm.target = tg, sm.base = base;
        sm.lo = c * r.R;
        sm.hi = min(r.V, c * r.R + r.R);
    }
    __syncthreads();
    // level 1: 16 slices of S ids (a multiple of 32) of the chosen range, one per warp
    const int S = ((r.R / 32 + SAMPLE_WARPS - 1) / SAMPLE_WARPS) * 32;
    const int range_hi = sm.hi, slo = sm.lo + warp * S, shi = min(range_hi, slo + S);
    s = 0.0;
    for_lane_ids(r.x, slo, shi, [&](int v, float l) { s += w(v, l); });
    s = warp_sum_d(s);
    __syncthreads(); // thread 0 is done reading the level-0 parts
    if (lane == 0) sm.part[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        int c;
        double base;
        choose_part(sm, sm.base, sm.target, &c, &base);
        sm.base = base;
        sm.lo = sm.lo + c * S;
        sm.hi = min(range_hi, sm.lo + S);
    }
    __syncthreads();
    // level 2: warp 0 scans the chosen slice, 32 ids at a time
    if (warp == 0) {
        const int lo = sm.lo, hi = sm.hi;
        const double tg = sm.target;
        double acc = sm.base;
        int found = -1, last_positive = -1;
        for (int i = 0; i < S; i += 32) { // the same trip count on every lane
            const int v = lo + i + lane;
            const double q = v < hi ? w(v, __ldg(r.x + v)) : 0.0;
            double incl = q; // inclusive scan over the lanes (Hillis-Steele: a fixed order)
            for (int o = 1; o < 32; o <<= 1) {
                const double y = __shfl_up_sync(FULL_MASK, incl, o);
                if (lane >= o) incl += y;
            }
            const unsigned cross = __ballot_sync(FULL_MASK, q > 0.0 && acc + incl > tg);
            const unsigned positive = __ballot_sync(FULL_MASK, q > 0.0);
            if (cross) {
                found = lo + i + __ffs(cross) - 1;
                break;
            }
            if (positive) last_positive = lo + i + 31 - __clz(positive);
            acc += __shfl_sync(FULL_MASK, incl, 31);
        }
        if (found < 0) found = last_positive >= 0 ? last_positive : min(lo, r.V - 1);
        if (lane == 0) sm.result = found;
    }
    __syncthreads();
    return sm.result;
}

// ---- the passes ---------------------------------------------------------------------------------

// Argmax of the logits, lowest id on ties (0 when no logit compares, as sample_next).
__device__ int row_argmax(const row_view &r, sample_shared &sm) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float bv = -INFINITY;
    int bi = INT_MAX;
    for_lane_ids(r.x, r.lo, r.hi, [&](int v, float l) {
        if (l > bv || (l == bv && v < bi)) bv = l, bi = v;
    });
    for (int offset = 16; offset > 0; offset >>= 1) {
        const float ov = __shfl_xor_sync(FULL_MASK, bv, offset);
        const int oi = __shfl_xor_sync(FULL_MASK, bi, offset);
        if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
    }
    if (lane == 0) sm.best_v[warp] = bv, sm.best_i[warp] = bi;
    __syncthreads();
    if (threadIdx.x == 0) {
        float v = sm.best_v[0];
        int i = sm.best_i[0];
        for (int j = 1; j < SAMPLE_WARPS; j++)
            if (sm.best_v[j] > v || (sm.best_v[j] == v && sm.best_i[j] < i)) v = sm.best_v[j], i = sm.best_i[j];
        sm.best = i == INT_MAX ? 0 : i;
    }
    __syncthreads();
    return sm.best;
}

// Warp 0: in the 256-bin histogram, the bin (counting down from 255) that holds the
// rank-th largest element; writes sm.digit, the rank within that bin (sm.rank) and the
// bin's count (sm.ties). The histogram's total is at least rank.
__device__ void select_bin(sample_shared &sm, int rank) {
    const int lane = threadIdx.x & 31;
    int h[8], own = 0;
#pragma unroll
    for (int j = 0; j < 8; j++) h[j] = (int)sm.khist[255 - 8 * lane - j], own += h[j];
    int incl = own;
    for (int o = 1; o < 32; o <<= 1) {
        const int y = __shfl_up_sync(FULL_MASK, incl, o);
        if (lane >= o) incl += y;
    }
    const unsigned hit = __ballot_sync(FULL_MASK, incl >= rank);
    const int owner = hit ? __ffs(hit) - 1 : 31;
    if (lane == owner) {
        int c = incl - own, digit = 255 - 8 * lane - 7, bin_rank = rank - c, ties = h[7];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            if (c + h[j] >= rank) {
                digit = 255 - 8 * lane - j, bin_rank = rank - c, ties = h[j];
                break;
            }
            c += h[j];
        }
        sm.digit = digit, sm.rank = bin_rank, sm.ties = ties;
    }
}

// Top-k: sets f->kb, f->kc so that exactly the k most likely tokens (p desc, id asc) pass.
__device__ void find_top_k(const row_view &r, filters *f, int k, sample_shared &sm) {
    const int lane = threadIdx.x & 31;
    uint32_t prefix = 0, mask = 0;
    int rank = k, ties = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < 256; i += SAMPLE_THREADS) sm.khist[i] = 0;
        __syncthreads();
        // the same trip count on every lane (for the match), SAMPLE_UNROLL loads at a time
        for (int i = 0; i < r.R; i += 32 * SAMPLE_UNROLL) {
            float l[SAMPLE_UNROLL];
#pragma unroll
            for (int u = 0; u < SAMPLE_UNROLL; u++) {
                const int v = r.lo + i + 32 * u + lane;
                l[u] = v < r.hi ? __ldg(r.x + v) : 0.0f;
            }
#pragma unroll
            for (int u = 0; u < SAMPLE_UNROLL; u++) {
                int bin = 256; // not counted
                if (r.lo + i + 32 * u + lane < r.hi) {
                    const uint32_t b = __float_as_uint(r.prob_of(l[u]));
                    if ((b & mask) == prefix) bin = (int)((b >> shift) & 255u);
                }
                // lanes with the same bin add once (shared atomics on one address serialize)
                const unsigned peers = __match_any_sync(FULL_MASK, bin);
                if (bin < 256 && lane == __ffs(peers) - 1) atomicAdd(&sm.khist[bin], (unsigned)__popc(peers));
            }
        }
        __syncthreads();
        if (threadIdx.x < 32) select_bin(sm, rank);
        __syncthreads();
        prefix |= (uint32_t)sm.digit << shift;
        mask |= 255u << shift;
        rank = sm.rank, ties = sm.ties;
        __syncthreads(); // sm.khist is zeroed again next pass
    }
    f->kb = prefix;
    f->kc = INT_MAX;
    if (rank < ties) { // only the `rank` lowest ids among the tokens at exactly K
        w_tied w = {r, *f, prefix, 0};
        f->kc = find_in_id_order(r, w, (double)(rank - 1), 0.0f, sm);
    }
}

// Top-p: sets f->pb, f->pc (f's top-k part already set). `cols` is the [16, 512] shared
// array of per-thread bin masses.
__device__ void find_top_p(const row_view &r, filters *f, float top_p, double *cols, sample_shared &sm) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    uint32_t prefix = 0, mask = 0;
    // thread 0's: top_p * the top-k mass, and the mass of the top-k tokens above the prefix
    double theta = 0.0, above = 0.0;
    double *col = cols + threadIdx.x;
    for (int shift = 28; shift >= 0; shift -= 4) {
#pragma unroll
        for (int d = 0; d < TOPP_BINS; d++) col[d * SAMPLE_THREADS] = 0.0;
        const filters fk = *f;
        for_lane_ids(r.x, r.lo, r.hi, [&](int v, float l) {
            const float p = r.prob_of(l);
            const uint32_t b = __float_as_uint(p);
            if ((b & mask) == prefix && fk.top_k(v, b)) col[((b >> shift) & 15u) * SAMPLE_THREADS] += (double)p;
        });
        __syncthreads();
        double s = 0.0; // warp b adds bin b's column in thread order
        for (int j = 0; j < SAMPLE_THREADS / 32; j++) s += cols[warp * SAMPLE_THREADS + j * 32 + lane];
        s = warp_sum_d(s);
        if (lane == 0) sm.part[warp] = s;
        __syncthreads();
        if (threadIdx.x == 0) {
            if (shift == 28) { // the first pass's bins hold the whole top-k set
                double kept = 0.0;
                for (int d = 0; d < TOPP_BINS; d++) kept += sm.part[d];
                theta = (double)top_p * kept;
            }
            // the highest bin whose mass, with everything above it, reaches theta (bin 0
            // when rounding leaves none: then nearly everything is kept, as on the CPU)
            int d = TOPP_BINS - 1;
            for (; d > 0; d--) {
                const double with = above + sm.part[d];
                if (with >= theta) break;
                above = with;
            }
            sm.digit = d;
            sm.above = above, sm.theta = theta;
            // in the last pass a bin holds one probability value: n equal floats, whose
            // double sum n P is exact (n < 2^29), so the mass gives the count
            sm.tied_mass = sm.part[d];
        }
        __syncthreads();
        prefix |= (uint32_t)sm.digit << shift;
        mask |= 15u << shift;
    }
    const double mass_above = sm.above, theta_all = sm.theta, tied_mass = sm.tied_mass;
    f->pb = prefix;
    f->pc = INT_MAX;
    const float pstar = __uint_as_float(prefix);
    if (pstar > 0.0f) {
        // the CPU adds the tokens at exactly P in id order until the cumulative mass
        // reaches theta: m of them
        const double n_tied = rint(tied_mass / (double)pstar), need = (theta_all - mass_above) / (double)pstar;
        const double m = need <= 1.0 ? 1.0 : need >= n_tied ? n_tied : ceil(need);
        if (m < n_tied) {
            const w_tied wt = {r, *f, prefix, 1};
            f->pc = find_in_id_order(r, wt, m - 1.0, 0.0f, sm);
        }
    }
}

__global__ void __launch_bounds__(SAMPLE_THREADS, 1)
    sample_kernel(const float *__restrict__ logits, int V, const kern_sample_params *__restrict__ params,
                  const uint64_t *__restrict__ seq_ids, const uint64_t *__restrict__ positions, uint64_t seed,
                  int *__restrict__ tokens, float *__restrict__ logp) {
    extern __shared__ double topp_cols[]; // [TOPP_BINS, SAMPLE_THREADS]
    __shared__ sample_shared sm;
    const int row = blockIdx.x, warp = threadIdx.x >> 5;
    row_view r;
    r.x = logits + (size_t)row * V;
    r.V = V;
    r.R = ((V + 32 * SAMPLE_WARPS - 1) / (32 * SAMPLE_WARPS)) * 32;
    r.lo = warp * r.R;
    r.hi = min(V, r.lo + r.R);
    const kern_sample_params p = params[row];

    const int best = row_argmax(r, sm);
    if (!(p.temperature > 0.0f)) { // greedy
        if (threadIdx.x == 0) {
            tokens[row] = best;
            if (logp) logp[row] = 0.0f;
        }
        return;
    }
    r.top = r.x[best];
    r.inv_t = __fdiv_rn(1.0f, p.temperature);

    filters f;
    f.kb = 0, f.kc = INT_MAX, f.pb = 0, f.pc = INT_MAX;
    f.min_p = p.min_p;
    if (p.top_k > 0 && p.top_k < V) find_top_k(r, &f, p.top_k, sm);
    if (p.top_p < 1.0f) find_top_p(r, &f, p.top_p, topp_cols, sm);

    uint32_t bits[4];
    philox_block(seed, seq_ids[row], positions[row], bits);
    const w_kept_mass wk = {r, f};
    const int chosen = find_in_id_order(r, wk, -1.0, uniform_of(bits, 0), sm);
    if (threadIdx.x == 0) {
        tokens[row] = chosen;
        if (logp) logp[row] = (float)log((double)r.prob(chosen) / sm.total);
    }
}

extern "C" int kern_sample(const float *logits, int N, int V, const kern_sample_params *params,
                           const uint64_t *seq_ids, const uint64_t *positions, uint64_t seed, int *tokens,
                           float *logp, void *stream, rlvr_err *e) {
    if (N < 1 || V < 1 || V > INT_MAX - 32 * SAMPLE_THREADS)
        return err_set(e, "sample: bad shape N=%d V=%d", N, V);
    if (!logits || !params || !seq_ids || !positions || !tokens)
        return err_set(e, "sample: logits, params, seq_ids, positions and tokens are required");
    const size_t smem = (size_t)TOPP_BINS * SAMPLE_THREADS * sizeof(double); // 64 KiB: above the 48 KiB default
    CUDA_CHECK(cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), e);
    sample_kernel<<<N, SAMPLE_THREADS, smem, (cudaStream_t)stream>>>(logits, V, params, seq_ids, positions, seed,
                                                                      tokens, logp);
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}

__global__ void rng_uniform_kernel(float *out, uint32_t *bits, const uint64_t *keys, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint32_t r[4];
    const uint64_t *key = keys + 3 * (size_t)i;
    philox_block(key[0], key[1], key[2], r);
    out[i] = uniform_of(r, 0);
    if (bits)
        for (int j = 0; j < 4; j++) bits[4 * (size_t)i + j] = r[j];
}

extern "C" int kern_rng_uniform(float *out, uint32_t *bits, const uint64_t *keys, int n, void *stream, rlvr_err *e) {
    if (n < 1) return err_set(e, "rng_uniform: bad count %d", n);
    if (!out || !keys) return err_set(e, "rng_uniform: out and keys are required");
    rng_uniform_kernel<<<(n + 255) / 256, 256, 0, (cudaStream_t)stream>>>(out, bits, keys, n);
    CUDA_CHECK(cudaGetLastError(), e);
    return 0;
}
