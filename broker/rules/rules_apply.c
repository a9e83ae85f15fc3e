/* The rules applier: one background thread that keeps every device's
 * broker-owned rules profile equal to the strictest merge of its tenants'
 * rules, and turns the device's SecurityInfo answers into per-tenant
 * compliance (DESIGN.md flow 5).
 *
 * Loop: (re)connect, take the advisory lock (one applier per database),
 * LISTEN lmdm_rules; then
 *   - for devices marked rules_dirty (a tenant joined, left or changed a
 *     rule; the device re-enrolled): read the rules in force
 *     (rules_inputs), merge them (policy/rules.c), build the profile, and let
 *     rules_apply() queue InstallProfile (or RemoveProfile when nothing is
 *     required any more) plus a SecurityInfo, only when the profile's content
 *     hash changed. A device with declarative management for the passcode
 *     (lmdm_rules_declaration_capable: iOS 16.2 or later) gets the passcode
 *     (and, on iOS, encryption, which is a passcode) as a declaration instead
 *     of in the profile: rules_apply_all() stores it and queues
 *     DeclarativeManagement when its ServerToken changed; the
 *     DeclarativeManagement check-in serves it (broker/mdm/mdm_endpoints.c);
 *   - for devices marked security_dirty (the broker's SecurityInfo was
 *     answered): judge each active tenant's requirements met / unmet and store
 *     them (compliance_store: an event for each tenant whose state changed);
 * and wait for a NOTIFY, or at most a second. */
#include "lmdm/rules_apply.h"

#include <jansson.h>
#include <plist/plist.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/bgdb.h"
#include "lmdm/buf.h"
#include "lmdm/common.h"
#include "lmdm/log.h"
#include "lmdm/mdm.h"
#include "lmdm/rules.h"
#include "lmdm/rules_json.h"
#include "lmdm/rules_profile.h"

#define POLL_MS 1000
#define BATCH 200

struct lmdm_rules_applier {
    pthread_t thread;
    atomic_int stop;
    char *conninfo;
    lmdm_bgdb_t db;
    int compliance_interval_s;
    uint64_t next_refresh_ns;
};

static int stopping(lmdm_rules_applier_t *a) { return atomic_load(&a->stop); }

/* ---- commands the broker sends ---- */

/* {CommandUUID, Command} as XML; `data` (may be NULL) goes in as the data
 * value of `key`, `str` as a string value. */
static char *command_xml(const char *uuid, const char *request_type, const char *key, const char *str,
                         const lmdm_buf_t *data)
{
    plist_t root = plist_new_dict(), cmd = plist_new_dict();
    plist_dict_set_item(cmd, "RequestType", plist_new_string(request_type));
    if (key && str) plist_dict_set_item(cmd, key, plist_new_string(str));
    if (key && data) plist_dict_set_item(cmd, key, plist_new_data(data->data, data->len));
    plist_dict_set_item(root, "CommandUUID", plist_new_string(uuid));
    plist_dict_set_item(root, "Command", cmd);
    char *xml = NULL;
    uint32_t n = 0;
    plist_to_xml(root, &xml, &n);
    plist_free(root);
    char *copy = xml ? strndup(xml, n) : NULL;
    plist_to_xml_free(xml);
    return copy;
}

static void upper(char *s)
{
    for (; *s; s++)
        if (*s >= 'a' && *s <= 'f') *s = (char)(*s - 'a' + 'A');
}

/* ---- one device's merge ---- */

typedef struct {
    int64_t enrollment_id[LMDM_RULES_MAX_TENANTS];
    const char *name[LMDM_RULES_MAX_TENANTS];
    lmdm_rules_t rules[LMDM_RULES_MAX_TENANTS];
    json_t *docs[LMDM_RULES_MAX_TENANTS * 4]; /* the parsed rules */
    size_t n, ndocs;
} inputs_t;

static void inputs_free(inputs_t *in)
{
    for (size_t i = 0; i < in->ndocs; i++) json_decref(in->docs[i]);
    for (size_t i = 0; i < in->n; i++) lmdm_rules_free(&in->rules[i]);
    in->ndocs = 0;
    in->n = 0;
}

/* rules_inputs rows (enrollment_id, tenant_name, section, rules) grouped by
 * enrollment. A row that no longer parses (it was validated when stored) is
 * skipped with a warning rather than blocking the device. */
static void collect(const PGresult *r, inputs_t *in, int64_t device)
{
    memset(in, 0, sizeof(*in)); /* zeroed rules: lmdm_rules_from_json may fill them */
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t eid = atoll(PQgetvalue(r, i, 0));
        if (in->n == 0 || in->enrollment_id[in->n - 1] != eid) {
            if (in->n == LMDM_RULES_MAX_TENANTS) break;
            in->enrollment_id[in->n] = eid;
            in->name[in->n] = PQgetvalue(r, i, 1);
            in->n++;
        }
        json_t *j = json_loads(PQgetvalue(r, i, 3), 0, NULL);
        char err[256];
        if (!j || in->ndocs == sizeof(in->docs) / sizeof(in->docs[0]) ||
            lmdm_rules_from_json(PQgetvalue(r, i, 2), j, &in->rules[in->n - 1], err, sizeof(err)) != 0) {
            lmdm_warn("rules: device %lld: a stored %s rule no longer parses; skipped", (long long)device,
                      PQgetvalue(r, i, 2));
            json_decref(j);
            continue;
        }
        in->docs[in->ndocs++] = j;
    }
}

/* Queue what the merge asks for: rules_apply() (0005) for the profile, or on
 * a declaration device rules_apply_all() (0007), which also stores the
 * passcode declaration and queues DeclarativeManagement when it changed. */
static PGresult *store_merge(lmdm_rules_applier_t *a, const char *gen, const char *id, int empty, const char *hash,
                             const lmdm_buf_t *profile, const char *merged, int ddm, const char *token,
                             const char *declaration)
{
    char u1[37], u2[37], u3[37], u4[37];
    if (lmdm_uuid_v4(u1) || lmdm_uuid_v4(u2) || lmdm_uuid_v4(u3) || lmdm_uuid_v4(u4)) return NULL;
    upper(u1);
    upper(u2);
    upper(u3);
    upper(u4);
    char *install = empty ? NULL : command_xml(u1, "InstallProfile", "Payload", NULL, profile);
    char *remove = command_xml(u2, "RemoveProfile", "Identifier", LMDM_RULES_PROFILE_ID, NULL);
    char *security = command_xml(u3, "SecurityInfo", NULL, NULL, NULL);
    char *sync = ddm ? command_xml(u4, "DeclarativeManagement", NULL, NULL, NULL) : NULL;
    /* gen: the generation the inputs were read at (0009): a marking since
     * then leaves the device marked. */
    const char *v[] = {gen,     id, empty ? NULL : hash, merged, u1, install, u2, remove, u3, security,
                       token, declaration, u4, sync};
    PGresult *res =
        ddm ? lmdm_bgdb_expect_prepared(&a->db, "rules_apply_all", "ra_apply_all",
                                        "SELECT rules_apply_all_gen($1::bigint, $2, $3, $4::jsonb, $5::uuid, $6, "
                                        "$7::uuid, $8, $9::uuid, $10, $11, $12, $13::uuid, $14)",
                                        14, v, PGRES_TUPLES_OK)
            : lmdm_bgdb_expect_prepared(&a->db, "rules_apply", "ra_apply",
                                        "SELECT rules_apply_gen($1::bigint, $2, $3, $4::jsonb, $5::uuid, $6, "
                                        "$7::uuid, $8, $9::uuid, $10)",
                                        10, v, PGRES_TUPLES_OK);
    free(install);
    free(remove);
    free(security);
    free(sync);
    return res;
}

static void log_result(int64_t device, const char *what, size_t tenants)
{
    if (strcmp(what, "unchanged") != 0)
        lmdm_info("rules: device %lld: %s (%zu tenant(s) with rules)", (long long)device, what, tenants);
}

/* ddm: the device takes the passcode as a declaration
 * (lmdm_rules_declaration_capable), so the profile goes without it. */
static int apply_device(lmdm_rules_applier_t *a, const char *gen, int64_t device, int macos, int ddm)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)device);
    const char *v1[] = {id};
    PGresult *r = lmdm_bgdb_expect_prepared(&a->db, "rules_inputs", "ra_inputs",
                                   "SELECT enrollment_id, tenant_name, section, rules FROM rules_inputs($1)", 1, v1,
                                   PGRES_TUPLES_OK);
    if (!r) return -1;
    static inputs_t in; /* one thread: large, so not on the stack */
    static lmdm_merged_t m, profiled;
    collect(r, &in, device);
    lmdm_rules_merge(in.rules, in.n, &m);
    if (ddm)
        lmdm_rules_without_declared(&m, &profiled);
    else
        profiled = m;
    lmdm_buf_t profile = {0}, decl = {0};
    char hash[65] = "", token[65] = "";
    int empty = lmdm_rules_profile(&profiled, macos, &profile, hash);
    int no_decl = ddm ? lmdm_rules_declaration(&m, &decl, token) : 1;
    int rc = -1;
    if (empty < 0 || no_decl < 0) goto out;
    lmdm_buf_append(&decl, "", 1); /* a C string for libpq */
    json_t *prov = lmdm_merged_to_json(&m, in.name, in.n);
    char *merged = json_dumps(prov, JSON_COMPACT);
    json_decref(prov);
    PGresult *res = store_merge(a, gen, id, empty, hash, &profile, merged, ddm, no_decl ? NULL : token,
                                no_decl ? NULL : (const char *)decl.data);
    free(merged);
    if (res) {
        log_result(device, PQgetvalue(res, 0, 0), in.n);
        PQclear(res);
        rc = 0;
    }
out:
    lmdm_buf_free(&profile);
    lmdm_buf_free(&decl);
    inputs_free(&in);
    PQclear(r);
    return rc;
}

/* ---- compliance ---- */

/* A boolean of the SecurityInfo dictionary: 1, 0, or -1 when absent. */
static int sec_bool(plist_t info, const char *key)
{
    plist_t n = info ? plist_dict_get_item(info, key) : NULL;
    if (!n || plist_get_node_type(n) != PLIST_BOOLEAN) return -1;
    uint8_t b = 0;
    plist_get_bool_val(n, &b);
    return b != 0;
}

static const char *state(int ok) { return ok < 0 ? "unknown" : ok ? "met" : "unmet"; }

static int evaluate_device(lmdm_rules_applier_t *a, int64_t device, int macos, int ddm)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)device);
    const char *v1[] = {id};
    PGresult *s = lmdm_bgdb_expect_prepared(&a->db, "security_latest", "ra_security",
                                   "SELECT result, profile_installed FROM security_latest($1)", 1, v1,
                                   PGRES_TUPLES_OK);
    if (!s) return -1;
    PGresult *r = lmdm_bgdb_expect_prepared(&a->db, "rules_inputs", "ra_inputs",
                                   "SELECT enrollment_id, tenant_name, section, rules FROM rules_inputs($1)", 1, v1,
                                   PGRES_TUPLES_OK);
    if (!r) {
        PQclear(s);
        return -1;
    }
    int present = -1, compliant = -1, with_profiles = -1, fde = -1;
    int installed = PQntuples(s) == 1 && !PQgetisnull(s, 0, 1) && strcmp(PQgetvalue(s, 0, 1), "t") == 0;
    if (PQntuples(s) == 1 && !PQgetisnull(s, 0, 0)) {
        char err[128];
        plist_t root = lmdm_mdm_plist_parse(PQgetvalue(s, 0, 0), (size_t)PQgetlength(s, 0, 0), err, sizeof err);
        plist_t info = root ? plist_dict_get_item(root, "SecurityInfo") : NULL;
        if (info && plist_get_node_type(info) != PLIST_DICT) info = NULL;
        present = sec_bool(info, "PasscodePresent");
        compliant = sec_bool(info, "PasscodeCompliant");
        with_profiles = sec_bool(info, "PasscodeCompliantWithProfiles");
        fde = sec_bool(info, "FDE_Enabled");
        plist_free(root);
    }
    /* Each requirement, judged from what the device said. The broker's
     * profile (or declaration) is the strictest merge, so a device compliant
     * with it is compliant with every tenant's own rule. On a declaration
     * device the passcode is not in the profile: PasscodeCompliant covers
     * declarations, PasscodeCompliantWithProfiles does not. */
    int passcode = ddm ? compliant
                   : with_profiles < 0 || compliant < 0 ? -1 : installed && with_profiles && compliant;
    int encryption = macos ? fde : (present < 0 ? -1 : (installed || ddm) && present);
    int profile_state = PQntuples(s) == 1 ? installed : -1;
    json_t *sec = json_pack("{s:o,s:o,s:o,s:o,s:b}", "PasscodePresent", present < 0 ? json_null() : json_boolean(present),
                            "PasscodeCompliant", compliant < 0 ? json_null() : json_boolean(compliant),
                            "PasscodeCompliantWithProfiles", with_profiles < 0 ? json_null() : json_boolean(with_profiles),
                            "FDE_Enabled", fde < 0 ? json_null() : json_boolean(fde), "profile_installed", installed);
    json_t *comp = json_object();
    for (int i = 0; i < PQntuples(r); i++) {
        const char *eid = PQgetvalue(r, i, 0), *section = PQgetvalue(r, i, 2);
        json_t *e = json_object_get(comp, eid);
        if (!e) {
            e = json_object();
            json_object_set_new(comp, eid, e);
        }
        int st = strcmp(section, "passcode") == 0 ? passcode : strcmp(section, "encryption") == 0 ? encryption : profile_state;
        json_object_set_new(e, section, json_string(state(st)));
    }
    char *secs = json_dumps(sec, JSON_COMPACT), *comps = json_dumps(comp, JSON_COMPACT);
    json_decref(sec);
    json_decref(comp);
    const char *v[] = {id, secs, comps};
    PGresult *res = lmdm_bgdb_expect_prepared(&a->db, "compliance_store", "ra_compliance", "SELECT compliance_store($1, $2::jsonb, $3::jsonb)",
                                     3, v, PGRES_TUPLES_OK);
    free(secs);
    free(comps);
    PQclear(s);
    PQclear(r);
    if (!res) return -1;
    PQclear(res);
    return 0;
}

/* ---- the loop ---- */

/* When idle, at most once a minute: ask devices whose compliance is older than
 * the interval again. 0, or -1 on connection trouble. */
static int refresh(lmdm_rules_applier_t *a)
{
    uint64_t now = lmdm_now_ns();
    if (now < a->next_refresh_ns) return 0;
    int every = a->compliance_interval_s < 60 ? a->compliance_interval_s : 60;
    a->next_refresh_ns = now + (uint64_t)every * 1000000000u;
    char age[24];
    snprintf(age, sizeof age, "%d", a->compliance_interval_s);
    const char *v[] = {age, "500"};
    PGresult *r = lmdm_bgdb_expect_prepared(&a->db, "security_refresh", "ra_refresh",
                                            "SELECT security_refresh($1::integer, $2::integer)", 2, v, PGRES_TUPLES_OK);
    if (!r) return -1;
    int n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (n > 0) lmdm_info("rules: asked %d device(s) again whether they comply", n);
    return 0;
}

/* Work through dirty devices; 1 if there may be more, 0 if none, -1 on
 * connection trouble. */
static int turn(void *arg)
{
    lmdm_rules_applier_t *a = arg;
    static const char pick[] =
        "SELECT id, coalesce(info ->> 'ProductName', info ->> 'Model', '') ~* '^(mac|imac)', rules_dirty, "
        "security_dirty, info ->> 'OSVersion', rules_gen FROM devices WHERE rules_dirty OR security_dirty "
        "ORDER BY id LIMIT 200";
    PGresult *r = lmdm_bgdb_expect_prepared(&a->db, "dirty devices", "ra_pick", pick, 0, NULL, PGRES_TUPLES_OK);
    if (!r) return -1;
    int n = PQntuples(r), rc = n == BATCH;
    for (int i = 0; i < n && !stopping(a); i++) {
        int64_t dev = atoll(PQgetvalue(r, i, 0));
        int macos = strcmp(PQgetvalue(r, i, 1), "t") == 0;
        int ddm = lmdm_rules_declaration_capable(macos, PQgetvalue(r, i, 4));
        if (strcmp(PQgetvalue(r, i, 2), "t") == 0 && apply_device(a, PQgetvalue(r, i, 5), dev, macos, ddm) != 0)
            rc = -1;
        if (rc >= 0 && strcmp(PQgetvalue(r, i, 3), "t") == 0 && evaluate_device(a, dev, macos, ddm) != 0) rc = -1;
        if (rc < 0) break;
    }
    PQclear(r);
    if (rc == 0) rc = refresh(a);
    return rc;
}

static void on_lead(void *arg)
{
    (void)arg;
    lmdm_info("rules: applying device-wide rules");
}

static void *run(void *arg)
{
    lmdm_rules_applier_t *a = arg;
    lmdm_bgloop_t loop = {.db = &a->db, .lock_key = LMDM_RULES_LOCK_KEY, .channel = "lmdm_rules",
                          .role = "applies device-wide rules", .poll_ms = POLL_MS, .turn = turn, .on_lead = on_lead,
                          .ctx = a};
    lmdm_bgloop_run(&loop);
    return NULL;
}

lmdm_rules_applier_t *lmdm_rules_applier_start(const char *conninfo, int compliance_interval_s, char *err,
                                               size_t errlen)
{
    lmdm_rules_applier_t *a = lmdm_xcalloc(1, sizeof *a);
    atomic_init(&a->stop, 0);
    a->conninfo = lmdm_xstrdup(conninfo ? conninfo : "");
    a->compliance_interval_s = compliance_interval_s > 0 ? compliance_interval_s : 24 * 3600;
    a->db = (lmdm_bgdb_t){.conninfo = a->conninfo, .who = "rules", .stop = &a->stop};
    int rv = pthread_create(&a->thread, NULL, run, a);
    if (rv != 0) {
        snprintf(err, errlen, "rules: cannot start the thread: %s", strerror(rv));
        free(a->conninfo);
        free(a);
        return NULL;
    }
    return a;
}

void lmdm_rules_applier_stop(lmdm_rules_applier_t *a)
{
    if (!a) return;
    atomic_store(&a->stop, 1);
    pthread_join(a->thread, NULL);
    free(a->conninfo);
    free(a);
}
