package memstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"slices"
	"time"

	"github.com/gobilling/billing"
)

var (
	_ billing.Outbox   = (*Store)(nil)
	_ billing.OutboxTx = (*tx)(nil)
)

// Entry states.
const (
	pending = iota
	delivered
	dead
)

// outbox holds the entries; the Store's mu guards it.
type outbox struct {
	seq   int64
	byKey map[string]*billing.OutboxEntry
	// state and the time of delivery, by key.
	state        map[string]int
	deliveredAt  map[string]time.Time
	claimedUntil map[string]time.Time
}

// commit adds a committed transaction's entries, in the order recorded.
func (o *outbox) commit(es []billing.OutboxEntry) {
	if o.state == nil {
		o.state, o.deliveredAt, o.claimedUntil = map[string]int{}, map[string]time.Time{}, map[string]time.Time{}
	}
	for _, e := range es {
		o.seq++
		e.Seq, e.NextAttempt = o.seq, e.RecordedAt
		o.byKey[e.Key] = &e
		o.state[e.Key] = pending
	}
}

// Record adds e unless its key is in the outbox or was recorded earlier
// in this transaction. See [billing.OutboxTx.Record].
func (t *tx) Record(ctx context.Context, e billing.OutboxEntry) (bool, error) {
	if t.done {
		return false, errTxDone
	}
	if slices.ContainsFunc(t.recorded, func(r billing.OutboxEntry) bool { return r.Key == e.Key }) {
		return false, nil
	}
	t.s.mu.Lock()
	_, exists := t.s.outbox.byKey[e.Key]
	t.s.mu.Unlock()
	if exists {
		return false, nil
	}
	e.Payload = slices.Clone(e.Payload)
	e.Seq, e.Attempts, e.LastError, e.Claim, e.Dead = 0, 0, "", "", false
	t.recorded = append(t.recorded, e)
	return true, nil
}

// Claim claims each user's oldest pending entry that is due and not
// claimed. See [billing.Outbox.Claim].
func (s *Store) Claim(ctx context.Context, now, until time.Time, limit int) ([]billing.OutboxEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	heads := map[string]*billing.OutboxEntry{}
	for k, e := range s.outbox.byKey {
		if s.outbox.state[k] != pending {
			continue
		}
		if h, ok := heads[e.UserID]; !ok || e.Seq < h.Seq {
			heads[e.UserID] = e
		}
	}
	var due []*billing.OutboxEntry
	for _, e := range heads {
		if !e.NextAttempt.After(now) && !s.outbox.claimedUntil[e.Key].After(now) {
			due = append(due, e)
		}
	}
	slices.SortFunc(due, func(a, b *billing.OutboxEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	token := rand.Text()
	out := []billing.OutboxEntry{}
	for _, e := range due[:min(len(due), max(limit, 0))] {
		e.Claim = token
		s.outbox.claimedUntil[e.Key] = until
		out = append(out, copyEntry(*e))
	}
	return out, nil
}

// Delivered marks a pending entry delivered. See
// [billing.Outbox.Delivered].
func (s *Store) Delivered(ctx context.Context, key string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.outbox.byKey[key]; ok && s.outbox.state[key] == pending {
		s.outbox.state[key], s.outbox.deliveredAt[key] = delivered, at
		e.Claim = ""
		delete(s.outbox.claimedUntil, key)
	}
	return nil
}

// Failed records a failed delivery under a live claim. See
// [billing.Outbox.Failed].
func (s *Store) Failed(ctx context.Context, key, claim string, f billing.DeliveryFailure) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.outbox.byKey[key]
	if !ok || s.outbox.state[key] != pending || e.Claim != claim || claim == "" {
		return nil
	}
	e.Attempts++
	e.LastError, e.Claim = f.Error, ""
	delete(s.outbox.claimedUntil, key)
	if f.Dead {
		e.Dead = true
		s.outbox.state[key] = dead
	} else {
		e.NextAttempt = f.RetryAt
	}
	return nil
}

// DeadEntries lists dead entries after a Seq. See
// [billing.Outbox.DeadEntries].
func (s *Store) DeadEntries(ctx context.Context, afterSeq int64, limit int) ([]billing.OutboxEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []billing.OutboxEntry
	for k, e := range s.outbox.byKey {
		if s.outbox.state[k] == dead && e.Seq > afterSeq {
			out = append(out, copyEntry(*e))
		}
	}
	slices.SortFunc(out, func(a, b billing.OutboxEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	return out[:min(len(out), max(limit, 0))], nil
}

// Requeue makes a dead entry pending again. See [billing.Outbox.Requeue].
func (s *Store) Requeue(ctx context.Context, key string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.outbox.byKey[key]
	if !ok || s.outbox.state[key] != dead {
		return billing.ErrNotFound
	}
	e.Dead, e.Attempts, e.LastError, e.NextAttempt = false, 0, "", at
	s.outbox.state[key] = pending
	return nil
}

// DiscardDead removes a dead entry. See [billing.Outbox.DiscardDead].
func (s *Store) DiscardDead(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.outbox.byKey[key]; !ok || s.outbox.state[key] != dead {
		return billing.ErrNotFound
	}
	s.outbox.forget(key)
	return nil
}

// PruneDelivered removes entries delivered before cutoff. See
// [billing.Outbox.PruneDelivered].
func (s *Store) PruneDelivered(ctx context.Context, cutoff time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for k := range s.outbox.byKey {
		if s.outbox.state[k] == delivered && s.outbox.deliveredAt[k].Before(cutoff) {
			s.outbox.forget(k)
			n++
		}
	}
	return n, nil
}

// OutboxStats counts pending and dead entries. See
// [billing.Outbox.OutboxStats].
func (s *Store) OutboxStats(ctx context.Context) (billing.OutboxStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st billing.OutboxStats
	for k, e := range s.outbox.byKey {
		switch s.outbox.state[k] {
		case pending:
			st.Pending++
			if st.OldestPending.IsZero() || e.RecordedAt.Before(st.OldestPending) {
				st.OldestPending = e.RecordedAt
			}
		case dead:
			st.Dead++
		}
	}
	return st, nil
}

func (o *outbox) forget(key string) {
	delete(o.byKey, key)
	delete(o.state, key)
	delete(o.deliveredAt, key)
	delete(o.claimedUntil, key)
}

func copyEntry(e billing.OutboxEntry) billing.OutboxEntry {
	e.Payload = slices.Clone(e.Payload)
	return e
}
