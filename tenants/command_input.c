/* Tenant command bodies, plist or JSON, into the device's plist (see
 * lmdm/tenant_command.h). */
#define _XOPEN_SOURCE 700 /* strptime */
#include "lmdm/tenant_command.h"

#include <jansson.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <plist/plist.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lmdm/mdm.h"
#include "lmdm/policy.h"

#define MAX_PROFILE (4 * 1024 * 1024)
#define MAX_PAYLOADS 100
#define MAX_LIST 1000

static int fail(lmdm_tenant_command_t *out, const char *code, char *err, size_t errlen, const char *fmt, ...)
    LMDM_PRINTF(5, 6);
static int fail(lmdm_tenant_command_t *out, const char *code, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    out->error_code = code;
    return LMDM_ERR_INVALID;
}

static int media_is(const char *ct, const char *type)
{
    size_t n = strlen(type);
    if (!ct || strncasecmp(ct, type, n) != 0) return 0;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

/* ---- JSON -> plist ---- */

static plist_t json_to_plist(json_t *j, int depth, char *err, size_t errlen);

static plist_t json_special(json_t *j, char *err, size_t errlen)
{
    json_t *d = json_object_get(j, "$data"), *t = json_object_get(j, "$date");
    if (json_object_size(j) != 1 || (!d && !t)) return NULL;
    if (d) {
        const char *s = json_string_value(d);
        if (!s) {
            snprintf(err, errlen, "\"$data\" must be a base64 string");
            return NULL;
        }
        size_t slen = strlen(s), blen = 0;
        unsigned char *bin = malloc(slen / 4 * 3 + 3);
        if (!bin || sodium_base642bin(bin, slen / 4 * 3 + 3, s, slen, " \r\n", &blen, NULL,
                                      sodium_base64_VARIANT_ORIGINAL) != 0) {
            free(bin);
            snprintf(err, errlen, "\"$data\" is not valid base64");
            return NULL;
        }
        plist_t p = plist_new_data((const char *)bin, blen);
        free(bin);
        return p;
    }
    const char *s = json_string_value(t);
    struct tm tm = {0};
    const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
    if (!end || *end) {
        snprintf(err, errlen, "\"$date\" must be YYYY-MM-DDTHH:MM:SSZ");
        return NULL;
    }
    time_t tt = timegm(&tm);
    /* libplist dates count from 2001-01-01 (Apple's epoch). */
    return plist_new_date((int32_t)(tt - 978307200), 0);
}

static plist_t json_to_plist(json_t *j, int depth, char *err, size_t errlen)
{
    if (depth > LMDM_MDM_MAX_DEPTH) {
        snprintf(err, errlen, "nesting deeper than %d", LMDM_MDM_MAX_DEPTH);
        return NULL;
    }
    switch (json_typeof(j)) {
    case JSON_STRING: return plist_new_string(json_string_value(j));
    case JSON_INTEGER:
        if (json_integer_value(j) < 0) {
            snprintf(err, errlen, "negative integers are not supported");
            return NULL;
        }
        return plist_new_uint((uint64_t)json_integer_value(j));
    case JSON_REAL: return plist_new_real(json_real_value(j));
    case JSON_TRUE: return plist_new_bool(1);
    case JSON_FALSE: return plist_new_bool(0);
    case JSON_NULL: snprintf(err, errlen, "null has no property list equivalent"); return NULL;
    case JSON_ARRAY: {
        plist_t a = plist_new_array();
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) {
            plist_t p = json_to_plist(v, depth + 1, err, errlen);
            if (!p) {
                plist_free(a);
                return NULL;
            }
            plist_array_append_item(a, p);
        }
        return a;
    }
    case JSON_OBJECT: {
        if (json_object_get(j, "$data") || json_object_get(j, "$date")) {
            err[0] = '\0';
            plist_t p = json_special(j, err, errlen);
            if (p || err[0]) return p;
        }
        plist_t d = plist_new_dict();
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) {
            plist_t p = json_to_plist(v, depth + 1, err, errlen);
            if (!p) {
                plist_free(d);
                return NULL;
            }
            plist_dict_set_item(d, k, p);
        }
        return d;
    }
    }
    snprintf(err, errlen, "unsupported JSON value");
    return NULL;
}

/* ---- entity of the command ---- */

static const char *dict_str(plist_t d, const char *key)
{
    plist_t n = plist_dict_get_item(d, key);
    if (!n || plist_get_node_type(n) != PLIST_STRING) return NULL;
    return plist_get_string_ptr(n, NULL);
}

/* ns + id, in the arena. */
static const char *with_ns(lmdm_arena_t *arena, const char *ns, const char *id)
{
    size_t a = strlen(ns), b = strlen(id);
    char *s = lmdm_arena_alloc(arena, a + b + 1);
    memcpy(s, ns, a);
    memcpy(s + a, id, b + 1);
    return s;
}

/* The content of a profile: a signed one (CMS SignedData) is unwrapped and its
 * signature checked (integrity: the device decides whom it trusts). Sets
 * *signed_ to 1 for a signed profile. NULL with err for a bad signature. */
static unsigned char *profile_content(const char *p, uint64_t len, size_t *outlen, int *signed_, char *err,
                                      size_t errlen)
{
    *signed_ = 0;
    if (len > 0 && (unsigned char)p[0] == 0x30) {
        const unsigned char *q = (const unsigned char *)p;
        CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &q, (long)len);
        if (cms) {
            *signed_ = 1;
            BIO *bout = BIO_new(BIO_s_mem());
            unsigned char *copy = NULL;
            if (bout && CMS_verify(cms, NULL, NULL, NULL, bout, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) == 1) {
                char *data = NULL;
                long n = BIO_get_mem_data(bout, &data);
                copy = malloc((size_t)n + 1);
                if (copy) memcpy(copy, data, (size_t)n);
                *outlen = (size_t)n;
            } else {
                snprintf(err, errlen, "the profile's signature does not verify");
            }
            ERR_clear_error();
            BIO_free(bout);
            CMS_ContentInfo_free(cms);
            return copy;
        }
        ERR_clear_error();
    }
    unsigned char *copy = malloc(len + 1);
    if (copy) memcpy(copy, p, len);
    *outlen = len;
    return copy;
}

static lmdm_strs_t dict_keys(plist_t d, lmdm_arena_t *arena)
{
    uint32_t n = plist_dict_get_size(d);
    const char **v = lmdm_arena_alloc(arena, (n + 1) * sizeof(char *));
    size_t i = 0;
    plist_dict_iter it = NULL;
    plist_dict_new_iter(d, &it);
    char *key = NULL;
    plist_t val = NULL;
    for (plist_dict_next_item(d, it, &key, &val); key && i < n; plist_dict_next_item(d, it, &key, &val)) {
        v[i++] = lmdm_arena_strdup(arena, key);
        free(key);
        key = NULL;
    }
    free(key);
    free(it);
    return (lmdm_strs_t){v, i};
}

/* Take the payloads policy/ merges out of the profile, into a JSON array
 * (type, identifier, the payload as XML) for the merge machinery. */
static const char *take_merged(plist_t content, lmdm_arena_t *arena)
{
    json_t *merged = json_array();
    for (uint32_t i = plist_array_get_size(content); i-- > 0;) {
        plist_t pl = plist_array_get_item(content, i);
        const lmdm_policy_rule_t *r = lmdm_policy_payload_rule(dict_str(pl, "PayloadType"));
        if (!r || r->kind != LMDM_POLICY_MERGE) continue;
        char *xml = NULL;
        uint32_t xlen = 0;
        plist_to_xml(pl, &xml, &xlen);
        json_array_insert_new(merged, 0,
                              json_pack("{s:s?,s:s?,s:s#}", "type", dict_str(pl, "PayloadType"), "identifier",
                                        dict_str(pl, "PayloadIdentifier"), "plist", xml ? xml : "",
                                        (size_t)(xml ? xlen : 0)));
        plist_to_xml_free(xml);
        plist_array_remove_item(content, i);
    }
    char *s = json_dumps(merged, JSON_COMPACT);
    json_decref(merged);
    const char *copy = s ? lmdm_arena_strdup(arena, s) : NULL;
    free(s);
    return copy;
}

/* InstallProfile: open the profile, list its payloads for policy/, record its
 * identifier as the tenant's entity, and take out what is merged. */
static int inspect_profile(plist_t cmd, const char *ns, lmdm_arena_t *arena, lmdm_tenant_command_t *out, char *err,
                           size_t errlen)
{
    plist_t data = plist_dict_get_item(cmd, "Payload");
    if (!data || plist_get_node_type(data) != PLIST_DATA)
        return fail(out, "bad_command", err, errlen, "InstallProfile needs Payload (data: the profile)");
    uint64_t len = 0;
    const char *p = plist_get_data_ptr(data, &len);
    if (len == 0 || len > MAX_PROFILE)
        return fail(out, "bad_command", err, errlen, "InstallProfile Payload is empty or larger than 4 MiB");
    size_t clen = 0;
    int is_signed = 0;
    char serr[128] = "";
    unsigned char *content = profile_content(p, len, &clen, &is_signed, serr, sizeof(serr));
    if (!content) return fail(out, "bad_signature", err, errlen, "%s", serr[0] ? serr : "cannot read the profile");
    plist_t prof = NULL;
    char perr[128];
    if (plist_is_binary((const char *)content, (uint32_t)clen)) {
        plist_from_bin((const char *)content, (uint32_t)clen, &prof);
        if (prof && plist_get_node_type(prof) != PLIST_DICT) {
            plist_free(prof);
            prof = NULL;
        }
    } else {
        prof = lmdm_mdm_plist_parse((const char *)content, clen, perr, sizeof(perr));
    }
    free(content);
    if (!prof) return fail(out, "bad_command", err, errlen, "InstallProfile Payload is not a profile");
    const char *ident = dict_str(prof, "PayloadIdentifier");
    const char *type = dict_str(prof, "PayloadType");
    plist_t pc = plist_dict_get_item(prof, "PayloadContent");
    int rv = 0;
    if (!type || strcmp(type, "Configuration") != 0)
        rv = fail(out, "bad_command", err, errlen, "the profile's PayloadType must be Configuration");
    else if (!ident || !*ident || strlen(ident) > 1000)
        rv = fail(out, "bad_command", err, errlen, "the profile has no PayloadIdentifier");
    else if (pc && plist_get_node_type(pc) != PLIST_ARRAY)
        rv = fail(out, "bad_command", err, errlen, "PayloadContent must be an array");
    if (rv) goto out;
    out->entity_kind = "profile";
    out->entity = lmdm_arena_strdup(arena, ident);
    out->entity_op = "add";
    out->policy.profile_identifier = out->entity;
    uint32_t n = pc ? plist_array_get_size(pc) : 0;
    if (n > MAX_PAYLOADS) {
        rv = fail(out, "bad_command", err, errlen, "more than %d payloads in one profile", MAX_PAYLOADS);
        goto out;
    }
    lmdm_policy_payload_t *pls = lmdm_arena_alloc(arena, (n + 1) * sizeof(*pls));
    size_t merges = 0;
    for (uint32_t i = 0; i < n; i++) {
        plist_t pl = plist_array_get_item(pc, i);
        const char *pt = plist_get_node_type(pl) == PLIST_DICT ? dict_str(pl, "PayloadType") : NULL;
        if (!pt) {
            rv = fail(out, "bad_command", err, errlen, "payload %u has no PayloadType", i);
            goto out;
        }
        const char *pid = dict_str(pl, "PayloadIdentifier");
        pls[i] = (lmdm_policy_payload_t){lmdm_arena_strdup(arena, pt), pid ? lmdm_arena_strdup(arena, pid) : NULL,
                                         dict_keys(pl, arena)};
        const lmdm_policy_rule_t *r = lmdm_policy_payload_rule(pt);
        merges += r && r->kind == LMDM_POLICY_MERGE;
    }
    out->policy.payloads = pls;
    out->policy.npayloads = n;
    if (merges == n && n > 0) {
        out->merged_json = take_merged(pc, arena); /* nothing is installed */
    } else if (merges > 0 || ns) {
        /* Install the rest under the tenant's namespace; the merged part goes
         * to the broker's own rule. The rewritten profile is unsigned: MDM
         * installs need no signature (the tenant's was checked above). */
        if (merges > 0) out->merged_json = take_merged(pc, arena);
        if (ns) plist_dict_set_item(prof, "PayloadIdentifier", plist_new_string(with_ns(arena, ns, ident)));
        char *xml = NULL;
        uint32_t xlen = 0;
        plist_to_xml(prof, &xml, &xlen);
        if (!xml) {
            rv = fail(out, "bad_command", err, errlen, "cannot rebuild the profile");
            goto out;
        }
        plist_dict_set_item(cmd, "Payload", plist_new_data(xml, xlen));
        plist_to_xml_free(xml);
    }
out:
    plist_free(prof);
    return rv;
}

/* An array of strings (other elements are refused). */
static int str_array(plist_t a, lmdm_arena_t *arena, lmdm_strs_t *outv)
{
    uint32_t n = plist_array_get_size(a);
    if (n > MAX_LIST) return -1;
    const char **v = lmdm_arena_alloc(arena, (n + 1) * sizeof(char *));
    for (uint32_t i = 0; i < n; i++) {
        const char *s = plist_get_node_type(plist_array_get_item(a, i)) == PLIST_STRING
                            ? plist_get_string_ptr(plist_array_get_item(a, i), NULL)
                            : NULL;
        if (!s) return -1;
        v[i] = lmdm_arena_strdup(arena, s);
    }
    *outv = (lmdm_strs_t){v, n};
    return 0;
}

/* DeviceInformation: keep only the queries policy/ allows. */
static void strip_queries(plist_t cmd)
{
    plist_t q = plist_dict_get_item(cmd, "Queries");
    for (uint32_t i = q ? plist_array_get_size(q) : 0; i-- > 0;) {
        plist_t it = plist_array_get_item(q, i);
        if (!lmdm_policy_query_allowed(plist_get_string_ptr(it, NULL))) plist_array_remove_item(q, i);
    }
}

/* The plain view policy/ decides on, and the entity the command names. */
static int extract(plist_t cmd, const char *rt, const char *ns, lmdm_arena_t *arena, lmdm_tenant_command_t *out,
                   char *err, size_t errlen)
{
    lmdm_policy_command_t *pc = &out->policy;
    pc->request_type = out->request_type;
    const char *id = dict_str(cmd, "Identifier");
    if (id && strlen(id) > 1000) return fail(out, "bad_command", err, errlen, "Identifier is too long");
    pc->identifier = id ? lmdm_arena_strdup(arena, id) : NULL;
    pc->change_management_state = plist_dict_get_item(cmd, "ChangeManagementState") != NULL;
    plist_t ids = plist_dict_get_item(cmd, "Identifiers");
    if (ids) {
        if (plist_get_node_type(ids) != PLIST_ARRAY || str_array(ids, arena, &pc->identifiers) != 0)
            return fail(out, "bad_command", err, errlen, "Identifiers must be an array of at most %d strings", MAX_LIST);
        pc->has_identifiers = 1;
    }
    plist_t q = plist_dict_get_item(cmd, "Queries");
    if (strcmp(rt, "DeviceInformation") == 0 && q) {
        if (plist_get_node_type(q) != PLIST_ARRAY || str_array(q, arena, &pc->queries) != 0)
            return fail(out, "bad_command", err, errlen, "Queries must be an array of at most %d strings", MAX_LIST);
    }
    plist_t st = plist_dict_get_item(cmd, "Settings");
    if (strcmp(rt, "Settings") == 0) {
        uint32_t n = st && plist_get_node_type(st) == PLIST_ARRAY ? plist_array_get_size(st) : 0;
        if (!st || plist_get_node_type(st) != PLIST_ARRAY || n > MAX_LIST)
            return fail(out, "bad_command", err, errlen, "Settings must be an array of at most %d items", MAX_LIST);
        const char **items = lmdm_arena_alloc(arena, (n + 1) * sizeof(char *));
        const char **sids = lmdm_arena_alloc(arena, (n + 1) * sizeof(char *));
        for (uint32_t i = 0; i < n; i++) {
            plist_t it = plist_array_get_item(st, i);
            const char *item = plist_get_node_type(it) == PLIST_DICT ? dict_str(it, "Item") : NULL;
            if (!item) return fail(out, "bad_command", err, errlen, "settings item %u has no Item", i);
            const char *sid = dict_str(it, "Identifier");
            items[i] = lmdm_arena_strdup(arena, item);
            sids[i] = lmdm_arena_strdup(arena, sid ? sid : "");
        }
        pc->settings_items = (lmdm_strs_t){items, n};
        pc->settings_ids = (lmdm_strs_t){sids, n};
    }
    if (strcmp(rt, "InstallApplication") == 0 || strcmp(rt, "RemoveApplication") == 0) {
        if (!id || !*id)
            return fail(out, "identifier_required", err, errlen,
                        "%s needs Identifier (the app's bundle id): the broker removes exactly the "
                        "organization's own apps when it leaves", rt);
        out->entity_kind = "app";
        out->entity = pc->identifier;
        out->entity_op = strcmp(rt, "InstallApplication") == 0 ? "add" : "own";
    } else if (strcmp(rt, "RemoveProfile") == 0) {
        if (!id || !*id) return fail(out, "bad_command", err, errlen, "RemoveProfile needs Identifier");
        out->entity_kind = "profile";
        out->entity = pc->identifier;
        out->entity_op = "own";
        if (ns) plist_dict_set_item(cmd, "Identifier", plist_new_string(with_ns(arena, ns, id)));
    } else if (strcmp(rt, "InstallProfile") == 0) {
        return inspect_profile(cmd, ns, arena, out, err, errlen);
    } else if (strcmp(rt, "DeviceInformation") == 0) {
        strip_queries(cmd);
    }
    return 0;
}

/* ---- the whole body ---- */

static plist_t parse_body(const char *ct, const char *body, size_t len, lmdm_tenant_command_t *out, char *err,
                          size_t errlen)
{
    if (media_is(ct, "application/json")) {
        json_error_t jerr;
        json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j || !json_is_object(j)) {
            json_decref(j);
            fail(out, "bad_json", err, errlen, "body is not a JSON object%s%s", j ? "" : ": ", j ? "" : jerr.text);
            return NULL;
        }
        plist_t p = json_to_plist(j, 0, err, errlen);
        json_decref(j);
        if (!p) out->error_code = "bad_json";
        return p;
    }
    if (media_is(ct, "application/x-apple-aspen-mdm") || media_is(ct, "application/xml") ||
        media_is(ct, "text/xml") || media_is(ct, "application/x-plist")) {
        plist_t p = lmdm_mdm_plist_parse(body, len, err, errlen);
        if (!p) out->error_code = "bad_plist";
        return p;
    }
    fail(out, "unsupported_media_type", err, errlen,
         "send the command as application/x-apple-aspen-mdm, application/xml or application/json");
    return NULL;
}

void lmdm_tenant_profile_ns(long long tenant_id, char out[32]) { snprintf(out, 32, "lmdm.t%lld.", tenant_id); }

int lmdm_tenant_command_parse(const char *content_type, const char *body, size_t len, const char *broker_uuid,
                              const char *profile_ns, lmdm_arena_t *arena, lmdm_tenant_command_t *out, char *err,
                              size_t errlen)
{
    memset(out, 0, sizeof(*out));
    plist_t root = parse_body(content_type, body, len, out, err, errlen);
    if (!root) return LMDM_ERR_INVALID;
    int rv = 0;
    plist_t cmd = plist_dict_get_item(root, "Command");
    if (cmd && plist_get_node_type(cmd) != PLIST_DICT) {
        rv = fail(out, "bad_command", err, errlen, "Command must be a dictionary");
        goto out;
    }
    if (!cmd) {
        if (!plist_dict_get_item(root, "RequestType")) {
            rv = fail(out, "bad_command", err, errlen, "no Command dictionary and no RequestType");
            goto out;
        }
        /* The Command dictionary alone: wrap it. */
        plist_t wrapped = plist_new_dict();
        plist_dict_set_item(wrapped, "Command", root);
        root = wrapped;
        cmd = root != NULL ? plist_dict_get_item(root, "Command") : NULL;
    }
    const char *rt = dict_str(cmd, "RequestType");
    if (!rt || !*rt || strlen(rt) > 100) {
        rv = fail(out, "bad_command", err, errlen, "Command needs a RequestType string");
        goto out;
    }
    out->request_type = lmdm_arena_strdup(arena, rt);
    plist_t tu = plist_dict_get_item(root, "CommandUUID");
    if (tu) {
        const char *s = plist_get_node_type(tu) == PLIST_STRING ? plist_get_string_ptr(tu, NULL) : NULL;
        size_t n = s ? strlen(s) : 0;
        int printable = n > 0 && n <= LMDM_TENANT_UUID_MAX;
        for (size_t i = 0; printable && i < n; i++)
            if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) printable = 0;
        if (!printable) {
            rv = fail(out, "bad_command", err, errlen, "CommandUUID must be 1..%d printable ASCII characters",
                      LMDM_TENANT_UUID_MAX);
            goto out;
        }
        out->tenant_uuid = lmdm_arena_strdup(arena, s);
    }
    if ((rv = extract(cmd, out->request_type, profile_ns, arena, out, err, errlen)) != 0) goto out;
    /* What the device receives: the broker's CommandUUID and the Command. */
    plist_t dev = plist_new_dict();
    plist_dict_set_item(dev, "CommandUUID", plist_new_string(broker_uuid));
    plist_dict_set_item(dev, "Command", plist_copy(cmd));
    char *xml = NULL;
    uint32_t xlen = 0;
    plist_to_xml(dev, &xml, &xlen);
    plist_free(dev);
    if (!xml) {
        rv = fail(out, "bad_command", err, errlen, "cannot serialise the command");
        goto out;
    }
    char *copy = lmdm_arena_alloc(arena, xlen + 1);
    memcpy(copy, xml, xlen);
    copy[xlen] = '\0';
    plist_to_xml_free(xml);
    out->payload = copy;
    out->payload_len = xlen;
out:
    plist_free(root);
    return rv;
}
