/* A tenant's OS-update requirement (tenants/osupdate_json.c): every key of
 * the JSON at and past its bounds, each refusal with its exact message, the
 * rules between keys, the normalised JSON and its round trip; and a
 * ScheduleOSUpdate command (built with libplist, as a tenant's XML would
 * give it) folded into a requirement. */
#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lmdm/osupdate_json.h"
#include "lmdm/tz.h"

#define KEYS                                                                                                 \
    "(latest_security_within_days, allow_major_upgrade, min_version, min_version_by, max_deferrals, "        \
    "latest_ring)"
#define MSG_DAYS "latest_security_within_days: an integer from 0 to 365"
#define MSG_MAJOR "allow_major_upgrade: true or false"
#define MSG_VERSION "min_version: a version such as \"17.4\" or \"14.6.1\""
#define MSG_BY "min_version_by: a date (YYYY-MM-DD)"
#define MSG_DEFER "max_deferrals: an integer from 0 to 100"
#define MSG_RING "latest_ring: a ring name (lower case, digits, - and _)"

/* ---- JSON ---- */

/* Parses `text` into *r: the return value of lmdm_osu_rule_from_json, the
 * message in err. */
static int parse(const char *text, lmdm_osu_rule_t *r, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!j) {
        harness_fail(__FILE__, __LINE__, "bad test JSON %s: %s", text, jerr.text);
        return -2;
    }
    err[0] = '\0';
    int rv = lmdm_osu_rule_from_json(j, r, err, errlen);
    json_decref(j);
    return rv;
}

static void accepted_n(int line, const char *text, lmdm_osu_rule_t *r)
{
    char err[256];
    harness_checks++;
    if (parse(text, r, err, sizeof(err)) != 0) harness_fail(__FILE__, line, "%s refused: %s", text, err);
}
#define ACCEPTED(text, r) accepted_n(__LINE__, text, r)

static void refused_n(int line, const char *text, const char *want)
{
    char err[256];
    lmdm_osu_rule_t r;
    int rv = parse(text, &r, err, sizeof(err));
    harness_checks++;
    if (rv != -1 || strcmp(err, want) != 0)
        harness_fail(__FILE__, line, "%s: rv %d, \"%s\" != \"%s\"", text, rv, err, want);
}
#define REFUSED(text, want) refused_n(__LINE__, text, want)

/* The normalised JSON of a rule, compact with sorted keys (malloc'd). */
static char *normal(const lmdm_osu_rule_t *r)
{
    json_t *j = lmdm_osu_rule_to_json(r);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return s;
}

static int same_rule(const lmdm_osu_rule_t *a, const lmdm_osu_rule_t *b)
{
    if (!a->req.min_version != !b->req.min_version) return 0;
    if (a->req.min_version && (strcmp(a->req.min_version, b->req.min_version) != 0 ||
                               a->req.min_version_by != b->req.min_version_by))
        return 0;
    return a->req.latest_security_days == b->req.latest_security_days &&
           a->req.allow_major == b->req.allow_major && a->req.max_deferrals == b->req.max_deferrals &&
           a->req.latest_ring_delay == b->req.latest_ring_delay &&
           strcmp(a->min_version, b->min_version) == 0 && strcmp(a->latest_ring, b->latest_ring) == 0;
}

static void test_every_key(void)
{
    lmdm_osu_rule_t r;
    ACCEPTED("{\"latest_security_within_days\": 14, \"allow_major_upgrade\": true, \"min_version\": \"17.4\","
             " \"min_version_by\": \"2027-03-12\", \"max_deferrals\": 3, \"latest_ring\": \"broad\"}",
             &r);
    CHECK_INT_EQ(r.req.latest_security_days, 14);
    CHECK_INT_EQ(r.req.allow_major, 1);
    CHECK_STR_EQ(r.req.min_version, "17.4");
    CHECK(r.req.min_version == r.min_version);
    CHECK_INT_EQ(r.req.min_version_by, lmdm_days_from_civil(2027, 3, 12));
    CHECK_INT_EQ(r.req.max_deferrals, 3);
    CHECK_STR_EQ(r.latest_ring, "broad");
    CHECK_INT_EQ(r.req.latest_ring_delay, -1); /* resolved by name elsewhere */
}

/* A key absent asks nothing: its "none" value. */
static void test_one_key_each(void)
{
    lmdm_osu_rule_t r;
    ACCEPTED("{\"latest_security_within_days\": 0}", &r);
    CHECK_INT_EQ(r.req.latest_security_days, 0);
    CHECK_INT_EQ(r.req.allow_major, 0);
    CHECK(r.req.min_version == NULL);
    CHECK_INT_EQ(r.req.max_deferrals, -1);
    CHECK_STR_EQ(r.latest_ring, "");
    ACCEPTED("{\"latest_security_within_days\": 365}", &r);
    CHECK_INT_EQ(r.req.latest_security_days, 365);
    ACCEPTED("{\"max_deferrals\": 0}", &r);
    CHECK_INT_EQ(r.req.max_deferrals, 0);
    CHECK_INT_EQ(r.req.latest_security_days, -1);
    ACCEPTED("{\"max_deferrals\": 100}", &r);
    CHECK_INT_EQ(r.req.max_deferrals, 100);
    ACCEPTED("{\"latest_ring\": \"it\"}", &r);
    CHECK_STR_EQ(r.latest_ring, "it");
    CHECK_INT_EQ(r.req.latest_security_days, -1);
    CHECK_INT_EQ(r.req.max_deferrals, -1);
    ACCEPTED("{\"min_version\": \"14.6.1\", \"min_version_by\": \"2028-02-29\"}", &r);
    CHECK_STR_EQ(r.req.min_version, "14.6.1");
    CHECK_INT_EQ(r.req.min_version_by, lmdm_days_from_civil(2028, 2, 29));
    CHECK_INT_EQ(r.req.latest_security_days, -1);
    ACCEPTED("{\"latest_security_within_days\": 7, \"allow_major_upgrade\": false}", &r);
    CHECK_INT_EQ(r.req.allow_major, 0);
}

static void test_days_and_deferrals(void)
{
    REFUSED("{\"latest_security_within_days\": -1}", MSG_DAYS);
    REFUSED("{\"latest_security_within_days\": 366}", MSG_DAYS);
    REFUSED("{\"latest_security_within_days\": 14.0}", MSG_DAYS);
    REFUSED("{\"latest_security_within_days\": \"14\"}", MSG_DAYS);
    REFUSED("{\"latest_security_within_days\": true}", MSG_DAYS);
    REFUSED("{\"latest_security_within_days\": null}", MSG_DAYS);
    REFUSED("{\"latest_security_within_days\": 9223372036854775807}", MSG_DAYS);
    REFUSED("{\"latest_security_within_days\": 4294967310}", MSG_DAYS); /* 14 mod 2^32 */
    REFUSED("{\"max_deferrals\": -1}", MSG_DEFER);
    REFUSED("{\"max_deferrals\": 101}", MSG_DEFER);
    REFUSED("{\"max_deferrals\": 3.5}", MSG_DEFER);
    REFUSED("{\"max_deferrals\": [3]}", MSG_DEFER);
    REFUSED("{\"max_deferrals\": -9223372036854775808}", MSG_DEFER);
}

static void test_allow_major(void)
{
    REFUSED("{\"latest_security_within_days\": 7, \"allow_major_upgrade\": 1}", MSG_MAJOR);
    REFUSED("{\"latest_security_within_days\": 7, \"allow_major_upgrade\": \"true\"}", MSG_MAJOR);
    REFUSED("{\"latest_security_within_days\": 7, \"allow_major_upgrade\": null}", MSG_MAJOR);
    /* Moving to a newer major version only makes sense for "the latest
     * security release". */
    REFUSED("{\"allow_major_upgrade\": true}", "allow_major_upgrade needs latest_security_within_days");
    REFUSED("{\"allow_major_upgrade\": true, \"max_deferrals\": 2}",
            "allow_major_upgrade needs latest_security_within_days");
    REFUSED("{\"allow_major_upgrade\": true, \"min_version\": \"17.4\", \"min_version_by\": \"2027-03-12\"}",
            "allow_major_upgrade needs latest_security_within_days");
}

static void test_min_version(void)
{
    lmdm_osu_rule_t r;
    static const char *const good[] = {"1", "17", "17.4", "14.6.1", "1.2.3.4", "123456.1", "0.0"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"min_version\": \"%s\", \"min_version_by\": \"2027-03-12\"}",
                 good[i]);
        ACCEPTED(text, &r);
        CHECK_STR_EQ(r.req.min_version, good[i]);
    }
    static const char *const bad[] = {"",           "17.",   ".17",   "17..1",     "17.a",
                                      "v17",        "17.4 ", " 17.4", "1.2.3.4.5", "1234567",
                                      "17.1234567", "-17",   "17,4",  "17.4-beta", "\\u0661\\u0667"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"min_version\": \"%s\", \"min_version_by\": \"2027-03-12\"}", bad[i]);
        REFUSED(text, MSG_VERSION);
    }
    REFUSED("{\"min_version\": 17.4, \"min_version_by\": \"2027-03-12\"}", MSG_VERSION);
    REFUSED("{\"min_version\": 17, \"min_version_by\": \"2027-03-12\"}", MSG_VERSION);
    REFUSED("{\"min_version\": null, \"min_version_by\": \"2027-03-12\"}", MSG_VERSION);
    /* 40 characters (also too many parts and digits). */
    REFUSED(
        "{\"min_version\": \"1234.1234.1234.1234.1234.1234.1234.12345\", \"min_version_by\": \"2027-03-12\"}",
        MSG_VERSION);
}

static void test_min_version_by(void)
{
    static const char *const bad[] = {"2027-02-29", "2027-13-01", "2027-00-10",
                                      "2027-04-31", "2027-3-12",  "2027-03-12T00:00",
                                      "12.03.2027", "",           "2027-03-12 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"min_version\": \"17.4\", \"min_version_by\": \"%s\"}", bad[i]);
        REFUSED(text, MSG_BY);
    }
    REFUSED("{\"min_version\": \"17.4\", \"min_version_by\": 20270312}", MSG_BY);
    REFUSED("{\"min_version\": \"17.4\", \"min_version_by\": null}", MSG_BY);
    REFUSED("{\"min_version\": \"17.4\"}", "min_version and min_version_by go together");
    REFUSED("{\"min_version_by\": \"2027-03-12\"}", "min_version and min_version_by go together");
    REFUSED("{\"min_version_by\": \"2027-03-12\", \"max_deferrals\": 1}",
            "min_version and min_version_by go together");
}

static void test_latest_ring(void)
{
    lmdm_osu_rule_t r;
    static const char *const good[] = {"broad",  "it", "late-14",
                                       "ring_2", "0",  "abcdefghijklmnopqrstuvwxyz012345"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"latest_ring\": \"%s\"}", good[i]);
        ACCEPTED(text, &r);
        CHECK_STR_EQ(r.latest_ring, good[i]);
    }
    static const char *const bad[] = {"",        "Broad",       "-late",
                                      "_x",      "a b",         "ring.1",
                                      "late/14", "br\\u00f6ad", "abcdefghijklmnopqrstuvwxyz0123456"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"latest_ring\": \"%s\"}", bad[i]);
        REFUSED(text, MSG_RING);
    }
    REFUSED("{\"latest_ring\": 3}", MSG_RING);
    REFUSED("{\"latest_ring\": [\"broad\"]}", MSG_RING);
}

static void test_shape(void)
{
    REFUSED("[]", "the rule is not a JSON object");
    REFUSED("[{\"max_deferrals\": 3}]", "the rule is not a JSON object");
    REFUSED("\"max_deferrals\"", "the rule is not a JSON object");
    REFUSED("null", "the rule is not a JSON object");
    char err[64] = "";
    lmdm_osu_rule_t r;
    CHECK_INT_EQ(lmdm_osu_rule_from_json(NULL, &r, err, sizeof(err)), -1);
    CHECK_STR_EQ(err, "the rule is not a JSON object");
    REFUSED("{}", "the rule asks nothing");
    REFUSED("{\"allow_major_upgrade\": false}", "the rule asks nothing");
    REFUSED("{\"foo\": 1}", "unknown key 'foo' " KEYS);
    REFUSED("{\"max_deferrals\": 1, \"Max_Deferrals\": 1}", "unknown key 'Max_Deferrals' " KEYS);
    REFUSED("{\"latest_ring_delay\": 3}", "unknown key 'latest_ring_delay' " KEYS);
    /* A long key is cut to 64 characters in the message. */
    char key[101], text[160], want[256];
    memset(key, 'k', 100);
    key[100] = '\0';
    snprintf(text, sizeof(text), "{\"%s\": 1}", key);
    snprintf(want, sizeof(want), "unknown key '%.64s' " KEYS, key);
    REFUSED(text, want);
    /* A short buffer is truncated, not overrun. */
    char tiny[10];
    json_t *j = json_loads("{\"max_deferrals\": 101}", 0, NULL);
    CHECK_INT_EQ(lmdm_osu_rule_from_json(j, &r, tiny, sizeof(tiny)), -1);
    CHECK_STR_EQ(tiny, "max_defer");
    json_decref(j);
}

/* to_json gives the normalised form; from_json takes it back to the same
 * rule, and the normalised form of that is the same text. */
static void test_round_trip(void)
{
    static const char *const in[][2] = {
        {"{\"latest_security_within_days\": 14}",
         "{\"allow_major_upgrade\":false,\"latest_security_within_days\":14}"},
        {"{\"latest_security_within_days\": 0, \"allow_major_upgrade\": true}",
         "{\"allow_major_upgrade\":true,\"latest_security_within_days\":0}"},
        {"{\"latest_security_within_days\": 365, \"allow_major_upgrade\": false, \"max_deferrals\": 0}",
         "{\"allow_major_upgrade\":false,\"latest_security_within_days\":365,\"max_deferrals\":0}"},
        {"{\"min_version_by\": \"2000-02-29\", \"min_version\": \"9.3.5\"}",
         "{\"min_version\":\"9.3.5\",\"min_version_by\":\"2000-02-29\"}"},
        {"{\"max_deferrals\": 100}", "{\"max_deferrals\":100}"},
        {"{\"latest_ring\": \"late-14\"}", "{\"latest_ring\":\"late-14\"}"},
        {"{\"latest_ring\": \"broad\", \"max_deferrals\": 3, \"min_version_by\": \"2027-03-12\","
         " \"min_version\": \"17.4\", \"allow_major_upgrade\": true, \"latest_security_within_days\": 14}",
         "{\"allow_major_upgrade\":true,\"latest_ring\":\"broad\",\"latest_security_within_days\":14,"
         "\"max_deferrals\":3,\"min_version\":\"17.4\",\"min_version_by\":\"2027-03-12\"}"},
        {"{\"min_version\": \"1.2.3.4\", \"min_version_by\": \"9999-12-31\"}",
         "{\"min_version\":\"1.2.3.4\",\"min_version_by\":\"9999-12-31\"}"},
        {"{\"min_version\": \"17\", \"min_version_by\": \"0000-01-01\"}",
         "{\"min_version\":\"17\",\"min_version_by\":\"0000-01-01\"}"},
    };
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        lmdm_osu_rule_t a, b;
        ACCEPTED(in[i][0], &a);
        char *text = normal(&a);
        CHECK_STR_EQ(text, in[i][1]);
        ACCEPTED(text ? text : "{}", &b);
        CHECK(same_rule(&a, &b));
        char *again = normal(&b);
        CHECK_STR_EQ(again, text);
        free(text);
        free(again);
    }
}

/* ---- ScheduleOSUpdate ---- */

#define TODAY 20517 /* 2026-03-05 */

/* A Command dictionary with one update (any of its fields NULL / -1:
 * absent). */
static plist_t command(const char *version, const char *key, const char *action, long long deferrals)
{
    plist_t cmd = plist_new_dict();
    plist_dict_set_item(cmd, "RequestType", plist_new_string("ScheduleOSUpdate"));
    plist_t update = plist_new_dict();
    if (key) plist_dict_set_item(update, "ProductKey", plist_new_string(key));
    if (version) plist_dict_set_item(update, "ProductVersion", plist_new_string(version));
    if (action) plist_dict_set_item(update, "InstallAction", plist_new_string(action));
    if (deferrals >= 0) plist_dict_set_item(update, "MaxUserDeferrals", plist_new_uint((uint64_t)deferrals));
    plist_t updates = plist_new_array();
    plist_array_append_item(updates, update);
    plist_dict_set_item(cmd, "Updates", updates);
    return cmd;
}

static int fold(plist_t cmd, lmdm_osu_rule_t *r, char *err, size_t errlen)
{
    err[0] = '\0';
    int rv = lmdm_osu_rule_from_command(cmd, TODAY, r, err, errlen);
    plist_free(cmd);
    return rv;
}

static void test_fold_version(void)
{
    CHECK_INT_EQ(lmdm_days_from_civil(2026, 3, 5), TODAY);
    lmdm_osu_rule_t r;
    char err[256];
    CHECK_INT_EQ(fold(command("14.4.1", NULL, "InstallLater", -1), &r, err, sizeof(err)), 0);
    CHECK_STR_EQ(r.req.min_version, "14.4.1");
    CHECK(r.req.min_version == r.min_version);
    CHECK_INT_EQ(r.req.min_version_by, TODAY + LMDM_OSU_COMMAND_DAYS);
    CHECK_INT_EQ(LMDM_OSU_COMMAND_DAYS, 7);
    CHECK_INT_EQ(r.req.latest_security_days, -1);
    CHECK_INT_EQ(r.req.max_deferrals, -1);
    CHECK_INT_EQ(r.req.latest_ring_delay, -1);
    CHECK_STR_EQ(r.latest_ring, "");
    char *text = normal(&r);
    CHECK_STR_EQ(text, "{\"min_version\":\"14.4.1\",\"min_version_by\":\"2026-03-12\"}");
    free(text);

    CHECK_INT_EQ(fold(command("17.4", NULL, "InstallASAP", -1), &r, err, sizeof(err)), 0);
    CHECK_INT_EQ(r.req.min_version_by, TODAY + 1);
    CHECK_INT_EQ(fold(command("14.4", NULL, "InstallForceRestart", -1), &r, err, sizeof(err)), 0);
    CHECK_INT_EQ(r.req.min_version_by, TODAY + 1);
    static const char *const week[] = {"Default",      "DownloadOnly", "NotifyOnly",
                                       "InstallLater", "installasap",  NULL};
    for (size_t i = 0; i < sizeof(week) / sizeof(week[0]); i++) {
        CHECK_INT_EQ(fold(command("17.4", NULL, week[i], -1), &r, err, sizeof(err)), 0);
        CHECK_INT_EQ(r.req.min_version_by, TODAY + 7);
    }
    /* With a ProductKey as well: the version is what counts. */
    CHECK_INT_EQ(
        fold(command("14.4.1", "MSU_UPDATE_23E224_patch_14.4.1", "Default", -1), &r, err, sizeof(err)), 0);
    CHECK_STR_EQ(r.req.min_version, "14.4.1");
}

static void test_fold_no_version(void)
{
    lmdm_osu_rule_t r;
    char err[256];
    /* No Updates at all, an empty list, no Command: the latest security
     * release within the week. */
    plist_t cmd = plist_new_dict();
    plist_dict_set_item(cmd, "RequestType", plist_new_string("ScheduleOSUpdate"));
    CHECK_INT_EQ(fold(cmd, &r, err, sizeof(err)), 0);
    CHECK_INT_EQ(r.req.latest_security_days, 7);
    CHECK_INT_EQ(r.req.allow_major, 0);
    CHECK(r.req.min_version == NULL);
    CHECK_INT_EQ(r.req.max_deferrals, -1);
    char *text = normal(&r);
    CHECK_STR_EQ(text, "{\"allow_major_upgrade\":false,\"latest_security_within_days\":7}");
    free(text);
    cmd = plist_new_dict();
    plist_dict_set_item(cmd, "Updates", plist_new_array());
    CHECK_INT_EQ(fold(cmd, &r, err, sizeof(err)), 0);
    CHECK_INT_EQ(r.req.latest_security_days, 7);
    CHECK_INT_EQ(lmdm_osu_rule_from_command(NULL, TODAY, &r, err, sizeof(err)), 0);
    CHECK_INT_EQ(r.req.latest_security_days, 7);
    /* An update without version or key. */
    CHECK_INT_EQ(fold(command(NULL, NULL, "InstallLater", 2), &r, err, sizeof(err)), 0);
    CHECK_INT_EQ(r.req.latest_security_days, 7);
    CHECK_INT_EQ(r.req.max_deferrals, 2);
    CHECK(r.req.min_version == NULL);
    /* InstallASAP without a version: within a day. */
    CHECK_INT_EQ(fold(command(NULL, NULL, "InstallASAP", -1), &r, err, sizeof(err)), 0);
    CHECK_INT_EQ(r.req.latest_security_days, 1);
}

static void test_fold_deferrals(void)
{
    lmdm_osu_rule_t r;
    char err[256];
    static const long long in[][2] = {{0, 0},     {3, 3},     {100, 100},
                                      {101, 100}, {500, 100}, {4294967299LL, 100}};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        CHECK_INT_EQ(fold(command("17.4", NULL, "InstallLater", in[i][0]), &r, err, sizeof(err)), 0);
        CHECK_INT_EQ(r.req.max_deferrals, in[i][1]);
    }
    /* Not an integer. */
    plist_t cmd = command("17.4", NULL, "InstallLater", -1);
    plist_t update = plist_array_get_item(plist_dict_get_item(cmd, "Updates"), 0);
    plist_dict_set_item(update, "MaxUserDeferrals", plist_new_string("3"));
    CHECK_INT_EQ(fold(cmd, &r, err, sizeof(err)), -1);
    CHECK_STR_EQ(err, "MaxUserDeferrals is not an integer");
    cmd = command("17.4", NULL, "InstallLater", -1);
    update = plist_array_get_item(plist_dict_get_item(cmd, "Updates"), 0);
    plist_dict_set_item(update, "MaxUserDeferrals", plist_new_real(3.0));
    CHECK_INT_EQ(fold(cmd, &r, err, sizeof(err)), -1);
    CHECK_STR_EQ(err, "MaxUserDeferrals is not an integer");
}

/* A negative count in the tenant's XML is not "as many as it likes". */
static void test_fold_negative_deferrals(void)
{
    static const char xml[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>"
        "<key>Updates</key><array><dict><key>ProductVersion</key><string>14.4.1</string>"
        "<key>InstallAction</key><string>InstallLater</string>"
        "<key>MaxUserDeferrals</key><integer>-1</integer></dict></array></dict></plist>";
    plist_t cmd = NULL;
    plist_from_memory(xml, sizeof(xml) - 1, &cmd);
    CHECK(cmd != NULL);
    lmdm_osu_rule_t r;
    char err[256];
    CHECK_INT_EQ(fold(cmd, &r, err, sizeof(err)), -1);
    CHECK_STR_EQ(err, "MaxUserDeferrals is negative");
}

static void test_fold_refused(void)
{
    lmdm_osu_rule_t r;
    char err[256];
    CHECK_INT_EQ(
        fold(command(NULL, "MSU_UPDATE_23E224_patch_14.4.1", "InstallLater", -1), &r, err, sizeof(err)), -1);
    CHECK_STR_EQ(err, "a ProductKey without ProductVersion cannot be planned: give ProductVersion");
    static const char *const bad[] = {"14.x",  "",        "14..1",
                                      ".14",   "14.4.",   "1.2.3.4.5",
                                      "14.4 ", "1234567", "1234.1234.1234.1234.1234.1234.1234.12345"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT_EQ(fold(command(bad[i], NULL, "InstallLater", -1), &r, err, sizeof(err)), -1);
        CHECK_STR_EQ(err, "Updates[0].ProductVersion is not a version");
    }
    /* Updates[0] not a dictionary. */
    static const plist_type kinds[] = {PLIST_STRING, PLIST_ARRAY, PLIST_UINT, PLIST_BOOLEAN};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        plist_t cmd = plist_new_dict(), updates = plist_new_array(), item;
        switch (kinds[i]) {
        case PLIST_STRING: item = plist_new_string("14.4.1"); break;
        case PLIST_ARRAY: item = plist_new_array(); break;
        case PLIST_UINT: item = plist_new_uint(14); break;
        default: item = plist_new_bool(1); break;
        }
        plist_array_append_item(updates, item);
        plist_array_append_item(updates, plist_new_dict());
        plist_dict_set_item(cmd, "Updates", updates);
        CHECK_INT_EQ(fold(cmd, &r, err, sizeof(err)), -1);
        CHECK_STR_EQ(err, "Updates[0] is not a dictionary");
    }
}

/* Only the first update counts (one plan per device). */
static void test_fold_first_update(void)
{
    plist_t cmd = command("14.4.1", NULL, "InstallLater", 5);
    plist_t second = plist_new_dict();
    plist_dict_set_item(second, "ProductVersion", plist_new_string("15.0"));
    plist_dict_set_item(second, "InstallAction", plist_new_string("InstallASAP"));
    plist_array_append_item(plist_dict_get_item(cmd, "Updates"), second);
    lmdm_osu_rule_t r;
    char err[256];
    CHECK_INT_EQ(fold(cmd, &r, err, sizeof(err)), 0);
    CHECK_STR_EQ(r.req.min_version, "14.4.1");
    CHECK_INT_EQ(r.req.min_version_by, TODAY + 7);
    CHECK_INT_EQ(r.req.max_deferrals, 5);
}

/* A folded command is a rule the JSON takes back unchanged. */
static void test_fold_is_a_rule(void)
{
    struct {
        const char *version, *action;
        long long deferrals;
        const char *want;
    } in[] = {
        {"17.4", "InstallASAP", 500,
         "{\"max_deferrals\":100,\"min_version\":\"17.4\",\"min_version_by\":\"2026-03-06\"}"},
        {NULL, "Default", 0,
         "{\"allow_major_upgrade\":false,\"latest_security_within_days\":7,\"max_deferrals\":0}"},
        {"123456.1.2.3", NULL, -1, "{\"min_version\":\"123456.1.2.3\",\"min_version_by\":\"2026-03-12\"}"},
    };
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        lmdm_osu_rule_t a, b;
        char err[256];
        CHECK_INT_EQ(fold(command(in[i].version, NULL, in[i].action, in[i].deferrals), &a, err, sizeof(err)),
                     0);
        char *text = normal(&a);
        CHECK_STR_EQ(text, in[i].want);
        ACCEPTED(text ? text : "{}", &b);
        CHECK(same_rule(&a, &b));
        free(text);
    }
}

/* The Command as the tenant API reads it: XML, the "Command" dictionary. */
static void test_fold_from_xml(void)
{
    static const char xml[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
        "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
        "<plist version=\"1.0\"><dict><key>Command</key><dict>"
        "<key>RequestType</key><string>ScheduleOSUpdate</string>"
        "<key>Updates</key><array><dict><key>InstallAction</key><string>InstallLater</string>"
        "<key>MaxUserDeferrals</key><integer>3</integer>"
        "<key>ProductVersion</key><string>14.4.1</string></dict></array></dict>"
        "<key>CommandUUID</key><string>0001</string></dict></plist>";
    plist_t root = NULL;
    plist_from_memory(xml, sizeof(xml) - 1, &root);
    CHECK(root != NULL);
    lmdm_osu_rule_t r;
    char err[256] = "";
    CHECK_INT_EQ(
        lmdm_osu_rule_from_command(plist_dict_get_item(root, "Command"), TODAY, &r, err, sizeof(err)), 0);
    CHECK_STR_EQ(r.req.min_version, "14.4.1");
    CHECK_INT_EQ(r.req.min_version_by, TODAY + 7);
    CHECK_INT_EQ(r.req.max_deferrals, 3);
    plist_free(root);
}

int main(void)
{
    RUN(test_every_key);
    RUN(test_one_key_each);
    RUN(test_days_and_deferrals);
    RUN(test_allow_major);
    RUN(test_min_version);
    RUN(test_min_version_by);
    RUN(test_latest_ring);
    RUN(test_shape);
    RUN(test_round_trip);
    RUN(test_fold_version);
    RUN(test_fold_no_version);
    RUN(test_fold_deferrals);
    RUN(test_fold_negative_deferrals);
    RUN(test_fold_refused);
    RUN(test_fold_first_update);
    RUN(test_fold_is_a_rule);
    RUN(test_fold_from_xml);
    return harness_finish();
}
