/* policy/: what a tenant may do to a device, as pure functions over plain
 * values (no I/O, no globals that change, no clock). This is the part privacy
 * auditors read.
 *
 * Decisions (DESIGN.md flow 3):
 *   allow  harmless and tenant-local: forwarded as is
 *   scope  allowed only on the tenant's own entities (its apps, its profiles)
 *   merge  a device-wide rule: folded into the broker's merged rule, never
 *          forwarded raw
 *   block  never reaches the device; `reason` is a stable code */
#ifndef LMDM_POLICY_H
#define LMDM_POLICY_H

typedef enum {
    LMDM_POLICY_ALLOW = 0,
    LMDM_POLICY_SCOPE,
    LMDM_POLICY_MERGE,
    LMDM_POLICY_BLOCK,
} lmdm_policy_kind_t;

typedef struct lmdm_policy_decision {
    lmdm_policy_kind_t kind;
    const char *reason;  /* stable code for block (e.g. "wipe"), else NULL */
    const char *explain; /* one sentence in plain words, for tenants, owners and auditors */
} lmdm_policy_decision_t;

/** The decision for a tenant's command of this RequestType. Unknown request
 * types are blocked ("unknown_command"): nothing is allowed by default. */
lmdm_policy_decision_t lmdm_policy_decide_command(const char *request_type);

/** "allow", "scope", "merge" or "block". */
const char *lmdm_policy_kind_name(lmdm_policy_kind_t kind);

/** 0 if a key of a device answer must never reach a tenant, at any depth
 * (device identifiers such as UDID, SerialNumber, IMEI, MAC addresses, the
 * device name, the owner's user names); 1 otherwise. */
int lmdm_policy_result_key_visible(const char *request_type, const char *key);

#endif
