package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// sqlite is the dialect of SQLite through modernc.org/sqlite.
type sqlite struct{}

// SQLite result codes the store tells apart. modernc.org/sqlite reports
// extended codes; the primary code is the low byte.
const (
	sqliteBusy             = 5    // SQLITE_BUSY, and SQLITE_BUSY_SNAPSHOT etc. in the low byte
	sqliteLocked           = 6    // SQLITE_LOCKED
	sqliteConstraintPK     = 1555 // SQLITE_CONSTRAINT_PRIMARYKEY
	sqliteConstraintUnique = 2067 // SQLITE_CONSTRAINT_UNIQUE
)

func (*sqlite) name() Dialect            { return SQLite }
func (*sqlite) bind(query string) string { return questionMarks(query) }

// forUpdate is empty: an IMMEDIATE transaction holds the database's
// write lock from its start, so no other writer runs meanwhile.
func (*sqlite) forUpdate() string { return "" }

// txOptions are the defaults: the DSN's _txlock=immediate makes every
// read-write transaction take the write lock at BEGIN (checked by New),
// so a transaction that reads and then writes never finds its snapshot
// stale (SQLITE_BUSY_SNAPSHOT) when it comes to write.
func (*sqlite) txOptions() *sql.TxOptions { return nil }

// insertIfAbsent adds ON CONFLICT DO NOTHING, which skips uniqueness
// conflicts only (unlike INSERT OR IGNORE, which also skips NOT NULL and
// CHECK failures).
func (*sqlite) insertIfAbsent(insert string) string { return insert + " ON CONFLICT DO NOTHING" }

func (*sqlite) inserted(res sql.Result, err error) (bool, error) { return insertedByCount(res, err) }

func (*sqlite) upsert(table string, cols []string, n int) string {
	return upsertOnConflict(table, cols, n)
}
func (*sqlite) upsertArgs(values []any, n int) []any { return values }

// byteWise: SQLite's default collation, BINARY, compares bytes.
func (*sqlite) newerUpsert(subs, customers string, cols, state []string) string {
	return newerUpsertOnConflict(subs, customers, cols, state)
}

func (*sqlite) newerApplyPrev(events, subs, customers string, cols, state []string, zero map[string]string) string {
	return ""
}

func (*sqlite) newerApply(events, subs, customers string, cols, state []string) string {
	return noNewerApply(events, subs, customers, cols, state)
}

func (*sqlite) byteWise() string { return "" }

func (*sqlite) deleteBatch(table, key, cond, order string) string {
	return deleteBatchIn(table, key, cond)
}

// skipLocked is empty: an IMMEDIATE transaction holds the database's
// write lock from its start, so no other transaction has a row locked.
func (*sqlite) skipLocked() string { return "" }

// claimOutbox: Claim runs in a transaction, which holds the write lock
// from BEGIN (IMMEDIATE): two Claims run one after the other.
func (*sqlite) claimOutbox(outbox, heads string, cols []string) string { return "" }

// retryable: SQLITE_BUSY once the busy timeout has run out (or at once,
// when waiting could not help), and SQLITE_LOCKED.
func (*sqlite) retryable(err error) bool {
	switch sqliteCode(err) & 0xff {
	case sqliteBusy, sqliteLocked:
		return true
	}
	return false
}

// sqliteCode returns the (extended) result code of the first SQLite
// error in err's chain (modernc.org/sqlite's *sqlite.Error has a Code()
// int method), or 0.
func sqliteCode(err error) int {
	code := 0
	errorChain(err, func(e error) bool {
		if c, ok := e.(interface{ Code() int }); ok {
			code = c.Code()
			return true
		}
		return false
	})
	return code
}

// The DSN parameters of modernc.org/sqlite that New requires, and that
// OpenSQLite sets.
const (
	sqliteBusyTimeoutParam = "_pragma=busy_timeout(10000)"
	sqliteWALParam         = "_pragma=journal_mode(WAL)"
	sqliteTxLockParam      = "_txlock=immediate"
)

// check verifies that the database is in WAL mode, that connections wait
// for a lock (busy_timeout) rather than fail at once, and that
// transactions are IMMEDIATE.
func (*sqlite) check(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: check SQLite settings: %w", err)
	}
	defer conn.Close()

	var missing []string
	var journal string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journal); err != nil {
		return fmt.Errorf("sqlstore: check SQLite settings: %w", err)
	}
	if !strings.EqualFold(journal, "wal") {
		how := sqliteWALParam
		if strings.EqualFold(journal, "memory") {
			how += " (an in-memory database cannot be shared by several connections or processes: use a file)"
		}
		missing = append(missing, fmt.Sprintf("WAL mode (journal_mode is %s): add %s", journal, how))
	}
	var busy int64
	if err := conn.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
		return fmt.Errorf("sqlstore: check SQLite settings: %w", err)
	}
	if busy <= 0 {
		missing = append(missing, "a busy timeout (busy_timeout is 0, so a writer fails at once instead of waiting): add "+sqliteBusyTimeoutParam)
	}
	immediate, err := sqliteImmediate(ctx, conn)
	if err != nil {
		return fmt.Errorf("sqlstore: check SQLite settings: %w", err)
	}
	if !immediate {
		missing = append(missing, "IMMEDIATE transactions (BEGIN is DEFERRED, so two transactions that read and then write fail with SQLITE_BUSY instead of waiting): add "+sqliteTxLockParam)
	}
	if len(missing) > 0 {
		return fmt.Errorf("sqlstore: the SQLite database lacks %s; open it with sqlstore.OpenSQLite(path), or add these parameters to the DSN of modernc.org/sqlite: file:PATH?%s&%s&%s",
			strings.Join(missing, "; and "), sqliteBusyTimeoutParam, sqliteWALParam, sqliteTxLockParam)
	}
	return nil
}

// sqliteImmediate reports whether a transaction begun through
// database/sql holds a lock from its start. A checkpoint fails with
// SQLITE_LOCKED inside a transaction that holds a lock, and runs inside
// a DEFERRED one that has not read anything yet (a PASSIVE checkpoint
// never waits, and only copies committed pages).
func sqliteImmediate(ctx context.Context, conn *sql.Conn) (bool, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback() //nolint:errcheck // nothing was written
	var busy, log, done int64
	err = tx.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done)
	if err == nil {
		return false, nil
	}
	if sqliteCode(err)&0xff == sqliteLocked {
		return true, nil
	}
	return false, err
}

// lockedMigrate needs no lock of its own: the transaction is IMMEDIATE,
// so it holds SQLite's write lock from BEGIN to COMMIT, and a concurrent
// Migrate (in any process) waits for it (busy_timeout), then finds the
// migrations recorded. DDL is transactional in SQLite.
func (*sqlite) lockedMigrate(ctx context.Context, db *sql.DB, lockKey string, fn func(q querier) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	committed = true
	return tx.Commit()
}

// OpenSQLite opens (creating it if need be) the SQLite database file at
// path through modernc.org/sqlite, set up as a [Store] needs: WAL
// (readers never block the writer), a 10-second busy timeout (a writer
// waits for another's lock instead of failing), and IMMEDIATE
// transactions (a transaction takes the write lock at BEGIN, so one that
// reads and then writes cannot find its snapshot stale). Several
// processes may open the same file. Close the *sql.DB when done.
//
// The driver is not imported by this package: import it in your main
// package,
//
//	import _ "modernc.org/sqlite"
//
// or OpenSQLite returns an error saying so. To open the database another
// way, give the driver these DSN parameters:
//
//	file:/path/to/billing.db?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate
func OpenSQLite(path string) (*sql.DB, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlstore: OpenSQLite(%q): give the path of a database file", path)
	}
	if !slices.Contains(sql.Drivers(), "sqlite") {
		return nil, errors.New(`sqlstore: OpenSQLite needs the SQLite driver modernc.org/sqlite: add import _ "modernc.org/sqlite" to your main package`)
	}
	// A URI filename, so that the parameters are not taken for part of
	// the path: %, ? and # in the path are escaped.
	dsn := "file:" + escapeSQLitePath(path) + "?" + sqliteBusyTimeoutParam + "&" + sqliteWALParam + "&" + sqliteTxLockParam
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open SQLite database %s: %w", path, err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlstore: open SQLite database %s: %w", path, err)
	}
	return db, nil
}

// escapeSQLitePath escapes what would end or break the path of an SQLite
// URI filename.
func escapeSQLitePath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}
