/* Shared basics: error codes, must-check results, small helpers. */
#ifndef LMDM_COMMON_H
#define LMDM_COMMON_H

#include <stddef.h>
#include <stdint.h>

/** Results that matter are marked so the compiler warns when they are ignored. */
#define LMDM_MUSTCHECK __attribute__((warn_unused_result))
#define LMDM_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define LMDM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/** Error codes: functions return 0 on success or one of these (negative). */
enum {
    LMDM_OK = 0,
    LMDM_ERR_NOMEM = -1,       /* allocation failed or a client-sized allocation was refused */
    LMDM_ERR_INVALID = -2,     /* bad argument or malformed input */
    LMDM_ERR_IO = -3,          /* system call failed */
    LMDM_ERR_NOT_FOUND = -4,   /* file, key or row absent */
    LMDM_ERR_TOO_LARGE = -5,   /* a configured limit was exceeded */
    LMDM_ERR_DB = -6,          /* the database answered with an error */
    LMDM_ERR_DB_UNAVAILABLE = -7, /* no usable database connection right now */
    LMDM_ERR_BUSY = -8,        /* a queue is full; try again later */
    LMDM_ERR_TLS = -9,         /* TLS setup or certificate error */
    LMDM_ERR_CONFIG = -10,     /* configuration file error */
    LMDM_ERR_CLOSED = -11,     /* the peer or the object went away */
    LMDM_ERR_TIMEOUT = -12,
};

/** A static, human-readable name for an LMDM_ERR_* code. Never NULL. */
const char *lmdm_strerror(int err);

/** Monotonic clock in nanoseconds (for durations, never for wall time). */
uint64_t lmdm_now_ns(void);

/** Aborts the process on allocation failure of small internal objects. */
void *lmdm_xmalloc(size_t n);
void *lmdm_xcalloc(size_t n, size_t size);
void *lmdm_xrealloc(void *p, size_t n);
char *lmdm_xstrdup(const char *s);

/** 1 if p[0..n) is valid UTF-8 (PostgreSQL text accepts nothing else). */
int lmdm_utf8_valid(const void *p, size_t n);

/** A random (version 4) UUID, lower case. */
int lmdm_uuid_v4(char out[37]) LMDM_MUSTCHECK;

#endif
