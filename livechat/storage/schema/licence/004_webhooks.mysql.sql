-- Webhooks, apps and the delivery of events to them (docs/webhooks.md).
-- The outbox is the event tables themselves (event_log, chat_events, and the
-- global account_events), written in the transaction of the change; the
-- worker copies each event into one {deliveries} row per endpoint and
-- tracks it there until it is delivered or dead.

-- A global order over chat events, so the worker can follow them with one
-- cursor (ids may commit out of order; the worker waits for gaps).
ALTER TABLE {chat_events} ADD COLUMN IF NOT EXISTS gid BIGINT NOT NULL AUTO_INCREMENT, ADD UNIQUE KEY chat_events_gid (gid);

CREATE TABLE IF NOT EXISTS {webhooks} (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event VARCHAR(40) NOT NULL,
    url VARCHAR(2000) NOT NULL,
    method VARCHAR(8) NOT NULL DEFAULT 'POST',
    enabled TINYINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS {apps} (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    description VARCHAR(2000) NOT NULL DEFAULT '',
    enabled TINYINT NOT NULL DEFAULT 1,
    endpoint VARCHAR(2000) NOT NULL DEFAULT '',
    endpoints MEDIUMTEXT NOT NULL,
    headers MEDIUMTEXT NOT NULL,
    all_chats TINYINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS {deliveries} (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    endpoint VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
    event_key VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
    event VARCHAR(40) NOT NULL,
    chat_id BIGINT NULL,
    order_key VARCHAR(120) COLLATE utf8mb4_bin NOT NULL,
    order_no BIGINT NOT NULL,
    payload MEDIUMTEXT NOT NULL,
    state VARCHAR(10) NOT NULL,
    attempts INT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    retry_from BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    last_at BIGINT NULL,
    last_status INT NULL,
    last_error VARCHAR(500) NOT NULL DEFAULT '',
    done_at BIGINT NULL,
    claimed_by VARCHAR(64) NULL,
    claim_until BIGINT NULL,
    UNIQUE KEY deliveries_event (endpoint, event_key),
    KEY deliveries_due (state, next_at),
    KEY deliveries_order (endpoint, order_key, state, order_no),
    KEY deliveries_done (state, done_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS {outbox_cursors} (
    name VARCHAR(64) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    position BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Events already in the tables when this delta runs are history: the worker
-- starts after them.
INSERT IGNORE INTO {outbox_cursors} (name, position) SELECT 'log', COALESCE(MAX(id), 0) FROM {event_log};

INSERT IGNORE INTO {outbox_cursors} (name, position) SELECT 'chat', COALESCE(MAX(gid), 0) FROM {chat_events};
