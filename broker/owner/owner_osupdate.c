/* The owner page's OS-update section and its form (issue 7, item 5;
 * docs/osupdate.md): the pending update, its deadline and who requires it
 * ("St. Mary's requires 17.4 by 2027-03-12"), when it installs, and the
 * owner's choices: an install time before the deadline, a deferral while
 * any remain, the device's ring among those every organization allows, and
 * the time zone install times are read in. The rules of a choice are
 * policy/'s (lmdm_osu_schedule, lmdm_osu_defer); the planner
 * (broker/osupdate/osupdate_apply.c) turns a stored choice into the plan. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/osupdate.h"
#include "lmdm/osupdate_apply.h"
#include "lmdm/server.h"
#include "lmdm/tz.h"
#include "lmdm/tzfile.h"

#include "owner_ctx.h"

#define CSRF_WHAT "osupdate"

static const lmdm_db_stmt_t st_plan = {
    "owner_osu_plan",
    "SELECT o.plan::text, o.plan_hash, coalesce(o.timezone, $2) FROM device_osupdate o WHERE o.device_id = $1::bigint",
    2};
static const lmdm_db_stmt_t st_set = {
    "owner_osu_set", "SELECT owner_osupdate_set($1::bigint, $2, $3, $4::bigint, $5::integer)", 5};
static const lmdm_db_stmt_t st_ring = {"owner_osu_ring", "SELECT owner_osupdate_ring($1::bigint, $2)", 2};
static const lmdm_db_stmt_t st_zone = {"owner_osu_zone", "SELECT owner_osupdate_timezone($1::bigint, $2)", 2};

static const char *jstr(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "";
}

/* "2027-03-12" → "12 March 2027" (anything else as it is). */
static void pretty_day(lmdm_buf_t *b, const char *day)
{
    static const char *const months[] = {"January", "February", "March",     "April",   "May",      "June",
                                         "July",    "August",   "September", "October", "November", "December"};
    char ten[11];
    int64_t days;
    int y, m, d;
    snprintf(ten, sizeof ten, "%s", day);
    if (lmdm_date_parse(ten, &days) != 0) {
        lmdm_html_escape(b, day);
        return;
    }
    lmdm_civil_from_days(days, &y, &m, &d);
    lmdm_buf_printf(b, "%d %s %04d", d, months[m - 1], y);
}

/* "2027-03-12T02:00:00" → "12 March 2027, 02:00" */
static void pretty_local(lmdm_buf_t *b, const char *local)
{
    if (strlen(local) >= 16 && local[10] == 'T') {
        pretty_day(b, local);
        lmdm_buf_puts(b, ", ");
        lmdm_html_escape_n(b, local + 11, 5);
    } else {
        lmdm_html_escape(b, local);
    }
}

/* "St. Mary's, General Hospital" from a JSON array of names. */
static void names(lmdm_buf_t *b, json_t *a)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        if (i) lmdm_buf_puts(b, i + 1 == json_array_size(a) ? " and " : ", ");
        lmdm_html_escape(b, json_string_value(v) ? json_string_value(v) : "?");
    }
}

static void why_lines(lmdm_buf_t *b, json_t *plan)
{
    lmdm_buf_puts(b, "<ul class=\"why\">\n");
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(plan, "tenants"), i, t) {
        const char *st = jstr(t, "state");
        lmdm_buf_puts(b, "<li>");
        lmdm_html_escape(b, jstr(t, "tenant"));
        if (strcmp(st, "required") == 0) {
            lmdm_buf_puts(b, " requires ");
            lmdm_html_escape(b, jstr(t, "version"));
            lmdm_buf_puts(b, " by ");
            pretty_day(b, jstr(t, "by"));
        } else if (strcmp(st, "met") == 0) {
            lmdm_buf_puts(b, ": satisfied by the version installed");
        } else if (strcmp(st, "unsupported") == 0) {
            lmdm_buf_puts(b, ": asks for a version this device cannot install");
        } else if (strcmp(st, "no_release") == 0) {
            lmdm_buf_puts(b, " requires ");
            lmdm_html_escape(b, jstr(t, "min_version"));
            lmdm_buf_puts(b, ", which is not released yet");
        } else {
            lmdm_buf_puts(b, ": no OS-update requirement");
        }
        lmdm_buf_puts(b, "</li>\n");
    }
    lmdm_buf_puts(b, "</ul>\n");
}

static void how_enforced(lmdm_buf_t *b, const char *mechanism)
{
    if (strcmp(mechanism, "reminder") == 0)
        lmdm_html_para(b, "Nobody can install it for you on this device: please install it yourself "
                          "(Settings, General, Software Update) before the deadline. The organizations see "
                          "that it cannot be enforced here.");
    else if (strcmp(mechanism, "declaration") == 0)
        lmdm_html_para(b, "The device will tell you beforehand and install it by itself at that time if you "
                          "have not installed it earlier.");
    else
        lmdm_html_para(b, "The broker will ask the device to install it at that time.");
}

/* The opening of a POST form to /owner/osupdate: CSRF token and action. */
static void form_open(lmdm_buf_t *b, owner_ctx_t *x, const char *action)
{
    char csrf[HASH_HEX + 1];
    owner_csrf_token(x, CSRF_WHAT, csrf);
    lmdm_buf_printf(b,
                    "<form method=\"post\" action=\"/owner/osupdate\"><input type=\"hidden\" name=\"csrf\" "
                    "value=\"%s\"><input type=\"hidden\" name=\"action\" value=\"%s\">",
                    csrf, action);
}

static void schedule_forms(lmdm_buf_t *b, owner_ctx_t *x, json_t *plan)
{
    const char *install = jstr(plan, "install_local"), *deadline = jstr(plan, "deadline_local");
    form_open(b, x, "schedule");
    lmdm_buf_puts(b, "<label>Install at <input type=\"datetime-local\" name=\"when\" value=\"");
    lmdm_html_escape_n(b, install, strlen(install) >= 16 ? 16 : strlen(install));
    lmdm_buf_puts(b, "\" max=\"");
    lmdm_html_escape_n(b, deadline, strlen(deadline) >= 16 ? 16 : strlen(deadline));
    lmdm_buf_puts(b, "\"></label> <button type=\"submit\" class=\"primary\">Schedule</button></form>\n");
    json_int_t left = json_integer_value(json_object_get(plan, "deferrals_left"));
    if (left != 0 && strcmp(install, deadline) != 0)
        owner_form(b, x, "/owner/osupdate", CSRF_WHAT, "defer", "", "Defer by one day");
    if (left < 0)
        lmdm_html_para(b, "You may postpone it as often as you like, up to the deadline.");
    else if (left == 0)
        lmdm_html_para(b, "No deferral left: it can be moved earlier, not later.");
    else
        lmdm_buf_printf(b, "<p>%lld deferral%s left.</p>\n", (long long)left, left == 1 ? "" : "s");
}

static void ring_form(lmdm_buf_t *b, owner_ctx_t *x, json_t *plan, const char *rings_json)
{
    json_t *rings = rings_json ? json_loads(rings_json, 0, NULL) : NULL;
    if (!json_is_array(rings) || json_array_size(rings) == 0) {
        json_decref(rings);
        return;
    }
    json_int_t limit = json_integer_value(json_object_get(plan, "latest_ring_delay"));
    const char *current = jstr(plan, "ring");
    form_open(b, x, "ring");
    lmdm_buf_puts(b, "<label>Update ring <select name=\"ring\">");
    size_t i;
    json_t *r;
    json_array_foreach(rings, i, r) {
        json_int_t delay = json_integer_value(json_object_get(r, "delay_days"));
        if (limit >= 0 && delay > limit) continue;
        const char *name = jstr(r, "name");
        lmdm_buf_puts(b, "<option value=\"");
        lmdm_html_escape(b, name);
        lmdm_buf_printf(b, "\"%s>", strcmp(name, current) == 0 ? " selected" : "");
        lmdm_html_escape(b, name);
        lmdm_buf_printf(b, " (%lld day%s after a release)</option>", (long long)delay, delay == 1 ? "" : "s");
    }
    lmdm_buf_puts(b, "</select></label> <button type=\"submit\">Change ring</button></form>\n");
    if (json_array_size(json_object_get(plan, "ring_from")) > 0) {
        lmdm_buf_puts(b, "<p class=\"muted\">Later rings are not offered: ");
        names(b, json_object_get(plan, "ring_from"));
        lmdm_buf_puts(b, " asks for updates no later than that.</p>\n");
    }
    json_decref(rings);
}

static void zone_form(lmdm_buf_t *b, owner_ctx_t *x, json_t *plan)
{
    form_open(b, x, "timezone");
    lmdm_buf_puts(b, "<label>Time zone <input type=\"text\" name=\"timezone\" value=\"");
    lmdm_html_escape(b, jstr(plan, "timezone"));
    lmdm_buf_puts(b, "\" placeholder=\"Europe/Berlin\"></label> <button type=\"submit\">Set</button></form>\n");
}

void owner_osupdate_section(lmdm_buf_t *b, owner_ctx_t *x, const char *plan_json, const char *rings)
{
    json_t *plan = plan_json ? json_loads(plan_json, 0, NULL) : NULL;
    if (!plan) return;
    const char *state = jstr(plan, "state");
    lmdm_buf_puts(b, "<h2>OS updates</h2>\n<div class=\"osupdate\">\n");
    if (strcmp(state, "unknown") == 0) {
        lmdm_html_para(b, "The device has not reported its OS version yet.");
    } else if (strcmp(state, "none") == 0 || strcmp(state, "up_to_date") == 0) {
        lmdm_buf_puts(b, "<p>No update required");
        if (jstr(plan, "current_version")[0]) {
            lmdm_buf_puts(b, ": this device runs ");
            lmdm_html_escape(b, jstr(plan, "current_version"));
        }
        lmdm_buf_puts(b, ".</p>\n");
        why_lines(b, plan);
    } else {
        lmdm_buf_puts(b, "<p class=\"pending\">Update to <strong>");
        lmdm_html_escape(b, jstr(plan, "target"));
        lmdm_buf_puts(b, "</strong> (now ");
        lmdm_html_escape(b, jstr(plan, "current_version"));
        lmdm_buf_puts(b, ")");
        if (strcmp(state, "overdue") == 0) lmdm_buf_puts(b, " <strong>overdue</strong>");
        lmdm_buf_puts(b, ". Deadline: <strong>");
        pretty_local(b, jstr(plan, "deadline_local"));
        lmdm_buf_puts(b, "</strong> (");
        lmdm_html_escape(b, jstr(plan, "timezone"));
        lmdm_buf_puts(b, "), set by ");
        names(b, json_object_get(plan, "deadline_from"));
        lmdm_buf_puts(b, ".</p>\n");
        why_lines(b, plan);
        lmdm_buf_puts(b, "<p>");
        lmdm_buf_puts(b, strcmp(state, "waiting") == 0 ? "Your ring starts on " : "Installs on ");
        pretty_local(b, jstr(plan, strcmp(state, "waiting") == 0 ? "start_local" : "install_local"));
        if (strcmp(state, "waiting") == 0) {
            lmdm_buf_puts(b, "; it installs on ");
            pretty_local(b, jstr(plan, "install_local"));
        }
        lmdm_buf_puts(b, json_is_true(json_object_get(plan, "owner_chose")) ? " (your choice)" : "");
        /* A ring that starts on the release day can begin past its first night. */
        char at[24];
        int64_t install, now = lmdm_osupdate_now(x->app->cfg);
        snprintf(at, sizeof at, "%s", jstr(plan, "install_at"));
        at[strcspn(at, "Z")] = '\0';
        if (strcmp(state, "waiting") != 0 && lmdm_datetime_parse(at, &install) == 0 && now >= install)
            lmdm_buf_puts(b, ": that time has passed, so it installs at the next opportunity");
        lmdm_buf_puts(b, ".</p>\n");
        how_enforced(b, jstr(plan, "mechanism"));
        schedule_forms(b, x, plan);
    }
    ring_form(b, x, plan, rings);
    zone_form(b, x, plan);
    lmdm_buf_puts(b, "</div>\n");
    json_decref(plan);
}

/* ---- POST /owner/osupdate ---- */

static const char *field(owner_ctx_t *x, const char *name)
{
    return lmdm_form_get(x->fields, x->nfields, name);
}

static void respond_refused(owner_ctx_t *x, int status, const char *why)
{
    lmdm_buf_t b = {0};
    lmdm_html_begin(&b, "That cannot be done");
    lmdm_html_para(&b, why);
    lmdm_html_para(&b, "Nothing was changed.");
    lmdm_buf_puts(&b, "<p><a class=\"button\" href=\"/owner\">Back to my device</a></p>\n");
    lmdm_html_end(&b);
    lmdm_html_respond(x->req, status, &b);
}

static void set_done(void *arg, int err, PGresult *res)
{
    owner_ctx_t *x = arg;
    if (err) {
        owner_respond_db_error(x, err, res, "owner_osupdate");
        return;
    }
    const char *code = PQgetvalue(res, 0, 0);
    if (strcmp(code, "changed") == 0) {
        respond_refused(x, 409, "The update plan changed in the meantime. Open the page again and choose again.");
    } else if (strcmp(code, "not_allowed") == 0) {
        respond_refused(x, 409, "An organization of this device asks for updates sooner than that ring.");
    } else if (strcmp(code, "unknown") == 0) {
        respond_refused(x, 400, "There is no such ring.");
    } else {
        /* 303 back to the page, which shows the plan once the planner ran. */
        lmdm_http_resp_header(x->req, "Location", "/owner");
        lmdm_html_respond_message(x->req, 303, "Saved", "Your choice was saved.");
    }
}

/* A plan as policy/ needs it to judge a choice, from the stored JSON. */
static int plan_of(json_t *j, lmdm_os_plan_t *p, lmdm_os_release_t *target)
{
    memset(p, 0, sizeof *p);
    memset(target, 0, sizeof *target);
    const char *s = jstr(j, "state");
    p->state = strcmp(s, "waiting") == 0 ? LMDM_OSU_WAITING : strcmp(s, "scheduled") == 0 ? LMDM_OSU_SCHEDULED
               : strcmp(s, "overdue") == 0 ? LMDM_OSU_OVERDUE : LMDM_OSU_NONE;
    if (p->state == LMDM_OSU_NONE || !jstr(j, "target")[0]) return -1;
    target->version = jstr(j, "target");
    target->build = "";
    p->target = target;
    char t[3][24];
    const char *keys[] = {"start", "deadline", "install_at"};
    int64_t *out[] = {&p->start, &p->deadline, &p->install_at};
    for (int i = 0; i < 3; i++) {
        snprintf(t[i], sizeof t[i], "%s", jstr(j, keys[i]));
        t[i][strcspn(t[i], "Z")] = '\0';
        if (lmdm_datetime_parse(t[i], out[i]) != 0) return -1;
    }
    p->deferrals_allowed = (int)json_integer_value(json_object_get(j, "deferrals_allowed"));
    p->deferrals_left = (int)json_integer_value(json_object_get(j, "deferrals_left"));
    return 0;
}

static void plan_done(void *arg, int err, PGresult *res)
{
    owner_ctx_t *x = arg;
    if (err) {
        owner_respond_db_error(x, err, res, "owner_osupdate_plan");
        return;
    }
    json_t *j = PQntuples(res) ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    lmdm_os_plan_t *p = lmdm_arena_alloc(x->req->arena, sizeof *p);
    lmdm_os_release_t target;
    if (!j || plan_of(j, p, &target) != 0) {
        json_decref(j);
        respond_refused(x, 409, "There is no update to schedule on this device now.");
        return;
    }
    int64_t now = lmdm_osupdate_now(x->app->cfg), when = 0, local;
    int deferral = 0, status = 409;
    const char *why = NULL, *w = field(x, "when");
    /* Times are the owner's wall clock, in the device's zone. */
    char zerr[160];
    lmdm_tz_t tz;
    if (lmdm_tzfile_zone(PQgetvalue(res, 0, 2), &tz, zerr, sizeof zerr) != 0) {
        why = "The device's time zone is not known to this server.";
    } else if (strcmp(x->action, "defer") == 0) {
        p->tz = &tz;
        if (lmdm_osu_defer(p, now, &when, &why) == 0) deferral = 1;
    } else if (!w || lmdm_datetime_parse(w, &local) != 0) {
        why = "Give a date and time, such as 2027-03-10 21:00.";
        status = 400;
    } else if (lmdm_osu_schedule(p, now, lmdm_tz_to_utc(&tz, local), &deferral, &why) == 0) {
        when = lmdm_tz_to_utc(&tz, local);
    }
    const char *version = lmdm_arena_strdup(x->req->arena, target.version);
    json_decref(j); /* target.version pointed into it */
    if (why && why[0] >= 'a' && why[0] <= 'z') /* policy/'s reasons are fragments */
        why = lmdm_arena_printf(x->req->arena, "%c%s.", why[0] - 'a' + 'A', why + 1);
    if (why) {
        respond_refused(x, status, why);
        return;
    }
    char when_s[24], def_s[4];
    snprintf(when_s, sizeof when_s, "%lld", (long long)when);
    snprintf(def_s, sizeof def_s, "%d", deferral);
    const char *params[] = {x->device_id_s, lmdm_arena_strdup(x->req->arena, PQgetvalue(res, 0, 1)),
                            version, when_s, def_s};
    owner_query(x, &st_set, params, set_done);
}

static void post_owner(owner_ctx_t *x)
{
    if (!x->device_id) {
        owner_respond_no_session(x);
        return;
    }
    if (!owner_csrf_ok(x, CSRF_WHAT)) {
        owner_respond_form_expired(x, "/owner");
        return;
    }
    const char *a = x->action ? x->action : "";
    if (strcmp(a, "ring") == 0) {
        const char *ring = field(x, "ring");
        const char *params[] = {x->device_id_s, ring ? ring : ""};
        owner_query(x, &st_ring, params, set_done);
    } else if (strcmp(a, "timezone") == 0) {
        const char *zone = field(x, "timezone");
        char zerr[160];
        lmdm_tz_t tz;
        if (!zone || lmdm_tzfile_zone(zone, &tz, zerr, sizeof zerr) != 0) {
            respond_refused(x, 400, "That is not a time zone this server knows (use a name such as Europe/Berlin).");
            return;
        }
        const char *params[] = {x->device_id_s, zone};
        owner_query(x, &st_zone, params, set_done);
    } else if (strcmp(a, "schedule") == 0 || strcmp(a, "defer") == 0) {
        const char *params[] = {x->device_id_s, x->app->cfg->osupdate_timezone};
        owner_query(x, &st_plan, params, plan_done);
    } else {
        respond_refused(x, 400, "Unknown action.");
    }
}

void owner_osupdate_post(lmdm_http_req_t *req)
{
    owner_ctx_t *x = owner_begin(req);
    if (!x || !owner_post_checks(x)) return;
    owner_resolve(x, post_owner);
}
