/* OS release feeds (issue 7, item 1): `lmdm releases import FILE` and the
 * polled release_feed_url. broker/osupdate/feed.c parses four formats into
 * one list of lmdm_os_release_t (lmdm/osupdate.h):
 *
 *   lmdm     the broker's own (docs/osupdate.md):
 *            {"releases": [{"platform": "iOS" | "macOS", "version": "17.4.1",
 *              "build": "21E236", "released": "2024-03-21", "security": true,
 *              "devices": ["iPhone15,2", ...]}]}   (build, devices optional;
 *            no devices: every device of the platform; security is
 *            required; an unknown key is refused, so a misspelt "devices"
 *            cannot widen a release to every device)
 *   sofa-v2  the macadmins SOFA feed (https://sofafeed.macadmins.io/v2/...),
 *   sofa-v1  its deprecated v1, both for iOS and macOS. Entries are the
 *            SecurityReleases of each OSVersions group (plus Latest when it
 *            is not among them); ReleaseType other than "OS" (Rapid Security
 *            Responses, ...) is skipped. security = UniqueCVEsCount > 0 or a
 *            non-empty CVEs. Devices: iOS releases list model identifiers in
 *            SupportedDevices; an empty list takes the union of its
 *            OSVersions group; macOS devices are the model identifiers of
 *            "Models" whose OSVersions include the release's major version.
 *            v1's placeholder Latest builds ("26A000") are not used.
 *            Release day: the date part of ReleaseDate ("2026-08-17T00:00:00Z").
 *   gdmf     Apple's gdmf.apple.com/v2/pmv answer ({"PublicAssetSets": {"iOS":
 *            [...], "macOS": [...]}, "AssetSets": {...}}, also inside SOFA's
 *            cache wrapper {"etag", "data"}): both sets; release day =
 *            PostingDate; security = 0 (GDMF does not say); iOS devices =
 *            the iPhone/iPad/iPod identifiers of SupportedDevices (entries
 *            with only watches, TVs, HomePods are skipped); macOS lists board
 *            ids there, so a macOS release has no device list. Other
 *            platforms (visionOS) are skipped.
 *
 * A (platform, version) listed more than once (versions compared with
 * lmdm_osversion_cmp: "17.4" is "17.4.0") becomes one release: the earliest
 * day, security if any says so, the shortest non-empty build, the union of
 * the device lists (no list on any: every device).
 *
 * The whole feed is rejected (-1, with the reason naming the entry) when any
 * entry is invalid: a bad version (digits and dots, 1 to 4 components of
 * at most 9 digits), an unknown platform, a bad date (YYYY-MM-DD, a real day
 * from 1970), a wrong type, too many entries or devices, a model identifier
 * or build with odd characters, not JSON, duplicate keys, NUL characters.
 * Nothing is partly imported. */
#ifndef LMDM_RELEASE_FEED_H
#define LMDM_RELEASE_FEED_H

#include <stddef.h>

#include "lmdm/osupdate.h"

#define LMDM_FEED_MAX_RELEASES 20000
#define LMDM_FEED_MAX_DEVICES 4000  /* per release */
#define LMDM_FEED_MAX_BYTES (16u << 20) /* the largest real feed is 0.5 MB */

typedef struct lmdm_feed {
    const char *format;          /* "lmdm", "sofa-v2", "sofa-v1" or "gdmf" (static) */
    lmdm_os_release_t *releases; /* sorted by platform, then version (lmdm_osversion_cmp); unique */
    size_t n;
    size_t skipped;              /* entries left out (SOFA: not ReleaseType "OS"; GDMF: not iOS/macOS) */
    void *priv;                  /* storage of the strings */
} lmdm_feed_t;

/** Parses a feed of any of the four formats (recognised from its shape).
 * 0, or -1 with err set and *out empty. Input need not be NUL-terminated. */
int lmdm_feed_parse(const char *data, size_t len, lmdm_feed_t *out, char *err, size_t errlen);
void lmdm_feed_free(lmdm_feed_t *f);

/** The platform's name in feeds and the API ("iOS", "macOS"). */
const char *lmdm_platform_feed_name(lmdm_platform_t p);

#endif
