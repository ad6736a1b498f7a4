package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
	"github.com/gobilling/billing/internal/testenv"
)

const (
	lifecycleSecret = "whsec_lifecycle"
	lifecycleKey    = "sk_test_lifecycle"
	days            = 24 * time.Hour
	leeway          = 24 * time.Hour
)

// Mode is a way of delivering a lifecycle's webhook events.
type Mode string

// Delivery modes.
const (
	InOrder     Mode = "in_order"    // each step's events right after the step, in Stripe's order
	Shuffled    Mode = "shuffled"    // all steps first, then every event in a random order
	Duplicates  Mode = "duplicates"  // in order, each event twice at once and once more at the end
	Concurrent  Mode = "concurrent"  // all steps first, then every event twice, all at once
	Interleaved Mode = "interleaved" // after each step a random handful of the pending events, old ones included; the return page syncs first
	SameSecond  Mode = "same_second" // each step's events stamped with the step's first second, as if Stripe made them all at once, and delivered newest first: only fetches can order them
)

// Modes lists every delivery mode.
var Modes = []Mode{InOrder, Shuffled, Duplicates, Concurrent, Interleaved, SameSecond}

// String names a mode.
func (m Mode) String() string { return string(m) }

// Lifecycle is one story of a user and Stripe, told through a [World]'s
// step API, with the membership it must end in.
type Lifecycle struct {
	Name string
	// Run drives the offline Stripe through the story; World.Step
	// delivers each step's events as the mode says.
	Run func(w *World)
	// Want is the expected membership at the end, written by hand (read
	// instants such as period ends from w.Stripe's own objects).
	Want func(w *World) billing.Membership
	// MaxInOrderCalls bounds the Stripe calls the webhook deliveries may
	// make in InOrder mode, to catch a handler that fetches what it need
	// not; negative means no bound.
	MaxInOrderCalls int
	// Changes are the kinds of the changes the story records, in order,
	// when its events arrive in order: checked through the hooks when the
	// store implements billing.Outbox, else (or with NoHooks) through
	// billing's INFO lines; nil is not checked. Delivered in another order, the stored facts may
	// skip a state (a cancellation arriving first leaves nothing to
	// activate); then each change is one of these, and none comes twice.
	Changes []billing.ChangeKind
}

// LifecycleOptions configures [RunLifecycles]. The zero value runs every
// lifecycle of billing's in every mode.
type LifecycleOptions struct {
	// Modes limits the delivery modes (default: [Modes]).
	Modes []Mode
	// Only runs the lifecycles with these names (default: all of them).
	Only []string
	// Extra lifecycles, written with the World's step API, run beside
	// billing's own in every mode.
	Extra []Lifecycle
	// Replicas, when set, returns the webhook handlers of several app
	// replicas (other processes, say), each with a Billing of its own
	// made with cfg on a store sharing the given one's database (cfg.Clock
	// is the offline Stripe, whose time a replica process must follow): the
	// World then spreads its deliveries across them instead of using
	// its own Billing's handler, which keeps Checkout, the return page,
	// membership and the delivery of changes.
	Replicas func(t *testing.T, store billing.Store, cfg billing.Config) []http.Handler
	// NoHooks runs the World's Billing without hooks even when the store
	// keeps an outbox: the changes are then checked from its INFO lines,
	// which a store's one-statement write (billing.PreviousReporter) also
	// tells.
	NoHooks bool
}

// World is one run of a lifecycle: an offline Stripe selling basic
// (price_basic) and pro (price_pro) monthly plans and a one-time pack of
// 100 credits (price_pack), the Billing under test on the Store being
// tested, and the events still to deliver. The Stripe's clock moves only
// when the lifecycle says (Advance).
type World struct {
	T       *testing.T
	Stripe  *billingtest.Stripe
	Billing *billing.Billing
	Store   billing.Store
	User    string
	Mode    Mode
	// Sub is the lifecycle's subscription, Session its Checkout Session.
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
	changes  *changeLog // nil when the store keeps no outbox
	replicas []http.Handler
	next     atomic.Int64 // the replica of the next delivery
}

// changeLog is a ChangeHandler that keeps what it is given.
type changeLog struct {
	mu  sync.Mutex
	got []billing.Change
}

func (l *changeLog) HandleChange(ctx context.Context, c billing.Change) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, c)
	return nil
}

// RunLifecycles runs the hostile lifecycle suite on the stores made by
// newStore: billing's real webhook handler on the offline Stripe of
// package billingtest, through every lifecycle (buy, renew, fail three
// times, recover, cancel at period end or at a date, cancel now, change
// plan, trial, one-time purchase, delayed payment) in every [Mode]: in
// order, shuffled, duplicated, concurrently, interleaved with stale
// events (the return page first), and all in one second. Each ends with
// the membership written by hand, and every event is then delivered once
// more: duplicates must change nothing and call Stripe not at all.
//
// Each lifecycle and mode is a parallel subtest ("lifecycle/mode") with a
// fresh store from newStore, as for [Run]. Run it with -race.
func RunLifecycles(t *testing.T, newStore func(t *testing.T) billing.Store, opts LifecycleOptions) {
	t.Helper()
	modes := opts.Modes
	if len(modes) == 0 {
		modes = Modes
	}
	for _, lc := range append(Lifecycles(), opts.Extra...) {
		if len(opts.Only) > 0 && !slices.Contains(opts.Only, lc.Name) {
			continue
		}
		t.Run(lc.Name, func(t *testing.T) {
			t.Parallel()
			for i, mode := range modes {
				t.Run(string(mode), func(t *testing.T) {
					t.Parallel()
					w := newWorld(t, newStore(t), mode, uint64(i+1), opts.Replicas, opts.NoHooks)
					lc.Run(w)
					w.finish(lc)
				})
			}
		})
	}
}

func newWorld(t *testing.T, store billing.Store, mode Mode, seed uint64, replicas func(*testing.T, billing.Store, billing.Config) []http.Handler, noHooks bool) *World {
	fake := testcatalog.NewStripe(t, time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	logs := &testenv.LogBuffer{}
	var changes *changeLog
	var hooks billing.Hooks
	if _, ok := store.(billing.Outbox); ok && !noHooks {
		changes = &changeLog{}
		hooks.Handler = changes
	}
	cfg := billing.Config{
		SecretKey:      lifecycleKey,
		WebhookSecrets: []string{lifecycleSecret},
		SiteURL:        "https://app.example",
		Plans:          testcatalog.Plans(),
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:          fake,
		StripeURL:      fake.URL(),
		MaxRetries:     -1,
		Hooks:          hooks,
	}
	b, err := billing.New(cfg, store, billing.UserResolverFunc(func(ctx context.Context, id string) (billing.User, error) {
		return billing.User{ID: id, Email: id + "@example.com", Name: "User " + id}, nil
	}))
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("billing logs:\n%s", logs.String())
		}
	})
	w := &World{T: t, Stripe: fake, Billing: b, Store: store, User: "user_1", Mode: mode,
		h: b.WebhookHandler(), rng: rand.New(rand.NewPCG(seed, 42)), logs: logs, changes: changes}
	if replicas != nil {
		cfg.Logger = nil // each replica its own; cfg.Clock is the offline Stripe's
		w.replicas = replicas(t, store, cfg)
		require.NotEmpty(t, w.replicas, "LifecycleOptions.Replicas returned no handler")
	}
	return w
}

// Checkout starts a Checkout through the library and pays it at the fake
// Stripe with paymentMethod (billingtest.CardOK, or billingtest.BankDebit
// for a one-time payment that settles later), then delivers the events.
func (w *World) Checkout(opts billing.CheckoutOptions, paymentMethod string) {
	w.T.Helper()
	cs, err := w.Billing.Checkout(context.Background(), w.User, opts)
	require.NoError(w.T, err)
	require.NotEmpty(w.T, cs.URL)
	w.Session = cs.ID
	paid, err := w.Stripe.Pay(cs.ID, paymentMethod)
	require.NoError(w.T, err)
	evs := paid.Events
	if subs := w.Stripe.SubscriptionsOf(w.Stripe.CheckoutSession(cs.ID).Customer.ID); len(subs) > 0 {
		w.Sub = subs[len(subs)-1]
	}
	if w.Mode == Interleaved {
		// The return page loads before any webhook.
		_, m, err := w.Billing.SyncCheckout(context.Background(), w.User, cs.ID)
		require.NoError(w.T, err)
		w.synced, w.lastSync = true, m
	}
	w.Step(evs, nil)
}

// Synced returns the membership SyncCheckout reported, in Interleaved mode.
func (w *World) Synced() (billing.Membership, bool) { return w.lastSync, w.synced }

// Step takes the events of one fake Stripe step (the portal's actions,
// such as billingtest.Stripe.CancelNow) and delivers them as the mode
// says. A step must have events.
func (w *World) Step(evs []billingtest.Event, err error) {
	w.T.Helper()
	require.NoError(w.T, err)
	require.NotEmpty(w.T, evs, "a step with no events")
	w.step(evs)
}

func (w *World) step(evs []billingtest.Event) {
	w.T.Helper()
	if len(evs) == 0 {
		return
	}
	w.all = append(w.all, evs...) // as Stripe sent them: redelivered at the end
	switch w.Mode {
	case InOrder:
		w.deliver(evs...)
	case SameSecond:
		for _, e := range slices.Backward(evs) {
			w.deliver(e.StampedAt(evs[0].Created))
		}
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

// Advance moves the fake Stripe's clock by d and delivers, as the mode
// says, the events Stripe sends meanwhile (renewals, payment retries,
// trial ends, scheduled cancellations, settled bank debits), if any.
func (w *World) Advance(d time.Duration) {
	w.T.Helper()
	w.step(w.Stripe.Advance(d))
}

// AdvanceTo is [World.Advance] to the instant t (nothing if t has passed).
func (w *World) AdvanceTo(t time.Time) {
	w.T.Helper()
	w.Advance(max(t.Sub(w.Stripe.Now()), 0))
}

// Request makes an API request to the fake Stripe as the app would (say,
// POST /v1/subscriptions/{id} with cancel_at) and delivers the events it
// caused as the mode says. The request must succeed.
func (w *World) Request(method, path string, form url.Values) {
	w.T.Helper()
	evs, err := testcatalog.Request(w.Stripe, method, path, form)
	require.NoError(w.T, err)
	w.step(evs)
}

// PeriodEnd is Stripe's current_period_end of the scenario's subscription
// (its first item), read from the fake Stripe's own object.
func (w *World) PeriodEnd() time.Time {
	s := w.Stripe.Subscription(w.Sub)
	require.NotNil(w.T, s)
	return time.Unix(s.Items.Data[0].CurrentPeriodEnd, 0).UTC()
}

func (w *World) deliver(evs ...billingtest.Event) {
	w.T.Helper()
	before := w.Stripe.TotalCalls()
	for _, e := range evs {
		code, body := w.post(e)
		require.Equal(w.T, http.StatusOK, code, "%s %s: %s", e.Type, e.ID, body)
	}
	w.calls += w.Stripe.TotalCalls() - before
}

// Post signs one event and delivers it to the webhook handler at once,
// whatever the mode; it returns the status and body of the answer. It is
// for events a lifecycle crafts itself (billingtest's NewEvent): events
// of Stripe's steps go through [World.Step].
func (w *World) Post(e billingtest.Event) (status int, body string) { return w.post(e) }

func (w *World) post(e billingtest.Event) (int, string) {
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: e.JSON, Secret: lifecycleSecret, Timestamp: time.Now()})
	r := httptest.NewRequest(http.MethodPost, "/stripe/webhook", bytes.NewReader(e.JSON))
	r.Header.Set("Stripe-Signature", sp.Header)
	rec := httptest.NewRecorder()
	h := w.h
	if len(w.replicas) > 0 {
		h = w.replicas[int(w.next.Add(1)-1)%len(w.replicas)]
	}
	h.ServeHTTP(rec, r)
	return rec.Code, rec.Body.String()
}

// finish delivers what is left, checks the end state, and checks that
// redelivering every event changes nothing and calls Stripe not at all.
func (w *World) finish(sc Lifecycle) {
	t := w.T
	switch w.Mode {
	case Shuffled, Interleaved:
		w.rng.Shuffle(len(w.pending), func(i, j int) { w.pending[i], w.pending[j] = w.pending[j], w.pending[i] })
		w.deliver(w.pending...)
	case Duplicates:
		w.deliver(w.late...)
	case Concurrent:
		before := w.Stripe.TotalCalls()
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
		w.calls += w.Stripe.TotalCalls() - before
	}

	want := sc.Want(w)
	got, err := w.Billing.Membership(context.Background(), w.User)
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
	before := w.Stripe.TotalCalls()
	for _, e := range w.all {
		code, body := w.post(e)
		require.Equal(t, http.StatusOK, code)
		assert.Contains(t, []string{`{"outcome":"duplicate"}`, `{"outcome":"ignored"}`}, strings.TrimSpace(body), "%s %s", e.Type, e.ID)
	}
	assert.Equal(t, 0, w.Stripe.TotalCalls()-before, "a duplicate of an applied event made a Stripe call")
	f2, err := w.Store.Facts(context.Background(), w.User)
	require.NoError(t, err)
	assert.Equal(t, f1, f2, "duplicates changed the stored facts")
	w.checkChanges(sc)
}

// checkChanges delivers the recorded changes and checks them against the
// story's: exactly its list when delivered in order, else a part of it;
// never one change twice.
func (w *World) checkChanges(sc Lifecycle) {
	t := w.T
	if sc.Changes == nil {
		return // a story that names none (an Extra one, say)
	}
	var kinds []billing.ChangeKind
	if w.changes == nil {
		// No hooks: the changes as the INFO lines tell them (once per
		// applied write; a duplicate logs nothing).
		for _, l := range strings.Split(w.logs.String(), "\n") {
			if !strings.Contains(l, `msg="billing: membership changed"`) {
				continue
			}
			assert.Contains(t, l, " user="+w.User+" ", "the change's user")
			if m := kindInLog.FindStringSubmatch(l); m != nil {
				kinds = append(kinds, billing.ChangeKind(m[1]))
			}
		}
	} else {
		_, err := w.Billing.DispatchHooks(context.Background())
		require.NoError(t, err)
		w.changes.mu.Lock()
		got := slices.Clone(w.changes.got)
		w.changes.mu.Unlock()
		keys := map[string]bool{}
		for _, c := range got {
			assert.False(t, keys[c.Key], "change %s delivered twice", c.Key)
			keys[c.Key] = true
			assert.Equal(t, w.User, c.UserID, "change %s", c.Key)
			kinds = append(kinds, c.Kind)
		}
	}
	if kinds == nil {
		kinds = []billing.ChangeKind{}
	}
	t.Logf("%s/%s: changes %v", sc.Name, w.Mode, kinds)
	if w.Mode == InOrder || w.Mode == Duplicates {
		assert.Equal(t, sc.Changes, kinds, "the changes of in-order delivery, mode %s", w.Mode)
		return
	}
	left := slices.Clone(sc.Changes)
	for _, k := range kinds {
		i := slices.Index(left, k)
		if !assert.GreaterOrEqual(t, i, 0, "change %s is not one of the story's %v (got %v), mode %s", k, sc.Changes, kinds, w.Mode) {
			continue
		}
		left = slices.Delete(left, i, i+1)
	}
	if w.changes != nil {
		st, err := w.Billing.HookStats(context.Background())
		require.NoError(t, err)
		assert.Zero(t, st.Pending+st.Dead, "every change delivered")
	}
}

// kindInLog reads a membership-change line's kind.
var kindInLog = regexp.MustCompile(` kind=([a-z_]+)`)

// Lifecycles returns billing's lifecycle stories, which [RunLifecycles]
// runs.
func Lifecycles() []Lifecycle {
	pro := billing.CheckoutOptions{PriceID: "price_pro"}
	noOpt := billingtest.CardOK
	active := func(w *World, tier, price string) billing.Membership {
		end := w.PeriodEnd()
		return billing.Membership{UserID: w.User, Status: billing.StatusActive, Tier: tier, PriceID: price, SubscriptionID: w.Sub,
			StripeStatus: "active", CurrentPeriodEnd: end, AccessUntil: end.Add(leeway), HasCustomer: true}
	}
	checkSynced := func(w *World, st billing.Status) {
		if m, ok := w.Synced(); ok {
			assert.Equal(w.T, st, m.Status, "the return page's membership before any webhook")
		}
	}
	return []Lifecycle{
		{
			Name: "buy",
			Run: func(w *World) {
				w.Checkout(pro, noOpt)
				checkSynced(w, billing.StatusActive)
			},
			Want:            func(w *World) billing.Membership { return active(w, "pro", "price_pro") },
			MaxInOrderCalls: 0,
			Changes:         []billing.ChangeKind{billing.ChangeActivated},
		},
		{
			Name: "buy_then_renew",
			Run: func(w *World) {
				w.Checkout(pro, noOpt)
				checkSynced(w, billing.StatusActive)
				w.Advance(30 * days)
				w.Step(testcatalog.Renew(w.Stripe, w.Sub))
			},
			Want:            func(w *World) billing.Membership { return active(w, "pro", "price_pro") },
			MaxInOrderCalls: 0,
			Changes:         []billing.ChangeKind{billing.ChangeActivated, billing.ChangeRenewed},
		},
		{
			Name: "buy_then_fail_three_times_past_due",
			Run: func(w *World) {
				w.Checkout(pro, noOpt)
				w.Advance(30 * days)
				require.NoError(w.T, testcatalog.SetCardFailing(w.Stripe, w.Stripe.Subscription(w.Sub).Customer.ID, true))
				w.Step(testcatalog.Renew(w.Stripe, w.Sub))
				w.Step(testcatalog.Retry(w.Stripe, w.Sub))
				w.Step(testcatalog.Retry(w.Stripe, w.Sub))
			},
			Want: func(w *World) billing.Membership {
				return billing.Membership{UserID: w.User, Status: billing.StatusPastDue, Tier: "pro", PriceID: "price_pro", SubscriptionID: w.Sub,
					StripeStatus: "past_due", CurrentPeriodEnd: w.PeriodEnd(), FailedAttempts: 3, HasCustomer: true}
			},
			MaxInOrderCalls: 2,
			Changes:         []billing.ChangeKind{billing.ChangeActivated, billing.ChangePaymentFailed, billing.ChangePaymentFailed, billing.ChangePaymentFailed, billing.ChangeAccessLocked},
		},
		{
			Name: "fail_then_recover",
			Run: func(w *World) {
				w.Checkout(pro, noOpt)
				w.Advance(30 * days)
				cus := w.Stripe.Subscription(w.Sub).Customer.ID
				require.NoError(w.T, testcatalog.SetCardFailing(w.Stripe, cus, true))
				w.Step(testcatalog.Renew(w.Stripe, w.Sub))
				require.NoError(w.T, testcatalog.SetCardFailing(w.Stripe, cus, false))
				w.Step(testcatalog.Retry(w.Stripe, w.Sub))
			},
			Want:            func(w *World) billing.Membership { return active(w, "pro", "price_pro") },
			MaxInOrderCalls: 2,
			Changes:         []billing.ChangeKind{billing.ChangeActivated, billing.ChangePaymentFailed, billing.ChangeRenewed, billing.ChangeRecovered},
		},
		{
			Name: "cancel_at_period_end",
			Run: func(w *World) {
				w.Checkout(pro, noOpt)
				w.Advance(3 * days)
				w.Step(w.Stripe.CancelAtPeriodEnd(w.Sub))
			},
			Want: func(w *World) billing.Membership {
				end := w.PeriodEnd()
				return billing.Membership{UserID: w.User, Status: billing.StatusActive, Tier: "pro", PriceID: "price_pro", SubscriptionID: w.Sub,
					StripeStatus: "active", CurrentPeriodEnd: end, CancelAt: end, AccessUntil: end, HasCustomer: true}
			},
			MaxInOrderCalls: 0,
			Changes:         []billing.ChangeKind{billing.ChangeActivated, billing.ChangeCancellationScheduled},
		},
		{
			Name: "portal_cancel_at_then_ends",
			Run: func(w *World) {
				w.Checkout(pro, noOpt)
				w.Advance(3 * days)
				w.Request(http.MethodPost, "/v1/subscriptions/"+w.Sub, url.Values{"cancel_at": {fmt.Sprint(w.PeriodEnd().Unix())}})
				w.Advance(27 * days)
				w.Step(testcatalog.EndCancellation(w.Stripe, w.Sub))
			},
			Want: func(w *World) billing.Membership {
				return billing.Membership{UserID: w.User, Status: billing.StatusCanceled, Tier: "pro", PriceID: "price_pro", SubscriptionID: w.Sub,
					StripeStatus: "canceled", CurrentPeriodEnd: w.PeriodEnd(), HasCustomer: true}
			},
			MaxInOrderCalls: 0,
			Changes:         []billing.ChangeKind{billing.ChangeActivated, billing.ChangeCancellationScheduled, billing.ChangeEnded},
		},
		{
			Name: "portal_cancel_at_pending",
			Run: func(w *World) {
				w.Checkout(pro, noOpt)
				w.Advance(3 * days)
				w.Request(http.MethodPost, "/v1/subscriptions/"+w.Sub, url.Values{"cancel_at": {fmt.Sprint(w.PeriodEnd().Add(-5 * days).Unix())}})
			},
			Want: func(w *World) billing.Membership {
				end, at := w.PeriodEnd(), w.PeriodEnd().Add(-5*days)
				return billing.Membership{UserID: w.User, Status: billing.StatusActive, Tier: "pro", PriceID: "price_pro", SubscriptionID: w.Sub,
					StripeStatus: "active", CurrentPeriodEnd: end, CancelAt: at, AccessUntil: at, HasCustomer: true}
			},
			MaxInOrderCalls: 0,
			Changes:         []billing.ChangeKind{billing.ChangeActivated, billing.ChangeCancellationScheduled},
		},
		{
			Name: "cancel_now",
			Run: func(w *World) {
				w.Checkout(pro, noOpt)
				w.Advance(days)
				w.Step(w.Stripe.CancelNow(w.Sub))
			},
			Want: func(w *World) billing.Membership {
				return billing.Membership{UserID: w.User, Status: billing.StatusCanceled, Tier: "pro", PriceID: "price_pro", SubscriptionID: w.Sub,
					StripeStatus: "canceled", CurrentPeriodEnd: w.PeriodEnd(), HasCustomer: true}
			},
			MaxInOrderCalls: 0,
			Changes:         []billing.ChangeKind{billing.ChangeActivated, billing.ChangeEnded},
		},
		{
			Name: "plan_change_basic_to_pro",
			Run: func(w *World) {
				w.Checkout(billing.CheckoutOptions{PriceID: "price_basic"}, noOpt)
				w.Advance(10 * days)
				w.Step(w.Stripe.ChangePrice(w.Sub, "price_pro"))
			},
			Want:            func(w *World) billing.Membership { return active(w, "pro", "price_pro") },
			MaxInOrderCalls: 0,
			Changes:         []billing.ChangeKind{billing.ChangeActivated, billing.ChangePlanChanged},
		},
		{
			Name: "trial_then_active",
			Run: func(w *World) {
				w.Checkout(billing.CheckoutOptions{PriceID: "price_pro", TrialDays: 14}, noOpt)
				checkSynced(w, billing.StatusTrialing)
				w.Step(testcatalog.TrialWillEnd(w.Stripe, w.Sub))
				w.Step(testcatalog.EndTrial(w.Stripe, w.Sub))
			},
			Want:            func(w *World) billing.Membership { return active(w, "pro", "price_pro") },
			MaxInOrderCalls: 0,
			Changes:         []billing.ChangeKind{billing.ChangeActivated, billing.ChangeTrialEnding, billing.ChangeRenewed},
		},
		{
			Name: "one_time_purchase",
			Run: func(w *World) {
				w.Checkout(billing.CheckoutOptions{PriceID: "price_pack", Quantity: 2}, noOpt)
				if m, ok := w.Synced(); ok {
					assert.Equal(w.T, int64(200), m.Credits, "the return page grants at once")
				}
			},
			Want: func(w *World) billing.Membership {
				return billing.Membership{UserID: w.User, Credits: 200, HasCustomer: true}
			},
			MaxInOrderCalls: 0,
			Changes:         []billing.ChangeKind{billing.ChangeCreditsGranted},
		},
		{
			// Signed events that billing cannot store or make sense of are
			// parked with a reason (200), never answered 500 forever, and
			// change nothing, on every store.
			Name: "unstorable_events_are_parked",
			Run: func(w *World) {
				w.Checkout(pro, noOpt)
				cus := w.Stripe.Subscription(w.Sub).Customer.ID
				canceled := objectOf(w, w.Stripe.Subscription(w.Sub))
				canceled["status"] = "canceled"
				session := func(customer any, ref, quantity string) map[string]any {
					return map[string]any{"id": "cs_test_" + strings.ReplaceAll(quantity, "-", "m") + fmt.Sprint(len(ref)), "object": "checkout.session",
						"mode": "payment", "status": "complete", "payment_status": "paid", "customer": customer,
						"client_reference_id": ref, "amount_total": 500, "currency": "usd",
						"metadata": map[string]string{"billing_price_id": "price_pack", "billing_quantity": quantity}}
				}
				for name, e := range map[string]billingtest.Event{
					"created 0":                    w.Stripe.NewEvent("customer.subscription.updated", canceled).StampedAt(0),
					"NUL in client_reference_id":   w.Stripe.NewEvent("checkout.session.completed", session(nil, "user\x00evil", "1")),
					"quantity -5":                  w.Stripe.NewEvent("checkout.session.completed", session(cus, w.User, "-5")),
					"quantity in fullwidth digits": w.Stripe.NewEvent("checkout.session.completed", session(cus, w.User, "\uff13")),
					"credits overflow":             w.Stripe.NewEvent("checkout.session.completed", session(cus, w.User, "92233720368547759")),
					"NUL in the event ID":          withEventID(w.Stripe.NewEvent("customer.subscription.updated", canceled), "evt_\x00nul"),
				} {
					code, body := w.Post(e)
					assert.Equal(w.T, http.StatusOK, code, name)
					assert.JSONEq(w.T, `{"outcome":"parked"}`, body, name)
				}
			},
			Want:            func(w *World) billing.Membership { return active(w, "pro", "price_pro") },
			MaxInOrderCalls: 0,
			Changes:         []billing.ChangeKind{billing.ChangeActivated},
		},
		{
			Name: "one_time_delayed_payment",
			Run: func(w *World) {
				w.Checkout(billing.CheckoutOptions{PriceID: "price_pack"}, billingtest.BankDebit)
				if m, ok := w.Synced(); ok {
					assert.Equal(w.T, int64(0), m.Credits, "nothing is granted before the money arrives")
				}
				w.Advance(2 * days) // the debit settles
			},
			Want: func(w *World) billing.Membership {
				return billing.Membership{UserID: w.User, Credits: 100, HasCustomer: true}
			},
			MaxInOrderCalls: 0,
			Changes:         []billing.ChangeKind{billing.ChangeCreditsGranted},
		},
	}
}

var _ fmt.Stringer = Mode("")

// objectOf turns one of the offline Stripe's objects into a JSON object
// a lifecycle can change before wrapping it in an event.
func objectOf(w *World, v any) map[string]any {
	b, err := json.Marshal(v)
	require.NoError(w.T, err)
	var m map[string]any
	require.NoError(w.T, json.Unmarshal(b, &m))
	return m
}

// withEventID gives e another ID, in its JSON too.
func withEventID(e billingtest.Event, id string) billingtest.Event {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(e.JSON, &m); err != nil {
		panic(err)
	}
	m["id"], _ = json.Marshal(id)
	e.ID = id
	e.JSON, _ = json.Marshal(m)
	return e
}
