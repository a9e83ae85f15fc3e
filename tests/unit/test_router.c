/* Router: literal and {param} matching, 404 vs 405 with Allow, HEAD via GET. */
#include "harness.h"
#include "lmdm/router.h"

static void h_a(lmdm_http_req_t *r) { (void)r; }
static void h_b(lmdm_http_req_t *r) { (void)r; }

static lmdm_router_t *make(void)
{
    lmdm_router_t *r = lmdm_router_new();
    CHECK_INT_EQ(lmdm_router_add(r, "GET", "/healthz", "healthz", h_a, 0), 0);
    CHECK_INT_EQ(lmdm_router_add(r, "PUT", "/mdm/connect", "connect", h_b, 4096), 0);
    CHECK_INT_EQ(lmdm_router_add(r, "GET", "/v1/enrollments/{id}", "enrollment", h_a, 0), 0);
    CHECK_INT_EQ(lmdm_router_add(r, "POST", "/v1/enrollments/{id}/commands/{cmd}", "command", h_b, 0), 0);
    return r;
}

static void test_literal(void)
{
    lmdm_router_t *r = make();
    lmdm_arena_t *a = lmdm_arena_new(0);
    const lmdm_route_t *rt = NULL;
    const char *params[LMDM_ROUTE_MAX_PARAMS] = {0};
    CHECK_INT_EQ(lmdm_router_match(r, "GET", "/healthz", a, &rt, params, NULL), 200);
    CHECK_STR_EQ(rt->name, "healthz");
    CHECK_INT_EQ(rt->index, 0);
    CHECK_INT_EQ(lmdm_router_match(r, "HEAD", "/healthz", a, &rt, params, NULL), 200);
    CHECK_INT_EQ(lmdm_router_match(r, "GET", "/healthz/", a, &rt, params, NULL), 404);
    CHECK_INT_EQ(lmdm_router_match(r, "GET", "/health", a, &rt, params, NULL), 404);
    CHECK_INT_EQ(lmdm_router_match(r, "GET", "/healthzz", a, &rt, params, NULL), 404);
    CHECK_INT_EQ(lmdm_router_match(r, "PUT", "/mdm/connect", a, &rt, params, NULL), 200);
    CHECK_INT_EQ((long long)rt->body_limit, 4096);
    lmdm_arena_free(a);
    lmdm_router_free(r);
}

static void test_params(void)
{
    lmdm_router_t *r = make();
    lmdm_arena_t *a = lmdm_arena_new(0);
    const lmdm_route_t *rt = NULL;
    const char *params[LMDM_ROUTE_MAX_PARAMS] = {0};
    CHECK_INT_EQ(lmdm_router_match(r, "GET", "/v1/enrollments/abc123", a, &rt, params, NULL), 200);
    CHECK_STR_EQ(rt->name, "enrollment");
    CHECK_STR_EQ(params[0], "abc123");
    CHECK_INT_EQ(lmdm_router_match(r, "POST", "/v1/enrollments/e1/commands/c2", a, &rt, params, NULL), 200);
    CHECK_STR_EQ(params[0], "e1");
    CHECK_STR_EQ(params[1], "c2");
    /* a parameter is one non-empty segment */
    CHECK_INT_EQ(lmdm_router_match(r, "GET", "/v1/enrollments/", a, &rt, params, NULL), 404);
    CHECK_INT_EQ(lmdm_router_match(r, "GET", "/v1/enrollments/a/b", a, &rt, params, NULL), 404);
    lmdm_arena_free(a);
    lmdm_router_free(r);
}

static void test_405(void)
{
    lmdm_router_t *r = make();
    lmdm_arena_t *a = lmdm_arena_new(0);
    const lmdm_route_t *rt = NULL;
    const char *params[LMDM_ROUTE_MAX_PARAMS] = {0};
    const char *allow = NULL;
    CHECK_INT_EQ(lmdm_router_match(r, "DELETE", "/healthz", a, &rt, params, &allow), 405);
    CHECK_STR_EQ(allow, "GET, HEAD");
    CHECK_INT_EQ(lmdm_router_match(r, "GET", "/mdm/connect", a, &rt, params, &allow), 405);
    CHECK_STR_EQ(allow, "PUT");
    lmdm_arena_free(a);
    lmdm_router_free(r);
}

static void test_limits(void)
{
    lmdm_router_t *r = lmdm_router_new();
    CHECK_INT_EQ(lmdm_router_add(r, "GET", "no-slash", "x", h_a, 0), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_router_add(r, "GET", "/{a}/{b}/{c}/{d}/{e}", "x", h_a, 0), LMDM_ERR_INVALID);
    int rv = 0;
    for (int i = 0; i < LMDM_ROUTER_MAX_ROUTES; i++) rv |= lmdm_router_add(r, "GET", "/x", "x", h_a, 0);
    CHECK_INT_EQ(rv, 0);
    CHECK_INT_EQ(lmdm_router_add(r, "GET", "/y", "y", h_a, 0), LMDM_ERR_INVALID);
    CHECK_INT_EQ((long long)lmdm_router_count(r), LMDM_ROUTER_MAX_ROUTES);
    lmdm_router_free(r);
}

int main(void)
{
    RUN(test_literal);
    RUN(test_params);
    RUN(test_405);
    RUN(test_limits);
    return harness_finish();
}
