/* OS release feeds (broker/osupdate/feed.c): the four vendored SOFA feeds
 * (v1 and v2, iOS and macOS) and Apple's GDMF cache give the releases they
 * hold (counts, builds, days, security, devices); the broker's own format,
 * full and minimal, sorted and de-duplicated; and hostile input, each refused
 * whole with a reason that names the entry and an empty feed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lmdm/common.h"
#include "lmdm/release_feed.h"

/* Day numbers (days since 1970-01-01), computed independently. */
#define D_2000_02_29 11016
#define D_2023_09_21 19621
#define D_2024_03_21 19803
#define D_2025_09_15 20346
#define D_2026_05_18 20591
#define D_2026_06_01 20605
#define D_2026_08_17 20682


/* Parses a vendored file; 0 on success. */
static int load(const char *rel, lmdm_feed_t *f)
{
    size_t len = 0;
    char *s = harness_read_vector(rel, &len);
    char err[256] = "x";
    int rv = s ? lmdm_feed_parse(s, len, f, err, sizeof(err)) : -1;
    if (rv != 0) harness_fail(__FILE__, __LINE__, "%s: %s", rel, err);
    free(s);
    return rv;
}

static const lmdm_os_release_t *find(const lmdm_feed_t *f, lmdm_platform_t p, const char *version)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->releases[i].platform == p && strcmp(f->releases[i].version, version) == 0)
            return &f->releases[i];
    return NULL;
}

static int has_device(const lmdm_os_release_t *r, const char *model)
{
    for (size_t i = 0; r && i < r->ndevices; i++)
        if (strcmp(r->devices[i], model) == 0) return 1;
    return 0;
}

/* Every release is strictly after the one before (platform, then version
 * compared numerically), and every device list is sorted and unique. */
static int well_ordered(const lmdm_feed_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        const lmdm_os_release_t *r = &f->releases[i];
        for (size_t k = 1; k < r->ndevices; k++)
            if (strcmp(r->devices[k - 1], r->devices[k]) >= 0) return 0;
        if (i == 0) continue;
        const lmdm_os_release_t *q = &f->releases[i - 1];
        if (q->platform > r->platform) return 0;
        if (q->platform < r->platform) continue;
        unsigned a[4] = {0}, b[4] = {0};
        sscanf(q->version, "%u.%u.%u.%u", &a[0], &a[1], &a[2], &a[3]);
        sscanf(r->version, "%u.%u.%u.%u", &b[0], &b[1], &b[2], &b[3]);
        int k = 0;
        while (k < 4 && a[k] == b[k])
            k++;
        if (k == 4 || a[k] > b[k]) return 0;
    }
    return 1;
}

static int count_platform(const lmdm_feed_t *f, lmdm_platform_t p)
{
    int n = 0;
    for (size_t i = 0; i < f->n; i++)
        n += f->releases[i].platform == p;
    return n;
}

/* ---- SOFA ---- */

static void test_sofa_v2_ios(void)
{
    lmdm_feed_t f;
    if (load("macadmins_sofa/v2/ios_data_feed.json", &f)) return;
    CHECK_STR_EQ(f.format, "sofa-v2");
    /* 72 SecurityReleases; 18.7.7 and 17.0.2 are listed twice. */
    CHECK_INT_EQ(f.n, 70);
    CHECK_INT_EQ(f.skipped, 0);
    CHECK_INT_EQ(count_platform(&f, LMDM_PLATFORM_IOS), 70);
    CHECK(well_ordered(&f));
    CHECK_STR_EQ(f.releases[0].version, "17.0");
    CHECK_STR_EQ(f.releases[f.n - 1].version, "26.6.1");

    const lmdm_os_release_t *r = find(&f, LMDM_PLATFORM_IOS, "26.6.1");
    CHECK(r != NULL);
    if (r) {
        CHECK_STR_EQ(r->build, "23G83");
        CHECK_INT_EQ(r->security, 1);
        CHECK_INT_EQ(r->released, D_2026_08_17);
        CHECK_INT_EQ(r->ndevices, 95);
        CHECK(has_device(r, "iPhone15,2"));
        CHECK(has_device(r, "iPad11,1"));
        CHECK(!has_device(r, "iPhone10,1"));
    }
    /* 26.5.1 went to the iPhone 17 family only and fixed nothing listed. */
    r = find(&f, LMDM_PLATFORM_IOS, "26.5.1");
    CHECK(r != NULL);
    if (r) {
        CHECK_INT_EQ(r->ndevices, 5);
        CHECK(has_device(r, "iPhone18,1"));
        CHECK(!has_device(r, "iPhone15,2"));
        CHECK_INT_EQ(r->security, 0);
        CHECK_STR_EQ(r->build, "23F81");
        CHECK_INT_EQ(r->released, D_2026_06_01);
    }
    /* 26.0 has an empty SupportedDevices: the union of the 26 group. */
    r = find(&f, LMDM_PLATFORM_IOS, "26.0");
    CHECK(r != NULL);
    if (r) {
        CHECK_INT_EQ(r->ndevices, 95);
        CHECK(has_device(r, "iPhone15,2"));
        CHECK(has_device(r, "iPhone18,1"));
        CHECK_STR_EQ(r->build, "");
        CHECK_INT_EQ(r->released, D_2025_09_15);
        CHECK_INT_EQ(r->security, 1);
    }
    /* The 17 group's only list is 17.7.11's six iPads: 17.4.1 inherits it. */
    r = find(&f, LMDM_PLATFORM_IOS, "17.4.1");
    CHECK(r != NULL);
    if (r) {
        CHECK_INT_EQ(r->ndevices, 6);
        CHECK(has_device(r, "iPad7,1"));
        CHECK_INT_EQ(r->released, D_2024_03_21);
        CHECK_INT_EQ(r->security, 1);
    }
    /* 17.0.2 twice (21 and 26 September 2023): once, the earlier day. */
    r = find(&f, LMDM_PLATFORM_IOS, "17.0.2");
    CHECK(r != NULL);
    if (r) {
        CHECK_INT_EQ(r->released, D_2023_09_21);
        CHECK_INT_EQ(r->security, 0);
    }
    r = find(&f, LMDM_PLATFORM_IOS, "18.7.10");
    CHECK(r && r->security && strcmp(r->build, "22H6374") == 0 && r->ndevices == 6 &&
          has_device(r, "iPhone11,2"));
    CHECK(find(&f, LMDM_PLATFORM_MACOS, "26.6.1") == NULL);
    lmdm_feed_free(&f);
    CHECK(f.releases == NULL && f.n == 0 && f.priv == NULL);
}

static void test_sofa_v1_ios(void)
{
    lmdm_feed_t f;
    if (load("macadmins_sofa/v1/ios_data_feed.json", &f)) return;
    CHECK_STR_EQ(f.format, "sofa-v1");
    CHECK_INT_EQ(f.n, 70);
    CHECK(well_ordered(&f));
    /* v1's latest 18 is 18.7.9 but it lists 18.7.10 too. */
    CHECK_STR_EQ(f.releases[f.n - 1].version, "26.6.1");
    const lmdm_os_release_t *r = find(&f, LMDM_PLATFORM_IOS, "26.6.1");
    CHECK(r != NULL);
    if (r) {
        /* Latest.Build is the placeholder "26A000": not used. No device lists at all. */
        CHECK_STR_EQ(r->build, "");
        CHECK_INT_EQ(r->ndevices, 0);
        CHECK_INT_EQ(r->security, 1);
        CHECK_INT_EQ(r->released, D_2026_08_17);
    }
    r = find(&f, LMDM_PLATFORM_IOS, "18.7.9");
    CHECK(r && strcmp(r->build, "") == 0);
    r = find(&f, LMDM_PLATFORM_IOS, "17.7.9");
    CHECK(r && strcmp(r->build, "") == 0);
    for (size_t i = 0; i < f.n; i++)
        CHECK(strstr(f.releases[i].build, "A000") == NULL);
    lmdm_feed_free(&f);
}

static void test_sofa_macos(void)
{
    static const char *const files[] = {"macadmins_sofa/v2/macos_data_feed.json",
                                        "macadmins_sofa/v1/macos_data_feed.json"};
    for (int v = 0; v < 2; v++) {
        lmdm_feed_t f;
        if (load(files[v], &f)) return;
        CHECK_STR_EQ(f.format, v == 0 ? "sofa-v2" : "sofa-v1");
        CHECK_INT_EQ(f.n, 126);
        CHECK_INT_EQ(count_platform(&f, LMDM_PLATFORM_MACOS), 126);
        CHECK(well_ordered(&f));
        CHECK_STR_EQ(f.releases[0].version, "12.0");
        CHECK_STR_EQ(f.releases[f.n - 1].version, "26.6.2");
        const lmdm_os_release_t *r = find(&f, LMDM_PLATFORM_MACOS, "26.6.2");
        CHECK(r != NULL);
        if (r) {
            /* v1 gives the build only in Latest; it is a real one here. */
            CHECK_STR_EQ(r->build, "25G83");
            CHECK_INT_EQ(r->security, 1);
            CHECK_INT_EQ(r->released, D_2026_08_17);
            /* The 64 models whose OSVersions include 26, not board ids. */
            CHECK_INT_EQ(r->ndevices, 64);
            CHECK(has_device(r, "Mac13,1")); /* [26, 15, 14, 13, 12] */
            CHECK(has_device(r, "VirtualMac2,1"));
            CHECK(!has_device(r, "MacBookPro11,4")); /* [12] */
            CHECK(!has_device(r, "J314sAP"));
        }
        r = find(&f, LMDM_PLATFORM_MACOS, "26.0");
        CHECK(r && r->ndevices == 64 && has_device(r, "Mac13,1") && !has_device(r, "MacBookAir7,2"));
        r = find(&f, LMDM_PLATFORM_MACOS, "12.7.6");
        CHECK(r && r->ndevices == 56 && has_device(r, "MacBookPro11,4") && has_device(r, "Mac13,1"));
        r = find(&f, LMDM_PLATFORM_MACOS, "12.0");
        CHECK(r && r->security == 0);
        r = find(&f, LMDM_PLATFORM_MACOS, "26.6.1");
        CHECK(r && strcmp(r->build, v == 0 ? "25G76" : "") == 0);
        lmdm_feed_free(&f);
    }
}

static void test_gdmf(void)
{
    lmdm_feed_t f;
    if (load("macadmins_sofa/data/resources/gdmf_cached.json", &f)) return;
    CHECK_STR_EQ(f.format, "gdmf");
    /* iOS and macOS of PublicAssetSets and AssetSets; visionOS and the
     * watchOS/tvOS/audioOS entries filed under "iOS" are left out. */
    CHECK_INT_EQ(f.n, 27);
    CHECK_INT_EQ(count_platform(&f, LMDM_PLATFORM_IOS), 12);
    CHECK_INT_EQ(f.skipped, 42);
    CHECK(well_ordered(&f));
    const lmdm_os_release_t *r = find(&f, LMDM_PLATFORM_IOS, "26.6.1");
    CHECK(r != NULL);
    if (r) {
        CHECK_STR_EQ(r->build, "23G83"); /* not the device-specific 23G6083 */
        CHECK_INT_EQ(r->security, 0);    /* GDMF does not say */
        CHECK_INT_EQ(r->released, D_2026_08_17);
        CHECK_INT_EQ(r->ndevices, 95);
        CHECK(has_device(r, "iPhone15,2"));
    }
    r = find(&f, LMDM_PLATFORM_IOS, "26.6"); /* tvOS 23L773 and watchOS 23U67 share the number */
    CHECK(r && strcmp(r->build, "23G71") == 0 && !has_device(r, "AppleTV14,1"));
    r = find(&f, LMDM_PLATFORM_IOS, "17.7.11");
    CHECK(r && r->released == D_2026_05_18);
    CHECK(find(&f, LMDM_PLATFORM_IOS, "11.6.2") == NULL); /* watchOS */
    r = find(&f, LMDM_PLATFORM_MACOS, "26.6.2");
    CHECK(r && r->ndevices == 0 && strcmp(r->build, "25G83") == 0);
    lmdm_feed_free(&f);
}

/* ---- helpers for small inline feeds ---- */

static int parse_str(const char *json, lmdm_feed_t *f, char *err, size_t errlen)
{
    return lmdm_feed_parse(json, strlen(json), f, err, errlen);
}

static int ok(const char *json, lmdm_feed_t *f, int line)
{
    char err[256] = "x";
    int rv = parse_str(json, f, err, sizeof(err));
    if (rv != 0)
        harness_fail(__FILE__, line, "refused: %s", err);
    else if (err[0])
        harness_fail(__FILE__, line, "error text left on success: %s", err);
    return rv;
}
#define OK(json, f) ok(json, f, __LINE__)

static void refused(const char *data, size_t len, const char *want, int line)
{
    lmdm_feed_t f;
    memset(&f, 0x5a, sizeof(f));
    char err[256] = "";
    int rv = lmdm_feed_parse(data, len, &f, err, sizeof(err));
    harness_checks++;
    if (rv != -1)
        harness_fail(__FILE__, line, "accepted (rv %d), wanted \"%s\"", rv, want);
    else if (!strstr(err, want))
        harness_fail(__FILE__, line, "error \"%s\" lacks \"%s\"", err, want);
    if (f.n != 0 || f.releases != NULL || f.priv != NULL || f.format != NULL)
        harness_fail(__FILE__, line, "output not empty after refusal");
    lmdm_feed_free(&f);
}
#define REFUSED(json, want) refused(json, strlen(json), want, __LINE__)

/* One lmdm entry with a field replaced: ENTRY("\"version\": \"17.x\"") */
#define HEAD                                                                                                 \
    "{\"releases\": [{\"platform\": \"iOS\", \"version\": \"17.4\", \"released\": \"2024-03-05\", "          \
    "\"security\": true}, "
#define ENTRY(fields) HEAD "{" fields "}]}"
#define BASE                                                                                                 \
    "\"platform\": \"iOS\", \"version\": \"17.4.1\", \"released\": \"2024-03-21\", \"security\": true"

/* ---- the broker's format ---- */

static void test_lmdm_full_and_minimal(void)
{
    lmdm_feed_t f;
    const char *json =
        "{\"releases\": ["
        "{\"platform\": \"macOS\", \"version\": \"14.4.1\", \"build\": \"23E224\", "
        "\"released\": \"2024-03-25\", \"security\": true, \"devices\": [\"Mac14,2\", \"Mac13,1\", "
        "\"Mac14,2\"]},"
        "{\"platform\": \"iOS\", \"version\": \"17.4.1\", \"released\": \"2024-03-21\", \"security\": false}"
        "]}";
    if (OK(json, &f)) return;
    CHECK_STR_EQ(f.format, "lmdm");
    CHECK_INT_EQ(f.n, 2);
    CHECK_INT_EQ(f.skipped, 0);
    const lmdm_os_release_t *r = &f.releases[0]; /* iOS sorts first */
    CHECK_INT_EQ(r->platform, LMDM_PLATFORM_IOS);
    CHECK_STR_EQ(r->version, "17.4.1");
    CHECK_STR_EQ(r->build, "");
    CHECK_INT_EQ(r->released, D_2024_03_21);
    CHECK_INT_EQ(r->security, 0);
    CHECK_INT_EQ(r->ndevices, 0);
    r = &f.releases[1];
    CHECK_INT_EQ(r->platform, LMDM_PLATFORM_MACOS);
    CHECK_STR_EQ(r->version, "14.4.1");
    CHECK_STR_EQ(r->build, "23E224");
    CHECK_INT_EQ(r->security, 1);
    CHECK_INT_EQ(r->ndevices, 2); /* sorted, the repeat dropped */
    if (r->ndevices == 2) {
        CHECK_STR_EQ(r->devices[0], "Mac13,1");
        CHECK_STR_EQ(r->devices[1], "Mac14,2");
    }
    lmdm_feed_free(&f);
    lmdm_feed_free(&f); /* twice is harmless */
    lmdm_feed_free(NULL);

    if (OK("{\"releases\": []}", &f)) return;
    CHECK_STR_EQ(f.format, "lmdm");
    CHECK_INT_EQ(f.n, 0);
    lmdm_feed_free(&f);

    /* Leap day, and the input need not be NUL-terminated. */
    const char *leap =
        "{\"releases\": [{\"platform\": \"iOS\", \"version\": \"3.1.3\", \"released\": \"2000-02-29\", "
        "\"security\": false}]}GARBAGE";
    char err[128];
    CHECK_INT_EQ(lmdm_feed_parse(leap, strlen(leap) - 7, &f, err, sizeof(err)), 0);
    CHECK(f.n == 1 && f.releases[0].released == D_2000_02_29);
    lmdm_feed_free(&f);
}

static void test_lmdm_sort_and_dedupe(void)
{
    lmdm_feed_t f;
    const char *json =
        "{\"releases\": ["
        "{\"platform\": \"iOS\", \"version\": \"17.10\", \"released\": \"2024-09-01\", \"security\": false},"
        "{\"platform\": \"macOS\", \"version\": \"9\", \"released\": \"2024-01-01\", \"security\": false},"
        "{\"platform\": \"iOS\", \"version\": \"17.9\", \"released\": \"2024-08-01\", \"security\": false},"
        "{\"platform\": \"iOS\", \"version\": \"17.4\", \"released\": \"2024-03-06\", \"security\": false, "
        "\"devices\": [\"iPhone15,2\"]},"
        "{\"platform\": \"iOS\", \"version\": \"17.4.0\", \"build\": \"21E219\", \"released\": "
        "\"2024-03-05\", "
        "\"security\": true, \"devices\": [\"iPad7,1\"]},"
        "{\"platform\": \"iOS\", \"version\": \"17.4.1\", \"build\": \"21E237\", \"released\": "
        "\"2024-03-21\", "
        "\"security\": false, \"devices\": [\"iPhone15,2\"]},"
        "{\"platform\": \"iOS\", \"version\": \"17.4.1\", \"build\": \"21E236\", \"released\": "
        "\"2024-03-22\", "
        "\"security\": false},"
        "{\"platform\": \"macOS\", \"version\": \"10.15.7\", \"released\": \"2020-09-24\", \"security\": "
        "true}"
        "]}";
    if (OK(json, &f)) return;
    CHECK_INT_EQ(f.n, 6);
    CHECK(well_ordered(&f));
    static const char *const order[] = {"17.4", "17.4.1", "17.9", "17.10", "9", "10.15.7"};
    for (size_t i = 0; i < 6 && i < f.n; i++)
        CHECK_STR_EQ(f.releases[i].version, order[i]);
    if (f.n == 6) {
        /* 17.4 and 17.4.0 are one release: the first spelling, the earlier
         * day, security from either, the build, both device lists. */
        const lmdm_os_release_t *r = &f.releases[0];
        CHECK_STR_EQ(r->build, "21E219");
        CHECK_INT_EQ(r->security, 1);
        CHECK_INT_EQ(r->released, D_2024_03_21 - 16);
        CHECK_INT_EQ(r->ndevices, 2);
        CHECK(has_device(r, "iPad7,1") && has_device(r, "iPhone15,2"));
        /* 17.4.1 twice: one has no device list (every device) so the merge has none. */
        r = &f.releases[1];
        CHECK_INT_EQ(r->ndevices, 0);
        CHECK_STR_EQ(r->build, "21E236"); /* same length: the lower */
        CHECK_INT_EQ(r->released, D_2024_03_21);
        CHECK_INT_EQ(f.releases[4].platform, LMDM_PLATFORM_MACOS);
    }
    lmdm_feed_free(&f);
}

static void test_small_sofa(void)
{
    lmdm_feed_t f;
    /* v1 shape: a Latest that is not among the SecurityReleases and names no
     * platform, and a Rapid Security Response that is skipped. */
    const char *json =
        "{\"OSVersions\": [{\"OSVersion\": \"17\", "
        "\"Latest\": {\"ProductVersion\": \"17.5\", \"Build\": \"21F79\", \"ReleaseDate\": "
        "\"2024-05-13T00:00:00Z\", "
        "\"SupportedDevices\": [], \"UniqueCVEsCount\": 0, \"CVEs\": {}}, "
        "\"SecurityReleases\": ["
        "{\"UpdateName\": \"iOS 17.4.1\", \"ProductName\": \"iOS and iPadOS\", \"ProductVersion\": "
        "\"17.4.1\", "
        "\"ReleaseDate\": \"2024-03-21T00:00:00Z\", \"ReleaseType\": \"OS\", \"SupportedDevices\": "
        "[\"iPhone15,2\"], "
        "\"UniqueCVEsCount\": 0, \"CVEs\": {\"CVE-2024-1\": true}},"
        "{\"ProductName\": \"iOS and iPadOS\", \"ProductVersion\": \"17.4.1 (a)\", \"ReleaseType\": \"RSR\"}"
        "]}]}";
    if (OK(json, &f)) return;
    CHECK_STR_EQ(f.format, "sofa-v1");
    CHECK_INT_EQ(f.n, 2);
    CHECK_INT_EQ(f.skipped, 1);
    if (f.n == 2) {
        CHECK_STR_EQ(f.releases[0].version, "17.4.1");
        CHECK_INT_EQ(f.releases[0].security, 1); /* a CVE listed, whatever the count says */
        CHECK_STR_EQ(f.releases[1].version, "17.5");
        CHECK_INT_EQ(f.releases[1].platform, LMDM_PLATFORM_IOS);
        CHECK_STR_EQ(f.releases[1].build, "21F79");
        CHECK_INT_EQ(f.releases[1].security, 0);
        CHECK(f.releases[1].ndevices == 1 && has_device(&f.releases[1], "iPhone15,2"));
    }
    lmdm_feed_free(&f);

    /* GDMF without the {etag, data} wrapper. */
    if (OK("{\"PublicAssetSets\": {\"macOS\": [{\"ProductVersion\": \"14.4.1\", \"Build\": \"23E224\", "
           "\"PostingDate\": \"2024-03-25\", \"SupportedDevices\": [\"J314sAP\"]}], \"xrOS\": [{}]}}",
           &f))
        return;
    CHECK_STR_EQ(f.format, "gdmf");
    CHECK(f.n == 1 && f.releases[0].platform == LMDM_PLATFORM_MACOS && f.releases[0].ndevices == 0);
    CHECK_INT_EQ(f.skipped, 1);
    lmdm_feed_free(&f);
}

/* ---- hostile input ---- */

static void test_not_json(void)
{
    REFUSED("", "not JSON");
    REFUSED("releases", "not JSON");
    REFUSED("{\"releases\": [{\"platform\": \"iOS\"", "not JSON"); /* truncated */
    REFUSED("{\"releases\": []} {}", "not JSON");                  /* trailing text */
    REFUSED("{\"releases\": [], \"releases\": []}", "duplicate");  /* duplicate keys */
    REFUSED(ENTRY(BASE ", \"security\": false"), "duplicate");
    REFUSED(ENTRY(BASE ", \"build\": \"a\\u0000b\""), "not JSON"); /* escaped NUL */
    static const char raw[] = "{\"releases\": [{\"platform\": \"iO\0S\"}]}";
    refused(raw, sizeof(raw) - 1, "not JSON", __LINE__); /* raw NUL byte */
    static const char after[] = "{\"releases\": []}\0";
    refused(after, sizeof(after) - 1, "not JSON", __LINE__);
    REFUSED("{\"releases\": [{\"platform\": \"iOS\", \"security\": 1e400}]}", "not JSON");
    REFUSED(
        "{\"OSVersions\": [{\"SecurityReleases\": [{\"UniqueCVEsCount\": 123456789012345678901234567890}]}]}",
        "not JSON");
    REFUSED("\xff\xfe{}", "not JSON");
    refused(NULL, 5, "no data", __LINE__);

    /* Nested far deeper than any feed. */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 64);
    size_t k = (size_t)sprintf(deep, "{\"releases\": ");
    for (size_t i = 0; i < depth; i++)
        deep[k++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    refused(deep, k, "not JSON", __LINE__);
    free(deep);

    /* Larger than the limit: refused before anything is read. */
    size_t big = (size_t)LMDM_FEED_MAX_BYTES + 1;
    char *huge = malloc(big);
    if (huge) refused(huge, big, "larger than", __LINE__);
    free(huge);
}

static void test_wrong_shape_and_types(void)
{
    REFUSED("[]", "not a release feed");
    REFUSED("{}", "not a release feed");
    REFUSED("{\"data\": {}}", "not a release feed");
    REFUSED("\"releases\"", "not JSON"); /* jansson takes only an object or array at the top */
    REFUSED("{\"releases\": {}}", "releases: not a list");
    REFUSED("{\"releases\": [1]}", "releases[0]: not an object");
    REFUSED("{\"releases\": [[]]}", "releases[0]: not an object");
    REFUSED(
        ENTRY("\"platform\": \"iOS\", \"version\": 17.4, \"released\": \"2024-03-21\", \"security\": true"),
        "releases[1].version: not a string");
    REFUSED(ENTRY("\"platform\": \"iOS\", \"version\": \"17.4\", \"released\": 20240321, \"security\": true"),
            "releases[1].released: not a string");
    REFUSED(ENTRY("\"platform\": \"iOS\", \"version\": \"17.4\", \"released\": \"2024-03-21\", \"security\": "
                  "\"yes\""),
            "releases[1].security: not true or false");
    REFUSED(
        ENTRY("\"platform\": \"iOS\", \"version\": \"17.4\", \"released\": \"2024-03-21\", \"security\": 1"),
        "releases[1].security: not true or false");
    REFUSED(ENTRY("\"platform\": \"iOS\", \"version\": \"17.4\", \"released\": \"2024-03-21\""),
            "releases[1].security: missing");
    REFUSED(ENTRY("\"platform\": \"iOS\", \"released\": \"2024-03-21\", \"security\": true"),
            "releases[1].version: missing");
    REFUSED(ENTRY("\"version\": \"17.4\", \"released\": \"2024-03-21\", \"security\": true"),
            "releases[1].platform: missing");
    REFUSED(ENTRY(BASE ", \"build\": 21"), "releases[1].build: not a string");
    REFUSED(ENTRY(BASE ", \"build\": null"), "releases[1].build: not a string");
    REFUSED(ENTRY(BASE ", \"build\": \"21E 236\""), "releases[1].build: '21E 236' is not a build number");
    /* A misspelt key would silently widen the release to every device. */
    REFUSED(ENTRY(BASE ", \"device\": [\"iPhone15,2\"]"), "releases[1]: unknown key 'device'");
    REFUSED("{\"OSVersions\": {}}", "OSVersions: not a list");
    REFUSED("{\"OSVersions\": [[]]}", "OSVersions[0]: not an object");
    REFUSED("{\"OSVersions\": [{\"SecurityReleases\": {}}]}", "OSVersions[0].SecurityReleases: not a list");
    REFUSED("{\"OSVersions\": [], \"Models\": {\"Mac14,2\": {\"OSVersions\": [\"26\"]}}}",
            "Models.Mac14,2.OSVersions[0]: not a major version");
    REFUSED("{\"OSVersions\": [], \"Models\": {\"Mac 14\": {\"OSVersions\": [26]}}}",
            "Models: 'Mac 14' is not a model identifier");
    REFUSED("{\"PublicAssetSets\": {\"iOS\": {}}}", "PublicAssetSets.iOS: not a list");
    REFUSED("{\"etag\": \"x\", \"data\": {\"PublicAssetSets\": {\"iOS\": [{\"ProductVersion\": \"17.4\", "
            "\"PostingDate\": \"2024-13-01\"}]}}}",
            "PublicAssetSets.iOS[0].PostingDate: '2024-13-01' is not a date");
}

static void test_bad_versions(void)
{
    REFUSED(
        ENTRY(
            "\"platform\": \"iOS\", \"version\": \"17.x\", \"released\": \"2024-03-21\", \"security\": true"),
        "releases[1].version: '17.x' is not a version");
    static const char *const bad[] = {"",
                                      "1.2.3.4.5",
                                      "17.",
                                      ".17",
                                      "17..1",
                                      "-1",
                                      "17.4 ",
                                      "v17",
                                      "17,4",
                                      "１７",
                                      "17.4.1a",
                                      "1234567890.1",
                                      "99999999999999999999999999999999999999.1"};
    for (size_t i = 0; i < LMDM_ARRAY_LEN(bad); i++) {
        char json[512], want[128];
        snprintf(
            json, sizeof(json),
            "{\"releases\": [{\"platform\": \"macOS\", \"version\": \"%s\", \"released\": \"2024-03-21\", "
            "\"security\": true}]}",
            bad[i]);
        snprintf(want, sizeof(want), "releases[0].version: '");
        refused(json, strlen(json), want, __LINE__);
        refused(json, strlen(json), "is not a version", __LINE__);
    }
    /* The quoted value is cut short and printable. */
    lmdm_feed_t f;
    char err[256];
    const char *junk =
        "{\"releases\": [{\"platform\": \"iOS\", \"version\": "
        "\"\\u00e9\\n1111111111111111111111111111111111111111111111111\", \"released\": \"2024-03-21\", "
        "\"security\": true}]}";
    CHECK_INT_EQ(parse_str(junk, &f, err, sizeof(err)), -1);
    CHECK_STR_CONTAINS(err, "'???1111111111111111111111111111111111111...' is not a version");
    /* Four components and nine-digit components are versions. */
    lmdm_feed_t g;
    if (OK("{\"releases\": [{\"platform\": \"iOS\", \"version\": \"123456789.0.0.1\", \"released\": "
           "\"2024-03-21\", "
           "\"security\": false}]}",
           &g) == 0) {
        CHECK(g.n == 1 && strcmp(g.releases[0].version, "123456789.0.0.1") == 0);
        lmdm_feed_free(&g);
    }
    /* SOFA's version errors name the group and the entry. */
    REFUSED(
        "{\"OSVersions\": [{\"SecurityReleases\": [{\"ProductName\": \"iOS\", \"ProductVersion\": \"17.4\", "
        "\"ReleaseDate\": \"2024-03-05T00:00:00Z\"}]}, {\"SecurityReleases\": [{}, {\"ProductName\": "
        "\"iOS\", "
        "\"ProductVersion\": \"17.x\", \"ReleaseDate\": \"2024-03-05T00:00:00Z\"}]}]}",
        "OSVersions[1].SecurityReleases[0].ProductVersion: missing");
    REFUSED(
        "{\"OSVersions\": [{\"SecurityReleases\": [{\"ProductName\": \"iOS\", \"ProductVersion\": \"17.x\", "
        "\"ReleaseDate\": \"2024-03-05T00:00:00Z\"}]}]}",
        "OSVersions[0].SecurityReleases[0].ProductVersion: '17.x' is not a version");
}

static void test_bad_platforms_and_dates(void)
{
    REFUSED(ENTRY("\"platform\": \"tvOS\", \"version\": \"17.4\", \"released\": \"2024-03-21\", "
                  "\"security\": true"),
            "releases[1].platform: 'tvOS' is not a platform (iOS or macOS)");
    REFUSED(
        ENTRY(
            "\"platform\": \"ios\", \"version\": \"17.4\", \"released\": \"2024-03-21\", \"security\": true"),
        "releases[1].platform: 'ios' is not a platform");
    REFUSED(ENTRY("\"platform\": 1, \"version\": \"17.4\", \"released\": \"2024-03-21\", \"security\": true"),
            "releases[1].platform: not a string");
    REFUSED("{\"OSVersions\": [{\"SecurityReleases\": [{\"ProductName\": \"visionOS\", \"ProductVersion\": "
            "\"2.0\", "
            "\"ReleaseDate\": \"2024-09-16T00:00:00Z\"}]}]}",
            "OSVersions[0].SecurityReleases[0].ProductName: 'visionOS' is not iOS or macOS");
    REFUSED("{\"OSVersions\": [{\"Latest\": {\"ProductVersion\": \"2.0\", \"ReleaseDate\": "
            "\"2024-09-16T00:00:00Z\"}}]}",
            "OSVersions[0].Latest: no ProductName or UpdateName tells iOS from macOS");

    static const char *const bad[] = {"2026-02-30",  "2026-02-29", "2100-02-29", "2026-13-01",
                                      "2026-00-10",  "2026-04-31", "2026-1-05",  "26-01-05",
                                      "2026/01/05",  "1969-12-31", "",           "2026-01-05T00:00:00Z",
                                      "2026-01-05 ", "２026-01-05"};
    for (size_t i = 0; i < LMDM_ARRAY_LEN(bad); i++) {
        char json[512], want[128];
        snprintf(json, sizeof(json),
                 "{\"releases\": [{\"platform\": \"iOS\", \"version\": \"17.4\", \"released\": \"%s\", "
                 "\"security\": true}]}",
                 bad[i]);
        snprintf(want, sizeof(want), "releases[0].released: '%s' is not a date", bad[i]);
        refused(json, strlen(json), (unsigned char)bad[i][0] < 0x80 ? want : "is not a date", __LINE__);
    }
    REFUSED(
        "{\"OSVersions\": [{\"SecurityReleases\": [{\"ProductName\": \"iOS\", \"ProductVersion\": \"17.4\", "
        "\"ReleaseDate\": \"2026-02-30T00:00:00Z\"}]}]}",
        "OSVersions[0].SecurityReleases[0].ReleaseDate: '2026-02-30T00:00:00Z' is not a date");
}

static void test_bad_devices(void)
{
    REFUSED(ENTRY(BASE ", \"devices\": [1]"), "releases[1].devices[0]: not a string");
    REFUSED(ENTRY(BASE ", \"devices\": [\"iPhone15,2\", null]"), "releases[1].devices[1]: not a string");
    REFUSED(ENTRY(BASE ", \"devices\": [[[[\"iPhone15,2\"]]]]"), "releases[1].devices[0]: not a string");
    REFUSED(ENTRY(BASE ", \"devices\": \"iPhone15,2\""), "releases[1].devices: not a list");
    REFUSED(ENTRY(BASE ", \"devices\": {\"iPhone15,2\": 1}"), "releases[1].devices: not a list");
    REFUSED(ENTRY(BASE ", \"devices\": null"), "releases[1].devices: not a list");
    REFUSED(ENTRY(BASE ", \"devices\": [\"\"]"), "releases[1].devices[0]: '' is not a model identifier");
    REFUSED(ENTRY(BASE ", \"devices\": [\"iPhone 15\"]"),
            "releases[1].devices[0]: 'iPhone 15' is not a model identifier");
    REFUSED(
        "{\"OSVersions\": [{\"SecurityReleases\": [{\"ProductName\": \"iOS\", \"ProductVersion\": \"17.4\", "
        "\"ReleaseDate\": \"2024-03-05T00:00:00Z\", \"SupportedDevices\": [17]}]}]}",
        "OSVersions[0].SecurityReleases[0].SupportedDevices[0]: not a string");

    /* Too many devices on one release. */
    size_t n = LMDM_FEED_MAX_DEVICES + 1;
    char *json = malloc(n * 24 + 256);
    size_t k = (size_t)sprintf(json, "{\"releases\": [{" BASE ", \"devices\": [");
    for (size_t i = 0; i < n; i++)
        k += (size_t)sprintf(json + k, "%s\"iPhone%zu,1\"", i ? "," : "", i);
    k += (size_t)sprintf(json + k, "]}]}");
    refused(json, k, "releases[0].devices: 4001 devices, at most 4000", __LINE__);
    free(json);
}

static char *many_releases(size_t n, size_t *len)
{
    char *json = malloc(n * 120 + 64);
    size_t k = (size_t)sprintf(json, "{\"releases\": [");
    for (size_t i = 0; i < n; i++)
        k += (size_t)sprintf(
            json + k,
            "%s{\"platform\": \"iOS\", \"version\": \"1.%zu.%zu\", \"released\": \"2024-03-21\", "
            "\"security\": false}",
            i ? "," : "", i / 100, i % 100);
    k += (size_t)sprintf(json + k, "]}");
    *len = k;
    return json;
}

static void test_too_many_releases(void)
{
    size_t len;
    char *json = many_releases(LMDM_FEED_MAX_RELEASES + 1, &len);
    refused(json, len, "releases: 20001 entries, at most 20000", __LINE__);
    free(json);

    json = many_releases(LMDM_FEED_MAX_RELEASES, &len);
    lmdm_feed_t f;
    char err[256];
    CHECK_INT_EQ(lmdm_feed_parse(json, len, &f, err, sizeof(err)), 0);
    CHECK_INT_EQ(f.n, LMDM_FEED_MAX_RELEASES);
    CHECK(well_ordered(&f));
    CHECK(f.n && strcmp(f.releases[f.n - 1].version, "1.199.99") == 0);
    lmdm_feed_free(&f);
    free(json);

    /* SOFA: two groups of 10001 entries each. */
    size_t per = LMDM_FEED_MAX_RELEASES / 2 + 1;
    char *sofa = malloc(2 * per * 140 + 128);
    size_t k = (size_t)sprintf(sofa, "{\"OSVersions\": [");
    for (int g = 0; g < 2; g++) {
        k += (size_t)sprintf(sofa + k, "%s{\"SecurityReleases\": [", g ? "," : "");
        for (size_t i = 0; i < per; i++)
            k += (size_t)sprintf(sofa + k,
                                 "%s{\"ProductName\": \"macOS\", \"ProductVersion\": \"%d.%zu\", "
                                 "\"ReleaseDate\": \"2024-03-05T00:00:00Z\"}",
                                 i ? "," : "", 10 + g, i);
        k += (size_t)sprintf(sofa + k, "]}");
    }
    k += (size_t)sprintf(sofa + k, "]}");
    refused(sofa, k, "OSVersions[1].SecurityReleases[9999]: more than 20000 releases", __LINE__);
    free(sofa);
}

static void test_platform_names(void)
{
    CHECK_STR_EQ(lmdm_platform_feed_name(LMDM_PLATFORM_IOS), "iOS");
    CHECK_STR_EQ(lmdm_platform_feed_name(LMDM_PLATFORM_MACOS), "macOS");
    CHECK_STR_EQ(lmdm_platform_feed_name((lmdm_platform_t)0), "unknown");
}

int main(void)
{
    RUN(test_sofa_v2_ios);
    RUN(test_sofa_v1_ios);
    RUN(test_sofa_macos);
    RUN(test_gdmf);
    RUN(test_lmdm_full_and_minimal);
    RUN(test_lmdm_sort_and_dedupe);
    RUN(test_small_sofa);
    RUN(test_not_json);
    RUN(test_wrong_shape_and_types);
    RUN(test_bad_versions);
    RUN(test_bad_platforms_and_dates);
    RUN(test_bad_devices);
    RUN(test_too_many_releases);
    RUN(test_platform_names);
    return harness_finish();
}
