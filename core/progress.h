/* progress.h - progress of long work: on a terminal, one line with a bar, the rate and
 * the ETA, redrawn in place; otherwise (a log file, CI) plain lines at most every
 * `interval` seconds, plus the last one, so logs stay readable. */
#ifndef RLVR_PROGRESS_H
#define RLVR_PROGRESS_H

#include <stddef.h>
#include <stdio.h>

typedef enum progress_mode { PROGRESS_AUTO, PROGRESS_BAR, PROGRESS_LINES, PROGRESS_OFF } progress_mode;

typedef struct progress {
    FILE *out;
    int bar;             /* redraw in place (terminal) or print lines */
    int off;
    char label[32];      /* "step" */
    long long total;     /* 0 when unknown */
    long long start;     /* units already done when the display began (a resumed run): not in the rate */
    long long done;
    double t0, last_print;
    double interval;     /* seconds between lines in line mode */
    int drawn;           /* a bar line is on screen (needs a newline before other output) */
} progress;

/* Parses "auto" / "bar" / "lines" / "off"; -1 for anything else. */
int progress_mode_parse(const char *name);

/* AUTO draws a bar when `out` is a terminal and TERM is not "dumb", lines otherwise. */
void progress_start(progress *p, FILE *out, progress_mode mode, const char *label, long long total);
/* Reports `done` units finished; `extra` (may be NULL) is appended, e.g. "reward 0.41". */
void progress_update(progress *p, long long done, const char *extra);
/* Ends the display: the last state as a line. */
void progress_finish(progress *p, const char *extra);

/* The text of one progress line (no newline or escape codes), for the display and tests:
 * "step 12/200 [###-------]   6%  1.92 step/s  ETA 1m38s  reward 0.41". The rate counts
 * the done - since units of the last `elapsed` seconds. */
void progress_format(char *buf, size_t n, const char *label, long long since, long long done, long long total,
                     double elapsed, const char *extra, int with_bar);

/* "42s", "3m07s", "2h05m", "3d04h". */
void progress_format_duration(char *buf, size_t n, double seconds);

#endif
