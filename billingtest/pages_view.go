package billingtest

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"
)

// What the hosted pages show, gathered through the exported accessors
// (which also notice expired sessions) plus a few read-only looks at state
// that no accessor exposes (a session's line item, the list of prices, a
// customer's card). None of these hold s.mu across calls of the exported
// methods.

// zeroDecimal are the currencies without minor units.
var zeroDecimal = map[string]bool{
	"bif": true, "clp": true, "djf": true, "gnf": true, "jpy": true, "kmf": true, "krw": true, "mga": true,
	"pyg": true, "rwf": true, "ugx": true, "vnd": true, "vuv": true, "xaf": true, "xof": true, "xpf": true,
}

// currencySymbols are the prefixes of the common currencies; others are
// written after the amount as their code.
var currencySymbols = map[string]string{"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}

// formatMoney formats an amount in minor units, e.g. "$1,234.50" or
// "12.00 CHF".
func formatMoney(amount int64, currency string) string {
	currency = strings.ToLower(currency)
	neg := amount < 0
	if neg {
		amount = -amount
	}
	var num string
	if zeroDecimal[currency] {
		num = groupThousands(amount)
	} else {
		num = groupThousands(amount/100) + fmt.Sprintf(".%02d", amount%100)
	}
	if neg {
		num = "-" + num
	}
	if sym, ok := currencySymbols[currency]; ok {
		return sym + num
	}
	return num + " " + strings.ToUpper(currency)
}

// groupThousands writes n with commas between groups of three digits.
func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// formatPrice formats a (unit or total) amount of a price: "$29.00 / month",
// "$90.00 every 3 months", or "$5.00" for a one-time price.
func formatPrice(amount int64, p *stripe.Price) string {
	money := formatMoney(amount, string(p.Currency))
	if p.Recurring == nil || p.Recurring.Interval == "" {
		return money
	}
	if n := p.Recurring.IntervalCount; n > 1 {
		return fmt.Sprintf("%s every %d %ss", money, n, p.Recurring.Interval)
	}
	return money + " / " + string(p.Recurring.Interval)
}

// formatDate formats a unix time as the pages show dates, in UTC.
func formatDate(unix int64) string { return time.Unix(unix, 0).UTC().Format("January 2, 2006") }

// siteName is what a return link calls the site: the URL's host.
func siteName(u string) string {
	if pu, err := url.Parse(u); err == nil && pu.Host != "" {
		return pu.Host
	}
	return "the site"
}

// priceProductName is the name of a price's product, or its ID.
func (s *Stripe) priceProductName(p *stripe.Price) string {
	if p.Product == nil {
		return p.ID
	}
	if prod := s.Product(p.Product.ID); prod != nil && prod.Name != "" {
		return prod.Name
	}
	return p.Product.ID
}

// cardInfo describes a test card on the pages.
type cardInfo struct{ Number, Effect string }

// testCardHelp is the list of test cards shown on the pages.
var testCardHelp = []cardInfo{
	{CardOK, "succeeds"},
	{CardDeclined, "is declined"},
	{CardChargeFails, "is saved, but every charge fails"},
	{CardNeedsAuth, "asks for authentication"},
}

// payView is the data of the Checkout page.
type payView struct {
	Title     string
	ID        string
	Mode      string // subscription or payment
	Email     string
	Items     []lineView
	Total     string // due today
	Then      string // what a subscription costs afterwards
	PayLabel  string
	CancelURL string
	Card      string // the number to show again after an error
	Error     string
	Cards     []cardInfo
}

// lineView is a line item of the Checkout page.
type lineView struct {
	Name, PriceID, UnitPrice, Amount string
	Quantity                         int64
}

// statusView is the page of a Checkout Session that is not open, or of
// something unknown.
type statusView struct {
	Title, Heading, Message string
	LinkID, LinkURL, Link   string
}

// confirmView is the authentication challenge page.
type confirmView struct {
	Title, ID, Amount string
}

// checkout gathers the Checkout page of a session; nil if it is unknown.
// The session's state comes from the accessor (which notices expiry).
func (s *Stripe) checkout(id string) (*stripe.CheckoutSession, *payView) {
	cs := s.checkoutSession(id)
	if cs == nil {
		return nil, nil
	}
	// The line items are not part of the session's JSON.
	var items []sessionItem
	var trialDays int64
	s.mu.Lock()
	if sess := s.sessions[id]; sess != nil {
		items, trialDays = slices.Clone(sess.items), sess.trialDays
	}
	s.mu.Unlock()
	v := &payView{Title: "Checkout", ID: cs.ID, Mode: string(cs.Mode), Email: cs.CustomerEmail,
		CancelURL: cs.CancelURL, Cards: testCardHelp}
	if cs.Customer != nil {
		if c := s.Customer(cs.Customer.ID); c != nil && c.Email != "" {
			v.Email = c.Email
		}
	}
	currency := string(cs.Currency)
	var recurring int64
	var recurringPrice *stripe.Price
	for _, li := range items {
		p := s.Price(li.priceID)
		if p == nil {
			continue
		}
		currency = string(p.Currency)
		v.Items = append(v.Items, lineView{Name: s.priceProductName(p), PriceID: p.ID, Quantity: li.quantity,
			UnitPrice: formatPrice(p.UnitAmount, p), Amount: formatPrice(p.UnitAmount*li.quantity, p)})
		if p.Recurring != nil {
			recurring += p.UnitAmount * li.quantity
			recurringPrice = p
		}
	}
	v.Total = formatMoney(cs.AmountTotal, currency)
	switch {
	case cs.Mode == stripe.CheckoutSessionModeSetup:
		v.PayLabel = "Save card"
	case cs.Mode != stripe.CheckoutSessionModeSubscription:
		v.PayLabel = "Pay " + v.Total
	case trialDays > 0:
		v.PayLabel = "Start trial"
		if recurringPrice != nil {
			v.Then = fmt.Sprintf("%d-day free trial, then %s", trialDays, formatPrice(recurring, recurringPrice))
		}
	default:
		v.PayLabel = "Subscribe"
		if recurringPrice != nil {
			v.Then = "Then " + formatPrice(recurring, recurringPrice) + ", renewing automatically until canceled"
		}
	}
	return cs, v
}

// closedView is the page of a session that is complete or expired.
func closedView(cs *stripe.CheckoutSession) *statusView {
	if cs.Status == stripe.CheckoutSessionStatusComplete {
		v := &statusView{Title: "Payment complete", Heading: "Payment complete",
			Message: "This Checkout Session is complete: it has already been paid."}
		if u := successURL(cs.ID, cs.SuccessURL, cs.ReturnURL); u != "" {
			v.LinkID, v.LinkURL, v.Link = "success", u, "Continue to "+siteName(u)
		}
		return v
	}
	v := &statusView{Title: "Session expired", Heading: "Session expired",
		Message: "This Checkout Session has expired: it can no longer be paid."}
	if cs.CancelURL != "" {
		v.LinkID, v.LinkURL, v.Link = "cancel", cs.CancelURL, "Return to "+siteName(cs.CancelURL)
	}
	return v
}

// notFoundView is the 404 page.
func notFoundView(what string) *statusView {
	return &statusView{Title: "Not found", Heading: "Not found", Message: "There is no such " + what + "."}
}

// portalView is the data of the portal page.
type portalView struct {
	Title      string
	ID         string
	Customer   string
	Subs       []subView
	CardStatus string
	Card       string
	Flash      string
	Error      string
	ReturnURL  string
	ReturnSite string
	Cards      []cardInfo
}

// subView is a subscription on the portal page.
type subView struct {
	ID, Name, PriceID, Price, Status string
	Quantity                         int64
	DateLabel, Date                  string
	Scheduled                        bool
	Options                          []priceOption
}

// priceOption is a plan to switch to.
type priceOption struct{ ID, Label string }

// statusLabels are the names the portal gives subscription statuses.
var statusLabels = map[stripe.SubscriptionStatus]string{
	"active": "Active", "trialing": "Trial", "past_due": "Past due", "unpaid": "Unpaid",
	"incomplete": "Incomplete", "paused": "Paused",
}

// checkoutSession returns a Checkout Session, or nil (also for the ID of
// another kind of object).
func (s *Stripe) checkoutSession(id string) *stripe.CheckoutSession {
	if cs := s.CheckoutSession(id); cs != nil && cs.Object == "checkout.session" {
		return cs
	}
	return nil
}

// portalSession returns a portal session, or nil.
func (s *Stripe) portalSession(id string) *stripe.BillingPortalSession {
	if ps := decode[stripe.BillingPortalSession](s, id); ps != nil && ps.Object == "billing_portal.session" {
		return ps
	}
	return nil
}

// switchable returns the active recurring prices, oldest first.
func (s *Stripe) switchable() []*stripe.Price {
	s.mu.Lock()
	ids := append([]string(nil), s.priceOrder...)
	s.mu.Unlock()
	var out []*stripe.Price
	for _, id := range ids {
		if p := s.Price(id); p != nil && p.Active && p.Recurring != nil {
			out = append(out, p)
		}
	}
	return out
}

// cardFailing reports whether a customer's card fails when charged.
func (s *Stripe) cardFailing(customerID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.customers[customerID]
	return c != nil && c.card == cardChargeFails
}

// portal gathers the portal page of a portal session.
func (s *Stripe) portal(ps *stripe.BillingPortalSession) *portalView {
	v := &portalView{Title: "Billing", ID: ps.ID, Customer: ps.Customer, ReturnURL: ps.ReturnURL,
		Cards: testCardHelp}
	if ps.ReturnURL != "" {
		v.ReturnSite = siteName(ps.ReturnURL)
	}
	if c := s.Customer(ps.Customer); c != nil {
		switch {
		case c.Name != "" && c.Email != "":
			v.Customer = c.Name + " · " + c.Email
		case c.Email != "":
			v.Customer = c.Email
		case c.Name != "":
			v.Customer = c.Name
		}
	}
	v.CardStatus = "Charges to the card on file succeed."
	if s.cardFailing(ps.Customer) {
		v.CardStatus = "Charges to the card on file fail: update the card to keep your subscriptions."
	}
	prices := s.switchable()
	for _, id := range s.SubscriptionsOf(ps.Customer) {
		sub := s.Subscription(id)
		if sub == nil || sub.Status == stripe.SubscriptionStatusCanceled ||
			sub.Status == stripe.SubscriptionStatusIncompleteExpired || sub.Items == nil || len(sub.Items.Data) == 0 {
			continue
		}
		it := sub.Items.Data[0]
		sv := subView{ID: sub.ID, Status: string(sub.Status), Quantity: it.Quantity,
			Scheduled: sub.CancelAtPeriodEnd || sub.CancelAt != 0}
		if l, ok := statusLabels[sub.Status]; ok {
			sv.Status = l
		}
		if it.Price != nil {
			sv.PriceID, sv.Name, sv.Price = it.Price.ID, s.priceProductName(it.Price), formatPrice(it.Price.UnitAmount, it.Price)
		}
		switch {
		case sub.CancelAt != 0:
			sv.DateLabel, sv.Date = "Cancels on", formatDate(sub.CancelAt)
		case sub.CancelAtPeriodEnd:
			sv.DateLabel, sv.Date = "Cancels on", formatDate(it.CurrentPeriodEnd)
		case sub.Status == stripe.SubscriptionStatusTrialing && sub.TrialEnd != 0:
			sv.DateLabel, sv.Date = "Trial ends on", formatDate(sub.TrialEnd)
		default:
			sv.DateLabel, sv.Date = "Renews on", formatDate(it.CurrentPeriodEnd)
		}
		for _, p := range prices {
			if p.ID != sv.PriceID {
				sv.Options = append(sv.Options, priceOption{ID: p.ID,
					Label: s.priceProductName(p) + " — " + formatPrice(p.UnitAmount, p)})
			}
		}
		v.Subs = append(v.Subs, sv)
	}
	return v
}

// portalFlashes are the messages shown after a portal action, by the code
// the redirect carries.
var portalFlashes = map[string]string{
	"canceling": "Your subscription will be canceled at the end of the billing period.",
	"renewed":   "Your subscription will no longer be canceled.",
	"canceled":  "Your subscription has been canceled.",
	"switched":  "Your plan has been updated.",
	"card":      "Your card has been updated.",
}
