/* Schema migrations: files `NNNN_name.sql` in a directory, applied in numeric
 * order, each once, each in its own transaction, recorded in schema_migrations
 * (version, name, sha256 of the file, applied_at). A session-level advisory lock
 * keeps two migrators from running at once. Blocking: for the command line and
 * for serve's start-up check only. */
#ifndef LMDM_MIGRATE_H
#define LMDM_MIGRATE_H

#include <stdio.h>
#include <libpq-fe.h>
#include "lmdm/common.h"

typedef struct lmdm_migrate_status {
    int files;            /* migration files found */
    int applied;          /* of those, recorded as applied */
    int pending;          /* files not yet applied */
    long latest_file;     /* highest version among the files (0 if none) */
    long latest_applied;  /* highest version recorded in the database (0 if none) */
    int changed;          /* applied files whose checksum no longer matches */
    int unknown;          /* versions in the database with no file (newer schema) */
} lmdm_migrate_status_t;

/** Apply every pending migration from `dir`, printing one line per migration to
 * `progress` (may be NULL). Stops at the first failure, which is rolled back;
 * earlier migrations stay applied. Returns the number applied (>= 0) or a
 * negative LMDM_ERR_* with a message naming the file in errbuf. */
int lmdm_migrate_apply(PGconn *conn, const char *dir, FILE *progress, char *errbuf, size_t errlen) LMDM_MUSTCHECK;

/** Compare `dir` with the database without changing anything. */
int lmdm_migrate_status(PGconn *conn, const char *dir, lmdm_migrate_status_t *out, char *errbuf,
                        size_t errlen) LMDM_MUSTCHECK;

/** Highest version among the files in `dir` (0 if none), or negative error. */
long lmdm_migrate_latest_file(const char *dir, char *errbuf, size_t errlen);

#endif
