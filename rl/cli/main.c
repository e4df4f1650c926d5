/* main.c - the rlvr binary: parses `rlvr <command> [options]` and hands the parsed
 * options to the command. Nothing else happens here. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "kernels.h"
#include "util.h"

static const command *const commands[] = {
    &cmd_train, &cmd_sft, &cmd_init, &cmd_generate, &cmd_score, &cmd_eval, &cmd_reward, &cmd_tokenize, &cmd_runs, &cmd_report,
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

void cmd_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("rlvr: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void print_help(FILE *f) {
    fprintf(f,
            "rlvr %s - reinforcement learning with verifiable rewards for language models\n"
            "\n"
            "usage: rlvr <command> [options]\n"
            "       rlvr <command> --help\n"
            "       rlvr --version\n"
            "\n"
            "commands:\n",
            RLVR_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s%s\n", commands[i]->name, commands[i]->summary,
                commands[i]->run ? "" : " (not available yet)");
    fprintf(f,
            "\n"
            "options:\n"
            "  --help                     show this help\n"
            "  --version                  show the version and whether CUDA is usable\n"
            "  --config-doc               print the reference of every config key (docs/config.md)\n"
            "\n"
            "Options are long (--name value or --name=value). A run is configured by a Lua file\n"
            "that returns a table; see docs/config.md. Without one, commands use the embedded\n"
            "default: CPU, a tiny model, synthetic arithmetic, a SQLite run store.\n");
}

static void print_command_help(const command *c) {
    printf("usage: rlvr %s %s\n\n%s.%s\n", c->name, c->usage, c->summary, c->run ? "" : " Not available yet.");
    if (c->details) printf("\n%s\n", c->details);
    printf("\noptions:\n");
    cli_print_options(stdout, c->opts, c->n_opts);
    printf("  %-26s %s\n", "--help", "show this help");
}

static int print_version(void) {
    printf("rlvr %s\n", RLVR_VERSION);
    rlvr_err e = {{0}};
    int n = kern_device_count(&e);
    if (n == 0) {
        printf("cuda: unavailable (%s)\n", e.msg);
        return EXIT_OK;
    }
    for (int d = 0; d < n; d++) {
        kern_device_info info;
        if (kern_device_info_get(d, &info, &e) == 0)
            printf("cuda: device %d: %s (sm_%d%d, %d SMs, %.1f GiB)\n", d, info.name, info.major, info.minor,
                   info.multiprocessors, info.total_memory / (1024.0 * 1024 * 1024));
        else
            printf("cuda: device %d: %s\n", d, e.msg);
    }
    return EXIT_OK;
}

static const command *find_command(const char *name) {
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i]->name, name) == 0) return commands[i];
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return EXIT_USAGE;
    }
    const char *word = argv[1];
    if (strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0 || strcmp(word, "help") == 0) {
        if (argc > 2 && find_command(argv[2])) {
            print_command_help(find_command(argv[2]));
            return EXIT_OK;
        }
        print_help(stdout);
        return EXIT_OK;
    }
    if (strcmp(word, "--version") == 0) return print_version();
    if (strcmp(word, "--config-doc") == 0) {
        char *doc = config_doc_markdown();
        if (!doc) {
            cmd_error("out of memory");
            return EXIT_FAIL;
        }
        fputs(doc, stdout);
        free(doc);
        return EXIT_OK;
    }
    if (word[0] == '-') {
        cmd_error("unknown option '%s' (commands come first: rlvr <command> [options]; see 'rlvr --help')", word);
        return EXIT_USAGE;
    }
    const command *c = find_command(word);
    if (!c) {
        const char *names[N_COMMANDS];
        for (size_t i = 0; i < N_COMMANDS; i++) names[i] = commands[i]->name;
        const char *hint = util_suggest(word, names, N_COMMANDS);
        if (hint) cmd_error("unknown command '%s' (did you mean '%s'?)", word, hint);
        else cmd_error("unknown command '%s' (see 'rlvr --help')", word);
        return EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_command_help(c);
            return EXIT_OK;
        }
    }
    if (!c->run) {
        cmd_error("'%s' is not available yet", c->name);
        return EXIT_USAGE;
    }
    cli_args args;
    rlvr_err e = {{0}};
    if (cli_parse(&args, c->name, c->opts, c->n_opts, c->max_positional, argc - 2, argv + 2, &e) != 0) {
        cmd_error("%s", e.msg);
        return EXIT_USAGE;
    }
    return c->run(&args);
}
