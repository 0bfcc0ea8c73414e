-- Claims in a row whose replay did not end (the process died holding the run's lease): a
-- run whose replay kills the server is set aside as dead after a few, instead of being
-- claimed forever (runs.max_unfinished_replays).
ALTER TABLE runs ADD COLUMN unfinished INTEGER NOT NULL DEFAULT 0;
