/* A small HTTP/2 client on nghttp2 for the fleet's timed phase: many
 * devices' requests multiplexed on a few shared connections (h2c with prior
 * knowledge, or TLS with ALPN h2), or one connection per device carrying its
 * client certificate (mTLS).
 *
 * Why not libcurl here: libcurl 7.88 (Debian 12) breaks HTTP/2 connections
 * with prior knowledge when it reuses them ("Error in the HTTP2 framing
 * layer", curl issue #10634, fixed in 7.89), which is exactly what a
 * benchmark does thousands of times a second. The rest of the simulator
 * still goes through sim_http.c.
 *
 * Single-threaded: everything happens inside sim_h2_run(). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "sim.h"

typedef struct h2_stream {
    struct h2_stream *prev, *next; /* the connection's open streams */
    sim_h2_done_fn done;
    void *ud;
    const unsigned char *body;
    size_t len, off;
    int status;
    unsigned char *resp;
    size_t rlen, rcap;
} h2_stream_t;

typedef struct {
    int fd;
    SSL *ssl;
    nghttp2_session *session;
    unsigned char *out; /* bytes nghttp2 produced that the socket did not take yet */
    size_t outlen, outoff;
    h2_stream_t *open; /* streams in flight, so that a lost connection fails each */
    bool dead;
    sim_h2_t *owner;
} h2_conn_t;

struct sim_h2 {
    char scheme[8];
    char host[256];
    char port[16];
    char authority[300];
    bool tls;
    SSL_CTX *ctx;
    h2_conn_t *conns;
    int nconns;
    int in_flight;
};

static void conn_close(h2_conn_t *c, const char *why);

static void unlink_stream(h2_conn_t *c, h2_stream_t *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        c->open = st->next;
    if (st->next) st->next->prev = st->prev;
    c->owner->in_flight--;
}

/* ---- nghttp2 callbacks ------------------------------------------------ */

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    if (frame->hd.type != NGHTTP2_HEADERS || namelen != 7 || memcmp(name, ":status", 7) != 0) return 0;
    h2_stream_t *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (st && valuelen == 3) st->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
    (void)flags;
    (void)ud;
    h2_stream_t *st = nghttp2_session_get_stream_user_data(s, id);
    if (!st) return 0;
    if (st->rlen + len + 1 > st->rcap) {
        size_t cap = st->rcap ? st->rcap : 512;
        while (cap < st->rlen + len + 1)
            cap *= 2;
        st->resp = realloc(st->resp, cap);
        if (!st->resp) abort();
        st->rcap = cap;
    }
    memcpy(st->resp + st->rlen, data, len);
    st->rlen += len;
    st->resp[st->rlen] = '\0';
    return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *ud)
{
    h2_conn_t *c = ud;
    h2_stream_t *st = nghttp2_session_get_stream_user_data(s, id);
    if (!st) return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    unlink_stream(c, st);
    char err[128] = "";
    if (error_code != NGHTTP2_NO_ERROR || !st->status)
        snprintf(err, sizeof err, "HTTP/2 stream closed: %s", nghttp2_http2_strerror(error_code));
    st->done(st->ud, error_code == NGHTTP2_NO_ERROR ? st->status : 0, st->resp, st->rlen,
             err[0] ? err : NULL);
    free(st->resp);
    free(st);
    return 0;
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    (void)s;
    (void)id;
    (void)ud;
    h2_stream_t *st = src->ptr;
    size_t n = st->len - st->off;
    if (n > length) n = length;
    memcpy(buf, st->body + st->off, n);
    st->off += n;
    if (st->off == st->len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static nghttp2_session_callbacks *callbacks(void)
{
    static nghttp2_session_callbacks *cbs;
    if (!cbs) {
        nghttp2_session_callbacks_new(&cbs);
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
    }
    return cbs;
}

/* ---- connections -------------------------------------------------------- */

static int tcp_connect(const sim_h2_t *h, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(h->host, h->port, &hints, &res);
    if (rc != 0) {
        sim_errf(err, errlen, "%s: %s", h->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        sim_errf(err, errlen, "connect %s:%s: %s", h->host, h->port, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int sim_h2_connect(sim_h2_t *h, int i, const char *client_pem, char *err, size_t errlen)
{
    h2_conn_t *c = &h->conns[i];
    if (c->session && !c->dead) return 0;
    conn_close(c, NULL);
    c->owner = h;
    c->fd = tcp_connect(h, err, errlen);
    if (c->fd < 0) return -1;
    if (h->tls) {
        c->ssl = SSL_new(h->ctx);
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_tlsext_host_name(c->ssl, h->host);
        SSL_set1_host(c->ssl, h->host);
        if (client_pem) {
            EVP_PKEY *key = NULL;
            X509 *cert = NULL;
            if (sim_pem_identity(client_pem, &key, &cert, err, errlen) != 0 ||
                SSL_use_certificate(c->ssl, cert) != 1 || SSL_use_PrivateKey(c->ssl, key) != 1) {
                EVP_PKEY_free(key);
                X509_free(cert);
                if (!err[0]) sim_errf(err, errlen, "cannot use the client certificate");
                conn_close(c, NULL);
                return -1;
            }
            EVP_PKEY_free(key);
            X509_free(cert);
        }
        if (SSL_connect(c->ssl) != 1) {
            unsigned long e = ERR_get_error();
            char buf[256];
            ERR_error_string_n(e, buf, sizeof buf);
            sim_errf(err, errlen, "TLS handshake with %s: %s", h->authority, e ? buf : "failed");
            ERR_clear_error();
            conn_close(c, NULL);
            return -1;
        }
        const unsigned char *alpn = NULL;
        unsigned alpnlen = 0;
        SSL_get0_alpn_selected(c->ssl, &alpn, &alpnlen);
        if (alpnlen != 2 || memcmp(alpn, "h2", 2) != 0) {
            sim_errf(err, errlen, "%s did not agree to HTTP/2 (ALPN)", h->authority);
            conn_close(c, NULL);
            return -1;
        }
    }
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    nghttp2_session_client_new(&c->session, callbacks(), c);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 2);
    c->dead = false;
    return 0;
}

/* Fail every stream still open on the connection and release it. */
static void conn_close(h2_conn_t *c, const char *why)
{
    while (c->open) {
        h2_stream_t *st = c->open;
        unlink_stream(c, st);
        st->done(st->ud, 0, NULL, 0, why ? why : "connection closed");
        free(st->resp);
        free(st);
    }
    if (c->session) {
        nghttp2_session_del(c->session);
        c->session = NULL;
    }
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd > 0) close(c->fd);
    c->fd = -1;
    free(c->out);
    c->out = NULL;
    c->outlen = c->outoff = 0;
    c->dead = true;
}

sim_h2_t *sim_h2_new(const char *url, int nconns, const char *cacert, char *err, size_t errlen)
{
    sim_h2_t *h = calloc(1, sizeof *h);
    if (!h) abort();
    const char *p = strstr(url, "://");
    if (!p || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        sim_errf(err, errlen, "%s: not an http(s) URL", url);
        free(h);
        return NULL;
    }
    h->tls = url[4] == 's';
    snprintf(h->scheme, sizeof h->scheme, "%s", h->tls ? "https" : "http");
    p += 3;
    size_t alen = strcspn(p, "/?#");
    snprintf(h->authority, sizeof h->authority, "%.*s", (int)alen, p);
    /* host[:port], with [v6] brackets */
    const char *host = h->authority, *colon;
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        snprintf(h->host, sizeof h->host, "%.*s", end ? (int)(end - host - 1) : 0, host + 1);
        colon = end ? strchr(end, ':') : NULL;
    } else {
        colon = strrchr(host, ':');
        snprintf(h->host, sizeof h->host, "%.*s", colon ? (int)(colon - host) : (int)strlen(host), host);
    }
    snprintf(h->port, sizeof h->port, "%s", colon ? colon + 1 : (h->tls ? "443" : "80"));
    if (h->tls) {
        h->ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_mode(h->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        static const unsigned char alpn[] = {2, 'h', '2'};
        SSL_CTX_set_alpn_protos(h->ctx, alpn, sizeof alpn);
        SSL_CTX_set_verify(h->ctx, SSL_VERIFY_PEER, NULL);
        if ((cacert && *cacert ? SSL_CTX_load_verify_locations(h->ctx, cacert, NULL)
                               : SSL_CTX_set_default_verify_paths(h->ctx)) != 1) {
            sim_errf(err, errlen, "%s: cannot load CA certificates", cacert ? cacert : "system store");
            SSL_CTX_free(h->ctx);
            free(h);
            return NULL;
        }
    }
    h->nconns = nconns > 0 ? nconns : 1;
    h->conns = calloc((size_t)h->nconns, sizeof *h->conns);
    if (!h->conns) abort();
    for (int i = 0; i < h->nconns; i++) {
        h->conns[i].fd = -1;
        h->conns[i].owner = h;
    }
    return h;
}

void sim_h2_free(sim_h2_t *h)
{
    if (!h) return;
    for (int i = 0; i < h->nconns; i++)
        conn_close(&h->conns[i], "client shutting down");
    free(h->conns);
    SSL_CTX_free(h->ctx);
    free(h);
}

int sim_h2_in_flight(const sim_h2_t *h)
{
    return h->in_flight;
}

#define NV(n, v)                                                                                             \
    {                                                                                                        \
        (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE                           \
    }

int sim_h2_submit(sim_h2_t *h, int i, const char *method, const char *path, const char *const *headers,
                  const void *body, size_t len, sim_h2_done_fn done, void *ud, char *err, size_t errlen)
{
    h2_conn_t *c = &h->conns[i];
    if (!c->session || c->dead) {
        sim_errf(err, errlen, "connection %d is not open", i);
        return -1;
    }
    nghttp2_nv nva[32];
    size_t n = 0;
    char clen[32];
    snprintf(clen, sizeof clen, "%zu", len);
    nva[n++] = (nghttp2_nv)NV(":method", method);
    nva[n++] = (nghttp2_nv)NV(":scheme", h->scheme);
    nva[n++] = (nghttp2_nv)NV(":authority", h->authority);
    nva[n++] = (nghttp2_nv)NV(":path", path);
    if (body) nva[n++] = (nghttp2_nv)NV("content-length", clen);
    for (size_t k = 0; headers && headers[k] && headers[k + 1] && n < 32; k += 2)
        nva[n++] = (nghttp2_nv)NV(headers[k], headers[k + 1]);
    h2_stream_t *st = calloc(1, sizeof *st);
    if (!st) abort();
    st->done = done;
    st->ud = ud;
    st->body = body;
    st->len = len;
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(c->session, NULL, nva, n, body ? &prd : NULL, st);
    if (id < 0) {
        sim_errf(err, errlen, "nghttp2_submit_request: %s", nghttp2_strerror(id));
        free(st);
        return -1;
    }
    st->next = c->open;
    if (c->open) c->open->prev = st;
    c->open = st;
    h->in_flight++;
    return 0;
}

/* Move nghttp2's output to the socket; false when the connection broke. */
static bool flush(h2_conn_t *c)
{
    for (;;) {
        if (c->outoff == c->outlen) {
            const uint8_t *data = NULL;
            ssize_t n = nghttp2_session_mem_send(c->session, &data);
            if (n < 0) return false;
            if (n == 0) return true;
            free(c->out);
            c->out = malloc((size_t)n);
            if (!c->out) abort();
            memcpy(c->out, data, (size_t)n);
            c->outlen = (size_t)n;
            c->outoff = 0;
        }
        size_t left = c->outlen - c->outoff;
        ssize_t w;
        if (c->ssl) {
            int r = SSL_write(c->ssl, c->out + c->outoff, (int)left);
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ;
            }
            w = r;
        } else {
            w = send(c->fd, c->out + c->outoff, left, MSG_NOSIGNAL);
            if (w < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        }
        c->outoff += (size_t)w;
    }
}

/* Feed what the socket has to nghttp2; false when the connection ended. */
static bool drain(h2_conn_t *c)
{
    unsigned char buf[65536];
    for (;;) {
        ssize_t r;
        if (c->ssl) {
            int n = SSL_read(c->ssl, buf, sizeof buf);
            if (n <= 0) {
                int e = SSL_get_error(c->ssl, n);
                return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
            }
            r = n;
        } else {
            r = recv(c->fd, buf, sizeof buf, 0);
            if (r < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
            if (r == 0) return false;
        }
        if (nghttp2_session_mem_recv(c->session, buf, (size_t)r) < 0) return false;
    }
}

int sim_h2_run(sim_h2_t *h, int timeout_ms)
{
    struct pollfd *pfd = calloc((size_t)h->nconns, sizeof *pfd);
    if (!pfd) abort();
    for (int i = 0; i < h->nconns; i++) {
        h2_conn_t *c = &h->conns[i];
        pfd[i].fd = -1;
        if (!c->session || c->dead) continue;
        if (!flush(c)) {
            conn_close(c, "connection lost while sending");
            continue;
        }
        pfd[i].fd = c->fd;
        pfd[i].events = POLLIN;
        if (c->outoff < c->outlen || nghttp2_session_want_write(c->session)) pfd[i].events |= POLLOUT;
    }
    int r = poll(pfd, (nfds_t)h->nconns, timeout_ms);
    for (int i = 0; r > 0 && i < h->nconns; i++) {
        h2_conn_t *c = &h->conns[i];
        if (pfd[i].fd < 0 || !pfd[i].revents || !c->session) continue;
        if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) && !drain(c)) {
            conn_close(c, "connection closed by the server");
            continue;
        }
        if (!flush(c))
            conn_close(c, "connection lost while sending");
        else if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session))
            conn_close(c, "HTTP/2 session ended (GOAWAY)");
    }
    free(pfd);
    return h->in_flight;
}

bool sim_h2_usable(const sim_h2_t *h, int i)
{
    return h->conns[i].session && !h->conns[i].dead;
}
