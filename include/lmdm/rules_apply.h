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

/** Start the thread (it connects, and reconnects, by itself). NULL with a
 * message only if the thread cannot be created. */
lmdm_rules_applier_t *lmdm_rules_applier_start(const char *conninfo, int compliance_interval_s, char *err,
                                               size_t errlen);

/** Stop within about 100 ms and free. NULL is a no-op. */
void lmdm_rules_applier_stop(lmdm_rules_applier_t *a);

#endif
