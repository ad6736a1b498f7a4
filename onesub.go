package billing

import (
	"context"
	"errors"
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

// siblings are the user's other live subscriptions, found before an event
// that makes a subscription live is applied.
type siblings struct {
	user   string
	others []string
}

// report logs at WARN that the subscription ev made live has live
// siblings. It is called once ev is applied, so a redelivery (a
// duplicate) does not report again.
func (s siblings) report(b *Billing, ev *wireEvent) {
	if len(s.others) == 0 {
		return
	}
	obj := ev.Data.Object
	b.log.Warn("billing: a second live subscription", "user", s.user, "customer", string(obj.Customer),
		"subscription", obj.ID, "others", s.others, "event", ev.ID,
		"hint", "the user may be billed twice; cancel one at Stripe, or pass CheckoutOptions.AllowAnotherSubscription if meant")
}

// secondSubscription reads, before ev is applied, the other live
// subscriptions of the user whose subscription ev makes live. The reads
// change nothing; one that fails fails the delivery (Stripe retries it),
// so that every statement a delivery runs either succeeds or leaves the
// event unapplied. A customer billing does not know has no siblings.
func (b *Billing) secondSubscription(ctx context.Context, ev *wireEvent) (siblings, error) {
	if !wentLive(ev) {
		return siblings{}, nil
	}
	obj := ev.Data.Object
	if !storable(string(obj.Customer)) {
		return siblings{}, nil // parked when applied
	}
	others, user, err := b.liveSiblings(ctx, obj.ID, string(obj.Customer))
	if errors.Is(err, ErrNotFound) {
		return siblings{}, nil
	}
	return siblings{user: user, others: others}, err
}

// liveSiblings returns the user's live subscriptions other than subID.
func (b *Billing) liveSiblings(ctx context.Context, subID, customer string) (others []string, user string, err error) {
	err = b.store.Apply(ctx, "", func(ctx context.Context, tx Tx) error {
		user, err = tx.UserID(ctx, customer)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("billing: find the user of %s: %w", customer, err)
	}
	f, err := b.store.Facts(ctx, user)
	if err != nil {
		return nil, "", fmt.Errorf("billing: read the facts of %s: %w", user, err)
	}
	for _, s := range f.Subscriptions {
		if s.ID != subID && s.Status.Live() {
			others = append(others, s.ID)
		}
	}
	return others, user, nil
}
