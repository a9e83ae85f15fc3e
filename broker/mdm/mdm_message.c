/* Apple MDM check-in and command messages (XML property lists, libplist). */
#include <ctype.h>
#include <jansson.h>
#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/mdm.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        rv = LMDM_ERR_INVALID;                                                                     \
        goto out;                                                                                  \
    } while (0)

static const char *const checkin_names[] = {
    [LMDM_CHECKIN_AUTHENTICATE] = "Authenticate",
    [LMDM_CHECKIN_TOKEN_UPDATE] = "TokenUpdate",
    [LMDM_CHECKIN_CHECK_OUT] = "CheckOut",
    [LMDM_CHECKIN_USER_AUTHENTICATE] = "UserAuthenticate",
    [LMDM_CHECKIN_GET_BOOTSTRAP_TOKEN] = "GetBootstrapToken",
    [LMDM_CHECKIN_SET_BOOTSTRAP_TOKEN] = "SetBootstrapToken",
    [LMDM_CHECKIN_DECLARATIVE_MANAGEMENT] = "DeclarativeManagement",
    [LMDM_CHECKIN_GET_TOKEN] = "GetToken",
};

static const char *const status_names[] = {
    [LMDM_STATUS_IDLE] = "Idle",
    [LMDM_STATUS_ACKNOWLEDGED] = "Acknowledged",
    [LMDM_STATUS_ERROR] = "Error",
    [LMDM_STATUS_COMMAND_FORMAT_ERROR] = "CommandFormatError",
    [LMDM_STATUS_NOT_NOW] = "NotNow",
};

const char *lmdm_checkin_type_name(lmdm_checkin_type_t t)
{
    return (size_t)t < LMDM_ARRAY_LEN(checkin_names) ? checkin_names[t] : "?";
}

const char *lmdm_status_name(lmdm_status_t s)
{
    return (size_t)s < LMDM_ARRAY_LEN(status_names) ? status_names[s] : "?";
}

int lmdm_uuid_canon(const char *in, char out[37])
{
    if (!in || strlen(in) != 36) return LMDM_ERR_INVALID;
    for (int i = 0; i < 36; i++) {
        char c = in[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return LMDM_ERR_INVALID;
            out[i] = c;
        } else {
            if (!isxdigit((unsigned char)c)) return LMDM_ERR_INVALID;
            out[i] = (char)tolower((unsigned char)c);
        }
    }
    out[36] = '\0';
    return 0;
}

/* Refuse what libplist should never see: binary plists (devices send XML),
 * NUL bytes, and nesting deeper than LMDM_MDM_MAX_DEPTH (a cheap scan of the
 * container tags, so a hostile body cannot make the parser recurse deeply). */
static int precheck(const char *body, size_t len, char *err, size_t errlen)
{
    if (len == 0) {
        snprintf(err, errlen, "empty body");
        return LMDM_ERR_INVALID;
    }
    if (len >= 6 && memcmp(body, "bplist", 6) == 0) {
        snprintf(err, errlen, "binary property lists are not accepted");
        return LMDM_ERR_INVALID;
    }
    if (memchr(body, '\0', len)) {
        snprintf(err, errlen, "NUL byte in body");
        return LMDM_ERR_INVALID;
    }
    int depth = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (body[i] != '<') continue;
        const char *t = body + i + 1;
        size_t left = len - i - 1;
        int closing = left > 0 && t[0] == '/';
        if (closing) {
            t++;
            left--;
        }
        int container = (left >= 4 && memcmp(t, "dict", 4) == 0) || (left >= 5 && memcmp(t, "array", 5) == 0);
        if (!container) continue;
        /* <dict/> and <array/> open and close at once */
        const char *gt = memchr(t, '>', left);
        int selfclosing = gt && gt > t && gt[-1] == '/';
        if (closing) depth--;
        else if (!selfclosing && ++depth > LMDM_MDM_MAX_DEPTH) {
            snprintf(err, errlen, "nesting deeper than %d", LMDM_MDM_MAX_DEPTH);
            return LMDM_ERR_INVALID;
        }
    }
    return 0;
}

void *lmdm_mdm_plist_parse(const char *body, size_t len, char *err, size_t errlen)
{
    if (precheck(body, len, err, errlen) != 0) return NULL;
    if (len > UINT32_MAX) {
        snprintf(err, errlen, "body too large");
        return NULL;
    }
    plist_t root = NULL;
    plist_from_xml(body, (uint32_t)len, &root);
    if (!root) {
        snprintf(err, errlen, "not a property list");
        return NULL;
    }
    if (plist_get_node_type(root) != PLIST_DICT) {
        plist_free(root);
        snprintf(err, errlen, "top level is not a dictionary");
        return NULL;
    }
    return root;
}

/* Optional string key: 0 and *out = NULL if absent; error on another type. */
static int get_str(plist_t dict, const char *key, lmdm_arena_t *arena, const char **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    plist_t n = plist_dict_get_item(dict, key);
    if (!n) return 0;
    if (plist_get_node_type(n) != PLIST_STRING) {
        snprintf(err, errlen, "%s must be a string", key);
        return LMDM_ERR_INVALID;
    }
    char *v = NULL;
    plist_get_string_val(n, &v);
    *out = lmdm_arena_strdup(arena, v ? v : "");
    free(v);
    return 0;
}

static int get_data(plist_t dict, const char *key, lmdm_arena_t *arena, lmdm_bytes_t *out, char *err,
                    size_t errlen)
{
    out->p = NULL;
    out->len = 0;
    plist_t n = plist_dict_get_item(dict, key);
    if (!n) return 0;
    if (plist_get_node_type(n) != PLIST_DATA) {
        snprintf(err, errlen, "%s must be data", key);
        return LMDM_ERR_INVALID;
    }
    char *v = NULL;
    uint64_t len = 0;
    plist_get_data_val(n, &v, &len);
    unsigned char *copy = lmdm_arena_alloc(arena, len ? len : 1);
    if (len) memcpy(copy, v, len);
    free(v);
    out->p = copy;
    out->len = len;
    return 0;
}

static int get_bool(plist_t dict, const char *key, int *out, char *err, size_t errlen)
{
    *out = 0;
    plist_t n = plist_dict_get_item(dict, key);
    if (!n) return 0;
    if (plist_get_node_type(n) != PLIST_BOOLEAN) {
        snprintf(err, errlen, "%s must be a boolean", key);
        return LMDM_ERR_INVALID;
    }
    uint8_t b = 0;
    plist_get_bool_val(n, &b);
    *out = b != 0;
    return 0;
}

/* Identity keys shared by every message. */
static int parse_who(plist_t d, lmdm_arena_t *arena, lmdm_mdm_who_t *w, char *err, size_t errlen)
{
    int rv = 0;
    memset(w, 0, sizeof(*w));
    if ((rv = get_str(d, "UDID", arena, &w->udid, err, errlen)) ||
        (rv = get_str(d, "EnrollmentID", arena, &w->enrollment_id, err, errlen)) ||
        (rv = get_str(d, "EnrollmentUserID", arena, &w->enrollment_user_id, err, errlen)) ||
        (rv = get_str(d, "UserID", arena, &w->user_id, err, errlen)) ||
        (rv = get_str(d, "UserShortName", arena, &w->user_short_name, err, errlen)) ||
        (rv = get_str(d, "UserLongName", arena, &w->user_long_name, err, errlen)))
        return rv;
    if (w->udid && *w->udid) {
        w->device_key = w->udid;
    } else if (w->enrollment_id && *w->enrollment_id) {
        w->device_key = w->enrollment_id;
        w->user_enrollment = 1;
    } else {
        snprintf(err, errlen, "missing UDID or EnrollmentID");
        return LMDM_ERR_INVALID;
    }
    if (strlen(w->device_key) > 128) {
        snprintf(err, errlen, "device identifier longer than 128 characters");
        return LMDM_ERR_INVALID;
    }
    w->user_key = w->user_id && *w->user_id                       ? w->user_id
                  : w->enrollment_user_id && *w->enrollment_user_id ? w->enrollment_user_id
                                                                    : "";
    if (strlen(w->user_key) > 128) {
        snprintf(err, errlen, "user identifier longer than 128 characters");
        return LMDM_ERR_INVALID;
    }
    return 0;
}

/* The Authenticate details the broker keeps (never shown to tenants). */
static const char *const info_keys[] = {"SerialNumber", "IMEI", "MEID", "DeviceName", "Model", "ModelName",
                                        "ProductName", "OSVersion", "BuildVersion"};

static int info_json(plist_t d, lmdm_arena_t *arena, const char **out, char *err, size_t errlen)
{
    json_t *o = json_object();
    int rv = 0;
    for (size_t i = 0; i < LMDM_ARRAY_LEN(info_keys); i++) {
        const char *v;
        if ((rv = get_str(d, info_keys[i], arena, &v, err, errlen))) break;
        if (v) json_object_set_new(o, info_keys[i], json_string(v));
    }
    if (!rv) {
        char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        if (!s) {
            snprintf(err, errlen, "device details are not valid UTF-8");
            rv = LMDM_ERR_INVALID;
        } else {
            *out = lmdm_arena_strdup(arena, s);
            free(s);
        }
    }
    json_decref(o);
    return rv;
}

int lmdm_checkin_parse(const char *body, size_t len, lmdm_arena_t *arena, lmdm_checkin_t *out, char *err,
                       size_t errlen)
{
    int rv = 0;
    memset(out, 0, sizeof(*out));
    plist_t d = lmdm_mdm_plist_parse(body, len, err, errlen);
    if (!d) return LMDM_ERR_INVALID;
    const char *mt = NULL;
    if ((rv = get_str(d, "MessageType", arena, &mt, err, errlen))) goto out;
    if (!mt) FAIL("missing MessageType");
    size_t t;
    for (t = 0; t < LMDM_ARRAY_LEN(checkin_names); t++)
        if (strcmp(mt, checkin_names[t]) == 0) break;
    if (t == LMDM_ARRAY_LEN(checkin_names)) FAIL("unknown MessageType \"%.64s\"", mt);
    out->type = (lmdm_checkin_type_t)t;
    if ((rv = parse_who(d, arena, &out->who, err, errlen))) goto out;
    if ((rv = get_str(d, "Topic", arena, &out->topic, err, errlen))) goto out;

    switch (out->type) {
    case LMDM_CHECKIN_AUTHENTICATE:
        if (!out->topic || !*out->topic) FAIL("Authenticate without Topic");
        rv = info_json(d, arena, &out->info_json, err, errlen);
        break;
    case LMDM_CHECKIN_TOKEN_UPDATE:
        if ((rv = get_data(d, "Token", arena, &out->token, err, errlen)) ||
            (rv = get_str(d, "PushMagic", arena, &out->push_magic, err, errlen)) ||
            (rv = get_data(d, "UnlockToken", arena, &out->unlock_token, err, errlen)) ||
            (rv = get_bool(d, "AwaitingConfiguration", &out->awaiting_configuration, err, errlen)))
            goto out;
        if (!out->token.len) FAIL("TokenUpdate without Token");
        if (out->token.len > 100) FAIL("Token longer than 100 bytes");
        if (!out->push_magic || !*out->push_magic) FAIL("TokenUpdate without PushMagic");
        if (strlen(out->push_magic) > 128 || strchr(out->push_magic, ' '))
            FAIL("PushMagic must be at most 128 characters without spaces");
        break;
    case LMDM_CHECKIN_SET_BOOTSTRAP_TOKEN: {
        int awaiting;
        if ((rv = get_data(d, "BootstrapToken", arena, &out->bootstrap_token, err, errlen)) ||
            (rv = get_bool(d, "AwaitingConfiguration", &awaiting, err, errlen)))
            goto out;
        out->awaiting_configuration = awaiting;
        break;
    }
    case LMDM_CHECKIN_GET_BOOTSTRAP_TOKEN:
        rv = get_bool(d, "AwaitingConfiguration", &out->awaiting_configuration, err, errlen);
        break;
    case LMDM_CHECKIN_DECLARATIVE_MANAGEMENT:
        if ((rv = get_str(d, "Endpoint", arena, &out->endpoint, err, errlen)) ||
            (rv = get_data(d, "Data", arena, &out->data, err, errlen)))
            goto out;
        if (!out->endpoint || !*out->endpoint) FAIL("DeclarativeManagement without Endpoint");
        break;
    case LMDM_CHECKIN_GET_TOKEN:
        if ((rv = get_str(d, "TokenServiceType", arena, &out->token_service_type, err, errlen))) goto out;
        if (!out->token_service_type) FAIL("GetToken without TokenServiceType");
        break;
    case LMDM_CHECKIN_USER_AUTHENTICATE:
        if (!out->who.user_id || !*out->who.user_id) FAIL("UserAuthenticate without UserID");
        break;
    case LMDM_CHECKIN_CHECK_OUT: break;
    }
out:
    plist_free(d);
    return rv;
}

int lmdm_connect_parse(const char *body, size_t len, lmdm_arena_t *arena, lmdm_connect_t *out, char *err,
                       size_t errlen)
{
    int rv = 0;
    memset(out, 0, sizeof(*out));
    plist_t d = lmdm_mdm_plist_parse(body, len, err, errlen);
    if (!d) return LMDM_ERR_INVALID;
    const char *st = NULL, *uuid = NULL;
    if ((rv = get_str(d, "Status", arena, &st, err, errlen))) goto out;
    if (!st) FAIL("missing Status");
    size_t s;
    for (s = 0; s < LMDM_ARRAY_LEN(status_names); s++)
        if (strcmp(st, status_names[s]) == 0) break;
    if (s == LMDM_ARRAY_LEN(status_names)) FAIL("unknown Status \"%.64s\"", st);
    out->status = (lmdm_status_t)s;
    if ((rv = parse_who(d, arena, &out->who, err, errlen))) goto out;
    if ((rv = get_str(d, "CommandUUID", arena, &uuid, err, errlen))) goto out;
    if (out->status != LMDM_STATUS_IDLE) {
        if (!uuid) FAIL("Status %s without CommandUUID", st);
        char canon[37];
        if (lmdm_uuid_canon(uuid, canon) != 0) FAIL("CommandUUID is not a UUID");
        out->command_uuid = lmdm_arena_strdup(arena, canon);
    }
out:
    plist_free(d);
    return rv;
}

int lmdm_command_wrap(const char *command_xml, size_t len, const char *command_uuid, lmdm_arena_t *arena,
                      lmdm_buf_t *out, const char **request_type, char *err, size_t errlen)
{
    int rv = 0;
    plist_t cmd = lmdm_mdm_plist_parse(command_xml, len, err, errlen);
    if (!cmd) return LMDM_ERR_INVALID;
    plist_t root = NULL;
    const char *rt = NULL;
    if ((rv = get_str(cmd, "RequestType", arena, &rt, err, errlen))) goto out;
    if (!rt || !*rt) FAIL("Command without RequestType");
    root = plist_new_dict();
    plist_dict_set_item(root, "CommandUUID", plist_new_string(command_uuid));
    plist_dict_set_item(root, "Command", cmd); /* root owns cmd now */
    cmd = NULL;
    char *xml = NULL;
    uint32_t xlen = 0;
    plist_to_xml(root, &xml, &xlen);
    if (!xml) FAIL("cannot serialise the command");
    lmdm_buf_append(out, xml, xlen);
    plist_to_xml_free(xml);
    *request_type = rt;
out:
    plist_free(cmd);
    plist_free(root);
    return rv;
}
