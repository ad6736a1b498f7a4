package billing_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/memstore"
)

func hookStats(t *testing.T, b *billing.Billing) billing.OutboxStats {
	t.Helper()
	st, err := b.HookStats(context.Background())
	require.NoError(t, err)
	st.OldestPending = time.Time{}
	return st
}

// 27, run2#9: CancelSecond with no handler records billing's tasks only.
func TestEdgeTasksWithoutHandler(t *testing.T) {
	e := newCoEnv(t, func(c *billing.Config) { c.SecondSubscription = billing.CancelSecond })
	buy(t, e, "u1")
	assert.Equal(t, billing.OutboxStats{Pending: 1}, hookStats(t, e.b), "the expire task only")
	assert.Equal(t, 1, dispatch(t, e.b))
}

// MaxBackoff below Backoff is raised to Backoff.
func TestEdgeMaxBackoffRaised(t *testing.T) {
	l := &hookLog{fail: map[billing.ChangeKind]int{billing.ChangeActivated: 1}}
	e := newCoEnv(t, withHooks(l, billing.Hooks{Backoff: time.Minute, MaxBackoff: 30 * time.Second}))
	buy(t, e, "u1")
	dispatch(t, e.b)
	e.fake.Sleep(context.Background(), 30*time.Second)
	dispatch(t, e.b)
	assert.Len(t, l.all(), 1, "not retried before Backoff")
}

// the second retry waits twice the first.
func TestEdgeBackoffDoubles(t *testing.T) {
	l := &hookLog{fail: map[billing.ChangeKind]int{billing.ChangeActivated: 2}}
	e := newCoEnv(t, withHooks(l, billing.Hooks{Backoff: time.Minute}))
	buy(t, e, "u1")
	dispatch(t, e.b)
	e.fake.Sleep(context.Background(), time.Minute)
	dispatch(t, e.b)
	require.Len(t, l.all(), 2)
	e.fake.Sleep(context.Background(), time.Minute)
	dispatch(t, e.b)
	assert.Len(t, l.all(), 2, "second retry after 2m, not 1m")
}

// a delivery cut short by shutdown is not a failed attempt.
func TestEdgeShutdownIsNotAFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h := billing.ChangeHandlerFunc(func(hctx context.Context, c billing.Change) error { cancel(); return hctx.Err() })
	e := newCoEnv(t, func(c *billing.Config) { c.Hooks = billing.Hooks{Handler: h, MaxAttempts: 1} })
	buy(t, e, "u1")
	_, err := e.b.DispatchHooks(ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, hookStats(t, e.b).Dead)
}

// an undecodable entry is dead at once.
func TestEdgeUndecodableDead(t *testing.T) {
	store := memstore.New()
	e := newCoEnvWith(t, store, users, withHooks(&hookLog{}, billing.Hooks{}))
	require.NoError(t, store.Apply(context.Background(), "", func(ctx context.Context, tx billing.Tx) error {
		_, err := tx.(billing.OutboxTx).Record(ctx, billing.OutboxEntry{Key: "bad/1", UserID: "u9", Kind: "activated", Payload: []byte("{"), RecordedAt: e.fake.Now().Truncate(time.Second)})
		return err
	}))
	dispatch(t, e.b)
	assert.Equal(t, billing.OutboxStats{Dead: 1}, hookStats(t, e.b))
}

// the handler's context ends with the claim.
func TestEdgeHandlerDeadline(t *testing.T) {
	var has bool
	var dl time.Time
	h := billing.ChangeHandlerFunc(func(ctx context.Context, c billing.Change) error { dl, has = ctx.Deadline(); return nil })
	e := newCoEnv(t, func(c *billing.Config) { c.Hooks = billing.Hooks{Handler: h, Claim: time.Minute} })
	buy(t, e, "u1")
	dispatch(t, e.b)
	require.True(t, has)
	assert.WithinDuration(t, time.Now().Add(time.Minute), dl, 10*time.Second)
}

// 49, 50, run2#11
func TestEdgeDeadHooksArgs(t *testing.T) {
	l := &hookLog{fail: map[billing.ChangeKind]int{billing.ChangeActivated: -1}}
	e := newCoEnv(t, withHooks(l, billing.Hooks{MaxAttempts: 1}))
	buy(t, e, "u1")
	dispatch(t, e.b)
	_, _, err := e.b.DeadHooks(context.Background(), "-1", 10)
	assert.ErrorIs(t, err, billing.ErrInvalidArgument, "negative cursor")
	dead, next, err := e.b.DeadHooks(context.Background(), "", 0)
	require.NoError(t, err)
	require.Len(t, dead, 1, "limit 0: the default")
	assert.Empty(t, next)
	assert.Equal(t, 1, dead[0].Change.Delivery)
}

// a change recorded before the app removed its handler is settled silently.
func TestEdgeNilHandlerLeftovers(t *testing.T) {
	store := memstore.New()
	e := newCoEnvWith(t, store, users, withHooks(&hookLog{}, billing.Hooks{}))
	buy(t, e, "u1")
	b2, err := billing.New(billing.Config{SecretKey: coSecretKey, WebhookSecrets: []string{testSecret}, SiteURL: "https://app.example",
		Plans: goodTestConfig().Plans, Clock: e.fake, StripeURL: e.fake.URL(), SecondSubscription: billing.CancelSecond}, store, users)
	require.NoError(t, err)
	dispatch(t, b2)
	assert.Equal(t, billing.OutboxStats{}, hookStats(t, b2))
}

// subscribing again after a cancellation is not a second subscription.
func TestEdgeResubscribeNotSecond(t *testing.T) {
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}))
	sub := buy(t, e, "u1")
	e.deliver(t, must(e.fake.CancelNow(sub))...)
	buy(t, e, "u1")
	dispatch(t, e.b)
	assert.NotContains(t, l.kinds(), billing.ChangeSecondSubscription)
	assert.NotContains(t, e.logs.String(), "second live subscription")
}

// run2#6: starting a trial announces no trial end.
func TestEdgeTrialStartNoTrialEnding(t *testing.T) {
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}))
	cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro", TrialDays: 14})
	e.deliver(t, e.complete(t, cs.ID, billingtest.CardOK)...)
	dispatch(t, e.b)
	assert.Equal(t, []billing.ChangeKind{billing.ChangeActivated}, l.kinds())
}

// run2#12: an expiry that fails is retried.
func TestEdgeExpireFailureRetried(t *testing.T) {
	e := newCoEnv(t, withHooks(&hookLog{}, billing.Hooks{Backoff: time.Minute}))
	first := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
	elsewhere := e.sessionAtStripe(t, e.customerOf(t, "u1"), "price_pro")
	e.deliver(t, e.complete(t, first.ID, billingtest.CardOK)...)
	e.fake.SetFail("POST /v1/checkout/sessions/{id}/expire", http.StatusInternalServerError, 10)
	dispatch(t, e.b)
	assert.Equal(t, billing.OutboxStats{Pending: 1}, hookStats(t, e.b), "the expiry waits for a retry")
	e.fake.SetFail("POST /v1/checkout/sessions/{id}/expire", http.StatusInternalServerError, 0)
	e.fake.Sleep(context.Background(), time.Hour)
	dispatch(t, e.b)
	assert.Equal(t, stripe.CheckoutSessionStatusExpired, e.fake.CheckoutSession(elsewhere).Status)
}

// refunded by hand first; keys and reason.
func TestEdgeCancelSecondDetails(t *testing.T) {
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}), func(c *billing.Config) { c.SecondSubscription = billing.CancelSecond })
	basic := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
	other := e.sessionAtStripe(t, e.customerOf(t, "u1"), "price_pro")
	e.deliver(t, e.complete(t, basic.ID, billingtest.CardOK)...)
	evs, err := e.fake.Pay(other, billingtest.CardOK)
	require.NoError(t, err)
	e.deliver(t, evs.Events...)
	second := e.subscriptionOf(t, other)
	n := len(e.fake.Events())
	dispatch(t, e.b)
	assert.Equal(t, billing.OutboxStats{}, hookStats(t, e.b))
	keys := map[string]string{}
	for _, ev := range e.fake.Events()[n:] {
		var v struct {
			Request struct {
				Key string `json:"idempotency_key"`
			} `json:"request"`
		}
		require.NoError(t, json.Unmarshal(ev.JSON, &v))
		keys[ev.Type] = v.Request.Key
	}
	assert.Equal(t, "billing-cancel-second-"+second, keys["customer.subscription.deleted"])
	assert.True(t, strings.HasPrefix(keys["charge.refunded"], "billing-refund-second-"+second+"-"), keys["charge.refunded"])
	for r, err := range e.otherDevice().V1Refunds.List(context.Background(), &stripe.RefundListParams{}) {
		require.NoError(t, err)
		assert.Equal(t, stripe.RefundReasonDuplicate, r.Reason)
	}
}

func TestEdgeAlreadyRefundedSkipped(t *testing.T) {
	e := newCoEnv(t, withHooks(&hookLog{}, billing.Hooks{}), func(c *billing.Config) { c.SecondSubscription = billing.CancelSecond })
	basic := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
	other := e.sessionAtStripe(t, e.customerOf(t, "u1"), "price_pro")
	e.deliver(t, e.complete(t, basic.ID, billingtest.CardOK)...)
	evs, err := e.fake.Pay(other, billingtest.CardOK)
	require.NoError(t, err)
	e.deliver(t, evs.Events...)
	inv := e.fake.Subscription(e.subscriptionOf(t, other)).LatestInvoice.ID
	for ip, err := range e.otherDevice().V1InvoicePayments.List(context.Background(), &stripe.InvoicePaymentListParams{Invoice: stripe.String(inv)}) {
		require.NoError(t, err)
		_, err = e.otherDevice().V1Refunds.Create(context.Background(), &stripe.RefundCreateParams{PaymentIntent: stripe.String(ip.Payment.PaymentIntent.ID)})
		require.NoError(t, err)
	}
	dispatch(t, e.b)
	assert.Equal(t, billing.OutboxStats{}, hookStats(t, e.b), "refunded by hand: the task is done")
}

// Without hooks, metrics or INFO lines nothing records a dispute, and it
// makes no Stripe call; at INFO its change is logged (the charge fetched
// to name the user).
func TestEdgeDisputeWithoutHooksNoCall(t *testing.T) {
	e := newCoEnv(t, func(c *billing.Config) { c.Logger = slog.New(slog.DiscardHandler) })
	_, evs := packBought(t, e, billingtest.CardDisputed)
	e.deliver(t, evs...)
	assert.Zero(t, e.calls("GET /v1/charges/{id}"))

	info := newCoEnv(t)
	_, evs = packBought(t, info, billingtest.CardDisputed)
	info.deliver(t, evs...)
	assert.Equal(t, 1, info.calls("GET /v1/charges/{id}"))
	assert.Contains(t, info.logs.String(), "kind=dispute_opened")
}

// ReplayHook wakes RunHooks.
func TestEdgeReplayWakes(t *testing.T) {
	l := &hookLog{fail: map[billing.ChangeKind]int{billing.ChangeActivated: 1}}
	got := make(chan struct{}, 10)
	h := billing.ChangeHandlerFunc(func(ctx context.Context, c billing.Change) error {
		err := l.HandleChange(ctx, c)
		got <- struct{}{}
		return err
	})
	slept := make(chan struct{}, 10)
	e := newCoEnv(t, func(c *billing.Config) {
		c.Hooks = billing.Hooks{Handler: h, Poll: time.Hour, MaxAttempts: 1}
		c.Clock = tellingClock{blockingClock{c.Clock}, slept}
	})
	sub := buy(t, e, "u1")
	dispatch(t, e.b) // fails: dead
	<-got
	require.EqualValues(t, 1, hookStats(t, e.b).Dead)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.b.RunHooks(ctx) }()
	// RunHooks waits twice: first woken by the webhook's nudge left from
	// the purchase, then idle with nothing left to wake it.
	for range 2 {
		select {
		case <-slept:
		case <-time.After(10 * time.Second):
			t.Fatal("RunHooks did not wait")
		}
	}
	require.NoError(t, e.b.ReplayHook(context.Background(), "activated/"+sub))
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("replay did not wake RunHooks")
	}
	cancel()
	<-done
}

var _ = errors.New

// tellingClock says each time someone waits on it.
type tellingClock struct {
	blockingClock
	slept chan<- struct{}
}

func (c tellingClock) Sleep(ctx context.Context, d time.Duration) error {
	c.slept <- struct{}{}
	return c.blockingClock.Sleep(ctx, d)
}

func chargeOf(t *testing.T, evs []billingtest.Event) map[string]any {
	t.Helper()
	for _, ev := range evs {
		if ev.Type == "charge.refunded" {
			var v struct {
				Data struct {
					Object map[string]any `json:"object"`
				} `json:"data"`
			}
			require.NoError(t, json.Unmarshal(ev.JSON, &v))
			return v.Data.Object
		}
	}
	t.Fatal("no charge.refunded")
	return nil
}

// a charge.refunded with nothing refunded records nothing.
func TestEdgeZeroRefund(t *testing.T) {
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}))
	pi, evs := packBought(t, e, billingtest.CardOK)
	e.deliver(t, evs...)
	ch := chargeOf(t, refundAtStripe(t, e, pi, 100))
	ch["amount_refunded"] = 0
	e.deliver(t, e.fake.NewEvent("charge.refunded", ch))
	dispatch(t, e.b)
	assert.NotContains(t, l.kinds(), billing.ChangeRefunded)
}

// the same amount refunded again (another event, after pruning) is no new change.
func TestEdgeSameRefundAfterPrune(t *testing.T) {
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}))
	pi, evs := packBought(t, e, billingtest.CardOK)
	e.deliver(t, evs...)
	revs := refundAtStripe(t, e, pi, 100)
	e.deliver(t, revs...)
	dispatch(t, e.b)
	_, err := e.b.PruneHooks(context.Background(), e.fake.Now().Add(time.Hour))
	require.NoError(t, err)
	e.fake.Sleep(context.Background(), time.Minute)
	e.deliver(t, e.fake.NewEvent("charge.refunded", chargeOf(t, revs)))
	dispatch(t, e.b)
	assert.Equal(t, 1, countKind(l.kinds(), billing.ChangeRefunded))
}
