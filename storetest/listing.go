package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
)

// ---- Checkpointer (run when the store implements it) ----

func checkpointer(t *testing.T, st billing.Store) billing.Checkpointer {
	t.Helper()
	cp, ok := st.(billing.Checkpointer)
	if !ok {
		t.Skip("the store does not implement billing.Checkpointer")
	}
	return cp
}

func checkpoint(t *testing.T, cp billing.Checkpointer, name string) string {
	t.Helper()
	v, err := cp.Checkpoint(t.Context(), name)
	require.NoError(t, err)
	return v
}

func testCheckpointRoundTrip(t *testing.T, st billing.Store) {
	cp := checkpointer(t, st)
	n := namer(t)
	ctx := t.Context()
	assert.Empty(t, checkpoint(t, cp, n("job")), "no checkpoint saved yet")

	require.NoError(t, cp.SaveCheckpoint(ctx, n("job"), "sub_1"))
	require.NoError(t, cp.SaveCheckpoint(ctx, n("other"), "sub_9"))
	assert.Equal(t, "sub_1", checkpoint(t, cp, n("job")))

	require.NoError(t, cp.SaveCheckpoint(ctx, n("job"), "sub_2"), "saving again replaces")
	assert.Equal(t, "sub_2", checkpoint(t, cp, n("job")))
	assert.Equal(t, "sub_9", checkpoint(t, cp, n("other")), "names are independent")

	require.NoError(t, cp.SaveCheckpoint(ctx, n("job"), ""), "an empty value removes the checkpoint")
	assert.Empty(t, checkpoint(t, cp, n("job")))
	require.NoError(t, cp.SaveCheckpoint(ctx, n("job"), ""), "removing a checkpoint that is not there")
	assert.Equal(t, "sub_9", checkpoint(t, cp, n("other")))
}

func testCheckpointLongValue(t *testing.T, st billing.Store) {
	cp := checkpointer(t, st)
	n := namer(t)
	long := "sub_" + strings.Repeat("Zz9", 300) // more than 255 bytes, mixed case
	require.NoError(t, cp.SaveCheckpoint(t.Context(), n("job"), long))
	assert.Equal(t, long, checkpoint(t, cp, n("job")))
}

// ---- SubscriptionLister (run when the store implements it) ----
//
// The store must be empty: these tests expect to list only the records
// they save.

func subLister(t *testing.T, st billing.Store) billing.SubscriptionLister {
	t.Helper()
	l, ok := st.(billing.SubscriptionLister)
	if !ok {
		t.Skip("the store does not implement billing.SubscriptionLister")
	}
	return l
}

func listSubs(t *testing.T, l billing.SubscriptionLister, q billing.SubscriptionQuery) []billing.Subscription {
	t.Helper()
	subs, err := l.ListSubscriptions(t.Context(), q)
	require.NoError(t, err)
	return subs
}

func subIDs(subs []billing.Subscription) []string {
	out := []string{}
	for _, s := range subs {
		out = append(out, s.ID)
	}
	return out
}

func withStatus(s billing.Subscription, st billing.SubscriptionStatus) billing.Subscription {
	s.Status = st
	return s
}

func testListByStatus(t *testing.T, st billing.Store) {
	l := subLister(t, st)
	late1 := otherSub("sub_b_late", "user_1", "cus_1", at(0)) // past_due
	late2 := otherSub("sub_d_late", "user_2", "cus_2", at(0))
	live := fullSub("sub_a_live", "user_1", "cus_1", at(0)) // active
	trial := withStatus(fullSub("sub_c_trial", "user_3", "cus_3", at(0)), billing.SubscriptionTrialing)
	saveSub(t, st, late1, late2, live, trial, invoiceOnly("sub_e_inv", "user_3", "cus_3"))

	pastDue := listSubs(t, l, billing.SubscriptionQuery{Statuses: []billing.SubscriptionStatus{billing.SubscriptionPastDue}, Limit: 10})
	assert.Equal(t, normSubs([]billing.Subscription{late1, late2}), normSubs(pastDue), "the past_due records, whole, by ID")

	two := listSubs(t, l, billing.SubscriptionQuery{Statuses: []billing.SubscriptionStatus{billing.SubscriptionTrialing, billing.SubscriptionActive}, Limit: 10})
	assert.Equal(t, []string{"sub_a_live", "sub_c_trial"}, subIDs(two), "either status")

	all := listSubs(t, l, billing.SubscriptionQuery{Limit: 10})
	assert.Equal(t, []string{"sub_a_live", "sub_b_late", "sub_c_trial", "sub_d_late", "sub_e_inv"}, subIDs(all), "no status: every record")

	none := listSubs(t, l, billing.SubscriptionQuery{Statuses: []billing.SubscriptionStatus{billing.SubscriptionUnpaid}, Limit: 10})
	assert.Empty(t, none)
	assert.Empty(t, listSubs(t, l, billing.SubscriptionQuery{Limit: 0}), "a zero limit lists nothing")
}

func testListPages(t *testing.T, st billing.Store) {
	l := subLister(t, st)
	// Byte-wise order: upper case before lower case, "_" between.
	ids := []string{"sub_b", "sub_B", "sub_a", "sub_Z", "sub__", "sub_a0", "sub_0"}
	var subs []billing.Subscription
	for i, id := range ids {
		s := otherSub(id, "user_p", "cus_p", at(i))
		if i%3 == 0 {
			s = withStatus(s, billing.SubscriptionActive)
		}
		subs = append(subs, s)
	}
	saveSub(t, st, subs...)
	want := slices.Clone(ids)
	slices.Sort(want) // Go compares strings byte-wise

	var got []string
	after := ""
	for range len(ids) + 1 {
		page := listSubs(t, l, billing.SubscriptionQuery{After: after, Limit: 3})
		require.LessOrEqual(t, len(page), 3, "at most Limit")
		got = append(got, subIDs(page)...)
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].ID
	}
	assert.Equal(t, want, got, "pages of three, by ID byte-wise, each after the last of the one before")

	var pastDue []string
	for _, s := range subs {
		if s.Status == billing.SubscriptionPastDue {
			pastDue = append(pastDue, s.ID)
		}
	}
	slices.Sort(pastDue)
	first := listSubs(t, l, billing.SubscriptionQuery{Statuses: []billing.SubscriptionStatus{billing.SubscriptionPastDue}, Limit: 2})
	require.Len(t, first, 2, "Limit, with statuses")
	require.Len(t, listSubs(t, l, billing.SubscriptionQuery{Limit: 1}), 1, "Limit, without")
	rest := listSubs(t, l, billing.SubscriptionQuery{Statuses: []billing.SubscriptionStatus{billing.SubscriptionPastDue},
		After: first[len(first)-1].ID, Limit: 10})
	assert.Equal(t, pastDue, append(subIDs(first), subIDs(rest)...), "a status's pages")
}

func testListSeesCommitted(t *testing.T, st billing.Store) {
	l := subLister(t, st)
	kept := otherSub("sub_kept", "user_c", "cus_c", at(0))
	saveSub(t, st, kept)
	errFn := errors.New("storetest: fn failed")
	err := st.Apply(t.Context(), "", func(ctx context.Context, tx billing.Tx) error {
		if err := save(ctx, tx, otherSub("sub_new", "user_c", "cus_c", at(1))); err != nil {
			return err
		}
		if err := save(ctx, tx, withStatus(kept, billing.SubscriptionActive)); err != nil {
			return err
		}
		return errFn
	})
	require.ErrorIs(t, err, errFn)
	got := listSubs(t, l, billing.SubscriptionQuery{Limit: 10})
	assert.Equal(t, normSubs([]billing.Subscription{kept}), normSubs(got), "a failed transaction's records are not listed")

	// The records returned are copies.
	got[0].Items[0].PriceID = "price_changed_by_the_caller"
	again := listSubs(t, l, billing.SubscriptionQuery{Limit: 10})
	assert.Equal(t, normSubs([]billing.Subscription{kept}), normSubs(again), "a caller's change to a listed record is not the store's")

	saveSub(t, st, withStatus(kept, billing.SubscriptionCanceled))
	assert.Empty(t, listSubs(t, l, billing.SubscriptionQuery{Statuses: []billing.SubscriptionStatus{billing.SubscriptionPastDue}, Limit: 10}),
		"a record listed by the status it has now")
}
