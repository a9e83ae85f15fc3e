/* Authentication, roles and rate limits of the tenant API.
 *
 * An API key is "lmdm_<id>_<secret>": the id (12 base32 characters) finds the
 * row, and the keyed BLAKE2b hash of the whole key is compared with the stored
 * one in constant time. Only hashes are stored. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lmdm/app.h"
#include "lmdm/db.h"
#include "lmdm/log.h"
#include "lmdm/server.h"
#include "lmdm/tenant_api.h"

static const lmdm_db_stmt_t st_key = {
    "t_api_key", "SELECT tenant_id, role, key_hash, revoked, tenant_active FROM api_key_get($1)", 1};

static void unauthorized(lmdm_http_req_t *req, const char *message)
{
    lmdm_http_resp_header(req, "WWW-Authenticate", "Bearer realm=\"lmdm\"");
    lmdm_http_respond_error(req, 401, "unauthorized", message);
}

/* The key from "Bearer KEY" or "Basic base64(user:KEY)", into out. */
static int extract_key(const char *auth, char *out, size_t outlen)
{
    if (!auth) return -1;
    if (strncasecmp(auth, "Bearer ", 7) == 0) {
        const char *k = auth + 7;
        while (*k == ' ') k++;
        if (strlen(k) >= outlen) return -1;
        strcpy(out, k);
        return 0;
    }
    if (strncasecmp(auth, "Basic ", 6) == 0) {
        unsigned char dec[256];
        size_t dlen = 0;
        const char *b = auth + 6;
        while (*b == ' ') b++;
        if (sodium_base642bin(dec, sizeof(dec) - 1, b, strlen(b), NULL, &dlen, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0)
            return -1;
        dec[dlen] = '\0';
        const char *colon = memchr(dec, ':', dlen);
        if (!colon || strlen(colon + 1) >= outlen) return -1;
        strcpy(out, colon + 1);
        return 0;
    }
    return -1;
}

/* "lmdm_" + 12 base32 + "_" + 43 base64url. */
static int key_id(const char *key, char id[13])
{
    if (strncmp(key, "lmdm_", 5) != 0 || strlen(key) != 5 + 12 + 1 + 43 || key[17] != '_') return -1;
    for (int i = 0; i < 12; i++) {
        char c = key[5 + i];
        if (!((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'))) return -1;
        id[i] = c;
    }
    id[12] = '\0';
    return 0;
}

int lmdm_tenant_db_failed(lmdm_tenant_ctx_t *t, int err, PGresult *res)
{
    if (!err) return 0;
    if (err == LMDM_ERR_DB) {
        lmdm_error("tenant %lld: %s: %s", (long long)t->tenant_id, t->req->route->name,
                   res ? PQresultErrorMessage(res) : "?");
        lmdm_http_respond_error(t->req, 500, "internal", "database error");
    } else {
        lmdm_http_respond_unavailable(t->req);
    }
    return 1;
}

void lmdm_tenant_query(lmdm_tenant_ctx_t *t, const lmdm_db_stmt_t *st, const char *const *params,
                       lmdm_db_result_cb cb)
{
    if (lmdm_db_query(t->req->worker->db, st, st->nparams, params, cb, t) != 0) lmdm_http_respond_unavailable(t->req);
}

static void key_looked_up(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    lmdm_http_req_t *req = t->req;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    char hash[65];
    lmdm_secrets_token_hash(req->worker->app->secrets, "api-key", t->cursor, hash);
    t->cursor = NULL;
    /* Compare even when the row is missing, so timing says nothing. */
    const char *stored = PQntuples(res) == 1 ? PQgetvalue(res, 0, 2) : "";
    char cmp[65] = {0};
    snprintf(cmp, sizeof(cmp), "%s", stored);
    int match = sodium_memcmp(hash, cmp, 64) == 0 && PQntuples(res) == 1;
    if (!match) {
        lmdm_info("tenant api: refused key %s (unknown or wrong)", t->key_id);
        unauthorized(req, "unknown API key");
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 3), "t") == 0) {
        unauthorized(req, "this API key was revoked");
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 4), "t") != 0) {
        unauthorized(req, "this tenant is disabled");
        return;
    }
    t->role = lmdm_arena_strdup(req->arena, PQgetvalue(res, 0, 1));
    t->tenant_id = PQgetisnull(res, 0, 0) ? 0 : atoll(PQgetvalue(res, 0, 0));
    snprintf(t->tenant, sizeof(t->tenant), "%lld", (long long)t->tenant_id);
    /* The operator's global key (tenant 0) is an auditor key and reads the
     * audit API only. */
    if (strcmp(t->role, t->need_role) != 0 || (t->tenant_id == 0 && strcmp(t->need_role, "auditor") != 0)) {
        char msg[128];
        snprintf(msg, sizeof(msg), "this needs a%s %s key of a tenant", t->need_role[0] == 'a' ? "n" : "",
                 t->need_role);
        lmdm_http_respond_error(req, 403, "forbidden_role", msg);
        return;
    }
    /* Bucket per tenant; the global key has its own (key -1: 0 marks an empty slot). */
    int wait = lmdm_ratelimit_take(req->worker->app->ratelimit, t->tenant_id ? t->tenant_id : -1, lmdm_now_ns());
    if (wait > 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", wait);
        lmdm_http_resp_header(req, "Retry-After", ra);
        lmdm_http_respond_error(req, 429, "rate_limited", "too many requests from this tenant; retry later");
        return;
    }
    t->next(t);
}

void lmdm_tenant_begin(lmdm_http_req_t *req, const char *need_role, void (*next)(lmdm_tenant_ctx_t *))
{
    const struct lmdm_app *app = req->worker->app;
    if (!app || !app->secrets || !app->ratelimit || !req->worker->db) {
        lmdm_http_respond_error(req, 503, "not_configured", "the tenant API needs secret_key and a database");
        return;
    }
    lmdm_tenant_ctx_t *t = lmdm_arena_alloc(req->arena, sizeof(*t));
    memset(t, 0, sizeof(*t));
    t->req = req;
    t->need_role = need_role;
    t->next = next;
    char key[128];
    if (extract_key(lmdm_http_req_header(req, "authorization"), key, sizeof(key)) != 0) {
        unauthorized(req, "send Authorization: Bearer <API key>");
        return;
    }
    if (key_id(key, t->key_id) != 0) {
        unauthorized(req, "malformed API key");
        return;
    }
    t->cursor = lmdm_arena_strdup(req->arena, key); /* the key, until it is checked */
    const char *p[] = {t->key_id};
    if (lmdm_db_query(req->worker->db, &st_key, 1, p, key_looked_up, t) != 0) lmdm_http_respond_unavailable(req);
    sodium_memzero(key, sizeof(key));
}

void lmdm_tenant_respond_enrollment_row(lmdm_tenant_ctx_t *t, PGresult *res)
{
    const char *code = PQntuples(res) == 0 || PQgetisnull(res, 0, 0) ? "not_found" : PQgetvalue(res, 0, 0);
    if (strcmp(code, "not_found") == 0) lmdm_http_respond_error(t->req, 404, "not_found", "no such enrollment");
    else if (strcmp(code, "gone") == 0) lmdm_http_respond_error(t->req, 410, "gone", "this enrollment has ended");
    else lmdm_http_respond(t->req, 200, "application/json", PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1));
}
