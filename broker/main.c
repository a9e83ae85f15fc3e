/* lmdm: the command line. Each subcommand is a small function; the work lives
 * in the libraries. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/rand.h>

#include "lmdm/app.h"
#include "lmdm/buf.h"
#include "lmdm/ca.h"
#include "lmdm/cli.h"
#include "lmdm/config.h"
#include "lmdm/mdm.h"
#include "lmdm/mdm_endpoints.h"
#include "lmdm/apns.h"
#include "lmdm/push.h"
#include "lmdm/seen.h"
#include "lmdm/db.h"
#include "lmdm/log.h"
#include "lmdm/migrate.h"
#include "lmdm/ops.h"
#include "lmdm/router.h"
#include "lmdm/server.h"
#include "lmdm/ledger.h"
#include "lmdm/owner.h"
#include "lmdm/osupdate_apply.h"
#include "lmdm/rules_apply.h"
#include "lmdm/tenant_api.h"
#include "lmdm/webhook.h"


static void usage(FILE *out)
{
    fprintf(out,
            "usage: lmdm <command> [options]\n"
            "\n"
            "commands:\n"
            "  serve     run the broker (HTTP/1.1 and HTTP/2, TLS and plaintext listeners)\n"
            "  migrate   apply pending database migrations (or show their status)\n"
            "  config    check a config file or describe every setting\n"
            "  ca        create the broker CA (device identities, profile signing)\n"
            "  command   queue an MDM command for a device (operators and tests)\n"
            "  tenant    add, list or disable tenant organizations\n"
            "  key       issue, list or revoke tenant API keys\n"
            "  secret    create the broker's master secret\n"
            "  policy    print the decision table, or decide one command offline\n"
            "  audit     verify the tamper-evident ledger, export it, print its key\n"
            "  releases  import an OS release feed (the broker's JSON or SOFA), list releases\n"
            "  ring      update rings: how many days after a release devices start updating\n"
            "  osupdate  every device's OS-update plan\n"
            "  version   print the version\n"
            "  help      this text\n"
            "\n"
            "Every command takes --help. The config file defaults to $LMDM_CONFIG, then %s;\n"
            "LMDM_DATABASE_URL overrides database_url.\n",
            LMDM_DEFAULT_CONFIG);
}

static int load_config(lmdm_config_t *cfg, const char **path) { return lmdm_cli_load_config(cfg, path); }

static int setup_logging(const lmdm_config_t *cfg)
{
    lmdm_log_level_t lvl;
    lmdm_log_format_t fmt;
    if (lmdm_log_level_parse(cfg->log_level, &lvl) != 0 || lmdm_log_format_parse(cfg->log_format, &fmt) != 0) {
        fprintf(stderr, "lmdm: bad log_level or log_format\n");
        return -1;
    }
    lmdm_log_setup(lvl, fmt);
    return 0;
}

/* Parse the options common to every subcommand. Returns 1 if --help was shown. */
typedef struct {
    const char *config;
    const char *database_url;
    const char *dir;
    int status;
    int describe;
    int check;
    const char *name;
    int days;
    const char *device;
    const char *user;
    long tenant;
    int allow_args; /* positional arguments are the caller's (argv[optind..]) */
} opts_t;

static int parse_opts(int argc, char **argv, opts_t *o, const char *help)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"database-url", required_argument, NULL, 'd'},
        {"dir", required_argument, NULL, 'D'},    {"status", no_argument, NULL, 's'},
        {"describe", no_argument, NULL, 'x'},     {"check", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},         {"name", required_argument, NULL, 'n'},
        {"days", required_argument, NULL, 'y'},   {"device", required_argument, NULL, 'v'},
        {"user", required_argument, NULL, 'u'},   {"tenant", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'd': o->database_url = optarg; break;
        case 'D': o->dir = optarg; break;
        case 's': o->status = 1; break;
        case 'x': o->describe = 1; break;
        case 'k': o->check = 1; break;
        case 'n': o->name = optarg; break;
        case 'y': o->days = atoi(optarg); break;
        case 'v': o->device = optarg; break;
        case 'u': o->user = optarg; break;
        case 't': o->tenant = atol(optarg); break;
        case 'h': fputs(help, stdout); return 1;
        default: fputs(help, stderr); return -1;
        }
    }
    if (optind < argc && !o->allow_args) {
        fprintf(stderr, "lmdm: unexpected argument '%s'\n%s", argv[optind], help);
        return -1;
    }
    return 0;
}

/* Shared state of the device endpoints: the CA, the trust store, proxies. */
static int build_app(lmdm_app_t *app, const lmdm_config_t *cfg)
{
    char err[512];
    if (*cfg->ca_cert || *cfg->ca_key) {
        app->ca = lmdm_ca_load(cfg->ca_cert, cfg->ca_key, err, sizeof(err));
        if (!app->ca) {
            lmdm_error("broker CA: %s", err);
            return -1;
        }
        app->trust = lmdm_trust_new(lmdm_ca_cert(app->ca), cfg->device_trusted_cas, err, sizeof(err));
        if (!app->trust) {
            lmdm_error("device trust: %s", err);
            return -1;
        }
    } else {
        lmdm_warn("no broker CA (ca_cert/ca_key): the device endpoints answer 503; run `lmdm ca init`");
    }
    if (*cfg->secret_key) {
        static lmdm_secrets_t secrets;
        if (lmdm_secrets_load(cfg->secret_key, &secrets, err, sizeof(err)) != 0) {
            lmdm_error("secret_key: %s", err);
            return -1;
        }
        app->secrets = &secrets;
    } else {
        lmdm_warn("no secret_key: the tenant API and owner pages answer 503; run `lmdm secret init`");
    }
    app->ratelimit = lmdm_ratelimit_new(cfg->tenant_rate, cfg->tenant_burst);
    if (!app->ratelimit) return -1;
    char list[1024];
    snprintf(list, sizeof(list), "%s", cfg->trusted_proxies);
    for (char *save = NULL, *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        unsigned char buf[16];
        if (inet_pton(AF_INET, tok, buf) != 1 && inet_pton(AF_INET6, tok, buf) != 1) {
            lmdm_error("trusted_proxies: \"%s\" is not an IP address", tok);
            return -1;
        }
        if (app->ntrusted_proxies == LMDM_MAX_TRUSTED_PROXIES) {
            lmdm_error("trusted_proxies: more than %d addresses", LMDM_MAX_TRUSTED_PROXIES);
            return -1;
        }
        snprintf(app->trusted_proxies[app->ntrusted_proxies++], sizeof(app->trusted_proxies[0]), "%s", tok);
    }
    return 0;
}

static void free_app(lmdm_app_t *app)
{
    lmdm_ratelimit_free(app->ratelimit);
    if (app->secrets) lmdm_secrets_clear((lmdm_secrets_t *)app->secrets);
    lmdm_trust_free(app->trust);
    lmdm_ca_free(app->ca);
}

static const char serve_help[] =
    "usage: lmdm serve [--config FILE]\n"
    "\n"
    "Run the broker. Refuses to start if the database is not migrated.\n"
    "Signals: SIGTERM/SIGINT drain in-flight requests and exit; SIGHUP reloads the\n"
    "TLS certificate and key and log_level.\n";

static int cmd_serve(int argc, char **argv)
{
    opts_t o = {0};
    int rv = parse_opts(argc, argv, &o, serve_help);
    if (rv) return rv > 0 ? 0 : 2;
    lmdm_config_t cfg;
    if (load_config(&cfg, &o.config) != 0) return 1;
    if (setup_logging(&cfg) != 0) goto fail;

    long schema = 0;
    char err[1024];
    {
        lmdm_migrate_status_t st;
        PGconn *pg = lmdm_db_connect_blocking(cfg.database_url, err, sizeof(err));
        if (!pg) {
            lmdm_error("cannot connect to the database: %s", err);
            goto fail;
        }
        int mrv = lmdm_migrate_status(pg, cfg.migrations_dir, &st, err, sizeof(err));
        PQfinish(pg);
        if (mrv != 0) {
            lmdm_error("cannot check database migrations: %s", err);
            goto fail;
        }
        if (st.pending > 0 || st.changed > 0) {
            lmdm_error("the database is not migrated: %d pending and %d changed migration(s) "
                       "(database at %ld, this binary expects %ld); run `lmdm migrate%s%s` first",
                       st.pending, st.changed, st.latest_applied, st.latest_file,
                       o.config ? " --config " : "", o.config ? o.config : "");
            goto fail;
        }
        if (st.unknown > 0)
            lmdm_warn("the database has %d migration(s) newer than this binary knows (at %ld, expected %ld)",
                      st.unknown, st.latest_applied, st.latest_file);
        schema = st.latest_file;
    }

    if (!*cfg.listen_tls && !*cfg.listen_plain) {
        lmdm_error("no listener: set listen_tls and/or listen_plain");
        goto fail;
    }
    lmdm_app_t app = {.cfg = &cfg};
    if (build_app(&app, &cfg) != 0) goto fail;
    lmdm_router_t *router = lmdm_router_new();
    if (lmdm_ops_routes(router) != 0 || lmdm_mdm_routes(router, &cfg) != 0 ||
        lmdm_tenant_routes(router, &cfg) != 0 || lmdm_owner_routes(router, &cfg) != 0) {
        lmdm_error("route table overflow");
        lmdm_router_free(router);
        goto fail;
    }
    lmdm_server_t *srv = lmdm_server_new(&cfg, o.config, router, schema, err, sizeof(err));
    if (!srv) {
        lmdm_error("%s", err);
        lmdm_router_free(router);
        free_app(&app);
        goto fail;
    }
    lmdm_server_set_app(srv, &app);
    /* Worker 0 owns the one APNs connection and the push listener. */
    lmdm_worker_t *w0 = lmdm_server_worker(srv, 0);
    lmdm_push_t *push = NULL;
    if (strcmp(cfg.apns_auth, "off") != 0) {
        w0->apns = lmdm_apns_new(w0->base, &cfg, lmdm_push_apns_result, w0, err, sizeof(err));
        if (!w0->apns) {
            lmdm_error("APNs: %s", err);
            lmdm_server_free(srv);
            lmdm_router_free(router);
            free_app(&app);
            goto fail;
        }
        push = lmdm_push_new(w0, cfg.database_url);
    } else {
        lmdm_warn("apns_auth = off: queued commands wake no device (they are fetched at the next poll)");
    }
    for (int i = 0; lmdm_server_worker(srv, i); i++) {
        lmdm_server_worker(srv, i)->seen = lmdm_seen_new(lmdm_server_worker(srv, i), 10000);
        lmdm_server_worker(srv, i)->vcache = lmdm_verify_cache_new();
    }
    /* Webhooks: one deliverer thread with its own database connection. */
    lmdm_webhook_t *webhooks = NULL;
    if (app.secrets) {
        webhooks = lmdm_webhook_start(&cfg, app.secrets, err, sizeof(err));
        if (!webhooks) lmdm_error("webhooks: %s (events stay queued until a broker delivers them)", err);
    }
    lmdm_ledger_sealer_t *sealer = NULL;
    if (app.secrets) {
        sealer = lmdm_ledger_sealer_start(&cfg, app.secrets, err, sizeof(err));
        if (!sealer) lmdm_error("ledger: %s (entries stay unsealed until a broker seals them)", err);
    } else {
        lmdm_warn("no secret_key: the audit ledger is recorded but not sealed or signed");
    }
    lmdm_rules_applier_t *rules = lmdm_rules_applier_start(cfg.database_url, cfg.compliance_interval_s, err, sizeof(err));
    if (!rules) lmdm_error("%s (device-wide rules are not applied)", err);
    lmdm_osupdate_planner_t *osu = lmdm_osupdate_planner_start(&cfg, err, sizeof(err));
    if (!osu) lmdm_error("%s (OS updates are not planned)", err);
    rv = lmdm_server_run(srv);
    lmdm_osupdate_planner_stop(osu);
    lmdm_rules_applier_stop(rules);
    lmdm_ledger_sealer_stop(sealer);
    lmdm_webhook_stop(webhooks);
    for (int i = 0; lmdm_server_worker(srv, i); i++) {
        lmdm_seen_free(lmdm_server_worker(srv, i)->seen);
        lmdm_server_worker(srv, i)->seen = NULL;
        lmdm_verify_cache_free(lmdm_server_worker(srv, i)->vcache);
        lmdm_server_worker(srv, i)->vcache = NULL;
    }
    lmdm_push_free(push);
    lmdm_apns_free(w0->apns);
    w0->apns = NULL;
    lmdm_server_free(srv);
    lmdm_router_free(router);
    free_app(&app);
    lmdm_config_clear(&cfg);
    return rv == 0 ? 0 : 1;
fail:
    lmdm_config_clear(&cfg);
    return 1;
}

static const char migrate_help[] =
    "usage: lmdm migrate [--config FILE] [--database-url URL] [--dir DIR] [--status]\n"
    "\n"
    "Apply pending migrations (files NNNN_name.sql in migrations_dir), each once,\n"
    "in order, each in its own transaction. --status only reports.\n";

static int cmd_migrate(int argc, char **argv)
{
    opts_t o = {0};
    int rv = parse_opts(argc, argv, &o, migrate_help);
    if (rv) return rv > 0 ? 0 : 2;
    lmdm_config_t cfg;
    if (load_config(&cfg, &o.config) != 0) return 1;
    const char *url = o.database_url ? o.database_url : cfg.database_url;
    const char *dir = o.dir ? o.dir : cfg.migrations_dir;
    char err[1024];
    int code = 1;
    PGconn *pg = lmdm_db_connect_blocking(url, err, sizeof(err));
    if (!pg) {
        fprintf(stderr, "lmdm migrate: cannot connect to the database: %s\n", err);
        goto out;
    }
    if (o.status) {
        lmdm_migrate_status_t st;
        if (lmdm_migrate_status(pg, dir, &st, err, sizeof(err)) != 0) {
            fprintf(stderr, "lmdm migrate: %s\n", err);
            goto out;
        }
        printf("migrations in %s: %d file(s), %d applied, %d pending, %d changed, %d unknown; "
               "database at %ld, latest file %ld\n",
               dir, st.files, st.applied, st.pending, st.changed, st.unknown, st.latest_applied,
               st.latest_file);
        code = st.pending || st.changed ? 3 : 0;
        goto out;
    }
    int n = lmdm_migrate_apply(pg, dir, stdout, err, sizeof(err));
    if (n < 0) {
        fprintf(stderr, "lmdm migrate: %s\n", err);
        goto out;
    }
    printf("%d migration(s) applied\n", n);
    code = 0;
out:
    if (pg) PQfinish(pg);
    lmdm_config_clear(&cfg);
    return code;
}

static const char config_help[] =
    "usage: lmdm config --describe\n"
    "       lmdm config --check [--config FILE]\n"
    "\n"
    "--describe prints every setting with its type, default, bounds and whether\n"
    "SIGHUP reloads it. --check loads the file and reports the first error.\n";

static int cmd_config(int argc, char **argv)
{
    opts_t o = {0};
    int rv = parse_opts(argc, argv, &o, config_help);
    if (rv) return rv > 0 ? 0 : 2;
    if (o.describe) {
        lmdm_config_describe(stdout);
        return 0;
    }
    if (!o.check) {
        fputs(config_help, stderr);
        return 2;
    }
    lmdm_config_t cfg;
    if (load_config(&cfg, &o.config) != 0) return 1;
    printf("%s: ok\n", o.config ? o.config : "(defaults)");
    lmdm_config_clear(&cfg);
    return 0;
}

static const char ca_help[] =
    "usage: lmdm ca init [--config FILE] [--name NAME] [--days N]\n"
    "\n"
    "Create the broker CA at the paths of ca_cert and ca_key in the config: an EC\n"
    "P-256 key (mode 0600) and a self-signed certificate (default 3650 days). It\n"
    "issues device identities and signs enrollment profiles. Existing files are\n"
    "never overwritten.\n";

static int cmd_ca(int argc, char **argv)
{
    int help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    if (argc < 2 || strcmp(argv[1], "init") != 0) {
        fputs(ca_help, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    opts_t o = {0};
    int rv = parse_opts(argc - 1, argv + 1, &o, ca_help);
    if (rv) return rv > 0 ? 0 : 2;
    lmdm_config_t cfg;
    if (load_config(&cfg, &o.config) != 0) return 1;
    int code = 1;
    char err[512];
    if (!*cfg.ca_cert || !*cfg.ca_key) {
        fprintf(stderr, "lmdm ca init: set ca_cert and ca_key in the config first\n");
        goto out;
    }
    if (lmdm_ca_init_files(cfg.ca_cert, cfg.ca_key, o.name ? o.name : "lmdm broker CA", o.days > 0 ? o.days : 3650,
                           err, sizeof(err)) != 0) {
        fprintf(stderr, "lmdm ca init: %s\n", err);
        goto out;
    }
    printf("CA created: certificate %s, key %s\n", cfg.ca_cert, cfg.ca_key);
    code = 0;
out:
    lmdm_config_clear(&cfg);
    return code;
}

static const char command_help[] =
    "usage: lmdm command enqueue --device KEY [--user USERKEY] [--tenant N] FILE|-\n"
    "\n"
    "Queue an MDM command for a device, as the tenant API will: FILE is the Command\n"
    "dictionary (an XML plist with RequestType and its keys). The broker gives it a\n"
    "fresh CommandUUID (printed) and pushes the device. KEY is the UDID (or the\n"
    "EnrollmentID); USERKEY selects a user channel. Tenant 0 is the broker.\n"
    "This writes to the database directly: no policy applies. Operators and tests only.\n";

static int cmd_command(int argc, char **argv)
{
    int help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    if (argc < 2 || strcmp(argv[1], "enqueue") != 0) {
        fputs(command_help, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    opts_t o = {.allow_args = 1};
    int rv = parse_opts(argc - 1, argv + 1, &o, command_help);
    if (rv) return rv > 0 ? 0 : 2;
    const char *file = optind < argc - 1 ? argv[optind + 1] : NULL;
    if (!o.device || !file) {
        fputs(command_help, stderr);
        return 2;
    }
    lmdm_config_t cfg;
    if (load_config(&cfg, &o.config) != 0) return 1;
    int code = 1;
    PGconn *pg = NULL;
    lmdm_buf_t in = {0}, out = {0};
    lmdm_arena_t *arena = lmdm_arena_new(0);
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
    if (!f) {
        perror(file);
        goto out;
    }
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && in.len < 8 * 1024 * 1024) lmdm_buf_append(&in, chunk, n);
    if (f != stdin) fclose(f);
    unsigned char r[16];
    char uuid[37];
    RAND_bytes(r, sizeof(r));
    r[6] = (r[6] & 0x0f) | 0x40; /* version 4 */
    r[8] = (r[8] & 0x3f) | 0x80;
    snprintf(uuid, sizeof(uuid), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
    char err[512];
    const char *rt = NULL;
    if (lmdm_command_wrap(in.data ? in.data : "", in.len, uuid, arena, &out, &rt, err, sizeof(err)) != 0) {
        fprintf(stderr, "lmdm command enqueue: %s: %s\n", file, err);
        goto out;
    }
    pg = lmdm_db_connect_blocking(cfg.database_url, err, sizeof(err));
    if (!pg) {
        fprintf(stderr, "lmdm command enqueue: cannot connect to the database: %s\n", err);
        goto out;
    }
    char tenant[24];
    snprintf(tenant, sizeof(tenant), "%ld", o.tenant);
    const char *params[] = {o.device, o.user ? o.user : "", tenant, uuid, rt, out.data, NULL};
    PGresult *res = PQexecParams(pg, "SELECT mdm_enqueue($1, $2, $3, $4::uuid, $5, $6, $7)", 7, NULL, params, NULL,
                                 NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "lmdm command enqueue: %s", PQresultErrorMessage(res));
        PQclear(res);
        goto out;
    }
    PQclear(res);
    printf("%s %s\n", uuid, rt);
    code = 0;
out:
    if (pg) PQfinish(pg);
    lmdm_buf_free(&in);
    lmdm_buf_free(&out);
    lmdm_arena_free(arena);
    lmdm_config_clear(&cfg);
    return code;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "migrate") == 0) return cmd_migrate(argc - 1, argv + 1);
    if (strcmp(cmd, "config") == 0) return cmd_config(argc - 1, argv + 1);
    if (strcmp(cmd, "ca") == 0) return cmd_ca(argc - 1, argv + 1);
    if (strcmp(cmd, "command") == 0) return cmd_command(argc - 1, argv + 1);
    if (strcmp(cmd, "tenant") == 0) return lmdm_cli_tenant(argc - 1, argv + 1);
    if (strcmp(cmd, "key") == 0) return lmdm_cli_key(argc - 1, argv + 1);
    if (strcmp(cmd, "secret") == 0) return lmdm_cli_secret(argc - 1, argv + 1);
    if (strcmp(cmd, "policy") == 0) return lmdm_cli_policy(argc - 1, argv + 1);
    if (strcmp(cmd, "audit") == 0) return lmdm_cli_audit(argc - 1, argv + 1);
    if (strcmp(cmd, "releases") == 0) return lmdm_cli_releases(argc - 1, argv + 1);
    if (strcmp(cmd, "ring") == 0) return lmdm_cli_ring(argc - 1, argv + 1);
    if (strcmp(cmd, "osupdate") == 0) return lmdm_cli_osupdate(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("lmdm %s\n", LMDM_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "lmdm: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
