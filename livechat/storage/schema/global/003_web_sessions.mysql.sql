-- Browser sessions of the web agent and the control panel (livechat/websession.py).
-- The cookie holds a random token; only its HMAC (keyed by the session
-- secret) is kept here, so the table alone opens no session.

CREATE TABLE IF NOT EXISTS {web_sessions} (
    id_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    scope VARCHAR(16) NOT NULL,
    licence_id INT NOT NULL,
    operator_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    csrf_token VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_agent VARCHAR(255) NOT NULL DEFAULT '',
    address VARCHAR(64) NOT NULL DEFAULT '',
    KEY web_sessions_operator (licence_id, operator_id),
    KEY web_sessions_expires (expires_at),
    CONSTRAINT web_sessions_fk_licence FOREIGN KEY (licence_id)
        REFERENCES {licences} (id) ON DELETE CASCADE,
    CONSTRAINT web_sessions_fk_operator FOREIGN KEY (operator_id)
        REFERENCES {operators} (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
