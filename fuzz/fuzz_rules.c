/* libFuzzer target: device-wide rules as tenants send them. The first byte
 * picks a section (JSON, as PUT /v1/rules/{section} takes it) or a payload
 * type (XML plist, as taken out of a tenant's profile); the rest is the
 * input. Parsed or refused with a message; what parses merges and builds a
 * profile without a crash or a leak. */
#include <stdint.h>
#include <string.h>

#include "lmdm/buf.h"
#include "lmdm/rules.h"
#include "lmdm/rules_json.h"
#include "lmdm/rules_profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const char *const sections[] = {"passcode", "encryption", "restrictions", "domains"};
    static const char *const payloads[] = {"com.apple.mobiledevice.passwordpolicy", "com.apple.applicationaccess",
                                           "com.apple.MCX.FileVault2", "com.apple.domains"};
    lmdm_rules_t r[2];
    memset(r, 0, sizeof(r));
    char err[256] = "";
    int rv;
    if (data[0] & 4) {
        rv = lmdm_rules_from_payload(payloads[data[0] & 3], (const char *)data + 1, size - 1, &r[0], err, sizeof(err));
    } else {
        json_t *j = json_loadb((const char *)data + 1, size - 1, 0, NULL);
        rv = j ? lmdm_rules_from_json(sections[data[0] & 3], j, &r[0], err, sizeof(err)) : -1;
        if (j && rv != 0 && !err[0]) __builtin_trap();
        json_decref(j);
    }
    if (rv == 0) {
        int bad;
        if (lmdm_rules_check(&r[0], &bad) != 0) __builtin_trap(); /* accepted means in range */
        static lmdm_merged_t m;
        lmdm_rules_merge(r, 2, &m);
        lmdm_buf_t xml = {0};
        char hash[65];
        if (lmdm_rules_profile(&m, data[0] & 8, &xml, hash) < 0) __builtin_trap();
        lmdm_buf_free(&xml);
    } else if (!err[0] && (data[0] & 4)) {
        __builtin_trap();
    }
    lmdm_rules_free(&r[0]);
    lmdm_rules_free(&r[1]);
    return 0;
}
