-- 0001: the first schema object of the broker.
--
-- broker_meta holds broker-wide settings that must be the same for every
-- broker instance sharing this database, and that belong with the data rather
-- than in a config file: for example the identifier of the key currently used
-- to seal secrets, or the instance's public name. One row per setting.
--
-- Devices, tenants, the command queue, the audit ledger and the rest arrive in
-- their own later migrations. (schema_migrations itself is created by the
-- migrator, not by a migration.)
CREATE TABLE broker_meta (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE broker_meta IS
    'Broker-wide settings shared by all instances on this database (e.g. key identifiers); one row per setting.';
