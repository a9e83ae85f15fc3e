/* OS release feeds (include/lmdm/release_feed.h): the broker's own JSON list,
 * macadmins SOFA (v1 and v2) and Apple's GDMF, each turned into one sorted,
 * de-duplicated list of lmdm_os_release_t.
 *
 * Parsing is all or nothing: every entry is checked, the first bad one names
 * itself in the error ("releases[3].version: '17.x' is not a version") and
 * the caller gets an empty feed. Strings, device lists and the releases live
 * in one arena (priv) released by lmdm_feed_free.
 *
 * Duplicates (same platform and version, e.g. SOFA lists iOS 17.0.2 twice)
 * are merged: the earliest release day, security if either says so, the
 * union of the device lists (or every device if either has no list), and the
 * shortest non-empty build (Apple's device-specific variants are longer:
 * 23G6083 next to 23G83), so the result does not depend on input order. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/arena.h"
#include "lmdm/common.h"
#include "lmdm/release_feed.h"

#define MODEL_MAX_LEN 64
#define BUILD_MAX_LEN 32
#define COMPONENT_MAX_DIGITS 9 /* fits an int: "123456789.1" is a version, longer is not */

typedef struct rel {
    lmdm_os_release_t r;
    size_t order; /* input position: a stable sort */
} rel_t;

typedef struct ctx {
    lmdm_arena_t *arena;
    rel_t *rels;
    size_t n, cap;
    size_t skipped;
    const char **set, **spare; /* set_add */
    size_t nset;
    char *err;
    size_t errlen;
} ctx_t;

/* ---- errors ---- */

static int fail(ctx_t *c, const char *fmt, ...) LMDM_PRINTF(2, 3);
static int fail(ctx_t *c, const char *fmt, ...)
{
    if (c->err && c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A value quoted in an error: printable ASCII, at most 40 characters. */
typedef struct shown {
    char s[48];
} shown_t;

static shown_t show(const char *v)
{
    shown_t o;
    size_t i = 0;
    for (; v[i] && i < 40; i++)
        o.s[i] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
    if (v[i]) {
        memcpy(o.s + i, "...", 3);
        i += 3;
    }
    o.s[i] = '\0';
    return o;
}

/* ---- values ---- */

/* Digits and dots, 1 to 4 components of 1 to COMPONENT_MAX_DIGITS digits. */
static int valid_version(const char *s)
{
    int comps = 0, digits = 0;
    for (const char *p = s;; p++) {
        if (*p >= '0' && *p <= '9') {
            if (++digits > COMPONENT_MAX_DIGITS) return 0;
            continue;
        }
        if (digits == 0 || ++comps > 4) return 0;
        if (*p == '\0') return 1;
        if (*p != '.') return 0;
        digits = 0;
    }
}

static int valid_build(const char *s)
{
    size_t n = strlen(s);
    if (n > BUILD_MAX_LEN) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')))
            return 0;
    return 1;
}

/* SOFA v1 fills Latest.Build with placeholders such as "26A000". */
static int placeholder_build(const char *s)
{
    size_t i = 0;
    while (s[i] >= '0' && s[i] <= '9')
        i++;
    return i > 0 && s[i] >= 'A' && s[i] <= 'Z' && strcmp(s + i + 1, "000") == 0;
}

/* A model identifier: "iPhone15,2", "Mac14,2", "MacPro7,1-Rack", "VMM-x86_64". */
static int valid_model(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MODEL_MAX_LEN) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == ',' ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits_at(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        *v = *v * 10 + (s[i] - '0');
    }
    return 1;
}

/* "YYYY-MM-DD", a real date from 1970 to 9999; with_time: a "T..." may follow. */
static int parse_day(const char *s, int with_time, int64_t *day)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, m, d;
    if (strlen(s) < 10 || !digits_at(s, 4, &y) || s[4] != '-' || !digits_at(s + 5, 2, &m) || s[7] != '-' ||
        !digits_at(s + 8, 2, &d))
        return 0;
    if (s[10] != '\0' && !(with_time && s[10] == 'T')) return 0;
    if (y < 1970 || m < 1 || m > 12 || d < 1) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[m - 1] + (m == 2 && leap)) return 0;
    *day = days_from_civil(y, m, d);
    return 1;
}

/* ---- JSON fields ---- */

enum { F_OPTIONAL = 0, F_REQUIRED = 1, F_NULL_OK = 2 };

/* A string member: 0 with *out (NULL when absent and allowed), or -1. */
static int field_str(ctx_t *c, json_t *o, const char *path, const char *key, int flags, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (v && json_is_null(v) && (flags & F_NULL_OK)) v = NULL;
    if (!v) return (flags & F_REQUIRED) ? fail(c, "%s.%s: missing", path, key) : 0;
    if (!json_is_string(v)) return fail(c, "%s.%s: not a string", path, key);
    *out = json_string_value(v);
    return 0;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts and removes repeats in place; the new count. */
static size_t sort_unique(const char **v, size_t n)
{
    if (n < 2) return n;
    qsort(v, n, sizeof(*v), str_cmp);
    size_t w = 1;
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i], v[w - 1]) != 0) v[w++] = v[i];
    return w;
}

typedef int (*model_filter_t)(const char *model);

/* A list of model identifiers (path.key), kept if the filter says so:
 * sorted, unique, in the arena. Absent or null: an empty list. */
static int parse_devices(ctx_t *c, json_t *o, const char *path, const char *key, model_filter_t keep,
                         const char ***out, size_t *n, size_t *listed)
{
    json_t *arr = json_object_get(o, key);
    *out = NULL;
    *n = 0;
    if (listed) *listed = 0;
    if (!arr || json_is_null(arr)) return 0;
    if (!json_is_array(arr)) return fail(c, "%s.%s: not a list", path, key);
    size_t len = json_array_size(arr);
    if (len > LMDM_FEED_MAX_DEVICES)
        return fail(c, "%s.%s: %zu devices, at most %d", path, key, len, LMDM_FEED_MAX_DEVICES);
    const char **v = lmdm_arena_alloc(c->arena, (len ? len : 1) * sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        json_t *d = json_array_get(arr, i);
        if (!json_is_string(d)) return fail(c, "%s.%s[%zu]: not a string", path, key, i);
        const char *s = json_string_value(d);
        if (!valid_model(s))
            return fail(c, "%s.%s[%zu]: '%s' is not a model identifier", path, key, i, show(s).s);
        if (keep && !keep(s)) continue;
        v[k++] = lmdm_arena_strdup(c->arena, s);
    }
    if (listed) *listed = len;
    *n = sort_unique(v, k);
    *out = v;
    return 0;
}

/* A set of devices being merged (a group's union, duplicates' lists): sorted
 * and unique, in two buffers of twice the limit that take turns, so merging
 * many lists costs no more memory than one. */
static void set_clear(ctx_t *c)
{
    if (!c->set) {
        c->set = lmdm_xmalloc(2 * LMDM_FEED_MAX_DEVICES * sizeof(*c->set));
        c->spare = lmdm_xmalloc(2 * LMDM_FEED_MAX_DEVICES * sizeof(*c->spare));
    }
    c->nset = 0;
}

/* Adds a sorted, unique list (at most the limit); -1 past the limit. */
static int set_add(ctx_t *c, const char *const *b, size_t nb)
{
    const char **a = c->set, **v = c->spare;
    size_t na = c->nset, i = 0, j = 0, k = 0;
    while (i < na || j < nb) {
        int d = i == na ? 1 : j == nb ? -1 : strcmp(a[i], b[j]);
        if (d <= 0) {
            v[k++] = a[i++];
            if (d == 0) j++;
        } else {
            v[k++] = b[j++];
        }
    }
    if (k > LMDM_FEED_MAX_DEVICES) return -1;
    c->spare = c->set;
    c->set = v;
    c->nset = k;
    return 0;
}

/* The set, copied into the arena. */
static const char **set_copy(ctx_t *c)
{
    const char **v = lmdm_arena_alloc(c->arena, (c->nset ? c->nset : 1) * sizeof(*v));
    memcpy(v, c->set, c->nset * sizeof(*v));
    return v;
}

static int add_release(ctx_t *c, const char *path, lmdm_platform_t p, const char *version, const char *build,
                       int64_t day, int security, const char *const *devices, size_t ndevices)
{
    if (c->n >= LMDM_FEED_MAX_RELEASES)
        return fail(c, "%s: more than %d releases", path, LMDM_FEED_MAX_RELEASES);
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->rels = lmdm_xrealloc(c->rels, c->cap * sizeof(*c->rels));
    }
    rel_t *r = &c->rels[c->n];
    r->order = c->n++;
    r->r.platform = p;
    r->r.version = lmdm_arena_strdup(c->arena, version);
    r->r.build = lmdm_arena_strdup(c->arena, build ? build : "");
    r->r.released = day;
    r->r.security = security != 0;
    r->r.devices = devices;
    r->r.ndevices = ndevices;
    return 0;
}

/* ---- lmdm: {"releases": [...]} ---- */

static int parse_lmdm_entry(ctx_t *c, json_t *e, size_t i)
{
    static const char *const keys[] = {"platform", "version", "build", "released", "security", "devices"};
    char path[40];
    snprintf(path, sizeof(path), "releases[%zu]", i);
    if (!json_is_object(e)) return fail(c, "%s: not an object", path);
    const char *key;
    json_t *v;
    /* An unknown key is refused: a misspelt "devices" would otherwise mean every device. */
    json_object_foreach (e, key, v) {
        size_t k = 0;
        while (k < LMDM_ARRAY_LEN(keys) && strcmp(key, keys[k]) != 0)
            k++;
        if (k == LMDM_ARRAY_LEN(keys)) return fail(c, "%s: unknown key '%s'", path, show(key).s);
    }
    const char *platform, *version, *build, *released;
    if (field_str(c, e, path, "platform", F_REQUIRED, &platform) ||
        field_str(c, e, path, "version", F_REQUIRED, &version) ||
        field_str(c, e, path, "build", F_OPTIONAL, &build) ||
        field_str(c, e, path, "released", F_REQUIRED, &released))
        return -1;
    lmdm_platform_t p;
    if (strcmp(platform, "iOS") == 0)
        p = LMDM_PLATFORM_IOS;
    else if (strcmp(platform, "macOS") == 0)
        p = LMDM_PLATFORM_MACOS;
    else
        return fail(c, "%s.platform: '%s' is not a platform (iOS or macOS)", path, show(platform).s);
    if (!valid_version(version)) return fail(c, "%s.version: '%s' is not a version", path, show(version).s);
    if (build && !valid_build(build))
        return fail(c, "%s.build: '%s' is not a build number", path, show(build).s);
    int64_t day;
    if (!parse_day(released, 0, &day))
        return fail(c, "%s.released: '%s' is not a date (YYYY-MM-DD)", path, show(released).s);
    json_t *sec = json_object_get(e, "security");
    if (!sec) return fail(c, "%s.security: missing", path);
    if (!json_is_boolean(sec)) return fail(c, "%s.security: not true or false", path);
    const char **devices;
    size_t ndevices;
    if (json_is_null(json_object_get(e, "devices"))) return fail(c, "%s.devices: not a list", path);
    if (parse_devices(c, e, path, "devices", NULL, &devices, &ndevices, NULL)) return -1;
    return add_release(c, path, p, version, build, day, json_is_true(sec), devices, ndevices);
}

static int parse_lmdm(ctx_t *c, json_t *root)
{
    json_t *list = json_object_get(root, "releases");
    if (!json_is_array(list)) return fail(c, "releases: not a list");
    size_t n = json_array_size(list);
    if (n > LMDM_FEED_MAX_RELEASES)
        return fail(c, "releases: %zu entries, at most %d", n, LMDM_FEED_MAX_RELEASES);
    for (size_t i = 0; i < n; i++)
        if (parse_lmdm_entry(c, json_array_get(list, i), i)) return -1;
    return 0;
}

/* ---- SOFA: {"OSVersions": [{"Latest": {...}, "SecurityReleases": [...]}], "Models": {...}} ---- */

/* The Macs of each major version, from "Models": {"Mac14,2": {"OSVersions": [26, 15, 14]}}. */
typedef struct major_models {
    long major;
    const char **models;
    size_t n;
} major_models_t;

typedef struct pair {
    long major;
    const char *model;
} pair_t;

static int pair_cmp(const void *a, const void *b)
{
    const pair_t *x = a, *y = b;
    if (x->major != y->major) return x->major < y->major ? -1 : 1;
    return strcmp(x->model, y->model);
}

static int parse_models(ctx_t *c, json_t *models, major_models_t **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (!models || json_is_null(models)) return 0;
    if (!json_is_object(models)) return fail(c, "Models: not an object");
    size_t npairs = 0, cap = 0;
    pair_t *pairs = NULL;
    const char *key;
    json_t *m;
    int rv = -1;
    json_object_foreach (models, key, m) {
        if (!valid_model(key)) {
            fail(c, "Models: '%s' is not a model identifier", show(key).s);
            goto out;
        }
        json_t *osv = json_is_object(m) ? json_object_get(m, "OSVersions") : NULL;
        if (!json_is_array(osv)) {
            fail(c, "Models.%s.OSVersions: not a list", key);
            goto out;
        }
        const char *name = lmdm_arena_strdup(c->arena, key);
        size_t i;
        json_t *v;
        json_array_foreach (osv, i, v) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 999999999) {
                fail(c, "Models.%s.OSVersions[%zu]: not a major version", key, i);
                goto out;
            }
            if (npairs == cap) {
                cap = cap ? cap * 2 : 256;
                pairs = lmdm_xrealloc(pairs, cap * sizeof(*pairs));
            }
            pairs[npairs++] = (pair_t){(long)json_integer_value(v), name};
        }
    }
    if (npairs) qsort(pairs, npairs, sizeof(*pairs), pair_cmp);
    major_models_t *mm = lmdm_arena_alloc(c->arena, (npairs ? npairs : 1) * sizeof(*mm));
    size_t nm = 0;
    for (size_t i = 0; i < npairs;) {
        size_t j = i, k = 0;
        while (j < npairs && pairs[j].major == pairs[i].major)
            j++;
        const char **list = lmdm_arena_alloc(c->arena, (j - i) * sizeof(*list));
        for (size_t x = i; x < j; x++)
            if (k == 0 || strcmp(list[k - 1], pairs[x].model) != 0) list[k++] = pairs[x].model;
        if (k > LMDM_FEED_MAX_DEVICES) {
            fail(c, "Models: more than %d models run macOS %ld", LMDM_FEED_MAX_DEVICES, pairs[i].major);
            goto out;
        }
        mm[nm++] = (major_models_t){pairs[i].major, list, k};
        i = j;
    }
    *out = mm;
    *nout = nm;
    rv = 0;
out:
    free(pairs);
    return rv;
}

static const major_models_t *models_of(const major_models_t *mm, size_t n, long major)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (mm[mid].major == major) return &mm[mid];
        if (mm[mid].major < major)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The platform a product or update name speaks of: "iOS and iPadOS", "macOS
 * Tahoe 26.6.2". 0 when it names neither. */
static int platform_of_name(const char *s)
{
    int ios = 0, mac = 0;
    while (*s) {
        size_t n = strcspn(s, " ");
        if ((n == 3 && strncmp(s, "iOS", 3) == 0) || (n == 6 && strncmp(s, "iPadOS", 6) == 0)) ios = 1;
        if (n == 5 && strncmp(s, "macOS", 5) == 0) mac = 1;
        s += n;
        s += strspn(s, " ");
    }
    return ios == mac ? 0 : ios ? LMDM_PLATFORM_IOS : LMDM_PLATFORM_MACOS;
}

typedef struct sofa_entry {
    char path[96];
    json_t *json;
    int platform; /* 0: from the group or the feed */
    const char *version, *build;
    int64_t day;
    int security;
    const char **devices; /* iOS: its SupportedDevices */
    size_t ndevices;
} sofa_entry_t;

/* The platform an entry names (0 if it names none), or -1. */
static int sofa_platform(ctx_t *c, json_t *e, const char *path, int *platform)
{
    static const char *const keys[] = {"ProductName", "UpdateName"};
    *platform = 0;
    for (size_t k = 0; k < LMDM_ARRAY_LEN(keys); k++) {
        const char *name;
        if (field_str(c, e, path, keys[k], F_NULL_OK, &name)) return -1;
        if (!name) continue;
        *platform = platform_of_name(name);
        if (!*platform) return fail(c, "%s.%s: '%s' is not iOS or macOS", path, keys[k], show(name).s);
        return 0;
    }
    return 0;
}

/* Reads one entry; 1 when it is skipped (ReleaseType other than "OS"). */
static int sofa_entry(ctx_t *c, json_t *e, sofa_entry_t *out)
{
    const char *path = out->path, *type, *date;
    if (!json_is_object(e)) return fail(c, "%s: not an object", path);
    out->json = e;
    if (field_str(c, e, path, "ReleaseType", F_NULL_OK, &type)) return -1;
    if (type && strcmp(type, "OS") != 0) return 1;
    if (sofa_platform(c, e, path, &out->platform) ||
        field_str(c, e, path, "ProductVersion", F_REQUIRED, &out->version) ||
        field_str(c, e, path, "Build", F_NULL_OK, &out->build) ||
        field_str(c, e, path, "ReleaseDate", F_REQUIRED, &date))
        return -1;
    if (!valid_version(out->version))
        return fail(c, "%s.ProductVersion: '%s' is not a version", path, show(out->version).s);
    if (out->build && !valid_build(out->build))
        return fail(c, "%s.Build: '%s' is not a build number", path, show(out->build).s);
    if (out->build && placeholder_build(out->build)) out->build = NULL;
    if (!parse_day(date, 1, &out->day))
        return fail(c, "%s.ReleaseDate: '%s' is not a date", path, show(date).s);
    json_t *count = json_object_get(e, "UniqueCVEsCount"), *cves = json_object_get(e, "CVEs");
    if (count && !json_is_null(count) && (!json_is_integer(count) || json_integer_value(count) < 0))
        return fail(c, "%s.UniqueCVEsCount: not a count", path);
    if (cves && !json_is_null(cves) && !json_is_object(cves) && !json_is_array(cves))
        return fail(c, "%s.CVEs: not an object or a list", path);
    out->security = (json_is_integer(count) && json_integer_value(count) > 0) || json_object_size(cves) > 0 ||
                    json_array_size(cves) > 0;
    return 0;
}

/* The first platform any entry of the feed names, for entries that name
 * none (v1's Latest has neither ProductName nor UpdateName). */
static int sofa_feed_platform(json_t *groups)
{
    size_t i;
    json_t *g;
    json_array_foreach (groups, i, g) {
        json_t *srs = json_object_get(g, "SecurityReleases"), *e;
        size_t j;
        json_array_foreach (srs, j, e) {
            const char *names[] = {json_string_value(json_object_get(e, "ProductName")),
                                   json_string_value(json_object_get(e, "UpdateName"))};
            for (size_t k = 0; k < 2; k++)
                if (names[k] && platform_of_name(names[k])) return platform_of_name(names[k]);
        }
    }
    return 0;
}

typedef struct sofa {
    int feed_platform;
    major_models_t *models;
    size_t nmodels;
} sofa_t;

static int sofa_group(ctx_t *c, const sofa_t *s, json_t *g, size_t gi)
{
    char gpath[40];
    snprintf(gpath, sizeof(gpath), "OSVersions[%zu]", gi);
    if (!json_is_object(g)) return fail(c, "%s: not an object", gpath);
    json_t *srs = json_object_get(g, "SecurityReleases"), *latest = json_object_get(g, "Latest");
    if (srs && !json_is_null(srs) && !json_is_array(srs))
        return fail(c, "%s.SecurityReleases: not a list", gpath);
    if (latest && !json_is_null(latest) && !json_is_object(latest))
        return fail(c, "%s.Latest: not an object", gpath);
    size_t nsr = json_array_size(srs);
    if (nsr > LMDM_FEED_MAX_RELEASES)
        return fail(c, "%s.SecurityReleases: %zu entries, at most %d", gpath, nsr, LMDM_FEED_MAX_RELEASES);
    /* Latest is read like the others and merged with its twin among the
     * SecurityReleases: v1 gives the build only there. */
    size_t n = nsr + (json_is_object(latest) ? 1 : 0), ne = 0;
    sofa_entry_t *es = lmdm_xcalloc(n ? n : 1, sizeof(*es));
    int rv = -1, group_platform = 0;
    for (size_t i = 0; i < n; i++) {
        sofa_entry_t *e = &es[ne];
        if (i < nsr)
            snprintf(e->path, sizeof(e->path), "%s.SecurityReleases[%zu]", gpath, i);
        else
            snprintf(e->path, sizeof(e->path), "%s.Latest", gpath);
        int r = sofa_entry(c, i < nsr ? json_array_get(srs, i) : latest, e);
        if (r < 0) goto out;
        if (r > 0) {
            c->skipped++;
            continue;
        }
        if (!group_platform) group_platform = e->platform;
        ne++;
    }
    if (!group_platform) group_platform = s->feed_platform;
    /* iOS: an entry without SupportedDevices takes the union of its group's. */
    const char **all, **dev;
    size_t nall, ndev;
    set_clear(c);
    for (size_t i = 0; i < ne; i++) {
        sofa_entry_t *e = &es[i];
        if (!e->platform) e->platform = group_platform;
        if (!e->platform) {
            fail(c, "%s: no ProductName or UpdateName tells iOS from macOS", e->path);
            goto out;
        }
        if (e->platform != LMDM_PLATFORM_IOS) continue;
        if (parse_devices(c, e->json, e->path, "SupportedDevices", NULL, &e->devices, &e->ndevices, NULL))
            goto out;
        if (set_add(c, e->devices, e->ndevices)) {
            fail(c, "%s: more than %d devices", gpath, LMDM_FEED_MAX_DEVICES);
            goto out;
        }
    }
    nall = c->nset;
    all = set_copy(c);
    for (size_t i = 0; i < ne; i++) {
        sofa_entry_t *e = &es[i];
        if (e->platform == LMDM_PLATFORM_IOS) {
            dev = e->ndevices ? e->devices : all;
            ndev = e->ndevices ? e->ndevices : nall;
        } else { /* macOS lists board ids (J314sAP) there; devices come from Models */
            const major_models_t *mm = models_of(s->models, s->nmodels, lmdm_osversion_major(e->version));
            dev = mm ? mm->models : NULL;
            ndev = mm ? mm->n : 0;
        }
        if (add_release(c, e->path, e->platform, e->version, e->build, e->day, e->security, dev, ndev))
            goto out;
    }
    rv = 0;
out:
    free(es);
    return rv;
}

static int parse_sofa(ctx_t *c, json_t *root)
{
    json_t *groups = json_object_get(root, "OSVersions");
    if (!json_is_array(groups)) return fail(c, "OSVersions: not a list");
    sofa_t s = {.feed_platform = sofa_feed_platform(groups)};
    if (parse_models(c, json_object_get(root, "Models"), &s.models, &s.nmodels)) return -1;
    size_t i;
    json_t *g;
    json_array_foreach (groups, i, g)
        if (sofa_group(c, &s, g, i)) return -1;
    return 0;
}

/* ---- GDMF: {"PublicAssetSets": {"iOS": [...], "macOS": [...]}, "AssetSets": {...}} ---- */

/* Apple's "iOS" asset sets also carry watchOS, tvOS and audioOS releases;
 * their devices are what tells them apart. */
static int ios_model(const char *m)
{
    return strncmp(m, "iPhone", 6) == 0 || strncmp(m, "iPad", 4) == 0 || strncmp(m, "iPod", 4) == 0;
}

static int gdmf_entry(ctx_t *c, json_t *e, const char *path, lmdm_platform_t p)
{
    if (!json_is_object(e)) return fail(c, "%s: not an object", path);
    const char *version, *build, *date;
    if (field_str(c, e, path, "ProductVersion", F_REQUIRED, &version) ||
        field_str(c, e, path, "Build", F_NULL_OK, &build) ||
        field_str(c, e, path, "PostingDate", F_REQUIRED, &date))
        return -1;
    if (!valid_version(version))
        return fail(c, "%s.ProductVersion: '%s' is not a version", path, show(version).s);
    if (build && !valid_build(build))
        return fail(c, "%s.Build: '%s' is not a build number", path, show(build).s);
    int64_t day;
    if (!parse_day(date, 1, &day)) return fail(c, "%s.PostingDate: '%s' is not a date", path, show(date).s);
    const char **dev = NULL;
    size_t ndev = 0, listed = 0;
    if (p == LMDM_PLATFORM_IOS) {
        if (parse_devices(c, e, path, "SupportedDevices", ios_model, &dev, &ndev, &listed)) return -1;
        if (listed && !ndev) { /* watchOS, tvOS, ... */
            c->skipped++;
            return 0;
        }
    } /* macOS lists board ids (J314sAP), not model identifiers: every Mac */
    return add_release(c, path, p, version, build, day, 0, dev, ndev);
}

static int gdmf_sets(ctx_t *c, json_t *data, const char *name)
{
    json_t *sets = json_object_get(data, name);
    if (!sets || json_is_null(sets)) return 0;
    if (!json_is_object(sets)) return fail(c, "%s: not an object", name);
    const char *key;
    json_t *list;
    json_object_foreach (sets, key, list) {
        lmdm_platform_t p = strcmp(key, "iOS") == 0 ? LMDM_PLATFORM_IOS : LMDM_PLATFORM_MACOS;
        int known = strcmp(key, "iOS") == 0 || strcmp(key, "macOS") == 0;
        if (!json_is_array(list)) return fail(c, "%s.%s: not a list", name, show(key).s);
        size_t n = json_array_size(list);
        if (!known) { /* visionOS, ... */
            c->skipped += n;
            continue;
        }
        if (n > LMDM_FEED_MAX_RELEASES)
            return fail(c, "%s.%s: %zu entries, at most %d", name, key, n, LMDM_FEED_MAX_RELEASES);
        for (size_t i = 0; i < n; i++) {
            char path[64];
            snprintf(path, sizeof(path), "%s.%s[%zu]", name, key, i);
            if (gdmf_entry(c, json_array_get(list, i), path, p)) return -1;
        }
    }
    return 0;
}

static int parse_gdmf(ctx_t *c, json_t *data)
{
    if (gdmf_sets(c, data, "PublicAssetSets")) return -1;
    return gdmf_sets(c, data, "AssetSets");
}

/* ---- sort, merge duplicates, hand over ---- */

static int rel_cmp(const void *a, const void *b)
{
    const rel_t *x = a, *y = b;
    if (x->r.platform != y->r.platform) return x->r.platform < y->r.platform ? -1 : 1;
    int v = lmdm_osversion_cmp(x->r.version, y->r.version);
    if (v) return v;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int better_build(const char *cand, const char *cur)
{
    size_t a = strlen(cand), b = strlen(cur);
    if (!a) return 0;
    if (!b || a != b) return !b || a < b;
    return strcmp(cand, cur) < 0;
}

/* Merges the run of duplicates rels[i..j) into rels[i]. */
static int merge_run(ctx_t *c, size_t i, size_t j)
{
    lmdm_os_release_t *into = &c->rels[i].r;
    int every = 0;
    set_clear(c);
    for (size_t k = i; k < j; k++) {
        const lmdm_os_release_t *r = &c->rels[k].r;
        if (r->released < into->released) into->released = r->released;
        into->security |= r->security;
        if (better_build(r->build, into->build)) into->build = r->build;
        if (!r->ndevices) every = 1;
        if (!every && set_add(c, r->devices, r->ndevices))
            return fail(c, "%s %s: more than %d devices", lmdm_platform_feed_name(into->platform),
                        into->version, LMDM_FEED_MAX_DEVICES);
    }
    into->ndevices = every ? 0 : c->nset;
    into->devices = every ? NULL : set_copy(c);
    return 0;
}

static int finish(ctx_t *c, lmdm_feed_t *out)
{
    if (c->n) qsort(c->rels, c->n, sizeof(*c->rels), rel_cmp);
    size_t w = 0;
    for (size_t i = 0, j; i < c->n; i = j) {
        for (j = i + 1; j < c->n && c->rels[j].r.platform == c->rels[i].r.platform &&
                        lmdm_osversion_cmp(c->rels[j].r.version, c->rels[i].r.version) == 0;
             j++)
            ;
        if (j - i > 1 && merge_run(c, i, j)) return -1;
        c->rels[w++] = c->rels[i];
    }
    out->releases = w ? lmdm_arena_alloc(c->arena, w * sizeof(*out->releases)) : NULL;
    for (size_t i = 0; i < w; i++)
        out->releases[i] = c->rels[i].r;
    out->n = w;
    out->skipped = c->skipped;
    return 0;
}

static const char *detect(json_t *root, json_t **data)
{
    *data = root;
    if (json_object_get(root, "releases")) return "lmdm";
    if (json_object_get(root, "OSVersions"))
        return json_object_get(root, "SchemaVersion") || json_object_get(root, "LastCheck") ? "sofa-v2"
                                                                                            : "sofa-v1";
    json_t *inner = json_object_get(root, "data"); /* SOFA's cache wraps it in {"etag", "data"} */
    if (!json_object_get(root, "PublicAssetSets") && json_is_object(inner)) *data = inner;
    if (json_object_get(*data, "PublicAssetSets")) return "gdmf";
    return NULL;
}

int lmdm_feed_parse(const char *data, size_t len, lmdm_feed_t *out, char *err, size_t errlen)
{
    ctx_t c = {.err = err, .errlen = errlen};
    memset(out, 0, sizeof(*out));
    if (err && errlen) err[0] = '\0';
    if (len > LMDM_FEED_MAX_BYTES)
        return fail(&c, "the feed is larger than %u MiB", LMDM_FEED_MAX_BYTES >> 20);
    if (!data && len) return fail(&c, "no data");
    json_error_t jerr;
    json_t *root = json_loadb(data ? data : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return fail(&c, "not JSON (line %d, column %d): %s", jerr.line, jerr.column, jerr.text);
    int rv = -1;
    json_t *body;
    const char *format = json_is_object(root) ? detect(root, &body) : NULL;
    if (!format) {
        fail(&c,
             "not a release feed: expected {\"releases\": [...]} (lmdm), {\"OSVersions\": [...]} (SOFA) or "
             "{\"PublicAssetSets\": {...}} (GDMF)");
        goto out;
    }
    c.arena = lmdm_arena_new(16384);
    if (strcmp(format, "lmdm") == 0)
        rv = parse_lmdm(&c, body);
    else if (strcmp(format, "gdmf") == 0)
        rv = parse_gdmf(&c, body);
    else
        rv = parse_sofa(&c, body);
    if (rv == 0) rv = finish(&c, out);
    if (rv == 0) {
        out->format = format;
        out->priv = c.arena;
        c.arena = NULL;
    } else {
        memset(out, 0, sizeof(*out));
    }
out:
    lmdm_arena_free(c.arena);
    free(c.rels);
    free(c.set);
    free(c.spare);
    json_decref(root);
    return rv;
}

void lmdm_feed_free(lmdm_feed_t *f)
{
    if (!f) return;
    lmdm_arena_free(f->priv);
    memset(f, 0, sizeof(*f));
}

const char *lmdm_platform_feed_name(lmdm_platform_t p)
{
    switch (p) {
    case LMDM_PLATFORM_IOS: return "iOS";
    case LMDM_PLATFORM_MACOS: return "macOS";
    }
    return "unknown";
}
