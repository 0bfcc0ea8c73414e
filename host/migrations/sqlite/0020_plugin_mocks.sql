-- Plugins in mock mode (`osprey plugin mock`): their actions answer from canned cases and/or
-- generated data, and no vendor is reached. A row is the mock in force; none, the real plugin.
CREATE TABLE plugin_mocks (
    plugin        TEXT PRIMARY KEY,
    -- The cases file as given (TOML, `[[mock]]` tables), NULL when only generating.
    cases_toml    TEXT,
    -- SHA-256 of cases_toml, hex; NULL without cases.
    cases_digest  TEXT,
    -- 1: answer what no case matches with data generated from the output schema.
    generate      INTEGER NOT NULL,
    set_by        TEXT NOT NULL,
    set_at        INTEGER NOT NULL
);
