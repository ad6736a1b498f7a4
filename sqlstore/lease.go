package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/gobilling/billing"
)

var (
	_ billing.Leaser      = (*Store)(nil)
	_ billing.EventPruner = (*Store)(nil)
)

// Lease takes the lease called name among the Stores of this database
// and table prefix (in any process), for [billing.Billing.Maintain]: one
// holder at a time. When another holder has it, Lease returns an error
// wrapping [billing.ErrLeaseHeld] at once. See [billing.Leaser].
//
//   - PostgreSQL: a session-level advisory lock (pg_try_advisory_lock)
//     on a key hashed from the schema, the table prefix and name, held
//     by a connection taken from the pool for the lease's life. If the
//     process dies, its connection closes and the server frees the lock.
//     The connection must reach PostgreSQL directly, or through a pooler
//     in session mode: a pooler in transaction mode (PgBouncer's
//     default) hands the session to others, lock included.
//   - MySQL and MariaDB: a named lock (GET_LOCK with no wait; named after
//     the database, the table prefix and name) held by a connection of
//     its own in the same way. A session the server ends (wait_timeout,
//     KILL) frees it: the holder's next Check reports the lease lost.
//   - SQLite: a lock within the process, by database file, prefix and
//     name. SQLite is meant for one process: several processes on one
//     file would each hold a lease of their own, and each run
//     maintenance (harmless, only repeated).
//
// On PostgreSQL and MySQL the lease keeps one connection of the pool
// while it is held. A pool of one connection (SetMaxOpenConns(1)) has
// none to spare: there the lock is held by the pool's only session,
// between the store's own statements, and is lost (Check says so) when
// that connection is replaced.
func (s *Store) Lease(ctx context.Context, name string) (billing.Lease, error) {
	switch s.d.name() {
	case Postgres, MySQL:
		return s.sessionLease(ctx, name)
	}
	return s.processLease(ctx, name)
}

// sessionLease takes the lease as a lock of a database session: a
// connection kept out of the pool until the lease is released or lost.
// A pool of one connection cannot spare one: there the pool's only
// session holds the lock, between the store's statements (a Check on a
// new session, the old one gone, finds the lock lost), and a lock within
// the process keeps apart the Stores that share that session.
func (s *Store) sessionLease(ctx context.Context, name string) (billing.Lease, error) {
	l := &sessionLease{name: name, pg: s.d.name() == Postgres}
	if s.db.Stats().MaxOpenConnections == 1 {
		l.db, l.guard = s.db, fmt.Sprintf("pool %p\x00%s\x00%s", s.db, s.prefix, name)
		if !guardTake(l.guard, l) {
			return nil, fmt.Errorf("sqlstore: lease %q: %w", name, billing.ErrLeaseHeld)
		}
		l.q = s.db
	} else {
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: lease %q: %w", name, err)
		}
		l.conn, l.q = conn, conn
	}
	got, err := l.take(ctx, s.prefix)
	if err != nil || !got {
		// A session whose lock state is unknown is ended.
		l.close(ctx, err != nil)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: lease %q: %w", name, err)
		}
		return nil, fmt.Errorf("sqlstore: lease %q: %w", name, billing.ErrLeaseHeld)
	}
	return l, nil
}

// sessionLease is a lease held by a database session: that of conn, or,
// with a pool of one, that of db's only connection.
type sessionLease struct {
	name string
	pg   bool

	mu    sync.Mutex
	q     querier   // conn or db; nil once released or lost
	conn  *sql.Conn // the connection of its own, if it has one
	db    *sql.DB   // the pool of one, if it has none
	guard string    // the key of its lock within the process, with db
	key   int64     // PostgreSQL: the advisory lock's key
	lock  string    // MySQL: the lock's name
}

// take tries the lock, without waiting.
func (l *sessionLease) take(ctx context.Context, prefix string) (bool, error) {
	if l.pg {
		var schema sql.NullString
		if err := l.q.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			return false, err
		}
		h := fnv.New64a()
		h.Write([]byte("github.com/gobilling/billing/sqlstore lease\x00" + schema.String + "\x00" + prefix + "\x00" + l.name))
		l.key = int64(h.Sum64())
		var got bool
		err := l.q.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", l.key).Scan(&got)
		return got, err
	}
	var database sql.NullString
	if err := l.q.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&database); err != nil {
		return false, err
	}
	// Named locks are the server's, not the database's; their names are
	// at most 64 characters.
	sum := sha256.Sum256([]byte(database.String + "\x00" + prefix + "\x00" + l.name))
	l.lock = "gobilling_sqlstore_lease_" + hex.EncodeToString(sum[:12])
	var got sql.NullInt64
	if err := l.q.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", l.lock).Scan(&got); err != nil {
		return false, err
	}
	if !got.Valid {
		return false, errors.New("the server did not grant the lock (GET_LOCK returned NULL)")
	}
	return got.Int64 == 1, nil
}

// Check asks the database whether the lease's session still holds the
// lock. A failure other than ctx's ends the session, so that the lease
// is surely free for another holder, and reports the lease lost.
func (l *sessionLease) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.q == nil {
		return fmt.Errorf("sqlstore: lease %q: %w", l.name, billing.ErrLeaseLost)
	}
	var held sql.NullBool
	var err error
	if l.pg {
		err = l.q.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"+
			" AND pid = pg_backend_pid() AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1)",
			int64(uint32(uint64(l.key)>>32)), int64(uint32(l.key))).Scan(&held)
	} else {
		err = l.q.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()", l.lock).Scan(&held)
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("sqlstore: lease %q: check: %w", l.name, err)
	case err != nil:
		l.close(ctx, true)
		return fmt.Errorf("sqlstore: lease %q: %w: %w", l.name, billing.ErrLeaseLost, err)
	case !held.Valid || !held.Bool:
		l.close(ctx, false)
		return fmt.Errorf("sqlstore: lease %q: %w: its session no longer holds the lock", l.name, billing.ErrLeaseLost)
	}
	return nil
}

// Release unlocks and hands the connection back to the pool; if the
// unlock fails, it ends the session, which frees the lock.
func (l *sessionLease) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.q == nil {
		return nil
	}
	var released sql.NullBool
	var err error
	if l.pg {
		err = l.q.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", l.key).Scan(&released)
	} else {
		err = l.q.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?) = 1", l.lock).Scan(&released)
	}
	if err == nil && !released.Bool {
		err = errors.New("the session did not hold the lock")
	}
	l.close(ctx, err != nil)
	if err != nil {
		return fmt.Errorf("sqlstore: release lease %q: %w (its session was ended)", l.name, err)
	}
	return nil
}

// close gives the session up: its connection back to the pool, or, if
// end is set (the session may hold the lock still), closed for good,
// which ends the session and frees the lock.
func (l *sessionLease) close(ctx context.Context, end bool) {
	if l.q == nil {
		return
	}
	l.q = nil
	conn := l.conn
	if l.db != nil {
		defer guardRelease(l.guard, l)
		if !end {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		var err error
		if conn, err = l.db.Conn(ctx); err != nil {
			return // no session to end: the pool has none
		}
	}
	if end {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	_ = conn.Close()
}

// processLeases holds the leases taken within this process, until
// released: SQLite's, and the locks that keep apart the Stores sharing a
// pool of one.
var processLeases struct {
	mu   sync.Mutex
	held map[string]any
}

// guardTake records holder under key unless the key is held.
func guardTake(key string, holder any) bool {
	processLeases.mu.Lock()
	defer processLeases.mu.Unlock()
	if _, ok := processLeases.held[key]; ok {
		return false
	}
	if processLeases.held == nil {
		processLeases.held = make(map[string]any)
	}
	processLeases.held[key] = holder
	return true
}

// guardHeld reports whether holder holds key.
func guardHeld(key string, holder any) bool {
	processLeases.mu.Lock()
	defer processLeases.mu.Unlock()
	return processLeases.held[key] == holder
}

// guardRelease frees key if holder holds it.
func guardRelease(key string, holder any) {
	processLeases.mu.Lock()
	defer processLeases.mu.Unlock()
	if processLeases.held[key] == holder {
		delete(processLeases.held, key)
	}
}

// processLease takes the lease within the process, by database file,
// table prefix and name.
func (s *Store) processLease(ctx context.Context, name string) (billing.Lease, error) {
	file, err := s.databaseFile(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: lease %q: %w", name, err)
	}
	l := &processLease{name: name, key: "file " + file + "\x00" + s.prefix + "\x00" + name}
	if !guardTake(l.key, l) {
		return nil, fmt.Errorf("sqlstore: lease %q: %w", name, billing.ErrLeaseHeld)
	}
	return l, nil
}

// databaseFile is the path of the SQLite database's main file.
func (s *Store) databaseFile(ctx context.Context) (string, error) {
	rows, err := s.db.QueryContext(ctx, "PRAGMA database_list")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			seq        int64
			name, file sql.NullString
		)
		if err := rows.Scan(&seq, &name, &file); err != nil {
			return "", err
		}
		if name.String == "main" {
			return file.String, rows.Close()
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no main database in PRAGMA database_list")
}

// processLease is a lease held within the process.
type processLease struct {
	name, key string
}

// Check returns nil until the lease is released.
func (l *processLease) Check(ctx context.Context) error {
	if !guardHeld(l.key, l) {
		return fmt.Errorf("sqlstore: lease %q: %w", l.name, billing.ErrLeaseLost)
	}
	return nil
}

// Release frees the lease; releasing it again does nothing.
func (l *processLease) Release(ctx context.Context) error {
	guardRelease(l.key, l)
	return nil
}
