/* Per-tenant token buckets for the tenant API. One limiter serves every
 * worker thread (a tenant's requests may arrive on any of them), behind one
 * short mutex. */
#ifndef LMDM_RATELIMIT_H
#define LMDM_RATELIMIT_H

#include <stdint.h>

typedef struct lmdm_ratelimit lmdm_ratelimit_t;

/** rate: tokens added per second; burst: bucket size. */
lmdm_ratelimit_t *lmdm_ratelimit_new(int rate, int burst);
void lmdm_ratelimit_free(lmdm_ratelimit_t *rl);

/** Take one token for `key` at time now_ns (monotonic). Returns 0 if allowed,
 * else the whole seconds to wait before a token is available (>= 1). */
int lmdm_ratelimit_take(lmdm_ratelimit_t *rl, int64_t key, uint64_t now_ns);

#endif
