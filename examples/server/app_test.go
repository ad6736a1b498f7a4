package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
	"github.com/gobilling/billing/sqlstore"
)

func userCount(t *testing.T, a *app) int {
	t.Helper()
	n, err := a.users.count(context.Background())
	require.NoError(t, err)
	return n
}

func TestHomePage(t *testing.T) {
	t.Parallel()
	_, srv := newTestSite(t)
	c := newClient(t, srv.URL)
	res := c.get("/")
	require.Equal(t, http.StatusOK, res.Status)
	assert.Contains(t, res.Body, `id="offline-help"`)
	assert.Contains(t, res.Body, `id="nav-signup"`)
	assert.Contains(t, text(res.Body, "sim-now"), "April 10, 2031")
	assert.Equal(t, "nothing scheduled", text(res.Body, "sim-next"))
	assert.Contains(t, res.Header.Get("Content-Security-Policy"), "default-src 'self'")
	assert.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))

	css := c.get("/static/site.css")
	require.Equal(t, http.StatusOK, css.Status)
	assert.Contains(t, css.Header.Get("Content-Type"), "text/css")
	js := c.get("/static/site.js")
	require.Equal(t, http.StatusOK, js.Status)
	assert.Contains(t, js.Header.Get("Content-Type"), "text/javascript")
	assert.Contains(t, js.Body, "Redirecting to Stripe…")
	assert.Contains(t, res.Body, `<script src="/static/site.js" defer></script>`, "a file: the CSP allows no inline script")
}

// TestErrorPages: an unknown URL gets the site's 404 page, in its layout
// (as do a known one asked with another method, its 405), not ServeMux's
// plain text.
func TestErrorPages(t *testing.T) {
	t.Parallel()
	_, srv := newTestSite(t)
	visitor := newClient(t, srv.URL)
	for _, path := range []string{"/no-such-page", "/static/nope.css", "/members/nope", "/stripe/webhook/x", "/pricing/"} {
		res := visitor.get(path)
		require.Equal(t, http.StatusNotFound, res.Status, path)
		assert.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"), path)
		assert.Equal(t, "Page not found", text(res.Body, "heading"), path)
		assert.Contains(t, text(res.Body, "error"), "There is no page at this address", path)
		assert.Contains(t, res.Body, `<link rel="stylesheet" href="/static/site.css">`, path)
		assert.Contains(t, res.Body, `id="nav-signin"`, path)
		assert.NotContains(t, res.Body, "404 page not found", path)
		assert.Contains(t, res.Header.Get("Content-Security-Policy"), "default-src 'self'", path)
	}

	c := newClient(t, srv.URL)
	c.signUp("ada@example.com")
	res := c.get("/no-such-page")
	require.Equal(t, http.StatusNotFound, res.Status)
	assert.Equal(t, "ada@example.com", text(res.Body, "nav-email"), "signed in, on the 404 page too")

	// A path of the site, with another method: 405, its Allow header, the
	// site's page.
	res = c.get("/signout")
	require.Equal(t, http.StatusMethodNotAllowed, res.Status)
	assert.Equal(t, "POST", res.Header.Get("Allow"))
	assert.Equal(t, "Method not allowed", text(res.Body, "heading"))
	res = c.post("/pricing", url.Values{})
	require.Equal(t, http.StatusMethodNotAllowed, res.Status)
	assert.Equal(t, "GET, HEAD", res.Header.Get("Allow"))

	// ServeMux's other answers go through: a path to clean is redirected.
	res = c.get("/members/../account")
	assert.Equal(t, http.StatusTemporaryRedirect, res.Status)
	assert.Equal(t, "/account", res.Location)
}

func TestSignUpValidation(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t)
	newClient(t, srv.URL).signUp("ada@example.com")
	long := strings.Repeat("x", 73)
	for _, tc := range []struct {
		name, email, password, confirm, want string
	}{
		{"bad email", "ada.example.com", "correct horse", "correct horse", "Enter a valid email address"},
		{"email with a name", "Ada <ada2@example.com>", "correct horse", "correct horse", "Enter a valid email address"},
		{"empty email", "", "correct horse", "correct horse", "Enter a valid email address"},
		{"short password", "bob@example.com", "short", "short", "at least 8 characters"},
		{"long password", "bob@example.com", long, long, "at most 72 bytes"},
		{"passwords differ", "bob@example.com", "correct horse", "correct house", "The two passwords differ"},
		{"email taken", "ADA@example.com", "correct horse", "correct horse", "An account with this email already exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, srv.URL)
			res := c.post("/signup", url.Values{"email": {tc.email}, "password": {tc.password}, "confirm": {tc.confirm}})
			require.Equal(t, http.StatusUnprocessableEntity, res.Status)
			assert.Contains(t, text(res.Body, "form-errors"), tc.want)
			assert.NotContains(t, res.Body, tc.password, "a password is never sent back")
			assert.Contains(t, res.Body, `value="`+html.EscapeString(tc.email)+`"`, "the email is kept")
			assert.Equal(t, 1, userCount(t, a), "no user created")
			assert.Equal(t, http.StatusSeeOther, c.get("/account").Status, "not signed in")
		})
	}

	t.Run("unreadable form", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/signup", strings.NewReader("email=%zz"))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusBadRequest, res.StatusCode)
	})
	t.Run("form too large", func(t *testing.T) {
		c := newClient(t, srv.URL)
		res := c.post("/signup", url.Values{"email": {strings.Repeat("a", 70<<10)}})
		assert.Equal(t, http.StatusBadRequest, res.Status)
		assert.Equal(t, 1, userCount(t, a))
	})
}

func TestSignUpSignOutSignIn(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t)
	c := newClient(t, srv.URL)

	res := c.post("/signup", url.Values{"email": {" Ada@Example.com "}, "password": {"correct horse"}, "confirm": {"correct horse"}})
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Equal(t, "/pricing?msg=welcome", res.Location)
	cookie := res.Header.Get("Set-Cookie")
	assert.Contains(t, cookie, "HttpOnly")
	assert.Contains(t, cookie, "SameSite=Lax")
	welcome := c.get(res.Location)
	assert.Equal(t, "Welcome! Your account is ready: choose a plan.", text(welcome.Body, "flash"))
	assert.Contains(t, welcome.Body, `name="return" value="/pricing"`, "the dev bar comes back without the message")
	account := c.get("/account")
	require.Equal(t, http.StatusOK, account.Status)
	assert.Equal(t, "ada@example.com", text(account.Body, "nav-email"), "emails are stored lower-cased")
	assert.Equal(t, 1, userCount(t, a))

	// Sign out: the form needs the session's CSRF token.
	assert.Equal(t, http.StatusForbidden, c.post("/signout", url.Values{}).Status)
	sessionBefore := c.http.Jar.Cookies(mustURL(t, srv.URL))
	res = c.postForm("/signout", nil)
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Equal(t, "/?msg=signed-out", res.Location)
	assert.Equal(t, "You are signed out.", text(c.get(res.Location).Body, "flash"))
	res = c.get("/account")
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Equal(t, "/signin?next=%2Faccount", res.Location)

	// The old cookie is worthless: its session is gone.
	old := newClient(t, srv.URL)
	old.http.Jar.SetCookies(mustURL(t, srv.URL), sessionBefore)
	assert.Equal(t, http.StatusSeeOther, old.get("/account").Status)

	// Sign in.
	for _, tc := range []struct {
		name, email, password string
		status                int
		want                  string
	}{
		{"wrong password", "ada@example.com", "wrong horse", http.StatusUnauthorized, "Wrong email or password."},
		{"unknown email", "bob@example.com", "correct horse", http.StatusUnauthorized, "Wrong email or password."},
		{"empty", "", "", http.StatusUnprocessableEntity, "Enter your email and your password."},
	} {
		res := c.post("/signin", url.Values{"email": {tc.email}, "password": {tc.password}})
		require.Equal(t, tc.status, res.Status, tc.name)
		assert.Equal(t, tc.want, text(res.Body, "form-errors"), tc.name)
		assert.Empty(t, res.Header.Get("Set-Cookie"), tc.name)
	}
	res = c.post("/signin", url.Values{"email": {"ADA@example.com"}, "password": {"correct horse"}})
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Equal(t, "/account", res.Location)
	assert.Equal(t, http.StatusOK, c.get("/account").Status)

	// next= is followed only to a path of this site.
	for next, want := range map[string]string{
		"/members":              "/members",
		"//evil.example/":       "/account",
		"https://evil.example/": "/account",
		`/\evil.example`:        "/account",
	} {
		res := newClient(t, srv.URL).post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"correct horse"}, "next": {next}})
		assert.Equal(t, want, res.Location, next)
	}
	// The sign-in page carries next= into its form.
	page := c.get("/signin?next=%2Fmembers")
	assert.Contains(t, page.Body, `name="next" value="/members"`)
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t)
	form := url.Values{"email": {"ada@example.com"}, "password": {"correct horse"}, "confirm": {"correct horse"}}

	// A form posted from another site is refused before it is read.
	for name, h := range map[string][2]string{
		"Origin":         {"Origin", "https://evil.example"},
		"Sec-Fetch-Site": {"Sec-Fetch-Site", "cross-site"},
	} {
		c := newClient(t, srv.URL)
		c.header.Set(h[0], h[1])
		res := c.post("/signup", form)
		assert.Equal(t, http.StatusForbidden, res.Status, name)
		assert.Contains(t, text(res.Body, "error"), "sent from another site", name)
	}
	assert.Equal(t, 0, userCount(t, a))
	before := a.offline.Now()
	evil := newClient(t, srv.URL)
	evil.header.Set("Origin", "https://evil.example")
	assert.Equal(t, http.StatusForbidden, evil.post("/dev/advance", url.Values{"step": {"month"}}).Status)
	assert.Less(t, a.offline.Now().Sub(before), time.Hour, "the clock did not move")

	// The site's own origin is fine.
	c := newClient(t, srv.URL)
	c.header.Set("Origin", srv.URL)
	c.header.Set("Sec-Fetch-Site", "same-origin")
	require.Equal(t, http.StatusSeeOther, c.post("/signup", form).Status)

	// A signed-in form without the session's token, or with another
	// session's, is refused.
	other := newClient(t, srv.URL)
	other.signUp("bob@example.com")
	for name, token := range map[string]string{"none": "", "wrong": "nope", "another session's": other.csrf()} {
		res := c.post("/checkout", url.Values{"plan": {"pro-monthly"}, "csrf": {token}})
		assert.Equal(t, http.StatusForbidden, res.Status, name)
		assert.Equal(t, "Form expired", text(res.Body, "heading"), name)
	}
	assert.Len(t, a.offline.Events(), a.offlineSetup, "no checkout started")
}

func TestPricingPage(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t)

	visitor := newClient(t, srv.URL).get("/pricing")
	require.Equal(t, http.StatusOK, visitor.Status)
	assert.NotContains(t, visitor.Body, `id="buy-`)
	assert.Contains(t, visitor.Body, `href="/signup?next=/pricing">$29 / month</a>`)

	c := newClient(t, srv.URL)
	c.signUp("ada@example.com")
	page := c.get("/pricing")
	for _, p := range []string{"basic-monthly", "basic-yearly", "pro-monthly", "pro-yearly", "credits"} {
		assert.Contains(t, page.Body, `id="buy-`+p+`"`)
	}
	assert.Equal(t, "$290 / year", text(page.Body, "buy-pro-yearly"))
	assert.Equal(t, "Buy for $10", text(page.Body, "buy-credits"))
	assert.Equal(t, "0", text(page.Body, "credits-balance"))
	// Each form that leads to Stripe is marked for the script that
	// disables the buttons once one is clicked.
	assert.Equal(t, 5, strings.Count(page.Body, `<form method="post" action="/checkout" data-redirect>`))
	// The offline Stripe's products are named as the site names its
	// plans: no product name besides.
	assert.NotContains(t, page.Body, `class="muted product"`)

	// Subscribed: plans change in the portal; credits can still be bought.
	c.buy(a, "pro-monthly")
	page = c.get("/pricing")
	assert.Contains(t, page.Body, `id="subscribed-note"`)
	assert.Contains(t, text(page.Body, "tier-pro"), "your plan")
	assert.NotContains(t, page.Body, `id="buy-basic-monthly"`)
	assert.Contains(t, page.Body, `id="buy-credits"`)
}

func TestCheckout(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t)

	// A visitor is sent to sign in.
	res := newClient(t, srv.URL).post("/checkout", url.Values{"plan": {"pro-monthly"}})
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Equal(t, "/signin?next=%2Faccount", res.Location)

	c := newClient(t, srv.URL)
	c.signUp("ada@example.com")
	res = c.postForm("/checkout", url.Values{"plan": {"gold"}})
	require.Equal(t, http.StatusBadRequest, res.Status)
	assert.Equal(t, "Unknown plan", text(res.Body, "heading"))

	// Each button starts Checkout for its price, on the offline Stripe.
	for key, price := range map[string]string{"basic-yearly": "price_basic_yearly", "pro-monthly": "price_pro_monthly", "credits": "price_credits"} {
		id := c.startCheckout(a, key)
		cs := a.offline.CheckoutSession(id)
		require.NotNil(t, cs, key)
		assert.Equal(t, srv.URL+"/checkout/return?session_id={CHECKOUT_SESSION_ID}", cs.SuccessURL, key)
		assert.Equal(t, srv.URL+"/pricing", cs.CancelURL, key)
		u, err := a.users.byEmail(context.Background(), "ada@example.com")
		require.NoError(t, err)
		assert.Equal(t, u.ID, cs.ClientReferenceID, key)
		assert.Equal(t, price, cs.Metadata["billing_price_id"], key)
	}

	// With a live subscription, another is refused: the portal changes plans.
	c.buy(a, "pro-monthly")
	res = c.postForm("/checkout", url.Values{"plan": {"basic-monthly"}})
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Equal(t, "/account?msg=already-subscribed", res.Location)
	assert.Contains(t, text(c.get(res.Location).Body, "flash"), "You already have a subscription")
}

func TestReturnPage(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t)
	ada := newClient(t, srv.URL)
	ada.signUp("ada@example.com")
	bob := newClient(t, srv.URL)
	bob.signUp("bob@example.com")

	// Before paying: pending, and the page polls.
	id := ada.startCheckout(a, "pro-monthly")
	returnPath := "/checkout/return?session_id=" + id
	res := ada.get(returnPath)
	require.Equal(t, http.StatusOK, res.Status)
	assert.Contains(t, res.Body, `id="checkout-pending"`)
	assert.Contains(t, res.Body, `<meta http-equiv="refresh" content="2">`)

	// A visitor is sent to sign in, and back.
	res = newClient(t, srv.URL).get(returnPath)
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Equal(t, "/signin?next="+url.QueryEscape(returnPath), res.Location)

	// Paid: success, before any webhook is needed (SyncCheckout).
	_, err := a.offline.Pay(id, billingtest.CardOK)
	require.NoError(t, err)
	res = ada.get(returnPath)
	require.Equal(t, http.StatusOK, res.Status)
	assert.Contains(t, res.Body, `id="checkout-success"`)
	assert.NotContains(t, res.Body, `http-equiv="refresh"`)
	assert.Equal(t, "Pro", text(res.Body, "plan-name"))
	assert.Equal(t, "active", text(res.Body, "membership-status"))
	assert.Contains(t, text(res.Body, "checkout-success"), "renews on May 10, 2031")

	// Someone else's session is not shown, and nothing is applied to them.
	for _, path := range []string{returnPath, "/checkout/return?session_id=cs_nope", "/checkout/return"} {
		res = bob.get(path)
		require.Equal(t, http.StatusNotFound, res.Status, path)
		assert.Equal(t, "Checkout not found", text(res.Body, "heading"), path)
		assert.NotContains(t, res.Body, "checkout-success", path)
	}
	assert.Equal(t, billing.StatusNone, membershipOf(t, a, "bob@example.com").Status)

	// Expired without a payment: failure.
	id = ada.startCheckout(a, "credits")
	_, err = testcatalog.Expire(a.offline, id)
	require.NoError(t, err)
	res = ada.get("/checkout/return?session_id=" + id)
	require.Equal(t, http.StatusOK, res.Status)
	assert.Contains(t, text(res.Body, "checkout-failed"), "nothing was charged")

	// A credits pack: the balance.
	res = ada.buy(a, "credits")
	assert.Equal(t, "100", text(res.Body, "credits"))
	res = ada.buy(a, "credits")
	assert.Equal(t, "200", text(res.Body, "credits"))
	flush(t, a)
	assert.Equal(t, int64(200), membershipOf(t, a, "ada@example.com").Credits, "each purchase granted once, by page or webhook")
}

func TestAccountPage(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t)
	const email = "ada@example.com"
	c := newClient(t, srv.URL)
	c.signUp(email)

	// Nothing bought: no portal button (no Stripe customer yet).
	page := c.get("/account")
	require.Equal(t, http.StatusOK, page.Status)
	assert.Equal(t, "No membership", text(page.Body, "status"))
	assert.Equal(t, "locked", text(page.Body, "access"))
	assert.Equal(t, "0", text(page.Body, "credits"))
	assert.NotContains(t, page.Body, `id="manage-billing"`)
	assert.Contains(t, page.Body, `id="choose-plan"`)
	res := c.postForm("/billing/portal", nil)
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Equal(t, "/pricing?msg=no-customer", res.Location)

	// Credits only: a customer, so the portal, but no membership.
	c.buy(a, "credits")
	page = c.get("/account")
	assert.Equal(t, "100", text(page.Body, "credits"))
	assert.Equal(t, "No membership", text(page.Body, "status"))
	assert.Contains(t, page.Body, `id="manage-billing"`)
	assert.Contains(t, page.Body, `<form method="post" action="/billing/portal" data-redirect>`)
	res = c.postForm("/billing/portal", nil)
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.True(t, strings.HasPrefix(res.Location, a.offline.URL()+"/portal/"), res.Location)

	// Active.
	c.buy(a, "basic-monthly")
	flush(t, a)
	page = c.get("/account")
	assert.Equal(t, "Active", text(page.Body, "status"))
	assert.Equal(t, "Basic, monthly", text(page.Body, "plan"))
	assert.Equal(t, "May 10, 2031", text(page.Body, "renews-on"))
	assert.NotContains(t, page.Body, `id="payment"`)
	assert.Equal(t, "open", text(page.Body, "access"))
	assert.Equal(t, "100", text(page.Body, "credits"))
	assert.NotContains(t, page.Body, `id="choose-plan"`)
	assert.NotContains(t, page.Body, `id="payment-failing"`)
	assert.NotContains(t, page.Body, `id="past-due"`)

	// The card fails at the renewal: the failing-payment banner.
	customer := customerOf(t, a, email)
	require.NoError(t, testcatalog.Err(a.offline.UpdateCard(customer, billingtest.CardChargeFails)))
	a.offline.Advance(30*day + 2*time.Hour) // renewal, and its charge an hour later
	flush(t, a)
	page = c.get("/account")
	assert.Contains(t, text(page.Body, "payment-failing"), "Stripe has tried 1 time and will try again")
	assert.Equal(t, "Active", text(page.Body, "status"))
	assert.Equal(t, "open", text(page.Body, "access"))
	// The renewal's payment failed: no "Renews on", but how the payment
	// goes.
	assert.NotContains(t, page.Body, `id="renews-on"`)
	assert.NotContains(t, page.Body, "Renews on")
	assert.Equal(t, "Failed 1 time: Stripe will try again", text(page.Body, "payment"))

	// The third attempt: past_due, locked.
	a.offline.Advance(3 * day) // attempts 2 and 3, 1 and 3 days after the first
	flush(t, a)
	page = c.get("/account")
	assert.NotContains(t, page.Body, `id="payment-failing"`)
	assert.Contains(t, text(page.Body, "past-due"), "3 payment attempts failed")
	assert.Equal(t, "Past due", text(page.Body, "status"))
	assert.Equal(t, "locked", text(page.Body, "access"))
	assert.NotContains(t, page.Body, `id="renews-on"`)
	assert.NotContains(t, page.Body, "Renews on")
	assert.Equal(t, "Failed 3 times: access paused until a payment goes through", text(page.Body, "payment"))

	// Canceled.
	_, err := a.offline.CancelNow(membershipOf(t, a, email).SubscriptionID)
	require.NoError(t, err)
	flush(t, a)
	page = c.get("/account")
	assert.Equal(t, "Canceled", text(page.Body, "status"))
	assert.NotContains(t, page.Body, `id="past-due"`)
	assert.NotContains(t, page.Body, `id="payment"`)
	assert.Contains(t, page.Body, `id="choose-plan"`)
	assert.Contains(t, page.Body, `id="manage-billing"`)
	assert.Equal(t, "100", text(page.Body, "credits"))
}

func TestAccountCancelsOn(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t)
	c := newClient(t, srv.URL)
	c.signUp("ada@example.com")
	c.buy(a, "pro-yearly")
	_, err := a.offline.CancelAtPeriodEnd(membershipOf(t, a, "ada@example.com").SubscriptionID)
	require.NoError(t, err)
	page := c.get("/account") // waits for the webhook (offline mode)
	sub := a.offline.Subscription(membershipOf(t, a, "ada@example.com").SubscriptionID)
	assert.Equal(t, time.Unix(sub.CancelAt, 0).UTC().Format("January 2, 2006"), text(page.Body, "cancels-on"))
	assert.Equal(t, "April 10, 2032", text(page.Body, "cancels-on"), "a year of the offline Stripe is a calendar year")
	assert.Contains(t, page.Body, `id="cancel-note"`)
	assert.NotContains(t, page.Body, `id="renews-on"`)
	assert.Equal(t, "open", text(page.Body, "access"))
}

func TestMembersPages(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t)

	res := newClient(t, srv.URL).get("/members")
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Equal(t, "/signin?next=%2Fmembers", res.Location)

	c := newClient(t, srv.URL)
	c.signUp("ada@example.com")
	for _, path := range []string{"/members", "/members/pro"} {
		res = c.get(path)
		require.Equal(t, http.StatusForbidden, res.Status, path)
		assert.Equal(t, "This page is for members: choose a plan.", text(res.Body, "refused"), path)
		assert.Contains(t, res.Header.Get("Content-Type"), "text/html", path)
	}

	c.buy(a, "basic-monthly")
	res = c.get("/members")
	require.Equal(t, http.StatusOK, res.Status)
	assert.Equal(t, "Welcome, Basic member.", text(res.Body, "welcome"))
	assert.NotContains(t, res.Body, `id="to-pro"`)
	res = c.get("/members/pro")
	require.Equal(t, http.StatusForbidden, res.Status)
	assert.Contains(t, text(res.Body, "refused"), "This page is for pro members.")

	pro := newClient(t, srv.URL)
	pro.signUp("bob@example.com")
	pro.buy(a, "pro-monthly")
	res = pro.get("/members")
	require.Equal(t, http.StatusOK, res.Status)
	assert.Contains(t, res.Body, `id="to-pro"`)
	res = pro.get("/members/pro")
	require.Equal(t, http.StatusOK, res.Status)
	assert.Equal(t, "Welcome, Pro member.", text(res.Body, "welcome"))
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t)
	c := newClient(t, srv.URL)
	res := c.get("/healthz")
	require.Equal(t, http.StatusOK, res.Status)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Body), &got))
	assert.Equal(t, map[string]any{"status": "ok", "stripe": "offline", "database": "sqlite", "parked_events": 0.0}, got)

	require.NoError(t, a.db.Close())
	res = c.get("/healthz")
	require.Equal(t, http.StatusServiceUnavailable, res.Status)
	assert.Contains(t, res.Body, `"status":"unavailable"`)
}

func TestWebhookRoute(t *testing.T) {
	t.Parallel()
	_, srv := newTestSite(t)
	c := newClient(t, srv.URL)
	res := c.post("/stripe/webhook", url.Values{"x": {"y"}})
	assert.Equal(t, http.StatusBadRequest, res.Status, "unsigned")
	// Anything but a POST: 405, from billing's handler.
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete} {
		res := c.do(method, "/stripe/webhook", nil)
		assert.Equal(t, http.StatusMethodNotAllowed, res.Status, method)
		assert.Equal(t, "POST", res.Header.Get("Allow"), method)
	}
	// Outside the CSRF protection: a request with another Origin reaches
	// the handler (and its signature check).
	c.header.Set("Origin", "https://stripe.example")
	assert.Equal(t, http.StatusBadRequest, c.post("/stripe/webhook", url.Values{"x": {"y"}}).Status)
}

func TestDevPanel(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t)
	before := a.offline.Now()

	// A visitor sees the simulated time, and is sent to sign in for the
	// rest.
	visitor := newClient(t, srv.URL)
	home := visitor.get("/pricing?x=1")
	assert.Contains(t, text(home.Body, "sim-now"), "April 10, 2031")
	assert.NotContains(t, home.Body, `id="advance-day"`)
	assert.Contains(t, home.Body, `<a href="/signin?next=%2fpricing%3fx%3d1" id="dev-signin">`)
	for _, path := range []string{"/dev", "/dev/mailbox"} {
		res := visitor.get(path)
		require.Equal(t, http.StatusSeeOther, res.Status, path)
		assert.Equal(t, "/signin?next="+url.QueryEscape(path), res.Location, path)
	}
	for _, path := range []string{"/dev/advance", "/dev/replay", "/dev/maintain"} {
		res := visitor.post(path, url.Values{"step": {"month"}, "event": {"evt_x"}})
		require.Equal(t, http.StatusSeeOther, res.Status, path)
		assert.True(t, strings.HasPrefix(res.Location, "/signin?"), path)
	}
	assert.Less(t, a.offline.Now().Sub(before), time.Hour, "the clock did not move")

	// Signed in, the forms need the session's CSRF token.
	c := newClient(t, srv.URL)
	c.signUp("ada@example.com")
	res := c.post("/dev/advance", url.Values{"step": {"month"}})
	require.Equal(t, http.StatusForbidden, res.Status)
	assert.Equal(t, "Form expired", text(res.Body, "heading"))
	assert.Less(t, a.offline.Now().Sub(before), time.Hour, "the clock did not move")

	page := c.get("/dev")
	require.Equal(t, http.StatusOK, page.Status)
	assert.Contains(t, page.Body, `id="no-events"`, "not the site's own products")
	assert.Contains(t, page.Body, `id="no-parked"`)
	assert.Contains(t, page.Body, `id="advance-day"`)

	// Nothing scheduled: the clock stays.
	res = c.postForm("/dev/advance", url.Values{"step": {"next"}})
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Equal(t, "/dev?msg=nothing-scheduled", res.Location)
	assert.Less(t, a.offline.Now().Sub(before), time.Minute)

	// A day, back to the page the button was on.
	res = c.postForm("/dev/advance", url.Values{"step": {"day"}, "return": {"/pricing?x=1"}})
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Equal(t, "/pricing?x=1", res.Location)
	assert.Contains(t, text(c.get("/pricing").Body, "sim-now"), "April 11, 2031")
	res = c.postForm("/dev/advance", url.Values{"step": {"month"}, "return": {"//evil.example/"}})
	assert.Equal(t, "/dev", res.Location)
	assert.Contains(t, text(c.get("/").Body, "sim-now"), "May 12, 2031")
	res = c.postForm("/dev/advance", url.Values{"step": {"year"}})
	assert.Equal(t, http.StatusBadRequest, res.Status)

	// After a purchase: the events, delivered, and the next action.
	c.buy(a, "pro-monthly")
	page = c.get("/dev")
	assert.Contains(t, text(page.Body, "events"), "checkout.session.completed delivered")
	// Next: the renewal's invoice.upcoming, three days before it.
	assert.Contains(t, text(page.Body, "sim-next"), "June 9, 2031")
	res = c.postForm("/dev/advance", url.Values{"step": {"next"}, "return": {"/account"}})
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Contains(t, text(c.get("/account").Body, "sim-now"), "June 9, 2031")
	assert.Contains(t, text(c.get("/dev").Body, "sim-next"), "June 12, 2031", "then the renewal")

	// A webhook for a customer no user is linked to is parked, listed, and
	// can be replayed (here it stays parked).
	ev := a.offline.NewEvent("customer.subscription.updated", map[string]any{
		"id": "sub_elsewhere", "object": "subscription", "customer": "cus_elsewhere", "status": "active",
		"items": map[string]any{"object": "list", "data": []any{}},
	})
	req := billingtest.SignedRequest(offlineWebhookSecret, ev.JSON)
	req.URL.Path = "/stripe/webhook"
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), "parked")
	page = c.get("/dev")
	assert.Contains(t, text(page.Body, "parked"), ev.ID)
	assert.Contains(t, text(page.Body, "parked"), "cus_elsewhere")
	var health map[string]any
	require.NoError(t, json.Unmarshal([]byte(c.get("/healthz").Body), &health))
	assert.Equal(t, 1.0, health["parked_events"])
	res = c.postForm("/dev/replay", url.Values{"event": {ev.ID}})
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Equal(t, "/dev?msg=still-parked", res.Location)
	assert.Equal(t, http.StatusNotFound, c.postForm("/dev/replay", url.Values{"event": {"evt_nope"}}).Status)

	// Maintenance, one round: offline, Maintain does not run beside the
	// server (its waits would move the clock); the button runs
	// MaintainOnce, which does not move it either.
	before = a.offline.Now()
	assert.Contains(t, c.get("/dev").Body, `id="maintain"`)
	res = c.postForm("/dev/maintain", nil)
	require.Equal(t, http.StatusSeeOther, res.Status, res.Body)
	assert.Equal(t, "/dev?msg=maintained", res.Location)
	assert.Less(t, a.offline.Now().Sub(before), time.Minute, "the clock did not move")
	assert.Contains(t, text(c.get("/dev?msg=maintained").Body, "flash"), "Maintenance ran once")
}

// refusedNext are next= and return= values that lead off the site, or
// are not clean ASCII paths (no path of the site is: the Unicode ones are
// refused rather than guessed about), as they come in a URL's query or a
// form's body, percent-encoded as an attacker would: every route that
// takes one must fall back to its default.
var refusedNext = []string{
	// Two slashes: another host.
	"//evil.example", "///evil.example", "//evil.example/account", "%2F%2Fevil.example", "/%2F/evil.example", "%2F%2F%2Fevil.example",
	// Tabs, newlines and carriage returns, which browsers drop from a URL:
	// "/\t/evil.example" becomes //evil.example.
	"/%09/evil.example", "/%0A/evil.example", "/%0D/evil.example", "/%0D%0A/evil.example", "/%09%09/evil.example",
	"%09//evil.example", "/%0A%0D/evil.example", "/%00/evil.example", "/%7F/evil.example", "%20//evil.example",
	// Backslashes, which browsers read as slashes.
	"/%5Cevil.example", "%5C%5Cevil.example", "%5C/evil.example", "/%5C/evil.example", "%2F%5Cevil.example", "/%5C%5Cevil.example",
	"/account%5C..%5C%5Cevil.example",
	// Schemes.
	"https://evil.example", "https:%2F%2Fevil.example", "https:evil.example", "HTTPS://evil.example", "http://evil.example/account",
	"https:/evil.example", "javascript:alert(1)", "JaVaScRiPt:alert(document.cookie)", "%20javascript:alert(1)", "java%0Ascript:alert(1)",
	"data:text/html,%3Cscript%3Ealert(1)%3C/script%3E", "vbscript:msgbox(1)", "/javascript:alert(1)%0A",
	// Unicode: fullwidth solidus, ideographic full stop, no-break and
	// zero-width spaces, right-to-left override, an overlong slash.
	"%EF%BC%8F%EF%BC%8Fevil.example", "/%EF%BC%8F/evil.example", "/%EF%BC%8Fevil.example", "/%E3%80%82evil.example",
	"/%C2%A0/evil.example", "/%E2%80%8B/evil.example", "/%E2%80%AE/evil.example", "/%C0%AF/evil.example", "%E2%88%95%E2%88%95evil.example",
	// Not a path at all.
	"evil.example", "@evil.example", ".evil.example", "",
}

// localNext are odd values that are clean paths of this site all the
// same: they may be followed, and lead to the site.
var localNext = []string{
	"/.//evil.example", "/..//evil.example", "/@evil.example", "/%252F%252Fevil.example", "/%255Cevil.example", "/pricing%3Fx=//evil.example",
}

// sameSite reports whether a browser that gets this Location stays on the
// site: it must be clean ASCII, and once the browser has dropped tabs and
// newlines and read backslashes as slashes, a path of one leading slash,
// which resolves to the site's own scheme and host.
func sameSite(base *url.URL, loc string) bool {
	for i := range len(loc) {
		if c := loc[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	browser := strings.NewReplacer("\t", "", "\n", "", "\r", "", `\`, "/").Replace(loc)
	if !strings.HasPrefix(browser, "/") || strings.HasPrefix(browser, "//") {
		return false
	}
	u, err := base.Parse(browser)
	return err == nil && u.Scheme == base.Scheme && u.Host == base.Host
}

var nextField = regexp.MustCompile(`name="next" value="([^"]*)"`)

// TestSafeRedirects sends hostile next= and return= values through every
// route that takes one: the sign-in and sign-up pages (which carry next=
// into their forms and their links to each other), their forms, and the
// dev bar's clock form. Each redirect stays on the site; each hostile
// value gives the route's default.
func TestSafeRedirects(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t)
	base := mustURL(t, srv.URL)
	newClient(t, srv.URL).signUp("ada@example.com")
	dev := newClient(t, srv.URL)
	dev.signUp("dev@example.com")
	csrf := url.QueryEscape(dev.csrf())

	check := func(t *testing.T, raw string, offSite bool) {
		// The pages: next= reaches the form only if it is safe.
		for _, page := range []string{"/signin", "/signup"} {
			res := newClient(t, srv.URL).get(page + "?next=" + raw)
			require.Equal(t, http.StatusOK, res.Status, page)
			m := nextField.FindStringSubmatch(res.Body)
			require.NotNil(t, m, page)
			next := html.UnescapeString(m[1])
			if offSite {
				assert.Empty(t, next, "%s?next=%s", page, raw)
				other := map[string]string{"/signin": `<a href="/signup">Create an account</a>`, "/signup": `<a href="/signin">Sign in</a>`}[page]
				assert.Contains(t, res.Body, other, "%s?next=%s: the link to the other page carries no next=", page, raw)
			} else {
				assert.True(t, next == "" || sameSite(base, next), "%s?next=%s: %q", page, raw, next)
			}
		}

		// The forms: the redirect after signing in or up, and the dev
		// bar's.
		for _, tc := range []struct{ name, path, body, def string }{
			{"sign in", "/signin", "email=ada%40example.com&password=correct+horse&next=" + raw, "/account"},
			{"sign up", "/signup", "email=" + url.QueryEscape(rand.Text()) + "%40example.com&password=correct+horse&confirm=correct+horse&next=" + raw, "/pricing?msg=welcome"},
			{"dev bar", "/dev/advance", "csrf=" + csrf + "&step=day&return=" + raw, "/dev"},
		} {
			c := dev
			if tc.name != "dev bar" {
				c = newClient(t, srv.URL)
			}
			res := c.postRaw(tc.path, tc.body)
			require.Equal(t, http.StatusSeeOther, res.Status, "%s, %s: %s", tc.name, raw, res.Body)
			if offSite {
				assert.Equal(t, tc.def, res.Location, "%s, %s", tc.name, raw)
			} else {
				assert.True(t, res.Location == tc.def || sameSite(base, res.Location), "%s, %s: %q", tc.name, raw, res.Location)
			}
		}
	}
	for _, raw := range refusedNext {
		t.Run("refused "+raw, func(t *testing.T) { check(t, raw, true) })
	}
	for _, raw := range localNext {
		t.Run("local "+raw, func(t *testing.T) { check(t, raw, false) })
	}

	// A long path is refused too; the site's own paths are followed.
	assert.Empty(t, safePath("/"+strings.Repeat("a", maxPathLen)))
	for _, next := range []string{"/members", "/members/pro", "/checkout/return?session_id=cs_test_123", "/pricing#credits", "/account?msg=welcome&x=%2F%2F"} {
		res := newClient(t, srv.URL).post("/signin", url.Values{"email": {"ada@example.com"}, "password": {"correct horse"}, "next": {next}})
		assert.Equal(t, next, res.Location)
		assert.Equal(t, next, safePath(next))
	}
	res := dev.postRaw("/dev/advance", "csrf="+csrf+"&step=day&return=%2Fpricing%3Fx%3D1")
	assert.Equal(t, "/pricing?x=1", res.Location)
	assert.NotNil(t, a.offline)
}

// TestOfflineStripeNamesPlans: the offline Stripe's Checkout and portal
// pages show the site's products and their amounts, not price IDs.
func TestOfflineStripeNamesPlans(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t)
	c := newClient(t, srv.URL)
	c.signUp("ada@example.com")
	fetch := func(u string) string {
		t.Helper()
		res, err := http.Get(u)
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, u)
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return string(b)
	}

	for key, want := range map[string][2]string{
		"pro-monthly":  {"Pro", "$29.00 / month"},
		"basic-yearly": {"Basic", "$90.00 / year"},
		"credits":      {"100 credits", "$10.00"},
	} {
		pay := fetch(a.offline.URL() + "/pay/" + c.startCheckout(a, key))
		assert.Contains(t, pay, `<span class="product">`+html.EscapeString(want[0])+`</span>`, key)
		assert.Contains(t, pay, `<td class="num unit-price">`+want[1]+`</td>`, key)
	}

	c.buy(a, "pro-monthly")
	res := c.postForm("/billing/portal", nil)
	require.Equal(t, http.StatusSeeOther, res.Status)
	portal := fetch(res.Location)
	sub := membershipOf(t, a, "ada@example.com").SubscriptionID
	assert.Equal(t, "Pro", text(portal, "name-"+sub))
	assert.Equal(t, "$29.00 / month", text(portal, "plan-"+sub))
	for _, option := range []string{"Basic — $9.00 / month", "Basic — $90.00 / year", "Pro — $290.00 / year"} {
		assert.Contains(t, portal, ">"+option+"</option>")
	}
	assert.NotContains(t, portal, ">price_")
}

// stripeDown is a Stripe out of reach: its URL, and how many calls it got.
type stripeDown interface {
	URL() string
	calls() int
}

// hungStripe is a Stripe that accepts connections and never answers.
type hungStripe struct {
	ln       net.Listener
	mu       sync.Mutex
	conns    []net.Conn
	accepted int
}

func newHungStripe(t *testing.T) *hungStripe {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h := &hungStripe{ln: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, conn)
			h.accepted++
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.conns {
			c.Close()
		}
	})
	return h
}

func (h *hungStripe) URL() string { return "http://" + h.ln.Addr().String() }

// calls counts the connections: one per call, since none is answered.
func (h *hungStripe) calls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.accepted
}

// throttlingStripe answers 429 to every call, at once: billing retries
// each, pausing 0.5 s, then 1 s.
type throttlingStripe struct {
	srv *httptest.Server
	n   atomic.Int64
}

func newThrottlingStripe(t *testing.T) *throttlingStripe {
	s := &throttlingStripe{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests."}}`)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *throttlingStripe) URL() string { return s.srv.URL }
func (s *throttlingStripe) calls() int  { return int(s.n.Load()) }

// TestStripeOutOfReach runs the site in Stripe mode against a Stripe out
// of reach, with the Stripe deadline and the WriteTimeout scaled down
// (200 ms, 1 s): one that accepts the connection and never answers, and
// one that answers 429 at once to every call, which billing retries after
// pauses of 0.5 and 1 s, past the WriteTimeout. The site starts (without
// amounts on its pricing page), and Buy, Manage billing and the Checkout
// return page answer with the site's own "Billing is unavailable" page: a
// whole response, within the WriteTimeout (past it, the server would drop
// the connection, and the client here would fail), which a browser shows
// and does not send again.
func TestStripeOutOfReach(t *testing.T) {
	t.Parallel()
	for name, newStripe := range map[string]func(*testing.T) stripeDown{
		"never answers": func(t *testing.T) stripeDown { return newHungStripe(t) },
		"always 429":    func(t *testing.T) stripeDown { return newThrottlingStripe(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			down := newStripe(t)
			db, err := sqlstore.OpenSQLite(filepath.Join(t.TempDir(), "site.db"))
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			srv := httptest.NewUnstartedServer(nil)
			a, err := newApp(context.Background(), appConfig{
				SiteURL:        "http://" + srv.Listener.Addr().String(),
				DB:             db,
				Dialect:        sqlstore.SQLite,
				Stripe:         stripeEnv{SecretKey: "sk_test_down", WebhookSecret: "whsec_down", APIBase: down.URL(), Prices: offlinePrices},
				Logger:         testLogger(t),
				BcryptCost:     bcrypt.MinCost,
				StripeDeadline: 200 * time.Millisecond,
				WriteTimeout:   time.Second,
			})
			require.NoError(t, err, "Stripe out of reach at start-up: the site starts all the same")
			srv.Config = newServer(a, a.writeTimeout, testLogger(t))
			srv.Start()
			t.Cleanup(func() {
				srv.Close()
				a.Close()
			})
			assert.Positive(t, down.calls(), "the prices were asked for at start-up")

			c := newClient(t, srv.URL)
			c.signUp("ada@example.com")
			page := c.get("/pricing")
			require.Equal(t, http.StatusOK, page.Status)
			assert.Equal(t, "Monthly", text(page.Body, "buy-pro-monthly"), "no amounts")

			unavailable := func(what string, do func() response) {
				t.Helper()
				before := down.calls()
				res := do()
				require.Equal(t, http.StatusBadGateway, res.Status, what)
				assert.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"), what)
				assert.Equal(t, "Billing is unavailable", text(res.Body, "heading"), what)
				assert.Contains(t, text(res.Body, "error"), "Nothing was charged", what)
				assert.Contains(t, res.Body, `id="nav-email"`, "%s: the site's page, in its layout", what)
				assert.Greater(t, down.calls(), before, "%s: the site did call Stripe", what)
			}
			buy := func() response { return c.postForm("/checkout", url.Values{"plan": {"pro-monthly"}}) }
			// Buy: billing creates the Stripe customer first.
			unavailable("buy", buy)

			// The pages of a user with a customer.
			u, err := a.users.byEmail(context.Background(), "ada@example.com")
			require.NoError(t, err)
			require.NoError(t, a.b.LinkCustomer(context.Background(), u.ID, "cus_down"))
			unavailable("buy, with a customer", buy)
			unavailable("manage billing", func() response { return c.postForm("/billing/portal", nil) })
			unavailable("the return page", func() response { return c.get("/checkout/return?session_id=cs_test_123") })
			assert.Equal(t, billing.StatusNone, membershipOf(t, a, "ada@example.com").Status)
		})
	}

	// A deadline at or past the WriteTimeout is refused.
	_, err := newApp(context.Background(), appConfig{SiteURL: "http://127.0.0.1:1", StripeDeadline: time.Second, WriteTimeout: time.Second})
	assert.ErrorContains(t, err, "must be positive and below the server's WriteTimeout")
}
