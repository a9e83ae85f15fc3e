/* Device identity verification: the trust store, certificate checks at a
 * given time, the Mdm-Signature header and the RFC 9440 Client-Cert header.
 *
 * Thread safety: the X509_STORE is shared by every worker and never modified
 * after lmdm_trust_new(). Each verification gets its own X509_STORE_CTX, whose
 * verification parameters (time, purpose) are a private copy, so no call
 * changes anything another thread can see. */
#include "lmdm/identity.h"

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
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

struct lmdm_verify_cache {
    vslot_t slots[VCACHE_SLOTS];
};

lmdm_verify_cache_t *lmdm_verify_cache_new(void) { return lmdm_xcalloc(1, sizeof(lmdm_verify_cache_t)); }

void lmdm_verify_cache_free(lmdm_verify_cache_t *c) { free(c); }

static vslot_t *vslot(lmdm_verify_cache_t *c, X509 *cert, unsigned char md[32])
{
    unsigned int n = 0;
    if (X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != 32) {
        ERR_clear_error();
        return NULL;
    }
    return &c->slots[(md[0] | (md[1] << 8)) & (VCACHE_SLOTS - 1)];
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

int lmdm_trust_verify_mdm_signature(const lmdm_trust_t *t, const char *header, const void *body,
                                    size_t body_len, time_t now, X509 **signer, char *reason,
                                    size_t reasonlen)
{
    return lmdm_trust_verify_mdm_signature_cached(t, NULL, header, body, body_len, now, signer, reason, reasonlen);
}

int lmdm_trust_verify_mdm_signature_cached(const lmdm_trust_t *t, lmdm_verify_cache_t *cache, const char *header,
                                           const void *body, size_t body_len, time_t now, X509 **signer,
                                           char *reason, size_t reasonlen)
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
