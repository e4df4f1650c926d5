/* jsonl.h - reading JSON Lines: one JSON object per line, errors that name the file
 * and line. Used for datasets and for every command that reads JSONL on stdin.
 *
 * A line that is blank is skipped. A line that is not valid UTF-8, not valid JSON or
 * not an object is reported with its line number (and byte column for UTF-8); the
 * caller decides whether that is fatal (datasets) or skipped (`rlvr reward`). */
#ifndef RLVR_JSONL_H
#define RLVR_JSONL_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "err.h"

typedef struct jsonl_reader {
    FILE *f;
    int owns_file;
    const char *name; /* for messages: the path, or "<stdin>" */
    long line;        /* the line just read, from 1 */
    char *buf;
    size_t cap;
} jsonl_reader;

/* Opens `path` ("-" is stdin). */
int jsonl_open(jsonl_reader *r, const char *path, rlvr_err *e);
/* Reads from an open FILE* (not closed by jsonl_close). */
void jsonl_from_file(jsonl_reader *r, FILE *f, const char *name);
void jsonl_close(jsonl_reader *r);

typedef enum jsonl_status { JSONL_OK = 0, JSONL_EOF = 1, JSONL_BAD_LINE = 2, JSONL_IO_ERROR = -1 } jsonl_status;

/* Reads the next non-blank line. JSONL_OK: *obj is a cJSON object the caller frees with
 * cJSON_Delete. JSONL_BAD_LINE: the message ("data.jsonl:7: not valid JSON near ...")
 * is in `e` and reading may continue. JSONL_EOF at the end; JSONL_IO_ERROR otherwise. */
jsonl_status jsonl_next(jsonl_reader *r, cJSON **obj, rlvr_err *e);

/* Field helpers: a string field or NULL (when absent or not a string). */
const char *jsonl_get_string(const cJSON *obj, const char *key);

/* Renders a value as text: a string as itself, a number as %.17g (integers without a
 * fraction), anything else as compact JSON. Caller frees; NULL on OOM. */
char *jsonl_value_text(const cJSON *v);

#endif
