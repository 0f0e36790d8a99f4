-- Operator subscriptions (the seed's NEW_OPERATOR_SUBSCRIPTION): seats per
-- account type for a period, with the payment fields.  While a licence has
-- subscriptions covering now, their seats are the licence's seats.

CREATE TABLE IF NOT EXISTS {subscriptions} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    licence_id INTEGER NOT NULL REFERENCES {licences} (id) ON DELETE CASCADE,
    operators_cc INTEGER NOT NULL,           -- contact-center seats
    operators_com INTEGER NOT NULL,          -- communicator seats
    start_at INTEGER NOT NULL,
    end_at INTEGER NOT NULL,
    payment_method TEXT NOT NULL DEFAULT '',
    net_price TEXT NOT NULL DEFAULT '',      -- decimal as text, e.g. 99.00
    vat TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS subscriptions_licence ON {subscriptions} (licence_id, end_at);

-- How far the webhook worker has read account_events.
CREATE TABLE IF NOT EXISTS {outbox_cursors} (
    name TEXT NOT NULL PRIMARY KEY,
    position INTEGER NOT NULL
);

-- Account events already there when this delta runs are history.
INSERT INTO {outbox_cursors} (name, position) SELECT 'account', COALESCE(MAX(id), 0) FROM {account_events};
