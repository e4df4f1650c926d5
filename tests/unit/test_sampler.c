/* test_sampler.c - epochs are permutations, the order depends only on the seed, and a
 * sampler sought to a saved (epoch, cursor) continues exactly as the original. */
#include "datasets.h"
#include "testing.h"

static void each_epoch_is_a_permutation(void **state) {
    ds_sampler s;
    rlvr_err e = {{0}};
    assert_int_equal(ds_sampler_init(&s, 97, 5, 1, &e), 0);
    size_t rows[97 * 3];
    ds_sampler_next(&s, 97 * 3, rows);
    for (int ep = 0; ep < 3; ep++) {
        int seen[97] = {0};
        for (int i = 0; i < 97; i++) seen[rows[ep * 97 + i]]++;
        for (int i = 0; i < 97; i++) assert_int_equal(seen[i], 1);
    }
    /* Epochs are shuffled differently, and not left in file order. */
    assert_memory_not_equal(rows, rows + 97, 97 * sizeof rows[0]);
    int in_order = 0;
    for (int i = 0; i < 97; i++) in_order += rows[i] == (size_t)i;
    assert_true(in_order < 20);
    assert_int_equal(s.epoch, 2);
    ds_sampler_free(&s);
}

static void same_seed_same_order_other_seed_other_order(void **state) {
    ds_sampler a, b, c;
    rlvr_err e = {{0}};
    ds_sampler_init(&a, 50, 1, 1, &e);
    ds_sampler_init(&b, 50, 1, 1, &e);
    ds_sampler_init(&c, 50, 2, 1, &e);
    size_t ra[120], rb[120], rc[120];
    /* Drawn in different chunk sizes: the sequence must not depend on them. */
    for (int i = 0; i < 120; i += 7) ds_sampler_next(&a, i + 7 <= 120 ? 7 : (size_t)(120 - i), ra + i);
    ds_sampler_next(&b, 120, rb);
    ds_sampler_next(&c, 120, rc);
    assert_memory_equal(ra, rb, sizeof ra);
    assert_memory_not_equal(ra, rc, sizeof ra);
    ds_sampler_free(&a), ds_sampler_free(&b), ds_sampler_free(&c);
}

static void seek_resumes_exactly(void **state) {
    ds_sampler a, b;
    rlvr_err e = {{0}};
    ds_sampler_init(&a, 33, 9, 1, &e);
    size_t first[70], rest_a[50], rest_b[50];
    ds_sampler_next(&a, 70, first); /* into the third epoch */
    int64_t epoch = a.epoch;
    size_t cursor = a.cursor;
    ds_sampler_next(&a, 50, rest_a);
    ds_sampler_init(&b, 33, 9, 1, &e);
    assert_int_equal(ds_sampler_seek(&b, epoch, cursor, &e), 0);
    ds_sampler_next(&b, 50, rest_b);
    assert_memory_equal(rest_a, rest_b, sizeof rest_a);
    assert_int_equal(ds_sampler_seek(&b, 0, 34, &e), -1);
    assert_non_null(strstr(e.msg, "outside a dataset of 33 rows"));
    ds_sampler_free(&a), ds_sampler_free(&b);
}

static void no_shuffle_is_file_order(void **state) {
    ds_sampler s;
    rlvr_err e = {{0}};
    ds_sampler_init(&s, 4, 1, 0, &e);
    size_t rows[10];
    ds_sampler_next(&s, 10, rows);
    size_t want[10] = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1};
    assert_memory_equal(rows, want, sizeof want);
    ds_sampler_free(&s);
    assert_int_equal(ds_sampler_init(&s, 0, 1, 1, &e), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_epoch_is_a_permutation),
        cmocka_unit_test(same_seed_same_order_other_seed_other_order),
        cmocka_unit_test(seek_resumes_exactly),
        cmocka_unit_test(no_shuffle_is_file_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
