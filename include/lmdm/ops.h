/* Operations endpoints: GET /healthz (process up), GET /readyz (database
 * reachable and migrated), GET /metrics (Prometheus text format). */
#ifndef LMDM_OPS_H
#define LMDM_OPS_H

#include "lmdm/router.h"

/** Add the operations routes to a router. */
int lmdm_ops_routes(lmdm_router_t *r) LMDM_MUSTCHECK;

#endif
