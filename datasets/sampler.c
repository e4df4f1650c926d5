/* sampler.c - per-epoch permutations by Fisher-Yates on a Philox stream keyed by the
 * epoch. */
#include "sampler.h"

#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* Streams 1<<48 and up are the sampler's, clear of the arithmetic generator's. */
#define SAMPLER_STREAM (1ull << 48)

static void make_order(ds_sampler *s) {
    for (size_t i = 0; i < s->n; i++) s->order[i] = i;
    if (!s->shuffle) return;
    rng_stream r;
    rng_stream_init(&r, s->seed, SAMPLER_STREAM + (uint64_t)s->epoch);
    for (size_t i = s->n; i > 1; i--) {
        size_t j = (size_t)rng_stream_below(&r, i);
        size_t t = s->order[i - 1];
        s->order[i - 1] = s->order[j];
        s->order[j] = t;
    }
}

int ds_sampler_init(ds_sampler *s, size_t n, uint64_t seed, int shuffle, rlvr_err *e) {
    memset(s, 0, sizeof *s);
    if (n == 0) return err_set(e, "the training set is empty");
    s->order = malloc(n * sizeof *s->order);
    if (!s->order) return err_set(e, "out of memory for %zu rows", n);
    s->n = n;
    s->seed = seed;
    s->shuffle = shuffle;
    make_order(s);
    return 0;
}

void ds_sampler_free(ds_sampler *s) {
    free(s->order);
    memset(s, 0, sizeof *s);
}

void ds_sampler_next(ds_sampler *s, size_t k, size_t *rows) {
    for (size_t i = 0; i < k; i++) {
        if (s->cursor == s->n) {
            s->epoch++;
            s->cursor = 0;
            make_order(s);
        }
        rows[i] = s->order[s->cursor++];
    }
}

int ds_sampler_seek(ds_sampler *s, int64_t epoch, size_t cursor, rlvr_err *e) {
    if (epoch < 0 || cursor > s->n)
        return err_set(e, "data cursor (epoch %lld, position %zu) is outside a dataset of %zu rows", (long long)epoch,
                       cursor, s->n);
    s->epoch = epoch;
    s->cursor = cursor;
    make_order(s);
    return 0;
}
