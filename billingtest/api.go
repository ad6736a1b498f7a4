package billingtest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gobilling/billing/billingtest/internal/httpapi"
)

// HTTP handlers. They run with s.mu held (see Stripe.handle).

// customerParams are the parameters of customer create and update.
var customerParams = []string{"email", "name", "metadata", "metadata[*]", "description", "phone", "address",
	"address[line1]", "address[line2]", "address[city]", "address[state]", "address[postal_code]", "address[country]"}

// addressFields are the fields of an address.
var addressFields = []string{"line1", "line2", "city", "state", "postal_code", "country"}

// contactFields applies description, phone and address[...] of a customer
// create or update to c (an empty value unsets; address="" unsets the
// address).
func contactFields(f url.Values, c *customer) *httpapi.Error {
	if len(f.Get("description")) > 350 {
		return httpapi.Invalid("description", "The description can be at most 350 characters long.")
	}
	if len(f.Get("phone")) > 20 {
		return httpapi.Invalid("phone", "The phone number can be at most 20 characters long.")
	}
	if cc := f.Get("address[country]"); cc != "" && len(cc) != 2 {
		return httpapi.Invalid("address[country]", "Country '"+cc+"' is unknown. Try using a 2-character alphanumeric country code instead, such as 'US', 'EG', or 'GB'.")
	}
	if f.Has("description") {
		c.description = f.Get("description")
	}
	if f.Has("phone") {
		c.phone = f.Get("phone")
	}
	if f.Has("address") && f.Get("address") == "" {
		c.address = nil
	}
	for _, k := range addressFields {
		if key := "address[" + k + "]"; f.Has(key) {
			if c.address == nil {
				c.address = map[string]string{}
			}
			c.address[k] = f.Get(key)
		}
	}
	return nil
}

// customerFields reads and checks email, name and metadata.
func customerFields(r *http.Request) (email, name string, md map[string]string, clear bool, err *httpapi.Error) {
	f := r.Form
	if err := httpapi.CheckParams(f, customerParams...); err != nil {
		return "", "", nil, false, err
	}
	email, name = f.Get("email"), f.Get("name")
	if email != "" && (!strings.Contains(email, "@") || len(email) > 512) {
		return "", "", nil, false, httpapi.Invalid("email", "Invalid email address: "+email)
	}
	md, clear, err = httpapi.MetadataParam(f, "metadata")
	return email, name, md, clear, err
}

func (s *Stripe) createCustomer(r *http.Request) (int, any) {
	email, name, md, _, err := customerFields(r)
	if err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(r.Form); err != nil {
		return 0, err
	}
	c := &customer{id: httpapi.NewID("cus_", 14), email: email, name: name,
		metadata: httpapi.ApplyMetadata(nil, md, false), created: s.unix()}
	if err := contactFields(r.Form, c); err != nil {
		return 0, err
	}
	s.addCustomer(c)
	s.step(true).emit("customer.created", s.customerObj(c), nil)
	return 200, s.customerObj(c)
}

func (s *Stripe) getCustomer(r *http.Request) (int, any) {
	if err := httpapi.CheckParams(r.Form); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(r.Form); err != nil {
		return 0, err
	}
	id := r.PathValue("id")
	c := s.customers[id]
	if c == nil {
		return 0, httpapi.NoSuch(404, "customer", id, "id")
	}
	return 200, s.customerObj(c)
}

func (s *Stripe) updateCustomer(r *http.Request) (int, any) {
	id := r.PathValue("id")
	c := s.customers[id]
	if c == nil {
		return 0, httpapi.NoSuch(404, "customer", id, "id")
	}
	email, name, md, clear, err := customerFields(r)
	if err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(r.Form); err != nil {
		return 0, err
	}
	// An empty value unsets a field.
	check := *c
	check.address = maps.Clone(c.address)
	if err := contactFields(r.Form, &check); err != nil {
		return 0, err
	}
	s.step(true).updateCustomer(c, func() {
		c.description, c.phone, c.address = check.description, check.phone, check.address
		if r.Form.Has("email") {
			c.email = email
		}
		if r.Form.Has("name") {
			c.name = name
		}
		c.metadata = httpapi.ApplyMetadata(c.metadata, md, clear)
	})
	return 200, s.customerObj(c)
}

func (s *Stripe) listCustomers(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, httpapi.WithList("email")...); err != nil {
		return 0, err
	}
	if _, err := httpapi.ListExpand(f); err != nil {
		return 0, err
	}
	email := f.Get("email")
	all := httpapi.NewestFirst(s.custOrder, func(id string) int64 { return s.customers[id].created },
		func(id string) any { return s.customerObj(s.customers[id]) })
	l, err := httpapi.ListPage(f, "/v1/customers", "customer", all, func(e httpapi.Entry) bool {
		return email == "" || s.customers[e.ID].email == email
	})
	if err != nil {
		return 0, err
	}
	return 200, l
}

// sessionExpand are the expandable properties of a Checkout Session.
var sessionExpand = []string{"line_items", "subscription", "subscription.latest_invoice", "customer", "invoice"}

func (s *Stripe) createSession(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, "mode", "ui_mode", "customer", "customer_email", "client_reference_id",
		"success_url", "cancel_url", "return_url", "line_items", "line_items[#][price]", "line_items[#][quantity]",
		"line_items[#][price_data][currency]", "line_items[#][price_data][product]",
		"line_items[#][price_data][product_data][name]", "line_items[#][price_data][product_data][description]",
		"line_items[#][price_data][unit_amount]", "line_items[#][price_data][recurring][interval]",
		"line_items[#][price_data][recurring][interval_count]", "currency",
		"metadata", "metadata[*]", "subscription_data[metadata][*]", "subscription_data[trial_period_days]",
		"subscription_data[trial_settings][end_behavior][missing_payment_method]", "payment_method_collection",
		"subscription_data[description]", "billing_address_collection",
		"allow_promotion_codes", "expires_at"); err != nil {
		return 0, err
	}
	exp, err := httpapi.ExpandParam(f, sessionExpand...)
	if err != nil {
		return 0, err
	}
	md, _, err := httpapi.MetadataParam(f, "metadata")
	if err != nil {
		return 0, err
	}
	subMD, _, err := httpapi.MetadataParam(f, "subscription_data[metadata]")
	if err != nil {
		return 0, err
	}
	promo, _, err := httpapi.BoolParam(f, "allow_promotion_codes")
	if err != nil {
		return 0, err
	}
	cs := &session{
		id: "cs_test_" + httpapi.NewID("", 58), mode: f.Get("mode"), uiMode: f.Get("ui_mode"),
		status: "open", paymentStatus: "unpaid", customer: f.Get("customer"),
		customerEmail: f.Get("customer_email"), clientRef: f.Get("client_reference_id"),
		successURL: f.Get("success_url"), cancelURL: f.Get("cancel_url"), returnURL: f.Get("return_url"),
		metadata: httpapi.ApplyMetadata(nil, md, false), subMetadata: httpapi.ApplyMetadata(nil, subMD, false),
		allowPromo: promo, created: s.unix(),
	}
	cs.expiresAt = cs.created + int64(24*time.Hour/time.Second)
	cs.clientSecret = cs.id + "_secret_" + httpapi.NewID("", 16)
	if cs.uiMode == "" {
		cs.uiMode = "hosted"
	}
	switch cs.mode {
	case "":
		return 0, httpapi.Missing("mode")
	case "payment", "subscription", "setup":
	default:
		return 0, httpapi.Invalid("mode", "Invalid mode: must be one of payment, setup, or subscription")
	}
	switch cs.uiMode {
	case "hosted":
		if cs.successURL == "" {
			return 0, httpapi.Missing("success_url")
		}
	case "embedded":
		if cs.successURL != "" {
			return 0, httpapi.Invalid("success_url", "You cannot use `success_url` when `ui_mode` is `embedded`.")
		}
		if cs.cancelURL != "" {
			return 0, httpapi.Invalid("cancel_url", "You cannot use `cancel_url` when `ui_mode` is `embedded`.")
		}
		if cs.returnURL == "" {
			return 0, httpapi.Missing("return_url")
		}
	default:
		return 0, httpapi.Invalid("ui_mode", "Invalid ui_mode: must be one of hosted or embedded")
	}
	if at, ok, err := httpapi.IntParam(f, "expires_at"); err != nil {
		return 0, err
	} else if ok {
		switch {
		case at < cs.created+30*60:
			return 0, httpapi.Invalid("expires_at", "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.")
		case at > cs.created+24*60*60:
			return 0, httpapi.Invalid("expires_at", "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.")
		}
		cs.expiresAt = at
	}
	if cs.customer != "" && cs.customerEmail != "" {
		return 0, httpapi.Exclusive("customer", "customer_email")
	}
	if cs.customer != "" && s.customers[cs.customer] == nil {
		return 0, httpapi.NoSuch(400, "customer", cs.customer, "customer")
	}
	if apiErr := s.sessionItems(f, cs); apiErr != nil {
		return 0, apiErr
	}
	if td := f.Get("subscription_data[trial_period_days]"); td != "" {
		n, _, err := httpapi.IntParam(f, "subscription_data[trial_period_days]")
		if err != nil || n < 1 || n > 730 {
			return 0, httpapi.Invalid("subscription_data[trial_period_days]", "trial_period_days must be an integer between 1 and 730")
		}
		cs.trialDays = n
	}
	collection, err := httpapi.EnumParam(f, "payment_method_collection", "always", "if_required")
	if err != nil {
		return 0, err
	}
	cs.pmIfRequired = collection == "if_required"
	if cs.billingAddress, err = httpapi.EnumParam(f, "billing_address_collection", "auto", "required"); err != nil {
		return 0, err
	}
	cs.subDescription = f.Get("subscription_data[description]")
	if len(cs.subDescription) > 500 {
		return 0, httpapi.Invalid("subscription_data[description]", "The description can be at most 500 characters long.")
	}
	if cs.missingPM, err = httpapi.EnumParam(f, "subscription_data[trial_settings][end_behavior][missing_payment_method]",
		"cancel", "create_invoice", "pause"); err != nil {
		return 0, err
	}
	if cs.pmIfRequired && cs.mode != "subscription" {
		return 0, httpapi.Invalid("payment_method_collection", "payment_method_collection=if_required is only supported in subscription mode.")
	}
	hasSubData := cs.subMetadata != nil || cs.trialDays != 0 || cs.missingPM != "" || cs.subDescription != ""
	if apiErr := s.checkModeItems(cs, hasSubData); apiErr != nil {
		return 0, apiErr
	}
	for _, it := range cs.items {
		cs.amountTotal += s.prices[it.priceID].unitAmount * it.quantity
	}
	if cs.trialDays != 0 {
		cs.amountTotal = 0
		for _, it := range cs.items { // one-time items are due now
			if p := s.prices[it.priceID]; p.interval == "" {
				cs.amountTotal += p.unitAmount * it.quantity
			}
		}
	}
	s.sessions[cs.id] = cs
	s.sessOrder = append(s.sessOrder, cs.id)
	return 200, s.sessionObj(cs, exp)
}

// sessionOf returns the Checkout Session in the path.
func (s *Stripe) sessionOf(r *http.Request) (*session, *httpapi.Error) {
	id := r.PathValue("id")
	cs := s.sessions[id]
	if cs == nil {
		return nil, httpapi.NoSuch(404, "checkout.session", id, "id")
	}
	return cs, nil
}

func (s *Stripe) getSession(r *http.Request) (int, any) {
	if err := httpapi.CheckParams(r.Form); err != nil {
		return 0, err
	}
	exp, err := httpapi.ExpandParam(r.Form, sessionExpand...)
	if err != nil {
		return 0, err
	}
	cs, err := s.sessionOf(r)
	if err != nil {
		return 0, err
	}
	return 200, s.sessionObj(cs, exp)
}

// expireSessionAPI expires an open session on behalf of the request:
// checkout.session.expired.
func (s *Stripe) expireSessionAPI(r *http.Request) (int, any) {
	if err := httpapi.CheckParams(r.Form); err != nil {
		return 0, err
	}
	exp, err := httpapi.ExpandParam(r.Form, sessionExpand...)
	if err != nil {
		return 0, err
	}
	cs, err := s.sessionOf(r)
	if err != nil {
		return 0, err
	}
	if cs.status != "open" {
		return 0, httpapi.BadRequest("Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of `" + cs.status + "`.")
	}
	s.step(true).expireSession(cs)
	return 200, s.sessionObj(cs, exp)
}

func (s *Stripe) listLineItems(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, "limit", "starting_after", "ending_before"); err != nil {
		return 0, err
	}
	if _, err := httpapi.ListExpand(f); err != nil {
		return 0, err
	}
	cs, err := s.sessionOf(r)
	if err != nil {
		return 0, err
	}
	all := make([]httpapi.Entry, 0, len(cs.items))
	for _, it := range cs.items {
		all = append(all, httpapi.Entry{ID: it.id, Created: cs.created, Render: func() any { return s.lineItemObj(it) }})
	}
	l, err := httpapi.ListPage(f, "/v1/checkout/sessions/"+cs.id+"/line_items", "item", all, nil)
	if err != nil {
		return 0, err
	}
	return 200, l
}

func (s *Stripe) listSessions(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, httpapi.WithList("customer", "status", "subscription", "payment_intent")...); err != nil {
		return 0, err
	}
	exp, err := httpapi.ListExpand(f, sessionExpand...)
	if err != nil {
		return 0, err
	}
	status, err := httpapi.EnumParam(f, "status", "complete", "expired", "open")
	if err != nil {
		return 0, err
	}
	customer, sub, pi := f.Get("customer"), f.Get("subscription"), f.Get("payment_intent")
	all := httpapi.NewestFirst(s.sessOrder, func(id string) int64 { return s.sessions[id].created },
		func(id string) any { return s.sessionObj(s.sessions[id], exp) })
	l, err := httpapi.ListPage(f, "/v1/checkout/sessions", "checkout.session", all, func(e httpapi.Entry) bool {
		cs := s.sessions[e.ID]
		return (customer == "" || cs.customer == customer) && (status == "" || cs.status == status) &&
			(sub == "" || cs.subscription == sub) && (pi == "" || cs.pi == pi)
	})
	if err != nil {
		return 0, err
	}
	return 200, l
}

// expireDueSessions expires the open sessions whose expires_at has passed
// (checkout.session.expired, stamped now: when the fake noticed).
func (s *Stripe) expireDueSessions() {
	var st *step
	now := s.unix()
	for _, id := range s.sessOrder {
		cs := s.sessions[id]
		if cs.status != "open" || cs.expiresAt > now {
			continue
		}
		if st == nil {
			st = s.step(false)
		}
		st.expireSession(cs)
	}
}

func (s *Stripe) createPortal(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, "customer", "return_url", "configuration", "locale"); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(f); err != nil {
		return 0, err
	}
	id := f.Get("customer")
	if id == "" {
		return 0, httpapi.Missing("customer")
	}
	if s.customers[id] == nil {
		return 0, httpapi.NoSuch(400, "customer", id, "customer")
	}
	conf := f.Get("configuration")
	switch {
	case conf == "":
		conf = "bpc_billingtest_default"
	case !strings.HasPrefix(conf, "bpc_"):
		return 0, httpapi.NoSuch(400, "configuration", conf, "configuration")
	}
	p := &portalSession{id: httpapi.NewID("bps_", 24), customer: id, returnURL: f.Get("return_url"),
		configuration: conf, locale: f.Get("locale"), created: s.unix()}
	s.portals[p.id] = p
	return 200, s.portalObj(p)
}

func (s *Stripe) getSubscription(r *http.Request) (int, any) {
	if err := httpapi.CheckParams(r.Form); err != nil {
		return 0, err
	}
	exp, err := httpapi.ExpandParam(r.Form, subExpand...)
	if err != nil {
		return 0, err
	}
	id := r.PathValue("id")
	sub := s.subs[id]
	if sub == nil {
		return 0, httpapi.NoSuch(404, "subscription", id, "id")
	}
	return 200, s.subObjX(sub, exp)
}

func (s *Stripe) getInvoice(r *http.Request) (int, any) {
	if err := httpapi.CheckParams(r.Form); err != nil {
		return 0, err
	}
	exp, err := httpapi.ExpandParam(r.Form, "customer", "payments")
	if err != nil {
		return 0, err
	}
	id := r.PathValue("id")
	in := s.invoices[id]
	if in == nil {
		return 0, httpapi.NoSuch(404, "invoice", id, "id")
	}
	return 200, s.invoiceObjX(in, exp)
}

func (s *Stripe) listInvoices(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, httpapi.WithList("customer", "subscription", "status", "collection_method")...); err != nil {
		return 0, err
	}
	exp, err := httpapi.ListExpand(f, "customer", "payments")
	if err != nil {
		return 0, err
	}
	status, err := httpapi.EnumParam(f, "status", "draft", "open", "paid", "uncollectible", "void")
	if err != nil {
		return 0, err
	}
	method, err := httpapi.EnumParam(f, "collection_method", "charge_automatically", "send_invoice")
	if err != nil {
		return 0, err
	}
	customer, sub := f.Get("customer"), f.Get("subscription")
	all := httpapi.NewestFirst(s.invOrder, func(id string) int64 { return s.invoices[id].created },
		func(id string) any { return s.invoiceObjX(s.invoices[id], exp) })
	l, err := httpapi.ListPage(f, "/v1/invoices", "invoice", all, func(e httpapi.Entry) bool {
		in := s.invoices[e.ID]
		return (customer == "" || in.customer == customer) && (sub == "" || in.subscription == sub) &&
			(status == "" || in.status == status) && method != "send_invoice"
	})
	if err != nil {
		return 0, err
	}
	return 200, l
}

// invoicePayment finds an invoice payment by ID, or nil.
func (s *Stripe) invoicePayment(id string) *invoicePayment {
	for _, inID := range s.invOrder {
		for _, p := range s.invoices[inID].payments {
			if p.id == id {
				return p
			}
		}
	}
	return nil
}

func (s *Stripe) getInvoicePayment(r *http.Request) (int, any) {
	if err := httpapi.CheckParams(r.Form); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(r.Form); err != nil {
		return 0, err
	}
	id := r.PathValue("id")
	p := s.invoicePayment(id)
	if p == nil {
		return 0, httpapi.NoSuch(404, "invoice_payment", id, "id")
	}
	return 200, s.invoicePaymentObj(p)
}

// listInvoicePayments lists invoice payments, newest first, filtered by
// invoice or by payment[type]=payment_intent and payment[payment_intent]
// (how a PaymentIntent's invoice is found in basil).
func (s *Stripe) listInvoicePayments(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, httpapi.WithList("invoice", "payment[type]", "payment[payment_intent]", "status")...); err != nil {
		return 0, err
	}
	if _, err := httpapi.ListExpand(f); err != nil {
		return 0, err
	}
	status, err := httpapi.EnumParam(f, "status", "canceled", "open", "paid")
	if err != nil {
		return 0, err
	}
	pi := f.Get("payment[payment_intent]")
	if (f.Has("payment[type]") || pi != "") && f.Get("payment[type]") != "payment_intent" {
		if !f.Has("payment[type]") {
			return 0, httpapi.Missing("payment[type]")
		}
		return 0, httpapi.Invalid("payment[type]", "Invalid payment[type]: must be payment_intent")
	}
	inv := f.Get("invoice")
	var order []string
	byID := map[string]*invoicePayment{}
	for _, inID := range s.invOrder {
		for _, p := range s.invoices[inID].payments {
			order = append(order, p.id)
			byID[p.id] = p
		}
	}
	all := httpapi.NewestFirst(order, func(id string) int64 { return byID[id].created },
		func(id string) any { return s.invoicePaymentObj(byID[id]) })
	l, err := httpapi.ListPage(f, "/v1/invoice_payments", "invoice_payment", all, func(e httpapi.Entry) bool {
		p := byID[e.ID]
		return (inv == "" || p.invoice == inv) && (pi == "" || p.pi == pi) && (status == "" || p.status == status)
	})
	if err != nil {
		return 0, err
	}
	return 200, l
}

// eventRetention is how long /v1/events keeps events.
const eventRetention = 30 * 24 * time.Hour

// retained reports whether an event is still kept by /v1/events.
func (s *Stripe) retained(e Event) bool {
	return e.Created > s.now().Add(-eventRetention).Unix()
}

func (s *Stripe) getEvent(r *http.Request) (int, any) {
	if err := httpapi.CheckParams(r.Form); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(r.Form); err != nil {
		return 0, err
	}
	id := r.PathValue("id")
	i, ok := s.eventIndex[id]
	if !ok || !s.retained(s.events[i]) {
		return 0, httpapi.NoSuch(404, "event", id, "id")
	}
	return 200, json.RawMessage(s.events[i].JSON)
}

func (s *Stripe) listEvents(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, httpapi.WithList("type", "types", "types[#]", "delivery_success")...); err != nil {
		return 0, err
	}
	if _, err := httpapi.ListExpand(f); err != nil {
		return 0, err
	}
	delivered, hasDelivered, err := httpapi.BoolParam(f, "delivery_success")
	if err != nil {
		return 0, err
	}
	typ, types := f.Get("type"), httpapi.ArrayParam(f, "types")
	if f.Has("types") && f.Get("types") != "" {
		types = append(types, f["types"]...)
	}
	switch {
	case typ != "" && len(types) > 0:
		return 0, httpapi.Exclusive("type", "types")
	case len(types) > 20:
		return 0, httpapi.Invalid("types", "You may pass at most 20 types.")
	}
	all := make([]httpapi.Entry, 0, len(s.events))
	for i := len(s.events) - 1; i >= 0; i-- {
		e := s.events[i]
		if !s.retained(e) {
			break // older ones are gone
		}
		all = append(all, httpapi.Entry{ID: e.ID, Created: e.Created, Render: func() any { return json.RawMessage(e.JSON) }})
	}
	l, err := httpapi.ListPage(f, "/v1/events", "event", all, func(e httpapi.Entry) bool {
		t := s.events[s.eventIndex[e.ID]].Type
		if hasDelivered && s.dl.Unacknowledged(e.ID) == delivered {
			return false
		}
		if typ != "" {
			return globMatch(typ, t)
		}
		if len(types) > 0 {
			for _, want := range types {
				if want == t {
					return true
				}
			}
			return false
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	return 200, l
}

// globMatch matches an event type against a pattern where * stands for
// any run of characters (e.g. "invoice.*", "*.created").
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

// sessionItems reads line_items[i][price|price_data|quantity] into the
// session's items. price_data makes a price for the session alone (not
// listed, not sellable elsewhere), with a product of product_data[name] or
// an existing product.
func (s *Stripe) sessionItems(f url.Values, cs *session) *httpapi.Error {
	idx, err := httpapi.Indexes(f, "line_items")
	if err != nil {
		return err
	}
	if len(idx) == 0 {
		if cs.mode == "setup" {
			return nil
		}
		return httpapi.Missing("line_items")
	}
	if cs.mode == "setup" {
		return httpapi.Invalid("line_items", "You cannot pass `line_items` in `setup` mode.")
	}
	for n, i := range idx {
		key := func(name string) string { return fmt.Sprintf("line_items[%d][%s]", i, name) }
		if i != n {
			return httpapi.Invalid(key("price"), "Line items must be numbered from 0 without gaps.")
		}
		pid := f.Get(key("price"))
		hasData := false
		for k := range f {
			if strings.HasPrefix(k, key("price_data")) {
				hasData = true
			}
		}
		switch {
		case pid != "" && hasData:
			return httpapi.Exclusive(key("price"), key("price_data"))
		case hasData:
			p, apiErr := s.priceData(f, i)
			if apiErr != nil {
				return apiErr
			}
			pid = p.id
		case pid == "":
			return httpapi.Missing(key("price"))
		default:
			p := s.prices[pid]
			if p == nil {
				return httpapi.NoSuch(400, "price", pid, key("price"))
			}
			if !p.active {
				return httpapi.Invalid(key("price"), "The price specified is inactive. This field only accepts active prices.")
			}
		}
		if f.Get(key("quantity")) == "" {
			return httpapi.Missing(key("quantity"))
		}
		q, _, err := httpapi.IntParam(f, key("quantity"))
		if err != nil {
			return err
		}
		if q < 1 {
			return httpapi.InvalidInteger(key("quantity"), "This value must be greater than or equal to 1.")
		}
		cs.items = append(cs.items, sessionItem{id: httpapi.NewID("li_", 24), priceID: pid, quantity: q})
	}
	return nil
}

// priceData makes the ad-hoc price of line_items[i][price_data].
func (s *Stripe) priceData(f url.Values, i int) (*price, *httpapi.Error) {
	key := func(name string) string { return fmt.Sprintf("line_items[%d][price_data][%s]", i, name) }
	currency := f.Get(key("currency"))
	if currency == "" {
		return nil, httpapi.Missing(key("currency"))
	}
	if len(currency) != 3 {
		return nil, httpapi.Invalid(key("currency"), "Invalid currency: "+currency)
	}
	amount, ok, err := httpapi.IntParam(f, key("unit_amount"))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, httpapi.Missing(key("unit_amount"))
	}
	if amount < 0 {
		return nil, httpapi.InvalidInteger(key("unit_amount"), "This value must be greater than or equal to 0.")
	}
	prodID, name := f.Get(key("product")), f.Get(key("product_data][name"))
	now := s.unix()
	switch {
	case prodID != "" && name != "":
		return nil, httpapi.Exclusive(key("product"), key("product_data"))
	case prodID != "":
		if s.products[prodID] == nil {
			return nil, httpapi.NoSuch(400, "product", prodID, key("product"))
		}
	case name != "":
		prod := &product{id: httpapi.NewID("prod_", 14), name: name, description: f.Get(key("product_data][description")),
			active: true, created: now, updated: now}
		s.addProduct(prod)
		prodID = prod.id
	default:
		return nil, httpapi.Missing(key("product_data"))
	}
	interval := f.Get(key("recurring][interval"))
	count := int64(0)
	if interval != "" {
		if intervalSeconds(interval) == 0 {
			return nil, httpapi.Invalid(key("recurring][interval"), "Invalid interval: must be one of day, month, week, or year")
		}
		count = 1
		if n, ok, err := httpapi.IntParam(f, key("recurring][interval_count")); err != nil {
			return nil, err
		} else if ok {
			count = n
		}
	}
	p := &price{id: httpapi.NewID("price_", 24), interval: interval, intervalCount: count, product: prodID,
		currency: strings.ToLower(currency), unitAmount: amount, created: now, active: false}
	s.prices[p.id] = p // for this session: not listed
	return p, nil
}

// checkModeItems checks a session's items against its mode: one currency;
// in subscription mode at least one recurring price, all of one interval;
// no recurring price in payment mode; no subscription_data outside
// subscription mode.
func (s *Stripe) checkModeItems(cs *session, hasSubData bool) *httpapi.Error {
	var recurring []*price
	for n, it := range cs.items {
		p := s.prices[it.priceID]
		if p.currency != s.prices[cs.items[0].priceID].currency {
			return httpapi.Invalid(fmt.Sprintf("line_items[%d]", n), "All prices on a Checkout Session must have the same currency.")
		}
		if p.interval != "" {
			if len(recurring) > 0 && (p.interval != recurring[0].interval || p.intervalCount != recurring[0].intervalCount) {
				return httpapi.Invalid(fmt.Sprintf("line_items[%d][price]", n), "All recurring prices must have the same billing interval.")
			}
			recurring = append(recurring, p)
			if cs.mode == "payment" {
				return httpapi.Invalid(fmt.Sprintf("line_items[%d][price]", n), "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices.")
			}
		}
	}
	switch {
	case cs.mode == "subscription" && len(recurring) == 0:
		return httpapi.Invalid("line_items[0][price]", "You must provide at least one recurring price in `subscription` mode when using prices.")
	case cs.mode != "subscription" && hasSubData:
		return httpapi.Invalid("subscription_data", "You can not pass `subscription_data` in `"+cs.mode+"` mode.")
	}
	return nil
}
