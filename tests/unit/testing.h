/* testing.h - what every unit test includes: cmocka (which needs these headers first)
 * and small helpers for temporary files. */
#ifndef RLVR_TESTING_H
#define RLVR_TESTING_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* A fresh directory for this test under $RLVR_TEST_TMP (or /tmp); caller frees. */
static inline char *test_tmpdir(const char *name) {
    const char *base = getenv("RLVR_TEST_TMP");
    if (!base || !*base) base = "/tmp";
    char *path = malloc(1024);
    snprintf(path, 1024, "%s/%s.%d", base, name, (int)getpid());
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", path, path);
    if (system(cmd) != 0) fail_msg("cannot create %s", path);
    return path;
}

/* Writes `text` to dir/name and returns the path (caller frees). */
static inline char *test_write(const char *dir, const char *name, const char *text) {
    char *path = malloc(1024);
    snprintf(path, 1024, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

#endif
