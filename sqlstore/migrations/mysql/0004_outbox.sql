-- +goose Up
-- github.com/gobilling/billing/sqlstore, schema version 4, MySQL 8 and MariaDB.
-- The outbox (billing.Outbox): the changes billing records in the
-- transaction that stores the facts they follow from, for its dispatcher
-- to deliver to the app. seq orders them (a later entry has a greater
-- seq), entry_key is the change's idempotency key. state is 0 pending,
-- 1 delivered, 2 dead. A pending entry is due at next_attempt_at, and a
-- dispatcher that claims it holds it under the token claim ('' when none)
-- until claimed_until. Times are Unix seconds, 0 when not set. One
-- statement, idempotent. Claim locks entries with FOR UPDATE SKIP LOCKED:
-- MySQL 8.0.1 or MariaDB 10.6 or later.
--
-- entry_key and user_id are longer than the IDs of the other tables
-- (VARCHAR(255)): a key is a change's kind, an ID and more, and user_id
-- names a queue, a user's ID or a prefix and a user's ID.
--
-- The keys: Claim reads the pending entries, and each user's by seq (is
-- an entry the first of its user's pending ones), as do DeadEntries and
-- OutboxStats. PruneDelivered reads the delivered entries by time.

CREATE TABLE IF NOT EXISTS billing_outbox (
    seq             BIGINT       NOT NULL AUTO_INCREMENT,
    entry_key       VARCHAR(512) NOT NULL,
    user_id         VARCHAR(320) NOT NULL,
    kind            VARCHAR(255) NOT NULL,
    payload         LONGBLOB     NOT NULL,
    recorded_at     BIGINT       NOT NULL,
    state           SMALLINT     NOT NULL,
    attempts        INT          NOT NULL,
    next_attempt_at BIGINT       NOT NULL,
    claim           VARCHAR(64)  NOT NULL,
    claimed_until   BIGINT       NOT NULL,
    last_error      LONGTEXT     NOT NULL,
    delivered_at    BIGINT       NOT NULL,
    PRIMARY KEY (seq),
    UNIQUE KEY billing_outbox_entry_key_key (entry_key),
    KEY billing_outbox_state_user_id_seq_idx (state, user_id, seq),
    KEY billing_outbox_state_delivered_at_idx (state, delivered_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
