/* test_schedule.c - learning-rate schedules against values worked out by hand from
 * the formulas in rl/schedule.h. */
#include <math.h>

#include "schedule.h"
#include "testing.h"

#define NEAR(a, b) assert_true(fabs((a) - (b)) < 1e-15)

static void constant_with_warmup(void **state) {
    rl_lr_schedule s = {RL_LR_CONSTANT, 1e-3, 4, 100, 0.1};
    NEAR(rl_lr_at(&s, 0), 1e-3 * 1 / 5);
    NEAR(rl_lr_at(&s, 3), 1e-3 * 4 / 5);
    NEAR(rl_lr_at(&s, 4), 1e-3);
    NEAR(rl_lr_at(&s, 99), 1e-3);
    s.warmup = 0;
    NEAR(rl_lr_at(&s, 0), 1e-3);
}

static void cosine_reaches_floor_at_the_last_step(void **state) {
    rl_lr_schedule s = {RL_LR_COSINE, 2e-5, 2, 12, 0.1};
    NEAR(rl_lr_at(&s, 2), 2e-5);                      /* first step after warmup: peak */
    NEAR(rl_lr_at(&s, 11), 2e-6);                     /* last step: the floor */
    /* Half way through the decay (step 2 + 4.5): cos(pi/2) = 0 -> (min + (1-min)/2). */
    rl_lr_schedule t = {RL_LR_COSINE, 1.0, 0, 11, 0.0};
    NEAR(rl_lr_at(&t, 5), 0.5);
    NEAR(rl_lr_at(&t, 10), 0.0);
    NEAR(rl_lr_at(&t, 50), 0.0);                      /* past the end stays at the floor */
    /* Monotone non-increasing after warmup. */
    for (long long k = 3; k < 12; k++) assert_true(rl_lr_at(&s, k) <= rl_lr_at(&s, k - 1));
}

static void parse_names(void **state) {
    assert_int_equal(rl_lr_kind_parse("constant"), RL_LR_CONSTANT);
    assert_int_equal(rl_lr_kind_parse("cosine"), RL_LR_COSINE);
    assert_int_equal(rl_lr_kind_parse("linear"), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(constant_with_warmup),
        cmocka_unit_test(cosine_reaches_floor_at_the_last_step),
        cmocka_unit_test(parse_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
