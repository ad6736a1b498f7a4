package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Dialect names the SQL database a [Store] talks to. It is a string, so
// that it can come from configuration: "postgres", "mysql" or "sqlite".
type Dialect string

// The dialects sqlstore speaks.
const (
	// Postgres is PostgreSQL, tested through
	// github.com/jackc/pgx/v5/stdlib. The driver's errors must have a
	// SQLState() string method (pgx's *pgconn.PgError has).
	Postgres Dialect = "postgres"

	// MySQL is MySQL 8 and MariaDB, with InnoDB, through
	// github.com/go-sql-driver/mysql. Keep a strict sql_mode (the
	// default of both), so that an over-long value is an error rather
	// than silently truncated; [New] checks it.
	MySQL Dialect = "mysql"

	// SQLite is SQLite 3.24 or later through modernc.org/sqlite (pure Go,
	// no cgo), with WAL, a busy timeout and IMMEDIATE transactions; see
	// [OpenSQLite]. [New] checks all three.
	SQLite Dialect = "sqlite"
)

// querier is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// dialect is what differs between the databases. Queries are written once
// with ? placeholders; bind rewrites them where the database wants
// others.
type dialect interface {
	// name is the Dialect constant.
	name() Dialect

	// bind rewrites the ? placeholders of query for the database.
	bind(query string) string

	// forUpdate ends a SELECT of a row that the transaction then writes,
	// so that concurrent writers of that row wait for each other.
	forUpdate() string

	// txOptions are the options of a write transaction.
	txOptions() *sql.TxOptions

	// insertIfAbsent turns an INSERT statement into one that does nothing,
	// rather than fail, when it conflicts with a unique key, if the
	// database can do that without hiding other errors.
	insertIfAbsent(insert string) string

	// inserted reports whether a statement made by insertIfAbsent inserted
	// its row (res and err are what it returned): false with a nil error
	// when a unique key was taken.
	inserted(res sql.Result, err error) (bool, error)

	// upsert is an INSERT of cols into table that, for a row with the same
	// key column (the first), overwrites the next n columns instead (and
	// keeps the others). Its arguments are upsertArgs of the values of
	// cols.
	upsert(table string, cols []string, n int) string
	upsertArgs(values []any, n int) []any

	// newerUpsert inserts a subscription row (the values of cols, but for
	// user_id, taken from the customers row of the customer_id given)
	// unless the customer is not linked, or, over an existing row of the
	// same customer whose order_key is less than the one given, replaces
	// its state columns; otherwise it changes nothing. It affects rows
	// only when it writes.
	newerUpsert(subs, customers string, cols, state []string) string

	// newerApply, if the database can, is newerUpsert and the event's
	// INSERT in one statement that needs no transaction around it: it
	// writes the subscription only if the event is not recorded, and
	// records the event only if it wrote; it returns the subscription
	// rows written, the event rows inserted, and whether the event was
	// recorded before. Its arguments are newerUpsert's, then the event's
	// ID, the values of eventCols (the event's ID, time, type, object ID
	// and via), and the event's ID. "" when it cannot.
	newerApply(events, subs, customers string, cols, state []string) string

	// newerApplyPrev is newerApply that also returns the row it replaced
	// and the saved row's user (see postgres's), or "" where the database
	// cannot in one statement. zero maps each col to its zero value.
	newerApplyPrev(events, subs, customers string, cols, state []string, zero map[string]string) string

	// byteWise follows a text column in ORDER BY and comparisons so that
	// they compare bytes, whatever the database's collation.
	byteWise() string

	// deleteBatch deletes at most ? (the last argument) rows of table
	// that meet cond (whose arguments come first), oldest by order first
	// where the database can; key is the table's primary key.
	deleteBatch(table, key, cond, order string) string

	// skipLocked ends a SELECT of rows that the transaction then writes,
	// so that it locks them, skipping the rows another transaction has
	// locked ("" where a transaction holds the database's write lock).
	skipLocked() string

	// claimOutbox, if the database can, is Claim in one statement that
	// needs no transaction around it: it locks the rows that heads (a
	// SELECT of o.seq FROM the outbox table aliased o) selects, skipping
	// those another transaction has locked, sets their claim and
	// claimed_until to ? and ? (the arguments after heads'), and returns
	// their cols. "" when it cannot.
	claimOutbox(outbox, heads string, cols []string) string

	// retryable reports whether err is a deadlock or serialization failure
	// after which the whole transaction can run again.
	retryable(err error) bool

	// check verifies the database's settings when a Store is created.
	check(ctx context.Context, db *sql.DB) error

	// lockedMigrate runs fn holding a lock that keeps any other Migrate of
	// the same tables (in this process or another) waiting. fn gets a
	// transaction where the database's DDL is transactional.
	lockedMigrate(ctx context.Context, db *sql.DB, lockKey string, fn func(q querier) error) error
}

var (
	_ dialect = (*postgres)(nil)
	_ dialect = (*mysql)(nil)
	_ dialect = (*sqlite)(nil)
)

func dialectOf(d Dialect) (dialect, error) {
	switch d {
	case Postgres:
		return &postgres{}, nil
	case MySQL:
		return &mysql{}, nil
	case SQLite:
		return &sqlite{}, nil
	}
	return nil, fmt.Errorf("sqlstore: unknown dialect %q: use sqlstore.Postgres, sqlstore.MySQL or sqlstore.SQLite", string(d))
}

// questionMarks is the bind of databases that take ? placeholders.
func questionMarks(query string) string { return query }

// dollarNumbers rewrites ? placeholders as $1, $2, ... The queries of
// this package have no ? anywhere else.
func dollarNumbers(query string) string {
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// insertedByCount is the inserted of databases whose insertIfAbsent
// reports a conflict as zero rows affected.
func insertedByCount(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n > 0, nil
}

// upsertOnConflict is the upsert of PostgreSQL and SQLite.
func upsertOnConflict(table string, cols []string, n int) string {
	set := make([]string, 0, n)
	for _, c := range cols[1 : 1+n] {
		set = append(set, c+" = excluded."+c)
	}
	return "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" + marks(len(cols)) +
		") ON CONFLICT (" + cols[0] + ") DO UPDATE SET " + strings.Join(set, ", ")
}

// marks returns n comma-separated placeholders.
func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// errorChain calls f on err and every error it wraps, depth first, until
// f returns true.
func errorChain(err error, f func(error) bool) bool {
	for err != nil {
		if f(err) {
			return true
		}
		switch e := err.(type) {
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				if errorChain(inner, f) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

// errCanceled wraps the last error of a wait that ctx cut short.
func errCanceled(ctx context.Context, what string, last error) error {
	if last == nil {
		return fmt.Errorf("sqlstore: %s: %w", what, ctx.Err())
	}
	return fmt.Errorf("sqlstore: %s: %w (last error: %w)", what, ctx.Err(), last)
}

var errNoLock = errors.New("sqlstore: the database did not grant the migration lock")

// deleteBatchIn is the deleteBatch of databases whose DELETE has no
// LIMIT: a subquery picks the rows.
func deleteBatchIn(table, key, cond string) string {
	return "DELETE FROM " + table + " WHERE " + key + " IN (SELECT " + key + " FROM " + table + " WHERE " + cond + " LIMIT ?)"
}

// noNewerApply is the newerApply of databases without data-modifying
// common table expressions.
func noNewerApply(events, subs, customers string, cols, state []string) string { return "" }

// newerUpsertOnConflict is the newerUpsert of PostgreSQL and SQLite: an
// INSERT ... SELECT from the customer's link, whose ON CONFLICT DO UPDATE
// has the compare-and-swap as its WHERE.
func newerUpsertOnConflict(subs, customers string, cols, state []string) string {
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = "?"
		if c == "user_id" {
			sel[i] = "c.user_id"
		}
	}
	set := make([]string, len(state))
	for i, c := range state {
		set[i] = c + " = excluded." + c
	}
	return "INSERT INTO " + subs + " (" + strings.Join(cols, ", ") + ") SELECT " + strings.Join(sel, ", ") +
		" FROM " + customers + " c WHERE c.customer_id = ?" +
		" ON CONFLICT (id) DO UPDATE SET " + strings.Join(set, ", ") +
		" WHERE " + subs + ".order_key < excluded.order_key AND " + subs + ".customer_id = excluded.customer_id"
}
