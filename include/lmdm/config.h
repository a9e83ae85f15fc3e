/* The broker's configuration: one file of `key = value` lines, declared in one
 * table (broker/core/config.c) with type, default, bounds and reloadability.
 *
 * File format: one `key = value` per line; `#` starts a comment; blank lines are
 * ignored; values may be double-quoted ("..." with \" and \\ escapes). Durations
 * take a unit suffix (ms, s, m, h; bare number = seconds); sizes take k, M, G
 * (powers of 1024; bare number = bytes). Unknown keys and duplicates are errors.
 *
 * Environment: LMDM_DATABASE_URL overrides `database_url`. */
#ifndef LMDM_CONFIG_H
#define LMDM_CONFIG_H

#include <stdio.h>
#include "lmdm/common.h"

typedef struct lmdm_config {
    /* listeners */
    char *listen_tls;        /* "host:port" for TLS (h2 + http/1.1 via ALPN); "" disables */
    char *listen_plain;      /* "host:port" for plaintext (h2c prior knowledge + http/1.1); "" disables */
    int workers;             /* worker threads; 0 = number of cores */
    char *tls_cert;          /* PEM certificate chain for listen_tls */
    char *tls_key;           /* PEM private key for listen_tls */
    /* limits */
    size_t max_header_size;  /* total request header bytes -> 431 */
    size_t max_body_size;    /* default request body limit -> 413 (routes may set their own) */
    int max_streams;         /* concurrent HTTP/2 streams per connection */
    int max_connections;     /* open connections per worker; more are refused */
    int idle_timeout_ms;     /* keep-alive connection with nothing in flight */
    int read_timeout_ms;     /* partial request not completed in time -> 408 / close */
    int shutdown_timeout_ms; /* SIGTERM: how long in-flight requests may take */
    /* database */
    char *database_url;      /* libpq connection string or URI */
    int db_pool_size;        /* connections per worker */
    int db_queue_max;        /* queued queries per worker before 503 */
    int db_retry_after_s;    /* Retry-After on 503 while the database is away */
    char *migrations_dir;
    /* logging */
    char *log_level;         /* debug | info | warn | error */
    char *log_format;        /* text | json */
    /* devices: identity and enrollment */
    char *public_url;        /* base URL devices use, e.g. "https://mdm.example.org:8443" */
    char *ca_cert;           /* broker CA certificate (PEM), created by `lmdm ca init` */
    char *ca_key;            /* broker CA private key (PEM), readable only by the broker's user */
    char *device_trusted_cas;/* extra PEM bundle of CAs trusted for device identities (e.g. a SCEP CA) */
    char *tls_client_auth;   /* off | optional: ask devices for a client certificate during TLS */
    char *trusted_proxies;   /* comma-separated proxy IPs allowed to send the RFC 9440 Client-Cert header */
    char *enroll_identity;   /* pkcs12 | scep: how the enrollment profile provides the device identity */
    char *scep_url;          /* SCEP server URL (enroll_identity = scep) */
    char *scep_challenge;    /* SCEP challenge password */
    int scep_key_size;       /* RSA key size the device generates for SCEP */
    char *enroll_org;        /* PayloadOrganization shown on the device */
    size_t mdm_max_body;     /* body limit of /mdm/checkin and /mdm/connect */
    /* APNs */
    char *apns_url;          /* APNs endpoint, e.g. "https://api.push.apple.com" */
    char *apns_topic;        /* push topic (the MDM push certificate's UID, com.apple.mgmt.External...) */
    char *apns_auth;         /* off | token | certificate */
    char *apns_key_file;     /* token auth: the .p8 (PEM PKCS#8 EC P-256) signing key */
    char *apns_key_id;       /* token auth: key id (kid) */
    char *apns_team_id;      /* token auth: team id (iss) */
    char *apns_cert;         /* certificate auth: PEM client certificate */
    char *apns_cert_key;     /* certificate auth: PEM private key */
    char *apns_ca_file;      /* CA bundle to verify the APNs server; "" = system default */
    /* tenants */
    char *secret_key;        /* 32-byte master secret (`lmdm secret init`): key hashes, pseudonyms, signatures */
    int tenant_rate;         /* tenant API requests per second per tenant (token bucket refill) */
    int tenant_burst;        /* token bucket size */
    int invitation_ttl_s;    /* default lifetime of an invitation */
    int webhook_timeout_ms;  /* one webhook delivery attempt */
    int webhook_backoff_max_s; /* longest wait between two attempts */
    int compliance_interval_s; /* re-ask a device under the broker's rules for SecurityInfo this often */
    /* audit ledger */
    int ledger_checkpoint_entries;    /* sign the chain head at least every this many entries */
    int ledger_checkpoint_interval_s; /* ... and at most this long after an entry was sealed */
    /* OS updates */
    char *osupdate_timezone;     /* tz database zone of devices whose owner chose none */
    char *osupdate_install_time; /* "HH:MM" local: installs and deadlines */
    char *release_feed_url;      /* polled OS release feed ("" = import by hand only) */
    int release_feed_interval_s; /* how often it is polled */
    char *osupdate_clock_file;   /* tests: a file holding the planner's "now" (RFC 3339); "" = the clock */
} lmdm_config_t;

/** Fill `cfg` with every default. Free with lmdm_config_clear(). */
void lmdm_config_defaults(lmdm_config_t *cfg);

/* Ownership: load and parse free what `cfg` held before, so `cfg` must come from
 * lmdm_config_defaults(), a previous load/parse, or be zeroed ({0}). */

/** Load `path` over the defaults, then apply environment overrides.
 * On error returns LMDM_ERR_CONFIG (or _IO / _NOT_FOUND) and writes a message naming
 * file, line and key into errbuf. `cfg` is left with defaults on error. */
int lmdm_config_load(lmdm_config_t *cfg, const char *path, char *errbuf, size_t errlen) LMDM_MUSTCHECK;

/** Parse config text already in memory (`name` is used in error messages). */
int lmdm_config_parse(lmdm_config_t *cfg, const char *name, const char *text, size_t len,
                      char *errbuf, size_t errlen) LMDM_MUSTCHECK;

/** Apply environment overrides (LMDM_DATABASE_URL). */
void lmdm_config_apply_env(lmdm_config_t *cfg);

/** Print the declarative table (name, type, default, bounds, reloadable, help). */
void lmdm_config_describe(FILE *out);

/** Free the strings held by cfg. */
void lmdm_config_clear(lmdm_config_t *cfg);

#endif
