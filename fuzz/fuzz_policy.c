/* libFuzzer target: `lmdm policy decide`'s input. The first byte picks plist
 * or JSON and the device (platform, User Enrollment); the rest is the command.
 * Every input gets a decision or "invalid" with a code; never a crash. */
#include <stdint.h>
#include <string.h>

#include "lmdm/policy_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const char *const mine[] = {"org.stmarys.rounds"}, *const theirs[] = {"org.general.app"};
    static const char *const myp[] = {"org.stmarys.mail"}, *const theirp[] = {"org.general.vpn"};
    lmdm_policy_entities_t ent = {{mine, 1}, {myp, 1}, {theirs, 1}, {theirp, 1}};
    lmdm_policy_device_t dev = {(data[0] & 2) ? LMDM_PLATFORM_MACOS : LMDM_PLATFORM_IOS, (data[0] & 4) != 0,
                                (data[0] & 8) != 0};
    json_t *j = lmdm_policy_decide_body((data[0] & 1) ? "application/json" : "application/xml",
                                        (const char *)data + 1, size - 1, &ent, &dev);
    const char *d = j ? json_string_value(json_object_get(j, "decision")) : NULL;
    if (!d) __builtin_trap();
    if (strcmp(d, "block") == 0 && !json_string_value(json_object_get(j, "reason"))) __builtin_trap();
    json_decref(j);
    return 0;
}
