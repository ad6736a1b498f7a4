package billingtest

import (
	"net/http"
	"strings"

	"github.com/gobilling/billing/billingtest/internal/httpapi"
)

// Payments: the PaymentMethods, PaymentIntents and Charges behind
// Checkout and invoices, and the events apps listen to for them.

// paymentMethod is a saved test card.
type paymentMethod struct {
	id, customer string
	card         testCard
	created      int64
}

// paymentIntent is one payment: an invoice's (every attempt retries it) or
// a one-time Checkout's.
type paymentIntent struct {
	id, customer, currency, status string
	paymentMethod, latestCharge    string
	description                    string
	amount, amountReceived         int64
	created                        int64
	lastError                      *paymentError
}

// paymentError is a PaymentIntent's last_payment_error.
type paymentError struct {
	code, declineCode, message string
}

// charge is one attempt to move money.
type charge struct {
	id, pi, customer, currency, status, paymentMethod string
	amount, created                                   int64
	failure                                           *paymentError
	bankDebit                                         bool
}

// chargeOutcome is what charging a saved payment method does.
type chargeOutcome int

const (
	chargeOK          chargeOutcome = iota
	chargeDeclined                  // the card is declined
	chargeAction                    // the bank asks the customer to authenticate
	chargeNoMethod                  // there is no payment method to charge
	chargeHardDecline               // declined for good (a lost card): not retried
)

// cardBrands are the brand and last four digits of each test card.
func cardDetails(c testCard) (brand, last4 string) {
	switch c {
	case cardDeclined:
		return "visa", "9995"
	case cardChargeFails:
		return "visa", "0341"
	case cardNeedsAuth:
		return "visa", "3155"
	case cardAlwaysAuth:
		return "visa", "3184"
	case cardLost:
		return "visa", "9987"
	}
	return "visa", "4242"
}

// outcome is what an off-session charge of the customer's saved card
// does: [CardChargeFails] is declined, [CardAlwaysAuthenticate] needs the
// customer, any other card (or none recorded) succeeds.
func (c *customer) outcome() chargeOutcome {
	switch {
	case c == nil:
		return chargeOK
	case c.card == cardChargeFails:
		return chargeDeclined
	case c.card == cardAlwaysAuth:
		return chargeAction
	case c.card == cardLost:
		return chargeHardDecline
	}
	return chargeOK
}

// attachCard saves a test card as a PaymentMethod of the customer:
// payment_method.attached. The customer's card is then that card.
func (st *step) attachCard(c *customer, card testCard) *paymentMethod {
	s := st.s
	pm := &paymentMethod{id: httpapi.NewID("pm_", 24), customer: c.id, card: card, created: st.t}
	s.pms[pm.id] = pm
	c.card = card
	st.emit("payment_method.attached", s.paymentMethodObj(pm), nil)
	return pm
}

// newPaymentIntent creates a PaymentIntent (with the given ID, or a new
// one): payment_intent.created.
func (st *step) newPaymentIntent(id, customer, currency, pm, description string, amount int64) *paymentIntent {
	s := st.s
	if id == "" {
		id = httpapi.NewID("pi_", 24)
	}
	pi := &paymentIntent{id: id, customer: customer, currency: currency, paymentMethod: pm,
		description: description, amount: amount, created: st.t, status: "requires_confirmation"}
	if pm == "" {
		pi.status = "requires_payment_method"
	}
	s.pis[pi.id] = pi
	st.emit("payment_intent.created", s.paymentIntentObj(pi), nil)
	return pi
}

// processing marks a PaymentIntent paid by bank debit as processing:
// payment_intent.processing.
func (st *step) processing(pi *paymentIntent) {
	pi.status = "processing"
	st.emit("payment_intent.processing", st.s.paymentIntentObj(pi), nil)
}

// chargeIntent attempts a PaymentIntent's payment with the given outcome:
// a Charge (charge.succeeded or charge.failed) and the PaymentIntent's new
// status (payment_intent.succeeded, payment_intent.payment_failed), or,
// when the bank asks for authentication, no charge and
// payment_intent.requires_action.
func (st *step) chargeIntent(pi *paymentIntent, outcome chargeOutcome, bankDebit bool) {
	s := st.s
	switch outcome {
	case chargeAction:
		pi.status = "requires_action"
		pi.lastError = nil
		st.emit("payment_intent.requires_action", s.paymentIntentObj(pi), nil)
		return
	case chargeNoMethod:
		pi.status = "requires_payment_method"
		pi.lastError = &paymentError{code: "payment_intent_unexpected_state",
			message: "The PaymentIntent has no payment method to charge."}
		st.emit("payment_intent.payment_failed", s.paymentIntentObj(pi), nil)
		return
	}
	ch := &charge{id: httpapi.NewID("ch_", 24), pi: pi.id, customer: pi.customer, currency: pi.currency,
		paymentMethod: pi.paymentMethod, amount: pi.amount, created: st.t, bankDebit: bankDebit, status: "succeeded"}
	if outcome == chargeDeclined || outcome == chargeHardDecline {
		ch.status = "failed"
		ch.failure = &paymentError{code: "card_declined", declineCode: "generic_decline", message: "Your card was declined."}
		if outcome == chargeHardDecline {
			ch.failure.declineCode = "lost_card"
		}
		if bankDebit {
			ch.failure = &paymentError{code: "insufficient_funds",
				message: "The customer's account has insufficient funds to cover this payment."}
		}
	}
	s.charges[ch.id] = ch
	pi.latestCharge = ch.id
	if ch.status == "succeeded" {
		pi.status, pi.amountReceived, pi.lastError = "succeeded", pi.amount, nil
		st.emit("charge.succeeded", s.chargeObj(ch), nil)
		st.emit("payment_intent.succeeded", s.paymentIntentObj(pi), nil)
		if pm := s.pms[pi.paymentMethod]; pm != nil && pm.card == cardDisputed {
			st.openDispute(ch)
		}
		return
	}
	pi.status, pi.lastError = "requires_payment_method", ch.failure
	st.emit("charge.failed", s.chargeObj(ch), nil)
	st.emit("payment_intent.payment_failed", s.paymentIntentObj(pi), nil)
}

func billingDetails(c *customer) map[string]any {
	d := map[string]any{"address": nil, "email": nil, "name": nil, "phone": nil, "tax_id": nil}
	if c != nil {
		d["email"], d["name"] = null(c.email), null(c.name)
	}
	return d
}

func (s *Stripe) paymentMethodObj(pm *paymentMethod) map[string]any {
	brand, last4 := cardDetails(pm.card)
	return map[string]any{
		"id": pm.id, "object": "payment_method", "allow_redisplay": "unspecified",
		"billing_details": billingDetails(s.customers[pm.customer]),
		"card": map[string]any{
			"brand": brand, "checks": map[string]any{"address_line1_check": nil, "address_postal_code_check": nil,
				"cvc_check": "pass"},
			"country": "US", "display_brand": brand, "exp_month": 12, "exp_year": 2034, "fingerprint": nil,
			"funding": "credit", "generated_from": nil, "last4": last4,
			"networks":             map[string]any{"available": []string{brand}, "preferred": nil},
			"regulated_status":     "unregulated",
			"three_d_secure_usage": map[string]any{"supported": true},
			"wallet":               nil,
		},
		"created": pm.created, "customer": null(pm.customer), "livemode": false, "metadata": map[string]string{},
		"type": "card",
	}
}

func (s *Stripe) paymentIntentObj(pi *paymentIntent) map[string]any {
	var lastErr any
	if e := pi.lastError; e != nil {
		le := map[string]any{"code": e.code, "message": e.message, "type": "card_error", "charge": null(pi.latestCharge)}
		if e.declineCode != "" { // absent, not null, without one
			le["decline_code"] = e.declineCode
		}
		lastErr = le
	}
	var next any
	if pi.status == "requires_action" {
		next = map[string]any{"type": "use_stripe_sdk", "use_stripe_sdk": map[string]any{}}
	}
	return map[string]any{
		"id": pi.id, "object": "payment_intent", "amount": pi.amount, "amount_capturable": 0,
		"amount_received": pi.amountReceived, "application": nil, "application_fee_amount": nil,
		"automatic_payment_methods": nil, "canceled_at": nil, "cancellation_reason": nil,
		"capture_method": "automatic_async", "client_secret": pi.id + "_secret_" + strings.ToLower(pi.id[3:11]),
		"confirmation_method": "automatic", "created": pi.created, "currency": pi.currency,
		"customer": null(pi.customer), "description": null(pi.description), "last_payment_error": lastErr,
		"latest_charge": null(pi.latestCharge), "livemode": false, "metadata": map[string]string{},
		"next_action": next, "on_behalf_of": nil, "payment_method": null(pi.paymentMethod),
		"payment_method_configuration_details": nil, "payment_method_options": nil,
		"payment_method_types": []string{"card"}, "processing": nil, "receipt_email": nil, "review": nil,
		"setup_future_usage": nil, "shipping": nil, "statement_descriptor": nil,
		"statement_descriptor_suffix": nil, "status": pi.status, "transfer_data": nil, "transfer_group": nil,
	}
}

func (s *Stripe) chargeObj(ch *charge) map[string]any {
	var code, msg, outcome any
	o := map[string]any{"network_status": "approved_by_network", "reason": nil, "risk_level": "normal",
		"seller_message": "Payment complete.", "type": "authorized"}
	if f := ch.failure; f != nil {
		code, msg = f.code, f.message
		o = map[string]any{"network_status": "declined_by_network", "reason": null(f.declineCode),
			"risk_level": "normal", "seller_message": "The bank did not return any further details with this decline.",
			"type": "issuer_declined"}
	}
	outcome = o
	details := map[string]any{"type": "card"}
	if ch.bankDebit {
		details = map[string]any{"type": "sepa_debit"}
	}
	paid := ch.status == "succeeded"
	var captured int64
	if paid {
		captured = ch.amount
	}
	refunded := s.refunded(ch.id)
	return map[string]any{
		"id": ch.id, "object": "charge", "amount": ch.amount, "amount_captured": captured, "amount_refunded": refunded,
		"application": nil, "application_fee": nil, "application_fee_amount": nil, "balance_transaction": nil,
		"billing_details": billingDetails(s.customers[ch.customer]), "calculated_statement_descriptor": "BILLINGTEST",
		"captured": paid, "created": ch.created, "currency": ch.currency, "customer": null(ch.customer),
		"description": nil, "failure_balance_transaction": nil, "failure_code": code,
		"failure_message": msg, "fraud_details": map[string]any{}, "livemode": false, "metadata": map[string]string{},
		"on_behalf_of": nil, "outcome": outcome, "paid": paid, "payment_intent": ch.pi,
		"payment_method": null(ch.paymentMethod), "payment_method_details": details, "receipt_email": nil,
		"receipt_number": nil, "receipt_url": nil, "refunded": refunded > 0 && refunded == ch.amount, "review": nil,
		"shipping": nil, "disputed": s.disputedCharge(ch.id),
		"source_transfer": nil, "statement_descriptor": nil, "statement_descriptor_suffix": nil,
		"status": ch.status, "transfer_data": nil, "transfer_group": nil,
	}
}

func (s *Stripe) getPaymentIntent(r *http.Request) (int, any) {
	return s.getOne(r, "payment_intent", func(id string) map[string]any {
		if pi := s.pis[id]; pi != nil {
			return s.paymentIntentObj(pi)
		}
		return nil
	})
}

func (s *Stripe) getCharge(r *http.Request) (int, any) {
	return s.getOne(r, "charge", func(id string) map[string]any {
		if ch := s.charges[id]; ch != nil {
			return s.chargeObj(ch)
		}
		return nil
	})
}

func (s *Stripe) getPaymentMethod(r *http.Request) (int, any) {
	return s.getOne(r, "PaymentMethod", func(id string) map[string]any {
		if pm := s.pms[id]; pm != nil {
			return s.paymentMethodObj(pm)
		}
		return nil
	})
}

// getOne answers GET of an object by the ID in its path: no parameters but
// expand (none expandable), 404 for an unknown ID.
func (s *Stripe) getOne(r *http.Request, kind string, find func(id string) map[string]any) (int, any) {
	if err := httpapi.CheckParams(r.Form); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(r.Form); err != nil {
		return 0, err
	}
	id := r.PathValue("id")
	o := find(id)
	if o == nil {
		return 0, httpapi.NoSuch(404, kind, id, "id")
	}
	return 200, o
}
