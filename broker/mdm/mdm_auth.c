/* Device identity of a request: Mdm-Signature, mTLS or a trusted proxy's Client-Cert. */
#include "lmdm/mdm_auth.h"

#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "lmdm/app.h"
#include "lmdm/server.h"

static int from_trusted_proxy(const lmdm_app_t *app, const lmdm_http_req_t *req)
{
    char ip[64];
    lmdm_http_req_peer_ip(req, ip, sizeof(ip));
    for (int i = 0; i < app->ntrusted_proxies; i++)
        if (strcmp(app->trusted_proxies[i], ip) == 0) return 1;
    return 0;
}

int lmdm_mdm_auth(const lmdm_http_req_t *req, time_t now, char fpr[LMDM_FINGERPRINT_LEN + 1],
                  lmdm_auth_via_t *via, char *reason, size_t reasonlen)
{
    const lmdm_app_t *app = req->worker->app;
    if (!app || !app->trust) {
        snprintf(reason, reasonlen, "no device CA configured");
        return 503;
    }
    char why[128] = "";
    const char *sig = lmdm_http_req_header(req, "mdm-signature");
    if (sig) {
        X509 *signer = NULL;
        if (lmdm_trust_verify_mdm_signature_cached(app->trust, req->worker->vcache, sig, req->body, req->body_len,
                                                   now, &signer, why, sizeof(why)) != 0) {
            snprintf(reason, reasonlen, "Mdm-Signature refused: %s", why);
            return 403;
        }
        lmdm_identity_fingerprint(signer, fpr);
        X509_free(signer);
        *via = LMDM_AUTH_SIGNATURE;
        return 0;
    }
    X509 *peer = lmdm_http_req_peer_cert(req);
    if (peer) {
        if (lmdm_trust_verify_cached(app->trust, req->worker->vcache, peer, lmdm_http_req_peer_chain(req), now, why,
                                     sizeof(why)) != 0) {
            snprintf(reason, reasonlen, "client certificate refused: %s", why);
            return 403;
        }
        lmdm_identity_fingerprint(peer, fpr);
        *via = LMDM_AUTH_MTLS;
        return 0;
    }
    const char *fwd = lmdm_http_req_header(req, "client-cert");
    if (fwd && from_trusted_proxy(app, req)) {
        X509 *cert = NULL;
        if (lmdm_identity_parse_client_cert(fwd, &cert) != 0) {
            snprintf(reason, reasonlen, "Client-Cert header is not a certificate");
            return 403;
        }
        int rv = lmdm_trust_verify(app->trust, cert, NULL, now, why, sizeof(why));
        if (rv == 0) lmdm_identity_fingerprint(cert, fpr);
        X509_free(cert);
        if (rv != 0) {
            snprintf(reason, reasonlen, "forwarded client certificate refused: %s", why);
            return 403;
        }
        *via = LMDM_AUTH_PROXY;
        return 0;
    }
    snprintf(reason, reasonlen, fwd ? "Client-Cert header from an untrusted address" : "no device identity");
    return fwd ? 403 : 401;
}
