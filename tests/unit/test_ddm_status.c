/* Facts from DeclarativeManagement status reports (broker/mdm/ddm_status.c):
 * the three vendored reports (kmfddm's iPhone on an iOS 16 beta and its
 * declarations-only report, zentral's macOS 13 Mac mini) give exactly the
 * facts they hold; the supported configuration types become
 * DeclarationTypes; and hostile input, each with its exact outcome: the
 * whole report refused with a reason, or the bad value left out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lmdm/ddm_status.h"

#define REFUSED "the status report is not a JSON object with StatusItems"


/* The facts of a vendored report (malloc'd), or NULL. */
static char *vector_facts(const char *rel)
{
    size_t len = 0;
    char *data = harness_read_vector(rel, &len);
    if (!data) return NULL;
    char err[256] = "";
    char *out = lmdm_ddm_status_facts(data, len, err, sizeof(err));
    if (!out) harness_fail(__FILE__, __LINE__, "%s refused: %s", rel, err);
    free(data);
    return out;
}

/* Checks the facts of `text` (len bytes) against `want` ("{...}", or NULL
 * for a refusal whose message starts with `want_err`). */
static void expect_n(int line, const char *text, size_t len, const char *want, const char *want_err)
{
    char err[512] = "";
    char *got = lmdm_ddm_status_facts(text, len, err, sizeof(err));
    harness_checks++;
    if (want && (!got || strcmp(got, want) != 0))
        harness_fail(__FILE__, line, "facts \"%s\" != \"%s\" (err \"%s\")", got ? got : "(null)", want, err);
    if (!want && (got || strncmp(err, want_err, strlen(want_err)) != 0))
        harness_fail(__FILE__, line, "refusal: got \"%s\", err \"%s\", wanted \"%s...\"",
                     got ? got : "(null)", err, want_err);
    free(got);
}
#define EXPECT(text, want) expect_n(__LINE__, text, strlen(text), want, NULL)
#define EXPECT_REFUSED(text, err) expect_n(__LINE__, text, strlen(text), NULL, err)

/* A report with the device's operating-system version and model identifier
 * as raw JSON values (NULL: key absent). */
static char *device_report(const char *version, const char *model)
{
    static char buf[8192];
    snprintf(buf, sizeof(buf),
             "{\"StatusItems\":{\"device\":{\"operating-system\":{\"family\":\"iOS\"%s%s},"
             "\"model\":{\"family\":\"iPhone\"%s%s}}},\"Errors\":[]}",
             version ? ",\"version\":" : "", version ? version : "", model ? ",\"identifier\":" : "",
             model ? model : "");
    return buf;
}

/* A report whose supported configuration types are `n` generated names. */
static char *types_report(size_t n)
{
    size_t cap = 128 + n * 48;
    char *buf = malloc(cap), *p = buf;
    p += sprintf(p, "{\"StatusItems\":{\"management\":{\"client-capabilities\":{\"supported-payloads\":"
                    "{\"declarations\":{\"configurations\":[");
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s\"com.example.configuration.t%zu\"", i ? "," : "", i);
    sprintf(p, "]}}}}}}");
    return buf;
}

/* ---- the vendored reports ---- */

static void test_kmfddm_iphone(void)
{
    char *f = vector_facts("jessepeterson_kmfddm/ddm/testdata/"
                           "A047820F-FC6B-4104-BED0-466876D82BB8.20220628-103225.001918.status.json");
    CHECK_STR_EQ(f, "{\"BuildVersion\":\"20A5303i\",\"DeclarationTypes\":["
                    "\"com.apple.configuration.account.caldav\","
                    "\"com.apple.configuration.account.carddav\","
                    "\"com.apple.configuration.account.exchange\","
                    "\"com.apple.configuration.account.google\","
                    "\"com.apple.configuration.account.ldap\","
                    "\"com.apple.configuration.account.mail\","
                    "\"com.apple.configuration.account.subscribed-calendar\","
                    "\"com.apple.configuration.legacy\","
                    "\"com.apple.configuration.legacy.interactive\","
                    "\"com.apple.configuration.management.status-subscriptions\","
                    "\"com.apple.configuration.management.test\","
                    "\"com.apple.configuration.passcode.settings\"],"
                    "\"OSVersion\":\"16.0\",\"ProductName\":\"iPhone10,2\"}");
    free(f);
}

/* An incremental report (declarations only, curly quotes in a reason):
 * accepted, no facts. */
static void test_kmfddm_declarations_only(void)
{
    char *f = vector_facts("jessepeterson_kmfddm/test/e2e/testdata/status.D0.error.json");
    CHECK_STR_EQ(f, "{}");
    free(f);
}

/* The marketing name and the supplemental (Rapid Security Response)
 * build are not facts: only version, build and model. */
static void test_zentral_mac(void)
{
    char *f = vector_facts("zentralopensource_zentral/tests/mdm/testdata/status_report.json");
    CHECK_STR_EQ(f, "{\"BuildVersion\":\"22E261\",\"DeclarationTypes\":["
                    "\"com.apple.configuration.legacy\","
                    "\"com.apple.configuration.legacy.interactive\","
                    "\"com.apple.configuration.management.status-subscriptions\","
                    "\"com.apple.configuration.management.test\","
                    "\"com.apple.configuration.passcode.settings\"],"
                    "\"OSVersion\":\"13.3.1\",\"ProductName\":\"Macmini9,1\"}");
    free(f);
}

/* ---- DeclarationTypes ---- */

static void test_declaration_types(void)
{
    /* Only names: a type with a space, a number, an object and an empty
     * string are left out, the order is the device's. */
    EXPECT(
        "{\"StatusItems\":{\"management\":{\"client-capabilities\":{\"supported-payloads\":{\"declarations\":"
        "{\"configurations\":[\"com.apple.configuration.softwareupdate.enforcement.specific\",\"bad type\",5,"
        "{},\"\",\"com.apple.configuration.passcode.settings\"]}}}}}}",
        "{\"DeclarationTypes\":[\"com.apple.configuration.softwareupdate.enforcement.specific\","
        "\"com.apple.configuration.passcode.settings\"]}");
    /* An empty list is a fact (the device supports none). */
    EXPECT(
        "{\"StatusItems\":{\"management\":{\"client-capabilities\":{\"supported-payloads\":{\"declarations\":"
        "{\"configurations\":[]}}}}}}",
        "{\"DeclarationTypes\":[]}");
    /* Not a list: no fact. */
    EXPECT(
        "{\"StatusItems\":{\"management\":{\"client-capabilities\":{\"supported-payloads\":{\"declarations\":"
        "{\"configurations\":{\"a\":1}}}}}}}",
        "{}");
    EXPECT("{\"StatusItems\":{\"management\":{\"client-capabilities\":{\"supported-payloads\":"
           "[\"declarations\"]}}}}",
           "{}");
    /* 129-character type: left out; 128: kept. */
    char name[130];
    memset(name, 'a', 129);
    name[129] = '\0';
    char text[512], want[512];
    snprintf(
        text, sizeof(text),
        "{\"StatusItems\":{\"management\":{\"client-capabilities\":{\"supported-payloads\":{\"declarations\":"
        "{\"configurations\":[\"%s\",\"%s\"]}}}}}}",
        name, name + 1);
    snprintf(want, sizeof(want), "{\"DeclarationTypes\":[\"%s\"]}", name + 1);
    EXPECT(text, want);
}

/* At most 512 types: more and the list is not a fact. */
static void test_declaration_types_limit(void)
{
    char *r = types_report(512);
    char err[256] = "";
    char *f = lmdm_ddm_status_facts(r, strlen(r), err, sizeof(err));
    CHECK(f != NULL);
    CHECK_STR_CONTAINS(f, "\"com.example.configuration.t0\",");
    CHECK_STR_CONTAINS(f, ",\"com.example.configuration.t511\"]}");
    free(f);
    free(r);
    r = types_report(513);
    EXPECT(r, "{}");
    free(r);
    r = types_report(600);
    EXPECT(r, "{}");
    free(r);
}

/* ---- the whole report refused ---- */

static void test_refused(void)
{
    EXPECT_REFUSED("nope", REFUSED ": '[' or '{' expected near 'nope'");
    EXPECT_REFUSED("", REFUSED ": ");
    EXPECT_REFUSED("[]", REFUSED);
    EXPECT_REFUSED("[{\"StatusItems\":{}}]", REFUSED);
    EXPECT_REFUSED("{}", REFUSED);
    EXPECT_REFUSED("{\"Errors\":[]}", REFUSED);
    EXPECT_REFUSED("{\"StatusItems\":[]}", REFUSED);
    EXPECT_REFUSED("{\"StatusItems\":\"device\"}", REFUSED);
    EXPECT_REFUSED("{\"StatusItems\":null}", REFUSED);
    EXPECT_REFUSED("{\"StatusItems\":{}", REFUSED ": ");
    EXPECT_REFUSED("{\"StatusItems\":{}} {}", REFUSED ": end of file expected");
    /* The refusals other than a parse error carry no trailing reason. */
    char err[256] = "";
    CHECK(lmdm_ddm_status_facts("[]", 2, err, sizeof(err)) == NULL);
    CHECK_STR_EQ(err, REFUSED);
    /* Duplicate keys, at the top and deep inside. */
    EXPECT_REFUSED("{\"StatusItems\":{},\"StatusItems\":{}}", REFUSED ": duplicate object key");
    EXPECT_REFUSED(device_report("\"17.4\",\"version\":\"18.0\"", NULL), REFUSED ": duplicate object key");
    /* Not UTF-8. */
    EXPECT_REFUSED("{\"StatusItems\":{\"device\":{\"model\":{\"identifier\":\"\xff\"}}}}", REFUSED ": ");
    /* A raw NUL byte (not the \u0000 escape) is a control character. */
    static const char raw_nul[] = "{\"StatusItems\":{\"device\":{\"model\":{\"identifier\":\"iPhone\0\"}}}}";
    expect_n(__LINE__, raw_nul, sizeof(raw_nul) - 1, NULL, REFUSED ": control character 0x0");
    /* A tiny error buffer is truncated, not overrun. */
    char tiny[8];
    memset(tiny, 'x', sizeof(tiny));
    CHECK(lmdm_ddm_status_facts("[]", 2, tiny, sizeof(tiny)) == NULL);
    CHECK_STR_EQ(tiny, "the sta");
}

/* An empty StatusItems, or one without the facts: accepted, "{}". */
static void test_no_facts(void)
{
    EXPECT("{\"StatusItems\":{}}", "{}");
    EXPECT("{\"StatusItems\":{\"device\":\"x\"}}", "{}");
    EXPECT("{\"StatusItems\":{\"device\":{\"operating-system\":[\"17.4\"],\"model\":null}}}", "{}");
    EXPECT("{\"StatusItems\":{\"management\":{\"client-capabilities\":7}}}", "{}");
}

/* ---- values left out ---- */

static void test_version(void)
{
    EXPECT(device_report("\"17.4.1\"", NULL), "{\"OSVersion\":\"17.4.1\"}");
    EXPECT(device_report("\"17\"", NULL), "{\"OSVersion\":\"17\"}");
    EXPECT(device_report("\"17.a\"", NULL), "{}");
    EXPECT(device_report("\"\"", NULL), "{}");
    EXPECT(device_report("\".17\"", NULL), "{}");
    EXPECT(device_report("\"17.\"", NULL), "{}");
    EXPECT(device_report("\"17..1\"", NULL), "{}");
    EXPECT(device_report("\"17.4 \"", NULL), "{}");
    EXPECT(device_report("\"-17.4\"", NULL), "{}");
    EXPECT(device_report("\"13.3.1 (a)\"", NULL), "{}");
    EXPECT(device_report("17", NULL), "{}");
    EXPECT(device_report("17.4", NULL), "{}");
    EXPECT(device_report("null", NULL), "{}");
    EXPECT(device_report("[\"17.4\"]", NULL), "{}");
    /* 32 characters kept, 33 and 40 left out. */
    EXPECT(device_report("\"17.4.111111111111111111111111111\"", NULL),
           "{\"OSVersion\":\"17.4.111111111111111111111111111\"}");
    EXPECT(device_report("\"17.4.1111111111111111111111111111\"", NULL), "{}");
    EXPECT(device_report("\"17.4.11111111111111111111111111111111111\"", NULL), "{}");
    /* \u0000 inside: left out, the other facts kept. */
    EXPECT(device_report("\"17.4\\u0000.1\"", "\"iPhone15,2\""), "{\"ProductName\":\"iPhone15,2\"}");
}

static void test_model(void)
{
    EXPECT(device_report(NULL, "\"iPhone15,2\""), "{\"ProductName\":\"iPhone15,2\"}");
    EXPECT(device_report(NULL, "\"Mac-827FAC58A8FDFA22\""), "{\"ProductName\":\"Mac-827FAC58A8FDFA22\"}");
    EXPECT(device_report(NULL, "\"iPhone 15,2\""), "{}");
    EXPECT(device_report(NULL, "\"iPhone\\\"15,2\""), "{}");
    EXPECT(device_report(NULL, "\"iPhone'15\""), "{}");
    EXPECT(device_report(NULL, "\"iPhone15,2\\n\""), "{}");
    EXPECT(device_report(NULL, "\"iPhon\\u00e9\""), "{}");
    EXPECT(device_report(NULL, "\"\""), "{}");
    EXPECT(device_report(NULL, "152"), "{}");
    EXPECT(device_report(NULL, "{\"identifier\":\"iPhone15,2\"}"), "{}");
    /* Embedded NUL: left out, the version kept. */
    EXPECT(device_report("\"17.4\"", "\"iPhone15\\u0000,2\""), "{\"OSVersion\":\"17.4\"}");
    /* 64 characters kept, 65 left out. */
    char id[70], text[128], want[128];
    memset(id, 'M', 65);
    id[65] = '\0';
    snprintf(text, sizeof(text), "\"%s\"", id + 1);
    snprintf(want, sizeof(want), "{\"ProductName\":\"%s\"}", id + 1);
    EXPECT(device_report(NULL, text), want);
    snprintf(text, sizeof(text), "\"%s\"", id);
    EXPECT(device_report(NULL, text), "{}");
}

static void test_build(void)
{
    static const char *const fmt =
        "{\"StatusItems\":{\"device\":{\"operating-system\":{\"build-version\":%s}}}}";
    char text[256];
    snprintf(text, sizeof(text), fmt, "\"21E236\"");
    EXPECT(text, "{\"BuildVersion\":\"21E236\"}");
    snprintf(text, sizeof(text), fmt, "\"21E-236\"");
    EXPECT(text, "{}");
    snprintf(text, sizeof(text), fmt, "\"21E236 (a)\"");
    EXPECT(text, "{}");
    snprintf(text, sizeof(text), fmt, "21236");
    EXPECT(text, "{}");
    snprintf(text, sizeof(text), fmt, "\"21E236\\u0000x\"");
    EXPECT(text, "{}");
    snprintf(text, sizeof(text), fmt, "\"123456789012345678901234567890AB\"");
    EXPECT(text, "{\"BuildVersion\":\"123456789012345678901234567890AB\"}");
    snprintf(text, sizeof(text), fmt, "\"123456789012345678901234567890ABC\"");
    EXPECT(text, "{}");
}

/* A NUL escape in a string that is not a fact does not cost the facts. */
static void test_nul_elsewhere(void)
{
    EXPECT("{\"StatusItems\":{\"device\":{\"model\":{\"marketing-name\":\"iPhone\\u0000 15\","
           "\"identifier\":\"iPhone15,2\"}}}}",
           "{\"ProductName\":\"iPhone15,2\"}");
}

int main(void)
{
    RUN(test_kmfddm_iphone);
    RUN(test_kmfddm_declarations_only);
    RUN(test_zentral_mac);
    RUN(test_declaration_types);
    RUN(test_declaration_types_limit);
    RUN(test_refused);
    RUN(test_no_facts);
    RUN(test_version);
    RUN(test_model);
    RUN(test_build);
    RUN(test_nul_elsewhere);
    return harness_finish();
}
