-- A licence's own database (the seed's LC<licence>): settings, groups and
-- the event log.  Chats, visitors and messages come in later deltas.

CREATE TABLE IF NOT EXISTS {settings} (
    name VARCHAR(100) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    value MEDIUMTEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS {op_groups} (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    name_key VARCHAR(100) COLLATE utf8mb4_bin NOT NULL,
    description VARCHAR(500) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    UNIQUE KEY op_groups_name (name_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS {group_members} (
    group_id BIGINT NOT NULL,
    operator BIGINT NOT NULL,
    PRIMARY KEY (group_id, operator),
    CONSTRAINT group_members_group FOREIGN KEY (group_id)
        REFERENCES {op_groups} (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS {event_log} (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    event VARCHAR(40) NOT NULL,
    chat_id BIGINT NULL,
    payload MEDIUMTEXT NOT NULL,
    KEY event_log_time (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
