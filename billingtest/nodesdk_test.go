package billingtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testenv"
)

// nodeSDK returns the node binary and the directory of the pinned Stripe
// Node SDK (testdata/node), or skips: without CI=true when either is
// missing, with how to get them; under CI=true it fails instead.
func nodeSDK(t *testing.T) (node, dir string) {
	t.Helper()
	return testenv.NodeSDK(t, filepath.Join("testdata", "node"))
}

// Stripe's official Node SDK (stripe@18.5.0, 2025-08-27.basil) against
// billingtest after a full lifecycle: it retrieves every object of every
// kind, pages every list, writes, gets Stripe's error classes, and
// verifies the signature of every delivered webhook.
func TestNodeSDK(t *testing.T) {
	node, dir := nodeSDK(t)
	srv := lifecycleStripe(t)
	sc := stripe.NewClient("sk_test_x", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL: stripe.String(srv.URL()), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}})))
	type payload struct {
		Body   string `json:"body"`
		Header string `json:"header"`
	}
	var (
		mu       sync.Mutex
		payloads []payload
	)
	ep := srv.AddEndpoint(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		payloads = append(payloads, payload{string(b), r.Header.Get("Stripe-Signature")})
		mu.Unlock()
	}), billingtest.EndpointOptions{})
	lifecycle(t, srv, sc)

	// A payment to refund, and a live subscription to update.
	c := newCustomer(t, sc)
	cs, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{Mode: stripe.String("payment"),
		Customer: stripe.String(c.ID), SuccessURL: stripe.String("https://app.test/ok"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_once"), Quantity: stripe.Int64(1)}}})
	require.NoError(t, err)
	_, err = srv.Pay(cs.ID, billingtest.CardOK)
	require.NoError(t, err)
	require.NoError(t, srv.Flush(ctx))
	var live string
	for s, err := range sc.V1Subscriptions.List(ctx, &stripe.SubscriptionListParams{Status: stripe.String("active")}) {
		require.NoError(t, err)
		live = s.ID
	}
	require.NotEmpty(t, live)

	// Every object the events name, up to four of each kind (not an
	// upcoming invoice's preview ID, which Stripe does not serve either),
	// and the last events (older ones are past Stripe's 30 days).
	ids := map[string][]string{}
	seen := map[string]bool{}
	evs := srv.Events()
	for i, ev := range evs {
		e := decode(t, ev)
		kind, _ := e.Data.Object["object"].(string)
		id, _ := e.Data.Object["id"].(string)
		if _, ok := nodeRetrievable[kind]; ok && !seen[id] && len(ids[kind]) < 4 && !strings.HasPrefix(id, "upcoming_") {
			seen[id] = true
			ids[kind] = append(ids[kind], id)
		}
		if i >= len(evs)-4 {
			ids["event"] = append(ids["event"], ev.ID)
		}
	}
	for kind := range nodeRetrievable {
		assert.NotEmpty(t, ids[kind], "the lifecycle made no %s", kind)
	}
	counts := map[string]int{}
	for range sc.V1Customers.List(ctx, nil) {
		counts["customers"]++
	}
	for range sc.V1Subscriptions.List(ctx, &stripe.SubscriptionListParams{Status: stripe.String("all")}) {
		counts["subscriptions"]++
	}
	for range sc.V1Invoices.List(ctx, nil) {
		counts["invoices"]++
	}
	for range sc.V1Refunds.List(ctx, nil) {
		counts["refunds"]++
	}
	for range sc.V1Events.List(ctx, nil) {
		counts["events"]++
	}

	mu.Lock()
	input := map[string]any{"url": srv.URL(), "key": "sk_test_node", "secret": ep.Secret, "ids": ids,
		"counts": counts, "payloads": slices.Clone(payloads), "price": "price_month", "liveSubscription": live,
		"refundable": srv.CheckoutSession(cs.ID).PaymentIntent.ID}
	n := len(payloads)
	mu.Unlock()
	out := testenv.RunNode(t, ctx, node, dir, "sdk.mjs", input)
	var res struct {
		Calls    int
		Failures []string
	}
	require.NoError(t, json.Unmarshal(out, &res), "%s", out)
	t.Logf("Stripe's Node SDK made %d calls and checks (%d webhook signatures); %d failed", res.Calls, n, len(res.Failures))
	assert.Empty(t, res.Failures, "%s", strings.Join(res.Failures, "\n"))
	assert.GreaterOrEqual(t, res.Calls, 50+n)
}

// nodeRetrievable are the kinds of object sdk.mjs retrieves.
var nodeRetrievable = map[string]struct{}{"customer": {}, "product": {}, "price": {}, "checkout.session": {},
	"subscription": {}, "invoice": {}, "payment_intent": {}, "charge": {}, "payment_method": {}, "refund": {},
	"dispute": {}, "subscription_schedule": {}}
