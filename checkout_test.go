package billing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
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
	"github.com/gobilling/billing/internal/testenv"
	"github.com/gobilling/billing/memstore"
)

// coSecretKey is the API key of the checkout tests: it must never appear
// in an error or a log line.
const coSecretKey = "sk_test_coSECRETkey0123456789"

// coStart is the fake Stripe's clock at the start of every checkout test:
// the start of a minute, so that a test's requests share one idempotency
// window unless it advances the clock.
var coStart = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// coRequest is one request billing sent to Stripe, as seen on the wire.
type coRequest struct {
	Method, Path string
	Form         url.Values // the form-encoded body of a POST
	Header       http.Header
	Status       int
	Response     []byte
}

// coRecorder is the http.RoundTripper of Config.HTTPClient: it records
// every request to the fake Stripe (form and response) and can run a hook
// before a request is sent.
type coRecorder struct {
	mu     sync.Mutex
	reqs   []coRequest
	before func(method, path string)             // set before the calls it observes
	after  func(method, path string, status int) // likewise
}

func (c *coRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	form, _ := url.ParseQuery(string(body))
	if c.before != nil {
		c.before(r.Method, r.URL.Path)
	}
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := http.DefaultTransport.RoundTrip(r2)
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	if c.after != nil {
		c.after(r.Method, r.URL.Path, resp.StatusCode)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, coRequest{Method: r.Method, Path: r.URL.Path, Form: form, Header: r.Header.Clone(), Status: resp.StatusCode, Response: raw})
	return resp, nil
}

// requests returns the recorded requests with the method and path.
func (c *coRecorder) requests(method, path string) []coRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []coRequest
	for _, r := range c.reqs {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// createdIDs returns the distinct IDs of the objects the successful
// responses to method path carried (a replay carries the first one's).
func (c *coRecorder) createdIDs(t *testing.T, method, path string) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	for _, r := range c.requests(method, path) {
		if r.Status != http.StatusOK {
			continue
		}
		var obj struct{ ID string }
		require.NoError(t, json.Unmarshal(r.Response, &obj))
		if !seen[obj.ID] {
			seen[obj.ID] = true
			out = append(out, obj.ID)
		}
	}
	return out
}

// coEnv is a Billing against a fresh fake Stripe.
type coEnv struct {
	fake  *billingtest.Stripe
	b     *billing.Billing
	store billing.Store
	rec   *coRecorder
	logs  *testenv.LogBuffer
	h     http.Handler
}

func newCoEnv(t *testing.T, mod ...func(*billing.Config)) *coEnv {
	t.Helper()
	return newCoEnvWith(t, memstore.New(), users, mod...)
}

func newCoEnvWith(t *testing.T, store billing.Store, resolver billing.UserResolver, mod ...func(*billing.Config)) *coEnv {
	t.Helper()
	fake := testcatalog.NewStripe(t, coStart)
	rec := &coRecorder{}
	logs := &testenv.LogBuffer{}
	cfg := billing.Config{
		SecretKey:      coSecretKey,
		WebhookSecrets: []string{testSecret},
		SiteURL:        "https://app.example",
		Plans:          testcatalog.Plans(),
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:          fake,
		StripeURL:      fake.URL(),
		HTTPClient:     &http.Client{Transport: rec, Timeout: 30 * time.Second},
	}
	for _, m := range mod {
		m(&cfg)
	}
	b, err := billing.New(cfg, store, resolver)
	require.NoError(t, err)
	t.Cleanup(func() {
		out := logs.String()
		if strings.Contains(out, coSecretKey) || strings.Contains(out, testSecret) {
			t.Errorf("a secret reached the logs")
		}
		if t.Failed() {
			t.Logf("billing logs:\n%s", out)
		}
	})
	return &coEnv{fake: fake, b: b, store: store, rec: rec, logs: logs, h: b.WebhookHandler()}
}

func (e *coEnv) calls(route string) int { return e.fake.Calls()[route] }

// complete has the customer pay the session at the fake Stripe with
// paymentMethod and returns the events Stripe would send (not delivered).
func (e *coEnv) complete(t *testing.T, sessionID, paymentMethod string) []billingtest.Event {
	t.Helper()
	paid, err := e.fake.Pay(sessionID, paymentMethod)
	require.NoError(t, err)
	evs := paid.Events
	require.NotEmpty(t, evs)
	return evs
}

// deliver signs each event with the endpoint's secret and posts it to the
// webhook handler, requiring 200; it returns the response bodies.
func (e *coEnv) deliver(t *testing.T, evs ...billingtest.Event) []string {
	t.Helper()
	var out []string
	for _, ev := range evs {
		code, body := e.post(ev)
		require.Equal(t, http.StatusOK, code, "%s %s: %s", ev.Type, ev.ID, body)
		out = append(out, body)
	}
	return out
}

// post signs one event and posts it to the webhook handler.
func (e *coEnv) post(ev billingtest.Event) (int, string) {
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: ev.JSON, Secret: testSecret, Timestamp: time.Now()})
	r := httptest.NewRequest(http.MethodPost, "/stripe/webhook", bytes.NewReader(ev.JSON))
	r.Header.Set("Stripe-Signature", sp.Header)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w.Code, strings.TrimSpace(w.Body.String())
}

// customerOf returns the customer linked to the user, failing the test if
// there is none.
func (e *coEnv) customerOf(t *testing.T, user string) string {
	t.Helper()
	c, err := e.store.CustomerID(context.Background(), user)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(c, "cus_"), c)
	return c
}

func (e *coEnv) checkout(t *testing.T, user string, opts billing.CheckoutOptions) billing.CheckoutSession {
	t.Helper()
	cs, err := e.b.Checkout(context.Background(), user, opts)
	require.NoError(t, err)
	require.NotEmpty(t, cs.ID)
	return cs
}

// periodEnd is Stripe's current_period_end of the subscription's first
// item, read from the fake's own object.
func (e *coEnv) periodEnd(t *testing.T, subID string) time.Time {
	t.Helper()
	s := e.fake.Subscription(subID)
	require.NotNil(t, s)
	require.NotEmpty(t, s.Items.Data)
	return time.Unix(s.Items.Data[0].CurrentPeriodEnd, 0).UTC()
}

func (e *coEnv) subscriptionOf(t *testing.T, sessionID string) string {
	t.Helper()
	s := e.fake.CheckoutSession(sessionID)
	require.NotNil(t, s)
	require.NotNil(t, s.Subscription, "session %s has no subscription", sessionID)
	return s.Subscription.ID
}

func TestCheckoutSubscriptionCreatesCustomerThenSession(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()

	// When the session is created, the customer must already be linked to
	// the user: a webhook for it can then never be orphaned.
	var linkedAtSession []string
	e.rec.before = func(method, p string) {
		if method == http.MethodPost && p == "/v1/checkout/sessions" {
			c, err := e.store.CustomerID(ctx, "u1")
			if err != nil {
				c = "error: " + err.Error()
			}
			linkedAtSession = append(linkedAtSession, c)
		}
	}

	cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	assert.True(t, strings.HasPrefix(cs.ID, "cs_test_"), cs.ID)
	assert.Equal(t, e.fake.URL()+"/pay/"+cs.ID, cs.URL, "the URL is the session's hosted page")

	// Exactly one customer, from the UserResolver, tagged with the user.
	assert.Equal(t, 1, e.calls("POST /v1/customers"))
	assert.Equal(t, 1, e.calls("POST /v1/checkout/sessions"))
	customer := e.customerOf(t, "u1")
	c := e.fake.Customer(customer)
	require.NotNil(t, c)
	assert.Equal(t, "u1@example.com", c.Email)
	assert.Equal(t, "User u1", c.Name)
	assert.Equal(t, map[string]string{"billing_user_id": "u1"}, c.Metadata)
	assert.Equal(t, []string{customer}, linkedAtSession, "the customer is linked before the session is created")

	// The session, as Stripe stored it.
	s := e.fake.CheckoutSession(cs.ID)
	require.NotNil(t, s)
	assert.Equal(t, stripe.CheckoutSessionModeSubscription, s.Mode)
	require.NotNil(t, s.Customer)
	assert.Equal(t, customer, s.Customer.ID)
	assert.Equal(t, "u1", s.ClientReferenceID)
	assert.Regexp(t, `^billing-fingerprint-[0-9a-f]{40}$`, s.Metadata["billing_checkout"], "every parameter's fingerprint")
	delete(s.Metadata, "billing_checkout")
	assert.Equal(t, map[string]string{"billing_user_id": "u1", "billing_price_id": "price_pro", "billing_quantity": "1"}, s.Metadata)
	assert.Equal(t, "https://app.example/checkout/return?session_id={CHECKOUT_SESSION_ID}", s.SuccessURL)
	assert.Equal(t, "https://app.example/pricing", s.CancelURL)
	assert.Equal(t, stripe.CheckoutSessionStatusOpen, s.Status)
	assert.Equal(t, int64(2900), s.AmountTotal, "one unit of price_pro")
	assert.False(t, s.AllowPromotionCodes)
	assert.Equal(t, []string{cs.ID}, e.fake.SessionsOf(customer))

	// What was sent: subscription_data carries the user, and both creates
	// carry idempotency keys.
	posts := e.rec.requests(http.MethodPost, "/v1/checkout/sessions")
	require.Len(t, posts, 1)
	f := posts[0].Form
	assert.Equal(t, "u1", f.Get("subscription_data[metadata][billing_user_id]"))
	assert.False(t, f.Has("subscription_data[trial_period_days]"))
	assert.Equal(t, "price_pro", f.Get("line_items[0][price]"))
	assert.Equal(t, "1", f.Get("line_items[0][quantity]"))
	assert.NotEmpty(t, posts[0].Header.Get("Idempotency-Key"))
	cp := e.rec.requests(http.MethodPost, "/v1/customers")
	require.Len(t, cp, 1)
	assert.NotEmpty(t, cp[0].Header.Get("Idempotency-Key"))

	// The subscription Checkout creates carries the user in its metadata.
	e.complete(t, cs.ID, billingtest.CardOK)
	sub := e.fake.Subscription(e.subscriptionOf(t, cs.ID))
	require.NotNil(t, sub)
	assert.Equal(t, "u1", sub.Metadata["billing_user_id"])
}

func TestCheckoutURLsAndOptions(t *testing.T) {
	t.Parallel()
	t.Run("site URL with a path and configured paths", func(t *testing.T) {
		e := newCoEnv(t, func(c *billing.Config) {
			c.SiteURL = "https://example.org/app/"
			c.SuccessPath = "done/{CHECKOUT_SESSION_ID}"
			c.CancelPath = "/plans?from=checkout"
		})
		cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
		s := e.fake.CheckoutSession(cs.ID)
		require.NotNil(t, s)
		assert.Equal(t, "https://example.org/app/done/{CHECKOUT_SESSION_ID}", s.SuccessURL)
		assert.Equal(t, "https://example.org/app/plans?from=checkout", s.CancelURL)
	})
	t.Run("overrides, trial, promotion codes, quantity", func(t *testing.T) {
		e := newCoEnv(t)
		cs := e.checkout(t, "u1", billing.CheckoutOptions{
			PriceID: "price_pro", Quantity: 2, TrialDays: 14, AllowPromotionCodes: true,
			SuccessURL: "https://other.example/ok?cs={CHECKOUT_SESSION_ID}", CancelURL: "https://other.example/back",
		})
		s := e.fake.CheckoutSession(cs.ID)
		require.NotNil(t, s)
		assert.Equal(t, "https://other.example/ok?cs={CHECKOUT_SESSION_ID}", s.SuccessURL)
		assert.Equal(t, "https://other.example/back", s.CancelURL)
		assert.True(t, s.AllowPromotionCodes)
		assert.Equal(t, "2", s.Metadata["billing_quantity"])
		posts := e.rec.requests(http.MethodPost, "/v1/checkout/sessions")
		require.Len(t, posts, 1)
		assert.Equal(t, "14", posts[0].Form.Get("subscription_data[trial_period_days]"))
		assert.Equal(t, "2", posts[0].Form.Get("line_items[0][quantity]"))

		e.complete(t, cs.ID, billingtest.CardOK)
		sub := e.fake.Subscription(e.subscriptionOf(t, cs.ID))
		require.NotNil(t, sub)
		assert.Equal(t, stripe.SubscriptionStatusTrialing, sub.Status)
		assert.Equal(t, int64(2), sub.Items.Data[0].Quantity)
		assert.Equal(t, int64(14*86400), sub.TrialEnd-sub.TrialStart)
	})
}

func TestCheckoutDoubleClickMakesOneCustomerAndOneSession(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	const clicks = 4
	var (
		wg       sync.WaitGroup
		start    = make(chan struct{})
		sessions [clicks]billing.CheckoutSession
		errs     [clicks]error
	)
	for i := range clicks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			sessions[i], errs[i] = e.b.Checkout(context.Background(), "u1", billing.CheckoutOptions{PriceID: "price_pro"})
		}()
	}
	close(start)
	wg.Wait()
	for i := range clicks {
		require.NoError(t, errs[i], "click %d", i)
		assert.Equal(t, sessions[0], sessions[i], "click %d got another session", i)
	}

	customer := e.customerOf(t, "u1")
	// Replays count as requests, so count what exists instead.
	assert.Equal(t, []string{customer}, e.rec.createdIDs(t, http.MethodPost, "/v1/customers"), "one customer exists for the user")
	assert.Equal(t, []string{sessions[0].ID}, e.fake.SessionsOf(customer), "one session exists for the customer")
	assert.Equal(t, []string{sessions[0].ID}, e.rec.createdIDs(t, http.MethodPost, "/v1/checkout/sessions"))
	assert.GreaterOrEqual(t, e.calls("POST /v1/checkout/sessions"), 1)
	assert.LessOrEqual(t, e.calls("POST /v1/customers"), clicks)
	// Every session request carried the same key.
	keys := map[string]bool{}
	for _, r := range e.rec.requests(http.MethodPost, "/v1/checkout/sessions") {
		keys[r.Header.Get("Idempotency-Key")] = true
	}
	assert.Len(t, keys, 1)
}

func TestCheckoutLaterReusesStoredCustomer(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	first := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	customer := e.customerOf(t, "u1")

	// Within the idempotency window the same request gets the same session.
	e.fake.ResetCalls()
	again := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	assert.Equal(t, first, again)
	assert.Equal(t, 0, e.calls("POST /v1/customers"), "the stored customer is used")
	assert.Equal(t, []string{first.ID}, e.fake.SessionsOf(customer))

	// Later, a repeat while that session is open reuses it; once it is
	// paid or expired, a repeat creates a new session for the same customer.
	e.fake.Advance(5 * time.Minute)
	e.fake.ResetCalls()
	assert.Equal(t, first, e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"}))
	assert.Equal(t, 0, e.calls("POST /v1/checkout/sessions"))
	_, err := e.fake.Pay(first.ID, billingtest.CardDeclined) // tried, still open
	require.Error(t, err)
	e.fake.Advance(25 * time.Hour) // it expires
	later := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	assert.NotEqual(t, first.ID, later.ID)
	assert.Equal(t, 0, e.calls("POST /v1/customers"), "the stored customer is used")
	assert.Equal(t, 1, e.calls("POST /v1/checkout/sessions"))
	assert.Equal(t, []string{first.ID, later.ID}, e.fake.SessionsOf(customer))
	assert.Equal(t, customer, e.customerOf(t, "u1"))

	// Another price at once: new session, same customer.
	e.fake.ResetCalls()
	pack := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pack"})
	assert.Equal(t, 0, e.calls("POST /v1/customers"))
	s := e.fake.CheckoutSession(pack.ID)
	require.NotNil(t, s)
	assert.Equal(t, customer, s.Customer.ID)

	// Another user gets another customer.
	e.checkout(t, "u2", billing.CheckoutOptions{PriceID: "price_pro"})
	assert.NotEqual(t, customer, e.customerOf(t, "u2"))
}

func TestCheckoutPaymentMode(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pack", Quantity: 3})
	s := e.fake.CheckoutSession(cs.ID)
	require.NotNil(t, s)
	assert.Equal(t, stripe.CheckoutSessionModePayment, s.Mode)
	assert.Equal(t, "u1", s.ClientReferenceID)
	assert.Equal(t, e.customerOf(t, "u1"), s.Customer.ID)
	assert.Equal(t, map[string]string{"billing_user_id": "u1", "billing_price_id": "price_pack", "billing_quantity": "3"}, s.Metadata)
	assert.Equal(t, int64(1500), s.AmountTotal, "three units of price_pack")

	posts := e.rec.requests(http.MethodPost, "/v1/checkout/sessions")
	require.Len(t, posts, 1)
	assert.Equal(t, "payment", posts[0].Form.Get("mode"))
	assert.Equal(t, "3", posts[0].Form.Get("line_items[0][quantity]"))
	for k := range posts[0].Form {
		assert.False(t, strings.HasPrefix(k, "subscription_data"), "payment mode sent %s", k)
	}
}

// staleFactsStore hides the user's customer from Facts, as a read that
// raced another request's link would.
type staleFactsStore struct{ billing.Store }

func (s staleFactsStore) Facts(ctx context.Context, userID string) (billing.Facts, error) {
	f, err := s.Store.Facts(ctx, userID)
	f.CustomerID = ""
	return f, err
}

func TestCheckoutUsesCustomerLinkedMeanwhile(t *testing.T) {
	t.Parallel()
	// The user's name changes between two checkouts whose reads both saw
	// no customer: the second makes another customer, cannot link it, and
	// uses the one linked first.
	var n sync.Mutex
	calls := 0
	renamed := billing.UserResolverFunc(func(ctx context.Context, id string) (billing.User, error) {
		n.Lock()
		defer n.Unlock()
		calls++
		return billing.User{ID: id, Email: id + "@example.com", Name: "Name " + strings.Repeat("I", calls)}, nil
	})
	inner := memstore.New()
	e := newCoEnvWith(t, staleFactsStore{inner}, renamed)
	first := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	customer := e.customerOf(t, "u1")

	second := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pack"})
	made := e.rec.createdIDs(t, http.MethodPost, "/v1/customers")
	require.Len(t, made, 2, "the stale read made a second customer")
	assert.Equal(t, customer, made[0])
	assert.Equal(t, customer, e.customerOf(t, "u1"), "the first link stays")
	assert.Equal(t, customer, e.fake.CheckoutSession(second.ID).Customer.ID, "the session is for the linked customer")
	assert.Equal(t, []string{first.ID, second.ID}, e.fake.SessionsOf(customer))
	assert.Empty(t, e.fake.SessionsOf(made[1]))
	assert.Contains(t, e.logs.String(), "user already linked to another customer")
}

func TestCheckoutRejectsBadInputWithoutCallingStripe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		user string
		opts billing.CheckoutOptions
		is   error  // errors.Is, when set
		want string // in the message
	}{
		{"trial on a one-time price", "u1", billing.CheckoutOptions{PriceID: "price_pack", TrialDays: 7}, billing.ErrInvalidArgument, "recurring"},
		{"unknown price", "u1", billing.CheckoutOptions{PriceID: "price_nope"}, billing.ErrUnknownPrice, "price_nope"},
		{"empty price", "u1", billing.CheckoutOptions{}, billing.ErrUnknownPrice, ""},
		{"empty user", "", billing.CheckoutOptions{PriceID: "price_pro"}, billing.ErrInvalidArgument, "empty user ID"},
		{"negative quantity", "u1", billing.CheckoutOptions{PriceID: "price_pack", Quantity: -1}, billing.ErrInvalidArgument, "negative"},
		{"negative trial", "u1", billing.CheckoutOptions{PriceID: "price_pro", TrialDays: -3}, billing.ErrInvalidArgument, "negative"},
		{"success URL without placeholder", "u1", billing.CheckoutOptions{PriceID: "price_pro", SuccessURL: "https://app.example/thanks"}, billing.ErrInvalidArgument, "{CHECKOUT_SESSION_ID}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCoEnv(t)
			cs, err := e.b.Checkout(context.Background(), tt.user, tt.opts)
			require.Error(t, err)
			assert.Equal(t, billing.CheckoutSession{}, cs)
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
			assert.Contains(t, err.Error(), tt.want)
			assert.Equal(t, 0, e.fake.TotalCalls(), "no Stripe call")
			_, err = e.store.CustomerID(context.Background(), "u1")
			assert.ErrorIs(t, err, billing.ErrNotFound, "nothing linked")
		})
	}
}

func TestCheckoutUnknownUser(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	_, err := e.b.Checkout(context.Background(), "ghost7", billing.CheckoutOptions{PriceID: "price_pro"})
	require.Error(t, err)
	assert.ErrorIs(t, err, billing.ErrNotFound)
	assert.Contains(t, err.Error(), "ghost7")
	assert.Equal(t, 0, e.fake.TotalCalls(), "no customer is created for an unknown user")
	_, err = e.store.CustomerID(context.Background(), "ghost7")
	assert.ErrorIs(t, err, billing.ErrNotFound, "nothing linked")
	f := facts(t, e.store, "ghost7")
	assert.Empty(t, f.CustomerID)
}

func TestCheckoutAlreadySubscribed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	subscribe := map[string]func(t *testing.T, e *coEnv, sessionID string){
		"after webhooks": func(t *testing.T, e *coEnv, id string) {
			e.deliver(t, e.complete(t, id, billingtest.CardOK)...)
		},
		"after SyncCheckout": func(t *testing.T, e *coEnv, id string) {
			e.complete(t, id, billingtest.CardOK)
			_, m, err := e.b.SyncCheckout(ctx, "u1", id)
			require.NoError(t, err)
			require.Equal(t, billing.StatusActive, m.Status)
		},
		"trialing, after SyncCheckout": func(t *testing.T, e *coEnv, id string) {
			e.complete(t, id, billingtest.CardOK)
			_, m, err := e.b.SyncCheckout(ctx, "u1", id)
			require.NoError(t, err)
			require.Equal(t, billing.StatusTrialing, m.Status)
		},
	}
	for name, do := range subscribe {
		t.Run(name, func(t *testing.T) {
			e := newCoEnv(t)
			opts := billing.CheckoutOptions{PriceID: "price_pro"}
			if strings.HasPrefix(name, "trialing") {
				opts.TrialDays = 7
			}
			first := e.checkout(t, "u1", opts)
			do(t, e, first.ID)
			customer := e.customerOf(t, "u1")

			e.fake.ResetCalls()
			for _, price := range []string{"price_pro", "price_basic"} {
				cs, err := e.b.Checkout(ctx, "u1", billing.CheckoutOptions{PriceID: price})
				assert.ErrorIs(t, err, billing.ErrAlreadySubscribed, price)
				assert.Equal(t, billing.CheckoutSession{}, cs)
			}
			assert.Equal(t, 0, e.fake.TotalCalls(), "refused before any Stripe call")

			// Deliberately a second subscription: a new, open session.
			other := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic", AllowAnotherSubscription: true})
			assert.NotEqual(t, first.ID, other.ID)
			s := e.fake.CheckoutSession(other.ID)
			require.NotNil(t, s)
			assert.Equal(t, stripe.CheckoutSessionStatusOpen, s.Status)
			assert.Equal(t, stripe.CheckoutSessionModeSubscription, s.Mode)

			// A one-time purchase is no subscription.
			pack := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pack"})
			assert.Equal(t, stripe.CheckoutSessionModePayment, e.fake.CheckoutSession(pack.ID).Mode)
			assert.Equal(t, 0, e.calls("POST /v1/customers"))
			assert.Equal(t, []string{first.ID, other.ID, pack.ID}, e.fake.SessionsOf(customer))

			// Another user is not affected.
			e.checkout(t, "u2", billing.CheckoutOptions{PriceID: "price_pro"})
		})
	}

	t.Run("open or canceled subscriptions do not block", func(t *testing.T) {
		e := newCoEnv(t)
		// An open, unpaid session is no subscription yet.
		other := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_basic"})
		first := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
		assert.Equal(t, stripe.CheckoutSessionStatusExpired, e.fake.CheckoutSession(other.ID).Status,
			"the other open session is expired")

		// A canceled one is over.
		e.deliver(t, e.complete(t, first.ID, billingtest.CardOK)...)
		_, err := e.b.Checkout(ctx, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
		require.ErrorIs(t, err, billing.ErrAlreadySubscribed)
		e.fake.Advance(time.Hour)
		evs, err := e.fake.CancelNow(e.subscriptionOf(t, first.ID))
		require.NoError(t, err)
		e.deliver(t, evs...)
		m, err := e.b.Membership(ctx, "u1")
		require.NoError(t, err)
		require.Equal(t, billing.StatusCanceled, m.Status)
		again := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
		assert.NotEqual(t, first.ID, again.ID)
	})
}

func TestCheckoutStripeFailure(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	e.fake.SetFail("POST /v1/checkout/sessions", 500, 1)
	cs, err := e.b.Checkout(ctx, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	require.Error(t, err)
	assert.Equal(t, billing.CheckoutSession{}, cs)
	var be *billing.StripeError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "create checkout session", be.Op)
	assert.Equal(t, 500, be.HTTPStatus, "billing's own fields")
	assert.Equal(t, "api_error", be.Type)
	assert.True(t, strings.HasPrefix(be.RequestID, "req_"), be.RequestID)
	assert.NotEmpty(t, be.Message)
	assert.Contains(t, be.Error(), be.RequestID)
	var se *stripe.Error
	require.ErrorAs(t, err, &se, "Unwrap still reaches stripe-go's error")
	assert.Equal(t, 500, se.HTTPStatusCode)
	assert.Contains(t, err.Error(), "create checkout session")
	assert.NotContains(t, err.Error(), coSecretKey)
	assert.NotContains(t, err.Error(), strings.TrimPrefix(coSecretKey, "sk_test_"))
	assert.Equal(t, 1, e.calls("POST /v1/checkout/sessions"), "a 500 to a create is stored under its key: not retried")

	// The customer was made and linked before the failure; the retry uses it.
	customer := e.customerOf(t, "u1")
	assert.Empty(t, e.fake.SessionsOf(customer))
	e.fake.ResetCalls()
	cs = e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	assert.Equal(t, 0, e.calls("POST /v1/customers"))
	assert.Equal(t, []string{cs.ID}, e.fake.SessionsOf(customer))

	t.Run("customer create fails", func(t *testing.T) {
		e := newCoEnv(t)
		e.fake.SetFail("POST /v1/customers", 502, 1)
		_, err := e.b.Checkout(ctx, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
		var be *billing.StripeError
		require.ErrorAs(t, err, &be)
		assert.Equal(t, "create customer", be.Op)
		assert.NotContains(t, err.Error(), coSecretKey)
		_, err = e.store.CustomerID(ctx, "u1")
		assert.ErrorIs(t, err, billing.ErrNotFound, "nothing linked")
		assert.Equal(t, 0, e.calls("POST /v1/checkout/sessions"))
		e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
		e.customerOf(t, "u1")
	})

	t.Run("unreachable Stripe", func(t *testing.T) {
		e := newCoEnv(t, func(c *billing.Config) { c.StripeURL = "http://127.0.0.1:1" })
		_, err := e.b.Checkout(ctx, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
		var be *billing.StripeError
		require.ErrorAs(t, err, &be)
		assert.Zero(t, be.HTTPStatus, "a network failure")
		assert.NotContains(t, err.Error(), coSecretKey)
	})
}

func TestCheckoutRetriesConflictsAndRateLimits(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		route  string
		status int
	}{
		{"POST /v1/checkout/sessions", 409},
		{"POST /v1/checkout/sessions", 429},
		{"POST /v1/customers", 409},
	} {
		t.Run(tt.route+" "+http.StatusText(tt.status), func(t *testing.T) {
			e := newCoEnv(t)
			e.fake.SetFail(tt.route, tt.status, 1)
			cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
			assert.Equal(t, 2, e.calls(tt.route), "one failure, one retry")
			customer := e.customerOf(t, "u1")
			assert.Equal(t, []string{cs.ID}, e.fake.SessionsOf(customer))
			assert.Len(t, e.rec.createdIDs(t, http.MethodPost, "/v1/customers"), 1)
			// The retry carries the same key.
			var keys []string
			for _, r := range e.rec.requests(http.MethodPost, strings.TrimPrefix(tt.route, "POST ")) {
				keys = append(keys, r.Header.Get("Idempotency-Key"))
			}
			require.Len(t, keys, 2)
			assert.Equal(t, keys[0], keys[1])
		})
	}

	t.Run("gives up after repeated conflicts", func(t *testing.T) {
		e := newCoEnv(t)
		e.fake.SetFail("POST /v1/checkout/sessions", 409, 100)
		_, err := e.b.Checkout(context.Background(), "u1", billing.CheckoutOptions{PriceID: "price_pro"})
		var se *stripe.Error
		require.ErrorAs(t, err, &se)
		assert.Equal(t, 409, se.HTTPStatusCode)
		assert.Equal(t, 1+billing.DefaultMaxRetries, e.calls("POST /v1/checkout/sessions"))
	})

	t.Run("a canceled context stops the retries", func(t *testing.T) {
		e := newCoEnv(t)
		e.fake.SetFail("POST /v1/checkout/sessions", 409, 100)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// Canceled while waiting to retry the first conflict.
		e.rec.after = func(method, p string, status int) {
			if p == "/v1/checkout/sessions" && status == http.StatusConflict {
				cancel()
			}
		}
		_, err := e.b.Checkout(ctx, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
		require.Error(t, err)
		assert.ErrorIs(t, err, context.Canceled)
		var se *stripe.Error
		require.ErrorAs(t, err, &se, "the conflict is reported with the cancellation")
		assert.Equal(t, http.StatusConflict, se.HTTPStatusCode)
		assert.Len(t, e.rec.requests(http.MethodPost, "/v1/checkout/sessions"), 1, "no request after the cancellation")
	})
}

func TestCheckoutStatus(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	e.checkout(t, "u2", billing.CheckoutOptions{PriceID: "price_pro"})

	res, err := e.b.CheckoutStatus(ctx, "u1", cs.ID)
	require.NoError(t, err)
	assert.Equal(t, billing.CheckoutResult{ID: cs.ID, Status: billing.SessionOpen,
		PaymentStatus: billing.PaymentUnpaid, Mode: billing.ModeSubscription}, res)
	assert.False(t, res.Settled())

	e.complete(t, cs.ID, billingtest.CardOK)
	res, err = e.b.CheckoutStatus(ctx, "u1", cs.ID)
	require.NoError(t, err)
	assert.Equal(t, billing.SessionComplete, res.Status)
	assert.Equal(t, billing.PaymentPaid, res.PaymentStatus)
	assert.Equal(t, e.subscriptionOf(t, cs.ID), res.SubscriptionID)
	assert.True(t, res.Settled())
	f := facts(t, e.store, "u1")
	assert.Empty(t, f.Subscriptions, "CheckoutStatus writes nothing")

	// Not the owner, not a session, or no such session: all look the same.
	for _, tt := range []struct {
		name, user, id string
		stripeCall     bool
		invalid        bool // ErrInvalidArgument too
	}{
		{"another user's session", "u2", cs.ID, true, false},
		{"a user without a customer", "u3", cs.ID, false, false},
		{"unknown session", "u1", "cs_test_doesnotexist", true, false},
		{"malformed ID", "u1", "x", false, true},
		{"empty ID", "u1", "", false, true},
		{"a subscription ID", "u1", "sub_123", false, true},
		{"a NUL byte", "u1", "cs_\x00", false, true},
		{"empty user", "", cs.ID, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.fake.ResetCalls()
			res, err := e.b.CheckoutStatus(ctx, tt.user, tt.id)
			assert.ErrorIs(t, err, billing.ErrSessionNotOwned)
			if tt.invalid {
				assert.ErrorIs(t, err, billing.ErrInvalidArgument)
			} else {
				assert.NotErrorIs(t, err, billing.ErrInvalidArgument)
			}
			assert.Equal(t, billing.CheckoutResult{}, res)
			if tt.stripeCall {
				assert.Equal(t, 1, e.fake.TotalCalls())
			} else {
				assert.Equal(t, 0, e.fake.TotalCalls(), "no Stripe call")
			}
		})
	}

	t.Run("a read's 5xx is retried", func(t *testing.T) {
		e.fake.SetFail("GET /v1/checkout/sessions/{id}", 500, billing.DefaultMaxRetries)
		e.fake.ResetCalls()
		before := e.fake.Now()
		_, err := e.b.CheckoutStatus(ctx, "u1", cs.ID)
		require.NoError(t, err)
		assert.Equal(t, 1+billing.DefaultMaxRetries, e.calls("GET /v1/checkout/sessions/{id}"))
		assert.GreaterOrEqual(t, e.fake.Now().Sub(before), 1500*time.Millisecond, "0.5 s then 1 s, waited on the clock")
	})

	t.Run("Stripe failure", func(t *testing.T) {
		e.fake.SetFail("GET /v1/checkout/sessions/{id}", 500, 1+billing.DefaultMaxRetries)
		_, err := e.b.CheckoutStatus(ctx, "u1", cs.ID)
		var be *billing.StripeError
		require.ErrorAs(t, err, &be)
		assert.NotErrorIs(t, err, billing.ErrSessionNotOwned)
		assert.NotContains(t, err.Error(), coSecretKey)
	})

	t.Run("expired", func(t *testing.T) {
		open := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pack"})
		_, err := testcatalog.Expire(e.fake, open.ID)
		require.NoError(t, err)
		res, err := e.b.CheckoutStatus(ctx, "u1", open.ID)
		require.NoError(t, err)
		assert.Equal(t, billing.SessionExpired, res.Status)
		assert.Equal(t, billing.ModePayment, res.Mode)
		assert.True(t, res.Settled())
	})
}

func TestSyncCheckoutSubscription(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	evs := e.complete(t, cs.ID, billingtest.CardOK) // no webhook delivered
	sub := e.subscriptionOf(t, cs.ID)

	before, err := e.b.Membership(ctx, "u1")
	require.NoError(t, err)
	require.Equal(t, billing.StatusNone, before.Status, "nothing known before the sync")

	res, m, err := e.b.SyncCheckout(ctx, "u1", cs.ID)
	require.NoError(t, err)
	assert.Equal(t, billing.CheckoutResult{ID: cs.ID, Status: billing.SessionComplete,
		PaymentStatus: billing.PaymentPaid, Mode: billing.ModeSubscription, SubscriptionID: sub}, res)
	assert.True(t, res.Settled())
	end := e.periodEnd(t, sub)
	want := billing.Membership{UserID: "u1", Status: billing.StatusActive, Tier: "pro", PriceID: "price_pro", SubscriptionID: sub,
		StripeStatus: "active", CurrentPeriodEnd: end, AccessUntil: end.Add(billing.DefaultAccessLeeway), HasCustomer: true}
	assert.Equal(t, want, m)
	assert.True(t, m.HasTier(e.fake.Now(), "pro"))
	got, err := e.b.Membership(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, want, got, "the sync is stored")
	f := facts(t, e.store, "u1")
	require.Len(t, f.Subscriptions, 1)
	assert.True(t, f.Subscriptions[0].Invoice.Paid, "the latest invoice is stored with the subscription")

	// Syncing again and the late webhooks change nothing.
	_, m, err = e.b.SyncCheckout(ctx, "u1", cs.ID)
	require.NoError(t, err)
	assert.Equal(t, want, m)
	e.deliver(t, evs...)
	got, err = e.b.Membership(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, want, got, "the late webhooks agree with the sync")
}

func TestSyncCheckoutTrial(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro", TrialDays: 14})
	e.complete(t, cs.ID, billingtest.CardOK)
	sub := e.subscriptionOf(t, cs.ID)
	res, m, err := e.b.SyncCheckout(ctx, "u1", cs.ID)
	require.NoError(t, err)
	assert.Equal(t, billing.PaymentNoPaymentRequired, res.PaymentStatus)
	assert.True(t, res.Settled())
	s := e.fake.Subscription(sub)
	require.NotNil(t, s)
	trialEnd := time.Unix(s.TrialEnd, 0).UTC()
	assert.Equal(t, billing.Membership{UserID: "u1", Status: billing.StatusTrialing, Tier: "pro", PriceID: "price_pro", SubscriptionID: sub,
		StripeStatus: "trialing", CurrentPeriodEnd: e.periodEnd(t, sub), TrialEnd: trialEnd,
		AccessUntil: trialEnd.Add(billing.DefaultAccessLeeway), HasCustomer: true}, m)
	assert.Equal(t, coStart.Add(14*24*time.Hour).Truncate(time.Hour), trialEnd.Truncate(time.Hour))
}

func TestSyncCheckoutOneTimeGrantsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	want := billing.Membership{UserID: "u1", Credits: 300, HasCustomer: true}
	orders := map[string]func(t *testing.T, e *coEnv, id string, evs []billingtest.Event){
		"sync twice": func(t *testing.T, e *coEnv, id string, evs []billingtest.Event) {
			for range 2 {
				res, m, err := e.b.SyncCheckout(ctx, "u1", id)
				require.NoError(t, err)
				assert.True(t, res.Settled())
				assert.Equal(t, billing.ModePayment, res.Mode)
				assert.Equal(t, want, m)
			}
		},
		"sync then webhook": func(t *testing.T, e *coEnv, id string, evs []billingtest.Event) {
			_, m, err := e.b.SyncCheckout(ctx, "u1", id)
			require.NoError(t, err)
			assert.Equal(t, want, m)
			assert.Equal(t, []string{`{"outcome":"applied"}`}, e.deliver(t, evs...))
			assert.Equal(t, []string{`{"outcome":"duplicate"}`}, e.deliver(t, evs...))
		},
		"webhook then sync": func(t *testing.T, e *coEnv, id string, evs []billingtest.Event) {
			e.deliver(t, evs...)
			_, m, err := e.b.SyncCheckout(ctx, "u1", id)
			require.NoError(t, err)
			assert.Equal(t, want, m)
		},
		"concurrently": func(t *testing.T, e *coEnv, id string, evs []billingtest.Event) {
			var wg sync.WaitGroup
			for range 3 {
				wg.Add(2)
				go func() {
					defer wg.Done()
					_, _, err := e.b.SyncCheckout(ctx, "u1", id)
					assert.NoError(t, err)
				}()
				go func() {
					defer wg.Done()
					for _, ev := range evs {
						code, body := e.post(ev)
						assert.Equal(t, http.StatusOK, code, body)
					}
				}()
			}
			wg.Wait()
		},
	}
	for name, do := range orders {
		t.Run(name, func(t *testing.T) {
			e := newCoEnv(t)
			cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pack", Quantity: 3})
			evs := only(e.complete(t, cs.ID, billingtest.CardOK), "checkout.session.completed")
			require.Len(t, evs, 1)
			do(t, e, cs.ID, evs)
			m, err := e.b.Membership(ctx, "u1")
			require.NoError(t, err)
			assert.Equal(t, want, m)
			f := facts(t, e.store, "u1")
			require.Len(t, f.Grants, 1, "granted once")
			g := f.Grants[0]
			assert.Equal(t, cs.ID, g.CheckoutSessionID)
			assert.Equal(t, "u1", g.UserID)
			assert.Equal(t, e.customerOf(t, "u1"), g.CustomerID)
			assert.Equal(t, "price_pack", g.PriceID)
			assert.Equal(t, int64(3), g.Quantity)
			assert.Equal(t, int64(300), g.Credits)
			assert.Equal(t, int64(1500), g.AmountTotal)
			assert.Equal(t, "usd", g.Currency)
		})
	}

	t.Run("a second purchase adds up", func(t *testing.T) {
		e := newCoEnv(t)
		a := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pack", Quantity: 3})
		e.complete(t, a.ID, billingtest.CardOK)
		_, _, err := e.b.SyncCheckout(ctx, "u1", a.ID)
		require.NoError(t, err)
		b := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pack"})
		require.NotEqual(t, a.ID, b.ID)
		e.complete(t, b.ID, billingtest.CardOK)
		_, m, err := e.b.SyncCheckout(ctx, "u1", b.ID)
		require.NoError(t, err)
		assert.Equal(t, int64(400), m.Credits)
	})

	t.Run("delayed payment grants nothing until paid", func(t *testing.T) {
		e := newCoEnv(t)
		cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pack", Quantity: 2})
		e.complete(t, cs.ID, billingtest.BankDebit)
		res, m, err := e.b.SyncCheckout(ctx, "u1", cs.ID)
		require.NoError(t, err)
		assert.Equal(t, billing.SessionComplete, res.Status)
		assert.Equal(t, billing.PaymentUnpaid, res.PaymentStatus)
		assert.False(t, res.Settled())
		assert.Equal(t, int64(0), m.Credits)
		assert.Empty(t, facts(t, e.store, "u1").Grants)

		evs, err := testcatalog.Settle(e.fake), error(nil)
		require.NoError(t, err)
		_, m, err = e.b.SyncCheckout(ctx, "u1", cs.ID)
		require.NoError(t, err)
		assert.Equal(t, int64(200), m.Credits)
		e.deliver(t, evs...)
		m, err = e.b.Membership(ctx, "u1")
		require.NoError(t, err)
		assert.Equal(t, int64(200), m.Credits)
	})
}

func TestSyncCheckoutOpenSession(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	for _, price := range []string{"price_pro", "price_pack"} {
		cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: price})
		res, m, err := e.b.SyncCheckout(ctx, "u1", cs.ID)
		require.NoError(t, err)
		assert.Equal(t, billing.SessionOpen, res.Status, price)
		assert.Equal(t, billing.PaymentUnpaid, res.PaymentStatus, price)
		assert.False(t, res.Settled(), price)
		assert.Equal(t, billing.Membership{UserID: "u1", HasCustomer: true}, m, price)
		assert.Equal(t, billing.StatusNone, m.Status)
	}
	f := facts(t, e.store, "u1")
	assert.Empty(t, f.Subscriptions)
	assert.Empty(t, f.Grants)
}

func TestSyncCheckoutNotOwned(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	sub := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	e.complete(t, sub.ID, billingtest.CardOK)
	pack := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pack", Quantity: 2})
	e.complete(t, pack.ID, billingtest.CardOK)
	e.checkout(t, "u2", billing.CheckoutOptions{PriceID: "price_basic"}) // u2 has a customer too

	for _, user := range []string{"u2", "u3", ""} {
		for _, id := range []string{sub.ID, pack.ID, "x", "cs_test_nope"} {
			res, m, err := e.b.SyncCheckout(ctx, user, id)
			assert.ErrorIs(t, err, billing.ErrSessionNotOwned, "user %q session %s", user, id)
			assert.Equal(t, billing.CheckoutResult{}, res)
			assert.Equal(t, billing.Membership{}, m)
		}
	}
	e.fake.ResetCalls()
	_, _, err := e.b.SyncCheckout(ctx, "u1", "x")
	assert.ErrorIs(t, err, billing.ErrSessionNotOwned)
	assert.ErrorIs(t, err, billing.ErrInvalidArgument)
	_, _, err = e.b.SyncCheckout(ctx, "", sub.ID)
	assert.ErrorIs(t, err, billing.ErrInvalidArgument)
	_, _, err = e.b.SyncCheckout(ctx, "u1", "")
	assert.ErrorIs(t, err, billing.ErrInvalidArgument)
	_, _, err = e.b.SyncCheckout(ctx, "u3", sub.ID)
	assert.ErrorIs(t, err, billing.ErrSessionNotOwned)
	assert.Equal(t, 0, e.fake.TotalCalls(), "no Stripe call for a malformed ID or a user without a customer")

	// Nothing was written for anyone.
	for _, user := range []string{"u1", "u2", "u3"} {
		f := facts(t, e.store, user)
		assert.Empty(t, f.Subscriptions, user)
		assert.Empty(t, f.Grants, user)
	}
	_, err = e.store.CustomerID(ctx, "u3")
	assert.ErrorIs(t, err, billing.ErrNotFound)

	// The owner can still sync both.
	_, m, err := e.b.SyncCheckout(ctx, "u1", sub.ID)
	require.NoError(t, err)
	assert.Equal(t, billing.StatusActive, m.Status)
	_, m, err = e.b.SyncCheckout(ctx, "u1", pack.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(200), m.Credits)
	assert.Equal(t, "pro", m.Tier)
}

func TestSyncCheckoutStripeFailure(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pack"})
	e.complete(t, cs.ID, billingtest.CardOK)
	e.fake.SetFail("GET /v1/checkout/sessions/{id}", 503, 1+billing.DefaultMaxRetries)
	_, _, err := e.b.SyncCheckout(ctx, "u1", cs.ID)
	var be *billing.StripeError
	require.ErrorAs(t, err, &be)
	assert.NotContains(t, err.Error(), coSecretKey)
	assert.Empty(t, facts(t, e.store, "u1").Grants)
	_, m, err := e.b.SyncCheckout(ctx, "u1", cs.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(100), m.Credits)
}

// portalSession reads the fake's portal session behind a portal URL.
func portalSession(t *testing.T, e *coEnv, portalURL string) map[string]any {
	t.Helper()
	require.True(t, strings.HasPrefix(portalURL, e.fake.URL()+"/portal/bps_"), portalURL)
	raw := e.fake.Object(path.Base(portalURL))
	require.NotNil(t, raw, "no portal session behind %s", portalURL)
	var obj map[string]any
	require.NoError(t, json.Unmarshal(raw, &obj))
	return obj
}

func TestPortalNoCustomer(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	u, err := e.b.Portal(ctx, "u1", billing.PortalOptions{})
	assert.ErrorIs(t, err, billing.ErrNoCustomer)
	assert.Contains(t, err.Error(), "u1")
	assert.Empty(t, u)
	u, err = e.b.Portal(ctx, "", billing.PortalOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "empty user ID")
	assert.Empty(t, u)
	assert.Equal(t, 0, e.fake.TotalCalls(), "no Stripe call")
}

func TestPortal(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	customer := e.customerOf(t, "u1")

	e.fake.ResetCalls()
	u, err := e.b.Portal(ctx, "u1", billing.PortalOptions{})
	require.NoError(t, err)
	obj := portalSession(t, e, u)
	assert.Equal(t, u, obj["url"])
	assert.Equal(t, customer, obj["customer"])
	assert.Equal(t, "https://app.example/account", obj["return_url"])
	assert.Equal(t, 1, e.calls("POST /v1/billing_portal/sessions"))
	assert.Equal(t, 1, e.fake.TotalCalls())
	posts := e.rec.requests(http.MethodPost, "/v1/billing_portal/sessions")
	require.Len(t, posts, 1)
	assert.False(t, posts[0].Form.Has("configuration"), "the account's default configuration")
	assert.NotEmpty(t, posts[0].Header.Get("Idempotency-Key"))

	u2, err := e.b.Portal(ctx, "u1", billing.PortalOptions{ReturnURL: "https://app.example/settings/billing", Configuration: "bpc_custom"})
	require.NoError(t, err)
	assert.NotEqual(t, u, u2)
	obj = portalSession(t, e, u2)
	assert.Equal(t, "https://app.example/settings/billing", obj["return_url"])
	posts = e.rec.requests(http.MethodPost, "/v1/billing_portal/sessions")
	require.Len(t, posts, 2)
	assert.Equal(t, "bpc_custom", posts[1].Form.Get("configuration"))
	assert.Equal(t, customer, posts[1].Form.Get("customer"))

	// Each user gets their own customer's portal.
	e.checkout(t, "u2", billing.CheckoutOptions{PriceID: "price_pro"})
	u3, err := e.b.Portal(ctx, "u2", billing.PortalOptions{})
	require.NoError(t, err)
	assert.Equal(t, e.customerOf(t, "u2"), portalSession(t, e, u3)["customer"])
}

func TestPortalReturnPath(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t, func(c *billing.Config) { c.SiteURL = "https://app.example/base/"; c.ReturnPath = "settings" })
	e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	u, err := e.b.Portal(context.Background(), "u1", billing.PortalOptions{})
	require.NoError(t, err)
	assert.Equal(t, "https://app.example/base/settings", portalSession(t, e, u)["return_url"])
}

func TestPortalStripeFailure(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	e.fake.SetFail("POST /v1/billing_portal/sessions", 500, 1)
	u, err := e.b.Portal(ctx, "u1", billing.PortalOptions{})
	assert.Empty(t, u)
	var be *billing.StripeError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "create billing portal session", be.Op)
	var se *stripe.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 500, se.HTTPStatusCode)
	assert.NotContains(t, err.Error(), coSecretKey)
	assert.False(t, errors.Is(err, billing.ErrNoCustomer))

	// A customer linked in the store that Stripe does not know.
	linked(t, e.store, "u9", "cus_unknownToStripe")
	_, err = e.b.Portal(ctx, "u9", billing.PortalOptions{})
	require.ErrorAs(t, err, &be)

	// Stripe's answer again: it works.
	u, err = e.b.Portal(ctx, "u1", billing.PortalOptions{})
	require.NoError(t, err)
	assert.Equal(t, "https://app.example/account", portalSession(t, e, u)["return_url"])

	t.Run("conflict is retried", func(t *testing.T) {
		e.fake.Advance(5 * time.Minute) // a new idempotency window
		e.fake.SetFail("POST /v1/billing_portal/sessions", 409, 1)
		e.fake.ResetCalls()
		u, err := e.b.Portal(ctx, "u1", billing.PortalOptions{})
		require.NoError(t, err)
		assert.NotEmpty(t, u)
		assert.Equal(t, 2, e.calls("POST /v1/billing_portal/sessions"))
	})
}

// TestCheckoutRepeatAfterCompletionGetsNewSession: a deliberate repeat
// purchase within the idempotency window must not get the completed
// session back: Stripe replays a key's first answer, so Checkout looks a
// replayed session up and makes a new one when it is finished.
func TestCheckoutRepeatAfterCompletionGetsNewSession(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	ctx := context.Background()
	for _, opts := range []billing.CheckoutOptions{
		{PriceID: "price_pack"},
		{PriceID: "price_pro", AllowAnotherSubscription: true},
	} {
		first := e.checkout(t, "u1", opts)
		e.complete(t, first.ID, billingtest.CardOK)
		_, _, err := e.b.SyncCheckout(ctx, "u1", first.ID)
		require.NoError(t, err)
		again := e.checkout(t, "u1", opts)
		assert.NotEqual(t, first.ID, again.ID, opts.PriceID)
		s := e.fake.CheckoutSession(again.ID)
		require.NotNil(t, s)
		assert.Equal(t, stripe.CheckoutSessionStatusOpen, s.Status, opts.PriceID)
		// A double click after the purchase still makes one new session.
		twice := e.checkout(t, "u1", opts)
		assert.Equal(t, again.ID, twice.ID, opts.PriceID)
	}
}
