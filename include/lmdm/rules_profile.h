/* The broker's own configuration profile for the merged device-wide rules
 * (DESIGN.md flow 5): one profile with a fixed identifier, holding one
 * payload per non-empty part of the merged result, rebuilt byte for byte the
 * same from the same result so that it is reinstalled only when the result
 * changes. Thread rules: no state; safe on any thread. */
#ifndef LMDM_RULES_PROFILE_H
#define LMDM_RULES_PROFILE_H

#include "lmdm/buf.h"
#include "lmdm/common.h"
#include "lmdm/rules.h"

/** PayloadIdentifier of the broker's rules profile; its payloads are
 * LMDM_RULES_PROFILE_ID ".passcode", ".filevault", ".restrictions", ".domains". */
#define LMDM_RULES_PROFILE_ID "lmdm.broker.rules"

/** Build the profile (XML plist, appended to *xml) for a merged result:
 *   com.apple.mobiledevice.passwordpolicy  the passcode keys; on iOS
 *       encryption.required also sets forcePIN (iOS encrypts with the passcode)
 *   com.apple.MCX.FileVault2  (macOS, when encryption.required) Enable = On,
 *       Defer = true (asked at the user's next logout, as Apple requires for
 *       MDM without credentials), the personal recovery key shown to the
 *       owner; never an escrow payload (no FDERecoveryKeyEscrow, no
 *       certificate)
 *   com.apple.applicationaccess  only the managed-data keys
 *   com.apple.domains  the unions; on macOS only the lists macOS supports
 *       (EmailDomains, CrossSiteTrackingPreventionRelaxedDomains), and that
 *       last list cut to Apple's limit of 10 (the first in sort order)
 * Deterministic: no clock, no random UUID; PayloadUUIDs are derived from the
 * content hash. `hash` gets the hex SHA-256 of the canonical content (every
 * merged key and value, every domain, the platform; not provenance), so it
 * changes exactly when what the device is asked for changes.
 * Returns 0 with the profile in *xml; 1 when there is nothing to install (an
 * empty result, or one with nothing for this platform: the caller removes the
 * profile) with *xml untouched and hash still set; LMDM_ERR_INVALID for NULL
 * arguments. */
int lmdm_rules_profile(const lmdm_merged_t *m, int macos, lmdm_buf_t *xml, char hash[65]) LMDM_MUSTCHECK;

#endif
