/* OS update plans (issue 7): every tenant's OS-update requirement, the
 * device's ring and its owner's choices turned into one plan per device.
 * Pure arithmetic (policy/osupdate.c, libc only): the releases, the clock
 * ("now") and the device's time zone are arguments. DESIGN.md flow 5.
 *
 * Requirements (one per tenant; tenants/api_osupdate.c parses the JSON):
 *   latest_security_days N  every security release the device can install
 *                           (of its current major version unless
 *                           allow_major) is installed within N days of its
 *                           release: the target is the newest such release,
 *                           the deadline N days after the OLDEST one not
 *                           installed yet (it is the one that has waited
 *                           longest); releases for other models
 *                           only (device-specific ones) do not count;
 *   min_version X by D      version X or later by date D (the target is the
 *                           newest release of X's major line, at least X, the
 *                           device supports);
 *   max_deferrals K         the owner may postpone the install K times;
 *   latest_ring_delay R     the device's ring starts at most R days after a
 *                           release (a tenant's "no later than broad").
 *
 * The plan:
 *   target    the highest version any tenant requires (each tenant's target
 *             is one the device supports);
 *   deadline  the earliest of the requiring tenants' deadline days, at the
 *             install time of day (e.g. 02:00), in the device's zone;
 *   start     the target's release day + the ring's delay, at 00:00 local,
 *             never after the deadline;
 *   install   the owner's choice, else the first install time of day at or
 *             after start (a night, with the default 02:00), never after the
 *             deadline; moving it later is a deferral;
 *   deferrals the fewest any tenant allows (-1: no tenant limits them).
 * Provenance: a bit set of the tenants (input indexes) that drove each. */
#ifndef LMDM_OSUPDATE_H
#define LMDM_OSUPDATE_H

#include <stddef.h>
#include <stdint.h>

#include "lmdm/policy.h" /* lmdm_platform_t */
#include "lmdm/tz.h"

#define LMDM_OSU_MAX_TENANTS 64 /* provenance is a 64-bit set */

/** Compares dotted versions numerically ("17.10" > "17.9", "17.4" == "17.4.0");
 * a non-numeric component compares as 0. <0, 0, >0. */
int lmdm_osversion_cmp(const char *a, const char *b);
/** The major version (first component), or -1. */
int lmdm_osversion_major(const char *v);

/** One OS release of the feed. */
typedef struct lmdm_os_release {
    lmdm_platform_t platform;
    const char *version; /* "17.4.1" */
    const char *build;   /* "21E236", or "" */
    int64_t released;    /* day number of the release date (lmdm/tz.h) */
    int security;        /* it fixes security issues */
    const char *const *devices; /* model identifiers that can install it ("iPhone15,2", "Mac14,2") */
    size_t ndevices;            /* 0: every device of the platform */
} lmdm_os_release_t;

/** Whether a device model can install a release (an unknown model "" or a
 * release without a device list: yes). */
int lmdm_os_release_supports(const lmdm_os_release_t *r, const char *model);

/** One tenant's requirement; a field at its "none" value asks nothing. */
typedef struct lmdm_os_requirement {
    int latest_security_days; /* -1: none */
    int allow_major;          /* latest_security_days may move to a newer major version */
    const char *min_version;  /* NULL: none */
    int64_t min_version_by;   /* day number (with min_version) */
    int max_deferrals;        /* -1: no limit */
    int latest_ring_delay;    /* -1: any ring */
} lmdm_os_requirement_t;

/** An all-"none" requirement. */
void lmdm_os_requirement_init(lmdm_os_requirement_t *r);

typedef enum {
    LMDM_OSU_MECH_DECLARATION = 0, /* com.apple.configuration.softwareupdate.enforcement.specific */
    LMDM_OSU_MECH_COMMAND,         /* ScheduleOSUpdate */
    LMDM_OSU_MECH_REMINDER,        /* nothing the broker may send: the owner is reminded */
} lmdm_osu_mechanism_t;

/** How updates can be enforced on a device (Apple's declarations.tsv and
 * commands.tsv): the declaration on iOS 17+ (device enrollment, supervised
 * or not) and on supervised macOS 14+; ScheduleOSUpdate on other supervised
 * devices; reminders under User Enrollment and on unsupervised devices
 * that take no declaration. An unknown version ("") counts as too old. */
lmdm_osu_mechanism_t lmdm_osu_mechanism(lmdm_platform_t platform, const char *os_version, int user_enrollment,
                                        int supervised);
const char *lmdm_osu_mechanism_name(lmdm_osu_mechanism_t m); /* "declaration", "command", "reminder" */

typedef struct lmdm_os_device {
    lmdm_platform_t platform;
    const char *os_version; /* current; "" unknown (nothing can be planned) */
    const char *model;      /* ProductName, e.g. "iPhone15,2"; "" unknown */
    int user_enrollment, supervised;
    int ring_delay;           /* days after a release that the device's ring starts */
    const lmdm_tz_t *tz;      /* the device's (owner's) zone */
    int32_t install_time;     /* seconds after local midnight of installs and deadlines (e.g. 7200) */
    int64_t owner_install_at; /* UTC instant the owner chose; 0: none */
    int deferrals_used;       /* for the current target */
} lmdm_os_device_t;

/** Where one tenant stands. */
typedef enum {
    LMDM_OSU_T_NONE = 0,    /* it asks nothing */
    LMDM_OSU_T_MET,         /* the device already runs what it asks */
    LMDM_OSU_T_REQUIRED,    /* it needs an update: target and deadline below */
    LMDM_OSU_T_UNSUPPORTED, /* its min_version exists but not for this device's model (security
                             * releases for other models only are not missing: MET) */
    LMDM_OSU_T_NO_RELEASE,  /* its min_version is not in the feed yet */
} lmdm_osu_tenant_state_t;
const char *lmdm_osu_tenant_state_name(lmdm_osu_tenant_state_t s); /* "none", "met", ... "no_release" */

typedef struct lmdm_os_tenant_plan {
    lmdm_osu_tenant_state_t state;
    const lmdm_os_release_t *target; /* REQUIRED */
    int64_t deadline_day;            /* REQUIRED */
} lmdm_os_tenant_plan_t;

/** The device's state under the plan, at `now`. */
typedef enum {
    LMDM_OSU_NONE = 0,    /* no tenant requires an update (none asks, or none can be met) */
    LMDM_OSU_UP_TO_DATE,  /* every asking tenant is met */
    LMDM_OSU_WAITING,     /* an update is required; the device's ring has not started */
    LMDM_OSU_SCHEDULED,   /* the ring has started: the install is scheduled, before the deadline */
    LMDM_OSU_OVERDUE,     /* past the deadline and not installed */
    LMDM_OSU_UNKNOWN,     /* the device's version is not known yet */
} lmdm_osu_state_t;
const char *lmdm_osu_state_name(lmdm_osu_state_t s); /* "none", "up_to_date", "waiting", ... */

typedef struct lmdm_os_plan {
    lmdm_osu_state_t state;
    const lmdm_os_release_t *target; /* NULL unless WAITING, SCHEDULED or OVERDUE */
    int64_t start, deadline, install_at; /* UTC instants */
    char start_local[20], deadline_local[20], install_local[20]; /* "YYYY-MM-DDThh:mm:ss" in the zone */
    int deferrals_allowed; /* -1: unlimited */
    int deferrals_left;    /* -1: unlimited */
    int max_ring_delay;    /* the latest ring the tenants allow (-1: any) */
    int owner_chose;       /* install_at is the owner's (clamped) choice */
    lmdm_osu_mechanism_t mechanism;
    const lmdm_tz_t *tz; /* the device's zone (borrowed from the device); NULL: UTC */
    uint64_t target_from, deadline_from, deferrals_from, ring_from; /* tenant bit sets */
    lmdm_os_tenant_plan_t tenant[LMDM_OSU_MAX_TENANTS];
    size_t ntenants;
} lmdm_os_plan_t;

/** The plan of one device. `releases` are the platform's releases in any
 * order (others are ignored); only those released on or before today (in
 * the device's zone) count. At most LMDM_OSU_MAX_TENANTS requirements. */
void lmdm_os_plan(const lmdm_os_device_t *dev, const lmdm_os_requirement_t *req, size_t nreq,
                  const lmdm_os_release_t *releases, size_t nreleases, int64_t now, lmdm_os_plan_t *out);

/** The latest ring delay the requirements allow: the smallest
 * latest_ring_delay, or -1 when none limits it. */
int lmdm_osu_ring_limit(const lmdm_os_requirement_t *req, size_t nreq);

/** The owner picks an install instant. Allowed when the plan has a target,
 * `when` is in [now, deadline], and, if it is later than the current
 * install_at, a deferral remains. 0 and *deferral = 1 when it uses one; -1
 * with a reason in plain words (static string) otherwise. */
int lmdm_osu_schedule(const lmdm_os_plan_t *p, int64_t now, int64_t when, int *deferral, const char **why);
/** The owner defers: install_at one day later on the zone's wall clock (the
 * same local time across a change of daylight saving time), never past the
 * deadline;
 * 0 and *when, or -1 with the reason (no deferral left, already at the deadline). */
int lmdm_osu_defer(const lmdm_os_plan_t *p, int64_t now, int64_t *when, const char **why);

#endif
