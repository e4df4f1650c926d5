/* err.c - filling rlvr_err. */
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int err_setv(rlvr_err *e, const char *fmt, va_list ap) {
    if (e) vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    return -1;
}

int err_set(rlvr_err *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    err_setv(e, fmt, ap);
    va_end(ap);
    return -1;
}

int err_prefix(rlvr_err *e, const char *fmt, ...) {
    if (!e) return -1;
    char prefix[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%s: %s", prefix, old);
    return -1;
}

int err_errno(rlvr_err *e, const char *what) {
    return err_set(e, "%s: %s", what, strerror(errno));
}
