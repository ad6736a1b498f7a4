-- +goose Up
-- github.com/gobilling/billing/sqlstore, schema version 6, PostgreSQL.
-- The record of an applied event keeps, beside its ID, what billing told
-- of the event: its type, its object's ID and how it came (via: webhook,
-- catch_up or replay), written by the INSERT that records the event, for
-- Store.RecentEvents ('' for the events recorded before). The listing,
-- newest first, reads the processed_at index (version 1's, for pruning;
-- declared again here should a database lack it). Every statement is
-- idempotent.

ALTER TABLE billing_events
    ADD COLUMN IF NOT EXISTS type      TEXT NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS object_id TEXT NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS via       TEXT NOT NULL DEFAULT '';

CREATE INDEX IF NOT EXISTS billing_events_processed_at_idx ON billing_events (processed_at);
