/* lualib.c - finding rlvr's Lua modules in the embedded table or in RLVR_LUA_DIR. */
#include "lualib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const struct lualib_file {
    const char *module, *path, *src;
    size_t len;
} lualib_files[];

static int valid_name(const char *name) {
    if (!*name || name[0] == '.' || strstr(name, "..")) return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '.'))
            return 0;
    return 1;
}

static int read_from_dir(const char *dir, const char *name, lualib_source *out) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s", name);
    for (char *p = rel; *p; p++)
        if (*p == '.') *p = '/';
    snprintf(out->path, sizeof out->path, "%s/%s.lua", dir, rel);
    FILE *f = fopen(out->path, "rb");
    if (!f) return -1;
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t n;
    while (s && (n = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            char *t = realloc(s, cap * 2);
            if (!t) {
                free(s);
                s = NULL;
                break;
            }
            s = t;
            cap *= 2;
        }
    }
    fclose(f);
    if (!s) return -1;
    s[len] = 0;
    out->src = s;
    out->len = len;
    return 0;
}

int lualib_find(const char *name, lualib_source *out) {
    memset(out, 0, sizeof *out);
    if (!valid_name(name) || strlen(name) > 200) return -1;
    const char *dir = getenv("RLVR_LUA_DIR");
    if (dir && *dir) return read_from_dir(dir, name, out);
    for (const struct lualib_file *f = lualib_files; f->module; f++) {
        if (strcmp(f->module, name) != 0) continue;
        out->src = malloc(f->len + 1);
        if (!out->src) return -1;
        memcpy(out->src, f->src, f->len);
        out->src[f->len] = 0;
        out->len = f->len;
        snprintf(out->path, sizeof out->path, "%s", f->path);
        return 0;
    }
    return -1;
}

void lualib_source_free(lualib_source *s) {
    free(s->src);
    s->src = NULL;
}

const char *lualib_module_name(size_t i) {
    for (size_t k = 0; lualib_files[k].module; k++)
        if (k == i) return lualib_files[k].module;
    return NULL;
}
