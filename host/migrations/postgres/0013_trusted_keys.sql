-- Publisher keys the operator trusts to sign plugin packs (`osprey trust`): minisign
-- ed25519 public keys, each under a name. A key id is trusted under one name at most.
CREATE TABLE trusted_keys (
    name        TEXT PRIMARY KEY,
    -- minisign's key id, 16 upper-case hex digits.
    key_id      TEXT NOT NULL UNIQUE,
    -- The base64 line of the minisign public key (RW...).
    public_key  TEXT NOT NULL,
    added_at    BIGINT NOT NULL
);
