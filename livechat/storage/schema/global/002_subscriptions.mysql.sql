-- Operator subscriptions (the seed's NEW_OPERATOR_SUBSCRIPTION): seats per
-- account type for a period, with the payment fields.  While a licence has
-- subscriptions covering now, their seats are the licence's seats.

CREATE TABLE IF NOT EXISTS {subscriptions} (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    licence_id INT NOT NULL,
    operators_cc INT NOT NULL,
    operators_com INT NOT NULL,
    start_at BIGINT NOT NULL,
    end_at BIGINT NOT NULL,
    payment_method VARCHAR(40) NOT NULL DEFAULT '',
    net_price VARCHAR(20) NOT NULL DEFAULT '',
    vat VARCHAR(20) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    KEY subscriptions_licence (licence_id, end_at),
    CONSTRAINT subscriptions_licence FOREIGN KEY (licence_id)
        REFERENCES {licences} (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS {outbox_cursors} (
    name VARCHAR(64) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    position BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Account events already there when this delta runs are history.
INSERT IGNORE INTO {outbox_cursors} (name, position) SELECT 'account', COALESCE(MAX(id), 0) FROM {account_events};
