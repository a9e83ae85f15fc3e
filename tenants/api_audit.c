/* The auditor API (role auditor, read-only; docs/audit.md):
 *   GET /v1/audit              sealed ledger entries, paged (?after=<pos>&limit=), filtered by
 *                              ?since=&until= (RFC 3339), ?request_type=, ?decision=, ?tenant=
 *                              (global auditor key only)
 *   GET /v1/audit/checkpoints  the signed chain heads (?after=<pos>&limit=)
 *   GET /v1/audit/key          the ledger's Ed25519 public key (public)
 *   GET /v1/audit/export       the export as JSON lines (the format `lmdm audit verify` reads)
 * A tenant's auditor key sees that tenant's entries only; the operator's
 * global auditor key sees all. Entries name enrollments by pseudonym, never
 * a device. */
#define _XOPEN_SOURCE 700 /* strptime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmdm/app.h"
#include "lmdm/db.h"
#include "lmdm/ledger.h"
#include "lmdm/log.h"
#include "lmdm/server.h"
#include "lmdm/tenant_api.h"

#define AUDIT_PAGE_MAX 1000
/* Entries one API export may hold: it is built on the worker's event loop in one go
 * (about 12 MB and tens of milliseconds at this size); larger ledgers are
 * exported with `lmdm audit export`, which streams from its own connection. */
#define EXPORT_MAX 20000

static const lmdm_db_stmt_t st_entries = {
    "a_entries",
    "SELECT " LMDM_LEDGER_ENTRY_COLUMNS " FROM ledger_seal s LEFT JOIN ledger l ON l.seq = s.seq "
    "WHERE s.pos > $1::bigint AND ($2::bigint IS NULL OR l.tenant_id = $2::bigint) "
    "AND ($3::timestamptz IS NULL OR l.at >= $3::timestamptz) AND ($4::timestamptz IS NULL OR l.at < $4::timestamptz) "
    "AND ($5::text IS NULL OR l.request_type = $5) AND ($6::text IS NULL OR l.decision = $6) "
    "ORDER BY s.pos LIMIT $7::int",
    7};
static const lmdm_db_stmt_t st_checkpoints = {
    "a_checkpoints",
    "SELECT " LMDM_LEDGER_CHECKPOINT_COLUMNS " FROM ledger_checkpoint WHERE pos > $1::bigint ORDER BY pos LIMIT $2::int",
    2};

/* A non-negative integer parameter within max; -1 (and a 400 sent) when bad. */
static long long int_param(lmdm_http_req_t *req, const char *name, long long def, long long max)
{
    const char *s = lmdm_tenant_query_param(req, name);
    if (!s) return def;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < 0 || v > max) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be a whole number from 0 to %lld", name, max);
        lmdm_http_respond_error(req, 400, "bad_parameter", msg);
        return -1;
    }
    return v;
}

/* RFC 3339 UTC ("2026-11-25T10:00:00Z"), checked before PostgreSQL sees it. */
static int time_param(lmdm_http_req_t *req, const char *name, const char **out)
{
    *out = lmdm_tenant_query_param(req, name);
    if (!*out) return 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(*out, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be a time like 2026-11-25T10:00:00Z", name);
        lmdm_http_respond_error(req, 400, "bad_parameter", msg);
        return -1;
    }
    return 0;
}

/* A short word parameter (request type, decision): letters only. */
static int word_param(lmdm_http_req_t *req, const char *name, const char **out)
{
    *out = lmdm_tenant_query_param(req, name);
    if (!*out) return 0;
    size_t n = strlen(*out);
    int ok = n > 0 && n <= 100;
    for (size_t i = 0; ok && i < n; i++)
        ok = ((*out)[i] >= 'a' && (*out)[i] <= 'z') || ((*out)[i] >= 'A' && (*out)[i] <= 'Z');
    if (!ok) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be a word of letters", name);
        lmdm_http_respond_error(req, 400, "bad_parameter", msg);
        return -1;
    }
    return 0;
}

/* The tenant filter: a tenant's key sees its own entries; the global key all,
 * or one tenant with ?tenant=. NULL (all) or the id as text; "" when a 400 was
 * sent. */
static const char *tenant_filter(lmdm_tenant_ctx_t *t)
{
    if (t->tenant_id != 0) return t->tenant;
    long long id = int_param(t->req, "tenant", 0, 1LL << 53);
    if (id < 0) return "";
    if (id == 0) return NULL;
    char *s = lmdm_arena_alloc(t->req->arena, 24);
    snprintf(s, 24, "%lld", id);
    return s;
}

/* ---- GET /v1/audit ---- */

static void entries_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    lmdm_buf_t b = {0};
    lmdm_buf_puts(&b, "{\"entries\":[");
    int64_t last = -1;
    for (int i = 0; i < PQntuples(res); i++) {
        lmdm_ledger_entry_t e;
        if (lmdm_ledger_entry_from_row(res, i, &e) != 0) continue; /* a sealed position whose row is gone */
        size_t before = b.len;
        if (i) lmdm_buf_puts(&b, ",");
        size_t start = b.len;
        lmdm_ledger_entry_json(&b, &e);
        while (b.len > start && (b.data[b.len - 1] == '\n')) b.len--; /* a line of the export; here an element */
        if (b.len == start) b.len = before;
        last = e.pos;
    }
    lmdm_buf_printf(&b, "],\"next\":");
    if (PQntuples(res) == t->limit && last >= 0) lmdm_buf_printf(&b, "%lld}", (long long)last);
    else lmdm_buf_puts(&b, "null}");
    lmdm_http_respond(t->req, 200, "application/json", b.data, b.len);
    lmdm_buf_free(&b);
}

static void list_entries(lmdm_tenant_ctx_t *t)
{
    lmdm_http_req_t *req = t->req;
    long long after = int_param(req, "after", 0, 1LL << 62);
    if (after < 0) return;
    long long limit = int_param(req, "limit", 100, AUDIT_PAGE_MAX);
    if (limit < 0) return;
    if (limit == 0) limit = 100;
    const char *since, *until, *rt, *decision;
    if (time_param(req, "since", &since) || time_param(req, "until", &until) || word_param(req, "request_type", &rt) ||
        word_param(req, "decision", &decision))
        return;
    const char *tenant = tenant_filter(t);
    if (tenant && !*tenant) return;
    t->limit = (int)limit;
    char a[24], l[24];
    snprintf(a, sizeof a, "%lld", after);
    snprintf(l, sizeof l, "%lld", limit);
    const char *p[] = {lmdm_arena_strdup(req->arena, a), tenant, since, until, rt, decision, lmdm_arena_strdup(req->arena, l)};
    lmdm_tenant_query(t, &st_entries, p, entries_done);
}

/* ---- GET /v1/audit/checkpoints ---- */

static void checkpoints_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    lmdm_buf_t b = {0};
    lmdm_buf_puts(&b, "{\"checkpoints\":[");
    for (int i = 0; i < PQntuples(res); i++) {
        lmdm_ledger_checkpoint_t c;
        lmdm_ledger_checkpoint_from_row(res, i, &c);
        if (i) lmdm_buf_puts(&b, ",");
        size_t start = b.len;
        lmdm_ledger_checkpoint_json(&b, &c);
        while (b.len > start && b.data[b.len - 1] == '\n') b.len--;
    }
    lmdm_buf_puts(&b, "]}");
    lmdm_http_respond(t->req, 200, "application/json", b.data, b.len);
    lmdm_buf_free(&b);
}

static void list_checkpoints(lmdm_tenant_ctx_t *t)
{
    long long after = int_param(t->req, "after", 0, 1LL << 62);
    if (after < 0) return;
    long long limit = int_param(t->req, "limit", 100, AUDIT_PAGE_MAX);
    if (limit < 0) return;
    char a[24], l[24];
    snprintf(a, sizeof a, "%lld", after);
    snprintf(l, sizeof l, "%lld", limit ? limit : 100);
    const char *p[] = {lmdm_arena_strdup(t->req->arena, a), lmdm_arena_strdup(t->req->arena, l)};
    lmdm_tenant_query(t, &st_checkpoints, p, checkpoints_done);
}

/* ---- GET /v1/audit/export: entries, then every checkpoint after its entry ---- */

static void export_checkpoints(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) {
        PQclear(t->held);
        return;
    }
    PGresult *entries = t->held;
    t->held = NULL;
    lmdm_buf_t b = {0};
    lmdm_ledger_header_json(&b, t->tenant_id != 0 ? t->tenant_id : (t->cursor ? atoll(t->cursor) : -1));
    int ci = 0, nc = PQntuples(res);
    int64_t n_entries = 0, n_cp = 0;
    for (int i = 0; i < PQntuples(entries); i++) {
        lmdm_ledger_entry_t e;
        if (lmdm_ledger_entry_from_row(entries, i, &e) != 0) continue;
        /* checkpoints up to this position come before the next entry */
        while (ci < nc && atoll(PQgetvalue(res, ci, 0)) < e.pos) {
            lmdm_ledger_checkpoint_t c;
            lmdm_ledger_checkpoint_from_row(res, ci++, &c);
            lmdm_ledger_checkpoint_json(&b, &c);
            n_cp++;
        }
        lmdm_ledger_entry_json(&b, &e);
        n_entries++;
    }
    for (; ci < nc; ci++) {
        lmdm_ledger_checkpoint_t c;
        lmdm_ledger_checkpoint_from_row(res, ci, &c);
        lmdm_ledger_checkpoint_json(&b, &c);
        n_cp++;
    }
    lmdm_ledger_end_json(&b, n_entries, n_cp);
    PQclear(entries);
    lmdm_http_resp_header(t->req, "Content-Disposition", "attachment; filename=\"lmdm-ledger.jsonl\"");
    lmdm_http_respond(t->req, 200, "application/x-ndjson", b.data, b.len);
    lmdm_buf_free(&b);
}

static void export_entries(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    if (PQntuples(res) > EXPORT_MAX) {
        lmdm_http_respond_error(t->req, 413, "export_too_large",
                                "the ledger is larger than one API export; the operator's `lmdm audit export` writes it whole");
        return;
    }
    /* keep the result past this callback: the pool clears it when we return */
    t->held = PQcopyResult(res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
    char l[24];
    snprintf(l, sizeof l, "%d", 1 << 30);
    const char *p[] = {"0", lmdm_arena_strdup(t->req->arena, l)};
    if (!t->held || lmdm_db_query(t->req->worker->db, &st_checkpoints, 2, p, export_checkpoints, t) != 0) {
        PQclear(t->held);
        t->held = NULL;
        lmdm_http_respond_unavailable(t->req);
    }
}

static void export(lmdm_tenant_ctx_t *t)
{
    const char *tenant = tenant_filter(t);
    if (tenant && !*tenant) return;
    t->cursor = tenant;
    char l[24];
    snprintf(l, sizeof l, "%d", EXPORT_MAX + 1);
    const char *p[] = {"0", tenant, NULL, NULL, NULL, NULL, lmdm_arena_strdup(t->req->arena, l)};
    lmdm_tenant_query(t, &st_entries, p, export_entries);
}

/* ---- GET /v1/audit/key (public) ---- */

static void key(lmdm_http_req_t *req)
{
    const lmdm_secrets_t *sec = req->worker->app ? req->worker->app->secrets : NULL;
    if (!sec) {
        lmdm_http_respond_error(req, 503, "not_configured", "the broker has no secret_key configured");
        return;
    }
    char pk[45], kid[LMDM_LEDGER_KEY_ID_LEN + 1];
    lmdm_ledger_public_b64(sec, pk);
    unsigned char raw[32];
    if (lmdm_ledger_parse_key(pk, raw) != 0) {
        lmdm_http_respond_error(req, 500, "internal", "bad ledger key");
        return;
    }
    lmdm_ledger_key_id(raw, kid);
    char body[256];
    int n = snprintf(body, sizeof body, "{\"alg\":\"Ed25519\",\"format\":\"%s\",\"key_id\":\"%s\",\"public_key\":\"%s\"}",
                     LMDM_LEDGER_FORMAT, kid, pk);
    lmdm_http_respond(req, 200, "application/json", body, (size_t)n);
}

static void h_list(lmdm_http_req_t *req) { lmdm_tenant_begin(req, "auditor", list_entries); }
static void h_checkpoints(lmdm_http_req_t *req) { lmdm_tenant_begin(req, "auditor", list_checkpoints); }
static void h_export(lmdm_http_req_t *req) { lmdm_tenant_begin(req, "auditor", export); }

int lmdm_audit_routes(lmdm_router_t *r)
{
    int rv = 0;
    rv |= lmdm_router_add(r, "GET", "/v1/audit", "v1_audit", h_list, 1024);
    rv |= lmdm_router_add(r, "GET", "/v1/audit/checkpoints", "v1_audit_checkpoints", h_checkpoints, 1024);
    rv |= lmdm_router_add(r, "GET", "/v1/audit/key", "v1_audit_key", key, 1024);
    rv |= lmdm_router_add(r, "GET", "/v1/audit/export", "v1_audit_export", h_export, 1024);
    return rv ? LMDM_ERR_INVALID : 0;
}
