/* The tenant's view of a device answer (see lmdm/tenant_result.h). */
#include "lmdm/tenant_result.h"

#include <plist/plist.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/mdm.h"
#include "lmdm/policy.h"

/* Remove, at every depth, the keys policy/ keeps from tenants. */
static void strip(plist_t node, const char *request_type, int depth)
{
    if (depth > LMDM_MDM_MAX_DEPTH) return;
    if (plist_get_node_type(node) == PLIST_ARRAY) {
        uint32_t n = plist_array_get_size(node);
        for (uint32_t i = 0; i < n; i++) strip(plist_array_get_item(node, i), request_type, depth + 1);
        return;
    }
    if (plist_get_node_type(node) != PLIST_DICT) return;
    /* Collect first: removing while iterating invalidates the iterator. */
    char *doomed[64];
    int ndoomed;
    do {
        ndoomed = 0;
        plist_dict_iter it = NULL;
        plist_dict_new_iter(node, &it);
        char *key = NULL;
        plist_t val = NULL;
        for (plist_dict_next_item(node, it, &key, &val); key; plist_dict_next_item(node, it, &key, &val)) {
            if (!lmdm_policy_result_key_visible(request_type, key) && ndoomed < 64) doomed[ndoomed++] = key;
            else {
                strip(val, request_type, depth + 1);
                free(key);
            }
            key = NULL;
        }
        free(it);
        for (int i = 0; i < ndoomed; i++) {
            plist_dict_remove_item(node, doomed[i]);
            free(doomed[i]);
        }
    } while (ndoomed == 64);
}

/* 1 if `id` is one of the lines of `owned`. */
static int owns(const char *owned, const char *id)
{
    size_t n = strlen(id);
    for (const char *p = owned; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len == n && memcmp(p, id, n) == 0) return 1;
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

/* "a\nb" as a list (the copy is the caller's to free with free(v[0]) and v). */
static lmdm_strs_t split_lines(const char *text)
{
    if (!text || !*text) return (lmdm_strs_t){NULL, 0};
    char *copy = strdup(text);
    size_t n = 1;
    for (const char *p = copy; *p; p++) n += *p == '\n';
    const char **v = malloc(n * sizeof(char *));
    if (!copy || !v) {
        free(copy);
        free(v);
        return (lmdm_strs_t){NULL, 0};
    }
    size_t i = 0;
    v[i++] = copy;
    for (char *p = copy; *p; p++)
        if (*p == '\n') {
            *p = '\0';
            v[i++] = p + 1;
        }
    return (lmdm_strs_t){v, i};
}

static void free_lines(lmdm_strs_t l)
{
    if (l.n) free((void *)l.v[0]);
    free((void *)l.v);
}

/* ManagedApplicationList: {bundle id: attributes}; keep the tenant's own
 * (policy/ decides which). */
static void keep_owned_apps(plist_t root, const char *owned_text)
{
    plist_t list = plist_dict_get_item(root, "ManagedApplicationList");
    if (!list || plist_get_node_type(list) != PLIST_DICT) return;
    uint32_t n = plist_dict_get_size(list);
    char **names = calloc(n + 1, sizeof(char *));
    plist_t *vals = calloc(n + 1, sizeof(plist_t));
    unsigned char *keep = calloc(n + 1, 1);
    lmdm_strs_t owned = split_lines(owned_text);
    plist_t kept = plist_new_dict();
    if (names && vals && keep) {
        plist_dict_iter it = NULL;
        plist_dict_new_iter(list, &it);
        uint32_t i = 0;
        char *key = NULL;
        plist_t val = NULL;
        for (plist_dict_next_item(list, it, &key, &val); key && i < n; plist_dict_next_item(list, it, &key, &val)) {
            names[i] = key;
            vals[i++] = val;
            key = NULL;
        }
        free(key);
        free(it);
        lmdm_policy_filter_owned((lmdm_strs_t){(const char *const *)names, i}, owned, keep);
        for (uint32_t k = 0; k < i; k++)
            if (keep[k]) plist_dict_set_item(kept, names[k], plist_copy(vals[k]));
        for (uint32_t k = 0; k < i; k++) free(names[k]);
    }
    free(names);
    free(vals);
    free(keep);
    free_lines(owned);
    plist_dict_set_item(root, "ManagedApplicationList", kept); /* frees the old list */
}

/* ProfileList: [{PayloadIdentifier, ...}]; keep the tenant's own profiles,
 * named as the tenant knows them (without its namespace). */
static void keep_owned_profiles(plist_t root, const char *owned, const char *ns)
{
    size_t nslen = ns ? strlen(ns) : 0;
    plist_t list = plist_dict_get_item(root, "ProfileList");
    if (!list || plist_get_node_type(list) != PLIST_ARRAY) return;
    for (uint32_t i = plist_array_get_size(list); i-- > 0;) {
        plist_t p = plist_array_get_item(list, i);
        plist_t id = plist_get_node_type(p) == PLIST_DICT ? plist_dict_get_item(p, "PayloadIdentifier") : NULL;
        const char *s = id && plist_get_node_type(id) == PLIST_STRING ? plist_get_string_ptr(id, NULL) : NULL;
        if (s && nslen && strncmp(s, ns, nslen) == 0 && owns(owned, s + nslen))
            plist_dict_set_item(p, "PayloadIdentifier", plist_new_string(s + nslen));
        else if (!s || nslen || !owns(owned, s))
            plist_array_remove_item(list, i);
    }
}

/* SecurityInfo / DeviceInformation: only allow-listed keys in the dictionary
 * `container` of the answer. */
static void keep_info_keys(plist_t root, const char *request_type, const char *container)
{
    plist_t d = plist_dict_get_item(root, container);
    if (!d || plist_get_node_type(d) != PLIST_DICT) return;
    plist_t kept = plist_new_dict();
    plist_dict_iter it = NULL;
    plist_dict_new_iter(d, &it);
    char *key = NULL;
    plist_t val = NULL;
    for (plist_dict_next_item(d, it, &key, &val); key; plist_dict_next_item(d, it, &key, &val)) {
        if (lmdm_policy_info_key_allowed(request_type, key)) plist_dict_set_item(kept, key, plist_copy(val));
        free(key);
        key = NULL;
    }
    free(it);
    plist_dict_set_item(root, container, kept);
}

int lmdm_tenant_result_view(const char *request_type, const char *xml, size_t len, const char *tenant_uuid,
                            const lmdm_tenant_owned_t *owned, lmdm_buf_t *out)
{
    char err[128];
    plist_t root = lmdm_mdm_plist_parse(xml, len, err, sizeof(err));
    if (!root) return LMDM_ERR_INVALID;
    strip(root, request_type, 0);
    keep_owned_apps(root, owned ? owned->apps : NULL);
    keep_owned_profiles(root, owned ? owned->profiles : NULL, owned ? owned->profile_ns : NULL);
    if (request_type && strcmp(request_type, "SecurityInfo") == 0) keep_info_keys(root, request_type, "SecurityInfo");
    if (request_type && strcmp(request_type, "DeviceInformation") == 0)
        keep_info_keys(root, request_type, "QueryResponses");
    if (tenant_uuid && *tenant_uuid) plist_dict_set_item(root, "CommandUUID", plist_new_string(tenant_uuid));
    else plist_dict_remove_item(root, "CommandUUID");
    char *text = NULL;
    uint32_t tlen = 0;
    plist_to_xml(root, &text, &tlen);
    plist_free(root);
    if (!text) return LMDM_ERR_NOMEM;
    lmdm_buf_append(out, text, tlen);
    plist_to_xml_free(text);
    return 0;
}
