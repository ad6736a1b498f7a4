package billingtest

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/stripe/stripe-go/v82"
)

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

//go:embed pages/*.html
var pageFiles embed.FS

// Page templates, each the layout with its content.
var (
	payPage     = pageTemplate("pay.html")
	confirmPage = pageTemplate("confirm.html")
	statusPage  = pageTemplate("status.html")
	portalPage  = pageTemplate("portal.html")
)

func pageTemplate(name string) *template.Template {
	return template.Must(template.New(name).ParseFS(pageFiles, "pages/layout.html", "pages/"+name))
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

// pageRoutes registers the hosted Checkout and portal pages the sessions'
// URLs point at. They are not counted as API calls.
func (s *Stripe) pageRoutes() {
	s.mux.HandleFunc("GET /pay/{id}", s.payGet)
	s.mux.HandleFunc("POST /pay/{id}", s.payPost)
	s.mux.HandleFunc("GET /pay/{id}/confirm", s.confirmGet)
	s.mux.HandleFunc("POST /pay/{id}/confirm", s.confirmPost)
	s.mux.HandleFunc("GET /portal/{id}", s.portalGet)
	s.mux.HandleFunc("POST /portal/{id}", s.portalPost)
}

// openCheckout finds the open session of a page request, or answers the
// request with the page of an unknown (404) or closed one (closedStatus).
func (s *Stripe) openCheckout(w http.ResponseWriter, r *http.Request, closedStatus int) (*stripe.CheckoutSession, *payView) {
	cs, v := s.checkout(r.PathValue("id"))
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

func (s *Stripe) payGet(w http.ResponseWriter, r *http.Request) {
	if _, v := s.openCheckout(w, r, http.StatusOK); v != nil {
		render(w, http.StatusOK, payPage, v)
	}
}

func (s *Stripe) payPost(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "billingtest: "+err.Error(), http.StatusBadRequest)
		return
	}
	cs, v := s.openCheckout(w, r, http.StatusConflict)
	if cs == nil {
		return
	}
	card := r.PostForm.Get("card")
	paid, err := s.pay(cs.ID, card, authMissing)
	if errors.Is(err, errAuthenticationRequired) {
		http.Redirect(w, r, "/pay/"+url.PathEscape(cs.ID)+"/confirm", http.StatusSeeOther)
		return
	}
	s.payDone(w, r, v, paid.RedirectURL, err, card)
}

// payDone answers a payment attempt: a redirect to where the session sends
// the customer, or the Checkout page with the error.
func (s *Stripe) payDone(w http.ResponseWriter, r *http.Request, v *payView, to string, err error, card string) {
	var ce *CardError
	switch {
	case err == nil && to == "":
		// No URL to go to (cannot happen for a hosted session).
		cs := s.CheckoutSession(v.ID)
		render(w, http.StatusOK, statusPage, closedView(cs))
	case err == nil:
		http.Redirect(w, r, to, http.StatusSeeOther)
	case errors.As(err, &ce):
		v.Card, v.Error = card, ce.Message
		render(w, http.StatusPaymentRequired, payPage, v)
	case errors.Is(err, ErrSessionNotOpen):
		if cs := s.CheckoutSession(v.ID); cs != nil {
			render(w, http.StatusConflict, statusPage, closedView(cs))
			return
		}
		fallthrough
	default:
		v.Card, v.Error = card, "Something went wrong: "+strings.TrimPrefix(err.Error(), "billingtest: ")
		render(w, http.StatusInternalServerError, payPage, v)
	}
}

func (s *Stripe) confirmGet(w http.ResponseWriter, r *http.Request) {
	if _, v := s.openCheckout(w, r, http.StatusOK); v != nil {
		render(w, http.StatusOK, confirmPage, &confirmView{Title: "Complete authentication", ID: v.ID, Amount: v.Total})
	}
}

func (s *Stripe) confirmPost(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "billingtest: "+err.Error(), http.StatusBadRequest)
		return
	}
	cs, v := s.openCheckout(w, r, http.StatusConflict)
	if cs == nil {
		return
	}
	var auth authStep
	switch r.PostForm.Get("action") {
	case "complete":
		auth = authApprove
	case "fail":
		auth = authFail
	default:
		http.Error(w, `billingtest: action must be "complete" or "fail"`, http.StatusBadRequest)
		return
	}
	paid, err := s.pay(cs.ID, CardNeedsAuth, auth)
	s.payDone(w, r, v, paid.RedirectURL, err, "")
}

func (s *Stripe) portalGet(w http.ResponseWriter, r *http.Request) {
	ps := s.portalSession(r.PathValue("id"))
	if ps == nil {
		render(w, http.StatusNotFound, statusPage, notFoundView("portal session"))
		return
	}
	v := s.portal(ps)
	v.Flash = portalFlashes[r.URL.Query().Get("done")]
	render(w, http.StatusOK, portalPage, v)
}

func (s *Stripe) portalPost(w http.ResponseWriter, r *http.Request) {
	ps := s.portalSession(r.PathValue("id"))
	if ps == nil {
		render(w, http.StatusNotFound, statusPage, notFoundView("portal session"))
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "billingtest: "+err.Error(), http.StatusBadRequest)
		return
	}
	done, status, msg, card := s.portalAction(ps, r.PostForm)
	if msg != "" {
		v := s.portal(ps)
		v.Error, v.Card = msg, card
		render(w, status, portalPage, v)
		return
	}
	http.Redirect(w, r, "/portal/"+url.PathEscape(ps.ID)+"?done="+done, http.StatusSeeOther)
}

// portalAction performs a portal form's action. It returns the code of the
// message to show after the redirect, or an HTTP status and an error
// message (and the card number to show again).
func (s *Stripe) portalAction(ps *stripe.BillingPortalSession, form url.Values) (done string, status int, msg, card string) {
	action := form.Get("action")
	if action == "update_card" {
		card = form.Get("card")
		var ce *CardError
		switch _, err := s.UpdateCard(ps.Customer, card); {
		case errors.As(err, &ce):
			return "", http.StatusPaymentRequired, ce.Message, card
		case err != nil:
			return "", http.StatusInternalServerError, simError(err), card
		}
		return "card", 0, "", ""
	}
	subID := form.Get("subscription")
	sub := s.Subscription(subID)
	if sub == nil || sub.Customer == nil || sub.Customer.ID != ps.Customer {
		return "", http.StatusNotFound, "There is no such subscription.", ""
	}
	var err error
	switch action {
	case "cancel_at_period_end":
		done = "canceling"
		_, err = s.CancelAtPeriodEnd(subID)
	case "uncancel":
		done = "renewed"
		_, err = s.Uncancel(subID)
	case "cancel_now":
		done = "canceled"
		_, err = s.CancelNow(subID)
	case "switch":
		priceID := form.Get("price")
		if p := s.Price(priceID); p == nil || !p.Active || p.Recurring == nil {
			return "", http.StatusBadRequest, "Choose one of the plans offered.", ""
		}
		if sub.Items != nil && len(sub.Items.Data) > 0 && sub.Items.Data[0].Price != nil &&
			sub.Items.Data[0].Price.ID == priceID {
			return "", http.StatusBadRequest, "You are already on this plan.", ""
		}
		done = "switched"
		_, err = s.ChangePrice(subID, priceID)
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
