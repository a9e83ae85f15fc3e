/* libFuzzer target: what tenants send and what tenants get back. The first
 * byte picks the body's media type (plist or JSON) for the tenant command
 * parser; the same bytes go through the tenant view of a device answer. Every
 * input is parsed or refused with a code and a reason; a parsed command always
 * carries the broker's CommandUUID, never crashes or leaks. */
#include <stdint.h>
#include <string.h>

#include "lmdm/tenant_command.h"
#include "lmdm/tenant_result.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const char *const types[] = {"application/json", "application/x-apple-aspen-mdm", "application/xml",
                                        "text/plain"};
    const char *ct = types[data[0] & 3];
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    lmdm_arena_t *a = lmdm_arena_new(0);
    char err[256] = "";
    lmdm_tenant_command_t cmd;
    const char *uuid = "0B8B5C57-1111-2222-3333-444455556666";
    if (lmdm_tenant_command_parse(ct, body, len, uuid, (data[0] & 4) ? "lmdm.t1." : NULL, a, &cmd, err, sizeof(err)) == 0) {
        if (!cmd.payload || !strstr(cmd.payload, uuid) || !cmd.request_type) __builtin_trap();
    } else if (!cmd.error_code || !err[0]) {
        __builtin_trap();
    }
    lmdm_buf_t out = {0};
    if (lmdm_tenant_result_view("ManagedApplicationList", body, len, "tenant-uuid", &(lmdm_tenant_owned_t){"a\nb", "p", "lmdm.t1."}, &out) == 0 && out.len == 0) __builtin_trap();
    lmdm_buf_free(&out);
    lmdm_arena_free(a);
    return 0;
}
