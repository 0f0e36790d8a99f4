-- A licence's own database (the seed's LC<licence>): settings, groups and
-- the event log.  Chats, visitors and messages come in later deltas.

CREATE TABLE IF NOT EXISTS {settings} (
    name TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS {op_groups} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS {group_members} (
    group_id INTEGER NOT NULL REFERENCES {op_groups} (id) ON DELETE CASCADE,
    operator INTEGER NOT NULL,               -- operators.id in the global database
    PRIMARY KEY (group_id, operator)
);

CREATE TABLE IF NOT EXISTS {event_log} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    event TEXT NOT NULL,                     -- NEW_OPERATOR, CHAT_STARTED, ...
    chat_id INTEGER NULL,
    payload TEXT NOT NULL                    -- JSON
);

CREATE INDEX IF NOT EXISTS event_log_time ON {event_log} (created_at);
