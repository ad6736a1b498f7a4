package billing

import (
	"fmt"
	"strconv"
	"time"

	"github.com/stripe/stripe-go/v82"
)

// unix turns Stripe's unix seconds into a UTC time; 0 stays the zero time.
func unix(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}

// subscriptionFacts reads what Membership needs from a subscription in
// basil's layout (periods on the items).
func subscriptionFacts(sub *stripe.Subscription, version time.Time) Subscription {
	s := Subscription{
		ID:                sub.ID,
		Status:            SubscriptionStatus(sub.Status),
		CancelAtPeriodEnd: sub.CancelAtPeriodEnd,
		CancelAt:          unix(sub.CancelAt),
		CanceledAt:        unix(sub.CanceledAt),
		EndedAt:           unix(sub.EndedAt),
		TrialStart:        unix(sub.TrialStart),
		TrialEnd:          unix(sub.TrialEnd),
		Version:           version.UTC().Truncate(time.Second),
	}
	if sub.Customer != nil {
		s.CustomerID = sub.Customer.ID
	}
	if sub.LatestInvoice != nil {
		s.LatestInvoiceID = sub.LatestInvoice.ID
	}
	if sub.Items != nil {
		for _, it := range sub.Items.Data {
			if it == nil {
				continue
			}
			item := Item{Quantity: it.Quantity, CurrentPeriodStart: unix(it.CurrentPeriodStart), CurrentPeriodEnd: unix(it.CurrentPeriodEnd)}
			if it.Price != nil {
				item.PriceID = it.Price.ID
			}
			s.Items = append(s.Items, item)
		}
	}
	return s
}

// invoiceFacts reads an invoice's payment facts.
func invoiceFacts(inv *stripe.Invoice) Invoice {
	f := Invoice{
		ID:                 inv.ID,
		Created:            unix(inv.Created),
		Paid:               inv.Status == stripe.InvoiceStatusPaid,
		Closed:             inv.Status == stripe.InvoiceStatusVoid || inv.Status == stripe.InvoiceStatusUncollectible,
		AttemptCount:       inv.AttemptCount,
		NextPaymentAttempt: unix(inv.NextPaymentAttempt),
	}
	if f.Paid || f.Closed {
		f.NextPaymentAttempt = time.Time{}
	}
	return f
}

// invoiceSubscriptionID finds an invoice's subscription in basil's layout:
// parent.subscription_details.subscription, else a line's parent.
func invoiceSubscriptionID(inv *stripe.Invoice) string {
	if p := inv.Parent; p != nil && p.SubscriptionDetails != nil && p.SubscriptionDetails.Subscription != nil {
		return p.SubscriptionDetails.Subscription.ID
	}
	if inv.Lines != nil {
		for _, l := range inv.Lines.Data {
			if l != nil && l.Parent != nil && l.Parent.SubscriptionItemDetails != nil && l.Parent.SubscriptionItemDetails.Subscription != "" {
				return l.Parent.SubscriptionItemDetails.Subscription
			}
		}
	}
	return ""
}

// Checkout Session metadata keys billing sets.
const (
	metaUserID   = "billing_user_id"
	metaPriceID  = "billing_price_id"
	metaQuantity = "billing_quantity"
)

// grantFacts builds the grant of a paid payment-mode session, or says
// why it cannot. Sessions made by Checkout carry their price and quantity
// in metadata; for others (Payment Links, say) the line items must have
// been expanded (see Billing.withLineItems). known is false for a price
// not in Plans: it is granted with no credits.
func grantFacts(s *stripe.CheckoutSession, at time.Time, plans map[string]Plan) (g Grant, known bool, err error) {
	g = Grant{
		CheckoutSessionID: s.ID,
		AmountTotal:       s.AmountTotal,
		Currency:          string(s.Currency),
		GrantedAt:         at.UTC().Truncate(time.Second),
	}
	if s.Customer != nil {
		g.CustomerID = s.Customer.ID
	}
	if price := s.Metadata[metaPriceID]; price != "" {
		q, err := strconv.ParseInt(s.Metadata[metaQuantity], 10, 64)
		if err != nil || q < 1 {
			q = 1
		}
		g.PriceID, g.Quantity = price, q
	} else {
		items := s.LineItems
		if items == nil || len(items.Data) == 0 || items.Data[0].Price == nil {
			return Grant{}, false, fmt.Errorf("billing: checkout session %s has no line items", s.ID)
		}
		g.PriceID, g.Quantity = items.Data[0].Price.ID, max(items.Data[0].Quantity, 1)
	}
	p, known := plans[g.PriceID]
	if known {
		g.Credits = p.Credits * g.Quantity
	}
	return g, known, nil
}
