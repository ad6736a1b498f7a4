// Package pages is billingtest's hosted pages: the Checkout page a
// session's url points at and the customer portal a portal session's url
// points at, served from a Backend (the fake's state and actions).
package pages

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"
)

// Backend is what the pages read and do. Its methods take the fake's own
// lock; the pages never hold one across calls.
type Backend interface {
	// CheckoutSession, PortalSession, Customer, Price, Product and
	// Subscription return an object, or nil.
	CheckoutSession(id string) *stripe.CheckoutSession
	PortalSession(id string) *stripe.BillingPortalSession
	Customer(id string) *stripe.Customer
	Price(id string) *stripe.Price
	Product(id string) *stripe.Product
	Subscription(id string) *stripe.Subscription
	// SessionItems are a session's line items and trial days.
	SessionItems(sessionID string) ([]Item, int64)
	// SubscriptionsOf are a customer's subscriptions, oldest first.
	SubscriptionsOf(customerID string) []string
	// SwitchablePrices are the prices the portal offers to switch to.
	SwitchablePrices() []*stripe.Price
	// CardFailing reports whether the customer's card fails when charged.
	CardFailing(customerID string) bool
	// Pay pays a session with a card (the authentication step's card when
	// card is empty), with the customer's answer to an authentication
	// challenge, and returns where the page sends the customer.
	Pay(sessionID, card string, auth Auth) (redirectURL string, err error)
	// UpdateCard and the portal's actions.
	UpdateCard(customerID, card string) error
	CancelAtPeriodEnd(subID string) error
	Uncancel(subID string) error
	CancelNow(subID string) error
	ChangePrice(subID, priceID string) error
	// Explain says what an error of Pay or UpdateCard means for a page.
	Explain(err error) Outcome
	// Cards are the test cards the pages list.
	Cards() []Card
}

// Item is a line item of a Checkout Session.
type Item struct {
	PriceID  string
	Quantity int64
}

// Auth is the customer's answer to an authentication challenge.
type Auth int

// The answers.
const (
	AuthMissing Auth = iota // not asked yet: the page asks
	AuthApprove
	AuthFail
)

// Kind is what an error means for a page.
type Kind int

// The kinds.
const (
	Other        Kind = iota // shown as "Something went wrong"
	CardRefused              // the card was refused: Outcome.Message says why
	AuthRequired             // the card asks for authentication
	NotOpen                  // the session is complete or expired
)

// Outcome is an explained error.
type Outcome struct {
	Kind    Kind
	Message string
}

// SuccessURL is where a completed session sends the customer: success_url
// (return_url for an embedded session) with {CHECKOUT_SESSION_ID} replaced.
func SuccessURL(id, success, ret string) string {
	u := success
	if u == "" {
		u = ret
	}
	return strings.ReplaceAll(u, "{CHECKOUT_SESSION_ID}", id)
}

// checkoutSession returns a Checkout Session, or nil (also for the ID of
// another kind of object).
func (h *handler) checkoutSession(id string) *stripe.CheckoutSession {
	if cs := h.b.CheckoutSession(id); cs != nil && cs.Object == "checkout.session" {
		return cs
	}
	return nil
}

// The hosted pages: the Checkout page a session's url points at and the
// customer portal a portal session's url points at. They are plain HTML
// forms (no JavaScript), for a browser or for tests that post forms; each
// action goes through the exported simulator methods, so it emits the
// events those emit. Element IDs are stable for browser tests:
//
//	GET  /pay/{id}          #line-items (rows .line-item), #total, #mode, #card, #pay,
//	                        #error (after a failed attempt), #cancel (to cancel_url)
//	POST /pay/{id}          card=<number>: 303 to success_url, or 303 to /pay/{id}/confirm
//	                        (CardNeedsAuth), or the page again with #error (402)
//	GET  /pay/{id}/confirm  #confirm and #fail (name=action, value complete or fail)
//	POST /pay/{id}/confirm  action=complete: 303 to success_url; action=fail: the
//	                        page with #error (402)
//	GET  /portal/{id}       per subscription #sub-<sub>, #status-<sub>, #period-<sub>,
//	                        #cancel-at-period-end-<sub> or #uncancel-<sub>,
//	                        #cancel-now-<sub>, #price-<sub> (select name=price),
//	                        #switch-<sub>; #card, #update-card, #card-status, #flash,
//	                        #error, #return (to return_url)
//	POST /portal/{id}       action=cancel_at_period_end|uncancel|cancel_now|switch
//	                        (subscription=<sub>, price=<price> for switch) or
//	                        action=update_card (card=<number>): 303 back to the
//	                        portal with a message (?done=...), or the page with #error
//
// They are not counted as API calls.

//go:embed templates/*.html
var pageFiles embed.FS

// Page templates, each the layout with its content.
var (
	payPage     = pageTemplate("pay.html")
	confirmPage = pageTemplate("confirm.html")
	statusPage  = pageTemplate("status.html")
	portalPage  = pageTemplate("portal.html")
)

func pageTemplate(name string) *template.Template {
	return template.Must(template.New(name).ParseFS(pageFiles, "templates/layout.html", "templates/"+name))
}

// render writes a page. The page is rendered into a buffer first, so that a
// template error is a 500 rather than half a page.
func render(w http.ResponseWriter, status int, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		http.Error(w, "billingtest: rendering the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Register registers the hosted Checkout and portal pages on mux, served
// from b.
func Register(mux *http.ServeMux, b Backend) {
	h := &handler{b: b}
	mux.HandleFunc("GET /pay/{id}", h.payGet)
	mux.HandleFunc("POST /pay/{id}", h.payPost)
	mux.HandleFunc("GET /pay/{id}/confirm", h.confirmGet)
	mux.HandleFunc("POST /pay/{id}/confirm", h.confirmPost)
	mux.HandleFunc("GET /portal/{id}", h.portalGet)
	mux.HandleFunc("POST /portal/{id}", h.portalPost)
}

// handler serves the pages.
type handler struct{ b Backend }

// openCheckout finds the open session of a page request, or answers the
// request with the page of an unknown (404) or closed one (closedStatus).
func (h *handler) openCheckout(w http.ResponseWriter, r *http.Request, closedStatus int) (*stripe.CheckoutSession, *payView) {
	cs, v := h.checkout(r.PathValue("id"))
	switch {
	case cs == nil:
		render(w, http.StatusNotFound, statusPage, notFoundView("Checkout Session"))
		return nil, nil
	case cs.Status != stripe.CheckoutSessionStatusOpen:
		render(w, closedStatus, statusPage, closedView(cs))
		return nil, nil
	}
	return cs, v
}

func (h *handler) payGet(w http.ResponseWriter, r *http.Request) {
	if _, v := h.openCheckout(w, r, http.StatusOK); v != nil {
		render(w, http.StatusOK, payPage, v)
	}
}

func (h *handler) payPost(w http.ResponseWriter, r *http.Request) {
	cs, v := h.postedCheckout(w, r)
	if cs == nil {
		return
	}
	card := r.PostForm.Get("card")
	to, err := h.b.Pay(cs.ID, card, AuthMissing)
	if h.b.Explain(err).Kind == AuthRequired {
		http.Redirect(w, r, "/pay/"+url.PathEscape(cs.ID)+"/confirm", http.StatusSeeOther)
		return
	}
	h.payDone(w, r, v, to, err, card)
}

// postedCheckout parses a form posted to an open session's page, or
// answers the request (a bad form, an unknown or closed session).
func (h *handler) postedCheckout(w http.ResponseWriter, r *http.Request) (*stripe.CheckoutSession, *payView) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "billingtest: "+err.Error(), http.StatusBadRequest)
		return nil, nil
	}
	return h.openCheckout(w, r, http.StatusConflict)
}

// payDone answers a payment attempt: a redirect to where the session sends
// the customer, or the Checkout page with the error.
func (h *handler) payDone(w http.ResponseWriter, r *http.Request, v *payView, to string, err error, card string) {
	why := h.b.Explain(err)
	switch {
	case err == nil && to == "":
		// No URL to go to (cannot happen for a hosted session).
		cs := h.checkoutSession(v.ID)
		render(w, http.StatusOK, statusPage, closedView(cs))
	case err == nil:
		http.Redirect(w, r, to, http.StatusSeeOther)
	case why.Kind == CardRefused:
		v.Card, v.Error = card, why.Message
		render(w, http.StatusPaymentRequired, payPage, v)
	case why.Kind == NotOpen:
		if cs := h.checkoutSession(v.ID); cs != nil {
			render(w, http.StatusConflict, statusPage, closedView(cs))
			return
		}
		fallthrough
	default:
		v.Card, v.Error = card, "Something went wrong: "+strings.TrimPrefix(err.Error(), "billingtest: ")
		render(w, http.StatusInternalServerError, payPage, v)
	}
}

func (h *handler) confirmGet(w http.ResponseWriter, r *http.Request) {
	if _, v := h.openCheckout(w, r, http.StatusOK); v != nil {
		render(w, http.StatusOK, confirmPage, &confirmView{Title: "Complete authentication", ID: v.ID, Amount: v.Total})
	}
}

func (h *handler) confirmPost(w http.ResponseWriter, r *http.Request) {
	cs, v := h.postedCheckout(w, r)
	if cs == nil {
		return
	}
	var auth Auth
	switch r.PostForm.Get("action") {
	case "complete":
		auth = AuthApprove
	case "fail":
		auth = AuthFail
	default:
		http.Error(w, `billingtest: action must be "complete" or "fail"`, http.StatusBadRequest)
		return
	}
	to, err := h.b.Pay(cs.ID, "", auth)
	h.payDone(w, r, v, to, err, "")
}

func (h *handler) portalGet(w http.ResponseWriter, r *http.Request) {
	ps := h.b.PortalSession(r.PathValue("id"))
	if ps == nil {
		render(w, http.StatusNotFound, statusPage, notFoundView("portal session"))
		return
	}
	v := h.portal(ps)
	v.Flash = portalFlashes[r.URL.Query().Get("done")]
	render(w, http.StatusOK, portalPage, v)
}

func (h *handler) portalPost(w http.ResponseWriter, r *http.Request) {
	ps := h.b.PortalSession(r.PathValue("id"))
	if ps == nil {
		render(w, http.StatusNotFound, statusPage, notFoundView("portal session"))
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "billingtest: "+err.Error(), http.StatusBadRequest)
		return
	}
	done, status, msg, card := h.portalAction(ps, r.PostForm)
	if msg != "" {
		v := h.portal(ps)
		v.Error, v.Card = msg, card
		render(w, status, portalPage, v)
		return
	}
	http.Redirect(w, r, "/portal/"+url.PathEscape(ps.ID)+"?done="+done, http.StatusSeeOther)
}

// portalAction performs a portal form's action. It returns the code of the
// message to show after the redirect, or an HTTP status and an error
// message (and the card number to show again).
func (h *handler) portalAction(ps *stripe.BillingPortalSession, form url.Values) (done string, status int, msg, card string) {
	action := form.Get("action")
	if action == "update_card" {
		card = form.Get("card")
		err := h.b.UpdateCard(ps.Customer, card)
		switch why := h.b.Explain(err); {
		case why.Kind == CardRefused:
			return "", http.StatusPaymentRequired, why.Message, card
		case err != nil:
			return "", http.StatusInternalServerError, simError(err), card
		}
		return "card", 0, "", ""
	}
	subID := form.Get("subscription")
	sub := h.b.Subscription(subID)
	if sub == nil || sub.Customer == nil || sub.Customer.ID != ps.Customer {
		return "", http.StatusNotFound, "There is no such subscription.", ""
	}
	var err error
	switch action {
	case "cancel_at_period_end":
		done = "canceling"
		err = h.b.CancelAtPeriodEnd(subID)
	case "uncancel":
		done = "renewed"
		err = h.b.Uncancel(subID)
	case "cancel_now":
		done = "canceled"
		err = h.b.CancelNow(subID)
	case "switch":
		priceID := form.Get("price")
		if p := h.b.Price(priceID); p == nil || !p.Active || p.Recurring == nil {
			return "", http.StatusBadRequest, "Choose one of the plans offered.", ""
		}
		if sub.Items != nil && len(sub.Items.Data) > 0 && sub.Items.Data[0].Price != nil &&
			sub.Items.Data[0].Price.ID == priceID {
			return "", http.StatusBadRequest, "You are already on this plan.", ""
		}
		done = "switched"
		err = h.b.ChangePrice(subID, priceID)
	default:
		return "", http.StatusBadRequest, "Unknown action.", ""
	}
	if err != nil {
		return "", http.StatusConflict, simError(err), ""
	}
	return done, 0, "", ""
}

// simError is a simulator error as a page shows it.
func simError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "billingtest: ")
	if msg == "" {
		return "Something went wrong."
	}
	return strings.ToUpper(msg[:1]) + msg[1:] + "."
}

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
func (h *handler) priceProductName(p *stripe.Price) string {
	if p.Product == nil {
		return p.ID
	}
	if prod := h.b.Product(p.Product.ID); prod != nil && prod.Name != "" {
		return prod.Name
	}
	return p.Product.ID
}

// Card describes a test card on the pages.
type Card struct{ Number, Effect string }

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
	Cards     []Card
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
func (h *handler) checkout(id string) (*stripe.CheckoutSession, *payView) {
	cs := h.checkoutSession(id)
	if cs == nil {
		return nil, nil
	}
	// The line items are not part of the session's JSON.
	var items []Item
	var trialDays int64
	items, trialDays = h.b.SessionItems(id)
	v := &payView{Title: "Checkout", ID: cs.ID, Mode: string(cs.Mode), Email: cs.CustomerEmail,
		CancelURL: cs.CancelURL, Cards: h.b.Cards()}
	if cs.Customer != nil {
		if c := h.b.Customer(cs.Customer.ID); c != nil && c.Email != "" {
			v.Email = c.Email
		}
	}
	currency := string(cs.Currency)
	var recurring int64
	var recurringPrice *stripe.Price
	for _, li := range items {
		p := h.b.Price(li.PriceID)
		if p == nil {
			continue
		}
		currency = string(p.Currency)
		v.Items = append(v.Items, lineView{Name: h.priceProductName(p), PriceID: p.ID, Quantity: li.Quantity,
			UnitPrice: formatPrice(p.UnitAmount, p), Amount: formatPrice(p.UnitAmount*li.Quantity, p)})
		if p.Recurring != nil {
			recurring += p.UnitAmount * li.Quantity
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
		if u := SuccessURL(cs.ID, cs.SuccessURL, cs.ReturnURL); u != "" {
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
	Cards      []Card
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

// portal gathers the portal page of a portal session.
func (h *handler) portal(ps *stripe.BillingPortalSession) *portalView {
	v := &portalView{Title: "Billing", ID: ps.ID, Customer: ps.Customer, ReturnURL: ps.ReturnURL,
		Cards: h.b.Cards()}
	if ps.ReturnURL != "" {
		v.ReturnSite = siteName(ps.ReturnURL)
	}
	if c := h.b.Customer(ps.Customer); c != nil {
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
	if h.b.CardFailing(ps.Customer) {
		v.CardStatus = "Charges to the card on file fail: update the card to keep your subscriptions."
	}
	prices := h.b.SwitchablePrices()
	for _, id := range h.b.SubscriptionsOf(ps.Customer) {
		sub := h.b.Subscription(id)
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
			sv.PriceID, sv.Name, sv.Price = it.Price.ID, h.priceProductName(it.Price), formatPrice(it.Price.UnitAmount, it.Price)
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
					Label: h.priceProductName(p) + " — " + formatPrice(p.UnitAmount, p)})
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
