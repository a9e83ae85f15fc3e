/* The request object every handler sees, whichever framing (HTTP/1.1 or HTTP/2,
 * TLS or plaintext) carried it, and the one call that answers it.
 *
 * Ownership and lifetime: the connection layer creates a request with its own
 * arena when its headers arrive and calls the route's handler once the body is
 * complete. The handler (or anything it started, e.g. a database callback) must
 * call lmdm_http_respond() exactly once, on the same worker thread. After that
 * call the request is gone. If the client disconnects first, the request stays
 * valid until the handler responds; the answer is then simply dropped
 * (lmdm_http_req_orphaned() tells a handler that wants to stop early). */
#ifndef LMDM_HTTP_H
#define LMDM_HTTP_H

#include "lmdm/arena.h"
#include "lmdm/common.h"

typedef struct lmdm_worker lmdm_worker_t;
typedef struct lmdm_route lmdm_route_t;
typedef struct lmdm_conn lmdm_conn_t;

/** A request or response header; request names are lower-cased. */
typedef struct lmdm_http_header {
    const char *name;
    const char *value;
} lmdm_http_header_t;

#define LMDM_HTTP_MAX_HEADERS 100 /* more request headers than this -> 431 */
#define LMDM_HTTP_MAX_RESP_HEADERS 16
#define LMDM_ROUTE_MAX_PARAMS 4

typedef struct lmdm_http_req {
    lmdm_arena_t *arena;         /* freed with the request */
    const char *method;          /* "GET", "PUT", ... */
    const char *path;            /* path without the query, as sent (not decoded) */
    const char *query;           /* after '?', or "" */
    const char *proto;           /* "HTTP/1.1" or "HTTP/2" */
    lmdm_http_header_t headers[LMDM_HTTP_MAX_HEADERS];
    size_t nheaders;
    char *body;                  /* NUL-terminated for convenience; body_len excludes it */
    size_t body_len;
    const lmdm_route_t *route;   /* matched route (never NULL inside a handler) */
    const char *params[LMDM_ROUTE_MAX_PARAMS]; /* values of {name} path segments, in order */
    lmdm_worker_t *worker;       /* the worker thread serving this request */
    uint64_t conn_id;
    int32_t stream_id;           /* HTTP/2 stream id; 0 for HTTP/1.1 */
    char peer[64];               /* peer address "ip:port" */
    uint64_t start_ns;

    /* Connection layer's private state below. */
    lmdm_conn_t *conn;           /* NULL once the client went away */
    void *stream;                /* framing-specific stream state */
    int status;
    lmdm_http_header_t resp_headers[LMDM_HTTP_MAX_RESP_HEADERS];
    size_t nresp_headers;
    char *resp_body;             /* malloc'd copy, owned by the request */
    size_t resp_len, resp_off;
    size_t body_cap, body_limit;
    unsigned head : 1;           /* HEAD: send headers only */
    unsigned responded : 1;
    unsigned dispatched : 1;
    unsigned headers_too_large : 1;
    unsigned body_too_large : 1;
    size_t header_bytes;
} lmdm_http_req_t;

/** A route handler. It must eventually call lmdm_http_respond(req, ...). */
typedef void (*lmdm_http_handler_fn)(lmdm_http_req_t *req);

/** First request header with this (lower-case) name, or NULL. */
const char *lmdm_http_req_header(const lmdm_http_req_t *req, const char *name);

/** Add a response header (name and value are copied). Up to
 * LMDM_HTTP_MAX_RESP_HEADERS; more are dropped with a warning. */
void lmdm_http_resp_header(lmdm_http_req_t *req, const char *name, const char *value);

/** Answer the request: status, content type (NULL for none) and body (copied).
 * The request is released; do not touch it afterwards. */
void lmdm_http_respond(lmdm_http_req_t *req, int status, const char *content_type, const void *body,
                       size_t len);

/** Answer with a JSON error body {"error": code, "message": message}. */
void lmdm_http_respond_error(lmdm_http_req_t *req, int status, const char *code, const char *message);

/** 503 with Retry-After: the database is unavailable. */
void lmdm_http_respond_unavailable(lmdm_http_req_t *req);

/** 1 if the client has gone away (the answer will be dropped). */
int lmdm_http_req_orphaned(const lmdm_http_req_t *req);

/** The TLS client certificate of the request's connection and its chain as
 * sent (borrowed), or NULL on plaintext, without a certificate, or once the
 * client went away. WARNING: valid only until the handler's first asynchronous
 * step; use (or copy) it at once. */
struct x509_st *lmdm_http_req_peer_cert(const lmdm_http_req_t *req);
struct stack_st_X509 *lmdm_http_req_peer_chain(const lmdm_http_req_t *req);

/** 1 if the request came over one of the broker's own TLS listeners. */
int lmdm_http_req_is_tls(const lmdm_http_req_t *req);

/** Numeric address of the peer (without the port) into out. */
void lmdm_http_req_peer_ip(const lmdm_http_req_t *req, char *out, size_t outlen);

/** Standard reason phrase for a status code. */
const char *lmdm_http_reason(int status);

#endif
