/* HTML for owner pages (broker/owner/html.c): escaping of hostile strings and
 * broken UTF-8, form and cookie decoding of hostile input, invitation rules
 * in words. */
#include <iconv.h>
#include <stdint.h>
#include <stdlib.h>

#include "harness.h"
#include "lmdm/html.h"

static char *esc(lmdm_buf_t *b, const char *s)
{
    lmdm_buf_free(b);
    lmdm_html_escape(b, s);
    return b->data ? b->data : "";
}

#define FFFD "\xEF\xBF\xBD"

static void test_escape_markup(void)
{
    lmdm_buf_t b = {0};
    CHECK_STR_EQ(esc(&b, "<script>alert(\"x\")</script>"),
                 "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
    CHECK_STR_EQ(esc(&b, "St. Mary's & Co"), "St. Mary&#39;s &amp; Co");
    CHECK_STR_EQ(esc(&b, "&amp;"), "&amp;amp;");
    CHECK_STR_EQ(esc(&b, "\" onmouseover=\"x"), "&quot; onmouseover=&quot;x");
    CHECK_STR_EQ(esc(&b, "plain text, unchanged"), "plain text, unchanged");
    CHECK_STR_EQ(esc(&b, "line\nbreak\ttab"), "line\nbreak\ttab");
    CHECK_STR_EQ(esc(&b, ""), "");
    lmdm_buf_free(&b);
    lmdm_html_escape(&b, NULL);
    CHECK(b.len == 0);
    lmdm_buf_free(&b);
}

static void test_escape_utf8(void)
{
    lmdm_buf_t b = {0};
    /* Well-formed UTF-8 stays: 2, 3 and 4 byte sequences. */
    CHECK_STR_EQ(esc(&b, "Hôpital Saint-Éloi \xE2\x82\xAC \xF0\x9F\x98\x80"),
                 "Hôpital Saint-Éloi \xE2\x82\xAC \xF0\x9F\x98\x80");
    CHECK_STR_EQ(esc(&b, "a\xFF"
                         "b"),
                 "a" FFFD "b");                                     /* never a UTF-8 byte */
    CHECK_STR_EQ(esc(&b, "\xC0\xBC"), FFFD FFFD);                   /* overlong '<' */
    CHECK_STR_EQ(esc(&b, "\xE0\x80\xBC"), FFFD FFFD FFFD);          /* overlong, 3 bytes */
    CHECK_STR_EQ(esc(&b, "\xED\xA0\x80"), FFFD FFFD FFFD);          /* UTF-16 surrogate */
    CHECK_STR_EQ(esc(&b, "\xF4\x90\x80\x80"), FFFD FFFD FFFD FFFD); /* past U+10FFFF */
    CHECK_STR_EQ(esc(&b, "x\xE2\x82"), "x" FFFD FFFD);              /* truncated at the end */
    CHECK_STR_EQ(esc(&b, "\x80<"), FFFD "&lt;");                    /* stray continuation */
    CHECK_STR_EQ(esc(&b, "\xE2\x82<"), FFFD FFFD "&lt;");           /* truncated before markup */
    /* Controls and bidirectional overrides cannot disguise a name. */
    CHECK_STR_EQ(esc(&b, "a\x01\x1b[31m\x7f"), "a" FFFD FFFD "[31m" FFFD);
    CHECK_STR_EQ(esc(&b, "\xC2\x85"), FFFD);                                 /* C1 control NEL */
    CHECK_STR_EQ(esc(&b, "evil\xE2\x80\xAEgnp.exe"), "evil" FFFD "gnp.exe"); /* U+202E */
    CHECK_STR_EQ(esc(&b, "\xE2\x81\xA6x\xE2\x81\xA9"), FFFD "x" FFFD);       /* U+2066, U+2069 */
    CHECK_STR_EQ(esc(&b, "\xE2\x80\x94"), "\xE2\x80\x94");                   /* an em dash is fine */
    lmdm_buf_free(&b);
    /* An embedded NUL (escape_n) does not end the text silently. */
    lmdm_html_escape_n(&b, "a\0<", 3);
    CHECK(b.len == 3 + 1 + 4 && memcmp(b.data, "a" FFFD "&lt;", b.len) == 0);
    lmdm_buf_free(&b);
}

/* Random bytes: the output never holds markup characters, every '&' starts
 * one of the five entities, and the whole is valid UTF-8 (iconv agrees). */
static void test_escape_random(void)
{
    uint64_t state = 0x9E3779B97F4A7C15ull;
    iconv_t cd = iconv_open("UTF-32LE", "UTF-8");
    CHECK(cd != (iconv_t)-1);
    int bad = 0;
    for (int round = 0; round < 2000 && !bad; round++) {
        unsigned char in[64];
        size_t n = (size_t)(round % 64) + 1;
        for (size_t i = 0; i < n; i++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            in[i] = (unsigned char)(state >> 56);
        }
        lmdm_buf_t b = {0};
        lmdm_html_escape_n(&b, (const char *)in, n);
        for (size_t i = 0; i < b.len; i++) {
            char c = b.data[i];
            if (c == '<' || c == '>' || c == '"' || c == '\'' || c == '\0') bad = 1;
            if (c == '&' && strncmp(b.data + i, "&amp;", 5) && strncmp(b.data + i, "&lt;", 4) &&
                strncmp(b.data + i, "&gt;", 4) && strncmp(b.data + i, "&quot;", 6) &&
                strncmp(b.data + i, "&#39;", 5))
                bad = 1;
        }
        char out[64 * 32];
        char *ip = b.data, *op = out;
        size_t il = b.len, ol = sizeof(out);
        iconv(cd, NULL, NULL, NULL, NULL);
        if (iconv(cd, &ip, &il, &op, &ol) == (size_t)-1) bad = 1;
        if (bad) harness_fail(__FILE__, __LINE__, "round %d: escaped output unsafe or not UTF-8", round);
        lmdm_buf_free(&b);
    }
    CHECK(!bad);
    iconv_close(cd);
}

static void test_page_frame(void)
{
    lmdm_buf_t b = {0};
    lmdm_html_begin(&b, "<img src=x onerror=alert(1)>");
    lmdm_html_para(&b, "a & b");
    lmdm_html_end(&b);
    CHECK_STR_CONTAINS(b.data, "<meta charset=\"utf-8\">");
    CHECK_STR_CONTAINS(b.data, "name=\"viewport\"");
    CHECK_STR_CONTAINS(b.data, "<h1>&lt;img src=x onerror=alert(1)&gt;</h1>");
    CHECK_STR_CONTAINS(b.data, "<title>&lt;img");
    CHECK_STR_CONTAINS(b.data, "<p>a &amp; b</p>");
    CHECK(strstr(b.data, "<img") == NULL);
    CHECK(strstr(b.data, "<script") == NULL);
    CHECK_STR_CONTAINS(b.data, "</html>");
    lmdm_buf_free(&b);
}

static int parse(lmdm_arena_t *a, const char *body, lmdm_form_field_t *f, size_t *n)
{
    return lmdm_form_parse(a, body, strlen(body), f, LMDM_FORM_MAX_FIELDS, n);
}

static void test_form(void)
{
    lmdm_arena_t *a = lmdm_arena_new(0);
    lmdm_form_field_t f[LMDM_FORM_MAX_FIELDS];
    size_t n = 99;

    CHECK_INT_EQ(parse(a, "action=accept&csrf=0123abcd", f, &n), 0);
    CHECK_INT_EQ(n, 2);
    CHECK_STR_EQ(lmdm_form_get(f, n, "action"), "accept");
    CHECK_STR_EQ(lmdm_form_get(f, n, "csrf"), "0123abcd");
    CHECK(lmdm_form_get(f, n, "other") == NULL);

    CHECK_INT_EQ(parse(a, "a=%41%62+c%2B%26%3D", f, &n), 0);
    CHECK_STR_EQ(lmdm_form_get(f, n, "a"), "Ab c+&=");
    CHECK_INT_EQ(parse(a, "n%61me=v", f, &n), 0); /* names are decoded too */
    CHECK_STR_EQ(lmdm_form_get(f, n, "name"), "v");
    CHECK_INT_EQ(parse(a, "a=1&&b=2&", f, &n), 0); /* empty segments skipped */
    CHECK_INT_EQ(n, 2);
    CHECK_INT_EQ(parse(a, "flag", f, &n), 0);
    CHECK_STR_EQ(lmdm_form_get(f, n, "flag"), "");
    CHECK_INT_EQ(parse(a, "=x", f, &n), 0);
    CHECK_STR_EQ(lmdm_form_get(f, n, ""), "x");
    CHECK_INT_EQ(parse(a, "a=1=2", f, &n), 0); /* the first '=' separates */
    CHECK_STR_EQ(lmdm_form_get(f, n, "a"), "1=2");
    CHECK_INT_EQ(parse(a, "", f, &n), 0);
    CHECK_INT_EQ(n, 0);
    CHECK_INT_EQ(parse(a, "t=line%0D%0Anext", f, &n), 0); /* what a textarea sends */
    CHECK_INT_EQ(parse(a, "a=%E9t%E9", f, &n), 0);        /* Latin-1 bytes: kept, escaped when shown */
    CHECK_STR_EQ(lmdm_form_get(f, n, "a"), "\xE9t\xE9");

    /* An ambiguous form is not guessed at. */
    CHECK_INT_EQ(parse(a, "action=decline&action=accept", f, &n), 0);
    CHECK(lmdm_form_get(f, n, "action") == NULL);

    /* Hostile input. */
    CHECK_INT_EQ(parse(a, "a=%", f, &n), LMDM_ERR_INVALID);
    CHECK_INT_EQ(parse(a, "a=%4", f, &n), LMDM_ERR_INVALID);
    CHECK_INT_EQ(parse(a, "a=%zz", f, &n), LMDM_ERR_INVALID);
    CHECK_INT_EQ(parse(a, "a=%4g", f, &n), LMDM_ERR_INVALID);
    CHECK_INT_EQ(parse(a, "a=%00", f, &n), LMDM_ERR_INVALID);
    CHECK_INT_EQ(parse(a, "a=%01", f, &n), LMDM_ERR_INVALID);
    CHECK_INT_EQ(parse(a, "a=%7F", f, &n), LMDM_ERR_INVALID);
    CHECK_INT_EQ(parse(a, "%=1", f, &n), LMDM_ERR_INVALID);
    CHECK_INT_EQ(parse(a, "a=\x01", f, &n), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_form_parse(a, "a=b\0c", 5, f, LMDM_FORM_MAX_FIELDS, &n), LMDM_ERR_INVALID);
    /* Only `len` bytes are read: a body need not be NUL-terminated. */
    CHECK_INT_EQ(lmdm_form_parse(a, "a=%41%", 5, f, LMDM_FORM_MAX_FIELDS, &n), 0);
    CHECK_STR_EQ(lmdm_form_get(f, n, "a"), "A");

    char many[200] = "";
    for (int i = 0; i < LMDM_FORM_MAX_FIELDS; i++)
        strcat(many, "x=1&");
    CHECK_INT_EQ(parse(a, many, f, &n), 0);
    CHECK_INT_EQ(n, LMDM_FORM_MAX_FIELDS);
    strcat(many, "y=2");
    CHECK_INT_EQ(parse(a, many, f, &n), LMDM_ERR_TOO_LARGE);

    /* A whole body of escapes: output never longer than the input. */
    char big[4097];
    for (int i = 0; i + 3 <= 4095; i += 3)
        memcpy(big + i, "%3C", 3);
    big[4095] = '\0';
    CHECK_INT_EQ(parse(a, big, f, &n), 0);
    CHECK_INT_EQ(n, 1);
    lmdm_arena_free(a);
}

static void test_cookie(void)
{
    char v[64];
    CHECK_INT_EQ(lmdm_html_cookie("a=1; lmdm_owner=TOKEN_x-1; b=2", "lmdm_owner", v, sizeof v), 0);
    CHECK_STR_EQ(v, "TOKEN_x-1");
    CHECK_INT_EQ(lmdm_html_cookie("lmdm_owner=first", "lmdm_owner", v, sizeof v), 0);
    CHECK_STR_EQ(v, "first");
    CHECK_INT_EQ(lmdm_html_cookie("  a=1 ;  lmdm_owner=t  ", "lmdm_owner", v, sizeof v), 0);
    CHECK_STR_EQ(v, "t");
    CHECK_INT_EQ(lmdm_html_cookie("lmdm_owner=\"quoted\"", "lmdm_owner", v, sizeof v), 0);
    CHECK_STR_EQ(v, "quoted");
    CHECK_INT_EQ(lmdm_html_cookie("lmdm_owner=", "lmdm_owner", v, sizeof v), 0);
    CHECK_STR_EQ(v, "");
    /* Names must match exactly. */
    CHECK_INT_EQ(lmdm_html_cookie("xlmdm_owner=1; lmdm_owner_old=2; LMDM_OWNER=3", "lmdm_owner", v, sizeof v),
                 LMDM_ERR_NOT_FOUND);
    CHECK_INT_EQ(lmdm_html_cookie("lmdm_owner", "lmdm_owner", v, sizeof v), LMDM_ERR_NOT_FOUND);
    CHECK_INT_EQ(lmdm_html_cookie("", "lmdm_owner", v, sizeof v), LMDM_ERR_NOT_FOUND);
    CHECK_INT_EQ(lmdm_html_cookie(NULL, "lmdm_owner", v, sizeof v), LMDM_ERR_NOT_FOUND);
    CHECK_INT_EQ(lmdm_html_cookie(";;;", "lmdm_owner", v, sizeof v), LMDM_ERR_NOT_FOUND);
    CHECK_INT_EQ(lmdm_html_cookie("a=\"x;lmdm_owner=y", "lmdm_owner", v, sizeof v), 0);
    CHECK_STR_EQ(v, "y");
    char small[4];
    CHECK_INT_EQ(lmdm_html_cookie("lmdm_owner=toolong", "lmdm_owner", small, sizeof small),
                 LMDM_ERR_TOO_LARGE);
    CHECK_INT_EQ(lmdm_html_cookie("lmdm_owner=abc", "lmdm_owner", small, sizeof small), 0);
    CHECK_STR_EQ(small, "abc");
}

static char *rules(lmdm_buf_t *b, const char *json)
{
    lmdm_buf_free(b);
    lmdm_html_rules(b, json);
    return b->data;
}

static void test_rules(void)
{
    lmdm_buf_t b = {0};
    CHECK_STR_CONTAINS(rules(&b, "{\"passcode\": {\"minLength\": 6}}"),
                       "<li>A passcode of at least 6 characters</li>");
    CHECK_STR_CONTAINS(rules(&b, "{\"passcode\": {\"MinimumLength\": 8}}"),
                       "A passcode of at least 8 characters");
    CHECK_STR_CONTAINS(rules(&b, "{\"Passcode\": {\"MINLENGTH\": 4}}"), "at least 4 characters");
    CHECK_STR_CONTAINS(rules(&b, "{\"passcode\": {\"requireAlphanumeric\": true, \"maxInactivity\": 5}}"),
                       "A passcode with letters, not only digits");
    CHECK_STR_CONTAINS(b.data, "after at most 5 minutes");
    /* Not in the model (the broker refuses it as a rule): shown as it is. */
    CHECK_STR_CONTAINS(rules(&b, "{\"passcode\": {\"maxFailedAttempts\": 10}}"), "<li>passcode.maxFailedAttempts: 10</li>");
    /* The lenient value of a boolean says so. */
    CHECK_STR_CONTAINS(rules(&b, "{\"passcode\": {\"requireAlphanumeric\": false}}"), "ot required");
    /* Not the expected type or out of range: shown as it is, not phrased wrongly. */
    CHECK_STR_CONTAINS(rules(&b, "{\"passcode\": {\"minLength\": -3}}"), "<li>passcode.minLength: -3</li>");
    CHECK_STR_CONTAINS(rules(&b, "{\"passcode\": {\"minLength\": \"6\"}}"), "<li>passcode.minLength: 6</li>");
    /* Unknown keys: key: value, escaped. */
    CHECK_STR_CONTAINS(rules(&b, "{\"osUpdate\": {\"deadlineDays\": 7}, \"wifi\": \"on\"}"),
                       "<li>osUpdate.deadlineDays: 7</li>");
    CHECK_STR_CONTAINS(b.data, "<li>wifi: on</li>");
    CHECK_STR_CONTAINS(rules(&b, "{\"x\": {\"<b>\": \"<script>alert('1')</script>\"}}"),
                       "<li>x.&lt;b&gt;: &lt;script&gt;alert(&#39;1&#39;)&lt;/script&gt;</li>");
    CHECK(strstr(b.data, "<script") == NULL && strstr(b.data, "<b>") == NULL);
    CHECK_STR_CONTAINS(rules(&b, "{\"x\": {\"list\": [\"<i>\", 1]}}"), "x.list: [&quot;&lt;i&gt;&quot;,1]");
    CHECK_STR_CONTAINS(rules(&b, "{\"s\": {\"k\": \"a\\u0000b\"}}"), "s.k: a" FFFD "b");
    /* Nothing asked. */
    CHECK_STR_CONTAINS(rules(&b, "{}"), "It asks for no device-wide rule.");
    CHECK(strstr(b.data, "<ul") == NULL);
    CHECK_STR_CONTAINS(rules(&b, NULL), "no device-wide rule");
    CHECK_STR_CONTAINS(rules(&b, "not json <x>"), "no device-wide rule");
    CHECK(strstr(b.data, "<x>") == NULL);
    CHECK_STR_CONTAINS(rules(&b, "[1,2]"), "no device-wide rule");
    lmdm_buf_free(&b);
}

int main(void)
{
    RUN(test_escape_markup);
    RUN(test_escape_utf8);
    RUN(test_escape_random);
    RUN(test_page_frame);
    RUN(test_form);
    RUN(test_cookie);
    RUN(test_rules);
    return harness_finish();
}
