/* Linear route table: a few dozen routes, matched segment by segment. */
#include "lmdm/router.h"

#include <stdlib.h>
#include <string.h>

struct lmdm_router {
    lmdm_route_t routes[LMDM_ROUTER_MAX_ROUTES];
    size_t n;
};

lmdm_router_t *lmdm_router_new(void) { return lmdm_xcalloc(1, sizeof(lmdm_router_t)); }

void lmdm_router_free(lmdm_router_t *r) { free(r); }

int lmdm_router_add(lmdm_router_t *r, const char *method, const char *pattern, const char *name,
                    lmdm_http_handler_fn handler, size_t body_limit)
{
    if (r->n >= LMDM_ROUTER_MAX_ROUTES || pattern[0] != '/') return LMDM_ERR_INVALID;
    int params = 0;
    for (const char *p = pattern; *p; p++)
        if (*p == '{') params++;
    if (params > LMDM_ROUTE_MAX_PARAMS) return LMDM_ERR_INVALID;
    r->routes[r->n] = (lmdm_route_t){.method = method, .pattern = pattern, .name = name,
                                     .handler = handler, .body_limit = body_limit,
                                     .index = (int)r->n};
    r->n++;
    return 0;
}

void lmdm_router_redact_last(lmdm_router_t *r)
{
    if (r->n) r->routes[r->n - 1].redact_path = 1;
}

size_t lmdm_router_count(const lmdm_router_t *r) { return r->n; }

const lmdm_route_t *lmdm_router_at(const lmdm_router_t *r, size_t i)
{
    return i < r->n ? &r->routes[i] : NULL;
}

/* Match path against pattern; on success fill params (arena copies). */
static int path_matches(const char *pattern, const char *path, lmdm_arena_t *arena,
                        const char *params[LMDM_ROUTE_MAX_PARAMS])
{
    const char *p = pattern, *s = path;
    int np = 0;
    while (*p && *s) {
        if (*p == '{') {
            const char *end = strchr(s, '/');
            size_t n = end ? (size_t)(end - s) : strlen(s);
            if (n == 0) return 0;
            if (params && arena) params[np] = lmdm_arena_strndup(arena, s, n);
            np++;
            s += n;
            p = strchr(p, '}');
            if (!p) return 0;
            p++;
        } else {
            if (*p != *s) return 0;
            p++;
            s++;
        }
    }
    return *p == '\0' && *s == '\0';
}

int lmdm_router_match(const lmdm_router_t *r, const char *method, const char *path,
                      lmdm_arena_t *arena, const lmdm_route_t **route,
                      const char *params[LMDM_ROUTE_MAX_PARAMS], const char **allow)
{
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    int path_seen = 0;
    for (size_t i = 0; i < r->n; i++) {
        const lmdm_route_t *rt = &r->routes[i];
        if (strcmp(rt->method, want) != 0) {
            if (!path_seen && path_matches(rt->pattern, path, NULL, NULL)) path_seen = 1;
            continue;
        }
        if (path_matches(rt->pattern, path, arena, params)) {
            *route = rt;
            return 200;
        }
    }
    if (!path_seen) return 404;
    if (allow && arena) {
        char *list = lmdm_arena_strdup(arena, "");
        for (size_t i = 0; i < r->n; i++) {
            if (path_matches(r->routes[i].pattern, path, NULL, NULL)) {
                list = lmdm_arena_printf(arena, "%s%s%s", list, *list ? ", " : "", r->routes[i].method);
                if (strcmp(r->routes[i].method, "GET") == 0)
                    list = lmdm_arena_printf(arena, "%s, HEAD", list);
            }
        }
        *allow = list;
    }
    return 405;
}
