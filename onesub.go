package billing

import (
	"context"
	"fmt"

	"github.com/stripe/stripe-go/v82"
)

// This file is the webhook path's half of "one subscription per user":
// Checkout expires a user's other open sessions (checkout.go), but two
// devices can both pass that check, and a subscription can be made
// outside Checkout. A live subscription that appears beside another,
// without the app's allowance, is reported here.

// wentLive reports whether an applied event is a subscription entering a
// live status: created live, or updated from another status into one.
// Other updates of a live subscription (renewals, say) are not looked at.
func wentLive(ev *wireEvent) bool {
	obj := ev.Data.Object
	if obj == nil || train(ev.APIVersion) != train(stripe.APIVersion) ||
		!SubscriptionStatus(obj.Status).Live() || obj.Metadata[metaAllowAnother] == "true" {
		return false
	}
	switch ev.Type {
	case evSubCreated:
		return true
	case evSubUpdated, evSubResumed:
		prev := ev.Data.PreviousAttributes.Status
		return prev != nil && !SubscriptionStatus(*prev).Live()
	}
	return false
}

// reportSecondSubscription logs at WARN when the subscription an applied
// event made live has a live sibling for the same user. It runs after the
// event is recorded, so a redelivery (a duplicate) does not report again;
// it reads the store and changes nothing, and a failed read is logged
// rather than failing an event that was applied.
func (b *Billing) reportSecondSubscription(ctx context.Context, ev *wireEvent) {
	if !wentLive(ev) {
		return
	}
	obj := ev.Data.Object
	others, user, err := b.liveSiblings(ctx, obj.ID, string(obj.Customer))
	switch {
	case err != nil:
		b.log.Debug("billing: could not look for a second live subscription", "subscription", obj.ID, "error", err)
	case len(others) > 0:
		b.log.Warn("billing: a second live subscription", "user", user, "customer", string(obj.Customer),
			"subscription", obj.ID, "others", others, "event", ev.ID,
			"hint", "the user may be billed twice; cancel one at Stripe, or pass CheckoutOptions.AllowAnotherSubscription if meant")
	}
}

// liveSiblings returns the user's live subscriptions other than subID.
func (b *Billing) liveSiblings(ctx context.Context, subID, customer string) (others []string, user string, err error) {
	err = b.store.Apply(ctx, "", func(ctx context.Context, tx Tx) error {
		user, err = tx.UserID(ctx, customer)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("find the user of %s: %w", customer, err)
	}
	f, err := b.store.Facts(ctx, user)
	if err != nil {
		return nil, "", fmt.Errorf("read the facts of %s: %w", user, err)
	}
	for _, s := range f.Subscriptions {
		if s.ID != subID && s.Status.Live() {
			others = append(others, s.ID)
		}
	}
	return others, user, nil
}
