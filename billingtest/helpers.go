package billingtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/gobilling/billing/billingtest/internal/httpapi"

	"github.com/gobilling/billing/billingtest/internal/delivery"
)

// Signed-event builders for tests that call a webhook handler directly.

// Sign returns the Stripe-Signature header Stripe would send with payload
// for an endpoint with the given secret: "t=<unix>,v1=<hex HMAC-SHA256>",
// timestamped with the real current time, which is what stripe-go checks
// the signature's age against (whatever the simulated clock says).
func Sign(secret string, payload []byte) string { return delivery.Sign(secret, payload) }

// SignedRequest returns a webhook delivery request as Stripe would send it
// for an endpoint with the given secret, for passing to a handler's
// ServeHTTP: POST / with payload as the body, Content-Type JSON, Stripe's
// User-Agent and a Stripe-Signature header made by [Sign].
func SignedRequest(secret string, payload []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(payload))
	delivery.SetHeaders(r, secret, payload)
	return r
}

// NewEvent builds an event of the given type around object, in the
// envelope the simulator uses (API version [APIVersion], livemode false,
// no request, created = [Stripe.Now]) with a fresh evt_ ID. object is
// marshalled to JSON, or used as is if it is a []byte or
// [json.RawMessage]; it must be a JSON object. The event is not recorded
// and not delivered: sign its JSON with [Sign] or [SignedRequest]. It
// panics if object is not a JSON object.
func (s *Stripe) NewEvent(typ string, object any) Event {
	var raw []byte
	switch o := object.(type) {
	case []byte:
		raw = o
	case json.RawMessage:
		raw = o
	default:
		var err error
		if raw, err = json.Marshal(object); err != nil {
			panic("billingtest: NewEvent: " + err.Error())
		}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		panic(fmt.Sprintf("billingtest: NewEvent: the object is not a JSON object: %.80s", raw))
	}
	id, created := httpapi.NewID("evt_", 24), s.Now().Unix()
	out, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": APIVersion, "created": created,
		"data": map[string]any{"object": obj}, "livemode": false, "pending_webhooks": 1, "type": typ,
		"request": map[string]any{"id": nil, "idempotency_key": nil},
	})
	if err != nil {
		panic("billingtest: NewEvent: " + err.Error())
	}
	return Event{ID: id, Type: typ, Created: created, JSON: out}
}
