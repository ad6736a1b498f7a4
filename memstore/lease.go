package memstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/gobilling/billing"
)

var _ billing.Leaser = (*Store)(nil)

// leaseKey names a lease of one Store.
type leaseKey struct {
	s    *Store
	name string
}

// leases holds the leases taken, of every Store, until they are released
// (so that a Store's leases need no field of its own, and a Store
// forgotten with no lease held is not kept alive).
var leases struct {
	mu   sync.Mutex
	held map[leaseKey]*lease
}

// Lease takes the lease called name of this Store: one holder at a time,
// within the process (a memstore is one process's anyway). A held name
// returns an error wrapping [billing.ErrLeaseHeld] at once. The lease is
// held until released. See [billing.Leaser].
func (s *Store) Lease(ctx context.Context, name string) (billing.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k := leaseKey{s, name}
	leases.mu.Lock()
	defer leases.mu.Unlock()
	if _, ok := leases.held[k]; ok {
		return nil, fmt.Errorf("memstore: lease %q: %w", name, billing.ErrLeaseHeld)
	}
	if leases.held == nil {
		leases.held = make(map[leaseKey]*lease)
	}
	l := &lease{key: k}
	leases.held[k] = l
	return l, nil
}

// lease is a held lease of a memstore.
type lease struct {
	key leaseKey
}

// Check returns nil until the lease is released.
func (l *lease) Check(ctx context.Context) error {
	leases.mu.Lock()
	defer leases.mu.Unlock()
	if leases.held[l.key] != l {
		return fmt.Errorf("memstore: lease %q: %w", l.key.name, billing.ErrLeaseLost)
	}
	return nil
}

// Release frees the lease; releasing it again does nothing.
func (l *lease) Release(ctx context.Context) error {
	leases.mu.Lock()
	defer leases.mu.Unlock()
	if leases.held[l.key] == l {
		delete(leases.held, l.key)
	}
	return nil
}
