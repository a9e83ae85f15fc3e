/* The ledger sealer: one background thread that chains new audit ledger
 * entries and signs checkpoints (see lmdm/ledger.h, docs/audit.md).
 *
 * Loop: (re)connect, take the advisory lock (one sealer per database), LISTEN
 * lmdm_ledger (the ledger's insert trigger notifies it); then
 *   - take up to BATCH entries from ledger_pending in seq order with their
 *     bodies (a command's payload or a device's answer), give them the next
 *     chain positions, compute body digests and hashes here (libsodium), and
 *     insert the ledger_seal rows and empty those pending rows in one
 *     statement, so one transaction;
 *   - when the head has moved past the last checkpoint by N entries, or the
 *     first unsigned entry was sealed M seconds ago, sign the head;
 * and wait for a NOTIFY, or at most a second. The chain head is read back
 * from the database for each batch, so a sealer that took over from another
 * instance continues the same chain. */
#include "lmdm/ledger.h"

#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmdm/bgdb.h"
#include "lmdm/log.h"

/* Entries come one NOTIFY per transaction: seal them in batches of 100 ms
 * rather than a few at a time (sealing is not latency-sensitive; checkpoints
 * follow ledger_checkpoint_interval). */
#define GATHER_MS 100
#define POLL_MS 1000
#define BATCH 500

/* How the sealing steps reach the database: the thread's interruptible
 * session, or a caller's blocking connection. Returns the result with status
 * `want`, or NULL (error reported by the adapter). */
typedef struct dbx {
    PGresult *(*exec)(struct dbx *d, const char *what, const char *sql, int n, const char *const *v,
                      ExecStatusType want);
    lmdm_bgdb_t *bg;
    PGconn *pg;
    char *err;
    size_t errlen;
} dbx_t;

typedef struct {
    unsigned char pk[32], sk[64];
    char key_id[LMDM_LEDGER_KEY_ID_LEN + 1];
    int have_key;
    int64_t every;    /* checkpoint after this many entries */
    int interval_s;   /* ... or this long after the first unsigned entry was sealed */
} keys_t;

struct lmdm_ledger_sealer {
    pthread_t thread;
    atomic_int stop;
    char *conninfo;
    lmdm_bgdb_t db;
    keys_t keys;
    lmdm_ledger_seal_stats_t stats;
    pthread_mutex_t mu; /* guards stats */
};

static PGresult *exec_bg(dbx_t *d, const char *what, const char *sql, int n, const char *const *v, ExecStatusType want)
{
    return lmdm_bgdb_expect(d->bg, what, sql, n, v, want);
}

static PGresult *exec_blocking(dbx_t *d, const char *what, const char *sql, int n, const char *const *v,
                               ExecStatusType want)
{
    PGresult *r = PQexecParams(d->pg, sql, n, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) == want) return r;
    snprintf(d->err, d->errlen, "%s: %s", what, r ? PQresultErrorMessage(r) : PQerrorMessage(d->pg));
    size_t len = strlen(d->err);
    while (len > 0 && (d->err[len - 1] == '\n' || d->err[len - 1] == ' ')) d->err[--len] = '\0';
    PQclear(r);
    return NULL;
}

static void keys_set(keys_t *k, const lmdm_secrets_t *s, int64_t every, int interval_s)
{
    memset(k, 0, sizeof *k);
    k->every = every > 0 ? every : 1000;
    k->interval_s = interval_s > 0 ? interval_s : 60;
    if (!s) return;
    memcpy(k->pk, s->ledger_pk, sizeof k->pk);
    memcpy(k->sk, s->ledger_sk, sizeof k->sk);
    lmdm_ledger_key_id(k->pk, k->key_id);
    k->have_key = 1;
}

/* ---- one batch ---- */

static lmdm_ledger_text_t col(const PGresult *r, int row, int c)
{
    if (PQgetisnull(r, row, c)) return (lmdm_ledger_text_t){0};
    return (lmdm_ledger_text_t){PQgetvalue(r, row, c), (size_t)PQgetlength(r, row, c)};
}

/* "{a,b,c}" array literals of the new seal rows. */
typedef struct {
    lmdm_buf_t pos, seq, digest, prev, hash;
} arrays_t;

static void arrays_add(arrays_t *a, const lmdm_ledger_entry_t *e)
{
    char hex[2 * LMDM_LEDGER_HASH_LEN + 1];
    const char *sep = a->pos.len ? "," : "{";
    lmdm_buf_printf(&a->pos, "%s%lld", sep, (long long)e->pos);
    lmdm_buf_printf(&a->seq, "%s%lld", sep, (long long)e->seq);
    lmdm_ledger_hex(e->body_digest, hex);
    lmdm_buf_printf(&a->digest, "%s%s", sep, hex);
    lmdm_ledger_hex(e->prev_hash, hex);
    lmdm_buf_printf(&a->prev, "%s%s", sep, hex);
    lmdm_ledger_hex(e->hash, hex);
    lmdm_buf_printf(&a->hash, "%s%s", sep, hex);
}

static void arrays_free(arrays_t *a)
{
    lmdm_buf_free(&a->pos);
    lmdm_buf_free(&a->seq);
    lmdm_buf_free(&a->digest);
    lmdm_buf_free(&a->prev);
    lmdm_buf_free(&a->hash);
}

/* Seal up to BATCH pending entries: the number sealed, or -1. */
static int seal_batch(dbx_t *d)
{
    PGresult *h = d->exec(d, "chain head", "SELECT pos, hash FROM ledger_seal ORDER BY pos DESC LIMIT 1", 0, NULL,
                          PGRES_TUPLES_OK);
    if (!h) return -1;
    int64_t pos = 0;
    unsigned char head[LMDM_LEDGER_HASH_LEN] = {0};
    if (PQntuples(h) == 1) {
        pos = atoll(PQgetvalue(h, 0, 0));
        if (lmdm_ledger_unhex(PQgetvalue(h, 0, 1), (size_t)PQgetlength(h, 0, 1), head) != 0) {
            lmdm_error("ledger: the chain head (pos %lld) holds no hash; not sealing", (long long)pos);
            PQclear(h);
            return -1;
        }
    }
    PQclear(h);
    static const char pick[] =
        "SELECT l.seq, ledger_ts(l.at), l.actor_kind, l.tenant_id, l.enrollment, l.event, l.request_type, "
        "l.decision, l.reason, l.body_kind, l.detail, "
        "CASE l.body_kind WHEN 'command' THEN c.payload WHEN 'result' THEN c.result END "
        "FROM (SELECT seq FROM ledger_pending ORDER BY seq LIMIT 500) p "
        "JOIN ledger l ON l.seq = p.seq LEFT JOIN commands c ON c.id = l.body_ref ORDER BY p.seq";
    _Static_assert(BATCH == 500, "the LIMIT of pick");
    PGresult *r = d->exec(d, "pending entries", pick, 0, NULL, PGRES_TUPLES_OK);
    if (!r) return -1;
    int n = PQntuples(r);
    if (n == 0) {
        PQclear(r);
        return 0;
    }
    arrays_t a = {0};
    for (int i = 0; i < n; i++) {
        lmdm_ledger_entry_t e = {0};
        e.pos = ++pos;
        e.seq = atoll(PQgetvalue(r, i, 0));
        e.at = col(r, i, 1);
        e.actor = col(r, i, 2);
        e.has_tenant_id = !PQgetisnull(r, i, 3);
        if (e.has_tenant_id) e.tenant_id = atoll(PQgetvalue(r, i, 3));
        e.enrollment = col(r, i, 4);
        e.event = col(r, i, 5);
        e.request_type = col(r, i, 6);
        e.decision = col(r, i, 7);
        e.reason = col(r, i, 8);
        e.body_kind = col(r, i, 9);
        e.detail = col(r, i, 10);
        lmdm_ledger_text_t body = col(r, i, 11);
        lmdm_ledger_body_digest(body.s, body.len, e.body_digest);
        memcpy(e.prev_hash, head, sizeof head);
        lmdm_ledger_entry_hash(&e, e.hash);
        memcpy(head, e.hash, sizeof head);
        arrays_add(&a, &e);
    }
    PQclear(r);
    lmdm_buf_puts(&a.pos, "}");
    lmdm_buf_puts(&a.seq, "}");
    lmdm_buf_puts(&a.digest, "}");
    lmdm_buf_puts(&a.prev, "}");
    lmdm_buf_puts(&a.hash, "}");
    const char *v[] = {a.pos.data, a.seq.data, a.digest.data, a.prev.data, a.hash.data};
    PGresult *w = d->exec(d, "seal",
                          "WITH s AS (INSERT INTO ledger_seal (pos, seq, body_digest, prev_hash, hash) "
                          "SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[]) "
                          "RETURNING seq) DELETE FROM ledger_pending p USING s WHERE p.seq = s.seq",
                          5, v, PGRES_COMMAND_OK);
    arrays_free(&a);
    if (!w) return -1;
    PQclear(w);
    return n;
}

/* ---- checkpoints ---- */

/* Now as ledger_ts() writes it: RFC 3339, UTC, microseconds. */
static void now_ts(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%06ldZ", ts.tv_nsec / 1000);
}

/* Sign the head when due (or `force` and it moved): 1 signed, 0 not due, -1. */
static int maybe_checkpoint(dbx_t *d, const keys_t *k, int force)
{
    if (!k->have_key) return 0;
    static const char state[] =
        "SELECT h.pos, h.hash, coalesce(c.pos, 0), coalesce(extract(epoch FROM now() - f.sealed_at), 0)::float8 "
        "FROM (SELECT pos, hash FROM ledger_seal ORDER BY pos DESC LIMIT 1) h "
        "LEFT JOIN LATERAL (SELECT pos FROM ledger_checkpoint ORDER BY pos DESC LIMIT 1) c ON true "
        "LEFT JOIN ledger_seal f ON f.pos = coalesce(c.pos, 0) + 1";
    PGresult *r = d->exec(d, "checkpoint state", state, 0, NULL, PGRES_TUPLES_OK);
    if (!r) return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return 0;
    }
    int64_t head = atoll(PQgetvalue(r, 0, 0)), last = atoll(PQgetvalue(r, 0, 2));
    double age = atof(PQgetvalue(r, 0, 3));
    unsigned char hash[LMDM_LEDGER_HASH_LEN];
    int bad = lmdm_ledger_unhex(PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1), hash) != 0;
    PQclear(r);
    if (bad || head <= last) return 0;
    if (!force && head - last < k->every && age < k->interval_s) return 0;
    char at[32], msg[256], sig64[89], pos[24], hex[2 * LMDM_LEDGER_HASH_LEN + 1];
    now_ts(at);
    size_t n = lmdm_ledger_checkpoint_message(head, hash, at, strlen(at), msg, sizeof msg);
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, (const unsigned char *)msg, n, k->sk);
    sodium_bin2base64(sig64, sizeof sig64, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
    snprintf(pos, sizeof pos, "%lld", (long long)head);
    lmdm_ledger_hex(hash, hex);
    const char *v[] = {pos, hex, at, sig64, k->key_id};
    PGresult *w = d->exec(d, "checkpoint",
                          "INSERT INTO ledger_checkpoint (pos, hash, signed_at, signature, key_id) "
                          "VALUES ($1, $2, $3::timestamptz, $4, $5)",
                          5, v, PGRES_COMMAND_OK);
    if (!w) return -1;
    PQclear(w);
    return 1;
}

int lmdm_ledger_seal_now(PGconn *pg, const lmdm_secrets_t *secrets, int checkpoint, char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return LMDM_ERR_INVALID;
    }
    dbx_t d = {.exec = exec_blocking, .pg = pg, .err = err, .errlen = errlen};
    keys_t k;
    keys_set(&k, secrets, 1, 1);
    int total = 0, n;
    while ((n = seal_batch(&d)) == BATCH) total += n;
    if (n < 0) {
        sodium_memzero(&k, sizeof k);
        return LMDM_ERR_DB;
    }
    total += n;
    int c = checkpoint ? maybe_checkpoint(&d, &k, 1) : 0;
    sodium_memzero(&k, sizeof k);
    return c < 0 ? LMDM_ERR_DB : total;
}

/* ---- the thread ---- */

/* Seal a batch and sign when due: 1 if there may be more, 0 if not, -1 on
 * connection trouble. */
static int turn(void *arg)
{
    lmdm_ledger_sealer_t *s = arg;
    dbx_t d = {.exec = exec_bg, .bg = &s->db};
    int n = seal_batch(&d);
    if (n < 0) return -1;
    int c = maybe_checkpoint(&d, &s->keys, 0);
    if (c < 0) return -1;
    if (n > 0 || c > 0) {
        pthread_mutex_lock(&s->mu);
        s->stats.sealed += (uint64_t)n;
        s->stats.checkpoints += (uint64_t)c;
        pthread_mutex_unlock(&s->mu);
    }
    return n == BATCH;
}

static void on_lead(void *arg)
{
    lmdm_ledger_sealer_t *s = arg;
    lmdm_info("ledger: sealing the audit ledger%s", s->keys.have_key ? "" : " (no secret_key: no checkpoints are signed)");
}

static void *run(void *arg)
{
    lmdm_ledger_sealer_t *s = arg;
    lmdm_bgloop_t loop = {.db = &s->db, .lock_key = LMDM_LEDGER_LOCK_KEY, .channel = "lmdm_ledger",
                          .role = "seals the audit ledger", .poll_ms = POLL_MS, .gather_ms = GATHER_MS,
                          .turn = turn, .on_lead = on_lead, .ctx = s};
    lmdm_bgloop_run(&loop);
    return NULL;
}

lmdm_ledger_sealer_t *lmdm_ledger_sealer_start(const lmdm_config_t *cfg, const lmdm_secrets_t *secrets, char *err,
                                               size_t errlen)
{
    if (sodium_init() < 0) {
        snprintf(err, errlen, "ledger: libsodium failed to initialise");
        return NULL;
    }
    lmdm_ledger_sealer_t *s = lmdm_xcalloc(1, sizeof *s);
    atomic_init(&s->stop, 0);
    pthread_mutex_init(&s->mu, NULL);
    s->conninfo = lmdm_xstrdup(cfg->database_url ? cfg->database_url : "");
    s->db = (lmdm_bgdb_t){.conninfo = s->conninfo, .who = "ledger", .stop = &s->stop};
    keys_set(&s->keys, secrets, cfg->ledger_checkpoint_entries, cfg->ledger_checkpoint_interval_s);
    int rv = pthread_create(&s->thread, NULL, run, s);
    if (rv != 0) {
        snprintf(err, errlen, "ledger: cannot start the sealer thread: %s", strerror(rv));
        sodium_memzero(&s->keys, sizeof s->keys);
        pthread_mutex_destroy(&s->mu);
        free(s->conninfo);
        free(s);
        return NULL;
    }
    return s;
}

void lmdm_ledger_sealer_stats(lmdm_ledger_sealer_t *s, lmdm_ledger_seal_stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

void lmdm_ledger_sealer_stop(lmdm_ledger_sealer_t *s)
{
    if (!s) return;
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    sodium_memzero(&s->keys, sizeof s->keys);
    pthread_mutex_destroy(&s->mu);
    free(s->conninfo);
    free(s);
}
