/* Facts from a DeclarativeManagement status report (lmdm/ddm_status.h). */
#include "lmdm/ddm_status.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define MAX_TYPES 512

static json_t *at(json_t *j, const char *a, const char *b, const char *c)
{
    j = json_object_get(j, a);
    if (j && b) j = json_object_get(j, b);
    if (j && c) j = json_object_get(j, c);
    return j;
}

/* A string of 1..max characters from `allowed` (plus alphanumerics). */
static const char *token(json_t *v, size_t max, const char *allowed)
{
    const char *s = json_string_value(v);
    if (!s) return NULL;
    size_t n = strlen(s);
    if (n == 0 || n > max || n != json_string_length(v)) return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr(allowed, c);
        if (!ok) return NULL;
    }
    return s;
}

static const char *version(json_t *v)
{
    const char *s = token(v, 32, ".");
    if (!s) return NULL;
    for (const char *p = s; *p; p++)
        if (!(*p == '.' || (*p >= '0' && *p <= '9'))) return NULL;
    return s[0] != '.' && s[strlen(s) - 1] != '.' && !strstr(s, "..") ? s : NULL;
}

char *lmdm_ddm_status_facts(const void *data, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    /* A NUL inside a string the broker does not read must not refuse the
     * report; the values it keeps are checked for one (token()). */
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    json_t *items = json_is_object(root) ? json_object_get(root, "StatusItems") : NULL;
    if (!json_is_object(items)) {
        snprintf(err, errlen, "the status report is not a JSON object with StatusItems%s%s", root ? "" : ": ",
                 root ? "" : jerr.text);
        json_decref(root);
        return NULL;
    }
    json_t *facts = json_object();
    const char *s;
    if ((s = version(at(items, "device", "operating-system", "version"))))
        json_object_set_new(facts, "OSVersion", json_string(s));
    if ((s = token(at(items, "device", "operating-system", "build-version"), 32, "")))
        json_object_set_new(facts, "BuildVersion", json_string(s));
    if ((s = token(at(items, "device", "model", "identifier"), 64, ",-_")))
        json_object_set_new(facts, "ProductName", json_string(s));
    json_t *conf = at(items, "management", "client-capabilities", "supported-payloads");
    conf = conf ? at(conf, "declarations", "configurations", NULL) : NULL;
    if (json_is_array(conf) && json_array_size(conf) <= MAX_TYPES) {
        json_t *types = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(conf, i, v) {
            if ((s = token(v, 128, ".-_"))) json_array_append_new(types, json_string(s));
        }
        json_object_set_new(facts, "DeclarationTypes", types);
    }
    json_decref(root);
    char *out = json_dumps(facts, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(facts);
    if (!out) snprintf(err, errlen, "out of memory");
    return out;
}
