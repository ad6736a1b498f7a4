package billingtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
	"github.com/gobilling/billing/memstore"
)

var dlStart = time.Date(2025, 10, 1, 9, 0, 0, 0, time.UTC)

// dlSetup starts a fake Stripe with a monthly price and a stripe-go client.
func dlSetup(t *testing.T) (*billingtest.Stripe, *stripe.Client) {
	t.Helper()
	srv := billingtest.New(billingtest.Options{Start: dlStart})
	t.Cleanup(srv.Close)
	srv.AddPrice("price_month", "month", 1000)
	srv.AddPrice("price_pro", "month", 2900)
	sc := stripe.NewClient("sk_test_x", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL:           stripe.String(srv.URL()),
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})))
	return srv, sc
}

// dlCheckout creates a subscription Checkout Session and completes it: the
// step emits twelve events (a new customer, its card, the subscription, its
// paid first invoice and payment, the session).
func dlCheckout(t *testing.T, srv *billingtest.Stripe, sc *stripe.Client) []billingtest.Event {
	t.Helper()
	cs, err := sc.V1CheckoutSessions.Create(context.Background(), &stripe.CheckoutSessionCreateParams{
		Mode:       stripe.String("subscription"),
		SuccessURL: stripe.String("https://app.test/ok?cs={CHECKOUT_SESSION_ID}"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{
			{Price: stripe.String("price_month"), Quantity: stripe.Int64(1)},
		},
		CustomerEmail: stripe.String("a@example.com"),
	})
	require.NoError(t, err)
	evs, err := testcatalog.Pay(srv, cs.ID)
	require.NoError(t, err)
	require.Len(t, evs, 12)
	return evs
}

func dlFlush(t *testing.T, srv *billingtest.Stripe) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, srv.Flush(ctx))
}

func dlIDs(evs []billingtest.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// dlReceived is one request a dlRecorder answered.
type dlReceived struct {
	Event  stripe.Event
	Body   []byte
	Header http.Header
	Path   string
	At     time.Time
	Err    error // signature verification
}

// dlRecorder is a webhook receiver that verifies each request with
// stripe-go, records it, and answers with status(n) for the n-th request
// of an event (from 1), or 200.
type dlRecorder struct {
	secret     string
	anyVersion bool // verify without the API version check
	mu         sync.Mutex
	got        []dlReceived
	perEvent   map[string]int
	status     func(eventID string, n int) int
}

func (rc *dlRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	rc.mu.Lock()
	secret := rc.secret
	rc.mu.Unlock()
	ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), secret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: rc.anyVersion})
	if err != nil {
		// Still decode to learn the ID.
		_ = json.Unmarshal(body, &ev)
	}
	rc.mu.Lock()
	if rc.perEvent == nil {
		rc.perEvent = map[string]int{}
	}
	rc.perEvent[ev.ID]++
	n := rc.perEvent[ev.ID]
	rc.got = append(rc.got, dlReceived{Event: ev, Body: body, Header: r.Header.Clone(), Path: r.URL.Path, At: time.Now(), Err: err})
	status := rc.status
	rc.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	code := 200
	if status != nil {
		code = status(ev.ID, n)
	}
	w.WriteHeader(code)
}

func (rc *dlRecorder) received() []dlReceived {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

func (rc *dlRecorder) ids() []string {
	var out []string
	for _, g := range rc.received() {
		out = append(out, g.Event.ID)
	}
	return out
}

func TestDeliveryInProcess(t *testing.T) {
	srv, sc := dlSetup(t)
	rc := &dlRecorder{secret: "whsec_inproc"}
	ep := srv.AddEndpoint(rc, billingtest.EndpointOptions{Secret: rc.secret})
	assert.True(t, strings.HasPrefix(ep.ID, "we_"), ep.ID)
	assert.Equal(t, "whsec_inproc", ep.Secret)

	evs := dlCheckout(t, srv, sc)
	dlFlush(t, srv)

	got := rc.received()
	require.Len(t, got, len(evs))
	for i, g := range got {
		require.NoError(t, g.Err, "stripe-go verifies the signature and the API version")
		assert.Equal(t, evs[i].ID, g.Event.ID, "in the order emitted")
		assert.Equal(t, evs[i].JSON, g.Body, "the event snapshot, byte for byte")
		assert.Equal(t, "2025-08-27.basil", g.Event.APIVersion)
		assert.Equal(t, evs[i].Created, g.Event.Created, "created is simulated time")
		assert.Equal(t, "Stripe/1.0 (+https://stripe.com/docs/webhooks)", g.Header.Get("User-Agent"))
		assert.True(t, strings.HasPrefix(g.Header.Get("Content-Type"), "application/json"))
		sig := g.Header.Get("Stripe-Signature")
		assert.Regexp(t, `^t=\d+,v1=[0-9a-f]{64}$`, sig)
	}
	// The signature is at the real time, created at the simulated one.
	assert.Less(t, evs[0].Created, time.Now().Add(-24*time.Hour).Unix())
	for _, d := range srv.Deliveries() {
		assert.True(t, d.Succeeded, "%+v", d)
		assert.Equal(t, 1, d.Attempts)
		assert.Equal(t, 200, d.Status)
		assert.Equal(t, ep.ID, d.EndpointID)
	}
	assert.Empty(t, srv.Failed())

	// A second endpoint gets only the events emitted after it exists.
	rc2 := &dlRecorder{secret: "whsec_second"}
	srv.AddEndpoint(rc2, billingtest.EndpointOptions{Secret: rc2.secret})
	evs2 := dlCheckout(t, srv, sc)
	dlFlush(t, srv)
	assert.Equal(t, dlIDs(evs2), rc2.ids())
	assert.Equal(t, append(dlIDs(evs), dlIDs(evs2)...), rc.ids())
}

func TestDeliveryFilterByEnabledEvents(t *testing.T) {
	srv, sc := dlSetup(t)
	rc := &dlRecorder{secret: "whsec_f"}
	srv.AddEndpoint(rc, billingtest.EndpointOptions{Secret: rc.secret,
		EnabledEvents: []string{"invoice.paid", "checkout.session.completed"}})
	evs := dlCheckout(t, srv, sc)
	dlFlush(t, srv)
	var want []string
	for _, e := range evs {
		if e.Type == "invoice.paid" || e.Type == "checkout.session.completed" {
			want = append(want, e.ID)
		}
	}
	require.Len(t, want, 2)
	assert.Equal(t, want, rc.ids())
	assert.Len(t, srv.Deliveries(), 2, "no delivery for events the endpoint does not want")
}

func TestDeliveryURLEndpointAPI(t *testing.T) {
	srv, sc := dlSetup(t)
	ctx := context.Background()
	rc := &dlRecorder{}
	recv := httptest.NewServer(rc)
	t.Cleanup(recv.Close)

	we, err := sc.V1WebhookEndpoints.Create(ctx, &stripe.WebhookEndpointCreateParams{
		URL:           stripe.String(recv.URL + "/stripe/webhook"),
		EnabledEvents: stripe.StringSlice([]string{"customer.subscription.created", "invoice.paid"}),
		APIVersion:    stripe.String(stripe.APIVersion),
		Description:   stripe.String("app"),
		Metadata:      map[string]string{"env": "test"},
	})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(we.ID, "we_"), we.ID)
	assert.True(t, strings.HasPrefix(we.Secret, "whsec_"), "the secret comes with the create response")
	assert.Equal(t, "webhook_endpoint", we.Object)
	assert.Equal(t, "enabled", we.Status)
	assert.Equal(t, []string{"customer.subscription.created", "invoice.paid"}, we.EnabledEvents)
	assert.Equal(t, stripe.APIVersion, we.APIVersion)
	assert.Equal(t, "app", we.Description)
	assert.Equal(t, map[string]string{"env": "test"}, we.Metadata)
	assert.False(t, we.Livemode)
	rc.mu.Lock()
	rc.secret = we.Secret
	rc.mu.Unlock()

	got, err := sc.V1WebhookEndpoints.Retrieve(ctx, we.ID, nil)
	require.NoError(t, err)
	assert.Empty(t, got.Secret, "only the create response carries the secret")
	assert.Equal(t, we.URL, got.URL)

	dlCheckout(t, srv, sc)
	dlFlush(t, srv)
	require.Len(t, rc.received(), 2)
	for _, g := range rc.received() {
		require.NoError(t, g.Err)
		assert.Contains(t, []string{"customer.subscription.created", "invoice.paid"}, string(g.Event.Type))
		assert.Equal(t, "/stripe/webhook", g.Path)
		assert.Equal(t, "Stripe/1.0 (+https://stripe.com/docs/webhooks)", g.Header.Get("User-Agent"))
	}

	// Update: every event type, then disabled.
	up, err := sc.V1WebhookEndpoints.Update(ctx, we.ID, &stripe.WebhookEndpointUpdateParams{
		EnabledEvents: stripe.StringSlice([]string{"*"})})
	require.NoError(t, err)
	assert.Equal(t, []string{"*"}, up.EnabledEvents)
	dlCheckout(t, srv, sc)
	dlFlush(t, srv)
	assert.Len(t, rc.received(), 2+12)

	up, err = sc.V1WebhookEndpoints.Update(ctx, we.ID, &stripe.WebhookEndpointUpdateParams{Disabled: stripe.Bool(true)})
	require.NoError(t, err)
	assert.Equal(t, "disabled", up.Status)
	dlCheckout(t, srv, sc)
	dlFlush(t, srv)
	assert.Len(t, rc.received(), 2+12, "a disabled endpoint gets nothing")

	// List, then delete.
	in := srv.AddEndpoint(http.NotFoundHandler(), billingtest.EndpointOptions{})
	var ids []string
	for e, err := range sc.V1WebhookEndpoints.List(ctx, &stripe.WebhookEndpointListParams{}) {
		require.NoError(t, err)
		assert.Empty(t, e.Secret)
		ids = append(ids, e.ID)
	}
	assert.Equal(t, []string{in.ID, we.ID}, ids, "newest first")
	var paged []string
	for e, err := range sc.V1WebhookEndpoints.List(ctx, &stripe.WebhookEndpointListParams{
		ListParams: stripe.ListParams{Limit: stripe.Int64(1)}}) {
		require.NoError(t, err)
		paged = append(paged, e.ID)
	}
	assert.Equal(t, ids, paged, "paginated one by one")

	del, err := sc.V1WebhookEndpoints.Delete(ctx, we.ID, nil)
	require.NoError(t, err)
	assert.True(t, del.Deleted)
	_, err = sc.V1WebhookEndpoints.Retrieve(ctx, we.ID, nil)
	var se *stripe.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 404, se.HTTPStatusCode)
	assert.Equal(t, stripe.ErrorCodeResourceMissing, se.Code)
	assert.Equal(t, 1, srv.Calls()["DELETE /v1/webhook_endpoints/{id}"], "counted like every API route")
}

// dlDo sends a raw form request to the fake API.
func dlDo(t *testing.T, srv *billingtest.Stripe, method, path, form string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL()+path, strings.NewReader(form))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer sk_test_x")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

func TestWebhookEndpointValidation(t *testing.T) {
	srv, _ := dlSetup(t)
	for _, tc := range []struct {
		form, param, code string
	}{
		{"enabled_events[0]=*", "url", "parameter_missing"},
		{"url=ftp://x", "url", "parameter_invalid"},
		{"url=https://app.test/wh", "enabled_events", "parameter_missing"},
		{"url=https://app.test/wh&enabled_events[0]=NOT%20A%20TYPE", "enabled_events", "parameter_invalid"},
		{"url=https://app.test/wh&enabled_events[0]=*&api_version=latest", "api_version", "parameter_invalid"},
		{"url=https://app.test/wh&enabled_events[0]=*&connect=maybe", "connect", "parameter_not_modelled"},
		{"url=https://app.test/wh&enabled_events[0]=*&kinnect=maybe", "kinnect", "parameter_unknown"},
	} {
		status, body := dlDo(t, srv, "POST", "/v1/webhook_endpoints", tc.form)
		assert.Equal(t, 400, status, tc.form)
		e, _ := body["error"].(map[string]any)
		assert.Equal(t, "invalid_request_error", e["type"], tc.form)
		assert.Equal(t, tc.param, e["param"], tc.form)
		assert.Equal(t, tc.code, e["code"], tc.form)
	}
	status, body := dlDo(t, srv, "POST", "/v1/webhook_endpoints", "url=https://app.test/wh&enabled_events[]=invoice.paid&api_version=2025-09-30.clover")
	require.Equal(t, 200, status, body)
	assert.Equal(t, "2025-09-30.clover", body["api_version"], "any version can be pinned, as at Stripe")
	assert.Equal(t, []any{"invoice.paid"}, body["enabled_events"])
	status, body = dlDo(t, srv, "POST", "/v1/webhook_endpoints", "url=https://app.test/wh&enabled_events[0]=*")
	require.Equal(t, 200, status, body)
	assert.Nil(t, body["api_version"], "the account's default version")
	status, _ = dlDo(t, srv, "GET", "/v1/webhook_endpoints/we_nope", "")
	assert.Equal(t, 404, status)
	status, _ = dlDo(t, srv, "GET", "/v1/webhook_endpoints?limit=1000", "")
	assert.Equal(t, 400, status)
}

func TestDeliveryRetriesUntilSuccess(t *testing.T) {
	srv, sc := dlSetup(t)
	rc := &dlRecorder{secret: "whsec_r", status: func(_ string, n int) int {
		if n <= 3 {
			return 500
		}
		return 200
	}}
	srv.AddEndpoint(rc, billingtest.EndpointOptions{Secret: rc.secret,
		EnabledEvents: []string{"invoice.paid"}, Delivery: billingtest.DeliveryOptions{RetryBase: 20 * time.Millisecond}})
	dlCheckout(t, srv, sc)
	dlFlush(t, srv)
	got := rc.received()
	require.Len(t, got, 4, "three 500s, then a 200")
	for i, g := range got {
		require.NoError(t, g.Err, "every attempt is freshly signed")
		if i > 0 {
			want := 20 * time.Millisecond << (i - 1)
			assert.GreaterOrEqual(t, g.At.Sub(got[i-1].At), want, "exponential backoff before attempt %d", i+1)
		}
	}
	ds := srv.Deliveries()
	require.Len(t, ds, 1)
	assert.Equal(t, 4, ds[0].Attempts)
	assert.True(t, ds[0].Succeeded)
	assert.False(t, ds[0].GaveUp)
	assert.Equal(t, 200, ds[0].Status)
}

func TestDeliveryGivesUp(t *testing.T) {
	srv, sc := dlSetup(t)
	var mu sync.Mutex
	calls := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	srv.AddEndpoint(h, billingtest.EndpointOptions{EnabledEvents: []string{"invoice.paid", "invoice.created"},
		Delivery: billingtest.DeliveryOptions{RetryBase: time.Millisecond, MaxAttempts: 3}})
	evs := dlCheckout(t, srv, sc)
	dlFlush(t, srv)
	mu.Lock()
	assert.Equal(t, 6, calls, "two events, three attempts each")
	mu.Unlock()
	failed := srv.Failed()
	require.Len(t, failed, 2)
	for _, f := range failed {
		assert.True(t, f.GaveUp)
		assert.False(t, f.Succeeded)
		assert.Equal(t, 3, f.Attempts)
		assert.Equal(t, 503, f.Status)
		assert.Equal(t, "HTTP 503", f.Err)
		assert.Contains(t, dlIDs(evs), f.EventID)
	}
}

func TestDeliveryPanicAndTransportErrors(t *testing.T) {
	srv, sc := dlSetup(t)
	srv.AddEndpoint(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }),
		billingtest.EndpointOptions{EnabledEvents: []string{"invoice.paid"},
			Delivery: billingtest.DeliveryOptions{RetryBase: time.Millisecond, MaxAttempts: 2}})
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	we, err := sc.V1WebhookEndpoints.Create(context.Background(), &stripe.WebhookEndpointCreateParams{
		URL: stripe.String(deadURL), EnabledEvents: stripe.StringSlice([]string{"invoice.paid"})})
	require.NoError(t, err)
	require.NoError(t, srv.SetDeliveryOptions(we.ID, billingtest.DeliveryOptions{RetryBase: time.Millisecond, MaxAttempts: 2}))
	dlCheckout(t, srv, sc)
	dlFlush(t, srv)
	failed := srv.Failed()
	require.Len(t, failed, 2)
	for _, f := range failed {
		assert.Equal(t, 0, f.Status)
		assert.Equal(t, 2, f.Attempts)
		assert.NotEmpty(t, f.Err)
	}
	assert.Contains(t, failed[0].Err+failed[1].Err, "handler panicked: boom")
}

// dlBilling is a Billing against the fake, with its webhook handler.
func dlBilling(t *testing.T, srv *billingtest.Stripe, secret string) *billing.Billing {
	t.Helper()
	b, err := billing.New(billing.Config{
		SecretKey:      "sk_test_delivery",
		WebhookSecrets: []string{secret},
		SiteURL:        "https://app.example",
		Plans: []billing.Plan{
			{PriceID: "price_month", Tier: "basic"},
			{PriceID: "price_pro", Tier: "pro"},
		},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Clock:      srv,
		StripeURL:  srv.URL(),
		MaxRetries: -1,
	}, memstore.New(), billing.UserResolverFunc(func(ctx context.Context, id string) (billing.User, error) {
		return billing.User{ID: id, Email: id + "@example.com", Name: "User " + id}, nil
	}))
	require.NoError(t, err)
	return b
}

// dlBuy checks out the pro plan for user u through billing and completes
// it at the fake; it returns the subscription ID.
func dlBuy(t *testing.T, srv *billingtest.Stripe, b *billing.Billing, u string) string {
	t.Helper()
	cs, err := b.Checkout(context.Background(), u, billing.CheckoutOptions{PriceID: "price_pro"})
	require.NoError(t, err)
	_, err = testcatalog.Pay(srv, cs.ID)
	require.NoError(t, err)
	subs := srv.SubscriptionsOf(srv.CheckoutSession(cs.ID).Customer.ID)
	require.Len(t, subs, 1)
	return subs[0]
}

func TestDeliveryAPIVersionStamping(t *testing.T) {
	srv, _ := dlSetup(t)
	const secret = "whsec_clover"
	b := dlBilling(t, srv, secret)
	ep := srv.AddEndpoint(b.WebhookHandler(), billingtest.EndpointOptions{Secret: secret, APIVersion: "2025-09-30.clover",
		Delivery: billingtest.DeliveryOptions{RetryBase: time.Millisecond, MaxAttempts: 2}})
	rc := &dlRecorder{secret: "whsec_rc", anyVersion: true}
	srv.AddEndpoint(rc, billingtest.EndpointOptions{Secret: rc.secret, APIVersion: "2025-09-30.clover"})
	rcBasil := &dlRecorder{secret: "whsec_basil"}
	srv.AddEndpoint(rcBasil, billingtest.EndpointOptions{Secret: rcBasil.secret, APIVersion: "2025-08-27.basil"})

	dlBuy(t, srv, b, "u1")
	dlFlush(t, srv)

	for _, g := range rc.received() {
		require.NoError(t, g.Err)
		assert.Equal(t, "2025-09-30.clover", g.Event.APIVersion, "stamped with the endpoint's version")
	}
	require.Len(t, rc.received(), len(srv.Events()))
	for _, g := range rcBasil.received() {
		require.NoError(t, g.Err, "basil verifies with stripe-go's default version check")
	}
	var failed []billingtest.Delivery
	for _, f := range srv.Failed() {
		if f.EndpointID == ep.ID {
			failed = append(failed, f)
		}
	}
	require.Len(t, failed, len(srv.Events()), "billing rejects every clover event")
	for _, f := range failed {
		assert.Equal(t, http.StatusBadRequest, f.Status)
	}
}

func TestDeliveryEventsOfAStepShareTheirSecond(t *testing.T) {
	srv, sc := dlSetup(t)
	evs := dlCheckout(t, srv, sc)
	for _, e := range evs {
		assert.Equal(t, evs[0].Created, e.Created, "several events in one second: %s", e.Type)
	}
}

func TestChaosSameSecond(t *testing.T) {
	srv, sc := dlSetup(t)
	rc := &dlRecorder{secret: "whsec_ss"}
	srv.AddEndpoint(rc, billingtest.EndpointOptions{Secret: rc.secret,
		Delivery: billingtest.DeliveryOptions{Chaos: billingtest.Chaos{SameSecond: true}}})
	first := dlCheckout(t, srv, sc)
	srv.Advance(5 * time.Hour)
	second := dlCheckout(t, srv, sc)
	require.NotEqual(t, first[0].Created, second[0].Created)
	dlFlush(t, srv)
	srv.Advance(time.Hour)
	third := dlCheckout(t, srv, sc)
	dlFlush(t, srv)

	created := map[string]int64{}
	for _, g := range rc.received() {
		created[g.Event.ID] = g.Event.Created
	}
	for _, e := range append(first, second...) {
		assert.Equal(t, first[0].Created, created[e.ID], "stamped with the batch's first second: %s", e.Type)
	}
	for _, e := range third {
		assert.Equal(t, third[0].Created, created[e.ID], "a new batch after Flush: %s", e.Type)
	}
}

func TestChaosShuffle(t *testing.T) {
	srv, sc := dlSetup(t)
	rc := &dlRecorder{secret: "whsec_s"}
	srv.AddEndpoint(rc, billingtest.EndpointOptions{Secret: rc.secret,
		Delivery: billingtest.DeliveryOptions{Chaos: billingtest.Chaos{Shuffle: true, Seed: 7}}})
	var emitted []string
	for range 5 {
		emitted = append(emitted, dlIDs(dlCheckout(t, srv, sc))...)
	}
	time.Sleep(20 * time.Millisecond)
	assert.Empty(t, rc.received(), "held until Flush")
	dlFlush(t, srv)
	got := rc.ids()
	assert.ElementsMatch(t, emitted, got, "each event once")
	assert.NotEqual(t, emitted, got, "in another order")
}

func TestChaosDuplicate(t *testing.T) {
	srv, sc := dlSetup(t)
	rc := &dlRecorder{secret: "whsec_d"}
	srv.AddEndpoint(rc, billingtest.EndpointOptions{Secret: rc.secret,
		Delivery: billingtest.DeliveryOptions{Chaos: billingtest.Chaos{Duplicate: 1, Seed: 1}}})
	evs := dlCheckout(t, srv, sc)
	dlFlush(t, srv)
	got := rc.ids()
	require.Len(t, got, 2*len(evs))
	for _, id := range dlIDs(evs) {
		assert.Equal(t, 2, count(got, id), "%s received twice", id)
	}
	dups := 0
	for _, d := range srv.Deliveries() {
		assert.True(t, d.Succeeded)
		if d.Duplicate {
			dups++
		}
	}
	assert.Equal(t, len(evs), dups)
}

func count(ids []string, id string) int {
	n := 0
	for _, x := range ids {
		if x == id {
			n++
		}
	}
	return n
}

func TestChaosDropThenRedeliver(t *testing.T) {
	srv, sc := dlSetup(t)
	rc := &dlRecorder{secret: "whsec_dr"}
	srv.AddEndpoint(rc, billingtest.EndpointOptions{Secret: rc.secret,
		Delivery: billingtest.DeliveryOptions{Chaos: billingtest.Chaos{DropThenRedeliver: 0.5, Seed: 3}}})
	evs := dlCheckout(t, srv, sc)
	dlFlush(t, srv)
	got := rc.ids()
	assert.ElementsMatch(t, dlIDs(evs), got, "the receiver sees each event once")

	dropped := map[string]bool{}
	for _, d := range srv.Deliveries() {
		assert.True(t, d.Succeeded)
		if d.Attempts == 2 {
			dropped[d.EventID] = true
		} else {
			assert.Equal(t, 1, d.Attempts)
		}
	}
	require.NotEmpty(t, dropped, "seed 3 drops some")
	require.Less(t, len(dropped), len(evs), "seed 3 keeps some")
	// A dropped event arrives after every kept event emitted after it.
	for i, e := range evs {
		if !dropped[e.ID] {
			continue
		}
		for _, later := range evs[i+1:] {
			if !dropped[later.ID] {
				assert.Greater(t, slices.Index(got, e.ID), slices.Index(got, later.ID), "%s redelivered later", e.Type)
			}
		}
	}
}

func TestChaosDelay(t *testing.T) {
	srv, sc := dlSetup(t)
	rc := &dlRecorder{secret: "whsec_dl"}
	srv.AddEndpoint(rc, billingtest.EndpointOptions{Secret: rc.secret,
		Delivery: billingtest.DeliveryOptions{Chaos: billingtest.Chaos{Delay: 40 * time.Millisecond, Seed: 5}}})
	begin := time.Now()
	evs := dlCheckout(t, srv, sc)
	dlFlush(t, srv)
	assert.Equal(t, dlIDs(evs), rc.ids(), "delays alone keep the order")
	assert.GreaterOrEqual(t, time.Since(begin), 40*time.Millisecond, "seven random delays of up to 40ms, one after another")
}

func TestFlushContextAndClose(t *testing.T) {
	srv, sc := dlSetup(t)
	srv.AddEndpoint(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }),
		billingtest.EndpointOptions{Delivery: billingtest.DeliveryOptions{RetryBase: time.Hour}})
	dlCheckout(t, srv, sc)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := srv.Flush(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "12 deliveries still pending")
	srv.Close() // stops the workers waiting an hour to retry
	require.ErrorIs(t, srv.Flush(context.Background()), billingtest.ErrClosed)
}

func TestSignedEventBuilders(t *testing.T) {
	srv, _ := dlSetup(t)
	ev := srv.NewEvent("customer.subscription.deleted", map[string]any{"id": "sub_1", "object": "subscription", "status": "canceled"})
	assert.True(t, strings.HasPrefix(ev.ID, "evt_"))
	assert.Equal(t, srv.Now().Unix(), ev.Created)
	e, err := webhook.ConstructEvent(ev.JSON, billingtest.Sign("whsec_b", ev.JSON), "whsec_b")
	require.NoError(t, err)
	assert.Equal(t, ev.ID, e.ID)
	assert.Equal(t, "customer.subscription.deleted", string(e.Type))
	assert.Equal(t, stripe.APIVersion, e.APIVersion)
	var sub stripe.Subscription
	require.NoError(t, json.Unmarshal(e.Data.Raw, &sub))
	assert.Equal(t, stripe.SubscriptionStatusCanceled, sub.Status)

	raw := srv.NewEvent("invoice.paid", []byte(`{"id":"in_1","object":"invoice"}`))
	r := billingtest.SignedRequest("whsec_b", raw.JSON)
	assert.Equal(t, http.MethodPost, r.Method)
	body, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	_, err = webhook.ConstructEvent(body, r.Header.Get("Stripe-Signature"), "whsec_b")
	require.NoError(t, err)
	assert.Panics(t, func() { srv.NewEvent("x.y", []byte(`[1]`)) })

	// Billing accepts a built event: an event type it ignores.
	b := dlBilling(t, srv, "whsec_b")
	rec := httptest.NewRecorder()
	b.WebhookHandler().ServeHTTP(rec, billingtest.SignedRequest("whsec_b", srv.NewEvent("customer.created", map[string]any{"id": "cus_1"}).JSON))
	assert.Equal(t, 200, rec.Code, rec.Body.String())
	assert.Contains(t, rec.Body.String(), "ignored")
}

// TestChaosWithBilling runs a membership lifecycle with billing's webhook
// handler as the receiver under each chaos setting and all of them at once:
// after each Flush the membership is what Stripe says.
func TestChaosWithBilling(t *testing.T) {
	all := billingtest.Chaos{Shuffle: true, Duplicate: 0.4, DropThenRedeliver: 0.4, Delay: 3 * time.Millisecond, SameSecond: true}
	for _, tc := range []struct {
		name  string
		chaos billingtest.Chaos
	}{
		{"none", billingtest.Chaos{}},
		{"shuffle", billingtest.Chaos{Shuffle: true}},
		{"duplicate", billingtest.Chaos{Duplicate: 0.5}},
		{"drop", billingtest.Chaos{DropThenRedeliver: 0.5}},
		{"delay", billingtest.Chaos{Delay: 3 * time.Millisecond}},
		{"same_second", billingtest.Chaos{SameSecond: true}},
		{"all", all},
	} {
		for seed := uint64(1); seed <= 3; seed++ {
			t.Run(fmt.Sprintf("%s_seed%d", tc.name, seed), func(t *testing.T) {
				t.Parallel()
				srv, _ := dlSetup(t)
				const secret = "whsec_chaos"
				b := dlBilling(t, srv, secret)
				c := tc.chaos
				c.Seed = seed
				srv.AddEndpoint(b.WebhookHandler(), billingtest.EndpointOptions{Secret: secret,
					Delivery: billingtest.DeliveryOptions{Chaos: c, RetryBase: 2 * time.Millisecond}})
				ctx := context.Background()
				member := func() billing.Membership {
					t.Helper()
					m, err := b.Membership(ctx, "u1")
					require.NoError(t, err)
					return m
				}
				periodEnd := func(sub string) time.Time {
					return time.Unix(srv.Subscription(sub).Items.Data[0].CurrentPeriodEnd, 0).UTC()
				}

				sub := dlBuy(t, srv, b, "u1")
				dlFlush(t, srv)
				m := member()
				assert.Equal(t, billing.StatusActive, m.Status)
				assert.Equal(t, "pro", m.Tier)
				assert.Equal(t, periodEnd(sub), m.CurrentPeriodEnd)

				// Two steps before one Flush: events of both are mixed.
				srv.Advance(30 * 24 * time.Hour)
				_, err := testcatalog.Renew(srv, sub)
				require.NoError(t, err)
				srv.Advance(time.Hour)
				_, err = srv.CancelAtPeriodEnd(sub)
				require.NoError(t, err)
				dlFlush(t, srv)
				m = member()
				assert.Equal(t, billing.StatusActive, m.Status)
				assert.Equal(t, periodEnd(sub), m.CurrentPeriodEnd, "renewed")
				assert.Equal(t, periodEnd(sub), m.CancelAt, "set to cancel")

				srv.Advance(31 * 24 * time.Hour)
				_, err = testcatalog.EndCancellation(srv, sub)
				require.NoError(t, err)
				dlFlush(t, srv)
				assert.Equal(t, billing.StatusCanceled, member().Status)
				assert.Empty(t, srv.Failed(), "billing answers every delivery 2xx in the end")
			})
		}
	}
}

// An in-process endpoint receives the simulator's events, signed, in the
// order Stripe emits them; Flush waits for their delivery.
func ExampleStripe_AddEndpoint() {
	srv := billingtest.New(billingtest.Options{})
	defer srv.Close()
	srv.AddPrice("price_month", "month", 1000)

	const secret = "whsec_example"
	var mu sync.Mutex
	var got []string
	srv.AddEndpoint(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ev, err := webhook.ConstructEvent(body, r.Header.Get("Stripe-Signature"), secret)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, string(ev.Type))
		mu.Unlock()
	}), billingtest.EndpointOptions{Secret: secret})

	sc := stripe.NewClient("sk_test_x", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL: stripe.String(srv.URL()), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})))
	cs, err := sc.V1CheckoutSessions.Create(context.Background(), &stripe.CheckoutSessionCreateParams{
		Mode:       stripe.String("subscription"),
		SuccessURL: stripe.String("https://app.test/ok"),
		LineItems:  []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_month"), Quantity: stripe.Int64(1)}},
	})
	if err != nil {
		panic(err)
	}
	if _, err := srv.Pay(cs.ID, billingtest.CardOK); err != nil {
		panic(err)
	}
	if err := srv.Flush(context.Background()); err != nil {
		panic(err)
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Println(strings.Join(got, "\n"))
	// Output:
	// customer.created
	// payment_method.attached
	// customer.subscription.created
	// invoice.created
	// invoice.finalized
	// payment_intent.created
	// charge.succeeded
	// payment_intent.succeeded
	// invoice.paid
	// invoice.payment_succeeded
	// customer.subscription.updated
	// checkout.session.completed
}
