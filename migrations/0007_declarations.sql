-- 0007: the merged passcode rule as a declaration (issue 6, item 5). On a
-- device that supports com.apple.configuration.passcode.settings the rules
-- applier (broker/rules/rules_apply.c) leaves the passcode out of the broker
-- profile and stores one passcode declaration for the device instead; the
-- DeclarativeManagement check-in (broker/mdm/mdm_endpoints.c) serves it with
-- a com.apple.activation.simple activation that references it, and a
-- DeclarativeManagement command makes the device sync when it changes.

ALTER TABLE devices
    ADD COLUMN ddm_token    text,        -- DeclarationsToken of the device's set; NULL: no declaration
    ADD COLUMN ddm_passcode text,        -- the passcode configuration declaration (Apple's JSON)
    ADD COLUMN ddm_at       timestamptz; -- when the set last changed (SyncTokens Timestamp)

-- A device that (re)enrolls has no declaration yet.
CREATE FUNCTION devices_ddm_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'enrolled' AND OLD.state IS DISTINCT FROM 'enrolled' THEN
        NEW.ddm_token := NULL;
        NEW.ddm_passcode := NULL;
        NEW.ddm_at := NULL;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER devices_ddm_reset BEFORE UPDATE OF state ON devices
    FOR EACH ROW EXECUTE FUNCTION devices_ddm_reset();

-- rules_apply (0005) for the profile, then the declaration, in one
-- transaction: when p_token (the set's DeclarationsToken, NULL for an empty
-- set) differs from the stored one, store p_declaration and queue p_ddm (the
-- DeclarativeManagement command that makes the device sync) and, unless the
-- profile step already queued one, p_security (SecurityInfo).
-- Returns rules_apply's answer, with '+declared' when the declaration changed
-- ('declared' alone when the profile did not).
CREATE FUNCTION rules_apply_all(p_device bigint, p_hash text, p_merged jsonb,
                                p_profile_uuid uuid, p_profile text, p_remove_uuid uuid, p_remove text,
                                p_security_uuid uuid, p_security text,
                                p_token text, p_declaration text, p_ddm_uuid uuid, p_ddm text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    result text;
    old_token text;
    ch bigint;
BEGIN
    result := rules_apply(p_device, p_hash, p_merged, p_profile_uuid, p_profile, p_remove_uuid, p_remove,
                          p_security_uuid, p_security);
    IF result = 'gone' THEN RETURN result; END IF;
    SELECT ddm_token INTO old_token FROM devices WHERE id = p_device; -- locked by rules_apply
    IF old_token IS NOT DISTINCT FROM p_token THEN RETURN result; END IF;
    SELECT id INTO ch FROM channels WHERE device_id = p_device AND user_key = '';
    INSERT INTO commands (channel_id, tenant_id, command_uuid, request_type, payload)
    VALUES (ch, 0, p_ddm_uuid, 'DeclarativeManagement', p_ddm);
    IF result = 'unchanged' THEN
        INSERT INTO commands (channel_id, tenant_id, command_uuid, request_type, payload)
        VALUES (ch, 0, p_security_uuid, 'SecurityInfo', p_security);
    END IF;
    UPDATE devices SET ddm_token = p_token, ddm_passcode = p_declaration, ddm_at = now() WHERE id = p_device;
    RETURN CASE WHEN result = 'unchanged' THEN 'declared' ELSE result || '+declared' END;
END $$;

-- The DeclarativeManagement check-in, in one round trip: the device check of
-- mdm_device_for, and the device's declaration set (token NULL: empty set).
CREATE FUNCTION mdm_declarations(p_key text, p_fpr text, OUT code text, OUT token text, OUT declaration text,
                                 OUT changed_at text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r record;
BEGIN
    r := mdm_device_for(p_key, p_fpr);
    code := r.p_code;
    IF r.p_id IS NULL THEN RETURN; END IF;
    SELECT d.ddm_token, d.ddm_passcode, to_char(d.ddm_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
      INTO token, declaration, changed_at
      FROM devices d WHERE d.id = r.p_id;
END $$;

-- Compliance stays current (0005's security_refresh) for devices under a
-- broker declaration as well as under a broker profile.
CREATE OR REPLACE FUNCTION security_refresh(p_max_age_s integer, p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d record;
    u uuid;
    n integer := 0;
BEGIN
    FOR d IN SELECT dv.id, ch.id AS channel_id
               FROM devices dv JOIN channels ch ON ch.device_id = dv.id AND ch.user_key = ''
              WHERE dv.state = 'enrolled' AND (dv.rules_hash IS NOT NULL OR dv.ddm_token IS NOT NULL)
                AND NOT dv.rules_dirty
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

-- Devices already under a broker profile are merged once more: one that
-- takes the declaration gets its passcode moved out of the profile; for the
-- others the hash is unchanged and nothing is queued.
UPDATE devices SET rules_dirty = true WHERE rules_hash IS NOT NULL AND NOT rules_dirty;

-- The ledger records a merged passcode declaration applied, as it records the
-- broker profile (0006 ledger_rules): one entry per active enrollment.
CREATE FUNCTION ledger_declaration() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d text := jsonb_build_object('declarations_token', NEW.ddm_token)::text;
BEGIN
    INSERT INTO ledger (actor_kind, tenant_id, enrollment, event, request_type, detail)
    SELECT 'broker', e.tenant_id, e.pseudonym, 'rules.applied', 'DeclarativeManagement', d
      FROM enrollments e WHERE e.device_id = NEW.id AND e.state = 'active' ORDER BY e.id;
    IF NOT FOUND THEN
        INSERT INTO ledger (actor_kind, event, request_type, detail)
        VALUES ('broker', 'rules.applied', 'DeclarativeManagement', d);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_declaration AFTER UPDATE OF ddm_token ON devices
    FOR EACH ROW WHEN (OLD.ddm_token IS DISTINCT FROM NEW.ddm_token AND NEW.state = 'enrolled')
    EXECUTE FUNCTION ledger_declaration();
