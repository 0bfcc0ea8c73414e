-- Pre-processing rules, incidents and what links them to alerts and runs. Times are Unix ms.

-- Ordered rules; each a match expression and an action, as JSON (see preprocess.rs).
CREATE TABLE rules (
    name        TEXT PRIMARY KEY,
    position    BIGINT NOT NULL,
    enabled     BIGINT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- What pre-processing did with each alert: dropped, incident, duplicate, linked, unmatched.
ALTER TABLE alerts ADD COLUMN disposition TEXT;
ALTER TABLE alerts ADD COLUMN rule TEXT;
ALTER TABLE alerts ADD COLUMN incident_id TEXT;
ALTER TABLE alerts ADD COLUMN processed_at BIGINT;
CREATE INDEX alerts_unprocessed ON alerts (id) WHERE processed_at IS NULL;

CREATE TABLE incidents (
    -- Time-ordered: 'i', 11 hex digits of milliseconds, 16 random hex digits.
    id            TEXT PRIMARY KEY,
    type          TEXT NOT NULL,
    title         TEXT NOT NULL,
    -- info, low, medium, high, critical
    severity      TEXT NOT NULL,
    -- new, active, pending, closed
    status        TEXT NOT NULL,
    owner         TEXT,
    -- The deduplication key of the rule that made it, if any.
    dedup_key     TEXT,
    occurrences   BIGINT NOT NULL,
    rule          TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    closed_at     BIGINT,
    close_reason  TEXT
);
CREATE INDEX incidents_open_by_key ON incidents (dedup_key, created_at) WHERE status <> 'closed';
CREATE INDEX incidents_by_status ON incidents (status, created_at);

CREATE TABLE incident_alerts (
    incident_id  TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    alert_id     TEXT NOT NULL,
    linked_at    BIGINT NOT NULL,
    PRIMARY KEY (incident_id, alert_id)
);

-- The timeline: everything that happened to an incident, in order.
CREATE TABLE incident_events (
    incident_id  TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    -- created, alert, duplicate, run, status, note, ...
    kind         TEXT NOT NULL,
    details      TEXT NOT NULL,
    PRIMARY KEY (incident_id, seq)
);

-- What a run was started for (its alert and incident, as they were then).
ALTER TABLE runs ADD COLUMN context TEXT;
