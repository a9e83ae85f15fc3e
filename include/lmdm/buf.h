/* A growable byte buffer (heap), NUL-terminated after every append. */
#ifndef LMDM_BUF_H
#define LMDM_BUF_H

#include "lmdm/common.h"

typedef struct lmdm_buf {
    char *data; /* NULL until the first append */
    size_t len, cap;
} lmdm_buf_t;

void lmdm_buf_append(lmdm_buf_t *b, const void *p, size_t n);
void lmdm_buf_puts(lmdm_buf_t *b, const char *s);
void lmdm_buf_printf(lmdm_buf_t *b, const char *fmt, ...) LMDM_PRINTF(2, 3);
/** Frees the storage and resets to empty. */
void lmdm_buf_free(lmdm_buf_t *b);

#endif
