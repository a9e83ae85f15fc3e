/* `lmdm audit`: the audit ledger from the command line (docs/audit.md).
 *   lmdm audit verify EXPORT.jsonl --key PUBKEY   offline: no database, no config
 *   lmdm audit verify --db [--config FILE]         the live database
 *   lmdm audit export [--config FILE] [--tenant ID]
 *   lmdm audit key [--config FILE] [--id]
 * Verification prints the first failing entry and exits 1, or the counts and
 * exits 0. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmdm/cli.h"
#include "lmdm/db.h"
#include "lmdm/ledger.h"
#include "lmdm/secrets.h"

static const char audit_help[] =
    "usage: lmdm audit verify EXPORT.jsonl --key PUBKEY [--anchor POS:HASH]...\n"
    "       lmdm audit verify --db [--config FILE] [--key PUBKEY]\n"
    "       lmdm audit export [--config FILE] [--tenant ID]\n"
    "       lmdm audit key [--config FILE] [--id]\n"
    "\n"
    "verify  check the audit ledger's hash chain and every checkpoint signature,\n"
    "        from an export (offline: no database; EXPORT \"-\" reads stdin) or from\n"
    "        the live database (--db; the key defaults to the broker's own). Prints\n"
    "        the first entry that fails and exits 1, or the counts and exits 0.\n"
    "        --anchor POS:HASH also requires the chain to hold HASH at POS (a\n"
    "        checkpoint kept from an earlier export).\n"
    "export  write the ledger as JSON lines to stdout (--tenant: one tenant's\n"
    "        entries only, which verify entry by entry, not as a chain).\n"
    "key     print the public key that signs checkpoints (base64), or its key id.\n"
    "See docs/audit.md for the format and how to verify it independently.\n";

typedef struct {
    const char *config, *key;
    int db, id;
    long long tenant;
    struct {
        long long pos;
        unsigned char hash[LMDM_LEDGER_HASH_LEN];
    } anchors[16];
    int nanchors;
} audit_opts_t;

static int parse_anchor(audit_opts_t *o, const char *arg)
{
    char *end;
    long long pos = strtoll(arg, &end, 10);
    if (o->nanchors == (int)LMDM_ARRAY_LEN(o->anchors) || pos < 1 || *end != ':' ||
        lmdm_ledger_unhex(end + 1, strlen(end + 1), o->anchors[o->nanchors].hash) != 0)
        return -1;
    o->anchors[o->nanchors++].pos = pos;
    return 0;
}

/* Options after the verb; positional arguments stay at argv[optind..]. */
static int audit_opts(int argc, char **argv, audit_opts_t *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"key", required_argument, NULL, 'k'},
        {"db", no_argument, NULL, 'd'},           {"tenant", required_argument, NULL, 't'},
        {"id", no_argument, NULL, 'i'},           {"anchor", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->tenant = -1;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'k': o->key = optarg; break;
        case 'd': o->db = 1; break;
        case 'i': o->id = 1; break;
        case 't': {
            long long id;
            if (lmdm_cli_tenant_id(optarg, "audit", &id) != 0) return -1;
            o->tenant = id;
            break;
        }
        case 'a':
            if (parse_anchor(o, optarg) != 0) {
                fprintf(stderr, "lmdm audit: --anchor takes POS:HASH (a position and 64 hex digits; at most 16)\n");
                return -1;
            }
            break;
        case 'h': fputs(audit_help, stdout); return 1;
        default: fputs(audit_help, stderr); return -1;
        }
    }
    return 0;
}

static void progress(void *ctx, int64_t entries)
{
    (void)ctx;
    fprintf(stderr, "\r  %lld entries verified", (long long)entries);
    fflush(stderr);
}

static void print_report(const lmdm_ledger_report_t *r, int db)
{
    if (!r->ok) {
        char where[96] = "";
        size_t n = 0;
        if (r->pos >= 0) n += (size_t)snprintf(where + n, sizeof where - n, " at pos %lld", (long long)r->pos);
        if (r->seq >= 0) n += (size_t)snprintf(where + n, sizeof where - n, " (seq %lld)", (long long)r->seq);
        if (r->line > 0) snprintf(where + n, sizeof where - n, ", export line %ld", r->line);
        printf("ledger verification FAILED%s: %s\n", where, r->why);
        printf("verified before the failure: %lld entries, %lld checkpoints\n", (long long)r->entries,
               (long long)r->checkpoints);
        return;
    }
    if (r->partial) {
        printf("ok (tenant export): %lld entries' hashes recomputed, %lld checkpoint signatures verified; the links "
               "between entries need the full export (docs/audit.md)\n",
               (long long)r->entries, (long long)r->checkpoints);
        return;
    }
    printf("ok: %lld entries (pos 1..%lld) chained, %lld checkpoints verified", (long long)r->entries,
           (long long)r->last_pos, (long long)r->checkpoints);
    if (r->checkpoints) printf(" (last at pos %lld)", (long long)r->last_checkpoint_pos);
    printf("\n");
    if (r->unsigned_tail) printf("%lld entries after the last checkpoint are not signed yet\n", (long long)r->unsigned_tail);
    if (db && r->pending) printf("%lld entries are waiting for the sealer\n", (long long)r->pending);
}

static int cmd_verify(int argc, char **argv)
{
    audit_opts_t o;
    int rv = audit_opts(argc, argv, &o);
    if (rv) return rv > 0 ? 0 : 2;
    const char *file = optind < argc ? argv[optind] : NULL;
    if ((file != NULL) == o.db || optind + (file ? 1 : 0) < argc) {
        fprintf(stderr, "lmdm audit verify: give either an export file or --db\n%s", audit_help);
        return 2;
    }
    if (file && !o.key) {
        fprintf(stderr, "lmdm audit verify: an export needs --key (the broker's ledger key: `lmdm audit key`)\n");
        return 2;
    }
    unsigned char pk[32];
    if (o.key && lmdm_ledger_parse_key(o.key, pk) != 0) {
        fprintf(stderr, "lmdm audit verify: --key is not a base64 Ed25519 public key\n");
        return 2;
    }
    lmdm_cli_env_t env;
    memset(&env, 0, sizeof env);
    FILE *in = NULL;
    int code = 1;
    if (o.db) {
        if (lmdm_cli_env_open(&env, o.config, LMDM_CLI_DB | (o.key ? 0 : LMDM_CLI_SECRETS), "audit") != 0) goto out;
        if (!o.key) memcpy(pk, env.sec.ledger_pk, sizeof pk);
    } else {
        in = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
        if (!in) {
            fprintf(stderr, "lmdm audit verify: cannot open %s\n", file);
            goto out;
        }
    }
    lmdm_ledger_verify_t *v = lmdm_ledger_verify_new(pk);
    if (!v) goto out;
    for (int i = 0; i < o.nanchors; i++) lmdm_ledger_verify_anchor(v, o.anchors[i].pos, o.anchors[i].hash);
    int tty = isatty(STDERR_FILENO);
    char err[1024];
    int r = o.db ? lmdm_ledger_verify_db(v, env.pg, tty ? progress : NULL, NULL, err, sizeof err)
                 : lmdm_ledger_verify_file(v, in, tty ? progress : NULL, NULL);
    if (tty) fprintf(stderr, "\r\033[K");
    if (r < -1) {
        fprintf(stderr, "lmdm audit verify: %s\n", o.db ? err : "cannot read the export");
        lmdm_ledger_verify_free(v);
        goto out;
    }
    lmdm_ledger_report_t rep;
    code = lmdm_ledger_verify_finish(v, &rep) == 0 ? 0 : 1;
    lmdm_ledger_verify_free(v);
    print_report(&rep, o.db);
out:
    if (in && in != stdin) fclose(in);
    lmdm_cli_env_close(&env);
    return code;
}

static int cmd_export(int argc, char **argv)
{
    audit_opts_t o;
    int rv = audit_opts(argc, argv, &o);
    if (rv) return rv > 0 ? 0 : 2;
    if (optind < argc) {
        fprintf(stderr, "lmdm audit export: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    lmdm_cli_env_t env;
    if (lmdm_cli_env_open(&env, o.config, LMDM_CLI_DB, "audit") != 0) {
        lmdm_cli_env_close(&env);
        return 1;
    }
    char err[1024];
    int r = lmdm_ledger_export(env.pg, o.tenant, lmdm_ledger_sink_file, stdout, err, sizeof err);
    if (r == 0 && fflush(stdout) != 0) {
        r = LMDM_ERR_IO;
        snprintf(err, sizeof err, "cannot write the export");
    }
    if (r != 0) fprintf(stderr, "lmdm audit export: %s\n", err);
    lmdm_cli_env_close(&env);
    return r == 0 ? 0 : 1;
}

static int cmd_key(int argc, char **argv)
{
    audit_opts_t o;
    int rv = audit_opts(argc, argv, &o);
    if (rv) return rv > 0 ? 0 : 2;
    lmdm_cli_env_t env;
    if (lmdm_cli_env_open(&env, o.config, LMDM_CLI_SECRETS, "audit") != 0) {
        lmdm_cli_env_close(&env);
        return 1;
    }
    if (o.id) {
        char id[LMDM_LEDGER_KEY_ID_LEN + 1];
        lmdm_ledger_key_id(env.sec.ledger_pk, id);
        printf("%s\n", id);
    } else {
        char b64[45];
        lmdm_ledger_public_b64(&env.sec, b64);
        printf("%s\n", b64);
    }
    lmdm_cli_env_close(&env);
    return 0;
}

int lmdm_cli_audit(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        int help = argc >= 2;
        fputs(audit_help, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    if (strcmp(argv[1], "verify") == 0) return cmd_verify(argc - 1, argv + 1);
    if (strcmp(argv[1], "export") == 0) return cmd_export(argc - 1, argv + 1);
    if (strcmp(argv[1], "key") == 0) return cmd_key(argc - 1, argv + 1);
    fprintf(stderr, "lmdm audit: unknown command '%s'\n%s", argv[1], audit_help);
    return 2;
}
