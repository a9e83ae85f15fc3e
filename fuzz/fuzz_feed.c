/* libFuzzer target: OS release feeds (lmdm, SOFA v1/v2, GDMF) as imported
 * or polled. Parsed or refused whole: a refusal leaves a reason and an empty
 * feed; an accepted feed is sorted, unique, within the limits, and every
 * device list is sorted and unique. No crash, no leak. */
#include <stdint.h>
#include <string.h>

#include "lmdm/release_feed.h"

/* Numeric comparison of dotted versions (the feed's order). */
static int vcmp(const char *a, const char *b)
{
    while (*a || *b) {
        unsigned long x = 0, y = 0;
        for (; *a && *a != '.'; a++)
            x = x * 10 + (unsigned long)(*a - '0');
        for (; *b && *b != '.'; b++)
            y = y * 10 + (unsigned long)(*b - '0');
        if (x != y) return x < y ? -1 : 1;
        if (*a == '.') a++;
        if (*b == '.') b++;
    }
    return 0;
}

static void check_release(const lmdm_os_release_t *r)
{
    if (r->platform != LMDM_PLATFORM_IOS && r->platform != LMDM_PLATFORM_MACOS) __builtin_trap();
    size_t dots = 0, n = strlen(r->version);
    if (n == 0 || n > 39 || !r->build || strlen(r->build) > 32) __builtin_trap();
    for (size_t i = 0; i < n; i++) {
        if (r->version[i] == '.')
            dots++;
        else if (r->version[i] < '0' || r->version[i] > '9')
            __builtin_trap();
    }
    if (dots > 3 || r->ndevices > LMDM_FEED_MAX_DEVICES || (r->ndevices && !r->devices)) __builtin_trap();
    for (size_t i = 0; i < r->ndevices; i++) {
        if (!r->devices[i][0]) __builtin_trap();
        if (i && strcmp(r->devices[i - 1], r->devices[i]) >= 0) __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lmdm_feed_t f;
    char err[256] = "";
    if (lmdm_feed_parse((const char *)data, size, &f, err, sizeof(err)) != 0) {
        if (!err[0] || f.n || f.releases || f.priv || f.format) __builtin_trap();
        return 0;
    }
    if (!f.format || f.n > LMDM_FEED_MAX_RELEASES) __builtin_trap();
    for (size_t i = 0; i < f.n; i++) {
        check_release(&f.releases[i]);
        if (i == 0) continue;
        const lmdm_os_release_t *q = &f.releases[i - 1], *r = &f.releases[i];
        if (q->platform > r->platform || (q->platform == r->platform && vcmp(q->version, r->version) >= 0))
            __builtin_trap();
    }
    lmdm_feed_free(&f);
    return 0;
}
