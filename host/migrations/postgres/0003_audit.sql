-- The audit log: every state change, hash-chained. Times are Unix milliseconds.
--
-- Entry n's hash is SHA-256 over entry n-1's hash and entry n's fields (see store/audit.rs);
-- the first entry chains from 64 zeros. audit_head holds the last entry's number and hash:
-- an append updates it first, which serialises appenders (a row lock on PostgreSQL, the
-- write lock on SQLite) and lets a verifier notice entries cut off the end.

CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY,
    at         BIGINT NOT NULL,
    -- Who: "cli:USER", "user:NAME", "token:NAME", "system".
    actor      TEXT NOT NULL,
    -- What: "plugin.grant", "secret.set", "run.cancel", ...
    action     TEXT NOT NULL,
    -- On what: "plugin:ipinfo", "run:r...", ...
    target     TEXT NOT NULL,
    -- JSON object; never a secret value.
    details    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_by_action ON audit_log (action, seq);
CREATE INDEX audit_by_target ON audit_log (target, seq);

CREATE TABLE audit_head (
    id    BIGINT PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The version (hash of metadata and script) of each playbook a server last loaded, so that
-- every new version is audited once, even one edited while no server ran.
CREATE TABLE playbook_versions (
    name        TEXT PRIMARY KEY,
    version     TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
