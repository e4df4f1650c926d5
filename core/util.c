/* util.c - strings, files, paths, clocks and suggestions. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- sbuf ---------------------------------------------------------------------- */

void sb_init(sbuf *b) { memset(b, 0, sizeof *b); }

void sb_free(sbuf *b) {
    free(b->s);
    sb_init(b);
}

static int sb_reserve(sbuf *b, size_t extra) {
    if (b->oom) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = 1;
        return -1;
    }
    b->s = s;
    b->cap = cap;
    return 0;
}

void sb_putn(sbuf *b, const char *s, size_t n) {
    if (sb_reserve(b, n)) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

void sb_putc(sbuf *b, char c) { sb_putn(b, &c, 1); }

void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || sb_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sb_put_lua_string(sbuf *b, const char *s, size_t n) {
    sb_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': sb_puts(b, "\\\""); break;
        case '\\': sb_puts(b, "\\\\"); break;
        case '\n': sb_puts(b, "\\n"); break;
        case '\r': sb_puts(b, "\\r"); break;
        case '\t': sb_puts(b, "\\t"); break;
        default:
            /* Control bytes as \ddd (three digits so a following digit is not absorbed);
             * everything else, UTF-8 included, verbatim. */
            if (c < 32 || c == 127) sb_printf(b, "\\%03u", c);
            else sb_putc(b, (char)c);
        }
    }
    sb_putc(b, '"');
}

char *sb_take(sbuf *b) {
    if (b->oom) {
        sb_free(b);
        return NULL;
    }
    char *s = b->s;
    if (!s) s = calloc(1, 1);
    sb_init(b);
    return s;
}

/* ---- files and paths ----------------------------------------------------------- */

char *util_read_file(const char *path, size_t *len, rlvr_err *e) {
    if (util_is_dir(path)) {
        err_set(e, "%s: is a directory, not a file", path);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_errno(e, path);
        return NULL;
    }
    sbuf b;
    sb_init(&b);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) sb_putn(&b, chunk, n);
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        sb_free(&b);
        err_set(e, "%s: read error", path);
        return NULL;
    }
    size_t got = b.len;
    char *s = sb_take(&b);
    if (!s) {
        err_set(e, "%s: out of memory reading the file", path);
        return NULL;
    }
    if (len) *len = got;
    return s;
}

int util_write_file_atomic(const char *path, const void *data, size_t len, rlvr_err *e) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) return err_set(e, "%s: out of memory", path);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        err_errno(e, tmp);
        free(tmp);
        return -1;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            err_errno(e, tmp);
            close(fd);
            unlink(tmp);
            free(tmp);
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        err_errno(e, tmp);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        err_errno(e, path);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

int util_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int util_remove_tree(const char *path) {
    if (!util_is_dir(path)) return remove(path) == 0 || errno == ENOENT ? 0 : -1;
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int util_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int util_mkdir_p(const char *path, rlvr_err *e) {
    char *p = util_strdup(path);
    if (!p) return err_set(e, "%s: out of memory", path);
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == 0) {
            char saved = *s;
            *s = 0;
            if (mkdir(p, 0755) != 0) {
                if (errno != EEXIST) {
                    err_errno(e, p);
                    free(p);
                    return -1;
                }
                if (!util_is_dir(p)) {
                    err_set(e, "%s: exists and is not a directory", p);
                    free(p);
                    return -1;
                }
            }
            *s = saved;
            if (saved == 0) break;
        }
    }
    free(p);
    return 0;
}

char *util_path_join(const char *dir, const char *name) {
    if (!dir || !*dir || name[0] == '/') return util_strdup(name);
    size_t dl = strlen(dir), nl = strlen(name);
    char *out = malloc(dl + nl + 2);
    if (!out) return NULL;
    memcpy(out, dir, dl);
    size_t k = dl;
    if (out[k - 1] != '/') out[k++] = '/';
    memcpy(out + k, name, nl + 1);
    return out;
}

char *util_dirname(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return util_strdup(".");
    if (slash == path) return util_strdup("/");
    size_t n = (size_t)(slash - path);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    memcpy(out, path, n);
    out[n] = 0;
    return out;
}

char *util_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- clocks -------------------------------------------------------------------- */

double util_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double util_unix_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void util_iso8601(double unix_s, char out[32]) {
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- suggestions --------------------------------------------------------------- */

int util_edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 256 || m > 256) return (int)(n > m ? n : m); /* keys are short; bound the work */
    /* Three rolling rows suffice for the optimal-string-alignment recurrence. */
    int rows[3][257];
    int *pp = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= m; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = prev[j] + 1;
            if (cur[j - 1] + 1 < v) v = cur[j - 1] + 1;
            if (prev[j - 1] + cost < v) v = prev[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < v)
                v = pp[j - 2] + 1;
            cur[j] = v;
        }
        int *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[m];
}

const char *util_suggest(const char *word, const char *const *candidates, size_t n) {
    int limit = (int)strlen(word) / 3;
    if (limit < 2) limit = 2;
    const char *best = NULL;
    int best_d = limit + 1;
    for (size_t i = 0; i < n; i++) {
        int d = util_edit_distance(word, candidates[i]);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    return best;
}

/* ---- UTF-8 --------------------------------------------------------------------- */

long util_utf8_invalid_at(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned cp, min;
        if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07, min = 0x10000;
        else return (long)i;
        if (i + len > n) return (long)i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return (long)i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return (long)i;
        i += len;
    }
    return -1;
}
