/* sampler.h - the order in which training prompts are visited: one permutation per
 * epoch, drawn from (seed, epoch) with the counter-based RNG, so the order depends only
 * on the seed, and a run resumed from (epoch, cursor) visits exactly the prompts it
 * would have visited without stopping. */
#ifndef RLVR_SAMPLER_H
#define RLVR_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct ds_sampler {
    size_t n;          /* rows in the dataset */
    uint64_t seed;
    int shuffle;       /* 0: rows in file order every epoch */
    size_t *order;     /* [n] this epoch's permutation */
    int64_t epoch;     /* from 0 */
    size_t cursor;     /* next position in `order` */
} ds_sampler;

int ds_sampler_init(ds_sampler *s, size_t n, uint64_t seed, int shuffle, rlvr_err *e);
void ds_sampler_free(ds_sampler *s);

/* The next k row indices, continuing into the next epoch (a new permutation) when this
 * one runs out. */
void ds_sampler_next(ds_sampler *s, size_t k, size_t *rows);

/* Positions the sampler at (epoch, cursor), as saved in a checkpoint. */
int ds_sampler_seek(ds_sampler *s, int64_t epoch, size_t cursor, rlvr_err *e);

#endif
