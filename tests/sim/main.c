/* lmdm-sim: play one Apple device (enroll, checkin, connect, run) or many
 * (fleet) against an MDM server, with Apple's wire format. See
 * docs/simulator.md. Exit codes: 0 success, 1 local error, 2 usage,
 * 3 the server answered with an HTTP error, 4 the server's answer was
 * malformed. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>

#include "sim.h"

#define EXIT_LOCAL 1
#define EXIT_USAGE 2
#define EXIT_HTTP 3
#define EXIT_BADANSWER 4

static const char *prog = "lmdm-sim";

static void die_usage(const char *cmd, const char *fmt, ...) SIM_PRINTF(2, 3);
static void die_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s %s: ", prog, cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see `%s %s --help`)\n", prog, cmd);
    exit(EXIT_USAGE);
}

/* Options most subcommands share, parsed in one place. */
typedef struct {
    const char *dir;
    const char *cacert;
    sim_httpver_t version;
    sim_idmode_t mode;
    bool mode_set;
    bool verbose;
    long timeout_ms;
    bool seeded;
    uint64_t seed;
} common_t;

enum {
    O_HTTP1 = 1000,
    O_HTTP2,
    O_MODE,
    O_CACERT,
    O_VERBOSE,
    O_TIMEOUT,
    O_SEED,
    O_DIR,
    /* enroll */
    O_URL,
    O_PROFILE_CA,
    O_USER,
    O_PLATFORM,
    O_CHECKIN,
    O_SUPERVISED,
    O_VIA,
    /* checkin / connect */
    O_MESSAGE,
    O_USER_CHANNEL,
    O_ALL_KEYS,
    O_ENDPOINT,
    O_DATA,
    O_TOKEN_SERVICE,
    O_DIGEST,
    O_AWAITING,
    O_SET,
    O_UNSET,
    O_BODY,
    O_CONTENT_TYPE,
    O_SIGN_WITH,
    O_SAVE_REQUEST,
    O_REPLAY,
    O_TO,
    O_STATUS,
    O_UUID,
    O_REQUEST_TYPE,
    O_TO_SERVER_URL,
    /* run */
    O_NOTNOW,
    O_ERROR,
    O_FORMAT_ERROR,
    O_MAX,
    O_IDLE_AFTER,
    O_SCHEMA,
    O_NO_SCHEMA,
    O_LENIENT,
    /* fleet */
    O_COUNT,
    O_DURATION,
    O_FLEET_MODE,
    O_H2C,
    O_MTLS,
    O_SIGNATURE,
    O_CONCURRENCY,
    O_CONNECTIONS,
    O_STATE,
    O_JSON,
    O_NO_SIG_CACHE,
    O_HELP,
};

#define COMMON_OPTS                                                                                          \
    {"dir", required_argument, NULL, O_DIR}, {"cacert", required_argument, NULL, O_CACERT},                  \
        {"http1", no_argument, NULL, O_HTTP1}, {"http2", no_argument, NULL, O_HTTP2},                        \
        {"mode", required_argument, NULL, O_MODE}, {"verbose", no_argument, NULL, O_VERBOSE},                \
        {"timeout", required_argument, NULL, O_TIMEOUT}, {"seed", required_argument, NULL, O_SEED},          \
    {                                                                                                        \
        "help", no_argument, NULL, O_HELP                                                                    \
    }

static long parse_long(const char *cmd, const char *what, const char *s, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || v < min || v > max) {
        die_usage(cmd, "%s must be an integer in [%ld, %ld], not '%s'", what, min, max, s);
    }
    return v;
}

/* Returns true when the option was a common one. */
static bool common_opt(const char *cmd, int c, common_t *co)
{
    switch (c) {
    case O_DIR: co->dir = optarg; return true;
    case O_CACERT: co->cacert = optarg; return true;
    case O_HTTP1: co->version = SIM_HTTP_1; return true;
    case O_HTTP2: co->version = SIM_HTTP_2; return true;
    case O_VERBOSE: co->verbose = true; return true;
    case O_TIMEOUT: co->timeout_ms = parse_long(cmd, "--timeout (ms)", optarg, 1, 3600000); return true;
    case O_SEED:
        co->seeded = true;
        co->seed = strtoull(optarg, NULL, 0);
        return true;
    case O_MODE:
        if (strcmp(optarg, "mtls") == 0)
            co->mode = SIM_ID_MTLS;
        else if (strcmp(optarg, "signature") == 0)
            co->mode = SIM_ID_SIGNATURE;
        else if (strcmp(optarg, "none") == 0)
            co->mode = SIM_ID_NONE;
        else
            die_usage(cmd, "--mode is mtls, signature or none, not '%s'", optarg);
        co->mode_set = true;
        return true;
    default: return false;
    }
}

static void apply_seed(const common_t *co)
{
    if (co->seeded)
        sim_seed(co->seed);
    else
        sim_seed_random();
}

static void load_device(const char *cmd, const common_t *co, sim_device_t *d)
{
    char err[SIM_ERRLEN];
    if (!co->dir) die_usage(cmd, "--dir is required");
    if (sim_device_load(d, co->dir, err, sizeof err) != 0) {
        fprintf(stderr, "%s %s: %s\n", prog, cmd, err);
        exit(EXIT_LOCAL);
    }
}

/* The identity mode a device uses: the flag, else the profile's SignMessage
 * (true -> signature; false -> TLS client certificate on https, and the
 * signature on plain http, where there is no TLS to carry a certificate). */
static sim_idmode_t device_mode(const char *cmd, const common_t *co, const sim_device_t *d, const char *url)
{
    bool tls = strncmp(url, "https://", 8) == 0;
    if (co->mode_set) {
        if (co->mode == SIM_ID_MTLS && !tls) die_usage(cmd, "--mode mtls needs an https:// URL, not %s", url);
        return co->mode;
    }
    if (d->sign_message || !tls) return SIM_ID_SIGNATURE;
    return SIM_ID_MTLS;
}

static sim_http_opts_t http_opts(const common_t *co, const sim_device_t *d, sim_idmode_t mode,
                                 const sim_device_t *cert_owner)
{
    sim_http_opts_t o = {
        .cacert = co->cacert ? co->cacert : (d && d->cacert[0] ? d->cacert : NULL),
        .client_pem = mode == SIM_ID_MTLS && cert_owner ? cert_owner->identity_pem : NULL,
        .version = co->version,
        .timeout_ms = co->timeout_ms,
        .verbose = co->verbose,
    };
    return o;
}

/* Print "HTTP/x STATUS" and the body: XML when it is a plist (binary ones
 * too), as is otherwise. */
static void print_response(const sim_http_resp_t *r)
{
    printf("%s %ld\n", sim_http_version_name(r->version), r->status);
    if (!r->len) return;
    plist_t p = sim_plist_parse(r->body, r->len);
    if (p) {
        size_t n = 0;
        char *xml = sim_plist_xml(p, &n);
        fwrite(xml, 1, n, stdout);
        free(xml);
        plist_free(p);
    } else {
        fwrite(r->body, 1, r->len, stdout);
        if (r->body[r->len - 1] != '\n') putchar('\n');
    }
}

/* ---- enroll -------------------------------------------------------------- */

static void usage_enroll(FILE *f)
{
    fprintf(f,
            "Usage: %s enroll --url URL --dir DIR [options]\n"
            "Download the enrollment profile (GET URL/enroll), install it like a device:\n"
            "verify its CMS signature, unpack the PKCS#12 identity, invent the device's\n"
            "identifiers. Writes DIR/device.json and DIR/identity.pem (key + certificate).\n"
            "Prints a JSON summary.\n\n"
            "  --url URL              server base URL (or the full .../enroll URL)\n"
            "  --dir DIR              where to keep the device (created)\n"
            "  --user MANAGED_ID      User Enrollment (GET .../enroll?kind=user&managed_apple_id=...)\n"
            "  --platform ios|macos   which kind of device (default ios)\n"
            "  --cacert FILE          CA for the server's TLS certificate (remembered for later\n"
            "                         commands); a profile signer it does not vouch for gets a\n"
            "                         warning and is installed anyway, as \"Not Verified\"\n"
            "  --profile-ca FILE      CA the profile must be signed by (the broker CA): refuse\n"
            "                         unsigned profiles and other signers\n"
            "  --checkin              then send Authenticate and TokenUpdate\n"
            "  --supervised           a supervised device (accepts supervised-only commands)\n"
            "  --via URL              talk to URL's origin instead of the profile's (paths kept):\n"
            "                         the device sits behind a TLS-terminating proxy, or a test\n"
            "                         uses the plain (h2c) listener while public_url is https\n"
            "  --seed N               deterministic identifiers\n"
            "  --http1 | --http2      HTTP version (default: HTTP/1.1 on http, ALPN on https)\n"
            "  --timeout MS, --verbose\n",
            prog);
}

static int send_checkin(const char *cmd, const common_t *co, sim_device_t *d, const char *type, bool quiet);

static int cmd_enroll(int argc, char **argv)
{
    const char *cmd = "enroll";
    common_t co = {0};
    const char *url = NULL, *profile_ca = NULL, *user = NULL, *platform = "iOS", *via = NULL;
    bool checkin = false, supervised = false;
    static const struct option opts[] = {COMMON_OPTS,
                                         {"url", required_argument, NULL, O_URL},
                                         {"profile-ca", required_argument, NULL, O_PROFILE_CA},
                                         {"user", required_argument, NULL, O_USER},
                                         {"platform", required_argument, NULL, O_PLATFORM},
                                         {"checkin", no_argument, NULL, O_CHECKIN},
                                         {"supervised", no_argument, NULL, O_SUPERVISED},
                                         {"via", required_argument, NULL, O_VIA},
                                         {0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (common_opt(cmd, c, &co)) continue;
        switch (c) {
        case O_URL: url = optarg; break;
        case O_PROFILE_CA: profile_ca = optarg; break;
        case O_USER: user = optarg; break;
        case O_CHECKIN: checkin = true; break;
        case O_SUPERVISED: supervised = true; break;
        case O_VIA: via = optarg; break;
        case O_PLATFORM:
            if (strcasecmp(optarg, "ios") == 0)
                platform = "iOS";
            else if (strcasecmp(optarg, "macos") == 0)
                platform = "macOS";
            else
                die_usage(cmd, "--platform is ios or macos, not '%s'", optarg);
            break;
        case O_HELP: usage_enroll(stdout); return 0;
        default: usage_enroll(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) die_usage(cmd, "unexpected argument '%s'", argv[optind]);
    if (!url || !co.dir) die_usage(cmd, "--url and --dir are required");
    apply_seed(&co);

    /* URL/enroll unless the URL already names the endpoint. */
    char full[sizeof((sim_device_t *)0)->enroll_url];
    const char *q = strchr(url, '?');
    size_t pathlen = q ? (size_t)(q - url) : strlen(url);
    bool has_enroll = pathlen >= 7 && strncmp(url + pathlen - 7, "/enroll", 7) == 0;
    int fl = snprintf(full, sizeof full, "%s%s", url,
                      has_enroll ? "" : (pathlen && url[pathlen - 1] == '/' ? "enroll" : "/enroll"));
    if (user && fl >= 0 && (size_t)fl < sizeof full) {
        CURL *e = curl_easy_init();
        char *esc = curl_easy_escape(e, user, 0);
        int more = snprintf(full + fl, sizeof full - (size_t)fl, "%skind=user&managed_apple_id=%s",
                            strchr(full, '?') ? "&" : "?", esc);
        fl = more < 0 ? -1 : fl + more;
        curl_free(esc);
        curl_easy_cleanup(e);
    }
    if (fl < 0 || (size_t)fl >= sizeof full) die_usage(cmd, "--url is too long");

    sim_device_t d;
    sim_device_init(&d, platform, user != NULL);
    d.supervised = supervised;
    snprintf(d.enroll_url, sizeof d.enroll_url, "%s", full);
    if (co.cacert) snprintf(d.cacert, sizeof d.cacert, "%s", co.cacert);
    if (user) snprintf(d.managed_apple_id, sizeof d.managed_apple_id, "%s", user);

    sim_http_opts_t ho = http_opts(&co, &d, SIM_ID_NONE, NULL);
    sim_http_resp_t r = {0};
    struct curl_slist *h = curl_slist_append(NULL, "User-Agent: " SIM_USER_AGENT);
    int rc = EXIT_LOCAL;
    char err[SIM_ERRLEN];
    if (sim_http_perform(&ho, "GET", full, NULL, 0, h, &r) != 0) {
        fprintf(stderr, "%s enroll: GET %s: %s\n", prog, full, r.error);
        goto out;
    }
    if (r.status != 200) {
        fprintf(stderr, "%s enroll: GET %s answered %ld\n", prog, full, r.status);
        print_response(&r);
        rc = EXIT_HTTP;
        goto out;
    }
    if (strncmp(r.content_type, "application/x-apple-aspen-config", 32) != 0)
        fprintf(stderr, "%s enroll: warning: Content-Type is '%s', not application/x-apple-aspen-config\n",
                prog, r.content_type);
    /* The signature over the profile must hold. Its signer: checked against
     * --profile-ca strictly, against --cacert as a device would (installed
     * as "Not Verified" when it does not chain). */
    const char *cas[3] = {profile_ca ? profile_ca : co.cacert, profile_ca ? co.cacert : NULL, NULL};
    if (sim_device_apply_profile(&d, r.body, r.len, cas[0] ? cas : NULL, profile_ca != NULL, err,
                                 sizeof err) != 0) {
        fprintf(stderr, "%s enroll: %s\n", prog, err);
        rc = EXIT_BADANSWER;
        goto out;
    }
    if (co.cacert && d.profile_trust != 1)
        fprintf(stderr,
                "%s enroll: warning: the profile is %s; installed as Not Verified "
                "(--profile-ca BROKER_CA makes this an error)\n",
                prog,
                d.profile_trust < 0 ? "not signed" : "signed by a certificate --cacert does not vouch for");
    if (via && sim_device_rewrite_origin(&d, via, err, sizeof err) != 0) {
        fprintf(stderr, "%s enroll: --via: %s\n", prog, err);
        rc = EXIT_USAGE;
        goto out;
    }
    if (user && !d.user_enrollment) {
        fprintf(stderr, "%s enroll: asked for a User Enrollment profile, got a device enrollment profile\n",
                prog);
        rc = EXIT_BADANSWER;
        goto out;
    }
    if (sim_device_save(&d, co.dir, err, sizeof err) != 0) {
        fprintf(stderr, "%s enroll: %s\n", prog, err);
        goto out;
    }
    static const char *const trust_names[] = {"unsigned", "untrusted", "trusted"};
    json_t *sum = json_pack(
        "{s:s, s:s, s:s?, s:s, s:s, s:s, s:b, s:b, s:s, s:I, s:s, s:s?}", "dir", co.dir, "enrollment",
        d.user_enrollment ? "user" : "device", "udid", d.user_enrollment ? NULL : d.udid, "enrollment_id",
        d.enrollment_id, "server_url", d.server_url, "checkin_url", sim_device_checkin_url(&d),
        "sign_message", d.sign_message, "user_enrollment", d.user_enrollment, "topic", d.topic,
        "access_rights", (json_int_t)d.access_rights, "profile_signer", trust_names[d.profile_trust + 1],
        "owner_url", d.owner_url[0] ? d.owner_url : NULL);
    char *s = json_dumps(sum, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    json_decref(sum);
    rc = 0;
    if (checkin) {
        rc = send_checkin(cmd, &co, &d, "Authenticate", true);
        if (rc == 0) rc = send_checkin(cmd, &co, &d, "TokenUpdate", true);
    }
out:
    sim_http_resp_clear(&r);
    sim_device_clear(&d);
    return rc;
}

/* ---- checkin / connect: one exchange ------------------------------------ */

typedef struct {
    const char *sets[64];
    size_t nsets;
    const char *unsets[64];
    size_t nunsets;
    const char *body_file;
    const char *content_type;
    const char *sign_with;
    const char *save_prefix;
    const char *replay_prefix;
    const char *to_url;
    bool to_server_url;
} exchange_opts_t;

static bool exchange_opt(const char *cmd, int c, exchange_opts_t *x)
{
    switch (c) {
    case O_SET:
        if (x->nsets == 64 || !strchr(optarg, '='))
            die_usage(cmd, "--set takes KEY=VALUE (at most 64), not '%s'", optarg);
        x->sets[x->nsets++] = optarg;
        return true;
    case O_UNSET:
        if (x->nunsets == 64) die_usage(cmd, "too many --unset");
        x->unsets[x->nunsets++] = optarg;
        return true;
    case O_BODY: x->body_file = optarg; return true;
    case O_CONTENT_TYPE: x->content_type = optarg; return true;
    case O_SIGN_WITH: x->sign_with = optarg; return true;
    case O_SAVE_REQUEST: x->save_prefix = optarg; return true;
    case O_REPLAY: x->replay_prefix = optarg; return true;
    case O_TO: x->to_url = optarg; return true;
    case O_TO_SERVER_URL: x->to_server_url = true; return true;
    default: return false;
    }
}

#define EXCHANGE_OPTS                                                                                        \
    {"set", required_argument, NULL, O_SET}, {"unset", required_argument, NULL, O_UNSET},                    \
        {"body", required_argument, NULL, O_BODY},                                                           \
        {"content-type", required_argument, NULL, O_CONTENT_TYPE},                                           \
        {"sign-with", required_argument, NULL, O_SIGN_WITH},                                                 \
        {"save-request", required_argument, NULL, O_SAVE_REQUEST},                                           \
        {"replay", required_argument, NULL, O_REPLAY}, {"url", required_argument, NULL, O_TO},               \
    {                                                                                                        \
        "to-server-url", no_argument, NULL, O_TO_SERVER_URL                                                  \
    }

#define EXCHANGE_HELP                                                                                        \
    "  --set KEY=VALUE        set a top-level string key of the message (repeatable)\n"                      \
    "  --unset KEY            remove a top-level key of the message (repeatable)\n"                          \
    "  --body FILE            send FILE as the body instead of the built message\n"                          \
    "  --content-type CT      send this Content-Type instead\n"                                              \
    "  --url URL              send to URL instead of the profile's\n"                                        \
    "  --to-server-url        send to the profile's ServerURL (as devices do when the\n"                     \
    "                         profile has no CheckInURL)\n"                                                  \
    "  --sign-with DIR        sign / present the certificate of the device in DIR instead\n"                 \
    "  --save-request PREFIX  write the body to PREFIX.body and the Mdm-Signature to PREFIX.sig\n"           \
    "  --replay PREFIX        send PREFIX.body with the signature PREFIX.sig unchanged\n"                    \
    "  --mode mtls|signature|none  identity (default: the profile's SignMessage)\n"                          \
    "  --cacert FILE, --http1 | --http2, --timeout MS, --verbose\n"

/* Send body (or what the exchange options make of it) to url; print the
 * answer. Returns the exit code. */
static int exchange(const char *cmd, const common_t *co, const exchange_opts_t *x, sim_device_t *d,
                    const char *url, const char *content_type, plist_t msg, bool print)
{
    char err[SIM_ERRLEN];
    int rc = EXIT_LOCAL;
    unsigned char *body = NULL, *sig = NULL;
    size_t len = 0, siglen = 0;
    sim_device_t other = {0};
    sim_device_t *signer = d;
    sim_http_resp_t r = {0};
    struct curl_slist *h = NULL;

    if (x && x->to_server_url) url = d->server_url;
    if (x && x->to_url) url = x->to_url;
    for (size_t i = 0; x && i < x->nsets; i++) {
        char key[256];
        const char *eq = strchr(x->sets[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - x->sets[i]), x->sets[i]);
        sim_set_str(msg, key, eq + 1);
    }
    for (size_t i = 0; x && i < x->nunsets; i++)
        plist_dict_remove_item(msg, x->unsets[i]);
    if (x && x->replay_prefix) {
        char p[4096];
        snprintf(p, sizeof p, "%s.body", x->replay_prefix);
        if (sim_read_file(p, &body, &len, err, sizeof err) != 0) goto fail;
        snprintf(p, sizeof p, "%s.sig", x->replay_prefix);
        if (sim_read_file(p, &sig, &siglen, err, sizeof err) != 0) goto fail;
        while (siglen && (sig[siglen - 1] == '\n' || sig[siglen - 1] == '\r'))
            sig[--siglen] = '\0';
    } else if (x && x->body_file) {
        if (sim_read_file(x->body_file, &body, &len, err, sizeof err) != 0) goto fail;
    } else {
        body = (unsigned char *)sim_plist_xml(msg, &len);
    }
    if (x && x->sign_with) {
        if (sim_device_load(&other, x->sign_with, err, sizeof err) != 0) goto fail;
        signer = &other;
    }
    sim_idmode_t mode = device_mode(cmd, co, d, url);
    if (sig && mode == SIM_ID_MTLS) {
        snprintf(err, sizeof err, "--replay sends a signature: use --mode signature");
        goto fail;
    }
    h = sim_mdm_headers(x && x->content_type ? x->content_type : content_type, mode, signer, body, len,
                        (const char *)sig, err, sizeof err);
    if (!h) goto fail;
    if (x && x->save_prefix) {
        char p[4096];
        snprintf(p, sizeof p, "%s.body", x->save_prefix);
        if (sim_write_file(p, body, len, 0600, err, sizeof err) != 0) goto fail;
        const char *sighdr = NULL;
        for (struct curl_slist *it = h; it; it = it->next)
            if (strncmp(it->data, "Mdm-Signature: ", 15) == 0) sighdr = it->data + 15;
        snprintf(p, sizeof p, "%s.sig", x->save_prefix);
        if (sim_write_file(p, sighdr ? sighdr : "", sighdr ? strlen(sighdr) : 0, 0600, err, sizeof err) != 0)
            goto fail;
    }
    sim_http_opts_t ho = http_opts(co, d, mode, signer);
    if (sim_http_perform(&ho, "PUT", url, body, len, h, &r) != 0) {
        h = NULL; /* owned by r now */
        fprintf(stderr, "%s %s: PUT %s: %s\n", prog, cmd, url, r.error);
        goto out;
    }
    h = NULL;
    rc = r.status >= 200 && r.status < 300 ? 0 : EXIT_HTTP;
    if (print || rc != 0) print_response(&r);
    goto out;
fail:
    fprintf(stderr, "%s %s: %s\n", prog, cmd, err);
out:
    curl_slist_free_all(h);
    sim_http_resp_clear(&r);
    sim_device_clear(&other);
    free(body);
    free(sig);
    return rc;
}

static void usage_checkin(FILE *f)
{
    fprintf(f,
            "Usage: %s checkin --dir DIR --message NAME [options]\n"
            "Send one check-in message (PUT CheckInURL, or ServerURL when the profile has no\n"
            "CheckInURL; Content-Type " SIM_CT_CHECKIN ").\n"
            "Prints the HTTP version and status, then the body (XML when it is a plist).\n"
            "NAME: Authenticate TokenUpdate CheckOut UserAuthenticate GetBootstrapToken\n"
            "      SetBootstrapToken DeclarativeManagement GetToken\n\n"
            "  --user-channel         the user channel (UserID/UserShortName/... or EnrollmentUserID)\n"
            "  --all-keys             every key Apple's schema lists for this enrollment and channel\n"
            "  --endpoint E           DeclarativeManagement Endpoint (tokens, declaration-items,\n"
            "                         status, declaration/TYPE/ID); default tokens\n"
            "  --data FILE            DeclarativeManagement Data (default for status: a status report)\n"
            "  --token-service S      GetToken TokenServiceType (default com.apple.maid)\n"
            "  --digest-response S    UserAuthenticate second round\n"
            "  --awaiting-configuration  AwaitingConfiguration true\n" EXCHANGE_HELP,
            prog);
}

static int send_checkin_x(const char *cmd, const common_t *co, const exchange_opts_t *x, sim_device_t *d,
                          const char *type, const sim_checkin_opts_t *ck, bool quiet)
{
    char err[SIM_ERRLEN];
    plist_t msg = sim_checkin_build(d, type, ck, err, sizeof err);
    if (!msg) {
        fprintf(stderr, "%s %s: %s\n", prog, cmd, err);
        return EXIT_USAGE;
    }
    int rc = exchange(cmd, co, x, d, sim_device_checkin_url(d), SIM_CT_CHECKIN, msg, !quiet);
    if (quiet && rc != 0) fprintf(stderr, "%s %s: %s check-in failed (exit %d)\n", prog, cmd, type, rc);
    plist_free(msg);
    return rc;
}

static int send_checkin(const char *cmd, const common_t *co, sim_device_t *d, const char *type, bool quiet)
{
    sim_checkin_opts_t ck = {0};
    return send_checkin_x(cmd, co, NULL, d, type, &ck, quiet);
}

static int cmd_checkin(int argc, char **argv)
{
    const char *cmd = "checkin";
    common_t co = {0};
    exchange_opts_t x = {0};
    sim_checkin_opts_t ck = {0};
    const char *message = NULL, *data_file = NULL;
    static const struct option opts[] = {COMMON_OPTS,
                                         EXCHANGE_OPTS,
                                         {"message", required_argument, NULL, O_MESSAGE},
                                         {"user-channel", no_argument, NULL, O_USER_CHANNEL},
                                         {"all-keys", no_argument, NULL, O_ALL_KEYS},
                                         {"endpoint", required_argument, NULL, O_ENDPOINT},
                                         {"data", required_argument, NULL, O_DATA},
                                         {"token-service", required_argument, NULL, O_TOKEN_SERVICE},
                                         {"digest-response", required_argument, NULL, O_DIGEST},
                                         {"awaiting-configuration", no_argument, NULL, O_AWAITING},
                                         {0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (common_opt(cmd, c, &co) || exchange_opt(cmd, c, &x)) continue;
        switch (c) {
        case O_MESSAGE: message = optarg; break;
        case O_USER_CHANNEL: ck.user_channel = true; break;
        case O_ALL_KEYS: ck.all_keys = true; break;
        case O_ENDPOINT: ck.endpoint = optarg; break;
        case O_DATA: data_file = optarg; break;
        case O_TOKEN_SERVICE: ck.token_service = optarg; break;
        case O_DIGEST: ck.digest_response = optarg; break;
        case O_AWAITING: ck.awaiting_configuration = true; break;
        case O_HELP: usage_checkin(stdout); return 0;
        default: usage_checkin(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) die_usage(cmd, "unexpected argument '%s'", argv[optind]);
    if (!message) die_usage(cmd, "--message is required");
    if (!sim_in_list(message, sim_checkin_types)) die_usage(cmd, "unknown --message '%s'", message);
    apply_seed(&co);
    sim_device_t d;
    load_device(cmd, &co, &d);
    unsigned char *data = NULL;
    size_t dlen = 0;
    char err[SIM_ERRLEN];
    if (data_file) {
        if (sim_read_file(data_file, &data, &dlen, err, sizeof err) != 0) {
            fprintf(stderr, "%s %s: %s\n", prog, cmd, err);
            sim_device_clear(&d);
            return EXIT_LOCAL;
        }
        ck.data = data;
        ck.data_len = dlen;
    }
    int rc = send_checkin_x(cmd, &co, &x, &d, message, &ck, false);
    free(data);
    sim_device_clear(&d);
    return rc;
}

static void usage_connect(FILE *f)
{
    fprintf(f,
            "Usage: %s connect --dir DIR [options]\n"
            "Send one command-endpoint request (PUT ServerURL, Content-Type " SIM_CT_CONNECT ")\n"
            "and print the answer: by default Status Idle.\n\n"
            "  --status S             Idle, Acknowledged, Error, CommandFormatError, NotNow, or\n"
            "                         anything else (to test refusals)\n"
            "  --uuid U               CommandUUID the status is about\n"
            "  --request-type RT      build the device's full answer for a command of type RT\n"
            "  --user-channel         the user channel\n" EXCHANGE_HELP,
            prog);
}

static int cmd_connect(int argc, char **argv)
{
    const char *cmd = "connect";
    common_t co = {0};
    exchange_opts_t x = {0};
    const char *status = "Idle", *uuid = NULL, *rtype = NULL;
    bool user_channel = false;
    static const struct option opts[] = {COMMON_OPTS,
                                         EXCHANGE_OPTS,
                                         {"status", required_argument, NULL, O_STATUS},
                                         {"uuid", required_argument, NULL, O_UUID},
                                         {"request-type", required_argument, NULL, O_REQUEST_TYPE},
                                         {"user-channel", no_argument, NULL, O_USER_CHANNEL},
                                         {0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (common_opt(cmd, c, &co) || exchange_opt(cmd, c, &x)) continue;
        switch (c) {
        case O_STATUS: status = optarg; break;
        case O_UUID: uuid = optarg; break;
        case O_REQUEST_TYPE: rtype = optarg; break;
        case O_USER_CHANNEL: user_channel = true; break;
        case O_HELP: usage_connect(stdout); return 0;
        default: usage_connect(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) die_usage(cmd, "unexpected argument '%s'", argv[optind]);
    apply_seed(&co);
    sim_device_t d;
    load_device(cmd, &co, &d);
    plist_t msg;
    sim_schema_t *schema = NULL;
    if (rtype) {
        char err[SIM_ERRLEN];
        const char *dir = sim_schema_find_dir();
        schema = dir ? sim_schema_load(dir, err, sizeof err) : NULL;
        sim_command_t fake = {0};
        fake.root = plist_new_dict();
        fake.command = plist_new_dict();
        sim_set_str(fake.command, "RequestType", rtype);
        plist_dict_set_item(fake.root, "Command", fake.command);
        snprintf(fake.uuid, sizeof fake.uuid, "%s", uuid ? uuid : "");
        snprintf(fake.request_type, sizeof fake.request_type, "%s", rtype);
        sim_answer_opts_t ao = {
            .schema = schema,
            .user_channel = user_channel,
            .force_status =
                strcmp(status, "Acknowledged") == 0 || strcmp(status, "Idle") == 0 ? NULL : status};
        msg = sim_answer_build(&d, &fake, &ao);
        sim_command_clear(&fake);
    } else {
        msg = plist_new_dict();
        sim_add_identity(msg, &d, user_channel, false);
        sim_set_str(msg, "Status", status);
        if (uuid) sim_set_str(msg, "CommandUUID", uuid);
        if (strcmp(status, "Error") == 0) {
            plist_t chain = plist_new_array();
            plist_t e = plist_new_dict();
            sim_set_int(e, "ErrorCode", 12000);
            sim_set_str(e, "ErrorDomain", "MCMDMErrorDomain");
            sim_set_str(e, "LocalizedDescription", "The command could not be completed (simulated error).");
            plist_array_append_item(chain, e);
            plist_dict_set_item(msg, "ErrorChain", chain);
        }
    }
    int rc = exchange(cmd, &co, &x, &d, d.server_url, SIM_CT_CONNECT, msg, true);
    plist_free(msg);
    sim_schema_free(schema);
    sim_device_clear(&d);
    return rc;
}

/* ---- run ----------------------------------------------------------------- */

static void usage_run(FILE *f)
{
    fprintf(f,
            "Usage: %s run --dir DIR [options]\n"
            "Poll the command endpoint like a woken device: send Idle, answer every command\n"
            "the server hands out, until it answers with an empty body. One JSON line per\n"
            "exchange on stdout: {\"sent_status\", \"command_uuid\", \"request_type\" (the command\n"
            "answered; null for Idle), \"http\", \"http_version\", \"next_command_uuid\",\n"
            "\"next_request_type\" (what the server handed out; null when empty)}.\n\n"
            "  --notnow RT[,RT...]    answer commands of these types NotNow ('*' = all; repeatable)\n"
            "  --error RT[,RT...]     answer them Error\n"
            "  --format-error RT[,..] answer them CommandFormatError\n"
            "  --idle-after           after the empty answer, send Idle once more and answer\n"
            "                         everything (NotNow'd commands come back then)\n"
            "  --max N                answer at most N commands (default 1000)\n"
            "  --user-channel         poll the user channel\n"
            "  --all-keys             answers carry every top-level response key of the schema\n"
            "  --schema DIR           Apple's schema (default: found automatically)\n"
            "  --no-schema            plain answers only, no schema checks\n"
            "  --lenient              answer what the device would refuse for AccessRights,\n"
            "                         supervision or Shared iPad reasons\n"
            "  --mode mtls|signature|none, --cacert FILE, --http1 | --http2, --timeout MS,\n"
            "  --seed N, --verbose\n",
            prog);
}

static void add_list(const char *cmd, const char **list, size_t *n, size_t cap, char *arg)
{
    for (char *save = NULL, *t = strtok_r(arg, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n + 1 >= cap) die_usage(cmd, "too many request types");
        list[(*n)++] = t;
        list[*n] = NULL;
    }
}

static bool listed(const char *rt, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], "*") == 0 || strcmp(list[i], rt) == 0) return true;
    return false;
}

static int cmd_run(int argc, char **argv)
{
    const char *cmd = "run";
    common_t co = {0};
    const char *notnow[65] = {0}, *error[65] = {0}, *format_error[65] = {0};
    size_t nnot = 0, nerr = 0, nfmt = 0;
    long max = 1000;
    bool idle_after = false, user_channel = false, no_schema = false, lenient = false, all_keys = false;
    const char *schema_dir = NULL;
    static const struct option opts[] = {COMMON_OPTS,
                                         {"notnow", required_argument, NULL, O_NOTNOW},
                                         {"error", required_argument, NULL, O_ERROR},
                                         {"format-error", required_argument, NULL, O_FORMAT_ERROR},
                                         {"max", required_argument, NULL, O_MAX},
                                         {"idle-after", no_argument, NULL, O_IDLE_AFTER},
                                         {"user-channel", no_argument, NULL, O_USER_CHANNEL},
                                         {"all-keys", no_argument, NULL, O_ALL_KEYS},
                                         {"schema", required_argument, NULL, O_SCHEMA},
                                         {"no-schema", no_argument, NULL, O_NO_SCHEMA},
                                         {"lenient", no_argument, NULL, O_LENIENT},
                                         {0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (common_opt(cmd, c, &co)) continue;
        switch (c) {
        case O_NOTNOW: add_list(cmd, notnow, &nnot, 65, optarg); break;
        case O_ERROR: add_list(cmd, error, &nerr, 65, optarg); break;
        case O_FORMAT_ERROR: add_list(cmd, format_error, &nfmt, 65, optarg); break;
        case O_MAX: max = parse_long(cmd, "--max", optarg, 0, 100000000); break;
        case O_IDLE_AFTER: idle_after = true; break;
        case O_USER_CHANNEL: user_channel = true; break;
        case O_ALL_KEYS: all_keys = true; break;
        case O_SCHEMA: schema_dir = optarg; break;
        case O_NO_SCHEMA: no_schema = true; break;
        case O_LENIENT: lenient = true; break;
        case O_HELP: usage_run(stdout); return 0;
        default: usage_run(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) die_usage(cmd, "unexpected argument '%s'", argv[optind]);
    apply_seed(&co);
    char err[SIM_ERRLEN];
    sim_schema_t *schema = NULL;
    if (!no_schema) {
        const char *dir = schema_dir ? schema_dir : sim_schema_find_dir();
        if (!dir) {
            fprintf(stderr,
                    "%s run: warning: Apple's schema not found (set LMDM_SCHEMA or --schema); "
                    "answers without schema checks\n",
                    prog);
        } else if (!(schema = sim_schema_load(dir, err, sizeof err))) {
            fprintf(stderr, "%s run: %s\n", prog, err);
            return EXIT_LOCAL;
        }
    }
    sim_device_t d;
    load_device(cmd, &co, &d);
    sim_idmode_t mode = device_mode(cmd, &co, &d, d.server_url);
    sim_http_opts_t ho = http_opts(&co, &d, mode, &d);
    CURL *easy = NULL;
    sim_http_resp_t r = {0};
    sim_command_t pending = {0}; /* the command the next request answers */
    long answered = 0;
    int rounds = idle_after ? 2 : 1;
    int rc = 0;
    for (int round = 0; round < rounds && rc == 0; round++) {
        bool first = true;
        for (;;) {
            plist_t msg;
            const char *sent;
            if (first || !pending.root) {
                msg = sim_idle_build(&d, user_channel);
                sent = "Idle";
            } else {
                const char *force = NULL;
                if (round == 0 && listed(pending.request_type, notnow))
                    force = "NotNow";
                else if (listed(pending.request_type, error))
                    force = "Error";
                else if (listed(pending.request_type, format_error))
                    force = "CommandFormatError";
                sim_answer_opts_t ao = {.schema = schema,
                                        .user_channel = user_channel,
                                        .enforce_rights = !lenient,
                                        .force_status = force,
                                        .all_keys = all_keys};
                msg = sim_answer_build(&d, &pending, &ao);
                sent = NULL;
                answered++;
            }
            first = false;
            char *status = sim_plist_str(msg, "Status");
            size_t len = 0;
            char *body = sim_plist_xml(msg, &len);
            plist_free(msg);
            struct curl_slist *h =
                sim_mdm_headers(SIM_CT_CONNECT, mode, &d, body, len, NULL, err, sizeof err);
            if (!h) {
                fprintf(stderr, "%s run: %s\n", prog, err);
                free(body);
                free(status);
                rc = EXIT_LOCAL;
                break;
            }
            easy = sim_http_prepare(easy, &ho, "PUT", d.server_url, body, len, h, &r);
            CURLcode cc = curl_easy_perform(easy);
            sim_http_finish(easy, cc, &r);
            free(body);
            json_t *line =
                json_pack("{s:s, s:s?, s:s?, s:i, s:s}", "sent_status", sent ? sent : status, "command_uuid",
                          sent ? NULL : pending.uuid, "request_type", sent ? NULL : pending.request_type,
                          "http", (int)r.status, "http_version", sim_http_version_name(r.version));
            free(status);
            sim_command_clear(&pending);
            if (cc != CURLE_OK) {
                json_decref(line);
                fprintf(stderr, "%s run: PUT %s: %s\n", prog, d.server_url, r.error);
                rc = EXIT_LOCAL;
                break;
            }
            if (r.status != 200) {
                char *s = json_dumps(line, JSON_COMPACT);
                printf("%s\n", s);
                free(s);
                json_decref(line);
                fprintf(stderr, "%s run: the server answered %ld: %.*s\n", prog, r.status, (int)r.len,
                        r.body ? (char *)r.body : "");
                rc = EXIT_HTTP;
                break;
            }
            int got = sim_command_parse(r.body, r.len, &pending, err, sizeof err);
            json_object_set_new(line, "next_command_uuid",
                                got == 1 ? json_string(pending.uuid) : json_null());
            json_object_set_new(line, "next_request_type",
                                got == 1 ? json_string(pending.request_type) : json_null());
            char *s = json_dumps(line, JSON_COMPACT);
            printf("%s\n", s);
            fflush(stdout);
            free(s);
            json_decref(line);
            if (got < 0) {
                fprintf(stderr, "%s run: bad answer from the server: %s\n", prog, err);
                rc = EXIT_BADANSWER;
                break;
            }
            if (got == 0) break;
            if (answered >= max) {
                fprintf(stderr, "%s run: stopping after --max %ld commands; the server still had %s\n", prog,
                        max, pending.request_type);
                sim_command_clear(&pending);
                break;
            }
        }
    }
    /* Keep what the device installed for the next run. */
    if (sim_device_save(&d, co.dir, err, sizeof err) != 0) {
        fprintf(stderr, "%s run: %s\n", prog, err);
        if (rc == 0) rc = EXIT_LOCAL;
    }
    sim_command_clear(&pending);
    if (easy) curl_easy_cleanup(easy);
    sim_http_resp_clear(&r);
    sim_schema_free(schema);
    sim_device_clear(&d);
    return rc;
}

/* ---- fleet --------------------------------------------------------------- */

static void usage_fleet(FILE *f)
{
    fprintf(f,
            "Usage: %s fleet --url URL --count N --duration SECONDS [options]\n"
            "Enroll N devices (GET URL/enroll each), send Authenticate and TokenUpdate for each,\n"
            "then for DURATION seconds poll the command endpoint as fast as C requests in flight\n"
            "allow. Prints requests/s, p50/p99 latency (ms) and errors; exits 1 if any error.\n"
            "All requests go to URL's origin with the paths of the profile's ServerURL and\n"
            "CheckInURL (so an h2c run works while the profile names the TLS listener).\n\n"
            "  --mode idle|cycle      idle: Idle polls only; cycle: answer every command handed out\n"
            "  --concurrency C        requests in flight (default 64)\n"
            "  --connections K        HTTP/2 with Mdm-Signature: K shared connections (default 1)\n"
            "  --h2c                  HTTP/2 with prior knowledge on http:// (streams share connections)\n"
            "  --http1 | --http2      HTTP version (default HTTP/1.1 on http, HTTP/2 on https)\n"
            "                         Enrollment and check-ins always use HTTP/1.1; the version\n"
            "                         applies to the timed phase.\n"
            "  --mtls | --signature   identity (default: the profile's SignMessage; mTLS needs https,\n"
            "                         and gives every device its own connection)\n"
            "  --platform ios|macos   device kind (default ios)\n"
            "  --state FILE           reuse the devices enrolled into FILE (JSON) if it exists,\n"
            "                         else enroll and save them there\n"
            "  --cacert FILE, --profile-ca FILE  as for enroll\n"
            "  --json                 one JSON line instead of the text summary\n"
            "  --no-sig-cache         sign every Idle afresh (default: reuse each device's Idle\n"
            "                         body and signature, which are the same bytes every time)\n"
            "  --schema DIR           Apple's schema for cycle answers\n"
            "  --seed N, --timeout MS, --verbose\n",
            prog);
}

static int cmd_fleet(int argc, char **argv)
{
    const char *cmd = "fleet";
    common_t co = {0};
    sim_fleet_opts_t fo = {.concurrency = 64, .platform = "iOS"};
    static const struct option opts[] = {COMMON_OPTS,
                                         {"url", required_argument, NULL, O_URL},
                                         {"count", required_argument, NULL, O_COUNT},
                                         {"duration", required_argument, NULL, O_DURATION},
                                         {"concurrency", required_argument, NULL, O_CONCURRENCY},
                                         {"connections", required_argument, NULL, O_CONNECTIONS},
                                         {"h2c", no_argument, NULL, O_H2C},
                                         {"mtls", no_argument, NULL, O_MTLS},
                                         {"signature", no_argument, NULL, O_SIGNATURE},
                                         {"platform", required_argument, NULL, O_PLATFORM},
                                         {"state", required_argument, NULL, O_STATE},
                                         {"profile-ca", required_argument, NULL, O_PROFILE_CA},
                                         {"json", no_argument, NULL, O_JSON},
                                         {"no-sig-cache", no_argument, NULL, O_NO_SIG_CACHE},
                                         {"schema", required_argument, NULL, O_SCHEMA},
                                         {0}};
    /* --mode means idle|cycle here, not the identity: take it before the
     * common options see it. */
    int c;
    bool have_duration = false;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == O_MODE) {
            if (strcmp(optarg, "idle") == 0)
                fo.cycle = false;
            else if (strcmp(optarg, "cycle") == 0)
                fo.cycle = true;
            else
                die_usage(cmd, "--mode is idle or cycle, not '%s'", optarg);
            continue;
        }
        if (common_opt(cmd, c, &co)) continue;
        switch (c) {
        case O_URL: fo.url = optarg; break;
        case O_COUNT: fo.count = (int)parse_long(cmd, "--count", optarg, 1, 1000000); break;
        case O_DURATION: {
            char *end = NULL;
            fo.duration = strtod(optarg, &end);
            if (!end || *end || fo.duration <= 0 || fo.duration > 86400)
                die_usage(cmd, "--duration must be seconds in (0, 86400], not '%s'", optarg);
            have_duration = true;
            break;
        }
        case O_CONCURRENCY: fo.concurrency = (int)parse_long(cmd, "--concurrency", optarg, 1, 100000); break;
        case O_CONNECTIONS: fo.connections = (int)parse_long(cmd, "--connections", optarg, 1, 10000); break;
        case O_H2C: fo.h2c = true; break;
        case O_MTLS:
            fo.mode = SIM_ID_MTLS;
            fo.mode_set = true;
            break;
        case O_SIGNATURE:
            fo.mode = SIM_ID_SIGNATURE;
            fo.mode_set = true;
            break;
        case O_PLATFORM:
            if (strcasecmp(optarg, "ios") == 0)
                fo.platform = "iOS";
            else if (strcasecmp(optarg, "macos") == 0)
                fo.platform = "macOS";
            else
                die_usage(cmd, "--platform is ios or macos, not '%s'", optarg);
            break;
        case O_STATE: fo.state_file = optarg; break;
        case O_PROFILE_CA: fo.profile_ca = optarg; break;
        case O_JSON: fo.json = true; break;
        case O_NO_SIG_CACHE: fo.no_sig_cache = true; break;
        case O_SCHEMA: fo.schema_dir = optarg; break;
        case O_HELP: usage_fleet(stdout); return 0;
        default: usage_fleet(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) die_usage(cmd, "unexpected argument '%s'", argv[optind]);
    if (!fo.url || !fo.count || !have_duration) die_usage(cmd, "--url, --count and --duration are required");
    if (fo.h2c && strncmp(fo.url, "http://", 7) != 0)
        die_usage(cmd, "--h2c needs an http:// URL, not %s", fo.url);
    if (fo.mode_set && fo.mode == SIM_ID_MTLS && strncmp(fo.url, "https://", 8) != 0)
        die_usage(cmd, "--mtls needs an https:// URL, not %s", fo.url);
    fo.cacert = co.cacert;
    fo.version = fo.h2c ? SIM_HTTP_2 : co.version;
    apply_seed(&co);
    return sim_fleet_run(&fo);
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: %s COMMAND [options]   (COMMAND --help for details)\n"
            "A simulated Apple device speaking the MDM protocol.\n\n"
            "  enroll   download the enrollment profile and become an enrolled device\n"
            "  checkin  send one check-in message (Authenticate, TokenUpdate, CheckOut, ...)\n"
            "  connect  send one command-endpoint request (Idle, or a status about a command)\n"
            "  run      poll and answer commands until the server has nothing left\n"
            "  fleet    many devices at once, for benchmarks\n\n"
            "Exit status: 0 ok, 1 local error, 2 usage, 3 HTTP error from the server,\n"
            "4 malformed answer from the server.\n",
            prog);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        usage(stdout);
        return 0;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* getopt_long sees the subcommand's arguments only. */
    argc--;
    argv++;
    optind = 1;
    int rc;
    if (strcmp(sub, "enroll") == 0)
        rc = cmd_enroll(argc, argv);
    else if (strcmp(sub, "checkin") == 0)
        rc = cmd_checkin(argc, argv);
    else if (strcmp(sub, "connect") == 0)
        rc = cmd_connect(argc, argv);
    else if (strcmp(sub, "run") == 0)
        rc = cmd_run(argc, argv);
    else if (strcmp(sub, "fleet") == 0)
        rc = cmd_fleet(argc, argv);
    else {
        fprintf(stderr, "%s: unknown command '%s'\n", prog, sub);
        usage(stderr);
        rc = EXIT_USAGE;
    }
    curl_global_cleanup();
    return rc;
}
