-- 0004: every policy decision on a tenant command is recorded (the audit
-- issue turns these records into a tamper-evident ledger), and the context
-- policy/ needs to decide: the device's platform and enrollment type, and
-- whose apps and profiles are on it.

-- Operator setting: this tenant's EraseDevice means "retire" (remove only
-- its own apps and profiles, end its enrollment) instead of being refused.
ALTER TABLE tenants ADD COLUMN wipe_as_retire boolean NOT NULL DEFAULT false;

CREATE TABLE decisions (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants (id),
    enrollment_id   bigint NOT NULL REFERENCES enrollments (id),
    request_type    text NOT NULL,
    decision        text NOT NULL CHECK (decision IN ('allow', 'scope', 'merge', 'block', 'retire')),
    reason          text,
    payload_index   integer,
    payload_type    text,
    tenant_command_uuid text,
    command_id      bigint REFERENCES commands (id),
    detail          jsonb NOT NULL DEFAULT '{}',   -- e.g. the merged payloads, for the merge machinery
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decisions_enrollment ON decisions (enrollment_id, id);

-- What policy/ needs for one tenant command: code 'ok', 'not_found' or
-- 'gone'; the device's platform ('macos' when its model says Mac, else
-- 'ios') and enrollment type; this tenant's apps and profiles and the other
-- active tenants' on the device, one per line.
CREATE FUNCTION tenant_policy_context(p_tenant bigint, p_pseudonym text,
                                      OUT code text, OUT platform text, OUT user_enrollment boolean,
                                      OUT apps text, OUT profiles text, OUT other_apps text, OUT other_profiles text,
                                      OUT wipe_as_retire boolean)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    e enrollments%ROWTYPE;
    d devices%ROWTYPE;
BEGIN
    SELECT * INTO e FROM enrollments WHERE pseudonym = p_pseudonym AND tenant_id = p_tenant;
    IF NOT FOUND THEN code := 'not_found'; RETURN; END IF;
    IF e.state <> 'active' THEN code := 'gone'; RETURN; END IF;
    SELECT * INTO d FROM devices WHERE id = e.device_id;
    code := 'ok';
    platform := CASE WHEN coalesce(d.info ->> 'ProductName', d.info ->> 'Model', '') ~* '^(mac|imac)' THEN 'macos'
                     ELSE 'ios' END;
    user_enrollment := d.enrollment_type = 'user';
    SELECT t.wipe_as_retire INTO wipe_as_retire FROM tenants t WHERE t.id = p_tenant;
    SELECT string_agg(identifier, E'\n') FILTER (WHERE kind = 'app'),
           string_agg(identifier, E'\n') FILTER (WHERE kind = 'profile')
      INTO apps, profiles FROM entities WHERE enrollment_id = e.id;
    SELECT string_agg(x.identifier, E'\n') FILTER (WHERE x.kind = 'app'),
           string_agg(x.identifier, E'\n') FILTER (WHERE x.kind = 'profile')
      INTO other_apps, other_profiles
      FROM entities x JOIN enrollments o ON o.id = x.enrollment_id
     WHERE o.device_id = e.device_id AND o.id <> e.id AND o.state = 'active';
END $$;

-- A decision that queues nothing (block, merge). Returns the decision id.
CREATE FUNCTION decision_record(p_tenant bigint, p_pseudonym text, p_request_type text, p_decision text,
                                p_reason text, p_payload_index integer, p_payload_type text, p_tenant_uuid text,
                                p_detail jsonb) RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO decisions (tenant_id, enrollment_id, request_type, decision, reason, payload_index, payload_type,
                           tenant_command_uuid, detail)
    SELECT p_tenant, e.id, p_request_type, p_decision, p_reason, p_payload_index, p_payload_type, p_tenant_uuid,
           coalesce(p_detail, '{}')
      FROM enrollments e WHERE e.pseudonym = p_pseudonym AND e.tenant_id = p_tenant
    RETURNING id
$$;

-- tenant_enqueue (0003) and the decision that allowed it, in one transaction.
CREATE FUNCTION tenant_enqueue_decided(p_tenant bigint, p_pseudonym text, p_api_id uuid, p_uuid uuid,
                                       p_tenant_uuid text, p_request_type text, p_payload text,
                                       p_entity_kind text, p_entity text, p_entity_op text, p_no_push boolean,
                                       p_decision text, p_detail jsonb,
                                       OUT code text, OUT created_at text)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    r := tenant_enqueue(p_tenant, p_pseudonym, p_api_id, p_uuid, p_tenant_uuid, p_request_type, p_payload,
                        p_entity_kind, p_entity, p_entity_op, p_no_push);
    code := r.code;
    created_at := r.created_at;
    IF code = 'ok' THEN
        INSERT INTO decisions (tenant_id, enrollment_id, request_type, decision, tenant_command_uuid, command_id,
                               detail)
        SELECT c.tenant_id, c.enrollment_id, c.request_type, p_decision, c.tenant_command_uuid, c.id,
               coalesce(p_detail, '{}')
          FROM commands c WHERE c.api_id = p_api_id;
    END IF;
END $$;

-- A tenant's EraseDevice configured as retire: the tenant leaves the device
-- (enrollment_remove: exactly its apps and profiles are removed) and the
-- decision is recorded with it. Codes as enrollment_remove, or 'not_found'.
CREATE FUNCTION tenant_retire(p_tenant bigint, p_pseudonym text, p_tenant_uuid text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    eid bigint;
    code text;
BEGIN
    SELECT id INTO eid FROM enrollments WHERE tenant_id = p_tenant AND pseudonym = p_pseudonym;
    IF eid IS NULL THEN RETURN 'not_found'; END IF;
    code := enrollment_remove(eid, 'tenant');
    IF code = 'ok' THEN
        INSERT INTO decisions (tenant_id, enrollment_id, request_type, decision, reason, tenant_command_uuid)
        VALUES (p_tenant, eid, 'EraseDevice', 'retire', 'wipe_as_retire', p_tenant_uuid);
    END IF;
    RETURN code;
END $$;
