-- 0008: OS updates (issue 7, docs/osupdate.md). The operator imports OS
-- releases (a feed: `lmdm releases import`, or release_feed_url) and defines
-- rings; each tenant states its requirement (PUT /v1/rules/osupdate); the
-- OS-update planner (broker/osupdate/osupdate_apply.c) turns them, with the
-- device's ring, time zone and its owner's choices, into one plan per device
-- (policy/osupdate.c), stores it here, enforces it (a declaration, or
-- ScheduleOSUpdate) and tells each tenant where its own requirement stands.

CREATE TABLE os_releases (
    platform    text NOT NULL CHECK (platform IN ('iOS', 'macOS')),
    version     text NOT NULL CHECK (version ~ '^[0-9]{1,6}(\.[0-9]{1,6}){0,3}$'),
    build       text NOT NULL DEFAULT '',
    released    date NOT NULL,
    security    boolean NOT NULL DEFAULT false,
    devices     text[] NOT NULL DEFAULT '{}',   -- model identifiers; empty: every device of the platform
    imported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, version)
);

-- Each import, for `lmdm releases list` and the operator's logs.
CREATE TABLE os_release_imports (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    source   text NOT NULL,
    format   text NOT NULL,
    releases integer NOT NULL,
    added    integer NOT NULL,
    changed  integer NOT NULL
);

CREATE TABLE rings (
    name       text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
    delay_days integer NOT NULL CHECK (delay_days BETWEEN 0 AND 365),
    is_default boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX rings_one_default ON rings ((true)) WHERE is_default;

-- A tenant's OS-update requirement (all its enrollments, or one: a
-- ScheduleOSUpdate it sent is folded into one for that enrollment).
CREATE TABLE tenant_osupdate (
    id            bigserial PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants (id),
    enrollment_id bigint REFERENCES enrollments (id),
    rule          jsonb NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tenant_osupdate_one ON tenant_osupdate (tenant_id, coalesce(enrollment_id, 0));

-- The device's plan and its owner's choices.
CREATE TABLE device_osupdate (
    device_id        bigint PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    ring             text REFERENCES rings (name) ON DELETE SET NULL ON UPDATE CASCADE, -- NULL: the default
    timezone         text,                  -- tz database name; NULL: osupdate_timezone
    owner_install_at timestamptz,           -- the owner's choice ...
    owner_target     text,                  -- ... and deferrals_used count for this target
    deferrals_used   integer NOT NULL DEFAULT 0,
    plan             jsonb,                 -- the plan with provenance (owner page, API)
    plan_hash        text,
    state            text NOT NULL DEFAULT 'none',
    enforced         text,                  -- what was last sent to enforce it (see osupdate_store)
    decl             text,                  -- the enforcement declaration (Apple's JSON), NULL: none
    decl_token       text,
    decl_at          timestamptz,
    next_eval        timestamptz,           -- when the plan's state changes next (start, install, deadline)
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX device_osupdate_next ON device_osupdate (next_eval);

-- Devices the planner must plan again. A queue of its own rather than a flag
-- on devices: marking and unmarking then never rewrite a devices row (and
-- its four indexes). `mark` grows with every marking, so the planner removes
-- only the marking it planned from, never one that came in meanwhile.
CREATE SEQUENCE osupdate_mark_seq;
CREATE TABLE osupdate_queue (
    device_id bigint PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    mark      bigint NOT NULL DEFAULT nextval('osupdate_mark_seq')
);
ALTER TABLE enrollments ADD COLUMN osupdate jsonb; -- the tenant's view of its requirement, last told

ALTER TABLE outbox DROP CONSTRAINT outbox_event_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_event_check
    CHECK (event IN ('enrollment.accepted', 'enrollment.removed', 'command.result', 'device.checked_out',
                     'compliance.changed', 'osupdate.changed'));
ALTER TABLE ledger DROP CONSTRAINT ledger_event_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_event_check
    CHECK (event IN ('command', 'command.result', 'enrollment.accepted', 'enrollment.removed',
                     'enrollment.checked_out', 'key.issued', 'key.revoked', 'rules.applied',
                     'osupdate.enforced'));

-- 'iOS' or 'macOS' from the device's model, as 0004's command context does.
CREATE FUNCTION device_platform(p_info jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN coalesce(p_info ->> 'ProductName', p_info ->> 'Model', '') ~* '^(mac|imac)' THEN 'macOS'
                ELSE 'iOS' END
$$;

-- Marking devices for the planner (LISTEN lmdm_osupdate).
-- One device:
CREATE FUNCTION osupdate_mark(p_device bigint) RETURNS void LANGUAGE sql AS $$
    INSERT INTO osupdate_queue (device_id) VALUES (p_device)
    ON CONFLICT (device_id) DO UPDATE SET mark = nextval('osupdate_mark_seq');
    SELECT pg_notify('lmdm_osupdate', '');
$$;

CREATE FUNCTION osupdate_mark_all(p_platform text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    INSERT INTO osupdate_queue (device_id)
    SELECT id FROM devices WHERE state = 'enrolled' AND (p_platform IS NULL OR device_platform(info) = p_platform)
    ON CONFLICT (device_id) DO UPDATE SET mark = nextval('osupdate_mark_seq');
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM pg_notify('lmdm_osupdate', '');
    RETURN n;
END $$;

CREATE FUNCTION enrollments_osupdate_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
        PERFORM osupdate_mark(NEW.device_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER enrollments_osupdate_dirty AFTER INSERT OR UPDATE OF state ON enrollments
    FOR EACH ROW EXECUTE FUNCTION enrollments_osupdate_dirty();

CREATE FUNCTION tenant_osupdate_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r tenant_osupdate%ROWTYPE;
BEGIN
    r := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    INSERT INTO osupdate_queue (device_id)
    SELECT DISTINCT e.device_id FROM enrollments e
     WHERE e.tenant_id = r.tenant_id AND e.state = 'active' AND (r.enrollment_id IS NULL OR e.id = r.enrollment_id)
    ON CONFLICT (device_id) DO UPDATE SET mark = nextval('osupdate_mark_seq');
    PERFORM pg_notify('lmdm_osupdate', '');
    RETURN NULL;
END $$;
CREATE TRIGGER tenant_osupdate_dirty AFTER INSERT OR UPDATE OR DELETE ON tenant_osupdate
    FOR EACH ROW EXECUTE FUNCTION tenant_osupdate_dirty();

CREATE FUNCTION rings_osupdate_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM osupdate_mark_all(NULL);
    RETURN NULL;
END $$;
CREATE TRIGGER rings_osupdate_dirty AFTER INSERT OR UPDATE OR DELETE ON rings
    FOR EACH STATEMENT EXECUTE FUNCTION rings_osupdate_dirty();

-- A device that (re)enrolls, or whose OS version or model changed, is planned anew.
CREATE FUNCTION devices_osupdate_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'enrolled' AND (OLD.state IS DISTINCT FROM 'enrolled'
        OR OLD.info ->> 'OSVersion' IS DISTINCT FROM NEW.info ->> 'OSVersion'
        OR OLD.info ->> 'ProductName' IS DISTINCT FROM NEW.info ->> 'ProductName'
        OR OLD.info -> 'DeclarationTypes' IS DISTINCT FROM NEW.info -> 'DeclarationTypes'
        OR OLD.info -> 'IsSupervised' IS DISTINCT FROM NEW.info -> 'IsSupervised') THEN
        PERFORM osupdate_mark(NEW.id);
    END IF;
    IF NEW.state = 'enrolled' AND OLD.state IS DISTINCT FROM 'enrolled' THEN
        -- a re-enrolled device has no enforcement declaration any more
        UPDATE device_osupdate SET decl = NULL, decl_token = NULL, decl_at = NULL, enforced = NULL
         WHERE device_id = NEW.id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER devices_osupdate_dirty BEFORE UPDATE OF state, info ON devices
    FOR EACH ROW EXECUTE FUNCTION devices_osupdate_dirty();

-- Import releases (p_releases: a JSON array of {platform, version, build,
-- released, security, devices}), all or nothing: rows are added or replaced,
-- never removed (a feed that no longer lists an old release keeps it).
-- Devices of the platforms whose releases changed are planned anew.
-- Returns the import's row: releases, added, changed.
CREATE FUNCTION os_releases_import(p_source text, p_format text, p_releases jsonb,
                                   OUT releases integer, OUT added integer, OUT changed integer)
LANGUAGE plpgsql AS $$
DECLARE
    r jsonb;
    old os_releases%ROWTYPE;
    platforms text[] := '{}';
    p text;
BEGIN
    releases := 0; added := 0; changed := 0;
    FOR r IN SELECT * FROM jsonb_array_elements(p_releases) LOOP
        releases := releases + 1;
        SELECT * INTO old FROM os_releases WHERE platform = r ->> 'platform' AND version = r ->> 'version';
        IF NOT FOUND THEN
            added := added + 1;
        ELSIF old.build IS NOT DISTINCT FROM coalesce(r ->> 'build', '')
              AND old.released = (r ->> 'released')::date AND old.security = (r ->> 'security')::boolean
              AND old.devices = ARRAY(SELECT jsonb_array_elements_text(r -> 'devices')) THEN
            CONTINUE;
        ELSE
            changed := changed + 1;
        END IF;
        INSERT INTO os_releases (platform, version, build, released, security, devices)
        VALUES (r ->> 'platform', r ->> 'version', coalesce(r ->> 'build', ''), (r ->> 'released')::date,
                (r ->> 'security')::boolean, ARRAY(SELECT jsonb_array_elements_text(r -> 'devices')))
        ON CONFLICT (platform, version) DO UPDATE
           SET build = EXCLUDED.build, released = EXCLUDED.released,
               security = os_releases.security OR EXCLUDED.security, -- a feed that does not say (GDMF) never clears it
               devices = EXCLUDED.devices, imported_at = now();
        IF NOT (r ->> 'platform') = ANY (platforms) THEN platforms := platforms || (r ->> 'platform'); END IF;
    END LOOP;
    INSERT INTO os_release_imports (source, format, releases, added, changed)
    VALUES (p_source, p_format, releases, added, changed);
    FOREACH p IN ARRAY platforms LOOP
        PERFORM osupdate_mark_all(p);
    END LOOP;
    PERFORM pg_notify('lmdm_releases', '');
END $$;

-- The planner's inputs for a batch of devices: one row per active
-- enrollment with its requirement (the enrollment's own, else its
-- tenant's; NULL: none), or one row with NULL enrollment for a device
-- without any. Epochs are seconds.
CREATE FUNCTION osupdate_inputs(p_ids bigint[])
RETURNS TABLE (device_id bigint, platform text, enrollment_type text, os_version text, model text,
               supervised boolean, decl_types text, ring text, timezone text, owner_install_at bigint,
               owner_target text, deferrals_used integer, plan_hash text, enforced text, decl_token text,
               enrollment_id bigint, tenant_name text, rule text, state text, mark bigint)
LANGUAGE sql STABLE AS $$
    SELECT d.id, device_platform(d.info), d.enrollment_type, coalesce(d.info ->> 'OSVersion', ''),
           coalesce(d.info ->> 'ProductName', d.info ->> 'Model', ''), (d.info ->> 'IsSupervised')::boolean,
           (d.info -> 'DeclarationTypes')::text,
           o.ring, o.timezone, extract(epoch FROM o.owner_install_at)::bigint, o.owner_target,
           coalesce(o.deferrals_used, 0), o.plan_hash, o.enforced, o.decl_token,
           e.id, t.name, r.rule::text, d.state, q.mark
      FROM devices d
      LEFT JOIN device_osupdate o ON o.device_id = d.id
      LEFT JOIN osupdate_queue q ON q.device_id = d.id
      LEFT JOIN enrollments e ON e.device_id = d.id AND e.state = 'active'
      LEFT JOIN tenants t ON t.id = e.tenant_id
      LEFT JOIN LATERAL (SELECT x.rule FROM tenant_osupdate x
                          WHERE x.tenant_id = e.tenant_id AND (x.enrollment_id IS NULL OR x.enrollment_id = e.id)
                          ORDER BY x.enrollment_id NULLS LAST LIMIT 1) r ON true
     WHERE d.id = ANY (p_ids)
     ORDER BY d.id, e.id
$$;

-- Store one device's plan, in one transaction:
--   p_mark: the queue marking it was planned from (NULL: planned because
--     next_eval came); removed unless the device was marked again since;
--   p_plan / p_hash / p_state / p_next: the plan and when its state changes
--     next;
--   p_views: {enrollment id: the tenant's view}; an enrollment whose view
--     changed gets an osupdate.changed event;
--   p_owner_target: the plan's target; the owner's choice and deferrals are
--     reset when it moved to another target;
--   p_enforce: what enforcing the plan takes now (a key); when it differs
--     from what was last sent: p_decl / p_decl_token (the declaration, NULL
--     to withdraw it) and p_cmd_* (a DeclarativeManagement or
--     ScheduleOSUpdate command, NULL: none) are applied, with a ledger entry
--     per active enrollment.
-- The device's row is written once, and not at all when nothing changed.
-- Returns 'unchanged', 'planned' or 'enforced', or 'gone'.
CREATE FUNCTION osupdate_store(p_device bigint, p_mark bigint, p_plan jsonb, p_hash text, p_state text,
                               p_next bigint, p_views jsonb, p_owner_target text, p_enforce text, p_decl text,
                               p_decl_token text, p_cmd_uuid uuid, p_cmd_type text, p_cmd text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    dstate text;
    o device_osupdate%ROWTYPE;
    e record;
    ch bigint;
    result text := 'unchanged';
    detail text;
    nxt timestamptz := CASE WHEN p_next IS NULL THEN NULL ELSE to_timestamp(p_next) END;
    reset boolean;
    planned boolean;
    enforce boolean;
    declared boolean;
BEGIN
    DELETE FROM osupdate_queue WHERE device_id = p_device AND mark <= p_mark;
    SELECT state INTO dstate FROM devices WHERE id = p_device FOR SHARE;
    IF dstate IS DISTINCT FROM 'enrolled' THEN
        UPDATE device_osupdate SET next_eval = NULL WHERE device_id = p_device AND next_eval IS NOT NULL;
        RETURN 'gone';
    END IF;
    SELECT * INTO o FROM device_osupdate WHERE device_id = p_device FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO device_osupdate (device_id) VALUES (p_device) ON CONFLICT DO NOTHING;
        SELECT * INTO o FROM device_osupdate WHERE device_id = p_device FOR UPDATE;
    END IF;
    reset := o.owner_target IS DISTINCT FROM p_owner_target;
    planned := o.plan_hash IS DISTINCT FROM p_hash;
    enforce := o.enforced IS DISTINCT FROM p_enforce;
    declared := enforce AND o.decl_token IS DISTINCT FROM p_decl_token;
    IF reset OR planned OR enforce OR o.next_eval IS DISTINCT FROM nxt THEN
        UPDATE device_osupdate
           SET owner_install_at = CASE WHEN reset THEN NULL ELSE owner_install_at END,
               deferrals_used = CASE WHEN reset THEN 0 ELSE deferrals_used END,
               owner_target = p_owner_target,
               next_eval = nxt,
               plan = CASE WHEN planned THEN p_plan ELSE plan END,
               plan_hash = p_hash,
               state = p_state,
               updated_at = CASE WHEN planned THEN now() ELSE updated_at END,
               enforced = p_enforce,
               decl = CASE WHEN declared THEN p_decl ELSE decl END,
               decl_token = CASE WHEN declared THEN p_decl_token ELSE decl_token END,
               decl_at = CASE WHEN declared THEN now() ELSE decl_at END
         WHERE device_id = p_device;
    END IF;
    IF planned THEN result := 'planned'; END IF;
    FOR e IN SELECT en.id, en.tenant_id, en.pseudonym, en.osupdate FROM enrollments en
              WHERE en.device_id = p_device AND en.state = 'active' LOOP
        IF p_views ? e.id::text AND e.osupdate IS DISTINCT FROM p_views -> e.id::text THEN
            UPDATE enrollments SET osupdate = p_views -> e.id::text WHERE id = e.id;
            IF e.osupdate IS NOT NULL OR (p_views -> e.id::text ->> 'state') <> 'none' THEN
                INSERT INTO outbox (tenant_id, enrollment_id, event, data)
                VALUES (e.tenant_id, e.id, 'osupdate.changed', jsonb_build_object('osupdate', p_views -> e.id::text));
            END IF;
        END IF;
    END LOOP;
    IF NOT enforce THEN RETURN result; END IF;
    IF p_cmd_type IS NOT NULL THEN
        SELECT id INTO ch FROM channels WHERE device_id = p_device AND user_key = '';
        IF ch IS NOT NULL THEN
            INSERT INTO commands (channel_id, tenant_id, command_uuid, request_type, payload)
            VALUES (ch, 0, p_cmd_uuid, p_cmd_type, p_cmd);
        END IF;
    END IF;
    detail := jsonb_build_object('enforcement', p_enforce, 'target', p_plan -> 'target',
                                 'install_local', p_plan -> 'install_local',
                                 'deadline_local', p_plan -> 'deadline_local',
                                 'mechanism', p_plan -> 'mechanism')::text;
    INSERT INTO ledger (actor_kind, tenant_id, enrollment, event, request_type, detail)
    SELECT 'broker', en.tenant_id, en.pseudonym, 'osupdate.enforced', p_cmd_type, detail
      FROM enrollments en WHERE en.device_id = p_device AND en.state = 'active' ORDER BY en.id;
    IF NOT FOUND THEN
        INSERT INTO ledger (actor_kind, event, request_type, detail)
        VALUES ('broker', 'osupdate.enforced', p_cmd_type, detail);
    END IF;
    RETURN 'enforced';
END $$;

-- A tenant's requirement for all its enrollments (NULL p_rule deletes it):
-- 'ok', 'absent' or 'unknown_ring'.
CREATE FUNCTION tenant_osupdate_put(p_tenant bigint, p_rule jsonb) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF p_rule ? 'latest_ring' AND NOT EXISTS (SELECT 1 FROM rings WHERE name = p_rule ->> 'latest_ring') THEN
        RETURN 'unknown_ring';
    END IF;
    IF p_rule IS NULL THEN
        DELETE FROM tenant_osupdate WHERE tenant_id = p_tenant AND enrollment_id IS NULL;
        RETURN CASE WHEN FOUND THEN 'ok' ELSE 'absent' END;
    END IF;
    INSERT INTO tenant_osupdate (tenant_id, enrollment_id, rule) VALUES (p_tenant, NULL, p_rule)
    ON CONFLICT (tenant_id, coalesce(enrollment_id, 0))
    DO UPDATE SET rule = EXCLUDED.rule, updated_at = now() WHERE tenant_osupdate.rule IS DISTINCT FROM EXCLUDED.rule;
    RETURN 'ok';
END $$;

-- A ScheduleOSUpdate folded into a requirement for one enrollment.
CREATE FUNCTION enrollment_osupdate_put(p_tenant bigint, p_pseudonym text, p_rule jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    eid bigint;
BEGIN
    SELECT id INTO eid FROM enrollments WHERE tenant_id = p_tenant AND pseudonym = p_pseudonym AND state = 'active';
    IF eid IS NULL THEN RETURN 'not_found'; END IF;
    INSERT INTO tenant_osupdate (tenant_id, enrollment_id, rule) VALUES (p_tenant, eid, p_rule)
    ON CONFLICT (tenant_id, coalesce(enrollment_id, 0))
    DO UPDATE SET rule = EXCLUDED.rule, updated_at = now() WHERE tenant_osupdate.rule IS DISTINCT FROM EXCLUDED.rule;
    RETURN 'ok';
END $$;

-- What the tenant sees of one enrollment: its view, as the planner last
-- stored it ('not_found', 'gone' or 'ok').
CREATE FUNCTION tenant_osupdate_view(p_tenant bigint, p_pseudonym text, OUT code text, OUT body text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    e enrollments%ROWTYPE;
BEGIN
    SELECT * INTO e FROM enrollments WHERE tenant_id = p_tenant AND pseudonym = p_pseudonym;
    IF NOT FOUND THEN code := 'not_found'; RETURN; END IF;
    IF e.state <> 'active' THEN code := 'gone'; RETURN; END IF;
    code := 'ok';
    body := coalesce(e.osupdate, '{"state": "none"}'::jsonb)::text;
END $$;

-- DeclarativeManagement status reports: facts the device reported
-- (OSVersion, BuildVersion, ProductName, DeclarationTypes) merged into its
-- details; a changed OS version re-plans (trigger above) and re-merges the
-- rules (a newer version may take the passcode as a declaration).
CREATE FUNCTION mdm_ddm_status(p_key text, p_fpr text, p_facts jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    old_version text;
BEGIN
    r := mdm_device_for(p_key, p_fpr);
    IF r.p_id IS NULL OR p_facts = '{}'::jsonb THEN RETURN r.p_code; END IF;
    SELECT info ->> 'OSVersion' INTO old_version FROM devices WHERE id = r.p_id;
    UPDATE devices SET info = info || p_facts WHERE id = r.p_id AND NOT (info @> p_facts);
    IF old_version IS DISTINCT FROM p_facts ->> 'OSVersion' AND p_facts ? 'OSVersion' THEN
        PERFORM rules_mark_device(r.p_id);
    END IF;
    RETURN r.p_code;
END $$;

-- The DeclarativeManagement check-in (0007's mdm_declarations) with the
-- OS-update enforcement declaration as well.
CREATE FUNCTION mdm_declarations_all(p_key text, p_fpr text, OUT code text, OUT token text, OUT declaration text,
                                     OUT changed_at text, OUT osu_token text, OUT osu_declaration text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r record;
BEGIN
    r := mdm_device_for(p_key, p_fpr);
    code := r.p_code;
    IF r.p_id IS NULL THEN RETURN; END IF;
    SELECT d.ddm_token, d.ddm_passcode, o.decl_token, o.decl,
           to_char(greatest(d.ddm_at, o.decl_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
      INTO token, declaration, osu_token, osu_declaration, changed_at
      FROM devices d LEFT JOIN device_osupdate o ON o.device_id = d.id WHERE d.id = r.p_id;
END $$;

-- The owner's choices (broker/owner/owner_osupdate.c). Each marks the device
-- for the planner. An install time is taken only against the plan the owner
-- judged it on (p_hash): 'changed' when the plan moved meanwhile.
CREATE FUNCTION owner_osupdate_set(p_device bigint, p_hash text, p_target text, p_install bigint,
                                   p_deferral integer) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE device_osupdate
       SET owner_install_at = to_timestamp(p_install),
           deferrals_used = CASE WHEN owner_target IS NOT DISTINCT FROM p_target THEN deferrals_used + p_deferral
                                 ELSE p_deferral END,
           owner_target = p_target,
           plan_hash = NULL -- stale until the planner ran: another choice meanwhile answers 'changed'
     WHERE device_id = p_device AND plan_hash = p_hash;
    IF NOT FOUND THEN RETURN 'changed'; END IF;
    PERFORM osupdate_mark(p_device);
    RETURN 'ok';
END $$;

-- A ring the tenants allow ('ok', 'unknown' or 'not_allowed').
CREATE FUNCTION owner_osupdate_ring(p_device bigint, p_ring text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    delay integer;
    lim integer;
BEGIN
    SELECT delay_days INTO delay FROM rings WHERE name = p_ring;
    IF NOT FOUND THEN RETURN 'unknown'; END IF;
    SELECT coalesce((plan ->> 'latest_ring_delay')::integer, -1) INTO lim FROM device_osupdate WHERE device_id = p_device;
    IF coalesce(lim, -1) >= 0 AND delay > lim THEN RETURN 'not_allowed'; END IF;
    INSERT INTO device_osupdate (device_id, ring) VALUES (p_device, p_ring)
    ON CONFLICT (device_id) DO UPDATE SET ring = EXCLUDED.ring;
    PERFORM osupdate_mark(p_device);
    RETURN 'ok';
END $$;

CREATE FUNCTION owner_osupdate_timezone(p_device bigint, p_zone text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO device_osupdate (device_id, timezone) VALUES (p_device, p_zone)
    ON CONFLICT (device_id) DO UPDATE SET timezone = EXCLUDED.timezone;
    PERFORM osupdate_mark(p_device);
    RETURN 'ok';
END $$;

-- Devices enrolled before this migration are planned once.
SELECT osupdate_mark_all(NULL);
