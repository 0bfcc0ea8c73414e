-- Playbook runs, their journals, the job queue and cron schedules (PostgreSQL).
-- Times are Unix milliseconds.

CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    playbook     TEXT NOT NULL,
    -- SHA-256 of the script the run started with: a replay against another script is refused.
    script_hash  TEXT NOT NULL,
    input        TEXT NOT NULL,
    origin       TEXT NOT NULL,
    -- queued, running, waiting, completed, failed, cancelled, dead
    status       TEXT NOT NULL,
    output       TEXT,
    error        TEXT,
    attempts     BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX runs_by_status ON runs (status, updated_at);
CREATE INDEX runs_by_playbook ON runs (playbook, created_at);

-- The journal: one row per step, written before the script sees the outcome.
CREATE TABLE run_steps (
    run_id       TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    request      TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    ok           INTEGER NOT NULL,
    started_at   BIGINT NOT NULL,
    duration_ms  BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- At most one pending job per run: "run this when run_at has passed".
CREATE TABLE jobs (
    run_id        TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    run_at        BIGINT NOT NULL,
    locked_by     TEXT,
    locked_until  BIGINT,
    attempts      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_due ON jobs (run_at);

-- The next time each cron trigger fires; advanced with compare-and-set so one node fires it.
CREATE TABLE schedules (
    playbook      TEXT NOT NULL,
    trigger_index BIGINT NOT NULL,
    spec          TEXT NOT NULL,
    next_fire_at  BIGINT NOT NULL,
    PRIMARY KEY (playbook, trigger_index)
);
