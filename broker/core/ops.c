/* /healthz, /readyz and /metrics. */
#include "lmdm/ops.h"

#include <stdio.h>
#include <stdlib.h>

#include "lmdm/log.h"
#include "lmdm/server.h"

static void healthz(lmdm_http_req_t *req)
{
    static const char ok[] = "{\"status\":\"ok\"}\n";
    lmdm_http_respond(req, 200, "application/json", ok, sizeof(ok) - 1);
}

static const lmdm_db_stmt_t stmt_schema = {
    .name = "ops_schema_version",
    .sql = "SELECT coalesce(max(version), 0) FROM schema_migrations",
    .nparams = 0,
};

static void readyz_done(void *arg, int err, PGresult *res)
{
    lmdm_http_req_t *req = arg;
    if (err) {
        lmdm_http_respond_unavailable(req);
        return;
    }
    long have = PQntuples(res) == 1 ? atol(PQgetvalue(res, 0, 0)) : 0;
    long want = lmdm_server_schema_version(req->worker->server);
    char body[160];
    int n;
    if (have < want) {
        n = snprintf(body, sizeof(body),
                     "{\"status\":\"not_migrated\",\"schema\":%ld,\"expected\":%ld}\n", have, want);
        lmdm_http_respond(req, 503, "application/json", body, (size_t)n);
        return;
    }
    n = snprintf(body, sizeof(body), "{\"status\":\"ready\",\"schema\":%ld}\n", have);
    lmdm_http_respond(req, 200, "application/json", body, (size_t)n);
}

static void readyz(lmdm_http_req_t *req)
{
    if (!req->worker->db) {
        lmdm_http_respond_error(req, 503, "no_database", "no database is configured");
        return;
    }
    if (lmdm_db_query(req->worker->db, &stmt_schema, 0, NULL, readyz_done, req) != 0)
        lmdm_http_respond_unavailable(req);
}

static void metrics(lmdm_http_req_t *req)
{
    lmdm_buf_t out = {0};
    lmdm_server_render_metrics(req->worker->server, &out);
    lmdm_http_respond(req, 200, "text/plain; version=0.0.4", out.data, out.len);
    lmdm_buf_free(&out);
}

int lmdm_ops_routes(lmdm_router_t *r)
{
    int rv = 0;
    /* Operations endpoints take no body: a small limit refuses large uploads early. */
    rv |= lmdm_router_add(r, "GET", "/healthz", "healthz", healthz, 1024);
    rv |= lmdm_router_add(r, "GET", "/readyz", "readyz", readyz, 1024);
    rv |= lmdm_router_add(r, "GET", "/metrics", "metrics", metrics, 1024);
    return rv ? LMDM_ERR_INVALID : 0;
}
