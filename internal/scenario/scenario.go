// Package scenario runs billing's lifecycle scenarios (buy, renew, fail,
// recover, cancel, change plan, trial, one-time purchase) against a fake
// Stripe, delivering each scenario's webhook events in order, shuffled,
// with duplicates, concurrently, and interleaved with later steps (stale
// events arriving while Stripe's state is in between). Every Store
// implementation runs it with [Run]: memstore from the root package's
// tests, sqlstore on each dialect.
//
// The expected Membership of each scenario is written out by hand; only
// instants (period ends) are read from the fake Stripe's own objects.
package scenario

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testenv"
)

const (
	secret = "whsec_scenario"
	day    = 24 * time.Hour
	leeway = 24 * time.Hour
)

// Mode is a way of delivering a scenario's events.
type Mode string

// Delivery modes.
const (
	InOrder     Mode = "in_order"    // each step's events right after the step, in Stripe's order
	Shuffled    Mode = "shuffled"    // all steps first, then every event in a random order
	Duplicates  Mode = "duplicates"  // in order, each event twice at once and once more at the end
	Concurrent  Mode = "concurrent"  // all steps first, then every event twice, all at once
	Interleaved Mode = "interleaved" // after each step a random handful of the pending events, old ones included; the return page syncs first
)

// Modes lists every delivery mode.
var Modes = []Mode{InOrder, Shuffled, Duplicates, Concurrent, Interleaved}

// Scenario is one lifecycle story.
type Scenario struct {
	Name string
	// Run drives the fake Stripe through the story; W.Step delivers.
	Run func(w *W)
	// Want is the expected membership at the end, written by hand.
	Want func(w *W) billing.Membership
	// MaxInOrderCalls bounds the Stripe calls the webhook deliveries may
	// make in order (InOrder), to catch a handler that fetches what it
	// need not: only two live states in one second need a fetch.
	MaxInOrderCalls int
}

// W is one run of a scenario: the fake Stripe, the Billing under test,
// and the events still to deliver.
type W struct {
	T     *testing.T
	Fake  *billingtest.Stripe
	B     *billing.Billing
	Store billing.Store
	User  string
	Mode  Mode
	// Sub is the scenario's subscription, Session its Checkout Session.
	Sub, Session string

	h        http.Handler
	rng      *rand.Rand
	pending  []billingtest.Event
	late     []billingtest.Event
	all      []billingtest.Event
	calls    int // Stripe calls made by webhook deliveries
	logs     *testenv.LogBuffer
	synced   bool
	lastSync billing.Membership
}

// Run runs every scenario in every mode, each as a parallel subtest
// ("scenario/mode") with a fresh store from newStore.
func Run(t *testing.T, newStore func(t *testing.T) billing.Store) {
	for _, sc := range Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			for i, mode := range Modes {
				t.Run(string(mode), func(t *testing.T) {
					t.Parallel()
					w := newWorld(t, newStore(t), mode, uint64(i+1))
					sc.Run(w)
					w.finish(sc)
				})
			}
		})
	}
}

// Plans is what the core's tests sell: basic and pro monthly, lowest
// tier first, and a one-time pack of 100 credits.
func Plans() []billing.Plan {
	return []billing.Plan{
		{PriceID: "price_basic", Tier: "basic"},
		{PriceID: "price_pro", Tier: "pro"},
		{PriceID: "price_pack", Kind: billing.OneTime, Credits: 100},
	}
}

// NewStripe starts an offline Stripe whose time moves only when the test
// says (each Stripe step is driven by hand), selling [Plans]' prices; it
// is closed when the test ends.
func NewStripe(t testing.TB, start time.Time) *billingtest.Stripe {
	fake := billingtest.New(billingtest.Options{Start: start, Manual: true})
	t.Cleanup(fake.Close)
	fake.AddPrice("price_basic", "month", 900)
	fake.AddPrice("price_pro", "month", 2900)
	fake.AddPrice("price_pack", "", 500)
	return fake
}

func newWorld(t *testing.T, store billing.Store, mode Mode, seed uint64) *W {
	fake := NewStripe(t, time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	logs := &testenv.LogBuffer{}
	b, err := billing.New(billing.Config{
		SecretKey:      "sk_test_scenario",
		WebhookSecrets: []string{secret},
		SiteURL:        "https://app.example",
		Plans:          Plans(),
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:          fake,
		StripeURL:      fake.URL(),
		MaxRetries:     -1,
	}, store, billing.UserResolverFunc(func(ctx context.Context, id string) (billing.User, error) {
		return billing.User{ID: id, Email: id + "@example.com", Name: "User " + id}, nil
	}))
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("billing logs:\n%s", logs.String())
		}
	})
	return &W{T: t, Fake: fake, B: b, Store: store, User: "user_1", Mode: mode,
		h: b.WebhookHandler(), rng: rand.New(rand.NewPCG(seed, 42)), logs: logs}
}

// Checkout starts a Checkout through the library and completes it at the
// fake Stripe (the user pays), then delivers the events.
func (w *W) Checkout(opts billing.CheckoutOptions, complete billingtest.CompleteOptions) {
	w.T.Helper()
	cs, err := w.B.Checkout(context.Background(), w.User, opts)
	require.NoError(w.T, err)
	require.NotEmpty(w.T, cs.URL)
	w.Session = cs.ID
	evs, err := w.Fake.CompleteCheckout(cs.ID, complete)
	require.NoError(w.T, err)
	if subs := w.Fake.SubscriptionsOf(w.Fake.CheckoutSession(cs.ID).Customer.ID); len(subs) > 0 {
		w.Sub = subs[len(subs)-1]
	}
	if w.Mode == Interleaved {
		// The return page loads before any webhook.
		_, m, err := w.B.SyncCheckout(context.Background(), w.User, cs.ID)
		require.NoError(w.T, err)
		w.synced, w.lastSync = true, m
	}
	w.Step(evs, nil)
}

// Synced returns the membership SyncCheckout reported, in Interleaved mode.
func (w *W) Synced() (billing.Membership, bool) { return w.lastSync, w.synced }

// Step takes the events of one fake Stripe step and delivers them as the
// mode says.
func (w *W) Step(evs []billingtest.Event, err error) {
	w.T.Helper()
	require.NoError(w.T, err)
	require.NotEmpty(w.T, evs, "a step with no events")
	w.all = append(w.all, evs...)
	switch w.Mode {
	case InOrder:
		w.deliver(evs...)
	case Duplicates:
		for _, e := range evs {
			w.deliver(e, e)
		}
		w.late = append(w.late, evs...)
	case Shuffled, Concurrent:
		w.pending = append(w.pending, evs...)
	case Interleaved:
		w.pending = append(w.pending, evs...)
		w.rng.Shuffle(len(w.pending), func(i, j int) { w.pending[i], w.pending[j] = w.pending[j], w.pending[i] })
		n := w.rng.IntN(len(w.pending) + 1)
		w.deliver(w.pending[:n]...)
		w.pending = slices.Clone(w.pending[n:])
	}
}

// Advance moves the fake Stripe's clock.
func (w *W) Advance(d time.Duration) { w.Fake.Advance(d) }

// PeriodEnd is Stripe's current_period_end of the scenario's subscription
// (its first item), read from the fake Stripe's own object.
func (w *W) PeriodEnd() time.Time {
	s := w.Fake.Subscription(w.Sub)
	require.NotNil(w.T, s)
	return time.Unix(s.Items.Data[0].CurrentPeriodEnd, 0).UTC()
}

func (w *W) deliver(evs ...billingtest.Event) {
	w.T.Helper()
	before := w.Fake.TotalCalls()
	for _, e := range evs {
		code, body := w.post(e)
		require.Equal(w.T, http.StatusOK, code, "%s %s: %s", e.Type, e.ID, body)
	}
	w.calls += w.Fake.TotalCalls() - before
}

func (w *W) post(e billingtest.Event) (int, string) {
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: e.JSON, Secret: secret, Timestamp: time.Now()})
	r := httptest.NewRequest(http.MethodPost, "/stripe/webhook", bytes.NewReader(e.JSON))
	r.Header.Set("Stripe-Signature", sp.Header)
	rec := httptest.NewRecorder()
	w.h.ServeHTTP(rec, r)
	return rec.Code, rec.Body.String()
}

// finish delivers what is left, checks the end state, and checks that
// redelivering every event changes nothing and calls Stripe not at all.
func (w *W) finish(sc Scenario) {
	t := w.T
	switch w.Mode {
	case Shuffled, Interleaved:
		w.rng.Shuffle(len(w.pending), func(i, j int) { w.pending[i], w.pending[j] = w.pending[j], w.pending[i] })
		w.deliver(w.pending...)
	case Duplicates:
		w.deliver(w.late...)
	case Concurrent:
		before := w.Fake.TotalCalls()
		var wg sync.WaitGroup
		codes := make([]int, 2*len(w.pending))
		for i, e := range append(slices.Clone(w.pending), w.pending...) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], _ = w.post(e)
			}()
		}
		wg.Wait()
		for i, c := range codes {
			assert.Equal(t, http.StatusOK, c, "concurrent delivery %d", i)
		}
		w.calls += w.Fake.TotalCalls() - before
	}

	want := sc.Want(w)
	got, err := w.B.Membership(context.Background(), w.User)
	require.NoError(t, err)
	assert.Equal(t, want, got, "membership after every event, mode %s", w.Mode)
	if sc.MaxInOrderCalls >= 0 && w.Mode == InOrder {
		assert.LessOrEqual(t, w.calls, sc.MaxInOrderCalls, "Stripe calls made by in-order delivery")
	}
	t.Logf("%s/%s: %d events, %d Stripe calls by webhook deliveries", sc.Name, w.Mode, len(w.all), w.calls)

	// Every event again: duplicates of applied events make no call and no
	// change.
	f1, err := w.Store.Facts(context.Background(), w.User)
	require.NoError(t, err)
	before := w.Fake.TotalCalls()
	for _, e := range w.all {
		code, body := w.post(e)
		require.Equal(t, http.StatusOK, code)
		assert.Contains(t, []string{`{"outcome":"duplicate"}`, `{"outcome":"ignored"}`}, strings.TrimSpace(body), "%s %s", e.Type, e.ID)
	}
	assert.Equal(t, 0, w.Fake.TotalCalls()-before, "a duplicate of an applied event made a Stripe call")
	f2, err := w.Store.Facts(context.Background(), w.User)
	require.NoError(t, err)
	assert.Equal(t, f1, f2, "duplicates changed the stored facts")
}

// String names a mode.
func (m Mode) String() string { return string(m) }

// Scenarios returns the lifecycle stories.
func Scenarios() []Scenario {
	pro := billing.CheckoutOptions{PriceID: "price_pro"}
	noOpt := billingtest.CompleteOptions{}
	active := func(w *W, tier, price string) billing.Membership {
		end := w.PeriodEnd()
		return billing.Membership{UserID: w.User, Status: billing.StatusActive, Tier: tier, PriceID: price, SubscriptionID: w.Sub,
			StripeStatus: "active", CurrentPeriodEnd: end, AccessUntil: end.Add(leeway), HasCustomer: true}
	}
	checkSynced := func(w *W, st billing.Status) {
		if m, ok := w.Synced(); ok {
			assert.Equal(w.T, st, m.Status, "the return page's membership before any webhook")
		}
	}
	return []Scenario{
		{
			Name: "buy",
			Run: func(w *W) {
				w.Checkout(pro, noOpt)
				checkSynced(w, billing.StatusActive)
			},
			Want:            func(w *W) billing.Membership { return active(w, "pro", "price_pro") },
			MaxInOrderCalls: 0,
		},
		{
			Name: "buy_then_renew",
			Run: func(w *W) {
				w.Checkout(pro, noOpt)
				checkSynced(w, billing.StatusActive)
				w.Advance(30 * day)
				w.Step(w.Fake.Renew(w.Sub, billingtest.RenewOptions{}))
			},
			Want:            func(w *W) billing.Membership { return active(w, "pro", "price_pro") },
			MaxInOrderCalls: 0,
		},
		{
			Name: "buy_then_fail_three_times_past_due",
			Run: func(w *W) {
				w.Checkout(pro, noOpt)
				w.Advance(30 * day)
				require.NoError(w.T, w.Fake.SetCardFailing(w.Fake.Subscription(w.Sub).Customer.ID, true))
				w.Step(w.Fake.Renew(w.Sub, billingtest.RenewOptions{}))
				w.Advance(day)
				w.Step(w.Fake.RetryPayment(w.Sub))
				w.Advance(2 * day)
				w.Step(w.Fake.RetryPayment(w.Sub))
			},
			Want: func(w *W) billing.Membership {
				return billing.Membership{UserID: w.User, Status: billing.StatusPastDue, Tier: "pro", PriceID: "price_pro", SubscriptionID: w.Sub,
					StripeStatus: "past_due", CurrentPeriodEnd: w.PeriodEnd(), FailedAttempts: 3, HasCustomer: true}
			},
			MaxInOrderCalls: 2,
		},
		{
			Name: "fail_then_recover",
			Run: func(w *W) {
				w.Checkout(pro, noOpt)
				w.Advance(30 * day)
				cus := w.Fake.Subscription(w.Sub).Customer.ID
				require.NoError(w.T, w.Fake.SetCardFailing(cus, true))
				w.Step(w.Fake.Renew(w.Sub, billingtest.RenewOptions{}))
				w.Advance(day)
				require.NoError(w.T, w.Fake.SetCardFailing(cus, false))
				w.Step(w.Fake.RetryPayment(w.Sub))
			},
			Want:            func(w *W) billing.Membership { return active(w, "pro", "price_pro") },
			MaxInOrderCalls: 2,
		},
		{
			Name: "cancel_at_period_end",
			Run: func(w *W) {
				w.Checkout(pro, noOpt)
				w.Advance(3 * day)
				w.Step(w.Fake.CancelAtPeriodEnd(w.Sub))
			},
			Want: func(w *W) billing.Membership {
				end := w.PeriodEnd()
				return billing.Membership{UserID: w.User, Status: billing.StatusActive, Tier: "pro", PriceID: "price_pro", SubscriptionID: w.Sub,
					StripeStatus: "active", CurrentPeriodEnd: end, CancelAt: end, AccessUntil: end, HasCustomer: true}
			},
			MaxInOrderCalls: 0,
		},
		{
			Name: "portal_cancel_at_then_ends",
			Run: func(w *W) {
				w.Checkout(pro, noOpt)
				w.Advance(3 * day)
				w.Step(w.Fake.CancelAt(w.Sub, w.PeriodEnd()))
				w.Advance(27 * day)
				w.Step(w.Fake.EndPeriodCancellation(w.Sub))
			},
			Want: func(w *W) billing.Membership {
				return billing.Membership{UserID: w.User, Status: billing.StatusCanceled, Tier: "pro", PriceID: "price_pro", SubscriptionID: w.Sub,
					StripeStatus: "canceled", CurrentPeriodEnd: w.PeriodEnd(), HasCustomer: true}
			},
			MaxInOrderCalls: 0,
		},
		{
			Name: "portal_cancel_at_pending",
			Run: func(w *W) {
				w.Checkout(pro, noOpt)
				w.Advance(3 * day)
				w.Step(w.Fake.CancelAt(w.Sub, w.PeriodEnd().Add(-5*day)))
			},
			Want: func(w *W) billing.Membership {
				end, at := w.PeriodEnd(), w.PeriodEnd().Add(-5*day)
				return billing.Membership{UserID: w.User, Status: billing.StatusActive, Tier: "pro", PriceID: "price_pro", SubscriptionID: w.Sub,
					StripeStatus: "active", CurrentPeriodEnd: end, CancelAt: at, AccessUntil: at, HasCustomer: true}
			},
			MaxInOrderCalls: 0,
		},
		{
			Name: "cancel_now",
			Run: func(w *W) {
				w.Checkout(pro, noOpt)
				w.Advance(day)
				w.Step(w.Fake.CancelNow(w.Sub))
			},
			Want: func(w *W) billing.Membership {
				return billing.Membership{UserID: w.User, Status: billing.StatusCanceled, Tier: "pro", PriceID: "price_pro", SubscriptionID: w.Sub,
					StripeStatus: "canceled", CurrentPeriodEnd: w.PeriodEnd(), HasCustomer: true}
			},
			MaxInOrderCalls: 0,
		},
		{
			Name: "plan_change_basic_to_pro",
			Run: func(w *W) {
				w.Checkout(billing.CheckoutOptions{PriceID: "price_basic"}, noOpt)
				w.Advance(10 * day)
				w.Step(w.Fake.ChangePrice(w.Sub, "price_pro"))
			},
			Want:            func(w *W) billing.Membership { return active(w, "pro", "price_pro") },
			MaxInOrderCalls: 0,
		},
		{
			Name: "trial_then_active",
			Run: func(w *W) {
				w.Checkout(billing.CheckoutOptions{PriceID: "price_pro", TrialDays: 14}, noOpt)
				checkSynced(w, billing.StatusTrialing)
				w.Advance(11 * day)
				w.Step(w.Fake.TrialWillEnd(w.Sub))
				w.Advance(3 * day)
				w.Step(w.Fake.EndTrial(w.Sub, billingtest.RenewOptions{}))
			},
			Want:            func(w *W) billing.Membership { return active(w, "pro", "price_pro") },
			MaxInOrderCalls: 0,
		},
		{
			Name: "one_time_purchase",
			Run: func(w *W) {
				w.Checkout(billing.CheckoutOptions{PriceID: "price_pack", Quantity: 2}, noOpt)
				if m, ok := w.Synced(); ok {
					assert.Equal(w.T, int64(200), m.Credits, "the return page grants at once")
				}
			},
			Want: func(w *W) billing.Membership {
				return billing.Membership{UserID: w.User, Credits: 200, HasCustomer: true}
			},
			MaxInOrderCalls: 0,
		},
		{
			Name: "one_time_delayed_payment",
			Run: func(w *W) {
				w.Checkout(billing.CheckoutOptions{PriceID: "price_pack"}, billingtest.CompleteOptions{Delayed: true})
				if m, ok := w.Synced(); ok {
					assert.Equal(w.T, int64(0), m.Credits, "nothing is granted before the money arrives")
				}
				w.Advance(2 * day)
				w.Step(w.Fake.SucceedAsyncPayment(w.Session))
			},
			Want: func(w *W) billing.Membership {
				return billing.Membership{UserID: w.User, Credits: 100, HasCustomer: true}
			},
			MaxInOrderCalls: 0,
		},
	}
}

var _ fmt.Stringer = Mode("")
