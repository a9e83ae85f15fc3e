/* Error names, clocks and aborting allocators shared by every module. */
#include "lmdm/common.h"

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
