/* jsonl.c - JSON Lines reading with cJSON. */
#include "jsonl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int jsonl_open(jsonl_reader *r, const char *path, rlvr_err *e) {
    memset(r, 0, sizeof *r);
    if (strcmp(path, "-") == 0) {
        jsonl_from_file(r, stdin, "<stdin>");
        return 0;
    }
    r->f = fopen(path, "rb");
    if (!r->f) return err_errno(e, path);
    r->owns_file = 1;
    r->name = path;
    return 0;
}

void jsonl_from_file(jsonl_reader *r, FILE *f, const char *name) {
    memset(r, 0, sizeof *r);
    r->f = f;
    r->name = name;
}

void jsonl_close(jsonl_reader *r) {
    if (r->owns_file && r->f) fclose(r->f);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

/* Reads one line (any length, NUL bytes kept) into r->buf; returns its length or -1 at EOF. */
static long read_line(jsonl_reader *r, int *io_error) {
    size_t len = 0;
    int c;
    *io_error = 0;
    while ((c = fgetc(r->f)) != EOF) {
        if (len + 2 > r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 4096;
            char *b = realloc(r->buf, cap);
            if (!b) {
                *io_error = 1;
                return -1;
            }
            r->buf = b;
            r->cap = cap;
        }
        if (c == '\n') break;
        r->buf[len++] = (char)c;
    }
    if (c == EOF && ferror(r->f)) {
        *io_error = 1;
        return -1;
    }
    if (c == EOF && len == 0) return -1;
    if (len > 0 && r->buf[len - 1] == '\r') len--;
    r->buf[len] = 0;
    return (long)len;
}

jsonl_status jsonl_next(jsonl_reader *r, cJSON **obj, rlvr_err *e) {
    *obj = NULL;
    for (;;) {
        int io_error;
        long len = read_line(r, &io_error);
        if (len < 0) {
            if (io_error) {
                err_set(e, "%s:%ld: read error", r->name, r->line + 1);
                return JSONL_IO_ERROR;
            }
            return JSONL_EOF;
        }
        r->line++;
        size_t n = (size_t)len;
        size_t i = 0;
        while (i < n && (r->buf[i] == ' ' || r->buf[i] == '\t')) i++;
        if (i == n) continue; /* blank line */
        if (memchr(r->buf, 0, n)) {
            err_set(e, "%s:%ld: line contains a NUL byte", r->name, r->line);
            return JSONL_BAD_LINE;
        }
        long bad = util_utf8_invalid_at(r->buf, n);
        if (bad >= 0) {
            err_set(e, "%s:%ld: invalid UTF-8 at byte %ld", r->name, r->line, bad + 1);
            return JSONL_BAD_LINE;
        }
        const char *end = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(r->buf, n, &end, 0);
        /* Only white space may follow the value on the line. */
        const char *rest = v ? end : NULL;
        while (rest && rest < r->buf + n && (*rest == ' ' || *rest == '\t')) rest++;
        if (!v || rest != r->buf + n) {
            long col = end && end >= r->buf ? (long)(end - r->buf) + 1 : 1;
            cJSON_Delete(v);
            err_set(e, "%s:%ld: not valid JSON (at column %ld)", r->name, r->line, col);
            return JSONL_BAD_LINE;
        }
        if (!cJSON_IsObject(v)) {
            cJSON_Delete(v);
            err_set(e, "%s:%ld: expected a JSON object, got %s", r->name, r->line,
                    cJSON_IsArray(v) ? "an array" : "a scalar");
            return JSONL_BAD_LINE;
        }
        *obj = v;
        return JSONL_OK;
    }
}

const char *jsonl_get_string(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

char *jsonl_value_text(const cJSON *v) {
    if (cJSON_IsString(v)) return util_strdup(v->valuestring);
    if (cJSON_IsNumber(v)) {
        char buf[64];
        double d = v->valuedouble;
        if (isfinite(d) && d == floor(d) && fabs(d) < 1e15) snprintf(buf, sizeof buf, "%.0f", d);
        else snprintf(buf, sizeof buf, "%.17g", d);
        return util_strdup(buf);
    }
    return cJSON_PrintUnformatted(v);
}
