/* Last-seen bookkeeping, batched: a device's poll only marks it in a per-worker
 * set; every `flush_ms` one UPDATE writes the whole set. So an Idle poll costs
 * one database round trip and no commit of its own.
 * One per worker; its thread only. */
#ifndef LMDM_SEEN_H
#define LMDM_SEEN_H

#include "lmdm/server.h"

typedef struct lmdm_seen lmdm_seen_t;

lmdm_seen_t *lmdm_seen_new(lmdm_worker_t *w, int flush_ms);
/** Write what is pending (if the pool can take it) and free. NULL is a no-op. */
void lmdm_seen_free(lmdm_seen_t *s);
/** Note that the device with this key was seen now. */
void lmdm_seen_mark(lmdm_seen_t *s, const char *device_key);
/** Number of keys waiting for the next flush. */
size_t lmdm_seen_pending(const lmdm_seen_t *s);

#endif
