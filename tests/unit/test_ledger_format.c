/* The audit ledger's format, without a database: the canonical hash against
 * fixed vectors computed by an independent implementation of docs/audit.md
 * (Python's hashlib), the checkpoint message, the export writer and reader
 * round trip, tampered exports (a changed field, a removed entry, two entries
 * swapped, a cut tail, a chain recomputed after a change, bad signatures,
 * anchors) and hostile lines, each of which must fail naming its line. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lmdm/ledger.h"

#define T(str) ((lmdm_ledger_text_t){str, sizeof(str) - 1})

static lmdm_secrets_t keys, other;

static void hex_is(const unsigned char h[32], const char *want)
{
    char hex[65];
    lmdm_ledger_hex(h, hex);
    CHECK_STR_EQ(hex, want);
}

/* The two entries of the vectors (tests/unit: see the file comment). */
static void vector_entries(lmdm_ledger_entry_t *e1, lmdm_ledger_entry_t *e2)
{
    memset(e1, 0, sizeof *e1);
    e1->pos = 1;
    e1->seq = 7;
    e1->at = T("2024-05-01T12:00:00.000001Z");
    e1->actor = T("tenant");
    e1->tenant_id = 3;
    e1->has_tenant_id = 1;
    e1->enrollment = T("eabcdefghijklmnopqrstuvwxyz");
    e1->event = T("command");
    e1->request_type = T("EraseDevice");
    e1->decision = T("block");
    e1->reason = T("never_allowed");
    e1->detail = T("{\"decision_id\": 1}");
    lmdm_ledger_body_digest(NULL, 0, e1->body_digest);
    lmdm_ledger_entry_hash(e1, e1->hash);

    memset(e2, 0, sizeof *e2);
    e2->pos = 2;
    e2->seq = 9;
    e2->at = T("2024-05-01T12:00:01.500000Z");
    e2->actor = T("device");
    e2->event = T("command.result");
    e2->request_type = T("InstalledApplicationList");
    e2->reason = T("");
    e2->body_kind = T("result");
    e2->detail = T("{\"status\": \"acknowledged\", \"x\": \"\xc3\xa9\n\"}");
    lmdm_ledger_body_digest("<plist/>", 8, e2->body_digest);
    memcpy(e2->prev_hash, e1->hash, 32);
    lmdm_ledger_entry_hash(e2, e2->hash);
}

static void test_vectors(void)
{
    lmdm_ledger_entry_t e1, e2;
    vector_entries(&e1, &e2);
    hex_is(e1.body_digest, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
    hex_is(e2.body_digest, "828c8c8391a5aaa5f2ff84ae957d3a61d3897bf462786c2ef178e6a1f363a9e4");
    hex_is(e1.hash, "52aa33df7e81f25807c71896d749e567eff7f044aa108162ad08bdafe566d46d");
    hex_is(e2.hash, "b3ad518e5b97e3882d997a137e66ccb4ec2da0c9208c1b9b4393ef11368a04a4");
}

/* null and "" differ; so do a null tenant and tenant 0, and every field. */
static void test_fields_matter(void)
{
    lmdm_ledger_entry_t e1, e2, x;
    vector_entries(&e1, &e2);
    unsigned char h[32];
    x = e2;
    x.reason = (lmdm_ledger_text_t){0};
    lmdm_ledger_entry_hash(&x, h);
    CHECK(memcmp(h, e2.hash, 32) != 0);
    x = e2;
    x.has_tenant_id = 1;
    x.tenant_id = 0;
    lmdm_ledger_entry_hash(&x, h);
    CHECK(memcmp(h, e2.hash, 32) != 0);
    /* moving bytes between adjacent fields changes the hash (length prefixes) */
    x = e1;
    x.request_type = T("EraseDeviceb");
    x.decision = T("lock");
    lmdm_ledger_entry_hash(&x, h);
    CHECK(memcmp(h, e1.hash, 32) != 0);
    x = e1;
    x.pos = 2;
    lmdm_ledger_entry_hash(&x, h);
    CHECK(memcmp(h, e1.hash, 32) != 0);
    x = e1;
    x.prev_hash[31] ^= 1;
    lmdm_ledger_entry_hash(&x, h);
    CHECK(memcmp(h, e1.hash, 32) != 0);
    x = e1;
    x.body_digest[0] ^= 1;
    lmdm_ledger_entry_hash(&x, h);
    CHECK(memcmp(h, e1.hash, 32) != 0);
}

static void test_checkpoint_message(void)
{
    unsigned char h[32];
    for (int i = 0; i < 32; i++) h[i] = (unsigned char)i;
    char msg[256];
    const char *at = "2024-05-01T12:00:00.123456Z";
    size_t n = lmdm_ledger_checkpoint_message(1000, h, at, strlen(at), msg, sizeof msg);
    const char *want = "lmdm-ledger-v1\n1000\n000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
                       "2024-05-01T12:00:00.123456Z";
    CHECK_INT_EQ(n, strlen(want));
    CHECK(n == strlen(want) && memcmp(msg, want, n) == 0);
    CHECK_INT_EQ(lmdm_ledger_checkpoint_message(1000, h, at, strlen(at), msg, 20), 0);
    char id[17];
    lmdm_ledger_key_id(keys.ledger_pk, id);
    CHECK_INT_EQ(strlen(id), 16);
    /* the ledger key is its own, not the webhook key */
    CHECK(memcmp(keys.ledger_pk, keys.sign_pk, 32) != 0);
    char b64[45];
    unsigned char pk[32];
    lmdm_ledger_public_b64(&keys, b64);
    CHECK_INT_EQ(lmdm_ledger_parse_key(b64, pk), 0);
    CHECK(memcmp(pk, keys.ledger_pk, 32) == 0);
    CHECK(lmdm_ledger_parse_key("AAAA", pk) != 0);
    CHECK(lmdm_ledger_parse_key("not base64 at all!!", pk) != 0);
}

/* ---- a generated export ---- */

#define N 50
static char at_s[N + 1][40], detail_s[N + 1][80];
static lmdm_ledger_entry_t chain[N + 1];

static void make_chain(void)
{
    unsigned char prev[32] = {0};
    for (int i = 1; i <= N; i++) {
        lmdm_ledger_entry_t *e = &chain[i];
        memset(e, 0, sizeof *e);
        e->pos = i;
        e->seq = 100 + i;
        snprintf(at_s[i], sizeof at_s[i], "2024-05-01T12:00:%02d.000000Z", i);
        e->at = (lmdm_ledger_text_t){at_s[i], strlen(at_s[i])};
        e->actor = i % 3 ? T("tenant") : T("owner");
        e->has_tenant_id = i % 5 != 0;
        e->tenant_id = i % 2 + 1;
        e->enrollment = T("eabcdefghijklmnopqrstuvwxyz");
        e->event = T("command");
        e->request_type = T("InstallApplication");
        e->decision = T("scope");
        e->reason = i % 4 ? (lmdm_ledger_text_t){0} : T("has \"quotes\", a \\ and a tab\t");
        e->body_kind = T("command");
        snprintf(detail_s[i], sizeof detail_s[i], "{\"decision_id\": %d, \"n\": \"\xe2\x82\xac\"}", i);
        e->detail = (lmdm_ledger_text_t){detail_s[i], strlen(detail_s[i])};
        lmdm_ledger_body_digest(detail_s[i], 5, e->body_digest);
        memcpy(e->prev_hash, prev, 32);
        lmdm_ledger_entry_hash(e, e->hash);
        memcpy(prev, e->hash, 32);
    }
}

static void checkpoint_line(lmdm_buf_t *b, const lmdm_secrets_t *k, int64_t pos, const unsigned char hash[32])
{
    static char sig64[89], id[17];
    const char *at = "2024-05-01T13:00:00.000000Z";
    char msg[256];
    size_t n = lmdm_ledger_checkpoint_message(pos, hash, at, strlen(at), msg, sizeof msg);
    unsigned char sig[64];
    crypto_sign_detached(sig, NULL, (unsigned char *)msg, n, k->ledger_sk);
    sodium_bin2base64(sig64, sizeof sig64, sig, 64, sodium_base64_VARIANT_ORIGINAL);
    lmdm_ledger_key_id(k->ledger_pk, id);
    lmdm_ledger_checkpoint_t c = {.pos = pos, .signed_at = {at, strlen(at)}, .key_id = {id, 16}, .signature = {sig64, 88}};
    memcpy(c.hash, hash, 32);
    lmdm_ledger_checkpoint_json(b, &c);
}

/* The export of chain[1..N] with checkpoints at 20, 40, 50, with hooks:
 * entries in `order` (NULL: 1..N; 0 ends), checkpoints signed by `k`. */
static void make_export(lmdm_buf_t *b, const int *order, const lmdm_secrets_t *k)
{
    b->len = 0;
    lmdm_ledger_header_json(b, -1);
    int entries = 0, cps = 0;
    for (int j = 0; order ? order[j] != 0 : j < N; j++) {
        int i = order ? order[j] : j + 1;
        lmdm_ledger_entry_json(b, &chain[i]);
        entries++;
        if (i == 20 || i == 40 || i == N) {
            checkpoint_line(b, k, i, chain[i].hash);
            cps++;
        }
    }
    lmdm_ledger_end_json(b, entries, cps);
}

/* Verify text with the given key (and an optional anchor); report out. */
static int verify_text(const char *text, size_t len, const unsigned char pk[32], lmdm_ledger_report_t *out,
                       int64_t anchor_pos, const unsigned char *anchor)
{
    lmdm_ledger_verify_t *v = lmdm_ledger_verify_new(pk);
    if (anchor) lmdm_ledger_verify_anchor(v, anchor_pos, anchor);
    FILE *f = len ? fmemopen((void *)text, len, "r") : fopen("/dev/null", "r");
    int rc = lmdm_ledger_verify_file(v, f, NULL, NULL);
    fclose(f);
    int fin = lmdm_ledger_verify_finish(v, out);
    lmdm_ledger_verify_free(v);
    CHECK(rc == 0 || rc == -1);
    if (rc != 0) CHECK_INT_EQ(fin, -1); /* a stream may pass and its end fail, never the reverse */
    return fin;
}

static void test_round_trip(void)
{
    lmdm_buf_t b = {0};
    make_export(&b, NULL, &keys);
    lmdm_ledger_report_t r;
    CHECK_INT_EQ(verify_text(b.data, b.len, keys.ledger_pk, &r, 0, NULL), 0);
    CHECK(r.ok);
    CHECK_INT_EQ(r.entries, N);
    CHECK_INT_EQ(r.checkpoints, 3);
    CHECK_INT_EQ(r.last_pos, N);
    CHECK_INT_EQ(r.last_checkpoint_pos, N);
    CHECK_INT_EQ(r.unsigned_tail, 0);
    /* without the final newline, the same */
    CHECK_INT_EQ(verify_text(b.data, b.len - 1, keys.ledger_pk, &r, 0, NULL), 0);
    /* an anchor that matches */
    CHECK_INT_EQ(verify_text(b.data, b.len, keys.ledger_pk, &r, 33, chain[33].hash), 0);
    lmdm_buf_free(&b);
}

/* Replace the first occurrence of `from` after the line starting with
 * `"pos":P,` in the export by `to` (same length). */
static void poke(lmdm_buf_t *b, int pos, const char *from, const char *to)
{
    char needle[64];
    snprintf(needle, sizeof needle, "{\"type\":\"entry\",\"pos\":%d,", pos);
    char *line = strstr(b->data, needle);
    CHECK(line != NULL);
    if (!line) return;
    char *at = strstr(line, from);
    CHECK(at != NULL && strlen(from) == strlen(to));
    if (at) memcpy(at, to, strlen(to));
}

static void fails_at(const lmdm_buf_t *b, const unsigned char pk[32], int64_t pos, const char *why)
{
    lmdm_ledger_report_t r;
    CHECK_INT_EQ(verify_text(b->data, b->len, pk, &r, 0, NULL), -1);
    CHECK(!r.ok);
    CHECK_INT_EQ(r.pos, pos);
    CHECK_STR_CONTAINS(r.why, why);
}

static void test_tampered(void)
{
    lmdm_buf_t b = {0};
    /* a changed field */
    make_export(&b, NULL, &keys);
    poke(&b, 10, "\"decision\":\"scope\"", "\"decision\":\"allow\"");
    fails_at(&b, keys.ledger_pk, 10, "hash mismatch at pos 10");
    make_export(&b, NULL, &keys);
    poke(&b, 12, "\"decision_id\\\": 12", "\"decision_id\\\": 13");
    fails_at(&b, keys.ledger_pk, 12, "hash mismatch");
    /* a removed entry */
    int removed[N], swapped[N], cut[N];
    for (int i = 0, j = 0; i < N; i++)
        if (i + 1 != 10) removed[j++] = i + 1;
    removed[N - 1] = 0;
    make_export(&b, removed, &keys);
    fails_at(&b, keys.ledger_pk, 11, "entries 10..10 are missing");
    /* two entries swapped */
    for (int i = 0; i < N; i++) swapped[i] = i + 1;
    swapped[9] = 11;
    swapped[10] = 10;
    int sw[N + 1];
    memcpy(sw, swapped, sizeof swapped);
    sw[N] = 0;
    make_export(&b, sw, &keys);
    fails_at(&b, keys.ledger_pk, 11, "missing");
    /* the tail cut after pos 35: the checkpoint for 40 has no entry */
    b.len = 0;
    lmdm_ledger_header_json(&b, -1);
    for (int i = 1; i <= 35; i++) {
        lmdm_ledger_entry_json(&b, &chain[i]);
        if (i == 20) checkpoint_line(&b, &keys, 20, chain[20].hash);
    }
    checkpoint_line(&b, &keys, 40, chain[40].hash);
    checkpoint_line(&b, &keys, 50, chain[50].hash);
    lmdm_ledger_end_json(&b, 35, 3);
    fails_at(&b, keys.ledger_pk, 40, "entries 36..40 are missing");
    /* the tail cut together with its checkpoints: only an anchor sees it */
    for (int i = 0; i < 30; i++) cut[i] = i + 1;
    cut[30] = 0;
    make_export(&b, cut, &keys);
    lmdm_ledger_report_t r;
    CHECK_INT_EQ(verify_text(b.data, b.len, keys.ledger_pk, &r, 0, NULL), 0);
    CHECK_INT_EQ(r.unsigned_tail, 10);
    CHECK_INT_EQ(verify_text(b.data, b.len, keys.ledger_pk, &r, 40, chain[40].hash), -1);
    CHECK_INT_EQ(r.pos, 40);
    CHECK_STR_CONTAINS(r.why, "anchor");
    make_export(&b, NULL, &keys);
    unsigned char wrong[32];
    memcpy(wrong, chain[33].hash, 32);
    wrong[0] ^= 1;
    CHECK_INT_EQ(verify_text(b.data, b.len, keys.ledger_pk, &r, 33, wrong), -1);
    CHECK_INT_EQ(r.pos, 33);
    /* a chain recomputed after a change: the next checkpoint catches it */
    lmdm_ledger_entry_t saved[N + 1];
    memcpy(saved, chain, sizeof chain);
    chain[15].decision = T("allow");
    for (int i = 15; i <= N; i++) {
        if (i > 15) memcpy(chain[i].prev_hash, chain[i - 1].hash, 32);
        lmdm_ledger_entry_hash(&chain[i], chain[i].hash);
    }
    lmdm_buf_t forged = {0};
    forged.len = 0;
    lmdm_ledger_header_json(&forged, -1);
    for (int i = 1; i <= N; i++) {
        lmdm_ledger_entry_json(&forged, &chain[i]);
        if (i == 20) checkpoint_line(&forged, &keys, 20, saved[20].hash); /* the old, signed head */
    }
    lmdm_ledger_end_json(&forged, N, 1);
    memcpy(chain, saved, sizeof chain);
    fails_at(&forged, keys.ledger_pk, 20, "signs another hash");
    lmdm_buf_free(&forged);
    /* the wrong key, and a bad signature */
    make_export(&b, NULL, &other);
    fails_at(&b, keys.ledger_pk, 20, "not the given key");
    make_export(&b, NULL, &keys);
    char *sig = strstr(b.data, "\"signature\":\"");
    CHECK(sig != NULL);
    if (sig) sig[14] = sig[14] == 'A' ? 'B' : 'A';
    fails_at(&b, keys.ledger_pk, 20, "bad signature");
    /* an incomplete export */
    make_export(&b, NULL, &keys);
    char *end = strstr(b.data, "{\"type\":\"end\"");
    CHECK(end != NULL);
    if (end) b.len = (size_t)(end - b.data);
    fails_at(&b, keys.ledger_pk, N, "without its end line");
    make_export(&b, NULL, &keys);
    end = strstr(b.data, "\"entries\":50");
    if (end) memcpy(end, "\"entries\":49", 12);
    CHECK_INT_EQ(verify_text(b.data, b.len, keys.ledger_pk, &r, 0, NULL), -1);
    CHECK_STR_CONTAINS(r.why, "end line counts 49 entries");
    lmdm_buf_free(&b);
}

/* A tenant's export: entries 3, 7 and 20, and every checkpoint. */
static void test_partial(void)
{
    lmdm_buf_t b = {0};
    lmdm_ledger_header_json(&b, 2);
    lmdm_ledger_entry_json(&b, &chain[3]);
    lmdm_ledger_entry_json(&b, &chain[7]);
    lmdm_ledger_entry_json(&b, &chain[20]);
    checkpoint_line(&b, &keys, 20, chain[20].hash);
    checkpoint_line(&b, &keys, 40, chain[40].hash);
    lmdm_ledger_end_json(&b, 3, 2);
    lmdm_ledger_report_t r;
    CHECK_INT_EQ(verify_text(b.data, b.len, keys.ledger_pk, &r, 0, NULL), 0);
    CHECK(r.partial);
    CHECK_INT_EQ(r.entries, 3);
    CHECK_INT_EQ(r.checkpoints, 2);
    /* its entries' content is still bound to their hashes */
    char *d = strstr(b.data, "\"decision\":\"scope\"");
    if (d) memcpy(d, "\"decision\":\"allow\"", 18);
    fails_at(&b, keys.ledger_pk, 3, "hash mismatch");
    lmdm_buf_free(&b);
}

static void test_hostile_lines(void)
{
    lmdm_buf_t good = {0};
    lmdm_ledger_entry_json(&good, &chain[1]);
    good.data[--good.len] = '\0'; /* no newline */
    char *g = good.data;
    char big[200];
    snprintf(big, sizeof big, "%s", "{\"type\":\"entry\",\"pos\":99999999999999999999}");
    const char *bad[] = {
        "",
        "   ",
        "[]",
        "{",
        "{}",
        "{\"type\":\"entry\"",
        "{\"type\":\"entry\"}",
        "{\"type\":\"nope\"}",
        "{\"type\":\"header\",\"format\":\"lmdm-ledger-v1\",\"scope\":\"full\"}",
        "{\"type\":\"checkpoint\",\"pos\":1}",
        "{\"type\":\"end\",\"entries\":-1,\"checkpoints\":0}",
        "{\"type\":{\"x\":1}}",
        "{\"type\":true}",
        "{\"type\":\"entry\" \"pos\":1}",
        "{\"type\":\"entry\",,}",
        "{\"ty\\u0070e\":\"entry\"}",
        big,
        "{\"type\":\"entry\",\"pos\":01}",
        "{\"type\":\"entry\",\"pos\":-1}",
        "{\"type\":\"entry\",\"pos\":1.5}",
        "{\"type\":\"entry\",\"pos\":1e3}",
        "{\"type\":\"str\xff\"}",
        "{\"type\":\"a\tb\"}",
        "{\"type\":\"entry\"} trailing",
        "\xef\xbb\xbf{\"type\":\"end\",\"entries\":0,\"checkpoints\":0}",
        "{\"type\":\"entry\",\"type\":\"entry\"}",
        "{\"type\":\"end\",\"entries\":0,\"checkpoints\":0,\"x\":1}",
        "{\"type\":\"end\",\"entries\":\"0\",\"checkpoints\":0}",
        "{\"type\":\"entry\",\"pos\":nul}",
        "{\"type\":\"end\\",
    };
    lmdm_ledger_report_t r;
    char text[4096];
    for (size_t i = 0; i < LMDM_ARRAY_LEN(bad); i++) {
        int n = snprintf(text, sizeof text, "{\"type\":\"header\",\"format\":\"lmdm-ledger-v1\",\"scope\":\"full\"}\n%s\n",
                         bad[i]);
        if (verify_text(text, (size_t)n, keys.ledger_pk, &r, 0, NULL) != -1) {
            harness_fail(__FILE__, __LINE__, "hostile line %zu accepted: %s", i, bad[i]);
            continue;
        }
        if (!strstr(r.why, "line 2")) harness_fail(__FILE__, __LINE__, "line %zu: \"%s\" names no line", i, r.why);
    }
    /* Variants of a good entry line: each key's value spoiled. */
    struct {
        const char *from, *to;
        const char *why;
    } spoil[] = {
        {"\"pos\":1,", "\"pos\":0,", "pos is not"},
        {"\"seq\":101", "\"seq\":\"10\"", "seq is not"},
        {"\"hash\":\"", "\"hash\":\"A", "hash is not"},
        {"\"prev_hash\":\"0", "\"prev_hash\":\"", "prev_hash is not"},
        {"\"body_digest\":\"", "\"body_digest\":\"\\u0030", "body_digest is not"},
        {"\"actor\":\"tenant\"", "\"actor\":null", "cannot be null"},
        {"\"event\":\"command\"", "\"event\":\"c\\q\"", "bad escape"},
        {"\"event\":\"command\"", "\"event\":\"\\ud800\"", "surrogate"},
        {"\"event\":\"command\"", "\"event\":\"\\udc00x\"", "surrogate"},
        {"\"event\":\"command\"", "\"event\":\"\\u0000\"", "NUL"},
        {"\"event\":\"command\"", "\"event\":\"\\u12\"", "\\u escape"},
        {"\"tenant_id\":2", "\"tenant_id\":\"2\"", "tenant_id"},
        {"\"detail\":", "\"details\":", "unknown key"},
    };
    for (size_t i = 0; i < LMDM_ARRAY_LEN(spoil); i++) {
        char line[2048];
        const char *at = strstr(g, spoil[i].from);
        if (!at) {
            harness_fail(__FILE__, __LINE__, "spoil %zu: \"%s\" not in %s", i, spoil[i].from, g);
            continue;
        }
        int n = snprintf(line, sizeof line, "%.*s%s%s", (int)(at - g), g, spoil[i].to, at + strlen(spoil[i].from));
        n = snprintf(text, sizeof text, "{\"type\":\"header\",\"format\":\"lmdm-ledger-v1\",\"scope\":\"full\"}\n%.*s\n",
                     n, line);
        if (verify_text(text, (size_t)n, keys.ledger_pk, &r, 0, NULL) != -1) {
            harness_fail(__FILE__, __LINE__, "spoiled line %zu accepted", i);
            continue;
        }
        if (!strstr(r.why, spoil[i].why))
            harness_fail(__FILE__, __LINE__, "spoil %zu: \"%s\" does not say \"%s\"", i, r.why, spoil[i].why);
    }
    /* keys in another order and escapes that decode to the same text verify */
    char line[2048];
    lmdm_buf_t e = {0};
    lmdm_ledger_entry_json(&e, &chain[1]);
    e.data[--e.len] = '\0';
    const char *act = strstr(e.data, ",\"actor\":\"tenant\"");
    CHECK(act != NULL);
    if (act) {
        int n = snprintf(line, sizeof line, "{\"actor\":\"t\\u0065nant\", %.*s%s", (int)(act - e.data - 1), e.data + 1,
                         act + strlen(",\"actor\":\"tenant\""));
        n = snprintf(text, sizeof text,
                     "{\"type\":\"header\",\"format\":\"lmdm-ledger-v1\",\"scope\":\"full\"}\n%.*s\n"
                     "{\"type\":\"end\",\"entries\":1,\"checkpoints\":0}\n",
                     n, line);
        CHECK_INT_EQ(verify_text(text, (size_t)n, keys.ledger_pk, &r, 0, NULL), 0);
        if (!r.ok) fprintf(stderr, "reordered line: %s\n", r.why);
    }
    /* a line with no end */
    char *huge = malloc(9u * 1024 * 1024);
    memset(huge, ' ', 9u * 1024 * 1024);
    const char *hdr = "{\"type\":\"header\",\"format\":\"lmdm-ledger-v1\",\"scope\":\"full\"}\n";
    memcpy(huge, hdr, strlen(hdr));
    CHECK_INT_EQ(verify_text(huge, 9u * 1024 * 1024, keys.ledger_pk, &r, 0, NULL), -1);
    CHECK_STR_CONTAINS(r.why, "line 2");
    free(huge);
    /* nothing at all, or no header */
    CHECK_INT_EQ(verify_text("", 0, keys.ledger_pk, &r, 0, NULL), -1);
    CHECK_STR_CONTAINS(r.why, "no header");
    CHECK_INT_EQ(verify_text(g, strlen(g), keys.ledger_pk, &r, 0, NULL), -1);
    CHECK_STR_CONTAINS(r.why, "line 1: the export does not start with its header");
    lmdm_buf_free(&e);
    lmdm_buf_free(&good);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    unsigned char master[32], master2[32];
    for (int i = 0; i < 32; i++) {
        master[i] = (unsigned char)i;
        master2[i] = (unsigned char)(255 - i);
    }
    lmdm_secrets_derive(master, &keys);
    lmdm_secrets_derive(master2, &other);
    make_chain();
    RUN(test_vectors);
    RUN(test_fields_matter);
    RUN(test_checkpoint_message);
    RUN(test_round_trip);
    RUN(test_tampered);
    RUN(test_partial);
    RUN(test_hostile_lines);
    return harness_finish();
}
