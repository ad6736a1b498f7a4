package billing

import (
	"context"
	"errors"
	"fmt"

	"github.com/stripe/stripe-go/v82"
)

// PortalOptions tunes a Customer Portal session.
type PortalOptions struct {
	// ReturnURL overrides the URL derived from Config.ReturnPath.
	ReturnURL string
	// Configuration is a portal configuration ID (bpc_...); empty uses the
	// account's default.
	Configuration string
}

// Portal creates a Customer Portal session for the user and returns its
// short-lived URL: redirect to it at once. A user who never had a Stripe
// customer gets ErrNoCustomer.
func (b *Billing) Portal(ctx context.Context, userID string, opts PortalOptions) (string, error) {
	if userID == "" {
		return "", fmt.Errorf("%w: Portal: empty user ID", ErrInvalidArgument)
	}
	customer, err := b.store.CustomerID(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("%w: user %q", ErrNoCustomer, userID)
	}
	if err != nil {
		return "", fmt.Errorf("billing: read customer of user %q: %w", userID, err)
	}
	ret := b.siteURL(b.cfg.ReturnPath)
	if opts.ReturnURL != "" {
		ret = opts.ReturnURL
	}
	p := &stripe.BillingPortalSessionCreateParams{Customer: stripe.String(customer), ReturnURL: stripe.String(ret)}
	if opts.Configuration != "" {
		p.Configuration = stripe.String(opts.Configuration)
	}
	p.SetIdempotencyKey(b.idempotencyKey("portal", customer, ret, opts.Configuration))
	var s *stripe.BillingPortalSession
	err = b.call(ctx, write, func(ctx context.Context) error {
		var err error
		s, err = b.sc.V1BillingPortalSessions.Create(ctx, p)
		return err
	})
	if err != nil {
		return "", newStripeError("create billing portal session", err)
	}
	return s.URL, nil
}
