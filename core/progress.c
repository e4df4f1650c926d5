/* progress.c - a redrawn progress bar on terminals, periodic lines elsewhere. */
#include "progress.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define BAR_WIDTH 20

int progress_mode_parse(const char *name) {
    static const char *const names[] = {"auto", "bar", "lines", "off"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

void progress_format_duration(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) s = 0;
    long long t = (long long)(s + 0.5);
    if (t < 60) snprintf(buf, n, "%llds", t);
    else if (t < 3600) snprintf(buf, n, "%lldm%02llds", t / 60, t % 60);
    else if (t < 86400) snprintf(buf, n, "%lldh%02lldm", t / 3600, t % 3600 / 60);
    else snprintf(buf, n, "%lldd%02lldh", t / 86400, t % 86400 / 3600);
}

void progress_format(char *buf, size_t n, const char *label, long long since, long long done, long long total,
                     double elapsed,
                     const char *extra, int with_bar) {
    sbuf b;
    sb_init(&b);
    if (total > 0) sb_printf(&b, "%s %lld/%lld", label, done, total);
    else sb_printf(&b, "%s %lld", label, done);
    if (with_bar && total > 0) {
        int filled = (int)((double)done / (double)total * BAR_WIDTH);
        if (filled > BAR_WIDTH) filled = BAR_WIDTH;
        sb_puts(&b, " [");
        for (int i = 0; i < BAR_WIDTH; i++) sb_putc(&b, i < filled ? '#' : '-');
        sb_putc(&b, ']');
    }
    if (total > 0) sb_printf(&b, " %3d%%", (int)(100.0 * (double)done / (double)total));
    double rate = elapsed > 0 ? (double)(done - since) / elapsed : 0;
    if (done > since && elapsed > 0) {
        /* Slow work reads better as seconds per unit. */
        if (rate >= 1) sb_printf(&b, "  %.2f %s/s", rate, label);
        else sb_printf(&b, "  %.1f s/%s", 1.0 / rate, label);
        if (total > 0 && done < total) {
            char eta[32];
            progress_format_duration(eta, sizeof eta, (double)(total - done) / rate);
            sb_printf(&b, "  ETA %s", eta);
        } else {
            char took[32];
            progress_format_duration(took, sizeof took, elapsed);
            sb_printf(&b, total > 0 ? "  in %s" : "  elapsed %s", took);
        }
    }
    if (extra && *extra) sb_printf(&b, "  %s", extra);
    snprintf(buf, n, "%s", b.s ? b.s : "");
    sb_free(&b);
}

void progress_start(progress *p, FILE *out, progress_mode mode, const char *label, long long total) {
    memset(p, 0, sizeof *p);
    p->out = out;
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->t0 = p->last_print = util_now();
    p->interval = 10.0;
    p->off = mode == PROGRESS_OFF;
    if (mode == PROGRESS_AUTO) {
        const char *term = getenv("TERM");
        p->bar = isatty(fileno(out)) && !(term && strcmp(term, "dumb") == 0);
    } else {
        p->bar = mode == PROGRESS_BAR;
    }
}

static void draw(progress *p, const char *extra, int final) {
    char line[512];
    double now = util_now();
    progress_format(line, sizeof line, p->label, p->start, p->done, p->total, now - p->t0, extra, p->bar);
    if (p->bar) {
        /* \r to the line start, \033[K clears what a longer previous line left. */
        fprintf(p->out, "\r%s\033[K%s", line, final ? "\n" : "");
        p->drawn = !final;
    } else {
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
    p->last_print = now;
}

void progress_update(progress *p, long long done, const char *extra) {
    p->done = done;
    if (p->off) return;
    double now = util_now();
    /* Redraw a bar at most 10 times a second; print a line at most every interval. */
    double gap = p->bar ? 0.1 : p->interval;
    if (now - p->last_print >= gap || (p->bar && done == p->start + 1)) draw(p, extra, 0);
}

void progress_finish(progress *p, const char *extra) {
    if (p->off) return;
    draw(p, extra, 1);
}
