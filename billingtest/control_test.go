package billingtest_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing/billingtest"
)

// controlDo calls a control route with a key (Basic auth, as curl -u
// sends it; "" sends none) and returns the status and the decoded body.
func controlDo(t *testing.T, srv *billingtest.Stripe, method, path, key, form string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL()+path, strings.NewReader(form))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.True(t, strings.HasPrefix(resp.Header.Get("Request-Id"), "req_"), "Request-Id %q", resp.Header.Get("Request-Id"))
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	return resp.StatusCode, m
}

// Listen serves on the address asked for: the URL, the hosted pages' URLs
// and the API are there, and Close frees it.
func TestListen(t *testing.T) {
	srv, err := billingtest.Listen("127.0.0.1:0", billingtest.Options{Start: start})
	require.NoError(t, err)
	u, err := url.Parse(srv.URL())
	require.NoError(t, err)
	assert.Equal(t, "http", u.Scheme)
	assert.Equal(t, "127.0.0.1", u.Hostname())
	port, err := strconv.Atoi(u.Port())
	require.NoError(t, err)
	assert.NotZero(t, port)

	// The address is taken: a second server on it is refused.
	_, err = billingtest.Listen(u.Host, billingtest.Options{})
	require.Error(t, err)
	assert.True(t, errors.Is(err, syscall.EADDRINUSE), "%v", err)

	srv.AddPrice("price_month", "month", 1000)
	sc := apiClient(srv)
	cs, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("subscription"), SuccessURL: stripe.String("https://app.test/ok"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_month"), Quantity: stripe.Int64(1)}},
	})
	require.NoError(t, err)
	assert.Equal(t, srv.URL()+"/pay/"+cs.ID, cs.URL)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(cs.URL, url.Values{"card": {billingtest.CardOK}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "https://app.test/ok", resp.Header.Get("Location"))
	assert.Equal(t, stripe.CheckoutSessionStatusComplete, srv.CheckoutSession(cs.ID).Status)

	srv.Close()
	_, err = net.DialTimeout("tcp", u.Host, time.Second)
	assert.Error(t, err, "still listening after Close")
	// Closed, the address is free again.
	again, err := billingtest.Listen(u.Host, billingtest.Options{})
	require.NoError(t, err)
	again.Close()

	// An Options.Listener of its own is for New.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	_, err = billingtest.Listen("127.0.0.1:0", billingtest.Options{Listener: l})
	assert.Error(t, err)
}

// New with a Listener serves on it.
func TestNewOnListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := billingtest.New(billingtest.Options{Start: start, Listener: l})
	t.Cleanup(srv.Close)
	assert.Equal(t, "http://"+l.Addr().String(), srv.URL())
	c := newCustomer(t, apiClient(srv))
	assert.True(t, strings.HasPrefix(c.ID, "cus_"))
}

// GET /_billingtest/clock reads the clock and its next event.
func TestControlClock(t *testing.T) {
	srv, sc := clkSetup(t)
	status, body := controlDo(t, srv, http.MethodGet, "/_billingtest/clock", "sk_test_x", "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, "billingtest.clock", body["object"])
	assert.Equal(t, billingtest.APIVersion, body["api_version"])
	assert.InDelta(t, float64(srv.Now().Unix()), body["now"], 2)
	assert.InDelta(t, float64(start.Unix()), body["now"], 2)
	assert.Contains(t, body, "next_event")
	assert.Nil(t, body["next_event"], "nothing is scheduled yet")

	sub, _ := subscribeTo(t, srv, sc, "price_month")
	next, ok := srv.NextEvent()
	require.True(t, ok)
	_, end := periodOf(srv, sub)
	assert.Less(t, next.Unix(), end, "invoice.upcoming comes before the renewal")
	status, body = controlDo(t, srv, http.MethodGet, "/_billingtest/clock", "sk_test_x", "")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, float64(next.Unix()), body["next_event"])
}

// POST /_billingtest/clock/advance by=31d renews a monthly subscription
// and answers the events it emitted, in order; to_next_event goes to the
// next due event; to goes to a time.
func TestControlAdvance(t *testing.T) {
	srv, sc := clkSetup(t)
	sub, _ := subscribeTo(t, srv, sc, "price_month")
	_, end := periodOf(srv, sub)
	before := len(srv.Events())

	status, body := controlDo(t, srv, http.MethodPost, "/_billingtest/clock/advance", "sk_test_x", "by=31d")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, "billingtest.clock_advance", body["object"])
	from, now := body["from"].(float64), body["now"].(float64)
	assert.InDelta(t, 31*day, now-from, 2)
	assert.InDelta(t, float64(srv.Now().Unix()), now, 2)
	assert.NotNil(t, body["next_event"], "the next renewal is scheduled")
	evs, ok := body["events"].([]any)
	require.True(t, ok, "%v", body["events"])
	emitted := srv.Events()[before:]
	require.Len(t, evs, len(emitted))
	var types []string
	paid := false
	for i, e := range evs {
		ev := e.(map[string]any)
		assert.Equal(t, "event", ev["object"])
		assert.Equal(t, emitted[i].ID, ev["id"], "event %d", i)
		types = append(types, ev["type"].(string))
		obj := ev["data"].(map[string]any)["object"].(map[string]any)
		if ev["type"] == "invoice.paid" && obj["billing_reason"] == "subscription_cycle" {
			paid = true
			assert.GreaterOrEqual(t, ev["created"], float64(end))
		}
	}
	assert.True(t, paid, "no renewal's invoice.paid in %v", types)
	assert.Contains(t, types, "invoice.upcoming")

	// to_next_event: exactly to the next due event, and its events.
	next, ok := srv.NextEvent()
	require.True(t, ok)
	status, body = controlDo(t, srv, http.MethodPost, "/_billingtest/clock/advance", "sk_test_x", "to_next_event=true")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.InDelta(t, float64(next.Unix()), body["now"], 1)
	evs = body["events"].([]any)
	require.NotEmpty(t, evs)
	for _, e := range evs {
		assert.Equal(t, float64(next.Unix()), e.(map[string]any)["created"])
	}

	// to: a time.
	to := srv.Now().Add(2 * time.Hour).Unix()
	status, body = controlDo(t, srv, http.MethodPost, "/_billingtest/clock/advance", "sk_test_x", "to="+strconv.FormatInt(to, 10))
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.InDelta(t, float64(to), body["now"], 1)
	assert.InDelta(t, float64(to), float64(srv.Now().Unix()), 2)

	// Nothing scheduled: to_next_event only catches up.
	empty, _ := clkSetup(t)
	status, body = controlDo(t, empty, http.MethodPost, "/_billingtest/clock/advance", "sk_test_x", "to_next_event=true")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Empty(t, body["events"])
	assert.Nil(t, body["next_event"])
	assert.InDelta(t, body["from"], body["now"], 1)
}

// The control routes refuse what the API refuses, in Stripe's error shape.
func TestControlErrors(t *testing.T) {
	srv, _ := clkSetup(t)
	t0 := srv.Now()
	past := strconv.FormatInt(t0.Add(-time.Hour).Unix(), 10)
	for _, tc := range []struct {
		name, method, path, key, form string
		status                        int
		code, param                   string
		message                       string
	}{
		{"no key", "GET", "/_billingtest/clock", "", "", 401, "", "", "You did not provide an API key"},
		{"publishable key", "POST", "/_billingtest/clock/advance", "pk_test_x", "by=1d", 401, "", "", "publishable API key"},
		{"live key", "POST", "/_billingtest/clock/advance", "sk_live_abcdefgh", "by=1d", 401, "", "", "test mode only"},
		{"malformed key", "GET", "/_billingtest/clock", "nope", "", 401, "", "", "Invalid API Key"},
		{"nothing to do", "POST", "/_billingtest/clock/advance", "sk_test_x", "", 400, "parameter_missing", "by", "to_next_event"},
		{"two at once", "POST", "/_billingtest/clock/advance", "sk_test_x", "by=1d&to_next_event=true", 400, "parameters_exclusive", "by", ""},
		{"bad duration", "POST", "/_billingtest/clock/advance", "sk_test_x", "by=31days", 400, "parameter_invalid", "by", "31d or 1d12h"},
		{"no unit", "POST", "/_billingtest/clock/advance", "sk_test_x", "by=31", 400, "parameter_invalid", "by", ""},
		{"backwards", "POST", "/_billingtest/clock/advance", "sk_test_x", "by=-1d", 400, "parameter_invalid", "by", "only moves forward"},
		{"to the past", "POST", "/_billingtest/clock/advance", "sk_test_x", "to=" + past, 400, "parameter_invalid", "to", "only moves forward"},
		{"to not a number", "POST", "/_billingtest/clock/advance", "sk_test_x", "to=tomorrow", 400, "parameter_invalid_integer", "to", ""},
		{"to_next_event false", "POST", "/_billingtest/clock/advance", "sk_test_x", "to_next_event=false", 400, "parameter_invalid", "to_next_event", ""},
		{"unknown parameter", "POST", "/_billingtest/clock/advance", "sk_test_x", "by=1d&days=3", 400, "parameter_unknown", "days", ""},
		{"expand", "GET", "/_billingtest/clock?expand[]=events", "sk_test_x", "", 400, "parameter_unknown", "expand[]", ""},
		{"wrong method", "GET", "/_billingtest/clock/advance", "sk_test_x", "", 405, "", "", "takes POST"},
		{"unknown route", "GET", "/_billingtest/nope", "sk_test_x", "", 404, "", "", "control routes are GET /_billingtest/clock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := controlDo(t, srv, tc.method, tc.path, tc.key, tc.form)
			assert.Equal(t, tc.status, status, "%v", body)
			e := errorOf(t, body)
			if tc.param != "" {
				assert.Equal(t, tc.param, e["param"])
			} else {
				assert.NotContains(t, e, "param")
			}
			if tc.code != "" {
				assert.Equal(t, tc.code, e["code"])
			} else {
				assert.NotContains(t, e, "code")
			}
			assert.Contains(t, e["message"], tc.message)
		})
	}
	assert.WithinDuration(t, t0, srv.Now(), 2*time.Second, "a refused advance moved the clock")
	assert.Empty(t, srv.Calls(), "control requests counted as API calls")
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"31d": 31 * 24 * time.Hour, "1d12h": 36 * time.Hour, "1.5d": 36 * time.Hour, "36h": 36 * time.Hour,
		"90m": 90 * time.Minute, "0": 0, "2h30m10s": 2*time.Hour + 30*time.Minute + 10*time.Second,
		"-1d": -24 * time.Hour, "+3d": 72 * time.Hour, "500ms": 500 * time.Millisecond, "1h1d": 25 * time.Hour,
	} {
		got, err := billingtest.ParseDuration(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, got, in)
		}
	}
	for _, in := range []string{"", "d", "31", "31days", "1w", "1..5d", "-", "d1", "1e3d", "999999999999d", "3d-2h"} {
		_, err := billingtest.ParseDuration(in)
		assert.Error(t, err, in)
	}
}
