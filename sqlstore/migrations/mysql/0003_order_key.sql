-- +goose Up
-- github.com/gobilling/billing/sqlstore, schema version 3, MySQL 8 and MariaDB.
-- order_key is billing's ordering key of a subscription's state, which
-- Store.ApplyNewer compares (and never interprets) to write a newer state
-- in one statement. Existing rows get the key billing gives their state:
-- 0 with no state; then by phase (2^40 apart: incomplete, live, final),
-- plus the version in seconds; every final state the same.
-- MySQL commits DDL as it goes: the column is added only if missing, and
-- the keys are computed again on a rerun, so the script can be run again
-- from the top after a crash.

SET @sqlstore_stmt = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE billing_subscriptions ADD COLUMN order_key BIGINT NOT NULL DEFAULT 0',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'billing_subscriptions' AND column_name = 'order_key');
PREPARE sqlstore_step FROM @sqlstore_stmt;
EXECUTE sqlstore_step;
DEALLOCATE PREPARE sqlstore_step;

UPDATE billing_subscriptions SET order_key = CASE
    WHEN status = '' OR version = 0 THEN 0
    WHEN status IN ('canceled', 'incomplete_expired') THEN 3298534883328
    WHEN status = 'incomplete' THEN 1099511627776 + version
    ELSE 2199023255552 + version END;
