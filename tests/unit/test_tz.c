/* Civil dates and POSIX time zones (policy/tz.c) and the zone-file reader
 * (broker/core/tzfile.c): date arithmetic and parsing with invalid input,
 * POSIX rule strings good and hostile, gaps and overlaps, and a cross-check
 * against glibc's localtime_r for eight zones over 2027..2031 (after their
 * last historical changes, so the TZif footer rule governs). Only this test
 * sets TZ and calls tzset: policy/ never does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "lmdm/tz.h"
#include "lmdm/tzfile.h"

#define H 3600
#define DAY 86400

/* UTC or local seconds of a civil date and time. */
static int64_t at(int y, int m, int d, int h, int mi)
{
    return lmdm_days_from_civil(y, m, d) * DAY + h * H + mi * 60;
}

static void test_civil(void)
{
    CHECK_INT_EQ(lmdm_days_from_civil(1970, 1, 1), 0);
    CHECK_INT_EQ(lmdm_days_from_civil(1969, 12, 31), -1);
    CHECK_INT_EQ(lmdm_days_from_civil(2000, 3, 1), 11017);
    CHECK_INT_EQ(lmdm_days_from_civil(2024, 2, 29), 19782);
    CHECK_INT_EQ(lmdm_days_from_civil(2027, 3, 28), 20905);
    CHECK_INT_EQ(lmdm_days_from_civil(1600, 2, 29), -135081);
    CHECK_INT_EQ(lmdm_days_from_civil(1, 1, 1), -719162);
    CHECK_INT_EQ(lmdm_days_from_civil(9999, 12, 31), 2932896);
    /* Every day from 1500 to 2500 round-trips and follows the previous one. */
    int bad = 0, py = 1499, pm = 12, pd = 31;
    for (int64_t d = lmdm_days_from_civil(1500, 1, 1); d <= lmdm_days_from_civil(2500, 12, 31); d++) {
        int y, m, dd;
        lmdm_civil_from_days(d, &y, &m, &dd);
        int next = (y == py && m == pm && dd == pd + 1) || (y == py && m == pm + 1 && dd == 1) ||
                   (y == py + 1 && m == 1 && dd == 1 && pm == 12);
        if (lmdm_days_from_civil(y, m, dd) != d || !next) bad++;
        py = y, pm = m, pd = dd;
    }
    CHECK_INT_EQ(bad, 0);
    int y, m, d;
    lmdm_civil_from_days(-719162, &y, &m, &d);
    CHECK(y == 1 && m == 1 && d == 1);
    lmdm_civil_from_days(19782, &y, &m, &d);
    CHECK(y == 2024 && m == 2 && d == 29);
}

static void test_date_parse(void)
{
    int64_t v = 12345;
    CHECK_INT_EQ(lmdm_date_parse("2024-02-29", &v), 0);
    CHECK_INT_EQ(v, 19782);
    CHECK_INT_EQ(lmdm_date_parse("1970-01-01", &v), 0);
    CHECK_INT_EQ(v, 0);
    CHECK_INT_EQ(lmdm_date_parse("2000-02-29", &v), 0);
    CHECK_INT_EQ(v, 11016);
    v = 777;
    const char *bad[] = {"2023-02-29",  "1900-02-29",  "2024-04-31", "2024-13-01", "2024-00-10",
                         "2024-01-00",  "2024-1-01",   "2024-01-1",  "24-01-01",   "2024-01-01x",
                         "2024-01-01 ", " 2024-01-01", "",           "2024/01/01", "2024-0a-01",
                         "abcd-01-01",  "2024-01-32",  "+024-01-01"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (lmdm_date_parse(bad[i], &v) != -1) harness_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
        harness_checks++;
    }
    CHECK_INT_EQ(v, 777); /* untouched on error */
    CHECK_INT_EQ(lmdm_date_parse(NULL, &v), -1);
}

static void test_datetime(void)
{
    char out[20];
    lmdm_datetime_format(0, out);
    CHECK_STR_EQ(out, "1970-01-01T00:00:00");
    lmdm_datetime_format(-1, out);
    CHECK_STR_EQ(out, "1969-12-31T23:59:59");
    lmdm_datetime_format(1806197400, out);
    CHECK_STR_EQ(out, "2027-03-28T01:30:00");
    lmdm_datetime_format(at(2024, 2, 29, 23, 59) + 58, out);
    CHECK_STR_EQ(out, "2024-02-29T23:59:58");
    lmdm_datetime_format(INT64_MIN / 2, out); /* clamped, never past 19 characters */
    CHECK_STR_EQ(out, "0000-01-01T00:00:00");
    lmdm_datetime_format(INT64_MAX / 2, out);
    CHECK_STR_EQ(out, "9999-12-31T23:59:59");

    int64_t s = 1;
    CHECK_INT_EQ(lmdm_datetime_parse("2027-03-28T02:30", &s), 0);
    CHECK_INT_EQ(s, 1806201000);
    CHECK_INT_EQ(lmdm_datetime_parse("2027-03-28T02:30:59", &s), 0);
    CHECK_INT_EQ(s, 1806201059);
    CHECK_INT_EQ(lmdm_datetime_parse("1969-12-31T23:59:59", &s), 0);
    CHECK_INT_EQ(s, -1);
    /* Round trip every 7 hours 13 minutes over 1900..2100. */
    int bad = 0;
    for (int64_t t = at(1900, 1, 1, 0, 0); t < at(2100, 1, 1, 0, 0); t += 7 * H + 13 * 60 + 7) {
        int64_t back;
        lmdm_datetime_format(t, out);
        if (strlen(out) != 19 || lmdm_datetime_parse(out, &back) != 0 || back != t) bad++;
    }
    CHECK_INT_EQ(bad, 0);
    s = 42;
    const char *inv[] = {"2027-03-28T24:00",
                         "2027-03-28T23:60",
                         "2027-03-28T02:30:60",
                         "2027-03-28 02:30",
                         "2027-03-28T2:30",
                         "2027-03-28T02:3",
                         "2027-03-28T02:30:",
                         "2027-03-28T02:30:5",
                         "2027-02-29T02:30",
                         "2027-03-28",
                         "2027-03-28T02:30Z",
                         "2027-03-28T02:30:00Z",
                         "2027-03-28T02:30:00.5",
                         "",
                         "T02:30",
                         "2027-03-28t02:30"};
    for (size_t i = 0; i < sizeof(inv) / sizeof(inv[0]); i++) {
        if (lmdm_datetime_parse(inv[i], &s) != -1)
            harness_fail(__FILE__, __LINE__, "accepted \"%s\"", inv[i]);
        harness_checks++;
    }
    CHECK_INT_EQ(s, 42);
}

static lmdm_tz_t parse_ok(const char *posix)
{
    lmdm_tz_t tz;
    char err[128] = "";
    memset(&tz, 0x5a, sizeof(tz));
    if (lmdm_tz_parse(posix, &tz, err, sizeof(err)) != 0)
        harness_fail(__FILE__, __LINE__, "\"%s\" rejected: %s", posix, err);
    harness_checks++;
    return tz;
}

static void check_rule(const lmdm_tz_rule_t *r, char kind, int month, int week, int wday, int day,
                       int32_t time, int line)
{
    harness_checks++;
    if (r->kind != kind || r->month != month || r->week != week || r->wday != wday || r->day != day ||
        r->time != time)
        harness_fail(__FILE__, line, "rule %c %d.%d.%d day %d time %d, expected %c %d.%d.%d day %d time %d",
                     r->kind, r->month, r->week, r->wday, r->day, (int)r->time, kind, month, week, wday, day,
                     (int)time);
}
#define RULE(r, ...) check_rule(r, __VA_ARGS__, __LINE__)

static void test_posix_parse(void)
{
    lmdm_tz_t tz = parse_ok("CET-1CEST,M3.5.0,M10.5.0/3");
    CHECK_STR_EQ(tz.std_name, "CET");
    CHECK_STR_EQ(tz.dst_name, "CEST");
    CHECK_INT_EQ(tz.std_offset, 3600);
    CHECK_INT_EQ(tz.dst_offset, 7200);
    CHECK_INT_EQ(tz.has_dst, 1);
    RULE(&tz.start, 'M', 3, 5, 0, 0, 7200);
    RULE(&tz.end, 'M', 10, 5, 0, 0, 10800);

    tz = parse_ok("EST5EDT"); /* US rule by default, DST one hour ahead */
    CHECK_INT_EQ(tz.std_offset, -5 * H);
    CHECK_INT_EQ(tz.dst_offset, -4 * H);
    RULE(&tz.start, 'M', 3, 2, 0, 0, 7200);
    RULE(&tz.end, 'M', 11, 1, 0, 0, 7200);

    tz = parse_ok("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
    CHECK_STR_EQ(tz.std_name, "+1030");
    CHECK_STR_EQ(tz.dst_name, "+11");
    CHECK_INT_EQ(tz.std_offset, 10 * H + 1800);
    CHECK_INT_EQ(tz.dst_offset, 11 * H);

    tz = parse_ok("<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45");
    CHECK_INT_EQ(tz.std_offset, 12 * H + 2700);
    CHECK_INT_EQ(tz.dst_offset, 13 * H + 2700);
    RULE(&tz.start, 'M', 9, 5, 0, 0, 2 * H + 2700);
    RULE(&tz.end, 'M', 4, 1, 0, 0, 3 * H + 2700);

    tz = parse_ok("UTC0");
    CHECK_INT_EQ(tz.has_dst, 0);
    CHECK_INT_EQ(tz.std_offset, 0);
    CHECK_STR_EQ(tz.dst_name, "");
    tz = parse_ok("<-03>3");
    CHECK_INT_EQ(tz.std_offset, -3 * H);
    CHECK_INT_EQ(tz.has_dst, 0);
    tz = parse_ok("IST-5:30");
    CHECK_INT_EQ(tz.std_offset, 5 * H + 1800);
    tz = parse_ok("ABC+3:04:05");
    CHECK_INT_EQ(tz.std_offset, -(3 * H + 4 * 60 + 5));

    /* Julian and zero-based days, negative and > 24 h times (RFC 8536). */
    tz = parse_ok("XXX3YYY2,J60/-1:30,300/167");
    CHECK_INT_EQ(tz.std_offset, -3 * H);
    CHECK_INT_EQ(tz.dst_offset, -2 * H);
    RULE(&tz.start, 'J', 0, 0, 0, 60, -(H + 1800));
    RULE(&tz.end, 'n', 0, 0, 0, 300, 167 * H);
    tz = parse_ok("AAA-2BBB,J1/0,J365/25"); /* DST all year (RFC 8536's example form) */
    RULE(&tz.start, 'J', 0, 0, 0, 1, 0);
    RULE(&tz.end, 'J', 0, 0, 0, 365, 25 * H);
    CHECK_INT_EQ(lmdm_tz_offset_at(&tz, at(2027, 7, 1, 0, 0)), 3 * H);
    CHECK_INT_EQ(lmdm_tz_offset_at(&tz, at(2028, 1, 1, 0, 0) - 2 * H), 3 * H); /* across the new year */
    CHECK_INT_EQ(lmdm_tz_offset_at(&tz, at(2028, 1, 1, 0, 0) + 2 * H), 3 * H);

    const char *bad[] = {
        "",
        "A0",
        "AB0",
        "ABC",
        "ABC+",
        "ABC25",
        "ABC-25",
        "ABC1:60",
        "ABC1:00:60",
        "ABC1234",
        "ABC99999999999999999999",
        "<AB>0",
        "<ABC0",
        "<AB C>0",
        "<ABCDEFGHIJKLMNOPQ>1",
        "ABCDEFGHIJKLMNOPQ1",
        ":Europe/Berlin",
        "Europe/Berlin",
        "CET-1CEST,",
        "CET-1CEST,M3.5.0",
        "CET-1CEST,M3.5.0,",
        "CET-1CEST,M3.5.0,M10.5.0,",
        "CET-1CEST,M13.1.0,M10.5.0",
        "CET-1CEST,M0.1.0,M10.5.0",
        "CET-1CEST,M3.6.0,M10.5.0",
        "CET-1CEST,M3.0.0,M10.5.0",
        "CET-1CEST,M3.5.7,M10.5.0",
        "CET-1CEST,M3.5,M10.5.0",
        "CET-1CEST,M3..0,M10.5.0",
        "CET-1CEST,M3.5.0,M10.5.0/168",
        "CET-1CEST,M3.5.0,M10.5.0/-168",
        "CET-1CEST,M3.5.0,M10.5.0/3x",
        "CET-1CEST,M3.5.0/,M10.5.0",
        "CET-1CEST,J0,J365",
        "CET-1CEST,J366,J365",
        "CET-1CEST,366,J365",
        "CET-1CEST,X1,J365",
        "CET-1CEST-25,M3.5.0,M10.5.0",
        "CET-1CE,M3.5.0,M10.5.0",
        "CET-1CEST;M3.5.0,M10.5.0",
        "CET-1 ",
        "CET-1\n",
        "CET-1CEST,M3.5.0,M10.5.0\xff",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lmdm_tz_t t;
        char err[128] = "";
        memset(&t, 0x33, sizeof(t));
        int rc = lmdm_tz_parse(bad[i], &t, err, sizeof(err));
        harness_checks++;
        if (rc != -1 || err[0] == '\0')
            harness_fail(__FILE__, __LINE__, "\"%s\": rc %d, err \"%s\"", bad[i], rc, err);
        CHECK_INT_EQ(t.std_offset, 0x33333333); /* *tz untouched on error */
    }
    CHECK_INT_EQ(lmdm_tz_parse(NULL, &tz, NULL, 0), -1);
    char tiny[4];
    CHECK_INT_EQ(lmdm_tz_parse("X", &tz, tiny, sizeof(tiny)), -1);
    CHECK_INT_EQ((int)strlen(tiny), 3);
}

static lmdm_tz_t zone(const char *name)
{
    char rule[128], err[256];
    lmdm_tz_t tz;
    memset(&tz, 0, sizeof(tz));
    if (lmdm_tzfile_rule(name, rule, sizeof(rule), err, sizeof(err)) != 0) {
        harness_fail(__FILE__, __LINE__, "%s: %s", name, err);
        return tz;
    }
    if (lmdm_tz_parse(rule, &tz, err, sizeof(err)) != 0)
        harness_fail(__FILE__, __LINE__, "%s: %s", rule, err);
    return tz;
}

static void test_gap_overlap(void)
{
    lmdm_tz_t berlin = zone("Europe/Berlin");
    /* 2027-03-28: 02:00 CET -> 03:00 CEST at 01:00Z. 02:30 does not exist:
     * it is 03:30 CEST = 01:30Z. */
    CHECK_INT_EQ(lmdm_tz_to_utc(&berlin, at(2027, 3, 28, 2, 30)), 1806197400);
    CHECK_INT_EQ(lmdm_tz_to_utc(&berlin, at(2027, 3, 28, 2, 0)), at(2027, 3, 28, 1, 0));
    CHECK_INT_EQ(lmdm_tz_to_utc(&berlin, at(2027, 3, 28, 1, 59)), at(2027, 3, 28, 0, 59));
    CHECK_INT_EQ(lmdm_tz_to_utc(&berlin, at(2027, 3, 28, 3, 0)), at(2027, 3, 28, 1, 0));
    CHECK_INT_EQ(lmdm_tz_to_local(&berlin, 1806197400), at(2027, 3, 28, 3, 30));
    CHECK_INT_EQ(lmdm_tz_offset_at(&berlin, at(2027, 3, 28, 1, 0) - 1), H);
    CHECK_INT_EQ(lmdm_tz_offset_at(&berlin, at(2027, 3, 28, 1, 0)), 2 * H);
    /* 2027-10-31: 03:00 CEST -> 02:00 CET at 01:00Z. 02:30 exists twice:
     * the earlier, CEST, is 00:30Z. */
    CHECK_INT_EQ(lmdm_tz_to_utc(&berlin, at(2027, 10, 31, 2, 30)), 1824942600);
    CHECK_INT_EQ(lmdm_tz_to_utc(&berlin, at(2027, 10, 31, 3, 0)), at(2027, 10, 31, 2, 0));
    CHECK_INT_EQ(lmdm_tz_to_utc(&berlin, at(2027, 10, 31, 1, 59)), at(2027, 10, 30, 23, 59));
    CHECK_INT_EQ(lmdm_tz_to_local(&berlin, at(2027, 10, 31, 1, 30)), at(2027, 10, 31, 2, 30));

    lmdm_tz_t ny = zone("America/New_York");
    CHECK_INT_EQ(lmdm_tz_to_utc(&ny, at(2027, 3, 14, 2, 30)), 1805009400); /* 03:30 EDT */
    CHECK_INT_EQ(lmdm_tz_to_utc(&ny, at(2027, 11, 7, 1, 30)), 1825565400); /* 01:30 EDT */

    /* Lord Howe: half-hour DST. 2027-10-03 02:00 -> 02:30; 2027-04-04 02:00 -> 01:30. */
    lmdm_tz_t lh = zone("Australia/Lord_Howe");
    CHECK_INT_EQ(lmdm_tz_to_utc(&lh, at(2027, 10, 3, 2, 15)), 1822491900); /* 02:45 +11 */
    CHECK_INT_EQ(lmdm_tz_to_local(&lh, 1822491900), at(2027, 10, 3, 2, 45));
    CHECK_INT_EQ(lmdm_tz_to_utc(&lh, at(2027, 4, 4, 1, 45)), 1806763500);            /* 01:45 +11 */
    CHECK_INT_EQ(lmdm_tz_to_utc(&lh, at(2027, 4, 4, 2, 0)), at(2027, 4, 3, 15, 30)); /* once, +10:30 */

    /* Sydney, southern hemisphere: DST in January, not in July. */
    lmdm_tz_t syd = zone("Australia/Sydney");
    CHECK_INT_EQ(lmdm_tz_offset_at(&syd, at(2028, 1, 15, 0, 0)), 11 * H);
    CHECK_INT_EQ(lmdm_tz_offset_at(&syd, at(2028, 7, 15, 0, 0)), 10 * H);
    CHECK_INT_EQ(lmdm_tz_offset_at(&syd, at(2027, 12, 31, 13, 0)), 11 * H); /* the new year, local */

    /* Absurd instants neither crash nor overflow (UBSan builds check). */
    int32_t far_future = lmdm_tz_offset_at(&berlin, INT64_MAX),
            far_past = lmdm_tz_offset_at(&berlin, INT64_MIN);
    CHECK(far_future == H || far_future == 2 * H);
    CHECK(far_past == H || far_past == 2 * H);

    lmdm_tz_t kol = zone("Asia/Kolkata");
    CHECK_INT_EQ(lmdm_tz_to_utc(&kol, at(2027, 3, 28, 2, 30)), at(2027, 3, 27, 21, 0));
}

static int gmtoff_glibc(time_t t, int64_t *local)
{
    struct tm tm;
    if (!localtime_r(&t, &tm)) return -1;
    *local = at(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min) + tm.tm_sec;
    return 0;
}

/* lmdm against glibc for one zone: every hour and every quarter hour of
 * 2027..2031 UTC, and each second on both sides of every change of offset
 * glibc shows (found by bisection). Also to_utc(to_local(t)): t, or the
 * earlier instant of the same wall-clock time. */
static void cross_check(const char *name)
{
    char env[80];
    snprintf(env, sizeof(env), ":%s", name);
    setenv("TZ", env, 1);
    tzset();
    lmdm_tz_t tz = zone(name);
    long mismatches = 0, changes = 0, samples = 0, roundtrip_bad = 0;
    int64_t prev_off = 0;
    int64_t first_bad = 0;
    for (int64_t t = at(2027, 1, 1, 0, 0); t < at(2032, 1, 1, 0, 0); t += 900) {
        int64_t gl;
        if (gmtoff_glibc((time_t)t, &gl) != 0) {
            mismatches++;
            continue;
        }
        samples++;
        int64_t ours = lmdm_tz_to_local(&tz, t);
        if (ours != gl && mismatches++ == 0) first_bad = t;
        int64_t back = lmdm_tz_to_utc(&tz, ours);
        if (back > t || lmdm_tz_to_local(&tz, back) != ours) roundtrip_bad++;
        int64_t off = gl - t;
        if (t > at(2027, 1, 1, 0, 0) && off != prev_off) { /* the change is in (t - 900, t] */
            int64_t lo = t - 900, hi = t;
            while (hi - lo > 1) {
                int64_t mid = lo + (hi - lo) / 2, g;
                gmtoff_glibc((time_t)mid, &g);
                if (g - mid == prev_off)
                    lo = mid;
                else
                    hi = mid;
            }
            changes++;
            if (lmdm_tz_offset_at(&tz, lo) != prev_off || lmdm_tz_offset_at(&tz, hi) != off) {
                if (mismatches++ == 0) first_bad = hi;
            }
        }
        prev_off = off;
    }
    if (mismatches) {
        char when[20];
        lmdm_datetime_format(first_bad, when);
        harness_fail(__FILE__, __LINE__, "%s: %ld mismatches with glibc, first at %sZ", name, mismatches,
                     when);
    }
    harness_checks++;
    CHECK_INT_EQ(roundtrip_bad, 0);
    CHECK_INT_EQ(samples, 5 * 365 * 96 + 96); /* 2028 is a leap year */
    /* Two changes a year in the zones with DST. */
    int dst = strcmp(name, "Asia/Kolkata") && strcmp(name, "America/Sao_Paulo") && strcmp(name, "UTC");
    if (changes != (dst ? 10 : 0)) harness_fail(__FILE__, __LINE__, "%s: %ld offset changes", name, changes);
    harness_checks++;
}

static void test_against_glibc(void)
{
    const char *zones[] = {"Europe/Berlin", "America/New_York", "Australia/Sydney",  "Australia/Lord_Howe",
                           "Asia/Kolkata",  "Pacific/Chatham",  "America/Sao_Paulo", "UTC"};
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
        cross_check(zones[i]);
    unsetenv("TZ");
    tzset();
}

/* ------------------------------------------------------------- tzfile */

static char scratch[256];

static void write_file(const char *name, const void *data, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", scratch, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

static void test_tzfile(void)
{
    char rule[128], err[256];
    CHECK_INT_EQ(lmdm_tzfile_rule("Europe/Berlin", rule, sizeof(rule), err, sizeof(err)), 0);
    CHECK_STR_EQ(rule, "CET-1CEST,M3.5.0,M10.5.0/3");
    CHECK_INT_EQ(lmdm_tzfile_rule("UTC", rule, sizeof(rule), err, sizeof(err)), 0);
    CHECK_STR_EQ(rule, "UTC0");
    CHECK_INT_EQ(lmdm_tzfile_rule("Australia/Lord_Howe", rule, sizeof(rule), err, sizeof(err)), 0);
    CHECK_STR_EQ(rule, "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
    CHECK_INT_EQ(lmdm_tzfile_rule("Etc/GMT+5", rule, sizeof(rule), err, sizeof(err)), 0);
    CHECK_STR_EQ(rule, "<-05>5");

    CHECK_INT_EQ(lmdm_tzfile_rule("Mars/Olympus_Mons", rule, sizeof(rule), err, sizeof(err)),
                 LMDM_ERR_NOT_FOUND);
    CHECK_STR_EQ(err, "unknown time zone 'Mars/Olympus_Mons'");
    CHECK_STR_EQ(rule, "");
    CHECK_INT_EQ(lmdm_tzfile_rule("Europe", rule, sizeof(rule), err, sizeof(err)), LMDM_ERR_NOT_FOUND);
    CHECK_STR_EQ(err, "unknown time zone 'Europe'");

    const char *bad_names[] = {"",
                               "/etc/passwd",
                               "../etc/passwd",
                               "Europe/../../etc/passwd",
                               "Europe/.",
                               "Europe//Berlin",
                               "Europe/",
                               "Europe/Berlin\n",
                               "Europe Berlin",
                               "Europe\\Berlin",
                               "a.b",
                               "x;rm"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        int rc = lmdm_tzfile_rule(bad_names[i], rule, sizeof(rule), err, sizeof(err));
        harness_checks++;
        if (rc != LMDM_ERR_INVALID || !strstr(err, "unknown time zone"))
            harness_fail(__FILE__, __LINE__, "name \"%s\": rc %d, err \"%s\"", bad_names[i], rc, err);
    }
    char longname[80];
    memset(longname, 'a', 65);
    longname[65] = '\0';
    CHECK_INT_EQ(lmdm_tzfile_name_ok(longname), 0);
    longname[64] = '\0';
    CHECK_INT_EQ(lmdm_tzfile_name_ok(longname), 1);
    CHECK_INT_EQ(lmdm_tzfile_name_ok("America/Argentina/Buenos_Aires"), 1);
    CHECK_INT_EQ(lmdm_tzfile_name_ok(NULL), 0);
    CHECK_INT_EQ(lmdm_tzfile_rule(NULL, rule, sizeof(rule), err, sizeof(err)), LMDM_ERR_INVALID);

    /* Too small a buffer. */
    char small[8];
    CHECK_INT_EQ(lmdm_tzfile_rule("Europe/Berlin", small, sizeof(small), err, sizeof(err)),
                 LMDM_ERR_TOO_LARGE);
    CHECK_STR_EQ(small, "");

    /* Files of our own in a scratch directory. */
    snprintf(scratch, sizeof(scratch), "/tmp/lmdm-test-tz.XXXXXX");
    CHECK(mkdtemp(scratch) != NULL);
    char v1[60] = "TZif"; /* version byte 0 */
    write_file("V1", v1, sizeof(v1));
    write_file("Text", "hello world, this is not a time zone file at all, no\nCET-1\n", 60);
    char v2[80] = "TZif2";
    memcpy(v2 + 60, "\nABC-3:30\n", 10);
    write_file("Good", v2, 70);
    char v3[80] = "TZif3";
    memcpy(v3 + 60, "\n\n", 2);
    write_file("Empty", v3, 62);
    char v4[80] = "TZif4";
    memcpy(v4 + 60, "\nCET-1CEST,M3.5.0", 17);
    write_file("NoNewline", v4, 77);
    char v5[80] = "TZif2";
    memcpy(v5 + 60, "\nCET-1CEST,M99\n", 15);
    write_file("BadRule", v5, 75);
    char v6[80] = "TZif2";
    memcpy(v6 + 60, "\nCET-1\x01\n", 8);
    write_file("Control", v6, 68);
    write_file("Short", "TZif2\nUTC0\n", 11);

    CHECK_INT_EQ(lmdm_tzfile_rule_in(scratch, "Good", rule, sizeof(rule), err, sizeof(err)), 0);
    CHECK_STR_EQ(rule, "ABC-3:30");
    CHECK_INT_EQ(lmdm_tzfile_rule_in(scratch, "V1", rule, sizeof(rule), err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK_STR_EQ(err, "time zone 'V1': no POSIX rule (TZif v1)");
    CHECK_INT_EQ(lmdm_tzfile_rule_in(scratch, "Text", rule, sizeof(rule), err, sizeof(err)),
                 LMDM_ERR_INVALID);
    CHECK_STR_EQ(err, "time zone 'Text': not a TZif file");
    CHECK_INT_EQ(lmdm_tzfile_rule_in(scratch, "Short", rule, sizeof(rule), err, sizeof(err)),
                 LMDM_ERR_INVALID);
    CHECK_STR_EQ(err, "time zone 'Short': not a TZif file");
    CHECK_INT_EQ(lmdm_tzfile_rule_in(scratch, "Empty", rule, sizeof(rule), err, sizeof(err)),
                 LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(err, "no POSIX rule");
    CHECK_INT_EQ(lmdm_tzfile_rule_in(scratch, "NoNewline", rule, sizeof(rule), err, sizeof(err)),
                 LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(err, "not a TZif file");
    CHECK_INT_EQ(lmdm_tzfile_rule_in(scratch, "BadRule", rule, sizeof(rule), err, sizeof(err)),
                 LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(err, "unreadable rule");
    CHECK_STR_EQ(rule, "");
    CHECK_INT_EQ(lmdm_tzfile_rule_in(scratch, "Control", rule, sizeof(rule), err, sizeof(err)),
                 LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_tzfile_rule_in(scratch, "Absent", rule, sizeof(rule), err, sizeof(err)),
                 LMDM_ERR_NOT_FOUND);
    CHECK_STR_EQ(err, "unknown time zone 'Absent'");

    const char *names[] = {"V1", "Text", "Good", "Empty", "NoNewline", "BadRule", "Control", "Short"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", scratch, names[i]);
        unlink(path);
    }
    rmdir(scratch);
}

/* lmdm_tzfile_zone: the parsed zone, the same on a second (cached) call;
 * errors as lmdm_tzfile_rule's, and nothing cached for them. */
static void test_tzfile_zone(void)
{
    lmdm_tz_t a, b;
    char err[160];
    CHECK_INT_EQ(lmdm_tzfile_zone("Europe/Berlin", &a, err, sizeof err), 0);
    CHECK_INT_EQ(a.std_offset, 3600);
    CHECK_INT_EQ(a.dst_offset, 7200);
    CHECK_INT_EQ(a.has_dst, 1);
    CHECK_INT_EQ(lmdm_tzfile_zone("Europe/Berlin", &b, err, sizeof err), 0);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    CHECK(lmdm_tzfile_zone("Mars/Olympus", &b, err, sizeof err) != 0);
    CHECK_STR_EQ(err, "unknown time zone 'Mars/Olympus'");
    CHECK(lmdm_tzfile_zone("../etc/passwd", &b, err, sizeof err) != 0);
    CHECK(lmdm_tzfile_zone("Mars/Olympus", &b, err, sizeof err) != 0);
}

int main(void)
{
    RUN(test_civil);
    RUN(test_date_parse);
    RUN(test_datetime);
    RUN(test_posix_parse);
    RUN(test_gap_overlap);
    RUN(test_against_glibc);
    RUN(test_tzfile);
    RUN(test_tzfile_zone);
    return harness_finish();
}
