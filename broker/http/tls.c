/* OpenSSL server context with ALPN selection. */
#include "lmdm/tls.h"

#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

/* ALPN wire format: length-prefixed protocol names, in our order of preference. */
static const unsigned char alpn_h2[] = "\x02h2";
static const unsigned char alpn_h1[] = "\x08http/1.1";

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    const unsigned char *prefs[] = {alpn_h2, alpn_h1};
    for (size_t i = 0; i < 2; i++) {
        for (unsigned int off = 0; off < inlen;) {
            unsigned int n = in[off];
            if (off + 1 + n > inlen) return SSL_TLSEXT_ERR_NOACK; /* malformed list */
            if (n == prefs[i][0] && memcmp(in + off + 1, prefs[i] + 1, n) == 0) {
                *out = in + off + 1;
                *outlen = (unsigned char)n;
                return SSL_TLSEXT_ERR_OK;
            }
            off += 1 + n;
        }
    }
    return SSL_TLSEXT_ERR_NOACK; /* no common protocol: go on without ALPN (HTTP/1.1) */
}

static void openssl_reason(char *errbuf, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char reason[256] = "unknown error";
    if (e) ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    snprintf(errbuf, errlen, "%s %s: %s", what, file, reason);
}

SSL_CTX *lmdm_tls_server_ctx(const char *cert_file, const char *key_file, char *errbuf, size_t errlen)
{
    if (!cert_file || !*cert_file || !key_file || !*key_file) {
        snprintf(errbuf, errlen, "tls_cert and tls_key must both be set for listen_tls");
        return NULL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        openssl_reason(errbuf, errlen, "creating TLS context", "");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Smaller per-connection buffers: idle connections should cost little. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        openssl_reason(errbuf, errlen, "loading certificate", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        openssl_reason(errbuf, errlen, "loading private key", key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        openssl_reason(errbuf, errlen, "private key does not match certificate", cert_file);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

const char *lmdm_tls_alpn(const SSL *ssl)
{
    const unsigned char *p;
    unsigned int n;
    SSL_get0_alpn_selected(ssl, &p, &n);
    if (n == 2 && memcmp(p, "h2", 2) == 0) return "h2";
    if (n == 8 && memcmp(p, "http/1.1", 8) == 0) return "http/1.1";
    return NULL;
}

static int accept_any(int preverify_ok, X509_STORE_CTX *x)
{
    (void)preverify_ok;
    (void)x;
    return 1; /* recorded, not enforced here: see lmdm_tls_request_client_cert */
}

void lmdm_tls_request_client_cert(SSL_CTX *ctx, X509 *ca_names)
{
    static const unsigned char sid_ctx[] = "lmdm";
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any);
    /* Session resumption with client certificates needs a session id context. */
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    if (ca_names) SSL_CTX_add_client_CA(ctx, ca_names);
}
