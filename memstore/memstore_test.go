package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/memstore"
	"github.com/gobilling/billing/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) billing.Store { return memstore.New() })
}

// TestLifecycles runs the hostile lifecycle suite on memstore.
func TestLifecycles(t *testing.T) {
	storetest.RunLifecycles(t, func(t *testing.T) billing.Store { return memstore.New() }, storetest.LifecycleOptions{})
}

// TestFactsOrder checks the order memstore promises beyond the contract:
// subscriptions by ID, grants by GrantedAt then CheckoutSessionID.
func TestFactsOrder(t *testing.T) {
	st := memstore.New()
	t0 := time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)
	require.NoError(t, st.Apply(t.Context(), "", func(ctx context.Context, tx billing.Tx) error {
		for _, id := range []string{"sub_c", "sub_a", "sub_b"} {
			if err := tx.SaveSubscription(ctx, billing.Subscription{ID: id, UserID: "u", Status: "active", Version: t0}); err != nil {
				return err
			}
		}
		for _, g := range []billing.Grant{
			{CheckoutSessionID: "cs_b", UserID: "u", GrantedAt: t0},
			{CheckoutSessionID: "cs_c", UserID: "u", GrantedAt: t0.Add(-time.Second)},
			{CheckoutSessionID: "cs_a", UserID: "u", GrantedAt: t0},
		} {
			if _, err := tx.AddGrant(ctx, g); err != nil {
				return err
			}
		}
		return nil
	}))
	f, err := st.Facts(t.Context(), "u")
	require.NoError(t, err)
	var subs, grants []string
	for _, s := range f.Subscriptions {
		subs = append(subs, s.ID)
	}
	for _, g := range f.Grants {
		grants = append(grants, g.CheckoutSessionID)
	}
	assert.Equal(t, []string{"sub_a", "sub_b", "sub_c"}, subs)
	assert.Equal(t, []string{"cs_c", "cs_a", "cs_b"}, grants)
}

// TestParkedTies checks that events parked at the same time come out by ID.
func TestParkedTies(t *testing.T) {
	st := memstore.New()
	t0 := time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)
	for _, id := range []string{"evt_b", "evt_c", "evt_a"} {
		require.NoError(t, st.Park(t.Context(), billing.ParkedEvent{ID: id, ParkedAt: t0}))
	}
	evs, err := st.ParkedEvents(t.Context(), billing.ParkedCursor{}, 10)
	require.NoError(t, err)
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.ID)
	}
	assert.Equal(t, []string{"evt_a", "evt_b", "evt_c"}, ids)
}

// TestApplyIsolation checks that a transaction's writes are invisible to
// the Store's read methods until it commits, and that a Tx is unusable
// once its Apply returned.
func TestApplyIsolation(t *testing.T) {
	st := memstore.New()
	var (
		during  billing.Facts
		leaked  billing.Tx
		errRead error
	)
	require.NoError(t, st.Apply(t.Context(), "evt_1", func(ctx context.Context, tx billing.Tx) error {
		leaked = tx
		if err := tx.LinkCustomer(ctx, "u", "cus"); err != nil {
			return err
		}
		if _, err := tx.AddGrant(ctx, billing.Grant{CheckoutSessionID: "cs", UserID: "u"}); err != nil {
			return err
		}
		during, errRead = st.Facts(ctx, "u")
		return nil
	}))
	require.NoError(t, errRead)
	assert.Empty(t, during.CustomerID, "uncommitted link visible")
	assert.Empty(t, during.Grants, "uncommitted grant visible")

	after, err := st.Facts(t.Context(), "u")
	require.NoError(t, err)
	assert.Equal(t, "cus", after.CustomerID)
	assert.Len(t, after.Grants, 1)

	_, err = leaked.AddGrant(t.Context(), billing.Grant{CheckoutSessionID: "cs_late", UserID: "u"})
	require.Error(t, err, "a Tx used after Apply returned")
	after, err = st.Facts(t.Context(), "u")
	require.NoError(t, err)
	assert.Len(t, after.Grants, 1)
}

// TestApplyCanceledContext checks that Apply does not run fn once ctx is
// done.
func TestApplyCanceledContext(t *testing.T) {
	st := memstore.New()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	called := false
	err := st.Apply(ctx, "evt_1", func(ctx context.Context, tx billing.Tx) error {
		called = true
		return nil
	})
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, called)
	ok, err := st.Processed(t.Context(), "evt_1")
	require.NoError(t, err)
	assert.False(t, ok)
}

// PruneEvents forgets the events processed longer ago than
// EventRetention, and only them.
func TestPruneEvents(t *testing.T) {
	st := memstore.New()
	ctx := t.Context()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	memstore.SetNow(st, func() time.Time { return now })
	apply := func(id string) {
		require.NoError(t, st.Apply(ctx, id, func(context.Context, billing.Tx) error { return nil }))
	}
	apply("evt_old")
	now = t0.Add(10 * 24 * time.Hour)
	apply("evt_new")

	now = t0.Add(memstore.EventRetention) // evt_old is exactly as old as kept
	n, err := st.PruneEvents(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	now = now.Add(time.Second)
	n, err = st.PruneEvents(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	for id, want := range map[string]bool{"evt_old": false, "evt_new": true} {
		got, err := st.Processed(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, want, got, id)
	}
	evs, err := st.RecentEvents(ctx, 10)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, "evt_new", evs[0].ID)
	// Forgotten, the event is applied again.
	applied := false
	require.NoError(t, st.Apply(ctx, "evt_old", func(context.Context, billing.Tx) error { applied = true; return nil }))
	assert.True(t, applied)
}
