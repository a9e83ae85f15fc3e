/* Apple's schema, indexed: the YAML files of mdm/commands by
 * payload.requesttype, those of mdm/checkin by payload.requesttype (which
 * there is the MessageType). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sim.h"

#ifndef LMDM_SIM_SCHEMA_DIR
#define LMDM_SIM_SCHEMA_DIR ""
#endif

typedef struct {
    char *name;
    sy_doc_t *doc;
} schema_entry_t;

struct sim_schema {
    schema_entry_t *commands;
    size_t ncommands;
    schema_entry_t *checkins;
    size_t ncheckins;
};

static bool has_commands(const char *dir)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/mdm/commands", dir);
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *sim_schema_find_dir(void)
{
    static char found[4096];
    const char *envs[] = {"LMDM_SCHEMA", "LMDM_SPEC"};
    for (size_t i = 0; i < 2; i++) {
        const char *env = getenv(envs[i]);
        if (env && *env && has_commands(env)) {
            snprintf(found, sizeof found, "%s", env);
            return found;
        }
    }
    const char *src = getenv("LMDM_SRC");
    static const char *const rel[] = {"tests/data/apple-device-management",
                                      "../shared/apple-device-management"};
    for (size_t i = 0; src && *src && i < 2; i++) {
        snprintf(found, sizeof found, "%s/%s", src, rel[i]);
        if (has_commands(found)) return found;
    }
    if (LMDM_SIM_SCHEMA_DIR[0] && has_commands(LMDM_SIM_SCHEMA_DIR)) {
        snprintf(found, sizeof found, "%s", LMDM_SIM_SCHEMA_DIR);
        return found;
    }
    return NULL;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const schema_entry_t *)a)->name, ((const schema_entry_t *)b)->name);
}

static int load_dir(const char *dir, const char *sub, schema_entry_t **out, size_t *nout, char *err,
                    size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    DIR *dh = opendir(path);
    if (!dh) {
        sim_errf(err, errlen, "%s: cannot open", path);
        return -1;
    }
    struct dirent *de;
    size_t cap = 0;
    while ((de = readdir(dh))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".yaml") != 0) continue;
        char file[4096 + 256];
        snprintf(file, sizeof file, "%s/%s", path, de->d_name);
        sy_doc_t *doc = sy_load(file, err, errlen);
        if (!doc) {
            closedir(dh);
            return -1;
        }
        const char *rt = sy_get_str(sy_get(sy_root(doc), "payload"), "requesttype");
        if (!rt || !*rt) {
            sim_errf(err, errlen, "%s: no payload.requesttype", file);
            sy_free(doc);
            closedir(dh);
            return -1;
        }
        if (*nout == cap) {
            cap = cap ? 2 * cap : 64;
            *out = realloc(*out, cap * sizeof **out);
            if (!*out) abort();
        }
        (*out)[*nout].name = strdup(rt);
        (*out)[*nout].doc = doc;
        (*nout)++;
    }
    closedir(dh);
    if (*nout == 0) {
        sim_errf(err, errlen, "%s: no .yaml files", path);
        return -1;
    }
    qsort(*out, *nout, sizeof **out, cmp_entry);
    return 0;
}

sim_schema_t *sim_schema_load(const char *dir, char *err, size_t errlen)
{
    sim_schema_t *s = calloc(1, sizeof *s);
    if (!s) abort();
    if (load_dir(dir, "mdm/commands", &s->commands, &s->ncommands, err, errlen) != 0 ||
        load_dir(dir, "mdm/checkin", &s->checkins, &s->ncheckins, err, errlen) != 0) {
        sim_schema_free(s);
        return NULL;
    }
    return s;
}

static void free_entries(schema_entry_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].name);
        sy_free(e[i].doc);
    }
    free(e);
}

void sim_schema_free(sim_schema_t *s)
{
    if (!s) return;
    free_entries(s->commands, s->ncommands);
    free_entries(s->checkins, s->ncheckins);
    free(s);
}

static const sy_node_t *find(const schema_entry_t *e, size_t n, const char *name)
{
    if (!name) return NULL;
    schema_entry_t key = {.name = (char *)name};
    const schema_entry_t *hit = bsearch(&key, e, n, sizeof *e, cmp_entry);
    return hit ? sy_root(hit->doc) : NULL;
}

const sy_node_t *sim_schema_command(const sim_schema_t *s, const char *request_type)
{
    return s ? find(s->commands, s->ncommands, request_type) : NULL;
}

const sy_node_t *sim_schema_checkin(const sim_schema_t *s, const char *message_type)
{
    return s ? find(s->checkins, s->ncheckins, message_type) : NULL;
}

size_t sim_schema_command_count(const sim_schema_t *s)
{
    return s ? s->ncommands : 0;
}

const char *sim_schema_command_name(const sim_schema_t *s, size_t i)
{
    return s && i < s->ncommands ? s->commands[i].name : NULL;
}

size_t sim_schema_checkin_count(const sim_schema_t *s)
{
    return s ? s->ncheckins : 0;
}

const char *sim_schema_checkin_name(const sim_schema_t *s, size_t i)
{
    return s && i < s->ncheckins ? s->checkins[i].name : NULL;
}

const sy_node_t *sim_schema_keys(const sy_node_t *root, const char *which)
{
    const sy_node_t *k = sy_get(root, which);
    return sy_is_seq(k) ? k : NULL;
}

const sy_node_t *sim_schema_os(const sy_node_t *node, const char *platform)
{
    return sy_get(sy_get(node, "supportedOS"), platform);
}

/* Compare dotted versions numerically ("10.13.4" < "10.15"); a missing
 * part counts as 0. */
static int version_cmp(const char *a, const char *b)
{
    while (*a || *b) {
        long x = strtol(a, (char **)&a, 10), y = strtol(b, (char **)&b, 10);
        if (x != y) return x < y ? -1 : 1;
        if (*a == '.') a++;
        if (*b == '.') b++;
        if ((*a && (*a < '0' || *a > '9')) || (*b && (*b < '0' || *b > '9'))) break;
    }
    return 0;
}

bool sim_schema_available(const sy_node_t *node, const char *platform, const char *os_version)
{
    const sy_node_t *os = sim_schema_os(node, platform);
    const char *intro = sy_get_str(os, "introduced"), *removed = sy_get_str(os, "removed");
    if (intro && strcmp(intro, "n/a") == 0) return false;
    if (!os_version || !*os_version) return true;
    if (intro && version_cmp(intro, os_version) > 0) return false;
    if (removed && strcmp(removed, "n/a") != 0 && version_cmp(removed, os_version) <= 0) return false;
    return true;
}

long sim_access_bit(const char *name)
{
    static const struct {
        const char *name;
        long bit;
    } bits[] = {
        {"AllowInspection", 1},
        {"AllowInstallationRemoval", 2},
        {"AllowPasscodeRemovalAndLock", 4},
        {"DeviceLockAndRemovePasscode", 4},
        {"AllowDeviceErase", 8},
        {"AllowQueryDeviceInformation", 16},
        {"AllowQueryNetworkInformation", 32},
        {"AllowProvisioningInspection", 64},
        {"AllowProvisioningInstallationRemoval", 128},
        {"AllowQueryApplications", 256},
        {"QueryInstalledApps", 256},
        {"AllowQueryRestrictions", 512},
        {"AllowQuerySecurity", 1024},
        {"AllowSettings", 2048},
        {"AllowAppInstallation", 4096},
    };
    if (!name) return 0;
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        if (strcmp(bits[i].name, name) == 0) return bits[i].bit;
    return 0;
}
