/* Enrollment profiles (.mobileconfig): the MDM payload pointing at the broker
 * and an identity payload (a PKCS#12 issued by the broker CA, or SCEP), signed
 * with CMS by the broker CA. See docs/enrollment.md for the AccessRights
 * requested and why. */
#ifndef LMDM_ENROLL_H
#define LMDM_ENROLL_H

#include "lmdm/buf.h"
#include "lmdm/ca.h"
#include "lmdm/config.h"
#include "lmdm/http.h"

/** Apple's AccessRights bits (com.apple.mdm payload, "Logical OR of the
 * following bit flags"), named after the right each one grants. */
enum {
    LMDM_AR_INSPECT_PROFILES = 1,          /* ProfileList, CertificateList */
    LMDM_AR_INSTALL_PROFILES = 2,          /* InstallProfile, RemoveProfile; needs 1 */
    LMDM_AR_LOCK_PASSCODE = 4,             /* DeviceLock, ClearPasscode, RestartDevice, ... */
    LMDM_AR_ERASE = 8,                     /* EraseDevice */
    LMDM_AR_DEVICE_INFO = 16,              /* DeviceInformation: serial, capacity, IMEI, ... */
    LMDM_AR_NETWORK_INFO = 32,             /* phone/SIM numbers, MAC addresses */
    LMDM_AR_INSPECT_PROVISIONING = 64,     /* ProvisioningProfileList */
    LMDM_AR_INSTALL_PROVISIONING = 128,    /* Install/RemoveProvisioningProfile; needs 64 */
    LMDM_AR_INSPECT_APPS = 256,            /* InstalledApplicationList (every app) */
    LMDM_AR_RESTRICTION_QUERIES = 512,     /* Restrictions */
    LMDM_AR_SECURITY_QUERIES = 1024,       /* SecurityInfo */
    LMDM_AR_SETTINGS = 2048,               /* Settings */
    LMDM_AR_APP_MANAGEMENT = 4096,         /* managed apps, ManagedApplicationList, media */
};

/** AccessRights the broker asks for: the sum of Apple's bit values, each bit
 * justified in enroll.c and docs/enrollment.md. */
extern const int lmdm_enroll_access_rights;

typedef enum { LMDM_ENROLL_DEVICE = 0, LMDM_ENROLL_USER = 1 } lmdm_enroll_kind_t;

/** Build the signed profile into out (DER CMS SignedData with the XML plist
 * inside, signed by the CA). Every call makes fresh PayloadUUIDs, a fresh
 * identity (enroll_identity = pkcs12: an RSA key, a certificate "lmdm device
 * <random>" valid two years and a random PKCS#12 password) or a fresh SCEP
 * subject (enroll_identity = scep).
 * For LMDM_ENROLL_USER the MDM payload is the User Enrollment variant
 * (com.apple.mdm with AssignedManagedAppleID = managed_apple_id, EnrollmentMode
 * BYOD, no AccessRights); managed_apple_id must then be an e-mail-like address,
 * and must be NULL or "" for LMDM_ENROLL_DEVICE.
 * Refuses (LMDM_ERR_INVALID, errbuf says why) a public_url that is not http(s),
 * an apns_topic not starting with "com.apple.mgmt.", SCEP without scep_url or
 * with a key size Apple does not offer. Appends to out; on error out is unchanged.
 * Costs one RSA-2048 key generation (tens of milliseconds) with pkcs12. */
int lmdm_enroll_profile(const lmdm_config_t *cfg, const lmdm_ca_t *ca, lmdm_enroll_kind_t kind,
                        const char *managed_apple_id, lmdm_buf_t *out, char *errbuf,
                        size_t errlen) LMDM_MUSTCHECK;

/** Route handler for `GET /enroll` (device enrollment) and
 * `GET /enroll?kind=user&managed_apple_id=<percent-encoded>` (User Enrollment).
 * Answers 200 application/x-apple-aspen-config (attachment lmdm.mobileconfig,
 * Cache-Control: no-store, since the profile carries a private key), 400 JSON
 * for a bad query, 503 "no_ca" when the broker has no CA, 500 when the profile
 * cannot be built. Runs on the worker thread, key generation included. */
void lmdm_enroll_handle(lmdm_http_req_t *req);

#endif
