-- Case management: users and their roles, more incident fields (team, parent, custom fields,
-- acknowledgement), related incidents, manual tasks, and SLA timers. Times are Unix ms.

-- People who work incidents and tasks. Passwords and sessions come with the web console.
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    email         TEXT,
    created_at    BIGINT NOT NULL,
    disabled_at   BIGINT
);

-- A role is a team or a permission set ("soc-tier1", "analyst"); tasks are assigned to them.
CREATE TABLE user_roles (
    user_name  TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    PRIMARY KEY (user_name, role)
);
CREATE INDEX user_roles_by_role ON user_roles (role);

-- The team an incident is assigned to; the incident it was spawned from (deputised);
-- custom fields (JSON object, checked against the type's declared fields); when it was
-- acknowledged.
ALTER TABLE incidents ADD COLUMN role TEXT;
ALTER TABLE incidents ADD COLUMN parent_id TEXT;
ALTER TABLE incidents ADD COLUMN fields TEXT NOT NULL DEFAULT '{}';
ALTER TABLE incidents ADD COLUMN acknowledged_at BIGINT;
-- The key of the playbook step that spawned it, so a step taken again does not spawn twice.
ALTER TABLE incidents ADD COLUMN step_key TEXT;
CREATE INDEX incidents_by_parent ON incidents (parent_id) WHERE parent_id IS NOT NULL;
CREATE UNIQUE INDEX incidents_by_step_key ON incidents (step_key) WHERE step_key IS NOT NULL;

-- Related incidents, stored in both directions.
CREATE TABLE incident_relations (
    incident_id  TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    related_id   TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (incident_id, related_id)
);

-- Manual tasks, assigned to a user or to a role (only that user, or that role's members,
-- may complete it).
CREATE TABLE tasks (
    -- Time-ordered: 't', 11 hex digits of milliseconds, 16 random hex digits.
    id            TEXT PRIMARY KEY,
    incident_id   TEXT REFERENCES incidents (id) ON DELETE CASCADE,
    title         TEXT NOT NULL,
    description   TEXT NOT NULL,
    assignee      TEXT,
    role          TEXT,
    -- open, done, cancelled
    status        TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    completed_at  BIGINT,
    completed_by  TEXT,
    comment       TEXT,
    -- The key of the playbook step that created it, so a step taken again does not add a second.
    step_key      TEXT UNIQUE
);
CREATE INDEX tasks_by_incident ON tasks (incident_id, created_at);
CREATE INDEX tasks_open ON tasks (status, created_at);

-- SLA timers: 'acknowledge' and 'resolve' on incidents, 'due' on tasks. A paused timer's
-- deadline moves by the time it was paused.
CREATE TABLE sla_timers (
    -- 'incident:ID' or 'task:ID'
    subject       TEXT NOT NULL,
    timer         TEXT NOT NULL,
    -- The incident it belongs to (a task's incident), for the timeline and breach triggers.
    incident_id   TEXT,
    -- How long it runs (a re-opened incident's resolve timer starts again with it).
    duration_ms   BIGINT NOT NULL,
    started_at    BIGINT NOT NULL,
    due_at        BIGINT NOT NULL,
    paused_at     BIGINT,
    paused_ms     BIGINT NOT NULL,
    stopped_at    BIGINT,
    breached_at   BIGINT,
    PRIMARY KEY (subject, timer)
);
CREATE INDEX sla_timers_due ON sla_timers (due_at)
    WHERE stopped_at IS NULL AND breached_at IS NULL AND paused_at IS NULL;
CREATE INDEX sla_timers_by_incident ON sla_timers (incident_id);

-- The user an API token acts for (completing that user's tasks through the API), if any.
ALTER TABLE api_tokens ADD COLUMN user_name TEXT;
