/* rng.c - Philox4x32-10 and what is built on it. The constants and round structure
 * follow Random123 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as
 * 1, 2, 3", SC'11); the known-answer vectors in tests/unit/test_rng.c come from there. */
#include "rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

static void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void rng_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

/* Key = seed; counter = (position lo, position hi, stream lo, stream hi). */
static void block(uint64_t seed, uint64_t stream, uint64_t position, uint32_t out[4]) {
    uint32_t ctr[4] = {(uint32_t)position, (uint32_t)(position >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    rng_philox4x32(ctr, key, out);
}

float rng_uniform(uint64_t seed, uint64_t stream, uint64_t position, uint32_t lane) {
    uint32_t r[4];
    block(seed, stream, position, r);
    return (float)(r[lane & 3] >> 8) * (1.0f / 16777216.0f);
}

uint64_t rng_u64(uint64_t seed, uint64_t stream, uint64_t position) {
    uint32_t r[4];
    block(seed, stream, position, r);
    return ((uint64_t)r[0] << 32) | r[1];
}

uint64_t rng_below(uint64_t seed, uint64_t stream, uint64_t position, uint64_t n) {
    /* Reject the top partial range so every value is equally likely. Each retry uses a
     * fresh counter in a sub-space of this position (high bit of the stream word). */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (uint64_t attempt = 0;; attempt++) {
        uint64_t x = attempt == 0 ? rng_u64(seed, stream, position)
                                  : rng_u64(seed ^ (attempt * 0x9E3779B97F4A7C15ull), stream, position);
        if (x < limit) return x % n;
    }
}

void rng_stream_init(rng_stream *r, uint64_t seed, uint64_t stream) {
    r->seed = seed;
    r->stream = stream;
    r->position = 0;
}

uint64_t rng_stream_u64(rng_stream *r) { return rng_u64(r->seed, r->stream, r->position++); }

uint64_t rng_stream_below(rng_stream *r, uint64_t n) { return rng_below(r->seed, r->stream, r->position++, n); }

float rng_stream_uniform(rng_stream *r) { return rng_uniform(r->seed, r->stream, r->position++, 0); }

float rng_stream_normal(rng_stream *r) {
    uint32_t out[4];
    block(r->seed, r->stream, r->position++, out);
    /* u1 in (0, 1] so log(u1) is finite. */
    double u1 = ((double)(out[0] >> 8) + 1.0) / 16777216.0;
    double u2 = (double)(out[1] >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
