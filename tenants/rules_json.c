/* Device-wide rules (lmdm/rules.h) to and from JSON, and from the payloads a
 * tenant's profile carries; the merged result with provenance as JSON
 * (lmdm/rules_json.h). Everything here reads untrusted input: every error
 * names the key and says why, and changes nothing. */
#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lmdm/mdm.h"
#include "lmdm/rules_json.h"

#define FAIL(...)                                                                                            \
    do {                                                                                                     \
        if (err && errlen) snprintf(err, errlen, __VA_ARGS__);                                               \
        return LMDM_ERR_INVALID;                                                                             \
    } while (0)

static const char *const section_names[] = {"passcode", "encryption", "restrictions"};
static const char *const list_names[LMDM_DOMAINS_COUNT] = {"EmailDomains", "WebDomains",
                                                           "SafariPasswordAutoFillDomains",
                                                           "CrossSiteTrackingPreventionRelaxedDomains"};

#define NSECTIONS (sizeof(section_names) / sizeof(section_names[0]))

const char *lmdm_rules_section_name(lmdm_rule_section_t s)
{
    return (size_t)s < NSECTIONS ? section_names[s] : "?";
}

const char *lmdm_rules_domain_list_name(lmdm_domain_list_t l)
{
    return (unsigned)l < LMDM_DOMAINS_COUNT ? list_names[l] : "?";
}

static int section_of(const char *name)
{
    for (size_t s = 0; name && s < NSECTIONS; s++)
        if (strcmp(section_names[s], name) == 0) return (int)s;
    return -1;
}

static int list_of(const char *name)
{
    for (int l = 0; name && l < LMDM_DOMAINS_COUNT; l++)
        if (strcmp(list_names[l], name) == 0) return l;
    return -1;
}

/* The bits of the keys of one section. */
static uint64_t section_mask(int section)
{
    size_t n;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&n);
    uint64_t m = 0;
    for (size_t k = 0; k < n; k++)
        if ((int)keys[k].section == section) m |= (uint64_t)1 << k;
    return m;
}

/* "a, b, c": the API names of a section's keys, for error messages. */
static void key_list(int section, char *buf, size_t len)
{
    size_t n, at = 0;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&n);
    buf[0] = '\0';
    for (size_t k = 0; k < n && at < len; k++) {
        if ((int)keys[k].section != section) continue;
        int w = snprintf(buf + at, len - at, "%s%s", at ? ", " : "", keys[k].name);
        if (w < 0) break;
        at += (size_t)w;
    }
}

/* The key whose payload or declaration key is `name` (any letter case), to
 * point a tenant that wrote Apple's name at ours; -1 if none. */
static int apple_alias(int section, const char *name)
{
    size_t n;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&n);
    for (size_t k = 0; k < n; k++) {
        if ((int)keys[k].section != section) continue;
        if (strcasecmp(keys[k].name, name) == 0 || strcasecmp(keys[k].payload_key, name) == 0 ||
            (keys[k].declaration_key && strcasecmp(keys[k].declaration_key, name) == 0))
            return (int)k;
    }
    return -1;
}

static int is_max_failed_attempts(const char *name)
{
    return strcasecmp(name, "maxFailedAttempts") == 0 || strcasecmp(name, "MaximumFailedAttempts") == 0;
}

static const char max_failed_why[] =
    "is not accepted: when that many wrong passcodes are typed, iOS erases the device, so it would let an "
    "organization trigger a wipe; the device keeps its owner's own setting";

/* The error for a key that is not in the section. */
static int unknown_key(int section, const char *name, char *err, size_t errlen)
{
    char known[1024];
    if (section == LMDM_RULE_SECTION_PASSCODE && is_max_failed_attempts(name))
        FAIL("%s %s", name, max_failed_why);
    int alias = apple_alias(section, name);
    size_t n;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&n);
    if (alias >= 0)
        FAIL("unknown key \"%.64s\" in %s: write \"%s\"", name, section_names[section], keys[alias].name);
    key_list(section, known, sizeof(known));
    if (section == LMDM_RULE_SECTION_RESTRICTIONS)
        FAIL("unknown key \"%.64s\" in restrictions: an organization may ask only for the managed-data "
             "restrictions (%s); every other restriction is device-wide and refused",
             name, known);
    FAIL("unknown key \"%.64s\" in %s (keys: %s)", name, section_names[section], known);
}

static int check_range(const lmdm_rule_key_t *key, long long v, char *err, size_t errlen)
{
    if (v < key->min || v > key->max)
        FAIL("%s: %lld is out of range %ld..%ld", key->name, v, key->min, key->max);
    return 0;
}

/* ---- domains ---- */

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int has_prefix(const char *s, size_t len, const char *p)
{
    size_t pl = strlen(p);
    return len >= pl && strncasecmp(s, p, pl) == 0;
}

/* NULL if s is a plausible managed domain for list l, else what is wrong:
 * a host name (labels of letters, digits and '-', at least two), "*." in
 * front allowed; web lists also take http(s)://, a port and a path. */
static const char *domain_problem(int l, const char *s, size_t len)
{
    if (len == 0) return "is empty";
    if (len > LMDM_RULES_MAX_DOMAIN_LEN) return "is longer than 253 characters";
    if (memchr(s, '\0', len)) return "contains a NUL character";
    int web = l != LMDM_DOMAINS_EMAIL;
    size_t p = 0, labels = 0;
    if (web && has_prefix(s, len, "https://"))
        p = 8;
    else if (web && has_prefix(s, len, "http://"))
        p = 7;
    if (len - p >= 2 && s[p] == '*' && s[p + 1] == '.') p += 2;
    for (;;) {
        size_t start = p;
        while (p < len && (is_alnum(s[p]) || s[p] == '-'))
            p++;
        if (p == start)
            return "is not a domain name (an empty label, or a character other than letters, digits, '-' and "
                   "'.')";
        if (p - start > 63) return "has a label longer than 63 characters";
        if (s[start] == '-' || s[p - 1] == '-') return "has a label that starts or ends with '-'";
        labels++;
        if (p < len && s[p] == '.') {
            p++;
            continue;
        }
        break;
    }
    if (labels < 2) return "is not a domain name (it needs a dot, as in example.org)";
    if (p == len) return NULL;
    if (!web) return "may only be a domain name (letters, digits, '-' and dots)";
    if (s[p] == ':') {
        size_t d = ++p;
        while (p < len && s[p] >= '0' && s[p] <= '9')
            p++;
        if (p == d || p - d > 5) return "has a bad port";
    }
    if (p < len && s[p] != '/') return "has a character that does not belong in a domain name";
    for (; p < len; p++) {
        unsigned char c = (unsigned char)s[p];
        if (c <= 0x20 || c >= 0x7f || strchr("\"<>\\^`{|}", c))
            return "has a character that does not belong in a URL";
    }
    return NULL;
}

/* One domain list being built: strings and their lengths, borrowed. */
typedef struct {
    const char *s[LMDM_RULES_MAX_LIST_INPUT];
    size_t len[LMDM_RULES_MAX_LIST_INPUT];
    size_t n;
} list_in_t;

static size_t list_limit(int l)
{
    return l == LMDM_DOMAINS_CROSS_SITE ? LMDM_RULES_MAX_CROSS_SITE : LMDM_RULES_MAX_LIST_INPUT;
}

static int list_push(list_in_t *in, int l, const char *s, size_t len, char *err, size_t errlen)
{
    if (in->n >= list_limit(l)) FAIL("%s: more than %zu domains", list_names[l], list_limit(l));
    const char *why = domain_problem(l, s, len);
    if (why) FAIL("%s[%zu]: \"%.80s\" %s", list_names[l], in->n, s, why);
    in->s[in->n] = s;
    in->len[in->n] = len;
    in->n++;
    return 0;
}

/* One heap block: the pointer array, then the strings; host names in lower
 * case (they are compared as written, and DNS names ignore case). */
static const char *const *list_block(const list_in_t *in)
{
    if (in->n == 0) return NULL;
    size_t bytes = in->n * sizeof(char *);
    for (size_t i = 0; i < in->n; i++)
        bytes += in->len[i] + 1;
    char **v = lmdm_xmalloc(bytes);
    char *at = (char *)(v + in->n);
    for (size_t i = 0; i < in->n; i++) {
        memcpy(at, in->s[i], in->len[i]);
        at[in->len[i]] = '\0';
        const char *scheme = strstr(at, "://");
        size_t host_from = scheme ? (size_t)(scheme - at) + 3 : 0;
        for (size_t j = 0; j < in->len[i]; j++) {
            if (j >= host_from && at[j] == '/') break;
            if (at[j] >= 'A' && at[j] <= 'Z') at[j] = (char)(at[j] - 'A' + 'a');
        }
        v[i] = at;
        at += in->len[i] + 1;
    }
    return (const char *const *)v;
}

static void list_set(lmdm_rules_t *r, int l, const char *const *block, size_t n)
{
    free((void *)r->domains[l]);
    r->domains[l] = block;
    r->ndomains[l] = block ? n : 0;
}

void lmdm_rules_free(lmdm_rules_t *r)
{
    if (!r) return;
    for (int l = 0; l < LMDM_DOMAINS_COUNT; l++)
        list_set(r, l, NULL, 0);
}

static int domains_from_json(json_t *obj, lmdm_rules_t *out, char *err, size_t errlen)
{
    list_in_t *lists = lmdm_xcalloc(LMDM_DOMAINS_COUNT, sizeof(list_in_t)); /* ~32 KB: not on the stack */
    int rv = 0;
    const char *name;
    json_t *arr;
    json_object_foreach(obj, name, arr)
    {
        int l = list_of(name);
        if (l < 0) {
            snprintf(err, errlen, "unknown key \"%.64s\" in domains (keys: %s, %s, %s, %s)", name,
                     list_names[0], list_names[1], list_names[2], list_names[3]);
            rv = LMDM_ERR_INVALID;
            goto out;
        }
        if (!json_is_array(arr)) {
            snprintf(err, errlen, "%s must be an array of domain names", name);
            rv = LMDM_ERR_INVALID;
            goto out;
        }
        if (json_array_size(arr) > list_limit(l)) {
            snprintf(err, errlen, "%s: %zu domains, more than %zu", name, json_array_size(arr),
                     list_limit(l));
            rv = LMDM_ERR_INVALID;
            goto out;
        }
        size_t i;
        json_t *d;
        json_array_foreach(arr, i, d)
        {
            if (!json_is_string(d)) {
                snprintf(err, errlen, "%s[%zu] must be a string", name, i);
                rv = LMDM_ERR_INVALID;
                goto out;
            }
            if ((rv = list_push(&lists[l], l, json_string_value(d), json_string_length(d), err, errlen)))
                goto out;
        }
    }
    for (int l = 0; l < LMDM_DOMAINS_COUNT; l++)
        list_set(out, l, list_block(&lists[l]), lists[l].n);
out:
    free(lists);
    return rv;
}

/* ---- JSON sections ---- */

int lmdm_rules_from_json(const char *section, json_t *obj, lmdm_rules_t *out, char *err, size_t errlen)
{
    char none[1];
    if (!err || !errlen) err = none, errlen = sizeof(none);
    if (!section || !out) FAIL("no section");
    if (!json_is_object(obj)) FAIL("%.32s must be a JSON object", section);
    if (strcmp(section, "domains") == 0) return domains_from_json(obj, out, err, errlen);
    int sec = section_of(section);
    if (sec < 0) FAIL("unknown section \"%.32s\" (passcode, encryption, restrictions, domains)", section);

    /* Parse into a copy: the section is replaced, and only if all of it is good. */
    uint64_t set = out->set & ~section_mask(sec);
    long value[LMDM_RULES_MAX_KEYS];
    memcpy(value, out->value, sizeof(value));
    size_t nkeys;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&nkeys);
    const char *name;
    json_t *v;
    json_object_foreach(obj, name, v)
    {
        int k = lmdm_rule_key_find((lmdm_rule_section_t)sec, name);
        if (k < 0) return unknown_key(sec, name, err, errlen);
        const lmdm_rule_key_t *key = &keys[k];
        if (key->type == LMDM_RULE_BOOL) {
            if (!json_is_boolean(v)) FAIL("%s must be true or false", key->name);
            value[k] = json_is_true(v);
        } else {
            if (!json_is_integer(v)) FAIL("%s must be an integer in %ld..%ld", key->name, key->min, key->max);
            if (check_range(key, (long long)json_integer_value(v), err, errlen)) return LMDM_ERR_INVALID;
            value[k] = (long)json_integer_value(v);
        }
        set |= (uint64_t)1 << k;
    }
    out->set = set;
    memcpy(out->value, value, sizeof(value));
    return 0;
}

json_t *lmdm_rules_section_to_json(const lmdm_rules_t *r, const char *section)
{
    if (!r || !section) return NULL;
    json_t *o = json_object();
    if (strcmp(section, "domains") == 0) {
        for (int l = 0; l < LMDM_DOMAINS_COUNT; l++) {
            if (!r->ndomains[l] || !r->domains[l]) continue;
            json_t *a = json_array();
            for (size_t j = 0; j < r->ndomains[l]; j++)
                json_array_append_new(a, json_string(r->domains[l][j]));
            json_object_set_new(o, list_names[l], a);
        }
        return o;
    }
    int sec = section_of(section);
    if (sec < 0) {
        json_decref(o);
        return NULL;
    }
    size_t n;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&n);
    for (size_t k = 0; k < n; k++) {
        if ((int)keys[k].section != sec || !(r->set & ((uint64_t)1 << k))) continue;
        json_object_set_new(o, keys[k].name,
                            keys[k].type == LMDM_RULE_BOOL ? json_boolean(r->value[k])
                                                           : json_integer(r->value[k]));
    }
    return o;
}

/* ---- payloads of a tenant's profile ---- */

/* The dictionary's keys one by one; *key is freed at the next call and by
 * dict_iter_end. */
typedef struct {
    plist_t dict;
    plist_dict_iter it;
    char *key;
    plist_t val;
} dict_iter_t;

static void dict_iter_begin(dict_iter_t *di, plist_t dict)
{
    memset(di, 0, sizeof(*di));
    di->dict = dict;
    plist_dict_new_iter(dict, &di->it);
}

static int dict_iter_next(dict_iter_t *di)
{
    free(di->key);
    di->key = NULL;
    di->val = NULL;
    plist_dict_next_item(di->dict, di->it, &di->key, &di->val);
    return di->key != NULL;
}

static void dict_iter_end(dict_iter_t *di)
{
    free(di->key);
    free(di->it);
    di->key = NULL;
    di->it = NULL;
}

static int is_payload_key(const char *k)
{
    return strncmp(k, "Payload", 7) == 0;
}

/* Rules being collected from one payload, committed to `out` at the end. */
typedef struct {
    uint64_t set;
    long value[LMDM_RULES_MAX_KEYS];
} pending_t;

static void pending_put(pending_t *p, int k, long v)
{
    uint64_t bit = (uint64_t)1 << k;
    p->value[k] = (p->set & bit) ? lmdm_rule_combine(k, p->value[k], v) : v;
    p->set |= bit;
}

static int payload_value(const lmdm_rule_key_t *key, const char *pk, plist_t v, long long *out, char *err,
                         size_t errlen)
{
    plist_type t = plist_get_node_type(v);
    if (key->type == LMDM_RULE_BOOL) {
        if (t != PLIST_BOOLEAN) FAIL("%s must be a boolean", pk);
        uint8_t b = 0;
        plist_get_bool_val(v, &b);
        *out = b != 0;
        return 0;
    }
    if (t != PLIST_UINT) FAIL("%s must be an integer", pk);
    uint64_t u = 0;
    plist_get_uint_val(v, &u);
    *out = (long long)u; /* libplist keeps negative integers as their two's complement */
    return 0;
}

/* passwordpolicy and applicationaccess: every key but Payload* must be one
 * of the section's (by its payload key). */
static int payload_keys(plist_t d, int sec, const char *type, pending_t *p, char *err, size_t errlen)
{
    size_t n;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&n);
    char known[1024];
    dict_iter_t di;
    int rv = 0;
    dict_iter_begin(&di, d);
    while (rv == 0 && dict_iter_next(&di)) {
        if (is_payload_key(di.key)) continue;
        int k = -1;
        for (size_t i = 0; i < n && k < 0; i++)
            if ((int)keys[i].section == sec && strcmp(keys[i].payload_key, di.key) == 0) k = (int)i;
        if (k < 0) {
            key_list(sec, known, sizeof(known));
            if (sec == LMDM_RULE_SECTION_PASSCODE && is_max_failed_attempts(di.key))
                snprintf(err, errlen, "%s: %s %s", type, di.key, max_failed_why);
            else if (sec == LMDM_RULE_SECTION_RESTRICTIONS)
                snprintf(err, errlen,
                         "%s: %.64s is not a managed-data restriction; an organization may ask only for %s "
                         "(every other restriction is device-wide and refused)",
                         type, di.key, known);
            else
                snprintf(err, errlen, "%s: %.64s is not a key the broker merges (it merges %s)", type, di.key,
                         known);
            rv = LMDM_ERR_INVALID;
            break;
        }
        long long v;
        if ((rv = payload_value(&keys[k], di.key, di.val, &v, err, errlen))) break;
        /* Apple's ranges of these two start at 0, which profiles use for "no
         * limit": read as that, the key is simply not asked for. */
        if (v == 0 && keys[k].combine == LMDM_COMBINE_MIN && keys[k].min == 1) continue;
        if ((rv = check_range(&keys[k], v, err, errlen))) break;
        pending_put(p, k, (long)v);
    }
    dict_iter_end(&di);
    return rv;
}

/* FileVault: only whether it is on counts; the broker builds its own payload.
 * Keys that would send the recovery key, or a user's credentials, anywhere
 * are refused. */
static int payload_filevault(plist_t d, pending_t *p, char *err, size_t errlen)
{
    static const char *const how[] = {"Defer",
                                      "DeferDontAskAtUserLogout",
                                      "DeferForceAtUserLoginMaxBypassAttempts",
                                      "ForceEnableInSetupAssistant",
                                      "ShowRecoveryKey",
                                      "UseRecoveryKey",
                                      "UserEntersMissingInfo"};
    static const char *const escrow[] = {"Certificate", "OutputPath", "Password", "PayloadCertificateUUID",
                                         "UseKeychain", "Username"};
    plist_t en = plist_dict_get_item(d, "Enable");
    const char *s = en && plist_get_node_type(en) == PLIST_STRING ? plist_get_string_ptr(en, NULL) : NULL;
    if (!s || (strcmp(s, "On") != 0 && strcmp(s, "Off") != 0))
        FAIL("com.apple.MCX.FileVault2: Enable must be the string On or Off");
    dict_iter_t di;
    int rv = 0;
    dict_iter_begin(&di, d);
    while (rv == 0 && dict_iter_next(&di)) {
        int ok = is_payload_key(di.key) || strcmp(di.key, "Enable") == 0;
        for (size_t i = 0; !ok && i < LMDM_ARRAY_LEN(how); i++)
            ok = strcmp(di.key, how[i]) == 0;
        if (ok) continue;
        int esc = 0;
        for (size_t i = 0; i < LMDM_ARRAY_LEN(escrow); i++)
            esc |= strcmp(di.key, escrow[i]) == 0;
        snprintf(
            err, errlen,
            esc ? "com.apple.MCX.FileVault2: %s is refused: the recovery key is never escrowed to an "
                  "organization and the broker takes no credentials (it builds its own FileVault payload)"
                : "com.apple.MCX.FileVault2: %.64s is not a key the broker takes (only Enable counts)",
            di.key);
        rv = LMDM_ERR_INVALID;
    }
    dict_iter_end(&di);
    if (rv == 0)
        pending_put(p, lmdm_rule_key_find(LMDM_RULE_SECTION_ENCRYPTION, "required"), strcmp(s, "On") == 0);
    return rv;
}

/* com.apple.domains: the four lists, appended to what `out` holds. */
static int payload_domains(plist_t d, lmdm_rules_t *out, char *err, size_t errlen)
{
    list_in_t *lists = lmdm_xcalloc(LMDM_DOMAINS_COUNT, sizeof(list_in_t));
    int rv = 0;
    for (int l = 0; rv == 0 && l < LMDM_DOMAINS_COUNT; l++)
        for (size_t j = 0; rv == 0 && j < out->ndomains[l]; j++)
            rv = list_push(&lists[l], l, out->domains[l][j], strlen(out->domains[l][j]), err, errlen);
    dict_iter_t di;
    dict_iter_begin(&di, d);
    while (rv == 0 && dict_iter_next(&di)) {
        if (is_payload_key(di.key)) continue;
        int l = list_of(di.key);
        if (l < 0) {
            snprintf(err, errlen, "com.apple.domains: %.64s is not a key the broker takes", di.key);
            rv = LMDM_ERR_INVALID;
            break;
        }
        if (plist_get_node_type(di.val) != PLIST_ARRAY) {
            snprintf(err, errlen, "%s must be an array of strings", di.key);
            rv = LMDM_ERR_INVALID;
            break;
        }
        uint32_t n = plist_array_get_size(di.val);
        for (uint32_t i = 0; rv == 0 && i < n; i++) {
            plist_t it = plist_array_get_item(di.val, i);
            uint64_t slen = 0;
            const char *s = plist_get_node_type(it) == PLIST_STRING ? plist_get_string_ptr(it, &slen) : NULL;
            if (!s) {
                snprintf(err, errlen, "%s[%u] must be a string", di.key, i);
                rv = LMDM_ERR_INVALID;
            } else {
                rv = list_push(&lists[l], l, s, (size_t)slen, err, errlen);
            }
        }
    }
    /* Build every block before freeing the old lists: the old strings are read. */
    const char *const *blocks[LMDM_DOMAINS_COUNT] = {0};
    for (int l = 0; rv == 0 && l < LMDM_DOMAINS_COUNT; l++)
        blocks[l] = list_block(&lists[l]);
    for (int l = 0; rv == 0 && l < LMDM_DOMAINS_COUNT; l++)
        list_set(out, l, blocks[l], lists[l].n);
    dict_iter_end(&di);
    free(lists);
    return rv;
}

int lmdm_rules_from_payload(const char *payload_type, const char *xml, size_t len, lmdm_rules_t *out,
                            char *err, size_t errlen)
{
    char none[1];
    if (!err || !errlen) err = none, errlen = sizeof(none);
    if (!payload_type || !xml || !out) FAIL("no payload");
    plist_t d = lmdm_mdm_plist_parse(xml, len, err, errlen);
    if (!d) return LMDM_ERR_INVALID;
    int rv = 0;
    plist_t pt = plist_dict_get_item(d, "PayloadType");
    if (pt && (plist_get_node_type(pt) != PLIST_STRING ||
               strcmp(plist_get_string_ptr(pt, NULL), payload_type) != 0)) {
        snprintf(err, errlen, "PayloadType of the payload is not %.64s", payload_type);
        rv = LMDM_ERR_INVALID;
        goto out;
    }
    pending_t p;
    p.set = out->set;
    memcpy(p.value, out->value, sizeof(p.value));
    if (strcmp(payload_type, "com.apple.mobiledevice.passwordpolicy") == 0)
        rv = payload_keys(d, LMDM_RULE_SECTION_PASSCODE, payload_type, &p, err, errlen);
    else if (strcmp(payload_type, "com.apple.applicationaccess") == 0)
        rv = payload_keys(d, LMDM_RULE_SECTION_RESTRICTIONS, payload_type, &p, err, errlen);
    else if (strcmp(payload_type, "com.apple.MCX.FileVault2") == 0)
        rv = payload_filevault(d, &p, err, errlen);
    else if (strcmp(payload_type, "com.apple.domains") == 0)
        rv = payload_domains(d, out, err, errlen);
    else {
        snprintf(err, errlen, "%.64s is not a device-wide rules payload", payload_type);
        rv = LMDM_ERR_INVALID;
    }
    if (rv == 0) {
        out->set = p.set;
        memcpy(out->value, p.value, sizeof(p.value));
    }
out:
    plist_free(d);
    return rv;
}

/* ---- the merged result with provenance ---- */

static json_t *names_of(uint64_t bits, const char *const *names, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n && i < LMDM_RULES_MAX_TENANTS; i++) {
        if (!(bits & ((uint64_t)1 << i))) continue;
        if (names && names[i]) {
            json_array_append_new(a, json_string(names[i]));
        } else {
            char buf[32];
            snprintf(buf, sizeof(buf), "input %zu", i);
            json_array_append_new(a, json_string(buf));
        }
    }
    return a;
}

json_t *lmdm_merged_to_json(const lmdm_merged_t *m, const char *const *input_names, size_t n)
{
    json_t *root = json_object();
    size_t nkeys;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&nkeys);
    for (size_t s = 0; s < NSECTIONS; s++) {
        json_t *sec = json_object();
        for (size_t k = 0; k < nkeys; k++) {
            if (keys[k].section != (lmdm_rule_section_t)s || !(m->rules.set & ((uint64_t)1 << k))) continue;
            long v = m->rules.value[k];
            char plain[256];
            lmdm_rule_plain((int)k, v, plain, sizeof(plain));
            json_object_set_new(sec, keys[k].name,
                                json_pack("{s:o,s:o,s:s}", "value",
                                          keys[k].type == LMDM_RULE_BOOL ? json_boolean(v) : json_integer(v),
                                          "required_by", names_of(m->drivers[k], input_names, n), "plain",
                                          plain));
        }
        json_object_set_new(root, section_names[s], sec);
    }
    json_t *dom = json_object();
    for (int l = 0; l < LMDM_DOMAINS_COUNT; l++) {
        if (!m->ndomains[l]) continue;
        json_t *a = json_array();
        for (size_t j = 0; j < m->ndomains[l]; j++)
            json_array_append_new(a, json_pack("{s:s,s:o}", "domain", m->domains[l][j], "from",
                                               names_of(m->domain_from[l][j], input_names, n)));
        json_object_set_new(dom, list_names[l], a);
    }
    json_object_set_new(root, "domains", dom);
    json_object_set_new(root, "truncated", json_boolean(m->truncated));
    return root;
}
