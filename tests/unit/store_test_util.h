/* store_test_util.h - helpers the run-store tests share: a fresh directory per test
 * under $RLVR_TEST_TMP, and one-value SQL queries that fail the test on any error. */
#ifndef RLVR_STORE_TEST_UTIL_H
#define RLVR_STORE_TEST_UTIL_H

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Creates a new empty directory $RLVR_TEST_TMP/<prefix>.XXXXXX into `out`. */
static inline void stu_tmpdir(const char *prefix, char *out, size_t size) {
    const char *base = getenv("RLVR_TEST_TMP");
    if (!base || !*base) base = "/tmp";
    rlvr_err e;
    if (util_mkdir_p(base, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        abort();
    }
    snprintf(out, size, "%s/%s.XXXXXX", base, prefix);
    if (!mkdtemp(out)) {
        perror(out);
        abort();
    }
}

/* The first column of the first row of a printf-formatted query, as int64; the query
 * must succeed and return a row. */
static inline long long stu_int(sqlite3 *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline long long stu_int(sqlite3 *db, const char *fmt, ...) {
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        fprintf(stderr, "query failed: %s: %s\n", sql, sqlite3_errmsg(db));
        abort();
    }
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Same, as text copied into `out` ("" for NULL). */
static inline void stu_text(sqlite3 *db, char *out, size_t size, const char *sql) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        fprintf(stderr, "query failed: %s: %s\n", sql, sqlite3_errmsg(db));
        abort();
    }
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(out, size, "%s", t ? (const char *)t : "");
    sqlite3_finalize(st);
}

#endif
