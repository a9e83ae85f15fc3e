/* Waking devices: the broker LISTENs on the PostgreSQL channel `lmdm_push`
 * (a trigger on the command queue notifies it with "token magic topic") and
 * sends an APNs push for each notification. On (re)connecting it also pushes
 * every device that has commands waiting, so nothing queued while the listener
 * was away stays asleep.
 *
 * Runs on one worker's event loop (the one that owns the APNs client); all
 * calls on that thread. Created before the worker starts, freed after it stops. */
#ifndef LMDM_PUSH_H
#define LMDM_PUSH_H

#include "lmdm/server.h"

typedef struct lmdm_push lmdm_push_t;

/** Start listening with a dedicated connection (not from the pool: LISTEN is
 * per session). `w->apns` must be set. */
lmdm_push_t *lmdm_push_new(lmdm_worker_t *w, const char *conninfo);
void lmdm_push_free(lmdm_push_t *p);

/** APNs result callback to pass to lmdm_apns_new (arg = the worker): a 410
 * marks the token dead so no more pushes go to it. */
void lmdm_push_apns_result(void *arg, const char *token_hex, int status, const char *reason);

#endif
