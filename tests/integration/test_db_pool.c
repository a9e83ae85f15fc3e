/* The asynchronous pool against a real PostgreSQL, driven by a libevent loop:
 * parameters and results, FIFO queueing, queue limits, server errors,
 * transactions left open, backends killed under the pool, and a server that
 * does not exist. */
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lmdm/db.h"
#include "testdb.h"

static struct event_base *base;
static char conninfo[1024];

/* ---- loop helpers ------------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg) {}

/* Runs the loop until *flag >= target or timeout_ms passes; returns 1 if reached. */
static int run_until(const int *flag, int target, int timeout_ms)
{
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 10000};
    event_add(tick, &tv);
    uint64_t deadline = lmdm_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (*flag < target && lmdm_now_ns() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
    return *flag >= target;
}

static void run_for(int ms)
{
    int never = 0;
    run_until(&never, 1, ms);
}

static int pool_ready(lmdm_db_pool_t *pool, int want, int timeout_ms)
{
    uint64_t deadline = lmdm_now_ns() + (uint64_t)timeout_ms * 1000000u;
    lmdm_db_stats_t st;
    for (;;) {
        lmdm_db_pool_stats(pool, &st);
        if (st.healthy >= want) return 1;
        if (lmdm_now_ns() > deadline) return 0;
        run_for(10);
    }
}

static void setup(void)
{
    base = event_base_new();
    testdb_create(conninfo, sizeof conninfo);
}

static void teardown(void)
{
    event_base_free(base);
    base = NULL;
    testdb_drop(conninfo);
}

/* A blocking side connection for checks and for killing the pool's sessions. */
static PGconn *side(void)
{
    char err[512];
    PGconn *c = lmdm_db_connect_blocking(conninfo, err, sizeof err);
    if (!c) {
        fprintf(stderr, "side connection: %s\n", err);
        exit(1);
    }
    return c;
}

static const char *side_scalar(PGconn *c, const char *sql)
{
    static char buf[512];
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        snprintf(buf, sizeof buf, "(error: %s)", PQresultErrorMessage(r));
    else
        snprintf(buf, sizeof buf, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return buf;
}

/* ---- a generic result collector ----------------------------------------- */

typedef struct result {
    int done;
    int err;
    char value[128];  /* first column of the first row */
    char value2[128]; /* second column, if any */
    char sqlstate[8];
    int ntuples;
} result_t;

static void collect(void *arg, int err, PGresult *res)
{
    result_t *r = arg;
    r->done++;
    r->err = err;
    r->value[0] = r->value2[0] = r->sqlstate[0] = '\0';
    r->ntuples = -1;
    if (!res) return;
    if (err == LMDM_ERR_DB) {
        const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        snprintf(r->sqlstate, sizeof r->sqlstate, "%s", s ? s : "");
        return;
    }
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        r->ntuples = PQntuples(res);
        if (PQntuples(res) > 0 && PQnfields(res) > 0)
            snprintf(r->value, sizeof r->value, "%s",
                     PQgetisnull(res, 0, 0) ? "(null)" : PQgetvalue(res, 0, 0));
        if (PQntuples(res) > 0 && PQnfields(res) > 1)
            snprintf(r->value2, sizeof r->value2, "%s",
                     PQgetisnull(res, 0, 1) ? "(null)" : PQgetvalue(res, 0, 1));
    }
}

static const lmdm_db_stmt_t q_add = {"test_add", "SELECT $1::int + $2::int, $3::text IS NULL", 3};
static const lmdm_db_stmt_t q_pid = {"test_pid", "SELECT $1::int, pg_backend_pid()", 1};
static const lmdm_db_stmt_t q_one = {"test_one", "SELECT 1", 0};
static const lmdm_db_stmt_t q_div = {"test_div", "SELECT 10 / $1::int", 1};
static const lmdm_db_stmt_t q_syntax = {"test_syntax", "SELEC 1", 0};
static const lmdm_db_stmt_t q_sleep = {"test_sleep", "SELECT pg_sleep(30)", 0};
static const lmdm_db_stmt_t q_create = {"test_create", "CREATE TABLE t (x int)", 0};
static const lmdm_db_stmt_t q_begin = {"test_begin", "BEGIN", 0};
static const lmdm_db_stmt_t q_commit = {"test_commit", "COMMIT", 0};
static const lmdm_db_stmt_t q_insert = {"test_insert", "INSERT INTO t VALUES ($1::int)", 1};
static const lmdm_db_stmt_t q_count = {"test_count", "SELECT count(*) FROM t", 0};

/* Runs one statement on the pool and waits for it. */
static result_t run_query(lmdm_db_pool_t *pool, const lmdm_db_stmt_t *stmt, int n, const char *const *v)
{
    result_t r = {0};
    int rc = lmdm_db_query(pool, stmt, n, v, collect, &r);
    if (rc != 0) {
        r.err = rc;
        r.done = -1;
        return r;
    }
    if (!run_until(&r.done, 1, 10000)) r.err = LMDM_ERR_TIMEOUT;
    return r;
}

/* ---- tests -------------------------------------------------------------- */

static void test_simple_query(void)
{
    setup();
    lmdm_db_pool_t *pool = lmdm_db_pool_new(base, conninfo, 2, 10);
    CHECK(pool != NULL);
    /* Queued while the pool is still connecting: waits rather than fails. */
    char forty[3] = "40";
    const char *v[3] = {"2", forty, NULL};
    result_t r = {0};
    CHECK_INT_EQ(lmdm_db_query(pool, &q_add, 3, v, collect, &r), 0);
    forty[0] = '9';          /* values are copied before lmdm_db_query returns */
    CHECK_INT_EQ(r.done, 0); /* never called from inside lmdm_db_query */
    CHECK(run_until(&r.done, 1, 10000));
    CHECK_INT_EQ(r.err, 0);
    CHECK_STR_EQ(r.value, "42");
    CHECK_STR_EQ(r.value2, "t");

    const char *v2[3] = {"-5", "5", "x"};
    r = run_query(pool, &q_add, 3, v2);
    CHECK_INT_EQ(r.err, 0);
    CHECK_STR_EQ(r.value, "0");
    CHECK_STR_EQ(r.value2, "f");

    /* Wrong parameter count is a programming error, refused at once. */
    result_t bad = {0};
    CHECK_INT_EQ(lmdm_db_query(pool, &q_add, 2, v, collect, &bad), LMDM_ERR_INVALID);

    run_for(20);
    CHECK_INT_EQ(bad.done, 0);
    CHECK(lmdm_db_pool_available(pool));
    lmdm_db_stats_t st;
    lmdm_db_pool_stats(pool, &st);
    CHECK_INT_EQ(st.size, 2);
    CHECK_INT_EQ(st.healthy, 2);
    CHECK_INT_EQ(st.busy, 0);
    CHECK_INT_EQ(st.queued, 0);
    CHECK_INT_EQ(st.queries, 2);
    CHECK_INT_EQ(st.errors, 0);
    CHECK_INT_EQ(st.reconnects, 0);
    lmdm_db_pool_free(pool);
    teardown();
}

#define NFIFO 50

typedef struct fifo {
    lmdm_db_pool_t *pool;
    int done;
    int order[NFIFO]; /* index of the i-th completion */
    int pid[NFIFO];   /* backend that ran query i */
    int value_ok;
    int queued_at_first;
} fifo_t;

typedef struct fifo_item {
    fifo_t *f;
    int index;
} fifo_item_t;

static void fifo_cb(void *arg, int err, PGresult *res)
{
    fifo_item_t *it = arg;
    fifo_t *f = it->f;
    if (f->done == 0) {
        lmdm_db_stats_t st;
        lmdm_db_pool_stats(f->pool, &st);
        f->queued_at_first = st.queued;
    }
    f->order[f->done++] = it->index;
    if (err == 0 && PQntuples(res) == 1 && atoi(PQgetvalue(res, 0, 0)) == it->index) f->value_ok++;
    f->pid[it->index] = err == 0 ? atoi(PQgetvalue(res, 0, 1)) : -1;
}

static void test_fifo_on_pool_of_two(void)
{
    setup();
    fifo_t f = {0};
    fifo_item_t items[NFIFO];
    char idx[NFIFO][8];
    f.pool = lmdm_db_pool_new(base, conninfo, 2, NFIFO);
    CHECK(pool_ready(f.pool, 2, 10000));
    for (int i = 0; i < NFIFO; i++) {
        items[i] = (fifo_item_t){&f, i};
        snprintf(idx[i], sizeof idx[i], "%d", i);
        const char *v[1] = {idx[i]};
        CHECK_INT_EQ(lmdm_db_query(f.pool, &q_pid, 1, v, fifo_cb, &items[i]), 0);
    }
    lmdm_db_stats_t st;
    lmdm_db_pool_stats(f.pool, &st);
    CHECK_INT_EQ(st.queued, NFIFO);
    CHECK(run_until(&f.done, NFIFO, 20000));
    CHECK_INT_EQ(f.done, NFIFO);
    CHECK_INT_EQ(f.value_ok, NFIFO);
    /* When the first one finished, the other connection was running one
     * query and the remaining 48 were waiting. */
    CHECK_INT_EQ(f.queued_at_first, NFIFO - 2);
    /* Only the pool's two sessions ran them... */
    int pids[2] = {0, 0}, npids = 0, spread = 1;
    for (int i = 0; i < NFIFO; i++) {
        int known = 0;
        for (int j = 0; j < npids; j++)
            known |= pids[j] == f.pid[i];
        if (!known && npids < 2)
            pids[npids++] = f.pid[i];
        else if (!known)
            spread = 0;
    }
    CHECK(spread);
    CHECK_INT_EQ(npids, 2);
    /* ...each in the order they were queued. */
    for (int p = 0; p < npids; p++) {
        int last = -1, ordered = 1;
        for (int i = 0; i < NFIFO; i++) {
            int q = f.order[i];
            if (f.pid[q] != pids[p]) continue;
            if (q < last) ordered = 0;
            last = q;
        }
        CHECK(ordered);
    }
    lmdm_db_pool_stats(f.pool, &st);
    CHECK_INT_EQ(st.queued, 0);
    CHECK_INT_EQ(st.busy, 0);
    CHECK_INT_EQ(st.queries, NFIFO);
    lmdm_db_pool_free(f.pool);
    teardown();
}

/* With one of two connections held, the other runs everything strictly in order. */
static lmdm_db_conn_t *held_conn;
static int held_done;
static void on_acquired(void *arg, int err, lmdm_db_conn_t *conn)
{
    *(int *)arg = err;
    held_conn = conn;
    held_done++;
}

static void test_fifo_strict(void)
{
    setup();
    fifo_t f = {0};
    fifo_item_t items[NFIFO];
    char idx[NFIFO][8];
    f.pool = lmdm_db_pool_new(base, conninfo, 2, NFIFO);
    CHECK(pool_ready(f.pool, 2, 10000));
    int aerr = 99;
    held_done = 0;
    CHECK_INT_EQ(lmdm_db_acquire(f.pool, on_acquired, &aerr), 0);
    CHECK_INT_EQ(held_done, 0);
    CHECK(run_until(&held_done, 1, 5000));
    CHECK_INT_EQ(aerr, 0);
    for (int i = 0; i < NFIFO; i++) {
        items[i] = (fifo_item_t){&f, i};
        snprintf(idx[i], sizeof idx[i], "%d", i);
        const char *v[1] = {idx[i]};
        CHECK_INT_EQ(lmdm_db_query(f.pool, &q_pid, 1, v, fifo_cb, &items[i]), 0);
    }
    CHECK(run_until(&f.done, NFIFO, 20000));
    int ordered = 1;
    for (int i = 0; i < NFIFO; i++)
        ordered &= f.order[i] == i;
    CHECK(ordered);
    CHECK_INT_EQ(f.value_ok, NFIFO);
    lmdm_db_release(held_conn);
    lmdm_db_pool_free(f.pool);
    teardown();
}

static void test_queue_max(void)
{
    setup();
    lmdm_db_pool_t *pool = lmdm_db_pool_new(base, conninfo, 1, 3);
    CHECK(pool_ready(pool, 1, 10000));
    result_t r[5] = {{0}};
    /* One runs on the free connection, three wait, the fifth is refused. */
    for (int i = 0; i < 4; i++)
        CHECK_INT_EQ(lmdm_db_query(pool, &q_one, 0, NULL, collect, &r[i]), 0);
    CHECK_INT_EQ(lmdm_db_query(pool, &q_one, 0, NULL, collect, &r[4]), LMDM_ERR_BUSY);
    int aerr = 99;
    held_done = 0;
    CHECK_INT_EQ(lmdm_db_acquire(pool, on_acquired, &aerr), LMDM_ERR_BUSY);
    int total = 0;
    for (int t = 0; t < 500 && total < 4; t++) {
        run_for(10);
        total = r[0].done + r[1].done + r[2].done + r[3].done;
    }
    CHECK_INT_EQ(total, 4);
    for (int i = 0; i < 4; i++)
        CHECK_INT_EQ(r[i].err, 0);
    CHECK_INT_EQ(r[4].done, 0); /* a refused query's callback never runs */
    CHECK_INT_EQ(held_done, 0);
    /* With the queue drained there is room again. */
    result_t again = run_query(pool, &q_one, 0, NULL);
    CHECK_INT_EQ(again.err, 0);
    lmdm_db_pool_free(pool);
    teardown();
}

static void test_server_error(void)
{
    setup();
    lmdm_db_pool_t *pool = lmdm_db_pool_new(base, conninfo, 1, 10);
    CHECK(pool_ready(pool, 1, 10000));
    const char *zero[1] = {"0"};
    result_t r = run_query(pool, &q_div, 1, zero);
    CHECK_INT_EQ(r.err, LMDM_ERR_DB);
    CHECK_STR_EQ(r.sqlstate, "22012"); /* division_by_zero, read from the error result */
    /* A statement that cannot even be prepared. */
    r = run_query(pool, &q_syntax, 0, NULL);
    CHECK_INT_EQ(r.err, LMDM_ERR_DB);
    CHECK_STR_EQ(r.sqlstate, "42601");
    /* The connection is fine afterwards, and the statement prepared earlier
     * is reused (a second PREPARE of the same name would fail). */
    const char *five[1] = {"5"};
    r = run_query(pool, &q_div, 1, five);
    CHECK_INT_EQ(r.err, 0);
    CHECK_STR_EQ(r.value, "2");
    r = run_query(pool, &q_div, 1, five);
    CHECK_INT_EQ(r.err, 0);
    lmdm_db_stats_t st;
    lmdm_db_pool_stats(pool, &st);
    CHECK_INT_EQ(st.errors, 2);
    CHECK_INT_EQ(st.queries, 4);
    CHECK_INT_EQ(st.healthy, 1);
    CHECK_INT_EQ(st.reconnects, 0);
    lmdm_db_pool_free(pool);
    teardown();
}

/* acquire -> BEGIN -> INSERT -> (COMMIT) -> release, driven from callbacks. */
typedef struct tx {
    lmdm_db_conn_t *conn;
    int commit;
    int step;
    int err;
    int done;
} tx_t;

static void tx_step(void *arg, int err, PGresult *res);

static void tx_acquired(void *arg, int err, lmdm_db_conn_t *conn)
{
    tx_t *t = arg;
    t->conn = conn;
    t->err = err;
    if (err) {
        t->done = 1;
        return;
    }
    t->step = 1;
    if (lmdm_db_conn_query(conn, &q_begin, 0, NULL, tx_step, t) != 0) t->done = 1;
}

static void tx_step(void *arg, int err, PGresult *res)
{
    tx_t *t = arg;
    if (err) {
        t->err = err;
        lmdm_db_release(t->conn);
        t->done = 1;
        return;
    }
    const char *v[1] = {"7"};
    int rc = 0;
    int step = t->step++;
    if (step == 1) {
        rc = lmdm_db_conn_query(t->conn, &q_insert, 1, v, tx_step, t);
    } else if (step == 2 && t->commit) {
        rc = lmdm_db_conn_query(t->conn, &q_commit, 0, NULL, tx_step, t);
    } else {
        /* From inside a callback; without COMMIT the transaction is still open. */
        lmdm_db_release(t->conn);
        t->done = 1;
        return;
    }
    if (rc) {
        t->err = rc;
        lmdm_db_release(t->conn);
        t->done = 1;
    }
}

static void test_release_rolls_back(void)
{
    setup();
    lmdm_db_pool_t *pool = lmdm_db_pool_new(base, conninfo, 1, 10);
    CHECK(pool_ready(pool, 1, 10000));
    CHECK_INT_EQ(run_query(pool, &q_create, 0, NULL).err, 0);

    tx_t t = {0};
    CHECK_INT_EQ(lmdm_db_acquire(pool, tx_acquired, &t), 0);
    CHECK(run_until(&t.done, 1, 10000));
    CHECK_INT_EQ(t.err, 0);
    CHECK_INT_EQ(t.step, 3);
    /* The next user of the (only) connection is outside any transaction and
     * does not see the insert. */
    result_t r = run_query(pool, &q_count, 0, NULL);
    CHECK_INT_EQ(r.err, 0);
    CHECK_STR_EQ(r.value, "0");
    PGconn *s = side();
    CHECK_STR_EQ(side_scalar(s, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                "AND state LIKE 'idle in transaction%'"),
                 "0");
    PQfinish(s);

    /* The same sequence with COMMIT keeps the row (so the check above can fail). */
    tx_t c = {.commit = 1};
    CHECK_INT_EQ(lmdm_db_acquire(pool, tx_acquired, &c), 0);
    CHECK(run_until(&c.done, 1, 10000));
    CHECK_INT_EQ(c.err, 0);
    r = run_query(pool, &q_count, 0, NULL);
    CHECK_STR_EQ(r.value, "1");
    lmdm_db_stats_t st;
    lmdm_db_pool_stats(pool, &st);
    CHECK_INT_EQ(st.busy, 0);
    CHECK_INT_EQ(st.reconnects, 0);

    /* A held connection only accepts conn_query from its holder; after
     * release it is refused. */
    CHECK_INT_EQ(lmdm_db_conn_query(c.conn, &q_one, 0, NULL, collect, &r), LMDM_ERR_INVALID);
    lmdm_db_pool_free(pool);
    teardown();
}

static int terminate_pool_backends(PGconn *s)
{
    return atoi(side_scalar(s, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()"));
}

static void *stats_reader(void *arg)
{
    /* Reads the counters from another thread while the loop runs. */
    lmdm_db_stats_t st;
    for (int i = 0; i < 20000; i++)
        lmdm_db_pool_stats(arg, &st);
    return NULL;
}

static void test_backends_killed(void)
{
    setup();
    lmdm_db_pool_t *pool = lmdm_db_pool_new(base, conninfo, 2, 100);
    CHECK(pool_ready(pool, 2, 10000));
    pthread_t reader;
    CHECK_INT_EQ(pthread_create(&reader, NULL, stats_reader, pool), 0);
    CHECK_INT_EQ(run_query(pool, &q_one, 0, NULL).err, 0);

    /* A query in flight when its backend dies fails as "unavailable". */
    result_t sleeping = {0};
    CHECK_INT_EQ(lmdm_db_query(pool, &q_sleep, 0, NULL, collect, &sleeping), 0);
    run_for(200);
    PGconn *s = side();
    CHECK_INT_EQ(terminate_pool_backends(s), 2);
    CHECK(run_until(&sleeping.done, 1, 5000));
    CHECK_INT_EQ(sleeping.err, LMDM_ERR_DB_UNAVAILABLE);

    /* Queries keep getting an answer (an error or a result) and the pool
     * comes back by itself. */
    int ok = 0, failed = 0;
    for (int i = 0; i < 200 && ok < 5; i++) {
        result_t r = run_query(pool, &q_one, 0, NULL);
        if (r.err == 0 && strcmp(r.value, "1") == 0)
            ok++;
        else if (r.err == LMDM_ERR_DB_UNAVAILABLE) {
            failed++;
            run_for(20);
        } else {
            harness_fail(__FILE__, __LINE__, "unexpected result %d (%s)", r.err, lmdm_strerror(r.err));
            break;
        }
    }
    CHECK_INT_EQ(ok, 5);
    CHECK(pool_ready(pool, 2, 10000));
    lmdm_db_stats_t st;
    lmdm_db_pool_stats(pool, &st);
    CHECK_INT_EQ(st.reconnects, 2);
    CHECK_INT_EQ(st.healthy, 2);
    CHECK(st.errors >= 1);

    /* Kill them again while idle: the pool notices without being used. */
    CHECK_INT_EQ(terminate_pool_backends(s), 2);
    run_for(500);
    CHECK(pool_ready(pool, 2, 10000));
    lmdm_db_pool_stats(pool, &st);
    CHECK_INT_EQ(st.reconnects, 4);
    CHECK_INT_EQ(run_query(pool, &q_one, 0, NULL).err, 0);

    /* A held connection whose session dies stays unusable until released:
     * its transaction is gone and must not continue on a new session. */
    int aerr = 99;
    held_done = 0;
    CHECK_INT_EQ(lmdm_db_acquire(pool, on_acquired, &aerr), 0);
    CHECK(run_until(&held_done, 1, 5000));
    result_t r = {0};
    CHECK_INT_EQ(lmdm_db_conn_query(held_conn, &q_begin, 0, NULL, collect, &r), 0);
    CHECK(run_until(&r.done, 1, 5000));
    CHECK_INT_EQ(terminate_pool_backends(s), 2);
    run_for(400); /* long enough to reconnect underneath */
    CHECK_INT_EQ(lmdm_db_conn_query(held_conn, &q_one, 0, NULL, collect, &r), LMDM_ERR_DB_UNAVAILABLE);
    lmdm_db_release(held_conn);
    CHECK(pool_ready(pool, 2, 10000));
    CHECK_INT_EQ(run_query(pool, &q_one, 0, NULL).err, 0);

    PQfinish(s);
    pthread_join(reader, NULL);
    lmdm_db_pool_free(pool);
    teardown();
}

static void test_no_server(void)
{
    base = event_base_new();
    lmdm_db_pool_t *pool =
        lmdm_db_pool_new(base, "host=/nonexistent/lmdm-test-socket-dir dbname=x user=lmdm", 2, 10);
    CHECK(pool != NULL);
    CHECK_INT_EQ(lmdm_db_pool_available(pool), 0);
    result_t r = {0};
    CHECK_INT_EQ(lmdm_db_query(pool, &q_one, 0, NULL, collect, &r), LMDM_ERR_DB_UNAVAILABLE);
    int aerr = 0;
    CHECK_INT_EQ(lmdm_db_acquire(pool, on_acquired, &aerr), LMDM_ERR_DB_UNAVAILABLE);
    /* It keeps retrying in the background without crashing or succeeding. */
    run_for(400);
    CHECK_INT_EQ(lmdm_db_pool_available(pool), 0);
    CHECK_INT_EQ(lmdm_db_query(pool, &q_one, 0, NULL, collect, &r), LMDM_ERR_DB_UNAVAILABLE);
    CHECK_INT_EQ(r.done, 0);
    lmdm_db_stats_t st;
    lmdm_db_pool_stats(pool, &st);
    CHECK_INT_EQ(st.healthy, 0);
    CHECK_INT_EQ(st.reconnects, 0);
    lmdm_db_pool_free(pool);

    char err[256];
    CHECK(lmdm_db_connect_blocking("host=/nonexistent/lmdm-test-socket-dir dbname=x", err, sizeof err) ==
          NULL);
    CHECK_STR_CONTAINS(err, "/nonexistent/lmdm-test-socket-dir");
    event_base_free(base);
    base = NULL;
}

static void test_free_fails_pending(void)
{
    setup();
    lmdm_db_pool_t *pool = lmdm_db_pool_new(base, conninfo, 1, 10);
    CHECK(pool_ready(pool, 1, 10000));
    result_t running = {0}, waiting = {0};
    CHECK_INT_EQ(lmdm_db_query(pool, &q_sleep, 0, NULL, collect, &running), 0);
    CHECK_INT_EQ(lmdm_db_query(pool, &q_one, 0, NULL, collect, &waiting), 0);
    run_for(100);
    lmdm_db_pool_free(pool);
    CHECK_INT_EQ(running.done, 1);
    CHECK_INT_EQ(running.err, LMDM_ERR_CLOSED);
    CHECK_INT_EQ(waiting.done, 1);
    CHECK_INT_EQ(waiting.err, LMDM_ERR_CLOSED);
    lmdm_db_pool_free(NULL);
    teardown();
}

int main(void)
{
    RUN(test_simple_query);
    RUN(test_fifo_on_pool_of_two);
    RUN(test_fifo_strict);
    RUN(test_queue_max);
    RUN(test_server_error);
    RUN(test_release_rolls_back);
    RUN(test_backends_killed);
    RUN(test_no_server);
    RUN(test_free_fails_pending);
    return harness_finish();
}
