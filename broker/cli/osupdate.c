/* `lmdm releases`, `lmdm ring` and `lmdm osupdate`: the operator's side of
 * OS updates (docs/osupdate.md). */
#include <getopt.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmdm/buf.h"
#include "lmdm/cli.h"
#include "lmdm/osupdate_apply.h"
#include "lmdm/release_feed.h"

typedef struct {
    const char *config, *source, *platform;
    int delay; /* -1: not given */
    int is_default, json, help;
} osu_opts_t;

static int parse_opts(int argc, char **argv, osu_opts_t *o, const char *help)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},     {"source", required_argument, NULL, 's'},
        {"platform", required_argument, NULL, 'p'},   {"delay-days", required_argument, NULL, 'd'},
        {"default", no_argument, NULL, 'D'},          {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->delay = -1;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 's': o->source = optarg; break;
        case 'p': o->platform = optarg; break;
        case 'd': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end || v < 0 || v > 365) {
                fprintf(stderr, "--delay-days: a number of days from 0 to 365\n");
                return -1;
            }
            o->delay = (int)v;
            break;
        }
        case 'D': o->is_default = 1; break;
        case 'j': o->json = 1; break;
        case 'h': fputs(help, stdout); return 1;
        default: fputs(help, stderr); return -1;
        }
    }
    return 0;
}

static PGresult *exec(lmdm_cli_env_t *env, const char *who, const char *sql, int n, const char *const *v)
{
    PGresult *r = PQexecParams(env->pg, sql, n, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "lmdm %s: %s", who, PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

static int read_all(const char *path, lmdm_buf_t *out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (out->len + n > LMDM_FEED_MAX_BYTES) {
            fprintf(stderr, "%s: larger than %u MiB\n", path, LMDM_FEED_MAX_BYTES >> 20);
            if (f != stdin) fclose(f);
            return -1;
        }
        lmdm_buf_append(out, chunk, n);
    }
    int bad = ferror(f);
    if (f != stdin) fclose(f);
    if (bad) perror(path);
    return bad ? -1 : 0;
}

/* ---- lmdm releases ---- */

static const char releases_help[] =
    "usage: lmdm releases import FILE|- [--source NAME] [--config FILE]\n"
    "       lmdm releases list [--platform iOS|macOS] [--json] [--config FILE]\n"
    "\n"
    "import  read an OS release feed (the broker's JSON, or SOFA v1/v2 for iOS or\n"
    "        macOS: docs/osupdate.md) and add or update its releases, all or\n"
    "        nothing: a feed with one bad entry is refused whole, naming it, and\n"
    "        the releases already imported stay. Devices are planned anew.\n"
    "list    the releases known: platform, version, build, release date,\n"
    "        security, how many device models (0: all); --json in the broker's\n"
    "        feed format (re-importable).\n";

static int releases_import(lmdm_cli_env_t *env, const char *path, const char *source)
{
    lmdm_buf_t in = {0};
    int code = 1;
    if (read_all(path, &in) != 0) goto out;
    lmdm_feed_t feed;
    char err[512];
    if (lmdm_feed_parse((const char *)in.data, in.len, &feed, err, sizeof err) != 0) {
        fprintf(stderr, "lmdm releases import: %s: refused, nothing imported: %s\n", path, err);
        goto out;
    }
    char *json = lmdm_osupdate_feed_json(&feed);
    const char *v[] = {source ? source : path, feed.format, json};
    PGresult *r = exec(env, "releases import",
                       "SELECT releases, added, changed FROM os_releases_import($1, $2, $3::jsonb)", 3, v);
    if (r) {
        printf("%s (%s): %s releases, %s new, %s changed", path, feed.format, PQgetvalue(r, 0, 0),
               PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
        if (feed.skipped) printf(", %zu entries skipped (not an iOS or macOS OS release)", feed.skipped);
        printf("\n");
        PQclear(r);
        code = 0;
    }
    free(json);
    lmdm_feed_free(&feed);
out:
    lmdm_buf_free(&in);
    return code;
}

static int releases_list(lmdm_cli_env_t *env, const osu_opts_t *o)
{
    const char *v[] = {o->platform};
    PGresult *r;
    if (o->json) {
        r = exec(env, "releases list",
                 "SELECT jsonb_pretty(jsonb_build_object('releases', coalesce(jsonb_agg(jsonb_build_object("
                 "'platform', platform, 'version', version, 'build', build, 'released', released, 'security', "
                 "security, 'devices', to_jsonb(devices)) ORDER BY platform, string_to_array(version, '.')::int[]), "
                 "'[]'))) FROM os_releases WHERE $1::text IS NULL OR platform = $1",
                 1, v);
        if (!r) return 1;
        printf("%s\n", PQgetvalue(r, 0, 0));
        PQclear(r);
        return 0;
    }
    r = exec(env, "releases list",
             "SELECT platform, version, build, released, CASE WHEN security THEN 'yes' ELSE 'no' END, "
             "cardinality(devices) FROM os_releases WHERE $1::text IS NULL OR platform = $1 "
             "ORDER BY platform, string_to_array(version, '.')::int[]",
             1, v);
    if (!r) return 1;
    printf("%-8s %-10s %-10s %-11s %-9s %s\n", "PLATFORM", "VERSION", "BUILD", "RELEASED", "SECURITY", "MODELS");
    for (int i = 0; i < PQntuples(r); i++)
        printf("%-8s %-10s %-10s %-11s %-9s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
               PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5));
    PQclear(r);
    return 0;
}

int lmdm_cli_releases(int argc, char **argv)
{
    const char *verb = argc >= 2 ? argv[1] : "";
    int help = strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0;
    if (strcmp(verb, "import") != 0 && strcmp(verb, "list") != 0) {
        fputs(releases_help, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    osu_opts_t o;
    int rv = parse_opts(argc - 1, argv + 1, &o, releases_help);
    if (rv) return rv > 0 ? 0 : 2;
    const char *arg = optind < argc - 1 ? argv[optind + 1] : NULL;
    int is_import = strcmp(verb, "import") == 0;
    if ((is_import && !arg) || (!is_import && arg) ||
        (o.platform && strcmp(o.platform, "iOS") != 0 && strcmp(o.platform, "macOS") != 0)) {
        fputs(releases_help, stderr);
        return 2;
    }
    lmdm_cli_env_t env;
    if (lmdm_cli_env_open(&env, o.config, LMDM_CLI_DB, "releases") != 0) return 1;
    int code = is_import ? releases_import(&env, arg, o.source) : releases_list(&env, &o);
    lmdm_cli_env_close(&env);
    return code;
}

/* ---- lmdm ring ---- */

static const char ring_help[] =
    "usage: lmdm ring add NAME --delay-days N [--default] [--config FILE]\n"
    "       lmdm ring set NAME [--delay-days N] [--default] [--config FILE]\n"
    "       lmdm ring remove NAME [--config FILE]\n"
    "       lmdm ring list [--config FILE]\n"
    "\n"
    "A ring is how many days after a release its devices start updating (e.g. it 0,\n"
    "pilot 3, broad 7, late 14). A device's owner picks its ring among those every\n"
    "tenant of the device allows; without a choice the device is in the --default\n"
    "ring (else the latest ring allowed). Names: lower case, digits, - and _.\n"
    "Every change re-plans the devices.\n";

int lmdm_cli_ring(int argc, char **argv)
{
    const char *verb = argc >= 2 ? argv[1] : "";
    int help = strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0;
    int add = strcmp(verb, "add") == 0, set = strcmp(verb, "set") == 0, rm = strcmp(verb, "remove") == 0,
        list = strcmp(verb, "list") == 0;
    if (!add && !set && !rm && !list) {
        fputs(ring_help, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    osu_opts_t o;
    int rv = parse_opts(argc - 1, argv + 1, &o, ring_help);
    if (rv) return rv > 0 ? 0 : 2;
    const char *name = optind < argc - 1 ? argv[optind + 1] : NULL;
    if ((list && name) || (!list && !name) || (add && o.delay < 0) || (set && o.delay < 0 && !o.is_default)) {
        fputs(ring_help, stderr);
        return 2;
    }
    lmdm_cli_env_t env;
    if (lmdm_cli_env_open(&env, o.config, LMDM_CLI_DB, "ring") != 0) return 1;
    int code = 1;
    PGresult *r = NULL;
    char delay[16];
    snprintf(delay, sizeof delay, "%d", o.delay);
    const char *v[] = {name, o.delay >= 0 ? delay : NULL, o.is_default ? "t" : "f"};
    if (list) {
        r = exec(&env, "ring list",
                 "SELECT r.name, r.delay_days, CASE WHEN r.is_default THEN 'yes' ELSE '' END, "
                 "(SELECT count(*) FROM device_osupdate o WHERE o.ring = r.name) FROM rings r ORDER BY 2, 1",
                 0, NULL);
        if (!r) goto out;
        printf("%-20s %-10s %-8s %s\n", "NAME", "DELAY", "DEFAULT", "CHOSEN BY");
        for (int i = 0; i < PQntuples(r); i++)
            printf("%-20s %-10s %-8s %s device(s)\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                   PQgetvalue(r, i, 3));
        code = 0;
        goto out;
    }
    if (!rm && o.is_default) {
        PGresult *x = exec(&env, "ring", "UPDATE rings SET is_default = false WHERE is_default AND name <> $1", 1, v);
        if (!x) goto out;
        PQclear(x);
    }
    if (add) {
        r = exec(&env, "ring add",
                 "INSERT INTO rings (name, delay_days, is_default) VALUES ($1, $2::integer, $3::boolean) "
                 "ON CONFLICT (name) DO NOTHING RETURNING name",
                 3, v);
    } else if (set) {
        r = exec(&env, "ring set",
                 "UPDATE rings SET delay_days = coalesce($2::integer, delay_days), "
                 "is_default = is_default OR $3::boolean WHERE name = $1 RETURNING name",
                 3, v);
    } else {
        r = exec(&env, "ring remove", "DELETE FROM rings WHERE name = $1 RETURNING name", 1, v);
    }
    if (!r) goto out;
    if (PQntuples(r) == 0) {
        fprintf(stderr, add ? "lmdm ring add: a ring '%s' exists already\n" : "lmdm ring %s: no ring '%s'\n",
                add ? name : verb, name);
        goto out;
    }
    printf("ring %s %s\n", name, add ? "added" : set ? "changed" : "removed");
    code = 0;
out:
    PQclear(r);
    lmdm_cli_env_close(&env);
    return code;
}

/* ---- lmdm osupdate ---- */

static const char osupdate_help[] =
    "usage: lmdm osupdate list [--json] [--config FILE]\n"
    "       lmdm osupdate supervised DEVICE yes|no [--config FILE]\n"
    "\n"
    "list  every enrolled device's OS-update plan: device id, current version,\n"
    "      state, target, install time and deadline (local to the device's zone),\n"
    "      how it is enforced; --json prints each plan whole, with provenance.\n";

int lmdm_cli_osupdate(int argc, char **argv)
{
    const char *verb = argc >= 2 ? argv[1] : "";
    int help = strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0;
    int sup = strcmp(verb, "supervised") == 0;
    if (strcmp(verb, "list") != 0 && !sup) {
        fputs(osupdate_help, help ? stdout : stderr);
        return help ? 0 : 2;
    }
    osu_opts_t o;
    int rv = parse_opts(argc - 1, argv + 1, &o, osupdate_help);
    if (rv) return rv > 0 ? 0 : 2;
    int nargs = argc - 1 - optind;
    const char *dev = nargs >= 1 ? argv[optind + 1] : NULL, *yn = nargs >= 2 ? argv[optind + 2] : NULL;
    if ((!sup && nargs != 0) ||
        (sup && (nargs != 2 || (strcmp(yn, "yes") != 0 && strcmp(yn, "no") != 0) || strspn(dev, "0123456789") != strlen(dev)))) {
        fputs(osupdate_help, stderr);
        return 2;
    }
    lmdm_cli_env_t env;
    if (lmdm_cli_env_open(&env, o.config, LMDM_CLI_DB, "osupdate") != 0) return 1;
    if (sup) {
        const char *v[] = {dev, strcmp(yn, "yes") == 0 ? "true" : "false"};
        PGresult *x = exec(&env, "osupdate supervised",
                           "UPDATE devices SET info = info || jsonb_build_object('IsSupervised', $2::boolean) "
                           "WHERE id = $1::bigint RETURNING id",
                           2, v);
        int ok = x && PQntuples(x) == 1;
        if (x && !ok) fprintf(stderr, "lmdm osupdate supervised: no device %s\n", dev);
        if (ok) printf("device %s: supervised %s\n", dev, yn);
        PQclear(x);
        lmdm_cli_env_close(&env);
        return ok ? 0 : 1;
    }
    PGresult *r = exec(&env, "osupdate list",
                       "SELECT d.id, coalesce(p.plan ->> 'current_version', d.info ->> 'OSVersion', '?'), "
                       "coalesce(p.state, 'none'), coalesce(p.plan ->> 'target', '-'), "
                       "coalesce(p.plan ->> 'install_local', '-'), coalesce(p.plan ->> 'deadline_local', '-'), "
                       "coalesce(p.plan ->> 'mechanism', '-'), coalesce(p.plan::text, '{}') "
                       "FROM devices d LEFT JOIN device_osupdate p ON p.device_id = d.id "
                       "WHERE d.state = 'enrolled' ORDER BY d.id",
                       0, NULL);
    int code = 1;
    if (r) {
        if (!o.json)
            printf("%-8s %-9s %-11s %-9s %-20s %-20s %s\n", "DEVICE", "VERSION", "STATE", "TARGET", "INSTALL",
                   "DEADLINE", "ENFORCED BY");
        for (int i = 0; i < PQntuples(r); i++) {
            if (o.json)
                printf("{\"device\": %s, \"plan\": %s}\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 7));
            else
                printf("%-8s %-9s %-11s %-9s %-20s %-20s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                       PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5),
                       PQgetvalue(r, i, 6));
        }
        PQclear(r);
        code = 0;
    }
    lmdm_cli_env_close(&env);
    return code;
}
