/* test_rng.c - Philox4x32-10 against Random123's known-answer vectors, and the
 * properties sampling relies on (keyed draws, uniformity, unbiased ranges). */
#include <math.h>

#include "rng.h"
#include "testing.h"

static void philox_known_answers(void **state) {
    /* Random123 tests/kat_vectors, philox4x32 with 10 rounds. */
    static const uint32_t cases[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6,
         0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420,
         0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        rng_philox4x32(cases[i], cases[i] + 4, out);
        for (int k = 0; k < 4; k++) assert_int_equal(out[k], cases[i][6 + k]);
    }
}

static void draws_are_pure_functions_of_their_key(void **state) {
    /* The same (seed, stream, position) gives the same number whatever was drawn before. */
    float a = rng_uniform(7, 3, 11, 0);
    for (int i = 0; i < 100; i++) (void)rng_uniform(7, (uint64_t)i, (uint64_t)i, 0);
    assert_true(rng_uniform(7, 3, 11, 0) == a);
    assert_true(rng_uniform(7, 3, 12, 0) != a);
    assert_true(rng_uniform(8, 3, 11, 0) != a);
    assert_true(rng_uniform(7, 4, 11, 0) != a);
}

static void uniform_moments(void **state) {
    const int n = 200000;
    double sum = 0, sum2 = 0;
    int bins[10] = {0};
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(1, 2, (uint64_t)i, (uint32_t)i);
        assert_true(u >= 0.0f && u < 1.0f);
        sum += u;
        sum2 += (double)u * u;
        bins[(int)(u * 10)]++;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    assert_true(fabs(mean - 0.5) < 0.005);
    assert_true(fabs(var - 1.0 / 12) < 0.002);
    for (int b = 0; b < 10; b++) assert_true(abs(bins[b] - n / 10) < n / 100); /* within 10% */
}

static void below_is_in_range_and_covers_it(void **state) {
    int seen[7] = {0};
    for (uint64_t i = 0; i < 7000; i++) {
        uint64_t x = rng_below(5, 0, i, 7);
        assert_true(x < 7);
        seen[x]++;
    }
    for (int k = 0; k < 7; k++) assert_true(seen[k] > 800 && seen[k] < 1200);
    assert_int_equal(rng_below(5, 0, 0, 1), 0);
}

static void stream_normal_moments(void **state) {
    rng_stream r;
    rng_stream_init(&r, 42, 9);
    const int n = 100000;
    double sum = 0, sum2 = 0;
    for (int i = 0; i < n; i++) {
        double x = rng_stream_normal(&r);
        assert_true(isfinite(x));
        sum += x;
        sum2 += x * x;
    }
    assert_true(fabs(sum / n) < 0.02);
    assert_true(fabs(sum2 / n - 1.0) < 0.02);
    assert_int_equal(r.position, (uint64_t)n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(philox_known_answers), cmocka_unit_test(draws_are_pure_functions_of_their_key),
        cmocka_unit_test(uniform_moments), cmocka_unit_test(below_is_in_range_and_covers_it),
        cmocka_unit_test(stream_normal_moments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
