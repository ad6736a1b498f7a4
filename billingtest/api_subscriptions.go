package billingtest

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gobilling/billing/billingtest/internal/httpapi"
)

// Subscription list, update and cancel.

// subExpand are the expandable properties of a subscription.
var subExpand = []string{"latest_invoice", "customer"}

// ended reports whether a subscription is over (canceled, or expired
// before its first payment).
func (sub *subscription) ended() bool {
	return sub.status == "canceled" || sub.status == "incomplete_expired"
}

func (s *Stripe) listSubscriptions(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, httpapi.WithList("customer", "price", "status")...); err != nil {
		return 0, err
	}
	exp, err := httpapi.ListExpand(f, subExpand...)
	if err != nil {
		return 0, err
	}
	status, err := httpapi.EnumParam(f, "status", "active", "all", "canceled", "ended", "incomplete",
		"incomplete_expired", "past_due", "paused", "trialing", "unpaid")
	if err != nil {
		return 0, err
	}
	customer, price := f.Get("customer"), f.Get("price")
	all := httpapi.NewestFirst(s.subOrder, func(id string) int64 { return s.subs[id].created },
		func(id string) any { return s.subObjX(s.subs[id], exp) })
	l, err := httpapi.ListPage(f, "/v1/subscriptions", "subscription", all, func(e httpapi.Entry) bool {
		sub := s.subs[e.ID]
		switch status {
		case "":
			if sub.status == "canceled" {
				return false
			}
		case "all":
		case "ended":
			if !sub.ended() {
				return false
			}
		default:
			if sub.status != status {
				return false
			}
		}
		hasPrice := slices.ContainsFunc(sub.items, func(it *subItem) bool { return it.priceID == price })
		return (customer == "" || sub.customer == customer) && (price == "" || hasPrice)
	})
	if err != nil {
		return 0, err
	}
	return 200, l
}

// cancellationFeedback are the values of cancellation_details[feedback].
var cancellationFeedback = []string{"customer_service", "low_quality", "missing_features", "other",
	"switched_service", "too_complex", "too_expensive", "unused"}

// cancellationDetails reads cancellation_details[comment|feedback]; it
// returns functions that apply them.
func cancellationDetails(f url.Values) (func(*subscription), *httpapi.Error) {
	var fns []func(*subscription)
	if f.Has("cancellation_details[feedback]") {
		fb := f.Get("cancellation_details[feedback]")
		if fb != "" && !slices.Contains(cancellationFeedback, fb) {
			return nil, httpapi.Invalid("cancellation_details[feedback]",
				"Invalid cancellation_details[feedback]: must be one of "+httpapi.OneOf(cancellationFeedback))
		}
		fns = append(fns, func(sub *subscription) { sub.cancelFeedback = fb })
	}
	if f.Has("cancellation_details[comment]") {
		c := f.Get("cancellation_details[comment]")
		if len(c) > 5000 {
			return nil, httpapi.Invalid("cancellation_details[comment]", "The comment can be at most 5000 characters long.")
		}
		fns = append(fns, func(sub *subscription) { sub.cancelComment = c })
	}
	return func(sub *subscription) {
		for _, fn := range fns {
			fn(sub)
		}
	}, nil
}

// itemChange is a change to one subscription item.
type itemChange struct {
	item     *subItem
	price    *price // nil: unchanged
	quantity int64  // 0: unchanged
}

// itemChanges reads items[i][id|price|quantity].
func (s *Stripe) itemChanges(f url.Values, sub *subscription) ([]itemChange, *httpapi.Error) {
	idx, err := httpapi.Indexes(f, "items")
	if err != nil {
		return nil, err
	}
	var out []itemChange
	for _, i := range idx {
		param := func(name string) string { return fmt.Sprintf("items[%d][%s]", i, name) }
		id := f.Get(param("id"))
		if id == "" {
			e := httpapi.Missing(param("id"))
			e.Message = "Missing required param: " + param("id") + " (billingtest cannot add items to a subscription)."
			return nil, e
		}
		k := slices.IndexFunc(sub.items, func(it *subItem) bool { return it.id == id })
		if k < 0 {
			return nil, httpapi.NoSuch(400, "subscription_item", id, param("id"))
		}
		ch := itemChange{item: sub.items[k]}
		if f.Has(param("price")) {
			p, err := s.recurringPrice(f.Get(param("price")), param("price"))
			if err != nil {
				return nil, err
			}
			ch.price = p
		}
		q, ok, err := httpapi.IntParam(f, param("quantity"))
		if err != nil {
			return nil, err
		}
		if ok && q < 1 {
			return nil, httpapi.InvalidInteger(param("quantity"), "This value must be greater than or equal to 1.")
		}
		ch.quantity = q
		out = append(out, ch)
	}
	return out, nil
}

// recurringPrice is the price a subscription item may have: one that
// exists, is recurring and is active.
func (s *Stripe) recurringPrice(pid, param string) (*price, *httpapi.Error) {
	p := s.prices[pid]
	switch {
	case p == nil:
		return nil, httpapi.NoSuch(400, "price", pid, param)
	case p.interval == "":
		return nil, httpapi.Invalid(param, "The price specified is set to `type=one_time` but this field only accepts prices with `type=recurring`.")
	case !p.active:
		return nil, httpapi.Invalid(param, "The price specified is inactive. This field only accepts active prices.")
	}
	return p, nil
}

// updateSubscription updates a subscription as the simulator's
// CancelAtPeriodEnd, CancelAt, Uncancel and ChangePrice do (with the same
// state changes), all of one request in one customer.subscription.updated,
// emitted only if something changed.
func (s *Stripe) updateSubscription(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, "cancel_at_period_end", "cancel_at", "items[#][id]", "items[#][price]",
		"items[#][quantity]", "proration_behavior", "metadata", "metadata[*]",
		"cancellation_details[comment]", "cancellation_details[feedback]", "pause_collection", "description",
		"pause_collection[behavior]", "pause_collection[resumes_at]"); err != nil {
		return 0, err
	}
	exp, err := httpapi.ExpandParam(f, subExpand...)
	if err != nil {
		return 0, err
	}
	id := r.PathValue("id")
	sub := s.subs[id]
	if sub == nil {
		return 0, httpapi.NoSuch(404, "subscription", id, "id")
	}
	md, clearMD, err := httpapi.MetadataParam(f, "metadata")
	if err != nil {
		return 0, err
	}
	details, err := cancellationDetails(f)
	if err != nil {
		return 0, err
	}
	if sub.ended() {
		for k := range f {
			if !strings.HasPrefix(k, "metadata") && !strings.HasPrefix(k, "cancellation_details") && !strings.HasPrefix(k, "expand") {
				return 0, httpapi.BadRequest("A canceled subscription can only update its cancellation_details and metadata.")
			}
		}
	}
	behavior, err := httpapi.EnumParam(f, "proration_behavior", "always_invoice", "create_prorations", "none")
	if err != nil {
		return 0, err
	}
	if behavior == "" {
		behavior = "create_prorations"
	}
	cape, hasCape, err := httpapi.BoolParam(f, "cancel_at_period_end")
	if err != nil {
		return 0, err
	}
	now := s.unix()
	hasCancelAt, cancelAt := f.Has("cancel_at"), int64(0)
	if hasCancelAt {
		switch v := f.Get("cancel_at"); v {
		case "": // unset
		case "max_period_end", "min_period_end":
			for i, it := range sub.items {
				if i == 0 || v == "max_period_end" && it.periodEnd > cancelAt || v == "min_period_end" && it.periodEnd < cancelAt {
					cancelAt = it.periodEnd
				}
			}
		default:
			n, _, err := httpapi.IntParam(f, "cancel_at")
			if err != nil {
				return 0, err
			}
			if n <= now {
				return 0, httpapi.Invalid("cancel_at", "cancel_at must be in the future.")
			}
			cancelAt = n
		}
	}
	if hasCape && cape && hasCancelAt {
		return 0, httpapi.Exclusive("cancel_at", "cancel_at_period_end")
	}
	items, err := s.itemChanges(f, sub)
	if err != nil {
		return 0, err
	}
	pause, err := pauseCollection(f, now)
	if err != nil {
		return 0, err
	}

	st := s.step(true)
	before := s.subObj(sub, false)
	if pause != nil {
		pause(sub)
	}
	switch {
	case hasCape && cape && !sub.cancelAtPeriodEnd:
		sub.scheduleCancel(st.t, true, sub.items[0].periodEnd)
	case hasCape && !cape && sub.cancelAtPeriodEnd:
		sub.unschedule()
	}
	switch {
	case !hasCancelAt:
	case cancelAt == 0 && (sub.cancelAt != 0 || sub.cancelAtPeriodEnd):
		sub.unschedule()
	case cancelAt != 0 && (cancelAt != sub.cancelAt || sub.cancelAtPeriodEnd):
		sub.scheduleCancel(st.t, false, cancelAt)
	}
	var ups []itemUpdate
	for _, ch := range items {
		up := itemUpdate{item: ch.item, priceID: ch.item.priceID, quantity: ch.item.quantity}
		if ch.price != nil {
			up.priceID = ch.price.id
		}
		if ch.quantity != 0 {
			up.quantity = ch.quantity
		}
		ups = append(ups, up)
	}
	charge := st.changeItems(sub, ups, behavior)
	if md != nil || clearMD {
		sub.metadata = httpapi.ApplyMetadata(sub.metadata, md, clearMD)
	}
	if f.Has("description") {
		sub.description = f.Get("description")
	}
	details(sub)
	after := s.subObj(sub, false)
	if prev := changed(before, after); len(prev) > 0 {
		st.emit("customer.subscription.updated", after, prev)
	}
	charge()
	return 200, s.subObjX(sub, exp)
}

// pauseCollection reads pause_collection[behavior|resumes_at] (or
// pause_collection="" to resume collection) into a change to apply; nil
// when the request does not touch it.
func pauseCollection(f url.Values, now int64) (func(*subscription), *httpapi.Error) {
	hasBehavior, hasResumes := f.Has("pause_collection[behavior]"), f.Has("pause_collection[resumes_at]")
	if f.Has("pause_collection") && !hasBehavior && !hasResumes {
		if f.Get("pause_collection") != "" {
			return nil, httpapi.Invalid("pause_collection", "Invalid object")
		}
		return func(sub *subscription) { sub.pauseBehavior, sub.pauseResumesAt = "", 0 }, nil
	}
	if !hasBehavior && !hasResumes {
		return nil, nil
	}
	if !hasBehavior {
		return nil, httpapi.Missing("pause_collection[behavior]")
	}
	behavior, err := httpapi.EnumParam(f, "pause_collection[behavior]", "keep_as_draft", "mark_uncollectible", "void")
	if err != nil {
		return nil, err
	}
	resumes, _, err := httpapi.IntParam(f, "pause_collection[resumes_at]")
	if err != nil {
		return nil, err
	}
	if hasResumes && resumes <= now {
		return nil, httpapi.Invalid("pause_collection[resumes_at]", "resumes_at must be in the future.")
	}
	return func(sub *subscription) { sub.pauseBehavior, sub.pauseResumesAt = behavior, resumes }, nil
}

// resumeSubscription resumes a paused subscription (POST
// /v1/subscriptions/{id}/resume): status active and
// customer.subscription.updated, then customer.subscription.resumed. With
// billing_cycle_anchor=now (the default) a new period starts now and its
// invoice is charged at once (invoice.created, invoice.finalized and the
// payment's events; a failed charge makes it past_due); with unchanged the
// periods stay and nothing is invoiced.
func (s *Stripe) resumeSubscription(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, "billing_cycle_anchor", "proration_behavior", "proration_date"); err != nil {
		return 0, err
	}
	exp, err := httpapi.ExpandParam(f, subExpand...)
	if err != nil {
		return 0, err
	}
	anchor, err := httpapi.EnumParam(f, "billing_cycle_anchor", "now", "unchanged")
	if err != nil {
		return 0, err
	}
	if _, err := httpapi.EnumParam(f, "proration_behavior", "always_invoice", "create_prorations", "none"); err != nil {
		return 0, err
	}
	if _, _, err := httpapi.IntParam(f, "proration_date"); err != nil {
		return 0, err
	}
	id := r.PathValue("id")
	sub := s.subs[id]
	if sub == nil {
		return 0, httpapi.NoSuch(404, "subscription", id, "id")
	}
	if sub.status != "paused" {
		return 0, httpapi.BadRequest("Only a subscription with status paused can be resumed; this one is " + sub.status + ".")
	}
	st := s.step(true)
	if anchor == "unchanged" {
		st.updateSub(sub, func() { sub.status = "active" })
		st.emit("customer.subscription.resumed", s.subObj(sub, false), nil)
		return 200, s.subObjX(sub, exp)
	}
	var in *invoice
	st.updateSub(sub, func() {
		sub.status, sub.anchor = "active", st.t
		for _, it := range sub.items {
			it.periodStart, it.periodEnd = st.t, s.periodEndAfter(sub, it, st.t)
		}
		in = s.newInvoice(sub, "subscription_update", st.t, st.t, st.t, false)
	})
	st.emit("customer.subscription.resumed", s.subObj(sub, false), nil)
	st.createAndFinalize(in)
	st.pay(sub, in, s.chargeOutcome(sub))
	return 200, s.subObjX(sub, exp)
}

// cancelSubscription cancels at once, as the simulator's CancelNow does:
// customer.subscription.deleted.
func (s *Stripe) cancelSubscription(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, "invoice_now", "prorate", "cancellation_details[comment]",
		"cancellation_details[feedback]"); err != nil {
		return 0, err
	}
	exp, err := httpapi.ExpandParam(f, subExpand...)
	if err != nil {
		return 0, err
	}
	for _, b := range []string{"invoice_now", "prorate"} {
		if _, _, err := httpapi.BoolParam(f, b); err != nil {
			return 0, err
		}
	}
	details, err := cancellationDetails(f)
	if err != nil {
		return 0, err
	}
	id := r.PathValue("id")
	sub := s.subs[id]
	if sub == nil || sub.ended() {
		// Stripe treats a canceled subscription as deleted.
		return 0, httpapi.NoSuch(404, "subscription", id, "id")
	}
	details(sub)
	s.step(true).cancelNow(sub)
	return 200, s.subObjX(sub, exp)
}
