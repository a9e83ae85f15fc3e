/* A tenant's OS-update requirement as JSON (PUT /v1/rules/osupdate) and as a
 * ScheduleOSUpdate command folded into one (tenants/osupdate_json.c):
 *
 *   {"latest_security_within_days": 14,  every security release within N days (0..365)
 *    "allow_major_upgrade": false,        ... may move to a newer major version
 *    "min_version": "17.4",               at least this version ...
 *    "min_version_by": "2027-03-12",      ... by this date (both or neither)
 *    "max_deferrals": 3,                  the owner may postpone at most K times (0..100)
 *    "latest_ring": "broad"}              the device's ring may be no later than this one
 *
 * At least one key; unknown keys, wrong types and values out of range are
 * errors naming the key. The plan's arithmetic is policy/osupdate.c. */
#ifndef LMDM_OSUPDATE_JSON_H
#define LMDM_OSUPDATE_JSON_H

#include <jansson.h>
#include <plist/plist.h>

#include "lmdm/osupdate.h"

/* WARNING: req.min_version points into the struct's own min_version: a
 * copy of the struct must set it again. */
typedef struct lmdm_osu_rule {
    lmdm_os_requirement_t req; /* latest_ring_delay is left -1: rings are resolved by name */
    char min_version[32];
    char latest_ring[40];      /* "" none */
} lmdm_osu_rule_t;

/** Parses and validates; 0, or -1 with a message naming the key. */
int lmdm_osu_rule_from_json(const json_t *j, lmdm_osu_rule_t *out, char *err, size_t errlen);
/** The normalised JSON of a rule (new reference). */
json_t *lmdm_osu_rule_to_json(const lmdm_osu_rule_t *r);

/** How many days a folded ScheduleOSUpdate gives the device. */
#define LMDM_OSU_COMMAND_DAYS 7

/** A tenant's ScheduleOSUpdate (the Command dictionary) folded into a
 * requirement for its enrollment: the first update's ProductVersion by
 * today + LMDM_OSU_COMMAND_DAYS (InstallASAP / InstallForceRestart: today + 1),
 * or, without a version, every security release within as many days;
 * MaxUserDeferrals becomes max_deferrals (a negative one is refused).
 * ProductKey-only updates name a macOS catalog item the broker cannot map
 * to a version: refused. 0, or -1 with the reason. */
int lmdm_osu_rule_from_command(plist_t command, int64_t today, lmdm_osu_rule_t *out, char *err, size_t errlen);

#endif
