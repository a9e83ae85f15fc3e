/* Response filtering: which entries of a device's list answer a tenant may
 * see. A list (ManagedApplicationList, ProfileList) keeps exactly the
 * tenant's own entities; everything else (the owner's apps, other tenants')
 * is dropped. */
#include <string.h>

#include "lmdm/policy.h"

size_t lmdm_policy_filter_owned(lmdm_strs_t listed, lmdm_strs_t owned, unsigned char *keep)
{
    size_t kept = 0;
    for (size_t i = 0; i < listed.n; i++) {
        keep[i] = 0;
        const char *s = listed.v[i];
        if (!s) continue;
        size_t len = strlen(s);
        for (size_t k = 0; k < owned.n; k++) {
            /* first byte and length before the full compare: most entries differ early */
            if (owned.v[k][0] == s[0] && strncmp(owned.v[k], s, len) == 0 && owned.v[k][len] == '\0') {
                keep[i] = 1;
                kept++;
                break;
            }
        }
    }
    return kept;
}
