-- Messages visitors left when the licence was closed (outside office
-- hours) or nobody was available: stored, mailed, shown to operators.

CREATE TABLE IF NOT EXISTS {offline_messages} (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    visitor_id VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
    group_id BIGINT NULL,
    reason VARCHAR(12) NOT NULL DEFAULT '',
    name VARCHAR(200) NOT NULL DEFAULT '',
    email VARCHAR(254) NOT NULL DEFAULT '',
    message MEDIUMTEXT NOT NULL,
    url VARCHAR(2000) NOT NULL DEFAULT '',
    address VARCHAR(64) NOT NULL DEFAULT '',
    language VARCHAR(8) NOT NULL DEFAULT 'en',
    mailed_at BIGINT NULL,
    handled_at BIGINT NULL,
    handled_by BIGINT NULL,
    KEY offline_messages_pending (handled_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
