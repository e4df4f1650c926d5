/* cli.h - command-line options: `--long-name value`, `--long-name=value`, flags and
 * positionals, declared per command in a table. Parsing never prints or exits; it
 * fills rlvr_err with a message that names the option, and the CLI exits 2. */
#ifndef RLVR_CLI_H
#define RLVR_CLI_H

#include "err.h"

typedef struct cli_opt {
    const char *name;    /* without the dashes: "db" for --db */
    const char *metavar; /* the value's name in help ("PATH"); NULL for a flag */
    const char *help;
    int repeatable;      /* may be given more than once (--set) */
} cli_opt;

#define CLI_MAX_ARGS 256

typedef struct cli_args {
    const cli_opt *opts;
    int n_opts;
    /* Every option given, in order: index into opts and its value (NULL for flags). */
    int n_given;
    int given_opt[CLI_MAX_ARGS];
    const char *given_value[CLI_MAX_ARGS];
    int n_pos;
    const char *pos[CLI_MAX_ARGS];
} cli_args;

/* Parses argv[0..argc) (the words after the command name). `--` ends the options.
 * `max_pos` bounds the positionals. `cmd` names the command in messages. */
int cli_parse(cli_args *a, const char *cmd, const cli_opt *opts, int n_opts, int max_pos,
              int argc, char **argv, rlvr_err *e);

/* The last value given for option `name`, or NULL. */
const char *cli_get(const cli_args *a, const char *name);
/* 1 if the flag or option was given. */
int cli_has(const cli_args *a, const char *name);
/* The i-th value of a repeatable option (i from 0), or NULL past the last. */
const char *cli_nth(const cli_args *a, const char *name, int i);

/* Parses an integer / a number option strictly ("12x" is an error naming the option). */
int cli_int(const cli_args *a, const char *name, long long def, long long *out, rlvr_err *e);
int cli_num(const cli_args *a, const char *name, double def, double *out, rlvr_err *e);

/* Writes the options table as help text to a FILE* (passed as void* to keep stdio out). */
void cli_print_options(void *file, const cli_opt *opts, int n_opts);

#endif
