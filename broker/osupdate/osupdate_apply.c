/* The OS-update planner (issue 7, docs/osupdate.md): one background thread
 * that keeps each device's update plan current and enforced.
 *
 * Loop: (re)connect, take the advisory lock (one planner per database),
 * LISTEN lmdm_osupdate; then
 *   - reload the releases when an import happened (os_release_imports) and
 *     the rings;
 *   - for devices queued in osupdate_queue (a release import, a tenant's
 *     requirement, an enrollment, a new OS version reported, an owner's
 *     choice) and devices whose plan changes state now (next_eval: the ring
 *     starts, the install time or the deadline passes): read their inputs
 *     (osupdate_inputs, 200 devices a round trip), compute the plan
 *     (policy/osupdate.c) in the device's zone, and store it
 *     (osupdate_store) with each tenant's view and what enforcing it takes:
 *       declaration  com.apple.configuration.softwareupdate.enforcement.specific
 *                    (TargetOSVersion, TargetLocalDateTime = the install
 *                    time) served by the DeclarativeManagement check-in, and
 *                    a DeclarativeManagement command that makes the device
 *                    sync;
 *       command      ScheduleOSUpdate when the ring starts (iOS: Default,
 *                    i.e. download; macOS: InstallLater with the deferrals
 *                    left as MaxUserDeferrals) and InstallASAP at the install
 *                    time;
 *       reminder     nothing the broker may send (User Enrollment, an
 *                    unsupervised device that takes no declaration): the
 *                    owner page reminds, tenants read "not_enforceable";
 *   - every release_feed_interval, fetch release_feed_url and import it;
 * and wait for a NOTIFY, or at most a second. */
#include "lmdm/osupdate_apply.h"

#include <curl/curl.h>
#include <jansson.h>
#include <plist/plist.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmdm/bgdb.h"
#include "lmdm/buf.h"
#include "lmdm/common.h"
#include "lmdm/log.h"
#include "lmdm/osupdate.h"
#include "lmdm/osupdate_json.h"
#include "lmdm/release_feed.h"
#include "lmdm/tz.h"
#include "lmdm/tzfile.h"

#define POLL_MS 1000
#define BATCH 200
#define MAX_RINGS 64

typedef struct {
    char name[40];
    int delay;
    int is_default;
} ring_t;

struct lmdm_osupdate_planner {
    pthread_t thread;
    int started;
    atomic_int stop;
    lmdm_config_t cfg; /* the strings below are copies */
    char *conninfo;
    lmdm_bgdb_t db;
    int32_t install_time;
    /* releases, as last loaded */
    long long releases_import; /* os_release_imports max(id) they reflect; -1: not loaded */
    lmdm_os_release_t *releases;
    size_t nreleases;
    char **strings; /* storage of release strings and device lists */
    size_t nstrings;
    ring_t rings[MAX_RINGS];
    size_t nrings;
    uint64_t next_feed_ns;
};

static int stopping(lmdm_osupdate_planner_t *p) { return atomic_load(&p->stop); }

/* ---- the clock ---- */

int64_t lmdm_osupdate_now(const lmdm_config_t *cfg)
{
    if (!cfg || !cfg->osupdate_clock_file || !cfg->osupdate_clock_file[0]) return (int64_t)time(NULL);
    FILE *f = fopen(cfg->osupdate_clock_file, "r");
    char line[64] = "";
    if (!f || !fgets(line, sizeof line, f)) {
        if (f) fclose(f);
        lmdm_warn("osupdate: cannot read the clock file %s", cfg->osupdate_clock_file);
        return -1;
    }
    fclose(f);
    line[strcspn(line, "Z\r\n")] = '\0';
    int64_t t;
    if (lmdm_datetime_parse(line, &t) != 0) {
        lmdm_warn("osupdate: the clock file %s does not hold YYYY-MM-DDThh:mm:ssZ", cfg->osupdate_clock_file);
        return -1;
    }
    return t;
}

/* ---- releases, rings, zones ---- */

static char *keep(lmdm_osupdate_planner_t *p, const char *s)
{
    p->strings = lmdm_xrealloc(p->strings, (p->nstrings + 1) * sizeof *p->strings);
    return p->strings[p->nstrings++] = lmdm_xstrdup(s);
}

static void releases_clear(lmdm_osupdate_planner_t *p)
{
    for (size_t i = 0; i < p->nreleases; i++) free((void *)p->releases[i].devices);
    for (size_t i = 0; i < p->nstrings; i++) free(p->strings[i]);
    free(p->strings);
    free(p->releases);
    p->strings = NULL;
    p->releases = NULL;
    p->nstrings = p->nreleases = 0;
}

/* Device lists come as one newline-separated string (model identifiers hold
 * commas, never newlines). */
static void split_devices(lmdm_osupdate_planner_t *p, lmdm_os_release_t *r, const char *list)
{
    r->devices = NULL;
    r->ndevices = 0;
    if (!*list) return;
    char *copy = keep(p, list);
    size_t n = 1;
    for (const char *c = copy; *c; c++) n += *c == '\n';
    const char **v = lmdm_xcalloc(n, sizeof *v);
    size_t k = 0;
    for (char *tok = strtok(copy, "\n"); tok && k < n; tok = strtok(NULL, "\n")) v[k++] = tok;
    r->devices = v;
    r->ndevices = k;
}

/* The releases as of import `id`: 0, or -1 on connection trouble. */
static int load_releases(lmdm_osupdate_planner_t *p, long long id)
{
    PGresult *r = lmdm_bgdb_expect_prepared(&p->db, "releases", "osu_releases",
                                            "SELECT platform, version, build, released - date '1970-01-01', "
                                            "security, array_to_string(devices, E'\\n') FROM os_releases "
                                            "ORDER BY platform, version",
                                            0, NULL, PGRES_TUPLES_OK);
    if (!r) return -1;
    releases_clear(p);
    int n = PQntuples(r);
    p->releases = lmdm_xcalloc((size_t)n + 1, sizeof *p->releases);
    for (int i = 0; i < n; i++) {
        lmdm_os_release_t *x = &p->releases[p->nreleases++];
        x->platform = strcmp(PQgetvalue(r, i, 0), "macOS") == 0 ? LMDM_PLATFORM_MACOS : LMDM_PLATFORM_IOS;
        x->version = keep(p, PQgetvalue(r, i, 1));
        x->build = keep(p, PQgetvalue(r, i, 2));
        x->released = atoll(PQgetvalue(r, i, 3));
        x->security = strcmp(PQgetvalue(r, i, 4), "t") == 0;
        split_devices(p, x, PQgetvalue(r, i, 5));
    }
    PQclear(r);
    p->releases_import = id;
    lmdm_info("osupdate: %zu OS release(s) loaded", p->nreleases);
    return 0;
}

/* Every turn, in one round trip: the rings, and the last release import
 * (the releases are read again only after a new one). 0, or -1 on
 * connection trouble. */
static int load_state(lmdm_osupdate_planner_t *p)
{
    PGresult *r = lmdm_bgdb_expect_prepared(
        &p->db, "rings and release imports", "osu_state",
        "SELECT i.id, r.name, r.delay_days, r.is_default FROM (SELECT coalesce(max(id), 0) AS id "
        "FROM os_release_imports) i LEFT JOIN rings r ON true ORDER BY r.delay_days, r.name",
        0, NULL, PGRES_TUPLES_OK);
    if (!r) return -1;
    long long id = atoll(PQgetvalue(r, 0, 0));
    p->nrings = 0;
    for (int i = 0; i < PQntuples(r) && p->nrings < MAX_RINGS; i++) {
        if (PQgetisnull(r, i, 1)) continue; /* no rings */
        ring_t *g = &p->rings[p->nrings++];
        snprintf(g->name, sizeof g->name, "%s", PQgetvalue(r, i, 1));
        g->delay = atoi(PQgetvalue(r, i, 2));
        g->is_default = strcmp(PQgetvalue(r, i, 3), "t") == 0;
    }
    PQclear(r);
    return id == p->releases_import ? 0 : load_releases(p, id);
}

static const ring_t *ring_named(const lmdm_osupdate_planner_t *p, const char *name)
{
    for (size_t i = 0; name && i < p->nrings; i++)
        if (strcmp(p->rings[i].name, name) == 0) return &p->rings[i];
    return NULL;
}

/* The device's ring: its owner's choice when the tenants allow it, else the
 * operator's default when allowed, else the latest allowed ring (rings are
 * sorted by delay). NULL when there are no rings (delay 0). */
static const ring_t *effective_ring(const lmdm_osupdate_planner_t *p, const char *chosen, int limit)
{
    const ring_t *c = ring_named(p, chosen);
    if (c && (limit < 0 || c->delay <= limit)) return c;
    for (size_t i = 0; i < p->nrings; i++)
        if (p->rings[i].is_default && (limit < 0 || p->rings[i].delay <= limit)) return &p->rings[i];
    const ring_t *best = NULL;
    for (size_t i = 0; i < p->nrings; i++)
        if (limit < 0 || p->rings[i].delay <= limit) best = &p->rings[i];
    return best ? best : (p->nrings ? &p->rings[0] : NULL);
}

/* The zone `name` into *tz (lmdm_tzfile_zone keeps what it read): 0, or -1
 * (logged). */
static int zone(const lmdm_osupdate_planner_t *p, const char *name, lmdm_tz_t *tz)
{
    char err[160];
    if (lmdm_tzfile_zone(name, tz, err, sizeof err) == 0) return 0;
    lmdm_warn("osupdate: time zone '%s': %s; using %s", name, err, p->cfg.osupdate_timezone);
    return -1;
}

/* ---- one device ---- */

typedef struct {
    int64_t device;
    const char *platform, *enrollment_type, *os_version, *model, *decl_types, *ring, *timezone, *owner_target;
    const char *plan_hash, *enforced, *decl_token;
    const char *mark; /* the queue marking planned from, NULL: none */
    int supervised, deferrals_used;
    int64_t owner_install_at;
    int enrolled;
    size_t ntenants;
    int64_t enrollment[LMDM_OSU_MAX_TENANTS];
    const char *tenant_name[LMDM_OSU_MAX_TENANTS];
    lmdm_osu_rule_t rule[LMDM_OSU_MAX_TENANTS];
    lmdm_os_requirement_t req[LMDM_OSU_MAX_TENANTS];
} inputs_t;

/* Rows of osupdate_inputs from `row` for one device; returns the next row. */
static int collect(const PGresult *r, int row, inputs_t *in)
{
    memset(in, 0, sizeof *in);
    in->device = atoll(PQgetvalue(r, row, 0));
    in->platform = PQgetvalue(r, row, 1);
    in->enrollment_type = PQgetvalue(r, row, 2);
    in->os_version = PQgetvalue(r, row, 3);
    in->model = PQgetvalue(r, row, 4);
    in->supervised = strcmp(PQgetvalue(r, row, 5), "t") == 0;
    in->decl_types = PQgetisnull(r, row, 6) ? NULL : PQgetvalue(r, row, 6);
    in->ring = PQgetisnull(r, row, 7) ? NULL : PQgetvalue(r, row, 7);
    in->timezone = PQgetisnull(r, row, 8) ? NULL : PQgetvalue(r, row, 8);
    in->owner_install_at = PQgetisnull(r, row, 9) ? 0 : atoll(PQgetvalue(r, row, 9));
    in->owner_target = PQgetisnull(r, row, 10) ? NULL : PQgetvalue(r, row, 10);
    in->deferrals_used = atoi(PQgetvalue(r, row, 11));
    in->plan_hash = PQgetisnull(r, row, 12) ? NULL : PQgetvalue(r, row, 12);
    in->enforced = PQgetisnull(r, row, 13) ? NULL : PQgetvalue(r, row, 13);
    in->decl_token = PQgetisnull(r, row, 14) ? NULL : PQgetvalue(r, row, 14);
    in->enrolled = strcmp(PQgetvalue(r, row, 18), "enrolled") == 0;
    in->mark = PQgetisnull(r, row, 19) ? NULL : PQgetvalue(r, row, 19);
    int n = PQntuples(r);
    for (; row < n && atoll(PQgetvalue(r, row, 0)) == in->device; row++) {
        if (PQgetisnull(r, row, 15) || in->ntenants == LMDM_OSU_MAX_TENANTS) continue;
        size_t k = in->ntenants++;
        in->enrollment[k] = atoll(PQgetvalue(r, row, 15));
        in->tenant_name[k] = PQgetvalue(r, row, 16);
        lmdm_os_requirement_init(&in->rule[k].req);
        if (!PQgetisnull(r, row, 17)) {
            json_t *j = json_loads(PQgetvalue(r, row, 17), 0, NULL);
            char err[256];
            if (lmdm_osu_rule_from_json(j, &in->rule[k], err, sizeof err) != 0) {
                lmdm_warn("osupdate: a stored requirement no longer parses (%s): ignored", err);
                lmdm_os_requirement_init(&in->rule[k].req);
            }
            json_decref(j);
        }
    }
    return row;
}

/* Whether the device said which declarations it takes: 1 takes the
 * enforcement declaration, 0 does not, -1 unknown. */
static int takes_declaration(const char *decl_types)
{
    if (!decl_types) return -1;
    json_t *j = json_loads(decl_types, 0, NULL);
    if (!json_is_array(j)) {
        json_decref(j);
        return -1;
    }
    int found = 0;
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) found |= json_is_string(v) && strcmp(json_string_value(v), LMDM_OSUPDATE_DECL_TYPE) == 0;
    json_decref(j);
    return found;
}

static json_t *tenant_names(const inputs_t *in, uint64_t set)
{
    json_t *a = json_array();
    for (size_t i = 0; i < in->ntenants; i++)
        if (set & (UINT64_C(1) << i)) json_array_append_new(a, json_string(in->tenant_name[i]));
    return a;
}

static json_t *utc_iso(int64_t t)
{
    char s[24];
    lmdm_datetime_format(t, s);
    strcat(s, "Z");
    return json_string(s);
}

static json_t *day_iso(int64_t day)
{
    int y, m, d;
    char s[16];
    lmdm_civil_from_days(day, &y, &m, &d);
    snprintf(s, sizeof s, "%04d-%02d-%02d", y, m, d);
    return json_string(s);
}

/* The tenant's word for where its requirement stands. */
static const char *tenant_state(const lmdm_os_plan_t *pl, const lmdm_os_tenant_plan_t *t)
{
    switch (t->state) {
    case LMDM_OSU_T_NONE: return "none";
    case LMDM_OSU_T_MET: return "up_to_date";
    case LMDM_OSU_T_UNSUPPORTED: return "unsupported";
    case LMDM_OSU_T_NO_RELEASE: return "pending_release";
    case LMDM_OSU_T_REQUIRED: break;
    }
    if (pl->mechanism == LMDM_OSU_MECH_REMINDER) return "not_enforceable";
    return lmdm_osu_state_name(pl->state);
}

static json_t *tenant_view(const inputs_t *in, const lmdm_os_plan_t *pl, size_t i)
{
    const lmdm_os_tenant_plan_t *t = &pl->tenant[i];
    json_t *v = json_object();
    const lmdm_os_requirement_t *q = &in->rule[i].req;
    int asks = q->latest_security_days >= 0 || q->min_version;
    json_object_set_new(v, "state", json_string(!in->os_version[0] && asks ? "unknown" : tenant_state(pl, t)));
    json_object_set_new(v, "current_version", in->os_version[0] ? json_string(in->os_version) : json_null());
    if (t->state == LMDM_OSU_T_REQUIRED) {
        json_object_set_new(v, "required_version", json_string(t->target->version));
        json_object_set_new(v, "required_by", day_iso(t->deadline_day));
    }
    if (pl->target && t->state == LMDM_OSU_T_REQUIRED) {
        json_object_set_new(v, "target_version", json_string(pl->target->version));
        json_object_set_new(v, "deadline", utc_iso(pl->deadline));
        json_object_set_new(v, "install_at", utc_iso(pl->install_at));
        json_object_set_new(v, "enforcement", json_string(lmdm_osu_mechanism_name(pl->mechanism)));
        json_object_set_new(v, "enforceable", json_boolean(pl->mechanism != LMDM_OSU_MECH_REMINDER));
    }
    return v;
}

static json_t *plan_json(const inputs_t *in, const lmdm_os_plan_t *pl, const ring_t *ring, const char *zone_name,
                         int limit)
{
    json_t *j = json_object();
    json_object_set_new(j, "state", json_string(lmdm_osu_state_name(pl->state)));
    json_object_set_new(j, "current_version", json_string(in->os_version));
    json_object_set_new(j, "timezone", json_string(zone_name));
    json_object_set_new(j, "ring", ring ? json_string(ring->name) : json_null());
    json_object_set_new(j, "ring_delay_days", json_integer(ring ? ring->delay : 0));
    json_object_set_new(j, "latest_ring_delay", json_integer(limit));
    json_object_set_new(j, "mechanism", json_string(lmdm_osu_mechanism_name(pl->mechanism)));
    if (pl->target) {
        json_object_set_new(j, "target", json_string(pl->target->version));
        json_object_set_new(j, "target_build", json_string(pl->target->build));
        json_object_set_new(j, "released", day_iso(pl->target->released));
        json_object_set_new(j, "start", utc_iso(pl->start));
        json_object_set_new(j, "deadline", utc_iso(pl->deadline));
        json_object_set_new(j, "install_at", utc_iso(pl->install_at));
        json_object_set_new(j, "start_local", json_string(pl->start_local));
        json_object_set_new(j, "deadline_local", json_string(pl->deadline_local));
        json_object_set_new(j, "install_local", json_string(pl->install_local));
        json_object_set_new(j, "owner_chose", json_boolean(pl->owner_chose));
        json_object_set_new(j, "deferrals_allowed", json_integer(pl->deferrals_allowed));
        json_object_set_new(j, "deferrals_left", json_integer(pl->deferrals_left));
        json_object_set_new(j, "target_from", tenant_names(in, pl->target_from));
        json_object_set_new(j, "deadline_from", tenant_names(in, pl->deadline_from));
        json_object_set_new(j, "deferrals_from", tenant_names(in, pl->deferrals_from));
    }
    json_object_set_new(j, "ring_from", tenant_names(in, pl->ring_from));
    json_t *ts = json_array();
    for (size_t i = 0; i < in->ntenants; i++) {
        const lmdm_os_tenant_plan_t *t = &pl->tenant[i];
        json_t *x = json_pack("{s:s,s:s}", "tenant", in->tenant_name[i], "state", lmdm_osu_tenant_state_name(t->state));
        if (t->state == LMDM_OSU_T_REQUIRED) {
            json_object_set_new(x, "version", json_string(t->target->version));
            json_object_set_new(x, "by", day_iso(t->deadline_day));
        }
        if (in->rule[i].req.min_version && t->state != LMDM_OSU_T_REQUIRED)
            json_object_set_new(x, "min_version", json_string(in->rule[i].req.min_version));
        json_array_append_new(ts, x);
    }
    json_object_set_new(j, "tenants", ts);
    return j;
}

static void hash_hex(const char *s, char out[33])
{
    unsigned char h[16];
    crypto_generichash(h, sizeof h, (const unsigned char *)s, strlen(s), NULL, 0);
    sodium_bin2hex(out, 33, h, sizeof h);
}

static char *to_xml(plist_t root)
{
    char *xml = NULL;
    uint32_t n = 0;
    plist_to_xml(root, &xml, &n);
    char *copy = xml ? strndup(xml, n) : NULL;
    plist_to_xml_free(xml);
    return copy;
}

static char *command_plist(const char *uuid, const char *type, plist_t cmd)
{
    plist_t root = plist_new_dict();
    plist_dict_set_item(cmd, "RequestType", plist_new_string(type));
    plist_dict_set_item(root, "CommandUUID", plist_new_string(uuid));
    plist_dict_set_item(root, "Command", cmd);
    char *x = to_xml(root);
    plist_free(root);
    return x;
}

/* What enforcing the plan takes now. */
typedef struct {
    char key[160];   /* "" nothing enforced */
    char *decl;      /* the declaration (NULL: none) */
    char token[40];
    const char *cmd_type;
    char *cmd;
    char uuid[37];
} enforce_t;

static void enforce_clear(enforce_t *e)
{
    free(e->decl);
    free(e->cmd);
}

static int enforcement(const inputs_t *in, const lmdm_os_plan_t *pl, int64_t now, enforce_t *e)
{
    memset(e, 0, sizeof *e);
    if (lmdm_uuid_v4(e->uuid) != 0) return -1;
    for (char *c = e->uuid; *c; c++)
        if (*c >= 'a' && *c <= 'f') *c = (char)(*c - 'a' + 'A');
    int active = pl->target && (pl->state == LMDM_OSU_SCHEDULED || pl->state == LMDM_OSU_OVERDUE);
    if (active && pl->mechanism == LMDM_OSU_MECH_DECLARATION) {
        json_t *payload = json_pack("{s:s,s:s}", "TargetOSVersion", pl->target->version, "TargetLocalDateTime",
                                    pl->install_local);
        if (pl->target->build[0]) json_object_set_new(payload, "TargetBuildVersion", json_string(pl->target->build));
        char *ptext = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
        char h[33];
        hash_hex(ptext ? ptext : "", h);
        free(ptext);
        snprintf(e->token, sizeof e->token, "osu-%.16s", h);
        json_t *d = json_pack("{s:s,s:s,s:s,s:o}", "Type", LMDM_OSUPDATE_DECL_TYPE, "Identifier",
                              LMDM_OSUPDATE_DECL_ID, "ServerToken", e->token, "Payload", payload);
        e->decl = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(d);
        snprintf(e->key, sizeof e->key, "declaration %s at %s", pl->target->version, pl->install_local);
        e->cmd_type = "DeclarativeManagement";
        e->cmd = command_plist(e->uuid, e->cmd_type, plist_new_dict());
    } else if (active && pl->mechanism == LMDM_OSU_MECH_COMMAND) {
        int install = now >= pl->install_at;
        int macos = strcmp(in->platform, "macOS") == 0;
        const char *action = install ? "InstallASAP" : macos ? "InstallLater" : "Default";
        plist_t item = plist_new_dict();
        plist_dict_set_item(item, "ProductVersion", plist_new_string(pl->target->version));
        plist_dict_set_item(item, "InstallAction", plist_new_string(action));
        if (macos && !install && pl->deferrals_left >= 0)
            plist_dict_set_item(item, "MaxUserDeferrals", plist_new_uint((uint64_t)pl->deferrals_left));
        plist_t updates = plist_new_array();
        plist_array_append_item(updates, item);
        plist_t cmd = plist_new_dict();
        plist_dict_set_item(cmd, "Updates", updates);
        e->cmd_type = "ScheduleOSUpdate";
        e->cmd = command_plist(e->uuid, e->cmd_type, cmd);
        snprintf(e->key, sizeof e->key, "command %s %s%s%s", pl->target->version, action, install ? " at " : "",
                 install ? pl->install_local : "");
    } else if (active) {
        snprintf(e->key, sizeof e->key, "reminder %s", pl->target->version);
    } else if (in->decl_token) {
        /* Nothing to enforce any more: withdraw the declaration. */
        e->cmd_type = "DeclarativeManagement";
        e->cmd = command_plist(e->uuid, e->cmd_type, plist_new_dict());
    }
    return 0;
}

/* The next instant after `now` at which the plan's state changes. */
static int64_t next_eval(const lmdm_os_plan_t *pl, int64_t now)
{
    if (!pl->target) return 0;
    int64_t t[] = {pl->start, pl->install_at, pl->deadline}, best = 0;
    for (size_t i = 0; i < 3; i++)
        if (t[i] > now && (best == 0 || t[i] < best)) best = t[i];
    return best;
}

static int plan_device(lmdm_osupdate_planner_t *p, inputs_t *in, int64_t now)
{
    const char *zone_name = in->timezone ? in->timezone : p->cfg.osupdate_timezone;
    lmdm_tz_t zone_tz = {0}; /* UTC when neither zone can be read */
    const lmdm_tz_t *tz = &zone_tz;
    if (zone(p, zone_name, &zone_tz) != 0) {
        zone_name = p->cfg.osupdate_timezone;
        if (zone(p, zone_name, &zone_tz) != 0) zone_name = "UTC";
    }
    /* Rings are resolved by name: a tenant's latest_ring → its delay. */
    for (size_t i = 0; i < in->ntenants; i++) {
        in->req[i] = in->rule[i].req;
        const ring_t *lr = ring_named(p, in->rule[i].latest_ring);
        in->req[i].latest_ring_delay = lr ? lr->delay : -1;
    }
    int limit = lmdm_osu_ring_limit(in->req, in->ntenants);
    const ring_t *ring = effective_ring(p, in->ring, limit);
    lmdm_os_device_t dev = {
        .platform = strcmp(in->platform, "macOS") == 0 ? LMDM_PLATFORM_MACOS : LMDM_PLATFORM_IOS,
        .os_version = in->os_version,
        .model = in->model,
        .user_enrollment = strcmp(in->enrollment_type, "user") == 0,
        .supervised = in->supervised,
        .ring_delay = ring ? ring->delay : 0,
        .tz = tz,
        .install_time = p->install_time,
        .owner_install_at = in->owner_install_at,
        .deferrals_used = in->deferrals_used,
    };
    lmdm_os_plan_t *pl = lmdm_xcalloc(1, sizeof *pl);
    lmdm_os_plan(&dev, in->req, in->ntenants, p->releases, p->nreleases, now, pl);
    /* The owner's choice and deferrals belong to one target. */
    if (pl->target && (!in->owner_target || strcmp(in->owner_target, pl->target->version) != 0) &&
        (dev.owner_install_at || dev.deferrals_used)) {
        dev.owner_install_at = 0;
        dev.deferrals_used = 0;
        lmdm_os_plan(&dev, in->req, in->ntenants, p->releases, p->nreleases, now, pl);
    }
    /* What the device said it takes beats the version table. */
    int takes = takes_declaration(in->decl_types);
    if (takes == 1 && !dev.user_enrollment) pl->mechanism = LMDM_OSU_MECH_DECLARATION;
    if (takes == 0 && pl->mechanism == LMDM_OSU_MECH_DECLARATION)
        pl->mechanism = in->supervised ? LMDM_OSU_MECH_COMMAND : LMDM_OSU_MECH_REMINDER;

    json_t *pj = plan_json(in, pl, ring, zone_name, limit);
    char *plan = json_dumps(pj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(pj);
    json_t *vj = json_object();
    for (size_t i = 0; i < in->ntenants; i++) {
        char k[24];
        snprintf(k, sizeof k, "%lld", (long long)in->enrollment[i]);
        json_object_set_new(vj, k, tenant_view(in, pl, i));
    }
    char *views = json_dumps(vj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(vj);
    enforce_t e;
    int rc = -1;
    if (!plan || !views || enforcement(in, pl, now, &e) != 0) goto out;
    char hash[33], dev_s[24], next_s[24];
    hash_hex(plan, hash);
    snprintf(dev_s, sizeof dev_s, "%lld", (long long)in->device);
    int64_t nx = next_eval(pl, now);
    snprintf(next_s, sizeof next_s, "%lld", (long long)nx);
    const char *v[] = {dev_s,
                       in->mark,
                       plan,
                       hash,
                       lmdm_osu_state_name(pl->state),
                       nx ? next_s : NULL,
                       views,
                       pl->target ? pl->target->version : NULL,
                       e.key[0] ? e.key : NULL,
                       e.decl,
                       e.decl ? e.token : NULL,
                       e.cmd ? e.uuid : NULL,
                       e.cmd_type,
                       e.cmd};
    PGresult *r = lmdm_bgdb_expect_prepared(
        &p->db, "store the plan", "osu_store",
        "SELECT osupdate_store($1, $2::bigint, $3::jsonb, $4, $5, $6::bigint, $7::jsonb, $8, $9, $10, $11, "
        "$12::uuid, $13, $14)",
        14, v, PGRES_TUPLES_OK);
    enforce_clear(&e);
    if (!r) goto out;
    const char *res = PQgetvalue(r, 0, 0);
    if (strcmp(res, "enforced") == 0)
        lmdm_info("osupdate: device %lld: %s", (long long)in->device, e.key[0] ? e.key : "enforcement withdrawn");
    PQclear(r);
    rc = 0;
out:
    free(plan);
    free(views);
    free(pl);
    return rc;
}

/* ---- the release feed ---- */

/* One spelling per version, as devices report it: "17.4.0" is stored as
 * "17.4" (a trailing ".0" beyond major.minor is dropped), so two feeds that
 * spell it differently update one release. */
static void canonical_version(const char *v, char *out, size_t len)
{
    snprintf(out, len, "%s", v);
    size_t n = strlen(out), dots = 0;
    for (size_t i = 0; i < n; i++) dots += out[i] == '.';
    while (dots > 1 && n >= 2 && out[n - 1] == '0' && out[n - 2] == '.') {
        out[n -= 2] = '\0';
        dots--;
    }
}

char *lmdm_osupdate_feed_json(const lmdm_feed_t *feed)
{
    json_t *a = json_array();
    for (size_t i = 0; i < feed->n; i++) {
        const lmdm_os_release_t *r = &feed->releases[i];
        char version[64];
        canonical_version(r->version, version, sizeof version);
        json_t *devs = json_array();
        for (size_t k = 0; k < r->ndevices; k++) json_array_append_new(devs, json_string(r->devices[k]));
        json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:o,s:b,s:o}", "platform",
                                           lmdm_platform_feed_name(r->platform), "version", version, "build",
                                           r->build ? r->build : "", "released", day_iso(r->released), "security",
                                           r->security, "devices", devs));
    }
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s;
}

static size_t feed_write(char *data, size_t size, size_t n, void *arg)
{
    lmdm_buf_t *b = arg;
    if (b->len + size * n > LMDM_FEED_MAX_BYTES) return 0;
    lmdm_buf_append(b, data, size * n);
    return size * n;
}

/* Fetch and import the feed; the connection is fine unless -1. */
static int poll_feed(lmdm_osupdate_planner_t *p)
{
    uint64_t now = lmdm_now_ns();
    if (!p->cfg.release_feed_url[0] || now < p->next_feed_ns) return 0;
    p->next_feed_ns = now + (uint64_t)p->cfg.release_feed_interval_s * 1000000000u;
    lmdm_buf_t body = {0};
    CURL *c = curl_easy_init();
    if (!c) return 0;
    curl_easy_setopt(c, CURLOPT_URL, p->cfg.release_feed_url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, feed_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
    /* A feed is fetched over HTTP(S), or read from a local mirror (file://). */
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "lmdm/" LMDM_VERSION);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    int rc = 0;
    int is_file = strncmp(p->cfg.release_feed_url, "file:", 5) == 0;
    if (cc != CURLE_OK || (!is_file && status != 200)) {
        lmdm_warn("osupdate: release feed %s: %s (the releases already imported stay)", p->cfg.release_feed_url,
                  cc != CURLE_OK ? curl_easy_strerror(cc) : "not 200 OK");
        goto out;
    }
    lmdm_feed_t feed;
    char err[256];
    if (lmdm_feed_parse((const char *)body.data, body.len, &feed, err, sizeof err) != 0) {
        lmdm_warn("osupdate: release feed %s rejected: %s (the releases already imported stay)",
                  p->cfg.release_feed_url, err);
        goto out;
    }
    char *json = lmdm_osupdate_feed_json(&feed);
    const char *v[] = {p->cfg.release_feed_url, feed.format, json};
    PGresult *r = lmdm_bgdb_expect(&p->db, "import the release feed",
                                   "SELECT releases, added, changed FROM os_releases_import($1, $2, $3::jsonb)", 3, v,
                                   PGRES_TUPLES_OK);
    if (r) {
        lmdm_info("osupdate: release feed %s (%s): %s releases, %s new, %s changed", p->cfg.release_feed_url,
                  feed.format, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
        PQclear(r);
    } else {
        rc = -1;
    }
    free(json);
    lmdm_feed_free(&feed);
out:
    lmdm_buf_free(&body);
    return rc;
}

/* ---- the loop ---- */

static int turn(void *arg)
{
    lmdm_osupdate_planner_t *p = arg;
    if (poll_feed(p) < 0 || load_state(p) < 0) return -1;
    int64_t now = lmdm_osupdate_now(&p->cfg);
    if (now < 0) return 0;
    char now_s[24];
    snprintf(now_s, sizeof now_s, "%lld", (long long)now);
    const char *pv[] = {now_s};
    PGresult *r = lmdm_bgdb_expect_prepared(
        &p->db, "devices to plan", "osu_pick",
        "SELECT coalesce(array_agg(id)::text, '{}'), count(*) FROM ("
        "(SELECT device_id AS id FROM osupdate_queue ORDER BY device_id LIMIT 200) "
        "UNION (SELECT device_id FROM device_osupdate WHERE next_eval <= to_timestamp($1::bigint) "
        "ORDER BY next_eval LIMIT 200) ORDER BY 1 LIMIT 200) x",
        1, pv, PGRES_TUPLES_OK);
    if (!r) return -1;
    int n = atoi(PQgetvalue(r, 0, 1));
    const char *iv[] = {PQgetvalue(r, 0, 0)};
    PGresult *in_r = n ? lmdm_bgdb_expect_prepared(&p->db, "plan inputs", "osu_inputs",
                                                   "SELECT * FROM osupdate_inputs($1::bigint[])", 1, iv,
                                                   PGRES_TUPLES_OK)
                       : NULL;
    PQclear(r);
    if (n && !in_r) return -1;
    int rc = n == BATCH;
    inputs_t *in = lmdm_xcalloc(1, sizeof *in);
    for (int row = 0; in_r && row < PQntuples(in_r) && !stopping(p);) {
        row = collect(in_r, row, in);
        if (plan_device(p, in, now) != 0) {
            rc = -1;
            break;
        }
    }
    free(in);
    PQclear(in_r);
    return rc;
}

static void on_lead(void *arg)
{
    lmdm_osupdate_planner_t *p = arg;
    p->releases_import = -1;
    p->next_feed_ns = 0;
    lmdm_info("osupdate: planning OS updates");
}

static void *run(void *arg)
{
    lmdm_osupdate_planner_t *p = arg;
    lmdm_bgloop_t loop = {.db = &p->db, .lock_key = LMDM_OSUPDATE_LOCK_KEY, .channel = "lmdm_osupdate",
                          .role = "plans OS updates", .poll_ms = POLL_MS, .gather_ms = 20, .turn = turn,
                          .on_lead = on_lead, .ctx = p};
    lmdm_bgloop_run(&loop);
    return NULL;
}

lmdm_osupdate_planner_t *lmdm_osupdate_planner_start(const lmdm_config_t *cfg, char *err, size_t errlen)
{
    lmdm_osupdate_planner_t *p = lmdm_xcalloc(1, sizeof *p);
    atomic_init(&p->stop, 0);
    p->conninfo = lmdm_xstrdup(cfg->database_url ? cfg->database_url : "");
    p->cfg.osupdate_timezone = lmdm_xstrdup(cfg->osupdate_timezone);
    p->cfg.osupdate_install_time = lmdm_xstrdup(cfg->osupdate_install_time);
    p->cfg.release_feed_url = lmdm_xstrdup(cfg->release_feed_url);
    p->cfg.osupdate_clock_file = lmdm_xstrdup(cfg->osupdate_clock_file);
    p->cfg.release_feed_interval_s = cfg->release_feed_interval_s;
    const char *t = cfg->osupdate_install_time;
    p->install_time = ((t[0] - '0') * 10 + (t[1] - '0')) * 3600 + ((t[3] - '0') * 10 + (t[4] - '0')) * 60;
    p->releases_import = -1;
    p->db = (lmdm_bgdb_t){.conninfo = p->conninfo, .who = "osupdate", .stop = &p->stop};
    int rv = pthread_create(&p->thread, NULL, run, p);
    p->started = rv == 0;
    if (rv != 0) {
        snprintf(err, errlen, "osupdate: cannot start the thread: %s", strerror(rv));
        lmdm_osupdate_planner_stop(p);
        return NULL;
    }
    return p;
}

void lmdm_osupdate_planner_stop(lmdm_osupdate_planner_t *p)
{
    if (!p) return;
    atomic_store(&p->stop, 1);
    if (p->started) pthread_join(p->thread, NULL);
    lmdm_bgdb_drop(&p->db);
    releases_clear(p);
    free(p->conninfo);
    free(p->cfg.osupdate_timezone);
    free(p->cfg.osupdate_install_time);
    free(p->cfg.release_feed_url);
    free(p->cfg.osupdate_clock_file);
    free(p);
}
