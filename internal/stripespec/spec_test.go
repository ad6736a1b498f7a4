package stripespec_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing/internal/stripespec"
)

// load returns the spec and stripe-mock's fixtures (Stripe's own sample
// objects), skipping on a machine without the module (failing under CI).
func load(t *testing.T) (*stripespec.Spec, map[string]json.RawMessage) {
	t.Helper()
	spec := stripespec.ForTest(t)
	path, err := stripespec.Locate()
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(path), "fixtures3.json"))
	require.NoError(t, err)
	var fx struct {
		Resources map[string]json.RawMessage `json:"resources"`
	}
	require.NoError(t, json.Unmarshal(raw, &fx))
	for _, st := range stale {
		fx.Resources[st[0]] = drop(t, fx.Resources[st[0]], st[1])
	}
	return spec, fx.Resources
}

// stale are the fields stripe-mock's fixtures still carry that its own
// schema no longer has (from before basil), by fixture: removed before use.
var stale = [][2]string{
	{"subscription", "items.data.plan"}, {"subscription", "items.data.price.recurring.trial_period_days"},
	{"invoice", "subscription"}, {"price", "recurring.trial_period_days"}, {"product", "type"},
	{"payment_intent", "source"}, {"charge", "source"},
}

// drop removes a dotted field from raw, through lists' data.
func drop(t *testing.T, raw json.RawMessage, field string) json.RawMessage {
	t.Helper()
	var o map[string]any
	require.NoError(t, json.Unmarshal(raw, &o))
	var walk func(v any, path []string)
	walk = func(v any, path []string) {
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				walk(e, path)
			}
		case map[string]any:
			if len(path) == 1 {
				delete(v, path[0])
				return
			}
			walk(v[path[0]], path[1:])
		}
	}
	walk(o, strings.Split(field, "."))
	out, err := json.Marshal(o)
	require.NoError(t, err)
	return out
}

func kinds(ps []stripespec.Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Kind+" "+p.Path)
	}
	sort.Strings(out)
	return out
}

// Stripe's own fixtures pass: the checks find nothing where there is
// nothing to find.
func TestStripesFixturesPass(t *testing.T) {
	spec, fx := load(t)
	for _, kind := range []string{"subscription", "invoice", "checkout.session", "customer", "price",
		"product", "invoice_payment", "payment_intent", "charge", "webhook_endpoint"} {
		assert.Empty(t, spec.Object(fx[kind]), kind)
	}
	// A list response, through its operation.
	list := map[string]any{"object": "list", "url": "/v1/subscriptions", "has_more": false,
		"data": []json.RawMessage{fx["subscription"]}}
	raw, _ := json.Marshal(list)
	assert.Empty(t, spec.Response("GET", "/v1/subscriptions", 200, raw))
	assert.Empty(t, spec.Response("GET", "/v1/subscriptions/sub_1", 200, fx["subscription"]))
	assert.Empty(t, spec.Response("GET", "/v1/invoices/upcoming/lines", 404,
		[]byte(`{"error":{"type":"invalid_request_error","message":"No such invoice"}}`)))
}

func mutate(t *testing.T, raw json.RawMessage, f func(o map[string]any)) []byte {
	t.Helper()
	var o map[string]any
	require.NoError(t, json.Unmarshal(raw, &o))
	f(o)
	out, err := json.Marshal(o)
	require.NoError(t, err)
	return out
}

func TestFindsEachKindOfDifference(t *testing.T) {
	spec, fx := load(t)
	sub := fx["subscription"]

	got := spec.Object(mutate(t, sub, func(o map[string]any) { delete(o, "invoice_settings") }))
	assert.Equal(t, []string{"missing invoice_settings"}, kinds(got))

	got = spec.Object(mutate(t, sub, func(o map[string]any) { o["created"] = "yesterday" }))
	assert.Equal(t, []string{"type created"}, kinds(got))

	got = spec.Object(mutate(t, sub, func(o map[string]any) { o["status"] = "resting" }))
	assert.Equal(t, []string{"enum status"}, kinds(got))

	got = spec.Object(mutate(t, sub, func(o map[string]any) { o["flavour"] = "x"; o["start_date"] = nil }))
	assert.Equal(t, []string{"type start_date", "unknown flavour"}, kinds(got))

	// Inside a list inside the object, and through an expandable field.
	got = spec.Object(mutate(t, sub, func(o map[string]any) {
		items := o["items"].(map[string]any)["data"].([]any)
		items[0].(map[string]any)["metadata"] = map[string]any{"n": 1}
		var inv map[string]any
		require.NoError(t, json.Unmarshal(fx["invoice"], &inv))
		delete(inv, "issuer")
		o["latest_invoice"] = inv
	}))
	assert.Equal(t, []string{"missing latest_invoice.issuer", "type items.data[0].metadata.n"}, kinds(got))

	// A field newer than the spec is allowed only where listed.
	newer := mutate(t, sub, func(o map[string]any) { o["billing_mode"] = map[string]any{"type": "classic"} })
	assert.Equal(t, []string{"unknown billing_mode"}, kinds(spec.Object(newer)))
	spec.Newer["subscription.billing_mode"] = true
	assert.Empty(t, spec.Object(newer))
}

func TestEventsAreCheckedThroughTheirObject(t *testing.T) {
	spec, fx := load(t)
	var inv map[string]any
	require.NoError(t, json.Unmarshal(fx["invoice"], &inv))
	delete(inv, "payment_settings")
	ev := map[string]any{"id": "evt_1", "object": "event", "api_version": "2025-08-27.basil", "created": 1,
		"livemode": false, "pending_webhooks": 1, "type": "invoice.updated",
		"request": map[string]any{"id": nil, "idempotency_key": nil},
		"data":    map[string]any{"object": inv, "previous_attributes": map[string]any{"status": "draft", "colour": 1}}}
	raw, _ := json.Marshal(ev)
	assert.Equal(t, []string{"missing data.object.payment_settings", "unknown data.previous_attributes.colour"},
		kinds(spec.Object(raw)))
}

func TestUnknownOperation(t *testing.T) {
	spec, _ := load(t)
	got := spec.Response("GET", "/v1/nothing_here", 200, []byte(`{}`))
	assert.Equal(t, []string{"schema GET /v1/nothing_here"}, kinds(got))
}
