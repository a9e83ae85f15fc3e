/* Bump allocator in a chain of blocks; large requests get a block of their own. */
#include "lmdm/arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct block {
    struct block *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
} block_t;

struct lmdm_arena {
    block_t *head;
    size_t next_size;
};

static block_t *block_new(size_t size)
{
    block_t *b = lmdm_xmalloc(sizeof(*b) + size);
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

lmdm_arena_t *lmdm_arena_new(size_t first_block)
{
    lmdm_arena_t *a = lmdm_xmalloc(sizeof(*a));
    if (first_block < 256) first_block = 256;
    a->head = block_new(first_block);
    a->next_size = first_block * 2;
    return a;
}

void lmdm_arena_free(lmdm_arena_t *a)
{
    if (!a) return;
    block_t *b = a->head;
    while (b) {
        block_t *n = b->next;
        free(b);
        b = n;
    }
    free(a);
}

void *lmdm_arena_alloc(lmdm_arena_t *a, size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n) abort(); /* overflow: callers bound client-sized requests first */
    block_t *b = a->head;
    if (b->size - b->used < need) {
        if (need > a->next_size / 2) {
            /* Large allocation: its own block, linked behind the current one so the
             * current block's free space stays usable. */
            block_t *big = block_new(need);
            big->used = need;
            big->next = b->next;
            b->next = big;
            return big->data;
        }
        b = block_new(a->next_size);
        if (a->next_size < 64 * 1024) a->next_size *= 2;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    return p;
}

char *lmdm_arena_strndup(lmdm_arena_t *a, const char *s, size_t n)
{
    char *p = lmdm_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *lmdm_arena_strdup(lmdm_arena_t *a, const char *s)
{
    return lmdm_arena_strndup(a, s, strlen(s));
}

char *lmdm_arena_printf(lmdm_arena_t *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    char *p = lmdm_arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}
