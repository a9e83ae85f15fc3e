/* Device-wide rules (passcode, encryption, managed-data restrictions, managed
 * domains) as one internal model, and their merge to the strictest over every
 * tenant of a device, with provenance (which tenants drove each key).
 * DESIGN.md flow 5. The model and the merge live in policy/ (pure, libc
 * only); JSON and plist conversions live in tenants/ (rules_json.c,
 * rules_profile.c).
 *
 * Keys (lmdm_rule_keys()): each has its API name, the key of the profile
 * payload it maps to (com.apple.mobiledevice.passwordpolicy,
 * com.apple.applicationaccess, ...) and of the passcode declaration where one
 * exists, a type, a combine rule and a range. Combine rules:
 *   OR   a boolean where true is stricter (requirePasscode): any true wins
 *   AND  a boolean where false is stricter (allowSimple): any false wins
 *   MAX  a number where more is stricter (minLength, pinHistory)
 *   MIN  a number where less is stricter (maxPINAgeInDays, maxInactivity)
 * Apple's declarative combine rules are the reference; where one is not the
 * strictest (PasscodeReuseLimit combines with number-min, but a longer history
 * is stricter) lmdm takes the strictest, and the key's `why` says so. */
#ifndef LMDM_RULES_H
#define LMDM_RULES_H

#include <stddef.h>
#include <stdint.h>

#define LMDM_RULES_MAX_KEYS 64     /* room in the bit sets below */
#define LMDM_RULES_MAX_TENANTS 64  /* inputs of one merge (provenance is a 64-bit set) */
#define LMDM_RULES_MAX_DOMAINS 256 /* per domain list, after the merge */

typedef enum {
    LMDM_RULE_SECTION_PASSCODE = 0,
    LMDM_RULE_SECTION_ENCRYPTION,
    LMDM_RULE_SECTION_RESTRICTIONS, /* managed-data keys of com.apple.applicationaccess only */
} lmdm_rule_section_t;

typedef enum { LMDM_RULE_BOOL = 0, LMDM_RULE_INT } lmdm_rule_type_t;
typedef enum { LMDM_COMBINE_OR = 0, LMDM_COMBINE_AND, LMDM_COMBINE_MAX, LMDM_COMBINE_MIN } lmdm_combine_t;

typedef struct lmdm_rule_key {
    const char *name;            /* API name within its section, e.g. "minLength" */
    lmdm_rule_section_t section;
    const char *payload_key;     /* key in the profile payload of the section */
    const char *declaration_key; /* key in com.apple.configuration.passcode.settings, or NULL */
    lmdm_rule_type_t type;
    lmdm_combine_t combine;
    long min, max;               /* range (INT); 0..1 for BOOL */
    const char *plain;           /* the requirement in plain words, printf format with one %ld (INT) */
    const char *why;             /* why this combine rule is the strictest (and where it departs from Apple's) */
} lmdm_rule_key_t;

/** The keys, in a fixed order (their index is their bit in the sets below). */
const lmdm_rule_key_t *lmdm_rule_keys(size_t *n);
/** The index of section/name, or -1. */
int lmdm_rule_key_find(lmdm_rule_section_t section, const char *name);

/** Managed-domain lists of com.apple.domains (single-copy payload): merged as
 * the union of every tenant's own domains. */
typedef enum {
    LMDM_DOMAINS_EMAIL = 0,     /* EmailDomains */
    LMDM_DOMAINS_WEB,           /* WebDomains */
    LMDM_DOMAINS_PASSWORD,      /* SafariPasswordAutoFillDomains */
    LMDM_DOMAINS_CROSS_SITE,    /* CrossSiteTrackingPreventionRelaxedDomains */
    LMDM_DOMAINS_COUNT
} lmdm_domain_list_t;

/** One tenant's rules: a value for each key whose bit is set in `set`, and
 * its domains. Strings are borrowed here; the lists that the functions of
 * lmdm/rules_json.h fill are heap blocks owned by the rules, released with
 * lmdm_rules_free(). */
typedef struct lmdm_rules {
    uint64_t set;
    long value[LMDM_RULES_MAX_KEYS];
    const char *const *domains[LMDM_DOMAINS_COUNT];
    size_t ndomains[LMDM_DOMAINS_COUNT];
} lmdm_rules_t;

/** The merge of n tenants' rules. drivers[k] has bit i set when input i asks
 * for exactly the merged value of key k (the tenants that "drove" it); for
 * domains, which tenant gave each domain is domain_from[list][j] (an input
 * index). Domain strings are borrowed from the inputs, deduplicated, sorted. */
typedef struct lmdm_merged {
    lmdm_rules_t rules;
    uint64_t drivers[LMDM_RULES_MAX_KEYS];
    const char *domains[LMDM_DOMAINS_COUNT][LMDM_RULES_MAX_DOMAINS];
    uint64_t domain_from[LMDM_DOMAINS_COUNT][LMDM_RULES_MAX_DOMAINS]; /* bit set of inputs giving it */
    size_t ndomains[LMDM_DOMAINS_COUNT];
    int truncated; /* a domain list had more than LMDM_RULES_MAX_DOMAINS entries */
} lmdm_merged_t;

/** Merge n (<= LMDM_RULES_MAX_TENANTS; more are ignored) rule sets key by key
 * to the strictest. Commutative and idempotent: the order of the inputs does
 * not change the result, and merging a result with one of its inputs gives
 * the result. out->rules.domains point at out->domains, so out->rules can be
 * an input of another merge. A domain list keeps the LMDM_RULES_MAX_DOMAINS
 * first domains in strcmp order of the union (so truncation too is
 * independent of the order of the inputs) and sets out->truncated. Values are
 * not range-checked here (lmdm_rules_check does that); booleans are read as
 * 0/1. Entries of out->domains beyond out->ndomains are left as they were.
 * No allocation: out is about 17 KB, keep it off small stacks. */
void lmdm_rules_merge(const lmdm_rules_t *in, size_t n, lmdm_merged_t *out);

/** 0 if every set value is within its key's range; else -1 with the key index
 * in *bad_key (-1 there for a bit of `set` that names no key). */
int lmdm_rules_check(const lmdm_rules_t *r, int *bad_key);

/** 1 if the merged result requires nothing (no key set, no domain). */
int lmdm_rules_empty(const lmdm_merged_t *m);

/* ---- helpers over the key table (added for the JSON, the profile and the tests) ---- */

/** The number of keys (lmdm_rule_keys()'s n). */
size_t lmdm_rule_key_count(void);

/** The strictest of two values of key k under its combine rule (booleans are
 * read as 0/1). combine(a, b) == combine(b, a); combine(a, a) == a. */
long lmdm_rule_combine(int k, long a, long b);

/** 1 if value a of key k is at least as strict as b (combine(a, b) == a). */
int lmdm_rule_at_least_as_strict(int k, long a, long b);

/** 1 if the declaration key of k holds the negation of the API value:
 * allowSimple = !RequireComplexPasscode. 0 for every other key. */
int lmdm_rule_declaration_inverted(int k);

/** Key k with value v in plain words into buf (always NUL-terminated when
 * len > 0): the key's `plain` with v in place of its %ld; for a boolean whose
 * value is the lenient one, "not required: " before it. Returns the length
 * the full text needs, as snprintf. */
size_t lmdm_rule_plain(int k, long v, char *buf, size_t len);

/** 1 if two merged results ask the device for the same thing: same keys,
 * values and domain lists (provenance is not compared). The broker reinstalls
 * its profile only when this is 0. */
int lmdm_rules_merged_equal(const lmdm_merged_t *a, const lmdm_merged_t *b);

#endif
