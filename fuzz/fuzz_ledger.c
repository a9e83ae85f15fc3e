/* libFuzzer target: `lmdm audit verify`'s input, an export an auditor
 * received from anywhere. The input is split into lines and fed to the
 * verifier; every input ends verified or failed with a reason, never a crash. */
#include <stdint.h>
#include <string.h>

#include "lmdm/ledger.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char pk[32] = {1, 2, 3};
    lmdm_ledger_verify_t *v = lmdm_ledger_verify_new(pk);
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (lmdm_ledger_verify_line(v, p, len) != 0) break;
        p += len + (nl ? 1 : 0);
    }
    lmdm_ledger_report_t r;
    if (lmdm_ledger_verify_finish(v, &r) != 0 && !r.why[0]) __builtin_trap();
    lmdm_ledger_verify_free(v);
    return 0;
}
