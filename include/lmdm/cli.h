/* The `lmdm` command line: subcommands that live outside main.c. */
#ifndef LMDM_CLI_H
#define LMDM_CLI_H

#include "lmdm/config.h"

#define LMDM_DEFAULT_CONFIG "/etc/lmdm/lmdm.conf"

/** Load the config named by *path, else $LMDM_CONFIG, else the default path
 * (a missing default file means all defaults). Prints the error. */
int lmdm_cli_load_config(lmdm_config_t *cfg, const char **path);

/* Each takes argv from its own name on ("tenant", "add", ...) and returns the
 * process exit status (0 ok, 1 failure, 2 usage). */
int lmdm_cli_secret(int argc, char **argv);
int lmdm_cli_tenant(int argc, char **argv);
int lmdm_cli_key(int argc, char **argv);
int lmdm_cli_policy(int argc, char **argv);
int lmdm_cli_policy_merge(int argc, char **argv); /* `lmdm policy merge`: argv from "merge" on */
int lmdm_cli_audit(int argc, char **argv);

#endif
