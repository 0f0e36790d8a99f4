-- Canned responses of the web agent: the licence's (operator_id NULL, kept
-- by its administrators) and each operator's own.

CREATE TABLE IF NOT EXISTS {canned_responses} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    operator_id INTEGER NULL,                 -- NULL: the licence's, for everyone
    shortcut TEXT NOT NULL,                   -- typed as /shortcut in the composer
    text TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS canned_responses_owner ON {canned_responses} (operator_id, shortcut);
