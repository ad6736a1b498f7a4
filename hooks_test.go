package billing_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
	"github.com/gobilling/billing/memstore"
)

// hookLog is a ChangeHandler whose answer a test decides per kind.
type hookLog struct {
	mu   sync.Mutex
	got  []billing.Change
	fail map[billing.ChangeKind]int // failures left per kind (-1: always)
	hold chan struct{}              // when set, each delivery waits on it
}

func (l *hookLog) HandleChange(ctx context.Context, c billing.Change) error {
	if l.hold != nil {
		<-l.hold
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, c)
	if n := l.fail[c.Kind]; n != 0 {
		if n > 0 {
			l.fail[c.Kind] = n - 1
		}
		return fmt.Errorf("handler down for %s", c.Kind)
	}
	return nil
}

// kinds returns the kinds delivered (failed deliveries included).
func (l *hookLog) kinds() []billing.ChangeKind {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []billing.ChangeKind{}
	for _, c := range l.got {
		out = append(out, c.Kind)
	}
	return out
}

func (l *hookLog) all() []billing.Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]billing.Change(nil), l.got...)
}

func withHooks(l *hookLog, h billing.Hooks) func(*billing.Config) {
	return func(c *billing.Config) {
		h.Handler = l
		c.Hooks = h
	}
}

// buy has user pay for pro and delivers the events; it returns the
// subscription.
func buy(t *testing.T, e *coEnv, user string) string {
	t.Helper()
	cs := e.checkout(t, user, billing.CheckoutOptions{PriceID: "price_pro"})
	e.deliver(t, e.complete(t, cs.ID, billingtest.CardOK)...)
	return e.subscriptionOf(t, cs.ID)
}

func dispatch(t *testing.T, b *billing.Billing) int {
	t.Helper()
	n, err := b.DispatchHooks(context.Background())
	require.NoError(t, err)
	return n
}

// The webhook records; only the dispatcher delivers, with the change's
// facts and a stable key, and a second dispatch delivers nothing again.
func TestHooksDeliveredByTheDispatcher(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}))
	sub := buy(t, e, "u1")
	assert.Empty(t, l.kinds(), "nothing is delivered inside the webhook request")
	st, err := e.b.HookStats(context.Background())
	require.NoError(t, err)
	assert.Equal(t, int64(2), st.Pending, "the change, and billing's own expiry of the user's other sessions")

	require.Equal(t, 2, dispatch(t, e.b))
	got := l.all()
	require.Len(t, got, 1)
	c := got[0]
	assert.Equal(t, billing.ChangeActivated, c.Kind)
	assert.Equal(t, "activated/"+sub, c.Key)
	assert.Equal(t, "u1", c.UserID)
	assert.Equal(t, sub, c.SubscriptionID)
	assert.Equal(t, e.customerOf(t, "u1"), c.CustomerID)
	assert.Equal(t, billing.SubscriptionActive, c.Status)
	assert.Equal(t, "pro", c.Tier)
	assert.Equal(t, "price_pro", c.PriceID)
	assert.Equal(t, e.periodEnd(t, sub), c.CurrentPeriodEnd.UTC())
	assert.NotEmpty(t, c.EventID)
	assert.Equal(t, 1, c.Delivery)
	assert.Zero(t, dispatch(t, e.b), "delivered once")
}

// A failing handler is retried with backoff on the clock; the user's
// later changes wait behind it; the key stays the same.
func TestHooksRetriedWithBackoff(t *testing.T) {
	t.Parallel()
	l := &hookLog{fail: map[billing.ChangeKind]int{billing.ChangeActivated: 3}}
	e := newCoEnv(t, withHooks(l, billing.Hooks{Backoff: time.Minute, MaxBackoff: 3 * time.Minute}))
	sub := buy(t, e, "u1")
	e.deliver(t, must(e.fake.CancelAtPeriodEnd(sub))...)

	assert.Equal(t, 1, dispatch(t, e.b), "billing's own write goes; the app's change fails")
	assert.Equal(t, []billing.ChangeKind{billing.ChangeActivated}, l.kinds(), "the later change waits")
	for i, wait := range []time.Duration{time.Minute, 2 * time.Minute} {
		e.fake.Sleep(context.Background(), wait-time.Second)
		assert.Zero(t, dispatch(t, e.b))
		assert.Len(t, l.all(), i+1, "not delivered before its backoff")
		e.fake.Sleep(context.Background(), time.Second)
		assert.Zero(t, dispatch(t, e.b), "due, fails again")
		assert.Len(t, l.all(), i+2, "delivered once its backoff passed")
	}
	e.fake.Sleep(context.Background(), 3*time.Minute) // capped at MaxBackoff
	assert.Equal(t, 2, dispatch(t, e.b), "the fourth delivery succeeds, and releases the next change")
	got := l.all()
	require.Len(t, got, 5)
	for i, c := range got[:4] {
		assert.Equal(t, "activated/"+sub, c.Key, "the same key on every delivery")
		assert.Equal(t, i+1, c.Delivery)
	}
	assert.Equal(t, billing.ChangeCancellationScheduled, got[4].Kind)
	st, err := e.b.HookStats(context.Background())
	require.NoError(t, err)
	assert.Equal(t, billing.OutboxStats{}, st)
}

// A change that keeps failing is dead-lettered, releases the user's
// later changes, and can be listed, replayed and discarded; other users'
// changes never wait for it.
func TestHooksDeadLetters(t *testing.T) {
	t.Parallel()
	l := &hookLog{fail: map[billing.ChangeKind]int{billing.ChangeActivated: -1}}
	e := newCoEnv(t, withHooks(l, billing.Hooks{MaxAttempts: 2, Backoff: time.Minute}))
	sub := buy(t, e, "u1")
	e.deliver(t, must(e.fake.CancelAtPeriodEnd(sub))...)
	other := buy(t, e, "u2")

	assert.Equal(t, 2, dispatch(t, e.b), "both activations fail; billing's own writes go")
	e.fake.Sleep(context.Background(), time.Minute)
	assert.Equal(t, 1, dispatch(t, e.b), "dead after two; u1's cancellation goes")
	assert.Equal(t, []billing.ChangeKind{billing.ChangeActivated, billing.ChangeActivated, billing.ChangeActivated, billing.ChangeActivated, billing.ChangeCancellationScheduled}, l.kinds())
	assert.Contains(t, e.logs.String(), "billing: change dead-lettered")

	dead, next, err := e.b.DeadHooks(context.Background(), "", 1)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, "activated/"+sub, dead[0].Change.Key)
	assert.Equal(t, 2, dead[0].Attempts)
	assert.Equal(t, "handler down for activated", dead[0].LastError)
	require.NotEmpty(t, next)
	dead2, next, err := e.b.DeadHooks(context.Background(), next, 1)
	require.NoError(t, err)
	require.Len(t, dead2, 1)
	assert.Equal(t, "activated/"+other, dead2[0].Change.Key)
	assert.Empty(t, next)
	_, _, err = e.b.DeadHooks(context.Background(), "x", 1)
	require.ErrorIs(t, err, billing.ErrInvalidArgument)

	l.mu.Lock()
	l.fail = nil // the handler is fixed
	l.mu.Unlock()
	require.NoError(t, e.b.ReplayHook(context.Background(), "activated/"+sub))
	require.ErrorIs(t, e.b.ReplayHook(context.Background(), "activated/"+sub), billing.ErrNotFound, "no longer dead")
	assert.Equal(t, 1, dispatch(t, e.b))
	last := l.all()[len(l.all())-1]
	assert.Equal(t, "activated/"+sub, last.Key)
	assert.Equal(t, 1, last.Delivery, "attempts start again")

	require.NoError(t, e.b.DiscardHook(context.Background(), "activated/"+other))
	require.ErrorIs(t, e.b.DiscardHook(context.Background(), "activated/"+other), billing.ErrNotFound)
	st, err := e.b.HookStats(context.Background())
	require.NoError(t, err)
	assert.Equal(t, billing.OutboxStats{}, st)

	n, err := e.b.PruneHooks(context.Background(), e.fake.Now().Add(time.Second))
	require.NoError(t, err)
	assert.Equal(t, int64(4), n, "the delivered entries: two changes and billing's two writes (the discarded one is gone)")
}

// A panicking handler is a failed delivery, not a crash.
func TestHooksPanicIsAFailure(t *testing.T) {
	t.Parallel()
	calls := 0
	h := billing.ChangeHandlerFunc(func(ctx context.Context, c billing.Change) error {
		calls++
		if calls == 1 {
			panic("boom")
		}
		return nil
	})
	e := newCoEnv(t, func(c *billing.Config) { c.Hooks = billing.Hooks{Handler: h, Backoff: time.Second} })
	buy(t, e, "u1")
	assert.Equal(t, 1, dispatch(t, e.b), "only billing's own write")
	e.fake.Sleep(context.Background(), time.Second)
	assert.Equal(t, 1, dispatch(t, e.b))
	assert.Equal(t, 2, calls)
}

// A replica that claimed a change and died does not block it: once the
// claim expires, another delivers it.
func TestHooksDeadReplicaClaimExpires(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	store := memstore.New()
	e := newCoEnvWith(t, store, users, withHooks(l, billing.Hooks{Claim: time.Minute}))
	buy(t, e, "u1")
	now := e.fake.Now().Truncate(time.Second)
	claimed, err := store.Claim(context.Background(), now, now.Add(time.Minute), 10) // the replica that dies
	require.NoError(t, err)
	require.Len(t, claimed, 2, "the change and billing's own write")
	assert.Zero(t, dispatch(t, e.b), "claimed")
	e.fake.Sleep(context.Background(), time.Minute)
	assert.Equal(t, 2, dispatch(t, e.b), "the claims expired")
	assert.Equal(t, []billing.ChangeKind{billing.ChangeActivated}, l.kinds())
}

// RunHooks delivers what the webhook of its process records without
// waiting for its poll, and stops with its context.
func TestRunHooksWokenByTheWebhook(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	delivered := make(chan struct{}, 10)
	h := billing.ChangeHandlerFunc(func(ctx context.Context, c billing.Change) error {
		err := l.HandleChange(ctx, c)
		delivered <- struct{}{}
		return err
	})
	e := newCoEnv(t, func(c *billing.Config) {
		c.Hooks = billing.Hooks{Handler: h, Poll: time.Hour}
		c.Clock = blockingClock{c.Clock}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.b.RunHooks(ctx) }()
	buy(t, e, "u1")
	select {
	case <-delivered:
	case <-time.After(30 * time.Second):
		t.Fatal("RunHooks did not deliver the change recorded by the webhook")
	}
	assert.Equal(t, []billing.ChangeKind{billing.ChangeActivated}, l.kinds())
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

// blockingClock waits on its context only: RunHooks sleeping on it wakes
// only when told.
type blockingClock struct{ billing.Clock }

func (blockingClock) Sleep(ctx context.Context, d time.Duration) error {
	<-ctx.Done()
	return ctx.Err()
}

// Hooks need a store with an outbox, and sane settings.
func TestHooksConfig(t *testing.T) {
	t.Parallel()
	h := billing.ChangeHandlerFunc(func(context.Context, billing.Change) error { return nil })
	for name, tc := range map[string]struct {
		store billing.Store
		hooks billing.Hooks
	}{
		"store without outbox": {noOutbox{memstore.New()}, billing.Hooks{Handler: h}},
		"negative backoff":     {memstore.New(), billing.Hooks{Handler: h, Backoff: -time.Second}},
		"negative attempts":    {memstore.New(), billing.Hooks{Handler: h, MaxAttempts: -1}},
	} {
		cfg := goodTestConfig()
		cfg.Hooks = tc.hooks
		_, err := billing.New(cfg, tc.store, users)
		require.ErrorIs(t, err, billing.ErrConfig, name)
	}
	b, err := billing.New(goodTestConfig(), noOutbox{memstore.New()}, users)
	require.NoError(t, err, "no hooks, no outbox needed")
	_, err = b.DispatchHooks(context.Background())
	require.ErrorIs(t, err, billing.ErrNoHooks)
	require.ErrorIs(t, b.RunHooks(context.Background()), billing.ErrNoHooks)
}

type noOutbox struct{ billing.Store }

func goodTestConfig() billing.Config {
	return billing.Config{SecretKey: coSecretKey, WebhookSecrets: []string{testSecret}, SiteURL: "https://app.example", Plans: testcatalog.Plans()}
}

// Each kind of change, recorded once per transition, through a long life:
// renewals, failures (each attempt once, the next try given), the lock,
// recovery, a plan change, a cancellation scheduled and undone, the end.
func TestHooksKindsThroughALife(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}))
	sub := buy(t, e, "u1")
	cus := e.customerOf(t, "u1")
	e.deliver(t, must(testcatalog.Renew(e.fake, sub))...)
	require.NoError(t, testcatalog.SetCardFailing(e.fake, cus, true))
	e.deliver(t, must(testcatalog.Renew(e.fake, sub))...)
	e.deliver(t, must(testcatalog.Retry(e.fake, sub))...)
	e.deliver(t, must(testcatalog.Retry(e.fake, sub))...)
	require.NoError(t, testcatalog.SetCardFailing(e.fake, cus, false))
	e.deliver(t, must(testcatalog.Retry(e.fake, sub))...)
	e.deliver(t, must(e.fake.ChangePrice(sub, "price_basic"))...)
	e.deliver(t, must(e.fake.CancelAtPeriodEnd(sub))...)
	e.deliver(t, must(e.fake.Uncancel(sub))...)
	e.deliver(t, must(e.fake.CancelNow(sub))...)
	dispatch(t, e.b)

	assert.Equal(t, []billing.ChangeKind{
		billing.ChangeActivated, billing.ChangeRenewed,
		billing.ChangePaymentFailed, billing.ChangePaymentFailed, billing.ChangePaymentFailed, billing.ChangeAccessLocked,
		billing.ChangeRenewed, billing.ChangeRecovered,
		billing.ChangePlanChanged, billing.ChangeCancellationScheduled, billing.ChangeCancellationUndone, billing.ChangeEnded,
	}, l.kinds())
	got := l.all()
	failed := got[2:5]
	for i, c := range failed {
		assert.Equal(t, int64(i+1), c.Attempt)
		assert.Equal(t, failed[0].InvoiceID, c.InvoiceID)
		assert.Equal(t, fmt.Sprintf("payment_failed/%s/%s/%d", sub, c.InvoiceID, i+1), c.Key)
	}
	assert.False(t, failed[0].NextPaymentAttempt.IsZero(), "Stripe retries after the first failure")
	lock := got[5]
	assert.Equal(t, int64(3), lock.Attempt)
	assert.Equal(t, billing.SubscriptionPastDue, lock.Status)
	recovered := got[7]
	assert.Equal(t, failed[0].InvoiceID, recovered.InvoiceID)
	plan := got[8]
	assert.Equal(t, "pro", plan.PreviousTier)
	assert.Equal(t, "basic", plan.Tier)
	assert.Equal(t, "price_basic", plan.PriceID)
	scheduled := got[9]
	assert.Equal(t, e.periodEnd(t, sub), scheduled.CancelAt.UTC())
	ended := got[11]
	assert.Equal(t, billing.SubscriptionCanceled, ended.Status)
	assert.Equal(t, billing.SubscriptionActive, ended.PreviousStatus)
}

// Credits granted, from the event or from the return page, are one change.
func TestHooksCreditsGrantedOnce(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}))
	cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pack", Quantity: 2})
	evs := e.complete(t, cs.ID, billingtest.CardOK)
	_, _, err := e.b.SyncCheckout(context.Background(), "u1", cs.ID)
	require.NoError(t, err)
	e.deliver(t, evs...)
	dispatch(t, e.b)
	got := l.all()
	require.Len(t, got, 1)
	assert.Equal(t, billing.ChangeCreditsGranted, got[0].Kind)
	assert.Equal(t, int64(200), got[0].Credits)
	assert.Equal(t, cs.ID, got[0].CheckoutSessionID)
	assert.Empty(t, got[0].EventID, "recorded by the return page")
}

// A change recorded in a transaction that then fails is not kept: the
// event is answered 5xx, and its redelivery records it once.
func TestHooksRecordedWithTheFacts(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	store := &failAtCommit{Store: memstore.New()}
	e := newCoEnvWith(t, store, users, withHooks(l, billing.Hooks{}))
	sub := buy(t, e, "u1")
	dispatch(t, e.b)
	evs := must(e.fake.CancelNow(sub))
	for _, ev := range evs {
		if ev.Type == "customer.subscription.deleted" {
			store.fail = ev.ID
		}
	}
	require.NotEmpty(t, store.fail)
	codes := map[string]int{}
	for _, ev := range evs {
		codes[ev.Type], _ = e.post(ev)
	}
	require.Equal(t, 500, codes["customer.subscription.deleted"])
	assert.Zero(t, dispatch(t, e.b), "the end was not stored, so not recorded")
	store.fail = ""
	e.deliver(t, evs...)
	dispatch(t, e.b)
	assert.Equal(t, []billing.ChangeKind{billing.ChangeActivated, billing.ChangeEnded}, l.kinds())
}

// failAtCommit fails the transaction of one event after its fn ran.
type failAtCommit struct {
	*memstore.Store
	fail string
}

func (s *failAtCommit) Apply(ctx context.Context, eventID string, fn func(context.Context, billing.Tx) error) error {
	return s.Store.Apply(ctx, eventID, func(ctx context.Context, tx billing.Tx) error {
		if err := fn(ctx, tx); err != nil {
			return err
		}
		if eventID != "" && eventID == s.fail {
			return errors.New("the database went away before the commit")
		}
		return nil
	})
}

func must(evs []billingtest.Event, err error) []billingtest.Event {
	if err != nil {
		panic(err)
	}
	return evs
}

// A trial that ends without a card pauses; resumed once a card is
// saved: paused and resumed, once each, after the trial's own changes.
func TestHooksPausedAndResumed(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}))
	customer := func() string {
		_, err := e.b.Checkout(context.Background(), "u1", billing.CheckoutOptions{PriceID: "price_pack"}) // makes the customer
		require.NoError(t, err)
		return e.customerOf(t, "u1")
	}()
	cs, err := e.otherDevice().V1CheckoutSessions.Create(context.Background(), &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("subscription"), Customer: stripe.String(customer), SuccessURL: stripe.String("https://app.example/ok"),
		PaymentMethodCollection: stripe.String("if_required"),
		LineItems:               []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_pro"), Quantity: stripe.Int64(1)}},
		SubscriptionData: &stripe.CheckoutSessionCreateSubscriptionDataParams{TrialPeriodDays: stripe.Int64(7),
			TrialSettings: &stripe.CheckoutSessionCreateSubscriptionDataTrialSettingsParams{
				EndBehavior: &stripe.CheckoutSessionCreateSubscriptionDataTrialSettingsEndBehaviorParams{
					MissingPaymentMethod: stripe.String("pause")}}},
	})
	require.NoError(t, err)
	e.deliver(t, e.complete(t, cs.ID, "")...)
	sub := e.subscriptionOf(t, cs.ID)
	e.deliver(t, e.fake.Advance(8*24*time.Hour)...)
	_, err = e.fake.UpdateCard(customer, billingtest.CardOK)
	require.NoError(t, err)
	n := len(e.fake.Events())
	_, err = e.otherDevice().V1Subscriptions.Resume(context.Background(), sub, nil)
	require.NoError(t, err)
	e.deliver(t, e.fake.Events()[n:]...)
	dispatch(t, e.b)
	assert.Equal(t, []billing.ChangeKind{billing.ChangeActivated, billing.ChangeTrialEnding, billing.ChangePaused, billing.ChangeResumed}, l.kinds())
	got := l.all()
	assert.Equal(t, "pro", got[1].Tier, "the trial's plan")
	assert.Equal(t, e.fake.Subscription(sub).TrialEnd, got[1].TrialEnd.Unix())
	assert.Equal(t, billing.SubscriptionTrialing, got[2].PreviousStatus)
	assert.Equal(t, billing.SubscriptionPaused, got[3].PreviousStatus)
	assert.Equal(t, billing.SubscriptionActive, got[3].Status)
}

// CatchUp of events the webhook applied, and Sync, record nothing again;
// CatchUp of events the webhook missed records their changes once.
func TestHooksCatchUpAndSyncRecordOnce(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}))
	start := e.fake.Now()
	sub := buy(t, e, "u1")
	missed := must(e.fake.CancelAtPeriodEnd(sub)) // never delivered
	require.NotEmpty(t, missed)
	_, err := e.b.CatchUp(context.Background(), start.Add(-time.Minute))
	require.NoError(t, err)
	_, err = e.b.CatchUp(context.Background(), start.Add(-time.Minute))
	require.NoError(t, err)
	_, err = e.b.Sync(context.Background(), "u1")
	require.NoError(t, err)
	dispatch(t, e.b)
	assert.Equal(t, []billing.ChangeKind{billing.ChangeActivated, billing.ChangeCancellationScheduled}, l.kinds())
}
