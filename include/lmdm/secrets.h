/* The broker's master secret and the keys derived from it.
 *
 * One 32-byte file (`lmdm secret init`, mode 0600, readable only by the
 * broker's user) holds the master key; every other secret is derived from it
 * with libsodium's KDF (BLAKE2b), one subkey per purpose, so no two purposes
 * ever share a key:
 *   key_hash   keyed BLAKE2b of API keys, owner tokens and invitation codes
 *              (only these hashes are stored)
 *   pseudonym  keyed BLAKE2b of (tenant, device): the enrollment ids tenants see
 *   sign       Ed25519 key pair signing webhooks (public key at GET /v1/keys)
 *   ledger     Ed25519 key pair signing audit ledger checkpoints (lmdm/ledger.h)
 * Losing the file invalidates every API key and owner token and changes every
 * pseudonym. Nothing here does I/O except the two file functions. */
#ifndef LMDM_SECRETS_H
#define LMDM_SECRETS_H

#include <stddef.h>
#include <stdint.h>

#include "lmdm/common.h"

#define LMDM_HASH_LEN 32     /* keyed BLAKE2b digests */
#define LMDM_TOKEN_LEN 32    /* random bytes behind an API key, owner token or invitation code */
#define LMDM_PSEUDONYM_LEN 27 /* "e" + 26 base32 characters (128 bits) */

typedef struct lmdm_secrets {
    unsigned char key_hash[32];
    unsigned char pseudonym[32];
    unsigned char sign_pk[32];
    unsigned char sign_sk[64];
    unsigned char ledger_pk[32];
    unsigned char ledger_sk[64];
} lmdm_secrets_t;

/** Create a new master secret at `path` (mode 0600). Never overwrites. */
int lmdm_secrets_init_file(const char *path, char *errbuf, size_t errlen) LMDM_MUSTCHECK;

/** Load the master secret and derive every key. Refuses a file that others can
 * read or that is not exactly 32 bytes. */
int lmdm_secrets_load(const char *path, lmdm_secrets_t *out, char *errbuf, size_t errlen) LMDM_MUSTCHECK;

/** Derive every key from a master secret held in memory (tests). */
void lmdm_secrets_derive(const unsigned char master[32], lmdm_secrets_t *out);

/** Wipe the keys. */
void lmdm_secrets_clear(lmdm_secrets_t *s);

/** Keyed hash of a secret token (API key, owner token, invitation code) as 64
 * lower-case hex digits plus NUL: what the database stores. */
void lmdm_secrets_token_hash(const lmdm_secrets_t *s, const char *purpose, const char *token, char out[65]);

/** A new random token: `prefix` followed by 43 base64url characters (256 bits). */
int lmdm_secrets_new_token(const char *prefix, char *out, size_t outlen) LMDM_MUSTCHECK;

/** The enrollment id tenant `tenant_id` sees for device `device_id`: "e" and
 * 26 base32 characters of a keyed hash. Different tenants get unrelated ids. */
void lmdm_secrets_pseudonym(const lmdm_secrets_t *s, int64_t tenant_id, int64_t device_id,
                            char out[LMDM_PSEUDONYM_LEN + 1]);

/** Ed25519 signature of `msg` as standard base64 (88 characters plus NUL). */
void lmdm_secrets_sign_b64(const lmdm_secrets_t *s, const void *msg, size_t len, char out[89]);

/** The public signing key as standard base64 (44 characters plus NUL). */
void lmdm_secrets_public_b64(const lmdm_secrets_t *s, char out[45]);

#endif
