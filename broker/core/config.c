/* The configuration table and its parser.
 *
 * Every key is one row of `keys[]`: name, type, where it lives in lmdm_config_t,
 * default, bounds, whether SIGHUP may change it, and a line of help. Defaults,
 * parsing, range checks and `lmdm config --describe` all walk that table; the
 * only per-key code is the validation of enumerations and listener addresses,
 * which the rows point at.
 *
 * Ownership: every string in lmdm_config_t is heap-allocated and owned by the
 * struct. lmdm_config_load() and lmdm_config_parse() release whatever `cfg`
 * held before, so `cfg` must be zero-initialised or hold a config filled by one
 * of these functions. They parse into a private copy and only replace `cfg`
 * when the whole input is valid, so a bad file never half-applies.
 *
 * Thread rules: none of this is meant to run concurrently on the same struct;
 * the table itself is read-only. */
#include "lmdm/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/tzfile.h"

#ifndef LMDM_DEFAULT_MIGRATIONS_DIR
#define LMDM_DEFAULT_MIGRATIONS_DIR "migrations"
#endif

/* Hard limits on the file itself: a config file is small and hand-written, so
 * anything bigger is a mistake (or a wrong path) rather than a config. */
#define CFG_MAX_FILE (1024 * 1024)
#define CFG_MAX_LINE 4096

#define KIB 1024LL
#define MIB (1024LL * 1024)
#define GIB (1024LL * 1024 * 1024)
#define MS_S 1000LL
#define MS_M (60 * MS_S)
#define MS_H (60 * MS_M)

typedef enum {
    T_STRING, /* char *, heap-allocated */
    T_INT,    /* int, plain number */
    T_SIZE,   /* size_t, bytes; k/M/G suffixes */
    T_MSEC,   /* int, milliseconds; ms/s/m/h/d suffixes, bare number = seconds */
    T_SEC,    /* int, whole seconds; same syntax as T_MSEC */
} cfg_type_t;

/* Extra validation of a string value; writes the reason into `why` on failure. */
typedef bool (*cfg_check_fn)(const char *v, char *why, size_t whylen);

typedef struct {
    const char *name;
    cfg_type_t type;
    size_t offset;              /* into lmdm_config_t */
    const char *def_str;        /* T_STRING default */
    long long def, min, max;    /* numbers, in the stored unit (bytes, ms, s); for
                                   T_STRING `min` is the minimum length */
    const char *const *choices; /* T_STRING enumeration, NULL-terminated */
    cfg_check_fn check;         /* T_STRING extra validation */
    const char *check_desc;     /* what `check` accepts, for describe */
    bool reload;                /* may change on SIGHUP */
    const char *help;
} cfg_key_t;

static bool check_listen(const char *v, char *why, size_t whylen);
static bool check_timezone(const char *v, char *why, size_t whylen);
static bool check_hhmm(const char *v, char *why, size_t whylen);

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const client_auth_modes[] = {"off", "optional", NULL};
static const char *const identity_modes[] = {"pkcs12", "scep", NULL};
static const char *const apns_auth_modes[] = {"off", "token", "certificate", NULL};

/* The field's declared C type must match the row's type: _Generic refuses to
 * compile a row whose field has a different type, so a table typo cannot
 * write an int over a pointer. */
#define FIELD(f, ctype) _Generic(((lmdm_config_t *)0)->f, ctype: offsetof(lmdm_config_t, f))
#define STRING(f) .type = T_STRING, .offset = FIELD(f, char *)
#define INT(f) .type = T_INT, .offset = FIELD(f, int)
#define SIZE(f) .type = T_SIZE, .offset = FIELD(f, size_t)
#define MSEC(f) .type = T_MSEC, .offset = FIELD(f, int)
#define SECS(f) .type = T_SEC, .offset = FIELD(f, int)
#define LISTEN_DESC "host:port | [v6]:port | \"\""

static const cfg_key_t keys[] = {
    /* listeners */
    {.name = "listen_tls", STRING(listen_tls), .def_str = "0.0.0.0:8443",
     .check = check_listen, .check_desc = LISTEN_DESC,
     .help = "TLS listener (h2 and http/1.1 via ALPN); \"\" disables"},
    {.name = "listen_plain", STRING(listen_plain), .def_str = "127.0.0.1:8080",
     .check = check_listen, .check_desc = LISTEN_DESC,
     .help = "plaintext listener (h2c prior knowledge and http/1.1); \"\" disables"},
    {.name = "workers", INT(workers), .def = 0, .min = 0, .max = 256,
     .help = "worker threads, each with its own event loop; 0 = number of cores"},
    {.name = "tls_cert", STRING(tls_cert), .def_str = "", .reload = true,
     .help = "PEM certificate chain for listen_tls (required when listen_tls is set)"},
    {.name = "tls_key", STRING(tls_key), .def_str = "", .reload = true,
     .help = "PEM private key for listen_tls (required when listen_tls is set)"},
    /* limits */
    {.name = "max_header_size", SIZE(max_header_size), .def = 16 * KIB, .min = KIB, .max = MIB,
     .help = "total request header bytes; larger requests get 431"},
    {.name = "max_body_size", SIZE(max_body_size), .def = MIB, .min = KIB, .max = 64 * MIB,
     .help = "default request body limit; larger bodies get 413 (routes may set their own)"},
    {.name = "max_streams", INT(max_streams), .def = 100, .min = 1, .max = 1000,
     .help = "concurrent HTTP/2 streams per connection"},
    {.name = "max_connections", INT(max_connections), .def = 10000, .min = 1, .max = 1000000,
     .help = "open connections per worker; more are refused"},
    {.name = "idle_timeout", MSEC(idle_timeout_ms), .def = 60 * MS_S, .min = 100, .max = MS_H,
     .help = "close a keep-alive connection with nothing in flight after this long"},
    {.name = "read_timeout", MSEC(read_timeout_ms), .def = 30 * MS_S, .min = 100, .max = 10 * MS_M,
     .help = "a request not fully received in this time gets 408 / close"},
    {.name = "shutdown_timeout", MSEC(shutdown_timeout_ms), .def = 30 * MS_S, .min = 0,
     .max = 10 * MS_M, .help = "on SIGTERM, how long in-flight requests may take to finish"},
    /* database */
    {.name = "database_url", STRING(database_url), .def_str = "host=/var/run/postgresql dbname=lmdm",
     .help = "libpq connection string or URI (env LMDM_DATABASE_URL overrides)"},
    {.name = "db_pool_size", INT(db_pool_size), .def = 4, .min = 1, .max = 64,
     .help = "PostgreSQL connections per worker"},
    {.name = "db_queue_max", INT(db_queue_max), .def = 1024, .min = 1, .max = 1000000,
     .help = "queued queries per worker before requests get 503"},
    {.name = "db_retry_after", SECS(db_retry_after_s), .def = 5, .min = 1, .max = 3600,
     .help = "Retry-After on 503 while the database is away (whole seconds)"},
    {.name = "migrations_dir", STRING(migrations_dir), .def_str = LMDM_DEFAULT_MIGRATIONS_DIR,
     .min = 1, .help = "directory holding the NNNN_name.sql migrations"},
    /* logging */
    {.name = "log_level", STRING(log_level), .def_str = "info", .choices = log_levels,
     .reload = true, .help = "lowest level written to the log"},
    {.name = "log_format", STRING(log_format), .def_str = "text", .choices = log_formats,
     .help = "plain text lines or JSON lines"},
    /* devices: identity and enrollment */
    {.name = "public_url", STRING(public_url), .def_str = "https://localhost:8443", .min = 1,
     .help = "base URL devices reach the broker at (ServerURL and CheckInURL of the profile)"},
    {.name = "ca_cert", STRING(ca_cert), .def_str = "",
     .help = "broker CA certificate (PEM), created by `lmdm ca init`; issues device identities"},
    {.name = "ca_key", STRING(ca_key), .def_str = "",
     .help = "broker CA private key (PEM); must be readable only by the broker's user"},
    {.name = "device_trusted_cas", STRING(device_trusted_cas), .def_str = "",
     .help = "extra PEM bundle of CAs trusted for device identities (e.g. a SCEP server's CA)"},
    {.name = "tls_client_auth", STRING(tls_client_auth), .def_str = "optional",
     .choices = client_auth_modes,
     .help = "ask TLS clients for a device identity certificate (verified against the trusted CAs)"},
    {.name = "trusted_proxies", STRING(trusted_proxies), .def_str = "",
     .help = "comma-separated proxy IP addresses allowed to forward a Client-Cert header (RFC 9440)"},
    {.name = "enroll_identity", STRING(enroll_identity), .def_str = "pkcs12", .choices = identity_modes,
     .help = "device identity in the enrollment profile: a PKCS#12 issued by the broker CA, or SCEP"},
    {.name = "scep_url", STRING(scep_url), .def_str = "", .help = "SCEP server URL (enroll_identity = scep)"},
    {.name = "scep_challenge", STRING(scep_challenge), .def_str = "",
     .help = "SCEP challenge password (enroll_identity = scep)"},
    {.name = "scep_key_size", INT(scep_key_size), .def = 2048, .min = 1024, .max = 4096,
     .help = "RSA key size the device generates for SCEP"},
    {.name = "enroll_org", STRING(enroll_org), .def_str = "lmdm",
     .help = "organization name shown on the device for the enrollment profile"},
    {.name = "mdm_max_body", SIZE(mdm_max_body), .def = 8 * MIB, .min = KIB, .max = 64 * MIB,
     .help = "body limit of /mdm/checkin and /mdm/connect (device answers can be large)"},
    /* APNs */
    {.name = "apns_url", STRING(apns_url), .def_str = "https://api.push.apple.com", .min = 1,
     .help = "APNs endpoint (https://api.sandbox.push.apple.com for development)"},
    {.name = "apns_topic", STRING(apns_topic), .def_str = "",
     .help = "MDM push topic: the UID of the MDM push certificate (com.apple.mgmt.External.…)"},
    {.name = "apns_auth", STRING(apns_auth), .def_str = "off", .choices = apns_auth_modes,
     .help = "APNs authentication: certificate (the MDM push certificate: the only kind Apple accepts for MDM pushes), token (tests/stand-ins), off (no pushes)"},
    {.name = "apns_key_file", STRING(apns_key_file), .def_str = "",
     .help = "token auth: PEM (PKCS#8) EC P-256 signing key from Apple (.p8)"},
    {.name = "apns_key_id", STRING(apns_key_id), .def_str = "", .help = "token auth: key id (JWT kid)"},
    {.name = "apns_team_id", STRING(apns_team_id), .def_str = "", .help = "token auth: team id (JWT iss)"},
    {.name = "apns_cert", STRING(apns_cert), .def_str = "",
     .help = "certificate auth: PEM MDM push certificate"},
    {.name = "apns_cert_key", STRING(apns_cert_key), .def_str = "",
     .help = "certificate auth: PEM private key of apns_cert"},
    {.name = "apns_ca_file", STRING(apns_ca_file), .def_str = "",
     .help = "CA bundle that verifies the APNs server; \"\" = the system's"},
    /* tenants */
    {.name = "secret_key", STRING(secret_key), .def_str = "",
     .help = "32-byte master secret made by `lmdm secret init` (mode 0600): API key and owner token "
             "hashes, pseudonymous enrollment ids, the Ed25519 webhook signing key; the tenant API "
             "answers 503 without it"},
    {.name = "tenant_rate", INT(tenant_rate), .def = 50, .min = 1, .max = 1000000,
     .help = "tenant API requests per second per tenant (token bucket); more get 429"},
    {.name = "tenant_burst", INT(tenant_burst), .def = 200, .min = 1, .max = 1000000,
     .help = "tenant API burst: requests a tenant may send at once before the rate applies"},
    {.name = "invitation_ttl", SECS(invitation_ttl_s), .def = 7 * 24 * 3600, .min = 60, .max = 90 * 24 * 3600,
     .help = "how long an invitation stays valid unless the tenant asks for less"},
    {.name = "webhook_timeout", MSEC(webhook_timeout_ms), .def = 10 * MS_S, .min = 100, .max = 2 * MS_M,
     .help = "one webhook delivery attempt (connect + answer)"},
    {.name = "compliance_interval", SECS(compliance_interval_s), .def = 24 * 3600, .min = 1, .max = 30 * 24 * 3600,
     .help = "how often a device under the broker's device-wide rules is asked again whether it complies"},
    {.name = "webhook_backoff_max", SECS(webhook_backoff_max_s), .def = 600, .min = 1, .max = 24 * 3600,
     .help = "longest wait between two delivery attempts (backoff starts at 1 s and doubles)"},
    /* audit ledger */
    {.name = "ledger_checkpoint_entries", INT(ledger_checkpoint_entries), .def = 1000, .min = 1, .max = 100000000,
     .help = "sign the audit ledger's chain head (a checkpoint) after at most this many new entries"},
    {.name = "ledger_checkpoint_interval", SECS(ledger_checkpoint_interval_s), .def = 60, .min = 1, .max = 24 * 3600,
     .help = "sign the audit ledger's chain head at most this long after a new entry was sealed"},
    /* OS updates */
    {.name = "osupdate_timezone", STRING(osupdate_timezone), .def_str = "UTC", .check = check_timezone,
     .check_desc = "a tz database zone name",
     .help = "time zone of a device whose owner chose none: install times and deadlines are its local times"},
    {.name = "osupdate_install_time", STRING(osupdate_install_time), .def_str = "02:00", .check = check_hhmm,
     .check_desc = "HH:MM",
     .help = "local time of day at which OS updates install and deadlines fall (the owner may pick another)"},
    {.name = "release_feed_url", STRING(release_feed_url), .def_str = "",
     .help = "OS release feed to poll (the broker's JSON or SOFA, e.g. https://sofafeed.macadmins.io/v2/ios_data_feed.json); \"\" = `lmdm releases import` only"},
    {.name = "release_feed_interval", SECS(release_feed_interval_s), .def = 6 * 3600, .min = 60, .max = 7 * 24 * 3600,
     .help = "how often release_feed_url is fetched"},
    {.name = "osupdate_clock_file", STRING(osupdate_clock_file), .def_str = "",
     .help = "testing only: a file holding the OS-update planner's current time (YYYY-MM-DDThh:mm:ssZ), read on every turn; \"\" = the system clock"},
};

#define NKEYS LMDM_ARRAY_LEN(keys)

/* ---- field access ---- */

static char **str_field(lmdm_config_t *cfg, const cfg_key_t *k)
{
    return (char **)(void *)((char *)cfg + k->offset);
}

static void set_number(lmdm_config_t *cfg, const cfg_key_t *k, long long v)
{
    char *p = (char *)cfg + k->offset;
    /* Bounds are checked before this, and every max fits an int. */
    if (k->type == T_SIZE)
        *(size_t *)(void *)p = (size_t)v;
    else
        *(int *)(void *)p = (int)v;
}

/* ---- small text helpers ---- */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_space(char c) { return c == ' ' || c == '\t'; }
static bool is_key_char(char c) { return is_alpha(c) || is_digit(c) || c == '_' || c == '-' || c == '.'; }

static void set_errbuf(char *errbuf, size_t errlen, const char *fmt, ...) LMDM_PRINTF(3, 4);
static void set_errbuf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!errbuf || errlen == 0) return;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

/* A short copy of user text for error messages: a hostile 4 KiB value should
 * not drown the message. Cuts on a UTF-8 boundary. */
typedef struct {
    char s[64];
} excerpt_t;

static excerpt_t excerpt(const char *v)
{
    excerpt_t e;
    size_t n = strlen(v);
    const size_t keep = 40;
    if (n <= keep) {
        memcpy(e.s, v, n + 1);
        return e;
    }
    n = keep;
    while (n > 0 && ((unsigned char)v[n] & 0xC0) == 0x80) n--;
    memcpy(e.s, v, n);
    memcpy(e.s + n, "...", 4);
    return e;
}

/* Sizes and durations are shown the way a person would write them: the
 * largest unit that divides the value exactly. */
static void fmt_size(long long v, char *out, size_t n)
{
    if (v != 0 && v % GIB == 0)
        snprintf(out, n, "%lldG", v / GIB);
    else if (v != 0 && v % MIB == 0)
        snprintf(out, n, "%lldM", v / MIB);
    else if (v != 0 && v % KIB == 0)
        snprintf(out, n, "%lldk", v / KIB);
    else
        snprintf(out, n, "%lld", v);
}

static void fmt_msec(long long v, char *out, size_t n)
{
    if (v == 0)
        snprintf(out, n, "0");
    else if (v % MS_H == 0)
        snprintf(out, n, "%lldh", v / MS_H);
    else if (v % MS_M == 0)
        snprintf(out, n, "%lldm", v / MS_M);
    else if (v % MS_S == 0)
        snprintf(out, n, "%llds", v / MS_S);
    else
        snprintf(out, n, "%lldms", v);
}

static void fmt_value(cfg_type_t t, long long v, char *out, size_t n)
{
    switch (t) {
    case T_SIZE: fmt_size(v, out, n); break;
    case T_MSEC: fmt_msec(v, out, n); break;
    case T_SEC: fmt_msec(v * MS_S, out, n); break;
    case T_INT:
    case T_STRING: snprintf(out, n, "%lld", v); break;
    }
}

static const char *type_name(cfg_type_t t)
{
    switch (t) {
    case T_STRING: return "string";
    case T_INT: return "int";
    case T_SIZE: return "size";
    case T_MSEC:
    case T_SEC: return "duration";
    }
    return "?";
}

static const char *type_expect(cfg_type_t t)
{
    switch (t) {
    case T_INT: return "an integer";
    case T_SIZE: return "a size such as 512, 16k, 1M or 1G";
    case T_MSEC:
    case T_SEC: return "a duration such as 500ms, 30s, 5m or 1h";
    case T_STRING: break;
    }
    return "a value";
}

/* ---- validators for string keys ---- */

static bool check_timezone(const char *v, char *why, size_t whylen)
{
    char posix[128];
    if (lmdm_tzfile_rule(v, posix, sizeof posix, why, whylen) == 0) return true;
    return false;
}

static bool check_hhmm(const char *v, char *why, size_t whylen)
{
    if (strlen(v) == 5 && v[2] == ':' && isdigit((unsigned char)v[0]) && isdigit((unsigned char)v[1]) &&
        isdigit((unsigned char)v[3]) && isdigit((unsigned char)v[4])) {
        int h = (v[0] - '0') * 10 + (v[1] - '0'), m = (v[3] - '0') * 10 + (v[4] - '0');
        if (h < 24 && m < 60) return true;
    }
    snprintf(why, whylen, "'%s' is not a time of day (HH:MM, 00:00 to 23:59)", v);
    return false;
}

static bool check_port(const char *p, char *why, size_t whylen)
{
    size_t n = strlen(p);
    long port = 0;
    if (n == 0) {
        snprintf(why, whylen, "missing port after \":\"");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(p[i])) {
            snprintf(why, whylen, "port \"%s\" is not a number", excerpt(p).s);
            return false;
        }
        if (i < 6) port = port * 10 + (p[i] - '0');
    }
    if (n > 5 || port < 1 || port > 65535) {
        snprintf(why, whylen, "port %s out of range 1..65535", excerpt(p).s);
        return false;
    }
    return true;
}

/* "host:port", "[v6]:port" or "" (listener disabled). Host names are not
 * resolved here: that happens when the listener binds. */
static bool check_listen(const char *v, char *why, size_t whylen)
{
    if (*v == '\0') return true;
    if (*v == '[') {
        const char *rb = strchr(v, ']');
        char addr[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        if (!rb) {
            snprintf(why, whylen, "missing \"]\" after the IPv6 address");
            return false;
        }
        size_t alen = (size_t)(rb - v - 1);
        if (alen == 0 || alen >= sizeof addr) {
            snprintf(why, whylen, "invalid IPv6 address");
            return false;
        }
        memcpy(addr, v + 1, alen);
        addr[alen] = '\0';
        if (inet_pton(AF_INET6, addr, &a6) != 1) {
            snprintf(why, whylen, "invalid IPv6 address \"%s\"", excerpt(addr).s);
            return false;
        }
        if (rb[1] != ':') {
            snprintf(why, whylen, "expected \":port\" after \"]\"");
            return false;
        }
        return check_port(rb + 2, why, whylen);
    }
    const char *colon = strrchr(v, ':');
    if (!colon) {
        snprintf(why, whylen, "missing \":port\"");
        return false;
    }
    size_t hlen = (size_t)(colon - v);
    if (memchr(v, ':', hlen)) {
        snprintf(why, whylen, "IPv6 addresses go in brackets, e.g. \"[::1]:8443\"");
        return false;
    }
    if (hlen == 0) {
        snprintf(why, whylen, "missing host (0.0.0.0 listens on every IPv4 address)");
        return false;
    }
    if (hlen > 253) {
        snprintf(why, whylen, "host name longer than 253 bytes");
        return false;
    }
    for (size_t i = 0; i < hlen; i++) {
        if (!is_alpha(v[i]) && !is_digit(v[i]) && v[i] != '-' && v[i] != '.') {
            snprintf(why, whylen, "invalid character in host name");
            return false;
        }
    }
    return check_port(colon + 1, why, whylen);
}

/* ---- defaults and cleanup ---- */

void lmdm_config_defaults(lmdm_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++) {
        const cfg_key_t *k = &keys[i];
        if (k->type == T_STRING)
            *str_field(cfg, k) = lmdm_xstrdup(k->def_str);
        else
            set_number(cfg, k, k->def);
    }
}

void lmdm_config_clear(lmdm_config_t *cfg)
{
    if (!cfg) return;
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == T_STRING) free(*str_field(cfg, &keys[i]));
    }
    /* Zeroed, the struct can be cleared again or passed to load/parse. */
    memset(cfg, 0, sizeof *cfg);
}

/* ---- the parser ---- */

typedef struct {
    const char *name;
    int line;
    char *errbuf;
    size_t errlen;
} parse_ctx_t;

/* Every parse error goes through here so they all read "file:line: key "k": ...". */
static int perr(const parse_ctx_t *c, const cfg_key_t *k, const char *fmt, ...) LMDM_PRINTF(3, 4);
static int perr(const parse_ctx_t *c, const cfg_key_t *k, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (k)
        set_errbuf(c->errbuf, c->errlen, "%s:%d: key \"%s\": %s", c->name, c->line, k->name, msg);
    else
        set_errbuf(c->errbuf, c->errlen, "%s:%d: %s", c->name, c->line, msg);
    return LMDM_ERR_CONFIG;
}

static int range_error(const parse_ctx_t *c, const cfg_key_t *k, const char *raw)
{
    char lo[32], hi[32];
    fmt_value(k->type, k->min, lo, sizeof lo);
    fmt_value(k->type, k->max, hi, sizeof hi);
    return perr(c, k, "value %s out of range %s..%s", excerpt(raw).s, lo, hi);
}

typedef struct {
    const char *suffix;
    long long factor;
} unit_t;

static const unit_t size_units[] = {{"k", KIB}, {"K", KIB}, {"M", MIB}, {"G", GIB}};
static const unit_t time_units[] = {{"ms", 1}, {"s", MS_S}, {"m", MS_M}, {"h", MS_H}, {"d", 24 * MS_H}};

/* Parses an integer with an optional unit into the key's stored unit and
 * checks its bounds. Overflow is reported as out of range, never wrapped. */
static int parse_number(const parse_ctx_t *c, const cfg_key_t *k, const char *v, long long *out)
{
    const char *p = v;
    bool neg = false, overflow = false;
    unsigned long long mag = 0;
    long long factor = 1;

    if (*p == '\0') return perr(c, k, "empty value (expected %s)", type_expect(k->type));
    if (*p == '-') {
        neg = true;
        p++;
    }
    if (!is_digit(*p)) return perr(c, k, "expected %s, got \"%s\"", type_expect(k->type), excerpt(v).s);
    for (; is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (mag > (ULLONG_MAX - d) / 10)
            overflow = true;
        else
            mag = mag * 10 + d;
    }
    if (*p == '.')
        return perr(c, k, "\"%s\": fractions are not supported%s", excerpt(v).s,
                    k->type == T_MSEC || k->type == T_SEC ? " (use a smaller unit, e.g. 1500ms)" : "");

    if (k->type != T_INT) {
        const unit_t *units = k->type == T_SIZE ? size_units : time_units;
        size_t nunits = k->type == T_SIZE ? LMDM_ARRAY_LEN(size_units) : LMDM_ARRAY_LEN(time_units);
        const char *u = p;
        while (is_alpha(*p)) p++;
        size_t ulen = (size_t)(p - u);
        /* A bare number is bytes for sizes and seconds for durations. */
        factor = k->type == T_SIZE ? 1 : MS_S;
        if (ulen) {
            size_t i;
            for (i = 0; i < nunits; i++) {
                if (strlen(units[i].suffix) == ulen && memcmp(units[i].suffix, u, ulen) == 0) break;
            }
            if (i == nunits)
                return perr(c, k, "unknown unit \"%.*s\" in \"%s\" (use %s)", (int)(ulen > 16 ? 16 : ulen), u,
                            excerpt(v).s, k->type == T_SIZE ? "k, M or G" : "ms, s, m, h or d");
            factor = units[i].factor;
        }
    }
    if (*p != '\0') {
        const char *g = p;
        while (is_space(*g)) g++;
        return perr(c, k, "trailing garbage \"%s\" after %s", excerpt(*g ? g : p).s,
                    k->type == T_INT ? "the number" : "the value");
    }
    if (overflow || mag > (unsigned long long)(LLONG_MAX / factor)) return range_error(c, k, v);

    long long val = (long long)mag * factor;
    if (neg) val = -val;
    if (k->type == T_SEC) {
        if (val % MS_S != 0) return perr(c, k, "%s is not a whole number of seconds", excerpt(v).s);
        val /= MS_S;
    }
    if (val < k->min || val > k->max) return range_error(c, k, v);
    *out = val;
    return 0;
}

static int apply_value(const parse_ctx_t *c, lmdm_config_t *tmp, const cfg_key_t *k, const char *v)
{
    if (k->type != T_STRING) {
        long long n = 0;
        int rc = parse_number(c, k, v, &n);
        if (rc < 0) return rc;
        set_number(tmp, k, n);
        return 0;
    }
    if ((long long)strlen(v) < k->min) return perr(c, k, "must not be empty");
    if (k->choices) {
        size_t i;
        char list[128] = "";
        for (i = 0; k->choices[i]; i++) {
            if (strcmp(k->choices[i], v) == 0) break;
        }
        if (!k->choices[i]) {
            for (size_t j = 0; k->choices[j]; j++) {
                if (j) strncat(list, "|", sizeof list - strlen(list) - 1);
                strncat(list, k->choices[j], sizeof list - strlen(list) - 1);
            }
            return perr(c, k, "invalid value \"%s\" (expected %s)", excerpt(v).s, list);
        }
    }
    if (k->check) {
        char why[160];
        if (!k->check(v, why, sizeof why)) {
            if (k->check == check_listen)
                return perr(c, k,
                            "invalid address \"%s\": %s (expected \"host:port\", \"[v6]:port\" or \"\" to disable)",
                            excerpt(v).s, why);
            return perr(c, k, "invalid value \"%s\": %s", excerpt(v).s, why);
        }
    }
    char **slot = str_field(tmp, k);
    free(*slot);
    *slot = lmdm_xstrdup(v);
    return 0;
}

/* Rejects bytes no hand-written config contains: NUL, control characters
 * other than tab, and anything that is not well-formed UTF-8 (overlong forms,
 * surrogates and code points past U+10FFFF included). */
static int check_line_bytes(const parse_ctx_t *c, const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char b = s[i];
        if (b < 0x80) {
            if (b == 0) return perr(c, NULL, "NUL byte in file");
            if ((b < 0x20 && b != '\t') || b == 0x7F) return perr(c, NULL, "control character 0x%02x in file", b);
            i++;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (b >= 0xC2 && b <= 0xDF)
            need = 1;
        else if (b >= 0xE0 && b <= 0xEF) {
            need = 2;
            if (b == 0xE0) lo = 0xA0;
            if (b == 0xED) hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            need = 3;
            if (b == 0xF0) lo = 0x90;
            if (b == 0xF4) hi = 0x8F;
        } else
            return perr(c, NULL, "invalid UTF-8 in file");
        if (n - i - 1 < need) return perr(c, NULL, "invalid UTF-8 in file");
        if (s[i + 1] < lo || s[i + 1] > hi) return perr(c, NULL, "invalid UTF-8 in file");
        for (size_t j = 2; j <= need; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return perr(c, NULL, "invalid UTF-8 in file");
        }
        i += need + 1;
    }
    return 0;
}

/* One line, already checked for length and bytes and NUL-terminated. */
static int parse_line(const parse_ctx_t *c, lmdm_config_t *tmp, int *seen_line, char *line)
{
    char *p = line;
    while (is_space(*p)) p++;
    if (*p == '\0' || *p == '#') return 0;

    char *key = p;
    while (is_key_char(*p)) p++;
    char *key_end = p;
    while (is_space(*p)) p++;
    if (key_end == key || *p != '=') return perr(c, NULL, "expected \"key = value\"");
    *key_end = '\0';
    p++;

    const cfg_key_t *k = NULL;
    size_t ki;
    for (ki = 0; ki < NKEYS; ki++) {
        if (strcmp(keys[ki].name, key) == 0) {
            k = &keys[ki];
            break;
        }
    }
    if (!k) return perr(c, NULL, "unknown key \"%s\"", excerpt(key).s);
    if (seen_line[ki]) return perr(c, NULL, "key \"%s\" given twice (first on line %d)", k->name, seen_line[ki]);
    seen_line[ki] = c->line;

    while (is_space(*p)) p++;
    char *value = p;
    if (*p == '"') {
        /* Unescape in place: the output never outgrows the input. */
        char *out = value;
        p++;
        for (;;) {
            if (*p == '\0') return perr(c, k, "unterminated quoted string");
            if (*p == '"') break;
            if (*p == '\\') {
                if (p[1] != '"' && p[1] != '\\') {
                    if (p[1] == '\0') return perr(c, k, "unterminated quoted string");
                    if ((unsigned char)p[1] >= 0x80)
                        return perr(c, k, "unknown escape in quoted string (only \\\" and \\\\ are allowed)");
                    return perr(c, k, "unknown escape \"\\%c\" in quoted string (only \\\" and \\\\ are allowed)",
                                p[1]);
                }
                p++;
            }
            *out++ = *p++;
        }
        p++;
        while (is_space(*p)) p++;
        if (*p != '\0' && *p != '#')
            return perr(c, k, "trailing garbage \"%s\" after the quoted value", excerpt(p).s);
        *out = '\0';
    } else {
        char *end = strchr(p, '#');
        if (!end) end = p + strlen(p);
        while (end > p && is_space(end[-1])) end--;
        *end = '\0';
        if (strchr(value, '"'))
            return perr(c, k, "stray quote in unquoted value \"%s\" (quote the whole value)", excerpt(value).s);
    }
    return apply_value(c, tmp, k, value);
}

int lmdm_config_parse(lmdm_config_t *cfg, const char *name, const char *text, size_t len, char *errbuf,
                      size_t errlen)
{
    parse_ctx_t c = {.name = name ? name : "<config>", .line = 0, .errbuf = errbuf, .errlen = errlen};
    int seen_line[NKEYS] = {0};
    char line[CFG_MAX_LINE + 1];
    lmdm_config_t tmp;
    size_t pos = 0;
    int rc = 0;

    set_errbuf(errbuf, errlen, "%s", "");
    lmdm_config_defaults(&tmp);
    if (!cfg || (!text && len)) {
        set_errbuf(errbuf, errlen, "%s: no configuration to parse", c.name);
        rc = LMDM_ERR_INVALID;
        goto out;
    }
    if (len > CFG_MAX_FILE) {
        set_errbuf(errbuf, errlen, "%s: file is larger than 1 MiB", c.name);
        rc = LMDM_ERR_CONFIG;
        goto out;
    }
    /* Editors on Windows like to start files with a byte order mark. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) pos = 3;

    while (pos < len) {
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - start) : len - pos;
        pos += n + (nl ? 1 : 0);
        c.line++;
        /* CRLF line endings: the CR belongs to the line break, not the value. */
        if (n > 0 && start[n - 1] == '\r') n--;
        if (n > CFG_MAX_LINE) {
            rc = perr(&c, NULL, "line is longer than %d bytes", CFG_MAX_LINE);
            goto out;
        }
        rc = check_line_bytes(&c, (const unsigned char *)start, n);
        if (rc < 0) goto out;
        memcpy(line, start, n);
        line[n] = '\0';
        rc = parse_line(&c, &tmp, seen_line, line);
        if (rc < 0) goto out;
    }

out:
    if (!cfg) {
        lmdm_config_clear(&tmp);
        return rc;
    }
    lmdm_config_clear(cfg);
    if (rc < 0) {
        /* Nothing of a bad file is kept: the caller gets pure defaults. */
        lmdm_config_clear(&tmp);
        lmdm_config_defaults(cfg);
    } else {
        *cfg = tmp;
    }
    return rc;
}

int lmdm_config_load(lmdm_config_t *cfg, const char *path, char *errbuf, size_t errlen)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t n = 0;
    int rc;

    if (!cfg || !path) {
        set_errbuf(errbuf, errlen, "no configuration file given");
        return LMDM_ERR_INVALID;
    }
    f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        set_errbuf(errbuf, errlen, "%s: cannot open: %s", path, strerror(e));
        rc = e == ENOENT ? LMDM_ERR_NOT_FOUND : LMDM_ERR_IO;
        goto fail;
    }
    /* Read one byte past the limit so the parser can tell "too large". */
    buf = lmdm_xmalloc(CFG_MAX_FILE + 1);
    n = fread(buf, 1, CFG_MAX_FILE + 1, f);
    if (ferror(f)) {
        int e = errno;
        set_errbuf(errbuf, errlen, "%s: cannot read: %s", path, strerror(e));
        rc = LMDM_ERR_IO;
        goto fail;
    }
    fclose(f);
    f = NULL;
    rc = lmdm_config_parse(cfg, path, buf, n, errbuf, errlen);
    free(buf);
    if (rc < 0) return rc;
    lmdm_config_apply_env(cfg);
    return 0;

fail:
    if (f) fclose(f);
    free(buf);
    lmdm_config_clear(cfg);
    lmdm_config_defaults(cfg);
    return rc;
}

void lmdm_config_apply_env(lmdm_config_t *cfg)
{
    /* An empty variable is treated as unset: `LMDM_DATABASE_URL= lmdm serve`
     * is far more often a shell accident than a request for libpq defaults. */
    const char *url = getenv("LMDM_DATABASE_URL");
    if (!url || !*url) return;
    free(cfg->database_url);
    cfg->database_url = lmdm_xstrdup(url);
}

/* ---- describe ---- */

typedef struct {
    char def[160];
    char bounds[80];
} key_text_t;

static void key_text(const cfg_key_t *k, key_text_t *t)
{
    if (k->type == T_STRING) {
        snprintf(t->def, sizeof t->def, "\"%s\"", k->def_str);
        if (k->choices) {
            t->bounds[0] = '\0';
            for (size_t j = 0; k->choices[j]; j++) {
                if (j) strncat(t->bounds, "|", sizeof t->bounds - strlen(t->bounds) - 1);
                strncat(t->bounds, k->choices[j], sizeof t->bounds - strlen(t->bounds) - 1);
            }
        } else if (k->check_desc) {
            snprintf(t->bounds, sizeof t->bounds, "%s", k->check_desc);
        } else {
            snprintf(t->bounds, sizeof t->bounds, "%s", k->min > 0 ? "non-empty" : "-");
        }
        return;
    }
    char lo[32], hi[32];
    fmt_value(k->type, k->def, t->def, sizeof t->def);
    fmt_value(k->type, k->min, lo, sizeof lo);
    fmt_value(k->type, k->max, hi, sizeof hi);
    snprintf(t->bounds, sizeof t->bounds, "%s..%s", lo, hi);
}

void lmdm_config_describe(FILE *out)
{
    static const char *const head[] = {"KEY", "TYPE", "DEFAULT", "BOUNDS", "RELOAD", "HELP"};
    key_text_t text[NKEYS];
    int w[5];

    for (size_t i = 0; i < 5; i++) w[i] = (int)strlen(head[i]);
    for (size_t i = 0; i < NKEYS; i++) {
        const cfg_key_t *k = &keys[i];
        key_text(k, &text[i]);
        int lens[5] = {(int)strlen(k->name), (int)strlen(type_name(k->type)), (int)strlen(text[i].def),
                       (int)strlen(text[i].bounds), 3};
        for (size_t j = 0; j < 5; j++) {
            if (lens[j] > w[j]) w[j] = lens[j];
        }
    }
    fprintf(out, "%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], head[0], w[1], head[1], w[2], head[2], w[3],
            head[3], w[4], head[4], head[5]);
    for (size_t i = 0; i < NKEYS; i++) {
        const cfg_key_t *k = &keys[i];
        fprintf(out, "%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], k->name, w[1], type_name(k->type), w[2],
                text[i].def, w[3], text[i].bounds, w[4], k->reload ? "yes" : "no", k->help);
    }
}
