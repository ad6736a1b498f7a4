package billing

import (
	"cmp"
	"time"
)

// This file is the one place that decides which of two states of a Stripe
// object is newer (DESIGN.md, invariant 2). It is pure: no Stripe call, no
// store, no clock. The write engine (engine.go) reads the stored record,
// asks reconcile what to do with an incoming fact, and saves, records the
// event, or fetches the object from Stripe and asks again.

// verdict is what to do with an incoming state of an object.
type verdict int

const (
	// keep: the stored state stays (the incoming one is older, the same,
	// or comes after a final state). The event is recorded.
	keep verdict = iota
	// take: the incoming state replaces the stored one.
	take
	// refetch: the order of the two cannot be told (a same-second tie, or
	// a fetched object dated before the stored state and different from
	// it): fetch the object from Stripe and reconcile what it says.
	refetch
)

var verdictNames = [...]string{"keep", "take", "refetch"}

func (v verdict) String() string { return verdictNames[v] }

// lifecycle tells reconcile about one kind of record whose states follow
// phases that never go back (a subscription's: incomplete, live, final).
// A kind without phases returns 0 and false.
type lifecycle[S any] interface {
	// phase orders the states that can only follow one another.
	phase(s S) int
	// final reports whether nothing can follow s.
	final(s S) bool
	// same reports whether a and b hold the same state, whatever their
	// versions.
	same(a, b S) bool
}

// versioned is one state of an object and Stripe's time for it: the
// event's created for a payload, the Date of the response for a fetched
// object (never the local clock), in whole seconds.
type versioned[S any] struct {
	State   S
	Version time.Time
	// Fetched is true for an object read from Stripe's API, false for an
	// event's payload.
	Fetched bool
}

// order decides between the stored state (absent when !found) and an
// incoming one:
//   - nothing stored: take;
//   - a final state stays, whatever comes;
//   - a later phase wins, whatever the versions; an earlier one never does;
//   - within a phase a strictly newer version wins;
//   - an incoming state equal to the stored one is kept (it ends a tie at
//     once: there is nothing to order);
//   - equal versions are a tie nothing wins: refetch (a fetch read in the
//     same second may predate a change of that second);
//   - a fetched object dated before the stored state, and different from
//     it, is not trusted (Stripe's Date and event.created are different
//     clocks): refetch;
//   - an older payload is kept out.
func order[S any](l lifecycle[S], stored versioned[S], found bool, in versioned[S]) verdict {
	if !found {
		return take
	}
	if l.final(stored.State) {
		return keep
	}
	if p, q := l.phase(in.State), l.phase(stored.State); p != q {
		if p > q {
			return take
		}
		return keep
	}
	in.Version, stored.Version = in.Version.Truncate(time.Second), stored.Version.Truncate(time.Second)
	switch {
	case in.Version.After(stored.Version):
		return take
	case l.same(in.State, stored.State):
		return keep
	case in.Version.Equal(stored.Version):
		return refetch
	case in.Fetched:
		return refetch
	}
	return keep
}

// fetchedVersion is the version of an object fetched because of a fact
// of version since: Stripe's Date, or since if Stripe's Date is earlier
// (its clock is not the one that stamps event.created). The fetch was
// made after that fact arrived, so it holds a state at least as new as
// the fact's; taking Stripe's lagging Date instead would let an older
// payload of the fact's second overwrite it.
func fetchedVersion(date, since time.Time) time.Time {
	if date.Before(since) {
		return since
	}
	return date
}

// orderKey is a subscription state's place in the order reconcile
// keeps, as one number a store can compare (ConditionalStore): a strictly
// greater key is a state reconcile takes over the stored one. Phases
// first (incomplete, live, final), then the version in seconds; every
// final state has the same key, so none replaces another; a record with
// only invoice facts has 0. Equal keys are ties: reconcile decides them.
func orderKey(s Subscription) int64 {
	const phase = int64(1) << 40 // versions stay below until the year 36812
	if s.Version.IsZero() || s.Status == "" {
		return 0
	}
	switch p := (subscriptions{}).phase(s); p {
	case 2:
		return 3 * phase
	default:
		return int64(p+1)*phase + s.Version.Unix()
	}
}

// subscriptions is the lifecycle of a subscription's state.
type subscriptions struct{}

// phase: 0 for incomplete (a subscription's first state, never returned
// to), 1 for the live statuses, 2 for the final ones.
func (subscriptions) phase(s Subscription) int {
	switch {
	case s.Status == SubscriptionIncomplete:
		return 0
	case s.Status.Final():
		return 2
	}
	return 1
}

func (subscriptions) final(s Subscription) bool   { return s.Status.Final() }
func (subscriptions) same(a, b Subscription) bool { return sameState(a, b) }

// subFact is an incoming fact about a subscription: its state, from an
// event's payload or fetched, and, when fetched with its latest invoice
// expanded, that invoice's facts.
type subFact struct {
	Sub     Subscription // Sub.Invoice is ignored
	Fetched bool
	Invoice *Invoice    // nil unless fetched with latest_invoice expanded
	News    invoiceNews // what Invoice says beyond its facts
}

// subDecision is what reconcileSubscription decided.
type subDecision struct {
	// Next is the record to save when Write is set.
	Next  Subscription
	Write bool
	// Fetch asks for the subscription to be fetched (with its latest
	// invoice) and reconciled again; nothing is to be saved or recorded.
	Fetch bool
}

// reconcileSubscription decides what a subscription fact does to the
// stored record (found is false when nothing is stored). The stored
// record's invoice facts are kept unless the fact brings newer ones. A
// payload that makes the subscription past_due while its latest invoice's
// facts are unseen asks for a fetch, so that access is right at once.
func reconcileSubscription(stored Subscription, found bool, in subFact) subDecision {
	hasState := found && !stored.Version.IsZero() // a record may hold only invoice facts
	v := order[Subscription](subscriptions{},
		versioned[Subscription]{State: stored, Version: stored.Version},
		hasState,
		versioned[Subscription]{State: in.Sub, Version: in.Sub.Version, Fetched: in.Fetched})
	if v == refetch {
		return subDecision{Fetch: true}
	}
	next := stored
	if !found {
		next = Subscription{ID: in.Sub.ID, CustomerID: in.Sub.CustomerID, UserID: in.Sub.UserID}
	}
	write := false
	if v == take {
		inv := next.Invoice
		next = in.Sub
		next.Invoice = inv
		next.OrderKey = orderKey(next)
		write = true
	}
	if in.Invoice != nil && in.Invoice.ID != "" {
		if invoiceNewer(*in.Invoice, next.Invoice) {
			next.Invoice = *in.Invoice
			write = true
		}
		return subDecision{Next: next, Write: write}
	}
	if write && !in.Fetched && next.Status == SubscriptionPastDue && next.LatestInvoiceID != "" && next.Invoice.ID != next.LatestInvoiceID {
		return subDecision{Fetch: true}
	}
	return subDecision{Next: next, Write: write}
}

// reconcileInvoice decides what an invoice's facts do to its
// subscription's record: they are kept when newer than the stored ones
// (see invoiceNewer). With nothing stored, the record starts with these
// facts and no subscription state (a zero Version), owned by userID and
// customerID.
func reconcileInvoice(stored Subscription, found bool, subID, userID, customerID string, inv Invoice) (Subscription, bool) {
	if !found {
		stored = Subscription{ID: subID, UserID: userID, CustomerID: customerID}
	}
	if !invoiceNewer(inv, stored.Invoice) {
		return stored, false
	}
	stored.Invoice = inv
	return stored, true
}

// invoiceNewer reports whether a's facts come after b's: a later invoice
// (by creation, then ID), then, for one invoice, more progress (attempts,
// then closed, then paid). No facts (an empty ID) come before any.
func invoiceNewer(a, b Invoice) bool {
	if a.ID == "" {
		return false
	}
	if b.ID == "" {
		return true
	}
	if c := a.Created.Truncate(time.Second).Compare(b.Created.Truncate(time.Second)); c != 0 {
		return c > 0
	}
	if c := cmp.Compare(a.ID, b.ID); c != 0 {
		return c > 0
	}
	return a.progress() > b.progress()
}

// progress orders the facts of one invoice: each attempt counts up; a
// closed invoice (void or uncollectible) comes after any attempt, a paid
// one last of all.
func (inv Invoice) progress() int64 {
	const closed, paid = 1 << 62, 1<<62 + 1
	switch {
	case inv.Paid:
		return paid
	case inv.Closed:
		return closed
	}
	return min(max(inv.AttemptCount, 0), closed-1)
}

// sameState reports whether two records hold the same subscription state,
// whatever their versions.
func sameState(a, b Subscription) bool {
	if a.Status != b.Status || a.CancelAtPeriodEnd != b.CancelAtPeriodEnd || a.LatestInvoiceID != b.LatestInvoiceID ||
		!a.CancelAt.Equal(b.CancelAt) || !a.CanceledAt.Equal(b.CanceledAt) || !a.EndedAt.Equal(b.EndedAt) ||
		!a.TrialStart.Equal(b.TrialStart) || !a.TrialEnd.Equal(b.TrialEnd) || len(a.Items) != len(b.Items) {
		return false
	}
	for i := range a.Items {
		x, y := a.Items[i], b.Items[i]
		if x.PriceID != y.PriceID || x.Quantity != y.Quantity ||
			!x.CurrentPeriodStart.Equal(y.CurrentPeriodStart) || !x.CurrentPeriodEnd.Equal(y.CurrentPeriodEnd) {
			return false
		}
	}
	return true
}
