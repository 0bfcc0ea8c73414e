-- The dashboard's counts, kept as alerts and runs are written (`store/counts.rs`, in the
-- same transaction as the write), so `GET /` reads a few rows per day instead of every alert
-- of its window. Days are UTC days since the Unix epoch (`time / 86400000`). Each count may be
-- split over shards (`shard`, 0-15): on PostgreSQL concurrent writers add to different rows
-- instead of queueing on one row's lock; on SQLite (one writer) it is always 0. The dashboard
-- sums the shards. A count may reach 0 and stay as a row.

-- Alerts received, per day (of `received_at`) and source.
CREATE TABLE alert_source_counts (
    day     INTEGER NOT NULL,
    source  TEXT NOT NULL,
    shard   INTEGER NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (day, source, shard)
);

-- Alerts received, per day (of `received_at`) and what pre-processing did with them:
-- `pending` until it decided, then the alert's disposition.
CREATE TABLE alert_disposition_counts (
    day          INTEGER NOT NULL,
    disposition  TEXT NOT NULL,
    shard        INTEGER NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (day, disposition, shard)
);

-- Runs, per day (of `created_at`), playbook and state: `unfinished` while queued, running or
-- waiting, else how they ended (completed, failed, cancelled, dead).
CREATE TABLE run_counts (
    day       INTEGER NOT NULL,
    playbook  TEXT NOT NULL,
    state     TEXT NOT NULL,
    shard     INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (day, playbook, state, shard)
);

-- What is already stored, counted once.
INSERT INTO alert_source_counts (day, source, shard, n)
    SELECT received_at / 86400000, source, 0, COUNT(*) FROM alerts
    GROUP BY received_at / 86400000, source;
INSERT INTO alert_disposition_counts (day, disposition, shard, n)
    SELECT received_at / 86400000, COALESCE(disposition, 'pending'), 0, COUNT(*) FROM alerts
    GROUP BY received_at / 86400000, COALESCE(disposition, 'pending');
INSERT INTO run_counts (day, playbook, state, shard, n)
    SELECT created_at / 86400000, playbook,
           CASE WHEN status IN ('queued', 'running', 'waiting') THEN 'unfinished' ELSE status END, 0, COUNT(*)
    FROM runs
    GROUP BY created_at / 86400000, playbook,
             CASE WHEN status IN ('queued', 'running', 'waiting') THEN 'unfinished' ELSE status END;

-- The dashboard's other two counts read only what they count: open incidents, and timers
-- that breached.
CREATE INDEX incidents_open_by_severity ON incidents (severity) WHERE status <> 'closed';
CREATE INDEX sla_timers_breached ON sla_timers (breached_at) WHERE breached_at IS NOT NULL;
