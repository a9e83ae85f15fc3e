/* The device's cryptography: unwrap the signed enrollment profile, unpack the
 * PKCS#12 identity, sign request bodies for the Mdm-Signature header. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/x509_vfy.h>

#include "sim.h"

/* The first OpenSSL error as text (and clear the queue). */
static const char *ossl_err(void)
{
    static char buf[256];
    unsigned long e = ERR_get_error();
    if (!e) return "no OpenSSL detail";
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

static int load_store(X509_STORE *store, const char *const *ca_files, char *err, size_t errlen)
{
    for (size_t i = 0; ca_files && ca_files[i]; i++) {
        if (!*ca_files[i]) continue;
        if (X509_STORE_load_file(store, ca_files[i]) != 1) {
            sim_errf(err, errlen, "%s: cannot load CA certificates (%s)", ca_files[i], ossl_err());
            return -1;
        }
    }
    return 0;
}

int sim_profile_unwrap(const unsigned char *body, size_t len, const char *const *ca_files, bool require_trust,
                       plist_t *plist_out, int *trust, X509 **signer, char *err, size_t errlen)
{
    int rc = -1;
    CMS_ContentInfo *cms = NULL;
    BIO *in = NULL, *out = NULL;
    X509_STORE *store = NULL;
    *plist_out = NULL;
    *trust = -1;
    if (signer) *signer = NULL;

    /* Some servers hand out unsigned profiles; a device installs them too
     * (as "Not Verified"). */
    plist_t bare = sim_plist_parse(body, len);
    if (bare) {
        if (require_trust) {
            sim_errf(err, errlen, "profile is not signed");
            plist_free(bare);
            return -1;
        }
        *plist_out = bare;
        return 0;
    }
    in = BIO_new_mem_buf(body, (int)len);
    cms = in ? d2i_CMS_bio(in, NULL) : NULL;
    if (!cms) {
        sim_errf(err, errlen, "profile is neither a plist nor DER CMS (%s)", ossl_err());
        goto out;
    }
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        sim_errf(err, errlen, "profile CMS is not SignedData");
        goto out;
    }
    /* First the signature over the content, whoever signed it. */
    out = BIO_new(BIO_s_mem());
    if (CMS_verify(cms, NULL, NULL, NULL, out, CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) != 1) {
        sim_errf(err, errlen, "profile signature does not verify (%s)", ossl_err());
        goto out;
    }
    *trust = 0;
    /* Then whether the signer chains to a CA we were told to trust. A device
     * installs an untrusted signed profile too (as "Not Verified"), so that
     * is an error only when trust is required. */
    if (ca_files && ca_files[0]) {
        store = X509_STORE_new();
        if (!store || load_store(store, ca_files, err, errlen) != 0) goto out;
        /* The broker signs with its CA certificate itself, whose key usage
         * is not S/MIME's: check the chain, not the purpose. */
        X509_STORE_set_purpose(store, X509_PURPOSE_ANY);
        BIO *sink = BIO_new(BIO_s_mem());
        int ok = CMS_verify(cms, NULL, store, NULL, sink, CMS_BINARY);
        BIO_free(sink);
        if (ok == 1) {
            *trust = 1;
        } else if (require_trust) {
            sim_errf(err, errlen, "profile signer does not chain to the given CA file(s) (%s)", ossl_err());
            goto out;
        }
        ERR_clear_error();
    }
    char *data = NULL;
    long n = BIO_get_mem_data(out, &data);
    plist_t p = sim_plist_parse(data, (size_t)n);
    if (!p) {
        sim_errf(err, errlen, "signed profile content is not a property list");
        goto out;
    }
    *plist_out = p;
    if (signer) {
        STACK_OF(X509) *signers = CMS_get0_signers(cms);
        if (signers && sk_X509_num(signers) > 0) {
            *signer = sk_X509_value(signers, 0);
            X509_up_ref(*signer);
        }
        sk_X509_free(signers);
    }
    rc = 0;
out:
    X509_STORE_free(store);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    BIO_free(out);
    return rc;
}

int sim_p12_to_pem(const unsigned char *p12der, size_t len, const char *password, char **pem, char *err,
                   size_t errlen)
{
    int rc = -1;
    PKCS12 *p12 = NULL;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *ca = NULL;
    BIO *out = NULL;
    const unsigned char *p = p12der;

    p12 = d2i_PKCS12(NULL, &p, (long)len);
    if (!p12) {
        sim_errf(err, errlen, "identity payload is not a PKCS#12 (%s)", ossl_err());
        goto out;
    }
    if (PKCS12_parse(p12, password ? password : "", &key, &cert, &ca) != 1) {
        /* Old-style PKCS#12 (RC2/3DES) needs the legacy provider. */
        ERR_clear_error();
        /* Loaded once for the process (kept, not unloaded: later profiles may
         * need them too). Loading one provider explicitly turns off the
         * implicit default provider, so load both. */
        static OSSL_PROVIDER *legacy, *deflt;
        if (!legacy) {
            legacy = OSSL_PROVIDER_load(NULL, "legacy");
            deflt = OSSL_PROVIDER_load(NULL, "default");
        }
        if (legacy && deflt && PKCS12_parse(p12, password ? password : "", &key, &cert, &ca) == 1) {
            /* fine */
        } else {
            sim_errf(err, errlen, "cannot open the PKCS#12 with its Password (%s)", ossl_err());
            goto out;
        }
    }
    if (!key || !cert) {
        sim_errf(err, errlen, "PKCS#12 lacks a private key or a certificate");
        goto out;
    }
    if (X509_check_private_key(cert, key) != 1) {
        sim_errf(err, errlen, "PKCS#12 key does not match its certificate");
        goto out;
    }
    out = BIO_new(BIO_s_mem());
    if (!out || PEM_write_bio_PrivateKey(out, key, NULL, NULL, 0, NULL, NULL) != 1 ||
        PEM_write_bio_X509(out, cert) != 1) {
        sim_errf(err, errlen, "cannot write the identity as PEM (%s)", ossl_err());
        goto out;
    }
    for (int i = 0; ca && i < sk_X509_num(ca); i++)
        PEM_write_bio_X509(out, sk_X509_value(ca, i));
    char *data = NULL;
    long n = BIO_get_mem_data(out, &data);
    *pem = malloc((size_t)n + 1);
    if (!*pem) abort();
    memcpy(*pem, data, (size_t)n);
    (*pem)[n] = '\0';
    rc = 0;
out:
    BIO_free(out);
    sk_X509_pop_free(ca, X509_free);
    X509_free(cert);
    EVP_PKEY_free(key);
    PKCS12_free(p12);
    return rc;
}

int sim_pem_identity(const char *pem, EVP_PKEY **key, X509 **cert, char *err, size_t errlen)
{
    *key = NULL;
    *cert = NULL;
    BIO *b = BIO_new_mem_buf(pem, -1);
    if (!b) abort();
    *key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    b = BIO_new_mem_buf(pem, -1);
    *cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!*key || !*cert || X509_check_private_key(*cert, *key) != 1) {
        sim_errf(err, errlen, "identity PEM needs a private key and its certificate (%s)", ossl_err());
        EVP_PKEY_free(*key);
        X509_free(*cert);
        *key = NULL;
        *cert = NULL;
        return -1;
    }
    return 0;
}

char *sim_mdm_signature(EVP_PKEY *key, X509 *cert, const void *body, size_t len, char *err, size_t errlen)
{
    char *b64 = NULL;
    BIO *in = BIO_new_mem_buf(body, (int)len);
    CMS_ContentInfo *cms = in ? CMS_sign(cert, key, NULL, in, CMS_DETACHED | CMS_BINARY) : NULL;
    unsigned char *der = NULL;
    int n = cms ? i2d_CMS_ContentInfo(cms, &der) : -1;
    if (n <= 0)
        sim_errf(err, errlen, "cannot sign the request body (%s)", ossl_err());
    else
        b64 = sim_b64(der, (size_t)n);
    OPENSSL_free(der);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return b64;
}

int sim_mdm_signature_verify(const char *header, const void *body, size_t len, X509 *ca, char *err,
                             size_t errlen)
{
    int rc = -1;
    size_t n = 0;
    unsigned char *der = sim_unb64(header, &n);
    const unsigned char *p = der;
    CMS_ContentInfo *cms = der ? d2i_CMS_ContentInfo(NULL, &p, (long)n) : NULL;
    BIO *content = BIO_new_mem_buf(body, (int)len);
    X509_STORE *store = X509_STORE_new();
    if (!cms) {
        sim_errf(err, errlen, "signature is not base64 DER CMS");
        goto out;
    }
    X509_STORE_add_cert(store, ca);
    X509_STORE_set_purpose(store, X509_PURPOSE_ANY);
    if (CMS_verify(cms, NULL, store, content, NULL, CMS_DETACHED | CMS_BINARY) != 1) {
        sim_errf(err, errlen, "signature does not verify (%s)", ossl_err());
        goto out;
    }
    rc = 0;
out:
    X509_STORE_free(store);
    BIO_free(content);
    CMS_ContentInfo_free(cms);
    free(der);
    return rc;
}
