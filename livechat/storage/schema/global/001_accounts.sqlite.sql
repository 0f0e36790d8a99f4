-- The global database (the seed's db_livechat): licences, operators, API keys.
-- Times are milliseconds since the epoch (UTC).

CREATE TABLE IF NOT EXISTS {licences} (
    id INTEGER NOT NULL PRIMARY KEY,          -- the licence number
    lic_type INTEGER NOT NULL,                -- 1 ASP-FULL, 9 ASP-DEMO
    name TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL DEFAULT 'en',
    expires_at INTEGER NULL,                  -- NULL: never
    seats_cc INTEGER NULL,                    -- contact-center seats; NULL: unlimited
    seats_com INTEGER NULL,                   -- communicator seats; NULL: unlimited
    max_chats_default INTEGER NULL,           -- NULL: server's MAX_CHATS_PER_AGENT
    web_page TEXT NOT NULL DEFAULT '',
    promo_code TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS {operators} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    licence_id INTEGER NOT NULL REFERENCES {licences} (id) ON DELETE CASCADE,
    nick TEXT NOT NULL,
    nick_key TEXT NOT NULL,                   -- casefolded nick, unique per licence
    operator_id TEXT NOT NULL,                -- the seed's LIVECHAT ID: an e-mail
    operator_key TEXT NOT NULL,               -- casefolded e-mail
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '',
    account_type TEXT NOT NULL,               -- communicator | contact_center
    max_chats INTEGER NULL,                   -- NULL: the licence default
    is_admin INTEGER NOT NULL DEFAULT 0,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (licence_id, nick_key),
    UNIQUE (licence_id, operator_key)
);

CREATE TABLE IF NOT EXISTS {api_keys} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    licence_id INTEGER NOT NULL REFERENCES {licences} (id) ON DELETE CASCADE,
    key_id TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    scopes TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    last_used_at INTEGER NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX IF NOT EXISTS api_keys_licence ON {api_keys} (licence_id);

CREATE TABLE IF NOT EXISTS {server_state} (
    name TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

-- Events about accounts (NEW_LICENCE, NEW_OPERATOR, LICENCE_INFO, ...),
-- written in the same transaction as the change they describe.
CREATE TABLE IF NOT EXISTS {account_events} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    licence_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL                     -- JSON, the seed's field names
);

CREATE INDEX IF NOT EXISTS account_events_licence ON {account_events} (licence_id, id);
