-- 0003: tenants, their API keys, owners, invitations, enrollments, owned
-- entities and the webhook outbox (DESIGN.md flows 2, 3, 4 and 7).
--
-- What a tenant may ever learn of a device goes through the enrollment row:
-- its pseudonym (a keyed hash of tenant and device computed by the broker) is
-- the only device id a tenant sees. Secrets (API keys, owner tokens,
-- invitation codes) are stored only as keyed BLAKE2b hashes (hex); the key is
-- derived from the broker's master secret, which the database never sees.

CREATE TABLE tenants (
    id            bigserial PRIMARY KEY,          -- tenant 0 is the broker itself (never a row)
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    state         text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'disabled')),
    webhook_url   text,
    webhook_format text NOT NULL DEFAULT 'lmdm' CHECK (webhook_format IN ('lmdm', 'micromdm')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);

-- An API key is "lmdm_<id>_<secret>"; id is public (found in logs and the
-- CLI), the whole key is hashed. tenant_id NULL: the operator's global
-- auditor key (reads every tenant's audit entries, nothing else).
CREATE TABLE api_keys (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z2-7]{12}$'),
    tenant_id   bigint REFERENCES tenants (id),
    role        text NOT NULL CHECK (role IN ('admin', 'auditor')),
    key_hash    text NOT NULL CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK (tenant_id IS NOT NULL OR role = 'auditor')
);

-- The owner credential: handed out with the enrollment profile, bound to the
-- device through the identity certificate issued in the same profile.
CREATE TABLE owner_tokens (
    token_hash  text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    cert_fpr    text NOT NULL CHECK (cert_fpr ~ '^[0-9a-f]{64}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX owner_tokens_fpr ON owner_tokens (cert_fpr);

-- Single use: accepted or declined invitations are deleted, expired ones are
-- ignored and swept. rules: the device-wide rules the tenant says it will ask
-- for, shown on the consent page.
CREATE TABLE invitations (
    id          bigserial PRIMARY KEY,
    public_id   uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),  -- the id the tenant sees
    tenant_id   bigint NOT NULL REFERENCES tenants (id),
    code_hash   text NOT NULL UNIQUE CHECK (code_hash ~ '^[0-9a-f]{64}$'),
    note        text NOT NULL DEFAULT '' CHECK (length(note) <= 500),
    rules       jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

CREATE TABLE enrollments (
    id            bigserial PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants (id),
    device_id     bigint NOT NULL REFERENCES devices (id),
    pseudonym     text NOT NULL UNIQUE CHECK (pseudonym ~ '^e[a-z2-7]{26}$'),
    state         text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'removed', 'checked_out')),
    rules         jsonb NOT NULL DEFAULT '{}',    -- what the owner saw and accepted
    accepted_at   timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz,
    ended_by      text CHECK (ended_by IN ('owner', 'tenant', 'device', 'operator')),
    UNIQUE (tenant_id, device_id)
);
CREATE INDEX enrollments_device ON enrollments (device_id);

-- What a tenant installed on a device (its apps and profiles): exactly what is
-- removed when it leaves.
CREATE TABLE entities (
    enrollment_id bigint NOT NULL REFERENCES enrollments (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('app', 'profile')),
    identifier    text NOT NULL CHECK (length(identifier) BETWEEN 1 AND 1000),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (enrollment_id, kind, identifier)
);

-- Tenant commands: api_id is the id the tenant uses in the API, enrollment_id
-- ties the command to the tenant's enrollment. no_push: queued without waking
-- the device (NanoMDM's ?nopush).
ALTER TABLE commands
    ADD COLUMN enrollment_id bigint REFERENCES enrollments (id),
    ADD COLUMN api_id uuid UNIQUE,
    ADD COLUMN no_push boolean NOT NULL DEFAULT false;
CREATE INDEX commands_enrollment ON commands (enrollment_id, id) WHERE enrollment_id IS NOT NULL;
-- A tenant's CommandUUID is unique per enrollment (NanoMDM-style enqueue
-- sends one command, one UUID, to several devices).
CREATE UNIQUE INDEX commands_tenant_uuid ON commands (enrollment_id, tenant_command_uuid)
    WHERE tenant_id <> 0 AND tenant_command_uuid IS NOT NULL;

CREATE OR REPLACE FUNCTION commands_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ch channels%ROWTYPE;
    d devices%ROWTYPE;
BEGIN
    IF NEW.no_push THEN RETURN NULL; END IF;
    SELECT * INTO ch FROM channels WHERE id = NEW.channel_id;
    SELECT * INTO d FROM devices WHERE id = ch.device_id;
    IF ch.push_token IS NOT NULL AND NOT ch.token_dead AND d.state = 'enrolled' THEN
        PERFORM pg_notify('lmdm_push', encode(ch.push_token, 'hex') || ' ' || ch.push_magic || ' ' || d.topic);
    END IF;
    RETURN NULL;
END $$;

-- The transactional outbox: written in the same transaction as the change it
-- reports, delivered by the broker (webhooks) in id order per tenant, retried
-- with backoff until the tenant's endpoint accepts it. Bodies are built at
-- delivery from the rows referenced here (a command result is filtered for
-- the tenant then).
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    event_uuid      uuid NOT NULL DEFAULT gen_random_uuid(),  -- the id the tenant sees
    tenant_id       bigint NOT NULL REFERENCES tenants (id),
    enrollment_id   bigint REFERENCES enrollments (id),
    event           text NOT NULL CHECK (event IN ('enrollment.accepted', 'enrollment.removed',
                                                   'command.result', 'device.checked_out')),
    command_id      bigint REFERENCES commands (id),
    data            jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    last_error      text
);
CREATE INDEX outbox_pending ON outbox (tenant_id, id) WHERE delivered_at IS NULL;

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lmdm_outbox', NEW.tenant_id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION outbox_notify();

-- A time as the API writes it: RFC 3339, UTC, whole seconds.
CREATE FUNCTION lmdm_ts(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- A string as plist <string> content.
CREATE FUNCTION plist_escape(s text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT replace(replace(replace(s, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')
$$;

-- A broker command plist with one string argument (RemoveApplication,
-- RemoveProfile).
CREATE FUNCTION plist_command(p_uuid uuid, p_type text, p_key text, p_value text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT '<?xml version="1.0" encoding="UTF-8"?>' || chr(10)
        || '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">' || chr(10)
        || '<plist version="1.0"><dict><key>Command</key><dict><key>RequestType</key><string>'
        || plist_escape(p_type) || '</string><key>' || plist_escape(p_key) || '</key><string>'
        || plist_escape(p_value) || '</string></dict><key>CommandUUID</key><string>'
        || upper(p_uuid::text) || '</string></dict></plist>' || chr(10)
$$;

-- Record a device answer, exactly once, and hand out the next command (see
-- 0002). New here: a tenant's command result goes to the outbox in the same
-- transaction.
CREATE OR REPLACE FUNCTION mdm_connect(p_key text, p_user text, p_fpr text, p_status text, p_uuid uuid, p_result text,
                                       OUT code text, OUT command_uuid uuid, OUT payload text)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    ch channels%ROWTYPE;
    c record;
    a record;
BEGIN
    r := mdm_device_for(p_key, p_fpr);
    IF r.p_id IS NULL OR r.p_code <> 'ok' THEN code := r.p_code; RETURN; END IF;
    SELECT * INTO ch FROM channels WHERE device_id = r.p_id AND user_key = p_user;
    IF NOT FOUND THEN code := 'unknown_channel'; RETURN; END IF;

    IF p_status = 'Idle' THEN
        UPDATE commands SET state = 'queued' WHERE channel_id = ch.id AND state = 'notnow';
    ELSE
        UPDATE commands
           SET state = CASE p_status WHEN 'Acknowledged' THEN 'acknowledged' WHEN 'Error' THEN 'error'
                                     WHEN 'CommandFormatError' THEN 'format_error' ELSE 'notnow' END,
               answered_at = CASE WHEN p_status = 'NotNow' THEN NULL ELSE now() END,
               result = CASE WHEN p_status = 'NotNow' THEN NULL ELSE p_result END
         WHERE commands.channel_id = ch.id AND commands.command_uuid = p_uuid
           AND state IN ('sent', 'notnow')
        RETURNING commands.id, commands.tenant_id, commands.enrollment_id INTO a;
        IF a.id IS NULL THEN
            -- Answered before (a repeat changes nothing), or never sent here.
            PERFORM 1 FROM commands
              WHERE commands.channel_id = ch.id AND commands.command_uuid = p_uuid AND send_count > 0;
            IF NOT FOUND THEN code := 'unknown_command'; RETURN; END IF;
        ELSIF p_status <> 'NotNow' AND a.tenant_id <> 0 AND a.enrollment_id IS NOT NULL THEN
            INSERT INTO outbox (tenant_id, enrollment_id, event, command_id)
            VALUES (a.tenant_id, a.enrollment_id, 'command.result', a.id);
        END IF;
    END IF;

    SELECT cm.id, cm.command_uuid, cm.payload, cm.tenant_id INTO c
      FROM commands cm
     WHERE cm.channel_id = ch.id AND cm.state IN ('queued', 'sent')
       AND (p_status = 'Idle' OR cm.command_uuid IS DISTINCT FROM p_uuid)
     ORDER BY (cm.state = 'sent') DESC, (cm.tenant_id <= ch.last_tenant), cm.tenant_id, cm.id
     LIMIT 1;
    code := 'ok';
    IF c.id IS NULL THEN RETURN; END IF;
    UPDATE commands SET state = 'sent', sent_at = now(), send_count = send_count + 1 WHERE id = c.id;
    IF ch.last_tenant <> c.tenant_id THEN
        UPDATE channels SET last_tenant = c.tenant_id WHERE id = ch.id;
    END IF;
    command_uuid := c.command_uuid;
    payload := c.payload;
END $$;

-- CheckOut (see 0002); new here: every tenant with this device is told, and
-- its enrollment ends.
CREATE OR REPLACE FUNCTION mdm_checkout(p_key text, p_fpr text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    r := mdm_device_for(p_key, p_fpr);
    IF r.p_id IS NULL THEN RETURN r.p_code; END IF;
    UPDATE devices SET state = 'checked_out', checked_out_at = now() WHERE id = r.p_id;
    UPDATE channels SET push_token = NULL, push_magic = NULL, updated_at = now() WHERE device_id = r.p_id;
    UPDATE commands SET state = 'cancelled', answered_at = now()
     WHERE channel_id IN (SELECT id FROM channels WHERE device_id = r.p_id)
       AND state IN ('queued', 'sent', 'notnow');
    WITH ended AS (
        UPDATE enrollments SET state = 'checked_out', ended_at = now(), ended_by = 'device'
         WHERE device_id = r.p_id AND state = 'active'
        RETURNING id, tenant_id)
    INSERT INTO outbox (tenant_id, enrollment_id, event) SELECT tenant_id, id, 'device.checked_out' FROM ended;
    RETURN 'ok';
END $$;

-- The device an owner token opens (enrolled or still enrolling), or nothing.
CREATE FUNCTION owner_device(p_token_hash text, OUT device_id bigint, OUT device_state text)
LANGUAGE sql STABLE AS $$
    SELECT d.id, d.state FROM owner_tokens o JOIN devices d ON d.cert_fpr = o.cert_fpr
     WHERE o.token_hash = p_token_hash AND d.state <> 'checked_out'
$$;

-- An invitation that can still be accepted, with its tenant.
CREATE FUNCTION invitation_get(p_code_hash text, OUT invitation_id bigint, OUT tenant_id bigint,
                               OUT tenant_name text, OUT note text, OUT rules jsonb, OUT expires_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT i.id, t.id, t.name, i.note, i.rules, i.expires_at
      FROM invitations i JOIN tenants t ON t.id = i.tenant_id
     WHERE i.code_hash = p_code_hash AND i.expires_at > now() AND t.state = 'active'
$$;

-- Accept: the device joins the tenant under the given pseudonym (computed by
-- the broker from tenant and device). Codes: 'ok', 'not_found' (unknown,
-- used, expired, or tenant disabled), 'already' (already active: the
-- invitation is used up anyway), 'device' (device not enrolled).
CREATE FUNCTION invitation_accept(p_code_hash text, p_device bigint, p_pseudonym text,
                                  OUT code text, OUT enrollment_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    inv record;
    prev text;
BEGIN
    SELECT i.* INTO inv FROM invitations i JOIN tenants t ON t.id = i.tenant_id
     WHERE i.code_hash = p_code_hash AND i.expires_at > now() AND t.state = 'active'
       FOR UPDATE OF i;
    IF NOT FOUND THEN code := 'not_found'; RETURN; END IF;
    PERFORM 1 FROM devices WHERE id = p_device AND state = 'enrolled';
    IF NOT FOUND THEN code := 'device'; RETURN; END IF;
    DELETE FROM invitations WHERE id = inv.id;
    SELECT e.state, e.id INTO prev, enrollment_id FROM enrollments e
     WHERE e.tenant_id = inv.tenant_id AND e.device_id = p_device FOR UPDATE;
    IF prev = 'active' THEN code := 'already'; RETURN; END IF;
    INSERT INTO enrollments (tenant_id, device_id, pseudonym, rules)
    VALUES (inv.tenant_id, p_device, p_pseudonym, inv.rules)
    ON CONFLICT (tenant_id, device_id) DO UPDATE
        SET state = 'active', rules = EXCLUDED.rules, accepted_at = now(), ended_at = NULL, ended_by = NULL
    RETURNING id INTO enrollment_id;
    INSERT INTO outbox (tenant_id, enrollment_id, event, data)
    VALUES (inv.tenant_id, enrollment_id, 'enrollment.accepted', jsonb_build_object('invitation_id', inv.public_id));
    code := 'ok';
END $$;

-- Leaving: the enrollment ends, the tenant's pending commands for the device
-- are cancelled, and exactly its apps and profiles are removed by commands the
-- broker owns (tenant 0). The tenant is told. Codes: 'ok', 'not_active'.
CREATE FUNCTION enrollment_remove(p_enrollment bigint, p_actor text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    e enrollments%ROWTYPE;
    ch_id bigint;
    ent record;
    u uuid;
    n integer := 0;
BEGIN
    SELECT * INTO e FROM enrollments WHERE id = p_enrollment FOR UPDATE;
    IF NOT FOUND OR e.state <> 'active' THEN RETURN 'not_active'; END IF;
    UPDATE enrollments SET state = 'removed', ended_at = now(), ended_by = p_actor WHERE id = e.id;
    UPDATE commands SET state = 'cancelled', answered_at = now()
     WHERE enrollment_id = e.id AND state IN ('queued', 'notnow');
    SELECT id INTO ch_id FROM channels WHERE device_id = e.device_id AND user_key = '';
    IF ch_id IS NOT NULL THEN
        FOR ent IN SELECT x.kind, x.identifier FROM entities x WHERE x.enrollment_id = e.id
                    ORDER BY x.created_at, x.identifier LOOP
            u := gen_random_uuid();
            INSERT INTO commands (channel_id, tenant_id, command_uuid, request_type, payload, enrollment_id)
            VALUES (ch_id, 0, u,
                    CASE ent.kind WHEN 'app' THEN 'RemoveApplication' ELSE 'RemoveProfile' END,
                    plist_command(u, CASE ent.kind WHEN 'app' THEN 'RemoveApplication' ELSE 'RemoveProfile' END,
                                  'Identifier', CASE ent.kind WHEN 'app' THEN ent.identifier
                                                ELSE 'lmdm.t' || e.tenant_id || '.' || ent.identifier END),
                    e.id);
            n := n + 1;
        END LOOP;
    END IF;
    DELETE FROM entities WHERE enrollment_id = e.id;
    INSERT INTO outbox (tenant_id, enrollment_id, event, data)
    VALUES (e.tenant_id, e.id, 'enrollment.removed', jsonb_build_object('by', p_actor, 'removal_commands', n));
    RETURN 'ok';
END $$;

-- A tenant command. Codes: 'ok', 'not_found' (no such enrollment of this
-- tenant), 'gone' (removed or checked out), 'unreachable' (no device
-- channel), 'duplicate' (the tenant reused a CommandUUID on this enrollment),
-- 'not_owned' (p_entity_op 'own': the entity is not this tenant's on this
-- device), 'entity_owned_by_other_tenant' (p_entity_op 'add': another
-- active tenant of this device installed it first; first claim wins).
CREATE FUNCTION tenant_enqueue(p_tenant bigint, p_pseudonym text, p_api_id uuid, p_uuid uuid,
                               p_tenant_uuid text, p_request_type text, p_payload text,
                               p_entity_kind text, p_entity text, p_entity_op text, p_no_push boolean,
                               OUT code text, OUT created_at text)
LANGUAGE plpgsql AS $$
DECLARE
    e enrollments%ROWTYPE;
    ch_id bigint;
BEGIN
    SELECT * INTO e FROM enrollments WHERE pseudonym = p_pseudonym AND tenant_id = p_tenant;
    IF NOT FOUND THEN code := 'not_found'; RETURN; END IF;
    IF e.state <> 'active' THEN code := 'gone'; RETURN; END IF;
    SELECT c.id INTO ch_id FROM channels c JOIN devices d ON d.id = c.device_id
     WHERE c.device_id = e.device_id AND c.user_key = '' AND d.state = 'enrolled';
    IF ch_id IS NULL THEN code := 'unreachable'; RETURN; END IF;
    PERFORM 1 FROM commands WHERE enrollment_id = e.id AND tenant_command_uuid = p_tenant_uuid;
    IF FOUND THEN code := 'duplicate'; RETURN; END IF;
    IF p_entity_op = 'own' THEN
        PERFORM 1 FROM entities WHERE enrollment_id = e.id AND kind = p_entity_kind AND identifier = p_entity;
        IF NOT FOUND THEN code := 'not_owned'; RETURN; END IF;
    ELSIF p_entity_op = 'add' THEN
        -- Apps are one per device; profiles live in each tenant's namespace
        -- (lmdm.t<tenant>.<identifier> on the device) and never clash.
        PERFORM 1 FROM entities x JOIN enrollments o ON o.id = x.enrollment_id
         WHERE o.device_id = e.device_id AND o.id <> e.id AND o.state = 'active'
           AND x.kind = p_entity_kind AND x.identifier = p_entity AND x.kind = 'app';
        IF FOUND THEN code := 'entity_owned_by_other_tenant'; RETURN; END IF;
        INSERT INTO entities (enrollment_id, kind, identifier) VALUES (e.id, p_entity_kind, p_entity)
        ON CONFLICT DO NOTHING;
    END IF;
    INSERT INTO commands (channel_id, tenant_id, command_uuid, tenant_command_uuid, request_type, payload,
                          enrollment_id, api_id, no_push)
    VALUES (ch_id, p_tenant, p_uuid, p_tenant_uuid, p_request_type, p_payload, e.id, p_api_id, p_no_push)
    RETURNING lmdm_ts(commands.created_at) INTO created_at;
    code := 'ok';
END $$;

-- Cancel a tenant's command that the device has not taken yet.
-- Codes: 'ok', 'not_found', 'too_late' (sent or answered already).
CREATE FUNCTION tenant_cancel(p_tenant bigint, p_api_id uuid) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
BEGIN
    SELECT state INTO st FROM commands WHERE api_id = p_api_id AND tenant_id = p_tenant FOR UPDATE;
    IF NOT FOUND THEN RETURN 'not_found'; END IF;
    IF st NOT IN ('queued', 'notnow') THEN RETURN 'too_late'; END IF;
    UPDATE commands SET state = 'cancelled', answered_at = now() WHERE api_id = p_api_id;
    RETURN 'ok';
END $$;

-- A new invitation (expired ones older than a day are swept on the way).
CREATE FUNCTION invitation_create(p_tenant bigint, p_code_hash text, p_note text, p_rules jsonb, p_ttl_s integer,
                                  OUT public_id uuid, OUT expires_at text)
LANGUAGE plpgsql AS $$
DECLARE
    exp timestamptz := now() + make_interval(secs => p_ttl_s);
BEGIN
    DELETE FROM invitations WHERE invitations.expires_at < now() - interval '1 day';
    INSERT INTO invitations (tenant_id, code_hash, note, rules, expires_at)
    VALUES (p_tenant, p_code_hash, p_note, p_rules, exp)
    RETURNING invitations.public_id INTO public_id;
    expires_at := lmdm_ts(exp);
END $$;

-- What a tenant may know of its enrollment: never a device identifier.
CREATE FUNCTION enrollment_json(e enrollments, d devices) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', e.pseudonym,
        'state', e.state,
        'accepted_at', lmdm_ts(e.accepted_at),
        'ended_at', lmdm_ts(e.ended_at),
        'ended_by', e.ended_by,
        'enrollment_type', d.enrollment_type,
        'os_version', d.info ->> 'OSVersion',
        'build_version', d.info ->> 'BuildVersion',
        'model', d.info ->> 'ProductName')
$$;

CREATE FUNCTION tenant_enrollments(p_tenant bigint, p_after text, p_limit integer) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(x.j ORDER BY x.p), '[]')::text
      FROM (SELECT enrollment_json(e, d) AS j, e.pseudonym AS p
              FROM enrollments e JOIN devices d ON d.id = e.device_id
             WHERE e.tenant_id = p_tenant AND e.pseudonym > coalesce(p_after, '')
             ORDER BY e.pseudonym LIMIT p_limit) x
$$;

CREATE FUNCTION tenant_enrollment(p_tenant bigint, p_pseudonym text, OUT state text, OUT body text)
LANGUAGE sql STABLE AS $$
    SELECT e.state, enrollment_json(e, d)::text FROM enrollments e JOIN devices d ON d.id = e.device_id
     WHERE e.tenant_id = p_tenant AND e.pseudonym = p_pseudonym
$$;

-- A tenant's commands (one by api id, or an enrollment's, newest first),
-- with the device's raw answer for the broker to filter.
CREATE FUNCTION command_json(c commands, e enrollments) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', c.api_id,
        'enrollment_id', e.pseudonym,
        'command_uuid', c.tenant_command_uuid,
        'request_type', c.request_type,
        'state', c.state,
        'status', CASE c.state WHEN 'acknowledged' THEN 'Acknowledged' WHEN 'error' THEN 'Error'
                               WHEN 'format_error' THEN 'CommandFormatError' WHEN 'notnow' THEN 'NotNow' END,
        'created_at', lmdm_ts(c.created_at),
        'sent_at', lmdm_ts(c.sent_at),
        'answered_at', lmdm_ts(c.answered_at))
$$;

CREATE FUNCTION tenant_commands(p_tenant bigint, p_api_id uuid, p_pseudonym text, p_before uuid, p_limit integer,
                                OUT body text, OUT request_type text, OUT tenant_uuid text, OUT result text,
                                OUT owned_apps text, OUT owned_profiles text)
RETURNS SETOF record LANGUAGE sql STABLE AS $$
    SELECT command_json(c, e)::text, c.request_type, c.tenant_command_uuid, c.result,
           (SELECT string_agg(x.identifier, E'\n') FROM entities x WHERE x.enrollment_id = e.id AND x.kind = 'app'),
           (SELECT string_agg(x.identifier, E'\n') FROM entities x WHERE x.enrollment_id = e.id AND x.kind = 'profile')
      FROM commands c JOIN enrollments e ON e.id = c.enrollment_id
     WHERE c.tenant_id = p_tenant AND e.tenant_id = p_tenant
       AND (p_api_id IS NULL OR c.api_id = p_api_id)
       AND (p_pseudonym IS NULL OR e.pseudonym = p_pseudonym)
       AND (p_before IS NULL OR c.id < (SELECT id FROM commands WHERE api_id = p_before AND tenant_id = p_tenant))
     ORDER BY c.id DESC
     LIMIT p_limit
$$;

-- API key lookup: the caller compares key_hash in constant time.
CREATE FUNCTION api_key_get(p_id text, OUT tenant_id bigint, OUT role text, OUT key_hash text,
                            OUT revoked boolean, OUT tenant_active boolean)
LANGUAGE sql STABLE AS $$
    SELECT k.tenant_id, k.role, k.key_hash, k.revoked_at IS NOT NULL, coalesce(t.state = 'active', true)
      FROM api_keys k LEFT JOIN tenants t ON t.id = k.tenant_id WHERE k.id = p_id
$$;

-- The tenant leaves a device by itself (DELETE /v1/enrollments/{id}).
-- Codes: 'ok', 'not_found', 'not_active'.
CREATE FUNCTION tenant_leave(p_tenant bigint, p_pseudonym text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    eid bigint;
BEGIN
    SELECT id INTO eid FROM enrollments WHERE tenant_id = p_tenant AND pseudonym = p_pseudonym;
    IF eid IS NULL THEN RETURN 'not_found'; END IF;
    RETURN enrollment_remove(eid, 'tenant');
END $$;
