package billing_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/memstore"
)

// settableClock is a billing.Clock a test moves by hand.
type settableClock struct{ now time.Time }

func (c *settableClock) Now() time.Time { return c.now }
func (c *settableClock) Sleep(ctx context.Context, d time.Duration) error {
	c.now = c.now.Add(d)
	return ctx.Err()
}

// An operator's view of parked events: bounded pages without payloads,
// one event with its payload, a count, discard, prune.
func TestParkedEventsOperations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := &settableClock{now: time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)}
	e := newHandlerEnv(t, memstore.New(), func(c *billing.Config) { c.Clock = clock })
	now := clock.now.Unix()
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("evt_park%d", i)
		ev := event(id, "customer.subscription.updated", now, subJSON(fmt.Sprintf("sub_%d", i), "cus_nobody", "active", "price_basic", now+86400*30))
		require.Equal(t, 200, e.deliver(t, ev).Code)
		ids = append(ids, id)
		clock.now = clock.now.Add(time.Hour)
	}

	n, err := e.b.CountParked(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(5), n)

	page, next, err := e.b.ParkedEvents(ctx, "", 2)
	require.NoError(t, err)
	assert.Equal(t, ids[:2], idsOf(page))
	assert.Nil(t, page[0].Payload, "pages carry no payload")
	require.NotEmpty(t, next)
	page, next, err = e.b.ParkedEvents(ctx, next, 2)
	require.NoError(t, err)
	assert.Equal(t, ids[2:4], idsOf(page))
	page, next, err = e.b.ParkedEvents(ctx, next, 2)
	require.NoError(t, err)
	assert.Equal(t, ids[4:], idsOf(page))
	assert.Empty(t, next, "the last page")
	page, _, err = e.b.ParkedEvents(ctx, "", 0)
	require.NoError(t, err)
	assert.Len(t, page, 5, "limit 0 is the default page size")

	_, _, err = e.b.ParkedEvents(ctx, "not-a-cursor", 2)
	assert.ErrorIs(t, err, billing.ErrInvalidArgument)

	one, err := e.b.ParkedEvent(ctx, ids[1])
	require.NoError(t, err)
	assert.Contains(t, string(one.Payload), `"id":"evt_park1"`)
	assert.Equal(t, "cus_nobody", one.CustomerID)
	_, err = e.b.ParkedEvent(ctx, "evt_unknown")
	assert.ErrorIs(t, err, billing.ErrNotParked)
	_, err = e.b.ParkedEvent(ctx, "")
	assert.ErrorIs(t, err, billing.ErrInvalidArgument)

	require.NoError(t, e.b.Discard(ctx, ids[1]))
	assert.ErrorIs(t, e.b.Discard(ctx, ids[1]), billing.ErrNotParked)
	_, err = e.b.Replay(ctx, ids[1])
	assert.ErrorIs(t, err, billing.ErrNotParked, "a discarded event cannot be replayed")

	// The first two hours' events (evt_park0; evt_park1 is gone) are older
	// than the cutoff.
	pruned, err := e.b.PruneParked(ctx, clock.now.Add(-3*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, int64(1), pruned)
	all, err := parkedOf(ctx, e.b)
	require.NoError(t, err)
	assert.Equal(t, ids[2:], idsOf(all))
}

// A parked event delivered again keeps its place: its first ParkedAt.
func TestRedeliveredParkedEventKeepsParkedAt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := &settableClock{now: time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)}
	e := newHandlerEnv(t, memstore.New(), func(c *billing.Config) { c.Clock = clock })
	now := clock.now.Unix()
	ev := event("evt_p", "customer.subscription.updated", now, subJSON("sub_9", "cus_nobody", "active", "price_basic", now+86400*30))
	require.Equal(t, 200, e.deliver(t, ev).Code)
	clock.now = clock.now.Add(48 * time.Hour)
	require.Equal(t, 200, e.deliver(t, ev).Code)
	p, err := e.b.ParkedEvent(ctx, "evt_p")
	require.NoError(t, err)
	assert.True(t, p.ParkedAt.Equal(time.Unix(now, 0)), "parked at %s", p.ParkedAt)
}

// A signed event whose data.object is missing or null is Stripe's, but
// there is nothing to apply: it is parked (200), not answered 500 for
// the three days Stripe retries.
func TestEventWithoutObjectIsParked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newHandlerEnv(t, memstore.New())
	now := time.Now().Unix()
	for _, tc := range []struct{ id, body string }{
		{"evt_nodata", fmt.Sprintf(`{"id":"evt_nodata","object":"event","api_version":"2025-08-27.basil","created":%d,"livemode":false,"type":"invoice.paid"}`, now)},
		{"evt_nullobj", string(event("evt_nullobj", "invoice.paid", now, "null"))},
	} {
		w := e.deliver(t, []byte(tc.body))
		assert.Equal(t, 200, w.Code, tc.id)
		assert.JSONEq(t, `{"outcome":"parked"}`, w.Body.String(), tc.id)
		p, err := e.b.ParkedEvent(ctx, tc.id)
		require.NoError(t, err, tc.id)
		assert.Contains(t, p.Reason, "data.object")
		done, err := e.store.Processed(ctx, tc.id)
		require.NoError(t, err)
		assert.False(t, done)
	}
}

func idsOf(evs []billing.ParkedEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// LinkCustomer refuses what cannot be a user and a Stripe customer, with
// ErrInvalidArgument, and links nothing.
func TestLinkCustomerInvalidArguments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := memstore.New()
	e := newHandlerEnv(t, store)
	for _, tc := range []struct{ user, customer string }{
		{"", "cus_1"},
		{"u1", ""},
		{"u1", "sub_1"},
		{"u\x00", "cus_1"},
		{"u1", "cus_\x00"},
		{"u1", "cus_\xff"},
	} {
		err := e.b.LinkCustomer(ctx, tc.user, tc.customer)
		assert.ErrorIs(t, err, billing.ErrInvalidArgument, "%q %q", tc.user, tc.customer)
	}
	_, err := store.CustomerID(ctx, "u1")
	assert.ErrorIs(t, err, billing.ErrNotFound, "nothing linked")
	require.NoError(t, e.b.LinkCustomer(ctx, "u1", "cus_1"))
}

// A signed event whose object has a field of another type than Stripe's
// is Stripe's all the same: parked with the decoder's reason (200), not
// refused (400) as if it were not JSON.
func TestEventWithMalformedObjectIsParked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := memstore.New()
	linked(t, store, "u1", "cus_1")
	e := newHandlerEnv(t, store)
	now := time.Now().Unix()
	w := e.deliver(t, event("evt_bad", "customer.subscription.updated", now, `{"id":"sub_1","object":"subscription","customer":"cus_1","status":5}`))
	assert.Equal(t, 200, w.Code)
	assert.JSONEq(t, `{"outcome":"parked"}`, w.Body.String())
	p, err := e.b.ParkedEvent(ctx, "evt_bad")
	require.NoError(t, err)
	assert.Contains(t, p.Reason, "cannot read the event's subscription")
	assert.Empty(t, facts(t, store, "u1").Subscriptions)
}
