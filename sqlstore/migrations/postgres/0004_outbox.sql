-- +goose Up
-- github.com/gobilling/billing/sqlstore, schema version 4, PostgreSQL.
-- The outbox (billing.Outbox): the changes billing records in the
-- transaction that stores the facts they follow from, for its dispatcher
-- to deliver to the app. seq orders them (a later entry has a greater
-- seq), entry_key is the change's idempotency key. state is 0 pending,
-- 1 delivered, 2 dead. A pending entry is due at next_attempt_at, and a
-- dispatcher that claims it holds it under the token claim ('' when none)
-- until claimed_until. Times are Unix seconds, 0 when not set. Every
-- statement is idempotent.

CREATE TABLE IF NOT EXISTS billing_outbox (
    seq             BIGSERIAL NOT NULL,
    entry_key       TEXT      NOT NULL,
    user_id         TEXT      NOT NULL,
    kind            TEXT      NOT NULL,
    payload         BYTEA     NOT NULL,
    recorded_at     BIGINT    NOT NULL,
    state           SMALLINT  NOT NULL,
    attempts        INTEGER   NOT NULL,
    next_attempt_at BIGINT    NOT NULL,
    claim           TEXT      NOT NULL,
    claimed_until   BIGINT    NOT NULL,
    last_error      TEXT      NOT NULL,
    delivered_at    BIGINT    NOT NULL,
    CONSTRAINT billing_outbox_pkey PRIMARY KEY (seq),
    CONSTRAINT billing_outbox_entry_key_key UNIQUE (entry_key)
);
-- Claim: the pending entries, and each user's by seq (is an entry the
-- first of its user's pending ones). DeadEntries and OutboxStats too.
CREATE INDEX IF NOT EXISTS billing_outbox_state_user_id_seq_idx ON billing_outbox (state, user_id, seq);
-- PruneDelivered: the delivered entries by time.
CREATE INDEX IF NOT EXISTS billing_outbox_state_delivered_at_idx ON billing_outbox (state, delivered_at);
