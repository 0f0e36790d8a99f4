-- The global database (the seed's db_livechat): licences, operators, API keys.
-- Times are milliseconds since the epoch (UTC).

CREATE TABLE IF NOT EXISTS {licences} (
    id INT NOT NULL PRIMARY KEY,              -- the licence number
    lic_type SMALLINT NOT NULL,               -- 1 ASP-FULL, 9 ASP-DEMO
    name VARCHAR(200) NOT NULL DEFAULT '',
    language VARCHAR(8) NOT NULL DEFAULT 'en',
    expires_at BIGINT NULL,
    seats_cc INT NULL,
    seats_com INT NULL,
    max_chats_default INT NULL,
    web_page VARCHAR(500) NOT NULL DEFAULT '',
    promo_code VARCHAR(100) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    disabled TINYINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS {operators} (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    licence_id INT NOT NULL,
    nick VARCHAR(64) NOT NULL,
    nick_key VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
    operator_id VARCHAR(254) NOT NULL,
    operator_key VARCHAR(254) COLLATE utf8mb4_bin NOT NULL,
    first_name VARCHAR(100) NOT NULL DEFAULT '',
    last_name VARCHAR(100) NOT NULL DEFAULT '',
    phone VARCHAR(40) NOT NULL DEFAULT '',
    account_type VARCHAR(20) NOT NULL,
    max_chats INT NULL,
    is_admin TINYINT NOT NULL DEFAULT 0,
    password_hash VARCHAR(255) NOT NULL,
    disabled TINYINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE KEY operators_nick (licence_id, nick_key),
    UNIQUE KEY operators_email (licence_id, operator_key),
    CONSTRAINT operators_licence FOREIGN KEY (licence_id)
        REFERENCES {licences} (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS {api_keys} (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    licence_id INT NOT NULL,
    key_id VARCHAR(32) COLLATE utf8mb4_bin NOT NULL,
    secret_hash VARCHAR(255) NOT NULL,
    name VARCHAR(200) NOT NULL DEFAULT '',
    scopes VARCHAR(500) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NULL,
    revoked TINYINT NOT NULL DEFAULT 0,
    UNIQUE KEY api_keys_key (key_id),
    KEY api_keys_licence (licence_id),
    CONSTRAINT api_keys_licence FOREIGN KEY (licence_id)
        REFERENCES {licences} (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS {server_state} (
    name VARCHAR(64) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Events about accounts (NEW_LICENCE, NEW_OPERATOR, LICENCE_INFO, ...),
-- written in the same transaction as the change they describe.
CREATE TABLE IF NOT EXISTS {account_events} (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    licence_id INT NOT NULL,
    created_at BIGINT NOT NULL,
    event VARCHAR(40) NOT NULL,
    payload MEDIUMTEXT NOT NULL,
    KEY account_events_licence (licence_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
