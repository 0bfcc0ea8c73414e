-- Alerts as received, and the API tokens that may send them. Times are Unix milliseconds.

CREATE TABLE alerts (
    -- Time-ordered: 'a', 11 hex digits of milliseconds, 16 random hex digits.
    id           TEXT PRIMARY KEY,
    received_at  BIGINT NOT NULL,
    -- How it came in: "token:NAME", "syslog-udp", "syslog-tcp".
    via          TEXT NOT NULL,
    source       TEXT NOT NULL,
    title        TEXT NOT NULL,
    -- info, low, medium, high, critical
    severity     TEXT NOT NULL,
    occurred_at  BIGINT,
    -- JSON object: the parsed fields.
    data         TEXT NOT NULL,
    -- JSON object: ips, domains, urls, md5, sha1, sha256, emails.
    observables  TEXT NOT NULL,
    -- The raw line, for line formats.
    raw          TEXT
);
CREATE INDEX alerts_by_time ON alerts (received_at);
CREATE INDEX alerts_by_source ON alerts (source, received_at);

-- API tokens. Only a SHA-256 of each token is kept: tokens are 256 random bits, so a fast
-- hash is enough (passwords, which are guessable, get argon2id).
CREATE TABLE api_tokens (
    name          TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    -- Space-separated scopes: "intake".
    scopes        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT
);
