/* Migrations against a real PostgreSQL: order, idempotence, rollback of a
 * failing file, checksum drift, file-name validation, and the repository's own
 * migrations/ directory. Every test gets a fresh database. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "lmdm/db.h"
#include "lmdm/migrate.h"
#include "testdb.h"

static char conninfo[1024];
static PGconn *db;
static char dir[64];
static char err[1024];

static void setup(void)
{
    testdb_create(conninfo, sizeof conninfo);
    db = lmdm_db_connect_blocking(conninfo, err, sizeof err);
    if (!db) {
        fprintf(stderr, "cannot connect to %s: %s\n", conninfo, err);
        exit(1);
    }
    snprintf(dir, sizeof dir, "/tmp/lmdm-mig.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    err[0] = '\0';
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[512];
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(dir);
    PQfinish(db);
    db = NULL;
    testdb_drop(conninfo);
}

static void write_file(const char *name, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(content, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* First column of the first row of a query, or "(error)". */
static const char *scalar(const char *sql)
{
    static char buf[1024];
    PGresult *r = PQexec(db, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        snprintf(buf, sizeof buf, "(error: %s)", PQresultErrorMessage(r));
    else
        snprintf(buf, sizeof buf, "%s", PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
    PQclear(r);
    return buf;
}

static int table_exists(const char *name)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT to_regclass('%s') IS NOT NULL", name);
    return strcmp(scalar(sql), "t") == 0;
}

static int apply(FILE *progress)
{
    err[0] = '\0';
    return lmdm_migrate_apply(db, dir, progress, err, sizeof err);
}

/* Files are written newest first so that directory order cannot hide a
 * missing sort; each one depends on the one before it. */
static void write_chain(void)
{
    write_file("0010_c.sql", "ALTER TABLE b ADD COLUMN note text NOT NULL DEFAULT 'x';\n"
                             "INSERT INTO b (a_id) SELECT id FROM a;\n");
    write_file("0002_b.sql", "CREATE TABLE b (id serial PRIMARY KEY, a_id int NOT NULL REFERENCES a(id));\n");
    write_file("0001_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\nINSERT INTO a VALUES (1), (2);\n");
    write_file("README", "not a migration\n");
}

static void test_applies_in_order(void)
{
    setup();
    write_chain();
    char *out = NULL;
    size_t outlen = 0;
    FILE *progress = open_memstream(&out, &outlen);
    CHECK_INT_EQ(apply(progress), 3);
    fclose(progress);
    CHECK_STR_EQ(err, "");
    CHECK_STR_CONTAINS(out, "applied 0001_a.sql (");
    CHECK_STR_CONTAINS(out, " ms)\n");
    /* The progress lines come in version order. */
    const char *p1 = strstr(out, "0001_a.sql"), *p2 = strstr(out, "0002_b.sql"),
               *p3 = strstr(out, "0010_c.sql");
    CHECK(p1 && p2 && p3 && p1 < p2 && p2 < p3);
    free(out);

    CHECK_STR_EQ(
        scalar("SELECT string_agg(version || ':' || name, ',' ORDER BY version) FROM schema_migrations"),
        "1:0001_a.sql,2:0002_b.sql,10:0010_c.sql");
    CHECK_STR_EQ(scalar("SELECT count(*) FROM b WHERE note = 'x'"), "2");
    /* The recorded checksum is the SHA-256 of the file. */
    CHECK_STR_EQ(scalar("SELECT sha256 = encode(sha256(convert_to('CREATE TABLE a (id int PRIMARY KEY);\n"
                        "INSERT INTO a VALUES (1), (2);\n', 'UTF8')), 'hex') FROM schema_migrations "
                        "WHERE version = 1"),
                 "t");
    /* The advisory lock is not left behind. */
    CHECK_STR_EQ(
        scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"), "0");

    lmdm_migrate_status_t st;
    CHECK_INT_EQ(lmdm_migrate_status(db, dir, &st, err, sizeof err), 0);
    CHECK_INT_EQ(st.files, 3);
    CHECK_INT_EQ(st.applied, 3);
    CHECK_INT_EQ(st.pending, 0);
    CHECK_INT_EQ(st.latest_file, 10);
    CHECK_INT_EQ(st.latest_applied, 10);
    CHECK_INT_EQ(st.changed, 0);
    CHECK_INT_EQ(st.unknown, 0);
    CHECK_INT_EQ(lmdm_migrate_latest_file(dir, err, sizeof err), 10);
    teardown();
}

static void test_idempotent(void)
{
    setup();
    write_chain();
    CHECK_INT_EQ(apply(NULL), 3);
    char *out = NULL;
    size_t outlen = 0;
    FILE *progress = open_memstream(&out, &outlen);
    CHECK_INT_EQ(apply(progress), 0);
    fclose(progress);
    CHECK_STR_EQ(out, "");
    free(out);
    CHECK_STR_EQ(scalar("SELECT count(*) FROM schema_migrations"), "3");
    CHECK_STR_EQ(scalar("SELECT count(*) FROM b"), "2"); /* 0010's INSERT ran once */

    /* A new file later is the only one applied. */
    write_file("0011_d.sql", "CREATE TABLE d (x int);");
    CHECK_INT_EQ(apply(NULL), 1);
    CHECK(table_exists("d"));
    CHECK_STR_EQ(scalar("SELECT count(*) FROM b"), "2");
    teardown();
}

static void test_status_before_anything(void)
{
    setup();
    write_chain();
    lmdm_migrate_status_t st;
    CHECK_INT_EQ(lmdm_migrate_status(db, dir, &st, err, sizeof err), 0);
    CHECK_INT_EQ(st.files, 3);
    CHECK_INT_EQ(st.applied, 0);
    CHECK_INT_EQ(st.pending, 3);
    CHECK_INT_EQ(st.latest_applied, 0);
    /* status changes nothing, not even schema_migrations */
    CHECK(!table_exists("schema_migrations"));
    teardown();
}

static void test_failure_rolls_back(void)
{
    setup();
    write_file("0001_a.sql", "CREATE TABLE a (id int PRIMARY KEY);");
    write_file("0002_b.sql", "CREATE TABLE b (id int);");
    write_file("0003_bad.sql", "CREATE TABLE c (id int);\nINSERT INTO c VALUES (1);\nSELECT 1 / 0;\n");
    write_file("0004_d.sql", "CREATE TABLE d (id int);");
    int rc = apply(NULL);
    CHECK_INT_EQ(rc, LMDM_ERR_DB);
    CHECK_STR_CONTAINS(err, "migration 0003_bad.sql failed: ");
    CHECK_STR_CONTAINS(err, "division by zero");
    CHECK(table_exists("a"));
    CHECK(table_exists("b"));
    CHECK(!table_exists("c")); /* its partial DDL is gone */
    CHECK(!table_exists("d")); /* nothing after the failure ran */
    CHECK_STR_EQ(scalar("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations"),
                 "1,2");
    CHECK(PQtransactionStatus(db) == PQTRANS_IDLE);
    CHECK_STR_EQ(
        scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"), "0");

    /* Fixed, it applies with the rest. */
    write_file("0003_bad.sql", "CREATE TABLE c (id int);\nINSERT INTO c VALUES (1);\n");
    CHECK_INT_EQ(apply(NULL), 2);
    CHECK(table_exists("c"));
    CHECK(table_exists("d"));
    teardown();
}

/* The file and its schema_migrations row commit together: when recording
 * fails (here the file itself took its version number), the file's changes
 * are rolled back too. */
static void test_record_failure_rolls_back_file(void)
{
    setup();
    write_file("0001_a.sql", "CREATE TABLE a (id int);");
    write_file("0002_b.sql", "CREATE TABLE b (id int);\n"
                             "INSERT INTO schema_migrations (version, name, sha256) VALUES (2, 'x', 'y');\n");
    CHECK_INT_EQ(apply(NULL), LMDM_ERR_DB);
    CHECK_STR_CONTAINS(err, "migration 0002_b.sql failed: ");
    CHECK_STR_CONTAINS(err, "duplicate key");
    CHECK(table_exists("a"));
    CHECK(!table_exists("b"));
    CHECK_STR_EQ(scalar("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations"),
                 "1");
    teardown();
}

static void test_syntax_error_names_file(void)
{
    setup();
    write_file("0001_a.sql", "CREAT TABLE a (id int);");
    CHECK_INT_EQ(apply(NULL), LMDM_ERR_DB);
    CHECK_STR_CONTAINS(err, "migration 0001_a.sql failed: ERROR:  syntax error");
    CHECK_STR_EQ(scalar("SELECT count(*) FROM schema_migrations"), "0");
    teardown();
}

static void test_commit_inside_file_refused(void)
{
    setup();
    write_file("0001_a.sql", "CREATE TABLE a (id int);\nCOMMIT;\n");
    CHECK_INT_EQ(apply(NULL), LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(err, "0001_a.sql");
    CHECK_STR_CONTAINS(err, "COMMIT");
    CHECK_STR_EQ(scalar("SELECT count(*) FROM schema_migrations"), "0");
    teardown();
}

static void test_changed_and_unknown(void)
{
    setup();
    write_chain();
    CHECK_INT_EQ(apply(NULL), 3);
    write_file("0002_b.sql", "CREATE TABLE b (id serial PRIMARY KEY, a_id int); -- edited\n");
    PQclear(PQexec(
        db, "INSERT INTO schema_migrations (version, name, sha256) VALUES (99, '0099_future.sql', 'x')"));
    lmdm_migrate_status_t st;
    CHECK_INT_EQ(lmdm_migrate_status(db, dir, &st, err, sizeof err), 0);
    CHECK_INT_EQ(st.changed, 1);
    CHECK_INT_EQ(st.unknown, 1);
    CHECK_INT_EQ(st.applied, 3);
    CHECK_INT_EQ(st.pending, 0);
    CHECK_INT_EQ(st.latest_applied, 99);
    CHECK_INT_EQ(st.latest_file, 10);

    /* apply does not re-run an edited file, but says it changed */
    char *out = NULL;
    size_t outlen = 0;
    FILE *progress = open_memstream(&out, &outlen);
    CHECK_INT_EQ(apply(progress), 0);
    fclose(progress);
    CHECK_STR_CONTAINS(out, "0002_b.sql changed");
    free(out);
    teardown();
}

static void test_out_of_order_refused(void)
{
    setup();
    write_file("0001_a.sql", "CREATE TABLE a (id int);");
    write_file("0003_c.sql", "CREATE TABLE c (id int);");
    CHECK_INT_EQ(apply(NULL), 2);
    write_file("0002_b.sql", "CREATE TABLE b (id int);");
    CHECK_INT_EQ(apply(NULL), LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(err, "0002_b.sql");
    CHECK(!table_exists("b"));
    teardown();
}

static void test_bad_names_refused(void)
{
    static const char *bad[] = {"2_bad.sql", "0001-init.sql", "0001_Init.sql", "00001_x.sql",
                                "0001_.sql", "0000_zero.sql", "abcd_x.sql",    "0001_a b.sql"};
    for (size_t i = 0; i < LMDM_ARRAY_LEN(bad); i++) {
        setup();
        write_file("0001_ok.sql", "CREATE TABLE ok (id int);");
        write_file(bad[i], "CREATE TABLE bad (id int);");
        CHECK_INT_EQ(apply(NULL), LMDM_ERR_INVALID);
        CHECK_STR_CONTAINS(err, bad[i]);
        /* Refused before anything happened. */
        CHECK(!table_exists("ok"));
        CHECK(!table_exists("schema_migrations"));
        lmdm_migrate_status_t st;
        CHECK_INT_EQ(lmdm_migrate_status(db, dir, &st, err, sizeof err), LMDM_ERR_INVALID);
        CHECK(lmdm_migrate_latest_file(dir, err, sizeof err) < 0);
        teardown();
    }
}

static void test_duplicate_version_refused(void)
{
    setup();
    write_file("0001_a.sql", "CREATE TABLE a (id int);");
    write_file("0001_b.sql", "CREATE TABLE b (id int);");
    CHECK_INT_EQ(apply(NULL), LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(err, "duplicate migration version 0001");
    CHECK_STR_CONTAINS(err, "0001_a.sql and 0001_b.sql");
    CHECK(!table_exists("a"));
    teardown();
}

static void test_missing_dir(void)
{
    setup();
    char missing[128];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    CHECK_INT_EQ(lmdm_migrate_apply(db, missing, NULL, err, sizeof err), LMDM_ERR_NOT_FOUND);
    CHECK_STR_CONTAINS(err, missing);
    CHECK_INT_EQ(lmdm_migrate_latest_file(missing, err, sizeof err), LMDM_ERR_NOT_FOUND);
    /* An empty directory is fine: nothing to do. */
    CHECK_INT_EQ(apply(NULL), 0);
    CHECK_INT_EQ(lmdm_migrate_latest_file(dir, err, sizeof err), 0);
    teardown();
}

static void test_repo_migrations(void)
{
    const char *src = getenv("LMDM_SRC");
    if (!src) {
        harness_fail(__FILE__, __LINE__, "LMDM_SRC is not set");
        return;
    }
    setup();
    char repo[1024];
    snprintf(repo, sizeof repo, "%s/migrations", src);
    long latest = lmdm_migrate_latest_file(repo, err, sizeof err);
    CHECK(latest >= 1);
    int n = lmdm_migrate_apply(db, repo, NULL, err, sizeof err);
    if (n < 0) fprintf(stderr, "repo migrations: %s\n", err);
    CHECK(n >= 1);
    lmdm_migrate_status_t st;
    CHECK_INT_EQ(lmdm_migrate_status(db, repo, &st, err, sizeof err), 0);
    CHECK_INT_EQ(st.pending, 0);
    CHECK_INT_EQ(st.applied, n);
    CHECK_INT_EQ(st.latest_applied, latest);
    CHECK(table_exists("broker_meta"));
    CHECK_INT_EQ(lmdm_migrate_apply(db, repo, NULL, err, sizeof err), 0);
    teardown();
}

int main(void)
{
    RUN(test_applies_in_order);
    RUN(test_idempotent);
    RUN(test_status_before_anything);
    RUN(test_failure_rolls_back);
    RUN(test_record_failure_rolls_back_file);
    RUN(test_syntax_error_names_file);
    RUN(test_commit_inside_file_refused);
    RUN(test_changed_and_unknown);
    RUN(test_out_of_order_refused);
    RUN(test_bad_names_refused);
    RUN(test_duplicate_version_refused);
    RUN(test_missing_dir);
    RUN(test_repo_migrations);
    return harness_finish();
}
