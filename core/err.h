/* err.h - the error context that library calls fill and only the CLI prints.
 *
 * Expected failures (bad input, missing file, out of memory) return -1 (or NULL) and
 * leave a message here; broken invariants assert. Messages name the thing:
 * "config.lua:12: key 'lr': expected a number, got a string". */
#ifndef RLVR_ERR_H
#define RLVR_ERR_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rlvr_err {
    char msg[2048];
} rlvr_err;

/* Sets the message (printf-style) and returns -1, so `return err_set(e, ...)` reads well.
 * `e` may be NULL when the caller does not want the message. */
int err_set(rlvr_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int err_setv(rlvr_err *e, const char *fmt, va_list ap);

/* Prepends "prefix: " to the message already set (adds context on the way up). */
int err_prefix(rlvr_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sets "<what>: <strerror(errno)>" and returns -1. */
int err_errno(rlvr_err *e, const char *what);

#ifdef __cplusplus
}
#endif

#endif
