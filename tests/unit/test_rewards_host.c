/* test_rewards_host.c - the reward host and scorer: results, parts and weights, the
 * fallback reward, self-tests at load, and hostile Lua scripts (endless loops, memory
 * bombs, deep recursion, bytecode, reaching for io/os), each of which must end with
 * status error/timeout within its budget while the process and the state go on. */
#include "testing.h"

#include <math.h>

#include "rewards.h"
#include "util.h"

static char *dir;

static int setup(void **state) {
    (void)state;
    dir = test_tmpdir("rewards_host");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    free(dir);
    return 0;
}

static rw_opts opts_for(const char *script) {
    rw_opts o = {.script = script, .fallback = -1, .timeout_s = 0.5, .max_instructions = 10000000,
                 .max_memory = 32 << 20, .jobs = 1};
    return o;
}

/* Writes `src` as a script and returns a host for it (NULL and message on failure). */
/* timeout_s > 0 replaces the default wall-clock budget: the memory-bomb cases get a long
 * one, so that on a loaded machine the memory cap, not the clock, is what stops them. */
static rw_host *host_for_timeout(const char *name, const char *src, double timeout_s, rlvr_err *e) {
    char *path = test_write(dir, name, src);
    rw_opts o = opts_for(path);
    if (timeout_s > 0) o.timeout_s = timeout_s;
    rw_host *h = rw_host_new(&o, e);
    free(path);
    return h;
}

static rw_host *host_for(const char *name, const char *src, rlvr_err *e) { return host_for_timeout(name, src, 0, e); }

static cJSON *sample(const char *json) {
    cJSON *c = cJSON_Parse(json);
    assert_non_null(c);
    return c;
}

static void score(rw_host *h, const char *json, rw_result *r) {
    cJSON *s = sample(json);
    assert_int_equal(rw_host_score(h, s, r), 0);
    cJSON_Delete(s);
}

static void test_number_and_parts(void **state) {
    (void)state;
    rlvr_err e;
    rw_host *h = host_for("num.lua", "return { reward = function(s) return #s.completion + s.n end }", &e);
    assert_non_null(h);
    rw_result r;
    score(h, "{\"completion\": \"abc\", \"n\": 2}", &r);
    assert_int_equal(r.status, RW_OK);
    assert_true(r.reward == 5);
    assert_null(r.error);
    assert_int_equal(r.n_parts, 0);
    rw_result_clear(&r);
    rw_host_free(h);

    h = host_for("parts.lua",
                 "return { reward = function(s) return {accuracy = 1, format = 1, extra = 5} end,\n"
                 "         weights = {accuracy = 1.0, format = 0.2} }",
                 &e);
    assert_non_null(h);
    score(h, "{\"completion\": \"x\"}", &r);
    assert_int_equal(r.status, RW_OK);
    assert_true(fabs(r.reward - 1.2) < 1e-12); /* extra has no weight: counts 0 */
    assert_int_equal(r.n_parts, 3);
    assert_string_equal(r.parts[0].name, "accuracy");
    assert_string_equal(r.parts[2].name, "format");
    rw_result_clear(&r);
    rw_host_free(h);

    /* A script file requires modules from its own folder, and rlvr's. */
    free(test_write(dir, "helper.lua", "return { double = function(x) return 2 * x end }"));
    h = host_for("uses_helper.lua",
                 "local helper = require 'helper'\nlocal m = require 'rlvr.math'\n"
                 "return { reward = function(s) return helper.double(m.is_correct(s.completion, s.answer) and 1 or 0) end }",
                 &e);
    if (!h) fail_msg("%s", e.msg);
    score(h, "{\"completion\": \"\\\\boxed{4}\", \"answer\": \"4\"}", &r);
    assert_int_equal(r.status, RW_OK);
    assert_true(r.reward == 2);
    rw_result_clear(&r);
    rw_host_free(h);

    h = host_for("noweights.lua", "return { reward = function(s) return {a = 1, b = 2} end }", &e);
    score(h, "{\"completion\": \"x\"}", &r);
    assert_true(r.reward == 3);
    rw_result_clear(&r);
    rw_host_free(h);
}

static void test_bad_results_get_fallback(void **state) {
    (void)state;
    rlvr_err e;
    rw_host *h = host_for("bad.lua",
                          "return { reward = function(s)\n"
                          "  if s.kind == 'str' then return 'yes' end\n"
                          "  if s.kind == 'nan' then return 0/0 end\n"
                          "  if s.kind == 'part' then return {accuracy = 'x'} end\n"
                          "  if s.kind == 'missing' then return {format = 1} end\n"
                          "  if s.kind == 'err' then error('boom') end\n"
                          "  return 1 end, weights = {accuracy = 1, format = 0.5} }",
                          &e);
    assert_non_null(h);
    static const struct {
        const char *kind, *msg;
    } cases[] = {
        {"str", "reward returned a string, expected a number or a table of named parts"},
        {"nan", "expected a finite number"},
        {"part", "reward part 'accuracy' is a string, expected a number"},
        {"missing", "reward returned no part 'accuracy', which `weights` names"},
        {"err", "bad.lua:6: boom"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"completion\": \"x\", \"kind\": \"%s\"}", cases[i].kind);
        rw_result r;
        score(h, json, &r);
        assert_int_equal(r.status, RW_ERROR);
        assert_true(r.reward == -1);
        assert_non_null(r.error);
        if (!strstr(r.error, cases[i].msg)) fail_msg("%s: '%s' lacks '%s'", cases[i].kind, r.error, cases[i].msg);
        rw_result_clear(&r);
    }
    rw_host_free(h);
}

static void test_script_loading_errors(void **state) {
    (void)state;
    rlvr_err e;
    assert_null(host_for("notable.lua", "return 5", &e));
    assert_non_null(strstr(e.msg, "a reward script must return a table with a `reward` function (got a number)"));
    assert_null(host_for("noreward.lua", "return {}", &e));
    assert_non_null(strstr(e.msg, "the returned table has no `reward` function"));
    assert_null(host_for("syntax.lua", "return {", &e));
    assert_non_null(strstr(e.msg, "syntax.lua:1:"));
    assert_null(host_for("selftest.lua",
                         "return { reward = function(s) return 0 end,\n"
                         "  selftest = { {sample = {completion = 'a'}, reward = 0}, {sample = {completion = 'b'}, reward = 1} } }",
                         &e));
    assert_non_null(strstr(e.msg, "self-test case 2: reward 0, expected 1"));
    rw_opts o = opts_for("mth");
    assert_null(rw_host_new(&o, &e));
    assert_non_null(strstr(e.msg, "unknown reward script 'mth' (did you mean 'math'?)"));
    /* Every built-in script loads and passes its own self-test (code needs the sandbox). */
    const char *builtins[] = {"math", "gsm8k", "think_format", "math_r1"};
    for (size_t i = 0; i < 4; i++) {
        o = opts_for(builtins[i]);
        rw_host *h = rw_host_new(&o, &e);
        if (!h) fail_msg("%s: %s", builtins[i], e.msg);
        rw_host_free(h);
    }
}

/* Each hostile script: the status, a piece of the message, and the longest it may take. */
static void test_hostile_scripts(void **state) {
    (void)state;
    static const struct {
        const char *body, *msg;
        rw_status status;
    } cases[] = {
        {"while true do end", "Lua instructions", RW_TIMEOUT},
        {"local s = string.rep('x', 1 << 30) return #s", "out of memory", RW_ERROR},
        {"local function f(n) return 1 + f(n + 1) end return f(1)", "stack overflow|out of memory", RW_ERROR},
        {"local t = {} while true do t[#t + 1] = {} end", "out of memory", RW_ERROR},
        {"return load(string.dump(function() end))()", "attempt to call a nil value", RW_ERROR},
        {"local f, err = load('\\27Lua'); error(err)", "precompiled (binary) chunks are not allowed", RW_ERROR},
        {"return io.open('/etc/passwd'):read('a')", "attempt to index a nil value (global 'io')", RW_ERROR},
        {"return os.execute('touch /tmp/rlvr_pwned')", "attempt to index a nil value (global 'os')", RW_ERROR},
        {"return require('io')", "module 'io' not found", RW_ERROR},
        {"return dofile('/etc/passwd')", "attempt to call a nil value (global 'dofile')", RW_ERROR},
        {"return debug.getinfo(1)", "attempt to index a nil value (global 'debug')", RW_ERROR},
        {"return package.loadlib('libc.so.6', 'system')", "attempt to index a nil value (global 'package')", RW_ERROR},
        {"local s = string.rep('a', 4000000) for i = 1, 100 do s = s:gsub('a', 'a') end return 1", "seconds",
         RW_TIMEOUT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char src[512];
        snprintf(src, sizeof src, "return { reward = function(s) %s end }", cases[i].body);
        rlvr_err e;
        int memory_case = strstr(cases[i].msg, "out of memory") != NULL;
        rw_host *h = host_for_timeout("hostile.lua", src, memory_case ? 20.0 : 0, &e);
        if (!h) fail_msg("case %zu: %s", i, e.msg);
        rw_result r;
        double t0 = util_now();
        score(h, "{\"completion\": \"x\"}", &r);
        double took = util_now() - t0;
        /* msg may list alternatives split by '|' (deep recursion hits the stack limit or
         * the memory cap first, depending on the cap). */
        int found = 0;
        char alts[128];
        snprintf(alts, sizeof alts, "%s", cases[i].msg);
        for (char *alt = strtok(alts, "|"); alt && r.error; alt = strtok(NULL, "|"))
            if (strstr(r.error, alt)) found = 1;
        if (r.status != cases[i].status || !found)
            fail_msg("case %zu (%s): status %s, error '%s'", i, cases[i].body, rw_status_name(r.status),
                     r.error ? r.error : "(none)");
        assert_true(r.reward == -1);
        /* The budget is 0.5 s; allow for a slow, sanitized CI machine. */
        if (took > (memory_case ? 20.0 : 3.0)) fail_msg("case %zu took %.2fs", i, took);
        rw_result_clear(&r);
        /* The host keeps working after it (rebuilt after running out of memory). */
        rw_host_free(h);
    }
    assert_int_equal(access("/tmp/rlvr_pwned", F_OK), -1);
}

static void test_state_rebuilt_after_oom(void **state) {
    (void)state;
    rlvr_err e;
    rw_host *h = host_for_timeout("oom.lua",
                          "local calls = 0\n"
                          "return { reward = function(s)\n"
                          "  calls = calls + 1\n"
                          "  if s.bomb then local t = {} while true do t[#t + 1] = {} end end\n"
                          "  return calls end }",
                          20.0, &e);
    assert_non_null(h);
    rw_result r;
    score(h, "{\"completion\": \"x\"}", &r);
    assert_true(r.reward == 1);
    rw_result_clear(&r);
    score(h, "{\"completion\": \"x\"}", &r);
    assert_true(r.reward == 2);
    rw_result_clear(&r);
    score(h, "{\"completion\": \"x\", \"bomb\": true}", &r);
    assert_int_equal(r.status, RW_ERROR);
    rw_result_clear(&r);
    /* A fresh state: the upvalue starts over. */
    score(h, "{\"completion\": \"x\"}", &r);
    assert_int_equal(r.status, RW_OK);
    assert_true(r.reward == 1);
    rw_result_clear(&r);
    rw_host_free(h);
}

static void test_scorer_keeps_order(void **state) {
    (void)state;
    char *path = test_write(dir, "order.lua",
                            "return { reward = function(s)\n"
                            "  local n = 0 for i = 1, (s.i % 7) * 2000 do n = n + 1 end\n"
                            "  if s.i % 10 == 3 then while true do end end\n"
                            "  return s.i * 2 end }");
    rw_opts o = opts_for(path);
    o.jobs = 4;
    o.max_instructions = 200000;
    rlvr_err e;
    rw_scorer *s = rw_scorer_new(&o, &e);
    assert_non_null(s);
    assert_int_equal(rw_scorer_jobs(s), 4);
    enum { N = 200 };
    cJSON *samples[N];
    rw_result res[N];
    for (int i = 0; i < N; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"completion\": \"c\", \"i\": %d}", i);
        samples[i] = sample(json);
    }
    for (int round = 0; round < 2; round++) {
        assert_int_equal(rw_score_batch(s, (const cJSON *const *)samples, N, res, &e), 0);
        for (int i = 0; i < N; i++) {
            if (i % 10 == 3) {
                assert_int_equal(res[i].status, RW_TIMEOUT);
                assert_true(res[i].reward == -1);
            } else {
                assert_int_equal(res[i].status, RW_OK);
                assert_true(res[i].reward == 2 * i);
            }
            rw_result_clear(&res[i]);
        }
    }
    for (int i = 0; i < N; i++) cJSON_Delete(samples[i]);
    rw_scorer_free(s);
    free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_number_and_parts),
        cmocka_unit_test(test_bad_results_get_fallback),
        cmocka_unit_test(test_script_loading_errors),
        cmocka_unit_test(test_hostile_scripts),
        cmocka_unit_test(test_state_rebuilt_after_oom),
        cmocka_unit_test(test_scorer_keeps_order),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
