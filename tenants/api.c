/* The tenant API under /v1 (JSON, both HTTP framings): invitations,
 * enrollments, commands and their results, the webhook setting, the public
 * signing key. Every answer about a device names it only by the tenant's
 * pseudonymous enrollment id. An enrollment or command of another tenant, or
 * one that does not exist, gets the same 404.
 *
 * Every handler is a short chain of asynchronous steps: authenticate
 * (tenant_auth.c), then one or two database calls, then the answer. */
#include "lmdm/tenant_api.h"

#include <jansson.h>
#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lmdm/app.h"
#include "lmdm/db.h"
#include "lmdm/log.h"
#include "lmdm/mdm.h"
#include "lmdm/policy.h"
#include "lmdm/osupdate_apply.h"
#include "lmdm/osupdate_json.h"
#include "lmdm/rules_json.h"
#include "lmdm/server.h"
#include "lmdm/tenant_command.h"
#include "lmdm/tenant_result.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX 200
#define NANOMDM_MAX_IDS 100

static const lmdm_db_stmt_t st_enrollments = {"t_enrollments", "SELECT tenant_enrollments($1, $2, $3)", 3};
static const lmdm_db_stmt_t st_enrollment = {"t_enrollment",
                                             "SELECT state, body FROM tenant_enrollment($1, $2)", 2};
static const lmdm_db_stmt_t st_leave = {"t_leave", "SELECT tenant_leave($1, $2)", 2};
static const lmdm_db_stmt_t st_enqueue = {
    "t_enqueue",
    "SELECT code, created_at FROM tenant_enqueue_decided($1, $2, $3::uuid, $4::uuid, $5, $6, $7, $8, $9, $10, "
    "$11::boolean, $12, $13::jsonb)",
    13};
static const lmdm_db_stmt_t st_context = {
    "t_context",
    "SELECT code, platform, user_enrollment, apps, profiles, other_apps, other_profiles, wipe_as_retire "
    "FROM tenant_policy_context($1, $2)",
    2};
static const lmdm_db_stmt_t st_rules_put = {"t_rules_put", "SELECT enrollment_rules_put_many($1, $2, $3::jsonb)", 3};
static const lmdm_db_stmt_t st_osu_put = {"t_osu_put", "SELECT enrollment_osupdate_put($1, $2, $3::jsonb)", 3};
static const lmdm_db_stmt_t st_retire = {"t_retire", "SELECT tenant_retire($1, $2, $3)", 3};
static const lmdm_db_stmt_t st_record = {
    "t_record", "SELECT decision_record($1, $2, $3, $4, $5, $6::integer, $7, $8, $9::jsonb)", 9};
static const lmdm_db_stmt_t st_commands = {
    "t_commands",
    "SELECT body, request_type, tenant_uuid, result, owned_apps, owned_profiles "
    "FROM tenant_commands($1, $2::uuid, $3, $4::uuid, $5)", 5};
static const lmdm_db_stmt_t st_cancel = {"t_cancel", "SELECT tenant_cancel($1, $2::uuid)", 2};
static const lmdm_db_stmt_t st_invite = {
    "t_invite", "SELECT public_id, expires_at FROM invitation_create($1, $2, $3, $4::jsonb, $5)", 5};
static const lmdm_db_stmt_t st_webhook_set = {
    "t_webhook_set", "UPDATE tenants SET webhook_url = $2, webhook_format = coalesce($3, webhook_format) WHERE id = $1",
    3};
static const lmdm_db_stmt_t st_webhook_get = {
    "t_webhook_get",
    "SELECT webhook_url, webhook_format, (SELECT count(*) FROM outbox o WHERE o.tenant_id = t.id AND "
    "o.delivered_at IS NULL), (SELECT lmdm_ts(min(created_at)) FROM outbox o WHERE o.tenant_id = t.id AND "
    "o.delivered_at IS NULL) FROM tenants t WHERE id = $1",
    1};

/* ---- small helpers ---- */

static void respond_json(lmdm_http_req_t *req, int status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!s) {
        lmdm_http_respond_error(req, 500, "internal", "cannot encode the answer");
        return;
    }
    lmdm_http_respond(req, status, "application/json", s, strlen(s));
    free(s);
}

static void not_found(lmdm_http_req_t *req, const char *what)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "no such %s", what);
    lmdm_http_respond_error(req, 404, "not_found", msg);
}

const char *lmdm_tenant_query_param(lmdm_http_req_t *req, const char *name)
{
    size_t n = strlen(name);
    for (const char *q = req->query; q && *q;) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len > n && strncmp(q, name, n) == 0 && q[n] == '=') {
            char *v = lmdm_arena_alloc(req->arena, len - n);
            memcpy(v, q + n + 1, len - n - 1);
            v[len - n - 1] = '\0';
            return v;
        }
        if (len == n && strncmp(q, name, n) == 0) return "";
        q = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* ?limit=N within 1..PAGE_MAX; -1 (and a 400 sent) when malformed. */
static int page_limit(lmdm_http_req_t *req)
{
    const char *s = lmdm_tenant_query_param(req, "limit");
    if (!s) return PAGE_DEFAULT;
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1 || v > PAGE_MAX) {
        lmdm_http_respond_error(req, 400, "bad_parameter", "limit must be a number from 1 to 200");
        return -1;
    }
    return (int)v;
}

static int is_pseudonym(const char *s)
{
    if (!s || strlen(s) != LMDM_PSEUDONYM_LEN || s[0] != 'e') return 0;
    for (const char *p = s + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '2' && *p <= '7'))) return 0;
    return 1;
}

static const char *canon_uuid(lmdm_http_req_t *req, const char *s)
{
    char c[37];
    if (!s || lmdm_uuid_canon(s, c) != 0) return NULL;
    return lmdm_arena_strdup(req->arena, c);
}

static json_t *parse_json_body(lmdm_http_req_t *req, int allow_empty)
{
    if (req->body_len == 0 && allow_empty) return json_object();
    json_error_t jerr;
    json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j || !json_is_object(j)) {
        char msg[200];
        snprintf(msg, sizeof(msg), "body is not a JSON object%s%s", j ? "" : ": ", j ? "" : jerr.text);
        json_decref(j);
        lmdm_http_respond_error(req, 400, "bad_json", msg);
        return NULL;
    }
    return j;
}

/* ---- GET /v1/keys (public) ---- */

static void get_keys(lmdm_http_req_t *req)
{
    const lmdm_secrets_t *sec = req->worker->app ? req->worker->app->secrets : NULL;
    if (!sec) {
        lmdm_http_respond_error(req, 503, "not_configured", "the broker has no secret_key configured");
        return;
    }
    char pk[45];
    lmdm_secrets_public_b64(sec, pk);
    respond_json(req, 200,
                 json_pack("{s:[{s:s,s:s,s:s}]}", "keys", "alg", "Ed25519", "use", "webhook", "public_key", pk));
}

/* ---- POST /v1/invitations ---- */

static void invite_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    const char *base = t->req->worker->config->public_url;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/') blen--;
    char url[1024];
    snprintf(url, sizeof(url), "%.*s/invite/%s", (int)blen, base, t->code);
    respond_json(t->req, 201,
                 json_pack("{s:s,s:s,s:s,s:s}", "id", PQgetvalue(res, 0, 0), "code", t->code, "url", url,
                           "expires_at", PQgetvalue(res, 0, 1)));
}

static void invite(lmdm_tenant_ctx_t *t)
{
    lmdm_http_req_t *req = t->req;
    json_t *j = parse_json_body(req, 1);
    if (!j) return;
    const lmdm_config_t *cfg = req->worker->config;
    json_t *note = json_object_get(j, "note"), *rules = json_object_get(j, "rules"),
           *exp = json_object_get(j, "expires_in");
    const char *bad = NULL;
    if (note && (!json_is_string(note) || json_string_length(note) > 500)) bad = "note must be a string of at most 500 characters";
    else if (rules && !json_is_object(rules)) bad = "rules must be an object";
    else if (exp && (!json_is_integer(exp) || json_integer_value(exp) < 60 ||
                     json_integer_value(exp) > cfg->invitation_ttl_s))
        bad = "expires_in must be whole seconds from 60 to the broker's invitation_ttl";
    char *rules_text = rules ? json_dumps(rules, JSON_COMPACT) : NULL;
    if (!bad && rules_text && strlen(rules_text) > 16384) bad = "rules are larger than 16 KiB";
    if (bad) {
        free(rules_text);
        json_decref(j);
        lmdm_http_respond_error(req, 400, "bad_request", bad);
        return;
    }
    if (lmdm_secrets_new_token("", t->code, sizeof(t->code)) != 0) {
        free(rules_text);
        json_decref(j);
        lmdm_http_respond_error(req, 500, "internal", "no randomness");
        return;
    }
    char hash[65], ttl[24];
    lmdm_secrets_token_hash(req->worker->app->secrets, "invitation", t->code, hash);
    snprintf(ttl, sizeof(ttl), "%lld", exp ? (long long)json_integer_value(exp) : (long long)cfg->invitation_ttl_s);
    const char *p[] = {t->tenant, hash, note ? json_string_value(note) : "", rules_text ? rules_text : "{}", ttl};
    lmdm_tenant_query(t, &st_invite, p, invite_done);
    free(rules_text);
    json_decref(j);
}

/* ---- enrollments ---- */

static void enrollments_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    json_t *list = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (!list) {
        lmdm_http_respond_error(t->req, 500, "internal", "bad list");
        return;
    }
    size_t n = json_array_size(list);
    json_t *next = json_null();
    if ((int)n == t->limit && n > 0) next = json_incref(json_object_get(json_array_get(list, n - 1), "id"));
    respond_json(t->req, 200, json_pack("{s:o,s:o}", "enrollments", list, "next", next));
}

static void list_enrollments(lmdm_tenant_ctx_t *t)
{
    if ((t->limit = page_limit(t->req)) < 0) return;
    const char *after = lmdm_tenant_query_param(t->req, "after");
    if (after && !is_pseudonym(after)) {
        lmdm_http_respond_error(t->req, 400, "bad_parameter", "after must be an enrollment id");
        return;
    }
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", t->limit);
    const char *p[] = {t->tenant, after, lmdm_arena_strdup(t->req->arena, lim)};
    lmdm_tenant_query(t, &st_enrollments, p, enrollments_done);
}

/* 404 for unknown or foreign, 410 for ended; 0 if active. */
static int enrollment_state_answer(lmdm_tenant_ctx_t *t, PGresult *res, int send_body)
{
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) { /* a function with OUT values yields a NULL row */
        not_found(t->req, "enrollment");
        return 1;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "active") != 0) {
        lmdm_http_respond_error(t->req, 410, "gone",
                                strcmp(PQgetvalue(res, 0, 0), "removed") == 0
                                    ? "this enrollment was removed: the device left the organization"
                                    : "this device is no longer enrolled");
        return 1;
    }
    if (send_body) {
        lmdm_http_respond(t->req, 200, "application/json", PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1));
        return 1;
    }
    return 0;
}

static void enrollment_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    enrollment_state_answer(t, res, 1);
}

static void get_enrollment(lmdm_tenant_ctx_t *t)
{
    const char *id = t->req->params[0];
    if (!is_pseudonym(id)) {
        not_found(t->req, "enrollment");
        return;
    }
    const char *p[] = {t->tenant, id};
    lmdm_tenant_query(t, &st_enrollment, p, enrollment_done);
}

static void leave_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    const char *code = PQgetvalue(res, 0, 0);
    if (strcmp(code, "not_found") == 0) not_found(t->req, "enrollment");
    else if (strcmp(code, "not_active") == 0)
        lmdm_http_respond_error(t->req, 410, "gone", "this enrollment has already ended");
    else
        respond_json(t->req, 200, json_pack("{s:s,s:s}", "id", t->req->params[0], "state", "removed"));
}

static void delete_enrollment(lmdm_tenant_ctx_t *t)
{
    const char *id = t->req->params[0];
    if (!is_pseudonym(id)) {
        not_found(t->req, "enrollment");
        return;
    }
    const char *p[] = {t->tenant, id};
    lmdm_tenant_query(t, &st_leave, p, leave_done);
}

/* ---- commands ---- */

/* One command row as JSON, with the tenant's view of the device's answer. */
static json_t *command_row(const lmdm_tenant_ctx_t *t, PGresult *res, int i)
{
    json_t *c = json_loads(PQgetvalue(res, i, 0), 0, NULL);
    if (!c) return NULL;
    if (!PQgetisnull(res, i, 3)) {
        lmdm_buf_t view = {0};
        const char *tu = PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2);
        char ns[32];
        lmdm_tenant_profile_ns(t->tenant_id, ns);
        lmdm_tenant_owned_t owned = {PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4),
                                     PQgetisnull(res, i, 5) ? NULL : PQgetvalue(res, i, 5), ns};
        if (lmdm_tenant_result_view(PQgetvalue(res, i, 1), PQgetvalue(res, i, 3), (size_t)PQgetlength(res, i, 3), tu,
                                    &owned, &view) == 0)
            json_object_set_new(c, "result", json_stringn(view.data ? view.data : "", view.len));
        lmdm_buf_free(&view);
    }
    return c;
}

static void command_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    if (PQntuples(res) == 0) {
        not_found(t->req, "command");
        return;
    }
    json_t *c = command_row(t, res, 0);
    if (!c) lmdm_http_respond_error(t->req, 500, "internal", "bad row");
    else respond_json(t->req, 200, c);
}

static void get_command(lmdm_tenant_ctx_t *t)
{
    const char *id = canon_uuid(t->req, t->req->params[0]);
    if (!id) {
        not_found(t->req, "command");
        return;
    }
    const char *p[] = {t->tenant, id, NULL, NULL, "1"};
    lmdm_tenant_query(t, &st_commands, p, command_done);
}

static void commands_list_done(void *arg, int err, PGresult *res);

static void commands_enrollment_checked(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
        not_found(t->req, "enrollment");
        return;
    }
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", t->limit);
    const char *p[] = {t->tenant, NULL, t->req->params[0], t->cursor, lmdm_arena_strdup(t->req->arena, lim)};
    lmdm_tenant_query(t, &st_commands, p, commands_list_done);
}

static void commands_list_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *c = command_row(t, res, i);
        if (c) json_array_append_new(list, c);
    }
    size_t n = json_array_size(list);
    json_t *next = json_null();
    if ((int)n == t->limit && n > 0) next = json_incref(json_object_get(json_array_get(list, n - 1), "id"));
    respond_json(t->req, 200, json_pack("{s:o,s:o}", "commands", list, "next", next));
}

static void list_commands(lmdm_tenant_ctx_t *t)
{
    if (!is_pseudonym(t->req->params[0])) {
        not_found(t->req, "enrollment");
        return;
    }
    if ((t->limit = page_limit(t->req)) < 0) return;
    const char *before = lmdm_tenant_query_param(t->req, "before");
    if (before && !(t->cursor = canon_uuid(t->req, before))) {
        lmdm_http_respond_error(t->req, 400, "bad_parameter", "before must be a command id");
        return;
    }
    const char *p[] = {t->tenant, t->req->params[0]};
    lmdm_tenant_query(t, &st_enrollment, p, commands_enrollment_checked);
}

static void cancel_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    const char *code = PQgetvalue(res, 0, 0);
    if (strcmp(code, "not_found") == 0) not_found(t->req, "command");
    else if (strcmp(code, "too_late") == 0)
        lmdm_http_respond_error(t->req, 409, "too_late", "the device has already taken this command");
    else
        respond_json(t->req, 200, json_pack("{s:s,s:s}", "id", t->cursor, "state", "cancelled"));
}

static void cancel_command(lmdm_tenant_ctx_t *t)
{
    if (!(t->cursor = canon_uuid(t->req, t->req->params[0]))) {
        not_found(t->req, "command");
        return;
    }
    const char *p[] = {t->tenant, t->cursor};
    lmdm_tenant_query(t, &st_cancel, p, cancel_done);
}

/* ---- the command pipeline: parse, context, decide, record or enqueue ----
 *
 * One enrollment at a time: the policy context (device platform, enrollment
 * type, whose apps and profiles are on the device), the decision by policy/,
 * then either the command and its decision queued in one transaction, or the
 * refusal (or merge) recorded. The outcome (status + JSON) goes to t->finish. */

static void outcome(lmdm_tenant_ctx_t *t, int status, json_t *body)
{
    t->out_status = status;
    t->out_body = body;
    t->finish(t);
}

static json_t *error_body(const char *code, const char *message)
{
    return json_pack("{s:s,s:s}", "error", code, "message", message);
}

static json_t *verdict_body(const lmdm_policy_verdict_t *v, const char *request_type)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s}", "error", "blocked", "message", v->explain, "decision", "block",
                          "reason", v->reason, "request_type", request_type);
    if (v->payload_index >= 0) {
        json_object_set_new(j, "payload_index", json_integer(v->payload_index));
        json_object_set_new(j, "payload_type", json_string(v->payload_type));
    }
    return j;
}

/* Split "a\nb" (NULL: none) into a list in the arena. */
static lmdm_strs_t lines(lmdm_arena_t *a, PGresult *res, int col)
{
    if (PQgetisnull(res, 0, col)) return (lmdm_strs_t){NULL, 0};
    char *s = lmdm_arena_strdup(a, PQgetvalue(res, 0, col));
    size_t n = 1;
    for (const char *p = s; *p; p++) n += *p == '\n';
    const char **v = lmdm_arena_alloc(a, n * sizeof(char *));
    size_t i = 0;
    for (char *save = NULL, *tok = strtok_r(s, "\n", &save); tok && i < n; tok = strtok_r(NULL, "\n", &save))
        v[i++] = tok;
    return (lmdm_strs_t){v, i};
}

/* The device-wide payloads taken out of a profile (merged_json) as rules for
 * this enrollment: {section: rules}. NULL and err on a payload that cannot
 * be a rule (e.g. maxFailedAttempts: a wipe trigger). */
static char *merged_rules(const char *merged_json, char *err, size_t errlen)
{
    json_t *list = json_loads(merged_json, 0, NULL);
    lmdm_rules_t r;
    memset(&r, 0, sizeof(r));
    size_t i;
    json_t *p;
    char *out = NULL;
    json_array_foreach(list, i, p) {
        const char *type = json_string_value(json_object_get(p, "type"));
        const char *xml = json_string_value(json_object_get(p, "plist"));
        if (!type || !xml || lmdm_rules_from_payload(type, xml, strlen(xml), &r, err, errlen) != 0) {
            if (!type || !xml) snprintf(err, errlen, "payload %zu cannot be read", i);
            goto out;
        }
    }
    json_t *by_section = json_object();
    static const char *const sections[] = {"passcode", "encryption", "restrictions", "domains"};
    for (size_t s = 0; s < sizeof(sections) / sizeof(sections[0]); s++) {
        json_t *sec = lmdm_rules_section_to_json(&r, sections[s]);
        if (sec && json_object_size(sec) > 0) json_object_set_new(by_section, sections[s], sec);
        else json_decref(sec);
    }
    out = json_dumps(by_section, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(by_section);
out:
    lmdm_rules_free(&r);
    json_decref(list);
    return out;
}

/* After the command (or the merge) was recorded: store the rules its
 * profile carried, then answer. */
static void rules_stored(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    json_t *body = t->out_body;
    if (err) {
        json_decref(body);
        lmdm_tenant_db_failed(t, err, res);
        return;
    }
    t->finish(t);
}

static void finish_with_rules(lmdm_tenant_ctx_t *t, int status, json_t *body)
{
    t->out_status = status;
    t->out_body = body;
    if (!t->rules_json && !t->osupdate_json) {
        t->finish(t);
        return;
    }
    const char *p[] = {t->tenant, t->pseudonym, t->rules_json ? t->rules_json : t->osupdate_json};
    if (lmdm_db_query(t->req->worker->db, t->rules_json ? &st_rules_put : &st_osu_put, 3, p, rules_stored, t) != 0) {
        json_decref(body);
        lmdm_http_respond_unavailable(t->req);
    }
}

static void enqueue_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    const char *code = PQgetvalue(res, 0, 0);
    const lmdm_tenant_command_t *c = &t->cmd;
    if (strcmp(code, "ok") == 0) {
        json_t *j = json_pack("{s:s,s:s,s:o,s:s,s:s,s:s,s:s}", "id", t->api_id, "enrollment_id", t->pseudonym,
                              "command_uuid", c->tenant_uuid ? json_string(c->tenant_uuid) : json_null(),
                              "request_type", c->request_type, "state", "queued", "decision",
                              lmdm_policy_kind_name(t->verdict.kind), "created_at", PQgetvalue(res, 0, 1));
        if (t->verdict.merge_payloads) json_object_set_new(j, "merged_payloads", json_integer((json_int_t)t->verdict.merge_payloads));
        finish_with_rules(t, 202, j);
    } else if (strcmp(code, "not_found") == 0) {
        outcome(t, 404, error_body("not_found", "no such enrollment"));
    } else if (strcmp(code, "gone") == 0) {
        outcome(t, 410, error_body("gone", "this enrollment has ended"));
    } else if (strcmp(code, "unreachable") == 0) {
        outcome(t, 409, error_body("unreachable", "the device has not finished enrolling"));
    } else if (strcmp(code, "duplicate") == 0) {
        outcome(t, 409, error_body("duplicate_command_uuid", "this CommandUUID was already used for this enrollment"));
    } else {
        /* not_owned / entity_owned_by_other_tenant: the atomic re-check of
         * what policy/ decided on a snapshot. */
        lmdm_policy_verdict_t v = {.kind = LMDM_POLICY_BLOCK, .reason = code, .payload_index = -1,
                                   .explain = strcmp(code, "not_owned") == 0
                                                  ? "the organization can act only on its own apps and profiles"
                                                  : "another organization manages this app or profile on the device"};
        outcome(t, 403, verdict_body(&v, c->request_type));
    }
}

static void recorded(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    if (t->verdict.kind == LMDM_POLICY_BLOCK) {
        outcome(t, 403, verdict_body(&t->verdict, t->cmd.request_type));
        return;
    }
    /* merge: nothing goes to the device as is; the merged rule will. */
    finish_with_rules(t, 202, json_pack("{s:s,s:o,s:s,s:s,s:s,s:s}", "enrollment_id", t->pseudonym, "command_uuid",
                              t->cmd.tenant_uuid ? json_string(t->cmd.tenant_uuid) : json_null(), "request_type",
                              t->cmd.request_type, "state", "accepted_for_merge", "decision", "merge", "message",
                              t->verdict.explain));
}

static void retired(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    if (strcmp(PQgetvalue(res, 0, 0), "ok") != 0) {
        outcome(t, 410, error_body("gone", "this enrollment has ended"));
        return;
    }
    outcome(t, 202, json_pack("{s:s,s:s,s:s,s:s,s:s}", "enrollment_id", t->pseudonym, "request_type", "EraseDevice",
                              "decision", "retire", "state", "removed", "message", t->verdict.explain));
}

/* A ScheduleOSUpdate is never forwarded: it becomes this enrollment's
 * OS-update requirement (lmdm/osupdate_json.h), which the broker's plan
 * merges with every other tenant's. The rule's JSON (arena), or NULL with
 * the reason. */
static const char *schedule_rule(lmdm_tenant_ctx_t *t, char *err, size_t errlen)
{
    plist_t root = NULL;
    plist_from_xml(t->cmd.payload, (uint32_t)strlen(t->cmd.payload), &root);
    plist_t cmd = root ? plist_dict_get_item(root, "Command") : NULL;
    int64_t now = lmdm_osupdate_now(t->req->worker->config);
    lmdm_osu_rule_t r;
    const char *out = NULL;
    if (!cmd) {
        snprintf(err, errlen, "the command cannot be read");
    } else if (lmdm_osu_rule_from_command(cmd, (now < 0 ? 0 : now) / 86400, &r, err, errlen) == 0) {
        json_t *j = lmdm_osu_rule_to_json(&r);
        char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(j);
        out = s ? lmdm_arena_strdup(t->req->arena, s) : NULL;
        free(s);
        if (!out) snprintf(err, errlen, "out of memory");
    }
    plist_free(root);
    return out;
}

static void context_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    const char *code = PQgetisnull(res, 0, 0) ? "not_found" : PQgetvalue(res, 0, 0);
    if (strcmp(code, "ok") != 0) {
        if (strcmp(code, "gone") == 0) outcome(t, 410, error_body("gone", "this enrollment has ended"));
        else outcome(t, 404, error_body("not_found", "no such enrollment"));
        return;
    }
    lmdm_arena_t *a = t->req->arena;
    lmdm_policy_device_t dev = {strcmp(PQgetvalue(res, 0, 1), "macos") == 0 ? LMDM_PLATFORM_MACOS : LMDM_PLATFORM_IOS,
                                strcmp(PQgetvalue(res, 0, 2), "t") == 0, strcmp(PQgetvalue(res, 0, 7), "t") == 0};
    lmdm_policy_entities_t ent = {lines(a, res, 3), lines(a, res, 4), lines(a, res, 5), lines(a, res, 6)};
    t->verdict = lmdm_policy_decide(&t->cmd.policy, &dev, &ent);
    const lmdm_tenant_command_t *c = &t->cmd;
    char *detail = NULL;
    if (c->merged_json) {
        json_t *d = json_pack("{s:o}", "merged", json_loads(c->merged_json, 0, NULL));
        detail = json_dumps(d, JSON_COMPACT);
        json_decref(d);
    }
    const char *detail_p = detail ? lmdm_arena_strdup(a, detail) : NULL;
    free(detail);
    if (c->merged_json && t->verdict.kind != LMDM_POLICY_BLOCK) {
        char rerr[256] = "";
        char *rules = merged_rules(c->merged_json, rerr, sizeof(rerr));
        if (!rules) {
            outcome(t, 400, error_body("bad_rule", rerr[0] ? rerr : "a device-wide payload cannot be merged"));
            return;
        }
        t->rules_json = lmdm_arena_strdup(a, rules);
        free(rules);
    }
    if (t->verdict.kind == LMDM_POLICY_MERGE && strcmp(c->request_type, "ScheduleOSUpdate") == 0) {
        char oerr[256];
        t->osupdate_json = schedule_rule(t, oerr, sizeof oerr);
        if (!t->osupdate_json) {
            outcome(t, 400, error_body("bad_command", oerr));
            return;
        }
    }
    if (t->verdict.retire) {
        const char *p[] = {t->tenant, t->pseudonym, c->tenant_uuid};
        lmdm_tenant_query(t, &st_retire, p, retired);
        return;
    }
    if (t->verdict.kind == LMDM_POLICY_BLOCK || t->verdict.kind == LMDM_POLICY_MERGE) {
        char idx[16];
        snprintf(idx, sizeof(idx), "%d", t->verdict.payload_index);
        const char *p[] = {t->tenant, t->pseudonym, c->request_type, lmdm_policy_kind_name(t->verdict.kind),
                           t->verdict.reason, t->verdict.payload_index >= 0 ? lmdm_arena_strdup(a, idx) : NULL,
                           t->verdict.payload_type, c->tenant_uuid, detail_p};
        lmdm_tenant_query(t, &st_record, p, recorded);
        return;
    }
    const char *p[] = {t->tenant,        t->pseudonym,  t->api_id,     t->broker_uuid,
                       c->tenant_uuid,   c->request_type, c->payload,  c->entity_kind,
                       c->entity,        c->entity_op,  t->no_push ? "true" : "false",
                       lmdm_policy_kind_name(t->verdict.kind), detail_p};
    lmdm_tenant_query(t, &st_enqueue, p, enqueue_done);
}

/* Parse the body into t->cmd with fresh broker ids; 0, or -1 with the
 * outcome set (not finished). */
static int parse_command(lmdm_tenant_ctx_t *t)
{
    lmdm_http_req_t *req = t->req;
    char err[256];
    if (lmdm_uuid_v4(t->broker_uuid) != 0 || lmdm_uuid_v4(t->api_id) != 0) {
        t->out_status = 500;
        t->out_body = error_body("internal", "no randomness");
        return -1;
    }
    /* Apple's examples write CommandUUIDs in upper case; the device echoes it. */
    for (char *c = t->broker_uuid; *c; c++)
        if (*c >= 'a' && *c <= 'f') *c = (char)(*c - 'a' + 'A');
    char ns[32];
    lmdm_tenant_profile_ns(t->tenant_id, ns);
    /* NanoMDM's enqueue takes the raw plist whatever the Content-Type says
     * (curl --data-binary sends a form type). */
    const char *ct = lmdm_http_req_header(req, "content-type");
    if (t->raw_plist && (!ct || strncasecmp(ct, "application/json", 16) != 0)) ct = "application/xml";
    if (lmdm_tenant_command_parse(ct, req->body, req->body_len,
                                  t->broker_uuid, ns, req->arena, &t->cmd, err, sizeof(err)) != 0) {
        t->out_status = strcmp(t->cmd.error_code, "unsupported_media_type") == 0 ? 415 : 400;
        t->out_body = error_body(t->cmd.error_code, err);
        return -1;
    }
    if (!lmdm_utf8_valid(t->cmd.payload, t->cmd.payload_len)) {
        t->out_status = 400;
        t->out_body = error_body("bad_command", "the command is not valid UTF-8");
        return -1;
    }
    return 0;
}

/* Run the pipeline for one enrollment; t->finish gets the outcome. */
static void command_for(lmdm_tenant_ctx_t *t, const char *pseudonym)
{
    t->pseudonym = pseudonym;
    t->rules_json = NULL;
    t->osupdate_json = NULL;
    if (!is_pseudonym(pseudonym)) {
        outcome(t, 404, error_body("not_found", "no such enrollment"));
        return;
    }
    if (parse_command(t) != 0) {
        t->finish(t);
        return;
    }
    const char *p[] = {t->tenant, pseudonym};
    lmdm_tenant_query(t, &st_context, p, context_done);
}

static void respond_outcome(lmdm_tenant_ctx_t *t) { respond_json(t->req, t->out_status, t->out_body); }

static void post_command(lmdm_tenant_ctx_t *t)
{
    t->finish = respond_outcome;
    command_for(t, t->req->params[0]);
}

/* ---- NanoMDM-style enqueue: PUT /v1/enqueue/{id,id,...}[?nopush] ---- */

static void nano_next(lmdm_tenant_ctx_t *t);

static void nano_one_done(lmdm_tenant_ctx_t *t)
{
    json_t *st = json_object();
    if (t->out_status == 202 && json_object_get(t->out_body, "id"))
        json_object_set(st, "command_id", json_object_get(t->out_body, "id"));
    else if (t->out_status == 202)
        json_object_set_new(st, "decision", json_string("merge"));
    else {
        json_t *code = json_object_get(t->out_body, "reason");
        if (!code) code = json_object_get(t->out_body, "error");
        json_object_set(st, "enqueue_error", code ? code : json_string("error"));
    }
    json_decref(t->out_body);
    t->out_body = NULL;
    json_object_set_new(t->nano_status, t->nano_ids[t->nano_i], st);
    t->nano_i++;
    nano_next(t);
}

static void nano_next(lmdm_tenant_ctx_t *t)
{
    if (t->nano_i < t->nano_n) {
        command_for(t, t->nano_ids[t->nano_i]);
        return;
    }
    json_t *j = json_pack("{s:o,s:b,s:o,s:s}", "status", t->nano_status, "no_push", t->no_push, "command_uuid",
                          t->cmd.tenant_uuid ? json_string(t->cmd.tenant_uuid) : json_null(), "request_type",
                          t->cmd.request_type ? t->cmd.request_type : "");
    respond_json(t->req, 200, j);
}

static void nano_enqueue(lmdm_tenant_ctx_t *t)
{
    lmdm_http_req_t *req = t->req;
    t->no_push = lmdm_tenant_query_param(req, "nopush") != NULL;
    t->raw_plist = 1;
    char *ids = lmdm_arena_strdup(req->arena, req->params[0]);
    t->nano_ids = lmdm_arena_alloc(req->arena, NANOMDM_MAX_IDS * sizeof(char *));
    t->nano_n = 0;
    for (char *save = NULL, *tok = strtok_r(ids, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (t->nano_n == NANOMDM_MAX_IDS) {
            lmdm_http_respond_error(req, 400, "too_many_ids", "at most 100 enrollment ids per request");
            return;
        }
        t->nano_ids[t->nano_n++] = tok;
    }
    if (t->nano_n == 0) {
        lmdm_http_respond_error(req, 400, "bad_parameter", "no enrollment id");
        return;
    }
    /* A malformed command is refused once, for all. */
    if (parse_command(t) != 0) {
        respond_outcome(t);
        return;
    }
    t->nano_status = json_object();
    t->nano_i = 0;
    t->finish = nano_one_done;
    nano_next(t);
}

/* ---- PUT/GET/DELETE /v1/webhook ---- */

static void webhook_set_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    lmdm_http_respond(t->req, 204, NULL, NULL, 0);
}

static void put_webhook(lmdm_tenant_ctx_t *t)
{
    json_t *j = parse_json_body(t->req, 0);
    if (!j) return;
    const char *url = json_string_value(json_object_get(j, "url"));
    json_t *fmt = json_object_get(j, "format");
    const char *f = fmt ? json_string_value(fmt) : NULL;
    const char *bad = NULL;
    if (!url || strlen(url) > 2000 || (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) ||
        strpbrk(url, " \r\n\t"))
        bad = "url must be an http:// or https:// URL of at most 2000 characters";
    else if (fmt && (!f || (strcmp(f, "lmdm") != 0 && strcmp(f, "micromdm") != 0)))
        bad = "format must be \"lmdm\" or \"micromdm\"";
    if (bad) {
        json_decref(j);
        lmdm_http_respond_error(t->req, 400, "bad_request", bad);
        return;
    }
    const char *p[] = {t->tenant, lmdm_arena_strdup(t->req->arena, url), f ? lmdm_arena_strdup(t->req->arena, f) : NULL};
    json_decref(j);
    lmdm_tenant_query(t, &st_webhook_set, p, webhook_set_done);
}

static void delete_webhook(lmdm_tenant_ctx_t *t)
{
    const char *p[] = {t->tenant, NULL, NULL};
    lmdm_tenant_query(t, &st_webhook_set, p, webhook_set_done);
}

static void webhook_get_done(void *arg, int err, PGresult *res)
{
    lmdm_tenant_ctx_t *t = arg;
    if (lmdm_tenant_db_failed(t, err, res)) return;
    if (PQntuples(res) == 0) {
        not_found(t->req, "tenant");
        return;
    }
    respond_json(t->req, 200,
                 json_pack("{s:o,s:s,s:I,s:o}", "url",
                           PQgetisnull(res, 0, 0) ? json_null() : json_string(PQgetvalue(res, 0, 0)), "format",
                           PQgetvalue(res, 0, 1), "pending_events", (json_int_t)atoll(PQgetvalue(res, 0, 2)),
                           "oldest_pending_at",
                           PQgetisnull(res, 0, 3) ? json_null() : json_string(PQgetvalue(res, 0, 3))));
}

static void get_webhook(lmdm_tenant_ctx_t *t)
{
    const char *p[] = {t->tenant};
    lmdm_tenant_query(t, &st_webhook_get, p, webhook_get_done);
}

/* ---- routes ---- */

#define ADMIN(fn)                                                                                                     \
    static void h_##fn(lmdm_http_req_t *req) { lmdm_tenant_begin(req, "admin", fn); }
ADMIN(invite)
ADMIN(list_enrollments)
ADMIN(get_enrollment)
ADMIN(delete_enrollment)
ADMIN(post_command)
ADMIN(list_commands)
ADMIN(get_command)
ADMIN(cancel_command)
ADMIN(nano_enqueue)
ADMIN(put_webhook)
ADMIN(get_webhook)
ADMIN(delete_webhook)

int lmdm_tenant_routes(lmdm_router_t *r, const lmdm_config_t *cfg)
{
    int rv = 0;
    size_t cmd_limit = cfg->mdm_max_body;
    rv |= lmdm_router_add(r, "GET", "/v1/keys", "v1_keys", get_keys, 1024);
    rv |= lmdm_router_add(r, "POST", "/v1/invitations", "v1_invitations", h_invite, 64 * 1024);
    rv |= lmdm_router_add(r, "GET", "/v1/enrollments", "v1_enrollments", h_list_enrollments, 1024);
    rv |= lmdm_router_add(r, "GET", "/v1/enrollments/{id}", "v1_enrollment", h_get_enrollment, 1024);
    rv |= lmdm_router_add(r, "DELETE", "/v1/enrollments/{id}", "v1_enrollment_delete", h_delete_enrollment, 1024);
    rv |= lmdm_router_add(r, "POST", "/v1/enrollments/{id}/commands", "v1_command_post", h_post_command, cmd_limit);
    rv |= lmdm_router_add(r, "GET", "/v1/enrollments/{id}/commands", "v1_commands", h_list_commands, 1024);
    rv |= lmdm_router_add(r, "GET", "/v1/commands/{id}", "v1_command", h_get_command, 1024);
    rv |= lmdm_router_add(r, "DELETE", "/v1/commands/{id}", "v1_command_cancel", h_cancel_command, 1024);
    rv |= lmdm_router_add(r, "PUT", "/v1/enqueue/{ids}", "v1_enqueue", h_nano_enqueue, cmd_limit);
    rv |= lmdm_router_add(r, "PUT", "/v1/webhook", "v1_webhook_put", h_put_webhook, 8192);
    rv |= lmdm_router_add(r, "GET", "/v1/webhook", "v1_webhook", h_get_webhook, 1024);
    rv |= lmdm_router_add(r, "DELETE", "/v1/webhook", "v1_webhook_delete", h_delete_webhook, 1024);
    rv |= lmdm_tenant_rules_routes(r);
    rv |= lmdm_tenant_osupdate_routes(r);
    rv |= lmdm_audit_routes(r);
    return rv ? LMDM_ERR_INVALID : 0;
}
