package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/sqlstore"
)

// TestReplicasApplyOnce has 4 pools (4 app replicas) × 16 goroutines
// Apply the same events, in different orders: each event's fn commits
// exactly once. fn's write is not idempotent (a grant keyed by the
// goroutine), so a second commit would show.
func TestReplicasApplyOnce(t *testing.T) {
	const replicas, goroutines, events = 4, 16, 8
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		prefix := newPrefix(t)
		var stores []*sqlstore.Store
		for range replicas {
			stores = append(stores, newStore(t, tdb, tdb.open(t, 8), sqlstore.Options{TablePrefix: prefix}))
		}
		const user = "user_once"
		errs := make([][]error, events)
		for i := range errs {
			errs[i] = make([]error, replicas*goroutines)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for r, st := range stores {
			for g := range goroutines {
				w := r*goroutines + g
				wg.Go(func() {
					<-start
					for _, e := range rand.Perm(events) {
						errs[e][w] = st.Apply(t.Context(), fmt.Sprintf("evt_once_%d", e), func(ctx context.Context, tx billing.Tx) error {
							_, err := tx.AddGrant(ctx, billing.Grant{
								CheckoutSessionID: fmt.Sprintf("cs_%d_by_%d", e, w),
								UserID:            user, CustomerID: "cus_once", Quantity: 1, Credits: 1,
								GrantedAt: time.Unix(int64(1_700_000_000+e), 0),
							})
							time.Sleep(time.Millisecond) // keep the transaction open a while
							return err
						})
					}
				})
			}
		}
		close(start)
		wg.Wait()

		for e := range events {
			committed := 0
			for w, err := range errs[e] {
				switch {
				case err == nil:
					committed++
				case !errors.Is(err, billing.ErrDuplicateEvent):
					t.Errorf("event %d, worker %d: %v", e, w, err)
				}
			}
			assert.Equal(t, 1, committed, "event %d: commits", e)
		}
		f, err := stores[0].Facts(t.Context(), user)
		require.NoError(t, err)
		assert.Len(t, f.Grants, events, "one grant per event")
		for _, st := range stores {
			for e := range events {
				ok, err := st.Processed(t.Context(), fmt.Sprintf("evt_once_%d", e))
				require.NoError(t, err)
				assert.True(t, ok)
			}
		}
	})
}

// TestConcurrentMigrate runs Migrate from 4 pools at once on empty
// tables: one schema, no error; then again, as a no-op.
func TestConcurrentMigrate(t *testing.T) {
	const pools = 4
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		prefix := newPrefix(t)
		var stores []*sqlstore.Store
		for range pools {
			db := tdb.open(t, 2)
			st, err := sqlstore.New(t.Context(), db, d, sqlstore.Options{TablePrefix: prefix})
			require.NoError(t, err)
			stores = append(stores, st)
		}
		dropTables(t, tdb, tdb.open(t, 1), prefix)
		require.Empty(t, tableNames(t, tdb, tdb.open(t, 1), prefix))

		for round := range 2 {
			errs := make([]error, pools)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i, st := range stores {
				wg.Go(func() {
					<-start
					errs[i] = st.Migrate(t.Context())
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				require.NoError(t, err, "round %d, pool %d", round, i)
			}
			db := tdb.open(t, 1)
			assert.ElementsMatch(t, tables, tableNames(t, tdb, db, prefix), "round %d", round)
			migrations, err := fs.Glob(sqlstore.Migrations(d), "*.sql")
			require.NoError(t, err)
			assert.Equal(t, len(migrations), count(t, db, "SELECT COUNT(*) FROM "+prefix+"schema_migrations"), "round %d: each migration recorded once", round)
		}
		// The schema works.
		require.NoError(t, stores[pools-1].Apply(t.Context(), "evt_after_migrate", func(ctx context.Context, tx billing.Tx) error {
			return tx.LinkCustomer(ctx, "user", "cus")
		}))
	})
}

// TestDeadlockRetried makes two Applies lock two subscriptions in
// opposite orders: the database kills one with a deadlock (PostgreSQL
// 40P01, MySQL 1213), and Apply runs it again, so both commit. SQLite
// cannot deadlock (its transactions hold the write lock from BEGIN).
func TestDeadlockRetried(t *testing.T) {
	for _, d := range []sqlstore.Dialect{sqlstore.Postgres, sqlstore.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			st := newTestStore(t, d)
			v0 := time.Unix(1_700_000_000, 0)
			require.NoError(t, st.Apply(t.Context(), "", func(ctx context.Context, tx billing.Tx) error {
				for _, id := range []string{"sub_a", "sub_b"} {
					if err := tx.SaveSubscription(ctx, billing.Subscription{ID: id, UserID: "u", Status: "active", Version: v0}); err != nil {
						return err
					}
				}
				return nil
			}))

			var (
				mu    sync.Mutex
				calls int
				wg    sync.WaitGroup
				both  sync.WaitGroup // both hold their first lock
			)
			both.Add(2)
			// touch reads a record for update (locking it) and saves it.
			touch := func(ctx context.Context, tx billing.Tx, id string, version time.Time) error {
				if _, _, err := tx.Subscription(ctx, id); err != nil {
					return err
				}
				return tx.SaveSubscription(ctx, billing.Subscription{ID: id, UserID: "u", Status: "active", Version: version})
			}
			lockBoth := func(first, second string, version time.Time) error {
				first1 := true
				return st.Apply(t.Context(), "evt_"+first, func(ctx context.Context, tx billing.Tx) error {
					mu.Lock()
					calls++
					mu.Unlock()
					if err := touch(ctx, tx, first, version); err != nil {
						return err
					}
					if first1 {
						first1 = false
						both.Done()
						both.Wait()
					}
					return touch(ctx, tx, second, version)
				})
			}
			var errA, errB error
			wg.Go(func() { errA = lockBoth("sub_a", "sub_b", v0.Add(time.Second)) })
			wg.Go(func() { errB = lockBoth("sub_b", "sub_a", v0.Add(2*time.Second)) })
			wg.Wait()
			require.NoError(t, errA)
			require.NoError(t, errB)
			assert.Equal(t, 3, calls, "one of the two ran twice")
		})
	}
}

// TestBusyRetried holds SQLite's write lock from another pool longer
// than the store's busy timeout: Apply gets SQLITE_BUSY, retries, and
// commits once the lock is free; with retries off, it returns the error.
func TestBusyRetried(t *testing.T) {
	tdb := database(t, sqlstore.SQLite)
	short := tdb
	short.dsn = strings.Replace(tdb.dsn, "busy_timeout(10000)", "busy_timeout(50)", 1)
	prefix := newPrefix(t)
	st := newStore(t, short, short.open(t, 2), sqlstore.Options{TablePrefix: prefix})
	noRetry, err := sqlstore.New(t.Context(), short.open(t, 2), sqlstore.SQLite, sqlstore.Options{TablePrefix: prefix, MaxRetries: -1})
	require.NoError(t, err)

	holder := tdb.open(t, 1)
	hold := func(d time.Duration) {
		tx, err := holder.BeginTx(t.Context(), nil) // IMMEDIATE: holds the write lock
		require.NoError(t, err)
		time.AfterFunc(d, func() { _ = tx.Rollback() })
	}
	link := func(st *sqlstore.Store, id string) error {
		return st.Apply(t.Context(), id, func(ctx context.Context, tx billing.Tx) error {
			return tx.LinkCustomer(ctx, "user_"+id, "cus_"+id)
		})
	}

	hold(time.Second)
	err = link(noRetry, "evt_no_retry")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SQLITE_BUSY")
	time.Sleep(1100 * time.Millisecond)

	hold(300 * time.Millisecond)
	began := time.Now()
	require.NoError(t, link(st, "evt_retried"))
	assert.Greater(t, time.Since(began), 250*time.Millisecond, "Apply waited for the lock")
	ok, err := st.Processed(t.Context(), "evt_retried")
	require.NoError(t, err)
	assert.True(t, ok)
}

// TestPanicInFn: a panic in fn goes on up, after the transaction is
// rolled back: nothing is recorded, and the pool's only connection is
// free again.
func TestPanicInFn(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		st := newStore(t, tdb, tdb.open(t, 1), sqlstore.Options{})
		func() {
			defer func() { assert.Equal(t, "boom", recover()) }()
			_ = st.Apply(t.Context(), "evt_panic", func(ctx context.Context, tx billing.Tx) error {
				if err := tx.LinkCustomer(ctx, "user", "cus"); err != nil {
					return err
				}
				panic("boom")
			})
		}()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		ok, err := st.Processed(ctx, "evt_panic")
		require.NoError(t, err)
		assert.False(t, ok)
		_, err = st.CustomerID(ctx, "user")
		require.ErrorIs(t, err, billing.ErrNotFound)
		require.NoError(t, st.Apply(ctx, "evt_panic", func(ctx context.Context, tx billing.Tx) error {
			return tx.LinkCustomer(ctx, "user", "cus")
		}))
	})
}

// TestConcurrentRefundCreates has 4 pools × 4 goroutines create the
// refund record of one PaymentIntent at once, each after reading it
// absent, with no user lock to order them (a user without a customer has
// none): every transaction commits, as the last write of an upsert, and
// one record remains. On PostgreSQL and MySQL all of them read the record
// absent before any writes it (their first attempt waits for the others
// between the two); SQLite's transactions run one at a time anyway.
func TestConcurrentRefundCreates(t *testing.T) {
	const pools, goroutines = 4, 4
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		prefix := newPrefix(t)
		var stores []*sqlstore.Store
		for range pools {
			stores = append(stores, newStore(t, tdb, tdb.open(t, goroutines), sqlstore.Options{TablePrefix: prefix}))
		}
		const pi, user = "pi_raced", "user_raced"
		version := time.Unix(1_770_000_000, 0).UTC()
		refund := func(w int) billing.Refund {
			return billing.Refund{PaymentIntentID: pi, ChargeID: fmt.Sprintf("ch_%d", w), UserID: user, CustomerID: "cus_raced",
				Amount: int64(100 + w), Currency: "eur", Version: version.Add(time.Duration(w) * time.Second)}
		}

		// read: every worker's first attempt has read the record.
		read := make(chan struct{})
		var waiting sync.WaitGroup
		waiting.Add(pools * goroutines)
		go func() { waiting.Wait(); close(read) }()
		barrier := d != sqlstore.SQLite

		errs := make([]error, pools*goroutines)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for p, st := range stores {
			for g := range goroutines {
				w := p*goroutines + g
				wg.Go(func() {
					<-start
					first := true
					errs[w] = st.Apply(t.Context(), "", func(ctx context.Context, tx billing.Tx) error {
						_, found, err := tx.Refund(ctx, pi)
						if first {
							first = false
							waiting.Done()
							if barrier && err == nil && !found {
								select {
								case <-read:
								case <-ctx.Done():
									return ctx.Err()
								}
							}
						}
						if err != nil {
							return err
						}
						return tx.SaveRefund(ctx, refund(w))
					})
					if first { // Apply failed before fn ran
						waiting.Done()
					}
				})
			}
		}
		close(start)
		wg.Wait()
		for w, err := range errs {
			assert.NoError(t, err, "worker %d", w)
		}

		f, err := stores[0].Facts(t.Context(), user)
		require.NoError(t, err)
		require.Len(t, f.Refunds, 1, "one record per PaymentIntent")
		var ws []billing.Refund
		for w := range pools * goroutines {
			ws = append(ws, refund(w))
		}
		assert.Contains(t, ws, f.Refunds[0], "one worker's record, whole")
	})
}
