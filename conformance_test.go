package billing_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/internal/testenv"
	"github.com/gobilling/billing/memstore"
)

// smHow says how to provide stripe-mock to TestStripeMockConformance.
const smHow = "start stripe-mock (go install github.com/stripe/stripe-mock@v0.195.0; stripe-mock -http-port 12111 -https-port 12112) and set BILLING_TEST_STRIPE_MOCK=http://localhost:12111"

// smWebhookSecret signs the events TestStripeMockConformance delivers.
const smWebhookSecret = "whsec_conformance"

// smCall is one request billing made to stripe-mock.
type smCall struct {
	Method, Path string
	Params       url.Values // the query of a GET, the form of a POST
	Status       int        // 0 when the request failed before an answer
	Body         string     // the response body of a 4xx
	Err          error      // a transport error
}

func (c smCall) String() string {
	return fmt.Sprintf("%s %s %s -> %d", c.Method, c.Path, c.Params.Encode(), c.Status)
}

// smRecorder is a RoundTripper that records every request and its answer.
type smRecorder struct {
	next  http.RoundTripper
	mu    sync.Mutex
	calls []smCall
}

func (r *smRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	c := smCall{Method: req.Method, Path: req.URL.Path}
	c.Params, _ = url.ParseQuery(req.URL.RawQuery)
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		form, _ := url.ParseQuery(string(body))
		for k, vs := range form {
			c.Params[k] = append(c.Params[k], vs...)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
	}
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		c.Err = err
	} else {
		c.Status = resp.StatusCode
		if resp.StatusCode >= 400 && resp.StatusCode <= 499 {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr != nil {
				return nil, rerr
			}
			c.Body = string(body)
			resp.Body = io.NopCloser(bytes.NewReader(body))
		}
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	return resp, err
}

func (r *smRecorder) recorded() []smCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// smExpand returns a request's expand[] values in order.
func smExpand(p url.Values) []string {
	var keys []string
	for k := range p {
		if k == "expand[]" || strings.HasPrefix(k, "expand[") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		out = append(out, p[k]...)
	}
	return out
}

// smWant is a request billing must have made: every listed parameter
// present (with that value unless it is ""), and when expand is not nil,
// exactly those expansions.
type smWant struct {
	name         string
	method, path string // path is a prefix
	params       map[string]string
	expand       []string
}

func (w smWant) matches(c smCall) bool {
	if c.Method != w.method || !strings.HasPrefix(c.Path, w.path) {
		return false
	}
	for k, v := range w.params {
		if !c.Params.Has(k) || (v != "" && c.Params.Get(k) != v) {
			return false
		}
	}
	return w.expand == nil || slices.Equal(smExpand(c.Params), w.expand)
}

// smEvent builds a basil event around an object.
func smEvent(id, typ string, created int64, object string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"object":"event","api_version":%q,"created":%d,"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":%q,"data":{"object":%s}}`,
		id, stripe.APIVersion, created, typ, object)
}

// smSubscription is a basil subscription (its period on the item).
func smSubscription(id, customer, status, price string, periodEnd int64) string {
	return fmt.Sprintf(`{"id":%q,"object":"subscription","customer":%q,"status":%q,"cancel_at_period_end":false,"latest_invoice":"in_conformance","livemode":false,"items":{"object":"list","has_more":false,"data":[{"id":"si_conformance","object":"subscription_item","quantity":1,"current_period_start":%d,"current_period_end":%d,"price":{"id":%q,"object":"price"}}]}}`,
		id, customer, status, periodEnd-30*86400, periodEnd, price)
}

// TestStripeMockConformance makes every request billing makes to Stripe
// against stripe-mock, which validates each one against Stripe's OpenAPI
// spec, and fails on any request it rejects (4xx). stripe-mock answers
// with fixtures, so nothing here checks state: only that the requests
// were made and accepted.
func TestStripeMockConformance(t *testing.T) {
	t.Parallel()
	mockURL := testenv.Service(t, "BILLING_TEST_STRIPE_MOCK", smHow)
	ctx := context.Background()
	rec := &smRecorder{next: http.DefaultTransport.(*http.Transport).Clone()}
	store := memstore.New()
	resolver := billing.UserResolverFunc(func(ctx context.Context, id string) (billing.User, error) {
		return billing.User{ID: id, Email: id + "@example.com", Name: "User " + id}, nil
	})
	b, err := billing.New(billing.Config{
		SecretKey:      "sk_test_123",
		WebhookSecrets: []string{smWebhookSecret},
		SiteURL:        "https://app.example",
		Plans: []billing.Plan{
			{PriceID: "price_123", Tier: "pro"},
			{PriceID: "price_456", Kind: billing.OneTime, Credits: 10},
		},
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		StripeURL:  mockURL,
		HTTPClient: &http.Client{Transport: rec, Timeout: 30 * time.Second},
		MaxRetries: -1,
	}, store, resolver)
	if err != nil {
		t.Fatal(err)
	}
	// u1 has a customer; u2 has none, so its first Checkout creates one.
	const customer = "cus_conformance"
	err = store.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
		return tx.LinkCustomer(ctx, "u1", customer)
	})
	if err != nil {
		t.Fatal(err)
	}

	// Errors are reported and the test goes on, so that one run lists
	// every rejected request.
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	// stripe-mock's fixture sessions belong to no user of ours.
	checkOwned := func(what string, err error) {
		t.Helper()
		if err != nil && !errors.Is(err, billing.ErrSessionNotOwned) {
			t.Errorf("%s: %v", what, err)
		}
	}

	_, err = b.Checkout(ctx, "u2", billing.CheckoutOptions{PriceID: "price_123"})
	check("Checkout subscription (new customer)", err)
	_, err = b.Checkout(ctx, "u1", billing.CheckoutOptions{PriceID: "price_123", TrialDays: 14})
	check("Checkout subscription with trial", err)
	_, err = b.Checkout(ctx, "u1", billing.CheckoutOptions{PriceID: "price_456", Quantity: 2, AllowPromotionCodes: true})
	check("Checkout payment", err)

	_, err = b.Portal(ctx, "u1", billing.PortalOptions{})
	check("Portal", err)
	_, err = b.Portal(ctx, "u1", billing.PortalOptions{Configuration: "bpc_123", ReturnURL: "https://app.example/settings"})
	check("Portal with configuration", err)

	_, err = b.CheckoutStatus(ctx, "u1", "cs_test_123")
	checkOwned("CheckoutStatus", err)
	_, _, err = b.SyncCheckout(ctx, "u1", "cs_test_123")
	checkOwned("SyncCheckout", err)

	// Webhooks: a paid one-time session without billing's metadata (a
	// Payment Link, say) has its line items fetched; two live states of
	// a subscription in the same second tie, and the subscription is
	// fetched with its latest invoice.
	h := b.WebhookHandler()
	deliver := func(payload []byte) {
		t.Helper()
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: smWebhookSecret, Timestamp: time.Now()})
		r := httptest.NewRequest(http.MethodPost, "/stripe/webhook", bytes.NewReader(payload))
		r.Header.Set("Stripe-Signature", sp.Header)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		// The fixtures' customers are linked to nobody, so a fetched
		// object may park its event: any answer but a 500 will do.
		if w.Code != http.StatusOK {
			t.Errorf("webhook answered %d: %s", w.Code, w.Body)
		}
	}
	now := time.Now().Unix()
	deliver(smEvent("evt_conformance_1", "checkout.session.completed", now,
		fmt.Sprintf(`{"id":"cs_test_link","object":"checkout.session","customer":%q,"mode":"payment","status":"complete","payment_status":"paid","amount_total":1000,"currency":"usd","created":%d,"metadata":{}}`, customer, now)))
	deliver(smEvent("evt_conformance_2", "customer.subscription.updated", now, smSubscription("sub_conformance", customer, "active", "price_123", now+30*86400)))
	deliver(smEvent("evt_conformance_3", "customer.subscription.updated", now, smSubscription("sub_conformance", customer, "trialing", "price_123", now+30*86400)))

	// Recovery: Stripe's events since a time, and one user's
	// subscriptions. stripe-mock's fixtures are nobody's: a parked event
	// or an unknown-customer error is fine, a 4xx is not.
	_, err = b.CatchUp(ctx, time.Now().Add(-24*time.Hour))
	if err != nil {
		t.Logf("CatchUp on fixtures: %v", err)
	}
	_, err = b.Sync(ctx, "u1")
	if err != nil {
		t.Logf("Sync on fixtures: %v", err)
	}
	_, err = b.SyncAll(ctx, billing.SyncAllOptions{})
	if err != nil {
		t.Logf("SyncAll on fixtures: %v", err)
	}

	wants := []smWant{
		{name: "events list for CatchUp", method: "GET", path: "/v1/events",
			params: map[string]string{"created[gte]": "", "types[0]": "customer.subscription.created", "limit": "100"}},
		{name: "subscriptions list for Sync", method: "GET", path: "/v1/subscriptions",
			params: map[string]string{"customer": customer, "status": "all", "limit": "100"}},
		{name: "subscriptions list for SyncAll", method: "GET", path: "/v1/subscriptions",
			params: map[string]string{"status": "all", "limit": "100"}, expand: []string{"data.latest_invoice"}},
		{name: "customer create", method: "POST", path: "/v1/customers",
			params: map[string]string{"email": "u2@example.com", "name": "User u2", "metadata[billing_user_id]": "u2"}},
		{name: "checkout session create, subscription mode", method: "POST", path: "/v1/checkout/sessions",
			params: map[string]string{"mode": "subscription", "customer": "", "client_reference_id": "u2", "success_url": "", "cancel_url": "",
				"line_items[0][price]": "price_123", "line_items[0][quantity]": "1", "metadata[billing_user_id]": "u2",
				"subscription_data[metadata][billing_user_id]": "u2"}},
		{name: "checkout session create, subscription mode with trial", method: "POST", path: "/v1/checkout/sessions",
			params: map[string]string{"mode": "subscription", "customer": customer, "subscription_data[trial_period_days]": "14"}},
		{name: "checkout session create, payment mode", method: "POST", path: "/v1/checkout/sessions",
			params: map[string]string{"mode": "payment", "customer": customer, "line_items[0][price]": "price_456",
				"line_items[0][quantity]": "2", "allow_promotion_codes": "true", "metadata[billing_quantity]": "2"}},
		{name: "billing portal session create", method: "POST", path: "/v1/billing_portal/sessions",
			params: map[string]string{"customer": customer, "return_url": "https://app.example/account"}},
		{name: "billing portal session create with configuration", method: "POST", path: "/v1/billing_portal/sessions",
			params: map[string]string{"customer": customer, "return_url": "https://app.example/settings", "configuration": "bpc_123"}},
		{name: "checkout session retrieve", method: "GET", path: "/v1/checkout/sessions/cs_test_123", expand: []string{}},
		{name: "checkout session retrieve, expanded for SyncCheckout", method: "GET", path: "/v1/checkout/sessions/cs_test_123",
			expand: []string{"subscription", "subscription.latest_invoice", "line_items"}},
		{name: "checkout session retrieve with line items", method: "GET", path: "/v1/checkout/sessions/cs_test_link",
			expand: []string{"line_items"}},
		{name: "subscription retrieve with latest invoice", method: "GET", path: "/v1/subscriptions/sub_conformance",
			expand: []string{"latest_invoice"}},
	}
	calls := rec.recorded()
	for _, c := range calls {
		t.Log(c)
	}
	for _, w := range wants {
		if !slices.ContainsFunc(calls, w.matches) {
			t.Errorf("no request matched %q (%s %s)", w.name, w.method, w.path)
		}
	}
	for _, c := range calls {
		switch {
		case c.Err != nil:
			t.Errorf("%s %s failed: %v", c.Method, c.Path, c.Err)
		case c.Status >= 400 && c.Status <= 499:
			t.Errorf("stripe-mock rejected %s %s (%s) with %d: %s", c.Method, c.Path, c.Params.Encode(), c.Status, c.Body)
		}
	}
}
