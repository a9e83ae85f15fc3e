/* Error names, clocks and aborting allocators shared by every module. */
#include "lmdm/common.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *lmdm_strerror(int err)
{
    switch (err) {
    case LMDM_OK: return "ok";
    case LMDM_ERR_NOMEM: return "out of memory or over a size limit";
    case LMDM_ERR_INVALID: return "invalid input";
    case LMDM_ERR_IO: return "input/output error";
    case LMDM_ERR_NOT_FOUND: return "not found";
    case LMDM_ERR_TOO_LARGE: return "too large";
    case LMDM_ERR_DB: return "database error";
    case LMDM_ERR_DB_UNAVAILABLE: return "database unavailable";
    case LMDM_ERR_BUSY: return "busy";
    case LMDM_ERR_TLS: return "TLS error";
    case LMDM_ERR_CONFIG: return "configuration error";
    case LMDM_ERR_CLOSED: return "closed";
    case LMDM_ERR_TIMEOUT: return "timed out";
    default: return "unknown error";
    }
}

uint64_t lmdm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void oom(size_t n)
{
    fprintf(stderr, "lmdm: out of memory allocating %zu bytes\n", n);
    abort();
}

void *lmdm_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *lmdm_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *lmdm_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *lmdm_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = lmdm_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

int lmdm_utf8_valid(const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n) return 0;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) return 0;
        i += len;
    }
    return 1;
}

int lmdm_uuid_v4(char out[37])
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof(r)) != 1) return LMDM_ERR_INVALID;
    r[6] = (r[6] & 0x0f) | 0x40; /* version 4 */
    r[8] = (r[8] & 0x3f) | 0x80; /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2],
             r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
    return 0;
}
