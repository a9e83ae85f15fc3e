/* Levelled logging to stderr, as plain text or JSON lines.
 *
 * Thread rules: safe from any thread; each record is one write(2).
 * The macros do not evaluate their arguments when the level is disabled.
 * Never log a secret, a token, a key or a full device identifier. */
#ifndef LMDM_LOG_H
#define LMDM_LOG_H

#include "lmdm/common.h"

typedef enum { LMDM_LOG_DEBUG = 0, LMDM_LOG_INFO, LMDM_LOG_WARN, LMDM_LOG_ERROR, LMDM_LOG_OFF } lmdm_log_level_t;
typedef enum { LMDM_LOG_TEXT = 0, LMDM_LOG_JSON } lmdm_log_format_t;

/** Current minimum level; read by the macros. */
extern lmdm_log_level_t lmdm_log_min_level;

/** Set level and format (call before starting threads). */
void lmdm_log_setup(lmdm_log_level_t level, lmdm_log_format_t format);
/** Parse "debug|info|warn|error|off"; returns 0 or LMDM_ERR_INVALID. */
int lmdm_log_level_parse(const char *s, lmdm_log_level_t *out) LMDM_MUSTCHECK;
/** Parse "text|json". */
int lmdm_log_format_parse(const char *s, lmdm_log_format_t *out) LMDM_MUSTCHECK;

/** Write one record. `scope` is a short prefix such as "conn=12" (may be NULL). */
void lmdm_log_write(lmdm_log_level_t level, const char *scope, const char *fmt, ...) LMDM_PRINTF(3, 4);

/** One access-log line per request (fields become JSON keys in JSON mode). */
void lmdm_log_access(uint64_t conn_id, int32_t stream_id, const char *method, const char *path,
                     const char *route, int status, uint64_t duration_us, size_t bytes_out,
                     const char *proto);

#define LMDM_LOG_AT(lvl, scope, ...)                                                    \
    do {                                                                                \
        if ((lvl) >= lmdm_log_min_level) lmdm_log_write((lvl), (scope), __VA_ARGS__);   \
    } while (0)
#define lmdm_debug(...) LMDM_LOG_AT(LMDM_LOG_DEBUG, NULL, __VA_ARGS__)
#define lmdm_info(...) LMDM_LOG_AT(LMDM_LOG_INFO, NULL, __VA_ARGS__)
#define lmdm_warn(...) LMDM_LOG_AT(LMDM_LOG_WARN, NULL, __VA_ARGS__)
#define lmdm_error(...) LMDM_LOG_AT(LMDM_LOG_ERROR, NULL, __VA_ARGS__)

#endif
