package sqlstore_test

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/sqlstore"
)

// TestRecentEventsOrder: newest first by processed_at (whole seconds of
// Options.Now), then by ID compared byte-wise, descending, whatever the
// database's collation; with each event's type, object ID and via, from
// Apply's and ApplyNewer's context; and what PruneEvents deleted is gone.
func TestRecentEventsOrder(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		st := newStore(t, tdb, tdb.open(t, 4), sqlstore.Options{Now: clk.Now})
		ctx := t.Context()
		apply := func(id, typ, object, via string) {
			t.Helper()
			ctx := billing.ContextWithEventInfo(ctx, billing.EventInfo{Type: typ, ObjectID: object, Via: via})
			require.NoError(t, st.Apply(ctx, id, func(ctx context.Context, tx billing.Tx) error { return nil }))
		}
		t0 := clk.Now()
		apply("evt_b", "invoice.paid", "in_b", billing.ViaWebhook)
		apply("evt_B", "invoice.paid", "in_B", billing.ViaCatchUp) // 'B' < 'a' < 'b' byte-wise
		apply("evt_a", "invoice.paid", "in_a", billing.ViaReplay)
		clk.Advance(1500 * time.Millisecond)
		t1 := clk.Now().Truncate(time.Second)
		apply("evt_0", "customer.subscription.deleted", "sub_0", billing.ViaWebhook)

		// ApplyNewer's event (PostgreSQL's one statement, the others'
		// transaction) keeps its info too.
		clk.Advance(time.Hour)
		t2 := clk.Now().Truncate(time.Second)
		require.NoError(t, st.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
			return tx.LinkCustomer(ctx, "user", "cus")
		}))
		sub := billing.Subscription{ID: "sub_1", CustomerID: "cus", Status: "active", Version: t2, OrderKey: 100}
		saved, _, err := st.ApplyNewer(billing.ContextWithEventInfo(ctx,
			billing.EventInfo{Type: "customer.subscription.created", ObjectID: "sub_1", Via: billing.ViaWebhook}), "evt_newer", sub)
		require.NoError(t, err)
		require.True(t, saved, "ApplyNewer saves a new subscription of a linked customer")

		want := []billing.ProcessedEvent{
			{ID: "evt_newer", Type: "customer.subscription.created", ObjectID: "sub_1", Via: billing.ViaWebhook, ProcessedAt: t2},
			{ID: "evt_0", Type: "customer.subscription.deleted", ObjectID: "sub_0", Via: billing.ViaWebhook, ProcessedAt: t1},
			{ID: "evt_b", Type: "invoice.paid", ObjectID: "in_b", Via: billing.ViaWebhook, ProcessedAt: t0},
			{ID: "evt_a", Type: "invoice.paid", ObjectID: "in_a", Via: billing.ViaReplay, ProcessedAt: t0},
			{ID: "evt_B", Type: "invoice.paid", ObjectID: "in_B", Via: billing.ViaCatchUp, ProcessedAt: t0},
		}
		got, err := st.RecentEvents(ctx, 10)
		require.NoError(t, err)
		assert.Equal(t, want, got)
		got, err = st.RecentEvents(ctx, 2)
		require.NoError(t, err)
		assert.Equal(t, want[:2], got)
		got, err = st.RecentEvents(ctx, 0)
		require.NoError(t, err)
		assert.Empty(t, got)

		// Pruned records are not listed any more.
		clk.Advance(sqlstore.DefaultEventRetention - time.Minute)
		n, err := st.PruneEvents(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(4), n)
		got, err = st.RecentEvents(ctx, 10)
		require.NoError(t, err)
		assert.Equal(t, want[:1], got)
	})
}

// TestEventInfoStorable: what the context tells of an event is made
// storable (valid UTF-8, no NUL byte, at most 255 bytes cut on a rune
// boundary) rather than fail the transaction, in Apply and ApplyNewer.
func TestEventInfoStorable(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		st := newTestStore(t, d)
		ctx := billing.ContextWithEventInfo(t.Context(), billing.EventInfo{
			Type:     "invoice.\x00paid",
			ObjectID: "in_\xff" + strings.Repeat("é", 200),
			Via:      strings.Repeat("v", 300),
		})
		require.NoError(t, st.Apply(ctx, "evt_odd", func(ctx context.Context, tx billing.Tx) error {
			return tx.LinkCustomer(ctx, "user", "cus")
		}))
		saved, _, err := st.ApplyNewer(ctx, "evt_odd_newer", billing.Subscription{ID: "sub", CustomerID: "cus", Status: "active",
			Version: time.Unix(1_770_000_000, 0).UTC(), OrderKey: 1})
		require.NoError(t, err)
		require.True(t, saved)
		evs, err := st.RecentEvents(t.Context(), 10)
		require.NoError(t, err)
		require.Len(t, evs, 2)
		for _, ev := range evs {
			assert.Equal(t, "invoice.\uFFFDpaid", ev.Type)
			assert.Equal(t, "in_\uFFFD"+strings.Repeat("é", 124), ev.ObjectID, "cut to 255 bytes on a rune boundary")
			assert.True(t, utf8.ValidString(ev.ObjectID))
			assert.Equal(t, strings.Repeat("v", 255), ev.Via)
		}
	})
}
