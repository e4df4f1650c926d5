/* test_luabox.c - the restricted Lua state on its own (the reward host will reuse it):
 * budgets, their reset between calls, require without a module folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lua.h>
#include <string.h>

#include <lauxlib.h>

#include "luabox.h"
#include "util.h"

/* Runs `code` returning one value; returns the pcall result, message in e. */
static int run(luabox *b, const char *code, rlvr_err *e) {
    if (luabox_load(b, code, strlen(code), "=test", e) != 0) return -1;
    return luabox_pcall(b, 0, 1, e);
}

static void test_memory_cap(void **state) {
    (void)state;
    rlvr_err e;
    luabox_opts o = {1 << 20, 0, 0, NULL};
    luabox *b = luabox_new(&o, &e);
    assert_non_null(b);
    assert_int_equal(run(b, "return string.rep('x', 2 << 20)", &e), -1);
    assert_string_equal(e.msg, "out of memory: the Lua state is limited to 1 MiB");
    assert_true(luabox_memory(b) <= (1 << 20));
    /* The state stays usable after the refusal. */
    assert_int_equal(run(b, "return #string.rep('x', 1000)", &e), 0);
    assert_int_equal(lua_tointeger(luabox_state(b), -1), 1000);
    luabox_free(b);
}

static void test_instruction_budget_resets_per_call(void **state) {
    (void)state;
    rlvr_err e;
    luabox_opts o = {0, 100000, 0, NULL};
    luabox *b = luabox_new(&o, &e);
    assert_non_null(b);
    assert_int_equal(run(b, "while true do end", &e), -1);
    assert_non_null(strstr(e.msg, "test:1: the script ran more than 100000 Lua instructions"));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run(b, "local n = 0 for i = 1, 1000 do n = n + i end return n", &e), 0);
        assert_int_equal(lua_tointeger(luabox_state(b), -1), 500500);
        lua_pop(luabox_state(b), 1);
    }
    luabox_free(b);
}

static void test_require_without_module_dir(void **state) {
    (void)state;
    rlvr_err e;
    luabox *b = luabox_new(NULL, &e);
    assert_non_null(b);
    assert_int_equal(run(b, "return require('rlvr.config').merge({a = 1}, {b = 2}).b", &e), 0);
    assert_int_equal(lua_tointeger(luabox_state(b), -1), 2);
    lua_pop(luabox_state(b), 1);
    assert_int_equal(run(b, "return require 'base'", &e), -1);
    assert_string_equal(e.msg, "test:1: module 'base' not found: looked in rlvr's modules");
    assert_int_equal(run(b, "return require '.hidden'", &e), -1);
    assert_non_null(strstr(e.msg, "not a module name"));
    luabox_free(b);
}

static void test_bytecode_refused(void **state) {
    (void)state;
    rlvr_err e;
    luabox *b = luabox_new(NULL, &e);
    assert_non_null(b);
    assert_int_equal(luabox_load(b, "\x1bLuaT\0", 6, "=blob", &e), -1);
    assert_non_null(strstr(e.msg, "blob: precompiled (binary) chunks are not allowed"));
    assert_int_equal(run(b, "return select(2, load('\\27Lua'))", &e), 0);
    assert_non_null(strstr(lua_tostring(luabox_state(b), -1), "binary"));
    luabox_free(b);
}

/* The pattern functions are wrapped (run in a scratch state under the deadline when their
 * worst case is large) and gmatch is rebuilt on find: each must give what Lua's own
 * string library gives. The reference is a plain state with the real library. */
int luaopen_string(lua_State *L);
int luaopen_base(lua_State *L);
int luaopen_table(lua_State *L);

static const char *const PATTERN_CASES[] = {
    "local t = {} for w in ('one two  three'):gmatch('%a+') do t[#t+1] = w end return table.concat(t, ',')",
    "local t = {} for k, v in ('a=1, b=22'):gmatch('(%w+)=(%w+)') do t[#t+1] = k .. v end return table.concat(t, ',')",
    "local t = {} for w in ('abc'):gmatch('') do t[#t+1] = '[' .. w .. ']' end return table.concat(t, ',')",
    "local t = {} for w in ('abc'):gmatch('x*') do t[#t+1] = '[' .. w .. ']' end return table.concat(t, ',')",
    "local t = {} for a, b in ('hello'):gmatch('()l()') do t[#t+1] = a .. ':' .. b end return table.concat(t, ',')",
    "local t = {} for w in ('^a^b'):gmatch('^%a') do t[#t+1] = w end return table.concat(t, ',')",
    "local t = {} for w in ('a,b,,c'):gmatch('([^,]*)') do t[#t+1] = '<' .. w .. '>' end return table.concat(t)",
    "local t = {} for w in ('aaa bbb'):gmatch('%a+', 3) do t[#t+1] = w end return table.concat(t, ',')",
    "local t = {} for w in ('aaa bbb'):gmatch('%a+', -2) do t[#t+1] = w end return table.concat(t, ',')",
    "local s = string.rep('ab ', 3000) .. 'x' local n = 0 for w in s:gmatch('%a+') do n = n + 1 end return n",
    "local s = string.rep('a', 20000) .. 'b' return table.concat({s:find('a-b')}, ',')",
    "local s = string.rep('xy', 5000) .. ' key = value ' return table.concat({s:match('(%w+)%s*=%s*(%w+)')}, ',')",
    "local s = string.rep('a b ', 4000) local r, n = s:gsub('%s+', '_') return #r .. ',' .. n",
    "local s = string.rep('a b ', 4000) local r, n = s:gsub('(%a)%s+', function(c) return c:upper() end, 100) return #r .. ',' .. n .. r:sub(1, 10)",
    "local s = string.rep('a b ', 4000) local r, n = s:gsub('(%a)%s+', {a = 'X'}) return #r .. ',' .. n",
    "return tostring(('  trim me  '):match('^%s*(.-)%s*$'))",
    "return table.concat({string.find('a+b', '+', 1, true)}, ',')",
    "return select('#', ('abc'):find('b()'))",
    "return tostring(pcall(string.gsub, string.rep('a', 30000), '(', 'x'))",
};

static void test_pattern_functions_match_lua(void **state) {
    (void)state;
    rlvr_err e;
    luabox_opts o = {0, 0, 10, NULL}; /* a deadline: the guarded paths are taken */
    luabox *b = luabox_new(&o, &e);
    assert_non_null(b);
    lua_State *ref = luaL_newstate();
    luaL_requiref(ref, "_G", luaopen_base, 1);
    luaL_requiref(ref, "string", luaopen_string, 1);
    luaL_requiref(ref, "table", luaopen_table, 1);
    lua_settop(ref, 0);
    for (size_t i = 0; i < sizeof PATTERN_CASES / sizeof PATTERN_CASES[0]; i++) {
        const char *code = PATTERN_CASES[i];
        assert_int_equal(luaL_loadstring(ref, code), LUA_OK);
        if (lua_pcall(ref, 0, 1, 0) != LUA_OK) fail_msg("reference, case %zu: %s", i, lua_tostring(ref, -1));
        const char *want = lua_tostring(ref, -1);
        if (run(b, code, &e) != 0) fail_msg("case %zu: %s", i, e.msg);
        const char *got = lua_tostring(luabox_state(b), -1);
        if (!got || strcmp(got, want) != 0) fail_msg("case %zu: got '%s', Lua gives '%s'", i, got ? got : "(nil)", want);
        lua_pop(luabox_state(b), 1);
        lua_pop(ref, 1);
    }
    lua_close(ref);
    luabox_free(b);
}

/* A backtracking match that runs no Lua code and allocates nothing is still stopped. */
static void test_pathological_pattern_stopped(void **state) {
    (void)state;
    rlvr_err e;
    luabox_opts o = {64 << 20, 0, 0.3, NULL};
    luabox *b = luabox_new(&o, &e);
    assert_non_null(b);
    static const char *const bombs[] = {
        "return string.find(string.rep('a', 300000), 'a-a-a-a-b')",
        "return string.match(string.rep('a', 300000), '.-.-.-x')",
        "return (string.rep('a', 300000)):gsub('a*a*a*b', '')",
        "return (string.rep('a', 300000)):gsub('a*a*a*b', function() end)",
        "for w in string.rep('a', 300000):gmatch('a-a-a-b') do end",
    };
    for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
        double t0 = util_now();
        assert_int_equal(run(b, bombs[i], &e), -1);
        double took = util_now() - t0;
        if (!strstr(e.msg, "the script ran longer than 0.3") || luabox_last_failure(b) != LUABOX_FAIL_BUDGET)
            fail_msg("case %zu: %s", i, e.msg);
        if (took > 3) fail_msg("case %zu took %.2fs", i, took);
    }
    /* The state still works. */
    assert_int_equal(run(b, "return ('x=1'):match('(%w)=(%d)')", &e), 0);
    luabox_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_cap),
        cmocka_unit_test(test_instruction_budget_resets_per_call),
        cmocka_unit_test(test_require_without_module_dir),
        cmocka_unit_test(test_bytecode_refused),
        cmocka_unit_test(test_pattern_functions_match_lua),
        cmocka_unit_test(test_pathological_pattern_stopped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
