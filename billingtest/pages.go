package billingtest

import (
	"errors"
	"slices"

	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing/billingtest/internal/pages"
)

// The hosted pages (package internal/pages), served from the fake through
// its exported accessors and simulator methods (which take s.mu), plus a
// few read-only looks at state no accessor exposes.

// pageRoutes registers the hosted Checkout and portal pages the sessions'
// URLs point at. They are not counted as API calls.
func (s *Stripe) pageRoutes() { pages.Register(s.mux, pageBackend{s}) }

// pageBackend is the fake as the pages' Backend.
type pageBackend struct{ s *Stripe }

func (b pageBackend) CheckoutSession(id string) *stripe.CheckoutSession {
	return b.s.CheckoutSession(id)
}
func (b pageBackend) PortalSession(id string) *stripe.BillingPortalSession {
	return decode[stripe.BillingPortalSession](b.s, id)
}
func (b pageBackend) Customer(id string) *stripe.Customer         { return b.s.Customer(id) }
func (b pageBackend) Price(id string) *stripe.Price               { return b.s.Price(id) }
func (b pageBackend) Product(id string) *stripe.Product           { return b.s.Product(id) }
func (b pageBackend) Subscription(id string) *stripe.Subscription { return b.s.Subscription(id) }
func (b pageBackend) SubscriptionsOf(customerID string) []string {
	return b.s.SubscriptionsOf(customerID)
}

func (b pageBackend) SessionItems(id string) ([]pages.Item, int64) {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	cs := b.s.sessions[id]
	if cs == nil {
		return nil, 0
	}
	items := make([]pages.Item, 0, len(cs.items))
	for _, it := range cs.items {
		items = append(items, pages.Item{PriceID: it.priceID, Quantity: it.quantity})
	}
	return items, cs.trialDays
}

// SwitchablePrices are the active recurring prices, oldest first.
func (b pageBackend) SwitchablePrices() []*stripe.Price {
	b.s.mu.Lock()
	ids := slices.Clone(b.s.priceOrder)
	b.s.mu.Unlock()
	var out []*stripe.Price
	for _, id := range ids {
		if p := b.s.Price(id); p != nil && p.Active && p.Recurring != nil {
			out = append(out, p)
		}
	}
	return out
}

func (b pageBackend) CardFailing(customerID string) bool {
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	c := b.s.customers[customerID]
	return c != nil && c.card == cardChargeFails
}

func (b pageBackend) Pay(sessionID, card string, auth pages.Auth) (string, error) {
	step := map[pages.Auth]authStep{pages.AuthMissing: authMissing, pages.AuthApprove: authApprove, pages.AuthFail: authFail}[auth]
	if card == "" && auth != pages.AuthMissing {
		card = CardNeedsAuth // the authentication step of a card that asked for it
	}
	paid, err := b.s.pay(sessionID, card, step)
	return paid.RedirectURL, err
}

func (b pageBackend) UpdateCard(customerID, card string) error {
	_, err := b.s.UpdateCard(customerID, card)
	return err
}

func (b pageBackend) CancelAtPeriodEnd(subID string) error {
	_, err := b.s.CancelAtPeriodEnd(subID)
	return err
}

func (b pageBackend) Uncancel(subID string) error {
	_, err := b.s.Uncancel(subID)
	return err
}

func (b pageBackend) CancelNow(subID string) error {
	_, err := b.s.CancelNow(subID)
	return err
}

func (b pageBackend) ChangePrice(subID, priceID string) error {
	_, err := b.s.ChangePrice(subID, priceID)
	return err
}

func (b pageBackend) Explain(err error) pages.Outcome {
	var ce *CardError
	switch {
	case err == nil:
		return pages.Outcome{}
	case errors.Is(err, errAuthenticationRequired):
		return pages.Outcome{Kind: pages.AuthRequired}
	case errors.As(err, &ce):
		return pages.Outcome{Kind: pages.CardRefused, Message: ce.Message}
	case errors.Is(err, ErrSessionNotOpen):
		return pages.Outcome{Kind: pages.NotOpen}
	}
	return pages.Outcome{Kind: pages.Other}
}

func (b pageBackend) Cards() []pages.Card {
	return []pages.Card{
		{Number: CardOK, Effect: "succeeds"},
		{Number: CardDeclined, Effect: "is declined"},
		{Number: CardChargeFails, Effect: "is saved, but every charge fails"},
		{Number: CardNeedsAuth, Effect: "asks for authentication"},
	}
}
