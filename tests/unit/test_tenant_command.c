/* Tenant command bodies (plist and JSON) into the device's plist, the tenant's
 * view of device answers, the interim policy table, per-tenant rate limits and
 * the derived secrets. */
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <plist/plist.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lmdm/policy.h"
#include "lmdm/ratelimit.h"
#include "lmdm/secrets.h"
#include "lmdm/tenant_command.h"
#include "lmdm/tenant_result.h"

static const char *BUUID = "0B8B5C57-1111-2222-3333-444455556666";
static lmdm_arena_t *A;
static char err[256];

static int parse(const char *ct, const char *body, lmdm_tenant_command_t *c)
{
    err[0] = '\0';
    return lmdm_tenant_command_parse(ct, body, strlen(body), BUUID, NULL, A, c, err, sizeof(err));
}

static void test_plist_command(void)
{
    lmdm_tenant_command_t c;
    const char *body = "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>CommandUUID</key><string>tenant-42</string>"
                       "<key>Command</key><dict><key>RequestType</key><string>InstallApplication</string>"
                       "<key>Identifier</key><string>org.stmarys.rounds</string></dict></dict></plist>";
    CHECK_INT_EQ(parse("application/x-apple-aspen-mdm", body, &c), 0);
    CHECK_STR_EQ(c.request_type, "InstallApplication");
    CHECK_STR_EQ(c.tenant_uuid, "tenant-42");
    CHECK_STR_EQ(c.entity_kind, "app");
    CHECK_STR_EQ(c.entity, "org.stmarys.rounds");
    CHECK_STR_EQ(c.entity_op, "add");
    /* The device sees the broker's UUID, never the tenant's. */
    CHECK(strstr(c.payload, BUUID) != NULL);
    CHECK(strstr(c.payload, "tenant-42") == NULL);
    CHECK(strstr(c.payload, "org.stmarys.rounds") != NULL);
}

static void test_bare_command_and_json(void)
{
    lmdm_tenant_command_t c;
    CHECK_INT_EQ(parse("application/xml; charset=utf-8",
                       "<plist><dict><key>RequestType</key><string>ManagedApplicationList</string></dict></plist>", &c),
                 0);
    CHECK_STR_EQ(c.request_type, "ManagedApplicationList");
    CHECK(c.tenant_uuid == NULL);
    CHECK(c.entity == NULL);
    CHECK_INT_EQ(parse("application/json",
                       "{\"CommandUUID\":\"u1\",\"Command\":{\"RequestType\":\"RemoveProfile\",\"Identifier\":\"org.x.mail\","
                       "\"Flag\":true,\"N\":3,\"When\":{\"$date\":\"2026-03-12T09:00:00Z\"},\"Blob\":{\"$data\":\"AAEC\"}}}",
                       &c),
                 0);
    CHECK_STR_EQ(c.entity_op, "own");
    CHECK_STR_EQ(c.entity_kind, "profile");
    CHECK(strstr(c.payload, "<true/>") != NULL);
    CHECK(strstr(c.payload, "<integer>3</integer>") != NULL);
    CHECK(strstr(c.payload, "<date>2026-03-12T09:00:00Z</date>") != NULL);
    CHECK(strstr(c.payload, "<data>") != NULL && strstr(c.payload, "AAEC") != NULL);
}

static void test_hostile_bodies(void)
{
    lmdm_tenant_command_t c;
    static const struct {
        const char *ct, *body, *code;
    } cases[] = {
        {"application/json", "{\"Command\":", "bad_json"},
        {"application/json", "[1]", "bad_json"},
        {"application/json", "{\"Command\":{\"RequestType\":\"X\",\"a\":null}}", "bad_json"},
        {"application/json", "{\"Command\":{\"RequestType\":\"X\",\"n\":-1}}", "bad_json"},
        {"application/json", "{\"Command\":{\"RequestType\":\"X\",\"d\":{\"$data\":\"***\"}}}", "bad_json"},
        {"application/json", "{\"Command\":{\"RequestType\":\"X\",\"d\":{\"$date\":\"yesterday\"}}}", "bad_json"},
        {"application/json", "{\"Command\":{\"RequestType\":\"X\"},\"Command\":{}}", "bad_json"},
        {"application/json", "{\"Command\":\"EraseDevice\"}", "bad_command"},
        {"application/json", "{\"Command\":{}}", "bad_command"},
        {"application/json", "{\"Command\":{\"RequestType\":5}}", "bad_command"},
        {"application/json", "{\"CommandUUID\":\"a b\",\"Command\":{\"RequestType\":\"X\"}}", "bad_command"},
        {"application/json", "{\"Command\":{\"RequestType\":\"InstallApplication\"}}", "identifier_required"},
        {"application/json", "{\"Command\":{\"RequestType\":\"InstallProfile\"}}", "bad_command"},
        {"application/json", "{\"Command\":{\"RequestType\":\"InstallProfile\",\"Payload\":{\"$data\":\"PHg+\"}}}",
         "bad_command"},
        {"application/xml", "<plist><dict><key>Command</key>", "bad_plist"},
        {"application/xml", "<!DOCTYPE x [<!ENTITY a \"aaaa\">]><plist><dict/></plist>", "bad_command"},
        {"text/plain", "hi", "unsupported_media_type"},
        {NULL, "{}", "unsupported_media_type"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rv = parse(cases[i].ct, cases[i].body, &c);
        CHECK(rv != 0);
        if (rv == 0 || !c.error_code || strcmp(c.error_code, cases[i].code) != 0)
            harness_fail(__FILE__, __LINE__, "case %zu (%s): code %s, expected %s (%s)", i, cases[i].body,
                         c.error_code ? c.error_code : "(none)", cases[i].code, err);
        CHECK(err[0] != '\0');
    }
    /* Huge arrays and wrong element types in the lists policy/ reads. */
    {
        size_t cap = 2000 * 8 + 200;
        char *big = malloc(cap);
        strcpy(big, "{\"Command\":{\"RequestType\":\"ManagedApplicationAttributes\",\"Identifiers\":[");
        for (int i = 0; i < 2000; i++) strcat(big, i ? ",\"a.b\"" : "\"a.b\"");
        strcat(big, "]}}");
        CHECK(parse("application/json", big, &c) != 0);
        CHECK_STR_EQ(c.error_code, "bad_command");
        free(big);
    }
    static const char *const typed[] = {
        "{\"Command\":{\"RequestType\":\"ValidateApplications\",\"Identifiers\":[\"a\",5]}}",
        "{\"Command\":{\"RequestType\":\"ValidateApplications\",\"Identifiers\":\"a\"}}",
        "{\"Command\":{\"RequestType\":\"DeviceInformation\",\"Queries\":[{}]}}",
        "{\"Command\":{\"RequestType\":\"Settings\",\"Settings\":{}}}",
        "{\"Command\":{\"RequestType\":\"Settings\",\"Settings\":[{\"Identifier\":\"x\"}]}}",
        "{\"Command\":{\"RequestType\":\"Settings\"}}",
    };
    for (size_t i = 0; i < sizeof(typed) / sizeof(typed[0]); i++) {
        CHECK(parse("application/json", typed[i], &c) != 0);
        CHECK(c.error_code && strcmp(c.error_code, "bad_command") == 0);
    }
    /* Deeper than the limit, in both syntaxes. */
    char deep[4096] = "{\"Command\":{\"RequestType\":\"X\",\"a\":";
    for (int i = 0; i < 40; i++) strcat(deep, "[");
    for (int i = 0; i < 40; i++) strcat(deep, "]");
    strcat(deep, "}}");
    CHECK(parse("application/json", deep, &c) != 0);
}

/* A profile, unsigned and CMS-signed, gives its PayloadIdentifier. */
static void test_profile_identifier(void)
{
    const char *prof = "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>PayloadType</key><string>Configuration</string>"
                       "<key>PayloadIdentifier</key><string>org.stmarys.mail</string><key>PayloadContent</key><array/>"
                       "</dict></plist>";
    char b64[1024], body[2048];
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)prof, (int)strlen(prof));
    snprintf(body, sizeof(body), "{\"Command\":{\"RequestType\":\"InstallProfile\",\"Payload\":{\"$data\":\"%s\"}}}", b64);
    lmdm_tenant_command_t c;
    CHECK_INT_EQ(parse("application/json", body, &c), 0);
    CHECK_STR_EQ(c.entity, "org.stmarys.mail");
    CHECK_STR_EQ(c.entity_op, "add");

    /* Signed: CMS SignedData with the profile attached. */
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"t", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, key, EVP_sha256());
    BIO *in = BIO_new_mem_buf(prof, (int)strlen(prof));
    CMS_ContentInfo *cms = CMS_sign(x, key, NULL, in, CMS_BINARY | CMS_NOSMIMECAP);
    unsigned char *der = NULL;
    int dlen = i2d_CMS_ContentInfo(cms, &der);
    CHECK(dlen > 0);
    char *sb64 = malloc((size_t)dlen * 2 + 4), *sbody = malloc((size_t)dlen * 2 + 200);
    EVP_EncodeBlock((unsigned char *)sb64, der, dlen);
    sprintf(sbody, "{\"Command\":{\"RequestType\":\"InstallProfile\",\"Payload\":{\"$data\":\"%s\"}}}", sb64);
    CHECK_INT_EQ(parse("application/json", sbody, &c), 0);
    CHECK_STR_EQ(c.entity, "org.stmarys.mail");
    free(sb64);
    free(sbody);
    OPENSSL_free(der);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    X509_free(x);
    EVP_PKEY_free(key);
}

/* Profiles carry the tenant's namespace on the device, never in what the
 * tenant sends or sees. */
static void test_profile_namespace(void)
{
    const char *prof = "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>PayloadType</key><string>Configuration</string>"
                       "<key>PayloadIdentifier</key><string>org.stmarys.mail</string><key>PayloadContent</key><array>"
                       "<dict><key>PayloadType</key><string>com.apple.mail.managed</string></dict>"
                       "<dict><key>PayloadType</key><string>com.apple.mobiledevice.passwordpolicy</string>"
                       "<key>minLength</key><integer>6</integer></dict></array></dict></plist>";
    char b64[2048], body[4096];
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)prof, (int)strlen(prof));
    snprintf(body, sizeof(body), "{\"Command\":{\"RequestType\":\"InstallProfile\",\"Payload\":{\"$data\":\"%s\"}}}", b64);
    lmdm_tenant_command_t c;
    CHECK_INT_EQ(lmdm_tenant_command_parse("application/json", body, strlen(body), BUUID, "lmdm.t3.", A, &c, err,
                                           sizeof(err)),
                 0);
    CHECK_STR_EQ(c.entity, "org.stmarys.mail"); /* the tenant's own name */
    CHECK(c.merged_json && strstr(c.merged_json, "passwordpolicy") != NULL);
    CHECK_INT_EQ(c.policy.npayloads, 2);
    /* The device's profile: namespaced, without the merged passcode payload. */
    plist_t root = NULL, cmd, data;
    plist_from_xml(c.payload, (uint32_t)c.payload_len, &root);
    cmd = root ? plist_dict_get_item(root, "Command") : NULL;
    data = cmd ? plist_dict_get_item(cmd, "Payload") : NULL;
    CHECK(data != NULL);
    if (data) {
        uint64_t n = 0;
        const char *p = plist_get_data_ptr(data, &n);
        char *txt = strndup(p, n);
        CHECK(strstr(txt, "<string>lmdm.t3.org.stmarys.mail</string>") != NULL);
        CHECK(strstr(txt, "passwordpolicy") == NULL);
        CHECK(strstr(txt, "com.apple.mail.managed") != NULL);
        free(txt);
    }
    plist_free(root);
    const char *rm = "{\"Command\":{\"RequestType\":\"RemoveProfile\",\"Identifier\":\"org.stmarys.mail\"}}";
    CHECK_INT_EQ(lmdm_tenant_command_parse("application/json", rm, strlen(rm), BUUID, "lmdm.t3.", A, &c, err, sizeof(err)), 0);
    CHECK_STR_EQ(c.entity, "org.stmarys.mail");
    CHECK(strstr(c.payload, "<string>lmdm.t3.org.stmarys.mail</string>") != NULL);

    const char *list = "<plist><dict><key>ProfileList</key><array>"
                       "<dict><key>PayloadIdentifier</key><string>lmdm.t3.org.stmarys.mail</string></dict>"
                       "<dict><key>PayloadIdentifier</key><string>lmdm.t4.org.stmarys.mail</string></dict>"
                       "<dict><key>PayloadIdentifier</key><string>org.stmarys.mail</string></dict>"
                       "</array></dict></plist>";
    lmdm_buf_t out = {0};
    lmdm_tenant_owned_t owned = {NULL, "org.stmarys.mail", "lmdm.t3."};
    CHECK_INT_EQ(lmdm_tenant_result_view("ProfileList", list, strlen(list), "t", &owned, &out), 0);
    CHECK(out.data && strstr(out.data, "lmdm.t") == NULL);
    CHECK(out.data && strstr(out.data, "<string>org.stmarys.mail</string>") != NULL);
    const char *first = out.data ? strstr(out.data, "org.stmarys.mail") : NULL;
    CHECK(first && strstr(first + 1, "org.stmarys.mail") == NULL); /* only its own, once */
    lmdm_buf_free(&out);
}

static void test_result_view(void)
{
    const char *answer = "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict>"
                         "<key>UDID</key><string>00008030-001A2B3C4D5E6F</string>"
                         "<key>Status</key><string>Acknowledged</string>"
                         "<key>CommandUUID</key><string>0B8B5C57-1111-2222-3333-444455556666</string>"
                         "<key>ManagedApplicationList</key><dict><key>org.stmarys.rounds</key><dict>"
                         "<key>Status</key><string>Managed</string><key>SerialNumber</key><string>C02XYZ</string>"
                         "</dict><key>org.owner.diary</key><dict><key>Status</key><string>Managed</string></dict></dict><key>Items</key><array><dict><key>DeviceName</key><string>Dr. Ada's iPhone</string>"
                         "<key>Keep</key><string>yes</string></dict></array></dict></plist>";
    lmdm_buf_t out = {0};
    CHECK_INT_EQ(lmdm_tenant_result_view("ManagedApplicationList", answer, strlen(answer), "tenant-42", &(lmdm_tenant_owned_t){"org.other\norg.stmarys.rounds", NULL, NULL}, &out), 0);
    CHECK(out.data && strstr(out.data, "00008030") == NULL);
    CHECK(out.data && strstr(out.data, "C02XYZ") == NULL);
    CHECK(out.data && strstr(out.data, "Dr. Ada") == NULL);
    CHECK(out.data && strstr(out.data, "0B8B5C57") == NULL);
    CHECK(out.data && strstr(out.data, "<string>tenant-42</string>") != NULL);
    CHECK(out.data && strstr(out.data, "org.stmarys.rounds") != NULL);
    CHECK(out.data && strstr(out.data, "org.owner.diary") == NULL); /* not this tenant's app */
    CHECK(out.data && strstr(out.data, "<string>yes</string>") != NULL);
    lmdm_buf_free(&out);
    memset(&out, 0, sizeof(out));
    CHECK_INT_EQ(lmdm_tenant_result_view("X", answer, strlen(answer), NULL, NULL, &out), 0);
    CHECK(out.data && strstr(out.data, "CommandUUID") == NULL);
    lmdm_buf_free(&out);
    memset(&out, 0, sizeof(out));
    CHECK(lmdm_tenant_result_view("X", "<plist><array/></plist>", 23, "u", NULL, &out) != 0);
    CHECK(lmdm_tenant_result_view("X", "garbage", 7, "u", NULL, &out) != 0);
    CHECK_INT_EQ(out.len, 0);
}

/* Lists keep the tenant's own entities; info answers only allow-listed keys. */
static void test_result_lists_and_info(void)
{
    const char *profiles = "<plist><dict><key>Status</key><string>Acknowledged</string><key>ProfileList</key><array>"
                           "<dict><key>PayloadIdentifier</key><string>org.stmarys.mail</string></dict>"
                           "<dict><key>PayloadIdentifier</key><string>org.general.vpn</string></dict>"
                           "<dict><key>PayloadIdentifier</key><string>com.owner.private</string></dict>"
                           "</array></dict></plist>";
    lmdm_tenant_owned_t owned = {NULL, "org.stmarys.mail", NULL};
    lmdm_buf_t out = {0};
    CHECK_INT_EQ(lmdm_tenant_result_view("ProfileList", profiles, strlen(profiles), "t", &owned, &out), 0);
    CHECK(out.data && strstr(out.data, "org.stmarys.mail") != NULL);
    CHECK(out.data && strstr(out.data, "org.general.vpn") == NULL);
    CHECK(out.data && strstr(out.data, "com.owner.private") == NULL);
    lmdm_buf_free(&out);
    memset(&out, 0, sizeof(out));
    const char *sec = "<plist><dict><key>SecurityInfo</key><dict><key>PasscodePresent</key><true/>"
                      "<key>PasscodeCompliant</key><true/><key>ManagementStatus</key><dict/>"
                      "<key>FirewallSettings</key><dict/></dict></dict></plist>";
    CHECK_INT_EQ(lmdm_tenant_result_view("SecurityInfo", sec, strlen(sec), "t", &owned, &out), 0);
    CHECK(out.data && strstr(out.data, "PasscodeCompliant") != NULL);
    CHECK(out.data && strstr(out.data, "ManagementStatus") == NULL);
    CHECK(out.data && strstr(out.data, "FirewallSettings") == NULL);
    lmdm_buf_free(&out);
    memset(&out, 0, sizeof(out));
    const char *info = "<plist><dict><key>QueryResponses</key><dict><key>OSVersion</key><string>17.4</string>"
                       "<key>DeviceName</key><string>Ada</string><key>BatteryLevel</key><real>0.5</real></dict></dict></plist>";
    CHECK_INT_EQ(lmdm_tenant_result_view("DeviceInformation", info, strlen(info), "t", &owned, &out), 0);
    CHECK(out.data && strstr(out.data, "17.4") != NULL);
    CHECK(out.data && strstr(out.data, "Ada") == NULL);
    CHECK(out.data && strstr(out.data, "BatteryLevel") == NULL);
    lmdm_buf_free(&out);
}

static void test_ratelimit(void)
{
    lmdm_ratelimit_t *rl = lmdm_ratelimit_new(2, 3);
    uint64_t t0 = 1000000000ull;
    CHECK_INT_EQ(lmdm_ratelimit_take(rl, 7, t0), 0);
    CHECK_INT_EQ(lmdm_ratelimit_take(rl, 7, t0), 0);
    CHECK_INT_EQ(lmdm_ratelimit_take(rl, 7, t0), 0);
    CHECK_INT_EQ(lmdm_ratelimit_take(rl, 7, t0), 1);        /* empty: 0.5 s to the next token -> 1 s */
    CHECK_INT_EQ(lmdm_ratelimit_take(rl, 8, t0), 0);        /* another tenant has its own bucket */
    CHECK_INT_EQ(lmdm_ratelimit_take(rl, 7, t0 + 500000000ull), 0); /* refilled at 2/s */
    for (int64_t k = 100; k < 400; k++) CHECK_INT_EQ(lmdm_ratelimit_take(rl, k, t0), 0); /* table grows */
    CHECK_INT_EQ(lmdm_ratelimit_take(rl, 8, t0), 0);
    lmdm_ratelimit_free(rl);
}

static void test_secrets(void)
{
    unsigned char m1[32] = {1}, m2[32] = {2};
    lmdm_secrets_t a, b;
    lmdm_secrets_derive(m1, &a);
    lmdm_secrets_derive(m2, &b);
    char p1[LMDM_PSEUDONYM_LEN + 1], p2[LMDM_PSEUDONYM_LEN + 1], p3[LMDM_PSEUDONYM_LEN + 1];
    lmdm_secrets_pseudonym(&a, 1, 42, p1);
    lmdm_secrets_pseudonym(&a, 2, 42, p2);
    lmdm_secrets_pseudonym(&a, 1, 42, p3);
    CHECK_INT_EQ(strlen(p1), LMDM_PSEUDONYM_LEN);
    CHECK(p1[0] == 'e' && strspn(p1 + 1, "abcdefghijklmnopqrstuvwxyz234567") == LMDM_PSEUDONYM_LEN - 1);
    CHECK(strcmp(p1, p2) != 0); /* two tenants, one device: unrelated ids */
    CHECK_STR_EQ(p1, p3);        /* stable */
    lmdm_secrets_pseudonym(&b, 1, 42, p3);
    CHECK(strcmp(p1, p3) != 0);  /* another broker secret, another id */
    char h1[65], h2[65];
    lmdm_secrets_token_hash(&a, "api-key", "tok", h1);
    lmdm_secrets_token_hash(&a, "owner", "tok", h2);
    CHECK(strcmp(h1, h2) != 0); /* purposes are separate domains */
    char sig[89], pk[45];
    lmdm_secrets_sign_b64(&a, "1700000000.{}", 13, sig);
    lmdm_secrets_public_b64(&a, pk);
    CHECK_INT_EQ(strlen(sig), 88);
    CHECK_INT_EQ(strlen(pk), 44);
    char tok[80];
    CHECK_INT_EQ(lmdm_secrets_new_token("lmdm_x_", tok, sizeof(tok)), 0);
    CHECK_INT_EQ(strlen(tok), 7 + 43);
    CHECK(lmdm_secrets_new_token("p", tok, 10) != 0);
}

int main(void)
{
    A = lmdm_arena_new(0);
    RUN(test_plist_command);
    RUN(test_bare_command_and_json);
    RUN(test_hostile_bodies);
    RUN(test_profile_identifier);
    RUN(test_profile_namespace);
    RUN(test_result_view);
    RUN(test_result_lists_and_info);
    RUN(test_ratelimit);
    RUN(test_secrets);
    lmdm_arena_free(A);
    return harness_finish();
}
