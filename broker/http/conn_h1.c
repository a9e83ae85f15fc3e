/* HTTP/1.1 framing on Debian's http_parser. One request at a time per
 * connection: the parser is paused after each message until its response is
 * written, so pipelined requests are answered in order. */
#include <event2/buffer.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "lmdm/buf.h"
#include "lmdm/log.h"

typedef struct h1 {
    http_parser parser;
    lmdm_conn_t *c;
    lmdm_http_req_t *req;   /* being read, or dispatched and awaiting its response */
    lmdm_buf_t target;      /* request target as it arrives */
    lmdm_buf_t field, value;/* current header, accumulated across callbacks */
    int early_status;       /* answer at once (400/413/431) */
    unsigned in_value : 1;
    unsigned complete : 1;  /* on_message_complete seen for req */
    unsigned in_flight : 1; /* req dispatched to its handler */
    unsigned keep_alive : 1;
    unsigned processing : 1;
} h1_t;

static h1_t *H(lmdm_conn_t *c) { return c->fs; }

static int too_big(h1_t *h, size_t n)
{
    lmdm_http_req_t *r = h->req;
    r->header_bytes += n;
    if (r->header_bytes > conn_config(h->c)->max_header_size) {
        r->headers_too_large = 1;
        return 1;
    }
    return 0;
}

static int on_message_begin(http_parser *p)
{
    h1_t *h = p->data;
    h->req = conn_req_new(h->c, "HTTP/1.1");
    h->target.len = 0;
    h->field.len = h->value.len = 0;
    h->in_value = 0;
    h->complete = 0;
    conn_set_timer(h->c, conn_config(h->c)->read_timeout_ms);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    h1_t *h = p->data;
    if (too_big(h, n)) return 1;
    lmdm_buf_append(&h->target, at, n);
    return 0;
}

static int flush_header(h1_t *h)
{
    lmdm_http_req_t *r = h->req;
    if (!h->field.len) return 0;
    if (r->nheaders >= LMDM_HTTP_MAX_HEADERS) {
        r->headers_too_large = 1;
        return 1;
    }
    for (size_t i = 0; i < h->field.len; i++)
        if (h->field.data[i] >= 'A' && h->field.data[i] <= 'Z') h->field.data[i] += 'a' - 'A';
    r->headers[r->nheaders].name = lmdm_arena_strndup(r->arena, h->field.data, h->field.len);
    r->headers[r->nheaders].value =
        lmdm_arena_strndup(r->arena, h->value.data ? h->value.data : "", h->value.len);
    r->nheaders++;
    h->field.len = h->value.len = 0;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    h1_t *h = p->data;
    if (too_big(h, n)) return 1;
    if (h->in_value) {
        if (flush_header(h)) return 1;
        h->in_value = 0;
    }
    lmdm_buf_append(&h->field, at, n);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    h1_t *h = p->data;
    if (too_big(h, n)) return 1;
    h->in_value = 1;
    lmdm_buf_append(&h->value, at, n);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    h1_t *h = p->data;
    lmdm_http_req_t *r = h->req;
    if (h->in_value && flush_header(h)) return -1;
    r->method = http_method_str((enum http_method)p->method);
    h->keep_alive = http_should_keep_alive(p) && !h->c->draining;
    int st = conn_req_headers_done(r, h->target.data ? h->target.data : "");
    if (st) {
        h->early_status = st;
        return -1;
    }
    /* Content-Length over the limit: refuse before reading the body. */
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > r->body_limit) {
        r->body_too_large = 1;
        h->early_status = 413;
        return -1;
    }
    const char *expect = lmdm_http_req_header(r, "expect");
    if (expect && strcasecmp(expect, "100-continue") == 0)
        bufferevent_write(h->c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    h1_t *h = p->data;
    if (conn_req_body(h->req, at, n) != 0) {
        h->early_status = 413;
        return 1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    h1_t *h = p->data;
    h->complete = 1;
    http_parser_pause(p, 1); /* stop right after this message until it is answered */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static int h1_start(lmdm_conn_t *c)
{
    h1_t *h = lmdm_xcalloc(1, sizeof(*h));
    http_parser_init(&h->parser, HTTP_REQUEST);
    h->parser.data = h;
    h->c = c;
    c->fs = h;
    conn_set_timer(c, conn_config(c)->idle_timeout_ms);
    return 0;
}

/* Answer a request the connection cannot go on from (bad framing, limits). */
static void answer_and_close(h1_t *h, int status)
{
    lmdm_http_req_t *r = h->req;
    if (!r) r = h->req = conn_req_new(h->c, "HTTP/1.1");
    h->keep_alive = 0;
    h->in_flight = 1;
    conn_req_refuse(r, status);
}

static void h1_process(lmdm_conn_t *c)
{
    h1_t *h = H(c);
    if (h->processing) return;
    h->processing = 1;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (c->state == CONN_OPEN && !h->in_flight) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0) break;
        size_t n = http_parser_execute(&h->parser, &settings, v.iov_base, v.iov_len);
        enum http_errno err = HTTP_PARSER_ERRNO(&h->parser);
        if (err == HPE_PAUSED) {
            http_parser_pause(&h->parser, 0);
        } else if (err != HPE_OK || (n < v.iov_len && !h->complete)) {
            evbuffer_drain(in, evbuffer_get_length(in));
            int st = h->early_status ? h->early_status
                     : (h->req && h->req->headers_too_large) || err == HPE_HEADER_OVERFLOW ? 431
                                                                                            : 400;
            lmdm_debug("conn=%llu: HTTP/1.1 %s -> %d", (unsigned long long)c->id,
                       http_errno_name(err), st);
            answer_and_close(h, st);
            break;
        }
        evbuffer_drain(in, n);
        if (h->complete) {
            h->complete = 0;
            h->in_flight = 1;
            conn_set_timer(c, 0);
            conn_req_complete(h->req); /* may answer at once, clearing in_flight */
        }
    }
    h->processing = 0;
}

static void h1_on_read(lmdm_conn_t *c) { h1_process(c); }

static void h1_on_drained(lmdm_conn_t *c) { (void)c; }

static void h1_send_response(lmdm_conn_t *c, lmdm_http_req_t *req)
{
    h1_t *h = H(c);
    struct evbuffer *out = evbuffer_new();
    int no_body = req->head || req->status == 204 || req->status == 304;
    if (c->draining) h->keep_alive = 0;
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nserver: lmdm\r\ndate: %s\r\n", req->status,
                        lmdm_http_reason(req->status), conn_http_date(c->worker));
    if (req->status != 204 && req->status != 304)
        evbuffer_add_printf(out, "content-length: %zu\r\n", req->resp_len);
    for (size_t i = 0; i < req->nresp_headers; i++)
        evbuffer_add_printf(out, "%s: %s\r\n", req->resp_headers[i].name, req->resp_headers[i].value);
    if (!h->keep_alive) evbuffer_add(out, "connection: close\r\n", 19);
    evbuffer_add(out, "\r\n", 2);
    if (!no_body && req->resp_len) evbuffer_add(out, req->resp_body, req->resp_len);
    bufferevent_write_buffer(c->bev, out);
    evbuffer_free(out);

    conn_req_free(req);
    h->req = NULL;
    h->in_flight = 0;
    if (!h->keep_alive) {
        conn_close_after_write(c);
        return;
    }
    conn_set_timer(c, conn_config(c)->idle_timeout_ms);
    h1_process(c); /* pipelined requests already buffered */
}

static void h1_on_timeout(lmdm_conn_t *c)
{
    h1_t *h = H(c);
    if (h->req && !h->in_flight) {
        answer_and_close(h, 408); /* a request started but did not finish */
        return;
    }
    if (!h->in_flight) conn_close(c, "idle timeout");
}

static void h1_shutdown(lmdm_conn_t *c)
{
    h1_t *h = H(c);
    if (!h->req && !h->in_flight) conn_close(c, "shutdown");
    else h->keep_alive = 0; /* answer what is in flight, with connection: close */
}

static void h1_destroy(lmdm_conn_t *c)
{
    h1_t *h = H(c);
    if (!h) return;
    if (h->req) {
        if (h->in_flight) conn_req_orphan(h->req);
        else conn_req_free(h->req);
    }
    lmdm_buf_free(&h->target);
    lmdm_buf_free(&h->field);
    lmdm_buf_free(&h->value);
    free(h);
    c->fs = NULL;
}

const conn_framing_t lmdm_framing_h1 = {
    .name = "HTTP/1.1",
    .start = h1_start,
    .on_read = h1_on_read,
    .on_drained = h1_on_drained,
    .send_response = h1_send_response,
    .on_timeout = h1_on_timeout,
    .shutdown = h1_shutdown,
    .destroy = h1_destroy,
};
