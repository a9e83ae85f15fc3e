/* Request objects: creation, routing, body accumulation and the one respond
 * path shared by both framings. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "lmdm/log.h"

const char *lmdm_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

lmdm_http_req_t *conn_req_new(lmdm_conn_t *c, const char *proto)
{
    lmdm_arena_t *arena = lmdm_arena_new(2048);
    lmdm_http_req_t *req = lmdm_arena_alloc(arena, sizeof(*req));
    memset(req, 0, sizeof(*req));
    req->arena = arena;
    req->proto = proto;
    req->method = "";
    req->path = "";
    req->query = "";
    req->worker = c->worker;
    req->conn = c;
    req->conn_id = c->id;
    req->start_ns = lmdm_now_ns();
    memcpy(req->peer, c->peer, sizeof(req->peer));
    req->body_limit = conn_config(c)->max_body_size;
    return req;
}

void conn_req_free(lmdm_http_req_t *req)
{
    if (!req) return;
    free(req->body);
    free(req->resp_body);
    lmdm_arena_free(req->arena);
}

void conn_req_orphan(lmdm_http_req_t *req)
{
    req->conn = NULL;
    req->stream = NULL;
}

int lmdm_http_req_orphaned(const lmdm_http_req_t *req) { return req->conn == NULL; }

const char *lmdm_http_req_header(const lmdm_http_req_t *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcmp(req->headers[i].name, name) == 0) return req->headers[i].value;
    return NULL;
}

void lmdm_http_resp_header(lmdm_http_req_t *req, const char *name, const char *value)
{
    if (req->nresp_headers >= LMDM_HTTP_MAX_RESP_HEADERS) {
        lmdm_warn("conn=%llu: response header %s dropped (limit %d)",
                  (unsigned long long)req->conn_id, name, LMDM_HTTP_MAX_RESP_HEADERS);
        return;
    }
    req->resp_headers[req->nresp_headers].name = lmdm_arena_strdup(req->arena, name);
    req->resp_headers[req->nresp_headers].value = lmdm_arena_strdup(req->arena, value);
    req->nresp_headers++;
}

static int valid_path(const char *p)
{
    if (*p != '/') return 0;
    for (; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f) return 0;
    return 1;
}

int conn_req_headers_done(lmdm_http_req_t *req, const char *target)
{
    if (req->headers_too_large) return 431;
    const char *q = strchr(target, '?');
    if (q) {
        req->path = lmdm_arena_strndup(req->arena, target, (size_t)(q - target));
        req->query = lmdm_arena_strdup(req->arena, q + 1);
    } else {
        req->path = lmdm_arena_strdup(req->arena, target);
    }
    if (!valid_path(req->path) || !*req->method) return 400;
    req->head = strcmp(req->method, "HEAD") == 0;

    const lmdm_router_t *router = lmdm_server_router(req->worker->server);
    const lmdm_route_t *route = NULL;
    const char *allow = NULL;
    int st = lmdm_router_match(router, req->method, req->path, req->arena, &route, req->params, &allow);
    if (st == 200) {
        req->route = route;
        if (route->body_limit) req->body_limit = route->body_limit;
    } else {
        req->status = st; /* answered once the body is in */
        if (allow) lmdm_http_resp_header(req, "allow", allow);
    }
    return 0;
}

int conn_req_body(lmdm_http_req_t *req, const char *data, size_t len)
{
    if (req->body_too_large) return LMDM_ERR_TOO_LARGE;
    if (len > req->body_limit || req->body_len > req->body_limit - len) {
        req->body_too_large = 1;
        return LMDM_ERR_TOO_LARGE;
    }
    if (req->body_len + len + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 1024;
        while (cap < req->body_len + len + 1) cap *= 2;
        req->body = lmdm_xrealloc(req->body, cap);
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
    return 0;
}

void conn_req_complete(lmdm_http_req_t *req)
{
    req->dispatched = 1;
    if (!req->body) {
        req->body = lmdm_xmalloc(1);
        req->body[0] = '\0';
    }
    if (!req->route) {
        int st = req->status ? req->status : 404;
        lmdm_http_respond_error(req, st, st == 405 ? "method_not_allowed" : "not_found",
                                st == 405 ? "method not allowed on this path" : "no such path");
        return;
    }
    req->route->handler(req);
}

static void record(lmdm_http_req_t *req)
{
    uint64_t dur = lmdm_now_ns() - req->start_ns;
    lmdm_metrics_request(req->worker->metrics, req->route ? req->route->index : -1, req->status, dur);
    const char *path = req->route && req->route->redact_path ? req->route->pattern : req->path;
    lmdm_log_access(req->conn_id, req->stream_id, req->method, path,
                    req->route ? req->route->name : "none", req->status, dur / 1000, req->resp_len,
                    req->proto);
}

void conn_req_refuse(lmdm_http_req_t *req, int status)
{
    req->dispatched = 1;
    switch (status) {
    case 408: lmdm_http_respond_error(req, 408, "timeout", "request not completed in time"); break;
    case 413: lmdm_http_respond_error(req, 413, "body_too_large", "request body larger than this route accepts"); break;
    case 431: lmdm_http_respond_error(req, 431, "headers_too_large", "request headers too large or too many"); break;
    default: lmdm_http_respond_error(req, 400, "bad_request", "malformed HTTP request"); break;
    }
}

void lmdm_http_respond(lmdm_http_req_t *req, int status, const char *content_type, const void *body,
                       size_t len)
{
    if (req->responded) {
        lmdm_error("conn=%llu: handler responded twice (ignored)", (unsigned long long)req->conn_id);
        return;
    }
    req->responded = 1;
    req->status = status;
    if (content_type) lmdm_http_resp_header(req, "content-type", content_type);
    if (len) {
        req->resp_body = lmdm_xmalloc(len);
        memcpy(req->resp_body, body, len);
    }
    req->resp_len = len;
    record(req);
    if (!req->conn) {
        conn_req_free(req); /* the client went away while the handler worked */
        return;
    }
    req->conn->framing->send_response(req->conn, req);
}

void lmdm_http_respond_error(lmdm_http_req_t *req, int status, const char *code, const char *message)
{
    /* code is an identifier and message is ours; escape quotes and control
     * characters anyway, in case a caller passes something it was given. */
    char body[1024];
    size_t n = 0;
    const char *parts[2] = {code, message};
    n += (size_t)snprintf(body + n, sizeof(body) - n, "{\"error\":\"");
    for (int i = 0; i < 2; i++) {
        for (const char *p = parts[i]; *p && n < sizeof(body) - 32; p++) {
            unsigned char ch = (unsigned char)*p;
            if (ch == '"' || ch == '\\') {
                body[n++] = '\\';
                body[n++] = (char)ch;
            } else if (ch < 0x20) {
                n += (size_t)snprintf(body + n, sizeof(body) - n, "\\u%04x", ch);
            } else {
                body[n++] = (char)ch;
            }
        }
        n += (size_t)snprintf(body + n, sizeof(body) - n, i == 0 ? "\",\"message\":\"" : "\"}\n");
    }
    lmdm_http_respond(req, status, "application/json", body, n);
}

void lmdm_http_respond_unavailable(lmdm_http_req_t *req)
{
    char ra[16];
    snprintf(ra, sizeof(ra), "%d", req->worker->config->db_retry_after_s);
    lmdm_http_resp_header(req, "retry-after", ra);
    lmdm_http_respond_error(req, 503, "unavailable", "the database is unavailable; retry later");
}
