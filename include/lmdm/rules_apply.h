/* The rules applier: a background thread keeping each device's broker-owned
 * rules profile equal to the strictest merge of its tenants' rules, and
 * turning SecurityInfo answers into per-tenant compliance (see
 * broker/rules/rules_apply.c). One per database: a session-level advisory lock
 * elects it among broker instances. */
#ifndef LMDM_RULES_APPLY_H
#define LMDM_RULES_APPLY_H

#include <stddef.h>
#include <stdint.h>

#define LMDM_RULES_LOCK_KEY 0x6c6d646d72756c31LL /* "lmdmrul1" */

typedef struct lmdm_rules_applier lmdm_rules_applier_t;

typedef struct lmdm_rules_stats {
    uint64_t merges;      /* devices merged */
    uint64_t installs;    /* profiles queued because the merged result changed */
    uint64_t removals;    /* profiles removed because nothing is required any more */
    uint64_t evaluations; /* SecurityInfo answers judged */
    uint64_t refreshes;   /* SecurityInfo asked again because the last answer was older than the interval */
} lmdm_rules_stats_t;

/** Start the thread (it connects, and reconnects, by itself). NULL with a
 * message only if the thread cannot be created. */
lmdm_rules_applier_t *lmdm_rules_applier_start(const char *conninfo, int compliance_interval_s, char *err,
                                               size_t errlen);

/** Counters so far (any thread). */
void lmdm_rules_applier_stats(lmdm_rules_applier_t *a, lmdm_rules_stats_t *out);

/** Stop within about 100 ms and free. NULL is a no-op. */
void lmdm_rules_applier_stop(lmdm_rules_applier_t *a);

#endif
