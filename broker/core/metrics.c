/* Per-worker counters with a single writer; readers sum with relaxed loads. */
#include "lmdm/metrics.h"

#include <stdatomic.h>
#include <stdlib.h>

/* Status codes counted one by one; anything else is counted by class ("2xx"). */
static const int known_status[] = {200, 201, 202, 204, 206, 301, 302, 304, 400, 401, 403, 404,
                                   405, 408, 409, 410, 413, 415, 422, 429, 431, 500, 502, 503, 504};
#define NKNOWN ((int)LMDM_ARRAY_LEN(known_status))
#define NSTATUS (NKNOWN + 5) /* + 1xx..5xx "other" */

/* Latency histogram bucket upper bounds, in microseconds. */
static const uint64_t bucket_us[] = {500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
                                     250000, 500000, 1000000, 2500000, 5000000, 10000000};
#define NBUCKETS ((int)LMDM_ARRAY_LEN(bucket_us))

typedef struct {
    _Atomic uint64_t status[NSTATUS];
    _Atomic uint64_t bucket[NBUCKETS + 1]; /* last = +Inf */
    _Atomic uint64_t sum_us;
} route_counters_t;

struct lmdm_metrics {
    size_t nslots; /* routes + 1 ("none") */
    _Atomic int64_t open_conns;
    _Atomic uint64_t accepted, refused;
    route_counters_t slots[];
};

lmdm_metrics_t *lmdm_metrics_new(size_t nroutes)
{
    size_t n = nroutes + 1;
    lmdm_metrics_t *m = lmdm_xcalloc(1, sizeof(*m) + n * sizeof(route_counters_t));
    m->nslots = n;
    return m;
}

void lmdm_metrics_free(lmdm_metrics_t *m) { free(m); }

static int status_slot(int status)
{
    for (int i = 0; i < NKNOWN; i++)
        if (known_status[i] == status) return i;
    int cls = status / 100;
    if (cls < 1 || cls > 5) cls = 5;
    return NKNOWN + cls - 1;
}

#define BUMP(x, v) atomic_fetch_add_explicit(&(x), (v), memory_order_relaxed)
#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void lmdm_metrics_request(lmdm_metrics_t *m, int route_index, int status, uint64_t duration_ns)
{
    size_t slot = route_index < 0 || (size_t)route_index >= m->nslots - 1 ? m->nslots - 1
                                                                           : (size_t)route_index;
    route_counters_t *c = &m->slots[slot];
    uint64_t us = duration_ns / 1000;
    int b = 0;
    while (b < NBUCKETS && us > bucket_us[b]) b++;
    BUMP(c->status[status_slot(status)], 1);
    BUMP(c->bucket[b], 1);
    BUMP(c->sum_us, us);
}

void lmdm_metrics_conn(lmdm_metrics_t *m, int delta) { BUMP(m->open_conns, delta); }

void lmdm_metrics_accepted(lmdm_metrics_t *m, int refused)
{
    if (refused) BUMP(m->refused, 1);
    else BUMP(m->accepted, 1);
}

static const char *slot_name(const lmdm_router_t *router, size_t slot)
{
    return slot < lmdm_router_count(router) ? lmdm_router_at(router, slot)->name : "none";
}

void lmdm_metrics_render(lmdm_buf_t *out, lmdm_metrics_t *const *pw, lmdm_db_pool_t *const *pools,
                         size_t nworkers, const lmdm_router_t *router)
{
    size_t nslots = lmdm_router_count(router) + 1;

    lmdm_buf_puts(out, "# HELP lmdm_http_requests_total HTTP requests by route and status.\n"
                       "# TYPE lmdm_http_requests_total counter\n");
    for (size_t s = 0; s < nslots; s++) {
        for (int st = 0; st < NSTATUS; st++) {
            uint64_t v = 0;
            for (size_t w = 0; w < nworkers; w++) v += LOAD(pw[w]->slots[s].status[st]);
            if (!v) continue;
            if (st < NKNOWN)
                lmdm_buf_printf(out, "lmdm_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                                slot_name(router, s), known_status[st], (unsigned long long)v);
            else
                lmdm_buf_printf(out, "lmdm_http_requests_total{route=\"%s\",status=\"%dxx\"} %llu\n",
                                slot_name(router, s), st - NKNOWN + 1, (unsigned long long)v);
        }
    }

    lmdm_buf_puts(out, "# HELP lmdm_http_request_duration_seconds Request latency by route.\n"
                       "# TYPE lmdm_http_request_duration_seconds histogram\n");
    for (size_t s = 0; s < nslots; s++) {
        uint64_t cum = 0, sum = 0, count = 0;
        for (size_t w = 0; w < nworkers; w++) {
            for (int b = 0; b <= NBUCKETS; b++) count += LOAD(pw[w]->slots[s].bucket[b]);
            sum += LOAD(pw[w]->slots[s].sum_us);
        }
        if (!count) continue;
        const char *name = slot_name(router, s);
        for (int b = 0; b <= NBUCKETS; b++) {
            for (size_t w = 0; w < nworkers; w++) cum += LOAD(pw[w]->slots[s].bucket[b]);
            if (b < NBUCKETS)
                lmdm_buf_printf(out,
                                "lmdm_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                                name, (double)bucket_us[b] / 1e6, (unsigned long long)cum);
            else
                lmdm_buf_printf(out,
                                "lmdm_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                                name, (unsigned long long)cum);
        }
        lmdm_buf_printf(out, "lmdm_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", name,
                        (double)sum / 1e6);
        lmdm_buf_printf(out, "lmdm_http_request_duration_seconds_count{route=\"%s\"} %llu\n", name,
                        (unsigned long long)count);
    }

    int64_t open = 0;
    uint64_t accepted = 0, refused = 0;
    for (size_t w = 0; w < nworkers; w++) {
        open += LOAD(pw[w]->open_conns);
        accepted += LOAD(pw[w]->accepted);
        refused += LOAD(pw[w]->refused);
    }
    lmdm_buf_printf(out,
                    "# HELP lmdm_connections_open Open client connections.\n"
                    "# TYPE lmdm_connections_open gauge\nlmdm_connections_open %lld\n"
                    "# HELP lmdm_connections_accepted_total Client connections accepted.\n"
                    "# TYPE lmdm_connections_accepted_total counter\nlmdm_connections_accepted_total %llu\n"
                    "# HELP lmdm_connections_refused_total Connections closed at once: max_connections reached.\n"
                    "# TYPE lmdm_connections_refused_total counter\nlmdm_connections_refused_total %llu\n",
                    (long long)open, (unsigned long long)accepted, (unsigned long long)refused);

    lmdm_db_stats_t t = {0};
    for (size_t w = 0; w < nworkers; w++) {
        lmdm_db_stats_t s;
        if (!pools[w]) continue;
        lmdm_db_pool_stats(pools[w], &s);
        t.size += s.size;
        t.healthy += s.healthy;
        t.busy += s.busy;
        t.queued += s.queued;
        t.queries += s.queries;
        t.errors += s.errors;
        t.reconnects += s.reconnects;
    }
    lmdm_buf_printf(out,
                    "# HELP lmdm_db_pool_connections Database connections by state.\n"
                    "# TYPE lmdm_db_pool_connections gauge\n"
                    "lmdm_db_pool_connections{state=\"configured\"} %d\n"
                    "lmdm_db_pool_connections{state=\"healthy\"} %d\n"
                    "lmdm_db_pool_connections{state=\"busy\"} %d\n"
                    "# HELP lmdm_db_pool_queued Queries waiting for a database connection.\n"
                    "# TYPE lmdm_db_pool_queued gauge\nlmdm_db_pool_queued %d\n"
                    "# HELP lmdm_db_queries_total Database queries completed.\n"
                    "# TYPE lmdm_db_queries_total counter\nlmdm_db_queries_total %llu\n"
                    "# HELP lmdm_db_errors_total Database queries that failed.\n"
                    "# TYPE lmdm_db_errors_total counter\nlmdm_db_errors_total %llu\n"
                    "# HELP lmdm_db_reconnects_total Database reconnections after a failure.\n"
                    "# TYPE lmdm_db_reconnects_total counter\nlmdm_db_reconnects_total %llu\n",
                    t.size, t.healthy, t.busy, t.queued, (unsigned long long)t.queries,
                    (unsigned long long)t.errors, (unsigned long long)t.reconnects);
}
