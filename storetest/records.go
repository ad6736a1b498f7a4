package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
)

// ---- not found ----

func testCustomerIDUnknown(t *testing.T, st billing.Store) {
	n := namer(t)
	c, err := st.CustomerID(t.Context(), n("user"))
	require.ErrorIs(t, err, billing.ErrNotFound)
	assert.Empty(t, c)
}

func testUserIDUnknown(t *testing.T, st billing.Store) {
	n := namer(t)
	u, err := userOf(t, st, n("cus"))
	require.ErrorIs(t, err, billing.ErrNotFound)
	assert.Empty(t, u)
}

func testSubscriptionUnknown(t *testing.T, st billing.Store) {
	n := namer(t)
	var (
		found bool
		err   error
	)
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		_, found, err = tx.Subscription(ctx, n("sub"))
		return nil
	})
	require.NoError(t, err, "Subscription of an unknown ID is not an error")
	assert.False(t, found)
}

func testFactsUnknown(t *testing.T, st billing.Store) {
	n := namer(t)
	f, err := st.Facts(t.Context(), n("user"))
	require.NoError(t, err)
	assert.Equal(t, n("user"), f.UserID)
	assert.Empty(t, f.CustomerID)
	assert.Empty(t, f.Subscriptions)
	assert.Empty(t, f.Grants)
}

func testProcessedUnknown(t *testing.T, st billing.Store) {
	n := namer(t)
	assert.False(t, processed(t, st, n("evt")))
	assert.False(t, processed(t, st, ""), "Processed of the empty event ID")
}

// ---- LinkCustomer ----

func testLinkAndFind(t *testing.T, st billing.Store) {
	n := namer(t)
	require.NoError(t, link(t, st, n("user"), n("cus")))

	assert.Equal(t, n("cus"), customerOf(t, st, n("user")))
	u, err := userOf(t, st, n("cus"))
	require.NoError(t, err)
	assert.Equal(t, n("user"), u)
	assert.Equal(t, n("cus"), facts(t, st, n("user")).CustomerID)
}

func testRelinkSamePair(t *testing.T, st billing.Store) {
	n := namer(t)
	require.NoError(t, link(t, st, n("user"), n("cus")))
	require.NoError(t, link(t, st, n("user"), n("cus")), "relinking in a later transaction")
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		if err := tx.LinkCustomer(ctx, n("user"), n("cus")); err != nil {
			return err
		}
		return tx.LinkCustomer(ctx, n("user"), n("cus"))
	})

	assert.Equal(t, n("cus"), customerOf(t, st, n("user")))
	u, err := userOf(t, st, n("cus"))
	require.NoError(t, err)
	assert.Equal(t, n("user"), u)
}

func testLinkUserConflict(t *testing.T, st billing.Store) {
	n := namer(t)
	require.NoError(t, link(t, st, n("user"), n("cus1")))
	require.ErrorIs(t, link(t, st, n("user"), n("cus2")), billing.ErrCustomerConflict)

	assert.Equal(t, n("cus1"), customerOf(t, st, n("user")))
	assert.Equal(t, n("cus1"), facts(t, st, n("user")).CustomerID)
	_, err := userOf(t, st, n("cus2"))
	require.ErrorIs(t, err, billing.ErrNotFound, "the conflicting customer must stay unlinked")
	u, err := userOf(t, st, n("cus1"))
	require.NoError(t, err)
	assert.Equal(t, n("user"), u)
}

func testLinkCustomerConflict(t *testing.T, st billing.Store) {
	n := namer(t)
	require.NoError(t, link(t, st, n("user1"), n("cus")))
	require.ErrorIs(t, link(t, st, n("user2"), n("cus")), billing.ErrCustomerConflict)

	u, err := userOf(t, st, n("cus"))
	require.NoError(t, err)
	assert.Equal(t, n("user1"), u)
	_, err = st.CustomerID(t.Context(), n("user2"))
	require.ErrorIs(t, err, billing.ErrNotFound, "the conflicting user must stay unlinked")
	assert.Empty(t, facts(t, st, n("user2")).CustomerID)
	assert.Equal(t, n("cus"), customerOf(t, st, n("user1")))
}

func testLinkConflictWithinTx(t *testing.T, st billing.Store) {
	n := namer(t)
	var first, userConflict, customerConflict error
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		first = tx.LinkCustomer(ctx, n("user1"), n("cus1"))
		userConflict = tx.LinkCustomer(ctx, n("user1"), n("cus2"))
		customerConflict = tx.LinkCustomer(ctx, n("user2"), n("cus1"))
		return nil
	})
	require.NoError(t, first)
	require.ErrorIs(t, userConflict, billing.ErrCustomerConflict, "a transaction must see its own link")
	require.ErrorIs(t, customerConflict, billing.ErrCustomerConflict, "a transaction must see its own link")

	assert.Equal(t, n("cus1"), customerOf(t, st, n("user1")))
	_, err := st.CustomerID(t.Context(), n("user2"))
	require.ErrorIs(t, err, billing.ErrNotFound)
	_, err = userOf(t, st, n("cus2"))
	require.ErrorIs(t, err, billing.ErrNotFound)
}

// ---- Subscription ----

func testSubscriptionRoundTrip(t *testing.T, st billing.Store) {
	n := namer(t)
	a := fullSub(n("sub_a"), n("user"), n("cus"), at(0))
	b := otherSub(n("sub_b"), n("user"), n("cus"), at(1))
	saveSub(t, st, a, b)

	requireSub(t, a, mustSub(t, st, a.ID), "tx.Subscription")
	requireSub(t, b, mustSub(t, st, b.ID), "tx.Subscription")
	assert.ElementsMatch(t, []billing.Subscription{a, b}, normSubs(facts(t, st, n("user")).Subscriptions), "Facts")
}

func testSubscriptionZeroFields(t *testing.T, st billing.Store) {
	n := namer(t)
	s := billing.Subscription{
		ID:         n("sub"),
		CustomerID: n("cus"),
		UserID:     n("user"),
		Status:     "incomplete",
		Version:    at(0),
	}
	zeroItem := billing.Subscription{
		ID:         n("sub_item"),
		CustomerID: n("cus"),
		UserID:     n("user"),
		Status:     "active",
		Items:      []billing.Item{{PriceID: "price_zero"}},
		Version:    at(0),
	}
	saveSub(t, st, s, zeroItem)

	got := mustSub(t, st, s.ID)
	requireSub(t, s, got)
	for name, tm := range map[string]time.Time{
		"CancelAt": got.CancelAt, "CanceledAt": got.CanceledAt, "EndedAt": got.EndedAt,
		"TrialStart": got.TrialStart, "TrialEnd": got.TrialEnd,
		"Invoice.Created": got.Invoice.Created, "Invoice.NextPaymentAttempt": got.Invoice.NextPaymentAttempt,
	} {
		assert.True(t, tm.IsZero(), "%s must stay zero, got %v", name, tm)
	}
	assert.Empty(t, got.Items)
	assert.False(t, got.CancelAtPeriodEnd)
	assert.Equal(t, billing.Invoice{}, normInvoice(got.Invoice))

	got = mustSub(t, st, zeroItem.ID)
	requireSub(t, zeroItem, got)
	require.Len(t, got.Items, 1)
	assert.True(t, got.Items[0].CurrentPeriodStart.IsZero(), "CurrentPeriodStart must stay zero, got %v", got.Items[0].CurrentPeriodStart)
	assert.True(t, got.Items[0].CurrentPeriodEnd.IsZero(), "CurrentPeriodEnd must stay zero, got %v", got.Items[0].CurrentPeriodEnd)
}

// testSaveReplaces saves states that billing would call older, or a step
// back, over newer ones: the store must not interpret anything.
func testSaveReplaces(t *testing.T, st billing.Store) {
	n := namer(t)
	id := n("sub")
	only := func(want billing.Subscription, msg string) {
		t.Helper()
		requireSub(t, want, mustSub(t, st, id), msg)
		f := facts(t, st, n("user"))
		require.Len(t, f.Subscriptions, 1, "%s: Facts must hold one record", msg)
		requireSub(t, want, f.Subscriptions[0], "%s: Facts", msg)
	}

	first := fullSub(id, n("user"), n("cus"), at(100))
	saveSub(t, st, first)
	only(first, "created")

	older := billing.Subscription{
		ID:         id,
		UserID:     n("user"),
		CustomerID: n("cus"),
		Status:     "incomplete",
		Items:      []billing.Item{{PriceID: "price_pro", Quantity: 1, CurrentPeriodStart: at(0), CurrentPeriodEnd: at(30 * day)}},
		Version:    at(50),
	}
	saveSub(t, st, older)
	only(older, "an older version, fewer items, times and invoice facts cleared")

	bare := invoiceOnly(id, n("user"), n("cus"))
	saveSub(t, st, bare)
	only(bare, "no status and a zero version again")

	canceled := otherSub(id, n("user"), n("cus"), at(200))
	canceled.Status = "canceled"
	saveSub(t, st, canceled)
	only(canceled, "canceled")

	active := fullSub(id, n("user"), n("cus"), at(10))
	active.Invoice = billing.Invoice{}
	saveSub(t, st, active)
	only(active, "active, older, after canceled")

	// Several saves in one transaction: the last one is kept.
	last := otherSub(id, n("user"), n("cus"), at(5))
	saveSub(t, st, first, older, bare, last)
	only(last, "the last of several saves in one transaction")
}

func testSaveMovesRecord(t *testing.T, st billing.Store) {
	n := namer(t)
	first := fullSub(n("sub"), n("user1"), n("cus1"), at(0))
	saveSub(t, st, first)
	moved := otherSub(n("sub"), n("user2"), n("cus2"), at(1))
	saveSub(t, st, moved)

	requireSub(t, moved, mustSub(t, st, moved.ID))
	assert.Empty(t, facts(t, st, n("user1")).Subscriptions, "the record no longer names user1")
	assert.Equal(t, []billing.Subscription{moved}, normSubs(facts(t, st, n("user2")).Subscriptions))
}

func testInvoiceOnlyRecord(t *testing.T, st billing.Store) {
	n := namer(t)
	inv := invoiceOnly(n("sub"), n("user"), n("cus"))
	saveSub(t, st, inv)

	got := mustSub(t, st, inv.ID)
	requireSub(t, inv, got)
	assert.Empty(t, got.Status)
	assert.True(t, got.Version.IsZero(), "Version must stay zero, got %v", got.Version)
	assert.Equal(t, []billing.Subscription{inv}, normSubs(facts(t, st, n("user")).Subscriptions), "Facts")

	// The subscription's state joins the invoice facts.
	full := fullSub(inv.ID, n("user"), n("cus"), at(0))
	full.Invoice = inv.Invoice
	saveSub(t, st, full)
	requireSub(t, full, mustSub(t, st, inv.ID))
	assert.Equal(t, []billing.Subscription{full}, normSubs(facts(t, st, n("user")).Subscriptions), "Facts")
}

func testSaveInFailedTx(t *testing.T, st billing.Store) {
	n := namer(t)
	errFn := errors.New("storetest: fn failed")
	kept := fullSub(n("sub_kept"), n("user"), n("cus"), at(0))
	saveSub(t, st, kept)

	err := st.Apply(t.Context(), n("evt"), func(ctx context.Context, tx billing.Tx) error {
		for _, s := range []billing.Subscription{
			otherSub(n("sub_new"), n("user"), n("cus"), at(1)),
			otherSub(kept.ID, n("user"), n("cus"), at(2)),
			invoiceOnly(n("sub_inv"), n("user"), n("cus")),
		} {
			if err := save(ctx, tx, s); err != nil {
				return err
			}
		}
		return errFn
	})
	require.ErrorIs(t, err, errFn, "Apply must return fn's error")

	for _, id := range []string{n("sub_new"), n("sub_inv")} {
		_, found := getSub(t, st, id)
		assert.False(t, found, "%s was created by a failed transaction", id)
	}
	requireSub(t, kept, mustSub(t, st, kept.ID), "replaced by a failed transaction")
	assert.Equal(t, []billing.Subscription{kept}, normSubs(facts(t, st, n("user")).Subscriptions))
	assert.False(t, processed(t, st, n("evt")))
}

// ---- Lock ----

func testLockUserNothingStored(t *testing.T, st billing.Store) {
	n := namer(t)
	s := fullSub(n("sub"), n("user"), n("cus"), at(0))
	g := grant(n("cs"), n("user"), n("cus"), 0)
	require.NoError(t, st.Apply(t.Context(), n("evt"), func(ctx context.Context, tx billing.Tx) error {
		if err := tx.LockUser(ctx, n("user")); err != nil {
			return fmt.Errorf("LockUser: %w", err)
		}
		if err := save(ctx, tx, s); err != nil {
			return err
		}
		if _, err := tx.AddGrant(ctx, g); err != nil {
			return err
		}
		return tx.LinkCustomer(ctx, n("user"), n("cus"))
	}))
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		return tx.LockUser(ctx, n("user_nobody")) // a transaction that only locks
	})

	assert.True(t, processed(t, st, n("evt")))
	f := facts(t, st, n("user"))
	assert.Equal(t, n("cus"), f.CustomerID)
	assert.Equal(t, []billing.Subscription{s}, normSubs(f.Subscriptions))
	assert.Equal(t, []billing.Grant{g}, normGrants(f.Grants))
}

func testUserIDThenWrites(t *testing.T, st billing.Store) {
	n := namer(t)
	require.NoError(t, link(t, st, n("user"), n("cus")))
	s := fullSub(n("sub"), n("user"), n("cus"), at(0))
	inv := invoiceOnly(n("sub_inv"), n("user"), n("cus"))
	g := grant(n("cs"), n("user"), n("cus"), 0)
	var user string
	require.NoError(t, st.Apply(t.Context(), n("evt"), func(ctx context.Context, tx billing.Tx) error {
		var err error
		if user, err = tx.UserID(ctx, n("cus")); err != nil {
			return fmt.Errorf("UserID: %w", err)
		}
		for _, s := range []billing.Subscription{s, inv} {
			if err := save(ctx, tx, s); err != nil {
				return err
			}
		}
		_, err = tx.AddGrant(ctx, g)
		return err
	}))

	assert.Equal(t, n("user"), user)
	assert.True(t, processed(t, st, n("evt")))
	f := facts(t, st, n("user"))
	assert.ElementsMatch(t, []billing.Subscription{s, inv}, normSubs(f.Subscriptions))
	assert.Equal(t, []billing.Grant{g}, normGrants(f.Grants))
}

// testLockAgain locks a user several times, and two users, in one
// transaction: a lock already held by the transaction must not block it.
func testLockAgain(t *testing.T, st billing.Store) {
	n := namer(t)
	require.NoError(t, link(t, st, n("user"), n("cus")))
	s := fullSub(n("sub"), n("user"), n("cus"), at(0))
	other := otherSub(n("sub_other"), n("user_other"), "", at(0))
	require.NoError(t, st.Apply(t.Context(), n("evt"), func(ctx context.Context, tx billing.Tx) error {
		for i := range 2 {
			if _, err := tx.UserID(ctx, n("cus")); err != nil {
				return fmt.Errorf("UserID, call %d: %w", i+1, err)
			}
			if err := tx.LockUser(ctx, n("user")); err != nil {
				return fmt.Errorf("LockUser, call %d: %w", i+1, err)
			}
			if err := tx.LockUser(ctx, n("user_other")); err != nil {
				return fmt.Errorf("LockUser of another user, call %d: %w", i+1, err)
			}
			if err := save(ctx, tx, s); err != nil {
				return err
			}
			if err := save(ctx, tx, other); err != nil {
				return err
			}
		}
		return nil
	}))

	assert.True(t, processed(t, st, n("evt")))
	assert.Equal(t, []billing.Subscription{s}, normSubs(facts(t, st, n("user")).Subscriptions))
	assert.Equal(t, []billing.Subscription{other}, normSubs(facts(t, st, n("user_other")).Subscriptions))
}

// ---- AddGrant ----

func testAddGrantOnce(t *testing.T, st billing.Store) {
	n := namer(t)
	g := grant(n("cs"), n("user"), n("cus"), 0)
	require.True(t, addGrant(t, st, "", g), "first AddGrant")

	other := grant(n("cs"), n("user"), n("cus2"), 60)
	other.Quantity = 9
	other.Credits = 900
	other.AmountTotal = 1
	other.Currency = "usd"
	other.PriceID = "price_other"
	require.False(t, addGrant(t, st, "", other), "AddGrant with an existing CheckoutSessionID")
	require.False(t, addGrant(t, st, "", g), "AddGrant of the same grant again")

	var first, second bool
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		g2 := grant(n("cs2"), n("user"), n("cus"), 30)
		var err error
		if first, err = tx.AddGrant(ctx, g2); err != nil {
			return err
		}
		second, err = tx.AddGrant(ctx, g2)
		return err
	})
	require.True(t, first)
	require.False(t, second, "a transaction must see its own grant")

	f := facts(t, st, n("user"))
	assert.ElementsMatch(t, []billing.Grant{g, grant(n("cs2"), n("user"), n("cus"), 30)}, normGrants(f.Grants))
}

func testGrantEventFirst(t *testing.T, st billing.Store) {
	n := namer(t)
	g := grant(n("cs"), n("user"), n("cus"), 0)
	require.True(t, addGrant(t, st, n("evt"), g), "by event")
	require.False(t, addGrant(t, st, "", g), "by sync, after the event")
	assert.Equal(t, []billing.Grant{g}, normGrants(facts(t, st, n("user")).Grants))
}

func testGrantSyncFirst(t *testing.T, st billing.Store) {
	n := namer(t)
	g := grant(n("cs"), n("user"), n("cus"), 0)
	require.True(t, addGrant(t, st, "", g), "by sync")
	require.False(t, addGrant(t, st, n("evt"), g), "by event, after the sync")
	assert.Equal(t, []billing.Grant{g}, normGrants(facts(t, st, n("user")).Grants))
	assert.True(t, processed(t, st, n("evt")), "the event is recorded even though its grant was not added")
}

// ---- Park ----

// parkedList reads every parked event: the pages of ParkedEvents (2 at a
// time, to walk the cursor), each completed by ParkedEvent.
func parkedList(t *testing.T, st billing.Store) []billing.ParkedEvent {
	t.Helper()
	var out []billing.ParkedEvent
	var after billing.ParkedCursor
	for range 1000 {
		page, err := st.ParkedEvents(t.Context(), after, 2)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), 2, "ParkedEvents returned more than its limit")
		for _, ev := range page {
			assert.Empty(t, ev.Payload, "pages carry no payload")
			full, err := st.ParkedEvent(t.Context(), ev.ID)
			require.NoError(t, err)
			ev.Payload = full.Payload
			assert.Equal(t, normParked(ev), normParked(full), "a page's event is ParkedEvent's without its payload")
			out = append(out, normParked(full))
		}
		if len(page) < 2 {
			n, err := st.CountParked(t.Context())
			require.NoError(t, err)
			assert.Equal(t, int64(len(out)), n, "CountParked counts what the pages list")
			return out
		}
		after = page[len(page)-1].Cursor()
	}
	t.Fatal("ParkedEvents never ended")
	return nil
}

func testParkRoundTrip(t *testing.T, st billing.Store) {
	n := namer(t)
	ev := parked(n("evt"), n("cus"), 0)
	require.NoError(t, st.Park(t.Context(), ev))
	assert.Equal(t, []billing.ParkedEvent{ev}, parkedList(t, st))
	got, err := st.ParkedEvent(t.Context(), ev.ID)
	require.NoError(t, err)
	assert.Equal(t, ev, normParked(got))
	_, err = st.ParkedEvent(t.Context(), n("evt_unknown"))
	assert.ErrorIs(t, err, billing.ErrNotFound)
}

// Parked again (a redelivery, a replay that parks it anew), an event's
// fields are replaced but it keeps its first ParkedAt: it does not move
// to the end of the list.
func testParkAgainKeepsParkedAt(t *testing.T, st billing.Store) {
	n := namer(t)
	first := parked(n("evt"), n("cus"), 0)
	require.NoError(t, st.Park(t.Context(), first))
	other := parked(n("evt_other"), n("cus"), 30)
	require.NoError(t, st.Park(t.Context(), other))
	again := parked(n("evt"), n("cus2"), 60)
	again.Type = "invoice.paid"
	again.Reason = "another reason"
	again.Payload = []byte(`{"id":"replaced"}`)
	require.NoError(t, st.Park(t.Context(), again))
	want := again
	want.ParkedAt = first.ParkedAt
	assert.Equal(t, []billing.ParkedEvent{want, other}, parkedList(t, st))
}

func testParkedOldestFirst(t *testing.T, st billing.Store) {
	n := namer(t)
	e3 := parked(n("evt_a"), n("cus"), 300)
	e1 := parked(n("evt_c"), n("cus"), 100)
	e2 := parked(n("evt_b"), n("cus"), 200)
	// Same second: by ID, byte-wise (upper case before lower case).
	e4 := parked(n("evt_X"), n("cus"), 300)
	e5 := parked(n("evt_d"), n("cus"), 300)
	for _, ev := range []billing.ParkedEvent{e3, e5, e1, e4, e2} {
		require.NoError(t, st.Park(t.Context(), ev))
	}
	assert.Equal(t, []billing.ParkedEvent{e1, e2, e4, e3, e5}, parkedList(t, st))
}

// ParkedEvents pages by the cursor of the last event seen: a page never
// exceeds its limit, and an event parked or unparked between pages
// neither repeats nor hides another.
func testParkedPages(t *testing.T, st billing.Store) {
	n := namer(t)
	ctx := t.Context()
	var all []billing.ParkedEvent
	for i := range 7 {
		ev := parked(n(fmt.Sprintf("evt_%d", i)), n("cus"), 10*(i/2)) // pairs share a second
		require.NoError(t, st.Park(ctx, ev))
		all = append(all, ev)
	}
	page, err := st.ParkedEvents(ctx, billing.ParkedCursor{}, 3)
	require.NoError(t, err)
	require.Len(t, page, 3)
	assert.Equal(t, []string{all[0].ID, all[1].ID, all[2].ID}, ids(page))

	// Between pages: the next event goes, a new one comes at the end.
	require.NoError(t, st.Unpark(ctx, all[3].ID))
	late := parked(n("evt_late"), n("cus"), 1000)
	require.NoError(t, st.Park(ctx, late))
	page, err = st.ParkedEvents(ctx, page[2].Cursor(), 3)
	require.NoError(t, err)
	assert.Equal(t, []string{all[4].ID, all[5].ID, all[6].ID}, ids(page))
	page, err = st.ParkedEvents(ctx, page[2].Cursor(), 3)
	require.NoError(t, err)
	assert.Equal(t, []string{late.ID}, ids(page))
	page, err = st.ParkedEvents(ctx, page[0].Cursor(), 3)
	require.NoError(t, err)
	assert.Empty(t, page, "past the last")

	// A cursor of an event that is gone still starts after its place.
	page, err = st.ParkedEvents(ctx, all[3].Cursor(), 1)
	require.NoError(t, err)
	assert.Equal(t, []string{all[4].ID}, ids(page))
	page, err = st.ParkedEvents(ctx, billing.ParkedCursor{}, 0)
	require.NoError(t, err)
	assert.Empty(t, page, "limit 0")
}

func ids(evs []billing.ParkedEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func testUnpark(t *testing.T, st billing.Store) {
	n := namer(t)
	e1 := parked(n("evt1"), n("cus"), 100)
	e2 := parked(n("evt2"), n("cus"), 200)
	require.NoError(t, st.Park(t.Context(), e1))
	require.NoError(t, st.Park(t.Context(), e2))

	require.NoError(t, st.Unpark(t.Context(), e1.ID))
	assert.Equal(t, []billing.ParkedEvent{e2}, parkedList(t, st))
	_, err := st.ParkedEvent(t.Context(), e1.ID)
	assert.ErrorIs(t, err, billing.ErrNotFound)
	require.NoError(t, st.Unpark(t.Context(), e1.ID), "Unpark of an event no longer parked")
	require.NoError(t, st.Unpark(t.Context(), n("evt_unknown")), "Unpark of an unknown event")
	assert.Equal(t, []billing.ParkedEvent{e2}, parkedList(t, st))
	require.NoError(t, st.Unpark(t.Context(), e2.ID))
	assert.Empty(t, parkedList(t, st))
}

func testPruneParked(t *testing.T, st billing.Store) {
	n := namer(t)
	ctx := t.Context()
	old1, old2 := parked(n("evt_old1"), n("cus"), 10), parked(n("evt_old2"), n("cus"), 20)
	edge, young := parked(n("evt_edge"), n("cus"), 30), parked(n("evt_young"), n("cus"), 40)
	for _, ev := range []billing.ParkedEvent{young, old1, edge, old2} {
		require.NoError(t, st.Park(ctx, ev))
	}
	pruned, err := st.PruneParked(ctx, at(30))
	require.NoError(t, err)
	assert.Equal(t, int64(2), pruned, "parked strictly before the cutoff")
	assert.Equal(t, []billing.ParkedEvent{edge, young}, parkedList(t, st))
	pruned, err = st.PruneParked(ctx, at(30))
	require.NoError(t, err)
	assert.Zero(t, pruned)
	pruned, err = st.PruneParked(ctx, at(30).Add(500*time.Millisecond))
	require.NoError(t, err)
	assert.Equal(t, int64(1), pruned, "a cutoff within a second: the event of that second is before it")
	assert.Equal(t, []billing.ParkedEvent{young}, parkedList(t, st))
}

func testParkedEmpty(t *testing.T, st billing.Store) {
	assert.Empty(t, parkedList(t, st))
	n, err := st.CountParked(t.Context())
	require.NoError(t, err)
	assert.Zero(t, n)
}

// ---- Facts ----

func testFactsIsolation(t *testing.T, st billing.Store) {
	n := namer(t)
	type data struct {
		user, cus string
		subs      []billing.Subscription
		grants    []billing.Grant
		refunds   []billing.Refund
	}
	mk := func(who string) data {
		user, cus := n("user_"+who), n("cus_"+who)
		return data{
			user: user,
			cus:  cus,
			subs: []billing.Subscription{
				fullSub(n("sub1_"+who), user, cus, at(0)),
				otherSub(n("sub2_"+who), user, cus, at(1)),
				invoiceOnly(n("sub3_"+who), user, cus),
			},
			grants:  []billing.Grant{grant(n("cs1_"+who), user, cus, 0), grant(n("cs2_"+who), user, cus, 1)},
			refunds: []billing.Refund{refund(n("pi1_"+who), user, cus, 100, 2), refund(n("pi2_"+who), user, cus, 2997, 3)},
		}
	}
	users := []data{mk("a"), mk("b")}
	for _, d := range users {
		inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
			if err := tx.LinkCustomer(ctx, d.user, d.cus); err != nil {
				return err
			}
			for _, s := range d.subs {
				if err := save(ctx, tx, s); err != nil {
					return err
				}
			}
			for _, g := range d.grants {
				if _, err := tx.AddGrant(ctx, g); err != nil {
					return err
				}
			}
			for _, r := range d.refunds {
				if err := tx.SaveRefund(ctx, r); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for _, d := range users {
		f := facts(t, st, d.user)
		assert.Equal(t, d.cus, f.CustomerID)
		assert.ElementsMatch(t, d.subs, normSubs(f.Subscriptions), "subscriptions of %s", d.user)
		assert.ElementsMatch(t, d.grants, normGrants(f.Grants), "grants of %s", d.user)
		assert.ElementsMatch(t, d.refunds, normRefunds(f.Refunds), "refunds of %s", d.user)
	}
}

func testReturnsCopies(t *testing.T, st billing.Store) {
	n := namer(t)
	var s billing.Subscription
	want := fullSub(n("sub"), n("user"), n("cus"), at(0))
	var inTxRead billing.Subscription
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		s = fullSub(n("sub"), n("user"), n("cus"), at(0))
		if err := save(ctx, tx, s); err != nil {
			return err
		}
		s.Items[0].Quantity = 99 // the caller's slice, after the save
		got, _, err := tx.Subscription(ctx, s.ID)
		if err != nil {
			return err
		}
		if len(got.Items) > 1 {
			got.Items[1].Quantity = 98 // a returned slice, in the transaction
		}
		inTxRead, _, err = tx.Subscription(ctx, s.ID)
		return err
	})
	requireSub(t, want, inTxRead, "read again in the transaction")
	s.Items[2].Quantity = 97 // the caller's slice, after the commit

	f := facts(t, st, n("user"))
	require.Len(t, f.Subscriptions, 1)
	requireSub(t, want, f.Subscriptions[0])
	f.Subscriptions[0].Items[0].Quantity = 96 // a returned slice
	got := mustSub(t, st, s.ID)
	requireSub(t, want, got)
	got.Items[1].Quantity = 95
	requireSub(t, want, facts(t, st, n("user")).Subscriptions[0])

	ev := parked(n("evt"), n("cus"), 0)
	wantEv := parked(n("evt"), n("cus"), 0)
	require.NoError(t, st.Park(t.Context(), ev))
	ev.Payload[0] = 'X'
	evs := parkedList(t, st)
	require.Equal(t, []billing.ParkedEvent{wantEv}, evs)
	raw, err := st.ParkedEvent(t.Context(), ev.ID)
	require.NoError(t, err)
	raw.Payload[0] = 'Y'
	assert.Equal(t, []billing.ParkedEvent{wantEv}, parkedList(t, st))
}

// testSubscriptionsOfUser: Tx.Subscriptions lists the user's records as
// the transaction sees them: committed ones, its own saves over them, a
// record moved to another user gone; nothing of other users.
func testSubscriptionsOfUser(t *testing.T, st billing.Store) {
	n := namer(t)
	kept := fullSub(n("sub_kept"), n("user"), n("cus"), at(0))
	replaced := fullSub(n("sub_replaced"), n("user"), n("cus"), at(0))
	moved := fullSub(n("sub_moved"), n("user"), n("cus"), at(0))
	theirs := otherSub(n("sub_theirs"), n("user2"), n("cus2"), at(0))
	saveSub(t, st, kept, replaced, moved, theirs)

	newer := otherSub(replaced.ID, n("user"), n("cus"), at(1))
	added := otherSub(n("sub_added"), n("user"), n("cus"), at(1))
	gone := otherSub(moved.ID, n("user2"), n("cus2"), at(1))
	var mine, other []billing.Subscription
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		if err := tx.LockUser(ctx, n("user")); err != nil {
			return err
		}
		for _, s := range []billing.Subscription{newer, added, gone} {
			if err := save(ctx, tx, s); err != nil {
				return err
			}
		}
		var err error
		if mine, err = tx.Subscriptions(ctx, n("user")); err != nil {
			return err
		}
		other, err = tx.Subscriptions(ctx, n("nobody"))
		return err
	})
	assert.ElementsMatch(t, normSubs([]billing.Subscription{kept, newer, added}), normSubs(mine), "the transaction's view")
	assert.Empty(t, other, "a user with nothing")
}

// ---- Refund ----

// readRefund reads a payment's refund record in a transaction of its own.
func readRefund(t *testing.T, st billing.Store, paymentIntentID string) (billing.Refund, bool) {
	t.Helper()
	var r billing.Refund
	var found bool
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		var err error
		r, found, err = tx.Refund(ctx, paymentIntentID)
		return err
	})
	r.Version = utc(r.Version)
	return r, found
}

func testRefundRoundTrip(t *testing.T, st billing.Store) {
	n := namer(t)
	_, found := readRefund(t, st, n("pi"))
	require.False(t, found, "no record yet")
	r := refund(n("pi"), n("user"), n("cus"), 1500, 10)
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		if err := tx.LockUser(ctx, r.UserID); err != nil {
			return err
		}
		if _, _, err := tx.Refund(ctx, r.PaymentIntentID); err != nil {
			return err
		}
		if err := tx.SaveRefund(ctx, r); err != nil {
			return err
		}
		got, found, err := tx.Refund(ctx, r.PaymentIntentID)
		if err != nil {
			return err
		}
		got.Version = utc(got.Version)
		assert.True(t, found, "a transaction sees its own refund")
		assert.Equal(t, r, got)
		return nil
	})
	got, found := readRefund(t, st, n("pi"))
	require.True(t, found)
	assert.Equal(t, r, got)
	assert.Equal(t, []billing.Refund{r}, normRefunds(facts(t, st, n("user")).Refunds))
	assert.Empty(t, facts(t, st, n("other")).Refunds)
}

func testRefundReplaces(t *testing.T, st billing.Store) {
	n := namer(t)
	first := refund(n("pi"), n("user"), n("cus"), 500, 10)
	second := refund(n("pi"), n("user"), n("cus"), 2997, 20)
	second.ChargeID, second.Currency = "ch_other", "usd"
	for _, r := range []billing.Refund{first, second} {
		inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
			if _, _, err := tx.Refund(ctx, r.PaymentIntentID); err != nil {
				return err
			}
			return tx.SaveRefund(ctx, r)
		})
	}
	got, _ := readRefund(t, st, n("pi"))
	assert.Equal(t, second, got, "the whole record replaced")
	assert.Len(t, facts(t, st, n("user")).Refunds, 1)
}

func testRefundFailedTx(t *testing.T, st billing.Store) {
	n := namer(t)
	boom := errors.New("boom")
	err := st.Apply(t.Context(), n("evt"), func(ctx context.Context, tx billing.Tx) error {
		if err := tx.SaveRefund(ctx, refund(n("pi"), n("user"), n("cus"), 100, 0)); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	_, found := readRefund(t, st, n("pi"))
	assert.False(t, found)
	assert.Empty(t, facts(t, st, n("user")).Refunds)
}
