// Package sqlstore is a [billing.Store] on database/sql, for PostgreSQL,
// MySQL (and MariaDB) and SQLite. You open the *sql.DB with the driver
// of your choice and name its [Dialect]; the package itself imports no
// driver.
//
//	db, err := sql.Open("pgx", os.Getenv("DATABASE_URL")) // import _ "github.com/jackc/pgx/v5/stdlib"
//	...
//	store, err := sqlstore.New(ctx, db, sqlstore.Postgres, sqlstore.Options{})
//	...
//	if err := store.Migrate(ctx); err != nil { ... }
//	b, err := billing.New(cfg, store, users)
//
// # Tables
//
// Five tables, named with a prefix (Options.TablePrefix, default
// "billing_"): customers (user ID ↔ Stripe customer ID, both unique),
// subscriptions (the facts Membership is computed from, with their
// versions; indexed by user and by customer), events (the IDs of the
// events applied, primary key, with each event's type, object ID and
// how it came, which [Store.RecentEvents] lists), grants (one-time purchases, keyed by
// Checkout Session ID, with the PaymentIntent that paid them), and
// parked_events. Times are Unix seconds in BIGINT columns. The outbox
// table keeps the changes billing records for its dispatcher (the Store
// implements [billing.Outbox]), and the refunds table what billing keeps
// of each refunded payment (keyed by PaymentIntent ID, indexed by user).
// Another table, schema_migrations, records the migrations applied by
// [Store.Migrate].
//
// # Migrations
//
// The schema comes as SQL files embedded per dialect. [Store.Migrate]
// applies those not applied yet, under a lock, so that every replica can
// call it at start-up. Teams with a migration tool of their own take the
// same files from [Migrations] (or [Store.Migrations], with a custom
// prefix) instead.
//
// # Transactions
//
// [Store.Apply] is one transaction: it inserts the event ID into the
// events table (a taken ID is [billing.ErrDuplicateEvent]), runs the
// conditional writes, and commits. Two replicas applying the same event
// at once are serialized by the primary key: the second waits for the
// first and finds the duplicate. A write that depends on a stored row
// reads it locked (SELECT ... FOR UPDATE; SQLite's IMMEDIATE transaction
// holds the write lock) and decides in Go. Deadlocks and serialization
// failures are retried, a bounded number of times (Options.MaxRetries).
//
// # Pruning
//
// The events table grows by one row per event. [Store.PruneEvents]
// deletes the rows older than Options.EventRetention (35 days by
// default); call it from a daily job.
//
// # SQLite
//
// SQLite needs WAL, a busy timeout and IMMEDIATE transactions, which
// [New] checks; [OpenSQLite] opens a database file set up so.
package sqlstore
