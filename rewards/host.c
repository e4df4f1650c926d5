/* host.c - one restricted Lua state holding a reward script: loading it (built-in by
 * name or a file), checking it against its own self-test, calling `reward` on a sample
 * under the instruction / memory / time budgets, and rebuilding the state after it ran
 * out of memory (a state refused an allocation may hold half-built tables). */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "luabox.h"
#include "lualib.h"
#include "rewards.h"
#include "util.h"

#define HOST_MAX_DEPTH 64 /* nesting of JSON values turned into Lua tables */

struct rw_host {
    rw_opts opts;
    char *script; /* owned copy of opts.script */
    luabox *box;
    int ref_reward;  /* registry refs: the reward function, the weights table or LUA_NOREF */
    int ref_weights;
    size_t n_weights;
    rw_part *weights; /* names owned */
    size_t n_fields;
    char **fields;    /* the row fields the script declares it reads (`fields`) */
};

void rw_result_clear(rw_result *r) {
    for (size_t i = 0; i < r->n_parts; i++) free((char *)r->parts[i].name);
    free(r->parts);
    free(r->error);
    memset(r, 0, sizeof *r);
}

int rw_result_part(const rw_result *r, const char *name, double *value) {
    for (size_t i = 0; i < r->n_parts; i++)
        if (strcmp(r->parts[i].name, name) == 0) {
            *value = r->parts[i].value;
            return 1;
        }
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

char *rw_script_source(const char *spec, size_t *len, char chunkname[512], char module_dir[512], rlvr_err *e) {
    module_dir[0] = 0;
    if (!spec || !*spec) {
        err_set(e, "no reward script given");
        return NULL;
    }
    if (strchr(spec, '/') || ends_with(spec, ".lua")) {
        char *src = util_read_file(spec, len, e);
        if (!src) return NULL;
        snprintf(chunkname, 512, "@%s", spec);
        char *dir = util_dirname(spec);
        if (dir) snprintf(module_dir, 512, "%s", dir);
        free(dir);
        return src;
    }
    char mod[256];
    snprintf(mod, sizeof mod, "rewards.%s", spec);
    lualib_source ls;
    if (strlen(spec) < 200 && lualib_find(mod, &ls) == 0) {
        *len = ls.len;
        snprintf(chunkname, 512, "@%s", ls.path);
        return ls.src;
    }
    /* Not found: list the built-ins and suggest the nearest. */
    const char *names[64];
    size_t n = 0;
    sbuf list;
    sb_init(&list);
    for (size_t i = 0; lualib_module_name(i) && n < 64; i++) {
        const char *m = lualib_module_name(i);
        if (strncmp(m, "rewards.", 8) != 0) continue;
        names[n++] = m + 8;
        sb_printf(&list, "%s%s", list.len ? ", " : "", m + 8);
    }
    const char *near = util_suggest(spec, names, n);
    if (near)
        err_set(e, "unknown reward script '%s' (did you mean '%s'?); built-in scripts: %s; or give a path to a .lua file",
                spec, near, list.len ? list.s : "none");
    else
        err_set(e, "unknown reward script '%s'; built-in scripts: %s; or give a path to a .lua file", spec,
                list.len ? list.s : "none");
    sb_free(&list);
    return NULL;
}

/* ---- JSON -> Lua ---------------------------------------------------------------- */

static void push_json(lua_State *L, const cJSON *v, int depth) {
    if (depth > HOST_MAX_DEPTH) luaL_error(L, "sample nested deeper than %d levels", HOST_MAX_DEPTH);
    luaL_checkstack(L, 4, "sample too deep");
    if (cJSON_IsString(v)) {
        lua_pushstring(L, v->valuestring);
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0) lua_pushinteger(L, (lua_Integer)d);
        else lua_pushnumber(L, d);
    } else if (cJSON_IsBool(v)) {
        lua_pushboolean(L, cJSON_IsTrue(v));
    } else if (cJSON_IsArray(v)) {
        lua_createtable(L, cJSON_GetArraySize(v), 0);
        lua_Integer i = 1;
        for (const cJSON *c = v->child; c; c = c->next) {
            push_json(L, c, depth + 1);
            lua_rawseti(L, -2, i++);
        }
    } else if (cJSON_IsObject(v)) {
        lua_newtable(L);
        for (const cJSON *c = v->child; c; c = c->next) {
            if (cJSON_IsNull(c) || !c->string) continue; /* absent and null read the same in Lua */
            push_json(L, c, depth + 1);
            lua_setfield(L, -2, c->string);
        }
    } else {
        lua_pushnil(L);
    }
}

/* Runs under luabox_pcall: (reward function, sample userdata) -> reward(sample). The
 * conversion is inside the protected call so that running out of memory building the
 * sample is one more budget failure, not a panic. */
static int host_call(lua_State *L) {
    const cJSON *sample = lua_touserdata(L, 2);
    lua_settop(L, 1);
    push_json(L, sample, 0);
    lua_call(L, 1, 1);
    return 1;
}

/* ---- results -------------------------------------------------------------------- */

static int cmp_part(const void *a, const void *b) {
    return strcmp(((const rw_part *)a)->name, ((const rw_part *)b)->name);
}

static void fail(rw_result *r, rw_status st, double fallback, const char *msg) {
    rw_result_clear(r);
    r->status = st;
    r->reward = fallback;
    r->error = util_strdup(msg);
}

/* Reads the value on top of the stack (popped) as the reward: a number, or a table of
 * named numeric parts combined with the weights. Fills r (status ok or error). */
static void host_take_result(rw_host *h, rw_result *r) {
    lua_State *L = luabox_state(h->box);
    char msg[512];
    rw_result_clear(r);
    int t = lua_type(L, -1);
    if (t == LUA_TNUMBER) {
        double v = lua_tonumber(L, -1);
        lua_pop(L, 1);
        if (!isfinite(v)) {
            snprintf(msg, sizeof msg, "reward returned %g, expected a finite number", v);
            return fail(r, RW_ERROR, h->opts.fallback, msg);
        }
        r->status = RW_OK;
        r->reward = v;
        return;
    }
    if (t != LUA_TTABLE) {
        snprintf(msg, sizeof msg, "reward returned a %s, expected a number or a table of named parts",
                 lua_typename(L, t));
        lua_pop(L, 1);
        return fail(r, RW_ERROR, h->opts.fallback, msg);
    }
    size_t cap = 8;
    r->parts = calloc(cap, sizeof *r->parts);
    lua_pushnil(L);
    while (r->parts && lua_next(L, -2)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TNUMBER) {
            snprintf(msg, sizeof msg, "reward part %s%s%s is a %s, expected a number (parts are name = number)",
                     lua_type(L, -2) == LUA_TSTRING ? "'" : "[",
                     lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2),
                     lua_type(L, -2) == LUA_TSTRING ? "'" : "]", luaL_typename(L, -1));
            lua_pop(L, 3);
            return fail(r, RW_ERROR, h->opts.fallback, msg);
        }
        if (r->n_parts == cap) {
            rw_part *p = realloc(r->parts, 2 * cap * sizeof *p);
            if (!p) break;
            r->parts = p;
            cap *= 2;
        }
        r->parts[r->n_parts].name = util_strdup(lua_tostring(L, -2));
        r->parts[r->n_parts].value = lua_tonumber(L, -1);
        r->n_parts++;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    qsort(r->parts, r->n_parts, sizeof *r->parts, cmp_part);
    const char *missing = NULL;
    if (rw_combine(r->parts, r->n_parts, h->weights, h->n_weights, &r->reward, &missing) != 0) {
        int is_weight = 1;
        for (size_t i = 0; i < r->n_parts; i++)
            if (r->parts[i].name == missing) is_weight = 0;
        if (is_weight)
            snprintf(msg, sizeof msg, "reward returned no part '%s', which `weights` names", missing);
        else
            snprintf(msg, sizeof msg, "reward part '%s' is not a finite number", missing);
        return fail(r, RW_ERROR, h->opts.fallback, msg);
    }
    r->status = RW_OK;
}

/* Calls reward(sample) where the sample is a cJSON object (json != NULL) or the Lua
 * value on top of the stack (popped). */
static void host_call_reward(rw_host *h, const cJSON *json, rw_result *r) {
    lua_State *L = luabox_state(h->box);
    rlvr_err e;
    if (json) {
        lua_pushcfunction(L, host_call);
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref_reward);
        lua_pushlightuserdata(L, (void *)json);
    } else {
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref_reward);
        lua_insert(L, -2);
    }
    int st = json ? luabox_pcall(h->box, 2, 1, &e) : luabox_pcall(h->box, 1, 1, &e);
    if (st != 0) {
        rw_status s = luabox_last_failure(h->box) == LUABOX_FAIL_BUDGET ? RW_TIMEOUT : RW_ERROR;
        return fail(r, s, h->opts.fallback, e.msg);
    }
    host_take_result(h, r);
}

/* ---- loading ---------------------------------------------------------------------- */

static void host_drop_state(rw_host *h) {
    luabox_free(h->box);
    h->box = NULL;
    for (size_t i = 0; i < h->n_weights; i++) free((char *)h->weights[i].name);
    free(h->weights);
    h->weights = NULL;
    h->n_weights = 0;
    for (size_t i = 0; i < h->n_fields; i++) free(h->fields[i]);
    free(h->fields);
    h->fields = NULL;
    h->n_fields = 0;
}

/* Runs the script's `selftest` cases ({sample = {...}, reward = x} or {..., error = true})
 * and fails naming the first case that disagrees. */
static int host_selftest(rw_host *h, const char *chunk, rlvr_err *e) {
    lua_State *L = luabox_state(h->box);
    lua_getfield(L, -1, "selftest");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return err_set(e, "%s: `selftest` must be a list of {sample = {...}, reward = number}", chunk);
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        if (!lua_istable(L, -1)) {
            lua_pop(L, 2);
            return err_set(e, "%s: selftest case %lld is not a table", chunk, (long long)i);
        }
        lua_getfield(L, -1, "reward");
        int has_expect = lua_isnumber(L, -1);
        double expect = lua_tonumber(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, -1, "sample");
        rw_result r = {0};
        host_call_reward(h, NULL, &r); /* pops the sample */
        lua_pop(L, 1);                 /* the case */
        int ok = r.status == RW_OK && has_expect && fabs(r.reward - expect) <= 1e-9 * (1 + fabs(expect));
        if (!ok) {
            if (r.status != RW_OK)
                err_set(e, "%s: self-test case %lld failed: %s", chunk, (long long)i, r.error ? r.error : "error");
            else
                err_set(e, "%s: self-test case %lld: reward %g, expected %g; the script disagrees with its own "
                           "gold cases, refusing to use it",
                        chunk, (long long)i, r.reward, expect);
            rw_result_clear(&r);
            lua_pop(L, 1);
            return -1;
        }
        rw_result_clear(&r);
    }
    lua_pop(L, 1);
    return 0;
}

/* The optional `fields = {"answer", ...}`: row fields every sample must carry, checked by
 * the trainer before any model work. Expects the script's table on top of the stack. */
static int read_fields(rw_host *h, lua_State *L, const char *name, rlvr_err *e) {
    lua_getfield(L, -1, "fields");
    int rc = 0;
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1)) rc = err_set(e, "%s: `fields` must be a list of field names", name);
        lua_Integer n = rc == 0 ? luaL_len(L, -1) : 0;
        if (rc == 0 && n > 0 && !(h->fields = calloc((size_t)n, sizeof *h->fields))) rc = err_set(e, "out of memory");
        for (lua_Integer i = 1; rc == 0 && i <= n; i++) {
            lua_geti(L, -1, i);
            if (lua_type(L, -1) != LUA_TSTRING) rc = err_set(e, "%s: `fields` must be a list of field names", name);
            else if (!(h->fields[h->n_fields++] = util_strdup(lua_tostring(L, -1)))) rc = err_set(e, "out of memory");
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return rc;
}

size_t rw_host_fields(const rw_host *h, const char *const **names) {
    *names = (const char *const *)h->fields;
    return h->n_fields;
}

static int host_build_state(rw_host *h, rlvr_err *e) {
    size_t len;
    char chunk[512], module_dir[512];
    char *src = rw_script_source(h->script, &len, chunk, module_dir, e);
    if (!src) return -1;
    luabox_opts bo = {h->opts.max_memory, h->opts.max_instructions, h->opts.timeout_s,
                      module_dir[0] ? module_dir : NULL};
    h->box = luabox_new(&bo, e);
    if (!h->box) {
        free(src);
        return -1;
    }
    if (luabox_preload(h->box, "rlvr.sandbox", sbx_open_lua, e) != 0) {
        free(src);
        return -1;
    }
    int st = luabox_load(h->box, src, len, chunk, e);
    free(src);
    const char *name = chunk + 1;
    /* Loading (requiring the library, building tables) gets ten calls' worth of budget. */
    if (st == 0 && luabox_pcall(h->box, 0, 1, e) != 0) st = -1;
    if (st != 0) return err_prefix(e, "loading reward script %s", h->script);
    lua_State *L = luabox_state(h->box);
    if (!lua_istable(L, -1)) {
        err_set(e, "%s: a reward script must return a table with a `reward` function (got a %s)", name,
                luaL_typename(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    lua_getfield(L, -1, "reward");
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 2);
        return err_set(e, "%s: the returned table has no `reward` function", name);
    }
    h->ref_reward = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, "weights");
    if (!lua_isnil(L, -1)) {
        if (!lua_istable(L, -1)) {
            lua_pop(L, 2);
            return err_set(e, "%s: `weights` must be a table of name = number", name);
        }
        size_t cap = 0;
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TNUMBER) {
                lua_pop(L, 4);
                return err_set(e, "%s: `weights` must be a table of name = number", name);
            }
            if (h->n_weights == cap) {
                cap = cap ? 2 * cap : 8;
                rw_part *p = realloc(h->weights, cap * sizeof *p);
                if (!p) {
                    lua_pop(L, 4);
                    return err_set(e, "out of memory");
                }
                h->weights = p;
            }
            h->weights[h->n_weights].name = util_strdup(lua_tostring(L, -2));
            h->weights[h->n_weights].value = lua_tonumber(L, -1);
            h->n_weights++;
            lua_pop(L, 1);
        }
        qsort(h->weights, h->n_weights, sizeof *h->weights, cmp_part);
    }
    lua_pop(L, 1);
    if (read_fields(h, L, name, e) != 0) {
        lua_pop(L, 1);
        return -1;
    }
    st = host_selftest(h, name, e);
    lua_pop(L, 1); /* the script's table */
    return st;
}

rw_host *rw_host_new(const rw_opts *o, rlvr_err *e) {
    rw_host *h = calloc(1, sizeof *h);
    if (!h) {
        err_set(e, "out of memory");
        return NULL;
    }
    h->opts = *o;
    h->script = util_strdup(o->script ? o->script : "");
    h->ref_reward = h->ref_weights = LUA_NOREF;
    if (!h->script || host_build_state(h, e) != 0) {
        rw_host_free(h);
        return NULL;
    }
    h->opts.script = h->script;
    return h;
}

void rw_host_free(rw_host *h) {
    if (!h) return;
    host_drop_state(h);
    free(h->script);
    free(h);
}

int rw_host_score(rw_host *h, const cJSON *sample, rw_result *r) {
    memset(r, 0, sizeof *r);
    if (!h->box) {
        fail(r, RW_ERROR, h->opts.fallback, "the reward script's state could not be rebuilt");
        return -1;
    }
    if (!cJSON_IsObject(sample)) {
        fail(r, RW_ERROR, h->opts.fallback, "the sample is not a JSON object");
        return 0;
    }
    host_call_reward(h, sample, r);
    if (r->status != RW_OK && luabox_last_failure(h->box) == LUABOX_FAIL_MEMORY) {
        /* A refused allocation can leave the script's own tables half-updated: start over. */
        host_drop_state(h);
        rlvr_err e;
        if (host_build_state(h, &e) != 0) {
            host_drop_state(h);
            return -1;
        }
    }
    return 0;
}
