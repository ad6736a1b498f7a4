-- +goose Up
-- github.com/gobilling/billing/sqlstore, schema version 5, PostgreSQL.
-- Refunds: one row per refunded payment (PaymentIntent), the amount
-- refunded so far, kept apart from the grant the payment bought so that a
-- refund arriving before its purchase is kept. version is Stripe's time
-- of the latest refund fact kept, in Unix seconds. A grant now keeps its
-- payment, by which a refund finds it ('' for the grants made before).
-- Every statement is idempotent.

CREATE TABLE IF NOT EXISTS billing_refunds (
    payment_intent_id TEXT   NOT NULL,
    charge_id         TEXT   NOT NULL,
    user_id           TEXT   NOT NULL,
    customer_id       TEXT   NOT NULL,
    amount            BIGINT NOT NULL,
    currency          TEXT   NOT NULL,
    version           BIGINT NOT NULL,
    CONSTRAINT billing_refunds_pkey PRIMARY KEY (payment_intent_id)
);
CREATE INDEX IF NOT EXISTS billing_refunds_user_id_idx ON billing_refunds (user_id);

ALTER TABLE billing_grants ADD COLUMN IF NOT EXISTS payment_intent_id TEXT NOT NULL DEFAULT '';
