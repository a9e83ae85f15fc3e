/* The POSIX rule of a named time zone from its TZif file (lmdm/tzfile.h). */
#include "lmdm/tzfile.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmdm/tz.h"

#define TZFILE_MAX_BYTES (1u << 20) /* the largest zone file of tzdata is about 4 KB (fat: 10 KB) */

__attribute__((format(printf, 4, 5))) static int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int lmdm_tzfile_name_ok(const char *name)
{
    if (!name || !*name || name[0] == '/' || strlen(name) > LMDM_TZ_NAME_MAX) return 0;
    const char *comp = name;
    for (const char *p = name;; p++) {
        char c = *p;
        if (c == '/' || c == '\0') {
            size_t n = (size_t)(p - comp);
            if (n == 0) return 0; /* "a//b", "a/" */
            if ((n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.')) return 0;
            if (c == '\0') return 1;
            comp = p + 1;
            continue;
        }
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                 c == '-' || c == '+';
        if (!ok) return 0;
    }
}

/* The whole file into *out (malloc'd, *n bytes); 0 or an LMDM_ERR_*. */
static int slurp(const char *path, char **out, size_t *n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT || errno == ENOTDIR ? LMDM_ERR_NOT_FOUND : LMDM_ERR_IO;
    struct stat st;
    int rc = 0;
    char *buf = NULL;
    if (fstat(fd, &st) != 0) {
        rc = LMDM_ERR_IO;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = LMDM_ERR_NOT_FOUND; /* a directory such as "Europe" is no zone */
        goto out;
    }
    if (st.st_size > (off_t)TZFILE_MAX_BYTES) {
        rc = LMDM_ERR_TOO_LARGE;
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = LMDM_ERR_NOMEM;
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    *out = buf;
    *n = got;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

/* The footer of a TZif v2+ file: the text between its last two newlines. */
static int footer(const char *buf, size_t n, const char **rule, size_t *rlen)
{
    if (n < 2 || buf[n - 1] != '\n') return -1;
    size_t i = n - 1;
    while (i > 0 && buf[i - 1] != '\n')
        i--;
    if (i == 0) return -1;
    for (size_t j = i; j < n - 1; j++)
        if ((unsigned char)buf[j] < 0x20 || (unsigned char)buf[j] > 0x7e) return -1;
    *rule = buf + i;
    *rlen = n - 1 - i;
    return 0;
}

static int rule_from(const char *name, const char *buf, size_t n, char *posix, size_t len, char *err,
                     size_t errlen)
{
    if (n < 44 || memcmp(buf, "TZif", 4) != 0)
        return errf(err, errlen, LMDM_ERR_INVALID, "time zone '%s': not a TZif file", name);
    if (buf[4] == '\0')
        return errf(err, errlen, LMDM_ERR_INVALID, "time zone '%s': no POSIX rule (TZif v1)", name);
    if (buf[4] < '2' || buf[4] > '9')
        return errf(err, errlen, LMDM_ERR_INVALID, "time zone '%s': not a TZif file", name);
    const char *rule;
    size_t rlen;
    if (footer(buf, n, &rule, &rlen) != 0)
        return errf(err, errlen, LMDM_ERR_INVALID, "time zone '%s': not a TZif file (no rule at its end)",
                    name);
    if (rlen == 0)
        return errf(err, errlen, LMDM_ERR_INVALID, "time zone '%s': no POSIX rule (empty footer)", name);
    if (rlen >= len)
        return errf(err, errlen, LMDM_ERR_TOO_LARGE, "time zone '%s': rule longer than the buffer", name);
    memcpy(posix, rule, rlen);
    posix[rlen] = '\0';
    lmdm_tz_t tz;
    char why[96];
    if (lmdm_tz_parse(posix, &tz, why, sizeof(why)) != 0) {
        posix[0] = '\0';
        return errf(err, errlen, LMDM_ERR_INVALID, "time zone '%s': unreadable rule: %s", name, why);
    }
    return 0;
}

int lmdm_tzfile_rule_in(const char *dir, const char *name, char *posix, size_t len, char *err, size_t errlen)
{
    if (posix && len) posix[0] = '\0';
    if (err && errlen) err[0] = '\0';
    if (!posix || len == 0) return errf(err, errlen, LMDM_ERR_INVALID, "no room for the rule");
    if (!lmdm_tzfile_name_ok(name))
        return errf(err, errlen, LMDM_ERR_INVALID, "unknown time zone '%.64s'", name ? name : "");
    char path[4096];
    int w = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (w < 0 || (size_t)w >= sizeof(path))
        return errf(err, errlen, LMDM_ERR_INVALID, "time zone directory too long: %s", dir);
    char *buf = NULL;
    size_t n = 0;
    int rc = slurp(path, &buf, &n);
    if (rc == LMDM_ERR_NOT_FOUND && (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0)) {
        /* The default zone works on a machine without the tz database. */
        snprintf(posix, len, "UTC0");
        return 0;
    }
    if (rc == LMDM_ERR_NOT_FOUND) return errf(err, errlen, rc, "unknown time zone '%s'", name);
    if (rc != 0) return errf(err, errlen, rc, "time zone '%s': %s", name, lmdm_strerror(rc));
    rc = rule_from(name, buf, n, posix, len, err, errlen);
    free(buf);
    return rc;
}

int lmdm_tzfile_rule(const char *name, char *posix, size_t len, char *err, size_t errlen)
{
    return lmdm_tzfile_rule_in(LMDM_TZFILE_DIR, name, posix, len, err, errlen);
}

/* Zones already found: name and parsed rule. */
static struct {
    char name[LMDM_TZ_NAME_MAX + 1];
    lmdm_tz_t tz;
} zones[LMDM_TZ_CACHE];
static size_t nzones;
static pthread_mutex_t zones_mu = PTHREAD_MUTEX_INITIALIZER;

int lmdm_tzfile_zone(const char *name, lmdm_tz_t *out, char *err, size_t errlen)
{
    pthread_mutex_lock(&zones_mu);
    for (size_t i = 0; name && i < nzones; i++)
        if (strcmp(zones[i].name, name) == 0) {
            *out = zones[i].tz;
            pthread_mutex_unlock(&zones_mu);
            return 0;
        }
    pthread_mutex_unlock(&zones_mu);
    char posix[128];
    int rc = lmdm_tzfile_rule(name, posix, sizeof posix, err, errlen);
    if (rc != 0) return rc;
    if (lmdm_tz_parse(posix, out, err, errlen) != 0) return LMDM_ERR_INVALID; /* checked by the rule already */
    pthread_mutex_lock(&zones_mu);
    if (nzones < LMDM_TZ_CACHE) {
        snprintf(zones[nzones].name, sizeof zones[nzones].name, "%s", name);
        zones[nzones++].tz = *out;
    }
    pthread_mutex_unlock(&zones_mu);
    return 0;
}
