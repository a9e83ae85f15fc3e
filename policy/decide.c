/* The decision for one tenant command: the table row of its RequestType, then
 * the key-level rules, the payloads of a profile one by one, and ownership of
 * the entities it names. Reads top to bottom like the rules it applies. */
#include <string.h>

#include "lmdm/policy.h"

static lmdm_policy_verdict_t verdict(lmdm_policy_kind_t kind, const char *reason, const char *explain)
{
    return (lmdm_policy_verdict_t){.kind = kind, .reason = reason, .explain = explain, .payload_index = -1};
}

static lmdm_policy_verdict_t block(const char *reason, const char *explain)
{
    return verdict(LMDM_POLICY_BLOCK, reason, explain);
}

static int has(lmdm_strs_t list, const char *s)
{
    for (size_t i = 0; s && i < list.n; i++)
        if (strcmp(list.v[i], s) == 0) return 1;
    return 0;
}

static unsigned ue_bit(const lmdm_policy_device_t *dev)
{
    if (!dev || !dev->user_enrollment) return 0;
    return dev->platform == LMDM_PLATFORM_MACOS ? LMDM_UE_MACOS : LMDM_UE_IOS;
}

static const char ue_explain[] = "Apple does not allow this on a device enrolled with User Enrollment";

/* ---- payloads of a profile ---- */

static int is_certificate(const char *type)
{
    static const char *const certs[] = {
        "com.apple.ADCertificate.managed", "com.apple.security.acme", "com.apple.security.certificatepreference",
        "com.apple.security.identitypreference", "com.apple.security.pem", "com.apple.security.pkcs1",
        "com.apple.security.pkcs12", "com.apple.security.scep", "com.apple.security.wapi-identity",
    };
    for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++)
        if (strcmp(certs[i], type) == 0) return 1;
    return 0;
}

static lmdm_policy_verdict_t payload_block(size_t i, const char *type, const char *reason, const char *explain)
{
    lmdm_policy_verdict_t v = block(reason, explain);
    v.payload_index = (int)i;
    v.payload_type = type;
    return v;
}

/* Every payload judged; one that is refused refuses the whole profile. */
static lmdm_policy_verdict_t decide_profile(const lmdm_policy_command_t *cmd, const lmdm_policy_device_t *dev)
{
    size_t merges = 0, others = 0, certs = 0;
    if (cmd->npayloads == 0) return block("empty_profile", "the profile has no payloads");
    for (size_t i = 0; i < cmd->npayloads; i++) {
        const lmdm_policy_payload_t *p = &cmd->payloads[i];
        const lmdm_policy_rule_t *r = lmdm_policy_payload_rule(p->type);
        if (!r) return payload_block(i, p->type, "unknown_payload", "the broker has no rule for this payload, so it is refused");
        if (r->kind == LMDM_POLICY_BLOCK) return payload_block(i, p->type, r->reason, r->explain);
        if (r->ue_forbidden & ue_bit(dev))
            return payload_block(i, p->type, "forbidden_under_user_enrollment", ue_explain);
        if (strcmp(p->type, "com.apple.applicationaccess") == 0) {
            for (size_t k = 0; k < p->keys.n; k++)
                if (!lmdm_policy_managed_data_key(p->keys.v[k]))
                    return payload_block(i, p->type, "restrictions",
                                         "only the managed-data restrictions (managed open-in, pasteboard, "
                                         "contacts, cloud sync) may be asked for; device-wide restrictions are refused");
        }
        if (r->kind == LMDM_POLICY_MERGE) merges++;
        else if (is_certificate(p->type)) certs++;
        else others++;
    }
    /* Certificates come only with what needs them. */
    if (certs > 0 && others == 0)
        return block("certificate_alone",
                     "certificates are accepted only with the organization's own accounts or per-app VPN that use them");
    lmdm_policy_verdict_t v;
    if (others + certs == 0)
        v = verdict(LMDM_POLICY_MERGE, NULL, "every payload is a device-wide rule: it is merged, not installed as is");
    else
        v = verdict(LMDM_POLICY_SCOPE, NULL, "installs the organization's configuration; every payload was judged");
    v.merge_payloads = merges;
    return v;
}

/* ---- ownership ---- */

static lmdm_policy_verdict_t not_owned(void)
{
    return block("not_owned", "the organization can act only on its own apps and profiles");
}

static lmdm_policy_verdict_t owned_by_other(void)
{
    return block("entity_owned_by_other_tenant", "another organization manages this app or profile on the device");
}

static lmdm_policy_verdict_t check_owner(const lmdm_policy_command_t *cmd, const lmdm_policy_entities_t *ent,
                                         lmdm_policy_verdict_t v)
{
    const char *rt = cmd->request_type;
    if (!ent) return v;
    if (strcmp(rt, "InstallApplication") == 0 && has(ent->other_apps, cmd->identifier)) return owned_by_other();
    if (strcmp(rt, "RemoveApplication") == 0 && !has(ent->apps, cmd->identifier)) return not_owned();
    if (strcmp(rt, "RemoveProfile") == 0 && !has(ent->profiles, cmd->identifier)) return not_owned();
    for (size_t i = 0; i < cmd->identifiers.n; i++)
        if (!has(ent->apps, cmd->identifiers.v[i])) return not_owned();
    for (size_t i = 0; i < cmd->settings_ids.n; i++)
        if (!has(ent->apps, cmd->settings_ids.v[i])) return not_owned();
    return v;
}

/* ---- the command ---- */

static int needs_identifiers(const char *rt)
{
    return strcmp(rt, "ManagedApplicationAttributes") == 0 || strcmp(rt, "ManagedApplicationConfiguration") == 0 ||
           strcmp(rt, "ManagedApplicationFeedback") == 0 || strcmp(rt, "ValidateApplications") == 0;
}

lmdm_policy_verdict_t lmdm_policy_decide(const lmdm_policy_command_t *cmd, const lmdm_policy_device_t *dev,
                                         const lmdm_policy_entities_t *ent)
{
    const char *rt = cmd ? cmd->request_type : NULL;
    const lmdm_policy_rule_t *r = lmdm_policy_command_rule(rt);
    if (!r) return block("unknown_command", "the broker has no rule for this command, so it is refused");
    if (strcmp(rt, "EraseDevice") == 0 && dev && dev->wipe_as_retire) {
        lmdm_policy_verdict_t v = verdict(LMDM_POLICY_SCOPE, NULL,
                                          "retire: the organization's own apps and profiles are removed and it leaves "
                                          "the device; nothing else is erased");
        v.retire = 1;
        return v;
    }
    if (r->kind == LMDM_POLICY_BLOCK) return block(r->reason, r->explain);
    if (r->ue_forbidden & ue_bit(dev)) return block("forbidden_under_user_enrollment", ue_explain);
    lmdm_policy_verdict_t v = verdict(r->kind, NULL, r->explain);

    if (strcmp(rt, "InstallApplication") == 0) {
        if (cmd->change_management_state)
            return block("takeover", "taking over an app the owner installed is refused");
        if (!cmd->identifier || !*cmd->identifier)
            return block("identifier_required", "InstallApplication must name the app's bundle id (Identifier)");
    }
    if ((strcmp(rt, "RemoveApplication") == 0 || strcmp(rt, "RemoveProfile") == 0) &&
        (!cmd->identifier || !*cmd->identifier))
        return block("identifier_required", "the command must name what it removes (Identifier)");
    if (needs_identifiers(rt) && (!cmd->has_identifiers || cmd->identifiers.n == 0))
        return block("identifiers_required", "the command must list the organization's own apps (Identifiers)");
    if (strcmp(rt, "DeviceInformation") == 0) {
        size_t kept = 0;
        for (size_t i = 0; i < cmd->queries.n; i++) kept += (size_t)lmdm_policy_query_allowed(cmd->queries.v[i]);
        if (kept == 0) return block("inventory", "device details (serial number, phone number, ...) stay private");
        v.kept_queries = kept;
    }
    if (strcmp(rt, "Settings") == 0) {
        if (cmd->settings_items.n == 0) return block("settings_item", "no settings item");
        for (size_t i = 0; i < cmd->settings_items.n; i++) {
            const char *item = cmd->settings_items.v[i];
            if (strcmp(item, "ApplicationAttributes") != 0 && strcmp(item, "ApplicationConfiguration") != 0)
                return block("settings_item", "only settings of the organization's own apps may be changed");
            if (i >= cmd->settings_ids.n || !*cmd->settings_ids.v[i])
                return block("identifier_required", "each settings item must name the organization's app");
        }
    }
    if (strcmp(rt, "InstallProfile") == 0) {
        lmdm_policy_verdict_t pv = decide_profile(cmd, dev);
        if (pv.kind == LMDM_POLICY_BLOCK) return pv;
        v = pv;
    }
    return check_owner(cmd, ent, v);
}

lmdm_policy_decision_t lmdm_policy_decide_command(const char *request_type)
{
    const lmdm_policy_rule_t *r = lmdm_policy_command_rule(request_type);
    if (!r) return block("unknown_command", "the broker has no rule for this command, so it is refused");
    return verdict(r->kind, r->reason, r->explain);
}

const char *lmdm_policy_kind_name(lmdm_policy_kind_t kind)
{
    switch (kind) {
    case LMDM_POLICY_ALLOW: return "allow";
    case LMDM_POLICY_SCOPE: return "scope";
    case LMDM_POLICY_MERGE: return "merge";
    case LMDM_POLICY_BLOCK: return "block";
    }
    return "block";
}
