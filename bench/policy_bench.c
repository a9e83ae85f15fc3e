/* In-process policy benchmark (issue 5): decisions per second on one core for
 * a small command and for an InstallProfile with 10 payloads, and the tenant
 * view (response filtering) of a 200-app ManagedApplicationList answer.
 * Each figure is printed next to a reference measured in the same run:
 * libplist parsing and re-serialising the same document, the work every
 * tenant command and device answer costs anyway.
 *
 * usage: policy_bench [--seconds S]   (default 1 s per measurement) */
#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmdm/buf.h"
#include "lmdm/policy.h"
#include "lmdm/tenant_command.h"
#include "lmdm/tenant_result.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile int sink;
static double seconds = 1.0;

/* Calls fn(arg) repeatedly for about `seconds`; returns calls per second. */
static double rate(void (*fn)(void *), void *arg)
{
    long n = 0, batch = 64;
    double t0 = now(), t;
    do {
        for (long i = 0; i < batch; i++) fn(arg);
        n += batch;
        t = now();
        if (t - t0 < seconds / 10) batch *= 2;
    } while (t - t0 < seconds);
    return (double)n / (t - t0);
}

/* ---- the workloads ---- */

static const char *const mine[] = {"org.stmarys.rounds", "org.stmarys.badge", "org.stmarys.pager"};
static const char *const theirs[] = {"org.general.app", "org.general.chat"};
static const lmdm_policy_entities_t ENT = {{mine, 3}, {NULL, 0}, {theirs, 2}, {NULL, 0}};
static const lmdm_policy_device_t DEV = {LMDM_PLATFORM_IOS, 0, 0};

static void decide_small(void *arg)
{
    lmdm_policy_verdict_t v = lmdm_policy_decide(arg, &DEV, &ENT);
    sink += (int)v.kind;
}

static void decide_profile(void *arg)
{
    lmdm_policy_verdict_t v = lmdm_policy_decide(arg, &DEV, &ENT);
    sink += (int)v.kind + (int)v.merge_payloads;
}

typedef struct {
    const char *ct, *body;
    size_t len;
} doc_t;

static void parse_and_decide(void *arg)
{
    doc_t *d = arg;
    lmdm_arena_t *a = lmdm_arena_new(0);
    lmdm_tenant_command_t c;
    char err[128];
    if (lmdm_tenant_command_parse(d->ct, d->body, d->len, "0B8B5C57-1111-2222-3333-444455556666", "lmdm.t1.", a, &c,
                                  err, sizeof(err)) == 0) {
        lmdm_policy_verdict_t v = lmdm_policy_decide(&c.policy, &DEV, &ENT);
        sink += (int)v.kind;
    }
    lmdm_arena_free(a);
}

static void plist_roundtrip(void *arg)
{
    doc_t *d = arg;
    plist_t p = NULL;
    plist_from_xml(d->body, (uint32_t)d->len, &p);
    char *x = NULL;
    uint32_t n = 0;
    plist_to_xml(p, &x, &n);
    sink += (int)n;
    plist_to_xml_free(x);
    plist_free(p);
}

static void filter_answer(void *arg)
{
    doc_t *d = arg;
    lmdm_buf_t out = {0};
    lmdm_tenant_owned_t owned = {"app.17\napp.42\napp.99\napp.150", NULL, "lmdm.t1."};
    if (lmdm_tenant_result_view("ManagedApplicationList", d->body, d->len, "tenant-uuid", &owned, &out) == 0)
        sink += (int)out.len;
    lmdm_buf_free(&out);
}

typedef struct {
    lmdm_strs_t listed, owned;
    unsigned char keep[256];
} filter_t;

static void filter_pure(void *arg)
{
    filter_t *f = arg;
    sink += (int)lmdm_policy_filter_owned(f->listed, f->owned, f->keep);
}

static void line(const char *what, double r, double target, double ref, const char *ref_what)
{
    printf("  %-44s %12.0f /s   target %9.0f  %-6s | reference %-28s %10.0f /s  ratio %.2f\n", what, r, target,
           r >= target ? "met" : "MISSED", ref_what, ref, r / ref);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--seconds") == 0) seconds = atof(argv[2]);
    else if (argc != 1) {
        fprintf(stderr, "usage: policy_bench [--seconds S]\n");
        return 2;
    }
    if (seconds <= 0) seconds = 1;

    /* (a) a small command */
    lmdm_policy_command_t small = {.request_type = "InstallApplication", .identifier = "org.stmarys.new"};
    const char *small_xml = "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>CommandUUID</key><string>t-1</string>"
                            "<key>Command</key><dict><key>RequestType</key><string>InstallApplication</string>"
                            "<key>Identifier</key><string>org.stmarys.new</string></dict></dict></plist>";
    doc_t small_doc = {"application/xml", small_xml, strlen(small_xml)};

    /* (b) InstallProfile with 10 payloads */
    static const char *const types[10] = {"com.apple.mail.managed", "com.apple.eas.account", "com.apple.caldav.account",
                                          "com.apple.carddav.account", "com.apple.ldap.account", "com.apple.webClip.managed",
                                          "com.apple.vpn.managed.applayer", "com.apple.security.pkcs12",
                                          "com.apple.security.pkcs1", "com.apple.wifi.managed"};
    static const char *const keys[] = {"PayloadType", "PayloadUUID", "PayloadIdentifier", "PayloadDisplayName",
                                       "EmailAddress", "IncomingMailServerHostName"};
    lmdm_policy_payload_t pls[10];
    for (int i = 0; i < 10; i++) pls[i] = (lmdm_policy_payload_t){types[i], "p", {keys, 6}};
    lmdm_policy_command_t prof = {.request_type = "InstallProfile", .profile_identifier = "org.stmarys.accounts",
                                  .payloads = pls, .npayloads = 10};
    lmdm_buf_t pxml = {0};
    lmdm_buf_puts(&pxml, "<plist version=\"1.0\"><dict><key>PayloadType</key><string>Configuration</string>"
                         "<key>PayloadIdentifier</key><string>org.stmarys.accounts</string><key>PayloadContent</key><array>");
    for (int i = 0; i < 10; i++)
        lmdm_buf_printf(&pxml, "<dict><key>PayloadType</key><string>%s</string><key>PayloadIdentifier</key>"
                               "<string>org.stmarys.p%d</string><key>PayloadUUID</key><string>%08d-0000-4000-8000-000000000000</string>"
                               "<key>EmailAddress</key><string>dr@stmarys.example</string></dict>",
                        types[i], i, i);
    lmdm_buf_puts(&pxml, "</array></dict></plist>");
    /* as the tenant sends it: JSON with the profile as $data */
    size_t b64cap = pxml.len * 2 + 16;
    char *b64 = malloc(b64cap);
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)pxml.data;
    for (size_t i = 0; i < pxml.len; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < pxml.len ? (unsigned)s[i + 1] << 8 : 0) |
                     (i + 2 < pxml.len ? s[i + 2] : 0);
        b64[o++] = tbl[v >> 18 & 63];
        b64[o++] = tbl[v >> 12 & 63];
        b64[o++] = i + 1 < pxml.len ? tbl[v >> 6 & 63] : '=';
        b64[o++] = i + 2 < pxml.len ? tbl[v & 63] : '=';
    }
    b64[o] = '\0';
    lmdm_buf_t pjson = {0};
    lmdm_buf_printf(&pjson, "{\"Command\":{\"RequestType\":\"InstallProfile\",\"Payload\":{\"$data\":\"%s\"}}}", b64);
    doc_t prof_doc = {"application/json", pjson.data, pjson.len};
    doc_t prof_plist = {"application/xml", pxml.data, pxml.len};

    /* (c) a 200-app ManagedApplicationList answer */
    lmdm_buf_t ans = {0};
    lmdm_buf_puts(&ans, "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>UDID</key><string>00008030-001A2B3C4D5E6F</string>"
                        "<key>Status</key><string>Acknowledged</string><key>CommandUUID</key>"
                        "<string>0B8B5C57-1111-2222-3333-444455556666</string><key>ManagedApplicationList</key><dict>");
    for (int i = 0; i < 200; i++)
        lmdm_buf_printf(&ans, "<key>app.%d</key><dict><key>Status</key><string>Managed</string><key>ManagementFlags</key>"
                              "<integer>1</integer><key>HasConfiguration</key><false/><key>HasFeedback</key><false/>"
                              "<key>IsValidated</key><true/></dict>", i);
    lmdm_buf_puts(&ans, "</dict></dict></plist>");
    doc_t ans_doc = {"application/xml", ans.data, ans.len};

    printf("policy benchmark: one core, %.1f s per figure\n", seconds);
    double ref_small = rate(plist_roundtrip, &small_doc);
    line("decide: small command (InstallApplication)", rate(decide_small, &small), 1000000, ref_small,
         "plist round trip, same cmd");
    line("parse + decide: small command (plist body)", rate(parse_and_decide, &small_doc), 0, ref_small,
         "plist round trip, same cmd");
    double ref_prof = rate(plist_roundtrip, &prof_plist);
    line("decide: InstallProfile, 10 payloads", rate(decide_profile, &prof), 100000, ref_prof,
         "plist round trip, the profile");
    line("parse + decide: InstallProfile, 10 payloads", rate(parse_and_decide, &prof_doc), 0, ref_prof,
         "plist round trip, the profile");
    static char names[200][16];
    static const char *listed[200];
    for (int i = 0; i < 200; i++) {
        snprintf(names[i], sizeof(names[i]), "app.%d", i);
        listed[i] = names[i];
    }
    static const char *const owned[] = {"app.17", "app.42", "app.99", "app.150"};
    filter_t f = {{listed, 200}, {owned, 4}, {0}};
    double ref_ans = rate(plist_roundtrip, &ans_doc);
    line("filter (policy/): 200-app list -> own apps", rate(filter_pure, &f), 50000, ref_ans,
         "plist round trip, the answer");
    line("filter, whole answer (parse+filter+write)", rate(filter_answer, &ans_doc), 0, ref_ans,
         "plist round trip, the answer");
    printf("(target 0 = no target: shown for the cost of the whole step)\n");
    free(b64);
    lmdm_buf_free(&pxml);
    lmdm_buf_free(&pjson);
    lmdm_buf_free(&ans);
    return sink == 42 ? 1 : 0;
}
