/* HTML for owner pages: escaping, the page frame and headers, form and cookie
 * decoding, and invitation rules in plain words (lmdm/html.h). */
#include "lmdm/html.h"
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
    "main{max-width:36em;margin:0 auto}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}"
    "ul{padding-left:1.2em}li{margin:.3em 0}.never li{list-style:'\\2715  '}"
    ".box{border:1px solid #ccc;border-radius:8px;padding:.2em 1em;margin:1em 0}"
    "form{display:inline-block;margin:.5em .5em .5em 0}"
    "button,.button{font:inherit;padding:.6em 1.2em;border-radius:8px;border:1px solid "
    "#666;background:#f4f4f4;"
    "color:#111;text-decoration:none;display:inline-block}"
    "button.primary{background:#0a5;color:#fff;border-color:#0a5}"
    "button.danger{background:#c22;color:#fff;border-color:#c22}.muted{color:#666}"
    "@media(prefers-color-scheme:dark){body{background:#111;color:#eee}.box{border-color:#444}"
    "button,.button{background:#333;color:#eee}.muted{color:#aaa}}";

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
    /* The invitation code is in the consent page's URL. */
    lmdm_http_resp_header(req, "Referrer-Policy", "no-referrer");
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

static void rule_item(lmdm_buf_t *b, const char *section, const char *key, const json_t *v)
{
    int k = model_key(section, key);
    lmdm_buf_puts(b, "<li>");
    size_t nkeys;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&nkeys);
    int typed = k >= 0 && (keys[k].type == LMDM_RULE_INT ? json_is_integer(v) && json_integer_value(v) >= keys[k].min &&
                                                               json_integer_value(v) <= keys[k].max
                                                         : json_is_boolean(v));
    if (typed) {
        char text[256];
        long val = json_is_integer(v) ? (long)json_integer_value(v) : json_is_true(v);
        lmdm_rule_plain(k, val, text, sizeof(text));
        if (text[0] >= 'a' && text[0] <= 'z') text[0] = (char)(text[0] - 'a' + 'A');
        lmdm_html_escape(b, text);
    } else {
        if (section) {
            lmdm_html_escape(b, section);
            lmdm_buf_puts(b, ".");
        }
        lmdm_html_escape(b, key);
        lmdm_buf_puts(b, ": ");
        value_text(b, v);
    }
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
        json_object_foreach(json_object_get(root, sections[s]), key, kv) {
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
    json_object_foreach(json_object_get(root, "domains"), list, items) {
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
