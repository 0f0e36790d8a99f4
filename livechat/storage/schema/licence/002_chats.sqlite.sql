-- Visitors, chats, their participants and their events.

CREATE TABLE IF NOT EXISTS {visitors} (
    id TEXT NOT NULL PRIMARY KEY,            -- the first-party cookie id
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    visits INTEGER NOT NULL DEFAULT 1,
    name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    customer_id TEXT NOT NULL DEFAULT '',
    verified INTEGER NOT NULL DEFAULT 0      -- identity vouched for by the website
);

CREATE TABLE IF NOT EXISTS {chats} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,    -- also the seed's conference number
    kind TEXT NOT NULL,                      -- visitor | private | team
    status TEXT NOT NULL,                    -- requested | queued | assigned | active | closed
    visitor_id TEXT NULL,
    group_id INTEGER NULL,
    operator INTEGER NULL,                   -- the assigned operator
    inviting_operator INTEGER NULL,
    name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    assigned_at INTEGER NULL,
    accepted_at INTEGER NULL,
    closed_at INTEGER NULL,
    close_reason TEXT NOT NULL DEFAULT '',
    last_seq INTEGER NOT NULL DEFAULT 0,     -- the per-chat sequence allocator
    pair_key TEXT NULL UNIQUE                -- open private chat of two operators
);

CREATE INDEX IF NOT EXISTS chats_visitor ON {chats} (visitor_id, id);
CREATE INDEX IF NOT EXISTS chats_open ON {chats} (status, id);
CREATE INDEX IF NOT EXISTS chats_operator ON {chats} (operator, status);

CREATE TABLE IF NOT EXISTS {chat_participants} (
    chat_id INTEGER NOT NULL REFERENCES {chats} (id) ON DELETE CASCADE,
    participant TEXT NOT NULL,               -- op:<id> or v:<visitor id>
    role TEXT NOT NULL,
    joined_at INTEGER NOT NULL,
    left_at INTEGER NULL,
    PRIMARY KEY (chat_id, participant)
);

CREATE INDEX IF NOT EXISTS chat_participants_who ON {chat_participants} (participant, left_at);

CREATE TABLE IF NOT EXISTS {chat_events} (
    chat_id INTEGER NOT NULL REFERENCES {chats} (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    type TEXT NOT NULL,                      -- ContentEvent, AcceptStatusEvent, JoinEvent, ...
    originator TEXT NOT NULL,
    role TEXT NOT NULL,
    body TEXT NOT NULL,                      -- JSON: the event
    PRIMARY KEY (chat_id, seq)
);

CREATE INDEX IF NOT EXISTS event_log_chat ON {event_log} (chat_id, id);
