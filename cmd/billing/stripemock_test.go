package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testenv"
)

const mockHow = "start stripe-mock (go install github.com/stripe/stripe-mock@v0.195.0; stripe-mock -http-port 12111 -https-port 12112) and set BILLING_TEST_STRIPE_MOCK=http://localhost:12111"

// recorder is a reverse proxy that keeps what each request was answered.
type recorder struct {
	mu       sync.Mutex
	requests []string // "METHOD /path STATUS"
	keys     []string // the Authorization of each request, as sent
}

func (r *recorder) proxy(t *testing.T, target string, rewrite func(*http.Request)) *httptest.Server {
	u, err := url.Parse(target)
	require.NoError(t, err)
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(resp *http.Response) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.requests = append(r.requests, resp.Request.Method+" "+resp.Request.URL.Path+" "+resp.Status)
		return nil
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.keys = append(r.keys, req.Header.Get("Authorization"))
		r.mu.Unlock()
		if rewrite != nil {
			rewrite(req)
		}
		p.ServeHTTP(w, req)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (r *recorder) refused() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var bad []string
	for _, q := range r.requests {
		if !strings.HasSuffix(q, " 200 OK") {
			bad = append(bad, q)
		}
	}
	return bad
}

// TestSetupAndDoctorAgainstStripeMock: the requests billing setup (plan
// and apply) and billing doctor send are ones Stripe's own mock, which
// validates every parameter against Stripe's OpenAPI schema, accepts.
// stripe-mock keeps no state, so what it answers is not checked: only that
// no request was refused.
func TestSetupAndDoctorAgainstStripeMock(t *testing.T) {
	mock := testenv.Service(t, "BILLING_TEST_STRIPE_MOCK", mockHow)
	rec := &recorder{}
	// stripe-mock v0.195.0's schema is 2025-05-28.basil's, whose
	// api_version enumeration predates the pinned 2025-08-27.basil: the
	// endpoint's version is swapped for it (after checking it was the
	// pinned one), so that the rest of the request is validated.
	pinned := 0
	api := rec.proxy(t, mock, func(r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/webhook_endpoints" {
			return
		}
		body, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		form, err := url.ParseQuery(string(body))
		require.NoError(t, err)
		if form.Get("api_version") == pinnedVersion {
			pinned++
			form.Set("api_version", "2025-05-28.basil")
		}
		enc := form.Encode()
		r.Body, r.ContentLength = io.NopCloser(strings.NewReader(enc)), int64(len(enc))
	})
	path := writePlans(t, 2900)
	env := map[string]string{"STRIPE_SECRET_KEY": "sk_test_123"}

	code, out, errs := setupCLI(t, env, "--api-base", api.URL, "-f", path, "--webhook-url", hookURL, "--dry-run")
	assert.Equal(t, exitOK, code, "%s\n%s", errs, out)
	code, out, errs = setupCLI(t, env, "--api-base", api.URL, "-f", path, "--webhook-url", hookURL, "--secret-file", filepath.Join(t.TempDir(), "whsec"))
	assert.NotEqual(t, exitUsage, code, "%s\n%s", errs, out)
	code, out, errs = doctorCLI(t, env, "--api-base", api.URL, "-f", path, "--webhook-url", hookURL)
	assert.NotEqual(t, exitUsage, code, "%s\n%s", errs, out)

	assert.Empty(t, rec.refused(), "requests stripe-mock refused")
	assert.Greater(t, len(rec.requests), 10, "setup and doctor reached stripe-mock")
	var methods []string
	for _, q := range rec.requests {
		methods = append(methods, strings.Fields(q)[0])
	}
	assert.Contains(t, methods, "POST", "setup's writes were validated too")
	assert.Equal(t, 1, pinned, "the endpoint was created at the pinned version")
}

// TestSetupLiveDryRun: the production checklist's first step, billing
// setup --live --dry-run with a live key, reads the live account and plans
// the prices, the endpoint and the portal configuration without writing
// anything; the key never reaches the output. (billingtest is test mode
// only: a proxy hands it a test key and records the live one sent.)
func TestSetupLiveDryRun(t *testing.T) {
	fake := billingtest.New(billingtest.Options{})
	defer fake.Close()
	rec := &recorder{}
	api := rec.proxy(t, fake.URL(), func(r *http.Request) { r.SetBasicAuth("sk_test_behind_the_proxy", "") })
	path := writePlans(t, 2900)
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	live := "sk_live_" + strings.Repeat("x", 24)

	code, out, errs := setupCLI(t, map[string]string{"STRIPE_SECRET_KEY": live}, "--live", "--dry-run", "--api-base", api.URL, "-f", path,
		"--webhook-url", hookURL)
	require.Equal(t, exitOK, code, "%s\n%s", errs, out)
	assert.NotContains(t, out+errs, live)
	for _, want := range []string{"create", hookURL} {
		assert.Contains(t, out, want)
	}
	assert.Zero(t, posts(fake), "a dry run writes nothing")
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "the plans file untouched")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.NotEmpty(t, rec.keys)
	for _, k := range rec.keys {
		assert.Contains(t, []string{"Bearer " + live, "Basic " + basic(live)}, k, "the live key sent to Stripe")
	}

	code, _, errs = setupCLI(t, map[string]string{"STRIPE_SECRET_KEY": live}, "--live", "--dry-run", "--api-base", api.URL, "-f", path,
		"--webhook-url", "http://app.example/stripe/webhook")
	assert.Equal(t, exitUsage, code, "a live endpoint needs https")
	assert.Contains(t, errs, "https")
}

func basic(key string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(key, "")
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}
