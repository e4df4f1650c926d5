/* test_luabox.c - the restricted Lua state on its own (the reward host will reuse it):
 * budgets, their reset between calls, require without a module folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lua.h>
#include <string.h>

#include "luabox.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_cap),
        cmocka_unit_test(test_instruction_budget_resets_per_call),
        cmocka_unit_test(test_require_without_module_dir),
        cmocka_unit_test(test_bytecode_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
