/* The POSIX TZ rule of a named time zone, read from the tz database's TZif
 * files (broker/core/tzfile.c). This is the I/O half of lmdm/tz.h: policy/
 * takes the rule string, the broker finds it. Every TZif file of version 2
 * or later ends with "\n<rule>\n", the rule that governs every instant after
 * its last listed transition (e.g. "CET-1CEST,M3.5.0,M10.5.0/3" for
 * Europe/Berlin); lmdm uses only that rule, so plans are right for the
 * present and the future, not for instants before the zone's last
 * historical change. */
#ifndef LMDM_TZFILE_H
#define LMDM_TZFILE_H

#include <stddef.h>

#include "lmdm/common.h"

#define LMDM_TZFILE_DIR "/usr/share/zoneinfo"
#define LMDM_TZ_NAME_MAX 64 /* characters of a zone name */

/** 1 if `name` is an acceptable zone name: 1..LMDM_TZ_NAME_MAX characters
 * among letters, digits, '_', '-', '+' and '/', no leading '/', no empty
 * component and no "." or ".." component ("UTC", "Europe/Berlin",
 * "Etc/GMT+5"). It says nothing about whether the zone exists. */
int lmdm_tzfile_name_ok(const char *name);

/** The POSIX rule of zone `name` (e.g. "Europe/Berlin") from
 * LMDM_TZFILE_DIR/<name>, NUL-terminated into posix[len]. The rule is
 * checked with lmdm_tz_parse. 0, or a negative LMDM_ERR_* with a reason in
 * err: "unknown time zone 'X'" (LMDM_ERR_NOT_FOUND, also for a bad name:
 * LMDM_ERR_INVALID), "not a TZif file", "no POSIX rule (TZif v1)", a rule
 * that does not fit (LMDM_ERR_TOO_LARGE). */
int lmdm_tzfile_rule(const char *name, char *posix, size_t len, char *err, size_t errlen) LMDM_MUSTCHECK;

/** The zone `name` as lmdm/tz.h needs it: lmdm_tzfile_rule, then
 * lmdm_tz_parse. Zones found are kept for the life of the process (at most
 * LMDM_TZ_CACHE of them; any thread), so only the first use of a zone reads
 * its file: the owner pages call this on an event-loop thread. A tzdata
 * update is seen after a restart. 0, or lmdm_tzfile_rule's error. */
#define LMDM_TZ_CACHE 64
struct lmdm_tz;
int lmdm_tzfile_zone(const char *name, struct lmdm_tz *out, char *err, size_t errlen) LMDM_MUSTCHECK;

/** The same, from the zone files under `dir` instead of LMDM_TZFILE_DIR (tests). */
int lmdm_tzfile_rule_in(const char *dir, const char *name, char *posix, size_t len, char *err,
                        size_t errlen) LMDM_MUSTCHECK;

#endif
