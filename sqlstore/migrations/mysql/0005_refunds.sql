-- +goose Up
-- github.com/gobilling/billing/sqlstore, schema version 5, MySQL 8 and MariaDB.
-- Refunds: one row per refunded payment (PaymentIntent), the amount
-- refunded so far, kept apart from the grant the payment bought so that a
-- refund arriving before its purchase is kept. version is Stripe's time
-- of the latest refund fact kept, in Unix seconds. A grant now keeps its
-- payment, by which a refund finds it ('' for the grants made before).
--
-- MySQL commits each DDL statement on its own, so a crash can stop this
-- script anywhere: the table is created only if missing, and the column
-- added only while it is missing, so the script can be run again from
-- the top. MySQL 8 has no ADD COLUMN IF NOT EXISTS: that step is a
-- statement prepared from a check of information_schema, on one
-- connection.

CREATE TABLE IF NOT EXISTS billing_refunds (
    payment_intent_id VARCHAR(255) NOT NULL,
    charge_id         VARCHAR(255) NOT NULL,
    user_id           VARCHAR(255) NOT NULL,
    customer_id       VARCHAR(255) NOT NULL,
    amount            BIGINT       NOT NULL,
    currency          VARCHAR(16)  NOT NULL,
    version           BIGINT       NOT NULL,
    PRIMARY KEY (payment_intent_id),
    KEY billing_refunds_user_id_idx (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

SET @sqlstore_stmt = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE billing_grants ADD COLUMN payment_intent_id VARCHAR(255) NOT NULL DEFAULT ''''',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'billing_grants' AND column_name = 'payment_intent_id');
PREPARE sqlstore_step FROM @sqlstore_stmt;
EXECUTE sqlstore_step;
DEALLOCATE PREPARE sqlstore_step;
