package memstore

import (
	"cmp"
	"context"
	"slices"

	"github.com/gobilling/billing"
)

var (
	_ billing.Checkpointer       = (*Store)(nil)
	_ billing.SubscriptionLister = (*Store)(nil)
)

// Checkpoint returns the value saved under name, or "". See
// [billing.Checkpointer].
func (s *Store) Checkpoint(ctx context.Context, name string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkpoints[name], nil
}

// SaveCheckpoint saves value under name; "" removes it. See
// [billing.Checkpointer].
func (s *Store) SaveCheckpoint(ctx context.Context, name, value string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if value == "" {
		delete(s.checkpoints, name)
	} else {
		s.checkpoints[name] = value
	}
	return nil
}

// ListSubscriptions returns the committed subscription records q
// selects, by ID. See [billing.SubscriptionLister].
func (s *Store) ListSubscriptions(ctx context.Context, q billing.SubscriptionQuery) ([]billing.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Limit <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	var subs []billing.Subscription
	for id, sub := range s.subs {
		if id > q.After && (len(q.Statuses) == 0 || slices.Contains(q.Statuses, sub.Status)) {
			subs = append(subs, copySub(sub))
		}
	}
	s.mu.Unlock()
	slices.SortFunc(subs, func(a, b billing.Subscription) int { return cmp.Compare(a.ID, b.ID) })
	return subs[:min(len(subs), q.Limit)], nil
}
