-- 0006: the tamper-evident audit ledger (issue 8; docs/audit.md).
--
-- ledger: one row per thing an auditor must be able to see: every tenant
-- command and the broker's decision on it, every device answer delivered to a
-- tenant, every enrollment accepted or ended, every API key issued or
-- revoked, every merged device-wide rule applied. Rows are written only by
-- the AFTER triggers below, so in the same transaction as the change they
-- record: the change and its ledger entry commit together or not at all.
-- An entry names an enrollment by its pseudonym (what the tenant sees), never
-- by a device identifier.
--
-- ledger_seal: the hash chain. The broker's sealer (broker/audit/ledger_seal.c)
-- takes unsealed entries in seq order, gives each the next chain position,
-- the BLAKE2b digest of its body (a command payload or a device answer) and
-- hash = BLAKE2b(canonical entry, body digest, previous hash). Positions are
-- assigned by the sealer without gaps (1, 2, 3, ...), so a missing position is
-- visible; chain order is seal order (an entry whose transaction commits late
-- gets a later position than a higher seq).
--
-- ledger_checkpoint: the sealer signs the chain head with the broker's ledger
-- key (Ed25519) every N entries or M seconds.
--
-- All three are append-only: a statement trigger refuses UPDATE, DELETE and
-- TRUNCATE for everybody, and those privileges are revoked, also from the role
-- that runs this migration (the table owner). An owner or a superuser can
-- still take both away; that is what verification (`lmdm audit verify`) is for.

-- A time as the ledger writes it: RFC 3339, UTC, microseconds. The hash covers
-- this text, so it must never change.
CREATE FUNCTION ledger_ts(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- detail is text, not jsonb: the hash covers its exact bytes, which PostgreSQL
-- must never renormalize. The triggers write it with jsonb_build_object()::text.
CREATE TABLE ledger (
    seq          bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_kind   text NOT NULL CHECK (actor_kind IN ('tenant', 'owner', 'operator', 'device', 'broker')),
    tenant_id    bigint,
    enrollment   text CHECK (enrollment ~ '^e[a-z2-7]{26}$'),
    event        text NOT NULL CHECK (event IN ('command', 'command.result', 'enrollment.accepted',
                                                'enrollment.removed', 'enrollment.checked_out',
                                                'key.issued', 'key.revoked', 'rules.applied')),
    request_type text,
    decision     text,
    reason       text,
    body_kind    text CHECK (body_kind IN ('command', 'result')),  -- 'command': commands.payload, 'result': commands.result
    body_ref     bigint,                                           -- commands.id (a locator, not hashed)
    detail       text NOT NULL DEFAULT '{}',
    CHECK ((body_kind IS NULL) = (body_ref IS NULL))
);
CREATE INDEX ledger_tenant ON ledger (tenant_id, seq);

-- Entries not sealed yet: the sealer's work list (written by the ledger's own
-- insert trigger, emptied by the sealer in the transaction that seals).
CREATE TABLE ledger_pending (
    seq bigint PRIMARY KEY
);

-- No foreign keys: the checks would need UPDATE privilege on the referenced
-- table, which is revoked below; `lmdm audit verify --db` checks the links.
CREATE TABLE ledger_seal (
    pos          bigint PRIMARY KEY CHECK (pos >= 1),
    seq          bigint NOT NULL UNIQUE,
    body_digest  text NOT NULL CHECK (body_digest ~ '^[0-9a-f]{64}$'),
    prev_hash    text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash         text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    sealed_at    timestamptz NOT NULL DEFAULT now()
);

-- signature: base64 Ed25519 over "lmdm-ledger-v1\n<pos>\n<hash>\n<signed_at>"
-- (signed_at as ledger_ts writes it); key_id: the first 16 hex digits of
-- BLAKE2b-256 of the public key.
CREATE TABLE ledger_checkpoint (
    pos          bigint PRIMARY KEY,
    hash         text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    signed_at    timestamptz NOT NULL,
    signature    text NOT NULL,
    key_id       text NOT NULL
);

CREATE FUNCTION ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'lmdm: % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER ledger_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER ledger_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_seal
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER ledger_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();
REVOKE UPDATE, DELETE, TRUNCATE ON ledger, ledger_seal, ledger_checkpoint FROM PUBLIC, CURRENT_USER;

-- Every new entry goes on the sealer's list and wakes it (one notification
-- per transaction: PostgreSQL folds identical ones).
CREATE FUNCTION ledger_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_pending (seq) VALUES (NEW.seq);
    PERFORM pg_notify('lmdm_ledger', '');
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_queued AFTER INSERT ON ledger FOR EACH ROW EXECUTE FUNCTION ledger_queued();

-- ---- what is recorded ----------------------------------------------------

-- A tenant command and the decision on it (allow, scope, merge, block,
-- retire). Body: the command as queued for the device, when one was.
CREATE FUNCTION ledger_decision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger (actor_kind, tenant_id, enrollment, event, request_type, decision, reason,
                        body_kind, body_ref, detail)
    VALUES ('tenant', NEW.tenant_id, (SELECT pseudonym FROM enrollments WHERE id = NEW.enrollment_id), 'command',
            NEW.request_type, NEW.decision, NEW.reason,
            CASE WHEN NEW.command_id IS NOT NULL THEN 'command' END, NEW.command_id,
            jsonb_strip_nulls(jsonb_build_object('decision_id', NEW.id, 'command_uuid', NEW.tenant_command_uuid,
                                                 'payload_index', NEW.payload_index,
                                                 'payload_type', NEW.payload_type))::text);
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_decision AFTER INSERT ON decisions FOR EACH ROW EXECUTE FUNCTION ledger_decision();

-- A device answer delivered to a tenant. Body: the device's answer as it sent
-- it (the tenant receives it filtered; the ledger keeps only the digest).
CREATE FUNCTION ledger_result() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger (actor_kind, tenant_id, enrollment, event, request_type, body_kind, body_ref, detail)
    SELECT 'device', NEW.tenant_id, (SELECT pseudonym FROM enrollments WHERE id = NEW.enrollment_id),
           'command.result', c.request_type, 'result', c.id,
           jsonb_strip_nulls(jsonb_build_object('status', c.state, 'command_uuid', c.tenant_command_uuid,
                                                'event_id', NEW.event_uuid))::text
      FROM commands c WHERE c.id = NEW.command_id;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_result AFTER INSERT ON outbox FOR EACH ROW WHEN (NEW.event = 'command.result')
    EXECUTE FUNCTION ledger_result();

-- An enrollment accepted by the owner (detail: the rules the owner saw and
-- accepted), removed (by whoever ended it), or ended by the device's CheckOut.
CREATE FUNCTION ledger_enrollment() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'active' THEN
        INSERT INTO ledger (actor_kind, tenant_id, enrollment, event, detail)
        VALUES ('owner', NEW.tenant_id, NEW.pseudonym, 'enrollment.accepted',
                jsonb_build_object('rules', NEW.rules)::text);
    ELSIF NEW.state = 'removed' THEN
        INSERT INTO ledger (actor_kind, tenant_id, enrollment, event, detail)
        VALUES (coalesce(NEW.ended_by, 'broker'), NEW.tenant_id, NEW.pseudonym, 'enrollment.removed',
                jsonb_strip_nulls(jsonb_build_object('by', NEW.ended_by))::text);
    ELSE
        INSERT INTO ledger (actor_kind, tenant_id, enrollment, event)
        VALUES ('device', NEW.tenant_id, NEW.pseudonym, 'enrollment.checked_out');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_enrollment_new AFTER INSERT ON enrollments FOR EACH ROW EXECUTE FUNCTION ledger_enrollment();
CREATE TRIGGER ledger_enrollment AFTER UPDATE OF state ON enrollments
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION ledger_enrollment();

-- An API key issued or revoked (by the operator: `lmdm key`). tenant_id NULL:
-- the global auditor key.
CREATE FUNCTION ledger_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger (actor_kind, tenant_id, event, detail)
    VALUES ('operator', NEW.tenant_id, CASE WHEN TG_OP = 'INSERT' THEN 'key.issued' ELSE 'key.revoked' END,
            jsonb_build_object('key_id', NEW.id, 'role', NEW.role)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_key_issued AFTER INSERT ON api_keys FOR EACH ROW EXECUTE FUNCTION ledger_key();
CREATE TRIGGER ledger_key_revoked AFTER UPDATE OF revoked_at ON api_keys
    FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL) EXECUTE FUNCTION ledger_key();

-- A merged device-wide rule applied by the broker (rules_apply: the broker
-- profile with this content hash installed, or removed when NULL): one entry
-- per active enrollment of the device, under that tenant's pseudonym, so each
-- tenant's auditor sees it; one without enrollment when none is active.
CREATE FUNCTION ledger_rules() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rt text := CASE WHEN NEW.rules_hash IS NULL THEN 'RemoveProfile' ELSE 'InstallProfile' END;
    d text := jsonb_build_object('hash', NEW.rules_hash)::text;
BEGIN
    INSERT INTO ledger (actor_kind, tenant_id, enrollment, event, request_type, detail)
    SELECT 'broker', e.tenant_id, e.pseudonym, 'rules.applied', rt, d
      FROM enrollments e WHERE e.device_id = NEW.id AND e.state = 'active' ORDER BY e.id;
    IF NOT FOUND THEN
        INSERT INTO ledger (actor_kind, event, request_type, detail) VALUES ('broker', 'rules.applied', rt, d);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER ledger_rules AFTER UPDATE OF rules_hash ON devices
    FOR EACH ROW WHEN (OLD.rules_hash IS DISTINCT FROM NEW.rules_hash) EXECUTE FUNCTION ledger_rules();
