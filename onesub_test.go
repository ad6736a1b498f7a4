package billing_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
)

// One subscription per user: Checkout for another plan in another tab
// expires the first tab's session, so that only one can be paid.
func TestTwoTabsTwoPrices(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	basic := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
	pro := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	assert.NotEqual(t, basic.ID, pro.ID)
	assert.Equal(t, stripe.CheckoutSessionStatusExpired, e.fake.CheckoutSession(basic.ID).Status)
	assert.Equal(t, 1, e.calls("POST /v1/checkout/sessions/{id}/expire"))

	_, err := e.fake.Pay(basic.ID, billingtest.CardOK)
	require.ErrorIs(t, err, billingtest.ErrSessionNotOpen, "the first tab cannot be paid")
	e.deliver(t, e.complete(t, pro.ID, billingtest.CardOK)...)
	customer := e.fake.CheckoutSession(pro.ID).Customer.ID
	assert.Len(t, e.fake.SubscriptionsOf(customer), 1, "one subscription, one charge")
	m, err := e.b.Membership(context.Background(), "u1")
	require.NoError(t, err)
	assert.Equal(t, "pro", m.Tier)
}

// The same Checkout again, minutes later, is the same session: paying
// either tab pays once.
func TestSamePriceMinutesApart(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	first := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	e.fake.Advance(5 * time.Minute) // past the idempotency window
	again := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	assert.Equal(t, first, again, "the open session is reused")
	assert.Equal(t, 1, e.calls("POST /v1/checkout/sessions"))
	assert.Zero(t, e.calls("POST /v1/checkout/sessions/{id}/expire"))

	// Any parameter that differs makes a new session, and the old one goes.
	trial := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro", TrialDays: 7})
	assert.NotEqual(t, first.ID, trial.ID)
	assert.Equal(t, stripe.CheckoutSessionStatusExpired, e.fake.CheckoutSession(first.ID).Status)
}

// An app that allows a second subscription gets one: nothing is expired,
// and the subscription carries the allowance for the webhook path.
func TestAllowedSecondSubscription(t *testing.T) {
	t.Parallel()
	for name, mod := range map[string]func(*billing.Config){
		"report": func(*billing.Config) {},
		"cancel second, with hooks": func(c *billing.Config) {
			c.SecondSubscription = billing.CancelSecond
			c.Hooks = billing.Hooks{Handler: &hookLog{}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newCoEnv(t, mod)
			basic := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
			pro := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro", AllowAnotherSubscription: true})
			assert.Equal(t, stripe.CheckoutSessionStatusOpen, e.fake.CheckoutSession(basic.ID).Status)
			e.deliver(t, e.complete(t, basic.ID, billingtest.CardOK)...)
			if _, err := e.b.DispatchHooks(context.Background()); !errors.Is(err, billing.ErrNoHooks) {
				require.NoError(t, err)
			}
			assert.Equal(t, stripe.CheckoutSessionStatusOpen, e.fake.CheckoutSession(pro.ID).Status, "allowed: not expired")
			e.deliver(t, e.complete(t, pro.ID, billingtest.CardOK)...)
			if _, err := e.b.DispatchHooks(context.Background()); !errors.Is(err, billing.ErrNoHooks) {
				require.NoError(t, err)
			}
			customer := e.fake.CheckoutSession(pro.ID).Customer.ID
			assert.Len(t, e.fake.SubscriptionsOf(customer), 2)
			for _, s := range e.fake.SubscriptionsOf(customer) {
				assert.Equal(t, stripe.SubscriptionStatusActive, e.fake.Subscription(s).Status, "nothing canceled")
			}
			assert.Zero(t, e.calls("POST /v1/refunds"))
			assert.Empty(t, warnLines(e.logs.String(), "second live subscription"))
			assert.Equal(t, "true", e.fake.Subscription(e.subscriptionOf(t, pro.ID)).Metadata["billing_allow_another"])
			assert.Empty(t, e.fake.Subscription(e.subscriptionOf(t, basic.ID)).Metadata["billing_allow_another"])
		})
	}
}

// Expiring is a Stripe write: its failure fails the Checkout (and makes
// no session); a session that is no longer open (Stripe's 400) is left.
func TestCheckoutExpireFailures(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
	e.fake.SetFail("POST /v1/checkout/sessions/{id}/expire", http.StatusInternalServerError, 10)
	_, err := e.b.Checkout(ctx, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	var se *billing.StripeError
	require.True(t, errors.As(err, &se), "%v", err)
	assert.Equal(t, 1, e.calls("POST /v1/checkout/sessions"), "no second session")

	e.fake.SetFail("POST /v1/checkout/sessions/{id}/expire", http.StatusBadRequest, 1)
	pro, err := e.b.Checkout(ctx, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	require.NoError(t, err, "a session no longer open is not an error")
	assert.NotEmpty(t, pro.URL)
}

// Two devices racing past the check (or a session made outside billing)
// leave the user with two live subscriptions: the webhook path reports
// it with a WARN line naming both, once per subscription that went live.
func TestSecondSubscriptionDetected(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	basic := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
	customer := e.customerOf(t, "u1")
	other := e.sessionAtStripe(t, customer, "price_pro")
	e.deliver(t, e.complete(t, basic.ID, billingtest.CardOK)...)
	assert.NotContains(t, e.logs.String(), "second live subscription", "one is not two")
	evs := e.complete(t, other, billingtest.CardOK)
	e.deliver(t, evs...)
	e.deliver(t, evs...)     // redelivered: reported once
	for _, ev := range evs { // the same change again under another event ID: not a new one
		if ev.Type == "customer.subscription.updated" {
			ev.JSON = bytes.Replace(ev.JSON, []byte(ev.ID), []byte(ev.ID+"x"), 1)
			ev.ID += "x"
			e.deliver(t, ev)
		}
	}
	first, second := e.subscriptionOf(t, basic.ID), e.subscriptionOf(t, other)
	lines := warnLines(e.logs.String(), "second live subscription")
	require.Len(t, lines, 1, e.logs.String())
	assert.Contains(t, lines[0], "user=u1")
	assert.Contains(t, lines[0], "subscription="+second)
	assert.Contains(t, lines[0], first)
}

// A second subscription the app allowed is not reported.
func TestAllowedSecondSubscriptionNotReported(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	basic := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
	e.deliver(t, e.complete(t, basic.ID, billingtest.CardOK)...)
	pro := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro", AllowAnotherSubscription: true})
	e.deliver(t, e.complete(t, pro.ID, billingtest.CardOK)...)
	assert.Empty(t, warnLines(e.logs.String(), "second live subscription"))
	m, err := e.b.Membership(context.Background(), "u1")
	require.NoError(t, err)
	assert.Equal(t, "pro", m.Tier)
}

// sessionAtStripe makes a subscription-mode Checkout Session for customer
// directly at Stripe, as another device or another program would.
func (e *coEnv) sessionAtStripe(t *testing.T, customer, price string) string {
	t.Helper()
	cs, err := e.otherDevice().V1CheckoutSessions.Create(context.Background(), &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("subscription"), Customer: stripe.String(customer), SuccessURL: stripe.String("https://app.example/ok"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String(price), Quantity: stripe.Int64(1)}}})
	require.NoError(t, err)
	return cs.ID
}

// warnLines returns the WARN lines of a text log that contain s.
func warnLines(log, s string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// The webhook late: the second subscription's events arrive before the
// first's. The report then names the first as the newcomer; either way
// both subscriptions are in the one line.
func TestSecondSubscriptionWebhookLate(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	basic := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
	customer := e.customerOf(t, "u1")
	other := e.sessionAtStripe(t, customer, "price_pro")
	firstEvs := e.complete(t, basic.ID, billingtest.CardOK)
	e.deliver(t, e.complete(t, other, billingtest.CardOK)...)
	assert.Empty(t, warnLines(e.logs.String(), "second live subscription"))
	e.deliver(t, firstEvs...)
	lines := warnLines(e.logs.String(), "second live subscription")
	require.Len(t, lines, 1, e.logs.String())
	assert.Contains(t, lines[0], e.subscriptionOf(t, basic.ID))
	assert.Contains(t, lines[0], e.subscriptionOf(t, other))
}

// A subscription made outside Checkout (the Dashboard, a script) beside a
// live one is reported too.
func TestSecondSubscriptionMadeOutsideCheckout(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	basic := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
	e.deliver(t, e.complete(t, basic.ID, billingtest.CardOK)...)
	n := len(e.fake.Events())
	sub, err := e.otherDevice().V1Subscriptions.Create(context.Background(), &stripe.SubscriptionCreateParams{
		Customer:             stripe.String(e.customerOf(t, "u1")),
		DefaultPaymentMethod: stripe.String(e.fake.Subscription(e.subscriptionOf(t, basic.ID)).DefaultPaymentMethod.ID),
		Items:                []*stripe.SubscriptionCreateItemParams{{Price: stripe.String("price_pro")}}})
	require.NoError(t, err)
	e.deliver(t, e.fake.Events()[n:]...)
	lines := warnLines(e.logs.String(), "second live subscription")
	require.Len(t, lines, 1, e.logs.String())
	assert.Contains(t, lines[0], "subscription="+sub.ID)
	assert.Contains(t, lines[0], e.subscriptionOf(t, basic.ID))
}

// otherDevice is a Stripe client of another program on the same account.
func (e *coEnv) otherDevice() *stripe.Client {
	return stripe.NewClient("sk_test_otherdevice", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL: stripe.String(e.fake.URL()), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}})))
}

// Two devices at the same moment: each lists the user's open sessions
// before the other has made one (forced here: neither creates until both
// have listed), so both sessions stay open and both are paid. The webhook
// path then reports the second live subscription, once.
func TestTwoDevicesConcurrently(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic", TrialDays: 7}) // the customer exists
	var listed sync.WaitGroup
	listed.Add(2)
	e.rec.after = func(method, path string, _ int) {
		if method == http.MethodGet && path == "/v1/checkout/sessions" {
			listed.Done()
		}
	}
	e.rec.before = func(method, path string) {
		if method == http.MethodPost && path == "/v1/checkout/sessions" {
			listed.Wait()
		}
	}
	sessions := make([]billing.CheckoutSession, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, price := range []string{"price_basic", "price_pro"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sessions[i], errs[i] = e.b.Checkout(context.Background(), "u1", billing.CheckoutOptions{PriceID: price})
		}()
	}
	wg.Wait()
	e.rec.before, e.rec.after = nil, nil
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	for _, s := range sessions {
		require.Equal(t, stripe.CheckoutSessionStatusOpen, e.fake.CheckoutSession(s.ID).Status, "the race this cannot prevent")
	}
	e.deliver(t, e.complete(t, sessions[0].ID, billingtest.CardOK)...)
	e.deliver(t, e.complete(t, sessions[1].ID, billingtest.CardOK)...)
	assert.Len(t, e.fake.SubscriptionsOf(e.customerOf(t, "u1")), 2)
	lines := warnLines(e.logs.String(), "second live subscription")
	require.Len(t, lines, 1, e.logs.String())
	assert.Contains(t, lines[0], e.subscriptionOf(t, sessions[0].ID))
	assert.Contains(t, lines[0], e.subscriptionOf(t, sessions[1].ID))
}

// When a subscription goes live, the user's other open subscription-mode
// sessions are expired from the outbox (not inside the webhook), except
// one the app allowed.
func TestLiveSubscriptionExpiresOtherSessions(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}))
	first := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
	customer := e.customerOf(t, "u1")
	elsewhere := e.sessionAtStripe(t, customer, "price_pro") // another program's, say
	allowed := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro", AllowAnotherSubscription: true})
	e.deliver(t, e.complete(t, first.ID, billingtest.CardOK)...)
	assert.Equal(t, stripe.CheckoutSessionStatusOpen, e.fake.CheckoutSession(elsewhere).Status, "nothing is expired inside the webhook")
	assert.Zero(t, e.calls("POST /v1/checkout/sessions/{id}/expire"))

	dispatch(t, e.b)
	assert.Equal(t, stripe.CheckoutSessionStatusExpired, e.fake.CheckoutSession(elsewhere).Status)
	assert.Equal(t, stripe.CheckoutSessionStatusOpen, e.fake.CheckoutSession(allowed.ID).Status, "the app allowed it")
	assert.Equal(t, []billing.ChangeKind{billing.ChangeActivated}, l.kinds(), "billing's own writes are not the app's changes")
	_, err := e.fake.Pay(elsewhere, billingtest.CardOK)
	require.ErrorIs(t, err, billingtest.ErrSessionNotOpen)
}

// With CancelSecond, the subscription that went live second is canceled
// and refunded from the outbox; a refund that fails is retried after its
// backoff without canceling twice; the app hears of it once.
func TestSecondSubscriptionCanceledAndRefunded(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{Backoff: time.Minute}), func(c *billing.Config) { c.SecondSubscription = billing.CancelSecond })
	basic := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
	other := e.sessionAtStripe(t, e.customerOf(t, "u1"), "price_pro") // the second device
	e.deliver(t, e.complete(t, basic.ID, billingtest.CardOK)...)
	evs, err := e.fake.Pay(other, billingtest.CardOK) // paid before the expiry ran
	require.NoError(t, err)
	e.deliver(t, evs.Events...)
	first, second := e.subscriptionOf(t, basic.ID), e.subscriptionOf(t, other)
	require.Equal(t, stripe.SubscriptionStatusActive, e.fake.Subscription(second).Status, "nothing is canceled inside the webhook")

	e.fake.SetFail("POST /v1/refunds", http.StatusInternalServerError, 1)
	n := len(e.fake.Events())
	dispatch(t, e.b)
	assert.Equal(t, stripe.SubscriptionStatusCanceled, e.fake.Subscription(second).Status)
	assert.Equal(t, stripe.SubscriptionStatusActive, e.fake.Subscription(first).Status)
	assert.Equal(t, 1, e.calls("DELETE /v1/subscriptions/{id}"))
	refunds := func() []*stripe.Refund {
		var out []*stripe.Refund
		for r, err := range e.otherDevice().V1Refunds.List(context.Background(), &stripe.RefundListParams{}) {
			require.NoError(t, err)
			out = append(out, r)
		}
		return out
	}
	assert.Empty(t, refunds(), "the refund failed")

	e.fake.Sleep(context.Background(), time.Minute)
	dispatch(t, e.b)
	rs := refunds()
	require.Len(t, rs, 1)
	inv := e.fake.Invoice(e.fake.Subscription(second).LatestInvoice.ID)
	assert.Equal(t, inv.AmountPaid, rs[0].Amount, "what the second subscription charged")
	assert.Equal(t, "second_subscription", rs[0].Metadata["billing_reason"])
	assert.Equal(t, 1, e.calls("DELETE /v1/subscriptions/{id}"), "not canceled twice")
	dispatch(t, e.b)
	assert.Len(t, refunds(), 1, "refunded once")

	e.deliver(t, e.fake.Events()[n:]...) // the cancellation's events
	dispatch(t, e.b)
	kinds := l.kinds()
	assert.Equal(t, 1, countKind(kinds, billing.ChangeSecondSubscription))
	assert.Equal(t, 1, countKind(kinds, billing.ChangeEnded), "the second one ended")
	m, err := e.b.Membership(context.Background(), "u1")
	require.NoError(t, err)
	assert.Equal(t, "basic", m.Tier)
}

// Without CancelSecond, a second subscription is reported to the app and
// left alone.
func TestSecondSubscriptionReportedAsAChange(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}))
	basic := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
	other := e.sessionAtStripe(t, e.customerOf(t, "u1"), "price_pro")
	e.deliver(t, e.complete(t, basic.ID, billingtest.CardOK)...)
	e.deliver(t, e.complete(t, other, billingtest.CardOK)...)
	dispatch(t, e.b)
	var second billing.Change
	for _, c := range l.all() {
		if c.Kind == billing.ChangeSecondSubscription {
			second = c
		}
	}
	assert.Equal(t, e.subscriptionOf(t, other), second.SubscriptionID)
	assert.Equal(t, []string{e.subscriptionOf(t, basic.ID)}, second.OtherSubscriptions)
	assert.Zero(t, e.calls("DELETE /v1/subscriptions/{id}"))
	assert.Zero(t, e.calls("POST /v1/refunds"))
}

func countKind(ks []billing.ChangeKind, k billing.ChangeKind) int {
	n := 0
	for _, x := range ks {
		if x == k {
			n++
		}
	}
	return n
}

// A second subscription found beside a stale record (the first one's
// cancellation not delivered yet) is the user's only live one at Stripe:
// CancelSecond reads the others at Stripe before it cancels, and leaves
// it alone.
func TestCancelSecondChecksTheOthersAtStripe(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}), func(c *billing.Config) { c.SecondSubscription = billing.CancelSecond })
	basic := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
	other := e.sessionAtStripe(t, e.customerOf(t, "u1"), "price_pro")
	e.deliver(t, e.complete(t, basic.ID, billingtest.CardOK)...)
	first := e.subscriptionOf(t, basic.ID)
	_, err := e.fake.CancelNow(first) // its events are not delivered: the record stays live
	require.NoError(t, err)
	evs, err := e.fake.Pay(other, billingtest.CardOK)
	require.NoError(t, err)
	e.deliver(t, evs.Events...)
	second := e.subscriptionOf(t, other)

	dispatch(t, e.b)
	assert.Equal(t, 1, countKind(l.kinds(), billing.ChangeSecondSubscription), "reported, from the stored records")
	assert.Equal(t, stripe.SubscriptionStatusActive, e.fake.Subscription(second).Status, "the only live one is not canceled")
	assert.Zero(t, e.calls("DELETE /v1/subscriptions/{id}"))
	assert.Zero(t, e.calls("POST /v1/refunds"))
	lines := warnLines(e.logs.String(), "was not canceled")
	require.Len(t, lines, 1, e.logs.String())
	assert.Contains(t, lines[0], second)
}

// The check at Stripe counts any live status: a first subscription still
// in its trial is live, and the second is canceled.
func TestCancelSecondBesideATrial(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t, withHooks(&hookLog{}, billing.Hooks{}), func(c *billing.Config) { c.SecondSubscription = billing.CancelSecond })
	trial := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic", TrialDays: 14})
	other := e.sessionAtStripe(t, e.customerOf(t, "u1"), "price_pro")
	e.deliver(t, e.complete(t, trial.ID, billingtest.CardOK)...)
	evs, err := e.fake.Pay(other, billingtest.CardOK)
	require.NoError(t, err)
	e.deliver(t, evs.Events...)
	dispatch(t, e.b)
	assert.Equal(t, stripe.SubscriptionStatusTrialing, e.fake.Subscription(e.subscriptionOf(t, trial.ID)).Status)
	assert.Equal(t, stripe.SubscriptionStatusCanceled, e.fake.Subscription(e.subscriptionOf(t, other)).Status)
}
