/* The broker CA: issues device identities and signs enrollment profiles.
 *
 * Thread rules: a loaded lmdm_ca_t is read-only and may be used from every
 * worker thread at once (OpenSSL signs with a const key). */
#ifndef LMDM_CA_H
#define LMDM_CA_H

#include <openssl/x509.h>
#include "lmdm/common.h"

typedef struct lmdm_ca lmdm_ca_t;

/** Create a new CA: EC P-256 key and a self-signed certificate (CN = `name`,
 * `days` valid, basicConstraints CA:TRUE, keyUsage keyCertSign+cRLSign+
 * digitalSignature). Writes key_path with mode 0600 (refuses to overwrite
 * either file) and cert_path with 0644. Returns 0 or an error with errbuf. */
int lmdm_ca_init_files(const char *cert_path, const char *key_path, const char *name, int days,
                       char *errbuf, size_t errlen) LMDM_MUSTCHECK;

/** Load a CA. Refuses a key file readable by group or others (names the file
 * and its mode), a certificate that is not a CA, or a key that does not match. */
lmdm_ca_t *lmdm_ca_load(const char *cert_path, const char *key_path, char *errbuf, size_t errlen);
void lmdm_ca_free(lmdm_ca_t *ca);

/** The CA certificate (borrowed; lives as long as ca). */
X509 *lmdm_ca_cert(const lmdm_ca_t *ca);

/** Issue a device identity: a fresh RSA-2048 key and a certificate signed by the
 * CA (CN = cn, `days` valid, clientAuth + digitalSignature/keyEncipherment),
 * packed as a PKCS#12 (DER, LMDM_P12_MODERN: AES-256 + SHA-256 MAC) protected
 * by `password`, with the CA certificate included. *der is malloc'd; the
 * caller frees it. Generating the RSA key takes tens of milliseconds. */
int lmdm_ca_issue_p12(const lmdm_ca_t *ca, const char *cn, const char *password, int days,
                      unsigned char **der, size_t *der_len, char *errbuf, size_t errlen) LMDM_MUSTCHECK;

/** How an issued PKCS#12 is encrypted and MACed. */
typedef enum {
    /* PBES2 (PBKDF2 with HMAC-SHA-256, AES-256-CBC) for key and certificates,
     * HMAC-SHA-256 MAC: OpenSSL 3's default. Older Apple systems (reported up
     * to iOS 17 / macOS 13) refuse it as a "wrong password". */
    LMDM_P12_MODERN = 0,
    /* pbeWithSHA1And3-KeyTripleDES-CBC for key and certificates, HMAC-SHA-1
     * MAC: what every iOS and macOS version imports. Used for enrollment
     * profiles, where the password travels next to the PKCS#12 anyway, so its
     * cipher protects nothing that TLS does not (docs/enrollment.md). */
    LMDM_P12_APPLE_COMPAT = 1,
} lmdm_p12_format_t;

/** lmdm_ca_issue_p12 with an explicit PKCS#12 format. */
int lmdm_ca_issue_p12_format(const lmdm_ca_t *ca, const char *cn, const char *password, int days,
                             lmdm_p12_format_t format, unsigned char **der, size_t *der_len, char *errbuf,
                             size_t errlen) LMDM_MUSTCHECK;

/** Sign `data` as CMS SignedData with the content attached (for .mobileconfig),
 * signer = the CA certificate. *der is malloc'd; the caller frees it. */
int lmdm_ca_sign_attached(const lmdm_ca_t *ca, const unsigned char *data, size_t len, unsigned char **der,
                          size_t *der_len) LMDM_MUSTCHECK;

#endif
