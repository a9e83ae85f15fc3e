/* The broker CA: creation (`lmdm ca init`), loading, device identities as
 * PKCS#12, and CMS signatures for enrollment profiles.
 *
 * Everything here is built with OpenSSL 3 from scratch (no openssl(1) config
 * file): the extensions are added one by one so that what a certificate
 * carries is visible in this file. */
#include "lmdm/ca.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct lmdm_ca {
    X509 *cert;
    EVP_PKEY *key;
};

#define CA_MAX_DAYS 36500         /* 100 years: anything longer is a typo */
#define CN_MAX 64                 /* X.520 upper bound for commonName */
#define BACKDATE_SECONDS (5 * 60) /* tolerate devices whose clock runs a little behind */
#define P12_ITER 2048

/* Writes "what: <first OpenSSL error>" into errbuf and clears the thread's
 * OpenSSL error queue, so a stale error never surfaces in an unrelated call. */
static void ossl_fail(char *errbuf, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char reason[200] = "unknown OpenSSL error";
    if (e) ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    if (errbuf && errlen) snprintf(errbuf, errlen, "%s: %s", what, reason);
}

static void set_err(char *errbuf, size_t errlen, const char *fmt, ...) LMDM_PRINTF(3, 4);
static void set_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

/* A random positive 127-bit serial: RFC 5280 asks for at most 20 octets and
 * unpredictable serials are what keeps chosen-prefix collisions off the table. */
static int set_random_serial(X509 *x)
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1) return -1;
    raw[0] &= 0x7f; /* positive */
    raw[0] |= 0x40; /* never zero, always 16 octets */
    BIGNUM *bn = BN_bin2bn(raw, sizeof(raw), NULL);
    if (!bn) return -1;
    ASN1_INTEGER *serial = BN_to_ASN1_INTEGER(bn, NULL);
    BN_free(bn);
    if (!serial) return -1;
    int ok = X509_set_serialNumber(x, serial);
    ASN1_INTEGER_free(serial);
    return ok == 1 ? 0 : -1;
}

static int add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (!ext) return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

/* Builds and signs a certificate for `subject_key`. With issuer == NULL the
 * certificate is self-signed (the CA); otherwise it is a device identity
 * signed by issuer/issuer_key. */
static X509 *build_cert(const char *cn, EVP_PKEY *subject_key, X509 *issuer, EVP_PKEY *issuer_key, int days)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    if (!x || !name) goto fail;
    if (X509_set_version(x, X509_VERSION_3) != 1 || set_random_serial(x) != 0) goto fail;
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1)
        goto fail;
    if (X509_set_subject_name(x, name) != 1) goto fail;
    if (X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) != 1) goto fail;
    if (!X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_SECONDS)) goto fail;
    if (!X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL)) goto fail;
    if (X509_set_pubkey(x, subject_key) != 1) goto fail;

    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    if (issuer) {
        /* A device identity: TLS client auth and CMS signing (Mdm-Signature);
         * keyEncipherment because Apple's own SCEP identities carry it and
         * some OS versions look for it on RSA identities. */
        if (add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
            add_ext(x, &v3, NID_key_usage, "critical,digitalSignature,keyEncipherment") != 0 ||
            add_ext(x, &v3, NID_ext_key_usage, "clientAuth") != 0)
            goto fail;
    } else {
        /* pathlen:0: this CA issues device certificates only, never sub-CAs. */
        if (add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") != 0 ||
            add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") != 0)
            goto fail;
    }
    /* The subject key identifier must exist before the authority key
     * identifier of a self-signed certificate can refer to it. */
    if (add_ext(x, &v3, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, &v3, NID_authority_key_identifier, "keyid:always") != 0)
        goto fail;
    if (X509_sign(x, issuer_key, EVP_sha256()) <= 0) goto fail;
    X509_NAME_free(name);
    return x;
fail:
    X509_NAME_free(name);
    X509_free(x);
    return NULL;
}

/* Creates `path` exclusively with `mode` and writes `data` to it. On any
 * failure the file is removed again. */
static int write_new_file(const char *path, mode_t mode, const char *data, size_t len, char *errbuf,
                          size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        int e = errno;
        if (e == EEXIST) {
            set_err(errbuf, errlen, "%s already exists; refusing to overwrite it", path);
            return LMDM_ERR_INVALID;
        }
        set_err(errbuf, errlen, "cannot create %s: %s", path, strerror(e));
        return LMDM_ERR_IO;
    }
    /* The umask may only have removed bits; make the mode exactly what we mean. */
    int rv = fchmod(fd, mode) == 0 ? 0 : LMDM_ERR_IO;
    for (size_t off = 0; rv == 0 && off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            rv = LMDM_ERR_IO;
        else
            off += (size_t)n;
    }
    if (rv == 0 && fsync(fd) != 0) rv = LMDM_ERR_IO;
    if (close(fd) != 0 && rv == 0) rv = LMDM_ERR_IO;
    if (rv != 0) {
        set_err(errbuf, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(path);
    }
    return rv;
}

/* PEM of a key or certificate into a malloc'd, NUL-terminated string. */
static char *to_pem(EVP_PKEY *key, X509 *cert, size_t *len)
{
    BIO *mem = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (!mem) return NULL;
    int ok =
        key ? PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL) : PEM_write_bio_X509(mem, cert);
    if (ok == 1) {
        char *p;
        long n = BIO_get_mem_data(mem, &p);
        if (n > 0) {
            out = lmdm_xmalloc((size_t)n + 1);
            memcpy(out, p, (size_t)n);
            out[n] = '\0';
            *len = (size_t)n;
        }
    }
    BIO_free(mem);
    return out;
}

static int valid_cn(const char *cn)
{
    size_t n = cn ? strlen(cn) : 0;
    if (n == 0 || n > CN_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)cn[i] < 0x20 || cn[i] == 0x7f) return 0;
    return 1;
}

int lmdm_ca_init_files(const char *cert_path, const char *key_path, const char *name, int days, char *errbuf,
                       size_t errlen)
{
    if (!cert_path || !*cert_path || !key_path || !*key_path) {
        set_err(errbuf, errlen, "both a certificate and a key path are needed");
        return LMDM_ERR_INVALID;
    }
    if (strcmp(cert_path, key_path) == 0) {
        set_err(errbuf, errlen, "certificate and key must be different files (%s)", cert_path);
        return LMDM_ERR_INVALID;
    }
    if (!valid_cn(name)) {
        set_err(errbuf, errlen, "CA name must be 1 to 64 printable characters");
        return LMDM_ERR_INVALID;
    }
    if (days < 1 || days > CA_MAX_DAYS) {
        set_err(errbuf, errlen, "CA validity must be 1 to 36500 days");
        return LMDM_ERR_INVALID;
    }
    /* Say early which file is in the way, before spending time on keys. */
    struct stat st;
    if (lstat(key_path, &st) == 0 || lstat(cert_path, &st) == 0) {
        set_err(errbuf, errlen, "%s already exists; refusing to overwrite it",
                lstat(key_path, &st) == 0 ? key_path : cert_path);
        return LMDM_ERR_INVALID;
    }

    int rv = LMDM_ERR_TLS;
    X509 *cert = NULL;
    char *key_pem = NULL, *cert_pem = NULL;
    size_t key_len = 0, cert_len = 0;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!key) {
        ossl_fail(errbuf, errlen, "generating the CA key");
        goto out;
    }
    cert = build_cert(name, key, NULL, key, days);
    if (!cert) {
        ossl_fail(errbuf, errlen, "building the CA certificate");
        goto out;
    }
    key_pem = to_pem(key, NULL, &key_len);
    cert_pem = to_pem(NULL, cert, &cert_len);
    if (!key_pem || !cert_pem) {
        ossl_fail(errbuf, errlen, "encoding the CA as PEM");
        goto out;
    }
    rv = write_new_file(key_path, 0600, key_pem, key_len, errbuf, errlen);
    if (rv != 0) goto out;
    rv = write_new_file(cert_path, 0644, cert_pem, cert_len, errbuf, errlen);
    if (rv != 0) unlink(key_path); /* a key without its certificate is useless and secret */
out:
    if (key_pem) OPENSSL_cleanse(key_pem, key_len);
    free(key_pem);
    free(cert_pem);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rv;
}

/* Passphrase callback that refuses: an encrypted key would otherwise make
 * OpenSSL prompt on the terminal of a daemon. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

lmdm_ca_t *lmdm_ca_load(const char *cert_path, const char *key_path, char *errbuf, size_t errlen)
{
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    FILE *kf = NULL;
    BIO *cb = NULL;
    if (!cert_path || !*cert_path || !key_path || !*key_path) {
        set_err(errbuf, errlen, "ca_cert and ca_key must both be set");
        return NULL;
    }
    /* Check the mode on the descriptor we read from, not on the path. */
    int fd = open(key_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(errbuf, errlen, "cannot open CA key %s: %s", key_path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(errbuf, errlen, "CA key %s is not a regular file", key_path);
        close(fd);
        return NULL;
    }
    if (st.st_mode & 077) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen,
                     "CA key %s has mode %04o: it must be readable only by its owner (chmod 600 %s)",
                     key_path, (unsigned)(st.st_mode & 07777), key_path);
        close(fd);
        return NULL;
    }
    kf = fdopen(fd, "r");
    if (!kf) {
        close(fd);
        set_err(errbuf, errlen, "cannot read CA key %s: %s", key_path, strerror(errno));
        return NULL;
    }
    key = PEM_read_PrivateKey(kf, NULL, no_passphrase, NULL);
    if (!key) {
        char what[300];
        snprintf(what, sizeof(what), "reading CA key %s (unencrypted PEM expected)", key_path);
        ossl_fail(errbuf, errlen, what);
        goto fail;
    }
    cb = BIO_new_file(cert_path, "r");
    cert = cb ? PEM_read_bio_X509(cb, NULL, no_passphrase, NULL) : NULL;
    if (!cert) {
        char what[300];
        snprintf(what, sizeof(what), "reading CA certificate %s", cert_path);
        ossl_fail(errbuf, errlen, what);
        goto fail;
    }
    /* X509_check_ca also fills the certificate's extension cache now, while
     * one thread owns it, rather than lazily on the workers. */
    if (X509_check_ca(cert) != 1) {
        set_err(errbuf, errlen,
                "%s is not a CA certificate (basicConstraints CA:TRUE and keyCertSign needed)", cert_path);
        goto fail;
    }
    if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        set_err(errbuf, errlen, "CA key %s does not belong to the certificate %s", key_path, cert_path);
        goto fail;
    }
    fclose(kf);
    BIO_free(cb);
    lmdm_ca_t *ca = lmdm_xcalloc(1, sizeof(*ca));
    ca->cert = cert;
    ca->key = key;
    return ca;
fail:
    if (kf) fclose(kf);
    BIO_free(cb);
    X509_free(cert);
    EVP_PKEY_free(key);
    return NULL;
}

void lmdm_ca_free(lmdm_ca_t *ca)
{
    if (!ca) return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca);
}

X509 *lmdm_ca_cert(const lmdm_ca_t *ca)
{
    return ca ? ca->cert : NULL;
}

int lmdm_ca_issue_p12_format(const lmdm_ca_t *ca, const char *cn, const char *password, int days,
                             lmdm_p12_format_t format, unsigned char **der, size_t *der_len, char *errbuf,
                             size_t errlen)
{
    if (!ca || !der || !der_len || !password || !*password || !valid_cn(cn) || days < 1 ||
        days > CA_MAX_DAYS || (format != LMDM_P12_MODERN && format != LMDM_P12_APPLE_COMPAT)) {
        set_err(errbuf, errlen, "issuing a device identity: invalid argument");
        return LMDM_ERR_INVALID;
    }
    *der = NULL;
    *der_len = 0;
    int rv = LMDM_ERR_TLS;
    X509 *cert = NULL;
    PKCS12 *p12 = NULL;
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (!key) {
        ossl_fail(errbuf, errlen, "generating the device key");
        goto out;
    }
    cert = build_cert(cn, key, ca->cert, ca->key, days);
    if (!cert) {
        ossl_fail(errbuf, errlen, "building the device certificate");
        goto out;
    }
    chain = sk_X509_new_null();
    if (!chain || !sk_X509_push(chain, ca->cert)) {
        ossl_fail(errbuf, errlen, "building the certificate chain");
        goto out;
    }
    int nid = format == LMDM_P12_MODERN ? NID_aes_256_cbc : NID_pbe_WithSHA1And3_Key_TripleDES_CBC;
    /* mac_iter -1: no MAC here, so that the digest is chosen explicitly below
     * rather than left to the library's default. */
    p12 = PKCS12_create(password, cn, key, cert, chain, nid, nid, P12_ITER, -1, 0);
    if (!p12 || PKCS12_set_mac(p12, password, -1, NULL, 0, P12_ITER,
                               format == LMDM_P12_MODERN ? EVP_sha256() : EVP_sha1()) != 1) {
        ossl_fail(errbuf, errlen, "packing the PKCS#12");
        goto out;
    }
    int n = i2d_PKCS12(p12, NULL);
    if (n <= 0) {
        ossl_fail(errbuf, errlen, "encoding the PKCS#12");
        goto out;
    }
    unsigned char *buf = lmdm_xmalloc((size_t)n), *p = buf;
    if (i2d_PKCS12(p12, &p) != n) {
        free(buf);
        ossl_fail(errbuf, errlen, "encoding the PKCS#12");
        goto out;
    }
    *der = buf;
    *der_len = (size_t)n;
    rv = 0;
out:
    sk_X509_free(chain); /* the CA certificate stays owned by ca */
    PKCS12_free(p12);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rv;
}

int lmdm_ca_issue_p12(const lmdm_ca_t *ca, const char *cn, const char *password, int days,
                      unsigned char **der, size_t *der_len, char *errbuf, size_t errlen)
{
    return lmdm_ca_issue_p12_format(ca, cn, password, days, LMDM_P12_MODERN, der, der_len, errbuf, errlen);
}

int lmdm_ca_sign_attached(const lmdm_ca_t *ca, const unsigned char *data, size_t len, unsigned char **der,
                          size_t *der_len)
{
    if (!ca || !der || !der_len || (!data && len) || len > INT_MAX) return LMDM_ERR_INVALID;
    *der = NULL;
    *der_len = 0;
    int rv = LMDM_ERR_TLS;
    BIO *in = BIO_new_mem_buf(len ? (const void *)data : "", (int)len);
    /* CMS_BINARY: the profile is signed byte for byte, no MIME canonical
     * line endings. Without CMS_DETACHED the content is carried inside. */
    CMS_ContentInfo *cms = in ? CMS_sign(ca->cert, ca->key, NULL, in, CMS_BINARY) : NULL;
    int n = cms ? i2d_CMS_ContentInfo(cms, NULL) : -1;
    if (n > 0) {
        unsigned char *buf = lmdm_xmalloc((size_t)n), *p = buf;
        if (i2d_CMS_ContentInfo(cms, &p) == n) {
            *der = buf;
            *der_len = (size_t)n;
            rv = 0;
        } else {
            free(buf);
        }
    }
    if (rv != 0) ERR_clear_error();
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return rv;
}
