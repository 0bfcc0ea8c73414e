-- Plugin grants, settings, secrets and kv (SQLite). Times are Unix milliseconds.

CREATE TABLE plugin_grants (
    plugin      TEXT PRIMARY KEY,
    grant_json  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE plugin_config (
    plugin      TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (plugin, key)
);

-- Bumped whenever a grant or a setting changes, so running servers reload them.
CREATE TABLE change_counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);

-- Values are sealed by the vault (XChaCha20-Poly1305); nothing here is plaintext.
CREATE TABLE secrets (
    plugin      TEXT NOT NULL,
    name        TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (plugin, name)
);

-- One sealed known value: proves the server runs with the key the secrets were sealed with.
CREATE TABLE vault_key_check (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL
);

CREATE TABLE plugin_kv (
    plugin      TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       BLOB NOT NULL,
    size        INTEGER NOT NULL,
    expires_at  INTEGER,
    PRIMARY KEY (plugin, key)
);
CREATE INDEX plugin_kv_expiry ON plugin_kv (expires_at) WHERE expires_at IS NOT NULL;
