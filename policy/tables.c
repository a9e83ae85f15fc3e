/* The decision tables: one row for every RequestType (66) and every profile
 * PayloadType (122) in Apple's schema (tests/data/apple-device-management/
 * commands.tsv and profile-payloads.tsv). A test reads those files and fails if
 * a name has no row here, or if the User Enrollment flags disagree with
 * Apple's. Rows are sorted by name (binary search).
 *
 * Columns: name, decision, reason code (block only), where Apple forbids it
 * under User Enrollment (LMDM_UE_IOS | LMDM_UE_MACOS: such a row is blocked on
 * a User Enrollment device of that platform, whatever its decision), and the
 * rationale in plain words. */
#include <stdlib.h>
#include <string.h>

#include "lmdm/policy.h"

static const lmdm_policy_rule_t command_rules[] = {
#include "commands_table.inc"
};

static const lmdm_policy_rule_t payload_rules[] = {
#include "payloads_table.inc"
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const lmdm_policy_rule_t *lmdm_policy_command_rules(size_t *n)
{
    *n = COUNT(command_rules);
    return command_rules;
}

const lmdm_policy_rule_t *lmdm_policy_payload_rules(size_t *n)
{
    *n = COUNT(payload_rules);
    return payload_rules;
}

static int cmp_rule(const void *key, const void *elem)
{
    return strcmp((const char *)key, ((const lmdm_policy_rule_t *)elem)->name);
}

const lmdm_policy_rule_t *lmdm_policy_command_rule(const char *request_type)
{
    if (!request_type) return NULL;
    return bsearch(request_type, command_rules, COUNT(command_rules), sizeof(command_rules[0]), cmp_rule);
}

const lmdm_policy_rule_t *lmdm_policy_payload_rule(const char *payload_type)
{
    if (!payload_type) return NULL;
    return bsearch(payload_type, payload_rules, COUNT(payload_rules), sizeof(payload_rules[0]), cmp_rule);
}
