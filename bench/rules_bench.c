/* Device-wide rules benchmark (issue 6): merges per second on one core of 10
 * tenants' passcode rules (target >= 200,000/s), and of the same with
 * encryption, managed-data restrictions and 5 managed domains each; each
 * next to references measured in the same run:
 *   - memcpy of the 10 inputs: the floor of merely reading what is merged;
 *   - building the broker's profile (XML) from the merged result: what the
 *     broker pays anyway whenever a merge changes something, so the merge
 *     itself should be a small fraction of it.
 * Then the re-merge of 10,000 devices (3..10 tenants each) after one tenant
 * changes its rule: the time, and how many devices' merged results changed,
 * i.e. how many profile reinstalls would be queued (the in-process part of
 * that step; loading the rules from PostgreSQL and queueing are not in it).
 *
 * usage: rules_bench [--seconds S]   (default 1 s per measurement) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmdm/buf.h"
#include "lmdm/rules.h"
#include "lmdm/rules_profile.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile long sink;
static double seconds = 1.0;

/* Calls fn(arg) repeatedly for about `seconds`; returns calls per second. */
static double rate(void (*fn)(void *), void *arg)
{
    long n = 0, batch = 64;
    double t0 = now(), t;
    do {
        for (long i = 0; i < batch; i++)
            fn(arg);
        n += batch;
        t = now();
        if (t - t0 < seconds / 10) batch *= 2;
    } while (t - t0 < seconds);
    return (double)n / (t - t0);
}

static int key(lmdm_rule_section_t s, const char *name)
{
    int k = lmdm_rule_key_find(s, name);
    if (k < 0) {
        fprintf(stderr, "rules_bench: no key %s\n", name);
        exit(1);
    }
    return k;
}

static void put(lmdm_rules_t *r, int k, long v)
{
    r->set |= (uint64_t)1 << k;
    r->value[k] = v;
}

typedef struct {
    lmdm_rules_t in[10];
    lmdm_rules_t copy[10];
    lmdm_merged_t out;
} work_t;

/* Ten tenants' passcode rules: every passcode key set, values spread so that
 * the strictest comes from different tenants. */
static void passcode_rules(lmdm_rules_t *r, int i)
{
    lmdm_rule_section_t P = LMDM_RULE_SECTION_PASSCODE;
    put(r, key(P, "requirePasscode"), 1);
    put(r, key(P, "allowSimple"), i % 2);
    put(r, key(P, "requireAlphanumeric"), i % 3 == 0);
    put(r, key(P, "minLength"), 4 + i % 7);
    put(r, key(P, "minComplexChars"), i % 3);
    put(r, key(P, "maxPINAgeInDays"), 30 + 30 * (i % 6));
    put(r, key(P, "maxInactivity"), 2 + i % 13);
    put(r, key(P, "maxGracePeriod"), (i * 7) % 16);
    put(r, key(P, "pinHistory"), 1 + (i * 3) % 10);
}

static const char *const web[10][5] = {
    {"t0.example", "*.t0.example", "shared.example", "a.example", "b.example"},
    {"t1.example", "*.t1.example", "shared.example", "c.example", "d.example"},
    {"t2.example", "*.t2.example", "shared.example", "e.example", "f.example"},
    {"t3.example", "*.t3.example", "shared.example", "g.example", "h.example"},
    {"t4.example", "*.t4.example", "shared.example", "i.example", "j.example"},
    {"t5.example", "*.t5.example", "shared.example", "k.example", "l.example"},
    {"t6.example", "*.t6.example", "shared.example", "m.example", "n.example"},
    {"t7.example", "*.t7.example", "shared.example", "o.example", "p.example"},
    {"t8.example", "*.t8.example", "shared.example", "q.example", "r.example"},
    {"t9.example", "*.t9.example", "shared.example", "s.example", "t.example"},
};

static void full_rules(lmdm_rules_t *r, int i)
{
    passcode_rules(r, i);
    put(r, key(LMDM_RULE_SECTION_ENCRYPTION, "required"), i % 4 == 0);
    put(r, key(LMDM_RULE_SECTION_RESTRICTIONS, "allowOpenFromManagedToUnmanaged"), i % 2);
    put(r, key(LMDM_RULE_SECTION_RESTRICTIONS, "requireManagedPasteboard"), i % 3 == 0);
    put(r, key(LMDM_RULE_SECTION_RESTRICTIONS, "allowManagedAppsCloudSync"), i != 5);
    r->domains[LMDM_DOMAINS_WEB] = web[i];
    r->ndomains[LMDM_DOMAINS_WEB] = 5;
}

static void do_merge(void *arg)
{
    work_t *w = arg;
    lmdm_rules_merge(w->in, 10, &w->out);
    sink += w->out.rules.value[3];
}

static void do_memcpy(void *arg)
{
    work_t *w = arg;
    memcpy(w->copy, w->in, sizeof(w->in));
    __asm__ volatile("" : : "r"(w->copy) : "memory"); /* keep the copy */
    sink += w->copy[9].value[3];
}

static void do_profile(void *arg)
{
    work_t *w = arg;
    lmdm_buf_t xml = {0};
    char hash[65];
    if (lmdm_rules_profile(&w->out, 0, &xml, hash) == 0) sink += (long)xml.len;
    lmdm_buf_free(&xml);
}

static void line(const char *what, double r, double target, double ref, const char *ref_what)
{
    char t[64] = "";
    if (target > 0) snprintf(t, sizeof(t), "target %9.0f  %-6s", target, r >= target ? "met" : "MISSED");
    printf("  %-44s %12.0f /s   %-24s | reference %-26s %10.0f /s  ratio %.2f\n", what, r, t, ref_what, ref,
           r / ref);
}

/* ---- 10,000 devices, one tenant changes its rule ---- */

#define DEVICES 10000
#define TENANTS 40

typedef struct {
    unsigned char n;
    unsigned char tenant[10];
} device_t;

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void remerge_devices(void)
{
    static lmdm_rules_t tenants[TENANTS];
    static device_t dev[DEVICES];
    lmdm_merged_t *before = malloc(sizeof(lmdm_merged_t) * 2);
    lmdm_merged_t *after = before + 1;
    int min_length = key(LMDM_RULE_SECTION_PASSCODE, "minLength");
    for (int t = 0; t < TENANTS; t++) {
        passcode_rules(&tenants[t], (int)(rnd() % 10));
        tenants[t].value[min_length] = 4 + (long)(rnd() % 5); /* 4..8 */
    }
    tenants[0].value[min_length] = 4;
    for (int d = 0; d < DEVICES; d++) { /* 3..10 distinct tenants */
        dev[d].n = (unsigned char)(3 + rnd() % 8);
        for (int j = 0; j < dev[d].n; j++) {
            int t, dup;
            do {
                t = (int)(rnd() % TENANTS);
                dup = 0;
                for (int x = 0; x < j; x++)
                    dup |= dev[d].tenant[x] == t;
            } while (dup);
            dev[d].tenant[j] = (unsigned char)t;
        }
    }
    /* Tenant 0 raises its minimum length from 4 to 8: the merged result
     * changes only on devices where no other tenant already asks for 8. */
    lmdm_rules_t changed = tenants[0];
    changed.value[min_length] = 8;

    size_t affected = 0, reinstalls = 0;
    double t0 = now();
    for (int d = 0; d < DEVICES; d++) {
        int has = 0;
        lmdm_rules_t in[10];
        for (int j = 0; j < dev[d].n; j++) {
            in[j] = tenants[dev[d].tenant[j]];
            has |= dev[d].tenant[j] == 0;
        }
        if (!has) continue; /* the broker only re-merges devices of the tenant that changed */
        affected++;
        lmdm_rules_merge(in, dev[d].n, before); /* in the broker: the stored merged result */
        for (int j = 0; j < dev[d].n; j++)
            if (dev[d].tenant[j] == 0) in[j] = changed;
        lmdm_rules_merge(in, dev[d].n, after);
        if (!lmdm_rules_merged_equal(before, after)) reinstalls++;
    }
    double dt = now() - t0;
    printf(
        "  re-merge after one tenant's change: %d devices, %zu with that tenant, %zu merged results changed\n"
        "    -> %zu profile reinstalls queued, %zu not; %.1f ms in all (two merges and a compare per "
        "device)\n",
        DEVICES, affected, reinstalls, reinstalls, affected - reinstalls, dt * 1e3);
    free(before);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--seconds") == 0)
        seconds = atof(argv[2]);
    else if (argc != 1) {
        fprintf(stderr, "usage: rules_bench [--seconds S]\n");
        return 2;
    }
    if (seconds <= 0) seconds = 1;
    work_t *w = calloc(1, sizeof(*w));
    printf("rules benchmark: one core, %.1f s per figure\n", seconds);

    for (int i = 0; i < 10; i++)
        passcode_rules(&w->in[i], i);
    double copy = rate(do_memcpy, w);
    double merge = rate(do_merge, w);
    double profile = rate(do_profile, w);
    line("merge: 10 tenants, passcode (9 keys each)", merge, 200000, copy, "memcpy of the 10 inputs");
    line("  (the same merge)", merge, 0, profile, "profile from the result");

    memset(w->in, 0, sizeof(w->in));
    for (int i = 0; i < 10; i++)
        full_rules(&w->in[i], i);
    copy = rate(do_memcpy, w);
    merge = rate(do_merge, w);
    profile = rate(do_profile, w);
    line("merge: 10 tenants, all sections, 5 domains", merge, 0, copy, "memcpy of the 10 inputs");
    line("  (the same merge)", merge, 0, profile, "profile from the result");
    printf("  (sizeof lmdm_rules_t %zu B, lmdm_merged_t %zu B)\n", sizeof(lmdm_rules_t),
           sizeof(lmdm_merged_t));

    remerge_devices();
    free(w);
    return 0;
}
