package billing

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"
)

// ResolveLookupKeys returns cfg with the PriceID of every plan that
// names its price by LookupKey filled in from Stripe (the active price
// holding that lookup key, as `billing setup` leaves them), for New. Call
// it once at start-up, before New: New refuses a plan without a PriceID.
//
// It reads only (GET /v1/prices with lookup_keys[], ten keys a request).
// A lookup key no active price holds is an error wrapping ErrConfig that
// names it. When Stripe cannot be reached, or refuses the key, it returns
// that error (a *StripeError, not retried) and cfg unchanged: the app then either
// refuses to start, or starts from price IDs it kept (the plans file
// that `billing setup` wrote them into, say) — billing never guesses.
func ResolveLookupKeys(ctx context.Context, cfg Config) (Config, error) {
	var keys []string
	for _, p := range cfg.Plans {
		if p.PriceID == "" && p.LookupKey != "" {
			keys = append(keys, p.LookupKey)
		}
	}
	if len(keys) == 0 {
		return cfg, nil
	}
	if _, err := keyFor(cfg.SecretKey, cfg.StripeURL); err != nil {
		return cfg, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	// No retry here: the caller decides what an unreachable Stripe means
	// at its start-up.
	sc, _ := newStripeClient(cfg.SecretKey, cfg.StripeURL, hc)
	found := map[string]string{}
	for chunk := range slices.Chunk(keys, 10) {
		p := &stripe.PriceListParams{Active: stripe.Bool(true)}
		p.Limit = stripe.Int64(100)
		for _, k := range chunk {
			p.LookupKeys = append(p.LookupKeys, stripe.String(k))
		}
		for price, err := range sc.V1Prices.List(ctx, p) {
			if err != nil {
				return cfg, newStripeError("list prices by lookup key", err)
			}
			found[price.LookupKey] = price.ID
		}
	}
	out := cfg
	out.Plans = slices.Clone(cfg.Plans)
	var missing []string
	for i, p := range out.Plans {
		if p.PriceID != "" || p.LookupKey == "" {
			continue
		}
		id, ok := found[p.LookupKey]
		if !ok {
			missing = append(missing, p.LookupKey)
			continue
		}
		out.Plans[i].PriceID = id
	}
	if len(missing) > 0 {
		return cfg, fmt.Errorf("%w: no active price has the lookup key %s: create them (billing setup)", ErrConfig, strings.Join(missing, ", "))
	}
	return out, nil
}
