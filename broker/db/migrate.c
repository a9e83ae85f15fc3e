/* Schema migrations (contract: include/lmdm/migrate.h).
 *
 * The directory is read and checked completely before the database is
 * touched, so a badly named or duplicated file changes nothing. Each pending
 * file runs with PQexec (the simple protocol, so a file may hold many
 * statements) inside its own BEGIN/COMMIT together with the INSERT that records
 * it: a migration is either fully applied and recorded, or not at all. */
#include "lmdm/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* pg_advisory_lock key shared by every lmdm migrator ("lmdmmigr" in ASCII). */
#define MIGRATE_LOCK_KEY "7813011349707515762"
/* A schema migration larger than this is certainly a mistake (a dump?). */
#define MIGRATION_MAX_BYTES (16u * 1024 * 1024)
#define VERSION_DIGITS 4

typedef struct migration {
    long version;
    char *name; /* file name, e.g. "0001_init.sql" */
    char *path;
    char *sql; /* loaded only when needed */
    char sha256[65];
} migration_t;

typedef struct migration_set {
    migration_t *items;
    int n, cap;
} migration_set_t;

LMDM_PRINTF(3, 4) static void set_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

/* The server's message without its trailing newline. */
static void set_pg_err(char *errbuf, size_t errlen, const char *what, const PGresult *res, PGconn *conn)
{
    const char *msg = res ? PQresultErrorMessage(res) : "";
    if (!msg[0]) msg = PQerrorMessage(conn);
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        len--;
    set_err(errbuf, errlen, "%s: %.*s", what, (int)len, msg);
}

static void set_free(migration_set_t *set)
{
    for (int i = 0; i < set->n; i++) {
        free(set->items[i].name);
        free(set->items[i].path);
        free(set->items[i].sql);
    }
    free(set->items);
    memset(set, 0, sizeof *set);
}

/* NNNN_name.sql with name in [a-z0-9_]+. Returns the version or -1. */
static long parse_name(const char *name)
{
    size_t len = strlen(name);
    const size_t suffix = 4; /* ".sql" */
    if (len < VERSION_DIGITS + 1 + 1 + suffix) return -1;
    long version = 0;
    for (int i = 0; i < VERSION_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9') return -1;
        version = version * 10 + (name[i] - '0');
    }
    if (name[VERSION_DIGITS] != '_') return -1;
    if (strcmp(name + len - suffix, ".sql") != 0) return -1;
    for (size_t i = VERSION_DIGITS + 1; i < len - suffix; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) return -1;
    }
    return version;
}

static int cmp_version(const void *a, const void *b)
{
    const migration_t *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* Lists and validates the migrations in dir, sorted by version. Other files
 * (README, editor backups) are ignored; anything ending in .sql must be a
 * well-named migration. */
static int scan_dir(const char *dir, migration_set_t *set, char *errbuf, size_t errlen)
{
    memset(set, 0, sizeof *set);
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        set_err(errbuf, errlen, "cannot open migrations directory %s: %s", dir, strerror(e));
        return e == ENOENT ? LMDM_ERR_NOT_FOUND : LMDM_ERR_IO;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        size_t len = strlen(name);
        if (len < 4 || strcmp(name + len - 4, ".sql") != 0) continue;
        long version = parse_name(name);
        if (version < 0) {
            set_err(errbuf, errlen,
                    "bad migration file name %s in %s: expected NNNN_name.sql (4 digits, then lowercase "
                    "letters, digits and underscores)",
                    name, dir);
            rc = LMDM_ERR_INVALID;
            goto out;
        }
        if (version == 0) {
            set_err(errbuf, errlen, "bad migration file name %s in %s: versions start at 0001", name, dir);
            rc = LMDM_ERR_INVALID;
            goto out;
        }
        char *path = lmdm_xmalloc(strlen(dir) + 1 + len + 1);
        sprintf(path, "%s/%s", dir, name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            set_err(errbuf, errlen, "migration %s in %s is not a regular file", name, dir);
            free(path);
            rc = LMDM_ERR_INVALID;
            goto out;
        }
        if (set->n == set->cap) {
            set->cap = set->cap ? set->cap * 2 : 16;
            set->items = lmdm_xrealloc(set->items, (size_t)set->cap * sizeof *set->items);
        }
        migration_t *m = &set->items[set->n++];
        memset(m, 0, sizeof *m);
        m->version = version;
        m->name = lmdm_xstrdup(name);
        m->path = path;
    }
    if (set->n > 1) qsort(set->items, (size_t)set->n, sizeof *set->items, cmp_version);
    for (int i = 1; i < set->n; i++) {
        if (set->items[i].version == set->items[i - 1].version) {
            /* Name them in a stable order whatever readdir returned. */
            const char *a = set->items[i - 1].name, *b = set->items[i].name;
            if (strcmp(a, b) > 0) {
                const char *t = a;
                a = b;
                b = t;
            }
            set_err(errbuf, errlen, "duplicate migration version %04ld in %s: %s and %s",
                    set->items[i].version, dir, a, b);
            rc = LMDM_ERR_INVALID;
            goto out;
        }
    }
out:
    closedir(d);
    if (rc) set_free(set);
    return rc;
}

/* Reads m's file and computes its SHA-256. */
static int load(migration_t *m, char *errbuf, size_t errlen)
{
    if (m->sql) return 0;
    int rc = 0;
    char *buf = NULL;
    FILE *f = fopen(m->path, "rb");
    if (!f) {
        set_err(errbuf, errlen, "cannot read migration %s: %s", m->name, strerror(errno));
        return LMDM_ERR_IO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        set_err(errbuf, errlen, "cannot read migration %s: %s", m->name, strerror(errno));
        rc = LMDM_ERR_IO;
        goto out;
    }
    if ((unsigned long long)st.st_size > MIGRATION_MAX_BYTES) {
        set_err(errbuf, errlen, "migration %s is larger than %u bytes", m->name, MIGRATION_MAX_BYTES);
        rc = LMDM_ERR_TOO_LARGE;
        goto out;
    }
    size_t size = (size_t)st.st_size;
    buf = lmdm_xmalloc(size + 1);
    if (fread(buf, 1, size, f) != size || ferror(f)) {
        set_err(errbuf, errlen, "cannot read migration %s: short read", m->name);
        rc = LMDM_ERR_IO;
        goto out;
    }
    buf[size] = '\0';
    if (strlen(buf) != size) {
        set_err(errbuf, errlen, "migration %s contains a NUL byte", m->name);
        rc = LMDM_ERR_INVALID;
        goto out;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(buf, size, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        set_err(errbuf, errlen, "cannot compute the SHA-256 of migration %s", m->name);
        rc = LMDM_ERR_IO;
        goto out;
    }
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(m->sha256 + 2 * i, 3, "%02x", md[i]);
    m->sql = buf;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

static int exec_cmd(PGconn *conn, const char *sql, const char *what, char *errbuf, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        set_pg_err(errbuf, errlen, what, res, conn);
        rc = LMDM_ERR_DB;
    }
    PQclear(res);
    return rc;
}

/* Applied versions and their checksums, in version order. */
typedef struct applied_row {
    long version;
    char sha256[65];
} applied_row_t;

/* Reads schema_migrations; *n = 0 if the table does not exist yet. */
static int read_applied(PGconn *conn, applied_row_t **rows, int *n, char *errbuf, size_t errlen)
{
    *rows = NULL;
    *n = 0;
    PGresult *res = PQexec(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        set_pg_err(errbuf, errlen, "cannot read schema_migrations", res, conn);
        PQclear(res);
        return LMDM_ERR_DB;
    }
    bool exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!exists) return 0;

    res = PQexec(conn, "SELECT version, sha256 FROM schema_migrations ORDER BY version");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        set_pg_err(errbuf, errlen, "cannot read schema_migrations", res, conn);
        PQclear(res);
        return LMDM_ERR_DB;
    }
    int count = PQntuples(res);
    *rows = lmdm_xcalloc((size_t)(count ? count : 1), sizeof **rows);
    for (int i = 0; i < count; i++) {
        (*rows)[i].version = strtol(PQgetvalue(res, i, 0), NULL, 10);
        snprintf((*rows)[i].sha256, sizeof(*rows)[i].sha256, "%s", PQgetvalue(res, i, 1));
    }
    *n = count;
    PQclear(res);
    return 0;
}

static const applied_row_t *find_applied(const applied_row_t *rows, int n, long version)
{
    for (int i = 0; i < n; i++)
        if (rows[i].version == version) return &rows[i];
    return NULL;
}

/* Applies one migration and records it, all in one transaction. */
static int apply_one(PGconn *conn, migration_t *m, char *errbuf, size_t errlen)
{
    char what[300];
    snprintf(what, sizeof what, "migration %s failed", m->name);
    int rc = exec_cmd(conn, "BEGIN", what, errbuf, errlen);
    if (rc) return rc;

    PGresult *res = PQexec(conn, m->sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        set_pg_err(errbuf, errlen, what, res, conn);
        rc = LMDM_ERR_DB;
    }
    PQclear(res);
    /* A file that ends the transaction itself would let the rest of it, and
     * the schema_migrations row, commit separately. */
    if (!rc && PQtransactionStatus(conn) != PQTRANS_INTRANS) {
        set_err(errbuf, errlen,
                "%s: it must not contain COMMIT or ROLLBACK (the migrator wraps each file in a transaction)",
                what);
        rc = LMDM_ERR_INVALID;
    }
    if (!rc) {
        char version[24];
        snprintf(version, sizeof version, "%ld", m->version);
        const char *params[3] = {version, m->name, m->sha256};
        res = PQexecParams(conn, "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
                           3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            set_pg_err(errbuf, errlen, what, res, conn);
            rc = LMDM_ERR_DB;
        }
        PQclear(res);
    }
    if (!rc) rc = exec_cmd(conn, "COMMIT", what, errbuf, errlen);
    if (rc && PQtransactionStatus(conn) != PQTRANS_IDLE) {
        res = PQexec(conn, "ROLLBACK");
        PQclear(res);
    }
    return rc;
}

/* Another migrator holding the lock is waited for, visibly. */
static int take_lock(PGconn *conn, FILE *progress, char *errbuf, size_t errlen)
{
    PGresult *res = PQexec(conn, "SELECT pg_try_advisory_lock(" MIGRATE_LOCK_KEY ")");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        set_pg_err(errbuf, errlen, "cannot take the migration lock", res, conn);
        PQclear(res);
        return LMDM_ERR_DB;
    }
    bool got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (got) return 0;
    if (progress) {
        fprintf(progress, "waiting for another migrator to finish...\n");
        fflush(progress);
    }
    return exec_cmd(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "cannot take the migration lock",
                    errbuf, errlen);
}

int lmdm_migrate_apply(PGconn *conn, const char *dir, FILE *progress, char *errbuf, size_t errlen)
{
    migration_set_t set;
    applied_row_t *applied = NULL;
    int napplied = 0, count = 0;
    bool locked = false;
    int rc = scan_dir(dir, &set, errbuf, errlen);
    if (rc) return rc;
    for (int i = 0; i < set.n; i++) {
        rc = load(&set.items[i], errbuf, errlen);
        if (rc) goto out;
    }

    /* Notices such as "relation already exists, skipping" are noise here. */
    rc = exec_cmd(conn, "SET client_min_messages = warning", "cannot configure the session", errbuf, errlen);
    if (rc) goto out;
    rc = take_lock(conn, progress, errbuf, errlen);
    if (rc) goto out;
    locked = true;
    rc = exec_cmd(conn,
                  "CREATE TABLE IF NOT EXISTS schema_migrations ("
                  " version bigint PRIMARY KEY,"
                  " name text NOT NULL,"
                  " sha256 text NOT NULL,"
                  " applied_at timestamptz NOT NULL DEFAULT now())",
                  "cannot create schema_migrations", errbuf, errlen);
    if (rc) goto out;
    rc = read_applied(conn, &applied, &napplied, errbuf, errlen);
    if (rc) goto out;

    long latest_applied = napplied ? applied[napplied - 1].version : 0;
    for (int i = 0; i < set.n; i++) {
        migration_t *m = &set.items[i];
        const applied_row_t *row = find_applied(applied, napplied, m->version);
        if (row) {
            if (strcmp(row->sha256, m->sha256) != 0 && progress)
                fprintf(progress, "warning: %s changed after it was applied (its checksum differs)\n",
                        m->name);
            continue;
        }
        /* Applying an older file after newer ones would run schema changes in
         * an order nobody tested. */
        if (m->version < latest_applied) {
            set_err(
                errbuf, errlen,
                "migration %s is older than the latest applied version %04ld; refusing to apply it out of "
                "order",
                m->name, latest_applied);
            rc = LMDM_ERR_INVALID;
            goto out;
        }
        uint64_t t0 = lmdm_now_ns();
        rc = apply_one(conn, m, errbuf, errlen);
        if (rc) goto out;
        count++;
        if (progress) {
            fprintf(progress, "applied %s (%llu ms)\n", m->name,
                    (unsigned long long)((lmdm_now_ns() - t0) / 1000000u));
            fflush(progress);
        }
    }
out:
    if (locked) {
        PGresult *res = PQexec(conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")");
        PQclear(res);
    }
    free(applied);
    set_free(&set);
    return rc ? rc : count;
}

int lmdm_migrate_status(PGconn *conn, const char *dir, lmdm_migrate_status_t *out, char *errbuf,
                        size_t errlen)
{
    migration_set_t set;
    applied_row_t *applied = NULL;
    int napplied = 0;
    memset(out, 0, sizeof *out);
    int rc = scan_dir(dir, &set, errbuf, errlen);
    if (rc) return rc;
    rc = read_applied(conn, &applied, &napplied, errbuf, errlen);
    if (rc) goto out;

    out->files = set.n;
    out->latest_file = set.n ? set.items[set.n - 1].version : 0;
    out->latest_applied = napplied ? applied[napplied - 1].version : 0;
    for (int i = 0; i < set.n; i++) {
        migration_t *m = &set.items[i];
        const applied_row_t *row = find_applied(applied, napplied, m->version);
        if (!row) {
            out->pending++;
            continue;
        }
        out->applied++;
        rc = load(m, errbuf, errlen);
        if (rc) goto out;
        if (strcmp(row->sha256, m->sha256) != 0) out->changed++;
    }
    for (int i = 0; i < napplied; i++) {
        bool known = false;
        for (int j = 0; j < set.n && !known; j++)
            known = set.items[j].version == applied[i].version;
        if (!known) out->unknown++;
    }
out:
    free(applied);
    set_free(&set);
    return rc;
}

long lmdm_migrate_latest_file(const char *dir, char *errbuf, size_t errlen)
{
    migration_set_t set;
    int rc = scan_dir(dir, &set, errbuf, errlen);
    if (rc) return rc;
    long latest = set.n ? set.items[set.n - 1].version : 0;
    set_free(&set);
    return latest;
}
