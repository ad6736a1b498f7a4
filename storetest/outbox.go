package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
)

// ---- Outbox (run when the store implements it) ----

// outbox returns st as an Outbox, or skips the test.
func outbox(t *testing.T, st billing.Store) billing.Outbox {
	t.Helper()
	ob, ok := st.(billing.Outbox)
	if !ok {
		t.Skip("the store does not implement billing.Outbox")
	}
	return ob
}

// entry is an outbox entry as billing records it.
func entry(key, userID string, recordedAt int) billing.OutboxEntry {
	return billing.OutboxEntry{
		Key: key, UserID: userID, Kind: "kind_" + key,
		Payload:    []byte(`{"key":"` + key + `","note":"ünïcode \u0000 and bytes"}`),
		RecordedAt: at(recordedAt),
	}
}

// record records entries in one transaction, with each user locked as
// billing does, and returns whether each was added.
func record(t *testing.T, st billing.Store, es ...billing.OutboxEntry) []bool {
	t.Helper()
	var added []bool
	inTx(t, st, func(ctx context.Context, tx billing.Tx) error {
		added = added[:0]
		otx, ok := tx.(billing.OutboxTx)
		if !ok {
			return fmt.Errorf("the store implements billing.Outbox but its Tx (%T) does not implement billing.OutboxTx", tx)
		}
		for _, e := range es {
			if err := tx.LockUser(ctx, e.UserID); err != nil {
				return err
			}
			ok, err := otx.Record(ctx, e)
			if err != nil {
				return fmt.Errorf("Record(%q): %w", e.Key, err)
			}
			added = append(added, ok)
		}
		return nil
	})
	return added
}

// claim claims with a claim of a minute, and returns the keys claimed.
func claim(t *testing.T, ob billing.Outbox, now time.Time, limit int) ([]billing.OutboxEntry, []string) {
	t.Helper()
	es, err := ob.Claim(t.Context(), now, now.Add(time.Minute), limit)
	require.NoError(t, err)
	keys := make([]string, 0, len(es))
	for _, e := range es {
		require.NotEmpty(t, e.Claim, "a claimed entry carries its claim's token")
		keys = append(keys, e.Key)
	}
	return es, keys
}

func stats(t *testing.T, ob billing.Outbox) billing.OutboxStats {
	t.Helper()
	s, err := ob.OutboxStats(t.Context())
	require.NoError(t, err)
	return s
}

// testOutboxRecordOnce: a key is recorded once, within one transaction
// and across transactions; the entry comes back as recorded.
func testOutboxRecordOnce(t *testing.T, st billing.Store) {
	ob := outbox(t, st)
	n := namer(t)
	e := entry(n("k"), n("user"), 0)
	require.Equal(t, []bool{true, false}, record(t, st, e, e), "the second Record of a key in one transaction adds nothing")
	again := e
	again.Payload, again.Kind = []byte(`{"other":true}`), "other"
	require.Equal(t, []bool{false}, record(t, st, again), "a recorded key is refused in a later transaction")

	es, keys := claim(t, ob, at(0), 10)
	require.Equal(t, []string{e.Key}, keys)
	got := es[0]
	assert.Equal(t, e.UserID, got.UserID)
	assert.Equal(t, e.Kind, got.Kind, "the first recording stays")
	assert.Equal(t, e.Payload, got.Payload, "the payload comes back byte for byte")
	assert.True(t, e.RecordedAt.Equal(got.RecordedAt), "RecordedAt %v, want %v", got.RecordedAt, e.RecordedAt)
	assert.True(t, got.NextAttempt.Equal(e.RecordedAt), "NextAttempt starts at RecordedAt, got %v", got.NextAttempt)
	assert.Zero(t, got.Attempts)
	assert.Empty(t, got.LastError)
	assert.False(t, got.Dead)
	assert.Equal(t, billing.OutboxStats{Pending: 1, OldestPending: e.RecordedAt}, normStats(stats(t, ob)))
}

// testOutboxRolledBack: an entry recorded in a transaction that fails is
// not kept, and its key stays free.
func testOutboxRolledBack(t *testing.T, st billing.Store) {
	ob := outbox(t, st)
	n := namer(t)
	e := entry(n("k"), n("user"), 0)
	boom := errors.New("boom")
	err := st.Apply(t.Context(), n("evt"), func(ctx context.Context, tx billing.Tx) error {
		otx, ok := tx.(billing.OutboxTx)
		require.True(t, ok, "the Tx must implement billing.OutboxTx")
		added, err := otx.Record(ctx, e)
		require.NoError(t, err)
		require.True(t, added)
		return boom
	})
	require.ErrorIs(t, err, boom)
	_, keys := claim(t, ob, at(0), 10)
	require.Empty(t, keys, "a rolled-back entry must not be claimable")
	require.Equal(t, billing.OutboxStats{}, normStats(stats(t, ob)))
	require.Equal(t, []bool{true}, record(t, st, e), "the key of a rolled-back entry is free")
}

// testOutboxOrderPerUser: Claim returns each user's oldest pending entry
// only; a user's next entry comes once the one before is delivered.
func testOutboxOrderPerUser(t *testing.T, st billing.Store) {
	ob := outbox(t, st)
	n := namer(t)
	a1, b1, a2, a3 := entry(n("a1"), n("alice"), 0), entry(n("b1"), n("bob"), 1), entry(n("a2"), n("alice"), 2), entry(n("a3"), n("alice"), 3)
	record(t, st, a1, b1)
	record(t, st, a2)
	record(t, st, a3)

	es, keys := claim(t, ob, at(10), 10)
	require.Equal(t, []string{a1.Key, b1.Key}, keys, "one entry per user, oldest first")
	require.Less(t, es[0].Seq, es[1].Seq)
	require.NotEqual(t, es[0].Claim, "", "claimed")
	_, keys = claim(t, ob, at(10), 10)
	require.Empty(t, keys, "claimed entries are not claimed again, and alice's later ones wait")

	require.NoError(t, ob.Delivered(t.Context(), a1.Key, at(11)))
	_, keys = claim(t, ob, at(11), 10)
	require.Equal(t, []string{a2.Key}, keys, "alice's next entry comes once the first is delivered")
	require.NoError(t, ob.Delivered(t.Context(), a2.Key, at(12)))
	require.NoError(t, ob.Delivered(t.Context(), a2.Key, at(13)), "delivering twice is not an error")
	_, keys = claim(t, ob, at(12), 1)
	require.Equal(t, []string{a3.Key}, keys, "limit 1")
	require.Equal(t, int64(2), stats(t, ob).Pending, "a3 and b1 are pending")
}

// testOutboxRetryLater: a failed delivery waits until its RetryAt, and
// holds the user's later entries back until then; it comes back with its
// attempts and error.
func testOutboxRetryLater(t *testing.T, st billing.Store) {
	ob := outbox(t, st)
	n := namer(t)
	a1, a2 := entry(n("a1"), n("alice"), 0), entry(n("a2"), n("alice"), 1)
	record(t, st, a1, a2)
	es, keys := claim(t, ob, at(5), 10)
	require.Equal(t, []string{a1.Key}, keys)
	require.NoError(t, ob.Failed(t.Context(), a1.Key, es[0].Claim, billing.DeliveryFailure{Error: "handler: 503", RetryAt: at(65)}))

	_, keys = claim(t, ob, at(64), 10)
	require.Empty(t, keys, "not due yet, and a2 waits behind it")
	es, keys = claim(t, ob, at(65), 10)
	require.Equal(t, []string{a1.Key}, keys, "due at RetryAt")
	assert.Equal(t, 1, es[0].Attempts)
	assert.Equal(t, "handler: 503", es[0].LastError)
	assert.True(t, es[0].NextAttempt.Equal(at(65)), "NextAttempt %v", es[0].NextAttempt)

	require.NoError(t, ob.Failed(t.Context(), a1.Key, es[0].Claim, billing.DeliveryFailure{Error: "again", RetryAt: at(125)}))
	es, _ = claim(t, ob, at(125), 10)
	require.Len(t, es, 1)
	assert.Equal(t, 2, es[0].Attempts, "attempts add up")
	assert.Equal(t, "again", es[0].LastError)
}

// testOutboxClaimExpires: a claim held past its time (a replica that
// died) is taken over under a new token; the old token can no longer
// settle a failure.
func testOutboxClaimExpires(t *testing.T, st billing.Store) {
	ob := outbox(t, st)
	n := namer(t)
	e := entry(n("k"), n("user"), 0)
	record(t, st, e)
	first, err := ob.Claim(t.Context(), at(0), at(60), 10)
	require.NoError(t, err)
	require.Len(t, first, 1)
	none, err := ob.Claim(t.Context(), at(59), at(119), 10)
	require.NoError(t, err)
	require.Empty(t, none, "claimed until 60")
	second, err := ob.Claim(t.Context(), at(60), at(120), 10)
	require.NoError(t, err)
	require.Len(t, second, 1, "an expired claim is taken over")
	require.NotEqual(t, first[0].Claim, second[0].Claim, "a new claim has a new token")

	require.NoError(t, ob.Failed(t.Context(), e.Key, first[0].Claim, billing.DeliveryFailure{Error: "stale", Dead: true}))
	require.Empty(t, deadKeys(t, ob), "a stale claim's failure changes nothing")
	require.NoError(t, ob.Failed(t.Context(), e.Key, second[0].Claim, billing.DeliveryFailure{Error: "late", RetryAt: at(200)}))
	es, _ := claim(t, ob, at(200), 10)
	require.Len(t, es, 1)
	assert.Equal(t, 1, es[0].Attempts, "only the live claim's failure counts")
	assert.Equal(t, "late", es[0].LastError)
}

func deadKeys(t *testing.T, ob billing.Outbox) []string {
	t.Helper()
	es, err := ob.DeadEntries(t.Context(), 0, 100)
	require.NoError(t, err)
	keys := []string{}
	for _, e := range es {
		require.True(t, e.Dead)
		keys = append(keys, e.Key)
	}
	return keys
}

// testOutboxDeadLetters: a dead entry releases the user's later ones, is
// listed with its payload, attempts and error, and can be requeued (due
// again, attempts reset) or discarded.
func testOutboxDeadLetters(t *testing.T, st billing.Store) {
	ob := outbox(t, st)
	n := namer(t)
	a1, a2, b1 := entry(n("a1"), n("alice"), 0), entry(n("a2"), n("alice"), 1), entry(n("b1"), n("bob"), 2)
	record(t, st, a1, a2, b1)
	es, _ := claim(t, ob, at(5), 10)
	require.Len(t, es, 2)
	for _, e := range es {
		require.NoError(t, ob.Failed(t.Context(), e.Key, e.Claim, billing.DeliveryFailure{Error: "gone: " + e.Key, Dead: true}))
	}
	_, keys := claim(t, ob, at(6), 10)
	require.Equal(t, []string{a2.Key}, keys, "a dead entry releases the user's next one")
	require.NoError(t, ob.Delivered(t.Context(), a2.Key, at(7)))
	require.NoError(t, ob.Delivered(t.Context(), a1.Key, at(7)), "Delivered leaves a dead entry dead")

	dead, err := ob.DeadEntries(t.Context(), 0, 10)
	require.NoError(t, err)
	require.Len(t, dead, 2)
	assert.Equal(t, []string{a1.Key, b1.Key}, []string{dead[0].Key, dead[1].Key}, "lowest Seq first")
	assert.Equal(t, a1.Payload, dead[0].Payload)
	assert.Equal(t, 1, dead[0].Attempts)
	assert.Equal(t, "gone: "+a1.Key, dead[0].LastError)
	page, err := ob.DeadEntries(t.Context(), dead[0].Seq, 10)
	require.NoError(t, err)
	require.Len(t, page, 1, "the page after the first")
	assert.Equal(t, b1.Key, page[0].Key)
	assert.Equal(t, billing.OutboxStats{Pending: 0, Dead: 2}, normStats(stats(t, ob)))

	require.ErrorIs(t, ob.Requeue(t.Context(), n("nope"), at(8)), billing.ErrNotFound)
	require.ErrorIs(t, ob.Requeue(t.Context(), a2.Key, at(8)), billing.ErrNotFound, "a delivered entry is not dead")
	require.NoError(t, ob.Requeue(t.Context(), a1.Key, at(100)))
	_, keys = claim(t, ob, at(99), 10)
	require.Empty(t, keys, "requeued, due at 100")
	es, keys = claim(t, ob, at(100), 10)
	require.Equal(t, []string{a1.Key}, keys)
	assert.Zero(t, es[0].Attempts, "a requeued entry starts its attempts again")
	assert.False(t, es[0].Dead)

	require.ErrorIs(t, ob.DiscardDead(t.Context(), a1.Key), billing.ErrNotFound, "a pending entry is not discarded")
	require.NoError(t, ob.DiscardDead(t.Context(), b1.Key))
	require.ErrorIs(t, ob.DiscardDead(t.Context(), b1.Key), billing.ErrNotFound)
	require.Empty(t, deadKeys(t, ob))
	assert.Equal(t, billing.OutboxStats{Pending: 1, OldestPending: a1.RecordedAt}, normStats(stats(t, ob)))
}

// testOutboxPrune: delivered entries are pruned by the time they were
// delivered; pending and dead ones never; a pruned key is free again.
func testOutboxPrune(t *testing.T, st billing.Store) {
	ob := outbox(t, st)
	n := namer(t)
	old, recent, pending, dead := entry(n("old"), n("u1"), 0), entry(n("recent"), n("u2"), 0), entry(n("pending"), n("u3"), 0), entry(n("dead"), n("u4"), 0)
	record(t, st, old, recent, pending, dead)
	es, _ := claim(t, ob, at(1), 10)
	require.Len(t, es, 4)
	for _, e := range es {
		if e.Key == dead.Key {
			require.NoError(t, ob.Failed(t.Context(), e.Key, e.Claim, billing.DeliveryFailure{Error: "x", Dead: true}))
		}
	}
	require.NoError(t, ob.Delivered(t.Context(), old.Key, at(100)))
	require.NoError(t, ob.Delivered(t.Context(), recent.Key, at(200)))
	pruned, err := ob.PruneDelivered(t.Context(), at(200))
	require.NoError(t, err)
	assert.Equal(t, int64(1), pruned, "delivered before the cutoff only")
	assert.Equal(t, []bool{true, false, false, false}, record(t, st, old, recent, pending, dead),
		"a pruned key is free; the others still refuse it")
	assert.Equal(t, []string{dead.Key}, deadKeys(t, ob))
}

// testOutboxConcurrentClaims: replicas claiming and delivering at once
// deliver every entry once, each user's in order.
func testOutboxConcurrentClaims(t *testing.T, st billing.Store) {
	ob := outbox(t, st)
	n := namer(t)
	const users, perUser, workers = 12, 3, 6
	for u := range users {
		for i := range perUser {
			record(t, st, entry(n(fmt.Sprintf("u%02d_%d", u, i)), n(fmt.Sprintf("user%02d", u)), u*perUser+i))
		}
	}
	var mu sync.Mutex
	delivered := map[string][]string{} // user -> keys in delivery order
	count := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range 200 {
				es, err := ob.Claim(context.Background(), at(1000), at(100000), 2)
				if err != nil {
					errs <- err
					return
				}
				if len(es) == 0 {
					s, err := ob.OutboxStats(context.Background())
					if err != nil {
						errs <- err
						return
					}
					if s.Pending == 0 {
						return
					}
					continue
				}
				for _, e := range es {
					mu.Lock()
					delivered[e.UserID] = append(delivered[e.UserID], e.Key)
					count[e.Key]++
					mu.Unlock()
					if err := ob.Delivered(context.Background(), e.Key, at(1001)); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, count, users*perUser, "every entry delivered")
	for k, c := range count {
		require.Equal(t, 1, c, "entry %s claimed %d times", k, c)
	}
	for u := range users {
		want := []string{}
		for i := range perUser {
			want = append(want, n(fmt.Sprintf("u%02d_%d", u, i)))
		}
		require.Equal(t, want, delivered[n(fmt.Sprintf("user%02d", u))], "user %d's entries in order", u)
	}
	require.Equal(t, billing.OutboxStats{}, normStats(stats(t, ob)))
}

func normStats(s billing.OutboxStats) billing.OutboxStats {
	s.OldestPending = s.OldestPending.UTC()
	if s.OldestPending.IsZero() {
		s.OldestPending = time.Time{}
	}
	return s
}
