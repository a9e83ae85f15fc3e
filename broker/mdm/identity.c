/* Device identity verification: the trust store, certificate checks at a
 * given time, the Mdm-Signature header and the RFC 9440 Client-Cert header.
 *
 * Thread safety: the X509_STORE is shared by every worker and never modified
 * after lmdm_trust_new(). Each verification gets its own X509_STORE_CTX, whose
 * verification parameters (time, purpose) are a private copy, so no call
 * changes anything another thread can see. */
#include "lmdm/identity.h"

#include <openssl/asn1t.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lmdm_trust {
    X509_STORE *store;
};

#define MDM_SIG_MAX_DER (64 * 1024)     /* decoded Mdm-Signature */
#define MDM_SIG_MAX_HEADER (128 * 1024) /* base64 plus any folding whitespace */
#define CLIENT_CERT_MAX_DER (16 * 1024) /* one certificate; real ones are 1-2 KiB */
#define CLIENT_CERT_MAX_HEADER (24 * 1024)

static void set_reason(char *reason, size_t len, const char *text)
{
    if (reason && len) snprintf(reason, len, "%s", text);
}

lmdm_trust_t *lmdm_trust_new(X509 *broker_ca, const char *extra_bundle, char *errbuf, size_t errlen)
{
    X509_STORE *store = X509_STORE_new();
    BIO *bio = NULL;
    int ncas = 0;
    if (!store) goto oom;
    if (broker_ca) {
        if (X509_STORE_add_cert(store, broker_ca) != 1) goto oom;
        ncas++;
    }
    if (extra_bundle && *extra_bundle) {
        bio = BIO_new_file(extra_bundle, "r");
        if (!bio) {
            ERR_clear_error();
            snprintf(errbuf, errlen, "cannot open device_trusted_cas %s", extra_bundle);
            goto fail;
        }
        int in_file = 0;
        for (;;) {
            X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
            if (!x) {
                /* End of file ends the loop; anything else is a broken bundle. */
                unsigned long e = ERR_peek_last_error();
                ERR_clear_error();
                if (ERR_GET_REASON(e) == PEM_R_NO_START_LINE && in_file > 0) break;
                snprintf(errbuf, errlen, "device_trusted_cas %s: %s", extra_bundle,
                         in_file ? "unreadable certificate after the first" : "no PEM certificate in it");
                goto fail;
            }
            in_file++;
            /* Only CAs belong here: a leaf would make exactly one device
             * certificate "trusted", which is never what the operator meant. */
            if (X509_check_ca(x) < 1) {
                X509_free(x);
                snprintf(errbuf, errlen, "device_trusted_cas %s: certificate #%d is not a CA", extra_bundle,
                         in_file);
                goto fail;
            }
            int ok = X509_STORE_add_cert(store, x);
            X509_free(x);
            if (ok != 1) {
                /* A duplicate of a certificate already present is harmless. */
                unsigned long e = ERR_peek_last_error();
                ERR_clear_error();
                if (ERR_GET_REASON(e) != X509_R_CERT_ALREADY_IN_HASH_TABLE) goto oom;
            }
            ncas++;
        }
    }
    if (ncas == 0) {
        snprintf(errbuf, errlen,
                 "no CA trusted for device identities (configure ca_cert or device_trusted_cas)");
        goto fail;
    }
    BIO_free(bio);
    lmdm_trust_t *t = lmdm_xcalloc(1, sizeof(*t));
    t->store = store;
    return t;
oom:
    ERR_clear_error();
    snprintf(errbuf, errlen, "building the device trust store failed");
fail:
    BIO_free(bio);
    X509_STORE_free(store);
    return NULL;
}

void lmdm_trust_free(lmdm_trust_t *t)
{
    if (!t) return;
    X509_STORE_free(t->store);
    free(t);
}

X509_STORE *lmdm_trust_store(const lmdm_trust_t *t)
{
    return t ? t->store : NULL;
}

/* Short, stable reasons: they go into logs and metrics labels. */
static const char *verify_reason(int err, int depth)
{
    switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED: return depth == 0 ? "expired" : "CA expired";
    case X509_V_ERR_CERT_NOT_YET_VALID: return depth == 0 ? "not yet valid" : "CA not yet valid";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: return "unknown CA";
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY: return "bad signature";
    case X509_V_ERR_INVALID_PURPOSE:
    case X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE: return "wrong purpose";
    case X509_V_ERR_INVALID_CA:
    case X509_V_ERR_PATH_LENGTH_EXCEEDED:
    case X509_V_ERR_KEYUSAGE_NO_CERTSIGN: return "invalid CA";
    case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
    case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD: return "bad validity dates";
    default: return "invalid certificate";
    }
}

int lmdm_trust_verify(const lmdm_trust_t *t, X509 *cert, STACK_OF(X509) * chain, time_t now, char *reason,
                      size_t reasonlen)
{
    if (!t || !cert) {
        set_reason(reason, reasonlen, "no certificate");
        return LMDM_ERR_INVALID;
    }
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (!ctx || X509_STORE_CTX_init(ctx, t->store, cert, chain) != 1) {
        X509_STORE_CTX_free(ctx);
        ERR_clear_error();
        set_reason(reason, reasonlen, "verification failed");
        return LMDM_ERR_NOMEM;
    }
    /* Both settings go to this context's own copy of the parameters.
     * The SSL client purpose accepts a leaf without extendedKeyUsage or with
     * clientAuth in it, and a keyUsage (if present) with digitalSignature. */
    X509_STORE_CTX_set_time(ctx, 0, now);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    int rv = 0;
    if (X509_verify_cert(ctx) != 1) {
        int err = X509_STORE_CTX_get_error(ctx);
        set_reason(reason, reasonlen, verify_reason(err, X509_STORE_CTX_get_error_depth(ctx)));
        rv = LMDM_ERR_INVALID;
    }
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
    return rv;
}

static int b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Strict base64 (standard alphabet) into a malloc'd buffer. Whitespace is
 * skipped only when skip_ws is set; padding is required when pad_required.
 * Returns the decoded length, or -1 for anything malformed or larger than
 * max_out. */
static long b64_decode(const char *in, size_t in_len, int skip_ws, int pad_required, size_t max_out,
                       unsigned char **out)
{
    *out = NULL;
    /* Compact into a buffer with padding restored; +3 leaves room for it. */
    char *clean = lmdm_xmalloc(in_len + 4);
    size_t n = 0, pad = 0;
    for (size_t i = 0; i < in_len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (skip_ws && (c == ' ' || c == '\t' || c == '\r' || c == '\n')) continue;
        if (c == '=') {
            pad++;
        } else if (!b64_char(c) || pad) { /* data after '=' is malformed */
            free(clean);
            return -1;
        }
        clean[n++] = (char)c;
    }
    if (pad > 2 || n == 0) goto bad;
    if (n % 4 != 0) {
        if (pad_required || pad) goto bad;
        if (n % 4 == 1) goto bad; /* one dangling character encodes nothing */
        while (n % 4) {
            clean[n++] = '=';
            pad++;
        }
    }
    size_t out_len = n / 4 * 3 - pad;
    if (out_len > max_out) goto bad;
    unsigned char *buf = lmdm_xmalloc(n / 4 * 3 + 1);
    /* EVP_DecodeBlock ignores padding when counting; its result includes the
     * zero bytes padding stands for, which out_len leaves off. */
    if (EVP_DecodeBlock(buf, (const unsigned char *)clean, (int)n) < 0) {
        free(buf);
        goto bad;
    }
    free(clean);
    *out = buf;
    return (long)out_len;
bad:
    free(clean);
    return -1;
}

/* ---- verification memo ---- */

#define VCACHE_SLOTS 4096 /* direct-mapped by the certificate's digest */

typedef struct {
    unsigned char md[32]; /* SHA-256 of the DER certificate */
    time_t verified_at;
    time_t not_after;
    int used;
} vslot_t;

/* A decoded certificate (with its public key) from an Mdm-Signature, keyed by
 * the SHA-256 of the bytes it was decoded from: decoding is deterministic, so
 * the same bytes always give the same certificate. Trust is not implied; the
 * chain is checked through vslot_t like any other certificate. */
typedef struct {
    unsigned char md[32]; /* SHA-256 of the certificate bytes as sent */
    X509 *cert;           /* owned; NULL when the slot is empty */
} xslot_t;

struct lmdm_verify_cache {
    vslot_t slots[VCACHE_SLOTS];
    xslot_t certs[VCACHE_SLOTS];
    unsigned long fast_accepted;
};

lmdm_verify_cache_t *lmdm_verify_cache_new(void)
{
    return lmdm_xcalloc(1, sizeof(lmdm_verify_cache_t));
}

void lmdm_verify_cache_free(lmdm_verify_cache_t *c)
{
    if (!c) return;
    for (size_t i = 0; i < VCACHE_SLOTS; i++)
        X509_free(c->certs[i].cert);
    free(c);
}

unsigned long lmdm_verify_cache_fast_accepted(const lmdm_verify_cache_t *c)
{
    return c ? c->fast_accepted : 0;
}

static size_t slot_index(const unsigned char md[32])
{
    return (size_t)(md[0] | (md[1] << 8)) & (VCACHE_SLOTS - 1);
}

static vslot_t *vslot(lmdm_verify_cache_t *c, X509 *cert, unsigned char md[32])
{
    unsigned int n = 0;
    if (X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != 32) {
        ERR_clear_error();
        return NULL;
    }
    return &c->slots[slot_index(md)];
}

int lmdm_trust_verify_cached(const lmdm_trust_t *t, lmdm_verify_cache_t *cache, X509 *cert, STACK_OF(X509) *chain,
                             time_t now, char *reason, size_t reasonlen)
{
    unsigned char md[32];
    vslot_t *slot = cache && cert ? vslot(cache, cert, md) : NULL;
    if (slot && slot->used && memcmp(slot->md, md, 32) == 0 && now >= slot->verified_at &&
        now - slot->verified_at < LMDM_VERIFY_CACHE_TTL && now < slot->not_after)
        return 0;
    int rv = lmdm_trust_verify(t, cert, chain, now, reason, reasonlen);
    if (rv == 0 && slot) {
        struct tm tm;
        time_t not_after = now + LMDM_VERIFY_CACHE_TTL;
        if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) not_after = timegm(&tm);
        memcpy(slot->md, md, 32);
        slot->verified_at = now;
        slot->not_after = not_after;
        slot->used = 1;
    }
    return rv;
}

/* ---- Mdm-Signature: the fast path ----
 *
 * d2i_CMS_ContentInfo decodes every certificate in the message, and with it
 * the public key: in OpenSSL 3.0 that is most of the CPU time of a device's
 * poll. The fast path decodes the same SignedData with templates that mirror
 * OpenSSL's CMS ones (crypto/cms/cms_asn1.c) except that certificates stay
 * opaque, takes each certificate from the per-worker cache by the SHA-256 of
 * its bytes (decoding it once), and then checks what CMS_verify checks, with
 * the same OpenSSL calls: the signer is the certificate its sid names, the
 * messageDigest attribute is the digest of the body, the signature covers the
 * signed attributes encoded as CMS_Attributes_Verify encodes them (or the body's
 * digest when there are none), and the chain is verified.
 *
 * It accepts only the common shape: id-data content, detached, one signer,
 * one digest algorithm (SHA-1/256/384/512) shared by SignedData and the signer,
 * 1 to FAST_MAX_CERTS certificates, no CRLs, no unsigned attributes, signed
 * attributes among contentType (id-data), messageDigest, signingTime and
 * smimeCapabilities with one value each, an RSA (PKCS#1 v1.5) or EC key.
 * Anything else, and every signature that does not verify, goes to the full
 * CMS path, so refusals and their reasons are exactly the full path's. */

#define FAST_MAX_CERTS 4

/* clang-format off: OpenSSL's ASN.1 template macros */

typedef struct {
    X509_NAME *issuer;
    ASN1_INTEGER *serial;
} fsig_ias;

ASN1_SEQUENCE(fsig_ias) = {
    ASN1_SIMPLE(fsig_ias, issuer, X509_NAME),
    ASN1_SIMPLE(fsig_ias, serial, ASN1_INTEGER),
} static_ASN1_SEQUENCE_END(fsig_ias)

#define FSIG_SID_IAS 0
#define FSIG_SID_SKI 1
typedef struct {
    int type;
    union {
        fsig_ias *ias;
        ASN1_OCTET_STRING *ski;
    } d;
} fsig_sid;

ASN1_CHOICE(fsig_sid) = {
    ASN1_SIMPLE(fsig_sid, d.ias, fsig_ias),
    ASN1_IMP(fsig_sid, d.ski, ASN1_OCTET_STRING, 0),
} static_ASN1_CHOICE_END(fsig_sid)

typedef struct {
    ASN1_OBJECT *type;
    ASN1_OCTET_STRING *content; /* absent when detached */
} fsig_eci;

ASN1_SEQUENCE(fsig_eci) = {
    ASN1_SIMPLE(fsig_eci, type, ASN1_OBJECT),
    ASN1_EXP_OPT(fsig_eci, content, ASN1_OCTET_STRING, 0),
} static_ASN1_SEQUENCE_END(fsig_eci)

typedef struct {
    int32_t version;
    fsig_sid *sid;
    X509_ALGOR *digest_alg;
    STACK_OF(X509_ATTRIBUTE) *signed_attrs;
    X509_ALGOR *sig_alg;
    ASN1_OCTET_STRING *signature;
    STACK_OF(X509_ATTRIBUTE) *unsigned_attrs;
} fsig_si;

ASN1_SEQUENCE(fsig_si) = {
    ASN1_EMBED(fsig_si, version, INT32),
    ASN1_SIMPLE(fsig_si, sid, fsig_sid),
    ASN1_SIMPLE(fsig_si, digest_alg, X509_ALGOR),
    ASN1_IMP_SET_OF_OPT(fsig_si, signed_attrs, X509_ATTRIBUTE, 0),
    ASN1_SIMPLE(fsig_si, sig_alg, X509_ALGOR),
    ASN1_SIMPLE(fsig_si, signature, ASN1_OCTET_STRING),
    ASN1_IMP_SET_OF_OPT(fsig_si, unsigned_attrs, X509_ATTRIBUTE, 1),
} static_ASN1_SEQUENCE_END(fsig_si)

DEFINE_STACK_OF(fsig_si)

typedef struct {
    int32_t version;
    STACK_OF(X509_ALGOR) *digest_algs;
    fsig_eci *eci;
    STACK_OF(ASN1_TYPE) *certs; /* CertificateChoices, kept as they came */
    STACK_OF(ASN1_TYPE) *crls;
    STACK_OF(fsig_si) *signers;
} fsig_sd;

ASN1_SEQUENCE(fsig_sd) = {
    ASN1_EMBED(fsig_sd, version, INT32),
    ASN1_SET_OF(fsig_sd, digest_algs, X509_ALGOR),
    ASN1_SIMPLE(fsig_sd, eci, fsig_eci),
    ASN1_IMP_SEQUENCE_OF_OPT(fsig_sd, certs, ASN1_ANY, 0),
    ASN1_IMP_SET_OF_OPT(fsig_sd, crls, ASN1_ANY, 1),
    ASN1_SET_OF(fsig_sd, signers, fsig_si),
} static_ASN1_SEQUENCE_END(fsig_sd)

typedef struct {
    ASN1_OBJECT *type;
    fsig_sd *sd;
} fsig_ci;

ASN1_SEQUENCE(fsig_ci) =
    {
        ASN1_SIMPLE(fsig_ci, type, ASN1_OBJECT),
        ASN1_EXP(fsig_ci, sd, fsig_sd, 0),
} static_ASN1_SEQUENCE_END(fsig_ci)

    /* The signed attributes as the signature covers them: a SET OF in the order
     * received, the encoding CMS_SignerInfo_verify uses. */
    ASN1_ITEM_TEMPLATE(fsig_attrs_verify) = ASN1_EX_TEMPLATE_TYPE(ASN1_TFLG_SET_ORDER, V_ASN1_SET, fsig_attrs,
                                                                  X509_ATTRIBUTE)
        static_ASN1_ITEM_TEMPLATE_END(fsig_attrs_verify)
    /* clang-format on */

    typedef enum {
        FAST_UNDECIDED,
        FAST_ACCEPTED,
        FAST_REFUSED
    } fast_verdict_t;

/* Digests fetched from the default provider once: OpenSSL 3 looks up the
 * implementation behind EVP_sha256() and the like on every use (a name-map
 * lookup under a lock), which showed in the Idle poll's profile. Fetched
 * objects are immutable and may be shared by every thread. */
static EVP_MD *md_sha1, *md_sha256, *md_sha384, *md_sha512;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void md_fetch(void)
{
    md_sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    md_sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
    md_sha512 = EVP_MD_fetch(NULL, "SHA512", NULL);
}

/* The prefetched digest of nid, or the built-in one if fetching failed. */
static const EVP_MD *md_of(int nid)
{
    pthread_once(&md_once, md_fetch);
    switch (nid) {
    case NID_sha1: return md_sha1 ? md_sha1 : EVP_sha1();
    case NID_sha256: return md_sha256 ? md_sha256 : EVP_sha256();
    case NID_sha384: return md_sha384 ? md_sha384 : EVP_sha384();
    case NID_sha512: return md_sha512 ? md_sha512 : EVP_sha512();
    default: return NULL;
    }
}

/* The digest both SignedData and the signer name, if it is one we handle. */
static const EVP_MD *fast_digest(const fsig_sd *sd, const fsig_si *si)
{
    if (sk_X509_ALGOR_num(sd->digest_algs) != 1) return NULL;
    int nid = OBJ_obj2nid(si->digest_alg->algorithm);
    if (OBJ_obj2nid(sk_X509_ALGOR_value(sd->digest_algs, 0)->algorithm) != nid) return NULL;
    return md_of(nid);
}

/* One certificate from its bytes: from the cache when these bytes were
 * decoded before, else decoded (and remembered). Returns a new reference. */
static X509 *fast_cert(lmdm_verify_cache_t *c, const ASN1_TYPE *choice)
{
    if (choice->type != V_ASN1_SEQUENCE) return NULL; /* not the "certificate" choice */
    const unsigned char *der = choice->value.sequence->data;
    int len = choice->value.sequence->length;
    unsigned char md[32];
    if (EVP_Digest(der, (size_t)len, md, NULL, md_of(NID_sha256), NULL) != 1) return NULL;
    xslot_t *s = &c->certs[slot_index(md)];
    if (s->cert && memcmp(s->md, md, sizeof(md)) == 0) return X509_up_ref(s->cert) == 1 ? s->cert : NULL;
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, len);
    if (!x || p != der + len || X509_up_ref(x) != 1) {
        X509_free(x);
        return NULL;
    }
    X509_free(s->cert);
    s->cert = x; /* the cache's reference; the caller gets the other one */
    memcpy(s->md, md, sizeof(md));
    return x;
}

/* Every certificate of the message, in order (the signer and intermediates,
 * as CMS_get1_certs would give them); NULL when any is not a certificate. */
static STACK_OF(X509) * fast_certs(lmdm_verify_cache_t *c, const STACK_OF(ASN1_TYPE) * in)
{
    int n = sk_ASN1_TYPE_num(in);
    if (n < 1 || n > FAST_MAX_CERTS) return NULL;
    STACK_OF(X509) *out = sk_X509_new_reserve(NULL, n);
    if (!out) return NULL;
    for (int i = 0; i < n; i++) {
        X509 *x = fast_cert(c, sk_ASN1_TYPE_value(in, i));
        if (!x || !sk_X509_push(out, x)) {
            X509_free(x);
            sk_X509_pop_free(out, X509_free);
            return NULL;
        }
    }
    return out;
}

/* The first certificate the signer identifier names, compared as
 * CMS_SignerInfo_cert_cmp compares. Borrowed from certs. */
static X509 *fast_signer(const fsig_sid *sid, STACK_OF(X509) * certs)
{
    for (int i = 0; i < sk_X509_num(certs); i++) {
        X509 *x = sk_X509_value(certs, i);
        if (sid->type == FSIG_SID_IAS) {
            if (X509_NAME_cmp(sid->d.ias->issuer, X509_get_issuer_name(x)) == 0 &&
                ASN1_INTEGER_cmp(sid->d.ias->serial, X509_get0_serialNumber(x)) == 0)
                return x;
        } else if (sid->type == FSIG_SID_SKI) {
            const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(x);
            if (ski && ASN1_OCTET_STRING_cmp(sid->d.ski, ski) == 0) return x;
        }
    }
    return NULL;
}

/* The signature algorithm fits the key and the digest: rsaEncryption (or
 * <digest>WithRSAEncryption) for an RSA key, ecdsa-with-<digest> for an EC key. */
static int fast_sig_alg_ok(const X509_ALGOR *alg, const EVP_MD *md, EVP_PKEY *pkey)
{
    int base = EVP_PKEY_get_base_id(pkey);
    if (base != EVP_PKEY_RSA && base != EVP_PKEY_EC) return 0;
    int sig_nid = OBJ_obj2nid(alg->algorithm);
    if (base == EVP_PKEY_RSA && sig_nid == NID_rsaEncryption) return 1;
    int dig_nid = NID_undef, pkey_nid = NID_undef;
    if (!OBJ_find_sigid_algs(sig_nid, &dig_nid, &pkey_nid)) return 0;
    return dig_nid == EVP_MD_get_type(md) && pkey_nid == base;
}

/* The signed attributes are the expected few, once each with one value:
 * contentType id-data and messageDigest equal to the body's digest. */
static int fast_attrs_ok(const STACK_OF(X509_ATTRIBUTE) * attrs, const unsigned char *dig, unsigned int dlen)
{
    int n = sk_X509_ATTRIBUTE_num(attrs);
    int content_type = 0, digest = 0, signing_time = 0, caps = 0;
    for (int i = 0; i < n; i++) {
        X509_ATTRIBUTE *a = sk_X509_ATTRIBUTE_value(attrs, i);
        if (X509_ATTRIBUTE_count(a) != 1) return 0;
        const ASN1_TYPE *v = X509_ATTRIBUTE_get0_type(a, 0);
        switch (OBJ_obj2nid(X509_ATTRIBUTE_get0_object(a))) {
        case NID_pkcs9_contentType:
            if (content_type++ || v->type != V_ASN1_OBJECT || OBJ_obj2nid(v->value.object) != NID_pkcs7_data)
                return 0;
            break;
        case NID_pkcs9_messageDigest:
            if (digest++ || v->type != V_ASN1_OCTET_STRING || v->value.octet_string->length != (int)dlen ||
                CRYPTO_memcmp(v->value.octet_string->data, dig, dlen) != 0)
                return 0;
            break;
        case NID_pkcs9_signingTime:
            if (signing_time++) return 0;
            break;
        case NID_SMIMECapabilities:
            if (caps++) return 0;
            break;
        default: return 0;
        }
    }
    return content_type == 1 && digest == 1;
}

/* The signer's signature over the body, as CMS_SignerInfo_verify (signed
 * attributes) or CMS_SignerInfo_verify_content (none) checks it. */
static int fast_signature_ok(const fsig_si *si, const EVP_MD *md, EVP_PKEY *pkey, const void *body,
                             size_t body_len)
{
    if (!pkey || !fast_sig_alg_ok(si->sig_alg, md, pkey)) return 0;
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (EVP_Digest(body_len ? body : "", body_len, dig, &dlen, md, NULL) != 1) return 0;
    const unsigned char *sig = si->signature->data;
    size_t sig_len = (size_t)si->signature->length;
    int ok = 0;
    if (!si->signed_attrs) {
        EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        ok = pctx && EVP_PKEY_verify_init(pctx) > 0 && EVP_PKEY_CTX_set_signature_md(pctx, md) > 0 &&
             EVP_PKEY_verify(pctx, sig, sig_len, dig, dlen) == 1;
        EVP_PKEY_CTX_free(pctx);
        return ok;
    }
    if (!fast_attrs_ok(si->signed_attrs, dig, dlen)) return 0;
    unsigned char *abuf = NULL;
    int alen = ASN1_item_i2d((const ASN1_VALUE *)si->signed_attrs, &abuf, ASN1_ITEM_rptr(fsig_attrs_verify));
    EVP_MD_CTX *mctx = alen > 0 ? EVP_MD_CTX_new() : NULL;
    ok = mctx && EVP_DigestVerifyInit(mctx, NULL, md, NULL, pkey) == 1 &&
         EVP_DigestVerify(mctx, sig, sig_len, abuf, (size_t)alen) == 1;
    EVP_MD_CTX_free(mctx);
    OPENSSL_free(abuf);
    return ok;
}

/* FAST_ACCEPTED with *signer set, FAST_REFUSED with the reason of the
 * signer's chain verification (a good signature from an untrusted
 * certificate, which the full path would refuse for the same reason), or
 * FAST_UNDECIDED for the full path to decide. */
static fast_verdict_t fast_verify(const lmdm_trust_t *t, lmdm_verify_cache_t *cache, const unsigned char *der,
                                  long der_len, const void *body, size_t body_len, time_t now, X509 **signer,
                                  char *reason, size_t reasonlen)
{
    fast_verdict_t verdict = FAST_UNDECIDED;
    STACK_OF(X509) *certs = NULL;
    const unsigned char *p = der;
    fsig_ci *ci = (fsig_ci *)ASN1_item_d2i(NULL, &p, der_len, ASN1_ITEM_rptr(fsig_ci));
    if (!ci || p != der + der_len || OBJ_obj2nid(ci->type) != NID_pkcs7_signed) goto out;
    const fsig_sd *sd = ci->sd;
    if (OBJ_obj2nid(sd->eci->type) != NID_pkcs7_data || sd->eci->content || sd->crls ||
        sk_fsig_si_num(sd->signers) != 1)
        goto out;
    const fsig_si *si = sk_fsig_si_value(sd->signers, 0);
    const EVP_MD *md = fast_digest(sd, si);
    if (!md || si->unsigned_attrs || (si->signed_attrs && sk_X509_ATTRIBUTE_num(si->signed_attrs) == 0))
        goto out;
    certs = fast_certs(cache, sd->certs);
    X509 *cert = certs ? fast_signer(si->sid, certs) : NULL;
    if (!cert || !fast_signature_ok(si, md, X509_get0_pubkey(cert), body, body_len)) goto out;
    char treason[64]; /* as the full path reports it */
    if (lmdm_trust_verify_cached(t, cache, cert, certs, now, treason, sizeof(treason)) != 0) {
        set_reason(reason, reasonlen, treason);
        verdict = FAST_REFUSED;
        goto out;
    }
    if (X509_up_ref(cert) != 1) goto out;
    *signer = cert;
    verdict = FAST_ACCEPTED;
out:
    sk_X509_pop_free(certs, X509_free);
    ASN1_item_free((ASN1_VALUE *)ci, ASN1_ITEM_rptr(fsig_ci));
    ERR_clear_error();
    return verdict;
}

/* ---- Mdm-Signature: the full CMS path ---- */

static int full_verify(const lmdm_trust_t *t, lmdm_verify_cache_t *cache, const unsigned char *der,
                       long der_len, const void *body, size_t body_len, time_t now, X509 **signer,
                       char *reason, size_t reasonlen)
{
    int rv = LMDM_ERR_INVALID;
    const char *why = "malformed signature";
    BIO *content = NULL;
    STACK_OF(X509) *certs = NULL, *signers = NULL;
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, der_len);
    if (!cms || p != der + der_len) goto out; /* trailing bytes are not part of any signature */
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        why = "not a SignedData signature";
        goto out;
    }
    if (CMS_is_detached(cms) != 1) {
        why = "signature is not detached";
        goto out;
    }
    STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
    if (!sis || sk_CMS_SignerInfo_num(sis) != 1) {
        why = "expected exactly one signer";
        goto out;
    }
    /* Other certificates in the message may be intermediates; only the store
     * decides what is trusted. */
    certs = CMS_get1_certs(cms);
    if (!certs || sk_X509_num(certs) == 0) {
        why = "no signer certificate";
        goto out;
    }
    /* The body is read through a null filter in front of the memory BIO:
     * OpenSSL 3.0's CMS_verify copies a bare memory BIO into a temporary one
     * and leaks that copy when the message names a digest it cannot set up,
     * which a client could repeat on every request. With a filter on top it
     * reads our BIO directly. */
    BIO *mem = BIO_new_mem_buf(body_len ? body : "", (int)body_len);
    content = mem ? BIO_new(BIO_f_null()) : NULL;
    if (!content) {
        BIO_free(mem);
        goto out;
    }
    BIO_push(content, mem);
    /* The signature itself is checked here; the signer's certificate is
     * checked right after with lmdm_trust_verify(), which takes `now` through
     * a per-call context. Handing CMS_verify the shared store instead would
     * mean setting the verification time on shared state. */
    if (CMS_verify(cms, NULL, NULL, content, NULL, CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) != 1) {
        why = "signature does not match";
        goto out;
    }
    signers = CMS_get0_signers(cms);
    if (!signers || sk_X509_num(signers) != 1) {
        why = "expected exactly one signer";
        goto out;
    }
    X509 *cert = sk_X509_value(signers, 0);
    char treason[64];
    if (lmdm_trust_verify_cached(t, cache, cert, certs, now, treason, sizeof(treason)) != 0) {
        set_reason(reason, reasonlen, treason);
        why = NULL;
        goto out;
    }
    if (X509_up_ref(cert) != 1) goto out;
    *signer = cert;
    rv = 0;
    why = NULL;
out:
    if (why) set_reason(reason, reasonlen, why);
    ERR_clear_error();
    sk_X509_free(signers); /* CMS_get0_signers: the certificates belong to cms */
    sk_X509_pop_free(certs, X509_free);
    BIO_free_all(content);
    CMS_ContentInfo_free(cms);
    return rv;
}

int lmdm_trust_verify_mdm_signature(const lmdm_trust_t *t, const char *header, const void *body,
                                    size_t body_len, time_t now, X509 **signer, char *reason,
                                    size_t reasonlen)
{
    return lmdm_trust_verify_mdm_signature_cached(t, NULL, header, body, body_len, now, signer, reason, reasonlen);
}

int lmdm_trust_verify_mdm_signature_cached(const lmdm_trust_t *t, lmdm_verify_cache_t *cache,
                                           const char *header, const void *body, size_t body_len, time_t now,
                                           X509 **signer, char *reason, size_t reasonlen)
{
    if (signer) *signer = NULL;
    if (!t || !signer || (!body && body_len) || body_len > INT32_MAX) {
        set_reason(reason, reasonlen, "invalid argument");
        return LMDM_ERR_INVALID;
    }
    if (!header || !*header) {
        set_reason(reason, reasonlen, "no signature");
        return LMDM_ERR_INVALID;
    }
    size_t hlen = strnlen(header, MDM_SIG_MAX_HEADER + 1);
    if (hlen > MDM_SIG_MAX_HEADER) {
        set_reason(reason, reasonlen, "signature too large");
        return LMDM_ERR_INVALID;
    }
    unsigned char *der = NULL;
    long der_len = b64_decode(header, hlen, 1, 1, MDM_SIG_MAX_DER, &der);
    if (der_len <= 0) {
        free(der);
        set_reason(reason, reasonlen, "malformed signature");
        return LMDM_ERR_INVALID;
    }
    int rv;
    fast_verdict_t fast =
        cache ? fast_verify(t, cache, der, der_len, body, body_len, now, signer, reason, reasonlen)
              : FAST_UNDECIDED;
    if (fast == FAST_ACCEPTED) {
        cache->fast_accepted++;
        rv = 0;
    } else if (fast == FAST_REFUSED) {
        rv = LMDM_ERR_INVALID;
    } else {
        rv = full_verify(t, cache, der, der_len, body, body_len, now, signer, reason, reasonlen);
    }
    free(der);
    return rv;
}

int lmdm_identity_parse_client_cert(const char *header, X509 **out)
{
    if (out) *out = NULL;
    if (!header || !out) return LMDM_ERR_INVALID;
    size_t len = strnlen(header, CLIENT_CERT_MAX_HEADER + 1);
    if (len > CLIENT_CERT_MAX_HEADER) return LMDM_ERR_INVALID;
    /* An sf-binary item (RFC 8941 3.3.5): ':' base64 ':'. Surrounding spaces
     * are trimmed as the structured-field parser does; parameters and any
     * other item type are refused. */
    size_t b = 0, e = len;
    while (b < e && header[b] == ' ')
        b++;
    while (e > b && header[e - 1] == ' ')
        e--;
    if (e - b < 3 || header[b] != ':' || header[e - 1] != ':') return LMDM_ERR_INVALID;
    unsigned char *der = NULL;
    /* RFC 8941 asks parsers to accept base64 without its '=' padding. */
    long n = b64_decode(header + b + 1, e - b - 2, 0, 0, CLIENT_CERT_MAX_DER, &der);
    if (n <= 0) {
        free(der);
        return LMDM_ERR_INVALID;
    }
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, n);
    int ok = x && p == der + n;
    free(der);
    ERR_clear_error();
    if (!ok) {
        X509_free(x);
        return LMDM_ERR_INVALID;
    }
    *out = x;
    return 0;
}

void lmdm_identity_fingerprint(X509 *cert, char out[LMDM_FINGERPRINT_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    out[0] = '\0';
    if (!cert || X509_digest(cert, EVP_sha256(), md, &n) != 1 || n * 2 != LMDM_FINGERPRINT_LEN) {
        ERR_clear_error();
        return;
    }
    for (unsigned int i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[LMDM_FINGERPRINT_LEN] = '\0';
}
