/* Arena and growable buffer: alignment, large blocks, formatting. */
#include <stdint.h>

#include "harness.h"
#include "lmdm/arena.h"
#include "lmdm/buf.h"

static void test_arena(void)
{
    lmdm_arena_t *a = lmdm_arena_new(0);
    char *prev = NULL;
    for (int i = 0; i < 1000; i++) {
        char *p = lmdm_arena_alloc(a, (size_t)(i % 37) + 1);
        CHECK(((uintptr_t)p & 15) == 0);
        memset(p, 'x', (size_t)(i % 37) + 1);
        CHECK(p != prev);
        prev = p;
    }
    char *big = lmdm_arena_alloc(a, 1 << 20); /* own block */
    memset(big, 0, 1 << 20);
    char *small = lmdm_arena_strdup(a, "still works");
    CHECK_STR_EQ(small, "still works");
    CHECK_STR_EQ(lmdm_arena_strndup(a, "abcdef", 3), "abc");
    CHECK_STR_EQ(lmdm_arena_printf(a, "%s-%d", "n", 42), "n-42");
    lmdm_arena_free(a);
    lmdm_arena_free(NULL);
}

static void test_buf(void)
{
    lmdm_buf_t b = {0};
    lmdm_buf_puts(&b, "a");
    for (int i = 0; i < 1000; i++) lmdm_buf_printf(&b, "%d,", i);
    CHECK(b.len > 3000);
    CHECK(strncmp(b.data, "a0,1,2,", 7) == 0);
    CHECK(b.data[b.len] == '\0');
    CHECK_STR_CONTAINS(b.data, "999,");
    lmdm_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0);
}

int main(void)
{
    RUN(test_arena);
    RUN(test_buf);
    return harness_finish();
}
