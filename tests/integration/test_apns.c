/* The APNs client against the loopback stand-in (tests/tools/apns-standin)
 * over real TLS + HTTP/2: multiplexing and coalescing on one connection, the
 * stream limit, 410 Unregistered, 429 backoff, expired and invalid provider
 * tokens, certificate auth, a server that is down, crashes or closes idle
 * connections, an untrusted server certificate, and input refused at once.
 * The JWT is also checked on its own: decoded and verified with OpenSSL.
 *
 * Needs no database; it runs with the integration tests because it starts
 * processes. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "lmdm/apns.h"
#include "lmdm/config.h"
#include "lmdm/log.h"

#define TOPIC "com.apple.mgmt.External.7a1c9d2e-5b1f-4c1e-9a55-0123456789ab"
#define KEY_ID "KEYID12345"
#define TEAM_ID "TEAM123456"
#define MAGIC "5E0C7E5B-0F6A-4D32-9E0D-5B0A2F1C9D11"

static struct event_base *base;
static char dir[512], standin[1024], certs[600];
static char key_good[600], pub_good[600], key_other[600], key_rsa[600];
static int port;
static pid_t standin_pid;
static int standin_runs;
static char standin_args[16][600];
static int standin_nargs;
static const char *listen_host = "127.0.0.1";

typedef struct result {
    char token[201];
    int status;
    char reason[160];
} result_t;

static result_t results[256];
static int nresults;

/* ---- loop helpers ----------------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg) {}

static int run_until(const int *counter, int target, int timeout_ms)
{
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 10000};
    event_add(tick, &tv);
    uint64_t deadline = lmdm_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (*counter < target && lmdm_now_ns() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(tick);
    return *counter >= target;
}

static void run_for(int ms)
{
    int never = 0;
    run_until(&never, 1, ms);
}

static void on_result(void *arg, const char *token, int status, const char *reason)
{
    if (nresults >= (int)LMDM_ARRAY_LEN(results)) return;
    result_t *r = &results[nresults++];
    snprintf(r->token, sizeof(r->token), "%s", token);
    r->status = status;
    snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "(null)");
}

static const result_t *result_for(const char *token)
{
    for (int i = 0; i < nresults; i++)
        if (strcmp(results[i].token, token) == 0) return &results[i];
    return NULL;
}

static void token_for(int i, char out[65])
{
    snprintf(out, 65, "%016llx%016llx%016llx%016llx", 0x9e3779b97f4a7c15ULL * (unsigned long long)(i + 1),
             0x1122334455667788ULL * (unsigned long long)(i + 1), 0xdeadbeefcafef00dULL,
             (unsigned long long)i * 977u);
}

/* ---- files and keys -------------------------------------------------------------- */

static void write_ec_pair(const char *priv, const char *pub)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    if (!k) abort();
    FILE *f = fopen(priv, "w");
    if (!f || !PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL)) abort();
    fclose(f);
    chmod(priv, 0600);
    if (pub) {
        f = fopen(pub, "w");
        if (!f || !PEM_write_PUBKEY(f, k)) abort();
        fclose(f);
    }
    EVP_PKEY_free(k);
}

/* The lines of the stand-in's record file, parsed. Caller json_decref's. */
static json_t *read_record(const char *name)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    json_t *arr = json_array();
    FILE *f = fopen(path, "r");
    if (!f) return arr;
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        json_t *j = json_loads(line, 0, NULL);
        if (j)
            json_array_append_new(arr, j);
        else
            json_array_append_new(arr, json_string(line)); /* counted, and fails field checks */
    }
    fclose(f);
    return arr;
}

/* ---- the stand-in process ----------------------------------------------------- */

static int pick_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len))
        abort();
    close(fd);
    return ntohs(sa.sin_port);
}

static int port_open(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Starts the stand-in with the saved arguments; returns 1 once it listens. */
static int spawn_standin(void)
{
    char *argv[40];
    int n = 0;
    char listen[64], logpath[700];
    snprintf(listen, sizeof(listen), "%s:%d", listen_host, port);
    snprintf(logpath, sizeof(logpath), "%s/standin-%d.log", dir, ++standin_runs);
    static char cert[700], key[700];
    snprintf(cert, sizeof(cert), "%s/server.crt", certs);
    snprintf(key, sizeof(key), "%s/server.key", certs);
    argv[n++] = standin;
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--cert";
    argv[n++] = cert;
    argv[n++] = "--key";
    argv[n++] = key;
    argv[n++] = "--topic";
    argv[n++] = TOPIC;
    argv[n++] = "--log-level";
    argv[n++] = "debug";
    for (int i = 0; i < standin_nargs; i++)
        argv[n++] = standin_args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(standin, argv);
        _exit(127);
    }
    standin_pid = pid;
    for (int i = 0; i < 500; i++) {
        if (port_open()) return 1;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "apns-standin exited at start; see %s\n", logpath);
            standin_pid = 0;
            return 0;
        }
        usleep(10000);
    }
    fprintf(stderr, "apns-standin did not start listening; see %s\n", logpath);
    return 0;
}

/* Starts the stand-in with options (NULL-terminated) and a fresh record file. */
static int start_standin(const char *record, ...)
{
    va_list ap;
    standin_nargs = 0;
    snprintf(standin_args[standin_nargs++], sizeof(standin_args[0]), "--record");
    snprintf(standin_args[standin_nargs++], sizeof(standin_args[0]), "%s/%s", dir, record);
    va_start(ap, record);
    const char *a;
    while ((a = va_arg(ap, const char *)) && standin_nargs < 16)
        snprintf(standin_args[standin_nargs++], sizeof(standin_args[0]), "%s", a);
    va_end(ap);
    return spawn_standin();
}

static void stop_standin(void)
{
    if (standin_pid <= 0) return;
    kill(standin_pid, SIGTERM);
    int st;
    waitpid(standin_pid, &st, 0);
    standin_pid = 0;
}

/* ---- client setup ----------------------------------------------------------------- */

static lmdm_config_t cfg;

static void set(char **slot, const char *v)
{
    free(*slot);
    *slot = strdup(v);
}

static void config_token(const char *key_file)
{
    char url[64], ca[700];
    lmdm_config_clear(&cfg);
    lmdm_config_defaults(&cfg);
    snprintf(url, sizeof(url), "https://localhost:%d", port);
    snprintf(ca, sizeof(ca), "%s/ca.crt", certs);
    set(&cfg.apns_url, url);
    set(&cfg.apns_topic, TOPIC);
    set(&cfg.apns_auth, "token");
    set(&cfg.apns_key_file, key_file);
    set(&cfg.apns_key_id, KEY_ID);
    set(&cfg.apns_team_id, TEAM_ID);
    set(&cfg.apns_ca_file, ca);
}

static lmdm_apns_t *new_client(int backoff_ms)
{
    char err[512] = "";
    lmdm_apns_t *a = lmdm_apns_new(base, &cfg, on_result, NULL, err, sizeof(err));
    if (!a) fprintf(stderr, "lmdm_apns_new: %s\n", err);
    CHECK(a != NULL);
    if (a) lmdm_apns_set_backoff_ms(a, backoff_ms);
    nresults = 0;
    return a;
}

/* ---- base64url and JWT checks, independent of the client ----------------------- */

static long b64url_dec(const char *in, size_t n, unsigned char *out, size_t cap)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = memchr(tbl, in[i], 64);
        if (!p || !in[i]) return -1;
        acc = acc << 6 | (uint32_t)(p - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap) return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)o;
}

static int verify_es256(const char *jwt, const char *pub_file)
{
    const char *d2 = strrchr(jwt, '.');
    unsigned char rs[128];
    if (!d2 || b64url_dec(d2 + 1, strlen(d2 + 1), rs, sizeof(rs)) != 64) return 0;
    FILE *f = fopen(pub_file, "r");
    EVP_PKEY *pub = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
    if (f) fclose(f);
    ECDSA_SIG *sig = ECDSA_SIG_new();
    ECDSA_SIG_set0(sig, BN_bin2bn(rs, 32, NULL), BN_bin2bn(rs + 32, 32, NULL));
    unsigned char *der = NULL;
    int dlen = i2d_ECDSA_SIG(sig, &der);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = pub && dlen > 0 && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
             EVP_DigestVerify(md, der, (size_t)dlen, (const unsigned char *)jwt, (size_t)(d2 - jwt)) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    EVP_PKEY_free(pub);
    return ok;
}

static json_t *jwt_part(const char *jwt, int idx)
{
    const char *start = jwt;
    for (int i = 0; i < idx; i++) {
        start = strchr(start, '.');
        if (!start) return NULL;
        start++;
    }
    const char *end = strchr(start, '.');
    size_t n = end ? (size_t)(end - start) : strlen(start);
    unsigned char buf[512];
    long len = b64url_dec(start, n, buf, sizeof(buf));
    return len < 0 ? NULL : json_loadb((const char *)buf, (size_t)len, 0, NULL);
}

/* ---- tests --------------------------------------------------------------------- */

static void test_jwt(void)
{
    char err[256], *jwt = NULL;
    long iat = (long)time(NULL);
    CHECK_INT_EQ(lmdm_apns_make_jwt(key_good, KEY_ID, TEAM_ID, iat, &jwt, err, sizeof(err)), 0);
    CHECK(jwt != NULL);
    if (!jwt) return;
    CHECK(strchr(jwt, '=') == NULL); /* unpadded base64url */
    CHECK(strchr(jwt, '+') == NULL && strchr(jwt, '/') == NULL);
    json_t *h = jwt_part(jwt, 0), *c = jwt_part(jwt, 1);
    CHECK_STR_EQ(json_string_value(json_object_get(h, "alg")), "ES256");
    CHECK_STR_EQ(json_string_value(json_object_get(h, "kid")), KEY_ID);
    CHECK_STR_EQ(json_string_value(json_object_get(c, "iss")), TEAM_ID);
    CHECK_INT_EQ(json_integer_value(json_object_get(c, "iat")), iat);
    CHECK_INT_EQ(json_object_size(h), 2);
    CHECK_INT_EQ(json_object_size(c), 2);
    json_decref(h);
    json_decref(c);
    CHECK(verify_es256(jwt, pub_good));
    /* The same token does not verify under another key, nor once altered. */
    char other_pub[700];
    snprintf(other_pub, sizeof(other_pub), "%s/other.pub", dir);
    CHECK(!verify_es256(jwt, other_pub));
    char *tampered = strdup(jwt);
    char *dot = strchr(tampered, '.');
    dot[1] = dot[1] == 'e' ? 'f' : 'e';
    CHECK(!verify_es256(tampered, pub_good));
    free(tampered);
    free(jwt);

    /* ECDSA signatures are randomized, and iat is what the caller says. */
    char *j1 = NULL, *j2 = NULL;
    CHECK_INT_EQ(lmdm_apns_make_jwt(key_good, KEY_ID, TEAM_ID, 1000, &j1, err, sizeof(err)), 0);
    CHECK_INT_EQ(lmdm_apns_make_jwt(key_good, KEY_ID, TEAM_ID, 1000, &j2, err, sizeof(err)), 0);
    CHECK(j1 && j2 && strcmp(j1, j2) != 0 && verify_es256(j1, pub_good) && verify_es256(j2, pub_good));
    json_t *c1 = j1 ? jwt_part(j1, 1) : NULL;
    CHECK_INT_EQ(json_integer_value(json_object_get(c1, "iat")), 1000);
    json_decref(c1);
    free(j1);
    free(j2);

    /* Bad keys and settings. */
    char missing[700];
    snprintf(missing, sizeof(missing), "%s/absent.p8", dir);
    jwt = (char *)1;
    CHECK_INT_EQ(lmdm_apns_make_jwt(missing, KEY_ID, TEAM_ID, iat, &jwt, err, sizeof(err)),
                 LMDM_ERR_NOT_FOUND);
    CHECK(jwt == NULL);
    CHECK_STR_CONTAINS(err, "absent.p8");
    CHECK_INT_EQ(lmdm_apns_make_jwt(key_rsa, KEY_ID, TEAM_ID, iat, &jwt, err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(err, "P-256");
    CHECK_INT_EQ(lmdm_apns_make_jwt(pub_good, KEY_ID, TEAM_ID, iat, &jwt, err, sizeof(err)),
                 LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_apns_make_jwt(key_good, "", TEAM_ID, iat, &jwt, err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_apns_make_jwt(key_good, KEY_ID, "", iat, &jwt, err, sizeof(err)), LMDM_ERR_INVALID);
}

static void test_bad_config(void)
{
    char err[512];
    config_token(key_good);
    set(&cfg.apns_auth, "off");
    CHECK(lmdm_apns_new(base, &cfg, on_result, NULL, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "off");

    static const char *const bad_urls[] = {"http://localhost:1", "https://",          "https://host:0",
                                           "https://host:70000", "https://host/path", "https://ho st",
                                           "localhost:443"};
    for (size_t i = 0; i < LMDM_ARRAY_LEN(bad_urls); i++) {
        config_token(key_good);
        set(&cfg.apns_url, bad_urls[i]);
        err[0] = '\0';
        CHECK(lmdm_apns_new(base, &cfg, on_result, NULL, err, sizeof(err)) == NULL);
        CHECK_STR_CONTAINS(err, "apns_url");
    }

    config_token(key_good);
    set(&cfg.apns_team_id, "");
    CHECK(lmdm_apns_new(base, &cfg, on_result, NULL, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "apns_team_id");

    char missing[700];
    snprintf(missing, sizeof(missing), "%s/absent.p8", dir);
    config_token(missing);
    CHECK(lmdm_apns_new(base, &cfg, on_result, NULL, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "absent.p8");

    config_token(key_rsa);
    CHECK(lmdm_apns_new(base, &cfg, on_result, NULL, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "P-256");

    config_token(key_good);
    set(&cfg.apns_ca_file, missing);
    CHECK(lmdm_apns_new(base, &cfg, on_result, NULL, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "apns_ca_file");

    /* Certificate auth: both files needed, and they must belong together. */
    char crt[700], ca_key[700];
    snprintf(crt, sizeof(crt), "%s/server.crt", certs);
    snprintf(ca_key, sizeof(ca_key), "%s/ca.key", certs);
    config_token(key_good);
    set(&cfg.apns_auth, "certificate");
    CHECK(lmdm_apns_new(base, &cfg, on_result, NULL, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "apns_cert");
    set(&cfg.apns_cert, crt);
    set(&cfg.apns_cert_key, ca_key);
    CHECK(lmdm_apns_new(base, &cfg, on_result, NULL, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "apns_cert_key");
}

static void test_invalid_input(void)
{
    config_token(key_good);
    lmdm_apns_t *a = new_client(10);
    if (!a) return;
    char tok[65], long_tok[260];
    token_for(1, tok);
    memset(long_tok, 'a', 202);
    long_tok[202] = '\0';
    CHECK_INT_EQ(lmdm_apns_push(a, "abcd", MAGIC, NULL), LMDM_ERR_INVALID);   /* short */
    CHECK_INT_EQ(lmdm_apns_push(a, long_tok, MAGIC, NULL), LMDM_ERR_INVALID); /* long */
    long_tok[65] = '\0';
    CHECK_INT_EQ(lmdm_apns_push(a, long_tok, MAGIC, NULL), LMDM_ERR_INVALID); /* odd */
    char bad[65];
    memcpy(bad, tok, sizeof(bad));
    bad[10] = 'g';
    CHECK_INT_EQ(lmdm_apns_push(a, bad, MAGIC, NULL), LMDM_ERR_INVALID); /* not hex */
    bad[10] = '/';
    CHECK_INT_EQ(lmdm_apns_push(a, bad, MAGIC, NULL), LMDM_ERR_INVALID);      /* path char */
    CHECK_INT_EQ(lmdm_apns_push(a, tok, "", NULL), LMDM_ERR_INVALID);         /* no magic */
    CHECK_INT_EQ(lmdm_apns_push(a, tok, "abc\ndef", NULL), LMDM_ERR_INVALID); /* control */
    CHECK_INT_EQ(lmdm_apns_push(a, tok, "caf\xc3", NULL), LMDM_ERR_INVALID);  /* not UTF-8 */
    char big[300];
    memset(big, 'm', 299);
    big[299] = '\0';
    CHECK_INT_EQ(lmdm_apns_push(a, tok, big, NULL), LMDM_ERR_INVALID);          /* too long */
    CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, "bad topic"), LMDM_ERR_INVALID); /* header text */
    CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, ""), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_apns_push(a, NULL, MAGIC, NULL), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_apns_push(a, tok, NULL, NULL), LMDM_ERR_INVALID);
    run_for(100);
    lmdm_apns_stats_t st;
    lmdm_apns_stats(a, &st);
    CHECK_INT_EQ(st.sent, 0);
    CHECK_INT_EQ(st.coalesced, 0);
    CHECK_INT_EQ(st.connections, 0);
    CHECK_INT_EQ(nresults, 0);
    lmdm_apns_free(a);

    /* Without a configured topic, a push must bring its own. */
    set(&cfg.apns_topic, "");
    a = new_client(10);
    if (!a) return;
    CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, NULL), LMDM_ERR_INVALID);
    lmdm_apns_free(a);
}

static void test_multiplex_and_coalesce(void)
{
    CHECK(start_standin("multiplex.jsonl", "--key-id", KEY_ID, "--team-id", TEAM_ID, "--key-pub", pub_good,
                        "--max-streams", "8", NULL));
    config_token(key_good);
    lmdm_apns_t *a = new_client(10);
    if (!a) goto out;
    char tok[65];
    /* 100 pushes for 50 devices: the second of each is folded into the first. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 50; i++) {
            token_for(i, tok);
            if (i % 2) /* upper case is the same token */
                for (char *p = tok; *p; p++)
                    if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 'a' + 'A');
            CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, NULL), 0);
        }
    }
    CHECK(run_until(&nresults, 50, 10000));
    run_for(50);
    CHECK_INT_EQ(nresults, 50);
    int ok = 0;
    for (int i = 0; i < nresults; i++)
        ok += results[i].status == 200;
    CHECK_INT_EQ(ok, 50);
    lmdm_apns_stats_t st;
    lmdm_apns_stats(a, &st);
    CHECK_INT_EQ(st.sent, 50);
    CHECK_INT_EQ(st.delivered, 50);
    CHECK_INT_EQ(st.coalesced, 50);
    CHECK_INT_EQ(st.failed, 0);
    CHECK_INT_EQ(st.retries, 0); /* never beyond the 8 streams the server allows */
    CHECK_INT_EQ(st.connections, 1);

    json_t *rec = read_record("multiplex.jsonl");
    CHECK_INT_EQ(json_array_size(rec), 50);
    json_int_t conn0 = json_integer_value(json_object_get(json_array_get(rec, 0), "conn"));
    int same_conn = 1, fields_ok = 1;
    for (int i = 0; i < 50; i++) {
        token_for(i, tok);
        int found = 0;
        for (size_t k = 0; k < json_array_size(rec); k++) {
            json_t *r = json_array_get(rec, k);
            const char *t = json_string_value(json_object_get(r, "token"));
            if (t && strcasecmp(t, tok) == 0) found++;
        }
        CHECK_INT_EQ(found, 1);
    }
    for (size_t k = 0; k < json_array_size(rec); k++) {
        json_t *r = json_array_get(rec, k);
        if (json_integer_value(json_object_get(r, "conn")) != conn0) same_conn = 0;
        const char *mdm = json_string_value(json_object_get(r, "mdm"));
        const char *topic = json_string_value(json_object_get(r, "topic"));
        const char *type = json_string_value(json_object_get(r, "push_type"));
        if (!mdm || strcmp(mdm, MAGIC) || !topic || strcmp(topic, TOPIC) || !type || strcmp(type, "mdm"))
            fields_ok = 0;
    }
    CHECK(same_conn);
    CHECK(fields_ok);
    json_decref(rec);

    /* Once answered, the token is no longer pending: a new push goes out, on
     * the same connection, with a per-push topic and a magic needing escapes. */
    token_for(0, tok);
    nresults = 0;
    CHECK_INT_EQ(lmdm_apns_push(a, tok, "quote\" back\\slash \xc3\xa9", TOPIC), 0);
    CHECK(run_until(&nresults, 1, 5000));
    CHECK_INT_EQ(results[0].status, 200);
    lmdm_apns_stats(a, &st);
    CHECK_INT_EQ(st.connections, 1);
    CHECK_INT_EQ(st.coalesced, 50);
    rec = read_record("multiplex.jsonl");
    CHECK_INT_EQ(json_array_size(rec), 51);
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(rec, 50), "mdm")),
                 "quote\" back\\slash \xc3\xa9");
    json_decref(rec);

    /* A topic the server does not serve is a final 400. */
    nresults = 0;
    CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, "com.apple.mgmt.External.other"), 0);
    CHECK(run_until(&nresults, 1, 5000));
    CHECK_INT_EQ(results[0].status, 400);
    CHECK_STR_EQ(results[0].reason, "DeviceTokenNotForTopic");
    lmdm_apns_free(a);
out:
    stop_standin();
}

static void test_unregistered(void)
{
    char dead[65], alive[65];
    token_for(100, dead);
    token_for(101, alive);
    CHECK(start_standin("unreg.jsonl", "--key-id", KEY_ID, "--team-id", TEAM_ID, "--key-pub", pub_good,
                        "--unregistered", dead, NULL));
    config_token(key_good);
    lmdm_apns_t *a = new_client(10);
    if (!a) goto out;
    CHECK_INT_EQ(lmdm_apns_push(a, dead, MAGIC, NULL), 0);
    CHECK_INT_EQ(lmdm_apns_push(a, alive, MAGIC, NULL), 0);
    CHECK(run_until(&nresults, 2, 5000));
    const result_t *r = result_for(dead);
    CHECK(r && r->status == 410);
    CHECK_STR_EQ(r ? r->reason : NULL, "Unregistered");
    r = result_for(alive);
    CHECK(r && r->status == 200);
    lmdm_apns_stats_t st;
    lmdm_apns_stats(a, &st);
    CHECK_INT_EQ(st.failed, 1);
    CHECK_INT_EQ(st.delivered, 1);
    CHECK_INT_EQ(st.retries, 0); /* 410 is final */
    json_t *rec = read_record("unreg.jsonl");
    CHECK_INT_EQ(json_array_size(rec), 1);
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(rec, 0), "token")), alive);
    json_decref(rec);
    lmdm_apns_free(a);
out:
    stop_standin();
}

static void test_backoff_retries(void)
{
    char tok[65];
    token_for(200, tok);
    CHECK(start_standin("retry.jsonl", "--key-id", KEY_ID, "--team-id", TEAM_ID, "--key-pub", pub_good,
                        "--fail-first", "3", NULL));
    config_token(key_good);
    lmdm_apns_t *a = new_client(20);
    if (!a) goto out;
    uint64_t t0 = lmdm_now_ns();
    CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, NULL), 0);
    CHECK(run_until(&nresults, 1, 5000));
    uint64_t ms = (lmdm_now_ns() - t0) / 1000000u;
    CHECK_INT_EQ(results[0].status, 200);
    lmdm_apns_stats_t st;
    lmdm_apns_stats(a, &st);
    CHECK_INT_EQ(st.retries, 3);
    CHECK_INT_EQ(st.sent, 4);
    CHECK_INT_EQ(st.delivered, 1);
    /* Backed off 20, 40 and 80 ms (libevent's cached clock may fire a timer a
     * millisecond or two early, hence the slack). */
    CHECK(ms >= 130);
    json_t *rec = read_record("retry.jsonl");
    CHECK_INT_EQ(json_array_size(rec), 1);
    json_decref(rec);
    lmdm_apns_free(a);
    stop_standin();

    /* More 429s than attempts: the last answer is the outcome. */
    CHECK(start_standin("retry2.jsonl", "--fail-first", "100", NULL));
    a = new_client(5);
    if (!a) goto out;
    CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, NULL), 0);
    run_for(30);
    CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, NULL), 0); /* pending (backing off): coalesced */
    CHECK(run_until(&nresults, 1, 5000));
    CHECK_INT_EQ(results[0].status, 429);
    CHECK_STR_EQ(results[0].reason, "TooManyRequests");
    lmdm_apns_stats(a, &st);
    CHECK_INT_EQ(st.sent, 5);
    CHECK_INT_EQ(st.retries, 4);
    CHECK_INT_EQ(st.failed, 1);
    CHECK_INT_EQ(st.coalesced, 1);
    lmdm_apns_free(a);
out:
    stop_standin();
}

static void test_provider_tokens(void)
{
    char tok[65];
    token_for(300, tok);
    /* ExpiredProviderToken: a new JWT and one more try. */
    CHECK(start_standin("expired.jsonl", "--key-id", KEY_ID, "--team-id", TEAM_ID, "--key-pub", pub_good,
                        "--expire-first", "1", NULL));
    config_token(key_good);
    lmdm_apns_t *a = new_client(10);
    if (!a) goto out;
    CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, NULL), 0);
    CHECK(run_until(&nresults, 1, 5000));
    CHECK_INT_EQ(results[0].status, 200);
    lmdm_apns_stats_t st;
    lmdm_apns_stats(a, &st);
    CHECK_INT_EQ(st.sent, 2);
    CHECK_INT_EQ(st.retries, 1);
    lmdm_apns_free(a);
    stop_standin();

    /* Only once per push: expired again is final. */
    CHECK(start_standin("expired2.jsonl", "--key-id", KEY_ID, "--team-id", TEAM_ID, "--key-pub", pub_good,
                        "--expire-first", "2", NULL));
    a = new_client(10);
    if (!a) goto out;
    CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, NULL), 0);
    CHECK(run_until(&nresults, 1, 5000));
    CHECK_INT_EQ(results[0].status, 403);
    CHECK_STR_EQ(results[0].reason, "ExpiredProviderToken");
    lmdm_apns_stats(a, &st);
    CHECK_INT_EQ(st.sent, 2);
    lmdm_apns_free(a);
    stop_standin();

    /* Signed with a key the server does not know: final 403, not retried. */
    CHECK(
        start_standin("badkey.jsonl", "--key-id", KEY_ID, "--team-id", TEAM_ID, "--key-pub", pub_good, NULL));
    config_token(key_other);
    a = new_client(10);
    if (!a) goto out;
    CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, NULL), 0);
    CHECK(run_until(&nresults, 1, 5000));
    CHECK_INT_EQ(results[0].status, 403);
    CHECK_STR_EQ(results[0].reason, "InvalidProviderToken");
    lmdm_apns_stats(a, &st);
    CHECK_INT_EQ(st.sent, 1);
    CHECK_INT_EQ(st.retries, 0);
    CHECK_INT_EQ(st.failed, 1);
    lmdm_apns_free(a);

    /* Wrong team: also InvalidProviderToken (checked by the stand-in). */
    config_token(key_good);
    set(&cfg.apns_team_id, "OTHERTEAM1");
    a = new_client(10);
    if (!a) goto out;
    CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, NULL), 0);
    CHECK(run_until(&nresults, 1, 5000));
    CHECK_INT_EQ(results[0].status, 403);
    CHECK_STR_EQ(results[0].reason, "InvalidProviderToken");
    lmdm_apns_free(a);

    /* Certificate auth sends no authorization header: a server expecting a
     * provider token says so. */
    char crt[700], key[700];
    snprintf(crt, sizeof(crt), "%s/server.crt", certs);
    snprintf(key, sizeof(key), "%s/server.key", certs);
    set(&cfg.apns_auth, "certificate");
    set(&cfg.apns_cert, crt);
    set(&cfg.apns_cert_key, key);
    a = new_client(10);
    if (!a) goto out;
    CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, NULL), 0);
    CHECK(run_until(&nresults, 1, 5000));
    CHECK_INT_EQ(results[0].status, 403);
    CHECK_STR_EQ(results[0].reason, "MissingProviderToken");
    lmdm_apns_free(a);
    json_t *rec = read_record("badkey.jsonl");
    CHECK_INT_EQ(json_array_size(rec), 0);
    json_decref(rec);
out:
    stop_standin();
}

/* Certificate auth against a stand-in that checks client certificates the way
 * APNs does for MDM: issued by the right CA, and for the push's topic. */
static int cert_push(const char *name, const char *tok, int *status, char *reason, size_t rlen)
{
    char crt[700], key[700];
    snprintf(crt, sizeof(crt), "%s/%s.crt", dir, name);
    snprintf(key, sizeof(key), "%s/%s.key", dir, name);
    config_token(key_good);
    set(&cfg.apns_auth, "certificate");
    set(&cfg.apns_key_file, "");
    set(&cfg.apns_cert, crt);
    set(&cfg.apns_cert_key, key);
    lmdm_apns_t *a = new_client(10);
    if (!a) return 0;
    int ok = lmdm_apns_push(a, tok, MAGIC, NULL) == 0 && run_until(&nresults, 1, 5000);
    *status = results[0].status;
    snprintf(reason, rlen, "%s", results[0].reason);
    lmdm_apns_free(a);
    return ok;
}

static void test_certificate_auth(void)
{
    char tok[65], ca[700], reason[160];
    int status = -1;
    token_for(400, tok);
    snprintf(ca, sizeof(ca), "%s/ca.crt", certs);
    CHECK(start_standin("cert.jsonl", "--client-ca", ca, NULL));
    CHECK(cert_push("push", tok, &status, reason, sizeof(reason)));
    CHECK_INT_EQ(status, 200);
    CHECK(cert_push("wrong-topic", tok, &status, reason, sizeof(reason)));
    CHECK_INT_EQ(status, 400);
    CHECK_STR_EQ(reason, "TopicDisallowed");
    CHECK(cert_push("self-signed", tok, &status, reason, sizeof(reason)));
    CHECK_INT_EQ(status, 403);
    CHECK_STR_EQ(reason, "BadCertificate");
    /* Token auth sends no client certificate: that server wants one. */
    config_token(key_good);
    lmdm_apns_t *a = new_client(10);
    if (a) {
        CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, NULL), 0);
        CHECK(run_until(&nresults, 1, 5000));
        CHECK_INT_EQ(results[0].status, 403);
        CHECK_STR_EQ(results[0].reason, "MissingProviderToken");
        lmdm_apns_free(a);
    }
    json_t *rec = read_record("cert.jsonl");
    CHECK_INT_EQ(json_array_size(rec), 1);
    json_decref(rec);
    stop_standin();
}

static void test_server_down(void)
{
    char tok[3][65];
    config_token(key_good); /* nothing listens on the port now */
    lmdm_apns_t *a = new_client(5);
    if (!a) return;
    for (int i = 0; i < 3; i++) {
        token_for(500 + i, tok[i]);
        CHECK_INT_EQ(lmdm_apns_push(a, tok[i], MAGIC, NULL), 0);
    }
    CHECK(run_until(&nresults, 3, 5000));
    for (int i = 0; i < nresults; i++) {
        CHECK_INT_EQ(results[i].status, 0);
        CHECK_STR_CONTAINS(results[i].reason, "cannot connect");
    }
    lmdm_apns_stats_t st;
    lmdm_apns_stats(a, &st);
    CHECK_INT_EQ(st.failed, 3);
    CHECK_INT_EQ(st.sent, 0);
    CHECK_INT_EQ(st.connections, 0);
    /* It tries again for the next push, and then the server is up. */
    CHECK(start_standin("down.jsonl", NULL));
    nresults = 0;
    CHECK_INT_EQ(lmdm_apns_push(a, tok[0], MAGIC, NULL), 0);
    CHECK(run_until(&nresults, 1, 5000));
    CHECK_INT_EQ(results[0].status, 200);
    stop_standin();

    /* Pending pushes are dropped without callbacks when the client is freed. */
    nresults = 0;
    CHECK_INT_EQ(lmdm_apns_push(a, tok[1], MAGIC, NULL), 0);
    run_for(20);
    lmdm_apns_free(a);
    run_for(50);
    CHECK_INT_EQ(nresults, 0);
}

/* Restarts the stand-in once the crashed one has exited. */
static void restart_cb(evutil_socket_t fd, short what, void *arg)
{
    int *restarted = arg;
    int st;
    if (*restarted || standin_pid <= 0 || waitpid(standin_pid, &st, WNOHANG) != standin_pid) return;
    standin_pid = 0;
    /* Same port and record file, without --crash-on. */
    standin_nargs = 2;
    *restarted = spawn_standin() ? 1 : -1;
}

static void test_crash_and_reconnect(void)
{
    char tok[65];
    token_for(600, tok);
    CHECK(start_standin("crash.jsonl", "--crash-on", "1", NULL));
    config_token(key_good);
    lmdm_apns_t *a = new_client(300);
    if (!a) goto out;
    int restarted = 0;
    struct event *watch = event_new(base, -1, EV_PERSIST, restart_cb, &restarted);
    struct timeval tv = {0, 5000};
    event_add(watch, &tv);
    CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, NULL), 0);
    CHECK(run_until(&nresults, 1, 8000));
    event_free(watch);
    CHECK_INT_EQ(restarted, 1);
    CHECK_INT_EQ(results[0].status, 200);
    lmdm_apns_stats_t st;
    lmdm_apns_stats(a, &st);
    CHECK_INT_EQ(st.sent, 2); /* lost with the first server, sent again to the second */
    CHECK(st.retries >= 1);
    CHECK_INT_EQ(st.connections, 2);
    json_t *rec = read_record("crash.jsonl");
    CHECK_INT_EQ(json_array_size(rec), 1);
    json_decref(rec);
    lmdm_apns_free(a);
out:
    stop_standin();
}

static void test_goaway_reconnect(void)
{
    char t1[65], t2[65];
    token_for(700, t1);
    token_for(701, t2);
    CHECK(start_standin("goaway.jsonl", "--idle-timeout", "200", NULL));
    config_token(key_good);
    lmdm_apns_t *a = new_client(10);
    if (!a) goto out;
    CHECK_INT_EQ(lmdm_apns_push(a, t1, MAGIC, NULL), 0);
    CHECK(run_until(&nresults, 1, 5000));
    run_for(500); /* the server closes the idle connection with GOAWAY */
    CHECK_INT_EQ(lmdm_apns_push(a, t2, MAGIC, NULL), 0);
    CHECK(run_until(&nresults, 2, 5000));
    CHECK(nresults == 2 && results[0].status == 200 && results[1].status == 200);
    lmdm_apns_stats_t st;
    lmdm_apns_stats(a, &st);
    CHECK_INT_EQ(st.connections, 2);
    CHECK_INT_EQ(st.retries, 0);
    json_t *rec = read_record("goaway.jsonl");
    CHECK_INT_EQ(json_array_size(rec), 2);
    CHECK(json_integer_value(json_object_get(json_array_get(rec, 0), "conn")) !=
          json_integer_value(json_object_get(json_array_get(rec, 1), "conn")));
    json_decref(rec);
    lmdm_apns_free(a);
out:
    stop_standin();
}

static void test_untrusted_server(void)
{
    char tok[65], not_ca[700];
    token_for(800, tok);
    CHECK(start_standin("untrusted.jsonl", NULL));
    config_token(key_good);
    /* A bundle without the server's CA: the handshake must fail. */
    snprintf(not_ca, sizeof(not_ca), "%s/server.crt", certs);
    set(&cfg.apns_ca_file, not_ca);
    lmdm_apns_t *a = new_client(5);
    if (!a) goto out;
    CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, NULL), 0);
    CHECK(run_until(&nresults, 1, 5000));
    CHECK_INT_EQ(results[0].status, 0);
    CHECK_STR_CONTAINS(results[0].reason, "certificate");
    json_t *rec = read_record("untrusted.jsonl");
    CHECK_INT_EQ(json_array_size(rec), 0);
    json_decref(rec);
    lmdm_apns_free(a);

    stop_standin();

    /* The right CA but an address the certificate does not carry. */
    listen_host = "0.0.0.0";
    CHECK(start_standin("untrusted.jsonl", NULL));
    listen_host = "127.0.0.1";
    char url[64], ca[700];
    snprintf(url, sizeof(url), "https://127.0.0.2:%d", port);
    snprintf(ca, sizeof(ca), "%s/ca.crt", certs);
    set(&cfg.apns_ca_file, ca);
    set(&cfg.apns_url, url);
    a = new_client(5);
    if (!a) goto out;
    CHECK_INT_EQ(lmdm_apns_push(a, tok, MAGIC, NULL), 0);
    CHECK(run_until(&nresults, 1, 5000));
    CHECK_INT_EQ(results[0].status, 0);
    CHECK_STR_CONTAINS(results[0].reason, "certificate");
    lmdm_apns_free(a);
    rec = read_record("untrusted.jsonl");
    CHECK_INT_EQ(json_array_size(rec), 0);
    json_decref(rec);
out:
    stop_standin();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    lmdm_log_setup(getenv("LMDM_TEST_DEBUG") ? LMDM_LOG_DEBUG : LMDM_LOG_ERROR, LMDM_LOG_TEXT);
    const char *src = getenv("LMDM_SRC"), *build = getenv("LMDM_BUILD"), *out = getenv("LMDM_TEST_OUT");
    if (!src || !build) {
        fprintf(stderr, "LMDM_SRC and LMDM_BUILD must be set (run through ctest)\n");
        return 1;
    }
    snprintf(standin, sizeof(standin), "%s/tests/tools/apns-standin", build);
    if (access(standin, X_OK) != 0) {
        fprintf(stderr, "%s not found: build the apns-standin target\n", standin);
        return 1;
    }
    char tmpl[512];
    if (out) mkdir(out, 0755);
    snprintf(tmpl, sizeof(tmpl), "%s/apns-XXXXXX", out ? out : "/tmp");
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dir, sizeof(dir), "%s", tmpl);
    fprintf(stderr, "working in %s\n", dir);
    snprintf(certs, sizeof(certs), "%s/certs", dir);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "bash '%s/deploy/dev-certs.sh' '%s' >'%s/dev-certs.log' 2>&1", src, certs,
             dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "dev-certs.sh failed; see %s/dev-certs.log\n", dir);
        return 1;
    }
    snprintf(key_good, sizeof(key_good), "%s/apns.p8", dir);
    snprintf(pub_good, sizeof(pub_good), "%s/apns.pub", dir);
    snprintf(key_other, sizeof(key_other), "%s/other.p8", dir);
    snprintf(key_rsa, sizeof(key_rsa), "%s/rsa.pem", dir);
    char other_pub[700];
    snprintf(other_pub, sizeof(other_pub), "%s/other.pub", dir);
    write_ec_pair(key_good, pub_good);
    write_ec_pair(key_other, other_pub);
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    FILE *f = fopen(key_rsa, "w");
    if (!rsa || !f || !PEM_write_PrivateKey(f, rsa, NULL, NULL, 0, NULL, NULL)) abort();
    fclose(f);
    EVP_PKEY_free(rsa);
    /* MDM push certificates: the topic is the subject's UID. */
    static const struct {
        const char *name, *uid;
        int self_signed;
    } push_certs[] = {
        {"push", TOPIC, 0}, {"wrong-topic", "com.apple.mgmt.External.other", 0}, {"self-signed", TOPIC, 1}};
    for (size_t i = 0; i < LMDM_ARRAY_LEN(push_certs); i++) {
        const char *n = push_certs[i].name;
        if (push_certs[i].self_signed)
            snprintf(cmd, sizeof(cmd),
                     "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                     "-keyout %s.key "
                     "-subj '/UID=%s/CN=APSP:test' -days 2 -out %s.crt >>openssl.log 2>&1",
                     dir, n, push_certs[i].uid, n);
        else
            snprintf(
                cmd, sizeof(cmd),
                "cd '%s' && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "
                "%s.key "
                "-subj '/UID=%s/CN=APSP:test' -out %s.csr >>openssl.log 2>&1 && openssl x509 -req -in %s.csr "
                "-CA certs/ca.crt -CAkey certs/ca.key -set_serial %zu -days 2 -out %s.crt >>openssl.log 2>&1",
                dir, n, push_certs[i].uid, n, n, 100 + i, n);
        if (system(cmd) != 0) {
            fprintf(stderr, "cannot make the %s certificate; see %s/openssl.log\n", n, dir);
            return 1;
        }
    }
    port = pick_port();
    base = event_base_new();
    lmdm_config_defaults(&cfg);

    RUN(test_jwt);
    RUN(test_bad_config);
    RUN(test_invalid_input);
    RUN(test_multiplex_and_coalesce);
    RUN(test_unregistered);
    RUN(test_backoff_retries);
    RUN(test_provider_tokens);
    RUN(test_certificate_auth);
    RUN(test_server_down);
    RUN(test_crash_and_reconnect);
    RUN(test_goaway_reconnect);
    RUN(test_untrusted_server);

    stop_standin();
    lmdm_config_clear(&cfg);
    event_base_free(base);
    int rv = harness_finish();
    if (rv == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    return rv;
}
