/* test_config.c - config loading, validation messages, --set, cross-key rules, the
 * resolved-config round trip, and the Lua sandbox a config runs in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

static char tmpdir[1024];

/* Writes `text` to tmpdir/name (sub-folders created); returns the path (static). */
static const char *put(const char *name, const char *text) {
    static char path[2][2048];
    static int which;
    which ^= 1;
    snprintf(path[which], sizeof path[which], "%s/%s", tmpdir, name);
    char *dir = util_dirname(path[which]);
    rlvr_err e;
    assert_int_equal(util_mkdir_p(dir, &e), 0);
    free(dir);
    FILE *f = fopen(path[which], "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path[which];
}

static int setup(void **state) {
    (void)state;
    const char *base = getenv("RLVR_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_config.%ld", base && *base ? base : "/tmp", (long)getpid());
    rlvr_err e;
    return util_mkdir_p(tmpdir, &e);
}

/* Loads `text` as file `name` into a fresh default config; returns the result and
 * leaves the message in e. */
static int load_text(rlvr_config *c, const char *name, const char *text, rlvr_err *e) {
    assert_int_equal(config_init(c, e), 0);
    memset(e->msg, 0, sizeof e->msg);
    return config_load_file(c, put(name, text), e);
}

/* Expects loading `text` to fail with exactly "<path>: <tail>" or "<path>:<line>: <tail>". */
static void expect_error(const char *name, const char *text, int line, const char *tail) {
    rlvr_config c;
    rlvr_err e;
    int rc = load_text(&c, name, text, &e);
    char want[3000];
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    if (line > 0) snprintf(want, sizeof want, "%s:%d: %s", path, line, tail);
    else snprintf(want, sizeof want, "%s: %s", path, tail);
    if (rc == 0 || strcmp(e.msg, want) != 0) print_error("want: %s\n got: %s (rc %d)\n", want, e.msg, rc);
    assert_int_equal(rc, -1);
    assert_string_equal(e.msg, want);
    config_free(&c);
}

/* Expects the load to fail with a message containing `part`. */
static void expect_error_part(const char *name, const char *text, const char *part) {
    rlvr_config c;
    rlvr_err e;
    int rc = load_text(&c, name, text, &e);
    if (rc == 0 || !strstr(e.msg, part)) print_error("want part: %s\n got: %s (rc %d)\n", part, e.msg, rc);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(e.msg, part));
    config_free(&c);
}

/* ---- defaults and schema ----------------------------------------------------------- */

static void test_defaults(void **state) {
    (void)state;
    rlvr_config c;
    rlvr_err e;
    assert_int_equal(config_init(&c, &e), 0);
    assert_string_equal(c.name, "arith-grpo");
    assert_int_equal(c.seed, 1);
    assert_string_equal(c.device, "cpu");
    assert_int_equal(c.steps, 200);
    assert_true(c.learning_rate == 1e-5);
    assert_true(c.rollout_top_p == 1.0);
    assert_int_equal(c.rollout_group_size, 8);
    assert_int_equal(c.data_shuffle, 1);
    assert_int_equal(c.algo_kl_in_reward, 0);
    assert_string_equal(c.data_arith_ops, "+-*");
    assert_string_equal(c.model_path, "");
    assert_int_equal(c.rollout_stop.n, 0);
    assert_null(c.source_path);
    assert_int_equal(config_check(&c, &e), 0);
    config_free(&c);
}

static void test_schema(void **state) {
    (void)state;
    size_t n;
    const cfg_key *k = config_schema(&n);
    assert_true(n > 50);
    assert_string_equal(k[0].path, "name");
    for (size_t i = 0; i < n; i++) {
        /* Every dotted key's parent is a declared section, declared before it. */
        const char *dot = strrchr(k[i].path, '.');
        if (!dot) continue;
        int found = 0;
        for (size_t j = 0; j < i && !found; j++)
            found = k[j].type == CFG_T_SECTION && strlen(k[j].path) == (size_t)(dot - k[i].path) &&
                    strncmp(k[j].path, k[i].path, (size_t)(dot - k[i].path)) == 0;
        if (!found) print_error("no section for %s\n", k[i].path);
        assert_true(found);
        assert_non_null(k[i].doc);
        assert_null(strchr(k[i].doc, '\n'));
    }
}

/* ---- loading --------------------------------------------------------------------- */

static void test_load_overrides_exactly_given_keys(void **state) {
    (void)state;
    rlvr_config c, want;
    rlvr_err e;
    int rc = load_text(&c, "valid.lua",
                       "-- a small run\n"
                       "local lr = 2e-5\n"
                       "return {\n"
                       "  name = 'small',\n"
                       "  learning_rate = lr,\n"
                       "  steps = 1e3,\n"
                       "  rollout = { temperature = 0.7, stop = {\"</answer>\", \"\\n\\n\"} },\n"
                       "  model = { init = { heads = 8, kv_heads = 4 } },\n"
                       "  data = { shuffle = false },\n"
                       "}\n",
                       &e);
    if (rc) print_error("%s\n", e.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(config_init(&want, &e), 0);
    free(want.name);
    want.name = util_strdup("small");
    want.learning_rate = 2e-5;
    want.steps = 1000;
    want.rollout_temperature = 0.7;
    want.model_init_heads = 8;
    want.model_init_kv_heads = 4;
    want.data_shuffle = 0;
    assert_int_equal(c.rollout_stop.n, 2);
    assert_string_equal(c.rollout_stop.v[0], "</answer>");
    assert_string_equal(c.rollout_stop.v[1], "\n\n");
    assert_string_equal(config_diff(&c, &want), "rollout.stop"); /* the only other difference */
    assert_non_null(c.source_path);
    assert_non_null(strstr(c.source_path, "valid.lua"));
    config_free(&want);
    config_free(&c);
}

static void test_load_applies_over_current(void **state) {
    (void)state;
    rlvr_config c;
    rlvr_err e;
    assert_int_equal(config_init(&c, &e), 0);
    assert_int_equal(config_set(&c, "steps=77", &e), 0);
    assert_int_equal(config_load_file(&c, put("over.lua", "return { seed = 5 }"), &e), 0);
    assert_int_equal(c.steps, 77);
    assert_int_equal(c.seed, 5);
    /* A failed load leaves every value as it was. */
    assert_int_equal(config_load_file(&c, put("half.lua", "return { seed = 9, steps = 'x' }"), &e), -1);
    assert_int_equal(c.seed, 5);
    assert_int_equal(c.steps, 77);
    config_free(&c);
}

static void test_require_sibling_and_merge(void **state) {
    (void)state;
    put("req/base.lua", "return { steps = 10, rollout = { group_size = 4, temperature = 0.5 } }\n");
    put("req/presets/small.lua", "return { hidden = 32 }\n");
    rlvr_config c;
    rlvr_err e;
    int rc = load_text(&c, "req/main.lua",
                       "local cfg = require 'rlvr.config'\n"
                       "local base = require 'base'\n"
                       "assert(require 'base' == base, 'modules are cached')\n"
                       "local small = require 'presets.small'\n"
                       "return cfg.merge(base, { rollout = { temperature = 0.9 }, model = { init = small } })\n",
                       &e);
    if (rc) print_error("%s\n", e.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(c.steps, 10);
    assert_int_equal(c.rollout_group_size, 4);
    assert_true(c.rollout_temperature == 0.9);
    assert_int_equal(c.model_init_hidden, 32);
    config_free(&c);
}

static void test_require_errors(void **state) {
    (void)state;
    put("cyc/a.lua", "return require 'b'\n");
    put("cyc/b.lua", "return require 'a'\n");
    expect_error_part("cyc/main.lua", "require 'a'\nreturn {}\n", "require cycle: a -> b -> a");
    expect_error_part("up.lua", "local x = require '../x'\nreturn {}\n", "require '../x': not a module name");
    expect_error_part("slash.lua", "local x = require 'a/b'\nreturn {}\n", "require 'a/b': not a module name");
    char want[2200];
    snprintf(want, sizeof want, "module 'nope' not found: looked in %s/nope.lua and rlvr's modules", tmpdir);
    expect_error_part("nf.lua", "local x = require 'nope'\nreturn {}\n", want);
    /* An error inside a required file names that file and line. */
    put("rerr/broken.lua", "local x = 1\nerror('in module')\n");
    expect_error_part("rerr/main.lua", "require 'broken'\nreturn {}\n", "rerr/broken.lua:2: in module");
}

static void test_lua_errors_carry_file_and_line(void **state) {
    (void)state;
    expect_error_part("bad.lua", "return {\n  steps = 1,\n  seed = = 2,\n}\n", "bad.lua:3:");
    expect_error("boom.lua", "local x = 1\nerror('boom')\nreturn {}\n", 2, "boom");
    expect_error("noline.lua", "error('plain', 0)\n", 0, "plain");
    expect_error("nt.lua", "return 42\n", 0, "must return a table, got a number");
    expect_error("nil.lua", "local x = 1\n", 0, "must return a table, got nil");
    /* Not double-prefixed. */
    rlvr_config c;
    rlvr_err e;
    assert_int_equal(load_text(&c, "once.lua", "error('x')\n", &e), -1);
    assert_null(strstr(strstr(e.msg, "once.lua") + 1, "once.lua"));
    config_free(&c);
    assert_int_equal(config_init(&c, &e), 0);
    assert_int_equal(config_load_file(&c, "/nonexistent/dir/x.lua", &e), -1);
    assert_non_null(strstr(e.msg, "/nonexistent/dir/x.lua"));
    config_free(&c);
}

static void test_long_paths_are_not_shortened(void **state) {
    (void)state;
    char name[400];
    snprintf(name, sizeof name, "%s/%s", "a_rather_long_folder_name_so_that_lua_would_shorten_it_to_dots",
             "and_another_long_one/cfg.lua");
    char want[2200];
    snprintf(want, sizeof want, "%s/%s:2:", tmpdir, name);
    expect_error_part(name, "return {\n  steps = = 1 }\n", want);
    expect_error_part(name, "local x\nerror('deep')\n", want);
}

static void test_unknown_keys(void **state) {
    (void)state;
    expect_error("typo.lua",
                 "-- lerning_rate = 1 in a comment does not count\n"
                 "local s = \"lerning_rate = 2\"\n"
                 "--[[ lerning_rate = 3\n"
                 "]]\n"
                 "return {\n"
                 "  steps = 100,\n"
                 "  lerning_rate = 1e-5,\n"
                 "}\n",
                 7, "unknown key 'lerning_rate' (did you mean 'learning_rate'?)");
    expect_error("nested.lua", "return {\n  rollout = {\n    group_size = 4,\n    temprature = 1,\n  },\n}\n", 4,
                 "unknown key 'rollout.temprature' (did you mean 'rollout.temperature'?)");
    expect_error("misplaced.lua", "return {\n  temperature = 0.5,\n}\n", 2,
                 "unknown key 'temperature' (did you mean 'rollout.temperature'?)");
    expect_error("section.lua", "return { rolout = {} }\n", 1, "unknown key 'rolout' (did you mean 'rollout'?)");
    expect_error("bracket.lua", "return {\n\n  [\"zzqqxxyy\"] = 1,\n}\n", 3, "unknown key 'zzqqxxyy'");
    /* Built up outside a constructor: the line is still found. */
    expect_error("assign.lua", "local c = {}\nc.sede = 3\nreturn c\n", 2, "unknown key 'sede' (did you mean 'seed'?)");
    /* Not in the text at all (computed name): no line. */
    expect_error("computed.lua", "return { ['ab' .. 'cdefgh'] = 1 }\n", 0, "unknown key 'abcdefgh'");
    expect_error("numkey.lua", "return { rollout = { 1 } }\n", 0, "keys must be names, got a number key 1 in 'rollout'");
    expect_error("numtop.lua", "return { 'x' }\n", 0, "keys must be names, got a number key 1 in the returned table");
}

static void test_type_errors(void **state) {
    (void)state;
    expect_error("t1.lua", "return {\n  learning_rate = 'fast',\n}\n", 2, "key 'learning_rate': expected a number, got a string");
    expect_error("t1b.lua", "return { learning_rate = '1e-5' }\n", 1,
                 "key 'learning_rate': expected a number, got a string (write numbers without quotes)");
    expect_error("t2.lua", "return { steps = true }\n", 1, "key 'steps': expected an integer, got a boolean");
    expect_error("t3.lua", "return { steps = 3.5 }\n", 1, "key 'steps': expected an integer, got 3.5");
    expect_error("t4.lua", "return { name = 3 }\n", 1, "key 'name': expected a string, got a number");
    expect_error("t5.lua", "return { data = { shuffle = 1 } }\n", 1,
                 "key 'data.shuffle': expected a boolean (true or false), got a number");
    expect_error("t6.lua", "return { device = 'gpu' }\n", 1, "key 'device': expected one of cpu|cuda, got 'gpu' (did you mean 'cpu'?)");
    expect_error("t6b.lua", "return { device = 'tpu-v5-pod' }\n", 1, "key 'device': expected one of cpu|cuda, got 'tpu-v5-pod'");
    expect_error("t7.lua", "return {\n  rollout = {\n    top_p = 1.5,\n  },\n}\n", 3, "key 'rollout.top_p': 1.5 is out of range [0, 1]");
    expect_error("t8.lua", "return { rollout = 3 }\n", 1, "key 'rollout': expected a table, got a number");
    expect_error("t9.lua", "return { rollout = { stop = 'x' } }\n", 1, "key 'rollout.stop': expected a list of strings, got a string");
    expect_error("t10.lua", "return { rollout = { stop = { 'a', 2 } } }\n", 1, "key 'rollout.stop': item 2: expected a string, got a number");
    expect_error("t11.lua", "return { rollout = { stop = { a = 'b' } } }\n", 1,
                 "key 'rollout.stop': expected a list of strings, got a table with key 'a'");
    expect_error("t12.lua", "return { learning_rate = 1/0 }\n", 1, "key 'learning_rate': expected a finite number, got inf");
    expect_error("t13.lua", "return { seed = -1 }\n", 1, "key 'seed': -1 is out of range [0, 4294967295]");
    expect_error("t14.lua", "return { name = 'a\\0b' }\n", 1, "key 'name': the string contains a NUL byte");
    /* The same leaf in two sections: the line of the right one. */
    expect_error("t15.lua", "return {\n  model = { path = '' },\n  tokenizer = {\n    path = 3,\n  },\n}\n", 4,
                 "key 'tokenizer.path': expected a string, got a number");
}

/* ---- the sandbox ----------------------------------------------------------------- */

static void test_sandbox_has_no_escape_hatches(void **state) {
    (void)state;
    rlvr_config c;
    rlvr_err e;
    int rc = load_text(&c, "sb.lua",
                       "return { name = type(io)..type(os)..type(debug)..type(dofile)..type(loadfile)"
                       "..type(package)..type(print)..type(string.dump)..type(require)..type(load) }\n",
                       &e);
    if (rc) print_error("%s\n", e.msg);
    assert_int_equal(rc, 0);
    assert_string_equal(c.name, "nilnilnilnilnilnilnilnilfunctionfunction");
    config_free(&c);
    expect_error_part("exit.lua", "os.exit(1)\nreturn {}\n", "exit.lua:1: attempt to index a nil value (global 'os')");
    expect_error_part("io.lua", "local f = io.open('/etc/passwd')\nreturn {}\n", "io.lua:1: attempt to index a nil value (global 'io')");
    expect_error_part("dofile.lua", "dofile('/etc/passwd')\n", "dofile.lua:1: attempt to call a nil value (global 'dofile')");
}

static void test_load_refuses_bytecode(void **state) {
    (void)state;
    rlvr_config c;
    rlvr_err e;
    int rc = load_text(&c, "bc.lua",
                       "local f, msg = load('\\27LuaT\\0\\25\\147\\r\\n\\26\\n')\n"
                       "assert(f == nil)\n"
                       "local g = load('return 7', 'x', 'b')  -- mode 'b' is overridden to text\n"
                       "return { name = msg, steps = g() }\n",
                       &e);
    if (rc) print_error("%s\n", e.msg);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(c.name, "binary"));
    assert_int_equal(c.steps, 7);
    config_free(&c);
    /* A config file that is itself bytecode. */
    expect_error_part("binfile.lua", "\x1bLuaT", "precompiled (binary) chunks are not allowed");
}

static void test_endless_loop_is_stopped(void **state) {
    (void)state;
    double t0 = util_now();
    expect_error_part("loop.lua", "local n = 0\nwhile true do n = n + 1 end\n", "endless loop");
    /* Even when the script catches the first error. */
    expect_error_part("loop2.lua", "for i = 1, 3 do pcall(function() while true do end end) end\nwhile true do end\n",
                      "endless loop");
    assert_true(util_now() - t0 < 60);
}

static void test_memory_bomb_is_stopped(void **state) {
    (void)state;
    expect_error_part("mem.lua", "local t = {} for i = 1, 1e9 do t[i] = i end\nreturn {}\n", "out of memory");
    expect_error_part("mem2.lua", "local s = string.rep('x', 1 << 40)\nreturn {}\n", "");
}

/* ---- --set ----------------------------------------------------------------------- */

static void set_ok(rlvr_config *c, const char *a) {
    rlvr_err e;
    int rc = config_set(c, a, &e);
    if (rc) print_error("%s: %s\n", a, e.msg);
    assert_int_equal(rc, 0);
}

static void set_err(const char *a, const char *want) {
    rlvr_config c, before;
    rlvr_err e;
    assert_int_equal(config_init(&c, &e), 0);
    assert_int_equal(config_copy(&before, &c, &e), 0);
    int rc = config_set(&c, a, &e);
    if (rc == 0 || strcmp(e.msg, want) != 0) print_error("want: %s\n got: %s\n", want, e.msg);
    assert_int_equal(rc, -1);
    assert_string_equal(e.msg, want);
    assert_null(config_diff(&c, &before));
    config_free(&before);
    config_free(&c);
}

static void test_set_each_type(void **state) {
    (void)state;
    rlvr_config c;
    rlvr_err e;
    assert_int_equal(config_init(&c, &e), 0);
    set_ok(&c, "learning_rate=3e-6");
    assert_true(c.learning_rate == 3e-6);
    set_ok(&c, "steps=42");
    assert_int_equal(c.steps, 42);
    set_ok(&c, "steps=1e3");
    assert_int_equal(c.steps, 1000);
    set_ok(&c, "seed=4294967295");
    assert_int_equal(c.seed, 4294967295LL);
    set_ok(&c, "data.shuffle=no");
    assert_int_equal(c.data_shuffle, 0);
    set_ok(&c, "data.shuffle=TRUE");
    assert_int_equal(c.data_shuffle, 1);
    set_ok(&c, "algo.kl_in_reward=1");
    assert_int_equal(c.algo_kl_in_reward, 1);
    set_ok(&c, "device=cuda");
    assert_string_equal(c.device, "cuda");
    set_ok(&c, "name=a b=c");
    assert_string_equal(c.name, "a b=c");
    set_ok(&c, "db=");
    assert_string_equal(c.db, "");
    set_ok(&c, "rollout.stop={\"</answer>\", \"a,b\", '\\n'}");
    assert_int_equal(c.rollout_stop.n, 3);
    assert_string_equal(c.rollout_stop.v[1], "a,b");
    assert_string_equal(c.rollout_stop.v[2], "\n");
    set_ok(&c, "rollout.stop= END , STOP");
    assert_int_equal(c.rollout_stop.n, 2);
    assert_string_equal(c.rollout_stop.v[0], "END");
    assert_string_equal(c.rollout_stop.v[1], "STOP");
    set_ok(&c, "rollout.stop=");
    assert_int_equal(c.rollout_stop.n, 0);
    set_ok(&c, " rollout.top_p =0.5");
    assert_true(c.rollout_top_p == 0.5);
    config_free(&c);
}

static void test_set_errors(void **state) {
    (void)state;
    set_err("lerning_rate=1e-5", "--set lerning_rate=1e-5: unknown key 'lerning_rate' (did you mean 'learning_rate'?)");
    set_err("rolout.temperature=1", "--set rolout.temperature=1: unknown key 'rolout.temperature' (did you mean 'rollout.temperature'?)");
    set_err("temperature=1", "--set temperature=1: unknown key 'temperature' (did you mean 'rollout.temperature'?)");
    set_err("qqqqzzzz=1", "--set qqqqzzzz=1: unknown key 'qqqqzzzz'");
    set_err("steps", "--set steps: expected key=value (e.g. rollout.temperature=0.7)");
    set_err("=3", "--set =3: expected key=value, the key is empty");
    set_err("learning_rate=abc", "--set learning_rate=abc: key 'learning_rate': expected a number, got 'abc'");
    set_err("learning_rate=", "--set learning_rate=: key 'learning_rate': expected a number, got ''");
    set_err("learning_rate=1e-5x", "--set learning_rate=1e-5x: key 'learning_rate': expected a number, got '1e-5x'");
    set_err("learning_rate=nan", "--set learning_rate=nan: key 'learning_rate': expected a finite number, got nan");
    set_err("steps=3.5", "--set steps=3.5: key 'steps': expected an integer, got 3.5");
    set_err("steps=ten", "--set steps=ten: key 'steps': expected an integer, got 'ten'");
    set_err("steps=-1", "--set steps=-1: key 'steps': -1 is out of range [0, 100000000]");
    set_err("seed=99999999999999999999", "--set seed=99999999999999999999: key 'seed': 1e+20 is out of range [0, 4294967295]");
    set_err("rollout.top_p=1.5", "--set rollout.top_p=1.5: key 'rollout.top_p': 1.5 is out of range [0, 1]");
    set_err("data.shuffle=maybe", "--set data.shuffle=maybe: key 'data.shuffle': expected a boolean (true/false, yes/no, 1/0), got 'maybe'");
    set_err("device=cdua", "--set device=cdua: key 'device': expected one of cpu|cuda, got 'cdua' (did you mean 'cuda'?)");
    set_err("rollout=3", "--set rollout=3: 'rollout' is a section, not a key; set one of its keys (e.g. rollout.group_size=...)");
    set_err("model.init=3", "--set model.init=3: 'model.init' is a section, not a key; set one of its keys (e.g. model.init.arch=...)");
    set_err("rollout.stop={1, 2}", "--set rollout.stop={1, 2}: key 'rollout.stop': item 1: expected a string, got a number");
    set_err("rollout.stop=a,,b", "--set rollout.stop=a,,b: key 'rollout.stop': item 2 is empty (for strings with commas or spaces use a Lua list, e.g. {\"a, b\"})");
    /* The Lua form runs in a sandbox too. */
    rlvr_config c;
    rlvr_err e;
    assert_int_equal(config_init(&c, &e), 0);
    assert_int_equal(config_set(&c, "rollout.stop={os.exit(1)}", &e), -1);
    assert_non_null(strstr(e.msg, "not a Lua list"));
    assert_int_equal(config_set(&c, "rollout.stop={(function() while true do end end)()}", &e), -1);
    assert_non_null(strstr(e.msg, "endless loop"));
    assert_int_equal(config_set(&c, "rollout.stop={\"a\"", &e), -1);
    assert_non_null(strstr(e.msg, "--set rollout.stop={\"a\": key 'rollout.stop': not a Lua list: "));
    config_free(&c);
}

/* ---- cross-key rules ------------------------------------------------------------- */

static void check_err(const char *const *sets, const char *want) {
    rlvr_config c;
    rlvr_err e;
    assert_int_equal(config_init(&c, &e), 0);
    for (; *sets; sets++) set_ok(&c, *sets);
    int rc = config_check(&c, &e);
    if (rc == 0 || strcmp(e.msg, want) != 0) print_error("want: %s\n got: %s\n", want, e.msg);
    assert_int_equal(rc, -1);
    assert_string_equal(e.msg, want);
    config_free(&c);
}

static void test_check(void **state) {
    (void)state;
    check_err((const char *[]){"model.init.kv_heads=3", NULL},
              "model.init.kv_heads = 3 must divide model.init.heads = 4 (each key/value head is shared by the same "
              "number of query heads)");
    check_err((const char *[]){"model.init.hidden=66", NULL}, "model.init.hidden = 66 must be a multiple of model.init.heads = 4");
    check_err((const char *[]){"model.init.hidden=60", NULL},
              "model.init.hidden / model.init.heads = 60 / 4 = 15 must be even (rotary position embeddings rotate pairs of dimensions)");
    check_err((const char *[]){"data.arith.min_digits=3", NULL}, "data.arith.min_digits = 3 is more than data.arith.max_digits = 2");
    check_err((const char *[]){"data.arith.ops=+/", NULL}, "data.arith.ops = \"+/\": '/' is not an operator; use any of +, -, *");
    check_err((const char *[]){"data.arith.ops=", NULL}, "data.arith.ops is empty: give at least one of +, -, *");
    check_err((const char *[]){"algo.clip_c=0.5", NULL}, "algo.clip_c = 0.5: must be 0 (dual-clip off) or greater than 1");
    check_err((const char *[]){"rollout.group_size=1", NULL},
              "rollout.group_size = 1: GRPO needs at least 2 samples per prompt to compare (algo.advantage = grpo)");
    check_err((const char *[]){"rollout.group_size=1", "algo.advantage=rloo", NULL},
              "rollout.group_size = 1: RLOO needs at least 2 samples per prompt to compare (algo.advantage = rloo)");
    check_err((const char *[]){"warmup_steps=300", NULL}, "warmup_steps = 300 is more than steps = 200");
    check_err((const char *[]){"algo.minibatch_size=65", NULL},
              "algo.minibatch_size = 65 is larger than the batch (rollout.prompts_per_step x rollout.group_size = 64)");
    /* Allowed: group of 1 with REINFORCE++, clip_c above 1, warmup with steps = 0. */
    rlvr_config c;
    rlvr_err e;
    assert_int_equal(config_init(&c, &e), 0);
    set_ok(&c, "rollout.group_size=1");
    set_ok(&c, "algo.advantage=reinforce_pp");
    set_ok(&c, "algo.clip_c=3");
    set_ok(&c, "steps=0");
    set_ok(&c, "warmup_steps=10");
    assert_int_equal(config_check(&c, &e), 0);
    config_free(&c);
}

/* ---- the resolved config --------------------------------------------------------- */

static void test_to_lua_round_trip(void **state) {
    (void)state;
    rlvr_config c, d;
    rlvr_err e;
    assert_int_equal(config_init(&c, &e), 0);
    set_ok(&c, "name=quote\" back\\slash tab\t é");
    set_ok(&c, "learning_rate=0.1");
    set_ok(&c, "adam_eps=1.2345678901234567e-7");
    set_ok(&c, "algo.entropy_coef=-0.0");
    set_ok(&c, "reward.fallback=-1e9");
    set_ok(&c, "reward.max_instructions=1000000000000");
    set_ok(&c, "rollout.stop={\"\\n\\n\", \"\\0011\", \"</answer>\"}");
    set_ok(&c, "data.shuffle=false");
    set_ok(&c, "rollout.temperature=0.30000000000000004");
    char *text = config_to_lua(&c);
    assert_non_null(text);
    assert_non_null(strstr(text, "return {\n"));
    assert_non_null(strstr(text, "  rollout = {\n"));
    assert_non_null(strstr(text, "    init = {\n"));
    assert_non_null(strstr(text, "learning_rate = 0.1,\n"));
    assert_non_null(strstr(text, "-- Peak learning rate of AdamW.\n"));
    assert_true(strstr(text, "seed = 1,") < strstr(text, "device = \"cpu\",")); /* schema order */
    assert_int_equal(config_init(&d, &e), 0);
    set_ok(&d, "steps=5"); /* overwritten by the file: every key is in it */
    int rc = config_load_file(&d, put("resolved.lua", text), &e);
    if (rc) print_error("%s\n%s\n", e.msg, text);
    assert_int_equal(rc, 0);
    assert_null(config_diff(&c, &d));
    char *again = config_to_lua(&d);
    assert_string_equal(text, again);
    free(text);
    free(again);
    config_free(&c);
    config_free(&d);
}

static void test_doc_markdown(void **state) {
    (void)state;
    char *md = config_doc_markdown();
    assert_non_null(md);
    assert_non_null(strstr(md, "| key | type | default | description |"));
    assert_non_null(strstr(md, "| `device` | one of `cpu`, `cuda` | `\"cpu\"` |"));
    assert_non_null(strstr(md, "| `rollout.top_p` | number in [0, 1] | `1` |"));
    assert_non_null(strstr(md, "| `seed` | integer in [0, 4294967295] | `1` |"));
    assert_non_null(strstr(md, "## `model.init`"));
    assert_non_null(strstr(md, "--dry-run"));
    size_t n;
    const cfg_key *k = config_schema(&n);
    for (size_t i = 0; i < n; i++) {
        char needle[300];
        snprintf(needle, sizeof needle, k[i].type == CFG_T_SECTION ? "## `%s`" : "| `%s` |", k[i].path);
        if (!strstr(md, needle)) print_error("missing %s\n", needle);
        assert_non_null(strstr(md, needle));
    }
    free(md);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_schema),
        cmocka_unit_test(test_load_overrides_exactly_given_keys),
        cmocka_unit_test(test_load_applies_over_current),
        cmocka_unit_test(test_require_sibling_and_merge),
        cmocka_unit_test(test_require_errors),
        cmocka_unit_test(test_lua_errors_carry_file_and_line),
        cmocka_unit_test(test_long_paths_are_not_shortened),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_sandbox_has_no_escape_hatches),
        cmocka_unit_test(test_load_refuses_bytecode),
        cmocka_unit_test(test_endless_loop_is_stopped),
        cmocka_unit_test(test_memory_bomb_is_stopped),
        cmocka_unit_test(test_set_each_type),
        cmocka_unit_test(test_set_errors),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_to_lua_round_trip),
        cmocka_unit_test(test_doc_markdown),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
