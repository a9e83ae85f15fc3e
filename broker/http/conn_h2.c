/* HTTP/2 framing on nghttp2 (server session, memory I/O): bytes from the
 * bufferevent go to nghttp2_session_mem_recv, frames to send come from
 * nghttp2_session_mem_send. Each stream carries one request. */
#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "lmdm/log.h"

typedef struct h2_stream {
    int32_t id;
    lmdm_http_req_t *req;
    struct h2_stream *prev, *next;
    unsigned complete : 1;   /* END_STREAM received */
    unsigned answered : 1;   /* response submitted */
    unsigned reset_after : 1;/* the upload was cut off with RST_STREAM */
    size_t discarded;        /* body bytes dropped after an early answer */
} h2_stream_t;

typedef struct h2 {
    nghttp2_session *s;
    lmdm_conn_t *c;
    h2_stream_t *streams;
    int nstreams;
    int receiving;            /* streams whose request is not complete yet */
    unsigned goaway : 1;
} h2_t;

static h2_t *H(lmdm_conn_t *c) { return c->fs; }

static void h2_flush(lmdm_conn_t *c);

static void stream_unlink(h2_t *h, h2_stream_t *st)
{
    if (st->prev) st->prev->next = st->next;
    else h->streams = st->next;
    if (st->next) st->next->prev = st->prev;
    h->nstreams--;
    if (!st->complete) h->receiving--;
}

static void update_timer(h2_t *h)
{
    const lmdm_config_t *cfg = conn_config(h->c);
    if (h->receiving > 0) conn_set_timer(h->c, cfg->read_timeout_ms);
    else if (h->nstreams == 0) conn_set_timer(h->c, cfg->idle_timeout_ms);
    else conn_set_timer(h->c, 0);
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    lmdm_http_req_t *req = src->ptr;
    size_t left = req->resp_len - req->resp_off;
    size_t n = left < len ? left : len;
    memcpy(buf, req->resp_body + req->resp_off, n);
    req->resp_off += n;
    if (req->resp_off == req->resp_len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void submit(h2_t *h, h2_stream_t *st, lmdm_http_req_t *req)
{
    nghttp2_nv nv[LMDM_HTTP_MAX_RESP_HEADERS + 4];
    size_t n = 0;
    char status[8], clen[24];
    snprintf(status, sizeof(status), "%d", req->status);
    snprintf(clen, sizeof(clen), "%zu", req->resp_len);
#define NV(k, v) (nv[n++] = (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), NGHTTP2_NV_FLAG_NONE})
    NV(":status", status);
    NV("server", "lmdm");
    NV("date", conn_http_date(h->c->worker));
    if (req->status != 204 && req->status != 304) NV("content-length", clen);
    for (size_t i = 0; i < req->nresp_headers; i++) {
        /* HTTP/2 header names are lower case; ours are by convention. */
        for (char *p = (char *)req->resp_headers[i].name; *p; p++)
            if (*p >= 'A' && *p <= 'Z') *p += 'a' - 'A';
        NV(req->resp_headers[i].name, req->resp_headers[i].value);
    }
#undef NV
    nghttp2_data_provider prd = {.source.ptr = req, .read_callback = read_body};
    int with_body = req->resp_len && !req->head && req->status != 204 && req->status != 304;
    st->answered = 1;
    int rv = nghttp2_submit_response(h->s, st->id, nv, n, with_body ? &prd : NULL);
    if (rv != 0)
        lmdm_warn("conn=%llu stream=%d: submit_response: %s", (unsigned long long)h->c->id, st->id,
                  nghttp2_strerror(rv));
}

/* Answer a stream at once (limits, routing of a bad request) with an error. */
static void answer_early(h2_t *h, h2_stream_t *st, int status)
{
    if (!st->answered) conn_req_refuse(st->req, status);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    h2_t *h = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    if (h->nstreams >= conn_config(h->c)->max_streams) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    h2_stream_t *st = lmdm_xcalloc(1, sizeof(*st));
    st->id = f->hd.stream_id;
    st->req = conn_req_new(h->c, "HTTP/2");
    st->req->stream_id = st->id;
    st->req->stream = st;
    st->next = h->streams;
    if (h->streams) h->streams->prev = st;
    h->streams = st;
    h->nstreams++;
    h->receiving++;
    nghttp2_session_set_stream_user_data(s, st->id, st);
    update_timer(h);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    h2_t *h = ud;
    if (f->hd.type != NGHTTP2_HEADERS) return 0;
    h2_stream_t *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!st) return 0;
    lmdm_http_req_t *r = st->req;
    r->header_bytes += namelen + valuelen;
    if (r->header_bytes > conn_config(h->c)->max_header_size) r->headers_too_large = 1;
    if (r->headers_too_large) return 0;
    if (namelen && name[0] == ':') {
        if (namelen == 7 && memcmp(name, ":method", 7) == 0)
            r->method = lmdm_arena_strndup(r->arena, (const char *)value, valuelen);
        else if (namelen == 5 && memcmp(name, ":path", 5) == 0)
            r->path = lmdm_arena_strndup(r->arena, (const char *)value, valuelen);
        return 0;
    }
    if (r->nheaders >= LMDM_HTTP_MAX_HEADERS) {
        r->headers_too_large = 1;
        return 0;
    }
    r->headers[r->nheaders].name = lmdm_arena_strndup(r->arena, (const char *)name, namelen);
    r->headers[r->nheaders].value = lmdm_arena_strndup(r->arena, (const char *)value, valuelen);
    r->nheaders++;
    return 0;
}

static void request_complete(h2_t *h, h2_stream_t *st)
{
    if (st->complete) return;
    st->complete = 1;
    h->receiving--;
    update_timer(h);
    if (!st->answered) conn_req_complete(st->req);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    h2_t *h = ud;
    h2_stream_t *st = f->hd.stream_id ? nghttp2_session_get_stream_user_data(s, f->hd.stream_id) : NULL;
    if (!st) return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        /* :path was stored in r->path; split it into path and query. */
        int early = conn_req_headers_done(st->req, st->req->path);
        if (early) {
            if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
                st->complete = 1;
                h->receiving--;
            }
            answer_early(h, st, early);
            return 0;
        }
        const char *cl = lmdm_http_req_header(st->req, "content-length");
        if (cl && strtoull(cl, NULL, 10) > st->req->body_limit) {
            answer_early(h, st, 413);
            return 0;
        }
    }
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        request_complete(h, st);
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                         void *ud)
{
    h2_t *h = ud;
    h2_stream_t *st = nghttp2_session_get_stream_user_data(s, id);
    if (!st) return 0;
    if (st->answered) {
        /* Answered early (413): the rest of the body is read and dropped, because
         * some clients (curl 7.88) lose a response followed by RST_STREAM. Past a
         * budget of a few times the limit, the upload is cut off after all. */
        st->discarded += len;
        if (!st->complete && !st->reset_after && st->discarded > 4 * conn_config(h->c)->max_body_size) {
            st->reset_after = 1;
            nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
        }
        return 0;
    }
    if (conn_req_body(st->req, (const char *)data, len) != 0) answer_early(h, st, 413);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    h2_t *h = ud;
    h2_stream_t *st = nghttp2_session_get_stream_user_data(s, id);
    if (!st) return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    stream_unlink(h, st);
    if (st->req) {
        if (st->req->dispatched && !st->req->responded) conn_req_orphan(st->req); /* handler owns it */
        else conn_req_free(st->req);
    }
    free(st);
    update_timer(h);
    return 0;
}

/* One callback table for the process: sessions copy it when created. */
static nghttp2_session_callbacks *cbs;
static pthread_once_t cbs_once = PTHREAD_ONCE_INIT;

static void make_callbacks(void)
{
    if (nghttp2_session_callbacks_new(&cbs) != 0) abort();
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
}

static nghttp2_session_callbacks *callbacks(void)
{
    pthread_once(&cbs_once, make_callbacks);
    return cbs;
}

static int h2_start(lmdm_conn_t *c)
{
    const lmdm_config_t *cfg = conn_config(c);
    h2_t *h = lmdm_xcalloc(1, sizeof(*h));
    h->c = c;
    c->fs = h;
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    /* Do not let one connection buffer unbounded header blocks. */
    nghttp2_option_set_max_send_header_block_length(opt, 64 * 1024);
    int rv = nghttp2_session_server_new2(&h->s, callbacks(), h, opt);
    nghttp2_option_del(opt);
    if (rv != 0) return LMDM_ERR_NOMEM;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)cfg->max_streams},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)cfg->max_header_size},
    };
    nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, LMDM_ARRAY_LEN(iv));
    update_timer(h);
    h2_flush(c);
    return 0;
}

static void h2_flush(lmdm_conn_t *c)
{
    h2_t *h = H(c);
    if (c->state != CONN_OPEN) return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h->s, &data);
        if (n < 0) {
            conn_close(c, nghttp2_strerror((int)n));
            return;
        }
        if (n == 0) break;
        evbuffer_add(out, data, (size_t)n);
    }
    if (!nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s)) {
        c->close_when_drained = 1;
        if (evbuffer_get_length(out) == 0) conn_close(c, "HTTP/2 session finished");
    }
}

static void h2_on_read(lmdm_conn_t *c)
{
    h2_t *h = H(c);
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (c->state == CONN_OPEN) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0) break;
        ssize_t n = nghttp2_session_mem_recv(h->s, v.iov_base, v.iov_len);
        if (n < 0) {
            lmdm_debug("conn=%llu: HTTP/2 protocol error: %s", (unsigned long long)c->id,
                       nghttp2_strerror((int)n));
            /* nghttp2 queued a GOAWAY for most errors: send it, then close. */
            evbuffer_drain(in, evbuffer_get_length(in));
            h2_flush(c);
            conn_close_after_write(c);
            return;
        }
        evbuffer_drain(in, (size_t)n);
    }
    h2_flush(c);
}

static void h2_on_drained(lmdm_conn_t *c)
{
    if (c->close_when_drained) conn_close(c, "HTTP/2 session finished");
}

static void h2_send_response(lmdm_conn_t *c, lmdm_http_req_t *req)
{
    h2_t *h = H(c);
    h2_stream_t *st = req->stream;
    submit(h, st, req);
    /* The request lives until its stream closes: the body is read from it. */
    h2_flush(c);
}

static void h2_on_timeout(lmdm_conn_t *c)
{
    h2_t *h = H(c);
    if (h->receiving > 0)
        nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->s),
                              NGHTTP2_PROTOCOL_ERROR, (const uint8_t *)"read timeout", 12);
    else
        nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->s),
                              NGHTTP2_NO_ERROR, (const uint8_t *)"idle", 4);
    h2_flush(c);
    conn_close_after_write(c);
}

static void h2_shutdown(lmdm_conn_t *c)
{
    h2_t *h = H(c);
    if (h->goaway) return;
    h->goaway = 1;
    /* Streams already received are finished; new ones are refused by the client. */
    nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->s),
                          NGHTTP2_NO_ERROR, NULL, 0);
    h2_flush(c);
}

static void h2_destroy(lmdm_conn_t *c)
{
    h2_t *h = H(c);
    if (!h) return;
    h2_stream_t *st = h->streams;
    while (st) {
        h2_stream_t *next = st->next;
        if (st->req) {
            if (st->req->dispatched && !st->req->responded) conn_req_orphan(st->req);
            else conn_req_free(st->req);
        }
        free(st);
        st = next;
    }
    h->streams = NULL;
    nghttp2_session_del(h->s); /* does not call on_stream_close */
    free(h);
    c->fs = NULL;
}

const conn_framing_t lmdm_framing_h2 = {
    .name = "HTTP/2",
    .start = h2_start,
    .on_read = h2_on_read,
    .on_drained = h2_on_drained,
    .send_response = h2_send_response,
    .on_timeout = h2_on_timeout,
    .shutdown = h2_shutdown,
    .destroy = h2_destroy,
};
