package main

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"
	"golang.org/x/crypto/bcrypt"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
	"github.com/gobilling/billing/sqlstore"
)

// mailRow is an email as the mailbox page lists it.
type mailRow struct{ To, Subject, Body string }

var (
	mailItem    = regexp.MustCompile(`(?s)<li class="card mail".*?</li>`)
	mailTo      = regexp.MustCompile(`class="mail-to">([^<]*)<`)
	mailSubject = regexp.MustCompile(`class="mail-subject">([^<]*)<`)
	mailBody    = regexp.MustCompile(`(?s)class="mail-body">(.*?)</p>`)
)

// mailboxPage reads the emails the dev mailbox lists, newest first.
func (c *client) mailboxPage() []mailRow {
	c.t.Helper()
	res := c.get("/dev/mailbox")
	require.Equal(c.t, http.StatusOK, res.Status, res.Body)
	var rows []mailRow
	for _, li := range mailItem.FindAllString(res.Body, -1) {
		rows = append(rows, mailRow{
			To:      html.UnescapeString(mailTo.FindStringSubmatch(li)[1]),
			Subject: html.UnescapeString(mailSubject.FindStringSubmatch(li)[1]),
			Body:    html.UnescapeString(mailBody.FindStringSubmatch(li)[1]),
		})
	}
	return rows
}

// subjects are the subjects of rows, in their order.
func subjects(rows []mailRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Subject
	}
	return out
}

// advance moves the offline Stripe's clock with the dev bar's button
// (day, month or next) and returns the simulated time after it.
func (c *client) advance(a *app, step string) time.Time {
	c.t.Helper()
	res := c.postForm("/dev/advance", url.Values{"step": {step}, "return": {"/dev"}})
	require.Equal(c.t, http.StatusSeeOther, res.Status, res.Body)
	require.Equal(c.t, "/dev", res.Location)
	return a.offline.Now().UTC()
}

// refund refunds a payment on the offline Stripe through its API, as the
// Dashboard or a support tool would (the site has no refund button); all
// that is left when amount is zero.
func refund(t *testing.T, a *app, paymentIntent string, amount int64) {
	t.Helper()
	sc := stripe.NewClient(offlineSecretKey, stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL:               stripe.String(a.offline.URL()),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
		MaxNetworkRetries: stripe.Int64(0),
	})))
	p := &stripe.RefundCreateParams{PaymentIntent: stripe.String(paymentIntent)}
	if amount > 0 {
		p.Amount = stripe.Int64(amount)
	}
	_, err := sc.V1Refunds.Create(context.Background(), p)
	require.NoError(t, err)
}

// TestMailbox lives through a member's billing on the offline Stripe and
// checks the emails the site sends, each exactly once: a renewal whose
// card fails three times (locked), a fixed card (recovered), a
// cancellation at the period end and the end itself, a credits pack bought
// and refunded in two parts, and another member's trial about to end.
// Then everything is delivered again, events and changes: no email twice.
func TestMailbox(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t)
	ctx := context.Background()
	const adaEmail, bobEmail = "ada@example.com", "bob@example.com"
	ada := newClient(t, srv.URL)
	ada.signUp(adaEmail)

	page := ada.get("/dev/mailbox")
	require.Equal(t, http.StatusOK, page.Status)
	assert.Contains(t, page.Body, `id="no-mail"`)
	assert.Contains(t, page.Body, `href="/dev/mailbox"`, "the dev bar links to the mailbox")
	assert.Contains(t, ada.get("/dev").Body, `id="to-mailbox"`)

	// Pro, monthly, from April 10, 2031: nothing to write about.
	ada.buy(a, "pro-monthly")
	sub := membershipOf(t, a, adaEmail).SubscriptionID
	require.Empty(t, ada.mailboxPage())

	// The card fails: the renewal of May 10 is charged at 13:00 and
	// retried 1, 3 and 5 days later. The third failure locks access.
	require.NoError(t, testcatalog.Err(a.offline.UpdateCard(customerOf(t, a, adaEmail), billingtest.CardChargeFails)))
	assert.Equal(t, "2031-05-07", ada.advance(a, "next").Format(time.DateOnly)) // invoice.upcoming
	assert.Equal(t, "2031-05-10", ada.advance(a, "next").Format(time.DateOnly)) // the renewal's invoice
	require.Empty(t, ada.mailboxPage())
	ada.advance(a, "next") // the charge, an hour later
	got := ada.mailboxPage()
	require.Equal(t, []string{"Your payment failed (attempt 1)"}, subjects(got))
	assert.Equal(t, adaEmail, got[0].To)
	assert.Contains(t, got[0].Body, "Gopher Club Pro membership (attempt 1); we will try again on May 11, 2031.")
	assert.Contains(t, got[0].Body, srv.URL+"/account")

	ada.advance(a, "next")
	ada.advance(a, "next")
	got = ada.mailboxPage()
	require.Equal(t, []string{
		"Your membership is on hold",
		"Your payment failed (attempt 3)",
		"Your payment failed (attempt 2)",
		"Your payment failed (attempt 1)",
	}, subjects(got))
	assert.Contains(t, got[0].Body, "After 3 failed payment attempts, the members area is locked.")
	assert.Contains(t, got[1].Body, "we will try again on May 15, 2031")
	assert.Contains(t, got[2].Body, "we will try again on May 13, 2031")
	assert.Equal(t, billing.StatusPastDue, membershipOf(t, a, adaEmail).Status)

	// A working card: the next retry goes through.
	require.NoError(t, testcatalog.Err(a.offline.UpdateCard(customerOf(t, a, adaEmail), billingtest.CardOK)))
	assert.Equal(t, "2031-05-15", ada.advance(a, "next").Format(time.DateOnly))
	got = ada.mailboxPage()
	require.Equal(t, "Your payment went through", got[0].Subject)
	assert.Contains(t, got[0].Body, "in good standing again")
	assert.Len(t, got, 5)

	// Canceled at the period end (in the portal), then ended.
	_, err := a.offline.CancelAtPeriodEnd(sub)
	require.NoError(t, err)
	got = ada.mailboxPage()
	require.Equal(t, "Your membership ends on June 10, 2031", got[0].Subject)
	assert.Contains(t, got[0].Body, "the members area stays open until June 10, 2031")
	ada.advance(a, "month")
	got = ada.mailboxPage()
	require.Equal(t, "Your membership has ended", got[0].Subject)
	assert.Equal(t, billing.StatusCanceled, membershipOf(t, a, adaEmail).Status)

	// A credits pack, refunded in two parts.
	ada.buy(a, "credits")
	got = ada.mailboxPage()
	require.Equal(t, "100 credits added to your account", got[0].Subject)
	assert.Contains(t, got[0].Body, "Thank you for your purchase of $10: 100 credits")
	var pi string
	for _, id := range a.offline.SessionsOf(customerOf(t, a, adaEmail)) {
		if cs := a.offline.CheckoutSession(id); cs.Mode == stripe.CheckoutSessionModePayment && cs.PaymentIntent != nil {
			pi = cs.PaymentIntent.ID
		}
	}
	require.NotEmpty(t, pi, "the credits' PaymentIntent")
	refund(t, a, pi, 400)
	flush(t, a)
	got = ada.mailboxPage()
	require.Equal(t, "We refunded $4", got[0].Subject)
	assert.NotContains(t, got[0].Body, "in all")
	refund(t, a, pi, 0)
	got = ada.mailboxPage()
	require.Equal(t, "We refunded $6", got[0].Subject)
	assert.Contains(t, got[0].Body, "We refunded $6 of your payment ($10 refunded in all).")
	assert.Zero(t, membershipOf(t, a, adaEmail).Credits, "all credits taken back")

	// Bob's trial: two weeks of Basic, announced three days before it
	// ends. (The pricing page offers no trial: billing's Checkout does.)
	bob := newClient(t, srv.URL)
	bob.signUp(bobEmail)
	bobUser, err := a.users.byEmail(ctx, bobEmail)
	require.NoError(t, err)
	cs, err := a.b.Checkout(ctx, bobUser.ID, billing.CheckoutOptions{PriceID: offlinePrices.BasicMonthly, TrialDays: 14})
	require.NoError(t, err)
	paid, err := a.offline.Pay(cs.ID, billingtest.CardOK)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, bob.get(strings.TrimPrefix(paid.RedirectURL, srv.URL)).Status)
	require.Equal(t, billing.StatusTrialing, membershipOf(t, a, bobEmail).Status)
	trialEnd := time.Unix(a.offline.Subscription(membershipOf(t, a, bobEmail).SubscriptionID).TrialEnd, 0).UTC()
	require.Equal(t, "We refunded $6", bob.mailboxPage()[0].Subject, "nothing for bob yet")
	for a.offline.Now().Before(trialEnd.Add(-3 * day)) {
		bob.advance(a, "next")
	}
	want := []mailRow{
		{bobEmail, "Your trial ends on " + trialEnd.Format("January 2, 2006"), ""},
		{adaEmail, "We refunded $6", ""},
		{adaEmail, "We refunded $4", ""},
		{adaEmail, "100 credits added to your account", ""},
		{adaEmail, "Your membership has ended", ""},
		{adaEmail, "Your membership ends on June 10, 2031", ""},
		{adaEmail, "Your payment went through", ""},
		{adaEmail, "Your membership is on hold", ""},
		{adaEmail, "Your payment failed (attempt 3)", ""},
		{adaEmail, "Your payment failed (attempt 2)", ""},
		{adaEmail, "Your payment failed (attempt 1)", ""},
	}
	wantSubjects := func(rows []mailRow) []string {
		out := make([]string, len(rows))
		for i, r := range rows {
			out[i] = r.To + ": " + r.Subject
		}
		return out
	}
	final := ada.mailboxPage()
	require.Equal(t, wantSubjects(want), wantSubjects(final))
	assert.Contains(t, final[0].Body, "Gopher Club Basic membership ends on "+trialEnd.Format("January 2, 2006"))
	page = ada.get("/dev/mailbox")
	assert.Contains(t, text(page.Body, "mailbox"), "Sent May 11, 2031 13:00 UTC", "the simulated time of the second attempt")

	// Every event delivered again, as Stripe may: nothing is sent twice.
	for _, ev := range a.offline.Events() {
		req := billingtest.SignedRequest(offlineWebhookSecret, ev.JSON)
		req.URL.Path = "/stripe/webhook"
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, "%s %s: %s", ev.ID, ev.Type, rec.Body.String())
	}
	require.Equal(t, final, ada.mailboxPage())

	// Every change delivered to the handler again, as billing may (after
	// a crash, or a claim that ran out): the key keeps each email single.
	rows, err := a.db.QueryContext(ctx, `SELECT payload FROM billing_outbox ORDER BY seq`)
	require.NoError(t, err)
	var changes []billing.Change
	for rows.Next() {
		var payload []byte
		require.NoError(t, rows.Scan(&payload))
		var c billing.Change
		require.NoError(t, json.Unmarshal(payload, &c))
		changes = append(changes, c)
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	kinds := map[billing.ChangeKind]int{}
	for _, c := range changes {
		kinds[c.Kind]++
		c.Delivery = 2
		require.NoError(t, a.emailChange(ctx, c), c.Key)
	}
	assert.Equal(t, 3, kinds[billing.ChangePaymentFailed], "the outbox has the changes: %v", kinds)
	n, err := a.b.DispatchHooks(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "all delivered already")
	require.Equal(t, final, ada.mailboxPage())
	stored, err := a.mail.list(ctx, 100)
	require.NoError(t, err)
	require.Len(t, stored, len(want))
	keys := map[string]bool{}
	for _, e := range stored {
		assert.False(t, keys[e.Key], "one email per change: %s", e.Key)
		keys[e.Key] = true
	}
}

// TestEmailFor checks the emails of the cases the flow above does not
// reach.
func TestEmailFor(t *testing.T) {
	a := &app{siteURL: "https://club.example", plans: catalog(offlinePrices)}
	last := billing.Change{Kind: billing.ChangePaymentFailed, Attempt: 5, PriceID: offlinePrices.ProYearly}
	subject, body, ok := a.emailFor(last)
	require.True(t, ok)
	assert.Equal(t, "Your payment failed (attempt 5)", subject)
	assert.Contains(t, body, "Gopher Club Pro membership, and that was our last try.")
	assert.Contains(t, body, "https://club.example/account")

	_, body, _ = a.emailFor(billing.Change{Kind: billing.ChangeAccessLocked, Status: billing.SubscriptionUnpaid})
	assert.True(t, strings.HasPrefix(body, "Your payment is past due, the members area is locked."), body)

	subject, body, _ = a.emailFor(billing.Change{Kind: billing.ChangeRefunded, Amount: 1250, RefundedNow: 1250, Currency: "eur"})
	assert.Equal(t, "We refunded 12.50 EUR", subject)
	assert.Contains(t, body, "We refunded 12.50 EUR of your payment.")

	subject, _, _ = a.emailFor(billing.Change{Kind: billing.ChangeCancellationScheduled})
	assert.Equal(t, "Your membership will not renew", subject)

	for _, k := range []billing.ChangeKind{billing.ChangeActivated, billing.ChangeRenewed, billing.ChangePlanChanged, billing.ChangeDisputeOpened} {
		_, _, ok := a.emailFor(billing.Change{Kind: k})
		assert.False(t, ok, k)
	}
}

// TestStripeModeSendsEmails runs the site as with Stripe itself (here the
// fake, reached over HTTP like Stripe, with webhooks to the site's URL):
// RunHooks, started with the app, sends the emails, and Close stops it.
// The mailbox page is a dev page: it does not exist with Stripe.
func TestStripeModeSendsEmails(t *testing.T) {
	t.Parallel()
	fake, sc := newStripeAccount(t, "sk_test_stripe_mode")
	ctx := context.Background()
	// A product named otherwise at Stripe than the site names its plan.
	_, err := sc.V1Products.Update(ctx, "prod_"+offlinePrices.ProMonthly, &stripe.ProductUpdateParams{Name: stripe.String("Gopher Club Pro")})
	require.NoError(t, err)
	db, err := sqlstore.OpenSQLite(filepath.Join(t.TempDir(), "site.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	srv := httptest.NewUnstartedServer(nil)
	// The webhook endpoint, created as in the Dashboard: the fake POSTs
	// its events to the site, over HTTP. The self-check at start-up finds
	// it.
	siteURL := "http://" + srv.Listener.Addr().String()
	secret := createWebhookEndpoint(t, sc, siteURL+"/stripe/webhook", stripe.APIVersion)
	log, logs := bufferLogger(t)
	a, err := newApp(ctx, appConfig{
		SiteURL:     siteURL,
		WebhookURL:  siteURL + "/stripe/webhook",
		DB:          db,
		Dialect:     sqlstore.SQLite,
		Stripe:      stripeEnv{SecretKey: "sk_test_stripe_mode", WebhookSecret: secret, APIBase: fake.URL(), Prices: offlinePrices},
		Logger:      log,
		BcryptCost:  bcrypt.MinCost,
		AdminEmails: []string{"ada@example.com"},
	})
	require.NoError(t, err)
	require.Nil(t, a.offline)
	assert.Contains(t, logs.String(), `msg="billing self-check passed" plans=5 webhook_endpoints=1 warnings=0`)
	srv.Config.Handler = a
	srv.Start()
	closed := false
	t.Cleanup(func() {
		srv.Close()
		if !closed {
			a.Close()
		}
	})

	c := newClient(t, srv.URL)
	c.signUp("ada@example.com")
	assert.Equal(t, http.StatusNotFound, c.get("/dev/mailbox").Status)

	// The pricing page says what Stripe says of the prices: the amounts,
	// and a product's name when it is not the plan's.
	page := c.get("/pricing")
	assert.Equal(t, "$29 / month", text(page.Body, "buy-pro-monthly"))
	assert.Equal(t, "$90 / year", text(page.Body, "buy-basic-yearly"))
	assert.Equal(t, "Buy for $10", text(page.Body, "buy-credits"))
	assert.Equal(t, "Gopher Club Pro", text(page.Body, "product-pro"), "the monthly price's product")
	assert.NotContains(t, page.Body, `id="product-basic"`)

	res := c.postForm("/checkout", url.Values{"plan": {"credits"}})
	require.Equal(t, http.StatusSeeOther, res.Status, res.Body)
	_, err = fake.Pay(strings.TrimPrefix(res.Location, fake.URL()+"/pay/"), billingtest.CardOK)
	require.NoError(t, err)

	// RunHooks is woken by the webhook: the email comes a moment later.
	require.Eventually(t, func() bool {
		emails, err := a.mail.list(ctx, 10)
		return err == nil && len(emails) == 1
	}, 10*time.Second, 5*time.Millisecond)
	emails, err := a.mail.list(ctx, 10)
	require.NoError(t, err)
	assert.Equal(t, "100 credits added to your account", emails[0].Subject)
	assert.Equal(t, "ada@example.com", emails[0].To)

	// The admin page and the metrics: the webhook came over HTTP.
	admin := c.get("/admin")
	require.Equal(t, http.StatusOK, admin.Status)
	assert.Equal(t, "ok", text(admin.Body, "health-status"))
	assert.Contains(t, text(admin.Body, "recent-events"), "checkout.session.completed")
	assert.NotContains(t, admin.Body, `id="devbar"`)
	metrics := c.get("/metrics")
	require.Equal(t, http.StatusOK, metrics.Status)
	assert.Regexp(t, `(?m)^billing_webhook_deliveries_total\{billing_outcome="applied",.*stripe_event_type="checkout\.session\.completed"\} 1$`, metrics.Body)
	assert.Regexp(t, `(?m)^billing_stripe_calls_total\{billing_result="2xx",.*stripe_operation="POST /v1/checkout/sessions"\} 1$`, metrics.Body)

	// Maintain runs beside the server: it caught up at once.
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), `msg="maintenance: caught up"`) },
		10*time.Second, 5*time.Millisecond)

	srv.Close()
	done := make(chan struct{})
	go func() {
		a.Close()
		close(done)
	}()
	select {
	case <-done:
		closed = true
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not stop RunHooks and Maintain")
	}
	// Maintain let its lease go at Close.
	assert.Contains(t, logs.String(), `msg="maintenance: lease released"`)
}
