package billingtest

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gobilling/billing/billingtest/internal/httpapi"
)

// Prorations: a price or quantity change in the middle of a period credits
// the unused time of the old price and charges the remaining time of the
// new one, by the second, each rounded to the minor unit.

// itemUpdate is a change of one item: its new price and quantity.
type itemUpdate struct {
	item     *subItem
	priceID  string
	quantity int64
}

// roundDiv is a*b/c rounded half away from zero (c > 0).
func roundDiv(a, b, c int64) int64 {
	n := a * b
	if n < 0 {
		return -((-n*2 + c) / (2 * c))
	}
	return (n*2 + c) / (2 * c)
}

// prorations are the proration items of changing items at time at: for
// each changed item, a credit for the unused time on its old price and
// quantity and a charge for the remaining time on the new ones. An item
// whose period has ended, or a trialing subscription (nothing was paid),
// gets none.
func (s *Stripe) prorations(sub *subscription, changes []itemUpdate, at int64) []invoiceLine {
	if sub.status == "trialing" {
		return nil
	}
	var out []invoiceLine
	date := time.Unix(at, 0).UTC().Format("02 Jan 2006")
	for _, ch := range changes {
		it := ch.item
		total, left := it.periodEnd-it.periodStart, it.periodEnd-at
		if total <= 0 || left <= 0 || ch.priceID == it.priceID && ch.quantity == it.quantity {
			continue
		}
		oldP, newP := s.prices[it.priceID], s.prices[ch.priceID]
		credit := -roundDiv(oldP.unitAmount*it.quantity, left, total)
		charge := roundDiv(newP.unitAmount*ch.quantity, left, total)
		out = append(out,
			invoiceLine{id: httpapi.NewID("il_", 24), priceID: oldP.id, subItemID: it.id, quantity: it.quantity, amount: credit,
				start: at, end: it.periodEnd, proration: true, invoiceItem: httpapi.NewID("ii_", 24),
				desc: fmt.Sprintf("Unused time on %d × %s after %s", it.quantity, s.productName(oldP), date)},
			invoiceLine{id: httpapi.NewID("il_", 24), priceID: newP.id, subItemID: it.id, quantity: ch.quantity, amount: charge,
				start: at, end: it.periodEnd, proration: true, invoiceItem: httpapi.NewID("ii_", 24),
				desc: fmt.Sprintf("Remaining time on %d × %s after %s", ch.quantity, s.productName(newP), date)})
	}
	return out
}

// addPending moves a subscription's pending proration items onto the
// invoice. A total below zero is due as zero (Stripe credits the rest to
// the customer's balance, which billingtest does not model).
func (in *invoice) addPending(sub *subscription) {
	for _, l := range sub.pending {
		in.lines = append(in.lines, l)
		in.amountDue += l.amount
	}
	sub.pending = nil
	in.amountDue = max(in.amountDue, 0)
}

// changeItems applies item changes with a proration behaviour:
// create_prorations (Stripe's default) adds the proration items to the
// next invoice; always_invoice also invoices and charges them at once
// (invoice.created, invoice.finalized, the payment's events, and
// invoice.paid or invoice.payment_failed); none changes the prices only.
// The subscription's update (customer.subscription.updated) is emitted by
// the caller, before charge runs.
func (st *step) changeItems(sub *subscription, changes []itemUpdate, behavior string) (charge func()) {
	s := st.s
	var lines []invoiceLine
	if behavior != "none" {
		lines = s.prorations(sub, changes, st.t)
	}
	for _, ch := range changes {
		ch.item.priceID, ch.item.quantity = ch.priceID, ch.quantity
	}
	sub.pending = append(sub.pending, lines...)
	if behavior != "always_invoice" || len(sub.pending) == 0 {
		return func() {}
	}
	in := &invoice{id: httpapi.NewID("in_", 24), customer: sub.customer, subscription: sub.id,
		billingReason: "subscription_update", status: "draft", subMetadata: sub.metadata, created: st.t,
		periodStart: st.t, periodEnd: st.t}
	in.addPending(sub)
	s.invoices[in.id] = in
	s.invOrder = append(s.invOrder, in.id)
	sub.latestInvoice = in.id
	return func() {
		st.createAndFinalize(in)
		st.pay(sub, in, s.chargeOutcome(sub))
	}
}

// renewalPreview is the invoice a subscription's renewal at end would
// draft with the given items and pending proration items: a preview, not
// stored (ID upcoming_in_…).
func (s *Stripe) renewalPreview(sub *subscription, items []*subItem, pending []invoiceLine, end, now int64) *invoice {
	preview := &invoice{id: "upcoming_" + sub.latestInvoice, customer: sub.customer, subscription: sub.id,
		billingReason: "upcoming", status: "draft", subMetadata: sub.metadata, created: now,
		periodStart: end, periodEnd: end}
	for _, it := range items {
		amount := s.prices[it.priceID].unitAmount * it.quantity
		preview.lines = append(preview.lines, invoiceLine{id: httpapi.NewID("il_", 24), priceID: it.priceID, subItemID: it.id,
			quantity: it.quantity, amount: amount, start: end, end: s.periodEndAfter(sub, it, end)})
		preview.amountDue += amount
	}
	preview.addPending(&subscription{pending: pending})
	return preview
}

// createPreview answers POST /v1/invoices/create_preview for a
// subscription: the next invoice as it is, or as it would be after
// subscription_details[items] changed (prorated at
// subscription_details[proration_date], default now, as
// subscription_details[proration_behavior] says; always_invoice previews
// the invoice the change would charge at once).
func (s *Stripe) createPreview(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, "customer", "subscription", "subscription_details[items][#][id]",
		"subscription_details[items][#][price]", "subscription_details[items][#][quantity]",
		"subscription_details[proration_behavior]", "subscription_details[proration_date]"); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(f); err != nil {
		return 0, err
	}
	id := f.Get("subscription")
	if id == "" {
		return 0, httpapi.Missing("subscription")
	}
	sub := s.subs[id]
	if sub == nil {
		return 0, httpapi.NoSuch(400, "subscription", id, "subscription")
	}
	if c := f.Get("customer"); c != "" && c != sub.customer {
		return 0, httpapi.Invalid("customer", "The subscription "+id+" does not belong to customer "+c+".")
	}
	_, end, ok := renewsAt(sub)
	if !ok {
		return 0, httpapi.BadRequest("The subscription " + id + " will not renew: there is no upcoming invoice to preview.")
	}
	behavior, err := httpapi.EnumParam(f, "subscription_details[proration_behavior]", "always_invoice", "create_prorations", "none")
	if err != nil {
		return 0, err
	}
	if behavior == "" {
		behavior = "create_prorations"
	}
	now := s.unix()
	at, hasAt, err := httpapi.IntParam(f, "subscription_details[proration_date]")
	if err != nil {
		return 0, err
	}
	if !hasAt {
		at = now
	}
	changes, err := s.itemChanges(httpapi.PrefixedForm(f, "subscription_details[items]", "items"), sub)
	if err != nil {
		return 0, err
	}
	var ups []itemUpdate
	items := make([]*subItem, len(sub.items))
	for i, it := range sub.items {
		cp := *it
		items[i] = &cp
	}
	for _, ch := range changes {
		k := slices.Index(sub.items, ch.item)
		up := itemUpdate{item: ch.item, priceID: ch.item.priceID, quantity: ch.item.quantity}
		if ch.price != nil {
			up.priceID = ch.price.id
		}
		if ch.quantity != 0 {
			up.quantity = ch.quantity
		}
		ups = append(ups, up)
		items[k].priceID, items[k].quantity = up.priceID, up.quantity
	}
	pending := slices.Clone(sub.pending)
	if behavior != "none" {
		pending = append(pending, s.prorations(sub, ups, at)...)
	}
	if behavior == "always_invoice" && len(ups) > 0 {
		in := &invoice{id: "upcoming_" + sub.latestInvoice, customer: sub.customer, subscription: sub.id,
			billingReason: "subscription_update", status: "draft", subMetadata: sub.metadata, created: now,
			periodStart: at, periodEnd: at}
		in.addPending(&subscription{pending: pending})
		return 200, s.invoiceObj(in)
	}
	return 200, s.invoiceObj(s.renewalPreview(sub, items, pending, end, now))
}
