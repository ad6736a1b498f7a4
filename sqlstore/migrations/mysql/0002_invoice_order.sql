-- +goose Up
-- github.com/gobilling/billing/sqlstore, schema version 2, MySQL 8 and MariaDB.
-- The store keeps no ordering rule of its own any more: billing orders
-- invoice facts by creation, ID, then progress (attempts, closed, paid).
-- The invoice_version string ("%012d|<invoice id>|%04d", progress 9998
-- for a void or uncollectible invoice, 9999 for a paid one) becomes the
-- invoice_closed column; the rest of it is in invoice_created,
-- invoice_id, invoice_attempt_count and invoice_paid already.
--
-- MySQL commits each DDL statement on its own, so a crash can stop this
-- script anywhere: every step runs only while it still has something to
-- do (the column to add is missing; the column to read and drop is
-- there), so the script can be run again from the top. MySQL 8 has no
-- ADD COLUMN IF NOT EXISTS: each step is a statement prepared from a
-- check of information_schema, on one connection.

SET @sqlstore_stmt = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE billing_subscriptions ADD COLUMN invoice_closed BOOLEAN NOT NULL DEFAULT FALSE',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'billing_subscriptions' AND column_name = 'invoice_closed');
PREPARE sqlstore_step FROM @sqlstore_stmt;
EXECUTE sqlstore_step;
DEALLOCATE PREPARE sqlstore_step;

SET @sqlstore_stmt = (SELECT IF(COUNT(*) = 1,
    'UPDATE billing_subscriptions SET invoice_closed = (RIGHT(invoice_version, 5) = ''|9998'') WHERE invoice_version <> ''''',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'billing_subscriptions' AND column_name = 'invoice_version');
PREPARE sqlstore_step FROM @sqlstore_stmt;
EXECUTE sqlstore_step;
DEALLOCATE PREPARE sqlstore_step;

SET @sqlstore_stmt = (SELECT IF(COUNT(*) = 1,
    'ALTER TABLE billing_subscriptions DROP COLUMN invoice_version',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'billing_subscriptions' AND column_name = 'invoice_version');
PREPARE sqlstore_step FROM @sqlstore_stmt;
EXECUTE sqlstore_step;
DEALLOCATE PREPARE sqlstore_step;
