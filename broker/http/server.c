/* Worker threads, listeners, connection lifecycle, signals. */
#include "lmdm/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netdb.h>
#include <openssl/err.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "lmdm/log.h"
#include "lmdm/app.h"
#include "lmdm/tls.h"

#define LINGER_MS 2000
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

typedef struct listen_ctx {
    lmdm_worker_t *worker;
    int tls;
    struct evconnlistener *l;
} listen_ctx_t;

struct lmdm_worker_priv {
    pthread_t thread;
    listen_ctx_t listen[2];
    lmdm_conn_t *live, *reap;
    int nconns;
    struct event *reap_ev, *shutdown_ev, *force_ev;
    int draining, forced;
    time_t date_sec;
    char date[40];
};

struct lmdm_server {
    const lmdm_config_t *cfg;
    char *config_path;
    const lmdm_router_t *router;
    long schema_version;
    int nworkers;
    lmdm_worker_t *workers;
    lmdm_metrics_t **metrics;   /* per worker, for rendering */
    lmdm_db_pool_t **pools;
    pthread_mutex_t tls_lock;
    SSL_CTX *tls_ctx;           /* current context; swapped on SIGHUP */
    const struct lmdm_app *app; /* its trust store names the CAs in client certificate requests */
    struct event_base *main_base;
    atomic_int stopping;
};

static atomic_uint_fast64_t next_conn_id = 1;

const lmdm_config_t *conn_config(const lmdm_conn_t *c) { return c->worker->config; }

const lmdm_router_t *lmdm_server_router(const lmdm_server_t *s) { return s->router; }

long lmdm_server_schema_version(const lmdm_server_t *s) { return s->schema_version; }

void lmdm_server_render_metrics(lmdm_server_t *s, lmdm_buf_t *out)
{
    lmdm_metrics_render(out, s->metrics, s->pools, (size_t)s->nworkers, s->router);
}

const char *conn_http_date(lmdm_worker_t *w)
{
    time_t now = time(NULL);
    if (now != w->priv->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(w->priv->date, sizeof(w->priv->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        w->priv->date_sec = now;
    }
    return w->priv->date;
}

/* ---- connection lifecycle ---------------------------------------------- */

static void conn_set_state(lmdm_conn_t *c, conn_state_t st) { c->state = st; }

void conn_set_timer(lmdm_conn_t *c, int ms)
{
    if (ms <= 0) {
        evtimer_del(c->timer);
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static void maybe_finish_drain(lmdm_worker_t *w)
{
    if (w->priv->draining && w->priv->live == NULL && w->priv->reap == NULL)
        event_base_loopexit(w->base, NULL);
}

void conn_close(lmdm_conn_t *c, const char *reason)
{
    if (c->state == CONN_CLOSED) return;
    lmdm_debug("conn=%llu: closed (%s)", (unsigned long long)c->id, reason);
    conn_set_state(c, CONN_CLOSED);
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    evtimer_del(c->timer);
    lmdm_worker_priv_t *p = c->worker->priv;
    if (c->prev) c->prev->next = c->next;
    else p->live = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = NULL;
    c->next = p->reap;
    p->reap = c;
    event_active(p->reap_ev, 0, 0); /* destroyed at a safe point of the loop */
}

void conn_close_after_write(lmdm_conn_t *c)
{
    if (c->state == CONN_CLOSED || c->state == CONN_LINGER) return;
    conn_set_state(c, CONN_LINGER);
    conn_set_timer(c, LINGER_MS);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 && !c->tls)
        shutdown(bufferevent_getfd(c->bev), SHUT_WR);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    lmdm_worker_t *w = arg;
    lmdm_conn_t *c = w->priv->reap;
    w->priv->reap = NULL;
    while (c) {
        lmdm_conn_t *next = c->next;
        if (c->framing) c->framing->destroy(c);
        event_free(c->timer);
        bufferevent_free(c->bev);
        w->priv->nconns--;
        lmdm_metrics_conn(w->metrics, -1);
        free(c);
        c = next;
    }
    maybe_finish_drain(w);
}

static int start_framing(lmdm_conn_t *c, const conn_framing_t *f)
{
    c->framing = f;
    conn_set_state(c, CONN_OPEN);
    if (f->start(c) != 0) {
        conn_close(c, "framing start failed");
        return -1;
    }
    if (c->draining) f->shutdown(c);
    return 0;
}

/* Plaintext: the HTTP/2 client preface means h2c (prior knowledge); anything
 * else is HTTP/1.1. Decided on the first bytes without consuming them. */
static void sniff(lmdm_conn_t *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n = evbuffer_get_length(in);
    if (n > H2_PREFACE_LEN) n = H2_PREFACE_LEN;
    unsigned char buf[H2_PREFACE_LEN];
    evbuffer_copyout(in, buf, n);
    if (memcmp(buf, H2_PREFACE, n) != 0) {
        if (start_framing(c, &lmdm_framing_h1) == 0) c->framing->on_read(c);
    } else if (n == H2_PREFACE_LEN) {
        if (start_framing(c, &lmdm_framing_h2) == 0) c->framing->on_read(c);
    }
    /* else: a prefix of the preface so far; wait for more */
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    lmdm_conn_t *c = arg;
    switch (c->state) {
    case CONN_SNIFF: sniff(c); break;
    case CONN_OPEN: c->framing->on_read(c); break;
    case CONN_LINGER:
    case CONN_HANDSHAKE:
    case CONN_CLOSED: evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev))); break;
    }
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    lmdm_conn_t *c = arg;
    if (c->state == CONN_LINGER) {
        if (!c->tls) shutdown(bufferevent_getfd(bev), SHUT_WR);
    } else if (c->state == CONN_OPEN) {
        c->framing->on_drained(c);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    lmdm_conn_t *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        const char *alpn = ssl ? lmdm_tls_alpn(ssl) : NULL;
        lmdm_debug("conn=%llu: TLS %s, ALPN %s", (unsigned long long)c->id,
                   ssl ? SSL_get_version(ssl) : "?", alpn ? alpn : "(none)");
        if (start_framing(c, alpn && strcmp(alpn, "h2") == 0 ? &lmdm_framing_h2 : &lmdm_framing_h1) == 0 &&
            evbuffer_get_length(bufferevent_get_input(bev)))
            c->framing->on_read(c);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if ((what & BEV_EVENT_ERROR) && c->tls && c->state == CONN_HANDSHAKE) {
            unsigned long e = bufferevent_get_openssl_error(bev);
            char reason[160] = "";
            if (e) ERR_error_string_n(e, reason, sizeof(reason));
            lmdm_debug("conn=%llu: TLS handshake failed: %s", (unsigned long long)c->id, reason);
        }
        conn_close(c, what & BEV_EVENT_EOF ? "peer closed" : "socket error");
    }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    lmdm_conn_t *c = arg;
    switch (c->state) {
    case CONN_OPEN: c->framing->on_timeout(c); break;
    case CONN_LINGER: conn_close(c, "linger done"); break;
    case CONN_HANDSHAKE: conn_close(c, "TLS handshake timeout"); break;
    case CONN_SNIFF: conn_close(c, "no request in time"); break;
    case CONN_CLOSED: break;
    }
}

int lmdm_http_req_is_tls(const lmdm_http_req_t *req) { return req->conn && req->conn->tls; }

X509 *lmdm_http_req_peer_cert(const lmdm_http_req_t *req)
{
    if (!req->conn || !req->conn->tls) return NULL;
    SSL *ssl = bufferevent_openssl_get_ssl(req->conn->bev);
    return ssl ? SSL_get0_peer_certificate(ssl) : NULL;
}

STACK_OF(X509) *lmdm_http_req_peer_chain(const lmdm_http_req_t *req)
{
    if (!req->conn || !req->conn->tls) return NULL;
    SSL *ssl = bufferevent_openssl_get_ssl(req->conn->bev);
    return ssl ? SSL_get_peer_cert_chain(ssl) : NULL;
}

void lmdm_http_req_peer_ip(const lmdm_http_req_t *req, char *out, size_t outlen)
{
    const char *p = req->peer;
    size_t n;
    if (p[0] == '[') {
        const char *end = strchr(p, ']');
        p++;
        n = end ? (size_t)(end - p) : strlen(p);
    } else {
        const char *colon = strrchr(p, ':');
        n = colon ? (size_t)(colon - p) : strlen(p);
    }
    if (n >= outlen) n = outlen - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* The TLS context: certificate, ALPN and, when configured, the request for a
 * device client certificate. */
static void name_client_cas(SSL_CTX *ctx, const struct lmdm_app *app)
{
    if (!app || !app->trust) return;
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(lmdm_trust_store(app->trust));
    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509 *ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        if (ca) SSL_CTX_add_client_CA(ctx, ca);
    }
}

static SSL_CTX *build_tls_ctx(const lmdm_config_t *cfg, const char *cert, const char *key,
                              const struct lmdm_app *app, char *errbuf, size_t errlen)
{
    SSL_CTX *ctx = lmdm_tls_server_ctx(cert, key, errbuf, errlen);
    if (ctx && strcmp(cfg->tls_client_auth, "off") != 0) {
        lmdm_tls_request_client_cert(ctx, NULL);
        name_client_cas(ctx, app); /* the broker CA and every device_trusted_cas CA */
    }
    return ctx;
}

static SSL_CTX *current_tls_ctx(lmdm_server_t *s)
{
    pthread_mutex_lock(&s->tls_lock);
    SSL_CTX *ctx = s->tls_ctx;
    if (ctx) SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&s->tls_lock);
    return ctx;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    listen_ctx_t *lc = arg;
    lmdm_worker_t *w = lc->worker;
    const lmdm_config_t *cfg = w->config;
    if (w->priv->nconns >= cfg->max_connections || w->priv->draining) {
        lmdm_metrics_accepted(w->metrics, 1);
        evutil_closesocket(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    lmdm_conn_t *c = lmdm_xcalloc(1, sizeof(*c));
    c->id = atomic_fetch_add(&next_conn_id, 1);
    c->worker = w;
    c->tls = lc->tls;
    char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
    getnameinfo(sa, (socklen_t)salen, host, sizeof(host), port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(c->peer, sizeof(c->peer), sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);

    if (c->tls) {
        SSL_CTX *ctx = current_tls_ctx(w->server);
        SSL *ssl = ctx ? SSL_new(ctx) : NULL;
        SSL_CTX_free(ctx); /* the SSL holds its own reference */
        if (!ssl) {
            evutil_closesocket(fd);
            free(c);
            return;
        }
        c->bev = bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
        c->state = CONN_HANDSHAKE;
    } else {
        c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
        c->state = CONN_SNIFF;
    }
    if (!c->bev) {
        evutil_closesocket(fd);
        free(c);
        return;
    }
    c->timer = evtimer_new(w->base, timer_cb, c);
    c->next = w->priv->live;
    if (c->next) c->next->prev = c;
    w->priv->live = c;
    w->priv->nconns++;
    lmdm_metrics_accepted(w->metrics, 0);
    lmdm_metrics_conn(w->metrics, 1);
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    conn_set_timer(c, cfg->read_timeout_ms); /* handshake / first bytes */
    lmdm_debug("conn=%llu: accepted from %s (%s)", (unsigned long long)c->id, c->peer,
               c->tls ? "tls" : "plain");
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    lmdm_warn("accept: %s", evutil_socket_error_to_string(err));
}

/* ---- workers -------------------------------------------------------------- */

static void force_cb(evutil_socket_t fd, short what, void *arg)
{
    lmdm_worker_t *w = arg;
    int n = 0;
    for (lmdm_conn_t *c = w->priv->live; c; c = c->next) n++;
    lmdm_warn("worker %d: shutdown_timeout reached, closing %d connection(s) with requests in flight",
              w->id, n);
    w->priv->forced = 1;
    event_base_loopbreak(w->base);
}

static void shutdown_cb(evutil_socket_t fd, short what, void *arg)
{
    lmdm_worker_t *w = arg;
    lmdm_worker_priv_t *p = w->priv;
    if (p->draining) return;
    p->draining = 1;
    for (int i = 0; i < 2; i++) {
        if (p->listen[i].l) {
            evconnlistener_free(p->listen[i].l);
            p->listen[i].l = NULL;
        }
    }
    for (lmdm_conn_t *c = p->live, *next; c; c = next) {
        next = c->next;
        c->draining = 1;
        if (c->state == CONN_OPEN) c->framing->shutdown(c);
        else if (c->state != CONN_LINGER) conn_close(c, "shutdown");
    }
    struct timeval tv = {w->config->shutdown_timeout_ms / 1000, (w->config->shutdown_timeout_ms % 1000) * 1000};
    evtimer_add(p->force_ev, &tv);
    maybe_finish_drain(w);
}

static void *worker_main(void *arg)
{
    lmdm_worker_t *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

static int parse_listen(const char *spec, struct sockaddr_storage *ss, int *sslen, char *errbuf, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon) goto bad;
    size_t hl = (size_t)(colon - spec);
    if (hl >= sizeof(host)) goto bad;
    memcpy(host, spec, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rv = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (rv != 0 || !res) {
        snprintf(errbuf, errlen, "cannot resolve listen address %s: %s", spec, gai_strerror(rv));
        return LMDM_ERR_CONFIG;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = (int)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
bad:
    snprintf(errbuf, errlen, "listen address %s is not host:port", spec);
    return LMDM_ERR_CONFIG;
}

static int bind_listener(lmdm_worker_t *w, int idx, const char *spec, int tls, char *errbuf, size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen;
    int rv = parse_listen(spec, &ss, &sslen, errbuf, errlen);
    if (rv) return rv;
    listen_ctx_t *lc = &w->priv->listen[idx];
    lc->worker = w;
    lc->tls = tls;
    lc->l = evconnlistener_new_bind(w->base, accept_cb, lc,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT |
                                        LEV_OPT_CLOSE_ON_EXEC,
                                    1024, (struct sockaddr *)&ss, sslen);
    if (!lc->l) {
        snprintf(errbuf, errlen, "cannot listen on %s: %s", spec, strerror(errno));
        return LMDM_ERR_IO;
    }
    evconnlistener_set_error_cb(lc->l, accept_error_cb);
    return 0;
}

lmdm_server_t *lmdm_server_new(const lmdm_config_t *cfg, const char *config_path,
                               const lmdm_router_t *router, long schema_version, char *errbuf,
                               size_t errlen)
{
    evthread_use_pthreads();
    lmdm_server_t *s = lmdm_xcalloc(1, sizeof(*s));
    s->cfg = cfg;
    s->config_path = config_path ? lmdm_xstrdup(config_path) : NULL;
    s->router = router;
    s->schema_version = schema_version;
    pthread_mutex_init(&s->tls_lock, NULL);
    atomic_init(&s->stopping, 0);
    s->nworkers = cfg->workers > 0 ? cfg->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (s->nworkers < 1) s->nworkers = 1;

    if (*cfg->listen_tls) {
        s->tls_ctx = build_tls_ctx(cfg, cfg->tls_cert, cfg->tls_key, NULL, errbuf, errlen); /* CAs: set_app */
        if (!s->tls_ctx) goto fail;
    }

    s->workers = lmdm_xcalloc((size_t)s->nworkers, sizeof(lmdm_worker_t));
    s->metrics = lmdm_xcalloc((size_t)s->nworkers, sizeof(*s->metrics));
    s->pools = lmdm_xcalloc((size_t)s->nworkers, sizeof(*s->pools));
    for (int i = 0; i < s->nworkers; i++) {
        lmdm_worker_t *w = &s->workers[i];
        w->id = i;
        w->server = s;
        w->config = cfg;
        w->priv = lmdm_xcalloc(1, sizeof(*w->priv));
        w->base = event_base_new();
        if (!w->base) {
            snprintf(errbuf, errlen, "cannot create event loop");
            goto fail;
        }
        w->metrics = s->metrics[i] = lmdm_metrics_new(lmdm_router_count(router));
        if (cfg->database_url && *cfg->database_url)
            w->db = s->pools[i] = lmdm_db_pool_new(w->base, cfg->database_url, cfg->db_pool_size, cfg->db_queue_max);
        w->priv->reap_ev = event_new(w->base, -1, 0, reap_cb, w);
        w->priv->shutdown_ev = event_new(w->base, -1, 0, shutdown_cb, w);
        w->priv->force_ev = evtimer_new(w->base, force_cb, w);
        if (*cfg->listen_tls && bind_listener(w, 0, cfg->listen_tls, 1, errbuf, errlen)) goto fail;
        if (*cfg->listen_plain && bind_listener(w, 1, cfg->listen_plain, 0, errbuf, errlen)) goto fail;
    }
    return s;
fail:
    lmdm_server_free(s);
    return NULL;
}

void lmdm_server_set_app(lmdm_server_t *s, const struct lmdm_app *app)
{
    for (int i = 0; i < s->nworkers; i++) s->workers[i].app = app;
    s->app = app;
    /* Name the trusted device CAs in the TLS CertificateRequest. */
    if (s->tls_ctx && strcmp(s->cfg->tls_client_auth, "off") != 0) name_client_cas(s->tls_ctx, app);
}

lmdm_worker_t *lmdm_server_worker(lmdm_server_t *s, int i)
{
    return i >= 0 && i < s->nworkers ? &s->workers[i] : NULL;
}

int lmdm_server_adopt(lmdm_worker_t *w, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0 || len == 0) {
        memset(&ss, 0, sizeof(ss));
        ss.ss_family = AF_UNIX;
        len = sizeof(sa_family_t);
    }
    listen_ctx_t lc = {.worker = w, .tls = 0};
    evutil_make_socket_nonblocking(fd);
    accept_cb(NULL, fd, (struct sockaddr *)&ss, (int)len, &lc);
    return 0;
}

/* ---- main thread: signals ---------------------------------------------- */

static void reload(lmdm_server_t *s)
{
    char err[512];
    lmdm_config_t fresh;
    lmdm_config_defaults(&fresh);
    if (s->config_path && lmdm_config_load(&fresh, s->config_path, err, sizeof(err)) != 0) {
        lmdm_error("SIGHUP: config not reloaded: %s", err);
        lmdm_config_clear(&fresh);
        return;
    }
    lmdm_log_level_t lvl;
    lmdm_log_format_t fmt;
    if (lmdm_log_level_parse(fresh.log_level, &lvl) == 0 && lmdm_log_format_parse(s->cfg->log_format, &fmt) == 0)
        lmdm_log_setup(lvl, fmt);
    if (*s->cfg->listen_tls) {
        SSL_CTX *ctx = build_tls_ctx(s->cfg, fresh.tls_cert, fresh.tls_key, s->app, err, sizeof(err));
        if (!ctx) {
            lmdm_error("SIGHUP: TLS certificate not reloaded, keeping the current one: %s", err);
        } else {
            pthread_mutex_lock(&s->tls_lock);
            SSL_CTX *old = s->tls_ctx;
            s->tls_ctx = ctx;
            pthread_mutex_unlock(&s->tls_lock);
            SSL_CTX_free(old); /* connections still using it hold their own reference */
            lmdm_info("SIGHUP: TLS certificate reloaded from %s", fresh.tls_cert);
        }
    }
    lmdm_config_clear(&fresh);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    lmdm_server_t *s = arg;
    if (sig == SIGHUP) {
        reload(s);
        return;
    }
    lmdm_info("%s received: draining (up to %d ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
              s->cfg->shutdown_timeout_ms);
    lmdm_server_stop(s);
}

void lmdm_server_stop(lmdm_server_t *s)
{
    if (atomic_exchange(&s->stopping, 1)) return;
    for (int i = 0; i < s->nworkers; i++) event_active(s->workers[i].priv->shutdown_ev, 0, 0);
    if (s->main_base) event_base_loopexit(s->main_base, NULL);
}

int lmdm_server_run(lmdm_server_t *s)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* workers inherit: signals go to the main thread */
    signal(SIGPIPE, SIG_IGN);
    int started = 0, rv = 0;
    for (; started < s->nworkers; started++) {
        if (pthread_create(&s->workers[started].priv->thread, NULL, worker_main, &s->workers[started]) != 0) {
            lmdm_error("cannot start worker thread %d", started);
            rv = LMDM_ERR_IO;
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    s->main_base = event_base_new();
    struct event *sigs[3];
    int signums[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(s->main_base, signums[i], signal_cb, s);
        evsignal_add(sigs[i], NULL);
    }
    if (rv == 0) {
        lmdm_info("lmdm %s serving with %d worker(s)%s%s%s%s", LMDM_VERSION, s->nworkers,
                  *s->cfg->listen_tls ? ", TLS on " : "", s->cfg->listen_tls,
                  *s->cfg->listen_plain ? ", plaintext on " : "", s->cfg->listen_plain);
        if (!atomic_load(&s->stopping)) event_base_dispatch(s->main_base);
    } else {
        lmdm_server_stop(s);
    }
    /* The signal events stay installed until the workers have drained: a second
     * SIGTERM/SIGINT during the drain must not kill the process. */
    for (int i = 0; i < started; i++) {
        pthread_join(s->workers[i].priv->thread, NULL);
        if (s->workers[i].priv->forced) rv = rv ? rv : LMDM_ERR_TIMEOUT;
    }
    for (int i = 0; i < 3; i++) event_free(sigs[i]);
    event_base_free(s->main_base);
    s->main_base = NULL;
    lmdm_info("stopped%s", rv == LMDM_ERR_TIMEOUT ? " (some requests were cut at shutdown_timeout)" : "");
    return rv;
}

void lmdm_server_free(lmdm_server_t *s)
{
    if (!s) return;
    for (int i = 0; s->workers && i < s->nworkers; i++) {
        lmdm_worker_t *w = &s->workers[i];
        if (!w->priv) continue;
        for (lmdm_conn_t *c = w->priv->live, *next; c; c = next) {
            next = c->next;
            conn_close(c, "server freed");
        }
        if (w->priv->reap_ev) reap_cb(-1, 0, w);
        for (int j = 0; j < 2; j++)
            if (w->priv->listen[j].l) evconnlistener_free(w->priv->listen[j].l);
        lmdm_db_pool_free(w->db);
        if (w->priv->reap_ev) event_free(w->priv->reap_ev);
        if (w->priv->shutdown_ev) event_free(w->priv->shutdown_ev);
        if (w->priv->force_ev) event_free(w->priv->force_ev);
        lmdm_metrics_free(w->metrics);
        if (w->base) event_base_free(w->base);
        free(w->priv);
    }
    free(s->workers);
    free(s->metrics);
    free(s->pools);
    SSL_CTX_free(s->tls_ctx);
    pthread_mutex_destroy(&s->tls_lock);
    free(s->config_path);
    free(s);
}
