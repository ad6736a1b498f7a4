package billing

import (
	"context"
	"time"
)

// This file is what billing tells a Store of the events it records, so
// that an operator can list the recent ones (an admin page, the CLI):
// the event's type, its object and how it came (the webhook, CatchUp, a
// replay), passed in the context of Store.Apply so that a store keeps
// them in the insert that records the event's ID, at no extra round trip.

// How an event came to be applied: ProcessedEvent.Via.
const (
	ViaWebhook = "webhook"  // delivered by Stripe
	ViaCatchUp = "catch_up" // found by CatchUp: its delivery was missed
	ViaReplay  = "replay"   // a parked event an operator replayed
)

// EventInfo describes the event a Store.Apply records.
type EventInfo struct {
	Type     string
	ObjectID string
	Via      string
}

type eventInfoKey struct{}

// withEventInfo returns ctx carrying what Store.Apply is told of the event.
func withEventInfo(ctx context.Context, info EventInfo) context.Context {
	return context.WithValue(ctx, eventInfoKey{}, info)
}

// ContextWithEventInfo returns ctx carrying info, as the context billing
// gives Store.Apply and ConditionalStore.ApplyNewer for each event it
// applies. It is for the tests of a Store (storetest's EventLister
// group), which record events as billing would; billing sets it itself.
func ContextWithEventInfo(ctx context.Context, info EventInfo) context.Context {
	return withEventInfo(ctx, info)
}

// EventInfoFrom returns what billing tells of the event recorded by the
// Store.Apply (or ConditionalStore.ApplyNewer) whose context ctx is. A
// store may keep it with the event's ID; ok is false outside an event.
func EventInfoFrom(ctx context.Context) (info EventInfo, ok bool) {
	info, ok = ctx.Value(eventInfoKey{}).(EventInfo)
	return info, ok
}

// ProcessedEvent is a recorded event, as an EventLister lists it.
type ProcessedEvent struct {
	ID          string
	Type        string
	ObjectID    string
	Via         string
	ProcessedAt time.Time
}

// EventLister is what a Store may offer an operator: the events recorded
// most recently, newest first, and the time of the latest.
type EventLister interface {
	// RecentEvents returns up to limit recorded events, newest first
	// (ProcessedAt, then ID descending). Events recorded before the
	// store kept their type have it empty.
	RecentEvents(ctx context.Context, limit int) ([]ProcessedEvent, error)
}

// RecentEvents lists the events applied most recently, newest first,
// when the Store keeps them (an EventLister); ErrNotFound otherwise.
func (b *Billing) RecentEvents(ctx context.Context, limit int) ([]ProcessedEvent, error) {
	l, ok := b.store.(EventLister)
	if !ok {
		return nil, ErrNotFound
	}
	if limit <= 0 {
		limit = 50
	}
	return l.RecentEvents(ctx, limit)
}

type viaKey struct{}

// withVia marks how the events processed under ctx came.
func withVia(ctx context.Context, via string) context.Context {
	return context.WithValue(ctx, viaKey{}, via)
}
