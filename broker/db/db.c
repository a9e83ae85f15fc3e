/* Per-worker asynchronous PostgreSQL pool (contract: include/lmdm/db.h).
 *
 * Every operation -- a query, an acquire, or the internal ROLLBACK that cleans
 * a released connection -- is an op_t. Ops wait in the pool's FIFO queue (or,
 * for a held connection, in that connection's own list) and are started only
 * by pool_pump(), which runs from the event loop: the public functions merely
 * queue and schedule a pump. So a user callback is never called from inside a
 * lmdm_db_* call, which is what makes calling query/acquire/release from a
 * callback safe, and FIFO order is kept because a new op can never overtake
 * one already queued.
 *
 * A connection slot moves WAITING -> CONNECTING -> READY and back to WAITING
 * (through conn_failed, the one place that handles every failure) when its
 * session dies; the backoff timer then starts a new attempt. */
#include "lmdm/db.h"

#include <event2/event.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* PQconnectStart has no timeout of its own; a black-holed TCP peer would
 * otherwise keep a slot CONNECTING forever. */
#define CONNECT_TIMEOUT_MS 10000
/* The protocol carries the parameter count in 16 bits. */
#define MAX_PARAMS 65535

typedef enum { OP_QUERY, OP_ACQUIRE, OP_ROLLBACK } op_kind_t;

typedef struct op {
    struct op *next;
    op_kind_t kind;
    const lmdm_db_stmt_t *stmt; /* OP_QUERY */
    int nparams;
    char **values;          /* copies, in the same allocation as the op */
    lmdm_db_result_cb cb;   /* OP_QUERY */
    lmdm_db_acquire_cb acb; /* OP_ACQUIRE */
    void *arg;
    bool preparing; /* waiting for the PQsendPrepare result */
    PGresult *res;  /* latest result of the running command */
} op_t;

typedef struct op_list {
    op_t *head, *tail;
    int len;
} op_list_t;

typedef enum { CONN_WAITING, CONN_CONNECTING, CONN_READY } conn_state_t;

struct lmdm_db_conn {
    lmdm_db_pool_t *pool;
    int index;
    conn_state_t state;
    PGconn *pg;
    int fd;                 /* the socket ev_read/ev_write watch, or -1 */
    struct event *ev_read;  /* persistent while READY: also notices a dead server */
    struct event *ev_write; /* added only while libpq has unsent output */
    struct event *timer;    /* backoff while WAITING, connect timeout while CONNECTING */
    int backoff_ms;
    int fail_streak;  /* failures since the last successful connect */
    bool ever_failed; /* the next successful connect counts as a reconnect */
    bool first_done;  /* the first connect attempt has finished */
    bool held;        /* handed out by lmdm_db_acquire */
    bool hold_lost;   /* the held session died: the holder's transaction is gone */
    bool counted_busy;
    op_t *active;      /* the command on the wire */
    op_list_t pending; /* the holder's statements, run before anything else */
    char **prepared;   /* statement names prepared in this session */
    int nprepared, capprepared;
};

struct lmdm_db_pool {
    struct event_base *base;
    char *conninfo;
    int size;
    int queue_max;
    lmdm_db_conn_t *conns;
    op_list_t queue;
    struct event *ev_pump;
    int first_pending; /* slots whose first connect attempt is still running */
    bool closing;
    /* Written on the pool's thread only; atomics so that any thread can read. */
    atomic_int healthy, busy, queued;
    atomic_uint_least64_t queries, errors, reconnects;
};

static void conn_start(lmdm_db_conn_t *c);
static void conn_failed(lmdm_db_conn_t *c, const char *why);
static void pool_pump(lmdm_db_pool_t *pool);

#define DB_LOG(lvl, ...) LMDM_LOG_AT((lvl), "db", __VA_ARGS__)

static void *must(void *p, const char *what)
{
    if (!p) {
        fprintf(stderr, "lmdm: db: cannot allocate %s\n", what);
        abort();
    }
    return p;
}

/* ---- op lists ---------------------------------------------------------- */

static void list_push(op_list_t *l, op_t *op)
{
    op->next = NULL;
    if (l->tail)
        l->tail->next = op;
    else
        l->head = op;
    l->tail = op;
    l->len++;
}

static op_t *list_pop(op_list_t *l)
{
    op_t *op = l->head;
    if (!op) return NULL;
    l->head = op->next;
    if (!l->head) l->tail = NULL;
    l->len--;
    op->next = NULL;
    return op;
}

static void queue_push(lmdm_db_pool_t *pool, op_t *op)
{
    list_push(&pool->queue, op);
    atomic_store_explicit(&pool->queued, pool->queue.len, memory_order_relaxed);
}

static op_t *queue_pop(lmdm_db_pool_t *pool)
{
    op_t *op = list_pop(&pool->queue);
    atomic_store_explicit(&pool->queued, pool->queue.len, memory_order_relaxed);
    return op;
}

/* Detaches the whole queue so its ops can be failed while callbacks queue new ones. */
static op_list_t queue_take_all(lmdm_db_pool_t *pool)
{
    op_list_t all = pool->queue;
    memset(&pool->queue, 0, sizeof pool->queue);
    atomic_store_explicit(&pool->queued, 0, memory_order_relaxed);
    return all;
}

/* ---- ops ---------------------------------------------------------------- */

static op_t *op_new(op_kind_t kind, const lmdm_db_stmt_t *stmt, int nparams, const char *const *values)
{
    size_t strings = 0;
    for (int i = 0; i < nparams; i++)
        if (values[i]) strings += strlen(values[i]) + 1;
    op_t *op = lmdm_xmalloc(sizeof *op + (size_t)nparams * sizeof(char *) + strings);
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->stmt = stmt;
    op->nparams = nparams;
    op->values = (char **)(op + 1);
    char *s = (char *)(op->values + nparams);
    for (int i = 0; i < nparams; i++) {
        if (!values[i]) {
            op->values[i] = NULL;
            continue;
        }
        size_t n = strlen(values[i]) + 1;
        memcpy(s, values[i], n);
        op->values[i] = s;
        s += n;
    }
    return op;
}

static void op_free(op_t *op)
{
    if (op->res) PQclear(op->res);
    free(op);
}

/* Hands the outcome to the op's owner and frees the op (and its result, which
 * the callback does not own). */
static void op_finish(lmdm_db_pool_t *pool, op_t *op, int err, lmdm_db_conn_t *conn)
{
    switch (op->kind) {
    case OP_QUERY:
        atomic_fetch_add_explicit(&pool->queries, 1, memory_order_relaxed);
        if (err) atomic_fetch_add_explicit(&pool->errors, 1, memory_order_relaxed);
        op->cb(op->arg, err, err == LMDM_ERR_DB_UNAVAILABLE || err == LMDM_ERR_CLOSED ? NULL : op->res);
        break;
    case OP_ACQUIRE: op->acb(op->arg, err, err ? NULL : conn); break;
    case OP_ROLLBACK: break;
    }
    op_free(op);
}

static void ops_fail(lmdm_db_pool_t *pool, op_list_t *l, int err)
{
    op_t *op;
    while ((op = list_pop(l)))
        op_finish(pool, op, err, NULL);
}

/* ---- pool state --------------------------------------------------------- */

/* Fail fast only once every slot has tried at least once: right after
 * lmdm_db_pool_new nothing is connected yet, and queries made then should
 * wait for the first connections rather than fail. */
static bool pool_down(const lmdm_db_pool_t *pool)
{
    return atomic_load_explicit(&pool->healthy, memory_order_relaxed) == 0 && pool->first_pending == 0;
}

static void pool_schedule_pump(lmdm_db_pool_t *pool)
{
    if (!pool->closing) event_active(pool->ev_pump, EV_TIMEOUT, 0);
}

static void conn_update_busy(lmdm_db_conn_t *c)
{
    bool busy = c->held || c->active;
    if (busy == c->counted_busy) return;
    c->counted_busy = busy;
    atomic_fetch_add_explicit(&c->pool->busy, busy ? 1 : -1, memory_order_relaxed);
}

/* A READY slot that could take a queued op right now. */
static bool conn_is_free(const lmdm_db_conn_t *c)
{
    return c->state == CONN_READY && !c->held && !c->active && !c->pending.head &&
           PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

static bool conn_has_prepared(const lmdm_db_conn_t *c, const char *name)
{
    for (int i = 0; i < c->nprepared; i++)
        if (strcmp(c->prepared[i], name) == 0) return true;
    return false;
}

static void conn_add_prepared(lmdm_db_conn_t *c, const char *name)
{
    if (c->nprepared == c->capprepared) {
        c->capprepared = c->capprepared ? c->capprepared * 2 : 16;
        c->prepared = lmdm_xrealloc(c->prepared, (size_t)c->capprepared * sizeof *c->prepared);
    }
    c->prepared[c->nprepared++] = lmdm_xstrdup(name);
}

static void conn_forget_prepared(lmdm_db_conn_t *c)
{
    for (int i = 0; i < c->nprepared; i++)
        free(c->prepared[i]);
    c->nprepared = 0;
}

static void first_attempt_done(lmdm_db_conn_t *c)
{
    if (c->first_done) return;
    c->first_done = true;
    c->pool->first_pending--;
}

/* ---- socket events ------------------------------------------------------ */

static void on_io(evutil_socket_t fd, short what, void *arg);

static void conn_drop_events(lmdm_db_conn_t *c)
{
    if (c->ev_read) event_free(c->ev_read);
    if (c->ev_write) event_free(c->ev_write);
    c->ev_read = c->ev_write = NULL;
    c->fd = -1;
}

/* Watch libpq's current socket for reading and/or writing. libpq may switch
 * sockets while connecting (another address, a retry without SSL) and every
 * new session has a new one, so the events follow PQsocket(). */
static void conn_watch(lmdm_db_conn_t *c, bool rd, bool wr)
{
    int fd = PQsocket(c->pg);
    if (fd != c->fd) {
        conn_drop_events(c);
        if (fd < 0) return;
        c->fd = fd;
        c->ev_read = must(event_new(c->pool->base, fd, EV_READ | EV_PERSIST, on_io, c), "event");
        c->ev_write = must(event_new(c->pool->base, fd, EV_WRITE | EV_PERSIST, on_io, c), "event");
    }
    if (rd)
        event_add(c->ev_read, NULL);
    else
        event_del(c->ev_read);
    if (wr)
        event_add(c->ev_write, NULL);
    else
        event_del(c->ev_write);
}

static void on_notice(void *arg, const char *message)
{
    const lmdm_db_conn_t *c = arg;
    int len = (int)strcspn(message, "\n");
    DB_LOG(LMDM_LOG_DEBUG, "connection %d: server says: %.*s", c->index, len, message);
}

static void on_notice_blocking(void *arg, const char *message)
{
    int len = (int)strcspn(message, "\n");
    DB_LOG(LMDM_LOG_DEBUG, "server says: %.*s", len, message);
}

/* Sends what libpq has buffered; 0 or -1 if the connection failed. */
static int conn_flush(lmdm_db_conn_t *c)
{
    int r = PQflush(c->pg);
    if (r < 0) return -1;
    conn_watch(c, true, r == 1);
    return 0;
}

/* Puts op's next command on the wire: the ROLLBACK, the PREPARE of a
 * statement this session has not seen, or the execution. */
static int conn_send(lmdm_db_conn_t *c, op_t *op)
{
    int ok;
    if (op->kind == OP_ROLLBACK) {
        ok = PQsendQuery(c->pg, "ROLLBACK");
    } else if (!conn_has_prepared(c, op->stmt->name)) {
        op->preparing = true;
        ok = PQsendPrepare(c->pg, op->stmt->name, op->stmt->sql, op->stmt->nparams, NULL);
    } else {
        op->preparing = false;
        ok = PQsendQueryPrepared(c->pg, op->stmt->name, op->nparams, (const char *const *)op->values, NULL,
                                 NULL, 0);
    }
    if (!ok) return -1;
    return conn_flush(c);
}

static bool result_ok(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
}

/* The command of c->active finished (PQgetResult gave NULL). Returns false if
 * the op is still running (its EXECUTE was just sent) or the session died. */
static bool conn_command_done(lmdm_db_conn_t *c)
{
    op_t *op = c->active;
    bool ok = op->res && result_ok(op->res);
    /* An error that is really the session dying is "unavailable", not a
     * server answer; leave the op for conn_failed. */
    if (!ok && PQstatus(c->pg) == CONNECTION_BAD) return false;

    if (op->kind == OP_QUERY && op->preparing && ok) {
        conn_add_prepared(c, op->stmt->name);
        PQclear(op->res);
        op->res = NULL;
        if (conn_send(c, op) != 0) {
            conn_failed(c, PQerrorMessage(c->pg));
            return false;
        }
        return true;
    }

    c->active = NULL;
    conn_update_busy(c);
    if (op->kind == OP_ROLLBACK) {
        op_free(op);
        if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
            conn_failed(c, "ROLLBACK did not end the transaction");
            return false;
        }
        return true;
    }
    if (!op->res) {
        /* No result at all cannot happen for a prepared statement; be safe. */
        op->res = PQmakeEmptyPGresult(c->pg, PGRES_FATAL_ERROR);
        ok = false;
    }
    op_finish(c->pool, op, ok ? 0 : LMDM_ERR_DB, c);
    return true;
}

static void conn_read(lmdm_db_conn_t *c)
{
    /* Even when the read fails, whatever complete results arrived before the
     * failure are still delivered by the loop below. */
    int consumed = PQconsumeInput(c->pg);
    while (c->active && !PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (r) {
            if (c->active->res) PQclear(c->active->res);
            c->active->res = r;
            continue;
        }
        if (!conn_command_done(c)) break;
        if (c->state != CONN_READY) return; /* conn_failed ran */
    }
    if (c->state != CONN_READY) return;
    if (!consumed || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_failed(c, PQerrorMessage(c->pg));
        return;
    }
    pool_pump(c->pool);
}

static void conn_ready(lmdm_db_conn_t *c)
{
    lmdm_db_pool_t *pool = c->pool;
    evtimer_del(c->timer);
    if (PQsetnonblocking(c->pg, 1) != 0) {
        conn_failed(c, "cannot make the connection non-blocking");
        return;
    }
    c->state = CONN_READY;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->fail_streak = 0;
    conn_forget_prepared(c);
    atomic_fetch_add_explicit(&pool->healthy, 1, memory_order_relaxed);
    if (c->ever_failed) {
        atomic_fetch_add_explicit(&pool->reconnects, 1, memory_order_relaxed);
        DB_LOG(LMDM_LOG_INFO, "connection %d re-established", c->index);
    }
    first_attempt_done(c);
    conn_watch(c, true, false);
    pool_pump(pool);
}

static void conn_poll_connect(lmdm_db_conn_t *c)
{
    /* Unwatch first: PQconnectPoll may close this socket and open another
     * that reuses the same descriptor number. */
    if (c->ev_read) event_del(c->ev_read);
    if (c->ev_write) event_del(c->ev_write);
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING: conn_watch(c, true, false); break;
    case PGRES_POLLING_WRITING: conn_watch(c, false, true); break;
    case PGRES_POLLING_OK: conn_ready(c); break;
    default: conn_failed(c, PQerrorMessage(c->pg)); break;
    }
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    lmdm_db_conn_t *c = arg;
    switch (c->state) {
    case CONN_CONNECTING: conn_poll_connect(c); break;
    case CONN_READY:
        if (what & EV_WRITE) {
            if (conn_flush(c) != 0) {
                conn_failed(c, PQerrorMessage(c->pg));
                return;
            }
        }
        if (what & EV_READ) conn_read(c);
        break;
    case CONN_WAITING: break;
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    lmdm_db_conn_t *c = arg;
    if (c->state == CONN_CONNECTING)
        conn_failed(c, "timed out while connecting");
    else if (c->state == CONN_WAITING)
        conn_start(c);
}

static void timer_arm(lmdm_db_conn_t *c, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static void conn_start(lmdm_db_conn_t *c)
{
    c->pg = PQconnectStart(c->pool->conninfo);
    if (!c->pg) {
        conn_failed(c, "out of memory");
        return;
    }
    c->state = CONN_CONNECTING;
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_failed(c, PQerrorMessage(c->pg));
        return;
    }
    PQsetNoticeProcessor(c->pg, on_notice, c);
    timer_arm(c, CONNECT_TIMEOUT_MS);
    /* libpq: behave as if PQconnectPoll had returned PGRES_POLLING_WRITING. */
    conn_watch(c, false, true);
}

/* Every failure of a slot ends here: a connect attempt that failed, a session
 * that died, a send that failed. The session is discarded, whatever ran on it
 * fails with LMDM_ERR_DB_UNAVAILABLE, a reconnect is scheduled, and if that
 * was the last usable connection the whole queue fails too. Callbacks run
 * last, once the pool is consistent, because they may call back into it. */
static void conn_failed(lmdm_db_conn_t *c, const char *why)
{
    lmdm_db_pool_t *pool = c->pool;
    char reason[256];
    snprintf(reason, sizeof reason, "%.*s", (int)strcspn(why, "\n"), why); /* why may live in c->pg */

    bool was_ready = c->state == CONN_READY;
    if (was_ready)
        DB_LOG(LMDM_LOG_WARN, "connection %d lost: %s; reconnecting in %d ms", c->index, reason,
               c->backoff_ms);
    else if (c->fail_streak == 0)
        DB_LOG(LMDM_LOG_WARN, "connection %d cannot connect: %s; retrying in %d ms", c->index, reason,
               c->backoff_ms);
    else
        DB_LOG(LMDM_LOG_DEBUG, "connection %d cannot connect: %s; retrying in %d ms", c->index, reason,
               c->backoff_ms);

    conn_drop_events(c);
    if (c->pg) PQfinish(c->pg);
    c->pg = NULL;
    if (was_ready) atomic_fetch_sub_explicit(&pool->healthy, 1, memory_order_relaxed);
    c->state = CONN_WAITING;
    c->ever_failed = true;
    c->fail_streak++;
    conn_forget_prepared(c);
    if (c->held) c->hold_lost = true;

    op_list_t lost = {0};
    if (c->active) list_push(&lost, c->active);
    c->active = NULL;
    while (c->pending.head)
        list_push(&lost, list_pop(&c->pending));
    conn_update_busy(c);

    evtimer_del(c->timer);
    timer_arm(c, c->backoff_ms);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    first_attempt_done(c);

    ops_fail(pool, &lost, LMDM_ERR_DB_UNAVAILABLE);
    if (pool_down(pool)) {
        op_list_t queued = queue_take_all(pool);
        ops_fail(pool, &queued, LMDM_ERR_DB_UNAVAILABLE);
    }
}

/* ---- dispatch ----------------------------------------------------------- */

/* Gives slot c its next op, if it can take one. Returns true if an acquire
 * was delivered (its callback may have queued statements for c, so look at c
 * again). */
static bool conn_dispatch(lmdm_db_conn_t *c)
{
    lmdm_db_pool_t *pool = c->pool;
    if (c->state != CONN_READY || c->active) return false;

    op_t *op = NULL;
    if (c->pending.head) {
        op = list_pop(&c->pending);
    } else if (c->held) {
        return false;
    } else if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        /* Released inside a transaction (or a statement left one open):
         * never hand an open transaction to somebody else. */
        op = op_new(OP_ROLLBACK, NULL, 0, NULL);
    } else {
        op = queue_pop(pool);
        if (!op) return false;
        if (op->kind == OP_ACQUIRE) {
            c->held = true;
            c->hold_lost = false;
            conn_update_busy(c);
            op_finish(pool, op, 0, c);
            return true;
        }
    }
    c->active = op;
    conn_update_busy(c);
    if (conn_send(c, op) != 0) conn_failed(c, PQerrorMessage(c->pg));
    return false;
}

static void pool_pump(lmdm_db_pool_t *pool)
{
    if (pool->closing) return;
    for (int i = 0; i < pool->size; i++)
        while (conn_dispatch(&pool->conns[i])) {
        }
}

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
    pool_pump(arg);
}

/* ---- public API --------------------------------------------------------- */

lmdm_db_pool_t *lmdm_db_pool_new(struct event_base *base, const char *conninfo, int size, int queue_max)
{
    if (size < 1) size = 1;
    lmdm_db_pool_t *pool = lmdm_xcalloc(1, sizeof *pool);
    pool->base = base;
    pool->conninfo = lmdm_xstrdup(conninfo);
    pool->size = size;
    pool->queue_max = queue_max < 0 ? 0 : queue_max;
    pool->first_pending = size;
    atomic_init(&pool->healthy, 0);
    atomic_init(&pool->busy, 0);
    atomic_init(&pool->queued, 0);
    atomic_init(&pool->queries, 0);
    atomic_init(&pool->errors, 0);
    atomic_init(&pool->reconnects, 0);
    pool->ev_pump = must(event_new(base, -1, 0, on_pump, pool), "event");
    pool->conns = lmdm_xcalloc((size_t)size, sizeof *pool->conns);
    for (int i = 0; i < size; i++) {
        lmdm_db_conn_t *c = &pool->conns[i];
        c->pool = pool;
        c->index = i;
        c->fd = -1;
        c->state = CONN_WAITING;
        c->backoff_ms = BACKOFF_MIN_MS;
        c->timer = must(evtimer_new(base, on_timer, c), "timer");
    }
    for (int i = 0; i < size; i++)
        conn_start(&pool->conns[i]);
    return pool;
}

void lmdm_db_pool_free(lmdm_db_pool_t *pool)
{
    if (!pool) return;
    pool->closing = true;
    op_list_t doomed = queue_take_all(pool);
    for (int i = 0; i < pool->size; i++) {
        lmdm_db_conn_t *c = &pool->conns[i];
        if (c->active) list_push(&doomed, c->active);
        c->active = NULL;
        while (c->pending.head)
            list_push(&doomed, list_pop(&c->pending));
        conn_drop_events(c);
        if (c->pg) PQfinish(c->pg);
        c->pg = NULL;
        c->state = CONN_WAITING;
        event_free(c->timer);
        c->timer = NULL;
    }
    event_free(pool->ev_pump);
    pool->ev_pump = NULL;
    /* The pool is still allocated while these run: a callback that calls back
     * in gets LMDM_ERR_DB_UNAVAILABLE. */
    ops_fail(pool, &doomed, LMDM_ERR_CLOSED);
    for (int i = 0; i < pool->size; i++) {
        conn_forget_prepared(&pool->conns[i]);
        free(pool->conns[i].prepared);
    }
    free(pool->conns);
    free(pool->conninfo);
    free(pool);
}

int lmdm_db_pool_available(const lmdm_db_pool_t *pool)
{
    return atomic_load_explicit(&pool->healthy, memory_order_relaxed) > 0;
}

void lmdm_db_pool_stats(const lmdm_db_pool_t *pool, lmdm_db_stats_t *out)
{
    out->size = pool->size;
    out->healthy = atomic_load_explicit(&pool->healthy, memory_order_relaxed);
    out->busy = atomic_load_explicit(&pool->busy, memory_order_relaxed);
    out->queued = atomic_load_explicit(&pool->queued, memory_order_relaxed);
    out->queries = atomic_load_explicit(&pool->queries, memory_order_relaxed);
    out->errors = atomic_load_explicit(&pool->errors, memory_order_relaxed);
    out->reconnects = atomic_load_explicit(&pool->reconnects, memory_order_relaxed);
}

/* Admission for the pool queue: refuse at once when the database is down,
 * and when more than queue_max ops would have to wait for a connection. */
static int pool_admit(const lmdm_db_pool_t *pool)
{
    if (pool->closing || pool_down(pool)) return LMDM_ERR_DB_UNAVAILABLE;
    int free_now = 0;
    for (int i = 0; i < pool->size; i++)
        if (conn_is_free(&pool->conns[i])) free_now++;
    if (pool->queue.len - free_now >= pool->queue_max) return LMDM_ERR_BUSY;
    return 0;
}

static int check_stmt(const lmdm_db_stmt_t *stmt, int nparams, const char *const *values)
{
    if (!stmt || !stmt->name || !stmt->name[0] || !stmt->sql) return LMDM_ERR_INVALID;
    if (nparams < 0 || nparams > MAX_PARAMS || nparams != stmt->nparams) return LMDM_ERR_INVALID;
    if (nparams > 0 && !values) return LMDM_ERR_INVALID;
    return 0;
}

int lmdm_db_query(lmdm_db_pool_t *pool, const lmdm_db_stmt_t *stmt, int nparams, const char *const *values,
                  lmdm_db_result_cb cb, void *arg)
{
    int rc = check_stmt(stmt, nparams, values);
    if (rc) return rc;
    if (!cb) return LMDM_ERR_INVALID;
    rc = pool_admit(pool);
    if (rc) return rc;
    op_t *op = op_new(OP_QUERY, stmt, nparams, values);
    op->cb = cb;
    op->arg = arg;
    queue_push(pool, op);
    pool_schedule_pump(pool);
    return 0;
}

int lmdm_db_acquire(lmdm_db_pool_t *pool, lmdm_db_acquire_cb cb, void *arg)
{
    if (!cb) return LMDM_ERR_INVALID;
    int rc = pool_admit(pool);
    if (rc) return rc;
    op_t *op = op_new(OP_ACQUIRE, NULL, 0, NULL);
    op->acb = cb;
    op->arg = arg;
    queue_push(pool, op);
    pool_schedule_pump(pool);
    return 0;
}

int lmdm_db_conn_query(lmdm_db_conn_t *conn, const lmdm_db_stmt_t *stmt, int nparams,
                       const char *const *values, lmdm_db_result_cb cb, void *arg)
{
    int rc = check_stmt(stmt, nparams, values);
    if (rc) return rc;
    if (!conn || !cb || !conn->held) return LMDM_ERR_INVALID;
    /* After the session died the transaction is gone; running the rest of
     * it on a new session would commit half of it. */
    if (conn->pool->closing || conn->hold_lost || conn->state != CONN_READY) return LMDM_ERR_DB_UNAVAILABLE;
    op_t *op = op_new(OP_QUERY, stmt, nparams, values);
    op->cb = cb;
    op->arg = arg;
    list_push(&conn->pending, op);
    pool_schedule_pump(conn->pool);
    return 0;
}

void lmdm_db_release(lmdm_db_conn_t *conn)
{
    if (!conn || !conn->held) return;
    conn->held = false;
    conn->hold_lost = false;
    conn_update_busy(conn);
    /* The pump rolls back an unfinished transaction before the slot is reused. */
    pool_schedule_pump(conn->pool);
}

PGconn *lmdm_db_connect_blocking(const char *conninfo, char *errbuf, size_t errlen)
{
    PGconn *pg = PQconnectdb(conninfo);
    if (!pg) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    if (PQstatus(pg) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(pg);
        size_t len = strlen(msg);
        while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
            len--;
        snprintf(errbuf, errlen, "%.*s", (int)len, msg);
        PQfinish(pg);
        return NULL;
    }
    PQsetNoticeProcessor(pg, on_notice_blocking, NULL);
    return pg;
}
