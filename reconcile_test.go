package billing

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// at is t0 plus sec seconds.
func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func withVersion(v time.Time) func(*Subscription) { return func(s *Subscription) { s.Version = v } }
func withCancel(s *Subscription)                  { s.CancelAtPeriodEnd = true }
func withLatest(id string) func(*Subscription) {
	return func(s *Subscription) { s.LatestInvoiceID = id }
}

func inv(id string, created float64, attempts int64, mods ...func(*Invoice)) Invoice {
	i := Invoice{ID: id, Created: at(created), AttemptCount: attempts, NextPaymentAttempt: at(created + 86400)}
	for _, m := range mods {
		m(&i)
	}
	return i
}

func paid(i *Invoice)   { i.Paid, i.NextPaymentAttempt = true, time.Time{} }
func closed(i *Invoice) { i.Closed, i.NextPaymentAttempt = true, time.Time{} }

// Every rule of the subscription order, one row each.
func TestReconcileSubscription(t *testing.T) {
	t.Parallel()
	active := func(v float64, mods ...func(*Subscription)) Subscription {
		return sub("sub_1", SubscriptionActive, append([]func(*Subscription){withVersion(at(v))}, mods...)...)
	}
	status := func(st SubscriptionStatus, v float64, mods ...func(*Subscription)) Subscription {
		return sub("sub_1", st, append([]func(*Subscription){withVersion(at(v))}, mods...)...)
	}
	invoiceOnly := Subscription{ID: "sub_1", CustomerID: "cus_1", UserID: "u1", Invoice: inv("in_1", 5, 1)}

	for _, tt := range []struct {
		name    string
		stored  *Subscription // nil: nothing stored
		in      Subscription
		fetched bool
		want    verdict // take means Write; refetch means Fetch
	}{
		{"nothing stored: taken", nil, active(10), false, take},
		{"only invoice facts stored: taken", &invoiceOnly, active(10), false, take},
		{"strictly newer payload wins", ptr(active(10)), active(11, withCancel), false, take},
		{"older payload is kept out", ptr(active(10, withCancel)), active(9), false, keep},
		{"equal version, other state: a tie nothing wins", ptr(active(10)), active(10, withCancel), false, refetch},
		{"equal version, other state, fetched: a tie too", ptr(active(10)), active(10, withCancel), true, refetch},
		{"equal version, same state: nothing to order", ptr(active(10)), active(10), false, keep},
		{"fetch equal to the stored state ends a tie at once", ptr(active(10, withCancel)), active(10, withCancel), true, keep},
		{"versions compare in whole seconds", ptr(active(10.2)), active(10.9, withCancel), false, refetch},
		{"fetched, older and different: fetched again", ptr(active(10, withCancel)), active(9), true, refetch},
		{"fetched, older and the same: kept", ptr(active(10)), active(9), true, keep},
		{"fetched and newer wins", ptr(active(10)), active(11, withCancel), true, take},
		{"a later phase wins whatever the versions", ptr(status(SubscriptionIncomplete, 10)), active(3), false, take},
		{"an earlier phase never wins", ptr(active(10)), status(SubscriptionIncomplete, 20), false, keep},
		{"final wins over live whatever the versions", ptr(active(10)), status(SubscriptionCanceled, 2), false, take},
		{"incomplete_expired is final too", ptr(status(SubscriptionIncomplete, 10)), status(SubscriptionIncompleteExpired, 10), false, take},
		{"nothing overwrites a final status", ptr(status(SubscriptionCanceled, 10)), active(20), false, keep},
		{"not even a newer final one", ptr(status(SubscriptionCanceled, 10)), status(SubscriptionCanceled, 20, withCancel), true, keep},
		{"nor a fetched one", ptr(status(SubscriptionIncompleteExpired, 10)), active(20), true, keep},
		{"live statuses are one phase: newer wins", ptr(active(10)), status(SubscriptionPastDue, 11), false, take},
		{"live statuses are one phase: older loses", ptr(status(SubscriptionPastDue, 11)), status(SubscriptionTrialing, 10), false, keep},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stored Subscription
			if tt.stored != nil {
				stored = *tt.stored
			}
			d := reconcileSubscription(stored, tt.stored != nil, subFact{Sub: tt.in, Fetched: tt.fetched})
			switch tt.want {
			case refetch:
				assert.True(t, d.Fetch, "fetch")
				assert.False(t, d.Write, "no write with a fetch")
			case take:
				require.False(t, d.Fetch)
				require.True(t, d.Write)
				want := tt.in
				want.Invoice = stored.Invoice
				want.OrderKey = orderKey(want)
				assert.Equal(t, want, d.Next, "the incoming state, with the stored invoice facts and its key")
			case keep:
				assert.False(t, d.Fetch)
				assert.False(t, d.Write)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// A past_due payload whose latest invoice is unseen costs one fetch, so
// that its attempts are known at once; a fetched one, or one whose
// invoice is stored, does not.
func TestReconcilePastDueNeedsItsInvoice(t *testing.T) {
	t.Parallel()
	stored := sub("sub_1", SubscriptionActive, withVersion(at(10)), withLatest("in_1"))
	stored.Invoice = inv("in_1", 0, 0, paid)
	pastDue := sub("sub_1", SubscriptionPastDue, withVersion(at(20)), withLatest("in_2"))

	d := reconcileSubscription(stored, true, subFact{Sub: pastDue})
	assert.True(t, d.Fetch, "payload, invoice in_2 unseen")

	d = reconcileSubscription(stored, true, subFact{Sub: pastDue, Fetched: true})
	assert.True(t, d.Write, "fetched without its invoice expanded: written as it is")
	assert.False(t, d.Fetch)

	seen := stored
	seen.Invoice = inv("in_2", 19, 1)
	d = reconcileSubscription(seen, true, subFact{Sub: pastDue})
	assert.True(t, d.Write)
	assert.Equal(t, seen.Invoice, d.Next.Invoice)

	older := pastDue
	older.Version = at(5)
	d = reconcileSubscription(stored, true, subFact{Sub: older})
	assert.False(t, d.Fetch, "an older payload is kept out, whatever it lacks")
	assert.False(t, d.Write)
}

// A subscription fetched with its latest invoice brings the invoice's
// facts, which follow their own order whatever the state's verdict.
func TestReconcileFetchedInvoice(t *testing.T) {
	t.Parallel()
	stored := sub("sub_1", SubscriptionPastDue, withVersion(at(10)), withLatest("in_2"))
	stored.Invoice = inv("in_2", 5, 2)

	same := stored
	same.Invoice = Invoice{}
	d := reconcileSubscription(stored, true, subFact{Sub: same, Fetched: true, Invoice: ptr(inv("in_2", 5, 3))})
	assert.True(t, d.Write, "same state, more attempts")
	assert.Equal(t, int64(3), d.Next.Invoice.AttemptCount)
	assert.Equal(t, stored.Version, d.Next.Version, "the state is kept")

	d = reconcileSubscription(stored, true, subFact{Sub: same, Fetched: true, Invoice: ptr(inv("in_2", 5, 1))})
	assert.False(t, d.Write, "fewer attempts: stale")

	newer := same
	newer.Version, newer.Status = at(11), SubscriptionActive
	d = reconcileSubscription(stored, true, subFact{Sub: newer, Fetched: true, Invoice: ptr(inv("in_2", 5, 1))})
	assert.True(t, d.Write)
	assert.Equal(t, SubscriptionActive, d.Next.Status)
	assert.Equal(t, int64(2), d.Next.Invoice.AttemptCount, "the state is newer, the invoice facts are not")
}

// The order of one subscription's invoice facts: a later invoice, then
// for one invoice more attempts, then closed, then paid.
func TestInvoiceOrder(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		a, b Invoice
		want bool // a newer than b
	}{
		{"anything beats nothing", inv("in_1", 1, 0), Invoice{}, true},
		{"nothing beats nothing? no", Invoice{}, Invoice{}, false},
		{"no facts never win", Invoice{}, inv("in_1", 1, 0), false},
		{"a later invoice wins", inv("in_2", 2, 1), inv("in_1", 1, 3, paid), true},
		{"an earlier invoice loses", inv("in_1", 1, 3, paid), inv("in_2", 2, 1), false},
		{"same second: the greater ID", inv("in_b", 1, 1), inv("in_a", 1, 2), true},
		{"more attempts win", inv("in_1", 1, 2), inv("in_1", 1, 1), true},
		{"fewer attempts lose", inv("in_1", 1, 1), inv("in_1", 1, 2), false},
		{"the same facts do not", inv("in_1", 1, 2), inv("in_1", 1, 2), false},
		{"closed beats any attempt", inv("in_1", 1, 1, closed), inv("in_1", 1, 4), true},
		{"paid beats closed", inv("in_1", 1, 1, paid), inv("in_1", 1, 3, closed), true},
		{"attempts never beat paid", inv("in_1", 1, 9), inv("in_1", 1, 1, paid), false},
		{"paid again is not newer", inv("in_1", 1, 2, paid), inv("in_1", 1, 1, paid), false},
		{"created compares in whole seconds", inv("in_1", 1.9, 1), inv("in_1", 1.1, 2), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, invoiceNewer(tt.a, tt.b))
		})
	}
}

func TestReconcileInvoice(t *testing.T) {
	t.Parallel()
	got, write := reconcileInvoice(Subscription{}, false, "sub_1", "u1", "cus_1", inv("in_1", 1, 1))
	assert.True(t, write)
	assert.Equal(t, Subscription{ID: "sub_1", UserID: "u1", CustomerID: "cus_1", Invoice: inv("in_1", 1, 1)}, got,
		"a record with only invoice facts: no state, a zero Version")

	stored := sub("sub_1", SubscriptionPastDue, withVersion(at(10)))
	stored.Invoice = inv("in_1", 1, 2)
	got, write = reconcileInvoice(stored, true, "sub_1", "other", "cus_other", inv("in_1", 1, 3))
	assert.True(t, write)
	assert.Equal(t, "u1", got.UserID, "a stored record keeps its owner")
	assert.Equal(t, int64(3), got.Invoice.AttemptCount)
	assert.True(t, sameState(stored, got))

	_, write = reconcileInvoice(stored, true, "sub_1", "u1", "cus_1", inv("in_1", 1, 1))
	assert.False(t, write)
}

// The property: for any lifecycle of one subscription (changes in phase
// order, several in one second at times) and its invoice's attempts, and
// any delivery of their events (shuffled, duplicated), folding them with
// reconcileSubscription and reconcileInvoice, fetching from Stripe when
// asked, ends with Stripe's last state and the latest invoice facts.
func TestReconcileFoldsToTheLastState(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		life := genLifecycle(rt)
		order := rapid.Permutation(life.events).Draw(rt, "order")
		dups := rapid.SliceOfN(rapid.IntRange(0, len(order)-1), 0, 4).Draw(rt, "dups")
		for _, i := range dups {
			order = append(order, order[i])
		}
		// Stripe's clock when the events are processed: the last change's
		// second, or one later; its Date may also lag a second behind.
		now := life.last + rapid.IntRange(-1, 1).Draw(rt, "skew")

		var rec Subscription
		found := false
		fetches := 0
		queue := order
		for rounds := 0; len(queue) > 0; rounds++ {
			if rounds > 10*len(order) {
				rt.Fatalf("events never applied: %d left", len(queue))
			}
			ev := queue[0]
			queue = queue[1:]
			if ev.invoice != nil {
				if next, ok := reconcileInvoice(rec, found, "sub_1", "u1", "cus_1", *ev.invoice); ok {
					rec, found = next, true
				}
				continue
			}
			d := reconcileSubscription(rec, found, subFact{Sub: ev.sub})
			for tries := 0; d.Fetch; tries++ {
				if tries == maxFetches {
					break
				}
				if tries > 0 {
					now++ // waited for Stripe's clock to pass the second
				}
				fetches++
				f := life.final
				f.Version = fetchedVersion(t0.Add(time.Duration(now)*time.Second), ev.sub.Version)
				d = reconcileSubscription(rec, found, subFact{Sub: f, Fetched: true, Invoice: ptr(life.finalInvoice)})
			}
			switch {
			case d.Fetch:
				queue = append(queue, ev) // answered 500: Stripe delivers it again
			case d.Write:
				rec, found = d.Next, true
			}
		}
		if !sameState(life.final, rec) {
			rt.Fatalf("folded to %+v, Stripe's last state is %+v (%d fetches)", rec, life.final, fetches)
		}
		if life.sawInvoice && rec.Invoice != life.finalInvoice {
			rt.Fatalf("invoice facts %+v, want %+v", rec.Invoice, life.finalInvoice)
		}
	})
}

type lifeEvent struct {
	sub     Subscription
	invoice *Invoice
}

type history struct {
	events       []lifeEvent
	final        Subscription
	finalInvoice Invoice
	sawInvoice   bool
	last         int // the last change's second
}

var liveStatuses = []SubscriptionStatus{
	SubscriptionTrialing, SubscriptionActive, SubscriptionPastDue,
	SubscriptionUnpaid, SubscriptionPaused,
}

// genLifecycle draws one subscription's history: it may start
// incomplete, goes through live states, and may end final; every change
// is a new state (an event each), some in the same second. Its latest
// invoice's attempts go up and it may end paid or closed.
func genLifecycle(rt *rapid.T) history {
	var l history
	sec := 0
	st := sub("sub_1", SubscriptionIncomplete, withLatest("in_1"))
	if rapid.Bool().Draw(rt, "startsLive") {
		st.Status = SubscriptionActive
	}
	n := rapid.IntRange(1, 8).Draw(rt, "changes")
	for i := range n {
		if i > 0 {
			sec += rapid.IntRange(0, 2).Draw(rt, "gap") // 0: the same second
			next := st
			switch rapid.IntRange(0, 3).Draw(rt, "change") {
			case 0:
				next.Status = rapid.SampledFrom(liveStatuses).Draw(rt, "status")
			case 1:
				next.CancelAtPeriodEnd = !next.CancelAtPeriodEnd
			case 2:
				next.Items = []Item{{PriceID: "price_pro", Quantity: 1, CurrentPeriodStart: at(float64(sec)), CurrentPeriodEnd: at(float64(sec) + 86400*30)}}
			case 3:
				next.Status = SubscriptionPastDue
				next.LatestInvoiceID = fmt.Sprintf("in_%d", i+1)
			}
			if i == n-1 && rapid.IntRange(0, 3).Draw(rt, "ends") == 0 {
				next.Status = SubscriptionCanceled
			}
			if sameState(next, st) {
				next.TrialEnd = at(float64(sec)) // still a change
			}
			if (subscriptions{}).phase(next) < (subscriptions{}).phase(st) {
				next.Status = st.Status
			}
			st = next
		}
		st.Version = at(float64(sec))
		l.events = append(l.events, lifeEvent{sub: st})
	}
	l.final, l.last = st, sec

	// The latest invoice's attempts.
	attempts := rapid.IntRange(0, 4).Draw(rt, "attempts")
	created := float64(sec)
	for a := 1; a <= attempts; a++ {
		i := inv(l.final.LatestInvoiceID, created, int64(a))
		l.events = append(l.events, lifeEvent{invoice: &i})
		l.finalInvoice, l.sawInvoice = i, true
	}
	switch rapid.IntRange(0, 2).Draw(rt, "settles") {
	case 1:
		i := inv(l.final.LatestInvoiceID, created, int64(attempts), paid)
		l.events = append(l.events, lifeEvent{invoice: &i})
		l.finalInvoice, l.sawInvoice = i, true
	case 2:
		i := inv(l.final.LatestInvoiceID, created, int64(attempts), closed)
		l.events = append(l.events, lifeEvent{invoice: &i})
		l.finalInvoice, l.sawInvoice = i, true
	}
	if !l.sawInvoice {
		// Stripe's fetch still shows the latest invoice, with no attempt.
		l.finalInvoice = inv(l.final.LatestInvoiceID, created, 0)
	}
	return l
}

// The ordering key a ConditionalStore compares agrees with reconcile: a
// payload whose key is strictly greater than the stored record's is one
// reconcile takes; every other payload is left to reconcile (the store
// does not save it).
func TestOrderKeyAgreesWithReconcile(t *testing.T) {
	t.Parallel()
	statuses := append([]SubscriptionStatus{SubscriptionIncomplete, SubscriptionCanceled, SubscriptionIncompleteExpired, ""}, liveStatuses...)
	rapid.Check(t, func(rt *rapid.T) {
		state := func(label string) Subscription {
			s := sub("sub_1", rapid.SampledFrom(statuses).Draw(rt, label+"Status"))
			s.Version = at(float64(rapid.IntRange(0, 5).Draw(rt, label+"Version")))
			if s.Status == "" || rapid.IntRange(0, 5).Draw(rt, label+"Zero") == 0 {
				s.Status, s.Version = "", time.Time{} // only invoice facts
			}
			s.CancelAtPeriodEnd = rapid.Bool().Draw(rt, label+"Cancel")
			s.OrderKey = orderKey(s)
			return s
		}
		stored, in := state("stored"), state("in")
		if in.Status == "" {
			return // payloads always carry a state
		}
		d := reconcileSubscription(stored, true, subFact{Sub: in})
		if in.OrderKey > stored.OrderKey && !(d.Write && d.Next.Status == in.Status && d.Next.Version.Equal(in.Version)) {
			rt.Fatalf("key %d > %d but reconcile did not take it: %+v", in.OrderKey, stored.OrderKey, d)
		}
		if d.Write && !d.Fetch && in.OrderKey <= stored.OrderKey && d.Next.Version.Equal(in.Version) && d.Next.Status == in.Status && !sameState(stored, in) {
			rt.Fatalf("reconcile took a state whose key %d is not greater than %d", in.OrderKey, stored.OrderKey)
		}
	})
}
