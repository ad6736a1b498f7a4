package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
)

// ---- EventLister (run when the store implements it) ----
//
// The store must be empty: these tests expect to list only the events
// they record.

// lister returns st as an EventLister, or skips the test.
func lister(t *testing.T, st billing.Store) billing.EventLister {
	t.Helper()
	l, ok := st.(billing.EventLister)
	if !ok {
		t.Skip("the store does not implement billing.EventLister")
	}
	return l
}

// listed is what a test compares of a listed event: all but its time.
type listed struct{ ID, Type, ObjectID, Via string }

// recentEvents lists up to limit events and checks their order: newest
// first, by ProcessedAt, then ID descending; every ProcessedAt set.
func recentEvents(t *testing.T, l billing.EventLister, limit int) []listed {
	t.Helper()
	evs, err := l.RecentEvents(t.Context(), limit)
	require.NoError(t, err, "RecentEvents(%d)", limit)
	require.LessOrEqual(t, len(evs), limit, "RecentEvents(%d) returns at most limit events", limit)
	out := make([]listed, 0, len(evs))
	for i, ev := range evs {
		assert.False(t, ev.ProcessedAt.IsZero(), "event %s has its ProcessedAt", ev.ID)
		if i > 0 {
			prev := evs[i-1]
			c := prev.ProcessedAt.Compare(ev.ProcessedAt)
			assert.True(t, c > 0 || (c == 0 && prev.ID > ev.ID),
				"newest first, by ProcessedAt then ID descending: %s (%s) before %s (%s)",
				prev.ID, utc(prev.ProcessedAt), ev.ID, utc(ev.ProcessedAt))
		}
		out = append(out, listed{ev.ID, ev.Type, ev.ObjectID, ev.Via})
	}
	return out
}

// withInfo is ctx as billing's context of an Apply tells of its event.
func withInfo(ctx context.Context, typ, objectID, via string) context.Context {
	return billing.ContextWithEventInfo(ctx, billing.EventInfo{Type: typ, ObjectID: objectID, Via: via})
}

// applyEvent records eventID in an Apply whose context tells info (none
// when info is nil), linking a user so that the transaction writes.
func applyEvent(t *testing.T, st billing.Store, eventID string, info *billing.EventInfo) {
	t.Helper()
	ctx := t.Context()
	if info != nil {
		ctx = billing.ContextWithEventInfo(ctx, *info)
	}
	require.NoError(t, st.Apply(ctx, eventID, func(ctx context.Context, tx billing.Tx) error {
		return tx.LinkCustomer(ctx, "user_"+eventID, "cus_"+eventID)
	}))
}

// testEventsKeepInfo: each event is listed with the type, object ID and
// via its Apply's context told, the latest first.
func testEventsKeepInfo(t *testing.T, st billing.Store) {
	l := lister(t, st)
	n := namer(t)
	assert.Empty(t, recentEvents(t, l, 10), "an empty store lists nothing")
	want := []listed{
		{n("evt_1"), "customer.subscription.created", n("sub"), billing.ViaWebhook},
		{n("evt_2"), "invoice.paid", n("in"), billing.ViaCatchUp},
		{n("evt_3"), "checkout.session.completed", n("cs"), billing.ViaReplay},
	}
	// Recorded in ID order: whether their times differ or tie, the
	// latest is listed first.
	for _, ev := range want {
		applyEvent(t, st, ev.ID, &billing.EventInfo{Type: ev.Type, ObjectID: ev.ObjectID, Via: ev.Via})
	}
	assert.Equal(t, []listed{want[2], want[1], want[0]}, recentEvents(t, l, 10))
}

// testEventsLimit: at most limit events, the latest.
func testEventsLimit(t *testing.T, st billing.Store) {
	l := lister(t, st)
	n := namer(t)
	var all []listed
	for i := range 5 {
		ev := listed{n("evt_" + string(rune('1'+i))), "customer.subscription.updated", n("sub"), billing.ViaWebhook}
		applyEvent(t, st, ev.ID, &billing.EventInfo{Type: ev.Type, ObjectID: ev.ObjectID, Via: ev.Via})
		all = append([]listed{ev}, all...)
	}
	assert.Equal(t, all[:1], recentEvents(t, l, 1))
	assert.Equal(t, all[:3], recentEvents(t, l, 3))
	assert.Equal(t, all, recentEvents(t, l, 5))
	assert.Equal(t, all, recentEvents(t, l, 100))
}

// testEventsWithoutInfo: an Apply whose context tells nothing of its
// event records it all the same, listed with empty fields.
func testEventsWithoutInfo(t *testing.T, st billing.Store) {
	l := lister(t, st)
	n := namer(t)
	applyEvent(t, st, n("evt"), nil)
	assert.Equal(t, []listed{{ID: n("evt")}}, recentEvents(t, l, 10))
	assert.True(t, processed(t, st, n("evt")))
}

// testEventsRolledBack: an Apply that fails records nothing, so lists
// nothing; neither does one without an event ID.
func testEventsRolledBack(t *testing.T, st billing.Store) {
	l := lister(t, st)
	n := namer(t)
	errFn := errors.New("storetest: fn failed")
	ctx := withInfo(t.Context(), "invoice.paid", n("in"), billing.ViaWebhook)
	err := st.Apply(ctx, n("evt_failed"), func(ctx context.Context, tx billing.Tx) error {
		if err := tx.LinkCustomer(ctx, n("user"), n("cus")); err != nil {
			return err
		}
		return errFn
	})
	require.ErrorIs(t, err, errFn)
	require.NoError(t, st.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
		return tx.LinkCustomer(ctx, n("user"), n("cus"))
	}))
	assert.Empty(t, recentEvents(t, l, 10), "a rolled back Apply, and one without an event ID, record nothing")

	// The failed event applied again is recorded once, with its info.
	applyEvent(t, st, n("evt_failed"), &billing.EventInfo{Type: "invoice.paid", ObjectID: n("in"), Via: billing.ViaCatchUp})
	assert.Equal(t, []listed{{n("evt_failed"), "invoice.paid", n("in"), billing.ViaCatchUp}}, recentEvents(t, l, 10))
}

// testEventsDuplicateKeepsFirst: a duplicate changes nothing of the
// record, whatever its context tells.
func testEventsDuplicateKeepsFirst(t *testing.T, st billing.Store) {
	l := lister(t, st)
	n := namer(t)
	first := listed{n("evt"), "customer.subscription.updated", n("sub"), billing.ViaWebhook}
	applyEvent(t, st, first.ID, &billing.EventInfo{Type: first.Type, ObjectID: first.ObjectID, Via: first.Via})
	before, err := l.RecentEvents(t.Context(), 10)
	require.NoError(t, err)

	ctx := withInfo(t.Context(), "invoice.paid", n("other"), billing.ViaReplay)
	err = st.Apply(ctx, first.ID, func(ctx context.Context, tx billing.Tx) error { return nil })
	require.ErrorIs(t, err, billing.ErrDuplicateEvent)
	if cs, ok := st.(billing.ConditionalStore); ok {
		require.NoError(t, link(t, st, n("user"), n("cus")))
		s := fullSub(n("sub"), "", n("cus"), at(10))
		s.OrderKey = 100
		saved, _, err := cs.ApplyNewer(ctx, first.ID, s)
		require.NoError(t, err)
		assert.False(t, saved, "ApplyNewer of a recorded event saves nothing")
	}
	after, err := l.RecentEvents(t.Context(), 10)
	require.NoError(t, err)
	assert.Equal(t, []listed{first}, recentEvents(t, l, 10))
	require.Len(t, after, 1)
	assert.True(t, before[0].ProcessedAt.Equal(after[0].ProcessedAt), "the first record's time is kept")
}

// testEventsApplyNewer: ApplyNewer keeps what its context tells of the
// event when it saves, and records nothing when it does not.
func testEventsApplyNewer(t *testing.T, st billing.Store) {
	l := lister(t, st)
	cs, ok := st.(billing.ConditionalStore)
	if !ok {
		t.Skip("the store does not implement billing.ConditionalStore")
	}
	n := namer(t)
	require.NoError(t, link(t, st, n("user"), n("cus")))
	s := fullSub(n("sub"), "", n("cus"), at(10))
	s.Invoice = billing.Invoice{}
	s.OrderKey = 100
	ctx := withInfo(t.Context(), "customer.subscription.created", s.ID, billing.ViaWebhook)
	saved, dup, err := cs.ApplyNewer(ctx, n("evt_1"), s)
	require.NoError(t, err)
	require.False(t, dup)
	if !saved {
		assert.Empty(t, recentEvents(t, l, 10), "a declined event is not recorded")
		return
	}
	want := []listed{{n("evt_1"), "customer.subscription.created", s.ID, billing.ViaWebhook}}
	assert.Equal(t, want, recentEvents(t, l, 10))

	// Not newer: nothing recorded.
	older := s
	older.OrderKey = 50
	saved, dup, err = cs.ApplyNewer(withInfo(t.Context(), "customer.subscription.updated", s.ID, billing.ViaCatchUp), n("evt_2"), older)
	require.NoError(t, err)
	assert.False(t, saved || dup)
	assert.Equal(t, want, recentEvents(t, l, 10), "an event ApplyNewer does not save is not recorded")

	// Newer, with no info in its context: recorded with empty fields.
	newer := s
	newer.Status, newer.OrderKey = "past_due", 200
	saved, _, err = cs.ApplyNewer(t.Context(), n("evt_3"), newer)
	require.NoError(t, err)
	if saved {
		want = append([]listed{{ID: n("evt_3")}}, want...)
	}
	assert.Equal(t, want, recentEvents(t, l, 10))
}

// testEventsLongInfo: what a context tells is kept whole up to 255
// bytes, the longest ID billing stores.
func testEventsLongInfo(t *testing.T, st billing.Store) {
	l := lister(t, st)
	n := namer(t)
	long := func(prefix string) string { return prefix + strings.Repeat("x", 255-len(prefix)) }
	info := billing.EventInfo{Type: long("type."), ObjectID: long("sub_"), Via: billing.ViaReplay}
	applyEvent(t, st, n("evt"), &info)
	assert.Equal(t, []listed{{n("evt"), info.Type, info.ObjectID, info.Via}}, recentEvents(t, l, 10))
}
