/* A tiny assert harness for C tests.
 *
 *   static void test_x(void) { CHECK(1 + 1 == 2); CHECK_INT_EQ(f(), 3); }
 *   int main(void) { RUN(test_x); return harness_finish(); }
 *
 * A failed CHECK prints file:line and the expression, marks the test failed and
 * continues; harness_finish() returns nonzero if anything failed. */
#ifndef LMDM_TEST_HARNESS_H
#define LMDM_TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

extern int harness_failures;
extern int harness_checks;
extern const char *harness_current;

void harness_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int harness_finish(void);
void harness_run(const char *name, void (*fn)(void));
/** A file of the vendored test data ($LMDM_VECTORS/rel, else tests/data/vectors/rel), NUL-terminated
 * (malloc'd; its length in *len), or NULL after a failed check. */
char *harness_read_vector(const char *rel, size_t *len);

#define RUN(fn) harness_run(#fn, fn)

#define CHECK(cond)                                                                 \
    do {                                                                            \
        harness_checks++;                                                           \
        if (!(cond)) harness_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);          \
    } while (0)

#define CHECK_INT_EQ(a, b)                                                          \
    do {                                                                            \
        long long _a = (long long)(a), _b = (long long)(b);                         \
        harness_checks++;                                                           \
        if (_a != _b)                                                               \
            harness_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, _a, _b); \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                          \
    do {                                                                            \
        const char *_a = (a), *_b = (b);                                            \
        harness_checks++;                                                           \
        if (!_a || !_b || strcmp(_a, _b) != 0)                                      \
            harness_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,  \
                         _a ? _a : "(null)", _b ? _b : "(null)");                   \
    } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                             \
    do {                                                                            \
        const char *_h = (hay), *_n = (needle);                                     \
        harness_checks++;                                                           \
        if (!_h || !strstr(_h, _n))                                                 \
            harness_fail(__FILE__, __LINE__, "\"%s\" contains \"%s\"",              \
                         _h ? _h : "(null)", _n);                                   \
    } while (0)

#endif
