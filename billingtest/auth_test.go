package billingtest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/stripespec"
)

func errorOf(t *testing.T, body map[string]any) map[string]any {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	require.True(t, ok, "not an error body: %v", body)
	assert.Equal(t, "invalid_request_error", e["type"])
	return e
}

func TestKeysAreCheckedAsStripeChecksThem(t *testing.T) {
	srv, _ := setup(t)
	post := func(auth string) (int, map[string]any) {
		status, body, _ := apiDo(t, srv, http.MethodPost, "/v1/customers", "email=a%40example.com", "Authorization", auth)
		return status, body
	}

	status, body := post("")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Contains(t, errorOf(t, body)["message"], "You did not provide an API key.")

	status, body = post("Bearer pk_test_51abcdefghijklmnop")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Contains(t, errorOf(t, body)["message"], "cannot be made with a publishable API key")

	status, body = post("Bearer sk_test_") // a prefix is not a key
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Contains(t, errorOf(t, body)["message"], "Invalid API Key provided")

	status, body = post("Bearer whsec_notakey123456")
	assert.Equal(t, http.StatusUnauthorized, status)
	msg := errorOf(t, body)["message"].(string)
	assert.Equal(t, "Invalid API Key provided: "+strings.Repeat("*", len("whsec_notakey12"))+"3456", msg)

	// A live key: billingtest is test mode only, and never echoes the key.
	live := "sk_live_51SecretPartDoNotShow9876"
	status, body = post("Bearer " + live)
	assert.Equal(t, http.StatusUnauthorized, status)
	msg = errorOf(t, body)["message"].(string)
	assert.Contains(t, msg, "billingtest is test mode only")
	assert.NotContains(t, msg, "SecretPartDoNotShow")
	assert.Contains(t, msg, "sk_live_")
	status, _ = post("Bearer rk_live_51SecretPart9876")
	assert.Equal(t, http.StatusUnauthorized, status)

	// Refused requests change nothing.
	assert.Empty(t, listIDs(t, srv, "/v1/customers"))

	// Secret and restricted test keys, by Bearer or Basic auth, are served.
	status, _ = post("Bearer rk_test_restricted")
	assert.Equal(t, 200, status)
	status, _, _ = apiDo(t, srv, http.MethodGet, "/v1/customers", "", "Authorization", "Basic c2tfdGVzdF94Og==") // sk_test_x:
	assert.Equal(t, 200, status)
	assert.Len(t, listIDs(t, srv, "/v1/customers"), 1)

	// stripe-go surfaces the refusal as Stripe's error.
	sc := stripe.NewClient("sk_live_nope1234", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL: stripe.String(srv.URL()), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})))
	_, err := sc.V1Customers.Retrieve(ctx, "cus_x", nil)
	var se *stripe.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusUnauthorized, se.HTTPStatusCode)
}

func listIDs(t *testing.T, srv *billingtest.Stripe, path string) []string {
	t.Helper()
	ids, _ := apiList(t, srv, path, "")
	return ids
}

func TestOnlyBasilVersionsAreServed(t *testing.T) {
	srv, _ := setup(t)
	get := func(version string) (int, map[string]any, http.Header) {
		t.Helper()
		return apiDo(t, srv, http.MethodGet, "/v1/customers", "", "Stripe-Version", version)
	}

	status, _, h := get("")
	assert.Equal(t, 200, status)
	assert.Equal(t, "2025-08-27.basil", h.Get("Stripe-Version"), "the account's default")

	status, _, h = get("2025-03-31.basil")
	assert.Equal(t, 200, status)
	assert.Equal(t, "2025-03-31.basil", h.Get("Stripe-Version"), "a basil version is echoed")

	for _, other := range []string{"2025-09-30.clover", "2024-06-20", "2024-12-18.acacia"} {
		status, body, _ := get(other)
		assert.Equal(t, http.StatusBadRequest, status, other)
		msg := errorOf(t, body)["message"].(string)
		assert.Contains(t, msg, "billingtest models only Stripe API version 2025-08-27.basil", other)
		assert.Contains(t, msg, other)
		assert.Contains(t, msg, "Stripe itself would serve", "it does not pretend Stripe refuses it")
	}

	status, body, _ := get("latest")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "Invalid Stripe API version: latest", errorOf(t, body)["message"])

	// A refused version changes nothing.
	status, _, _ = apiDo(t, srv, http.MethodPost, "/v1/customers", "email=b%40example.com", "Stripe-Version", "2025-09-30.clover")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Empty(t, listIDs(t, srv, "/v1/customers"))
}

// The table of valid parameters is Stripe's: every route's top-level
// parameters as the schema lists them.
func TestValidParamsAreStripes(t *testing.T) {
	spec := stripespec.ForTest(t)
	routes := billingtest.ValidParams()
	require.GreaterOrEqual(t, len(routes), 25)
	for route, params := range routes {
		method, path, _ := strings.Cut(route, " ")
		path = strings.ReplaceAll(path, "{id}", "x_1")
		assert.Equal(t, spec.Params(method, path), params, route)
	}
}

// A valid Stripe parameter billingtest does not model is refused as such,
// naming it; an invalid one is unknown, as Stripe says.
func TestValidParametersAreNotUnknown(t *testing.T) {
	srv, _ := setup(t)
	status, body, _ := apiDo(t, srv, http.MethodPost, "/v1/customers", "tax_exempt=exempt")
	assert.Equal(t, http.StatusBadRequest, status)
	e := errorOf(t, body)
	assert.Equal(t, "parameter_not_modelled", e["code"])
	assert.Equal(t, "tax_exempt", e["param"])
	assert.Contains(t, e["message"], "tax_exempt")
	assert.Contains(t, e["message"], "valid at Stripe")

	status, body, _ = apiDo(t, srv, http.MethodPost, "/v1/customers", "tax_exempts=exempt")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "parameter_unknown", errorOf(t, body)["code"])

	// Nested: the top-level name decides.
	status, body, _ = apiDo(t, srv, http.MethodPost, "/v1/checkout/sessions", "mode=payment&automatic_tax[enabled]=true")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "parameter_not_modelled", errorOf(t, body)["code"])
	assert.Empty(t, listIDs(t, srv, "/v1/customers"), "refused: nothing made")
}
