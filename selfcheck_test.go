package billing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
	"github.com/gobilling/billing/internal/testenv"
	"github.com/gobilling/billing/memstore"
)

// scWebhookURL is where the self-check tests' app receives webhooks.
const scWebhookURL = "https://app.example/stripe/webhook"

// scAppliedTypes are the event types billing applies (README, "The
// webhook handler").
var scAppliedTypes = []string{
	"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
	"customer.subscription.paused", "customer.subscription.resumed", "customer.subscription.trial_will_end",
	"invoice.paid", "invoice.payment_failed", "checkout.session.completed",
	"checkout.session.async_payment_succeeded", "charge.refunded", "charge.dispute.created", "charge.dispute.closed",
}

type scEnv struct {
	fake *billingtest.Stripe
	sc   *stripe.Client // the test's own client of the fake, to set the account up
	key  string
	// secrets are the signing secrets of the endpoints created.
	secrets []string
	logs    *testenv.LogBuffer
}

// newSCEnv is a fake Stripe selling testcatalog's plans, with no webhook
// endpoint yet.
func newSCEnv(t *testing.T) *scEnv {
	t.Helper()
	fake := testcatalog.NewStripe(t, coStart)
	bc := &stripe.BackendConfig{URL: stripe.String(fake.URL()), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}}
	return &scEnv{fake: fake, key: coSecretKey, logs: &testenv.LogBuffer{},
		sc: stripe.NewClient("sk_test_setup", stripe.WithBackends(stripe.NewBackendsWithConfig(bc)))}
}

// billing makes the app's Billing, with Config changed by mod.
func (e *scEnv) billing(t *testing.T, mod ...func(*billing.Config)) *billing.Billing {
	t.Helper()
	cfg := billing.Config{
		SecretKey:      e.key,
		WebhookSecrets: []string{testSecret},
		SiteURL:        "https://app.example",
		WebhookURL:     scWebhookURL,
		Plans:          testcatalog.Plans(),
		Logger:         slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:          e.fake,
		StripeURL:      e.fake.URL(),
	}
	for _, m := range mod {
		m(&cfg)
	}
	b, err := billing.New(cfg, memstore.New(), users)
	require.NoError(t, err)
	return b
}

// endpoint creates a webhook endpoint at the fake; an empty version
// leaves it to the account's default.
func (e *scEnv) endpoint(t *testing.T, url, version string, events ...string) *stripe.WebhookEndpoint {
	t.Helper()
	p := &stripe.WebhookEndpointCreateParams{URL: stripe.String(url)}
	if version != "" {
		p.APIVersion = stripe.String(version)
	}
	if len(events) == 0 {
		events = scAppliedTypes
	}
	p.EnabledEvents = stripe.StringSlice(events)
	ep, err := e.sc.V1WebhookEndpoints.Create(context.Background(), p)
	require.NoError(t, err)
	require.NotEmpty(t, ep.Secret)
	e.secrets = append(e.secrets, ep.Secret)
	return ep
}

// check runs the self-check, requires it to work, and checks no secret
// is in the report.
func (e *scEnv) check(t *testing.T, b *billing.Billing) billing.SelfCheckReport {
	t.Helper()
	r, err := b.SelfCheck(context.Background())
	require.NoError(t, err)
	e.noSecrets(t, r)
	return r
}

// noSecrets checks that no key or signing secret is in the report (its
// JSON and its findings' lines) or the logs.
func (e *scEnv) noSecrets(t *testing.T, r billing.SelfCheckReport) {
	t.Helper()
	raw, err := json.Marshal(r)
	require.NoError(t, err)
	out := string(raw) + e.logs.String()
	for _, f := range r.Findings {
		out += f.String()
	}
	for _, secret := range append([]string{e.key, testSecret}, e.secrets...) {
		assert.NotContains(t, out, secret, "a secret in the report or the logs")
	}
}

// codes lists the findings as "severity code subject".
func codes(r billing.SelfCheckReport) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, string(f.Severity)+" "+f.Code+" "+f.Subject)
	}
	return out
}

func finding(t *testing.T, r billing.SelfCheckReport, code string) billing.Finding {
	t.Helper()
	for _, f := range r.Findings {
		if f.Code == code {
			return f
		}
	}
	t.Fatalf("no %s finding in %v", code, codes(r))
	return billing.Finding{}
}

func TestSelfCheckAllGood(t *testing.T) {
	t.Parallel()
	e := newSCEnv(t)
	ep := e.endpoint(t, scWebhookURL, stripe.APIVersion)
	e.endpoint(t, "https://other.example/hook", "2024-06-20", "invoice.paid") // another app's: not ours
	e.fake.ResetCalls()
	r := e.check(t, e.billing(t))
	assert.Empty(t, r.Findings)
	assert.True(t, r.OK())
	assert.True(t, r.KeyOK)
	assert.False(t, r.Livemode)
	assert.Equal(t, scWebhookURL, r.WebhookURL)
	require.Len(t, r.Plans, 3)
	assert.Equal(t, billing.PlanCheck{PriceID: "price_basic", Kind: billing.Recurring, Found: true, Active: true, ProductActive: true,
		Type: "recurring", Interval: "month", IntervalCount: 1, Currency: "usd", UnitAmount: 900}, r.Plans[0])
	assert.Equal(t, "month", r.Plans[1].Interval)
	assert.Equal(t, billing.PlanCheck{PriceID: "price_pack", Kind: billing.OneTime, Found: true, Active: true, ProductActive: true,
		Type: "one_time", Currency: "usd", UnitAmount: 500}, r.Plans[2])
	require.Len(t, r.Endpoints, 1)
	assert.Equal(t, billing.EndpointCheck{ID: ep.ID, URL: scWebhookURL, Enabled: true, APIVersion: stripe.APIVersion,
		EnabledEvents: scAppliedTypes}, r.Endpoints[0])
	calls := e.fake.Calls()
	assert.Equal(t, 1, calls["GET /v1/prices"])
	assert.Equal(t, 3, calls["GET /v1/prices/{id}"])
	assert.Equal(t, 1, calls["GET /v1/webhook_endpoints"])
	for route := range calls {
		assert.True(t, strings.HasPrefix(route, "GET "), "the self-check only reads: %s", route)
	}

	// "*" covers every type; the URL matches whatever its case, default
	// port or trailing slash.
	e2 := newSCEnv(t)
	e2.endpoint(t, "https://APP.example:443/stripe/webhook/", stripe.APIVersion, "*")
	r = e2.check(t, e2.billing(t))
	assert.Empty(t, r.Findings)
	require.Len(t, r.Endpoints, 1)
	assert.Empty(t, r.Endpoints[0].MissingEvents)
}

func TestSelfCheckPrices(t *testing.T) {
	t.Parallel()
	e := newSCEnv(t)
	e.endpoint(t, scWebhookURL, stripe.APIVersion)
	ctx := context.Background()
	e.fake.AddPrice("price_old", "month", 500)
	_, err := e.sc.V1Prices.Update(ctx, "price_old", &stripe.PriceUpdateParams{Active: stripe.Bool(false)})
	require.NoError(t, err)
	e.fake.AddPrice("price_gold", "year", 9900)
	_, err = e.sc.V1Products.Update(ctx, "prod_price_gold", &stripe.ProductUpdateParams{Active: stripe.Bool(false)})
	require.NoError(t, err)
	b := e.billing(t, func(c *billing.Config) {
		c.Plans = []billing.Plan{
			{PriceID: "price_basic", Kind: billing.OneTime}, // recurring at Stripe
			{PriceID: "price_pack", Tier: "pack"},           // one-time at Stripe
			{PriceID: "price_gone", Tier: "gone"},           // missing
			{PriceID: "price_old", Tier: "old"},             // archived
			{PriceID: "price_gold", Tier: "gold"},           // its product archived
			{PriceID: "price_pro", Tier: "pro"},             // fine
		}
	})
	r := e.check(t, b)
	assert.False(t, r.OK())
	assert.Equal(t, []string{
		"error price_kind price_basic",
		"error price_kind price_pack",
		"error price_missing price_gone",
		"error price_inactive price_old",
		"error product_inactive price_gold",
	}, codes(r))
	assert.Contains(t, finding(t, r, "price_missing").Fix, "Product catalog")
	kind := r.Findings[0]
	assert.Contains(t, kind.Problem, "every 1 month")
	assert.Contains(t, kind.Fix, "Recurring")
	assert.Contains(t, finding(t, r, "price_inactive").Fix, "stripe prices update price_old -d active=true")
	assert.Contains(t, finding(t, r, "product_inactive").Fix, "stripe products update prod_price_gold -d active=true")
	require.Len(t, r.Plans, 6)
	assert.False(t, r.Plans[2].Found)
	assert.Equal(t, "year", r.Plans[4].Interval)
	assert.False(t, r.Plans[4].ProductActive)
	assert.True(t, r.Plans[5].Active)
	assert.Len(t, r.Endpoints, 1, "the endpoint is checked after the prices")
}

func TestSelfCheckEndpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		e := newSCEnv(t)
		e.endpoint(t, "https://app.example/webhooks/stripe", stripe.APIVersion)
		r := e.check(t, e.billing(t))
		assert.Equal(t, []string{"error endpoint_missing " + scWebhookURL}, codes(r))
		f := r.Findings[0]
		assert.Contains(t, f.Problem, "https://app.example/webhooks/stripe", "an endpoint on the same host is named")
		assert.Contains(t, f.Fix, "stripe webhook_endpoints create -d url="+scWebhookURL+" -d api_version="+stripe.APIVersion)
		assert.Contains(t, f.Fix, `-d "enabled_events[]=charge.dispute.closed"`)
		assert.NotContains(t, f.Fix, "--live")
		assert.Empty(t, r.Endpoints)
	})
	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		e := newSCEnv(t)
		ep := e.endpoint(t, scWebhookURL, stripe.APIVersion)
		_, err := e.sc.V1WebhookEndpoints.Update(ctx, ep.ID, &stripe.WebhookEndpointUpdateParams{Disabled: stripe.Bool(true)})
		require.NoError(t, err)
		r := e.check(t, e.billing(t))
		assert.Equal(t, []string{"error endpoint_disabled " + ep.ID}, codes(r))
		assert.Contains(t, r.Findings[0].Fix, "stripe webhook_endpoints update "+ep.ID+" -d disabled=false")
		require.Len(t, r.Endpoints, 1)
		assert.False(t, r.Endpoints[0].Enabled)

		// Beside an enabled endpoint, a disabled one is only listed.
		e.endpoint(t, scWebhookURL, stripe.APIVersion)
		r = e.check(t, e.billing(t))
		assert.Empty(t, r.Findings)
		assert.Len(t, r.Endpoints, 2)
	})
	t.Run("another release train", func(t *testing.T) {
		t.Parallel()
		e := newSCEnv(t)
		ep := e.endpoint(t, scWebhookURL, "2025-03-31.acacia")
		r := e.check(t, e.billing(t))
		assert.Equal(t, []string{"error endpoint_version " + ep.ID}, codes(r))
		f := r.Findings[0]
		assert.Contains(t, f.Problem, "2025-03-31.acacia")
		assert.Contains(t, f.Fix, "create a new one at "+stripe.APIVersion)
		assert.Contains(t, f.Fix, "then delete "+ep.ID)
	})
	t.Run("another basil version or none", func(t *testing.T) {
		t.Parallel()
		e := newSCEnv(t)
		ep := e.endpoint(t, scWebhookURL, "2025-07-30.basil")
		r := e.check(t, e.billing(t))
		assert.Equal(t, []string{"warning endpoint_version " + ep.ID}, codes(r))
		assert.True(t, r.OK(), "a warning only")

		e2 := newSCEnv(t)
		ep = e2.endpoint(t, scWebhookURL, "")
		r = e2.check(t, e2.billing(t))
		assert.Equal(t, []string{"warning endpoint_version " + ep.ID}, codes(r))
		assert.Contains(t, r.Findings[0].Problem, "account's default API version")
	})
	t.Run("missing event types", func(t *testing.T) {
		t.Parallel()
		e := newSCEnv(t)
		ep := e.endpoint(t, scWebhookURL, stripe.APIVersion, scAppliedTypes[:10]...)
		r := e.check(t, e.billing(t))
		assert.Equal(t, []string{"error endpoint_events " + ep.ID}, codes(r))
		require.Len(t, r.Endpoints, 1)
		assert.Equal(t, []string{"charge.refunded", "charge.dispute.created", "charge.dispute.closed"}, r.Endpoints[0].MissingEvents)
		f := r.Findings[0]
		assert.Contains(t, f.Problem, "charge.refunded, charge.dispute.created, charge.dispute.closed")
		assert.Contains(t, f.Fix, "stripe webhook_endpoints update "+ep.ID)
		for _, typ := range scAppliedTypes {
			assert.Contains(t, f.Fix, `"enabled_events[]=`+typ+`"`, "the update lists every type")
		}
	})
	t.Run("two endpoints", func(t *testing.T) {
		t.Parallel()
		e := newSCEnv(t)
		e.endpoint(t, scWebhookURL, stripe.APIVersion)
		e.endpoint(t, scWebhookURL, stripe.APIVersion, "*")
		r := e.check(t, e.billing(t))
		assert.Equal(t, []string{"warning endpoint_duplicate " + scWebhookURL}, codes(r))
	})
	t.Run("no WebhookURL", func(t *testing.T) {
		t.Parallel()
		e := newSCEnv(t)
		r := e.check(t, e.billing(t, func(c *billing.Config) { c.WebhookURL = "" }))
		assert.Equal(t, []string{"warning webhook_url_unset "}, codes(r))
		assert.Zero(t, e.fake.Calls()["GET /v1/webhook_endpoints"])
		r = e.check(t, e.billing(t, func(c *billing.Config) { c.WebhookURL = "/stripe/webhook" }))
		assert.Equal(t, []string{"error webhook_url_invalid /stripe/webhook"}, codes(r))
	})
	t.Run("many endpoints", func(t *testing.T) {
		t.Parallel()
		e := newSCEnv(t)
		ep := e.endpoint(t, scWebhookURL, stripe.APIVersion)
		for range 120 { // newer: the ours is on the second page
			e.endpoint(t, "https://other.example/hook", stripe.APIVersion, "invoice.paid")
		}
		r := e.check(t, e.billing(t))
		assert.Empty(t, r.Findings)
		require.Len(t, r.Endpoints, 1)
		assert.Equal(t, ep.ID, r.Endpoints[0].ID)
		assert.Equal(t, 2, e.fake.Calls()["GET /v1/webhook_endpoints"])
	})
}

// A restricted key that may not read prices or endpoints: warnings, not
// a failure.
func TestSelfCheckRestrictedKey(t *testing.T) {
	t.Parallel()
	e := newSCEnv(t)
	e.key = "rk_test_scRESTRICTEDkey0123456789"
	e.endpoint(t, scWebhookURL, stripe.APIVersion)
	b := e.billing(t)

	e.fake.SetFail("GET /v1/webhook_endpoints", http.StatusForbidden, 1)
	r := e.check(t, b)
	assert.Equal(t, []string{"warning endpoints_unreadable " + scWebhookURL}, codes(r))
	assert.True(t, r.OK())
	assert.Len(t, r.Plans, 3)
	assert.Nil(t, r.Endpoints)
	assert.Contains(t, r.Findings[0].Fix, "Webhook Endpoints")

	e.fake.SetFail("GET /v1/prices", http.StatusForbidden, 1)
	e.fake.SetFail("GET /v1/prices/{id}", http.StatusForbidden, 1)
	e.fake.ResetCalls()
	r = e.check(t, b)
	assert.Equal(t, []string{"warning prices_unreadable "}, codes(r))
	assert.True(t, r.KeyOK)
	assert.Nil(t, r.Plans)
	assert.Equal(t, 1, e.fake.Calls()["GET /v1/prices/{id}"], "one refusal is enough")
	assert.Len(t, r.Endpoints, 1, "the endpoint is still checked")
}

// A key Stripe refuses: one finding, nothing else checked.
func TestSelfCheckKeyRejected(t *testing.T) {
	t.Parallel()
	e := newSCEnv(t)
	b := e.billing(t)
	e.fake.SetFail("GET /v1/prices", http.StatusUnauthorized, 1)
	r := e.check(t, b)
	assert.Equal(t, []string{"error key_rejected "}, codes(r))
	assert.False(t, r.KeyOK)
	assert.False(t, r.OK())
	assert.Zero(t, e.fake.Calls()["GET /v1/prices/{id}"])
	assert.Zero(t, e.fake.Calls()["GET /v1/webhook_endpoints"])
}

// Stripe failing after the retries: the check could not be made.
func TestSelfCheckStripeDown(t *testing.T) {
	t.Parallel()
	e := newSCEnv(t)
	e.endpoint(t, scWebhookURL, stripe.APIVersion)
	b := e.billing(t)
	e.fake.SetFail("GET /v1/webhook_endpoints", http.StatusInternalServerError, 10)
	r, err := b.SelfCheck(context.Background())
	e.noSecrets(t, r)
	var se *billing.StripeError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusInternalServerError, se.HTTPStatus)
	assert.Contains(t, err.Error(), "list webhook endpoints")
	assert.NotContains(t, err.Error(), e.key)
	assert.Len(t, r.Plans, 3, "what was checked before is in the report")
	assert.Equal(t, 3, e.fake.Calls()["GET /v1/webhook_endpoints"], "retried twice on the fake clock")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = b.SelfCheck(ctx)
	assert.ErrorIs(t, err, context.Canceled)
}

// scRewriter is an HTTPClient transport that edits the fake's answers:
// the fake serves test mode only.
type scRewriter struct {
	edit func(r *http.Request, body []byte) (int, []byte)
}

func (s scRewriter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	status, body := s.edit(r, body)
	if status != 0 {
		resp.StatusCode, resp.Status = status, http.StatusText(status)
	}
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// Objects of the other mode than the key's: one finding.
func TestSelfCheckModeMismatch(t *testing.T) {
	t.Parallel()
	e := newSCEnv(t)
	e.endpoint(t, scWebhookURL, stripe.APIVersion)
	live := scRewriter{edit: func(_ *http.Request, body []byte) (int, []byte) {
		return 0, bytes.ReplaceAll(body, []byte(`"livemode":false`), []byte(`"livemode":true`))
	}}
	r := e.check(t, e.billing(t, func(c *billing.Config) { c.HTTPClient = &http.Client{Transport: live, Timeout: 30 * time.Second} }))
	assert.Equal(t, []string{"error key_mode "}, codes(r), "reported once")
	assert.Contains(t, r.Findings[0].Problem, "test-mode key but Stripe answered with live-mode objects")
	assert.True(t, r.Plans[0].Livemode)
}

// A price of the other mode: Stripe's 404 says a similar object exists
// there, and the finding says which ID to configure.
func TestSelfCheckPriceOfTheOtherMode(t *testing.T) {
	t.Parallel()
	e := newSCEnv(t)
	e.endpoint(t, scWebhookURL, stripe.APIVersion)
	other := scRewriter{edit: func(r *http.Request, body []byte) (int, []byte) {
		if r.URL.Path != "/v1/prices/price_pro" {
			return 0, body
		}
		return http.StatusNotFound, []byte(`{"error":{"type":"invalid_request_error","code":"resource_missing","param":"id",` +
			`"message":"No such price: 'price_pro'; a similar object exists in live mode, but a test mode key was used to make this request."}}`)
	}}
	r := e.check(t, e.billing(t, func(c *billing.Config) { c.HTTPClient = &http.Client{Transport: other, Timeout: 30 * time.Second} }))
	assert.Equal(t, []string{"error price_missing price_pro"}, codes(r))
	assert.Contains(t, r.Findings[0].Problem, "exists in live mode only")
	assert.Contains(t, r.Findings[0].Fix, "test-mode price")
}

func TestSelfCheckFindingString(t *testing.T) {
	f := billing.Finding{Severity: billing.SeverityError, Code: "price_missing", Subject: "price_x", Problem: "gone", Fix: "create it"}
	assert.Equal(t, "error price_missing price_x: gone; fix: create it", f.String())
	raw, err := json.Marshal(f)
	require.NoError(t, err)
	assert.JSONEq(t, `{"severity":"error","code":"price_missing","subject":"price_x","problem":"gone","fix":"create it"}`, string(raw))
}

// denyPrice answers 403, as Stripe answers a restricted key, for one
// price only.
type denyPrice struct{ id string }

func (d denyPrice) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && r.URL.Path == "/v1/prices/"+d.id {
		body := `{"error":{"type":"invalid_request_error","message":"The provided key does not have the required permissions"}}`
		return &http.Response{StatusCode: http.StatusForbidden, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

// A key refused a price after reading the ones before it reports no plan
// rather than a partial list that would read as complete.
func TestSelfCheckPricesDeniedHalfway(t *testing.T) {
	t.Parallel()
	e := newSCEnv(t)
	e.endpoint(t, scWebhookURL, stripe.APIVersion)
	plans := testcatalog.Plans()
	require.Greater(t, len(plans), 1)
	b := e.billing(t, func(c *billing.Config) {
		c.HTTPClient = &http.Client{Transport: denyPrice{plans[1].PriceID}, Timeout: 30 * time.Second}
	})
	r := e.check(t, b)
	assert.Equal(t, []string{"warning prices_unreadable "}, codes(r))
	assert.Nil(t, r.Plans, "not the first plan alone")
	assert.Equal(t, 1, e.fake.Calls()["GET /v1/prices/{id}"], "the first read; the second refused before it reached the fake")
}
