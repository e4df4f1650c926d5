/* lualib.h - rlvr's own Lua modules (the lua/ folder), embedded in the binary.
 *
 * Modules are named as `require` names them: lua/rlvr/config.lua is "rlvr.config".
 * When the environment variable RLVR_LUA_DIR is set, modules are read from that folder
 * instead, so scripts can be edited without rebuilding. */
#ifndef RLVR_LUALIB_H
#define RLVR_LUALIB_H

#include <stddef.h>

typedef struct lualib_source {
    char *src;      /* the module's text (NUL-terminated), freed by lualib_source_free */
    size_t len;
    char path[512]; /* "lua/rlvr/config.lua" (embedded) or the file on disk: for chunk names */
} lualib_source;

/* Finds module `name`; returns 0 and fills `out`, or -1 when there is no such module.
 * Names with anything but [A-Za-z0-9_.] are refused (no paths out of the folder). */
int lualib_find(const char *name, lualib_source *out);
void lualib_source_free(lualib_source *s);

/* The embedded module names, for listings and tests: the i-th name, NULL past the end. */
const char *lualib_module_name(size_t i);

#endif
