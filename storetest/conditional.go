package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
)

// ---- ConditionalStore (run when the store implements it) ----

// conditional returns st as a ConditionalStore, or skips the test.
func conditional(t *testing.T, st billing.Store) billing.ConditionalStore {
	t.Helper()
	cs, ok := st.(billing.ConditionalStore)
	if !ok {
		t.Skip("the store does not implement billing.ConditionalStore")
	}
	return cs
}

// applyNewer calls ApplyNewer and checks what it may report.
func applyNewer(t *testing.T, cs billing.ConditionalStore, eventID string, s billing.Subscription) (saved, dup bool) {
	t.Helper()
	saved, dup, err := cs.ApplyNewer(t.Context(), eventID, s)
	require.NoError(t, err)
	require.False(t, saved && dup, "saved and duplicate at once")
	return saved, dup
}

// testConditionalCreates: a new record takes its user from the
// customer's link and starts with no invoice facts, and the event is
// recorded with it; when the store declines, nothing is recorded.
func testConditionalCreates(t *testing.T, st billing.Store) {
	cs := conditional(t, st)
	n := namer(t)
	require.NoError(t, link(t, st, n("user"), n("cus")))
	s := fullSub(n("sub"), "", n("cus"), at(10))
	s.Invoice = billing.Invoice{}
	s.OrderKey = 100
	saved, dup := applyNewer(t, cs, n("evt"), s)
	assert.False(t, dup)
	if !saved {
		assert.False(t, processed(t, st, n("evt")), "a declined event is not recorded")
		_, found := getSub(t, st, s.ID)
		assert.False(t, found)
		return
	}
	want := s
	want.UserID = n("user")
	requireSub(t, want, mustSub(t, st, s.ID))
	assert.True(t, processed(t, st, n("evt")))
	assert.Len(t, facts(t, st, n("user")).Subscriptions, 1)

	// The same event again: a duplicate, nothing changed.
	newer := s
	newer.Status, newer.OrderKey = "canceled", 200
	saved, dup = applyNewer(t, cs, n("evt"), newer)
	assert.False(t, saved)
	assert.True(t, dup, "a recorded event is a duplicate")
	requireSub(t, want, mustSub(t, st, s.ID))
}

// testConditionalCompareAndSwap: over an existing record, only a strictly
// greater key saves, and then the record keeps its owner and its invoice
// facts; anything else saves nothing and records nothing.
func testConditionalCompareAndSwap(t *testing.T, st billing.Store) {
	cs := conditional(t, st)
	n := namer(t)
	require.NoError(t, link(t, st, n("user"), n("cus")))
	stored := fullSub(n("sub"), n("user"), n("cus"), at(10))
	stored.OrderKey = 100
	saveSub(t, st, stored)

	for _, tc := range []struct {
		name string
		key  int64
	}{{"equal key", 100}, {"smaller key", 99}, {"zero key", 0}} {
		s := fullSub(n("sub"), "", n("cus"), at(20))
		s.Status, s.Invoice, s.OrderKey = "past_due", billing.Invoice{}, tc.key
		saved, dup := applyNewer(t, cs, n("evt_"+tc.name), s)
		assert.False(t, saved, tc.name)
		assert.False(t, dup, tc.name)
		assert.False(t, processed(t, st, n("evt_"+tc.name)), "%s: not saved, not recorded", tc.name)
		requireSub(t, stored, mustSub(t, st, stored.ID), tc.name)
	}

	// Another customer's state for this ID is not saved either.
	other := fullSub(n("sub"), "", n("cus_other"), at(30))
	other.OrderKey = 500
	require.NoError(t, link(t, st, n("user_other"), n("cus_other")))
	saved, _ := applyNewer(t, cs, n("evt_other"), other)
	assert.False(t, saved, "a record of another customer")
	requireSub(t, stored, mustSub(t, st, stored.ID))

	newer := fullSub(n("sub"), "", n("cus"), at(40))
	newer.Status, newer.CancelAtPeriodEnd, newer.Invoice, newer.OrderKey = "past_due", false, billing.Invoice{}, 101
	newer.Items = newer.Items[:1]
	saved, dup := applyNewer(t, cs, n("evt_newer"), newer)
	assert.False(t, dup)
	if !saved {
		assert.False(t, processed(t, st, n("evt_newer")))
		return
	}
	want := newer
	want.UserID, want.Invoice = n("user"), stored.Invoice
	requireSub(t, want, mustSub(t, st, stored.ID), "the new state, the stored owner and invoice facts")
	assert.True(t, processed(t, st, n("evt_newer")))
}

// testConditionalUnknownCustomer: a customer no user is linked to saves
// nothing and records nothing (billing then parks the event).
func testConditionalUnknownCustomer(t *testing.T, st billing.Store) {
	cs := conditional(t, st)
	n := namer(t)
	s := fullSub(n("sub"), "", n("cus_unlinked"), at(10))
	s.OrderKey = 100
	saved, dup := applyNewer(t, cs, n("evt"), s)
	assert.False(t, saved)
	assert.False(t, dup)
	assert.False(t, processed(t, st, n("evt")))
	_, found := getSub(t, st, s.ID)
	assert.False(t, found)
}

// testConditionalConcurrentSameEvent: the same event through ApplyNewer
// from 16 goroutines at once saves once; the others save nothing (they
// may report the duplicate, or decline), and the event is recorded once.
func testConditionalConcurrentSameEvent(t *testing.T, st billing.Store) {
	cs := conditional(t, st)
	n := namer(t)
	require.NoError(t, link(t, st, n("user"), n("cus")))
	s := fullSub(n("sub"), "", n("cus"), at(10))
	s.Invoice, s.OrderKey = billing.Invoice{}, 100
	const workers = 16
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		saves atomic.Int64
	)
	for range workers {
		wg.Go(func() {
			<-start
			saved, dup, err := cs.ApplyNewer(t.Context(), n("evt"), s)
			assert.NoError(t, err)
			assert.False(t, saved && dup)
			if saved {
				saves.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	assert.LessOrEqual(t, saves.Load(), int64(1), "saved at most once")
	if saves.Load() == 0 {
		assert.False(t, processed(t, st, n("evt")), "a store that declined recorded nothing")
		return
	}
	assert.True(t, processed(t, st, n("evt")))
	want := s
	want.UserID = n("user")
	requireSub(t, want, mustSub(t, st, s.ID))
}

// testConditionalConcurrentNewerStates: states of increasing keys, each
// under an event of its own, from 8 goroutines at once: the record ends
// with the greatest key's state, and exactly the events whose state was
// saved are recorded.
func testConditionalConcurrentNewerStates(t *testing.T, st billing.Store) {
	cs := conditional(t, st)
	n := namer(t)
	require.NoError(t, link(t, st, n("user"), n("cus")))
	const workers = 8
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		saved [workers]atomic.Bool
	)
	states := make([]billing.Subscription, workers)
	for i := range workers {
		s := fullSub(n("sub"), "", n("cus"), at(10+i))
		s.Invoice, s.OrderKey = billing.Invoice{}, int64(100+i)
		s.Items = s.Items[:1]
		s.Items[0].Quantity = int64(i + 1)
		states[i] = s
	}
	for i := range workers {
		wg.Go(func() {
			<-start
			ok, _, err := cs.ApplyNewer(t.Context(), fmt.Sprintf("%s_%d", n("evt"), i), states[i])
			assert.NoError(t, err)
			saved[i].Store(ok)
		})
	}
	close(start)
	wg.Wait()
	anySaved := false
	for i := range workers {
		assert.Equal(t, saved[i].Load(), processed(t, st, fmt.Sprintf("%s_%d", n("evt"), i)),
			"event %d is recorded exactly when its state was saved", i)
		anySaved = anySaved || saved[i].Load()
	}
	if !anySaved {
		return // a store that declines
	}
	got := mustSub(t, st, n("sub"))
	var best int
	for i := range workers {
		if saved[i].Load() {
			best = i
		}
	}
	want := states[best]
	want.UserID = n("user")
	requireSub(t, want, got, "the last saved state is the greatest key's")
	if saved[workers-1].Load() {
		assert.Equal(t, int64(100+workers-1), got.OrderKey)
	}
}

// testConditionalReportsPrevious: a PreviousReporter says what each
// saved swap replaced (nothing for a creation) and the saved record's
// user; a swap that does not save, or a duplicate, reports nothing.
func testConditionalReportsPrevious(t *testing.T, st billing.Store) {
	pr, ok := st.(billing.PreviousReporter)
	if !ok {
		t.Skip("the store does not implement billing.PreviousReporter")
	}
	n := namer(t)
	require.NoError(t, link(t, st, n("user"), n("cus")))
	first := fullSub(n("sub"), "", n("cus"), at(10))
	first.Invoice = billing.Invoice{}
	first.OrderKey = 100
	r, err := pr.ApplyNewerReporting(t.Context(), n("evt1"), first)
	require.NoError(t, err)
	if !r.Saved {
		assert.Equal(t, billing.NewerResult{}, r, "a store that declines reports nothing")
		return
	}
	assert.False(t, r.Found, "a creation replaced nothing")
	assert.Equal(t, n("user"), r.UserID, "the user of the customer's link")

	// Invoice facts stored meanwhile stay the record's, and are reported.
	withInvoice := mustSub(t, st, first.ID)
	withInvoice.Invoice = invoice("in_"+n("sub"), 20)
	saveSub(t, st, withInvoice)
	want := mustSub(t, st, first.ID)

	second := otherSub(n("sub"), "", n("cus"), at(20))
	second.OrderKey = 200
	r, err = pr.ApplyNewerReporting(t.Context(), n("evt2"), second)
	require.NoError(t, err)
	require.True(t, r.Saved)
	assert.True(t, r.Found)
	requireSub(t, want, r.Previous, "the record as it was")
	assert.Equal(t, n("user"), r.UserID)

	older := first
	older.OrderKey = 150
	r, err = pr.ApplyNewerReporting(t.Context(), n("evt3"), older)
	require.NoError(t, err)
	assert.Equal(t, billing.NewerResult{}, r, "not newer: nothing saved, nothing reported")
	assert.False(t, processed(t, st, n("evt3")))

	r, err = pr.ApplyNewerReporting(t.Context(), n("evt2"), second)
	require.NoError(t, err)
	assert.True(t, r.Duplicate)
	assert.False(t, r.Saved || r.Found)
}
