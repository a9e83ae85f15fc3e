/* policy/: what a tenant may do to a device, as pure functions over plain
 * values (no I/O, no clock, no state). This is the part privacy auditors read:
 * the tables in policy/commands.c and policy/payloads.c are the specification,
 * one row for every RequestType and every profile PayloadType in Apple's
 * schema, each with its decision, reason code and rationale.
 *
 * Decisions (DESIGN.md flow 3):
 *   allow  harmless and tenant-local: forwarded (answers may be filtered)
 *   scope  allowed only on the tenant's own entities (its apps, its profiles)
 *   merge  a device-wide rule: taken out of the command and folded into the
 *          broker's merged rule, never forwarded as is
 *   block  never reaches the device; `reason` is a stable code
 * Nothing is allowed by default: an unknown command or payload is blocked. */
#ifndef LMDM_POLICY_H
#define LMDM_POLICY_H

#include <stddef.h>

typedef enum {
    LMDM_POLICY_ALLOW = 0,
    LMDM_POLICY_SCOPE,
    LMDM_POLICY_MERGE,
    LMDM_POLICY_BLOCK,
} lmdm_policy_kind_t;

/* Where Apple forbids a command or payload under User Enrollment. */
#define LMDM_UE_IOS 1u
#define LMDM_UE_MACOS 2u

/** One row of a decision table. */
typedef struct lmdm_policy_rule {
    const char *name;      /* RequestType or PayloadType */
    lmdm_policy_kind_t kind;
    const char *reason;    /* stable code for block, else NULL */
    unsigned ue_forbidden; /* LMDM_UE_* where Apple forbids it under User Enrollment */
    const char *explain;   /* one sentence in plain words */
} lmdm_policy_rule_t;

/** The whole tables, sorted by name. */
const lmdm_policy_rule_t *lmdm_policy_command_rules(size_t *n);
const lmdm_policy_rule_t *lmdm_policy_payload_rules(size_t *n);
/** One row, or NULL when the name has none. */
const lmdm_policy_rule_t *lmdm_policy_command_rule(const char *request_type);
const lmdm_policy_rule_t *lmdm_policy_payload_rule(const char *payload_type);

typedef enum { LMDM_PLATFORM_IOS = 1, LMDM_PLATFORM_MACOS = 2 } lmdm_platform_t;

/** The device as policy sees it, and the asking tenant's settings. */
typedef struct lmdm_policy_device {
    lmdm_platform_t platform;
    int user_enrollment;
    int wipe_as_retire; /* the operator configured this tenant's EraseDevice to mean "retire" */
} lmdm_policy_device_t;

/** A list of strings. */
typedef struct lmdm_strs {
    const char *const *v;
    size_t n;
} lmdm_strs_t;

/** What the device holds, as far as this tenant's decision needs. */
typedef struct lmdm_policy_entities {
    lmdm_strs_t apps, profiles;             /* this tenant's */
    lmdm_strs_t other_apps;     /* other tenants' apps on this device (never named to the tenant) */
    lmdm_strs_t other_profiles; /* other tenants' profiles: informational, profiles live in per-tenant
                                 * namespaces on the device and never clash */
} lmdm_policy_entities_t;

/** One payload of an InstallProfile, as plain values. */
typedef struct lmdm_policy_payload {
    const char *type;
    const char *identifier;
    lmdm_strs_t keys; /* its keys, for key-level rules */
} lmdm_policy_payload_t;

/** A tenant command, as plain values extracted from its plist. */
typedef struct lmdm_policy_command {
    const char *request_type;
    const char *identifier;     /* Identifier (InstallApplication, RemoveApplication, RemoveProfile) */
    const char *profile_identifier; /* InstallProfile: the profile's PayloadIdentifier */
    int has_identifiers;        /* an Identifiers array is present */
    lmdm_strs_t identifiers;    /* Identifiers (ManagedApplication*, ValidateApplications) */
    lmdm_strs_t queries;        /* DeviceInformation Queries */
    lmdm_strs_t settings_items; /* Settings: each item's Item */
    lmdm_strs_t settings_ids;   /* Settings: each item's Identifier ("" when absent) */
    int change_management_state;
    const lmdm_policy_payload_t *payloads; /* InstallProfile */
    size_t npayloads;
} lmdm_policy_command_t;

typedef struct lmdm_policy_verdict {
    lmdm_policy_kind_t kind;
    const char *reason;       /* block: stable code */
    const char *explain;      /* plain words */
    int payload_index;        /* the payload that decided a block, or -1 */
    const char *payload_type;
    size_t merge_payloads;    /* InstallProfile: payloads to take out for the merge */
    size_t kept_queries;      /* DeviceInformation: queries that stay (see lmdm_policy_query_allowed) */
    int retire;               /* EraseDevice as "retire": remove only this tenant's entities and end its
                               * enrollment (kind SCOPE); nothing of the device is erased */
} lmdm_policy_verdict_t;

/** The decision for one tenant command. `ent` NULL: ownership is not checked
 * (the caller checks it atomically elsewhere). */
lmdm_policy_verdict_t lmdm_policy_decide(const lmdm_policy_command_t *cmd, const lmdm_policy_device_t *dev,
                                         const lmdm_policy_entities_t *ent);

/** Compatibility: the table decision for a RequestType alone. */
typedef lmdm_policy_verdict_t lmdm_policy_decision_t;
lmdm_policy_decision_t lmdm_policy_decide_command(const char *request_type);

/** "allow", "scope", "merge" or "block". */
const char *lmdm_policy_kind_name(lmdm_policy_kind_t kind);

/** 1 if a DeviceInformation query names nothing identifying (OS version,
 * model family, ...). */
int lmdm_policy_query_allowed(const char *query);

/** 1 if a com.apple.applicationaccess key governs managed data only (the one
 * part of the restrictions payload a tenant may ask for). */
int lmdm_policy_managed_data_key(const char *key);

/** Response filtering of a list answer: keep[i] = 1 for the entries of
 * `listed` that are among `owned` (the tenant's own entities), else 0.
 * Returns how many are kept. */
size_t lmdm_policy_filter_owned(lmdm_strs_t listed, lmdm_strs_t owned, unsigned char *keep);

/** 0 if a key of a device answer must never reach a tenant, at any depth
 * (device identifiers such as UDID, SerialNumber, IMEI, MAC addresses, the
 * device name, the owner's user names); 1 otherwise. */
int lmdm_policy_result_key_visible(const char *request_type, const char *key);

/** 1 if a key directly inside a SecurityInfo answer's SecurityInfo dictionary
 * or a DeviceInformation answer's QueryResponses may reach the tenant (an
 * allow-list of non-identifying compliance facts). */
int lmdm_policy_info_key_allowed(const char *request_type, const char *key);

#endif
