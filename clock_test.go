package billing_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
)

func TestSystemClockSleep(t *testing.T) {
	t.Parallel()
	var c billing.SystemClock
	require.NoError(t, c.Sleep(context.Background(), 0))
	require.NoError(t, c.Sleep(context.Background(), -time.Second))

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, c.Sleep(canceled, time.Hour), context.Canceled)

	// A wait that would outlast the deadline is not started: it fails at
	// once (an hour's wait would time the test out otherwise).
	short, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	assert.ErrorIs(t, c.Sleep(short, time.Hour), context.DeadlineExceeded)
}

// A retry that would outlast the request's deadline is not waited for:
// billing gives up at once with both errors, so a handler's deadline holds
// with retries included.
func TestStripeRetriesStopAtTheDeadline(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t, func(c *billing.Config) { c.Clock = billing.SystemClock{} })
	e.fake.SetFail("POST /v1/checkout/sessions", http.StatusConflict, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := e.b.Checkout(ctx, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	var be *billing.StripeError
	require.ErrorAs(t, err, &be, "the conflict is reported with the deadline")
	assert.Equal(t, 1, e.calls("POST /v1/checkout/sessions"), "the 0.5 s pause would pass the deadline: no retry")
}

// Retries wait on the injected clock: with billingtest's, the simulated
// time moves and the test does not sleep.
func TestStripeRetriesWaitOnTheClock(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	e.fake.SetFail("POST /v1/checkout/sessions", http.StatusTooManyRequests, 2)
	before := e.fake.Now()
	e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	assert.Equal(t, 3, e.calls("POST /v1/checkout/sessions"))
	assert.GreaterOrEqual(t, e.fake.Now().Sub(before), 1500*time.Millisecond, "0.5 s, then 1 s")

	t.Run("none with MaxRetries -1", func(t *testing.T) {
		e := newCoEnv(t, func(c *billing.Config) { c.MaxRetries = -1 })
		e.fake.SetFail("POST /v1/checkout/sessions", http.StatusConflict, 1)
		_, err := e.b.Checkout(context.Background(), "u1", billing.CheckoutOptions{PriceID: "price_pro"})
		require.Error(t, err)
		assert.Equal(t, 1, e.calls("POST /v1/checkout/sessions"))
	})

	t.Run("a list is retried", func(t *testing.T) {
		e := newCoEnv(t)
		e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
		e.fake.SetFail("GET /v1/subscriptions", http.StatusBadGateway, 1)
		_, err := e.b.Sync(context.Background(), "u1")
		require.NoError(t, err)
		assert.Equal(t, 2, e.calls("GET /v1/subscriptions"))
	})
}
