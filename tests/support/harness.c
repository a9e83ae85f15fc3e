#include "harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int harness_failures;
int harness_checks;
const char *harness_current = "?";
static int current_failed;
static int tests_run, tests_failed;

void harness_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s (%s:%d): ", harness_current, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    harness_failures++;
    current_failed = 1;
}

void harness_run(const char *name, void (*fn)(void))
{
    harness_current = name;
    current_failed = 0;
    fn();
    tests_run++;
    if (current_failed) tests_failed++;
    fprintf(stderr, "%s %s\n", current_failed ? "not ok" : "ok", name);
}

int harness_finish(void)
{
    fprintf(stderr, "%d tests, %d failed, %d checks, %d failed checks\n", tests_run, tests_failed,
            harness_checks, harness_failures);
    return harness_failures ? 1 : 0;
}

char *harness_read_vector(const char *rel, size_t *len)
{
    const char *dir = getenv("LMDM_VECTORS");
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/data/vectors", rel);
    FILE *f = fopen(path, "rb");
    if (!f) {
        harness_fail(__FILE__, __LINE__, "cannot open %s", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc(n > 0 ? (size_t)n + 1 : 1);
    *len = n > 0 ? fread(s, 1, (size_t)n, f) : 0;
    s[*len] = '\0';
    fclose(f);
    return s;
}
