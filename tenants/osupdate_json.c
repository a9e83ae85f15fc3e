/* A tenant's OS-update requirement: JSON in and out, and ScheduleOSUpdate
 * folded into one (lmdm/osupdate_json.h). */
#include "lmdm/osupdate_json.h"

#include <stdio.h>
#include <string.h>

#include "lmdm/common.h"
#include "lmdm/tz.h"

/* Every error: a message into err, -1. */
#define FAIL(...) (snprintf(err, errlen, __VA_ARGS__), -1)

static int version_ok(const char *v)
{
    int parts = 0, digits = 0;
    for (const char *p = v;; p++) {
        if (*p >= '0' && *p <= '9') {
            if (++digits > 6) return 0;
        } else if (*p == '.' || *p == '\0') {
            if (digits == 0) return 0;
            parts++;
            digits = 0;
            if (*p == '\0') break;
        } else {
            return 0;
        }
    }
    return parts >= 1 && parts <= 4;
}

static int ring_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '-' || c == '_'));
        if (!ok) return 0;
    }
    return 1;
}

static int int_in(const json_t *v, const char *key, long min, long max, int *out, char *err, size_t errlen)
{
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(err, errlen, "%s: an integer from %ld to %ld", key, min, max);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

int lmdm_osu_rule_from_json(const json_t *j, lmdm_osu_rule_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    lmdm_os_requirement_init(&out->req);
    if (!json_is_object(j)) return FAIL("%s", "the rule is not a JSON object");
    const char *key;
    json_t *v;
    int have_by = 0;
    json_object_foreach((json_t *)j, key, v) {
        if (strcmp(key, "latest_security_within_days") == 0) {
            if (int_in(v, key, 0, 365, &out->req.latest_security_days, err, errlen) != 0) return -1;
        } else if (strcmp(key, "allow_major_upgrade") == 0) {
            if (!json_is_boolean(v)) return FAIL("%s: true or false", key);
            out->req.allow_major = json_is_true(v);
        } else if (strcmp(key, "min_version") == 0) {
            const char *s = json_string_value(v);
            if (!s || strlen(s) >= sizeof out->min_version || !version_ok(s))
                return FAIL("%s: a version such as \"17.4\" or \"14.6.1\"", key);
            snprintf(out->min_version, sizeof out->min_version, "%s", s);
            out->req.min_version = out->min_version;
        } else if (strcmp(key, "min_version_by") == 0) {
            const char *s = json_string_value(v);
            if (!s || lmdm_date_parse(s, &out->req.min_version_by) != 0)
                return FAIL("%s: a date (YYYY-MM-DD)", key);
            have_by = 1;
        } else if (strcmp(key, "max_deferrals") == 0) {
            if (int_in(v, key, 0, 100, &out->req.max_deferrals, err, errlen) != 0) return -1;
        } else if (strcmp(key, "latest_ring") == 0) {
            const char *s = json_string_value(v);
            if (!s || !ring_ok(s)) return FAIL("%s: a ring name (lower case, digits, - and _)", key);
            snprintf(out->latest_ring, sizeof out->latest_ring, "%s", s);
        } else {
            snprintf(err, errlen,
                     "unknown key '%.64s' (latest_security_within_days, allow_major_upgrade, min_version, "
                     "min_version_by, max_deferrals, latest_ring)",
                     key);
            return -1;
        }
    }
    if (!out->req.min_version != !have_by)
        return FAIL("%s", "min_version and min_version_by go together");
    if (out->req.allow_major && out->req.latest_security_days < 0)
        return FAIL("%s", "allow_major_upgrade needs latest_security_within_days");
    if (out->req.latest_security_days < 0 && !out->req.min_version && out->req.max_deferrals < 0 &&
        !out->latest_ring[0])
        return FAIL("%s", "the rule asks nothing");
    return 0;
}

json_t *lmdm_osu_rule_to_json(const lmdm_osu_rule_t *r)
{
    json_t *j = json_object();
    if (r->req.latest_security_days >= 0) {
        json_object_set_new(j, "latest_security_within_days", json_integer(r->req.latest_security_days));
        json_object_set_new(j, "allow_major_upgrade", json_boolean(r->req.allow_major));
    }
    if (r->req.min_version) {
        int y, m, d;
        char day[16];
        lmdm_civil_from_days(r->req.min_version_by, &y, &m, &d);
        snprintf(day, sizeof day, "%04d-%02d-%02d", y, m, d);
        json_object_set_new(j, "min_version", json_string(r->req.min_version));
        json_object_set_new(j, "min_version_by", json_string(day));
    }
    if (r->req.max_deferrals >= 0) json_object_set_new(j, "max_deferrals", json_integer(r->req.max_deferrals));
    if (r->latest_ring[0]) json_object_set_new(j, "latest_ring", json_string(r->latest_ring));
    return j;
}

static const char *pstr(plist_t dict, const char *key)
{
    plist_t n = dict ? plist_dict_get_item(dict, key) : NULL;
    return n && plist_get_node_type(n) == PLIST_STRING ? plist_get_string_ptr(n, NULL) : NULL;
}

int lmdm_osu_rule_from_command(plist_t command, int64_t today, lmdm_osu_rule_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    lmdm_os_requirement_init(&out->req);
    plist_t updates = command ? plist_dict_get_item(command, "Updates") : NULL;
    plist_t first = updates && plist_get_node_type(updates) == PLIST_ARRAY && plist_array_get_size(updates) > 0
                        ? plist_array_get_item(updates, 0)
                        : NULL;
    if (first && plist_get_node_type(first) != PLIST_DICT)
        return FAIL("%s", "Updates[0] is not a dictionary");
    const char *version = pstr(first, "ProductVersion");
    const char *action = pstr(first, "InstallAction");
    if (first && !version && pstr(first, "ProductKey"))
        return FAIL("%s", "a ProductKey without ProductVersion cannot be planned: give ProductVersion");
    int days = LMDM_OSU_COMMAND_DAYS;
    if (action && (strcmp(action, "InstallASAP") == 0 || strcmp(action, "InstallForceRestart") == 0)) days = 1;
    if (version) {
        if (strlen(version) >= sizeof out->min_version || !version_ok(version))
            return FAIL("%s", "Updates[0].ProductVersion is not a version");
        snprintf(out->min_version, sizeof out->min_version, "%s", version);
        out->req.min_version = out->min_version;
        out->req.min_version_by = today + days;
    } else {
        out->req.latest_security_days = days;
    }
    plist_t defer = first ? plist_dict_get_item(first, "MaxUserDeferrals") : NULL;
    if (defer) {
        uint64_t n = 0;
        if (plist_get_node_type(defer) != PLIST_UINT) return FAIL("%s", "MaxUserDeferrals is not an integer");
        plist_get_uint_val(defer, &n);
        if ((int64_t)n < 0) return FAIL("%s", "MaxUserDeferrals is negative"); /* <integer>-1</integer> */
        out->req.max_deferrals = n > 100 ? 100 : (int)n;
    }
    return 0;
}
