-- Pollers: a plugin action asked on a schedule for new items, each item an alert through
-- the normal intake. The cursor is what the plugin returned last and is written in the
-- transaction that commits that poll's alerts. A server claims a due poller by a conditional
-- UPDATE of locked_by/locked_until, so one poll of a name runs at a time across nodes.
CREATE TABLE pollers (
    name          TEXT PRIMARY KEY,
    plugin        TEXT NOT NULL,
    action        TEXT NOT NULL,
    every_ms      BIGINT NOT NULL,
    -- The action's input (a JSON object); the cursor is added to it.
    input         TEXT NOT NULL,
    -- The cursor the plugin last returned (JSON), NULL before the first poll.
    cursor        TEXT,
    next_due      BIGINT NOT NULL,
    last_run_at   BIGINT,
    last_ok_at    BIGINT,
    last_error    TEXT,
    failures      BIGINT NOT NULL DEFAULT 0,
    polls         BIGINT NOT NULL DEFAULT 0,
    items         BIGINT NOT NULL DEFAULT 0,
    bad_items     BIGINT NOT NULL DEFAULT 0,
    -- Where the last bad item was and why ("item 3: expected a JSON object, got a number").
    last_bad      TEXT,
    locked_by     TEXT,
    locked_until  BIGINT,
    created_at    BIGINT NOT NULL
);
