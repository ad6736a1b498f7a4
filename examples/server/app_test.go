package main

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
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

	assert.Equal(t, http.StatusNotFound, c.get("/no-such-page").Status)
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
	assert.Empty(t, a.offline.Events(), "no checkout started")
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

	// The third attempt: past_due, locked.
	a.offline.Advance(3 * day) // attempts 2 and 3, 1 and 3 days after the first
	flush(t, a)
	page = c.get("/account")
	assert.NotContains(t, page.Body, `id="payment-failing"`)
	assert.Contains(t, text(page.Body, "past-due"), "3 payment attempts failed")
	assert.Equal(t, "Past due", text(page.Body, "status"))
	assert.Equal(t, "locked", text(page.Body, "access"))
	assert.NotContains(t, page.Body, `id="renews-on"`)

	// Canceled.
	_, err := a.offline.CancelNow(membershipOf(t, a, email).SubscriptionID)
	require.NoError(t, err)
	flush(t, a)
	page = c.get("/account")
	assert.Equal(t, "Canceled", text(page.Body, "status"))
	assert.NotContains(t, page.Body, `id="past-due"`)
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
	// Outside the CSRF protection: a request with another Origin reaches
	// the handler (and its signature check).
	c.header.Set("Origin", "https://stripe.example")
	assert.Equal(t, http.StatusBadRequest, c.post("/stripe/webhook", url.Values{"x": {"y"}}).Status)
}

func TestDevPanel(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t)
	c := newClient(t, srv.URL)

	page := c.get("/dev")
	require.Equal(t, http.StatusOK, page.Status)
	assert.Contains(t, page.Body, `id="no-events"`)
	assert.Contains(t, page.Body, `id="no-parked"`)

	// Nothing scheduled: the clock stays.
	before := a.offline.Now()
	res := c.post("/dev/advance", url.Values{"step": {"next"}})
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Equal(t, "/dev?msg=nothing-scheduled", res.Location)
	assert.Less(t, a.offline.Now().Sub(before), time.Minute)

	// A day, back to the page the button was on.
	res = c.post("/dev/advance", url.Values{"step": {"day"}, "return": {"/pricing?x=1"}})
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Equal(t, "/pricing?x=1", res.Location)
	assert.Contains(t, text(c.get("/pricing").Body, "sim-now"), "April 11, 2031")
	res = c.post("/dev/advance", url.Values{"step": {"month"}, "return": {"//evil.example/"}})
	assert.Equal(t, "/dev", res.Location)
	assert.Contains(t, text(c.get("/").Body, "sim-now"), "May 12, 2031")
	res = c.post("/dev/advance", url.Values{"step": {"year"}})
	assert.Equal(t, http.StatusBadRequest, res.Status)

	// After a purchase: the events, delivered, and the next action.
	c.signUp("ada@example.com")
	c.buy(a, "pro-monthly")
	page = c.get("/dev")
	assert.Contains(t, text(page.Body, "events"), "checkout.session.completed delivered")
	// Next: the renewal's invoice.upcoming, three days before it.
	assert.Contains(t, text(page.Body, "sim-next"), "June 9, 2031")
	res = c.post("/dev/advance", url.Values{"step": {"next"}, "return": {"/account"}})
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
	res = c.post("/dev/replay", url.Values{"event": {ev.ID}})
	require.Equal(t, http.StatusSeeOther, res.Status)
	assert.Equal(t, "/dev?msg=still-parked", res.Location)
	assert.Equal(t, http.StatusNotFound, c.post("/dev/replay", url.Values{"event": {"evt_nope"}}).Status)
}
