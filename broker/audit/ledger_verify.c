/* Verifying the audit ledger (see lmdm/ledger.h, docs/audit.md): an export
 * read line by line, or the live database, checked entry by entry in chain
 * order: positions without gaps, each prev_hash equal to the hash before it,
 * each hash recomputed from the entry's fields, each checkpoint signed by the
 * given key over the chain head it follows. The first failure is kept with
 * the export line, position and seq, and verification stops there.
 *
 * The export reader is a scanner of flat JSON objects written for this format
 * (strings, integers and null values only; keys may come in any order), much
 * faster than a general JSON parser: a million entries verify in well under
 * two seconds on one core (bench/ledger.sh). Anything it does not accept is a
 * failure naming the line, never a crash: exports are outside input. */
#include "lmdm/ledger.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS 24
#define MAX_ANCHORS 64
#define MAX_LINE (64u * 1024 * 1024) /* an entry's detail is small; this is a runaway */
#define READ_CHUNK (4u * 1024 * 1024)
#define PROGRESS_EVERY 65536

typedef enum { PHASE_HEADER, PHASE_BODY, PHASE_END } phase_t;

struct lmdm_ledger_verify {
    unsigned char pk[32];
    char key_id[LMDM_LEDGER_KEY_ID_LEN + 1];
    phase_t phase;
    int partial;
    int failed;
    long line;
    int64_t entries, checkpoints;
    int64_t head_pos; /* last entry's position (0: none) */
    unsigned char head[LMDM_LEDGER_HASH_LEN];
    int64_t last_cp_pos;
    int64_t pending; /* --db */
    struct {
        int64_t pos;
        unsigned char hash[LMDM_LEDGER_HASH_LEN];
        int seen;
    } anchors[MAX_ANCHORS];
    int nanchors;
    char *scratch; /* unescaped strings of the current line */
    size_t scratch_cap, scratch_len;
    lmdm_ledger_report_t fail;
};

lmdm_ledger_verify_t *lmdm_ledger_verify_new(const unsigned char pk[32])
{
    if (sodium_init() < 0) return NULL; /* also selects the fast BLAKE2b code */
    lmdm_ledger_verify_t *v = lmdm_xcalloc(1, sizeof *v);
    memcpy(v->pk, pk, 32);
    lmdm_ledger_key_id(pk, v->key_id);
    return v;
}

void lmdm_ledger_verify_free(lmdm_ledger_verify_t *v)
{
    if (!v) return;
    free(v->scratch);
    free(v);
}

void lmdm_ledger_verify_anchor(lmdm_ledger_verify_t *v, int64_t pos, const unsigned char hash[LMDM_LEDGER_HASH_LEN])
{
    if (v->nanchors == MAX_ANCHORS) return;
    v->anchors[v->nanchors].pos = pos;
    memcpy(v->anchors[v->nanchors].hash, hash, LMDM_LEDGER_HASH_LEN);
    v->anchors[v->nanchors].seen = 0;
    v->nanchors++;
}

/* Record the first failure; always returns -1. */
LMDM_PRINTF(4, 5) static int fail(lmdm_ledger_verify_t *v, int64_t pos, int64_t seq, const char *fmt, ...)
{
    if (v->failed) return -1;
    v->failed = 1;
    v->fail.line = v->line;
    v->fail.pos = pos;
    v->fail.seq = seq;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->fail.why, sizeof v->fail.why, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- the checks ---- */

static int check_anchor(lmdm_ledger_verify_t *v, const lmdm_ledger_entry_t *e)
{
    for (int i = 0; i < v->nanchors; i++) {
        if (v->anchors[i].pos != e->pos) continue;
        v->anchors[i].seen = 1;
        if (memcmp(v->anchors[i].hash, e->hash, LMDM_LEDGER_HASH_LEN) != 0)
            return fail(v, e->pos, e->seq, "the chain differs from the anchor kept for pos %lld",
                        (long long)e->pos);
    }
    return 0;
}

static int verify_entry(lmdm_ledger_verify_t *v, const lmdm_ledger_entry_t *e)
{
    if (v->failed) return -1;
    long long pos = (long long)e->pos, seq = (long long)e->seq, head = (long long)v->head_pos;
    if (!v->partial) {
        if (e->pos <= v->head_pos)
            return fail(v, e->pos, e->seq, "pos %lld comes after pos %lld: the chain is out of order", pos, head);
        if (e->pos != v->head_pos + 1)
            return fail(v, e->pos, e->seq, "pos %lld follows pos %lld: entries %lld..%lld are missing", pos, head,
                        head + 1, pos - 1);
        if (memcmp(e->prev_hash, v->head, LMDM_LEDGER_HASH_LEN) != 0)
            return fail(v, e->pos, e->seq,
                        "prev_hash is not the hash of pos %lld: an entry before it was changed, removed or moved",
                        head);
    } else if (e->pos <= v->head_pos) {
        return fail(v, e->pos, e->seq, "pos %lld comes after pos %lld: the export is out of order", pos, head);
    }
    unsigned char h[LMDM_LEDGER_HASH_LEN];
    lmdm_ledger_entry_hash(e, h);
    if (memcmp(h, e->hash, LMDM_LEDGER_HASH_LEN) != 0)
        return fail(v, e->pos, e->seq, "hash mismatch at pos %lld (seq %lld): the entry is not what was sealed", pos,
                    seq);
    if (v->nanchors && check_anchor(v, e) != 0) return -1;
    memcpy(v->head, e->hash, LMDM_LEDGER_HASH_LEN);
    v->head_pos = e->pos;
    v->entries++;
    return 0;
}

static int verify_checkpoint(lmdm_ledger_verify_t *v, const lmdm_ledger_checkpoint_t *c)
{
    if (v->failed) return -1;
    long long pos = (long long)c->pos, head = (long long)v->head_pos;
    if (c->pos <= v->last_cp_pos)
        return fail(v, c->pos, -1, "checkpoint for pos %lld after one for pos %lld: out of order", pos,
                    (long long)v->last_cp_pos);
    if (!v->partial) {
        if (c->pos > v->head_pos)
            return fail(v, c->pos, -1,
                        "checkpoint signs pos %lld but the chain stops at pos %lld here: entries %lld..%lld are "
                        "missing",
                        pos, head, head + 1, pos);
        if (c->pos < v->head_pos)
            return fail(v, c->pos, -1, "checkpoint for pos %lld out of place (after pos %lld)", pos, head);
        if (memcmp(c->hash, v->head, LMDM_LEDGER_HASH_LEN) != 0)
            return fail(v, c->pos, -1, "checkpoint for pos %lld signs another hash than the chain's", pos);
    } else if (c->pos == v->head_pos && v->entries > 0 && memcmp(c->hash, v->head, LMDM_LEDGER_HASH_LEN) != 0) {
        return fail(v, c->pos, -1, "checkpoint for pos %lld signs another hash than the entry's", pos);
    }
    if (!c->key_id.s || c->key_id.len != LMDM_LEDGER_KEY_ID_LEN ||
        memcmp(c->key_id.s, v->key_id, LMDM_LEDGER_KEY_ID_LEN) != 0) {
        unsigned char ignored[LMDM_LEDGER_HASH_LEN];
        char shown[2 * LMDM_LEDGER_HASH_LEN + 1] = "(not a key id)";
        /* Only a well-formed id is echoed: the line is outside input. */
        if (c->key_id.s && c->key_id.len == LMDM_LEDGER_KEY_ID_LEN) {
            memset(shown, '0', 2 * LMDM_LEDGER_HASH_LEN);
            memcpy(shown, c->key_id.s, LMDM_LEDGER_KEY_ID_LEN);
            if (lmdm_ledger_unhex(shown, 2 * LMDM_LEDGER_HASH_LEN, ignored) == 0)
                shown[LMDM_LEDGER_KEY_ID_LEN] = '\0';
            else
                snprintf(shown, sizeof shown, "(not a key id)");
        }
        return fail(v, c->pos, -1, "checkpoint for pos %lld names key %s, not the given key (%s)", pos, shown,
                    v->key_id);
    }
    unsigned char sig[crypto_sign_BYTES];
    size_t siglen = 0;
    const char *end = NULL;
    if (!c->signature.s || !c->signed_at.s ||
        sodium_base642bin(sig, sizeof sig, c->signature.s, c->signature.len, NULL, &siglen, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        siglen != sizeof sig || end != c->signature.s + c->signature.len)
        return fail(v, c->pos, -1, "checkpoint for pos %lld: the signature is not base64 of 64 bytes", pos);
    char msg[256];
    size_t n = lmdm_ledger_checkpoint_message(c->pos, c->hash, c->signed_at.s, c->signed_at.len, msg, sizeof msg);
    if (n == 0 || crypto_sign_verify_detached(sig, (const unsigned char *)msg, n, v->pk) != 0)
        return fail(v, c->pos, -1, "checkpoint for pos %lld: bad signature", pos);
    v->last_cp_pos = c->pos;
    v->checkpoints++;
    return 0;
}

int lmdm_ledger_verify_finish(lmdm_ledger_verify_t *v, lmdm_ledger_report_t *out)
{
    if (!v->failed && v->phase == PHASE_HEADER) fail(v, -1, -1, "empty export: no header line");
    if (!v->failed && v->phase == PHASE_BODY)
        fail(v, v->head_pos, -1, "the export ends without its end line: it is incomplete");
    for (int i = 0; !v->failed && i < v->nanchors; i++)
        if (!v->anchors[i].seen)
            fail(v, v->anchors[i].pos, -1, "the chain never reaches the anchor kept for pos %lld",
                 (long long)v->anchors[i].pos);
    memset(out, 0, sizeof *out);
    if (v->failed) {
        *out = v->fail;
    } else {
        out->pos = out->seq = -1;
    }
    out->ok = !v->failed;
    out->partial = v->partial;
    out->entries = v->entries;
    out->checkpoints = v->checkpoints;
    out->last_pos = v->head_pos;
    out->last_checkpoint_pos = v->last_cp_pos;
    out->unsigned_tail = v->partial ? 0 : v->head_pos - v->last_cp_pos;
    out->pending = v->pending;
    return v->failed ? -1 : 0;
}

/* ---- the line scanner ---- */

typedef enum { V_NULL, V_STR, V_NUM } vkind_t;

typedef struct {
    const char *key;
    size_t klen;
    vkind_t kind;
    const char *val; /* string content (raw, between the quotes) or number text */
    size_t vlen;
    int escaped;
} kv_t;

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Eight bytes at a time: nonzero when any of them may be '"', '\\' or a
 * control character (false alarms only after a real one; the caller then
 * looks byte by byte). */
static uint64_t special8(const char *p)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t x, q, b;
    memcpy(&x, p, 8);
    q = x ^ (ones * '"');
    b = x ^ (ones * '\\');
    return (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs;
}

/* Split one line into its key/value pairs. Returns the count or -1 with *why. */
static int scan_object(const char *p, const char *end, kv_t *kv, const char **why)
{
    int n = 0;
    while (p < end && is_ws(*p)) p++;
    if (p == end || *p != '{') return *why = "not a JSON object", -1;
    p++;
    while (p < end && is_ws(*p)) p++;
    if (p < end && *p == '}') {
        p++;
        goto tail;
    }
    for (;;) {
        if (n == MAX_KEYS) return *why = "too many keys", -1;
        kv_t *k = &kv[n++];
        while (p < end && is_ws(*p)) p++;
        if (p == end || *p != '"') return *why = "expected a key", -1;
        k->key = ++p;
        while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) p++;
        if (p == end || *p != '"') return *why = "bad key", -1;
        k->klen = (size_t)(p - k->key);
        p++;
        while (p < end && is_ws(*p)) p++;
        if (p == end || *p != ':') return *why = "expected ':'", -1;
        p++;
        while (p < end && is_ws(*p)) p++;
        if (p == end) return *why = "missing value", -1;
        if (*p == '"') {
            k->kind = V_STR;
            k->val = ++p;
            k->escaped = 0;
            while (end - p >= 8 && !special8(p)) p += 8;
            for (; p < end; p++) {
                unsigned char c = (unsigned char)*p;
                if (c == '"') break;
                if (c < 0x20) return *why = "control character in a string", -1;
                if (c == '\\') {
                    k->escaped = 1;
                    if (++p == end) break;
                }
            }
            if (p == end) return *why = "unterminated string", -1;
            k->vlen = (size_t)(p - k->val);
            p++;
        } else if (*p == 'n') {
            if (end - p < 4 || memcmp(p, "null", 4) != 0) return *why = "bad value", -1;
            k->kind = V_NULL;
            k->val = p;
            k->vlen = 0;
            p += 4;
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            k->kind = V_NUM;
            k->val = p;
            while (p < end && (*p == '-' || (*p >= '0' && *p <= '9'))) p++;
            k->vlen = (size_t)(p - k->val);
        } else {
            return *why = "unexpected value (only strings, integers and null occur)", -1;
        }
        while (p < end && is_ws(*p)) p++;
        if (p == end) return *why = "unterminated object", -1;
        if (*p == '}') {
            p++;
            break;
        }
        if (*p != ',') return *why = "expected ',' or '}'", -1;
        p++;
    }
tail:
    while (p < end && is_ws(*p)) p++;
    if (p != end) return *why = "data after the object", -1;
    return n;
}

/* A non-negative integer without sign, leading zeros, fraction or exponent. */
static int parse_uint(const kv_t *k, int64_t *out)
{
    if (k->kind != V_NUM || k->vlen == 0 || k->vlen > 19 || (k->val[0] == '0' && k->vlen > 1)) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < k->vlen; i++) {
        if (k->val[i] < '0' || k->val[i] > '9') return -1;
        v = v * 10 + (uint64_t)(k->val[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX) return -1;
    *out = (int64_t)v;
    return 0;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v << 4 | (unsigned)d;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The string value of k (unescaped into the scratch buffer when needed). */
static int get_text(lmdm_ledger_verify_t *v, const kv_t *k, lmdm_ledger_text_t *out, const char **why)
{
    if (k->kind == V_NULL) {
        *out = (lmdm_ledger_text_t){0};
        return 0;
    }
    if (k->kind != V_STR) return *why = "expected a string or null", -1;
    if (!k->escaped) {
        *out = (lmdm_ledger_text_t){k->val, k->vlen};
        return 0;
    }
    /* Unescaped text is never longer than its escaped form. */
    char *o = v->scratch + v->scratch_len, *start = o;
    const char *p = k->val, *end = k->val + k->vlen;
    while (p < end) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        p++;
        char c = *p++;
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (end - p < 4 || hex4(p, &cp) != 0) return *why = "bad \\u escape", -1;
            p += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff) return *why = "lone low surrogate", -1;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                    return *why = "lone high surrogate", -1;
                p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp == 0) return *why = "NUL character in a string", -1;
            o += put_utf8(o, cp);
            break;
        }
        default: return *why = "bad escape", -1;
        }
    }
    *out = (lmdm_ledger_text_t){start, (size_t)(o - start)};
    v->scratch_len += (size_t)(o - start);
    return 0;
}

static int get_hash(const kv_t *k, unsigned char out[LMDM_LEDGER_HASH_LEN])
{
    return k->kind == V_STR && !k->escaped ? lmdm_ledger_unhex(k->val, k->vlen, out) : -1;
}

static int key_is(const kv_t *k, const char *name, size_t len) { return k->klen == len && memcmp(k->key, name, len) == 0; }

/* A key name and its length. */
typedef struct {
    const char *name;
    size_t len;
} keyname_t;
#define K(s) {s, sizeof(s) - 1}

/* Map keys to slots: names[i] goes to slot[i]. Every name must be present
 * exactly once and nothing else. Keys are usually in the written order, so
 * that is tried first. */
static int map_keys(const kv_t *kv, int n, const keyname_t *names, int nnames, const kv_t **slot, const char **why,
                    char *whybuf, size_t whylen)
{
    for (int i = 0; i < nnames; i++) slot[i] = NULL;
    for (int j = 0; j < n; j++) {
        int found = -1;
        if (j < nnames && key_is(&kv[j], names[j].name, names[j].len))
            found = j;
        else
            for (int i = 0; i < nnames && found < 0; i++)
                if (key_is(&kv[j], names[i].name, names[i].len)) found = i;
        if (found < 0) {
            snprintf(whybuf, whylen, "unknown key \"%.*s\"", (int)(kv[j].klen > 40 ? 40 : kv[j].klen), kv[j].key);
            *why = whybuf;
            return -1;
        }
        if (slot[found]) {
            snprintf(whybuf, whylen, "duplicate key \"%s\"", names[found].name);
            *why = whybuf;
            return -1;
        }
        slot[found] = &kv[j];
    }
    for (int i = 0; i < nnames; i++)
        if (!slot[i]) {
            snprintf(whybuf, whylen, "missing key \"%s\"", names[i].name);
            *why = whybuf;
            return -1;
        }
    return 0;
}

/* Declares names[] and the slots s[] of a line kind, and maps the line. */
#define NAMES(...)                                                                                                   \
    static const keyname_t names[] = {__VA_ARGS__};                                                                  \
    const kv_t *s[LMDM_ARRAY_LEN(names)];                                                                            \
    if (map_keys(kv, n, names, (int)LMDM_ARRAY_LEN(names), s, why, whybuf, whylen) != 0) return -1

enum { E_TYPE, E_POS, E_SEQ, E_AT, E_ACTOR, E_TENANT, E_ENROLLMENT, E_EVENT, E_REQUEST_TYPE, E_DECISION, E_REASON,
       E_BODY_KIND, E_DETAIL, E_BODY_DIGEST, E_PREV_HASH, E_HASH };

static int parse_entry(lmdm_ledger_verify_t *v, kv_t *kv, int n, lmdm_ledger_entry_t *e, const char **why, char *whybuf,
                       size_t whylen)
{
    NAMES(K("type"), K("pos"), K("seq"), K("at"), K("actor"), K("tenant_id"), K("enrollment"), K("event"),
          K("request_type"), K("decision"), K("reason"), K("body_kind"), K("detail"), K("body_digest"),
          K("prev_hash"), K("hash"));
    memset(e, 0, sizeof *e);
    if (parse_uint(s[E_POS], &e->pos) != 0 || e->pos < 1) return *why = "pos is not a positive integer", -1;
    if (parse_uint(s[E_SEQ], &e->seq) != 0 || e->seq < 1) return *why = "seq is not a positive integer", -1;
    if (s[E_TENANT]->kind != V_NULL) {
        if (parse_uint(s[E_TENANT], &e->tenant_id) != 0) return *why = "tenant_id is not an integer or null", -1;
        e->has_tenant_id = 1;
    }
    lmdm_ledger_text_t *texts[] = {&e->at,       &e->actor,    &e->enrollment, &e->event,  &e->request_type,
                                   &e->decision, &e->reason,   &e->body_kind,  &e->detail};
    static const int slots[] = {E_AT, E_ACTOR, E_ENROLLMENT, E_EVENT, E_REQUEST_TYPE, E_DECISION, E_REASON,
                                E_BODY_KIND, E_DETAIL};
    for (size_t i = 0; i < LMDM_ARRAY_LEN(slots); i++) {
        if (get_text(v, s[slots[i]], texts[i], why) != 0) {
            snprintf(whybuf, whylen, "%s: %s", names[slots[i]].name, *why);
            *why = whybuf;
            return -1;
        }
    }
    if (!e->at.s || !e->actor.s || !e->event.s) return *why = "at, actor and event cannot be null", -1;
    if (get_hash(s[E_BODY_DIGEST], e->body_digest) != 0) return *why = "body_digest is not 64 lower-case hex digits", -1;
    if (get_hash(s[E_PREV_HASH], e->prev_hash) != 0) return *why = "prev_hash is not 64 lower-case hex digits", -1;
    if (get_hash(s[E_HASH], e->hash) != 0) return *why = "hash is not 64 lower-case hex digits", -1;
    return 0;
}

static int parse_checkpoint(lmdm_ledger_verify_t *v, kv_t *kv, int n, lmdm_ledger_checkpoint_t *c, const char **why,
                            char *whybuf, size_t whylen)
{
    NAMES(K("type"), K("pos"), K("hash"), K("signed_at"), K("key_id"), K("signature"));
    memset(c, 0, sizeof *c);
    if (parse_uint(s[1], &c->pos) != 0 || c->pos < 1) return *why = "pos is not a positive integer", -1;
    if (get_hash(s[2], c->hash) != 0) return *why = "hash is not 64 lower-case hex digits", -1;
    if (get_text(v, s[3], &c->signed_at, why) != 0 || get_text(v, s[4], &c->key_id, why) != 0 ||
        get_text(v, s[5], &c->signature, why) != 0)
        return -1;
    if (!c->signed_at.s || !c->key_id.s || !c->signature.s) return *why = "signed_at, key_id, signature cannot be null", -1;
    return 0;
}

static int str_is(const kv_t *k, const char *want)
{
    size_t n = strlen(want);
    return k->kind == V_STR && !k->escaped && k->vlen == n && memcmp(k->val, want, n) == 0;
}

static int parse_header(lmdm_ledger_verify_t *v, kv_t *kv, int n, const char **why, char *whybuf, size_t whylen)
{
    int tenant = 0;
    for (int i = 0; i < n; i++) tenant |= key_is(&kv[i], "tenant_id", 9);
    if (tenant) {
        NAMES(K("type"), K("format"), K("scope"), K("tenant_id"));
        int64_t t;
        if (!str_is(s[1], LMDM_LEDGER_FORMAT)) return *why = "unknown format (expected " LMDM_LEDGER_FORMAT ")", -1;
        if (!str_is(s[2], "tenant") || parse_uint(s[3], &t) != 0) return *why = "bad scope", -1;
        v->partial = 1;
        return 0;
    }
    NAMES(K("type"), K("format"), K("scope"));
    if (!str_is(s[1], LMDM_LEDGER_FORMAT)) return *why = "unknown format (expected " LMDM_LEDGER_FORMAT ")", -1;
    if (!str_is(s[2], "full")) return *why = "bad scope", -1;
    v->partial = 0;
    return 0;
}

static int parse_end(lmdm_ledger_verify_t *v, kv_t *kv, int n, const char **why, char *whybuf, size_t whylen)
{
    NAMES(K("type"), K("entries"), K("checkpoints"));
    int64_t ne, nc;
    if (parse_uint(s[1], &ne) != 0 || parse_uint(s[2], &nc) != 0) return *why = "bad counts", -1;
    if (ne != v->entries || nc != v->checkpoints) {
        snprintf(whybuf, whylen, "the end line counts %lld entries and %lld checkpoints, the export holds %lld and %lld",
                 (long long)ne, (long long)nc, (long long)v->entries, (long long)v->checkpoints);
        *why = whybuf;
        return -1;
    }
    return 0;
}

/* ASCII lines (the usual case) need no UTF-8 check; others get one. */
static int text_ok(const char *p, size_t n)
{
    size_t i = 0;
    uint64_t acc = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        acc |= w;
    }
    for (; i < n; i++) acc |= (unsigned char)p[i];
    if (!(acc & 0x8080808080808080ull)) return 1;
    return lmdm_utf8_valid(p, n);
}

int lmdm_ledger_verify_line(lmdm_ledger_verify_t *v, const char *line, size_t len)
{
    if (v->failed) return -1;
    v->line++;
    kv_t kv[MAX_KEYS];
    const char *why = NULL;
    char whybuf[160];
    if (!text_ok(line, len)) return fail(v, -1, -1, "line %ld: not UTF-8", v->line);
    int n = scan_object(line, line + len, kv, &why);
    if (n < 1) return fail(v, -1, -1, "line %ld: malformed: %s", v->line, why ? why : "empty object");
    if (len > v->scratch_cap) {
        free(v->scratch);
        v->scratch_cap = len < 4096 ? 4096 : len;
        v->scratch = lmdm_xmalloc(v->scratch_cap);
    }
    v->scratch_len = 0;
    /* "type" comes first in what lmdm writes; find it anywhere. */
    const kv_t *type = NULL;
    for (int i = 0; i < n && !type; i++)
        if (key_is(&kv[i], "type", 4)) type = &kv[i];
    if (!type) return fail(v, -1, -1, "line %ld: malformed: no \"type\"", v->line);
    int rc;
    if (v->phase == PHASE_END) return fail(v, -1, -1, "line %ld: data after the end line", v->line);
    if (v->phase == PHASE_HEADER) {
        if (!str_is(type, "header")) return fail(v, -1, -1, "line %ld: the export does not start with its header", v->line);
        if (parse_header(v, kv, n, &why, whybuf, sizeof whybuf) != 0)
            return fail(v, -1, -1, "line %ld: header: %s", v->line, why);
        v->phase = PHASE_BODY;
        return 0;
    }
    if (str_is(type, "entry")) {
        lmdm_ledger_entry_t e;
        if (parse_entry(v, kv, n, &e, &why, whybuf, sizeof whybuf) != 0) {
            int64_t pos = -1;
            const kv_t *p = NULL;
            for (int i = 0; i < n && !p; i++)
                if (key_is(&kv[i], "pos", 3)) p = &kv[i];
            if (p && parse_uint(p, &pos) != 0) pos = -1;
            return fail(v, pos, -1, "line %ld: malformed entry: %s", v->line, why);
        }
        rc = verify_entry(v, &e);
    } else if (str_is(type, "checkpoint")) {
        lmdm_ledger_checkpoint_t c;
        if (parse_checkpoint(v, kv, n, &c, &why, whybuf, sizeof whybuf) != 0)
            return fail(v, -1, -1, "line %ld: malformed checkpoint: %s", v->line, why);
        rc = verify_checkpoint(v, &c);
    } else if (str_is(type, "end")) {
        if (parse_end(v, kv, n, &why, whybuf, sizeof whybuf) != 0)
            return fail(v, -1, -1, "line %ld: %s", v->line, why);
        v->phase = PHASE_END;
        rc = 0;
    } else if (str_is(type, "header")) {
        return fail(v, -1, -1, "line %ld: a second header", v->line);
    } else {
        return fail(v, -1, -1, "line %ld: unknown line type", v->line);
    }
    return rc;
}

/* ---- whole exports ---- */

int lmdm_ledger_verify_file(lmdm_ledger_verify_t *v, FILE *in, lmdm_ledger_progress_fn progress, void *ctx)
{
    size_t cap = READ_CHUNK, have = 0;
    char *buf = lmdm_xmalloc(cap);
    int rc = 0, eof = 0;
    int64_t next_progress = PROGRESS_EVERY;
    while (!eof && rc == 0) {
        if (have == cap) {
            if (cap >= MAX_LINE) {
                v->line++;
                rc = fail(v, -1, -1, "line %ld: longer than %u bytes", v->line, MAX_LINE);
                break;
            }
            cap *= 2;
            buf = lmdm_xrealloc(buf, cap);
        }
        size_t got = fread(buf + have, 1, cap - have, in);
        if (got == 0) {
            if (ferror(in)) {
                free(buf);
                return LMDM_ERR_IO;
            }
            eof = 1;
        }
        have += got;
        char *p = buf, *end = buf + have;
        for (;;) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl) break;
            if (lmdm_ledger_verify_line(v, p, (size_t)(nl - p)) != 0) {
                rc = -1;
                break;
            }
            p = nl + 1;
            if (progress && v->entries >= next_progress) {
                progress(ctx, v->entries);
                next_progress = v->entries + PROGRESS_EVERY;
            }
        }
        if (rc == 0 && eof && p < end && lmdm_ledger_verify_line(v, p, (size_t)(end - p)) != 0) rc = -1;
        if (eof) break;
        have = (size_t)(end - p);
        memmove(buf, p, have);
    }
    free(buf);
    return rc;
}

/* ---- the live database ---- */

static PGresult *q(PGconn *pg, const char *sql, ExecStatusType want, char *err, size_t errlen)
{
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) == want) return r;
    snprintf(err, errlen, "%s", PQresultErrorMessage(r));
    size_t n = strlen(err);
    while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' ')) err[--n] = '\0';
    PQclear(r);
    return NULL;
}

int lmdm_ledger_verify_db(lmdm_ledger_verify_t *v, PGconn *pg, lmdm_ledger_progress_fn progress, void *ctx, char *err,
                          size_t errlen)
{
    PGresult *cps = NULL, *r = NULL;
    int rc = LMDM_ERR_DB, ci = 0;
    v->phase = PHASE_END; /* no header or end line here */
    v->partial = 0;
    int64_t next_progress = PROGRESS_EVERY;
    r = q(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", PGRES_COMMAND_OK, err, errlen);
    if (!r) return LMDM_ERR_DB;
    PQclear(r);
    cps = q(pg, "SELECT " LMDM_LEDGER_CHECKPOINT_COLUMNS " FROM ledger_checkpoint ORDER BY pos", PGRES_TUPLES_OK, err,
            errlen);
    if (!cps) goto out;
    r = q(pg,
          "DECLARE lmdm_ledger_verify NO SCROLL CURSOR FOR SELECT " LMDM_LEDGER_ENTRY_COLUMNS
          " FROM ledger_seal s LEFT JOIN ledger l ON l.seq = s.seq ORDER BY s.pos",
          PGRES_COMMAND_OK, err, errlen);
    if (!r) goto out;
    PQclear(r);
    int ncp = PQntuples(cps);
    lmdm_ledger_checkpoint_t cp;
    int more = 1;
    while (more && !v->failed) {
        r = q(pg, "FETCH 5000 FROM lmdm_ledger_verify", PGRES_TUPLES_OK, err, errlen);
        if (!r) goto out;
        int n = PQntuples(r);
        more = n == 5000;
        for (int i = 0; i < n && !v->failed; i++) {
            lmdm_ledger_entry_t e;
            int gone = lmdm_ledger_entry_from_row(r, i, &e);
            for (; ci < ncp && atoll(PQgetvalue(cps, ci, 0)) < e.pos; ci++) {
                lmdm_ledger_checkpoint_from_row(cps, ci, &cp);
                verify_checkpoint(v, &cp);
            }
            if (v->failed) break;
            if (gone) {
                fail(v, e.pos, e.seq, "pos %lld is sealed but its ledger entry (seq %lld) is gone",
                     (long long)e.pos, (long long)e.seq);
                break;
            }
            verify_entry(v, &e);
            if (progress && v->entries >= next_progress) {
                progress(ctx, v->entries);
                next_progress = v->entries + PROGRESS_EVERY;
            }
        }
        PQclear(r);
        r = NULL;
    }
    for (; ci < ncp && !v->failed; ci++) {
        lmdm_ledger_checkpoint_from_row(cps, ci, &cp);
        verify_checkpoint(v, &cp);
    }
    if (!v->failed) {
        /* Every ledger row must be in the chain or on the sealer's list: a
         * row that is neither was cut out of the chain. */
        r = q(pg,
              "SELECT l.seq FROM ledger l WHERE NOT EXISTS (SELECT 1 FROM ledger_seal s WHERE s.seq = l.seq) "
              "AND NOT EXISTS (SELECT 1 FROM ledger_pending p WHERE p.seq = l.seq) ORDER BY l.seq LIMIT 1",
              PGRES_TUPLES_OK, err, errlen);
        if (!r) goto out;
        if (PQntuples(r) == 1)
            fail(v, -1, atoll(PQgetvalue(r, 0, 0)),
                 "seq %s is in the ledger but neither sealed nor waiting for the sealer: it was cut out of the chain",
                 PQgetvalue(r, 0, 0));
        PQclear(r);
        r = q(pg, "SELECT count(*) FROM ledger_pending", PGRES_TUPLES_OK, err, errlen);
        if (!r) goto out;
        v->pending = atoll(PQgetvalue(r, 0, 0));
        PQclear(r);
        r = NULL;
    }
    rc = v->failed ? -1 : 0;
out:
    PQclear(r);
    PQclear(cps);
    PQclear(PQexec(pg, "ROLLBACK"));
    return rc;
}
