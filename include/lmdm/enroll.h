/* Enrollment profiles (.mobileconfig): the MDM payload pointing at the broker
 * and an identity payload (a PKCS#12 issued by the broker CA, or SCEP), signed
 * with CMS by the broker CA. See docs/enrollment.md for the AccessRights
 * requested and why. */
#ifndef LMDM_ENROLL_H
#define LMDM_ENROLL_H

#include "lmdm/buf.h"
#include "lmdm/ca.h"
#include "lmdm/config.h"

/** AccessRights the broker asks for: the sum of Apple's bit values, each bit
 * justified in enroll.c and docs/enrollment.md. */
extern const int lmdm_enroll_access_rights;

typedef enum { LMDM_ENROLL_DEVICE = 0, LMDM_ENROLL_USER = 1 } lmdm_enroll_kind_t;

/** Build the signed profile into out (DER CMS with the XML plist inside).
 * `nonce` makes PayloadUUIDs and the identity CN unique per download.
 * For LMDM_ENROLL_USER the MDM payload is the User Enrollment variant
 * (com.apple.mdm with AssignedManagedAppleID, EnrollmentMode BYOD). */
int lmdm_enroll_profile(const lmdm_config_t *cfg, const lmdm_ca_t *ca, lmdm_enroll_kind_t kind,
                        const char *managed_apple_id, lmdm_buf_t *out, char *errbuf,
                        size_t errlen) LMDM_MUSTCHECK;

struct lmdm_http_req;
/** GET /enroll[?kind=user&managed_apple_id=...]: the signed profile. */
void lmdm_enroll_handle(struct lmdm_http_req *req);

#endif
