/* apns-standin: a loopback APNs for tests.
 *
 * An HTTP/2 server over TLS (this project's own server, with one route) that
 * checks what Apple's APNs checks for an MDM push: POST /3/device/<hex token>,
 * apns-topic, apns-push-type mdm, the JSON body {"mdm": "<PushMagic>"} and, for
 * token authentication, the ES256 provider token (alg, kid, iss, iat window and
 * the signature against the team's public key). It answers with APNs' status
 * codes and {"reason": ...} bodies and appends every accepted push to a JSON
 * lines file. Faults can be injected (429s, expired tokens, unregistered
 * devices, a crash) to exercise the client's error handling.
 *
 * It verifies tokens on its own (its own base64url and JWT parsing) rather
 * than reusing the client's code, so that one bug cannot hide in both. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lmdm/config.h"
#include "lmdm/http.h"
#include "lmdm/log.h"
#include "lmdm/router.h"
#include "lmdm/server.h"

#define MAX_UNREGISTERED 64
#define PAYLOAD_MAX 4096 /* APNs' limit for a notification payload */
#define IAT_SKEW_S 60    /* a token from up to this far in the future is accepted */
#define TOKEN_AGE_S 3600 /* APNs rejects provider tokens older than one hour */

static struct {
    const char *topic;
    const char *key_id, *team_id;
    EVP_PKEY *pub;
    X509_STORE *client_cas; /* certificate auth: CAs a client certificate must chain to */
    FILE *record;
    const char *unregistered[MAX_UNREGISTERED];
    int nunregistered;
    long fail_first, expire_first, crash_on;
    long requests, accepted, rejected;
} S;

static const char usage_text[] =
    "usage: apns-standin --listen HOST:PORT --cert PEM --key PEM --topic TOPIC [options]\n"
    "\n"
    "A loopback APNs for tests: HTTP/2 over TLS, checks MDM pushes the way APNs\n"
    "does and records the accepted ones. Runs until SIGTERM or SIGINT.\n"
    "\n"
    "  --listen HOST:PORT    address to listen on (TLS, ALPN h2)\n"
    "  --cert PEM, --key PEM its TLS certificate chain and key\n"
    "  --topic TOPIC         the only apns-topic accepted\n"
    "  --key-id KID          token auth: expected JWT kid\n"
    "  --team-id TEAM        token auth: expected JWT iss\n"
    "  --key-pub PEM         token auth: EC P-256 public key that must verify the JWT\n"
    "                        (the three go together; without them no authorization\n"
    "                        header is checked)\n"
    "  --client-ca PEM       certificate auth: require a TLS client certificate issued\n"
    "                        by this CA; when its subject has a UID (an MDM push\n"
    "                        certificate's topic), apns-topic must equal it\n"
    "  --record FILE         append each accepted push as a JSON line\n"
    "                        {\"token\",\"topic\",\"push_type\",\"mdm\",\"time\",\"conn\"}\n"
    "  --unregistered TOKEN  answer 410 Unregistered for this token (repeatable)\n"
    "  --fail-first N        answer 429 TooManyRequests to the first N valid requests\n"
    "  --expire-first N      answer 403 ExpiredProviderToken to the first N valid requests\n"
    "  --crash-on N          exit at once, without answering, on the N-th request\n"
    "  --max-streams N       SETTINGS_MAX_CONCURRENT_STREAMS (default 100)\n"
    "  --idle-timeout MS     close idle connections with GOAWAY after MS (default 60000)\n"
    "  --log-level LEVEL     debug | info | warn | error (default info)\n"
    "  --help                this text\n";

/* ---- helpers ------------------------------------------------------------------ */

static long long now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Decodes unpadded base64url; returns the length or -1. */
static long b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        int v;
        if (ch >= 'A' && ch <= 'Z')
            v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z')
            v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9')
            v = ch - '0' + 52;
        else if (ch == '-')
            v = 62;
        else if (ch == '_')
            v = 63;
        else
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap) return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits >= 6) return -1; /* a dangling character: not a whole byte */
    return (long)o;
}

static json_t *b64url_json(const char *in, size_t n)
{
    unsigned char buf[1024];
    long len = b64url_decode(in, n, buf, sizeof(buf));
    if (len < 0) return NULL;
    return json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
}

static int is_hex_token(const char *t)
{
    size_t n = 0;
    for (; t[n]; n++) {
        char ch = t[n];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) return 0;
    }
    return n >= 64 && n <= 200 && n % 2 == 0;
}

static int header_count(const lmdm_http_req_t *req, const char *name)
{
    int n = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcmp(req->headers[i].name, name) == 0) n++;
    return n;
}

/* Checks the provider token the way APNs does; returns NULL if good or the
 * reason for a 403. */
static const char *check_jwt(const char *authz)
{
    if (!authz) return "MissingProviderToken";
    if (strncasecmp(authz, "bearer ", 7) != 0) return "InvalidProviderToken";
    const char *jwt = authz + 7;
    const char *d1 = strchr(jwt, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d1 || !d2 || strchr(d2 + 1, '.')) return "InvalidProviderToken";
    const char *reason = "InvalidProviderToken";
    json_t *hdr = b64url_json(jwt, (size_t)(d1 - jwt));
    json_t *cl = b64url_json(d1 + 1, (size_t)(d2 - d1 - 1));
    ECDSA_SIG *sig = NULL;
    EVP_MD_CTX *md = NULL;
    unsigned char *der = NULL;
    BIGNUM *r = NULL, *s = NULL;
    if (!json_is_object(hdr) || !json_is_object(cl)) goto done;
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    const char *kid = json_string_value(json_object_get(hdr, "kid"));
    const char *iss = json_string_value(json_object_get(cl, "iss"));
    json_t *iat = json_object_get(cl, "iat");
    if (!alg || strcmp(alg, "ES256") != 0 || !kid || strcmp(kid, S.key_id) != 0 || !iss ||
        strcmp(iss, S.team_id) != 0 || !json_is_integer(iat))
        goto done;
    long long t = json_integer_value(iat), now = (long long)time(NULL);
    if (t > now + IAT_SKEW_S) goto done;

    unsigned char rs[80];
    size_t slen = strlen(d2 + 1);
    if (b64url_decode(d2 + 1, slen, rs, sizeof(rs)) != 64) goto done;
    r = BN_bin2bn(rs, 32, NULL);
    s = BN_bin2bn(rs + 32, 32, NULL);
    sig = ECDSA_SIG_new();
    if (!r || !s || !sig || ECDSA_SIG_set0(sig, r, s) != 1) goto done;
    r = s = NULL; /* owned by sig now */
    int dlen = i2d_ECDSA_SIG(sig, &der);
    md = EVP_MD_CTX_new();
    if (dlen <= 0 || !md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, S.pub) != 1 ||
        EVP_DigestVerify(md, der, (size_t)dlen, (const unsigned char *)jwt, (size_t)(d2 - jwt)) != 1)
        goto done;
    /* A valid signature on an old token: stale rather than invalid. */
    reason = t < now - TOKEN_AGE_S ? "ExpiredProviderToken" : NULL;
done:
    json_decref(hdr);
    json_decref(cl);
    ECDSA_SIG_free(sig);
    BN_free(r);
    BN_free(s);
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    return reason;
}

static void answer(lmdm_http_req_t *req, int status, const char *reason)
{
    unsigned char rnd[16];
    char id[40];
    RAND_bytes(rnd, sizeof(rnd));
    rnd[6] = (rnd[6] & 0x0f) | 0x40; /* a version 4 UUID, as APNs generates */
    rnd[8] = (rnd[8] & 0x3f) | 0x80;
    snprintf(id, sizeof(id), "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", rnd[0],
             rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], rnd[8], rnd[9], rnd[10], rnd[11],
             rnd[12], rnd[13], rnd[14], rnd[15]);
    lmdm_http_resp_header(req, "apns-id", id);
    if (status == 200) {
        S.accepted++;
        lmdm_http_respond(req, 200, NULL, "", 0);
        return;
    }
    S.rejected++;
    lmdm_info("conn=%llu stream=%d: %d %s", (unsigned long long)req->conn_id, req->stream_id, status, reason);
    char body[160];
    int n = status == 410
                ? snprintf(body, sizeof(body), "{\"reason\":\"%s\",\"timestamp\":%lld}", reason, now_ms())
                : snprintf(body, sizeof(body), "{\"reason\":\"%s\"}", reason);
    lmdm_http_respond(req, status, "application/json", body, (size_t)n);
}

static void record(const char *token, const char *topic, const char *type, const char *mdm, uint64_t conn)
{
    if (!S.record) return;
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:f, s:I}", "token", token, "topic", topic, "push_type", type,
                          "mdm", mdm, "time", (double)now_ms() / 1000.0, "conn", (json_int_t)conn);
    char *line = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (line) {
        fprintf(S.record, "%s\n", line);
        fflush(S.record); /* tests read it while we run */
    }
    free(line);
    json_decref(j);
}

/* ---- handlers ----------------------------------------------------------------- */

/* Certificate authentication: NULL if the connection's client certificate is
 * good for this topic, or the reason for a 403 / 400. */
static const char *check_client_cert(const lmdm_http_req_t *req, const char *topic, int *status)
{
    X509 *cert = lmdm_http_req_peer_cert(req);
    *status = 403;
    if (!cert) return "MissingProviderToken"; /* neither a certificate nor a token */
    X509_STORE_CTX *vc = X509_STORE_CTX_new();
    int ok = vc && X509_STORE_CTX_init(vc, S.client_cas, cert, lmdm_http_req_peer_chain(req)) == 1 &&
             X509_verify_cert(vc) == 1;
    X509_STORE_CTX_free(vc);
    if (!ok) return "BadCertificate";
    /* An MDM push certificate is for one topic, its subject's UID. */
    X509_NAME *subj = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(subj, NID_userId, -1);
    if (idx < 0) return NULL;
    ASN1_STRING *uid = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
    int len = ASN1_STRING_length(uid);
    if ((size_t)len != strlen(topic) || memcmp(ASN1_STRING_get0_data(uid), topic, (size_t)len) != 0) {
        *status = 400;
        return "TopicDisallowed";
    }
    return NULL;
}

/* What APNs would answer for this request: 200, or a status with *reason.
 * On 200, *mdm is the PushMagic (owned by *body). */
static int check_push(lmdm_http_req_t *req, const char **reason, json_t **body, const char **mdm)
{
    const char *token = req->params[0];
    const char *topic = lmdm_http_req_header(req, "apns-topic");
    const char *type = lmdm_http_req_header(req, "apns-push-type");
    const char *prio = lmdm_http_req_header(req, "apns-priority");
    const char *exp = lmdm_http_req_header(req, "apns-expiration");
    static const char *const singles[] = {"apns-topic",      "apns-push-type", "apns-priority",
                                          "apns-expiration", "apns-id",        "authorization"};
#define FAIL(st, why)                                                                                        \
    do {                                                                                                     \
        *reason = (why);                                                                                     \
        return (st);                                                                                         \
    } while (0)
    for (size_t i = 0; i < LMDM_ARRAY_LEN(singles); i++)
        if (header_count(req, singles[i]) > 1) FAIL(400, "DuplicateHeaders");
    if (!is_hex_token(token)) FAIL(400, "BadDeviceToken");
    if (S.key_id) {
        const char *why = check_jwt(lmdm_http_req_header(req, "authorization"));
        if (why) FAIL(403, why);
    }
    if (!topic) FAIL(400, "MissingTopic");
    if (strcmp(topic, S.topic) != 0) FAIL(400, "DeviceTokenNotForTopic");
    if (S.client_cas) {
        int st;
        const char *why = check_client_cert(req, topic, &st);
        if (why) FAIL(st, why);
    }
    if (!type || strcmp(type, "mdm") != 0) FAIL(400, "InvalidPushType");
    if (prio && strcmp(prio, "10") != 0 && strcmp(prio, "5") != 0) FAIL(400, "BadPriority");
    if (exp && strspn(exp, "0123456789") != strlen(exp)) FAIL(400, "BadExpirationDate");
    if (req->body_len == 0) FAIL(400, "PayloadEmpty");
    if (req->body_len > PAYLOAD_MAX) FAIL(413, "PayloadTooLarge");
    *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL);
    *mdm = json_string_value(json_object_get(*body, "mdm"));
    /* An MDM push carries nothing but the PushMagic. */
    if (!json_is_object(*body) || !*mdm || !**mdm || json_object_size(*body) != 1) FAIL(400, "BadPayload");
    for (int i = 0; i < S.nunregistered; i++)
        if (strcasecmp(S.unregistered[i], token) == 0) FAIL(410, "Unregistered");
    if (S.fail_first > 0) {
        S.fail_first--;
        FAIL(429, "TooManyRequests");
    }
    if (S.expire_first > 0) {
        S.expire_first--;
        FAIL(403, "ExpiredProviderToken");
    }
#undef FAIL
    return 200;
}

static void on_push(lmdm_http_req_t *req)
{
    S.requests++;
    if (S.crash_on && S.requests == S.crash_on) {
        lmdm_warn("--crash-on %ld: exiting without an answer", S.crash_on);
        _exit(3);
    }
    const char *reason = NULL, *mdm = NULL;
    json_t *body = NULL;
    int st = check_push(req, &reason, &body, &mdm);
    if (st == 200) {
        record(req->params[0], lmdm_http_req_header(req, "apns-topic"), "mdm", mdm, req->conn_id);
        lmdm_debug("conn=%llu stream=%d: push %.8s... accepted", (unsigned long long)req->conn_id,
                   req->stream_id, req->params[0]);
    }
    answer(req, st, reason);
    json_decref(body);
}

static void on_bad_method(lmdm_http_req_t *req)
{
    answer(req, 405, "MethodNotAllowed");
}

/* ---- main ----------------------------------------------------------------------- */

static long parse_count(const char *opt, const char *v)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 0) {
        fprintf(stderr, "apns-standin: %s needs a number, not '%s'\n", opt, v);
        exit(2);
    }
    return n;
}

static void replace(char **slot, const char *v)
{
    free(*slot);
    *slot = strdup(v);
}

int main(int argc, char **argv)
{
    enum {
        O_LISTEN = 1,
        O_CERT,
        O_KEY,
        O_TOPIC,
        O_KEY_ID,
        O_TEAM_ID,
        O_KEY_PUB,
        O_RECORD,
        O_UNREG,
        O_FAIL,
        O_EXPIRE,
        O_CRASH,
        O_STREAMS,
        O_IDLE,
        O_LOG,
        O_CLIENT_CA,
        O_HELP
    };
    static const struct option opts[] = {{"listen", required_argument, NULL, O_LISTEN},
                                         {"cert", required_argument, NULL, O_CERT},
                                         {"key", required_argument, NULL, O_KEY},
                                         {"topic", required_argument, NULL, O_TOPIC},
                                         {"key-id", required_argument, NULL, O_KEY_ID},
                                         {"team-id", required_argument, NULL, O_TEAM_ID},
                                         {"key-pub", required_argument, NULL, O_KEY_PUB},
                                         {"record", required_argument, NULL, O_RECORD},
                                         {"unregistered", required_argument, NULL, O_UNREG},
                                         {"fail-first", required_argument, NULL, O_FAIL},
                                         {"expire-first", required_argument, NULL, O_EXPIRE},
                                         {"crash-on", required_argument, NULL, O_CRASH},
                                         {"max-streams", required_argument, NULL, O_STREAMS},
                                         {"idle-timeout", required_argument, NULL, O_IDLE},
                                         {"log-level", required_argument, NULL, O_LOG},
                                         {"client-ca", required_argument, NULL, O_CLIENT_CA},
                                         {"help", no_argument, NULL, O_HELP},
                                         {NULL, 0, NULL, 0}};
    const char *listen = NULL, *cert = NULL, *key = NULL, *key_pub = NULL, *record_path = NULL;
    const char *client_ca = NULL;
    const char *log_level = "info";
    long max_streams = 100, idle_timeout_ms = 60000;
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case O_LISTEN: listen = optarg; break;
        case O_CERT: cert = optarg; break;
        case O_KEY: key = optarg; break;
        case O_TOPIC: S.topic = optarg; break;
        case O_KEY_ID: S.key_id = optarg; break;
        case O_TEAM_ID: S.team_id = optarg; break;
        case O_KEY_PUB: key_pub = optarg; break;
        case O_RECORD: record_path = optarg; break;
        case O_CLIENT_CA: client_ca = optarg; break;
        case O_UNREG:
            if (S.nunregistered == MAX_UNREGISTERED) {
                fprintf(stderr, "apns-standin: at most %d --unregistered tokens\n", MAX_UNREGISTERED);
                return 2;
            }
            S.unregistered[S.nunregistered++] = optarg;
            break;
        case O_FAIL: S.fail_first = parse_count("--fail-first", optarg); break;
        case O_EXPIRE: S.expire_first = parse_count("--expire-first", optarg); break;
        case O_CRASH: S.crash_on = parse_count("--crash-on", optarg); break;
        case O_STREAMS: max_streams = parse_count("--max-streams", optarg); break;
        case O_IDLE: idle_timeout_ms = parse_count("--idle-timeout", optarg); break;
        case O_LOG: log_level = optarg; break;
        case O_HELP: fputs(usage_text, stdout); return 0;
        default: fputs(usage_text, stderr); return 2;
        }
    }
    if (optind < argc || !listen || !cert || !key || !S.topic || !*S.topic) {
        fprintf(stderr, "apns-standin: --listen, --cert, --key and --topic are required\n\n%s", usage_text);
        return 2;
    }
    if ((S.key_id || S.team_id || key_pub) && !(S.key_id && S.team_id && key_pub)) {
        fprintf(stderr, "apns-standin: --key-id, --team-id and --key-pub go together\n");
        return 2;
    }
    if (max_streams < 1 || max_streams > 1000 || idle_timeout_ms < 100 || idle_timeout_ms > 3600000) {
        fprintf(stderr, "apns-standin: --max-streams must be 1..1000 and --idle-timeout 100..3600000\n");
        return 2;
    }
    lmdm_log_level_t lvl;
    if (lmdm_log_level_parse(log_level, &lvl) != 0) {
        fprintf(stderr, "apns-standin: unknown log level '%s'\n", log_level);
        return 2;
    }
    lmdm_log_setup(lvl, LMDM_LOG_TEXT);
    if (key_pub) {
        FILE *f = fopen(key_pub, "r");
        S.pub = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
        if (f) fclose(f);
        if (!S.pub || EVP_PKEY_get_base_id(S.pub) != EVP_PKEY_EC) {
            fprintf(stderr, "apns-standin: %s is not a PEM EC public key\n", key_pub);
            return 1;
        }
    }
    if (client_ca) {
        S.client_cas = X509_STORE_new();
        if (!S.client_cas || X509_STORE_load_file(S.client_cas, client_ca) != 1) {
            fprintf(stderr, "apns-standin: cannot load CA certificates from %s\n", client_ca);
            return 1;
        }
    }
    if (record_path) {
        S.record = fopen(record_path, "a");
        if (!S.record) {
            fprintf(stderr, "apns-standin: cannot open %s: %s\n", record_path, strerror(errno));
            return 1;
        }
    }

    lmdm_config_t cfg;
    lmdm_config_defaults(&cfg);
    cfg.max_streams = (int)max_streams;
    cfg.idle_timeout_ms = (int)idle_timeout_ms;
    replace(&cfg.listen_tls, listen);
    replace(&cfg.listen_plain, "");
    replace(&cfg.database_url, "");
    replace(&cfg.tls_cert, cert);
    replace(&cfg.tls_key, key);
    cfg.workers = 1;                                          /* the counters above belong to one thread */
    if (client_ca) replace(&cfg.tls_client_auth, "optional"); /* asked for; checked per request */
    cfg.max_body_size = 64 * 1024; /* above PAYLOAD_MAX: we answer PayloadTooLarge ourselves */

    int rv = 1;
    lmdm_server_t *srv = NULL;
    lmdm_router_t *router = lmdm_router_new();
    static const char *const other[] = {"GET", "PUT", "DELETE", "PATCH"};
    int bad = lmdm_router_add(router, "POST", "/3/device/{token}", "push", on_push, 0);
    for (size_t i = 0; i < LMDM_ARRAY_LEN(other); i++)
        bad |= lmdm_router_add(router, other[i], "/3/device/{token}", "bad_method", on_bad_method, 0);
    if (bad) {
        fprintf(stderr, "apns-standin: cannot build the routes\n");
        goto done;
    }
    char err[512];
    srv = lmdm_server_new(&cfg, NULL, router, 0, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "apns-standin: %s\n", err);
        goto done;
    }
    lmdm_info("apns-standin on %s, topic %s, %s, %s", listen, S.topic,
              S.key_id ? "provider tokens checked" : "no provider token checked",
              S.client_cas ? "client certificates checked" : "no client certificate checked");
    rv = lmdm_server_run(srv) == 0 ? 0 : 1;
    lmdm_info("apns-standin: %ld request(s), %ld accepted, %ld rejected", S.requests, S.accepted, S.rejected);
done:
    lmdm_server_free(srv);
    lmdm_router_free(router);
    lmdm_config_clear(&cfg);
    if (S.record) fclose(S.record);
    EVP_PKEY_free(S.pub);
    X509_STORE_free(S.client_cas);
    return rv;
}
