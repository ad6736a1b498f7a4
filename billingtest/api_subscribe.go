package billingtest

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/gobilling/billing/billingtest/internal/httpapi"
)

// createSubscription answers POST /v1/subscriptions: a subscription made
// through the API, outside Checkout (by an app's own flow, or a script),
// charged to the customer's default payment method (or the one given) at
// once, with the events Stripe sends: customer.subscription.created
// (incomplete, or trialing), invoice.created, invoice.finalized,
// invoice.paid, invoice.payment_succeeded, and
// customer.subscription.updated (incomplete → active) when paid.
//
// A first payment that fails is refused with Stripe's 402 under
// payment_behavior=error_if_incomplete (nothing is made); the incomplete
// subscription that allow_incomplete (the default) would leave, and
// default_incomplete's confirmation by the client, are not modelled.
func (s *Stripe) createSubscription(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, "customer", "items[#][price]", "items[#][quantity]", "default_payment_method",
		"trial_period_days", "metadata", "metadata[*]", "description", "payment_behavior"); err != nil {
		return 0, err
	}
	exp, err := httpapi.ExpandParam(f, subExpand...)
	if err != nil {
		return 0, err
	}
	cusID := f.Get("customer")
	c := s.customers[cusID]
	switch {
	case cusID == "":
		return 0, httpapi.Missing("customer")
	case c == nil:
		return 0, httpapi.NoSuch(400, "customer", cusID, "customer")
	}
	md, _, err := httpapi.MetadataParam(f, "metadata")
	if err != nil {
		return 0, err
	}
	behavior, err := httpapi.EnumParam(f, "payment_behavior", "allow_incomplete", "default_incomplete",
		"error_if_incomplete", "pending_if_incomplete")
	if err != nil {
		return 0, err
	}
	if behavior == "default_incomplete" || behavior == "pending_if_incomplete" {
		return 0, httpapi.NotModelled("payment_behavior", "payment_behavior="+behavior+" (a subscription confirmed by the client)")
	}
	days, hasDays, err := httpapi.IntParam(f, "trial_period_days")
	switch {
	case err != nil:
		return 0, err
	case hasDays && (days < 0 || days > 730):
		return 0, httpapi.InvalidInteger("trial_period_days", "This value must be between 0 and 730.")
	}
	pmID := f.Get("default_payment_method")
	if pm := s.pms[pmID]; pmID != "" && pm == nil {
		return 0, httpapi.NoSuch(400, "payment_method", pmID, "default_payment_method")
	} else if pmID != "" && pm.customer != c.id {
		return 0, httpapi.Invalid("default_payment_method", "The customer does not have a payment method with the ID "+pmID+
			". The payment method must be attached to the customer.")
	}
	items, err := s.newItems(f)
	if err != nil {
		return 0, err
	}
	sub := &subscription{id: httpapi.NewID("sub_", 24), customer: c.id, status: "incomplete",
		metadata: httpapi.ApplyMetadata(nil, md, false), defaultPM: pmID, description: f.Get("description")}
	trial := days > 0
	if !trial {
		switch outcome := s.chargeOutcome(sub); {
		case outcome == chargeNoMethod:
			return 0, &httpapi.Error{Status: 400, Type: "invalid_request_error", Code: "resource_missing",
				Message: "This customer has no attached payment source or default payment method."}
		case outcome != chargeOK && behavior == "error_if_incomplete":
			return 0, &httpapi.Error{Status: 402, Type: "card_error", Code: "card_declined", DeclineCode: "generic_decline",
				Message: "Your card was declined."}
		case outcome != chargeOK:
			return 0, httpapi.NotModelled("payment_behavior", "a subscription left incomplete by a failed first payment "+
				"(payment_behavior=allow_incomplete): pass error_if_incomplete, or use a card that pays")
		}
	}
	st := s.step(true)
	sub.created, sub.startDate, sub.anchor = st.t, st.t, st.t
	if trial {
		sub.status, sub.trialStart, sub.trialEnd = "trialing", st.t, st.t+days*86400
		sub.anchor = sub.trialEnd
	}
	for _, li := range items {
		st.addItem(sub, li.priceID, li.quantity)
	}
	st.startSubscription(sub)
	return 200, s.subObjX(sub, exp)
}

// newItem is one item of a subscription to be made.
type newItem struct {
	priceID  string
	quantity int64
}

// newItems reads a new subscription's items[i][price|quantity]: at least
// one, each an active recurring price, all of one currency and interval.
func (s *Stripe) newItems(f url.Values) ([]newItem, *httpapi.Error) {
	idx, err := httpapi.Indexes(f, "items")
	if err != nil {
		return nil, err
	}
	if len(idx) == 0 {
		return nil, httpapi.Missing("items")
	}
	var out []newItem
	var first *price
	for _, i := range idx {
		param := func(name string) string { return fmt.Sprintf("items[%d][%s]", i, name) }
		pid := f.Get(param("price"))
		if pid == "" {
			return nil, httpapi.Missing(param("price"))
		}
		p, err := s.recurringPrice(pid, param("price"))
		switch {
		case err != nil:
			return nil, err
		case first != nil && (p.currency != first.currency || p.interval != first.interval || p.intervalCount != first.intervalCount):
			return nil, httpapi.Invalid(param("price"), "All prices on a subscription must have the same `currency` and `recurring[interval]`.")
		}
		if first == nil {
			first = p
		}
		q, ok, err := httpapi.IntParam(f, param("quantity"))
		switch {
		case err != nil:
			return nil, err
		case !ok:
			q = 1
		case q < 1:
			return nil, httpapi.InvalidInteger(param("quantity"), "This value must be greater than or equal to 1.")
		}
		out = append(out, newItem{priceID: p.id, quantity: q})
	}
	return out, nil
}
