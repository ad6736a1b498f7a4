package billingtest

import (
	"fmt"
	"maps"
	"slices"

	"github.com/gobilling/billing/billingtest/internal/httpapi"
)

// State kept by the fake. Everything is rendered to Stripe JSON on demand by
// the *Obj methods below (always building fresh maps, so a rendered object
// never aliases the state).

type product struct {
	id, name, description string
	active                bool
	metadata              map[string]string
	created, updated      int64
}

type price struct {
	id, interval, product, currency, lookupKey, nickname string
	intervalCount, unitAmount, created                   int64
	active                                               bool
	metadata                                             map[string]string
}

// seconds is the length of a recurring price's billing period (0 for a
// one-time price).
func (p *price) seconds() int64 { return intervalSeconds(p.interval) * max(p.intervalCount, 1) }

type customer struct {
	id, email, name    string
	metadata           map[string]string
	created            int64
	description, phone string
	address            map[string]string // nil: none
	// card is what the customer's saved card does when charged
	// (cardInvalid: none recorded, charges succeed).
	card testCard
	// defaultPM is the payment method invoices charge by default
	// (invoice_settings.default_payment_method), set by a card update.
	defaultPM string
	// delinquent: an automatic payment failed and no invoice has been
	// paid since (Stripe's customer.delinquent).
	delinquent bool
}

type session struct {
	id, mode, uiMode, status, paymentStatus string
	customer, customerEmail, clientRef      string
	successURL, cancelURL, returnURL        string
	items                                   []sessionItem
	trialDays, amountTotal                  int64
	metadata, subMetadata                   map[string]string
	allowPromo                              bool
	created, expiresAt                      int64
	subscription, invoice, pi               string
	clientSecret                            string // embedded sessions
	// settleAt is when a bank debit's payment settles (0: none pending),
	// settleOK whether it succeeds.
	settleAt int64
	settleOK bool
	// pmIfRequired: payment_method_collection=if_required (a trial then
	// needs no card); missingPM: the trial's end behaviour without one.
	pmIfRequired bool
	missingPM    string
	// billingAddress is billing_address_collection (""/auto or
	// required); subDescription subscription_data[description].
	billingAddress, subDescription string
	setupIntent                    string // mode setup, once completed
}

type portalSession struct {
	id, customer, returnURL, configuration, locale string
	created                                        int64
}

type subItem struct {
	id, priceID            string
	quantity, created      int64
	periodStart, periodEnd int64
	metadata               map[string]string
}

type subscription struct {
	id, customer, status, latestInvoice string
	items                               []*subItem
	metadata                            map[string]string
	created, startDate, anchor          int64
	cancelAtPeriodEnd                   bool
	cancelAt, canceledAt, endedAt       int64
	cancelReason, cancelComment         string
	cancelFeedback                      string
	trialStart, trialEnd                int64
	defaultPM                           string // default_payment_method
	// missingPM is trial_settings.end_behavior.missing_payment_method:
	// create_invoice (""), pause or cancel.
	missingPM string
	// pauseBehavior and pauseResumesAt are pause_collection ("": none).
	pauseBehavior  string
	pauseResumesAt int64
	// pending are proration items waiting for the next invoice.
	pending []invoiceLine
	// schedule is the subscription schedule attached, if any.
	schedule    string
	description string
}

type invoiceLine struct {
	id, priceID, subItemID string
	quantity, amount       int64
	start, end             int64
	// A proration: its own description, from an invoice item.
	proration         bool
	desc, invoiceItem string
}

type invoice struct {
	id, customer, subscription, billingReason, status, number string
	subMetadata                                               map[string]string
	lines                                                     []invoiceLine
	amountDue, amountPaid, attemptCount                       int64
	attempted                                                 bool
	created, periodStart, periodEnd                           int64
	finalizedAt, paidAt, nextPaymentAttempt, firstAttemptAt   int64
	voidedAt, uncollectibleAt                                 int64
	payments                                                  []*invoicePayment
	// held: kept as a draft by pause_collection, never finalized.
	held bool
	// createdEvent is the invoice.created event of a renewal's draft;
	// awaited once its deliveries were waited for, finalizeAt when it is
	// finalized (0: an hour after creation).
	createdEvent string
	awaited      bool
	finalizeAt   int64
}

// invoicePayment is one payment of an invoice (basil's invoice_payment):
// the PaymentIntent made when a charged invoice is finalized, which every
// attempt retries. Status open, then paid (or canceled with a voided
// invoice).
type invoicePayment struct {
	id, invoice, pi, status string
	amountRequested         int64
	amountPaid              int64
	created, paidAt         int64
}

// intervalSeconds is a billing interval's length in seconds for days and
// weeks; months and years follow the calendar (Stripe.periodEndAfter) and
// have their nominal length here (30 and 365 days) only to say the
// interval is known.
func intervalSeconds(interval string) int64 {
	switch interval {
	case "day":
		return 86400
	case "week":
		return 7 * 86400
	case "month":
		return 30 * 86400
	case "year":
		return 365 * 86400
	}
	return 0
}

// AddPrice registers a price the fake knows, in usd, with the given ID
// (which the API cannot choose), replacing any price of that ID. interval is
// "month", "year" (also "day" or "week") for a recurring price, or "" for a
// one-time price. It panics on another interval. The price belongs to the
// product "prod_"+id (named id), made if missing. Prices can also be made
// through the API (POST /v1/prices), with lookup keys.
func (s *Stripe) AddPrice(id, interval string, unitAmount int64) {
	if interval != "" && intervalSeconds(interval) == 0 {
		panic(fmt.Sprintf("billingtest: unknown interval %q", interval))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.unix()
	prod := "prod_" + id
	if s.products[prod] == nil {
		s.addProduct(&product{id: prod, name: id, active: true, created: now, updated: now})
	}
	p := &price{id: id, interval: interval, unitAmount: unitAmount, created: now, product: prod,
		currency: "usd", active: true}
	if interval != "" {
		p.intervalCount = 1
	}
	s.addPrice(p)
}

func (s *Stripe) addProduct(p *product) {
	if s.products[p.id] == nil {
		s.prodOrder = append(s.prodOrder, p.id)
	}
	s.products[p.id] = p
}

func (s *Stripe) addPrice(p *price) {
	if s.prices[p.id] == nil {
		s.priceOrder = append(s.priceOrder, p.id)
	}
	s.prices[p.id] = p
}

func (s *Stripe) addCustomer(c *customer) {
	s.customers[c.id] = c
	s.custOrder = append(s.custOrder, c.id)
}

// currency is the currency of a price, "usd" for an unknown one.
func (s *Stripe) currency(priceID string) string {
	if p := s.prices[priceID]; p != nil {
		return p.currency
	}
	return "usd"
}

// null returns nil (JSON null) for a zero value.
func null[T comparable](v T) any {
	var zero T
	if v == zero {
		return nil
	}
	return v
}

func meta(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}

func (s *Stripe) productObj(p *product) map[string]any {
	return map[string]any{
		"id": p.id, "object": "product", "active": p.active, "created": p.created,
		"default_price": nil, "description": null(p.description), "images": []string{},
		"livemode": false, "marketing_features": []any{}, "metadata": meta(p.metadata),
		"name": p.name, "package_dimensions": nil, "shippable": nil, "statement_descriptor": nil,
		"tax_code": nil, "unit_label": nil, "updated": p.updated, "url": nil,
	}
}

func (s *Stripe) priceObj(p *price) map[string]any { return s.priceObjX(p, nil) }

// priceObjX renders a price, with its product expanded if asked.
func (s *Stripe) priceObjX(p *price, expand map[string]bool) map[string]any {
	var prod any = p.product
	if expand["product"] && s.products[p.product] != nil {
		prod = s.productObj(s.products[p.product])
	}
	o := map[string]any{
		"id": p.id, "object": "price", "active": p.active, "billing_scheme": "per_unit",
		"created": p.created, "currency": p.currency, "custom_unit_amount": nil, "livemode": false,
		"lookup_key": null(p.lookupKey), "metadata": meta(p.metadata), "nickname": null(p.nickname),
		"product": prod, "recurring": nil, "tax_behavior": "unspecified", "tiers_mode": nil,
		"transform_quantity": nil, "type": "one_time",
		"unit_amount": p.unitAmount, "unit_amount_decimal": fmt.Sprint(p.unitAmount),
	}
	if p.interval != "" {
		o["type"] = "recurring"
		o["recurring"] = map[string]any{"interval": p.interval, "interval_count": max(p.intervalCount, 1),
			"meter": nil, "usage_type": "licensed"}
	}
	return o
}

// productName is the name of a price's product.
func (s *Stripe) productName(p *price) string {
	if prod := s.products[p.product]; prod != nil {
		return prod.name
	}
	return p.product
}

func (s *Stripe) customerObj(c *customer) map[string]any {
	return map[string]any{
		"id": c.id, "object": "customer", "created": c.created, "email": null(c.email),
		"name": null(c.name), "metadata": meta(c.metadata), "livemode": false, "balance": 0,
		"currency": nil, "delinquent": c.delinquent, "description": null(c.description), "default_source": nil,
		"address":        addressObj(c.address),
		"invoice_prefix": prefixOf(c.id), "phone": null(c.phone), "preferred_locales": []string{},
		"invoice_settings": map[string]any{"custom_fields": nil, "default_payment_method": null(c.defaultPM),
			"footer": nil, "rendering_options": nil},
		"tax_exempt": "none", "test_clock": nil,
	}
}

// addressObj renders an address (nil: null), every field present.
func addressObj(a map[string]string) any {
	if a == nil {
		return nil
	}
	o := map[string]any{}
	for _, k := range addressFields {
		o[k] = null(a[k])
	}
	return o
}

// prefixOf derives an invoice number prefix from a customer ID.
func prefixOf(customerID string) string {
	p := customerID[len(customerID)-8:]
	out := make([]byte, len(p))
	for i := range len(p) {
		c := p[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		out[i] = c
	}
	return string(out)
}

func (s *Stripe) itemsObj(sub *subscription) map[string]any {
	data := make([]any, 0, len(sub.items))
	for _, it := range sub.items {
		data = append(data, map[string]any{
			"id": it.id, "object": "subscription_item", "created": it.created,
			"current_period_start": it.periodStart, "current_period_end": it.periodEnd,
			"discounts": []string{}, "metadata": meta(it.metadata),
			"price": s.priceObj(s.prices[it.priceID]), "quantity": it.quantity,
			"subscription": sub.id, "tax_rates": []any{},
		})
	}
	return httpapi.List("/v1/subscription_items?subscription="+sub.id, data)
}

// missingPMBehavior is what a trial's end does without a payment method.
func missingPMBehavior(sub *subscription) string {
	if sub.missingPM == "" {
		return "create_invoice"
	}
	return sub.missingPM
}

func (s *Stripe) pauseCollectionObj(sub *subscription) any {
	if sub.pauseBehavior == "" {
		return nil
	}
	return map[string]any{"behavior": sub.pauseBehavior, "resumes_at": null(sub.pauseResumesAt)}
}

func (s *Stripe) cancellationObj(sub *subscription) map[string]any {
	return map[string]any{"comment": null(sub.cancelComment), "feedback": null(sub.cancelFeedback),
		"reason": null(sub.cancelReason)}
}

func (s *Stripe) subObj(sub *subscription, expandInvoice bool) map[string]any {
	return s.subObjX(sub, map[string]bool{"latest_invoice": expandInvoice})
}

// subObjX renders a subscription with latest_invoice or customer expanded
// as asked.
func (s *Stripe) subObjX(sub *subscription, expand map[string]bool) map[string]any {
	var latest any = null(sub.latestInvoice)
	if expand["latest_invoice"] && sub.latestInvoice != "" {
		latest = s.invoiceObj(s.invoices[sub.latestInvoice])
	}
	var cus any = sub.customer
	if expand["customer"] && s.customers[sub.customer] != nil {
		cus = s.customerObj(s.customers[sub.customer])
	}
	var currency any = "usd"
	if len(sub.items) > 0 {
		currency = s.currency(sub.items[0].priceID)
	}
	return map[string]any{
		"id": sub.id, "object": "subscription", "application": nil, "application_fee_percent": nil,
		"automatic_tax":        map[string]any{"enabled": false, "liability": nil, "disabled_reason": nil},
		"billing_cycle_anchor": sub.anchor, "billing_cycle_anchor_config": nil,
		"billing_mode": map[string]any{"type": "classic"}, "cancel_at": null(sub.cancelAt),
		"cancel_at_period_end": sub.cancelAtPeriodEnd, "canceled_at": null(sub.canceledAt),
		"cancellation_details": s.cancellationObj(sub), "collection_method": "charge_automatically",
		"created": sub.created, "currency": currency, "customer": cus, "days_until_due": nil,
		"default_payment_method": null(sub.defaultPM), "default_source": nil, "default_tax_rates": []any{},
		"description": null(sub.description), "discounts": []string{}, "ended_at": null(sub.endedAt),
		"invoice_settings": map[string]any{"account_tax_ids": nil, "issuer": map[string]any{"type": "self"}},
		"items":            s.itemsObj(sub), "latest_invoice": latest, "livemode": false,
		"metadata": meta(sub.metadata), "next_pending_invoice_item_invoice": nil, "on_behalf_of": nil,
		"pause_collection": s.pauseCollectionObj(sub),
		"payment_settings": map[string]any{"payment_method_options": nil, "payment_method_types": nil,
			"save_default_payment_method": "off"},
		"pending_invoice_item_interval": nil, "pending_setup_intent": nil, "pending_update": nil,
		"schedule": null(sub.schedule), "start_date": sub.startDate, "status": sub.status, "test_clock": nil,
		"transfer_data": nil, "trial_end": null(sub.trialEnd),
		"trial_settings": map[string]any{"end_behavior": map[string]any{"missing_payment_method": missingPMBehavior(sub)}},
		"trial_start":    null(sub.trialStart),
	}
}

func (s *Stripe) invoiceObj(in *invoice) map[string]any { return s.invoiceObjX(in, nil) }

// invoiceObjX renders an invoice with its customer or payments expanded
// if asked.
func (s *Stripe) invoiceObjX(in *invoice, expand map[string]bool) map[string]any {
	currency := "usd"
	if len(in.lines) > 0 {
		currency = s.currency(in.lines[0].priceID)
	}
	lines := make([]any, 0, len(in.lines))
	for _, l := range in.lines {
		p := s.prices[l.priceID]
		name := s.productName(p)
		desc := fmt.Sprintf("%d × %s (at $%.2f / %s)", l.quantity, name, float64(p.unitAmount)/100, p.interval)
		switch {
		case l.desc != "":
			desc = l.desc
		case in.amountDue == 0 && l.amount == 0 && p.unitAmount != 0:
			desc = fmt.Sprintf("Trial period for %s", name)
		}
		lines = append(lines, map[string]any{
			"id": l.id, "object": "line_item", "amount": l.amount, "currency": currency,
			"description": desc, "discount_amounts": []any{}, "discountable": true,
			"discounts": []string{}, "invoice": in.id, "livemode": false,
			"metadata": meta(in.subMetadata),
			"parent": map[string]any{
				"type": "subscription_item_details", "invoice_item_details": nil,
				"subscription_item_details": map[string]any{
					"invoice_item": null(l.invoiceItem), "proration": l.proration, "proration_details": map[string]any{"credited_items": nil},
					"subscription": in.subscription, "subscription_item": l.subItemID,
				},
			},
			"period":                map[string]any{"start": l.start, "end": l.end},
			"pretax_credit_amounts": []any{},
			"pricing": map[string]any{"type": "price_details",
				"price_details":       map[string]any{"price": p.id, "product": p.product},
				"unit_amount_decimal": fmt.Sprint(p.unitAmount)},
			"quantity": l.quantity, "subscription": in.subscription, "taxes": []any{},
		})
	}
	var hosted, pdf any
	var ending any
	if in.finalizedAt != 0 {
		hosted = "https://invoice.stripe.com/i/acct_fake/" + in.id
		pdf = hosted.(string) + "/pdf"
		ending = 0
	}
	remaining := in.amountDue - in.amountPaid
	var cus any = in.customer
	if expand["customer"] {
		cus = s.customerObj(s.customers[in.customer])
	}
	o := map[string]any{
		"id": in.id, "object": "invoice", "account_country": "US", "account_name": "billingtest",
		"amount_due": in.amountDue, "amount_overpaid": 0, "amount_paid": in.amountPaid,
		"amount_remaining": remaining, "amount_shipping": 0, "application": nil,
		"attempt_count": in.attemptCount, "attempted": in.attempted,
		"auto_advance":               in.status == "draft" || in.status == "open" && in.nextPaymentAttempt != 0,
		"automatic_tax":              map[string]any{"enabled": false, "liability": nil, "status": nil, "disabled_reason": nil, "provider": nil},
		"automatically_finalizes_at": nil, "billing_reason": in.billingReason,
		"collection_method": "charge_automatically", "created": in.created, "currency": currency,
		"customer": cus, "customer_email": null(s.customers[in.customer].email),
		"customer_name": null(s.customers[in.customer].name), "default_payment_method": nil,
		"default_source": nil, "default_tax_rates": []any{}, "description": nil, "discounts": []string{},
		"due_date":     nil,
		"effective_at": null(in.finalizedAt), "ending_balance": ending, "footer": nil,
		"hosted_invoice_url": hosted, "invoice_pdf": pdf, "last_finalization_error": nil,
		"lines": httpapi.List("/v1/invoices/"+in.id+"/lines", lines), "livemode": false,
		"metadata": map[string]string{}, "next_payment_attempt": null(in.nextPaymentAttempt),
		"issuer": map[string]any{"type": "self"}, "number": null(in.number), "on_behalf_of": nil,
		"parent": map[string]any{
			"type": "subscription_details", "quote_details": nil,
			"subscription_details": map[string]any{"metadata": meta(in.subMetadata), "subscription": in.subscription},
		},
		"payment_settings": map[string]any{"default_mandate": nil, "payment_method_options": nil,
			"payment_method_types": nil},
		"period_end": in.periodEnd, "period_start": in.periodStart,
		"post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
		"receipt_number": nil, "starting_balance": 0, "statement_descriptor": nil, "status": in.status,
		"status_transitions": map[string]any{"finalized_at": null(in.finalizedAt),
			"marked_uncollectible_at": null(in.uncollectibleAt), "paid_at": null(in.paidAt), "voided_at": null(in.voidedAt)},
		"subtotal": in.amountDue, "subtotal_excluding_tax": in.amountDue, "test_clock": nil,
		"total": in.amountDue, "total_discount_amounts": []any{}, "total_excluding_tax": in.amountDue,
		"total_pretax_credit_amounts": []any{}, "total_taxes": []any{}, "webhooks_delivered_at": nil,
	}
	if expand["payments"] {
		data := make([]any, 0, len(in.payments))
		for _, p := range slices.Backward(in.payments) {
			data = append(data, s.invoicePaymentObj(p))
		}
		o["payments"] = httpapi.List("/v1/invoice_payments?invoice="+in.id, data)
	}
	return o
}

// invoiceCurrency is an invoice's currency: its first line's price's.
func (s *Stripe) invoiceCurrency(in *invoice) string {
	if len(in.lines) > 0 {
		return s.currency(in.lines[0].priceID)
	}
	return "usd"
}

func (s *Stripe) invoicePaymentObj(p *invoicePayment) map[string]any {
	in := s.invoices[p.invoice]
	currency := s.invoiceCurrency(in)
	return map[string]any{
		"id": p.id, "object": "invoice_payment", "amount_paid": null(p.amountPaid),
		"amount_requested": p.amountRequested, "created": p.created, "currency": currency,
		"invoice": p.invoice, "is_default": true, "livemode": false,
		"payment":            map[string]any{"type": "payment_intent", "payment_intent": p.pi},
		"status":             p.status,
		"status_transitions": map[string]any{"canceled_at": nil, "paid_at": null(p.paidAt)},
	}
}

func (s *Stripe) sessionObj(cs *session, expand map[string]bool) map[string]any {
	var sub any = null(cs.subscription)
	if cs.subscription != "" && (expand["subscription"] || expand["subscription.latest_invoice"]) {
		sub = s.subObj(s.subs[cs.subscription], expand["subscription.latest_invoice"])
	}
	var cus any = null(cs.customer)
	if cs.customer != "" && expand["customer"] {
		cus = s.customerObj(s.customers[cs.customer])
	}
	var inv any = null(cs.invoice)
	if cs.invoice != "" && expand["invoice"] {
		inv = s.invoiceObj(s.invoices[cs.invoice])
	}
	var url, secret any
	if cs.status == "open" {
		if cs.uiMode == "embedded" {
			secret = cs.clientSecret
		} else {
			url = s.URL() + "/pay/" + cs.id
		}
	}
	var details any
	if cs.status == "complete" {
		email, name := cs.customerEmail, ""
		if c := s.customers[cs.customer]; c != nil {
			email, name = c.email, c.name
		}
		details = map[string]any{"address": nil, "email": null(email), "name": null(name),
			"phone": nil, "tax_exempt": "none", "tax_ids": []any{}}
	}
	o := map[string]any{
		"id": cs.id, "object": "checkout.session", "after_expiration": nil,
		"allow_promotion_codes": null(cs.allowPromo), "amount_subtotal": cs.amountTotal,
		"amount_total":               cs.amountTotal,
		"automatic_tax":              map[string]any{"enabled": false, "liability": nil, "provider": nil, "status": nil},
		"billing_address_collection": null(cs.billingAddress),
		"cancel_url":                 null(cs.cancelURL), "client_reference_id": null(cs.clientRef),
		"client_secret": secret, "created": cs.created, "currency": s.sessionCurrency(cs),
		"custom_fields": []any{},
		"custom_text": map[string]any{"after_submit": nil, "shipping_address": nil, "submit": nil,
			"terms_of_service_acceptance": nil},
		"customer": cus, "customer_creation": nil, "customer_details": details,
		"customer_email": null(cs.customerEmail), "expires_at": cs.expiresAt,
		"invoice": inv, "livemode": false, "locale": nil, "metadata": meta(cs.metadata),
		"mode": cs.mode, "origin_context": nil, "payment_intent": null(cs.pi), "payment_link": nil,
		"payment_method_collection": pmCollection(cs), "payment_method_types": []string{"card"},
		"payment_status": cs.paymentStatus, "recovered_from": nil,
		"setup_intent": null(cs.setupIntent), "shipping_options": []any{}, "status": cs.status, "submit_type": nil, "subscription": sub,
		"success_url": null(cs.successURL), "ui_mode": cs.uiMode, "url": url,
		"total_details": map[string]any{"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
	}
	if cs.mode == "setup" { // no amounts in setup mode
		o["amount_subtotal"], o["amount_total"] = nil, nil
	}
	if cs.returnURL != "" { // Stripe omits the key without one
		o["return_url"] = cs.returnURL
	}
	if expand["line_items"] {
		items := make([]any, 0, len(cs.items))
		for _, it := range cs.items {
			items = append(items, s.lineItemObj(it))
		}
		o["line_items"] = httpapi.List("/v1/checkout/sessions/"+cs.id+"/line_items", items)
	}
	return o
}

func pmCollection(cs *session) string {
	if cs.pmIfRequired {
		return "if_required"
	}
	return "always"
}

// sessionItem is one of a Checkout Session's line items.
type sessionItem struct {
	id, priceID string
	quantity    int64
}

// sessionCurrency is a session's currency (its prices'; usd for setup).
func (s *Stripe) sessionCurrency(cs *session) any {
	if len(cs.items) == 0 {
		return nil
	}
	return s.currency(cs.items[0].priceID)
}

// lineItemObj renders a session's line item.
func (s *Stripe) lineItemObj(it sessionItem) map[string]any {
	p := s.prices[it.priceID]
	return map[string]any{
		"id": it.id, "object": "item", "amount_discount": 0, "amount_subtotal": p.unitAmount * it.quantity,
		"amount_tax": 0, "amount_total": p.unitAmount * it.quantity, "currency": p.currency,
		"description": s.productName(p), "discounts": []any{}, "price": s.priceObj(p),
		"quantity": it.quantity, "taxes": []any{},
	}
}

func (s *Stripe) portalObj(p *portalSession) map[string]any {
	return map[string]any{
		"id": p.id, "object": "billing_portal.session", "configuration": p.configuration,
		"created": p.created, "customer": p.customer, "flow": nil, "livemode": false, "locale": null(p.locale),
		"on_behalf_of": nil, "return_url": null(p.returnURL), "url": s.URL() + "/portal/" + p.id,
	}
}
