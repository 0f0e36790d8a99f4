-- Messages visitors left when the licence was closed (outside office
-- hours) or nobody was available: stored, mailed, shown to operators.

CREATE TABLE IF NOT EXISTS {offline_messages} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    visitor_id TEXT NOT NULL,
    group_id INTEGER NULL,
    reason TEXT NOT NULL DEFAULT '',         -- closed | offline
    name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL,
    url TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL DEFAULT 'en',
    mailed_at INTEGER NULL,                  -- when the mail to the licence went out
    handled_at INTEGER NULL,                 -- when an operator marked it done
    handled_by INTEGER NULL                  -- that operator (operators.id)
);

CREATE INDEX IF NOT EXISTS offline_messages_pending ON {offline_messages} (handled_at, id);
