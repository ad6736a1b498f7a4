package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/stripe/stripe-go/v82"
)

// appliedTypes are the event types the webhook handler applies (every
// other type is ignored), which CatchUp asks Stripe for.
var appliedTypes = []string{
	evSubCreated, evSubUpdated, evSubDeleted, evSubPaused, evSubResumed, evSubTrialWillEnd,
	evInvoicePaid, evInvoiceFailed, evCheckoutDone, evCheckoutAsyncOK,
	evChargeRefunded, evDisputeCreated, evDisputeClosed,
}

// AppliedEventTypes returns the event types the webhook handler applies,
// sorted: a webhook endpoint for billing listens to exactly these.
func AppliedEventTypes() []string { return slices.Sorted(slices.Values(appliedTypes)) }

// CatchUpReport counts what [Billing.CatchUp] did with the events it read.
type CatchUpReport struct {
	Seen       int // events listed
	Applied    int // applied now: they had been missed
	Duplicates int // applied before (by the webhook handler, say)
	Parked     int // parked: no user is linked to their customer
	Skipped    int // of the other mode (live or test): not applied, logged
	Failed     int // failed; the joined error says why, and a later run retries them
}

// CatchUp recovers missed webhook deliveries: it lists Stripe's events of
// the types billing applies created since the given time (Stripe keeps 30
// days of them) and applies each as the webhook handler would (an event
// rendered at another API version, the account's default, has its object
// fetched anew at this library's version). Events
// already applied cost no write and no further Stripe call; since order
// does not matter, they are taken as Stripe lists them (newest first).
// Run it from a cron, or after an outage, with since a little before the
// outage began. An event that fails does not stop the others: the
// returned error joins every failure, and the report counts them.
func (b *Billing) CatchUp(ctx context.Context, since time.Time) (CatchUpReport, error) {
	var rep CatchUpReport
	p := &stripe.EventListParams{CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: since.Unix()}}
	for _, t := range appliedTypes {
		p.Types = append(p.Types, stripe.String(t))
	}
	p.Limit = stripe.Int64(100)
	var errs []error
	events := func(ctx context.Context, after string) iter.Seq2[*stripe.Event, error] {
		startAfter(&p.ListParams, after)
		return iter.Seq2[*stripe.Event, error](b.sc.V1Events.List(ctx, p))
	}
	for ev, err := range list(ctx, b, events, func(ev *stripe.Event) string { return ev.ID }) {
		if err != nil {
			errs = append(errs, newStripeError("list events", err))
			break
		}
		rep.Seen++
		// Events are listed at the account's default API version: one of
		// another release train has its object fetched anew (process does
		// it). One of the other mode cannot be ours.
		raw, err := json.Marshal(ev)
		var w wireEvent
		if err == nil {
			err = decodeEvent(raw, &w)
		}
		if err != nil {
			rep.Failed++
			errs = append(errs, fmt.Errorf("billing: catch-up: encode event %s: %w", ev.ID, err))
			continue
		}
		var otherVersion *APIVersionError
		if err := b.checkEventMode(&w); err != nil && !errors.As(err, &otherVersion) {
			rep.Skipped++
			b.log.Error("catch-up skipped an event: misconfigured account", "event", ev.ID, "type", ev.Type, "error", err.Error())
			continue
		}
		out, err := b.process(withVia(ctx, ViaCatchUp), &w, raw)
		if err != nil {
			rep.Failed++
			errs = append(errs, fmt.Errorf("billing: catch-up: event %s: %w", ev.ID, err))
			continue
		}
		if out == OutcomeApplied || out == OutcomeDuplicate {
			// Parked before (its customer unknown then, say): applied now.
			if err := b.store.Unpark(ctx, ev.ID); err != nil {
				errs = append(errs, fmt.Errorf("billing: catch-up: unpark %s: %w", ev.ID, err))
			}
		}
		switch out {
		case OutcomeApplied:
			rep.Applied++
		case OutcomeDuplicate:
			rep.Duplicates++
		case OutcomeParked:
			rep.Parked++
		}
	}
	if rep.Applied > 0 || rep.Failed > 0 {
		b.log.Info("catch-up", "seen", rep.Seen, "applied", rep.Applied, "duplicates", rep.Duplicates,
			"parked", rep.Parked, "skipped", rep.Skipped, "failed", rep.Failed)
	}
	return rep, errors.Join(errs...)
}

// Sync brings one user's subscriptions up to date from Stripe, whatever
// webhooks were missed: it lists the subscriptions of the user's customer
// and writes each, fetched with its latest invoice, through the same
// conditional write as webhook events (versioned by Stripe's Date). It
// returns the membership afterwards. A user without a customer has
// nothing to sync and gets their stored membership.
func (b *Billing) Sync(ctx context.Context, userID string) (Membership, error) {
	if userID == "" {
		return Membership{}, fmt.Errorf("%w: Sync: empty user ID", ErrInvalidArgument)
	}
	customer, err := b.store.CustomerID(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return b.Membership(ctx, userID)
	}
	if err != nil {
		return Membership{}, fmt.Errorf("billing: read customer of user %q: %w", userID, err)
	}
	p := &stripe.SubscriptionListParams{Customer: stripe.String(customer), Status: stripe.String("all")}
	p.Limit = stripe.Int64(100)
	var ids []string
	subs := func(ctx context.Context, after string) iter.Seq2[*stripe.Subscription, error] {
		startAfter(&p.ListParams, after)
		return iter.Seq2[*stripe.Subscription, error](b.sc.V1Subscriptions.List(ctx, p))
	}
	for sub, err := range list(ctx, b, subs, func(s *stripe.Subscription) string { return s.ID }) {
		if err != nil {
			return Membership{}, newStripeError("list subscriptions of "+customer, err)
		}
		ids = append(ids, sub.ID)
	}
	for _, id := range ids {
		if err := b.applyFetched(ctx, "", id, time.Time{}, b.recorder("")); err != nil {
			return Membership{}, fmt.Errorf("billing: sync subscription %s: %w", id, err)
		}
	}
	return b.Membership(ctx, userID)
}

// startAfter makes a listing start after the object with ID after (from
// the first object when after is "").
func startAfter(p *stripe.ListParams, after string) {
	p.StartingAfter = nil
	if after != "" {
		p.StartingAfter = stripe.String(after)
	}
}
