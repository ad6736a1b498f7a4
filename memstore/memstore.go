// Package memstore is an in-memory [billing.Store], for tests, examples
// and single-process apps that can afford to lose everything on restart.
//
// A [Store] is safe for concurrent use. Calls to [Store.Apply] run one at
// a time; each transaction's writes go to a private overlay that is merged
// into the store only when fn returns nil, so a failed transaction leaves
// no trace. The Store's own read methods (Facts, CustomerID, Processed,
// RecentEvents, the parked events') may be called from inside fn and see
// only committed state; a nested Apply from inside fn deadlocks.
package memstore

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/gobilling/billing"
)

var (
	_ billing.Store       = (*Store)(nil)
	_ billing.EventLister = (*Store)(nil)
	_ billing.EventPruner = (*Store)(nil)
)

// EventRetention is how long a Store keeps the record of a processed
// event before [Store.PruneEvents] deletes it: sqlstore's default, longer
// than the 30 days Stripe redelivers an event for.
const EventRetention = 35 * 24 * time.Hour

// errTxDone is returned by a Tx used after its Apply returned.
var errTxDone = errors.New("memstore: transaction used after Apply returned")

// Store is an in-memory [billing.Store]. Create one with [New]; the zero
// value is not usable.
type Store struct {
	// applyMu serializes Apply calls. It is held while fn runs, so that a
	// transaction's reads of committed state cannot go stale before it
	// commits.
	applyMu sync.Mutex

	// mu guards the maps below. It is held only briefly, never while fn
	// runs.
	mu             sync.Mutex
	customerByUser map[string]string // userID -> customerID
	userByCustomer map[string]string // customerID -> userID
	subs           map[string]billing.Subscription
	grants         map[string]billing.Grant          // by CheckoutSessionID
	refunds        map[string]billing.Refund         // by PaymentIntentID
	events         map[string]billing.ProcessedEvent // by ID
	parked         map[string]billing.ParkedEvent
	outbox         outbox
	checkpoints    map[string]string // by name (listing.go)
	now            func() time.Time  // stamps processed events (time.Now)
}

// New returns an empty Store.
func New() *Store {
	return &Store{
		customerByUser: make(map[string]string),
		userByCustomer: make(map[string]string),
		subs:           make(map[string]billing.Subscription),
		grants:         make(map[string]billing.Grant),
		refunds:        make(map[string]billing.Refund),
		events:         make(map[string]billing.ProcessedEvent),
		parked:         make(map[string]billing.ParkedEvent),
		outbox:         outbox{byKey: make(map[string]*billing.OutboxEntry)},
		checkpoints:    make(map[string]string),
		now:            time.Now,
	}
}

// Apply runs fn in a transaction and commits its writes together with the
// record of eventID, or not at all. See [billing.Store.Apply]. The record
// keeps what [billing.EventInfoFrom] tells of the event, and the time of
// the commit, for [Store.RecentEvents].
//
// Apply calls run one at a time. A recorded eventID returns
// [billing.ErrDuplicateEvent] without calling fn; an error from fn is
// returned unchanged and nothing fn wrote is kept. If ctx is done before fn
// runs, Apply returns ctx.Err() and changes nothing.
func (s *Store) Apply(ctx context.Context, eventID string, fn func(ctx context.Context, tx billing.Tx) error) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()

	if err := ctx.Err(); err != nil {
		return err
	}
	if eventID != "" {
		s.mu.Lock()
		_, dup := s.events[eventID]
		s.mu.Unlock()
		if dup {
			return billing.ErrDuplicateEvent
		}
	}

	tx := &tx{
		s:              s,
		customerByUser: make(map[string]string),
		userByCustomer: make(map[string]string),
		subs:           make(map[string]billing.Subscription),
		grants:         make(map[string]billing.Grant),
		refunds:        make(map[string]billing.Refund),
	}
	defer func() { tx.done = true }()
	if err := fn(ctx, tx); err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	maps.Copy(s.customerByUser, tx.customerByUser)
	maps.Copy(s.userByCustomer, tx.userByCustomer)
	maps.Copy(s.subs, tx.subs)
	maps.Copy(s.grants, tx.grants)
	maps.Copy(s.refunds, tx.refunds)
	s.outbox.commit(tx.recorded)
	if eventID != "" {
		info, _ := billing.EventInfoFrom(ctx)
		s.events[eventID] = billing.ProcessedEvent{ID: eventID, Type: info.Type, ObjectID: info.ObjectID, Via: info.Via,
			ProcessedAt: s.now().UTC()}
	}
	return nil
}

// RecentEvents returns up to limit events recorded by committed Applies,
// newest first (by ProcessedAt, the time of the commit, then ID). See
// [billing.EventLister].
func (s *Store) RecentEvents(ctx context.Context, limit int) ([]billing.ProcessedEvent, error) {
	if limit <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	evs := slices.Collect(maps.Values(s.events))
	s.mu.Unlock()
	slices.SortFunc(evs, func(a, b billing.ProcessedEvent) int {
		if c := b.ProcessedAt.Compare(a.ProcessedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	return evs[:min(len(evs), limit)], nil
}

// PruneEvents deletes the records of the events processed longer ago than
// EventRetention, and says how many (an event redelivered after its
// record is gone is applied again). See [billing.EventPruner]:
// Billing.Maintain calls it daily.
func (s *Store) PruneEvents(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	cutoff := s.now().Add(-EventRetention)
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for id, ev := range s.events {
		if ev.ProcessedAt.Before(cutoff) {
			delete(s.events, id)
			n++
		}
	}
	return n, nil
}

// Processed reports whether eventID was recorded by a committed Apply.
func (s *Store) Processed(ctx context.Context, eventID string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.events[eventID]
	return ok, nil
}

// CustomerID returns the Stripe customer linked to userID, or
// [billing.ErrNotFound].
func (s *Store) CustomerID(ctx context.Context, userID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.customerByUser[userID]
	if !ok {
		return "", billing.ErrNotFound
	}
	return c, nil
}

// Facts returns everything stored for userID. Subscriptions are sorted by
// ID, grants by GrantedAt and then CheckoutSessionID. A user with nothing
// stored gets zero Facts with UserID set, and a nil error.
func (s *Store) Facts(ctx context.Context, userID string) (billing.Facts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := billing.Facts{UserID: userID, CustomerID: s.customerByUser[userID]}
	for _, sub := range s.subs {
		if sub.UserID == userID {
			f.Subscriptions = append(f.Subscriptions, copySub(sub))
		}
	}
	for _, g := range s.grants {
		if g.UserID == userID {
			f.Grants = append(f.Grants, g)
		}
	}
	slices.SortFunc(f.Subscriptions, func(a, b billing.Subscription) int {
		return cmp.Compare(a.ID, b.ID)
	})
	for _, r := range s.refunds {
		if r.UserID == userID {
			f.Refunds = append(f.Refunds, r)
		}
	}
	slices.SortFunc(f.Refunds, func(a, b billing.Refund) int { return cmp.Compare(a.PaymentIntentID, b.PaymentIntentID) })
	slices.SortFunc(f.Grants, func(a, b billing.Grant) int {
		if c := a.GrantedAt.Compare(b.GrantedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.CheckoutSessionID, b.CheckoutSessionID)
	})
	return f, nil
}

// Park keeps ev. Parking an ID again replaces its fields but keeps its
// first ParkedAt.
func (s *Store) Park(ctx context.Context, ev billing.ParkedEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.parked[ev.ID]; ok {
		ev.ParkedAt = old.ParkedAt
	}
	s.parked[ev.ID] = copyParked(ev)
	return nil
}

// ParkedEvent returns the parked event with ID id, or
// [billing.ErrNotFound].
func (s *Store) ParkedEvent(ctx context.Context, id string) (billing.ParkedEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev, ok := s.parked[id]
	if !ok {
		return billing.ParkedEvent{}, billing.ErrNotFound
	}
	return copyParked(ev), nil
}

// ParkedEvents returns up to limit parked events after the cursor, oldest
// first (by ParkedAt, then ID), without their payloads.
func (s *Store) ParkedEvents(ctx context.Context, after billing.ParkedCursor, limit int) ([]billing.ParkedEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var evs []billing.ParkedEvent
	for _, ev := range s.parked {
		if c := ev.ParkedAt.Compare(after.ParkedAt); c > 0 || (c == 0 && ev.ID > after.ID) {
			ev.Payload = nil
			evs = append(evs, ev)
		}
	}
	slices.SortFunc(evs, func(a, b billing.ParkedEvent) int {
		if c := a.ParkedAt.Compare(b.ParkedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return evs[:min(len(evs), max(limit, 0))], nil
}

// CountParked returns how many events are parked.
func (s *Store) CountParked(ctx context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.parked)), nil
}

// Unpark removes the parked event with ID id, if there is one.
func (s *Store) Unpark(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.parked, id)
	return nil
}

// PruneParked removes the events parked before cutoff.
func (s *Store) PruneParked(ctx context.Context, cutoff time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for id, ev := range s.parked {
		if ev.ParkedAt.Before(cutoff) {
			delete(s.parked, id)
			n++
		}
	}
	return n, nil
}

// tx is the billing.Tx of one Apply: its writes go to the overlay maps
// and are merged into s on commit. Reads look in the overlay first, then
// in s. Only the goroutine running fn may use it.
type tx struct {
	s    *Store
	done bool

	customerByUser map[string]string
	userByCustomer map[string]string
	subs           map[string]billing.Subscription
	grants         map[string]billing.Grant
	refunds        map[string]billing.Refund
	recorded       []billing.OutboxEntry
}

func (t *tx) customerOf(userID string) (string, bool) {
	if c, ok := t.customerByUser[userID]; ok {
		return c, true
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	c, ok := t.s.customerByUser[userID]
	return c, ok
}

func (t *tx) userOf(customerID string) (string, bool) {
	if u, ok := t.userByCustomer[customerID]; ok {
		return u, true
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	u, ok := t.s.userByCustomer[customerID]
	return u, ok
}

// sub returns the subscription as the transaction sees it, without
// copying it: callers must copy before handing it out.
func (t *tx) sub(id string) (billing.Subscription, bool) {
	if sub, ok := t.subs[id]; ok {
		return sub, true
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	sub, ok := t.s.subs[id]
	return sub, ok
}

func (t *tx) grantExists(checkoutSessionID string) bool {
	if _, ok := t.grants[checkoutSessionID]; ok {
		return true
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	_, ok := t.s.grants[checkoutSessionID]
	return ok
}

func (t *tx) UserID(ctx context.Context, customerID string) (string, error) {
	if t.done {
		return "", errTxDone
	}
	u, ok := t.userOf(customerID)
	if !ok {
		return "", billing.ErrNotFound
	}
	return u, nil
}

func (t *tx) LinkCustomer(ctx context.Context, userID, customerID string) error {
	if t.done {
		return errTxDone
	}
	c, hasCustomer := t.customerOf(userID)
	u, hasUser := t.userOf(customerID)
	if hasCustomer && c == customerID && hasUser && u == userID {
		return nil
	}
	if hasCustomer || hasUser {
		return billing.ErrCustomerConflict
	}
	t.customerByUser[userID] = customerID
	t.userByCustomer[customerID] = userID
	return nil
}

func (t *tx) LockUser(ctx context.Context, userID string) error {
	if t.done {
		return errTxDone
	}
	return nil // Apply calls run one at a time: every record is locked
}

func (t *tx) Subscription(ctx context.Context, id string) (billing.Subscription, bool, error) {
	if t.done {
		return billing.Subscription{}, false, errTxDone
	}
	sub, ok := t.sub(id)
	if !ok {
		return billing.Subscription{}, false, nil
	}
	return copySub(sub), true, nil
}

// SaveSubscription stores a copy of s. Apply calls run one at a time, so
// no other transaction can have created the record meanwhile.
func (t *tx) SaveSubscription(ctx context.Context, s billing.Subscription) error {
	if t.done {
		return errTxDone
	}
	t.subs[s.ID] = copySub(s)
	return nil
}

// Subscriptions returns copies of userID's records: the transaction's own
// saves over the committed ones.
func (t *tx) Subscriptions(ctx context.Context, userID string) ([]billing.Subscription, error) {
	if t.done {
		return nil, errTxDone
	}
	var out []billing.Subscription
	for _, s := range t.subs {
		if s.UserID == userID {
			out = append(out, copySub(s))
		}
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	for id, s := range t.s.subs {
		if _, mine := t.subs[id]; !mine && s.UserID == userID {
			out = append(out, copySub(s))
		}
	}
	return out, nil
}

func (t *tx) AddGrant(ctx context.Context, g billing.Grant) (bool, error) {
	if t.done {
		return false, errTxDone
	}
	if t.grantExists(g.CheckoutSessionID) {
		return false, nil
	}
	t.grants[g.CheckoutSessionID] = g
	return true, nil
}

// Refund returns the transaction's view of a payment's refund record.
func (t *tx) Refund(ctx context.Context, paymentIntentID string) (billing.Refund, bool, error) {
	if t.done {
		return billing.Refund{}, false, errTxDone
	}
	if r, ok := t.refunds[paymentIntentID]; ok {
		return r, true, nil
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	r, ok := t.s.refunds[paymentIntentID]
	return r, ok, nil
}

// SaveRefund stores r in the transaction.
func (t *tx) SaveRefund(ctx context.Context, r billing.Refund) error {
	if t.done {
		return errTxDone
	}
	t.refunds[r.PaymentIntentID] = r
	return nil
}

func copySub(s billing.Subscription) billing.Subscription {
	s.Items = slices.Clone(s.Items)
	return s
}

func copyParked(ev billing.ParkedEvent) billing.ParkedEvent {
	ev.Payload = slices.Clone(ev.Payload)
	return ev
}
