/* policy/: the decision tables against Apple's schema, and every decision
 * kind, table-driven: plain commands, key-level rules, profiles (nested,
 * mixed, forbidden payloads), ownership, User Enrollment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lmdm/policy.h"

/* ---- the tables against Apple's TSV files ---- */

/* Calls fn(name, ue_flags) for every data row of an Apple TSV file; the UE
 * flags come from the two named columns. Returns the number of rows. */
static int each_row(const char *file, int ios_col, int mac_col, void (*fn)(const char *, unsigned))
{
    const char *spec = getenv("LMDM_SPEC");
    char path[1024], line[16384];
    snprintf(path, sizeof(path), "%s/%s", spec ? spec : "", file);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f) return 0;
    int rows = 0;
    while (fgets(line, sizeof(line), f)) {
        if (rows++ == 0) continue; /* header */
        line[strcspn(line, "\r\n")] = '\0';
        char *cols[40] = {0};
        int n = 0;
        for (char *p = line; n < 40;) {
            cols[n++] = p;
            char *tab = strchr(p, '\t');
            if (!tab) break;
            *tab = '\0';
            p = tab + 1;
        }
        unsigned ue = 0;
        if (ios_col < n && strcmp(cols[ios_col], "forbidden") == 0) ue |= LMDM_UE_IOS;
        if (mac_col < n && strcmp(cols[mac_col], "forbidden") == 0) ue |= LMDM_UE_MACOS;
        fn(cols[0], ue);
    }
    fclose(f);
    return rows - 1;
}

static unsigned payload_ue[512];
static const char *payload_names[512];
static int npayload_names;

static void check_command_row(const char *name, unsigned ue)
{
    const lmdm_policy_rule_t *r = lmdm_policy_command_rule(name);
    if (!r) {
        harness_fail(__FILE__, __LINE__, "RequestType %s has no decision", name);
        return;
    }
    if (r->ue_forbidden != ue)
        harness_fail(__FILE__, __LINE__, "RequestType %s: User Enrollment flags %u, Apple says %u", name,
                     r->ue_forbidden, ue);
    if (!r->explain || !*r->explain) harness_fail(__FILE__, __LINE__, "RequestType %s has no rationale", name);
    if (r->kind == LMDM_POLICY_BLOCK && (!r->reason || !*r->reason))
        harness_fail(__FILE__, __LINE__, "RequestType %s is blocked without a reason code", name);
}

/* A payload type may appear on several rows (com.apple.MCX): flags add up. */
static void collect_payload_row(const char *name, unsigned ue)
{
    for (int i = 0; i < npayload_names; i++)
        if (strcmp(payload_names[i], name) == 0) {
            payload_ue[i] |= ue;
            return;
        }
    if (npayload_names < 512) {
        payload_names[npayload_names] = strdup(name);
        payload_ue[npayload_names++] = ue;
    }
}

static void test_tables_cover_apples_schema(void)
{
    int ncmd = each_row("commands.tsv", 4, 10, check_command_row);
    CHECK_INT_EQ(ncmd, 66);
    size_t n;
    lmdm_policy_command_rules(&n);
    CHECK_INT_EQ(n, 66); /* no row for a command Apple does not have */

    int nrows = each_row("profile-payloads.tsv", 6, 16, collect_payload_row);
    CHECK_INT_EQ(nrows, 128);          /* some types have one row per platform file */
    CHECK_INT_EQ(npayload_names, 122); /* distinct PayloadTypes */
    for (int i = 0; i < npayload_names; i++) {
        const lmdm_policy_rule_t *r = lmdm_policy_payload_rule(payload_names[i]);
        if (!r) {
            harness_fail(__FILE__, __LINE__, "PayloadType %s has no decision", payload_names[i]);
            continue;
        }
        if (r->ue_forbidden != payload_ue[i])
            harness_fail(__FILE__, __LINE__, "PayloadType %s: User Enrollment flags %u, Apple says %u",
                         payload_names[i], r->ue_forbidden, payload_ue[i]);
        if (r->kind == LMDM_POLICY_BLOCK && (!r->reason || !*r->reason))
            harness_fail(__FILE__, __LINE__, "PayloadType %s is blocked without a reason code", payload_names[i]);
    }
    lmdm_policy_payload_rules(&n);
    CHECK_INT_EQ(n, (size_t)npayload_names);
    for (int i = 0; i < npayload_names; i++) free((void *)payload_names[i]);
}

/* Sorted (binary search) and nothing Apple forbids under User Enrollment is
 * allowed there: such rows are blocked on a User Enrollment device. */
static void test_tables_sorted_and_user_enrollment(void)
{
    size_t n;
    const lmdm_policy_rule_t *rules = lmdm_policy_command_rules(&n);
    for (size_t i = 1; i < n; i++) CHECK(strcmp(rules[i - 1].name, rules[i].name) < 0);
    lmdm_policy_device_t ue_ios = {LMDM_PLATFORM_IOS, 1, 0}, ue_mac = {LMDM_PLATFORM_MACOS, 1, 0};
    for (size_t i = 0; i < n; i++) {
        lmdm_policy_command_t c = {.request_type = rules[i].name, .identifier = "org.x.app"};
        if (rules[i].ue_forbidden & LMDM_UE_IOS) CHECK_INT_EQ(lmdm_policy_decide(&c, &ue_ios, NULL).kind, LMDM_POLICY_BLOCK);
        if (rules[i].ue_forbidden & LMDM_UE_MACOS) CHECK_INT_EQ(lmdm_policy_decide(&c, &ue_mac, NULL).kind, LMDM_POLICY_BLOCK);
    }
    const lmdm_policy_rule_t *prules = lmdm_policy_payload_rules(&n);
    for (size_t i = 1; i < n; i++) CHECK(strcmp(prules[i - 1].name, prules[i].name) < 0);
    for (size_t i = 0; i < n; i++) {
        lmdm_policy_payload_t pl[2] = {{prules[i].name, "p", {NULL, 0}}, {"com.apple.mail.managed", "m", {NULL, 0}}};
        lmdm_policy_command_t c = {.request_type = "InstallProfile", .profile_identifier = "x", .payloads = pl,
                                   .npayloads = 2};
        lmdm_policy_verdict_t v = lmdm_policy_decide(&c, &ue_ios, NULL);
        if (prules[i].ue_forbidden & LMDM_UE_IOS) {
            CHECK_INT_EQ(v.kind, LMDM_POLICY_BLOCK);
            if (v.kind == LMDM_POLICY_BLOCK) CHECK_INT_EQ(v.payload_index, 0);
        }
        if (prules[i].kind == LMDM_POLICY_BLOCK) CHECK_STR_EQ(lmdm_policy_decide(&c, NULL, NULL).reason, prules[i].reason);
    }
}

/* ---- decisions, table-driven ---- */

static const lmdm_policy_device_t IOS = {LMDM_PLATFORM_IOS, 0, 0};
static const char *const mine[] = {"org.stmarys.rounds", "org.stmarys.badge"};
static const char *const theirs[] = {"org.general.app"};
static const char *const my_profiles[] = {"org.stmarys.mail"};
static const char *const their_profiles[] = {"org.general.vpn"};
static const lmdm_policy_entities_t ENT = {{mine, 2}, {my_profiles, 1}, {theirs, 1}, {their_profiles, 1}};

#define STRS(...) ((lmdm_strs_t){(const char *const[]){__VA_ARGS__}, sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *)})

static void expect(const char *what, lmdm_policy_command_t c, lmdm_policy_kind_t kind, const char *reason)
{
    lmdm_policy_verdict_t v = lmdm_policy_decide(&c, &IOS, &ENT);
    harness_checks++;
    if (v.kind != kind || (reason && (!v.reason || strcmp(v.reason, reason) != 0)) || !v.explain)
        harness_fail(__FILE__, __LINE__, "%s: got %s/%s, expected %s/%s", what, lmdm_policy_kind_name(v.kind),
                     v.reason ? v.reason : "-", lmdm_policy_kind_name(kind), reason ? reason : "-");
}

static void test_commands(void)
{
    expect("wipe", (lmdm_policy_command_t){.request_type = "EraseDevice"}, LMDM_POLICY_BLOCK, "wipe");
    expect("lock", (lmdm_policy_command_t){.request_type = "DeviceLock"}, LMDM_POLICY_BLOCK, "lock");
    expect("location", (lmdm_policy_command_t){.request_type = "DeviceLocation"}, LMDM_POLICY_BLOCK, "location");
    expect("owner's apps", (lmdm_policy_command_t){.request_type = "InstalledApplicationList"}, LMDM_POLICY_BLOCK, "inventory");
    expect("unknown", (lmdm_policy_command_t){.request_type = "MakeCoffee"}, LMDM_POLICY_BLOCK, "unknown_command");
    expect("no request type", (lmdm_policy_command_t){0}, LMDM_POLICY_BLOCK, "unknown_command");
    expect("app list", (lmdm_policy_command_t){.request_type = "ManagedApplicationList"}, LMDM_POLICY_ALLOW, NULL);
    expect("OS update", (lmdm_policy_command_t){.request_type = "ScheduleOSUpdate"}, LMDM_POLICY_MERGE, NULL);
    expect("install own app", (lmdm_policy_command_t){.request_type = "InstallApplication", .identifier = "org.stmarys.new"},
           LMDM_POLICY_SCOPE, NULL);
    expect("install another tenant's app",
           (lmdm_policy_command_t){.request_type = "InstallApplication", .identifier = "org.general.app"},
           LMDM_POLICY_BLOCK, "entity_owned_by_other_tenant");
    expect("take over the owner's app",
           (lmdm_policy_command_t){.request_type = "InstallApplication", .identifier = "org.owner.app",
                                   .change_management_state = 1},
           LMDM_POLICY_BLOCK, "takeover");
    expect("install without bundle id", (lmdm_policy_command_t){.request_type = "InstallApplication"},
           LMDM_POLICY_BLOCK, "identifier_required");
    expect("remove own app", (lmdm_policy_command_t){.request_type = "RemoveApplication", .identifier = "org.stmarys.badge"},
           LMDM_POLICY_SCOPE, NULL);
    expect("remove the owner's app", (lmdm_policy_command_t){.request_type = "RemoveApplication", .identifier = "com.whatsapp"},
           LMDM_POLICY_BLOCK, "not_owned");
    expect("remove another tenant's profile",
           (lmdm_policy_command_t){.request_type = "RemoveProfile", .identifier = "org.general.vpn"}, LMDM_POLICY_BLOCK,
           "not_owned");
    expect("app config of own apps",
           (lmdm_policy_command_t){.request_type = "ManagedApplicationConfiguration", .has_identifiers = 1,
                                   .identifiers = STRS("org.stmarys.rounds")},
           LMDM_POLICY_SCOPE, NULL);
    expect("app config without Identifiers (= all apps)",
           (lmdm_policy_command_t){.request_type = "ManagedApplicationConfiguration"}, LMDM_POLICY_BLOCK,
           "identifiers_required");
    expect("app config naming another tenant's app",
           (lmdm_policy_command_t){.request_type = "ManagedApplicationAttributes", .has_identifiers = 1,
                                   .identifiers = STRS("org.stmarys.rounds", "org.general.app")},
           LMDM_POLICY_BLOCK, "not_owned");
    expect("device info, harmless queries",
           (lmdm_policy_command_t){.request_type = "DeviceInformation", .queries = STRS("OSVersion", "SerialNumber")},
           LMDM_POLICY_SCOPE, NULL);
    expect("device info, only identifying queries",
           (lmdm_policy_command_t){.request_type = "DeviceInformation", .queries = STRS("SerialNumber", "IMEI", "UDID")},
           LMDM_POLICY_BLOCK, "inventory");
    expect("settings of own app",
           (lmdm_policy_command_t){.request_type = "Settings", .settings_items = STRS("ApplicationConfiguration"),
                                   .settings_ids = STRS("org.stmarys.rounds")},
           LMDM_POLICY_SCOPE, NULL);
    expect("device-wide setting",
           (lmdm_policy_command_t){.request_type = "Settings", .settings_items = STRS("DeviceName"),
                                   .settings_ids = STRS("")},
           LMDM_POLICY_BLOCK, "settings_item");
    expect("settings of another tenant's app",
           (lmdm_policy_command_t){.request_type = "Settings", .settings_items = STRS("ApplicationAttributes"),
                                   .settings_ids = STRS("org.general.app")},
           LMDM_POLICY_BLOCK, "not_owned");
    lmdm_policy_device_t retire = {LMDM_PLATFORM_IOS, 0, 1};
    lmdm_policy_verdict_t rv = lmdm_policy_decide(&(lmdm_policy_command_t){.request_type = "EraseDevice"}, &retire, NULL);
    CHECK_INT_EQ(rv.kind, LMDM_POLICY_SCOPE);
    CHECK_INT_EQ(rv.retire, 1);
    lmdm_policy_device_t ue = {LMDM_PLATFORM_MACOS, 1, 0};
    lmdm_policy_command_t rm = {.request_type = "RemoveApplication", .identifier = "org.stmarys.rounds"};
    CHECK_STR_EQ(lmdm_policy_decide(&rm, &ue, &ENT).reason, "forbidden_under_user_enrollment");
    lmdm_policy_verdict_t di = lmdm_policy_decide(
        &(lmdm_policy_command_t){.request_type = "DeviceInformation", .queries = STRS("OSVersion", "IMEI", "Model")},
        &IOS, NULL);
    CHECK_INT_EQ(di.kept_queries, 2);
}

static lmdm_policy_verdict_t profile(const lmdm_policy_payload_t *pl, size_t n, const char *ident)
{
    lmdm_policy_command_t c = {.request_type = "InstallProfile", .profile_identifier = ident, .payloads = pl,
                               .npayloads = n};
    return lmdm_policy_decide(&c, &IOS, &ENT);
}

static void test_profiles(void)
{
    lmdm_policy_payload_t accounts[] = {{"com.apple.mail.managed", "a", {0}}, {"com.apple.security.pkcs12", "b", {0}},
                                        {"com.apple.vpn.managed.applayer", "c", {0}}, {"com.apple.webClip.managed", "d", {0}}};
    lmdm_policy_verdict_t v = profile(accounts, 4, "org.stmarys.mail2");
    CHECK_INT_EQ(v.kind, LMDM_POLICY_SCOPE);
    CHECK_INT_EQ(v.merge_payloads, 0);

    lmdm_policy_payload_t mixed[] = {{"com.apple.mail.managed", "a", {0}}, {"com.apple.security.root", "r", {0}}};
    v = profile(mixed, 2, "org.stmarys.x");
    CHECK_INT_EQ(v.kind, LMDM_POLICY_BLOCK);
    CHECK_STR_EQ(v.reason, "root_certificate");
    CHECK_INT_EQ(v.payload_index, 1);
    CHECK_STR_EQ(v.payload_type, "com.apple.security.root");

    lmdm_policy_payload_t vpn[] = {{"com.apple.vpn.managed", "v", {0}}};
    CHECK_STR_EQ(profile(vpn, 1, "org.stmarys.vpn").reason, "network");
    lmdm_policy_payload_t unknown[] = {{"com.apple.mail.managed", "a", {0}}, {"com.example.new", "n", {0}}};
    v = profile(unknown, 2, "org.stmarys.y");
    CHECK_STR_EQ(v.reason, "unknown_payload");
    CHECK_INT_EQ(v.payload_index, 1);
    lmdm_policy_payload_t cert_alone[] = {{"com.apple.security.pkcs1", "c", {0}}};
    CHECK_STR_EQ(profile(cert_alone, 1, "org.stmarys.c").reason, "certificate_alone");
    CHECK_STR_EQ(profile(NULL, 0, "org.stmarys.e").reason, "empty_profile");

    lmdm_policy_payload_t passcode[] = {{"com.apple.mobiledevice.passwordpolicy", "p", {0}}};
    v = profile(passcode, 1, "org.stmarys.pass");
    CHECK_INT_EQ(v.kind, LMDM_POLICY_MERGE);
    CHECK_INT_EQ(v.merge_payloads, 1);
    lmdm_policy_payload_t pass_and_mail[] = {{"com.apple.mobiledevice.passwordpolicy", "p", {0}},
                                             {"com.apple.mail.managed", "m", {0}}};
    v = profile(pass_and_mail, 2, "org.stmarys.both");
    CHECK_INT_EQ(v.kind, LMDM_POLICY_SCOPE);
    CHECK_INT_EQ(v.merge_payloads, 1);

    lmdm_policy_payload_t managed_data[] = {
        {"com.apple.applicationaccess", "r", STRS("PayloadType", "PayloadUUID", "allowOpenFromManagedToUnmanaged")}};
    CHECK_INT_EQ(profile(managed_data, 1, "org.stmarys.r").kind, LMDM_POLICY_MERGE);
    lmdm_policy_payload_t camera[] = {{"com.apple.applicationaccess", "r", STRS("allowCamera")}};
    CHECK_STR_EQ(profile(camera, 1, "org.stmarys.r").reason, "restrictions");

    /* Profiles live in per-tenant namespaces: the same identifier as another
     * tenant's is no clash. */
    CHECK_INT_EQ(profile(accounts, 4, "org.general.vpn").kind, LMDM_POLICY_SCOPE);
}

static void test_filter(void)
{
    unsigned char keep[5];
    size_t n = lmdm_policy_filter_owned(STRS("org.stmarys.rounds", "com.owner.diary", "org.general.app", "org.stmarys",
                                             "org.stmarys.roundsX"),
                                        ENT.apps, keep);
    CHECK_INT_EQ(n, 1);
    CHECK(keep[0] && !keep[1] && !keep[2] && !keep[3] && !keep[4]); /* exact names only, never prefixes */
    CHECK_INT_EQ(lmdm_policy_filter_owned(STRS("org.stmarys.rounds"), (lmdm_strs_t){NULL, 0}, keep), 0);
}

static void test_keys(void)
{
    CHECK(lmdm_policy_query_allowed("OSVersion"));
    CHECK(!lmdm_policy_query_allowed("SerialNumber"));
    CHECK(!lmdm_policy_query_allowed("DeviceName"));
    CHECK(!lmdm_policy_query_allowed(NULL));
    CHECK(lmdm_policy_managed_data_key("requireManagedPasteboard"));
    CHECK(!lmdm_policy_managed_data_key("allowCamera"));
    CHECK(!lmdm_policy_result_key_visible("X", "UDID"));
    CHECK(!lmdm_policy_result_key_visible("X", "IMEI"));
    CHECK(lmdm_policy_result_key_visible("X", "Status"));
    CHECK(lmdm_policy_info_key_allowed("SecurityInfo", "PasscodeCompliant"));
    CHECK(!lmdm_policy_info_key_allowed("SecurityInfo", "ManagementStatus"));
    CHECK(lmdm_policy_info_key_allowed("DeviceInformation", "OSVersion"));
    CHECK(!lmdm_policy_info_key_allowed("DeviceInformation", "SerialNumber"));
}

int main(void)
{
    RUN(test_tables_cover_apples_schema);
    RUN(test_tables_sorted_and_user_enrollment);
    RUN(test_commands);
    RUN(test_profiles);
    RUN(test_filter);
    RUN(test_keys);
    return harness_finish();
}
