package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
)

// ---- Lease (run when the store implements billing.Leaser) ----

// leaseGroup is the conformance group of [billing.Leaser].
func leaseGroup() group {
	return group{"Lease", []test{
		{"ExcludesSecondHolder", testLeaseExcludes},
		{"NamesAreIndependent", testLeaseNames},
		{"ReleaseFreesIt", testLeaseRelease},
		{"OutlivesItsContext", testLeaseOutlivesContext},
		{"ConcurrentTakers", testLeaseConcurrent},
	}}
}

// RunLease runs the Lease group of [Run] alone: that a store's
// [billing.Leaser] gives a lease to one holder at a time. It skips when
// the store does not implement billing.Leaser. newStore is as for Run.
func RunLease(t *testing.T, newStore func(t *testing.T) billing.Store) {
	t.Helper()
	g := leaseGroup()
	t.Run(g.name, func(t *testing.T) {
		t.Parallel()
		for _, tc := range g.tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				st := newStore(t)
				require.NotNil(t, st, "newStore returned nil")
				tc.run(t, st)
			})
		}
	})
}

// leaser returns st as a Leaser, or skips the test.
func leaser(t *testing.T, st billing.Store) billing.Leaser {
	t.Helper()
	l, ok := st.(billing.Leaser)
	if !ok {
		t.Skip("the store does not implement billing.Leaser")
	}
	return l
}

// take takes a lease that must be free, released when the test ends.
func take(t *testing.T, ls billing.Leaser, name string) billing.Lease {
	t.Helper()
	l, err := ls.Lease(t.Context(), name)
	require.NoError(t, err, "Lease(%q) of a free lease", name)
	require.NotNil(t, l)
	t.Cleanup(func() { _ = l.Release(context.Background()) })
	return l
}

// requireHeld checks that name is held by someone else.
func requireHeld(t *testing.T, ls billing.Leaser, name string) {
	t.Helper()
	l, err := ls.Lease(t.Context(), name)
	if l != nil {
		_ = l.Release(context.Background())
	}
	require.ErrorIs(t, err, billing.ErrLeaseHeld, "Lease(%q) of a held lease", name)
	require.Nil(t, l, "no lease with an error")
}

// testLeaseExcludes: a held lease is refused to a second taker (at once,
// without waiting), and its holder's Check says it holds it.
func testLeaseExcludes(t *testing.T, st billing.Store) {
	ls := leaser(t, st)
	name := namer(t)("lease")
	l := take(t, ls, name)
	requireHeld(t, ls, name)
	requireHeld(t, ls, name)
	require.NoError(t, l.Check(t.Context()))
}

// testLeaseNames: leases of different names do not exclude each other.
func testLeaseNames(t *testing.T, st billing.Store) {
	ls := leaser(t, st)
	n := namer(t)
	a := take(t, ls, n("a"))
	b := take(t, ls, n("b"))
	require.NoError(t, a.Check(t.Context()))
	require.NoError(t, b.Check(t.Context()))
	requireHeld(t, ls, n("a"))
	requireHeld(t, ls, n("b"))
}

// testLeaseRelease: a released lease can be taken again at once; the
// released one reports itself lost, and releasing it again does nothing
// (not even to its new holder).
func testLeaseRelease(t *testing.T, st billing.Store) {
	ls := leaser(t, st)
	name := namer(t)("lease")
	first := take(t, ls, name)
	require.NoError(t, first.Release(t.Context()))
	assert.ErrorIs(t, first.Check(t.Context()), billing.ErrLeaseLost)

	second := take(t, ls, name)
	require.NoError(t, first.Release(t.Context()), "releasing again does nothing")
	require.NoError(t, second.Check(t.Context()), "the second holder still holds it")
	requireHeld(t, ls, name)
	require.NoError(t, second.Release(t.Context()))
	third := take(t, ls, name)
	require.NoError(t, third.Check(t.Context()))
}

// testLeaseOutlivesContext: the context given to Lease bounds the taking
// only.
func testLeaseOutlivesContext(t *testing.T, st billing.Store) {
	ls := leaser(t, st)
	name := namer(t)("lease")
	ctx, cancel := context.WithCancel(t.Context())
	l, err := ls.Lease(ctx, name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Release(context.Background()) })
	cancel()
	require.NoError(t, l.Check(t.Context()), "held after its context ended")
	requireHeld(t, ls, name)
}

// testLeaseConcurrent: of takers racing for a free lease, exactly one
// gets it; the others get ErrLeaseHeld.
func testLeaseConcurrent(t *testing.T, st billing.Store) {
	ls := leaser(t, st)
	name := namer(t)("lease")
	const takers = 8
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		held  []billing.Lease
		other []error
	)
	start := make(chan struct{})
	for range takers {
		wg.Go(func() {
			<-start
			l, err := ls.Lease(t.Context(), name)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				held = append(held, l)
			case !errors.Is(err, billing.ErrLeaseHeld):
				other = append(other, err)
			}
		})
	}
	close(start)
	wg.Wait()
	for _, l := range held {
		t.Cleanup(func() { _ = l.Release(context.Background()) })
	}
	require.Empty(t, other, "every taker but one gets ErrLeaseHeld")
	require.Len(t, held, 1, "one taker holds the lease")
}
