/* Device-wide rules: the key table against Apple's schema, every key's
 * combine rule (ties, absent keys, one tenant, ten tenants), a property test
 * of the merge (commutative, idempotent, never weaker than an input), the
 * JSON and payload conversions with hostile input, provenance as JSON, and
 * the broker's profile (deterministic, hash changes with the content). */
#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lmdm/policy.h"
#include "lmdm/rules.h"
#include "lmdm/rules_json.h"
#include "lmdm/rules_profile.h"

#define BIT(k) ((uint64_t)1 << (k))

static int key(lmdm_rule_section_t s, const char *name)
{
    int k = lmdm_rule_key_find(s, name);
    if (k < 0) harness_fail(__FILE__, __LINE__, "no key %s", name);
    return k < 0 ? 0 : k;
}
#define PK(name) key(LMDM_RULE_SECTION_PASSCODE, name)
#define RK(name) key(LMDM_RULE_SECTION_RESTRICTIONS, name)
#define ENC key(LMDM_RULE_SECTION_ENCRYPTION, "required")

static void put(lmdm_rules_t *r, int k, long v)
{
    r->set |= BIT(k);
    r->value[k] = v;
}

static lmdm_merged_t *merged_new(void)
{
    return calloc(1, sizeof(lmdm_merged_t));
}

static char *slurp(const char *rel)
{
    const char *spec = getenv("LMDM_SPEC");
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", spec ? spec : "tests/data/apple-device-management", rel);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

/* ---- the key table against Apple's files ---- */

/* The range of a top-level payload key in one of Apple's profile YAMLs:
 * 1 and the range in min and max if it has one. */
static int yaml_range(const char *yaml, const char *k, long *min, long *max)
{
    char needle[128];
    snprintf(needle, sizeof(needle), "\n- key: %s\n", k);
    const char *at = strstr(yaml, needle);
    if (!at) return -1;
    const char *end = strstr(at + 1, "\n- key: ");
    const char *r = strstr(at, "\n  range:\n");
    if (!r || (end && r > end)) return 0;
    const char *mn = strstr(r, "min: "), *mx = strstr(r, "max: ");
    *min = strtol(mn + 5, NULL, 10);
    *max = strtol(mx + 5, NULL, 10);
    return 1;
}

static void test_table_matches_apple(void)
{
    size_t n;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&n);
    CHECK_INT_EQ(n, lmdm_rule_key_count());
    CHECK(n <= LMDM_RULES_MAX_KEYS);
    static const char *const passcode[] = {"requirePasscode", "allowSimple",     "requireAlphanumeric",
                                           "minLength",       "minComplexChars", "maxPINAgeInDays",
                                           "maxInactivity",   "maxGracePeriod",  "pinHistory"};
    for (size_t i = 0; i < LMDM_ARRAY_LEN(passcode); i++)
        CHECK(lmdm_rule_key_find(LMDM_RULE_SECTION_PASSCODE, passcode[i]) >= 0);
    CHECK_INT_EQ(lmdm_rule_key_find(LMDM_RULE_SECTION_PASSCODE, "maxFailedAttempts"), -1);
    CHECK_STR_EQ(keys[PK("requirePasscode")].payload_key, "forcePIN");
    CHECK(lmdm_rule_key_find(LMDM_RULE_SECTION_ENCRYPTION, "required") >= 0);
    CHECK(lmdm_rule_declaration_inverted(PK("allowSimple")));
    CHECK(!lmdm_rule_declaration_inverted(PK("minLength")));

    char *yaml = slurp("mdm/profiles/com.apple.mobiledevice.passwordpolicy.yaml");
    char *tsv = slurp("declarations.tsv");
    CHECK(yaml && tsv);
    if (!yaml || !tsv) goto out;
    for (size_t k = 0; k < n; k++) {
        CHECK(keys[k].plain && *keys[k].plain && keys[k].why && *keys[k].why);
        if (keys[k].type == LMDM_RULE_BOOL) {
            CHECK_INT_EQ(keys[k].min, 0);
            CHECK_INT_EQ(keys[k].max, 1);
        } else {
            CHECK(strstr(keys[k].plain, "%ld") != NULL);
        }
        if (keys[k].section != LMDM_RULE_SECTION_PASSCODE) continue;
        /* Every passcode key is a key of Apple's payload, with Apple's range,
         * except the documented departures (0 refused where MIN would read
         * "no limit" as the strictest; maxGracePeriod has no Apple range). */
        long amin = 0, amax = 0;
        int has = yaml_range(yaml, keys[k].payload_key, &amin, &amax);
        CHECK(has >= 0);
        if (has == 1) {
            CHECK_INT_EQ(keys[k].max, amax);
            if (keys[k].min != amin) {
                CHECK_INT_EQ(amin, 0);
                CHECK_INT_EQ(keys[k].min, 1);
                CHECK(keys[k].combine == LMDM_COMBINE_MIN);
            }
        }
        /* The declaration's combinetype is ours, except pinHistory (max: a
         * longer history is stricter) and allowSimple's inverted sign. */
        CHECK(keys[k].declaration_key != NULL);
        char needle[160];
        snprintf(needle, sizeof(needle), "\t%s\t<", keys[k].declaration_key);
        const char *row = strstr(tsv, needle);
        CHECK(row != NULL);
        if (!row) continue;
        const char *ct = strstr(row, "optional\t") + 9;
        lmdm_combine_t want = strncmp(ct, "boolean-or", 10) == 0   ? LMDM_COMBINE_OR
                              : strncmp(ct, "number-max", 10) == 0 ? LMDM_COMBINE_MAX
                                                                   : LMDM_COMBINE_MIN;
        if (lmdm_rule_declaration_inverted((int)k)) want = LMDM_COMBINE_AND;
        if (strcmp(keys[k].name, "pinHistory") == 0) {
            CHECK(want == LMDM_COMBINE_MIN);
            CHECK(keys[k].combine == LMDM_COMBINE_MAX);
            CHECK_STR_CONTAINS(keys[k].why, "number-min");
        } else {
            CHECK_INT_EQ(keys[k].combine, want);
        }
    }
out:
    free(yaml);
    free(tsv);
}

/* The restriction keys are exactly policy/keys.c's managed-data keys among
 * Apple's com.apple.applicationaccess keys; allow... keys AND, force... and require... keys OR. */
static void test_restriction_keys_are_managed_data_keys(void)
{
    size_t n;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&n);
    size_t ours = 0;
    for (size_t k = 0; k < n; k++) {
        if (keys[k].section != LMDM_RULE_SECTION_RESTRICTIONS) continue;
        ours++;
        CHECK(lmdm_policy_managed_data_key(keys[k].name));
        CHECK_STR_EQ(keys[k].name, keys[k].payload_key);
        CHECK_INT_EQ(keys[k].combine,
                     strncmp(keys[k].name, "allow", 5) == 0 ? LMDM_COMBINE_AND : LMDM_COMBINE_OR);
    }
    char *yaml = slurp("mdm/profiles/com.apple.applicationaccess.yaml");
    CHECK(yaml != NULL);
    size_t theirs = 0;
    for (const char *p = yaml; yaml && (p = strstr(p, "\n- key: ")) != NULL;) {
        p += 8;
        char name[128];
        size_t len = strcspn(p, "\n");
        snprintf(name, sizeof(name), "%.*s", (int)len, p);
        if (strncmp(name, "Payload", 7) != 0 && lmdm_policy_managed_data_key(name)) {
            theirs++;
            if (lmdm_rule_key_find(LMDM_RULE_SECTION_RESTRICTIONS, name) < 0)
                harness_fail(__FILE__, __LINE__, "managed-data key %s is not a rule key", name);
        }
    }
    CHECK_INT_EQ(ours, theirs);
    CHECK(ours >= 9);
    free(yaml);
}

/* ---- every key's rule ---- */

static void test_each_key_rule(void)
{
    size_t n;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&n);
    lmdm_merged_t *m = merged_new();
    for (size_t k = 0; k < n; k++) {
        long lo = keys[k].min, hi = keys[k].max;
        long want = keys[k].combine == LMDM_COMBINE_OR || keys[k].combine == LMDM_COMBINE_MAX ? hi : lo;
        lmdm_rules_t in[2] = {{0}, {0}};
        put(&in[0], (int)k, lo);
        put(&in[1], (int)k, hi);
        lmdm_rules_merge(in, 2, m);
        CHECK(m->rules.set == BIT(k));
        if (m->rules.value[k] != want)
            harness_fail(__FILE__, __LINE__, "%s merged to %ld", keys[k].name, m->rules.value[k]);
        CHECK_INT_EQ(m->drivers[k], want == lo ? 1 : 2);
        /* The other order: the same. */
        lmdm_rules_t rev[2] = {in[1], in[0]};
        lmdm_rules_merge(rev, 2, m);
        CHECK_INT_EQ(m->rules.value[k], want);
        CHECK_INT_EQ(m->drivers[k], want == lo ? 2 : 1);
        /* A tie: both drive it. */
        in[1].value[k] = lo;
        lmdm_rules_merge(in, 2, m);
        CHECK_INT_EQ(m->rules.value[k], lo);
        CHECK_INT_EQ(m->drivers[k], 3);
        CHECK(lmdm_rule_at_least_as_strict((int)k, want, lo) &&
              lmdm_rule_at_least_as_strict((int)k, want, hi));
    }
    /* Named examples. */
    lmdm_rules_t a = {0}, b = {0};
    put(&a, PK("minLength"), 6);
    put(&b, PK("minLength"), 8);
    put(&a, PK("maxInactivity"), 5);
    put(&b, PK("maxInactivity"), 10);
    put(&a, PK("allowSimple"), 1);
    put(&b, PK("allowSimple"), 0);
    put(&a, PK("pinHistory"), 3);
    put(&b, PK("pinHistory"), 12);
    put(&a, RK("allowOpenFromManagedToUnmanaged"), 0);
    put(&b, RK("requireManagedPasteboard"), 1);
    lmdm_rules_t in[2] = {a, b};
    lmdm_rules_merge(in, 2, m);
    CHECK_INT_EQ(m->rules.value[PK("minLength")], 8);
    CHECK_INT_EQ(m->drivers[PK("minLength")], 2);
    CHECK_INT_EQ(m->rules.value[PK("maxInactivity")], 5);
    CHECK_INT_EQ(m->drivers[PK("maxInactivity")], 1);
    CHECK_INT_EQ(m->rules.value[PK("allowSimple")], 0);
    CHECK_INT_EQ(m->rules.value[PK("pinHistory")], 12);
    CHECK_INT_EQ(m->rules.value[RK("allowOpenFromManagedToUnmanaged")], 0);
    CHECK_INT_EQ(m->drivers[RK("allowOpenFromManagedToUnmanaged")], 1);
    CHECK_INT_EQ(m->rules.value[RK("requireManagedPasteboard")], 1);
    free(m);
}

static void test_absent_single_ten(void)
{
    lmdm_merged_t *m = merged_new();
    /* Nothing in: nothing out. */
    lmdm_rules_merge(NULL, 0, m);
    CHECK(lmdm_rules_empty(m));
    lmdm_rules_t none[3] = {{0}, {0}, {0}};
    lmdm_rules_merge(none, 3, m);
    CHECK(lmdm_rules_empty(m));
    /* Absent keys: only the tenant that sets a key drives it; a tenant that
     * says nothing neither weakens nor drives it. */
    lmdm_rules_t two[2] = {{0}, {0}};
    put(&two[1], PK("maxPINAgeInDays"), 90);
    lmdm_rules_merge(two, 2, m);
    CHECK(!lmdm_rules_empty(m));
    CHECK(m->rules.set == BIT(PK("maxPINAgeInDays")));
    CHECK_INT_EQ(m->rules.value[PK("maxPINAgeInDays")], 90);
    CHECK_INT_EQ(m->drivers[PK("maxPINAgeInDays")], 2);
    CHECK_INT_EQ(m->drivers[PK("minLength")], 0);
    /* One tenant: its rules as they are. */
    lmdm_rules_t one = {0};
    put(&one, PK("minLength"), 6);
    put(&one, PK("requirePasscode"), 1);
    put(&one, ENC, 1);
    lmdm_rules_merge(&one, 1, m);
    CHECK(m->rules.set == one.set);
    CHECK_INT_EQ(m->rules.value[PK("minLength")], 6);
    CHECK_INT_EQ(m->drivers[ENC], 1);
    /* Ten tenants: min length 1..10, inactivity 15..6, history 1..10. */
    lmdm_rules_t ten[10];
    memset(ten, 0, sizeof(ten));
    for (int i = 0; i < 10; i++) {
        put(&ten[i], PK("minLength"), i + 1);
        put(&ten[i], PK("maxInactivity"), 15 - i);
        if (i % 2) put(&ten[i], PK("requireAlphanumeric"), 0);
        if (i == 4 || i == 7) put(&ten[i], ENC, 1);
        put(&ten[i], PK("pinHistory"), i % 3 + 1);
    }
    lmdm_rules_merge(ten, 10, m);
    CHECK_INT_EQ(m->rules.value[PK("minLength")], 10);
    CHECK_INT_EQ(m->drivers[PK("minLength")], BIT(9));
    CHECK_INT_EQ(m->rules.value[PK("maxInactivity")], 6);
    CHECK_INT_EQ(m->drivers[PK("maxInactivity")], BIT(9));
    CHECK_INT_EQ(m->rules.value[PK("requireAlphanumeric")], 0);
    CHECK_INT_EQ(m->drivers[PK("requireAlphanumeric")], BIT(1) | BIT(3) | BIT(5) | BIT(7) | BIT(9));
    CHECK_INT_EQ(m->rules.value[ENC], 1);
    CHECK_INT_EQ(m->drivers[ENC], BIT(4) | BIT(7));
    CHECK_INT_EQ(m->rules.value[PK("pinHistory")], 3);
    CHECK_INT_EQ(m->drivers[PK("pinHistory")], BIT(2) | BIT(5) | BIT(8));
    free(m);
}

static void test_check_ranges(void)
{
    lmdm_rules_t r = {0};
    int bad = -2;
    CHECK_INT_EQ(lmdm_rules_check(&r, &bad), 0);
    put(&r, PK("minLength"), 16);
    put(&r, PK("maxGracePeriod"), 0);
    CHECK_INT_EQ(lmdm_rules_check(&r, &bad), 0);
    put(&r, PK("minLength"), 17);
    CHECK_INT_EQ(lmdm_rules_check(&r, &bad), -1);
    CHECK_INT_EQ(bad, PK("minLength"));
    put(&r, PK("minLength"), 8);
    put(&r, PK("maxPINAgeInDays"), 0);
    CHECK_INT_EQ(lmdm_rules_check(&r, &bad), -1);
    CHECK_INT_EQ(bad, PK("maxPINAgeInDays"));
    put(&r, PK("maxPINAgeInDays"), 731);
    CHECK_INT_EQ(lmdm_rules_check(&r, &bad), -1);
    put(&r, PK("maxPINAgeInDays"), 730);
    put(&r, PK("allowSimple"), 2);
    CHECK_INT_EQ(lmdm_rules_check(&r, &bad), -1);
    CHECK_INT_EQ(bad, PK("allowSimple"));
    put(&r, PK("allowSimple"), 0);
    put(&r, PK("pinHistory"), 0);
    CHECK_INT_EQ(lmdm_rules_check(&r, &bad), -1);
    put(&r, PK("pinHistory"), 50);
    CHECK_INT_EQ(lmdm_rules_check(&r, &bad), 0);
    r.set |= BIT(63);
    CHECK_INT_EQ(lmdm_rules_check(&r, &bad), -1);
}

static void test_plain(void)
{
    char buf[256];
    lmdm_rule_plain(PK("minLength"), 8, buf, sizeof(buf));
    CHECK_STR_EQ(buf, "a passcode of at least 8 characters");
    lmdm_rule_plain(PK("requirePasscode"), 1, buf, sizeof(buf));
    CHECK_STR_EQ(buf, "a passcode on the device");
    lmdm_rule_plain(PK("requirePasscode"), 0, buf, sizeof(buf));
    CHECK_STR_EQ(buf, "not required: a passcode on the device");
    lmdm_rule_plain(PK("allowSimple"), 0, buf, sizeof(buf));
    CHECK(strncmp(buf, "no simple passcode", 18) == 0);
    lmdm_rule_plain(PK("allowSimple"), 1, buf, sizeof(buf));
    CHECK(strncmp(buf, "not required: ", 14) == 0);
    CHECK(lmdm_rule_plain(PK("minLength"), 8, buf, 4) == strlen("a passcode of at least 8 characters"));
    CHECK_STR_EQ(buf, "a p");
}

/* ---- domains ---- */

static void test_domains_union(void)
{
    static const char *const a_web[] = {"stmarys.org", "*.stmarys.org", "shared.example"};
    static const char *const b_web[] = {"general.example", "shared.example", "stmarys.org"};
    static const char *const b_mail[] = {"general.example"};
    lmdm_rules_t in[2] = {{0}, {0}};
    in[0].domains[LMDM_DOMAINS_WEB] = a_web;
    in[0].ndomains[LMDM_DOMAINS_WEB] = 3;
    in[1].domains[LMDM_DOMAINS_WEB] = b_web;
    in[1].ndomains[LMDM_DOMAINS_WEB] = 3;
    in[1].domains[LMDM_DOMAINS_EMAIL] = b_mail;
    in[1].ndomains[LMDM_DOMAINS_EMAIL] = 1;
    lmdm_merged_t *m = merged_new();
    lmdm_rules_merge(in, 2, m);
    CHECK(!lmdm_rules_empty(m));
    CHECK_INT_EQ(m->ndomains[LMDM_DOMAINS_WEB], 4);
    CHECK_STR_EQ(m->domains[LMDM_DOMAINS_WEB][0], "*.stmarys.org");
    CHECK_STR_EQ(m->domains[LMDM_DOMAINS_WEB][1], "general.example");
    CHECK_STR_EQ(m->domains[LMDM_DOMAINS_WEB][2], "shared.example");
    CHECK_STR_EQ(m->domains[LMDM_DOMAINS_WEB][3], "stmarys.org");
    CHECK_INT_EQ(m->domain_from[LMDM_DOMAINS_WEB][0], 1);
    CHECK_INT_EQ(m->domain_from[LMDM_DOMAINS_WEB][1], 2);
    CHECK_INT_EQ(m->domain_from[LMDM_DOMAINS_WEB][2], 3);
    CHECK_INT_EQ(m->domain_from[LMDM_DOMAINS_WEB][3], 3);
    CHECK_INT_EQ(m->ndomains[LMDM_DOMAINS_EMAIL], 1);
    CHECK_INT_EQ(m->ndomains[LMDM_DOMAINS_PASSWORD], 0);
    CHECK(!m->truncated);
    CHECK(m->rules.domains[LMDM_DOMAINS_WEB] == m->domains[LMDM_DOMAINS_WEB]);
    CHECK_INT_EQ(m->rules.ndomains[LMDM_DOMAINS_WEB], 4);
    free(m);
}

static void test_domains_truncated(void)
{
    /* Three tenants with 200 domains each, half shared with the next: 400
     * distinct, more than the list holds. The list keeps the smallest 256,
     * whatever the order. */
    static char names[600][16];
    static const char *lists[3][200];
    for (int t = 0; t < 3; t++)
        for (int j = 0; j < 200; j++) {
            int d = t * 100 + j;
            snprintf(names[d], sizeof(names[d]), "d%03d.example", d);
            lists[t][j] = names[d];
        }
    lmdm_rules_t in[3];
    memset(in, 0, sizeof(in));
    for (int t = 0; t < 3; t++) {
        in[t].domains[LMDM_DOMAINS_WEB] = lists[t];
        in[t].ndomains[LMDM_DOMAINS_WEB] = 200;
    }
    lmdm_merged_t *m = merged_new(), *m2 = merged_new();
    lmdm_rules_merge(in, 3, m);
    CHECK(m->truncated);
    CHECK_INT_EQ(m->ndomains[LMDM_DOMAINS_WEB], LMDM_RULES_MAX_DOMAINS);
    CHECK_STR_EQ(m->domains[LMDM_DOMAINS_WEB][0], "d000.example");
    CHECK_STR_EQ(m->domains[LMDM_DOMAINS_WEB][255], "d255.example");
    CHECK_INT_EQ(m->domain_from[LMDM_DOMAINS_WEB][150], 3); /* d150: tenants 0 and 1 */
    lmdm_rules_t rev[3] = {in[2], in[0], in[1]};
    lmdm_rules_merge(rev, 3, m2);
    CHECK(m2->truncated);
    CHECK(lmdm_rules_merged_equal(m, m2));
    CHECK_INT_EQ(m2->domain_from[LMDM_DOMAINS_WEB][150], 6);
    /* Exactly full is not truncated. */
    in[0].ndomains[LMDM_DOMAINS_WEB] = 200;
    in[1].ndomains[LMDM_DOMAINS_WEB] = 156; /* d100..d255 */
    lmdm_rules_merge(in, 2, m);
    CHECK_INT_EQ(m->ndomains[LMDM_DOMAINS_WEB], 256);
    CHECK(!m->truncated);
    free(m);
    free(m2);
}

/* ---- the property test ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}
static long rnd_in(long lo, long hi)
{
    return lo + (long)(rnd() % (uint64_t)(hi - lo + 1));
}

static const char *const pool[] = {"a.example", "b.example", "c.example", "d.example",   "e.example",
                                   "f.example", "g.example", "h.example", "*.a.example", "mail.example"};

typedef struct {
    lmdm_rules_t r[10];
    const char *lists[10][LMDM_DOMAINS_COUNT][6];
} rule_sets_t;

static void random_rules(rule_sets_t *s, size_t n)
{
    size_t nk;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&nk);
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < nk; k++) {
            if (rnd() % 3 == 0) continue;
            /* Few distinct values, so ties are common. */
            long v = rnd() % 4 == 0   ? keys[k].min
                     : rnd() % 4 == 0 ? keys[k].max
                                      : rnd_in(keys[k].min, keys[k].max);
            put(&s->r[i], (int)k, v);
        }
        for (int l = 0; l < LMDM_DOMAINS_COUNT; l++) {
            size_t nd = rnd() % 7;
            for (size_t j = 0; j < nd; j++)
                s->lists[i][l][j] = pool[rnd() % LMDM_ARRAY_LEN(pool)];
            s->r[i].domains[l] = s->lists[i][l];
            s->r[i].ndomains[l] = nd;
        }
    }
}

/* drivers of a merge of permuted inputs, mapped back to the original order */
static uint64_t unpermute(uint64_t bits, const size_t *perm, size_t n)
{
    uint64_t out = 0;
    for (size_t j = 0; j < n; j++)
        if (bits & BIT(j)) out |= BIT(perm[j]);
    return out;
}

static void test_merge_properties(void)
{
    size_t nk;
    const lmdm_rule_key_t *keys = lmdm_rule_keys(&nk);
    rule_sets_t *s = malloc(sizeof(*s));
    lmdm_merged_t *m = merged_new(), *m2 = merged_new(), *m3 = merged_new();
    int failures_before = harness_failures;
    for (int iter = 0; iter < 2000 && harness_failures == failures_before; iter++) {
        size_t n = (size_t)rnd_in(1, 10);
        random_rules(s, n);
        lmdm_rules_merge(s->r, n, m);

        /* Commutative: a shuffled order gives the same result, the same drivers as sets. */
        size_t perm[10];
        lmdm_rules_t shuffled[10];
        for (size_t i = 0; i < n; i++)
            perm[i] = i;
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)(rnd() % i), t = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = t;
        }
        for (size_t i = 0; i < n; i++)
            shuffled[i] = s->r[perm[i]];
        lmdm_rules_merge(shuffled, n, m2);
        CHECK(lmdm_rules_merged_equal(m, m2));
        CHECK_INT_EQ(m->truncated, m2->truncated);
        for (size_t k = 0; k < nk; k++)
            CHECK_INT_EQ(unpermute(m2->drivers[k], perm, n), m->drivers[k]);
        for (int l = 0; l < LMDM_DOMAINS_COUNT; l++)
            for (size_t j = 0; j < m->ndomains[l] && j < m2->ndomains[l]; j++)
                CHECK_INT_EQ(unpermute(m2->domain_from[l][j], perm, n), m->domain_from[l][j]);

        /* Never weaker than any input; every merged key comes from an input
         * that drives it; drivers are exactly the inputs at the merged value. */
        for (size_t k = 0; k < nk; k++) {
            uint64_t setters = 0, at_value = 0;
            for (size_t i = 0; i < n; i++) {
                if (!(s->r[i].set & BIT(k))) continue;
                setters |= BIT(i);
                CHECK(lmdm_rule_at_least_as_strict((int)k, m->rules.value[k], s->r[i].value[k]));
                if (s->r[i].value[k] == m->rules.value[k]) at_value |= BIT(i);
            }
            CHECK_INT_EQ(!!(m->rules.set & BIT(k)), setters != 0);
            CHECK_INT_EQ(m->drivers[k], at_value);
            if (setters) CHECK(at_value != 0);
            if (m->rules.set & BIT(k))
                CHECK(m->rules.value[k] >= keys[k].min && m->rules.value[k] <= keys[k].max);
        }
        /* Domains: the sorted, duplicate-free union, each from whoever gave it. */
        for (int l = 0; l < LMDM_DOMAINS_COUNT; l++) {
            for (size_t j = 1; j < m->ndomains[l]; j++)
                CHECK(strcmp(m->domains[l][j - 1], m->domains[l][j]) < 0);
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < s->r[i].ndomains[l]; j++) {
                    size_t x = 0;
                    while (x < m->ndomains[l] && strcmp(m->domains[l][x], s->r[i].domains[l][j]) != 0)
                        x++;
                    CHECK(x < m->ndomains[l]);
                    if (x < m->ndomains[l]) CHECK(m->domain_from[l][x] & BIT(i));
                }
        }

        /* Idempotent: merge(result, any input) == result, and merge(result) == result. */
        for (size_t i = 0; i < n; i++) {
            lmdm_rules_t again[2] = {m->rules, s->r[i]};
            lmdm_merged_t *target = (i % 2) ? m2 : m3;
            lmdm_rules_merge(again, 2, target);
            CHECK(lmdm_rules_merged_equal(target, m));
            for (size_t k = 0; k < nk; k++)
                if (m->rules.set & BIT(k)) CHECK(target->drivers[k] & 1);
        }
        lmdm_rules_merge(&m->rules, 1, m3);
        CHECK(lmdm_rules_merged_equal(m3, m));
    }
    free(s);
    free(m);
    free(m2);
    free(m3);
}

/* ---- JSON ---- */

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) harness_fail(__FILE__, __LINE__, "bad test JSON: %s", e.text);
    return j;
}

/* lmdm_rules_from_json on a JSON text; err gets the message. */
static int from_json(const char *section, const char *text, lmdm_rules_t *r, char *err, size_t errlen)
{
    json_t *j = J(text);
    int rv = lmdm_rules_from_json(section, j, r, err, errlen);
    json_decref(j);
    return rv;
}

static void test_json_sections(void)
{
    lmdm_rules_t r = {0};
    char err[1024] = "";
    CHECK_INT_EQ(from_json("passcode",
                           "{\"minLength\": 8, \"requirePasscode\": true, \"allowSimple\": false}", &r, err,
                           sizeof(err)),
                 0);
    CHECK(r.set == (BIT(PK("minLength")) | BIT(PK("requirePasscode")) | BIT(PK("allowSimple"))));
    CHECK_INT_EQ(r.value[PK("minLength")], 8);
    CHECK_INT_EQ(r.value[PK("allowSimple")], 0);
    /* Other sections into the same rules: the passcode stays. */
    CHECK_INT_EQ(from_json("encryption", "{\"required\": true}", &r, err, sizeof(err)), 0);
    CHECK_INT_EQ(
        from_json("restrictions", "{\"allowOpenFromManagedToUnmanaged\": false}", &r, err, sizeof(err)), 0);
    CHECK(r.set & BIT(PK("minLength")));
    CHECK_INT_EQ(r.value[ENC], 1);
    CHECK_INT_EQ(r.value[RK("allowOpenFromManagedToUnmanaged")], 0);
    /* The same section again replaces it (a PUT). */
    CHECK_INT_EQ(from_json("passcode", "{\"maxInactivity\": 5}", &r, err, sizeof(err)), 0);
    CHECK(!(r.set & BIT(PK("minLength"))));
    CHECK(r.set & BIT(PK("maxInactivity")));
    CHECK(r.set & BIT(ENC));
    /* Round trip. */
    json_t *o = lmdm_rules_section_to_json(&r, "passcode");
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK_STR_EQ(s, "{\"maxInactivity\":5}");
    free(s);
    json_decref(o);
    o = lmdm_rules_section_to_json(&r, "encryption");
    CHECK(json_is_true(json_object_get(o, "required")));
    json_decref(o);
    CHECK(lmdm_rules_section_to_json(&r, "nope") == NULL);
    /* An empty section clears it. */
    CHECK_INT_EQ(from_json("passcode", "{}", &r, err, sizeof(err)), 0);
    CHECK(!(r.set & BIT(PK("maxInactivity"))));
    lmdm_rules_free(&r);
}

static void expect_json_error(const char *section, const char *text, const char *needle)
{
    lmdm_rules_t r = {0};
    put(&r, PK("minLength"), 4);
    lmdm_rules_t before = r;
    char err[1024] = "";
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    int rv = lmdm_rules_from_json(section, j, &r, err, sizeof(err));
    json_decref(j);
    if (rv != LMDM_ERR_INVALID) harness_fail(__FILE__, __LINE__, "%s %s accepted", section, text);
    if (!strstr(err, needle)) harness_fail(__FILE__, __LINE__, "error \"%s\" lacks \"%s\"", err, needle);
    CHECK(memcmp(&r, &before, sizeof(r)) == 0); /* unchanged */
}

static void test_json_errors(void)
{
    expect_json_error("passcode", "{\"minLength\": 40}", "minLength: 40 is out of range 0..16");
    expect_json_error("passcode", "{\"minLength\": -1}", "minLength: -1 is out of range 0..16");
    expect_json_error("passcode", "{\"maxPINAgeInDays\": 0}", "maxPINAgeInDays: 0 is out of range 1..730");
    expect_json_error("passcode", "{\"maxInactivity\": 60}", "maxInactivity: 60 is out of range 1..15");
    expect_json_error("passcode", "{\"pinHistory\": 51}", "pinHistory: 51 is out of range 1..50");
    expect_json_error("passcode", "{\"minLength\": 99999999999999999}", "out of range 0..16");
    expect_json_error("passcode", "{\"minLength\": \"8\"}", "minLength must be an integer");
    expect_json_error("passcode", "{\"minLength\": 8.0}", "minLength must be an integer");
    expect_json_error("passcode", "{\"allowSimple\": 0}", "allowSimple must be true or false");
    expect_json_error("passcode", "{\"requirePasscode\": null}", "requirePasscode must be true or false");
    expect_json_error("passcode", "{\"maxFailedAttempts\": 4}", "maxFailedAttempts is not accepted");
    expect_json_error("passcode", "{\"maxFailedAttempts\": 4}", "erases");
    expect_json_error("passcode", "{\"colour\": 4}", "unknown key \"colour\" in passcode");
    expect_json_error("passcode", "{\"MinimumLength\": 4}", "write \"minLength\"");
    expect_json_error("passcode", "{\"minLength\": 6, \"bogus\": 1}", "bogus");
    expect_json_error("passcode", "[1, 2]", "must be a JSON object");
    expect_json_error("passcode", "\"x\"", "must be a JSON object");
    expect_json_error("restrictions", "{\"allowCamera\": false}",
                      "unknown key \"allowCamera\" in restrictions");
    expect_json_error("restrictions", "{\"allowCamera\": false}", "device-wide");
    expect_json_error("restrictions", "{\"allowManagedAppsCloudSync\": 1}", "must be true or false");
    expect_json_error("encryption", "{\"required\": \"yes\"}", "required must be true or false");
    expect_json_error("encryption", "{\"escrow\": true}", "unknown key \"escrow\"");
    expect_json_error("os", "{}", "unknown section");
    expect_json_error("domains", "{\"WebDomains\": \"a.example\"}", "WebDomains must be an array");
    expect_json_error("domains", "{\"WebDomains\": [1]}", "WebDomains[0] must be a string");
    expect_json_error("domains", "{\"WebDomains\": [\"ok.example\", \"bad domain.example\"]}",
                      "WebDomains[1]");
    expect_json_error("domains", "{\"WebDomains\": [\"localhost\"]}", "needs a dot");
    expect_json_error("domains", "{\"WebDomains\": [\"\"]}", "is empty");
    expect_json_error("domains", "{\"WebDomains\": [\"-a.example\"]}", "'-'");
    expect_json_error("domains", "{\"WebDomains\": [\"a..example\"]}", "not a domain name");
    expect_json_error("domains", "{\"EmailDomains\": [\"stmarys.org/path\"]}", "only be a domain name");
    expect_json_error("domains", "{\"WebDomains\": [\"a.example/<script>\"]}", "does not belong in a URL");
    expect_json_error("domains", "{\"WebDomains\": [\"a\\u0000b.example\"]}", "NUL");
    expect_json_error("domains", "{\"Domains\": []}", "unknown key \"Domains\" in domains");
    expect_json_error(
        "domains",
        "{\"CrossSiteTrackingPreventionRelaxedDomains\": [\"a.ex\",\"b.ex\",\"c.ex\",\"d.ex\",\"e.ex\","
        "\"f.ex\",\"g.ex\",\"h.ex\",\"i.ex\",\"j.ex\",\"k.ex\"]}",
        "more than 10");
    /* A label over 63 characters, a name over 253. */
    char text[1024];
    snprintf(text, sizeof(text), "{\"WebDomains\": [\"%s.example\"]}",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    expect_json_error("domains", text, "longer than 63");
    char longname[400] = "";
    for (int i = 0; i < 50; i++)
        strcat(longname, "abcdef.");
    snprintf(text, sizeof(text), "{\"WebDomains\": [\"%sexample\"]}", longname);
    expect_json_error("domains", text, "longer than 253");
    /* A huge list. */
    json_t *big = json_object(), *arr = json_array();
    for (int i = 0; i < 10000; i++) {
        char d[32];
        snprintf(d, sizeof(d), "d%d.example", i);
        json_array_append_new(arr, json_string(d));
    }
    json_object_set_new(big, "WebDomains", arr);
    lmdm_rules_t r = {0};
    char err[512] = "";
    CHECK_INT_EQ(lmdm_rules_from_json("domains", big, &r, err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(err, "more than 256");
    CHECK(r.domains[LMDM_DOMAINS_WEB] == NULL);
    json_decref(big);
    /* NULL err is allowed. */
    json_t *j = J("{\"minLength\": 40}");
    CHECK_INT_EQ(lmdm_rules_from_json("passcode", j, &r, NULL, 0), LMDM_ERR_INVALID);
    json_decref(j);
}

static void test_json_domains(void)
{
    lmdm_rules_t r = {0};
    char err[512] = "";
    CHECK_INT_EQ(from_json("domains",
                           "{\"WebDomains\": [\"StMarys.ORG\", \"*.stmarys.org\", "
                           "\"https://Intranet.stmarys.org:8443/Wiki\"],"
                           " \"EmailDomains\": [\"stmarys.org\"], \"SafariPasswordAutoFillDomains\": []}",
                           &r, err, sizeof(err)),
                 0);
    CHECK_INT_EQ(r.ndomains[LMDM_DOMAINS_WEB], 3);
    CHECK_STR_EQ(r.domains[LMDM_DOMAINS_WEB][0], "stmarys.org");
    CHECK_STR_EQ(r.domains[LMDM_DOMAINS_WEB][2], "https://intranet.stmarys.org:8443/Wiki");
    CHECK_INT_EQ(r.ndomains[LMDM_DOMAINS_EMAIL], 1);
    CHECK_INT_EQ(r.ndomains[LMDM_DOMAINS_PASSWORD], 0);
    /* Passcode into the same rules keeps the domains; domains again replace them. */
    CHECK_INT_EQ(from_json("passcode", "{\"minLength\": 6}", &r, err, sizeof(err)), 0);
    CHECK_INT_EQ(r.ndomains[LMDM_DOMAINS_WEB], 3);
    CHECK_INT_EQ(from_json("domains", "{\"EmailDomains\": [\"general.example\"]}", &r, err, sizeof(err)), 0);
    CHECK_INT_EQ(r.ndomains[LMDM_DOMAINS_WEB], 0);
    CHECK_STR_EQ(r.domains[LMDM_DOMAINS_EMAIL][0], "general.example");
    CHECK(r.set & BIT(PK("minLength")));
    json_t *o = lmdm_rules_section_to_json(&r, "domains");
    char *s = json_dumps(o, JSON_COMPACT);
    CHECK_STR_EQ(s, "{\"EmailDomains\":[\"general.example\"]}");
    free(s);
    json_decref(o);
    lmdm_rules_free(&r);
    CHECK(r.domains[LMDM_DOMAINS_EMAIL] == NULL && r.ndomains[LMDM_DOMAINS_EMAIL] == 0);
    lmdm_rules_free(NULL);
}

/* ---- payloads ---- */

static int from_payload(const char *type, const char *keys, lmdm_rules_t *r, char *err, size_t errlen)
{
    char xml[8192];
    snprintf(xml, sizeof(xml),
             "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>PayloadType</key><string>%s</string>"
             "<key>PayloadIdentifier</key><string>org.stmarys.x</string>%s</dict></plist>",
             type, keys);
    return lmdm_rules_from_payload(type, xml, strlen(xml), r, err, errlen);
}

static void expect_payload_error(const char *type, const char *keys, const char *needle)
{
    lmdm_rules_t r = {0};
    char err[1024] = "";
    if (from_payload(type, keys, &r, err, sizeof(err)) != LMDM_ERR_INVALID)
        harness_fail(__FILE__, __LINE__, "payload %s accepted", keys);
    if (!strstr(err, needle)) harness_fail(__FILE__, __LINE__, "error \"%s\" lacks \"%s\"", err, needle);
    CHECK(r.set == 0 && r.domains[0] == NULL);
}

static void test_payloads(void)
{
    lmdm_rules_t r = {0};
    char err[1024] = "";
    const char *pp = "com.apple.mobiledevice.passwordpolicy";
    CHECK_INT_EQ(from_payload(pp,
                              "<key>forcePIN</key><true/><key>minLength</key><integer>6</integer>"
                              "<key>allowSimple</key><false/><key>maxPINAgeInDays</key><integer>0</integer>"
                              "<key>pinHistory</key><integer>5</integer>",
                              &r, err, sizeof(err)),
                 0);
    CHECK_INT_EQ(r.value[PK("requirePasscode")], 1);
    CHECK_INT_EQ(r.value[PK("minLength")], 6);
    CHECK_INT_EQ(r.value[PK("allowSimple")], 0);
    CHECK(!(r.set & BIT(PK("maxPINAgeInDays")))); /* 0: no limit asked */
    /* A second passcode payload of the same profile combines to the strictest. */
    CHECK_INT_EQ(
        from_payload(pp, "<key>minLength</key><integer>4</integer><key>pinHistory</key><integer>9</integer>",
                     &r, err, sizeof(err)),
        0);
    CHECK_INT_EQ(r.value[PK("minLength")], 6);
    CHECK_INT_EQ(r.value[PK("pinHistory")], 9);
    CHECK_INT_EQ(from_payload("com.apple.applicationaccess",
                              "<key>allowOpenFromManagedToUnmanaged</key><false/>"
                              "<key>requireManagedPasteboard</key><true/>",
                              &r, err, sizeof(err)),
                 0);
    CHECK_INT_EQ(r.value[RK("allowOpenFromManagedToUnmanaged")], 0);
    CHECK_INT_EQ(r.value[RK("requireManagedPasteboard")], 1);
    CHECK_INT_EQ(from_payload("com.apple.MCX.FileVault2",
                              "<key>Enable</key><string>On</string><key>Defer</key><true/>", &r, err,
                              sizeof(err)),
                 0);
    CHECK_INT_EQ(r.value[ENC], 1);
    CHECK_INT_EQ(from_payload("com.apple.MCX.FileVault2", "<key>Enable</key><string>Off</string>", &r, err,
                              sizeof(err)),
                 0);
    CHECK_INT_EQ(r.value[ENC], 1); /* Off never weakens an On */
    CHECK_INT_EQ(from_payload("com.apple.domains",
                              "<key>WebDomains</key><array><string>stmarys.org</string></array>"
                              "<key>EmailDomains</key><array><string>stmarys.org</string></array>",
                              &r, err, sizeof(err)),
                 0);
    CHECK_INT_EQ(from_payload("com.apple.domains",
                              "<key>WebDomains</key><array><string>*.stmarys.org</string></array>", &r, err,
                              sizeof(err)),
                 0);
    CHECK_INT_EQ(r.ndomains[LMDM_DOMAINS_WEB], 2); /* appended */
    CHECK_STR_EQ(r.domains[LMDM_DOMAINS_WEB][1], "*.stmarys.org");
    CHECK_INT_EQ(r.ndomains[LMDM_DOMAINS_EMAIL], 1);
    lmdm_rules_free(&r);

    expect_payload_error(pp, "<key>maxFailedAttempts</key><integer>4</integer>", "maxFailedAttempts");
    expect_payload_error(pp, "<key>minLength</key><integer>40</integer>",
                         "minLength: 40 is out of range 0..16");
    expect_payload_error(pp, "<key>minLength</key><string>8</string>", "minLength must be an integer");
    expect_payload_error(pp, "<key>minLength</key><integer>-3</integer>", "out of range");
    expect_payload_error(pp, "<key>forcePIN</key><integer>1</integer>", "forcePIN must be a boolean");
    expect_payload_error(pp, "<key>customRegex</key><dict/>", "customRegex is not a key the broker merges");
    expect_payload_error("com.apple.applicationaccess", "<key>allowCamera</key><false/>",
                         "allowCamera is not a managed-data restriction");
    expect_payload_error("com.apple.MCX.FileVault2",
                         "<key>Enable</key><string>On</string><key>Certificate</key><data>AAAA</data>",
                         "escrowed");
    expect_payload_error("com.apple.MCX.FileVault2",
                         "<key>Enable</key><string>On</string><key>Username</key><string>a</string>",
                         "Username is refused");
    expect_payload_error("com.apple.MCX.FileVault2", "<key>Defer</key><true/>",
                         "Enable must be the string On or Off");
    expect_payload_error("com.apple.domains", "<key>WebDomains</key><string>a.example</string>",
                         "must be an array");
    expect_payload_error("com.apple.domains", "<key>WebDomains</key><array><integer>1</integer></array>",
                         "WebDomains[0] must be a string");
    expect_payload_error("com.apple.domains",
                         "<key>WebDomains</key><array><string>no spaces.example</string></array>",
                         "WebDomains[0]");
    expect_payload_error("com.apple.domains", "<key>Other</key><array/>", "Other is not a key");
    expect_payload_error("com.apple.vpn.managed", "", "not a device-wide rules payload");

    /* PayloadType disagreeing, not a plist, nested too deep, a huge list. */
    char xml[512];
    snprintf(xml, sizeof(xml),
             "<plist><dict><key>PayloadType</key><string>com.apple.domains</string></dict></plist>");
    CHECK_INT_EQ(lmdm_rules_from_payload(pp, xml, strlen(xml), &r, err, sizeof(err)), LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(err, "PayloadType");
    CHECK_INT_EQ(lmdm_rules_from_payload(pp, "not a plist", 11, &r, err, sizeof(err)), LMDM_ERR_INVALID);
    char *deep = malloc(64 * 1024);
    strcpy(deep, "<plist><dict><key>a</key>");
    for (int i = 0; i < 200; i++)
        strcat(deep, "<array>");
    for (int i = 0; i < 200; i++)
        strcat(deep, "</array>");
    strcat(deep, "</dict></plist>");
    CHECK_INT_EQ(lmdm_rules_from_payload(pp, deep, strlen(deep), &r, err, sizeof(err)), LMDM_ERR_INVALID);
    free(deep);
    size_t cap = 2 * 1024 * 1024;
    char *huge = malloc(cap);
    size_t at = (size_t)snprintf(huge, cap, "<plist><dict><key>WebDomains</key><array>");
    for (int i = 0; i < 20000; i++)
        at += (size_t)snprintf(huge + at, cap - at, "<string>d%d.example</string>", i);
    at += (size_t)snprintf(huge + at, cap - at, "</array></dict></plist>");
    CHECK_INT_EQ(lmdm_rules_from_payload("com.apple.domains", huge, at, &r, err, sizeof(err)),
                 LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(err, "more than 256");
    CHECK(r.domains[LMDM_DOMAINS_WEB] == NULL);
    free(huge);
}

/* ---- provenance as JSON ---- */

static void test_merged_json(void)
{
    lmdm_rules_t in[3] = {{0}, {0}, {0}};
    char err[256];
    CHECK_INT_EQ(from_json("passcode", "{\"minLength\": 6}", &in[0], err, sizeof(err)), 0);
    CHECK_INT_EQ(
        from_json("passcode", "{\"minLength\": 8, \"requirePasscode\": true}", &in[1], err, sizeof(err)), 0);
    CHECK_INT_EQ(from_json("passcode", "{\"minLength\": 8}", &in[2], err, sizeof(err)), 0);
    CHECK_INT_EQ(from_json("domains", "{\"WebDomains\": [\"stmarys.org\", \"shared.example\"]}", &in[1], err,
                           sizeof(err)),
                 0);
    CHECK_INT_EQ(from_json("domains", "{\"WebDomains\": [\"shared.example\"]}", &in[2], err, sizeof(err)), 0);
    lmdm_merged_t *m = merged_new();
    lmdm_rules_merge(in, 3, m);
    const char *names[] = {"General", "St. Mary's", NULL};
    json_t *j = lmdm_merged_to_json(m, names, 3);
    json_t *ml = json_object_get(json_object_get(j, "passcode"), "minLength");
    CHECK_INT_EQ(json_integer_value(json_object_get(ml, "value")), 8);
    char *s = json_dumps(json_object_get(ml, "required_by"), JSON_COMPACT);
    CHECK_STR_EQ(s, "[\"St. Mary's\",\"input 2\"]");
    free(s);
    CHECK_STR_EQ(json_string_value(json_object_get(ml, "plain")), "a passcode of at least 8 characters");
    CHECK(json_is_true(
        json_object_get(json_object_get(json_object_get(j, "passcode"), "requirePasscode"), "value")));
    CHECK(json_is_object(json_object_get(j, "encryption")) &&
          json_object_size(json_object_get(j, "encryption")) == 0);
    json_t *web = json_object_get(json_object_get(j, "domains"), "WebDomains");
    CHECK_INT_EQ(json_array_size(web), 2);
    s = json_dumps(json_array_get(web, 0), JSON_COMPACT);
    CHECK_STR_EQ(s, "{\"domain\":\"shared.example\",\"from\":[\"St. Mary's\",\"input 2\"]}");
    free(s);
    CHECK(json_is_false(json_object_get(j, "truncated")));
    json_decref(j);
    for (int i = 0; i < 3; i++)
        lmdm_rules_free(&in[i]);
    free(m);
}

/* ---- the profile ---- */

static plist_t parse_profile(const lmdm_buf_t *xml)
{
    plist_t p = NULL;
    plist_from_xml(xml->data, (uint32_t)xml->len, &p);
    return p;
}

static plist_t payload_of(plist_t prof, const char *type)
{
    plist_t c = plist_dict_get_item(prof, "PayloadContent");
    for (uint32_t i = 0; c && i < plist_array_get_size(c); i++) {
        plist_t p = plist_array_get_item(c, i);
        plist_t t = plist_dict_get_item(p, "PayloadType");
        if (t && strcmp(plist_get_string_ptr(t, NULL), type) == 0) return p;
    }
    return NULL;
}

static uint64_t uint_of(plist_t d, const char *k)
{
    uint64_t v = 999;
    plist_t n = plist_dict_get_item(d, k);
    if (n && plist_get_node_type(n) == PLIST_UINT) plist_get_uint_val(n, &v);
    return v;
}

static int bool_of(plist_t d, const char *k)
{
    plist_t n = plist_dict_get_item(d, k);
    return n && plist_get_node_type(n) == PLIST_BOOLEAN ? plist_bool_val_is_true(n) : -1;
}

/* The passcode declaration for declarative devices: which devices, Apple's
 * key names (allowSimple inverted), a stable token that follows the content. */
static void test_declaration(void)
{
    CHECK(lmdm_rules_declaration_capable(0, "16.2"));
    CHECK(lmdm_rules_declaration_capable(0, "17.4.1"));
    CHECK(!lmdm_rules_declaration_capable(0, "16.1"));
    CHECK(!lmdm_rules_declaration_capable(0, "15.7"));
    CHECK(!lmdm_rules_declaration_capable(0, ""));
    CHECK(!lmdm_rules_declaration_capable(0, NULL));
    CHECK(!lmdm_rules_declaration_capable(1, "14.4")); /* macOS keeps the profile */

    char err[256];
    lmdm_rules_t in[2];
    memset(in, 0, sizeof in);
    json_t *a = json_loads("{\"minLength\": 6, \"allowSimple\": false}", 0, NULL);
    json_t *b = json_loads("{\"minLength\": 8}", 0, NULL);
    CHECK_INT_EQ(lmdm_rules_from_json("passcode", a, &in[0], err, sizeof err), 0);
    CHECK_INT_EQ(lmdm_rules_from_json("passcode", b, &in[1], err, sizeof err), 0);
    static lmdm_merged_t m, m2, rest;
    lmdm_rules_merge(in, 2, &m);
    lmdm_buf_t j1 = {0}, j2 = {0};
    char t1[65], t2[65];
    CHECK_INT_EQ(lmdm_rules_declaration(&m, &j1, t1), 0);
    CHECK(j1.data && strstr(j1.data, "\"com.apple.configuration.passcode.settings\"") != NULL);
    CHECK(j1.data && strstr(j1.data, "\"MinimumLength\":8") != NULL);
    CHECK(j1.data && strstr(j1.data, "\"RequireComplexPasscode\":true") != NULL);
    CHECK_INT_EQ(strlen(t1), 64);
    lmdm_rules_merge(in, 2, &m2); /* the same merge: the same token */
    CHECK_INT_EQ(lmdm_rules_declaration(&m2, &j2, t2), 0);
    CHECK_STR_EQ(t1, t2);
    lmdm_buf_free(&j2);
    memset(&j2, 0, sizeof j2);
    lmdm_rules_merge(in, 1, &m2); /* only the first tenant: 6 -> another token */
    CHECK_INT_EQ(lmdm_rules_declaration(&m2, &j2, t2), 0);
    CHECK(strcmp(t1, t2) != 0);
    lmdm_rules_without_declared(&m, &rest);
    CHECK(lmdm_rules_empty(&rest)); /* nothing else was asked: no profile left */
    lmdm_buf_free(&j1);
    lmdm_buf_free(&j2);
    lmdm_rules_free(&in[0]);
    lmdm_rules_free(&in[1]);
    json_decref(a);
    json_decref(b);
}

static void test_profile(void)
{
    lmdm_rules_t in[3] = {{0}, {0}, {0}};
    char err[256];
    CHECK_INT_EQ(from_json("passcode", "{\"minLength\": 6, \"maxInactivity\": 5}", &in[0], err, sizeof(err)),
                 0);
    CHECK_INT_EQ(from_json("passcode", "{\"minLength\": 8}", &in[1], err, sizeof(err)), 0);
    CHECK_INT_EQ(from_json("encryption", "{\"required\": true}", &in[1], err, sizeof(err)), 0);
    CHECK_INT_EQ(
        from_json("restrictions", "{\"allowOpenFromManagedToUnmanaged\": false}", &in[0], err, sizeof(err)),
        0);
    CHECK_INT_EQ(from_json("domains",
                           "{\"WebDomains\": [\"stmarys.org\"], \"EmailDomains\": [\"stmarys.org\"]}", &in[1],
                           err, sizeof(err)),
                 0);
    lmdm_merged_t *m = merged_new(), *m2 = merged_new();
    lmdm_rules_merge(in, 2, m);
    lmdm_buf_t x1 = {0}, x2 = {0};
    char h1[65], h2[65];
    CHECK_INT_EQ(lmdm_rules_profile(m, 0, &x1, h1), 0);
    CHECK_INT_EQ(strlen(h1), 64);
    /* The same result from the inputs in the other order: the same bytes. */
    lmdm_rules_t rev[2] = {in[1], in[0]};
    lmdm_rules_merge(rev, 2, m2);
    CHECK_INT_EQ(lmdm_rules_profile(m2, 0, &x2, h2), 0);
    CHECK_STR_EQ(h1, h2);
    CHECK(x1.len == x2.len && memcmp(x1.data, x2.data, x1.len) == 0);

    plist_t prof = parse_profile(&x1);
    CHECK(prof != NULL);
    CHECK_STR_EQ(plist_get_string_ptr(plist_dict_get_item(prof, "PayloadIdentifier"), NULL),
                 LMDM_RULES_PROFILE_ID);
    CHECK_STR_EQ(plist_get_string_ptr(plist_dict_get_item(prof, "PayloadType"), NULL), "Configuration");
    plist_t pc = payload_of(prof, "com.apple.mobiledevice.passwordpolicy");
    CHECK(pc != NULL);
    CHECK_INT_EQ(uint_of(pc, "minLength"), 8);
    CHECK_INT_EQ(uint_of(pc, "maxInactivity"), 5);
    CHECK_INT_EQ(bool_of(pc, "forcePIN"), 1); /* iOS: encryption means a passcode */
    CHECK(payload_of(prof, "com.apple.MCX.FileVault2") == NULL);
    plist_t ra = payload_of(prof, "com.apple.applicationaccess");
    CHECK(ra && plist_dict_get_size(ra) == 6); /* 5 common keys + the one managed-data key */
    CHECK_INT_EQ(bool_of(ra, "allowOpenFromManagedToUnmanaged"), 0);
    plist_t dom = payload_of(prof, "com.apple.domains");
    CHECK(dom && plist_array_get_size(plist_dict_get_item(dom, "WebDomains")) == 1);
    /* Distinct UUIDs. */
    const char *u0 = plist_get_string_ptr(plist_dict_get_item(prof, "PayloadUUID"), NULL);
    const char *u1 = plist_get_string_ptr(plist_dict_get_item(pc, "PayloadUUID"), NULL);
    CHECK(u0 && u1 && strlen(u0) == 36 && strcmp(u0, u1) != 0);
    plist_free(prof);

    /* A third tenant whose rules are already met: same hash, no reinstall. */
    CHECK_INT_EQ(from_json("passcode", "{\"minLength\": 4}", &in[2], err, sizeof(err)), 0);
    lmdm_rules_merge(in, 3, m2);
    lmdm_buf_free(&x2);
    CHECK_INT_EQ(lmdm_rules_profile(m2, 0, &x2, h2), 0);
    CHECK_STR_EQ(h1, h2);
    CHECK(lmdm_rules_merged_equal(m, m2));
    /* A stricter one: the hash and the bytes change. */
    CHECK_INT_EQ(from_json("passcode", "{\"minLength\": 10}", &in[2], err, sizeof(err)), 0);
    lmdm_rules_merge(in, 3, m2);
    lmdm_buf_free(&x2);
    CHECK_INT_EQ(lmdm_rules_profile(m2, 0, &x2, h2), 0);
    CHECK(strcmp(h1, h2) != 0);
    CHECK(!lmdm_rules_merged_equal(m, m2));
    CHECK(x1.len != x2.len || memcmp(x1.data, x2.data, x1.len) != 0);
    /* A new domain changes it too. */
    lmdm_rules_t extra = in[0];
    static const char *const more[] = {"zz.example"};
    extra.domains[LMDM_DOMAINS_WEB] = more;
    extra.ndomains[LMDM_DOMAINS_WEB] = 1;
    lmdm_rules_t in2[2] = {extra, in[1]};
    lmdm_rules_merge(in2, 2, m2);
    lmdm_buf_free(&x2);
    CHECK_INT_EQ(lmdm_rules_profile(m2, 0, &x2, h2), 0);
    CHECK(strcmp(h1, h2) != 0);

    /* macOS: FileVault on, deferred, never escrowed; no forcePIN from encryption. */
    lmdm_buf_free(&x2);
    CHECK_INT_EQ(lmdm_rules_profile(m, 1, &x2, h2), 0);
    CHECK(strcmp(h1, h2) != 0);
    prof = parse_profile(&x2);
    plist_t fv = payload_of(prof, "com.apple.MCX.FileVault2");
    CHECK(fv != NULL);
    CHECK_STR_EQ(plist_get_string_ptr(plist_dict_get_item(fv, "Enable"), NULL), "On");
    CHECK_INT_EQ(bool_of(fv, "Defer"), 1);
    CHECK(plist_dict_get_item(fv, "Certificate") == NULL);
    CHECK(payload_of(prof, "com.apple.security.FDERecoveryKeyEscrow") == NULL);
    CHECK_INT_EQ(bool_of(payload_of(prof, "com.apple.mobiledevice.passwordpolicy"), "forcePIN"), -1);
    dom = payload_of(prof, "com.apple.domains");
    CHECK(dom && plist_dict_get_item(dom, "WebDomains") == NULL &&
          plist_dict_get_item(dom, "EmailDomains") != NULL);
    plist_free(prof);

    /* Nothing required: no profile. */
    lmdm_rules_merge(NULL, 0, m2);
    lmdm_buf_t x3 = {0};
    CHECK_INT_EQ(lmdm_rules_profile(m2, 0, &x3, h2), 1);
    CHECK(x3.len == 0);
    /* Only a lenient encryption value: nothing to install either. */
    lmdm_rules_t off = {0};
    put(&off, ENC, 0);
    lmdm_rules_merge(&off, 1, m2);
    CHECK(!lmdm_rules_empty(m2));
    CHECK_INT_EQ(lmdm_rules_profile(m2, 1, &x3, h2), 1);
    CHECK_INT_EQ(lmdm_rules_profile(NULL, 0, &x3, h2), LMDM_ERR_INVALID);

    lmdm_buf_free(&x1);
    lmdm_buf_free(&x2);
    for (int i = 0; i < 3; i++)
        lmdm_rules_free(&in[i]);
    free(m);
    free(m2);
}

int main(void)
{
    RUN(test_table_matches_apple);
    RUN(test_restriction_keys_are_managed_data_keys);
    RUN(test_each_key_rule);
    RUN(test_absent_single_ten);
    RUN(test_check_ranges);
    RUN(test_plain);
    RUN(test_domains_union);
    RUN(test_domains_truncated);
    RUN(test_merge_properties);
    RUN(test_json_sections);
    RUN(test_json_errors);
    RUN(test_json_domains);
    RUN(test_payloads);
    RUN(test_merged_json);
    RUN(test_profile);
    RUN(test_declaration);
    return harness_finish();
}
