/* TLS server contexts (OpenSSL): TLS 1.2+, ALPN "h2" then "http/1.1". */
#ifndef LMDM_TLS_H
#define LMDM_TLS_H

#include <openssl/ssl.h>
#include "lmdm/common.h"

/** Build a server context from a PEM certificate chain and key. Returns NULL
 * with a message (file names and OpenSSL's reason) in errbuf on failure.
 * The caller owns the result (SSL_CTX_free). */
SSL_CTX *lmdm_tls_server_ctx(const char *cert_file, const char *key_file, char *errbuf, size_t errlen);

/** Ask TLS clients for a certificate without failing the handshake when it is
 * missing or unverifiable: the device endpoints verify it against the trust
 * store themselves and answer 401/403 with a reason, which a TLS alert cannot
 * carry. `ca_names` (may be NULL) is the list of acceptable CA names sent to
 * the client. */
void lmdm_tls_request_client_cert(SSL_CTX *ctx, X509 *ca_names);

/** The ALPN protocol selected on an established connection: "h2",
 * "http/1.1", or NULL when the client offered none we speak. */
const char *lmdm_tls_alpn(const SSL *ssl);

#endif
