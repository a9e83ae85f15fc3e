/* The tenant API for OS updates (issue 7, docs/osupdate.md):
 *   PUT/GET/DELETE /v1/rules/osupdate    the tenant's requirement (all its enrollments)
 *   GET /v1/enrollments/{id}/osupdate    where its requirement stands on one device
 *   GET /v1/rings                        the operator's rings (for latest_ring)
 *   GET /v1/releases[?platform=iOS|macOS] the OS releases the broker knows
 * The broker merges every tenant's requirement into one plan per device
 * (broker/osupdate/osupdate_apply.c); a tenant sees its own requirement and
 * its own state, never another tenant's. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/db.h"
#include "lmdm/osupdate_json.h"
#include "lmdm/server.h"
#include "lmdm/tenant_api.h"

static const lmdm_db_stmt_t st_put = {"osu_put", "SELECT tenant_osupdate_put($1, $2::jsonb)", 2};
static const lmdm_db_stmt_t st_get = {
    "osu_get",
    "SELECT rule::text, lmdm_ts(updated_at) FROM tenant_osupdate WHERE tenant_id = $1 AND enrollment_id IS NULL", 1};
static const lmdm_db_stmt_t st_view = {"osu_view", "SELECT code, body FROM tenant_osupdate_view($1, $2)", 2};
static const lmdm_db_stmt_t st_rings = {
    "osu_rings",
    "SELECT coalesce(json_agg(json_build_object('name', name, 'delay_days', delay_days, 'default', is_default) "
    "ORDER BY delay_days, name), '[]')::text FROM rings",
    0};

static const lmdm_db_stmt_t st_releases = {
    "osu_releases",
    "SELECT json_build_object('releases', coalesce(json_agg(json_build_object('platform', platform, 'version', "
    "version, 'build', build, 'released', released, 'security', security, 'models', cardinality(devices)) "
    "ORDER BY platform, string_to_array(version, '.')::int[] DESC), '[]'))::text FROM os_releases "
    "WHERE $1::text IS NULL OR platform = $1",
    1};

static void put_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    const char *code = PQgetvalue(res, 0, 0);
    if (strcmp(code, "absent") == 0) {
        lmdm_http_respond_error(t->req, 404, "not_found", "no OS-update rule to delete");
    } else if (strcmp(code, "unknown_ring") == 0) {
        lmdm_http_respond_error(t->req, 400, "bad_rule", "latest_ring: no such ring (GET /v1/rings lists them)");
    } else if (strcmp(t->req->method, "DELETE") == 0) {
        lmdm_http_respond(t->req, 204, NULL, NULL, 0);
    } else {
        lmdm_http_respond(t->req, 200, "application/json", t->cursor, strlen(t->cursor));
    }
}

static void put_rule(lmdm_tenant_ctx_t *t)
{
    lmdm_http_req_t *req = t->req;
    json_error_t jerr;
    json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    char err[256];
    lmdm_osu_rule_t r;
    if (!j || !json_is_object(j)) {
        snprintf(err, sizeof err, "body is not a JSON object%s%s", j ? "" : ": ", j ? "" : jerr.text);
        json_decref(j);
        lmdm_http_respond_error(req, 400, "bad_json", err);
        return;
    }
    int bad = lmdm_osu_rule_from_json(j, &r, err, sizeof err);
    json_decref(j);
    if (bad) {
        lmdm_http_respond_error(req, 400, "bad_rule", err);
        return;
    }
    json_t *norm = lmdm_osu_rule_to_json(&r);
    char *text = json_dumps(norm, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(norm);
    t->cursor = lmdm_arena_strdup(req->arena, text ? text : "{}");
    free(text);
    const char *p[] = {t->tenant, t->cursor};
    lmdm_tenant_query(t, &st_put, p, put_done);
}

static void delete_rule(lmdm_tenant_ctx_t *t)
{
    const char *p[] = {t->tenant, NULL};
    lmdm_tenant_query(t, &st_put, p, put_done);
}

static void get_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    if (PQntuples(res) == 0) {
        lmdm_http_respond_error(t->req, 404, "not_found", "no OS-update rule");
        return;
    }
    json_t *rule = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    json_t *j = json_pack("{s:s,s:o,s:s}", "section", "osupdate", "rule", rule ? rule : json_object(), "updated_at",
                          PQgetvalue(res, 0, 1));
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    lmdm_http_respond(t->req, 200, "application/json", s, strlen(s));
    free(s);
}

static void get_rule(lmdm_tenant_ctx_t *t)
{
    const char *p[] = {t->tenant};
    lmdm_tenant_query(t, &st_get, p, get_done);
}

void lmdm_tenant_osupdate_rule(lmdm_tenant_ctx_t *t)
{
    const char *m = t->req->method;
    if (strcmp(m, "PUT") == 0) put_rule(t);
    else if (strcmp(m, "DELETE") == 0) delete_rule(t);
    else get_rule(t);
}

static void view_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    lmdm_tenant_respond_enrollment_row(t, res);
}

static void get_view(lmdm_tenant_ctx_t *t)
{
    const char *p[] = {t->tenant, t->req->params[0]};
    lmdm_tenant_query(t, &st_view, p, view_done);
}

/* One JSON value computed by the database. */
static void rings_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    lmdm_http_respond(t->req, 200, "application/json", PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
}

static void get_rings(lmdm_tenant_ctx_t *t) { lmdm_tenant_query(t, &st_rings, NULL, rings_done); }

static void get_releases(lmdm_tenant_ctx_t *t)
{
    const char *platform = lmdm_tenant_query_param(t->req, "platform");
    if (platform && strcmp(platform, "iOS") != 0 && strcmp(platform, "macOS") != 0) {
        lmdm_http_respond_error(t->req, 400, "bad_request", "platform is iOS or macOS");
        return;
    }
    const char *p[] = {platform};
    lmdm_tenant_query(t, &st_releases, p, rings_done); /* one JSON value, as for the rings */
}

static void h_view(lmdm_http_req_t *req) { lmdm_tenant_begin(req, "admin", get_view); }
static void h_rings(lmdm_http_req_t *req) { lmdm_tenant_begin(req, "admin", get_rings); }
static void h_releases(lmdm_http_req_t *req) { lmdm_tenant_begin(req, "admin", get_releases); }

int lmdm_tenant_osupdate_routes(lmdm_router_t *r)
{
    int rv = 0;
    rv |= lmdm_router_add(r, "GET", "/v1/enrollments/{id}/osupdate", "v1_osupdate", h_view, 1024);
    rv |= lmdm_router_add(r, "GET", "/v1/rings", "v1_rings", h_rings, 1024);
    rv |= lmdm_router_add(r, "GET", "/v1/releases", "v1_releases", h_releases, 1024);
    return rv ? LMDM_ERR_INVALID : 0;
}
