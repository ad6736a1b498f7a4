package billing

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// This file is what billing reads of Stripe's JSON: narrow structs with
// only the fields it uses, decoded once. Events arrive as bytes (verified
// with webhook.ValidatePayload, which decodes nothing); objects fetched
// through stripe-go are read from the response's raw JSON with the same
// structs, so payloads and fetches go through one decoder. Decoding into
// stripe-go's full types cost more than verifying the signature.

// wireEvent is an event, decoded in one pass: the envelope and its
// data.object, into the union of what billing reads of subscriptions,
// invoices and Checkout Sessions (their field names do not clash).
type wireEvent struct {
	wireHead
	Data struct {
		Object *wireObject `json:"object"`
		// PreviousAttributes holds what billing reads of the fields an
		// update changed.
		PreviousAttributes struct {
			Status *string `json:"status"`
		} `json:"previous_attributes"`
	} `json:"data"`

	// objectErr is why data.object could not be decoded (a field of
	// another type than Stripe's, say): the envelope was decoded alone.
	objectErr error
}

// wireHead is an event's envelope but its data.
type wireHead struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Created    int64  `json:"created"`
	Livemode   bool   `json:"livemode"`
	APIVersion string `json:"api_version"`
}

// decodeEvent decodes a verified event. When only its object is
// malformed, the envelope is still returned, with objectErr set, so that
// the event is parked rather than refused: it is Stripe's.
func decodeEvent(body []byte, ev *wireEvent) error {
	err := json.Unmarshal(body, ev)
	if err == nil {
		return nil
	}
	var env struct {
		wireHead
		Data struct {
			Object json.RawMessage `json:"object"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &env) != nil {
		return err
	}
	*ev = wireEvent{wireHead: env.wireHead, objectErr: err}
	if len(env.Data.Object) > 0 && !bytes.Equal(env.Data.Object, []byte("null")) {
		// Its ID still serves an event of another API version, whose
		// object is fetched anew.
		var id struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(env.Data.Object, &id)
		ev.Data.Object = &wireObject{ID: id.ID}
	}
	return nil
}

// hasObject reports whether the event carries a data.object.
func (e *wireEvent) hasObject() bool { return e.Data.Object != nil }

// ref is an expandable field: an ID, or an object with an ID, or null.
type ref string

// UnmarshalJSON reads an ID or an expanded object's id.
func (r *ref) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '"':
		s, err := strconv.Unquote(string(b))
		if err != nil {
			var v string
			if err := json.Unmarshal(b, &v); err != nil {
				return err
			}
			s = v
		}
		*r = ref(s)
	case len(b) > 0 && b[0] == '{':
		var o struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*r = ref(o.ID)
	default:
		*r = ""
	}
	return nil
}

// wireObject is what billing reads of a subscription, an invoice or a
// Checkout Session, in basil's layout: the union of their fields, so that
// an event decodes in one pass whatever its type.
type wireObject struct {
	ID       string            `json:"id"`
	Customer ref               `json:"customer"`
	Status   string            `json:"status"`
	Created  int64             `json:"created"`
	Metadata map[string]string `json:"metadata"`

	// A subscription's (its periods are on the items).
	CancelAtPeriodEnd bool  `json:"cancel_at_period_end"`
	CancelAt          int64 `json:"cancel_at"`
	CanceledAt        int64 `json:"canceled_at"`
	EndedAt           int64 `json:"ended_at"`
	TrialStart        int64 `json:"trial_start"`
	TrialEnd          int64 `json:"trial_end"`
	// LatestInvoice is an ID, or the invoice when expanded.
	LatestInvoice wireInvoiceRef `json:"latest_invoice"`
	Items         struct {
		Data []*struct {
			Quantity           int64 `json:"quantity"`
			CurrentPeriodStart int64 `json:"current_period_start"`
			CurrentPeriodEnd   int64 `json:"current_period_end"`
			Price              ref   `json:"price"`
		} `json:"data"`
	} `json:"items"`

	// An invoice's (its subscription is under parent).
	AttemptCount       int64  `json:"attempt_count"`
	BillingReason      string `json:"billing_reason"`
	NextPaymentAttempt int64  `json:"next_payment_attempt"`
	Parent             *struct {
		SubscriptionDetails *struct {
			Subscription ref `json:"subscription"`
		} `json:"subscription_details"`
	} `json:"parent"`
	Lines *struct {
		Data []*struct {
			Parent *struct {
				SubscriptionItemDetails *struct {
					Subscription string `json:"subscription"`
				} `json:"subscription_item_details"`
			} `json:"parent"`
		} `json:"data"`
	} `json:"lines"`

	// A charge's and a dispute's (a Checkout Session's payment_intent too).
	PaymentIntent  ref    `json:"payment_intent"`
	Amount         int64  `json:"amount"`
	AmountRefunded int64  `json:"amount_refunded"`
	Charge         ref    `json:"charge"`
	Reason         string `json:"reason"`

	// A Checkout Session's.
	ClientReferenceID string `json:"client_reference_id"`
	Mode              string `json:"mode"`
	PaymentStatus     string `json:"payment_status"`
	AmountTotal       int64  `json:"amount_total"`
	Currency          string `json:"currency"`
	// Subscription is an ID, or the subscription when expanded.
	Subscription wireSubscriptionRef `json:"subscription"`
	// LineItems is nil unless expanded.
	LineItems *struct {
		Data []*struct {
			Quantity int64 `json:"quantity"`
			Price    ref   `json:"price"`
		} `json:"data"`
	} `json:"line_items"`
}

// The kinds of object billing reads, for the reader.
type (
	wireSubscription = wireObject
	wireInvoice      = wireObject
	wireSession      = wireObject
)

// wireInvoiceRef is an invoice's ID, with the invoice when it was
// expanded.
type wireInvoiceRef struct {
	ID       string
	Expanded *wireInvoice
}

// UnmarshalJSON reads an ID, or an expanded invoice.
func (r *wireInvoiceRef) UnmarshalJSON(b []byte) error {
	*r = wireInvoiceRef{}
	switch {
	case len(b) > 0 && b[0] == '{':
		var inv wireInvoice
		if err := json.Unmarshal(b, &inv); err != nil {
			return err
		}
		r.ID, r.Expanded = inv.ID, &inv
		return nil
	default:
		var id ref
		if err := id.UnmarshalJSON(b); err != nil {
			return err
		}
		r.ID = string(id)
		return nil
	}
}

// wireSubscriptionRef is a subscription's ID, with the subscription when
// it was expanded.
type wireSubscriptionRef struct {
	ID       string
	Expanded *wireSubscription
}

// UnmarshalJSON reads an ID, or an expanded subscription.
func (r *wireSubscriptionRef) UnmarshalJSON(b []byte) error {
	*r = wireSubscriptionRef{}
	if len(b) > 0 && b[0] == '{' {
		var s wireSubscription
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		r.ID, r.Expanded = s.ID, &s
		return nil
	}
	var id ref
	if err := id.UnmarshalJSON(b); err != nil {
		return err
	}
	r.ID = string(id)
	return nil
}
