/* The tamper-evident audit ledger (issue 8; the format is specified in
 * docs/audit.md, precisely enough to verify it in another language).
 *
 * migrations/0006_ledger.sql writes one `ledger` row per auditable change, in
 * the change's own transaction. Three parts live here:
 *   - the chain: the canonical hash of an entry, body digests, the checkpoint
 *     message and key id (broker/audit/ledger.c);
 *   - the export: JSON lines, one per sealed entry in chain order, each
 *     checkpoint right after the entry it signs (broker/audit/ledger.c), and the
 *     verifier that reads them back, or the live database, and names the
 *     first entry that fails (broker/audit/ledger_verify.c);
 *   - the sealer: a background thread that chains new entries and signs
 *     checkpoints (broker/audit/ledger_seal.c).
 * Nothing here keeps global state; each verifier or sealer is its own object. */
#ifndef LMDM_LEDGER_H
#define LMDM_LEDGER_H

#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>

#include "lmdm/buf.h"
#include "lmdm/common.h"
#include "lmdm/config.h"
#include "lmdm/secrets.h"

#define LMDM_LEDGER_FORMAT "lmdm-ledger-v1"
#define LMDM_LEDGER_HASH_LEN 32 /* BLAKE2b-256 */
#define LMDM_LEDGER_KEY_ID_LEN 16 /* hex digits */
#define LMDM_LEDGER_LOCK_KEY 0x6c6d646d6c656431LL /* "lmdmled1": one sealer per database */

/** A string field; `s == NULL` is SQL/JSON null (distinct from ""). Borrowed. */
typedef struct lmdm_ledger_text {
    const char *s;
    size_t len;
} lmdm_ledger_text_t;

/** One sealed entry, as hashed and exported. Text fields are borrowed from
 * whatever the entry was read from (a PGresult, an export line). */
typedef struct lmdm_ledger_entry {
    int64_t pos;           /* chain position, 1, 2, 3, ... */
    int64_t seq;           /* ledger.seq */
    int64_t tenant_id;     /* valid when has_tenant_id */
    int has_tenant_id;
    lmdm_ledger_text_t at; /* RFC 3339 UTC with microseconds, as ledger_ts() writes it */
    lmdm_ledger_text_t actor, enrollment, event, request_type, decision, reason, body_kind, detail;
    unsigned char body_digest[LMDM_LEDGER_HASH_LEN];
    unsigned char prev_hash[LMDM_LEDGER_HASH_LEN];
    unsigned char hash[LMDM_LEDGER_HASH_LEN];
} lmdm_ledger_entry_t;

/** A signed chain head. */
typedef struct lmdm_ledger_checkpoint {
    int64_t pos;
    unsigned char hash[LMDM_LEDGER_HASH_LEN];
    lmdm_ledger_text_t signed_at; /* as ledger_ts() writes it */
    lmdm_ledger_text_t key_id;    /* LMDM_LEDGER_KEY_ID_LEN hex digits */
    lmdm_ledger_text_t signature; /* standard base64 of the 64-byte Ed25519 signature */
} lmdm_ledger_checkpoint_t;

/* ---- the chain (pure) ---- */

/** The hash of an entry: BLAKE2b-256 of its canonical form (docs/audit.md)
 * over every field, body_digest and prev_hash. `e->hash` is not read. */
void lmdm_ledger_entry_hash(const lmdm_ledger_entry_t *e, unsigned char out[LMDM_LEDGER_HASH_LEN]);

/** BLAKE2b-256 of a body (NULL/0: of the empty string). */
void lmdm_ledger_body_digest(const void *body, size_t len, unsigned char out[LMDM_LEDGER_HASH_LEN]);

/** The signed message "lmdm-ledger-v1\n<pos>\n<hash hex>\n<signed_at>" into
 * out; returns its length, or 0 if it does not fit. */
size_t lmdm_ledger_checkpoint_message(int64_t pos, const unsigned char hash[LMDM_LEDGER_HASH_LEN],
                                      const char *signed_at, size_t signed_at_len, char *out, size_t outlen);

/** Key id of an Ed25519 public key: the first 16 hex digits of its BLAKE2b-256. */
void lmdm_ledger_key_id(const unsigned char pk[32], char out[LMDM_LEDGER_KEY_ID_LEN + 1]);

/** The ledger's public key (secrets->ledger_pk) as standard base64. */
void lmdm_ledger_public_b64(const lmdm_secrets_t *s, char out[45]);

/** Decode a standard-base64 Ed25519 public key: 0, or LMDM_ERR_INVALID. */
int lmdm_ledger_parse_key(const char *b64, unsigned char pk[32]) LMDM_MUSTCHECK;

/** Lower-case hex of 32 bytes plus NUL. */
void lmdm_ledger_hex(const unsigned char in[LMDM_LEDGER_HASH_LEN], char out[2 * LMDM_LEDGER_HASH_LEN + 1]);

/** 64 lower-case hex digits into 32 bytes: 0, or -1 for anything else. */
int lmdm_ledger_unhex(const char *hex, size_t len, unsigned char out[LMDM_LEDGER_HASH_LEN]);

/* ---- the export: JSON lines (docs/audit.md) ---- */

/** Append one line (with its "\n") to `out`. */
void lmdm_ledger_header_json(lmdm_buf_t *out, int64_t tenant_id /* < 0: the full ledger */);
void lmdm_ledger_entry_json(lmdm_buf_t *out, const lmdm_ledger_entry_t *e);
void lmdm_ledger_checkpoint_json(lmdm_buf_t *out, const lmdm_ledger_checkpoint_t *c);
void lmdm_ledger_end_json(lmdm_buf_t *out, int64_t entries, int64_t checkpoints);

/** Where an export goes: 0, or nonzero to stop. */
typedef int (*lmdm_ledger_sink_fn)(void *ctx, const char *data, size_t len);
/** Sinks: `ctx` is a FILE *, or an lmdm_buf_t * that is appended to. */
int lmdm_ledger_sink_file(void *ctx, const char *data, size_t len);
int lmdm_ledger_sink_buf(void *ctx, const char *data, size_t len);

/** Columns of a sealed entry for lmdm_ledger_entry_from_row(), in order, for
 * "SELECT " LMDM_LEDGER_ENTRY_COLUMNS " FROM ledger_seal s LEFT JOIN ledger l
 * ON l.seq = s.seq ...". The last column is true when the ledger row is gone. */
#define LMDM_LEDGER_ENTRY_COLUMNS                                                                            \
    "s.pos, s.seq, ledger_ts(l.at), l.actor_kind, l.tenant_id, l.enrollment, l.event, l.request_type, "     \
    "l.decision, l.reason, l.body_kind, l.detail, s.body_digest, s.prev_hash, s.hash, l.seq IS NULL"
#define LMDM_LEDGER_CHECKPOINT_COLUMNS "pos, hash, ledger_ts(signed_at), key_id, signature"

/** Fill `e` from row `row` of a result with LMDM_LEDGER_ENTRY_COLUMNS (fields
 * borrow from `r`). Returns 1 if the ledger row is gone, 0 otherwise. */
int lmdm_ledger_entry_from_row(const PGresult *r, int row, lmdm_ledger_entry_t *e);
/** Same for LMDM_LEDGER_CHECKPOINT_COLUMNS. */
void lmdm_ledger_checkpoint_from_row(const PGresult *r, int row, lmdm_ledger_checkpoint_t *c);

/** Write the export (header, entries in chain order with each checkpoint
 * after the entry it signs, end line) from one consistent snapshot of the
 * database. tenant_id >= 0: only that tenant's entries (every checkpoint
 * still included): such an export proves each entry's content against its
 * hash, not the chain around it (docs/audit.md). Blocking: never on an event
 * loop thread. 0, or a negative LMDM_ERR_* with a message. */
int lmdm_ledger_export(PGconn *pg, int64_t tenant_id, lmdm_ledger_sink_fn sink, void *ctx, char *err,
                       size_t errlen) LMDM_MUSTCHECK;

/* ---- verification ---- */

typedef struct lmdm_ledger_verify lmdm_ledger_verify_t;

/** What a verification found. On failure, the first failing place: export
 * line (0 for the database), chain position and seq (-1 when unknown), why. */
typedef struct lmdm_ledger_report {
    int ok;
    int partial;                 /* a tenant's export: links between entries were not checkable */
    int64_t entries, checkpoints;
    int64_t last_pos;            /* chain head reached */
    int64_t last_checkpoint_pos; /* 0: none */
    int64_t unsigned_tail;       /* entries after the last checkpoint (not signed yet) */
    int64_t pending;             /* --db: entries waiting for the sealer */
    long line;
    int64_t pos, seq;
    char why[320];
} lmdm_ledger_report_t;

/** A verifier of exports signed by `pk` (32 bytes). */
lmdm_ledger_verify_t *lmdm_ledger_verify_new(const unsigned char pk[32]);

/** Also require the chain to hold `hash` at `pos` (a checkpoint kept from an
 * earlier export): catches a tail cut off together with its checkpoints. */
void lmdm_ledger_verify_anchor(lmdm_ledger_verify_t *v, int64_t pos, const unsigned char hash[LMDM_LEDGER_HASH_LEN]);

/** Feed one export line (without its "\n"). 0, or -1 once anything failed
 * (the first failure is kept; later calls do nothing). */
int lmdm_ledger_verify_line(lmdm_ledger_verify_t *v, const char *line, size_t len);

/** Progress callback: entries verified so far. */
typedef void (*lmdm_ledger_progress_fn)(void *ctx, int64_t entries);

/** Verify a whole export read from `in`. 0, -1 (failed: see the report), or
 * LMDM_ERR_IO. progress (may be NULL) is called every 65,536 entries. */
int lmdm_ledger_verify_file(lmdm_ledger_verify_t *v, FILE *in, lmdm_ledger_progress_fn progress, void *ctx);

/** Verify the live database (one snapshot): the chain as `verify_file` would
 * check its export, plus that every sealed entry's ledger row exists and every
 * ledger row is sealed or waiting for the sealer. 0, -1 (failed), or
 * LMDM_ERR_DB with a message. Blocking. */
int lmdm_ledger_verify_db(lmdm_ledger_verify_t *v, PGconn *pg, lmdm_ledger_progress_fn progress, void *ctx,
                          char *err, size_t errlen);

/** Conclude: fill `out`; 0 if everything verified, -1 otherwise. */
int lmdm_ledger_verify_finish(lmdm_ledger_verify_t *v, lmdm_ledger_report_t *out);

void lmdm_ledger_verify_free(lmdm_ledger_verify_t *v);

/* ---- the sealer ---- */

typedef struct lmdm_ledger_sealer lmdm_ledger_sealer_t;

typedef struct lmdm_ledger_seal_stats {
    uint64_t sealed;      /* entries chained */
    uint64_t checkpoints; /* checkpoints signed */
} lmdm_ledger_seal_stats_t;

/** Chain every pending entry now and, when `checkpoint` and the head moved
 * since the last checkpoint, sign one (secrets NULL: never). For tests and
 * tools; the broker runs the sealer thread. Returns entries sealed, or a
 * negative LMDM_ERR_* with a message. Blocking. */
int lmdm_ledger_seal_now(PGconn *pg, const lmdm_secrets_t *secrets, int checkpoint, char *err, size_t errlen);

/** Start the sealer thread (database cfg->database_url; checkpoints every
 * cfg->ledger_checkpoint_entries entries or cfg->ledger_checkpoint_interval_s
 * seconds, signed with secrets->ledger_sk, copied here; secrets NULL: chain
 * without checkpoints). One instance per database seals (advisory lock); the
 * others stand by. NULL with a message only if the thread cannot start. */
lmdm_ledger_sealer_t *lmdm_ledger_sealer_start(const lmdm_config_t *cfg, const lmdm_secrets_t *secrets, char *err,
                                               size_t errlen);

/** Counters so far (any thread). */
void lmdm_ledger_sealer_stats(lmdm_ledger_sealer_t *s, lmdm_ledger_seal_stats_t *out);

/** Stop within about 100 ms and free. NULL is a no-op. */
void lmdm_ledger_sealer_stop(lmdm_ledger_sealer_t *s);

#endif
