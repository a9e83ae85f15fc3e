/* The audit ledger against a real PostgreSQL (issue 8): what the triggers
 * record (tenant commands and decisions, delivered answers, enrollments
 * accepted and removed, keys issued and revoked, merged rules applied; never
 * a device identifier), the chain the sealer builds (positions without gaps,
 * body digests, checkpoints, a late commit sealed later), the export and both
 * verifications; then, with this test's superuser connection, tampering: a
 * changed field, a deleted row, two rows swapped, the tail cut after a
 * checkpoint: each verification fails and names the entry. The ledger
 * refuses UPDATE, DELETE and TRUNCATE to everybody while its trigger is on,
 * and to its owner role even with the trigger off. The sealer thread seals
 * and signs on its own. Every scenario gets a fresh database. */
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "lmdm/cli.h"
#include "lmdm/db.h"
#include "lmdm/ledger.h"
#include "lmdm/log.h"
#include "lmdm/migrate.h"
#include "lmdm/secrets.h"
#include "testdb.h"

#define UDID "UDID-LEDGER-PRIVATE-0001"
#define FPR "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"
#define WAIT_MS 15000

static char conninfo[1024], tmpdir[64], secret_path[128], config_path[128];
static PGconn *db;
static char err[1024];
static lmdm_secrets_t keys;
static unsigned char master[32];
static char pa[28], pb[28]; /* pseudonyms of tenants 1 and 2 */

/* ---- database helpers ---- */

/* A statement that must succeed (the test stops otherwise). */
#define exec_ok(...) testdb_exec_ok(db, __VA_ARGS__)

/* The error of a statement that must fail ("" if it succeeded). */
static const char *exec_err(PGconn *c, const char *sql)
{
    static char buf[512];
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    snprintf(buf, sizeof buf, "%s", st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? "" : PQresultErrorMessage(r));
    PQclear(r);
    return buf;
}

/* The first column of the first row of a query (testdb_scalar). */
#define scalar(...) testdb_scalar(db, __VA_ARGS__)

static long scalar_long(const char *sql) { return atol(scalar("%s", sql)); }

/* ---- a fresh ledger ---- */

static void fresh_db(void)
{
    if (db) {
        PQfinish(db);
        testdb_drop(conninfo);
    }
    testdb_create(conninfo, sizeof conninfo);
    db = lmdm_db_connect_blocking(conninfo, err, sizeof err);
    if (!db) {
        fprintf(stderr, "cannot connect: %s\n", err);
        exit(1);
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/migrations", getenv("LMDM_SRC"));
    if (lmdm_migrate_apply(db, dir, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "migrate: %s\n", err);
        exit(1);
    }
    setenv("LMDM_DATABASE_URL", conninfo, 1); /* for the CLI */
    exec_ok("INSERT INTO tenants (name) VALUES ('Hospital A'), ('Hospital B')");
    exec_ok("INSERT INTO devices (device_key, enrollment_type, cert_fpr, state) VALUES ('%s', 'device', '%s', "
            "'enrolled')",
            UDID, FPR);
    exec_ok("INSERT INTO channels (device_id) VALUES (1)");
    lmdm_secrets_pseudonym(&keys, 1, 1, pa);
    lmdm_secrets_pseudonym(&keys, 2, 1, pb);
    exec_ok("INSERT INTO enrollments (tenant_id, device_id, pseudonym) VALUES (1, 1, '%s'), (2, 1, '%s')", pa, pb);
}

/* A tenant command allowed and queued (body: its payload). */
static void allowed_command(int tenant, const char *pseudonym, int i)
{
    char api[40], uuid[40], q[1024];
    if (lmdm_uuid_v4(api) || lmdm_uuid_v4(uuid)) exit(1);
    snprintf(q, sizeof q,
             "SELECT code FROM tenant_enqueue_decided(%d, '%s', '%s', '%s', 'tenant-uuid-%d', 'InstallApplication', "
             "'<plist><dict><key>n</key><integer>%d</integer></dict></plist>', NULL, NULL, NULL, true, 'scope', NULL)",
             tenant, pseudonym, api, uuid, i, i);
    CHECK_STR_EQ(scalar("%s", q), "ok");
}

/* Everything the ledger records, once each; n extra allowed commands. */
static void activity(int n)
{
    allowed_command(1, pa, 0);
    CHECK_STR_EQ(scalar("SELECT decision_record(1, '%s', 'EraseDevice', 'block', 'never_allowed', NULL, NULL, "
                        "'tenant-erase-1', NULL) IS NOT NULL",
                        pa),
                 "t");
    /* the device answers the first command: the result reaches the tenant */
    exec_ok("UPDATE commands SET state = 'acknowledged', answered_at = now(), "
            "result = '<plist><dict><key>UDID</key><string>%s</string></dict></plist>' WHERE id = 1",
            UDID);
    exec_ok("INSERT INTO outbox (tenant_id, enrollment_id, event, command_id) VALUES (1, 1, 'command.result', 1)");
    exec_ok("INSERT INTO api_keys (id, tenant_id, role, key_hash) VALUES ('abcdefghijkl', 1, 'auditor', '%064d')", 0);
    exec_ok("UPDATE api_keys SET revoked_at = now() WHERE id = 'abcdefghijkl'");
    exec_ok("UPDATE devices SET rules_hash = 'f00d' WHERE id = 1");
    CHECK_STR_EQ(scalar("SELECT enrollment_remove(2, 'owner')"), "ok");
    for (int i = 1; i <= n; i++) allowed_command(1, pa, i);
}

static int seal(int checkpoint)
{
    int n = lmdm_ledger_seal_now(db, &keys, checkpoint, err, sizeof err);
    if (n < 0) fprintf(stderr, "seal: %s\n", err);
    CHECK(n >= 0);
    return n;
}

static lmdm_ledger_report_t verify_db(void)
{
    lmdm_ledger_report_t r;
    lmdm_ledger_verify_t *v = lmdm_ledger_verify_new(keys.ledger_pk);
    int rc = lmdm_ledger_verify_db(v, db, NULL, NULL, err, sizeof err);
    if (rc < -1) fprintf(stderr, "verify_db: %s\n", err);
    CHECK(rc == 0 || rc == -1);
    lmdm_ledger_verify_finish(v, &r);
    lmdm_ledger_verify_free(v);
    return r;
}

static void export_to(lmdm_buf_t *b, int64_t tenant)
{
    b->len = 0;
    int rc = lmdm_ledger_export(db, tenant, lmdm_ledger_sink_buf, b, err, sizeof err);
    if (rc != 0) fprintf(stderr, "export: %s\n", err);
    CHECK_INT_EQ(rc, 0);
}

static lmdm_ledger_report_t verify_export(const lmdm_buf_t *b)
{
    lmdm_ledger_report_t r;
    lmdm_ledger_verify_t *v = lmdm_ledger_verify_new(keys.ledger_pk);
    FILE *f = fmemopen(b->data, b->len, "r");
    CHECK(lmdm_ledger_verify_file(v, f, NULL, NULL) >= -1);
    fclose(f);
    lmdm_ledger_verify_finish(v, &r);
    lmdm_ledger_verify_free(v);
    return r;
}

/* `lmdm audit ARGS...` through the CLI function; its exit status. Its
 * output goes to this test's output. */
static int cli(const char *a1, const char *a2, const char *a3, const char *a4, const char *a5)
{
    char *argv[8];
    const char *in[] = {"audit", a1, a2, a3, a4, a5};
    int argc = 0;
    for (size_t i = 0; i < LMDM_ARRAY_LEN(in) && in[i]; i++) argv[argc++] = (char *)in[i];
    argv[argc] = NULL;
    fflush(stdout);
    return lmdm_cli_audit(argc, argv);
}

/* `lmdm audit ARGS...` with its standard output into `path`; its status. */
static int cli_to(const char *path, const char *a1, const char *a2, const char *a3, const char *a4)
{
    fflush(stdout);
    int saved = dup(STDOUT_FILENO), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (saved < 0 || fd < 0) exit(1);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    int rc = cli(a1, a2, a3, a4, NULL);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    return rc;
}

static char *slurp(const char *path)
{
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The broker's chain has: entries 1..k signed at k (first seal), more, signed
 * at the second, and an unsigned tail. Returns the positions signed. */
static void build_ledger(int64_t *cp1, int64_t *cp2, int64_t *total)
{
    fresh_db();
    activity(3);
    *cp1 = seal(1);
    for (int i = 10; i < 25; i++) allowed_command(1, pa, i);
    *cp2 = *cp1 + seal(1);
    for (int i = 30; i < 35; i++) allowed_command(1, pa, i);
    *total = *cp2 + seal(0);
}

static long pos_of_seq(long seq) { return atol(scalar("SELECT pos FROM ledger_seal WHERE seq = %ld", seq)); }

/* ---- the scenarios ---- */

static void test_recorded(void)
{
    fresh_db();
    activity(2);
    /* what each change left, in order */
    CHECK_STR_EQ(scalar("SELECT string_agg(event || ':' || actor_kind || ':' || coalesce(decision, '-'), ' ' ORDER BY "
                        "seq) FROM ledger"),
                 "enrollment.accepted:owner:- enrollment.accepted:owner:- command:tenant:scope command:tenant:block "
                 "command.result:device:- key.issued:operator:- key.revoked:operator:- rules.applied:broker:- "
                 "rules.applied:broker:- enrollment.removed:owner:- command:tenant:scope command:tenant:scope");
    CHECK_STR_EQ(scalar("SELECT reason FROM ledger WHERE decision = 'block'"), "never_allowed");
    CHECK_STR_EQ(scalar("SELECT body_kind || body_ref FROM ledger WHERE event = 'command.result'"), "result1");
    CHECK_STR_EQ(scalar("SELECT detail FROM ledger WHERE event = 'rules.applied' ORDER BY seq LIMIT 1"),
                 "{\"hash\": \"f00d\"}");
    char want[128];
    snprintf(want, sizeof want, "%s,%s", pa, pb); /* one entry per active enrollment, each tenant's pseudonym */
    CHECK_STR_EQ(scalar("SELECT string_agg(enrollment, ',' ORDER BY seq) FROM ledger WHERE event = 'rules.applied'"),
                 want);
    CHECK_INT_EQ(scalar_long("SELECT count(*) FROM ledger_pending"), 12);

    int n = seal(1);
    CHECK_INT_EQ(n, 12);
    CHECK_INT_EQ(scalar_long("SELECT count(*) FROM ledger_pending"), 0);
    CHECK_STR_EQ(scalar("SELECT min(pos) = 1 AND max(pos) = 12 AND count(*) = 12 FROM ledger_seal"), "t");
    snprintf(want, sizeof want, "%s", scalar("SELECT pos || ':' || hash FROM ledger_seal WHERE pos = 12"));
    CHECK_STR_EQ(scalar("SELECT pos || ':' || hash FROM ledger_checkpoint"), want);
    /* body digests: the payload, the device's answer, or "" */
    unsigned char d[32];
    char hex[65];
    char payload[512];
    snprintf(payload, sizeof payload, "%s", scalar("SELECT payload FROM commands WHERE id = 1"));
    lmdm_ledger_body_digest(payload, strlen(payload), d);
    lmdm_ledger_hex(d, hex);
    CHECK_STR_EQ(scalar("SELECT s.body_digest FROM ledger_seal s JOIN ledger l USING (seq) WHERE l.body_kind = "
                        "'command' AND l.body_ref = 1"),
                 hex);
    snprintf(payload, sizeof payload, "%s", scalar("SELECT result FROM commands WHERE id = 1"));
    lmdm_ledger_body_digest(payload, strlen(payload), d);
    lmdm_ledger_hex(d, hex);
    CHECK_STR_EQ(scalar("SELECT s.body_digest FROM ledger_seal s JOIN ledger l USING (seq) WHERE l.event = "
                        "'command.result'"),
                 hex);
    CHECK_STR_EQ(scalar("SELECT s.body_digest FROM ledger_seal s JOIN ledger l USING (seq) WHERE l.decision = "
                        "'block'"),
                 "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
    /* nothing left: sealing again does nothing, and signs nothing new */
    CHECK_INT_EQ(seal(1), 0);
    CHECK_INT_EQ(scalar_long("SELECT count(*) FROM ledger_checkpoint"), 1);

    lmdm_ledger_report_t r = verify_db();
    CHECK(r.ok);
    if (!r.ok) fprintf(stderr, "verify_db: %s\n", r.why);
    CHECK_INT_EQ(r.entries, 12);
    CHECK_INT_EQ(r.checkpoints, 1);
    CHECK_INT_EQ(r.unsigned_tail, 0);

    lmdm_buf_t b = {0};
    export_to(&b, -1);
    r = verify_export(&b);
    CHECK(r.ok);
    CHECK_INT_EQ(r.entries, 12);
    CHECK_INT_EQ(r.checkpoints, 1);
    /* never a device identifier; the pseudonyms are there */
    CHECK(strstr(b.data, UDID) == NULL);
    CHECK(strstr(b.data, FPR) == NULL);
    CHECK_STR_CONTAINS(b.data, pa);
    CHECK_STR_CONTAINS(b.data, "\"reason\":\"never_allowed\"");
    /* tenant 2's own export: its entries only, verified one by one */
    export_to(&b, 2);
    r = verify_export(&b);
    CHECK(r.ok);
    CHECK(r.partial);
    CHECK_INT_EQ(r.entries, 3); /* accepted, rules applied, removed */
    CHECK(strstr(b.data, pa) == NULL);
    lmdm_buf_free(&b);
}

/* A transaction that took a lower seq but commits later is sealed later. */
static void test_late_commit(void)
{
    fresh_db();
    seal(0);
    PGconn *other = lmdm_db_connect_blocking(conninfo, err, sizeof err);
    CHECK(other != NULL);
    if (!other) return;
    CHECK_STR_EQ(exec_err(other, "BEGIN"), "");
    char q[512];
    snprintf(q, sizeof q,
             "SELECT decision_record(1, '%s', 'DeviceLock', 'block', 'never_allowed', NULL, NULL, 'late', NULL)", pa);
    CHECK_STR_EQ(exec_err(other, q), "");
    long late = scalar_long("SELECT last_value FROM ledger_seq_seq");
    allowed_command(1, pa, 1);
    CHECK_INT_EQ(seal(0), 1);
    CHECK_STR_EQ(exec_err(other, "COMMIT"), "");
    PQfinish(other);
    CHECK_INT_EQ(seal(1), 1);
    CHECK(pos_of_seq(late) > pos_of_seq(late + 1));
    lmdm_ledger_report_t r = verify_db();
    CHECK(r.ok);
    CHECK_INT_EQ(r.entries, 4);
}

static void tamper_begin(const char *table)
{
    exec_ok("ALTER TABLE %s DISABLE TRIGGER ledger_immutable", table);
}

/* The failure the database and its export both report, and the CLI's. */
static void both_fail(int64_t pos, int64_t seq, const char *why)
{
    lmdm_ledger_report_t r = verify_db();
    CHECK(!r.ok);
    CHECK_INT_EQ(r.pos, pos);
    if (seq >= 0) CHECK_INT_EQ(r.seq, seq);
    CHECK_STR_CONTAINS(r.why, why);
    lmdm_buf_t b = {0};
    export_to(&b, -1);
    lmdm_ledger_report_t e = verify_export(&b);
    CHECK(!e.ok);
    CHECK_INT_EQ(e.pos, pos);
    /* the offline CLI on the same export */
    char path[256], key[45];
    snprintf(path, sizeof path, "%s/export.jsonl", tmpdir);
    FILE *f = fopen(path, "w");
    CHECK(f && fwrite(b.data, 1, b.len, f) == b.len);
    if (f) fclose(f);
    lmdm_ledger_public_b64(&keys, key);
    CHECK_INT_EQ(cli("verify", path, "--key", key, NULL), 1);
    CHECK_INT_EQ(cli("verify", "--db", "--config", config_path, NULL), 1);
    lmdm_buf_free(&b);
}

static void test_untouched_verifies(void)
{
    int64_t cp1, cp2, total;
    build_ledger(&cp1, &cp2, &total);
    lmdm_ledger_report_t r = verify_db();
    CHECK(r.ok);
    CHECK_INT_EQ(r.entries, total);
    CHECK_INT_EQ(r.checkpoints, 2);
    CHECK_INT_EQ(r.last_checkpoint_pos, cp2);
    CHECK_INT_EQ(r.unsigned_tail, total - cp2);
    char path[256], key[45];
    snprintf(path, sizeof path, "%s/export.jsonl", tmpdir);
    lmdm_buf_t b = {0};
    export_to(&b, -1);
    FILE *f = fopen(path, "w");
    CHECK(f && fwrite(b.data, 1, b.len, f) == b.len);
    if (f) fclose(f);
    lmdm_buf_free(&b);
    lmdm_ledger_public_b64(&keys, key);
    CHECK_INT_EQ(cli("verify", path, "--key", key, NULL), 0);
    CHECK_INT_EQ(cli("verify", "--db", "--config", config_path, NULL), 0);
    CHECK_INT_EQ(cli("verify", path, NULL, NULL, NULL), 2);                 /* no key */
    CHECK_INT_EQ(cli("verify", path, "--key", "AAAA", NULL), 2);            /* not a key */
    /* the CLI's own export and key verify the same way */
    char out[256], want[64];
    snprintf(out, sizeof out, "%s/cli.jsonl", tmpdir);
    CHECK_INT_EQ(cli_to(out, "export", "--config", config_path, NULL), 0);
    CHECK_INT_EQ(cli("verify", out, "--key", key, NULL), 0);
    CHECK_INT_EQ(cli_to(out, "export", "--config", config_path, "--tenant"), 2); /* --tenant needs an id */
    snprintf(path, sizeof path, "%s/key", tmpdir);
    CHECK_INT_EQ(cli_to(path, "key", "--config", config_path, NULL), 0);
    snprintf(want, sizeof want, "%s\n", key);
    CHECK_STR_EQ(slurp(path), want);
    snprintf(path, sizeof path, "%s/export.jsonl", tmpdir);
    char tenant_out[256];
    snprintf(tenant_out, sizeof tenant_out, "%s/tenant.jsonl", tmpdir);
    fflush(stdout);
    {
        int saved = dup(STDOUT_FILENO), fd = open(tenant_out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, STDOUT_FILENO);
        close(fd);
        char *argv[] = {"audit", "export", "--config", config_path, "--tenant", "2", NULL};
        int rc = lmdm_cli_audit(6, argv);
        fflush(stdout);
        dup2(saved, STDOUT_FILENO);
        close(saved);
        CHECK_INT_EQ(rc, 0);
    }
    CHECK_STR_CONTAINS(slurp(tenant_out), "\"scope\":\"tenant\",\"tenant_id\":2");
    CHECK_INT_EQ(cli("verify", tenant_out, "--key", key, NULL), 0);
    /* another broker's key: the first checkpoint fails */
    lmdm_secrets_t other;
    unsigned char m2[32] = {9};
    lmdm_secrets_derive(m2, &other);
    lmdm_ledger_public_b64(&other, key);
    CHECK_INT_EQ(cli("verify", path, "--key", key, NULL), 1);
}

static void test_changed_field(void)
{
    int64_t cp1, cp2, total;
    build_ledger(&cp1, &cp2, &total);
    long seq = scalar_long("SELECT seq FROM ledger WHERE decision = 'block'");
    tamper_begin("ledger");
    exec_ok("UPDATE ledger SET decision = 'allow', reason = NULL WHERE seq = %ld", seq);
    both_fail(pos_of_seq(seq), seq, "hash mismatch");
}

static void test_deleted_row(void)
{
    int64_t cp1, cp2, total;
    build_ledger(&cp1, &cp2, &total);
    /* the entry alone: its seal names it */
    long seq = scalar_long("SELECT seq FROM ledger WHERE event = 'command.result'");
    long pos = pos_of_seq(seq);
    tamper_begin("ledger");
    exec_ok("DELETE FROM ledger WHERE seq = %ld", seq);
    lmdm_ledger_report_t r = verify_db();
    CHECK(!r.ok);
    CHECK_INT_EQ(r.pos, pos);
    CHECK_INT_EQ(r.seq, seq);
    CHECK_STR_CONTAINS(r.why, "is gone");
    /* the entry and its seal: the next position names the gap */
    build_ledger(&cp1, &cp2, &total);
    tamper_begin("ledger");
    tamper_begin("ledger_seal");
    exec_ok("DELETE FROM ledger WHERE seq = %ld", seq);
    exec_ok("DELETE FROM ledger_seal WHERE seq = %ld", seq);
    char why[64];
    snprintf(why, sizeof why, "entries %ld..%ld are missing", pos, pos);
    both_fail(pos + 1, -1, why);
}

static void test_swapped_rows(void)
{
    int64_t cp1, cp2, total;
    build_ledger(&cp1, &cp2, &total);
    long a = scalar_long("SELECT seq FROM ledger_seal WHERE pos = 4");
    long b = scalar_long("SELECT seq FROM ledger_seal WHERE pos = 5");
    tamper_begin("ledger_seal");
    exec_ok("UPDATE ledger_seal SET seq = -1 WHERE seq = %ld", a);
    exec_ok("UPDATE ledger_seal SET seq = %ld WHERE seq = %ld", a, b);
    exec_ok("UPDATE ledger_seal SET seq = %ld WHERE seq = -1", b);
    both_fail(4, b, "hash mismatch at pos 4");
    /* the fields of two entries swapped instead */
    build_ledger(&cp1, &cp2, &total);
    tamper_begin("ledger");
    exec_ok("UPDATE ledger l SET actor_kind = o.actor_kind, event = o.event, decision = o.decision, reason = o.reason, "
            "request_type = o.request_type, body_kind = o.body_kind, body_ref = o.body_ref, detail = o.detail "
            "FROM ledger o WHERE (l.seq, o.seq) IN ((%ld, %ld), (%ld, %ld))",
            a + 2, b + 2, b + 2, a + 2);
    both_fail(pos_of_seq(a + 2), a + 2, "hash mismatch");
}

static void test_cut_tail(void)
{
    int64_t cp1, cp2, total;
    build_ledger(&cp1, &cp2, &total);
    /* everything after cp1 + 2 removed, the checkpoint at cp2 kept */
    tamper_begin("ledger");
    tamper_begin("ledger_seal");
    exec_ok("DELETE FROM ledger WHERE seq IN (SELECT seq FROM ledger_seal WHERE pos > %lld)", (long long)cp1 + 2);
    exec_ok("DELETE FROM ledger_seal WHERE pos > %lld", (long long)cp1 + 2);
    char why[64];
    snprintf(why, sizeof why, "entries %lld..%lld are missing", (long long)cp1 + 3, (long long)cp2);
    both_fail(cp2, -1, why);
    /* the tail cut with its checkpoint, the ledger rows left: not in the chain */
    build_ledger(&cp1, &cp2, &total);
    tamper_begin("ledger_seal");
    tamper_begin("ledger_checkpoint");
    long first_cut = scalar_long("SELECT seq FROM ledger_seal WHERE pos = 3");
    exec_ok("DELETE FROM ledger_seal WHERE pos > 2");
    exec_ok("DELETE FROM ledger_checkpoint");
    lmdm_ledger_report_t r = verify_db();
    CHECK(!r.ok);
    CHECK_INT_EQ(r.seq, first_cut);
    CHECK_STR_CONTAINS(r.why, "cut out of the chain");
}

/* The append-only guarantees. */
static void test_append_only(void)
{
    fresh_db();
    activity(1);
    seal(1);
    const char *tables[] = {"ledger", "ledger_seal", "ledger_checkpoint"};
    char q[256];
    for (size_t i = 0; i < LMDM_ARRAY_LEN(tables); i++) {
        snprintf(q, sizeof q, "UPDATE %s SET pos = pos", tables[i]);
        if (i == 0) snprintf(q, sizeof q, "UPDATE ledger SET reason = 'x'");
        CHECK_STR_CONTAINS(exec_err(db, q), "append-only: UPDATE refused");
        snprintf(q, sizeof q, "DELETE FROM %s", tables[i]);
        CHECK_STR_CONTAINS(exec_err(db, q), "append-only: DELETE refused");
        snprintf(q, sizeof q, "TRUNCATE %s", tables[i]);
        CHECK_STR_CONTAINS(exec_err(db, q), "append-only: TRUNCATE refused");
    }
    /* the role that owns the tables (the broker's, when it ran the
     * migrations) has no UPDATE or DELETE either, trigger or not */
    char role[64];
    snprintf(role, sizeof role, "lmdm_ledger_owner_%d", (int)getpid());
    exec_ok("CREATE ROLE %s", role);
    exec_ok("GRANT USAGE ON SCHEMA public TO %s", role);
    for (size_t i = 0; i < LMDM_ARRAY_LEN(tables); i++) exec_ok("ALTER TABLE %s OWNER TO %s", tables[i], role);
    exec_ok("SET ROLE %s", role);
    exec_ok("ALTER TABLE ledger DISABLE TRIGGER ledger_immutable");
    CHECK_STR_CONTAINS(exec_err(db, "UPDATE ledger SET reason = 'x'"), "permission denied");
    CHECK_STR_CONTAINS(exec_err(db, "DELETE FROM ledger"), "permission denied");
    CHECK_STR_CONTAINS(exec_err(db, "TRUNCATE ledger_seal"), "permission denied");
    CHECK_STR_EQ(exec_err(db, "SELECT count(*) FROM ledger"), ""); /* reading is fine */
    exec_ok("RESET ROLE");
    for (size_t i = 0; i < LMDM_ARRAY_LEN(tables); i++) exec_ok("ALTER TABLE %s OWNER TO CURRENT_USER", tables[i]);
    exec_ok("REVOKE USAGE ON SCHEMA public FROM %s", role);
    exec_ok("DROP ROLE %s", role);
    lmdm_ledger_report_t r = verify_db();
    CHECK(r.ok);
}

/* The thread seals and signs by itself (checkpoint every 5 entries). */
static void test_sealer_thread(void)
{
    fresh_db();
    lmdm_config_t cfg;
    lmdm_config_defaults(&cfg);
    free(cfg.database_url);
    cfg.database_url = lmdm_xstrdup(conninfo);
    cfg.ledger_checkpoint_entries = 5;
    cfg.ledger_checkpoint_interval_s = 3600;
    lmdm_ledger_sealer_t *s = lmdm_ledger_sealer_start(&cfg, &keys, err, sizeof err);
    CHECK(s != NULL);
    if (!s) return;
    activity(10);
    uint64_t deadline = lmdm_now_ns() + (uint64_t)WAIT_MS * 1000000u;
    while (lmdm_now_ns() < deadline &&
           strcmp(scalar("SELECT count(*) = 20 FROM ledger_seal"), "t") != 0)
        usleep(20000);
    CHECK_INT_EQ(scalar_long("SELECT count(*) FROM ledger_seal"), 20);
    /* signed at least every 5 entries: a checkpoint at or after pos 15 */
    deadline = lmdm_now_ns() + (uint64_t)WAIT_MS * 1000000u;
    while (lmdm_now_ns() < deadline && scalar_long("SELECT coalesce(max(pos), 0) FROM ledger_checkpoint") < 15)
        usleep(20000);
    CHECK(scalar_long("SELECT coalesce(max(pos), 0) FROM ledger_checkpoint") >= 15);
    lmdm_ledger_seal_stats_t st;
    lmdm_ledger_sealer_stats(s, &st);
    CHECK_INT_EQ(st.sealed, 20);
    CHECK(st.checkpoints >= 1);
    lmdm_ledger_sealer_stop(s);
    lmdm_config_clear(&cfg);
    lmdm_ledger_report_t r = verify_db();
    CHECK(r.ok);
    CHECK_INT_EQ(r.entries, 20);
}

/* Files the CLI needs: the master secret and a config naming it and the DB. */
static void write_cli_files(void)
{
    snprintf(secret_path, sizeof secret_path, "%s/master.key", tmpdir);
    int fd = open(secret_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, master, 32) != 32) exit(1);
    close(fd);
    snprintf(config_path, sizeof config_path, "%s/lmdm.conf", tmpdir);
    FILE *f = fopen(config_path, "w");
    if (!f) exit(1);
    fprintf(f, "secret_key = \"%s\"\n", secret_path);
    fclose(f);
}

int main(void)
{
    if (!getenv("LMDM_SRC")) {
        fprintf(stderr, "LMDM_SRC must be set (run through ctest)\n");
        return 1;
    }
    if (sodium_init() < 0) return 1;
    lmdm_log_setup(LMDM_LOG_WARN, LMDM_LOG_TEXT);
    for (int i = 0; i < 32; i++) master[i] = (unsigned char)(7 * i + 3);
    lmdm_secrets_derive(master, &keys);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lmdm-ledger.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    write_cli_files();
    RUN(test_recorded);
    RUN(test_late_commit);
    RUN(test_append_only);
    RUN(test_sealer_thread);
    RUN(test_untouched_verifies);
    RUN(test_changed_field);
    RUN(test_deleted_row);
    RUN(test_swapped_rows);
    RUN(test_cut_tail);
    if (db) {
        PQfinish(db);
        testdb_drop(conninfo);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return harness_finish();
}
