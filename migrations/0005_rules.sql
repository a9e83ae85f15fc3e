-- 0005: device-wide rules (DESIGN.md flow 5). Each tenant states its
-- passcode, encryption, managed-data restriction and managed-domain rules
-- (for all its enrollments, or for one, when they came in a profile it sent);
-- the broker merges those of every active tenant of a device to the
-- strictest (policy/rules.c), installs one broker-owned profile when the
-- merged result changes, and reports compliance to each tenant for its own
-- requirements only.

CREATE TABLE tenant_rules (
    id            bigserial PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants (id),
    enrollment_id bigint REFERENCES enrollments (id),   -- NULL: every enrollment of the tenant
    section       text NOT NULL CHECK (section IN ('passcode', 'encryption', 'restrictions', 'domains')),
    rules         jsonb NOT NULL,                       -- the section's JSON, validated by the broker
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tenant_rules_one ON tenant_rules (tenant_id, coalesce(enrollment_id, 0), section);

ALTER TABLE devices
    ADD COLUMN rules_dirty    boolean NOT NULL DEFAULT false, -- the merge must be recomputed
    ADD COLUMN rules_hash     text,                            -- content hash of the broker profile installed
    ADD COLUMN rules_merged   jsonb,                           -- merged result with provenance
    ADD COLUMN security_dirty boolean NOT NULL DEFAULT false, -- a SecurityInfo answer awaits evaluation
    ADD COLUMN security       jsonb,                           -- the filtered SecurityInfo facts
    ADD COLUMN security_at    timestamptz;
CREATE INDEX devices_rules_dirty ON devices (id) WHERE rules_dirty OR security_dirty;

ALTER TABLE enrollments ADD COLUMN compliance jsonb;          -- per requirement: met | unmet | unknown

ALTER TABLE outbox DROP CONSTRAINT outbox_event_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_event_check
    CHECK (event IN ('enrollment.accepted', 'enrollment.removed', 'command.result', 'device.checked_out',
                     'compliance.changed'));

-- Marking devices for the merge. The applier (LISTEN lmdm_rules) takes it
-- from there.
CREATE FUNCTION rules_mark_device(p_device bigint) RETURNS void LANGUAGE sql AS $$
    UPDATE devices SET rules_dirty = true WHERE id = p_device AND NOT rules_dirty;
    SELECT pg_notify('lmdm_rules', '');
$$;

CREATE FUNCTION enrollments_rules_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
        PERFORM rules_mark_device(NEW.device_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER enrollments_rules_dirty AFTER INSERT OR UPDATE OF state ON enrollments
    FOR EACH ROW EXECUTE FUNCTION enrollments_rules_dirty();

CREATE FUNCTION tenant_rules_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r tenant_rules%ROWTYPE;
BEGIN
    r := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    UPDATE devices d SET rules_dirty = true
      FROM enrollments e
     WHERE e.device_id = d.id AND e.tenant_id = r.tenant_id AND e.state = 'active'
       AND (r.enrollment_id IS NULL OR e.id = r.enrollment_id) AND NOT d.rules_dirty;
    PERFORM pg_notify('lmdm_rules', '');
    RETURN NULL;
END $$;
CREATE TRIGGER tenant_rules_dirty AFTER INSERT OR UPDATE OR DELETE ON tenant_rules
    FOR EACH ROW EXECUTE FUNCTION tenant_rules_dirty();

-- A device that (re)enrolls has no broker profile yet.
CREATE FUNCTION devices_rules_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'enrolled' AND OLD.state IS DISTINCT FROM 'enrolled' THEN
        NEW.rules_hash := NULL;
        NEW.rules_dirty := true;
        PERFORM pg_notify('lmdm_rules', '');
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER devices_rules_reset BEFORE UPDATE OF state ON devices
    FOR EACH ROW EXECUTE FUNCTION devices_rules_reset();

-- The device answered the broker's SecurityInfo: compliance is due.
CREATE FUNCTION commands_security_answered() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.tenant_id = 0 AND NEW.request_type = 'SecurityInfo' AND NEW.state = 'acknowledged'
       AND OLD.state IS DISTINCT FROM 'acknowledged' THEN
        UPDATE devices SET security_dirty = true
         WHERE id = (SELECT device_id FROM channels WHERE id = NEW.channel_id);
        PERFORM pg_notify('lmdm_rules', '');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER commands_security_answered AFTER UPDATE OF state ON commands
    FOR EACH ROW EXECUTE FUNCTION commands_security_answered();

-- A tenant's rule for one section (all its enrollments). Replaces the
-- previous one; NULL p_rules deletes it. Returns 'ok' or 'absent' (delete of
-- nothing).
CREATE FUNCTION tenant_rules_put(p_tenant bigint, p_section text, p_rules jsonb) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF p_rules IS NULL THEN
        DELETE FROM tenant_rules WHERE tenant_id = p_tenant AND enrollment_id IS NULL AND section = p_section;
        RETURN CASE WHEN FOUND THEN 'ok' ELSE 'absent' END;
    END IF;
    INSERT INTO tenant_rules (tenant_id, enrollment_id, section, rules) VALUES (p_tenant, NULL, p_section, p_rules)
    ON CONFLICT (tenant_id, coalesce(enrollment_id, 0), section)
    DO UPDATE SET rules = EXCLUDED.rules, updated_at = now()
    WHERE tenant_rules.rules IS DISTINCT FROM EXCLUDED.rules;
    RETURN 'ok';
END $$;

-- A rule that came in a tenant's profile, for that enrollment only.
CREATE FUNCTION enrollment_rules_put(p_tenant bigint, p_pseudonym text, p_section text, p_rules jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    eid bigint;
BEGIN
    SELECT id INTO eid FROM enrollments WHERE tenant_id = p_tenant AND pseudonym = p_pseudonym AND state = 'active';
    IF eid IS NULL THEN RETURN 'not_found'; END IF;
    INSERT INTO tenant_rules (tenant_id, enrollment_id, section, rules) VALUES (p_tenant, eid, p_section, p_rules)
    ON CONFLICT (tenant_id, coalesce(enrollment_id, 0), section)
    DO UPDATE SET rules = EXCLUDED.rules, updated_at = now()
    WHERE tenant_rules.rules IS DISTINCT FROM EXCLUDED.rules;
    RETURN 'ok';
END $$;

-- The rules in force for each active enrollment of a device: per section,
-- the enrollment's own rule if it has one, else its tenant's.
CREATE FUNCTION rules_inputs(p_device bigint, OUT enrollment_id bigint, OUT tenant_name text, OUT section text,
                             OUT rules text)
RETURNS SETOF record LANGUAGE sql STABLE AS $$
    SELECT DISTINCT ON (e.id, r.section) e.id, t.name, r.section, r.rules::text
      FROM enrollments e
      JOIN tenants t ON t.id = e.tenant_id
      JOIN tenant_rules r ON r.tenant_id = e.tenant_id AND (r.enrollment_id IS NULL OR r.enrollment_id = e.id)
     WHERE e.device_id = p_device AND e.state = 'active'
     ORDER BY e.id, r.section, r.enrollment_id NULLS LAST
$$;

-- Record the merge of one device and queue what it needs, in one
-- transaction: p_profile (the broker profile's InstallProfile command) when
-- the hash changed, p_remove (RemoveProfile) when nothing is required any
-- more and a profile was installed, p_security (SecurityInfo) after either.
-- Returns 'unchanged', 'installed', 'removed' or 'gone' (device not enrolled).
CREATE FUNCTION rules_apply(p_device bigint, p_hash text, p_merged jsonb,
                            p_profile_uuid uuid, p_profile text, p_remove_uuid uuid, p_remove text,
                            p_security_uuid uuid, p_security text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    d devices%ROWTYPE;
    ch bigint;
    result text;
BEGIN
    SELECT * INTO d FROM devices WHERE id = p_device FOR UPDATE;
    SELECT id INTO ch FROM channels WHERE device_id = p_device AND user_key = '';
    IF d.state <> 'enrolled' OR ch IS NULL THEN
        UPDATE devices SET rules_dirty = false WHERE id = p_device;
        RETURN 'gone';
    END IF;
    IF d.rules_hash IS NOT DISTINCT FROM p_hash THEN
        UPDATE devices SET rules_dirty = false, rules_merged = p_merged WHERE id = p_device;
        RETURN 'unchanged';
    END IF;
    IF p_hash IS NULL THEN
        INSERT INTO commands (channel_id, tenant_id, command_uuid, request_type, payload)
        VALUES (ch, 0, p_remove_uuid, 'RemoveProfile', p_remove);
        result := 'removed';
    ELSE
        INSERT INTO commands (channel_id, tenant_id, command_uuid, request_type, payload)
        VALUES (ch, 0, p_profile_uuid, 'InstallProfile', p_profile);
        result := 'installed';
    END IF;
    INSERT INTO commands (channel_id, tenant_id, command_uuid, request_type, payload)
    VALUES (ch, 0, p_security_uuid, 'SecurityInfo', p_security);
    UPDATE devices SET rules_dirty = false, rules_hash = p_hash, rules_merged = p_merged WHERE id = p_device;
    RETURN result;
END $$;

-- The device's latest answer to the broker's SecurityInfo, and whether the
-- broker profile it carries was installed (acknowledged) before it.
CREATE FUNCTION security_latest(p_device bigint, OUT result text, OUT profile_installed boolean)
LANGUAGE sql STABLE AS $$
    SELECT s.result,
           d.rules_hash IS NOT NULL AND EXISTS (
               SELECT 1 FROM commands i
                WHERE i.channel_id = s.channel_id AND i.tenant_id = 0 AND i.request_type = 'InstallProfile'
                  AND i.state = 'acknowledged' AND i.id < s.id
                  AND i.id = (SELECT max(j.id) FROM commands j WHERE j.channel_id = s.channel_id
                                 AND j.tenant_id = 0 AND j.request_type IN ('InstallProfile', 'RemoveProfile')))
      FROM commands s JOIN channels c ON c.id = s.channel_id JOIN devices d ON d.id = c.device_id
     WHERE c.device_id = p_device AND c.user_key = '' AND s.tenant_id = 0 AND s.request_type = 'SecurityInfo'
       AND s.state = 'acknowledged'
     ORDER BY s.id DESC LIMIT 1
$$;

-- Store the device's security facts and each enrollment's compliance
-- (p_compliance: {enrollment id: {section: state}}); an enrollment whose
-- compliance changed gets a compliance.changed event.
CREATE FUNCTION compliance_store(p_device bigint, p_security jsonb, p_compliance jsonb) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    e record;
    n integer := 0;
BEGIN
    UPDATE devices SET security = p_security, security_at = now(), security_dirty = false WHERE id = p_device;
    FOR e IN SELECT en.id, en.tenant_id, en.compliance FROM enrollments en
              WHERE en.device_id = p_device AND en.state = 'active' LOOP
        IF p_compliance ? e.id::text AND e.compliance IS DISTINCT FROM p_compliance -> e.id::text THEN
            UPDATE enrollments SET compliance = p_compliance -> e.id::text WHERE id = e.id;
            INSERT INTO outbox (tenant_id, enrollment_id, event, data)
            VALUES (e.tenant_id, e.id, 'compliance.changed', jsonb_build_object('compliance', p_compliance -> e.id::text));
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END $$;

-- What the tenant sees: its own requirements (per section) and their state.
CREATE FUNCTION tenant_compliance(p_tenant bigint, p_pseudonym text, OUT code text, OUT body text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    e enrollments%ROWTYPE;
    d devices%ROWTYPE;
BEGIN
    SELECT * INTO e FROM enrollments WHERE tenant_id = p_tenant AND pseudonym = p_pseudonym;
    IF NOT FOUND THEN code := 'not_found'; RETURN; END IF;
    IF e.state <> 'active' THEN code := 'gone'; RETURN; END IF;
    SELECT * INTO d FROM devices WHERE id = e.device_id;
    code := 'ok';
    body := jsonb_build_object(
        'enrollment_id', e.pseudonym,
        'requirements', coalesce((SELECT jsonb_object_agg(x.section, jsonb_build_object(
                                        'rule', x.rules,
                                        'state', coalesce(e.compliance ->> x.section, 'unknown')))
                                    FROM (SELECT DISTINCT ON (r.section) r.section, r.rules FROM tenant_rules r
                                           WHERE r.tenant_id = p_tenant AND (r.enrollment_id IS NULL OR r.enrollment_id = e.id)
                                           ORDER BY r.section, r.enrollment_id NULLS LAST) x), '{}'),
        'checked_at', lmdm_ts(d.security_at))::text;
END $$;

-- The device-wide payloads a tenant's profile carried, as rules for that
-- enrollment: p_rules is {section: rules}.
CREATE FUNCTION enrollment_rules_put_many(p_tenant bigint, p_pseudonym text, p_rules jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    k text;
    code text := 'ok';
BEGIN
    FOR k IN SELECT jsonb_object_keys(p_rules) LOOP
        code := enrollment_rules_put(p_tenant, p_pseudonym, k, p_rules -> k);
        IF code <> 'ok' THEN RETURN code; END IF;
    END LOOP;
    RETURN code;
END $$;

-- A broker command plist without arguments (SecurityInfo).
CREATE FUNCTION plist_command0(p_uuid uuid, p_type text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT '<?xml version="1.0" encoding="UTF-8"?>' || chr(10)
        || '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">' || chr(10)
        || '<plist version="1.0"><dict><key>Command</key><dict><key>RequestType</key><string>'
        || plist_escape(p_type) || '</string></dict><key>CommandUUID</key><string>'
        || upper(p_uuid::text) || '</string></dict></plist>' || chr(10)
$$;

-- Compliance stays current: devices under the broker's rules whose last
-- SecurityInfo answer is older than p_max_age_s (and none is pending) are
-- asked again. Returns how many were asked.
CREATE FUNCTION security_refresh(p_max_age_s integer, p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d record;
    u uuid;
    n integer := 0;
BEGIN
    FOR d IN SELECT dv.id, ch.id AS channel_id
               FROM devices dv JOIN channels ch ON ch.device_id = dv.id AND ch.user_key = ''
              WHERE dv.state = 'enrolled' AND dv.rules_hash IS NOT NULL AND NOT dv.rules_dirty
                AND (dv.security_at IS NULL OR dv.security_at < now() - make_interval(secs => p_max_age_s))
                AND NOT EXISTS (SELECT 1 FROM commands c WHERE c.channel_id = ch.id AND c.tenant_id = 0
                                   AND c.request_type = 'SecurityInfo' AND c.state IN ('queued', 'sent', 'notnow'))
              ORDER BY dv.security_at NULLS FIRST, dv.id
              LIMIT p_limit LOOP
        u := gen_random_uuid();
        INSERT INTO commands (channel_id, tenant_id, command_uuid, request_type, payload)
        VALUES (d.channel_id, 0, u, 'SecurityInfo', plist_command0(u, 'SecurityInfo'));
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
