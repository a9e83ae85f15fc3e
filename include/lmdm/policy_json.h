/* policy/ for the command line, tests and fuzzing: a command as a tenant sends
 * it (plist or JSON bytes) decided in-process, without a database, and the
 * tables as TSV. */
#ifndef LMDM_POLICY_JSON_H
#define LMDM_POLICY_JSON_H

#include <jansson.h>
#include <stdio.h>

#include "lmdm/policy.h"

/** Decide one command (`content_type` as for the tenant API) against the
 * given entities and device. Returns the decision as a JSON object
 * ({"request_type", "decision", "reason", "explain", "payload_index",
 * "payload_type", "merged_payloads", "entity"}) or, for a body that cannot be
 * parsed, {"decision": "invalid", "error": code, "message": text}. Never NULL
 * except on allocation failure. */
json_t *lmdm_policy_decide_body(const char *content_type, const char *body, size_t len,
                                const lmdm_policy_entities_t *ent, const lmdm_policy_device_t *dev);

/** Parse {"apps": [...], "profiles": [...], "other_apps": [...],
 * "other_profiles": [...]} (every key optional) into `ent`; the strings stay
 * owned by `j`. Returns 0, or -1 for another shape. */
int lmdm_policy_entities_from_json(json_t *j, lmdm_policy_entities_t *ent);

/** Print both tables as TSV: kind (command|payload), name, decision, reason,
 * forbidden under User Enrollment on (ios,macos), rationale. */
void lmdm_policy_print_table(FILE *out);

#endif
