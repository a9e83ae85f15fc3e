/* The tenant API (/v1): routes, and the authentication step every tenant
 * request goes through first. */
#ifndef LMDM_TENANT_API_H
#define LMDM_TENANT_API_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "lmdm/config.h"
#include "lmdm/db.h"
#include "lmdm/http.h"
#include "lmdm/router.h"
#include "lmdm/secrets.h"
#include "lmdm/tenant_command.h"

/* Per-request state of a tenant API call (request arena). */
typedef struct lmdm_tenant_ctx {
    lmdm_http_req_t *req;
    int64_t tenant_id;         /* 0 for the operator's global auditor key */
    char tenant[24];           /* tenant_id as a query parameter */
    char key_id[13];
    const char *role;          /* "admin" | "auditor" */
    const char *need_role;
    void (*next)(struct lmdm_tenant_ctx *);
    /* handler state */
    int limit;
    const char *cursor;
    char code[64];
    char api_id[37], broker_uuid[37];
    lmdm_tenant_command_t cmd;
    int no_push;
    int raw_plist;               /* NanoMDM-style enqueue: the body is a plist whatever its Content-Type */
    const char *pseudonym;       /* the enrollment a command is for */
    lmdm_policy_verdict_t verdict;
    void (*finish)(struct lmdm_tenant_ctx *); /* gets out_status/out_body */
    int out_status;
    json_t *out_body;
    const char *rules_json;
    const char *osupdate_json;   /* a ScheduleOSUpdate folded into this enrollment's OS-update rule */
    PGresult *held;              /* a result kept across two queries (audit export) */      /* device-wide rules a profile carried: {section: rules} for this enrollment */
    const char **nano_ids;
    int nano_n, nano_i;
    json_t *nano_status;
} lmdm_tenant_ctx_t;

/** Authenticate a tenant API request (Authorization: Bearer <key>, or Basic
 * with the key as password for NanoMDM-style clients), check the role and the
 * tenant's rate limit, then call next(ctx). Refusals: 401 missing, unknown,
 * revoked key or disabled tenant; 403 wrong role; 429 over the rate limit;
 * 503 without a configured secret_key. */
void lmdm_tenant_begin(lmdm_http_req_t *req, const char *need_role, void (*next)(lmdm_tenant_ctx_t *));

/** Run one statement for a tenant request; answers 503 itself when the
 * database is away (the callback is then never called). */
void lmdm_tenant_query(lmdm_tenant_ctx_t *t, const lmdm_db_stmt_t *st, const char *const *params,
                       lmdm_db_result_cb cb);

/** In a database callback: 0 if err is 0; otherwise answer (503 while the
 * database is away, 500 with the error logged on a server error) and 1. */
int lmdm_tenant_db_failed(lmdm_tenant_ctx_t *t, int err, PGresult *res);

/** Answers a (code, body) row about one of the tenant's enrollments:
 * not_found → 404, gone → 410, otherwise 200 with the body (JSON). */
void lmdm_tenant_respond_enrollment_row(lmdm_tenant_ctx_t *t, PGresult *res);

/** Query parameter `name` of the request (not percent-decoded: the API's
 * parameters are ids, numbers and times; callers validate them), "" for a
 * bare name, or NULL. */
const char *lmdm_tenant_query_param(lmdm_http_req_t *req, const char *name);

/** Add the /v1 routes. */
int lmdm_tenant_routes(lmdm_router_t *r, const lmdm_config_t *cfg);

/** Add /v1/rules/{section} and /v1/enrollments/{id}/compliance (tenants/api_rules.c). */
int lmdm_tenant_rules_routes(lmdm_router_t *r);
/** GET /v1/enrollments/{id}/osupdate, /v1/rings and /v1/releases (tenants/api_osupdate.c). */
int lmdm_tenant_osupdate_routes(lmdm_router_t *r);
/** /v1/rules/osupdate (PUT, GET, DELETE), dispatched by the rules API. */
void lmdm_tenant_osupdate_rule(lmdm_tenant_ctx_t *t);

/** Add the auditor API /v1/audit... (tenants/api_audit.c). */
int lmdm_audit_routes(lmdm_router_t *r);

#endif
