/* test_rewards_combine.c - how named reward parts add up. */
#include <math.h>

#include "rewards.h"
#include "testing.h"

static void sum_without_weights(void **state) {
    rw_part parts[] = {{"accuracy", 1.0}, {"format", 0.5}};
    double r;
    const char *missing;
    assert_int_equal(rw_combine(parts, 2, NULL, 0, &r, &missing), 0);
    assert_true(r == 1.5);
    assert_int_equal(rw_combine(parts, 0, NULL, 0, &r, &missing), 0);
    assert_true(r == 0.0);
}

static void weighted_sum_counts_only_weighted_parts(void **state) {
    rw_part parts[] = {{"accuracy", 1.0}, {"format", 1.0}, {"length", -3.0}};
    rw_part weights[] = {{"accuracy", 1.0}, {"format", 0.2}};
    double r;
    const char *missing;
    assert_int_equal(rw_combine(parts, 3, weights, 2, &r, &missing), 0);
    assert_true(fabs(r - 1.2) < 1e-12);
}

static void missing_part_and_nan_are_errors(void **state) {
    rw_part parts[] = {{"accuracy", 1.0}};
    rw_part weights[] = {{"accuracy", 1.0}, {"format", 0.2}};
    double r = 7;
    const char *missing;
    assert_int_equal(rw_combine(parts, 1, weights, 2, &r, &missing), -1);
    assert_string_equal(missing, "format");
    rw_part bad[] = {{"accuracy", NAN}};
    assert_int_equal(rw_combine(bad, 1, NULL, 0, &r, &missing), -1);
    assert_string_equal(missing, "accuracy");
    assert_string_equal(rw_status_name(RW_OK), "ok");
    assert_string_equal(rw_status_name(RW_ERROR), "error");
    assert_string_equal(rw_status_name(RW_TIMEOUT), "timeout");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sum_without_weights),
        cmocka_unit_test(weighted_sum_counts_only_weighted_parts),
        cmocka_unit_test(missing_part_and_nan_are_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
