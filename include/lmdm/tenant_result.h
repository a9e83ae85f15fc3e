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

/** Build the tenant's view of `xml` (the device's whole answer, an XML plist)
 * into `out` as an XML plist. `tenant_uuid` replaces CommandUUID (NULL or ""
 * removes it). `owned_apps`: the bundle ids this tenant installed on the
 * device, one per line (NULL: none); a ManagedApplicationList answer keeps only
 * those. Returns 0, or LMDM_ERR_INVALID if `xml` is not a plist dictionary
 * (out is then left empty). */
int lmdm_tenant_result_view(const char *request_type, const char *xml, size_t len, const char *tenant_uuid,
                            const char *owned_apps, lmdm_buf_t *out) LMDM_MUSTCHECK;

#endif
