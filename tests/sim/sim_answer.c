/* Commands: parse what the server hands out, answer like a device.
 *
 * An answer is built in three layers:
 *  1. the device's own refusals, as a real device makes them: a RequestType
 *     it does not know (or not on this platform) -> Error 12021; a command
 *     the enrollment's AccessRights or User Enrollment forbid, or that needs
 *     supervision or a Shared iPad -> Error; a required key missing -> Error
 *     (MDMClientError 97, as devices report);
 *  2. hand-written answers where realism matters (DeviceInformation answers
 *     exactly the queried keys; lists reflect what the device has installed
 *     through InstallProfile / InstallApplication; RemoveProfile of something
 *     unknown fails like on a device);
 *  3. for every other command with `responsekeys` in Apple's schema, a value
 *     of the schema's shape for each key (sim_gen_value).
 * With all_keys, missing top-level response keys are filled in from the
 * schema too, so a test can prove the broker stores every key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "sim.h"

/* Seconds between 1970 and 2001, libplist's epoch. */
#define APPLE_EPOCH 978307200

int sim_command_parse(const void *body, size_t len, sim_command_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (len == 0) return 0;
    plist_t p = sim_plist_parse(body, len);
    if (!p) {
        sim_errf(err, errlen, "server answer is not a property list (%zu bytes)", len);
        return -1;
    }
    if (plist_get_node_type(p) != PLIST_DICT) {
        sim_errf(err, errlen, "server answer is not a dictionary");
        plist_free(p);
        return -1;
    }
    char *uuid = sim_plist_str(p, "CommandUUID");
    plist_t cmd = plist_dict_get_item(p, "Command");
    char *rt = cmd && plist_get_node_type(cmd) == PLIST_DICT ? sim_plist_str(cmd, "RequestType") : NULL;
    int rc = -1;
    if (!uuid || !*uuid)
        sim_errf(err, errlen, "server answer has no CommandUUID string");
    else if (strlen(uuid) >= sizeof out->uuid)
        sim_errf(err, errlen, "server answer's CommandUUID is too long");
    else if (!cmd || plist_get_node_type(cmd) != PLIST_DICT)
        sim_errf(err, errlen, "server answer has no Command dictionary");
    else if (!rt || !*rt)
        sim_errf(err, errlen, "server answer's Command has no RequestType string");
    else if (strlen(rt) >= sizeof out->request_type)
        sim_errf(err, errlen, "server answer's RequestType is too long");
    else
        rc = 1;
    if (rc == 1) {
        snprintf(out->uuid, sizeof out->uuid, "%s", uuid);
        snprintf(out->request_type, sizeof out->request_type, "%s", rt);
        out->root = p;
        out->command = cmd;
    } else {
        plist_free(p);
    }
    free(uuid);
    free(rt);
    return rc;
}

void sim_command_clear(sim_command_t *c)
{
    if (!c) return;
    plist_free(c->root);
    memset(c, 0, sizeof *c);
}

plist_t sim_idle_build(const sim_device_t *d, bool user_channel)
{
    plist_t m = plist_new_dict();
    sim_add_identity(m, d, user_channel, false);
    sim_set_str(m, "Status", "Idle");
    return m;
}

/* ---- small helpers ---------------------------------------------------- */

static uint64_t fnv(const char *s, uint64_t salt)
{
    uint64_t h = 1469598103934665603ULL ^ salt;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* A MAC address stable for the device (Apple's OUI, then hashed bytes). */
static void mac_addr(const sim_device_t *d, uint64_t salt, char out[18])
{
    uint64_t h = fnv(d->udid, salt);
    snprintf(out, 18, "a4:83:e7:%02x:%02x:%02x", (unsigned)(h & 0xff), (unsigned)(h >> 8 & 0xff),
             (unsigned)(h >> 16 & 0xff));
}

static bool is_ios(const sim_device_t *d)
{
    return strcmp(d->platform, "iOS") == 0;
}

static plist_t error_chain_item(const char *domain, int64_t code, const char *msg)
{
    plist_t e = plist_new_dict();
    sim_set_int(e, "ErrorCode", code);
    sim_set_str(e, "ErrorDomain", domain);
    sim_set_str(e, "LocalizedDescription", msg);
    sim_set_str(e, "USEnglishDescription", msg);
    return e;
}

static void make_error(plist_t ans, const char *domain, int64_t code, const char *msg)
{
    sim_set_str(ans, "Status", "Error");
    plist_t chain = plist_new_array();
    plist_array_append_item(chain, error_chain_item(domain, code, msg));
    plist_dict_set_item(ans, "ErrorChain", chain);
}

static char *cmd_str(const sim_command_t *c, const char *key)
{
    return sim_plist_str(c->command, key);
}

static bool cmd_bool(const sim_command_t *c, const char *key)
{
    plist_t v = plist_dict_get_item(c->command, key);
    uint8_t b = 0;
    if (v && plist_get_node_type(v) == PLIST_BOOLEAN) plist_get_bool_val(v, &b);
    return b != 0;
}

/* Whether `s` is in the command's string array `key` (true when the command
 * has no such array: no filter). */
static bool in_filter(const sim_command_t *c, const char *key, const char *s)
{
    plist_t a = plist_dict_get_item(c->command, key);
    if (!a || plist_get_node_type(a) != PLIST_ARRAY) return true;
    uint32_t n = plist_array_get_size(a);
    for (uint32_t i = 0; i < n; i++) {
        plist_t it = plist_array_get_item(a, i);
        char *v = NULL;
        if (plist_get_node_type(it) == PLIST_STRING) plist_get_string_val(it, &v);
        bool hit = v && strcmp(v, s) == 0;
        free(v);
        if (hit) return true;
    }
    return false;
}

static json_t *state_arr(sim_device_t *d, const char *key)
{
    if (!d->state) d->state = json_object();
    json_t *a = json_object_get(d->state, key);
    if (!json_is_array(a)) {
        a = json_array();
        json_object_set_new(d->state, key, a);
    }
    return a;
}

static json_t *state_obj(sim_device_t *d, const char *key)
{
    if (!d->state) d->state = json_object();
    json_t *o = json_object_get(d->state, key);
    if (!json_is_object(o)) {
        o = json_object();
        json_object_set_new(d->state, key, o);
    }
    return o;
}

/* JSON from the device state -> plist. Strings under keys that are data in
 * Apple's schema (Data, SignerCertificates) hold base64; keys starting with
 * '_' are the simulator's own bookkeeping. */
static plist_t json_to_plist(const json_t *j, bool as_data)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        plist_t d = plist_new_dict();
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            if (k[0] == '_') continue;
            bool data = strcmp(k, "Data") == 0 || strcmp(k, "SignerCertificates") == 0;
            plist_dict_set_item(d, k, json_to_plist(v, data));
        }
        return d;
    }
    case JSON_ARRAY: {
        plist_t a = plist_new_array();
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) plist_array_append_item(a, json_to_plist(v, as_data));
        return a;
    }
    case JSON_STRING:
        if (as_data) {
            size_t n = 0;
            unsigned char *b = sim_unb64(json_string_value(j), &n);
            plist_t p = plist_new_data(b ? (const char *)b : "", b ? n : 0);
            free(b);
            return p;
        }
        return plist_new_string(json_string_value(j));
    case JSON_INTEGER: return plist_new_uint((uint64_t)json_integer_value(j));
    case JSON_REAL: return plist_new_real(json_real_value(j));
    case JSON_TRUE: return plist_new_bool(1);
    case JSON_FALSE: return plist_new_bool(0);
    default: return plist_new_string("");
    }
}

/* ---- certificates and profiles in the device state -------------------- */

static char *cert_cn(X509 *x)
{
    char cn[256] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    return strdup(cn);
}

static void state_add_cert(sim_device_t *d, X509 *x, bool identity, const char *profile)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    if (n <= 0) return;
    char *b64 = sim_b64(der, (size_t)n);
    char *cn = cert_cn(x);
    json_array_append_new(state_arr(d, "certificates"),
                          json_pack("{s:s, s:s, s:b, s:s}", "CommonName", cn, "Data", b64, "IsIdentity",
                                    identity, "_profile", profile ? profile : ""));
    free(cn);
    free(b64);
    OPENSSL_free(der);
}

/* Certificates a profile payload carries (DER or PEM), for CertificateList. */
static void state_add_payload_certs(sim_device_t *d, plist_t payload, const char *type, const char *profile)
{
    plist_t content = plist_dict_get_item(payload, "PayloadContent");
    if (!content || plist_get_node_type(content) != PLIST_DATA) return;
    char *bytes = NULL;
    uint64_t n = 0;
    plist_get_data_val(content, &bytes, &n);
    if (strcmp(type, "com.apple.security.pkcs12") == 0) {
        char *pw = sim_plist_str(payload, "Password"), *pem = NULL;
        char err[SIM_ERRLEN];
        EVP_PKEY *k = NULL;
        X509 *x = NULL;
        if (sim_p12_to_pem((unsigned char *)bytes, (size_t)n, pw, &pem, err, sizeof err) == 0 &&
            sim_pem_identity(pem, &k, &x, err, sizeof err) == 0)
            state_add_cert(d, x, true, profile);
        EVP_PKEY_free(k);
        X509_free(x);
        free(pem);
        free(pw);
    } else {
        const unsigned char *p = (const unsigned char *)bytes;
        X509 *x = d2i_X509(NULL, &p, (long)n);
        if (!x) {
            BIO *b = BIO_new_mem_buf(bytes, (int)n);
            x = PEM_read_bio_X509(b, NULL, NULL, NULL);
            BIO_free(b);
        }
        if (x) state_add_cert(d, x, false, profile);
        X509_free(x);
    }
    free(bytes);
}

static json_t *plist_str_json(plist_t dict, const char *key, const char *def)
{
    char *s = sim_plist_str(dict, key);
    json_t *j = json_string(s ? s : def);
    free(s);
    return j;
}

int sim_state_add_profile(sim_device_t *d, plist_t profile, bool managed, X509 *signer)
{
    char *ident = sim_plist_str(profile, "PayloadIdentifier");
    if (!ident || !*ident) {
        free(ident);
        return -1;
    }
    /* Installing a profile with the same identifier replaces it. */
    json_t *profiles = state_arr(d, "profiles");
    for (size_t i = 0; i < json_array_size(profiles); i++) {
        const char *id = json_string_value(json_object_get(json_array_get(profiles, i), "PayloadIdentifier"));
        if (id && strcmp(id, ident) == 0) {
            json_array_remove(profiles, i);
            break;
        }
    }
    json_t *certs = state_arr(d, "certificates");
    for (size_t i = json_array_size(certs); i-- > 0;) {
        const char *p = json_string_value(json_object_get(json_array_get(certs, i), "_profile"));
        if (p && strcmp(p, ident) == 0) json_array_remove(certs, i);
    }
    json_t *item = json_object();
    json_object_set_new(item, "PayloadIdentifier", json_string(ident));
    json_object_set_new(item, "PayloadUUID", plist_str_json(profile, "PayloadUUID", ""));
    json_object_set_new(item, "PayloadDisplayName", plist_str_json(profile, "PayloadDisplayName", ident));
    json_object_set_new(item, "PayloadOrganization", plist_str_json(profile, "PayloadOrganization", ""));
    json_object_set_new(item, "PayloadDescription", plist_str_json(profile, "PayloadDescription", ""));
    json_object_set_new(item, "PayloadVersion", json_integer(1));
    plist_t rd = plist_dict_get_item(profile, "PayloadRemovalDisallowed");
    uint8_t b = 0;
    if (rd && plist_get_node_type(rd) == PLIST_BOOLEAN) plist_get_bool_val(rd, &b);
    json_object_set_new(item, "PayloadRemovalDisallowed", json_boolean(b));
    json_object_set_new(item, "HasRemovalPasscode", json_false());
    json_object_set_new(item, "IsEncrypted", json_false());
    json_object_set_new(item, "IsManaged", json_boolean(managed));
    json_t *signers = json_array();
    if (signer) {
        unsigned char *der = NULL;
        int n = i2d_X509(signer, &der);
        if (n > 0) {
            char *b64 = sim_b64(der, (size_t)n);
            json_array_append_new(signers, json_string(b64));
            free(b64);
        }
        OPENSSL_free(der);
    }
    json_object_set_new(item, "SignerCertificates", signers);
    json_t *content = json_array();
    plist_t pc = plist_dict_get_item(profile, "PayloadContent");
    uint32_t n = pc && plist_get_node_type(pc) == PLIST_ARRAY ? plist_array_get_size(pc) : 0;
    for (uint32_t i = 0; i < n; i++) {
        plist_t p = plist_array_get_item(pc, i);
        char *type = sim_plist_str(p, "PayloadType");
        if (!type) continue;
        json_array_append_new(content,
                              json_pack("{s:s, s:o, s:o, s:o, s:i}", "PayloadType", type, "PayloadIdentifier",
                                        plist_str_json(p, "PayloadIdentifier", ""), "PayloadUUID",
                                        plist_str_json(p, "PayloadUUID", ""), "PayloadDisplayName",
                                        plist_str_json(p, "PayloadDisplayName", type), "PayloadVersion", 1));
        if (managed && strncmp(type, "com.apple.security.", 19) == 0)
            state_add_payload_certs(d, p, type, ident);
        free(type);
    }
    json_object_set_new(item, "PayloadContent", content);
    json_array_append_new(profiles, item);
    free(ident);
    return 0;
}

void sim_state_add_identity(sim_device_t *d)
{
    if (d->cert) state_add_cert(d, d->cert, true, d->profile_identifier);
}

/* ---- schema-shaped values --------------------------------------------- */

static bool contains(const char *s, const char *needle)
{
    return s && strstr(s, needle) != NULL;
}

/* A name for a wildcard key ("ANY restriction name"). */
static const char *any_name(const char *key)
{
    if (contains(key, "restriction")) return "allowCamera";
    if (contains(key, "profile")) return "com.example.profile";
    if (contains(key, "app") || contains(key, "bundle")) return "com.example.notes";
    return "example";
}

static plist_t gen_string(const sim_device_t *d, const char *key)
{
    char buf[64];
    if (contains(key, "UDID")) return plist_new_string(d->user_enrollment ? d->enrollment_id : d->udid);
    if (contains(key, "UUID") || contains(key, "GUID")) {
        sim_uuid(buf);
        return plist_new_string(buf);
    }
    if (contains(key, "MAC")) {
        mac_addr(d, fnv(key, 7), buf);
        return plist_new_string(buf);
    }
    if (contains(key, "Serial")) return plist_new_string(d->serial);
    if (contains(key, "URL")) return plist_new_string("https://example.com/");
    if (contains(key, "Identifier") || contains(key, "BundleID"))
        return plist_new_string("com.example.notes");
    if (contains(key, "Version")) return plist_new_string("1.0");
    if (contains(key, "Date") || contains(key, "Time")) return plist_new_string("2024-10-28T09:00:00Z");
    if (contains(key, "Name")) return plist_new_string("Example");
    return plist_new_string("example");
}

static int64_t gen_int(const char *key)
{
    if (contains(key, "Size") || contains(key, "Capacity") || contains(key, "Bytes")) return 104857600;
    if (contains(key, "Port")) return 443;
    return 1;
}

plist_t sim_gen_value(const sim_device_t *d, const sy_node_t *keydef, int depth)
{
    const char *type = sy_get_str(keydef, "type");
    const char *key = sy_get_str(keydef, "key");
    const sy_node_t *range = sy_get(keydef, "rangelist");
    const char *first = sy_len(range) ? sy_str(sy_at(range, 0)) : NULL;
    const char *def = sy_get_str(keydef, "default");
    if (!type) return NULL;
    if (strcmp(type, "<string>") == 0)
        return first ? plist_new_string(first) : def ? plist_new_string(def) : gen_string(d, key);
    if (strcmp(type, "<integer>") == 0) {
        const char *v = first ? first : def;
        return plist_new_uint((uint64_t)(v ? strtoll(v, NULL, 10) : gen_int(key)));
    }
    if (strcmp(type, "<real>") == 0) {
        if (contains(key, "Latitude")) return plist_new_real(52.5200);
        if (contains(key, "Longitude")) return plist_new_real(13.4050);
        return plist_new_real(def ? strtod(def, NULL) : 0.5);
    }
    if (strcmp(type, "<boolean>") == 0) return plist_new_bool(def && strcmp(def, "true") == 0);
    if (strcmp(type, "<date>") == 0) return plist_new_date(1730106000 - APPLE_EPOCH, 0);
    if (strcmp(type, "<data>") == 0) {
        if (contains(key, "Certificate") && d->cert) {
            unsigned char *der = NULL;
            int n = i2d_X509(d->cert, &der);
            plist_t p = plist_new_data((const char *)der, n > 0 ? (uint64_t)n : 0);
            OPENSSL_free(der);
            return p;
        }
        unsigned char b[16];
        sim_rand_bytes(b, sizeof b);
        return plist_new_data((const char *)b, sizeof b);
    }
    const sy_node_t *subs = sy_get(keydef, "subkeys");
    if (strcmp(type, "<dictionary>") == 0) {
        plist_t dict = plist_new_dict();
        if (depth > 8) return dict;
        for (size_t i = 0; i < sy_len(subs); i++) {
            const sy_node_t *sk = sy_at(subs, i);
            const char *k = sy_get_str(sk, "key");
            if (!k || !sim_schema_available(sk, d->platform, d->os_version)) continue;
            plist_t v = sim_gen_value(d, sk, depth + 1);
            if (v) plist_dict_set_item(dict, strncmp(k, "ANY", 3) == 0 ? any_name(k) : k, v);
        }
        return dict;
    }
    if (strcmp(type, "<array>") == 0) {
        plist_t arr = plist_new_array();
        if (depth > 8 || !sy_len(subs)) return arr;
        plist_t v = sim_gen_value(d, sy_at(subs, 0), depth + 1);
        if (v) plist_array_append_item(arr, v);
        return arr;
    }
    /* <any> and anything newer */
    return plist_new_string("example");
}

/* ---- hand-written answers ------------------------------------------------ */

/* A DeviceInformation value the device knows for itself; NULL = let the
 * schema shape it. Types follow information.device.yaml. */
static plist_t devinfo_value(const sim_device_t *d, const char *k)
{
    char buf[128];
    bool ios = is_ios(d);
#define IS(name) (strcmp(k, name) == 0)
    if (IS("UDID")) return plist_new_string(d->udid);
    if (IS("DeviceName")) return plist_new_string(d->device_name);
    if (IS("OSVersion")) return plist_new_string(d->os_version);
    if (IS("BuildVersion")) return plist_new_string(d->build_version);
    if (IS("ModelName")) return plist_new_string(d->model_name);
    if (IS("Model")) return plist_new_string(d->model);
    if (IS("ModelNumber")) {
        snprintf(buf, sizeof buf, "%.5s", d->model);
        return plist_new_string(buf);
    }
    if (IS("ProductName")) return plist_new_string(d->product_name);
    if (IS("SerialNumber")) return plist_new_string(d->serial);
    if (IS("IMEI")) return d->imei[0] ? plist_new_string(d->imei) : NULL;
    if (IS("MEID")) return d->meid[0] ? plist_new_string(d->meid) : NULL;
    if (IS("DeviceCapacity")) return plist_new_real(ios ? 119.17 : 460.43);
    if (IS("AvailableDeviceCapacity")) return plist_new_real(ios ? 61.52 : 212.9);
    if (IS("BatteryLevel")) return plist_new_real(0.81);
    if (IS("HasBattery")) return plist_new_bool(1);
    if (IS("IsSupervised") || IS("IsMultiUser") || IS("IsMDMLostModeEnabled") ||
        IS("AwaitingConfiguration") || IS("IsRoaming") || IS("IsNetworkTethered"))
        return plist_new_bool(0);
    if (IS("IsDeviceLocatorServiceEnabled") || IS("IsActivationLockSupported") ||
        IS("IsCloudBackupEnabled") || IS("DiagnosticSubmissionEnabled"))
        return plist_new_bool(1);
    if (IS("IsActivationLockEnabled")) return plist_new_bool(ios);
    if (IS("IsAppleSilicon")) return plist_new_bool(!ios);
    if (IS("WiFiMAC") || IS("BluetoothMAC") || (IS("EthernetMAC") && !ios)) {
        mac_addr(d, fnv(k, 3), buf);
        return plist_new_string(buf);
    }
    if (IS("LocalHostName") || IS("HostName")) {
        size_t j = 0;
        for (const char *p = d->device_name; *p && j + 8 < sizeof buf; p++) {
            if (*p == ' ')
                buf[j++] = '-';
            else if (*p != '\'')
                buf[j++] = IS("HostName") && *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
        }
        buf[j] = '\0';
        if (IS("HostName")) strcat(buf, ".local");
        return plist_new_string(buf);
    }
    if (IS("TimeZone")) return plist_new_string("Europe/Berlin");
    if (IS("PushToken")) {
        unsigned char t[32];
        sim_unhex(d->push_token, t, 32);
        return plist_new_data((const char *)t, 32);
    }
    if (IS("EASDeviceIdentifier")) {
        snprintf(buf, sizeof buf, "%016llX", (unsigned long long)fnv(d->udid, 11));
        return plist_new_string(buf);
    }
    if (IS("ProvisioningUDID") && !ios) return plist_new_string(d->udid);
    if (IS("CellularTechnology") && ios) return plist_new_uint(3);
    if (IS("ModemFirmwareVersion") && d->imei[0]) return plist_new_string("2.00.05");
    if (IS("CarrierSettingsVersion") && d->imei[0]) return plist_new_string("60.0");
#undef IS
    return NULL;
}

static bool key_allowed(const sim_device_t *d, const sy_node_t *keydef, const sim_answer_opts_t *o)
{
    if (!sim_schema_available(keydef, d->platform, d->os_version)) return false;
    const sy_node_t *os = sim_schema_os(keydef, d->platform);
    if (d->user_enrollment) {
        const char *m = sy_get_str(sy_get(os, "userenrollment"), "mode");
        return !(m && strcmp(m, "forbidden") == 0);
    }
    if (o->enforce_rights && d->access_rights >= 0) {
        long bit = sim_access_bit(sy_get_str(os, "accessrights"));
        if (bit && !(d->access_rights & bit)) return false;
    }
    return true;
}

static const sy_node_t *find_key(const sy_node_t *list, const char *key)
{
    for (size_t j = 0; j < sy_len(list); j++) {
        const char *k = sy_get_str(sy_at(list, j), "key");
        if (k && strcmp(k, key) == 0) return sy_at(list, j);
    }
    return NULL;
}

/* DeviceInformation: the conditions of each query (platform, AccessRights,
 * User Enrollment) are on payloadkeys Queries -> QueriesItem -> subkeys; the
 * types of the answers on responsekeys QueryResponses -> subkeys. */
static void answer_device_information(sim_device_t *d, const sim_command_t *c, plist_t ans,
                                      const sim_answer_opts_t *o)
{
    plist_t out = plist_new_dict();
    plist_t q = plist_dict_get_item(c->command, "Queries");
    const sy_node_t *root = sim_schema_command(o->schema, "DeviceInformation");
    const sy_node_t *types =
        sy_get(find_key(sim_schema_keys(root, "responsekeys"), "QueryResponses"), "subkeys");
    const sy_node_t *queries = sy_get(
        sy_at(sy_get(find_key(sim_schema_keys(root, "payloadkeys"), "Queries"), "subkeys"), 0), "subkeys");
    uint32_t n = q && plist_get_node_type(q) == PLIST_ARRAY ? plist_array_get_size(q) : 0;
    for (uint32_t i = 0; i < n; i++) {
        plist_t it = plist_array_get_item(q, i);
        char *k = NULL;
        if (plist_get_node_type(it) == PLIST_STRING) plist_get_string_val(it, &k);
        if (!k) continue;
        const sy_node_t *type = find_key(types, k), *cond = find_key(queries, k);
        /* A device answers only the keys it knows and may tell this server. */
        plist_t v = NULL;
        if (!o->schema) {
            v = devinfo_value(d, k);
        } else if (type && (!cond || key_allowed(d, cond, o)) &&
                   sim_schema_available(type, d->platform, d->os_version)) {
            v = devinfo_value(d, k);
            if (!v) v = sim_gen_value(d, type, 1);
        }
        if (v) plist_dict_set_item(out, k, v);
        free(k);
    }
    plist_dict_set_item(ans, "QueryResponses", out);
}

typedef struct {
    const char *id, *name, *short_version, *version;
    int64_t size, external_id;
} app_t;

static const app_t ios_apps[] = {
    {"com.microsoft.Office.Outlook", "Microsoft Outlook", "4.2443.0", "4.2443.0", 311984128, 868419932},
    {"ch.threema.iapp", "Threema", "6.4.1", "6.4.1", 98304000, 868311712},
    {"com.apple.Pages", "Pages", "14.2", "7035.0.126", 529645568, 869125419},
    {"com.doximity.doximityapp", "Doximity", "24.43.0", "24.43.0.1", 243269632, 867925411},
};
static const app_t mac_apps[] = {
    {"com.microsoft.Outlook", "Microsoft Outlook", "16.90", "16.90.24102712", 2319581184LL, 868419933},
    {"org.mozilla.firefox", "Firefox", "132.0", "13224.10.24", 434110464, 0},
    {"com.apple.dt.Xcode", "Xcode", "16.1", "23503", 12171509760LL, 869014820},
};

static void app_item(plist_t arr, const sim_device_t *d, const sim_command_t *c, const app_t *a, bool managed)
{
    plist_t it = plist_new_dict();
    bool ios = is_ios(d);
#define ITEM(key) in_filter(c, "Items", key)
    sim_set_str(it, "Identifier", a->id);
    if (ITEM("Name")) sim_set_str(it, "Name", a->name);
    if (ITEM("ShortVersion")) sim_set_str(it, "ShortVersion", a->short_version);
    if (ITEM("Version")) sim_set_str(it, "Version", a->version);
    if (ITEM("BundleSize")) sim_set_int(it, "BundleSize", a->size);
    if (a->external_id && ITEM("ExternalVersionIdentifier"))
        sim_set_int(it, "ExternalVersionIdentifier", a->external_id);
    if (ITEM("Installing")) sim_set_bool(it, "Installing", false);
    if (ITEM("HasUpdateAvailable")) sim_set_bool(it, "HasUpdateAvailable", false);
    if (ios) {
        if (ITEM("DynamicSize")) sim_set_int(it, "DynamicSize", a->size / 8);
        if (ITEM("IsValidated")) sim_set_bool(it, "IsValidated", true);
        if (ITEM("AppStoreVendable")) sim_set_bool(it, "AppStoreVendable", !managed);
        if (ITEM("DeviceBasedVPP")) sim_set_bool(it, "DeviceBasedVPP", managed);
        if (ITEM("BetaApp")) sim_set_bool(it, "BetaApp", false);
        if (ITEM("AdHocCodeSigned")) sim_set_bool(it, "AdHocCodeSigned", false);
        if (ITEM("IsAppClip")) sim_set_bool(it, "IsAppClip", false);
    }
#undef ITEM
    plist_array_append_item(arr, it);
}

static void answer_installed_apps(sim_device_t *d, const sim_command_t *c, plist_t ans)
{
    plist_t arr = plist_new_array();
    bool managed_only = cmd_bool(c, "ManagedAppsOnly");
    const app_t *base = is_ios(d) ? ios_apps : mac_apps;
    size_t nbase = is_ios(d) ? sizeof ios_apps / sizeof ios_apps[0] : sizeof mac_apps / sizeof mac_apps[0];
    for (size_t i = 0; i < nbase && !managed_only; i++)
        if (in_filter(c, "Identifiers", base[i].id)) app_item(arr, d, c, &base[i], false);
    const char *id;
    json_t *app;
    json_object_foreach(state_obj(d, "apps"), id, app)
    {
        if (!in_filter(c, "Identifiers", id)) continue;
        app_t a = {.id = id,
                   .name = json_string_value(json_object_get(app, "Name")),
                   .short_version = "1.0",
                   .version = "1",
                   .size = 52428800,
                   .external_id = 0};
        if (!a.name) a.name = id;
        app_item(arr, d, c, &a, true);
    }
    plist_dict_set_item(ans, "InstalledApplicationList", arr);
}

static void answer_managed_apps(sim_device_t *d, const sim_command_t *c, plist_t ans)
{
    plist_t out = plist_new_dict();
    const char *id;
    json_t *app;
    json_object_foreach(state_obj(d, "apps"), id, app)
    {
        if (!in_filter(c, "Identifiers", id)) continue;
        plist_t it = plist_new_dict();
        sim_set_str(it, "Status", "Managed");
        sim_set_int(it, "ManagementFlags", json_integer_value(json_object_get(app, "ManagementFlags")));
        sim_set_bool(it, "HasConfiguration", json_is_true(json_object_get(app, "HasConfiguration")));
        sim_set_bool(it, "HasFeedback", false);
        sim_set_bool(it, "IsValidated", true);
        plist_dict_set_item(out, id, it);
    }
    plist_dict_set_item(ans, "ManagedApplicationList", out);
}

static void answer_install_app(sim_device_t *d, const sim_command_t *c, plist_t ans)
{
    char *id = cmd_str(c, "Identifier");
    if (!id) {
        /* An App Store app by iTunesStoreID, or an enterprise app by
         * manifest: the device learns the bundle identifier on install. */
        plist_t sid = plist_dict_get_item(c->command, "iTunesStoreID");
        char buf[64] = "com.example.enterprise";
        if (sid && plist_get_node_type(sid) == PLIST_UINT) {
            uint64_t v = 0;
            plist_get_uint_val(sid, &v);
            snprintf(buf, sizeof buf, "com.example.store%llu", (unsigned long long)v);
        }
        id = strdup(buf);
    }
    plist_t mf = plist_dict_get_item(c->command, "ManagementFlags");
    uint64_t flags = 0;
    if (mf && plist_get_node_type(mf) == PLIST_UINT) plist_get_uint_val(mf, &flags);
    const char *dot = strrchr(id, '.');
    json_object_set_new(state_obj(d, "apps"), id,
                        json_pack("{s:s, s:I, s:b}", "Name", dot ? dot + 1 : id, "ManagementFlags",
                                  (json_int_t)flags, "HasConfiguration",
                                  plist_dict_get_item(c->command, "Configuration") != NULL));
    sim_set_str(ans, "Identifier", id);
    sim_set_str(ans, "State", "Installing");
    free(id);
}

static void answer_remove_app(sim_device_t *d, const sim_command_t *c, plist_t ans)
{
    char *id = cmd_str(c, "Identifier");
    if (id) json_object_del(state_obj(d, "apps"), id);
    free(id);
}

static void answer_profile_list(sim_device_t *d, const sim_command_t *c, plist_t ans)
{
    bool managed_only = cmd_bool(c, "ManagedOnly");
    plist_t arr = plist_new_array();
    json_t *profiles = state_arr(d, "profiles");
    for (size_t i = 0; i < json_array_size(profiles); i++) {
        json_t *p = json_array_get(profiles, i);
        if (managed_only && !json_is_true(json_object_get(p, "IsManaged"))) continue;
        plist_array_append_item(arr, json_to_plist(p, false));
    }
    plist_dict_set_item(ans, "ProfileList", arr);
}

static void answer_certificate_list(sim_device_t *d, const sim_command_t *c, plist_t ans)
{
    plist_t arr = plist_new_array();
    json_t *certs = state_arr(d, "certificates");
    for (size_t i = 0; i < json_array_size(certs); i++)
        plist_array_append_item(arr, json_to_plist(json_array_get(certs, i), false));
    plist_dict_set_item(ans, "CertificateList", arr);
}

static void answer_install_profile(sim_device_t *d, const sim_command_t *c, plist_t ans)
{
    plist_t payload = plist_dict_get_item(c->command, "Payload");
    char *bytes = NULL;
    uint64_t n = 0;
    if (payload && plist_get_node_type(payload) == PLIST_DATA) plist_get_data_val(payload, &bytes, &n);
    plist_t profile = NULL;
    int trust = 0;
    char err[SIM_ERRLEN];
    if (!bytes ||
        sim_profile_unwrap((unsigned char *)bytes, (size_t)n, NULL, false, &profile, &trust, NULL, err,
                           sizeof err) != 0 ||
        plist_get_node_type(profile) != PLIST_DICT || sim_state_add_profile(d, profile, true, NULL) != 0) {
        /* MCProfileErrorDomain 1000: the profile is malformed. */
        make_error(ans, "MCProfileErrorDomain", 1000, "The profile could not be read.");
    }
    plist_free(profile);
    free(bytes);
}

static void answer_remove_profile(sim_device_t *d, const sim_command_t *c, plist_t ans)
{
    char *id = cmd_str(c, "Identifier");
    json_t *profiles = state_arr(d, "profiles");
    bool removed = false;
    for (size_t i = 0; id && i < json_array_size(profiles); i++) {
        json_t *p = json_array_get(profiles, i);
        const char *pid = json_string_value(json_object_get(p, "PayloadIdentifier"));
        /* The enrollment profile is not removable by command. */
        if (pid && strcmp(pid, id) == 0 && json_is_true(json_object_get(p, "IsManaged"))) {
            json_array_remove(profiles, i);
            removed = true;
            break;
        }
    }
    if (removed) {
        json_t *certs = state_arr(d, "certificates");
        for (size_t i = json_array_size(certs); i-- > 0;) {
            const char *p = json_string_value(json_object_get(json_array_get(certs, i), "_profile"));
            if (p && strcmp(p, id) == 0) json_array_remove(certs, i);
        }
    } else {
        char msg[512];
        snprintf(msg, sizeof msg, "The profile \xe2\x80\x9c%s\xe2\x80\x9d is not managed by MDM.",
                 id ? id : "");
        make_error(ans, "MCMDMErrorDomain", 12013, msg);
    }
    free(id);
}

static void answer_security_info(sim_device_t *d, plist_t ans)
{
    plist_t s = plist_dict_get_item(ans, "SecurityInfo");
    if (!s || plist_get_node_type(s) != PLIST_DICT) {
        s = plist_new_dict();
        plist_dict_set_item(ans, "SecurityInfo", s);
    }
    plist_t ms = plist_new_dict();
    sim_set_bool(ms, "EnrolledViaDEP", false);
    sim_set_bool(ms, "UserApprovedEnrollment", true);
    sim_set_bool(ms, "IsUserEnrollment", d->user_enrollment);
    sim_set_bool(ms, "IsActivationLockManageable", false);
    plist_dict_set_item(s, "ManagementStatus", ms);
    if (is_ios(d)) {
        sim_set_int(s, "HardwareEncryptionCaps", 3);
        sim_set_bool(s, "PasscodePresent", true);
        sim_set_bool(s, "PasscodeCompliant", true);
        sim_set_bool(s, "PasscodeCompliantWithProfiles", true);
        sim_set_int(s, "PasscodeLockGracePeriodEnforced", 0);
    } else {
        sim_set_bool(s, "FDE_Enabled", true);
        sim_set_bool(s, "FDE_HasPersonalRecoveryKey", true);
        sim_set_bool(s, "FDE_HasInstitutionalRecoveryKey", false);
        sim_set_bool(s, "SystemIntegrityProtectionEnabled", true);
        sim_set_bool(s, "AuthenticatedRootVolumeEnabled", true);
        sim_set_bool(s, "RemoteDesktopEnabled", false);
        sim_set_bool(s, "IsRecoveryLockEnabled", false);
    }
}

static void answer_os_updates(sim_device_t *d, plist_t ans)
{
    plist_t arr = plist_new_array();
    plist_t u = plist_new_dict();
    bool ios = is_ios(d);
    sim_set_str(u, "ProductKey", ios ? "iOSUpdate22C152" : "MSU_UPDATE_24C101_patch_15.2_minor");
    sim_set_str(u, "HumanReadableName", ios ? "iOS 18.2" : "macOS Sequoia 15.2");
    sim_set_str(u, "ProductName", ios ? "iOS" : "macOS Sequoia");
    sim_set_str(u, "Version", ios ? "18.2" : "15.2");
    sim_set_str(u, "Build", ios ? "22C152" : "24C101");
    sim_set_int(u, "DownloadSize", ios ? 1613000000 : 3270000000LL);
    sim_set_int(u, "InstallSize", ios ? 4850000000LL : 9110000000LL);
    sim_set_bool(u, "IsCritical", false);
    sim_set_bool(u, "IsConfigDataUpdate", false);
    sim_set_bool(u, "IsFirmwareUpdate", false);
    sim_set_bool(u, "IsMajorOSUpdate", false);
    sim_set_bool(u, "RestartRequired", true);
    sim_set_bool(u, "AllowsInstallLater", true);
    sim_set_bool(u, "IsSecurityResponse", false);
    plist_array_append_item(arr, u);
    plist_dict_set_item(ans, "AvailableOSUpdates", arr);
}

/* ---- the answer --------------------------------------------------------- */

/* The device's own refusals (layer 1). Returns true when ans became one. */
static bool refuse(const sim_device_t *d, const sim_command_t *c, const sy_node_t *root, plist_t ans,
                   const sim_answer_opts_t *o)
{
    char msg[512];
    if (!o->schema) return false;
    const sy_node_t *payload = sy_get(root, "payload");
    if (!root || !sim_schema_available(payload, d->platform, d->os_version)) {
        snprintf(msg, sizeof msg, "\xe2\x80\x9c%s\xe2\x80\x9d is not a valid request type.", c->request_type);
        make_error(ans, "MCMDMErrorDomain", 12021, msg);
        return true;
    }
    const sy_node_t *os = sim_schema_os(payload, d->platform);
    if (strcmp(d->platform, "macOS") == 0) {
        const char *ch = sy_get_str(os, o->user_channel ? "userchannel" : "devicechannel");
        if (ch && strcmp(ch, "false") == 0) {
            snprintf(msg, sizeof msg, "\xe2\x80\x9c%s\xe2\x80\x9d is not supported on the %s channel.",
                     c->request_type, o->user_channel ? "user" : "device");
            make_error(ans, "MCMDMErrorDomain", 12021, msg);
            return true;
        }
    }
    if (d->user_enrollment) {
        const char *m = sy_get_str(sy_get(os, "userenrollment"), "mode");
        if (m && strcmp(m, "forbidden") == 0) {
            snprintf(msg, sizeof msg, "\xe2\x80\x9c%s\xe2\x80\x9d is not allowed for User Enrollment.",
                     c->request_type);
            make_error(ans, "MCMDMErrorDomain", 12084, msg);
            return true;
        }
    } else if (o->enforce_rights) {
        const char *shared = sy_get_str(sy_get(os, "sharedipad"), "mode");
        const char *sup = sy_get_str(os, "supervised");
        long bit = d->access_rights >= 0 ? sim_access_bit(sy_get_str(os, "accessrights")) : 0;
        if (shared && strcmp(shared, "required") == 0) {
            snprintf(msg, sizeof msg, "\xe2\x80\x9c%s\xe2\x80\x9d is only supported on Shared iPad.",
                     c->request_type);
            make_error(ans, "MCMDMErrorDomain", 12070, msg);
            return true;
        }
        if (sup && strcmp(sup, "true") == 0 && !d->supervised) {
            snprintf(msg, sizeof msg, "\xe2\x80\x9c%s\xe2\x80\x9d requires a supervised device.",
                     c->request_type);
            make_error(ans, "MCMDMErrorDomain", 12070, msg);
            return true;
        }
        if (bit && !(d->access_rights & bit)) {
            snprintf(msg, sizeof msg, "The MDM server is not authorized to send \xe2\x80\x9c%s\xe2\x80\x9d.",
                     c->request_type);
            make_error(ans, "MCMDMErrorDomain", 12022, msg);
            return true;
        }
    }
    const sy_node_t *pk = sim_schema_keys(root, "payloadkeys");
    for (size_t i = 0; i < sy_len(pk); i++) {
        const sy_node_t *k = sy_at(pk, i);
        const char *name = sy_get_str(k, "key"), *presence = sy_get_str(k, "presence");
        if (!name || !presence || strcmp(presence, "required") != 0 ||
            !sim_schema_available(k, d->platform, d->os_version))
            continue;
        if (!plist_dict_get_item(c->command, name)) {
            snprintf(msg, sizeof msg, "No '%s' in '%s' command <MDMClientError:97>", name, c->request_type);
            sim_set_str(ans, "Status", "Error");
            plist_t chain = plist_new_array();
            plist_t e = plist_new_dict();
            sim_set_int(e, "ErrorCode", 97);
            sim_set_str(e, "ErrorDomain", "MDMClientError");
            sim_set_str(e, "LocalizedDescription", msg);
            plist_array_append_item(chain, e);
            plist_dict_set_item(ans, "ErrorChain", chain);
            return true;
        }
    }
    return false;
}

plist_t sim_answer_build(sim_device_t *d, const sim_command_t *c, const sim_answer_opts_t *o)
{
    plist_t ans = plist_new_dict();
    sim_add_identity(ans, d, o->user_channel, false);
    sim_set_str(ans, "CommandUUID", c->uuid);
    const char *rt = c->request_type;
    if (o->force_status) {
        if (strcmp(o->force_status, "Error") == 0)
            make_error(ans, "MCMDMErrorDomain", 12000,
                       "The command could not be completed (simulated error).");
        else
            sim_set_str(ans, "Status", o->force_status);
        return ans;
    }
    const sy_node_t *root = sim_schema_command(o->schema, rt);
    if (refuse(d, c, root, ans, o)) return ans;
    sim_set_str(ans, "Status", "Acknowledged");

    /* Layer 3 first, so that the hand-written parts below replace it. */
    const sy_node_t *rk = sim_schema_keys(root, "responsekeys");
    bool generic = strcmp(rt, "DeviceInformation") != 0 && strcmp(rt, "InstalledApplicationList") != 0 &&
                   strcmp(rt, "ManagedApplicationList") != 0 && strcmp(rt, "ProfileList") != 0 &&
                   strcmp(rt, "CertificateList") != 0 && strcmp(rt, "InstallApplication") != 0 &&
                   strcmp(rt, "AvailableOSUpdates") != 0;
    for (size_t i = 0; generic && i < sy_len(rk); i++) {
        const sy_node_t *k = sy_at(rk, i);
        const char *name = sy_get_str(k, "key");
        if (!name || !sim_schema_available(k, d->platform, d->os_version)) continue;
        plist_t v = sim_gen_value(d, k, 0);
        if (v) plist_dict_set_item(ans, name, v);
    }

    if (strcmp(rt, "DeviceInformation") == 0)
        answer_device_information(d, c, ans, o);
    else if (strcmp(rt, "InstalledApplicationList") == 0)
        answer_installed_apps(d, c, ans);
    else if (strcmp(rt, "ManagedApplicationList") == 0)
        answer_managed_apps(d, c, ans);
    else if (strcmp(rt, "InstallApplication") == 0)
        answer_install_app(d, c, ans);
    else if (strcmp(rt, "RemoveApplication") == 0)
        answer_remove_app(d, c, ans);
    else if (strcmp(rt, "ProfileList") == 0)
        answer_profile_list(d, c, ans);
    else if (strcmp(rt, "CertificateList") == 0)
        answer_certificate_list(d, c, ans);
    else if (strcmp(rt, "InstallProfile") == 0)
        answer_install_profile(d, c, ans);
    else if (strcmp(rt, "RemoveProfile") == 0)
        answer_remove_profile(d, c, ans);
    else if (strcmp(rt, "SecurityInfo") == 0)
        answer_security_info(d, ans);
    else if (strcmp(rt, "AvailableOSUpdates") == 0)
        answer_os_updates(d, ans);

    char *status = sim_plist_str(ans, "Status");
    bool ok = status && strcmp(status, "Acknowledged") == 0;
    free(status);
    if (ok && o->all_keys) {
        for (size_t i = 0; i < sy_len(rk); i++) {
            const sy_node_t *k = sy_at(rk, i);
            const char *name = sy_get_str(k, "key");
            if (!name || plist_dict_get_item(ans, name)) continue;
            plist_t v = sim_gen_value(d, k, 0);
            if (v) plist_dict_set_item(ans, name, v);
        }
    }
    return ans;
}
