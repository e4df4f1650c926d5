/* arith.c - synthetic arithmetic problems, deterministic in (seed, stream, index). */
#include "arith.h"

#include <stdio.h>
#include <string.h>

#include "rng.h"

int arith_check(const arith_params *p, rlvr_err *e) {
    if (p->min_digits < 1 || p->max_digits > 18 || p->min_digits > p->max_digits)
        return err_set(e, "data.arith: min_digits (%d) and max_digits (%d) must satisfy 1 <= min <= max <= 18",
                       p->min_digits, p->max_digits);
    if (p->terms < 2 || p->terms > 8) return err_set(e, "data.arith.terms: expected 2..8, got %d", p->terms);
    if (!p->ops || !*p->ops) return err_set(e, "data.arith.ops: give at least one of '+', '-', '*'");
    for (const char *o = p->ops; *o; o++)
        if (*o != '+' && *o != '-' && *o != '*')
            return err_set(e, "data.arith.ops: '%c' is not an operator (use any of '+', '-', '*')", *o);
    return 0;
}

static const char *const NAMES[] = {"Ava", "Ben", "Chen", "Dana", "Eli", "Farah", "Gus", "Hana", "Ivan", "Jo"};
static const char *const ITEMS[] = {"apple", "book", "coin", "marble", "pencil", "stamp", "shell", "card"};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int64_t pow10i(int d) {
    int64_t p = 1;
    while (d-- > 0) p *= 10;
    return p;
}

/* Evaluates v[0] op[0] v[1] ... with * before + and -, writing each intermediate result
 * as a line of the worked solution. Returns 0, or -1 if a product would overflow. */
static int evaluate(const int64_t *v, const char *op, int n, int64_t *result, char *steps, size_t cap) {
    int64_t vals[8];
    char ops[8];
    int m = 0;
    size_t used = 0;
    steps[0] = 0;
    vals[0] = v[0];
    for (int i = 1; i < n; i++) {
        if (op[i - 1] == '*') {
            int64_t prod;
            if (__builtin_mul_overflow(vals[m], v[i], &prod)) return -1;
            used += (size_t)snprintf(steps + used, used < cap ? cap - used : 0, "%lld * %lld = %lld\n",
                                     (long long)vals[m], (long long)v[i], (long long)prod);
            vals[m] = prod;
        } else {
            ops[m] = op[i - 1];
            vals[++m] = v[i];
        }
    }
    int64_t acc = vals[0];
    for (int i = 0; i < m; i++) {
        int64_t next;
        if (ops[i] == '+' ? __builtin_add_overflow(acc, vals[i + 1], &next)
                          : __builtin_sub_overflow(acc, vals[i + 1], &next))
            return -1;
        used += (size_t)snprintf(steps + used, used < cap ? cap - used : 0, "%lld %c %lld = %lld\n", (long long)acc,
                                 ops[i], (long long)vals[i + 1], (long long)next);
        acc = next;
    }
    *result = acc;
    return 0;
}

void arith_generate(const arith_params *p, uint64_t seed, uint64_t stream, uint64_t index, arith_problem *out) {
    /* Every problem has its own counter space: stream (train/eval) x index. */
    rng_stream r;
    rng_stream_init(&r, seed, (stream << 40) ^ index);
    int n = p->terms;
    int64_t v[8] = {0};
    char op[8];
    size_t n_ops = strlen(p->ops);
    for (int i = 0; i < n; i++) {
        int d = p->min_digits + (int)rng_stream_below(&r, (uint64_t)(p->max_digits - p->min_digits + 1));
        int64_t lo = d == 1 ? 0 : pow10i(d - 1), hi = pow10i(d) - 1;
        v[i] = lo + (int64_t)rng_stream_below(&r, (uint64_t)(hi - lo + 1));
        if (i > 0) op[i - 1] = p->ops[rng_stream_below(&r, n_ops)];
    }
    /* Two-term subtraction stories read badly with a negative result: order the operands. */
    if (n == 2 && op[0] == '-' && v[0] < v[1]) {
        int64_t t = v[0];
        v[0] = v[1];
        v[1] = t;
    }
    int64_t result;
    char steps[512];
    while (evaluate(v, op, n, &result, steps, sizeof steps) != 0) {
        /* A product would overflow int64: turn the first '*' into '+' and retry. */
        for (int i = 0; i < n - 1; i++)
            if (op[i] == '*') {
                op[i] = '+';
                break;
            }
    }
    size_t used = (size_t)snprintf(out->expr, sizeof out->expr, "%lld", (long long)v[0]);
    for (int i = 1; i < n; i++)
        used += (size_t)snprintf(out->expr + used, sizeof out->expr - used, " %c %lld", op[i - 1], (long long)v[i]);
    snprintf(out->answer, sizeof out->answer, "%lld", (long long)result);

    const char *who = NAMES[rng_stream_below(&r, COUNT(NAMES))];
    const char *item = ITEMS[rng_stream_below(&r, COUNT(ITEMS))];
    uint64_t style = rng_stream_below(&r, 2);
    if (n == 2 && style == 0 && op[0] == '+')
        snprintf(out->prompt, sizeof out->prompt, "%s has %lld %ss and gets %lld more. How many %ss does %s have now?",
                 who, (long long)v[0], item, (long long)v[1], item, who);
    else if (n == 2 && style == 0 && op[0] == '-')
        snprintf(out->prompt, sizeof out->prompt, "%s has %lld %ss and gives away %lld. How many %ss are left?", who,
                 (long long)v[0], item, (long long)v[1], item);
    else if (n == 2 && style == 0 && op[0] == '*')
        snprintf(out->prompt, sizeof out->prompt, "%s buys %lld boxes with %lld %ss in each. How many %ss is that?",
                 who, (long long)v[0], (long long)v[1], item, item);
    else
        snprintf(out->prompt, sizeof out->prompt, "What is %s?", out->expr);
    snprintf(out->solution, sizeof out->solution, "<think>\n%s</think>\n\\boxed{%s}", steps, out->answer);
}
