/* A bump allocator: one per request/stream, released with it.
 * Whatever must outlive the request is copied out before lmdm_arena_free().
 * Not thread-safe: an arena belongs to the thread that owns its request. */
#ifndef LMDM_ARENA_H
#define LMDM_ARENA_H

#include "lmdm/common.h"

typedef struct lmdm_arena lmdm_arena_t;

lmdm_arena_t *lmdm_arena_new(size_t first_block);
/** Frees every allocation; NULL is a no-op. */
void lmdm_arena_free(lmdm_arena_t *a);
/** 16-byte aligned; aborts on failure of the underlying malloc. */
void *lmdm_arena_alloc(lmdm_arena_t *a, size_t n);
char *lmdm_arena_strndup(lmdm_arena_t *a, const char *s, size_t n);
char *lmdm_arena_strdup(lmdm_arena_t *a, const char *s);
char *lmdm_arena_printf(lmdm_arena_t *a, const char *fmt, ...) LMDM_PRINTF(2, 3);

#endif
