/* PostgreSQL access for the broker.
 *
 * A pool belongs to one worker thread and its event loop: every function here
 * must be called on that thread, and every callback runs on it. Queries use
 * libpq's asynchronous API (PQsendQueryPrepared / PQconsumeInput / PQgetResult)
 * driven by libevent, so a request waiting on the database never blocks the
 * thread. Statements are prepared lazily, once per connection.
 *
 * When the server goes away the pool reconnects with exponential backoff
 * (100 ms doubling to 5 s); while no connection is usable, new queries fail at
 * once with LMDM_ERR_DB_UNAVAILABLE (the HTTP layer answers 503 + Retry-After)
 * and queued ones are failed the same way. Nothing crashes. */
#ifndef LMDM_DB_H
#define LMDM_DB_H

#include <libpq-fe.h>
#include "lmdm/common.h"

struct event_base;
typedef struct lmdm_db_pool lmdm_db_pool_t;
typedef struct lmdm_db_conn lmdm_db_conn_t;

/** A statement known at compile time. Declare as `static const` in the module
 * that uses it; `name` must be unique in the process. */
typedef struct lmdm_db_stmt {
    const char *name;
    const char *sql;
    int nparams;
} lmdm_db_stmt_t;

/** Result callback. On success err == 0 and res is the (last) result of the
 * query, which may be PGRES_TUPLES_OK or PGRES_COMMAND_OK. On failure res may be
 * NULL (connection lost: LMDM_ERR_DB_UNAVAILABLE) or the error result
 * (LMDM_ERR_DB; read PQresultErrorField). The callback does not own res: it is
 * cleared when the callback returns. */
typedef void (*lmdm_db_result_cb)(void *arg, int err, PGresult *res);

/** Called when a connection was acquired (err == 0, conn valid) or could not be. */
typedef void (*lmdm_db_acquire_cb)(void *arg, int err, lmdm_db_conn_t *conn);

/** Pool counters, safe to read from any thread via lmdm_db_pool_stats(). */
typedef struct lmdm_db_stats {
    int size;            /* configured connections */
    int healthy;         /* connected and usable */
    int busy;            /* running a query or held by acquire() */
    int queued;          /* waiting for a connection */
    uint64_t queries;    /* completed queries */
    uint64_t errors;     /* failed queries (server errors and lost connections) */
    uint64_t reconnects; /* successful reconnections after a failure */
} lmdm_db_stats_t;

/** Create a pool of `size` connections on `base`; connecting starts at once,
 * asynchronously. Returns NULL only on allocation failure. */
lmdm_db_pool_t *lmdm_db_pool_new(struct event_base *base, const char *conninfo, int size, int queue_max);
/** Close every connection; pending callbacks are called with LMDM_ERR_CLOSED.
 * NULL is a no-op. WARNING: never call it from inside one of the pool's own
 * callbacks. Host names in conninfo are resolved by libpq and may block: use a
 * socket directory or hostaddr on event-loop threads. */
void lmdm_db_pool_free(lmdm_db_pool_t *pool);

/** 1 if at least one connection is usable now. */
int lmdm_db_pool_available(const lmdm_db_pool_t *pool);
/** Snapshot of the counters (any thread). */
void lmdm_db_pool_stats(const lmdm_db_pool_t *pool, lmdm_db_stats_t *out);

/** Run one statement on any free connection (queued if all are busy).
 * `values` are text parameters (NULL = SQL NULL), copied before return.
 * Returns 0 if the callback will be called, else LMDM_ERR_DB_UNAVAILABLE or
 * LMDM_ERR_BUSY (queue full) and the callback is never called. */
int lmdm_db_query(lmdm_db_pool_t *pool, const lmdm_db_stmt_t *stmt, int nparams,
                  const char *const *values, lmdm_db_result_cb cb, void *arg) LMDM_MUSTCHECK;

/** Hold one connection for several statements (a transaction). The holder
 * runs statements with lmdm_db_conn_query() and must call lmdm_db_release(). */
int lmdm_db_acquire(lmdm_db_pool_t *pool, lmdm_db_acquire_cb cb, void *arg) LMDM_MUSTCHECK;
int lmdm_db_conn_query(lmdm_db_conn_t *conn, const lmdm_db_stmt_t *stmt, int nparams,
                       const char *const *values, lmdm_db_result_cb cb, void *arg) LMDM_MUSTCHECK;
/** Return a held connection. If it is inside a transaction that was not
 * finished, it is rolled back first. */
void lmdm_db_release(lmdm_db_conn_t *conn);

/** Blocking connect for command-line tools (never on an event-loop thread).
 * On failure returns NULL and writes libpq's message into errbuf. */
PGconn *lmdm_db_connect_blocking(const char *conninfo, char *errbuf, size_t errlen);

#endif
