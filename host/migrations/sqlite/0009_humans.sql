-- Humans in the loop: questions a playbook asks (ask, approve, form), the signed links that
-- answer them or escalate an incident, the mail outbox, and user sign-in for the inbox.
-- Times are Unix ms.

-- A question waits for one answer: from a user, a member of a role, or whoever holds the
-- link sent to an outside address. A timed-out question is answered by its default.
CREATE TABLE questions (
    -- Time-ordered: 'q', 11 hex digits of milliseconds, 16 random hex digits.
    id              TEXT PRIMARY KEY,
    -- ask, approve, form
    kind            TEXT NOT NULL,
    title           TEXT NOT NULL,
    body            TEXT NOT NULL,
    -- JSON: options (ask), fields (form), default, reminder settings.
    spec            TEXT NOT NULL,
    to_user         TEXT,
    to_role         TEXT,
    to_email        TEXT,
    incident_id     TEXT,
    run_id          TEXT,
    -- The key of the playbook step that asked it, so a step taken again does not ask twice.
    step_key        TEXT UNIQUE,
    -- open, answered, timed_out, cancelled
    status          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    due_at          INTEGER,
    remind_every_ms INTEGER,
    next_remind_at  INTEGER,
    reminders_sent  INTEGER NOT NULL DEFAULT 0,
    -- JSON: the answer (an option, true/false with a comment, the form's values).
    answer          TEXT,
    answered_by     TEXT,
    answered_at     INTEGER,
    -- web, link, api, timeout
    answered_via    TEXT
);
CREATE INDEX questions_open_due ON questions (due_at) WHERE status = 'open';
CREATE INDEX questions_open_remind ON questions (next_remind_at) WHERE status = 'open';
CREATE INDEX questions_by_user ON questions (to_user, status);
CREATE INDEX questions_by_role ON questions (to_role, status);
CREATE INDEX questions_by_incident ON questions (incident_id);

-- Signed links. The token in a URL is the row's id, purpose and expiry signed with the link
-- key; the row makes it single-use and records who followed it.
CREATE TABLE links (
    id           TEXT PRIMARY KEY,
    -- answer (a question), escalate (an incident: talk to a human)
    purpose      TEXT NOT NULL,
    question_id  TEXT,
    incident_id  TEXT,
    -- user:NAME or email:ADDRESS
    recipient    TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER,
    used_from    TEXT,
    used_agent   TEXT
);
CREATE INDEX links_by_question ON links (question_id);

-- Mail to send, written in the transaction that decided to send it; a sender loop delivers
-- it over SMTP and retries with backoff, so a crash or an SMTP outage loses nothing.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    to_addr         TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    -- What it is about ('question:ID', 'incident:ID'), for the audit log and the UI.
    about           TEXT,
    -- The key of the playbook step that sent it, so a step taken again does not send twice.
    step_key        TEXT UNIQUE,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at         INTEGER,
    -- Given up after too many attempts (set with last_error).
    failed_at       INTEGER,
    last_error      TEXT
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;

-- Sign-in for the inbox: argon2id password hashes and sessions (the cookie holds a random
-- token; only its SHA-256 is stored).
ALTER TABLE users ADD COLUMN password_hash TEXT;
CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    user_name   TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    -- The CSRF token every form of this session must carry.
    csrf        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

-- A run woken (a question it waits on was answered) while a worker was replaying it: the
-- worker's reschedule then makes it due at once instead of at its timer.
ALTER TABLE runs ADD COLUMN woken_at INTEGER;
