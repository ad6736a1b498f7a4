package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"
	"golang.org/x/crypto/bcrypt"

	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testenv"
	"github.com/gobilling/billing/sqlstore"
)

// newStripeAccount is billingtest's fake served over HTTP, set up as a
// Stripe account for the site in Stripe mode would be: the site's products
// and prices (those of offlinePrices). sc is a client of it with key.
func newStripeAccount(t *testing.T, key string) (*billingtest.Stripe, *stripe.Client) {
	t.Helper()
	fake := billingtest.New(billingtest.Options{})
	t.Cleanup(fake.Close)
	sc := newStripeClient(key, fake.URL(), http.DefaultClient)
	require.NoError(t, stockOffline(context.Background(), fake, sc, catalog(offlinePrices)))
	return fake, sc
}

// createWebhookEndpoint creates a webhook endpoint for url through the API,
// as the Dashboard or the Stripe CLI would (every event, at the API
// version given; "" follows the account's default), and returns its
// signing secret. The fake POSTs the events to url.
func createWebhookEndpoint(t *testing.T, sc *stripe.Client, url, version string) string {
	t.Helper()
	p := &stripe.WebhookEndpointCreateParams{URL: stripe.String(url), EnabledEvents: []*string{stripe.String("*")}}
	if version != "" {
		p.APIVersion = stripe.String(version)
	}
	ep, err := sc.V1WebhookEndpoints.Create(context.Background(), p)
	require.NoError(t, err)
	return ep.Secret
}

// TestSelfCheckAtStart starts the site in Stripe mode against the fake
// served over HTTP: billing's self-check runs at start-up, and an error
// finding (a missing price, no webhook endpoint) refuses the start with
// the finding and its fix, unless SELF_CHECK=warn; a warning is logged.
func TestSelfCheckAtStart(t *testing.T) {
	t.Parallel()
	const key, site = "sk_test_self_check", "https://club.example"
	const hook = site + "/stripe/webhook"
	start := func(t *testing.T, sc stripeEnv) (*app, *testenv.LogBuffer, error) {
		t.Helper()
		db, err := sqlstore.OpenSQLite(filepath.Join(t.TempDir(), "site.db"))
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		log, logs := bufferLogger(t)
		sc.SecretKey = key
		if sc.WebhookSecret == "" {
			sc.WebhookSecret = "whsec_self_check"
		}
		a, err := newApp(context.Background(), appConfig{SiteURL: site, WebhookURL: hook, DB: db, Dialect: sqlstore.SQLite,
			Stripe: sc, Logger: log, BcryptCost: bcrypt.MinCost})
		if err == nil {
			t.Cleanup(a.Close)
		}
		return a, logs, err
	}

	t.Run("all well", func(t *testing.T) {
		t.Parallel()
		fake, sc := newStripeAccount(t, key)
		secret := createWebhookEndpoint(t, sc, hook, stripe.APIVersion)
		_, logs, err := start(t, stripeEnv{WebhookSecret: secret, APIBase: fake.URL(), Prices: offlinePrices})
		require.NoError(t, err)
		assert.Contains(t, logs.String(), `msg="billing self-check passed" plans=5 webhook_endpoints=1 warnings=0`)
		assert.NotContains(t, logs.String(), "level=WARN")
	})

	t.Run("a price missing", func(t *testing.T) {
		t.Parallel()
		fake, sc := newStripeAccount(t, key)
		createWebhookEndpoint(t, sc, hook, stripe.APIVersion)
		prices := offlinePrices
		prices.ProYearly = "price_gone"
		_, _, err := start(t, stripeEnv{APIBase: fake.URL(), Prices: prices})
		require.Error(t, err)
		msg := err.Error()
		assert.Contains(t, msg, "the billing self-check found 1 problem(s) with the Stripe account that would break billing, so the site does not start")
		assert.Contains(t, msg, "set SELF_CHECK=warn to start anyway")
		// The finding, with the variable that configures the price, and
		// its fix.
		assert.Contains(t, msg, "PRICE_PRO_YEARLY: error price_missing price_gone: Stripe has no such price in test mode: Checkout for it fails; "+
			"fix: create it (Dashboard → Product catalog → Add product) and configure its ID")
		assert.NotContains(t, msg, "endpoint")
	})

	t.Run("no webhook endpoint", func(t *testing.T) {
		t.Parallel()
		fake, _ := newStripeAccount(t, key)
		_, _, err := start(t, stripeEnv{APIBase: fake.URL(), Prices: offlinePrices})
		require.Error(t, err)
		msg := err.Error()
		assert.Contains(t, msg, "error endpoint_missing "+hook+": no webhook endpoint delivers to this URL: Stripe sends billing no event; "+
			"fix: create it (Dashboard → Developers → Webhooks → Add endpoint: this URL, API version 2025-08-27.basil")
		assert.Contains(t, msg, "`stripe webhook_endpoints create -d url="+hook+" -d api_version=2025-08-27.basil")
		assert.NotContains(t, msg, "price_missing")
	})

	t.Run("no webhook endpoint, SELF_CHECK=warn", func(t *testing.T) {
		t.Parallel()
		fake, _ := newStripeAccount(t, key)
		a, logs, err := start(t, stripeEnv{APIBase: fake.URL(), Prices: offlinePrices, SelfCheck: selfCheckWarn})
		require.NoError(t, err, "warn: the site starts")
		require.NotNil(t, a)
		assert.Regexp(t, `level=ERROR msg="billing self-check: starting anyway \(SELF_CHECK=warn\)" finding="error endpoint_missing `+regexp.QuoteMeta(hook), logs.String())
	})

	t.Run("an endpoint on the account's default version: a warning", func(t *testing.T) {
		t.Parallel()
		fake, sc := newStripeAccount(t, key)
		secret := createWebhookEndpoint(t, sc, hook, "")
		_, logs, err := start(t, stripeEnv{WebhookSecret: secret, APIBase: fake.URL(), Prices: offlinePrices})
		require.NoError(t, err)
		assert.Regexp(t, `level=WARN msg="billing self-check: endpoint_version" finding="warning endpoint_version we_\w+: the endpoint follows the account's default API version`, logs.String())
	})
}

// TestRunRefusesFailedSelfCheck: through the environment, SITE_URL's
// webhook is the endpoint looked for; without it, run refuses to start.
// A local SITE_URL (or none) is not checked: its events come through
// stripe listen.
func TestRunRefusesFailedSelfCheck(t *testing.T) {
	t.Chdir(t.TempDir())
	fake, _ := newStripeAccount(t, "sk_test_run")
	env := map[string]string{
		"ADDR":                  "127.0.0.1:0",
		"SITE_URL":              "https://club.example",
		"STRIPE_SECRET_KEY":     "sk_test_run",
		"STRIPE_WEBHOOK_SECRET": "whsec_run",
		"STRIPE_API_BASE":       fake.URL(),
		"PRICE_PRO_MONTHLY":     offlinePrices.ProMonthly,
	}
	err := run(context.Background(), envOf(env), testLogger(t))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "error endpoint_missing https://club.example/stripe/webhook: no webhook endpoint delivers to this URL")

	assert.Equal(t, "", webhookURL(""))
	assert.Equal(t, "", webhookURL("http://localhost:8080"))
	assert.Equal(t, "", webhookURL("http://127.0.0.1:8080"))
	assert.Equal(t, "", webhookURL("http://[::1]:8080"))
	assert.Equal(t, "https://club.example/stripe/webhook", webhookURL("https://club.example"))
}

// TestMetricsForAdmins: the site's /metrics is the Prometheus text of its
// registry, billing's metrics in it, for admins only.
func TestMetricsForAdmins(t *testing.T) {
	t.Parallel()
	a, srv := newTestSite(t, withAdmins("root@example.com"))

	visitor := newClient(t, srv.URL)
	assert.Equal(t, http.StatusNotFound, visitor.get("/metrics").Status)
	member := newClient(t, srv.URL)
	member.signUp("ada@example.com")
	assert.Equal(t, http.StatusNotFound, member.get("/metrics").Status)
	member.buy(a, "pro-monthly") // webhooks delivered to the site

	admin := newClient(t, srv.URL)
	admin.signUp("root@example.com")
	res := admin.get("/metrics")
	require.Equal(t, http.StatusOK, res.Status, res.Body)
	assert.True(t, strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain"), res.Header.Get("Content-Type"))
	assert.Regexp(t, `(?m)^billing_webhook_deliveries_total\{billing_outcome="applied",.*stripe_event_type="checkout\.session\.completed"\} 1$`, res.Body)
	assert.Regexp(t, `(?m)^billing_subscriptions_activated_total\{.*\} 1$`, res.Body)
	assert.Regexp(t, `(?m)^billing_parked\{.*\} 0$`, res.Body)
	assert.Contains(t, res.Body, "\ngo_goroutines ")
	assert.Contains(t, res.Body, `go_sql_open_connections{db_name="site"}`)
	assert.Equal(t, http.StatusMethodNotAllowed, admin.post("/metrics", nil).Status)
}

// TestRunMetricsAddr: with METRICS_ADDR, Prometheus scrapes /metrics
// there, unauthenticated, and the monitoring reads billing's health; the
// site serves neither to its visitors. Offline, METRICS_ADDR must be a
// loopback address.
func TestRunMetricsAddr(t *testing.T) {
	t.Chdir(t.TempDir())
	siteURL, logs, stop := startRun(t, map[string]string{"ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0"})
	defer func() { require.NoError(t, stop()) }()
	m := regexp.MustCompile(`metrics_addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(logs.String())
	require.NotNil(t, m, logs.String())
	get := func(u string) (int, string) {
		t.Helper()
		res, err := http.Get(u)
		require.NoError(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res.StatusCode, string(b)
	}
	code, body := get("http://" + m[1] + "/metrics")
	require.Equal(t, http.StatusOK, code)
	assert.Regexp(t, `(?m)^billing_parked\{.*\} 0$`, body)
	assert.Contains(t, body, `target_info{service_name="gopher-club"`)
	code, body = get("http://" + m[1] + "/healthz/billing")
	require.Equal(t, http.StatusOK, code)
	var health map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &health))
	assert.Equal(t, "ok", health["status"])
	code, _ = get(siteURL + "/metrics")
	assert.Equal(t, http.StatusNotFound, code, "not on the site")

	_, err := loadEnv(envOf(map[string]string{"METRICS_ADDR": "0.0.0.0:9464"}))
	assert.ErrorContains(t, err, "METRICS_ADDR 0.0.0.0:9464 is not a loopback address")
}
