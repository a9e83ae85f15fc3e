/* Unit tests for broker/core/config.c: the table's defaults, every value type and
 * unit, bounds, the exact error messages, hostile input, the environment
 * override, describe, and the shipped example file. */
#include "lmdm/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define CFG_NAME "lmdm.conf"

static char err[1024];

static int parse_text(lmdm_config_t *cfg, const char *text)
{
    return lmdm_config_parse(cfg, CFG_NAME, text, strlen(text), err, sizeof err);
}

/* Every field of `cfg` equals the defaults. */
static int is_defaults(const lmdm_config_t *cfg)
{
    lmdm_config_t d;
    int same;
    lmdm_config_defaults(&d);
    same = strcmp(cfg->listen_tls, d.listen_tls) == 0 && strcmp(cfg->listen_plain, d.listen_plain) == 0 &&
           cfg->workers == d.workers && strcmp(cfg->tls_cert, d.tls_cert) == 0 &&
           strcmp(cfg->tls_key, d.tls_key) == 0 && cfg->max_header_size == d.max_header_size &&
           cfg->max_body_size == d.max_body_size && cfg->max_streams == d.max_streams &&
           cfg->max_connections == d.max_connections && cfg->idle_timeout_ms == d.idle_timeout_ms &&
           cfg->read_timeout_ms == d.read_timeout_ms && cfg->shutdown_timeout_ms == d.shutdown_timeout_ms &&
           strcmp(cfg->database_url, d.database_url) == 0 && cfg->db_pool_size == d.db_pool_size &&
           cfg->db_queue_max == d.db_queue_max && cfg->db_retry_after_s == d.db_retry_after_s &&
           strcmp(cfg->migrations_dir, d.migrations_dir) == 0 && strcmp(cfg->log_level, d.log_level) == 0 &&
           strcmp(cfg->log_format, d.log_format) == 0;
    lmdm_config_clear(&d);
    return same;
}

/* A config far from the defaults, so "left with defaults" is observable. */
static const char *non_default_text = "workers = 3\n"
                                      "max_streams = 7\n"
                                      "tls_cert = /etc/x.pem\n"
                                      "log_level = debug\n"
                                      "db_retry_after = 9\n";

/* Parses `len` bytes of `text` over a non-default config, expects
 * LMDM_ERR_CONFIG with exactly `want` as message, and pure defaults after. */
static void expect_error_n(const char *text, size_t len, const char *want, int line)
{
    lmdm_config_t cfg = {0};
    int rc = parse_text(&cfg, non_default_text);
    if (rc != 0 || cfg.workers != 3) harness_fail(__FILE__, line, "setup parse failed: %s", err);
    rc = lmdm_config_parse(&cfg, CFG_NAME, text, len, err, sizeof err);
    if (rc != LMDM_ERR_CONFIG) harness_fail(__FILE__, line, "rc %d, want LMDM_ERR_CONFIG", rc);
    if (strcmp(err, want) != 0) harness_fail(__FILE__, line, "error \"%s\", want \"%s\"", err, want);
    if (!is_defaults(&cfg)) harness_fail(__FILE__, line, "config not reset to defaults after error");
    harness_checks += 3;
    lmdm_config_clear(&cfg);
}

#define EXPECT_ERROR(text, want) expect_error_n((text), strlen(text), (want), __LINE__)
#define EXPECT_ERROR_N(text, len, want) expect_error_n((text), (len), (want), __LINE__)

/* Parses one `key = value` line and expects success. */
static int parse_ok(lmdm_config_t *cfg, const char *text, int line)
{
    int rc = parse_text(cfg, text);
    harness_checks++;
    if (rc != 0) harness_fail(__FILE__, line, "parse of \"%s\" failed: %s", text, err);
    return rc;
}
#define PARSE_OK(cfg, text) parse_ok((cfg), (text), __LINE__)

static void test_defaults(void)
{
    lmdm_config_t cfg;
    lmdm_config_defaults(&cfg);
    CHECK_STR_EQ(cfg.listen_tls, "0.0.0.0:8443");
    CHECK_STR_EQ(cfg.listen_plain, "127.0.0.1:8080");
    CHECK_INT_EQ(cfg.workers, 0);
    CHECK_STR_EQ(cfg.tls_cert, "");
    CHECK_STR_EQ(cfg.tls_key, "");
    CHECK_INT_EQ(cfg.max_header_size, 16 * 1024);
    CHECK_INT_EQ(cfg.max_body_size, 1024 * 1024);
    CHECK_INT_EQ(cfg.max_streams, 100);
    CHECK_INT_EQ(cfg.max_connections, 10000);
    CHECK_INT_EQ(cfg.idle_timeout_ms, 60000);
    CHECK_INT_EQ(cfg.read_timeout_ms, 30000);
    CHECK_INT_EQ(cfg.shutdown_timeout_ms, 30000);
    CHECK_STR_EQ(cfg.database_url, "host=/var/run/postgresql dbname=lmdm");
    CHECK_INT_EQ(cfg.db_pool_size, 4);
    CHECK_INT_EQ(cfg.db_queue_max, 1024);
    CHECK_INT_EQ(cfg.db_retry_after_s, 5);
    CHECK_STR_EQ(cfg.migrations_dir, LMDM_DEFAULT_MIGRATIONS_DIR);
    CHECK_STR_EQ(cfg.log_level, "info");
    CHECK_STR_EQ(cfg.log_format, "text");
    /* Strings are owned copies, not pointers into the table. */
    CHECK(cfg.listen_tls != NULL && cfg.tls_cert != NULL);
    lmdm_config_clear(&cfg);
    CHECK(cfg.listen_tls == NULL && cfg.log_format == NULL && cfg.workers == 0);
    lmdm_config_clear(&cfg); /* clearing twice is harmless */
    lmdm_config_clear(NULL);

    /* An empty file and a file of comments give the defaults. */
    CHECK_INT_EQ(parse_text(&cfg, ""), 0);
    CHECK(is_defaults(&cfg));
    CHECK_STR_EQ(err, "");
    CHECK_INT_EQ(parse_text(&cfg, "# only a comment\n\n   \n\t# indented comment\n"), 0);
    CHECK(is_defaults(&cfg));
    lmdm_config_clear(&cfg);
}

static void test_every_key(void)
{
    lmdm_config_t cfg = {0};
    const char *text = "listen_tls = [::1]:9443\n"
                       "listen_plain = \"\"\n"
                       "workers = 8\n"
                       "tls_cert = /etc/lmdm/cert.pem\n"
                       "tls_key = \"/etc/lmdm/key with space.pem\"\n"
                       "max_header_size = 32k\n"
                       "max_body_size = 8M\n"
                       "max_streams = 250\n"
                       "max_connections = 20000\n"
                       "idle_timeout = 2m\n"
                       "read_timeout = 1500ms\n"
                       "shutdown_timeout = 0\n"
                       "database_url = \"postgresql://u@db/lmdm?sslmode=require\"\n"
                       "db_pool_size = 16\n"
                       "db_queue_max = 5000\n"
                       "db_retry_after = 1m\n"
                       "migrations_dir = /opt/lmdm/migrations\n"
                       "log_level = warn\n"
                       "log_format = json\n";
    CHECK_INT_EQ(parse_text(&cfg, text), 0);
    CHECK_STR_EQ(err, "");
    CHECK_STR_EQ(cfg.listen_tls, "[::1]:9443");
    CHECK_STR_EQ(cfg.listen_plain, "");
    CHECK_INT_EQ(cfg.workers, 8);
    CHECK_STR_EQ(cfg.tls_cert, "/etc/lmdm/cert.pem");
    CHECK_STR_EQ(cfg.tls_key, "/etc/lmdm/key with space.pem");
    CHECK_INT_EQ(cfg.max_header_size, 32 * 1024);
    CHECK_INT_EQ(cfg.max_body_size, 8 * 1024 * 1024);
    CHECK_INT_EQ(cfg.max_streams, 250);
    CHECK_INT_EQ(cfg.max_connections, 20000);
    CHECK_INT_EQ(cfg.idle_timeout_ms, 120000);
    CHECK_INT_EQ(cfg.read_timeout_ms, 1500);
    CHECK_INT_EQ(cfg.shutdown_timeout_ms, 0);
    CHECK_STR_EQ(cfg.database_url, "postgresql://u@db/lmdm?sslmode=require");
    CHECK_INT_EQ(cfg.db_pool_size, 16);
    CHECK_INT_EQ(cfg.db_queue_max, 5000);
    CHECK_INT_EQ(cfg.db_retry_after_s, 60);
    CHECK_STR_EQ(cfg.migrations_dir, "/opt/lmdm/migrations");
    CHECK_STR_EQ(cfg.log_level, "warn");
    CHECK_STR_EQ(cfg.log_format, "json");

    /* A second parse starts from the defaults again, not from the last file. */
    CHECK_INT_EQ(parse_text(&cfg, "workers = 2\n"), 0);
    CHECK_INT_EQ(cfg.workers, 2);
    CHECK_INT_EQ(cfg.max_streams, 100);
    CHECK_STR_EQ(cfg.log_format, "text");
    lmdm_config_clear(&cfg);
}

static void test_units(void)
{
    lmdm_config_t cfg = {0};
    /* sizes: bare bytes, k/K, M, G-suffixed values (G itself is above every bound) */
    if (PARSE_OK(&cfg, "max_header_size = 1536") == 0) CHECK_INT_EQ(cfg.max_header_size, 1536);
    if (PARSE_OK(&cfg, "max_header_size = 2k") == 0) CHECK_INT_EQ(cfg.max_header_size, 2048);
    if (PARSE_OK(&cfg, "max_header_size = 2K") == 0) CHECK_INT_EQ(cfg.max_header_size, 2048);
    if (PARSE_OK(&cfg, "max_body_size = 3M") == 0) CHECK_INT_EQ(cfg.max_body_size, 3 * 1024 * 1024);
    if (PARSE_OK(&cfg, "max_body_size = 0009k") == 0) CHECK_INT_EQ(cfg.max_body_size, 9 * 1024);
    EXPECT_ERROR("max_body_size = 1G", "lmdm.conf:1: key \"max_body_size\": value 1G out of range 1k..64M");
    /* durations: ms, s, m, h, bare = seconds */
    if (PARSE_OK(&cfg, "idle_timeout = 250ms") == 0) CHECK_INT_EQ(cfg.idle_timeout_ms, 250);
    if (PARSE_OK(&cfg, "idle_timeout = 7s") == 0) CHECK_INT_EQ(cfg.idle_timeout_ms, 7000);
    if (PARSE_OK(&cfg, "idle_timeout = 7") == 0) CHECK_INT_EQ(cfg.idle_timeout_ms, 7000);
    if (PARSE_OK(&cfg, "idle_timeout = 3m") == 0) CHECK_INT_EQ(cfg.idle_timeout_ms, 180000);
    if (PARSE_OK(&cfg, "idle_timeout = 1h") == 0) CHECK_INT_EQ(cfg.idle_timeout_ms, 3600000);
    /* db_retry_after: any duration unit, stored as whole seconds */
    if (PARSE_OK(&cfg, "db_retry_after = 2") == 0) CHECK_INT_EQ(cfg.db_retry_after_s, 2);
    if (PARSE_OK(&cfg, "db_retry_after = 3000ms") == 0) CHECK_INT_EQ(cfg.db_retry_after_s, 3);
    if (PARSE_OK(&cfg, "db_retry_after = 2m") == 0) CHECK_INT_EQ(cfg.db_retry_after_s, 120);
    if (PARSE_OK(&cfg, "db_retry_after = 1h") == 0) CHECK_INT_EQ(cfg.db_retry_after_s, 3600);
    EXPECT_ERROR("db_retry_after = 1500ms",
                 "lmdm.conf:1: key \"db_retry_after\": 1500ms is not a whole number of seconds");
    /* bad units */
    EXPECT_ERROR("\nidle_timeout = 10sec",
                 "lmdm.conf:2: key \"idle_timeout\": unknown unit \"sec\" in \"10sec\" (use ms, s, m, h or d)");
    EXPECT_ERROR("max_body_size = 16kb",
                 "lmdm.conf:1: key \"max_body_size\": unknown unit \"kb\" in \"16kb\" (use k, M or G)");
    EXPECT_ERROR("max_body_size = 2m",
                 "lmdm.conf:1: key \"max_body_size\": unknown unit \"m\" in \"2m\" (use k, M or G)");
    EXPECT_ERROR("idle_timeout = 2M",
                 "lmdm.conf:1: key \"idle_timeout\": unknown unit \"M\" in \"2M\" (use ms, s, m, h or d)");
    /* a plain int takes no unit */
    EXPECT_ERROR("max_streams = 10k", "lmdm.conf:1: key \"max_streams\": trailing garbage \"k\" after the number");
    EXPECT_ERROR("idle_timeout = 1.5s", "lmdm.conf:1: key \"idle_timeout\": \"1.5s\": fractions are not "
                                        "supported (use a smaller unit, e.g. 1500ms)");
    lmdm_config_clear(&cfg);
}

/* Bounds are inclusive at both ends; one step past either end fails. */
static void test_bounds(void)
{
    static const struct {
        const char *key, *min, *max, *below, *above, *range;
    } cases[] = {
        {"workers", "0", "256", "-1", "257", "0..256"},
        {"max_header_size", "1k", "1M", "1023", "1048577", "1k..1M"},
        {"max_body_size", "1024", "64M", "1023", "67108865", "1k..64M"},
        {"max_streams", "1", "1000", "0", "1001", "1..1000"},
        {"max_connections", "1", "1000000", "0", "1000001", "1..1000000"},
        {"idle_timeout", "100ms", "1h", "99ms", "3600001ms", "100ms..1h"},
        {"read_timeout", "100ms", "10m", "99ms", "600001ms", "100ms..10m"},
        {"shutdown_timeout", "0", "600s", "-1ms", "600001ms", "0..10m"},
        {"db_pool_size", "1", "64", "0", "65", "1..64"},
        {"db_queue_max", "1", "1000000", "0", "1000001", "1..1000000"},
        {"db_retry_after", "1", "3600", "0", "3601", "1s..1h"},
    };
    for (size_t i = 0; i < LMDM_ARRAY_LEN(cases); i++) {
        char text[128], want[256];
        lmdm_config_t cfg = {0};
        snprintf(text, sizeof text, "%s = %s\n", cases[i].key, cases[i].min);
        PARSE_OK(&cfg, text);
        snprintf(text, sizeof text, "%s = %s\n", cases[i].key, cases[i].max);
        PARSE_OK(&cfg, text);
        lmdm_config_clear(&cfg);

        snprintf(text, sizeof text, "# c\n%s = %s\n", cases[i].key, cases[i].below);
        snprintf(want, sizeof want, "lmdm.conf:2: key \"%s\": value %s out of range %s", cases[i].key,
                 cases[i].below, cases[i].range);
        EXPECT_ERROR(text, want);
        snprintf(text, sizeof text, "%s = %s\n", cases[i].key, cases[i].above);
        snprintf(want, sizeof want, "lmdm.conf:1: key \"%s\": value %s out of range %s", cases[i].key,
                 cases[i].above, cases[i].range);
        EXPECT_ERROR(text, want);
    }
    /* The stored value at the edges is the edge itself. */
    lmdm_config_t cfg = {0};
    if (PARSE_OK(&cfg, "max_header_size = 1M\nidle_timeout = 100ms\nworkers = 256") == 0) {
        CHECK_INT_EQ(cfg.max_header_size, 1048576);
        CHECK_INT_EQ(cfg.idle_timeout_ms, 100);
        CHECK_INT_EQ(cfg.workers, 256);
    }
    lmdm_config_clear(&cfg);
}

static void test_error_messages(void)
{
    EXPECT_ERROR("# limits\n\nworkers = 2\n\n# streams\n\nmax_streams = 5000\n",
                 "lmdm.conf:7: key \"max_streams\": value 5000 out of range 1..1000");
    EXPECT_ERROR("workers = 1\n\nlistn_tls = 0.0.0.0:1\n", "lmdm.conf:3: unknown key \"listn_tls\"");
    EXPECT_ERROR("# a\nworkers = 2\n\n\n\n\n\n\nworkers = 3\n",
                 "lmdm.conf:9: key \"workers\" given twice (first on line 2)");
    EXPECT_ERROR("\n\n\nworkers 4\n", "lmdm.conf:4: expected \"key = value\"");
    EXPECT_ERROR("workers\n", "lmdm.conf:1: expected \"key = value\"");
    EXPECT_ERROR("= 4\n", "lmdm.conf:1: expected \"key = value\"");
    EXPECT_ERROR("\"workers\" = 4\n", "lmdm.conf:1: expected \"key = value\"");
    EXPECT_ERROR("listen tls = x\n", "lmdm.conf:1: expected \"key = value\"");
    EXPECT_ERROR("Workers = 4\n", "lmdm.conf:1: unknown key \"Workers\"");
    /* trailing garbage */
    EXPECT_ERROR("max_streams = 5000 abc\n",
                 "lmdm.conf:1: key \"max_streams\": trailing garbage \"abc\" after the number");
    EXPECT_ERROR("max_body_size = 16k x\n",
                 "lmdm.conf:1: key \"max_body_size\": trailing garbage \"x\" after the value");
    EXPECT_ERROR("max_streams = 0x10\n",
                 "lmdm.conf:1: key \"max_streams\": trailing garbage \"x10\" after the number");
    EXPECT_ERROR("tls_cert = \"a\" b\n",
                 "lmdm.conf:1: key \"tls_cert\": trailing garbage \"b\" after the quoted value");
    EXPECT_ERROR("tls_cert = \"a\"\"b\"\n",
                 "lmdm.conf:1: key \"tls_cert\": trailing garbage \"\"b\"\" after the quoted value");
    /* quotes */
    EXPECT_ERROR("\ntls_cert = \"/etc/cert.pem\n", "lmdm.conf:2: key \"tls_cert\": unterminated quoted string");
    EXPECT_ERROR("tls_cert = \"abc\\\"\n", "lmdm.conf:1: key \"tls_cert\": unterminated quoted string");
    EXPECT_ERROR("tls_cert = \"abc\\", "lmdm.conf:1: key \"tls_cert\": unterminated quoted string");
    EXPECT_ERROR("tls_cert = \"a\\nb\"\n", "lmdm.conf:1: key \"tls_cert\": unknown escape \"\\n\" in quoted "
                                           "string (only \\\" and \\\\ are allowed)");
    EXPECT_ERROR("tls_cert = ab\"c\n",
                 "lmdm.conf:1: key \"tls_cert\": stray quote in unquoted value \"ab\"c\" (quote the whole value)");
    /* not a number */
    EXPECT_ERROR("workers = many\n", "lmdm.conf:1: key \"workers\": expected an integer, got \"many\"");
    EXPECT_ERROR("idle_timeout = s\n", "lmdm.conf:1: key \"idle_timeout\": expected a duration such as 500ms, "
                                       "30s, 5m or 1h, got \"s\"");
    EXPECT_ERROR("max_streams = +5\n", "lmdm.conf:1: key \"max_streams\": expected an integer, got \"+5\"");
    /* errors name the file given */
    lmdm_config_t cfg = {0};
    CHECK_INT_EQ(lmdm_config_parse(&cfg, "/etc/lmdm/other.conf", "bogus = 1", 9, err, sizeof err), LMDM_ERR_CONFIG);
    CHECK_STR_EQ(err, "/etc/lmdm/other.conf:1: unknown key \"bogus\"");
    /* a tiny error buffer is filled, truncated and terminated; none at all is fine */
    char small[12];
    memset(small, 'x', sizeof small);
    CHECK_INT_EQ(lmdm_config_parse(&cfg, CFG_NAME, "bogus = 1", 9, small, sizeof small), LMDM_ERR_CONFIG);
    CHECK_STR_EQ(small, "lmdm.conf:1");
    CHECK_INT_EQ(lmdm_config_parse(&cfg, CFG_NAME, "bogus = 1", 9, NULL, 0), LMDM_ERR_CONFIG);
    CHECK(is_defaults(&cfg));
    /* and a later success clears the message */
    CHECK_INT_EQ(parse_text(&cfg, "workers = 1"), 0);
    CHECK_STR_EQ(err, "");
    lmdm_config_clear(&cfg);
    CHECK_INT_EQ(lmdm_config_parse(NULL, CFG_NAME, "", 0, err, sizeof err), LMDM_ERR_INVALID);
}

static void test_defaults_kept_on_error(void)
{
    lmdm_config_t cfg = {0};
    CHECK_INT_EQ(parse_text(&cfg, non_default_text), 0);
    CHECK_INT_EQ(cfg.workers, 3);
    CHECK_STR_EQ(cfg.tls_cert, "/etc/x.pem");
    /* All lines but the last are valid: none of them may stick. */
    CHECK_INT_EQ(parse_text(&cfg, "workers = 5\ntls_cert = /a.pem\nlog_level = error\nmax_streams = 0\n"),
                 LMDM_ERR_CONFIG);
    CHECK(is_defaults(&cfg));
    CHECK_INT_EQ(cfg.workers, 0);
    CHECK_STR_EQ(cfg.tls_cert, "");
    CHECK_STR_EQ(cfg.log_level, "info");
    lmdm_config_clear(&cfg);
}

static void test_quoting_and_comments(void)
{
    lmdm_config_t cfg = {0};
    if (PARSE_OK(&cfg, "tls_cert = \"/a b/\\\"c\\\"\\\\d # not a comment\"   # a comment\n") == 0)
        CHECK_STR_EQ(cfg.tls_cert, "/a b/\"c\"\\d # not a comment");
    if (PARSE_OK(&cfg, "tls_cert = \"\"\n") == 0) CHECK_STR_EQ(cfg.tls_cert, "");
    if (PARSE_OK(&cfg, "tls_cert =\n") == 0) CHECK_STR_EQ(cfg.tls_cert, "");
    if (PARSE_OK(&cfg, "tls_cert = \"  padded  \"\n") == 0) CHECK_STR_EQ(cfg.tls_cert, "  padded  ");
    if (PARSE_OK(&cfg, "tls_cert = \"/srv/zertifik\xc3\xa4t \xe2\x9c\x93.pem\"\n") == 0)
        CHECK_STR_EQ(cfg.tls_cert, "/srv/zertifik\xc3\xa4t \xe2\x9c\x93.pem");
    /* unquoted: inner spaces kept, outer whitespace and the comment dropped */
    if (PARSE_OK(&cfg, "database_url =   host=/tmp dbname=x   # local\n") == 0)
        CHECK_STR_EQ(cfg.database_url, "host=/tmp dbname=x");
    if (PARSE_OK(&cfg, "max_streams = 7 # seven\n") == 0) CHECK_INT_EQ(cfg.max_streams, 7);
    if (PARSE_OK(&cfg, "max_streams = 7# tight\n") == 0) CHECK_INT_EQ(cfg.max_streams, 7);
    if (PARSE_OK(&cfg, "log_level=debug#x\n") == 0) CHECK_STR_EQ(cfg.log_level, "debug");
    if (PARSE_OK(&cfg, "\t max_streams\t=\t9\t\n") == 0) CHECK_INT_EQ(cfg.max_streams, 9);
    /* a quoted number is still a number */
    if (PARSE_OK(&cfg, "max_streams = \"11\"\n") == 0) CHECK_INT_EQ(cfg.max_streams, 11);
    /* no trailing newline on the last line */
    if (PARSE_OK(&cfg, "workers = 1\nmax_streams = 12") == 0) CHECK_INT_EQ(cfg.max_streams, 12);
    lmdm_config_clear(&cfg);
}

static void test_crlf_and_bom(void)
{
    lmdm_config_t cfg = {0};
    const char *text = "# windows\r\nworkers = 6\r\ntls_cert = \"/c.pem\"\r\nlog_format = json # j\r\n\r\n";
    if (PARSE_OK(&cfg, text) == 0) {
        CHECK_INT_EQ(cfg.workers, 6);
        CHECK_STR_EQ(cfg.tls_cert, "/c.pem");
        CHECK_STR_EQ(cfg.log_format, "json");
    }
    if (PARSE_OK(&cfg, "\xef\xbb\xbfworkers = 2\r\n") == 0) CHECK_INT_EQ(cfg.workers, 2);
    lmdm_config_clear(&cfg);
    /* line numbers stay right with CRLF; a lone CR inside a line is not a line end */
    EXPECT_ERROR("a_comment_free_file = 1\r\n", "lmdm.conf:1: unknown key \"a_comment_free_file\"");
    EXPECT_ERROR("workers = 1\r\n\r\nmax_streams = 0\r\n",
                 "lmdm.conf:3: key \"max_streams\": value 0 out of range 1..1000");
    EXPECT_ERROR("workers = 1\rmax_streams = 2\n", "lmdm.conf:1: control character 0x0d in file");
}

static void test_enumerations(void)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    lmdm_config_t cfg = {0};
    for (size_t i = 0; i < LMDM_ARRAY_LEN(levels); i++) {
        char text[64];
        snprintf(text, sizeof text, "log_level = %s", levels[i]);
        if (PARSE_OK(&cfg, text) == 0) CHECK_STR_EQ(cfg.log_level, levels[i]);
    }
    if (PARSE_OK(&cfg, "log_format = \"json\"") == 0) CHECK_STR_EQ(cfg.log_format, "json");
    lmdm_config_clear(&cfg);
    EXPECT_ERROR("log_level = verbose",
                 "lmdm.conf:1: key \"log_level\": invalid value \"verbose\" (expected debug|info|warn|error)");
    EXPECT_ERROR("log_level = INFO",
                 "lmdm.conf:1: key \"log_level\": invalid value \"INFO\" (expected debug|info|warn|error)");
    EXPECT_ERROR("log_level = off",
                 "lmdm.conf:1: key \"log_level\": invalid value \"off\" (expected debug|info|warn|error)");
    EXPECT_ERROR("log_level =", "lmdm.conf:1: key \"log_level\": invalid value \"\" (expected debug|info|warn|error)");
    EXPECT_ERROR("log_format = yaml", "lmdm.conf:1: key \"log_format\": invalid value \"yaml\" (expected text|json)");
    EXPECT_ERROR("migrations_dir = \"\"", "lmdm.conf:1: key \"migrations_dir\": must not be empty");
}

/* OS-update keys: a zone of the tz database, a time of day. */
static void test_osupdate_keys(void)
{
    lmdm_config_t cfg = {0};
    if (PARSE_OK(&cfg, "osupdate_timezone = \"Europe/Berlin\"\nosupdate_install_time = \"23:59\"") == 0) {
        CHECK_STR_EQ(cfg.osupdate_timezone, "Europe/Berlin");
        CHECK_STR_EQ(cfg.osupdate_install_time, "23:59");
    }
    lmdm_config_clear(&cfg);
    EXPECT_ERROR("osupdate_timezone = \"Mars/Olympus\"",
                 "lmdm.conf:1: key \"osupdate_timezone\": invalid value \"Mars/Olympus\": "
                 "unknown time zone 'Mars/Olympus'");
    EXPECT_ERROR("osupdate_timezone = \"../../etc/passwd\"",
                 "lmdm.conf:1: key \"osupdate_timezone\": invalid value \"../../etc/passwd\": "
                 "unknown time zone '../../etc/passwd'");
    EXPECT_ERROR("osupdate_install_time = \"24:00\"",
                 "lmdm.conf:1: key \"osupdate_install_time\": invalid value \"24:00\": "
                 "'24:00' is not a time of day (HH:MM, 00:00 to 23:59)");
    EXPECT_ERROR("osupdate_install_time = \"2:00\"",
                 "lmdm.conf:1: key \"osupdate_install_time\": invalid value \"2:00\": "
                 "'2:00' is not a time of day (HH:MM, 00:00 to 23:59)");
}

static void test_listen_addresses(void)
{
    static const char *const good[] = {"0.0.0.0:8443", "127.0.0.1:1",     "[::]:65535",
                                       "[::1]:80",     "localhost:8080",  "broker-1.example.net:443",
                                       "",             "[fe80::1:2]:8443"};
    static const struct {
        const char *value, *why;
    } bad[] = {
        {"0.0.0.0", "missing \":port\""},
        {"0.0.0.0:", "missing port after \":\""},
        {"0.0.0.0:0", "port 0 out of range 1..65535"},
        {"0.0.0.0:65536", "port 65536 out of range 1..65535"},
        {"0.0.0.0:99999999999999999999", "port 99999999999999999999 out of range 1..65535"},
        {"0.0.0.0:-1", "port \"-1\" is not a number"},
        {"0.0.0.0:http", "port \"http\" is not a number"},
        {":8080", "missing host (0.0.0.0 listens on every IPv4 address)"},
        {"::1:8080", "IPv6 addresses go in brackets, e.g. \"[::1]:8443\""},
        {"[::1]8080", "expected \":port\" after \"]\""},
        {"[::1:8080", "missing \"]\" after the IPv6 address"},
        {"[]:8080", "invalid IPv6 address"},
        {"[1.2.3.4]:8080", "invalid IPv6 address \"1.2.3.4\""},
        {"[zz::1]:8080", "invalid IPv6 address \"zz::1\""},
        {"my host:80", "invalid character in host name"},
        {"host/x:80", "invalid character in host name"},
    };
    lmdm_config_t cfg = {0};
    for (size_t i = 0; i < LMDM_ARRAY_LEN(good); i++) {
        char text[128];
        snprintf(text, sizeof text, "listen_plain = \"%s\"", good[i]);
        if (PARSE_OK(&cfg, text) == 0) CHECK_STR_EQ(cfg.listen_plain, good[i]);
    }
    lmdm_config_clear(&cfg);
    for (size_t i = 0; i < LMDM_ARRAY_LEN(bad); i++) {
        char text[128], want[512];
        snprintf(text, sizeof text, "listen_tls = \"%s\"", bad[i].value);
        snprintf(want, sizeof want,
                 "lmdm.conf:1: key \"listen_tls\": invalid address \"%s\": %s (expected \"host:port\", "
                 "\"[v6]:port\" or \"\" to disable)",
                 bad[i].value, bad[i].why);
        EXPECT_ERROR(text, want);
    }
}

static void test_hostile_input(void)
{
    /* numbers that overflow 64 bits, alone or through a unit */
    EXPECT_ERROR("max_streams = 99999999999999999999999999",
                 "lmdm.conf:1: key \"max_streams\": value 99999999999999999999999999 out of range 1..1000");
    EXPECT_ERROR("workers = 18446744073709551617",
                 "lmdm.conf:1: key \"workers\": value 18446744073709551617 out of range 0..256");
    EXPECT_ERROR("workers = -9223372036854775808",
                 "lmdm.conf:1: key \"workers\": value -9223372036854775808 out of range 0..256");
    EXPECT_ERROR("workers = 4294967296", "lmdm.conf:1: key \"workers\": value 4294967296 out of range 0..256");
    EXPECT_ERROR("max_body_size = 9007199254740992G",
                 "lmdm.conf:1: key \"max_body_size\": value 9007199254740992G out of range 1k..64M");
    EXPECT_ERROR("idle_timeout = 9223372036854775h",
                 "lmdm.conf:1: key \"idle_timeout\": value 9223372036854775h out of range 100ms..1h");
    /* negative sizes and durations */
    EXPECT_ERROR("max_body_size = -1", "lmdm.conf:1: key \"max_body_size\": value -1 out of range 1k..64M");
    EXPECT_ERROR("max_body_size = -16k", "lmdm.conf:1: key \"max_body_size\": value -16k out of range 1k..64M");
    EXPECT_ERROR("read_timeout = -5s", "lmdm.conf:1: key \"read_timeout\": value -5s out of range 100ms..10m");
    EXPECT_ERROR("max_body_size = --1", "lmdm.conf:1: key \"max_body_size\": expected a size such as 512, 16k, "
                                        "1M or 1G, got \"--1\"");
    /* empty values for numbers */
    EXPECT_ERROR("workers =", "lmdm.conf:1: key \"workers\": empty value (expected an integer)");
    EXPECT_ERROR("workers = \"\"", "lmdm.conf:1: key \"workers\": empty value (expected an integer)");
    EXPECT_ERROR("workers =    # nothing", "lmdm.conf:1: key \"workers\": empty value (expected an integer)");
    /* a long value is shortened in the message */
    {
        char text[300], want[400];
        memset(text, 0, sizeof text);
        strcpy(text, "max_streams = ");
        memset(text + strlen(text), '9', 200);
        snprintf(want, sizeof want, "lmdm.conf:1: key \"max_streams\": value %.40s... out of range 1..1000",
                 text + 14);
        EXPECT_ERROR(text, want);
    }
    /* embedded NUL */
    {
        static const char text[] = "workers = 1\nmax_streams = 1\0 00\n";
        EXPECT_ERROR_N(text, sizeof text - 1, "lmdm.conf:2: NUL byte in file");
        static const char text2[] = "# comment \0 hidden\n";
        EXPECT_ERROR_N(text2, sizeof text2 - 1, "lmdm.conf:1: NUL byte in file");
    }
    /* control characters and malformed UTF-8, even inside comments */
    EXPECT_ERROR("tls_cert = \"\x1b[31m\"", "lmdm.conf:1: control character 0x1b in file");
    EXPECT_ERROR("# \x7f\n", "lmdm.conf:1: control character 0x7f in file");
    EXPECT_ERROR("\n# caf\xe9\n", "lmdm.conf:2: invalid UTF-8 in file");           /* Latin-1 */
    EXPECT_ERROR("tls_cert = \"\xc0\xaf\"", "lmdm.conf:1: invalid UTF-8 in file");   /* overlong */
    EXPECT_ERROR("tls_cert = \"\xed\xa0\x80\"", "lmdm.conf:1: invalid UTF-8 in file"); /* surrogate */
    EXPECT_ERROR("tls_cert = \"\xf4\x90\x80\x80\"", "lmdm.conf:1: invalid UTF-8 in file"); /* > U+10FFFF */
    EXPECT_ERROR("# \xe2\x82", "lmdm.conf:1: invalid UTF-8 in file");                /* truncated */
    EXPECT_ERROR("# \xe2\x82x\n", "lmdm.conf:1: invalid UTF-8 in file");
    /* line length: 4096 bytes is fine, 4097 is not (CRLF does not count) */
    {
        size_t n = 4096;
        char *text = malloc(n + 3);
        memset(text, 'x', n + 2);
        text[0] = '#';
        text[n] = '\r';
        text[n + 1] = '\n';
        text[n + 2] = '\0';
        lmdm_config_t cfg = {0};
        CHECK_INT_EQ(parse_text(&cfg, text), 0);
        CHECK_STR_EQ(err, "");
        lmdm_config_clear(&cfg);
        text[n] = 'x';
        text[n + 1] = '\0';
        EXPECT_ERROR(text, "lmdm.conf:1: line is longer than 4096 bytes");
        free(text);
    }
    {
        /* a quoted value filling the whole line */
        char text[4097];
        strcpy(text, "tls_cert = \"");
        size_t used = strlen(text);
        memset(text + used, 'a', 4096 - used - 1);
        text[4095] = '"';
        text[4096] = '\0';
        lmdm_config_t cfg = {0};
        if (PARSE_OK(&cfg, text) == 0) CHECK_INT_EQ(strlen(cfg.tls_cert), 4096 - used - 1);
        lmdm_config_clear(&cfg);
    }
    /* file size: exactly 1 MiB is accepted, one byte more is not */
    {
        size_t n = 1024 * 1024;
        char *text = malloc(n + 1);
        for (size_t i = 0; i < n; i += 1024) {
            memset(text + i, ' ', 1023);
            text[i] = '#';
            text[i + 1023] = '\n';
        }
        lmdm_config_t cfg = {0};
        CHECK_INT_EQ(lmdm_config_parse(&cfg, CFG_NAME, text, n, err, sizeof err), 0);
        text[n] = '\n';
        lmdm_config_clear(&cfg);
        EXPECT_ERROR_N(text, n + 1, "lmdm.conf: file is larger than 1 MiB");
        free(text);
    }
}

/* ---- files and environment ---- */

static char tmpdir[256];

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK_INT_EQ(fwrite(data, 1, len, f), len);
    CHECK_INT_EQ(fclose(f), 0);
}

static void test_load_and_env(void)
{
    char path[512];
    lmdm_config_t cfg = {0};
    const char *text = "database_url = \"dbname=from_file\"\nworkers = 2\n";
    snprintf(path, sizeof path, "%s/lmdm.conf", tmpdir);
    write_file(path, text, strlen(text));

    unsetenv("LMDM_DATABASE_URL");
    CHECK_INT_EQ(lmdm_config_load(&cfg, path, err, sizeof err), 0);
    CHECK_STR_EQ(cfg.database_url, "dbname=from_file");
    CHECK_INT_EQ(cfg.workers, 2);

    setenv("LMDM_DATABASE_URL", "postgresql:///from_env", 1);
    CHECK_INT_EQ(lmdm_config_load(&cfg, path, err, sizeof err), 0);
    CHECK_STR_EQ(cfg.database_url, "postgresql:///from_env");
    CHECK_INT_EQ(cfg.workers, 2);

    /* parse alone does not look at the environment; apply_env does */
    CHECK_INT_EQ(parse_text(&cfg, text), 0);
    CHECK_STR_EQ(cfg.database_url, "dbname=from_file");
    lmdm_config_apply_env(&cfg);
    CHECK_STR_EQ(cfg.database_url, "postgresql:///from_env");

    /* an empty variable counts as unset */
    setenv("LMDM_DATABASE_URL", "", 1);
    CHECK_INT_EQ(lmdm_config_load(&cfg, path, err, sizeof err), 0);
    CHECK_STR_EQ(cfg.database_url, "dbname=from_file");

    /* a bad file leaves pure defaults: no environment applied either */
    setenv("LMDM_DATABASE_URL", "postgresql:///from_env", 1);
    snprintf(path, sizeof path, "%s/bad.conf", tmpdir);
    write_file(path, "workers = 2\nworkers = 3\n", 24);
    CHECK_INT_EQ(lmdm_config_load(&cfg, path, err, sizeof err), LMDM_ERR_CONFIG);
    char want[700];
    snprintf(want, sizeof want, "%s:2: key \"workers\" given twice (first on line 1)", path);
    CHECK_STR_EQ(err, want);
    CHECK(is_defaults(&cfg));

    /* embedded NUL survives the trip through the file */
    write_file(path, "workers = 1\0\n", 13);
    CHECK_INT_EQ(lmdm_config_load(&cfg, path, err, sizeof err), LMDM_ERR_CONFIG);
    snprintf(want, sizeof want, "%s:1: NUL byte in file", path);
    CHECK_STR_EQ(err, want);

    /* missing file: path and strerror */
    CHECK_INT_EQ(parse_text(&cfg, "workers = 9"), 0);
    snprintf(path, sizeof path, "%s/missing.conf", tmpdir);
    CHECK_INT_EQ(lmdm_config_load(&cfg, path, err, sizeof err), LMDM_ERR_NOT_FOUND);
    snprintf(want, sizeof want, "%s: cannot open: %s", path, strerror(ENOENT));
    CHECK_STR_EQ(err, want);
    CHECK(is_defaults(&cfg));

    /* a directory opens but cannot be read */
    CHECK_INT_EQ(lmdm_config_load(&cfg, tmpdir, err, sizeof err), LMDM_ERR_IO);
    snprintf(want, sizeof want, "%s: cannot read: %s", tmpdir, strerror(EISDIR));
    CHECK_STR_EQ(err, want);
    CHECK(is_defaults(&cfg));

    /* a file over 1 MiB */
    {
        size_t n = 1024 * 1024 + 1;
        char *big = malloc(n);
        memset(big, '#', n);
        for (size_t i = 100; i < n; i += 100) big[i] = '\n';
        snprintf(path, sizeof path, "%s/big.conf", tmpdir);
        write_file(path, big, n);
        free(big);
        CHECK_INT_EQ(lmdm_config_load(&cfg, path, err, sizeof err), LMDM_ERR_CONFIG);
        snprintf(want, sizeof want, "%s: file is larger than 1 MiB", path);
        CHECK_STR_EQ(err, want);
    }
    unsetenv("LMDM_DATABASE_URL");
    lmdm_config_clear(&cfg);
}

static const char *const all_keys[] = {
    "listen_tls",       "listen_plain",  "workers",        "tls_cert",       "tls_key",
    "max_header_size",  "max_body_size", "max_streams",    "max_connections", "idle_timeout",
    "read_timeout",     "shutdown_timeout", "database_url", "db_pool_size",   "db_queue_max",
    "db_retry_after",   "migrations_dir", "log_level",     "log_format",
    "public_url", "ca_cert", "ca_key", "device_trusted_cas", "tls_client_auth", "trusted_proxies",
    "enroll_identity", "scep_url", "scep_challenge", "scep_key_size", "enroll_org", "mdm_max_body",
    "apns_url", "apns_topic", "apns_auth", "apns_key_file", "apns_key_id", "apns_team_id",
    "apns_cert", "apns_cert_key", "apns_ca_file", "secret_key", "tenant_rate", "tenant_burst",
    "invitation_ttl", "webhook_timeout", "webhook_backoff_max", "compliance_interval",
    "ledger_checkpoint_entries", "ledger_checkpoint_interval",
    "osupdate_timezone", "osupdate_install_time", "release_feed_url", "release_feed_interval", "osupdate_clock_file",
};

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* The shipped example parses as is, lists every key as a `#key = value`
 * line, and those lines, uncommented, are exactly the defaults. */
static void test_example_file(void)
{
    const char *src = getenv("LMDM_SRC");
    char path[1024];
    size_t len = 0;
    lmdm_config_t cfg = {0};

    CHECK(src != NULL);
    if (!src) return;
    snprintf(path, sizeof path, "%s/deploy/lmdm.conf.example", src);
    unsetenv("LMDM_DATABASE_URL");
    CHECK_INT_EQ(lmdm_config_load(&cfg, path, err, sizeof err), 0);
    CHECK_STR_EQ(err, "");
    CHECK(is_defaults(&cfg));

    char *text = read_all(path, &len);
    CHECK(text != NULL);
    if (!text) return;
    /* Uncomment "#key = value" lines (prose comments are "# ..."). */
    char *out = malloc(len + 1);
    size_t o = 0;
    int settings = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
        if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z') {
            line++;
            n--;
            settings++;
        }
        memcpy(out + o, line, n);
        o += n;
        line += n;
    }
    out[o] = '\0';
    CHECK_INT_EQ(settings, LMDM_ARRAY_LEN(all_keys));
    for (size_t i = 0; i < LMDM_ARRAY_LEN(all_keys); i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "\n%s = ", all_keys[i]);
        CHECK_STR_CONTAINS(out, needle);
    }
    CHECK_INT_EQ(lmdm_config_parse(&cfg, "example", out, o, err, sizeof err), 0);
    CHECK_STR_EQ(err, "");
    /* The example's migrations_dir is an install path; the default is a build-time one. */
    CHECK_STR_EQ(cfg.migrations_dir, "/usr/local/share/lmdm/migrations");
    free(cfg.migrations_dir);
    cfg.migrations_dir = strdup(LMDM_DEFAULT_MIGRATIONS_DIR);
    CHECK(is_defaults(&cfg));
    lmdm_config_clear(&cfg);
    free(out);
    free(text);
}

static void test_describe(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL);
    if (!f) return;
    lmdm_config_describe(f);
    CHECK_INT_EQ(fclose(f), 0);

    CHECK(strncmp(buf, "KEY ", 4) == 0);
    const char *help_col = strstr(buf, "HELP");
    CHECK(help_col != NULL);
    if (!help_col) goto out;
    size_t col = (size_t)(help_col - buf);
    int lines = 0;
    /* every row: a key from the list first, and the help column aligned */
    for (char *line = strchr(buf, '\n') + 1; *line; lines++) {
        char *nl = strchr(line, '\n');
        CHECK(nl != NULL);
        if (!nl) break;
        *nl = '\0';
        CHECK((size_t)(nl - line) > col);
        CHECK(line[col - 1] == ' ' && line[col] != ' ');
        int known = 0;
        for (size_t i = 0; i < LMDM_ARRAY_LEN(all_keys); i++) {
            size_t kl = strlen(all_keys[i]);
            if (strncmp(line, all_keys[i], kl) == 0 && line[kl] == ' ') known = 1;
        }
        if (!known) harness_fail(__FILE__, __LINE__, "unexpected describe row \"%s\"", line);
        /* spot checks of the columns */
        if (strncmp(line, "max_header_size ", 16) == 0) {
            CHECK_STR_CONTAINS(line, " size ");
            CHECK_STR_CONTAINS(line, " 16k ");
            CHECK_STR_CONTAINS(line, " 1k..1M ");
            CHECK_STR_CONTAINS(line, " no ");
            CHECK_STR_CONTAINS(line, "431");
        } else if (strncmp(line, "tls_cert ", 9) == 0) {
            CHECK_STR_CONTAINS(line, " string ");
            CHECK_STR_CONTAINS(line, " \"\" ");
            CHECK_STR_CONTAINS(line, " yes ");
        } else if (strncmp(line, "idle_timeout ", 13) == 0) {
            CHECK_STR_CONTAINS(line, " duration ");
            CHECK_STR_CONTAINS(line, " 1m ");
            CHECK_STR_CONTAINS(line, " 100ms..1h ");
        } else if (strncmp(line, "db_retry_after ", 15) == 0) {
            CHECK_STR_CONTAINS(line, " 5s ");
            CHECK_STR_CONTAINS(line, " 1s..1h ");
        } else if (strncmp(line, "log_level ", 10) == 0) {
            CHECK_STR_CONTAINS(line, " \"info\" ");
            CHECK_STR_CONTAINS(line, " debug|info|warn|error ");
            CHECK_STR_CONTAINS(line, " yes ");
        } else if (strncmp(line, "listen_tls ", 11) == 0) {
            CHECK_STR_CONTAINS(line, " \"0.0.0.0:8443\" ");
            CHECK_STR_CONTAINS(line, " no ");
        } else if (strncmp(line, "workers ", 8) == 0) {
            CHECK_STR_CONTAINS(line, " int ");
            CHECK_STR_CONTAINS(line, " 0..256 ");
        } else if (strncmp(line, "migrations_dir ", 15) == 0) {
            CHECK_STR_CONTAINS(line, " non-empty ");
        }
        line = nl + 1;
    }
    CHECK_INT_EQ(lines, LMDM_ARRAY_LEN(all_keys));
out:
    free(buf);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/lmdm-test-config-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_defaults);
    RUN(test_every_key);
    RUN(test_units);
    RUN(test_bounds);
    RUN(test_error_messages);
    RUN(test_defaults_kept_on_error);
    RUN(test_quoting_and_comments);
    RUN(test_crlf_and_bom);
    RUN(test_enumerations);
    RUN(test_listen_addresses);
    RUN(test_osupdate_keys);
    RUN(test_hostile_input);
    RUN(test_load_and_env);
    RUN(test_example_file);
    RUN(test_describe);

    static const char *const files[] = {"lmdm.conf", "bad.conf", "big.conf"};
    for (size_t i = 0; i < LMDM_ARRAY_LEN(files); i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    return harness_finish();
}
