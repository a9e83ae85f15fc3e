/* The daemon: worker threads, listeners, TLS, signals.
 *
 * Shared nothing: each worker thread has its own event loop, its own listening
 * sockets (SO_REUSEPORT, so the kernel spreads connections), its own database
 * pool and its own metrics. The main thread only handles signals:
 *   SIGTERM/SIGINT  stop accepting, finish in-flight requests, exit
 *                   (forced after shutdown_timeout);
 *   SIGHUP          reload the TLS certificate and key (and log_level) from the
 *                   files named in the config; on error the old ones stay. */
#ifndef LMDM_SERVER_H
#define LMDM_SERVER_H

#include "lmdm/config.h"
#include "lmdm/db.h"
#include "lmdm/metrics.h"
#include "lmdm/router.h"

struct event_base;
typedef struct lmdm_server lmdm_server_t;
typedef struct lmdm_worker_priv lmdm_worker_priv_t;

/** One worker thread. Handlers reach it as req->worker; everything in it
 * belongs to that thread. */
struct lmdm_worker {
    int id;
    struct event_base *base;
    lmdm_db_pool_t *db;        /* NULL when no database is configured */
    lmdm_metrics_t *metrics;
    lmdm_server_t *server;
    const lmdm_config_t *config;
    const struct lmdm_app *app;/* shared read-only state (lmdm/app.h); may be NULL */
    struct lmdm_apns *apns;    /* this worker's APNs client; NULL when pushes are off */
    struct lmdm_seen *seen;    /* batched last-seen times (lmdm/seen.h); may be NULL */
    struct lmdm_verify_cache *vcache; /* recently verified device certificates (identity.h); may be NULL */
    lmdm_worker_priv_t *priv;  /* connection layer state */
};

/** Build the server: resolve listeners, load TLS, create workers (threads are
 * started by lmdm_server_run). `router` must outlive the server. On error
 * returns NULL with a message in errbuf. `config_path` is re-read on SIGHUP. */
lmdm_server_t *lmdm_server_new(const lmdm_config_t *cfg, const char *config_path,
                               const lmdm_router_t *router, long schema_version, char *errbuf,
                               size_t errlen);

/** Attach the shared application state to every worker (before running). */
void lmdm_server_set_app(lmdm_server_t *s, const struct lmdm_app *app);

/** Run until SIGTERM/SIGINT and the drain finish. Returns 0 after a clean drain,
 * LMDM_ERR_TIMEOUT if in-flight requests had to be cut at shutdown_timeout,
 * or another error if start-up failed (e.g. a port already in use). */
int lmdm_server_run(lmdm_server_t *s) LMDM_MUSTCHECK;

/** Ask a running server to shut down (as SIGTERM does); any thread. */
void lmdm_server_stop(lmdm_server_t *s);

void lmdm_server_free(lmdm_server_t *s);

/** Worker i (0-based), or NULL. For embedding and tests: run its loop yourself
 * only if lmdm_server_run is not running. */
lmdm_worker_t *lmdm_server_worker(lmdm_server_t *s, int i);

/** Serve an already connected plaintext socket on worker w (its thread only),
 * as if accepted from a listener: h2c preface or HTTP/1.1. Takes the fd. Used by
 * the fuzz drivers and tests, which talk to the broker through a socketpair. */
int lmdm_server_adopt(lmdm_worker_t *w, int fd);

const lmdm_router_t *lmdm_server_router(const lmdm_server_t *s);
/** The schema version this binary expects (highest migration file). */
long lmdm_server_schema_version(const lmdm_server_t *s);
/** Render every worker's metrics and database pool counters. */
void lmdm_server_render_metrics(lmdm_server_t *s, lmdm_buf_t *out);

#endif
