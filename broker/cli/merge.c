/* lmdm policy merge RULES.json...: several tenants' device-wide rules merged
 * to the strictest, printed with provenance (or as the broker's profile),
 * without a database (lmdm/rules.h, lmdm/rules_json.h, lmdm/rules_profile.h). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/cli.h"
#include "lmdm/rules_json.h"
#include "lmdm/rules_profile.h"

static const char merge_help[] =
    "usage: lmdm policy merge [--profile] [--platform ios|macos] RULES.json...\n"
    "\n"
    "Merge the device-wide rules of several tenants key by key to the strictest and\n"
    "print the result with, for each key, the tenants that require it (JSON).\n"
    "Each RULES.json holds one tenant's rules:\n"
    "  {\"tenant\": \"St. Mary's\", \"passcode\": {\"minLength\": 8, ...},\n"
    "   \"encryption\": {\"required\": true}, \"restrictions\": {...}, \"domains\": {...}}\n"
    "(every section optional; see docs/rules.md).\n"
    "\n"
    "--profile          print the broker's configuration profile (XML) instead;\n"
    "                   nothing is printed when there is nothing to install\n"
    "--platform P       ios (default) or macos, for --profile and the profile hash\n"
    "Exit status: 0 merged, 1 a file could not be read or holds an invalid rule\n"
    "(the message names the file and the key), 2 usage.\n";

typedef struct {
    json_t *doc[LMDM_RULES_MAX_TENANTS];
    lmdm_rules_t rules[LMDM_RULES_MAX_TENANTS];
    const char *names[LMDM_RULES_MAX_TENANTS];
    size_t n;
} inputs_t;

static void inputs_free(inputs_t *in)
{
    for (size_t i = 0; i < in->n; i++) {
        lmdm_rules_free(&in->rules[i]);
        json_decref(in->doc[i]);
    }
}

/* One tenant's file into in->rules[in->n]. Prints the error itself. */
static int load_one(const char *file, inputs_t *in)
{
    static const char *const sections[] = {"passcode", "encryption", "restrictions", "domains"};
    json_error_t jerr;
    json_t *doc = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        fprintf(stderr, "lmdm policy merge: %s:%d: %s\n", file, jerr.line, jerr.text);
        return -1;
    }
    size_t i = in->n++;
    in->doc[i] = doc;
    memset(&in->rules[i], 0, sizeof(in->rules[i]));
    in->names[i] = file;
    if (!json_is_object(doc)) {
        fprintf(stderr,
                "lmdm policy merge: %s: expected a JSON object {\"tenant\": ..., \"passcode\": {...}, ...}\n",
                file);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        if (strcmp(key, "tenant") == 0) {
            if (!json_is_string(v)) {
                fprintf(stderr, "lmdm policy merge: %s: tenant must be a string\n", file);
                return -1;
            }
            in->names[i] = json_string_value(v);
            continue;
        }
        size_t s = 0;
        while (s < LMDM_ARRAY_LEN(sections) && strcmp(key, sections[s]) != 0)
            s++;
        if (s == LMDM_ARRAY_LEN(sections)) {
            fprintf(stderr,
                    "lmdm policy merge: %s: unknown key \"%.64s\" (expected tenant, passcode, encryption, "
                    "restrictions, domains)\n",
                    file, key);
            return -1;
        }
        char err[1536];
        if (lmdm_rules_from_json(key, v, &in->rules[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "lmdm policy merge: %s: %s: %s\n", file, key, err);
            return -1;
        }
    }
    return 0;
}

static int print_json(const lmdm_merged_t *m, const inputs_t *in, int macos)
{
    json_t *out = lmdm_merged_to_json(m, in->names, in->n);
    lmdm_buf_t xml = {0};
    char hash[65];
    int rv = lmdm_rules_profile(m, macos, &xml, hash);
    lmdm_buf_free(&xml);
    json_object_set_new(out, "profile",
                        rv == 0 ? json_pack("{s:s,s:s,s:s}", "identifier", LMDM_RULES_PROFILE_ID, "platform",
                                            macos ? "macos" : "ios", "sha256", hash)
                                : json_null());
    char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(out);
    if (!s) return 1;
    printf("%s\n", s);
    free(s);
    return rv < 0 ? 1 : 0;
}

static int print_profile(const lmdm_merged_t *m, int macos)
{
    lmdm_buf_t xml = {0};
    char hash[65];
    int rv = lmdm_rules_profile(m, macos, &xml, hash);
    if (rv == 1)
        fprintf(stderr, "lmdm policy merge: no tenant requires anything: no profile\n");
    else if (rv == 0) {
        fwrite(xml.data, 1, xml.len, stdout);
        if (xml.len && xml.data[xml.len - 1] != '\n') putchar('\n');
    }
    lmdm_buf_free(&xml);
    return rv < 0 ? 1 : 0;
}

int lmdm_cli_policy_merge(int argc, char **argv)
{
    static const struct option longopts[] = {{"profile", no_argument, NULL, 'P'},
                                             {"platform", required_argument, NULL, 'p'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int profile = 0, macos = 0, ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'P': profile = 1; break;
        case 'p':
            if (strcmp(optarg, "ios") == 0)
                macos = 0;
            else if (strcmp(optarg, "macos") == 0)
                macos = 1;
            else {
                fprintf(stderr, "lmdm policy merge: --platform is ios or macos\n");
                return 2;
            }
            break;
        case 'h': fputs(merge_help, stdout); return 0;
        default: fputs(merge_help, stderr); return 2;
        }
    }
    int nfiles = argc - optind;
    if (nfiles < 1) {
        fputs(merge_help, stderr);
        return 2;
    }
    if (nfiles > LMDM_RULES_MAX_TENANTS) {
        fprintf(stderr, "lmdm policy merge: at most %d files\n", LMDM_RULES_MAX_TENANTS);
        return 2;
    }
    inputs_t *in = lmdm_xcalloc(1, sizeof(*in));
    lmdm_merged_t *m = lmdm_xmalloc(sizeof(*m));
    int rv = 0;
    for (int i = optind; i < argc && rv == 0; i++)
        if (load_one(argv[i], in) != 0) rv = 1;
    if (rv == 0) {
        lmdm_rules_merge(in->rules, in->n, m);
        if (m->truncated)
            fprintf(stderr, "lmdm policy merge: a domain list was cut to %d entries\n",
                    LMDM_RULES_MAX_DOMAINS);
        rv = profile ? print_profile(m, macos) : print_json(m, in, macos);
    }
    inputs_free(in);
    free(in);
    free(m);
    return rv;
}
