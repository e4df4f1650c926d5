/* luabox.h - a restricted Lua state for running untrusted Lua: configs and reward
 * scripts.
 *
 * Only the base, string, table, math and utf8 libraries are opened; dofile, loadfile,
 * print and string.dump are removed; `load` accepts only text chunks; `require` finds
 * `<module_dir>/<a/b>.lua` for "a.b" and then rlvr's embedded modules (lualib.h), and
 * nothing else (no C modules, no package.path). A memory cap (a counting lua_Alloc) and
 * an instruction / wall-clock budget (a count hook, the allocator, and a timer around
 * expensive pattern matches: string.find/match/gsub are wrapped, gmatch is rebuilt on
 * find) turn runaway scripts into errors. The timer uses signal SIGRTMIN+3. */
#ifndef RLVR_LUABOX_H
#define RLVR_LUABOX_H

#include <stddef.h>

#include "err.h"

struct lua_State;

typedef struct luabox luabox;

typedef struct luabox_opts {
    size_t max_memory;          /* bytes the state may hold; 0 = unlimited */
    long long max_instructions; /* VM instructions per luabox_pcall; 0 = unlimited */
    double max_seconds;         /* wall-clock seconds per luabox_pcall; 0 = unlimited */
    const char *module_dir;     /* where `require` looks first; NULL = rlvr's modules only */
} luabox_opts;

/* Creates a state with the safe libraries opened. NULL and a message on failure. */
luabox *luabox_new(const luabox_opts *opts, rlvr_err *e);
void luabox_free(luabox *b);

/* The underlying state, for pushing arguments and reading results. */
struct lua_State *luabox_state(luabox *b);

/* Compiles a text chunk (bytecode is refused) and pushes it as a function.
 * `chunkname` follows Lua's convention ("@path" for files, "=name" for others). */
int luabox_load(luabox *b, const char *src, size_t len, const char *chunkname, rlvr_err *e);

/* Calls the function below `nargs` arguments on the stack, leaving `nres` results
 * (LUA_MULTRET allowed), with the instruction and time budgets restarted. On error
 * nothing is left on the stack and `e` holds Lua's message ("file:line: message",
 * with chunk names that Lua shortened restored to the full path) or a budget message. */
int luabox_pcall(luabox *b, int nargs, int nres, rlvr_err *e);

/* Why the last luabox_pcall failed: a Lua error, the memory cap (the state may be left
 * short of memory: rebuild it), or the instruction / time budget. */
typedef enum luabox_failure {
    LUABOX_FAIL_NONE = 0,
    LUABOX_FAIL_ERROR,
    LUABOX_FAIL_MEMORY,
    LUABOX_FAIL_BUDGET
} luabox_failure;
luabox_failure luabox_last_failure(const luabox *b);

/* Makes `require(name)` return what open(L) returns (a C module of the host's, e.g. the
 * code sandbox); -1 and a message if open fails. */
int luabox_preload(luabox *b, const char *name, int (*open)(struct lua_State *), rlvr_err *e);

/* Moves the running call's wall-clock deadline `seconds` later: for host functions that
 * wait on something with its own time limit (the code sandbox), so that the wait is not
 * charged to the script. Called from a C function running in the state `L`. */
void luabox_extend_deadline(struct lua_State *L, double seconds);

/* Bytes currently held by the state (for tests and reports). */
size_t luabox_memory(const luabox *b);

#endif
