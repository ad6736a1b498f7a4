package billing_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/memstore"
	"github.com/gobilling/billing/storetest"
)

// TestLifecyclesOnAHostileStore runs every lifecycle on a store that holds
// billing to Store.Apply's contract: it runs every fn twice (the first
// run rolled back, as a store retrying a deadlock does), and fails any
// call of the Store's own methods from inside fn (fn must use only its
// tx).
func TestLifecyclesOnAHostileStore(t *testing.T) {
	t.Parallel()
	storetest.RunLifecycles(t, func(t *testing.T) billing.Store {
		m := memstore.New()
		return &hostileStore{Store: m, Outbox: m, t: t}
	}, storetest.LifecycleOptions{})
}

// hostileStore keeps an outbox too: changes recorded in the first,
// rolled-back run of fn must not be kept or delivered.
type hostileStore struct {
	billing.Store
	billing.Outbox
	t *testing.T
}

type inFnKey struct{}

var errRunAgain = errors.New("hostileStore: rolled back to run fn again")

func (s *hostileStore) Apply(ctx context.Context, eventID string, fn func(context.Context, billing.Tx) error) error {
	for run := 0; ; run++ {
		err := s.Store.Apply(ctx, eventID, func(ctx context.Context, tx billing.Tx) error {
			if err := fn(context.WithValue(ctx, inFnKey{}, true), tx); err != nil {
				return err
			}
			if run == 0 {
				return errRunAgain
			}
			return nil
		})
		if run > 0 || !errors.Is(err, errRunAgain) {
			return err
		}
	}
}

// outside fails the test when ctx comes from inside an Apply's fn.
func (s *hostileStore) outside(ctx context.Context, method string) {
	if ctx.Value(inFnKey{}) != nil {
		s.t.Errorf("Store.%s called from inside Apply's fn", method)
	}
}

func (s *hostileStore) Processed(ctx context.Context, id string) (bool, error) {
	s.outside(ctx, "Processed")
	return s.Store.Processed(ctx, id)
}

func (s *hostileStore) CustomerID(ctx context.Context, userID string) (string, error) {
	s.outside(ctx, "CustomerID")
	return s.Store.CustomerID(ctx, userID)
}

func (s *hostileStore) Facts(ctx context.Context, userID string) (billing.Facts, error) {
	s.outside(ctx, "Facts")
	return s.Store.Facts(ctx, userID)
}

func (s *hostileStore) Park(ctx context.Context, ev billing.ParkedEvent) error {
	s.outside(ctx, "Park")
	return s.Store.Park(ctx, ev)
}

func (s *hostileStore) ParkedEvent(ctx context.Context, id string) (billing.ParkedEvent, error) {
	s.outside(ctx, "ParkedEvent")
	return s.Store.ParkedEvent(ctx, id)
}

func (s *hostileStore) ParkedEvents(ctx context.Context, after billing.ParkedCursor, limit int) ([]billing.ParkedEvent, error) {
	s.outside(ctx, "ParkedEvents")
	return s.Store.ParkedEvents(ctx, after, limit)
}

func (s *hostileStore) CountParked(ctx context.Context) (int64, error) {
	s.outside(ctx, "CountParked")
	return s.Store.CountParked(ctx)
}

func (s *hostileStore) PruneParked(ctx context.Context, cutoff time.Time) (int64, error) {
	s.outside(ctx, "PruneParked")
	return s.Store.PruneParked(ctx, cutoff)
}

func (s *hostileStore) Unpark(ctx context.Context, id string) error {
	s.outside(ctx, "Unpark")
	return s.Store.Unpark(ctx, id)
}
