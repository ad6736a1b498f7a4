package billing

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// This file is what an operator does with events that could not be
// applied: they are parked (kept, verified, with the reason), listed,
// and replayed once the cause is fixed.

func (b *Billing) park(ctx context.Context, ev *wireEvent, raw []byte, customer, reason string) error {
	// The payload is kept byte for byte; the text fields are made
	// storable, since parking must not fail on what a signed event holds.
	p := ParkedEvent{ID: storableText(ev.ID), Type: storableText(string(ev.Type)), CustomerID: storableText(customer),
		Reason: storableText(reason), Payload: raw, ParkedAt: b.now().UTC().Truncate(time.Second)}
	if err := b.store.Park(ctx, p); err != nil {
		return fmt.Errorf("park event %s: %w", ev.ID, err)
	}
	msg := "webhook event parked: look at it with ParkedEvent, then Replay or Discard it"
	if customer != "" {
		msg = "webhook event parked: link the customer to a user with LinkCustomer, then Replay it"
	}
	b.log.Warn(msg, "event", ev.ID, "type", ev.Type, "customer", customer, "reason", reason)
	return nil
}

// Replay applies a parked event again (after, say, linking its customer
// with [Billing.LinkCustomer]) and unparks it unless it is parked again.
// An event that is not parked returns an error wrapping ErrNotParked.
func (b *Billing) Replay(ctx context.Context, eventID string) (Outcome, error) {
	p, err := b.ParkedEvent(ctx, eventID)
	if err != nil {
		return 0, err
	}
	var ev wireEvent
	if err := decodeEvent(p.Payload, &ev); err != nil {
		return 0, fmt.Errorf("billing: decode parked event %s: %w", eventID, err)
	}
	out, err := b.process(withVia(ctx, ViaReplay), &ev, p.Payload)
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

// ParkedEvent returns one parked event, payload included, or an error
// wrapping ErrNotParked.
func (b *Billing) ParkedEvent(ctx context.Context, eventID string) (ParkedEvent, error) {
	if eventID == "" {
		return ParkedEvent{}, fmt.Errorf("%w: ParkedEvent: empty event ID", ErrInvalidArgument)
	}
	p, err := b.store.ParkedEvent(ctx, eventID)
	if errors.Is(err, ErrNotFound) {
		return ParkedEvent{}, fmt.Errorf("%w: %s", ErrNotParked, eventID)
	}
	if err != nil {
		return ParkedEvent{}, fmt.Errorf("billing: read parked event %s: %w", eventID, err)
	}
	return p, nil
}

// Page sizes of [Billing.ParkedEvents].
const (
	DefaultParkedPage = 100
	MaxParkedPage     = 1000
)

// ParkedEvents returns a page of the events waiting for an operator,
// oldest first, without their payloads ([Billing.ParkedEvent] has them),
// and the cursor of the next page ("" after the last). Start with the
// cursor "". limit defaults to DefaultParkedPage and is at most
// MaxParkedPage. A cursor that is not one ParkedEvents returned is an
// error wrapping ErrInvalidArgument.
func (b *Billing) ParkedEvents(ctx context.Context, cursor string, limit int) ([]ParkedEvent, string, error) {
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	switch {
	case limit <= 0:
		limit = DefaultParkedPage
	case limit > MaxParkedPage:
		limit = MaxParkedPage
	}
	// One more than asked tells whether there is a next page.
	page, err := b.store.ParkedEvents(ctx, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("billing: list parked events: %w", err)
	}
	if len(page) <= limit {
		return page, "", nil
	}
	page = page[:limit]
	return page, encodeCursor(page[limit-1].Cursor()), nil
}

// encodeCursor makes an opaque page cursor: ParkedAt's Unix seconds and
// the ID, base64url.
func encodeCursor(c ParkedCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.ParkedAt.Unix(), 10) + "|" + c.ID))
}

func decodeCursor(s string) (ParkedCursor, error) {
	if s == "" {
		return ParkedCursor{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	sec, id, ok := strings.Cut(string(raw), "|")
	n, perr := strconv.ParseInt(sec, 10, 64)
	if err != nil || !ok || perr != nil || id == "" {
		return ParkedCursor{}, fmt.Errorf("%w: %q is not a cursor of ParkedEvents", ErrInvalidArgument, s)
	}
	return ParkedCursor{ParkedAt: time.Unix(n, 0).UTC(), ID: id}, nil
}

// CountParked returns how many events are parked, without reading them:
// for health checks and alerts.
func (b *Billing) CountParked(ctx context.Context) (int64, error) {
	n, err := b.store.CountParked(ctx)
	if err != nil {
		return 0, fmt.Errorf("billing: count parked events: %w", err)
	}
	return n, nil
}

// Discard drops a parked event an operator has dealt with otherwise (or
// decided to ignore). An event that is not parked returns an error
// wrapping ErrNotParked.
func (b *Billing) Discard(ctx context.Context, eventID string) error {
	if _, err := b.ParkedEvent(ctx, eventID); err != nil {
		return err
	}
	if err := b.store.Unpark(ctx, eventID); err != nil {
		return fmt.Errorf("billing: discard parked event %s: %w", eventID, err)
	}
	b.log.Info("parked event discarded", "event", eventID)
	return nil
}

// PruneParked drops the events parked before cutoff and returns how many,
// so that parked events stay bounded. Stripe keeps events for 30 days:
// older ones can no longer be fetched again from it.
func (b *Billing) PruneParked(ctx context.Context, cutoff time.Time) (int64, error) {
	n, err := b.store.PruneParked(ctx, cutoff)
	if err != nil {
		return n, fmt.Errorf("billing: prune parked events: %w", err)
	}
	if n > 0 {
		b.log.Info("parked events pruned", "count", n, "parked_before", cutoff.UTC().Format(time.RFC3339))
	}
	return n, nil
}

// LinkCustomer links a user to an existing Stripe customer (one created in
// the Dashboard, say), so that its parked events can be replayed.
func (b *Billing) LinkCustomer(ctx context.Context, userID, customerID string) error {
	if userID == "" || !storable(userID) || !strings.HasPrefix(customerID, "cus_") || !storable(customerID) {
		return fmt.Errorf("%w: LinkCustomer: need a user ID and a customer ID (cus_...), got %q and %q", ErrInvalidArgument, userID, customerID)
	}
	if err := b.linkCustomer(ctx, userID, customerID); err != nil {
		return fmt.Errorf("billing: link user %q to %s: %w", userID, customerID, err)
	}
	return nil
}
