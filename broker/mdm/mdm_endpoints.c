/* PUT /mdm/checkin and PUT /mdm/connect; the DeclarativeManagement check-in
 * serves the broker's declarations (the merged passcode, 0007). */
#include "lmdm/mdm_endpoints.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <plist/plist.h>

#include "lmdm/db.h"
#include "lmdm/ddm_status.h"
#include "lmdm/enroll.h"
#include "lmdm/log.h"
#include "lmdm/mdm.h"
#include "lmdm/mdm_auth.h"
#include "lmdm/osupdate_apply.h"
#include "lmdm/rules_profile.h"
#include "lmdm/seen.h"
#include "lmdm/server.h"

#define CHECKIN_CT "application/x-apple-aspen-mdm-checkin"

/* Per-request state, in the request's arena. */
typedef struct {
    lmdm_http_req_t *req;
    lmdm_checkin_t in;
    lmdm_connect_t cmd;
    char fpr[LMDM_FINGERPRINT_LEN + 1];
} mdm_ctx_t;

static const lmdm_db_stmt_t st_authenticate = {
    "mdm_authenticate", "SELECT mdm_authenticate($1, $2, $3, $4, $5::jsonb)", 5};
static const lmdm_db_stmt_t st_token_update = {
    "mdm_token_update", "SELECT mdm_token_update($1, $2, $3, $4::bytea, $5, $6::bytea, $7::jsonb)", 7};
static const lmdm_db_stmt_t st_checkout = {"mdm_checkout", "SELECT mdm_checkout($1, $2)", 2};
static const lmdm_db_stmt_t st_bootstrap_set = {
    "mdm_bootstrap_set", "SELECT mdm_bootstrap_set($1, $2, $3::bytea)", 3};
static const lmdm_db_stmt_t st_bootstrap_get = {
    "mdm_bootstrap_get", "SELECT code, encode(token, 'hex') FROM mdm_bootstrap_get($1, $2)", 2};
static const lmdm_db_stmt_t st_device_for = {"mdm_device_for", "SELECT p_code FROM mdm_device_for($1, $2)", 2};
static const lmdm_db_stmt_t st_declarations = {
    "mdm_declarations_all",
    "SELECT code, token, declaration, changed_at, osu_token, osu_declaration FROM mdm_declarations_all($1, $2)", 2};
static const lmdm_db_stmt_t st_ddm_status = {"mdm_ddm_status", "SELECT mdm_ddm_status($1, $2, $3::jsonb)", 3};
static const lmdm_db_stmt_t st_connect = {
    "mdm_connect", "SELECT code, command_uuid, payload FROM mdm_connect($1, $2, $3, $4, $5::uuid, $6)", 6};

/* A device identifier shortened for logs: never a full UDID in a log line. */
static const char *short_id(const char *key, char buf[16])
{
    snprintf(buf, 16, "%.8s…", key ? key : "?");
    return buf;
}

static char *hex_param(lmdm_arena_t *a, const lmdm_bytes_t *b)
{
    if (!b->p) return NULL;
    static const char digits[] = "0123456789abcdef";
    char *s = lmdm_arena_alloc(a, 2 * b->len + 3);
    s[0] = '\\';
    s[1] = 'x';
    for (size_t i = 0; i < b->len; i++) {
        s[2 + 2 * i] = digits[b->p[i] >> 4];
        s[3 + 2 * i] = digits[b->p[i] & 15];
    }
    s[2 + 2 * b->len] = '\0';
    return s;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The procedures' result codes, as HTTP answers. 403 is used for every refusal
 * of a known identity: a bare 401 can make a device unenroll itself. */
static void answer_code(mdm_ctx_t *x, const char *code)
{
    lmdm_http_req_t *req = x->req;
    char sid[16];
    const char *key = x->in.who.device_key ? x->in.who.device_key : x->cmd.who.device_key;
    if (strcmp(code, "ok") == 0) {
        lmdm_http_respond(req, 200, NULL, NULL, 0);
    } else if (strcmp(code, "cert_mismatch") == 0) {
        lmdm_warn("conn=%llu device=%s: refused: certificate differs from the one bound at Authenticate",
                  (unsigned long long)req->conn_id, short_id(key, sid));
        lmdm_http_respond_error(req, 403, "identity_mismatch",
                                "this device is enrolled with another identity certificate");
    } else if (strcmp(code, "unknown_command") == 0) {
        lmdm_warn("conn=%llu device=%s: CommandUUID %s was never sent to this device",
                  (unsigned long long)req->conn_id, short_id(key, sid), x->cmd.command_uuid);
        lmdm_http_respond_error(req, 400, "unknown_command", "CommandUUID was never sent to this device");
    } else {
        lmdm_info("conn=%llu device=%s: refused: %s", (unsigned long long)req->conn_id, short_id(key, sid), code);
        lmdm_http_respond_error(req, 403, code,
                                strcmp(code, "unknown_device") == 0   ? "device not enrolled here"
                                : strcmp(code, "checked_out") == 0    ? "device checked out"
                                : strcmp(code, "not_enrolled") == 0   ? "enrollment not completed (no TokenUpdate)"
                                : strcmp(code, "unknown_channel") == 0 ? "no such user channel"
                                                                       : "refused");
    }
}

/* Shared result handler for procedures answering one text code. */
static void done_code(void *arg, int err, PGresult *res)
{
    mdm_ctx_t *x = arg;
    if (err) {
        if (err == LMDM_ERR_DB)
            lmdm_error("conn=%llu: %s failed: %s", (unsigned long long)x->req->conn_id,
                       lmdm_checkin_type_name(x->in.type), PQresultErrorMessage(res));
        if (err == LMDM_ERR_DB) lmdm_http_respond_error(x->req, 500, "internal", "database error");
        else lmdm_http_respond_unavailable(x->req);
        return;
    }
    answer_code(x, PQgetisnull(res, 0, 0) ? "unknown_device" : PQgetvalue(res, 0, 0));
}

static void query(mdm_ctx_t *x, const lmdm_db_stmt_t *st, const char *const *params, lmdm_db_result_cb cb)
{
    if (!x->req->worker->db || lmdm_db_query(x->req->worker->db, st, st->nparams, params, cb, x) != 0)
        lmdm_http_respond_unavailable(x->req);
}

/* Common head of the result callbacks that continue on "ok": answers errors and
 * refusals itself and returns 0, or returns 1 when the handler goes on.
 * `allow_not_enrolled` also lets an Authenticated-but-not-yet-updated device on. */
static int proceed(mdm_ctx_t *x, int err, PGresult *res, int allow_not_enrolled)
{
    if (err) {
        done_code(x, err, res);
        return 0;
    }
    const char *code = PQgetvalue(res, 0, 0);
    if (strcmp(code, "ok") == 0 || (allow_not_enrolled && strcmp(code, "not_enrolled") == 0)) return 1;
    answer_code(x, code);
    return 0;
}

static void respond_plist(lmdm_http_req_t *req, plist_t dict)
{
    char *xml = NULL;
    uint32_t len = 0;
    plist_to_xml(dict, &xml, &len);
    lmdm_http_respond(req, 200, "application/xml", xml, len);
    plist_to_xml_free(xml);
}

static void bootstrap_get_done(void *arg, int err, PGresult *res)
{
    mdm_ctx_t *x = arg;
    if (!proceed(x, err, res, 1)) return;
    plist_t d = plist_new_dict();
    if (!PQgetisnull(res, 0, 1)) {
        const char *hex = PQgetvalue(res, 0, 1);
        size_t n = strlen(hex) / 2;
        char *bytes = lmdm_arena_alloc(x->req->arena, n ? n : 1);
        for (size_t i = 0; i < n; i++) bytes[i] = (char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
        plist_dict_set_item(d, "BootstrapToken", plist_new_data(bytes, n));
    }
    respond_plist(x->req, d);
    plist_free(d);
}

/* DeclarativeManagement. The broker's declaration set for a device holds at
 * most two configurations of its own, each with a content-hash ServerToken:
 *   - the merged passcode (broker/rules/rules_apply.c, 0007), on a device
 *     that takes it as a declaration;
 *   - the OS-update enforcement (broker/osupdate/osupdate_apply.c, 0008),
 *     with a status subscription to the OS version and the update's
 *     progress, so the device reports when it is done;
 * and one simple activation of what is there. An empty set has a stable
 * token. The set's DeclarationsToken joins the configurations' tokens, so
 * it changes whenever one does. User channels get the empty set: both are
 * device-wide. */
#define DDM_TOKEN "lmdm-declarations-0"
#define DDM_PASSCODE_ID LMDM_RULES_DECL_PASSCODE_ID
#define DDM_ACTIVATION_ID LMDM_RULES_DECL_ACTIVATION_ID
#define DDM_STATUS_TOKEN "lmdm-status-1"

static void respond_json(lmdm_http_req_t *req, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s) {
        lmdm_http_respond_error(req, 500, "internal", "cannot encode the answer");
        return;
    }
    lmdm_http_respond(req, 200, "application/json", s, strlen(s));
    free(s);
}

typedef struct {
    const char *passcode_token, *passcode; /* NULL: no passcode declaration */
    const char *osu_token, *osu;           /* NULL: no OS-update declaration */
    const char *changed_at;
    char set_token[160];
    char activation_token[40];
} ddm_set_t;

static void ddm_set(PGresult *res, int device_channel, ddm_set_t *d)
{
    memset(d, 0, sizeof *d);
    if (device_channel && !PQgetisnull(res, 0, 1)) {
        d->passcode_token = PQgetvalue(res, 0, 1);
        d->passcode = PQgetvalue(res, 0, 2);
    }
    if (device_channel && !PQgetisnull(res, 0, 4)) {
        d->osu_token = PQgetvalue(res, 0, 4);
        d->osu = PQgetvalue(res, 0, 5);
    }
    d->changed_at = PQgetisnull(res, 0, 3) ? "2026-01-01T00:00:00Z" : PQgetvalue(res, 0, 3);
    /* The activation's content depends only on which configurations exist. */
    snprintf(d->activation_token, sizeof d->activation_token, "lmdm-activation-%d",
             (d->passcode ? 1 : 0) + (d->osu ? 2 : 0));
    if (d->passcode && d->osu)
        snprintf(d->set_token, sizeof d->set_token, "%s.%s", d->passcode_token, d->osu_token);
    else
        snprintf(d->set_token, sizeof d->set_token, "%s",
                 d->passcode ? d->passcode_token : d->osu ? d->osu_token : DDM_TOKEN);
}

static json_t *ddm_item(const char *id, const char *token)
{
    return json_pack("{s:s,s:s}", "Identifier", id, "ServerToken", token);
}

static json_t *ddm_items(const ddm_set_t *d)
{
    json_t *act = json_array(), *conf = json_array();
    if (d->passcode || d->osu) json_array_append_new(act, ddm_item(DDM_ACTIVATION_ID, d->activation_token));
    if (d->passcode) json_array_append_new(conf, ddm_item(DDM_PASSCODE_ID, d->passcode_token));
    if (d->osu) {
        json_array_append_new(conf, ddm_item(LMDM_OSUPDATE_DECL_ID, d->osu_token));
        json_array_append_new(conf, ddm_item(LMDM_OSUPDATE_STATUS_ID, DDM_STATUS_TOKEN));
    }
    return json_pack("{s:{s:o,s:[],s:o,s:[]},s:s}", "Declarations", "Activations", act, "Assets", "Configurations",
                     conf, "Management", "DeclarationsToken", d->set_token);
}

static json_t *ddm_activation(const ddm_set_t *d)
{
    json_t *ids = json_array();
    if (d->passcode) json_array_append_new(ids, json_string(DDM_PASSCODE_ID));
    if (d->osu) {
        json_array_append_new(ids, json_string(LMDM_OSUPDATE_DECL_ID));
        json_array_append_new(ids, json_string(LMDM_OSUPDATE_STATUS_ID));
    }
    return json_pack("{s:s,s:s,s:s,s:{s:o}}", "Type", "com.apple.activation.simple", "Identifier", DDM_ACTIVATION_ID,
                     "ServerToken", d->activation_token, "Payload", "StandardConfigurations", ids);
}

/* The status items the broker follows while an update is enforced. */
static json_t *ddm_status_subscriptions(void)
{
    static const char *const items[] = {"device.operating-system.version", "device.operating-system.build-version",
                                        "softwareupdate.install-state", "softwareupdate.pending-version",
                                        "softwareupdate.failure-reason"};
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++)
        json_array_append_new(a, json_pack("{s:s}", "Name", items[i]));
    return json_pack("{s:s,s:s,s:s,s:{s:o}}", "Type", "com.apple.configuration.management.status-subscriptions",
                     "Identifier", LMDM_OSUPDATE_STATUS_ID, "ServerToken", DDM_STATUS_TOKEN, "Payload", "StatusItems",
                     a);
}

static void ddm_done(void *arg, int err, PGresult *res)
{
    mdm_ctx_t *x = arg;
    if (!proceed(x, err, res, 0)) return;
    const char *ep = x->in.endpoint;
    ddm_set_t d;
    ddm_set(res, !x->in.who.user_key || !*x->in.who.user_key, &d);
    if (strcmp(ep, "tokens") == 0) {
        respond_json(x->req, json_pack("{s:{s:s,s:s}}", "SyncTokens", "DeclarationsToken", d.set_token, "Timestamp",
                                       d.changed_at));
    } else if (strcmp(ep, "declaration-items") == 0) {
        respond_json(x->req, ddm_items(&d));
    } else if (d.passcode && strcmp(ep, "declaration/configuration/" DDM_PASSCODE_ID) == 0) {
        lmdm_http_respond(x->req, 200, "application/json", d.passcode, strlen(d.passcode));
    } else if (d.osu && strcmp(ep, "declaration/configuration/" LMDM_OSUPDATE_DECL_ID) == 0) {
        lmdm_http_respond(x->req, 200, "application/json", d.osu, strlen(d.osu));
    } else if (d.osu && strcmp(ep, "declaration/configuration/" LMDM_OSUPDATE_STATUS_ID) == 0) {
        respond_json(x->req, ddm_status_subscriptions());
    } else if ((d.passcode || d.osu) && strcmp(ep, "declaration/activation/" DDM_ACTIVATION_ID) == 0) {
        respond_json(x->req, ddm_activation(&d));
    } else {
        lmdm_http_respond_error(x->req, 404, "no_such_declaration", "no such declaration");
    }
}

/* A status report: the facts the broker keeps (lmdm/ddm_status.h) are
 * stored; the device gets an empty 200 either way once it is known. */
static void ddm_status_done(void *arg, int err, PGresult *res)
{
    mdm_ctx_t *x = arg;
    if (!proceed(x, err, res, 0)) return;
    lmdm_http_respond(x->req, 200, NULL, NULL, 0);
}

static void ddm_checkin(mdm_ctx_t *x, const char *key)
{
    if (x->in.endpoint && strcmp(x->in.endpoint, "status") == 0) {
        char err[256];
        char *facts = lmdm_ddm_status_facts(x->in.data.p ? (const void *)x->in.data.p : "", x->in.data.len, err,
                                            sizeof err);
        if (!facts) {
            lmdm_http_respond_error(x->req, 400, "bad_status_report", err);
            return;
        }
        /* Facts are device-wide: a user channel's report changes nothing. */
        int device_channel = !x->in.who.user_key || !*x->in.who.user_key;
        const char *p[] = {key, x->fpr, lmdm_arena_strdup(x->req->arena, device_channel ? facts : "{}")};
        free(facts);
        query(x, &st_ddm_status, p, ddm_status_done);
        return;
    }
    const char *p[] = {key, x->fpr};
    query(x, &st_declarations, p, ddm_done);
}

static void user_authenticate_done(void *arg, int err, PGresult *res)
{
    mdm_ctx_t *x = arg;
    if (!proceed(x, err, res, 0)) return;
    /* An empty DigestChallenge: the broker needs no AuthToken for the user. */
    plist_t d = plist_new_dict();
    plist_dict_set_item(d, "DigestChallenge", plist_new_string(""));
    respond_plist(x->req, d);
    plist_free(d);
}

static void user_info(mdm_ctx_t *x, const char **out)
{
    const lmdm_mdm_who_t *w = &x->in.who;
    *out = NULL;
    if (!*w->user_key) return;
    json_t *o = json_object();
    if (w->user_short_name) json_object_set_new(o, "UserShortName", json_string(w->user_short_name));
    if (w->user_long_name) json_object_set_new(o, "UserLongName", json_string(w->user_long_name));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s) {
        *out = lmdm_arena_strdup(x->req->arena, s);
        free(s);
    }
}

static int authenticate(lmdm_http_req_t *req, mdm_ctx_t *x)
{
    char reason[256];
    lmdm_auth_via_t via;
    int st = lmdm_mdm_auth(req, time(NULL), x->fpr, &via, reason, sizeof(reason));
    if (st) {
        lmdm_info("conn=%llu: %s %s refused (%d): %s", (unsigned long long)req->conn_id, req->method, req->path, st,
                  reason);
        lmdm_http_respond_error(req, st, st == 401 ? "no_identity" : st == 503 ? "no_ca" : "identity_refused",
                                reason);
        return -1;
    }
    return 0;
}

static void checkin(lmdm_http_req_t *req)
{
    mdm_ctx_t *x = lmdm_arena_alloc(req->arena, sizeof(*x));
    memset(x, 0, sizeof(*x));
    x->req = req;
    if (authenticate(req, x)) return;
    char err[256];
    if (lmdm_checkin_parse(req->body, req->body_len, req->arena, &x->in, err, sizeof(err)) != 0) {
        lmdm_http_respond_error(req, 400, "bad_checkin", err);
        return;
    }
    const lmdm_checkin_t *in = &x->in;
    const char *key = in->who.device_key, *user = in->who.user_key;
    const lmdm_config_t *cfg = req->worker->config;
    switch (in->type) {
    case LMDM_CHECKIN_AUTHENTICATE: {
        if (*cfg->apns_topic && strcmp(in->topic, cfg->apns_topic) != 0) {
            lmdm_http_respond_error(req, 403, "wrong_topic", "Topic is not this broker's push topic");
            return;
        }
        const char *p[] = {key, in->who.user_enrollment ? "user" : "device", x->fpr, in->topic, in->info_json};
        query(x, &st_authenticate, p, done_code);
        return;
    }
    case LMDM_CHECKIN_TOKEN_UPDATE: {
        const char *uinfo;
        user_info(x, &uinfo);
        const char *p[] = {key,
                           user,
                           x->fpr,
                           hex_param(req->arena, &in->token),
                           in->push_magic,
                           hex_param(req->arena, &in->unlock_token),
                           uinfo};
        query(x, &st_token_update, p, done_code);
        return;
    }
    case LMDM_CHECKIN_CHECK_OUT: {
        const char *p[] = {key, x->fpr};
        query(x, &st_checkout, p, done_code);
        return;
    }
    case LMDM_CHECKIN_SET_BOOTSTRAP_TOKEN: {
        lmdm_bytes_t empty = {(const unsigned char *)"", 0};
        const char *p[] = {key, x->fpr, hex_param(req->arena, in->bootstrap_token.p ? &in->bootstrap_token : &empty)};
        query(x, &st_bootstrap_set, p, done_code);
        return;
    }
    case LMDM_CHECKIN_GET_BOOTSTRAP_TOKEN: {
        const char *p[] = {key, x->fpr};
        query(x, &st_bootstrap_get, p, bootstrap_get_done);
        return;
    }
    case LMDM_CHECKIN_DECLARATIVE_MANAGEMENT:
        ddm_checkin(x, key);
        return;
    case LMDM_CHECKIN_USER_AUTHENTICATE: {
        const char *p[] = {key, x->fpr};
        query(x, &st_device_for, p, user_authenticate_done);
        return;
    }
    case LMDM_CHECKIN_GET_TOKEN:
        /* The broker runs no token service (com.apple.maid, watch pairing). */
        lmdm_http_respond_error(req, 400, "unsupported_token_service",
                                "this server provides no token for that TokenServiceType");
        return;
    }
}

static void connect_done(void *arg, int err, PGresult *res)
{
    mdm_ctx_t *x = arg;
    if (err) {
        if (err == LMDM_ERR_DB) {
            lmdm_error("conn=%llu: connect failed: %s", (unsigned long long)x->req->conn_id,
                       PQresultErrorMessage(res));
            lmdm_http_respond_error(x->req, 500, "internal", "database error");
        } else {
            lmdm_http_respond_unavailable(x->req);
        }
        return;
    }
    const char *code = PQgetvalue(res, 0, 0);
    if (strcmp(code, "ok") != 0) {
        answer_code(x, code);
        return;
    }
    lmdm_seen_mark(x->req->worker->seen, x->cmd.who.device_key);
    if (PQgetisnull(res, 0, 2)) {
        lmdm_http_respond(x->req, 200, NULL, NULL, 0); /* nothing queued */
        return;
    }
    lmdm_http_respond(x->req, 200, "application/xml", PQgetvalue(res, 0, 2), (size_t)PQgetlength(res, 0, 2));
}

static void connect(lmdm_http_req_t *req)
{
    const char *ct = lmdm_http_req_header(req, "content-type");
    if (ct && strncmp(ct, CHECKIN_CT, sizeof(CHECKIN_CT) - 1) == 0) {
        checkin(req); /* a profile without CheckInURL sends check-ins here */
        return;
    }
    mdm_ctx_t *x = lmdm_arena_alloc(req->arena, sizeof(*x));
    memset(x, 0, sizeof(*x));
    x->req = req;
    if (authenticate(req, x)) return;
    char err[256];
    if (lmdm_connect_parse(req->body, req->body_len, req->arena, &x->cmd, err, sizeof(err)) != 0) {
        lmdm_http_respond_error(req, 400, "bad_command_response", err);
        return;
    }
    if (!lmdm_utf8_valid(req->body, req->body_len)) {
        lmdm_http_respond_error(req, 400, "bad_command_response", "body is not valid UTF-8");
        return;
    }
    const lmdm_connect_t *m = &x->cmd;
    int idle = m->status == LMDM_STATUS_IDLE;
    const char *p[] = {m->who.device_key, m->who.user_key, x->fpr, lmdm_status_name(m->status),
                       idle ? NULL : m->command_uuid, idle ? NULL : req->body};
    if (!req->worker->db || lmdm_db_query(req->worker->db, &st_connect, 6, p, connect_done, x) != 0)
        lmdm_http_respond_unavailable(req);
}

int lmdm_mdm_routes(lmdm_router_t *r, const lmdm_config_t *cfg)
{
    int rv = 0;
    rv |= lmdm_router_add(r, "PUT", "/mdm/checkin", "mdm_checkin", checkin, cfg->mdm_max_body);
    rv |= lmdm_router_add(r, "PUT", "/mdm/connect", "mdm_connect", connect, cfg->mdm_max_body);
    rv |= lmdm_router_add(r, "GET", "/enroll", "enroll", lmdm_enroll_handle, 1024);
    return rv ? LMDM_ERR_INVALID : 0;
}
