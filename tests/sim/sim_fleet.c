/* Many devices at once, for the benchmarks: enroll N devices, check each in
 * (Authenticate, TokenUpdate), then poll the command endpoint for a fixed time
 * with C requests in flight on one curl multi handle.
 *
 * Each device has at most one request in flight, like a real device, and
 * its own identity: with Mdm-Signature its requests can share connections
 * (HTTP/1.1 keep-alive or HTTP/2 streams); with mTLS curl keeps connections
 * apart per client certificate, so every device gets its own. Latency is
 * measured per request from hand-over to the transport to completion.
 *
 * Transports: enrollment and check-ins go over HTTP/1.1 with libcurl (setup
 * is not measured). The timed phase uses libcurl for HTTP/1.1 and the
 * nghttp2 client of sim_h2.c for HTTP/2 (libcurl 7.88 breaks reused h2c
 * connections, see there): --connections shared connections with
 * Mdm-Signature, one per device with mTLS. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sim.h"

typedef enum { FD_NEW, FD_ENROLLED, FD_AUTHED, FD_READY, FD_FAILED } fd_state_t;
typedef enum { REQ_ENROLL, REQ_AUTH, REQ_TOKEN, REQ_POLL } req_kind_t;

typedef struct {
    sim_device_t dev;
    fd_state_t st;
    bool busy;
    sim_command_t pending; /* command the next poll answers (cycle mode) */
    char *idle_body;       /* cached Idle body and signature: identical bytes every time */
    size_t idle_len;
    char *idle_sig;
} fdev_t;

typedef struct fleet fleet_t;

typedef struct {
    fleet_t *fleet;
    CURL *easy;
    sim_http_resp_t resp;
    fdev_t *dev;
    char *body; /* owned, NULL when the body is the device's cached Idle */
    req_kind_t kind;
    double t0;
    bool active;
} slot_t;

struct fleet {
    const sim_fleet_opts_t *o;
    fdev_t *devs;
    int n;
    slot_t *slots;
    int nslots;
    CURLM *multi;
    int cursor;
    int in_flight;
    sim_schema_t *schema;
    /* results */
    double *lat;
    size_t nlat, caplat;
    long errors;
    long setup_errors;
    long requests;
    long commands;
    long commands_seen;
    long http_version;
    int shown_errors;
    bool progress;
    int enrolled, ready;
    sim_h2_t *h2; /* HTTP/2 timed phase */
    int h2_rr;    /* next shared connection */
};

/* The first few errors are shown; the rest only counted. */
static void report_error(fleet_t *f, const char *fmt, ...) SIM_PRINTF(2, 3);
static void report_error(fleet_t *f, const char *fmt, ...)
{
    if (f->shown_errors >= 5) return;
    f->shown_errors++;
    if (f->progress) fputc('\n', stderr);
    fprintf(stderr, "lmdm-sim fleet: ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* How much of a body to show in an error: at most max, without the final
 * newline. */
static int body_len(const sim_http_resp_t *r, size_t max)
{
    size_t n = r->len < max ? r->len : max;
    while (n && (r->body[n - 1] == '\n' || r->body[n - 1] == '\r'))
        n--;
    return (int)n;
}

static const char *enroll_url(const sim_fleet_opts_t *o, char *buf, size_t cap)
{
    const char *q = strchr(o->url, '?');
    size_t pathlen = q ? (size_t)(q - o->url) : strlen(o->url);
    bool has = pathlen >= 7 && strncmp(o->url + pathlen - 7, "/enroll", 7) == 0;
    snprintf(buf, cap, "%s%s", o->url,
             has ? "" : (pathlen && o->url[pathlen - 1] == '/' ? "enroll" : "/enroll"));
    return buf;
}

static sim_idmode_t mode_for(const fleet_t *f, const fdev_t *d)
{
    if (f->o->mode_set) return f->o->mode;
    if (d->dev.sign_message || strncmp(d->dev.server_url, "https://", 8) != 0) return SIM_ID_SIGNATURE;
    return SIM_ID_MTLS;
}

/* What the device sends next: method, URL, body and headers. The body is
 * either the slot's own (s->body) or the device's cached Idle. */
typedef struct {
    const char *method;
    const char *url;
    const void *body;
    size_t len;
    struct curl_slist *headers;
    sim_idmode_t mode;
    char urlbuf[2048];
} request_t;

static int build(fleet_t *f, slot_t *s, fdev_t *d, req_kind_t kind, request_t *rq)
{
    char err[SIM_ERRLEN];
    free(s->body);
    s->body = NULL;
    memset(rq, 0, sizeof *rq);
    rq->method = "PUT";
    if (kind == REQ_ENROLL) {
        rq->method = "GET";
        rq->url = enroll_url(f->o, rq->urlbuf, sizeof rq->urlbuf);
        rq->headers = curl_slist_append(NULL, "User-Agent: " SIM_USER_AGENT);
        rq->mode = SIM_ID_NONE;
        return 0;
    }
    rq->mode = mode_for(f, d);
    plist_t msg = NULL;
    const char *ct = SIM_CT_CONNECT;
    const char *sig = NULL;
    rq->url = d->dev.server_url;
    if (kind == REQ_AUTH || kind == REQ_TOKEN) {
        sim_checkin_opts_t ck = {0};
        msg = sim_checkin_build(&d->dev, kind == REQ_AUTH ? "Authenticate" : "TokenUpdate", &ck, err,
                                sizeof err);
        ct = SIM_CT_CHECKIN;
        rq->url = sim_device_checkin_url(&d->dev);
    } else if (d->pending.root) {
        sim_answer_opts_t ao = {.schema = f->schema, .enforce_rights = true};
        msg = sim_answer_build(&d->dev, &d->pending, &ao);
        sim_command_clear(&d->pending);
        f->commands++;
    } else if (!f->o->no_sig_cache && rq->mode == SIM_ID_SIGNATURE) {
        if (!d->idle_body) {
            plist_t idle = sim_idle_build(&d->dev, false);
            d->idle_body = sim_plist_xml(idle, &d->idle_len);
            plist_free(idle);
            d->idle_sig =
                sim_mdm_signature(d->dev.key, d->dev.cert, d->idle_body, d->idle_len, err, sizeof err);
            if (!d->idle_sig) {
                report_error(f, "%s", err);
                return -1;
            }
        }
        rq->body = d->idle_body;
        rq->len = d->idle_len;
        sig = d->idle_sig;
    } else {
        msg = sim_idle_build(&d->dev, false);
    }
    if (msg) {
        s->body = sim_plist_xml(msg, &rq->len);
        plist_free(msg);
        rq->body = s->body;
    }
    rq->headers = sim_mdm_headers(ct, rq->mode, &d->dev, rq->body, rq->len, sig, err, sizeof err);
    if (!rq->headers) {
        report_error(f, "%s", err);
        return -1;
    }
    return 0;
}

/* Start the device's next request on slot s with libcurl. Setup requests
 * always use HTTP/1.1. */
static int start(fleet_t *f, slot_t *s, fdev_t *d, req_kind_t kind)
{
    request_t rq;
    s->fleet = f;
    s->dev = d;
    s->kind = kind;
    if (build(f, s, d, kind, &rq) != 0) return -1;
    sim_http_opts_t ho = {.cacert = f->o->cacert,
                          .version = kind == REQ_POLL ? f->o->version : SIM_HTTP_1,
                          .timeout_ms = 60000,
                          .client_pem = rq.mode == SIM_ID_MTLS ? d->dev.identity_pem : NULL};
    s->easy = sim_http_prepare(s->easy, &ho, rq.method, rq.url, rq.body, rq.len, rq.headers, &s->resp);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    s->t0 = sim_now();
    s->active = true;
    d->busy = true;
    f->in_flight++;
    curl_multi_add_handle(f->multi, s->easy);
    return 0;
}

static void poll_result(fleet_t *f, slot_t *s, long status, const unsigned char *body, size_t len,
                        const char *error);

static void h2_done(void *ud, int status, const unsigned char *body, size_t len, const char *error)
{
    slot_t *s = ud;
    fleet_t *f = s->fleet;
    s->active = false;
    s->dev->busy = false;
    f->in_flight--;
    poll_result(f, s, status, body, len, error);
}

/* Start a poll on slot s over HTTP/2: the device's own connection with mTLS,
 * else the next shared one. (Re)connects when needed. */
static int start_h2(fleet_t *f, slot_t *s, fdev_t *d)
{
    char err[SIM_ERRLEN] = "";
    request_t rq;
    s->fleet = f;
    s->dev = d;
    s->kind = REQ_POLL;
    if (build(f, s, d, REQ_POLL, &rq) != 0) return -1;
    int conn = rq.mode == SIM_ID_MTLS ? (int)(d - f->devs)
                                      : f->h2_rr++ % (f->o->connections > 0 ? f->o->connections : 1);
    /* curl's "Name: value" lines as HTTP/2's lower-case name/value pairs. */
    char names[16][64];
    const char *hv[33];
    size_t n = 0;
    for (struct curl_slist *it = rq.headers; it && n < 32; it = it->next) {
        const char *colon = strchr(it->data, ':');
        if (!colon || colon[1] == '\0') continue; /* "Expect:" means "do not send" */
        size_t k = (size_t)(colon - it->data), slot = n / 2;
        if (k >= sizeof names[0] || slot >= 16) continue;
        for (size_t j = 0; j < k; j++)
            names[slot][j] =
                (char)(it->data[j] >= 'A' && it->data[j] <= 'Z' ? it->data[j] - 'A' + 'a' : it->data[j]);
        names[slot][k] = '\0';
        hv[n++] = names[slot];
        hv[n++] = colon + 2;
    }
    hv[n] = NULL;
    const char *path = strstr(rq.url, "://");
    path = path ? path + 3 + strcspn(path + 3, "/") : rq.url;
    int rc = -1;
    if (!sim_h2_usable(f->h2, conn) &&
        sim_h2_connect(f->h2, conn, rq.mode == SIM_ID_MTLS ? d->dev.identity_pem : NULL, err, sizeof err) !=
            0) {
        report_error(f, "%s", err);
    } else {
        s->t0 = sim_now();
        s->active = true;
        d->busy = true;
        f->in_flight++;
        if (sim_h2_submit(f->h2, conn, rq.method, *path ? path : "/", hv, rq.body, rq.len, h2_done, s, err,
                          sizeof err) == 0) {
            rc = 0;
        } else {
            s->active = false;
            d->busy = false;
            f->in_flight--;
            report_error(f, "%s", err);
        }
    }
    /* The header values were copied by nghttp2 at submit. */
    curl_slist_free_all(rq.headers);
    return rc;
}

/* The next device with work in this phase, round robin; NULL when none. */
static fdev_t *pick(fleet_t *f, bool setup, req_kind_t *kind)
{
    for (int k = 0; k < f->n; k++) {
        fdev_t *d = &f->devs[(f->cursor + k) % f->n];
        if (d->busy || d->st == FD_FAILED) continue;
        if (setup) {
            if (d->st == FD_READY) continue;
            *kind = d->st == FD_NEW ? REQ_ENROLL : d->st == FD_ENROLLED ? REQ_AUTH : REQ_TOKEN;
        } else {
            if (d->st != FD_READY) continue;
            *kind = REQ_POLL;
        }
        f->cursor = (f->cursor + k + 1) % f->n;
        return d;
    }
    return NULL;
}

static void show_progress(fleet_t *f)
{
    if (f->progress)
        fprintf(stderr, "\rlmdm-sim fleet: enrolled %d, checked in %d of %d", f->enrolled, f->ready, f->n);
}

static void done(fleet_t *f, slot_t *s, CURLcode rc)
{
    fdev_t *d = s->dev;
    char err[SIM_ERRLEN];
    curl_multi_remove_handle(f->multi, s->easy);
    sim_http_finish(s->easy, rc, &s->resp);
    s->active = false;
    d->busy = false;
    f->in_flight--;
    sim_http_resp_t *r = &s->resp;
    if (s->kind != REQ_POLL) {
        if (rc != CURLE_OK || r->status != 200) {
            d->st = FD_FAILED;
            f->setup_errors++;
            report_error(f, "setup request failed: HTTP %ld%s%s %.*s", r->status, rc != CURLE_OK ? ": " : "",
                         rc != CURLE_OK ? r->error : "", body_len(r, 300),
                         r->body ? (const char *)r->body : "");
            return;
        }
        if (s->kind == REQ_ENROLL) {
            const char *cas[2] = {f->o->profile_ca, NULL};
            if (sim_device_apply_profile(&d->dev, r->body, r->len, f->o->profile_ca ? cas : NULL,
                                         f->o->profile_ca != NULL, err, sizeof err) != 0) {
                d->st = FD_FAILED;
                f->setup_errors++;
                report_error(f, "enrollment: %s", err);
                return;
            }
            /* The fleet talks to --url: the profile's paths, --url's origin
             * (public_url may name the TLS listener while a benchmark runs
             * on the plain one). */
            if (sim_device_rewrite_origin(&d->dev, f->o->url, err, sizeof err) != 0) {
                d->st = FD_FAILED;
                f->setup_errors++;
                report_error(f, "enrollment: %s", err);
                return;
            }
            if (f->o->mode_set && f->o->mode == SIM_ID_MTLS &&
                strncmp(d->dev.server_url, "https://", 8) != 0) {
                d->st = FD_FAILED;
                f->setup_errors++;
                report_error(f, "--mtls but the profile's ServerURL is %s", d->dev.server_url);
                return;
            }
            d->st = FD_ENROLLED;
            f->enrolled++;
        } else if (s->kind == REQ_AUTH) {
            d->st = FD_AUTHED;
        } else {
            d->st = FD_READY;
            f->ready++;
        }
        show_progress(f);
        return;
    }
    poll_result(f, s, rc == CURLE_OK ? r->status : 0, r->body, r->len, rc != CURLE_OK ? r->error : NULL);
    f->http_version = r->version;
}

static void poll_result(fleet_t *f, slot_t *s, long status, const unsigned char *body, size_t len,
                        const char *error)
{
    char err[SIM_ERRLEN];
    fdev_t *d = s->dev;
    f->requests++;
    if (f->nlat == f->caplat) {
        f->caplat = f->caplat ? 2 * f->caplat : 65536;
        f->lat = realloc(f->lat, f->caplat * sizeof *f->lat);
        if (!f->lat) abort();
    }
    f->lat[f->nlat++] = (sim_now() - s->t0) * 1000.0;
    if (error || status != 200) {
        f->errors++;
        size_t n = len < 200 ? len : 200;
        while (n && (body[n - 1] == '\n' || body[n - 1] == '\r'))
            n--;
        report_error(f, "poll failed: HTTP %ld%s%s %.*s", status, error ? ": " : "", error ? error : "",
                     (int)n, body ? (const char *)body : "");
        return;
    }
    sim_command_t c;
    int got = sim_command_parse(body, len, &c, err, sizeof err);
    if (got < 0) {
        f->errors++;
        report_error(f, "bad answer: %s", err);
        return;
    }
    if (got == 1) {
        f->commands_seen++;
        if (f->o->cycle)
            d->pending = c;
        else
            sim_command_clear(&c);
    }
}

/* Drive the multi handle until the phase has no more work (setup) or the
 * deadline passed and everything in flight finished (poll). */
static void drive(fleet_t *f, bool setup, double deadline)
{
    for (;;) {
        bool issuing = setup || sim_now() < deadline;
        for (int i = 0; issuing && i < f->nslots; i++) {
            if (f->slots[i].active) continue;
            req_kind_t kind;
            fdev_t *d = pick(f, setup, &kind);
            if (!d) break;
            if (start(f, &f->slots[i], d, kind) != 0) {
                d->st = FD_FAILED;
                f->errors++;
            }
        }
        if (f->in_flight == 0) {
            req_kind_t kind;
            if (!issuing || !pick(f, setup, &kind)) return;
            continue;
        }
        int running = 0;
        curl_multi_perform(f->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(f->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            slot_t *s = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            done(f, s, m->data.result);
        }
        if (f->in_flight) curl_multi_poll(f->multi, NULL, 0, 50, NULL);
    }
}

/* The timed phase over HTTP/2 (sim_h2.c) until the deadline, then until
 * everything in flight finished. */
static void drive_h2(fleet_t *f, double deadline)
{
    for (;;) {
        bool issuing = sim_now() < deadline;
        for (int i = 0; issuing && i < f->nslots; i++) {
            if (f->slots[i].active) continue;
            req_kind_t kind;
            fdev_t *d = pick(f, false, &kind);
            if (!d) break;
            if (start_h2(f, &f->slots[i], d) != 0) {
                /* Count it like a failed request and do not spin on a server
                 * that refuses connections. */
                f->errors++;
                f->requests++;
                usleep(10000);
            }
        }
        if (!issuing && sim_h2_in_flight(f->h2) == 0) return;
        sim_h2_run(f->h2, 50);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    if (!n) return 0;
    size_t i = (size_t)ceil(p * (double)n) - 1;
    if (i >= n) i = n - 1;
    return v[i];
}

static int load_state(fleet_t *f, const char *path)
{
    char err[SIM_ERRLEN];
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) return 0; /* nothing saved yet */
    json_t *arr = json_object_get(j, "devices");
    if (!json_is_array(arr) || (int)json_array_size(arr) < f->n) {
        fprintf(stderr, "lmdm-sim fleet: %s holds %zu devices, fewer than --count %d: enrolling afresh\n",
                path, json_array_size(arr), f->n);
        json_decref(j);
        return 0;
    }
    for (int i = 0; i < f->n; i++) {
        json_t *rec = json_array_get(arr, (size_t)i);
        fdev_t *d = &f->devs[i];
        sim_device_clear(&d->dev);
        const char *pem = json_string_value(json_object_get(rec, "identity_pem"));
        if (sim_device_from_json(&d->dev, rec, err, sizeof err) != 0 || !pem ||
            !(d->dev.identity_pem = strdup(pem)) || sim_device_load_identity(&d->dev, err, sizeof err) != 0) {
            fprintf(stderr, "lmdm-sim fleet: %s: device %d: %s\n", path, i, err);
            json_decref(j);
            return -1;
        }
        d->st = FD_READY;
    }
    json_decref(j);
    f->enrolled = f->ready = f->n;
    return 1;
}

static int save_state(fleet_t *f, const char *path)
{
    char err[SIM_ERRLEN];
    json_t *arr = json_array();
    for (int i = 0; i < f->n; i++) {
        if (f->devs[i].st != FD_READY) continue;
        json_t *rec = sim_device_to_json(&f->devs[i].dev);
        json_object_set_new(rec, "identity_pem", json_string(f->devs[i].dev.identity_pem));
        json_array_append_new(arr, rec);
    }
    json_t *j = json_pack("{s:s, s:o}", "url", f->o->url, "devices", arr);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    int rc = sim_write_file(path, text, strlen(text), 0600, err, sizeof err);
    if (rc != 0) fprintf(stderr, "lmdm-sim fleet: %s\n", err);
    free(text);
    return rc;
}

int sim_fleet_run(const sim_fleet_opts_t *o)
{
    fleet_t f = {.o = o, .n = o->count, .progress = isatty(2)};
    int rc = 1;
    char err[SIM_ERRLEN];

    /* Thousands of devices with their own TLS connections need descriptors. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (o->cycle) {
        const char *dir = o->schema_dir ? o->schema_dir : sim_schema_find_dir();
        if (dir && !(f.schema = sim_schema_load(dir, err, sizeof err))) {
            fprintf(stderr, "lmdm-sim fleet: %s\n", err);
            return 1;
        }
    }
    f.devs = calloc((size_t)f.n, sizeof *f.devs);
    f.nslots = o->concurrency;
    f.slots = calloc((size_t)f.nslots, sizeof *f.slots);
    if (!f.devs || !f.slots) abort();
    uint64_t seed = sim_seed_value();
    for (int i = 0; i < f.n; i++) {
        /* Each device its own stream of identifiers: the same seed gives the
         * same fleet whatever the order of completion. */
        sim_seed(seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1));
        sim_device_init(&f.devs[i].dev, o->platform, false);
        if (o->cacert) snprintf(f.devs[i].dev.cacert, sizeof f.devs[i].dev.cacert, "%s", o->cacert);
    }
    sim_seed(seed ^ 0x5bd1e995);
    f.multi = curl_multi_init();
    curl_multi_setopt(f.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    bool mtls = o->mode_set && o->mode == SIM_ID_MTLS;
    long maxconn = mtls || strncmp(o->url, "https://", 8) == 0 ? (long)f.n + f.nslots : (long)f.nslots * 2;
    curl_multi_setopt(f.multi, CURLMOPT_MAXCONNECTS, maxconn);

    double t_setup = sim_now();
    int loaded = o->state_file ? load_state(&f, o->state_file) : 0;
    if (loaded < 0) goto out;
    if (!loaded) {
        drive(&f, true, 0);
        if (f.progress) fputc('\n', stderr);
        if (f.setup_errors) {
            fprintf(stderr, "lmdm-sim fleet: %ld of %d devices failed to enroll or check in\n",
                    f.setup_errors, f.n);
            goto out;
        }
        if (o->state_file && save_state(&f, o->state_file) != 0) goto out;
    }
    t_setup = sim_now() - t_setup;

    bool h2 =
        o->version == SIM_HTTP_2 || (o->version == SIM_HTTP_AUTO && strncmp(o->url, "https://", 8) == 0);
    if (h2) {
        /* mTLS: every device its own connection; else shared ones. */
        int nconns = mtls ? f.n : (o->connections > 0 ? o->connections : 1);
        f.h2 = sim_h2_new(o->url, nconns, o->cacert, err, sizeof err);
        if (!f.h2) {
            fprintf(stderr, "lmdm-sim fleet: %s\n", err);
            goto out;
        }
        /* Connect (and handshake) before the clock starts. */
        for (int i = 0; i < nconns; i++) {
            if (sim_h2_connect(f.h2, i, mtls ? f.devs[i].dev.identity_pem : NULL, err, sizeof err) != 0) {
                fprintf(stderr, "lmdm-sim fleet: connection %d: %s\n", i, err);
                goto out;
            }
        }
        f.http_version = CURL_HTTP_VERSION_2_0;
    }
    double t0 = sim_now();
    if (h2)
        drive_h2(&f, t0 + o->duration);
    else
        drive(&f, false, t0 + o->duration);
    double secs = sim_now() - t0;
    qsort(f.lat, f.nlat, sizeof *f.lat, cmp_double);
    double rps = secs > 0 ? (double)f.requests / secs : 0;
    double p50 = pct(f.lat, f.nlat, 0.50), p99 = pct(f.lat, f.nlat, 0.99),
           pmax = f.nlat ? f.lat[f.nlat - 1] : 0;
    const char *ident = mtls ? "mtls" : o->mode_set ? "signature" : "profile";
    if (o->json) {
        json_t *j =
            json_pack("{s:i, s:f, s:s, s:s, s:s, s:i, s:I, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I}",
                      "devices", f.n, "setup_seconds", t_setup, "mode", o->cycle ? "cycle" : "idle",
                      "http_version", sim_http_version_name(f.http_version), "identity", ident, "concurrency",
                      f.nslots, "requests", (json_int_t)f.requests, "seconds", secs, "rps", rps, "p50_ms",
                      p50, "p99_ms", p99, "max_ms", pmax, "errors", (json_int_t)f.errors, "commands_answered",
                      (json_int_t)f.commands, "commands_seen", (json_int_t)f.commands_seen);
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        printf("devices: %d (%s in %.1f s), mode %s, %s, identity %s, concurrency %d\n", f.n,
               loaded ? "loaded" : "enrolled and checked in", t_setup, o->cycle ? "cycle" : "idle",
               sim_http_version_name(f.http_version), ident, f.nslots);
        printf("requests: %ld in %.2f s = %.1f requests/s\n", f.requests, secs, rps);
        printf("latency: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", p50, p99, pmax);
        printf("errors: %ld; commands handed out %ld, answered %ld\n", f.errors, f.commands_seen, f.commands);
    }
    fflush(stdout);
    rc = f.errors ? 1 : 0;
out:
    for (int i = 0; i < f.nslots; i++) {
        if (f.slots[i].active) curl_multi_remove_handle(f.multi, f.slots[i].easy);
        if (f.slots[i].easy) curl_easy_cleanup(f.slots[i].easy);
        sim_http_resp_clear(&f.slots[i].resp);
        free(f.slots[i].body);
    }
    curl_multi_cleanup(f.multi);
    sim_h2_free(f.h2); /* fails what is left in flight: before the slots go */
    for (int i = 0; i < f.n; i++) {
        sim_command_clear(&f.devs[i].pending);
        free(f.devs[i].idle_body);
        free(f.devs[i].idle_sig);
        sim_device_clear(&f.devs[i].dev);
    }
    free(f.devs);
    free(f.slots);
    free(f.lat);
    sim_schema_free(f.schema);
    return rc;
}
