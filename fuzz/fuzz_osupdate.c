/* libFuzzer target: the outside input of OS updates. The first byte picks
 * (mod 3) what the rest is:
 *   0  a DeclarativeManagement status report (a device's JSON): refused
 *      with a reason, or facts that are a JSON object of the four known
 *      keys with values of the allowed characters;
 *   1  a tenant's PUT /v1/rules/osupdate body: refused with a reason, or a
 *      rule whose normalised JSON is accepted again as the same rule;
 *   2  a tenant's command plist (its "Command" dictionary folded as a
 *      ScheduleOSUpdate): refused with a reason, or a rule the JSON takes
 *      back unchanged.
 * No crash, no leak. */
#include <jansson.h>
#include <plist/plist.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/ddm_status.h"
#include "lmdm/osupdate_json.h"

#define TODAY 20517 /* 2026-03-05 */

/* 1..max characters, each alphanumeric or in `allowed`. */
static int token_ok(const json_t *v, size_t max, const char *allowed)
{
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max || n != json_string_length(v)) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr(allowed, c)))
            return 0;
    }
    return 1;
}

static void check_facts(const char *text)
{
    json_t *f = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(f)) __builtin_trap();
    const char *key;
    json_t *v;
    json_object_foreach(f, key, v)
    {
        if (strcmp(key, "OSVersion") == 0) {
            const char *s = json_string_value(v);
            if (!token_ok(v, 32, ".") || strspn(s, "0123456789.") != strlen(s) || s[0] == '.' ||
                s[strlen(s) - 1] == '.' || strstr(s, ".."))
                __builtin_trap();
        } else if (strcmp(key, "BuildVersion") == 0) {
            if (!token_ok(v, 32, "")) __builtin_trap();
        } else if (strcmp(key, "ProductName") == 0) {
            if (!token_ok(v, 64, ",-_")) __builtin_trap();
        } else if (strcmp(key, "DeclarationTypes") == 0) {
            size_t i;
            json_t *t;
            if (!json_is_array(v) || json_array_size(v) > 512) __builtin_trap();
            json_array_foreach(v, i, t)
            {
                if (!token_ok(t, 128, ".-_")) __builtin_trap();
            }
        } else {
            __builtin_trap();
        }
    }
    json_decref(f);
}

static void status_report(const uint8_t *data, size_t size)
{
    char err[256] = "";
    char *facts = lmdm_ddm_status_facts(data, size, err, sizeof(err));
    if (!facts) {
        if (!err[0]) __builtin_trap();
        return;
    }
    check_facts(facts);
    free(facts);
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
           strcmp(a->latest_ring, b->latest_ring) == 0;
}

/* An accepted rule: its normalised JSON, parsed again, is the same rule
 * and normalises to the same text. */
static void check_round_trip(const lmdm_osu_rule_t *r)
{
    json_t *j = lmdm_osu_rule_to_json(r);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    if (!text) __builtin_trap();
    json_t *again = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    lmdm_osu_rule_t back;
    char err[256] = "";
    if (!again || lmdm_osu_rule_from_json(again, &back, err, sizeof(err)) != 0) __builtin_trap();
    json_decref(again);
    if (!same_rule(r, &back)) __builtin_trap();
    j = lmdm_osu_rule_to_json(&back);
    char *text2 = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    if (!text2 || strcmp(text, text2) != 0) __builtin_trap();
    free(text);
    free(text2);
}

static void rule_json(const uint8_t *data, size_t size)
{
    json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    if (!j) return;
    lmdm_osu_rule_t r;
    char err[256] = "";
    if (lmdm_osu_rule_from_json(j, &r, err, sizeof(err)) == 0)
        check_round_trip(&r);
    else if (!err[0])
        __builtin_trap();
    json_decref(j);
}

static void schedule_command(const uint8_t *data, size_t size)
{
    if (size > UINT32_MAX) return;
    plist_t root = NULL;
    plist_from_memory((const char *)data, (uint32_t)size, &root);
    if (!root) return;
    plist_t cmd = plist_get_node_type(root) == PLIST_DICT ? plist_dict_get_item(root, "Command") : NULL;
    lmdm_osu_rule_t r;
    char err[256] = "";
    if (lmdm_osu_rule_from_command(cmd, TODAY, &r, err, sizeof(err)) == 0) {
        if (r.req.max_deferrals > 100 || (r.req.min_version && r.req.min_version_by != TODAY + 1 &&
                                          r.req.min_version_by != TODAY + LMDM_OSU_COMMAND_DAYS))
            __builtin_trap();
        check_round_trip(&r);
    } else if (!err[0]) {
        __builtin_trap();
    }
    plist_free(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    switch (data[0] % 3) {
    case 0: status_report(data + 1, size - 1); break;
    case 1: rule_json(data + 1, size - 1); break;
    default: schedule_command(data + 1, size - 1); break;
    }
    return 0;
}
