-- Playbook runs, their journals, and cron schedules (PostgreSQL). Times are Unix milliseconds.
--
-- The runs table is also the job queue: a run that is queued, waiting or running is due at
-- run_at; a worker claims it by setting locked_by/locked_until (its lease) and extends the
-- lease while it works. A run whose lease expired is claimed again.

CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    playbook      TEXT NOT NULL,
    -- SHA-256 of the script the run was last started with.
    script_hash   TEXT NOT NULL,
    input         TEXT NOT NULL,
    origin        TEXT NOT NULL,
    -- queued, running, waiting, completed, failed, cancelled, dead
    status        TEXT NOT NULL,
    output        TEXT,
    error         TEXT,
    -- Failed attempts so far (retryable failures).
    attempts      BIGINT NOT NULL DEFAULT 0,
    -- Queue: when it is due, and who holds it until when.
    run_at        BIGINT,
    locked_by     TEXT,
    locked_until  BIGINT,
    claims        BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    finished_at   BIGINT
);
CREATE INDEX runs_due ON runs (run_at) WHERE status IN ('queued', 'waiting', 'running');
CREATE INDEX runs_by_status ON runs (status, created_at);
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

-- The next time each cron trigger fires; advanced with compare-and-set so one node fires it.
CREATE TABLE schedules (
    playbook      TEXT NOT NULL,
    trigger_index BIGINT NOT NULL,
    spec          TEXT NOT NULL,
    next_fire_at  BIGINT NOT NULL,
    PRIMARY KEY (playbook, trigger_index)
);
