/* The webhook deliverer: one thread, one PostgreSQL session, one curl multi
 * handle.
 *
 * Loop: (re)connect, take the advisory lock (or stand by and retry), LISTEN
 * lmdm_outbox; then repeatedly pick the oldest undelivered event of every
 * tenant that has a webhook, is active, has nothing in flight and whose event
 * is due, start one POST per such tenant, and wait on curl's sockets and the
 * database socket together (a NOTIFY or a finished delivery dispatches again
 * at once; otherwise every POLL_MS). Each finished delivery is recorded before
 * the tenant's next event can be picked, which is what keeps the per-tenant
 * order strict.
 *
 * Every wait is bounded (curl_multi_poll woken by curl_multi_wakeup, socket
 * waits in STOP_SLICE_MS slices), so stop returns within about a second
 * whatever the database or a tenant endpoint does. */
#include "lmdm/webhook.h"
#include "lmdm/tenant_command.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmdm/bgdb.h"
#include "lmdm/log.h"

#define POLL_MS 1000       /* look for due retries at least this often */
#define LOCK_RETRY_MS 3000 /* another instance delivers: ask again this often */
#define MAX_INFLIGHT 256    /* tenants delivered to at once */
#define LAST_ERROR_MAX 200

/* The head of every tenant's queue that may be attempted now. The lateral
 * subquery walks outbox_pending (tenant_id, id) once per tenant. */
static const char DISPATCH_SQL[] =
    "SELECT h.id, h.tenant_id, h.event_uuid, h.event,"
    " to_char(h.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
    " e.pseudonym, h.data::text, t.webhook_url, t.webhook_format,"
    " c.api_id, c.tenant_command_uuid, c.request_type, c.state, c.result,"
    " (SELECT string_agg(x.identifier, E'\\n') FROM entities x WHERE x.enrollment_id = h.enrollment_id"
    "  AND x.kind = 'app'),"
    " (SELECT string_agg(x.identifier, E'\\n') FROM entities x WHERE x.enrollment_id = h.enrollment_id"
    "  AND x.kind = 'profile')"
    " FROM tenants t"
    " CROSS JOIN LATERAL (SELECT o.* FROM outbox o WHERE o.tenant_id = t.id AND o.delivered_at IS NULL"
    "                     ORDER BY o.id LIMIT 1) h"
    " LEFT JOIN enrollments e ON e.id = h.enrollment_id"
    " LEFT JOIN commands c ON c.id = h.command_id"
    " WHERE t.state = 'active' AND t.webhook_url IS NOT NULL AND t.webhook_url <> ''"
    "   AND h.next_attempt_at <= now() AND NOT (t.id = ANY ($1::bigint[]))"
    " ORDER BY h.next_attempt_at, h.id LIMIT $2";

static const char DELIVERED_SQL[] =
    "UPDATE outbox SET delivered_at = now() WHERE id = $1 AND delivered_at IS NULL";

/* attempts on the right-hand side is the value before this failure, so
 * 2^attempts is 2^(new attempts - 1). */
static const char FAILED_SQL[] =
    "UPDATE outbox SET attempts = attempts + 1, last_error = $2,"
    " next_attempt_at = now() + least(power(2, least(attempts, 30)), $3::int) * interval '1 second'"
    " WHERE id = $1 AND delivered_at IS NULL"
    " RETURNING attempts, least(power(2, least(attempts - 1, 30)), $3::int)::int";

typedef struct delivery {
    struct delivery *next;
    int64_t tenant_id;
    int64_t outbox_id;
    char event_uuid[40];
    CURL *easy;
    struct curl_slist *headers;
    lmdm_buf_t body;
    char errbuf[CURL_ERROR_SIZE];
} delivery_t;

struct lmdm_webhook {
    pthread_t thread;
    atomic_int stop;
    char *conninfo;
    long timeout_ms;
    int backoff_max_s;
    lmdm_secrets_t secrets;
    CURLM *multi;
    lmdm_bgdb_t db;
    int locked;
    int standby_logged;
    delivery_t *inflight;
    int ninflight;
    int dirty;             /* dispatch without waiting */
    uint64_t next_poll_ns; /* dispatch no later than this */
    uint64_t due_ns;       /* earliest retry known to fall due (0: none) */
};

static int stopping(lmdm_webhook_t *w)
{
    return atomic_load(&w->stop);
}

/* ---- waiting ------------------------------------------------------------- */

/* Sleep up to ms, or until stop (curl_multi_wakeup interrupts the poll). */
static void idle(lmdm_webhook_t *w, int ms)
{
    if (!stopping(w)) curl_multi_poll(w->multi, NULL, 0, ms, NULL);
}

/* ---- deliveries ---------------------------------------------------------- */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    return size * n;
}

static void delivery_free(lmdm_webhook_t *w, delivery_t *d)
{
    if (d->easy) {
        curl_multi_remove_handle(w->multi, d->easy);
        curl_easy_cleanup(d->easy);
    }
    curl_slist_free_all(d->headers);
    lmdm_buf_free(&d->body);
    free(d);
}

static void unlink_delivery(lmdm_webhook_t *w, delivery_t *d)
{
    for (delivery_t **pp = &w->inflight; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            w->ninflight--;
            return;
        }
}

/* In-flight deliveries stay pending in the database: they are sent again. */
static void abandon_all(lmdm_webhook_t *w)
{
    while (w->inflight) {
        delivery_t *d = w->inflight;
        unlink_delivery(w, d);
        delivery_free(w, d);
    }
}

static void drop_conn(lmdm_webhook_t *w)
{
    abandon_all(w);
    lmdm_bgdb_drop(&w->db);
    w->locked = 0;
}

static int record_delivered(lmdm_webhook_t *w, const delivery_t *d)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, d->outbox_id);
    const char *v[] = {id};
    PGresult *r = lmdm_bgdb_expect(&w->db, "cannot record a delivery", DELIVERED_SQL, 1, v, PGRES_COMMAND_OK);
    if (!r) return -1;
    PQclear(r);
    lmdm_debug("webhook: tenant %" PRId64 " event %" PRId64 " (%s) delivered", d->tenant_id, d->outbox_id,
               d->event_uuid);
    return 0;
}

static int record_failed(lmdm_webhook_t *w, int64_t tenant_id, int64_t outbox_id, const char *uuid,
                         const char *why)
{
    char id[24], max[16], err[LAST_ERROR_MAX + 1];
    snprintf(id, sizeof id, "%" PRId64, outbox_id);
    snprintf(max, sizeof max, "%d", w->backoff_max_s);
    snprintf(err, sizeof err, "%s", why);
    const char *v[] = {id, err, max};
    PGresult *r = lmdm_bgdb_expect(&w->db, "cannot record a failed delivery", FAILED_SQL, 3, v, PGRES_TUPLES_OK);
    if (!r) return -1;
    if (PQntuples(r) == 1) {
        int attempts = atoi(PQgetvalue(r, 0, 0)), delay = atoi(PQgetvalue(r, 0, 1));
        lmdm_warn("webhook: tenant %" PRId64 " event %" PRId64
                  " (%s) not delivered: %s; attempt %d, next in %d s",
                  tenant_id, outbox_id, uuid, err, attempts, delay);
        /* A little after the database's own next_attempt_at. */
        uint64_t due = lmdm_now_ns() + (uint64_t)delay * 1000000000u + 20000000u;
        if (!w->due_ns || due < w->due_ns) w->due_ns = due;
    }
    PQclear(r);
    return 0;
}

static struct curl_slist *add_header(struct curl_slist *h, const char *name, const char *value)
{
    char line[256];
    snprintf(line, sizeof line, "%s: %s", name, value);
    struct curl_slist *n = curl_slist_append(h, line);
    if (!n) abort();
    return n;
}

/* The signed headers of one attempt: the signature covers "<ts>.<body>". */
static struct curl_slist *signed_headers(lmdm_webhook_t *w, const char *event, const char *uuid,
                                         const lmdm_buf_t *body)
{
    char ts[24], sig[89];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    lmdm_buf_t msg = {0};
    lmdm_buf_printf(&msg, "%s.", ts);
    lmdm_buf_append(&msg, body->data, body->len);
    lmdm_secrets_sign_b64(&w->secrets, msg.data, msg.len, sig);
    lmdm_buf_free(&msg);
    struct curl_slist *h = NULL;
    char sigh[100];
    snprintf(sigh, sizeof sigh, "ed25519=%s", sig);
    h = add_header(h, "Content-Type", "application/json");
    h = add_header(h, "User-Agent", "lmdm/" LMDM_VERSION);
    h = add_header(h, "Lmdm-Event", event);
    h = add_header(h, "Lmdm-Delivery", uuid);
    h = add_header(h, "Lmdm-Timestamp", ts);
    h = add_header(h, "Lmdm-Signature", sigh);
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    if (!h) abort();
    return h;
}

static CURL *new_easy(lmdm_webhook_t *w, delivery_t *d, const char *url)
{
    CURL *e = curl_easy_init();
    if (!e) return NULL;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, d->body.data);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->body.len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, w->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, w->timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, d);
    /* HTTPS peers are verified against the system CA store (libcurl's default). */
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    return e;
}

static const char *col(const PGresult *r, int row, int c)
{
    return PQgetisnull(r, row, c) ? NULL : PQgetvalue(r, row, c);
}

/* Start the POST of one dispatched row. A row whose body cannot be built
 * counts as a failed attempt (retried, logged), never as delivered. */
static int start_delivery(lmdm_webhook_t *w, const PGresult *r, int row)
{
    lmdm_webhook_event_t ev = {.event_uuid = col(r, row, 2),
                               .event = col(r, row, 3),
                               .created_at = col(r, row, 4),
                               .pseudonym = col(r, row, 5),
                               .data_json = col(r, row, 6),
                               .command_api_id = col(r, row, 9),
                               .command_tenant_uuid = col(r, row, 10),
                               .command_request_type = col(r, row, 11),
                               .command_state = col(r, row, 12),
                               .command_result = col(r, row, 13),
                               .owned_apps = col(r, row, 14),
                               .owned_profiles = col(r, row, 15)};
    char ns[32];
    lmdm_tenant_profile_ns(atoll(PQgetvalue(r, row, 1)), ns);
    ev.profile_ns = ns;
    int64_t outbox_id = strtoll(PQgetvalue(r, row, 0), NULL, 10);
    int64_t tenant_id = strtoll(PQgetvalue(r, row, 1), NULL, 10);
    lmdm_webhook_format_t fmt;
    if (lmdm_webhook_format_parse(col(r, row, 8), &fmt) != 0) fmt = LMDM_WEBHOOK_LMDM;

    delivery_t *d = lmdm_xcalloc(1, sizeof *d);
    d->tenant_id = tenant_id;
    d->outbox_id = outbox_id;
    snprintf(d->event_uuid, sizeof d->event_uuid, "%s", ev.event_uuid);
    if (lmdm_webhook_event_body(&ev, fmt, &d->body) != 0) {
        delivery_free(w, d);
        return record_failed(w, tenant_id, outbox_id, ev.event_uuid, "cannot build the event body");
    }
    d->headers = signed_headers(w, ev.event, ev.event_uuid, &d->body);
    d->easy = new_easy(w, d, col(r, row, 7));
    if (!d->easy || curl_multi_add_handle(w->multi, d->easy) != CURLM_OK) {
        delivery_free(w, d);
        return record_failed(w, tenant_id, outbox_id, ev.event_uuid, "cannot start the request");
    }
    d->next = w->inflight;
    w->inflight = d;
    w->ninflight++;
    return 0;
}

/* "{1,2,3}": the tenants that have a delivery in flight. */
static void inflight_array(const lmdm_webhook_t *w, lmdm_buf_t *out)
{
    lmdm_buf_puts(out, "{");
    for (const delivery_t *d = w->inflight; d; d = d->next)
        lmdm_buf_printf(out, "%s%" PRId64, d == w->inflight ? "" : ",", d->tenant_id);
    lmdm_buf_puts(out, "}");
}

static int dispatch(lmdm_webhook_t *w)
{
    int room = MAX_INFLIGHT - w->ninflight;
    if (room <= 0) return 0;
    lmdm_buf_t busy = {0};
    inflight_array(w, &busy);
    char lim[16];
    snprintf(lim, sizeof lim, "%d", room);
    const char *v[] = {busy.data, lim};
    PGresult *r = lmdm_bgdb_expect(&w->db, "cannot read the outbox", DISPATCH_SQL, 2, v, PGRES_TUPLES_OK);
    lmdm_buf_free(&busy);
    if (!r) return -1;
    int rv = 0;
    for (int i = 0; i < PQntuples(r) && rv == 0; i++)
        rv = start_delivery(w, r, i);
    PQclear(r);
    return rv;
}

/* Record every finished transfer; the tenant's next event is then due. */
static int finish_transfers(lmdm_webhook_t *w)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(w->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        char *priv = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        delivery_t *d = (delivery_t *)priv;
        CURLcode res = m->data.result;
        long status = 0;
        curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &status);
        unlink_delivery(w, d);
        int rv;
        if (res == CURLE_OK && status >= 200 && status < 300) {
            rv = record_delivered(w, d);
        } else {
            char why[LAST_ERROR_MAX + 1];
            if (res != CURLE_OK)
                snprintf(why, sizeof why, "%.200s", d->errbuf[0] ? d->errbuf : curl_easy_strerror(res));
            else
                snprintf(why, sizeof why, "HTTP %ld", status);
            rv = record_failed(w, d->tenant_id, d->outbox_id, d->event_uuid, why);
        }
        delivery_free(w, d);
        if (rv != 0) return -1;
        w->dirty = 1;
    }
    return 0;
}

/* ---- the loop ------------------------------------------------------------ */

/* 1: this instance delivers; 0: another one does; -1: connection trouble. */
static int take_lock(lmdm_webhook_t *w)
{
    int got = lmdm_bgdb_take_lock(&w->db, LMDM_WEBHOOK_LOCK_KEY, "lmdm_outbox");
    if (got <= 0) {
        if (got == 0 && !w->standby_logged) lmdm_info("webhook: another broker instance delivers webhooks; standing by");
        if (got == 0) w->standby_logged = 1;
        return got;
    }
    lmdm_info("webhook: delivering");
    w->standby_logged = 0;
    w->locked = 1;
    w->dirty = 1;
    return 1;
}

/* Any notification means "some tenant has a new event": dispatch. */
static int read_notifies(lmdm_webhook_t *w)
{
    int n = lmdm_bgdb_notifies(&w->db);
    if (n < 0) return -1;
    if (n > 0) w->dirty = 1;
    return 0;
}

/* Wait on curl's sockets and the database socket, then move transfers on. */
static void wait_and_perform(lmdm_webhook_t *w)
{
    int timeout = 0;
    if (!w->dirty) {
        uint64_t now = lmdm_now_ns();
        timeout = w->next_poll_ns > now ? (int)((w->next_poll_ns - now) / 1000000u) + 1 : 0;
    }
    struct curl_waitfd pg = {.fd = PQsocket(w->db.conn), .events = CURL_WAIT_POLLIN};
    curl_multi_poll(w->multi, &pg, 1, timeout, NULL);
    int running;
    curl_multi_perform(w->multi, &running);
}

static void reconnect_pause(lmdm_webhook_t *w)
{
    idle(w, lmdm_bgdb_backoff(&w->db));
}

/* One turn with a connection that holds the lock; -1 drops the connection. */
static int deliver_turn(lmdm_webhook_t *w)
{
    uint64_t now = lmdm_now_ns();
    if (w->dirty || now >= w->next_poll_ns) {
        w->dirty = 0;
        if (w->due_ns && w->due_ns <= now) w->due_ns = 0;
        w->next_poll_ns = now + (uint64_t)POLL_MS * 1000000u;
        if (w->due_ns && w->due_ns < w->next_poll_ns) w->next_poll_ns = w->due_ns;
        if (dispatch(w) != 0) return -1;
    }
    if (read_notifies(w) != 0) return -1;
    wait_and_perform(w);
    if (read_notifies(w) != 0) return -1;
    return finish_transfers(w);
}

static void *run(void *arg)
{
    lmdm_webhook_t *w = arg;
    while (!stopping(w)) {
        if (!w->db.conn && lmdm_bgdb_connect(&w->db) != 0) {
            reconnect_pause(w);
            continue;
        }
        if (!w->locked) {
            int got = take_lock(w);
            if (got < 0) drop_conn(w);
            if (got == 0) idle(w, LOCK_RETRY_MS);
            continue;
        }
        if (deliver_turn(w) != 0 && !stopping(w)) {
            lmdm_warn("webhook: database connection dropped; in-flight deliveries will be sent again");
            drop_conn(w);
            reconnect_pause(w);
        }
    }
    drop_conn(w);
    return NULL;
}

lmdm_webhook_t *lmdm_webhook_start(const lmdm_config_t *cfg, const lmdm_secrets_t *secrets, char *err,
                                   size_t errlen)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "webhook: cannot initialize libcurl");
        return NULL;
    }
    lmdm_webhook_t *w = lmdm_xcalloc(1, sizeof *w);
    atomic_init(&w->stop, 0);
    w->conninfo = lmdm_xstrdup(cfg->database_url ? cfg->database_url : "");
    w->db = (lmdm_bgdb_t){.conninfo = w->conninfo, .who = "webhook", .stop = &w->stop};
    w->timeout_ms = cfg->webhook_timeout_ms > 0 ? cfg->webhook_timeout_ms : 10000;
    w->backoff_max_s = cfg->webhook_backoff_max_s > 0 ? cfg->webhook_backoff_max_s : 1;
    w->secrets = *secrets;
    w->multi = curl_multi_init();
    if (!w->multi) {
        snprintf(err, errlen, "webhook: cannot create a curl multi handle");
        goto fail;
    }
    int rv = pthread_create(&w->thread, NULL, run, w);
    if (rv != 0) {
        snprintf(err, errlen, "webhook: cannot start the thread: %s", strerror(rv));
        goto fail;
    }
    return w;
fail:
    if (w->multi) curl_multi_cleanup(w->multi);
    sodium_memzero(&w->secrets, sizeof w->secrets);
    free(w->conninfo);
    free(w);
    curl_global_cleanup();
    return NULL;
}

void lmdm_webhook_stop(lmdm_webhook_t *w)
{
    if (!w) return;
    atomic_store(&w->stop, 1);
    curl_multi_wakeup(w->multi);
    pthread_join(w->thread, NULL);
    curl_multi_cleanup(w->multi);
    sodium_memzero(&w->secrets, sizeof w->secrets);
    free(w->conninfo);
    free(w);
    curl_global_cleanup();
}
