/* Civil dates and time zones, as pure arithmetic (policy/tz.c, libc only).
 *
 * A time zone is a POSIX TZ rule string, the form that ends every TZif file
 * of the tz database (e.g. "CET-1CEST,M3.5.0,M10.5.0/3" for Europe/Berlin,
 * "EST5EDT,M3.2.0,M11.1.0" for America/New_York, "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0"
 * for Australia/Lord_Howe, "UTC0"). No global state (no tzset, no TZ
 * variable): the OS-update plan takes the zone as an argument, so tests can
 * run any zone and any DST transition. Reading the rule of a named zone from
 * /usr/share/zoneinfo is I/O and lives in the broker (lmdm_tzfile_rule,
 * broker/core/tzfile.c).
 *
 * Times: "utc" values are seconds since 1970-01-01T00:00:00Z. "local" values
 * are seconds since 1970-01-01T00:00:00 on the zone's wall clock (the local
 * date and time written as if it were UTC). Days are day numbers: days since
 * 1970-01-01 (negative before). */
#ifndef LMDM_TZ_H
#define LMDM_TZ_H

#include <stddef.h>
#include <stdint.h>

/** Day number of a proleptic Gregorian date (m 1..12, d 1..31; not checked). */
int64_t lmdm_days_from_civil(int y, int m, int d);
/** The date of a day number. */
void lmdm_civil_from_days(int64_t days, int *y, int *m, int *d);
/** "YYYY-MM-DD" → day number; 0, or -1 when it is not a valid date
 * (month 1..12, day within the month, leap years). Trailing text is an error. */
int lmdm_date_parse(const char *s, int64_t *days);
/** Writes "YYYY-MM-DDThh:mm:ss" (19 characters + NUL) of a local or UTC seconds value. */
void lmdm_datetime_format(int64_t seconds, char out[20]);
/** Parses "YYYY-MM-DDThh:mm" or "YYYY-MM-DDThh:mm:ss" (an HTML datetime-local value) into
 * seconds; 0, or -1 when invalid. */
int lmdm_datetime_parse(const char *s, int64_t *seconds);

/** A transition rule: Mm.w.d (month, week 1..5 with 5 = last, weekday 0 = Sunday),
 * Jn (Julian day 1..365, no Feb 29) or n (zero-based day 0..365), at `time`
 * seconds of local time (may be negative or > 24 h, as POSIX allows). */
typedef struct lmdm_tz_rule {
    char kind; /* 'M', 'J' or 'n' */
    int month, week, wday, day;
    int32_t time;
} lmdm_tz_rule_t;

typedef struct lmdm_tz {
    int32_t std_offset; /* seconds EAST of UTC (POSIX writes the opposite sign) */
    int32_t dst_offset; /* seconds east of UTC during DST */
    int has_dst;        /* 0: the standard offset all year */
    lmdm_tz_rule_t start, end; /* DST starts at `start` (standard time), ends at `end` (DST time) */
    char std_name[16], dst_name[16];
} lmdm_tz_t;

/** Parses a POSIX TZ rule string. 0, or -1 (with a reason in err) when it is
 * not one. A DST name without rules takes the US default (M3.2.0,M11.1.0) and
 * a DST name without an offset is one hour ahead, as POSIX says. */
int lmdm_tz_parse(const char *posix, lmdm_tz_t *tz, char *err, size_t errlen);
/** Offset east of UTC (seconds) in force at a UTC instant. */
int32_t lmdm_tz_offset_at(const lmdm_tz_t *tz, int64_t utc);
/** UTC instant → local wall-clock seconds. */
int64_t lmdm_tz_to_local(const lmdm_tz_t *tz, int64_t utc);
/** Local wall-clock seconds → UTC instant. A local time that does not exist
 * (skipped by a spring-forward gap) is moved forward by the gap (02:30 on a
 * day clocks go 02:00 → 03:00 is 03:30 DST); one that exists twice (fall-back
 * overlap) is the earlier instant (DST). */
int64_t lmdm_tz_to_utc(const lmdm_tz_t *tz, int64_t local);

#endif
