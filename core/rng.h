/* rng.h - counter-based random numbers (Philox4x32-10, Salmon et al., SC'11).
 *
 * A draw is a pure function of (key, counter): sampling keys it by (seed, sequence id)
 * and counts by position, so a sample never depends on batch order or batch size, and
 * the GPU path can reproduce the CPU path's numbers exactly. */
#ifndef RLVR_RNG_H
#define RLVR_RNG_H

#include <stdint.h>

/* The raw block function: 4 x 32 random bits for a 128-bit counter and 64-bit key. */
void rng_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* A uniform float in [0, 1) for (seed, stream, position, lane): 24 random mantissa bits. */
float rng_uniform(uint64_t seed, uint64_t stream, uint64_t position, uint32_t lane);

/* A uniform 64-bit integer for (seed, stream, position). */
uint64_t rng_u64(uint64_t seed, uint64_t stream, uint64_t position);

/* An unbiased integer in [0, n) (n > 0), by rejection on successive positions' lanes. */
uint64_t rng_below(uint64_t seed, uint64_t stream, uint64_t position, uint64_t n);

/* A sequential generator over the counter space, for code that draws many numbers
 * (initialization, shuffling): the stream is fixed and the position advances. */
typedef struct rng_stream {
    uint64_t seed, stream, position;
} rng_stream;

void rng_stream_init(rng_stream *r, uint64_t seed, uint64_t stream);
uint64_t rng_stream_u64(rng_stream *r);
uint64_t rng_stream_below(rng_stream *r, uint64_t n);
float rng_stream_uniform(rng_stream *r);
/* A standard normal (Box-Muller on two uniforms). */
float rng_stream_normal(rng_stream *r);

#endif
