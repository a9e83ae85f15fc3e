/* lmdm: the command line. Each subcommand is a small function; the work lives
 * in the libraries. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmdm/config.h"
#include "lmdm/db.h"
#include "lmdm/log.h"
#include "lmdm/migrate.h"
#include "lmdm/ops.h"
#include "lmdm/router.h"
#include "lmdm/server.h"

#define DEFAULT_CONFIG "/etc/lmdm/lmdm.conf"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lmdm <command> [options]\n"
            "\n"
            "commands:\n"
            "  serve     run the broker (HTTP/1.1 and HTTP/2, TLS and plaintext listeners)\n"
            "  migrate   apply pending database migrations (or show their status)\n"
            "  config    check a config file or describe every setting\n"
            "  version   print the version\n"
            "  help      this text\n"
            "\n"
            "Every command takes --help. The config file defaults to $LMDM_CONFIG, then %s;\n"
            "LMDM_DATABASE_URL overrides database_url.\n",
            DEFAULT_CONFIG);
}

/* Load the config named by --config, $LMDM_CONFIG or the default path. A
 * missing default file means "all defaults"; a named file must exist. */
static int load_config(lmdm_config_t *cfg, const char **path)
{
    char err[1024];
    lmdm_config_defaults(cfg);
    int explicit_path = *path != NULL;
    if (!*path) *path = getenv("LMDM_CONFIG");
    if (*path) explicit_path = 1;
    else *path = DEFAULT_CONFIG;
    if (!explicit_path && access(*path, F_OK) != 0) {
        *path = NULL;
        lmdm_config_apply_env(cfg);
        return 0;
    }
    if (lmdm_config_load(cfg, *path, err, sizeof(err)) != 0) {
        fprintf(stderr, "lmdm: %s\n", err);
        return -1;
    }
    return 0;
}

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
} opts_t;

static int parse_opts(int argc, char **argv, opts_t *o, const char *help)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"database-url", required_argument, NULL, 'd'},
        {"dir", required_argument, NULL, 'D'},    {"status", no_argument, NULL, 's'},
        {"describe", no_argument, NULL, 'x'},     {"check", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
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
        case 'h': fputs(help, stdout); return 1;
        default: fputs(help, stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lmdm: unexpected argument '%s'\n%s", argv[optind], help);
        return -1;
    }
    return 0;
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
    lmdm_router_t *router = lmdm_router_new();
    if (lmdm_ops_routes(router) != 0) {
        lmdm_error("route table overflow");
        lmdm_router_free(router);
        goto fail;
    }
    lmdm_server_t *srv = lmdm_server_new(&cfg, o.config, router, schema, err, sizeof(err));
    if (!srv) {
        lmdm_error("%s", err);
        lmdm_router_free(router);
        goto fail;
    }
    rv = lmdm_server_run(srv);
    lmdm_server_free(srv);
    lmdm_router_free(router);
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
