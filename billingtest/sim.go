package billingtest

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/gobilling/billing/billingtest/internal/httpapi"

	"github.com/gobilling/billing/billingtest/internal/delivery"
)

// Event is a webhook event the fake would send.
type Event struct {
	ID      string // evt_...
	Type    string // e.g. "invoice.paid"
	Created int64  // unix seconds of the simulated clock
	JSON    []byte // the full event object, as Stripe would POST it
}

// StampedAt returns a copy of e whose created time (in Created and in its
// JSON) is the Unix second sec, as if Stripe had made the change then: to
// deliver several changes "in one second", which a receiver can order
// only by fetching the objects.
func (e Event) StampedAt(sec int64) Event {
	e.Created = sec
	e.JSON = delivery.StampField(e.JSON, "created", sec)
	return e
}

// step collects the events of one simulator step. All of them share the
// step's timestamp.
type step struct {
	s       *Stripe
	t       int64
	reqID   string // "" for automatic steps: request.id is null
	idemKey string // the idempotency key of the API request that caused the step, if any
	events  []Event
}

// step starts a simulator step. byRequest marks steps that Stripe performs
// because of a request (a customer in Checkout or the portal, an API call);
// their events carry a request ID: that of the API request being handled
// (and its idempotency key), or else a new one.
func (s *Stripe) step(byRequest bool) *step {
	st := &step{s: s, t: s.unix()}
	if byRequest {
		st.reqID, st.idemKey = s.api.Current()
		if st.reqID == "" {
			st.reqID = httpapi.NewID("req_", 14)
		}
	}
	return st
}

func (st *step) emit(typ string, obj, prev map[string]any) {
	data := map[string]any{"object": obj}
	if prev != nil {
		data["previous_attributes"] = prev
	}
	id := httpapi.NewID("evt_", 24)
	raw, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": APIVersion, "created": st.t, "data": data,
		"livemode": false, "pending_webhooks": 1, "type": typ,
		"request": map[string]any{"id": null(st.reqID), "idempotency_key": null(st.idemKey)},
	})
	if err != nil {
		panic(err)
	}
	ev := Event{ID: id, Type: typ, Created: st.t, JSON: raw}
	st.s.eventIndex[id] = len(st.s.events)
	st.s.events = append(st.s.events, ev)
	st.s.publish(ev)
	st.events = append(st.events, ev)
}

// done returns copies of the step's events.
func (st *step) done() ([]Event, error) {
	out := make([]Event, len(st.events))
	for i, e := range st.events {
		e.JSON = slices.Clone(e.JSON)
		out[i] = e
	}
	return out, nil
}

// changed returns previous_attributes: the old values of the top-level keys
// that differ between two renderings of an object.
func changed(before, after map[string]any) map[string]any {
	prev := map[string]any{}
	for k, v := range before {
		if !reflect.DeepEqual(v, after[k]) {
			prev[k] = v
		}
	}
	return prev
}

// updateCustomer applies mutate to a customer and emits customer.updated
// with the changed attributes, if any changed.
func (st *step) updateCustomer(c *customer, mutate func()) {
	before := st.s.customerObj(c)
	mutate()
	after := st.s.customerObj(c)
	if prev := changed(before, after); len(prev) > 0 {
		st.emit("customer.updated", after, prev)
	}
}

// updateSub applies mutate to a subscription and emits
// customer.subscription.updated with the changed attributes.
func (st *step) updateSub(sub *subscription, mutate func()) {
	before := st.s.subObj(sub, false)
	mutate()
	after := st.s.subObj(sub, false)
	st.emit("customer.subscription.updated", after, changed(before, after))
}

func (s *Stripe) sub(id string) (*subscription, error) {
	sub := s.subs[id]
	if sub == nil {
		return nil, fmt.Errorf("billingtest: no such subscription %q", id)
	}
	return sub, nil
}

func (s *Stripe) session(id string) (*session, error) {
	s.expireDueSessions()
	cs := s.sessions[id]
	if cs == nil {
		return nil, fmt.Errorf("billingtest: no such checkout session %q", id)
	}
	return cs, nil
}

// periodEndAfter is the end of an item's billing period that starts at
// from, as Stripe counts it from the subscription's billing anchor: for
// months, the anchor's day of the month, clamped to the month's last day
// (anchored on Jan 31: Feb 28 or 29, then Mar 31); for years, the
// anchor's date (Feb 29: Feb 28 in other years); days and weeks are fixed
// lengths. It is the first such boundary after from.
func (s *Stripe) periodEndAfter(sub *subscription, it *subItem, from int64) int64 {
	p := s.prices[it.priceID]
	count := max(p.intervalCount, 1)
	months := int64(0)
	switch p.interval {
	case "month":
		months = count
	case "year":
		months = 12 * count
	default:
		return from + p.seconds()
	}
	anchor := time.Unix(sub.anchor, 0).UTC()
	for n := int64(1); ; n++ {
		if end := addMonthsClamped(anchor, n*months).Unix(); end > from {
			return end
		}
	}
}

// addMonthsClamped is t moved by months calendar months, on t's day of
// the month or, in a shorter month, its last day; the time of day stays.
func addMonthsClamped(t time.Time, months int64) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(months), 1, t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	return time.Date(first.Year(), first.Month(), min(d, last), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
}

// newInvoice drafts an invoice for the subscription's current items and makes
// it the latest invoice. free makes a $0 (trial) invoice.
func (s *Stripe) newInvoice(sub *subscription, reason string, t, periodStart, periodEnd int64, free bool) *invoice {
	in := &invoice{id: httpapi.NewID("in_", 24), customer: sub.customer, subscription: sub.id, billingReason: reason,
		status: "draft", subMetadata: maps.Clone(sub.metadata), created: t, periodStart: periodStart, periodEnd: periodEnd}
	for _, it := range sub.items {
		var amount int64
		if !free {
			amount = s.prices[it.priceID].unitAmount * it.quantity
		}
		in.lines = append(in.lines, invoiceLine{id: httpapi.NewID("il_", 24), priceID: it.priceID, subItemID: it.id,
			quantity: it.quantity, amount: amount, start: it.periodStart, end: it.periodEnd})
		in.amountDue += amount
	}
	in.addPending(sub)
	s.invoices[in.id] = in
	s.invOrder = append(s.invOrder, in.id)
	sub.latestInvoice = in.id
	return in
}

// createAndFinalize emits invoice.created (draft) and invoice.finalized.
func (st *step) createAndFinalize(in *invoice) {
	st.emit("invoice.created", st.s.invoiceObj(in), nil)
	st.finalize(in)
}

// finalize opens a draft invoice (numbered, payable now): invoice.finalized.
func (st *step) finalize(in *invoice) {
	s := st.s
	s.invoiceSeq++
	in.status, in.finalizedAt, in.nextPaymentAttempt = "open", st.t, 0
	in.number = fmt.Sprintf("%s-%04d", prefixOf(in.customer), s.invoiceSeq)
	piID := ""
	if in.amountDue > 0 {
		in.nextPaymentAttempt = st.t
		// The PaymentIntent every attempt uses, found through the
		// invoice's payments in basil (invoice.payment_intent is gone).
		piID = httpapi.NewID("pi_", 24)
		in.payments = append(in.payments, &invoicePayment{id: httpapi.NewID("inpay_", 24), invoice: in.id,
			pi: piID, status: "open", amountRequested: in.amountDue, created: st.t})
	}
	st.emit("invoice.finalized", s.invoiceObj(in), nil)
	if piID != "" {
		pm, desc := "", "Subscription update"
		if sub := s.subs[in.subscription]; sub != nil {
			pm = sub.defaultPM
		}
		if in.billingReason == "subscription_create" {
			desc = "Subscription creation"
		}
		st.newPaymentIntent(piID, in.customer, s.invoiceCurrency(in), pm, desc, in.amountDue)
	}
}

// newestInvoice returns the subscription's newest invoice that matches,
// or nil.
func (s *Stripe) newestInvoice(sub *subscription, match func(*invoice) bool) *invoice {
	for i := len(s.invOrder) - 1; i >= 0; i-- {
		if in := s.invoices[s.invOrder[i]]; in.subscription == sub.id && match(in) {
			return in
		}
	}
	return nil
}

// latestFinalized reports whether in is the subscription's newest finalized
// invoice, the one its status follows (past_due: "payment on the latest
// finalized invoice either failed or wasn't attempted").
func (s *Stripe) latestFinalized(sub *subscription, in *invoice) bool {
	return s.newestInvoice(sub, func(in *invoice) bool { return in.status != "draft" }) == in
}

// pendingInvoice returns the subscription's renewal invoice that waits for
// its finalization (a draft), or nil.
func (s *Stripe) pendingInvoice(sub *subscription) *invoice {
	if in := s.invoices[sub.latestInvoice]; in != nil && in.status == "draft" && !in.held {
		return in
	}
	return nil
}

// hasPaymentMethod reports whether a subscription can be charged: it or
// its customer has a default payment method.
func (s *Stripe) hasPaymentMethod(sub *subscription) bool {
	c := s.customers[sub.customer]
	return sub.defaultPM != "" || c != nil && c.defaultPM != ""
}

// collectPaused applies pause_collection to a renewal invoice due for
// finalization, and reports whether it did: void voids it
// (invoice.voided), mark_uncollectible finalizes it and marks it
// uncollectible (invoice.finalized, invoice.marked_uncollectible),
// keep_as_draft leaves it a draft for good. None is charged.
func (st *step) collectPaused(sub *subscription, in *invoice) bool {
	s := st.s
	switch sub.pauseBehavior {
	case "void":
		in.status, in.voidedAt, in.nextPaymentAttempt = "void", st.t, 0
		st.emit("invoice.voided", s.invoiceObj(in), nil)
	case "mark_uncollectible":
		s.invoiceSeq++
		in.status, in.finalizedAt = "open", st.t
		in.number = fmt.Sprintf("%s-%04d", prefixOf(in.customer), s.invoiceSeq)
		st.emit("invoice.finalized", s.invoiceObj(in), nil)
		in.status, in.uncollectibleAt, in.nextPaymentAttempt = "uncollectible", st.t, 0
		st.emit("invoice.marked_uncollectible", s.invoiceObj(in), nil)
	case "keep_as_draft":
		in.held, in.nextPaymentAttempt = true, 0
	default:
		return false
	}
	return true
}

// pay makes one payment attempt on an open invoice and emits what follows:
// invoice.paid and invoice.payment_succeeded (and the subscription back to
// active), or invoice.payment_failed (and the subscription past_due, and
// after the last attempt the configured failure outcome). The status
// changes only for the subscription's latest finalized invoice (an older
// one's payment does not make it active, nor its failure past_due). After
// the last attempt the invoice stays open, with next_payment_attempt null
// and auto_advance false: Stripe's "leave the invoice past due" setting, so
// it can still be paid.
func (st *step) pay(sub *subscription, in *invoice, outcome chargeOutcome) {
	s := st.s
	before := s.invoiceObj(in)
	if in.amountDue == 0 {
		outcome = chargeOK // nothing to charge: paid without an attempt
	} else {
		in.attemptCount++
		if in.firstAttemptAt == 0 {
			in.firstAttemptAt = st.t
		}
		if n := len(in.payments); n > 0 {
			if pi := s.pis[in.payments[n-1].pi]; pi != nil {
				st.chargeIntent(pi, outcome, false)
			}
		}
	}
	in.attempted = true
	c := s.customers[in.customer]
	if outcome == chargeOK {
		in.status, in.amountPaid, in.paidAt, in.nextPaymentAttempt = "paid", in.amountDue, st.t, 0
		if n := len(in.payments); n > 0 {
			p := in.payments[n-1]
			p.status, p.amountPaid, p.paidAt = "paid", in.amountDue, st.t
		}
		if c != nil && c.delinquent {
			st.updateCustomer(c, func() { c.delinquent = false }) // paying an invoice clears it
		}
		st.emit("invoice.paid", s.invoiceObj(in), nil)
		st.emit("invoice.payment_succeeded", s.invoiceObj(in), nil)
		if (sub.status == "past_due" || sub.status == "unpaid") && s.latestFinalized(sub, in) {
			st.updateSub(sub, func() { sub.status = "active" })
		}
		return
	}
	if c != nil && !c.delinquent {
		st.updateCustomer(c, func() { c.delinquent = true }) // an automatic payment failed
	}
	in.nextPaymentAttempt = 0
	retryable := outcome != chargeNoMethod && outcome != chargeHardDecline
	if i := int(in.attemptCount) - 1; retryable && i < len(s.retries) {
		in.nextPaymentAttempt = in.firstAttemptAt + int64(s.retries[i]/time.Second)
	}
	if outcome == chargeAction {
		st.emit("invoice.payment_action_required", s.invoiceObj(in), nil)
	}
	after := s.invoiceObj(in)
	st.emit("invoice.updated", after, changed(before, after))
	st.emit("invoice.payment_failed", after, nil)
	if sub.status == "active" && s.latestFinalized(sub, in) {
		st.updateSub(sub, func() { sub.status = "past_due" })
	}
	if in.nextPaymentAttempt != 0 || !retryable {
		// Not retried (a hard decline, no payment method): the invoice
		// waits, past_due, for a new card; the failure outcome is for
		// retries that ran out.
		return
	}
	switch s.outcome {
	case OutcomeCancel:
		sub.status, sub.canceledAt, sub.endedAt, sub.cancelReason = "canceled", st.t, st.t, "payment_failed"
		st.emit("customer.subscription.deleted", s.subObj(sub, false), nil)
	case OutcomeUnpaid:
		st.updateSub(sub, func() { sub.status = "unpaid" })
	}
}

// completeCheckout completes an open Checkout Session, paid (or, with
// delayed, paid by a bank debit that settles later) and returns the events
// Stripe sends.
//
// Subscription mode: creates the customer if the session had none, the
// subscription (metadata from subscription_data[metadata], one item with the
// session's price and quantity, a period of one interval from now, or the
// trial when subscription_data[trial_period_days] was given) and its paid
// first invoice (billing_reason subscription_create). Events:
// customer.subscription.created (status incomplete, or trialing),
// invoice.created, invoice.finalized, invoice.paid,
// invoice.payment_succeeded, customer.subscription.updated (incomplete →
// active; not for a trial), checkout.session.completed (payment_status paid,
// or no_payment_required for a trial).
//
// Payment mode: checkout.session.completed with payment_status paid, or
// unpaid for a bank debit, which the clock settles settleDelay later.
func (s *Stripe) completeCheckout(sessionID string, card testCard, debit *bankDebit) ([]Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, err := s.session(sessionID)
	if err != nil {
		return nil, err
	}
	if cs.status != "open" {
		return nil, fmt.Errorf("billingtest: checkout session %s is %s, not open", cs.id, cs.status)
	}
	st := s.step(true)
	cs.status = "complete"
	if cs.mode == "setup" {
		// The card is set up for later payments: attached to the customer
		// (if the session has one), nothing charged.
		if c := s.customers[cs.customer]; c != nil {
			st.attachCard(c, card)
		}
		cs.setupIntent, cs.paymentStatus = httpapi.NewID("seti_", 24), "no_payment_required"
		st.emit("checkout.session.completed", s.sessionObj(cs, nil), nil)
		return st.done()
	}
	if cs.mode == "payment" {
		// The payment method pays once; it is not saved to the customer.
		pm := &paymentMethod{id: httpapi.NewID("pm_", 24), card: card, created: st.t}
		s.pms[pm.id] = pm
		pi := st.newPaymentIntent("", cs.customer, s.currency(cs.items[0].priceID), pm.id, "", cs.amountTotal)
		cs.pi, cs.paymentStatus = pi.id, "paid"
		if debit != nil {
			st.processing(pi)
			cs.paymentStatus, cs.settleAt, cs.settleOK = "unpaid", st.t+int64(settleDelay/time.Second), debit.ok
		} else {
			st.chargeIntent(pi, chargeOK, false)
		}
		st.emit("checkout.session.completed", s.sessionObj(cs, nil), nil)
		return st.done()
	}
	if cs.customer == "" {
		c := &customer{id: httpapi.NewID("cus_", 14), email: cs.customerEmail, created: st.t}
		s.addCustomer(c)
		cs.customer = c.id
		st.emit("customer.created", s.customerObj(c), nil)
	}
	// The card entered on the page (collected even for a trial, unless
	// payment_method_collection=if_required) is saved to the customer and
	// is the subscription's default payment method.
	pmID := ""
	if card != cardNone {
		pmID = st.attachCard(s.customers[cs.customer], card).id
	}
	sub := &subscription{id: httpapi.NewID("sub_", 24), customer: cs.customer, status: "incomplete",
		metadata: maps.Clone(cs.subMetadata), created: st.t, startDate: st.t, anchor: st.t,
		defaultPM: pmID, missingPM: cs.missingPM, description: cs.subDescription}
	trial := cs.trialDays > 0
	if trial {
		sub.status, sub.trialStart, sub.trialEnd = "trialing", st.t, st.t+cs.trialDays*86400
		sub.anchor = sub.trialEnd
	}
	// Recurring prices become the subscription's items; one-time ones
	// are billed once, on the first invoice.
	for _, li := range cs.items {
		p := s.prices[li.priceID]
		if p.interval == "" {
			sub.pending = append(sub.pending, invoiceLine{id: httpapi.NewID("il_", 24), priceID: p.id, quantity: li.quantity,
				amount: p.unitAmount * li.quantity, start: st.t, end: st.t, invoiceItem: httpapi.NewID("ii_", 24),
				desc: fmt.Sprintf("%d × %s", li.quantity, s.productName(p))})
			continue
		}
		st.addItem(sub, p.id, li.quantity)
	}
	in := st.startSubscription(sub) // authenticated on the page if the card asked
	cs.subscription, cs.invoice, cs.paymentStatus = sub.id, in.id, "paid"
	if trial {
		cs.paymentStatus = "no_payment_required"
	}
	st.emit("checkout.session.completed", s.sessionObj(cs, nil), nil)
	return st.done()
}

// addItem adds an item to a subscription being made: its first period
// starts now and ends one interval later, or with the trial.
func (st *step) addItem(sub *subscription, priceID string, quantity int64) {
	it := &subItem{id: httpapi.NewID("si_", 14), priceID: priceID, quantity: quantity, created: st.t, periodStart: st.t}
	it.periodEnd = st.s.periodEndAfter(sub, it, st.t)
	if sub.trialEnd != 0 {
		it.periodEnd = sub.trialEnd
	}
	sub.items = append(sub.items, it)
}

// startSubscription stores a subscription being made (status incomplete,
// or trialing) and bills its first invoice, paid:
// customer.subscription.created, invoice.created, invoice.finalized, the
// payment's events, and customer.subscription.updated (incomplete →
// active) unless it is trialing. It returns the invoice.
func (st *step) startSubscription(sub *subscription) *invoice {
	s := st.s
	trial := sub.status == "trialing"
	s.subs[sub.id] = sub
	s.subOrder = append(s.subOrder, sub.id)
	in := s.newInvoice(sub, "subscription_create", st.t, st.t, st.t, trial)
	st.emit("customer.subscription.created", s.subObj(sub, false), nil)
	st.createAndFinalize(in)
	st.pay(sub, in, chargeOK)
	if !trial {
		st.updateSub(sub, func() { sub.status = "active" })
	}
	return in
}

// settle settles the bank debit of a completed payment-mode session (the
// clock does it at settleAt): checkout.session.async_payment_succeeded with
// payment_status paid, or checkout.session.async_payment_failed with
// payment_status still unpaid.
func (st *step) settle(cs *session) {
	cs.settleAt = 0
	if pi := st.s.pis[cs.pi]; pi != nil {
		outcome := chargeDeclined
		if cs.settleOK {
			outcome = chargeOK
		}
		st.chargeIntent(pi, outcome, true)
	}
	typ := "checkout.session.async_payment_failed"
	if cs.settleOK {
		cs.paymentStatus, typ = "paid", "checkout.session.async_payment_succeeded"
	}
	st.emit(typ, st.s.sessionObj(cs, nil), nil)
}

// expireSession expires an open session: checkout.session.expired.
func (st *step) expireSession(cs *session) {
	cs.status = "expired"
	st.emit("checkout.session.expired", st.s.sessionObj(cs, nil), nil)
}

// startCycle moves a subscription into its next period (mutate) and drafts
// its subscription_cycle invoice for periodStart..periodEnd (the period that
// ended), to be charged at attemptAt (0: at once, by the caller):
// customer.subscription.updated, then invoice.created.
func (st *step) startCycle(sub *subscription, periodStart, periodEnd, attemptAt int64, mutate func()) *invoice {
	s := st.s
	var in *invoice
	st.updateSub(sub, func() {
		mutate()
		in = s.newInvoice(sub, "subscription_cycle", st.t, periodStart, periodEnd, false)
		in.nextPaymentAttempt = attemptAt
	})
	st.emit("invoice.created", s.invoiceObj(in), nil)
	in.createdEvent = st.events[len(st.events)-1].ID
	return in
}

// chargeOutcome is what charging the subscription's customer does now.
func (s *Stripe) chargeOutcome(sub *subscription) chargeOutcome {
	if !s.hasPaymentMethod(sub) {
		return chargeNoMethod
	}
	return s.customers[sub.customer].outcome()
}

// trialWillEnd emits customer.subscription.trial_will_end, once per
// subscription as far as the clock is concerned.
func (st *step) trialWillEnd(sub *subscription) {
	st.s.clk.noticeSent(sub.id)
	st.emit("customer.subscription.trial_will_end", st.s.subObj(sub, false), nil)
}

// onSub runs one simulator step on a subscription under the lock: it finds
// the subscription (only a live one when live is set), lets check refuse
// it before anything happens, then lets act change it in a step whose
// events it returns. byRequest marks steps a request causes (a customer in
// the portal, an API call): their events carry a request ID.
func (s *Stripe) onSub(subID string, live, byRequest bool, check func(sub *subscription) error, act func(st *step, sub *subscription) error) ([]Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	find := s.sub
	if live {
		find = s.live
	}
	sub, err := find(subID)
	if err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(sub); err != nil {
			return nil, err
		}
	}
	st := s.step(byRequest)
	if err := act(st, sub); err != nil {
		return nil, err
	}
	return st.done()
}

// scheduled refuses a subscription with no scheduled cancellation.
func scheduled(sub *subscription) error {
	if !sub.cancelAtPeriodEnd && sub.cancelAt == 0 {
		return fmt.Errorf("billingtest: subscription %s has no scheduled cancellation", sub.id)
	}
	return nil
}

// live returns a subscription that is not canceled.
func (s *Stripe) live(subID string) (*subscription, error) {
	sub, err := s.sub(subID)
	if err == nil && (sub.status == "canceled" || sub.status == "incomplete_expired") {
		err = fmt.Errorf("billingtest: subscription %s is %s", sub.id, sub.status)
	}
	return sub, err
}

// CancelAtPeriodEnd schedules the cancellation at the end of the current
// period, as the portal or the API does: cancel_at_period_end true, cancel_at
// the period end, canceled_at now, cancellation_details.reason
// cancellation_requested; customer.subscription.updated.
func (s *Stripe) CancelAtPeriodEnd(subID string) ([]Event, error) {
	return s.onSub(subID, true, true, nil, func(st *step, sub *subscription) error {
		st.updateSub(sub, func() { sub.scheduleCancel(st.t, true, sub.items[0].periodEnd) })
		return nil
	})
}

// scheduleCancel schedules a subscription's cancellation at a time (at the
// period end when atPeriodEnd), requested at t.
func (sub *subscription) scheduleCancel(t int64, atPeriodEnd bool, at int64) {
	sub.cancelAtPeriodEnd, sub.cancelAt = atPeriodEnd, at
	sub.canceledAt, sub.cancelReason = t, "cancellation_requested"
}

// unschedule withdraws a scheduled cancellation.
func (sub *subscription) unschedule() {
	sub.cancelAtPeriodEnd, sub.cancelAt, sub.canceledAt, sub.cancelReason = false, 0, 0, ""
}

// Uncancel withdraws a scheduled cancellation (cancel_at_period_end false,
// cancel_at and canceled_at null); customer.subscription.updated.
func (s *Stripe) Uncancel(subID string) ([]Event, error) {
	return s.onSub(subID, true, true, scheduled, func(st *step, sub *subscription) error {
		st.updateSub(sub, sub.unschedule)
		return nil
	})
}

// CancelNow cancels immediately: status canceled, canceled_at and ended_at
// now; customer.subscription.deleted.
func (s *Stripe) CancelNow(subID string) ([]Event, error) {
	return s.onSub(subID, true, true, nil, func(st *step, sub *subscription) error {
		st.cancelNow(sub)
		return nil
	})
}

// cancelNow cancels a subscription at once: customer.subscription.deleted.
func (st *step) cancelNow(sub *subscription) {
	sub.status, sub.cancelAtPeriodEnd, sub.canceledAt, sub.endedAt = "canceled", false, st.t, st.t
	sub.cancelReason = "cancellation_requested"
	st.emit("customer.subscription.deleted", st.s.subObj(sub, false), nil)
}

// endScheduled carries out a scheduled cancellation:
// customer.subscription.deleted, ended at cancel_at.
func (st *step) endScheduled(sub *subscription) {
	sub.status, sub.endedAt = "canceled", sub.cancelAt
	st.emit("customer.subscription.deleted", st.s.subObj(sub, false), nil)
}

// ChangePrice switches the subscription's items to another recurring
// price, as the portal's plan switch does: keeping the current periods,
// with prorations for the rest of the period added to the next invoice
// (create_prorations, the portal's default); customer.subscription.updated
// with previous_attributes items.
func (s *Stripe) ChangePrice(subID, newPriceID string) ([]Event, error) {
	return s.onSub(subID, true, true, nil, func(st *step, sub *subscription) error {
		p := s.prices[newPriceID]
		if p == nil || p.interval == "" {
			return fmt.Errorf("billingtest: %q is not a known recurring price", newPriceID)
		}
		var charge func()
		st.updateSub(sub, func() {
			var ups []itemUpdate
			for _, it := range sub.items {
				ups = append(ups, itemUpdate{item: it, priceID: p.id, quantity: it.quantity})
			}
			charge = st.changeItems(sub, ups, "create_prorations")
		})
		charge()
		return nil
	})
}

// setCard records what the customer's card does when charged, without
// saving a payment method (a card tried in Checkout).
func (s *Stripe) setCard(customerID string, kind testCard) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.customers[customerID]
	if c == nil {
		return fmt.Errorf("billingtest: no such customer %q", customerID)
	}
	c.card = kind
	return nil
}

// saveCard saves a card as the customer's default payment method, as the
// portal's card update does: payment_method.attached, customer.updated,
// and customer.subscription.updated for each of its subscriptions that
// has not ended, whose default payment method it becomes.
func (s *Stripe) saveCard(customerID string, kind testCard) ([]Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.customers[customerID]
	if c == nil {
		return nil, fmt.Errorf("billingtest: no such customer %q", customerID)
	}
	st := s.step(true)
	pm := st.attachCard(c, kind)
	st.updateCustomer(c, func() { c.defaultPM = pm.id })
	for _, id := range s.subOrder {
		if sub := s.subs[id]; sub.customer == c.id && !sub.ended() {
			st.updateSub(sub, func() { sub.defaultPM = pm.id })
			// An open invoice no longer retried (a hard decline, no
			// payment method, retries run out) is attempted again with
			// the new card at once (the clock's next step).
			if in := s.invoices[sub.latestInvoice]; in != nil && in.status == "open" && in.attemptCount > 0 &&
				in.nextPaymentAttempt == 0 && (sub.status == "past_due" || sub.status == "unpaid") {
				in.nextPaymentAttempt = st.t
			}
		}
	}
	return st.done()
}
