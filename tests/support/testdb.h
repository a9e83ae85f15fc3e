/* Fresh databases for integration tests, in the private PostgreSQL that the
 * pg.start fixture started (its conninfo is in $LMDM_TEST_PG_FILE, or given
 * directly in $LMDM_TEST_PG). */
#ifndef LMDM_TEST_TESTDB_H
#define LMDM_TEST_TESTDB_H

#include <stddef.h>

/** conninfo of the server's maintenance database ("postgres"); aborts the test
 * program with a clear message if no test server is configured. */
const char *testdb_server_conninfo(void);

/** Create a new empty database with a unique name; writes its conninfo into out.
 * Aborts on failure. */
void testdb_create(char *out, size_t outlen);

/** Drop a database created by testdb_create (forcefully). */
void testdb_drop(const char *conninfo);

struct pg_conn;

/** Run a printf-formatted statement on `c` that must succeed; on failure
 * print it with the server's error and exit(1). */
void testdb_exec_ok(struct pg_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** The first column of the first row of a printf-formatted query ("(none)"
 * without a row, "(null)" for NULL), in a static buffer; exit(1) on error. */
const char *testdb_scalar(struct pg_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
