package billing_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
)

// Plans may name their prices by lookup key: ResolveLookupKeys fills in
// the IDs of the active prices holding them, ten keys a request, and
// New refuses a plan left unresolved.
func TestResolveLookupKeys(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	sc := e.otherDevice()
	ctx := context.Background()
	want := map[string]string{}
	var plans []billing.Plan
	for i := range 11 {
		key := fmt.Sprintf("plan_%02d", i)
		p, err := sc.V1Prices.Create(ctx, &stripe.PriceCreateParams{Currency: stripe.String("usd"), UnitAmount: stripe.Int64(int64(100 + i)),
			LookupKey: stripe.String(key), Recurring: &stripe.PriceCreateRecurringParams{Interval: stripe.String("month")},
			ProductData: &stripe.PriceCreateProductDataParams{Name: stripe.String(key)}})
		require.NoError(t, err)
		want[key] = p.ID
		plans = append(plans, billing.Plan{LookupKey: key, Tier: key})
	}
	cfg := goodTestConfig()
	cfg.StripeURL = e.fake.URL()
	cfg.Plans = append(plans, billing.Plan{PriceID: "price_pack", Kind: billing.OneTime, Credits: 100})

	_, err := billing.New(cfg, noOutbox{nil}, users)
	require.ErrorIs(t, err, billing.ErrConfig)
	assert.Contains(t, err.Error(), "ResolveLookupKeys")

	e.fake.ResetCalls()
	resolved, err := billing.ResolveLookupKeys(ctx, cfg)
	require.NoError(t, err)
	assert.Equal(t, 2, e.calls("GET /v1/prices"), "ten keys a request")
	for _, p := range resolved.Plans[:11] {
		assert.Equal(t, want[p.LookupKey], p.PriceID)
	}
	assert.Equal(t, "price_pack", resolved.Plans[11].PriceID, "a plan with its ID is left as it is")
	assert.Empty(t, cfg.Plans[0].PriceID, "cfg itself is not changed")
	_, err = billing.New(resolved, noOutbox{nil}, users)
	require.NoError(t, err)

	missing := cfg
	missing.Plans = append([]billing.Plan{{LookupKey: "nobody_holds_it", Tier: "x"}}, cfg.Plans...)
	_, err = billing.ResolveLookupKeys(ctx, missing)
	require.ErrorIs(t, err, billing.ErrConfig)
	assert.Contains(t, err.Error(), "nobody_holds_it")
	assert.Contains(t, err.Error(), "billing setup")
}

// Stripe out of reach: the error, and the config unchanged; billing never
// guesses a price.
func TestResolveLookupKeysUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	cfg := goodTestConfig()
	cfg.StripeURL = "http://" + addr
	cfg.Plans = []billing.Plan{{LookupKey: "pro_monthly", Tier: "pro"}}
	got, err := billing.ResolveLookupKeys(context.Background(), cfg)
	var se *billing.StripeError
	require.True(t, errors.As(err, &se), "a *StripeError: %v", err)
	assert.Equal(t, cfg.Plans, got.Plans)
	assert.NotContains(t, err.Error(), cfg.SecretKey)
}
