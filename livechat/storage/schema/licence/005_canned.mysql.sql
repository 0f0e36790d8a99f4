-- Canned responses of the web agent: the licence's (operator_id NULL, kept
-- by its administrators) and each operator's own.

CREATE TABLE IF NOT EXISTS {canned_responses} (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    operator_id BIGINT NULL,
    shortcut VARCHAR(64) NOT NULL,
    text MEDIUMTEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    KEY canned_responses_owner (operator_id, shortcut)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
