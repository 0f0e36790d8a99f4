-- Visitors, chats, their participants and their events.

CREATE TABLE IF NOT EXISTS {visitors} (
    id VARCHAR(64) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    visits INT NOT NULL DEFAULT 1,
    name VARCHAR(200) NOT NULL DEFAULT '',
    email VARCHAR(254) NOT NULL DEFAULT '',
    customer_id VARCHAR(200) NOT NULL DEFAULT '',
    verified TINYINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS {chats} (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    kind VARCHAR(10) NOT NULL,
    status VARCHAR(12) NOT NULL,
    visitor_id VARCHAR(64) COLLATE utf8mb4_bin NULL,
    group_id BIGINT NULL,
    operator BIGINT NULL,
    inviting_operator BIGINT NULL,
    name VARCHAR(200) NOT NULL DEFAULT '',
    email VARCHAR(254) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    assigned_at BIGINT NULL,
    accepted_at BIGINT NULL,
    closed_at BIGINT NULL,
    close_reason VARCHAR(40) NOT NULL DEFAULT '',
    last_seq INT NOT NULL DEFAULT 0,
    pair_key VARCHAR(64) COLLATE utf8mb4_bin NULL,
    UNIQUE KEY chats_pair (pair_key),
    KEY chats_visitor (visitor_id, id),
    KEY chats_open (status, id),
    KEY chats_operator (operator, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS {chat_participants} (
    chat_id BIGINT NOT NULL,
    participant VARCHAR(80) COLLATE utf8mb4_bin NOT NULL,
    role VARCHAR(20) NOT NULL,
    joined_at BIGINT NOT NULL,
    left_at BIGINT NULL,
    PRIMARY KEY (chat_id, participant),
    KEY chat_participants_who (participant, left_at),
    CONSTRAINT chat_participants_chat FOREIGN KEY (chat_id)
        REFERENCES {chats} (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS {chat_events} (
    chat_id BIGINT NOT NULL,
    seq INT NOT NULL,
    created_at BIGINT NOT NULL,
    type VARCHAR(24) NOT NULL,
    originator VARCHAR(80) COLLATE utf8mb4_bin NOT NULL,
    role VARCHAR(20) NOT NULL,
    body MEDIUMTEXT NOT NULL,
    PRIMARY KEY (chat_id, seq),
    CONSTRAINT chat_events_chat FOREIGN KEY (chat_id)
        REFERENCES {chats} (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE INDEX IF NOT EXISTS event_log_chat ON {event_log} (chat_id, id);
