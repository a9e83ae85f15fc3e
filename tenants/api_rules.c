/* The tenant API for device-wide rules (DESIGN.md flow 5):
 *   PUT/GET/DELETE /v1/rules/{section}   passcode | encryption | restrictions | domains
 *                                        (osupdate: tenants/api_osupdate.c)
 *   GET /v1/enrollments/{id}/compliance  this tenant's requirements, met or not
 * A rule applies to every enrollment of the tenant; the broker merges all
 * tenants' rules per device (broker/rules/rules_apply.c). A tenant sees only its
 * own rules and whether they are met, never another tenant's. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/db.h"
#include "lmdm/log.h"
#include "lmdm/rules_json.h"
#include "lmdm/server.h"
#include "lmdm/tenant_api.h"

static const lmdm_db_stmt_t st_put = {"r_put", "SELECT tenant_rules_put($1, $2, $3::jsonb)", 3};
static const lmdm_db_stmt_t st_get = {
    "r_get",
    "SELECT rules::text, lmdm_ts(updated_at) FROM tenant_rules WHERE tenant_id = $1 AND enrollment_id IS NULL "
    "AND section = $2",
    2};
static const lmdm_db_stmt_t st_compliance = {"r_compliance", "SELECT code, body FROM tenant_compliance($1, $2)", 2};

static const char *const sections[] = {"passcode", "encryption", "restrictions", "domains"};

static const char *section_of(lmdm_http_req_t *req)
{
    for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
        if (strcmp(req->params[0], sections[i]) == 0) return sections[i];
    lmdm_http_respond_error(req, 404, "not_found", "no such rule section (passcode, encryption, restrictions, domains, osupdate)");
    return NULL;
}

static void put_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    if (strcmp(PQgetvalue(res, 0, 0), "absent") == 0) {
        lmdm_http_respond_error(t->req, 404, "not_found", "no rule of this section to delete");
        return;
    }
    if (strcmp(t->req->method, "DELETE") == 0) {
        lmdm_http_respond(t->req, 204, NULL, NULL, 0);
        return;
    }
    /* The rule as stored (normalised). */
    lmdm_http_respond(t->req, 200, "application/json", t->cursor, strlen(t->cursor));
}

static void put_rule(lmdm_tenant_ctx_t *t)
{
    lmdm_http_req_t *req = t->req;
    const char *section = section_of(req);
    if (!section) return;
    json_error_t jerr;
    json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    char err[256];
    lmdm_rules_t r;
    memset(&r, 0, sizeof(r));
    if (!j || !json_is_object(j)) {
        snprintf(err, sizeof(err), "body is not a JSON object%s%s", j ? "" : ": ", j ? "" : jerr.text);
        json_decref(j);
        lmdm_http_respond_error(req, 400, "bad_json", err);
        return;
    }
    if (lmdm_rules_from_json(section, j, &r, err, sizeof(err)) != 0) {
        json_decref(j);
        lmdm_http_respond_error(req, 400, "bad_rule", err);
        return;
    }
    json_decref(j);
    json_t *norm = lmdm_rules_section_to_json(&r, section);
    lmdm_rules_free(&r);
    char *text = json_dumps(norm, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(norm);
    t->cursor = lmdm_arena_strdup(req->arena, text ? text : "{}");
    free(text);
    const char *p[] = {t->tenant, section, t->cursor};
    lmdm_tenant_query(t, &st_put, p, put_done);
}

static void delete_rule(lmdm_tenant_ctx_t *t)
{
    const char *section = section_of(t->req);
    if (!section) return;
    const char *p[] = {t->tenant, section, NULL};
    lmdm_tenant_query(t, &st_put, p, put_done);
}

static void get_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    if (PQntuples(res) == 0) {
        lmdm_http_respond_error(t->req, 404, "not_found", "no rule of this section");
        return;
    }
    json_t *rule = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    json_t *j = json_pack("{s:s,s:o,s:s}", "section", t->req->params[0], "rule", rule ? rule : json_object(),
                          "updated_at", PQgetvalue(res, 0, 1));
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    lmdm_http_respond(t->req, 200, "application/json", s, strlen(s));
    free(s);
}

static void get_rule(lmdm_tenant_ctx_t *t)
{
    const char *section = section_of(t->req);
    if (!section) return;
    const char *p[] = {t->tenant, section};
    lmdm_tenant_query(t, &st_get, p, get_done);
}

static void compliance_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    lmdm_tenant_respond_enrollment_row(t, res);
}

static void get_compliance(lmdm_tenant_ctx_t *t)
{
    const char *p[] = {t->tenant, t->req->params[0]};
    lmdm_tenant_query(t, &st_compliance, p, compliance_done);
}

/* OS updates are a section of their own (tenants/api_osupdate.c). */
static int is_osupdate(const lmdm_http_req_t *req) { return strcmp(req->params[0], "osupdate") == 0; }

static void h_put(lmdm_http_req_t *req)
{
    lmdm_tenant_begin(req, "admin", is_osupdate(req) ? lmdm_tenant_osupdate_rule : put_rule);
}
static void h_get(lmdm_http_req_t *req)
{
    lmdm_tenant_begin(req, "admin", is_osupdate(req) ? lmdm_tenant_osupdate_rule : get_rule);
}
static void h_delete(lmdm_http_req_t *req)
{
    lmdm_tenant_begin(req, "admin", is_osupdate(req) ? lmdm_tenant_osupdate_rule : delete_rule);
}
static void h_compliance(lmdm_http_req_t *req) { lmdm_tenant_begin(req, "admin", get_compliance); }

int lmdm_tenant_rules_routes(lmdm_router_t *r)
{
    int rv = 0;
    rv |= lmdm_router_add(r, "PUT", "/v1/rules/{section}", "v1_rules_put", h_put, 64 * 1024);
    rv |= lmdm_router_add(r, "GET", "/v1/rules/{section}", "v1_rules", h_get, 1024);
    rv |= lmdm_router_add(r, "DELETE", "/v1/rules/{section}", "v1_rules_delete", h_delete, 1024);
    rv |= lmdm_router_add(r, "GET", "/v1/enrollments/{id}/compliance", "v1_compliance", h_compliance, 1024);
    return rv ? LMDM_ERR_INVALID : 0;
}
