-- A user's requests (runs started from a request form, origin 'request:NAME'), newest first,
-- for the console's request page.
CREATE INDEX runs_by_origin ON runs (origin, created_at);
