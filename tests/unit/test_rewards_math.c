/* test_rewards_math.c - rlvr.math and rlvr.format against hand-written cases:
 * tests/fixtures/rewards/math_equal.tsv (reference, prediction, equal?), math_cases.lua
 * (extraction, references, end to end) and format_cases.lua. Every case is run; the
 * failures are all printed before the test fails. */
#include "testing.h"

#include <lauxlib.h>
#include <lua.h>

#include "luabox.h"
#include "util.h"

static char *fixture(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/rewards/%s", getenv("RLVR_SOURCE_DIR"), name);
    size_t len;
    rlvr_err e;
    char *s = util_read_file(path, &len, &e);
    if (!s) fail_msg("%s", e.msg);
    return s;
}

/* Runs `runner` (a Lua chunk taking the fixture's text and returning the number of cases
 * and a string of failures). */
static void run_cases(const char *runner, const char *fixture_name, int min_cases) {
    rlvr_err e;
    luabox_opts o = {256 << 20, 0, 60, NULL};
    luabox *b = luabox_new(&o, &e);
    assert_non_null(b);
    char *text = fixture(fixture_name);
    assert_int_equal(luabox_load(b, runner, strlen(runner), "=runner", &e), 0);
    lua_pushstring(luabox_state(b), text);
    free(text);
    if (luabox_pcall(b, 1, 2, &e) != 0) fail_msg("%s", e.msg);
    lua_State *L = luabox_state(b);
    int n = (int)lua_tointeger(L, -2);
    const char *failures = lua_tostring(L, -1);
    printf("%s: %d cases\n", fixture_name, n);
    if (failures && *failures) {
        printf("%s", failures);
        fail_msg("%s: some cases failed (listed above)", fixture_name);
    }
    assert_true(n >= min_cases);
    luabox_free(b);
}

static const char EQUAL_RUNNER[] =
    "local text = ...\n"
    "local m = require 'rlvr.math'\n"
    "local n, bad = 0, {}\n"
    "for line in text:gmatch('[^\\n]+') do\n"
    "  if line:sub(1, 1) ~= '#' then\n"
    "    local ref, pred, want = line:match('^(.-)\\t(.-)\\t([01])$')\n"
    "    assert(ref, 'bad fixture line: ' .. line)\n"
    "    n = n + 1\n"
    "    local got = m.equal(pred, ref)\n"
    "    if got ~= (want == '1') then\n"
    "      bad[#bad + 1] = string.format('  equal(pred=%q, ref=%q) = %s, expected %s\\n', pred, ref, tostring(got), want == '1')\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return n, table.concat(bad)\n";

static const char CASES_RUNNER[] =
    "local cases = load(..., '=math_cases.lua')()\n"
    "local m = require 'rlvr.math'\n"
    "local bad = {}\n"
    "for i, c in ipairs(cases) do\n"
    "  local got, want\n"
    "  if c[1] == 'final' then got, want = m.final_answer(c[2], c[3]), c[4]\n"
    "  elseif c[1] == 'ref' then got, want = m.reference(c[2]), c[3]\n"
    "  else got, want = m.is_correct(c[2], c[3], c[4]), c[5] end\n"
    "  if got ~= want then\n"
    "    bad[#bad + 1] = string.format('  case %d (%s %q): got %s, expected %s\\n', i, c[1], tostring(c[2]):sub(1, 80), tostring(got), tostring(want))\n"
    "  end\n"
    "end\n"
    "return #cases, table.concat(bad)\n";

static const char FORMAT_RUNNER[] =
    "local cases = load(..., '=format_cases.lua')()\n"
    "local f = require 'rlvr.format'\n"
    "local bad = {}\n"
    "for i, c in ipairs(cases) do\n"
    "  local got = f[c[1]](table.unpack(c[2]))\n"
    "  local ok = got == c[3] or (type(got) == 'number' and type(c[3]) == 'number' and math.abs(got - c[3]) < 1e-12)\n"
    "  if not ok then\n"
    "    bad[#bad + 1] = string.format('  case %d %s(%q): got %s, expected %s\\n', i, c[1], tostring(c[2][1]), tostring(got), tostring(c[3]))\n"
    "  end\n"
    "end\n"
    "return #cases, table.concat(bad)\n";

static void test_equal_cases(void **state) {
    (void)state;
    run_cases(EQUAL_RUNNER, "math_equal.tsv", 200);
}

static void test_extraction_and_reference_cases(void **state) {
    (void)state;
    run_cases(CASES_RUNNER, "math_cases.lua", 50);
}

static void test_format_cases(void **state) {
    (void)state;
    run_cases(FORMAT_RUNNER, "format_cases.lua", 30);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_cases),
        cmocka_unit_test(test_extraction_and_reference_cases),
        cmocka_unit_test(test_format_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
