/* Which device identity a request carries, and whether the broker trusts it.
 *
 * In order of preference: the Mdm-Signature header (a detached CMS signature
 * over this very body), the TLS client certificate (mTLS), or an RFC 9440
 * Client-Cert header — believed only from a configured trusted proxy. */
#ifndef LMDM_MDM_AUTH_H
#define LMDM_MDM_AUTH_H

#include "lmdm/http.h"
#include "lmdm/identity.h"

typedef enum { LMDM_AUTH_SIGNATURE = 1, LMDM_AUTH_MTLS, LMDM_AUTH_PROXY } lmdm_auth_via_t;

/** Establish the identity of a device request at time `now`. Returns 0 and the
 * certificate's SHA-256 fingerprint in fpr; or 401 (no identity at all) / 403
 * (an identity the broker does not trust, or a bad signature) / 503 (no CA
 * configured) with a short reason. Call before any asynchronous step (it reads
 * the TLS peer certificate). */
int lmdm_mdm_auth(const lmdm_http_req_t *req, time_t now, char fpr[LMDM_FINGERPRINT_LEN + 1],
                  lmdm_auth_via_t *via, char *reason, size_t reasonlen);

#endif
