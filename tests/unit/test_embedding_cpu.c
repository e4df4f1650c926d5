/* test_embedding_cpu.c - the CPU embedding twin and the row grouping that the GPU's
 * atomic-free embedding backward runs on: adding each group's rows in its order gives
 * embedding_backward's result bit for bit. */
#include <math.h>

#include "testing.h"

#include "cpu_ops.h"
#include "rng.h"

static void test_grouping_matches_backward(void **state) {
    (void)state;
    const int T = 500, C = 9, V = 23;
    rng_stream r;
    rng_stream_init(&r, 11, 0);
    int tokens[500], order[500], starts[501], unique[500];
    float *dout = malloc((size_t)T * C * 4), *a = calloc((size_t)V * C, 4), *b = calloc((size_t)V * C, 4);
    for (int t = 0; t < T; t++) tokens[t] = (int)rng_stream_below(&r, V);
    for (int i = 0; i < T * C; i++) dout[i] = rng_stream_normal(&r);
    embedding_backward(a, dout, tokens, T, C);
    int n = embedding_group_rows(tokens, T, order, starts, unique);
    assert_true(n >= 1 && n <= V);
    assert_int_equal(starts[0], 0);
    assert_int_equal(starts[n], T);
    for (int u = 0; u < n; u++) {
        if (u) assert_true(unique[u] > unique[u - 1]); /* distinct, increasing */
        for (int i = starts[u]; i < starts[u + 1]; i++) {
            assert_int_equal(tokens[order[i]], unique[u]);
            if (i > starts[u]) assert_true(order[i] > order[i - 1]); /* rows in increasing t */
            for (int c = 0; c < C; c++) b[(size_t)unique[u] * C + c] += dout[(size_t)order[i] * C + c];
        }
    }
    assert_memory_equal(a, b, (size_t)V * C * 4);
    /* forward: rows copied */
    float *table = malloc((size_t)V * C * 4), *out = malloc((size_t)T * C * 4);
    for (int i = 0; i < V * C; i++) table[i] = (float)i;
    embedding_forward(out, table, tokens, T, C);
    for (int t = 0; t < T; t++) assert_memory_equal(out + (size_t)t * C, table + (size_t)tokens[t] * C, C * 4);
    free(dout), free(a), free(b), free(table), free(out);
}

static void test_grouping_empty(void **state) {
    (void)state;
    int starts[1];
    assert_int_equal(embedding_group_rows(NULL, 0, NULL, starts, NULL), 0);
    assert_int_equal(starts[0], 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grouping_matches_backward),
        cmocka_unit_test(test_grouping_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
