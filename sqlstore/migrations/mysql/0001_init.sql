-- +goose Up
-- github.com/gobilling/billing/sqlstore, schema version 1, MySQL 8 and MariaDB.
-- Times are Unix seconds, 0 when not set. Every statement is idempotent
-- (MySQL commits each DDL statement on its own), and text compares
-- byte-wise (utf8mb4_bin): Stripe IDs are case-sensitive.

-- Which Stripe customer belongs to which user: one each way.
CREATE TABLE IF NOT EXISTS billing_customers (
    user_id     VARCHAR(255) NOT NULL,
    customer_id VARCHAR(255) NOT NULL,
    linked_at   BIGINT       NOT NULL,
    PRIMARY KEY (user_id),
    UNIQUE KEY billing_customers_customer_id_key (customer_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per Stripe subscription: the facts Membership is computed from.
-- version is Stripe's time of the state held (0 while only the latest
-- invoice's facts are known, with status ''); the invoice_* columns have
-- their own version, compared byte-wise by the store.
CREATE TABLE IF NOT EXISTS billing_subscriptions (
    id                           VARCHAR(255) NOT NULL,
    customer_id                  VARCHAR(255) NOT NULL,
    user_id                      VARCHAR(255) NOT NULL,
    status                       VARCHAR(64)  NOT NULL,
    items                        LONGTEXT     NOT NULL,
    cancel_at_period_end         BOOLEAN      NOT NULL,
    cancel_at                    BIGINT       NOT NULL,
    canceled_at                  BIGINT       NOT NULL,
    ended_at                     BIGINT       NOT NULL,
    trial_start                  BIGINT       NOT NULL,
    trial_end                    BIGINT       NOT NULL,
    latest_invoice_id            VARCHAR(255) NOT NULL,
    version                      BIGINT       NOT NULL,
    invoice_id                   VARCHAR(255) NOT NULL,
    invoice_created              BIGINT       NOT NULL,
    invoice_paid                 BOOLEAN      NOT NULL,
    invoice_attempt_count        BIGINT       NOT NULL,
    invoice_next_payment_attempt BIGINT       NOT NULL,
    invoice_version              VARCHAR(255) NOT NULL,
    PRIMARY KEY (id),
    KEY billing_subscriptions_user_id_idx (user_id),
    KEY billing_subscriptions_customer_id_idx (customer_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The events applied, recorded in the transaction that applied them.
CREATE TABLE IF NOT EXISTS billing_events (
    id           VARCHAR(255) NOT NULL,
    processed_at BIGINT       NOT NULL,
    PRIMARY KEY (id),
    KEY billing_events_processed_at_idx (processed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One-time purchases, granted once per Checkout Session.
CREATE TABLE IF NOT EXISTS billing_grants (
    checkout_session_id VARCHAR(255) NOT NULL,
    user_id             VARCHAR(255) NOT NULL,
    customer_id         VARCHAR(255) NOT NULL,
    price_id            VARCHAR(255) NOT NULL,
    quantity            BIGINT       NOT NULL,
    credits             BIGINT       NOT NULL,
    amount_total        BIGINT       NOT NULL,
    currency            VARCHAR(16)  NOT NULL,
    granted_at          BIGINT       NOT NULL,
    PRIMARY KEY (checkout_session_id),
    KEY billing_grants_user_id_idx (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Events that could not be applied, kept for an operator to replay.
CREATE TABLE IF NOT EXISTS billing_parked_events (
    id          VARCHAR(255) NOT NULL,
    type        VARCHAR(255) NOT NULL,
    customer_id VARCHAR(255) NOT NULL,
    reason      TEXT         NOT NULL,
    payload     LONGBLOB     NOT NULL,
    parked_at   BIGINT       NOT NULL,
    PRIMARY KEY (id),
    KEY billing_parked_events_parked_at_idx (parked_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
