/* Audit ledger verification benchmark (issue 8): `lmdm audit verify` on a
 * generated export of 1,000,000 entries (checkpoint every 1,000), entries
 * per second on one core (target >= 500,000/s), next to references measured
 * in the same run on the same file:
 *   - reading the file (fread into a 4 MiB buffer): the I/O floor;
 *   - BLAKE2b-256 of the file's bytes in one stream: the hashing floor for
 *     that many bytes;
 *   - lmdm_ledger_entry_hash of the same entries already in memory: what
 *     the chain's hashing costs without reading or parsing.
 * The file is written once to a temporary path (or --file) and read warm
 * from the page cache; each figure is the best of --rounds.
 *
 * usage: ledger_bench [--entries N] [--rounds R] [--file PATH] [--keep] */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lmdm/ledger.h"

#define CHECKPOINT_EVERY 1000

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const request_types[] = {"InstallApplication", "InstallProfile", "RemoveProfile", "EraseDevice",
                                            "InstalledApplicationList", "DeviceLock"};
static const char *const decisions[] = {"allow", "scope", "merge", "block"};

/* Entry i of the generated ledger (strings in `store`, which it reuses). */
typedef struct {
    char at[40], enrollment[28], detail[96], reason[32];
} store_t;

static void fill(lmdm_ledger_entry_t *e, store_t *s, int64_t i, const unsigned char prev[32])
{
    memset(e, 0, sizeof *e);
    e->pos = i;
    e->seq = i + 17;
    snprintf(s->at, sizeof s->at, "2024-05-%02lldT%02lld:%02lld:%02lld.%06lldZ", (long long)(1 + i / 86400 % 28),
             (long long)(i / 3600 % 24), (long long)(i / 60 % 60), (long long)(i % 60), (long long)(i * 7919 % 1000000));
    e->at = (lmdm_ledger_text_t){s->at, strlen(s->at)};
    e->actor = (lmdm_ledger_text_t){"tenant", 6};
    e->has_tenant_id = 1;
    e->tenant_id = 1 + i % 40;
    s->enrollment[0] = 'e';
    for (int k = 1; k < 27; k++) s->enrollment[k] = "abcdefghijklmnopqrstuvwxyz234567"[(i * 31 + k * 7) % 32];
    s->enrollment[27] = '\0';
    e->enrollment = (lmdm_ledger_text_t){s->enrollment, 27};
    e->event = (lmdm_ledger_text_t){"command", 7};
    const char *rt = request_types[i % 6], *d = decisions[i % 4];
    e->request_type = (lmdm_ledger_text_t){rt, strlen(rt)};
    e->decision = (lmdm_ledger_text_t){d, strlen(d)};
    if (i % 4 == 3) {
        snprintf(s->reason, sizeof s->reason, "never_allowed");
        e->reason = (lmdm_ledger_text_t){s->reason, strlen(s->reason)};
    } else {
        e->body_kind = (lmdm_ledger_text_t){"command", 7};
    }
    snprintf(s->detail, sizeof s->detail, "{\"decision_id\": %lld, \"command_uuid\": \"tenant-%08llx\"}",
             (long long)i, (unsigned long long)(i * 2654435761u));
    e->detail = (lmdm_ledger_text_t){s->detail, strlen(s->detail)};
    unsigned char body[8];
    memcpy(body, &i, 8);
    lmdm_ledger_body_digest(body, sizeof body, e->body_digest);
    memcpy(e->prev_hash, prev, 32);
    lmdm_ledger_entry_hash(e, e->hash);
}

static void generate(const char *path, int64_t n, const lmdm_secrets_t *keys, size_t *bytes)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    lmdm_buf_t b = {0};
    unsigned char prev[32] = {0};
    store_t s;
    char id[17];
    lmdm_ledger_key_id(keys->ledger_pk, id);
    const char *signed_at = "2024-06-01T00:00:00.000000Z";
    int64_t cps = 0;
    lmdm_ledger_header_json(&b, -1);
    for (int64_t i = 1; i <= n; i++) {
        lmdm_ledger_entry_t e;
        fill(&e, &s, i, prev);
        memcpy(prev, e.hash, 32);
        lmdm_ledger_entry_json(&b, &e);
        if (i % CHECKPOINT_EVERY == 0 || i == n) {
            char msg[256], sig64[89];
            unsigned char sig[64];
            size_t m = lmdm_ledger_checkpoint_message(i, e.hash, signed_at, strlen(signed_at), msg, sizeof msg);
            crypto_sign_detached(sig, NULL, (unsigned char *)msg, m, keys->ledger_sk);
            sodium_bin2base64(sig64, sizeof sig64, sig, 64, sodium_base64_VARIANT_ORIGINAL);
            lmdm_ledger_checkpoint_t c = {.pos = i,
                                          .signed_at = {signed_at, strlen(signed_at)},
                                          .key_id = {id, 16},
                                          .signature = {sig64, 88}};
            memcpy(c.hash, e.hash, 32);
            lmdm_ledger_checkpoint_json(&b, &c);
            cps++;
        }
        if (b.len > (1u << 20)) {
            fwrite(b.data, 1, b.len, f);
            *bytes += b.len;
            b.len = 0;
        }
    }
    lmdm_ledger_end_json(&b, n, cps);
    fwrite(b.data, 1, b.len, f);
    *bytes += b.len;
    lmdm_buf_free(&b);
    if (fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static double read_file(const char *path, int blake)
{
    FILE *f = fopen(path, "rb");
    if (!f) exit(1);
    static char buf[4u << 20];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    double t0 = now();
    size_t n;
    volatile size_t total = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        if (blake) crypto_generichash_update(&st, (unsigned char *)buf, n);
        total += n;
    }
    unsigned char h[32];
    crypto_generichash_final(&st, h, 32);
    double t = now() - t0;
    fclose(f);
    return t;
}

static double verify(const char *path, const lmdm_secrets_t *keys, int64_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f) exit(1);
    lmdm_ledger_verify_t *v = lmdm_ledger_verify_new(keys->ledger_pk);
    double t0 = now();
    int rc = lmdm_ledger_verify_file(v, f, NULL, NULL);
    double t = now() - t0;
    lmdm_ledger_report_t r;
    lmdm_ledger_verify_finish(v, &r);
    lmdm_ledger_verify_free(v);
    fclose(f);
    if (rc != 0 || !r.ok || r.entries != n) {
        fprintf(stderr, "ledger_bench: the generated export did not verify: %s\n", r.why);
        exit(1);
    }
    return t;
}

/* The hashes alone: entries built in memory first (in batches), then timed. */
static double hash_only(int64_t n)
{
    enum { B = 4096 };
    static lmdm_ledger_entry_t e[B];
    static store_t s[B];
    unsigned char prev[32] = {0}, h[32];
    double t = 0;
    for (int64_t base = 1; base <= n; base += B) {
        int m = (int)(n - base + 1 < B ? n - base + 1 : B);
        for (int k = 0; k < m; k++) fill(&e[k], &s[k], base + k, prev);
        double t0 = now();
        for (int k = 0; k < m; k++) lmdm_ledger_entry_hash(&e[k], h);
        t += now() - t0;
    }
    return t;
}

static void line(const char *what, int64_t n, double t, double mb)
{
    printf("  %-46s %8.3f s  %10.0f entries/s", what, t, (double)n / t);
    if (mb > 0) printf("  %8.0f MB/s", mb / t);
    printf("\n");
}

int main(int argc, char **argv)
{
    int64_t n = 1000000;
    int rounds = 3, keep = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--entries") == 0 && i + 1 < argc)
            n = atoll(argv[++i]);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--keep") == 0)
            keep = 1;
        else {
            fprintf(stderr, "usage: ledger_bench [--entries N] [--rounds R] [--file PATH] [--keep]\n");
            return 2;
        }
    }
    if (n < 1 || rounds < 1 || sodium_init() < 0) return 2;
    char tmp[] = "/tmp/lmdm-ledger-bench.XXXXXX";
    if (!path) {
        int fd = mkstemp(tmp);
        if (fd < 0) return 1;
        close(fd);
        path = tmp;
    }
    unsigned char master[32] = {1, 2, 3};
    lmdm_secrets_t keys;
    lmdm_secrets_derive(master, &keys);
    size_t bytes = 0;
    double t0 = now();
    generate(path, n, &keys, &bytes);
    double mb = (double)bytes / 1e6;
    printf("ledger export: %lld entries, %lld checkpoints, %.1f MB (%.0f B/entry), written in %.2f s\n", (long long)n,
           (long long)((n + CHECKPOINT_EVERY - 1) / CHECKPOINT_EVERY), mb, (double)bytes / (double)n, now() - t0);
    read_file(path, 0); /* warm the page cache */
    double best_read = 1e30, best_blake = 1e30, best_verify = 1e30, best_hash = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t = read_file(path, 0);
        if (t < best_read) best_read = t;
        t = read_file(path, 1);
        if (t < best_blake) best_blake = t;
        t = hash_only(n);
        if (t < best_hash) best_hash = t;
        t = verify(path, &keys, n);
        if (t < best_verify) best_verify = t;
    }
    printf("best of %d rounds, one core:\n", rounds);
    line("reference: read the file", n, best_read, mb);
    line("reference: BLAKE2b-256 of the file's bytes", n, best_blake, mb);
    line("reference: entry hashes only (in memory)", n, best_hash, 0);
    line("lmdm audit verify (parse, hash, chain, sigs)", n, best_verify, mb);
    double rate = (double)n / best_verify;
    printf("verify: %.0f entries/s   target 500000  %s   (%.2f x BLAKE2b of the bytes, %.2f x hashes only)\n", rate,
           rate >= 500000 ? "met" : "MISSED", best_verify / best_blake, best_verify / best_hash);
    if (!keep) unlink(path);
    lmdm_secrets_clear(&keys);
    return rate >= 500000 ? 0 : 3;
}
