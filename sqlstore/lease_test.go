package sqlstore_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/sqlstore"
	"github.com/gobilling/billing/storetest"
)

// TestLeaseConformance runs storetest's Lease group on each database,
// with a pool of its own per store, and with a pool of one connection.
func TestLeaseConformance(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		database(t, d)
		t.Run("Pool", func(t *testing.T) {
			storetest.RunLease(t, func(t *testing.T) billing.Store { return newTestStore(t, d) })
		})
		t.Run("PoolOfOne", func(t *testing.T) {
			storetest.RunLease(t, func(t *testing.T) billing.Store {
				tdb := database(t, d)
				return newStore(t, tdb, tdb.open(t, 1), sqlstore.Options{})
			})
		})
	})
}

// sameTables returns a second store on the tables of st, on a pool of
// its own (another replica).
func sameTables(t *testing.T, tdb testDB, db *sql.DB, st *sqlstore.Store) *sqlstore.Store {
	t.Helper()
	other, err := sqlstore.New(t.Context(), db, tdb.dialect, sqlstore.Options{TablePrefix: st.TablePrefix()})
	require.NoError(t, err)
	return other
}

// leaseHeld checks that st cannot take the lease now.
func leaseHeld(t *testing.T, st *sqlstore.Store, name string) {
	t.Helper()
	l, err := st.Lease(t.Context(), name)
	if l != nil {
		_ = l.Release(context.Background())
	}
	require.ErrorIs(t, err, billing.ErrLeaseHeld)
}

// TestLeaseAcrossPools: the lease excludes a store on another pool (a
// replica), is free for it once released, and does not reach tables of
// another prefix.
func TestLeaseAcrossPools(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		a := newStore(t, tdb, tdb.open(t, 4), sqlstore.Options{})
		b := sameTables(t, tdb, tdb.open(t, 4), a)
		elsewhere := newStore(t, tdb, tdb.open(t, 4), sqlstore.Options{})
		ctx := t.Context()

		la, err := a.Lease(ctx, billing.MaintenanceLease)
		require.NoError(t, err)
		leaseHeld(t, b, billing.MaintenanceLease)
		leaseHeld(t, a, billing.MaintenanceLease)
		require.NoError(t, la.Check(ctx))

		le, err := elsewhere.Lease(ctx, billing.MaintenanceLease)
		require.NoError(t, err, "another prefix, another lease")
		require.NoError(t, le.Release(ctx))

		require.NoError(t, la.Release(ctx))
		require.ErrorIs(t, la.Check(ctx), billing.ErrLeaseLost)
		lb, err := b.Lease(ctx, billing.MaintenanceLease)
		require.NoError(t, err, "released: the other replica takes it")
		leaseHeld(t, a, billing.MaintenanceLease)
		require.NoError(t, lb.Release(ctx))
		require.NoError(t, lb.Release(ctx), "a second release does nothing")
	})
}

// trackingConnector opens the driver's connections and keeps them, so
// that a test can end them behind database/sql's back.
type trackingConnector struct {
	driver.Connector
	mu    sync.Mutex
	conns []driver.Conn
}

func (c *trackingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err == nil {
		c.mu.Lock()
		c.conns = append(c.conns, conn)
		c.mu.Unlock()
	}
	return conn, err
}

// sessionIDs asks each connection for its server session's ID. The pool
// must be idle.
func (c *trackingConnector) sessionIDs(t *testing.T, d sqlstore.Dialect) []int64 {
	t.Helper()
	q := "SELECT CONNECTION_ID()"
	if d == sqlstore.Postgres {
		q = "SELECT pg_backend_pid()"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []int64
	for _, conn := range c.conns {
		rows, err := conn.(driver.QueryerContext).QueryContext(t.Context(), q, nil)
		if err != nil {
			continue // closed already
		}
		v := make([]driver.Value, 1)
		require.NoError(t, rows.Next(v))
		require.NoError(t, rows.Close())
		switch id := v[0].(type) {
		case int64:
			ids = append(ids, id)
		case int32:
			ids = append(ids, int64(id))
		case uint64:
			ids = append(ids, int64(id))
		case []byte:
			n, err := strconv.ParseInt(string(id), 10, 64)
			require.NoError(t, err)
			ids = append(ids, n)
		default:
			t.Fatalf("session ID of type %T", v[0])
		}
	}
	return ids
}

// closeAll closes every connection, as a process that dies does.
func (c *trackingConnector) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		_ = conn.Close()
	}
}

// TestLeaseFreedWithItsSession: when the holder's connection ends (its
// process died, or the server ended the session), the lease is free for
// another replica, and the holder's Check says it is lost.
func TestLeaseFreedWithItsSession(t *testing.T) {
	for _, d := range []sqlstore.Dialect{sqlstore.Postgres, sqlstore.MySQL} {
		for _, how := range []string{"ClientCloses", "ServerEnds"} {
			t.Run(string(d)+"/"+how, func(t *testing.T) {
				t.Parallel()
				tdb := database(t, d)
				tc := &trackingConnector{Connector: tdb.connector(t)}
				dbA := sql.OpenDB(tc)
				dbA.SetMaxOpenConns(4)
				t.Cleanup(func() { dbA.Close() })
				a := newStore(t, tdb, dbA, sqlstore.Options{})
				dbB := tdb.open(t, 4)
				b := sameTables(t, tdb, dbB, a)
				ctx := t.Context()

				la, err := a.Lease(ctx, billing.MaintenanceLease)
				require.NoError(t, err)
				leaseHeld(t, b, billing.MaintenanceLease)

				if how == "ClientCloses" {
					tc.closeAll()
				} else {
					for _, id := range tc.sessionIDs(t, d) {
						q := fmt.Sprintf("KILL CONNECTION %d", id)
						if d == sqlstore.Postgres {
							q = fmt.Sprintf("SELECT pg_terminate_backend(%d)", id)
						}
						_, err := dbB.ExecContext(ctx, q)
						require.NoError(t, err, q)
					}
				}

				// The server frees the lock once it has seen the session
				// end: soon, but not at once.
				var lb billing.Lease
				require.Eventually(t, func() bool {
					lb, err = b.Lease(ctx, billing.MaintenanceLease)
					return err == nil
				}, 10*time.Second, 10*time.Millisecond, "the other replica takes the lease: %v", err)
				t.Cleanup(func() { _ = lb.Release(context.Background()) })

				require.ErrorIs(t, la.Check(ctx), billing.ErrLeaseLost)
				require.NoError(t, la.Release(ctx), "releasing a lost lease does nothing")
				require.NoError(t, lb.Check(ctx), "and takes nothing from the new holder")
				leaseHeld(t, a, billing.MaintenanceLease)
			})
		}
	}
}

// TestLeaseLostWithPoolOfOne: with a pool of one connection the pool's
// session holds the lock; when that connection is replaced, the lease is
// lost (Check says so) and the new session can take it again.
func TestLeaseLostWithPoolOfOne(t *testing.T) {
	for _, d := range []sqlstore.Dialect{sqlstore.Postgres, sqlstore.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			tdb := database(t, d)
			tc := &trackingConnector{Connector: tdb.connector(t)}
			db := sql.OpenDB(tc)
			db.SetMaxOpenConns(1)
			t.Cleanup(func() { db.Close() })
			st := newStore(t, tdb, db, sqlstore.Options{})
			other := sameTables(t, tdb, tdb.open(t, 4), st)
			ctx := t.Context()

			l, err := st.Lease(ctx, billing.MaintenanceLease)
			require.NoError(t, err)
			_, err = st.Processed(ctx, "evt_1") // the store's statements run on that session meanwhile
			require.NoError(t, err)
			require.NoError(t, l.Check(ctx))
			leaseHeld(t, st, billing.MaintenanceLease)
			leaseHeld(t, other, billing.MaintenanceLease)

			tc.closeAll()
			var cerr error
			require.Eventually(t, func() bool {
				cerr = l.Check(ctx)
				return cerr != nil
			}, 10*time.Second, 10*time.Millisecond)
			require.ErrorIs(t, cerr, billing.ErrLeaseLost)
			require.NoError(t, l.Release(ctx))

			var l2 billing.Lease
			require.Eventually(t, func() bool {
				l2, err = st.Lease(ctx, billing.MaintenanceLease)
				return err == nil
			}, 10*time.Second, 10*time.Millisecond, "the new session takes the lease: %v", err)
			require.NoError(t, l2.Check(ctx))
			leaseHeld(t, other, billing.MaintenanceLease)
			require.NoError(t, l2.Release(ctx))
			lo, err := other.Lease(ctx, billing.MaintenanceLease)
			require.NoError(t, err, "released, the lock is free on the server")
			require.NoError(t, lo.Release(ctx))
		})
	}
}

// TestLeaseSQLiteOneProcess: on SQLite the lease is the process's: two
// pools on one database file exclude each other, by table prefix.
func TestLeaseSQLiteOneProcess(t *testing.T) {
	t.Parallel()
	tdb := database(t, sqlstore.SQLite)
	a := newStore(t, tdb, tdb.open(t, 4), sqlstore.Options{})
	b := sameTables(t, tdb, tdb.open(t, 4), a)
	elsewhere := newStore(t, tdb, tdb.open(t, 4), sqlstore.Options{})
	ctx := t.Context()

	la, err := a.Lease(ctx, billing.MaintenanceLease)
	require.NoError(t, err)
	leaseHeld(t, b, billing.MaintenanceLease)
	le, err := elsewhere.Lease(ctx, billing.MaintenanceLease)
	require.NoError(t, err, "another prefix, another lease")
	require.NoError(t, le.Release(ctx))

	other := database(t, sqlstore.SQLite) // another file
	lo, err := newStore(t, other, other.open(t, 2), sqlstore.Options{TablePrefix: a.TablePrefix()}).Lease(ctx, billing.MaintenanceLease)
	require.NoError(t, err, "another database file, another lease")
	require.NoError(t, lo.Release(ctx))

	require.NoError(t, la.Release(ctx))
	lb, err := b.Lease(ctx, billing.MaintenanceLease)
	require.NoError(t, err)
	require.NoError(t, lb.Release(ctx))
}

// TestMaintainOnceOnSQL: MaintainOnce waits its turn behind another
// replica's lease, then catches up and prunes the processed events past
// the store's retention (sqlstore is a billing.EventPruner).
func TestMaintainOnceOnSQL(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		fake := newFake(t)
		opts := sqlstore.Options{Now: fake.Now}
		a := newStore(t, tdb, tdb.open(t, 4), opts)
		opts.TablePrefix = a.TablePrefix()
		b, err := sqlstore.New(t.Context(), tdb.open(t, 4), d, opts)
		require.NoError(t, err)
		ctx := t.Context()

		require.NoError(t, a.Apply(ctx, "evt_old", func(context.Context, billing.Tx) error { return nil }))
		require.NoError(t, fake.Sleep(ctx, sqlstore.DefaultEventRetention+time.Hour))
		require.NoError(t, a.Apply(ctx, "evt_new", func(context.Context, billing.Tx) error { return nil }))

		held, err := a.Lease(ctx, billing.MaintenanceLease)
		require.NoError(t, err)
		replica := newBilling(t, fake, b)
		_, err = replica.MaintainOnce(ctx, billing.MaintenanceOptions{})
		require.ErrorIs(t, err, billing.ErrLeaseHeld)
		require.NoError(t, held.Release(ctx))

		rep, err := replica.MaintainOnce(ctx, billing.MaintenanceOptions{})
		require.NoError(t, err)
		assert.Equal(t, billing.MaintenanceReport{CatchUpRan: true, PruneRan: true, PrunedEvents: 1}, rep)
		for id, want := range map[string]bool{"evt_old": false, "evt_new": true} {
			got, err := b.Processed(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, want, got, id)
		}
		lb, err := b.Lease(ctx, billing.MaintenanceLease)
		require.NoError(t, err, "MaintainOnce released the lease")
		require.NoError(t, lb.Release(ctx))
	})
}
