/* Unit tests for broker/mdm/identity.c: the device trust store, certificate
 * verification at a given time and its reasons, the Mdm-Signature header
 * (valid, tampered, foreign CA, hostile encodings), the RFC 9440 Client-Cert
 * header, fingerprints, and verification from several threads at once. */
#include "lmdm/identity.h"

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "lmdm/ca.h"

static char dir[256];
static char err[512];
static char reason[128];

typedef struct {
    X509 *cert;
    EVP_PKEY *key;
} ident_t;

static lmdm_ca_t *ca_a, *ca_b;
static EVP_PKEY *ca_a_key;
static ident_t dev_a, dev_b; /* identities issued by CA a and CA b */
static lmdm_trust_t *trust_a;
static time_t now;

static lmdm_ca_t *make_ca(const char *stem, EVP_PKEY **key_out)
{
    char c[300], k[300];
    snprintf(c, sizeof(c), "%s/%s.crt", dir, stem);
    snprintf(k, sizeof(k), "%s/%s.key", dir, stem);
    if (lmdm_ca_init_files(c, k, stem, 3650, err, sizeof(err)) != 0) return NULL;
    if (key_out) {
        FILE *f = fopen(k, "r");
        *key_out = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
        if (f) fclose(f);
    }
    return lmdm_ca_load(c, k, err, sizeof(err));
}

static ident_t issue(lmdm_ca_t *ca, const char *cn)
{
    ident_t id = {0};
    unsigned char *der = NULL;
    size_t len = 0;
    if (lmdm_ca_issue_p12(ca, cn, "pw", 365, &der, &len, err, sizeof(err)) != 0) return id;
    const unsigned char *p = der;
    PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
    if (p12) PKCS12_parse(p12, "pw", &id.key, &id.cert, NULL);
    PKCS12_free(p12);
    free(der);
    return id;
}

static void ident_free(ident_t *id)
{
    X509_free(id->cert);
    EVP_PKEY_free(id->key);
    id->cert = NULL;
    id->key = NULL;
}

/* A certificate built by hand, signed by `signer_key` with CA a's name as
 * issuer: validity from now+nb_days to now+na_days, an optional EKU, and the
 * authority key identifier only when with_aki. */
static ident_t hand_cert(EVP_PKEY *signer_key, long nb_days, long na_days, const char *eku, int with_aki)
{
    ident_t id = {0};
    id.key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
    X509_NAME *n = X509_NAME_new();
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"hand made", -1, -1, 0);
    X509_set_subject_name(x, n);
    X509_NAME_free(n);
    X509_set_issuer_name(x, X509_get_subject_name(lmdm_ca_cert(ca_a)));
    X509_time_adj_ex(X509_getm_notBefore(x), (int)nb_days, 0, &now);
    X509_time_adj_ex(X509_getm_notAfter(x), (int)na_days, 0, &now);
    X509_set_pubkey(x, id.key);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, lmdm_ca_cert(ca_a), x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:FALSE");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    if (eku) {
        e = X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, eku);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    if (with_aki) {
        e = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    X509_sign(x, signer_key, EVP_sha256());
    id.cert = x;
    return id;
}

static int verify(const lmdm_trust_t *t, X509 *cert, time_t at)
{
    reason[0] = '\0';
    return lmdm_trust_verify(t, cert, NULL, at, reason, sizeof(reason));
}

static void test_trust_new(void)
{
    char bundle[300];
    snprintf(bundle, sizeof(bundle), "%s/bundle.pem", dir);
    /* a bundle with CA b (twice: duplicates are harmless) trusts its devices */
    FILE *f = fopen(bundle, "w");
    fputs("# SCEP CA\n", f);
    PEM_write_X509(f, lmdm_ca_cert(ca_b));
    PEM_write_X509(f, lmdm_ca_cert(ca_b));
    fclose(f);
    lmdm_trust_t *t = lmdm_trust_new(lmdm_ca_cert(ca_a), bundle, err, sizeof(err));
    CHECK(t != NULL);
    CHECK(lmdm_trust_store(t) != NULL);
    CHECK_INT_EQ(verify(t, dev_a.cert, now), 0);
    CHECK_INT_EQ(verify(t, dev_b.cert, now), 0);
    lmdm_trust_free(t);

    /* the bundle alone is enough (broker CA not configured) */
    t = lmdm_trust_new(NULL, bundle, err, sizeof(err));
    CHECK(t != NULL);
    CHECK_INT_EQ(verify(t, dev_b.cert, now), 0);
    CHECK_INT_EQ(verify(t, dev_a.cert, now), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "unknown CA");
    lmdm_trust_free(t);

    /* nothing trusted at all */
    CHECK(lmdm_trust_new(NULL, NULL, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "no CA");
    CHECK(lmdm_trust_new(NULL, "", err, sizeof(err)) == NULL);

    /* a missing file, a file without certificates, a leaf in the bundle */
    char other[300];
    snprintf(other, sizeof(other), "%s/nope.pem", dir);
    CHECK(lmdm_trust_new(lmdm_ca_cert(ca_a), other, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, other);
    snprintf(other, sizeof(other), "%s/empty.pem", dir);
    f = fopen(other, "w");
    fputs("just text\n", f);
    fclose(f);
    CHECK(lmdm_trust_new(lmdm_ca_cert(ca_a), other, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "no PEM certificate");
    snprintf(other, sizeof(other), "%s/leaf.pem", dir);
    f = fopen(other, "w");
    PEM_write_X509(f, lmdm_ca_cert(ca_b));
    PEM_write_X509(f, dev_b.cert);
    fclose(f);
    CHECK(lmdm_trust_new(lmdm_ca_cert(ca_a), other, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "#2 is not a CA");
    snprintf(other, sizeof(other), "%s/broken.pem", dir);
    f = fopen(other, "w");
    PEM_write_X509(f, lmdm_ca_cert(ca_b));
    fputs("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    CHECK(lmdm_trust_new(lmdm_ca_cert(ca_a), other, err, sizeof(err)) == NULL);
    CHECK(ERR_peek_error() == 0); /* no stale OpenSSL errors left behind */
}

static void test_verify(void)
{
    CHECK_INT_EQ(verify(trust_a, dev_a.cert, now), 0);
    /* another CA */
    CHECK_INT_EQ(verify(trust_a, dev_b.cert, now), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "unknown CA");
    /* the time is the caller's: the same certificate, years later or before */
    CHECK_INT_EQ(verify(trust_a, dev_a.cert, now + 2 * 365 * 86400L), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "expired");
    /* (the CA itself is backdated only minutes, so a day earlier it is not valid either) */
    CHECK_INT_EQ(verify(trust_a, dev_a.cert, now - 86400), LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(reason, "not yet valid");
    CHECK_INT_EQ(verify(trust_a, dev_a.cert, now), 0);
    /* and the CA's own validity counts too */
    CHECK_INT_EQ(verify(trust_a, dev_a.cert, now + 20 * 365 * 86400L), LMDM_ERR_INVALID);
    CHECK(strcmp(reason, "expired") == 0 || strcmp(reason, "CA expired") == 0);

    /* built by hand: expired yesterday, valid from tomorrow */
    ident_t x = hand_cert(ca_a_key, -30, -1, NULL, 1);
    CHECK_INT_EQ(verify(trust_a, x.cert, now), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "expired");
    ident_free(&x);
    x = hand_cert(ca_a_key, 1, 30, NULL, 1);
    CHECK_INT_EQ(verify(trust_a, x.cert, now), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "not yet valid");
    ident_free(&x);
    /* no EKU at all is accepted; clientAuth among others too; signing-only EKU not */
    x = hand_cert(ca_a_key, -1, 30, NULL, 1);
    CHECK_INT_EQ(verify(trust_a, x.cert, now), 0);
    ident_free(&x);
    x = hand_cert(ca_a_key, -1, 30, "serverAuth,clientAuth", 1);
    CHECK_INT_EQ(verify(trust_a, x.cert, now), 0);
    ident_free(&x);
    x = hand_cert(ca_a_key, -1, 30, "emailProtection", 1);
    CHECK_INT_EQ(verify(trust_a, x.cert, now), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "wrong purpose");
    ident_free(&x);
    /* CA a's name, someone else's key: the signature does not verify */
    EVP_PKEY *forger = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    x = hand_cert(forger, -1, 30, NULL, 0);
    CHECK_INT_EQ(verify(trust_a, x.cert, now), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "bad signature");
    ident_free(&x);
    EVP_PKEY_free(forger);
    /* the CA certificate itself is no device identity for a stranger... but
     * no certificate at all is refused plainly */
    CHECK_INT_EQ(verify(trust_a, NULL, now), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "no certificate");
    CHECK(ERR_peek_error() == 0);
}

/* ---- Mdm-Signature ---- */

/* base64 of a detached CMS signature over body, folded every 60 characters
 * with "\r\n " (whitespace the parser must ignore) when fold is set. */
static char *mdm_sig(ident_t *id, const void *body, size_t len, int flags, int fold)
{
    BIO *in = BIO_new_mem_buf(body, (int)len);
    CMS_ContentInfo *cms = CMS_sign(id->cert, id->key, NULL, in, CMS_DETACHED | CMS_BINARY | flags);
    BIO_free(in);
    if (!cms) return NULL;
    unsigned char *der = NULL;
    int n = i2d_CMS_ContentInfo(cms, &der);
    CMS_ContentInfo_free(cms);
    char *b64 = malloc((size_t)n * 2 + 16);
    int bl = EVP_EncodeBlock((unsigned char *)b64, der, n);
    OPENSSL_free(der);
    if (!fold) return b64;
    char *out = malloc((size_t)bl * 2 + 16);
    size_t o = 0;
    for (int i = 0; i < bl; i++) {
        if (i && i % 60 == 0) {
            memcpy(out + o, "\r\n ", 3);
            o += 3;
        }
        out[o++] = b64[i];
    }
    out[o] = '\0';
    free(b64);
    return out;
}

static int check_sig(const char *header, const void *body, size_t len, X509 **signer)
{
    reason[0] = '\0';
    X509 *dummy = NULL;
    int rv = lmdm_trust_verify_mdm_signature(trust_a, header, body, len, now, signer ? signer : &dummy,
                                             reason, sizeof(reason));
    X509_free(dummy);
    return rv;
}

static void test_mdm_signature(void)
{
    static const char body[] = "<?xml version=\"1.0\"?><plist><dict><key>MessageType</key>"
                               "<string>Authenticate</string></dict></plist>";
    size_t blen = sizeof(body) - 1;
    char *sig = mdm_sig(&dev_a, body, blen, 0, 1);
    CHECK(sig != NULL);
    X509 *signer = NULL;
    CHECK_INT_EQ(check_sig(sig, body, blen, &signer), 0);
    CHECK(signer != NULL && X509_cmp(signer, dev_a.cert) == 0);
    X509_free(signer);
    signer = (X509 *)1;
    /* one byte of the body changed */
    char *copy = strdup(body);
    copy[40] ^= 1;
    CHECK_INT_EQ(check_sig(sig, copy, blen, &signer), LMDM_ERR_INVALID);
    CHECK(signer == NULL);
    CHECK_STR_EQ(reason, "signature does not match");
    /* one byte more or less */
    CHECK_INT_EQ(check_sig(sig, body, blen - 1, NULL), LMDM_ERR_INVALID);
    free(copy);
    /* the same signature replayed over another device's message */
    static const char other[] =
        "<plist><dict><key>MessageType</key><string>TokenUpdate</string></dict></plist>";
    CHECK_INT_EQ(check_sig(sig, other, sizeof(other) - 1, NULL), LMDM_ERR_INVALID);
    free(sig);

    /* a perfectly good signature from a device of another CA */
    sig = mdm_sig(&dev_b, body, blen, 0, 0);
    CHECK_INT_EQ(check_sig(sig, body, blen, NULL), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "unknown CA");
    free(sig);

    /* an expired signer */
    ident_t old = hand_cert(ca_a_key, -30, -1, NULL, 1);
    sig = mdm_sig(&old, body, blen, 0, 0);
    CHECK_INT_EQ(check_sig(sig, body, blen, NULL), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "expired");
    free(sig);
    ident_free(&old);
    /* a signer valid now, checked at a time after it expires: the time is the caller's */
    sig = mdm_sig(&dev_a, body, blen, 0, 0);
    X509 *s2 = (X509 *)1;
    CHECK_INT_EQ(lmdm_trust_verify_mdm_signature(trust_a, sig, body, blen, now + 2 * 365 * 86400L, &s2,
                                                 reason, sizeof(reason)),
                 LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "expired");
    CHECK(s2 == NULL);
    free(sig);

    /* no signer certificate inside: nothing to check the signature with */
    sig = mdm_sig(&dev_a, body, blen, CMS_NOCERTS, 0);
    CHECK_INT_EQ(check_sig(sig, body, blen, NULL), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "no signer certificate");
    free(sig);

    /* content attached instead of detached */
    BIO *in = BIO_new_mem_buf(body, (int)blen);
    CMS_ContentInfo *cms = CMS_sign(dev_a.cert, dev_a.key, NULL, in, CMS_BINARY);
    BIO_free(in);
    unsigned char *der = NULL;
    int n = i2d_CMS_ContentInfo(cms, &der);
    CMS_ContentInfo_free(cms);
    char *b64 = malloc((size_t)n * 2 + 4);
    EVP_EncodeBlock((unsigned char *)b64, der, n);
    CHECK_INT_EQ(check_sig(b64, body, blen, NULL), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "signature is not detached");
    free(b64);
    OPENSSL_free(der);

    /* two signers (a and b): exactly one is required */
    in = BIO_new_mem_buf(body, (int)blen);
    cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_DETACHED | CMS_BINARY | CMS_PARTIAL);
    CMS_add1_signer(cms, dev_a.cert, dev_a.key, NULL, 0);
    CMS_add1_signer(cms, dev_b.cert, dev_b.key, NULL, 0);
    CHECK_INT_EQ(CMS_final(cms, in, NULL, CMS_DETACHED | CMS_BINARY), 1);
    BIO_free(in);
    der = NULL;
    n = i2d_CMS_ContentInfo(cms, &der);
    CMS_ContentInfo_free(cms);
    b64 = malloc((size_t)n * 2 + 4);
    EVP_EncodeBlock((unsigned char *)b64, der, n);
    CHECK_INT_EQ(check_sig(b64, body, blen, NULL), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "expected exactly one signer");
    free(b64);

    /* trailing bytes after a valid signature */
    sig = mdm_sig(&dev_a, body, blen, 0, 0);
    const unsigned char *p;
    {
        unsigned char raw[8192];
        int rl = EVP_DecodeBlock(raw, (const unsigned char *)sig, (int)strlen(sig));
        size_t pad = 0, sl = strlen(sig);
        while (sl && sig[sl - 1] == '=') {
            pad++;
            sl--;
        }
        rl -= (int)pad;
        p = raw;
        CMS_ContentInfo *c2 = d2i_CMS_ContentInfo(NULL, &p, rl);
        CHECK(c2 != NULL && p == raw + rl);
        CMS_ContentInfo_free(c2);
        memcpy(raw + rl, "JUNK", 4);
        char *b = malloc((size_t)(rl + 4) * 2 + 4);
        EVP_EncodeBlock((unsigned char *)b, raw, rl + 4);
        CHECK_INT_EQ(check_sig(b, body, blen, NULL), LMDM_ERR_INVALID);
        CHECK_STR_EQ(reason, "malformed signature");
        free(b);
    }
    /* padding in the middle, characters outside the alphabet */
    char *mid = strdup(sig);
    mid[10] = '=';
    CHECK_INT_EQ(check_sig(mid, body, blen, NULL), LMDM_ERR_INVALID);
    strcpy(mid, sig);
    mid[10] = '-';
    CHECK_INT_EQ(check_sig(mid, body, blen, NULL), LMDM_ERR_INVALID);
    strcpy(mid, sig);
    mid[strlen(mid) - 5] = '\0'; /* truncated */
    CHECK_INT_EQ(check_sig(mid, body, blen, NULL), LMDM_ERR_INVALID);
    free(mid);
    free(sig);
    OPENSSL_free(der);

    /* garbage, empty and huge headers fail cleanly */
    const char *bad[] = {"",
                         " ",
                         "\r\n",
                         "!!!!",
                         "QUJD",
                         "QUJDRA==",
                         "====",
                         "A",
                         "QQ",
                         "QUJ=D",
                         "MIIB",
                         "MAA=",
                         "MIAGCSqGSIb3DQEHAqCAMIACAQE="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT_EQ(check_sig(bad[i], body, blen, NULL), LMDM_ERR_INVALID);
        CHECK(reason[0] != '\0');
    }
    CHECK_INT_EQ(check_sig(NULL, body, blen, NULL), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "no signature");
    size_t big = 200 * 1024;
    char *huge = malloc(big + 1);
    memset(huge, 'A', big);
    huge[big] = '\0';
    CHECK_INT_EQ(check_sig(huge, body, blen, NULL), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "signature too large");
    /* under the header cap but decoding to more than 64 KiB */
    huge[96 * 1024] = '\0';
    CHECK_INT_EQ(check_sig(huge, body, blen, NULL), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "malformed signature");
    /* 64 KiB of zeros: decodes, is no CMS */
    huge[60 * 1024] = '\0';
    CHECK_INT_EQ(check_sig(huge, body, blen, NULL), LMDM_ERR_INVALID);
    free(huge);
    CHECK(ERR_peek_error() == 0);
}

/* ---- Client-Cert (RFC 9440) ---- */

static char *client_cert_header(X509 *x, int strip_padding, const char *before, const char *after)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    char *b64 = malloc((size_t)n * 2 + 4);
    int bl = EVP_EncodeBlock((unsigned char *)b64, der, n);
    OPENSSL_free(der);
    if (strip_padding)
        while (bl && b64[bl - 1] == '=')
            b64[--bl] = '\0';
    size_t sz = (size_t)bl + strlen(before) + strlen(after) + 1;
    char *h = malloc(sz);
    snprintf(h, sz, "%s%s%s", before, b64, after);
    free(b64);
    return h;
}

static void test_client_cert(void)
{
    X509 *x = NULL;
    char *h = client_cert_header(dev_a.cert, 0, ":", ":");
    CHECK_INT_EQ(lmdm_identity_parse_client_cert(h, &x), 0);
    CHECK(x && X509_cmp(x, dev_a.cert) == 0);
    X509_free(x);
    free(h);
    h = client_cert_header(dev_a.cert, 0, "  :", ":  ");
    CHECK_INT_EQ(lmdm_identity_parse_client_cert(h, &x), 0);
    X509_free(x);
    free(h);
    /* sf-binary may come without '=' padding (RFC 8941 asks parsers to accept it) */
    h = client_cert_header(dev_a.cert, 1, ":", ":");
    CHECK_INT_EQ(lmdm_identity_parse_client_cert(h, &x), 0);
    CHECK(x && X509_cmp(x, dev_a.cert) == 0);
    X509_free(x);
    free(h);

    const char *shapes[][2] = {{"", ""},         {":", ""},   {"", ":"},    {"\"", "\""},
                               {":", ":;foo=1"}, {": ", ":"}, {":", "\n:"}, {"x:", ":"}};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        h = client_cert_header(dev_a.cert, 0, shapes[i][0], shapes[i][1]);
        x = (X509 *)1;
        CHECK_INT_EQ(lmdm_identity_parse_client_cert(h, &x), LMDM_ERR_INVALID);
        CHECK(x == NULL);
        free(h);
    }
    const char *bad[] = {"",    "::",     ":=:",    ":!!!!:", ":QUJD:",  ":QUJDRA==:",
                         ":A:", ":MIIB:", ":MAA=:", "QUJD",   ":QU JD:", "*QUJD*"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        x = (X509 *)1;
        CHECK_INT_EQ(lmdm_identity_parse_client_cert(bad[i], &x), LMDM_ERR_INVALID);
        CHECK(x == NULL);
    }
    CHECK_INT_EQ(lmdm_identity_parse_client_cert(NULL, &x), LMDM_ERR_INVALID);

    /* a certificate followed by extra bytes */
    unsigned char *der = NULL;
    int n = i2d_X509(dev_a.cert, &der);
    unsigned char *more = malloc((size_t)n + 3);
    memcpy(more, der, (size_t)n);
    memcpy(more + n, "\x00\x00\x00", 3);
    char *b64 = malloc((size_t)n * 2 + 16);
    b64[0] = ':';
    int bl = EVP_EncodeBlock((unsigned char *)b64 + 1, more, n + 3);
    b64[bl + 1] = ':';
    b64[bl + 2] = '\0';
    CHECK_INT_EQ(lmdm_identity_parse_client_cert(b64, &x), LMDM_ERR_INVALID);
    free(b64);
    free(more);
    OPENSSL_free(der);

    /* over the size cap */
    size_t big = 40 * 1024;
    char *huge = malloc(big + 3);
    huge[0] = ':';
    memset(huge + 1, 'A', big);
    huge[big + 1] = ':';
    huge[big + 2] = '\0';
    CHECK_INT_EQ(lmdm_identity_parse_client_cert(huge, &x), LMDM_ERR_INVALID);
    free(huge);
    CHECK(ERR_peek_error() == 0);
}

static void test_fingerprint(void)
{
    char fp[LMDM_FINGERPRINT_LEN + 1];
    lmdm_identity_fingerprint(dev_a.cert, fp);
    CHECK_INT_EQ(strlen(fp), LMDM_FINGERPRINT_LEN);
    unsigned char *der = NULL;
    int n = i2d_X509(dev_a.cert, &der);
    unsigned char md[32];
    unsigned int ml = 0;
    EVP_Digest(der, (size_t)n, md, &ml, EVP_sha256(), NULL);
    OPENSSL_free(der);
    char want[65];
    for (int i = 0; i < 32; i++)
        snprintf(want + 2 * i, 3, "%02x", md[i]);
    CHECK_STR_EQ(fp, want);
    char fp2[LMDM_FINGERPRINT_LEN + 1];
    lmdm_identity_fingerprint(dev_b.cert, fp2);
    CHECK(strcmp(fp, fp2) != 0);
    lmdm_identity_fingerprint(NULL, fp2);
    CHECK_STR_EQ(fp2, "");
}

/* Two threads verify the same certificate at different times, many times
 * over: each must always get its own answer (the shared store is not
 * changed by a call). */
typedef struct {
    time_t at;
    int want;
    int wrong;
    const char *sig;
    const char *body;
} worker_arg_t;

static void *worker(void *p)
{
    worker_arg_t *a = p;
    for (int i = 0; i < 300; i++) {
        char r[64];
        if (lmdm_trust_verify(trust_a, dev_a.cert, NULL, a->at, r, sizeof(r)) != a->want) a->wrong++;
        X509 *s = NULL;
        if (lmdm_trust_verify_mdm_signature(trust_a, a->sig, a->body, strlen(a->body), a->at, &s, r,
                                            sizeof(r)) != a->want)
            a->wrong++;
        X509_free(s);
    }
    return NULL;
}

static void test_threads(void)
{
    const char *body = "thread body";
    char *sig = mdm_sig(&dev_a, body, strlen(body), 0, 0);
    worker_arg_t args[4] = {{now, 0, 0, sig, body},
                            {now + 3 * 365 * 86400L, LMDM_ERR_INVALID, 0, sig, body},
                            {now, 0, 0, sig, body},
                            {now - 86400, LMDM_ERR_INVALID, 0, sig, body}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, worker, &args[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++)
        CHECK_INT_EQ(args[i].wrong, 0);
    free(sig);
}

/* The verification memo: a hit skips only the chain check, never the expiry,
 * never another certificate, and never a certificate that failed. */
static void test_verify_cache(void)
{
    lmdm_verify_cache_t *c = lmdm_verify_cache_new();
    char why[128];
    CHECK_INT_EQ(lmdm_trust_verify_cached(trust_a, c, dev_a.cert, NULL, now, why, sizeof why), 0);
    CHECK_INT_EQ(lmdm_trust_verify_cached(trust_a, c, dev_a.cert, NULL, now + 10, why, sizeof why), 0);
    /* another CA's certificate is not let in by the memo */
    CHECK(lmdm_trust_verify_cached(trust_a, c, dev_b.cert, NULL, now, why, sizeof why) != 0);
    CHECK(lmdm_trust_verify_cached(trust_a, c, dev_b.cert, NULL, now, why, sizeof why) != 0);
    /* far in the future (past notAfter and the TTL): verified afresh, and refused as expired */
    time_t later = now + 3L * 365 * 24 * 3600;
    CHECK(lmdm_trust_verify_cached(trust_a, c, dev_a.cert, NULL, later, why, sizeof why) != 0);
    CHECK_STR_CONTAINS(why, "expired");
    /* an expired certificate is never remembered */
    ident_t old = hand_cert(ca_a_key, -30, -1, NULL, 1);
    CHECK(lmdm_trust_verify_cached(trust_a, c, old.cert, NULL, now, why, sizeof why) != 0);
    CHECK(lmdm_trust_verify_cached(trust_a, c, old.cert, NULL, now, why, sizeof why) != 0);
    ident_free(&old);
    lmdm_verify_cache_free(c);
}

int main(void)
{
    const char *base = getenv("LMDM_TEST_OUT");
    char parent[200];
    snprintf(parent, sizeof(parent), "%s", base && *base ? base : "/tmp");
    mkdir(parent, 0755);
    snprintf(dir, sizeof(dir), "%s/test_identity.XXXXXX", parent);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    now = time(NULL);
    ca_a = make_ca("a", &ca_a_key);
    ca_b = make_ca("b", NULL);
    if (!ca_a || !ca_b || !ca_a_key) {
        fprintf(stderr, "setup: %s\n", err);
        return 1;
    }
    dev_a = issue(ca_a, "device a");
    dev_b = issue(ca_b, "device b");
    trust_a = lmdm_trust_new(lmdm_ca_cert(ca_a), NULL, err, sizeof(err));
    if (!dev_a.cert || !dev_b.cert || !trust_a) {
        fprintf(stderr, "setup: %s\n", err);
        return 1;
    }
    RUN(test_trust_new);
    RUN(test_verify);
    RUN(test_mdm_signature);
    RUN(test_client_cert);
    RUN(test_fingerprint);
    RUN(test_threads);
    RUN(test_verify_cache);
    lmdm_trust_free(trust_a);
    ident_free(&dev_a);
    ident_free(&dev_b);
    EVP_PKEY_free(ca_a_key);
    lmdm_ca_free(ca_a);
    lmdm_ca_free(ca_b);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return harness_finish();
}
