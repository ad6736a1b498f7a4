package billingtest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// HTTP handlers. They run with s.mu held (see Stripe.handle).

func (s *Stripe) createCustomer(r *http.Request) (int, any) {
	c := &customer{id: newID("cus_", 14), email: r.PostForm.Get("email"), name: r.PostForm.Get("name"),
		metadata: prefixed(r.PostForm, "metadata"), created: s.unix()}
	s.customers[c.id] = c
	return 200, s.customerObj(c)
}

func (s *Stripe) getCustomer(r *http.Request) (int, any) {
	id := r.PathValue("id")
	c := s.customers[id]
	if c == nil {
		return 0, noSuch(404, "customer", id, "id")
	}
	return 200, s.customerObj(c)
}

func (s *Stripe) createSession(r *http.Request) (int, any) {
	f := r.PostForm
	cs := &session{
		id: "cs_test_" + newID("", 58), mode: f.Get("mode"), uiMode: f.Get("ui_mode"),
		status: "open", paymentStatus: "unpaid", customer: f.Get("customer"),
		customerEmail: f.Get("customer_email"), clientRef: f.Get("client_reference_id"),
		successURL: f.Get("success_url"), cancelURL: f.Get("cancel_url"), returnURL: f.Get("return_url"),
		priceID:  f.Get("line_items[0][price]"),
		metadata: prefixed(f, "metadata"), subMetadata: prefixed(f, "subscription_data[metadata]"),
		allowPromo: f.Get("allow_promotion_codes") == "true", created: s.unix(),
		lineItemID: newID("li_", 24),
	}
	cs.expiresAt = cs.created + int64(24*time.Hour/time.Second)
	cs.clientSecret = cs.id + "_secret_" + newID("", 16)
	if cs.uiMode == "" {
		cs.uiMode = "hosted"
	}
	switch cs.mode {
	case "":
		return 0, missing("mode")
	case "payment", "subscription":
	default:
		return 0, invalid("mode", "Invalid mode: must be one of payment, setup, or subscription")
	}
	switch cs.uiMode {
	case "hosted":
		if cs.successURL == "" {
			return 0, missing("success_url")
		}
	case "embedded":
		if cs.successURL != "" {
			return 0, invalid("success_url", "You cannot use `success_url` when `ui_mode` is `embedded`.")
		}
		if cs.returnURL == "" {
			return 0, missing("return_url")
		}
	default:
		return 0, invalid("ui_mode", "Invalid ui_mode: must be one of hosted or embedded")
	}
	if cs.customer != "" && s.customers[cs.customer] == nil {
		return 0, noSuch(400, "customer", cs.customer, "customer")
	}
	if cs.priceID == "" {
		if f.Has("line_items[0][quantity]") {
			return 0, missing("line_items[0][price]")
		}
		return 0, missing("line_items")
	}
	if f.Has("line_items[1][price]") {
		return 0, invalid("line_items", "billingtest supports a single line item")
	}
	p := s.prices[cs.priceID]
	if p == nil {
		return 0, noSuch(400, "price", cs.priceID, "line_items[0][price]")
	}
	q, err := strconv.ParseInt(f.Get("line_items[0][quantity]"), 10, 64)
	if f.Get("line_items[0][quantity]") == "" {
		return 0, missing("line_items[0][quantity]")
	}
	if err != nil || q < 1 {
		return 0, invalid("line_items[0][quantity]", "Invalid integer: quantity must be at least 1")
	}
	cs.quantity = q
	if td := f.Get("subscription_data[trial_period_days]"); td != "" {
		n, err := strconv.ParseInt(td, 10, 64)
		if err != nil || n < 1 || n > 730 {
			return 0, invalid("subscription_data[trial_period_days]", "trial_period_days must be an integer between 1 and 730")
		}
		cs.trialDays = n
	}
	hasSubData := cs.subMetadata != nil || cs.trialDays != 0
	switch {
	case cs.mode == "subscription" && p.interval == "":
		return 0, invalid("line_items[0][price]", "You must provide at least one recurring price in `subscription` mode when using prices.")
	case cs.mode == "payment" && p.interval != "":
		return 0, invalid("line_items[0][price]", "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.")
	case cs.mode == "payment" && hasSubData:
		return 0, invalid("subscription_data", "You can not pass `subscription_data` in `payment` mode.")
	}
	cs.amountTotal = p.unitAmount * q
	if cs.trialDays != 0 {
		cs.amountTotal = 0
	}
	s.sessions[cs.id] = cs
	s.sessOrder = append(s.sessOrder, cs.id)
	return 200, s.sessionObj(cs, nil)
}

func (s *Stripe) getSession(r *http.Request) (int, any) {
	id := r.PathValue("id")
	cs := s.sessions[id]
	if cs == nil {
		return 0, noSuch(404, "checkout.session", id, "session")
	}
	return 200, s.sessionObj(cs, expands(r.Form))
}

func (s *Stripe) createPortal(r *http.Request) (int, any) {
	id := r.PostForm.Get("customer")
	if id == "" {
		return 0, missing("customer")
	}
	if s.customers[id] == nil {
		return 0, noSuch(404, "customer", id, "customer")
	}
	p := &portalSession{id: newID("bps_", 24), customer: id, returnURL: r.PostForm.Get("return_url"), created: s.unix()}
	s.portals[p.id] = p
	return 200, s.portalObj(p)
}

func (s *Stripe) getSubscription(r *http.Request) (int, any) {
	id := r.PathValue("id")
	sub := s.subs[id]
	if sub == nil {
		return 0, noSuch(404, "subscription", id, "id")
	}
	return 200, s.subObj(sub, expands(r.Form)["latest_invoice"])
}

func (s *Stripe) getInvoice(r *http.Request) (int, any) {
	id := r.PathValue("id")
	in := s.invoices[id]
	if in == nil {
		return 0, noSuch(404, "invoice", id, "invoice")
	}
	return 200, s.invoiceObj(in)
}

func (s *Stripe) getEvent(r *http.Request) (int, any) {
	id := r.PathValue("id")
	i, ok := s.eventIndex[id]
	if !ok {
		return 0, noSuch(404, "event", id, "id")
	}
	return 200, json.RawMessage(s.events[i].JSON)
}
