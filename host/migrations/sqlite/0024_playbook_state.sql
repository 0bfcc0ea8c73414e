-- What a playbook keeps between its runs (`state_set(key, value)`, read by `state_get(key)`),
-- such as where a round robin stopped. One row per playbook and key (`name`), at most a hundred keys
-- per playbook and 16 KiB of JSON per value (checked before writing); `run_id` is the run
-- that set it last.
CREATE TABLE playbook_state (
    playbook    TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (playbook, name)
);
