package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/memstore"
)

// TestQuickstart walks the quick start against the in-test fake Stripe:
// gated page refused, checkout, payment, webhooks, gated page served,
// portal.
func TestQuickstart(t *testing.T) {
	fake := billingtest.New(billingtest.Options{})
	defer fake.Close()
	fake.AddPrice("price_pro", "month", 2900)
	env := map[string]string{
		"STRIPE_SECRET_KEY":     "sk_test_quickstart",
		"STRIPE_WEBHOOK_SECRET": "whsec_quickstart",
		"PRO_PRICE_ID":          "price_pro",
		"STRIPE_API_BASE":       fake.URL(),
	}
	h, err := newApp(func(k string) string { return env[k] }, memstore.New())
	require.NoError(t, err)

	do := func(method, target, user string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, target, nil)
		if user != "" {
			r.AddCookie(&http.Cookie{Name: "uid", Value: user})
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	assert.Equal(t, 401, do("GET", "/pro/", "").Code)
	assert.Equal(t, 403, do("GET", "/pro/", "ada").Code)
	assert.Equal(t, http.StatusBadGateway, do("POST", "/billing", "ada").Code, "no customer yet")

	w := do("POST", "/subscribe", "ada")
	require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
	loc := w.Header().Get("Location")
	require.True(t, strings.HasPrefix(loc, fake.URL()), loc)
	paid, err := fake.Pay(path.Base(loc), billingtest.CardOK)
	require.NoError(t, err)
	for _, ev := range paid.Events {
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: ev.JSON, Secret: env["STRIPE_WEBHOOK_SECRET"]})
		r := httptest.NewRequest("POST", "/stripe/webhook", bytes.NewReader(ev.JSON))
		r.Header.Set("Stripe-Signature", sp.Header)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		require.Equal(t, 200, rec.Code, ev.Type)
	}

	w = do("GET", "/pro/", "ada")
	require.Equal(t, 200, w.Code)
	assert.Contains(t, w.Body.String(), "Welcome, pro member")
	w = do("POST", "/billing", "ada")
	require.Equal(t, http.StatusSeeOther, w.Code)
	assert.Contains(t, w.Header().Get("Location"), "/portal/")
}

// TestNewAppRefusesBadConfig: nothing configured is a clear error.
func TestNewAppRefusesBadConfig(t *testing.T) {
	_, err := newApp(func(string) string { return "" }, memstore.New())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "SecretKey is empty")
}

// TestReadmeQuickstart keeps the README's quick start the code of this
// program.
func TestReadmeQuickstart(t *testing.T) {
	src, err := os.ReadFile("main.go")
	require.NoError(t, err)
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	s := string(src)
	block := s[strings.Index(s, "// quickstart:begin")+len("// quickstart:begin") : strings.Index(s, "// quickstart:end")]
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(block), "\n") {
		lines = append(lines, strings.TrimPrefix(l, "\t"))
	}
	want := strings.Join(lines, "\n")
	assert.Contains(t, string(readme), want, "README's quick start differs from examples/quickstart/main.go")
	assert.LessOrEqual(t, len(lines), 25)
}
