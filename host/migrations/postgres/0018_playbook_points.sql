-- Data points playbooks record (`record("gifts", #{ to, points })`) for the charts their
-- playbook.toml declares. One row per `record` step: `id` is the step's idempotency key
-- (RUN:SEQ), so the step taken again after a crash writes nothing new. A chart reads one
-- playbook's series over a window of time, through the index, whatever the history.
CREATE TABLE playbook_points (
    id        TEXT PRIMARY KEY,
    playbook  TEXT NOT NULL,
    series    TEXT NOT NULL,
    at        BIGINT NOT NULL,
    run_id    TEXT NOT NULL,
    -- The point: a JSON object, at most a few KiB.
    data      TEXT NOT NULL
);
CREATE INDEX playbook_points_by_series ON playbook_points (playbook, series, at);
