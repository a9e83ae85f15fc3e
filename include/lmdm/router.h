/* One routing table for every framing. Built once at start-up, read-only
 * afterwards, so worker threads share it without locks.
 *
 * Patterns are literal path segments or `{name}` for one non-empty segment:
 * "/v1/enrollments/{id}/commands". A route matches one method; HEAD is served by
 * the GET route with the body left out. */
#ifndef LMDM_ROUTER_H
#define LMDM_ROUTER_H

#include "lmdm/http.h"

#define LMDM_ROUTER_MAX_ROUTES 96

struct lmdm_route {
    const char *method;
    const char *pattern;
    const char *name;              /* metric and log label, e.g. "healthz" */
    lmdm_http_handler_fn handler;
    size_t body_limit;             /* 0 = the configured max_body_size */
    int index;                     /* position in the table (metrics) */
    unsigned redact_path : 1;      /* path holds a secret: log the pattern instead */
};

typedef struct lmdm_router lmdm_router_t;

lmdm_router_t *lmdm_router_new(void);
void lmdm_router_free(lmdm_router_t *r);

/** Add a route. Strings must outlive the router (use literals). */
int lmdm_router_add(lmdm_router_t *r, const char *method, const char *pattern, const char *name,
                    lmdm_http_handler_fn handler, size_t body_limit) LMDM_MUSTCHECK;
/** Mark the last added route as carrying a secret in its path. */
void lmdm_router_redact_last(lmdm_router_t *r);

/** Find the route for method + path. Returns 200 and sets *route and params
 * (allocated in `arena`), or 404 (no pattern matches), or 405 (a pattern
 * matches but not for this method; *allow gets the allowed methods). */
int lmdm_router_match(const lmdm_router_t *r, const char *method, const char *path,
                      lmdm_arena_t *arena, const lmdm_route_t **route,
                      const char *params[LMDM_ROUTE_MAX_PARAMS], const char **allow);

size_t lmdm_router_count(const lmdm_router_t *r);
const lmdm_route_t *lmdm_router_at(const lmdm_router_t *r, size_t i);

#endif
