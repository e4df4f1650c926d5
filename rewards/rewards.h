/* rewards.h - what a verifier returns and how its parts add up.
 *
 * A reward script returns a number, or a table of named parts ({accuracy = 1,
 * format = 0.2}); with `weights` the parts add up as sum(weight * part), without them
 * as the plain sum. A call that errors or runs out of budget gets a status other than
 * ok, its message, and the configured fallback reward - never a silent 0. */
#ifndef RLVR_REWARDS_H
#define RLVR_REWARDS_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "err.h"

typedef enum rw_status { RW_OK = 0, RW_ERROR, RW_TIMEOUT } rw_status;

/* "ok", "error", "timeout": the values of sample_rewards.status in the run store. */
const char *rw_status_name(rw_status s);

typedef struct rw_part {
    const char *name;
    double value;
} rw_part;

/* Combines parts into the reward. `weights` (n_weights entries, may be 0) names the
 * parts that count and their weights; a part with no weight then counts 0, and a weight
 * whose part is missing is an error (returns -1 and names it in *missing). Without
 * weights, the reward is the sum of the parts. Non-finite values are an error too. */
int rw_combine(const rw_part *parts, size_t n_parts, const rw_part *weights, size_t n_weights, double *reward,
               const char **missing);


/* ---- the code sandbox (sandbox.c) ------------------------------------------------
 * Runs one untrusted Python program in a fresh process under bubblewrap: no network, a
 * private file system (read-only /usr, an empty tmpfs scratch as the only writable
 * place, no /proc, no host files), rlimits on CPU, memory, file size and descriptors,
 * a seccomp filter (no fork, sockets, ptrace, mounts, namespaces), a wall-clock limit
 * after which the whole process group is killed, and an output cap. The verdict comes
 * from a runner that holds a per-run secret the program cannot read (docs/rewards.md,
 * "Threat model"): printing "OK" or exiting 0 early never passes. */
typedef struct sbx_opts {
    double wall_s;        /* wall-clock limit; 0 = 10 s */
    double cpu_s;         /* CPU-time limit (RLIMIT_CPU, whole seconds, rounded up); 0 = wall_s */
    size_t memory_bytes;  /* address-space limit; 0 = 1 GiB */
    size_t max_output;    /* bytes of stdout+stderr kept; more kills the program; 0 = 1 MiB */
    int unsafe_no_sandbox; /* run without isolation (explicit opt-in; never the default) */
    int no_audit_hook;     /* tests only: leave out the runner's audit hook, to check that the
                              OS-level layers (bwrap, seccomp, rlimits) hold on their own */
} sbx_opts;

typedef enum sbx_verdict {
    SBX_PASS = 0,   /* the whole program ran to its end */
    SBX_FAIL,       /* it ended early: an exception, a failed assert, an exit, a signal */
    SBX_TIMEOUT,    /* killed at the wall-clock or CPU limit */
    SBX_OUTPUT,     /* killed for writing more than max_output */
} sbx_verdict;

typedef struct sbx_result {
    sbx_verdict verdict;
    int exit_code;          /* -1 when killed by a signal */
    int term_signal;        /* the signal that ended it, or 0 */
    int asserts_passed, asserts_total; /* partial-credit mode only, else 0 */
    double seconds;
    char output[4096];      /* the last bytes of its output, for messages */
} sbx_result;

/* Checks once (cached) that bubblewrap can set up the isolation here; -1 with a message
 * saying what failed and how to opt out otherwise. */
int sbx_available(rlvr_err *e);

/* Runs `program` (Python source). With `asserts` (may be NULL), partial-credit mode: the
 * program runs first, then each line of `asserts` separately, counting those that pass;
 * the verdict is PASS only when all pass. Returns -1 only when the run could not be set
 * up (the message says why); a program that fails is 0 with verdict SBX_FAIL. */
int sbx_run_python(const char *program, const char *asserts, const sbx_opts *o, sbx_result *r, rlvr_err *e);

/* The Lua module `rlvr.sandbox` (preloaded in reward states): run_python(src [, asserts]). */
struct lua_State;
int sbx_open_lua(struct lua_State *L);
/* The options the Lua module uses (process-wide; set before scoring starts). */
void sbx_set_default_opts(const sbx_opts *o);

/* ---- the reward host (host.c) and the scorer (scorer.c) ---------------------------- */
typedef struct rw_opts {
    const char *script;         /* a built-in name ("math") or a path to a .lua file */
    double fallback;            /* reward of a sample whose call failed */
    double timeout_s;           /* wall-clock budget of one call; 0 = none */
    long long max_instructions; /* Lua instructions per call; 0 = none */
    size_t max_memory;          /* bytes per Lua state; 0 = none */
    int jobs;                   /* scoring threads; 0 = every core */
} rw_opts;

typedef struct rw_result {
    rw_status status;
    double reward;
    size_t n_parts;
    rw_part *parts; /* names owned by the result; sorted by name */
    char *error;    /* NULL when status is ok */
} rw_result;

void rw_result_clear(rw_result *r);
/* The value of part `name` in *value; 1 when the result has that part, else 0. */
int rw_result_part(const rw_result *r, const char *name, double *value);

/* One Lua state with the script loaded (and its self-test passed): for one thread. */
typedef struct rw_host rw_host;
rw_host *rw_host_new(const rw_opts *o, rlvr_err *e);
void rw_host_free(rw_host *h);
/* Scores one sample (a JSON object: the dataset row plus completion, ...). Never fails:
 * a failed call fills status/error and the fallback reward. Returns -1 only when the
 * state could not be rebuilt after running out of memory (then *r is still filled). */
int rw_host_score(rw_host *h, const cJSON *sample, rw_result *r);

/* The row fields the script declares it reads (its optional `fields` list); the names
 * stay owned by the host. */
size_t rw_host_fields(const rw_host *h, const char *const **names);
/* Resolves a script name or path: the source (caller frees), a chunk name "@lua/..."
 * and the folder `require` should look in first (empty for built-ins). */
char *rw_script_source(const char *spec, size_t *len, char chunkname[512], char module_dir[512], rlvr_err *e);

/* A pool of hosts on threads: a batch is scored using every worker. */
typedef struct rw_scorer rw_scorer;
rw_scorer *rw_scorer_new(const rw_opts *o, rlvr_err *e);
void rw_scorer_free(rw_scorer *s);
int rw_scorer_jobs(const rw_scorer *s);
/* The script's declared fields (rw_host_fields of its first worker). */
size_t rw_scorer_fields(const rw_scorer *s, const char *const **names);
/* Scores samples[0..n) into out[0..n) (each cleared by the caller with rw_result_clear). */
int rw_score_batch(rw_scorer *s, const cJSON *const *samples, size_t n, rw_result *out, rlvr_err *e);

#endif
