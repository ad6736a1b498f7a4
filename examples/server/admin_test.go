package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
)

const adminEmail = "root@example.com"

// TestAdminHidden: the admin page, its forms and /metrics answer the
// site's own 404 to everyone but the admins, signed in or not, whatever
// the method, as a page that does not exist; and the nav links to it for
// admins only.
func TestAdminHidden(t *testing.T) {
	t.Parallel()
	_, srv := newTestSite(t, withAdmins(adminEmail, "other@example.com"))
	paths := []string{"/admin", "/metrics", "/admin/parked/replay", "/admin/parked/discard", "/admin/hooks/replay", "/admin/hooks/discard"}
	hidden := func(c *client, who string) {
		t.Helper()
		missing := c.get("/no-such-page")
		require.Equal(t, http.StatusNotFound, missing.Status)
		for _, path := range paths {
			for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete} {
				form := url.Values{"event": {"evt_x"}, "key": {"k"}}
				if c.header.Get("Origin") == "" && method == http.MethodPost {
					form.Set("csrf", csrfOf(c))
				}
				res := c.do(method, path, form)
				require.Equal(t, http.StatusNotFound, res.Status, "%s: %s %s", who, method, path)
				assert.Empty(t, res.Header.Get("Allow"), "%s: %s %s", who, method, path)
				if method != http.MethodHead {
					// The same page but for the offline dev bar, which
					// comes back to the page it is on.
					assert.Equal(t, devBarHTML.ReplaceAllString(missing.Body, ""), devBarHTML.ReplaceAllString(res.Body, ""),
						"%s: %s %s: the site's 404 page", who, method, path)
				}
			}
		}
	}
	visitor := newClient(t, srv.URL)
	hidden(visitor, "a visitor")
	member := newClient(t, srv.URL)
	member.signUp("ada@example.com")
	hidden(member, "a member")
	assert.NotContains(t, member.get("/account").Body, `id="nav-admin"`)

	admin := newClient(t, srv.URL)
	admin.signUp("Root@Example.com") // emails are compared in lower case
	page := admin.get("/account")
	assert.Contains(t, page.Body, `<a href="/admin" id="nav-admin">Admin</a>`)
	res := admin.get("/admin")
	require.Equal(t, http.StatusOK, res.Status)
	assert.Equal(t, "Admin", text(res.Body, "heading"))
	// An admin gets the real answers: 405 for another method, 403 for a
	// form without its CSRF token.
	res = admin.do(http.MethodPut, "/admin", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, res.Status)
	assert.Equal(t, "GET, HEAD", res.Header.Get("Allow"))
	res = admin.get("/admin/parked/replay")
	assert.Equal(t, http.StatusMethodNotAllowed, res.Status)
	assert.Equal(t, "POST", res.Header.Get("Allow"))
	res = admin.post("/admin/parked/replay", url.Values{"event": {"evt_x"}})
	assert.Equal(t, http.StatusForbidden, res.Status)
	assert.Equal(t, "Form expired", text(res.Body, "heading"))
}

// deliver hands a signed webhook event to the site's handler, as the
// offline Stripe would.
func deliver(t *testing.T, a *app, payload []byte) {
	t.Helper()
	req := billingtest.SignedRequest(offlineWebhookSecret, payload)
	req.URL.Path = "/stripe/webhook"
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

// devBar matches the offline dev bar of a page.
var devBarHTML = regexp.MustCompile(`(?s)<aside class="devbar".*?</aside>`)

// csrfOf reads a signed-in client's CSRF token, "" for a visitor.
func csrfOf(c *client) string {
	m := csrfField.FindStringSubmatch(c.get("/").Body)
	if m == nil {
		return ""
	}
	return m[1]
}

// TestAdminPage: members by status, the recent events, the alerting
// rules' numbers, and the parked events, replayed or discarded.
func TestAdminPage(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t, withAdmins(adminEmail))
	ctx := context.Background()
	admin := newClient(t, srv.URL)
	admin.signUp(adminEmail)
	page := admin.get("/admin")
	require.Equal(t, http.StatusOK, page.Status)
	assert.Equal(t, "ok", text(page.Body, "health-status"))
	assert.Equal(t, "none yet", text(page.Body, "health-last-event"))
	assert.Contains(t, page.Body, `id="no-parked"`)
	assert.Contains(t, page.Body, `id="no-dead"`)
	assert.Contains(t, page.Body, `id="no-events"`)
	assert.Contains(t, text(page.Body, "rate-new-subscriptions"), "New subscriptions 0")
	assert.Contains(t, text(page.Body, "rate-webhook-failures"), "none yet")
	assert.Contains(t, text(page.Body, "rates-window"), "Counted by this process since it started")

	// Ada is a Pro member; Bob has no membership; Carol's ended.
	ada := newClient(t, srv.URL)
	ada.signUp("ada@example.com")
	ada.buy(a, "pro-monthly")
	bob := newClient(t, srv.URL)
	bob.signUp("bob@example.com")
	carol := newClient(t, srv.URL)
	carol.signUp("carol@example.com")
	carol.buy(a, "basic-yearly")
	_, err := a.offline.CancelNow(membershipOf(t, a, "carol@example.com").SubscriptionID)
	require.NoError(t, err)
	flush(t, a)

	page = admin.get("/admin")
	assert.Equal(t, "Active (1)", text(page.Body, "members-active"))
	assert.Equal(t, "Canceled (1)", text(page.Body, "members-canceled"))
	assert.Equal(t, "No membership (2)", text(page.Body, "members-none"))
	members := text(page.Body, "members")
	assert.Contains(t, members, "ada@example.com Pro, monthly renews May 10, 2031 0")
	assert.Contains(t, members, "carol@example.com Basic, yearly")
	assert.Less(t, strings.Index(members, "ada@"), strings.Index(members, "carol@"), "active first")
	assert.Less(t, strings.Index(members, "carol@"), strings.Index(members, "bob@"), "then ended, then none")

	events := text(page.Body, "recent-events")
	assert.Contains(t, events, "checkout.session.completed")
	assert.Contains(t, events, "customer.subscription.deleted")
	assert.Contains(t, events, " webhook")
	assert.Contains(t, text(page.Body, "rate-new-subscriptions"), "New subscriptions 2")
	assert.Contains(t, text(page.Body, "rate-cancellations"), "Cancellations 1")
	assert.Contains(t, text(page.Body, "rate-webhook-failures"), "0.0%")
	assert.Contains(t, text(page.Body, "rate-failed-payments"), "0.0% 0 of 2 payment attempts")

	// A subscription made at Stripe for a customer the site does not know
	// (in the Dashboard, say): its events are parked.
	sc := newStripeClient(offlineSecretKey, a.offline.URL(), http.DefaultClient)
	cus, err := sc.V1Customers.Create(ctx, &stripe.CustomerCreateParams{Email: stripe.String("zoe@example.com")})
	require.NoError(t, err)
	_, err = sc.V1Subscriptions.Create(ctx, &stripe.SubscriptionCreateParams{
		Customer:        stripe.String(cus.ID),
		Items:           []*stripe.SubscriptionCreateItemParams{{Price: stripe.String(offlinePrices.ProMonthly)}},
		TrialPeriodDays: stripe.Int64(14),
	})
	require.NoError(t, err)
	flush(t, a)
	parked, _, err := a.b.ParkedEvents(ctx, "", 100)
	require.NoError(t, err)
	var types []string
	for _, p := range parked {
		types = append(types, p.Type)
	}
	assert.ElementsMatch(t, []string{"customer.subscription.created", "invoice.paid"}, types)
	page = admin.get("/admin")
	assert.Equal(t, "degraded", text(page.Body, "health-status"))
	list := text(page.Body, "parked-events")
	for _, p := range parked {
		assert.Contains(t, list, p.ID)
		assert.Contains(t, page.Body, `id="replay-`+p.ID+`"`)
		assert.Contains(t, page.Body, `id="discard-`+p.ID+`"`)
	}
	assert.Contains(t, list, cus.ID)

	// Zoe signs up; her customer is linked to her; the parked events are
	// replayed: she is a member.
	zoe := newClient(t, srv.URL)
	zoe.signUp("zoe@example.com")
	u, err := a.users.byEmail(ctx, "zoe@example.com")
	require.NoError(t, err)
	require.NoError(t, a.b.LinkCustomer(ctx, u.ID, cus.ID))
	for _, p := range parked {
		res := admin.postForm("/admin/parked/replay", url.Values{"event": {p.ID}})
		require.Equal(t, http.StatusSeeOther, res.Status, res.Body)
		assert.Equal(t, "/admin?msg=replayed#parked", res.Location)
	}
	assert.Equal(t, billing.StatusTrialing, membershipOf(t, a, "zoe@example.com").Status)
	page = admin.get("/admin?msg=replayed")
	assert.Equal(t, "The parked event was replayed.", text(page.Body, "flash"))
	assert.Contains(t, page.Body, `id="no-parked"`)
	assert.Equal(t, "Trial (1)", text(page.Body, "members-trialing"))
	assert.Contains(t, text(page.Body, "recent-events"), " replay")
	assert.Equal(t, "ok", text(page.Body, "health-status"))
	res := admin.postForm("/admin/parked/replay", url.Values{"event": {parked[0].ID}})
	assert.Equal(t, http.StatusNotFound, res.Status, "no longer parked")
	assert.Equal(t, "Not parked", text(res.Body, "heading"))

	// Another one, discarded.
	ev := a.offline.NewEvent("customer.subscription.updated", map[string]any{
		"id": "sub_elsewhere", "object": "subscription", "customer": "cus_elsewhere", "status": "active",
		"items": map[string]any{"object": "list", "data": []any{}},
	})
	deliver(t, a, ev.JSON)
	assert.Contains(t, text(admin.get("/admin").Body, "parked-events"), ev.ID)
	res = admin.postForm("/admin/parked/discard", url.Values{"event": {ev.ID}})
	require.Equal(t, http.StatusSeeOther, res.Status, res.Body)
	assert.Equal(t, "/admin?msg=discarded#parked", res.Location)
	_, err = a.b.ParkedEvent(ctx, ev.ID)
	assert.ErrorIs(t, err, billing.ErrNotParked)
	assert.Equal(t, http.StatusNotFound, admin.postForm("/admin/parked/discard", url.Values{"event": {ev.ID}}).Status)
}

// TestAdminDeadHooks: a change whose delivery fails (the emails' table is
// gone) is dead-lettered; the admin page lists it, and replays it once the
// cause is fixed, or discards it.
func TestAdminDeadHooks(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t, withAdmins(adminEmail), func(c *appConfig) { c.HookAttempts = 1 })
	ctx := context.Background()
	admin := newClient(t, srv.URL)
	admin.signUp(adminEmail)
	ada := newClient(t, srv.URL)
	ada.signUp("ada@example.com")

	// The emails cannot be stored: the credits' email fails, once, which
	// dead-letters it (HookAttempts: 1).
	_, err := a.db.ExecContext(ctx, `ALTER TABLE app_emails RENAME TO app_emails_away`)
	require.NoError(t, err)
	ada.buy(a, "credits")
	ada.buy(a, "credits")
	dead, _, err := a.b.DeadHooks(ctx, "", 10)
	require.NoError(t, err)
	require.Len(t, dead, 2)
	page := admin.get("/admin")
	assert.Equal(t, "degraded", text(page.Body, "health-status"))
	assert.Equal(t, "2", text(page.Body, "health-dead"))
	list := text(page.Body, "dead-hooks")
	assert.Contains(t, list, "credits_granted")
	assert.Contains(t, list, dead[0].Change.Key)
	assert.Contains(t, list, "app_emails")
	assert.Contains(t, list, "(1 attempt)")

	// Discarded: gone, and never sent.
	res := admin.postForm("/admin/hooks/discard", url.Values{"key": {dead[0].Change.Key}})
	require.Equal(t, http.StatusSeeOther, res.Status, res.Body)
	assert.Equal(t, "/admin?msg=hook-discarded#dead", res.Location)
	page = admin.get("/admin?msg=hook-discarded")
	assert.Equal(t, "The dead-lettered change was discarded.", text(page.Body, "flash"))
	assert.NotContains(t, text(page.Body, "dead-hooks"), dead[0].Change.Key)
	assert.Equal(t, http.StatusNotFound, admin.postForm("/admin/hooks/discard", url.Values{"key": {dead[0].Change.Key}}).Status)

	// The table is back: the other, replayed, is delivered (after the
	// request, offline) and its email sent.
	_, err = a.db.ExecContext(ctx, `ALTER TABLE app_emails_away RENAME TO app_emails`)
	require.NoError(t, err)
	res = admin.postForm("/admin/hooks/replay", url.Values{"key": {dead[1].Change.Key}})
	require.Equal(t, http.StatusSeeOther, res.Status, res.Body)
	assert.Equal(t, "/admin?msg=hook-replayed#dead", res.Location)
	page = admin.get("/admin?msg=hook-replayed")
	assert.Equal(t, "The change is due again: it is delivered in a moment.", text(page.Body, "flash"))
	assert.Contains(t, page.Body, `id="no-dead"`)
	assert.Equal(t, "ok", text(page.Body, "health-status"))
	emails, err := a.mail.list(ctx, 10)
	require.NoError(t, err)
	require.Len(t, emails, 1)
	assert.Equal(t, dead[1].Change.Key, emails[0].Key)
	assert.Equal(t, "100 credits added to your account", emails[0].Subject)
}
