-- +goose Up
-- github.com/gobilling/billing/sqlstore, schema version 1, SQLite.
-- Times are Unix seconds, 0 when not set. Every statement is idempotent.

-- Which Stripe customer belongs to which user: one each way.
CREATE TABLE IF NOT EXISTS billing_customers (
    user_id     TEXT   NOT NULL,
    customer_id TEXT   NOT NULL,
    linked_at   BIGINT NOT NULL,
    CONSTRAINT billing_customers_pkey PRIMARY KEY (user_id),
    CONSTRAINT billing_customers_customer_id_key UNIQUE (customer_id)
);

-- One row per Stripe subscription: the facts Membership is computed from.
-- version is Stripe's time of the state held (0 while only the latest
-- invoice's facts are known, with status ''); the invoice_* columns have
-- their own version, compared byte-wise by the store.
CREATE TABLE IF NOT EXISTS billing_subscriptions (
    id                           TEXT    NOT NULL,
    customer_id                  TEXT    NOT NULL,
    user_id                      TEXT    NOT NULL,
    status                       TEXT    NOT NULL,
    items                        TEXT    NOT NULL,
    cancel_at_period_end         BOOLEAN NOT NULL,
    cancel_at                    BIGINT  NOT NULL,
    canceled_at                  BIGINT  NOT NULL,
    ended_at                     BIGINT  NOT NULL,
    trial_start                  BIGINT  NOT NULL,
    trial_end                    BIGINT  NOT NULL,
    latest_invoice_id            TEXT    NOT NULL,
    version                      BIGINT  NOT NULL,
    invoice_id                   TEXT    NOT NULL,
    invoice_created              BIGINT  NOT NULL,
    invoice_paid                 BOOLEAN NOT NULL,
    invoice_attempt_count        BIGINT  NOT NULL,
    invoice_next_payment_attempt BIGINT  NOT NULL,
    invoice_version              TEXT    NOT NULL,
    CONSTRAINT billing_subscriptions_pkey PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS billing_subscriptions_user_id_idx ON billing_subscriptions (user_id);
CREATE INDEX IF NOT EXISTS billing_subscriptions_customer_id_idx ON billing_subscriptions (customer_id);

-- The events applied, recorded in the transaction that applied them.
CREATE TABLE IF NOT EXISTS billing_events (
    id           TEXT   NOT NULL,
    processed_at BIGINT NOT NULL,
    CONSTRAINT billing_events_pkey PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS billing_events_processed_at_idx ON billing_events (processed_at);

-- One-time purchases, granted once per Checkout Session.
CREATE TABLE IF NOT EXISTS billing_grants (
    checkout_session_id TEXT   NOT NULL,
    user_id             TEXT   NOT NULL,
    customer_id         TEXT   NOT NULL,
    price_id            TEXT   NOT NULL,
    quantity            BIGINT NOT NULL,
    credits             BIGINT NOT NULL,
    amount_total        BIGINT NOT NULL,
    currency            TEXT   NOT NULL,
    granted_at          BIGINT NOT NULL,
    CONSTRAINT billing_grants_pkey PRIMARY KEY (checkout_session_id)
);
CREATE INDEX IF NOT EXISTS billing_grants_user_id_idx ON billing_grants (user_id);

-- Events that could not be applied, kept for an operator to replay.
CREATE TABLE IF NOT EXISTS billing_parked_events (
    id          TEXT   NOT NULL,
    type        TEXT   NOT NULL,
    customer_id TEXT   NOT NULL,
    reason      TEXT   NOT NULL,
    payload     BLOB   NOT NULL,
    parked_at   BIGINT NOT NULL,
    CONSTRAINT billing_parked_events_pkey PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS billing_parked_events_parked_at_idx ON billing_parked_events (parked_at);
