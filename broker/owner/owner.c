/* The device owner's pages: session, consent page, the organizations that
 * manage the device (what each manages, the rules it requires, what it asked
 * for and what the broker did), removal, and the public policy table
 * (lmdm/owner.h, docs/owner.md).
 *
 * Every handler follows the same steps, each one a function:
 *   owner_begin()          the owner pages need secret_key and a database: 503 otherwise
 *   checks on the request itself (path parameter, Origin, form, CSRF token)
 *   owner_resolve()  the cookie's token -> owner_device() -> x->device_id
 *   one or two asynchronous queries, then one HTML answer.
 * Nothing is written before every check has passed, and every write is
 * committed (single statement, autocommit) before the page saying so is sent.
 *
 * GET /policy is the exception: public, no session and no database, it
 * renders the decision table of policy/.
 *
 * What is never logged: owner tokens, invitation codes, CSRF tokens. */
#include "lmdm/owner.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lmdm/app.h"
#include "lmdm/buf.h"
#include "lmdm/db.h"
#include "lmdm/html.h"
#include "lmdm/log.h"
#include "lmdm/secrets.h"
#include "lmdm/server.h"

#include "owner_ctx.h"

#define CODE_MAX 128   /* an invitation code in a path */

static const lmdm_db_stmt_t st_owner_device = {
    "owner_device", "SELECT device_id, device_state FROM owner_device($1) LIMIT 1", 1};
static const lmdm_db_stmt_t st_owner_login = {"owner_login",
                                              "SELECT (SELECT device_id FROM owner_device($1) LIMIT 1), "
                                              "EXISTS (SELECT 1 FROM owner_tokens WHERE token_hash = $1)",
                                              1};
static const lmdm_db_stmt_t st_invitation_get = {
    "owner_invitation_get",
    "SELECT tenant_id, tenant_name, note, rules::text, "
    "to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI \"UTC\"') FROM invitation_get($1)",
    1};
static const lmdm_db_stmt_t st_invitation_accept = {
    "owner_invitation_accept", "SELECT code FROM invitation_accept($1, $2::bigint, $3)", 3};
static const lmdm_db_stmt_t st_invitation_decline = {"owner_invitation_decline",
                                                     "DELETE FROM invitations WHERE code_hash = $1", 1};
/* Active enrollments, and those ended in the last 30 days, newest first, in
 * one round trip: for each active one also what it installed (apps and
 * profiles, one per line), the device-wide rules it requires ({section:
 * rules}, its enrollment's own rule before its tenant-wide one, as
 * rules_inputs() in 0005) and its last RECENT_COMMANDS decisions with the
 * state of the command each one queued (JSON array, newest first). Every
 * subquery follows an index on enrollment_id (entities' primary key,
 * decisions_enrollment) or tenant_id (tenant_rules_one). */
#define RECENT_COMMANDS 20 /* the LIMIT of the decisions in st_enrollments */
static const lmdm_db_stmt_t st_enrollments = {
    "owner_enrollments",
    "SELECT e.pseudonym, t.name, e.state, to_char(e.accepted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), "
    "coalesce(to_char(e.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), ''), coalesce(e.ended_by, ''), "
    "(SELECT d.rules_merged::text FROM devices d WHERE d.id = e.device_id), "
    "CASE WHEN e.state = 'active' THEN (SELECT string_agg(x.identifier, E'\\n' ORDER BY x.identifier) "
    "  FROM entities x WHERE x.enrollment_id = e.id AND x.kind = 'app') END, "
    "CASE WHEN e.state = 'active' THEN (SELECT string_agg(x.identifier, E'\\n' ORDER BY x.identifier) "
    "  FROM entities x WHERE x.enrollment_id = e.id AND x.kind = 'profile') END, "
    "CASE WHEN e.state = 'active' THEN (SELECT jsonb_object_agg(r.section, r.rules)::text "
    "  FROM (SELECT DISTINCT ON (tr.section) tr.section, tr.rules FROM tenant_rules tr "
    "         WHERE tr.tenant_id = e.tenant_id AND (tr.enrollment_id IS NULL OR tr.enrollment_id = e.id) "
    "         ORDER BY tr.section, tr.enrollment_id NULLS LAST) r) END, "
    "CASE WHEN e.state = 'active' THEN (SELECT json_agg(json_build_object('request_type', q.request_type, "
    "  'decision', q.decision, 'reason', q.reason, 'payload_type', q.payload_type, 'state', q.state, "
    "  'at', q.at) ORDER BY q.id DESC)::text "
    "  FROM (SELECT dd.id, dd.request_type, dd.decision, dd.reason, dd.payload_type, c.state, "
    "               to_char(dd.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI \"UTC\"') AS at "
    "          FROM decisions dd LEFT JOIN commands c ON c.id = dd.command_id "
    "         WHERE dd.enrollment_id = e.id ORDER BY dd.id DESC LIMIT 20) q) END, "
    "(SELECT o.plan::text FROM device_osupdate o WHERE o.device_id = e.device_id), "
    "(SELECT json_agg(json_build_object('name', r.name, 'delay_days', r.delay_days) ORDER BY r.delay_days)::text "
    "   FROM rings r) "
    "FROM enrollments e JOIN tenants t ON t.id = e.tenant_id "
    "WHERE e.device_id = $1::bigint AND (e.state = 'active' OR e.ended_at > now() - interval '30 days') "
    "ORDER BY e.state <> 'active', coalesce(e.ended_at, e.accepted_at) DESC LIMIT 100",
    1};
/* Columns of st_enrollments. */
enum {
    COL_PSEUDONYM,
    COL_NAME,
    COL_STATE,
    COL_ACCEPTED,
    COL_ENDED,
    COL_ENDED_BY,
    COL_MERGED,
    COL_APPS,
    COL_PROFILES,
    COL_RULES,
    COL_DECISIONS,
    COL_OSUPDATE,
    COL_RINGS,
};
/* An enrollment is found by its pseudonym AND the owner's device: an owner
 * can never name another device's enrollment. */
static const lmdm_db_stmt_t st_enrollment_get = {
    "owner_enrollment_get",
    "SELECT t.name, e.state FROM enrollments e JOIN tenants t ON t.id = e.tenant_id "
    "WHERE e.pseudonym = $1 AND e.device_id = $2::bigint",
    2};
static const lmdm_db_stmt_t st_enrollment_remove = {
    "owner_enrollment_remove",
    "SELECT t.name, enrollment_remove(e.id, 'owner') FROM enrollments e JOIN tenants t ON t.id = e.tenant_id "
    "WHERE e.pseudonym = $1 AND e.device_id = $2::bigint",
    2};

/* ---- small checks ---- */

static int is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static int valid_token(const char *s)
{
    size_t n = strlen(s);
    if (n != TOKEN_CHARS) return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_b64url(s[i])) return 0;
    return 1;
}

/* An invitation code as it appears in a path: base64url characters (and '.'
 * for a prefix separator), nothing to decode. */
static int valid_code(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 8 || n > CODE_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_b64url(s[i]) && s[i] != '.') return 0;
    return 1;
}

/* "e" + 26 base32 characters (lmdm_secrets_pseudonym). */
static int valid_pseudonym(const char *s)
{
    if (!s || strlen(s) != LMDM_PSEUDONYM_LEN || s[0] != 'e') return 0;
    for (size_t i = 1; i < LMDM_PSEUDONYM_LEN; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '2' && s[i] <= '7'))) return 0;
    return 1;
}

/* scheme://host[:port] of a URL, lower-cased, without the default port. */
static void origin_of(const char *url, char *out, size_t outlen)
{
    out[0] = '\0';
    const char *rest = strstr(url ? url : "", "://");
    if (!rest) return;
    size_t n = (size_t)(rest + 3 - url) + strcspn(rest + 3, "/?#");
    if (n + 1 > outlen) return;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)((url[i] >= 'A' && url[i] <= 'Z') ? url[i] - 'A' + 'a' : url[i]);
    out[n] = '\0';
    size_t len = strlen(out);
    if (!strncmp(out, "https://", 8) && len > 4 && !strcmp(out + len - 4, ":443")) out[len - 4] = '\0';
    if (!strncmp(out, "http://", 7) && len > 3 && !strcmp(out + len - 3, ":80")) out[len - 3] = '\0';
}

/* A browser sends Origin with every form post; when it does, it must be the
 * broker's own (public_url). Clients that send none (curl) pass: the CSRF
 * token is the real guard, this is the second one. */
static int origin_ok(const owner_ctx_t *x)
{
    const char *o = lmdm_http_req_header(x->req, "origin");
    if (!o) return 1;
    char want[512], got[512];
    origin_of(x->app->cfg->public_url, want, sizeof(want));
    origin_of(o, got, sizeof(got));
    return want[0] && strcmp(want, got) == 0;
}

static int https_public(const owner_ctx_t *x)
{
    const char *u = x->app->cfg->public_url;
    return u && strncasecmp(u, "https://", 8) == 0;
}

/* The owner token of the cookie, if any. HTTP/2 clients may send each cookie
 * in a header of its own, so every Cookie header is read. */
static void read_cookie(owner_ctx_t *x)
{
    const lmdm_http_req_t *req = x->req;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcmp(req->headers[i].name, "cookie") != 0) continue;
        char v[TOKEN_CHARS + 1];
        if (lmdm_html_cookie(req->headers[i].value, LMDM_OWNER_COOKIE, v, sizeof(v)) == 0 && valid_token(v)) {
            memcpy(x->token, v, sizeof(v));
            return;
        }
    }
}

/* The CSRF token of a form: a keyed hash of the owner token and what the form
 * does, so it is worthless for another owner or another form. */
void owner_csrf_token(const owner_ctx_t *x, const char *what, char out[HASH_HEX + 1])
{
    size_t n = strlen(x->token) + strlen(what) + 1;
    char *msg = lmdm_arena_alloc(x->req->arena, n);
    snprintf(msg, n, "%s%s", x->token, what);
    lmdm_secrets_token_hash(x->sec, "csrf", msg, out);
    sodium_memzero(msg, n);
}

int owner_csrf_ok(const owner_ctx_t *x, const char *what)
{
    char want[HASH_HEX + 1];
    owner_csrf_token(x, what, want);
    return x->csrf && strlen(x->csrf) == HASH_HEX && sodium_memcmp(want, x->csrf, HASH_HEX) == 0;
}

static const char *arena_concat(owner_ctx_t *x, const char *a, const char *b)
{
    return lmdm_arena_printf(x->req->arena, "%s%s", a, b);
}

/* ---- answers ---- */

void owner_respond_db_error(owner_ctx_t *x, int err, PGresult *res, const char *what)
{
    if (err == LMDM_ERR_DB) {
        lmdm_error("conn=%llu: owner page: %s failed: %s", (unsigned long long)x->req->conn_id, what,
                   res ? PQresultErrorMessage(res) : "?");
        lmdm_html_respond_message(x->req, 500, "Something went wrong",
                                  "The server could not complete this. Nothing was changed. Please try again "
                                  "later.");
        return;
    }
    char ra[16];
    snprintf(ra, sizeof(ra), "%d", x->app->cfg->db_retry_after_s);
    lmdm_http_resp_header(x->req, "Retry-After", ra);
    lmdm_html_respond_message(x->req, 503, "Temporarily unavailable",
                              "The server is busy or restarting. Nothing was changed. Please try again in a "
                              "moment.");
}

void owner_query(owner_ctx_t *x, const lmdm_db_stmt_t *st, const char *const *params, lmdm_db_result_cb cb)
{
    int rv = lmdm_db_query(x->req->worker->db, st, st->nparams, params, cb, x);
    if (rv != 0) owner_respond_db_error(x, LMDM_ERR_DB_UNAVAILABLE, NULL, st->name);
}

void owner_respond_no_session(owner_ctx_t *x)
{
    lmdm_buf_t b = {0};
    lmdm_html_begin(&b, "Open your device's page first");
    lmdm_html_para(&b,
                   "This page belongs to the owner of an enrolled device. On that device, open "
                   "\u201cMy device \u2014 lmdm\u201d from the home screen (it was added when you installed "
                   "the enrollment profile), then come back here.");
    lmdm_html_end(&b);
    lmdm_html_respond(x->req, 401, &b);
}

static void respond_invitation_gone(owner_ctx_t *x)
{
    lmdm_html_respond_message(
        x->req, 404, "This invitation is no longer valid",
        "It was already used or declined, it expired, or the organization was disabled. "
        "Ask the organization for a new invitation if you still want to join it.");
}

/* ---- steps shared by every page ---- */

/* The shared state, or NULL after answering 503 (no secret_key or no
 * database: the owner pages cannot work without both). */
owner_ctx_t *owner_begin(lmdm_http_req_t *req)
{
    const lmdm_app_t *app = req->worker ? (const lmdm_app_t *)req->worker->app : NULL;
    if (!app || !app->cfg || !app->secrets || !req->worker->db) {
        lmdm_html_respond_message(req, 503, "Owner pages are not available",
                                  "This server is not set up for device owners yet (no secret_key or no "
                                  "database). Please tell the people who run it.");
        return NULL;
    }
    owner_ctx_t *x = lmdm_arena_alloc(req->arena, sizeof(*x));
    memset(x, 0, sizeof(*x));
    x->req = req;
    x->app = app;
    x->sec = app->secrets;
    return x;
}

static void owner_device_done(void *arg, int err, PGresult *res)
{
    owner_ctx_t *x = arg;
    if (err) {
        owner_respond_db_error(x, err, res, "owner_device");
        return;
    }
    /* owner_device() returns one record: all NULL when the token opens nothing. */
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        x->device_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        x->device_enrolled = strcmp(PQgetvalue(res, 0, 1), "enrolled") == 0;
        snprintf(x->device_id_s, sizeof(x->device_id_s), "%lld", x->device_id);
    }
    x->next(x);
}

/* Find the device of the cookie's owner token (x->device_id stays 0 when
 * there is no cookie or it opens no device), then go on with `next`. */
void owner_resolve(owner_ctx_t *x, owner_step_fn next)
{
    x->next = next;
    read_cookie(x);
    if (!x->token[0]) {
        next(x);
        return;
    }
    lmdm_secrets_token_hash(x->sec, "owner", x->token, x->token_hash);
    const char *params[] = {x->token_hash};
    owner_query(x, &st_owner_device, params, owner_device_done);
}

/* Decode the form of a POST into x->action / x->csrf. Answers 400 and returns
 * 0 for a body that is no form. */
static int read_form(owner_ctx_t *x)
{
    lmdm_form_field_t *f = lmdm_arena_alloc(x->req->arena, LMDM_FORM_MAX_FIELDS * sizeof *f);
    size_t n = 0;
    const char *ct = lmdm_http_req_header(x->req, "content-type");
    if (ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0) {
        lmdm_html_respond_message(x->req, 415, "This form could not be read",
                                  "Nothing was changed. Go back and try again.");
        return 0;
    }
    if (lmdm_form_parse(x->req->arena, x->req->body ? x->req->body : "", x->req->body_len, f,
                        LMDM_FORM_MAX_FIELDS, &n) != 0) {
        lmdm_html_respond_message(x->req, 400, "This form could not be read",
                                  "Nothing was changed. Go back and try again.");
        return 0;
    }
    x->fields = f;
    x->nfields = n;
    x->action = lmdm_form_get(f, n, "action");
    x->csrf = lmdm_form_get(f, n, "csrf");
    return 1;
}

/* The checks every POST makes before anything else: where the form comes
 * from, and that it is one. */
int owner_post_checks(owner_ctx_t *x)
{
    if (!origin_ok(x)) {
        lmdm_html_respond_message(x->req, 403, "Refused",
                                  "This form was sent from another web site. Nothing was changed.");
        return 0;
    }
    return read_form(x);
}

void owner_respond_form_expired(owner_ctx_t *x, const char *back)
{
    lmdm_buf_t b = {0};
    lmdm_html_begin(&b, "This form has expired");
    lmdm_html_para(&b, "Nothing was changed. Open the page again and repeat what you wanted to do.");
    lmdm_buf_puts(&b, "<p><a class=\"button\" href=\"");
    lmdm_html_escape(&b, back);
    lmdm_buf_puts(&b, "\">Open it again</a></p>\n");
    lmdm_html_end(&b);
    lmdm_html_respond(x->req, 403, &b);
}

/* A POST form with a CSRF token, an action and one button. */
void owner_form(lmdm_buf_t *b, owner_ctx_t *x, const char *action_url, const char *csrf_what,
                 const char *action, const char *button_class, const char *label)
{
    char csrf[HASH_HEX + 1];
    owner_csrf_token(x, csrf_what, csrf);
    lmdm_buf_puts(b, "<form method=\"post\" action=\"");
    lmdm_html_escape(b, action_url);
    lmdm_buf_printf(b, "\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">", csrf);
    if (action) {
        lmdm_buf_puts(b, "<input type=\"hidden\" name=\"action\" value=\"");
        lmdm_html_escape(b, action);
        lmdm_buf_puts(b, "\">");
    }
    lmdm_buf_puts(b, "<button type=\"submit\" class=\"");
    lmdm_html_escape(b, button_class);
    lmdm_buf_puts(b, "\">");
    lmdm_html_escape(b, label);
    lmdm_buf_puts(b, "</button></form>\n");
}

/* What no organization can do, whatever it asks: the same words on the
 * consent page and the owner page. */
static void never_list(lmdm_buf_t *b)
{
    lmdm_buf_puts(b, "<ul class=\"never\">\n"
                     "<li>Erase or lock the device, or remove its passcode</li>\n"
                     "<li>Find out where the device is</li>\n"
                     "<li>See the device's serial number, phone number or name</li>\n"
                     "<li>See which other organizations manage the device (each one gets its own, unrelated "
                     "id for it)</li>\n"
                     "<li>See or remove your own apps, or see your own accounts, photos and files</li>\n"
                     "</ul>\n");
}

/* ---- GET /owner/login?token=T ---- */

static void login_done(void *arg, int err, PGresult *res)
{
    owner_ctx_t *x = arg;
    if (err) {
        owner_respond_db_error(x, err, res, "owner_login");
        return;
    }
    int has_device = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
    int known = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    if (!has_device) {
        lmdm_info("conn=%llu: owner login refused (%s)", (unsigned long long)x->req->conn_id,
                  known ? "device not enrolled" : "unknown token");
        lmdm_html_respond_message(
            x->req, 403, known ? "This device is not enrolled" : "This link is not valid",
            known
                ? "This link belongs to a device that has not finished enrolling, or that is no longer "
                  "enrolled. If you have just installed the profile, wait a minute and open it again."
                : "Open \u201cMy device \u2014 lmdm\u201d from your device's home screen instead of a copied "
                  "link.");
        return;
    }
    /* The token leaves the URL: from now on it travels in the cookie only. */
    char *cookie =
        lmdm_arena_printf(x->req->arena, "%s=%s; Path=/; HttpOnly; SameSite=Lax%s", LMDM_OWNER_COOKIE,
                          x->token, https_public(x) || lmdm_http_req_is_tls(x->req) ? "; Secure" : "");
    lmdm_http_resp_header(x->req, "Set-Cookie", cookie);
    lmdm_http_resp_header(x->req, "Location", "/owner");
    lmdm_info("conn=%llu: owner login (device %s)", (unsigned long long)x->req->conn_id,
              PQgetvalue(res, 0, 0));
    lmdm_buf_t b = {0};
    lmdm_html_begin(&b, "Signed in");
    lmdm_buf_puts(&b, "<p><a href=\"/owner\">Continue to your device's page</a></p>\n");
    lmdm_html_end(&b);
    lmdm_html_respond(x->req, 303, &b);
}

static void login(lmdm_http_req_t *req)
{
    owner_ctx_t *x = owner_begin(req);
    if (!x) return;
    /* The only parameter is the token, which needs no decoding. */
    const char *q = req->query ? req->query : "";
    if (strncmp(q, "token=", 6) != 0 || strchr(q, '&') || !valid_token(q + 6)) {
        lmdm_html_respond_message(
            req, 403, "This link is not valid",
            "Open \u201cMy device \u2014 lmdm\u201d from your device's home screen instead "
            "of a copied link.");
        return;
    }
    memcpy(x->token, q + 6, TOKEN_CHARS + 1);
    lmdm_secrets_token_hash(x->sec, "owner", x->token, x->token_hash);
    const char *params[] = {x->token_hash};
    owner_query(x, &st_owner_login, params, login_done);
}

/* ---- GET /owner ---- */

static const char *ended_how(const char *state, const char *by)
{
    if (!strcmp(state, "checked_out")) return "the device left management";
    if (!strcmp(by, "owner")) return "removed by you";
    if (!strcmp(by, "tenant")) return "the organization left";
    if (!strcmp(by, "operator")) return "ended by the server's operator";
    return "ended";
}

/* A column that may be NULL, as NULL. */
static const char *value_or_null(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* A list of identifiers (one per line), each in <code>. */
static void identifier_list(lmdm_buf_t *b, const char *cls, const char *lines)
{
    lmdm_buf_printf(b, "<ul class=\"%s\">\n", cls);
    const char *p = lines;
    while (*p) {
        size_t n = strcspn(p, "\n");
        lmdm_buf_puts(b, "<li><code>");
        lmdm_html_escape_n(b, p, n);
        lmdm_buf_puts(b, "</code></li>\n");
        p += n + (p[n] == '\n');
    }
    lmdm_buf_puts(b, "</ul>\n");
}

/* What the organization installed on the device. */
static void org_entities(lmdm_buf_t *b, const char *apps, const char *profiles)
{
    lmdm_buf_puts(b, "<h4>What it manages</h4>\n");
    if (!apps && !profiles) {
        lmdm_html_para(b, "Nothing yet: it has not installed any app or settings on this device.");
        return;
    }
    if (apps) {
        lmdm_buf_puts(b, "<p>Its apps:</p>\n");
        identifier_list(b, "apps", apps);
    }
    if (profiles) {
        lmdm_buf_puts(b, "<p>Its settings (profiles with its accounts, managed web sites, VPN and the "
                         "certificates these need):</p>\n");
        identifier_list(b, "profiles", profiles);
    }
}

/* The organization's last commands and what the broker did with each. */
static void org_commands(lmdm_buf_t *b, const char *decisions_json)
{
    json_t *list = decisions_json ? json_loads(decisions_json, 0, NULL) : NULL;
    lmdm_buf_puts(b, "<h4>What it asked for recently</h4>\n");
    if (!json_array_size(list)) {
        lmdm_html_para(b, "Nothing yet.");
        json_decref(list);
        return;
    }
    lmdm_buf_puts(b, "<ul class=\"commands\">\n");
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *d = json_array_get(list, i);
        const char *rt = json_string_value(json_object_get(d, "request_type"));
        const char *decision = json_string_value(json_object_get(d, "decision"));
        lmdm_buf_printf(b, "<li class=\"%s\"><strong>",
                        decision && !strcmp(decision, "block") ? "command blocked" : "command");
        lmdm_html_request_type(b, rt);
        lmdm_buf_puts(b, "</strong> <code class=\"muted\">");
        lmdm_html_escape(b, rt);
        lmdm_buf_puts(b, "</code><br>");
        lmdm_html_decision(b, rt, decision, json_string_value(json_object_get(d, "reason")),
                           json_string_value(json_object_get(d, "payload_type")),
                           json_string_value(json_object_get(d, "state")));
        lmdm_buf_puts(b, "<br><span class=\"muted\">");
        lmdm_html_escape(b, json_string_value(json_object_get(d, "at")));
        lmdm_buf_puts(b, "</span></li>\n");
    }
    lmdm_buf_puts(b, "</ul>\n");
    if (json_array_size(list) == RECENT_COMMANDS)
        lmdm_buf_printf(b, "<p class=\"muted\">Only its last %d commands are shown.</p>\n", RECENT_COMMANDS);
    json_decref(list);
}

/* One organization managing the device: since when, what it manages, the
 * rules it requires, what it asked for, and the way to remove it. */
static void org_section(lmdm_buf_t *b, PGresult *res, int i, const char *merged)
{
    const char *name = PQgetvalue(res, i, COL_NAME);
    const char *pseudonym = PQgetvalue(res, i, COL_PSEUDONYM);
    lmdm_buf_puts(b, "<section class=\"org\" id=\"org-");
    lmdm_html_escape(b, pseudonym);
    lmdm_buf_puts(b, "\">\n<h3><strong>");
    lmdm_html_escape(b, name);
    lmdm_buf_puts(b, "</strong></h3>\n<p class=\"muted\">Manages this device since ");
    lmdm_html_escape(b, PQgetvalue(res, i, COL_ACCEPTED));
    lmdm_buf_puts(b, "</p>\n");
    org_entities(b, value_or_null(res, i, COL_APPS), value_or_null(res, i, COL_PROFILES));
    lmdm_buf_puts(b, "<h4>Device-wide rules it requires</h4>\n");
    lmdm_html_tenant_rules(b, value_or_null(res, i, COL_RULES), merged, name);
    org_commands(b, value_or_null(res, i, COL_DECISIONS));
    lmdm_buf_puts(b, "<p><a class=\"button\" href=\"/owner/enrollments/");
    lmdm_html_escape(b, pseudonym);
    lmdm_buf_puts(b, "/remove\">Remove</a></p>\n</section>\n");
}

static void ended_list(lmdm_buf_t *b, PGresult *res)
{
    lmdm_buf_puts(b, "<h2>Recently ended</h2>\n<ul class=\"ended\">\n");
    for (int i = 0; i < PQntuples(res); i++) {
        if (strcmp(PQgetvalue(res, i, COL_STATE), "active") == 0) continue;
        lmdm_buf_puts(b, "<li>");
        lmdm_html_escape(b, PQgetvalue(res, i, COL_NAME));
        lmdm_buf_puts(b, " <span class=\"muted\">");
        lmdm_html_escape(b, ended_how(PQgetvalue(res, i, COL_STATE), PQgetvalue(res, i, COL_ENDED_BY)));
        lmdm_buf_puts(b, " on ");
        lmdm_html_escape(b, PQgetvalue(res, i, COL_ENDED));
        lmdm_buf_puts(b, "</span></li>\n");
    }
    lmdm_buf_puts(b, "</ul>\n");
}

static void home_done(void *arg, int err, PGresult *res)
{
    owner_ctx_t *x = arg;
    if (err) {
        owner_respond_db_error(x, err, res, "owner_enrollments");
        return;
    }
    int n = PQntuples(res), active = 0;
    for (int i = 0; i < n; i++)
        active += strcmp(PQgetvalue(res, i, COL_STATE), "active") == 0;
    const char *merged = n > 0 ? value_or_null(res, 0, COL_MERGED) : NULL;

    lmdm_buf_t b = {0};
    lmdm_html_begin(&b, "My device");
    if (!x->device_enrolled)
        lmdm_html_para(&b,
                       "This device has not finished enrolling yet. Organizations can be accepted once it "
                       "has (usually within a minute).");
    lmdm_html_para(&b, "Organizations you accepted manage only their own apps, accounts and settings on this "
                       "device. You can remove any of them at any time.");

    lmdm_buf_puts(&b, "<h2>Organizations managing this device</h2>\n");
    if (!active)
        lmdm_html_para(&b,
                       "None. To add an organization, open the invitation link it gave you on this device.");
    for (int i = 0; i < n; i++)
        if (strcmp(PQgetvalue(res, i, COL_STATE), "active") == 0) org_section(&b, res, i, merged);
    if (n > active) ended_list(&b, res);
    if (active) {
        lmdm_buf_puts(&b, "<h2>Device-wide rules in force</h2>\n");
        lmdm_html_para(&b, "Where several organizations ask for the same setting, the strictest one applies, "
                           "once, under the broker's name:");
        lmdm_html_merged_rules(&b, merged);
        owner_osupdate_section(&b, x, value_or_null(res, 0, COL_OSUPDATE), value_or_null(res, 0, COL_RINGS));
    }
    lmdm_buf_puts(&b, "<h2>What no organization can do</h2>\n");
    never_list(&b);
    lmdm_buf_puts(&b, "<p class=\"muted\"><a href=\"/policy\">Every command and setting an organization may "
                      "send, and what the broker does with it</a></p>\n");
    lmdm_html_end(&b);
    lmdm_html_respond(x->req, 200, &b);
}

static void home_owner(owner_ctx_t *x)
{
    if (!x->device_id) {
        owner_respond_no_session(x);
        return;
    }
    const char *params[] = {x->device_id_s};
    owner_query(x, &st_enrollments, params, home_done);
}

static void home(lmdm_http_req_t *req)
{
    owner_ctx_t *x = owner_begin(req);
    if (x) owner_resolve(x, home_owner);
}

/* ---- GET and POST /owner/enrollments/{n}/remove ---- */

static const char *remove_csrf_what(owner_ctx_t *x)
{
    return arena_concat(x, ":remove:", x->pseudonym);
}

static void remove_page_done(void *arg, int err, PGresult *res)
{
    owner_ctx_t *x = arg;
    if (err) {
        owner_respond_db_error(x, err, res, "owner_enrollment_get");
        return;
    }
    if (PQntuples(res) != 1) {
        lmdm_html_respond_message(x->req, 404, "Nothing to remove",
                                  "No organization with this link manages this device.");
        return;
    }
    const char *name = PQgetvalue(res, 0, 0);
    lmdm_buf_t b = {0};
    if (strcmp(PQgetvalue(res, 0, 1), "active") != 0) {
        lmdm_html_begin(&b, "Already removed");
        lmdm_buf_puts(&b, "<p>");
        lmdm_html_escape(&b, name);
        lmdm_buf_puts(&b, " no longer manages this device.</p>\n<p><a href=\"/owner\">Back</a></p>\n");
        lmdm_html_end(&b);
        lmdm_html_respond(x->req, 409, &b);
        return;
    }
    lmdm_html_begin(&b, lmdm_arena_printf(x->req->arena, "Remove %s?", name));
    lmdm_buf_puts(&b,
                  "<p>Its apps and accounts will be removed from this device, and the device-wide rules it "
                  "asked for will no longer apply. ");
    lmdm_html_escape(&b, name);
    lmdm_buf_puts(&b,
                  " will be told that it no longer manages this device. Your own apps and data, and those "
                  "of other organizations, are not touched.</p>\n"
                  "<p>To join it again later you need a new invitation from it.</p>\n");
    owner_form(&b, x, lmdm_arena_printf(x->req->arena, "/owner/enrollments/%s/remove", x->pseudonym),
         remove_csrf_what(x), NULL, "danger", lmdm_arena_printf(x->req->arena, "Remove %s", name));
    lmdm_buf_puts(&b, "<a class=\"button\" href=\"/owner\">Cancel</a>\n");
    lmdm_html_end(&b);
    lmdm_html_respond(x->req, 200, &b);
}

static void remove_page_owner(owner_ctx_t *x)
{
    if (!x->device_id) {
        owner_respond_no_session(x);
        return;
    }
    const char *params[] = {x->pseudonym, x->device_id_s};
    owner_query(x, &st_enrollment_get, params, remove_page_done);
}

/* Both removal routes: the context with the enrollment's pseudonym, or NULL
 * (answered) when the link names none. */
static owner_ctx_t *begin_remove(lmdm_http_req_t *req)
{
    owner_ctx_t *x = owner_begin(req);
    if (!x) return NULL;
    if (!valid_pseudonym(req->params[0])) {
        lmdm_html_respond_message(req, 404, "Nothing to remove",
                                  "No organization with this link manages this device.");
        return NULL;
    }
    x->pseudonym = req->params[0];
    return x;
}

static void remove_page(lmdm_http_req_t *req)
{
    owner_ctx_t *x = begin_remove(req);
    if (x) owner_resolve(x, remove_page_owner);
}

static void remove_done(void *arg, int err, PGresult *res)
{
    owner_ctx_t *x = arg;
    if (err) {
        owner_respond_db_error(x, err, res, "owner_enrollment_remove");
        return;
    }
    if (PQntuples(res) != 1) {
        lmdm_html_respond_message(x->req, 404, "Nothing to remove",
                                  "No organization with this link manages this device.");
        return;
    }
    const char *name = PQgetvalue(res, 0, 0);
    const char *code = PQgetvalue(res, 0, 1);
    lmdm_buf_t b = {0};
    int ok = strcmp(code, "ok") == 0;
    if (ok)
        lmdm_info("conn=%llu: owner removed enrollment %s", (unsigned long long)x->req->conn_id,
                  x->pseudonym);
    lmdm_html_begin(&b, ok ? "Removed" : "Already removed");
    lmdm_buf_puts(&b, "<p>");
    lmdm_html_escape(&b, name);
    lmdm_buf_puts(
        &b, ok ? " no longer manages this device. Its apps and accounts are being removed from it; this "
                 "happens the next time the device checks in.</p>\n"
               : " no longer manages this device.</p>\n");
    lmdm_buf_puts(&b, "<p><a class=\"button\" href=\"/owner\">Back to my device</a></p>\n");
    lmdm_html_end(&b);
    lmdm_html_respond(x->req, ok ? 200 : 409, &b);
}

static void remove_owner(owner_ctx_t *x)
{
    if (!x->device_id) {
        owner_respond_no_session(x);
        return;
    }
    if (!owner_csrf_ok(x, remove_csrf_what(x))) {
        owner_respond_form_expired(x,
                             lmdm_arena_printf(x->req->arena, "/owner/enrollments/%s/remove", x->pseudonym));
        return;
    }
    const char *params[] = {x->pseudonym, x->device_id_s};
    owner_query(x, &st_enrollment_remove, params, remove_done);
}

static void remove_post(lmdm_http_req_t *req)
{
    owner_ctx_t *x = begin_remove(req);
    if (x && owner_post_checks(x)) owner_resolve(x, remove_owner);
}

/* ---- GET and POST /invite/{code} ---- */

static const char *invite_csrf_what(owner_ctx_t *x)
{
    return arena_concat(x, ":", x->code);
}

/* Copy the invitation_get() row into x; 0 (after answering 404) when the
 * invitation cannot be accepted any more. */
static int take_invitation(owner_ctx_t *x, int err, PGresult *res)
{
    if (err) {
        owner_respond_db_error(x, err, res, "invitation_get");
        return 0;
    }
    /* invitation_get() returns one record: all NULL when nothing matches. */
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        respond_invitation_gone(x);
        return 0;
    }
    lmdm_arena_t *a = x->req->arena;
    x->tenant_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    x->tenant_name = lmdm_arena_strdup(a, PQgetvalue(res, 0, 1));
    x->note = lmdm_arena_strdup(a, PQgetvalue(res, 0, 2));
    x->rules = lmdm_arena_strdup(a, PQgetvalue(res, 0, 3));
    x->expires = lmdm_arena_strdup(a, PQgetvalue(res, 0, 4));
    return 1;
}

static void consent_buttons(lmdm_buf_t *b, owner_ctx_t *x)
{
    if (!x->device_id) {
        lmdm_buf_puts(
            b, "<div class=\"box\"><p><strong>To accept or decline</strong>, first open your device's "
               "page on the device this invitation is for: tap \u201cMy device \u2014 lmdm\u201d on its "
               "home screen. Then open this invitation link again.</p></div>\n");
        return;
    }
    if (!x->device_enrolled)
        lmdm_html_para(b, "Your device has not finished enrolling yet: accepting works once it has (usually "
                          "within a minute).");
    const char *url = arena_concat(x, "/invite/", x->code);
    const char *what = invite_csrf_what(x);
    owner_form(b, x, url, what, "accept", "primary", lmdm_arena_printf(x->req->arena, "Accept %s", x->tenant_name));
    owner_form(b, x, url, what, "decline", "", "Decline");
}

static void consent_page(owner_ctx_t *x)
{
    lmdm_buf_t b = {0};
    const char *name = x->tenant_name;
    lmdm_html_begin(&b, lmdm_arena_printf(x->req->arena, "%s asks to manage some of this device", name));
    if (x->note[0]) {
        lmdm_buf_puts(&b, "<div class=\"box\"><p class=\"muted\">Their message:</p><p>");
        lmdm_html_escape(&b, x->note);
        lmdm_buf_puts(&b, "</p></div>\n");
    }
    lmdm_buf_puts(&b, "<h2>What ");
    lmdm_html_escape(&b, name);
    lmdm_buf_puts(&b, " will be able to manage</h2>\n<p>Only what it installs itself:</p>\n<ul>\n"
                      "<li>Its own apps</li>\n"
                      "<li>Its accounts: mail, Exchange, calendars and contacts</li>\n"
                      "<li>Its managed web sites in Safari</li>\n"
                      "<li>Its VPN for its own apps, and the certificates these need</li>\n</ul>\n");
    lmdm_buf_puts(&b, "<h2>Device-wide rules it asks for</h2>\n");
    lmdm_html_rules(&b, x->rules);
    lmdm_html_para(&b,
                   "When several organizations ask for device-wide rules, your device follows the strictest "
                   "of each (for example the longest passcode any of them asks for).");
    lmdm_buf_puts(&b, "<h2>Good to know</h2>\n");
    lmdm_html_para(&b, "The managed apps of all organizations you accept can exchange data with each other: "
                       "iOS and macOS do not keep one organization's managed apps apart from another's. Your "
                       "own apps stay apart from all of them.");
    lmdm_buf_puts(&b, "<h2>What ");
    lmdm_html_escape(&b, name);
    lmdm_buf_puts(&b, " can never do</h2>\n");
    never_list(&b);
    lmdm_html_para(&b,
                   "You can remove it at any time from your device's page; its apps and accounts are then "
                   "removed from the device.");
    lmdm_buf_puts(&b, "<p class=\"muted\">This invitation expires on ");
    lmdm_html_escape(&b, x->expires);
    lmdm_buf_puts(&b, ".</p>\n");
    consent_buttons(&b, x);
    lmdm_html_end(&b);
    lmdm_html_respond(x->req, 200, &b);
}

static void invite_page_done(void *arg, int err, PGresult *res)
{
    owner_ctx_t *x = arg;
    if (take_invitation(x, err, res)) consent_page(x);
}

static void invite_page_owner(owner_ctx_t *x)
{
    const char *params[] = {x->code_hash};
    owner_query(x, &st_invitation_get, params, invite_page_done);
}

/* Common start of GET and POST /invite/{code}: 0 after answering 404. */
static int take_code(owner_ctx_t *x)
{
    const char *code = x->req->params[0];
    if (!valid_code(code)) {
        respond_invitation_gone(x);
        return 0;
    }
    x->code = code;
    lmdm_secrets_token_hash(x->sec, "invitation", code, x->code_hash);
    return 1;
}

static void invite_page(lmdm_http_req_t *req)
{
    owner_ctx_t *x = owner_begin(req);
    if (x && take_code(x)) owner_resolve(x, invite_page_owner);
}

static void accept_done(void *arg, int err, PGresult *res)
{
    owner_ctx_t *x = arg;
    if (err) {
        owner_respond_db_error(x, err, res, "invitation_accept");
        return;
    }
    const char *code = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";
    if (!strcmp(code, "not_found")) {
        respond_invitation_gone(x);
        return;
    }
    if (!strcmp(code, "device")) {
        lmdm_html_respond_message(x->req, 409, "Your device has not finished enrolling",
                                  "Nothing was changed. Wait a minute, then open the invitation again.");
        return;
    }
    if (strcmp(code, "ok") != 0 && strcmp(code, "already") != 0) {
        owner_respond_db_error(x, LMDM_ERR_DB, NULL, "invitation_accept (unexpected code)");
        return;
    }
    lmdm_info("conn=%llu: owner accepted tenant %lld%s", (unsigned long long)x->req->conn_id, x->tenant_id,
              strcmp(code, "already") ? "" : " (already active)");
    lmdm_buf_t b = {0};
    lmdm_html_begin(&b, lmdm_arena_printf(x->req->arena, "You accepted %s", x->tenant_name));
    lmdm_buf_puts(&b, "<p>");
    lmdm_html_escape(&b, x->tenant_name);
    lmdm_buf_puts(
        &b, " can now install its apps and accounts on this device. You can remove it at any time.</p>\n"
            "<p><a class=\"button\" href=\"/owner\">My device</a></p>\n");
    lmdm_html_end(&b);
    lmdm_html_respond(x->req, 200, &b);
}

static void decline_done(void *arg, int err, PGresult *res)
{
    owner_ctx_t *x = arg;
    if (err) {
        owner_respond_db_error(x, err, res, "invitation_decline");
        return;
    }
    if (strcmp(PQcmdTuples(res), "0") == 0) {
        respond_invitation_gone(x);
        return;
    }
    lmdm_info("conn=%llu: owner declined an invitation of tenant %lld", (unsigned long long)x->req->conn_id,
              x->tenant_id);
    lmdm_buf_t b = {0};
    lmdm_html_begin(&b, "Declined");
    lmdm_buf_puts(&b, "<p>");
    lmdm_html_escape(&b, x->tenant_name);
    lmdm_buf_puts(&b, " was not told anything about this device.</p>\n"
                      "<p><a class=\"button\" href=\"/owner\">My device</a></p>\n");
    lmdm_html_end(&b);
    lmdm_html_respond(x->req, 200, &b);
}

static void invite_post_got(void *arg, int err, PGresult *res)
{
    owner_ctx_t *x = arg;
    if (!take_invitation(x, err, res)) return;
    if (!strcmp(x->action, "decline")) {
        const char *params[] = {x->code_hash};
        owner_query(x, &st_invitation_decline, params, decline_done);
        return;
    }
    char pseudonym[LMDM_PSEUDONYM_LEN + 1];
    lmdm_secrets_pseudonym(x->sec, x->tenant_id, x->device_id, pseudonym);
    const char *params[] = {x->code_hash, x->device_id_s, pseudonym};
    owner_query(x, &st_invitation_accept, params, accept_done);
}

static void invite_post_owner(owner_ctx_t *x)
{
    if (!x->device_id) {
        owner_respond_no_session(x);
        return;
    }
    if (!owner_csrf_ok(x, invite_csrf_what(x))) {
        lmdm_info("conn=%llu: invitation form refused (CSRF token)", (unsigned long long)x->req->conn_id);
        owner_respond_form_expired(x, arena_concat(x, "/invite/", x->code));
        return;
    }
    const char *params[] = {x->code_hash};
    owner_query(x, &st_invitation_get, params, invite_post_got);
}

static void invite_post(lmdm_http_req_t *req)
{
    owner_ctx_t *x = owner_begin(req);
    if (!x || !take_code(x) || !owner_post_checks(x)) return;
    if (!x->action || (strcmp(x->action, "accept") != 0 && strcmp(x->action, "decline") != 0)) {
        lmdm_html_respond_message(req, 400, "This form could not be read",
                                  "Nothing was changed. Go back and choose Accept or Decline.");
        return;
    }
    owner_resolve(x, invite_post_owner);
}

/* ---- GET /policy ---- */

/* The value of `decision` in the query, in the arena, or NULL. Valid values
 * are plain words, so nothing is decoded; anything else is simply unknown. */
static const char *query_decision(lmdm_http_req_t *req)
{
    const char *q = req->query ? req->query : "";
    while (*q) {
        size_t n = strcspn(q, "&");
        if (n > 9 && strncmp(q, "decision=", 9) == 0) {
            char *v = lmdm_arena_alloc(req->arena, n - 9 + 1);
            memcpy(v, q + 9, n - 9);
            v[n - 9] = '\0';
            return v;
        }
        q += n + (q[n] == '&');
    }
    return NULL;
}

/* The decision table for everyone (operators, auditors, owners, tenants):
 * no session, no database, the same on every broker of a version. */
static void policy_page(lmdm_http_req_t *req)
{
    lmdm_buf_t b = {0};
    lmdm_html_begin(&b, "What organizations can and cannot do");
    lmdm_html_policy(&b, query_decision(req));
    lmdm_html_end(&b);
    lmdm_html_respond(req, 200, &b);
}

/* ---- routes ---- */

static int add(lmdm_router_t *r, const char *method, const char *pattern, const char *name,
               lmdm_http_handler_fn fn, size_t body_limit, int secret_in_path)
{
    if (lmdm_router_add(r, method, pattern, name, fn, body_limit) != 0) return LMDM_ERR_INVALID;
    if (secret_in_path) lmdm_router_redact_last(r);
    return 0;
}

int lmdm_owner_routes(lmdm_router_t *r, const lmdm_config_t *cfg)
{
    (void)cfg;
    /* The login token is in the query, which is never logged; redacted anyway
     * in case that ever changes. Invitation codes are in the path. */
    if (add(r, "GET", "/owner/login", "owner_login", login, 1024, 1) ||
        add(r, "GET", "/owner", "owner", home, 1024, 0) ||
        add(r, "GET", "/owner/enrollments/{n}/remove", "owner_remove_confirm", remove_page, 1024, 0) ||
        add(r, "POST", "/owner/enrollments/{n}/remove", "owner_remove", remove_post, LMDM_OWNER_FORM_LIMIT,
            0) ||
        add(r, "GET", "/invite/{code}", "invite", invite_page, 1024, 1) ||
        add(r, "POST", "/invite/{code}", "invite_answer", invite_post, LMDM_OWNER_FORM_LIMIT, 1) ||
        add(r, "POST", "/owner/osupdate", "owner_osupdate", owner_osupdate_post, LMDM_OWNER_FORM_LIMIT, 0) ||
        add(r, "GET", "/policy", "policy", policy_page, 1024, 0))
        return LMDM_ERR_INVALID;
    return 0;
}
