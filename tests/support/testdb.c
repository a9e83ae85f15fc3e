#include "testdb.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static char server_conninfo[1024];

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("testdb: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

const char *testdb_server_conninfo(void)
{
    if (server_conninfo[0]) return server_conninfo;
    const char *direct = getenv("LMDM_TEST_PG");
    if (direct && *direct) {
        if (strlen(direct) >= sizeof server_conninfo) die("LMDM_TEST_PG is too long");
        strcpy(server_conninfo, direct);
        return server_conninfo;
    }
    const char *file = getenv("LMDM_TEST_PG_FILE");
    if (!file || !*file)
        die("no test PostgreSQL configured: set LMDM_TEST_PG (a conninfo) or LMDM_TEST_PG_FILE "
            "(run the tests through ctest, whose pg.start fixture starts one)");
    FILE *f = fopen(file, "r");
    if (!f) die("cannot read %s (did the pg.start fixture run?)", file);
    if (!fgets(server_conninfo, sizeof server_conninfo, f)) {
        fclose(f);
        die("%s is empty", file);
    }
    fclose(f);
    server_conninfo[strcspn(server_conninfo, "\r\n")] = '\0';
    if (!server_conninfo[0]) die("%s is empty", file);
    return server_conninfo;
}

static PGconn *connect_server(void)
{
    PGconn *c = PQconnectdb(testdb_server_conninfo());
    if (PQstatus(c) != CONNECTION_OK) die("cannot connect to the test server: %s", PQerrorMessage(c));
    return c;
}

/* Appends key='value' to out with libpq conninfo quoting. */
static void append_kv(char *out, size_t outlen, const char *key, const char *val)
{
    size_t n = strlen(out);
    int w = snprintf(out + n, outlen - n, "%s%s='", n ? " " : "", key);
    if (w < 0 || (size_t)w >= outlen - n) die("conninfo too long");
    n += (size_t)w;
    for (const char *p = val; *p; p++) {
        if (n + 3 >= outlen) die("conninfo too long");
        if (*p == '\'' || *p == '\\') out[n++] = '\\';
        out[n++] = *p;
    }
    if (n + 2 > outlen) die("conninfo too long");
    out[n++] = '\'';
    out[n] = '\0';
}

/* The server conninfo with dbname replaced (works for URIs too, since it is
 * rebuilt from libpq's own parse). */
static void conninfo_with_db(const char *dbname, char *out, size_t outlen)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(testdb_server_conninfo(), &err);
    if (!opts) die("bad test server conninfo: %s", err ? err : "out of memory");
    out[0] = '\0';
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || strcmp(o->keyword, "dbname") == 0) continue;
        append_kv(out, outlen, o->keyword, o->val);
    }
    append_kv(out, outlen, "dbname", dbname);
    PQconninfoFree(opts);
}

/* Run a formatted statement; its result, or exit(1) with the server's error. */
static PGresult *vquery(PGconn *c, const char *fmt, va_list ap)
{
    char sql[8192];
    vsnprintf(sql, sizeof sql, fmt, ap);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        die("SQL failed: %s\n%s", sql, PQresultErrorMessage(r));
    return r;
}

void testdb_exec_ok(PGconn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PQclear(vquery(c, fmt, ap));
    va_end(ap);
}

const char *testdb_scalar(PGconn *c, const char *fmt, ...)
{
    static char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = vquery(c, fmt, ap);
    va_end(ap);
    snprintf(buf, sizeof buf, "%s",
             PQntuples(r) < 1 ? "(none)" : PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
    PQclear(r);
    return buf;
}

void testdb_create(char *out, size_t outlen)
{
    static unsigned counter;
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) rnd = (uint32_t)rand();
    char name[64];
    snprintf(name, sizeof name, "lmdm_test_%ld_%u_%08x", (long)getpid(), ++counter, rnd);

    PGconn *c = connect_server();
    char sql[160];
    /* template0: nobody is ever connected to it, so concurrent tests cannot
     * make CREATE DATABASE fail with "source database is being accessed". */
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\" TEMPLATE template0 ENCODING 'UTF8'", name);
    testdb_exec_ok(c, "%s", sql);
    PQfinish(c);
    conninfo_with_db(name, out, outlen);
}

void testdb_drop(const char *conninfo)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (!opts) die("testdb_drop: bad conninfo: %s", err ? err : "out of memory");
    char name[64] = "";
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "dbname") == 0 && o->val) snprintf(name, sizeof name, "%s", o->val);
    PQconninfoFree(opts);
    /* Only ever drop what testdb_create made. */
    if (strncmp(name, "lmdm_test_", 10) != 0 ||
        strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(name))
        die("testdb_drop: '%s' is not a test database", name);

    PGconn *c = connect_server();
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
    testdb_exec_ok(c, "%s", sql);
    PQfinish(c);
}
