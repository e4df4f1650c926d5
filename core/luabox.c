/* luabox.c - the restricted Lua state: safe libraries, text-only `load`, a `require`
 * confined to one folder and rlvr's embedded modules, and memory / time budgets.
 *
 * Allocator contract (lua_Alloc): `used` counts the bytes Lua holds; a request that would
 * take it past `limit` fails, which Lua turns into a "not enough memory" error after an
 * emergency collection. Budgets are checked in a count hook, so they bound Lua code; a
 * long C call that allocates (string.rep, gsub, table.concat) is stopped by the allocator,
 * which also refuses requests once the call's wall-clock deadline has passed; and a
 * backtracking pattern match, which does neither, runs under a timer in a scratch state
 * (see "pattern matching under the deadline" below). */
/* timer_create with SIGEV_THREAD_ID (a timer that signals one thread) is a GNU extension. */
#define _GNU_SOURCE
#include "luabox.h"

#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lualib.h"
#include "util.h"

/* Lua's own lualib.h is shadowed by rlvr's lua/lualib.h on the include path, so the five
 * library openers used here are declared directly (they are Lua's stable C API). */
int luaopen_base(lua_State *L);
int luaopen_string(lua_State *L);
int luaopen_table(lua_State *L);
int luaopen_math(lua_State *L);
int luaopen_utf8(lua_State *L);

/* Instructions between two budget checks: small enough to stop within microseconds,
 * large enough that the hook costs nothing measurable. */
#define BOX_HOOK_EVERY 1000
/* Deepest chain of modules being loaded at once (a requires b requires c ...). */
#define BOX_MAX_DEPTH 32
#define BOX_MAX_NAME 200

struct luabox {
    lua_State *L;
    size_t used, limit;
    long long max_instructions, instructions;
    double max_seconds, deadline;
    luabox_failure failure;
    int mem_refused;  /* the allocator refused a request during this call */
    int time_refused; /* ... because the call's deadline had passed */
    int budget_hit;   /* the hook stopped the call (instructions or time) */
    int in_call;      /* inside luabox_pcall: the deadline applies */
    unsigned n_allocs;
    char *module_dir;
    /* Modules being loaded, outermost first: for naming a require cycle. Fixed storage
     * so that a Lua error (a longjmp) can never leak it. */
    int depth;
    char loading[BOX_MAX_DEPTH][BOX_MAX_NAME + 1];
    /* Every file path given to Lua as "@path", to undo Lua's shortening of long chunk
     * names ("...end/of/the/path.lua:3:") in error messages. */
    char **paths;
    size_t n_paths, cap_paths;
};

/* The registry key of the table of loaded modules. */
static const char box_loaded_key = 0;

static void *box_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    luabox *b = ud;
    /* With ptr == NULL, osize is a type tag, not a size. */
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        b->used -= old;
        return NULL;
    }
    if (b->limit && nsize > old && b->used - old + nsize > b->limit) {
        b->mem_refused = 1;
        return NULL;
    }
    /* The deadline, checked on every 64th request and on every large one: a C function
     * building a big result (string.rep, gsub) allocates as it grows, so this is where a
     * call that runs no Lua instructions can still be stopped. Refusing turns into a
     * memory error, which luabox_pcall reports as the time budget. */
    if (b->in_call && b->max_seconds > 0 && nsize > old && (++b->n_allocs % 64 == 0 || nsize >= 65536) &&
        util_now() > b->deadline) {
        b->time_refused = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (!p) {
        b->mem_refused = 1;
        return NULL;
    }
    b->used = b->used - old + nsize;
    return p;
}

/* Warnings (e.g. from a failing __gc) would go to stderr; a library does not print. */
static void box_warn(void *ud, const char *msg, int tocont) {
    (void)ud, (void)msg, (void)tocont;
}

static void box_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    luabox *b = *(luabox **)lua_getextraspace(L);
    b->instructions += BOX_HOOK_EVERY;
    if (b->max_instructions && b->instructions > b->max_instructions) {
        b->budget_hit = 1;
        luaL_where(L, 0);
        lua_pushfstring(L, "the script ran more than %I Lua instructions (is there an endless loop?)",
                        (lua_Integer)b->max_instructions);
        lua_concat(L, 2);
        lua_error(L);
    }
    if (b->max_seconds > 0 && util_now() > b->deadline) {
        b->budget_hit = 1;
        luaL_where(L, 0);
        lua_pushfstring(L, "the script ran longer than %f seconds (is there an endless loop?)", b->max_seconds);
        lua_concat(L, 2);
        lua_error(L);
    }
}

static int box_remember_path(luabox *b, const char *path) {
    for (size_t i = 0; i < b->n_paths; i++)
        if (strcmp(b->paths[i], path) == 0) return 0;
    if (b->n_paths == b->cap_paths) {
        size_t cap = b->cap_paths ? 2 * b->cap_paths : 8;
        char **p = realloc(b->paths, cap * sizeof *p);
        if (!p) return -1;
        b->paths = p;
        b->cap_paths = cap;
    }
    char *copy = util_strdup(path);
    if (!copy) return -1;
    b->paths[b->n_paths++] = copy;
    return 0;
}

/* ---- load: text only --------------------------------------------------------------- */

/* Wraps the base library's load (upvalue 1) with mode forced to "t": precompiled chunks
 * can crash the VM, so they are never accepted. The environment stays the sandbox's
 * globals unless the caller passes one. */
static int box_load(lua_State *L) {
    int n = lua_gettop(L);
    if (lua_type(L, 1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, 1, &len);
        if (len > 0 && s[0] == LUA_SIGNATURE[0]) {
            luaL_pushfail(L);
            lua_pushliteral(L, "load: precompiled (binary) chunks are not allowed; pass Lua source text");
            return 2;
        }
    }
    if (n < 3) lua_settop(L, 3); /* the env argument (4) stays absent: absent is not nil */
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* ---- require --------------------------------------------------------------------- */

static int box_valid_module_name(const char *name, size_t len) {
    if (len == 0 || len > BOX_MAX_NAME || name[0] == '.' || name[len - 1] == '.' || strstr(name, ".."))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return 0;
    }
    return 1;
}

/* Loads module `name`'s chunk onto the stack; raises "module not found" when neither the
 * module folder nor rlvr's modules have it. */
static void box_find_module(lua_State *L, luabox *b, const char *name) {
    char path[4096] = "";
    if (b->module_dir) {
        char rel[BOX_MAX_NAME + 8];
        snprintf(rel, sizeof rel, "%s", name);
        for (char *p = rel; *p; p++)
            if (*p == '.') *p = '/';
        snprintf(path, sizeof path, "%s/%s.lua", b->module_dir, rel);
        if (util_is_file(path)) {
            lua_pushfstring(L, "@%s", path); /* before any malloc: this may raise */
            rlvr_err e;
            size_t len;
            char *src = util_read_file(path, &len, &e);
            if (!src) luaL_error(L, "require '%s': %s", name, e.msg);
            int remembered = box_remember_path(b, path);
            int st = luaL_loadbufferx(L, src, len, lua_tostring(L, -1), "t");
            free(src);
            if (remembered != 0) luaL_error(L, "require '%s': out of memory", name);
            if (st != LUA_OK) lua_error(L);
            lua_remove(L, -2); /* the chunk name */
            return;
        }
    }
    lualib_source ls;
    if (lualib_find(name, &ls) == 0) {
        lua_pushfstring(L, "@%s", ls.path);
        /* lua_pushfstring may have raised before this point; from here nothing raises
         * until the source is freed. */
        int st = luaL_loadbufferx(L, ls.src, ls.len, lua_tostring(L, -1), "t");
        lualib_source_free(&ls);
        if (st != LUA_OK) lua_error(L);
        lua_remove(L, -2);
        return;
    }
    if (b->module_dir) luaL_error(L, "module '%s' not found: looked in %s and rlvr's modules", name, path);
    luaL_error(L, "module '%s' not found: looked in rlvr's modules", name);
}

static int box_require(lua_State *L) {
    luabox *b = lua_touserdata(L, lua_upvalueindex(1));
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    if (!box_valid_module_name(name, len) || strlen(name) != len)
        return luaL_error(L,
                          "require '%s': not a module name (use dots for folders, e.g. 'presets.base'; "
                          "'/' and '..' are not allowed)",
                          name);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &box_loaded_key);
    if (lua_getfield(L, -1, name) != LUA_TNIL) return 1;
    lua_pop(L, 2);

    for (int i = 0; i < b->depth; i++) {
        if (strcmp(b->loading[i], name) != 0) continue;
        luaL_Buffer chain;
        luaL_buffinit(L, &chain);
        for (int k = i; k < b->depth; k++) {
            luaL_addstring(&chain, b->loading[k]);
            luaL_addstring(&chain, " -> ");
        }
        luaL_addstring(&chain, name);
        luaL_pushresult(&chain);
        return luaL_error(L, "require cycle: %s", lua_tostring(L, -1));
    }
    if (b->depth == BOX_MAX_DEPTH) return luaL_error(L, "require '%s': modules nested deeper than %d", name, BOX_MAX_DEPTH);

    box_find_module(L, b, name);
    lua_pushstring(L, name); /* the module's `...`, as in standard Lua */
    /* Nothing between marking and unmarking can raise: the call is protected. */
    memcpy(b->loading[b->depth], name, len + 1);
    b->depth++;
    int st = lua_pcall(L, 1, 1, 0);
    b->depth--;
    if (st != LUA_OK) return lua_error(L);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &box_loaded_key);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
    return 1;
}

static void box_guard_string(lua_State *L, luabox *b);

/* ---- creation -------------------------------------------------------------------- */

/* Runs protected, so an allocation failure while opening libraries is an error, not a
 * panic. */
static int box_open(lua_State *L) {
    luabox *b = lua_touserdata(L, 1);
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base}, {"string", luaopen_string}, {"table", luaopen_table},
        {"math", luaopen_math},    {"utf8", luaopen_utf8},
    };
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        luaL_requiref(L, libs[i].name, libs[i].func, 1);
        lua_pop(L, 1);
    }
    lua_pushglobaltable(L);
    /* Files are reached only through require; printing is the caller's business. */
    static const char *const removed[] = {"dofile", "loadfile", "print", "warn"};
    for (size_t i = 0; i < sizeof removed / sizeof removed[0]; i++) {
        lua_pushnil(L);
        lua_setfield(L, -2, removed[i]);
    }
    lua_getfield(L, -1, "load");
    lua_pushcclosure(L, box_load, 1);
    lua_setfield(L, -2, "load");
    lua_pushlightuserdata(L, b);
    lua_pushcclosure(L, box_require, 1);
    lua_setfield(L, -2, "require");
    /* string.dump turns functions into bytecode, which nothing here may load. */
    lua_getfield(L, -1, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 2);
    box_guard_string(L, b);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &box_loaded_key);
    return 0;
}

luabox *luabox_new(const luabox_opts *opts, rlvr_err *e) {
    luabox *b = calloc(1, sizeof *b);
    if (!b) {
        err_set(e, "out of memory creating a Lua state");
        return NULL;
    }
    if (opts) {
        b->limit = opts->max_memory;
        b->max_instructions = opts->max_instructions;
        b->max_seconds = opts->max_seconds;
        if (opts->module_dir && !(b->module_dir = util_strdup(opts->module_dir))) {
            free(b);
            err_set(e, "out of memory creating a Lua state");
            return NULL;
        }
    }
    b->L = lua_newstate(box_alloc, b);
    if (!b->L) {
        err_set(e, "out of memory creating a Lua state");
        luabox_free(b);
        return NULL;
    }
    *(luabox **)lua_getextraspace(b->L) = b;
    lua_setwarnf(b->L, box_warn, NULL);
    lua_pushcfunction(b->L, box_open);
    lua_pushlightuserdata(b->L, b);
    if (lua_pcall(b->L, 1, 0, 0) != LUA_OK) {
        err_set(e, "creating a Lua state: %s", lua_tostring(b->L, -1) ? lua_tostring(b->L, -1) : "error");
        luabox_free(b);
        return NULL;
    }
    if (b->max_instructions || b->max_seconds > 0) lua_sethook(b->L, box_hook, LUA_MASKCOUNT, BOX_HOOK_EVERY);
    return b;
}

void luabox_free(luabox *b) {
    if (!b) return;
    if (b->L) lua_close(b->L);
    for (size_t i = 0; i < b->n_paths; i++) free(b->paths[i]);
    free(b->paths);
    free(b->module_dir);
    free(b);
}

lua_State *luabox_state(luabox *b) { return b->L; }

size_t luabox_memory(const luabox *b) { return b->used; }

/* Replaces each "...<last characters of a known path>" in msg with the whole path:
 * Lua cuts chunk names to LUA_IDSIZE, and a cut path cannot be opened by the reader. */
static void box_restore_paths(const luabox *b, char *msg, size_t cap) {
    const size_t keep = LUA_IDSIZE - 4; /* luaO_chunkid: "..." + the last IDSIZE-4 bytes */
    for (size_t i = 0; i < b->n_paths; i++) {
        const char *path = b->paths[i];
        size_t plen = strlen(path);
        if (plen + 1 <= LUA_IDSIZE) continue;
        char cut[LUA_IDSIZE + 4];
        snprintf(cut, sizeof cut, "...%s", path + plen - keep);
        size_t clen = strlen(cut);
        char *at = msg;
        while ((at = strstr(at, cut)) != NULL) {
            size_t mlen = strlen(msg), off = (size_t)(at - msg);
            if (mlen - clen + plen + 1 > cap) break;
            memmove(at + plen, at + clen, mlen - off - clen + 1);
            memcpy(at, path, plen);
            at += plen;
        }
    }
}

int luabox_load(luabox *b, const char *src, size_t len, const char *chunkname, rlvr_err *e) {
    if (chunkname[0] == '@' && box_remember_path(b, chunkname + 1) != 0) return err_set(e, "out of memory");
    if (len > 0 && src[0] == LUA_SIGNATURE[0])
        return err_set(e, "%s: precompiled (binary) chunks are not allowed; pass Lua source text",
                       chunkname[0] == '@' || chunkname[0] == '=' ? chunkname + 1 : chunkname);
    b->mem_refused = 0;
    int st = luaL_loadbufferx(b->L, src, len, chunkname, "t");
    if (st == LUA_OK) return 0;
    if (st == LUA_ERRMEM || b->mem_refused)
        err_set(e, "out of memory compiling %s", chunkname[0] == '@' ? chunkname + 1 : chunkname);
    else {
        err_set(e, "%s", lua_tostring(b->L, -1) ? lua_tostring(b->L, -1) : "syntax error");
        if (e) box_restore_paths(b, e->msg, sizeof e->msg);
    }
    lua_pop(b->L, 1);
    return -1;
}

int luabox_pcall(luabox *b, int nargs, int nres, rlvr_err *e) {
    lua_State *L = b->L;
    b->instructions = 0;
    b->deadline = util_now() + b->max_seconds;
    b->mem_refused = b->time_refused = b->budget_hit = 0;
    b->failure = LUABOX_FAIL_NONE;
    b->depth = 0;
    b->in_call = 1;
    int st = lua_pcall(L, nargs, nres, 0);
    b->in_call = 0;
    if (st == LUA_OK) return 0;
    const char *msg = lua_tostring(L, -1);
    int oom = st == LUA_ERRMEM || ((b->mem_refused || b->time_refused) && msg && strcmp(msg, "not enough memory") == 0);
    b->failure = b->budget_hit ? LUABOX_FAIL_BUDGET : LUABOX_FAIL_ERROR;
    if (oom && b->time_refused) {
        b->failure = LUABOX_FAIL_BUDGET;
        err_set(e, "the script ran longer than %g seconds (stopped inside a library call)", b->max_seconds);
    } else if (oom) {
        b->failure = LUABOX_FAIL_MEMORY;
        if (b->limit)
            err_set(e, "out of memory: the Lua state is limited to %zu MiB", b->limit >> 20);
        else
            err_set(e, "out of memory");
    } else if (msg) {
        err_set(e, "%s", msg);
        if (e) box_restore_paths(b, e->msg, sizeof e->msg);
    } else {
        err_set(e, "error object is a %s value", luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return -1;
}

luabox_failure luabox_last_failure(const luabox *b) { return b->failure; }

/* Runs open(name) protected and stores its result as the loaded module `name`. */
static int box_preload_call(lua_State *L) {
    lua_CFunction open = (lua_CFunction)(uintptr_t)lua_touserdata(L, 1);
    const char *name = lua_tostring(L, 2);
    lua_pushcfunction(L, open);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &box_loaded_key);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, name);
    return 0;
}

int luabox_preload(luabox *b, const char *name, int (*open)(struct lua_State *), rlvr_err *e) {
    lua_State *L = b->L;
    lua_pushcfunction(L, box_preload_call);
    lua_pushlightuserdata(L, (void *)(uintptr_t)open);
    lua_pushstring(L, name);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        err_set(e, "opening module '%s': %s", name, lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
        lua_pop(L, 1);
        return -1;
    }
    return 0;
}

void luabox_extend_deadline(lua_State *L, double seconds) {
    luabox *b = *(luabox **)lua_getextraspace(L);
    if (seconds > 0) b->deadline += seconds;
}

/* ---- pattern matching under the deadline ---------------------------------------------
 *
 * Lua's pattern matcher backtracks: string.find(string.rep("a", 3e5), "a-a-a-a-b") runs
 * for hours without executing a Lua instruction or allocating, so neither the count hook
 * nor the allocator sees it. string.find/match/gsub (and gmatch, rebuilt on find) are
 * therefore wrapped: when the worst case of a call is small (subject length n, q
 * backtracking quantifiers: about (n+1)^(q+1) steps) the library function runs directly;
 * otherwise it runs in a throwaway Lua state whose memory is one mmap'ed arena (a bump
 * allocator: nothing in it needs freeing one by one), with a per-thread timer that
 * delivers a signal at the call's deadline. The handler siglongjmps out of the matcher
 * and the arena is unmapped whole: the interrupted code touched nothing but the arena,
 * so nothing is left inconsistent. Results are copied back into the real state. */

#define GUARD_DIRECT_STEPS 2e7
#define GUARD_SIGNAL (SIGRTMIN + 3)

typedef struct guard_arena {
    char *base;
    size_t size, used;
    void *last; /* the most recent block, which may grow in place */
    size_t last_size;
} guard_arena;

static void *guard_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    guard_arena *a = ud;
    if (nsize == 0) return NULL; /* freed with the arena */
    size_t old = ptr ? osize : 0;
    if (ptr && ptr == a->last && (char *)ptr + nsize <= a->base + a->size) {
        a->used = (size_t)((char *)ptr - a->base) + ((nsize + 15) & ~(size_t)15);
        a->last_size = nsize;
        return ptr;
    }
    if (ptr && nsize <= old) return ptr;
    size_t need = (nsize + 15) & ~(size_t)15;
    if (a->used + need > a->size) return NULL;
    void *p = a->base + a->used;
    a->used += need;
    if (ptr) memcpy(p, ptr, old < nsize ? old : nsize);
    a->last = p;
    a->last_size = nsize;
    return p;
}

static _Thread_local sigjmp_buf *guard_jmp;
static _Thread_local volatile sig_atomic_t guard_armed;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;

static void guard_handler(int sig) {
    (void)sig;
    if (guard_armed && guard_jmp) {
        guard_armed = 0;
        siglongjmp(*guard_jmp, 1);
    }
}

static void guard_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = guard_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(GUARD_SIGNAL, &sa, NULL);
}

/* Steps in the worst case of matching pattern p against n bytes (an over-estimate). */
static double guard_cost(const char *p, size_t plen, size_t n) {
    int q = 0, opt = 0;
    for (size_t i = 0; i < plen; i++) {
        char c = p[i];
        if (c == '%') {
            i++;
            continue;
        }
        if (c == '[') { /* a set: skip to its closing bracket */
            i++;
            if (i < plen && p[i] == '^') i++;
            if (i < plen) i++; /* a leading ']' is part of the set */
            while (i < plen && p[i] != ']') {
                if (p[i] == '%') i++;
                i++;
            }
            continue;
        }
        if (c == '*' || c == '-' || c == '+') q++;
        else if (c == '?') opt++;
    }
    double cost = (double)(n + 1);
    for (int k = 0; k < q && cost < 1e30; k++) cost *= (double)(n + 1);
    for (int k = 0; k < opt && cost < 1e30; k++) cost *= 2;
    return cost * (double)(plen + 1);
}

/* Calls string.<name> (upvalue 1: the library function) with the arguments on L's stack
 * in a scratch state under the deadline; pushes its results onto L. With check_only, the
 * call is made but its results dropped (gsub's dry run). Returns the number of results. */
static int guard_run(lua_State *L, luabox *b, const char *name, int nargs, int check_only) {
    pthread_once(&guard_once, guard_install);
    size_t total = 0;
    for (int i = 1; i <= nargs; i++)
        if (lua_type(L, i) == LUA_TSTRING) total += lua_rawlen(L, i);
    guard_arena a = {0};
    a.size = 8 * total + (8u << 20); /* lazily mapped: only what is touched costs */
    a.base = mmap(NULL, a.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a.base == MAP_FAILED) return luaL_error(L, "string.%s: out of memory", name);
    lua_State *S = lua_newstate(guard_alloc, &a);
    if (!S) {
        munmap(a.base, a.size);
        return luaL_error(L, "string.%s: out of memory", name);
    }
    luaL_requiref(S, "string", luaopen_string, 0);
    lua_getfield(S, -1, name);
    lua_remove(S, -2);
    for (int i = 1; i <= nargs; i++) {
        size_t len;
        switch (lua_type(L, i)) {
        case LUA_TSTRING: {
            const char *str = lua_tolstring(L, i, &len);
            lua_pushlstring(S, str, len);
            break;
        }
        case LUA_TNUMBER:
            if (lua_isinteger(L, i)) lua_pushinteger(S, lua_tointeger(L, i));
            else lua_pushnumber(S, lua_tonumber(L, i));
            break;
        case LUA_TBOOLEAN: lua_pushboolean(S, lua_toboolean(L, i)); break;
        default: lua_pushnil(S); break;
        }
    }
    double left = b->deadline - util_now();
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = GUARD_SIGNAL;
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    timer_t timer;
    int st = -1, interrupted = 0;
    if (left > 0 && timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0) {
        sigjmp_buf jb;
        if (sigsetjmp(jb, 1) == 0) {
            struct itimerspec its;
            memset(&its, 0, sizeof its);
            its.it_value.tv_sec = (time_t)left;
            its.it_value.tv_nsec = (long)((left - (double)(time_t)left) * 1e9) + 1;
            guard_jmp = &jb;
            guard_armed = 1;
            timer_settime(timer, 0, &its, NULL);
            st = lua_pcall(S, nargs, LUA_MULTRET, 0);
            guard_armed = 0;
        } else {
            interrupted = 1;
        }
        guard_armed = 0;
        guard_jmp = NULL;
        timer_delete(timer);
    } else {
        interrupted = left <= 0;
    }
    if (interrupted || st != LUA_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", !interrupted && lua_isstring(S, -1) ? lua_tostring(S, -1) : "");
        munmap(a.base, a.size); /* S and everything in it */
        if (interrupted) {
            b->budget_hit = 1;
            return luaL_error(L, "the script ran longer than %f seconds (stopped in string.%s)", b->max_seconds, name);
        }
        return luaL_error(L, "%s", msg[0] ? msg : "pattern error");
    }
    int nres = lua_gettop(S);
    if (!check_only) {
        luaL_checkstack(L, nres, "too many results");
        for (int i = 1; i <= nres; i++) {
            size_t len;
            switch (lua_type(S, i)) {
            case LUA_TSTRING: {
                const char *str = lua_tolstring(S, i, &len);
                lua_pushlstring(L, str, len); /* may raise: S is still mapped, unmapped below */
                break;
            }
            case LUA_TNUMBER:
                if (lua_isinteger(S, i)) lua_pushinteger(L, lua_tointeger(S, i));
                else lua_pushnumber(L, lua_tonumber(S, i));
                break;
            default: lua_pushnil(L); break;
            }
        }
    }
    munmap(a.base, a.size);
    return check_only ? 0 : nres;
}

/* The wrapper of string.find / match / gsub: upvalue 1 the library function, upvalue 2
 * its name. */
static int guard_string_call(lua_State *L) {
    luabox *b = *(luabox **)lua_getextraspace(L);
    const char *name = lua_tostring(L, lua_upvalueindex(2));
    int nargs = lua_gettop(L);
    size_t n = 0, plen = 0;
    const char *p = NULL;
    if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER) lua_tolstring(L, 1, &n);
    if (lua_type(L, 2) == LUA_TSTRING) p = lua_tolstring(L, 2, &plen);
    int plain = strcmp(name, "find") == 0 && lua_toboolean(L, 4);
    int direct = !b->in_call || b->max_seconds <= 0 || !p || plain || guard_cost(p, plen, n) <= GUARD_DIRECT_STEPS;
    if (!direct && strcmp(name, "gsub") == 0 && lua_type(L, 3) != LUA_TSTRING && lua_type(L, 3) != LUA_TNUMBER) {
        /* A function or table replacement cannot move to the scratch state: a dry run with
         * "%0" does the same matching there first, under the deadline. */
        lua_pushvalue(L, 3);
        lua_pushliteral(L, "%0");
        lua_replace(L, 3);
        guard_run(L, b, name, nargs, 1);
        lua_replace(L, 3);
        direct = 1;
    }
    if (direct) {
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_insert(L, 1);
        lua_call(L, nargs, LUA_MULTRET);
        return lua_gettop(L);
    }
    return guard_run(L, b, name, nargs, 0);
}

/* string.gmatch rebuilt on the guarded find, with Lua 5.4's semantics: a match may not
 * end where the previous one ended, '^' is an ordinary character, and the captures (or
 * the whole match) are returned. */
static const char guard_gmatch_src[] =
    "local find, sub, type, error, tostring, pack, unpack = ...\n"
    "return function(s, p, init)\n"
    "  if type(s) == 'number' then s = tostring(s) end\n"
    "  if type(s) ~= 'string' then error(\"bad argument #1 to 'gmatch' (string expected, got \" .. type(s) .. ')', 2) end\n"
    "  if type(p) == 'number' then p = tostring(p) end\n"
    "  if type(p) ~= 'string' then error(\"bad argument #2 to 'gmatch' (string expected, got \" .. type(p) .. ')', 2) end\n"
    "  if sub(p, 1, 1) == '^' then p = '%' .. p end\n"
    "  local len = #s\n"
    "  local pos = init or 1\n"
    "  if pos < 0 then pos = len + pos + 1 end\n"
    "  if pos < 1 then pos = 1 end\n"
    "  if pos > len + 1 then pos = len + 1 end\n"
    "  local last = -1\n"
    "  return function()\n"
    "    while pos <= len + 1 do\n"
    "      local r = pack(find(s, p, pos))\n"
    "      if not r[1] then pos = len + 2 return nil end\n"
    "      local st, e = r[1], r[2]\n"
    "      if e ~= last then\n"
    "        pos, last = e + 1, e\n"
    "        if e < st then pos = e + 1 end\n"
    "        if r.n > 2 then return unpack(r, 3, r.n) end\n"
    "        return sub(s, st, e)\n"
    "      end\n"
    "      pos = st + 1\n"
    "    end\n"
    "    return nil\n"
    "  end\n"
    "end\n";

static void box_guard_string(lua_State *L, luabox *b) {
    (void)b;
    lua_getglobal(L, "string");
    static const char *const names[] = {"find", "match", "gsub"};
    for (int i = 0; i < 3; i++) {
        lua_getfield(L, -1, names[i]);
        lua_pushstring(L, names[i]);
        lua_pushcclosure(L, guard_string_call, 2);
        lua_setfield(L, -2, names[i]);
    }
    if (luaL_loadbufferx(L, guard_gmatch_src, sizeof guard_gmatch_src - 1, "=gmatch", "t") != LUA_OK) lua_error(L);
    lua_getfield(L, -2, "find");
    lua_getfield(L, -3, "sub");
    lua_getglobal(L, "type");
    lua_getglobal(L, "error");
    lua_getglobal(L, "tostring");
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "pack");
    lua_getfield(L, -2, "unpack");
    lua_remove(L, -3);
    lua_call(L, 7, 1);
    lua_setfield(L, -2, "gmatch");
    lua_pop(L, 1);
}
