/* config.h - run configuration: a Lua file that returns a table, validated against
 * the schema in config_schema.def, overridden by `--set key.sub=value`.
 *
 * The file runs in a restricted Lua state (no io, os, debug, no loading of bytecode or
 * C modules); `require "name"` finds name.lua beside the config file, then rlvr's own
 * modules (lua/, e.g. "rlvr.config"). Every key is checked: an unknown key is an error
 * with a suggestion, a wrong type names the key and both types, a number out of range
 * names the bounds. Messages carry "file:line:" where the line can be found. */
#ifndef RLVR_CONFIG_H
#define RLVR_CONFIG_H

#include <stddef.h>

#include "err.h"

typedef struct cfg_strs {
    char **v;
    int n;
} cfg_strs;

/* One field per schema key, named as in config_schema.def ("rollout.group_size" is
 * `rollout_group_size`). Strings are owned by the config. */
typedef struct rlvr_config {
#define CFG_STR(field, path, def, doc) char *field;
#define CFG_ENUM(field, path, def, choices, doc) char *field;
#define CFG_INT(field, path, def, lo, hi, doc) long long field;
#define CFG_NUM(field, path, def, lo, hi, doc) double field;
#define CFG_BOOL(field, path, def, doc) int field;
#define CFG_STRS(field, path, doc) cfg_strs field;
#include "config_schema.def"
    char *source_path; /* the config file given, or NULL for the embedded default */
} rlvr_config;

/* The kinds of schema entries. */
typedef enum cfg_type { CFG_T_SECTION, CFG_T_STR, CFG_T_ENUM, CFG_T_INT, CFG_T_NUM, CFG_T_BOOL, CFG_T_STRS } cfg_type;

typedef struct cfg_key {
    const char *path;    /* "rollout.group_size" */
    cfg_type type;
    const char *def;     /* the default as text ("8", "\"cpu\"", "true"); NULL for sections and lists */
    const char *choices; /* "cpu|cuda" for enums */
    double lo, hi;       /* bounds of numbers and integers */
    const char *doc;
    size_t offset;       /* of the field in rlvr_config */
} cfg_key;

/* The schema, in declaration order. */
const cfg_key *config_schema(size_t *n);

/* Fills `c` with the defaults (the embedded default run). Returns -1 only on OOM. */
int config_init(rlvr_config *c, rlvr_err *e);

/* Deep-copies `src` into `dst` (which is overwritten, not freed). -1 only on OOM. */
int config_copy(rlvr_config *dst, const rlvr_config *src, rlvr_err *e);

/* The path of the first key (schema order) whose values differ, or NULL when every key
 * is equal (numbers compared bitwise; source_path is ignored). */
const char *config_diff(const rlvr_config *a, const rlvr_config *b);

/* Runs the Lua file at `path` and applies the table it returns over the current values.
 * On error `c` is unchanged and the message is "path:line: ..." (or "path: ..." where
 * no line can be found). Sets c->source_path on success. */
int config_load_file(rlvr_config *c, const char *path, rlvr_err *e);

/* Applies one override, "key.sub=value". The value is read as the key's type: numbers
 * strictly (strtod, whole string, finite), integers as decimal or as any integral number
 * strtod reads ("1e3"), booleans as true/false, yes/no, on/off, 1/0 (any case), strings
 * verbatim, lists as a Lua table constructor ({"a", "b"}, evaluated in a fresh luabox) or
 * comma-separated words (trimmed; "" is the empty list). Messages start with
 * "--set <assignment>: ". On error `c` is unchanged. */
int config_set(rlvr_config *c, const char *assignment, rlvr_err *e);

/* Checks rules that span keys (kv_heads divides heads, min_digits <= max_digits, ...). */
int config_check(const rlvr_config *c, rlvr_err *e);

/* The fully resolved config as a Lua chunk ("return { ... }") that loads back into the
 * same config. Caller frees; NULL on OOM. */
char *config_to_lua(const rlvr_config *c);

/* docs/config.md, generated from the schema. Caller frees. */
char *config_doc_markdown(void);

void config_free(rlvr_config *c);

#endif
