/* OS update plan benchmark (issue 7): lmdm_os_plan() for 100,000 devices
 * with 3 tenants each, as after a release import, against a release list
 * shaped like the SOFA iOS feed (about 70 releases of three major versions,
 * each listing about 95 supported model identifiers), in-process on one
 * core. Devices run a spread of versions and models (a few are too old for
 * the newest major), live in six zones (with and without DST, north and
 * south, a half-hour one) and sit in rings 0/3/7/14; 3 of 12 tenants'
 * requirements each (latest security within N days, min version by a date,
 * deferral and ring limits).
 *
 * Printed: plans per second, the total time (best of --rounds), peak RSS
 * (getrusage) and the bytes per device of everything held for the run
 * (devices, their tenants, a compact result each), and the state counts as
 * a sanity check. Next to it, measured in the same run on the same devices:
 * lmdm_rules_merge() of the same 3 tenants' passcode rules per device
 * (issue 6), which the broker runs for the same devices on the same
 * occasions, as a ratio.
 *
 * usage: osupdate_bench [--devices N] [--rounds R] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "lmdm/osupdate.h"
#include "lmdm/rules.h"
#include "lmdm/tz.h"

#define TENANTS_PER_DEVICE 3
#define NTENANTS 12
#define NZONES 6
#define MODELS 120 /* model identifiers in the pool */
#define PER_RELEASE 95

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* ---------------------------------------------------------------- feed */

static char model_names[MODELS][16];
static const char *models[MODELS];

/* iPhone and iPad identifiers, oldest first (the pool's order is its age). */
static void make_models(void)
{
    for (int i = 0; i < MODELS; i++) {
        if (i % 2 == 0)
            snprintf(model_names[i], sizeof(model_names[i]), "iPhone%d,%d", 10 + i / 12, 1 + (i / 2) % 6);
        else
            snprintf(model_names[i], sizeof(model_names[i]), "iPad%d,%d", 7 + i / 10, 1 + (i / 2) % 12);
        models[i] = model_names[i];
    }
}

static char version_names[80][24];
static lmdm_os_release_t releases[80];
static size_t nreleases;

/* Majors 16, 17, 18 with their minor and patch releases (71), every 2
 * weeks from 2022-09-12. Each supports 95 models: 16 the oldest 95 of the
 * pool, 17 from the 11th, 18 from the 26th (each major drops old models and
 * adds the new ones). */
static void make_releases(void)
{
    static const int minors[3][9] = {
        {4, 3, 3, 3, 3, 3, 3, 3, 2}, /* releases of 16.0 .. 16.8 (16.x itself counted) */
        {4, 3, 3, 3, 3, 3, 3, 2, 0},
        {4, 3, 3, 3, 3, 2, 2, 0, 0},
    };
    int64_t day = lmdm_days_from_civil(2022, 9, 12);
    for (int maj = 0; maj < 3; maj++)
        for (int mi = 0; mi < 9 && minors[maj][mi]; mi++)
            for (int pa = 0; pa < minors[maj][mi]; pa++) {
                char *v = version_names[nreleases];
                if (pa == 0)
                    snprintf(v, sizeof(version_names[0]), "%d.%d", 16 + maj, mi);
                else
                    snprintf(v, sizeof(version_names[0]), "%d.%d.%d", 16 + maj, mi, pa);
                lmdm_os_release_t *r = &releases[nreleases++];
                r->platform = LMDM_PLATFORM_IOS;
                r->version = v;
                r->build = "";
                r->released = day;
                r->security = (nreleases % 5) != 0; /* four in five fix CVEs */
                r->devices = models + (maj == 0 ? 0 : maj == 1 ? 10 : 25);
                r->ndevices = PER_RELEASE;
                day += 14;
            }
}

/* -------------------------------------------------------------- tenants */

static lmdm_os_requirement_t tenants[NTENANTS];
static lmdm_rules_t passcode[NTENANTS];

static void make_tenants(int64_t today)
{
    for (int t = 0; t < NTENANTS; t++) {
        lmdm_os_requirement_t *q = &tenants[t];
        lmdm_os_requirement_init(q);
        switch (t % 4) {
        case 0: q->latest_security_days = 14 + 7 * (t % 3); break;
        case 1:
            q->latest_security_days = 30;
            q->allow_major = t % 2;
            break;
        case 2:
            q->min_version = t % 3 ? "18.2" : "17.6";
            q->min_version_by = today + 10 + t;
            break;
        default: break; /* limits only */
        }
        q->max_deferrals = t % 3 == 0 ? -1 : 2 + t % 4;
        q->latest_ring_delay = t % 5 == 0 ? 7 : -1;
    }
    static const char *const keys[] = {"requirePasscode", "minLength", "maxInactivity", "pinHistory"};
    for (int t = 0; t < NTENANTS; t++) {
        long vals[] = {1, 4 + t % 5, 2 + t % 13, 1 + t % 7};
        for (int k = 0; k < 4; k++) {
            int key = lmdm_rule_key_find(LMDM_RULE_SECTION_PASSCODE, keys[k]);
            if (key < 0) {
                fprintf(stderr, "osupdate_bench: no rule key %s\n", keys[k]);
                exit(1);
            }
            passcode[t].set |= (uint64_t)1 << key;
            passcode[t].value[key] = vals[k];
        }
    }
}

/* ------------------------------------------------------------- devices */

static const char *const zone_rules[NZONES] = {
    "CET-1CEST,M3.5.0,M10.5.0/3",
    "EST5EDT,M3.2.0,M11.1.0",
    "AEST-10AEDT,M10.1.0,M4.1.0/3",
    "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
    "IST-5:30",
    "UTC0",
};
static lmdm_tz_t zones[NZONES];

typedef struct {
    lmdm_os_device_t dev;
    unsigned char tenant[TENANTS_PER_DEVICE];
} bench_device_t;

/* What the broker would keep of a plan. */
typedef struct {
    unsigned char state;
    short target; /* release index, -1 */
    int64_t deadline, install_at;
} result_t;

static void make_devices(bench_device_t *d, size_t n)
{
    static const int rings[4] = {0, 3, 7, 14};
    for (size_t i = 0; i < n; i++) {
        lmdm_os_device_t *v = &d[i].dev;
        memset(v, 0, sizeof(*v));
        v->platform = LMDM_PLATFORM_IOS;
        /* Mostly recent versions; some devices months behind. */
        size_t back = rnd() % 4 == 0 ? 10 + rnd() % 40 : rnd() % 10;
        v->os_version = releases[nreleases - 1 - (back < nreleases ? back : nreleases - 1)].version;
        v->model = models[rnd() % MODELS];
        v->supervised = rnd() % 3 != 0;
        v->user_enrollment = rnd() % 10 == 0;
        v->ring_delay = rings[rnd() % 4];
        v->tz = &zones[rnd() % NZONES];
        v->install_time = 2 * 3600;
        v->deferrals_used = (int)(rnd() % 3);
        for (int j = 0; j < TENANTS_PER_DEVICE; j++) {
            int t, dup;
            do {
                t = (int)(rnd() % NTENANTS);
                dup = 0;
                for (int x = 0; x < j; x++)
                    dup |= d[i].tenant[x] == t;
            } while (dup);
            d[i].tenant[j] = (unsigned char)t;
        }
    }
}

/* ---------------------------------------------------------------- runs */

static double run_plans(const bench_device_t *d, size_t n, int64_t now, lmdm_os_plan_t *plan, result_t *res)
{
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        lmdm_os_requirement_t q[TENANTS_PER_DEVICE];
        for (int j = 0; j < TENANTS_PER_DEVICE; j++)
            q[j] = tenants[d[i].tenant[j]];
        lmdm_os_plan(&d[i].dev, q, TENANTS_PER_DEVICE, releases, nreleases, now, plan);
        res[i].state = (unsigned char)plan->state;
        res[i].target = plan->target ? (short)(plan->target - releases) : -1;
        res[i].deadline = plan->deadline;
        res[i].install_at = plan->install_at;
    }
    return now_s() - t0;
}

static volatile long sink;

static double run_merges(const bench_device_t *d, size_t n, lmdm_merged_t *out)
{
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        lmdm_rules_t in[TENANTS_PER_DEVICE];
        for (int j = 0; j < TENANTS_PER_DEVICE; j++)
            in[j] = passcode[d[i].tenant[j]];
        lmdm_rules_merge(in, TENANTS_PER_DEVICE, out);
        sink += out->rules.value[1];
    }
    return now_s() - t0;
}

int main(int argc, char **argv)
{
    size_t n = 100000;
    int rounds = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--devices") == 0 && i + 1 < argc)
            n = (size_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: osupdate_bench [--devices N] [--rounds R]\n");
            return 2;
        }
    }
    if (n == 0 || rounds < 1) {
        fprintf(stderr, "osupdate_bench: --devices and --rounds must be positive\n");
        return 2;
    }
    for (int z = 0; z < NZONES; z++) {
        char err[128];
        if (lmdm_tz_parse(zone_rules[z], &zones[z], err, sizeof(err)) != 0) {
            fprintf(stderr, "osupdate_bench: %s: %s\n", zone_rules[z], err);
            return 1;
        }
    }
    make_models();
    make_releases();
    /* The clock: two days after the last release, at 10:00Z. */
    int64_t now = (releases[nreleases - 1].released + 2) * 86400 + 10 * 3600;
    make_tenants(now / 86400);

    long rss0 = peak_rss_kib();
    bench_device_t *d = calloc(n, sizeof(*d));
    result_t *res = calloc(n, sizeof(*res));
    lmdm_os_plan_t *plan = calloc(1, sizeof(*plan));
    lmdm_merged_t *merged = calloc(1, sizeof(*merged));
    if (!d || !res || !plan || !merged) {
        fprintf(stderr, "osupdate_bench: out of memory\n");
        return 1;
    }
    make_devices(d, n);

    double best_plan = 1e9, best_merge = 1e9;
    for (int r = 0; r < rounds; r++) { /* alternate, so that neither gets a quieter moment */
        double tp = run_plans(d, n, now, plan, res);
        double tm = run_merges(d, n, merged);
        if (tp < best_plan) best_plan = tp;
        if (tm < best_merge) best_merge = tm;
    }
    long rss1 = peak_rss_kib();

    size_t count[6] = {0}, with_target = 0;
    for (size_t i = 0; i < n; i++) {
        if (res[i].state < 6) count[res[i].state]++;
        with_target += res[i].target >= 0;
    }
    char today[20];
    lmdm_datetime_format(now, today);
    printf("OS update plans: %zu devices x %d tenants (of %d), %zu iOS releases x %d models, %d zones; "
           "now %sZ; best of %d round(s), one core\n",
           n, TENANTS_PER_DEVICE, NTENANTS, nreleases, PER_RELEASE, NZONES, today, rounds);
    printf("  plans        %10.0f /s   %8.1f ms in all   %6.2f us per device\n", (double)n / best_plan,
           best_plan * 1e3, best_plan * 1e6 / (double)n);
    printf("  reference: lmdm_rules_merge of the same 3 tenants' passcode rules per device\n");
    printf("  merges       %10.0f /s   %8.1f ms in all   %6.2f us per device\n", (double)n / best_merge,
           best_merge * 1e3, best_merge * 1e6 / (double)n);
    printf("  ratio        plan time / merge time = %.2f\n", best_plan / best_merge);
    printf("  memory       peak RSS %ld KiB (%ld KiB before the devices); %.0f bytes per device held "
           "(device %zu B + result %zu B; one lmdm_os_plan_t %zu B, reused)\n",
           rss1, rss0, (double)(rss1 - rss0) * 1024.0 / (double)n, sizeof(bench_device_t), sizeof(result_t),
           sizeof(lmdm_os_plan_t));
    printf("  states       none %zu, up_to_date %zu, waiting %zu, scheduled %zu, overdue %zu, unknown %zu "
           "(%zu with a target)\n",
           count[LMDM_OSU_NONE], count[LMDM_OSU_UP_TO_DATE], count[LMDM_OSU_WAITING],
           count[LMDM_OSU_SCHEDULED], count[LMDM_OSU_OVERDUE], count[LMDM_OSU_UNKNOWN], with_target);
    free(d);
    free(res);
    free(plan);
    free(merged);
    return 0;
}
