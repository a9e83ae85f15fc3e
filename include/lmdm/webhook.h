/* Webhooks: delivering the transactional outbox to tenants.
 *
 * PostgreSQL procedures write events into the `outbox` table in the same
 * transaction as the change they report, and notify channel `lmdm_outbox`.
 * The deliverer POSTs each tenant's undelivered events to the tenant's
 * webhook_url, strictly in outbox id order per tenant, one in flight per
 * tenant, different tenants in parallel. A 2xx marks the event delivered;
 * anything else is retried forever with exponential backoff (1 s, 2 s, 4 s ...
 * capped at webhook_backoff_max_s): delivery is at least once.
 *
 * Every request is signed with the broker's Ed25519 key:
 *   Lmdm-Timestamp: <unix seconds>
 *   Lmdm-Signature: ed25519=<base64 of the signature of "<timestamp>.<body>">
 * docs/webhooks.md is the tenant-facing description of the format.
 *
 * Thread rules: lmdm_webhook_start() and lmdm_webhook_stop() are called from
 * one thread (the daemon's main thread). The deliverer runs on its own thread
 * with its own database connection, never on an event loop. Only one broker
 * instance delivers at a time (a session-level advisory lock); the others wait
 * and take over when it goes away. */
#ifndef LMDM_WEBHOOK_H
#define LMDM_WEBHOOK_H

#include <stddef.h>

#include "lmdm/buf.h"
#include "lmdm/common.h"
#include "lmdm/config.h"
#include "lmdm/secrets.h"

/** The advisory lock key the delivering instance holds ("lmdmwhk1" in ASCII). */
#define LMDM_WEBHOOK_LOCK_KEY 0x6c6d646d77686b31LL

typedef struct lmdm_webhook lmdm_webhook_t;

/** Start the deliverer thread. `cfg` (database_url, webhook_timeout_ms,
 * webhook_backoff_max_s) and `secrets` (sign_sk) are copied: the caller may
 * free them afterwards. Connecting to the database happens on the thread, so
 * a database that is down is not an error here (the thread retries).
 * Returns NULL with a message in err only if the thread or libcurl cannot be
 * set up. */
lmdm_webhook_t *lmdm_webhook_start(const lmdm_config_t *cfg, const lmdm_secrets_t *secrets, char *err,
                                   size_t errlen);

/** Stop the thread and free everything; returns within about a second even
 * when a delivery is in flight or a tenant endpoint hangs (that delivery is
 * abandoned and stays pending: it is sent again later). NULL is a no-op. */
void lmdm_webhook_stop(lmdm_webhook_t *w);

/* ---- event bodies (pure: no I/O, testable on their own) ------------------ */

/** One outbox row with what its body needs, as text (as libpq returns it).
 * NULL fields are SQL NULLs. */
typedef struct lmdm_webhook_event {
    const char *event_uuid; /* outbox.event_uuid: the id the tenant sees */
    const char *event; /* enrollment.accepted | enrollment.removed | command.result | device.checked_out */
    const char *created_at; /* RFC 3339, UTC */
    const char *pseudonym;  /* enrollments.pseudonym, or NULL */
    const char *data_json;  /* outbox.data (a JSON object as text), or NULL for {} */
    /* command.result only (api_id NULL for other events) */
    const char *command_api_id;       /* commands.api_id */
    const char *command_tenant_uuid;  /* commands.tenant_command_uuid, or NULL */
    const char *command_request_type; /* commands.request_type */
    const char *command_state;        /* commands.state: acknowledged | error | format_error */
    const char *command_result;       /* the device's whole answer (XML plist), or NULL */
    const char *owned_apps;           /* the tenant's bundle ids on the device, one per line, or NULL */
    const char *owned_profiles;       /* the tenant's profile identifiers, one per line, or NULL */
    const char *profile_ns;           /* the tenant's profile namespace on the device, or NULL */
} lmdm_webhook_event_t;

/** Body formats (tenants.webhook_format). */
typedef enum { LMDM_WEBHOOK_LMDM = 0, LMDM_WEBHOOK_MICROMDM } lmdm_webhook_format_t;

/** Parse "lmdm" | "micromdm"; returns 0 or LMDM_ERR_INVALID. */
int lmdm_webhook_format_parse(const char *s, lmdm_webhook_format_t *out) LMDM_MUSTCHECK;

/** The device's answer status a tenant sees for commands.state:
 * "Acknowledged", "Error", "CommandFormatError"; NULL for any other state. */
const char *lmdm_webhook_command_status(const char *state);

/** Build the JSON body of `ev` in `format` into `out` (compact, UTF-8, one
 * line). A command result is passed through lmdm_tenant_result_view() first:
 * the tenant never sees what the device said beyond its own view. Returns 0,
 * or LMDM_ERR_INVALID if `ev` lacks a required field or data_json is not a
 * JSON object (out is then left empty). */
int lmdm_webhook_event_body(const lmdm_webhook_event_t *ev, lmdm_webhook_format_t format,
                            lmdm_buf_t *out) LMDM_MUSTCHECK;

#endif
