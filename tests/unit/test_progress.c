/* test_progress.c - the progress line's text, and line mode's output to a file. */
#include "progress.h"
#include "testing.h"

static void formats_rate_eta_and_bar(void **state) {
    char buf[256];
    progress_format(buf, sizeof buf, "step", 0, 12, 200, 6.0, "reward 0.41", 1);
    assert_string_equal(buf, "step 12/200 [#-------------------]   6%  2.00 step/s  ETA 1m34s  reward 0.41");
    progress_format(buf, sizeof buf, "step", 0, 200, 200, 100.0, NULL, 1);
    assert_string_equal(buf, "step 200/200 [####################] 100%  2.00 step/s  in 1m40s");
    /* Slow units read as seconds per unit; unknown totals have no bar or ETA. */
    progress_format(buf, sizeof buf, "step", 0, 3, 0, 30.0, NULL, 1);
    assert_string_equal(buf, "step 3  10.0 s/step  elapsed 30s");
    progress_format(buf, sizeof buf, "row", 0, 0, 10, 0.0, NULL, 0);
    assert_string_equal(buf, "row 0/10   0%");
    /* A resumed run: 150 steps were done before; 10 more in 15 s is 1.5 s/step. */
    progress_format(buf, sizeof buf, "step", 150, 160, 250, 15.0, NULL, 0);
    assert_string_equal(buf, "step 160/250  64%  1.5 s/step  ETA 2m15s");
}

static void durations(void **state) {
    char b[32];
    progress_format_duration(b, sizeof b, 42.2);
    assert_string_equal(b, "42s");
    progress_format_duration(b, sizeof b, 187);
    assert_string_equal(b, "3m07s");
    progress_format_duration(b, sizeof b, 7500);
    assert_string_equal(b, "2h05m");
    progress_format_duration(b, sizeof b, 3 * 86400 + 4 * 3600);
    assert_string_equal(b, "3d04h");
    progress_format_duration(b, sizeof b, -5);
    assert_string_equal(b, "0s");
}

static void lines_mode_prints_plain_lines(void **state) {
    FILE *f = tmpfile();
    progress p;
    progress_start(&p, f, PROGRESS_AUTO, "step", 3); /* a file is not a terminal: lines */
    assert_false(p.bar);
    p.interval = 0; /* every update prints */
    progress_update(&p, 1, "a");
    progress_update(&p, 2, "b");
    progress_finish(&p, "done");
    rewind(f);
    char text[1024] = {0};
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    assert_true(n > 0);
    assert_null(strchr(text, '\r'));
    assert_null(strchr(text, '\033'));
    int lines = 0;
    for (char *c = text; *c; c++) lines += *c == '\n';
    assert_int_equal(lines, 3);
    assert_non_null(strstr(text, "step 2/3"));
    assert_int_equal(progress_mode_parse("lines"), PROGRESS_LINES);
    assert_int_equal(progress_mode_parse("bars"), -1);
}

static void bar_mode_redraws_in_place(void **state) {
    FILE *f = tmpfile();
    progress p;
    progress_start(&p, f, PROGRESS_BAR, "step", 2);
    progress_update(&p, 1, NULL);
    progress_finish(&p, NULL);
    rewind(f);
    char text[1024] = {0};
    assert_true(fread(text, 1, sizeof text - 1, f) > 0);
    fclose(f);
    assert_true(text[0] == '\r');
    assert_non_null(strstr(text, "\033[K"));
    assert_true(text[strlen(text) - 1] == '\n');
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(formats_rate_eta_and_bar),
        cmocka_unit_test(durations),
        cmocka_unit_test(lines_mode_prints_plain_lines),
        cmocka_unit_test(bar_mode_redraws_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
