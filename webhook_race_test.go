package billing_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
)

// hookTransport lets a test act between Stripe's answer and billing's
// reading of it, and rewrite the answer.
type hookTransport struct {
	mu    sync.Mutex
	after func(req *http.Request, res *http.Response)
}

func (h *hookTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := http.DefaultTransport.RoundTrip(req)
	h.mu.Lock()
	after := h.after
	h.mu.Unlock()
	if err == nil && after != nil {
		after(req, res)
	}
	return res, err
}

// raceEnv is a checkout test env whose Stripe answers pass through hook.
type raceEnv struct {
	*coEnv
	hook *hookTransport
}

func newRaceEnv(t *testing.T) *raceEnv {
	t.Helper()
	hook := &hookTransport{}
	e := newCoEnv(t, func(c *billing.Config) { c.HTTPClient = &http.Client{Transport: hook} })
	return &raceEnv{coEnv: e, hook: hook}
}

// buy runs a pro checkout for the user and returns the session and
// subscription IDs and the completion's events (not delivered).
func (e *raceEnv) buy(t *testing.T, user string) (string, string, []billingtest.Event) {
	t.Helper()
	cs := e.checkout(t, user, billing.CheckoutOptions{PriceID: "price_pro"})
	evs := e.complete(t, cs.ID, billingtest.CardOK)
	subs := e.fake.SubscriptionsOf(e.fake.CheckoutSession(cs.ID).Customer.ID)
	require.Len(t, subs, 1)
	return cs.ID, subs[0], evs
}

// failedRenewal buys pro for u1 (delivering every event), lets a month
// pass, makes the card fail, and returns the subscription and the failed
// renewal's events (not delivered).
func (e *raceEnv) failedRenewal(t *testing.T) (string, []billingtest.Event) {
	t.Helper()
	_, sub, evs := e.buy(t, "u1")
	e.deliver(t, evs...)
	e.fake.Advance(30 * 24 * time.Hour)
	require.NoError(t, testcatalog.SetCardFailing(e.fake, e.fake.Subscription(sub).Customer.ID, true))
	renew, err := testcatalog.Renew(e.fake, sub)
	require.NoError(t, err)
	return sub, renew
}

// sameSecond takes a failed renewal's two subscription updates (the
// period moved; past_due an hour later, when the charge failed) and stamps
// the second with the first's second, as when Stripe makes two changes in
// one second: their versions then cannot order them.
func sameSecond(t *testing.T, updates []billingtest.Event) []billingtest.Event {
	t.Helper()
	require.Len(t, updates, 2, "period moved, then past_due")
	require.Less(t, updates[0].Created, updates[1].Created)
	return []billingtest.Event{updates[0], updates[1].StampedAt(updates[0].Created)}
}

func only(evs []billingtest.Event, types ...string) []billingtest.Event {
	var out []billingtest.Event
	for _, e := range evs {
		for _, t := range types {
			if e.Type == t {
				out = append(out, e)
			}
		}
	}
	return out
}

// A stale fetch that commits after a newer payload of the same second
// must not win: the return page read the session (active, no
// cancellation) at second T, the user canceled in the portal in that same
// second, that event was applied, and only then did the return page's
// write arrive, stamped T. A rule where fetched objects win ties would
// store the stale state for good; billing fetches again instead.
func TestStaleFetchOfTheSameSecondDoesNotWin(t *testing.T) {
	t.Parallel()
	e := newRaceEnv(t)
	ctx := context.Background()
	session, sub, evs := e.buy(t, "u1")
	e.deliver(t, evs...)
	e.fake.Advance(24 * time.Hour)

	var once sync.Once
	var cancelCreated int64
	e.hook.after = func(req *http.Request, res *http.Response) {
		if req.Method != http.MethodGet || !strings.HasPrefix(req.URL.Path, "/v1/checkout/sessions/") {
			return
		}
		once.Do(func() {
			// The stale answer is read; now the user cancels and that
			// event is applied before SyncCheckout writes.
			body, _ := io.ReadAll(res.Body)
			res.Body = io.NopCloser(bytes.NewReader(body))
			cancel, err := e.fake.CancelAtPeriodEnd(sub)
			require.NoError(t, err)
			e.deliver(t, cancel...)
			cancelCreated = cancel[0].Created
			// Same second, to the second.
			res.Header.Set("Date", time.Unix(cancelCreated, 0).UTC().Format(http.TimeFormat))
		})
	}
	_, m, err := e.b.SyncCheckout(ctx, "u1", session)
	require.NoError(t, err)
	require.NotZero(t, cancelCreated)
	end := time.Unix(e.fake.Subscription(sub).Items.Data[0].CurrentPeriodEnd, 0).UTC()
	assert.Equal(t, end, m.CancelAt, "the cancellation survives the stale write")
	assert.Equal(t, end, m.AccessUntil)
}

// Two live states in one second cannot be ordered by their versions: the
// second payload costs a fetch. A fetch that equals the stored state ends
// the tie at once; one that differs and is still of that second is
// fetched again once Stripe's clock has passed it.
func TestSameSecondLiveStatesFetch(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		newestFirst bool
		fetches     int
	}{
		{"a fetch equal to the stored state ends the tie", true, 1},
		{"a tied fetch that differs is fetched again", false, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newRaceEnv(t)
			ctx := context.Background()
			_, renew := e.failedRenewal(t)
			updates := sameSecond(t, only(renew, "customer.subscription.updated"))

			// Pin the first fetch's Date to the events' second: it ties.
			var dates []string
			var mu sync.Mutex
			e.hook.after = func(req *http.Request, res *http.Response) {
				if req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/v1/subscriptions/") {
					mu.Lock()
					defer mu.Unlock()
					if len(dates) == 0 {
						res.Header.Set("Date", time.Unix(updates[1].Created, 0).UTC().Format(http.TimeFormat))
					}
					dates = append(dates, res.Header.Get("Date"))
				}
			}
			e.fake.ResetCalls()
			e.deliver(t, only(renew, "invoice.payment_failed")...)
			if tt.newestFirst {
				e.deliver(t, updates[1], updates[0]) // the older one ties with past_due; Stripe says past_due
			} else {
				e.deliver(t, updates[0], updates[1]) // past_due ties with active; Stripe says past_due
			}
			m, err := e.b.Membership(ctx, "u1")
			require.NoError(t, err)
			assert.Equal(t, billing.StatusActive, m.Status, "past_due within the grace attempts")
			assert.Equal(t, 1, m.FailedAttempts)
			assert.EqualValues(t, "past_due", m.StripeStatus)
			mu.Lock()
			assert.Len(t, dates, tt.fetches)
			if tt.fetches == 2 {
				assert.NotEqual(t, dates[0], dates[1], "the second fetch is of a later second")
			}
			mu.Unlock()
			assert.Equal(t, tt.fetches, e.fake.Calls()["GET /v1/subscriptions/{id}"])
		})
	}
}

// A fetch is at least as new as the event that asked for it, whatever
// Stripe's Date says: with a Date a second behind the event's created
// (two clocks), an older payload of that second must not overwrite it.
func TestFetchDatedBeforeItsEventKeepsItsPlace(t *testing.T) {
	t.Parallel()
	e := newRaceEnv(t)
	ctx := context.Background()
	_, renew := e.failedRenewal(t)
	updates := sameSecond(t, only(renew, "customer.subscription.updated"))

	var once sync.Once
	e.hook.after = func(req *http.Request, res *http.Response) {
		if req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/v1/subscriptions/") {
			once.Do(func() {
				res.Header.Set("Date", time.Unix(updates[1].Created-1, 0).UTC().Format(http.TimeFormat))
			})
		}
	}
	// past_due first, its invoice unseen: fetched (Date lagging); then
	// the older active payload of the same second.
	e.deliver(t, updates[1], updates[0])
	m, err := e.b.Membership(ctx, "u1")
	require.NoError(t, err)
	assert.EqualValues(t, "past_due", m.StripeStatus, "the older payload did not win")
}

// A past_due payload that arrives before its invoice.payment_failed is
// right at once: billing fetches the latest invoice's attempts rather than
// deny access until the invoice event comes.
func TestPastDueBeforeItsInvoiceEvent(t *testing.T) {
	t.Parallel()
	e := newRaceEnv(t)
	ctx := context.Background()
	_, renew := e.failedRenewal(t)
	updates := only(renew, "customer.subscription.updated")
	e.fake.Advance(time.Hour) // the deliveries come later: no same-second tie

	e.fake.ResetCalls()
	e.deliver(t, updates[1]) // past_due, alone
	m, err := e.b.Membership(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, billing.StatusActive, m.Status)
	assert.Equal(t, 1, m.FailedAttempts)
	assert.Equal(t, 1, e.fake.TotalCalls(), "one fetch of the subscription with its latest invoice")

	e.fake.ResetCalls()
	e.deliver(t, renew...) // the rest, and the same one again
	m2, err := e.b.Membership(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, m, m2)
	assert.Equal(t, 0, e.fake.TotalCalls())
}

// A user in grace whose retry succeeds keeps access when invoice.paid
// arrives before the subscription's update back to active.
func TestPaidRetryKeepsAccessBeforeTheUpdate(t *testing.T) {
	t.Parallel()
	e := newRaceEnv(t)
	ctx := context.Background()
	sub, renew := e.failedRenewal(t)
	cus := e.fake.Subscription(sub).Customer.ID
	e.fake.Advance(time.Hour)
	e.deliver(t, renew...)
	m, err := e.b.Membership(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, 1, m.FailedAttempts, "in grace")

	require.NoError(t, testcatalog.SetCardFailing(e.fake, cus, false))
	retry, err := testcatalog.Retry(e.fake, sub)
	require.NoError(t, err)
	e.deliver(t, only(retry, "invoice.paid")...)
	m, err = e.b.Membership(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, billing.StatusActive, m.Status)
	assert.Equal(t, 0, m.FailedAttempts)
	assert.True(t, m.Active(e.fake.Now()), "paid: access stays")
}

// Stripe's Date comes from another clock than event.created: a fetch
// dated a second before the stored version, and different from it, is
// not taken as proof; billing fetches again.
func TestFetchDatedBeforeTheStoredVersionIsFetchedAgain(t *testing.T) {
	t.Parallel()
	e := newRaceEnv(t)
	ctx := context.Background()
	_, sub, evs := e.buy(t, "u1")
	e.deliver(t, evs...)
	e.fake.Advance(24 * time.Hour)
	// Start the two changes just after a second begins: they share it.
	e.fake.Advance(time.Second - time.Duration(e.fake.Now().Nanosecond()) + 50*time.Millisecond)
	first, err := e.fake.ChangePrice(sub, "price_basic")
	require.NoError(t, err)
	second, err := e.fake.CancelAtPeriodEnd(sub)
	require.NoError(t, err)
	require.Equal(t, first[0].Created, second[0].Created, "two changes in one second")
	var mu sync.Mutex
	fetches := 0
	e.hook.after = func(req *http.Request, res *http.Response) {
		if req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/v1/subscriptions/") {
			mu.Lock()
			defer mu.Unlock()
			if fetches == 0 {
				res.Header.Set("Date", time.Unix(first[0].Created-1, 0).UTC().Format(http.TimeFormat))
			}
			fetches++
		}
	}
	e.deliver(t, first...)  // stored at T
	e.deliver(t, second...) // ties at T: fetched, first dated T-1
	m, err := e.b.Membership(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, "basic", m.Tier)
	assert.False(t, m.CancelAt.IsZero(), "the cancellation is stored, not the stale state")
	mu.Lock()
	assert.Equal(t, 2, fetches)
	mu.Unlock()
}
