-- +goose Up
-- github.com/gobilling/billing/sqlstore, schema version 7, MySQL 8 and MariaDB.
-- Checkpoints: a long job's place, by name, so that it resumes where it
-- stopped (Billing.SyncAll keeps the last subscription of the last page
-- it finished). And an index to list the subscriptions of a status, by
-- ID (Store.ListSubscriptions: billing members --status past_due).
--
-- MySQL commits each DDL statement on its own: the table is created only
-- if missing and the index added only while it is missing (a statement
-- prepared from a check of information_schema), so the script can be run
-- again from the top.

CREATE TABLE IF NOT EXISTS billing_checkpoints (
    name       VARCHAR(255) NOT NULL,
    value      TEXT         NOT NULL,
    updated_at BIGINT       NOT NULL,
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

SET @sqlstore_stmt = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE billing_subscriptions ADD KEY billing_subscriptions_status_idx (status, id)',
    'DO 0')
    FROM information_schema.statistics
    WHERE table_schema = DATABASE() AND table_name = 'billing_subscriptions' AND index_name = 'billing_subscriptions_status_idx');
PREPARE sqlstore_step FROM @sqlstore_stmt;
EXECUTE sqlstore_step;
DEALLOCATE PREPARE sqlstore_step;
