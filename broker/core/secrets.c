/* The master secret and its derived keys (see lmdm/secrets.h). */
#include "lmdm/secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KDF_CONTEXT "lmdm-key" /* exactly crypto_kdf_CONTEXTBYTES (8) */
enum { SUB_KEY_HASH = 1, SUB_PSEUDONYM = 2, SUB_SIGN = 3, SUB_LEDGER = 4 };

/* "<what>: <why>" into errbuf. */
static void errf(char *errbuf, size_t errlen, const char *what, const char *why)
{
    if (errbuf && errlen) snprintf(errbuf, errlen, "%s: %s", what, why);
}

int lmdm_secrets_init_file(const char *path, char *errbuf, size_t errlen)
{
    if (sodium_init() < 0) {
        errf(errbuf, errlen, "libsodium", "failed to initialise");
        return LMDM_ERR_INVALID;
    }
    unsigned char master[crypto_kdf_KEYBYTES];
    crypto_kdf_keygen(master);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        errf(errbuf, errlen, path, errno == EEXIST ? "already exists (never overwritten)" : strerror(errno));
        sodium_memzero(master, sizeof(master));
        return LMDM_ERR_IO;
    }
    ssize_t n = write(fd, master, sizeof(master));
    sodium_memzero(master, sizeof(master));
    if (n != (ssize_t)sizeof(master) || fsync(fd) != 0) {
        errf(errbuf, errlen, path, strerror(errno));
        close(fd);
        unlink(path);
        return LMDM_ERR_IO;
    }
    close(fd);
    return 0;
}

void lmdm_secrets_derive(const unsigned char master[32], lmdm_secrets_t *out)
{
    unsigned char seed[crypto_sign_SEEDBYTES];
    crypto_kdf_derive_from_key(out->key_hash, sizeof(out->key_hash), SUB_KEY_HASH, KDF_CONTEXT, master);
    crypto_kdf_derive_from_key(out->pseudonym, sizeof(out->pseudonym), SUB_PSEUDONYM, KDF_CONTEXT, master);
    crypto_kdf_derive_from_key(seed, sizeof(seed), SUB_SIGN, KDF_CONTEXT, master);
    crypto_sign_seed_keypair(out->sign_pk, out->sign_sk, seed);
    crypto_kdf_derive_from_key(seed, sizeof(seed), SUB_LEDGER, KDF_CONTEXT, master);
    crypto_sign_seed_keypair(out->ledger_pk, out->ledger_sk, seed);
    sodium_memzero(seed, sizeof(seed));
}

int lmdm_secrets_load(const char *path, lmdm_secrets_t *out, char *errbuf, size_t errlen)
{
    if (sodium_init() < 0) {
        errf(errbuf, errlen, "libsodium", "failed to initialise");
        return LMDM_ERR_INVALID;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errf(errbuf, errlen, path, errno == ENOENT ? "no such file (create it with `lmdm secret init`)" : strerror(errno));
        return LMDM_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        errf(errbuf, errlen, path, "not a regular file");
        close(fd);
        return LMDM_ERR_IO;
    }
    if (st.st_mode & 077) {
        errf(errbuf, errlen, path, "readable by others: chmod 600 it (only the broker's user may read it)");
        close(fd);
        return LMDM_ERR_CONFIG;
    }
    unsigned char master[crypto_kdf_KEYBYTES + 1];
    ssize_t n = read(fd, master, sizeof(master));
    close(fd);
    if (n != crypto_kdf_KEYBYTES) {
        errf(errbuf, errlen, path, "not a master secret (expected exactly 32 bytes)");
        sodium_memzero(master, sizeof(master));
        return LMDM_ERR_CONFIG;
    }
    lmdm_secrets_derive(master, out);
    sodium_memzero(master, sizeof(master));
    return 0;
}

void lmdm_secrets_clear(lmdm_secrets_t *s) { sodium_memzero(s, sizeof(*s)); }

void lmdm_secrets_token_hash(const lmdm_secrets_t *s, const char *purpose, const char *token, char out[65])
{
    unsigned char h[LMDM_HASH_LEN];
    crypto_generichash_state st;
    crypto_generichash_init(&st, s->key_hash, sizeof(s->key_hash), sizeof(h));
    /* The purpose and its terminating NUL separate the domains: an owner
     * token can never pass for an API key of the same bytes. */
    crypto_generichash_update(&st, (const unsigned char *)purpose, strlen(purpose) + 1);
    crypto_generichash_update(&st, (const unsigned char *)token, strlen(token));
    crypto_generichash_final(&st, h, sizeof(h));
    sodium_bin2hex(out, 65, h, sizeof(h));
}

int lmdm_secrets_new_token(const char *prefix, char *out, size_t outlen)
{
    unsigned char r[LMDM_TOKEN_LEN];
    size_t plen = strlen(prefix);
    size_t need = plen + sodium_base64_ENCODED_LEN(sizeof(r), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (sodium_init() < 0 || outlen < need) return LMDM_ERR_INVALID;
    randombytes_buf(r, sizeof(r));
    memcpy(out, prefix, plen);
    sodium_bin2base64(out + plen, outlen - plen, r, sizeof(r), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(r, sizeof(r));
    return 0;
}

void lmdm_secrets_pseudonym(const lmdm_secrets_t *s, int64_t tenant_id, int64_t device_id,
                            char out[LMDM_PSEUDONYM_LEN + 1])
{
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    unsigned char msg[16], h[16];
    for (int i = 0; i < 8; i++) {
        msg[i] = (unsigned char)((uint64_t)tenant_id >> (56 - 8 * i));
        msg[8 + i] = (unsigned char)((uint64_t)device_id >> (56 - 8 * i));
    }
    crypto_generichash(h, sizeof(h), msg, sizeof(msg), s->pseudonym, sizeof(s->pseudonym));
    out[0] = 'e';
    /* 128 bits -> 26 base32 characters (the last carries 3 bits). */
    unsigned acc = 0;
    int bits = 0, o = 1;
    for (size_t i = 0; i < sizeof(h); i++) {
        acc = (acc << 8) | h[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = b32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0) out[o++] = b32[(acc << (5 - bits)) & 31];
    out[o] = '\0';
}

void lmdm_secrets_sign_b64(const lmdm_secrets_t *s, const void *msg, size_t len, char out[89])
{
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, msg, len, s->sign_sk);
    sodium_bin2base64(out, 89, sig, sizeof(sig), sodium_base64_VARIANT_ORIGINAL);
}

void lmdm_secrets_public_b64(const lmdm_secrets_t *s, char out[45])
{
    sodium_bin2base64(out, 45, s->sign_pk, sizeof(s->sign_pk), sodium_base64_VARIANT_ORIGINAL);
}
