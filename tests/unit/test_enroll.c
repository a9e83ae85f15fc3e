/* Unit tests for broker/mdm/enroll.c: the signed enrollment profile, checked
 * against Apple's own payload schemas (../shared/apple-device-management:
 * every key we write must exist there with the type we give it, every key it
 * marks required must be present), the AccessRights left out, the identity
 * inside (PKCS#12 that decrypts and chains to the CA, or SCEP), the User
 * Enrollment variant, bad configuration, and GET /enroll through the real
 * connection layer. */
#include "lmdm/enroll.h"

#include <event2/event.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>
#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "lmdm/app.h"
#include "lmdm/identity.h"
#include "lmdm/log.h"
#include "lmdm/router.h"
#include "lmdm/server.h"

static char dir[256];
static char err[512];
static lmdm_ca_t *ca;
static lmdm_trust_t *trust;
static lmdm_config_t cfg;
static char schema_dir[512]; /* mdm/profiles of Apple's schema, "" when absent */

#define TOPIC "com.apple.mgmt.External.0f3c9a2e-1111-2222-3333-444455556666"

/* ---- a small reader for the YAML schema files ---- */

typedef struct {
    char key[64];
    char type[32];
    int required;
} ykey_t;

/* Keys listed at exactly `indent` spaces ("- key: X") after the first line
 * matching `after` (NULL: from the start), until a line indented less. */
static int yaml_keys(const char *file, int indent, const char *after, ykey_t *out, int max)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/%s", schema_dir, file);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024], want[80];
    int n = 0, started = after == NULL, cur = -1;
    snprintf(want, sizeof(want), "%*s- key: ", indent, "");
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!started) {
            started = strstr(line, after) != NULL;
            continue;
        }
        int lead = (int)strspn(line, " ");
        if (line[lead] && lead < indent && line[lead] != '-' && n > 0) break;
        if (lead < indent && line[lead] == '-' && n > 0) break;
        if (!strncmp(line, want, strlen(want)) && n < max) {
            cur = n++;
            snprintf(out[cur].key, sizeof(out[cur].key), "%s", line + strlen(want));
            out[cur].type[0] = '\0';
            out[cur].required = 0;
        } else if (cur >= 0 && lead == indent + 2) {
            if (!strncmp(line + lead, "type: <", 7)) {
                snprintf(out[cur].type, sizeof(out[cur].type), "%s", line + lead + 7);
                out[cur].type[strcspn(out[cur].type, ">")] = '\0';
            } else if (!strcmp(line + lead, "presence: required")) {
                out[cur].required = 1;
            }
        }
    }
    fclose(f);
    return n;
}

static int plist_type_is(plist_t node, const char *ytype)
{
    plist_type t = plist_get_node_type(node);
    if (!strcmp(ytype, "string")) return t == PLIST_STRING;
    if (!strcmp(ytype, "integer")) return t == PLIST_UINT;
    if (!strcmp(ytype, "boolean")) return t == PLIST_BOOLEAN;
    if (!strcmp(ytype, "data")) return t == PLIST_DATA;
    if (!strcmp(ytype, "array")) return t == PLIST_ARRAY;
    if (!strcmp(ytype, "dictionary")) return t == PLIST_DICT;
    if (!strcmp(ytype, "real")) return t == PLIST_REAL;
    if (!strcmp(ytype, "date")) return t == PLIST_DATE;
    return 0;
}

/* Every key of dict is in the schema (file's keys at indent, plus the common
 * payload keys when common) with the right type; every required key is there. */
static void check_against_schema(plist_t dict, const char *file, int indent, const char *after, int common)
{
    if (!schema_dir[0]) return;
    ykey_t keys[80];
    int n = yaml_keys(file, indent, after, keys, 60);
    CHECK(n > 0);
    if (n <= 0) {
        fprintf(stderr, "  schema %s unreadable\n", file);
        return;
    }
    if (common) {
        int m = yaml_keys("CommonPayloadKeys.yaml", 0, NULL, keys + n, 20);
        CHECK(m > 0);
        if (m > 0) n += m;
    }
    plist_dict_iter it = NULL;
    plist_dict_new_iter(dict, &it);
    char *k = NULL;
    plist_t v = NULL;
    for (plist_dict_next_item(dict, it, &k, &v); k; plist_dict_next_item(dict, it, &k, &v)) {
        int found = 0;
        for (int i = 0; i < n; i++) {
            if (strcmp(keys[i].key, k) != 0) continue;
            found = 1;
            if (!plist_type_is(v, keys[i].type))
                harness_fail(__FILE__, __LINE__, "%s: %s should be <%s>", file, k, keys[i].type);
            harness_checks++;
        }
        if (!found) harness_fail(__FILE__, __LINE__, "%s: key %s is not in Apple's schema", file, k);
        harness_checks++;
        free(k);
        k = NULL;
    }
    free(it);
    for (int i = 0; i < n; i++) {
        if (!keys[i].required) continue;
        if (!plist_dict_get_item(dict, keys[i].key))
            harness_fail(__FILE__, __LINE__, "%s: required key %s missing", file, keys[i].key);
        harness_checks++;
    }
}

/* ---- profile helpers ---- */

static const char *pstr(plist_t d, const char *key)
{
    plist_t n = plist_dict_get_item(d, key);
    if (!n || plist_get_node_type(n) != PLIST_STRING) return NULL;
    return plist_get_string_ptr(n, NULL);
}

static long long pint(plist_t d, const char *key)
{
    plist_t n = plist_dict_get_item(d, key);
    uint64_t v = 0;
    if (!n || plist_get_node_type(n) != PLIST_UINT) return -1;
    plist_get_uint_val(n, &v);
    return (long long)v;
}

static int pbool(plist_t d, const char *key)
{
    plist_t n = plist_dict_get_item(d, key);
    uint8_t v = 0;
    if (!n || plist_get_node_type(n) != PLIST_BOOLEAN) return -1;
    plist_get_bool_val(n, &v);
    return v;
}

static int is_uuid_upper(const char *s)
{
    if (!s || strlen(s) != 36) return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return 0;
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F'))) {
            return 0;
        }
    }
    return s[14] == '4' && strchr("89AB", s[19]) != NULL; /* version 4, RFC 4122 variant */
}

/* Verifies the CMS with the CA only and returns the plist inside. */
static plist_t open_profile(const lmdm_buf_t *b)
{
    const unsigned char *p = (const unsigned char *)b->data;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)b->len);
    CHECK(cms != NULL);
    if (!cms) return NULL;
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, lmdm_ca_cert(ca));
    BIO *out = BIO_new(BIO_s_mem());
    int ok = CMS_verify(cms, NULL, store, NULL, out, CMS_BINARY);
    CHECK_INT_EQ(ok, 1);
    STACK_OF(X509) *signers = CMS_get0_signers(cms);
    CHECK(signers && sk_X509_num(signers) == 1 && X509_cmp(sk_X509_value(signers, 0), lmdm_ca_cert(ca)) == 0);
    sk_X509_free(signers);
    char *xml = NULL;
    long n = BIO_get_mem_data(out, &xml);
    plist_t root = NULL;
    if (ok == 1 && n > 0) {
        CHECK(strncmp(xml, "<?xml", 5) == 0);
        plist_from_xml(xml, (uint32_t)n, &root);
    }
    CHECK(root != NULL && plist_get_node_type(root) == PLIST_DICT);
    BIO_free(out);
    X509_STORE_free(store);
    CMS_ContentInfo_free(cms);
    ERR_clear_error();
    return root;
}

static plist_t payload_of_type(plist_t root, const char *type)
{
    plist_t content = plist_dict_get_item(root, "PayloadContent");
    for (uint32_t i = 0; content && i < plist_array_get_size(content); i++) {
        plist_t d = plist_array_get_item(content, i);
        const char *t = pstr(d, "PayloadType");
        if (t && !strcmp(t, type)) return d;
    }
    return NULL;
}

static plist_t build(lmdm_enroll_kind_t kind, const char *apple_id)
{
    lmdm_buf_t b = {0};
    int rv = lmdm_enroll_profile(&cfg, ca, kind, apple_id, &b, err, sizeof(err));
    CHECK_INT_EQ(rv, 0);
    if (rv != 0) {
        fprintf(stderr, "  %s\n", err);
        return NULL;
    }
    plist_t root = open_profile(&b);
    lmdm_buf_free(&b);
    return root;
}

static void check_top(plist_t root)
{
    CHECK_STR_EQ(pstr(root, "PayloadType"), "Configuration");
    CHECK_INT_EQ(pint(root, "PayloadVersion"), 1);
    CHECK(is_uuid_upper(pstr(root, "PayloadUUID")));
    CHECK_STR_EQ(pstr(root, "PayloadIdentifier"), "lmdm.enroll.mdm.example.org");
    CHECK_STR_EQ(pstr(root, "PayloadOrganization"), "Clinic Example");
    CHECK(pstr(root, "PayloadDisplayName") != NULL);
    plist_t content = plist_dict_get_item(root, "PayloadContent");
    CHECK(content && plist_get_node_type(content) == PLIST_ARRAY && plist_array_get_size(content) == 2);
    check_against_schema(root, "TopLevel.yaml", 0, NULL, 0);
}

static void check_mdm(plist_t mdm, plist_t identity)
{
    CHECK(mdm != NULL && identity != NULL);
    if (!mdm || !identity) return;
    CHECK(is_uuid_upper(pstr(mdm, "PayloadUUID")));
    CHECK(is_uuid_upper(pstr(identity, "PayloadUUID")));
    CHECK_STR_EQ(pstr(mdm, "IdentityCertificateUUID"), pstr(identity, "PayloadUUID"));
    CHECK(strcmp(pstr(mdm, "PayloadUUID"), pstr(identity, "PayloadUUID")) != 0);
    CHECK_STR_EQ(pstr(mdm, "Topic"), TOPIC);
    CHECK_STR_EQ(pstr(mdm, "ServerURL"), "https://mdm.example.org:8443/mdm/connect");
    CHECK_STR_EQ(pstr(mdm, "CheckInURL"), "https://mdm.example.org:8443/mdm/checkin");
    CHECK_INT_EQ(pbool(mdm, "SignMessage"), 1);
    CHECK_INT_EQ(pbool(mdm, "CheckOutWhenRemoved"), 1);
    plist_t caps = plist_dict_get_item(mdm, "ServerCapabilities");
    CHECK(caps && plist_array_get_size(caps) == 2);
    if (caps && plist_array_get_size(caps) == 2) {
        CHECK_STR_EQ(plist_get_string_ptr(plist_array_get_item(caps, 0), NULL),
                     "com.apple.mdm.per-user-connections");
        CHECK_STR_EQ(plist_get_string_ptr(plist_array_get_item(caps, 1), NULL),
                     "com.apple.mdm.bootstraptoken");
    }
    check_against_schema(mdm, "com.apple.mdm.yaml", 0, NULL, 1);
}

/* Apple's bit values, read from the AccessRights description in the schema:
 * "* '8': Allow device erase." */
static int schema_bit(const char *needle)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/com.apple.mdm.yaml", schema_dir);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512];
    int found = -1;
    while (fgets(line, sizeof(line), f)) {
        int v;
        char text[400];
        const char *s = line + strspn(line, " ");
        if (sscanf(s, "* '%d': %399[^\n]", &v, text) == 2 && strstr(text, needle)) found = v;
    }
    fclose(f);
    return found;
}

static void test_access_rights(void)
{
    int r = lmdm_enroll_access_rights;
    /* never the rights the design leaves out */
    const int forbidden[] = {LMDM_AR_LOCK_PASSCODE, LMDM_AR_ERASE, LMDM_AR_DEVICE_INFO, LMDM_AR_NETWORK_INFO,
                             LMDM_AR_INSPECT_APPS};
    for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++)
        CHECK((r & forbidden[i]) == 0);
    CHECK(r != 0);
    /* Apple: "Specify '1' if you specify '2'. Specify '64' if you specify '128'." */
    CHECK(!(r & LMDM_AR_INSTALL_PROFILES) || (r & LMDM_AR_INSPECT_PROFILES));
    CHECK(!(r & LMDM_AR_INSTALL_PROVISIONING) || (r & LMDM_AR_INSPECT_PROVISIONING));
    /* exactly the documented set */
    CHECK_INT_EQ(r, 1 | 2 | 1024 | 2048 | 4096);
    CHECK((r & ~8191) == 0);

    /* the same, with the bit values taken from Apple's schema text */
    if (!schema_dir[0]) return;
    struct {
        const char *text;
        int ours;
    } bits[] = {{"device erase", LMDM_AR_ERASE},
                {"device lock and passcode removal", LMDM_AR_LOCK_PASSCODE},
                {"query of device information", LMDM_AR_DEVICE_INFO},
                {"query of network information", LMDM_AR_NETWORK_INFO},
                {"inspection of installed applications", LMDM_AR_INSPECT_APPS}};
    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
        int v = schema_bit(bits[i].text);
        CHECK(v > 0);
        CHECK_INT_EQ(v, bits[i].ours);
        CHECK((r & v) == 0);
    }
    CHECK_INT_EQ(schema_bit("installation and removal of configuration profiles"), LMDM_AR_INSTALL_PROFILES);
    CHECK_INT_EQ(schema_bit("inspection of installed configuration profiles"), LMDM_AR_INSPECT_PROFILES);
    CHECK_INT_EQ(schema_bit("security-related queries"), LMDM_AR_SECURITY_QUERIES);
    CHECK_INT_EQ(schema_bit("manipulation of settings"), LMDM_AR_SETTINGS);
    CHECK_INT_EQ(schema_bit("app management"), LMDM_AR_APP_MANAGEMENT);
    CHECK_INT_EQ(schema_bit("restriction-related queries"), LMDM_AR_RESTRICTION_QUERIES);
    CHECK_INT_EQ(schema_bit("inspection of installed provisioning profiles"), LMDM_AR_INSPECT_PROVISIONING);
    CHECK_INT_EQ(schema_bit("installation and removal of provisioning profiles"),
                 LMDM_AR_INSTALL_PROVISIONING);
}

static void check_p12_payload(plist_t identity, char *fp_out)
{
    CHECK_STR_EQ(pstr(identity, "PayloadType"), "com.apple.security.pkcs12");
    check_against_schema(identity, "com.apple.security.pkcs12.yaml", 0, NULL, 1);
    const char *pw = pstr(identity, "Password");
    CHECK(pw && strlen(pw) >= 16);
    plist_t data = plist_dict_get_item(identity, "PayloadContent");
    CHECK(data && plist_get_node_type(data) == PLIST_DATA);
    if (!pw || !data || plist_get_node_type(data) != PLIST_DATA) return;
    uint64_t len = 0;
    const char *der = plist_get_data_ptr(data, &len);
    const unsigned char *p = (const unsigned char *)der;
    PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
    CHECK(p12 != NULL);
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    CHECK_INT_EQ(PKCS12_verify_mac(p12, "not the password", -1), 0);
    ERR_clear_error();
    CHECK_INT_EQ(PKCS12_parse(p12, pw, &key, &cert, NULL), 1);
    if (cert && key) {
        CHECK_INT_EQ(X509_check_private_key(cert, key), 1);
        char reason[64] = "";
        CHECK_INT_EQ(lmdm_trust_verify(trust, cert, NULL, time(NULL), reason, sizeof(reason)), 0);
        CHECK((X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT) != 0);
        char cn[80] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
        CHECK(strncmp(cn, "lmdm device ", 12) == 0 && strlen(cn) > 12);
        time_t in2y = time(NULL) + 729 * 86400L;
        CHECK(X509_cmp_time(X509_get0_notAfter(cert), &in2y) > 0);
        /* the format every Apple OS imports: 3DES key bag, SHA-1 MAC */
        const X509_ALGOR *macalg = NULL;
        PKCS12_get0_mac(NULL, &macalg, NULL, NULL, p12);
        const ASN1_OBJECT *obj = NULL;
        if (macalg) X509_ALGOR_get0(&obj, NULL, NULL, macalg);
        CHECK_INT_EQ(OBJ_obj2nid(obj), NID_sha1);
        if (fp_out) lmdm_identity_fingerprint(cert, fp_out);
    }
    EVP_PKEY_free(key);
    X509_free(cert);
    PKCS12_free(p12);
}

static void test_device_profile(void)
{
    plist_t root = build(LMDM_ENROLL_DEVICE, NULL);
    if (!root) return;
    check_top(root);
    plist_t mdm = payload_of_type(root, "com.apple.mdm");
    plist_t identity = payload_of_type(root, "com.apple.security.pkcs12");
    check_mdm(mdm, identity);
    if (!mdm || !identity) goto out;
    CHECK_INT_EQ(pint(mdm, "AccessRights"), lmdm_enroll_access_rights);
    CHECK(plist_dict_get_item(mdm, "EnrollmentMode") == NULL);
    CHECK(plist_dict_get_item(mdm, "AssignedManagedAppleID") == NULL);
    char fp1[LMDM_FINGERPRINT_LEN + 1] = "", fp2[LMDM_FINGERPRINT_LEN + 1] = "";
    check_p12_payload(identity, fp1);

    /* a second download: fresh UUIDs, a fresh identity and password, same identifier */
    plist_t again = build(LMDM_ENROLL_DEVICE, NULL);
    if (again) {
        plist_t id2 = payload_of_type(again, "com.apple.security.pkcs12");
        CHECK(strcmp(pstr(root, "PayloadUUID"), pstr(again, "PayloadUUID")) != 0);
        CHECK(id2 && strcmp(pstr(identity, "PayloadUUID"), pstr(id2, "PayloadUUID")) != 0);
        CHECK(id2 && strcmp(pstr(identity, "Password"), pstr(id2, "Password")) != 0);
        CHECK_STR_EQ(pstr(root, "PayloadIdentifier"), pstr(again, "PayloadIdentifier"));
        if (id2) check_p12_payload(id2, fp2);
        CHECK(fp1[0] && fp2[0] && strcmp(fp1, fp2) != 0);
        plist_free(again);
    }
out:
    plist_free(root);
}

static void test_scep_profile(void)
{
    free(cfg.enroll_identity);
    free(cfg.scep_url);
    free(cfg.scep_challenge);
    cfg.enroll_identity = strdup("scep");
    cfg.scep_url = strdup("https://scep.example.org/scep");
    cfg.scep_challenge = strdup("challenge-xyz");
    cfg.scep_key_size = 2048;
    plist_t root = build(LMDM_ENROLL_DEVICE, NULL);
    if (root) {
        check_top(root);
        plist_t mdm = payload_of_type(root, "com.apple.mdm");
        plist_t scep = payload_of_type(root, "com.apple.security.scep");
        CHECK(payload_of_type(root, "com.apple.security.pkcs12") == NULL);
        check_mdm(mdm, scep);
        if (scep) {
            check_against_schema(scep, "com.apple.security.scep.yaml", 0, NULL, 1);
            CHECK(plist_dict_get_item(scep, "Password") == NULL);
            plist_t c = plist_dict_get_item(scep, "PayloadContent");
            CHECK(c && plist_get_node_type(c) == PLIST_DICT);
            if (c && plist_get_node_type(c) == PLIST_DICT) {
                check_against_schema(c, "com.apple.security.scep.yaml", 2, "- key: PayloadContent", 0);
                CHECK_STR_EQ(pstr(c, "URL"), "https://scep.example.org/scep");
                CHECK_STR_EQ(pstr(c, "Challenge"), "challenge-xyz");
                CHECK_INT_EQ(pint(c, "Keysize"), 2048);
                CHECK_STR_EQ(pstr(c, "Key Type"), "RSA");
                CHECK_INT_EQ(pint(c, "Key Usage"), 5);
                plist_t subj = plist_dict_get_item(c, "Subject");
                plist_t rdn = subj ? plist_array_get_item(subj, 0) : NULL;
                plist_t pair = rdn ? plist_array_get_item(rdn, 0) : NULL;
                CHECK(pair && plist_array_get_size(pair) == 2);
                if (pair && plist_array_get_size(pair) == 2) {
                    CHECK_STR_EQ(plist_get_string_ptr(plist_array_get_item(pair, 0), NULL), "CN");
                    const char *cn = plist_get_string_ptr(plist_array_get_item(pair, 1), NULL);
                    CHECK(cn && strncmp(cn, "lmdm device ", 12) == 0);
                }
            }
        }
        if (mdm) CHECK_INT_EQ(pint(mdm, "AccessRights"), lmdm_enroll_access_rights);
        plist_free(root);
    }
    /* SCEP misconfigured: refused, nothing written */
    lmdm_buf_t b = {0};
    cfg.scep_key_size = 3000;
    CHECK_INT_EQ(lmdm_enroll_profile(&cfg, ca, LMDM_ENROLL_DEVICE, NULL, &b, err, sizeof(err)),
                 LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(err, "scep_key_size");
    cfg.scep_key_size = 2048;
    free(cfg.scep_url);
    cfg.scep_url = strdup("");
    CHECK_INT_EQ(lmdm_enroll_profile(&cfg, ca, LMDM_ENROLL_DEVICE, NULL, &b, err, sizeof(err)),
                 LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(err, "scep_url");
    CHECK(b.len == 0);
    free(cfg.scep_url);
    cfg.scep_url = strdup("http://");
    CHECK_INT_EQ(lmdm_enroll_profile(&cfg, ca, LMDM_ENROLL_DEVICE, NULL, &b, err, sizeof(err)),
                 LMDM_ERR_INVALID);
    /* without a challenge the key is simply absent */
    free(cfg.scep_url);
    free(cfg.scep_challenge);
    cfg.scep_url = strdup("http://scep.example.org/scep");
    cfg.scep_challenge = strdup("");
    root = build(LMDM_ENROLL_DEVICE, NULL);
    plist_t scep = root ? payload_of_type(root, "com.apple.security.scep") : NULL;
    plist_t c = scep ? plist_dict_get_item(scep, "PayloadContent") : NULL;
    CHECK(c && plist_dict_get_item(c, "Challenge") == NULL);
    plist_free(root);
    free(cfg.enroll_identity);
    cfg.enroll_identity = strdup("pkcs12");
}

static void test_user_enrollment(void)
{
    plist_t root = build(LMDM_ENROLL_USER, "doctor@hospital.example");
    if (!root) return;
    check_top(root);
    plist_t mdm = payload_of_type(root, "com.apple.mdm");
    plist_t identity = payload_of_type(root, "com.apple.security.pkcs12");
    check_mdm(mdm, identity);
    if (mdm) {
        CHECK_STR_EQ(pstr(mdm, "EnrollmentMode"), "BYOD");
        CHECK_STR_EQ(pstr(mdm, "AssignedManagedAppleID"), "doctor@hospital.example");
        /* ignored by Apple under User Enrollment, so not sent at all */
        CHECK(plist_dict_get_item(mdm, "AccessRights") == NULL);
        CHECK(plist_dict_get_item(mdm, "ManagedAppleID") == NULL);
    }
    if (identity) check_p12_payload(identity, NULL);
    plist_free(root);

    lmdm_buf_t b = {0};
    const char *bad[] = {NULL,
                         "",
                         "no-at-sign",
                         "@example.org",
                         "user@",
                         "a b@example.org",
                         "a@b@c",
                         "tab\t@example.org",
                         "\xc3\xa9@example.org"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT_EQ(lmdm_enroll_profile(&cfg, ca, LMDM_ENROLL_USER, bad[i], &b, err, sizeof(err)),
                     LMDM_ERR_INVALID);
        CHECK(b.len == 0);
    }
    /* a managed Apple ID with a device enrollment is a caller mistake */
    CHECK_INT_EQ(lmdm_enroll_profile(&cfg, ca, LMDM_ENROLL_DEVICE, "x@example.org", &b, err, sizeof(err)),
                 LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_enroll_profile(&cfg, ca, (lmdm_enroll_kind_t)7, NULL, &b, err, sizeof(err)),
                 LMDM_ERR_INVALID);
    CHECK(b.len == 0);
}

static void test_bad_config(void)
{
    lmdm_buf_t b = {0};
    struct {
        char **field;
        const char *value;
        const char *msg;
    } cases[] = {
        {&cfg.apns_topic, "", "apns_topic"},
        {&cfg.apns_topic, "com.example.push", "apns_topic"},
        {&cfg.apns_topic, "com.apple.mgmt.", "apns_topic"},
        {&cfg.public_url, "ftp://mdm.example.org", "public_url"},
        {&cfg.public_url, "https://", "public_url"},
        {&cfg.public_url, "mdm.example.org", "public_url"},
        {&cfg.public_url, "https://mdm.example.org/?x=1", "public_url"},
        {&cfg.public_url, "https://mdm example.org", "public_url"},
        {&cfg.enroll_identity, "both", "enroll_identity"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *saved = *cases[i].field;
        *cases[i].field = (char *)cases[i].value;
        CHECK_INT_EQ(lmdm_enroll_profile(&cfg, ca, LMDM_ENROLL_DEVICE, NULL, &b, err, sizeof(err)),
                     LMDM_ERR_INVALID);
        CHECK_STR_CONTAINS(err, cases[i].msg);
        *cases[i].field = saved;
    }
    CHECK(b.len == 0);
    CHECK_INT_EQ(lmdm_enroll_profile(&cfg, NULL, LMDM_ENROLL_DEVICE, NULL, &b, err, sizeof(err)),
                 LMDM_ERR_INVALID);
    /* a path in public_url is kept; trailing slashes are not doubled */
    char *saved = cfg.public_url;
    cfg.public_url = "http://127.0.0.1:8080/base//";
    plist_t root = build(LMDM_ENROLL_DEVICE, NULL);
    plist_t mdm = root ? payload_of_type(root, "com.apple.mdm") : NULL;
    CHECK_STR_EQ(mdm ? pstr(mdm, "ServerURL") : NULL, "http://127.0.0.1:8080/base/mdm/connect");
    CHECK_STR_EQ(root ? pstr(root, "PayloadIdentifier") : NULL, "lmdm.enroll.127.0.0.1");
    plist_free(root);
    cfg.public_url = saved;
}

/* ---- GET /enroll through the connection layer ---- */

typedef struct {
    int status;
    char headers[4096];
    char *body;
    size_t body_len;
} resp_t;

static int http_get(lmdm_server_t *srv, const char *target, resp_t *r)
{
    memset(r, 0, sizeof(*r));
    lmdm_worker_t *w = lmdm_server_worker(srv, 0);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) return -1;
    if (lmdm_server_adopt(w, sv[0]) != 0) return -1;
    char req[4096];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: mdm.example.org\r\nConnection: close\r\n\r\n", target);
    if (write(sv[1], req, (size_t)n) != n) return -1;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (int i = 0; i < 20000; i++) {
        event_base_loop(w->base, EVLOOP_NONBLOCK);
        ssize_t got = read(sv[1], buf + len, cap - len - 1);
        if (got == 0) break;
        if (got > 0) {
            len += (size_t)got;
            if (cap - len < 1024) buf = realloc(buf, cap *= 2);
        } else {
            usleep(100);
        }
    }
    close(sv[1]);
    event_base_loop(w->base, EVLOOP_NONBLOCK);
    buf[len] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (!end || sscanf(buf, "HTTP/1.1 %d", &r->status) != 1) {
        free(buf);
        return -1;
    }
    size_t hl = (size_t)(end - buf);
    memcpy(r->headers, buf, hl < sizeof(r->headers) - 1 ? hl : sizeof(r->headers) - 1);
    for (char *p = r->headers; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    r->body_len = len - hl - 4;
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, end + 4, r->body_len);
    r->body[r->body_len] = '\0';
    free(buf);
    return 0;
}

static void test_handler(void)
{
    lmdm_router_t *router = lmdm_router_new();
    CHECK_INT_EQ(lmdm_router_add(router, "GET", "/enroll", "enroll", lmdm_enroll_handle, 0), 0);
    lmdm_config_t scfg;
    lmdm_config_defaults(&scfg);
    free(scfg.listen_tls);
    free(scfg.listen_plain);
    free(scfg.database_url);
    scfg.listen_tls = strdup("");
    scfg.listen_plain = strdup("");
    scfg.database_url = strdup("");
    scfg.workers = 1;
    lmdm_server_t *srv = lmdm_server_new(&scfg, NULL, router, 1, err, sizeof(err));
    CHECK(srv != NULL);
    if (!srv) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    lmdm_app_t app = {.cfg = &cfg, .ca = ca, .trust = trust};
    lmdm_server_set_app(srv, &app);
    resp_t r;

    CHECK_INT_EQ(http_get(srv, "/enroll", &r), 0);
    CHECK_INT_EQ(r.status, 200);
    CHECK_STR_CONTAINS(r.headers, "content-type: application/x-apple-aspen-config");
    CHECK_STR_CONTAINS(r.headers, "content-disposition: attachment; filename=\"lmdm.mobileconfig\"");
    CHECK_STR_CONTAINS(r.headers, "cache-control: no-store");
    lmdm_buf_t b = {.data = r.body, .len = r.body_len};
    plist_t root = r.status == 200 ? open_profile(&b) : NULL;
    CHECK(root && payload_of_type(root, "com.apple.mdm") &&
          payload_of_type(root, "com.apple.security.pkcs12"));
    plist_free(root);
    free(r.body);

    CHECK_INT_EQ(http_get(srv, "/enroll?kind=device", &r), 0);
    CHECK_INT_EQ(r.status, 200);
    free(r.body);

    /* percent-encoded managed Apple ID ('+' as %2B, '@' as %40) */
    CHECK_INT_EQ(http_get(srv, "/enroll?kind=user&managed_apple_id=dr%2Bclinic%40hospital.example", &r), 0);
    CHECK_INT_EQ(r.status, 200);
    b.data = r.body;
    b.len = r.body_len;
    root = r.status == 200 ? open_profile(&b) : NULL;
    plist_t mdm = root ? payload_of_type(root, "com.apple.mdm") : NULL;
    CHECK_STR_EQ(mdm ? pstr(mdm, "AssignedManagedAppleID") : NULL, "dr+clinic@hospital.example");
    CHECK_STR_EQ(mdm ? pstr(mdm, "EnrollmentMode") : NULL, "BYOD");
    plist_free(root);
    free(r.body);

    struct {
        const char *target;
        const char *code;
    } bad[] = {
        {"/enroll?kind=user", "missing_managed_apple_id"},
        {"/enroll?kind=user&managed_apple_id=", "bad_managed_apple_id"},
        {"/enroll?kind=user&managed_apple_id=nobody", "bad_managed_apple_id"},
        {"/enroll?kind=user&managed_apple_id=a+b@example.org", "bad_managed_apple_id"},
        {"/enroll?kind=user&managed_apple_id=a%00b@example.org", "bad_query"},
        {"/enroll?kind=user&managed_apple_id=a%4@example.org", "bad_query"},
        {"/enroll?kind=user&managed_apple_id=a%zz@example.org", "bad_query"},
        {"/enroll?kind=user&managed_apple_id=a@example.org%", "bad_query"},
        {"/enroll?kind=admin", "bad_kind"},
        {"/enroll?kind=device&managed_apple_id=a@example.org", "bad_query"},
        {"/enroll?managed_apple_id=a@example.org", "bad_query"},
        {"/enroll?kind=user&kind=user&managed_apple_id=a@example.org", "bad_query"},
        {"/enroll?wipe=1", "bad_query"},
        {"/enroll?kind", "bad_query"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT_EQ(http_get(srv, bad[i].target, &r), 0);
        CHECK_INT_EQ(r.status, 400);
        CHECK_STR_CONTAINS(r.body, bad[i].code);
        CHECK_STR_CONTAINS(r.headers, "application/json");
        free(r.body);
    }
    /* an overlong query */
    char *longq = malloc(5000);
    strcpy(longq, "/enroll?kind=user&managed_apple_id=");
    memset(longq + strlen(longq), 'a', 3000);
    longq[35 + 3000] = '\0';
    CHECK_INT_EQ(http_get(srv, longq, &r), 0);
    CHECK_INT_EQ(r.status, 400);
    free(r.body);
    free(longq);

    /* a configuration the profile cannot be built from: 500, no profile */
    char *topic = cfg.apns_topic;
    cfg.apns_topic = "";
    CHECK_INT_EQ(http_get(srv, "/enroll", &r), 0);
    CHECK_INT_EQ(r.status, 500);
    CHECK_STR_CONTAINS(r.body, "enroll_failed");
    free(r.body);
    cfg.apns_topic = topic;

    /* no CA: 503 */
    app.ca = NULL;
    CHECK_INT_EQ(http_get(srv, "/enroll", &r), 0);
    CHECK_INT_EQ(r.status, 503);
    CHECK_STR_CONTAINS(r.body, "no_ca");
    free(r.body);

    lmdm_server_free(srv);
    lmdm_router_free(router);
    lmdm_config_clear(&scfg);
}

int main(void)
{
    lmdm_log_setup(LMDM_LOG_OFF, LMDM_LOG_TEXT);
    const char *base = getenv("LMDM_TEST_OUT");
    char parent[200];
    snprintf(parent, sizeof(parent), "%s", base && *base ? base : "/tmp");
    mkdir(parent, 0755);
    snprintf(dir, sizeof(dir), "%s/test_enroll.XXXXXX", parent);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    const char *src = getenv("LMDM_SRC");
    snprintf(schema_dir, sizeof(schema_dir), "%s/../shared/apple-device-management/mdm/profiles",
             src && *src ? src : "..");
    struct stat st;
    if (stat(schema_dir, &st) != 0) {
        fprintf(stderr, "note: %s not found; schema checks skipped\n", schema_dir);
        schema_dir[0] = '\0';
    }

    char c[300], k[300];
    snprintf(c, sizeof(c), "%s/ca.crt", dir);
    snprintf(k, sizeof(k), "%s/ca.key", dir);
    if (lmdm_ca_init_files(c, k, "enroll test CA", 3650, err, sizeof(err)) != 0 ||
        !(ca = lmdm_ca_load(c, k, err, sizeof(err))) ||
        !(trust = lmdm_trust_new(lmdm_ca_cert(ca), NULL, err, sizeof(err)))) {
        fprintf(stderr, "setup: %s\n", err);
        return 1;
    }
    lmdm_config_defaults(&cfg);
    free(cfg.public_url);
    free(cfg.apns_topic);
    free(cfg.enroll_org);
    cfg.public_url = strdup("https://mdm.example.org:8443/");
    cfg.apns_topic = strdup(TOPIC);
    cfg.enroll_org = strdup("Clinic Example");

    RUN(test_access_rights);
    RUN(test_device_profile);
    RUN(test_scep_profile);
    RUN(test_user_enrollment);
    RUN(test_bad_config);
    RUN(test_handler);

    lmdm_config_clear(&cfg);
    lmdm_trust_free(trust);
    lmdm_ca_free(ca);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return harness_finish();
}
