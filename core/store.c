/* store.c - the run store: opening (pragmas, version check, migration), writing runs,
 * steps and events, and listing runs. The schema itself is in store_schema.c.
 *
 * A step, its samples and their reward parts go in one BEGIN IMMEDIATE transaction
 * through statements prepared once per store, so a process killed at any moment leaves
 * every finished step whole and no unfinished step at all. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#ifndef RLVR_VERSION
#define RLVR_VERSION "unknown"
#endif

/* How long a statement waits on another connection's lock before SQLITE_BUSY. In WAL
 * readers never block the writer; this covers checkpoints and a second writer. */
#define STORE_BUSY_TIMEOUT_MS 5000

struct store {
    sqlite3 *db;
    char *path;
    int readonly;
    /* Prepared on the first store_write_step and reused for every row after. */
    sqlite3_stmt *ins_step, *ins_metric, *ins_sample, *ins_reward;
    /* Scratch for the little-endian BLOB encodings; grows to the longest completion so
     * a training step does not allocate once warmed up. */
    unsigned char *ids_buf, *lp_buf;
    size_t ids_cap, lp_cap;
};

/* ---- opening -------------------------------------------------------------------- */

static void store_free(store *s) {
    if (!s) return;
    sqlite3_finalize(s->ins_step);
    sqlite3_finalize(s->ins_metric);
    sqlite3_finalize(s->ins_sample);
    sqlite3_finalize(s->ins_reward);
    sqlite3_close(s->db); /* NULL is a no-op; all statements are finalized above */
    free(s->ids_buf);
    free(s->lp_buf);
    free(s->path);
    free(s);
}

void store_close(store *s) { store_free(s); }

sqlite3 *store_db(store *s) { return s->db; }

const char *store_path(store *s) { return s->path; }

/* Runs a pragma that returns one row and copies its first column as text. */
static int store_pragma_text(store *s, const char *sql, char *out, size_t out_size, rlvr_err *e) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        /* A file that is not SQLite only shows it on the first read. */
        if (rc == SQLITE_NOTADB)
            err_set(e, "%s: not a SQLite database (%s)", s->path, sqlite3_errmsg(s->db));
        else
            err_set(e, "%s: %s: %s", s->path, sql, sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        return -1;
    }
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(out, out_size, "%s", t ? (const char *)t : "");
    sqlite3_finalize(st);
    return 0;
}

static int store_exec(store *s, const char *sql, const char *what, rlvr_err *e) {
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return err_set(e, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
    return 0;
}

/* Reads user_version and refuses what this build cannot use: a newer schema always, a
 * database without one when it will not create it. */
static int store_check_version(store *s, int may_create, int *version, rlvr_err *e) {
    char text[32];
    if (store_pragma_text(s, "PRAGMA user_version", text, sizeof text, e)) return -1;
    *version = atoi(text);
    if (*version > STORE_SCHEMA_VERSION)
        return err_set(e, "%s: schema version %d is newer than this rlvr understands (%d); upgrade rlvr", s->path,
                       *version, STORE_SCHEMA_VERSION);
    if (*version == 0 && !may_create) {
        /* Version 0 with tables is someone else's database; without, an empty one. */
        char n[32];
        if (store_pragma_text(s, "SELECT count(*) FROM sqlite_schema", n, sizeof n, e)) return -1;
        return err_set(e, "%s: not an rlvr run store (%s)", s->path,
                       atoi(n) ? "its tables are not rlvr's" : "the database is empty");
    }
    return 0;
}

static store *store_open_flags(const char *path, int flags, int readonly, rlvr_err *e) {
    store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = util_strdup(path))) {
        free(s);
        err_set(e, "%s: out of memory opening the run store", path);
        return NULL;
    }
    s->readonly = readonly;
    int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
    if (rc != SQLITE_OK) {
        /* sqlite3_open_v2 fills a handle even on failure (NULL only when out of memory). */
        const char *why = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
        if (!(flags & SQLITE_OPEN_CREATE) && !util_is_file(path))
            err_set(e, "%s: no such run database", path);
        else
            err_set(e, "%s: cannot open: %s", path, why);
        store_free(s);
        return NULL;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    return s;
}

store *store_open(const char *path, int create, rlvr_err *e) {
    if (create) {
        char *dir = util_dirname(path);
        if (!dir) {
            err_set(e, "%s: out of memory", path);
            return NULL;
        }
        int rc = util_mkdir_p(dir, e);
        free(dir);
        if (rc) {
            err_prefix(e, "%s: creating its directory", path);
            return NULL;
        }
    }
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    store *s = store_open_flags(path, flags, 0, e);
    if (!s) return NULL;
    int version;
    char mode[32];
    /* The version check comes first so a newer database is refused before any pragma
     * below could change it. */
    if (store_check_version(s, 1, &version, e)) goto fail;
    /* WAL: readers (`rlvr runs`) never block the writer, and a commit is one append to
     * the log. synchronous=NORMAL in WAL mode loses nothing when the process dies (the
     * log is in the OS page cache); only a power cut can lose the last commits, never
     * corrupt the database. */
    if (store_pragma_text(s, "PRAGMA journal_mode=WAL", mode, sizeof mode, e)) goto fail;
    if (strcmp(mode, "wal") != 0) {
        err_set(e, "%s: cannot switch to WAL mode (journal_mode is '%s')", path, mode);
        goto fail;
    }
    if (store_exec(s, "PRAGMA foreign_keys=ON", "enabling foreign keys", e)) goto fail;
    if (store_exec(s, "PRAGMA synchronous=NORMAL", "setting synchronous=NORMAL", e)) goto fail;
    if (store_migrate(s->db, STORE_SCHEMA_VERSION, path, e)) goto fail;
    return s;
fail:
    store_free(s);
    return NULL;
}

store *store_open_readonly(const char *path, rlvr_err *e) {
    store *s = store_open_flags(path, SQLITE_OPEN_READONLY, 1, e);
    if (!s) return NULL;
    int version;
    /* Older versions are read as they are: migrations only add, so the columns a reader
     * of version 1 uses are still there. */
    if (store_check_version(s, 0, &version, e)) {
        store_free(s);
        return NULL;
    }
    return s;
}

/* ---- runs and events -------------------------------------------------------------- */

static int store_check_writable(store *s, const char *what, rlvr_err *e) {
    if (s->readonly) return err_set(e, "%s: %s: the store is open read-only", s->path, what);
    return 0;
}

/* Binds text, or NULL for a NULL pointer. SQLITE_STATIC: every statement is reset and
 * its bindings cleared before the caller's strings can go away. */
static int store_bind_text(sqlite3_stmt *st, int i, const char *v) {
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* NaN means "not measured": NULL, so AVG() and friends skip it. */
static int store_bind_double(sqlite3_stmt *st, int i, double v) {
    return isnan(v) ? sqlite3_bind_null(st, i) : sqlite3_bind_double(st, i, v);
}

static void store_bind_time(sqlite3_stmt *st, int i, double unix_s, char buf[32]) {
    if (isnan(unix_s)) {
        sqlite3_bind_null(st, i);
        return;
    }
    util_iso8601(unix_s, buf);
    sqlite3_bind_text(st, i, buf, -1, SQLITE_STATIC);
}

int64_t store_run_begin(store *s, const store_run_info *info, rlvr_err *e) {
    if (store_check_writable(s, "recording a run", e)) return -1;
    static const char sql[] = "INSERT INTO runs(name, started_at, status, config_lua, rlvr_version, model_path, seed, "
                              "host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        err_set(e, "%s: preparing the runs insert: %s", s->path, sqlite3_errmsg(s->db));
        return -1;
    }
    char host[256], now[32];
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = 0; /* gethostname may not terminate a truncated name */
    const char *name = info->name ? info->name : "";
    store_bind_text(st, 1, name);
    store_bind_time(st, 2, util_unix_time(), now);
    store_bind_text(st, 3, info->status ? info->status : "running");
    store_bind_text(st, 4, info->config_lua);
    store_bind_text(st, 5, info->rlvr_version ? info->rlvr_version : RLVR_VERSION);
    store_bind_text(st, 6, info->model_path);
    sqlite3_bind_int64(st, 7, info->seed);
    store_bind_text(st, 8, host);
    sqlite3_bind_int64(st, 9, (int64_t)getpid());
    int64_t id = -1;
    if (sqlite3_step(st) == SQLITE_DONE) id = sqlite3_last_insert_rowid(s->db);
    else err_set(e, "%s: recording run '%s': %s", s->path, name, sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return id;
}

int store_run_finish(store *s, int64_t run_id, const char *status, rlvr_err *e) {
    if (store_check_writable(s, "finishing a run", e)) return -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return err_set(e, "%s: preparing the runs update: %s", s->path, sqlite3_errmsg(s->db));
    char now[32];
    store_bind_text(st, 1, status);
    store_bind_time(st, 2, util_unix_time(), now);
    sqlite3_bind_int64(st, 3, run_id);
    int rc = 0;
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = err_set(e, "%s: setting run %lld to '%s': %s", s->path, (long long)run_id, status ? status : "(null)",
                     sqlite3_errmsg(s->db));
    else if (sqlite3_changes(s->db) == 0)
        rc = err_set(e, "%s: setting run %lld to '%s': no such run", s->path, (long long)run_id,
                     status ? status : "(null)");
    sqlite3_finalize(st);
    return rc;
}

int store_run_resume(store *s, int64_t run_id, int64_t last_step, int64_t *dropped, rlvr_err *e) {
    if (store_check_writable(s, "resuming a run", e)) return -1;
    char host[256];
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = 0;
    sqlite3_stmt *del = NULL, *upd = NULL;
    int rc = -1;
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return err_set(e, "%s: cannot start a transaction: %s", s->path, sqlite3_errmsg(s->db));
    /* Steps past the checkpoint are redone; their metrics, samples and rewards cascade. */
    if (sqlite3_prepare_v2(s->db, "DELETE FROM steps WHERE run_id = ? AND step > ?", -1, &del, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db,
                           "UPDATE runs SET status = 'running', finished_at = NULL, pid = ?, host = ? WHERE id = ?",
                           -1, &upd, NULL) != SQLITE_OK) {
        err_set(e, "%s: preparing the resume: %s", s->path, sqlite3_errmsg(s->db));
        goto done;
    }
    sqlite3_bind_int64(del, 1, run_id);
    sqlite3_bind_int64(del, 2, last_step);
    if (sqlite3_step(del) != SQLITE_DONE) {
        err_set(e, "%s: dropping steps after %lld: %s", s->path, (long long)last_step, sqlite3_errmsg(s->db));
        goto done;
    }
    if (dropped) *dropped = sqlite3_changes(s->db);
    sqlite3_bind_int64(upd, 1, (int64_t)getpid());
    store_bind_text(upd, 2, host);
    sqlite3_bind_int64(upd, 3, run_id);
    if (sqlite3_step(upd) != SQLITE_DONE || sqlite3_changes(s->db) != 1) {
        err_set(e, "%s: run %lld cannot be resumed: %s", s->path, (long long)run_id,
                sqlite3_changes(s->db) == 0 ? "no such run" : sqlite3_errmsg(s->db));
        goto done;
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        err_set(e, "%s: committing the resume: %s", s->path, sqlite3_errmsg(s->db));
        goto done;
    }
    rc = 0;
done:
    if (rc != 0) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_finalize(del);
    sqlite3_finalize(upd);
    return rc;
}

int store_event(store *s, int64_t run_id, const char *level, const char *message, rlvr_err *e) {
    if (store_check_writable(s, "recording an event", e)) return -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "INSERT INTO events(run_id, at, level, message) VALUES (?, ?, ?, ?)", -1, &st,
                           NULL) != SQLITE_OK)
        return err_set(e, "%s: preparing the events insert: %s", s->path, sqlite3_errmsg(s->db));
    char now[32];
    sqlite3_bind_int64(st, 1, run_id);
    store_bind_time(st, 2, util_unix_time(), now);
    store_bind_text(st, 3, level);
    store_bind_text(st, 4, message);
    int rc = 0;
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = err_set(e, "%s: recording %s event for run %lld: %s", s->path, level ? level : "(null)",
                     (long long)run_id, sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return rc;
}

/* ---- steps ------------------------------------------------------------------------ */

void store_step_init(store_step *st) {
    memset(st, 0, sizeof *st);
    double *nan_fields[] = {&st->started_at, &st->wall_s, &st->reward_mean, &st->reward_std, &st->accuracy,
                            &st->loss, &st->kl, &st->entropy, &st->grad_norm, &st->lr, &st->clip_frac,
                            &st->adv_mean, &st->adv_std, &st->response_len_mean, &st->response_len_max,
                            &st->frac_truncated, &st->frac_zero_std_groups, &st->gen_s, &st->score_s,
                            &st->train_s, &st->gen_tokens_per_s, &st->train_tokens_per_s};
    for (size_t i = 0; i < sizeof nan_fields / sizeof nan_fields[0]; i++) *nan_fields[i] = NAN;
}

static int store_prepare_writes(store *s, rlvr_err *e) {
    if (s->ins_step) return 0;
    static const char step_sql[] =
        "INSERT INTO steps(run_id, step, started_at, wall_s, reward_mean, reward_std, accuracy, loss, kl, entropy, "
        "grad_norm, lr, clip_frac, adv_mean, adv_std, response_len_mean, response_len_max, frac_truncated, "
        "frac_zero_std_groups, tokens_generated, gen_s, score_s, train_s, gen_tokens_per_s, train_tokens_per_s) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    static const char metric_sql[] = "INSERT INTO step_metrics(run_id, step, name, value) VALUES (?, ?, ?, ?)";
    static const char sample_sql[] =
        "INSERT INTO samples(run_id, step, prompt_id, group_index, sample_index, prompt, completion, "
        "n_prompt_tokens, n_completion_tokens, finish_reason, reward, advantage, policy_version, completion_ids, "
        "logprobs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    static const char reward_sql[] =
        "INSERT INTO sample_rewards(sample_id, name, value, status, detail) VALUES (?, ?, ?, ?, ?)";
    struct {
        const char *sql, *what;
        sqlite3_stmt **st;
    } stmts[] = {{step_sql, "steps", &s->ins_step},
                 {metric_sql, "step_metrics", &s->ins_metric},
                 {sample_sql, "samples", &s->ins_sample},
                 {reward_sql, "sample_rewards", &s->ins_reward}};
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        /* PERSISTENT: these live as long as the store, so SQLite keeps them out of its
         * short-lived lookaside memory. */
        if (sqlite3_prepare_v3(s->db, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT, stmts[i].st, NULL) !=
            SQLITE_OK) {
            err_set(e, "%s: preparing the %s insert: %s", s->path, stmts[i].what, sqlite3_errmsg(s->db));
            for (size_t j = 0; j <= i; j++) {
                sqlite3_finalize(*stmts[j].st);
                *stmts[j].st = NULL;
            }
            return -1;
        }
    }
    return 0;
}

/* Steps a bound insert, then resets it and clears its bindings (which point at the
 * caller's strings). Returns the sqlite result code. */
static int store_run_insert(sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int store_reserve(unsigned char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    unsigned char *p = realloc(*buf, c);
    if (!p) return -1;
    *buf = p;
    *cap = c;
    return 0;
}

/* Encodes the token ids as int32 little-endian and the log-probs as float32
 * little-endian, whatever this machine's byte order, so a database reads the same
 * everywhere. Returns -1 when out of memory. */
static int store_encode_blobs(store *s, const store_sample *x, size_t n) {
    if (x->completion_ids) {
        if (store_reserve(&s->ids_buf, &s->ids_cap, 4 * n + 1)) return -1;
        for (size_t i = 0; i < n; i++) {
            uint32_t v = (uint32_t)x->completion_ids[i];
            for (int b = 0; b < 4; b++) s->ids_buf[4 * i + b] = (unsigned char)(v >> (8 * b));
        }
    }
    if (x->logprobs) {
        if (store_reserve(&s->lp_buf, &s->lp_cap, 4 * n + 1)) return -1;
        for (size_t i = 0; i < n; i++) {
            uint32_t v;
            memcpy(&v, &x->logprobs[i], 4);
            for (int b = 0; b < 4; b++) s->lp_buf[4 * i + b] = (unsigned char)(v >> (8 * b));
        }
    }
    return 0;
}

/* Inserts the step row, its extra metrics, its samples and their rewards inside the
 * caller's transaction. */
static int store_insert_step(store *s, int64_t run_id, const store_step *x, const store_sample *samples,
                             int n_samples, rlvr_err *e) {
    const long long step = (long long)x->step;
    sqlite3_stmt *st = s->ins_step;
    char started[32];
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, x->step);
    store_bind_time(st, 3, x->started_at, started);
    const double metrics[] = {x->wall_s, x->reward_mean, x->reward_std, x->accuracy, x->loss, x->kl, x->entropy,
                              x->grad_norm, x->lr, x->clip_frac, x->adv_mean, x->adv_std, x->response_len_mean,
                              x->response_len_max, x->frac_truncated, x->frac_zero_std_groups};
    int col = 4;
    for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++) store_bind_double(st, col++, metrics[i]);
    sqlite3_bind_int64(st, col++, x->tokens_generated);
    const double timings[] = {x->gen_s, x->score_s, x->train_s, x->gen_tokens_per_s, x->train_tokens_per_s};
    for (size_t i = 0; i < sizeof timings / sizeof timings[0]; i++) store_bind_double(st, col++, timings[i]);
    int rc = store_run_insert(st);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return err_set(e, "%s: step %lld of run %lld is already stored (steps are written once)", s->path, step,
                       (long long)run_id);
    if (rc != SQLITE_DONE)
        return err_set(e, "%s: writing step %lld of run %lld: %s", s->path, step, (long long)run_id,
                       sqlite3_errmsg(s->db));

    for (int i = 0; i < x->n_extra; i++) {
        const store_metric *m = &x->extra[i];
        st = s->ins_metric;
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int64(st, 2, x->step);
        store_bind_text(st, 3, m->name);
        store_bind_double(st, 4, m->value);
        if (store_run_insert(st) != SQLITE_DONE)
            return err_set(e, "%s: step %lld: writing metric '%s': %s", s->path, step, m->name ? m->name : "(null)",
                           sqlite3_errmsg(s->db));
    }

    for (int i = 0; i < n_samples; i++) {
        const store_sample *x_s = &samples[i];
        /* The BLOB length (4 bytes a token) must fit SQLite's int. */
        if (x_s->n_completion_tokens < 0 || x_s->n_prompt_tokens < 0 || x_s->n_completion_tokens > INT32_MAX / 4)
            return err_set(e, "%s: step %lld: sample %d: bad token counts (%d prompt, %d completion)", s->path, step,
                           i, x_s->n_prompt_tokens, x_s->n_completion_tokens);
        if (x_s->n_rewards < 0 || (x_s->n_rewards > 0 && !x_s->rewards))
            return err_set(e, "%s: step %lld: sample %d: bad reward list (%d rewards at %p)", s->path, step, i,
                           x_s->n_rewards, (const void *)x_s->rewards);
        size_t n_tok = (size_t)x_s->n_completion_tokens;
        if (store_encode_blobs(s, x_s, n_tok))
            return err_set(e, "%s: step %lld: sample %d: out of memory encoding %zu tokens", s->path, step, i, n_tok);
        st = s->ins_sample;
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int64(st, 2, x->step);
        sqlite3_bind_int64(st, 3, x_s->prompt_id);
        sqlite3_bind_int(st, 4, x_s->group_index);
        sqlite3_bind_int(st, 5, x_s->sample_index);
        store_bind_text(st, 6, x_s->prompt);
        store_bind_text(st, 7, x_s->completion);
        sqlite3_bind_int(st, 8, x_s->n_prompt_tokens);
        sqlite3_bind_int(st, 9, x_s->n_completion_tokens);
        store_bind_text(st, 10, x_s->finish_reason);
        store_bind_double(st, 11, x_s->reward);
        store_bind_double(st, 12, x_s->advantage);
        sqlite3_bind_int64(st, 13, x_s->policy_version);
        /* A non-NULL pointer with zero bytes binds an empty BLOB, not NULL. */
        if (x_s->completion_ids) sqlite3_bind_blob(st, 14, s->ids_buf, (int)(4 * n_tok), SQLITE_STATIC);
        else sqlite3_bind_null(st, 14);
        if (x_s->logprobs) sqlite3_bind_blob(st, 15, s->lp_buf, (int)(4 * n_tok), SQLITE_STATIC);
        else sqlite3_bind_null(st, 15);
        if (store_run_insert(st) != SQLITE_DONE)
            return err_set(e, "%s: step %lld: writing sample %d (prompt %lld, finish_reason '%s'): %s", s->path, step,
                           i, (long long)x_s->prompt_id, x_s->finish_reason ? x_s->finish_reason : "(null)",
                           sqlite3_errmsg(s->db));
        int64_t sample_id = sqlite3_last_insert_rowid(s->db);

        for (int j = 0; j < x_s->n_rewards; j++) {
            const store_reward *r = &x_s->rewards[j];
            const char *status = r->status ? r->status : "ok";
            st = s->ins_reward;
            sqlite3_bind_int64(st, 1, sample_id);
            store_bind_text(st, 2, r->name);
            store_bind_double(st, 3, r->value);
            store_bind_text(st, 4, status);
            store_bind_text(st, 5, r->detail);
            if (store_run_insert(st) != SQLITE_DONE)
                return err_set(e, "%s: step %lld: sample %d: writing reward '%s' (status '%s'): %s", s->path, step, i,
                               r->name ? r->name : "(null)", status, sqlite3_errmsg(s->db));
        }
    }
    return 0;
}

int store_write_step(store *s, int64_t run_id, const store_step *st, const store_sample *samples, int n_samples,
                     rlvr_err *e) {
    if (store_check_writable(s, "writing a step", e)) return -1;
    if (n_samples < 0 || (n_samples > 0 && !samples))
        return err_set(e, "%s: step %lld: bad sample list (%d samples at %p)", s->path, (long long)st->step,
                       n_samples, (const void *)samples);
    if (st->n_extra < 0 || (st->n_extra > 0 && !st->extra))
        return err_set(e, "%s: step %lld: bad metric list (%d metrics at %p)", s->path, (long long)st->step,
                       st->n_extra, (const void *)st->extra);
    if (store_prepare_writes(s, e)) return -1;
    /* IMMEDIATE takes the write lock now, so the step cannot fail halfway on a lock. */
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return err_set(e, "%s: step %lld: starting the transaction: %s", s->path, (long long)st->step,
                       sqlite3_errmsg(s->db));
    if (store_insert_step(s, run_id, st, samples, n_samples, e)) goto rollback;
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        err_set(e, "%s: step %lld: committing: %s", s->path, (long long)st->step, sqlite3_errmsg(s->db));
        goto rollback;
    }
    return 0;
rollback:
    /* After some errors (e.g. SQLITE_FULL) SQLite has already rolled back; then this
     * ROLLBACK fails harmlessly with "no transaction is active". */
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* ---- listing ---------------------------------------------------------------------- */

static void store_copy_col(sqlite3_stmt *st, int col, char *out, size_t size) {
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(out, size, "%s", t ? (const char *)t : "");
}

/* Whether the run's process exists: only answerable on the host that recorded it. */
static int store_pid_alive(const store_run_summary *r) {
    if (strcmp(r->status, "running") != 0) return -1;
    char host[256];
    if (gethostname(host, sizeof host) != 0) return -1;
    host[sizeof host - 1] = 0;
    if (strcmp(host, r->host) != 0 || r->pid <= 0) return -1;
    /* Signal 0 checks existence only; EPERM means it exists under another user. */
    if (kill((pid_t)r->pid, 0) != 0 && errno != EPERM) return 0;
    /* A killed process that nobody has reaped yet is a zombie: it still answers signal
     * 0 but will never write again. Linux tells us through /proc. */
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)r->pid);
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[n] = 0;
        const char *paren = strrchr(stat, ')'); /* the name may contain spaces and ')' */
        if (paren && paren[1] == ' ' && paren[2] == 'Z') return 0;
    }
    return 1;
}

const char *store_run_shown_status(const store_run_summary *r) {
    if (strcmp(r->status, "running") == 0 && r->alive == 0) return "died";
    return r->status;
}

int store_list_runs(store *s, int (*fn)(const store_run_summary *, void *), void *ctx, rlvr_err *e) {
    static const char sql[] =
        "SELECT r.id, r.name, r.status, r.started_at, r.finished_at, r.pid, r.host,\n"
        "  (SELECT MAX(step) FROM steps WHERE run_id = r.id),\n"
        "  (SELECT reward_mean FROM steps WHERE run_id = r.id ORDER BY step DESC LIMIT 1),\n"
        "  (SELECT COUNT(*) FROM samples WHERE run_id = r.id)\n"
        "FROM runs r ORDER BY r.id";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return err_set(e, "%s: listing runs: %s", s->path, sqlite3_errmsg(s->db));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_run_summary r;
        memset(&r, 0, sizeof r);
        r.id = sqlite3_column_int64(st, 0);
        store_copy_col(st, 1, r.name, sizeof r.name);
        store_copy_col(st, 2, r.status, sizeof r.status);
        store_copy_col(st, 3, r.started_at, sizeof r.started_at);
        store_copy_col(st, 4, r.finished_at, sizeof r.finished_at);
        r.pid = sqlite3_column_int64(st, 5);
        store_copy_col(st, 6, r.host, sizeof r.host);
        r.last_step = sqlite3_column_type(st, 7) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 7);
        r.last_reward = sqlite3_column_type(st, 8) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 8);
        r.n_samples = sqlite3_column_int64(st, 9);
        r.alive = store_pid_alive(&r);
        int stop = fn(&r, ctx);
        if (stop) {
            sqlite3_finalize(st);
            return stop;
        }
    }
    int result = 0;
    if (rc != SQLITE_DONE) result = err_set(e, "%s: listing runs: %s", s->path, sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return result;
}

/* ---- finding run databases ---------------------------------------------------------- */

static int store_cmp_paths(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void store_free_paths(char **paths, size_t n) {
    if (!paths) return;
    for (size_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

/* Appends `p` (taking it) to the list; frees it on failure. */
static int store_push_path(char ***paths, size_t *n, size_t *cap, char *p) {
    if (!p) return -1;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 8;
        char **q = realloc(*paths, c * sizeof *q);
        if (!q) {
            free(p);
            return -1;
        }
        *paths = q;
        *cap = c;
    }
    (*paths)[(*n)++] = p;
    return 0;
}

int store_find_run_dbs(const char *dir, char ***paths, size_t *n, rlvr_err *e) {
    *paths = NULL;
    *n = 0;
    size_t cap = 0;
    if (util_is_file(dir)) {
        if (store_push_path(paths, n, &cap, util_strdup(dir))) goto oom;
        return 0;
    }
    char *own = util_path_join(dir, "run.db");
    if (!own) goto oom;
    if (util_is_file(own)) {
        if (store_push_path(paths, n, &cap, own)) goto oom;
        return 0;
    }
    free(own);
    DIR *d = opendir(dir);
    if (!d) return err_errno(e, dir);
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.') continue; /* ".", ".." and hidden entries */
        char *sub = util_path_join(dir, ent->d_name);
        char *db = sub ? util_path_join(sub, "run.db") : NULL;
        free(sub);
        if (!db) {
            closedir(d);
            goto oom;
        }
        if (!util_is_file(db)) {
            free(db);
            continue;
        }
        if (store_push_path(paths, n, &cap, db)) {
            closedir(d);
            goto oom;
        }
    }
    closedir(d);
    /* Run directories are named by start time, so path order is usually age order. */
    if (*n > 1) qsort(*paths, *n, sizeof **paths, store_cmp_paths);
    return 0;
oom:
    store_free_paths(*paths, *n);
    *paths = NULL;
    *n = 0;
    return err_set(e, "%s: out of memory listing run databases", dir);
}
