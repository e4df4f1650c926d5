/* arith.h - synthetic arithmetic word problems with a known answer.
 *
 * The task of rlvr's embedded default run: small enough that a tiny model learns it on
 * a CPU in minutes, with a checkable final answer. Problems are a pure function of
 * (seed, index), so the training and held-out sets are reproducible and disjoint
 * (held-out problems are drawn from a separate stream and any that also occur in the
 * training set are skipped). */
#ifndef RLVR_ARITH_H
#define RLVR_ARITH_H

#include <stdint.h>

#include "err.h"

typedef struct arith_params {
    int min_digits, max_digits; /* operand sizes, 1..18 */
    int terms;                  /* operands per problem, 2..8 */
    const char *ops;            /* operators to draw from: any of "+-*" */
} arith_params;

typedef struct arith_problem {
    char prompt[512];   /* the word problem */
    char expr[256];     /* "12 + 7 * 3" */
    char answer[32];    /* "33" */
    char solution[768]; /* worked solution: "<think>\n...\n</think>\n\\boxed{33}" */
} arith_problem;

/* Checks the parameters; the message names the offending config key. */
int arith_check(const arith_params *p, rlvr_err *e);

/* Problem `index` of stream `stream` for `seed`. Multiplication binds tighter than
 * + and -, as in ordinary arithmetic; values stay within int64 (operand size is capped
 * so products of `terms` operands cannot overflow). */
void arith_generate(const arith_params *p, uint64_t seed, uint64_t stream, uint64_t index, arith_problem *out);

#endif
