/* Operator commands for tenants and their keys, and the master secret:
 *   lmdm secret init
 *   lmdm tenant add NAME | list | disable ID
 *   lmdm key issue --tenant ID|--global --role admin|auditor | list [--tenant ID] | revoke KEYID
 * They talk to the database directly (blocking libpq): run them as the
 * broker's user, with its config. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "lmdm/cli.h"
#include "lmdm/db.h"
#include "lmdm/secrets.h"

int lmdm_cli_load_config(lmdm_config_t *cfg, const char **path)
{
    char err[1024];
    lmdm_config_defaults(cfg);
    int explicit_path = *path != NULL;
    if (!*path) *path = getenv("LMDM_CONFIG");
    if (*path) explicit_path = 1;
    else *path = LMDM_DEFAULT_CONFIG;
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

typedef struct {
    const char *config;
    long tenant;
    int global;
    const char *role;
    const char *retire; /* "on" | "off" */
    int help;
} admin_opts_t;

/* Options after the verb; positional arguments stay at argv[optind..]. */
static int admin_opts(int argc, char **argv, admin_opts_t *o, const char *help)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"tenant", required_argument, NULL, 't'},
        {"global", no_argument, NULL, 'g'},       {"role", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},         {"wipe-as-retire", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->tenant = -1;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 't': {
            long long id;
            if (lmdm_cli_tenant_id(optarg, NULL, &id) != 0) return -1;
            o->tenant = (long)id;
            break;
        }
        case 'g': o->global = 1; break;
        case 'r': o->role = optarg; break;
        case 'w': o->retire = optarg; break;
        case 'h': fputs(help, stdout); return 1;
        default: fputs(help, stderr); return -1;
        }
    }
    return 0;
}

int lmdm_cli_tenant_id(const char *arg, const char *who, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (!*arg || *end || errno || v <= 0) {
        fprintf(stderr, "lmdm%s%s: --tenant must be a tenant id (a positive number), not \"%.40s\"\n", who ? " " : "",
                who ? who : "", arg);
        return -1;
    }
    *out = v;
    return 0;
}

int lmdm_cli_env_open(lmdm_cli_env_t *env, const char *config, int needs, const char *who)
{
    char err[1024];
    memset(env, 0, sizeof(*env));
    if (lmdm_cli_load_config(&env->cfg, &config) != 0) return -1;
    if (needs & LMDM_CLI_SECRETS) {
        if (!*env->cfg.secret_key) {
            fprintf(stderr, "lmdm %s: secret_key is not set in the config (create one with `lmdm secret init`)\n",
                    who);
            lmdm_cli_env_close(env);
            return -1;
        }
        if (lmdm_secrets_load(env->cfg.secret_key, &env->sec, err, sizeof(err)) != 0) {
            fprintf(stderr, "lmdm %s: %s\n", who, err);
            lmdm_cli_env_close(env);
            return -1;
        }
    }
    if (needs & LMDM_CLI_DB) {
        env->pg = lmdm_db_connect_blocking(env->cfg.database_url, err, sizeof(err));
        if (!env->pg) {
            fprintf(stderr, "lmdm %s: cannot connect to the database: %s\n", who, err);
            lmdm_cli_env_close(env);
            return -1;
        }
    }
    return 0;
}

void lmdm_cli_env_close(lmdm_cli_env_t *env)
{
    if (env->pg) PQfinish(env->pg);
    env->pg = NULL;
    lmdm_secrets_clear(&env->sec);
    lmdm_config_clear(&env->cfg);
}

/* Run a statement; on error print it and return NULL. */
static PGresult *admin_exec(lmdm_cli_env_t *env, const char *who, const char *sql, int n, const char *const *vals)
{
    PGresult *res = PQexecParams(env->pg, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        fprintf(stderr, "lmdm %s: %s", who, PQresultErrorMessage(res));
        PQclear(res);
        return NULL;
    }
    return res;
}

/* ---- lmdm secret ---- */

static const char secret_help[] =
    "usage: lmdm secret init [--config FILE]\n"
    "\n"
    "Create the broker's 32-byte master secret at the path of secret_key in the\n"
    "config (mode 0600). API key and owner token hashes, the pseudonymous ids\n"
    "tenants see and the webhook signing key are derived from it: back it up with\n"
    "the database. An existing file is never overwritten.\n";

int lmdm_cli_secret(int argc, char **argv)
{
    admin_opts_t o;
    if (argc < 2 || strcmp(argv[1], "init") != 0) {
        int help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
        fputs(secret_help, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    int rv = admin_opts(argc - 1, argv + 1, &o, secret_help);
    if (rv) return rv > 0 ? 0 : 2;
    lmdm_config_t cfg;
    const char *config = o.config;
    if (lmdm_cli_load_config(&cfg, &config) != 0) return 1;
    char err[1024];
    int code = 1;
    if (!*cfg.secret_key) fprintf(stderr, "lmdm secret init: set secret_key in the config first\n");
    else if (lmdm_secrets_init_file(cfg.secret_key, err, sizeof(err)) != 0)
        fprintf(stderr, "lmdm secret init: %s\n", err);
    else {
        printf("master secret created: %s\n", cfg.secret_key);
        code = 0;
    }
    lmdm_config_clear(&cfg);
    return code;
}

/* ---- lmdm tenant ---- */

static const char tenant_help[] =
    "usage: lmdm tenant add NAME [--config FILE]\n"
    "       lmdm tenant list [--config FILE]\n"
    "       lmdm tenant disable ID [--config FILE]\n"
    "       lmdm tenant set ID --wipe-as-retire on|off [--config FILE]\n"
    "\n"
    "add      register an organization; prints its id. Issue it a key with\n"
    "         `lmdm key issue --tenant ID --role admin`.\n"
    "list     every tenant: id, state, active enrollments, name\n"
    "disable  the tenant's keys stop working (401) and its invitations can no\n"
    "         longer be accepted; its enrollments and their history stay.\n"
    "set      --wipe-as-retire on: the tenant's EraseDevice no longer gets refused\n"
    "         but means \"retire\": its own apps and profiles are removed and it\n"
    "         leaves the device. Nothing else is ever erased. Default off.\n";

int lmdm_cli_tenant(int argc, char **argv)
{
    const char *verb = argc >= 2 ? argv[1] : "";
    int help = strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0;
    if (strcmp(verb, "add") != 0 && strcmp(verb, "list") != 0 && strcmp(verb, "disable") != 0 &&
        strcmp(verb, "set") != 0) {
        fputs(tenant_help, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    admin_opts_t o;
    int rv = admin_opts(argc - 1, argv + 1, &o, tenant_help);
    if (rv) return rv > 0 ? 0 : 2;
    const char *arg = optind < argc - 1 ? argv[optind + 1] : NULL;
    if ((strcmp(verb, "list") != 0 && !arg) || (strcmp(verb, "list") == 0 && arg) ||
        (strcmp(verb, "set") == 0 && (!o.retire || (strcmp(o.retire, "on") != 0 && strcmp(o.retire, "off") != 0)))) {
        fputs(tenant_help, stderr);
        return 2;
    }
    lmdm_cli_env_t env;
    if (lmdm_cli_env_open(&env, o.config, LMDM_CLI_DB, "tenant") != 0) return 1;
    int code = 1;
    PGresult *res = NULL;
    if (strcmp(verb, "add") == 0) {
        size_t n = strlen(arg);
        if (n == 0 || n > 200) {
            fprintf(stderr, "lmdm tenant add: NAME must be 1..200 characters\n");
            goto out;
        }
        const char *v[] = {arg};
        res = admin_exec(&env, "tenant add", "INSERT INTO tenants (name) VALUES ($1) RETURNING id", 1, v);
        if (!res) goto out;
        printf("%s\n", PQgetvalue(res, 0, 0));
        code = 0;
    } else if (strcmp(verb, "list") == 0) {
        res = admin_exec(&env, "tenant list",
                         "SELECT t.id, t.state, (SELECT count(*) FROM enrollments e WHERE e.tenant_id = t.id "
                         "AND e.state = 'active'), t.name FROM tenants t ORDER BY t.id",
                         0, NULL);
        if (!res) goto out;
        printf("%-6s %-9s %-12s %s\n", "ID", "STATE", "ENROLLMENTS", "NAME");
        for (int i = 0; i < PQntuples(res); i++)
            printf("%-6s %-9s %-12s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                   PQgetvalue(res, i, 3));
        code = 0;
    } else if (strcmp(verb, "set") == 0) {
        const char *v[] = {arg, strcmp(o.retire, "on") == 0 ? "true" : "false"};
        res = admin_exec(&env, "tenant set", "UPDATE tenants SET wipe_as_retire = $2::boolean WHERE id::text = $1 RETURNING id",
                         2, v);
        if (!res) goto out;
        if (PQntuples(res) == 0) {
            fprintf(stderr, "lmdm tenant set: no tenant %s\n", arg);
            goto out;
        }
        printf("tenant %s: wipe-as-retire %s\n", arg, o.retire);
        code = 0;
    } else {
        const char *v[] = {arg};
        res = admin_exec(&env, "tenant disable",
                         "UPDATE tenants SET state = 'disabled', disabled_at = coalesce(disabled_at, now()) "
                         "WHERE id::text = $1 RETURNING id",
                         1, v);
        if (!res) goto out;
        if (PQntuples(res) == 0) {
            fprintf(stderr, "lmdm tenant disable: no tenant %s\n", arg);
            goto out;
        }
        printf("tenant %s disabled\n", arg);
        code = 0;
    }
out:
    PQclear(res);
    lmdm_cli_env_close(&env);
    return code;
}

/* ---- lmdm key ---- */

static const char key_help[] =
    "usage: lmdm key issue (--tenant ID | --global) --role admin|auditor [--config FILE]\n"
    "       lmdm key list [--tenant ID] [--config FILE]\n"
    "       lmdm key revoke KEYID [--config FILE]\n"
    "\n"
    "issue   print a new API key, once: only its keyed hash is stored. admin keys\n"
    "        use the tenant API; auditor keys read the audit ledger (a --global\n"
    "        auditor key reads every tenant's entries).\n"
    "list    key ids, tenants, roles and states (never the keys)\n"
    "revoke  the key stops working at once (401). KEYID is the part between\n"
    "        \"lmdm_\" and the second \"_\" of the key.\n";

static int key_issue(lmdm_cli_env_t *env, const admin_opts_t *o)
{
    if ((o->tenant > 0) == (o->global != 0) || !o->role ||
        (strcmp(o->role, "admin") != 0 && strcmp(o->role, "auditor") != 0)) {
        fputs(key_help, stderr);
        return 2;
    }
    if (o->global && strcmp(o->role, "auditor") != 0) {
        fprintf(stderr, "lmdm key issue: a --global key can only be an auditor key\n");
        return 2;
    }
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    char id[13], prefix[32], key[128], hash[65], tenant[24];
    for (int i = 0; i < 12; i++) id[i] = b32[randombytes_uniform(32)];
    id[12] = '\0';
    snprintf(prefix, sizeof(prefix), "lmdm_%s_", id);
    if (lmdm_secrets_new_token(prefix, key, sizeof(key)) != 0) return 1;
    lmdm_secrets_token_hash(&env->sec, "api-key", key, hash);
    snprintf(tenant, sizeof(tenant), "%ld", o->tenant);
    const char *v[] = {id, o->global ? NULL : tenant, o->role, hash};
    PGresult *res = admin_exec(env, "key issue",
                               "INSERT INTO api_keys (id, tenant_id, role, key_hash) "
                               "SELECT $1, $2::bigint, $3, $4 WHERE $2::bigint IS NULL OR EXISTS "
                               "(SELECT 1 FROM tenants WHERE id = $2::bigint AND state = 'active')",
                               4, v);
    if (!res) return 1;
    int ok = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    if (!ok) {
        fprintf(stderr, "lmdm key issue: no active tenant %ld\n", o->tenant);
        return 1;
    }
    printf("%s\n", key);
    if (isatty(STDOUT_FILENO))
        fprintf(stderr, "key id %s (%s%s%s): shown once, store it now\n", id, o->role,
                o->global ? ", global" : ", tenant ", o->global ? "" : tenant);
    return 0;
}

int lmdm_cli_key(int argc, char **argv)
{
    const char *verb = argc >= 2 ? argv[1] : "";
    int help = strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0;
    if (strcmp(verb, "issue") != 0 && strcmp(verb, "list") != 0 && strcmp(verb, "revoke") != 0) {
        fputs(key_help, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    admin_opts_t o;
    int rv = admin_opts(argc - 1, argv + 1, &o, key_help);
    if (rv) return rv > 0 ? 0 : 2;
    const char *arg = optind < argc - 1 ? argv[optind + 1] : NULL;
    if ((strcmp(verb, "revoke") == 0) != (arg != NULL)) {
        fputs(key_help, stderr);
        return 2;
    }
    lmdm_cli_env_t env;
    if (lmdm_cli_env_open(&env, o.config, LMDM_CLI_DB | (strcmp(verb, "issue") == 0 ? LMDM_CLI_SECRETS : 0), "key") != 0) return 1;
    int code = 1;
    PGresult *res = NULL;
    if (strcmp(verb, "issue") == 0) {
        code = key_issue(&env, &o);
    } else if (strcmp(verb, "list") == 0) {
        char tenant[24];
        snprintf(tenant, sizeof(tenant), "%ld", o.tenant);
        const char *v[] = {o.tenant > 0 ? tenant : NULL};
        res = admin_exec(&env, "key list",
                         "SELECT id, coalesce(tenant_id::text, 'global'), role, "
                         "CASE WHEN revoked_at IS NULL THEN 'active' ELSE 'revoked' END, lmdm_ts(created_at) "
                         "FROM api_keys WHERE $1::bigint IS NULL OR tenant_id = $1::bigint ORDER BY created_at",
                         1, v);
        if (!res) goto out;
        printf("%-13s %-7s %-8s %-8s %s\n", "KEYID", "TENANT", "ROLE", "STATE", "CREATED");
        for (int i = 0; i < PQntuples(res); i++)
            printf("%-13s %-7s %-8s %-8s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                   PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), PQgetvalue(res, i, 4));
        code = 0;
    } else {
        /* Accept the whole key as well as its id. */
        char id[13] = {0};
        const char *p = strncmp(arg, "lmdm_", 5) == 0 ? arg + 5 : arg;
        size_t n = strcspn(p, "_");
        if (n != 12) {
            fprintf(stderr, "lmdm key revoke: \"%.20s\" is not a key id\n", arg);
            goto out;
        }
        memcpy(id, p, 12);
        const char *v[] = {id};
        res = admin_exec(&env, "key revoke",
                         "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING id", 1,
                         v);
        if (!res) goto out;
        if (PQntuples(res) == 0) {
            fprintf(stderr, "lmdm key revoke: no key %s\n", id);
            goto out;
        }
        printf("key %s revoked\n", id);
        code = 0;
    }
out:
    PQclear(res);
    lmdm_cli_env_close(&env);
    return code;
}
