/* Connection layer internals shared by server.c and the two framings
 * (conn_h1.c, conn_h2.c). Not a public header.
 *
 * A connection's state changes only through conn_set_state(); it is destroyed
 * by the worker's reaper at the end of the loop iteration, never inside one of
 * its own callbacks. */
#ifndef LMDM_BROKER_CONN_H
#define LMDM_BROKER_CONN_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include "lmdm/http.h"
#include "lmdm/server.h"

typedef enum {
    CONN_HANDSHAKE, /* TLS handshake in progress */
    CONN_SNIFF,     /* plaintext: deciding between h2c preface and HTTP/1.1 */
    CONN_OPEN,      /* framing chosen, serving requests */
    CONN_LINGER,    /* response written, discarding input before close */
    CONN_CLOSED,    /* waiting for the reaper */
} conn_state_t;

/* What a framing (HTTP/1.1 or HTTP/2) provides to the connection. */
typedef struct conn_framing {
    const char *name;                                           /* "HTTP/1.1", "HTTP/2" */
    int (*start)(lmdm_conn_t *c);                               /* allocate framing state */
    void (*on_read)(lmdm_conn_t *c);                            /* input is available */
    void (*on_drained)(lmdm_conn_t *c);                         /* output buffer is empty */
    void (*send_response)(lmdm_conn_t *c, lmdm_http_req_t *req);/* a handler answered */
    void (*on_timeout)(lmdm_conn_t *c);                         /* the connection timer fired */
    void (*shutdown)(lmdm_conn_t *c);                           /* graceful: no new requests */
    void (*destroy)(lmdm_conn_t *c);                            /* free state, orphan requests */
} conn_framing_t;

extern const conn_framing_t lmdm_framing_h1;
extern const conn_framing_t lmdm_framing_h2;

struct lmdm_conn {
    uint64_t id;
    lmdm_worker_t *worker;
    struct bufferevent *bev;
    struct event *timer;
    conn_state_t state;
    const conn_framing_t *framing;
    void *fs;                  /* framing state */
    char peer[64];
    unsigned tls : 1;
    unsigned draining : 1;     /* shutdown requested: finish what is in flight, take nothing new */
    unsigned close_when_drained : 1;
    lmdm_conn_t *prev, *next;  /* worker's list of live connections */
};

/* The single funnel for ending a connection; `reason` is logged at debug. */
void conn_close(lmdm_conn_t *c, const char *reason);
/* Stop reading requests; once the output is flushed, half-close and discard
 * input for a moment so the client reads the final answer (lingering close). */
void conn_close_after_write(lmdm_conn_t *c);
/* (Re)arm the connection timer; ms <= 0 disarms it. */
void conn_set_timer(lmdm_conn_t *c, int ms);

/* Requests. */
lmdm_http_req_t *conn_req_new(lmdm_conn_t *c, const char *proto);
/* Headers are in: split target, match route, set body_limit. Returns 0 to go
 * on, or an HTTP status to answer at once (400, 431). Routing errors (404, 405)
 * are answered after the body, by conn_req_complete(). */
int conn_req_headers_done(lmdm_http_req_t *req, const char *target);
/* Append body bytes; LMDM_ERR_TOO_LARGE past the limit (then answer 413). */
int conn_req_body(lmdm_http_req_t *req, const char *data, size_t len) LMDM_MUSTCHECK;
/* The request is complete: route it to its handler (or answer 404/405). */
void conn_req_complete(lmdm_http_req_t *req);
/* Answer a request the framing refuses (400 malformed, 408 too slow, 413 body
 * too large, 431 headers too large) with the stable JSON error for that status. */
void conn_req_refuse(lmdm_http_req_t *req, int status);
/* Free a request whose response has been handed to the wire (or abandoned). */
void conn_req_free(lmdm_http_req_t *req);
/* The connection goes away while a handler still holds the request. */
void conn_req_orphan(lmdm_http_req_t *req);

/* The cached IMF-fixdate for Date headers (per worker, refreshed each second). */
const char *conn_http_date(lmdm_worker_t *w);
/* Worker-level hooks from the framings. */
void conn_worker_stream_closed(lmdm_worker_t *w);
const lmdm_config_t *conn_config(const lmdm_conn_t *c);

#endif
