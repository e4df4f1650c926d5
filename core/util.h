/* util.h - small helpers every module uses: a growable string, files and paths,
 * clocks, and "did you mean" suggestions. */
#ifndef RLVR_UTIL_H
#define RLVR_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* A growable, always NUL-terminated string. A failed allocation sets `oom` and later
 * appends do nothing (SQLite's sticky-error idea): build, then check once. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

void sb_init(sbuf *b);
void sb_free(sbuf *b);
void sb_putn(sbuf *b, const char *s, size_t n);
void sb_puts(sbuf *b, const char *s);
void sb_putc(sbuf *b, char c);
void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends `s` as a Lua string literal (double-quoted, escaped, valid for any bytes). */
void sb_put_lua_string(sbuf *b, const char *s, size_t n);
/* Takes the buffer out of `b` (caller frees); NULL if an allocation failed. */
char *sb_take(sbuf *b);

/* Reads a whole file into a NUL-terminated buffer the caller frees; NULL and a message
 * naming the path on failure. `len` may be NULL. */
char *util_read_file(const char *path, size_t *len, rlvr_err *e);

/* Writes `data` to `path` atomically: a temporary file in the same directory, fsync,
 * rename. A crash leaves either the old file or the new one, never half of one. */
int util_write_file_atomic(const char *path, const void *data, size_t len, rlvr_err *e);

/* mkdir -p. */
int util_mkdir_p(const char *path, rlvr_err *e);
int util_is_dir(const char *path);
int util_is_file(const char *path);
/* Removes a file or a directory tree (symbolic links are removed, never followed); 0 when
 * it is gone (or was never there). */
int util_remove_tree(const char *path);

/* Joins a directory and a name into a buffer the caller frees. */
char *util_path_join(const char *dir, const char *name);

/* The directory part of a path ("." when there is none), in a buffer the caller frees. */
char *util_dirname(const char *path);

/* Seconds since an arbitrary point (CLOCK_MONOTONIC), and wall-clock Unix seconds. */
double util_now(void);
double util_unix_time(void);
/* "2026-11-23T08:58:13Z" for a Unix time. */
void util_iso8601(double unix_s, char out[32]);

/* Damerau-Levenshtein (optimal string alignment) distance, for suggestions. */
int util_edit_distance(const char *a, const char *b);

/* The candidate closest to `word`, or NULL when none is close enough to be a likely typo
 * (distance at most a third of the word's length, and at least 1 or 2). */
const char *util_suggest(const char *word, const char *const *candidates, size_t n);

/* strdup that returns NULL on failure (strdup is POSIX, this keeps C11 callers plain). */
char *util_strdup(const char *s);

/* Checks that s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
 * Returns -1 when valid, else the byte offset of the first invalid sequence. */
long util_utf8_invalid_at(const char *s, size_t n);

#endif
