-- Named allow and block lists of IPs, domains or URLs, served as External Dynamic Lists
-- (GET /edl/NAME.txt). Times are Unix milliseconds.

CREATE TABLE lists (
    -- Lower-case letters, digits and '-', 1 to 64.
    name         TEXT PRIMARY KEY,
    -- 'block' or 'allow'.
    kind         TEXT NOT NULL,
    -- What the entries are: 'ip' (addresses and CIDRs), 'domain', 'url'.
    entry_type   TEXT NOT NULL,
    description  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    -- The last change of the list or its entries.
    updated_at   BIGINT NOT NULL
);

CREATE TABLE list_entries (
    list        TEXT NOT NULL REFERENCES lists (name) ON DELETE CASCADE,
    -- The canonical form (see store/lists.rs): '10.0.0.0/8', '*.example.com', 'example.com/x'.
    value       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    -- Who added or last updated it: "cli:USER", "token:NAME", "system".
    added_by    TEXT NOT NULL,
    -- The run that added or last updated it, if a playbook did.
    run_id      TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    -- Not served from this time on, and removed (and audited) by the expiry job.
    expires_at  BIGINT,
    PRIMARY KEY (list, value)
);
CREATE INDEX list_entries_by_expiry ON list_entries (expires_at);
