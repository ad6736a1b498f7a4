package billingtest

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// The clock: what Stripe does by itself as time passes, replayed by
// Advance in time order.

// Stripe's timing.
const (
	// finalizeDelay is how long a renewal invoice stays a draft before it
	// is finalized and charged.
	finalizeDelay = time.Hour
	// trialNotice is how long before a trial's end
	// customer.subscription.trial_will_end comes.
	trialNotice = 3 * 24 * time.Hour
	// finalizeWait is how long a renewal invoice waits to be finalized
	// while the deliveries of its invoice.created fail.
	finalizeWait = 72 * time.Hour
	// awaitLimit bounds the real time Advance waits for a draft's
	// invoice.created deliveries before finalizing it.
	awaitLimit = 30 * time.Second
	// settleDelay is how long after a Checkout paid by bank debit
	// ([BankDebit]) the payment settles: billingtest's fixed choice (Stripe
	// takes minutes in test mode, days in live mode).
	settleDelay = 3 * time.Minute
)

// defaultRetries is the default retry schedule: attempts 2 to 5 of an
// invoice, 1, 3, 5 and 7 days after the first.
func defaultRetries() []time.Duration {
	const day = 24 * time.Hour
	return []time.Duration{day, 3 * day, 5 * day, 7 * day}
}

// clock is the clock's own state. It is guarded by s.mu.
type clock struct {
	notice   map[string]bool  // subscriptions whose trial_will_end has been sent
	upcoming map[string]int64 // subscription → the period end its invoice.upcoming announced
}

// defaultUpcoming is how long before a renewal invoice.upcoming comes by
// default (the account setting "upcoming renewal events").
const defaultUpcoming = 3 * 24 * time.Hour

// SetUpcomingNotice sets how long before a subscription renews (or its
// trial ends) invoice.upcoming is sent, as an account's "upcoming renewal
// events" setting does (default 3 days); 0 sends none. A period shorter
// than the notice gets none.
func (s *Stripe) SetUpcomingNotice(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.upcoming = max(d, 0)
}

// noticeSent records that a subscription's trial_will_end has been sent.
func (c *clock) noticeSent(subID string) {
	if c.notice == nil {
		c.notice = map[string]bool{}
	}
	c.notice[subID] = true
}

// actionKind is something Stripe does at a given time. The order of the
// kinds breaks ties between one subscription's actions at the same second.
type actionKind int

const (
	actExpire           actionKind = iota // Checkout Sessions reach expires_at
	actSettle                             // a bank debit settles
	actFinalize                           // a renewal invoice is finalized and charged
	actRetry                              // an invoice's payment is retried
	actUpcoming                           // invoice.upcoming
	actTrialWillEnd                       // customer.subscription.trial_will_end
	actCancel                             // a scheduled cancellation takes effect
	actResumeCollection                   // pause_collection's resumes_at
	actTrialEnd                           // a trial ends: the first paid period starts
	actRenew                              // a period ends: the next one starts
)

// action is one scheduled action.
type action struct {
	at   int64 // unix seconds
	kind actionKind
	sub  *subscription
	in   *invoice
	cs   *session // actSettle
	// subIdx and inIdx order ties: subscriptions and invoices in creation
	// order (-1 for none).
	subIdx, inIdx int
}

func (a action) before(b action) bool {
	switch {
	case a.at != b.at:
		return a.at < b.at
	case a.subIdx != b.subIdx:
		return a.subIdx < b.subIdx
	case a.kind != b.kind:
		return a.kind < b.kind
	}
	return a.inIdx < b.inIdx
}

// Advance moves the simulated clock forward by d, doing what Stripe would do
// meanwhile, in time order, and returns the events that emitted, once it is
// done. It is the one way time passes for billing: renewals, payment
// retries, trial ends and scheduled cancellations happen when the clock
// reaches them, never ahead of it. For each action
// due by the new time it first sets the clock to the action's instant, so
// that the events it emits (published to webhook delivery at once) and the
// objects it touches carry that instant:
//
//   - A subscription that is active or past_due renews at the end of its
//     current period (the earliest current_period_end of its items): every
//     item's period moves on by one interval of the calendar (see the
//     package doc) and the subscription_cycle
//     invoice is drafted (customer.subscription.updated with
//     previous_attributes items and latest_invoice, then invoice.created;
//     the status does not change). An hour later (72 hours if an endpoint
//     gave up on its invoice.created) the invoice is finalized
//     and charged: invoice.finalized, then invoice.paid and
//     invoice.payment_succeeded, or invoice.payment_failed and, if it was
//     active, customer.subscription.updated to past_due. (A past_due
//     subscription's status follows its latest finalized invoice.)
//   - A failed invoice is retried on the retry schedule
//     ([Stripe.SetRetrySchedule]; by default 1, 3, 5 and 7 days after its
//     first attempt, so attempt_count goes from 1 to 5, and
//     next_payment_attempt is set until the last attempt). A retry that
//     succeeds (once [Stripe.UpdateCard] has replaced the card) emits
//     invoice.paid, invoice.payment_succeeded and
//     customer.subscription.updated back to active; after the last failed
//     attempt the failure outcome applies ([Stripe.SetFailureOutcome]).
//   - A trialing subscription gets customer.subscription.trial_will_end
//     three days before trial_end (at once for a shorter trial), once.
//     At trial_end it becomes active for a first period of one interval
//     and its invoice is drafted, then charged an hour later, as for a
//     renewal: a failing card makes it past_due, and retries follow.
//   - A scheduled cancellation (cancel_at, which cancel_at_period_end sets
//     to the period end) takes effect at cancel_at: status canceled,
//     ended_at cancel_at, customer.subscription.deleted; a subscription
//     set to cancel at its period end does not renew.
//   - Checkout Sessions expire at their expires_at:
//     checkout.session.expired.
//   - A one-time Checkout paid by bank debit ([BankDebit],
//     [BankDebitFails]) settles 3 minutes after it completed:
//     checkout.session.async_payment_succeeded or
//     checkout.session.async_payment_failed.
//
// Canceled, unpaid, paused and incomplete subscriptions do not renew, and
// their invoices are neither finalized nor retried (a renewal invoice still
// a draft when its subscription is canceled stays a draft). A card is
// either working or failing ([CardChargeFails]): a trial never ends
// without a payment method (Stripe would pause the subscription), as a
// Checkout with a trial always collects a card. Actions due at the same
// second run in the order of the
// subscriptions' creation (and for one subscription: finalization, retry,
// trial notice, cancellation, trial end, renewal).
//
// Finally the clock reads what it read before plus d (and it keeps
// ticking). What falls due as the clock ticks in real time waits for the
// next Advance: Advance(0) catches up. A negative d moves the clock back and
// does nothing else. Advance holds the fake's lock while it runs (API
// requests and other calls wait, and see the clock move in one step) but
// for one wait: before finalizing a renewal's invoice it lets the
// deliveries of its invoice.created finish (up to 30 seconds of real time,
// the lock released so that receivers may call the API), as Stripe
// finalizes an hour after they succeeded, or 72 hours after the invoice
// was drafted when one was given up. Deliveries held by Chaos.Shuffle are
// not waited for.
func (s *Stripe) Advance(d time.Duration) []Event {
	s.advanceMu.Lock()
	defer s.advanceMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advancing, s.sleptInAdvance = true, 0
	defer func() { s.advancing = false }()
	from := len(s.events)
	end := s.offset + d
	if d < 0 {
		s.offset = end
		s.expireDueSessions()
		return s.eventsFrom(from)
	}
	for {
		a, ok := s.nextAction()
		if !ok || time.Unix(a.at, 0).After(time.Now().Add(end+s.sleptInAdvance)) {
			break
		}
		if a.kind == actFinalize && !a.in.awaited && a.in.createdEvent != "" {
			s.awaitCreated(a.in)
			continue // the state may have moved meanwhile
		}
		s.run(a)
	}
	s.offset = end + s.sleptInAdvance
	s.expireDueSessions()
	return s.eventsFrom(from)
}

// awaitCreated waits, without the lock, for the deliveries of a renewal
// draft's invoice.created, as Stripe waits for them before finalizing the
// invoice: finalized an hour after creation if they succeeded (or no
// endpoint wanted the event), 72 hours after creation if one was given up.
// Called with s.mu held; it releases it while waiting (deliveries may call
// the API), so other requests can run meanwhile.
func (s *Stripe) awaitCreated(in *invoice) {
	id := in.createdEvent
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), awaitLimit)
	ok := s.dl.Await(ctx, id)
	cancel()
	s.mu.Lock()
	in.awaited = true
	if !ok {
		in.finalizeAt = in.created + int64(finalizeWait/time.Second)
	}
}

// eventsFrom returns copies of the events emitted from index i on.
// Called with s.mu held.
func (s *Stripe) eventsFrom(i int) []Event {
	out := make([]Event, 0, len(s.events)-i)
	for _, e := range s.events[i:] {
		e.JSON = slices.Clone(e.JSON)
		out = append(out, e)
	}
	return out
}

// NextEvent returns when the clock next has something to do (see
// [Stripe.Advance]): a renewal, an invoice's finalization, a payment retry,
// a trial's notice or end, a scheduled cancellation or a Checkout Session's
// expiry; false if nothing is scheduled. The instant can be before
// [Stripe.Now] when the clock has ticked past it in real time since the last
// Advance.
func (s *Stripe) NextEvent() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.nextAction()
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(a.at, 0).UTC(), true
}

// SetFailureOutcome sets what happens after the last failed payment attempt
// of an invoice (default [OutcomeCancel]): the subscription is canceled
// (customer.subscription.deleted, cancellation_details.reason
// payment_failed), marked unpaid (customer.subscription.updated), or left
// past_due. In every case the invoice stays open, with next_payment_attempt
// null. It panics on an unknown outcome.
func (s *Stripe) SetFailureOutcome(o FailureOutcome) {
	switch o {
	case OutcomeCancel, OutcomeUnpaid, OutcomePastDue:
	default:
		panic(fmt.Sprintf("billingtest: unknown failure outcome %q", o))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcome = o
}

// SetRetrySchedule sets when automatic payment retries happen, as offsets
// from an invoice's first attempt (a custom schedule, or [SmartRetries]).
// The default is 1, 3, 5 and 7 days, so an invoice gets at most 5
// attempts; after the last one next_payment_attempt is null and the
// failure outcome applies. A hard decline ([CardLost]) or a subscription
// without a payment method is not retried: next_payment_attempt is null at
// once and the subscription stays past_due until a card is saved and the
// invoice paid. It applies to attempts made from then on.
func (s *Stripe) SetRetrySchedule(after ...time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retries = append([]time.Duration(nil), after...)
}

// SmartRetries returns a retry schedule for [Stripe.SetRetrySchedule] in
// the shape of Stripe's Smart Retries setting: tries retries (1 to 8, as
// Stripe allows) within window after the first attempt. Stripe times them
// by what it predicts works; billingtest spreads them evenly, the last at
// the window's end (8 within 2 weeks: every 42 hours), so that tests are
// deterministic. It panics on tries outside 1 to 8 or a window that is not
// positive.
func SmartRetries(tries int, window time.Duration) []time.Duration {
	if tries < 1 || tries > 8 || window <= 0 {
		panic(fmt.Sprintf("billingtest: SmartRetries(%d, %v): tries must be 1 to 8 and the window positive", tries, window))
	}
	out := make([]time.Duration, tries)
	for i := range out {
		out[i] = (window * time.Duration(i+1) / time.Duration(tries)).Truncate(time.Second)
	}
	return out
}

// nextAction returns the action due first. Called with s.mu held.
func (s *Stripe) nextAction() (action, bool) {
	var best action
	found := false
	consider := func(a action) {
		if !found || a.before(best) {
			best, found = a, true
		}
	}
	for _, id := range s.sessOrder {
		if cs := s.sessions[id]; cs.status == "open" {
			consider(action{at: cs.expiresAt, kind: actExpire, subIdx: -1, inIdx: -1})
		} else if cs.settleAt != 0 {
			consider(action{at: cs.settleAt, kind: actSettle, cs: cs, subIdx: -1, inIdx: -1})
		}
	}
	idx := make(map[string]int, len(s.subOrder))
	for i, id := range s.subOrder {
		idx[id] = i
		sub := s.subs[id]
		if sub.ended() {
			continue
		}
		a := action{sub: sub, subIdx: i, inIdx: -1}
		if sub.cancelAt != 0 {
			a.at, a.kind = sub.cancelAt, actCancel
			consider(a)
		}
		if sub.pauseResumesAt != 0 {
			a.at, a.kind = sub.pauseResumesAt, actResumeCollection
			consider(a)
		}
		if at, ok := s.upcomingAt(sub); ok {
			a.at, a.kind = at, actUpcoming
			consider(a)
		}
		switch sub.status {
		case "trialing":
			if !s.clk.notice[sub.id] {
				a.at, a.kind = max(sub.trialEnd-int64(trialNotice/time.Second), sub.trialStart), actTrialWillEnd
				consider(a)
			}
			a.at, a.kind = sub.trialEnd, actTrialEnd
			consider(a)
		case "active", "past_due":
			if s.pendingInvoice(sub) == nil && len(sub.items) > 0 {
				a.at, a.kind = currentPeriodEnd(sub), actRenew
				consider(a)
			}
		}
	}
	for i, id := range s.invOrder {
		in := s.invoices[id]
		sub := s.subs[in.subscription]
		if sub == nil || sub.status != "active" && sub.status != "past_due" {
			continue
		}
		a := action{sub: sub, in: in, subIdx: idx[sub.id], inIdx: i}
		switch {
		case in.status == "draft" && !in.held:
			a.at, a.kind = in.created+int64(finalizeDelay/time.Second), actFinalize
			if in.finalizeAt != 0 {
				a.at = in.finalizeAt
			}
		case in.status == "open" && in.attemptCount > 0 && in.nextPaymentAttempt != 0:
			a.at, a.kind = in.nextPaymentAttempt, actRetry
		default:
			continue
		}
		consider(a)
	}
	return best, found
}

// endTrialWithoutPaymentMethod ends a trial whose subscription has no
// payment method as its trial_settings say, and reports whether it did:
// pause makes it paused (customer.subscription.updated,
// customer.subscription.paused), cancel cancels it
// (customer.subscription.deleted); create_invoice does not (the first
// invoice is drafted and its charge fails).
func (st *step) endTrialWithoutPaymentMethod(sub *subscription) bool {
	s := st.s
	switch sub.missingPM {
	case "pause":
		st.updateSub(sub, func() { sub.status = "paused" })
		st.emit("customer.subscription.paused", s.subObj(sub, false), nil)
	case "cancel":
		sub.status, sub.canceledAt, sub.endedAt = "canceled", st.t, st.t
		sub.cancelReason = "cancellation_requested"
		st.emit("customer.subscription.deleted", s.subObj(sub, false), nil)
	default:
		return false
	}
	return true
}

// renewsAt is when a subscription next renews (its trial's end for a
// trial), with the start of the period that ends then; false if it does
// not renew (a cancellation is scheduled by then, or it is not live).
func renewsAt(sub *subscription) (start, end int64, ok bool) {
	switch sub.status {
	case "trialing":
		start, end = sub.trialStart, sub.trialEnd
	case "active", "past_due":
		if len(sub.items) == 0 {
			return 0, 0, false
		}
		start, end = sub.items[0].periodStart, currentPeriodEnd(sub)
	default:
		return 0, 0, false
	}
	if sub.cancelAt != 0 && sub.cancelAt <= end {
		return 0, 0, false
	}
	return start, end, true
}

// upcomingAt is when the subscription's next invoice.upcoming is due.
func (s *Stripe) upcomingAt(sub *subscription) (int64, bool) {
	start, end, ok := renewsAt(sub)
	if !ok || s.upcoming <= 0 || s.clk.upcoming[sub.id] == end {
		return 0, false
	}
	at := end - int64(s.upcoming/time.Second)
	if at < start {
		return 0, false // a period shorter than the notice
	}
	return at, true
}

// upcoming emits invoice.upcoming: a preview of the invoice the
// subscription's renewal will draft (not stored, not retrievable).
func (st *step) upcoming(sub *subscription) {
	s := st.s
	_, end, _ := renewsAt(sub)
	if s.clk.upcoming == nil {
		s.clk.upcoming = map[string]int64{}
	}
	s.clk.upcoming[sub.id] = end
	preview := s.renewalPreview(sub, sub.items, sub.pending, end, st.t)
	st.emit("invoice.upcoming", s.invoiceObj(preview), nil)
}

// currentPeriodEnd is a subscription's current period end: the earliest of its
// items'.
func currentPeriodEnd(sub *subscription) int64 {
	end := sub.items[0].periodEnd
	for _, it := range sub.items[1:] {
		end = min(end, it.periodEnd)
	}
	return end
}

// run sets the clock to an action's instant (unless it has passed) and
// carries the action out. Called with s.mu held.
func (s *Stripe) run(a action) {
	if at := time.Unix(a.at, 0); at.After(s.now()) {
		s.offset = time.Until(at)
	}
	if a.kind == actExpire {
		s.expireDueSessions()
		return
	}
	st := &step{s: s, t: max(a.at, s.unix())} // automatic: no request
	sub, in := a.sub, a.in
	switch a.kind {
	case actSettle:
		st.settle(a.cs)
	case actFinalize:
		if st.collectPaused(sub, in) {
			return
		}
		st.finalize(in)
		st.pay(sub, in, s.chargeOutcome(sub))
	case actResumeCollection:
		st.updateSub(sub, func() { sub.pauseBehavior, sub.pauseResumesAt = "", 0 })
	case actRetry:
		st.pay(sub, in, s.chargeOutcome(sub))
	case actUpcoming:
		st.upcoming(sub)
	case actTrialWillEnd:
		st.trialWillEnd(sub)
	case actCancel:
		st.endScheduled(sub)
	case actTrialEnd:
		end := sub.trialEnd
		if !s.hasPaymentMethod(sub) && st.endTrialWithoutPaymentMethod(sub) {
			return
		}
		st.startCycle(sub, sub.trialStart, end, st.t+int64(finalizeDelay/time.Second), func() {
			sub.status, sub.anchor = "active", end
			for _, it := range sub.items {
				it.periodStart, it.periodEnd = end, s.periodEndAfter(sub, it, end)
			}
		})
	case actRenew:
		first := sub.items[0]
		for _, it := range sub.items {
			if it.periodEnd < first.periodEnd {
				first = it
			}
		}
		var sc *schedule
		ended := first.periodEnd
		st.startCycle(sub, first.periodStart, first.periodEnd, st.t+int64(finalizeDelay/time.Second), func() {
			sc = s.schedulePhaseAt(sub, ended)
			for _, it := range sub.items {
				it.periodStart, it.periodEnd = it.periodEnd, s.periodEndAfter(sub, it, it.periodEnd)
			}
		})
		if sc != nil {
			st.phaseChanged(sc, ended)
		}
	}
}
