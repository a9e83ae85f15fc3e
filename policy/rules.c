/* Device-wide rules: the key table, and the merge of every tenant's rules to
 * the strictest with provenance (lmdm/rules.h, DESIGN.md flow 5).
 *
 * This file is what an auditor reads to know how the broker combines
 * several organizations' requirements: one row per key, with its combine
 * rule, its range and why that rule is the strictest. Pure: libc only, no
 * allocation, no clock. */
#include <stdio.h>
#include <string.h>

#include "lmdm/rules.h"

#define PASSCODE LMDM_RULE_SECTION_PASSCODE
#define ENCRYPTION LMDM_RULE_SECTION_ENCRYPTION
#define RESTRICTIONS LMDM_RULE_SECTION_RESTRICTIONS
#define BOOL LMDM_RULE_BOOL
#define INT LMDM_RULE_INT
#define OR LMDM_COMBINE_OR
#define AND LMDM_COMBINE_AND
#define MAX LMDM_COMBINE_MAX
#define MIN LMDM_COMBINE_MIN

/* Ranges are Apple's (mdm/profiles/com.apple.mobiledevice.passwordpolicy.yaml
 * and the passcode declaration) except where a row says otherwise.
 *
 * Left out on purpose: maxFailedAttempts (declaration MaximumFailedAttempts).
 * When it is exceeded, iOS erases the device: a tenant that could set it low
 * could make the owner's phone wipe itself after two mistyped passcodes,
 * which is a remote wipe trigger by another name. The owner keeps the
 * device's own setting; a tenant asking for it gets an error that names it
 * (tenants/rules_json.c). */
static const lmdm_rule_key_t keys[] = {
    /* ---- passcode: com.apple.mobiledevice.passwordpolicy, declaration passcode.settings ---- */
    {"requirePasscode", PASSCODE, "forcePIN", "RequirePasscode", BOOL, OR, 0, 1, "a passcode on the device",
     "Apple: boolean-or. A device with a passcode satisfies an organization that does not ask for one, "
     "never the reverse."},
    {"allowSimple", PASSCODE, "allowSimple", "RequireComplexPasscode", BOOL, AND, 0, 1,
     "no simple passcode (repeated or sequential characters such as 1111 or 1234)",
     "false forbids simple passcodes, so any false wins. The declaration says it with the opposite sign "
     "(RequireComplexPasscode = not allowSimple) and combines it with boolean-or: the same rule."},
    {"requireAlphanumeric", PASSCODE, "requireAlphanumeric", "RequireAlphanumericPasscode", BOOL, OR, 0, 1,
     "a passcode with letters, not only digits", "Apple: boolean-or."},
    {"minLength", PASSCODE, "minLength", "MinimumLength", INT, MAX, 0, 16,
     "a passcode of at least %ld characters",
     "Apple: number-max. A longer passcode satisfies every shorter minimum."},
    {"minComplexChars", PASSCODE, "minComplexChars", "MinimumComplexCharacters", INT, MAX, 0, 4,
     "at least %ld characters in the passcode that are neither letters nor digits",
     "Apple: number-max. More special characters satisfy every smaller minimum."},
    {"maxPINAgeInDays", PASSCODE, "maxPINAgeInDays", "MaximumPasscodeAgeInDays", INT, MIN, 1, 730,
     "a new passcode at least every %ld days",
     "Apple: number-min. Changing the passcode more often satisfies every longer maximum age. The range "
     "starts at 1, not at Apple's 0: Apple does not say what 0 means, and read as \"never expires\" it would "
     "be the weakest value, which number-min would pick. An organization without a maximum age leaves the "
     "key out."},
    {"maxInactivity", PASSCODE, "maxInactivity", "MaximumInactivityInMinutes", INT, MIN, 1, 15,
     "the device locks itself after at most %ld minutes without use",
     "Apple: number-min. Locking sooner satisfies every later limit. Range 1..15 minutes, iOS's (macOS would "
     "take up to 60; 15 satisfies both). 0 is refused for the same reason as maxPINAgeInDays' 0."},
    {"maxGracePeriod", PASSCODE, "maxGracePeriod", "MaximumGracePeriodInMinutes", INT, MIN, 0, 240,
     "the passcode asked for again at most %ld minutes after the device locks",
     "Apple: number-min; 0 asks for the passcode as soon as the device locks, the strictest. Apple gives no "
     "range: 240 minutes (4 hours) is the longest choice iOS offers."},
    {"pinHistory", PASSCODE, "pinHistory", "PasscodeReuseLimit", INT, MAX, 1, 50,
     "a new passcode different from the last %ld",
     "Departs from Apple: the declaration combines PasscodeReuseLimit with number-min, but remembering more "
     "passcodes forbids more reuse, so a longer history is stricter. lmdm takes the maximum, which also "
     "satisfies every organization that asked for a shorter history."},

    /* ---- encryption ---- */
    {"required", ENCRYPTION, "Enable", NULL, BOOL, OR, 0, 1,
     "the device encrypted (iPhone and iPad: a passcode, which turns on data protection; Mac: FileVault on)",
     "Any organization that requires encryption wins. iOS encrypts with the passcode, so there it sets "
     "forcePIN; macOS gets com.apple.MCX.FileVault2 with Enable = On, deferred to the user's next logout. "
     "The recovery key is shown to the owner and never escrowed to an organization."},

    /* ---- restrictions: the managed-data keys of com.apple.applicationaccess (policy/keys.c) ---- */
    {"allowEnterpriseBookBackup", RESTRICTIONS, "allowEnterpriseBookBackup", NULL, BOOL, AND, 0, 1,
     "no backup of the organization's books", "false keeps managed data in: any false wins."},
    {"allowEnterpriseBookMetadataSync", RESTRICTIONS, "allowEnterpriseBookMetadataSync", NULL, BOOL, AND, 0,
     1, "no sync of notes and highlights of the organization's books",
     "false keeps managed data in: any false wins."},
    {"allowManagedAppsCloudSync", RESTRICTIONS, "allowManagedAppsCloudSync", NULL, BOOL, AND, 0, 1,
     "no iCloud sync for the organizations' apps", "false keeps managed data in: any false wins."},
    {"allowManagedToWriteUnmanagedContacts", RESTRICTIONS, "allowManagedToWriteUnmanagedContacts", NULL, BOOL,
     AND, 0, 1, "the organizations' apps cannot write contacts into personal accounts",
     "false keeps managed data in: any false wins (Apple's default is false)."},
    {"allowOpenFromManagedToUnmanaged", RESTRICTIONS, "allowOpenFromManagedToUnmanaged", NULL, BOOL, AND, 0,
     1, "documents of the organizations' apps open only in the organizations' apps",
     "false keeps managed data in: any false wins."},
    {"allowOpenFromUnmanagedToManaged", RESTRICTIONS, "allowOpenFromUnmanagedToManaged", NULL, BOOL, AND, 0,
     1, "personal documents do not open in the organizations' apps",
     "false keeps personal data out of managed apps: any false wins."},
    {"allowUnmanagedToReadManagedContacts", RESTRICTIONS, "allowUnmanagedToReadManagedContacts", NULL, BOOL,
     AND, 0, 1, "personal apps cannot read the organizations' contacts",
     "false keeps managed data in: any false wins (Apple's default is false)."},
    {"forceAirDropUnmanaged", RESTRICTIONS, "forceAirDropUnmanaged", NULL, BOOL, OR, 0, 1,
     "AirDrop counts as a personal destination for the organizations' documents",
     "true keeps managed data in: any true wins."},
    {"requireManagedPasteboard", RESTRICTIONS, "requireManagedPasteboard", NULL, BOOL, OR, 0, 1,
     "copy and paste between the organizations' apps and personal apps follows the open-in rules",
     "true keeps managed data in: any true wins."},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))
_Static_assert(NKEYS <= LMDM_RULES_MAX_KEYS, "the bit sets of lmdm_rules_t hold LMDM_RULES_MAX_KEYS keys");
#define KEY_MASK (NKEYS >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << NKEYS) - 1))

const lmdm_rule_key_t *lmdm_rule_keys(size_t *n)
{
    if (n) *n = NKEYS;
    return keys;
}

size_t lmdm_rule_key_count(void)
{
    return NKEYS;
}

int lmdm_rule_key_find(lmdm_rule_section_t section, const char *name)
{
    if (!name) return -1;
    for (size_t k = 0; k < NKEYS; k++)
        if (keys[k].section == section && strcmp(keys[k].name, name) == 0) return (int)k;
    return -1;
}

int lmdm_rule_declaration_inverted(int k)
{
    return k >= 0 && (size_t)k < NKEYS && strcmp(keys[k].name, "allowSimple") == 0;
}

/* ---- the combine rules ---- */

static long combine(lmdm_combine_t c, long a, long b)
{
    switch (c) {
    case LMDM_COMBINE_OR: return (a != 0) || (b != 0);
    case LMDM_COMBINE_AND: return (a != 0) && (b != 0);
    case LMDM_COMBINE_MAX: return a > b ? a : b;
    case LMDM_COMBINE_MIN: return a < b ? a : b;
    }
    return a;
}

/* A value as the merge reads it: booleans as 0/1. */
static long norm(const lmdm_rule_key_t *key, long v)
{
    return key->type == LMDM_RULE_BOOL ? v != 0 : v;
}

long lmdm_rule_combine(int k, long a, long b)
{
    if (k < 0 || (size_t)k >= NKEYS) return a;
    return combine(keys[k].combine, norm(&keys[k], a), norm(&keys[k], b));
}

int lmdm_rule_at_least_as_strict(int k, long a, long b)
{
    if (k < 0 || (size_t)k >= NKEYS) return 0;
    return lmdm_rule_combine(k, a, b) == norm(&keys[k], a);
}

/* ---- the merge ---- */

/* Insert domain d (from input i) into the sorted list l of out, or add i to
 * its provenance when it is there already. A full list keeps its smallest
 * entries: the result is the first LMDM_RULES_MAX_DOMAINS of the sorted
 * union whatever the order of the inputs. */
static void domain_add(lmdm_merged_t *out, int l, const char *d, size_t i)
{
    const char **v = out->domains[l];
    uint64_t *from = out->domain_from[l];
    size_t n = out->ndomains[l], lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v[mid], d);
        if (c == 0) {
            from[mid] |= (uint64_t)1 << i;
            return;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (n == LMDM_RULES_MAX_DOMAINS) {
        out->truncated = 1;
        if (lo == n) return; /* sorts after every kept domain: dropped */
        n--;                 /* the last one makes room */
    }
    memmove(&v[lo + 1], &v[lo], (n - lo) * sizeof(v[0]));
    memmove(&from[lo + 1], &from[lo], (n - lo) * sizeof(from[0]));
    v[lo] = d;
    from[lo] = (uint64_t)1 << i;
    out->ndomains[l] = n + 1;
}

static void merge_domains(const lmdm_rules_t *in, size_t n, lmdm_merged_t *out)
{
    for (int l = 0; l < LMDM_DOMAINS_COUNT; l++) {
        out->ndomains[l] = 0;
        for (size_t i = 0; i < n; i++) {
            const char *const *list = in[i].domains[l];
            for (size_t j = 0; list && j < in[i].ndomains[l]; j++)
                if (list[j]) domain_add(out, l, list[j], i);
        }
        out->rules.domains[l] = out->domains[l];
        out->rules.ndomains[l] = out->ndomains[l];
    }
}

void lmdm_rules_merge(const lmdm_rules_t *in, size_t n, lmdm_merged_t *out)
{
    if (n > LMDM_RULES_MAX_TENANTS) n = LMDM_RULES_MAX_TENANTS;
    lmdm_rules_t *r = &out->rules;
    memset(r, 0, sizeof(*r));
    memset(out->drivers, 0, sizeof(out->drivers));
    out->truncated = 0;

    /* Each key: the strictest value over the inputs that set it. */
    for (size_t i = 0; i < n; i++) {
        for (uint64_t s = in[i].set & KEY_MASK; s; s &= s - 1) {
            int k = __builtin_ctzll(s);
            uint64_t bit = (uint64_t)1 << k;
            long v = norm(&keys[k], in[i].value[k]);
            r->value[k] = (r->set & bit) ? combine(keys[k].combine, r->value[k], v) : v;
            r->set |= bit;
        }
    }
    /* Provenance: the inputs that ask for exactly the merged value. */
    for (size_t i = 0; i < n; i++) {
        for (uint64_t s = in[i].set & KEY_MASK; s; s &= s - 1) {
            int k = __builtin_ctzll(s);
            if (norm(&keys[k], in[i].value[k]) == r->value[k]) out->drivers[k] |= (uint64_t)1 << i;
        }
    }
    merge_domains(in, n, out);
}

int lmdm_rules_check(const lmdm_rules_t *r, int *bad_key)
{
    for (size_t k = 0; k < NKEYS; k++) {
        if (!(r->set & ((uint64_t)1 << k))) continue;
        if (r->value[k] < keys[k].min || r->value[k] > keys[k].max) {
            if (bad_key) *bad_key = (int)k;
            return -1;
        }
    }
    if ((r->set & ~KEY_MASK) != 0) {
        if (bad_key) *bad_key = -1; /* a bit with no key */
        return -1;
    }
    return 0;
}

int lmdm_rules_empty(const lmdm_merged_t *m)
{
    if (m->rules.set & KEY_MASK) return 0;
    for (int l = 0; l < LMDM_DOMAINS_COUNT; l++)
        if (m->ndomains[l]) return 0;
    return 1;
}

int lmdm_rules_merged_equal(const lmdm_merged_t *a, const lmdm_merged_t *b)
{
    uint64_t set = a->rules.set & KEY_MASK;
    if (set != (b->rules.set & KEY_MASK)) return 0;
    for (uint64_t s = set; s; s &= s - 1) {
        int k = __builtin_ctzll(s);
        if (a->rules.value[k] != b->rules.value[k]) return 0;
    }
    for (int l = 0; l < LMDM_DOMAINS_COUNT; l++) {
        if (a->ndomains[l] != b->ndomains[l]) return 0;
        for (size_t j = 0; j < a->ndomains[l]; j++)
            if (strcmp(a->domains[l][j], b->domains[l][j]) != 0) return 0;
    }
    return 1;
}

/* ---- plain words ---- */

size_t lmdm_rule_plain(int k, long v, char *buf, size_t len)
{
    if (k < 0 || (size_t)k >= NKEYS) return (size_t)snprintf(buf, len, "unknown rule");
    const lmdm_rule_key_t *key = &keys[k];
    int n;
    if (key->type == LMDM_RULE_BOOL) {
        /* The plain text says what the strict value asks for. */
        long strict = key->combine == LMDM_COMBINE_OR ? 1 : 0;
        n = snprintf(buf, len, "%s%s", (v != 0) == strict ? "" : "not required: ", key->plain);
    } else {
        const char *at = strstr(key->plain, "%ld");
        if (at)
            n = snprintf(buf, len, "%.*s%ld%s", (int)(at - key->plain), key->plain, v, at + 3);
        else
            n = snprintf(buf, len, "%s", key->plain);
    }
    return n < 0 ? 0 : (size_t)n;
}
