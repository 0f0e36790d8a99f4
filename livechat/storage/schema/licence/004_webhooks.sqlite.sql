-- Webhooks, apps and the delivery of events to them (docs/webhooks.md).
-- The outbox is the event tables themselves (event_log, chat_events, and the
-- global account_events), written in the transaction of the change; the
-- worker copies each event into one {deliveries} row per endpoint and
-- tracks it there until it is delivered or dead.

-- A global, gap-free order over chat events, so the worker can follow them
-- with one cursor (sqlite has one writer: MAX + 1 is safe).
ALTER TABLE {chat_events} ADD COLUMN gid INTEGER NULL;

UPDATE {chat_events} SET gid = rowid;

CREATE UNIQUE INDEX IF NOT EXISTS chat_events_gid ON {chat_events} (gid);

CREATE TRIGGER IF NOT EXISTS chat_events_gid_after_insert AFTER INSERT ON {chat_events} WHEN NEW.gid IS NULL BEGIN UPDATE {chat_events} SET gid = (SELECT COALESCE(MAX(gid), 0) + 1 FROM {chat_events}) WHERE rowid = NEW.rowid; END;

-- RPC webhooks a licence sets through the API: one URL per event name
-- (the seed's twelve), form-encoded like the EVENT_* URLs of lc_serv.cfg.
CREATE TABLE IF NOT EXISTS {webhooks} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT NOT NULL,                     -- CHAT_STARTED, ... or * for all
    url TEXT NOT NULL,
    method TEXT NOT NULL DEFAULT 'POST',     -- POST | GET
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Connector apps (the seed's app model): JSON notifications of chat events.
CREATE TABLE IF NOT EXISTS {apps} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    enabled INTEGER NOT NULL DEFAULT 1,
    endpoint TEXT NOT NULL DEFAULT '',       -- for every event type
    endpoints TEXT NOT NULL DEFAULT '{}',    -- JSON {event type: URL}, overrides
    headers TEXT NOT NULL DEFAULT '{}',      -- JSON {name: value}, sent with each
    all_chats INTEGER NOT NULL DEFAULT 0,    -- 1: every visitor chat; 0: its own
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One row per (endpoint, event): the delivery state.
CREATE TABLE IF NOT EXISTS {deliveries} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL,                  -- cfg:<EVENT> | hook:<id> | app:<id>
    event_key TEXT NOT NULL,                 -- log:<id> | acct:<id> | chat:<chat>:<seq>
    event TEXT NOT NULL,                     -- CHAT_STARTED, ContentEvent, ...
    chat_id INTEGER NULL,
    order_key TEXT NOT NULL,                 -- deliveries with one key go in order
    order_no INTEGER NOT NULL,
    payload TEXT NOT NULL,                   -- JSON
    state TEXT NOT NULL,                     -- pending | delivered | dead
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    retry_from INTEGER NOT NULL,             -- retries stop RETRY_FOR after this
    next_at INTEGER NOT NULL,
    last_at INTEGER NULL,
    last_status INTEGER NULL,
    last_error TEXT NOT NULL DEFAULT '',
    done_at INTEGER NULL,
    claimed_by TEXT NULL,
    claim_until INTEGER NULL,
    UNIQUE (endpoint, event_key)
);

CREATE INDEX IF NOT EXISTS deliveries_due ON {deliveries} (state, next_at);
CREATE INDEX IF NOT EXISTS deliveries_order ON {deliveries} (endpoint, order_key, state, order_no);
CREATE INDEX IF NOT EXISTS deliveries_done ON {deliveries} (state, done_at);

-- How far the worker has read each source table.
CREATE TABLE IF NOT EXISTS {outbox_cursors} (
    name TEXT NOT NULL PRIMARY KEY,
    position INTEGER NOT NULL
);

-- Events already in the tables when this delta runs are history: the worker
-- starts after them.
INSERT INTO {outbox_cursors} (name, position) SELECT 'log', COALESCE(MAX(id), 0) FROM {event_log};

INSERT INTO {outbox_cursors} (name, position) SELECT 'chat', COALESCE(MAX(gid), 0) FROM {chat_events};
