/* test_cli.c - option parsing: values, flags, repeats, and the errors that name the option. */
#include "cli.h"
#include "testing.h"

static const cli_opt OPTS[] = {
    {"db", "PATH", "run database", 0},
    {"set", "KEY=VALUE", "override", 1},
    {"dry-run", NULL, "print and stop", 0},
    {"steps", "N", "steps", 0},
};
#define N_OPTS (int)(sizeof OPTS / sizeof OPTS[0])

static int parse(cli_args *a, rlvr_err *e, int argc, char **argv) {
    return cli_parse(a, "train", OPTS, N_OPTS, 1, argc, argv, e);
}

static void values_flags_and_positionals(void **state) {
    char *argv[] = {"cfg.lua", "--db", "x.db", "--set", "a=1", "--dry-run", "--set=b.c=2", "--steps=7"};
    cli_args a;
    rlvr_err e = {{0}};
    assert_int_equal(parse(&a, &e, 8, argv), 0);
    assert_int_equal(a.n_pos, 1);
    assert_string_equal(a.pos[0], "cfg.lua");
    assert_string_equal(cli_get(&a, "db"), "x.db");
    assert_true(cli_has(&a, "dry-run"));
    assert_string_equal(cli_nth(&a, "set", 0), "a=1");
    assert_string_equal(cli_nth(&a, "set", 1), "b.c=2");
    assert_null(cli_nth(&a, "set", 2));
    long long steps;
    assert_int_equal(cli_int(&a, "steps", 0, &steps, &e), 0);
    assert_int_equal(steps, 7);
    assert_null(cli_get(&a, "nothing"));
}

static void unknown_option_suggests(void **state) {
    char *argv[] = {"--dryrun"};
    cli_args a;
    rlvr_err e = {{0}};
    assert_int_equal(parse(&a, &e, 1, argv), -1);
    assert_string_equal(e.msg, "train: unknown option '--dryrun' (did you mean '--dry-run'?)");
    char *argv2[] = {"--zzzzzz=1"};
    assert_int_equal(parse(&a, &e, 1, argv2), -1);
    assert_string_equal(e.msg, "train: unknown option '--zzzzzz' (see 'rlvr train --help')");
}

static void missing_value_names_the_option(void **state) {
    char *argv[] = {"--db"};
    cli_args a;
    rlvr_err e = {{0}};
    assert_int_equal(parse(&a, &e, 1, argv), -1);
    assert_string_equal(e.msg, "train: option '--db' needs a value (PATH)");
}

static void flag_with_value_and_repeats_are_errors(void **state) {
    cli_args a;
    rlvr_err e = {{0}};
    char *argv[] = {"--dry-run=yes"};
    assert_int_equal(parse(&a, &e, 1, argv), -1);
    assert_string_equal(e.msg, "train: option '--dry-run' takes no value");
    char *argv2[] = {"--db", "a", "--db", "b"};
    assert_int_equal(parse(&a, &e, 4, argv2), -1);
    assert_string_equal(e.msg, "train: option '--db' given twice");
    char *argv3[] = {"a.lua", "b.lua"};
    assert_int_equal(parse(&a, &e, 2, argv3), -1);
    assert_string_equal(e.msg, "train: unexpected argument 'b.lua' (see 'rlvr train --help')");
    char *argv4[] = {"-x"};
    assert_int_equal(parse(&a, &e, 1, argv4), -1);
    assert_non_null(strstr(e.msg, "'-x'"));
}

static void double_dash_ends_options(void **state) {
    char *argv[] = {"--", "--db"};
    cli_args a;
    rlvr_err e = {{0}};
    assert_int_equal(parse(&a, &e, 2, argv), 0);
    assert_int_equal(a.n_pos, 1);
    assert_string_equal(a.pos[0], "--db");
}

static void numbers_are_strict(void **state) {
    char *argv[] = {"--steps", "12x"};
    cli_args a;
    rlvr_err e = {{0}};
    assert_int_equal(parse(&a, &e, 2, argv), 0);
    long long v;
    assert_int_equal(cli_int(&a, "steps", 0, &v, &e), -1);
    assert_string_equal(e.msg, "option '--steps': expected an integer, got '12x'");
    double d;
    assert_int_equal(cli_num(&a, "steps", 0, &d, &e), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_flags_and_positionals), cmocka_unit_test(unknown_option_suggests),
        cmocka_unit_test(missing_value_names_the_option), cmocka_unit_test(flag_with_value_and_repeats_are_errors),
        cmocka_unit_test(double_dash_ends_options), cmocka_unit_test(numbers_are_strict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
