package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing/billingtest"
)

// plan is something the pricing page sells.
type plan struct {
	// Key names it in forms and element IDs: "pro-monthly".
	Key string
	// Name is the site's own name of it: "Pro", "100 credits".
	Name string
	// Tier is the membership tier it gives; empty for the credits pack.
	Tier    string
	PriceID string
	// Var is the environment variable that sets PriceID: "PRICE_PRO_MONTHLY".
	Var     string
	Credits int64

	// What Stripe says of the price, read at start-up (describePlans).
	// Currency is empty when Stripe could not be reached then: the pages
	// show no amount.

	// Product is the name of the price's product at Stripe.
	Product string
	// Amount is the price in the currency's smallest unit (cents).
	Amount   int64
	Currency string
	// Interval is "month" or "year" (or "week", "day") for a recurring
	// price, empty for a one-time price; IntervalCount how many of them a
	// period lasts. Until Stripe is read, the catalog's.
	Interval      string
	IntervalCount int64
}

// catalog is what the site sells: Basic and Pro, monthly and yearly, and
// a pack of 100 credits; a plan without a price ID is left out. Amounts
// come from Stripe (describePlans).
func catalog(p prices) []plan {
	all := []plan{
		{Key: "basic-monthly", Name: "Basic", Tier: "basic", Interval: "month", PriceID: p.BasicMonthly, Var: "PRICE_BASIC_MONTHLY"},
		{Key: "basic-yearly", Name: "Basic", Tier: "basic", Interval: "year", PriceID: p.BasicYearly, Var: "PRICE_BASIC_YEARLY"},
		{Key: "pro-monthly", Name: "Pro", Tier: "pro", Interval: "month", PriceID: p.ProMonthly, Var: "PRICE_PRO_MONTHLY"},
		{Key: "pro-yearly", Name: "Pro", Tier: "pro", Interval: "year", PriceID: p.ProYearly, Var: "PRICE_PRO_YEARLY"},
		{Key: "credits", Name: "100 credits", PriceID: p.Credits, Var: "PRICE_CREDITS", Credits: 100},
	}
	var plans []plan
	for _, pl := range all {
		if pl.PriceID != "" {
			if pl.Interval != "" {
				pl.IntervalCount = 1
			}
			plans = append(plans, pl)
		}
	}
	return plans
}

// offlineAmounts are the offline Stripe's prices, in cents (usd), by plan
// key. A year costs ten months.
var offlineAmounts = map[string]int64{
	"basic-monthly": 900,
	"basic-yearly":  9000,
	"pro-monthly":   2900,
	"pro-yearly":    29000,
	"credits":       1000,
}

// stockOffline puts the site's plans in the offline Stripe (or in another
// billingtest.Stripe): for each, a product named as the site names the
// plan, made through the API as with Stripe itself, so that its Checkout
// and portal pages show "Pro, $29.00 / month" rather than a price ID; and
// the price, with the ID the site uses (AddPrice, since the API cannot
// choose a price's ID), in the product AddPrice looks for, "prod_" + ID.
func stockOffline(ctx context.Context, st *billingtest.Stripe, sc *stripe.Client, plans []plan) error {
	for _, p := range plans {
		_, err := sc.V1Products.Create(ctx, &stripe.ProductCreateParams{
			ID:   stripe.String("prod_" + p.PriceID),
			Name: stripe.String(p.Name),
		})
		if err != nil {
			return fmt.Errorf("create the product %q in the offline Stripe: %w", p.Name, err)
		}
		st.AddPrice(p.PriceID, p.Interval, offlineAmounts[p.Key])
	}
	return nil
}

// newStripeClient is a stripe-go client for the site's own calls (the
// prices, at start-up), configured as billing's: the same HTTP client, the
// same API base, no retries of stripe-go's (they would sleep past the
// context's deadline), and no logs of its own (the site logs the errors).
func newStripeClient(key, apiBase string, hc *http.Client) *stripe.Client {
	bc := &stripe.BackendConfig{
		HTTPClient:        hc,
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
		MaxNetworkRetries: stripe.Int64(0),
	}
	if apiBase != "" {
		bc.URL = stripe.String(strings.TrimSuffix(apiBase, "/"))
	}
	return stripe.NewClient(key, stripe.WithBackends(stripe.NewBackendsWithConfig(bc)))
}

// describePlans reads each plan's price from Stripe, with its product:
// the amount, currency and interval, and the product's name, which the
// pricing page shows. A price Stripe refuses to read (there is no such
// price in the account, or the key may not read it), an archived one, or
// one of the wrong kind (a membership needs a recurring price, the
// credits pack a one-time one) is a configuration error, which names the
// variable. Stripe out of reach is not: the site starts, with a warning,
// and its pages show no amounts until the next start.
func describePlans(ctx context.Context, sc *stripe.Client, plans []plan, log *slog.Logger) error {
	described := make([]plan, len(plans))
	for i, p := range plans {
		params := &stripe.PriceRetrieveParams{}
		params.AddExpand("product")
		sp, err := sc.V1Prices.Retrieve(ctx, p.PriceID, params)
		if err != nil {
			if cerr := priceError(p, err); cerr != nil {
				return cerr
			}
			log.Warn("could not read the prices from Stripe: the pages show no amounts until the site restarts",
				"price", p.PriceID, "error", err.Error())
			return nil
		}
		switch {
		case !sp.Active:
			return fmt.Errorf("%s is %s, an archived price: Checkout cannot sell it; restore it in the Dashboard or set another price", p.Var, p.PriceID)
		case p.Tier != "" && sp.Recurring == nil:
			return fmt.Errorf("%s is %s, a one-time price: a membership needs a recurring price", p.Var, p.PriceID)
		case p.Tier == "" && sp.Recurring != nil:
			return fmt.Errorf("%s is %s, a recurring price: the credits pack needs a one-time price", p.Var, p.PriceID)
		}
		p.Amount, p.Currency = sp.UnitAmount, string(sp.Currency)
		p.Interval, p.IntervalCount = "", 0
		if sp.Recurring != nil {
			p.Interval, p.IntervalCount = string(sp.Recurring.Interval), max(sp.Recurring.IntervalCount, 1)
		}
		if sp.Product != nil {
			p.Product = sp.Product.Name
		}
		log.Info("plan", "plan", p.Key, "price", p.PriceID, "product", p.Product, "amount", p.Label())
		described[i] = p
	}
	copy(plans, described)
	return nil
}

// priceError is the configuration error of a price Stripe refused to
// read, nil for a failure that is not the configuration's (the network,
// a timeout, Stripe's own 5xx or 429).
func priceError(p plan, err error) error {
	var se *stripe.Error
	if !errors.As(err, &se) {
		return nil
	}
	switch code := se.HTTPStatusCode; {
	case code == http.StatusNotFound:
		return fmt.Errorf("%s is %s, which this Stripe account does not have (a live-mode price with a test key, or the reverse?)", p.Var, p.PriceID)
	case code == http.StatusUnauthorized:
		return errors.New("STRIPE_SECRET_KEY was refused by Stripe: check that it is the secret key (sk_...) of the account")
	case code == http.StatusForbidden:
		return fmt.Errorf("STRIPE_SECRET_KEY may not read prices (%s): a restricted key needs read access to Prices and Products", p.Var)
	case code >= 400 && code < 500 && code != http.StatusTooManyRequests:
		return fmt.Errorf("%s is %s, which Stripe refused to read: %s", p.Var, p.PriceID, se.Msg)
	}
	return nil
}

// Label is what a plan's button says: "$29 / month", "Buy for $10", or
// "Monthly" when the amount is unknown.
func (p plan) Label() string {
	switch {
	case p.Currency != "" && p.Interval != "":
		return amount(p.Amount, p.Currency) + " / " + p.every()
	case p.Currency != "":
		return "Buy for " + amount(p.Amount, p.Currency)
	case p.Interval == "month":
		return "Monthly"
	case p.Interval == "year":
		return "Yearly"
	}
	return "Buy"
}

// every is how long a period lasts: "month", "3 months".
func (p plan) every() string {
	if p.IntervalCount > 1 {
		return fmt.Sprintf("%d %ss", p.IntervalCount, p.Interval)
	}
	return p.Interval
}

// Period is "monthly", "yearly" (or "weekly", "daily", "every 3
// months") or "one-time".
func (p plan) Period() string {
	switch {
	case p.Interval == "":
		return "one-time"
	case p.IntervalCount > 1:
		return "every " + p.every()
	case p.Interval == "day":
		return "daily"
	}
	return p.Interval + "ly"
}

// money formats cents as dollars: "$29", "$29.50".
func money(cents int64) string {
	if cents%100 == 0 {
		return fmt.Sprintf("$%d", cents/100)
	}
	return fmt.Sprintf("$%d.%02d", cents/100, cents%100)
}
