// Package testcatalog is what billing's own tests sell: the plans and an
// offline Stripe that sells them.
package testcatalog

import (
	"testing"
	"time"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
)

// Plans is what the tests sell: basic and pro monthly, lowest tier
// first, and a one-time pack of 100 credits.
func Plans() []billing.Plan {
	return []billing.Plan{
		{PriceID: "price_basic", Tier: "basic"},
		{PriceID: "price_pro", Tier: "pro"},
		{PriceID: "price_pack", Kind: billing.OneTime, Credits: 100},
	}
}

// NewStripe starts an offline Stripe at start selling [Plans]' prices;
// its clock moves when the test advances it (the steps in steps.go). It
// is closed when the test ends.
func NewStripe(t testing.TB, start time.Time) *billingtest.Stripe {
	fake := billingtest.New(billingtest.Options{Start: start})
	t.Cleanup(fake.Close)
	fake.AddPrice("price_basic", "month", 900)
	fake.AddPrice("price_pro", "month", 2900)
	fake.AddPrice("price_pack", "", 500)
	return fake
}
