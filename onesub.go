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

// siblings are the user's other live subscriptions, found in the
// transaction of an event that makes a subscription live.
type siblings struct {
	user   string
	others []string
}

// report logs at WARN that the subscription (of customer) an event or a
// sync made live has live siblings. It is called once the write is
// committed, so a redelivery (a duplicate) does not report again.
func (s siblings) report(b *Billing, subID, customer, eventID string) {
	if len(s.others) == 0 {
		return
	}
	b.log.Warn("billing: a second live subscription", "user", s.user, "customer", customer,
		"subscription", subID, "others", s.others, "event", eventID,
		"hint", "the user may be billed twice; cancel one at Stripe, or pass CheckoutOptions.AllowAnotherSubscription if meant")
}

// putLiveSubscription is putSubscription for an event that may make a
// subscription live: when the stored record enters a live status, the
// user's other live records (read in the same transaction, with the user
// locked, so two such events for one user are serialized and the second
// sees the first) are kept in second for a report once committed.
func putLiveSubscription(ctx context.Context, tx Tx, f subFact, second *siblings, rec *recorder) error {
	after, entered, err := putEntering(ctx, tx, f, rec)
	if err != nil || !entered {
		return err // or not entering a live status (a stale or repeated event)
	}
	return recordSecond(ctx, tx, after, nil, second, rec)
}

// putEntering is putSubscription that also says whether the record
// entered a live status, returning it as saved. It locks the user first,
// so that the transaction waits for any other of the user's before the
// caller reads the user's subscriptions.
func putEntering(ctx context.Context, tx Tx, f subFact, rec *recorder) (after Subscription, entered bool, err error) {
	if err := lockUserFirst(ctx, tx, f.Sub); err != nil {
		return after, false, err
	}
	before, found, after, err := reconcileAndSave(ctx, tx, f)
	if err != nil {
		return after, false, err
	}
	if err := rec.subscription(ctx, tx, before, found, after, f.News); err != nil {
		return after, false, err
	}
	return after, after.Status.Live() && !(found && before.Status.Live()) && after.UserID != "", nil
}

// otherLive returns the IDs of the live records of subs but id and those
// skip reports true of (nil: none).
func otherLive(subs []Subscription, id string, skip func(id string) bool) []string {
	var out []string
	for _, s := range subs {
		if s.ID != id && s.Status.Live() && (skip == nil || !skip(s.ID)) {
			out = append(out, s.ID)
		}
	}
	return out
}

// recordSecond finds the user's other live records beside after, which
// entered a live status (but those later reports true of), keeps them in
// second for a report once committed, and records the change. The caller
// holds the user's lock.
func recordSecond(ctx context.Context, tx Tx, after Subscription, later func(id string) bool, second *siblings, rec *recorder) error {
	subs, err := tx.Subscriptions(ctx, after.UserID)
	if err != nil {
		return fmt.Errorf("read the subscriptions of user %s: %w", after.UserID, err)
	}
	second.user, second.others = after.UserID, otherLive(subs, after.ID, later)
	if len(second.others) == 0 {
		return nil
	}
	m := rec.policyOne(after)
	return rec.record(ctx, tx, Change{
		Kind: ChangeSecondSubscription, Key: string(ChangeSecondSubscription) + "/" + after.ID,
		UserID: after.UserID, CustomerID: after.CustomerID, SubscriptionID: after.ID, Status: after.Status,
		Tier: m.Tier, PriceID: m.PriceID, At: after.Version, OtherSubscriptions: second.others,
	})
}
