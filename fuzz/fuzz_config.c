/* libFuzzer target: the config file parser. Errors must be reported, never crash,
 * and a failed parse must leave the defaults in place. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lmdm_config_t cfg;
    char err[512];
    lmdm_config_defaults(&cfg);
    int rv = lmdm_config_parse(&cfg, "fuzz.conf", (const char *)data, size, err, sizeof(err));
    if (rv != 0) {
        lmdm_config_t def;
        lmdm_config_defaults(&def);
        if (cfg.max_streams != def.max_streams || strcmp(cfg.log_level, def.log_level) != 0) abort();
        lmdm_config_clear(&def);
    }
    lmdm_config_clear(&cfg);
    return 0;
}
