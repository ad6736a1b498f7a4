package billing_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/memstore"
)

// makeSubscriptions makes n customers at the fake Stripe, each with a
// trialing subscription made through the API (no webhook delivered), and
// links each to a user sync_<prefix><i> when link is true. It returns
// the users (or the customers, unlinked).
func makeSubscriptions(t *testing.T, e *coEnv, prefix string, n int, link bool) []string {
	t.Helper()
	ctx := context.Background()
	sc := e.otherDevice()
	var out []string
	for i := range n {
		cus, err := sc.V1Customers.Create(ctx, &stripe.CustomerCreateParams{Email: stripe.String(fmt.Sprintf("%s%d@example.com", prefix, i))})
		require.NoError(t, err)
		trialSubscription(t, sc, cus.ID, "price_pro", 14)
		if !link {
			out = append(out, cus.ID)
			continue
		}
		user := fmt.Sprintf("sync_%s%d", prefix, i)
		require.NoError(t, e.b.LinkCustomer(ctx, user, cus.ID))
		out = append(out, user)
	}
	return out
}

// trialSubscription makes a trialing subscription of customer to price
// through the API (no webhook delivered) and returns its ID.
func trialSubscription(t *testing.T, sc *stripe.Client, customer, price string, days int64) string {
	t.Helper()
	sub, err := sc.V1Subscriptions.Create(context.Background(), &stripe.SubscriptionCreateParams{
		Customer: stripe.String(customer), TrialPeriodDays: stripe.Int64(days),
		Items: []*stripe.SubscriptionCreateItemParams{{Price: stripe.String(price)}}})
	require.NoError(t, err)
	return sub.ID
}

func requireStatus(t *testing.T, b *billing.Billing, want billing.Status, users ...string) {
	t.Helper()
	for _, u := range users {
		m, err := b.Membership(context.Background(), u)
		require.NoError(t, err)
		require.Equal(t, want, m.Status, "user %s", u)
	}
}

// The daily sync of the reference guide: 1,000 subscriptions, no webhook
// delivered, cost ⌈1005/100⌉ = 11 list requests and nothing else; every
// user is a member afterwards; the subscriptions of customers no user is
// linked to are counted and left alone; a change Stripe made since (a
// cancellation whose webhook was lost) is taken by the next run, again
// in 11 requests.
func TestSyncAllThousandSubscriptions(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	users := makeSubscriptions(t, e, "", 1000, true)
	makeSubscriptions(t, e, "nobody", 5, false)
	requireStatus(t, e.b, billing.StatusNone, users[0], users[999]) // nothing delivered

	e.fake.ResetCalls()
	var progress []billing.SyncReport
	rep, err := e.b.SyncAll(ctx, billing.SyncAllOptions{Progress: func(r billing.SyncReport) { progress = append(progress, r) }})
	require.NoError(t, err)
	assert.Equal(t, billing.SyncReport{Pages: 11, Seen: 1005, Stored: 1000, Unlinked: 5, Calls: 11, Done: true}, rep)
	assert.Equal(t, 11, e.calls("GET /v1/subscriptions"))
	assert.Equal(t, 11, e.fake.TotalCalls(), "the pages, and no other request")
	require.Len(t, progress, 11, "one report per page")
	assert.Equal(t, 100, progress[0].Seen)
	assert.Equal(t, rep, progress[10])
	requireStatus(t, e.b, billing.StatusTrialing, users...)
	cp, err := e.store.(billing.Checkpointer).Checkpoint(ctx, billing.SyncCheckpoint)
	require.NoError(t, err)
	assert.Empty(t, cp, "a finished sync leaves no checkpoint")

	// Stripe cancels one; its webhook is lost.
	facts, err := e.store.Facts(ctx, users[500])
	require.NoError(t, err)
	require.Len(t, facts.Subscriptions, 1)
	e.fake.Advance(time.Hour)
	_, err = e.fake.CancelNow(facts.Subscriptions[0].ID)
	require.NoError(t, err)
	e.fake.ResetCalls()
	rep, err = e.b.SyncAll(ctx, billing.SyncAllOptions{})
	require.NoError(t, err)
	assert.Equal(t, billing.SyncReport{Pages: 11, Seen: 1005, Stored: 1000, Unlinked: 5, Calls: 11, Done: true}, rep)
	assert.Equal(t, 11, e.fake.TotalCalls())
	requireStatus(t, e.b, billing.StatusCanceled, users[500])
	requireStatus(t, e.b, billing.StatusTrialing, users[499], users[501])
}

// An interrupted sync resumes after the last page it finished: the
// pages before are not read again. Interrupted by Stripe failing past
// billing's retries, then by the context; Restart starts over.
func TestSyncAllResumesFromItsCheckpoint(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t, func(c *billing.Config) { c.MaxRetries = 1 })
	ctx := context.Background()
	users := makeSubscriptions(t, e, "", 250, true)
	cps := e.store.(billing.Checkpointer)

	e.fake.ResetCalls()
	rep, err := e.b.SyncAll(ctx, billing.SyncAllOptions{Progress: func(r billing.SyncReport) {
		if r.Pages == 1 {
			e.fake.SetFail("GET /v1/subscriptions", http.StatusInternalServerError, 2) // the try and its retry
		}
	}})
	var se *billing.StripeError
	require.ErrorAs(t, err, &se, "Stripe's failure, past the retries")
	assert.Equal(t, billing.SyncReport{Pages: 1, Seen: 100, Stored: 100, Calls: 3}, rep)
	after, err := cps.Checkpoint(ctx, billing.SyncCheckpoint)
	require.NoError(t, err)
	require.NotEmpty(t, after, "the first page's last subscription")

	// Resumed: the second page, then canceled.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.fake.ResetCalls()
	rep, err = e.b.SyncAll(runCtx, billing.SyncAllOptions{Progress: func(billing.SyncReport) { cancel() }})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, billing.SyncReport{ResumedAfter: after, Pages: 1, Seen: 100, Stored: 100, Calls: 1}, rep)
	second, err := cps.Checkpoint(ctx, billing.SyncCheckpoint)
	require.NoError(t, err)
	require.NotEqual(t, after, second)

	// Resumed again: the last 50.
	e.fake.ResetCalls()
	rep, err = e.b.SyncAll(ctx, billing.SyncAllOptions{})
	require.NoError(t, err)
	assert.Equal(t, billing.SyncReport{ResumedAfter: second, Pages: 1, Seen: 50, Stored: 50, Calls: 1, Done: true}, rep)
	assert.Equal(t, 1, e.fake.TotalCalls())
	requireStatus(t, e.b, billing.StatusTrialing, users...)

	// Restart ignores a checkpoint.
	require.NoError(t, cps.SaveCheckpoint(ctx, billing.SyncCheckpoint, second))
	e.fake.ResetCalls()
	rep, err = e.b.SyncAll(ctx, billing.SyncAllOptions{Restart: true})
	require.NoError(t, err)
	assert.Equal(t, billing.SyncReport{Pages: 3, Seen: 250, Stored: 250, Calls: 3, Done: true}, rep)
}

// A stored state dated after the page and different from it is not
// overwritten by the page: the subscription is fetched alone until
// Stripe's Date orders the two (reconcile's rule for fetched objects).
func TestSyncAllRefetchesWhatThePageCannotOrder(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	users := makeSubscriptions(t, e, "", 3, true)
	_, err := e.b.SyncAll(ctx, billing.SyncAllOptions{})
	require.NoError(t, err)
	facts, err := e.store.Facts(ctx, users[1])
	require.NoError(t, err)
	stale := facts.Subscriptions[0]
	stale.Items[0].Quantity = 7 // a state Stripe never had
	stale.Version = e.fake.Now().Truncate(time.Second).Add(time.Second)
	require.NoError(t, e.store.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
		if _, _, err := tx.Subscription(ctx, stale.ID); err != nil {
			return err
		}
		return tx.SaveSubscription(ctx, stale)
	}))

	e.fake.ResetCalls()
	rep, err := e.b.SyncAll(ctx, billing.SyncAllOptions{})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Refetched)
	assert.Equal(t, 3, rep.Stored)
	assert.Positive(t, e.calls("GET /v1/subscriptions/{id}"), "fetched alone")
	facts, err = e.store.Facts(ctx, users[1])
	require.NoError(t, err)
	assert.Equal(t, int64(1), facts.Subscriptions[0].Items[0].Quantity, "Stripe's state, once ordered")
}

// Without a Checkpointer the sync still runs, from the first page.
func TestSyncAllWithoutCheckpointer(t *testing.T) {
	t.Parallel()
	e := newCoEnvWith(t, plainStore{memstore.New()}, users)
	makeSubscriptions(t, e, "", 3, true)
	rep, err := e.b.SyncAll(context.Background(), billing.SyncAllOptions{})
	require.NoError(t, err)
	assert.Equal(t, billing.SyncReport{Pages: 1, Seen: 3, Stored: 3, Calls: 1, Done: true}, rep)
	_, _, err = e.b.ListSubscriptions(context.Background(), billing.SubscriptionQuery{})
	require.ErrorIs(t, err, errors.ErrUnsupported)
}

// plainStore is a Store with none of the optional interfaces.
type plainStore struct{ billing.Store }

// ListSubscriptions pages the stored records of a status, and refuses a
// status Stripe does not have and a limit out of range.
func TestListSubscriptions(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	users := makeSubscriptions(t, e, "", 5, true)
	_, err := e.b.SyncAll(ctx, billing.SyncAllOptions{})
	require.NoError(t, err)

	whole, next, err := e.b.ListSubscriptions(ctx, billing.SubscriptionQuery{Limit: 5})
	require.NoError(t, err)
	assert.Len(t, whole, 5)
	assert.Empty(t, next, "a page that holds them all has no next page")

	var all []string
	cursor := ""
	for range 4 {
		subs, next, err := e.b.ListSubscriptions(ctx, billing.SubscriptionQuery{
			Statuses: []billing.SubscriptionStatus{billing.SubscriptionTrialing}, After: cursor, Limit: 2})
		require.NoError(t, err)
		for _, s := range subs {
			all = append(all, s.UserID)
			assert.Equal(t, billing.SubscriptionTrialing, s.Status)
		}
		if next == "" {
			assert.Len(t, subs, 1, "the last page")
			break
		}
		cursor = next
	}
	assert.ElementsMatch(t, users, all, "every trialing record once")

	// A record with only invoice facts (no status yet) is not listed;
	// a status given twice is one.
	require.NoError(t, e.store.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
		if _, _, err := tx.Subscription(ctx, "sub_invoice_only"); err != nil {
			return err
		}
		return tx.SaveSubscription(ctx, billing.Subscription{ID: "sub_invoice_only", CustomerID: "cus_x", UserID: users[0],
			Invoice: billing.Invoice{ID: "in_x", Created: time.Unix(1700000000, 0).UTC()}})
	}))
	every, _, err := e.b.ListSubscriptions(ctx, billing.SubscriptionQuery{Limit: 100})
	require.NoError(t, err)
	assert.Len(t, every, 5)
	twice, _, err := e.b.ListSubscriptions(ctx, billing.SubscriptionQuery{Limit: 100,
		Statuses: []billing.SubscriptionStatus{billing.SubscriptionTrialing, billing.SubscriptionTrialing}})
	require.NoError(t, err)
	assert.Len(t, twice, 5)

	none, next, err := e.b.ListSubscriptions(ctx, billing.SubscriptionQuery{Statuses: []billing.SubscriptionStatus{billing.SubscriptionPastDue}})
	require.NoError(t, err)
	assert.Empty(t, none)
	assert.Empty(t, next)

	_, _, err = e.b.ListSubscriptions(ctx, billing.SubscriptionQuery{Statuses: []billing.SubscriptionStatus{"late"}})
	require.ErrorIs(t, err, billing.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "past_due", "names the statuses there are")
	for _, limit := range []int{-1, 1001} {
		_, _, err = e.b.ListSubscriptions(ctx, billing.SubscriptionQuery{Limit: limit})
		require.ErrorIs(t, err, billing.ErrInvalidArgument, "limit %d", limit)
	}
}

// A user found with two live subscriptions by the sync is reported as the
// webhook path reports it: once, at WARN, naming both.
func TestSyncAllReportsASecondSubscription(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	users := makeSubscriptions(t, e, "", 1, true)
	cus, err := e.store.CustomerID(ctx, users[0])
	require.NoError(t, err)
	second := trialSubscription(t, e.otherDevice(), cus, "price_basic", 7)
	for range 2 {
		_, err = e.b.SyncAll(ctx, billing.SyncAllOptions{})
		require.NoError(t, err)
	}
	lines := warnLines(e.logs.String(), "second live subscription")
	require.Len(t, lines, 1, "reported once, by the write that made the second one live:\n%s", e.logs.String())
	assert.Contains(t, lines[0], "user="+users[0])
	facts, err := e.store.Facts(ctx, users[0])
	require.NoError(t, err)
	require.Len(t, facts.Subscriptions, 2)
	for _, s := range facts.Subscriptions {
		assert.Contains(t, lines[0], s.ID)
	}
	assert.Contains(t, lines[0], "subscription="+second, "the one that went live second, as the webhook path says")
}

// A subscription the sync makes live beside a stored record that is
// stale (its cancellation's webhook was missed) is not a second one: the
// sync looks once every record is Stripe's, and the stale one is
// canceled by then.
func TestSyncAllDoesNotReportBesideAStaleRecord(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}), func(c *billing.Config) { c.SecondSubscription = billing.CancelSecond })
	ctx := context.Background()
	users := makeSubscriptions(t, e, "", 1, true)
	_, err := e.b.SyncAll(ctx, billing.SyncAllOptions{})
	require.NoError(t, err)
	facts, err := e.store.Facts(ctx, users[0])
	require.NoError(t, err)
	first := facts.Subscriptions[0].ID
	_, err = e.fake.CancelNow(first) // not delivered
	require.NoError(t, err)
	second := trialSubscription(t, e.otherDevice(), facts.CustomerID, "price_basic", 7)

	_, err = e.b.SyncAll(ctx, billing.SyncAllOptions{})
	require.NoError(t, err)
	dispatch(t, e.b)
	assert.Empty(t, warnLines(e.logs.String(), "second live subscription"))
	assert.Zero(t, countKind(l.kinds(), billing.ChangeSecondSubscription))
	assert.Equal(t, stripe.SubscriptionStatusTrialing, e.fake.Subscription(second).Status, "not canceled")
	m, err := e.b.Membership(ctx, users[0])
	require.NoError(t, err)
	assert.Equal(t, billing.StatusTrialing, m.Status)
	assert.Equal(t, "basic", m.Tier)
}

// A checkpoint naming a subscription Stripe does not know (the database
// synced with another account or mode before) is dropped, and the sync
// starts from the first page instead of failing on every run.
func TestSyncAllDropsACheckpointStripeDoesNotKnow(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	users := makeSubscriptions(t, e, "", 3, true)
	cp := e.store.(billing.Checkpointer)
	require.NoError(t, cp.SaveCheckpoint(ctx, billing.SyncCheckpoint, "sub_of_another_account"))
	e.fake.ResetCalls()
	rep, err := e.b.SyncAll(ctx, billing.SyncAllOptions{})
	require.NoError(t, err)
	assert.Equal(t, billing.SyncReport{Pages: 1, Seen: 3, Stored: 3, Calls: 2, Done: true}, rep, "the refused page, then the first")
	requireStatus(t, e.b, billing.StatusTrialing, users...)
	assert.Len(t, warnLines(e.logs.String(), "sub_of_another_account"), 1)
}

// slowPage answers the subscriptions list as a slow Stripe would: the
// page's states are read, then, while it is being sent, meanwhile runs
// and the clock moves on, and Date is stamped last.
type slowPage struct {
	base http.RoundTripper
	fake interface {
		Sleep(context.Context, time.Duration) error
		Now() time.Time
	}
	meanwhile func()
}

func (s *slowPage) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(r)
	if err != nil || r.URL.Path != "/v1/subscriptions" || s.meanwhile == nil {
		return resp, err
	}
	_ = s.fake.Sleep(r.Context(), 2*time.Second)
	s.meanwhile()
	_ = s.fake.Sleep(r.Context(), 3*time.Second)
	resp.Header.Set("Date", s.fake.Now().UTC().Format(http.TimeFormat))
	return resp, nil
}

// A change made while a page was being read (its webhook applied) is
// not undone by the page's older state: the page is dated before the
// request began, so the change, newer, stays (the subscription is
// fetched alone to tell).
func TestSyncAllPageIsDatedBeforeItsRequest(t *testing.T) {
	t.Parallel()
	slow := &slowPage{base: http.DefaultTransport}
	e := newCoEnv(t, func(c *billing.Config) {
		slow.fake = c.Clock.(interface {
			Sleep(context.Context, time.Duration) error
			Now() time.Time
		})
		c.HTTPClient = &http.Client{Transport: slow, Timeout: 30 * time.Second}
	})
	ctx := context.Background()
	users := makeSubscriptions(t, e, "", 1, true)
	_, err := e.b.SyncAll(ctx, billing.SyncAllOptions{})
	require.NoError(t, err)
	facts, err := e.store.Facts(ctx, users[0])
	require.NoError(t, err)
	sub := facts.Subscriptions[0].ID

	slow.meanwhile = func() {
		evs, err := e.fake.CancelAtPeriodEnd(sub)
		require.NoError(t, err)
		e.deliver(t, evs...)
	}
	rep, err := e.b.SyncAll(ctx, billing.SyncAllOptions{})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Refetched, "the page could not order its state and the change's")
	m, err := e.b.Membership(ctx, users[0])
	require.NoError(t, err)
	assert.False(t, m.CancelAt.IsZero(), "the cancellation made meanwhile stays")
}

// Only Stripe's resource_missing drops a checkpoint: a resumed run that
// fails otherwise (rate limited past the retries) keeps it for the next.
func TestSyncAllKeepsItsCheckpointOnOtherErrors(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t, func(c *billing.Config) { c.MaxRetries = 1 })
	ctx := context.Background()
	makeSubscriptions(t, e, "", 3, true)
	cp := e.store.(billing.Checkpointer)
	var mid string
	for sub, err := range e.otherDevice().V1Subscriptions.List(ctx, &stripe.SubscriptionListParams{}) {
		require.NoError(t, err)
		mid = sub.ID
		break
	}
	require.NoError(t, cp.SaveCheckpoint(ctx, billing.SyncCheckpoint, mid))
	e.fake.SetFail("GET /v1/subscriptions", http.StatusTooManyRequests, 10)
	_, err := e.b.SyncAll(ctx, billing.SyncAllOptions{})
	var se *billing.StripeError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusTooManyRequests, se.HTTPStatus)
	got, err := cp.Checkpoint(ctx, billing.SyncCheckpoint)
	require.NoError(t, err)
	assert.Equal(t, mid, got, "kept")
}

// failingCheckpoints is a store whose checkpoints cannot be saved.
type failingCheckpoints struct{ *memstore.Store }

var errCheckpointDown = errors.New("the checkpoint table is down")

func (failingCheckpoints) SaveCheckpoint(context.Context, string, string) error {
	return errCheckpointDown
}

// A checkpoint that cannot be saved stops the sync with the store's
// error: a run that could not resume must not look like one that can.
func TestSyncAllReportsACheckpointNotSaved(t *testing.T) {
	t.Parallel()
	e := newCoEnvWith(t, failingCheckpoints{memstore.New()}, users)
	makeSubscriptions(t, e, "", 2, true)
	_, err := e.b.SyncAll(context.Background(), billing.SyncAllOptions{})
	require.ErrorIs(t, err, errCheckpointDown)
}
