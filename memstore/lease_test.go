package memstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/memstore"
	"github.com/gobilling/billing/storetest"
)

// TestLeaseConformance runs storetest's Lease group on memstore.
func TestLeaseConformance(t *testing.T) {
	storetest.RunLease(t, func(t *testing.T) billing.Store { return memstore.New() })
}

// TestLeasePerStore: a lease is a Store's own: another Store's lease of
// the same name is another lease.
func TestLeasePerStore(t *testing.T) {
	a, b := memstore.New(), memstore.New()
	la, err := a.Lease(t.Context(), billing.MaintenanceLease)
	require.NoError(t, err)
	lb, err := b.Lease(t.Context(), billing.MaintenanceLease)
	require.NoError(t, err)
	_, err = a.Lease(t.Context(), billing.MaintenanceLease)
	require.ErrorIs(t, err, billing.ErrLeaseHeld)
	require.NoError(t, la.Release(t.Context()))
	require.NoError(t, lb.Release(t.Context()))
}
