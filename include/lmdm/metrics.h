/* Prometheus metrics. Each worker owns one lmdm_metrics_t and is the only
 * writer; /metrics sums all workers with relaxed atomic loads, so counting
 * costs no lock and no shared cache line on the hot path. */
#ifndef LMDM_METRICS_H
#define LMDM_METRICS_H

#include "lmdm/buf.h"
#include "lmdm/db.h"
#include "lmdm/router.h"

typedef struct lmdm_metrics lmdm_metrics_t;

/** `nroutes` routes plus one slot for requests that matched none. */
lmdm_metrics_t *lmdm_metrics_new(size_t nroutes);
void lmdm_metrics_free(lmdm_metrics_t *m);

/** Count one finished request. route_index < 0 means "no route". */
void lmdm_metrics_request(lmdm_metrics_t *m, int route_index, int status, uint64_t duration_ns);
/** Open connections gauge: +1 on accept, -1 on close. */
void lmdm_metrics_conn(lmdm_metrics_t *m, int delta);
/** Connections accepted in total, and refused because of max_connections. */
void lmdm_metrics_accepted(lmdm_metrics_t *m, int refused);

/** Render the text exposition format of all workers' metrics and pools into out. */
void lmdm_metrics_render(lmdm_buf_t *out, lmdm_metrics_t *const *per_worker, lmdm_db_pool_t *const *pools,
                         size_t nworkers, const lmdm_router_t *router);

#endif
