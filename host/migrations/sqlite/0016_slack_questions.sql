-- Questions asked in Slack: where a question goes in Slack (`questions.to_slack`, `#soc` or
-- `@person`), and the Slack outbox: the messages to post, update or show to one person,
-- written in the transaction that decided them and delivered later through the slack
-- plugin by the server's sender, like the mail outbox.
ALTER TABLE questions ADD COLUMN to_slack TEXT;

CREATE TABLE slack_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- post (the question, with its buttons), update (who answered), ephemeral (to one person)
    kind            TEXT NOT NULL,
    -- The plugin whose action delivers it.
    plugin          TEXT NOT NULL,
    question_id     TEXT NOT NULL,
    -- A post: the link its buttons carry, by which an answer finds the message again.
    link_id         TEXT,
    -- An update or an ephemeral message: the post it goes to (its channel and ts).
    post_id         INTEGER,
    -- The action's input (JSON); an update's or ephemeral's channel and ts are the post's.
    input           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at         INTEGER,
    failed_at       INTEGER,
    last_error      TEXT,
    -- Where a post went, as Slack answered.
    channel         TEXT,
    ts              TEXT
);
CREATE INDEX slack_outbox_due ON slack_outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX slack_outbox_link ON slack_outbox (link_id);
