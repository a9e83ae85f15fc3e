/* Self test of the device simulator, without the broker:
 *  - the YAML reader on the constructs Apple's schema uses (and refusals);
 *  - every check-in message and every command answer against Apple's schema
 *    (read at test time from $LMDM_SRC/../shared/apple-device-management or
 *    $LMDM_SCHEMA): they parse back as plists, carry every schema key, and
 *    every key has the schema's type;
 *  - the device's own refusals and state (AccessRights, User Enrollment,
 *    installed profiles and apps);
 *  - enrollment profile, PKCS#12 and CMS handling with a CA made here;
 *  - the lmdm-sim binary end to end against a small in-process MDM server
 *    (HTTP/1.1, Mdm-Signature verified), including bad server answers. */
#define _GNU_SOURCE /* memmem, strndup */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>

#include "harness.h"
#include "sim.h"

static sim_schema_t *schema;
static const char *const platforms[] = {"iOS", "macOS"};

/* ---- YAML reader ---------------------------------------------------------- */

static void test_yaml_reader(void)
{
    static const char text[] = "title: Demo # a comment\n"
                               "description: A long plain scalar\n"
                               "  that continues here.\n"
                               "quoted: 'It''s 4.0'\n"
                               "block: |-\n"
                               "  line one\n"
                               "    indented\n"
                               "payloadkeys:\n"
                               "- key: A\n"
                               "  type: <dictionary>\n"
                               "  rangelist:\n"
                               "  - x\n"
                               "  - 'y: z'\n"
                               "  subkeys: &id001\n"
                               "  - key: B\n"
                               "    subkeys: *id001\n"
                               "  empty: []\n"
                               "- key: C\n";
    char err[SIM_ERRLEN];
    sy_doc_t *d = sy_parse(text, sizeof text - 1, err, sizeof err);
    CHECK(d != NULL);
    if (!d) return;
    const sy_node_t *r = sy_root(d);
    CHECK_STR_EQ(sy_get_str(r, "title"), "Demo");
    CHECK_STR_EQ(sy_get_str(r, "description"), "A long plain scalar that continues here.");
    CHECK_STR_EQ(sy_get_str(r, "quoted"), "It's 4.0");
    CHECK_STR_EQ(sy_get_str(r, "block"), "line one\n  indented");
    const sy_node_t *pk = sy_get(r, "payloadkeys");
    CHECK(sy_is_seq(pk));
    CHECK_INT_EQ(sy_len(pk), 2);
    const sy_node_t *a = sy_at(pk, 0);
    CHECK_STR_EQ(sy_get_str(a, "key"), "A");
    CHECK_INT_EQ(sy_len(sy_get(a, "rangelist")), 2);
    CHECK_STR_EQ(sy_str(sy_at(sy_get(a, "rangelist"), 1)), "y: z");
    CHECK(sy_is_seq(sy_get(a, "empty")));
    CHECK_INT_EQ(sy_len(sy_get(a, "empty")), 0);
    /* The alias points back at the anchored list (a recursive shape). */
    const sy_node_t *subs = sy_get(a, "subkeys");
    const sy_node_t *b = sy_at(subs, 0);
    CHECK_STR_EQ(sy_get_str(b, "key"), "B");
    CHECK(sy_get(b, "subkeys") == subs);
    CHECK_STR_EQ(sy_get_str(sy_at(pk, 1), "key"), "C");
    sy_free(d);

    static const char *const bad[] = {"a: {b: 1}\n", "a:\n\tb: 1\n", "a: *nope\n", "- a\nb: 1\n",
                                      "a: 'open\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        sy_doc_t *x = sy_parse(bad[i], strlen(bad[i]), err, sizeof err);
        CHECK(x == NULL);
        CHECK_STR_CONTAINS(err, "line ");
        sy_free(x);
    }
}

static void test_schema_loaded(void)
{
    CHECK(schema != NULL);
    if (!schema) return;
    CHECK_INT_EQ(sim_schema_command_count(schema), 66);
    CHECK_INT_EQ(sim_schema_checkin_count(schema), 8);
    CHECK(sim_schema_command(schema, "DeviceInformation") != NULL);
    CHECK(sim_schema_command(schema, "NoSuchCommand") == NULL);
    /* Every check-in message of the schema is one the simulator builds. */
    for (size_t i = 0; i < sim_schema_checkin_count(schema); i++)
        CHECK(sim_in_list(sim_schema_checkin_name(schema, i), sim_checkin_types));
    for (size_t i = 0; sim_checkin_types[i]; i++)
        CHECK(sim_schema_checkin(schema, sim_checkin_types[i]) != NULL);
    CHECK_INT_EQ(sim_access_bit("AllowDeviceErase"), 8);
    CHECK_INT_EQ(sim_access_bit("Special Case"), 0);
}

/* ---- type checks against the schema -------------------------------------- */

static bool type_matches(plist_t v, const char *type)
{
    plist_type t = plist_get_node_type(v);
    if (!type || strcmp(type, "<any>") == 0) return true;
    if (strcmp(type, "<string>") == 0) return t == PLIST_STRING;
    if (strcmp(type, "<integer>") == 0) return t == PLIST_UINT;
    if (strcmp(type, "<real>") == 0) return t == PLIST_REAL;
    if (strcmp(type, "<boolean>") == 0) return t == PLIST_BOOLEAN;
    if (strcmp(type, "<data>") == 0) return t == PLIST_DATA;
    if (strcmp(type, "<date>") == 0) return t == PLIST_DATE;
    if (strcmp(type, "<dictionary>") == 0) return t == PLIST_DICT;
    if (strcmp(type, "<array>") == 0) return t == PLIST_ARRAY;
    return false;
}

/* Check v against the key definition, recursing into dictionaries and
 * arrays whose items the schema describes. Reports the path on mismatch. */
static void check_shape(plist_t v, const sy_node_t *def, const char *path, int depth)
{
    const char *type = sy_get_str(def, "type");
    if (!type_matches(v, type)) {
        harness_fail(__FILE__, __LINE__, "%s: not of type %s", path, type ? type : "?");
        return;
    }
    harness_checks++;
    if (depth > 6) return;
    const sy_node_t *subs = sy_get(def, "subkeys");
    char sub[512];
    if (plist_get_node_type(v) == PLIST_DICT && sy_len(subs)) {
        plist_dict_iter it = NULL;
        plist_dict_new_iter(v, &it);
        char *k = NULL;
        plist_t item = NULL;
        for (plist_dict_next_item(v, it, &k, &item); k; plist_dict_next_item(v, it, &k, &item)) {
            const sy_node_t *kd = NULL, *any = NULL;
            for (size_t i = 0; i < sy_len(subs); i++) {
                const char *name = sy_get_str(sy_at(subs, i), "key");
                if (name && strcmp(name, k) == 0) kd = sy_at(subs, i);
                if (name && strncmp(name, "ANY", 3) == 0) any = sy_at(subs, i);
            }
            snprintf(sub, sizeof sub, "%s.%s", path, k);
            if (!kd) kd = any;
            if (kd)
                check_shape(item, kd, sub, depth + 1);
            else
                harness_fail(__FILE__, __LINE__, "%s: key not in the schema", sub);
            free(k);
            k = NULL;
        }
        free(it);
    } else if (plist_get_node_type(v) == PLIST_ARRAY && sy_len(subs)) {
        for (uint32_t i = 0; i < plist_array_get_size(v); i++) {
            snprintf(sub, sizeof sub, "%s[%u]", path, i);
            check_shape(plist_array_get_item(v, i), sy_at(subs, 0), sub, depth + 1);
        }
    }
}

/* Serialize and parse back, like the wire would. */
static plist_t round_trip(plist_t p)
{
    size_t n = 0;
    char *xml = sim_plist_xml(p, &n);
    plist_t back = sim_plist_parse(xml, n);
    free(xml);
    return back;
}

static void make_device(sim_device_t *d, const char *platform, bool ue)
{
    sim_seed(42);
    sim_device_init(d, platform, ue);
    snprintf(d->server_url, sizeof d->server_url, "https://mdm.example.org/mdm/connect");
    snprintf(d->topic, sizeof d->topic, "com.apple.mgmt.External.5a4b7c2e-0000-4000-8000-000000000001");
    snprintf(d->profile_identifier, sizeof d->profile_identifier, "org.example.enroll");
}

/* ---- check-in messages ----------------------------------------------------- */

static void test_checkins_cover_schema(void)
{
    if (!schema) return;
    for (size_t m = 0; sim_checkin_types[m]; m++) {
        const char *type = sim_checkin_types[m];
        const sy_node_t *keys = sim_schema_keys(sim_schema_checkin(schema, type), "payloadkeys");
        CHECK(keys != NULL);
        char seen[64][64];
        size_t nseen = 0;
        for (int pf = 0; pf < 2; pf++)
            for (int ue = 0; ue < 2; ue++)
                for (int uc = 0; uc < 2; uc++) {
                    sim_device_t d;
                    make_device(&d, platforms[pf], ue);
                    sim_checkin_opts_t o = {.all_keys = true, .user_channel = uc};
                    char err[SIM_ERRLEN];
                    plist_t msg = sim_checkin_build(&d, type, &o, err, sizeof err);
                    CHECK(msg != NULL);
                    plist_t back = msg ? round_trip(msg) : NULL;
                    CHECK(back != NULL);
                    char *mt = sim_plist_str(back, "MessageType");
                    CHECK_STR_EQ(mt, type);
                    free(mt);
                    /* The device identifies itself in every message. */
                    CHECK(plist_dict_get_item(back, ue ? "EnrollmentID" : "UDID") != NULL);
                    CHECK(plist_dict_get_item(back, ue ? "UDID" : "EnrollmentID") == NULL);
                    for (size_t i = 0; i < sy_len(keys); i++) {
                        const char *k = sy_get_str(sy_at(keys, i), "key");
                        plist_t v = plist_dict_get_item(back, k);
                        if (!v) continue;
                        char path[128];
                        snprintf(path, sizeof path, "%s.%s", type, k);
                        check_shape(v, sy_at(keys, i), path, 0);
                        bool dup = false;
                        for (size_t s = 0; s < nseen; s++)
                            dup |= strcmp(seen[s], k) == 0;
                        if (!dup && nseen < 64) snprintf(seen[nseen++], sizeof seen[0], "%s", k);
                    }
                    plist_free(back);
                    plist_free(msg);
                    sim_device_clear(&d);
                }
        /* Across enrollment types and channels, every schema key is sent. */
        for (size_t i = 0; i < sy_len(keys); i++) {
            const char *k = sy_get_str(sy_at(keys, i), "key");
            bool found = false;
            for (size_t s = 0; s < nseen; s++)
                found |= strcmp(seen[s], k) == 0;
            if (!found) harness_fail(__FILE__, __LINE__, "%s: schema key %s never sent", type, k);
            harness_checks++;
        }
    }
}

static void test_checkins_realistic(void)
{
    sim_device_t d;
    char err[SIM_ERRLEN];
    sim_checkin_opts_t o = {0};
    make_device(&d, "iOS", false);
    snprintf(d.product_name, sizeof d.product_name, "iPhone15,4");
    snprintf(d.imei, sizeof d.imei, "35 254108 123456 7");
    /* No AccessRights for device information: an iPhone keeps it to itself. */
    d.access_rights = 1 | 2;
    plist_t m = sim_checkin_build(&d, "Authenticate", &o, err, sizeof err);
    CHECK(plist_dict_get_item(m, "UDID") != NULL);
    CHECK(plist_dict_get_item(m, "Topic") != NULL);
    CHECK(plist_dict_get_item(m, "OSVersion") == NULL);
    CHECK(plist_dict_get_item(m, "SerialNumber") == NULL);
    CHECK(plist_dict_get_item(m, "IMEI") == NULL);
    CHECK(plist_dict_get_item(m, "DeviceName") == NULL); /* macOS only */
    plist_free(m);
    d.access_rights = -1;
    m = sim_checkin_build(&d, "Authenticate", &o, err, sizeof err);
    char *s = sim_plist_str(m, "SerialNumber");
    CHECK_STR_EQ(s, d.serial);
    free(s);
    CHECK(plist_dict_get_item(m, "IMEI") != NULL);
    CHECK(plist_dict_get_item(m, "OSVersion") != NULL);
    plist_free(m);
    /* TokenUpdate: the token is 32 bytes; no UnlockToken without the lock right. */
    d.access_rights = 1;
    m = sim_checkin_build(&d, "TokenUpdate", &o, err, sizeof err);
    plist_t tok = plist_dict_get_item(m, "Token");
    CHECK(tok && plist_get_node_type(tok) == PLIST_DATA);
    uint64_t n = 0;
    char *bytes = NULL;
    if (tok) plist_get_data_val(tok, &bytes, &n);
    CHECK_INT_EQ(n, 32);
    free(bytes);
    CHECK(plist_dict_get_item(m, "UnlockToken") == NULL);
    s = sim_plist_str(m, "PushMagic");
    CHECK_STR_EQ(s, d.push_magic);
    free(s);
    plist_free(m);
    CHECK(sim_checkin_build(&d, "Hello", &o, err, sizeof err) == NULL);
    CHECK_STR_CONTAINS(err, "unknown check-in message");
    sim_device_clear(&d);

    /* macOS user channel: the user's own token and identity. */
    make_device(&d, "macOS", false);
    o.user_channel = true;
    m = sim_checkin_build(&d, "TokenUpdate", &o, err, sizeof err);
    s = sim_plist_str(m, "UserShortName");
    CHECK_STR_EQ(s, d.user_short_name);
    free(s);
    s = sim_plist_str(m, "PushMagic");
    CHECK_STR_EQ(s, d.user_push_magic);
    free(s);
    CHECK(plist_dict_get_item(m, "NotOnConsole") != NULL);
    plist_free(m);
    /* Authenticate always goes on the device channel. */
    m = sim_checkin_build(&d, "Authenticate", &o, err, sizeof err);
    CHECK(plist_dict_get_item(m, "UserID") == NULL);
    CHECK(plist_dict_get_item(m, "DeviceName") != NULL);
    plist_free(m);
    sim_device_clear(&d);

    /* User Enrollment: EnrollmentID, never UDID or serial. */
    make_device(&d, "iOS", true);
    o.user_channel = false;
    m = sim_checkin_build(&d, "Authenticate", &o, err, sizeof err);
    s = sim_plist_str(m, "EnrollmentID");
    CHECK_STR_EQ(s, d.enrollment_id);
    free(s);
    CHECK(plist_dict_get_item(m, "UDID") == NULL);
    CHECK(plist_dict_get_item(m, "SerialNumber") == NULL);
    plist_free(m);
    /* DeclarativeManagement status carries a JSON status report as Data. */
    o.endpoint = "status";
    m = sim_checkin_build(&d, "DeclarativeManagement", &o, err, sizeof err);
    plist_t data = plist_dict_get_item(m, "Data");
    CHECK(data != NULL);
    bytes = NULL;
    if (data) plist_get_data_val(data, &bytes, &n);
    json_t *j = bytes ? json_loadb(bytes, n, 0, NULL) : NULL;
    CHECK(json_is_object(json_object_get(j, "StatusItems")));
    json_decref(j);
    free(bytes);
    plist_free(m);
    sim_device_clear(&d);
}

/* ---- command answers -------------------------------------------------------- */

static plist_t sample_profile(const char *identifier)
{
    plist_t p = plist_new_dict();
    sim_set_str(p, "PayloadType", "Configuration");
    sim_set_str(p, "PayloadIdentifier", identifier);
    sim_set_str(p, "PayloadUUID", "6F0D0B35-6F74-4C77-9D0E-6C2B7F7A0001");
    sim_set_str(p, "PayloadDisplayName", "Hospital A Wi-Fi");
    sim_set_int(p, "PayloadVersion", 1);
    plist_t content = plist_new_array();
    plist_t w = plist_new_dict();
    sim_set_str(w, "PayloadType", "com.apple.wifi.managed");
    sim_set_str(w, "PayloadIdentifier", "org.hospital-a.wifi.payload");
    sim_set_str(w, "PayloadUUID", "6F0D0B35-6F74-4C77-9D0E-6C2B7F7A0002");
    sim_set_str(w, "SSID_STR", "HospitalA");
    plist_array_append_item(content, w);
    plist_dict_set_item(p, "PayloadContent", content);
    return p;
}

static void set_payload(sim_command_t *c, plist_t profile)
{
    size_t n = 0;
    char *xml = sim_plist_xml(profile, &n);
    sim_set_data(c->command, "Payload", (const unsigned char *)xml, n);
    free(xml);
}

/* A command as a server would send it: RequestType plus a schema-shaped
 * value for every required key. */
static void make_command(sim_command_t *c, const sim_device_t *d, const char *rt, const char *uuid)
{
    memset(c, 0, sizeof *c);
    c->root = plist_new_dict();
    c->command = plist_new_dict();
    plist_dict_set_item(c->root, "Command", c->command);
    sim_set_str(c->command, "RequestType", rt);
    snprintf(c->uuid, sizeof c->uuid, "%s", uuid);
    snprintf(c->request_type, sizeof c->request_type, "%s", rt);
    const sy_node_t *pk = sim_schema_keys(sim_schema_command(schema, rt), "payloadkeys");
    for (size_t i = 0; i < sy_len(pk); i++) {
        const sy_node_t *k = sy_at(pk, i);
        const char *presence = sy_get_str(k, "presence");
        if (presence && strcmp(presence, "required") == 0) {
            plist_t v = sim_gen_value(d, k, 0);
            if (v) plist_dict_set_item(c->command, sy_get_str(k, "key"), v);
        }
    }
    if (strcmp(rt, "InstallProfile") == 0) {
        plist_t p = sample_profile("com.example.notes");
        set_payload(c, p);
        plist_free(p);
    }
    if (strcmp(rt, "DeviceInformation") == 0) {
        plist_t q = plist_new_array();
        static const char *const keys[] = {"UDID",         "DeviceName",       "OSVersion",
                                           "SerialNumber", "WiFiMAC",          "BatteryLevel",
                                           "IsSupervised", "OSUpdateSettings", "NoSuchKey"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            plist_array_append_item(q, plist_new_string(keys[i]));
        plist_dict_set_item(c->command, "Queries", q);
    }
}

static const sy_node_t *payload_os(const char *rt, const char *platform)
{
    return sim_schema_os(sy_get(sim_schema_command(schema, rt), "payload"), platform);
}

static void test_answers_cover_schema(void)
{
    if (!schema) return;
    for (int pf = 0; pf < 2; pf++) {
        sim_device_t d;
        make_device(&d, platforms[pf], false);
        json_decref(d.state);
        d.state = json_object();
        for (size_t i = 0; i < sim_schema_command_count(schema); i++) {
            const char *rt = sim_schema_command_name(schema, i);
            const sy_node_t *root = sim_schema_command(schema, rt);
            if (!sim_schema_available(sy_get(root, "payload"), d.platform, d.os_version)) continue;
            const char *uc = sy_get_str(payload_os(rt, d.platform), "devicechannel");
            bool user_channel = uc && strcmp(uc, "false") == 0;
            for (int all = 0; all < 2; all++) {
                if (strcmp(rt, "RemoveProfile") == 0) { /* needs something to remove */
                    sim_command_t ip;
                    make_command(&ip, &d, "InstallProfile", "I-1");
                    sim_answer_opts_t ao = {.schema = schema};
                    plist_free(sim_answer_build(&d, &ip, &ao));
                    sim_command_clear(&ip);
                }
                sim_command_t c;
                make_command(&c, &d, rt, "B3C1F6A2-0000-4000-8000-00000000C0DE");
                sim_answer_opts_t ao = {.schema = schema, .user_channel = user_channel, .all_keys = all};
                plist_t ans = sim_answer_build(&d, &c, &ao);
                plist_t back = round_trip(ans);
                CHECK(back != NULL);
                char *status = sim_plist_str(back, "Status");
                if (!status || strcmp(status, "Acknowledged") != 0)
                    harness_fail(__FILE__, __LINE__, "%s/%s: status %s", d.platform, rt,
                                 status ? status : "-");
                harness_checks++;
                free(status);
                char *uuid = sim_plist_str(back, "CommandUUID");
                CHECK_STR_EQ(uuid, c.uuid);
                free(uuid);
                const sy_node_t *rk = sim_schema_keys(root, "responsekeys");
                for (size_t k = 0; k < sy_len(rk); k++) {
                    const sy_node_t *kd = sy_at(rk, k);
                    const char *name = sy_get_str(kd, "key");
                    const char *presence = sy_get_str(kd, "presence");
                    plist_t v = plist_dict_get_item(back, name);
                    char path[256];
                    snprintf(path, sizeof path, "%s/%s.%s", d.platform, rt, name);
                    bool must = all ? sim_schema_available(kd, d.platform, d.os_version)
                                    : presence && strcmp(presence, "required") == 0 &&
                                          sim_schema_available(kd, d.platform, d.os_version);
                    if (!v && must) harness_fail(__FILE__, __LINE__, "%s: missing", path);
                    harness_checks++;
                    if (v) check_shape(v, kd, path, 0);
                }
                plist_free(back);
                plist_free(ans);
                sim_command_clear(&c);
            }
        }
        sim_device_clear(&d);
    }
}

static char *answer_status(plist_t ans, int64_t *code)
{
    *code = 0;
    plist_t chain = plist_dict_get_item(ans, "ErrorChain");
    if (chain && plist_array_get_size(chain)) {
        uint64_t v = 0;
        plist_t c = plist_dict_get_item(plist_array_get_item(chain, 0), "ErrorCode");
        if (c) plist_get_uint_val(c, &v);
        *code = (int64_t)v;
    }
    return sim_plist_str(ans, "Status");
}

static void expect_answer(sim_device_t *d, sim_command_t *c, const sim_answer_opts_t *o, const char *status,
                          int64_t code)
{
    plist_t ans = sim_answer_build(d, c, o);
    int64_t got = 0;
    char *s = answer_status(ans, &got);
    CHECK_STR_EQ(s, status);
    if (code)
        CHECK_INT_EQ(got, code);
    else
        CHECK(plist_dict_get_item(ans, "ErrorChain") == NULL);
    free(s);
    plist_free(ans);
}

static void test_answer_behaviour(void)
{
    if (!schema) return;
    sim_device_t d;
    sim_command_t c;
    make_device(&d, "iOS", false);
    sim_answer_opts_t o = {.schema = schema, .enforce_rights = true};

    /* DeviceInformation without the device/network information rights. */
    d.access_rights = 1 | 2 | 4096;
    make_command(&c, &d, "DeviceInformation", "U-1");
    plist_t ans = sim_answer_build(&d, &c, &o);
    plist_t qr = plist_dict_get_item(ans, "QueryResponses");
    char *s = sim_plist_str(qr, "UDID");
    CHECK_STR_EQ(s, d.udid);
    free(s);
    CHECK(plist_dict_get_item(qr, "SerialNumber") == NULL);
    CHECK(plist_dict_get_item(qr, "WiFiMAC") == NULL);
    CHECK(plist_dict_get_item(qr, "OSVersion") == NULL);
    CHECK(plist_dict_get_item(qr, "NoSuchKey") == NULL);
    plist_free(ans);
    d.access_rights = -1;
    ans = sim_answer_build(&d, &c, &o);
    qr = plist_dict_get_item(ans, "QueryResponses");
    s = sim_plist_str(qr, "SerialNumber");
    CHECK_STR_EQ(s, d.serial);
    free(s);
    s = sim_plist_str(qr, "OSVersion");
    CHECK_STR_EQ(s, d.os_version);
    free(s);
    CHECK(plist_dict_get_item(qr, "WiFiMAC") != NULL);
    CHECK(plist_dict_get_item(qr, "BatteryLevel") != NULL);
    CHECK(plist_dict_get_item(qr, "NoSuchKey") == NULL);
    plist_free(ans);
    sim_command_clear(&c);

    /* EraseDevice: refused without AllowDeviceErase, as the device does. */
    d.access_rights = 1 | 2 | 16;
    make_command(&c, &d, "EraseDevice", "U-2");
    expect_answer(&d, &c, &o, "Error", 12022);
    sim_answer_opts_t lax = o;
    lax.enforce_rights = false;
    expect_answer(&d, &c, &lax, "Acknowledged", 0);
    sim_command_clear(&c);

    make_command(&c, &d, "FlyToTheMoon", "U-3");
    expect_answer(&d, &c, &o, "Error", 12021);
    sim_command_clear(&c);
    /* A macOS-only command on an iPhone is unknown to it. */
    make_command(&c, &d, "SetAutoAdminPassword", "U-4");
    expect_answer(&d, &c, &o, "Error", 12021);
    sim_command_clear(&c);
    /* Shared iPad only, supervised only: refused by this unsupervised phone. */
    make_command(&c, &d, "UserList", "U-4b");
    expect_answer(&d, &c, &o, "Error", 12070);
    sim_command_clear(&c);
    make_command(&c, &d, "ActivationLockBypassCode", "U-4c");
    expect_answer(&d, &c, &o, "Error", 12070);
    d.supervised = true;
    expect_answer(&d, &c, &o, "Acknowledged", 0);
    d.supervised = false;
    sim_command_clear(&c);

    d.access_rights = -1;
    make_command(&c, &d, "RemoveProfile", "U-5");
    plist_dict_remove_item(c.command, "Identifier");
    expect_answer(&d, &c, &o, "Error", 97);
    sim_command_clear(&c);

    /* Profiles: install, list, remove, remove again. */
    make_command(&c, &d, "InstallProfile", "U-6");
    plist_t p = sample_profile("org.hospital-a.wifi");
    set_payload(&c, p);
    plist_free(p);
    expect_answer(&d, &c, &o, "Acknowledged", 0);
    sim_command_clear(&c);
    make_command(&c, &d, "ProfileList", "U-7");
    ans = sim_answer_build(&d, &c, &o);
    plist_t list = plist_dict_get_item(ans, "ProfileList");
    bool found = false;
    for (uint32_t i = 0; list && i < plist_array_get_size(list); i++) {
        char *id = sim_plist_str(plist_array_get_item(list, i), "PayloadIdentifier");
        found |= id && strcmp(id, "org.hospital-a.wifi") == 0;
        free(id);
    }
    CHECK(found);
    plist_free(ans);
    sim_command_clear(&c);
    make_command(&c, &d, "RemoveProfile", "U-8");
    sim_set_str(c.command, "Identifier", "org.hospital-a.wifi");
    expect_answer(&d, &c, &o, "Acknowledged", 0);
    expect_answer(&d, &c, &o, "Error", 12013);
    sim_command_clear(&c);
    make_command(&c, &d, "InstallProfile", "U-9");
    sim_set_data(c.command, "Payload", (const unsigned char *)"garbage", 7);
    expect_answer(&d, &c, &o, "Error", 1000);
    sim_command_clear(&c);

    /* Apps: install, list as managed, remove. */
    make_command(&c, &d, "InstallApplication", "U-10");
    sim_set_str(c.command, "Identifier", "org.hospital-a.rounds");
    expect_answer(&d, &c, &o, "Acknowledged", 0);
    sim_command_clear(&c);
    make_command(&c, &d, "ManagedApplicationList", "U-11");
    ans = sim_answer_build(&d, &c, &o);
    CHECK(plist_dict_get_item(plist_dict_get_item(ans, "ManagedApplicationList"), "org.hospital-a.rounds") !=
          NULL);
    plist_free(ans);
    sim_command_clear(&c);
    make_command(&c, &d, "InstalledApplicationList", "U-12");
    sim_set_bool(c.command, "ManagedAppsOnly", true);
    ans = sim_answer_build(&d, &c, &o);
    list = plist_dict_get_item(ans, "InstalledApplicationList");
    CHECK_INT_EQ(list ? plist_array_get_size(list) : 0, 1);
    plist_free(ans);
    sim_command_clear(&c);
    make_command(&c, &d, "RemoveApplication", "U-13");
    sim_set_str(c.command, "Identifier", "org.hospital-a.rounds");
    expect_answer(&d, &c, &o, "Acknowledged", 0);
    sim_command_clear(&c);
    make_command(&c, &d, "ManagedApplicationList", "U-14");
    ans = sim_answer_build(&d, &c, &o);
    CHECK_INT_EQ(plist_dict_get_size(plist_dict_get_item(ans, "ManagedApplicationList")), 0);
    plist_free(ans);
    sim_command_clear(&c);

    /* Forced statuses. */
    make_command(&c, &d, "ProfileList", "U-15");
    sim_answer_opts_t f = o;
    f.force_status = "NotNow";
    expect_answer(&d, &c, &f, "NotNow", 0);
    f.force_status = "CommandFormatError";
    expect_answer(&d, &c, &f, "CommandFormatError", 0);
    f.force_status = "Error";
    expect_answer(&d, &c, &f, "Error", 12000);
    sim_command_clear(&c);
    sim_device_clear(&d);

    /* User Enrollment: EnrollmentID, no serial, no erase. */
    make_device(&d, "iOS", true);
    make_command(&c, &d, "DeviceInformation", "U-16");
    ans = sim_answer_build(&d, &c, &o);
    s = sim_plist_str(ans, "EnrollmentID");
    CHECK_STR_EQ(s, d.enrollment_id);
    free(s);
    CHECK(plist_dict_get_item(ans, "UDID") == NULL);
    qr = plist_dict_get_item(ans, "QueryResponses");
    CHECK(plist_dict_get_item(qr, "SerialNumber") == NULL);
    CHECK(plist_dict_get_item(qr, "UDID") == NULL);
    CHECK(plist_dict_get_item(qr, "OSVersion") != NULL);
    plist_free(ans);
    sim_command_clear(&c);
    make_command(&c, &d, "EraseDevice", "U-17");
    expect_answer(&d, &c, &o, "Error", 12084);
    sim_command_clear(&c);
    sim_device_clear(&d);
}

/* ---- against captured device answers ------------------------------------------ */

static const char *vectors_dir(char *buf, size_t cap)
{
    const char *v = getenv("LMDM_VECTORS");
    if (v && *v) return v;
    const char *src = getenv("LMDM_SRC");
    snprintf(buf, cap, "%s/tests/data/vectors", src && *src ? src : ".");
    return buf;
}

/* Where both have a key, the simulator's value has the captured one's type;
 * recursing into dictionaries, and into arrays item against item. */
static void same_types(plist_t ours, plist_t real, const char *path)
{
    plist_type t = plist_get_node_type(real);
    /* Devices write integers; libplist reads them as UINT either way. */
    if (plist_get_node_type(ours) != t) {
        harness_fail(__FILE__, __LINE__, "%s: type %d, a device sends %d", path, plist_get_node_type(ours),
                     t);
        return;
    }
    harness_checks++;
    char sub[512];
    if (t == PLIST_DICT) {
        plist_dict_iter it = NULL;
        plist_dict_new_iter(real, &it);
        char *k = NULL;
        plist_t rv = NULL;
        for (plist_dict_next_item(real, it, &k, &rv); k; plist_dict_next_item(real, it, &k, &rv)) {
            plist_t ov = plist_dict_get_item(ours, k);
            snprintf(sub, sizeof sub, "%s.%s", path, k);
            if (ov) same_types(ov, rv, sub);
            free(k);
            k = NULL;
        }
        free(it);
    } else if (t == PLIST_ARRAY && plist_array_get_size(ours) && plist_array_get_size(real)) {
        for (uint32_t i = 0; i < plist_array_get_size(real); i++) {
            snprintf(sub, sizeof sub, "%s[%u]", path, i);
            same_types(plist_array_get_item(ours, 0), plist_array_get_item(real, i), sub);
        }
    }
}

static void test_answers_like_captures(void)
{
    static const struct {
        const char *file, *request_type, *platform;
    } caps[] = {
        {"cmdmnt_commandment/testdata/SecurityInfo/iOS-11.3.1.xml", "SecurityInfo", "iOS"},
        {"cmdmnt_commandment/testdata/SecurityInfo/10.11.x.xml", "SecurityInfo", "macOS"},
        {"zentralopensource_zentral/tests/mdm/testdata/security_info_ios.plist", "SecurityInfo", "iOS"},
        {"zentralopensource_zentral/tests/mdm/testdata/profile_list.plist", "ProfileList", "macOS"},
        {"cmdmnt_commandment/testdata/ProfileList/10.11.x.xml", "ProfileList", "macOS"},
        {"cmdmnt_commandment/testdata/InstalledApplicationList/iOS-11.3.1.xml", "InstalledApplicationList",
         "iOS"},
        {"zentralopensource_zentral/tests/mdm/testdata/installed_application_list.plist",
         "InstalledApplicationList", "macOS"},
        {"cmdmnt_commandment/testdata/ManagedApplicationList/iOS-12.1-Managed.xml", "ManagedApplicationList",
         "iOS"},
        {"cmdmnt_commandment/testdata/CertificateList/10.11.x.xml", "CertificateList", "macOS"},
        {"cmdmnt_commandment/testdata/AvailableOSUpdates/macOS-10.13.1.xml", "AvailableOSUpdates", "macOS"},
        {"cmdmnt_commandment/testdata/DeviceInformation/10.11.x.xml", "DeviceInformation", "macOS"},
        {"cmdmnt_commandment/testdata/DeviceInformation/macOS-10.13.1.xml", "DeviceInformation", "macOS"},
    };
    if (!schema) return;
    char vbuf[1024];
    const char *vdir = vectors_dir(vbuf, sizeof vbuf);
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        char path[2048], err[SIM_ERRLEN];
        snprintf(path, sizeof path, "%s/%s", vdir, caps[i].file);
        unsigned char *data = NULL;
        size_t n = 0;
        if (sim_read_file(path, &data, &n, err, sizeof err) != 0) {
            harness_fail(__FILE__, __LINE__, "%s", err);
            continue;
        }
        plist_t real = sim_plist_parse(data, n);
        free(data);
        CHECK(real != NULL);
        if (!real) continue;
        sim_device_t d;
        make_device(&d, caps[i].platform, false);
        sim_answer_opts_t o = {.schema = schema};
        sim_command_t c;
        /* Something installed through MDM, so that the lists have items. */
        make_command(&c, &d, "InstallApplication", "V-0");
        sim_set_str(c.command, "Identifier", "com.apple.Numbers");
        plist_free(sim_answer_build(&d, &c, &o));
        sim_command_clear(&c);
        make_command(&c, &d, caps[i].request_type, "V-1");
        if (strcmp(caps[i].request_type, "DeviceInformation") == 0) {
            /* Ask what that device was asked. */
            plist_t q = plist_new_array(), qr = plist_dict_get_item(real, "QueryResponses");
            plist_dict_iter it = NULL;
            plist_dict_new_iter(qr, &it);
            char *k = NULL;
            plist_t v = NULL;
            for (plist_dict_next_item(qr, it, &k, &v); k; plist_dict_next_item(qr, it, &k, &v)) {
                plist_array_append_item(q, plist_new_string(k));
                free(k);
                k = NULL;
            }
            free(it);
            plist_dict_set_item(c.command, "Queries", q);
        }
        plist_t ours = sim_answer_build(&d, &c, &o);
        /* Every top-level key a device sent, the simulator sends (but
         * RequestType, which many devices leave out). */
        plist_dict_iter it = NULL;
        plist_dict_new_iter(real, &it);
        char *k = NULL;
        plist_t v = NULL;
        for (plist_dict_next_item(real, it, &k, &v); k; plist_dict_next_item(real, it, &k, &v)) {
            if (strcmp(k, "RequestType") != 0 && !plist_dict_get_item(ours, k))
                harness_fail(__FILE__, __LINE__, "%s: no top-level %s", caps[i].file, k);
            harness_checks++;
            free(k);
            k = NULL;
        }
        free(it);
        same_types(ours, real, caps[i].file);
        plist_free(ours);
        plist_free(real);
        sim_command_clear(&c);
        sim_device_clear(&d);
    }
}

static void test_command_parse(void)
{
    sim_command_t c;
    char err[SIM_ERRLEN];
    CHECK_INT_EQ(sim_command_parse("", 0, &c, err, sizeof err), 0);
    CHECK_INT_EQ(sim_command_parse("hello", 5, &c, err, sizeof err), -1);
    CHECK_STR_CONTAINS(err, "not a property list");
    static const char arr[] = "<?xml version=\"1.0\"?><plist version=\"1.0\"><array/></plist>";
    CHECK_INT_EQ(sim_command_parse(arr, sizeof arr - 1, &c, err, sizeof err), -1);
    CHECK_STR_CONTAINS(err, "not a dictionary");
    static const char nouuid[] = "<plist version=\"1.0\"><dict><key>Command</key><dict><key>RequestType</key>"
                                 "<string>ProfileList</string></dict></dict></plist>";
    CHECK_INT_EQ(sim_command_parse(nouuid, sizeof nouuid - 1, &c, err, sizeof err), -1);
    CHECK_STR_CONTAINS(err, "CommandUUID");
    static const char nocmd[] = "<plist version=\"1.0\"><dict><key>CommandUUID</key><string>X</string>"
                                "</dict></plist>";
    CHECK_INT_EQ(sim_command_parse(nocmd, sizeof nocmd - 1, &c, err, sizeof err), -1);
    CHECK_STR_CONTAINS(err, "Command dictionary");
    static const char nort[] = "<plist version=\"1.0\"><dict><key>CommandUUID</key><string>X</string>"
                               "<key>Command</key><dict/></dict></plist>";
    CHECK_INT_EQ(sim_command_parse(nort, sizeof nort - 1, &c, err, sizeof err), -1);
    CHECK_STR_CONTAINS(err, "RequestType");
    static const char ok[] = "<plist version=\"1.0\"><dict><key>CommandUUID</key><string>0001</string>"
                             "<key>Command</key><dict><key>RequestType</key><string>ProfileList</string>"
                             "</dict></dict></plist>";
    CHECK_INT_EQ(sim_command_parse(ok, sizeof ok - 1, &c, err, sizeof err), 1);
    CHECK_STR_EQ(c.uuid, "0001");
    CHECK_STR_EQ(c.request_type, "ProfileList");
    sim_command_clear(&c);
}

/* ---- a CA, an identity, a profile ------------------------------------------- */

typedef struct {
    EVP_PKEY *ca_key;
    X509 *ca;
    EVP_PKEY *dev_key;
    X509 *dev;
    char dir[256];
    char ca_file[300];
    char other_ca_file[300];
} pki_t;

static pki_t pki;

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, bool ca)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(sim_rand() & 0x7fffffff));
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 30);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *e =
        X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    e = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage,
                            ca ? "critical,keyCertSign,cRLSign,digitalSignature"
                               : "digitalSignature,keyEncipherment");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256());
    return x;
}

static void write_pem_cert(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");
    PEM_write_X509(f, x);
    fclose(f);
}

static void setup_pki(void)
{
    snprintf(pki.dir, sizeof pki.dir, "/tmp/lmdm-sim-selftest.%ld", (long)getpid());
    mkdir(pki.dir, 0700);
    pki.ca_key = EVP_EC_gen("P-256");
    pki.ca = make_cert(pki.ca_key, "lmdm test CA", NULL, NULL, true);
    pki.dev_key = EVP_RSA_gen(2048);
    pki.dev = make_cert(pki.dev_key, "device identity", pki.ca, pki.ca_key, false);
    snprintf(pki.ca_file, sizeof pki.ca_file, "%s/ca.pem", pki.dir);
    write_pem_cert(pki.ca_file, pki.ca);
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *other = make_cert(k, "some other CA", NULL, NULL, true);
    snprintf(pki.other_ca_file, sizeof pki.other_ca_file, "%s/other-ca.pem", pki.dir);
    write_pem_cert(pki.other_ca_file, other);
    X509_free(other);
    EVP_PKEY_free(k);
}

static void teardown_pki(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pki.dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", pki.dir);
    EVP_PKEY_free(pki.ca_key);
    EVP_PKEY_free(pki.dev_key);
    X509_free(pki.ca);
    X509_free(pki.dev);
}

typedef struct {
    const char *server_url;
    const char *checkin_url; /* NULL: none */
    bool sign_message;
    long access_rights; /* <0: none */
    const char *password;
    const char *p12_password; /* the one the PKCS#12 really has */
    const char *identity_uuid;
    bool scep;
    bool user;
    bool no_topic;
} profile_spec_t;

static plist_t build_profile(const profile_spec_t *ps)
{
    static const char id_uuid[] = "0D0C3A6A-1C8E-4F7E-9E0B-2C6A4F1B0001";
    PKCS12 *p12 = PKCS12_create(ps->p12_password ? ps->p12_password : ps->password, "device", pki.dev_key,
                                pki.dev, NULL, NID_aes_256_cbc, NID_aes_256_cbc, 0, 0, 0);
    unsigned char *der = NULL;
    int n = i2d_PKCS12(p12, &der);
    PKCS12_free(p12);
    plist_t root = plist_new_dict();
    sim_set_str(root, "PayloadType", "Configuration");
    sim_set_str(root, "PayloadIdentifier", "org.example.lmdm.enroll");
    sim_set_str(root, "PayloadUUID", "0D0C3A6A-1C8E-4F7E-9E0B-2C6A4F1B0000");
    sim_set_str(root, "PayloadDisplayName", "lmdm enrollment");
    sim_set_str(root, "PayloadOrganization", "lmdm");
    sim_set_int(root, "PayloadVersion", 1);
    plist_t content = plist_new_array();
    plist_t ident = plist_new_dict();
    if (ps->scep) {
        sim_set_str(ident, "PayloadType", "com.apple.security.scep");
    } else {
        sim_set_str(ident, "PayloadType", "com.apple.security.pkcs12");
        sim_set_data(ident, "PayloadContent", der, (size_t)n);
        sim_set_str(ident, "Password", ps->password);
    }
    sim_set_str(ident, "PayloadIdentifier", "org.example.lmdm.identity");
    sim_set_str(ident, "PayloadUUID", id_uuid);
    sim_set_int(ident, "PayloadVersion", 1);
    plist_array_append_item(content, ident);
    plist_t mdm = plist_new_dict();
    sim_set_str(mdm, "PayloadType", "com.apple.mdm");
    sim_set_str(mdm, "PayloadIdentifier", "org.example.lmdm.mdm");
    sim_set_str(mdm, "PayloadUUID", "0D0C3A6A-1C8E-4F7E-9E0B-2C6A4F1B0002");
    sim_set_int(mdm, "PayloadVersion", 1);
    sim_set_str(mdm, "ServerURL", ps->server_url);
    if (ps->checkin_url) sim_set_str(mdm, "CheckInURL", ps->checkin_url);
    if (!ps->no_topic)
        sim_set_str(mdm, "Topic", "com.apple.mgmt.External.5a4b7c2e-0000-4000-8000-000000000001");
    sim_set_bool(mdm, "SignMessage", ps->sign_message);
    sim_set_str(mdm, "IdentityCertificateUUID", ps->identity_uuid ? ps->identity_uuid : id_uuid);
    if (ps->access_rights >= 0) sim_set_int(mdm, "AccessRights", ps->access_rights);
    if (ps->user) {
        sim_set_str(mdm, "AssignedManagedAppleID", "dana@hospital-a.example");
        sim_set_str(mdm, "EnrollmentMode", "BYOD");
    }
    plist_array_append_item(content, mdm);
    plist_dict_set_item(root, "PayloadContent", content);
    OPENSSL_free(der);
    return root;
}

/* The profile as the broker serves it: CMS SignedData, content attached. */
static unsigned char *sign_profile(plist_t root, size_t *len)
{
    size_t n = 0;
    char *xml = sim_plist_xml(root, &n);
    BIO *in = BIO_new_mem_buf(xml, (int)n);
    CMS_ContentInfo *cms = CMS_sign(pki.ca, pki.ca_key, NULL, in, CMS_BINARY);
    unsigned char *der = NULL;
    int dn = i2d_CMS_ContentInfo(cms, &der);
    unsigned char *out = malloc((size_t)dn);
    memcpy(out, der, (size_t)dn);
    *len = (size_t)dn;
    OPENSSL_free(der);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    free(xml);
    return out;
}

static int apply(const profile_spec_t *ps, bool sign, const char *ca, bool strict, sim_device_t *d, char *err)
{
    plist_t root = build_profile(ps);
    size_t len = 0;
    unsigned char *body;
    if (sign) {
        body = sign_profile(root, &len);
    } else {
        body = (unsigned char *)sim_plist_xml(root, &len);
    }
    plist_free(root);
    const char *cas[2] = {ca, NULL};
    sim_device_init(d, "iOS", false);
    int rc = sim_device_apply_profile(d, body, len, ca ? cas : NULL, strict, err, SIM_ERRLEN);
    free(body);
    return rc;
}

static void test_profile(void)
{
    sim_device_t d;
    char err[SIM_ERRLEN] = "";
    profile_spec_t ps = {.server_url = "https://mdm.example.org/mdm/connect",
                         .sign_message = true,
                         .access_rights = 1 | 2 | 4096,
                         .password = "s3cret"};
    CHECK_INT_EQ(apply(&ps, true, pki.ca_file, true, &d, err), 0);
    CHECK_INT_EQ(d.profile_trust, 1);
    CHECK_STR_EQ(d.server_url, "https://mdm.example.org/mdm/connect");
    /* No CheckInURL: check-ins go to the ServerURL. */
    CHECK_STR_EQ(d.checkin_url, "");
    CHECK_STR_EQ(sim_device_checkin_url(&d), "https://mdm.example.org/mdm/connect");
    CHECK(d.sign_message);
    CHECK_INT_EQ(d.access_rights, 1 | 2 | 4096);
    CHECK(!d.user_enrollment);
    CHECK(d.cert && X509_cmp(d.cert, pki.dev) == 0);
    CHECK(d.key && EVP_PKEY_eq(d.key, pki.dev_key) == 1);
    CHECK_STR_EQ(d.profile_identifier, "org.example.lmdm.enroll");
    /* The enrollment profile and the identity are what the device lists. */
    CHECK_INT_EQ(json_array_size(json_object_get(d.state, "profiles")), 1);
    CHECK_INT_EQ(json_array_size(json_object_get(d.state, "certificates")), 1);

    /* Mdm-Signature: detached, over the exact body, verifiable with the CA. */
    static const char body[] = "<plist><dict><key>Status</key><string>Idle</string></dict></plist>";
    char *sig = sim_mdm_signature(d.key, d.cert, body, sizeof body - 1, err, sizeof err);
    CHECK(sig != NULL);
    CHECK(strchr(sig, '\n') == NULL);
    CHECK_INT_EQ(sim_mdm_signature_verify(sig, body, sizeof body - 1, pki.ca, err, sizeof err), 0);
    CHECK_INT_EQ(sim_mdm_signature_verify(sig, "<plist/>", 8, pki.ca, err, sizeof err), -1);
    size_t dn = 0;
    unsigned char *der = sim_unb64(sig, &dn);
    const unsigned char *p = der;
    CMS_ContentInfo *cms = der ? d2i_CMS_ContentInfo(NULL, &p, (long)dn) : NULL;
    CHECK(cms != NULL);
    if (cms) {
        CHECK(CMS_is_detached(cms) == 1);
        STACK_OF(X509) *certs = CMS_get1_certs(cms);
        CHECK(certs && sk_X509_num(certs) == 1 && X509_cmp(sk_X509_value(certs, 0), pki.dev) == 0);
        sk_X509_pop_free(certs, X509_free);
        CMS_ContentInfo_free(cms);
    }
    free(der);
    free(sig);

    /* device.json + identity.pem round trip. */
    char dir[400];
    snprintf(dir, sizeof dir, "%s/dev1", pki.dir);
    CHECK_INT_EQ(sim_device_save(&d, dir, err, sizeof err), 0);
    sim_device_t back;
    CHECK_INT_EQ(sim_device_load(&back, dir, err, sizeof err), 0);
    json_t *a = sim_device_to_json(&d), *b = sim_device_to_json(&back);
    CHECK(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    CHECK(back.cert && X509_cmp(back.cert, pki.dev) == 0);
    char path[500];
    snprintf(path, sizeof path, "%s/identity.pem", dir);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 077) == 0);
    sim_device_clear(&back);
    sim_device_clear(&d);

    /* Refusals, each with a message that says what is wrong. */
    CHECK_INT_EQ(apply(&ps, true, pki.other_ca_file, true, &d, err), -1);
    CHECK_STR_CONTAINS(err, "does not chain");
    sim_device_clear(&d);
    /* Not required: installed, but known as untrusted ("Not Verified"). */
    CHECK_INT_EQ(apply(&ps, true, pki.other_ca_file, false, &d, err), 0);
    CHECK_INT_EQ(d.profile_trust, 0);
    sim_device_clear(&d);
    CHECK_INT_EQ(apply(&ps, true, NULL, false, &d, err), 0);
    CHECK_INT_EQ(d.profile_trust, 0);
    sim_device_clear(&d);
    CHECK_INT_EQ(apply(&ps, false, NULL, false, &d, err), 0); /* unsigned profiles install too */
    CHECK_INT_EQ(d.profile_trust, -1);
    sim_device_clear(&d);
    CHECK_INT_EQ(apply(&ps, false, pki.ca_file, true, &d, err), -1);
    CHECK_STR_CONTAINS(err, "not signed");
    sim_device_clear(&d);
    profile_spec_t bad = ps;
    bad.p12_password = "other";
    CHECK_INT_EQ(apply(&bad, true, pki.ca_file, false, &d, err), -1);
    CHECK_STR_CONTAINS(err, "PKCS#12");
    sim_device_clear(&d);
    bad = ps;
    bad.identity_uuid = "NOPE";
    CHECK_INT_EQ(apply(&bad, true, pki.ca_file, false, &d, err), -1);
    CHECK_STR_CONTAINS(err, "IdentityCertificateUUID");
    sim_device_clear(&d);
    bad = ps;
    bad.scep = true;
    CHECK_INT_EQ(apply(&bad, true, pki.ca_file, false, &d, err), -1);
    CHECK_STR_CONTAINS(err, "SCEP");
    sim_device_clear(&d);
    bad = ps;
    bad.no_topic = true;
    CHECK_INT_EQ(apply(&bad, true, pki.ca_file, false, &d, err), -1);
    CHECK_STR_CONTAINS(err, "Topic");
    sim_device_clear(&d);
    bad = ps;
    bad.server_url = "ftp://x";
    CHECK_INT_EQ(apply(&bad, true, pki.ca_file, false, &d, err), -1);
    CHECK_STR_CONTAINS(err, "ServerURL");
    sim_device_clear(&d);
    /* A tampered signed profile. */
    plist_t root = build_profile(&ps);
    size_t len = 0;
    unsigned char *signed_body = sign_profile(root, &len);
    plist_free(root);
    unsigned char *hit = memmem(signed_body, len, "mdm.example.org", 15);
    CHECK(hit != NULL);
    if (hit) hit[0] = 'M';
    const char *cas[2] = {pki.ca_file, NULL};
    sim_device_init(&d, "iOS", false);
    /* Tampered content fails whether or not trust is required. */
    CHECK_INT_EQ(sim_device_apply_profile(&d, signed_body, len, NULL, false, err, sizeof err), -1);
    CHECK_STR_CONTAINS(err, "does not verify");
    sim_device_clear(&d);
    CHECK_INT_EQ(sim_device_apply_profile(&d, (const unsigned char *)"junk", 4, cas, false, err, sizeof err),
                 -1);
    CHECK_STR_CONTAINS(err, "neither a plist nor DER CMS");
    sim_device_clear(&d);
    free(signed_body);
    /* User Enrollment profile. */
    profile_spec_t ue = ps;
    ue.user = true;
    CHECK_INT_EQ(apply(&ue, true, pki.ca_file, false, &d, err), 0);
    CHECK(d.user_enrollment);
    CHECK_STR_EQ(d.managed_apple_id, "dana@hospital-a.example");
    CHECK_STR_EQ(sim_device_id(&d), d.enrollment_id);
    sim_device_clear(&d);
}

/* ---- a small MDM server -------------------------------------------------------- */

typedef struct {
    int fd;
    char *buf;
    size_t len, cap;
    nghttp2_session *h2; /* set once the client sent the HTTP/2 preface (h2c) */
} conn_t;

typedef struct {
    int listen_fd;
    int port;
    int stop_pipe[2];
    pthread_t thread;
    pthread_mutex_t mu;
    /* behaviour */
    int bad_answer; /* 1: connect answers garbage, 2: a plist without CommandUUID */
    bool refuse_checkin;
    plist_t queue; /* array of commands still to hand out */
    plist_t held;  /* NotNow'd commands, handed out again after the next Idle */
    /* observations */
    char checkins[64][32];
    int ncheckins;
    char statuses[256][160]; /* "Status UUID" */
    int nstatuses;
    int bad_signatures;
    int bad_content_types;
    int connect_requests;
    char profile_url[256];
} server_t;

static server_t srv;

/* The server's answer to one request, whatever the framing. */
typedef struct {
    int status;
    char ctype[64];
    unsigned char *body;
    size_t len;
} reply_t;

static void respond(reply_t *rp, int status, const char *ctype, const void *body, size_t len)
{
    rp->status = status;
    snprintf(rp->ctype, sizeof rp->ctype, "%s", ctype ? ctype : "");
    rp->body = malloc(len + 1);
    memcpy(rp->body, body, len);
    rp->len = len;
}

static void write_h1(int fd, const reply_t *rp)
{
    char head[512];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s%s\r\n", rp->status,
                     rp->status == 200 ? "OK" : "Error", rp->len, rp->ctype[0] ? "Content-Type: " : "",
                     rp->ctype, rp->ctype[0] ? "\r\n" : "");
    if (write(fd, head, (size_t)n) != n || (rp->len && write(fd, rp->body, rp->len) != (ssize_t)rp->len))
        fprintf(stderr, "selftest server: short write\n");
}

static const char *header(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t l = e ? (size_t)(e - v) : strlen(v);
            if (l >= cap) l = cap - 1;
            memcpy(out, v, l);
            out[l] = '\0';
            return out;
        }
    }
    return NULL;
}

static void next_command(reply_t *fd)
{
    if (plist_array_get_size(srv.queue) == 0) {
        respond(fd, 200, NULL, "", 0);
        return;
    }
    plist_t cmd = plist_array_get_item(srv.queue, 0);
    size_t n = 0;
    char *xml = sim_plist_xml(cmd, &n);
    respond(fd, 200, "application/xml", xml, n);
    free(xml);
}

/* Handle one complete request; returns false to close the connection. */
static void handle(reply_t *fd, const char *method, const char *path, const char *head, const char *body,
                   size_t blen)
{
    char ct[128] = "", sig[16384] = "";
    header(head, "Content-Type", ct, sizeof ct);
    bool has_sig = header(head, "Mdm-Signature", sig, sizeof sig) != NULL;
    pthread_mutex_lock(&srv.mu);
    if (strcmp(method, "GET") == 0 && strncmp(path, "/enroll", 7) == 0) {
        profile_spec_t ps = {.server_url = srv.profile_url,
                             .sign_message = true,
                             .access_rights = 1 | 2 | 4096,
                             .password = "pw",
                             .user = strstr(path, "kind=user") != NULL};
        char checkin[300];
        snprintf(checkin, sizeof checkin, "%s", srv.profile_url);
        char *slash = strstr(checkin, "/mdm/connect");
        if (slash) strcpy(slash, "/mdm/checkin");
        ps.checkin_url = checkin;
        plist_t root = build_profile(&ps);
        size_t len = 0;
        unsigned char *der = sign_profile(root, &len);
        plist_free(root);
        respond(fd, 200, "application/x-apple-aspen-config", der, len);
        free(der);
        goto out;
    }
    char err[SIM_ERRLEN];
    if (!has_sig || sim_mdm_signature_verify(sig, body, blen, pki.ca, err, sizeof err) != 0) {
        srv.bad_signatures++;
        respond(fd, 401, NULL, "", 0);
        goto out;
    }
    plist_t p = sim_plist_parse(body, blen);
    if (!p) {
        respond(fd, 400, NULL, "", 0);
        goto out;
    }
    if (strcmp(path, "/mdm/checkin") == 0) {
        if (strcmp(ct, SIM_CT_CHECKIN) != 0) srv.bad_content_types++;
        char *mt = sim_plist_str(p, "MessageType");
        if (srv.ncheckins < 64)
            snprintf(srv.checkins[srv.ncheckins++], sizeof srv.checkins[0], "%s", mt ? mt : "?");
        free(mt);
        if (srv.refuse_checkin)
            respond(fd, 403, "application/json", "{\"code\":\"com.apple.unrecognized.device\"}", 40);
        else
            respond(fd, 200, NULL, "", 0);
    } else if (strcmp(path, "/mdm/connect") == 0) {
        if (strcmp(ct, SIM_CT_CONNECT) != 0) srv.bad_content_types++;
        srv.connect_requests++;
        char *st = sim_plist_str(p, "Status"), *uuid = sim_plist_str(p, "CommandUUID");
        if (srv.nstatuses < 256)
            snprintf(srv.statuses[srv.nstatuses++], sizeof srv.statuses[0], "%s %s", st ? st : "?",
                     uuid ? uuid : "-");
        if (srv.bad_answer == 1) {
            respond(fd, 200, "text/html", "<html>oops</html>", 17);
        } else if (srv.bad_answer == 2) {
            static const char nouuid[] =
                "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>Command</key>"
                "<dict><key>RequestType</key><string>ProfileList</string></dict>"
                "</dict></plist>";
            respond(fd, 200, "application/xml", nouuid, sizeof nouuid - 1);
        } else {
            if (st && strcmp(st, "Idle") == 0) {
                /* NotNow'd commands come back on the next Idle. */
                while (plist_array_get_size(srv.held)) {
                    plist_t c = plist_copy(plist_array_get_item(srv.held, 0));
                    plist_array_remove_item(srv.held, 0);
                    plist_array_append_item(srv.queue, c);
                }
            } else if (uuid && plist_array_get_size(srv.queue)) {
                char *head_uuid = sim_plist_str(plist_array_get_item(srv.queue, 0), "CommandUUID");
                if (head_uuid && strcmp(head_uuid, uuid) == 0) {
                    if (strcmp(st, "NotNow") == 0)
                        plist_array_append_item(srv.held, plist_copy(plist_array_get_item(srv.queue, 0)));
                    plist_array_remove_item(srv.queue, 0);
                }
                free(head_uuid);
            }
            next_command(fd);
        }
        free(st);
        free(uuid);
    } else {
        respond(fd, 404, NULL, "", 0);
    }
    plist_free(p);
out:
    pthread_mutex_unlock(&srv.mu);
}

/* ---- the same server over h2c (prior knowledge) ---- */

typedef struct {
    char method[16], path[256];
    char head[20000]; /* the request headers in HTTP/1.1 form, for header() */
    size_t headlen;
    unsigned char *body;
    size_t len;
    reply_t rp;
    size_t sent;
} h2req_t;

static int h2_begin(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    (void)ud;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        h2req_t *r = calloc(1, sizeof *r);
        r->headlen = (size_t)snprintf(r->head, sizeof r->head, "REQ * HTTP/2\r\n");
        nghttp2_session_set_stream_user_data(s, f->hd.stream_id, r);
    }
    return 0;
}

static int h2_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    h2req_t *r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!r) return 0;
    if (namelen == 7 && memcmp(name, ":method", 7) == 0)
        snprintf(r->method, sizeof r->method, "%.*s", (int)valuelen, value);
    else if (namelen == 5 && memcmp(name, ":path", 5) == 0)
        snprintf(r->path, sizeof r->path, "%.*s", (int)valuelen, value);
    else if (name[0] != ':' && r->headlen + namelen + valuelen + 8 < sizeof r->head)
        r->headlen += (size_t)snprintf(r->head + r->headlen, sizeof r->head - r->headlen, "%.*s: %.*s\r\n",
                                       (int)namelen, name, (int)valuelen, value);
    return 0;
}

static int h2_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
    (void)flags;
    (void)ud;
    h2req_t *r = nghttp2_session_get_stream_user_data(s, id);
    if (r) {
        r->body = realloc(r->body, r->len + len + 1);
        memcpy(r->body + r->len, data, len);
        r->len += len;
    }
    return 0;
}

static ssize_t h2_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                       nghttp2_data_source *src, void *ud)
{
    (void)s;
    (void)id;
    (void)ud;
    h2req_t *r = src->ptr;
    size_t n = r->rp.len - r->sent;
    if (n > length) n = length;
    memcpy(buf, r->rp.body + r->sent, n);
    r->sent += n;
    if (r->sent == r->rp.len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int h2_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    (void)ud;
    if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM) ||
        (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA))
        return 0;
    h2req_t *r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!r) return 0;
    snprintf(r->head + r->headlen, sizeof r->head - r->headlen, "\r\n");
    handle(&r->rp, r->method, r->path, r->head, r->body ? (const char *)r->body : "", r->len);
    char status[8], clen[24];
    snprintf(status, sizeof status, "%d", r->rp.status);
    snprintf(clen, sizeof clen, "%zu", r->rp.len);
    nghttp2_nv nv[3] = {{(uint8_t *)":status", (uint8_t *)status, 7, strlen(status), 0},
                        {(uint8_t *)"content-length", (uint8_t *)clen, 14, strlen(clen), 0},
                        {(uint8_t *)"content-type", (uint8_t *)r->rp.ctype, 12, strlen(r->rp.ctype), 0}};
    nghttp2_data_provider prd = {.source.ptr = r, .read_callback = h2_read};
    nghttp2_submit_response(s, f->hd.stream_id, nv, r->rp.ctype[0] ? 3 : 2, r->rp.len ? &prd : NULL);
    return 0;
}

static int h2_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    (void)code;
    (void)ud;
    h2req_t *r = nghttp2_session_get_stream_user_data(s, id);
    if (r) {
        nghttp2_session_set_stream_user_data(s, id, NULL);
        free(r->body);
        free(r->rp.body);
        free(r);
    }
    return 0;
}

/* Feed the connection's bytes to its HTTP/2 session and write the answers. */
static bool process_h2(conn_t *c)
{
    if (!c->h2) {
        static nghttp2_session_callbacks *cbs;
        if (!cbs) {
            nghttp2_session_callbacks_new(&cbs);
            nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, h2_begin);
            nghttp2_session_callbacks_set_on_header_callback(cbs, h2_header);
            nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, h2_data);
            nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, h2_frame);
            nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2_close);
        }
        nghttp2_session_server_new(&c->h2, cbs, c);
        nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 8};
        nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, &iv, 1);
    }
    if (nghttp2_session_mem_recv(c->h2, (const uint8_t *)c->buf, c->len) < 0) return false;
    c->len = 0;
    for (;;) {
        const uint8_t *out;
        ssize_t n = nghttp2_session_mem_send(c->h2, &out);
        if (n <= 0) return n == 0;
        if (write(c->fd, out, (size_t)n) != n) return false;
    }
}

/* Consume complete requests from the connection buffer. */
static bool process(conn_t *c)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (c->h2 || (c->len >= sizeof preface - 1 && memcmp(c->buf, preface, sizeof preface - 1) == 0))
        return process_h2(c);
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end) return true;
        size_t hlen = (size_t)(end - c->buf) + 4;
        char *head = strndup(c->buf, hlen);
        char cl[32] = "0";
        header(head, "Content-Length", cl, sizeof cl);
        size_t blen = (size_t)strtoul(cl, NULL, 10);
        if (c->len < hlen + blen) {
            free(head);
            return true;
        }
        char method[16] = "", path[256] = "";
        sscanf(head, "%15s %255s", method, path);
        reply_t rp = {0};
        handle(&rp, method, path, head, c->buf + hlen, blen);
        write_h1(c->fd, &rp);
        free(rp.body);
        free(head);
        memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
        c->len -= hlen + blen;
    }
}

static void *serve(void *arg)
{
    (void)arg;
    conn_t conns[64];
    int nconns = 0;
    for (;;) {
        struct pollfd pfd[66];
        pfd[0] = (struct pollfd){.fd = srv.listen_fd, .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = srv.stop_pipe[0], .events = POLLIN};
        for (int i = 0; i < nconns; i++)
            pfd[2 + i] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
        if (poll(pfd, (nfds_t)(2 + nconns), 1000) < 0 && errno != EINTR) break;
        if (pfd[1].revents) break;
        if ((pfd[0].revents & POLLIN) && nconns < 64) {
            int fd = accept(srv.listen_fd, NULL, NULL);
            if (fd >= 0) conns[nconns++] = (conn_t){.fd = fd};
        }
        for (int i = 0; i < nconns; i++) {
            if (!(pfd[2 + i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            conn_t *c = &conns[i];
            if (c->cap - c->len < 65536) {
                c->cap = c->cap ? c->cap * 2 : 131072;
                c->buf = realloc(c->buf, c->cap);
            }
            ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
            if (r > 0) {
                c->len += (size_t)r;
                if (process(c)) continue;
            }
            {
                close(c->fd);
                free(c->buf);
                nghttp2_session_del(c->h2);
                conns[i] = conns[--nconns];
                pfd[2 + i] = pfd[2 + nconns];
                i--;
            }
        }
    }
    for (int i = 0; i < nconns; i++) {
        close(conns[i].fd);
        free(conns[i].buf);
        nghttp2_session_del(conns[i].h2);
    }
    return NULL;
}

static void server_start(void)
{
    memset(&srv, 0, sizeof srv);
    pthread_mutex_init(&srv.mu, NULL);
    srv.queue = plist_new_array();
    srv.held = plist_new_array();
    srv.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(srv.listen_fd, (struct sockaddr *)&a, sizeof a);
    listen(srv.listen_fd, 64);
    socklen_t al = sizeof a;
    getsockname(srv.listen_fd, (struct sockaddr *)&a, &al);
    srv.port = ntohs(a.sin_port);
    snprintf(srv.profile_url, sizeof srv.profile_url, "http://127.0.0.1:%d/mdm/connect", srv.port);
    if (pipe(srv.stop_pipe) != 0) abort();
    pthread_create(&srv.thread, NULL, serve, NULL);
}

static void server_stop(void)
{
    if (write(srv.stop_pipe[1], "x", 1) != 1) abort();
    pthread_join(srv.thread, NULL);
    close(srv.listen_fd);
    close(srv.stop_pipe[0]);
    close(srv.stop_pipe[1]);
    plist_free(srv.queue);
    plist_free(srv.held);
}

static void queue_command(const char *uuid, const char *rt, const char *key, plist_t value)
{
    plist_t c = plist_new_dict();
    sim_set_str(c, "CommandUUID", uuid);
    plist_t cmd = plist_new_dict();
    sim_set_str(cmd, "RequestType", rt);
    if (key) plist_dict_set_item(cmd, key, value);
    plist_dict_set_item(c, "Command", cmd);
    pthread_mutex_lock(&srv.mu);
    plist_array_append_item(srv.queue, c);
    pthread_mutex_unlock(&srv.mu);
}

static char sim_bin[1024];

/* Run lmdm-sim with arguments; capture stdout; return the exit status. */
static int run_sim(char **out, const char *fmt, ...) SIM_PRINTF(2, 3);
static int run_sim(char **out, const char *fmt, ...)
{
    char args[4096], cmd[6000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>%s/stderr.txt", sim_bin, args, pki.dir);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (cap - n < 1024) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[n] = '\0';
    int st = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *read_stderr(void)
{
    char path[400];
    snprintf(path, sizeof path, "%s/stderr.txt", pki.dir);
    unsigned char *d = NULL;
    size_t n = 0;
    char err[SIM_ERRLEN];
    if (sim_read_file(path, &d, &n, err, sizeof err) != 0) return strdup("");
    return (char *)d;
}

static size_t count_lines(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_binary_against_server(void)
{
    char *out = NULL, *errtxt = NULL;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/simdev", pki.dir);
    server_start();

    /* --help of every subcommand. */
    static const char *const subs[] = {"enroll", "checkin", "connect", "run", "fleet"};
    for (size_t i = 0; i < 5; i++) {
        CHECK_INT_EQ(run_sim(&out, "%s --help", subs[i]), 0);
        CHECK_STR_CONTAINS(out, "Usage:");
        free(out);
    }
    CHECK_INT_EQ(run_sim(NULL, "frobnicate"), 2);
    CHECK_INT_EQ(run_sim(NULL, "checkin --dir %s --message Nope", dir), 2);

    /* Enroll, deterministic with --seed. */
    CHECK_INT_EQ(run_sim(&out, "enroll --url http://127.0.0.1:%d --dir %s --profile-ca %s --seed 7 --checkin",
                         srv.port, dir, pki.ca_file),
                 0);
    CHECK_STR_CONTAINS(out, "\"enrollment\":\"device\"");
    CHECK_STR_CONTAINS(out, "/mdm/checkin");
    CHECK_STR_CONTAINS(out, "\"profile_signer\":\"trusted\"");
    free(out);
    sim_device_t d;
    char err[SIM_ERRLEN];
    CHECK_INT_EQ(sim_device_load(&d, dir, err, sizeof err), 0);
    char udid[64];
    snprintf(udid, sizeof udid, "%s", d.udid);
    sim_device_clear(&d);
    char dir2[400];
    snprintf(dir2, sizeof dir2, "%s/simdev2", pki.dir);
    CHECK_INT_EQ(run_sim(NULL, "enroll --url http://127.0.0.1:%d/enroll --dir %s --profile-ca %s --seed 7",
                         srv.port, dir2, pki.ca_file),
                 0);
    CHECK_INT_EQ(sim_device_load(&d, dir2, err, sizeof err), 0);
    CHECK_STR_EQ(d.udid, udid);
    sim_device_clear(&d);
    CHECK_INT_EQ(run_sim(NULL, "enroll --url http://127.0.0.1:%d --dir %s/bad --profile-ca %s", srv.port,
                         pki.dir, pki.other_ca_file),
                 4);
    errtxt = read_stderr();
    CHECK_STR_CONTAINS(errtxt, "does not chain");
    free(errtxt);
    /* --cacert alone: an untrusted signer is a warning, as on a device. */
    CHECK_INT_EQ(run_sim(&out, "enroll --url http://127.0.0.1:%d --dir %s/soft --cacert %s", srv.port,
                         pki.dir, pki.other_ca_file),
                 0);
    CHECK_STR_CONTAINS(out, "\"profile_signer\":\"untrusted\"");
    free(out);
    errtxt = read_stderr();
    CHECK_STR_CONTAINS(errtxt, "Not Verified");
    free(errtxt);
    pthread_mutex_lock(&srv.mu);
    CHECK_INT_EQ(srv.ncheckins, 2);
    CHECK_STR_EQ(srv.checkins[0], "Authenticate");
    CHECK_STR_EQ(srv.checkins[1], "TokenUpdate");
    pthread_mutex_unlock(&srv.mu);

    /* Every check-in message reaches the server, signed, with every key. */
    for (size_t i = 0; sim_checkin_types[i]; i++) {
        CHECK_INT_EQ(run_sim(&out, "checkin --dir %s --message %s --all-keys", dir, sim_checkin_types[i]), 0);
        CHECK_STR_CONTAINS(out, "HTTP/1.1 200");
        free(out);
    }
    /* --http2 over plain http is h2c with prior knowledge. */
    CHECK_INT_EQ(run_sim(&out, "checkin --dir %s --message Authenticate --http2 --timeout 3000", dir), 0);
    CHECK_STR_CONTAINS(out, "HTTP/2 200");
    free(out);
    /* A refused check-in: status and body printed, exit 3. */
    pthread_mutex_lock(&srv.mu);
    srv.refuse_checkin = true;
    pthread_mutex_unlock(&srv.mu);
    CHECK_INT_EQ(run_sim(&out, "checkin --dir %s --message TokenUpdate", dir), 3);
    CHECK_STR_CONTAINS(out, "HTTP/1.1 403");
    CHECK_STR_CONTAINS(out, "com.apple.unrecognized.device");
    free(out);
    pthread_mutex_lock(&srv.mu);
    srv.refuse_checkin = false;
    pthread_mutex_unlock(&srv.mu);
    /* Signed with another device's identity: this server checks the CA only
     * and accepts it (the broker must not); without an identity it refuses. */
    pthread_mutex_lock(&srv.mu);
    int bad_before = srv.bad_signatures;
    pthread_mutex_unlock(&srv.mu);
    CHECK_INT_EQ(run_sim(NULL, "checkin --dir %s --message TokenUpdate --sign-with %s", dir, dir2), 0);
    CHECK_INT_EQ(run_sim(NULL, "checkin --dir %s --message CheckOut --mode none", dir), 3);
    pthread_mutex_lock(&srv.mu);
    CHECK_INT_EQ(srv.bad_signatures, bad_before + 1);
    CHECK_INT_EQ(srv.bad_content_types, 0);
    pthread_mutex_unlock(&srv.mu);
    /* Save a request, replay it byte for byte. */
    char prefix[450];
    snprintf(prefix, sizeof prefix, "%s/req", pki.dir);
    CHECK_INT_EQ(run_sim(NULL, "checkin --dir %s --message TokenUpdate --save-request %s", dir, prefix), 0);
    CHECK_INT_EQ(run_sim(NULL, "checkin --dir %s --message TokenUpdate --replay %s", dir, prefix), 0);
    CHECK_INT_EQ(run_sim(NULL,
                         "checkin --dir %s --message TokenUpdate --body /dev/null --replay %s --set X=1", dir,
                         prefix),
                 0);

    /* run: answer commands, NotNow one of them, get it back after Idle. */
    plist_t q = plist_new_array();
    plist_array_append_item(q, plist_new_string("UDID"));
    plist_array_append_item(q, plist_new_string("SerialNumber"));
    queue_command("C-1", "DeviceInformation", "Queries", q);
    queue_command("C-2", "ProfileList", NULL, NULL);
    queue_command("C-3", "EraseDevice", NULL, NULL);
    queue_command("C-4", "CertificateList", NULL, NULL);
    queue_command("C-5", "SecurityInfo", NULL, NULL); /* AccessRights lack 1024 */
    CHECK_INT_EQ(run_sim(&out, "run --dir %s --notnow ProfileList --idle-after", dir), 0);
    CHECK_STR_CONTAINS(out, "{\"sent_status\":\"Idle\",\"command_uuid\":null");
    CHECK_STR_CONTAINS(out, "\"sent_status\":\"Acknowledged\",\"command_uuid\":\"C-1\"");
    CHECK_STR_CONTAINS(out, "\"sent_status\":\"NotNow\",\"command_uuid\":\"C-2\"");
    CHECK_STR_CONTAINS(out, "\"sent_status\":\"Acknowledged\",\"command_uuid\":\"C-2\"");
    /* The profile grants no erase: the device itself refuses. */
    CHECK_STR_CONTAINS(out, "\"sent_status\":\"Error\",\"command_uuid\":\"C-3\"");
    CHECK_STR_CONTAINS(out, "\"sent_status\":\"Acknowledged\",\"command_uuid\":\"C-4\"");
    CHECK_STR_CONTAINS(out, "\"sent_status\":\"Error\",\"command_uuid\":\"C-5\"");
    CHECK_INT_EQ(count_lines(out, "\"next_command_uuid\":null"), 2);
    free(out);
    pthread_mutex_lock(&srv.mu);
    CHECK_INT_EQ(plist_array_get_size(srv.queue), 0);
    CHECK_INT_EQ(srv.bad_content_types, 0);
    pthread_mutex_unlock(&srv.mu);

    /* The same over h2c. */
    queue_command("H-1", "ProfileList", NULL, NULL);
    queue_command("H-2", "CertificateList", NULL, NULL);
    CHECK_INT_EQ(run_sim(&out, "run --dir %s --http2", dir), 0);
    CHECK_STR_CONTAINS(out, "\"command_uuid\":\"H-2\",\"request_type\":\"CertificateList\",\"http\":200,"
                            "\"http_version\":\"HTTP/2\"");
    free(out);

    /* connect: one exchange with a chosen status. */
    CHECK_INT_EQ(run_sim(&out, "connect --dir %s --status Acknowledged --uuid C-404", dir), 0);
    CHECK_STR_CONTAINS(out, "HTTP/1.1 200");
    free(out);
    pthread_mutex_lock(&srv.mu);
    CHECK_STR_EQ(srv.statuses[srv.nstatuses - 1], "Acknowledged C-404");
    pthread_mutex_unlock(&srv.mu);

    /* Bad server answers: a clear message and exit 4, no crash. */
    pthread_mutex_lock(&srv.mu);
    srv.bad_answer = 1;
    pthread_mutex_unlock(&srv.mu);
    CHECK_INT_EQ(run_sim(NULL, "run --dir %s", dir), 4);
    errtxt = read_stderr();
    CHECK_STR_CONTAINS(errtxt, "not a property list");
    free(errtxt);
    pthread_mutex_lock(&srv.mu);
    srv.bad_answer = 2;
    pthread_mutex_unlock(&srv.mu);
    CHECK_INT_EQ(run_sim(NULL, "run --dir %s", dir), 4);
    errtxt = read_stderr();
    CHECK_STR_CONTAINS(errtxt, "no CommandUUID");
    free(errtxt);
    pthread_mutex_lock(&srv.mu);
    srv.bad_answer = 0;
    pthread_mutex_unlock(&srv.mu);

    /* fleet: a few devices for a second, Idle polls, then cycles; the text
     * summary once. */
    CHECK_INT_EQ(run_sim(&out, "fleet --url http://127.0.0.1:%d --profile-ca %s --count 2 --duration 0.3",
                         srv.port, pki.ca_file),
                 0);
    CHECK_STR_CONTAINS(out, "requests/s");
    CHECK_STR_CONTAINS(out, "errors: 0");
    free(out);
    CHECK_INT_EQ(run_sim(&out,
                         "fleet --url http://127.0.0.1:%d --profile-ca %s --count 5 --duration 1 "
                         "--concurrency 3 --json",
                         srv.port, pki.ca_file),
                 0);
    json_t *j = json_loads(out, 0, NULL);
    CHECK(j != NULL);
    CHECK_INT_EQ(json_integer_value(json_object_get(j, "devices")), 5);
    CHECK(json_integer_value(json_object_get(j, "requests")) > 5);
    CHECK_INT_EQ(json_integer_value(json_object_get(j, "errors")), 0);
    CHECK(json_real_value(json_object_get(j, "p99_ms")) >= json_real_value(json_object_get(j, "p50_ms")));
    json_decref(j);
    free(out);
    for (int i = 0; i < 20; i++) {
        char u[32];
        snprintf(u, sizeof u, "F-%d", i);
        queue_command(u, i % 2 ? "ProfileList" : "CertificateList", NULL, NULL);
    }
    /* fleet over h2c: two shared connections, the nghttp2 client. */
    CHECK_INT_EQ(run_sim(&out,
                         "fleet --url http://127.0.0.1:%d --profile-ca %s --count 6 --duration 1 "
                         "--concurrency 12 --h2c --connections 2 --json",
                         srv.port, pki.ca_file),
                 0);
    j = json_loads(out, 0, NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "http_version")), "HTTP/2");
    CHECK(json_integer_value(json_object_get(j, "requests")) > 12);
    CHECK_INT_EQ(json_integer_value(json_object_get(j, "errors")), 0);
    json_decref(j);
    free(out);
    char state[450];
    snprintf(state, sizeof state, "%s/fleet.json", pki.dir);
    CHECK_INT_EQ(run_sim(&out,
                         "fleet --url http://127.0.0.1:%d --profile-ca %s --count 4 --duration 1.5 "
                         "--mode cycle --state %s --json",
                         srv.port, pki.ca_file, state),
                 0);
    j = json_loads(out, 0, NULL);
    long answered = (long)json_integer_value(json_object_get(j, "commands_answered"));
    CHECK(answered > 0);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "mode")), "cycle");
    json_decref(j);
    free(out);
    pthread_mutex_lock(&srv.mu);
    /* This server hands its one queue to whichever device polls, so two
     * devices may answer the same command: every command removed was
     * answered, not necessarily the other way round. */
    CHECK(plist_array_get_size(srv.queue) < 20);
    CHECK(answered >= 20 - (long)plist_array_get_size(srv.queue));
    int before = srv.ncheckins;
    pthread_mutex_unlock(&srv.mu);
    /* The saved fleet is reused: no new enrollment or check-in. */
    CHECK_INT_EQ(
        run_sim(NULL, "fleet --url http://127.0.0.1:%d --count 4 --duration 0.5 --state %s", srv.port, state),
        0);
    pthread_mutex_lock(&srv.mu);
    CHECK_INT_EQ(srv.ncheckins, before);
    pthread_mutex_unlock(&srv.mu);
    /* Errors make fleet fail. */
    pthread_mutex_lock(&srv.mu);
    srv.bad_answer = 1;
    pthread_mutex_unlock(&srv.mu);
    CHECK_INT_EQ(
        run_sim(&out, "fleet --url http://127.0.0.1:%d --count 2 --duration 0.3 --state %s", srv.port, state),
        1);
    free(out);
    server_stop();
}

int main(int argc, char **argv)
{
    const char *bin = getenv("LMDM_SIM_BIN");
    if (bin && *bin) {
        snprintf(sim_bin, sizeof sim_bin, "%s", bin);
    } else {
        /* Run by hand from the build directory: lmdm-sim sits next to us. */
        snprintf(sim_bin, sizeof sim_bin, "%s", argv[0]);
        char *slash = strrchr(sim_bin, '/');
        snprintf(slash ? slash + 1 : sim_bin, sizeof sim_bin - (size_t)(slash ? slash + 1 - sim_bin : 0),
                 "lmdm-sim");
    }
    (void)argc;
    char err[SIM_ERRLEN];
    const char *dir = sim_schema_find_dir();
    if (!dir)
        fprintf(stderr, "Apple's schema not found: set LMDM_SRC or LMDM_SCHEMA\n");
    else if (!(schema = sim_schema_load(dir, err, sizeof err)))
        fprintf(stderr, "schema: %s\n", err);
    RUN(test_yaml_reader);
    RUN(test_schema_loaded);
    RUN(test_checkins_cover_schema);
    RUN(test_checkins_realistic);
    RUN(test_answers_cover_schema);
    RUN(test_answer_behaviour);
    RUN(test_answers_like_captures);
    RUN(test_command_parse);
    setup_pki();
    RUN(test_profile);
    RUN(test_binary_against_server);
    teardown_pki();
    sim_schema_free(schema);
    return harness_finish();
}
