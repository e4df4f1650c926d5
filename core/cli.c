/* cli.c - parsing `--long-name value` options against a table. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int find_opt(const cli_opt *opts, int n, const char *name, size_t len) {
    for (int i = 0; i < n; i++)
        if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0) return i;
    return -1;
}

static int unknown_option(const char *cmd, const cli_opt *opts, int n, const char *word, rlvr_err *e) {
    const char *names[64];
    int k = 0;
    for (int i = 0; i < n && k < 64; i++) names[k++] = opts[i].name;
    const char *hint = util_suggest(word, names, (size_t)k);
    if (hint)
        return err_set(e, "%s: unknown option '--%s' (did you mean '--%s'?)", cmd, word, hint);
    return err_set(e, "%s: unknown option '--%s' (see 'rlvr %s --help')", cmd, word, cmd);
}

int cli_parse(cli_args *a, const char *cmd, const cli_opt *opts, int n_opts, int max_pos,
              int argc, char **argv, rlvr_err *e) {
    memset(a, 0, sizeof *a);
    a->opts = opts;
    a->n_opts = n_opts;
    int only_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i];
        if (only_pos || w[0] != '-' || strcmp(w, "-") == 0) {
            if (a->n_pos >= max_pos || a->n_pos >= CLI_MAX_ARGS)
                return err_set(e, "%s: unexpected argument '%s' (see 'rlvr %s --help')", cmd, w, cmd);
            a->pos[a->n_pos++] = w;
            continue;
        }
        if (strcmp(w, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (w[1] != '-')
            return err_set(e, "%s: options are long, like '--name value'; got '%s'", cmd, w);
        const char *name = w + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int k = find_opt(opts, n_opts, name, len);
        if (k < 0) {
            char word[128];
            snprintf(word, sizeof word, "%.*s", (int)(len < 127 ? len : 127), name);
            return unknown_option(cmd, opts, n_opts, word, e);
        }
        const char *value = NULL;
        if (opts[k].metavar) {
            if (eq) value = eq + 1;
            else if (i + 1 < argc) value = argv[++i];
            else return err_set(e, "%s: option '--%s' needs a value (%s)", cmd, opts[k].name, opts[k].metavar);
        } else if (eq) {
            return err_set(e, "%s: option '--%s' takes no value", cmd, opts[k].name);
        }
        if (!opts[k].repeatable && cli_has(a, opts[k].name))
            return err_set(e, "%s: option '--%s' given twice", cmd, opts[k].name);
        if (a->n_given >= CLI_MAX_ARGS) return err_set(e, "%s: too many options", cmd);
        a->given_opt[a->n_given] = k;
        a->given_value[a->n_given] = value;
        a->n_given++;
    }
    return 0;
}

const char *cli_get(const cli_args *a, const char *name) {
    for (int i = a->n_given - 1; i >= 0; i--)
        if (strcmp(a->opts[a->given_opt[i]].name, name) == 0) return a->given_value[i];
    return NULL;
}

int cli_has(const cli_args *a, const char *name) {
    for (int i = 0; i < a->n_given; i++)
        if (strcmp(a->opts[a->given_opt[i]].name, name) == 0) return 1;
    return 0;
}

const char *cli_nth(const cli_args *a, const char *name, int n) {
    for (int i = 0; i < a->n_given; i++)
        if (strcmp(a->opts[a->given_opt[i]].name, name) == 0 && n-- == 0) return a->given_value[i];
    return NULL;
}

int cli_int(const cli_args *a, const char *name, long long def, long long *out, rlvr_err *e) {
    const char *v = cli_get(a, name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || errno) return err_set(e, "option '--%s': expected an integer, got '%s'", name, v);
    *out = x;
    return 0;
}

int cli_num(const cli_args *a, const char *name, double def, double *out, rlvr_err *e) {
    const char *v = cli_get(a, name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno) return err_set(e, "option '--%s': expected a number, got '%s'", name, v);
    *out = x;
    return 0;
}

void cli_print_options(void *file, const cli_opt *opts, int n_opts) {
    FILE *f = file;
    for (int i = 0; i < n_opts; i++) {
        char left[64];
        if (opts[i].metavar) snprintf(left, sizeof left, "--%s %s", opts[i].name, opts[i].metavar);
        else snprintf(left, sizeof left, "--%s", opts[i].name);
        fprintf(f, "  %-26s %s\n", left, opts[i].help);
    }
}
