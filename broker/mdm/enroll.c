/* Enrollment profiles: the .mobileconfig a device installs once to be managed
 * by the broker (DESIGN.md flow 1), and the GET /enroll handler serving it.
 *
 * The profile is an XML property list built with libplist:
 *   Configuration
 *     identity payload  com.apple.security.pkcs12 (a fresh identity from the
 *                       broker CA) or com.apple.security.scep (an existing SCEP
 *                       server issues it)
 *     MDM payload       com.apple.mdm: where to check in, which push topic,
 *                       which identity, and the AccessRights below
 *     web clip          com.apple.webClip.managed "My device — lmdm": the
 *                       owner's link to the owner pages, carrying a fresh
 *                       owner token (GET /enroll with secret_key and a PKCS#12
 *                       identity only; see lmdm/owner.h)
 * and is signed (CMS SignedData, content attached) by the broker CA.
 *
 * The owner token is bound to the device through the identity certificate of
 * the same profile: GET /enroll stores the token's keyed hash with the
 * certificate's SHA-256 fingerprint (owner_tokens) and answers only once that
 * row is committed; the device presents the same certificate at Authenticate,
 * where devices.cert_fpr gets the same fingerprint (lmdm_identity_fingerprint
 * on both sides). A SCEP identity does not exist yet when the profile is
 * built, so SCEP profiles carry no owner link. */
#include "lmdm/enroll.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <plist/plist.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/app.h"
#include "lmdm/db.h"
#include "lmdm/html.h"
#include "lmdm/identity.h"
#include "lmdm/log.h"
#include "lmdm/secrets.h"
#include "lmdm/server.h"

/* AccessRights: what the device lets the broker do. The device enforces this
 * itself, so a right left out here cannot be used even by a compromised
 * broker. Each bit below is needed by a command the broker sends on behalf of
 * the device owner or a tenant (which command needs which right: `accessrights`
 * in Apple's mdm/commands/ *.yaml). Everything else is left out.
 *
 * Requested:
 *   1    inspect profiles    ProfileList and CertificateList: the broker checks
 *                            which of its own and each tenant's profiles and
 *                            certificates are installed, so it can report them
 *                            and remove exactly a leaving tenant's. Apple
 *                            requires 1 whenever 2 is set.
 *   2    install/remove      InstallProfile, RemoveProfile: tenants' accounts
 *        profiles            (mail, Exchange, CalDAV), managed Safari domains,
 *                            per-app VPN and certificates, and the broker's
 *                            merged passcode/encryption profile.
 *   1024 security queries   SecurityInfo: whether a passcode is set and complies,
 *                            and encryption (hardware encryption, FileVault)
 *                            state, which the merged device-wide rules are
 *                            checked against.
 *   2048 settings           Settings: ApplicationAttributes and
 *                            ApplicationConfiguration of tenants' managed apps
 *                            (per-app VPN, associated domains), and device-wide
 *                            items the broker merges (PasscodeLockGracePeriod,
 *                            SoftwareUpdateSettings). Settings that also need a
 *                            right left out below (roaming, personal hotspot:
 *                            network information) stay refused by the device.
 *   4096 app management     InstallApplication, RemoveApplication,
 *                            ManagedApplicationList, ManagedApplication*
 *                            commands and managed books: tenants manage their
 *                            own apps. ManagedApplicationList lists managed
 *                            apps only, so 256 is not needed for it. Apple also
 *                            ties ScheduleOSUpdate / AvailableOSUpdates /
 *                            OSUpdateStatus to this right (DESIGN.md flow 6).
 *
 * Left out, so the device refuses them whatever the broker sends:
 *   4    device lock and passcode removal (DeviceLock, ClearPasscode,
 *        RestartDevice, ShutDownDevice)
 *   8    device erase (EraseDevice)
 *   16   device information (serial number, IMEI, capacity, device name,
 *        model: DeviceInformation beyond a few special keys). The broker learns
 *        the OS version it needs for update rings from check-in messages and
 *        declarative status reports instead.
 *   32   network information (phone and SIM numbers, MAC addresses)
 *   64   inspect provisioning profiles and
 *   128  install/remove provisioning profiles: the list shows every installed
 *        developer and enterprise provisioning profile, i.e. other employers'
 *        in-house apps; in-house apps carry their own provisioning profile.
 *   256  inspect installed applications (InstalledApplicationList: every app
 *        on the device, personal ones included)
 *   512  restriction queries (Restrictions: the effective restrictions of all
 *        profiles, other tenants' included); compliance comes from SecurityInfo
 *        and ProfileList instead.
 *
 * Apple refuses any added right when the MDM profile is updated, so adding one
 * later means re-enrolling: each one here is a deliberate choice. */
const int lmdm_enroll_access_rights = LMDM_AR_INSPECT_PROFILES | LMDM_AR_INSTALL_PROFILES |
                                      LMDM_AR_SECURITY_QUERIES | LMDM_AR_SETTINGS | LMDM_AR_APP_MANAGEMENT;

#define IDENTITY_DAYS 730 /* the device identity lives two years; re-enrollment renews it */
#define APPLE_ID_MAX 254  /* longest e-mail address (RFC 5321 path limit) */
#define QUERY_MAX 2048

static void errf(char *errbuf, size_t errlen, const char *msg)
{
    if (errbuf && errlen) snprintf(errbuf, errlen, "%s", msg);
}

static int random_hex(char *out, size_t nbytes)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[32];
    if (nbytes > sizeof(raw) || RAND_bytes(raw, (int)nbytes) != 1) {
        ERR_clear_error();
        return -1;
    }
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * nbytes] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

/* A random (version 4) UUID in upper case, the form Apple's own tools write. */
static int uuid_v4(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        ERR_clear_error();
        return -1;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return 0;
}

/* A managed Apple ID is an e-mail address: printable ASCII without spaces,
 * one '@' with something on both sides. The device checks the rest. */
static int valid_managed_apple_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 3 || n > APPLE_ID_MAX) return 0;
    const char *at = strchr(s, '@');
    if (!at || at == s || !at[1] || strchr(at + 1, '@')) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) return 0;
    return 1;
}

/* The URL prefix with any trailing '/' removed, or NULL if it is no usable
 * http(s) URL. Devices accept only https for ServerURL and CheckInURL; plain
 * http is allowed for the test simulator behind a plaintext listener. */
static char *base_url(const char *url)
{
    if (!url) return NULL;
    const char *rest = !strncmp(url, "https://", 8) ? url + 8 : !strncmp(url, "http://", 7) ? url + 7 : NULL;
    if (!rest || !*rest || *rest == '/') return NULL;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '?' || *p == '#') return NULL;
    size_t n = strlen(url);
    while (n > (size_t)(rest - url) && url[n - 1] == '/')
        n--;
    char *b = lmdm_xmalloc(n + 1);
    memcpy(b, url, n);
    b[n] = '\0';
    return b;
}

/* "lmdm.enroll.<host>": a stable identifier per broker, so that installing a
 * newer profile from the same broker replaces the old one rather than adding
 * a second MDM profile (which the device refuses). */
static void profile_identifier(const char *base, char *out, size_t outlen)
{
    const char *h = strstr(base, "://") + 3;
    char host[128];
    size_t n = 0;
    for (; *h && *h != '/' && n + 1 < sizeof(host); h++) {
        char c = *h;
        if (c == ':' && host[0] != '[') break; /* port */
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) c = '-';
        host[n++] = c;
    }
    host[n] = '\0';
    snprintf(out, outlen, "lmdm.enroll.%s", n ? host : "broker");
}

static void set_str(plist_t d, const char *key, const char *val)
{
    plist_dict_set_item(d, key, plist_new_string(val));
}

/* The keys every payload carries (Apple's CommonPayloadKeys). */
static plist_t new_payload(const char *type, const char *identifier, const char *uuid, const char *display)
{
    plist_t d = plist_new_dict();
    set_str(d, "PayloadType", type);
    plist_dict_set_item(d, "PayloadVersion", plist_new_uint(1));
    set_str(d, "PayloadIdentifier", identifier);
    set_str(d, "PayloadUUID", uuid);
    set_str(d, "PayloadDisplayName", display);
    return d;
}

/* SHA-256 fingerprint of the certificate inside a PKCS#12 we just issued:
 * read back the way the device will, so the fingerprint is of exactly the
 * DER the device presents later. */
static int p12_fingerprint(const unsigned char *p12, size_t len, const char *password,
                           char fpr[LMDM_FINGERPRINT_LEN + 1])
{
    const unsigned char *p = p12;
    PKCS12 *pk = d2i_PKCS12(NULL, &p, (long)len);
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *chain = NULL;
    int ok = pk && PKCS12_parse(pk, password, &key, &cert, &chain) == 1 && cert;
    if (ok) lmdm_identity_fingerprint(cert, fpr);
    EVP_PKEY_free(key);
    X509_free(cert);
    sk_X509_pop_free(chain, X509_free);
    PKCS12_free(pk);
    ERR_clear_error();
    return ok ? 0 : -1;
}

/* fpr (may be NULL) gets the identity certificate's fingerprint. */
static int pkcs12_payload(const lmdm_ca_t *ca, const char *ident, const char *uuid, plist_t *out,
                          char fpr[LMDM_FINGERPRINT_LEN + 1], char *errbuf, size_t errlen)
{
    char cn[64], rnd[33], password[33];
    if (random_hex(rnd, 8) != 0 || random_hex(password, 16) != 0) {
        errf(errbuf, errlen, "no randomness for the device identity");
        return LMDM_ERR_TLS;
    }
    snprintf(cn, sizeof(cn), "lmdm device %s", rnd);
    unsigned char *p12 = NULL;
    size_t p12_len = 0;
    /* The compatible PKCS#12 format: its password sits right next to it in
     * this payload, so the cipher protects nothing that TLS does not, and
     * AES-encrypted PKCS#12 files fail to import on older iOS/macOS. */
    int rv = lmdm_ca_issue_p12_format(ca, cn, password, IDENTITY_DAYS, LMDM_P12_APPLE_COMPAT, &p12, &p12_len,
                                      errbuf, errlen);
    if (rv != 0) {
        OPENSSL_cleanse(password, sizeof(password));
        return rv;
    }
    if (fpr && p12_fingerprint(p12, p12_len, password, fpr) != 0) {
        OPENSSL_cleanse(p12, p12_len);
        OPENSSL_cleanse(password, sizeof(password));
        free(p12);
        errf(errbuf, errlen, "reading back the issued PKCS#12 failed");
        return LMDM_ERR_TLS;
    }
    plist_t d = new_payload("com.apple.security.pkcs12", ident, uuid, "Device identity");
    set_str(d, "PayloadCertificateFileName", "lmdm-device.p12");
    plist_dict_set_item(d, "PayloadContent", plist_new_data((const char *)p12, p12_len));
    set_str(d, "Password", password);
    /* macOS: keep the identity's private key from being exported from the
     * keychain (iOS never allows it). */
    plist_dict_set_item(d, "KeyIsExtractable", plist_new_bool(0));
    OPENSSL_cleanse(p12, p12_len);
    OPENSSL_cleanse(password, sizeof(password));
    free(p12);
    *out = d;
    return 0;
}

static int scep_payload(const lmdm_config_t *cfg, const char *ident, const char *uuid, plist_t *out,
                        char *errbuf, size_t errlen)
{
    const char *url = cfg->scep_url;
    char *shape = base_url(url); /* only to check its shape: the URL is used as given */
    int ok = shape != NULL;
    free(shape);
    if (!ok) {
        errf(errbuf, errlen, "enroll_identity = scep needs scep_url (an http or https URL)");
        return LMDM_ERR_INVALID;
    }
    if (cfg->scep_key_size != 1024 && cfg->scep_key_size != 2048 && cfg->scep_key_size != 4096) {
        errf(errbuf, errlen, "scep_key_size must be 1024, 2048 or 4096 (the sizes Apple devices generate)");
        return LMDM_ERR_INVALID;
    }
    char rnd[17], cn[64];
    if (random_hex(rnd, 8) != 0) {
        errf(errbuf, errlen, "no randomness for the SCEP subject");
        return LMDM_ERR_TLS;
    }
    snprintf(cn, sizeof(cn), "lmdm device %s", rnd);

    plist_t c = plist_new_dict();
    set_str(c, "URL", url);
    if (cfg->scep_challenge && *cfg->scep_challenge) set_str(c, "Challenge", cfg->scep_challenge);
    plist_dict_set_item(c, "Keysize", plist_new_uint((uint64_t)cfg->scep_key_size));
    set_str(c, "Key Type", "RSA");
    /* 1 signing (Mdm-Signature, TLS client auth) + 4 encryption. */
    plist_dict_set_item(c, "Key Usage", plist_new_uint(5));
    /* Subject: an array of RDNs, each an array of [OID, value] pairs. */
    plist_t pair = plist_new_array();
    plist_array_append_item(pair, plist_new_string("CN"));
    plist_array_append_item(pair, plist_new_string(cn));
    plist_t rdn = plist_new_array();
    plist_array_append_item(rdn, pair);
    plist_t subject = plist_new_array();
    plist_array_append_item(subject, rdn);
    plist_dict_set_item(c, "Subject", subject);
    plist_dict_set_item(c, "KeyIsExtractable", plist_new_bool(0));

    plist_t d = new_payload("com.apple.security.scep", ident, uuid, "Device identity (SCEP)");
    plist_dict_set_item(d, "PayloadContent", c);
    *out = d;
    return 0;
}

static plist_t mdm_payload(const lmdm_config_t *cfg, const char *base, const char *ident, const char *uuid,
                           const char *identity_uuid, lmdm_enroll_kind_t kind, const char *managed_apple_id)
{
    plist_t d = new_payload("com.apple.mdm", ident, uuid, "Device management");
    set_str(d, "IdentityCertificateUUID", identity_uuid);
    set_str(d, "Topic", cfg->apns_topic);
    size_t n = strlen(base) + 16;
    char *url = lmdm_xmalloc(n);
    snprintf(url, n, "%s/mdm/connect", base);
    set_str(d, "ServerURL", url);
    snprintf(url, n, "%s/mdm/checkin", base);
    set_str(d, "CheckInURL", url);
    free(url);
    /* Every message carries Mdm-Signature, so the broker can authenticate the
     * device even behind a TLS-terminating proxy. */
    plist_dict_set_item(d, "SignMessage", plist_new_bool(1));
    /* Removing the profile tells the broker, which then stops queuing. */
    plist_dict_set_item(d, "CheckOutWhenRemoved", plist_new_bool(1));
    plist_t caps = plist_new_array();
    plist_array_append_item(caps, plist_new_string("com.apple.mdm.per-user-connections"));
    plist_array_append_item(caps, plist_new_string("com.apple.mdm.bootstraptoken"));
    plist_dict_set_item(d, "ServerCapabilities", caps);
    if (kind == LMDM_ENROLL_USER) {
        /* Account-driven User Enrollment (iOS 15, macOS 14 and later). Apple
         * ignores AccessRights here: User Enrollment has its own fixed, narrower
         * set of allowed commands. */
        set_str(d, "EnrollmentMode", "BYOD");
        set_str(d, "AssignedManagedAppleID", managed_apple_id);
    } else {
        plist_dict_set_item(d, "AccessRights", plist_new_uint((uint64_t)lmdm_enroll_access_rights));
    }
    return d;
}

#define OWNER_CLIP_LABEL "My device \u2014 lmdm"

/* The owner's way to the owner pages: a web clip on the home screen. It opens
 * in Safari (FullScreen false) on purpose: a full-screen web clip keeps its
 * own cookies, and the owner session must be in Safari's, where invitation
 * links open. */
static plist_t webclip_payload(const char *base, const char *ident, const char *uuid, const char *token)
{
    plist_t d = new_payload("com.apple.webClip.managed", ident, uuid, OWNER_CLIP_LABEL);
    set_str(d, "Label", OWNER_CLIP_LABEL);
    size_t n = strlen(base) + strlen(token) + 32;
    char *url = lmdm_xmalloc(n);
    snprintf(url, n, "%s/owner/login?token=%s", base, token);
    set_str(d, "URL", url);
    OPENSSL_cleanse(url, n);
    free(url);
    plist_dict_set_item(d, "IsRemovable", plist_new_bool(1));
    plist_dict_set_item(d, "FullScreen", plist_new_bool(0));
    return d;
}

/* lmdm_enroll_profile, plus: with owner_token a web clip to the owner pages,
 * and (pkcs12 only) the identity certificate's fingerprint into fpr. */
static int build_profile(const lmdm_config_t *cfg, const lmdm_ca_t *ca, lmdm_enroll_kind_t kind,
                         const char *managed_apple_id, const char *owner_token,
                         char fpr[LMDM_FINGERPRINT_LEN + 1], lmdm_buf_t *out, char *errbuf, size_t errlen)
{
    if (!cfg || !ca || !out || (kind != LMDM_ENROLL_DEVICE && kind != LMDM_ENROLL_USER)) {
        errf(errbuf, errlen, "enrollment profile: invalid argument");
        return LMDM_ERR_INVALID;
    }
    if (kind == LMDM_ENROLL_USER && !valid_managed_apple_id(managed_apple_id)) {
        errf(errbuf, errlen, "User Enrollment needs a managed Apple ID (an e-mail address)");
        return LMDM_ERR_INVALID;
    }
    if (kind == LMDM_ENROLL_DEVICE && managed_apple_id && *managed_apple_id) {
        errf(errbuf, errlen, "a managed Apple ID belongs to User Enrollment only");
        return LMDM_ERR_INVALID;
    }
    if (!cfg->apns_topic || strncmp(cfg->apns_topic, "com.apple.mgmt.", 15) != 0 || !cfg->apns_topic[15]) {
        errf(errbuf, errlen, "apns_topic must be set to the push certificate's topic (com.apple.mgmt....)");
        return LMDM_ERR_INVALID;
    }
    int scep;
    if (cfg->enroll_identity && strcmp(cfg->enroll_identity, "scep") == 0)
        scep = 1;
    else if (cfg->enroll_identity && strcmp(cfg->enroll_identity, "pkcs12") == 0)
        scep = 0;
    else {
        errf(errbuf, errlen, "enroll_identity must be pkcs12 or scep");
        return LMDM_ERR_INVALID;
    }
    char *base = base_url(cfg->public_url);
    if (!base) {
        errf(errbuf, errlen,
             "public_url must be an https:// URL without query (e.g. https://mdm.example.org)");
        return LMDM_ERR_INVALID;
    }

    int rv;
    plist_t profile = NULL, identity = NULL;
    char *xml = NULL;
    uint32_t xml_len = 0;
    unsigned char *signed_der = NULL;
    size_t signed_len = 0;
    char top_uuid[37], id_uuid[37], mdm_uuid[37], clip_uuid[37], ident[192], sub[256];
    if (uuid_v4(top_uuid) || uuid_v4(id_uuid) || uuid_v4(mdm_uuid) || uuid_v4(clip_uuid)) {
        errf(errbuf, errlen, "no randomness for payload UUIDs");
        rv = LMDM_ERR_TLS;
        goto out;
    }
    profile_identifier(base, ident, sizeof(ident));

    snprintf(sub, sizeof(sub), "%s.identity", ident);
    rv = scep ? scep_payload(cfg, sub, id_uuid, &identity, errbuf, errlen)
              : pkcs12_payload(ca, sub, id_uuid, &identity, fpr, errbuf, errlen);
    if (rv != 0) goto out;

    const char *org = cfg->enroll_org && *cfg->enroll_org ? cfg->enroll_org : "lmdm";
    char display[160];
    snprintf(display, sizeof(display), "%s device management (limited)", org);
    profile = new_payload("Configuration", ident, top_uuid, display);
    set_str(profile, "PayloadOrganization", org);
    set_str(profile, "PayloadDescription",
            kind == LMDM_ENROLL_USER
                ? "Enrolls this device for User Enrollment: organizations you accept manage only their own "
                  "apps, accounts and data in a separate volume."
                : "Enrolls this device for limited management. This server cannot erase or lock the device, "
                  "remove its passcode, read its serial or phone numbers, or list your apps. Organizations "
                  "you accept manage only their own apps, accounts and settings. Remove this profile at any "
                  "time to end all management.");
    plist_t content = plist_new_array();
    plist_array_append_item(content, identity);
    identity = NULL; /* owned by content now */
    snprintf(sub, sizeof(sub), "%s.mdm", ident);
    plist_array_append_item(content, mdm_payload(cfg, base, sub, mdm_uuid, id_uuid, kind, managed_apple_id));
    if (owner_token) {
        snprintf(sub, sizeof(sub), "%s.owner", ident);
        plist_array_append_item(content, webclip_payload(base, sub, clip_uuid, owner_token));
    }
    plist_dict_set_item(profile, "PayloadContent", content);

    plist_to_xml(profile, &xml, &xml_len);
    if (!xml || !xml_len) {
        errf(errbuf, errlen, "serializing the profile failed");
        rv = LMDM_ERR_NOMEM;
        goto out;
    }
    rv = lmdm_ca_sign_attached(ca, (const unsigned char *)xml, xml_len, &signed_der, &signed_len);
    if (rv != 0) {
        errf(errbuf, errlen, "signing the profile with the broker CA failed");
        goto out;
    }
    lmdm_buf_append(out, signed_der, signed_len);
out:
    if (xml) {
        OPENSSL_cleanse(xml, xml_len); /* it holds the PKCS#12 password (and owner token) in clear */
        plist_to_xml_free(xml);
    }
    free(signed_der);
    plist_free(identity);
    plist_free(profile);
    free(base);
    return rv;
}

int lmdm_enroll_profile(const lmdm_config_t *cfg, const lmdm_ca_t *ca, lmdm_enroll_kind_t kind,
                        const char *managed_apple_id, lmdm_buf_t *out, char *errbuf, size_t errlen)
{
    return build_profile(cfg, ca, kind, managed_apple_id, NULL, NULL, out, errbuf, errlen);
}

/* ---- GET /enroll ---- */

/* GET /enroll in flight: the built profile waits for its owner token row. */
typedef struct {
    lmdm_http_req_t *req;
    lmdm_enroll_kind_t kind;
    uint64_t t0;
    lmdm_buf_t profile;
    int with_owner;
    char fpr[LMDM_FINGERPRINT_LEN + 1];
    char token_hash[65];
} enroll_ctx_t;

static const lmdm_db_stmt_t st_owner_token = {
    "enroll_owner_token", "INSERT INTO owner_tokens (token_hash, cert_fpr) VALUES ($1, $2)", 2};

static void enroll_respond(enroll_ctx_t *x)
{
    lmdm_http_req_t *req = x->req;
    const lmdm_app_t *app = (const lmdm_app_t *)req->worker->app;
    /* The managed Apple ID is personal data: not logged. */
    lmdm_info("conn=%llu: enrollment profile issued (%s, %s%s, %llu ms)", (unsigned long long)req->conn_id,
              x->kind == LMDM_ENROLL_USER ? "user" : "device", app->cfg->enroll_identity,
              x->with_owner ? ", owner link" : "", (unsigned long long)((lmdm_now_ns() - x->t0) / 1000000));
    lmdm_http_resp_header(req, "Content-Disposition", "attachment; filename=\"lmdm.mobileconfig\"");
    /* A fresh private key, its password and the owner token are inside: no
     * cache may keep it. */
    lmdm_http_resp_header(req, "Cache-Control", "no-store");
    lmdm_buf_t profile = x->profile;
    lmdm_http_respond(req, 200, "application/x-apple-aspen-config", profile.data, profile.len);
    lmdm_buf_free(&profile);
}

static void owner_token_done(void *arg, int err, PGresult *res)
{
    enroll_ctx_t *x = arg;
    if (err) {
        if (err == LMDM_ERR_DB)
            lmdm_error("conn=%llu: storing the owner token failed: %s", (unsigned long long)x->req->conn_id,
                       PQresultErrorMessage(res));
        lmdm_buf_free(&x->profile);
        if (err == LMDM_ERR_DB)
            lmdm_http_respond_error(x->req, 500, "internal", "database error");
        else
            lmdm_http_respond_unavailable(x->req);
        return;
    }
    enroll_respond(x);
}

void lmdm_enroll_handle(lmdm_http_req_t *req)
{
    const lmdm_app_t *app = req->worker ? (const lmdm_app_t *)req->worker->app : NULL;
    if (!app || !app->ca || !app->cfg) {
        lmdm_http_respond_error(req, 503, "no_ca", "this broker has no CA configured (ca_cert, ca_key)");
        return;
    }
    const char *q = req->query ? req->query : "";
    if (strlen(q) > QUERY_MAX) {
        lmdm_http_respond_error(req, 400, "bad_query", "query string too long");
        return;
    }
    lmdm_form_field_t fields[LMDM_FORM_MAX_FIELDS];
    size_t nfields = 0;
    int bare = 0; /* a parameter without '=' */
    for (const char *p = q; *p;) {
        size_t seg = strcspn(p, "&");
        if (seg > 0 && !memchr(p, '=', seg)) bare = 1;
        p += seg + (p[seg] == '&');
    }
    if (bare || lmdm_form_parse(req->arena, q, strlen(q), fields, LMDM_FORM_MAX_FIELDS, &nfields) != 0) {
        lmdm_http_respond_error(req, 400, "bad_query", "malformed query parameter");
        return;
    }
    for (size_t i = 0; i < nfields; i++) {
        if (strcmp(fields[i].name, "kind") != 0 && strcmp(fields[i].name, "managed_apple_id") != 0) {
            lmdm_http_respond_error(req, 400, "bad_query", "unknown query parameter (kind, managed_apple_id)");
            return;
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(fields[k].name, fields[i].name) == 0) {
                lmdm_http_respond_error(req, 400, "bad_query", "query parameter given twice");
                return;
            }
    }
    const char *kind_s = lmdm_form_get(fields, nfields, "kind");
    const char *apple_id = lmdm_form_get(fields, nfields, "managed_apple_id");
    lmdm_enroll_kind_t kind = LMDM_ENROLL_DEVICE;
    if (kind_s && !strcmp(kind_s, "user"))
        kind = LMDM_ENROLL_USER;
    else if (kind_s && strcmp(kind_s, "device") != 0) {
        lmdm_http_respond_error(req, 400, "bad_kind", "kind must be device or user");
        return;
    }
    if (kind == LMDM_ENROLL_USER && !apple_id) {
        lmdm_http_respond_error(req, 400, "missing_managed_apple_id",
                                "User Enrollment needs managed_apple_id");
        return;
    }
    if (kind == LMDM_ENROLL_USER && !valid_managed_apple_id(apple_id)) {
        lmdm_http_respond_error(req, 400, "bad_managed_apple_id",
                                "managed_apple_id must be an e-mail address (percent-encode '+' as %2B)");
        return;
    }
    if (kind == LMDM_ENROLL_DEVICE && apple_id) {
        lmdm_http_respond_error(req, 400, "bad_query", "managed_apple_id is only for kind=user");
        return;
    }

    /* The owner link needs the master secret (token hash) and the identity
     * certificate (fingerprint): no secret_key or a SCEP identity, no link. */
    static atomic_flag warned_no_secret = ATOMIC_FLAG_INIT, warned_scep = ATOMIC_FLAG_INIT;
    int scep = app->cfg->enroll_identity && strcmp(app->cfg->enroll_identity, "scep") == 0;
    int with_owner = app->secrets && !scep;
    if (!app->secrets && !atomic_flag_test_and_set(&warned_no_secret))
        lmdm_warn("no secret_key: enrollment profiles carry no owner link (the owner pages cannot work)");
    if (app->secrets && scep && !atomic_flag_test_and_set(&warned_scep))
        lmdm_warn("enroll_identity = scep: enrollment profiles carry no owner link (docs/owner.md)");
    if (with_owner && !req->worker->db) {
        lmdm_http_respond_unavailable(req);
        return;
    }

    enroll_ctx_t *x = lmdm_arena_alloc(req->arena, sizeof(*x));
    memset(x, 0, sizeof(*x));
    x->req = req;
    x->kind = kind;
    x->t0 = lmdm_now_ns();
    char token[64], err[256];
    if (with_owner && lmdm_secrets_new_token("", token, sizeof(token)) != 0) {
        lmdm_error("conn=%llu: enrollment profile: no randomness for the owner token",
                   (unsigned long long)req->conn_id);
        lmdm_http_respond_error(req, 500, "enroll_failed", "the enrollment profile could not be built");
        return;
    }
    int rv = build_profile(app->cfg, app->ca, kind, apple_id, with_owner ? token : NULL,
                           with_owner ? x->fpr : NULL, &x->profile, err, sizeof(err));
    if (rv != 0) {
        OPENSSL_cleanse(token, sizeof(token));
        /* Configuration problems: the operator has to act, the client cannot. */
        lmdm_error("conn=%llu: enrollment profile: %s", (unsigned long long)req->conn_id, err);
        lmdm_buf_free(&x->profile); /* x lives in the request's arena: free before answering */
        lmdm_http_respond_error(req, 500, "enroll_failed", "the enrollment profile could not be built");
        return;
    }
    if (!with_owner) {
        enroll_respond(x);
        return;
    }
    /* The owner token works only once its hash is stored: commit first. */
    lmdm_secrets_token_hash(app->secrets, "owner", token, x->token_hash);
    OPENSSL_cleanse(token, sizeof(token));
    x->with_owner = 1;
    const char *params[] = {x->token_hash, x->fpr};
    if (lmdm_db_query(req->worker->db, &st_owner_token, 2, params, owner_token_done, x) != 0) {
        lmdm_buf_free(&x->profile);
        lmdm_http_respond_unavailable(req);
    }
}
