/* A tenant's command as posted to POST /v1/enrollments/{id}/commands (or the
 * NanoMDM-style enqueue endpoint), turned into the plist the device receives.
 *
 * Accepted bodies:
 *   application/x-apple-aspen-mdm, application/xml, text/xml: Apple's command
 *     plist exactly as an MDM sends it ({CommandUUID, Command: {RequestType,
 *     ...}}), or the Command dictionary alone;
 *   application/json: the same fields as JSON ({"CommandUUID": "...",
 *     "Command": {"RequestType": ...}}); a <data> value is written
 *     {"$data": "<base64>"}, a <date> {"$date": "<RFC 3339>"}.
 * The device never sees the tenant's CommandUUID: the plist carries the
 * broker's. Pure apart from allocation: no I/O. */
#ifndef LMDM_TENANT_COMMAND_H
#define LMDM_TENANT_COMMAND_H

#include <stddef.h>

#include "lmdm/arena.h"
#include "lmdm/common.h"
#include "lmdm/policy.h"

#define LMDM_TENANT_UUID_MAX 128

typedef struct lmdm_tenant_command {
    const char *request_type;
    const char *tenant_uuid;  /* the tenant's CommandUUID, or NULL */
    /* The tenant entity this command installs ("add") or acts on ("own"):
     * kind "app" (bundle id) or "profile" (PayloadIdentifier); NULL if none. */
    const char *entity_kind;
    const char *entity;
    const char *entity_op;
    const char *payload;      /* XML plist for the device, NUL-terminated (arena) */
    size_t payload_len;
    const char *error_code;   /* set on failure: a stable code for the API's error body */
    lmdm_policy_command_t policy; /* the plain view policy/ decides on (arena) */
    /* InstallProfile: the payloads taken out for the broker's merged rules,
     * as a JSON array [{type, identifier, plist}], or NULL. The device's
     * profile no longer holds them. DeviceInformation: the device's command
     * keeps only the queries policy/ allows. */
    const char *merged_json;
} lmdm_tenant_command_t;

/** Parse and rebuild a tenant command. `profile_ns` (e.g. "lmdm.t3.", NULL for
 * none) namespaces the tenant's profile identifiers on the device: an
 * InstallProfile's PayloadIdentifier and a RemoveProfile's Identifier are
 * prefixed with it, so two tenants' "com.example.mail" never clash (the
 * tenant keeps using its own identifier; entity and policy/ see that one).
 * Returns 0, or LMDM_ERR_INVALID with out->error_code and a human message in
 * err. */
int lmdm_tenant_command_parse(const char *content_type, const char *body, size_t len, const char *broker_uuid,
                              const char *profile_ns, lmdm_arena_t *arena, lmdm_tenant_command_t *out, char *err,
                              size_t errlen) LMDM_MUSTCHECK;

/** The namespace of tenant `tenant_id`'s profiles on the device ("lmdm.t<id>."). */
void lmdm_tenant_profile_ns(long long tenant_id, char out[32]);

#endif
