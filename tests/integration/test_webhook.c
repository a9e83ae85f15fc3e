/* The webhook deliverer against a real PostgreSQL and the loopback receiver
 * (tests/tools/webhook-sink, which verifies every signature on its own):
 * per-tenant order, signatures, the body in both formats, a receiver that
 * fails then recovers (nothing lost, order kept, attempts recorded), backoff
 * against a refused port, tenants without a URL or disabled, a hung endpoint
 * that must not delay another tenant nor stop, a wrong key, and the advisory
 * lock that keeps a second broker instance from delivering. Every test gets a
 * fresh database. Waits poll the database with a generous deadline. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "lmdm/db.h"
#include "lmdm/log.h"
#include "lmdm/migrate.h"
#include "lmdm/secrets.h"
#include "lmdm/webhook.h"
#include "testdb.h"

#define BROKER_UUID "7D1E4C0A-2B9F-4C55-8E21-0F3A5B6C7D8E"
#define TENANT_UUID "tenant-cmd-0001"
#define API_ID "3f1c2a4b-5d6e-4f70-8a91-b2c3d4e5f601"
#define UDID "UDID-PRIVATE-0000-1111"
#define WAIT_MS 15000

static char conninfo[1024];
static PGconn *db;
static char err[1024];
static lmdm_secrets_t keys, other_keys;
static char sink_bin[1024], outdir[64];
static lmdm_config_t cfg;

typedef struct sink {
    pid_t pid;
    int port;
    char out[256];
} sink_t;

/* ---- database helpers ------------------------------------------------------ */

/* A statement that must succeed (the test stops otherwise). */
#define exec_ok(...) testdb_exec_ok(db, __VA_ARGS__)

/* The first column of the first row of a query (testdb_scalar). */
#define scalar(...) testdb_scalar(db, __VA_ARGS__)

static long scalar_long(const char *sql)
{
    return atol(scalar("%s", sql));
}

/* Poll until `sql` answers true; 1 if it did within WAIT_MS. */
static int wait_true(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int wait_true(const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    uint64_t deadline = lmdm_now_ns() + (uint64_t)WAIT_MS * 1000000u;
    while (lmdm_now_ns() < deadline) {
        if (strcmp(scalar("%s", sql), "t") == 0) return 1;
        usleep(20000);
    }
    fprintf(stderr, "timed out waiting for: %s\n", sql);
    return 0;
}

static long make_tenant(const char *name, const char *url, const char *format)
{
    char q[512];
    snprintf(
        q, sizeof q,
        "INSERT INTO tenants (name, webhook_url, webhook_format) VALUES ('%s', %s%s%s, '%s') RETURNING id",
        name, url ? "'" : "", url ? url : "NULL", url ? "'" : "", format);
    return scalar_long(q);
}

/* The pseudonym of tenant t: "e" + 26 letters from [a-z2-7]. */
static void pseudonym_of(long t, char out[28])
{
    out[0] = 'e';
    for (int i = 1; i < 27; i++)
        out[i] = (char)('a' + (t * 7 + i) % 26);
    out[27] = '\0';
}

static long make_enrollment(long tenant)
{
    char p[28], q[256];
    pseudonym_of(tenant, p);
    snprintf(q, sizeof q,
             "INSERT INTO enrollments (tenant_id, device_id, pseudonym) VALUES (%ld, 1, '%s') RETURNING id",
             tenant, p);
    return scalar_long(q);
}

/* An answered command of `tenant` whose device answer names the device. */
static long make_command(long tenant, long enrollment)
{
    char q[2048];
    snprintf(
        q, sizeof q,
        "INSERT INTO commands (channel_id, tenant_id, command_uuid, tenant_command_uuid, request_type, "
        "payload,"
        " state, result, enrollment_id, api_id) VALUES (1, %ld, '%s', '%s', 'InstalledApplicationList', "
        "'<plist/>',"
        " 'acknowledged', '<?xml version=\"1.0\" encoding=\"UTF-8\"?><plist version=\"1.0\"><dict>"
        "<key>CommandUUID</key><string>%s</string><key>Status</key><string>Acknowledged</string>"
        "<key>UDID</key><string>%s</string><key>InstalledApplicationList</key><array><dict>"
        "<key>Identifier</key><string>org.hospital.app</string></dict></array></dict></plist>', %ld, '%s')"
        " RETURNING id",
        tenant, BROKER_UUID, TENANT_UUID, BROKER_UUID, UDID, enrollment, API_ID);
    return scalar_long(q);
}

static long add_event(long tenant, long enrollment, const char *event, long command, const char *data)
{
    char q[1024], cmd[24];
    snprintf(cmd, sizeof cmd, "%ld", command);
    snprintf(q, sizeof q,
             "INSERT INTO outbox (tenant_id, enrollment_id, event, command_id, data) VALUES (%ld, %ld, '%s', "
             "%s, '%s')"
             " RETURNING id",
             tenant, enrollment, event, command ? cmd : "NULL", data ? data : "{}");
    return scalar_long(q);
}

static long pending(long tenant)
{
    char q[128];
    snprintf(q, sizeof q, "SELECT count(*) FROM outbox WHERE tenant_id = %ld AND delivered_at IS NULL",
             tenant);
    return scalar_long(q);
}

/* ---- receivers -------------------------------------------------------------- */

/* Start webhook-sink on a free port with `pubkey`; extra args NULL-terminated. */
static void sink_start(sink_t *s, const char *name, const lmdm_secrets_t *k, ...)
{
    char pub[45];
    lmdm_secrets_public_b64(k, pub);
    snprintf(s->out, sizeof s->out, "%s/%s.lines", outdir, name);
    const char *argv[16] = {sink_bin, "--port", "0", "--pubkey", pub, "--out", s->out};
    int n = 7;
    va_list ap;
    va_start(ap, k);
    for (const char *a; n < 15 && (a = va_arg(ap, const char *));)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    int p[2];
    if (pipe(p) != 0) exit(1);
    s->pid = fork();
    if (s->pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        execv(sink_bin, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    FILE *f = fdopen(p[0], "r");
    char line[128] = "";
    if (!fgets(line, sizeof line, f) || sscanf(line, "listening 127.0.0.1:%d", &s->port) != 1) {
        fprintf(stderr, "webhook-sink did not start (%s)\n", sink_bin);
        exit(1);
    }
    fclose(f);
}

static void sink_stop(sink_t *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
}

static void sink_url(const sink_t *s, char *out, size_t n)
{
    snprintf(out, n, "http://127.0.0.1:%d/hook", s->port);
}

/* The lines the sink wrote (at most max); returns how many. */
static int sink_lines(const sink_t *s, char lines[][4096], int max)
{
    FILE *f = fopen(s->out, "r");
    int n = 0;
    while (f && n < max && fgets(lines[n], 4096, f)) {
        lines[n][strcspn(lines[n], "\n")] = '\0';
        n++;
    }
    if (f) fclose(f);
    return n;
}

/* The JSON body of a delivery line "<event> <delivery> <body>". */
static json_t *line_body(const char *line)
{
    const char *sp = strchr(line, ' ');
    sp = sp ? strchr(sp + 1, ' ') : NULL;
    return sp ? json_loads(sp + 1, 0, NULL) : NULL;
}

/* A port that accepts connections and never answers (listen, never accept). */
static int hung_port(int *fd_out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0) exit(1);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *fd_out = fd;
    return ntohs(sa.sin_port);
}

/* A port where nothing listens (connection refused). */
static int closed_port(void)
{
    int fd;
    int port = hung_port(&fd);
    close(fd);
    return port;
}

/* ---- fixture ------------------------------------------------------------------ */

static void setup(int timeout_ms, int backoff_max_s)
{
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
    exec_ok(
        "INSERT INTO devices (device_key, enrollment_type, cert_fpr, state) VALUES ('%s', 'device', '%s', "
        "'enrolled')",
        UDID, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    exec_ok("INSERT INTO channels (device_id) VALUES (1)");
    lmdm_config_clear(&cfg);
    lmdm_config_defaults(&cfg);
    free(cfg.database_url);
    cfg.database_url = strdup(conninfo);
    cfg.webhook_timeout_ms = timeout_ms;
    cfg.webhook_backoff_max_s = backoff_max_s;
}

static void teardown(void)
{
    PQfinish(db);
    db = NULL;
    testdb_drop(conninfo);
}

static lmdm_webhook_t *start(void)
{
    lmdm_webhook_t *w = lmdm_webhook_start(&cfg, &keys, err, sizeof err);
    if (!w) {
        fprintf(stderr, "lmdm_webhook_start: %s\n", err);
        exit(1);
    }
    return w;
}

/* Stop, and check that it came back promptly. */
static void stop_promptly(lmdm_webhook_t *w)
{
    uint64_t t0 = lmdm_now_ns();
    lmdm_webhook_stop(w);
    uint64_t ms = (lmdm_now_ns() - t0) / 1000000u;
    fprintf(stderr, "  stop took %llu ms\n", (unsigned long long)ms);
    CHECK(ms < 1500);
}

/* ---- tests -------------------------------------------------------------------- */

static void test_in_order_signed(void)
{
    setup(2000, 1);
    sink_t s;
    sink_start(&s, "order", &keys, NULL);
    char url[128], ps[28];
    sink_url(&s, url, sizeof url);
    long t = make_tenant("A", url, "lmdm");
    long e = make_enrollment(t);
    long c = make_command(t, e);
    pseudonym_of(t, ps);
    long ids[5];
    ids[0] = add_event(t, e, "enrollment.accepted", 0, "{\"invitation_id\": 9}");
    ids[1] = add_event(t, e, "command.result", c, NULL);
    ids[2] = add_event(t, e, "command.result", c, NULL);
    ids[3] = add_event(t, e, "enrollment.removed", 0, "{\"by\": \"owner\", \"removal_commands\": 2}");
    ids[4] = add_event(t, e, "device.checked_out", 0, NULL);

    lmdm_webhook_t *w = start();
    CHECK(wait_true("SELECT count(*) = 0 FROM outbox WHERE delivered_at IS NULL"));
    stop_promptly(w);

    char lines[8][4096];
    int n = sink_lines(&s, lines, 8);
    CHECK_INT_EQ(n, 5);
    for (int i = 0; i < n && i < 5; i++) {
        char want[128];
        snprintf(want, sizeof want, "%s ",
                 scalar("SELECT event || ' ' || event_uuid FROM outbox WHERE id = %ld", ids[i]));
        CHECK(strncmp(lines[i], want, strlen(want)) == 0); /* signed (not BADSIG), in id order */
        json_t *b = line_body(lines[i]);
        CHECK(b != NULL);
        CHECK_STR_EQ(json_string_value(json_object_get(b, "enrollment_id")), ps);
        CHECK_STR_EQ(json_string_value(json_object_get(b, "id")),
                     scalar("SELECT event_uuid FROM outbox WHERE id = %ld", ids[i]));
        const char *created = json_string_value(json_object_get(b, "created_at"));
        CHECK(created && strlen(created) == 27 && created[10] == 'T' && created[26] == 'Z');
        CHECK(json_is_object(json_object_get(b, "data")));
        CHECK_INT_EQ(json_object_get(b, "command") != NULL, i == 1 || i == 2);
        json_decref(b);
    }
    json_t *b0 = line_body(lines[0]), *b1 = line_body(lines[1]), *b3 = line_body(lines[3]);
    CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(b0, "data"), "invitation_id")), 9);
    CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(b3, "data"), "by")), "owner");
    json_t *cmd = json_object_get(b1, "command");
    CHECK_STR_EQ(json_string_value(json_object_get(cmd, "id")), API_ID);
    CHECK_STR_EQ(json_string_value(json_object_get(cmd, "command_uuid")), TENANT_UUID);
    CHECK_STR_EQ(json_string_value(json_object_get(cmd, "request_type")), "InstalledApplicationList");
    CHECK_STR_EQ(json_string_value(json_object_get(cmd, "status")), "Acknowledged");
    const char *result = json_string_value(json_object_get(cmd, "result"));
    CHECK_STR_CONTAINS(result, "org.hospital.app");
    CHECK_STR_CONTAINS(result, TENANT_UUID);
    CHECK(result && !strstr(result, BROKER_UUID)); /* the broker's CommandUUID stays inside */
    CHECK(result && !strstr(result, UDID));        /* so does the device's identity */
    CHECK(!strstr(lines[1], UDID));
    json_decref(b0);
    json_decref(b1);
    json_decref(b3);
    CHECK_INT_EQ(scalar_long("SELECT sum(attempts) FROM outbox"), 0);
    sink_stop(&s);
    teardown();
}

static void test_failing_receiver_recovers(void)
{
    setup(2000, 1);
    sink_t s;
    sink_start(&s, "recover", &keys, "--fail-first", "3", NULL);
    char url[128];
    sink_url(&s, url, sizeof url);
    long t = make_tenant("A", url, "lmdm");
    long e = make_enrollment(t);
    long ids[3];
    ids[0] = add_event(t, e, "enrollment.accepted", 0, NULL);
    lmdm_webhook_t *w = start();
    /* More events arrive while the first is being retried. */
    CHECK(wait_true("SELECT attempts >= 1 FROM outbox WHERE id = %ld", ids[0]));
    ids[1] = add_event(t, e, "enrollment.removed", 0, NULL);
    ids[2] = add_event(t, e, "device.checked_out", 0, NULL);
    CHECK(wait_true("SELECT count(*) = 0 FROM outbox WHERE delivered_at IS NULL"));
    stop_promptly(w);

    char lines[10][4096], want[160];
    int n = sink_lines(&s, lines, 10);
    CHECK_INT_EQ(n, 6);
    for (int i = 0; i < 3 && i < n; i++) {
        snprintf(want, sizeof want, "REFUSED 500 %s",
                 scalar("SELECT event || ' ' || event_uuid FROM outbox WHERE id = %ld", ids[0]));
        CHECK_STR_EQ(lines[i], want); /* only the oldest event is retried */
    }
    for (int i = 0; i < 3 && i + 3 < n; i++) {
        snprintf(want, sizeof want, "%s ",
                 scalar("SELECT event || ' ' || event_uuid FROM outbox WHERE id = %ld", ids[i]));
        CHECK(strncmp(lines[i + 3], want, strlen(want)) == 0);
    }
    CHECK_STR_EQ(scalar("SELECT attempts || ' ' || last_error FROM outbox WHERE id = %ld", ids[0]),
                 "3 HTTP 500");
    CHECK_STR_EQ(scalar("SELECT string_agg(attempts::text, ',' ORDER BY id) FROM outbox"), "3,0,0");
    /* Retries were spaced by the backoff (1 s each with backoff_max 1). */
    CHECK_STR_EQ(
        scalar("SELECT delivered_at - created_at >= interval '3 seconds' FROM outbox WHERE id = %ld", ids[0]),
        "t");
    sink_stop(&s);
    teardown();
}

static void test_backoff_and_pending_tenants(void)
{
    setup(1000, 4);
    sink_t s;
    sink_start(&s, "later", &keys, NULL);
    char refused[128], url[128];
    snprintf(refused, sizeof refused, "http://127.0.0.1:%d/hook", closed_port());
    sink_url(&s, url, sizeof url);
    long down = make_tenant("down", refused, "lmdm");
    long nourl = make_tenant("no url yet", NULL, "lmdm");
    long off = make_tenant("disabled", url, "lmdm");
    exec_ok("UPDATE tenants SET state = 'disabled' WHERE id = %ld", off);
    long ed = make_enrollment(down), en = make_enrollment(nourl), eo = make_enrollment(off);
    long first = add_event(down, ed, "enrollment.accepted", 0, NULL);
    long second = add_event(down, ed, "enrollment.removed", 0, NULL);
    long waiting = add_event(nourl, en, "enrollment.accepted", 0, NULL);
    add_event(off, eo, "enrollment.accepted", 0, NULL);

    lmdm_webhook_t *w = start();
    CHECK(wait_true("SELECT attempts >= 3 FROM outbox WHERE id = %ld", first));
    /* After the third failure the wait is min(2^2, 4) = 4 s. */
    CHECK_STR_EQ(
        scalar("SELECT next_attempt_at - now() BETWEEN interval '2 seconds' AND interval '4.1 seconds'"
               " FROM outbox WHERE id = %ld",
               first),
        "t");
    const char *why = scalar("SELECT last_error FROM outbox WHERE id = %ld", first);
    CHECK(strstr(why, "onnect") != NULL); /* "Failed to connect ..." / "Couldn't connect ..." */
    CHECK_STR_EQ(scalar("SELECT attempts FROM outbox WHERE id = %ld", second),
                 "0"); /* only the head is tried */
    CHECK_STR_EQ(
        scalar("SELECT attempts || ' ' || (delivered_at IS NULL) FROM outbox WHERE id = %ld", waiting),
        "0 true");
    CHECK_INT_EQ(pending(off), 1);

    /* A URL set later: the pending event goes out (found by polling: no NOTIFY). */
    exec_ok("UPDATE tenants SET webhook_url = '%s' WHERE id = %ld", url, nourl);
    CHECK(wait_true("SELECT delivered_at IS NOT NULL FROM outbox WHERE id = %ld", waiting));
    CHECK_INT_EQ(pending(off), 1);
    CHECK_INT_EQ(pending(down), 2);
    stop_promptly(w);
    char lines[4][4096];
    CHECK_INT_EQ(sink_lines(&s, lines, 4), 1);
    sink_stop(&s);
    teardown();
}

static void test_hung_endpoint_isolated(void)
{
    setup(10000, 1); /* a hung attempt lasts 10 s */
    sink_t s;
    sink_start(&s, "fast", &keys, NULL);
    int hung_fd;
    char hung[128], url[128];
    snprintf(hung, sizeof hung, "http://127.0.0.1:%d/hook", hung_port(&hung_fd));
    sink_url(&s, url, sizeof url);
    long slow = make_tenant("slow", hung, "lmdm");
    long fast = make_tenant("fast", url, "lmdm");
    long es = make_enrollment(slow), ef = make_enrollment(fast);
    long stuck = add_event(slow, es, "enrollment.accepted", 0, NULL);
    for (int i = 0; i < 5; i++)
        add_event(fast, ef, i % 2 ? "enrollment.removed" : "enrollment.accepted", 0, NULL);

    lmdm_webhook_t *w = start();
    CHECK(wait_true("SELECT count(*) = 0 FROM outbox WHERE tenant_id = %ld AND delivered_at IS NULL", fast));
    /* The other tenant's first attempt has not even failed yet. */
    CHECK_STR_EQ(scalar("SELECT attempts || ' ' || (delivered_at IS NULL) FROM outbox WHERE id = %ld", stuck),
                 "0 true");
    /* Stop while that attempt hangs; it stays pending. */
    stop_promptly(w);
    CHECK_INT_EQ(pending(slow), 1);
    char lines[8][4096];
    CHECK_INT_EQ(sink_lines(&s, lines, 8), 5);
    /* One request in flight for the hung tenant, however often the other
     * tenant's deliveries made the deliverer look at the outbox again. */
    fcntl(hung_fd, F_SETFL, O_NONBLOCK);
    int conns = 0;
    for (int fd; (fd = accept(hung_fd, NULL, NULL)) >= 0; conns++)
        close(fd);
    CHECK_INT_EQ(conns, 1);
    close(hung_fd);
    sink_stop(&s);
    teardown();
}

static void test_wrong_key_refused(void)
{
    setup(2000, 1);
    sink_t s;
    sink_start(&s, "badsig", &other_keys, NULL); /* expects another broker's key */
    char url[128];
    sink_url(&s, url, sizeof url);
    long t = make_tenant("A", url, "lmdm");
    long id = add_event(t, make_enrollment(t), "enrollment.accepted", 0, NULL);
    lmdm_webhook_t *w = start();
    CHECK(wait_true("SELECT attempts >= 1 FROM outbox WHERE id = %ld", id));
    stop_promptly(w);
    CHECK_STR_EQ(scalar("SELECT last_error || ' ' || (delivered_at IS NULL) FROM outbox WHERE id = %ld", id),
                 "HTTP 401 true");
    char lines[4][4096];
    CHECK(sink_lines(&s, lines, 4) >= 1);
    CHECK_STR_CONTAINS(lines[0], "BADSIG enrollment.accepted");
    CHECK_STR_CONTAINS(lines[0], "signature-mismatch");
    sink_stop(&s);
    teardown();
}

static void test_micromdm_format(void)
{
    setup(2000, 1);
    sink_t s;
    sink_start(&s, "micromdm", &keys, NULL);
    char url[128], ps[28];
    sink_url(&s, url, sizeof url);
    long t = make_tenant("M", url, "micromdm");
    long e = make_enrollment(t);
    long c = make_command(t, e);
    pseudonym_of(t, ps);
    long ack = add_event(t, e, "command.result", c, NULL);
    add_event(t, e, "enrollment.accepted", 0, NULL);
    add_event(t, e, "device.checked_out", 0, NULL);
    lmdm_webhook_t *w = start();
    CHECK(wait_true("SELECT count(*) = 0 FROM outbox WHERE delivered_at IS NULL"));
    stop_promptly(w);

    char lines[4][4096];
    CHECK_INT_EQ(sink_lines(&s, lines, 4), 3);
    json_t *b = line_body(lines[0]);
    CHECK_STR_EQ(json_string_value(json_object_get(b, "topic")), "mdm.Connect");
    CHECK_STR_EQ(json_string_value(json_object_get(b, "event_id")),
                 scalar("SELECT event_uuid FROM outbox WHERE id = %ld", ack));
    json_t *a = json_object_get(b, "acknowledge_event");
    CHECK_STR_EQ(json_string_value(json_object_get(a, "udid")), ps);
    CHECK_STR_EQ(json_string_value(json_object_get(a, "status")), "Acknowledged");
    CHECK_STR_EQ(json_string_value(json_object_get(a, "command_uuid")), TENANT_UUID);
    const char *raw = json_string_value(json_object_get(a, "raw_payload"));
    unsigned char plist[4096];
    size_t len = 0;
    CHECK(raw && sodium_base642bin(plist, sizeof plist - 1, raw, strlen(raw), NULL, &len, NULL,
                                   sodium_base64_VARIANT_ORIGINAL) == 0);
    plist[len] = '\0';
    CHECK_STR_CONTAINS((char *)plist, TENANT_UUID);
    CHECK_STR_CONTAINS((char *)plist, "org.hospital.app");
    CHECK(!strstr((char *)plist, UDID));
    json_decref(b);
    b = line_body(lines[1]);
    CHECK_STR_EQ(json_string_value(json_object_get(b, "topic")), "mdm.TokenUpdate");
    CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(b, "checkin_event"), "udid")), ps);
    json_decref(b);
    b = line_body(lines[2]);
    CHECK_STR_EQ(json_string_value(json_object_get(b, "topic")), "mdm.CheckOut");
    CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(b, "lmdm"), "event")),
                 "device.checked_out");
    json_decref(b);
    sink_stop(&s);
    teardown();
}

static void test_one_instance_delivers(void)
{
    setup(2000, 1);
    sink_t s;
    sink_start(&s, "lock", &keys, NULL);
    char url[128];
    sink_url(&s, url, sizeof url);
    long t = make_tenant("A", url, "lmdm");
    long id = add_event(t, make_enrollment(t), "enrollment.accepted", 0, NULL);
    /* Another "instance" (this session) holds the lock. */
    CHECK_STR_EQ(scalar("SELECT pg_try_advisory_lock(%lld)", (long long)LMDM_WEBHOOK_LOCK_KEY), "t");
    lmdm_webhook_t *w = start();
    CHECK(wait_true("SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND query LIKE '%%pg_try_advisory_lock%%'"));
    CHECK_INT_EQ(pending(t), 1); /* it tried, did not get the lock, delivered nothing */
    exec_ok("SELECT pg_advisory_unlock(%lld)", (long long)LMDM_WEBHOOK_LOCK_KEY);
    CHECK(wait_true("SELECT delivered_at IS NOT NULL FROM outbox WHERE id = %ld", id));
    stop_promptly(w);
    sink_stop(&s);
    teardown();
}

int main(void)
{
    const char *build = getenv("LMDM_BUILD");
    if (!build || !getenv("LMDM_SRC")) {
        fprintf(stderr, "LMDM_BUILD and LMDM_SRC must be set (run through ctest)\n");
        return 1;
    }
    snprintf(sink_bin, sizeof sink_bin, "%s/tests/tools/webhook-sink", build);
    snprintf(outdir, sizeof outdir, "/tmp/lmdm-webhook.XXXXXX");
    if (!mkdtemp(outdir)) return 1;
    if (sodium_init() < 0) return 1;
    lmdm_log_setup(LMDM_LOG_WARN, LMDM_LOG_TEXT);
    unsigned char master[32], other[32];
    for (int i = 0; i < 32; i++) {
        master[i] = (unsigned char)(i + 1);
        other[i] = (unsigned char)(100 + i);
    }
    lmdm_secrets_derive(master, &keys);
    lmdm_secrets_derive(other, &other_keys);
    lmdm_config_defaults(&cfg);
    RUN(test_in_order_signed);
    RUN(test_failing_receiver_recovers);
    RUN(test_backoff_and_pending_tenants);
    RUN(test_hung_endpoint_isolated);
    RUN(test_wrong_key_refused);
    RUN(test_micromdm_format);
    RUN(test_one_instance_delivers);
    lmdm_config_clear(&cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", outdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", outdir);
    return harness_finish();
}
