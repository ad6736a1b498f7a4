package sqlstore

import (
	"context"
	"database/sql"
	"hash/fnv"
	"strings"
)

// postgres is the dialect of PostgreSQL (and of the databases that speak
// its SQL and its SQLSTATE codes, such as CockroachDB).
type postgres struct{}

func (*postgres) name() Dialect            { return Postgres }
func (*postgres) bind(query string) string { return dollarNumbers(query) }
func (*postgres) forUpdate() string        { return " FOR UPDATE" }

// txOptions asks for READ COMMITTED, PostgreSQL's default, whatever the
// server's default_transaction_isolation says: each statement sees what
// committed before it, and rows read FOR UPDATE are the latest. A
// database that runs it as SERIALIZABLE anyway (CockroachDB) reports
// conflicts as 40001, and Apply retries.
func (*postgres) txOptions() *sql.TxOptions {
	return &sql.TxOptions{Isolation: sql.LevelReadCommitted}
}

// insertIfAbsent adds ON CONFLICT DO NOTHING, which skips unique
// conflicts only, and does not abort the transaction as a failed INSERT
// would. A conflicting row still uncommitted makes it wait for that
// transaction's outcome.
func (*postgres) insertIfAbsent(insert string) string { return insert + " ON CONFLICT DO NOTHING" }

func (*postgres) inserted(res sql.Result, err error) (bool, error) { return insertedByCount(res, err) }

func (*postgres) upsert(table string, cols []string, n int) string {
	return upsertOnConflict(table, cols, n)
}
func (*postgres) upsertArgs(values []any, n int) []any { return values }

// byteWise: the "C" collation compares bytes (a database's default may be
// a language's, such as en_US).
func (*postgres) newerUpsert(subs, customers string, cols, state []string) string {
	return newerUpsertOnConflict(subs, customers, cols, state)
}

// newerApply: one statement, run on its own (autocommit): the
// compare-and-swap upsert, unless the event is recorded, and then the
// event's INSERT, only if the upsert wrote; it returns how many rows each
// wrote and whether the event was recorded before. A concurrent delivery
// of the same event waits on the row (or on the event's key) and finds
// nothing newer to write.
func (*postgres) newerApply(events, subs, customers string, cols, state []string) string {
	upsert := newerUpsertOnConflict(subs, customers, cols, state)
	upsert = strings.Replace(upsert, " WHERE c.customer_id = ?",
		" WHERE c.customer_id = ? AND NOT EXISTS (SELECT 1 FROM "+events+" WHERE id = ?)", 1)
	return "WITH up AS (" + upsert + " RETURNING 1), " +
		"ev AS (INSERT INTO " + events + " (" + strings.Join(eventCols, ", ") + ") SELECT " + marks(len(eventCols)) +
		" FROM up ON CONFLICT DO NOTHING RETURNING 1) " +
		"SELECT (SELECT COUNT(*) FROM up), (SELECT COUNT(*) FROM ev), (SELECT COUNT(*) FROM " + events + " WHERE id = ?)"
}

// newerApplyPrev is newerApply that also returns the row it replaced,
// read FOR UPDATE in the same statement (so that it is the row the
// swap compares, whatever commits meanwhile), and the saved row's user:
// after the three counts, the user (” when nothing was saved), the
// number of previous rows (0 or 1), then the previous row's cols, zero
// values when there was none.
func (p *postgres) newerApplyPrev(events, subs, customers string, cols, state []string, zero map[string]string) string {
	upsert := newerUpsertOnConflict(subs, customers, cols, state)
	upsert = strings.Replace(upsert, " WHERE c.customer_id = ?",
		" WHERE c.customer_id = ? AND NOT EXISTS (SELECT 1 FROM "+events+" WHERE id = ?)", 1)
	prev := make([]string, len(cols))
	for i, c := range cols {
		prev[i] = "COALESCE(p." + c + ", " + zero[c] + ")"
	}
	// A row created by a concurrent statement after this one's snapshot
	// is not in prev, yet the upsert updates it (ON CONFLICT): prev
	// would then be wrong, so the statement aborts itself (22012, which
	// undoes all of it) and the caller takes the general path.
	return "WITH prev AS (SELECT " + strings.Join(cols, ", ") + " FROM " + subs + " WHERE id = ? FOR UPDATE), " +
		"up AS (" + upsert + " RETURNING user_id, (xmax = 0) AS inserted), " +
		"ev AS (INSERT INTO " + events + " (" + strings.Join(eventCols, ", ") + ") SELECT " + marks(len(eventCols)) +
		" FROM up ON CONFLICT DO NOTHING RETURNING 1) " +
		"SELECT (SELECT COUNT(*) FROM up), (SELECT COUNT(*) FROM ev), (SELECT COUNT(*) FROM " + events + " WHERE id = ?), " +
		"COALESCE((SELECT user_id FROM up), ''), (SELECT COUNT(*) FROM prev), " + strings.Join(prev, ", ") + ", " +
		// (not 1/0, which the planner folds whatever the CASE)
		"CASE WHEN EXISTS (SELECT 1 FROM up WHERE NOT inserted) THEN 1/(SELECT COUNT(*) FROM prev) ELSE 0 END" +
		" FROM (SELECT 1) AS one LEFT JOIN prev p ON TRUE"
}

func (*postgres) byteWise() string { return ` COLLATE "C"` }

func (*postgres) deleteBatch(table, key, cond, order string) string {
	return deleteBatchIn(table, key, cond)
}

func (*postgres) skipLocked() string { return " FOR UPDATE SKIP LOCKED" }

// claimOutbox: the classic queue statement, run on its own
// (autocommit). The heads are locked FOR UPDATE OF o SKIP LOCKED: only
// the outbox rows selected, not the user's earlier rows that the head
// check reads (a subquery, read from the statement's snapshot, where an
// entry another Claim is claiming is still pending). A row another Claim
// claimed and committed since the snapshot is read again, at its latest
// version, and left out as claimed.
func (*postgres) claimOutbox(outbox, heads string, cols []string) string {
	ret := make([]string, len(cols))
	for i, c := range cols {
		ret[i] = "u." + c
	}
	return "WITH c AS (" + heads + " FOR UPDATE OF o SKIP LOCKED) UPDATE " + outbox + " AS u" +
		" SET claim = ?, claimed_until = ? FROM c WHERE u.seq = c.seq RETURNING " + strings.Join(ret, ", ")
}

// racedPrevious reports the self-abort of newerApplyPrev (22012): the
// row it swapped was created concurrently, after its snapshot.
func racedPrevious(err error) bool { return sqlState(err) == "22012" }

// retryable: 40001 serialization_failure and 40P01 deadlock_detected.
func (*postgres) retryable(err error) bool {
	switch sqlState(err) {
	case "40001", "40P01":
		return true
	}
	return false
}

// sqlState returns the SQLSTATE of the first error in err's chain that
// has one (pgx's *pgconn.PgError, lib/pq's *pq.Error), or "".
func sqlState(err error) string {
	var state string
	errorChain(err, func(e error) bool {
		if s, ok := e.(interface{ SQLState() string }); ok {
			state = s.SQLState()
			return true
		}
		return false
	})
	return state
}

func (*postgres) check(ctx context.Context, db *sql.DB) error { return nil }

// lockedMigrate takes a transaction-level advisory lock: it is released
// at commit or rollback, and with the connection if that dies. DDL is
// transactional in PostgreSQL, so a failed migration leaves nothing
// behind.
func (p *postgres) lockedMigrate(ctx context.Context, db *sql.DB, lockKey string, fn func(q querier) error) error {
	h := fnv.New64a()
	h.Write([]byte("github.com/gobilling/billing/sqlstore migrate " + lockKey))
	key := int64(h.Sum64())

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
	if _, err := tx.ExecContext(ctx, p.bind("SELECT pg_advisory_xact_lock(?)"), key); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	committed = true
	return tx.Commit()
}
