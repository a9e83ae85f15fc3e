/* Civil dates and POSIX TZ rules as pure arithmetic (include/lmdm/tz.h).
 *
 * No tzset, no TZ variable, no localtime: a zone is the parsed rule string
 * (the footer of a TZif file) and every conversion takes it as an argument.
 * Whether DST is in force at an instant is decided from the transitions of
 * three consecutive years, so that rules whose time spills into the next or
 * previous day (POSIX allows -167h..167h) and southern-hemisphere zones
 * (DST across the new year) need no special case. */
#include "lmdm/tz.h"

#include <stdio.h>
#include <string.h>

#define DAY 86400

/* ------------------------------------------------------------ civil dates */

/* Day number from a proleptic Gregorian date: years counted from March so
 * that the leap day is the last of the year; 400-year eras of 146097 days. */
int64_t lmdm_days_from_civil(int y, int m, int d)
{
    int64_t yy = (int64_t)y - (m <= 2);
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    int64_t yoe = yy - era * 400;                                  /* 0..399 */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* 0..146096 */
    return era * 146097 + doe - 719468;
}

void lmdm_civil_from_days(int64_t days, int *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t dd = doy - (153 * mp + 2) / 5 + 1;
    int64_t mm = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yoe + era * 400 + (mm <= 2));
    *m = (int)mm;
    *d = (int)dd;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Exactly n digits at s into *v; 0 or -1. */
static int digits(const char *s, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 0;
}

/* "YYYY-MM-DD" at s (not necessarily the whole string) into a day number. */
static int date_prefix(const char *s, int64_t *days)
{
    int y, m, d;
    if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &m) || s[7] != '-' || digits(s + 8, 2, &d))
        return -1;
    if (m < 1 || m > 12 || d < 1 || d > month_days(y, m)) return -1;
    *days = lmdm_days_from_civil(y, m, d);
    return 0;
}

int lmdm_date_parse(const char *s, int64_t *days)
{
    int64_t v;
    if (!s || strlen(s) != 10 || date_prefix(s, &v)) return -1;
    *days = v;
    return 0;
}

static void put_digits(char *out, int64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* Years outside 0000..9999 do not fit the format: they are clamped to its
 * first and last second. */
void lmdm_datetime_format(int64_t seconds, char out[20])
{
    static const int64_t lo = -62167219200; /* 0000-01-01T00:00:00 */
    static const int64_t hi = 253402300799; /* 9999-12-31T23:59:59 */
    if (seconds < lo) seconds = lo;
    if (seconds > hi) seconds = hi;
    int64_t days = floor_div(seconds, DAY), rem = seconds - days * DAY;
    int y, m, d;
    lmdm_civil_from_days(days, &y, &m, &d);
    memcpy(out, "0000-00-00T00:00:00", 20);
    put_digits(out, y, 4);
    put_digits(out + 5, m, 2);
    put_digits(out + 8, d, 2);
    put_digits(out + 11, rem / 3600, 2);
    put_digits(out + 14, rem / 60 % 60, 2);
    put_digits(out + 17, rem % 60, 2);
}

int lmdm_datetime_parse(const char *s, int64_t *seconds)
{
    int64_t days;
    int h, mi, sec = 0;
    if (!s) return -1;
    size_t n = strlen(s);
    if (n != 16 && n != 19) return -1;
    if (date_prefix(s, &days) || s[10] != 'T' || digits(s + 11, 2, &h) || s[13] != ':' ||
        digits(s + 14, 2, &mi))
        return -1;
    if (n == 19 && (s[16] != ':' || digits(s + 17, 2, &sec))) return -1;
    if (h > 23 || mi > 59 || sec > 59) return -1;
    *seconds = days * DAY + h * 3600 + mi * 60 + sec;
    return 0;
}

/* ------------------------------------------------------- POSIX TZ parsing */

typedef struct {
    const char *p;
    char *err;
    size_t errlen;
} parser_t;

static int fail(parser_t *ps, const char *why)
{
    if (ps->err && ps->errlen) snprintf(ps->err, ps->errlen, "%s", why);
    return -1;
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A zone abbreviation: 3 or more letters, or <...> with letters, digits, + and -. */
static int parse_name(parser_t *ps, char out[16])
{
    const char *s = ps->p;
    size_t n = 0;
    if (*s == '<') {
        s++;
        while (is_alpha(s[n]) || is_digit(s[n]) || s[n] == '+' || s[n] == '-')
            n++;
        if (s[n] != '>') return fail(ps, "unterminated <name>");
        ps->p = s + n + 1;
    } else {
        while (is_alpha(s[n]))
            n++;
        ps->p = s + n;
    }
    if (n < 3) return fail(ps, "a zone name needs at least 3 characters");
    if (n > 15) return fail(ps, "zone name too long");
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* At most `max` digits of a number no larger than `limit`. */
static int parse_num(parser_t *ps, int max, int limit, int *v)
{
    int x = 0, n = 0;
    while (is_digit(*ps->p)) {
        if (++n > max) return fail(ps, "number too long");
        x = x * 10 + (*ps->p++ - '0');
    }
    if (n == 0) return fail(ps, "number expected");
    if (x > limit) return fail(ps, "number out of range");
    *v = x;
    return 0;
}

/* [+|-]hh[:mm[:ss]] with hh <= max_hours; seconds, with the sign. */
static int parse_hms(parser_t *ps, int max_hours, int32_t *out)
{
    int sign = 1, h, m = 0, s = 0;
    if (*ps->p == '+' || *ps->p == '-') sign = *ps->p++ == '-' ? -1 : 1;
    if (parse_num(ps, 3, max_hours, &h)) return -1;
    if (*ps->p == ':') {
        ps->p++;
        if (parse_num(ps, 2, 59, &m)) return -1;
        if (*ps->p == ':') {
            ps->p++;
            if (parse_num(ps, 2, 59, &s)) return -1;
        }
    }
    *out = sign * (h * 3600 + m * 60 + s);
    return 0;
}

/* Mm.w.d, Jn or n, then an optional /time (default 02:00). */
static int parse_rule(parser_t *ps, lmdm_tz_rule_t *r)
{
    memset(r, 0, sizeof(*r));
    if (*ps->p == 'M') {
        ps->p++;
        r->kind = 'M';
        if (parse_num(ps, 2, 12, &r->month) || r->month < 1) return fail(ps, "bad month in Mm.w.d");
        if (*ps->p++ != '.') return fail(ps, "'.' expected in Mm.w.d");
        if (parse_num(ps, 1, 5, &r->week) || r->week < 1) return fail(ps, "bad week in Mm.w.d");
        if (*ps->p++ != '.') return fail(ps, "'.' expected in Mm.w.d");
        if (parse_num(ps, 1, 6, &r->wday)) return fail(ps, "bad weekday in Mm.w.d");
    } else if (*ps->p == 'J') {
        ps->p++;
        r->kind = 'J';
        if (parse_num(ps, 3, 365, &r->day) || r->day < 1) return fail(ps, "bad Julian day (1..365)");
    } else if (is_digit(*ps->p)) {
        r->kind = 'n';
        if (parse_num(ps, 3, 365, &r->day)) return fail(ps, "bad day (0..365)");
    } else {
        return fail(ps, "rule expected (Mm.w.d, Jn or n)");
    }
    r->time = 7200;
    if (*ps->p == '/') {
        ps->p++;
        if (parse_hms(ps, 167, &r->time)) return fail(ps, "bad rule time");
    }
    return 0;
}

int lmdm_tz_parse(const char *posix, lmdm_tz_t *tz, char *err, size_t errlen)
{
    parser_t ps = {posix, err, errlen};
    lmdm_tz_t t;
    int32_t off;
    memset(&t, 0, sizeof(t));
    if (err && errlen) err[0] = '\0';
    if (!posix || !*posix) return fail(&ps, "empty time zone rule");
    if (parse_name(&ps, t.std_name)) return -1;
    if (parse_hms(&ps, 24, &off)) return fail(&ps, "bad standard offset");
    t.std_offset = -off;
    t.dst_offset = t.std_offset;
    if (*ps.p) {
        t.has_dst = 1;
        if (parse_name(&ps, t.dst_name)) return -1;
        t.dst_offset = t.std_offset + 3600;
        if (*ps.p && *ps.p != ',') {
            if (parse_hms(&ps, 24, &off)) return fail(&ps, "bad DST offset");
            t.dst_offset = -off;
        }
        if (*ps.p == ',') {
            ps.p++;
            if (parse_rule(&ps, &t.start)) return -1;
            if (*ps.p++ != ',') return fail(&ps, "',' expected between the DST rules");
            if (parse_rule(&ps, &t.end)) return -1;
        } else {
            /* POSIX leaves this to the implementation; the US rule is what
             * glibc and the tz database's posixrules use. */
            t.start = (lmdm_tz_rule_t){'M', 3, 2, 0, 0, 7200};
            t.end = (lmdm_tz_rule_t){'M', 11, 1, 0, 0, 7200};
        }
        if (*ps.p) return fail(&ps, "trailing characters after the rule");
    }
    *tz = t;
    return 0;
}

/* -------------------------------------------------------- offsets in force */

/* The local day of rule r in year y (day number). */
static int64_t rule_day(const lmdm_tz_rule_t *r, int y)
{
    if (r->kind == 'J') {
        int64_t d = lmdm_days_from_civil(y, 1, 1) + r->day - 1;
        return d + (is_leap(y) && r->day >= 60); /* Feb 29 is never counted */
    }
    if (r->kind == 'n') return lmdm_days_from_civil(y, 1, 1) + r->day;
    int64_t first = lmdm_days_from_civil(y, r->month, 1);
    int wd = (int)((first % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
    int64_t d = first + (r->wday - wd + 7) % 7 + 7 * (r->week - 1);
    while (d >= first + month_days(y, r->month))
        d -= 7;
    return d;
}

/* The UTC instant of a transition: the rule's local time under `offset`. */
static int64_t transition(const lmdm_tz_rule_t *r, int y, int32_t offset)
{
    return rule_day(r, y) * DAY + r->time - offset;
}

int32_t lmdm_tz_offset_at(const lmdm_tz_t *tz, int64_t utc)
{
    if (!tz->has_dst) return tz->std_offset;
    /* Far outside any plan (beyond +-300,000 years): clamped, so that the
     * year arithmetic below cannot overflow. */
    const int64_t far = 10000000000000;
    if (utc > far) utc = far;
    if (utc < -far) utc = -far;
    int y, m, d;
    lmdm_civil_from_days(floor_div(utc + tz->std_offset, DAY), &y, &m, &d);
    /* The last transition at or before utc among years y-1..y+1, in the
     * order start(y-1), end(y-1), start(y), ...; on a tie the later one in
     * that order wins (a DST that ends exactly when the next starts stays). */
    int found = 0, dst = 0;
    int64_t best = 0;
    for (int yy = y - 1; yy <= y + 1; yy++) {
        int64_t s = transition(&tz->start, yy, tz->std_offset);
        int64_t e = transition(&tz->end, yy, tz->dst_offset);
        if (s <= utc && (!found || s >= best)) found = 1, best = s, dst = 1;
        if (e <= utc && (!found || e >= best)) found = 1, best = e, dst = 0;
    }
    return dst ? tz->dst_offset : tz->std_offset;
}

int64_t lmdm_tz_to_local(const lmdm_tz_t *tz, int64_t utc)
{
    return utc + lmdm_tz_offset_at(tz, utc);
}

int64_t lmdm_tz_to_utc(const lmdm_tz_t *tz, int64_t local)
{
    if (!tz->has_dst || tz->std_offset == tz->dst_offset) return local - tz->std_offset;
    int64_t a = local - tz->std_offset, b = local - tz->dst_offset;
    int ok_a = lmdm_tz_offset_at(tz, a) == tz->std_offset;
    int ok_b = lmdm_tz_offset_at(tz, b) == tz->dst_offset;
    int64_t lo = a < b ? a : b, hi = a < b ? b : a;
    if (ok_a && ok_b) return lo; /* exists twice: the earlier instant */
    if (ok_a) return a;
    if (ok_b) return b;
    /* Skipped by a gap: read with the offset before the gap (the smaller
     * one), which lands as far after the transition as local is after the
     * gap's start: the time moved forward by the gap. */
    return hi;
}
