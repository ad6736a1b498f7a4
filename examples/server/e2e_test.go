package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/sqlstore"
)

// chromiumPath is Debian's Chromium (apt-get install -y chromium).
const chromiumPath = "/usr/bin/chromium"

// TestBrowser drives the whole flow in a real, headless Chromium: sign up,
// buy Pro in Checkout, see it on the account page, live through a renewal,
// a failing card (the failing-payment banner, then past_due from the third
// attempt), a fixed card, and a cancellation at the period end, after which
// the members area closes exactly at the date the account page announced;
// then the dev mailbox lists the emails the site sent meanwhile, once each,
// and the admin page (the user is an admin) and /metrics tell the story
// in numbers. The clock moves through the site's own dev bar. A screenshot of each step
// lands in the test's temporary directory.
func TestBrowser(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(chromiumPath); err != nil {
		const how = "install Chromium with apt-get install -y chromium (.ci/run does)"
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found under CI=true: %s", chromiumPath, how)
		}
		t.Skipf("%s not found, so the browser test is skipped: %s", chromiumPath, how)
	}
	began := time.Now()
	// The test can hold a POST /checkout in flight, to see the page while
	// the browser waits for the redirect to Stripe.
	var holding atomic.Bool
	release := make(chan struct{})
	db, err := sqlstore.OpenSQLite(filepath.Join(t.TempDir(), "site.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	const email = "ada@example.com"
	a, srv := newTestSiteWrapped(t, db, sqlstore.SQLite, "", func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/checkout" && holding.Load() {
				<-release
			}
			h.ServeHTTP(w, r)
		})
	}, withAdmins(email))
	releaseCheckout := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseCheckout) // before the server closes

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
	)...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	// Start the browser and its tab on the test's context: the bounded
	// contexts of each step below must not own them.
	require.NoError(t, chromedp.Do(bctx), "start %s", chromiumPath)

	// Screenshots go to the test's temporary directory, removed at the
	// end; set SCREENSHOTS_DIR to keep them.
	b := &browser{t: t, ctx: bctx, dir: t.TempDir()}
	if dir := os.Getenv("SCREENSHOTS_DIR"); dir != "" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		b.dir = dir
	}
	t.Logf("screenshots in %s", b.dir)

	// Sign up: the site sends new users to the pricing page.
	b.open(srv.URL + "/signup")
	b.fill("email", email)
	b.fill("password", "correct horse battery")
	b.fill("confirm", "correct horse battery")
	b.shot("signup")
	b.submit("signup-submit")
	b.wait("buy-pro-monthly")
	require.Contains(t, b.text("nav-email"), email)
	b.shot("pricing")

	// Checkout, on the offline Stripe's own page (another origin). While
	// the site answers, the Stripe buttons are disabled, and the one
	// clicked says why.
	holding.Store(true)
	// The click and the check in one script: the submit handler runs
	// during the click, before the navigation it starts, so the page is
	// read as the user sees it while the site answers (a query after the
	// click would race that navigation).
	clickCtx, cancelClick := context.WithTimeout(b.ctx, browserWait)
	redirecting, err := chromedp.Run(clickCtx, chromedp.Evaluate[bool](`(() => {
		const button = id => document.getElementById(id);
		button("buy-pro-monthly").click();
		return ["buy-pro-monthly", "buy-basic-yearly", "buy-credits"].every(id => button(id).disabled) &&
			button("buy-pro-monthly").textContent === "Redirecting to Stripe…" &&
			button("buy-basic-yearly").textContent === "$90 / year";
	})()`))
	cancelClick()
	require.NoError(t, err, "click Pro, monthly")
	require.True(t, redirecting, "the Stripe buttons disabled, the clicked one saying why")
	b.shot("pricing-redirecting")
	holding.Store(false)
	releaseCheckout()
	b.wait("card")
	require.True(t, strings.HasPrefix(b.location(), a.offline.URL()+"/pay/cs_"), b.location())
	b.shot("checkout")
	b.fill("card", billingtest.CardOK)
	b.submit("pay")

	// Back on the site: the return page reconciled the session.
	b.wait("checkout-success")
	require.True(t, strings.HasPrefix(b.location(), srv.URL+"/checkout/return?session_id=cs_"), b.location())
	require.Equal(t, "Pro", b.text("plan-name"))
	require.Equal(t, "active", b.text("membership-status"))
	b.shot("return-success")

	m := membershipOf(t, a, email)
	sub := m.SubscriptionID
	periodEnd := func() string { // Stripe's own period end, as the site writes dates
		s := a.offline.Subscription(sub)
		return time.Unix(s.Items.Data[0].CurrentPeriodEnd, 0).UTC().Format("January 2, 2006")
	}
	b.submit("to-account")
	b.wait("membership")
	require.Equal(t, "Active", b.text("status"))
	require.Equal(t, "Pro, monthly", b.text("plan"))
	require.Equal(t, "May 10, 2031", b.text("renews-on"))
	require.Equal(t, periodEnd(), b.text("renews-on"))
	require.Equal(t, "open", b.text("access"))
	b.shot("account-active-pro")

	// A month later: renewed, and the next renewal moved on a month.
	b.submit("advance-month")
	b.wait("membership")
	require.Contains(t, b.text("sim-now"), "May 11, 2031")
	require.Equal(t, "June 10, 2031", b.text("renews-on"))
	require.Equal(t, periodEnd(), b.text("renews-on"))
	require.False(t, b.exists("payment-failing"))
	b.shot("account-renewed")

	// In the portal, a card whose charges fail.
	b.portal(sub)
	b.fill("card", billingtest.CardChargeFails)
	b.submit("update-card")
	b.wait("flash")
	b.shot("portal-card-0341")
	b.submit("return")
	b.wait("membership")

	// The next renewal, announced three days ahead (invoice.upcoming): the
	// period moves on at once, the invoice is charged an hour later, and
	// the charge fails. Access stays, with a banner.
	b.submit("advance-next")
	b.wait("membership")
	require.Contains(t, b.text("sim-now"), "June 7, 2031")
	b.submit("advance-next")
	b.wait("membership")
	require.Contains(t, b.text("sim-now"), "June 10, 2031")
	require.Equal(t, "July 10, 2031", b.text("renews-on"))
	require.False(t, b.exists("payment-failing"))
	b.submit("advance-next")
	b.wait("payment-failing")
	require.Contains(t, b.text("payment-failing"), "Your last payment failed. Stripe has tried 1 time and will try again.")
	require.Equal(t, "Active", b.text("status"))
	require.Equal(t, "open", b.text("access"))
	require.False(t, b.exists("renews-on"), "the renewal's payment failed")
	require.Equal(t, "Failed 1 time: Stripe will try again", b.text("payment"))
	b.shot("account-payment-failing-1")

	b.submit("advance-next") // the retry a day after the first attempt
	b.wait("payment-failing")
	require.Contains(t, b.text("payment-failing"), "Stripe has tried 2 times")
	require.Contains(t, b.text("sim-now"), "June 11, 2031")
	require.Equal(t, "open", b.text("access"))
	b.shot("account-payment-failing-2")

	b.submit("advance-next") // three days after the first attempt: the third
	b.wait("past-due")
	require.Contains(t, b.text("past-due"), "Your payment is past due, so the members area is locked. 3 payment attempts failed.")
	require.Contains(t, b.text("sim-now"), "June 13, 2031")
	require.Equal(t, "Past due", b.text("status"))
	require.Equal(t, "locked", b.text("access"))
	require.False(t, b.exists("payment-failing"))
	require.False(t, b.exists("renews-on"))
	require.Equal(t, "Failed 3 times: access paused until a payment goes through", b.text("payment"))
	b.shot("account-past-due")
	b.open(srv.URL + "/members")
	b.wait("refused")
	require.Contains(t, b.text("refused"), "Your payment is past due")
	b.shot("members-refused-past-due")

	// A working card again: the next retry goes through.
	b.open(srv.URL + "/account")
	b.portal(sub)
	b.fill("card", billingtest.CardOK)
	b.submit("update-card")
	b.wait("flash")
	b.submit("return")
	b.wait("membership")
	b.submit("advance-next")
	b.wait("membership")
	require.Contains(t, b.text("sim-now"), "June 15, 2031")
	require.Equal(t, "Active", b.text("status"))
	require.Equal(t, "open", b.text("access"))
	require.False(t, b.exists("past-due"))
	require.False(t, b.exists("payment-failing"))
	require.Equal(t, "July 10, 2031", b.text("renews-on"))
	b.shot("account-recovered")

	// Cancel at the period end, in the portal.
	b.portal(sub)
	b.submit("cancel-at-period-end-" + sub)
	b.wait("uncancel-" + sub)
	b.shot("portal-canceled")
	b.submit("return")
	b.wait("cancels-on")
	require.Equal(t, "July 10, 2031", b.text("cancels-on"))
	require.False(t, b.exists("renews-on"))
	require.Equal(t, "open", b.text("access"))
	// The next thing the offline Stripe will do is end it, on that date.
	require.Contains(t, b.text("sim-next"), "July 10, 2031")
	b.shot("account-cancels-on")

	// Until then the members area stays open...
	b.open(srv.URL + "/members")
	b.wait("welcome")
	require.Equal(t, "Welcome, Pro member.", b.text("welcome"))
	b.submit("advance-day")
	b.wait("welcome")
	b.shot("members-open-before-the-end")

	// ...and it closes at the cancellation.
	b.submit("advance-next")
	b.wait("refused")
	require.Contains(t, b.text("sim-now"), "July 10, 2031")
	require.Contains(t, b.text("refused"), "Your membership has ended.")
	b.shot("members-refused-canceled")
	b.open(srv.URL + "/account")
	b.wait("membership")
	require.Equal(t, "Canceled", b.text("status"))
	require.Equal(t, "locked", b.text("access"))
	require.True(t, b.exists("manage-billing"))
	b.shot("account-canceled")

	final := membershipOf(t, a, email)
	require.Equal(t, billing.StatusCanceled, final.Status)

	// The dev mailbox, from the dev bar: the emails of the story, newest
	// first, each once.
	b.submit("dev-mailbox")
	b.wait("mailbox")
	require.Equal(t, []string{
		"Your membership has ended",
		"Your membership ends on July 10, 2031",
		"Your payment went through",
		"Your membership is on hold",
		"Your payment failed (attempt 3)",
		"Your payment failed (attempt 2)",
		"Your payment failed (attempt 1)",
	}, b.texts("#mailbox .mail-subject"))
	for _, to := range b.texts("#mailbox .mail-to") {
		require.Equal(t, email, to)
	}
	bodies := b.texts("#mailbox .mail-body")
	require.Contains(t, bodies[6], "we will try again on June 11, 2031")
	require.Contains(t, bodies[5], "we will try again on June 13, 2031")
	require.Contains(t, bodies[3], "After 3 failed payment attempts, the members area is locked.")
	require.Contains(t, bodies[1], "the members area stays open until July 10, 2031")
	b.shot("mailbox")

	// The admin page, from the nav (ADMIN_EMAILS lists the user): the
	// story in numbers, as this process counted them.
	b.submit("nav-admin")
	b.wait("health")
	require.Equal(t, "ok", b.text("health-status"))
	require.Equal(t, "Canceled (1)", b.text("members-canceled"))
	require.Contains(t, b.text("members"), email)
	require.Contains(t, b.text("rate-new-subscriptions"), "New subscriptions 1")
	require.Contains(t, b.text("rate-cancellations"), "Cancellations 1")
	require.Contains(t, b.text("rate-failed-payments"), "3 of 6 payment attempts")
	require.Contains(t, b.text("rate-webhook-failures"), "0.0%")
	require.Contains(t, b.text("recent-events"), "customer.subscription.deleted")
	require.True(t, b.exists("no-parked"))
	require.True(t, b.exists("no-dead"))
	b.shot("admin")

	// Its metrics, in Prometheus's text format.
	b.submit("to-metrics")
	b.poll("the metrics", `document.body.innerText.includes('billing_webhook_deliveries_total{billing_outcome="applied"')`)
	require.Equal(t, srv.URL+"/metrics", b.location())
	t.Logf("browser flow: %d steps in %v", b.step, time.Since(began).Round(100*time.Millisecond))
}

// browser drives one tab, failing the test on any error. Each wait is
// bounded, so a missing element fails fast with its name.
type browser struct {
	t    *testing.T
	ctx  context.Context
	dir  string
	step int
}

const browserWait = 15 * time.Second

func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %s: %v (at %s)", what, err, b.location())
	}
}

// poll waits until the JavaScript expression is true.
func (b *browser) poll(what, expression string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expression)); err != nil {
		b.t.Fatalf("browser: wait for %s: %v (at %s)", what, err, b.location())
	}
}

// open navigates to a URL and waits for the page to load.
func (b *browser) open(url string) {
	b.t.Helper()
	b.run("open "+url, chromedp.Navigate(url))
}

// wait waits until the element with this id is visible.
func (b *browser) wait(id string) {
	b.t.Helper()
	b.run("wait for #"+id, chromedp.WaitVisible(chromedp.ID(id)))
}

// fill types into the input with this id.
func (b *browser) fill(id, value string) {
	b.t.Helper()
	b.run("fill #"+id, chromedp.Clear(chromedp.ID(id)), chromedp.SendKeys(chromedp.ID(id), value))
}

// submit clicks the button or link with this id and waits for the page it
// leads to (after any redirects) to load.
func (b *browser) submit(id string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID(id)))
	if err != nil {
		b.t.Fatalf("browser: click #%s: %v (at %s)", id, err, b.location())
	}
	if res != nil && res.Status >= 500 {
		b.t.Fatalf("browser: click #%s: %s answered %d", id, res.URL, res.Status)
	}
}

// portal opens the Customer Portal from the account page, showing sub.
func (b *browser) portal(sub string) {
	b.t.Helper()
	b.submit("manage-billing")
	b.wait("sub-" + sub)
}

func (b *browser) text(id string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		b.t.Fatalf("browser: text of #%s: %v (at %s)", id, err, b.location())
	}
	return strings.Join(strings.Fields(s), " ")
}

// exists reports whether the page has an element with this id, now.
func (b *browser) exists(id string) bool {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf("document.getElementById(%q) !== null", id)))
	require.NoError(b.t, err)
	return ok
}

// texts returns the text of each element the CSS selector matches, in
// document order, spaces collapsed.
func (b *browser) texts(selector string) []string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](fmt.Sprintf(
		"Array.from(document.querySelectorAll(%q), e => e.textContent.trim().split(/\\s+/).join(' '))", selector)))
	require.NoError(b.t, err, "texts of %s", selector)
	return got
}

func (b *browser) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	return loc
}

// shot saves a full-page PNG screenshot: NN-name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	b.step++
	ctx, cancel := context.WithTimeout(b.ctx, browserWait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err, "screenshot %s", name)
	require.NoError(b.t, os.WriteFile(filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.step, name)), png, 0o644))
}
