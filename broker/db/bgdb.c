/* A PostgreSQL session for the broker's background threads (see lmdm/bgdb.h). */
#include "lmdm/bgdb.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "lmdm/common.h"
#include "lmdm/log.h"

#define STOP_SLICE_MS 100   /* waits check the stop flag this often */
#define DB_TIMEOUT_MS 30000 /* one query or connection attempt */
#define RECONNECT_MAX_MS 5000

static int stopping(const lmdm_bgdb_t *b) { return b->stop && atomic_load(b->stop); }

int lmdm_bgdb_wait_fd(lmdm_bgdb_t *b, int fd, short events, uint64_t deadline_ns)
{
    while (!stopping(b)) {
        if (lmdm_now_ns() >= deadline_ns) return 0;
        struct pollfd p = {.fd = fd, .events = events};
        if (poll(&p, 1, STOP_SLICE_MS) > 0) return 1;
    }
    return -1;
}

void lmdm_bgdb_log_error(const lmdm_bgdb_t *b, const char *what, const PGresult *res)
{
    const char *msg = res ? PQresultErrorMessage(res) : b->conn ? PQerrorMessage(b->conn) : "not connected";
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) n--;
    lmdm_warn("%s: %s: %.*s", b->who, what, (int)n, msg);
}

/* Wait for the answer of what was just sent; the last result or NULL. */
static PGresult *collect(lmdm_bgdb_t *b)
{
    PGconn *c = b->conn;
    uint64_t deadline = lmdm_now_ns() + (uint64_t)DB_TIMEOUT_MS * 1000000u;
    int fl;
    while ((fl = PQflush(c)) == 1)
        if (lmdm_bgdb_wait_fd(b, PQsocket(c), POLLOUT | POLLIN, deadline) <= 0 || !PQconsumeInput(c)) return NULL;
    if (fl < 0) return NULL;
    PGresult *last = NULL;
    for (;;) {
        while (PQisBusy(c)) {
            if (lmdm_bgdb_wait_fd(b, PQsocket(c), POLLIN, deadline) <= 0 || !PQconsumeInput(c)) {
                PQclear(last);
                return NULL;
            }
        }
        PGresult *r = PQgetResult(c);
        if (!r) break;
        PQclear(last);
        last = r;
    }
    if (!last) lmdm_bgdb_log_error(b, "query", NULL);
    return last;
}

PGresult *lmdm_bgdb_exec(lmdm_bgdb_t *b, const char *sql, int nparams, const char *const *values)
{
    if (!b->conn || !PQsendQueryParams(b->conn, sql, nparams, NULL, values, NULL, NULL, 0)) return NULL;
    return collect(b);
}

static int is_prepared(const lmdm_bgdb_t *b, const char *name)
{
    for (int i = 0; i < b->nprepared; i++)
        if (strcmp(b->prepared[i], name) == 0) return 1;
    return 0;
}

PGresult *lmdm_bgdb_expect_prepared(lmdm_bgdb_t *b, const char *what, const char *name, const char *sql, int nparams,
                                    const char *const *values, ExecStatusType want)
{
    if (!b->conn) return NULL;
    if (!is_prepared(b, name)) {
        if (!PQsendPrepare(b->conn, name, sql, nparams, NULL)) return NULL;
        PGresult *r = collect(b);
        if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
            if (r || !stopping(b)) lmdm_bgdb_log_error(b, what, r);
            PQclear(r);
            return NULL;
        }
        PQclear(r);
        if (b->nprepared < (int)(sizeof(b->prepared) / sizeof(b->prepared[0]))) b->prepared[b->nprepared++] = name;
    }
    PGresult *r = NULL;
    if (PQsendQueryPrepared(b->conn, name, nparams, values, NULL, NULL, 0)) r = collect(b);
    if (r && PQresultStatus(r) == want) return r;
    if (r || !stopping(b)) lmdm_bgdb_log_error(b, what, r);
    PQclear(r);
    return NULL;
}

PGresult *lmdm_bgdb_expect(lmdm_bgdb_t *b, const char *what, const char *sql, int nparams, const char *const *values,
                           ExecStatusType want)
{
    PGresult *r = lmdm_bgdb_exec(b, sql, nparams, values);
    if (r && PQresultStatus(r) == want) return r;
    if (r || !stopping(b)) lmdm_bgdb_log_error(b, what, r);
    PQclear(r);
    return NULL;
}

int lmdm_bgdb_connect(lmdm_bgdb_t *b)
{
    PGconn *c = PQconnectStart(b->conninfo);
    if (!c || PQstatus(c) == CONNECTION_BAD) goto fail;
    uint64_t deadline = lmdm_now_ns() + (uint64_t)DB_TIMEOUT_MS * 1000000u;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED) goto fail;
        int r = lmdm_bgdb_wait_fd(b, PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
        if (r < 0) {
            PQfinish(c);
            return -1;
        }
        if (r == 0) goto fail;
        st = PQconnectPoll(c);
    }
    b->conn = c;
    b->reconnect_ms = 0;
    return 0;
fail:
    if (!stopping(b)) {
        const char *msg = c ? PQerrorMessage(c) : "out of memory";
        size_t n = strlen(msg);
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) n--;
        lmdm_warn("%s: cannot connect to the database: %.*s", b->who, (int)n, msg);
    }
    PQfinish(c);
    return -1;
}

void lmdm_bgdb_drop(lmdm_bgdb_t *b)
{
    if (b->conn) PQfinish(b->conn);
    b->conn = NULL;
    b->nprepared = 0; /* statements belong to the session */
}

int lmdm_bgdb_take_lock(lmdm_bgdb_t *b, long long key, const char *channel)
{
    char k[24], listen[96];
    snprintf(k, sizeof k, "%lld", key);
    const char *v[] = {k};
    PGresult *r = lmdm_bgdb_expect(b, "cannot take the advisory lock", "SELECT pg_try_advisory_lock($1::bigint)", 1, v,
                                   PGRES_TUPLES_OK);
    if (!r) return -1;
    int got = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!got) return 0;
    snprintf(listen, sizeof listen, "LISTEN %s", channel);
    r = lmdm_bgdb_expect(b, "cannot listen", listen, 0, NULL, PGRES_COMMAND_OK);
    if (!r) return -1;
    PQclear(r);
    return 1;
}

int lmdm_bgdb_notifies(lmdm_bgdb_t *b)
{
    if (!b->conn || !PQconsumeInput(b->conn)) {
        lmdm_bgdb_log_error(b, "connection lost", NULL);
        return -1;
    }
    int n = 0;
    PGnotify *note;
    while ((note = PQnotifies(b->conn))) {
        n++;
        PQfreemem(note);
    }
    return n;
}

int lmdm_bgdb_backoff(lmdm_bgdb_t *b)
{
    b->reconnect_ms = b->reconnect_ms ? b->reconnect_ms * 2 : 250;
    if (b->reconnect_ms > RECONNECT_MAX_MS) b->reconnect_ms = RECONNECT_MAX_MS;
    return b->reconnect_ms;
}

void lmdm_bgdb_sleep(lmdm_bgdb_t *b, int ms)
{
    for (int slept = 0; slept < ms && !stopping(b); slept += STOP_SLICE_MS)
        poll(NULL, 0, ms - slept < STOP_SLICE_MS ? ms - slept : STOP_SLICE_MS);
}

#define LOCK_RETRY_MS 3000

void lmdm_bgloop_run(const lmdm_bgloop_t *l)
{
    lmdm_bgdb_t *b = l->db;
    int locked = 0, standby_logged = 0;
    while (!stopping(b)) {
        if (!b->conn && lmdm_bgdb_connect(b) != 0) {
            lmdm_bgdb_sleep(b, lmdm_bgdb_backoff(b));
            continue;
        }
        if (!locked) {
            int got = lmdm_bgdb_take_lock(b, l->lock_key, l->channel);
            if (got < 0) lmdm_bgdb_drop(b);
            if (got == 0) {
                if (!standby_logged) lmdm_info("%s: another broker instance %s; standing by", b->who, l->role);
                standby_logged = 1;
                lmdm_bgdb_sleep(b, LOCK_RETRY_MS);
            }
            if (got == 1) {
                locked = 1;
                standby_logged = 0;
                if (l->on_lead) l->on_lead(l->ctx);
            }
            continue;
        }
        int more = l->turn(l->ctx);
        if (more >= 0 && lmdm_bgdb_notifies(b) < 0) more = -1;
        if (more == 0) {
            /* Nothing to do: wait for a NOTIFY, or the poll interval. */
            uint64_t deadline = lmdm_now_ns() + (uint64_t)l->poll_ms * 1000000u;
            int woke = lmdm_bgdb_wait_fd(b, PQsocket(b->conn), POLLIN, deadline) == 1;
            if (lmdm_bgdb_notifies(b) < 0) more = -1;
            /* A NOTIFY tends to come first of many (one per committed
             * transaction): let a burst gather into one turn. */
            else if (woke && l->gather_ms > 0) lmdm_bgdb_sleep(b, l->gather_ms);
        }
        if (more < 0) {
            if (!stopping(b)) lmdm_warn("%s: database connection dropped; reconnecting", b->who);
            lmdm_bgdb_drop(b);
            locked = 0;
            lmdm_bgdb_sleep(b, lmdm_bgdb_backoff(b));
        }
    }
    lmdm_bgdb_drop(b);
}
