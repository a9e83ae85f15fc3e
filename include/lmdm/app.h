/* Process-wide, read-only state the handlers share: configuration, the broker
 * CA and the device trust store. Built once by `lmdm serve` before the workers
 * start; never modified afterwards, so every worker reads it without locks. */
#ifndef LMDM_APP_H
#define LMDM_APP_H

#include "lmdm/ca.h"
#include "lmdm/config.h"
#include "lmdm/identity.h"
#include "lmdm/ratelimit.h"
#include "lmdm/secrets.h"

#define LMDM_MAX_TRUSTED_PROXIES 16

typedef struct lmdm_app {
    const lmdm_config_t *cfg;
    lmdm_ca_t *ca;        /* NULL when ca_cert/ca_key are not configured */
    lmdm_trust_t *trust;  /* NULL without a CA: device endpoints answer 503 */
    char trusted_proxies[LMDM_MAX_TRUSTED_PROXIES][64]; /* numeric addresses */
    int ntrusted_proxies;
    const lmdm_secrets_t *secrets; /* NULL without secret_key: the tenant API and owner pages answer 503 */
    lmdm_ratelimit_t *ratelimit;   /* per-tenant token buckets of the tenant API */
} lmdm_app_t;

#endif
