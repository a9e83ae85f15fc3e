/* Levelled logging. Each record is formatted into a stack buffer and written
 * with one write(2) so lines from several threads never interleave. */
#include "lmdm/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

lmdm_log_level_t lmdm_log_min_level = LMDM_LOG_INFO;
static lmdm_log_format_t log_format = LMDM_LOG_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void lmdm_log_setup(lmdm_log_level_t level, lmdm_log_format_t format)
{
    lmdm_log_min_level = level;
    log_format = format;
}

int lmdm_log_level_parse(const char *s, lmdm_log_level_t *out)
{
    for (int i = 0; i <= LMDM_LOG_OFF; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (lmdm_log_level_t)i;
            return 0;
        }
    }
    return LMDM_ERR_INVALID;
}

int lmdm_log_format_parse(const char *s, lmdm_log_format_t *out)
{
    if (strcmp(s, "text") == 0) *out = LMDM_LOG_TEXT;
    else if (strcmp(s, "json") == 0) *out = LMDM_LOG_JSON;
    else return LMDM_ERR_INVALID;
    return 0;
}

typedef struct {
    char buf[4096];
    size_t len;
} line_t;

static void put(line_t *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 2 - l->len; /* keep room for "\n" */
    if (n > room) n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(line_t *l, const char *s) { put(l, s, strlen(s)); }

/* JSON string body with escapes; control characters become \u00XX. */
static void put_json(line_t *l, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(l, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(l, esc, 6);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
}

/* Text mode: control characters (a forged newline in a logged path) become '?'. */
static void put_text(line_t *l, const char *s)
{
    for (; *s; s++) {
        char c = (unsigned char)*s < 0x20 ? '?' : *s;
        put(l, &c, 1);
    }
}

static void put_time(line_t *l)
{
    struct timespec ts;
    struct tm tm;
    char tb[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(tb, sizeof(tb), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(tb + n, sizeof(tb) - n, ".%03ldZ", ts.tv_nsec / 1000000);
    puts_(l, tb);
}

static void flush_line(line_t *l)
{
    l->buf[l->len++] = '\n';
    ssize_t off = 0;
    while ((size_t)off < l->len) {
        ssize_t w = write(STDERR_FILENO, l->buf + off, l->len - (size_t)off);
        if (w <= 0) return;
        off += w;
    }
}

void lmdm_log_write(lmdm_log_level_t level, const char *scope, const char *fmt, ...)
{
    if (level < lmdm_log_min_level || level >= LMDM_LOG_OFF) return;
    char msg[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    line_t l = {.len = 0};
    if (log_format == LMDM_LOG_JSON) {
        puts_(&l, "{\"ts\":\"");
        put_time(&l);
        puts_(&l, "\",\"level\":\"");
        puts_(&l, level_names[level]);
        if (scope) {
            puts_(&l, "\",\"scope\":\"");
            put_json(&l, scope);
        }
        puts_(&l, "\",\"msg\":\"");
        put_json(&l, msg);
        puts_(&l, "\"}");
    } else {
        put_time(&l);
        puts_(&l, " ");
        puts_(&l, level_names[level]);
        puts_(&l, " ");
        if (scope) {
            put_text(&l, scope);
            puts_(&l, " ");
        }
        put_text(&l, msg);
    }
    flush_line(&l);
}

void lmdm_log_access(uint64_t conn_id, int32_t stream_id, const char *method, const char *path,
                     const char *route, int status, uint64_t duration_us, size_t bytes_out,
                     const char *proto)
{
    if (LMDM_LOG_INFO < lmdm_log_min_level) return;
    line_t l = {.len = 0};
    char num[160];
    if (log_format == LMDM_LOG_JSON) {
        puts_(&l, "{\"ts\":\"");
        put_time(&l);
        puts_(&l, "\",\"level\":\"info\",\"msg\":\"request\",\"method\":\"");
        put_json(&l, method);
        puts_(&l, "\",\"path\":\"");
        put_json(&l, path);
        puts_(&l, "\",\"route\":\"");
        put_json(&l, route);
        snprintf(num, sizeof(num),
                 "\",\"status\":%d,\"duration_us\":%llu,\"bytes\":%zu,\"conn\":%llu,\"stream\":%d,"
                 "\"proto\":\"",
                 status, (unsigned long long)duration_us, bytes_out, (unsigned long long)conn_id,
                 (int)stream_id);
        puts_(&l, num);
        put_json(&l, proto);
        puts_(&l, "\"}");
    } else {
        put_time(&l);
        snprintf(num, sizeof(num), " info conn=%llu stream=%d ", (unsigned long long)conn_id,
                 (int)stream_id);
        puts_(&l, num);
        put_text(&l, method);
        puts_(&l, " ");
        put_text(&l, path);
        snprintf(num, sizeof(num), " route=%s status=%d duration_us=%llu bytes=%zu proto=", route,
                 status, (unsigned long long)duration_us, bytes_out);
        puts_(&l, num);
        put_text(&l, proto);
    }
    flush_line(&l);
}
