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

/** Identifiers of the broker's declarations (DeclarativeManagement). */
#define LMDM_RULES_DECL_PASSCODE_ID "lmdm.rules.passcode"
#define LMDM_RULES_DECL_ACTIVATION_ID "lmdm.rules.activation"

/** 1 if a device takes the merged passcode as a declaration
 * (com.apple.configuration.passcode.settings) rather than in the broker
 * profile: an iPhone or iPad (not macOS: there Apple allows the declaration
 * only on supervised and local enrollments) whose Authenticate gave an
 * OSVersion of at least 16.2. Apple introduced the declaration in iOS 15.0
 * for device and User Enrollment, but RequireAlphanumericPasscode,
 * MinimumComplexCharacters and MaximumPasscodeAgeInDays only in 16.2: an
 * older device would silently drop merged keys, so it keeps the profile. An
 * unknown version (NULL or empty: iOS leaves OSVersion out of Authenticate
 * without the device-information right, which the broker does not ask for)
 * is not enough either. */
int lmdm_rules_declaration_capable(int macos, const char *os_version);

/** The merged passcode rule as Apple's passcode declaration, for a device of
 * lmdm_rules_declaration_capable(): appends to *json the JSON object
 *   {"Type": "com.apple.configuration.passcode.settings",
 *    "Identifier": LMDM_RULES_DECL_PASSCODE_ID, "ServerToken": token,
 *    "Payload": {each merged passcode key under its declaration_key,
 *                allowSimple inverted as RequireComplexPasscode}}
 * where encryption.required sets RequirePasscode (iOS encrypts with the
 * passcode). token gets the hex SHA-256 of the canonical payload (compact,
 * sorted keys): deterministic, it changes exactly when the payload does.
 * Returns 0; 1 when the result holds no passcode or encryption key (no
 * declaration: *json untouched, token ""); LMDM_ERR_INVALID for NULL
 * arguments. */
int lmdm_rules_declaration(const lmdm_merged_t *m, lmdm_buf_t *json, char token[65]) LMDM_MUSTCHECK;

/** Copy of *in without what the passcode declaration carries (the passcode
 * keys and encryption.required), for the profile of a declaration device. */
void lmdm_rules_without_declared(const lmdm_merged_t *in, lmdm_merged_t *out);

#endif
