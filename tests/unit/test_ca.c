/* Unit tests for broker/mdm/ca.c: `ca init` files and modes, refusals on load,
 * issued PKCS#12 identities (both formats) and attached CMS signatures. */
#include "lmdm/ca.h"

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static char dir[256];
static char err[512];

static void path_in(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static int file_mode(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

/* A fresh CA in the test directory under `stem`.crt/.key. */
static lmdm_ca_t *make_ca(const char *stem, char *cert, char *key)
{
    char c[300], k[300];
    snprintf(c, sizeof(c), "%s/%s.crt", dir, stem);
    snprintf(k, sizeof(k), "%s/%s.key", dir, stem);
    if (cert) strcpy(cert, c);
    if (key) strcpy(key, k);
    if (lmdm_ca_init_files(c, k, stem, 3650, err, sizeof(err)) != 0) return NULL;
    return lmdm_ca_load(c, k, err, sizeof(err));
}

static void test_init_files(void)
{
    char cert[300], key[300];
    path_in(cert, sizeof(cert), "init.crt");
    path_in(key, sizeof(key), "init.key");
    mode_t old = umask(0); /* the modes must not depend on the caller's umask */
    int rv = lmdm_ca_init_files(cert, key, "lmdm test CA", 3650, err, sizeof(err));
    umask(old);
    CHECK_INT_EQ(rv, 0);
    CHECK_INT_EQ(file_mode(key), 0600);
    CHECK_INT_EQ(file_mode(cert), 0644);

    size_t klen = 0, clen = 0;
    char *kbefore = slurp(key, &klen), *cbefore = slurp(cert, &clen);
    CHECK(kbefore && strstr(kbefore, "PRIVATE KEY"));
    CHECK(cbefore && strstr(cbefore, "BEGIN CERTIFICATE"));

    /* A second init refuses and leaves both files exactly as they were. */
    CHECK_INT_EQ(lmdm_ca_init_files(cert, key, "other", 10, err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(err, "refusing to overwrite");
    char *kafter = slurp(key, NULL), *cafter = slurp(cert, NULL);
    CHECK(kafter && strcmp(kbefore, kafter) == 0);
    CHECK(cafter && strcmp(cbefore, cafter) == 0);
    CHECK_INT_EQ(file_mode(key), 0600);

    /* Only the certificate in the way: nothing is created either. */
    char key2[300];
    path_in(key2, sizeof(key2), "init2.key");
    CHECK_INT_EQ(lmdm_ca_init_files(cert, key2, "other", 10, err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(err, cert);
    CHECK(access(key2, F_OK) != 0);

    /* The certificate is a CA with the extensions the header promises. */
    lmdm_ca_t *ca = lmdm_ca_load(cert, key, err, sizeof(err));
    CHECK(ca != NULL);
    if (ca) {
        X509 *x = lmdm_ca_cert(ca);
        CHECK_INT_EQ(X509_check_ca(x), 1);
        uint32_t ku = X509_get_key_usage(x);
        CHECK((ku & KU_KEY_CERT_SIGN) && (ku & KU_CRL_SIGN) && (ku & KU_DIGITAL_SIGNATURE));
        CHECK(X509_get0_subject_key_id(x) != NULL);
        CHECK(X509_get0_authority_key_id(x) != NULL);
        char cn[64] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
        CHECK_STR_EQ(cn, "lmdm test CA");
        CHECK_INT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(x)), EVP_PKEY_EC);
        /* valid now, and for about ten years */
        CHECK(X509_cmp_time(X509_get0_notBefore(x), NULL) < 0);
        time_t in9y = time(NULL) + 9 * 365 * 86400L, in11y = time(NULL) + 11 * 365 * 86400L;
        CHECK(X509_cmp_time(X509_get0_notAfter(x), &in9y) > 0);
        CHECK(X509_cmp_time(X509_get0_notAfter(x), &in11y) < 0);
    }
    lmdm_ca_free(ca);
    free(kbefore);
    free(cbefore);
    free(kafter);
    free(cafter);
}

static void test_init_bad_args(void)
{
    char cert[300], key[300];
    path_in(cert, sizeof(cert), "bad.crt");
    path_in(key, sizeof(key), "bad.key");
    CHECK_INT_EQ(lmdm_ca_init_files(cert, key, "", 10, err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_ca_init_files(cert, key, "x", 0, err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_ca_init_files(cert, key, "x", -5, err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_ca_init_files(cert, cert, "x", 10, err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_ca_init_files("", key, "x", 10, err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK(access(cert, F_OK) != 0 && access(key, F_OK) != 0);
    /* a directory that does not exist: an I/O error, and no key left behind */
    char c2[300], k2[300];
    path_in(c2, sizeof(c2), "nodir/x.crt");
    path_in(k2, sizeof(k2), "x.key");
    CHECK_INT_EQ(lmdm_ca_init_files(c2, k2, "x", 10, err, sizeof(err)), LMDM_ERR_IO);
    CHECK_STR_CONTAINS(err, "nodir");
    CHECK(access(k2, F_OK) != 0);
}

static void test_load_refusals(void)
{
    char cert[300], key[300], cert2[300], key2[300];
    lmdm_ca_t *a = make_ca("la", cert, key);
    lmdm_ca_t *b = make_ca("lb", cert2, key2);
    CHECK(a && b);

    /* group- or world-readable key */
    CHECK_INT_EQ(chmod(key, 0644), 0);
    CHECK(lmdm_ca_load(cert, key, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, key);
    CHECK_STR_CONTAINS(err, "0644");
    CHECK_INT_EQ(chmod(key, 0640), 0);
    CHECK(lmdm_ca_load(cert, key, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "0640");
    CHECK_INT_EQ(chmod(key, 0400), 0);
    lmdm_ca_t *ok = lmdm_ca_load(cert, key, err, sizeof(err));
    CHECK(ok != NULL);
    lmdm_ca_free(ok);
    CHECK_INT_EQ(chmod(key, 0600), 0);

    /* key of another CA */
    CHECK(lmdm_ca_load(cert, key2, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "does not belong");

    /* missing files, garbage */
    char missing[300];
    path_in(missing, sizeof(missing), "missing.key");
    CHECK(lmdm_ca_load(cert, missing, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, missing);
    CHECK(lmdm_ca_load("", key, err, sizeof(err)) == NULL);
    char junk[300];
    path_in(junk, sizeof(junk), "junk.pem");
    FILE *f = fopen(junk, "w");
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    chmod(junk, 0600);
    CHECK(lmdm_ca_load(junk, key, err, sizeof(err)) == NULL);
    CHECK(lmdm_ca_load(cert, junk, err, sizeof(err)) == NULL);

    /* a leaf certificate is not a CA, even with its own key */
    unsigned char *der = NULL;
    size_t len = 0;
    CHECK_INT_EQ(lmdm_ca_issue_p12(a, "leaf", "pw", 30, &der, &len, err, sizeof(err)), 0);
    const unsigned char *p = der;
    PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
    EVP_PKEY *lk = NULL;
    X509 *lc = NULL;
    CHECK(p12 && PKCS12_parse(p12, "pw", &lk, &lc, NULL) == 1);
    char lcert[300], lkey[300];
    path_in(lcert, sizeof(lcert), "leaf.crt");
    path_in(lkey, sizeof(lkey), "leaf.key");
    FILE *cf = fopen(lcert, "w"), *kf = fopen(lkey, "w");
    PEM_write_X509(cf, lc);
    PEM_write_PrivateKey(kf, lk, NULL, NULL, 0, NULL, NULL);
    fclose(cf);
    fclose(kf);
    chmod(lkey, 0600);
    CHECK(lmdm_ca_load(lcert, lkey, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "not a CA");
    EVP_PKEY_free(lk);
    X509_free(lc);
    PKCS12_free(p12);
    free(der);
    lmdm_ca_free(a);
    lmdm_ca_free(b);
}

/* The PBE algorithm of the shrouded key bag and the MAC digest of a PKCS#12. */
static void p12_algs(PKCS12 *p12, int *key_nid, int *mac_nid)
{
    *key_nid = *mac_nid = NID_undef;
    const X509_ALGOR *macalg = NULL;
    PKCS12_get0_mac(NULL, &macalg, NULL, NULL, p12);
    if (macalg) {
        const ASN1_OBJECT *obj;
        X509_ALGOR_get0(&obj, NULL, NULL, macalg);
        *mac_nid = OBJ_obj2nid(obj);
    }
    STACK_OF(PKCS7) *safes = PKCS12_unpack_authsafes(p12);
    for (int i = 0; safes && i < sk_PKCS7_num(safes); i++) {
        PKCS7 *p7 = sk_PKCS7_value(safes, i);
        if (OBJ_obj2nid(p7->type) != NID_pkcs7_data) continue;
        STACK_OF(PKCS12_SAFEBAG) *bags = PKCS12_unpack_p7data(p7);
        for (int j = 0; bags && j < sk_PKCS12_SAFEBAG_num(bags); j++) {
            PKCS12_SAFEBAG *bag = sk_PKCS12_SAFEBAG_value(bags, j);
            if (PKCS12_SAFEBAG_get_nid(bag) != NID_pkcs8ShroudedKeyBag) continue;
            const X509_ALGOR *alg;
            X509_SIG_get0(PKCS12_SAFEBAG_get0_pkcs8(bag), &alg, NULL);
            const ASN1_OBJECT *obj;
            X509_ALGOR_get0(&obj, NULL, NULL, alg);
            *key_nid = OBJ_obj2nid(obj);
        }
        sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
    }
    sk_PKCS7_pop_free(safes, PKCS7_free);
}

static void check_p12(lmdm_ca_t *ca, lmdm_p12_format_t fmt)
{
    unsigned char *der = NULL;
    size_t len = 0;
    CHECK_INT_EQ(lmdm_ca_issue_p12_format(ca, "lmdm device 0123abcd", "s3cret pw", 730, fmt, &der, &len, err,
                                          sizeof(err)),
                 0);
    CHECK(der != NULL && len > 500);
    const unsigned char *p = der;
    PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
    CHECK(p12 != NULL);
    if (!p12) return;
    CHECK_INT_EQ(PKCS12_verify_mac(p12, "wrong", -1), 0);
    ERR_clear_error();
    CHECK_INT_EQ(PKCS12_verify_mac(p12, "s3cret pw", -1), 1);

    int key_nid, mac_nid;
    p12_algs(p12, &key_nid, &mac_nid);
    if (fmt == LMDM_P12_MODERN) {
        CHECK_INT_EQ(key_nid, NID_pbes2);
        CHECK_INT_EQ(mac_nid, NID_sha256);
    } else {
        CHECK_INT_EQ(key_nid, NID_pbe_WithSHA1And3_Key_TripleDES_CBC);
        CHECK_INT_EQ(mac_nid, NID_sha1);
    }

    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *extra = NULL;
    CHECK_INT_EQ(PKCS12_parse(p12, "s3cret pw", &key, &cert, &extra), 1);
    CHECK(key && cert);
    if (key && cert) {
        CHECK_INT_EQ(EVP_PKEY_get_base_id(key), EVP_PKEY_RSA);
        CHECK_INT_EQ(EVP_PKEY_get_bits(key), 2048);
        CHECK_INT_EQ(X509_check_private_key(cert, key), 1);
        /* signed by the CA */
        CHECK_INT_EQ(X509_verify(cert, X509_get0_pubkey(lmdm_ca_cert(ca))), 1);
        CHECK_INT_EQ(X509_check_issued(lmdm_ca_cert(ca), cert), X509_V_OK);
        /* a client identity, not a CA */
        CHECK_INT_EQ(X509_check_ca(cert), 0);
        CHECK((X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) != 0);
        CHECK((X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT) != 0);
        CHECK((X509_get_key_usage(cert) & KU_DIGITAL_SIGNATURE) != 0);
        CHECK(X509_get0_authority_key_id(cert) != NULL);
        char cn[64] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
        CHECK_STR_EQ(cn, "lmdm device 0123abcd");
        /* a 16-octet positive serial */
        const ASN1_INTEGER *sn = X509_get0_serialNumber(cert);
        CHECK_INT_EQ(ASN1_STRING_length(sn), 16);
        CHECK_INT_EQ(ASN1_STRING_type(sn), V_ASN1_INTEGER);
        time_t in729 = time(NULL) + 729 * 86400L, in731 = time(NULL) + 731 * 86400L;
        CHECK(X509_cmp_time(X509_get0_notAfter(cert), &in729) > 0);
        CHECK(X509_cmp_time(X509_get0_notAfter(cert), &in731) < 0);
        /* the CA certificate travels along */
        CHECK(extra && sk_X509_num(extra) == 1 && X509_cmp(sk_X509_value(extra, 0), lmdm_ca_cert(ca)) == 0);
    }
    EVP_PKEY_free(key);
    X509_free(cert);
    sk_X509_pop_free(extra, X509_free);
    PKCS12_free(p12);
    free(der);
}

static void test_issue_p12(void)
{
    lmdm_ca_t *ca = make_ca("issue", NULL, NULL);
    CHECK(ca != NULL);
    if (!ca) return;
    check_p12(ca, LMDM_P12_MODERN);
    check_p12(ca, LMDM_P12_APPLE_COMPAT);

    /* two identities never share a serial */
    unsigned char *d1 = NULL, *d2 = NULL;
    size_t l1 = 0, l2 = 0;
    CHECK_INT_EQ(lmdm_ca_issue_p12(ca, "a", "pw", 1, &d1, &l1, err, sizeof(err)), 0);
    CHECK_INT_EQ(lmdm_ca_issue_p12(ca, "a", "pw", 1, &d2, &l2, err, sizeof(err)), 0);
    const unsigned char *p1 = d1, *p2 = d2;
    PKCS12 *a = d2i_PKCS12(NULL, &p1, (long)l1), *b = d2i_PKCS12(NULL, &p2, (long)l2);
    X509 *ca_ = NULL, *cb = NULL;
    EVP_PKEY *ka = NULL, *kb = NULL;
    CHECK(PKCS12_parse(a, "pw", &ka, &ca_, NULL) == 1 && PKCS12_parse(b, "pw", &kb, &cb, NULL) == 1);
    CHECK(ca_ && cb && ASN1_INTEGER_cmp(X509_get0_serialNumber(ca_), X509_get0_serialNumber(cb)) != 0);
    CHECK(ka && kb && EVP_PKEY_eq(ka, kb) != 1);
    X509_free(ca_);
    X509_free(cb);
    EVP_PKEY_free(ka);
    EVP_PKEY_free(kb);
    PKCS12_free(a);
    PKCS12_free(b);
    free(d1);
    free(d2);

    /* bad arguments are refused and produce nothing */
    unsigned char *der = (unsigned char *)"x";
    size_t len = 9;
    CHECK_INT_EQ(lmdm_ca_issue_p12(ca, "", "pw", 10, &der, &len, err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_ca_issue_p12(ca, "cn", "", 10, &der, &len, err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_ca_issue_p12(ca, "cn", "pw", 0, &der, &len, err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_ca_issue_p12(ca, "bad\ncn", "pw", 10, &der, &len, err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_ca_issue_p12(NULL, "cn", "pw", 10, &der, &len, err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK_INT_EQ(
        lmdm_ca_issue_p12_format(ca, "cn", "pw", 10, (lmdm_p12_format_t)7, &der, &len, err, sizeof(err)),
        LMDM_ERR_INVALID);
    lmdm_ca_free(ca);
}

static void test_sign_attached(void)
{
    lmdm_ca_t *ca = make_ca("sign", NULL, NULL);
    CHECK(ca != NULL);
    if (!ca) return;
    static const char content[] = "<?xml version=\"1.0\"?>\r\n<plist>\n\x01\xff binary too</plist>";
    size_t clen = sizeof(content) - 1;
    unsigned char *der = NULL;
    size_t len = 0;
    CHECK_INT_EQ(lmdm_ca_sign_attached(ca, (const unsigned char *)content, clen, &der, &len), 0);
    CHECK(der && len > clen);

    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, lmdm_ca_cert(ca));
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    CHECK(cms != NULL);
    CHECK_INT_EQ(CMS_is_detached(cms), 0);
    BIO *out = BIO_new(BIO_s_mem());
    CHECK_INT_EQ(CMS_verify(cms, NULL, store, NULL, out, CMS_BINARY), 1);
    char *got = NULL;
    long glen = BIO_get_mem_data(out, &got);
    CHECK_INT_EQ(glen, (long)clen);
    CHECK(glen == (long)clen && memcmp(got, content, clen) == 0); /* byte for byte, CRLF kept */
    STACK_OF(X509) *signers = CMS_get0_signers(cms);
    CHECK(signers && sk_X509_num(signers) == 1 && X509_cmp(sk_X509_value(signers, 0), lmdm_ca_cert(ca)) == 0);
    sk_X509_free(signers);
    BIO_free(out);
    CMS_ContentInfo_free(cms);

    /* change one byte of the signed content inside the DER: no longer verifies */
    unsigned char *hit = NULL;
    for (size_t i = 0; i + 6 <= len; i++)
        if (memcmp(der + i, "binary", 6) == 0) hit = der + i;
    CHECK(hit != NULL);
    if (hit) {
        hit[0] ^= 0x20;
        p = der;
        cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
        CHECK(cms != NULL);
        CHECK(CMS_verify(cms, NULL, store, NULL, NULL, CMS_BINARY) != 1);
        ERR_clear_error();
        CMS_ContentInfo_free(cms);
    }
    free(der);

    /* empty content still signs; bad arguments do not */
    CHECK_INT_EQ(lmdm_ca_sign_attached(ca, (const unsigned char *)"", 0, &der, &len), 0);
    free(der);
    CHECK_INT_EQ(lmdm_ca_sign_attached(NULL, (const unsigned char *)"x", 1, &der, &len), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_ca_sign_attached(ca, NULL, 5, &der, &len), LMDM_ERR_INVALID);
    X509_STORE_free(store);
    lmdm_ca_free(ca);
}

static void cleanup(void)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
    const char *base = getenv("LMDM_TEST_OUT");
    char parent[200];
    snprintf(parent, sizeof(parent), "%s", base && *base ? base : "/tmp");
    mkdir(parent, 0755);
    snprintf(dir, sizeof(dir), "%s/test_ca.XXXXXX", parent);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_init_files);
    RUN(test_init_bad_args);
    RUN(test_load_refusals);
    RUN(test_issue_p12);
    RUN(test_sign_attached);
    cleanup();
    return harness_finish();
}
