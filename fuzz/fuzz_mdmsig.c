/* libFuzzer target: device identity parsers that take outside input, the
 * Mdm-Signature header (with the request body it signs) and the RFC 9440
 * Client-Cert header.
 *
 * Input, by its first byte:
 *   'C'   the rest is a Client-Cert header value;
 *   'R'   the rest is a DER certificate, sent as ":<base64>:" in Client-Cert;
 *   'D'   two bytes of length L (big-endian), L bytes of DER CMS, then the body:
 *         the DER is base64-encoded into the Mdm-Signature header, so
 *         mutations reach the CMS parser instead of dying in base64;
 *   other the rest is "<Mdm-Signature value>\0<body>" (no NUL: empty body).
 * Seeds in fuzz/corpus/mdmsig were made with openssl(1) from a device
 * certificate issued by the fixed CA below (a test CA whose key is not kept),
 * so valid signatures are in the corpus and mutations start from them.
 *
 * Invariants checked: no crash; on success an output certificate is returned
 * and fingerprints; on failure the output stays NULL and a reason is given. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/identity.h"

/* Well inside the fixed CA's validity (2026-11-25 to 2126-11-01). */
#define FUZZ_NOW ((time_t)1900000000)

static const char fuzz_ca_pem[] = "-----BEGIN CERTIFICATE-----\n"
                                  "MIIBlDCCATugAwIBAgIUIak0YM0vk86/WO6UOWwOwMa3EG4wCgYIKoZIzj0EAwIw\n"
                                  "FzEVMBMGA1UEAwwMbG1kbSBmdXp6IENBMCAXDTI2MTEyNTIyMTYwN1oYDzIxMjYx\n"
                                  "MTAxMjIxNjA3WjAXMRUwEwYDVQQDDAxsbWRtIGZ1enogQ0EwWTATBgcqhkjOPQIB\n"
                                  "BggqhkjOPQMBBwNCAAQzo6h9IEnC3ThXez6sy1HFS0+dojnwpBIPT7YAeMmm+Faj\n"
                                  "rIifZ6wasXizeAmV0Db391fKkIoiaJynw2M4YV8co2MwYTAdBgNVHQ4EFgQUvWUQ\n"
                                  "KzOGgMb08RYwcyBISgxlbCgwHwYDVR0jBBgwFoAUvWUQKzOGgMb08RYwcyBISgxl\n"
                                  "bCgwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAYYwCgYIKoZIzj0EAwID\n"
                                  "RwAwRAIgDe07lGVbXMpPSrfHIYKDBX+fyBcR5UoUDN3UmW+Lo9sCIAjq1N68MHQw\n"
                                  "nAgEi96DcOSi1VOHsawyuQkr2FagVa/Y\n"
                                  "-----END CERTIFICATE-----\n";

static lmdm_trust_t *trust;
static lmdm_verify_cache_t *vcache; /* the broker's path: fast decoding with the full one behind it */

static void setup(void)
{
    char err[256];
    BIO *b = BIO_new_mem_buf(fuzz_ca_pem, -1);
    X509 *ca = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!ca) abort();
    trust = lmdm_trust_new(ca, NULL, err, sizeof(err));
    X509_free(ca); /* the store holds its own reference */
    if (!trust) abort();
    vcache = lmdm_verify_cache_new();
}

static void client_cert(const char *header)
{
    char fp[LMDM_FINGERPRINT_LEN + 1];
    X509 *x = (X509 *)&fp; /* must be reset by the parser */
    if (lmdm_identity_parse_client_cert(header, &x) == 0) {
        if (!x) abort();
        lmdm_identity_fingerprint(x, fp);
        if (strlen(fp) != LMDM_FINGERPRINT_LEN) abort();
        char reason[64] = "";
        if (lmdm_trust_verify(trust, x, NULL, FUZZ_NOW, reason, sizeof(reason)) != 0 && !reason[0]) abort();
        X509_free(x);
    } else if (x) {
        abort();
    }
}

static void mdm_signature(const char *header, const char *body, size_t blen)
{
    char fp[LMDM_FINGERPRINT_LEN + 1], fp2[LMDM_FINGERPRINT_LEN + 1] = "";
    X509 *signer = NULL, *signer2 = NULL;
    char reason[64] = "", reason2[64] = "";
    int rv = lmdm_trust_verify_mdm_signature(trust, header, body, blen, FUZZ_NOW, &signer, reason, sizeof(reason));
    if (rv == 0) {
        if (!signer) abort();
        lmdm_identity_fingerprint(signer, fp);
    } else if (signer || !reason[0]) {
        abort();
    }
    /* Differential: the cached path (fast decoding) must agree exactly:
     * same verdict, same reason, same signer. */
    int rv2 = lmdm_trust_verify_mdm_signature_cached(trust, vcache, header, body, blen, FUZZ_NOW, &signer2, reason2,
                                                     sizeof(reason2));
    if ((rv2 == 0) != (rv == 0) || (rv2 == 0) != (signer2 != NULL)) abort();
    if (rv != 0 && strcmp(reason, reason2) != 0) abort();
    if (rv == 0) {
        lmdm_identity_fingerprint(signer2, fp2);
        if (strcmp(fp, fp2) != 0) abort();
    }
    X509_free(signer);
    X509_free(signer2);
}

/* ":" base64(der) ":" (or just the base64 without colons) in a malloc'd string. */
static char *b64(const uint8_t *der, size_t len, int colons)
{
    char *out = malloc(len / 3 * 4 + 8);
    size_t o = 0;
    if (colons) out[o++] = ':';
    o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, der, (int)len);
    if (colons) out[o++] = ':';
    out[o] = '\0';
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!trust) setup();
    if (size < 1) return 0;
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    if (buf[0] == 'C') {
        client_cert(buf + 1);
    } else if (buf[0] == 'R') {
        char *h = b64(data + 1, size - 1, 1);
        client_cert(h);
        free(h);
    } else if (buf[0] == 'D') {
        size_t l = size >= 3 ? (size_t)data[1] << 8 | data[2] : 0;
        size_t avail = size >= 3 ? size - 3 : 0;
        if (l > avail) l = avail;
        char *h = b64(data + 3, l, 0);
        mdm_signature(h, buf + 3 + l, avail - l);
        free(h);
    } else {
        const char *header = buf + 1;
        size_t hlen = strlen(header);
        const char *body = header + hlen + 1 <= buf + size ? header + hlen + 1 : buf + size;
        mdm_signature(header, body, (size_t)(buf + size - body));
    }
    free(buf);
    return 0;
}
