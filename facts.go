package billing

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
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
func subscriptionFacts(sub *wireSubscription, version time.Time) Subscription {
	s := Subscription{
		ID:                sub.ID,
		CustomerID:        string(sub.Customer),
		Status:            SubscriptionStatus(sub.Status),
		CancelAtPeriodEnd: sub.CancelAtPeriodEnd,
		CancelAt:          unix(sub.CancelAt),
		CanceledAt:        unix(sub.CanceledAt),
		EndedAt:           unix(sub.EndedAt),
		TrialStart:        unix(sub.TrialStart),
		TrialEnd:          unix(sub.TrialEnd),
		LatestInvoiceID:   sub.LatestInvoice.ID,
		Version:           version.UTC().Truncate(time.Second),
	}
	for _, it := range sub.Items.Data {
		if it == nil {
			continue
		}
		s.Items = append(s.Items, Item{PriceID: string(it.Price), Quantity: it.Quantity,
			CurrentPeriodStart: unix(it.CurrentPeriodStart), CurrentPeriodEnd: unix(it.CurrentPeriodEnd)})
	}
	return s
}

// Invoice statuses billing reads.
const (
	invoicePaid          = "paid"
	invoiceVoid          = "void"
	invoiceUncollectible = "uncollectible"
)

// invoiceFacts reads an invoice's payment facts.
func invoiceFacts(inv *wireInvoice) Invoice {
	f := Invoice{
		ID:                 inv.ID,
		Created:            unix(inv.Created),
		Paid:               inv.Status == invoicePaid,
		Closed:             inv.Status == invoiceVoid || inv.Status == invoiceUncollectible,
		AttemptCount:       inv.AttemptCount,
		NextPaymentAttempt: unix(inv.NextPaymentAttempt),
	}
	if f.Paid || f.Closed {
		f.NextPaymentAttempt = time.Time{}
	}
	return f
}

// fetchedFact is a subscription fetched with its latest invoice expanded,
// versioned by the response's Date.
func fetchedFact(sub *wireSubscription, version time.Time) subFact {
	f := subFact{Sub: subscriptionFacts(sub, version), Fetched: true, Invoice: expandedInvoice(sub)}
	if f.Invoice != nil {
		f.News = newsOf(sub.LatestInvoice.Expanded)
	}
	return f
}

// newsOf is what an invoice says beyond its stored facts.
func newsOf(inv *wireInvoice) invoiceNews {
	return invoiceNews{renewal: inv.BillingReason == "subscription_cycle"}
}

// expandedInvoice returns the facts of a subscription's latest invoice
// when it was expanded (fetched with expand[]=latest_invoice), else nil.
func expandedInvoice(sub *wireSubscription) *Invoice {
	if li := sub.LatestInvoice.Expanded; li != nil && li.Status != "" {
		f := invoiceFacts(li)
		return &f
	}
	return nil
}

// invoiceSubscriptionID finds an invoice's subscription in basil's layout:
// parent.subscription_details.subscription, else a line's parent.
func invoiceSubscriptionID(inv *wireInvoice) string {
	if p := inv.Parent; p != nil && p.SubscriptionDetails != nil && p.SubscriptionDetails.Subscription != "" {
		return string(p.SubscriptionDetails.Subscription)
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
	// metaCheckout is a fingerprint of every parameter of a Checkout, so
	// that an identical one reuses the user's open session.
	metaCheckout = "billing_checkout"
	// metaAllowAnother marks, on subscription_data.metadata, a
	// subscription the app allowed beside a live one.
	metaAllowAnother = "billing_allow_another"
)

// grantFacts builds the grant of a paid payment-mode session, or says
// why it cannot. Sessions made by Checkout carry their price and quantity
// in metadata; for others (Payment Links, say) the line items must have
// been expanded (see Billing.withLineItems). known is false for a price
// not in Plans: it is granted with no credits.
func grantFacts(s *wireSession, at time.Time, plans map[string]Plan) (g Grant, known bool, err error) {
	g = Grant{
		CheckoutSessionID: s.ID,
		CustomerID:        string(s.Customer),
		AmountTotal:       s.AmountTotal,
		Currency:          s.Currency,
		GrantedAt:         at.UTC().Truncate(time.Second),
		PaymentIntentID:   string(s.PaymentIntent),
	}
	if price := s.Metadata[metaPriceID]; price != "" {
		q := int64(1) // sessions made before billing recorded the quantity
		if raw := s.Metadata[metaQuantity]; raw != "" {
			var err error
			if q, err = positiveInt(raw); err != nil {
				return Grant{}, false, &errUnstorable{fmt.Sprintf("checkout session %s: quantity %q in its metadata: %v", s.ID, raw, err)}
			}
		}
		g.PriceID, g.Quantity = price, q
	} else {
		items := s.LineItems
		if items == nil || len(items.Data) == 0 || items.Data[0] == nil || items.Data[0].Price == "" {
			return Grant{}, false, fmt.Errorf("billing: checkout session %s has no line items", s.ID)
		}
		g.PriceID, g.Quantity = string(items.Data[0].Price), items.Data[0].Quantity
		if g.Quantity < 1 {
			return Grant{}, false, &errUnstorable{fmt.Sprintf("checkout session %s: line item quantity %d", s.ID, g.Quantity)}
		}
	}
	p, known := plans[g.PriceID]
	if known {
		if p.Credits != 0 && g.Quantity > math.MaxInt64/p.Credits {
			return Grant{}, false, &errUnstorable{fmt.Sprintf("checkout session %s: %d × %d credits overflows", s.ID, g.Quantity, p.Credits)}
		}
		g.Credits = p.Credits * g.Quantity
	}
	if bad := unstorable("checkout session", g.CheckoutSessionID, "customer", g.CustomerID, "price", g.PriceID, "currency", g.Currency, "payment intent", g.PaymentIntentID); bad != "" {
		return Grant{}, false, &errUnstorable{"cannot store the " + bad}
	}
	return g, known, nil
}

// positiveInt parses a positive decimal integer written in ASCII digits.
func positiveInt(s string) (int64, error) {
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("not a positive integer in ASCII digits")
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if n < 1 {
		return 0, fmt.Errorf("not positive")
	}
	return n, nil
}

// errUnstorable is what Stripe sent that billing cannot store or make
// sense of (an unstorable ID, an invalid quantity, an overflow): retrying
// cannot help, so the event is parked with this reason.
type errUnstorable struct{ reason string }

func (e *errUnstorable) Error() string { return e.reason }

// unstorableSub says what of s cannot be stored, or "".
func unstorableSub(s Subscription) string {
	if bad := unstorable("subscription", s.ID, "customer", s.CustomerID, "status", string(s.Status),
		"latest invoice", s.LatestInvoiceID, "invoice", s.Invoice.ID); bad != "" {
		return "cannot store the " + bad
	}
	for _, it := range s.Items {
		if !storable(it.PriceID) {
			return fmt.Sprintf("cannot store the price %q", it.PriceID)
		}
	}
	return ""
}

// maxStoredLen is the longest text billing stores for an ID (Stripe's are
// far shorter; sqlstore's MySQL columns hold 255 bytes).
const maxStoredLen = 255

// storable reports whether s can be stored as an ID by any store: valid
// UTF-8, no NUL byte (PostgreSQL's text refuses it), at most maxStoredLen
// bytes. What Stripe sends that is not is parked with a reason rather
// than answered 500 forever.
func storable(s string) bool {
	return len(s) <= maxStoredLen && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// unstorable returns the first of the named values that is not storable,
// as "name \"value\"", or "".
func unstorable(kv ...string) string {
	for i := 0; i+1 < len(kv); i += 2 {
		if !storable(kv[i+1]) {
			return fmt.Sprintf("%s %q", kv[i], kv[i+1])
		}
	}
	return ""
}

// storableText is s made storable: invalid UTF-8 and NUL bytes become
// U+FFFD, and it is cut to maxStoredLen bytes on a rune boundary.
func storableText(s string) string {
	if storable(s) {
		return s
	}
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	for len(s) > maxStoredLen {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}
