/* lmdm policy table | decide: the decision table for auditors, and one
 * decision without a database (see lmdm/policy_json.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/buf.h"
#include "lmdm/cli.h"
#include "lmdm/policy_json.h"

static const char policy_help[] =
    "usage: lmdm policy table\n"
    "       lmdm policy decide [--entities OWNED.json] [--platform ios|macos] [--user-enrollment]\n"
    "                          [--wipe-as-retire] COMMAND\n"
    "       lmdm policy merge [--profile] [--platform ios|macos] RULES.json...\n"
    "\n"
    "table   every RequestType and profile PayloadType with the broker's decision\n"
    "        (allow, scope, merge, block), reason code, where Apple forbids it under\n"
    "        User Enrollment, and the rationale, as TSV.\n"
    "decide  the decision for one tenant command, as JSON, without a database.\n"
    "        COMMAND is a file (or - for stdin) holding Apple's command plist, or the\n"
    "        same fields as JSON when the name ends in .json. OWNED.json says what is\n"
    "        on the device: {\"apps\": [...], \"profiles\": [...], \"other_apps\": [...],\n"
    "        \"other_profiles\": [...]} (this tenant's, and other tenants').\n"
    "        --wipe-as-retire: the tenant's EraseDevice means retire (see `lmdm tenant set`).\n"
    "        Exit status: 0 allowed (allow, scope, merge), 3 blocked, 1 invalid input.\n"
    "merge   the device-wide rules of several tenants (one RULES.json each) merged to the\n"
    "        strictest, with which tenant drove each key (see lmdm policy merge --help).\n";

static int read_file(const char *path, lmdm_buf_t *out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (out->len + n > 16 * 1024 * 1024) {
            fprintf(stderr, "lmdm policy: %s: larger than 16 MiB\n", path);
            if (f != stdin) fclose(f);
            return -1;
        }
        lmdm_buf_append(out, chunk, n);
    }
    if (f != stdin) fclose(f);
    return 0;
}

static int decide(int argc, char **argv)
{
    static const struct option longopts[] = {{"entities", required_argument, NULL, 'e'},
                                             {"platform", required_argument, NULL, 'p'},
                                             {"user-enrollment", no_argument, NULL, 'u'},
                                             {"wipe-as-retire", no_argument, NULL, 'w'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *entities = NULL;
    lmdm_policy_device_t dev = {LMDM_PLATFORM_IOS, 0, 0};
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'e': entities = optarg; break;
        case 'p':
            if (strcmp(optarg, "ios") == 0) dev.platform = LMDM_PLATFORM_IOS;
            else if (strcmp(optarg, "macos") == 0) dev.platform = LMDM_PLATFORM_MACOS;
            else {
                fprintf(stderr, "lmdm policy decide: --platform is ios or macos\n");
                return 2;
            }
            break;
        case 'u': dev.user_enrollment = 1; break;
        case 'w': dev.wipe_as_retire = 1; break;
        case 'h': fputs(policy_help, stdout); return 0;
        default: fputs(policy_help, stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fputs(policy_help, stderr);
        return 2;
    }
    const char *file = argv[optind];
    lmdm_policy_entities_t ent = {0};
    json_t *ej = NULL;
    if (entities) {
        json_error_t jerr;
        ej = json_load_file(entities, JSON_REJECT_DUPLICATES, &jerr);
        if (!ej || lmdm_policy_entities_from_json(ej, &ent) != 0) {
            fprintf(stderr, "lmdm policy decide: %s: %s\n", entities,
                    ej ? "expected {\"apps\": [strings], \"profiles\": [...], ...}" : jerr.text);
            json_decref(ej);
            return 1;
        }
    }
    lmdm_buf_t body = {0};
    if (read_file(file, &body) != 0) {
        json_decref(ej);
        return 1;
    }
    size_t flen = strlen(file);
    const char *ct = flen > 5 && strcmp(file + flen - 5, ".json") == 0 ? "application/json" : "application/xml";
    json_t *d = lmdm_policy_decide_body(ct, body.data ? body.data : "", body.len, entities ? &ent : NULL, &dev);
    char *s = json_dumps(d, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", s ? s : "{}");
    const char *kind = json_string_value(json_object_get(d, "decision"));
    int code = !kind || strcmp(kind, "invalid") == 0 ? 1 : strcmp(kind, "block") == 0 ? 3 : 0;
    free(s);
    json_decref(d);
    lmdm_buf_free(&body);
    free((void *)ent.apps.v);
    free((void *)ent.profiles.v);
    free((void *)ent.other_apps.v);
    free((void *)ent.other_profiles.v);
    json_decref(ej);
    return code;
}

int lmdm_cli_policy(int argc, char **argv)
{
    const char *verb = argc >= 2 ? argv[1] : "";
    if (strcmp(verb, "table") == 0) {
        if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
            fputs(policy_help, stdout);
            return 0;
        }
        lmdm_policy_print_table(stdout);
        return 0;
    }
    if (strcmp(verb, "decide") == 0) return decide(argc - 1, argv + 1);
    if (strcmp(verb, "merge") == 0) return lmdm_cli_policy_merge(argc - 1, argv + 1);
    int help = strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0;
    fputs(policy_help, help ? stdout : stderr);
    return help ? 0 : 2;
}
