-- +goose Up
-- github.com/gobilling/billing/sqlstore, schema version 6, MySQL 8 and MariaDB.
-- The record of an applied event keeps, beside its ID, what billing told
-- of the event: its type, its object's ID and how it came (via: webhook,
-- catch_up or replay), written by the INSERT that records the event, for
-- Store.RecentEvents ('' for the events recorded before). The listing,
-- newest first, reads the processed_at index (version 1's, for pruning;
-- added here should a database lack it).
--
-- MySQL commits each DDL statement on its own, so a crash can stop this
-- script anywhere: each column is added only while it is missing, and
-- the index only while no index starts with processed_at, so the script
-- can be run again from the top. MySQL 8 has no ADD COLUMN IF NOT
-- EXISTS: each step is a statement prepared from a check of
-- information_schema, on one connection.

SET @sqlstore_stmt = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE billing_events ADD COLUMN type VARCHAR(255) NOT NULL DEFAULT ''''',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'billing_events' AND column_name = 'type');
PREPARE sqlstore_step FROM @sqlstore_stmt;
EXECUTE sqlstore_step;
DEALLOCATE PREPARE sqlstore_step;

SET @sqlstore_stmt = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE billing_events ADD COLUMN object_id VARCHAR(255) NOT NULL DEFAULT ''''',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'billing_events' AND column_name = 'object_id');
PREPARE sqlstore_step FROM @sqlstore_stmt;
EXECUTE sqlstore_step;
DEALLOCATE PREPARE sqlstore_step;

SET @sqlstore_stmt = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE billing_events ADD COLUMN via VARCHAR(255) NOT NULL DEFAULT ''''',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'billing_events' AND column_name = 'via');
PREPARE sqlstore_step FROM @sqlstore_stmt;
EXECUTE sqlstore_step;
DEALLOCATE PREPARE sqlstore_step;

SET @sqlstore_stmt = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE billing_events ADD KEY billing_events_processed_at_idx (processed_at)',
    'DO 0')
    FROM information_schema.statistics
    WHERE table_schema = DATABASE() AND table_name = 'billing_events' AND column_name = 'processed_at' AND seq_in_index = 1);
PREPARE sqlstore_step FROM @sqlstore_stmt;
EXECUTE sqlstore_step;
DEALLOCATE PREPARE sqlstore_step;
