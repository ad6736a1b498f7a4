-- +goose Up
-- github.com/gobilling/billing/sqlstore, schema version 7, SQLite.
-- Checkpoints: a long job's place, by name, so that it resumes where it
-- stopped (Billing.SyncAll keeps the last subscription of the last page
-- it finished). And an index to list the subscriptions of a status, by
-- ID (Store.ListSubscriptions: billing members --status past_due).

CREATE TABLE IF NOT EXISTS billing_checkpoints (
    name       TEXT   NOT NULL,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT billing_checkpoints_pkey PRIMARY KEY (name)
);

CREATE INDEX IF NOT EXISTS billing_subscriptions_status_idx ON billing_subscriptions (status, id);
