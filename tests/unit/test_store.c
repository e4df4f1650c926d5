/* test_store.c - the run store: schema and pragmas, migrations and version refusal,
 * exact round trips of steps, samples and rewards, duplicate and failed steps rolling
 * back whole, runs, events, listing and finding run databases. The kill test is in
 * test_store_kill.c, the documented queries in test_run_store_doc.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "store_test_util.h"

/* ---- schema ----------------------------------------------------------------------- */

/* The latest schema's tables and columns, in order. Adding a migration that adds a
 * column means adding it here (and to docs/run-store.md). */
static const struct {
    const char *table;
    const char *columns[32];
} expected_schema[] = {
    {"runs",
     {"id", "name", "started_at", "finished_at", "status", "config_lua", "rlvr_version", "model_path", "seed", "host",
      "pid"}},
    {"steps",
     {"run_id", "step", "started_at", "wall_s", "reward_mean", "reward_std", "accuracy", "loss", "kl", "entropy",
      "grad_norm", "lr", "clip_frac", "adv_mean", "adv_std", "response_len_mean", "response_len_max",
      "frac_truncated", "frac_zero_std_groups", "tokens_generated", "gen_s", "score_s", "train_s",
      "gen_tokens_per_s", "train_tokens_per_s"}},
    {"step_metrics", {"run_id", "step", "name", "value"}},
    {"samples",
     {"id", "run_id", "step", "prompt_id", "group_index", "sample_index", "prompt", "completion", "n_prompt_tokens",
      "n_completion_tokens", "finish_reason", "reward", "advantage", "policy_version", "completion_ids",
      "logprobs"}},
    {"sample_rewards", {"sample_id", "name", "value", "status", "detail"}},
    {"events", {"id", "run_id", "at", "level", "message"}},
};

static void assert_schema_is_latest(sqlite3 *db) {
    assert_int_equal(stu_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    for (size_t t = 0; t < sizeof expected_schema / sizeof expected_schema[0]; t++) {
        char sql[128];
        snprintf(sql, sizeof sql, "PRAGMA table_info(%s)", expected_schema[t].table);
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        int i = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *want = expected_schema[t].columns[i++];
            assert_non_null(want); /* a column the test does not know about */
            assert_string_equal((const char *)sqlite3_column_text(st, 1), want);
        }
        sqlite3_finalize(st);
        assert_null(expected_schema[t].columns[i]); /* a column missing from the table */
        assert_true(i > 0);
    }
    assert_int_equal(stu_int(db, "SELECT count(*) FROM sqlite_schema WHERE type='index' AND name='samples_by_step'"),
                     1);
    assert_int_equal(stu_int(db, "SELECT count(*) FROM sqlite_schema WHERE type='index' AND name='events_by_run'"), 1);
}

static void test_open_creates_schema_and_pragmas(void **state) {
    char dir[512], path[600];
    stu_tmpdir("store_schema", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/runs/first/run.db", dir); /* parent directories do not exist yet */
    rlvr_err e = {{0}};
    store *s = store_open(path, 1, &e);
    assert_non_null(s);
    sqlite3 *db = store_db(s);
    assert_schema_is_latest(db);
    assert_int_equal(stu_int(db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(stu_int(db, "PRAGMA synchronous"), 1); /* NORMAL */
    char mode[16];
    stu_text(db, mode, sizeof mode, "PRAGMA journal_mode");
    assert_string_equal(mode, "wal");
    assert_string_equal(store_path(s), path);
    store_close(s);

    /* Reopening changes nothing and keeps WAL (it is persistent). */
    s = store_open(path, 0, &e);
    assert_non_null(s);
    assert_schema_is_latest(store_db(s));
    stu_text(store_db(s), mode, sizeof mode, "PRAGMA journal_mode");
    assert_string_equal(mode, "wal");
    store_close(s);
}

/* Builds a database as an rlvr of schema version `v` left it, with one run recorded
 * when it has a runs table, using the columns of version 1 (migrations only add). */
static void make_db_at_version(const char *path, int v) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    rlvr_err e = {{0}};
    assert_int_equal(store_migrate(db, v, path, &e), 0);
    assert_int_equal(stu_int(db, "PRAGMA user_version"), v);
    if (v >= 1)
        assert_int_equal(sqlite3_exec(db,
                                      "INSERT INTO runs(name, started_at, status) "
                                      "VALUES ('old', '2020-01-01T00:00:00Z', 'finished')",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
    sqlite3_close(db);
}

/* Every version this build knows, 0 (an empty file) included, migrates to the latest
 * schema and keeps its rows. Adding migration N+1 makes this test cover N -> N+1. */
static void test_migrates_from_every_older_version(void **state) {
    char dir[512], path[600];
    stu_tmpdir("store_migrate", dir, sizeof dir);
    for (int v = 0; v <= STORE_SCHEMA_VERSION; v++) {
        snprintf(path, sizeof path, "%s/v%d.db", dir, v);
        make_db_at_version(path, v);
        rlvr_err e = {{0}};
        store *s = store_open(path, 0, &e);
        if (!s) fail_msg("version %d: %s", v, e.msg);
        assert_schema_is_latest(store_db(s));
        assert_int_equal(stu_int(store_db(s), "SELECT count(*) FROM runs WHERE name = 'old'"), v >= 1 ? 1 : 0);
        char ok[16];
        stu_text(store_db(s), ok, sizeof ok, "PRAGMA integrity_check");
        assert_string_equal(ok, "ok");
        store_close(s);
    }
    /* A target outside the known versions is refused. */
    sqlite3 *db;
    snprintf(path, sizeof path, "%s/bad.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    rlvr_err e = {{0}};
    assert_int_equal(store_migrate(db, STORE_SCHEMA_VERSION + 1, "bad.db", &e), -1);
    assert_non_null(strstr(e.msg, "no schema version"));
    sqlite3_close(db);
}

static void test_empty_file_is_created_as_latest(void **state) {
    char dir[512], path[600];
    stu_tmpdir("store_empty", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/run.db", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    rlvr_err e = {{0}};
    /* Read-only, an empty file is not a run store... */
    assert_null(store_open_readonly(path, &e));
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "not an rlvr run store"));
    /* ...while the writer turns it into one. */
    store *s = store_open(path, 0, &e);
    assert_non_null(s);
    assert_schema_is_latest(store_db(s));
    store_close(s);
}

static void test_newer_schema_is_refused(void **state) {
    char dir[512], path[600], want[800];
    stu_tmpdir("store_newer", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/run.db", dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE future(x); PRAGMA user_version = 7", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    snprintf(want, sizeof want, "%s: schema version 7 is newer than this rlvr understands (%d); upgrade rlvr", path,
             STORE_SCHEMA_VERSION);
    rlvr_err e = {{0}};
    assert_null(store_open(path, 1, &e));
    assert_string_equal(e.msg, want);
    memset(&e, 0, sizeof e);
    assert_null(store_open_readonly(path, &e));
    assert_string_equal(e.msg, want);
    /* Refusing must not have touched it: still version 7, still not WAL, no rlvr tables. */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(stu_int(db, "PRAGMA user_version"), 7);
    assert_int_equal(stu_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'runs'"), 0);
    char mode[16];
    stu_text(db, mode, sizeof mode, "PRAGMA journal_mode");
    assert_string_equal(mode, "delete");
    sqlite3_close(db);
}

/* A version-0 database that already has a "runs" table: migration 1 fails halfway, and
 * its transaction must leave neither its other tables nor the version bump. */
static void test_failed_migration_leaves_nothing(void **state) {
    char dir[512], path[600];
    stu_tmpdir("store_badmig", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/other.db", dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE steps(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    rlvr_err e = {{0}};
    assert_null(store_open(path, 0, &e));
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "migrating the schema from version 0 to 1"));
    assert_non_null(strstr(e.msg, "already exists"));
    assert_null(store_open_readonly(path, &e));
    assert_non_null(strstr(e.msg, "its tables are not rlvr's"));
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(stu_int(db, "PRAGMA user_version"), 0);
    assert_int_equal(stu_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'runs'"), 0);
    sqlite3_close(db);
}

static void test_not_sqlite_file_fails_clearly(void **state) {
    char dir[512], path[600];
    stu_tmpdir("store_text", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/run.db", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("these are my notes, not a database; long enough to hold a header of one hundred bytes or so.\n", f);
    fclose(f);
    rlvr_err e = {{0}};
    assert_null(store_open(path, 1, &e));
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "not a SQLite database"));
    memset(&e, 0, sizeof e);
    assert_null(store_open_readonly(path, &e));
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "not a SQLite database"));
    /* The file is untouched. */
    char *text = util_read_file(path, NULL, &e);
    assert_non_null(text);
    assert_true(strncmp(text, "these are my notes", 18) == 0);
    free(text);

    /* A missing file without `create`, and a directory where the parent should be. */
    snprintf(path, sizeof path, "%s/missing/run.db", dir);
    assert_null(store_open(path, 0, &e));
    assert_non_null(strstr(e.msg, path));
    assert_null(store_open_readonly(path, &e));
    assert_non_null(strstr(e.msg, "no such run database"));
    snprintf(path, sizeof path, "%s/run.db/sub/run.db", dir); /* run.db is a file */
    assert_null(store_open(path, 1, &e));
    assert_non_null(strstr(e.msg, "not a directory"));
}

static void test_readonly_cannot_write(void **state) {
    char dir[512], path[600];
    stu_tmpdir("store_ro", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/run.db", dir);
    rlvr_err e = {{0}};
    store *s = store_open(path, 1, &e);
    assert_non_null(s);
    store_run_info info = {.name = "r", .status = "running"};
    int64_t run = store_run_begin(s, &info, &e);
    assert_true(run > 0);
    store_close(s);

    store *ro = store_open_readonly(path, &e);
    assert_non_null(ro);
    assert_int_equal(stu_int(store_db(ro), "SELECT count(*) FROM runs"), 1);
    assert_int_equal(store_run_begin(ro, &info, &e), -1);
    assert_non_null(strstr(e.msg, "read-only"));
    store_step st;
    store_step_init(&st);
    assert_int_equal(store_write_step(ro, run, &st, NULL, 0, &e), -1);
    assert_int_equal(store_event(ro, run, "info", "x", &e), -1);
    assert_int_equal(store_run_finish(ro, run, "finished", &e), -1);
    /* And SQL of one's own cannot write either: the connection itself is read-only. */
    int rc = sqlite3_exec(store_db(ro), "INSERT INTO events(run_id, at, level, message) VALUES (1, 'x', 'info', 'y')",
                          NULL, NULL, NULL);
    assert_int_equal(rc & 0xff, SQLITE_READONLY);
    store_close(ro);
}

/* ---- steps ------------------------------------------------------------------------ */

typedef struct fixture {
    char dir[512], path[600];
    store *s;
    int64_t run;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    stu_tmpdir("store_steps", f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/run.db", f->dir);
    rlvr_err e = {{0}};
    f->s = store_open(f->path, 1, &e);
    if (!f->s) fail_msg("%s", e.msg);
    store_run_info info = {.name = "unit", .config_lua = "return {}", .model_path = "m", .seed = 7,
                           .status = "running"};
    f->run = store_run_begin(f->s, &info, &e);
    if (f->run <= 0) fail_msg("%s", e.msg);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    store_close(f->s);
    free(f);
    return 0;
}

static const int32_t ids0[] = {1, -2, 151645, INT32_MAX, INT32_MIN};
static const float lps0[] = {-0.25f, -1e-7f, -17.5f, 0.0f, -3.0f};
static const store_reward rewards0[] = {{"accuracy", 1.0, "ok", NULL}, {"format", 0.5, NULL, NULL}};
static const store_reward rewards1[] = {{"accuracy", 0.0, "error", "verify.lua:3: bad argument"},
                                        {"format", NAN, "timeout", "verifier exceeded 2 s"}};

static void fill_samples(store_sample x[3]) {
    memset(x, 0, 3 * sizeof *x);
    x[0] = (store_sample){.prompt_id = 42, .group_index = 0, .sample_index = 0, .prompt = "2+2?",
                          .completion = "4 \xc3\xa9", .n_prompt_tokens = 3, .n_completion_tokens = 5,
                          .finish_reason = "stop", .reward = 1.5, .advantage = 0.70710678118654752,
                          .policy_version = 3, .completion_ids = ids0, .logprobs = lps0, .rewards = rewards0,
                          .n_rewards = 2};
    x[1] = (store_sample){.prompt_id = 42, .group_index = 0, .sample_index = 1, .prompt = "2+2?",
                          .completion = "five", .n_prompt_tokens = 3, .n_completion_tokens = 0,
                          .finish_reason = "length", .reward = NAN, .advantage = -0.5, .policy_version = 3,
                          .completion_ids = ids0, .logprobs = NULL, .rewards = rewards1, .n_rewards = 2};
    x[2] = (store_sample){.prompt_id = 43, .group_index = 1, .sample_index = 0, .prompt = NULL, .completion = NULL,
                          .n_prompt_tokens = 0, .n_completion_tokens = 0, .finish_reason = "stop", .reward = 0,
                          .advantage = 0, .policy_version = 3};
}

static void fill_step(store_step *st, int64_t step) {
    store_step_init(st);
    st->step = step;
    st->started_at = 1790000000.75;
    st->wall_s = 12.5;
    st->reward_mean = 0.1 + step;
    st->loss = -0.0123456789012345;
    st->lr = 3e-6;
    st->tokens_generated = 123456789012LL;
    st->gen_s = 1.0 / 3.0;
}

static void test_step_round_trip(void **state) {
    fixture *f = *state;
    store_step st;
    fill_step(&st, 5);
    store_metric extra[] = {{"reward/accuracy_mean", 0.25}, {"nan_metric", NAN}};
    st.extra = extra;
    st.n_extra = 2;
    store_sample x[3];
    fill_samples(x);
    rlvr_err e = {{0}};
    assert_int_equal(store_write_step(f->s, f->run, &st, x, 3, &e), 0);
    sqlite3 *db = store_db(f->s);

    /* The step row: exact doubles, NaN as NULL, ISO time. */
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT started_at, wall_s, reward_mean, loss, lr, tokens_generated, gen_s, "
                                        "kl, accuracy, train_tokens_per_s FROM steps WHERE run_id = ? AND step = 5",
                                        -1, &q, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(q, 1, f->run);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "2026-09-21T14:13:20Z");
    assert_true(sqlite3_column_double(q, 1) == 12.5);
    assert_true(sqlite3_column_double(q, 2) == 5.1);
    assert_true(sqlite3_column_double(q, 3) == -0.0123456789012345);
    assert_true(sqlite3_column_double(q, 4) == 3e-6);
    assert_int_equal(sqlite3_column_int64(q, 5), 123456789012LL);
    assert_true(sqlite3_column_double(q, 6) == 1.0 / 3.0);
    for (int c = 7; c <= 9; c++) assert_int_equal(sqlite3_column_type(q, c), SQLITE_NULL);
    sqlite3_finalize(q);

    assert_int_equal(stu_int(db, "SELECT count(*) FROM step_metrics WHERE step = 5"), 2);
    assert_int_equal(stu_int(db, "SELECT value = 0.25 FROM step_metrics WHERE name = 'reward/accuracy_mean'"), 1);
    assert_int_equal(stu_int(db, "SELECT value IS NULL FROM step_metrics WHERE name = 'nan_metric'"), 1);

    /* The samples, in insertion order. */
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT id, prompt_id, group_index, sample_index, prompt, completion, "
                                        "n_prompt_tokens, n_completion_tokens, finish_reason, reward, advantage, "
                                        "policy_version, completion_ids, logprobs FROM samples WHERE step = 5 "
                                        "ORDER BY id",
                                        -1, &q, NULL),
                     SQLITE_OK);
    int64_t sample_ids[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        sample_ids[i] = sqlite3_column_int64(q, 0);
        assert_int_equal(sqlite3_column_int64(q, 1), x[i].prompt_id);
        assert_int_equal(sqlite3_column_int(q, 2), x[i].group_index);
        assert_int_equal(sqlite3_column_int(q, 3), x[i].sample_index);
        if (x[i].prompt) assert_string_equal((const char *)sqlite3_column_text(q, 4), x[i].prompt);
        else assert_int_equal(sqlite3_column_type(q, 4), SQLITE_NULL);
        if (x[i].completion) assert_string_equal((const char *)sqlite3_column_text(q, 5), x[i].completion);
        else assert_int_equal(sqlite3_column_type(q, 5), SQLITE_NULL);
        assert_int_equal(sqlite3_column_int(q, 6), x[i].n_prompt_tokens);
        assert_int_equal(sqlite3_column_int(q, 7), x[i].n_completion_tokens);
        assert_string_equal((const char *)sqlite3_column_text(q, 8), x[i].finish_reason);
        if (isnan(x[i].reward)) assert_int_equal(sqlite3_column_type(q, 9), SQLITE_NULL);
        else assert_true(sqlite3_column_double(q, 9) == x[i].reward);
        assert_true(sqlite3_column_double(q, 10) == x[i].advantage);
        assert_int_equal(sqlite3_column_int64(q, 11), 3);
        if (i == 0) {
            /* Little-endian int32 and float32, decoded byte by byte, not by memcpy. */
            assert_int_equal(sqlite3_column_type(q, 12), SQLITE_BLOB);
            assert_int_equal(sqlite3_column_bytes(q, 12), 20);
            assert_int_equal(sqlite3_column_bytes(q, 13), 20);
            const unsigned char *b = sqlite3_column_blob(q, 12), *l = sqlite3_column_blob(q, 13);
            for (int t = 0; t < 5; t++) {
                uint32_t v = b[4 * t] | (uint32_t)b[4 * t + 1] << 8 | (uint32_t)b[4 * t + 2] << 16 |
                             (uint32_t)b[4 * t + 3] << 24;
                assert_int_equal((int32_t)v, ids0[t]);
                uint32_t w = l[4 * t] | (uint32_t)l[4 * t + 1] << 8 | (uint32_t)l[4 * t + 2] << 16 |
                             (uint32_t)l[4 * t + 3] << 24;
                float fl;
                memcpy(&fl, &w, 4);
                assert_true(fl == lps0[t]);
            }
            /* 151645 = 0x0002505D: the first byte is the low one. */
            assert_int_equal(b[8], 0x5D);
        } else if (i == 1) {
            /* Zero tokens with an array: an empty BLOB; no array: NULL. */
            assert_int_equal(sqlite3_column_type(q, 12), SQLITE_BLOB);
            assert_int_equal(sqlite3_column_bytes(q, 12), 0);
            assert_int_equal(sqlite3_column_type(q, 13), SQLITE_NULL);
        } else {
            assert_int_equal(sqlite3_column_type(q, 12), SQLITE_NULL);
            assert_int_equal(sqlite3_column_type(q, 13), SQLITE_NULL);
        }
    }
    assert_int_equal(sqlite3_step(q), SQLITE_DONE);
    sqlite3_finalize(q);

    /* The reward parts, joined to their samples. */
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT sample_id, name, value, status, detail FROM sample_rewards "
                                        "ORDER BY sample_id, name",
                                        -1, &q, NULL),
                     SQLITE_OK);
    const store_reward *want[] = {&rewards0[0], &rewards0[1], &rewards1[0], &rewards1[1]};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int64(q, 0), sample_ids[i / 2]);
        assert_string_equal((const char *)sqlite3_column_text(q, 1), want[i]->name);
        if (isnan(want[i]->value)) assert_int_equal(sqlite3_column_type(q, 2), SQLITE_NULL);
        else assert_true(sqlite3_column_double(q, 2) == want[i]->value);
        assert_string_equal((const char *)sqlite3_column_text(q, 3), want[i]->status ? want[i]->status : "ok");
        if (want[i]->detail) assert_string_equal((const char *)sqlite3_column_text(q, 4), want[i]->detail);
        else assert_int_equal(sqlite3_column_type(q, 4), SQLITE_NULL);
    }
    assert_int_equal(sqlite3_step(q), SQLITE_DONE);
    sqlite3_finalize(q);

    /* Deleting a run cascades to everything under it (foreign keys are on). */
    assert_int_equal(sqlite3_exec(db, "DELETE FROM runs", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(stu_int(db, "SELECT (SELECT count(*) FROM steps) + (SELECT count(*) FROM samples) + "
                                 "(SELECT count(*) FROM sample_rewards) + (SELECT count(*) FROM step_metrics)"),
                     0);
}

static long long rows_of_step(sqlite3 *db, int64_t step) {
    return stu_int(db,
                   "SELECT (SELECT count(*) FROM steps WHERE step = %lld) + "
                   "(SELECT count(*) FROM step_metrics WHERE step = %lld) + "
                   "(SELECT count(*) FROM samples WHERE step = %lld) + "
                   "(SELECT count(*) FROM sample_rewards JOIN samples ON samples.id = sample_id WHERE step = %lld)",
                   (long long)step, (long long)step, (long long)step, (long long)step);
}

static void test_duplicate_step_is_an_error(void **state) {
    fixture *f = *state;
    store_step st;
    fill_step(&st, 0);
    store_sample x[3];
    fill_samples(x);
    rlvr_err e = {{0}};
    assert_int_equal(store_write_step(f->s, f->run, &st, x, 3, &e), 0);
    long long before = rows_of_step(store_db(f->s), 0);
    st.reward_mean = 99;
    assert_int_equal(store_write_step(f->s, f->run, &st, x, 3, &e), -1);
    assert_non_null(strstr(e.msg, f->path));
    assert_non_null(strstr(e.msg, "step 0 of run"));
    assert_non_null(strstr(e.msg, "already stored"));
    /* Nothing added, nothing changed, and the store still writes the next step. */
    assert_int_equal(rows_of_step(store_db(f->s), 0), before);
    assert_int_equal(stu_int(store_db(f->s), "SELECT reward_mean = 0.1 FROM steps WHERE step = 0"), 1);
    fill_step(&st, 1);
    assert_int_equal(store_write_step(f->s, f->run, &st, x, 3, &e), 0);
    /* The same step number in another run is fine. */
    store_run_info info = {.name = "other", .status = "running"};
    int64_t run2 = store_run_begin(f->s, &info, &e);
    fill_step(&st, 0);
    assert_int_equal(store_write_step(f->s, run2, &st, x, 3, &e), 0);
    /* A run that does not exist violates the foreign key. */
    assert_int_equal(store_write_step(f->s, 999, &st, x, 3, &e), -1);
    assert_non_null(strstr(e.msg, "FOREIGN KEY"));
}

static void test_invalid_sample_rolls_back_whole_step(void **state) {
    fixture *f = *state;
    sqlite3 *db = store_db(f->s);
    store_step st;
    fill_step(&st, 4);
    store_metric extra[] = {{"m", 1}};
    st.extra = extra;
    st.n_extra = 1;
    store_sample x[3];
    fill_samples(x);
    x[2].finish_reason = "bogus"; /* violates the CHECK, after two samples and their rewards went in */
    rlvr_err e = {{0}};
    assert_int_equal(store_write_step(f->s, f->run, &st, x, 3, &e), -1);
    assert_non_null(strstr(e.msg, "step 4"));
    assert_non_null(strstr(e.msg, "sample 2"));
    assert_non_null(strstr(e.msg, "bogus"));
    assert_non_null(strstr(e.msg, "CHECK constraint failed"));
    assert_int_equal(rows_of_step(db, 4), 0);
    assert_int_equal(stu_int(db, "SELECT count(*) FROM samples"), 0);
    assert_int_equal(sqlite3_get_autocommit(db), 1); /* no transaction left open */

    /* A bad reward status fails the same way. */
    store_reward bad[] = {{"accuracy", 1, "maybe", NULL}};
    fill_samples(x);
    x[1].rewards = bad;
    x[1].n_rewards = 1;
    assert_int_equal(store_write_step(f->s, f->run, &st, x, 3, &e), -1);
    assert_non_null(strstr(e.msg, "reward 'accuracy' (status 'maybe')"));
    assert_int_equal(rows_of_step(db, 4), 0);

    /* Two parts with the same name on one sample. */
    store_reward twice[] = {{"accuracy", 1, "ok", NULL}, {"accuracy", 0, "ok", NULL}};
    fill_samples(x);
    x[0].rewards = twice;
    assert_int_equal(store_write_step(f->s, f->run, &st, x, 3, &e), -1);
    assert_non_null(strstr(e.msg, "UNIQUE"));
    assert_int_equal(rows_of_step(db, 4), 0);

    /* Bad counts are refused before anything is written. */
    fill_samples(x);
    x[1].n_completion_tokens = -1;
    assert_int_equal(store_write_step(f->s, f->run, &st, x, 3, &e), -1);
    assert_non_null(strstr(e.msg, "sample 1: bad token counts"));
    fill_samples(x);
    x[0].rewards = NULL;
    assert_int_equal(store_write_step(f->s, f->run, &st, x, 3, &e), -1);
    assert_non_null(strstr(e.msg, "sample 0: bad reward list"));
    assert_int_equal(rows_of_step(db, 4), 0);

    /* The prepared statements were reset: the corrected step now goes in whole. */
    fill_samples(x);
    assert_int_equal(store_write_step(f->s, f->run, &st, x, 3, &e), 0);
    assert_int_equal(rows_of_step(db, 4), 1 + 1 + 3 + 4);
}

/* ---- runs and events -------------------------------------------------------------- */

static void test_run_begin_and_finish(void **state) {
    fixture *f = *state;
    sqlite3 *db = store_db(f->s);
    char host[256], got[256];
    gethostname(host, sizeof host);
    host[sizeof host - 1] = 0;
    stu_text(db, got, sizeof got, "SELECT host FROM runs");
    assert_string_equal(got, host);
    assert_int_equal(stu_int(db, "SELECT pid FROM runs"), getpid());
    assert_int_equal(stu_int(db, "SELECT seed FROM runs"), 7);
    stu_text(db, got, sizeof got, "SELECT rlvr_version FROM runs");
    assert_true(strlen(got) > 0);
    stu_text(db, got, sizeof got, "SELECT started_at FROM runs");
    assert_int_equal(strlen(got), 20); /* 2026-11-23T08:58:13Z */
    assert_int_equal(got[10], 'T');
    assert_int_equal(got[19], 'Z');
    assert_int_equal(stu_int(db, "SELECT finished_at IS NULL AND status = 'running' FROM runs"), 1);
    rlvr_err e = {{0}};
    assert_int_equal(store_run_finish(f->s, f->run, "finished", &e), 0);
    assert_int_equal(stu_int(db, "SELECT finished_at >= started_at AND status = 'finished' FROM runs"), 1);
    assert_int_equal(store_run_finish(f->s, 999, "failed", &e), -1);
    assert_non_null(strstr(e.msg, "run 999"));
    assert_non_null(strstr(e.msg, "no such run"));
}

static void test_events(void **state) {
    fixture *f = *state;
    rlvr_err e = {{0}};
    assert_int_equal(store_event(f->s, f->run, "info", "started", &e), 0);
    assert_int_equal(store_event(f->s, f->run, "error", "verifier crashed", &e), 0);
    assert_int_equal(store_event(f->s, f->run, "debug", "nope", &e), -1);
    assert_non_null(strstr(e.msg, "debug"));
    assert_non_null(strstr(e.msg, "CHECK"));
    assert_int_equal(store_event(f->s, 999, "info", "nope", &e), -1);
    assert_non_null(strstr(e.msg, "FOREIGN KEY"));
    char got[64];
    stu_text(store_db(f->s), got, sizeof got, "SELECT group_concat(level || ':' || message, ',') FROM events");
    assert_string_equal(got, "info:started,error:verifier crashed");
}

typedef struct listed {
    store_run_summary runs[8];
    int n, stop_after;
} listed;

static int collect(const store_run_summary *r, void *ctx) {
    listed *l = ctx;
    l->runs[l->n++] = *r;
    return l->n == l->stop_after ? 42 : 0;
}

static void test_list_runs(void **state) {
    fixture *f = *state;
    sqlite3 *db = store_db(f->s);
    rlvr_err e = {{0}};
    store_step st;
    store_sample x[3];
    fill_samples(x);
    for (int64_t step = 0; step < 3; step++) {
        fill_step(&st, step);
        assert_int_equal(store_write_step(f->s, f->run, &st, x, step == 2 ? 1 : 3, &e), 0);
    }
    store_run_info info = {.name = "empty", .status = "running"};
    int64_t empty = store_run_begin(f->s, &info, &e);
    int64_t gone = store_run_begin(f->s, &info, &e);
    int64_t elsewhere = store_run_begin(f->s, &info, &e);
    int64_t done = store_run_begin(f->s, &info, &e);
    assert_int_equal(store_run_finish(f->s, done, "finished", &e), 0);
    /* A pid that surely no longer exists: a child that has been reaped. */
    pid_t child = fork();
    if (child == 0) _exit(0);
    assert_int_equal(waitpid(child, NULL, 0), child);
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE runs SET pid = %ld WHERE id = %lld", (long)child, (long long)gone);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    snprintf(sql, sizeof sql, "UPDATE runs SET host = 'not-this-host.invalid' WHERE id = %lld", (long long)elsewhere);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);

    listed l = {.stop_after = -1};
    assert_int_equal(store_list_runs(f->s, collect, &l, &e), 0);
    assert_int_equal(l.n, 5);
    const store_run_summary *r = &l.runs[0];
    assert_int_equal(r->id, f->run);
    assert_string_equal(r->name, "unit");
    assert_string_equal(r->status, "running");
    assert_int_equal(r->last_step, 2);
    assert_true(r->last_reward == 2.1);
    assert_int_equal(r->n_samples, 3 + 3 + 1);
    assert_int_equal(r->pid, getpid());
    assert_int_equal(r->alive, 1);
    assert_string_equal(store_run_shown_status(r), "running");
    assert_int_equal(strlen(r->started_at), 20);
    assert_string_equal(r->finished_at, "");

    r = &l.runs[1];
    assert_int_equal(r->id, empty);
    assert_int_equal(r->last_step, -1);
    assert_true(isnan(r->last_reward));
    assert_int_equal(r->n_samples, 0);

    r = &l.runs[2];
    assert_int_equal(r->id, gone);
    assert_int_equal(r->alive, 0);
    assert_string_equal(store_run_shown_status(r), "died");

    r = &l.runs[3];
    assert_int_equal(r->id, elsewhere);
    assert_int_equal(r->alive, -1);
    assert_string_equal(store_run_shown_status(r), "running");

    r = &l.runs[4];
    assert_int_equal(r->id, done);
    assert_string_equal(store_run_shown_status(r), "finished");
    assert_int_equal(strlen(r->finished_at), 20);

    /* A non-zero return stops the listing and comes back. */
    listed l2 = {.stop_after = 2};
    assert_int_equal(store_list_runs(f->s, collect, &l2, &e), 42);
    assert_int_equal(l2.n, 2);

    /* A reader sees the same while the writer holds its connection open. */
    store *ro = store_open_readonly(f->path, &e);
    assert_non_null(ro);
    listed l3 = {.stop_after = -1};
    assert_int_equal(store_list_runs(ro, collect, &l3, &e), 0);
    assert_int_equal(l3.n, 5);
    assert_int_equal(l3.runs[0].last_step, 2);
    store_close(ro);
}

/* ---- finding run databases -------------------------------------------------------- */

static void touch(const char *dir, const char *rel) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    char *parent = util_dirname(path);
    rlvr_err e;
    assert_int_equal(util_mkdir_p(parent, &e), 0);
    free(parent);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
}

static void test_find_run_dbs(void **state) {
    char dir[512], want[700];
    stu_tmpdir("store_find", dir, sizeof dir);
    touch(dir, "runs/2026-02-01_b/run.db");
    touch(dir, "runs/2026-01-01_a/run.db");
    touch(dir, "runs/2026-01-01_a/run.db-wal");
    touch(dir, "runs/no_db/config.lua");
    touch(dir, "runs/notes.txt");
    touch(dir, "runs/.hidden/run.db");
    touch(dir, "runs/deep/x/run.db"); /* two levels down: not a run directory */
    char runs[600];
    snprintf(runs, sizeof runs, "%s/runs", dir);
    char **paths;
    size_t n;
    rlvr_err e = {{0}};
    assert_int_equal(store_find_run_dbs(runs, &paths, &n, &e), 0);
    assert_int_equal(n, 2);
    snprintf(want, sizeof want, "%s/2026-01-01_a/run.db", runs);
    assert_string_equal(paths[0], want);
    snprintf(want, sizeof want, "%s/2026-02-01_b/run.db", runs);
    assert_string_equal(paths[1], want);
    store_free_paths(paths, n);

    /* A run directory itself, and a database file itself. */
    snprintf(want, sizeof want, "%s/2026-02-01_b", runs);
    assert_int_equal(store_find_run_dbs(want, &paths, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(paths[0], strcat(want, "/run.db"));
    store_free_paths(paths, n);
    assert_int_equal(store_find_run_dbs(want, &paths, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_string_equal(paths[0], want);
    store_free_paths(paths, n);

    /* An empty directory has no runs; a missing one is an error naming it. */
    snprintf(want, sizeof want, "%s/runs/no_db", dir);
    assert_int_equal(store_find_run_dbs(want, &paths, &n, &e), 0);
    assert_int_equal(n, 0);
    store_free_paths(paths, n);
    snprintf(want, sizeof want, "%s/nowhere", dir);
    assert_int_equal(store_find_run_dbs(want, &paths, &n, &e), -1);
    assert_non_null(strstr(e.msg, want));
    assert_non_null(strstr(e.msg, "No such file"));
    assert_null(paths);
    assert_int_equal(n, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_creates_schema_and_pragmas),
        cmocka_unit_test(test_migrates_from_every_older_version),
        cmocka_unit_test(test_empty_file_is_created_as_latest),
        cmocka_unit_test(test_newer_schema_is_refused),
        cmocka_unit_test(test_failed_migration_leaves_nothing),
        cmocka_unit_test(test_not_sqlite_file_fails_clearly),
        cmocka_unit_test(test_readonly_cannot_write),
        cmocka_unit_test_setup_teardown(test_step_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_step_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_sample_rolls_back_whole_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_begin_and_finish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_runs, setup, teardown),
        cmocka_unit_test(test_find_run_dbs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
