/* policy/ without a database: `lmdm policy decide`, `lmdm policy table`, the
 * policy fuzz target (see lmdm/policy_json.h). */
#include "lmdm/policy_json.h"

#include <stdlib.h>
#include <string.h>

#include "lmdm/tenant_command.h"

static int strs_from(json_t *a, lmdm_strs_t *out)
{
    if (!a) return 0;
    if (!json_is_array(a)) return -1;
    size_t n = json_array_size(a);
    const char **v = calloc(n + 1, sizeof(char *)); /* freed with the process (CLI) or by the caller (fuzz) */
    if (!v) return -1;
    for (size_t i = 0; i < n; i++) {
        v[i] = json_string_value(json_array_get(a, i));
        if (!v[i]) {
            free(v);
            return -1;
        }
    }
    *out = (lmdm_strs_t){v, n};
    return 0;
}

int lmdm_policy_entities_from_json(json_t *j, lmdm_policy_entities_t *ent)
{
    memset(ent, 0, sizeof(*ent));
    if (!json_is_object(j)) return -1;
    if (strs_from(json_object_get(j, "apps"), &ent->apps) || strs_from(json_object_get(j, "profiles"), &ent->profiles) ||
        strs_from(json_object_get(j, "other_apps"), &ent->other_apps) ||
        strs_from(json_object_get(j, "other_profiles"), &ent->other_profiles))
        return -1;
    return 0;
}

json_t *lmdm_policy_decide_body(const char *content_type, const char *body, size_t len,
                                const lmdm_policy_entities_t *ent, const lmdm_policy_device_t *dev)
{
    lmdm_arena_t *a = lmdm_arena_new(0);
    lmdm_tenant_command_t cmd;
    char err[256];
    json_t *j;
    if (lmdm_tenant_command_parse(content_type, body, len, "00000000-0000-4000-8000-000000000000", NULL, a, &cmd, err,
                                  sizeof(err)) != 0) {
        j = json_pack("{s:s,s:s,s:s}", "decision", "invalid", "error", cmd.error_code, "message", err);
        lmdm_arena_free(a);
        return j;
    }
    lmdm_policy_verdict_t v = lmdm_policy_decide(&cmd.policy, dev, ent);
    j = json_pack("{s:s,s:s,s:s?,s:s}", "request_type", cmd.request_type, "decision", lmdm_policy_kind_name(v.kind),
                  "reason", v.reason, "explain", v.explain);
    if (v.payload_index >= 0) {
        json_object_set_new(j, "payload_index", json_integer(v.payload_index));
        json_object_set_new(j, "payload_type", json_string(v.payload_type));
    }
    if (v.merge_payloads) json_object_set_new(j, "merged_payloads", json_integer((json_int_t)v.merge_payloads));
    if (v.kept_queries) json_object_set_new(j, "kept_queries", json_integer((json_int_t)v.kept_queries));
    if (v.retire) json_object_set_new(j, "retire", json_true());
    if (cmd.entity)
        json_object_set_new(j, "entity", json_pack("{s:s,s:s,s:s}", "kind", cmd.entity_kind, "identifier", cmd.entity,
                                                   "op", cmd.entity_op));
    lmdm_arena_free(a);
    return j;
}

static void print_rules(FILE *out, const char *kind, const lmdm_policy_rule_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *ue = r[i].ue_forbidden == (LMDM_UE_IOS | LMDM_UE_MACOS) ? "ios,macos"
                         : r[i].ue_forbidden == LMDM_UE_IOS                 ? "ios"
                         : r[i].ue_forbidden == LMDM_UE_MACOS               ? "macos"
                                                                            : "-";
        fprintf(out, "%s\t%s\t%s\t%s\t%s\t%s\n", kind, r[i].name, lmdm_policy_kind_name(r[i].kind),
                r[i].reason ? r[i].reason : "-", ue, r[i].explain);
    }
}

void lmdm_policy_print_table(FILE *out)
{
    size_t n;
    fprintf(out, "kind\tname\tdecision\treason\tforbidden_under_user_enrollment\trationale\n");
    const lmdm_policy_rule_t *r = lmdm_policy_command_rules(&n);
    print_rules(out, "command", r, n);
    r = lmdm_policy_payload_rules(&n);
    print_rules(out, "payload", r, n);
}
