/* OS update plans (policy/osupdate.c): version order, the enforcement
 * mechanism table, each tenant's state (met, required, unsupported, no
 * release), the merged plan of several tenants with provenance, ring delays,
 * deadlines and install times across time zones and DST changes, the
 * owner's schedule and deferrals, and the state as the clock moves. Every
 * instant is asserted exactly. Zones are POSIX rules (the footers of the
 * tz database's files), so the test reads no file. */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "lmdm/osupdate.h"
#include "lmdm/tz.h"

#define H 3600
#define DAY 86400
#define BIT(i) ((uint64_t)1 << (i))

static int64_t at(int y, int m, int d, int h, int mi)
{
    return lmdm_days_from_civil(y, m, d) * DAY + h * H + mi * 60;
}
static int64_t day(int y, int m, int d)
{
    return lmdm_days_from_civil(y, m, d);
}

static lmdm_tz_t zone(const char *posix)
{
    lmdm_tz_t tz;
    char err[128];
    memset(&tz, 0, sizeof(tz));
    if (lmdm_tz_parse(posix, &tz, err, sizeof(err)) != 0)
        harness_fail(__FILE__, __LINE__, "%s: %s", posix, err);
    return tz;
}
#define BERLIN "CET-1CEST,M3.5.0,M10.5.0/3"
#define NEW_YORK "EST5EDT,M3.2.0,M11.1.0"
#define SYDNEY "AEST-10AEDT,M10.1.0,M4.1.0/3"

static const char *const new_models[] = {"iPhone15,2", "iPhone15,3", "iPhone16,1"};
static const char *const all_models[] = {"iPhone10,3", "iPhone15,2", "iPhone15,3", "iPhone16,1"};

static lmdm_os_release_t rel(const char *v, int64_t released, int security)
{
    lmdm_os_release_t r = {LMDM_PLATFORM_IOS, v, "", released, security, all_models, 4};
    return r;
}

static lmdm_os_device_t device(const char *version, const lmdm_tz_t *tz)
{
    lmdm_os_device_t d;
    memset(&d, 0, sizeof(d));
    d.platform = LMDM_PLATFORM_IOS;
    d.os_version = version;
    d.model = "iPhone15,2";
    d.supervised = 1;
    d.tz = tz;
    d.install_time = 2 * H;
    return d;
}

static lmdm_os_requirement_t req_none(void)
{
    lmdm_os_requirement_t r;
    memset(&r, 0x7f, sizeof(r));
    lmdm_os_requirement_init(&r);
    return r;
}
static lmdm_os_requirement_t req_security(int days)
{
    lmdm_os_requirement_t r = req_none();
    r.latest_security_days = days;
    return r;
}
static lmdm_os_requirement_t req_min(const char *v, int64_t by)
{
    lmdm_os_requirement_t r = req_none();
    r.min_version = v;
    r.min_version_by = by;
    return r;
}

static lmdm_os_plan_t plan_of(const lmdm_os_device_t *d, const lmdm_os_requirement_t *q, size_t nq,
                              const lmdm_os_release_t *r, size_t nr, int64_t now)
{
    lmdm_os_plan_t p;
    memset(&p, 0x5a, sizeof(p));
    lmdm_os_plan(d, q, nq, r, nr, now, &p);
    return p;
}

/* ------------------------------------------------------------- versions */

static void test_versions(void)
{
    CHECK(lmdm_osversion_cmp("17.10", "17.9") > 0);
    CHECK(lmdm_osversion_cmp("17.9", "17.10") < 0);
    CHECK_INT_EQ(lmdm_osversion_cmp("17.4", "17.4.0"), 0);
    CHECK_INT_EQ(lmdm_osversion_cmp("17.4.0.0", "17.4"), 0);
    CHECK(lmdm_osversion_cmp("17.4.1", "17.4") > 0);
    CHECK(lmdm_osversion_cmp("18", "17.9.9") > 0);
    CHECK(lmdm_osversion_cmp("9.3", "10.0") < 0);
    CHECK_INT_EQ(lmdm_osversion_cmp("17.a", "17.0"), 0);
    CHECK_INT_EQ(lmdm_osversion_cmp("17.4b", "17"), 0);
    CHECK_INT_EQ(lmdm_osversion_cmp("", "0"), 0);
    CHECK_INT_EQ(lmdm_osversion_cmp(NULL, ""), 0);
    CHECK(lmdm_osversion_cmp("", "1") < 0);
    CHECK(lmdm_osversion_cmp("99999999999999999999", "100") > 0); /* saturates, no overflow */
    CHECK_INT_EQ(lmdm_osversion_major("17.4.1"), 17);
    CHECK_INT_EQ(lmdm_osversion_major("9"), 9);
    CHECK_INT_EQ(lmdm_osversion_major("26.0"), 26);
    CHECK_INT_EQ(lmdm_osversion_major(""), -1);
    CHECK_INT_EQ(lmdm_osversion_major("abc"), -1);
    CHECK_INT_EQ(lmdm_osversion_major("17a.1"), -1);
    CHECK_INT_EQ(lmdm_osversion_major(".1"), -1);
    CHECK_INT_EQ(lmdm_osversion_major(NULL), -1);

    lmdm_os_release_t r = rel("17.4", 0, 1);
    r.devices = new_models;
    r.ndevices = 3;
    CHECK_INT_EQ(lmdm_os_release_supports(&r, "iPhone15,3"), 1);
    CHECK_INT_EQ(lmdm_os_release_supports(&r, "iPhone10,3"), 0);
    CHECK_INT_EQ(lmdm_os_release_supports(&r, "iPhone15"), 0);
    CHECK_INT_EQ(lmdm_os_release_supports(&r, ""), 1);
    CHECK_INT_EQ(lmdm_os_release_supports(&r, NULL), 1);
    r.ndevices = 0;
    CHECK_INT_EQ(lmdm_os_release_supports(&r, "iPhone10,3"), 1);

    lmdm_os_requirement_t q = req_none();
    CHECK_INT_EQ(q.latest_security_days, -1);
    CHECK_INT_EQ(q.allow_major, 0);
    CHECK(q.min_version == NULL);
    CHECK_INT_EQ(q.min_version_by, 0);
    CHECK_INT_EQ(q.max_deferrals, -1);
    CHECK_INT_EQ(q.latest_ring_delay, -1);
}

static void test_names(void)
{
    CHECK_STR_EQ(lmdm_osu_state_name(LMDM_OSU_NONE), "none");
    CHECK_STR_EQ(lmdm_osu_state_name(LMDM_OSU_UP_TO_DATE), "up_to_date");
    CHECK_STR_EQ(lmdm_osu_state_name(LMDM_OSU_WAITING), "waiting");
    CHECK_STR_EQ(lmdm_osu_state_name(LMDM_OSU_SCHEDULED), "scheduled");
    CHECK_STR_EQ(lmdm_osu_state_name(LMDM_OSU_OVERDUE), "overdue");
    CHECK_STR_EQ(lmdm_osu_state_name(LMDM_OSU_UNKNOWN), "unknown");
    CHECK_STR_EQ(lmdm_osu_tenant_state_name(LMDM_OSU_T_NONE), "none");
    CHECK_STR_EQ(lmdm_osu_tenant_state_name(LMDM_OSU_T_MET), "met");
    CHECK_STR_EQ(lmdm_osu_tenant_state_name(LMDM_OSU_T_REQUIRED), "required");
    CHECK_STR_EQ(lmdm_osu_tenant_state_name(LMDM_OSU_T_UNSUPPORTED), "unsupported");
    CHECK_STR_EQ(lmdm_osu_tenant_state_name(LMDM_OSU_T_NO_RELEASE), "no_release");
    CHECK_STR_EQ(lmdm_osu_mechanism_name(LMDM_OSU_MECH_DECLARATION), "declaration");
    CHECK_STR_EQ(lmdm_osu_mechanism_name(LMDM_OSU_MECH_COMMAND), "command");
    CHECK_STR_EQ(lmdm_osu_mechanism_name(LMDM_OSU_MECH_REMINDER), "reminder");
}

static void test_mechanism(void)
{
    static const struct {
        lmdm_platform_t p;
        const char *v;
        int ue, sup;
        lmdm_osu_mechanism_t want;
    } rows[] = {
        {LMDM_PLATFORM_IOS, "17.0", 0, 0, LMDM_OSU_MECH_DECLARATION},   /* device enrollment, unsupervised */
        {LMDM_PLATFORM_IOS, "17.4.1", 0, 1, LMDM_OSU_MECH_DECLARATION}, /* supervised */
        {LMDM_PLATFORM_IOS, "18.0", 0, 0, LMDM_OSU_MECH_DECLARATION},
        {LMDM_PLATFORM_IOS, "16.7.8", 0, 1, LMDM_OSU_MECH_COMMAND},
        {LMDM_PLATFORM_IOS, "16.7.8", 0, 0, LMDM_OSU_MECH_REMINDER},
        {LMDM_PLATFORM_IOS, "17.4", 1, 0, LMDM_OSU_MECH_REMINDER}, /* User Enrollment */
        {LMDM_PLATFORM_IOS, "17.4", 1, 1, LMDM_OSU_MECH_REMINDER},
        {LMDM_PLATFORM_IOS, "", 0, 1, LMDM_OSU_MECH_COMMAND}, /* unknown: too old */
        {LMDM_PLATFORM_IOS, "", 0, 0, LMDM_OSU_MECH_REMINDER},
        {LMDM_PLATFORM_MACOS, "14.0", 0, 1, LMDM_OSU_MECH_DECLARATION},
        {LMDM_PLATFORM_MACOS, "15.1", 0, 1, LMDM_OSU_MECH_DECLARATION},
        {LMDM_PLATFORM_MACOS, "14.4", 0, 0, LMDM_OSU_MECH_REMINDER}, /* unsupervised Mac */
        {LMDM_PLATFORM_MACOS, "13.6.7", 0, 1, LMDM_OSU_MECH_COMMAND},
        {LMDM_PLATFORM_MACOS, "13.6.7", 0, 0, LMDM_OSU_MECH_REMINDER},
        {LMDM_PLATFORM_MACOS, "17.0", 0, 0, LMDM_OSU_MECH_REMINDER}, /* the iOS threshold is not macOS's */
        {LMDM_PLATFORM_MACOS, "14.5", 1, 1, LMDM_OSU_MECH_REMINDER},
        {LMDM_PLATFORM_MACOS, "", 0, 1, LMDM_OSU_MECH_COMMAND},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        lmdm_osu_mechanism_t m = lmdm_osu_mechanism(rows[i].p, rows[i].v, rows[i].ue, rows[i].sup);
        harness_checks++;
        if (m != rows[i].want)
            harness_fail(__FILE__, __LINE__, "row %zu (%s): %s, expected %s", i, rows[i].v,
                         lmdm_osu_mechanism_name(m), lmdm_osu_mechanism_name(rows[i].want));
    }
    /* The plan carries it. */
    lmdm_os_device_t d = device("16.7.8", NULL);
    lmdm_os_plan_t p = plan_of(&d, NULL, 0, NULL, 0, at(2027, 1, 1, 0, 0));
    CHECK_INT_EQ(p.mechanism, LMDM_OSU_MECH_COMMAND);
    d.user_enrollment = 1;
    p = plan_of(&d, NULL, 0, NULL, 0, at(2027, 1, 1, 0, 0));
    CHECK_INT_EQ(p.mechanism, LMDM_OSU_MECH_REMINDER);
}

/* ------------------------------------------------------- DST and zones */

static void check_instants(const lmdm_os_plan_t *p, int64_t start, int64_t install, int64_t deadline,
                           int line)
{
    harness_checks++;
    if (p->start != start || p->install_at != install || p->deadline != deadline) {
        char a[20], b[20], c[20];
        lmdm_datetime_format(p->start, a);
        lmdm_datetime_format(p->install_at, b);
        lmdm_datetime_format(p->deadline, c);
        harness_fail(__FILE__, line, "start %sZ install %sZ deadline %sZ", a, b, c);
    }
}
#define INSTANTS(p, s, i, d) check_instants(p, s, i, d, __LINE__)

static void test_dst_spring(void)
{
    /* Berlin: a security release on Saturday 2027-03-20 with 14 days; the
     * clocks go forward on 2027-03-28. Install and deadline both at 02:00
     * local: 01:00Z before the change, 00:00Z after. */
    lmdm_tz_t berlin = zone(BERLIN);
    lmdm_os_release_t r[] = {rel("17.4.1", day(2027, 3, 20), 1)};
    lmdm_os_device_t d = device("17.3", &berlin);
    lmdm_os_requirement_t q = req_security(14);
    lmdm_os_plan_t p = plan_of(&d, &q, 1, r, 1, at(2027, 3, 21, 12, 0));
    CHECK_INT_EQ(p.state, LMDM_OSU_SCHEDULED);
    CHECK(p.target == &r[0]);
    CHECK_STR_EQ(p.start_local, "2027-03-20T00:00:00");
    CHECK_STR_EQ(p.install_local, "2027-03-20T02:00:00");
    CHECK_STR_EQ(p.deadline_local, "2027-04-03T02:00:00");
    INSTANTS(&p, at(2027, 3, 19, 23, 0), at(2027, 3, 20, 1, 0), at(2027, 4, 3, 0, 0));
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_REQUIRED);
    CHECK_INT_EQ(p.tenant[0].deadline_day, day(2027, 4, 3));
    CHECK(p.tenant[0].target == &r[0]);
    CHECK_INT_EQ(p.ntenants, 1);
    CHECK_INT_EQ(p.target_from, BIT(0));
    CHECK_INT_EQ(p.deadline_from, BIT(0));
    CHECK_INT_EQ(p.owner_chose, 0);

    /* Ring delays 0, 3, 7, 14 with 30 days (deadline 2027-04-19 02:00 CEST). */
    q = req_security(30);
    static const struct {
        int delay;
        const char *start, *install;
        int64_t s, i;
    } rings[] = {
        {0, "2027-03-20T00:00:00", "2027-03-20T02:00:00", 1805497200, 1805504400},
        {3, "2027-03-23T00:00:00", "2027-03-23T02:00:00", 1805756400, 1805763600},
        {7, "2027-03-27T00:00:00", "2027-03-27T02:00:00", 1806102000, 1806109200},
        /* the day of the change: 02:00 does not exist, the install is 03:00 CEST */
        {8, "2027-03-28T00:00:00", "2027-03-28T03:00:00", 1806188400, 1806195600},
        {14, "2027-04-03T00:00:00", "2027-04-03T02:00:00", 1806703200, 1806710400},
    };
    for (size_t k = 0; k < sizeof(rings) / sizeof(rings[0]); k++) {
        d.ring_delay = rings[k].delay;
        p = plan_of(&d, &q, 1, r, 1, at(2027, 3, 21, 12, 0));
        CHECK_STR_EQ(p.start_local, rings[k].start);
        CHECK_STR_EQ(p.install_local, rings[k].install);
        CHECK_STR_EQ(p.deadline_local, "2027-04-19T02:00:00");
        INSTANTS(&p, rings[k].s, rings[k].i, at(2027, 4, 19, 0, 0));
        CHECK_INT_EQ(p.state, rings[k].delay == 0 ? LMDM_OSU_SCHEDULED : LMDM_OSU_WAITING);
    }
    /* Check the table's UTC figures independently of it. */
    CHECK_INT_EQ(rings[0].s, at(2027, 3, 19, 23, 0));
    CHECK_INT_EQ(rings[3].i, at(2027, 3, 28, 1, 0));
    CHECK_INT_EQ(rings[4].s, at(2027, 4, 2, 22, 0));
    CHECK_INT_EQ(rings[4].i, at(2027, 4, 3, 0, 0));

    /* Ring 14 but a 10-day deadline: start and install are the deadline. */
    q = req_security(10);
    d.ring_delay = 14;
    p = plan_of(&d, &q, 1, r, 1, at(2027, 3, 21, 12, 0));
    CHECK_STR_EQ(p.deadline_local, "2027-03-30T02:00:00");
    INSTANTS(&p, at(2027, 3, 30, 0, 0), at(2027, 3, 30, 0, 0), at(2027, 3, 30, 0, 0));
    CHECK_STR_EQ(p.start_local, "2027-03-30T02:00:00");
    CHECK_INT_EQ(p.state, LMDM_OSU_WAITING);
}

static void test_dst_autumn_and_zones(void)
{
    /* Berlin in autumn: release 2027-10-25 (CEST), deadline 2027-11-08 (CET). */
    lmdm_tz_t berlin = zone(BERLIN);
    lmdm_os_release_t r[] = {rel("17.6", day(2027, 10, 25), 1)};
    lmdm_os_device_t d = device("17.5", &berlin);
    lmdm_os_requirement_t q = req_security(14);
    lmdm_os_plan_t p = plan_of(&d, &q, 1, r, 1, at(2027, 10, 26, 0, 0));
    CHECK_STR_EQ(p.install_local, "2027-10-25T02:00:00");
    CHECK_STR_EQ(p.deadline_local, "2027-11-08T02:00:00");
    INSTANTS(&p, at(2027, 10, 24, 22, 0), at(2027, 10, 25, 0, 0), at(2027, 11, 8, 1, 0));

    /* New York: release 2027-03-10 (EST), 7 days, deadline 2027-03-17 (EDT). */
    lmdm_tz_t ny = zone(NEW_YORK);
    lmdm_os_release_t r2[] = {rel("17.4.1", day(2027, 3, 10), 1)};
    d = device("17.4", &ny);
    q = req_security(7);
    p = plan_of(&d, &q, 1, r2, 1, at(2027, 3, 12, 0, 0));
    CHECK_STR_EQ(p.install_local, "2027-03-10T02:00:00");
    CHECK_STR_EQ(p.deadline_local, "2027-03-17T02:00:00");
    INSTANTS(&p, at(2027, 3, 10, 5, 0), at(2027, 3, 10, 7, 0), at(2027, 3, 17, 6, 0));

    /* Sydney (southern hemisphere): DST ends 2027-04-04. Release
     * 2027-03-30 (AEDT), 14 days, deadline 2027-04-13 (AEST). */
    lmdm_tz_t syd = zone(SYDNEY);
    lmdm_os_release_t r3[] = {rel("17.4.1", day(2027, 3, 30), 1)};
    d = device("17.4", &syd);
    q = req_security(14);
    p = plan_of(&d, &q, 1, r3, 1, at(2027, 3, 31, 0, 0));
    CHECK_STR_EQ(p.start_local, "2027-03-30T00:00:00");
    CHECK_STR_EQ(p.install_local, "2027-03-30T02:00:00");
    CHECK_STR_EQ(p.deadline_local, "2027-04-13T02:00:00");
    INSTANTS(&p, at(2027, 3, 29, 13, 0), at(2027, 3, 29, 15, 0), at(2027, 4, 12, 16, 0));

    /* No zone: UTC. A 04:30 install time. */
    d = device("17.4", NULL);
    d.install_time = 4 * H + 1800;
    p = plan_of(&d, &q, 1, r3, 1, at(2027, 3, 31, 0, 0));
    INSTANTS(&p, at(2027, 3, 30, 0, 0), at(2027, 3, 30, 4, 30), at(2027, 4, 13, 4, 30));
    CHECK_STR_EQ(p.install_local, "2027-03-30T04:30:00");

    /* "Today" is the device's: a release of 2027-03-21 at 2027-03-20 23:30Z
     * is out in Berlin (00:30 on the 21st), not yet in New York (19:30 on the 20th). */
    lmdm_os_release_t r4[] = {rel("17.4.1", day(2027, 3, 21), 1)};
    q = req_security(7);
    d = device("17.4", &berlin);
    p = plan_of(&d, &q, 1, r4, 1, at(2027, 3, 20, 23, 30));
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_REQUIRED);
    CHECK_INT_EQ(p.state, LMDM_OSU_SCHEDULED); /* start: 2027-03-21 00:00 CET = 2027-03-20 23:00Z */
    CHECK_INT_EQ(p.start, at(2027, 3, 20, 23, 0));
    d = device("17.4", &ny);
    p = plan_of(&d, &q, 1, r4, 1, at(2027, 3, 20, 23, 30));
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_MET);
    CHECK_INT_EQ(p.state, LMDM_OSU_UP_TO_DATE);
    CHECK(p.target == NULL);
}

/* --------------------------------------------------------- several tenants */

static void test_several_tenants(void)
{
    lmdm_os_release_t r[] = {
        rel("17.3", day(2027, 1, 10), 1),
        rel("17.3.1", day(2027, 2, 1), 1),
        rel("18.0", day(2027, 3, 10), 1),
        rel("17.4.1", day(2027, 3, 5), 0),
        rel("17.4", day(2027, 3, 1), 1),
        rel("18.1", day(2027, 4, 1), 1), /* not released yet on 2027-03-12 */
    };
    lmdm_os_release_t mac = rel("14.4", day(2027, 3, 1), 1);
    mac.platform = LMDM_PLATFORM_MACOS; /* another platform: ignored */
    lmdm_os_release_t all[7];
    memcpy(all, r, sizeof(r));
    all[6] = mac;
    lmdm_os_device_t d = device("17.3", NULL);
    d.ring_delay = 7;
    lmdm_os_requirement_t q[6];
    q[0] = req_security(45); /* A: 17.4, due 2027-02-01 + 45 = 2027-03-18 */
    q[0].max_deferrals = 3;
    q[0].latest_ring_delay = 7;
    q[1] = req_min("17.4.1", day(2027, 4, 1)); /* B: 17.4.1 by 2027-04-01 */
    q[1].max_deferrals = 1;
    q[2] = req_security(60); /* C: 18.0 (allow_major), due 2027-04-02 */
    q[2].allow_major = 1;
    q[2].latest_ring_delay = 14;
    q[3] = req_none(); /* D: asks no version, limits deferrals and the ring */
    q[3].max_deferrals = 2;
    q[3].latest_ring_delay = 3;
    q[4] = req_min("17.2", day(2027, 1, 1));  /* E: met */
    q[5] = req_min("18.0", day(2027, 3, 18)); /* F: ties C's target and A's deadline */
    int64_t now = at(2027, 3, 12, 12, 0);
    lmdm_os_plan_t p = plan_of(&d, q, 6, all, 7, now);

    CHECK_INT_EQ(p.ntenants, 6);
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_REQUIRED);
    CHECK(p.tenant[0].target == &all[4]);
    CHECK_INT_EQ(p.tenant[0].deadline_day, day(2027, 3, 18));
    CHECK_INT_EQ(p.tenant[1].state, LMDM_OSU_T_REQUIRED);
    CHECK(p.tenant[1].target == &all[3]);
    CHECK_INT_EQ(p.tenant[1].deadline_day, day(2027, 4, 1));
    CHECK_INT_EQ(p.tenant[2].state, LMDM_OSU_T_REQUIRED);
    CHECK(p.tenant[2].target == &all[2]);
    CHECK_INT_EQ(p.tenant[2].deadline_day, day(2027, 4, 2));
    CHECK_INT_EQ(p.tenant[3].state, LMDM_OSU_T_NONE);
    CHECK(p.tenant[3].target == NULL);
    CHECK_INT_EQ(p.tenant[4].state, LMDM_OSU_T_MET);
    CHECK_INT_EQ(p.tenant[5].state, LMDM_OSU_T_REQUIRED);
    CHECK(p.tenant[5].target == &all[2]);

    CHECK(p.target == &all[2]); /* 18.0, the highest */
    CHECK_STR_EQ(p.target->version, "18.0");
    CHECK_INT_EQ(p.target_from, BIT(2) | BIT(5));
    CHECK_INT_EQ(p.deadline_from, BIT(0) | BIT(5));
    CHECK_INT_EQ(p.deferrals_allowed, 1);
    CHECK_INT_EQ(p.deferrals_left, 1);
    CHECK_INT_EQ(p.deferrals_from, BIT(1));
    CHECK_INT_EQ(p.max_ring_delay, 3);
    CHECK_INT_EQ(p.ring_from, BIT(3));
    CHECK_INT_EQ(lmdm_osu_ring_limit(q, 6), 3);
    CHECK_INT_EQ(lmdm_osu_ring_limit(q, 3), 7);
    CHECK_INT_EQ(lmdm_osu_ring_limit(&q[1], 1), -1);
    CHECK_INT_EQ(lmdm_osu_ring_limit(NULL, 0), -1);
    /* The device's ring (7) is later than D allows (3): 18.0 + 3 days. */
    INSTANTS(&p, at(2027, 3, 13, 0, 0), at(2027, 3, 13, 2, 0), at(2027, 3, 18, 2, 0));
    CHECK_INT_EQ(p.state, LMDM_OSU_WAITING);

    /* The order of the inputs does not change the plan (provenance follows). */
    lmdm_os_requirement_t rq[6] = {q[5], q[4], q[3], q[2], q[1], q[0]};
    lmdm_os_release_t rr[7];
    for (int i = 0; i < 7; i++)
        rr[i] = all[6 - i];
    lmdm_os_plan_t p2 = plan_of(&d, rq, 6, rr, 7, now);
    CHECK_STR_EQ(p2.target->version, "18.0");
    CHECK_INT_EQ(p2.target_from, BIT(0) | BIT(3));
    CHECK_INT_EQ(p2.deadline_from, BIT(0) | BIT(5));
    CHECK_INT_EQ(p2.deferrals_from, BIT(4));
    CHECK_INT_EQ(p2.ring_from, BIT(2));
    INSTANTS(&p2, p.start, p.install_at, p.deadline);

    /* Without F, and C without allow_major (17.4): B's 17.4.1 is the
     * highest target; A's deadline stays. */
    q[2].allow_major = 0;
    p = plan_of(&d, q, 5, all, 7, now);
    CHECK(p.tenant[2].target == &all[4]);
    CHECK(p.target == &all[3]);
    CHECK_INT_EQ(p.target_from, BIT(1));
    CHECK_INT_EQ(p.deadline_from, BIT(0));
    INSTANTS(&p, at(2027, 3, 8, 0, 0), at(2027, 3, 8, 2, 0), at(2027, 3, 18, 2, 0));
    CHECK_INT_EQ(p.state, LMDM_OSU_SCHEDULED);

    /* One tenant with both requirements: the higher target, the earlier deadline. */
    lmdm_os_requirement_t both = req_security(45);
    both.min_version = "17.4.1";
    both.min_version_by = day(2027, 4, 1);
    p = plan_of(&d, &both, 1, all, 7, now);
    CHECK(p.tenant[0].target == &all[3]);
    CHECK_INT_EQ(p.tenant[0].deadline_day, day(2027, 3, 18));
}

/* ------------------------------------------- releases and device support */

static void test_no_release_unsupported(void)
{
    lmdm_os_release_t r[] = {
        rel("17.3.1", day(2027, 2, 1), 1), /* every model */
        rel("17.4", day(2027, 3, 1), 1),   /* new models only */
        rel("17.4.1", day(2027, 3, 5), 0), /* new models only */
        rel("18.0", day(2027, 3, 10), 1),  /* new models only */
        rel("18.1", day(2027, 3, 11), 0),  /* new models only */
        rel("19.0", day(2027, 9, 1), 1),   /* in the feed, released later */
    };
    for (int i = 1; i < 6; i++) {
        r[i].devices = new_models;
        r[i].ndevices = 3;
    }
    int64_t now = at(2027, 3, 20, 12, 0);
    lmdm_os_device_t d = device("17.3", NULL);
    d.model = "iPhone10,3";

    /* The newest installable security release: 17.3.1, not 17.4. */
    lmdm_os_requirement_t q = req_security(10);
    lmdm_os_plan_t p = plan_of(&d, &q, 1, r, 6, now);
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_REQUIRED);
    CHECK(p.target == &r[0]);
    CHECK_INT_EQ(p.tenant[0].deadline_day, day(2027, 2, 11));
    CHECK_INT_EQ(p.state, LMDM_OSU_OVERDUE);
    /* Once on 17.3.1: newer security releases exist, but for other models
     * only (Apple's device-specific releases): nothing is missing. */
    d.os_version = "17.3.1";
    p = plan_of(&d, &q, 1, r, 6, now);
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_MET);
    CHECK_INT_EQ(p.state, LMDM_OSU_UP_TO_DATE);
    CHECK(p.target == NULL);
    CHECK_STR_EQ(p.install_local, "");
    CHECK_INT_EQ(p.start, 0);
    CHECK_INT_EQ(p.deadline, 0);

    /* min_version: UNSUPPORTED when releases >= X exist but none for the
     * model; NO_RELEASE when none >= X is out (19.0 is only announced). */
    q = req_min("17.4", day(2027, 4, 1));
    p = plan_of(&d, &q, 1, r, 6, now);
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_UNSUPPORTED);
    q = req_min("19.0", day(2027, 10, 1));
    p = plan_of(&d, &q, 1, r, 6, now);
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_NO_RELEASE);
    CHECK_INT_EQ(p.state, LMDM_OSU_NONE);
    /* ... and once 19.0 is out, UNSUPPORTED on this model, REQUIRED on a new one. */
    p = plan_of(&d, &q, 1, r, 6, at(2027, 9, 2, 0, 0));
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_UNSUPPORTED);
    d.model = "iPhone16,1";
    p = plan_of(&d, &q, 1, r, 6, at(2027, 9, 2, 0, 0));
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_REQUIRED);
    CHECK(p.target == &r[5]);
    /* An unknown model ("") can install anything. */
    d.model = "";
    q = req_min("17.4", day(2027, 4, 1));
    p = plan_of(&d, &q, 1, r, 6, now);
    CHECK(p.target == &r[2]); /* newest of the 17 line */

    /* min_version's target: the newest of X's line at least X... */
    d.model = "iPhone15,2";
    q = req_min("17.3.5", day(2027, 4, 1));
    p = plan_of(&d, &q, 1, r, 6, now);
    CHECK(p.target == &r[2]);
    CHECK_STR_EQ(p.target->version, "17.4.1");
    /* ... else the lowest at least X of any line. */
    q = req_min("17.9", day(2027, 4, 1));
    p = plan_of(&d, &q, 1, r, 6, now);
    CHECK(p.target == &r[3]);
    CHECK_STR_EQ(p.target->version, "18.0");
    /* Already there: MET and UP_TO_DATE. */
    d.os_version = "17.4.1";
    q = req_min("17.4", day(2027, 4, 1));
    p = plan_of(&d, &q, 1, r, 6, now);
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_MET);
    CHECK_INT_EQ(p.state, LMDM_OSU_UP_TO_DATE);

    /* allow_major: on 17.4.1 the only newer security release is 18.0. */
    q = req_security(30);
    p = plan_of(&d, &q, 1, r, 6, now);
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_MET);
    q.allow_major = 1;
    p = plan_of(&d, &q, 1, r, 6, now);
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_REQUIRED);
    CHECK(p.target == &r[3]);
    CHECK_INT_EQ(p.tenant[0].deadline_day, day(2027, 4, 9));

    /* No release at all. */
    p = plan_of(&d, &q, 1, NULL, 0, now);
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_MET);
    q = req_min("17.5", day(2027, 4, 1));
    p = plan_of(&d, &q, 1, NULL, 0, now);
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_NO_RELEASE);
    CHECK_INT_EQ(p.state, LMDM_OSU_NONE);
    /* NO_RELEASE next to a met tenant: up to date as far as can be. */
    lmdm_os_requirement_t two[2] = {q, req_min("17.0", day(2027, 1, 1))};
    p = plan_of(&d, two, 2, NULL, 0, now);
    CHECK_INT_EQ(p.state, LMDM_OSU_UP_TO_DATE);
}

/* ------------------------------------------ the owner: schedule and defer */

static void test_owner(void)
{
    lmdm_os_release_t r[] = {rel("17.4.1", day(2027, 3, 1), 1)};
    lmdm_os_device_t d = device("17.4", NULL);
    lmdm_os_requirement_t q = req_security(10); /* deadline 2027-03-11 02:00Z */
    q.max_deferrals = 2;
    int64_t now = at(2027, 3, 2, 12, 0);
    lmdm_os_plan_t p = plan_of(&d, &q, 1, r, 1, now);
    INSTANTS(&p, at(2027, 3, 1, 0, 0), at(2027, 3, 1, 2, 0), at(2027, 3, 11, 2, 0));
    CHECK_INT_EQ(p.deferrals_allowed, 2);
    CHECK_INT_EQ(p.deferrals_left, 2);

    /* The owner's choice replaces the default, clamped to the deadline. */
    d.owner_install_at = at(2027, 3, 5, 20, 0);
    d.deferrals_used = 1;
    p = plan_of(&d, &q, 1, r, 1, now);
    CHECK_INT_EQ(p.install_at, at(2027, 3, 5, 20, 0));
    CHECK_STR_EQ(p.install_local, "2027-03-05T20:00:00");
    CHECK_INT_EQ(p.owner_chose, 1);
    CHECK_INT_EQ(p.deferrals_left, 1);
    d.owner_install_at = at(2027, 4, 1, 0, 0);
    p = plan_of(&d, &q, 1, r, 1, now);
    CHECK_INT_EQ(p.install_at, p.deadline);
    CHECK_INT_EQ(p.owner_chose, 1);

    /* One deferral left: later uses it, earlier does not. */
    d.owner_install_at = at(2027, 3, 5, 20, 0);
    p = plan_of(&d, &q, 1, r, 1, now);
    int deferral = -1;
    const char *why = "x";
    CHECK_INT_EQ(lmdm_osu_schedule(&p, now, at(2027, 3, 8, 22, 0), &deferral, &why), 0);
    CHECK_INT_EQ(deferral, 1);
    CHECK(why == NULL);
    CHECK_INT_EQ(lmdm_osu_schedule(&p, now, at(2027, 3, 4, 22, 0), &deferral, &why), 0);
    CHECK_INT_EQ(deferral, 0);
    CHECK_INT_EQ(lmdm_osu_schedule(&p, now, p.install_at, &deferral, &why), 0);
    CHECK_INT_EQ(deferral, 0);
    CHECK_INT_EQ(lmdm_osu_schedule(&p, now, p.deadline, &deferral, &why), 0);
    CHECK_INT_EQ(deferral, 1);
    CHECK_INT_EQ(lmdm_osu_schedule(&p, now, p.deadline + 1, &deferral, &why), -1);
    CHECK_STR_CONTAINS(why, "after the deadline");
    CHECK_INT_EQ(lmdm_osu_schedule(&p, now, now - 1, &deferral, &why), -1);
    CHECK_STR_CONTAINS(why, "passed");
    int64_t when = 0;
    CHECK_INT_EQ(lmdm_osu_defer(&p, now, &when, &why), 0);
    CHECK_INT_EQ(when, at(2027, 3, 6, 20, 0));

    /* Deferrals exhausted: later refused, earlier allowed, defer refused. */
    d.deferrals_used = 2;
    p = plan_of(&d, &q, 1, r, 1, now);
    CHECK_INT_EQ(p.deferrals_left, 0);
    CHECK_INT_EQ(lmdm_osu_schedule(&p, now, at(2027, 3, 6, 20, 0), &deferral, &why), -1);
    CHECK_STR_CONTAINS(why, "no deferral");
    CHECK_INT_EQ(lmdm_osu_schedule(&p, now, at(2027, 3, 3, 1, 0), &deferral, &why), 0);
    CHECK_INT_EQ(deferral, 0);
    when = 7;
    CHECK_INT_EQ(lmdm_osu_defer(&p, now, &when, &why), -1);
    CHECK_STR_CONTAINS(why, "no deferral");
    CHECK_INT_EQ(when, 7);
    d.deferrals_used = 5; /* never below 0 */
    p = plan_of(&d, &q, 1, r, 1, now);
    CHECK_INT_EQ(p.deferrals_left, 0);

    /* Unlimited deferrals; a defer never goes past the deadline, and is
     * refused once the install is at it. */
    q.max_deferrals = -1;
    d.deferrals_used = 9;
    d.owner_install_at = at(2027, 3, 10, 12, 0);
    p = plan_of(&d, &q, 1, r, 1, now);
    CHECK_INT_EQ(p.deferrals_allowed, -1);
    CHECK_INT_EQ(p.deferrals_left, -1);
    CHECK_INT_EQ(p.deferrals_from, 0);
    CHECK_INT_EQ(lmdm_osu_schedule(&p, now, at(2027, 3, 11, 1, 0), &deferral, &why), 0);
    CHECK_INT_EQ(deferral, 1);
    CHECK_INT_EQ(lmdm_osu_defer(&p, now, &when, &why), 0);
    CHECK_INT_EQ(when, p.deadline);
    d.owner_install_at = p.deadline;
    p = plan_of(&d, &q, 1, r, 1, now);
    CHECK_INT_EQ(lmdm_osu_defer(&p, now, &when, &why), -1);
    CHECK_STR_CONTAINS(why, "deadline");
    /* A defer after the install time has passed counts from now. */
    d.owner_install_at = at(2027, 3, 2, 2, 0);
    p = plan_of(&d, &q, 1, r, 1, now);
    CHECK_INT_EQ(lmdm_osu_defer(&p, now, &when, &why), 0);
    CHECK_INT_EQ(when, now + DAY);

    /* Nothing pending: nothing to schedule. */
    d.os_version = "17.4.1";
    p = plan_of(&d, &q, 1, r, 1, now);
    CHECK(p.target == NULL);
    CHECK_INT_EQ(lmdm_osu_schedule(&p, now, now + H, &deferral, &why), -1);
    CHECK_STR_CONTAINS(why, "no update");
    CHECK_INT_EQ(lmdm_osu_defer(&p, now, &when, &why), -1);
}

/* A deferral is a day on the device's wall clock: across the spring-forward
 * night in Berlin, 21:00 CET stays 21:00 (CEST), 23 hours later. */
static void test_defer_across_dst(void)
{
    lmdm_tz_t berlin = zone(BERLIN);
    lmdm_os_release_t r[] = {rel("17.4.1", day(2027, 3, 20), 1)};
    lmdm_os_device_t d = device("17.3", &berlin);
    d.owner_install_at = at(2027, 3, 27, 20, 0); /* 21:00 CET */
    lmdm_os_requirement_t q = req_security(14);
    int64_t now = at(2027, 3, 25, 12, 0);
    lmdm_os_plan_t p = plan_of(&d, &q, 1, r, 1, now);
    CHECK_STR_EQ(p.install_local, "2027-03-27T21:00:00");
    int64_t when = 0;
    const char *why = NULL;
    CHECK_INT_EQ(lmdm_osu_defer(&p, now, &when, &why), 0);
    CHECK_INT_EQ(when, at(2027, 3, 28, 19, 0)); /* 21:00 CEST */
    CHECK_INT_EQ(when - d.owner_install_at, 23 * H);
    d.owner_install_at = when;
    p = plan_of(&d, &q, 1, r, 1, now);
    CHECK_STR_EQ(p.install_local, "2027-03-28T21:00:00");
}

/* ------------------------------------------------ the state as time moves */

static void test_state_over_time(void)
{
    lmdm_tz_t berlin = zone(BERLIN);
    lmdm_os_release_t r[] = {rel("17.4.1", day(2027, 3, 20), 1)};
    lmdm_os_device_t d = device("17.4", &berlin);
    d.ring_delay = 3;
    lmdm_os_requirement_t q[2] = {req_security(14), req_none()};
    q[1].max_deferrals = 4;
    /* start 2027-03-23 00:00 CET = 03-22 23:00Z; deadline 2027-04-03 02:00 CEST = 00:00Z */
    static const struct {
        int64_t now;
        lmdm_osu_state_t want;
    } steps[] = {
        {1805450400 /* 2027-03-19 10:00Z, before the release */, LMDM_OSU_UP_TO_DATE},
        {1805497200 /* 2027-03-19 23:00Z = 03-20 00:00 CET: released today */, LMDM_OSU_WAITING},
        {1805756399 /* one second before the start */, LMDM_OSU_WAITING},
        {1805756400 /* the start */, LMDM_OSU_SCHEDULED},
        {1806710399 /* one second before the deadline */, LMDM_OSU_SCHEDULED},
        {1806710400 /* the deadline */, LMDM_OSU_OVERDUE},
        {1809302400 /* a month later */, LMDM_OSU_OVERDUE},
    };
    CHECK_INT_EQ(steps[1].now, at(2027, 3, 19, 23, 0));
    CHECK_INT_EQ(steps[3].now, at(2027, 3, 22, 23, 0));
    CHECK_INT_EQ(steps[5].now, at(2027, 4, 3, 0, 0));
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        lmdm_os_plan_t p = plan_of(&d, q, 2, r, 1, steps[i].now);
        harness_checks++;
        if (p.state != steps[i].want)
            harness_fail(__FILE__, __LINE__, "step %zu: %s, expected %s", i, lmdm_osu_state_name(p.state),
                         lmdm_osu_state_name(steps[i].want));
        if (steps[i].want >= LMDM_OSU_WAITING) {
            CHECK(p.target == &r[0]);
            CHECK_INT_EQ(p.start, at(2027, 3, 22, 23, 0));
            CHECK_INT_EQ(p.deadline, at(2027, 4, 3, 0, 0));
            CHECK_INT_EQ(p.deferrals_allowed, 4);
            CHECK_INT_EQ(p.deferrals_from, BIT(1));
        } else {
            CHECK(p.target == NULL);
        }
    }
    /* The device reports the target: up to date. */
    d.os_version = "17.4.1";
    lmdm_os_plan_t p = plan_of(&d, q, 2, r, 1, at(2027, 3, 25, 0, 0));
    CHECK_INT_EQ(p.state, LMDM_OSU_UP_TO_DATE);
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_MET);
    /* Unknown version: unknown while a tenant asks, none otherwise. */
    d.os_version = "";
    p = plan_of(&d, q, 2, r, 1, at(2027, 3, 25, 0, 0));
    CHECK_INT_EQ(p.state, LMDM_OSU_UNKNOWN);
    CHECK(p.target == NULL);
    CHECK_INT_EQ(p.tenant[0].state, LMDM_OSU_T_NONE);
    CHECK_INT_EQ(p.deferrals_allowed, 4);
    p = plan_of(&d, &q[1], 1, r, 1, at(2027, 3, 25, 0, 0));
    CHECK_INT_EQ(p.state, LMDM_OSU_NONE);
    /* No tenant at all. */
    d.os_version = "17.4";
    p = plan_of(&d, NULL, 0, r, 1, at(2027, 3, 25, 0, 0));
    CHECK_INT_EQ(p.state, LMDM_OSU_NONE);
    CHECK_INT_EQ(p.ntenants, 0);
    CHECK_INT_EQ(p.deferrals_allowed, -1);
    CHECK_INT_EQ(p.max_ring_delay, -1);
    CHECK_INT_EQ(p.target_from | p.deadline_from | p.deferrals_from | p.ring_from, 0);
}

int main(void)
{
    RUN(test_versions);
    RUN(test_names);
    RUN(test_mechanism);
    RUN(test_dst_spring);
    RUN(test_dst_autumn_and_zones);
    RUN(test_several_tenants);
    RUN(test_no_release_unsupported);
    RUN(test_owner);
    RUN(test_defer_across_dst);
    RUN(test_state_over_time);
    return harness_finish();
}
