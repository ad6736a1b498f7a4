package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
)

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
		if err := save(ctx, tx, fullSub(n("sub"), n("user"), n("cus"), at(0))); err != nil {
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
	assert.Empty(t, f.Subscriptions)
}

func testApplyFnErrorRollsBack(t *testing.T, st billing.Store) {
	n := namer(t)
	errFn := errors.New("storetest: fn failed")
	s := fullSub(n("sub"), n("user"), n("cus"), at(0))
	inv := invoiceOnly(n("sub_inv"), n("user"), n("cus"))
	g := grant(n("cs"), n("user"), n("cus"), 0)
	calls := 0
	fn := func(fail bool) txFunc {
		return func(ctx context.Context, tx billing.Tx) error {
			calls++
			if err := tx.LinkCustomer(ctx, n("user"), n("cus")); err != nil {
				return err
			}
			for _, s := range []billing.Subscription{s, inv} {
				if err := save(ctx, tx, s); err != nil {
					return err
				}
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
	for _, id := range []string{s.ID, inv.ID} {
		_, found := getSub(t, st, id)
		assert.False(t, found, "%s was saved by a failed Apply", id)
	}

	// The retry runs and commits.
	require.NoError(t, st.Apply(t.Context(), n("evt"), fn(false)))
	require.Greater(t, calls, failedCalls, "a retry after a failed Apply must run fn")
	assert.True(t, processed(t, st, n("evt")))
	f = facts(t, st, n("user"))
	assert.Equal(t, n("cus"), f.CustomerID)
	assert.Equal(t, []billing.Grant{g}, normGrants(f.Grants))
	assert.ElementsMatch(t, []billing.Subscription{s, inv}, normSubs(f.Subscriptions))
	u, err := userOf(t, st, n("cus"))
	require.NoError(t, err)
	assert.Equal(t, n("user"), u)
}

func testApplyReadsOwnWrites(t *testing.T, st billing.Store) {
	n := namer(t)
	s := fullSub(n("sub"), n("user"), n("cus"), at(10))
	older := otherSub(n("sub"), n("user"), n("cus"), at(5))
	inv := invoiceOnly(n("sub_inv"), n("user"), n("cus"))
	var (
		linkedUser                   string
		foundBefore, foundAfterSave  bool
		afterSave, afterReplace, got billing.Subscription
	)
	require.NoError(t, st.Apply(t.Context(), n("evt"), func(ctx context.Context, tx billing.Tx) error {
		var err error
		if err = tx.LinkCustomer(ctx, n("user"), n("cus")); err != nil {
			return err
		}
		if linkedUser, err = tx.UserID(ctx, n("cus")); err != nil {
			return err
		}
		if _, foundBefore, err = tx.Subscription(ctx, s.ID); err != nil {
			return err
		}
		if err = tx.SaveSubscription(ctx, s); err != nil {
			return err
		}
		if afterSave, foundAfterSave, err = tx.Subscription(ctx, s.ID); err != nil {
			return err
		}
		if err = tx.SaveSubscription(ctx, older); err != nil {
			return fmt.Errorf("saving again a record the transaction created: %w", err)
		}
		if afterReplace, _, err = tx.Subscription(ctx, s.ID); err != nil {
			return err
		}
		if err = save(ctx, tx, inv); err != nil {
			return err
		}
		got, _, err = tx.Subscription(ctx, inv.ID)
		return err
	}))

	assert.Equal(t, n("user"), linkedUser, "tx.UserID after LinkCustomer in the same transaction")
	assert.False(t, foundBefore, "tx.Subscription before any save")
	assert.True(t, foundAfterSave, "tx.Subscription after SaveSubscription in the same transaction")
	requireSub(t, s, afterSave, "tx.Subscription after SaveSubscription in the same transaction")
	requireSub(t, older, afterReplace, "a second save in the same transaction replaces the first")
	requireSub(t, inv, got, "an invoice-only record in the same transaction")

	requireSub(t, older, mustSub(t, st, s.ID), "after commit")
	requireSub(t, inv, mustSub(t, st, inv.ID), "after commit")
}

func testApplyEmptyEventID(t *testing.T, st billing.Store) {
	n := namer(t)
	for i, cs := range []string{n("cs1"), n("cs2")} {
		called := false
		require.NoError(t, st.Apply(t.Context(), "", func(ctx context.Context, tx billing.Tx) error {
			called = true
			_, err := tx.AddGrant(ctx, grant(cs, n("user"), n("cus"), i))
			return err
		}))
		assert.True(t, called, "Apply %d with an empty event ID must run fn", i+1)
	}
	assert.False(t, processed(t, st, ""), "an empty event ID is never recorded")
	assert.ElementsMatch(t, []billing.Grant{
		grant(n("cs1"), n("user"), n("cus"), 0),
		grant(n("cs2"), n("user"), n("cus"), 1),
	}, normGrants(facts(t, st, n("user")).Grants))
}

const goroutines = 16

// testApplyConcurrentSameEvent applies one event from many goroutines at
// once. The transaction that gets to fn holds it open until every
// goroutine has called Apply, so that the others overlap it.
func testApplyConcurrentSameEvent(t *testing.T, st billing.Store) {
	n := namer(t)
	ctx := t.Context()
	start := make(chan struct{})
	var called, wg sync.WaitGroup // called: every goroutine has called Apply
	called.Add(goroutines)
	errs := make([]error, goroutines)
	for i := range goroutines {
		wg.Go(func() {
			<-start
			called.Done()
			errs[i] = st.Apply(ctx, n("evt"), func(ctx context.Context, tx billing.Tx) error {
				if err := tx.LockUser(ctx, n("user")); err != nil {
					return err
				}
				if _, err := tx.AddGrant(ctx, grant(fmt.Sprintf("%s_%d", n("cs"), i), n("user"), n("cus"), i)); err != nil {
					return err
				}
				called.Wait()
				return nil
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

// testApplyConcurrentDistinctEvents applies many events for one user at
// once, each locking the user (who has nothing stored) first: they must
// all commit.
func testApplyConcurrentDistinctEvents(t *testing.T, st billing.Store) {
	n := namer(t)
	ctx := t.Context()
	start := make(chan struct{})
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	var want []billing.Grant
	for i := range goroutines {
		g := grant(fmt.Sprintf("%s_%d", n("cs"), i), n("user"), n("cus"), i)
		want = append(want, g)
		wg.Go(func() {
			<-start
			errs[i] = st.Apply(ctx, fmt.Sprintf("%s_%d", n("evt"), i), func(ctx context.Context, tx billing.Tx) error {
				if err := tx.LockUser(ctx, n("user")); err != nil {
					return err
				}
				_, err := tx.AddGrant(ctx, g)
				return err
			})
		})
	}
	close(start)
	wg.Wait()

	for i, err := range errs {
		assert.NoError(t, err, "Apply in goroutine %d", i)
		assert.True(t, processed(t, st, fmt.Sprintf("%s_%d", n("evt"), i)), "event of goroutine %d", i)
	}
	assert.ElementsMatch(t, want, normGrants(facts(t, st, n("user")).Grants))
}
