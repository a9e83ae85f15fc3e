/* APNs client: HTTP/2 (nghttp2 client session, memory I/O) over TLS (libevent's
 * OpenSSL bufferevents) on the worker's event loop.
 *
 * A push is in exactly one list at a time:
 *   queue     waiting for a stream on the current connection
 *   inflight  (of a connection) sent, answer not complete yet
 *   waiting   backing off after a 429/5xx, on its own timer
 *   done      answered or given up, to be settled at a safe point
 * and in the token hash from lmdm_apns_push until its final callback: that is
 * what coalesces pushes for the same device.
 *
 * Nothing re-enters: nghttp2 callbacks only move pushes between lists; the kick
 * event (a safe point of the loop) settles answers, runs the caller's callback
 * and submits queued pushes; closed connections are freed by the reap event. */
#include "lmdm/apns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "lmdm/log.h"

#define MAX_PENDING 100000      /* pushes pending at once; more -> LMDM_ERR_BUSY */
#define MAX_ATTEMPTS 5          /* per push, and connection attempts in a row */
#define JWT_REFRESH_S (50 * 60) /* APNs rejects tokens older than 1 h ... */
#define JWT_MIN_AGE_S (20 * 60) /* ... and updates more often than every 20 min */
#define BACKOFF_DEFAULT_MS 1000
#define BACKOFF_MAX_MS (60 * 1000)
#define CONNECT_TIMEOUT_MS (10 * 1000)    /* DNS + TCP + TLS + the server's SETTINGS */
#define ANSWER_TIMEOUT_MS (30 * 1000)     /* requests in flight and nothing read for this long */
#define PING_INTERVAL_MS (10 * 60 * 1000) /* idle connection: prove it is still alive */
#define STREAMS_CAP 1000                  /* our own bound on concurrent streams */
#define TOKEN_MIN 64
#define TOKEN_MAX 200
#define MAGIC_MAX 256
#define TOPIC_MAX 255
#define ANSWER_MAX 512 /* APNs error bodies are ~60 bytes; the rest is dropped */
#define REASON_MAX 128

typedef enum { P_QUEUED, P_INFLIGHT, P_WAITING, P_DONE } push_state_t;

typedef struct push {
    struct push *prev, *next; /* in the list of its state */
    struct push *hnext;       /* token hash chain */
    lmdm_apns_t *a;
    push_state_t state;
    char *token; /* lower-case hex */
    char *topic; /* NULL: cfg->apns_topic */
    char *body;  /* {"mdm":"<PushMagic>"} */
    size_t body_len, body_off;
    int attempts; /* answers 429/5xx and lost requests so far */
    int status;   /* :status of the answer; 0 = none (yet) */
    char reason[REASON_MAX];
    char *answer; /* response body, allocated when one arrives */
    size_t answer_len;
    unsigned jwt_gen;         /* JWT it was last sent with */
    unsigned jwt_retried : 1; /* already resent once after ExpiredProviderToken */
    unsigned give_up : 1;     /* settle as a final failure with status 0 */
    struct event *timer;      /* backoff; created on first use */
} push_t;

typedef struct plist {
    push_t *head, *tail;
    size_t n;
} plist_t;

typedef enum {
    C_RESOLVING,  /* waiting for DNS */
    C_CONNECTING, /* TCP connect */
    C_TLS,        /* TLS handshake */
    C_HANDSHAKE,  /* TLS up with ALPN h2; waiting for the server's SETTINGS */
    C_READY,      /* takes new requests */
    C_DRAINING,   /* GOAWAY received: finishes what it has, takes nothing new */
    C_CLOSED,     /* on the dead list, freed by the reap event */
} conn_state_t;

typedef struct apns_conn apns_conn_t;

/* The DNS callback's argument; outlives a connection closed while resolving
 * (the resolver calls back once more, with EVUTIL_EAI_CANCEL). */
typedef struct dns_ctx {
    apns_conn_t *c;
} dns_ctx_t;

struct apns_conn {
    apns_conn_t *next; /* in a->conns or a->dead */
    lmdm_apns_t *a;
    unsigned long long id;
    conn_state_t state;
    int fd; /* while connecting; then owned by bev */
    struct event *connect_ev;
    struct bufferevent *bev;
    nghttp2_session *s;
    plist_t inflight;
    struct event *timer;
    struct evutil_addrinfo *addrs, *addr; /* resolved addresses, the one being tried */
    dns_ctx_t *dns;
    struct evdns_getaddrinfo_request *dns_req;
    char last_error[128]; /* of the last address tried */
    unsigned ping_sent : 1;
    unsigned deadline_set : 1; /* the timer is an answer deadline, not the idle PING */
};

struct lmdm_apns {
    struct event_base *base;
    const lmdm_config_t *cfg;
    lmdm_apns_result_cb cb;
    void *cb_arg;
    char host[256];
    char port[8];
    char authority[272];
    int host_is_ip;
    int token_auth;
    EVP_PKEY *key; /* token auth: the signing key */
    char *bearer;  /* "bearer <JWT>" */
    time_t jwt_iat;
    unsigned jwt_gen;
    unsigned jwt_stale : 1; /* APNs said ExpiredProviderToken: make a new one */
    unsigned dns_leaked : 1;
    SSL_CTX *ctx;
    struct evdns_base *dns;
    apns_conn_t *conns; /* not closed; `conn` is the one taking new requests */
    apns_conn_t *conn;
    apns_conn_t *dead;
    plist_t queue, waiting, done;
    push_t **buckets;
    size_t nbuckets, npending;
    int conn_failures; /* connections in a row that failed before becoming ready */
    int backoff_ms;
    struct event *kick_ev, *reconnect_ev, *reap_ev;
    unsigned long long next_conn_id;
    lmdm_apns_stats_t st;
};

static void conn_close(apns_conn_t *c, const char *reason);
static void close_fd(apns_conn_t *c);
static void conn_open(lmdm_apns_t *a);
static void conn_flush(apns_conn_t *c);
static void connect_next(apns_conn_t *c);

/* ---- push lists and the token hash -------------------------------------- */

static void pl_append(plist_t *l, push_t *p)
{
    p->next = NULL;
    p->prev = l->tail;
    if (l->tail)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
    l->n++;
}

static void pl_prepend(plist_t *l, push_t *p)
{
    p->prev = NULL;
    p->next = l->head;
    if (l->head)
        l->head->prev = p;
    else
        l->tail = p;
    l->head = p;
    l->n++;
}

static void pl_remove(plist_t *l, push_t *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        l->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        l->tail = p->prev;
    p->prev = p->next = NULL;
    l->n--;
}

static push_t *pl_pop(plist_t *l)
{
    push_t *p = l->head;
    if (p) pl_remove(l, p);
    return p;
}

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static push_t *hash_find(const lmdm_apns_t *a, const char *token)
{
    for (push_t *p = a->buckets[hash_str(token) & (a->nbuckets - 1)]; p; p = p->hnext)
        if (strcmp(p->token, token) == 0) return p;
    return NULL;
}

static void hash_insert(lmdm_apns_t *a, push_t *p)
{
    if (a->npending >= a->nbuckets) {
        size_t n = a->nbuckets * 2;
        push_t **b = lmdm_xcalloc(n, sizeof(*b));
        for (size_t i = 0; i < a->nbuckets; i++) {
            for (push_t *q = a->buckets[i], *next; q; q = next) {
                next = q->hnext;
                size_t k = hash_str(q->token) & (n - 1);
                q->hnext = b[k];
                b[k] = q;
            }
        }
        free(a->buckets);
        a->buckets = b;
        a->nbuckets = n;
    }
    size_t k = hash_str(p->token) & (a->nbuckets - 1);
    p->hnext = a->buckets[k];
    a->buckets[k] = p;
    a->npending++;
}

static void hash_remove(lmdm_apns_t *a, push_t *p)
{
    for (push_t **pp = &a->buckets[hash_str(p->token) & (a->nbuckets - 1)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == p) {
            *pp = p->hnext;
            a->npending--;
            return;
        }
    }
}

static void push_free(push_t *p)
{
    if (p->timer) event_free(p->timer);
    free(p->token);
    free(p->topic);
    free(p->body);
    free(p->answer);
    free(p);
}

static void kick(lmdm_apns_t *a)
{
    event_active(a->kick_ev, 0, 0);
}

static void queue_front(lmdm_apns_t *a, push_t *p)
{
    p->state = P_QUEUED;
    pl_prepend(&a->queue, p);
}

static void to_done(lmdm_apns_t *a, push_t *p)
{
    p->state = P_DONE;
    pl_append(&a->done, p);
    kick(a);
}

static int backoff_delay(const lmdm_apns_t *a, int n)
{
    long ms = a->backoff_ms;
    for (int i = 1; i < n && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : (int)ms;
}

/* Server-controlled text goes into logs: keep it printable. */
static void set_reason(push_t *p, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 1 < sizeof(p->reason); i++)
        p->reason[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    p->reason[i] = '\0';
}

/* ---- JWT (ES256) ------------------------------------------------------- */

static void openssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "unknown OpenSSL error");
    ERR_clear_error();
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1; /* a daemon cannot prompt: encrypted keys are refused */
}

static char *b64url(const unsigned char *in, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = lmdm_xmalloc(n / 3 * 4 + 5);
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tbl[v >> 18 & 63];
        out[o++] = tbl[v >> 12 & 63];
        out[o++] = tbl[v >> 6 & 63];
        out[o++] = tbl[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = tbl[v >> 18 & 63];
        out[o++] = tbl[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = tbl[v >> 18 & 63];
        out[o++] = tbl[v >> 12 & 63];
        out[o++] = tbl[v >> 6 & 63];
    }
    out[o] = '\0'; /* JWT uses base64url without padding */
    return out;
}

static int load_key(const char *file, EVP_PKEY **out, char *errbuf, size_t errlen)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        int e = errno;
        snprintf(errbuf, errlen, "cannot open APNs key %s: %s", file, strerror(e));
        return e == ENOENT ? LMDM_ERR_NOT_FOUND : LMDM_ERR_IO;
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, no_password, NULL);
    fclose(f);
    if (!k) {
        char why[200];
        openssl_reason(why, sizeof(why));
        snprintf(errbuf, errlen, "APNs key %s is not an unencrypted PEM private key: %s", file, why);
        return LMDM_ERR_INVALID;
    }
    char group[64] = "";
    size_t glen = 0;
    if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC || !EVP_PKEY_get_group_name(k, group, sizeof(group), &glen) ||
        (OBJ_sn2nid(group) != NID_X9_62_prime256v1 && EC_curve_nist2nid(group) != NID_X9_62_prime256v1)) {
        snprintf(errbuf, errlen, "APNs key %s is not an EC P-256 key (APNs token keys are ES256)", file);
        EVP_PKEY_free(k);
        ERR_clear_error();
        return LMDM_ERR_INVALID;
    }
    *out = k;
    return 0;
}

static char *json_compact(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    return s;
}

static int sign_jwt(EVP_PKEY *key, const char *kid, const char *iss, long iat, char **out, char *errbuf,
                    size_t errlen)
{
    int rv = LMDM_ERR_TLS;
    char *hdr = json_compact(json_pack("{s:s, s:s}", "alg", "ES256", "kid", kid));
    char *claims = json_compact(json_pack("{s:s, s:I}", "iss", iss, "iat", (json_int_t)iat));
    char *h64 = NULL, *c64 = NULL, *s64 = NULL, *input = NULL;
    unsigned char *der = NULL;
    ECDSA_SIG *sig = NULL;
    EVP_MD_CTX *md = NULL;
    if (!hdr || !claims) {
        snprintf(errbuf, errlen, "APNs key id or team id is not valid UTF-8");
        rv = LMDM_ERR_INVALID;
        goto done;
    }
    h64 = b64url((const unsigned char *)hdr, strlen(hdr));
    c64 = b64url((const unsigned char *)claims, strlen(claims));
    size_t ilen = strlen(h64) + 1 + strlen(c64);
    input = lmdm_xmalloc(ilen + 1);
    snprintf(input, ilen + 1, "%s.%s", h64, c64);

    size_t dlen = 0;
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, NULL, &dlen, (const unsigned char *)input, ilen) != 1)
        goto ossl_fail;
    der = lmdm_xmalloc(dlen);
    if (EVP_DigestSign(md, der, &dlen, (const unsigned char *)input, ilen) != 1) goto ossl_fail;
    /* OpenSSL gives a DER ECDSA-Sig-Value; JWS wants r || s, 32 bytes each. */
    const unsigned char *pp = der;
    sig = d2i_ECDSA_SIG(NULL, &pp, (long)dlen);
    if (!sig) goto ossl_fail;
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(sig, &r, &s);
    unsigned char rs[64];
    if (BN_bn2binpad(r, rs, 32) != 32 || BN_bn2binpad(s, rs + 32, 32) != 32) goto ossl_fail;
    s64 = b64url(rs, sizeof(rs));
    size_t olen = ilen + 1 + strlen(s64);
    *out = lmdm_xmalloc(olen + 1);
    snprintf(*out, olen + 1, "%s.%s", input, s64);
    rv = 0;
    goto done;
ossl_fail : {
    char why[200];
    openssl_reason(why, sizeof(why));
    snprintf(errbuf, errlen, "cannot sign the APNs JWT: %s", why);
}
done:
    EVP_MD_CTX_free(md);
    ECDSA_SIG_free(sig);
    free(der);
    free(hdr);
    free(claims);
    free(h64);
    free(c64);
    free(s64);
    free(input);
    return rv;
}

int lmdm_apns_make_jwt(const char *key_file, const char *key_id, const char *team_id, long iat, char **out,
                       char *errbuf, size_t errlen)
{
    *out = NULL;
    if (!key_file || !*key_file || !key_id || !*key_id || !team_id || !*team_id) {
        snprintf(errbuf, errlen, "APNs token auth needs apns_key_file, apns_key_id and apns_team_id");
        return LMDM_ERR_INVALID;
    }
    EVP_PKEY *key = NULL;
    int rv = load_key(key_file, &key, errbuf, errlen);
    if (rv) return rv;
    rv = sign_jwt(key, key_id, team_id, iat, out, errbuf, errlen);
    EVP_PKEY_free(key);
    return rv;
}

/* The bearer token for a request: the cached JWT, or a fresh one when it is
 * 50 minutes old, when APNs called it expired, or when the clock went back. */
static int current_bearer(lmdm_apns_t *a)
{
    time_t now = time(NULL);
    if (a->bearer && !a->jwt_stale && now >= a->jwt_iat && now - a->jwt_iat < JWT_REFRESH_S) return 0;
    char err[256], *jwt = NULL;
    if (sign_jwt(a->key, a->cfg->apns_key_id, a->cfg->apns_team_id, (long)now, &jwt, err, sizeof(err)) != 0) {
        lmdm_error("apns: %s", err);
        return a->bearer ? 0 : LMDM_ERR_TLS; /* keep using the old one while it lasts */
    }
    size_t n = strlen(jwt) + 8;
    free(a->bearer);
    a->bearer = lmdm_xmalloc(n);
    snprintf(a->bearer, n, "bearer %s", jwt);
    free(jwt);
    a->jwt_iat = now;
    a->jwt_gen++;
    a->jwt_stale = 0;
    lmdm_debug("apns: new provider token (generation %u)", a->jwt_gen);
    return 0;
}

/* ---- settling answers ------------------------------------------------------ */

static void finish(lmdm_apns_t *a, push_t *p, int status, const char *reason)
{
    hash_remove(a, p); /* before the callback: it may push this token again */
    if (status == 200) {
        a->st.delivered++;
        lmdm_debug("apns: push %.8s... delivered", p->token);
    } else {
        a->st.failed++;
        if (status == 410)
            lmdm_info("apns: device token %.8s... is no longer valid (410 %s)", p->token, reason);
        else
            lmdm_warn("apns: push %.8s... failed: %d %s", p->token, status, reason);
    }
    if (a->cb) a->cb(a->cb_arg, p->token, status, reason);
    push_free(p);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    push_t *p = arg;
    lmdm_apns_t *a = p->a;
    pl_remove(&a->waiting, p);
    a->st.retries++;
    queue_front(a, p);
    kick(a);
}

static void settle(lmdm_apns_t *a, push_t *p)
{
    if (p->give_up) {
        finish(a, p, 0, p->reason);
        return;
    }
    if (p->answer_len) {
        json_t *j = json_loadb(p->answer, p->answer_len, 0, NULL);
        const char *r = json_string_value(json_object_get(j, "reason"));
        if (r) set_reason(p, r);
        json_decref(j);
    }
    int st = p->status;
    if (!p->reason[0]) {
        if (st == 200)
            set_reason(p, "Success");
        else
            snprintf(p->reason, sizeof(p->reason), "HTTP %d", st);
    }
    if (st == 403 && a->token_auth && strcmp(p->reason, "ExpiredProviderToken") == 0 && !p->jwt_retried) {
        /* Once per push. A new token is made if the one it carried is still
         * the current one (others answered the same way then share the new
         * one) and is old enough: APNs refuses updates more often than every
         * 20 minutes, and a younger token called expired means a wrong clock,
         * which a new token would not fix. */
        p->jwt_retried = 1;
        long age = (long)(time(NULL) - a->jwt_iat);
        if (p->jwt_gen == a->jwt_gen && age >= JWT_MIN_AGE_S)
            a->jwt_stale = 1;
        else if (p->jwt_gen == a->jwt_gen)
            lmdm_warn("apns: APNs calls a %ld s old provider token expired; is this host's clock right?",
                      age);
        lmdm_info("apns: provider token expired; sending push %.8s... again", p->token);
        a->st.retries++;
        queue_front(a, p);
        return;
    }
    if (st == 429 || st >= 500) {
        p->attempts++;
        if (p->attempts >= MAX_ATTEMPTS) {
            finish(a, p, st, p->reason);
            return;
        }
        int ms = backoff_delay(a, p->attempts);
        lmdm_debug("apns: push %.8s...: %d %s, retry in %d ms", p->token, st, p->reason, ms);
        if (!p->timer) p->timer = evtimer_new(a->base, retry_cb, p);
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        p->state = P_WAITING;
        pl_append(&a->waiting, p);
        evtimer_add(p->timer, &tv);
        return;
    }
    finish(a, p, st, p->reason);
}

/* ---- the connection's HTTP/2 session ----------------------------------- */

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    push_t *p = src->ptr;
    size_t n = p->body_len - p->body_off;
    if (n > len) n = len;
    memcpy(buf, p->body + p->body_off, n);
    p->body_off += n;
    if (p->body_off == p->body_len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    apns_conn_t *c = ud;
    if (c->state == C_CLOSED || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_RESPONSE)
        return 0;
    push_t *p = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (p && namelen == 7 && memcmp(name, ":status", 7) == 0 && valuelen == 3) {
        int st = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
        if (st >= 200 && st <= 599) p->status = st;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                         void *ud)
{
    apns_conn_t *c = ud;
    push_t *p = c->state == C_CLOSED ? NULL : nghttp2_session_get_stream_user_data(s, id);
    if (!p) return 0;
    if (!p->answer) p->answer = lmdm_xmalloc(ANSWER_MAX);
    size_t room = ANSWER_MAX - p->answer_len;
    if (len > room) len = room;
    memcpy(p->answer + p->answer_len, data, len);
    p->answer_len += len;
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    apns_conn_t *c = ud;
    lmdm_apns_t *a = c->a;
    if (c->state == C_CLOSED) return 0;
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
        if (c->state == C_HANDSHAKE) {
            c->state = C_READY;
            a->st.connections++;
            a->conn_failures = 0;
            evtimer_del(c->timer);
            lmdm_debug("apns: conn %llu ready (server allows %u concurrent streams)", c->id,
                       nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS));
        }
        kick(a); /* the stream limit may have grown */
    } else if (f->hd.type == NGHTTP2_GOAWAY) {
        char why[REASON_MAX] = "";
        size_t n = f->goaway.opaque_data_len < sizeof(why) - 1 ? f->goaway.opaque_data_len : sizeof(why) - 1;
        for (size_t i = 0; i < n; i++) {
            uint8_t ch = f->goaway.opaque_data[i];
            why[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
        }
        lmdm_info(
            "apns: conn %llu: GOAWAY from APNs (%s%s%s); finishing %zu request(s), new ones go to a new "
            "connection",
            c->id, nghttp2_http2_strerror(f->goaway.error_code), n ? ": " : "", why, c->inflight.n);
        c->state = C_DRAINING;
        if (a->conn == c) a->conn = NULL;
        kick(a);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    apns_conn_t *c = ud;
    lmdm_apns_t *a = c->a;
    push_t *p = c->state == C_CLOSED ? NULL : nghttp2_session_get_stream_user_data(s, id);
    if (!p) return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    pl_remove(&c->inflight, p);
    if (p->status) {
        to_done(a, p);
        return 0;
    }
    if (code == NGHTTP2_REFUSED_STREAM && c->state == C_DRAINING) {
        /* Beyond the GOAWAY's last stream: not processed, so sent again on the
         * next connection without counting an attempt. */
        a->st.retries++;
        queue_front(a, p);
        kick(a);
        return 0;
    }
    /* Refused or reset otherwise: counted, so that a server refusing every
     * stream cannot keep us busy forever. */
    p->attempts++;
    snprintf(p->reason, sizeof(p->reason), "stream reset by APNs (%s)", nghttp2_http2_strerror(code));
    if (p->attempts >= MAX_ATTEMPTS) {
        p->give_up = 1;
        to_done(a, p);
    } else {
        a->st.retries++;
        queue_front(a, p);
        kick(a);
    }
    return 0;
}

static nghttp2_session_callbacks *cbs;
static pthread_once_t cbs_once = PTHREAD_ONCE_INIT;

static void make_callbacks(void)
{
    if (nghttp2_session_callbacks_new(&cbs) != 0) abort();
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
}

/* One callback table for the process: sessions copy it when created. */
static nghttp2_session_callbacks *callbacks(void)
{
    pthread_once(&cbs_once, make_callbacks);
    return cbs;
}

/* ---- connections ----------------------------------------------------------- */

/* An established connection's one timer: while something is awaited (answers,
 * a PING), a deadline that only reading moves; when idle, the next PING.
 * Sending more does not move a running deadline: a server that takes
 * requests but never answers is noticed even under steady traffic. */
static void conn_arm_timer(apns_conn_t *c, int after_read)
{
    if (c->state == C_CLOSED || c->state < C_READY) return; /* the connect timeout runs on */
    int awaiting = c->inflight.n > 0 || c->ping_sent || c->state == C_DRAINING;
    if (!after_read && awaiting && c->deadline_set) return;
    int ms = awaiting ? ANSWER_TIMEOUT_MS : PING_INTERVAL_MS;
    c->deadline_set = awaiting;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    apns_conn_t *c = arg;
    if (c->state < C_READY) {
        conn_close(c, "timed out connecting");
    } else if (c->inflight.n > 0 || c->ping_sent || c->state == C_DRAINING) {
        conn_close(c, "no answer from APNs in time");
    } else {
        /* Idle: a PING keeps middleboxes from dropping the connection and
         * finds a dead one before a push has to wait for it. */
        nghttp2_submit_ping(c->s, NGHTTP2_FLAG_NONE, NULL);
        c->ping_sent = 1;
        conn_flush(c);
        conn_arm_timer(c, 0);
    }
}

static int submit_one(apns_conn_t *c, push_t *p)
{
    lmdm_apns_t *a = c->a;
    if (a->token_auth && current_bearer(a) != 0) {
        snprintf(p->reason, sizeof(p->reason), "cannot make the APNs provider token");
        p->give_up = 1;
        to_done(a, p);
        return 0;
    }
    char path[16 + TOKEN_MAX], clen[24];
    snprintf(path, sizeof(path), "/3/device/%s", p->token);
    snprintf(clen, sizeof(clen), "%zu", p->body_len);
    const char *topic = p->topic ? p->topic : a->cfg->apns_topic;
    nghttp2_nv nv[10];
    size_t n = 0;
#define NV(k, v)                                                                                             \
    (nv[n++] = (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), NGHTTP2_NV_FLAG_NONE})
    NV(":method", "POST");
    NV(":scheme", "https");
    NV(":authority", a->authority);
    NV(":path", path);
    NV("apns-topic", topic);
    NV("apns-push-type", "mdm");
    NV("apns-priority", "10");
    NV("content-type", "application/json");
    NV("content-length", clen);
    if (a->token_auth) NV("authorization", a->bearer);
#undef NV
    p->body_off = 0;
    p->status = 0;
    p->reason[0] = '\0';
    p->answer_len = 0;
    nghttp2_data_provider prd = {.source.ptr = p, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(c->s, NULL, nv, n, &prd, p);
    if (id < 0) return id;
    p->state = P_INFLIGHT;
    p->jwt_gen = a->jwt_gen;
    pl_append(&c->inflight, p);
    a->st.sent++;
    lmdm_debug("apns: push %.8s... sent on conn %llu stream %d (attempt %d)", p->token, c->id, id,
               p->attempts + 1);
    return 0;
}

static void conn_submit(apns_conn_t *c)
{
    lmdm_apns_t *a = c->a;
    uint32_t limit = nghttp2_session_get_remote_settings(c->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    if (limit > STREAMS_CAP) limit = STREAMS_CAP;
    while (a->queue.n && c->inflight.n < limit && c->state == C_READY) {
        push_t *p = pl_pop(&a->queue);
        int rv = submit_one(c, p);
        if (rv != 0) {
            /* Stream ids exhausted (or no memory): this connection takes no more. */
            lmdm_info("apns: conn %llu takes no new streams (%s); opening another", c->id,
                      nghttp2_strerror(rv));
            queue_front(a, p);
            nghttp2_submit_goaway(c->s, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
            c->state = C_DRAINING;
            if (a->conn == c) a->conn = NULL;
            kick(a);
            break;
        }
    }
    conn_flush(c);
    conn_arm_timer(c, 0);
}

static void conn_flush(apns_conn_t *c)
{
    if (c->state == C_CLOSED || !c->s) return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->s, &data);
        if (n < 0) {
            conn_close(c, nghttp2_strerror((int)n));
            return;
        }
        if (n == 0) break;
        evbuffer_add(out, data, (size_t)n);
    }
    if (!nghttp2_session_want_read(c->s) && !nghttp2_session_want_write(c->s))
        conn_close(c, "HTTP/2 session finished");
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    apns_conn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->state == C_CLOSED || !c->s) return; /* before h2 starts, bytes wait in the buffer */
    c->ping_sent = 0;
    while (c->state != C_CLOSED) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0) break;
        ssize_t n = nghttp2_session_mem_recv(c->s, v.iov_base, v.iov_len);
        if (n < 0) {
            char why[160];
            snprintf(why, sizeof(why), "HTTP/2 error from APNs: %s", nghttp2_strerror((int)n));
            conn_flush(c); /* nghttp2 may have queued a GOAWAY */
            conn_close(c, why);
            return;
        }
        evbuffer_drain(in, (size_t)n);
    }
    conn_flush(c);
    conn_arm_timer(c, 1);
}

static void on_connected(apns_conn_t *c)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    const unsigned char *alpn = NULL;
    unsigned int alen = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alen);
    if (alen != 2 || memcmp(alpn, "h2", 2) != 0) {
        conn_close(c, "the server did not agree to HTTP/2 (ALPN h2)");
        return;
    }
    if (nghttp2_session_client_new(&c->s, callbacks(), c) != 0) {
        c->s = NULL;
        conn_close(c, "cannot create an HTTP/2 session");
        return;
    }
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, LMDM_ARRAY_LEN(iv));
    c->state = C_HANDSHAKE;
    lmdm_debug("apns: conn %llu: TLS %s with %s, waiting for SETTINGS", c->id, SSL_get_version(ssl),
               c->a->host);
    conn_flush(c);
    if (c->state != C_CLOSED && evbuffer_get_length(bufferevent_get_input(c->bev))) read_cb(c->bev, c);
}

/* Describes how an established or handshaking TLS connection failed. */
static void describe_failure(apns_conn_t *c, short what, char *buf, size_t len)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e, real = 0;
    /* libevent also queues SSL_get_error() codes here (library 0): not OpenSSL's. */
    while ((e = bufferevent_get_openssl_error(c->bev)))
        if (ERR_GET_LIB(e) != 0) real = e;
    if (c->state == C_TLS && vr != X509_V_OK) {
        snprintf(buf, len, "cannot verify the APNs server certificate for %s: %s", c->a->host,
                 X509_verify_cert_error_string(vr));
    } else if (real) {
        char why[200];
        ERR_error_string_n(real, why, sizeof(why));
        snprintf(buf, len, "TLS error: %s", why);
    } else {
        snprintf(buf, len, "connection closed by the server%s",
                 c->state == C_TLS ? " during the TLS handshake" : "");
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    apns_conn_t *c = arg;
    if (c->state == C_CLOSED) return;
    if (what & BEV_EVENT_CONNECTED) {
        on_connected(c);
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) return;
    char why[512];
    describe_failure(c, what, why, sizeof(why));
    conn_close(c, why);
}

static void start_tls(apns_conn_t *c)
{
    lmdm_apns_t *a = c->a;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    SSL *ssl = SSL_new(a->ctx);
    if (!ssl) {
        conn_close(c, "cannot create a TLS session");
        return;
    }
    if (a->host_is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), a->host);
    } else {
        SSL_set_tlsext_host_name(ssl, a->host); /* SNI */
        SSL_set1_host(ssl, a->host);            /* the certificate must name it */
    }
    /* Deferred callbacks: nothing of ours runs from inside a bufferevent call. */
    c->bev = bufferevent_openssl_socket_new(a->base, c->fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    /* From here the bufferevent owns the socket and the SSL, even when it
     * fails (libevent frees both then, unless it could not allocate at all). */
    c->fd = -1;
    if (!c->bev) {
        conn_close(c, "cannot create a TLS connection");
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->state = C_TLS;
}

static void close_fd(apns_conn_t *c)
{
    if (c->connect_ev) {
        event_free(c->connect_ev);
        c->connect_ev = NULL;
    }
    if (c->fd >= 0) {
        evutil_closesocket(c->fd);
        c->fd = -1;
    }
}

static void tcp_connected_cb(evutil_socket_t fd, short what, void *arg)
{
    apns_conn_t *c = arg;
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    event_free(c->connect_ev);
    c->connect_ev = NULL;
    if (err == 0) {
        start_tls(c);
        return;
    }
    snprintf(c->last_error, sizeof(c->last_error), "%s", strerror(err));
    close_fd(c);
    c->addr = c->addr->ai_next;
    connect_next(c);
}

/* TCP to each resolved address in turn; TLS starts on the first that answers. */
static void connect_next(apns_conn_t *c)
{
    lmdm_apns_t *a = c->a;
    for (; c->addr; c->addr = c->addr->ai_next) {
        c->fd = socket(c->addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            snprintf(c->last_error, sizeof(c->last_error), "socket: %s", strerror(errno));
            continue;
        }
        c->state = C_CONNECTING;
        if (connect(c->fd, c->addr->ai_addr, c->addr->ai_addrlen) == 0 || errno == EINPROGRESS) {
            c->connect_ev = event_new(a->base, c->fd, EV_WRITE, tcp_connected_cb, c);
            event_add(c->connect_ev, NULL); /* the connection's timer bounds the wait */
            return;
        }
        snprintf(c->last_error, sizeof(c->last_error), "%s", strerror(errno));
        close_fd(c);
    }
    conn_close(c, c->last_error[0] ? c->last_error : "no address to connect to");
}

static void dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
    dns_ctx_t *d = arg;
    apns_conn_t *c = d->c;
    free(d);
    if (!c) { /* the connection was closed meanwhile */
        if (res) evutil_freeaddrinfo(res);
        return;
    }
    c->dns = NULL;
    c->dns_req = NULL;
    if (result != 0 || !res) {
        char why[300];
        snprintf(why, sizeof(why), "cannot resolve %s: %s", c->a->host,
                 result ? evutil_gai_strerror(result) : "no address");
        if (res) evutil_freeaddrinfo(res);
        conn_close(c, why);
        return;
    }
    c->addrs = c->addr = res;
    connect_next(c);
}

static void conn_open(lmdm_apns_t *a)
{
    apns_conn_t *c = lmdm_xcalloc(1, sizeof(*c));
    c->a = a;
    c->id = ++a->next_conn_id;
    c->fd = -1;
    c->state = C_RESOLVING;
    c->timer = evtimer_new(a->base, conn_timer_cb, c);
    c->next = a->conns;
    a->conns = c;
    a->conn = c;
    struct timeval tv = {CONNECT_TIMEOUT_MS / 1000, (CONNECT_TIMEOUT_MS % 1000) * 1000};
    evtimer_add(c->timer, &tv);
    lmdm_debug("apns: conn %llu: connecting to %s port %s", c->id, a->host, a->port);

    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
                                    .ai_socktype = SOCK_STREAM,
                                    .ai_protocol = IPPROTO_TCP,
                                    .ai_flags = EVUTIL_AI_NUMERICSERV};
    if (a->host_is_ip) {
        hints.ai_flags |= EVUTIL_AI_NUMERICHOST;
        int rv = evutil_getaddrinfo(a->host, a->port, &hints, &c->addrs);
        if (rv != 0) {
            conn_close(c, evutil_gai_strerror(rv));
            return;
        }
        c->addr = c->addrs;
        connect_next(c);
        return;
    }
    if (!a->dns) a->dns = evdns_base_new(a->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!a->dns) {
        conn_close(c, "cannot set up the DNS resolver");
        return;
    }
    dns_ctx_t *d = lmdm_xcalloc(1, sizeof(*d));
    d->c = c;
    c->dns = d;
    /* May call dns_cb before returning (hosts file, cached answers). */
    struct evdns_getaddrinfo_request *r = evdns_getaddrinfo(a->dns, a->host, a->port, &hints, dns_cb, d);
    if (c->dns) c->dns_req = r;
}

static void detach_dns(apns_conn_t *c)
{
    if (!c->dns) return;
    c->dns->c = NULL; /* dns_cb frees it when the resolver calls back */
    c->dns = NULL;
    if (c->dns_req) evdns_getaddrinfo_cancel(c->dns_req);
    c->dns_req = NULL;
    c->a->dns_leaked = 1; /* see lmdm_apns_free */
}

static void schedule_reconnect(lmdm_apns_t *a, int ms)
{
    if (ms <= 0) {
        kick(a);
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(a->reconnect_ev, &tv);
}

/* Every way a connection ends goes through here. Requests it had sent and
 * not got an answer for are sent again (each loss counts as an attempt). */
static void conn_close(apns_conn_t *c, const char *reason)
{
    lmdm_apns_t *a = c->a;
    if (c->state == C_CLOSED) return;
    int was_ready = c->state == C_READY || c->state == C_DRAINING;
    int graceful = c->state == C_DRAINING && c->inflight.n == 0;
    c->state = C_CLOSED;
    if (c->bev) bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    close_fd(c);
    evtimer_del(c->timer);
    detach_dns(c);
    if (a->conn == c) a->conn = NULL;
    for (apns_conn_t **pp = &a->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    c->next = a->dead;
    a->dead = c;
    event_active(a->reap_ev, 0, 0);

    size_t lost = c->inflight.n;
    push_t *p;
    while ((p = c->inflight.tail)) { /* from the back, so the queue keeps their order */
        pl_remove(&c->inflight, p);
        p->attempts++;
        p->status = 0;
        snprintf(p->reason, sizeof(p->reason), "connection to APNs lost: %s", reason);
        if (p->attempts >= MAX_ATTEMPTS) {
            p->give_up = 1;
            to_done(a, p);
        } else {
            a->st.retries++;
            queue_front(a, p);
        }
    }

    if (was_ready) {
        if (graceful)
            lmdm_debug("apns: conn %llu closed (%s)", c->id, reason);
        else
            lmdm_info("apns: conn %llu closed: %s (%zu request(s) in flight)", c->id, reason, lost);
        if (a->queue.n) schedule_reconnect(a, graceful ? 0 : a->backoff_ms);
    } else {
        a->conn_failures++;
        lmdm_warn("apns: cannot connect to %s port %s: %s (attempt %d of %d)", a->host, a->port, reason,
                  a->conn_failures, MAX_ATTEMPTS);
        if (a->conn_failures >= MAX_ATTEMPTS) {
            a->conn_failures = 0;
            while ((p = pl_pop(&a->queue))) {
                snprintf(p->reason, sizeof(p->reason), "cannot connect to APNs: %s", reason);
                p->give_up = 1;
                to_done(a, p);
            }
        } else if (a->queue.n) {
            schedule_reconnect(a, backoff_delay(a, a->conn_failures));
        }
    }
    kick(a);
}

static void conn_destroy(apns_conn_t *c)
{
    if (c->s) nghttp2_session_del(c->s); /* calls no callbacks */
    if (c->bev) bufferevent_free(c->bev);
    close_fd(c);
    if (c->timer) event_free(c->timer);
    if (c->addrs) evutil_freeaddrinfo(c->addrs);
    free(c);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    lmdm_apns_t *a = arg;
    apns_conn_t *c = a->dead;
    a->dead = NULL;
    while (c) {
        apns_conn_t *next = c->next;
        conn_destroy(c);
        c = next;
    }
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    lmdm_apns_t *a = arg;
    push_t *p;
    while ((p = pl_pop(&a->done)))
        settle(a, p);
    if (!a->queue.n) return;
    if (!a->conn) {
        if (!evtimer_pending(a->reconnect_ev, NULL)) conn_open(a);
        return;
    }
    if (a->conn->state == C_READY) conn_submit(a->conn);
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
    kick(arg);
}

/* ---- public API ------------------------------------------------------------- */

static int parse_url(lmdm_apns_t *a, const char *url, char *errbuf, size_t errlen)
{
    const char *p = url;
    if (strncasecmp(p, "https://", 8) != 0) goto bad;
    p += 8;
    const char *h = p, *hend;
    if (*p == '[') {
        hend = strchr(p, ']');
        if (!hend) goto bad;
        h = p + 1;
        p = hend + 1;
    } else {
        while (*p && *p != ':' && *p != '/')
            p++;
        hend = p;
    }
    size_t hl = (size_t)(hend - h);
    if (hl == 0 || hl >= sizeof(a->host)) goto bad;
    memcpy(a->host, h, hl);
    a->host[hl] = '\0';
    for (size_t i = 0; i < hl; i++) {
        char ch = a->host[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '-' || ch == ':'))
            goto bad;
    }
    long port = 443;
    if (*p == ':') {
        char *end;
        port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535) goto bad;
        p = end;
    }
    if (*p && strcmp(p, "/") != 0) goto bad;
    snprintf(a->port, sizeof(a->port), "%ld", port);
    unsigned char tmp[sizeof(struct in6_addr)];
    a->host_is_ip = inet_pton(AF_INET, a->host, tmp) == 1 || inet_pton(AF_INET6, a->host, tmp) == 1;
    if (strchr(a->host, ':') && !a->host_is_ip) goto bad;
    int v6 = strchr(a->host, ':') != NULL;
    int n = snprintf(a->authority, sizeof(a->authority), "%s%s%s", v6 ? "[" : "", a->host, v6 ? "]" : "");
    if (port != 443) snprintf(a->authority + n, sizeof(a->authority) - (size_t)n, ":%ld", port);
    return 0;
bad:
    snprintf(errbuf, errlen, "apns_url \"%s\" is not https://host[:port]", url);
    return LMDM_ERR_CONFIG;
}

static SSL_CTX *client_ctx(const lmdm_config_t *cfg, int cert_auth, char *errbuf, size_t errlen)
{
    char why[256];
    const char *what = "creating the TLS context", *file = "";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_default_passwd_cb(ctx, no_password);
    if (SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x02h2", 3) != 0) goto fail; /* 0 = success */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cfg->apns_ca_file && *cfg->apns_ca_file) {
        what = "loading apns_ca_file";
        file = cfg->apns_ca_file;
        if (SSL_CTX_load_verify_locations(ctx, cfg->apns_ca_file, NULL) != 1) goto fail;
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        what = "loading the system's CA certificates";
        goto fail;
    }
    if (cert_auth) {
        what = "loading apns_cert";
        file = cfg->apns_cert;
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->apns_cert) != 1) goto fail;
        what = "loading apns_cert_key";
        file = cfg->apns_cert_key;
        if (SSL_CTX_use_PrivateKey_file(ctx, cfg->apns_cert_key, SSL_FILETYPE_PEM) != 1) goto fail;
        what = "apns_cert_key does not match apns_cert";
        if (SSL_CTX_check_private_key(ctx) != 1) goto fail;
    }
    return ctx;
fail:
    openssl_reason(why, sizeof(why));
    snprintf(errbuf, errlen, "%s%s%s: %s", what, *file ? " " : "", file, why);
    SSL_CTX_free(ctx);
    return NULL;
}

static int setting_missing(const char *v)
{
    return !v || !*v;
}

lmdm_apns_t *lmdm_apns_new(struct event_base *base, const lmdm_config_t *cfg, lmdm_apns_result_cb cb,
                           void *cb_arg, char *errbuf, size_t errlen)
{
    const char *auth = cfg->apns_auth ? cfg->apns_auth : "off";
    int token_auth = strcmp(auth, "token") == 0;
    if (!token_auth && strcmp(auth, "certificate") != 0) {
        snprintf(errbuf, errlen, "apns_auth is \"%s\": pushes are off", auth);
        return NULL;
    }
    lmdm_apns_t *a = lmdm_xcalloc(1, sizeof(*a));
    a->base = base;
    a->cfg = cfg;
    a->cb = cb;
    a->cb_arg = cb_arg;
    a->token_auth = token_auth;
    a->backoff_ms = BACKOFF_DEFAULT_MS;
    if (parse_url(a, cfg->apns_url ? cfg->apns_url : "", errbuf, errlen) != 0) goto fail;
    if (token_auth) {
        if (setting_missing(cfg->apns_key_file) || setting_missing(cfg->apns_key_id) ||
            setting_missing(cfg->apns_team_id)) {
            snprintf(errbuf, errlen, "apns_auth = token needs apns_key_file, apns_key_id and apns_team_id");
            goto fail;
        }
        if (load_key(cfg->apns_key_file, &a->key, errbuf, errlen) != 0) goto fail;
        struct stat sb;
        if (stat(cfg->apns_key_file, &sb) == 0 && (sb.st_mode & 077))
            lmdm_warn("apns: key file %s can be read by other users (mode %03o); it should be 600",
                      cfg->apns_key_file, (unsigned)(sb.st_mode & 0777));
        if (current_bearer(a) != 0) { /* proves the key signs */
            snprintf(errbuf, errlen, "cannot sign an APNs provider token with %s", cfg->apns_key_file);
            goto fail;
        }
    } else if (setting_missing(cfg->apns_cert) || setting_missing(cfg->apns_cert_key)) {
        snprintf(errbuf, errlen, "apns_auth = certificate needs apns_cert and apns_cert_key");
        goto fail;
    }
    a->ctx = client_ctx(cfg, !token_auth, errbuf, errlen);
    if (!a->ctx) goto fail;
    a->kick_ev = event_new(base, -1, 0, kick_cb, a);
    a->reconnect_ev = evtimer_new(base, reconnect_cb, a);
    a->reap_ev = event_new(base, -1, 0, reap_cb, a);
    if (!a->kick_ev || !a->reconnect_ev || !a->reap_ev) {
        snprintf(errbuf, errlen, "cannot create events");
        goto fail;
    }
    a->nbuckets = 1024;
    a->buckets = lmdm_xcalloc(a->nbuckets, sizeof(*a->buckets));
    return a;
fail:
    lmdm_apns_free(a);
    return NULL;
}

static void free_list(plist_t *l)
{
    push_t *p;
    while ((p = pl_pop(l)))
        push_free(p);
}

void lmdm_apns_free(lmdm_apns_t *a)
{
    if (!a) return;
    while (a->conns) {
        apns_conn_t *c = a->conns;
        a->conns = c->next;
        detach_dns(c);
        free_list(&c->inflight);
        conn_destroy(c);
    }
    reap_cb(-1, 0, a);
    free_list(&a->queue);
    free_list(&a->waiting);
    free_list(&a->done);
    if (a->kick_ev) event_free(a->kick_ev);
    if (a->reconnect_ev) event_free(a->reconnect_ev);
    if (a->reap_ev) event_free(a->reap_ev);
    /* A resolution cancelled just now still calls back through the resolver
     * later, so the resolver is then left alive (shutdown only, a few KB). */
    if (a->dns && !a->dns_leaked) evdns_base_free(a->dns, 0);
    SSL_CTX_free(a->ctx);
    EVP_PKEY_free(a->key);
    free(a->bearer);
    free(a->buckets);
    free(a);
}

static int valid_header_text(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= max || (unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f) return 0;
    return n > 0;
}

int lmdm_apns_push(lmdm_apns_t *a, const char *token_hex, const char *push_magic, const char *topic)
{
    if (!a || !token_hex || !push_magic) return LMDM_ERR_INVALID;
    char tok[TOKEN_MAX + 1];
    size_t tl = 0;
    for (; token_hex[tl]; tl++) {
        char ch = token_hex[tl];
        if (tl >= TOKEN_MAX) return LMDM_ERR_INVALID;
        if (ch >= 'A' && ch <= 'F')
            ch = (char)(ch - 'A' + 'a');
        else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return LMDM_ERR_INVALID;
        tok[tl] = ch;
    }
    tok[tl] = '\0';
    if (tl < TOKEN_MIN || tl % 2) return LMDM_ERR_INVALID;
    size_t ml = 0;
    for (; push_magic[ml]; ml++)
        if (ml >= MAGIC_MAX || (unsigned char)push_magic[ml] < 0x20 || push_magic[ml] == 0x7f)
            return LMDM_ERR_INVALID;
    if (ml == 0) return LMDM_ERR_INVALID;
    if (topic && !valid_header_text(topic, TOPIC_MAX)) return LMDM_ERR_INVALID;
    if (!topic && !valid_header_text(a->cfg->apns_topic ? a->cfg->apns_topic : "", TOPIC_MAX)) {
        lmdm_warn("apns: no topic for push %.8s... (apns_topic is not set)", tok);
        return LMDM_ERR_INVALID;
    }

    if (hash_find(a, tok)) {
        a->st.coalesced++;
        lmdm_debug("apns: push %.8s... already pending; coalesced", tok);
        return 0;
    }
    if (a->npending >= MAX_PENDING) return LMDM_ERR_BUSY;
    char *body = json_compact(json_pack("{s:s}", "mdm", push_magic));
    if (!body) return LMDM_ERR_INVALID; /* not UTF-8 */

    push_t *p = lmdm_xcalloc(1, sizeof(*p));
    p->a = a;
    p->token = lmdm_xstrdup(tok);
    p->topic = topic ? lmdm_xstrdup(topic) : NULL;
    p->body = body;
    p->body_len = strlen(body);
    hash_insert(a, p);
    p->state = P_QUEUED;
    pl_append(&a->queue, p);
    kick(a);
    lmdm_debug("apns: push %.8s... queued", tok);
    return 0;
}

void lmdm_apns_stats(const lmdm_apns_t *a, lmdm_apns_stats_t *out)
{
    *out = a->st;
}

void lmdm_apns_set_backoff_ms(lmdm_apns_t *a, int initial_ms)
{
    a->backoff_ms = initial_ms > 0 ? initial_ms : 1;
}
