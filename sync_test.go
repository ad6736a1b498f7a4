package billing_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
)

// Webhooks lost (the endpoint was down longer than Stripe retries, say):
// CatchUp reads Stripe's events and applies the missed ones; a second run
// finds only duplicates and makes no call but the listing.
func TestCatchUpRecoversMissedDeliveries(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	since := e.fake.Now()
	cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	evs := e.complete(t, cs.ID, billingtest.CardOK) // not delivered
	sub := e.fake.SubscriptionsOf(e.customerOf(t, "u1"))[0]
	e.fake.Advance(10 * 24 * time.Hour)     // within the 30 days Stripe keeps events
	_, err := e.fake.CancelAtPeriodEnd(sub) // not delivered either
	require.NoError(t, err)

	m, err := e.b.Membership(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, billing.StatusNone, m.Status, "nothing arrived")

	applied := 0
	for _, ev := range e.fake.Events() {
		switch ev.Type {
		case "customer.subscription.created", "customer.subscription.updated", "invoice.paid", "checkout.session.completed":
			applied++
		}
	}
	require.Equal(t, 5, applied, "created, active, invoice.paid, completed, the cancellation")
	require.Greater(t, len(evs), applied, "the others are not billing's")
	e.fake.ResetCalls()
	rep, err := e.b.CatchUp(ctx, since)
	require.NoError(t, err)
	assert.Equal(t, billing.CatchUpReport{Seen: applied, Applied: applied}, rep)
	assert.Equal(t, e.fake.TotalCalls(), e.calls("GET /v1/events"), "only the listing: no fetch was needed")

	m, err = e.b.Membership(ctx, "u1")
	require.NoError(t, err)
	end := time.Unix(e.fake.Subscription(sub).Items.Data[0].CurrentPeriodEnd, 0).UTC()
	assert.Equal(t, billing.StatusActive, m.Status)
	assert.Equal(t, end, m.CancelAt)

	e.fake.ResetCalls()
	rep, err = e.b.CatchUp(ctx, since)
	require.NoError(t, err)
	assert.Equal(t, billing.CatchUpReport{Seen: applied, Duplicates: applied}, rep)
	assert.Equal(t, e.fake.TotalCalls(), e.calls("GET /v1/events"))

	// The same events delivered late by Stripe are duplicates too.
	for _, body := range e.deliver(t, evs...) {
		assert.Contains(t, []string{`{"outcome":"duplicate"}`, `{"outcome":"ignored"}`}, body)
	}
}

func TestCatchUpParksUnknownCustomersAndReportsFailures(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	since := e.fake.Now()
	cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pack"})
	e.complete(t, cs.ID, billingtest.CardOK)
	// Lose the link, as if the customer were made in the Dashboard.
	other := newCoEnv(t, func(c *billing.Config) { c.StripeURL = e.fake.URL(); c.Clock = e.fake })
	rep, err := other.b.CatchUp(ctx, since)
	require.NoError(t, err)
	assert.Equal(t, billing.CatchUpReport{Seen: 1, Parked: 1}, rep)
	parked, err := parkedOf(ctx, other.b)
	require.NoError(t, err)
	require.Len(t, parked, 1)
	require.NoError(t, other.b.LinkCustomer(ctx, "u1", parked[0].CustomerID))
	out, err := other.b.Replay(ctx, parked[0].ID)
	require.NoError(t, err)
	assert.Equal(t, billing.OutcomeApplied, out)
	m, err := other.b.Membership(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, int64(100), m.Credits)

	t.Run("a later CatchUp that applies a parked event unparks it", func(t *testing.T) {
		third := newCoEnv(t, func(c *billing.Config) { c.StripeURL = e.fake.URL(); c.Clock = e.fake })
		rep, err := third.b.CatchUp(ctx, since)
		require.NoError(t, err)
		require.Equal(t, 1, rep.Parked)
		n, err := third.b.CountParked(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
		require.NoError(t, third.b.LinkCustomer(ctx, "u1", parked[0].CustomerID))
		rep, err = third.b.CatchUp(ctx, since)
		require.NoError(t, err)
		assert.Equal(t, billing.CatchUpReport{Seen: 1, Applied: 1}, rep)
		n, err = third.b.CountParked(ctx)
		require.NoError(t, err)
		assert.Zero(t, n, "unparked")
	})

	e.fake.SetFail("GET /v1/events", 500, 1+billing.DefaultMaxRetries)
	_, err = e.b.CatchUp(ctx, since)
	var se *billing.StripeError
	require.ErrorAs(t, err, &se)
	m, err = e.b.Membership(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, int64(0), m.Credits, "nothing applied by the failed run")
}

// Sync reads one user's subscriptions from Stripe: the state is right
// even with every webhook lost.
func TestSync(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	m, err := e.b.Sync(ctx, "nobody")
	require.NoError(t, err)
	assert.Equal(t, billing.StatusNone, m.Status)
	assert.Equal(t, 0, e.fake.TotalCalls(), "no customer, no call")

	cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	e.complete(t, cs.ID, billingtest.CardOK)
	sub := e.fake.SubscriptionsOf(e.customerOf(t, "u1"))[0]
	e.fake.Advance(time.Hour)
	e.fake.ResetCalls()
	m, err = e.b.Sync(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, billing.StatusActive, m.Status)
	assert.Equal(t, "pro", m.Tier)
	assert.Equal(t, 1, e.calls("GET /v1/subscriptions"))
	assert.Equal(t, 1, e.calls("GET /v1/subscriptions/{id}"))

	e.fake.Advance(time.Hour)
	_, err = e.fake.CancelNow(sub)
	require.NoError(t, err)
	e.fake.Advance(time.Hour)
	m, err = e.b.Sync(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, billing.StatusCanceled, m.Status)

	_, err = e.b.Sync(ctx, "")
	assert.Error(t, err)
}

// An event rendered at another API version (CatchUp lists events at the
// account's default version) is not read: its object is fetched anew.
func TestReplayOfAnotherAPIVersionFetchesTheObject(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	evs := e.complete(t, cs.ID, billingtest.CardOK)
	sub := e.fake.SubscriptionsOf(e.customerOf(t, "u1"))[0]
	// An old-layout subscription event (period at the top, items without
	// periods), as an account on an older default version would list it.
	old := []byte(`{"id":"evt_oldversion","object":"event","api_version":"2024-06-20","created":` +
		strconv.FormatInt(evs[0].Created, 10) + `,"livemode":false,"type":"customer.subscription.updated","data":{"object":{"id":"` + sub +
		`","object":"subscription","status":"active","current_period_end":1,"items":{"object":"list","data":[{"id":"si_x","price":{"id":"price_pro"}}]}}}}`)
	require.NoError(t, e.store.Park(ctx, billing.ParkedEvent{ID: "evt_oldversion", Type: "customer.subscription.updated", Payload: old, ParkedAt: e.fake.Now()}))
	e.fake.Advance(time.Hour)
	e.fake.ResetCalls()
	out, err := e.b.Replay(ctx, "evt_oldversion")
	require.NoError(t, err)
	assert.Equal(t, billing.OutcomeApplied, out)
	assert.Equal(t, 1, e.calls("GET /v1/subscriptions/{id}"))
	m, err := e.b.Membership(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, billing.StatusActive, m.Status)
	assert.Equal(t, time.Unix(e.fake.Subscription(sub).Items.Data[0].CurrentPeriodEnd, 0).UTC(), m.CurrentPeriodEnd,
		"the period from Stripe at our version, not the old layout's")
}
