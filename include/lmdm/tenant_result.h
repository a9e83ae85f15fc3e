/* What a tenant sees of a device's answer to its command.
 *
 * The device answers with a plist that names the device (UDID, EnrollmentID,
 * ...) and carries the broker's CommandUUID. The tenant gets the same plist
 * with every key policy/ says it may not see removed, at any depth, and with
 * CommandUUID replaced by the tenant's own. Pure: no I/O. */
#ifndef LMDM_TENANT_RESULT_H
#define LMDM_TENANT_RESULT_H

#include <stddef.h>

#include "lmdm/buf.h"
#include "lmdm/common.h"

/** What the tenant owns on the device: bundle ids and profile identifiers,
 * one per line (NULL: none). */
typedef struct lmdm_tenant_owned {
    const char *apps;
    const char *profiles;
    const char *profile_ns; /* the tenant's profile namespace on the device (lmdm_tenant_profile_ns), or NULL */
} lmdm_tenant_owned_t;

/** Build the tenant's view of `xml` (the device's whole answer, an XML plist)
 * into `out` as an XML plist. `tenant_uuid` replaces CommandUUID (NULL or ""
 * removes it). Lists are cut down to the tenant's own entities
 * (ManagedApplicationList: its apps; ProfileList: its profiles); SecurityInfo
 * and DeviceInformation answers keep only policy/'s allow-listed keys.
 * Returns 0, or LMDM_ERR_INVALID if `xml` is not a plist dictionary (out is
 * then left empty). */
int lmdm_tenant_result_view(const char *request_type, const char *xml, size_t len, const char *tenant_uuid,
                            const lmdm_tenant_owned_t *owned, lmdm_buf_t *out) LMDM_MUSTCHECK;

#endif
