/* commands.h - the rlvr commands: each is a name, a one-line summary, its options and
 * a function. A command whose issue has not landed has run == NULL and answers
 * "rlvr: 'X' is not available yet" with exit status 2. */
#ifndef RLVR_COMMANDS_H
#define RLVR_COMMANDS_H

#include "cli.h"

/* Exit statuses: 0 success, 1 the work failed, 2 the command line was wrong. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

typedef struct command {
    const char *name;
    const char *summary;
    const char *usage;     /* after "rlvr NAME " */
    const char *details;   /* a paragraph for `rlvr NAME --help`, may be NULL */
    const cli_opt *opts;
    int n_opts;
    int max_positional;
    /* Runs the command with parsed arguments; returns the exit status. */
    int (*run)(const cli_args *args);
} command;

/* Prints "rlvr: <message>" to stderr. */
void cmd_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

extern const command cmd_train, cmd_sft, cmd_init, cmd_generate, cmd_score, cmd_eval, cmd_reward, cmd_tokenize,
    cmd_runs, cmd_report;

#endif
