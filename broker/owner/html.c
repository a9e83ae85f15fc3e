/* HTML for owner pages: escaping, the page frame and headers, form and cookie
 * decoding, rules and tenant commands in plain words, and the policy table
 * (lmdm/html.h). */
#include "lmdm/html.h"
#include "lmdm/policy.h"
#include "lmdm/rules.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REPLACEMENT "\xEF\xBF\xBD" /* U+FFFD */

/* Length of the well-formed UTF-8 sequence at s (at most n bytes), or 0 when
 * it is not one (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

/* Characters that are valid but have no business in a name shown to the
 * owner: C1 controls, and the bidirectional overrides and isolates, with
 * which a tenant name could display as something else. */
static int unwanted(const unsigned char *s, size_t len)
{
    if (len == 2) return s[0] == 0xC2 && s[1] < 0xA0;
    if (len != 3 || s[0] != 0xE2) return 0;
    unsigned cp = (unsigned)(s[1] & 0x3F) << 6 | (s[2] & 0x3F); /* low 12 bits after 0x2000 */
    return (cp >= 0x02A && cp <= 0x02E) || (cp >= 0x066 && cp <= 0x069);
}

void lmdm_html_escape_n(lmdm_buf_t *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            switch (c) {
            case '&': lmdm_buf_puts(b, "&amp;"); break;
            case '<': lmdm_buf_puts(b, "&lt;"); break;
            case '>': lmdm_buf_puts(b, "&gt;"); break;
            case '"': lmdm_buf_puts(b, "&quot;"); break;
            case '\'': lmdm_buf_puts(b, "&#39;"); break;
            default:
                if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7F)
                    lmdm_buf_puts(b, REPLACEMENT);
                else
                    lmdm_buf_append(b, &p[i], 1);
            }
            i++;
            continue;
        }
        size_t len = utf8_len(p + i, n - i);
        if (len == 0 || unwanted(p + i, len)) {
            lmdm_buf_puts(b, REPLACEMENT);
            i += len ? len : 1;
        } else {
            lmdm_buf_append(b, p + i, len);
            i += len;
        }
    }
}

void lmdm_html_escape(lmdm_buf_t *b, const char *s)
{
    if (s) lmdm_html_escape_n(b, s, strlen(s));
}

/* Large enough to read on a phone without zooming, no external resource. */
static const char style[] =
    "body{font:17px/1.45 -apple-system,system-ui,sans-serif;margin:0;padding:1em;color:#111;background:#fff}"
    "main{max-width:36em;margin:0 auto;overflow-wrap:break-word}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}"
    "ul{padding-left:1.2em}li{margin:.3em 0}.never li{list-style:'\\2715  '}"
    ".box{border:1px solid #ccc;border-radius:8px;padding:.2em 1em;margin:1em 0}"
    "form{display:inline-block;margin:.5em .5em .5em 0}"
    "button,.button{font:inherit;padding:.6em 1.2em;border-radius:8px;border:1px solid "
    "#666;background:#f4f4f4;"
    "color:#111;text-decoration:none;display:inline-block}"
    "button.primary{background:#0a5;color:#fff;border-color:#0a5}"
    "button.danger{background:#c22;color:#fff;border-color:#c22}.muted{color:#666}"
    "code{font-size:.85em;overflow-wrap:anywhere}"
    ".org{border-top:1px solid #ccc;margin-top:1.2em;padding-top:.2em}.org h3{margin-bottom:.2em}"
    "h4{margin:1em 0 .3em}.refused{color:#b11}.inforce{color:#075}"
    ".scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.9em;width:100%}"
    "th,td{text-align:left;vertical-align:top;padding:.35em .5em;border-bottom:1px solid #ddd}"
    "nav a{margin-right:.8em;white-space:nowrap}"
    /* on a phone, each table row becomes a small card with labelled lines */
    "@media(max-width:40em){.scroll table,.scroll tbody,.scroll tr,.scroll td{display:block}"
    ".scroll thead{display:none}.scroll tr{border-bottom:1px solid #ddd;padding:.5em 0}"
    ".scroll td{border:0;padding:.1em 0}.scroll td[data-label]:not(:empty)::before{content:attr(data-label) "
    "\": \";color:#666}}"
    "@media(prefers-color-scheme:dark){body{background:#111;color:#eee}.box{border-color:#444}"
    "button,.button{background:#333;color:#eee}.muted{color:#aaa}.refused{color:#f77}.inforce{color:#5d9}"
    ".org{border-color:#444}th,td{border-color:#333}}";

void lmdm_html_begin(lmdm_buf_t *b, const char *title)
{
    lmdm_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                     "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                     "<meta name=\"robots\" content=\"noindex\"><title>");
    lmdm_html_escape(b, title);
    lmdm_buf_puts(b, "</title><style>");
    lmdm_buf_puts(b, style);
    lmdm_buf_puts(b, "</style></head>\n<body><main>\n<h1>");
    lmdm_html_escape(b, title);
    lmdm_buf_puts(b, "</h1>\n");
}

void lmdm_html_end(lmdm_buf_t *b)
{
    lmdm_buf_puts(b, "</main></body></html>\n");
}

void lmdm_html_para(lmdm_buf_t *b, const char *text)
{
    lmdm_buf_puts(b, "<p>");
    lmdm_html_escape(b, text);
    lmdm_buf_puts(b, "</p>\n");
}

void lmdm_html_security_headers(lmdm_http_req_t *req)
{
    /* Pages carry owner-specific content and CSRF tokens: no cache keeps them. */
    lmdm_http_resp_header(req, "Cache-Control", "no-store");
    lmdm_http_resp_header(req, "X-Frame-Options", "DENY");
    lmdm_http_resp_header(req, "Content-Security-Policy",
                          "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                          "frame-ancestors 'none'; base-uri 'none'");
    /* The invitation code is in the consent page's URL: no other site gets a
     * Referer. Not no-referrer: under it browsers send "Origin: null" with the
     * pages' own form posts (Fetch, "serializing a request origin"), which
     * origin_ok() in owner.c rightly refuses. */
    lmdm_http_resp_header(req, "Referrer-Policy", "same-origin");
    lmdm_http_resp_header(req, "X-Content-Type-Options", "nosniff");
}

void lmdm_html_respond(lmdm_http_req_t *req, int status, lmdm_buf_t *page)
{
    lmdm_html_security_headers(req);
    lmdm_http_respond(req, status, "text/html; charset=utf-8", page->data, page->len);
    lmdm_buf_free(page);
}

void lmdm_html_respond_message(lmdm_http_req_t *req, int status, const char *title, const char *text)
{
    lmdm_buf_t b = {0};
    lmdm_html_begin(&b, title);
    lmdm_html_para(&b, text);
    lmdm_html_end(&b);
    lmdm_html_respond(req, status, &b);
}

/* ---- forms and cookies ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode s[0..n) into an arena string; NULL when it is malformed. */
static char *form_decode(lmdm_arena_t *a, const char *s, size_t n)
{
    char *out = lmdm_arena_alloc(a, n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (n - i < 3) return NULL;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0) return NULL;
            c = (unsigned char)(h << 4 | l);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        /* Tab, newline and carriage return are what a textarea sends; no other
         * control byte belongs in a form. */
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) return NULL;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}

int lmdm_form_parse(lmdm_arena_t *arena, const char *body, size_t len, lmdm_form_field_t *fields, size_t max,
                    size_t *nfields)
{
    *nfields = 0;
    size_t i = 0;
    while (i < len) {
        const char *seg = body + i;
        const char *amp = memchr(seg, '&', len - i);
        size_t seglen = amp ? (size_t)(amp - seg) : len - i;
        i += seglen + (amp ? 1 : 0);
        if (seglen == 0) continue;
        if (*nfields == max) return LMDM_ERR_TOO_LARGE;
        const char *eq = memchr(seg, '=', seglen);
        size_t nlen = eq ? (size_t)(eq - seg) : seglen;
        char *name = form_decode(arena, seg, nlen);
        char *value = eq ? form_decode(arena, eq + 1, seglen - nlen - 1) : lmdm_arena_strdup(arena, "");
        if (!name || !value) return LMDM_ERR_INVALID;
        fields[*nfields].name = name;
        fields[*nfields].value = value;
        (*nfields)++;
    }
    return 0;
}

const char *lmdm_form_get(const lmdm_form_field_t *fields, size_t n, const char *name)
{
    const char *found = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(fields[i].name, name) != 0) continue;
        if (found) return NULL;
        found = fields[i].value;
    }
    return found;
}

int lmdm_html_cookie(const char *header, const char *name, char *out, size_t outlen)
{
    size_t name_len = strlen(name);
    const char *p = header ? header : "";
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len > name_len && strncmp(p, name, name_len) == 0 && p[name_len] == '=') {
            const char *v = p + name_len + 1;
            size_t vlen = len - name_len - 1;
            if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
                v++;
                vlen -= 2;
            }
            if (vlen + 1 > outlen) return LMDM_ERR_TOO_LARGE;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return 0;
        }
        p += len;
        while (*p && *p != ';')
            p++;
    }
    return LMDM_ERR_NOT_FOUND;
}

/* ---- invitation rules in plain words ---- */

/* The model's key (lmdm/rules.h) for section/key, or -1. The key may be the
 * API name or the declarative one (MinimumLength), in any letter case. */
static int model_key(const char *section, const char *key)
{
    static const char *const names[] = {"passcode", "encryption", "restrictions"};
    size_t n;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&n);
    for (size_t i = 0; section && i < n; i++) {
        if (strcasecmp(names[keys[i].section], section) != 0) continue;
        if (strcasecmp(keys[i].name, key) == 0 ||
            (keys[i].declaration_key && strcasecmp(keys[i].declaration_key, key) == 0))
            return (int)i;
    }
    return -1;
}

/* A value as the owner reads it: strings as they are, true/false as yes/no,
 * anything else as compact JSON. */
static void value_text(lmdm_buf_t *b, const json_t *v)
{
    if (json_is_string(v)) {
        lmdm_html_escape_n(b, json_string_value(v), json_string_length(v));
    } else if (json_is_boolean(v)) {
        lmdm_buf_puts(b, json_is_true(v) ? "yes" : "no");
    } else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        lmdm_html_escape(b, s);
        free(s);
    }
}

/* Section/key with value v in plain words ("A passcode of at least 6
 * characters") into text; 0 when the broker does not know the key or v has
 * the wrong type for it. */
static int rule_phrase(const char *section, const char *key, const json_t *v, char *text, size_t len)
{
    int k = model_key(section, key);
    if (k < 0) return 0;
    size_t nkeys;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&nkeys);
    int typed = keys[k].type == LMDM_RULE_INT ? json_is_integer(v) && json_integer_value(v) >= keys[k].min &&
                                                    json_integer_value(v) <= keys[k].max
                                              : json_is_boolean(v);
    if (!typed) return 0;
    long val = json_is_integer(v) ? (long)json_integer_value(v) : json_is_true(v);
    lmdm_rule_plain(k, val, text, len);
    if (text[0] >= 'a' && text[0] <= 'z') text[0] = (char)(text[0] - 'a' + 'A');
    return 1;
}

/* A rule in plain words, or as "section.key: value" when it has none. */
static void rule_text(lmdm_buf_t *b, const char *section, const char *key, const json_t *v)
{
    char text[256];
    if (rule_phrase(section, key, v, text, sizeof(text))) {
        lmdm_html_escape(b, text);
        return;
    }
    if (section) {
        lmdm_html_escape(b, section);
        lmdm_buf_puts(b, ".");
    }
    lmdm_html_escape(b, key);
    lmdm_buf_puts(b, ": ");
    value_text(b, v);
}

static void rule_item(lmdm_buf_t *b, const char *section, const char *key, const json_t *v)
{
    lmdm_buf_puts(b, "<li>");
    rule_text(b, section, key, v);
    lmdm_buf_puts(b, "</li>\n");
}

void lmdm_html_rules(lmdm_buf_t *b, const char *rules_json)
{
    json_t *root = rules_json ? json_loads(rules_json, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL) : NULL;
    size_t shown = 0;
    if (json_is_object(root) && json_object_size(root) > 0) {
        lmdm_buf_puts(b, "<ul class=\"rules\">\n");
        const char *section;
        json_t *sv;
        json_object_foreach(root, section, sv)
        {
            if (json_is_object(sv) && json_object_size(sv) > 0) {
                const char *key;
                json_t *v;
                json_object_foreach(sv, key, v)
                {
                    rule_item(b, section, key, v);
                    shown++;
                }
            } else {
                rule_item(b, NULL, section, sv);
                shown++;
            }
        }
        lmdm_buf_puts(b, "</ul>\n");
    }
    if (!shown) lmdm_html_para(b, "It asks for no device-wide rule.");
    json_decref(root);
}

/* The merged device-wide rules with provenance (lmdm_merged_to_json): each
 * requirement in force and the organizations that require it. */
void lmdm_html_merged_rules(lmdm_buf_t *b, const char *merged_json)
{
    json_t *root = merged_json ? json_loads(merged_json, 0, NULL) : NULL;
    size_t shown = 0;
    static const char *const sections[] = {"passcode", "encryption", "restrictions"};
    lmdm_buf_puts(b, "<ul class=\"rules\">\n");
    for (size_t s = 0; s < sizeof(sections) / sizeof(sections[0]); s++) {
        const char *key;
        json_t *kv;
        json_object_foreach(json_object_get(root, sections[s]), key, kv)
        {
            const char *plain = json_string_value(json_object_get(kv, "plain"));
            json_t *by = json_object_get(kv, "required_by");
            lmdm_buf_puts(b, "<li>");
            char text[256];
            snprintf(text, sizeof(text), "%s", plain ? plain : key);
            if (text[0] >= 'a' && text[0] <= 'z') text[0] = (char)(text[0] - 'a' + 'A');
            lmdm_html_escape(b, text);
            if (json_array_size(by) > 0) {
                lmdm_buf_puts(b, " <span class=\"muted\">— required by ");
                for (size_t i = 0; i < json_array_size(by); i++) {
                    if (i) lmdm_buf_puts(b, i + 1 == json_array_size(by) ? " and " : ", ");
                    lmdm_html_escape(b, json_string_value(json_array_get(by, i)));
                }
                lmdm_buf_puts(b, "</span>");
            }
            lmdm_buf_puts(b, "</li>\n");
            shown++;
        }
    }
    const char *list;
    json_t *items;
    json_object_foreach(json_object_get(root, "domains"), list, items)
    {
        if (!json_is_array(items) || !json_array_size(items)) continue;
        lmdm_buf_puts(b, "<li>Managed domains (");
        lmdm_html_escape(b, list);
        lmdm_buf_puts(b, "): ");
        for (size_t i = 0; i < json_array_size(items); i++) {
            if (i) lmdm_buf_puts(b, ", ");
            lmdm_html_escape(b, json_string_value(json_object_get(json_array_get(items, i), "domain")));
        }
        lmdm_buf_puts(b, "</li>\n");
        shown++;
    }
    lmdm_buf_puts(b, "</ul>\n");
    if (!shown) lmdm_html_para(b, "No organization asks for a device-wide rule.");
    json_decref(root);
}

/* ---- one organization's rules, and which of them are in force ---- */

static int named_in(const json_t *names, const char *name)
{
    for (size_t i = 0; name && i < json_array_size(names); i++) {
        const char *n = json_string_value(json_array_get(names, i));
        if (n && strcmp(n, name) == 0) return 1;
    }
    return 0;
}

/* After one requirement of the organization: whether its value is the one in
 * force (merged_kv is the merged entry of the same key, or NULL). */
static void rule_state(lmdm_buf_t *b, const json_t *merged_kv, const char *tenant_name)
{
    if (!merged_kv) {
        lmdm_buf_puts(b, " <span class=\"muted\">\u2014 not applied yet</span>");
        return;
    }
    if (named_in(json_object_get(merged_kv, "required_by"), tenant_name)) {
        lmdm_buf_puts(b, " <span class=\"inforce\">\u2014 in force: your device follows this rule</span>");
        return;
    }
    const char *plain = json_string_value(json_object_get(merged_kv, "plain"));
    lmdm_buf_puts(b, " <span class=\"muted\">\u2014 a stricter rule applies");
    if (plain) {
        lmdm_buf_puts(b, ": ");
        lmdm_html_escape(b, plain);
    }
    lmdm_buf_puts(b, "</span>");
}

/* Whether every domain of `list` is among the merged ones given by this
 * organization. */
static int domains_in_force(const json_t *list, const json_t *merged_list, const char *tenant_name)
{
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *d = json_string_value(json_array_get(list, i));
        int found = 0;
        for (size_t j = 0; d && !found && j < json_array_size(merged_list); j++) {
            const json_t *m = json_array_get(merged_list, j);
            const char *md = json_string_value(json_object_get(m, "domain"));
            found = md && strcmp(md, d) == 0 && named_in(json_object_get(m, "from"), tenant_name);
        }
        if (!found) return 0;
    }
    return 1;
}

static size_t org_domains(lmdm_buf_t *b, const json_t *domains, const json_t *merged, const char *tenant_name)
{
    size_t shown = 0;
    const char *list;
    json_t *items;
    json_object_foreach((json_t *)domains, list, items)
    {
        if (!json_is_array(items) || !json_array_size(items)) continue;
        lmdm_buf_puts(b, "<li>Managed domains (");
        lmdm_html_escape(b, list);
        lmdm_buf_puts(b, "): ");
        for (size_t i = 0; i < json_array_size(items); i++) {
            if (i) lmdm_buf_puts(b, ", ");
            value_text(b, json_array_get(items, i));
        }
        const json_t *ml = json_object_get(json_object_get(merged, "domains"), list);
        if (domains_in_force(items, ml, tenant_name))
            lmdm_buf_puts(b, " <span class=\"inforce\">\u2014 in force</span>");
        else
            lmdm_buf_puts(b, " <span class=\"muted\">\u2014 not applied yet</span>");
        lmdm_buf_puts(b, "</li>\n");
        shown++;
    }
    return shown;
}

void lmdm_html_tenant_rules(lmdm_buf_t *b, const char *rules_json, const char *merged_json,
                            const char *tenant_name)
{
    json_t *rules = rules_json ? json_loads(rules_json, 0, NULL) : NULL;
    json_t *merged = merged_json ? json_loads(merged_json, 0, NULL) : NULL;
    lmdm_buf_t items = {0};
    size_t shown = 0;
    const char *section;
    json_t *sv;
    json_object_foreach(rules, section, sv)
    {
        if (strcmp(section, "domains") == 0) {
            shown += org_domains(&items, sv, merged, tenant_name);
            continue;
        }
        const char *key;
        json_t *v;
        json_object_foreach(sv, key, v)
        {
            lmdm_buf_puts(&items, "<li>");
            rule_text(&items, section, key, v);
            rule_state(&items, json_object_get(json_object_get(merged, section), key), tenant_name);
            lmdm_buf_puts(&items, "</li>\n");
            shown++;
        }
    }
    if (shown) {
        lmdm_buf_puts(b, "<ul class=\"org-rules\">\n");
        lmdm_buf_append(b, items.data, items.len);
        lmdm_buf_puts(b, "</ul>\n");
    } else {
        lmdm_html_para(b, "It requires no device-wide rule.");
    }
    lmdm_buf_free(&items);
    json_decref(rules);
    json_decref(merged);
}

/* ---- tenant commands in plain words ---- */

/* The commands an owner meets most; any other RequestType is split into words
 * ("ManagedMediaList" -> "Managed media list"). */
static const struct {
    const char *type, *words;
} request_words[] = {
    {"ClearPasscode", "Remove the passcode"},
    {"DeviceInformation", "Read device facts"},
    {"DeviceLocation", "Find where the device is"},
    {"DeviceLock", "Lock the device"},
    {"EnableLostMode", "Put the device in Lost Mode"},
    {"EraseDevice", "Erase the device"},
    {"InstallApplication", "Install an app"},
    {"InstallProfile", "Install settings (a profile)"},
    {"InstalledApplicationList", "List every app on the device"},
    {"ManagedApplicationList", "List its own apps"},
    {"ProfileList", "List profiles"},
    {"RemoveApplication", "Remove an app"},
    {"RemoveProfile", "Remove settings (a profile)"},
    {"RestartDevice", "Restart the device"},
    {"SecurityInfo", "Read security settings"},
    {"Settings", "Change settings"},
    {"ShutDownDevice", "Shut down the device"},
};

static void camel_words(lmdm_buf_t *b, const char *s)
{
    lmdm_buf_t w = {0};
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        int upper = c >= 'A' && c <= 'Z';
        int next_lower = s[i + 1] >= 'a' && s[i + 1] <= 'z';
        int prev_lower = i > 0 && s[i - 1] >= 'a' && s[i - 1] <= 'z';
        /* a word starts at an upper-case letter after a lower-case one, or
         * at the last capital of an acronym followed by lower case (OSUpdate) */
        if (i > 0 && upper && (prev_lower || (next_lower && s[i - 1] >= 'A' && s[i - 1] <= 'Z')))
            lmdm_buf_puts(&w, " ");
        if (i > 0 && upper && next_lower) c = (char)(c - 'A' + 'a');
        lmdm_buf_append(&w, &c, 1);
    }
    lmdm_html_escape_n(b, w.data ? w.data : "", w.len);
    lmdm_buf_free(&w);
}

void lmdm_html_request_type(lmdm_buf_t *b, const char *request_type)
{
    const char *rt = request_type ? request_type : "";
    const char *words = NULL;
    for (size_t i = 0; i < sizeof(request_words) / sizeof(request_words[0]); i++)
        if (strcmp(request_words[i].type, rt) == 0) words = request_words[i].words;
    if (words)
        lmdm_html_escape(b, words);
    else
        camel_words(b, rt);
}

/* Reason codes of policy/decide.c that are not a table row's, with the
 * rationale the tenant was given. */
static const struct {
    const char *reason, *words;
} reason_words[] = {
    {"certificate_alone",
     "certificates are accepted only with the organization's own accounts or per-app VPN that use them"},
    {"empty_profile", "the profile has no settings in it"},
    {"entity_owned_by_other_tenant", "another organization manages this app or profile on the device"},
    {"forbidden_under_user_enrollment",
     "Apple does not allow this on a device enrolled with User Enrollment"},
    {"identifier_required", "the command did not name the app or profile it is about"},
    {"identifiers_required", "the command did not list the organization's own apps"},
    {"inventory", "device details (serial number, phone number, ...) stay private"},
    {"not_owned", "the organization can act only on its own apps and profiles"},
    {"restrictions",
     "only the managed-data restrictions may be asked for; device-wide restrictions are refused"},
    {"settings_item", "only settings of the organization's own apps may be changed"},
    {"takeover", "taking over an app you installed yourself is refused"},
    {"unknown_command", "the broker has no rule for this command, so it is refused"},
    {"unknown_payload", "the broker has no rule for this kind of setting, so it is refused"},
};

/* Why a command was refused, in plain words: the rationale of the policy row
 * that gave this reason (the payload's, then the command's), else the
 * decision procedure's own wording; NULL for a code the broker does not know. */
static const char *refusal_words(const char *request_type, const char *reason, const char *payload_type)
{
    const lmdm_policy_rule_t *r = payload_type ? lmdm_policy_payload_rule(payload_type) : NULL;
    if (r && r->reason && strcmp(r->reason, reason) == 0) return r->explain;
    r = request_type ? lmdm_policy_command_rule(request_type) : NULL;
    if (r && r->kind == LMDM_POLICY_BLOCK && r->reason && strcmp(r->reason, reason) == 0) return r->explain;
    for (size_t i = 0; i < sizeof(reason_words) / sizeof(reason_words[0]); i++)
        if (strcmp(reason_words[i].reason, reason) == 0) return reason_words[i].words;
    return NULL;
}

/* What happened to a command the broker let through, from its state. */
static const char *delivery_words(const char *state)
{
    static const struct {
        const char *state, *words;
    } states[] = {
        {"queued", "Accepted: waiting for your device to check in"},
        {"sent", "Sent to your device"},
        {"notnow", "Sent to your device, which will do it later"},
        {"acknowledged", "Sent to your device, which did it"},
        {"error", "Sent to your device, which reported an error"},
        {"format_error", "Sent to your device, which could not read it"},
        {"cancelled", "Cancelled before it reached your device"},
    };
    for (size_t i = 0; state && i < sizeof(states) / sizeof(states[0]); i++)
        if (strcmp(states[i].state, state) == 0) return states[i].words;
    return "Allowed";
}

void lmdm_html_decision(lmdm_buf_t *b, const char *request_type, const char *decision, const char *reason,
                        const char *payload_type, const char *command_state)
{
    const char *d = decision ? decision : "";
    if (strcmp(d, "block") == 0) {
        const char *why = reason ? refusal_words(request_type, reason, payload_type) : NULL;
        lmdm_buf_puts(b, "<span class=\"refused\">Refused");
        if (payload_type) {
            lmdm_buf_puts(b, " (because of its ");
            lmdm_html_escape(b, payload_type);
            lmdm_buf_puts(b, " setting)");
        }
        lmdm_buf_puts(b, ": ");
        if (why) {
            lmdm_html_escape(b, why);
        } else {
            lmdm_buf_puts(b, "reason code ");
            lmdm_html_escape(b, reason ? reason : "none");
        }
        lmdm_buf_puts(b, "</span>");
    } else if (strcmp(d, "merge") == 0) {
        lmdm_buf_puts(b,
                      "Not sent as is: its device-wide settings were added to the rules in force, where the "
                      "strictest of all organizations applies");
    } else if (strcmp(d, "retire") == 0) {
        lmdm_buf_puts(b, "Treated as leaving: only its own apps and accounts were removed, nothing else was "
                         "erased");
    } else {
        lmdm_html_escape(b, delivery_words(command_state));
    }
}

/* ---- the policy table (GET /policy) ---- */

static const struct {
    lmdm_policy_kind_t kind;
    const char *id, *title, *meaning;
} policy_kinds[] = {
    {LMDM_POLICY_ALLOW, "allow", "Allowed",
     "Harmless and limited to the organization: passed on to the device (answers may be cut down to what "
     "is the organization's)."},
    {LMDM_POLICY_SCOPE, "scope", "Allowed on the organization's own apps and settings only",
     "Passed on only when it names the organization's own apps or profiles; anything else is refused."},
    {LMDM_POLICY_MERGE, "merge", "Merged into the device-wide rules",
     "Never passed on as is: the broker combines the rules of every organization to the strictest and "
     "installs them once, under its own name."},
    {LMDM_POLICY_BLOCK, "block", "Refused",
     "Never reaches the device, whoever asks. The reason code is what the organization is told."},
};
#define NKINDS (sizeof(policy_kinds) / sizeof(policy_kinds[0]))

static size_t count_kind(const lmdm_policy_rule_t *rules, size_t n, lmdm_policy_kind_t kind)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += rules[i].kind == kind;
    return c;
}

static void ue_text(lmdm_buf_t *b, unsigned ue)
{
    if (!ue) return;
    lmdm_buf_puts(b, (ue & LMDM_UE_IOS) && (ue & LMDM_UE_MACOS) ? "iOS, macOS"
                     : (ue & LMDM_UE_IOS)                       ? "iOS"
                                                                : "macOS");
}

/* One table: the rows of `rules` with decision `k`. */
static void policy_rows(lmdm_buf_t *b, const lmdm_policy_rule_t *rules, size_t n, size_t k, const char *what,
                        const char *prefix)
{
    size_t count = count_kind(rules, n, policy_kinds[k].kind);
    lmdm_buf_printf(b, "<h3 id=\"%s-%s\">%s \u2014 %s (%zu)</h3>\n", prefix, policy_kinds[k].id, what,
                    policy_kinds[k].title, count);
    if (!count) {
        lmdm_html_para(b, "None.");
        return;
    }
    lmdm_buf_puts(b, "<div class=\"scroll\"><table>\n<thead><tr><th>Name</th><th>Decision</th><th>Reason "
                     "code</th><th>Why</th><th>Apple forbids it under User Enrollment on</th></tr></thead>\n"
                     "<tbody>\n");
    for (size_t i = 0; i < n; i++) {
        const lmdm_policy_rule_t *r = &rules[i];
        if (r->kind != policy_kinds[k].kind) continue;
        lmdm_buf_printf(b, "<tr id=\"%s-", prefix);
        lmdm_html_escape(b, r->name);
        lmdm_buf_puts(b, "\"><td><code>");
        lmdm_html_escape(b, r->name);
        lmdm_buf_printf(b, "</code></td><td data-label=\"Decision\">%s</td><td data-label=\"Reason code\">",
                        lmdm_policy_kind_name(r->kind));
        lmdm_html_escape(b, r->reason ? r->reason : "");
        lmdm_buf_puts(b, "</td><td>");
        lmdm_html_escape(b, r->explain);
        lmdm_buf_puts(b, "</td><td data-label=\"Apple forbids it under User Enrollment on\">");
        ue_text(b, r->ue_forbidden);
        lmdm_buf_puts(b, "</td></tr>\n");
    }
    lmdm_buf_puts(b, "</tbody></table></div>\n");
}

/* The index of decision `name` in policy_kinds, or -1. */
static int kind_index(const char *name)
{
    for (size_t k = 0; name && k < NKINDS; k++)
        if (strcmp(policy_kinds[k].id, name) == 0) return (int)k;
    return -1;
}

void lmdm_html_policy(lmdm_buf_t *b, const char *decision)
{
    size_t nc, np;
    const lmdm_policy_rule_t *cmds = lmdm_policy_command_rules(&nc);
    const lmdm_policy_rule_t *pays = lmdm_policy_payload_rules(&np);
    int only = kind_index(decision);

    lmdm_html_para(b, "This broker stands between a device and the organizations its owner accepted. Every "
                      "command an organization sends, and every setting in a profile it sends, gets one of "
                      "the decisions below before anything reaches the device. Anything not listed here is "
                      "refused.");
    lmdm_buf_puts(b, "<dl>\n");
    for (size_t k = 0; k < NKINDS; k++)
        lmdm_buf_printf(b, "<dt><strong>%s</strong> (<code>%s</code>)</dt><dd>%s</dd>\n",
                        policy_kinds[k].title, policy_kinds[k].id, policy_kinds[k].meaning);
    lmdm_buf_puts(b, "</dl>\n<nav><p>Show: <a href=\"/policy\">every decision</a>");
    for (size_t k = 0; k < NKINDS; k++)
        lmdm_buf_printf(b, " <a href=\"/policy?decision=%s\">%s only</a>", policy_kinds[k].id,
                        policy_kinds[k].id);
    lmdm_buf_puts(b, "</p>\n<p>Jump to: ");
    for (size_t k = 0; k < NKINDS; k++) {
        if (only >= 0 && (size_t)only != k) continue;
        lmdm_buf_printf(b, " <a href=\"#commands-%s\">commands: %s (%zu)</a>", policy_kinds[k].id,
                        policy_kinds[k].id, count_kind(cmds, nc, policy_kinds[k].kind));
        lmdm_buf_printf(b, " <a href=\"#payloads-%s\">profile settings: %s (%zu)</a>", policy_kinds[k].id,
                        policy_kinds[k].id, count_kind(pays, np, policy_kinds[k].kind));
    }
    lmdm_buf_puts(b, "</p></nav>\n");
    if (decision && decision[0] && only < 0)
        lmdm_html_para(b, "There is no such decision; every decision is shown.");

    lmdm_buf_printf(b, "<h2 id=\"commands\">Commands (%zu)</h2>\n", nc);
    lmdm_html_para(b, "Apple's MDM commands, by RequestType.");
    for (size_t k = 0; k < NKINDS; k++)
        if (only < 0 || (size_t)only == k) policy_rows(b, cmds, nc, k, "Commands", "commands");
    lmdm_buf_printf(b, "<h2 id=\"payloads\">Profile settings (%zu)</h2>\n", np);
    lmdm_html_para(b,
                   "The payloads of a profile an organization installs, by PayloadType. One refused payload "
                   "refuses the whole profile.");
    for (size_t k = 0; k < NKINDS; k++)
        if (only < 0 || (size_t)only == k) policy_rows(b, pays, np, k, "Profile settings", "payloads");
}
