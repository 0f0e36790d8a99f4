-- Browser sessions of the web agent and the control panel (livechat/websession.py).
-- The cookie holds a random token; only its HMAC (keyed by the session
-- secret) is kept here, so the table alone opens no session.

CREATE TABLE IF NOT EXISTS {web_sessions} (
    id_hash TEXT NOT NULL PRIMARY KEY,        -- hex HMAC-SHA256 of the cookie's token
    scope TEXT NOT NULL,                      -- agent | panel
    licence_id INTEGER NOT NULL REFERENCES {licences} (id) ON DELETE CASCADE,
    operator_id INTEGER NOT NULL REFERENCES {operators} (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,              -- absolute end (created + SESSION_MAX_AGE)
    csrf_token TEXT NOT NULL,
    user_agent TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT ''
);

CREATE INDEX IF NOT EXISTS web_sessions_operator ON {web_sessions} (licence_id, operator_id);
CREATE INDEX IF NOT EXISTS web_sessions_expires ON {web_sessions} (expires_at);
