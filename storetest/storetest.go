// Package storetest is the conformance suite for [billing.Store]
// implementations. Every Store (the in-memory one in package memstore, SQL
// stores, and your own) should pass it.
//
// To run it against your Store, call [Run] from a test in your package:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) billing.Store {
//			db := openEmptyTestDatabase(t) // closed with t.Cleanup
//			return mystore.New(db)
//		})
//	}
//
// Run it with the race detector (go test -race): the suite calls the
// Store from many goroutines.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
)

// Run checks that the stores made by newStore keep every contract of
// [billing.Store] and [billing.Tx]. It runs one subtest per contract, in
// parallel, and calls newStore once per subtest with that subtest's t.
//
// newStore must return an empty store, not shared with any other call
// (for instance a fresh database or schema per call), and may use
// t.Cleanup to release it. Every subtest uses IDs of its own, so stores
// that share tables but not rows also work, except for the Park subtests,
// which expect to see only the events they parked.
//
// Times given to the store are whole seconds in UTC; the suite compares
// times with [time.Time.Equal], so a store may return them in another
// location. It treats nil and empty slices alike.
func Run(t *testing.T, newStore func(t *testing.T) billing.Store) {
	t.Helper()
	for _, g := range groups() {
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
}

type test struct {
	name string
	run  func(t *testing.T, st billing.Store)
}

type group struct {
	name  string
	tests []test
}

func groups() []group {
	return []group{
		{"NotFound", []test{
			{"CustomerIDOfUnknownUser", testCustomerIDUnknown},
			{"UserIDOfUnknownCustomer", testUserIDUnknown},
			{"UnknownSubscription", testSubscriptionUnknown},
			{"FactsOfUnknownUser", testFactsUnknown},
			{"ProcessedUnknownEvent", testProcessedUnknown},
		}},
		{"LinkCustomer", []test{
			{"LinkAndFind", testLinkAndFind},
			{"RelinkSamePairIsNoOp", testRelinkSamePair},
			{"UserLinkedToOtherCustomer", testLinkUserConflict},
			{"CustomerLinkedToOtherUser", testLinkCustomerConflict},
			{"ConflictWithinOneTx", testLinkConflictWithinTx},
		}},
		{"PutSubscription", []test{
			{"CreateRoundTrip", testPutSubscriptionRoundTrip},
			{"ZeroFieldsRoundTrip", testPutSubscriptionZeroFields},
			{"IgnoresInvoiceField", testPutSubscriptionIgnoresInvoice},
			{"NewerVersionOverwrites", testPutSubscriptionNewer},
			{"OlderVersionIgnored", testPutSubscriptionOlder},
			{"EqualVersionIgnored", testPutSubscriptionEqual},
			{"CanceledNotOverwrittenByNewerNonFinal", testFinalStaysCanceled},
			{"IncompleteExpiredNotOverwrittenByNewerNonFinal", testFinalStaysIncompleteExpired},
			{"FinalOverwritesNonFinalWithOlderVersion", testFinalOverwritesOlder},
			{"FinalOverwritesNonFinalWithEqualVersion", testFinalOverwritesEqual},
			{"FinalNotOverwrittenByNewerFinal", testFinalNotOverwrittenByFinal},
			{"LiveOverwritesIncompleteWhateverTheVersion", testLiveOverwritesIncomplete},
			{"IncompleteNeverOverwritesLive", testIncompleteNeverOverwritesLive},
		}},
		{"PutInvoice", []test{
			{"CreatesRowForUnknownSubscription", testPutInvoiceCreates},
			{"PutSubscriptionOverInvoiceOnlyRow", testPutSubscriptionOverInvoiceRow},
			{"VersionRule", testPutInvoiceVersionRule},
			{"LeavesSubscriptionFields", testPutInvoiceLeavesSubscription},
			{"PutSubscriptionLeavesInvoice", testPutSubscriptionLeavesInvoice},
		}},
		{"AddGrant", []test{
			{"AddedOnce", testAddGrantOnce},
			{"OnceWhenEventComesFirst", testGrantEventFirst},
			{"OnceWhenSyncComesFirst", testGrantSyncFirst},
		}},
		{"Apply", []test{
			{"RecordsEvent", testApplyRecordsEvent},
			{"DuplicateEvent", testApplyDuplicate},
			{"FnErrorRollsBack", testApplyFnErrorRollsBack},
			{"ReadsOwnWrites", testApplyReadsOwnWrites},
			{"EmptyEventID", testApplyEmptyEventID},
			{"ConcurrentSameEvent", testApplyConcurrentSameEvent},
			{"ConcurrentDistinctEvents", testApplyConcurrentDistinctEvents},
		}},
		{"Park", []test{
			{"RoundTrip", testParkRoundTrip},
			{"SameIDReplaces", testParkReplaces},
			{"OldestFirst", testParkedOldestFirst},
			{"Unpark", testUnpark},
			{"EmptyStore", testParkedEmpty},
		}},
		{"Facts", []test{
			{"IsolatedPerUser", testFactsIsolation},
			{"ReturnsCopies", testReturnsCopies},
		}},
	}
}

// ---- fixtures and helpers ----

// t0 is the suite's reference time; every time it uses is whole seconds
// in UTC.
var t0 = time.Date(2025, time.March, 1, 12, 0, 0, 0, time.UTC)

const day = 24 * 60 * 60

// at returns t0 plus sec seconds.
func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// namer returns a function making IDs unique to the running subtest.
func namer(t *testing.T) func(kind string) string {
	suffix := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name())
	return func(kind string) string { return kind + "_" + suffix }
}

// fullSub returns a subscription with every field but Invoice set.
func fullSub(id, userID, customerID string, version time.Time) billing.Subscription {
	return billing.Subscription{
		ID:         id,
		CustomerID: customerID,
		UserID:     userID,
		Status:     stripe.SubscriptionStatusActive,
		Items: []billing.Item{
			{PriceID: "price_basic", Quantity: 2, CurrentPeriodStart: at(-day), CurrentPeriodEnd: at(29 * day)},
			{PriceID: "price_addon", Quantity: 5, CurrentPeriodStart: at(-3600), CurrentPeriodEnd: at(7 * day)},
		},
		CancelAtPeriodEnd: true,
		CancelAt:          at(29 * day),
		CanceledAt:        at(-60),
		EndedAt:           at(31 * day),
		TrialStart:        at(-15 * day),
		TrialEnd:          at(-day),
		LatestInvoiceID:   "in_latest_" + id,
		Version:           version,
	}
}

// invoice returns invoice facts with every field set.
func invoice(id, version string, created int) billing.Invoice {
	return billing.Invoice{
		ID:                 id,
		Created:            at(created),
		Paid:               false,
		AttemptCount:       2,
		NextPaymentAttempt: at(created + day),
		Version:            version,
	}
}

// grant returns a grant with every field set.
func grant(checkoutSessionID, userID, customerID string, grantedAt int) billing.Grant {
	return billing.Grant{
		CheckoutSessionID: checkoutSessionID,
		UserID:            userID,
		CustomerID:        customerID,
		PriceID:           "price_credits",
		Quantity:          3,
		Credits:           300,
		AmountTotal:       2997,
		Currency:          "eur",
		GrantedAt:         at(grantedAt),
	}
}

func parked(id, customerID string, parkedAt int) billing.ParkedEvent {
	return billing.ParkedEvent{
		ID:         id,
		Type:       "customer.subscription.updated",
		CustomerID: customerID,
		Reason:     "no user linked to customer",
		Payload:    []byte(`{"id":"` + id + `","object":"event","data":{"object":{"customer":"` + customerID + `"}}}`),
		ParkedAt:   at(parkedAt),
	}
}

// utc drops t's location and monotonic reading, so that equal instants
// compare equal with reflect.DeepEqual.
func utc(t time.Time) time.Time { return t.UTC() }

func normSub(s billing.Subscription) billing.Subscription {
	s.CancelAt = utc(s.CancelAt)
	s.CanceledAt = utc(s.CanceledAt)
	s.EndedAt = utc(s.EndedAt)
	s.TrialStart = utc(s.TrialStart)
	s.TrialEnd = utc(s.TrialEnd)
	s.Version = utc(s.Version)
	s.Invoice = normInvoice(s.Invoice)
	if len(s.Items) == 0 {
		s.Items = nil
	} else {
		items := make([]billing.Item, len(s.Items))
		for i, it := range s.Items {
			it.CurrentPeriodStart = utc(it.CurrentPeriodStart)
			it.CurrentPeriodEnd = utc(it.CurrentPeriodEnd)
			items[i] = it
		}
		s.Items = items
	}
	return s
}

func normInvoice(inv billing.Invoice) billing.Invoice {
	inv.Created = utc(inv.Created)
	inv.NextPaymentAttempt = utc(inv.NextPaymentAttempt)
	return inv
}

func normGrant(g billing.Grant) billing.Grant {
	g.GrantedAt = utc(g.GrantedAt)
	return g
}

func normParked(ev billing.ParkedEvent) billing.ParkedEvent {
	ev.ParkedAt = utc(ev.ParkedAt)
	if len(ev.Payload) == 0 {
		ev.Payload = nil
	}
	return ev
}

func normSubs(subs []billing.Subscription) []billing.Subscription {
	var out []billing.Subscription
	for _, s := range subs {
		out = append(out, normSub(s))
	}
	return out
}

func normGrants(gs []billing.Grant) []billing.Grant {
	var out []billing.Grant
	for _, g := range gs {
		out = append(out, normGrant(g))
	}
	return out
}

func normParkedList(evs []billing.ParkedEvent) []billing.ParkedEvent {
	var out []billing.ParkedEvent
	for _, ev := range evs {
		out = append(out, normParked(ev))
	}
	return out
}

func requireSub(t *testing.T, want, got billing.Subscription, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, normSub(want), normSub(got), msgAndArgs...)
}

type txFunc = func(ctx context.Context, tx billing.Tx) error

// inTx runs fn in an Apply without an event ID and requires it to commit.
func inTx(t *testing.T, st billing.Store, fn txFunc) {
	t.Helper()
	require.NoError(t, st.Apply(t.Context(), "", fn))
}

func link(t *testing.T, st billing.Store, userID, customerID string) error {
	t.Helper()
	var err error
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		err = tx.LinkCustomer(ctx, userID, customerID)
		return nil
	})
	return err
}

func userOf(t *testing.T, st billing.Store, customerID string) (string, error) {
	t.Helper()
	var (
		u   string
		err error
	)
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		u, err = tx.UserID(ctx, customerID)
		return nil
	})
	return u, err
}

func getSub(t *testing.T, st billing.Store, id string) (billing.Subscription, error) {
	t.Helper()
	var (
		s   billing.Subscription
		err error
	)
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		s, err = tx.Subscription(ctx, id)
		return nil
	})
	return s, err
}

// mustSub returns the stored subscription, which must exist.
func mustSub(t *testing.T, st billing.Store, id string) billing.Subscription {
	t.Helper()
	s, err := getSub(t, st, id)
	require.NoError(t, err, "Subscription(%q)", id)
	return s
}

func putSub(t *testing.T, st billing.Store, s billing.Subscription) bool {
	t.Helper()
	var wrote bool
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		var err error
		wrote, err = tx.PutSubscription(ctx, s)
		return err
	})
	return wrote
}

func putInvoice(t *testing.T, st billing.Store, subID, userID, customerID string, inv billing.Invoice) bool {
	t.Helper()
	var wrote bool
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		var err error
		wrote, err = tx.PutInvoice(ctx, subID, userID, customerID, inv)
		return err
	})
	return wrote
}

func addGrant(t *testing.T, st billing.Store, eventID string, g billing.Grant) bool {
	t.Helper()
	var added bool
	require.NoError(t, st.Apply(t.Context(), eventID, func(ctx context.Context, tx billing.Tx) error {
		var err error
		added, err = tx.AddGrant(ctx, g)
		return err
	}))
	return added
}

func facts(t *testing.T, st billing.Store, userID string) billing.Facts {
	t.Helper()
	f, err := st.Facts(t.Context(), userID)
	require.NoError(t, err, "Facts(%q)", userID)
	require.Equal(t, userID, f.UserID, "Facts(%q).UserID", userID)
	return f
}

func processed(t *testing.T, st billing.Store, eventID string) bool {
	t.Helper()
	ok, err := st.Processed(t.Context(), eventID)
	require.NoError(t, err, "Processed(%q)", eventID)
	return ok
}

func customerOf(t *testing.T, st billing.Store, userID string) string {
	t.Helper()
	c, err := st.CustomerID(t.Context(), userID)
	require.NoError(t, err, "CustomerID(%q)", userID)
	return c
}

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
	_, err := getSub(t, st, n("sub"))
	require.ErrorIs(t, err, billing.ErrNotFound)
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

// ---- PutSubscription ----

func testPutSubscriptionRoundTrip(t *testing.T, st billing.Store) {
	n := namer(t)
	s := fullSub(n("sub"), n("user"), n("cus"), at(0))
	require.True(t, putSub(t, st, s), "PutSubscription of a new subscription")

	requireSub(t, s, mustSub(t, st, s.ID), "tx.Subscription")
	f := facts(t, st, n("user"))
	require.Len(t, f.Subscriptions, 1)
	requireSub(t, s, f.Subscriptions[0], "Facts")
}

func testPutSubscriptionZeroFields(t *testing.T, st billing.Store) {
	n := namer(t)
	s := billing.Subscription{
		ID:         n("sub"),
		CustomerID: n("cus"),
		UserID:     n("user"),
		Status:     stripe.SubscriptionStatusIncomplete,
		Version:    at(0),
	}
	require.True(t, putSub(t, st, s))

	got := mustSub(t, st, s.ID)
	requireSub(t, s, got)
	for name, tm := range map[string]time.Time{
		"CancelAt": got.CancelAt, "CanceledAt": got.CanceledAt, "EndedAt": got.EndedAt,
		"TrialStart": got.TrialStart, "TrialEnd": got.TrialEnd,
	} {
		assert.True(t, tm.IsZero(), "%s must stay zero, got %v", name, tm)
	}
	assert.Empty(t, got.Items)
	assert.False(t, got.CancelAtPeriodEnd)
}

func testPutSubscriptionIgnoresInvoice(t *testing.T, st billing.Store) {
	n := namer(t)
	s := fullSub(n("sub"), n("user"), n("cus"), at(0))
	s.Invoice = invoice(n("in"), "0001|in|0001", 0)
	require.True(t, putSub(t, st, s))

	got := mustSub(t, st, s.ID)
	assert.Equal(t, billing.Invoice{}, normInvoice(got.Invoice), "PutSubscription must not write Invoice")
	want := s
	want.Invoice = billing.Invoice{}
	requireSub(t, want, got)
}

func testPutSubscriptionNewer(t *testing.T, st billing.Store) {
	n := namer(t)
	v1 := fullSub(n("sub"), n("user"), n("cus"), at(0))
	require.True(t, putSub(t, st, v1))

	v2 := fullSub(n("sub"), n("user"), n("cus"), at(1))
	v2.Status = stripe.SubscriptionStatusPastDue
	v2.Items = []billing.Item{{PriceID: "price_pro", Quantity: 1, CurrentPeriodStart: at(0), CurrentPeriodEnd: at(30 * day)}}
	v2.CancelAtPeriodEnd = false
	v2.CancelAt = time.Time{}
	v2.CanceledAt = time.Time{}
	v2.LatestInvoiceID = n("in2")
	require.True(t, putSub(t, st, v2), "a strictly newer version must overwrite")

	requireSub(t, v2, mustSub(t, st, v2.ID))
	f := facts(t, st, n("user"))
	require.Len(t, f.Subscriptions, 1)
	requireSub(t, v2, f.Subscriptions[0])
}

func testPutSubscriptionOlder(t *testing.T, st billing.Store) {
	n := namer(t)
	v2 := fullSub(n("sub"), n("user"), n("cus"), at(10))
	require.True(t, putSub(t, st, v2))

	v1 := fullSub(n("sub"), n("user"), n("cus"), at(9))
	v1.Status = stripe.SubscriptionStatusPastDue
	v1.LatestInvoiceID = n("in_old")
	require.False(t, putSub(t, st, v1), "an older version must not overwrite")
	requireSub(t, v2, mustSub(t, st, v2.ID))
}

func testPutSubscriptionEqual(t *testing.T, st billing.Store) {
	n := namer(t)
	a := fullSub(n("sub"), n("user"), n("cus"), at(10))
	require.True(t, putSub(t, st, a))

	b := fullSub(n("sub"), n("user"), n("cus"), at(10))
	b.Status = stripe.SubscriptionStatusPastDue
	b.CancelAtPeriodEnd = false
	require.False(t, putSub(t, st, b), "an equal version must not overwrite")
	requireSub(t, a, mustSub(t, st, a.ID))
}

func testFinalStays(t *testing.T, st billing.Store, final stripe.SubscriptionStatus) {
	n := namer(t)
	f := fullSub(n("sub"), n("user"), n("cus"), at(10))
	f.Status = final
	require.True(t, putSub(t, st, f))

	for _, status := range []stripe.SubscriptionStatus{
		stripe.SubscriptionStatusActive,
		stripe.SubscriptionStatusPastDue,
		stripe.SubscriptionStatusIncomplete,
	} {
		later := fullSub(n("sub"), n("user"), n("cus"), at(20))
		later.Status = status
		assert.False(t, putSub(t, st, later), "newer %s must not overwrite %s", status, final)
	}
	requireSub(t, f, mustSub(t, st, f.ID))
}

func testFinalStaysCanceled(t *testing.T, st billing.Store) {
	testFinalStays(t, st, stripe.SubscriptionStatusCanceled)
}

func testFinalStaysIncompleteExpired(t *testing.T, st billing.Store) {
	testFinalStays(t, st, stripe.SubscriptionStatusIncompleteExpired)
}

func testFinalOverwritesOlder(t *testing.T, st billing.Store) {
	n := namer(t)
	active := fullSub(n("sub1"), n("user"), n("cus"), at(10))
	require.True(t, putSub(t, st, active))
	canceled := fullSub(n("sub1"), n("user"), n("cus"), at(5))
	canceled.Status = stripe.SubscriptionStatusCanceled
	canceled.EndedAt = at(5)
	require.True(t, putSub(t, st, canceled), "canceled must overwrite a non-final state even when older")
	requireSub(t, canceled, mustSub(t, st, canceled.ID))

	incomplete := fullSub(n("sub2"), n("user"), n("cus"), at(10))
	incomplete.Status = stripe.SubscriptionStatusIncomplete
	require.True(t, putSub(t, st, incomplete))
	expired := fullSub(n("sub2"), n("user"), n("cus"), at(5))
	expired.Status = stripe.SubscriptionStatusIncompleteExpired
	require.True(t, putSub(t, st, expired), "incomplete_expired must overwrite a non-final state even when older")
	requireSub(t, expired, mustSub(t, st, expired.ID))
}

func testFinalOverwritesEqual(t *testing.T, st billing.Store) {
	n := namer(t)
	active := fullSub(n("sub"), n("user"), n("cus"), at(10))
	require.True(t, putSub(t, st, active))
	canceled := fullSub(n("sub"), n("user"), n("cus"), at(10))
	canceled.Status = stripe.SubscriptionStatusCanceled
	canceled.EndedAt = at(10)
	require.True(t, putSub(t, st, canceled), "canceled must overwrite a non-final state of an equal version")
	requireSub(t, canceled, mustSub(t, st, canceled.ID))
}

func testFinalNotOverwrittenByFinal(t *testing.T, st billing.Store) {
	n := namer(t)
	canceled := fullSub(n("sub1"), n("user"), n("cus"), at(10))
	canceled.Status = stripe.SubscriptionStatusCanceled
	require.True(t, putSub(t, st, canceled))
	later := fullSub(n("sub1"), n("user"), n("cus"), at(20))
	later.Status = stripe.SubscriptionStatusCanceled
	later.CanceledAt = at(20)
	later.EndedAt = at(20)
	require.False(t, putSub(t, st, later), "newer canceled must not overwrite canceled")
	requireSub(t, canceled, mustSub(t, st, canceled.ID))

	expired := fullSub(n("sub2"), n("user"), n("cus"), at(10))
	expired.Status = stripe.SubscriptionStatusIncompleteExpired
	require.True(t, putSub(t, st, expired))
	laterCanceled := fullSub(n("sub2"), n("user"), n("cus"), at(20))
	laterCanceled.Status = stripe.SubscriptionStatusCanceled
	require.False(t, putSub(t, st, laterCanceled), "newer canceled must not overwrite incomplete_expired")
	requireSub(t, expired, mustSub(t, st, expired.ID))
}

func testLiveOverwritesIncomplete(t *testing.T, st billing.Store) {
	n := namer(t)
	for i, live := range []stripe.SubscriptionStatus{stripe.SubscriptionStatusActive, stripe.SubscriptionStatusTrialing, stripe.SubscriptionStatusPastDue} {
		for _, v := range []int{5, 10, 20} { // older, equal, newer
			id := n(fmt.Sprintf("sub_%d_%d", i, v))
			incomplete := fullSub(id, n("user"), n("cus"), at(10))
			incomplete.Status = stripe.SubscriptionStatusIncomplete
			require.True(t, putSub(t, st, incomplete))
			next := fullSub(id, n("user"), n("cus"), at(v))
			next.Status = live
			require.True(t, putSub(t, st, next), "%s at version %d must overwrite incomplete at 10", live, v)
			requireSub(t, next, mustSub(t, st, id))
		}
	}
}

func testIncompleteNeverOverwritesLive(t *testing.T, st billing.Store) {
	n := namer(t)
	active := fullSub(n("sub"), n("user"), n("cus"), at(10))
	require.True(t, putSub(t, st, active))
	later := fullSub(n("sub"), n("user"), n("cus"), at(20))
	later.Status = stripe.SubscriptionStatusIncomplete
	require.False(t, putSub(t, st, later), "a newer incomplete must not overwrite a live state")
	requireSub(t, active, mustSub(t, st, active.ID))
}

// ---- PutInvoice ----

func testPutInvoiceCreates(t *testing.T, st billing.Store) {
	n := namer(t)
	inv := invoice(n("in"), "0001|in_a|0001", 0)
	require.True(t, putInvoice(t, st, n("sub"), n("user"), n("cus"), inv), "PutInvoice on an unknown subscription")

	want := billing.Subscription{ID: n("sub"), UserID: n("user"), CustomerID: n("cus"), Invoice: inv}
	got := mustSub(t, st, n("sub"))
	requireSub(t, want, got)
	assert.True(t, got.Version.IsZero(), "Version must be zero, got %v", got.Version)
	assert.Empty(t, got.Status)

	f := facts(t, st, n("user"))
	require.Len(t, f.Subscriptions, 1)
	requireSub(t, want, f.Subscriptions[0])
}

func testPutSubscriptionOverInvoiceRow(t *testing.T, st billing.Store) {
	n := namer(t)
	inv := invoice(n("in"), "0001|in_a|0001", 0)
	require.True(t, putInvoice(t, st, n("sub"), n("user"), n("cus"), inv))

	// Any non-zero version is later than "nothing stored", even one long
	// before the invoice.
	s := fullSub(n("sub"), n("user"), n("cus"), time.Date(2001, time.January, 1, 0, 0, 0, 0, time.UTC))
	require.True(t, putSub(t, st, s), "PutSubscription over an invoice-only row")

	want := s
	want.Invoice = inv
	requireSub(t, want, mustSub(t, st, s.ID))
	f := facts(t, st, n("user"))
	require.Len(t, f.Subscriptions, 1)
	requireSub(t, want, f.Subscriptions[0])
}

func testPutInvoiceVersionRule(t *testing.T, st billing.Store) {
	n := namer(t)
	sub := n("sub")
	stored := invoice(n("in_b"), "0002|in_b|0002", 100)
	require.True(t, putInvoice(t, st, sub, n("user"), n("cus"), stored))

	equal := invoice(n("in_c"), "0002|in_b|0002", 200)
	equal.Paid = true
	assert.False(t, putInvoice(t, st, sub, n("user"), n("cus"), equal), "equal version")
	for _, v := range []string{"0002|in_b|0001", "0001|in_a|0009", "0001|in_z|0001"} {
		lower := invoice(n("in_a"), v, 50)
		assert.False(t, putInvoice(t, st, sub, n("user"), n("cus"), lower), "lower version %q", v)
	}
	require.Equal(t, normInvoice(stored), normInvoice(mustSub(t, st, sub).Invoice), "unchanged")

	greater := invoice(n("in_b"), "0002|in_b|0003", 100)
	greater.AttemptCount = 3
	greater.NextPaymentAttempt = time.Time{}
	require.True(t, putInvoice(t, st, sub, n("user"), n("cus"), greater), "greater version")
	require.Equal(t, normInvoice(greater), normInvoice(mustSub(t, st, sub).Invoice))

	// Byte-wise: "0010" is greater than "0009".
	next := invoice(n("in_d"), "0010|in_d|0001", 300)
	next.Paid = true
	require.True(t, putInvoice(t, st, sub, n("user"), n("cus"), next), "byte-wise greater version")
	require.Equal(t, normInvoice(next), normInvoice(mustSub(t, st, sub).Invoice))
}

func testPutInvoiceLeavesSubscription(t *testing.T, st billing.Store) {
	n := namer(t)
	s := fullSub(n("sub"), n("user"), n("cus"), at(0))
	require.True(t, putSub(t, st, s))

	inv := invoice(n("in"), "0001|in|0001", 0)
	// Other user and customer IDs: PutInvoice writes only the invoice
	// facts of an existing subscription.
	require.True(t, putInvoice(t, st, s.ID, n("other_user"), n("other_cus"), inv))

	want := s
	want.Invoice = inv
	requireSub(t, want, mustSub(t, st, s.ID))
	assert.Empty(t, facts(t, st, n("other_user")).Subscriptions)
}

func testPutSubscriptionLeavesInvoice(t *testing.T, st billing.Store) {
	n := namer(t)
	s := fullSub(n("sub"), n("user"), n("cus"), at(0))
	require.True(t, putSub(t, st, s))
	inv := invoice(n("in"), "0001|in|0001", 0)
	require.True(t, putInvoice(t, st, s.ID, n("user"), n("cus"), inv))

	s2 := fullSub(n("sub"), n("user"), n("cus"), at(1))
	s2.Status = stripe.SubscriptionStatusPastDue
	s2.Invoice = invoice(n("in_other"), "9999|in_other|9999", 5)
	require.True(t, putSub(t, st, s2))

	want := s2
	want.Invoice = inv
	requireSub(t, want, mustSub(t, st, s.ID))
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

// ---- Apply ----

func testApplyRecordsEvent(t *testing.T, st billing.Store) {
	n := namer(t)
	require.False(t, processed(t, st, n("evt")))
	called := false
	require.NoError(t, st.Apply(t.Context(), n("evt"), func(ctx context.Context, tx billing.Tx) error {
		called = true
		return nil
	}))
	require.True(t, called, "fn must run")
	assert.True(t, processed(t, st, n("evt")))
	assert.False(t, processed(t, st, n("evt_other")))
}

func testApplyDuplicate(t *testing.T, st billing.Store) {
	n := namer(t)
	g := grant(n("cs1"), n("user"), n("cus"), 0)
	require.True(t, addGrant(t, st, n("evt"), g))

	called := false
	err := st.Apply(t.Context(), n("evt"), func(ctx context.Context, tx billing.Tx) error {
		called = true
		if err := tx.LinkCustomer(ctx, n("user"), n("cus")); err != nil {
			return err
		}
		_, err := tx.AddGrant(ctx, grant(n("cs2"), n("user"), n("cus"), 10))
		return err
	})
	require.ErrorIs(t, err, billing.ErrDuplicateEvent)
	assert.False(t, called, "fn must not run for a recorded event")
	assert.True(t, processed(t, st, n("evt")))

	f := facts(t, st, n("user"))
	assert.Equal(t, []billing.Grant{g}, normGrants(f.Grants))
	assert.Empty(t, f.CustomerID)
}

func testApplyFnErrorRollsBack(t *testing.T, st billing.Store) {
	n := namer(t)
	errFn := errors.New("storetest: fn failed")
	s := fullSub(n("sub"), n("user"), n("cus"), at(0))
	inv := invoice(n("in"), "0001|in|0001", 0)
	g := grant(n("cs"), n("user"), n("cus"), 0)
	calls := 0
	fn := func(fail bool) txFunc {
		return func(ctx context.Context, tx billing.Tx) error {
			calls++
			if err := tx.LinkCustomer(ctx, n("user"), n("cus")); err != nil {
				return err
			}
			if _, err := tx.PutSubscription(ctx, s); err != nil {
				return err
			}
			if _, err := tx.PutInvoice(ctx, s.ID, n("user"), n("cus"), inv); err != nil {
				return err
			}
			if _, err := tx.PutInvoice(ctx, n("sub_inv"), n("user"), n("cus"), inv); err != nil {
				return err
			}
			if _, err := tx.AddGrant(ctx, g); err != nil {
				return err
			}
			if fail {
				return errFn
			}
			return nil
		}
	}

	err := st.Apply(t.Context(), n("evt"), fn(true))
	require.ErrorIs(t, err, errFn, "Apply must return fn's error")
	require.Positive(t, calls, "fn must run")
	failedCalls := calls

	assert.False(t, processed(t, st, n("evt")), "a failed Apply must not record its event")
	f := facts(t, st, n("user"))
	assert.Empty(t, f.CustomerID)
	assert.Empty(t, f.Subscriptions)
	assert.Empty(t, f.Grants)
	_, err = st.CustomerID(t.Context(), n("user"))
	require.ErrorIs(t, err, billing.ErrNotFound)
	_, err = userOf(t, st, n("cus"))
	require.ErrorIs(t, err, billing.ErrNotFound)
	_, err = getSub(t, st, s.ID)
	require.ErrorIs(t, err, billing.ErrNotFound)
	_, err = getSub(t, st, n("sub_inv"))
	require.ErrorIs(t, err, billing.ErrNotFound)

	// The retry runs and commits.
	require.NoError(t, st.Apply(t.Context(), n("evt"), fn(false)))
	require.Greater(t, calls, failedCalls, "a retry after a failed Apply must run fn")
	assert.True(t, processed(t, st, n("evt")))
	f = facts(t, st, n("user"))
	assert.Equal(t, n("cus"), f.CustomerID)
	assert.Equal(t, []billing.Grant{g}, normGrants(f.Grants))
	withInv := s
	withInv.Invoice = inv
	assert.ElementsMatch(t, []billing.Subscription{
		withInv,
		{ID: n("sub_inv"), UserID: n("user"), CustomerID: n("cus"), Invoice: inv},
	}, normSubs(f.Subscriptions))
	u, err := userOf(t, st, n("cus"))
	require.NoError(t, err)
	assert.Equal(t, n("user"), u)
}

func testApplyReadsOwnWrites(t *testing.T, st billing.Store) {
	n := namer(t)
	s := fullSub(n("sub"), n("user"), n("cus"), at(10))
	inv := invoice(n("in"), "0001|in|0001", 0)
	var (
		linkedUser        string
		afterPut          billing.Subscription
		afterInvoice      billing.Subscription
		invoiceOnly       billing.Subscription
		olderWrote        bool
		equalInvoiceWrote bool
	)
	require.NoError(t, st.Apply(t.Context(), n("evt"), func(ctx context.Context, tx billing.Tx) error {
		var err error
		if err = tx.LinkCustomer(ctx, n("user"), n("cus")); err != nil {
			return err
		}
		if linkedUser, err = tx.UserID(ctx, n("cus")); err != nil {
			return err
		}
		if _, err = tx.PutSubscription(ctx, s); err != nil {
			return err
		}
		if afterPut, err = tx.Subscription(ctx, s.ID); err != nil {
			return err
		}
		older := fullSub(s.ID, n("user"), n("cus"), at(5))
		if olderWrote, err = tx.PutSubscription(ctx, older); err != nil {
			return err
		}
		if _, err = tx.PutInvoice(ctx, s.ID, n("user"), n("cus"), inv); err != nil {
			return err
		}
		if afterInvoice, err = tx.Subscription(ctx, s.ID); err != nil {
			return err
		}
		if equalInvoiceWrote, err = tx.PutInvoice(ctx, s.ID, n("user"), n("cus"), inv); err != nil {
			return err
		}
		if _, err = tx.PutInvoice(ctx, n("sub_inv"), n("user"), n("cus"), inv); err != nil {
			return err
		}
		invoiceOnly, err = tx.Subscription(ctx, n("sub_inv"))
		return err
	}))

	assert.Equal(t, n("user"), linkedUser, "tx.UserID after LinkCustomer in the same transaction")
	requireSub(t, s, afterPut, "tx.Subscription after PutSubscription in the same transaction")
	assert.False(t, olderWrote, "PutSubscription must compare with the transaction's own write")
	withInv := s
	withInv.Invoice = inv
	requireSub(t, withInv, afterInvoice, "tx.Subscription after PutInvoice in the same transaction")
	assert.False(t, equalInvoiceWrote, "PutInvoice must compare with the transaction's own write")
	requireSub(t, billing.Subscription{ID: n("sub_inv"), UserID: n("user"), CustomerID: n("cus"), Invoice: inv}, invoiceOnly)

	requireSub(t, withInv, mustSub(t, st, s.ID), "after commit")
}

func testApplyEmptyEventID(t *testing.T, st billing.Store) {
	n := namer(t)
	calls := 0
	for i, cs := range []string{n("cs1"), n("cs2")} {
		require.NoError(t, st.Apply(t.Context(), "", func(ctx context.Context, tx billing.Tx) error {
			calls++
			_, err := tx.AddGrant(ctx, grant(cs, n("user"), n("cus"), i))
			return err
		}))
	}
	assert.Equal(t, 2, calls, "every Apply with an empty event ID must run")
	assert.False(t, processed(t, st, ""), "an empty event ID is never recorded")
	assert.ElementsMatch(t, []billing.Grant{
		grant(n("cs1"), n("user"), n("cus"), 0),
		grant(n("cs2"), n("user"), n("cus"), 1),
	}, normGrants(facts(t, st, n("user")).Grants))
}

const goroutines = 16

func testApplyConcurrentSameEvent(t *testing.T, st billing.Store) {
	n := namer(t)
	ctx := t.Context()
	start := make(chan struct{})
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() {
			<-start
			errs[i] = st.Apply(ctx, n("evt"), func(ctx context.Context, tx billing.Tx) error {
				_, err := tx.AddGrant(ctx, grant(n("cs")+"_"+string(rune('a'+i)), n("user"), n("cus"), i))
				// Hold the transaction open, so that the others overlap it.
				time.Sleep(time.Millisecond)
				return err
			})
		})
	}
	close(start)
	wg.Wait()

	committed, dups := 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			committed++
		case errors.Is(err, billing.ErrDuplicateEvent):
			dups++
		default:
			t.Errorf("Apply in goroutine %d: unexpected error %v", i, err)
		}
	}
	assert.Equal(t, 1, committed, "exactly one Apply must commit")
	assert.Equal(t, goroutines-1, dups, "every other Apply must return ErrDuplicateEvent")
	assert.Len(t, facts(t, st, n("user")).Grants, 1, "exactly one fn's writes must be kept")
	assert.True(t, processed(t, st, n("evt")))
}

func testApplyConcurrentDistinctEvents(t *testing.T, st billing.Store) {
	n := namer(t)
	ctx := t.Context()
	start := make(chan struct{})
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	var want []billing.Grant
	for i := range goroutines {
		suffix := "_" + string(rune('a'+i))
		g := grant(n("cs")+suffix, n("user"), n("cus"), i)
		want = append(want, g)
		wg.Go(func() {
			<-start
			errs[i] = st.Apply(ctx, n("evt")+suffix, func(ctx context.Context, tx billing.Tx) error {
				_, err := tx.AddGrant(ctx, g)
				return err
			})
		})
	}
	close(start)
	wg.Wait()

	for i, err := range errs {
		assert.NoError(t, err, "Apply in goroutine %d", i)
		assert.True(t, processed(t, st, n("evt")+"_"+string(rune('a'+i))), "event of goroutine %d", i)
	}
	assert.ElementsMatch(t, want, normGrants(facts(t, st, n("user")).Grants))
}

// ---- Park ----

func parkedList(t *testing.T, st billing.Store) []billing.ParkedEvent {
	t.Helper()
	evs, err := st.Parked(t.Context())
	require.NoError(t, err)
	return normParkedList(evs)
}

func testParkRoundTrip(t *testing.T, st billing.Store) {
	n := namer(t)
	ev := parked(n("evt"), n("cus"), 0)
	require.NoError(t, st.Park(t.Context(), ev))
	assert.Equal(t, []billing.ParkedEvent{ev}, parkedList(t, st))
}

func testParkReplaces(t *testing.T, st billing.Store) {
	n := namer(t)
	require.NoError(t, st.Park(t.Context(), parked(n("evt"), n("cus"), 0)))
	again := parked(n("evt"), n("cus2"), 60)
	again.Type = "invoice.paid"
	again.Reason = "another reason"
	again.Payload = []byte(`{"id":"replaced"}`)
	require.NoError(t, st.Park(t.Context(), again))
	assert.Equal(t, []billing.ParkedEvent{again}, parkedList(t, st))
}

func testParkedOldestFirst(t *testing.T, st billing.Store) {
	n := namer(t)
	e3 := parked(n("evt_a"), n("cus"), 300)
	e1 := parked(n("evt_c"), n("cus"), 100)
	e2 := parked(n("evt_b"), n("cus"), 200)
	for _, ev := range []billing.ParkedEvent{e3, e1, e2} {
		require.NoError(t, st.Park(t.Context(), ev))
	}
	assert.Equal(t, []billing.ParkedEvent{e1, e2, e3}, parkedList(t, st))
}

func testUnpark(t *testing.T, st billing.Store) {
	n := namer(t)
	e1 := parked(n("evt1"), n("cus"), 100)
	e2 := parked(n("evt2"), n("cus"), 200)
	require.NoError(t, st.Park(t.Context(), e1))
	require.NoError(t, st.Park(t.Context(), e2))

	require.NoError(t, st.Unpark(t.Context(), e1.ID))
	assert.Equal(t, []billing.ParkedEvent{e2}, parkedList(t, st))
	require.NoError(t, st.Unpark(t.Context(), e1.ID), "Unpark of an event no longer parked")
	require.NoError(t, st.Unpark(t.Context(), n("evt_unknown")), "Unpark of an unknown event")
	assert.Equal(t, []billing.ParkedEvent{e2}, parkedList(t, st))
	require.NoError(t, st.Unpark(t.Context(), e2.ID))
	assert.Empty(t, parkedList(t, st))
}

func testParkedEmpty(t *testing.T, st billing.Store) {
	assert.Empty(t, parkedList(t, st))
}

// ---- Facts ----

func testFactsIsolation(t *testing.T, st billing.Store) {
	n := namer(t)
	type data struct {
		user, cus string
		subs      []billing.Subscription
		grants    []billing.Grant
	}
	mk := func(who string) data {
		user, cus := n("user_"+who), n("cus_"+who)
		inv := invoice(n("in_"+who), "0001|in_"+who+"|0001", 0)
		return data{
			user: user,
			cus:  cus,
			subs: []billing.Subscription{
				fullSub(n("sub1_"+who), user, cus, at(0)),
				fullSub(n("sub2_"+who), user, cus, at(1)),
				{ID: n("sub3_" + who), UserID: user, CustomerID: cus, Invoice: inv},
			},
			grants: []billing.Grant{grant(n("cs1_"+who), user, cus, 0), grant(n("cs2_"+who), user, cus, 1)},
		}
	}
	users := []data{mk("a"), mk("b")}
	for _, d := range users {
		inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
			if err := tx.LinkCustomer(ctx, d.user, d.cus); err != nil {
				return err
			}
			for _, s := range d.subs {
				var err error
				if s.Version.IsZero() {
					_, err = tx.PutInvoice(ctx, s.ID, s.UserID, s.CustomerID, s.Invoice)
				} else {
					_, err = tx.PutSubscription(ctx, s)
				}
				if err != nil {
					return err
				}
			}
			for _, g := range d.grants {
				if _, err := tx.AddGrant(ctx, g); err != nil {
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
	}
}

func testReturnsCopies(t *testing.T, st billing.Store) {
	n := namer(t)
	s := fullSub(n("sub"), n("user"), n("cus"), at(0))
	want := fullSub(n("sub"), n("user"), n("cus"), at(0))
	require.True(t, putSub(t, st, s))
	s.Items[0].Quantity = 99 // the caller's slice, after the write

	f := facts(t, st, n("user"))
	require.Len(t, f.Subscriptions, 1)
	requireSub(t, want, f.Subscriptions[0])
	f.Subscriptions[0].Items[0].Quantity = 98 // a returned slice
	got := mustSub(t, st, s.ID)
	requireSub(t, want, got)
	got.Items[1].Quantity = 97
	requireSub(t, want, facts(t, st, n("user")).Subscriptions[0])

	ev := parked(n("evt"), n("cus"), 0)
	wantEv := parked(n("evt"), n("cus"), 0)
	require.NoError(t, st.Park(t.Context(), ev))
	ev.Payload[0] = 'X'
	evs := parkedList(t, st)
	require.Equal(t, []billing.ParkedEvent{wantEv}, evs)
	raw, err := st.Parked(t.Context())
	require.NoError(t, err)
	require.Len(t, raw, 1)
	raw[0].Payload[0] = 'Y'
	assert.Equal(t, []billing.ParkedEvent{wantEv}, parkedList(t, st))
}
