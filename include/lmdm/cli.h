/* The `lmdm` command line: subcommands that live outside main.c. */
#ifndef LMDM_CLI_H
#define LMDM_CLI_H

#include "lmdm/config.h"
#include "lmdm/secrets.h"

#define LMDM_DEFAULT_CONFIG "/etc/lmdm/lmdm.conf"

/** Load the config named by *path, else $LMDM_CONFIG, else the default path
 * (a missing default file means all defaults). Prints the error. */
int lmdm_cli_load_config(lmdm_config_t *cfg, const char **path);

/** What an operator command needs: the config, a database connection and the
 * broker's secrets, as asked. */
typedef struct lmdm_cli_env {
    lmdm_config_t cfg;
    struct pg_conn *pg;       /* NULL unless LMDM_CLI_DB */
    lmdm_secrets_t sec;       /* zero unless LMDM_CLI_SECRETS */
} lmdm_cli_env_t;

#define LMDM_CLI_DB 1
#define LMDM_CLI_SECRETS 2

/** Load the config (--config, $LMDM_CONFIG, default), then the secrets and
 * the database connection when `needs` says so. Errors are printed as
 * "lmdm <who>: ..."; on failure everything is released. 0 or -1. */
int lmdm_cli_env_open(lmdm_cli_env_t *env, const char *config, int needs, const char *who);
void lmdm_cli_env_close(lmdm_cli_env_t *env);

/** --tenant's argument: a positive id into *out, or -1 with a message
 * ("lmdm <who>: ...", who may be NULL). */
int lmdm_cli_tenant_id(const char *arg, const char *who, long long *out);

/* Each takes argv from its own name on ("tenant", "add", ...) and returns the
 * process exit status (0 ok, 1 failure, 2 usage). */
int lmdm_cli_secret(int argc, char **argv);
int lmdm_cli_tenant(int argc, char **argv);
int lmdm_cli_key(int argc, char **argv);
int lmdm_cli_policy(int argc, char **argv);
int lmdm_cli_policy_merge(int argc, char **argv); /* `lmdm policy merge`: argv from "merge" on */
int lmdm_cli_audit(int argc, char **argv);
int lmdm_cli_releases(int argc, char **argv);
int lmdm_cli_ring(int argc, char **argv);
int lmdm_cli_osupdate(int argc, char **argv);

#endif
