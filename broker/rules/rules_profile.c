/* The broker-owned configuration profile that carries the merged
 * device-wide rules to the device (lmdm/rules_profile.h). Deterministic: the
 * same merged result gives the same bytes, so the broker can tell from the
 * hash alone whether the device needs it again. The same holds for the
 * passcode declaration that replaces the profile's passcode payload on
 * devices with declarative management. */
#include <jansson.h>
#include <openssl/evp.h>
#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/rules_json.h"
#include "lmdm/rules_profile.h"

#define BIT(k) ((uint64_t)1 << (k))

static void hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int sha256(const void *p, size_t n, unsigned char md[32])
{
    unsigned int len = 0;
    return EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) == 1 && len == 32 ? 0 : -1;
}

/* The canonical content: one line per merged key and per domain, in table
 * order, domains length-prefixed, and the platform. Provenance is not in it:
 * a tenant that joins with a rule already met changes nothing on the device. */
static void canonical(const lmdm_merged_t *m, int macos, lmdm_buf_t *b)
{
    size_t n;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&n);
    lmdm_buf_printf(b, "%s v1\nplatform=%s\n", LMDM_RULES_PROFILE_ID, macos ? "macos" : "ios");
    for (size_t k = 0; k < n; k++)
        if (m->rules.set & BIT(k))
            lmdm_buf_printf(b, "%s.%s=%ld\n", lmdm_rules_section_name(keys[k].section), keys[k].name,
                            m->rules.value[k]);
    for (int l = 0; l < LMDM_DOMAINS_COUNT; l++)
        for (size_t j = 0; j < m->ndomains[l]; j++)
            lmdm_buf_printf(b, "domains.%s[%zu]=%s\n", lmdm_rules_domain_list_name((lmdm_domain_list_t)l),
                            strlen(m->domains[l][j]), m->domains[l][j]);
}

/* A PayloadUUID derived from the content hash and the payload's identifier
 * (RFC 9562 version 8: a name-based UUID of our own construction). */
static void derived_uuid(const char *hash, const char *identifier, char out[37])
{
    unsigned char md[32];
    lmdm_buf_t in = {0};
    lmdm_buf_printf(&in, "%s/%s", hash, identifier);
    if (sha256(in.data, in.len, md) != 0) memset(md, 0, sizeof(md));
    lmdm_buf_free(&in);
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x80);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", md[0], md[1],
             md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11], md[12], md[13], md[14],
             md[15]);
}

/* A payload dictionary with its common keys. */
static plist_t payload_new(const char *type, const char *suffix, const char *name, const char *hash)
{
    char id[128], uuid[37];
    snprintf(id, sizeof(id), "%s.%s", LMDM_RULES_PROFILE_ID, suffix);
    derived_uuid(hash, id, uuid);
    plist_t p = plist_new_dict();
    plist_dict_set_item(p, "PayloadDisplayName", plist_new_string(name));
    plist_dict_set_item(p, "PayloadIdentifier", plist_new_string(id));
    plist_dict_set_item(p, "PayloadType", plist_new_string(type));
    plist_dict_set_item(p, "PayloadUUID", plist_new_string(uuid));
    plist_dict_set_item(p, "PayloadVersion", plist_new_uint(1));
    return p;
}

static void set_value(plist_t p, const lmdm_rule_key_t *key, long v)
{
    plist_dict_set_item(p, key->payload_key,
                        key->type == LMDM_RULE_BOOL ? plist_new_bool(v != 0) : plist_new_uint((uint64_t)v));
}

/* The keys of one section that the merged result sets, into p; how many. */
static size_t section_keys(const lmdm_merged_t *m, lmdm_rule_section_t sec, plist_t p)
{
    size_t n, added = 0;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&n);
    for (size_t k = 0; k < n; k++)
        if (keys[k].section == sec && (m->rules.set & BIT(k))) {
            set_value(p, &keys[k], m->rules.value[k]);
            added++;
        }
    return added;
}

static int encryption_required(const lmdm_merged_t *m)
{
    int k = lmdm_rule_key_find(LMDM_RULE_SECTION_ENCRYPTION, "required");
    return k >= 0 && (m->rules.set & BIT(k)) && m->rules.value[k];
}

static void add_passcode(plist_t content, const lmdm_merged_t *m, int macos, const char *hash)
{
    plist_t p = payload_new("com.apple.mobiledevice.passwordpolicy", "passcode", "Passcode", hash);
    size_t added = section_keys(m, LMDM_RULE_SECTION_PASSCODE, p);
    if (!macos && encryption_required(m)) {
        /* iOS encrypts user data with the passcode: requiring encryption is requiring one. */
        plist_dict_set_item(p, "forcePIN", plist_new_bool(1));
        added++;
    }
    if (added)
        plist_array_append_item(content, p);
    else
        plist_free(p);
}

static void add_filevault(plist_t content, const lmdm_merged_t *m, int macos, const char *hash)
{
    if (!macos || !encryption_required(m)) return;
    plist_t p = payload_new("com.apple.MCX.FileVault2", "filevault", "FileVault", hash);
    plist_dict_set_item(p, "Enable", plist_new_string("On"));
    /* MDM sends no user credentials: Apple then needs Defer, which asks the
     * user at the next logout. The personal recovery key is made and shown
     * to the owner; no certificate, no escrow payload: nobody else gets it. */
    plist_dict_set_item(p, "Defer", plist_new_bool(1));
    plist_dict_set_item(p, "UseRecoveryKey", plist_new_bool(1));
    plist_dict_set_item(p, "ShowRecoveryKey", plist_new_bool(1));
    plist_array_append_item(content, p);
}

static void add_restrictions(plist_t content, const lmdm_merged_t *m, const char *hash)
{
    plist_t p = payload_new("com.apple.applicationaccess", "restrictions", "Managed data", hash);
    if (section_keys(m, LMDM_RULE_SECTION_RESTRICTIONS, p))
        plist_array_append_item(content, p);
    else
        plist_free(p);
}

static int list_on_platform(int l, int macos)
{
    if (!macos) return 1;
    return l == LMDM_DOMAINS_EMAIL || l == LMDM_DOMAINS_CROSS_SITE; /* Apple: the others are iOS only */
}

static void add_domains(plist_t content, const lmdm_merged_t *m, int macos, const char *hash)
{
    plist_t p = payload_new("com.apple.domains", "domains", "Managed domains", hash);
    size_t lists = 0;
    for (int l = 0; l < LMDM_DOMAINS_COUNT; l++) {
        if (!m->ndomains[l] || !list_on_platform(l, macos)) continue;
        size_t n = m->ndomains[l];
        if (l == LMDM_DOMAINS_CROSS_SITE && n > LMDM_RULES_MAX_CROSS_SITE) n = LMDM_RULES_MAX_CROSS_SITE;
        plist_t a = plist_new_array();
        for (size_t j = 0; j < n; j++)
            plist_array_append_item(a, plist_new_string(m->domains[l][j]));
        plist_dict_set_item(p, lmdm_rules_domain_list_name((lmdm_domain_list_t)l), a);
        lists++;
    }
    if (lists)
        plist_array_append_item(content, p);
    else
        plist_free(p);
}

int lmdm_rules_profile(const lmdm_merged_t *m, int macos, lmdm_buf_t *xml, char hash[65])
{
    if (!m || !xml || !hash) return LMDM_ERR_INVALID;
    lmdm_buf_t canon = {0};
    unsigned char md[32];
    canonical(m, macos, &canon);
    int ok = sha256(canon.data, canon.len, md);
    lmdm_buf_free(&canon);
    if (ok != 0) return LMDM_ERR_INVALID;
    hex(md, sizeof(md), hash);
    if (lmdm_rules_empty(m)) return 1;

    plist_t content = plist_new_array();
    add_passcode(content, m, macos, hash);
    add_filevault(content, m, macos, hash);
    add_restrictions(content, m, hash);
    add_domains(content, m, macos, hash);
    if (plist_array_get_size(content) == 0) {
        plist_free(content);
        return 1;
    }
    char uuid[37];
    derived_uuid(hash, LMDM_RULES_PROFILE_ID, uuid);
    plist_t prof = plist_new_dict();
    plist_dict_set_item(prof, "PayloadContent", content);
    plist_dict_set_item(
        prof, "PayloadDescription",
        plist_new_string("The device-wide rules of the organizations you accepted, merged to the "
                         "strictest by your device's broker. It changes when an organization "
                         "joins, leaves or changes its rules."));
    plist_dict_set_item(prof, "PayloadDisplayName", plist_new_string("Device-wide rules"));
    plist_dict_set_item(prof, "PayloadIdentifier", plist_new_string(LMDM_RULES_PROFILE_ID));
    plist_dict_set_item(prof, "PayloadOrganization", plist_new_string("lmdm"));
    plist_dict_set_item(prof, "PayloadType", plist_new_string("Configuration"));
    plist_dict_set_item(prof, "PayloadUUID", plist_new_string(uuid));
    plist_dict_set_item(prof, "PayloadVersion", plist_new_uint(1));
    char *out = NULL;
    uint32_t len = 0;
    plist_to_xml(prof, &out, &len);
    plist_free(prof);
    if (!out) return LMDM_ERR_NOMEM;
    lmdm_buf_append(xml, out, len);
    plist_to_xml_free(out);
    return 0;
}

/* ---- the passcode declaration ---- */

/* "16.2.1" -> 1 if at least major.minor. */
static int version_at_least(const char *v, long major, long minor)
{
    char *end;
    long ma = strtol(v, &end, 10);
    if (end == v) return 0;
    long mi = *end == '.' ? strtol(end + 1, NULL, 10) : 0;
    return ma > major || (ma == major && mi >= minor);
}

int lmdm_rules_declaration_capable(int macos, const char *os_version)
{
    if (macos || !os_version || !*os_version) return 0;
    return version_at_least(os_version, 16, 2);
}

/* What the declaration carries; the profile of a declaration device leaves it out. */
static int declared(const lmdm_rule_key_t *key)
{
    return key->section == LMDM_RULE_SECTION_PASSCODE || key->section == LMDM_RULE_SECTION_ENCRYPTION;
}

void lmdm_rules_without_declared(const lmdm_merged_t *in, lmdm_merged_t *out)
{
    size_t n;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&n);
    *out = *in;
    for (size_t k = 0; k < n; k++)
        if (declared(&keys[k])) {
            out->rules.set &= ~BIT(k);
            out->drivers[k] = 0;
        }
}

/* The declaration's Payload: the merged passcode keys under their
 * declaration names; encryption.required asks for a passcode. */
static json_t *declaration_payload(const lmdm_merged_t *m)
{
    size_t n;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&n);
    json_t *p = json_object();
    for (size_t k = 0; k < n; k++) {
        if (!(m->rules.set & BIT(k)) || keys[k].section != LMDM_RULE_SECTION_PASSCODE || !keys[k].declaration_key)
            continue;
        long v = m->rules.value[k];
        if (keys[k].type == LMDM_RULE_BOOL)
            json_object_set_new(p, keys[k].declaration_key,
                                json_boolean(lmdm_rule_declaration_inverted((int)k) ? !v : v != 0));
        else
            json_object_set_new(p, keys[k].declaration_key, json_integer(v));
    }
    if (encryption_required(m)) json_object_set_new(p, "RequirePasscode", json_true());
    return p;
}

int lmdm_rules_declaration(const lmdm_merged_t *m, lmdm_buf_t *json, char token[65])
{
    if (!m || !json || !token) return LMDM_ERR_INVALID;
    token[0] = '\0';
    json_t *payload = declaration_payload(m);
    if (json_object_size(payload) == 0) {
        json_decref(payload);
        return 1;
    }
    char *canon = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char md[32];
    if (!canon || sha256(canon, strlen(canon), md) != 0) {
        free(canon);
        json_decref(payload);
        return LMDM_ERR_NOMEM;
    }
    free(canon);
    hex(md, sizeof(md), token);
    json_t *decl = json_pack("{s:s,s:s,s:s,s:o}", "Type", "com.apple.configuration.passcode.settings", "Identifier",
                             LMDM_RULES_DECL_PASSCODE_ID, "ServerToken", token, "Payload", payload);
    char *out = decl ? json_dumps(decl, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(decl);
    if (!out) return LMDM_ERR_NOMEM;
    lmdm_buf_append(json, out, strlen(out));
    free(out);
    return 0;
}
