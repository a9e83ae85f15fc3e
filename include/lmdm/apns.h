/* APNs client for MDM pushes: HTTP/2 over TLS (nghttp2 + OpenSSL on the
 * worker's libevent loop), token (ES256 JWT) or certificate authentication.
 *
 * One client per worker thread; every function must be called on that thread,
 * and the result callback runs on it. Pushes for the same token are coalesced
 * while one is pending (an MDM push carries no content: one wake-up is enough).
 * Many pushes are multiplexed on one connection; the connection is opened on
 * demand and reopened with backoff after failures. 429 and 5xx are retried with
 * exponential backoff (up to 5 attempts); 410 Unregistered is reported so the
 * caller marks the token dead. */
#ifndef LMDM_APNS_H
#define LMDM_APNS_H

#include "lmdm/common.h"
#include "lmdm/config.h"

struct event_base;
typedef struct lmdm_apns lmdm_apns_t;

/** Final outcome of one push: status is the HTTP status from APNs (200, 410, 400
 * ...), or 0 if it could not be delivered (connection failures after retries).
 * After 5 attempts answered 429/5xx, status is the last of those answers.
 * reason is APNs' "reason" string or a local description; both borrowed.
 * Called from the event loop, never from inside lmdm_apns_push; it may call
 * lmdm_apns_push (the token is no longer pending) but must not free the client. */
typedef void (*lmdm_apns_result_cb)(void *arg, const char *token_hex, int status, const char *reason);

typedef struct lmdm_apns_stats {
    uint64_t sent;       /* requests written */
    uint64_t delivered;  /* 200 answers */
    uint64_t failed;     /* final non-200 outcomes */
    uint64_t coalesced;  /* pushes folded into a pending one */
    uint64_t retries;    /* requests sent again (429/5xx, lost connection, refused stream) */
    uint64_t connections;/* HTTP/2 connections established */
} lmdm_apns_stats_t;

/** Create a client from cfg (apns_url, apns_topic, apns_auth and its files).
 * Returns NULL with errbuf when apns_auth is set but a file or setting is
 * missing or unreadable. cfg must outlive the client. */
lmdm_apns_t *lmdm_apns_new(struct event_base *base, const lmdm_config_t *cfg, lmdm_apns_result_cb cb,
                           void *cb_arg, char *errbuf, size_t errlen);
/** Abandon pending pushes (no callbacks) and close. NULL is a no-op. */
void lmdm_apns_free(lmdm_apns_t *a);

/** Queue an MDM push to the device token (hex, 64..200 chars) with its
 * PushMagic; `topic` NULL means cfg->apns_topic. Returns 0, LMDM_ERR_INVALID
 * for a malformed token or magic, or LMDM_ERR_BUSY if too many are pending. */
int lmdm_apns_push(lmdm_apns_t *a, const char *token_hex, const char *push_magic, const char *topic) LMDM_MUSTCHECK;

/** Counters since creation (this thread only). */
void lmdm_apns_stats(const lmdm_apns_t *a, lmdm_apns_stats_t *out);

/** First retry/reconnect delay in milliseconds (default 1000); it doubles with
 * each attempt up to 60 s. For tests, which cannot wait seconds. */
void lmdm_apns_set_backoff_ms(lmdm_apns_t *a, int initial_ms);

/** Make an ES256 JWT for APNs (header {alg,kid}, claims {iss,iat}) with the
 * given key; exposed for tests. *out is malloc'd. */
int lmdm_apns_make_jwt(const char *key_file, const char *key_id, const char *team_id, long iat, char **out,
                       char *errbuf, size_t errlen) LMDM_MUSTCHECK;

#endif
