/* Unit tests for broker/mdm/identity.c: the device trust store, certificate
 * verification at a given time and its reasons, the Mdm-Signature header
 * (valid, tampered, foreign CA, hostile encodings), the RFC 9440 Client-Cert
 * header, fingerprints, verification from several threads at once, and the
 * cached fast path for Mdm-Signature checked against the full CMS path. */
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

/* ---- the fast path (lmdm_trust_verify_mdm_signature_cached) ----
 * Every case runs twice: through the cached call (fast path, falling back to
 * the full CMS path) and through the uncached call (the full CMS path alone,
 * the reference). Both must give the same verdict and the same reason. */

static lmdm_verify_cache_t *fcache;

static char *cms_b64(CMS_ContentInfo *cms)
{
    unsigned char *der = NULL;
    int n = cms ? i2d_CMS_ContentInfo(cms, &der) : -1;
    if (n <= 0) return NULL;
    char *b64 = malloc((size_t)n * 2 + 4);
    EVP_EncodeBlock((unsigned char *)b64, der, n);
    OPENSSL_free(der);
    return b64;
}

static char *der_b64(const unsigned char *der, size_t n)
{
    char *b64 = malloc(n * 2 + 4);
    EVP_EncodeBlock((unsigned char *)b64, der, (int)n);
    return b64;
}

/* A detached signature by `key` with `cert` as the signer (sid) and the
 * certificates `extra` (NULL-terminated) in the message instead of cert. */
static char *sig_custom(X509 *cert, EVP_PKEY *key, const EVP_MD *md, int flags, X509 **extra,
                        const void *body, size_t len)
{
    BIO *in = BIO_new_mem_buf(body, (int)len);
    CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_DETACHED | CMS_BINARY | CMS_PARTIAL);
    CMS_SignerInfo *si = CMS_add1_signer(cms, cert, key, md, flags | (extra ? CMS_NOCERTS : 0));
    char *b64 = NULL;
    if (si && CMS_final(cms, in, NULL, CMS_DETACHED | CMS_BINARY) == 1) {
        for (X509 **x = extra; x && *x; x++)
            CMS_add1_cert(cms, *x);
        b64 = cms_b64(cms);
    }
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return b64;
}

/* Runs both paths; returns the verdict, leaves the reason in `reason` and
 * counts a disagreement as a failed check. */
static int check_fast(const char *header, const void *body, size_t len, time_t at, X509 *want_signer)
{
    char ref_reason[128] = "";
    X509 *ref = NULL, *got = NULL;
    int want =
        lmdm_trust_verify_mdm_signature(trust_a, header, body, len, at, &ref, ref_reason, sizeof(ref_reason));
    reason[0] = '\0';
    int rv = lmdm_trust_verify_mdm_signature_cached(trust_a, fcache, header, body, len, at, &got, reason,
                                                    sizeof(reason));
    CHECK_INT_EQ(rv, want);
    if (rv != 0) CHECK_STR_EQ(reason, ref_reason);
    CHECK((got == NULL) == (rv != 0));
    if (got && ref) CHECK(X509_cmp(got, ref) == 0);
    if (got && want_signer) CHECK(X509_cmp(got, want_signer) == 0);
    X509_free(ref);
    X509_free(got);
    CHECK(ERR_peek_error() == 0);
    return rv;
}

/* Replaces every occurrence of `from` by `to` (same length) in a base64 DER signature. */
static char *patch_sig(const char *b64, const unsigned char *from, const unsigned char *to, size_t n)
{
    size_t bl = strlen(b64);
    unsigned char *der = malloc(bl);
    int dl = EVP_DecodeBlock(der, (const unsigned char *)b64, (int)bl);
    while (bl && b64[bl - 1] == '=') {
        dl--;
        bl--;
    }
    int hits = 0;
    for (int i = 0; i + (int)n <= dl; i++)
        if (memcmp(der + i, from, n) == 0) {
            memcpy(der + i, to, n);
            hits++;
        }
    CHECK(hits > 0);
    char *out = der_b64(der, (size_t)dl);
    free(der);
    return out;
}

static void test_fast_path(void)
{
    static const char body[] =
        "<?xml version=\"1.0\"?><plist><dict><key>Status</key>"
        "<string>Idle</string><key>UDID</key><string>0000-1111</string></dict></plist>";
    size_t blen = sizeof(body) - 1;
    fcache = lmdm_verify_cache_new();
    ident_t ec = hand_cert(ca_a_key, -1, 30, NULL, 1); /* an EC P-256 device of CA a */
    ident_t a2 = issue(ca_a, "device a2");
    CHECK(ec.cert && a2.cert);
    unsigned long fast = 0;

    /* valid: RSA and EC, with and without signed attributes, several digests;
     * each twice (the second decodes no certificate) and by the fast path */
    struct {
        ident_t *id;
        const EVP_MD *md;
        int flags;
    } good[] = {{&dev_a, NULL, 0},
                {&dev_a, NULL, CMS_NOATTR},
                {&dev_a, EVP_sha1(), 0},
                {&dev_a, EVP_sha512(), 0},
                {&ec, NULL, 0},
                {&ec, NULL, CMS_NOATTR},
                {&ec, EVP_sha384(), 0},
                {&a2, EVP_sha256(), CMS_NOSMIMECAP},
                {&dev_a, NULL, CMS_USE_KEYID}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char *sig =
            sig_custom(good[i].id->cert, good[i].id->key, good[i].md, good[i].flags, NULL, body, blen);
        CHECK(sig != NULL);
        for (int round = 0; round < 2; round++) {
            CHECK_INT_EQ(check_fast(sig, body, blen, now, good[i].id->cert), 0);
            CHECK(lmdm_verify_cache_fast_accepted(fcache) == ++fast);
        }
        /* the body changed by one byte (with signed attributes: the
         * messageDigest no longer matches; without: the signature) */
        char *copy = strdup(body);
        copy[blen / 2] ^= 1;
        CHECK_INT_EQ(check_fast(sig, copy, blen, now, NULL), LMDM_ERR_INVALID);
        CHECK_STR_EQ(reason, "signature does not match");
        CHECK_INT_EQ(check_fast(sig, body, blen - 1, now, NULL), LMDM_ERR_INVALID);
        CHECK_INT_EQ(check_fast(sig, "", 0, now, NULL), LMDM_ERR_INVALID);
        free(copy);
        /* the same signature, later than the certificate's notAfter (the memo does not help) */
        CHECK_INT_EQ(check_fast(sig, body, blen, now + 3L * 365 * 86400, NULL), LMDM_ERR_INVALID);
        CHECK_STR_CONTAINS(reason, "expired");
        CHECK(lmdm_verify_cache_fast_accepted(fcache) == fast);
        free(sig);
    }
    /* an empty body is a body like any other */
    char *sig = sig_custom(dev_a.cert, dev_a.key, NULL, 0, NULL, "", 0);
    CHECK_INT_EQ(check_fast(sig, "", 0, now, dev_a.cert), 0);
    CHECK(lmdm_verify_cache_fast_accepted(fcache) == ++fast);
    free(sig);

    /* the signer is the certificate the sid names, not the first one sent */
    X509 *both[] = {a2.cert, dev_a.cert, NULL};
    sig = sig_custom(dev_a.cert, dev_a.key, NULL, 0, both, body, blen);
    CHECK_INT_EQ(check_fast(sig, body, blen, now, dev_a.cert), 0);
    CHECK(lmdm_verify_cache_fast_accepted(fcache) == ++fast);
    free(sig);
    /* the certificate swapped for another device's (of the same CA) */
    X509 *other[] = {a2.cert, NULL};
    sig = sig_custom(dev_a.cert, dev_a.key, NULL, 0, other, body, blen);
    CHECK_INT_EQ(check_fast(sig, body, blen, now, NULL), LMDM_ERR_INVALID);
    free(sig);
    sig = sig_custom(dev_a.cert, dev_a.key, NULL, CMS_NOATTR, other, body, blen);
    CHECK_INT_EQ(check_fast(sig, body, blen, now, NULL), LMDM_ERR_INVALID);
    free(sig);
    /* signed by another key, naming and carrying device a's certificate (the
     * sid is device a's issuer and serial: a copy of its certificate with the
     * forger's key) */
    EVP_PKEY *forger = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    X509 *fake = X509_dup(dev_a.cert);
    X509_set_pubkey(fake, forger);
    X509_sign(fake, forger, EVP_sha256());
    X509 *real[] = {dev_a.cert, NULL};
    for (int flags = 0; flags <= CMS_NOATTR; flags += CMS_NOATTR) {
        sig = sig_custom(fake, forger, NULL, flags, real, body, blen);
        CHECK(sig != NULL);
        CHECK_INT_EQ(check_fast(sig, body, blen, now, NULL), LMDM_ERR_INVALID);
        CHECK_STR_EQ(reason, "signature does not match");
        free(sig);
    }
    /* ... and carrying the forger's copy: a good signature, an untrusted certificate */
    sig = sig_custom(fake, forger, NULL, 0, NULL, body, blen);
    CHECK_INT_EQ(check_fast(sig, body, blen, now, NULL), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "unknown CA"); /* its authority key id names no trusted CA */
    free(sig);
    X509_free(fake);
    EVP_PKEY_free(forger);
    /* a good signature from another CA's device */
    sig = sig_custom(dev_b.cert, dev_b.key, NULL, 0, NULL, body, blen);
    CHECK_INT_EQ(check_fast(sig, body, blen, now, NULL), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "unknown CA");
    CHECK_INT_EQ(check_fast(sig, body, blen, now, NULL),
                 LMDM_ERR_INVALID); /* and again: nothing remembered */
    free(sig);
    /* no certificate; two signers; content attached */
    sig = sig_custom(dev_a.cert, dev_a.key, NULL, CMS_NOCERTS, NULL, body, blen);
    CHECK_INT_EQ(check_fast(sig, body, blen, now, NULL), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "no signer certificate");
    free(sig);
    BIO *in = BIO_new_mem_buf(body, (int)blen);
    CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_DETACHED | CMS_BINARY | CMS_PARTIAL);
    CMS_add1_signer(cms, dev_a.cert, dev_a.key, NULL, 0);
    CMS_add1_signer(cms, a2.cert, a2.key, NULL, 0);
    CHECK_INT_EQ(CMS_final(cms, in, NULL, CMS_DETACHED | CMS_BINARY), 1);
    BIO_free(in);
    sig = cms_b64(cms);
    CMS_ContentInfo_free(cms);
    CHECK_INT_EQ(check_fast(sig, body, blen, now, NULL), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "expected exactly one signer");
    free(sig);
    in = BIO_new_mem_buf(body, (int)blen);
    cms = CMS_sign(dev_a.cert, dev_a.key, NULL, in, CMS_BINARY);
    BIO_free(in);
    sig = cms_b64(cms);
    CMS_ContentInfo_free(cms);
    CHECK_INT_EQ(check_fast(sig, body, blen, now, NULL), LMDM_ERR_INVALID);
    CHECK_STR_EQ(reason, "signature is not detached");
    free(sig);
    CHECK(lmdm_verify_cache_fast_accepted(fcache) == fast);

    /* algorithms: SHA-256 made unknown (in both places it is named, or in one),
     * rsaEncryption named as sha256WithRSAEncryption (accepted by both),
     * sha1WithRSAEncryption beside a SHA-256 digest and an unknown signature
     * algorithm (left to the full path) */
    static const unsigned char sha256_oid[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                               0x65, 0x03, 0x04, 0x02, 0x01};
    static const unsigned char bogus_oid[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                              0x65, 0x03, 0x04, 0x02, 0x7f};
    static const unsigned char sha224_oid[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                               0x65, 0x03, 0x04, 0x02, 0x04};
    static const unsigned char rsa_oid[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};
    static const unsigned char rsa_sha256_oid[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                                   0xf7, 0x0d, 0x01, 0x01, 0x0b};
    static const unsigned char rsa_sha1_oid[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                                 0xf7, 0x0d, 0x01, 0x01, 0x05};
    static const unsigned char rsa_bogus_oid[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                                  0xf7, 0x0d, 0x01, 0x01, 0x7f};
    for (int flags = 0; flags <= CMS_NOATTR; flags += CMS_NOATTR) {
        sig = sig_custom(dev_a.cert, dev_a.key, NULL, flags | CMS_NOSMIMECAP, NULL, body, blen);
        char *p = patch_sig(sig, sha256_oid, bogus_oid, sizeof(sha256_oid));
        CHECK_INT_EQ(check_fast(p, body, blen, now, NULL), LMDM_ERR_INVALID);
        free(p);
        p = patch_sig(sig, sha256_oid, sha224_oid, sizeof(sha256_oid));
        CHECK_INT_EQ(check_fast(p, body, blen, now, NULL), LMDM_ERR_INVALID); /* signed with SHA-256 */
        free(p);
        p = patch_sig(sig, rsa_oid, rsa_sha256_oid,
                      sizeof(rsa_oid)); /* also the key's OID in the certificate */
        CHECK_INT_EQ(check_fast(p, body, blen, now, NULL), LMDM_ERR_INVALID);
        free(p);
        free(sig);
    }
    /* only the signature algorithm changed (the certificate left out of the patch) */
    X509 *none[] = {NULL};
    char *bare = sig_custom(dev_a.cert, dev_a.key, NULL, CMS_NOSMIMECAP, none, body, blen);
    const unsigned char *sig_algs[] = {rsa_sha256_oid, rsa_sha1_oid, rsa_bogus_oid};
    for (size_t i = 0; i < 3; i++) {
        char *p = patch_sig(bare, rsa_oid, sig_algs[i], sizeof(rsa_oid));
        /* put the certificate back: decode, add, encode */
        size_t pl = strlen(p);
        unsigned char *der = malloc(pl);
        int dl = EVP_DecodeBlock(der, (const unsigned char *)p, (int)pl);
        while (pl && p[pl - 1] == '=') {
            dl--;
            pl--;
        }
        const unsigned char *q = der;
        cms = d2i_CMS_ContentInfo(NULL, &q, dl);
        CHECK(cms != NULL);
        CMS_add1_cert(cms, dev_a.cert);
        char *full = cms_b64(cms);
        CMS_ContentInfo_free(cms);
        int rv = check_fast(full, body, blen, now, NULL);
        CHECK_INT_EQ(rv, i == 2 ? LMDM_ERR_INVALID : 0);
        free(full);
        free(der);
        free(p);
    }
    free(bare);
    ERR_clear_error();

    /* truncated and garbage DER */
    sig = sig_custom(dev_a.cert, dev_a.key, NULL, 0, NULL, body, blen);
    size_t sl = strlen(sig);
    unsigned char *der = malloc(sl);
    int dl = EVP_DecodeBlock(der, (const unsigned char *)sig, (int)sl);
    while (sl && sig[sl - 1] == '=') {
        dl--;
        sl--;
    }
    for (int cut = 1; cut < dl; cut += 97) {
        char *t = der_b64(der, (size_t)(dl - cut));
        CHECK_INT_EQ(check_fast(t, body, blen, now, NULL), LMDM_ERR_INVALID);
        free(t);
    }
    /* Differential: single-byte changes all over a valid signature; the two
     * paths must agree on every one (most are refused, a few in unsigned
     * fields may be accepted by both). */
    unsigned long accepted = 0, refused = 0;
    unsigned int seed = 12345;
    for (int i = 0; i < 3 * dl; i++) {
        int pos = i % dl;
        unsigned char old = der[pos];
        seed = seed * 1103515245u + 12345u;
        der[pos] = (unsigned char)(i < dl ? old ^ 0x01 : (seed >> 16) & 0xff);
        char *t = der_b64(der, (size_t)dl);
        if (check_fast(t, body, blen, now, NULL) == 0)
            accepted++;
        else
            refused++;
        free(t);
        der[pos] = old;
    }
    CHECK(refused > accepted);
    free(der);
    free(sig);
    CHECK(lmdm_verify_cache_fast_accepted(fcache) >= fast);

    ident_free(&ec);
    ident_free(&a2);
    lmdm_verify_cache_free(fcache);
    lmdm_verify_cache_free(NULL);
    CHECK(lmdm_verify_cache_fast_accepted(NULL) == 0);
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
    RUN(test_fast_path);
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
