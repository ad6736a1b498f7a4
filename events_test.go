package billing_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
)

// recentOf is what a test compares of a listed event: all but its time.
type recentOf struct{ ID, Type, ObjectID, Via string }

// appliedAs is ev as the store records it, applied by way of via.
func appliedAs(t *testing.T, ev billingtest.Event, via string) recentOf {
	t.Helper()
	var obj struct {
		Data struct {
			Object struct {
				ID string `json:"id"`
			} `json:"object"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(ev.JSON, &obj))
	require.NotEmpty(t, obj.Data.Object.ID)
	return recentOf{ev.ID, ev.Type, obj.Data.Object.ID, via}
}

// Every applied event is recorded with its type, its object and how it
// came: the webhook, CatchUp (a missed delivery) or an operator's
// Replay of a parked event. Billing.RecentEvents lists them newest
// first; ignored, parked and duplicate deliveries record nothing.
func TestRecentEventsTellHowEventsCame(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	since := e.fake.Now()
	var want []recentOf // oldest first

	// Delivered by Stripe.
	cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	evs := e.complete(t, cs.ID, billingtest.CardOK)
	for i, body := range e.deliver(t, evs...) {
		if body == `{"outcome":"applied"}` {
			want = append(want, appliedAs(t, evs[i], billing.ViaWebhook))
		}
	}
	require.Len(t, want, 4, "created, active, invoice.paid, completed")

	// Missed, then found by CatchUp.
	sub := e.fake.SubscriptionsOf(e.customerOf(t, "u1"))[0]
	e.fake.Advance(24 * time.Hour)
	missed, err := e.fake.CancelAtPeriodEnd(sub)
	require.NoError(t, err)
	require.Len(t, missed, 1)
	rep, err := e.b.CatchUp(ctx, since)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Applied, "the missed cancellation; the rest are duplicates")
	want = append(want, appliedAs(t, missed[0], billing.ViaCatchUp))

	// Parked for a customer this store does not know (a purchase made
	// through another deployment, say), then replayed once linked.
	other := newCoEnv(t, func(c *billing.Config) { c.StripeURL = e.fake.URL(); c.Clock = e.fake })
	pack := other.checkout(t, "u2", billing.CheckoutOptions{PriceID: "price_pack"})
	var parked []billingtest.Event
	packEvs := e.complete(t, pack.ID, billingtest.CardOK) // at the one Stripe both talk to
	for i, body := range e.deliver(t, packEvs...) {
		if body == `{"outcome":"parked"}` {
			parked = append(parked, packEvs[i])
		}
	}
	require.Len(t, parked, 1, "checkout.session.completed")
	require.NoError(t, e.b.LinkCustomer(ctx, "u2", other.customerOf(t, "u2")))
	out, err := e.b.Replay(ctx, parked[0].ID)
	require.NoError(t, err)
	require.Equal(t, billing.OutcomeApplied, out)
	want = append(want, appliedAs(t, parked[0], billing.ViaReplay))

	// Delivered again: duplicates, recorded once.
	for _, body := range e.deliver(t, evs...) {
		assert.Contains(t, []string{`{"outcome":"duplicate"}`, `{"outcome":"ignored"}`}, body)
	}

	slices.Reverse(want) // newest first
	listed, err := e.b.RecentEvents(ctx, 0)
	require.NoError(t, err, "limit 0 is the default")
	got := make([]recentOf, len(listed))
	for i, ev := range listed {
		got[i] = recentOf{ev.ID, ev.Type, ev.ObjectID, ev.Via}
		assert.False(t, ev.ProcessedAt.IsZero(), "event %s has its time", ev.ID)
	}
	assert.Equal(t, want, got)

	listed, err = e.b.RecentEvents(ctx, 2)
	require.NoError(t, err)
	require.Len(t, listed, 2)
	assert.Equal(t, want[0].ID, listed[0].ID, "the replayed event, newest")
	assert.Equal(t, want[1].ID, listed[1].ID, "the caught-up one")
}

// storeOnly hides what a Store offers beyond billing.Store.
type storeOnly struct{ billing.Store }

// A Store that keeps no list of events: RecentEvents says so.
func TestRecentEventsWithoutEventLister(t *testing.T) {
	t.Parallel()
	e := newCoEnvWith(t, storeOnly{newCoEnv(t).store}, users)
	_, err := e.b.RecentEvents(context.Background(), 10)
	assert.ErrorIs(t, err, billing.ErrNotFound)
}
