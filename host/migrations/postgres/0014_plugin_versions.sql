-- The installed version of each plugin and the one an upgrade replaced (kept in
-- <plugins_dir>/.previous/NAME), so `osprey plugin rollback` can return to it with the grant
-- that was in force then. `slot` is 'current' or 'previous'.
CREATE TABLE plugin_versions (
    plugin      TEXT NOT NULL,
    slot        TEXT NOT NULL CHECK (slot IN ('current', 'previous')),
    version     TEXT NOT NULL,
    -- What the install audit recorded of the pack it came from (digest, signer), if any.
    pack_json   TEXT,
    -- The previous slot's grant, NULL when nothing was granted; the current grant is in
    -- plugin_grants.
    grant_json  TEXT,
    at          BIGINT NOT NULL,
    PRIMARY KEY (plugin, slot)
);
