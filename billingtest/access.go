package billingtest

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"

	"github.com/stripe/stripe-go/v82"
)

// Accessors for tests: the fake's current state, as Stripe JSON or decoded
// with stripe-go.

// Events returns every event emitted so far, oldest first.
func (s *Stripe) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, len(s.events))
	for i, e := range s.events {
		e.JSON = slices.Clone(e.JSON)
		out[i] = e
	}
	return out
}

// Object returns the current JSON of the object with the given ID (a
// customer, product, price, Checkout Session, portal session, subscription,
// invoice or event; nothing expanded), or nil if the fake has no such
// object. Events are returned however old they are.
func (s *Stripe) Object(id string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireDueSessions()
	var obj any
	switch {
	case s.prices[id] != nil:
		obj = s.priceObj(s.prices[id])
	case strings.HasPrefix(id, "prod_") && s.products[id] != nil:
		obj = s.productObj(s.products[id])
	case strings.HasPrefix(id, "cus_") && s.customers[id] != nil:
		obj = s.customerObj(s.customers[id])
	case strings.HasPrefix(id, "cs_") && s.sessions[id] != nil:
		obj = s.sessionObj(s.sessions[id], nil)
	case strings.HasPrefix(id, "bps_") && s.portals[id] != nil:
		obj = s.portalObj(s.portals[id])
	case strings.HasPrefix(id, "sub_") && s.subs[id] != nil:
		obj = s.subObj(s.subs[id], false)
	case strings.HasPrefix(id, "in_") && s.invoices[id] != nil:
		obj = s.invoiceObj(s.invoices[id])
	case strings.HasPrefix(id, "evt_"):
		if i, ok := s.eventIndex[id]; ok {
			return slices.Clone(s.events[i].JSON)
		}
		return nil
	default:
		return nil
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		panic(err)
	}
	return raw
}

// decode decodes Object(id) into a new T, or returns nil, also when the ID
// is of another kind of object than kind (the "object" value T decodes).
func decode[T any](s *Stripe, id string) *T {
	raw := s.Object(id)
	if raw == nil {
		return nil
	}
	var head struct {
		Object string `json:"object"`
	}
	if err := json.Unmarshal(raw, &head); err != nil || head.Object != objectKinds[reflect.TypeFor[T]()] {
		return nil
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		panic("billingtest: " + err.Error())
	}
	return v
}

// objectKinds are the "object" values of the types decode makes.
var objectKinds = map[reflect.Type]string{
	reflect.TypeFor[stripe.Product]():              "product",
	reflect.TypeFor[stripe.Price]():                "price",
	reflect.TypeFor[stripe.Customer]():             "customer",
	reflect.TypeFor[stripe.CheckoutSession]():      "checkout.session",
	reflect.TypeFor[stripe.Subscription]():         "subscription",
	reflect.TypeFor[stripe.Invoice]():              "invoice",
	reflect.TypeFor[stripe.BillingPortalSession](): "billing_portal.session",
}

// Product returns the product decoded with stripe-go, or nil.
func (s *Stripe) Product(id string) *stripe.Product { return decode[stripe.Product](s, id) }

// Price returns the price decoded with stripe-go, or nil.
func (s *Stripe) Price(id string) *stripe.Price { return decode[stripe.Price](s, id) }

// Customer returns the customer decoded with stripe-go, or nil.
func (s *Stripe) Customer(id string) *stripe.Customer { return decode[stripe.Customer](s, id) }

// CheckoutSession returns the Checkout Session decoded with stripe-go, or nil.
func (s *Stripe) CheckoutSession(id string) *stripe.CheckoutSession {
	return decode[stripe.CheckoutSession](s, id)
}

// Subscription returns the subscription decoded with stripe-go, or nil.
func (s *Stripe) Subscription(id string) *stripe.Subscription {
	return decode[stripe.Subscription](s, id)
}

// Invoice returns the invoice decoded with stripe-go, or nil.
func (s *Stripe) Invoice(id string) *stripe.Invoice { return decode[stripe.Invoice](s, id) }

// SessionsOf returns the IDs of the customer's Checkout Sessions (those
// created for it and those that created it on completion), oldest first.
func (s *Stripe) SessionsOf(customerID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireDueSessions()
	var out []string
	for _, id := range s.sessOrder {
		if s.sessions[id].customer == customerID {
			out = append(out, id)
		}
	}
	return out
}

// InvoicesOf returns the IDs of the subscription's invoices, oldest first.
func (s *Stripe) InvoicesOf(subscriptionID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, id := range s.invOrder {
		if s.invoices[id].subscription == subscriptionID {
			out = append(out, id)
		}
	}
	return out
}

// SubscriptionsOf returns the IDs of the customer's subscriptions, oldest
// first.
func (s *Stripe) SubscriptionsOf(customerID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, id := range s.subOrder {
		if s.subs[id].customer == customerID {
			out = append(out, id)
		}
	}
	return out
}
