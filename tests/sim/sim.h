/* lmdm-sim: a simulated Apple device for tests and benchmarks.
 *
 * It speaks Apple's MDM wire format (XML property lists over HTTP/1.1 or
 * HTTP/2, identity by TLS client certificate or Mdm-Signature) and shares no
 * code with the broker on purpose: it has to catch the broker's mistakes, not
 * repeat them. Modules:
 *   sim_util.c     randomness (seedable), hex/base64, files, plist helpers
 *   sim_yaml.c     a reader for the regular subset of YAML in Apple's schema
 *   sim_schema.c   Apple's schema (mdm/commands, mdm/checkin) indexed by name
 *   sim_crypto.c   enrollment profile (CMS), PKCS#12, Mdm-Signature
 *   sim_device.c   one device: identifiers, identity, state, device.json
 *   sim_http.c     the HTTP layer: one curl easy-handle setup for everything
 *   sim_checkin.c  check-in messages
 *   sim_answer.c   command parsing and answers
 *   sim_fleet.c    many devices at once (curl multi), for benchmarks
 *
 * Everything here is single-threaded; nothing is shared between threads.
 * Functions that can fail return 0 (or a count) and -1 with a message in
 * err[errlen]. */
#ifndef LMDM_SIM_H
#define LMDM_SIM_H

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <plist/plist.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_ERRLEN 512

#if defined(__GNUC__)
#define SIM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SIM_PRINTF(a, b)
#endif

/* ---- sim_util.c ------------------------------------------------------- */

/** Seed the generator behind every identifier the simulator invents, so that
 * `--seed` gives the same UDIDs, serials and tokens on every run. */
void sim_seed(uint64_t seed);
/** Seed from the operating system (the default). */
void sim_seed_random(void);
/** The seed in use (to derive per-device seeds in a fleet). */
uint64_t sim_seed_value(void);
uint64_t sim_rand(void);
void sim_rand_bytes(unsigned char *out, size_t n);
/** A random UUID (version 4 bits set), upper case, 36 chars + NUL. */
void sim_uuid(char out[37]);
/** Lower-case hex of n bytes into out (2n+1 bytes). */
void sim_hex(const unsigned char *in, size_t n, char *out);
/** Decode exactly n bytes of hex; -1 on bad input. */
int sim_unhex(const char *hex, unsigned char *out, size_t n);
/** Base64 without line breaks; malloc'd. */
char *sim_b64(const unsigned char *in, size_t n);
/** Decode base64 (whitespace ignored); malloc'd, NULL on bad input. */
unsigned char *sim_unb64(const char *in, size_t *n);
void sim_errf(char *err, size_t len, const char *fmt, ...) SIM_PRINTF(3, 4);
/** Read a whole file (NUL-terminated for convenience; *len excludes it). */
int sim_read_file(const char *path, unsigned char **data, size_t *len, char *err, size_t errlen);
/** Write a whole file with the given mode (replacing it atomically). */
int sim_write_file(const char *path, const void *data, size_t len, int mode, char *err, size_t errlen);
/** Monotonic seconds. */
double sim_now(void);
/** XML form of a plist, malloc'd, NUL-terminated. */
char *sim_plist_xml(plist_t p, size_t *len);
/** Parse an XML or binary plist; NULL when the bytes are not one. */
plist_t sim_plist_parse(const void *data, size_t len);
/** String value of dict[key] (malloc'd) or NULL when absent or not a string. */
char *sim_plist_str(plist_t dict, const char *key);
/** Convenience setters on a dict (the value is copied). */
void sim_set_str(plist_t dict, const char *key, const char *val);
void sim_set_bool(plist_t dict, const char *key, bool val);
void sim_set_int(plist_t dict, const char *key, int64_t val);
void sim_set_data(plist_t dict, const char *key, const unsigned char *d, size_t n);
/** True when `s` is in the NULL-terminated list. */
bool sim_in_list(const char *s, const char *const *list);

/* ---- sim_yaml.c ------------------------------------------------------- */

typedef struct sy_node sy_node_t;
typedef struct sy_doc sy_doc_t;

/** Parse the YAML subset Apple's schema files use: block mappings, block
 * sequences (also "- key: v" items and sequences at their parent's indent),
 * plain and quoted scalars over several lines, block scalars (| |- > >-),
 * comments, and &anchor / *alias on a value. No flow collections, tags or
 * multi-document streams: they do not occur in these files, and the reader
 * refuses what it does not understand rather than guessing. */
sy_doc_t *sy_parse(const char *text, size_t len, char *err, size_t errlen);
sy_doc_t *sy_load(const char *path, char *err, size_t errlen);
void sy_free(sy_doc_t *doc);
const sy_node_t *sy_root(const sy_doc_t *doc);
/** Map lookup; NULL when n is not a map or has no such key. */
const sy_node_t *sy_get(const sy_node_t *n, const char *key);
/** Scalar text, or NULL when n is NULL or not a scalar. */
const char *sy_str(const sy_node_t *n);
const char *sy_get_str(const sy_node_t *n, const char *key);
/** Number of items of a sequence or entries of a map (0 otherwise). */
size_t sy_len(const sy_node_t *n);
/** i-th item of a sequence or value of the i-th map entry. */
const sy_node_t *sy_at(const sy_node_t *n, size_t i);
/** Key of the i-th map entry. */
const char *sy_key_at(const sy_node_t *n, size_t i);
bool sy_is_map(const sy_node_t *n);
bool sy_is_seq(const sy_node_t *n);

/* ---- sim_schema.c ----------------------------------------------------- */

typedef struct sim_schema sim_schema_t;

/** The schema directory to use, the first of these that has mdm/commands:
 * $LMDM_SCHEMA, $LMDM_SPEC, $LMDM_SRC/tests/data/apple-device-management,
 * $LMDM_SRC/../shared/apple-device-management, the path compiled in (the
 * source tree's tests/data copy). NULL if none. */
const char *sim_schema_find_dir(void);
/** Load mdm/commands/ and mdm/checkin/ of the schema directory. */
sim_schema_t *sim_schema_load(const char *dir, char *err, size_t errlen);
void sim_schema_free(sim_schema_t *s);
/** Root node of the command's YAML by RequestType, or NULL. */
const sy_node_t *sim_schema_command(const sim_schema_t *s, const char *request_type);
/** Root node of a check-in message's YAML by MessageType, or NULL. */
const sy_node_t *sim_schema_checkin(const sim_schema_t *s, const char *message_type);
size_t sim_schema_command_count(const sim_schema_t *s);
const char *sim_schema_command_name(const sim_schema_t *s, size_t i);
size_t sim_schema_checkin_count(const sim_schema_t *s);
const char *sim_schema_checkin_name(const sim_schema_t *s, size_t i);
/** The list under `payloadkeys` or `responsekeys` of a root (a sequence of
 * maps with `key`, `type`, `subkeys`...), or NULL. */
const sy_node_t *sim_schema_keys(const sy_node_t *root, const char *which);
/** supportedOS.<platform> of a payload or key node, or NULL. */
const sy_node_t *sim_schema_os(const sy_node_t *node, const char *platform);
/** Whether a payload or key exists on that platform at that OS version:
 * not `introduced: n/a`, introduced at or before os_version, not removed at
 * or before it (os_version NULL or "": only the n/a check). */
bool sim_schema_available(const sy_node_t *node, const char *platform, const char *os_version);
/** AccessRights bit a name from the schema stands for ("AllowQuerySecurity"
 * -> 1024); 0 for None / n/a / Special Case / unknown. */
long sim_access_bit(const char *name);

/* ---- sim_device.c ----------------------------------------------------- */

typedef struct sim_device {
    /* From the enrollment profile. */
    char server_url[1024];
    char checkin_url[1024]; /* "" when the profile has none: check-ins go to server_url */
    char topic[256];
    bool sign_message;
    long access_rights; /* -1 when the profile does not say (everything allowed) */
    char profile_identifier[256];
    char profile_uuid[64];
    char profile_display_name[256];
    char profile_organization[256];
    char enroll_url[1024];
    char owner_url[1024]; /* URL of the com.apple.webClip.managed payload (the owner's link); "" if none */
    int profile_trust; /* of the last profile applied: see sim_profile_unwrap (not saved) */
    /* Invented at enrollment (seedable). */
    bool user_enrollment;
    bool supervised; /* refuses supervised-only commands unless set */
    char managed_apple_id[256];
    char platform[8]; /* "iOS" or "macOS" */
    char udid[64];
    char serial[16];
    char enrollment_id[64];
    char enrollment_user_id[64];
    char push_token[65]; /* hex of 32 bytes */
    char push_magic[40];
    char user_push_token[65];
    char user_push_magic[40];
    char unlock_token[129]; /* hex of 64 bytes */
    char os_version[16];
    char build_version[16];
    char product_name[32];
    char model[32];
    char model_name[64];
    char device_name[128];
    char imei[24];
    char meid[24];
    char user_id[40];
    char user_short_name[64];
    char user_long_name[128];
    char cacert[1024]; /* TLS trust used at enrollment, reused later */
    /* Identity: PEM of the private key followed by the certificate(s). */
    char *identity_pem;
    EVP_PKEY *key;
    X509 *cert;
    /* What the device has installed through MDM (profiles, apps). */
    json_t *state;
} sim_device_t;

/** Fresh identifiers for a device of that platform ("iOS" or "macOS"). */
void sim_device_init(sim_device_t *d, const char *platform, bool user_enrollment);
void sim_device_clear(sim_device_t *d);
/** Take the enrollment profile (DER CMS or a bare plist) as the device
 * would: check the signature (and the signer against ca_files, see
 * sim_profile_unwrap; d->profile_trust tells the outcome), find the MDM
 * payload and the identity payload it names, unpack the PKCS#12. */
int sim_device_apply_profile(sim_device_t *d, const unsigned char *body, size_t len,
                             const char *const *ca_files, bool require_trust, char *err, size_t errlen);
/** Load key and certificate from d->identity_pem. */
int sim_device_load_identity(sim_device_t *d, char *err, size_t errlen);
json_t *sim_device_to_json(const sim_device_t *d);
int sim_device_from_json(sim_device_t *d, const json_t *j, char *err, size_t errlen);
/** DIR/device.json and DIR/identity.pem (mode 0600). */
int sim_device_save(const sim_device_t *d, const char *dir, char *err, size_t errlen);
int sim_device_load(sim_device_t *d, const char *dir, char *err, size_t errlen);
/** Point the device's ServerURL and CheckInURL at another origin
 * (scheme://host:port of `via`), keeping their paths: a device behind a
 * TLS-terminating proxy, or a benchmark on the plain listener. */
int sim_device_rewrite_origin(sim_device_t *d, const char *via, char *err, size_t errlen);
/** The device's identifier for a channel, as messages carry it. */
const char *sim_device_id(const sim_device_t *d);
/** URL check-ins go to (CheckInURL, or ServerURL when the profile has none). */
const char *sim_device_checkin_url(const sim_device_t *d);

/* ---- sim_crypto.c ----------------------------------------------------- */

/** Unwrap a profile: DER CMS SignedData or a bare XML plist. The signature
 * over the content must always hold; *trust says who signed: -1 unsigned,
 * 0 signed by someone ca_files do not vouch for (or no ca_files), 1 signed
 * by a certificate chaining to ca_files (NULL-terminated list of PEM
 * files). With require_trust anything but 1 is an error. *plist_out is the
 * parsed plist; *signer (when signer is non-NULL) the signing certificate or
 * NULL (caller frees). */
int sim_profile_unwrap(const unsigned char *body, size_t len, const char *const *ca_files, bool require_trust,
                       plist_t *plist_out, int *trust, X509 **signer, char *err, size_t errlen);
/** PKCS#12 (DER) -> PEM text of key + certificate (+ chain), malloc'd. */
int sim_p12_to_pem(const unsigned char *p12, size_t len, const char *password, char **pem, char *err,
                   size_t errlen);
int sim_pem_identity(const char *pem, EVP_PKEY **key, X509 **cert, char *err, size_t errlen);
/** The Mdm-Signature header value: base64 of a detached CMS SignedData over
 * body, signed by key/cert with the certificate included. malloc'd. */
char *sim_mdm_signature(EVP_PKEY *key, X509 *cert, const void *body, size_t len, char *err, size_t errlen);
/** Check an Mdm-Signature value against body and a trust store (tests). */
int sim_mdm_signature_verify(const char *header, const void *body, size_t len, X509 *ca, char *err,
                             size_t errlen);

/* ---- sim_http.c ------------------------------------------------------- */

typedef enum { SIM_HTTP_AUTO = 0, SIM_HTTP_1, SIM_HTTP_2 } sim_httpver_t;
typedef enum { SIM_ID_SIGNATURE = 0, SIM_ID_MTLS, SIM_ID_NONE } sim_idmode_t;

typedef struct {
    const char *cacert;     /* CA file for the server's TLS certificate; NULL = system */
    const char *client_pem; /* key + certificate PEM for mTLS; NULL = none */
    sim_httpver_t version;  /* AUTO: HTTP/1.1 on http://, ALPN (h2 preferred) on https:// */
    long timeout_ms;        /* 0 = 30 s */
    bool verbose;
} sim_http_opts_t;

typedef struct {
    CURLcode code;
    long status;  /* 0 when no response */
    long version; /* CURL_HTTP_VERSION_* actually used */
    char content_type[128];
    unsigned char *body; /* NUL-terminated, malloc'd */
    size_t len;
    size_t cap;
    double seconds;
    char error[CURL_ERROR_SIZE];
    struct curl_slist *headers; /* request headers, owned, freed by clear */
} sim_http_resp_t;

/** Set up an easy handle for one request whose response lands in resp.
 * body is not copied: it must outlive the transfer. `headers` is taken over
 * (freed by sim_http_resp_clear). Used by the one-shot commands and by the
 * fleet's multi handle alike. */
CURL *sim_http_prepare(CURL *reuse, const sim_http_opts_t *o, const char *method, const char *url,
                       const void *body, size_t len, struct curl_slist *headers, sim_http_resp_t *resp);
/** Collect status, version and content type after the transfer ended. */
void sim_http_finish(CURL *c, CURLcode rc, sim_http_resp_t *resp);
/** prepare + perform + finish + cleanup. Returns 0 when a response arrived
 * (any status), -1 on transport errors (resp->error says why). */
int sim_http_perform(const sim_http_opts_t *o, const char *method, const char *url, const void *body,
                     size_t len, struct curl_slist *headers, sim_http_resp_t *resp);
void sim_http_resp_clear(sim_http_resp_t *resp);
const char *sim_http_version_name(long v);

/** Headers of an MDM request: Content-Type, User-Agent, no Expect, and the
 * Mdm-Signature over body when mode is SIM_ID_SIGNATURE (signed by signer). */
struct curl_slist *sim_mdm_headers(const char *content_type, sim_idmode_t mode, const sim_device_t *signer,
                                   const void *body, size_t len, const char *sig_override, char *err,
                                   size_t errlen);

#define SIM_CT_CHECKIN "application/x-apple-aspen-mdm-checkin"
#define SIM_CT_CONNECT "application/x-apple-aspen-mdm"
#define SIM_USER_AGENT "MDM/1.0"

/* ---- sim_h2.c -------------------------------------------------------- */

typedef struct sim_h2 sim_h2_t;
/** Called once per request: status 0 and error set when no response came. */
typedef void (*sim_h2_done_fn)(void *ud, int status, const unsigned char *body, size_t len,
                               const char *error);

/** A pool of nconns HTTP/2 connections to url's origin (h2c with prior
 * knowledge for http://, TLS + ALPN h2 for https://, verified with cacert). */
sim_h2_t *sim_h2_new(const char *url, int nconns, const char *cacert, char *err, size_t errlen);
void sim_h2_free(sim_h2_t *h);
/** (Re)open connection i, blocking, with an optional client identity (mTLS). */
int sim_h2_connect(sim_h2_t *h, int i, const char *client_pem, char *err, size_t errlen);
bool sim_h2_usable(const sim_h2_t *h, int i);
/** Queue a request on connection i. headers: name, value, ..., NULL. body
 * must stay valid until done is called. */
int sim_h2_submit(sim_h2_t *h, int i, const char *method, const char *path, const char *const *headers,
                  const void *body, size_t len, sim_h2_done_fn done, void *ud, char *err, size_t errlen);
/** Send and receive for up to timeout_ms; calls done for finished requests.
 * Returns the number of requests still in flight. */
int sim_h2_run(sim_h2_t *h, int timeout_ms);
int sim_h2_in_flight(const sim_h2_t *h);

/* ---- sim_checkin.c ---------------------------------------------------- */

extern const char *const sim_checkin_types[];

typedef struct {
    bool user_channel;
    bool all_keys;             /* every key Apple's schema has for this enrollment type and channel */
    const char *endpoint;      /* DeclarativeManagement: tokens (default), declaration-items, status, ... */
    const unsigned char *data; /* DeclarativeManagement Data (JSON) */
    size_t data_len;
    const char *token_service;   /* GetToken: com.apple.maid (default) */
    const char *digest_response; /* UserAuthenticate second round */
    bool awaiting_configuration;
} sim_checkin_opts_t;

/** Build the check-in message; NULL (and err) for an unknown type. */
plist_t sim_checkin_build(const sim_device_t *d, const char *message_type, const sim_checkin_opts_t *o,
                          char *err, size_t errlen);

/* ---- sim_answer.c ----------------------------------------------------- */

typedef struct {
    plist_t root;    /* the whole answer from the server (owned) */
    plist_t command; /* root["Command"] (borrowed from root) */
    char uuid[128];
    char request_type[128];
} sim_command_t;

/** Parse the server's answer to a connect request: 1 and *out for a command,
 * 0 for an empty body (nothing to do), -1 with err for anything else (not a
 * plist, not a dict, no CommandUUID, no Command dict, no RequestType). */
int sim_command_parse(const void *body, size_t len, sim_command_t *out, char *err, size_t errlen);
void sim_command_clear(sim_command_t *c);

typedef struct {
    const sim_schema_t *schema; /* may be NULL: no schema-driven answers or checks */
    bool user_channel;
    bool enforce_rights;      /* refuse what AccessRights, supervision and Shared iPad rules forbid */
    const char *force_status; /* NULL, or NotNow / Error / CommandFormatError */
    bool all_keys;            /* also every top-level response key of the schema */
} sim_answer_opts_t;

/** Status Idle. */
plist_t sim_idle_build(const sim_device_t *d, bool user_channel);
/** The device's answer to cmd, updating the device's state (installed
 * profiles and apps) the way the device would. */
plist_t sim_answer_build(sim_device_t *d, const sim_command_t *cmd, const sim_answer_opts_t *o);
/** Record an installed profile (the enrollment profile, managed=false, or
 * one from InstallProfile) for ProfileList and CertificateList. */
int sim_state_add_profile(sim_device_t *d, plist_t profile, bool managed, X509 *signer);
/** Record the device identity certificate for CertificateList. */
void sim_state_add_identity(sim_device_t *d);
/** Add UDID / EnrollmentID (+ user channel keys) to a message. */
void sim_add_identity(plist_t dict, const sim_device_t *d, bool user_channel, bool with_topic);
/** A schema-shaped value for a key definition (used for generic answers). */
plist_t sim_gen_value(const sim_device_t *d, const sy_node_t *keydef, int depth);

/* ---- sim_fleet.c ------------------------------------------------------ */

typedef struct {
    const char *url;
    const char *cacert;
    const char *profile_ca; /* profiles must be signed by this CA */
    int count;
    double duration;
    bool cycle; /* answer commands (else Idle only) */
    sim_httpver_t version;
    bool h2c;
    sim_idmode_t mode;
    bool mode_set;
    int concurrency;
    int connections; /* HTTP/2 with shared connections: how many (default 1) */
    const char *platform;
    const char *state_file; /* reuse / save enrolled devices */
    const char *schema_dir;
    bool json;
    bool no_sig_cache;
} sim_fleet_opts_t;

int sim_fleet_run(const sim_fleet_opts_t *o);

#endif
