/* sampling.h - choosing the next token from logits, and the plain decoding loop of the
 * CPU reference (batched, KV cache, stop tokens, max new tokens).
 *
 * Every random draw is rng_uniform(seed, sequence id, position, 0): a sample depends on
 * its own (seed, sequence, position) only, never on which other sequences share the
 * batch or in which order. */
#ifndef RLVR_SAMPLING_H
#define RLVR_SAMPLING_H

#include <stdint.h>

#include "err.h"
#include "model.h"
#include "rollout.h"

typedef struct sample_params {
    float temperature; /* 0: greedy (argmax, lowest id on ties) */
    int top_k;         /* keep the k most likely tokens; 0: off */
    float top_p;       /* keep the smallest most-likely set with probability >= top_p; 1: off */
    float min_p;       /* keep tokens with p >= min_p * p_max; 0: off */
} sample_params;

/* Checks ranges: temperature >= 0, top_k >= 0, 0 < top_p <= 1, 0 <= min_p <= 1. */
int sample_params_check(const sample_params *p, rlvr_err *e);

/* Scratch for one vocabulary width (no allocation per token). */
typedef struct sampler {
    int vocab;
    float *prob;  /* [V] */
    int *order;   /* [V] */
    uint8_t *keep; /* [V] */
} sampler;

int sample_init(sampler *s, int vocab, rlvr_err *e);
void sample_free(sampler *s);

/* Draws a token from logits[V]: temperature, then top-k, top-p and min-p filters, then one
 * uniform draw keyed by (seed, seq_id, position) walked over the kept tokens in id order.
 * *logp (may be NULL) is the log-probability of the token under the distribution it was
 * drawn from (0 for greedy). */
int sample_next(sampler *s, const float *logits, const sample_params *p, uint64_t seed, uint64_t seq_id,
                uint64_t position, float *logp);

/* One sequence to generate: the prompt and what comes back. */
typedef struct sample_seq {
    const int *prompt;
    int n_prompt;
    uint64_t seq_id; /* keys the random draws (with the seed and the position) */
    int *out;        /* [max_new] generated tokens (the stop token included) */
    float *out_logp; /* [max_new] their sampling log-probabilities (may be NULL) */
    int n_out;
    rollout_finish finish;
} sample_seq;

typedef struct sample_gen_opts {
    sample_params params;
    uint64_t seed;
    int max_new;
    const int *stop_ids; /* a sampled stop id ends its sequence (and is kept in out) */
    int n_stop;
    int batch; /* sequences decoded together; 0: all */
} sample_gen_opts;

/* Generates every sequence with the model on the CPU: the prompts run forward together,
 * then one token per unfinished sequence per step. */
int sample_generate(model *m, sample_seq *seqs, int n, const sample_gen_opts *o, rlvr_err *e);

#endif
