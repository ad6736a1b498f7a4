package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"
)

// This file is what an operator does with events that could not be
// applied: they are parked (kept, verified, with the reason), listed,
// and replayed once the cause is fixed.

func (b *Billing) park(ctx context.Context, ev stripe.Event, raw []byte, customer, reason string) error {
	p := ParkedEvent{ID: ev.ID, Type: string(ev.Type), CustomerID: customer, Reason: reason, Payload: raw, ParkedAt: b.now().UTC().Truncate(time.Second)}
	if err := b.store.Park(ctx, p); err != nil {
		return fmt.Errorf("park event %s: %w", ev.ID, err)
	}
	b.log.Warn("webhook event parked: link the customer to a user with LinkCustomer, then Replay it",
		"event", ev.ID, "type", ev.Type, "customer", customer, "reason", reason)
	return nil
}

// Replay applies a parked event again (after, say, linking its customer
// with [Billing.LinkCustomer]) and unparks it unless it is parked again.
func (b *Billing) Replay(ctx context.Context, eventID string) (Outcome, error) {
	parked, err := b.store.Parked(ctx)
	if err != nil {
		return 0, fmt.Errorf("billing: list parked events: %w", err)
	}
	for _, p := range parked {
		if p.ID != eventID {
			continue
		}
		var ev stripe.Event
		if err := json.Unmarshal(p.Payload, &ev); err != nil {
			return 0, fmt.Errorf("billing: decode parked event %s: %w", eventID, err)
		}
		out, err := b.process(ctx, ev, p.Payload)
		if err != nil {
			return 0, fmt.Errorf("billing: replay %s: %w", eventID, err)
		}
		if out != OutcomeParked {
			if err := b.store.Unpark(ctx, eventID); err != nil {
				return out, fmt.Errorf("billing: unpark %s: %w", eventID, err)
			}
		}
		b.log.Info("parked event replayed", "event", eventID, "outcome", out.String())
		return out, nil
	}
	return 0, fmt.Errorf("%w: %s", ErrNotParked, eventID)
}

// Parked lists the events waiting for an operator, oldest first.
func (b *Billing) Parked(ctx context.Context) ([]ParkedEvent, error) {
	p, err := b.store.Parked(ctx)
	if err != nil {
		return nil, fmt.Errorf("billing: list parked events: %w", err)
	}
	return p, nil
}

// LinkCustomer links a user to an existing Stripe customer (one created in
// the Dashboard, say), so that its parked events can be replayed.
func (b *Billing) LinkCustomer(ctx context.Context, userID, customerID string) error {
	if userID == "" || !strings.HasPrefix(customerID, "cus_") {
		return fmt.Errorf("billing: LinkCustomer: need a user ID and a customer ID (cus_...), got %q and %q", userID, customerID)
	}
	if err := b.linkCustomer(ctx, userID, customerID); err != nil {
		return fmt.Errorf("billing: link user %q to %s: %w", userID, customerID, err)
	}
	return nil
}
