/* LISTEN lmdm_push -> APNs. */
#include "lmdm/push.h"

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/apns.h"
#include "lmdm/log.h"

/* Sent once per (re)connection: listen, then wake every device with work. */
#define SETUP_SQL                                                                                       \
    "LISTEN lmdm_push; "                                                                                \
    "SELECT encode(c.push_token, 'hex'), c.push_magic, d.topic FROM channels c "                       \
    "JOIN devices d ON d.id = c.device_id "                                                             \
    "WHERE d.state = 'enrolled' AND c.push_token IS NOT NULL AND NOT c.token_dead AND EXISTS "         \
    "(SELECT 1 FROM commands m WHERE m.channel_id = c.id AND m.state IN ('queued', 'sent', 'notnow'))"

struct lmdm_push {
    lmdm_worker_t *w;
    char *conninfo;
    PGconn *conn;
    struct event *ev;      /* socket */
    struct event *retry;   /* reconnect timer */
    int backoff_ms;
    int connecting;
};

static void start_connect(lmdm_push_t *p);

static void push_one(lmdm_push_t *p, const char *token, const char *magic, const char *topic)
{
    if (!p->w->apns) return;
    int rv = lmdm_apns_push(p->w->apns, token, magic, topic && *topic ? topic : NULL);
    if (rv) lmdm_warn("push: not queued for token %.8s…: %s", token, lmdm_strerror(rv));
}

static void handle_notify(lmdm_push_t *p, const char *payload)
{
    char buf[512], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", payload);
    char *token = strtok_r(buf, " ", &save);
    char *magic = strtok_r(NULL, " ", &save);
    char *topic = strtok_r(NULL, " ", &save);
    if (!token || !magic) {
        lmdm_warn("push: malformed notification ignored");
        return;
    }
    push_one(p, token, magic, topic);
}

static void schedule_retry(lmdm_push_t *p, const char *why)
{
    lmdm_warn("push listener: %s; reconnecting in %d ms", why, p->backoff_ms);
    if (p->ev) {
        event_free(p->ev);
        p->ev = NULL;
    }
    if (p->conn) {
        PQfinish(p->conn);
        p->conn = NULL;
    }
    struct timeval tv = {p->backoff_ms / 1000, (p->backoff_ms % 1000) * 1000};
    evtimer_add(p->retry, &tv);
    p->backoff_ms = p->backoff_ms * 2 > 5000 ? 5000 : p->backoff_ms * 2;
}

static void drain(lmdm_push_t *p)
{
    if (!PQconsumeInput(p->conn)) {
        schedule_retry(p, PQerrorMessage(p->conn));
        return;
    }
    while (!PQisBusy(p->conn)) {
        PGresult *r = PQgetResult(p->conn);
        if (!r) break;
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            for (int i = 0; i < PQntuples(r); i++)
                push_one(p, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
        } else if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            lmdm_warn("push listener: %s", PQresultErrorMessage(r));
        }
        PQclear(r);
    }
    PGnotify *n;
    while ((n = PQnotifies(p->conn))) {
        handle_notify(p, n->extra);
        PQfreemem(n);
    }
}

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
    lmdm_push_t *p = arg;
    if (p->connecting) {
        PostgresPollingStatusType st = PQconnectPoll(p->conn);
        if (st == PGRES_POLLING_FAILED) {
            schedule_retry(p, PQerrorMessage(p->conn));
            return;
        }
        if (st != PGRES_POLLING_OK) {
            /* wait for the direction libpq asks for; the socket may have changed */
            event_free(p->ev);
            p->ev = event_new(p->w->base, PQsocket(p->conn), st == PGRES_POLLING_READING ? EV_READ : EV_WRITE,
                              on_socket, p);
            event_add(p->ev, NULL);
            return;
        }
        p->connecting = 0;
        p->backoff_ms = 100;
        PQsetnonblocking(p->conn, 1);
        if (!PQsendQuery(p->conn, SETUP_SQL)) {
            schedule_retry(p, PQerrorMessage(p->conn));
            return;
        }
        PQflush(p->conn);
        event_free(p->ev);
        p->ev = event_new(p->w->base, PQsocket(p->conn), EV_READ | EV_PERSIST, on_socket, p);
        event_add(p->ev, NULL);
        lmdm_info("push listener: listening on lmdm_push");
        return;
    }
    drain(p);
}

static void start_connect(lmdm_push_t *p)
{
    p->conn = PQconnectStart(p->conninfo);
    if (!p->conn || PQstatus(p->conn) == CONNECTION_BAD) {
        schedule_retry(p, p->conn ? PQerrorMessage(p->conn) : "out of memory");
        return;
    }
    p->connecting = 1;
    p->ev = event_new(p->w->base, PQsocket(p->conn), EV_WRITE, on_socket, p);
    event_add(p->ev, NULL);
}

static void on_retry(evutil_socket_t fd, short what, void *arg) { start_connect(arg); }

lmdm_push_t *lmdm_push_new(lmdm_worker_t *w, const char *conninfo)
{
    lmdm_push_t *p = lmdm_xcalloc(1, sizeof(*p));
    p->w = w;
    p->conninfo = lmdm_xstrdup(conninfo);
    p->backoff_ms = 100;
    p->retry = evtimer_new(w->base, on_retry, p);
    start_connect(p);
    return p;
}

void lmdm_push_free(lmdm_push_t *p)
{
    if (!p) return;
    if (p->ev) event_free(p->ev);
    event_free(p->retry);
    if (p->conn) PQfinish(p->conn);
    free(p->conninfo);
    free(p);
}

static const lmdm_db_stmt_t st_dead = {
    "push_token_dead", "UPDATE channels SET token_dead = true WHERE push_token = decode($1, 'hex')", 1};

static void dead_done(void *arg, int err, PGresult *res)
{
    if (err) lmdm_warn("push: could not mark a token dead: %s", lmdm_strerror(err));
}

void lmdm_push_apns_result(void *arg, const char *token_hex, int status, const char *reason)
{
    lmdm_worker_t *w = arg;
    if (status == 200) return;
    lmdm_warn("push: APNs answered %d (%s) for token %.8s…", status, reason ? reason : "", token_hex);
    if (status == 410 && w->db) {
        const char *p[] = {token_hex};
        if (lmdm_db_query(w->db, &st_dead, 1, p, dead_done, NULL) != 0)
            lmdm_warn("push: could not mark token %.8s… dead (database busy)", token_hex);
    }
}
