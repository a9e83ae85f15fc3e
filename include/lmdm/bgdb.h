/* A PostgreSQL session for a background thread of the broker (webhook
 * deliverer, rules applier): blocking calls, but every wait is cut into short
 * slices that check a stop flag, so the thread stops within about 100 ms
 * whatever the database does. Never use it on an event-loop thread. */
#ifndef LMDM_BGDB_H
#define LMDM_BGDB_H

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct lmdm_bgdb {
    PGconn *conn;            /* NULL when not connected */
    const char *conninfo;    /* borrowed */
    const char *who;         /* log prefix, e.g. "webhook" */
    atomic_int *stop;        /* borrowed: set to stop every wait */
    int reconnect_ms;        /* current backoff */
    const char *prepared[32];/* statement names prepared on this connection (literals) */
    int nprepared;
} lmdm_bgdb_t;

/** Wait for `events` (POLLIN/POLLOUT) on fd: 1 ready, 0 deadline passed, -1 stopping. */
int lmdm_bgdb_wait_fd(lmdm_bgdb_t *b, int fd, short events, uint64_t deadline_ns);

/** Connect (asynchronously, within 30 s). 0 or -1 (logged unless stopping). */
int lmdm_bgdb_connect(lmdm_bgdb_t *b);

/** Close the session. */
void lmdm_bgdb_drop(lmdm_bgdb_t *b);

/** Run one statement; the last result (caller clears it) or NULL if the
 * connection failed, timed out or the thread is stopping. */
PGresult *lmdm_bgdb_exec(lmdm_bgdb_t *b, const char *sql, int nparams, const char *const *values);

/** As lmdm_bgdb_expect, but the statement is prepared once per connection
 * under `name` (a string literal) and executed prepared afterwards: no
 * parsing and planning on every call. */
PGresult *lmdm_bgdb_expect_prepared(lmdm_bgdb_t *b, const char *what, const char *name, const char *sql, int nparams,
                                    const char *const *values, ExecStatusType want);

/** lmdm_bgdb_exec expecting status `want`; logs "<who>: <what>: <error>" and
 * returns NULL otherwise. */
PGresult *lmdm_bgdb_expect(lmdm_bgdb_t *b, const char *what, const char *sql, int nparams, const char *const *values,
                           ExecStatusType want);

/** Log a database error as "<who>: <what>: <message>". */
void lmdm_bgdb_log_error(const lmdm_bgdb_t *b, const char *what, const PGresult *res);

/** Take the session-level advisory lock `key` and LISTEN on `channel`:
 * 1 held, 0 another session holds it, -1 connection trouble. */
int lmdm_bgdb_take_lock(lmdm_bgdb_t *b, long long key, const char *channel);

/** Read pending notifications: the number read, or -1 if the connection is lost. */
int lmdm_bgdb_notifies(lmdm_bgdb_t *b);

/** Double the reconnect backoff (250 ms .. 5 s) and return it. */
int lmdm_bgdb_backoff(lmdm_bgdb_t *b);

/** Sleep up to ms, waking early when stopping. */
void lmdm_bgdb_sleep(lmdm_bgdb_t *b, int ms);

/** The loop of a background worker that one broker instance runs at a time:
 * (re)connect with backoff, take the advisory lock `lock_key` (or stand by,
 * asking again every 3 s), LISTEN `channel`; then call turn() until it says
 * there is nothing more (0), and wait for a NOTIFY (then gather_ms more, so
 * that a burst of them is one turn) or poll_ms. turn()
 * returning -1 drops the connection (and the lock) and starts over. Returns
 * when *db.stop is set. */
typedef struct lmdm_bgloop {
    lmdm_bgdb_t *db;
    long long lock_key;
    const char *channel;
    const char *role;            /* for the logs: "seals the audit ledger" */
    int poll_ms;
    int gather_ms;               /* after a NOTIFY woke the loop, wait this long before the turn (0: none) */
    int (*turn)(void *ctx);      /* 1: call again at once, 0: idle, -1: connection trouble */
    void (*on_lead)(void *ctx);  /* the lock was taken (may be NULL) */
    void *ctx;
} lmdm_bgloop_t;

void lmdm_bgloop_run(const lmdm_bgloop_t *l);

#endif
