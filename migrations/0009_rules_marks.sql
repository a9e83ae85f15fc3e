-- 0009: no lost rule changes (issue 6's applier). A device's rules_dirty flag
-- was cleared by rules_apply() whatever happened since the applier read the
-- device's inputs: a tenant's rule change landing in between was merged only
-- at the next change. Every marking now also bumps rules_gen; the applier
-- passes the generation it read, and rules_apply_gen()/rules_apply_all_gen()
-- mark the device again when it moved on meanwhile. (A marking during the
-- store itself waits for rules_apply's row lock and lands after it.)

ALTER TABLE devices ADD COLUMN rules_gen bigint NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION rules_mark_device(p_device bigint) RETURNS void LANGUAGE sql AS $$
    UPDATE devices SET rules_dirty = true, rules_gen = rules_gen + 1 WHERE id = p_device;
    SELECT pg_notify('lmdm_rules', '');
$$;

CREATE OR REPLACE FUNCTION tenant_rules_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r tenant_rules%ROWTYPE;
BEGIN
    r := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    UPDATE devices d SET rules_dirty = true, rules_gen = d.rules_gen + 1
      FROM enrollments e
     WHERE e.device_id = d.id AND e.tenant_id = r.tenant_id AND e.state = 'active'
       AND (r.enrollment_id IS NULL OR e.id = r.enrollment_id);
    PERFORM pg_notify('lmdm_rules', '');
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION devices_rules_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'enrolled' AND OLD.state IS DISTINCT FROM 'enrolled' THEN
        NEW.rules_hash := NULL;
        NEW.rules_dirty := true;
        NEW.rules_gen := NEW.rules_gen + 1;
        PERFORM pg_notify('lmdm_rules', '');
    END IF;
    RETURN NEW;
END $$;

-- After the store: marked again when the device's generation is no longer
-- the one its inputs were read at.
CREATE FUNCTION rules_remark(p_device bigint, p_gen bigint) RETURNS void LANGUAGE sql AS $$
    UPDATE devices SET rules_dirty = true WHERE id = p_device AND rules_gen <> p_gen AND NOT rules_dirty;
$$;

CREATE FUNCTION rules_apply_gen(p_gen bigint, p_device bigint, p_hash text, p_merged jsonb,
                                p_profile_uuid uuid, p_profile text, p_remove_uuid uuid, p_remove text,
                                p_security_uuid uuid, p_security text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    result := rules_apply(p_device, p_hash, p_merged, p_profile_uuid, p_profile, p_remove_uuid, p_remove,
                          p_security_uuid, p_security);
    PERFORM rules_remark(p_device, p_gen);
    RETURN result;
END $$;

CREATE FUNCTION rules_apply_all_gen(p_gen bigint, p_device bigint, p_hash text, p_merged jsonb,
                                    p_profile_uuid uuid, p_profile text, p_remove_uuid uuid, p_remove text,
                                    p_security_uuid uuid, p_security text,
                                    p_token text, p_declaration text, p_ddm_uuid uuid, p_ddm text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    result := rules_apply_all(p_device, p_hash, p_merged, p_profile_uuid, p_profile, p_remove_uuid, p_remove,
                              p_security_uuid, p_security, p_token, p_declaration, p_ddm_uuid, p_ddm);
    PERFORM rules_remark(p_device, p_gen);
    RETURN result;
END $$;
