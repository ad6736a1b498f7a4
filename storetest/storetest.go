// Package storetest proves a [billing.Store]: [Run] is the conformance
// suite of the Store and Tx contracts, and [RunLifecycles] the hostile
// lifecycle suite, billing's real webhook handler on the offline Stripe of
// package billingtest, delivering every lifecycle's events in order,
// shuffled, duplicated, concurrently, interleaved with stale ones and in
// one second. Every Store (memstore, sqlstore on each database,
// examples/mapstore, and your own) runs both.
//
// To run them against your Store, call them from a test in your package:
//
//	func TestStore(t *testing.T) {
//		newStore := func(t *testing.T) billing.Store {
//			db := openEmptyTestDatabase(t) // closed with t.Cleanup
//			return mystore.New(db)
//		}
//		storetest.Run(t, newStore)
//		storetest.RunLifecycles(t, newStore, storetest.LifecycleOptions{})
//	}
//
// Run them with the race detector (go test -race): the suites call the
// Store from many goroutines.
package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
)

// Run checks that the stores made by newStore keep every contract of
// [billing.Store] and [billing.Tx]. It runs one subtest per contract, in
// parallel, and calls newStore once per subtest with that subtest's t.
//
// newStore must return an empty store, not shared with any other call
// (for instance a fresh database or schema per call), and may use
// t.Cleanup to release it. Every subtest uses IDs of its own, so stores
// that share tables but not rows also work, except for the Park, Outbox,
// EventLister and SubscriptionLister subtests, which expect to see only
// the events they parked, the entries they recorded, the events they
// applied and the records they saved. The Outbox group runs when the
// store implements [billing.Outbox], the ConditionalStore group when it
// implements [billing.ConditionalStore], and the EventLister,
// Checkpointer and SubscriptionLister groups when it implements them.
//
// The suite uses a transaction the way billing does: it reads a
// subscription with [billing.Tx.Subscription] before it saves it with
// [billing.Tx.SaveSubscription] in the same transaction, calls
// [billing.Tx.UserID] or [billing.Tx.LockUser] first where billing does,
// and runs again a transaction whose Apply returned an error wrapping
// [billing.ErrRecordRaced]. The concurrency subtests accept every outcome
// the contract allows (transactions serialized, or a creation raced and
// run again) and check that the end state is the one a serial run gives.
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
		{"Subscription", []test{
			{"RoundTrip", testSubscriptionRoundTrip},
			{"ZeroFieldsRoundTrip", testSubscriptionZeroFields},
			{"SaveReplacesWholeRecord", testSaveReplaces},
			{"SaveMovesRecordToAnotherUser", testSaveMovesRecord},
			{"InvoiceOnlyRecord", testInvoiceOnlyRecord},
			{"FailedTxLeavesNothing", testSaveInFailedTx},
			{"SubscriptionsOfUser", testSubscriptionsOfUser},
		}},
		{"Lock", []test{
			{"LockUserWithNothingStored", testLockUserNothingStored},
			{"UserIDThenWrites", testUserIDThenWrites},
			{"LockAgainInOneTx", testLockAgain},
		}},
		{"Refund", []test{
			{"RoundTrip", testRefundRoundTrip},
			{"SaveReplaces", testRefundReplaces},
			{"FailedTxLeavesNothing", testRefundFailedTx},
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
		{"Concurrent", []test{
			{"FirstCreate", testFirstCreate(lockNone)},
			{"FirstCreateAfterUserID", testFirstCreate(lockByUserID)},
			{"FirstCreateAfterLockUser", testFirstCreate(lockByLockUser)},
			{"ReadModifyWrite", testReadModifyWrite(lockNone)},
			{"ReadModifyWriteAfterUserID", testReadModifyWrite(lockByUserID)},
			{"ReadModifyWriteAfterLockUser", testReadModifyWrite(lockByLockUser)},
		}},
		{"ConditionalStore", []test{
			{"Creates", testConditionalCreates},
			{"CompareAndSwap", testConditionalCompareAndSwap},
			{"UnknownCustomer", testConditionalUnknownCustomer},
			{"ConcurrentSameEvent", testConditionalConcurrentSameEvent},
			{"ConcurrentNewerStates", testConditionalConcurrentNewerStates},
			{"ReportsPrevious", testConditionalReportsPrevious},
		}},
		{"Park", []test{
			{"RoundTrip", testParkRoundTrip},
			{"ParkAgainKeepsParkedAt", testParkAgainKeepsParkedAt},
			{"OldestFirst", testParkedOldestFirst},
			{"Pages", testParkedPages},
			{"Unpark", testUnpark},
			{"PruneParked", testPruneParked},
			{"EmptyStore", testParkedEmpty},
		}},
		leaseGroup(),
		{"Outbox", []test{
			{"RecordOnce", testOutboxRecordOnce},
			{"RolledBack", testOutboxRolledBack},
			{"OrderPerUser", testOutboxOrderPerUser},
			{"RetryLater", testOutboxRetryLater},
			{"ClaimExpires", testOutboxClaimExpires},
			{"DeadLetters", testOutboxDeadLetters},
			{"Prune", testOutboxPrune},
			{"ConcurrentClaims", testOutboxConcurrentClaims},
		}},
		{"EventLister", []test{
			{"KeepsInfo", testEventsKeepInfo},
			{"Limit", testEventsLimit},
			{"WithoutInfo", testEventsWithoutInfo},
			{"RolledBack", testEventsRolledBack},
			{"DuplicateKeepsFirst", testEventsDuplicateKeepsFirst},
			{"ApplyNewer", testEventsApplyNewer},
			{"LongInfo", testEventsLongInfo},
		}},
		{"Checkpointer", []test{
			{"RoundTrip", testCheckpointRoundTrip},
			{"LongValue", testCheckpointLongValue},
		}},
		{"SubscriptionLister", []test{
			{"ByStatus", testListByStatus},
			{"Pages", testListPages},
			{"SeesCommitted", testListSeesCommitted},
		}},
		{"Facts", []test{
			{"IsolatedPerUser", testFactsIsolation},
			{"ReturnsCopies", testReturnsCopies},
		}},
	}
}

// ---- fixtures ----

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

// fullSub returns a subscription with every field set, each time to a
// value of its own (so that swapped columns show), and invoice facts
// that are paid, not closed.
func fullSub(id, userID, customerID string, version time.Time) billing.Subscription {
	return billing.Subscription{
		ID:         id,
		CustomerID: customerID,
		UserID:     userID,
		Status:     "active",
		Items: []billing.Item{
			{PriceID: "price_basic", Quantity: 2, CurrentPeriodStart: at(-day), CurrentPeriodEnd: at(29 * day)},
			{PriceID: "price_addon", Quantity: 5, CurrentPeriodStart: at(-3600), CurrentPeriodEnd: at(7 * day)},
			{PriceID: "price_seat", Quantity: 1, CurrentPeriodStart: at(-2 * day), CurrentPeriodEnd: at(28 * day)},
		},
		CancelAtPeriodEnd: true,
		CancelAt:          at(29*day + 1),
		CanceledAt:        at(-60),
		EndedAt:           at(31 * day),
		TrialStart:        at(-15 * day),
		TrialEnd:          at(-day + 7),
		LatestInvoiceID:   "in_latest_" + id,
		Version:           version,
		Invoice:           invoice("in_latest_"+id, -120),
	}
}

// otherSub returns a subscription with every field set to values other
// than fullSub's, the booleans flipped (invoice facts closed, not paid),
// a quantity beyond 32 bits and times beyond 2038.
func otherSub(id, userID, customerID string, version time.Time) billing.Subscription {
	far := time.Date(2040, time.July, 4, 3, 2, 1, 0, time.UTC)
	return billing.Subscription{
		ID:         id,
		CustomerID: customerID,
		UserID:     userID,
		Status:     "past_due",
		Items: []billing.Item{
			{PriceID: "price_enterprise", Quantity: 1 << 40, CurrentPeriodStart: at(3), CurrentPeriodEnd: far},
			{PriceID: "price_basic", Quantity: 3, CurrentPeriodStart: at(4), CurrentPeriodEnd: at(5)},
		},
		CancelAtPeriodEnd: false,
		CancelAt:          far.Add(time.Second),
		CanceledAt:        at(11),
		EndedAt:           far.Add(2 * time.Second),
		TrialStart:        at(13),
		TrialEnd:          at(14),
		LatestInvoiceID:   "in_other_" + id,
		Version:           version,
		Invoice: billing.Invoice{
			ID:                 "in_other_" + id,
			Created:            at(15),
			Paid:               false,
			Closed:             true,
			AttemptCount:       4,
			NextPaymentAttempt: far.Add(3 * time.Second),
		},
	}
}

// invoice returns invoice facts with every field set (Paid true, Closed
// false).
func invoice(id string, created int) billing.Invoice {
	return billing.Invoice{
		ID:                 id,
		Created:            at(created),
		Paid:               true,
		Closed:             false,
		AttemptCount:       2,
		NextPaymentAttempt: at(created + day),
	}
}

// invoiceOnly returns a record holding only invoice facts: no status, a
// zero Version.
func invoiceOnly(id, userID, customerID string) billing.Subscription {
	inv := invoice("in_only_"+id, 30)
	inv.Paid = false
	inv.Closed = true
	return billing.Subscription{ID: id, UserID: userID, CustomerID: customerID, Invoice: inv}
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
		PaymentIntentID:   "pi_" + checkoutSessionID,
	}
}

// refund returns a refund record with every field set.
func refund(paymentIntentID, userID, customerID string, amount int64, version int) billing.Refund {
	return billing.Refund{PaymentIntentID: paymentIntentID, ChargeID: "ch_" + paymentIntentID, UserID: userID,
		CustomerID: customerID, Amount: amount, Currency: "eur", Version: at(version)}
}

func normRefunds(rs []billing.Refund) []billing.Refund {
	out := make([]billing.Refund, 0, len(rs))
	for _, r := range rs {
		r.Version = utc(r.Version)
		out = append(out, r)
	}
	return out
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

// ---- normalizing what a store returns ----

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
	s.Items = normItems(s.Items)
	return s
}

func normItems(items []billing.Item) []billing.Item {
	if len(items) == 0 {
		return nil
	}
	out := make([]billing.Item, len(items))
	for i, it := range items {
		it.CurrentPeriodStart = utc(it.CurrentPeriodStart)
		it.CurrentPeriodEnd = utc(it.CurrentPeriodEnd)
		out[i] = it
	}
	return out
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

func requireSub(t *testing.T, want, got billing.Subscription, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, normSub(want), normSub(got), msgAndArgs...)
}

// ---- transactions ----

type txFunc = func(ctx context.Context, tx billing.Tx) error

// inTx runs fn in an Apply without an event ID and requires it to commit.
func inTx(t *testing.T, st billing.Store, fn txFunc) {
	t.Helper()
	require.NoError(t, st.Apply(t.Context(), "", fn))
}

// save saves s in tx the way billing does: it reads the record first.
func save(ctx context.Context, tx billing.Tx, s billing.Subscription) error {
	if _, _, err := tx.Subscription(ctx, s.ID); err != nil {
		return fmt.Errorf("Subscription(%q): %w", s.ID, err)
	}
	if err := tx.SaveSubscription(ctx, s); err != nil {
		return fmt.Errorf("SaveSubscription(%q): %w", s.ID, err)
	}
	return nil
}

// saveSub saves subs, each read first, in one committed transaction.
func saveSub(t *testing.T, st billing.Store, subs ...billing.Subscription) {
	t.Helper()
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		for _, s := range subs {
			if err := save(ctx, tx, s); err != nil {
				return err
			}
		}
		return nil
	})
}

// getSub reads a subscription in a transaction of its own.
func getSub(t *testing.T, st billing.Store, id string) (billing.Subscription, bool) {
	t.Helper()
	var (
		s     billing.Subscription
		found bool
	)
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		var err error
		s, found, err = tx.Subscription(ctx, id)
		return err
	})
	return s, found
}

// mustSub returns the stored subscription, which must exist.
func mustSub(t *testing.T, st billing.Store, id string) billing.Subscription {
	t.Helper()
	s, found := getSub(t, st, id)
	require.True(t, found, "Subscription(%q) must be found", id)
	return s
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
