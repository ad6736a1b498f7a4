package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
)

// ---- Concurrent ----
//
// Participants, each in a goroutine of its own, released together, each
// run one Apply (an event of its own) that reads a subscription for
// update, appends an item named after the participant (creating the
// record when there is none) and saves it. A participant whose Apply
// returns ErrRecordRaced runs it again, as billing does. Whatever the
// store serialized, retried or reported raced, the end state must be the
// one of some serial run: one record, with every participant's item
// exactly once, and of each participant's writes only those of the fn
// run that committed.

// lockMode is what a participant's transaction calls before it reads
// the subscription.
type lockMode int

const (
	lockNone       lockMode = iota // nothing: Tx.Subscription's read for update only
	lockByUserID                   // Tx.UserID of the user's customer, as billing does for a Stripe object
	lockByLockUser                 // Tx.LockUser, as billing does for a user with no customer
)

// maxRaces bounds the Applies of one participant that return
// ErrRecordRaced: a rerun finds the record that another transaction
// created, so billing's own bound is never reached.
const maxRaces = 5

// participant is one goroutine of a concurrency test.
type participant struct {
	name    string
	eventID string
	item    billing.Item // the item it appends, PriceID its name
	runs    atomic.Int64 // fn's runs, the store's own retries included
	races   int          // its Applies that returned ErrRecordRaced
	err     error        // its last Apply's error
	leaks   []string     // what a raced Apply kept
}

func newParticipants(eventPrefix string, count int) []*participant {
	ps := make([]*participant, count)
	for i := range ps {
		name := fmt.Sprintf("p%d", i)
		ps[i] = &participant{
			name:    name,
			eventID: eventPrefix + "_" + name,
			item: billing.Item{
				PriceID:            name,
				Quantity:           int64(i + 1),
				CurrentPeriodStart: at(i),
				CurrentPeriodEnd:   at(day + i),
			},
		}
	}
	return ps
}

// round is one subscription that participants change at once.
type round struct {
	st        billing.Store
	mode      lockMode
	user, cus string
	// created is the record a participant creates when it finds none:
	// no items, LatestInvoiceID set to the participant's name.
	created billing.Subscription
	// mustExist makes a participant fail when it finds no record.
	mustExist bool
	// grantPrefix starts the Checkout Session ID of the grant each fn
	// run adds, named after the participant and the run.
	grantPrefix string
}

func (r *round) grantOf(p *participant, run int64) billing.Grant {
	return grant(fmt.Sprintf("%s_%s_run%d", r.grantPrefix, p.name, run), r.user, r.cus, 0)
}

// fn is p's transaction. After its read it waits until every participant
// has called Apply (called), so that their reads overlap its own.
func (r *round) fn(p *participant, called *sync.WaitGroup) txFunc {
	return func(ctx context.Context, tx billing.Tx) error {
		run := p.runs.Add(1)
		switch r.mode {
		case lockByUserID:
			u, err := tx.UserID(ctx, r.cus)
			if err != nil {
				return fmt.Errorf("storetest: UserID(%q): %w", r.cus, err)
			}
			if u != r.user {
				return fmt.Errorf("storetest: UserID(%q) = %q, want %q", r.cus, u, r.user)
			}
		case lockByLockUser:
			if err := tx.LockUser(ctx, r.user); err != nil {
				return fmt.Errorf("storetest: LockUser(%q): %w", r.user, err)
			}
		}
		s, found, err := tx.Subscription(ctx, r.created.ID)
		if err != nil {
			return fmt.Errorf("storetest: Subscription(%q): %w", r.created.ID, err)
		}
		if !found {
			if r.mustExist {
				return fmt.Errorf("storetest: Subscription(%q) not found", r.created.ID)
			}
			s = r.created
			s.LatestInvoiceID = p.name
		}
		called.Wait()
		s.Items = append(s.Items, p.item)
		if _, err := tx.AddGrant(ctx, r.grantOf(p, run)); err != nil {
			return fmt.Errorf("storetest: AddGrant: %w", err)
		}
		if err := tx.SaveSubscription(ctx, s); err != nil {
			return fmt.Errorf("storetest: SaveSubscription(%q): %w", s.ID, err)
		}
		return nil
	}
}

// run releases the participants at once and waits for them all.
func (r *round) run(t *testing.T, ps []*participant) {
	ctx := t.Context()
	start := make(chan struct{})
	var called, wg sync.WaitGroup
	called.Add(len(ps))
	for _, p := range ps {
		wg.Go(func() {
			<-start
			called.Done()
			fn := r.fn(p, &called)
			for {
				p.err = r.st.Apply(ctx, p.eventID, fn)
				if !errors.Is(p.err, billing.ErrRecordRaced) {
					return
				}
				p.races++
				// Nothing of the raced transaction may be kept.
				if ok, err := r.st.Processed(ctx, p.eventID); err != nil || ok {
					p.leaks = append(p.leaks, fmt.Sprintf("after ErrRecordRaced, Processed(%q) = %v, %v", p.eventID, ok, err))
				}
				if p.races == maxRaces {
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()

	races, runs := 0, int64(0)
	for _, p := range ps {
		races += p.races
		runs += p.runs.Load()
	}
	t.Logf("%s: %d participants, %d Applies returned ErrRecordRaced, fn ran %d times", r.created.ID, len(ps), races, runs)
}

// check checks the end state: every Apply committed, its event recorded;
// the record is before (nil when there was none) with every
// participant's item appended once; the grants are those of the fn runs
// that committed.
func (r *round) check(t *testing.T, ps []*participant, before *billing.Subscription) {
	t.Helper()
	for _, p := range ps {
		require.NoError(t, p.err, "Apply of %s (after %d ErrRecordRaced)", p.name, p.races)
		assert.Empty(t, p.leaks, "Apply of %s", p.name)
		assert.GreaterOrEqual(t, p.runs.Load(), int64(p.races+1), "fn of %s must run in every Apply", p.name)
		assert.True(t, processed(t, r.st, p.eventID), "event of %s", p.name)
	}

	f := facts(t, r.st, r.user)
	require.Len(t, f.Subscriptions, 1, "Facts must hold one record")
	got := normSub(mustSub(t, r.st, r.created.ID))
	require.Equal(t, got, normSub(f.Subscriptions[0]), "Facts and tx.Subscription must agree")

	var want billing.Subscription
	if before != nil {
		want = *before
	} else {
		// The participant that found no record created it, with its own
		// item first.
		creator := got.LatestInvoiceID
		var names []string
		for _, p := range ps {
			names = append(names, p.name)
		}
		require.Contains(t, names, creator, "LatestInvoiceID must name the participant that created the record")
		require.NotEmpty(t, got.Items)
		assert.Equal(t, creator, got.Items[0].PriceID, "the creator's item must come first")
		want = r.created
		want.LatestInvoiceID = creator
	}
	var added []billing.Item
	for _, p := range ps {
		added = append(added, p.item)
	}
	require.GreaterOrEqual(t, len(got.Items), len(want.Items), "items")
	assert.Equal(t, normItems(want.Items), normItems(got.Items[:len(want.Items)]), "the items there before, in their order")
	assert.ElementsMatch(t, added, got.Items[len(want.Items):], "one item per participant: none lost, none twice")
	got.Items, want.Items = nil, nil
	assert.Equal(t, normSub(want), got, "the record's other fields")

	var grants []billing.Grant
	for _, p := range ps {
		grants = append(grants, r.grantOf(p, p.runs.Load()))
	}
	assert.ElementsMatch(t, grants, normGrants(f.Grants), "one grant per participant, of its fn run that committed")
}

// testFirstCreate has participants find a subscription absent at once,
// and create it: the store serializes them (the later ones find the
// record and append to it) or reports the later creations raced.
func testFirstCreate(mode lockMode) func(t *testing.T, st billing.Store) {
	return func(t *testing.T, st billing.Store) {
		const rounds, participants = 3, 4
		n := namer(t)
		for i := range rounds {
			r := &round{
				st:   st,
				mode: mode,
				user: n(fmt.Sprintf("user%d", i)),
				cus:  n(fmt.Sprintf("cus%d", i)),
				created: billing.Subscription{
					ID:         n(fmt.Sprintf("sub%d", i)),
					UserID:     n(fmt.Sprintf("user%d", i)),
					CustomerID: n(fmt.Sprintf("cus%d", i)),
					Status:     "active",
					Version:    at(i),
				},
				grantPrefix: n(fmt.Sprintf("cs%d", i)),
			}
			if mode == lockByUserID {
				require.NoError(t, link(t, st, r.user, r.cus))
			}
			ps := newParticipants(n(fmt.Sprintf("evt%d", i)), participants)
			r.run(t, ps)
			r.check(t, ps, nil)
		}
	}
}

// testReadModifyWrite has participants read an existing subscription for
// update at once, and each save it with one more item: none may save
// over another's write.
func testReadModifyWrite(mode lockMode) func(t *testing.T, st billing.Store) {
	return func(t *testing.T, st billing.Store) {
		const participants = 8
		n := namer(t)
		before := fullSub(n("sub"), n("user"), n("cus"), at(0))
		r := &round{
			st:          st,
			mode:        mode,
			user:        n("user"),
			cus:         n("cus"),
			created:     before,
			mustExist:   true,
			grantPrefix: n("cs"),
		}
		if mode == lockByUserID {
			require.NoError(t, link(t, st, r.user, r.cus))
		}
		saveSub(t, st, before)
		ps := newParticipants(n("evt"), participants)
		r.run(t, ps)
		r.check(t, ps, &before)
	}
}
