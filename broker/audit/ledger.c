/* The audit ledger's chain and export (see lmdm/ledger.h, docs/audit.md):
 * the canonical hash of an entry, body digests, the checkpoint message, and
 * the JSON-lines export written from one consistent database snapshot. */
#include "lmdm/ledger.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT_FETCH 2000        /* rows per cursor FETCH */
#define EXPORT_FLUSH (64 * 1024) /* bytes handed to the sink at once */

/* ---- small helpers ---- */

void lmdm_ledger_hex(const unsigned char in[LMDM_LEDGER_HASH_LEN], char out[2 * LMDM_LEDGER_HASH_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < LMDM_LEDGER_HASH_LEN; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * LMDM_LEDGER_HASH_LEN] = '\0';
}

/* Hex digit values; 16 marks anything that is not a lower-case hex digit. A
 * table, because hex digits are random and branches on them mispredict. */
static const unsigned char hexval[256] = {
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
     0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 10, 11, 12, 13, 14, 15, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
};

int lmdm_ledger_unhex(const char *hex, size_t len, unsigned char out[LMDM_LEDGER_HASH_LEN])
{
    if (!hex || len != 2 * LMDM_LEDGER_HASH_LEN) return -1;
    const unsigned char *h = (const unsigned char *)hex;
    unsigned bad = 0;
    for (int i = 0; i < LMDM_LEDGER_HASH_LEN; i++) {
        unsigned hi = hexval[h[2 * i]], lo = hexval[h[2 * i + 1]];
        bad |= hi | lo;
        out[i] = (unsigned char)(hi << 4 | (lo & 15u));
    }
    return bad & 16u ? -1 : 0;
}

/* Decimal digits of v (no sign for >= 0) into d; returns the length. */
static size_t fmt_i64(char d[24], int64_t v)
{
    char tmp[24];
    size_t n = 0, o = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) d[o++] = '-';
    while (n) d[o++] = tmp[--n];
    return o;
}

/* ---- the canonical hash ---- */

/* Small writes gather in a block before they reach BLAKE2b. */
typedef struct {
    crypto_generichash_state st;
    unsigned char buf[512];
    size_t n;
} hasher_t;

static void h_flush(hasher_t *h)
{
    if (h->n) crypto_generichash_update(&h->st, h->buf, h->n);
    h->n = 0;
}

static void h_put(hasher_t *h, const void *p, size_t n)
{
    if (h->n + n > sizeof h->buf) {
        h_flush(h);
        if (n > sizeof h->buf) {
            crypto_generichash_update(&h->st, p, n);
            return;
        }
    }
    memcpy(h->buf + h->n, p, n);
    h->n += n;
}

/* A field: 4-byte big-endian length then the bytes; null is FF FF FF FF. */
static void h_text(hasher_t *h, const char *s, size_t len)
{
    uint32_t l = s ? (uint32_t)len : 0xffffffffu;
    unsigned char b[4] = {(unsigned char)(l >> 24), (unsigned char)(l >> 16), (unsigned char)(l >> 8),
                          (unsigned char)l};
    h_put(h, b, 4);
    if (s) h_put(h, s, len);
}

static void h_field(hasher_t *h, lmdm_ledger_text_t t) { h_text(h, t.s, t.len); }

static void h_int(hasher_t *h, int64_t v)
{
    char d[24];
    h_text(h, d, fmt_i64(d, v));
}

void lmdm_ledger_entry_hash(const lmdm_ledger_entry_t *e, unsigned char out[LMDM_LEDGER_HASH_LEN])
{
    hasher_t h;
    h.n = 0;
    crypto_generichash_init(&h.st, NULL, 0, LMDM_LEDGER_HASH_LEN);
    h_put(&h, LMDM_LEDGER_FORMAT "\n", sizeof(LMDM_LEDGER_FORMAT));
    h_int(&h, e->pos);
    h_int(&h, e->seq);
    h_field(&h, e->at);
    h_field(&h, e->actor);
    if (e->has_tenant_id)
        h_int(&h, e->tenant_id);
    else
        h_text(&h, NULL, 0);
    h_field(&h, e->enrollment);
    h_field(&h, e->event);
    h_field(&h, e->request_type);
    h_field(&h, e->decision);
    h_field(&h, e->reason);
    h_field(&h, e->body_kind);
    h_field(&h, e->detail);
    h_put(&h, e->body_digest, LMDM_LEDGER_HASH_LEN);
    h_put(&h, e->prev_hash, LMDM_LEDGER_HASH_LEN);
    h_flush(&h);
    crypto_generichash_final(&h.st, out, LMDM_LEDGER_HASH_LEN);
}

void lmdm_ledger_body_digest(const void *body, size_t len, unsigned char out[LMDM_LEDGER_HASH_LEN])
{
    crypto_generichash(out, LMDM_LEDGER_HASH_LEN, body ? body : (const void *)"", body ? len : 0, NULL, 0);
}

size_t lmdm_ledger_checkpoint_message(int64_t pos, const unsigned char hash[LMDM_LEDGER_HASH_LEN],
                                      const char *signed_at, size_t signed_at_len, char *out, size_t outlen)
{
    char hex[2 * LMDM_LEDGER_HASH_LEN + 1], d[24];
    size_t dn = fmt_i64(d, pos);
    size_t need = sizeof(LMDM_LEDGER_FORMAT) + dn + 1 + 2 * LMDM_LEDGER_HASH_LEN + 1 + signed_at_len;
    if (need > outlen) return 0;
    lmdm_ledger_hex(hash, hex);
    char *p = out;
    memcpy(p, LMDM_LEDGER_FORMAT "\n", sizeof(LMDM_LEDGER_FORMAT));
    p += sizeof(LMDM_LEDGER_FORMAT);
    memcpy(p, d, dn);
    p += dn;
    *p++ = '\n';
    memcpy(p, hex, 2 * LMDM_LEDGER_HASH_LEN);
    p += 2 * LMDM_LEDGER_HASH_LEN;
    *p++ = '\n';
    memcpy(p, signed_at, signed_at_len);
    p += signed_at_len;
    return (size_t)(p - out);
}

void lmdm_ledger_key_id(const unsigned char pk[32], char out[LMDM_LEDGER_KEY_ID_LEN + 1])
{
    unsigned char h[LMDM_LEDGER_HASH_LEN];
    char hex[2 * LMDM_LEDGER_HASH_LEN + 1];
    crypto_generichash(h, sizeof h, pk, 32, NULL, 0);
    lmdm_ledger_hex(h, hex);
    memcpy(out, hex, LMDM_LEDGER_KEY_ID_LEN);
    out[LMDM_LEDGER_KEY_ID_LEN] = '\0';
}

void lmdm_ledger_public_b64(const lmdm_secrets_t *s, char out[45])
{
    sodium_bin2base64(out, 45, s->ledger_pk, sizeof(s->ledger_pk), sodium_base64_VARIANT_ORIGINAL);
}

int lmdm_ledger_parse_key(const char *b64, unsigned char pk[32])
{
    size_t n = 0;
    const char *end = NULL;
    if (!b64 || sodium_base642bin(pk, 32, b64, strlen(b64), NULL, &n, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        n != 32 || *end)
        return LMDM_ERR_INVALID;
    return 0;
}

/* ---- JSON lines ---- */

static int needs_escape(unsigned char c) { return c < 0x20 || c == '"' || c == '\\'; }

static void json_str(lmdm_buf_t *out, const char *s, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    lmdm_buf_append(out, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!needs_escape(c)) continue;
        lmdm_buf_append(out, s + run, i - run);
        run = i + 1;
        char e[6] = {'\\', 0};
        size_t n = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        default:
            memcpy(e + 1, "u00", 3);
            e[4] = digits[c >> 4];
            e[5] = digits[c & 15];
            n = 6;
        }
        lmdm_buf_append(out, e, n);
    }
    lmdm_buf_append(out, s + run, len - run);
    lmdm_buf_append(out, "\"", 1);
}

/* ,"key": */
static void json_key(lmdm_buf_t *out, const char *key)
{
    lmdm_buf_append(out, ",\"", 2);
    lmdm_buf_puts(out, key);
    lmdm_buf_append(out, "\":", 2);
}

static void json_text(lmdm_buf_t *out, const char *key, lmdm_ledger_text_t t)
{
    json_key(out, key);
    if (t.s)
        json_str(out, t.s, t.len);
    else
        lmdm_buf_append(out, "null", 4);
}

static void json_int(lmdm_buf_t *out, const char *key, int64_t v)
{
    char d[24];
    json_key(out, key);
    lmdm_buf_append(out, d, fmt_i64(d, v));
}

static void json_hash(lmdm_buf_t *out, const char *key, const unsigned char h[LMDM_LEDGER_HASH_LEN])
{
    char hex[2 * LMDM_LEDGER_HASH_LEN + 1];
    lmdm_ledger_hex(h, hex);
    json_key(out, key);
    lmdm_buf_append(out, "\"", 1);
    lmdm_buf_append(out, hex, 2 * LMDM_LEDGER_HASH_LEN);
    lmdm_buf_append(out, "\"", 1);
}

void lmdm_ledger_header_json(lmdm_buf_t *out, int64_t tenant_id)
{
    lmdm_buf_puts(out, "{\"type\":\"header\",\"format\":\"" LMDM_LEDGER_FORMAT "\"");
    if (tenant_id < 0) {
        lmdm_buf_puts(out, ",\"scope\":\"full\"}\n");
        return;
    }
    lmdm_buf_puts(out, ",\"scope\":\"tenant\"");
    json_int(out, "tenant_id", tenant_id);
    lmdm_buf_puts(out, "}\n");
}

void lmdm_ledger_entry_json(lmdm_buf_t *out, const lmdm_ledger_entry_t *e)
{
    lmdm_buf_puts(out, "{\"type\":\"entry\"");
    json_int(out, "pos", e->pos);
    json_int(out, "seq", e->seq);
    json_text(out, "at", e->at);
    json_text(out, "actor", e->actor);
    if (e->has_tenant_id)
        json_int(out, "tenant_id", e->tenant_id);
    else
        json_text(out, "tenant_id", (lmdm_ledger_text_t){0});
    json_text(out, "enrollment", e->enrollment);
    json_text(out, "event", e->event);
    json_text(out, "request_type", e->request_type);
    json_text(out, "decision", e->decision);
    json_text(out, "reason", e->reason);
    json_text(out, "body_kind", e->body_kind);
    json_text(out, "detail", e->detail);
    json_hash(out, "body_digest", e->body_digest);
    json_hash(out, "prev_hash", e->prev_hash);
    json_hash(out, "hash", e->hash);
    lmdm_buf_puts(out, "}\n");
}

void lmdm_ledger_checkpoint_json(lmdm_buf_t *out, const lmdm_ledger_checkpoint_t *c)
{
    lmdm_buf_puts(out, "{\"type\":\"checkpoint\"");
    json_int(out, "pos", c->pos);
    json_hash(out, "hash", c->hash);
    json_text(out, "signed_at", c->signed_at);
    json_text(out, "key_id", c->key_id);
    json_text(out, "signature", c->signature);
    lmdm_buf_puts(out, "}\n");
}

void lmdm_ledger_end_json(lmdm_buf_t *out, int64_t entries, int64_t checkpoints)
{
    lmdm_buf_puts(out, "{\"type\":\"end\"");
    json_int(out, "entries", entries);
    json_int(out, "checkpoints", checkpoints);
    lmdm_buf_puts(out, "}\n");
}

int lmdm_ledger_sink_file(void *ctx, const char *data, size_t len)
{
    return fwrite(data, 1, len, (FILE *)ctx) == len ? 0 : -1;
}

int lmdm_ledger_sink_buf(void *ctx, const char *data, size_t len)
{
    lmdm_buf_append((lmdm_buf_t *)ctx, data, len);
    return 0;
}

/* ---- rows ---- */

static lmdm_ledger_text_t col(const PGresult *r, int row, int c)
{
    if (PQgetisnull(r, row, c)) return (lmdm_ledger_text_t){0};
    return (lmdm_ledger_text_t){PQgetvalue(r, row, c), (size_t)PQgetlength(r, row, c)};
}

static void col_hash(const PGresult *r, int row, int c, unsigned char out[LMDM_LEDGER_HASH_LEN])
{
    /* The schema's CHECK admits only 64 hex digits; anything else (a
     * tampered database) becomes zeros, which then fail to verify. */
    if (PQgetisnull(r, row, c) ||
        lmdm_ledger_unhex(PQgetvalue(r, row, c), (size_t)PQgetlength(r, row, c), out) != 0)
        memset(out, 0, LMDM_LEDGER_HASH_LEN);
}

int lmdm_ledger_entry_from_row(const PGresult *r, int row, lmdm_ledger_entry_t *e)
{
    memset(e, 0, sizeof *e);
    e->pos = atoll(PQgetvalue(r, row, 0));
    e->seq = atoll(PQgetvalue(r, row, 1));
    e->at = col(r, row, 2);
    e->actor = col(r, row, 3);
    e->has_tenant_id = !PQgetisnull(r, row, 4);
    if (e->has_tenant_id) e->tenant_id = atoll(PQgetvalue(r, row, 4));
    e->enrollment = col(r, row, 5);
    e->event = col(r, row, 6);
    e->request_type = col(r, row, 7);
    e->decision = col(r, row, 8);
    e->reason = col(r, row, 9);
    e->body_kind = col(r, row, 10);
    e->detail = col(r, row, 11);
    col_hash(r, row, 12, e->body_digest);
    col_hash(r, row, 13, e->prev_hash);
    col_hash(r, row, 14, e->hash);
    return strcmp(PQgetvalue(r, row, 15), "t") == 0;
}

void lmdm_ledger_checkpoint_from_row(const PGresult *r, int row, lmdm_ledger_checkpoint_t *c)
{
    memset(c, 0, sizeof *c);
    c->pos = atoll(PQgetvalue(r, row, 0));
    col_hash(r, row, 1, c->hash);
    c->signed_at = col(r, row, 2);
    c->key_id = col(r, row, 3);
    c->signature = col(r, row, 4);
}

/* ---- the export ---- */

typedef struct {
    lmdm_ledger_sink_fn sink;
    void *ctx;
    lmdm_buf_t buf;
    int failed;
} out_t;

static void out_flush(out_t *o, size_t min)
{
    if (o->buf.len < min || o->buf.len == 0) return;
    if (!o->failed && o->sink(o->ctx, o->buf.data, o->buf.len) != 0) o->failed = 1;
    o->buf.len = 0;
}

static PGresult *run(PGconn *pg, const char *sql, ExecStatusType want, char *err, size_t errlen)
{
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) == want) return r;
    snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    size_t n = strlen(err);
    while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' ')) err[--n] = '\0';
    PQclear(r);
    return NULL;
}

int lmdm_ledger_export(PGconn *pg, int64_t tenant_id, lmdm_ledger_sink_fn sink, void *ctx, char *err, size_t errlen)
{
    out_t o = {.sink = sink, .ctx = ctx};
    PGresult *cps = NULL, *r = NULL;
    int rc = LMDM_ERR_DB;
    int64_t entries = 0;
    int ci = 0;
    r = run(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", PGRES_COMMAND_OK, err, errlen);
    if (!r) return LMDM_ERR_DB;
    PQclear(r);
    cps = run(pg, "SELECT " LMDM_LEDGER_CHECKPOINT_COLUMNS " FROM ledger_checkpoint ORDER BY pos", PGRES_TUPLES_OK,
              err, errlen);
    if (!cps) goto out;
    char sql[512];
    char filter[64] = "";
    if (tenant_id >= 0) snprintf(filter, sizeof filter, " WHERE l.tenant_id = %lld", (long long)tenant_id);
    snprintf(sql, sizeof sql,
             "DECLARE lmdm_ledger_export NO SCROLL CURSOR FOR SELECT " LMDM_LEDGER_ENTRY_COLUMNS
             " FROM ledger_seal s LEFT JOIN ledger l ON l.seq = s.seq%s ORDER BY s.pos",
             filter);
    r = run(pg, sql, PGRES_COMMAND_OK, err, errlen);
    if (!r) goto out;
    PQclear(r);
    lmdm_ledger_header_json(&o.buf, tenant_id);
    int ncp = PQntuples(cps);
    lmdm_ledger_checkpoint_t cp;
    for (;;) {
        static const char fetch[] = "FETCH 2000 FROM lmdm_ledger_export";
        _Static_assert(EXPORT_FETCH == 2000, "the FETCH statement's count");
        r = run(pg, fetch, PGRES_TUPLES_OK, err, errlen);
        if (!r) goto out;
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            lmdm_ledger_entry_t e;
            lmdm_ledger_entry_from_row(r, i, &e);
            /* Each checkpoint goes right after the entry it signs. */
            for (; ci < ncp && atoll(PQgetvalue(cps, ci, 0)) < e.pos; ci++) {
                lmdm_ledger_checkpoint_from_row(cps, ci, &cp);
                lmdm_ledger_checkpoint_json(&o.buf, &cp);
            }
            lmdm_ledger_entry_json(&o.buf, &e);
            entries++;
            out_flush(&o, EXPORT_FLUSH);
        }
        PQclear(r);
        r = NULL;
        if (o.failed) {
            snprintf(err, errlen, "the export's destination refused the data");
            rc = LMDM_ERR_IO;
            goto out;
        }
        if (n < EXPORT_FETCH) break;
    }
    for (; ci < ncp; ci++) {
        lmdm_ledger_checkpoint_from_row(cps, ci, &cp);
        lmdm_ledger_checkpoint_json(&o.buf, &cp);
    }
    lmdm_ledger_end_json(&o.buf, entries, ncp);
    out_flush(&o, 0);
    if (o.failed) {
        snprintf(err, errlen, "the export's destination refused the data");
        rc = LMDM_ERR_IO;
        goto out;
    }
    rc = 0;
out:
    PQclear(r);
    PQclear(cps);
    PQclear(PQexec(pg, rc == 0 ? "COMMIT" : "ROLLBACK"));
    lmdm_buf_free(&o.buf);
    return rc;
}
