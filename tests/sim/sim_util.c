/* Small helpers shared by the simulator: a seedable generator, encodings,
 * files and plist conveniences. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "sim.h"

/* splitmix64: tiny, good enough for identifiers, and reproducible from a seed
 * (OpenSSL's generator is not, and keys come from the broker anyway). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng_seed = 0;

void sim_seed(uint64_t seed)
{
    rng_seed = seed;
    rng_state = seed ^ 0x6a09e667f3bcc909ULL;
}

void sim_seed_random(void)
{
    uint64_t s = 0;
    if (RAND_bytes((unsigned char *)&s, sizeof s) != 1) s = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    sim_seed(s);
}

uint64_t sim_seed_value(void)
{
    return rng_seed;
}

uint64_t sim_rand(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sim_rand_bytes(unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = sim_rand();
        for (size_t j = 0; j < 8 && i + j < n; j++)
            out[i + j] = (unsigned char)(r >> (8 * j));
    }
}

void sim_uuid(char out[37])
{
    unsigned char b[16];
    sim_rand_bytes(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

void sim_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int sim_unhex(const char *hex, unsigned char *out, size_t n)
{
    if (!hex || strlen(hex) != 2 * n) return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

char *sim_b64(const unsigned char *in, size_t n)
{
    size_t cap = 4 * ((n + 2) / 3) + 1;
    char *out = malloc(cap);
    if (!out) abort();
    int w = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    out[w] = '\0';
    return out;
}

unsigned char *sim_unb64(const char *in, size_t *n)
{
    size_t len = strlen(in);
    char *clean = malloc(len + 1);
    if (!clean) abort();
    size_t k = 0;
    for (size_t i = 0; i < len; i++)
        if (in[i] != ' ' && in[i] != '\n' && in[i] != '\r' && in[i] != '\t') clean[k++] = in[i];
    clean[k] = '\0';
    if (k % 4 != 0) {
        free(clean);
        return NULL;
    }
    unsigned char *out = malloc(k / 4 * 3 + 1);
    if (!out) abort();
    int w = k ? EVP_DecodeBlock(out, (unsigned char *)clean, (int)k) : 0;
    if (w < 0) {
        free(clean);
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    if (k >= 1 && clean[k - 1] == '=') w--;
    if (k >= 2 && clean[k - 2] == '=') w--;
    free(clean);
    *n = (size_t)w;
    return out;
}

void sim_errf(char *err, size_t len, const char *fmt, ...)
{
    if (!err || !len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

int sim_read_file(const char *path, unsigned char **data, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        sim_errf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap + 1);
    if (!buf) abort();
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            if (!buf) abort();
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        sim_errf(err, errlen, "%s: read error", path);
        return -1;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

int sim_write_file(const char *path, const void *data, size_t len, int mode, char *err, size_t errlen)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        sim_errf(err, errlen, "%s: path too long", path);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0) {
        sim_errf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    const unsigned char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            sim_errf(err, errlen, "%s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fchmod(fd, (mode_t)mode) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        sim_errf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

double sim_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *sim_plist_xml(plist_t p, size_t *len)
{
    char *xml = NULL;
    uint32_t n = 0;
    plist_to_xml(p, &xml, &n);
    if (!xml) abort();
    /* libplist allocates with malloc; hand it on as is. */
    if (len) *len = n;
    return xml;
}

plist_t sim_plist_parse(const void *data, size_t len)
{
    if (!data || len == 0 || len > UINT32_MAX) return NULL;
    plist_t p = NULL;
    const char *s = data;
    if (len >= 8 && memcmp(s, "bplist00", 8) == 0) {
        plist_from_bin(s, (uint32_t)len, &p);
        return p;
    }
    /* Only hand libplist something that starts like XML: it is lenient. */
    size_t i = 0;
    if (len >= 3 && (unsigned char)s[0] == 0xef && (unsigned char)s[1] == 0xbb && (unsigned char)s[2] == 0xbf)
        i = 3;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    if (i >= len || s[i] != '<') return NULL;
    plist_from_xml(s, (uint32_t)len, &p);
    return p;
}

char *sim_plist_str(plist_t dict, const char *key)
{
    if (!dict || plist_get_node_type(dict) != PLIST_DICT) return NULL;
    plist_t v = plist_dict_get_item(dict, key);
    if (!v || plist_get_node_type(v) != PLIST_STRING) return NULL;
    char *s = NULL;
    plist_get_string_val(v, &s);
    return s;
}

void sim_set_str(plist_t dict, const char *key, const char *val)
{
    plist_dict_set_item(dict, key, plist_new_string(val ? val : ""));
}

void sim_set_bool(plist_t dict, const char *key, bool val)
{
    plist_dict_set_item(dict, key, plist_new_bool(val ? 1 : 0));
}

void sim_set_int(plist_t dict, const char *key, int64_t val)
{
    plist_dict_set_item(dict, key, plist_new_uint((uint64_t)val));
}

void sim_set_data(plist_t dict, const char *key, const unsigned char *d, size_t n)
{
    plist_dict_set_item(dict, key, plist_new_data((const char *)d, n));
}

bool sim_in_list(const char *s, const char *const *list)
{
    if (!s || !list) return false;
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0) return true;
    return false;
}
