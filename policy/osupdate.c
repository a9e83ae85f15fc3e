/* OS update plans (include/lmdm/osupdate.h): versions, enforcement
 * mechanisms, each tenant's requirement against the release feed, and the
 * one plan of a device. Pure arithmetic: the releases, the clock and the
 * zone are arguments.
 *
 * Choices the header leaves open, made here:
 *   - A tenant with both latest_security_days and min_version is REQUIRED
 *     when either part is (the higher target, the earlier deadline);
 *     otherwise the first of UNSUPPORTED, NO_RELEASE, MET that applies.
 *   - deferrals_allowed is the fewest over every tenant that sets
 *     max_deferrals, like the ring limit (a device-wide setting, as the
 *     device follows one plan), not only over the requiring tenants.
 *   - The ring delay used for `start` is the device's, capped at the ring
 *     limit: a tenant's "no later than broad" holds even before the owner
 *     has moved the device to an allowed ring.
 *   - With an unknown version ("") nothing is evaluated: every tenant row
 *     stays NONE and the plan is UNKNOWN (or NONE when no tenant asks for a
 *     version). */
#include "lmdm/osupdate.h"

#include <stddef.h>
#include <string.h>

#define DAY 86400

/* --------------------------------------------------------------- versions */

/* The next component of *s as a number (0 when it is not all digits;
 * saturated), moving *s past it and its dot. */
static long next_component(const char **s)
{
    const char *p = *s;
    long v = 0;
    int numeric = *p != '.' && *p != '\0';
    for (; *p && *p != '.'; p++) {
        if (*p < '0' || *p > '9')
            numeric = 0;
        else if (v < 100000000L)
            v = v * 10 + (*p - '0');
    }
    *s = *p == '.' ? p + 1 : p;
    return numeric ? v : 0;
}

int lmdm_osversion_cmp(const char *a, const char *b)
{
    if (!a) a = "";
    if (!b) b = "";
    while (*a || *b) {
        long x = next_component(&a), y = next_component(&b);
        if (x != y) return x < y ? -1 : 1;
    }
    return 0;
}

int lmdm_osversion_major(const char *v)
{
    if (!v || *v < '0' || *v > '9') return -1;
    const char *p = v;
    for (; *p && *p != '.'; p++)
        if (*p < '0' || *p > '9') return -1;
    return (int)next_component(&v);
}

/* ----------------------------------------------------- releases, devices */

int lmdm_os_release_supports(const lmdm_os_release_t *r, const char *model)
{
    if (!model || !*model || r->ndevices == 0) return 1;
    for (size_t i = 0; i < r->ndevices; i++)
        if (r->devices[i] && strcmp(r->devices[i], model) == 0) return 1;
    return 0;
}

void lmdm_os_requirement_init(lmdm_os_requirement_t *r)
{
    memset(r, 0, sizeof(*r));
    r->latest_security_days = -1;
    r->min_version = NULL;
    r->max_deferrals = -1;
    r->latest_ring_delay = -1;
}

lmdm_osu_mechanism_t lmdm_osu_mechanism(lmdm_platform_t platform, const char *os_version, int user_enrollment,
                                        int supervised)
{
    const char *v = os_version && *os_version ? os_version : "0";
    if (user_enrollment) return LMDM_OSU_MECH_REMINDER;
    if (platform == LMDM_PLATFORM_IOS && lmdm_osversion_cmp(v, "17.0") >= 0) return LMDM_OSU_MECH_DECLARATION;
    if (platform == LMDM_PLATFORM_MACOS && supervised && lmdm_osversion_cmp(v, "14.0") >= 0)
        return LMDM_OSU_MECH_DECLARATION;
    return supervised ? LMDM_OSU_MECH_COMMAND : LMDM_OSU_MECH_REMINDER;
}

const char *lmdm_osu_mechanism_name(lmdm_osu_mechanism_t m)
{
    switch (m) {
    case LMDM_OSU_MECH_DECLARATION: return "declaration";
    case LMDM_OSU_MECH_COMMAND: return "command";
    case LMDM_OSU_MECH_REMINDER: return "reminder";
    }
    return "reminder";
}

const char *lmdm_osu_tenant_state_name(lmdm_osu_tenant_state_t s)
{
    switch (s) {
    case LMDM_OSU_T_NONE: return "none";
    case LMDM_OSU_T_MET: return "met";
    case LMDM_OSU_T_REQUIRED: return "required";
    case LMDM_OSU_T_UNSUPPORTED: return "unsupported";
    case LMDM_OSU_T_NO_RELEASE: return "no_release";
    }
    return "none";
}

const char *lmdm_osu_state_name(lmdm_osu_state_t s)
{
    switch (s) {
    case LMDM_OSU_NONE: return "none";
    case LMDM_OSU_UP_TO_DATE: return "up_to_date";
    case LMDM_OSU_WAITING: return "waiting";
    case LMDM_OSU_SCHEDULED: return "scheduled";
    case LMDM_OSU_OVERDUE: return "overdue";
    case LMDM_OSU_UNKNOWN: return "unknown";
    }
    return "none";
}

int lmdm_osu_ring_limit(const lmdm_os_requirement_t *req, size_t nreq)
{
    int limit = -1;
    for (size_t i = 0; i < nreq; i++)
        if (req[i].latest_ring_delay >= 0 && (limit < 0 || req[i].latest_ring_delay < limit))
            limit = req[i].latest_ring_delay;
    return limit;
}

/* ------------------------------------------------------ one tenant's part */

/* What a tenant's evaluation needs of the device and the feed. */
#define SUPPORT_CACHE 512 /* releases whose support of the model is remembered during one plan */

typedef struct {
    const lmdm_os_device_t *dev;
    const lmdm_os_release_t *rel;
    size_t nrel;
    int64_t today;      /* local day number in the device's zone */
    int major;          /* of the current version */
    signed char *known; /* per release: -1 not looked up yet, else supports() */
} ctx_t;

/* Whether the device's model can install release i. Tenants ask about the
 * same releases, and a model not in a list costs a scan of it, so answers
 * for the first SUPPORT_CACHE releases are kept for the plan's duration. */
static int supported(const ctx_t *c, size_t i)
{
    if (i >= SUPPORT_CACHE) return lmdm_os_release_supports(&c->rel[i], c->dev->model);
    if (c->known[i] < 0) c->known[i] = (signed char)lmdm_os_release_supports(&c->rel[i], c->dev->model);
    return c->known[i];
}

static int counts(const ctx_t *c, const lmdm_os_release_t *r)
{
    return r->platform == c->dev->platform && r->released <= c->today && r->version;
}

/* Newer is a higher version; between equal versions, the later release. */
static int newer(const lmdm_os_release_t *a, const lmdm_os_release_t *b)
{
    if (!b) return 1;
    int k = lmdm_osversion_cmp(a->version, b->version);
    return k > 0 || (k == 0 && a->released > b->released);
}

/* latest_security_days: the newest installable security release newer than
 * the current version, due `days` after the oldest such release. */
static lmdm_osu_tenant_state_t security_part(const ctx_t *c, const lmdm_os_requirement_t *q,
                                             const lmdm_os_release_t **target, int64_t *deadline)
{
    const lmdm_os_release_t *best = NULL;
    int64_t oldest = 0;
    for (size_t i = 0; i < c->nrel; i++) {
        const lmdm_os_release_t *r = &c->rel[i];
        if (!r->security || !counts(c, r) || lmdm_osversion_cmp(r->version, c->dev->os_version) <= 0)
            continue;
        if (!q->allow_major && lmdm_osversion_major(r->version) != c->major) continue;
        /* A release for other models only (Apple ships device-specific
         * ones) is not one this device is missing. */
        if (!supported(c, i)) continue;
        if (!best || r->released < oldest) oldest = r->released;
        if (newer(r, best)) best = r;
    }
    if (!best) return LMDM_OSU_T_MET;
    *target = best;
    *deadline = oldest + q->latest_security_days;
    return LMDM_OSU_T_REQUIRED;
}

/* min_version X by D: the newest installable release of X's major line at
 * least X, else the lowest installable release at least X of any line. */
static lmdm_osu_tenant_state_t min_version_part(const ctx_t *c, const lmdm_os_requirement_t *q,
                                                const lmdm_os_release_t **target, int64_t *deadline)
{
    if (lmdm_osversion_cmp(c->dev->os_version, q->min_version) >= 0) return LMDM_OSU_T_MET;
    int xmajor = lmdm_osversion_major(q->min_version), any = 0;
    const lmdm_os_release_t *line = NULL, *lowest = NULL;
    for (size_t i = 0; i < c->nrel; i++) {
        const lmdm_os_release_t *r = &c->rel[i];
        if (!counts(c, r) || lmdm_osversion_cmp(r->version, q->min_version) < 0) continue;
        any = 1;
        if (!supported(c, i)) continue;
        if (lmdm_osversion_major(r->version) == xmajor && newer(r, line)) line = r;
        if (!lowest || lmdm_osversion_cmp(r->version, lowest->version) < 0) lowest = r;
    }
    if (!any) return LMDM_OSU_T_NO_RELEASE;
    if (!lowest) return LMDM_OSU_T_UNSUPPORTED;
    *target = line ? line : lowest;
    *deadline = q->min_version_by;
    return LMDM_OSU_T_REQUIRED;
}

static int asks(const lmdm_os_requirement_t *q)
{
    return q->latest_security_days >= 0 || q->min_version != NULL;
}

static void tenant_part(const ctx_t *c, const lmdm_os_requirement_t *q, lmdm_os_tenant_plan_t *t)
{
    memset(t, 0, sizeof(*t));
    if (!asks(q)) return;
    lmdm_osu_tenant_state_t s[2] = {LMDM_OSU_T_NONE, LMDM_OSU_T_NONE};
    const lmdm_os_release_t *tg[2] = {NULL, NULL};
    int64_t dl[2] = {0, 0};
    if (q->latest_security_days >= 0) s[0] = security_part(c, q, &tg[0], &dl[0]);
    if (q->min_version) s[1] = min_version_part(c, q, &tg[1], &dl[1]);
    if (s[0] == LMDM_OSU_T_REQUIRED || s[1] == LMDM_OSU_T_REQUIRED) {
        t->state = LMDM_OSU_T_REQUIRED;
        for (int i = 0; i < 2; i++) {
            if (s[i] != LMDM_OSU_T_REQUIRED) continue;
            if (!t->target || dl[i] < t->deadline_day) t->deadline_day = dl[i];
            if (newer(tg[i], t->target)) t->target = tg[i];
        }
        return;
    }
    static const lmdm_osu_tenant_state_t order[] = {LMDM_OSU_T_UNSUPPORTED, LMDM_OSU_T_NO_RELEASE,
                                                    LMDM_OSU_T_MET};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        if (s[0] == order[i] || s[1] == order[i]) {
            t->state = order[i];
            return;
        }
}

/* ------------------------------------------------------------- the plan */

static const lmdm_tz_t *zone_or_utc(const lmdm_tz_t *tz)
{
    static const lmdm_tz_t utc = {0, 0, 0, {'M', 3, 2, 0, 0, 7200}, {'M', 11, 1, 0, 0, 7200}, "UTC", ""};
    return tz ? tz : &utc;
}

static int64_t local_day(const lmdm_tz_t *tz, int64_t utc)
{
    int64_t l = lmdm_tz_to_local(tz, utc);
    return l / DAY - (l % DAY < 0);
}

/* Deferrals, ring limit and their provenance: from every requirement. */
static void limits(const lmdm_os_requirement_t *req, size_t n, lmdm_os_plan_t *out)
{
    out->deferrals_allowed = -1;
    for (size_t i = 0; i < n; i++)
        if (req[i].max_deferrals >= 0 &&
            (out->deferrals_allowed < 0 || req[i].max_deferrals < out->deferrals_allowed))
            out->deferrals_allowed = req[i].max_deferrals;
    out->max_ring_delay = lmdm_osu_ring_limit(req, n);
    for (size_t i = 0; i < n; i++) {
        if (out->deferrals_allowed >= 0 && req[i].max_deferrals == out->deferrals_allowed)
            out->deferrals_from |= (uint64_t)1 << i;
        if (out->max_ring_delay >= 0 && req[i].latest_ring_delay == out->max_ring_delay)
            out->ring_from |= (uint64_t)1 << i;
    }
}

/* Target (highest), deadline day (earliest) and their provenance over the
 * REQUIRED tenants; 0 when none is. */
static int merge_tenants(lmdm_os_plan_t *out, int64_t *deadline_day)
{
    const lmdm_os_release_t *target = NULL;
    int64_t dl = 0;
    int found = 0;
    for (size_t i = 0; i < out->ntenants; i++) {
        const lmdm_os_tenant_plan_t *t = &out->tenant[i];
        if (t->state != LMDM_OSU_T_REQUIRED) continue;
        if (newer(t->target, target)) target = t->target;
        if (!found || t->deadline_day < dl) dl = t->deadline_day;
        found = 1;
    }
    if (!found) return 0;
    for (size_t i = 0; i < out->ntenants; i++) {
        const lmdm_os_tenant_plan_t *t = &out->tenant[i];
        if (t->state != LMDM_OSU_T_REQUIRED) continue;
        if (lmdm_osversion_cmp(t->target->version, target->version) == 0)
            out->target_from |= (uint64_t)1 << i;
        if (t->deadline_day == dl) out->deadline_from |= (uint64_t)1 << i;
    }
    out->target = target;
    *deadline_day = dl;
    return 1;
}

/* Start, deadline and install instants of a plan with a target. */
static void schedule(const lmdm_os_device_t *dev, const lmdm_tz_t *tz, int64_t deadline_day,
                     lmdm_os_plan_t *out)
{
    int delay = dev->ring_delay < 0 ? 0 : dev->ring_delay;
    if (out->max_ring_delay >= 0 && delay > out->max_ring_delay) delay = out->max_ring_delay;
    out->deadline = lmdm_tz_to_utc(tz, deadline_day * DAY + dev->install_time);
    out->start = lmdm_tz_to_utc(tz, (out->target->released + delay) * DAY);
    if (out->start > out->deadline) out->start = out->deadline;
    if (dev->owner_install_at) {
        out->install_at = dev->owner_install_at;
        out->owner_chose = 1;
    } else {
        int64_t day = local_day(tz, out->start);
        out->install_at = lmdm_tz_to_utc(tz, day * DAY + dev->install_time);
        if (out->install_at < out->start)
            out->install_at = lmdm_tz_to_utc(tz, (day + 1) * DAY + dev->install_time);
    }
    if (out->install_at > out->deadline) out->install_at = out->deadline;
    lmdm_datetime_format(lmdm_tz_to_local(tz, out->start), out->start_local);
    lmdm_datetime_format(lmdm_tz_to_local(tz, out->deadline), out->deadline_local);
    lmdm_datetime_format(lmdm_tz_to_local(tz, out->install_at), out->install_local);
}

void lmdm_os_plan(const lmdm_os_device_t *dev, const lmdm_os_requirement_t *req, size_t nreq,
                  const lmdm_os_release_t *releases, size_t nreleases, int64_t now, lmdm_os_plan_t *out)
{
    const lmdm_tz_t *tz = zone_or_utc(dev->tz);
    if (nreq > LMDM_OSU_MAX_TENANTS) nreq = LMDM_OSU_MAX_TENANTS;
    memset(out, 0, offsetof(lmdm_os_plan_t, tenant));
    out->ntenants = nreq;
    out->tz = dev->tz;
    out->mechanism =
        lmdm_osu_mechanism(dev->platform, dev->os_version, dev->user_enrollment, dev->supervised);
    limits(req, nreq, out);
    for (size_t i = 0; i < nreq; i++)
        memset(&out->tenant[i], 0, sizeof(out->tenant[i]));

    int used = dev->deferrals_used < 0 ? 0 : dev->deferrals_used;
    out->deferrals_left = out->deferrals_allowed < 0       ? -1
                          : used >= out->deferrals_allowed ? 0
                                                           : out->deferrals_allowed - used;
    int asking = 0;
    for (size_t i = 0; i < nreq; i++)
        asking |= asks(&req[i]);
    if (!dev->os_version || !*dev->os_version) {
        out->state = asking ? LMDM_OSU_UNKNOWN : LMDM_OSU_NONE;
        return;
    }

    signed char known[SUPPORT_CACHE];
    memset(known, -1, nreleases < SUPPORT_CACHE ? nreleases : SUPPORT_CACHE);
    ctx_t c = {dev, releases, nreleases, local_day(tz, now), lmdm_osversion_major(dev->os_version), known};
    int met = 0;
    for (size_t i = 0; i < nreq; i++) {
        tenant_part(&c, &req[i], &out->tenant[i]);
        met |= out->tenant[i].state == LMDM_OSU_T_MET;
    }
    int64_t deadline_day;
    if (!merge_tenants(out, &deadline_day)) {
        out->state = met ? LMDM_OSU_UP_TO_DATE : LMDM_OSU_NONE;
        return;
    }
    schedule(dev, tz, deadline_day, out);
    out->state = now < out->start      ? LMDM_OSU_WAITING
                 : now < out->deadline ? LMDM_OSU_SCHEDULED
                                       : LMDM_OSU_OVERDUE;
}

/* ------------------------------------------------------ the owner's choice */

static int refuse(const char **why, const char *reason)
{
    if (why) *why = reason;
    return -1;
}

int lmdm_osu_schedule(const lmdm_os_plan_t *p, int64_t now, int64_t when, int *deferral, const char **why)
{
    if (deferral) *deferral = 0;
    if (why) *why = NULL;
    if (!p->target) return refuse(why, "no update is pending");
    if (when < now) return refuse(why, "that time has already passed");
    if (when > p->deadline) return refuse(why, "that is after the deadline");
    if (when > p->install_at) {
        if (p->deferrals_left == 0)
            return refuse(why, "no deferral is left: the install can only be moved earlier");
        if (deferral) *deferral = 1;
    }
    return 0;
}

int lmdm_osu_defer(const lmdm_os_plan_t *p, int64_t now, int64_t *when, const char **why)
{
    if (why) *why = NULL;
    if (!p->target) return refuse(why, "no update is pending");
    if (p->install_at >= p->deadline || now >= p->deadline)
        return refuse(why, "the install is already at the deadline");
    if (p->deferrals_left == 0) return refuse(why, "no deferral is left");
    int64_t base = p->install_at > now ? p->install_at : now;
    /* A day later on the wall clock: 21:00 stays 21:00 across a DST change. */
    int64_t t = p->tz ? lmdm_tz_to_utc(p->tz, lmdm_tz_to_local(p->tz, base) + DAY) : base + DAY;
    if (t > p->deadline) t = p->deadline;
    if (when) *when = t;
    return 0;
}
