-- +goose Up
-- github.com/gobilling/billing/sqlstore, schema version 3, PostgreSQL.
-- order_key is billing's ordering key of a subscription's state, which
-- Store.ApplyNewer compares (and never interprets) to write a newer state
-- in one statement. Existing rows get the key billing gives their state:
-- 0 with no state; then by phase (2^40 apart: incomplete, live, final),
-- plus the version in seconds; every final state the same.
-- Migrate runs it in one transaction.

ALTER TABLE billing_subscriptions ADD COLUMN IF NOT EXISTS order_key BIGINT NOT NULL DEFAULT 0;

-- A subscription's row is updated again and again, its indexed columns
-- never: room on its page lets PostgreSQL update it in place (a HOT
-- update, no index entries), which is most of an applied event's cost
-- under load.
ALTER TABLE billing_subscriptions SET (fillfactor = 70);

UPDATE billing_subscriptions SET order_key = CASE
    WHEN status = '' OR version = 0 THEN 0
    WHEN status IN ('canceled', 'incomplete_expired') THEN 3298534883328
    WHEN status = 'incomplete' THEN 1099511627776 + version
    ELSE 2199023255552 + version END;
