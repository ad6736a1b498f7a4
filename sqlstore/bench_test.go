package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/sqlstore"
)

// benchEvents numbers the events of every benchmark run, so that each
// applies a new event.
var benchEvents atomic.Int64

// BenchmarkApply applies one new event per iteration: a subscription
// state strictly newer than the stored one, so every iteration writes.
// On each database it measures three ways, sequentially and from 8
// goroutines (each on a subscription of its own):
//
//   - sqlstore: Store.Apply with what billing's handler does for a
//     customer.subscription.* payload: tx.UserID (which locks the user),
//     tx.Subscription (for update), tx.SaveSubscription. One transaction:
//     BEGIN, INSERT the event, SELECT ... FOR UPDATE the user, SELECT ...
//     FOR UPDATE the subscription, UPDATE it, COMMIT.
//   - sqlstore_put: Store.Apply with tx.Subscription and
//     tx.SaveSubscription alone: BEGIN, INSERT, SELECT ... FOR UPDATE,
//     UPDATE, COMMIT.
//   - guide: the reference guide's pattern, three statements each in its
//     own implicit transaction: SELECT the event (processed?), UPDATE the
//     subscription (unconditionally), INSERT the event (mark processed).
//
// Both use the same tables in the same database.
func BenchmarkApply(b *testing.B) {
	for _, d := range dialects {
		b.Run(string(d), func(b *testing.B) {
			tdb := database(b, d)
			db := tdb.open(b, 16)
			st := newStore(b, tdb, db, sqlstore.Options{})
			const workers = 8
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			ctx := context.Background()
			for w := range workers {
				err := st.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
					if err := tx.LinkCustomer(ctx, fmt.Sprintf("user_bench_%d", w), fmt.Sprintf("cus_bench_%d", w)); err != nil {
						return err
					}
					return tx.SaveSubscription(ctx, benchSub(w, base))
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			// versions[w] is the last version written to worker w's
			// subscription, in seconds after base.
			var versions [workers]atomic.Int64
			next := func(w int) billing.Subscription {
				return benchSub(w, base.Add(time.Duration(versions[w].Add(1))*time.Second))
			}
			eventID := func() string { return fmt.Sprintf("evt_bench_%024d", benchEvents.Add(1)) }

			applyStore := func(w int) error {
				s := next(w)
				return st.Apply(ctx, eventID(), func(ctx context.Context, tx billing.Tx) error {
					user, err := tx.UserID(ctx, s.CustomerID)
					if err != nil {
						return err
					}
					s.UserID = user
					return readSave(ctx, tx, s)
				})
			}

			applyPut := func(w int) error {
				s := next(w)
				return st.Apply(ctx, eventID(), func(ctx context.Context, tx billing.Tx) error {
					return readSave(ctx, tx, s)
				})
			}

			g := newGuide(d, db, st.TablePrefix())
			applyGuide := func(w int) error { return g.apply(ctx, eventID(), next(w)) }

			for _, impl := range []struct {
				name  string
				apply func(w int) error
			}{{"sqlstore", applyStore}, {"sqlstore_put", applyPut}, {"guide", applyGuide}} {
				for _, n := range []int{1, workers} {
					name := impl.name + "/sequential"
					if n > 1 {
						name = fmt.Sprintf("%s/%d_goroutines", impl.name, n)
					}
					b.Run(name, func(b *testing.B) { runWorkers(b, n, impl.apply) })
				}
			}
		})
	}
}

// runWorkers runs b.N calls of apply from n goroutines, worker w calling
// apply(w).
func runWorkers(b *testing.B, n int, apply func(w int) error) {
	var (
		done atomic.Int64
		wg   sync.WaitGroup
	)
	b.ResetTimer()
	for w := range n {
		wg.Go(func() {
			for done.Add(1) <= int64(b.N) {
				if err := apply(w); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// readSave reads s's record for update and saves s over it, as billing
// does when s is newer.
func readSave(ctx context.Context, tx billing.Tx, s billing.Subscription) error {
	old, found, err := tx.Subscription(ctx, s.ID)
	if err != nil {
		return err
	}
	if !found || !s.Version.After(old.Version) {
		return errors.New("the stored state is not older")
	}
	return tx.SaveSubscription(ctx, s)
}

func benchSub(w int, version time.Time) billing.Subscription {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return billing.Subscription{
		ID:         fmt.Sprintf("sub_bench_%d", w),
		CustomerID: fmt.Sprintf("cus_bench_%d", w),
		UserID:     fmt.Sprintf("user_bench_%d", w),
		Status:     "active",
		Items: []billing.Item{{PriceID: "price_pro", Quantity: 1,
			CurrentPeriodStart: start, CurrentPeriodEnd: start.AddDate(0, 1, 0)}},
		LatestInvoiceID: "in_bench",
		Version:         version,
	}
}

// guide is the reference guide's webhook pattern on the store's tables:
// check, apply, mark, as three statements.
type guide struct {
	db                 *sql.DB
	check, update, ins string
}

func newGuide(d sqlstore.Dialect, db *sql.DB, prefix string) *guide {
	cols := []string{"customer_id", "user_id", "status", "items", "cancel_at_period_end", "cancel_at", "canceled_at",
		"ended_at", "trial_start", "trial_end", "latest_invoice_id", "version"}
	set := make([]string, len(cols))
	for i, c := range cols {
		set[i] = c + " = " + ph(d, i+1)
	}
	return &guide{
		db:     db,
		check:  "SELECT 1 FROM " + prefix + "events WHERE id = " + ph(d, 1),
		update: "UPDATE " + prefix + "subscriptions SET " + strings.Join(set, ", ") + " WHERE id = " + ph(d, len(cols)+1),
		ins:    "INSERT INTO " + prefix + "events (id, processed_at) VALUES (" + ph(d, 1) + ", " + ph(d, 2) + ")",
	}
}

func (g *guide) apply(ctx context.Context, eventID string, s billing.Subscription) error {
	var one int
	err := g.db.QueryRowContext(ctx, g.check, eventID).Scan(&one)
	if err == nil {
		return billing.ErrDuplicateEvent
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	items := fmt.Sprintf(`[{"price_id":%q,"quantity":%d,"current_period_start":%d,"current_period_end":%d}]`,
		s.Items[0].PriceID, s.Items[0].Quantity, s.Items[0].CurrentPeriodStart.Unix(), s.Items[0].CurrentPeriodEnd.Unix())
	if _, err := g.db.ExecContext(ctx, g.update, s.CustomerID, s.UserID, string(s.Status), items, s.CancelAtPeriodEnd,
		0, 0, 0, 0, 0, s.LatestInvoiceID, s.Version.Unix(), s.ID); err != nil {
		return err
	}
	_, err = g.db.ExecContext(ctx, g.ins, eventID, time.Now().Unix())
	return err
}
