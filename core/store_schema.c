/* store_schema.c - the run store's schema as an ordered list of forward migrations.
 *
 * store_migrations[v - 1] takes a database from user_version v - 1 to v. To change the
 * schema, append a script and bump STORE_SCHEMA_VERSION; never edit a script that has
 * shipped, since databases in the wild were built by it. Migrations only add (tables,
 * columns, indexes), so readers of an older version's columns keep working.
 * docs/run-store.md describes every column; keep it in step. */
#include <sqlite3.h>
#include <stdio.h>

#include "store.h"

/* Times are ISO-8601 UTC text ("2026-11-23T08:58:13Z"): readable in the sqlite3 shell
 * and ordered correctly as text; durations are REAL seconds. */
static const char *const store_migrations[] = {
    /* 1: the initial schema. */
    "CREATE TABLE runs (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  name TEXT NOT NULL,\n"
    "  started_at TEXT NOT NULL,\n"
    "  finished_at TEXT,\n"
    "  status TEXT NOT NULL,\n"
    "  config_lua TEXT,\n"
    "  rlvr_version TEXT,\n"
    "  model_path TEXT,\n"
    "  seed INTEGER,\n"
    "  host TEXT,\n"
    "  pid INTEGER\n"
    ");\n"
    "CREATE TABLE steps (\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  step INTEGER NOT NULL,\n"
    "  started_at TEXT,\n"
    "  wall_s REAL,\n"
    "  reward_mean REAL, reward_std REAL, accuracy REAL,\n"
    "  loss REAL, kl REAL, entropy REAL, grad_norm REAL, lr REAL, clip_frac REAL,\n"
    "  adv_mean REAL, adv_std REAL,\n"
    "  response_len_mean REAL, response_len_max REAL, frac_truncated REAL, frac_zero_std_groups REAL,\n"
    "  tokens_generated INTEGER,\n"
    "  gen_s REAL, score_s REAL, train_s REAL,\n"
    "  gen_tokens_per_s REAL, train_tokens_per_s REAL,\n"
    "  PRIMARY KEY (run_id, step)\n"
    ");\n"
    "CREATE TABLE step_metrics (\n"
    "  run_id INTEGER NOT NULL,\n"
    "  step INTEGER NOT NULL,\n"
    "  name TEXT NOT NULL,\n"
    "  value REAL,\n"
    "  PRIMARY KEY (run_id, step, name),\n"
    "  FOREIGN KEY (run_id, step) REFERENCES steps(run_id, step) ON DELETE CASCADE\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE samples (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  run_id INTEGER NOT NULL,\n"
    "  step INTEGER NOT NULL,\n"
    "  prompt_id INTEGER NOT NULL,\n"
    "  group_index INTEGER NOT NULL,\n"
    "  sample_index INTEGER NOT NULL,\n"
    "  prompt TEXT,\n"
    "  completion TEXT,\n"
    "  n_prompt_tokens INTEGER NOT NULL,\n"
    "  n_completion_tokens INTEGER NOT NULL,\n"
    "  finish_reason TEXT NOT NULL CHECK (finish_reason IN ('stop', 'length')),\n"
    "  reward REAL,\n"
    "  advantage REAL,\n"
    "  policy_version INTEGER,\n"
    "  completion_ids BLOB,\n"
    "  logprobs BLOB,\n"
    "  FOREIGN KEY (run_id, step) REFERENCES steps(run_id, step) ON DELETE CASCADE\n"
    ");\n"
    /* Serves "the samples of step N", "group by prompt within a step", and the foreign
     * key's cascade from steps. */
    "CREATE INDEX samples_by_step ON samples(run_id, step, prompt_id);\n"
    /* The primary key (sample_id first) is the index by sample. */
    "CREATE TABLE sample_rewards (\n"
    "  sample_id INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,\n"
    "  name TEXT NOT NULL,\n"
    "  value REAL,\n"
    "  status TEXT NOT NULL CHECK (status IN ('ok', 'error', 'timeout')),\n"
    "  detail TEXT,\n"
    "  PRIMARY KEY (sample_id, name)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE events (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  at TEXT NOT NULL,\n"
    "  level TEXT NOT NULL CHECK (level IN ('info', 'warning', 'error')),\n"
    "  message TEXT NOT NULL\n"
    ");\n"
    "CREATE INDEX events_by_run ON events(run_id, id);\n",
};

_Static_assert(sizeof store_migrations / sizeof store_migrations[0] == STORE_SCHEMA_VERSION,
               "one migration script per schema version");

static int store_user_version(sqlite3 *db, int *version, const char *name, rlvr_err *e) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        err_set(e, "%s: reading the schema version: %s", name, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

int store_migrate(sqlite3 *db, int target_version, const char *name, rlvr_err *e) {
    if (target_version < 0 || target_version > STORE_SCHEMA_VERSION)
        return err_set(e, "%s: no schema version %d (this rlvr knows 0 to %d)", name, target_version,
                       STORE_SCHEMA_VERSION);
    for (;;) {
        /* IMMEDIATE takes the write lock before reading the version, so two processes
         * opening a new database at once cannot both apply the same migration. */
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
            return err_set(e, "%s: starting a schema migration: %s", name, sqlite3_errmsg(db));
        int version;
        if (store_user_version(db, &version, name, e)) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
        if (version >= target_version) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return 0;
        }
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", version + 1);
        /* user_version lives in the database header, which is written under the same
         * transaction: the script and its version bump commit together or not at all. */
        if (sqlite3_exec(db, store_migrations[version], NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(db, bump, NULL, NULL, NULL) != SQLITE_OK) {
            err_set(e, "%s: migrating the schema from version %d to %d: %s", name, version, version + 1,
                    sqlite3_errmsg(db));
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            err_set(e, "%s: committing the schema migration to version %d: %s", name, version + 1,
                    sqlite3_errmsg(db));
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
}
