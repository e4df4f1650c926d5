/* test_run_store_doc.c - docs/run-store.md stays true: every ```sql block in it runs
 * without error and returns at least one row against a database store_writer generated
 * (which has verifier errors and timeouts, truncations and zero-variance groups, so
 * every query has something to find), and every column of every table is documented
 * in its table's section. Runs the queries through the library's own SQLite, so the
 * sqlite3 shell is not needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "store_test_util.h"

typedef struct doc_test {
    char *doc;
    char db_path[600];
    store *s;
} doc_test;

/* Runs store_writer to completion: 4 steps of 64 samples in a fresh database. */
static void generate_db(const char *db_path) {
    const char *tool = getenv("RLVR_TOOL_store_writer");
    if (!tool) fail_msg("RLVR_TOOL_store_writer is not set (run through ctest)");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The writer's "step N" lines are not wanted here. */
        if (!freopen("/dev/null", "w", stdout)) _exit(126);
        execl(tool, tool, db_path, "4", (char *)NULL);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static int setup(void **state) {
    doc_test *t = calloc(1, sizeof *t);
    const char *src = getenv("RLVR_SOURCE_DIR");
    if (!src) fail_msg("RLVR_SOURCE_DIR is not set (run through ctest)");
    char path[600];
    snprintf(path, sizeof path, "%s/docs/run-store.md", src);
    rlvr_err e = {{0}};
    t->doc = util_read_file(path, NULL, &e);
    if (!t->doc) fail_msg("%s", e.msg);
    char dir[512];
    stu_tmpdir("store_doc", dir, sizeof dir);
    snprintf(t->db_path, sizeof t->db_path, "%s/runs/doc/run.db", dir);
    generate_db(t->db_path);
    /* Read-only, as a user looking at a run would be: a documented query must not write. */
    t->s = store_open_readonly(t->db_path, &e);
    if (!t->s) fail_msg("%s", e.msg);
    *state = t;
    return 0;
}

static int teardown(void **state) {
    doc_test *t = *state;
    store_close(t->s);
    free(t->doc);
    free(t);
    return 0;
}

/* The heading ("### ...") above position `at` in the document, for messages. */
static void heading_before(const char *doc, const char *at, char *out, size_t size) {
    const char *h = NULL;
    for (const char *p = doc; (p = strstr(p, "\n### ")) && p < at; p++) h = p + 5;
    if (!h) {
        snprintf(out, size, "(no heading)");
        return;
    }
    size_t n = strcspn(h, "\n");
    snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), h);
}

/* Runs every statement of `sql` and returns the rows of the last one (-1 on error,
 * with the message in `err`). */
static long run_block(sqlite3 *db, const char *sql, char *err, size_t err_size) {
    long rows = 0;
    const char *tail = sql;
    while (*tail) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, tail, -1, &st, &tail) != SQLITE_OK) {
            snprintf(err, err_size, "%s", sqlite3_errmsg(db));
            return -1;
        }
        if (!st) continue; /* whitespace or a comment after the last statement */
        rows = 0;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) rows++;
        if (rc != SQLITE_DONE) {
            snprintf(err, err_size, "%s", sqlite3_errmsg(db));
            sqlite3_finalize(st);
            return -1;
        }
        sqlite3_finalize(st);
    }
    return rows;
}

static void test_every_documented_query_returns_rows(void **state) {
    doc_test *t = *state;
    static const char open_fence[] = "```sql\n";
    int n_blocks = 0, n_failed = 0;
    for (const char *p = strstr(t->doc, open_fence); p; p = strstr(p, open_fence)) {
        const char *body = p + strlen(open_fence);
        const char *end = strstr(body, "\n```");
        assert_non_null(end); /* an unclosed block */
        char *sql = strndup(body, (size_t)(end - body) + 1);
        assert_non_null(sql);
        char title[128], err[512] = "";
        heading_before(t->doc, p, title, sizeof title);
        long rows = run_block(store_db(t->s), sql, err, sizeof err);
        printf("%-45s %ld rows\n", title, rows);
        if (rows < 0) {
            printf("  FAILED: %s\n%s\n", err, sql);
            n_failed++;
        } else if (rows == 0) {
            printf("  FAILED: returned no rows against the generated database\n%s\n", sql);
            n_failed++;
        }
        free(sql);
        n_blocks++;
        p = end + 4;
    }
    assert_int_equal(n_failed, 0);
    assert_true(n_blocks >= 10);
}

/* Each table's section ("### `name`") has a row "| `column` |" for each of its columns,
 * and there is no section for a table that does not exist. */
static void test_every_column_is_documented(void **state) {
    doc_test *t = *state;
    sqlite3 *db = store_db(t->s);
    sqlite3_stmt *tables;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT name FROM sqlite_schema WHERE type = 'table' "
                                        "AND name NOT LIKE 'sqlite_%' ORDER BY name",
                                        -1, &tables, NULL),
                     SQLITE_OK);
    int n_tables = 0, n_missing = 0;
    while (sqlite3_step(tables) == SQLITE_ROW) {
        const char *table = (const char *)sqlite3_column_text(tables, 0);
        char heading[128];
        snprintf(heading, sizeof heading, "\n### `%s`\n", table);
        const char *section = strstr(t->doc, heading);
        if (!section) {
            printf("docs/run-store.md: no section for table '%s'\n", table);
            n_missing++;
            continue;
        }
        const char *next = strstr(section + 1, "\n### ");
        size_t len = next ? (size_t)(next - section) : strlen(section);
        char *text = strndup(section, len);
        assert_non_null(text);
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT name FROM pragma_table_info('%s')", table);
        sqlite3_stmt *cols;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &cols, NULL), SQLITE_OK);
        while (sqlite3_step(cols) == SQLITE_ROW) {
            char row[128];
            snprintf(row, sizeof row, "| `%s` |", (const char *)sqlite3_column_text(cols, 0));
            if (!strstr(text, row)) {
                printf("docs/run-store.md: table '%s': column '%s' is not documented\n", table,
                       (const char *)sqlite3_column_text(cols, 0));
                n_missing++;
            }
        }
        sqlite3_finalize(cols);
        free(text);
        n_tables++;
    }
    sqlite3_finalize(tables);
    assert_int_equal(n_missing, 0);
    assert_int_equal(n_tables, 6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_documented_query_returns_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_column_is_documented, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
