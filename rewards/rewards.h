/* rewards.h - what a verifier returns and how its parts add up.
 *
 * A reward script returns a number, or a table of named parts ({accuracy = 1,
 * format = 0.2}); with `weights` the parts add up as sum(weight * part), without them
 * as the plain sum. A call that errors or runs out of budget gets a status other than
 * ok, its message, and the configured fallback reward - never a silent 0. */
#ifndef RLVR_REWARDS_H
#define RLVR_REWARDS_H

#include <stddef.h>

typedef enum rw_status { RW_OK = 0, RW_ERROR, RW_TIMEOUT } rw_status;

/* "ok", "error", "timeout": the values of sample_rewards.status in the run store. */
const char *rw_status_name(rw_status s);

typedef struct rw_part {
    const char *name;
    double value;
} rw_part;

/* Combines parts into the reward. `weights` (n_weights entries, may be 0) names the
 * parts that count and their weights; a part with no weight then counts 0, and a weight
 * whose part is missing is an error (returns -1 and names it in *missing). Without
 * weights, the reward is the sum of the parts. Non-finite values are an error too. */
int rw_combine(const rw_part *parts, size_t n_parts, const rw_part *weights, size_t n_weights, double *reward,
               const char **missing);

#endif
