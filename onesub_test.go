package billing_test

import (
	"context"
	"errors"
	"net/http"
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
	e := newCoEnv(t)
	basic := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
	pro := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro", AllowAnotherSubscription: true})
	assert.Equal(t, stripe.CheckoutSessionStatusOpen, e.fake.CheckoutSession(basic.ID).Status)
	e.deliver(t, e.complete(t, basic.ID, billingtest.CardOK)...)
	e.deliver(t, e.complete(t, pro.ID, billingtest.CardOK)...)
	customer := e.fake.CheckoutSession(pro.ID).Customer.ID
	assert.Len(t, e.fake.SubscriptionsOf(customer), 2)
	assert.Equal(t, "true", e.fake.Subscription(e.subscriptionOf(t, pro.ID)).Metadata["billing_allow_another"])
	assert.Empty(t, e.fake.Subscription(e.subscriptionOf(t, basic.ID)).Metadata["billing_allow_another"])
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
