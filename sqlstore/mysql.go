package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
)

// mysql is the dialect of MySQL 8 and MariaDB with InnoDB.
type mysql struct {
	// changedRows is set by check when the connection reports the rows
	// an ON DUPLICATE KEY UPDATE changed (the driver's default), not the
	// rows it found (clientFoundRows=true): only then can ApplyNewer tell
	// a compare-and-swap that wrote from one that did not.
	changedRows bool
}

// MySQL error numbers the store tells apart.
const (
	mysqlDupEntry        = 1062 // ER_DUP_ENTRY
	mysqlLockWaitTimeout = 1205 // ER_LOCK_WAIT_TIMEOUT
	mysqlDeadlock        = 1213 // ER_LOCK_DEADLOCK
)

func (*mysql) name() Dialect            { return MySQL }
func (*mysql) bind(query string) string { return questionMarks(query) }
func (*mysql) forUpdate() string        { return " FOR UPDATE" }

// txOptions asks for READ COMMITTED rather than InnoDB's default
// REPEATABLE READ: plain reads then see what committed before each
// statement (as on PostgreSQL), and a SELECT ... FOR UPDATE of a row that
// does not exist yet takes no gap lock, so two transactions creating the
// same subscription do not deadlock.
func (*mysql) txOptions() *sql.TxOptions {
	return &sql.TxOptions{Isolation: sql.LevelReadCommitted}
}

// insertIfAbsent leaves the INSERT as it is: INSERT IGNORE would also
// turn other errors into warnings, and the rows-affected count of ON
// DUPLICATE KEY UPDATE depends on the DSN's clientFoundRows. A duplicate
// key fails the statement only, not the transaction.
func (*mysql) insertIfAbsent(insert string) string { return insert }

func (*mysql) inserted(res sql.Result, err error) (bool, error) {
	if err != nil {
		if mysqlNumber(err) == mysqlDupEntry {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// upsert uses ON DUPLICATE KEY UPDATE col = ?, with the values given a
// second time (see upsertArgs): VALUES(col) is deprecated in MySQL 8, and
// MariaDB lacks MySQL's row alias syntax.
func (*mysql) upsert(table string, cols []string, n int) string {
	set := make([]string, 0, n)
	for _, c := range cols[1 : 1+n] {
		set = append(set, c+" = ?")
	}
	return "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" + marks(len(cols)) +
		") ON DUPLICATE KEY UPDATE " + strings.Join(set, ", ")
}

func (*mysql) upsertArgs(args []any, n int) []any { return append(args, args[1:1+n]...) }

// byteWise: the tables are utf8mb4_bin already.
// newerUpsert: ON DUPLICATE KEY UPDATE has no WHERE, so each state
// column keeps its value unless the condition holds; order_key, which the
// condition reads, is assigned last (MySQL assigns left to right).
// VALUES(col) is the value the INSERT ... SELECT would have inserted. The
// rows it reports as affected tell whether it wrote only when the
// connection counts changed rows (see check); otherwise there is none,
// and ApplyNewer declines.
func (m *mysql) newerUpsert(subs, customers string, cols, state []string) string {
	if !m.changedRows {
		return ""
	}
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = "?"
		if c == "user_id" {
			sel[i] = "c.user_id"
		}
	}
	// The columns are the subscriptions table's (the customers table,
	// selected from, has a customer_id too).
	cond := subs + ".order_key < VALUES(order_key) AND " + subs + ".customer_id = VALUES(customer_id)"
	set := make([]string, len(state))
	for i, c := range state {
		set[i] = subs + "." + c + " = IF(" + cond + ", VALUES(" + c + "), " + subs + "." + c + ")"
	}
	return "INSERT INTO " + subs + " (" + strings.Join(cols, ", ") + ") SELECT " + strings.Join(sel, ", ") +
		" FROM " + customers + " c WHERE c.customer_id = ?" +
		" ON DUPLICATE KEY UPDATE " + strings.Join(set, ", ")
}

func (*mysql) newerApplyPrev(events, subs, customers string, cols, state []string, zero map[string]string) string {
	return ""
}

func (*mysql) newerApply(events, subs, customers string, cols, state []string) string {
	return noNewerApply(events, subs, customers, cols, state)
}

func (*mysql) byteWise() string { return "" }

func (*mysql) deleteBatch(table, key, cond, order string) string {
	return "DELETE FROM " + table + " WHERE " + cond + " ORDER BY " + order + " LIMIT ?"
}

// skipLocked: MySQL 8.0.1 and MariaDB 10.6 have SKIP LOCKED.
func (*mysql) skipLocked() string { return " FOR UPDATE SKIP LOCKED" }

// claimOutbox: none. Claim reads the heads first (a plain read, which
// sees what committed, an entry being claimed still pending), then locks
// them by seq with FOR UPDATE SKIP LOCKED, checking again that each is
// due and not claimed, and claims those. In one locking SELECT with the
// head check in it, whether the subquery's rows are read locked too (so
// that one another Claim is claiming would be skipped, and its successor
// taken for a head) would be left to each server's rules (MariaDB 10.11
// reads them unlocked); the plain read of the heads does not depend on
// them.
func (*mysql) claimOutbox(outbox, heads string, cols []string) string { return "" }

// retryable: 1213 (deadlock: InnoDB rolled the transaction back) and
// 1205 (lock wait timeout: only the statement was rolled back, but the
// transaction is retried whole all the same).
func (*mysql) retryable(err error) bool {
	switch mysqlNumber(err) {
	case mysqlDeadlock, mysqlLockWaitTimeout:
		return true
	}
	return false
}

// mysqlNumber returns the error number of the first MySQL server error
// in err's chain, or 0. It reads the exported Number field of
// go-sql-driver's *mysql.MySQLError by reflection, so that this package
// does not import (and register) a driver its user may not want.
func mysqlNumber(err error) uint16 {
	var n uint16
	errorChain(err, func(e error) bool {
		v := reflect.ValueOf(e)
		if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
			return false
		}
		t := v.Elem().Type()
		if t.Name() != "MySQLError" || !strings.HasSuffix(t.PkgPath(), "go-sql-driver/mysql") {
			return false
		}
		f := v.Elem().FieldByName("Number")
		if f.Kind() != reflect.Uint16 {
			return false
		}
		n = uint16(f.Uint())
		return true
	})
	return n
}

// check refuses a session without a strict sql_mode, where an over-long
// ID would be truncated (and two IDs could become one) instead of
// failing.
func (m *mysql) check(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, "SELECT @@SESSION.sql_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlstore: read sql_mode: %w", err)
	}
	for sm := range strings.SplitSeq(mode, ",") {
		if sm == "STRICT_TRANS_TABLES" || sm == "STRICT_ALL_TABLES" {
			m.changedRows = countsChangedRows(ctx, db)
			return nil
		}
	}
	return fmt.Errorf("sqlstore: MySQL sql_mode %q is not strict, so over-long values would be truncated silently: "+
		"add STRICT_TRANS_TABLES (the server default), for instance with sql_mode=%%27STRICT_TRANS_TABLES%%27 in the DSN", mode)
}

// lockedMigrate holds a named lock (GET_LOCK) on one dedicated
// connection, the session that owns the lock, and migrates on that same
// connection. MySQL commits each DDL statement on its own, so there is
// no transaction: every statement of the migrations is idempotent, and
// a migration is recorded after its last statement.
func (*mysql) lockedMigrate(ctx context.Context, db *sql.DB, lockKey string, fn func(q querier) error) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()

	var database sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&database); err != nil {
		return err
	}
	// Lock names are at most 64 characters.
	sum := sha256.Sum256([]byte(database.String + "\x00" + lockKey))
	name := "gobilling_sqlstore_migrate_" + hex.EncodeToString(sum[:12])

	// GET_LOCK waits at most its timeout (seconds); wait in steps so that
	// ctx is honoured.
	for {
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 2)", name).Scan(&got); err != nil {
			return err
		}
		if !got.Valid {
			return errNoLock
		}
		if got.Int64 == 1 {
			break
		}
		if err := ctx.Err(); err != nil {
			return errCanceled(ctx, "wait for the migration lock", nil)
		}
	}
	defer func() {
		var released sql.NullInt64
		if rerr := conn.QueryRowContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK(?)", name).Scan(&released); rerr != nil {
			// Never hand a connection that may still hold the lock back to
			// the pool: closing it ends its session, and the lock with it.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return fn(conn)
}

// countsChangedRows reports whether the pool's connections count the rows
// an ON DUPLICATE KEY UPDATE changed rather than the rows it found: an
// update that changes nothing, on a temporary table of one connection,
// must affect no row. Anything unexpected (no right to create temporary
// tables, say) answers false.
func countsChangedRows(ctx context.Context, db *sql.DB) bool {
	conn, err := db.Conn(ctx)
	if err != nil {
		return false
	}
	defer conn.Close()
	const table = "sqlstore_probe_found_rows"
	if _, err := conn.ExecContext(ctx, "CREATE TEMPORARY TABLE "+table+" (id INT NOT NULL PRIMARY KEY, v INT NOT NULL)"); err != nil {
		return false
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "DROP TEMPORARY TABLE "+table) //nolint:errcheck // gone with the session anyway
	if _, err := conn.ExecContext(ctx, "INSERT INTO "+table+" (id, v) VALUES (1, 1)"); err != nil {
		return false
	}
	res, err := conn.ExecContext(ctx, "INSERT INTO "+table+" (id, v) VALUES (1, 1) ON DUPLICATE KEY UPDATE v = v")
	if err != nil {
		return false
	}
	n, err := res.RowsAffected()
	return err == nil && n == 0
}
