-- +goose Up
-- github.com/gobilling/billing/sqlstore, schema version 2, PostgreSQL.
-- The store keeps no ordering rule of its own any more: billing orders
-- invoice facts by creation, ID, then progress (attempts, closed, paid).
-- The invoice_version string ("%012d|<invoice id>|%04d", progress 9998
-- for a void or uncollectible invoice, 9999 for a paid one) becomes the
-- invoice_closed column; the rest of it is in invoice_created,
-- invoice_id, invoice_attempt_count and invoice_paid already.
-- Migrate runs it in one transaction.

ALTER TABLE billing_subscriptions ADD COLUMN IF NOT EXISTS invoice_closed BOOLEAN NOT NULL DEFAULT FALSE;

UPDATE billing_subscriptions SET invoice_closed = (RIGHT(invoice_version, 5) = '|9998')
    WHERE invoice_version <> '';

ALTER TABLE billing_subscriptions DROP COLUMN IF EXISTS invoice_version;
