/* libFuzzer target: the device's check-in and command plists (the bodies of
 * PUT /mdm/checkin and /mdm/connect) and the command wrapper. Every input must
 * be parsed or refused with a reason; never crash or leak. */
#include <stdint.h>
#include <string.h>

#include "lmdm/mdm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lmdm_arena_t *a = lmdm_arena_new(0);
    char err[256];
    lmdm_checkin_t c;
    lmdm_connect_t m;
    if (lmdm_checkin_parse((const char *)data, size, a, &c, err, sizeof(err)) != 0 && !err[0]) __builtin_trap();
    if (lmdm_connect_parse((const char *)data, size, a, &m, err, sizeof(err)) != 0 && !err[0]) __builtin_trap();
    lmdm_buf_t out = {0};
    const char *rt;
    if (lmdm_command_wrap((const char *)data, size, "0b8b5c57-1111-2222-3333-444455556666", a, &out, &rt, err,
                          sizeof(err)) == 0 && !strstr(out.data, "<key>CommandUUID</key>"))
        __builtin_trap();
    lmdm_buf_free(&out);
    lmdm_arena_free(a);
    return 0;
}
