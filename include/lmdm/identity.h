/* Device identity: which certificate a device presented, and whether the broker
 * trusts it. Three ways in (issue 3): the TLS client certificate (mTLS), the
 * Mdm-Signature header (base64 detached CMS SignedData over the request body),
 * or an RFC 9440 Client-Cert header from a configured trusted proxy.
 *
 * Thread rules: an lmdm_trust_t is read-only after creation and shared by all
 * workers. */
#ifndef LMDM_IDENTITY_H
#define LMDM_IDENTITY_H

#include <openssl/x509.h>
#include "lmdm/common.h"

typedef struct lmdm_trust lmdm_trust_t;

#define LMDM_FINGERPRINT_LEN 64 /* SHA-256 as lower-case hex, without NUL */

/** Trusted CAs for device identities: the broker CA plus every certificate in
 * the optional PEM bundle `extra_bundle` (may be NULL or ""). */
lmdm_trust_t *lmdm_trust_new(X509 *broker_ca, const char *extra_bundle, char *errbuf, size_t errlen);
void lmdm_trust_free(lmdm_trust_t *t);

/** The X509_STORE (borrowed) for TLS client verification. */
X509_STORE *lmdm_trust_store(const lmdm_trust_t *t);

/** Verify a device certificate (with optional intermediates) at time `now`:
 * chain to a trusted CA, within validity, usable for client auth or signing.
 * Returns 0, or LMDM_ERR_INVALID with a short reason ("expired", "unknown CA",
 * ...) in reason. */
int lmdm_trust_verify(const lmdm_trust_t *t, X509 *cert, STACK_OF(X509) *chain, time_t now, char *reason,
                      size_t reasonlen) LMDM_MUSTCHECK;

/** Verify an Mdm-Signature header value against `body`: base64 decode (spaces
 * and newlines ignored, at most 64 KiB), parse CMS SignedData, check the
 * detached signature over body and the signer certificate with
 * lmdm_trust_verify. On success *signer is the signer certificate (the caller
 * frees it with X509_free). */
int lmdm_trust_verify_mdm_signature(const lmdm_trust_t *t, const char *header, const void *body,
                                    size_t body_len, time_t now, X509 **signer, char *reason,
                                    size_t reasonlen) LMDM_MUSTCHECK;

/** A per-worker memo of certificates that passed lmdm_trust_verify recently, so a
 * device polling every few seconds does not pay for a full chain verification
 * on each request (the signature over each body is still checked every time).
 * An entry is trusted for LMDM_VERIFY_CACHE_TTL seconds and never past the
 * certificate's notAfter. It also holds decoded Mdm-Signature certificates
 * (see below): up to a few thousand, a few KiB each. Not thread-safe: one per
 * worker thread. */
typedef struct lmdm_verify_cache lmdm_verify_cache_t;
#define LMDM_VERIFY_CACHE_TTL 300

lmdm_verify_cache_t *lmdm_verify_cache_new(void);
void lmdm_verify_cache_free(lmdm_verify_cache_t *c);

/** lmdm_trust_verify_mdm_signature with a cache (may be NULL). With a cache,
 * the signer's chain verification is memoised, and a fast path decodes each
 * device certificate once (kept in the cache, keyed by the SHA-256 of its
 * bytes) instead of on every request: it handles the usual shape (detached
 * id-data, one signer, SHA-1/256/384/512, RSA PKCS#1 v1.5 or ECDSA, the usual
 * signed attributes or none) and hands everything else, and every signature
 * that does not verify, to the full CMS path, so it accepts and refuses
 * exactly what lmdm_trust_verify_mdm_signature does. */
int lmdm_trust_verify_mdm_signature_cached(const lmdm_trust_t *t, lmdm_verify_cache_t *cache,
                                           const char *header, const void *body, size_t body_len, time_t now,
                                           X509 **signer, char *reason, size_t reasonlen) LMDM_MUSTCHECK;

/** How many signatures the fast path of lmdm_trust_verify_mdm_signature_cached
 * accepted with this cache (0 for NULL); for tests and metrics. */
unsigned long lmdm_verify_cache_fast_accepted(const lmdm_verify_cache_t *c);

/** lmdm_trust_verify with a cache (may be NULL). */
int lmdm_trust_verify_cached(const lmdm_trust_t *t, lmdm_verify_cache_t *cache, X509 *cert,
                             STACK_OF(X509) * chain, time_t now, char *reason,
                             size_t reasonlen) LMDM_MUSTCHECK;

/** Parse an RFC 9440 Client-Cert header (a structured-field byte sequence,
 * ":<base64 DER>:"). Returns 0 and *out (caller frees) or LMDM_ERR_INVALID. */
int lmdm_identity_parse_client_cert(const char *header, X509 **out) LMDM_MUSTCHECK;

/** SHA-256 of the DER certificate as lower-case hex into out (65 bytes). */
void lmdm_identity_fingerprint(X509 *cert, char out[LMDM_FINGERPRINT_LEN + 1]);

#endif
