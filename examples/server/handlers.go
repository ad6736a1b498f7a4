package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gobilling/billing"
)

func (a *app) planByKey(key string) (plan, bool) {
	for _, p := range a.plans {
		if p.Key == key {
			return p, true
		}
	}
	return plan{}, false
}

func (a *app) planByPrice(priceID string) (plan, bool) {
	for _, p := range a.plans {
		if p.PriceID == priceID {
			return p, true
		}
	}
	return plan{}, false
}

// membership is the signed-in user's membership; the zero Membership for
// a visitor.
func (a *app) membership(ctx context.Context) (billing.Membership, error) {
	s, ok := sessionFrom(ctx)
	if !ok {
		return billing.Membership{}, nil
	}
	return a.b.Membership(ctx, s.User.ID)
}

// subscribed reports whether the membership is a subscription Stripe
// still bills: a new Checkout would be refused (billing.ErrAlreadySubscribed),
// and plans change in the Customer Portal.
func subscribed(m billing.Membership) bool {
	switch m.Status {
	case billing.StatusActive, billing.StatusTrialing, billing.StatusPastDue, billing.StatusPaused:
		return true
	}
	return false
}

type homeView struct {
	Offline bool
	Plans   []plan
}

func (a *app) home(w http.ResponseWriter, r *http.Request) {
	a.render(w, r, http.StatusOK, "home", "Welcome", homeView{Offline: a.offline != nil, Plans: a.plans})
}

// tierView is a column of the pricing page.
type tierView struct {
	Name, Tier string
	// Product is the name of the tier's product at Stripe, when it is not
	// the site's name of the tier.
	Product string
	Plans   []plan
	// Current is set on the tier of the user's subscription.
	Current bool
}

type pricingView struct {
	Tiers      []tierView
	Packs      []plan
	Subscribed bool
	Membership billing.Membership
}

func (a *app) pricing(w http.ResponseWriter, r *http.Request) {
	m, err := a.membership(r.Context())
	if err != nil {
		a.billingUnavailable(w, r, "read membership", err)
		return
	}
	v := pricingView{Subscribed: subscribed(m), Membership: m}
	for _, p := range a.plans {
		if p.Tier == "" {
			v.Packs = append(v.Packs, p)
			continue
		}
		if n := len(v.Tiers); n == 0 || v.Tiers[n-1].Tier != p.Tier {
			t := tierView{Name: p.Name, Tier: p.Tier, Current: v.Subscribed && m.Tier == p.Tier}
			if p.Product != p.Name {
				t.Product = p.Product
			}
			v.Tiers = append(v.Tiers, t)
		}
		v.Tiers[len(v.Tiers)-1].Plans = append(v.Tiers[len(v.Tiers)-1].Plans, p)
	}
	a.render(w, r, http.StatusOK, "pricing", "Pricing", v)
}

// checkout starts a hosted Checkout for the plan of the form and sends the
// browser there.
func (a *app) checkout(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionFrom(r.Context())
	p, ok := a.planByKey(r.PostFormValue("plan"))
	if !ok {
		a.renderError(w, r, http.StatusBadRequest, "Unknown plan", "There is no such plan: choose one on the pricing page.")
		return
	}
	cs, err := a.b.Checkout(r.Context(), s.User.ID, billing.CheckoutOptions{PriceID: p.PriceID})
	if errors.Is(err, billing.ErrAlreadySubscribed) {
		http.Redirect(w, r, "/account?msg=already-subscribed", http.StatusSeeOther)
		return
	}
	if err != nil {
		a.billingUnavailable(w, r, "start checkout", err)
		return
	}
	http.Redirect(w, r, cs.URL, http.StatusSeeOther)
}

// returnView is the data of the page Checkout returns to.
type returnView struct {
	// State is "success", "pending" or "failed".
	State      string
	Result     billing.CheckoutResult
	Membership billing.Membership
	// Plan is the plan of the membership, after a subscription.
	Plan    plan
	OneTime bool
}

// checkoutReturn is where Checkout sends the user after paying. A redirect
// can beat the webhook, so the page reconciles from the Checkout Session
// itself (SyncCheckout), which also checks that the session is this
// user's.
func (a *app) checkoutReturn(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionFrom(r.Context())
	res, m, err := a.b.SyncCheckout(r.Context(), s.User.ID, r.URL.Query().Get("session_id"))
	if errors.Is(err, billing.ErrSessionNotOwned) {
		a.renderError(w, r, http.StatusNotFound, "Checkout not found",
			"There is no such checkout for your account. If you paid while signed in as someone else, sign in as them.")
		return
	}
	if err != nil {
		a.billingUnavailable(w, r, "sync checkout", err)
		return
	}
	v := returnView{Result: res, Membership: m, OneTime: res.Mode == billing.ModePayment}
	v.Plan, _ = a.planByPrice(m.PriceID)
	page := view{Title: "Checkout", Page: &v}
	switch {
	case res.Status == billing.SessionExpired:
		v.State = "failed"
	case res.Settled():
		v.State = "success"
	default:
		// Not paid yet (a payment still processing, or a session left
		// open): look again in a moment.
		v.State = "pending"
		page.Refresh = 2
	}
	a.renderView(w, r, http.StatusOK, "return", page)
}

// accountView is the data of the account page.
type accountView struct {
	Membership billing.Membership
	Plan       plan
	HasPlan    bool
	// Access says whether the members pages open now.
	Access bool
	// Banner is "failing" while payments fail within the grace attempts,
	// "past_due" once access is cut for non-payment.
	Banner string
	// Payment says how the payments go when they fail: "Failed 1 time:
	// Stripe will try again", or "... access paused". The page then shows
	// no renewal date: the period paid for is over.
	Payment string
	Grace   int
	Status  string
	// Subscribed: plans change in the portal, not on the pricing page.
	Subscribed bool
	// The dates to show; zero when they do not apply.
	RenewsOn, CancelsOn, TrialEnds time.Time
}

var statusLabels = map[billing.Status]string{
	billing.StatusNone:     "No membership",
	billing.StatusPending:  "Waiting for the first payment",
	billing.StatusTrialing: "Trial",
	billing.StatusActive:   "Active",
	billing.StatusPastDue:  "Past due",
	billing.StatusPaused:   "Paused",
	billing.StatusCanceled: "Canceled",
}

func (a *app) account(w http.ResponseWriter, r *http.Request) {
	m, err := a.membership(r.Context())
	if err != nil {
		a.billingUnavailable(w, r, "read membership", err)
		return
	}
	v := accountView{
		Membership: m,
		Access:     m.Active(a.now()),
		Grace:      graceAttempts,
		Status:     statusLabels[m.Status],
		Subscribed: subscribed(m),
		CancelsOn:  m.CancelAt,
	}
	v.Plan, v.HasPlan = a.planByPrice(m.PriceID)
	switch {
	case m.Status == billing.StatusPastDue:
		v.Banner = "past_due"
		v.Payment = "Past due: access paused until a payment goes through"
		if m.FailedAttempts > 0 {
			v.Payment = fmt.Sprintf("Failed %s: access paused until a payment goes through", times(m.FailedAttempts))
		}
	case m.FailedAttempts > 0:
		// Stripe's past_due within the grace attempts: the renewal's
		// payment failed, so the subscription does not "renew on" its
		// period's end, which is past or about to be.
		v.Banner = "failing"
		v.Payment = fmt.Sprintf("Failed %s: Stripe will try again", times(m.FailedAttempts))
	case m.Status == billing.StatusActive:
		v.RenewsOn = m.CurrentPeriodEnd
	case m.Status == billing.StatusTrialing:
		v.TrialEnds = m.TrialEnd
	}
	a.render(w, r, http.StatusOK, "account", "Your account", v)
}

// times is "1 time", "3 times".
func times(n int) string {
	if n == 1 {
		return "1 time"
	}
	return fmt.Sprintf("%d times", n)
}

// portal sends the user to the Stripe Customer Portal.
func (a *app) portal(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionFrom(r.Context())
	u, err := a.b.Portal(r.Context(), s.User.ID, billing.PortalOptions{})
	if errors.Is(err, billing.ErrNoCustomer) {
		http.Redirect(w, r, "/pricing?msg=no-customer", http.StatusSeeOther)
		return
	}
	if err != nil {
		a.billingUnavailable(w, r, "open the customer portal", err)
		return
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// membersOnly puts a page behind billing's RequireMember middleware (an
// active membership, of one of the tiers if any are given), after
// signedIn. RequireMember refuses with a plain-text 403; the site shows a
// page of its own instead, saying why.
func (a *app) membersOnly(page http.HandlerFunc, tiers ...string) http.Handler {
	gated := a.b.RequireMember(tiers...)(page)
	return a.signedIn(func(w http.ResponseWriter, r *http.Request) {
		rw := &refusalWriter{ResponseWriter: w}
		gated.ServeHTTP(rw, r)
		if rw.refused {
			a.membersOnlyRefused(w, r, tiers)
		}
	})
}

// refusalWriter passes a response through, except a 403, which it
// swallows (and records) for the caller to answer.
type refusalWriter struct {
	http.ResponseWriter
	refused bool
}

func (rw *refusalWriter) WriteHeader(code int) {
	if code == http.StatusForbidden {
		rw.refused = true
		return
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *refusalWriter) Write(b []byte) (int, error) {
	if rw.refused {
		return len(b), nil
	}
	return rw.ResponseWriter.Write(b)
}

// refusedView is the data of the members-only refusal.
type refusedView struct {
	// Reason is "past_due", "paused", "ended", "tier" (active, but another tier) or
	// "none".
	Reason string
	Tier   string // the tier the page needs, if any
}

func (a *app) membersOnlyRefused(w http.ResponseWriter, r *http.Request, tiers []string) {
	m, err := a.membership(r.Context())
	if err != nil {
		a.billingUnavailable(w, r, "read membership", err)
		return
	}
	v := refusedView{Reason: "none"}
	if len(tiers) > 0 {
		v.Tier = tiers[0]
	}
	switch {
	case m.Status == billing.StatusPastDue:
		v.Reason = "past_due"
	case m.Status == billing.StatusPaused:
		v.Reason = "paused"
	case m.Status == billing.StatusCanceled:
		v.Reason = "ended"
	case m.Active(a.now()):
		v.Reason = "tier"
	}
	a.render(w, r, http.StatusForbidden, "refused", "Members only", v)
}

// membersView is the data of the members pages.
type membersView struct {
	Membership billing.Membership
	Plan       plan
}

// members is the members-only page; RequireMember put the membership in
// the request's context.
func (a *app) members(w http.ResponseWriter, r *http.Request) {
	m, _ := billing.MembershipFrom(r.Context())
	p, _ := a.planByPrice(m.PriceID)
	a.render(w, r, http.StatusOK, "members", "Members", membersView{Membership: m, Plan: p})
}

func (a *app) proMembers(w http.ResponseWriter, r *http.Request) {
	m, _ := billing.MembershipFrom(r.Context())
	p, _ := a.planByPrice(m.PriceID)
	a.render(w, r, http.StatusOK, "pro", "Pro corner", membersView{Membership: m, Plan: p})
}

// healthz answers 200 when the database answers: the site's tables and
// billing's (through the Store: the parked events, which operators should
// watch anyway).
func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	mode := "stripe"
	if a.offline != nil {
		mode = "offline"
	}
	status := map[string]any{"status": "ok", "stripe": mode, "database": string(a.dialect)}
	code := http.StatusOK
	_, err := a.users.count(ctx)
	var parked int64
	if err == nil {
		parked, err = a.b.CountParked(ctx)
	}
	if err != nil {
		a.log.Error("health check", "error", err.Error())
		status["status"], code = "unavailable", http.StatusServiceUnavailable
	} else {
		status["parked_events"] = parked
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(status)
}
