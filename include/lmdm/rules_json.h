/* Device-wide rules (lmdm/rules.h) as the tenant API writes them (JSON, one
 * section at a time), as tenants' profiles carry them (payload plists), and
 * the merged result with provenance as JSON. docs/rules.md has the schema.
 *
 * Ownership: the domain lists these functions put into an lmdm_rules_t are
 * heap copies owned by it (pointer array and strings in one block per list);
 * release them with lmdm_rules_free(). Nothing else in it is allocated.
 * WARNING: give these functions (and lmdm_rules_free) only an lmdm_rules_t
 * that starts zeroed or was filled by them: they free the domain lists they
 * replace, and a list that points at someone else's memory would be freed.
 *
 * Thread rules: no state; safe on any thread. */
#ifndef LMDM_RULES_JSON_H
#define LMDM_RULES_JSON_H

#include <jansson.h>

#include "lmdm/common.h"
#include "lmdm/rules.h"

#define LMDM_RULES_MAX_DOMAIN_LEN 253 /* characters of one domain */
#define LMDM_RULES_MAX_LIST_INPUT 256 /* domains of one list from one tenant */
#define LMDM_RULES_MAX_CROSS_SITE 10  /* Apple: CrossSiteTrackingPreventionRelaxedDomains holds up to 10 */

/** Read one section of a tenant's rules from JSON: section is "passcode",
 * "encryption", "restrictions" or "domains". The section replaces what `out`
 * held for that section (a PUT); other sections are left as they are, so
 * several sections can be read into one lmdm_rules_t. On error `out` is
 * unchanged and err says which key and why: an unknown key (named), a wrong
 * type, a value out of range ("minLength: 40 is out of range 0..16"),
 * maxFailedAttempts (refused: it is a wipe trigger), a restriction that is
 * not a managed-data key, a domain that is not plausible.
 *
 *   passcode      {"requirePasscode": true, "minLength": 8, ...}  (lmdm_rule_keys())
 *   encryption    {"required": true}
 *   restrictions  {"allowOpenFromManagedToUnmanaged": false, ...}
 *   domains       {"EmailDomains": [...], "WebDomains": [...],
 *                  "SafariPasswordAutoFillDomains": [...],
 *                  "CrossSiteTrackingPreventionRelaxedDomains": [...]}
 *                 each at most LMDM_RULES_MAX_LIST_INPUT domains (the last
 *                 at most 10, Apple's limit), each a host name (letters,
 *                 digits, '-', dots; stored in lower case) with an optional
 *                 "*." in front, and for web lists an optional http(s)://,
 *                 :port and /path.
 * Returns 0 or LMDM_ERR_INVALID. */
int lmdm_rules_from_json(const char *section, json_t *obj, lmdm_rules_t *out, char *err,
                         size_t errlen) LMDM_MUSTCHECK;

/** One section of r as JSON (the shape lmdm_rules_from_json reads): only the
 * keys r sets; for "domains" only the non-empty lists. New reference, or NULL
 * for an unknown section. */
json_t *lmdm_rules_section_to_json(const lmdm_rules_t *r, const char *section);

/** Turn a payload taken out of a tenant's profile (the payload dictionary as
 * an XML plist, untrusted) into the same model:
 *   com.apple.mobiledevice.passwordpolicy  passcode keys (forcePIN -> requirePasscode, ...)
 *   com.apple.applicationaccess            managed-data keys only; any other key is an error
 *   com.apple.MCX.FileVault2               Enable On/Off -> encryption.required; recovery-key
 *                                          escrow keys (Certificate, Username, ...) are an error
 *   com.apple.domains                      the four domain lists
 * Payload* keys are ignored. Values are combined with what `out` already
 * holds by each key's combine rule, and domains appended, so the payloads of
 * one profile can be collected into one lmdm_rules_t. On error `out` is
 * unchanged. Returns 0 or LMDM_ERR_INVALID. */
int lmdm_rules_from_payload(const char *payload_type, const char *payload_plist_xml, size_t len,
                            lmdm_rules_t *out, char *err, size_t errlen) LMDM_MUSTCHECK;

/** Free the domain lists the functions above put into r and clear them. */
void lmdm_rules_free(lmdm_rules_t *r);

/** The merged result with provenance:
 * {"passcode": {"minLength": {"value": 8, "required_by": ["St. Mary's"],
 *   "plain": "a passcode of at least 8 characters"}, ...},
 *  "encryption": {...}, "restrictions": {...},
 *  "domains": {"WebDomains": [{"domain": "x", "from": ["St. Mary's"]}]},
 *  "truncated": false}
 * input_names[i] names input i of the merge (n of them); a missing name is
 * written as "input <i>". New reference. */
json_t *lmdm_merged_to_json(const lmdm_merged_t *m, const char *const *input_names, size_t n);

/** "passcode", "encryption", "restrictions"; the API name of a domain list. */
const char *lmdm_rules_section_name(lmdm_rule_section_t s);
const char *lmdm_rules_domain_list_name(lmdm_domain_list_t l);

#endif
