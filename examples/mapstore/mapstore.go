// Package mapstore is the smallest complete billing.Store: a template for
// your own. Everything lives in maps behind one mutex; a transaction works
// on a copy of the maps and swaps them in when it commits, so a failed
// transaction leaves nothing behind and transactions never see each
// other's writes. One mutex makes every transaction run alone, which is
// the simplest way to give Tx's locks (UserID, LockUser, Subscription)
// their meaning. A store on a real database keeps the same shape: Apply
// is BEGIN, record the event, fn, COMMIT; the locks are SELECT ... FOR
// UPDATE; SaveSubscription is an UPDATE of a row read, or an INSERT that
// reports billing.ErrRecordRaced on a unique-key conflict.
//
// It holds no business rule: billing decides which state is newer.
// storetest.Run and storetest.RunLifecycles check it (mapstore_test.go).
package mapstore

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gobilling/billing"
)

// Store is a billing.Store in maps. The zero value is not usable: call New.
type Store struct {
	mu sync.Mutex
	d  data
}

// data is everything the store keeps.
type data struct {
	customerOf map[string]string // user → customer
	userOf     map[string]string // customer → user
	subs       map[string]billing.Subscription
	grants     map[string]billing.Grant          // by Checkout Session ID
	events     map[string]billing.ProcessedEvent // by ID
	parked     map[string]billing.ParkedEvent
	refunds    map[string]billing.Refund // by PaymentIntent ID
}

// clone copies d, deep enough that writes to the copy never reach d.
func (d data) clone() data {
	c := data{maps.Clone(d.customerOf), maps.Clone(d.userOf), maps.Clone(d.subs), maps.Clone(d.grants),
		maps.Clone(d.events), maps.Clone(d.parked), maps.Clone(d.refunds)}
	return c
}

var (
	_ billing.Store       = (*Store)(nil)
	_ billing.EventLister = (*Store)(nil) // optional: an operator's list of recent events
)

// New returns an empty Store.
func New() *Store {
	return &Store{d: data{map[string]string{}, map[string]string{}, map[string]billing.Subscription{},
		map[string]billing.Grant{}, map[string]billing.ProcessedEvent{}, map[string]billing.ParkedEvent{}, map[string]billing.Refund{}}}
}

// Apply runs fn alone, on a copy of the data, and keeps the copy (with
// eventID recorded, and what billing tells of the event in ctx) only if
// fn succeeds.
func (s *Store) Apply(ctx context.Context, eventID string, fn func(context.Context, billing.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.d.events[eventID]; eventID != "" && dup {
		return billing.ErrDuplicateEvent
	}
	tx := &tx{d: s.d.clone()}
	if err := fn(ctx, tx); err != nil {
		return err
	}
	if eventID != "" {
		info, _ := billing.EventInfoFrom(ctx)
		tx.d.events[eventID] = billing.ProcessedEvent{ID: eventID, Type: info.Type, ObjectID: info.ObjectID,
			Via: info.Via, ProcessedAt: time.Now().UTC()}
	}
	s.d = tx.d
	return nil
}

func (s *Store) read() data {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.d // maps are replaced on commit, never changed in place
}

// Processed reports whether eventID was recorded.
func (s *Store) Processed(ctx context.Context, eventID string) (bool, error) {
	_, ok := s.read().events[eventID]
	return ok, nil
}

// RecentEvents returns up to limit recorded events, newest first.
func (s *Store) RecentEvents(ctx context.Context, limit int) ([]billing.ProcessedEvent, error) {
	evs := slices.Collect(maps.Values(s.read().events))
	slices.SortFunc(evs, func(a, b billing.ProcessedEvent) int {
		if c := b.ProcessedAt.Compare(a.ProcessedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return evs[:min(len(evs), max(limit, 0))], nil
}

// CustomerID returns the user's customer, or billing.ErrNotFound.
func (s *Store) CustomerID(ctx context.Context, userID string) (string, error) {
	c, ok := s.read().customerOf[userID]
	if !ok {
		return "", billing.ErrNotFound
	}
	return c, nil
}

// Facts returns what is stored for the user, subscriptions by ID.
func (s *Store) Facts(ctx context.Context, userID string) (billing.Facts, error) {
	d := s.read()
	f := billing.Facts{UserID: userID, CustomerID: d.customerOf[userID]}
	for _, sub := range d.subs {
		if sub.UserID == userID {
			sub.Items = slices.Clone(sub.Items)
			f.Subscriptions = append(f.Subscriptions, sub)
		}
	}
	for _, g := range d.grants {
		if g.UserID == userID {
			f.Grants = append(f.Grants, g)
		}
	}
	slices.SortFunc(f.Subscriptions, func(a, b billing.Subscription) int { return strings.Compare(a.ID, b.ID) })
	for _, r := range d.refunds {
		if r.UserID == userID {
			f.Refunds = append(f.Refunds, r)
		}
	}
	slices.SortFunc(f.Grants, func(a, b billing.Grant) int { return strings.Compare(a.CheckoutSessionID, b.CheckoutSessionID) })
	return f, nil
}

// Park keeps ev; parked again, it keeps its first ParkedAt.
func (s *Store) Park(ctx context.Context, ev billing.ParkedEvent) error {
	return s.Apply(ctx, "", func(ctx context.Context, t billing.Tx) error {
		parked := t.(*tx).d.parked
		if old, ok := parked[ev.ID]; ok {
			ev.ParkedAt = old.ParkedAt
		}
		ev.Payload = slices.Clone(ev.Payload)
		parked[ev.ID] = ev
		return nil
	})
}

// ParkedEvent returns one parked event, or billing.ErrNotFound.
func (s *Store) ParkedEvent(ctx context.Context, id string) (billing.ParkedEvent, error) {
	ev, ok := s.read().parked[id]
	if !ok {
		return billing.ParkedEvent{}, billing.ErrNotFound
	}
	ev.Payload = slices.Clone(ev.Payload)
	return ev, nil
}

// ParkedEvents returns up to limit parked events after the cursor, oldest
// first, without payloads.
func (s *Store) ParkedEvents(ctx context.Context, after billing.ParkedCursor, limit int) ([]billing.ParkedEvent, error) {
	var evs []billing.ParkedEvent
	for _, ev := range s.read().parked {
		if c := ev.ParkedAt.Compare(after.ParkedAt); c > 0 || (c == 0 && ev.ID > after.ID) {
			ev.Payload = nil
			evs = append(evs, ev)
		}
	}
	slices.SortFunc(evs, func(a, b billing.ParkedEvent) int {
		if c := a.ParkedAt.Compare(b.ParkedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return evs[:min(len(evs), max(limit, 0))], nil
}

// CountParked returns how many events are parked.
func (s *Store) CountParked(ctx context.Context) (int64, error) {
	return int64(len(s.read().parked)), nil
}

// Unpark removes a parked event.
func (s *Store) Unpark(ctx context.Context, id string) error {
	return s.Apply(ctx, "", func(ctx context.Context, t billing.Tx) error {
		delete(t.(*tx).d.parked, id)
		return nil
	})
}

// PruneParked removes the events parked before cutoff.
func (s *Store) PruneParked(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := s.Apply(ctx, "", func(ctx context.Context, t billing.Tx) error {
		n = 0
		for id, ev := range t.(*tx).d.parked {
			if ev.ParkedAt.Before(cutoff) {
				delete(t.(*tx).d.parked, id)
				n++
			}
		}
		return nil
	})
	return n, err
}

// tx is one transaction: a private copy of the data.
type tx struct{ d data }

// UserID returns the customer's user. Every record is locked already:
// transactions run one at a time.
func (t *tx) UserID(ctx context.Context, customerID string) (string, error) {
	u, ok := t.d.userOf[customerID]
	if !ok {
		return "", billing.ErrNotFound
	}
	return u, nil
}

// LockUser has nothing to do: transactions run one at a time.
func (t *tx) LockUser(ctx context.Context, userID string) error { return nil }

// LinkCustomer links the pair, unless either is linked elsewhere.
func (t *tx) LinkCustomer(ctx context.Context, userID, customerID string) error {
	c, hasC := t.d.customerOf[userID]
	u, hasU := t.d.userOf[customerID]
	switch {
	case hasC && c == customerID && hasU && u == userID:
		return nil
	case hasC || hasU:
		return billing.ErrCustomerConflict
	}
	t.d.customerOf[userID], t.d.userOf[customerID] = customerID, userID
	return nil
}

// Subscription returns a copy of the record.
func (t *tx) Subscription(ctx context.Context, id string) (billing.Subscription, bool, error) {
	s, ok := t.d.subs[id]
	s.Items = slices.Clone(s.Items)
	return s, ok, nil
}

// SaveSubscription stores a copy of s as it is. No other transaction can
// have created the record meanwhile: they run one at a time.
func (t *tx) SaveSubscription(ctx context.Context, s billing.Subscription) error {
	s.Items = slices.Clone(s.Items)
	t.d.subs[s.ID] = s
	return nil
}

// Subscriptions returns copies of the user's records.
func (t *tx) Subscriptions(ctx context.Context, userID string) ([]billing.Subscription, error) {
	var out []billing.Subscription
	for _, s := range t.d.subs {
		if s.UserID == userID {
			s.Items = slices.Clone(s.Items)
			out = append(out, s)
		}
	}
	return out, nil
}

// AddGrant adds g once per Checkout Session.
func (t *tx) AddGrant(ctx context.Context, g billing.Grant) (bool, error) {
	if _, ok := t.d.grants[g.CheckoutSessionID]; ok {
		return false, nil
	}
	t.d.grants[g.CheckoutSessionID] = g
	return true, nil
}

// Refund reads a payment's refund record.
func (t *tx) Refund(ctx context.Context, paymentIntentID string) (billing.Refund, bool, error) {
	r, ok := t.d.refunds[paymentIntentID]
	return r, ok, nil
}

// SaveRefund keeps r.
func (t *tx) SaveRefund(ctx context.Context, r billing.Refund) error {
	t.d.refunds[r.PaymentIntentID] = r
	return nil
}
