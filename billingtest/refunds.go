package billingtest

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gobilling/billing/billingtest/internal/httpapi"
)

// Refunds and disputes: a refund through the API (POST /v1/refunds), and a
// dispute that Stripe's test card 4000 0000 0000 0259 opens at once and
// that evidence closes, won or lost, as in Stripe's test mode.

type refund struct {
	id, charge, pi, currency, reason string
	amount, created                  int64
	metadata                         map[string]string
}

type dispute struct {
	id, charge, pi, currency, status string
	amount, created                  int64
	metadata                         map[string]string
	evidence                         map[string]string // by field; absent is null
	submissions                      int64
}

func (s *Stripe) refundObj(r *refund) map[string]any {
	return map[string]any{
		"id": r.id, "object": "refund", "amount": r.amount, "balance_transaction": nil, "charge": r.charge,
		"created": r.created, "currency": r.currency,
		"destination_details": map[string]any{"type": "card",
			"card": map[string]any{"reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"}},
		"metadata": meta(r.metadata), "payment_intent": null(r.pi), "reason": null(r.reason), "receipt_number": nil,
		"source_transfer_reversal": nil, "status": "succeeded", "transfer_reversal": nil,
	}
}

func (s *Stripe) disputeObj(d *dispute) map[string]any {
	evidence := map[string]any{"enhanced_evidence": map[string]any{}}
	for _, k := range evidenceFields {
		evidence[k] = null(d.evidence[k])
	}
	return map[string]any{
		"id": d.id, "object": "dispute", "amount": d.amount, "balance_transactions": []any{}, "charge": d.charge,
		"created": d.created, "currency": d.currency, "enhanced_eligibility_types": []any{},
		"evidence": evidence,
		"evidence_details": map[string]any{"due_by": d.created + 7*86400, "enhanced_eligibility": map[string]any{},
			"has_evidence": len(d.evidence) > 0, "past_due": false, "submission_count": d.submissions},
		"is_charge_refundable": false, "livemode": false, "metadata": meta(d.metadata), "payment_intent": null(d.pi),
		"payment_method_details": map[string]any{"type": "card",
			"card": map[string]any{"brand": "visa", "case_type": "chargeback", "network_reason_code": "10.4"}},
		"reason": "fraudulent", "status": d.status,
	}
}

// refunded is the amount refunded of a charge.
func (s *Stripe) refunded(chargeID string) int64 {
	var n int64
	for _, r := range s.refunds {
		if r.charge == chargeID {
			n += r.amount
		}
	}
	return n
}

// createRefund answers POST /v1/refunds: a refund of a succeeded charge
// (given, or the PaymentIntent's latest), all that is left or amount; it
// succeeds at once: refund.created, then charge.refunded.
func (s *Stripe) createRefund(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, "charge", "payment_intent", "amount", "reason", "metadata", "metadata[*]"); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(f); err != nil {
		return 0, err
	}
	chID, piID := f.Get("charge"), f.Get("payment_intent")
	switch {
	case chID != "" && piID != "":
		return 0, httpapi.Exclusive("charge", "payment_intent")
	case piID != "":
		pi := s.pis[piID]
		if pi == nil {
			return 0, httpapi.NoSuch(400, "payment_intent", piID, "payment_intent")
		}
		if pi.status != "succeeded" {
			return 0, httpapi.Invalid("payment_intent", "This PaymentIntent ("+piID+") does not have a successful charge to refund.")
		}
		chID = pi.latestCharge
	case chID == "":
		return 0, httpapi.Missing("charge")
	}
	ch := s.charges[chID]
	if ch == nil {
		return 0, httpapi.NoSuch(400, "charge", chID, "charge")
	}
	if ch.status != "succeeded" {
		return 0, httpapi.Invalid("charge", "Charge "+chID+" has not succeeded: it cannot be refunded.")
	}
	if s.disputedCharge(ch.id) {
		return 0, &httpapi.Error{Status: 400, Type: "invalid_request_error", Code: "charge_disputed",
			Message: "Charge " + ch.id + " has been charged back; cannot issue a refund."}
	}
	left := ch.amount - s.refunded(ch.id)
	amount, has, err := httpapi.IntParam(f, "amount")
	if err != nil {
		return 0, err
	}
	if !has {
		amount = left
	}
	switch {
	case left == 0:
		return 0, &httpapi.Error{Status: 400, Type: "invalid_request_error", Code: "charge_already_refunded",
			Message: "Charge " + ch.id + " has already been refunded."}
	case amount < 1:
		return 0, httpapi.InvalidInteger("amount", "This value must be greater than or equal to 1.")
	case amount > left:
		return 0, httpapi.Invalid("amount", "Refund amount ("+money(ch.currency, amount)+") is greater than unrefunded amount on charge ("+money(ch.currency, left)+")")
	}
	reason, err := httpapi.EnumParam(f, "reason", "duplicate", "fraudulent", "requested_by_customer")
	if err != nil {
		return 0, err
	}
	md, _, err := httpapi.MetadataParam(f, "metadata")
	if err != nil {
		return 0, err
	}
	st := s.step(true)
	before := s.chargeObj(ch)
	re := &refund{id: httpapi.NewID("re_", 24), charge: ch.id, pi: ch.pi, currency: ch.currency, reason: reason,
		amount: amount, created: st.t, metadata: httpapi.ApplyMetadata(nil, md, false)}
	s.refunds = append(s.refunds, re)
	st.emit("refund.created", s.refundObj(re), nil)
	after := s.chargeObj(ch)
	st.emit("charge.refunded", after, changed(before, after))
	return 200, s.refundObj(re)
}

// money writes an amount in minor units as Stripe's messages do: 12.50.
// money writes an amount in a currency's smallest unit as Stripe's error
// messages do: "$50.01", "€9.00", "¥500", "CHF 12.50".
func money(currency string, amount int64) string {
	sym, ok := map[string]string{"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "inr": "₹"}[currency]
	if !ok {
		sym = strings.ToUpper(currency) + " "
	}
	if zeroDecimal[currency] {
		return fmt.Sprintf("%s%d", sym, amount)
	}
	if threeDecimal[currency] {
		return fmt.Sprintf("%s%d.%03d", sym, amount/1000, amount%1000)
	}
	return fmt.Sprintf("%s%d.%02d", sym, amount/100, amount%100)
}

// threeDecimal are the currencies Stripe counts in thousandths.
var threeDecimal = map[string]bool{"bhd": true, "jod": true, "kwd": true, "omr": true, "tnd": true}

// zeroDecimal are the currencies Stripe counts in whole units.
var zeroDecimal = map[string]bool{"bif": true, "clp": true, "djf": true, "gnf": true, "jpy": true, "kmf": true,
	"krw": true, "mga": true, "pyg": true, "rwf": true, "ugx": true, "vnd": true, "vuv": true, "xaf": true,
	"xof": true, "xpf": true}

func (s *Stripe) getRefund(r *http.Request) (int, any) {
	return s.getOne(r, "refund", func(id string) map[string]any {
		for _, re := range s.refunds {
			if re.id == id {
				return s.refundObj(re)
			}
		}
		return nil
	})
}

// openDispute opens the dispute Stripe's test card 0259 brings on a
// succeeded charge: charge.dispute.created (needs_response).
func (st *step) openDispute(ch *charge) {
	s := st.s
	d := &dispute{id: httpapi.NewID("dp_", 24), charge: ch.id, pi: ch.pi, currency: ch.currency,
		status: "needs_response", amount: ch.amount, created: st.t}
	s.disputes[d.id] = d
	s.dispOrder = append(s.dispOrder, d.id)
	st.emit("charge.dispute.created", s.disputeObj(d), nil)
}

func (s *Stripe) getDispute(r *http.Request) (int, any) {
	return s.getOne(r, "dispute", func(id string) map[string]any {
		if d := s.disputes[id]; d != nil {
			return s.disputeObj(d)
		}
		return nil
	})
}

// updateDispute answers POST /v1/disputes/{id}: evidence, kept field by
// field ("" removes one) and submitted at once with what was staged
// (submit, default true; submit=false stages it). As in Stripe's test mode,
// evidence[uncategorized_text]=winning_evidence closes it won and
// losing_evidence lost (charge.dispute.updated, then
// charge.dispute.closed); other evidence leaves it under review.
func (s *Stripe) updateDispute(r *http.Request) (int, any) {
	f := r.Form
	patterns := []string{"submit", "metadata", "metadata[*]"}
	for _, k := range evidenceFields {
		patterns = append(patterns, "evidence["+k+"]")
	}
	if err := httpapi.CheckParams(f, patterns...); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(f); err != nil {
		return 0, err
	}
	id := r.PathValue("id")
	d := s.disputes[id]
	if d == nil {
		return 0, httpapi.NoSuch(404, "dispute", id, "id")
	}
	if d.status == "won" || d.status == "lost" {
		return 0, httpapi.BadRequest("This dispute is already closed.")
	}
	submit, hasSubmit, err := httpapi.BoolParam(f, "submit")
	if err != nil {
		return 0, err
	}
	md, clearMD, err := httpapi.MetadataParam(f, "metadata")
	if err != nil {
		return 0, err
	}
	st := s.step(true)
	before := s.disputeObj(d)
	sent := false
	for _, k := range evidenceFields {
		if !f.Has("evidence[" + k + "]") {
			continue
		}
		sent = true
		if v := f.Get("evidence[" + k + "]"); v != "" {
			if d.evidence == nil {
				d.evidence = map[string]string{}
			}
			d.evidence[k] = v
		} else {
			delete(d.evidence, k)
		}
	}
	if md != nil || clearMD {
		d.metadata = httpapi.ApplyMetadata(d.metadata, md, clearMD)
	}
	closed := false
	// Evidence sent is submitted with what was staged before, unless
	// submit=false stages it; submit=true alone submits what is staged.
	if (submit || !hasSubmit) && (sent || hasSubmit) && len(d.evidence) > 0 {
		d.submissions++
		switch d.evidence["uncategorized_text"] {
		case "winning_evidence":
			d.status, closed = "won", true
		case "losing_evidence":
			d.status, closed = "lost", true
		default:
			d.status = "under_review"
		}
	}
	after := s.disputeObj(d)
	if prev := changed(before, after); len(prev) > 0 {
		st.emit("charge.dispute.updated", after, prev)
	}
	if closed {
		st.emit("charge.dispute.closed", after, nil)
	}
	return 200, after
}

// disputedCharge reports whether a charge has a dispute.
func (s *Stripe) disputedCharge(chargeID string) bool {
	for _, d := range s.disputes {
		if d.charge == chargeID {
			return true
		}
	}
	return false
}

// evidenceFields are the text fields of a dispute's evidence Stripe
// accepts; billingtest keeps uncategorized_text, which decides the outcome
// in test mode, and takes the others without keeping them.
var evidenceFields = []string{"access_activity_log", "billing_address", "cancellation_policy", "cancellation_policy_disclosure", "cancellation_rebuttal", "customer_communication", "customer_email_address", "customer_name", "customer_purchase_ip", "customer_signature", "duplicate_charge_documentation", "duplicate_charge_explanation", "duplicate_charge_id", "product_description", "receipt", "refund_policy", "refund_policy_disclosure", "refund_refusal_explanation", "service_date", "service_documentation", "shipping_address", "shipping_carrier", "shipping_date", "shipping_documentation", "shipping_tracking_number", "uncategorized_file", "uncategorized_text"}

// listRefunds answers GET /v1/refunds: newest first, by charge or
// PaymentIntent.
func (s *Stripe) listRefunds(r *http.Request) (int, any) {
	order := make([]string, len(s.refunds))
	byID := map[string]*refund{}
	for i, re := range s.refunds {
		order[i], byID[re.id] = re.id, re
	}
	return s.listByPayment(r, "/v1/refunds", "refund", order,
		func(id string) (string, string, int64) { re := byID[id]; return re.charge, re.pi, re.created },
		func(id string) any { return s.refundObj(byID[id]) })
}

// listDisputes answers GET /v1/disputes: newest first, by charge or
// PaymentIntent.
func (s *Stripe) listDisputes(r *http.Request) (int, any) {
	return s.listByPayment(r, "/v1/disputes", "dispute", s.dispOrder,
		func(id string) (string, string, int64) { d := s.disputes[id]; return d.charge, d.pi, d.created },
		func(id string) any { return s.disputeObj(s.disputes[id]) })
}

// listByPayment is a list of objects of a payment, filtered by charge and
// payment_intent.
func (s *Stripe) listByPayment(r *http.Request, url, kind string, order []string,
	of func(id string) (charge, pi string, created int64), render func(id string) any) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, httpapi.WithList("charge", "payment_intent")...); err != nil {
		return 0, err
	}
	if _, err := httpapi.ListExpand(f); err != nil {
		return 0, err
	}
	ch, pi := f.Get("charge"), f.Get("payment_intent")
	all := httpapi.NewestFirst(order, func(id string) int64 { _, _, c := of(id); return c }, render)
	l, err := httpapi.ListPage(f, url, kind, all, func(e httpapi.Entry) bool {
		c, p, _ := of(e.ID)
		return (ch == "" || c == ch) && (pi == "" || p == pi)
	})
	if err != nil {
		return 0, err
	}
	return 200, l
}
