package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testenv"
)

// stripeStart is when the served clocks start: April has 30 days, so 31
// days later a monthly subscription has renewed and its invoice (charged
// an hour after the period's end) is paid.
const stripeStart = "2026-04-01T00:00:00Z"

// waitLimit bounds each wait for a subprocess's output or a webhook.
const waitLimit = 60 * time.Second

// buildBilling builds the billing command into a temporary directory (with
// -race when the tests run with it) and returns its path.
func buildBilling(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the go command is needed to build billing")
	bin := filepath.Join(t.TempDir(), "billing")
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	cmd := exec.Command(goBin, append(args, ".")...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// served is a `billing stripe serve` process.
type served struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string // stdout, line by line; closed at its end
	// URL is the first line of its stdout (without --json).
	URL string
	// Banner is stdout up to and including the ready line.
	Banner   []string
	stderr   bytes.Buffer // read only after wait
	waitOnce sync.Once
	waitErr  error
}

// serveStripe starts `billing stripe serve --addr 127.0.0.1:0 args...` and
// reads its stdout until it is ready (without --json: the ready line; with
// it, the JSON document's last line). Cleanup kills it.
func serveStripe(t *testing.T, bin string, args ...string) *served {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"stripe", "serve", "--addr", "127.0.0.1:0", "--start", stripeStart}, args...)...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	s := &served{t: t, cmd: cmd, lines: make(chan string, 1000)}
	cmd.Stderr = &s.stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = s.wait()
	})
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	asJSON := false
	for _, a := range args {
		asJSON = asJSON || a == "--json"
	}
	for {
		line := s.next()
		s.Banner = append(s.Banner, line)
		if len(s.Banner) == 1 && !asJSON {
			s.URL = line
		}
		if asJSON && line == "}" || !asJSON && strings.HasPrefix(line, stripeReady) {
			return s
		}
	}
}

// next returns the next line of stdout, failing at its end or after
// waitLimit.
func (s *served) next() string {
	s.t.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	select {
	case line, ok := <-s.lines:
		if !ok {
			err := s.wait()
			s.t.Fatalf("serve's stdout ended (%v) after %q; stderr:\n%s", err, s.Banner, s.stderr.String())
		}
		return line
	case <-timer.C:
		s.t.Fatalf("serve printed nothing for %s after %q", waitLimit, s.Banner)
	}
	return ""
}

func (s *served) wait() error {
	s.waitOnce.Do(func() { s.waitErr = s.cmd.Wait() })
	return s.waitErr
}

// stop sends sig, waits for the exit and returns the rest of stdout.
func (s *served) stop(sig os.Signal) (rest string) {
	s.t.Helper()
	if runtime.GOOS == "windows" {
		s.t.Skip("signals cannot be sent to a process on Windows")
	}
	require.NoError(s.t, s.cmd.Process.Signal(sig))
	var b strings.Builder
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				require.NoError(s.t, s.wait(), "serve's exit after %v; stderr:\n%s", sig, s.stderr.String())
				return b.String()
			}
			b.WriteString(line + "\n")
		case <-timer.C:
			s.t.Fatalf("serve did not stop within %s of %v", waitLimit, sig)
		}
	}
}

// billingRun runs the billing binary with args and env (added to the
// environment) and returns its exit code and output.
func billingRun(t *testing.T, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append(os.Environ(), "STRIPE_SECRET_KEY=", "STRIPE_API_BASE="), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("billing %s: %v", strings.Join(args, " "), err)
	}
	return code, out.String(), errb.String()
}

// stripeTo is a stripe-go client of a served Stripe.
func stripeTo(u string) *stripe.Client {
	return stripe.NewClient("sk_test_gosdk", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL: stripe.String(u), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}, MaxNetworkRetries: stripe.Int64(0)})))
}

// needTool returns the path of a tool the test drives, or skips with how
// to get it; under CI=true a missing tool fails the test instead.
func needTool(t *testing.T, name, missing string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testenv.Unavailable(t, name+" is not installed", missing)
	}
	return p
}

// eventJSON is the part of an event the tests read.
type eventJSON struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Created int64  `json:"created"`
	Data    struct {
		Object struct {
			ID            string `json:"id"`
			Customer      string `json:"customer"`
			BillingReason string `json:"billing_reason"`
			Parent        struct {
				SubscriptionDetails struct {
					Subscription string `json:"subscription"`
				} `json:"subscription_details"`
			} `json:"parent"`
		} `json:"object"`
	} `json:"data"`
}

func decodeEvents(t *testing.T, raws []json.RawMessage) []eventJSON {
	t.Helper()
	out := make([]eventJSON, len(raws))
	for i, r := range raws {
		require.NoError(t, json.Unmarshal(r, &out[i]))
	}
	return out
}

// TestStripeServe builds billing once and drives `billing stripe serve`,
// a process of its own, from outside: stripe-go, curl, Stripe's Node SDK,
// the other stripe commands and a webhook receiver.
func TestStripeServe(t *testing.T) {
	bin := buildBilling(t)

	// stripe-go: a subscription Checkout paid on its hosted page, 31 days
	// through `billing stripe advance`, the renewal in `billing stripe
	// events`.
	t.Run("stripe-go", func(t *testing.T) {
		t.Parallel()
		srv := serveStripe(t, bin)
		u, err := url.Parse(srv.URL)
		require.NoError(t, err, "first line %q", srv.URL)
		assert.Equal(t, "127.0.0.1", u.Hostname())
		port, err := strconv.Atoi(u.Port())
		require.NoError(t, err)
		assert.NotZero(t, port, "the port picked for :0")
		banner := strings.Join(srv.Banner, "\n")
		assert.Contains(t, banner, "STRIPE_API_BASE="+srv.URL)
		assert.Contains(t, banner, `host: "127.0.0.1", port: `+u.Port())
		assert.Contains(t, banner, "billing stripe advance 31d --api-base "+srv.URL)

		sc := stripeTo(srv.URL)
		ctx := context.Background()
		c, err := sc.V1Customers.Create(ctx, &stripe.CustomerCreateParams{Email: stripe.String("go@example.com")})
		require.NoError(t, err)
		prod, err := sc.V1Products.Create(ctx, &stripe.ProductCreateParams{Name: stripe.String("Pro")})
		require.NoError(t, err)
		price, err := sc.V1Prices.Create(ctx, &stripe.PriceCreateParams{Product: stripe.String(prod.ID),
			UnitAmount: stripe.Int64(1500), Currency: stripe.String("usd"),
			Recurring: &stripe.PriceCreateRecurringParams{Interval: stripe.String("month")}})
		require.NoError(t, err)
		cs, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
			Mode: stripe.String("subscription"), Customer: stripe.String(c.ID), SuccessURL: stripe.String("https://app.test/ok"),
			LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String(price.ID), Quantity: stripe.Int64(1)}}})
		require.NoError(t, err)
		require.Equal(t, srv.URL+"/pay/"+cs.ID, cs.URL, "the hosted page is at the real address")

		// Pay as the page's form does.
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noRedirect.PostForm(cs.URL, url.Values{"card": {billingtest.CardOK}})
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		assert.Equal(t, "https://app.test/ok", resp.Header.Get("Location"))
		cs, err = sc.V1CheckoutSessions.Retrieve(ctx, cs.ID, nil)
		require.NoError(t, err)
		require.Equal(t, stripe.CheckoutSessionStatusComplete, cs.Status)
		sub, err := sc.V1Subscriptions.Retrieve(ctx, cs.Subscription.ID, nil)
		require.NoError(t, err)
		require.Equal(t, stripe.SubscriptionStatusActive, sub.Status)
		periodEnd := sub.Items.Data[0].CurrentPeriodEnd

		// billing stripe clock: the renewal's notice is due.
		code, out, errs := billingRun(t, bin, nil, "stripe", "clock", "--api-base", srv.URL, "--json")
		require.Equal(t, 0, code, errs)
		var clock billingtest.ClockState
		require.NoError(t, json.Unmarshal([]byte(out), &clock), out)
		assert.InDelta(t, mustTime(t, stripeStart).Unix(), clock.Now, 60)
		require.NotNil(t, clock.NextEvent)
		assert.Less(t, *clock.NextEvent, periodEnd, "invoice.upcoming is due first")

		// billing stripe advance 31d, for people.
		code, out, errs = billingRun(t, bin, []string{"STRIPE_API_BASE=" + srv.URL}, "stripe", "advance", "31d")
		require.Equal(t, 0, code, "stderr: %s", errs)
		assert.Contains(t, out, "Clock: 2026-04-01T")
		assert.Contains(t, out, "-> 2026-05-02T")
		assert.Contains(t, out, "(31d)")
		var paidLine string
		for line := range strings.Lines(out) {
			if strings.Contains(line, " invoice.paid ") {
				paidLine = line
			}
		}
		require.NotEmpty(t, paidLine, "no invoice.paid in:\n%s", out)
		assert.Contains(t, paidLine, "2026-05-01T01:00:00Z", "charged an hour after the period's end")
		assert.Contains(t, out, "Next due: 2026-05-")

		// billing stripe events --json: the renewal's invoice.paid.
		code, out, errs = billingRun(t, bin, nil, "stripe", "events", "--api-base", srv.URL, "--type", "invoice.paid", "--json")
		require.Equal(t, 0, code, errs)
		var list eventList
		require.NoError(t, json.Unmarshal([]byte(out), &list), out)
		assert.Equal(t, "list", list.Object)
		evs := decodeEvents(t, list.Data)
		require.NotEmpty(t, evs)
		renewal := evs[0]
		assert.Equal(t, "invoice.paid", renewal.Type)
		assert.Equal(t, "subscription_cycle", renewal.Data.Object.BillingReason)
		assert.Equal(t, sub.ID, renewal.Data.Object.Parent.SubscriptionDetails.Subscription)
		assert.Equal(t, c.ID, renewal.Data.Object.Customer)
		assert.GreaterOrEqual(t, renewal.Created, periodEnd)
		sub, err = sc.V1Subscriptions.Retrieve(ctx, sub.ID, nil)
		require.NoError(t, err)
		assert.Equal(t, periodEnd, sub.Items.Data[0].CurrentPeriodStart, "renewed")
		assert.Equal(t, stripe.SubscriptionStatusActive, sub.Status)

		// For people, with a limit: newest first, and "more".
		code, out, errs = billingRun(t, bin, nil, "stripe", "events", "--api-base", srv.URL, "--limit", "2")
		require.Equal(t, 0, code, errs)
		assert.Contains(t, out, "2 event(s), newest first (more: raise --limit):")
		assert.Contains(t, out, "invoice.payment_succeeded")

		// advance --to-next --json: exactly to the next due event.
		code, out, errs = billingRun(t, bin, nil, "stripe", "advance", "--to-next", "--api-base", srv.URL, "--json")
		require.Equal(t, 0, code, errs)
		var adv billingtest.ClockAdvance
		require.NoError(t, json.Unmarshal([]byte(out), &adv), out)
		assert.Equal(t, "billingtest.clock_advance", adv.Object)
		require.NotEmpty(t, adv.Events)
		for _, e := range decodeEvents(t, adv.Events) {
			assert.Equal(t, adv.Now, e.Created, "%s", e.Type)
		}
	})

	// curl: the API and the control route from a shell.
	t.Run("curl", func(t *testing.T) {
		t.Parallel()
		curl := needTool(t, "curl", "curl is not installed (apt-get install curl); the test drives the server with it")
		srv := serveStripe(t, bin)
		run := func(args ...string) (status int, body map[string]any) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			out, err := exec.CommandContext(ctx, curl, append([]string{"-sS", "-w", "\n%{http_code}"}, args...)...).Output()
			require.NoError(t, err, "curl %v", args)
			b, code, ok := strings.Cut(strings.TrimSpace(string(out)), "\n")
			require.True(t, ok, "%s", out)
			status, err = strconv.Atoi(code)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal([]byte(b), &body), b)
			return status, body
		}
		status, cus := run("-u", "sk_test_curl:", srv.URL+"/v1/customers", "-d", "email=curl@example.com", "-d", "metadata[via]=curl")
		require.Equal(t, 200, status, "%v", cus)
		assert.Equal(t, "customer", cus["object"])
		assert.Equal(t, "curl@example.com", cus["email"])

		status, clock := run("-u", "sk_test_curl:", srv.URL+"/_billingtest/clock")
		require.Equal(t, 200, status, "%v", clock)
		assert.Equal(t, "billingtest.clock", clock["object"])
		assert.InDelta(t, mustTime(t, stripeStart).Unix(), clock["now"], 60)
		assert.Nil(t, clock["next_event"])

		status, adv := run("-u", "sk_test_curl:", "-d", "by=1d12h", srv.URL+"/_billingtest/clock/advance")
		require.Equal(t, 200, status, "%v", adv)
		assert.InDelta(t, 36*3600, adv["now"].(float64)-adv["from"].(float64), 2)
		assert.GreaterOrEqual(t, adv["from"], clock["now"])
		assert.Empty(t, adv["events"], "nothing was due")

		status, e := run(srv.URL + "/_billingtest/clock")
		assert.Equal(t, 401, status)
		assert.Contains(t, e["error"].(map[string]any)["message"], "You did not provide an API key")
		status, e = run("-H", "Authorization: Bearer sk_test_curl", "-d", "by=soon", srv.URL+"/_billingtest/clock/advance")
		assert.Equal(t, 400, status)
		assert.Equal(t, "parameter_invalid", e["error"].(map[string]any)["code"])
		assert.Equal(t, "by", e["error"].(map[string]any)["param"])

		// What curl made, as billing stripe events lists it.
		code, out, errs := billingRun(t, bin, []string{"STRIPE_API_BASE=" + srv.URL}, "stripe", "events", "--type", "customer.*", "--json")
		require.Equal(t, 0, code, errs)
		var list eventList
		require.NoError(t, json.Unmarshal([]byte(out), &list), out)
		evs := decodeEvents(t, list.Data)
		require.Len(t, evs, 1)
		assert.Equal(t, "customer.created", evs[0].Type)
		assert.Equal(t, cus["id"], evs[0].Data.Object.ID)
	})

	// Stripe's Node SDK, as a Node app uses the server (testdata/node's
	// standalone.mjs).
	t.Run("node", func(t *testing.T) {
		t.Parallel()
		node, dir := testenv.NodeSDK(t, filepath.Join("..", "..", "billingtest", "testdata", "node"))
		srv := serveStripe(t, bin)
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		out := testenv.RunNode(t, ctx, node, dir, "standalone.mjs", map[string]string{"url": srv.URL, "key": "sk_test_node"})
		var res struct {
			Calls                  int
			Failures               []string
			Subscription, Customer string
		}
		require.NoError(t, json.Unmarshal(out, &res), "%s", out)
		assert.Empty(t, res.Failures, "%s", strings.Join(res.Failures, "\n"))
		assert.GreaterOrEqual(t, res.Calls, 13)

		// The state Node left, seen from Go.
		sub, err := stripeTo(srv.URL).V1Subscriptions.Retrieve(context.Background(), res.Subscription, nil)
		require.NoError(t, err)
		assert.Equal(t, res.Customer, sub.Customer.ID)
		assert.Equal(t, stripe.SubscriptionStatusActive, sub.Status)
		assert.Equal(t, "2026-05-01", time.Unix(sub.Items.Data[0].CurrentPeriodStart, 0).UTC().Format(time.DateOnly), "renewed")
	})

	// --webhook-url: every event is POSTed to the app, signed with the
	// secret written to --secret-file (0600), which stdout never shows.
	t.Run("webhooks", func(t *testing.T) {
		t.Parallel()
		type delivery struct{ body, sig string }
		got := make(chan delivery, 100)
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			got <- delivery{string(b), r.Header.Get("Stripe-Signature")}
		}))
		t.Cleanup(app.Close)
		secretFile := filepath.Join(t.TempDir(), "whsec")
		srv := serveStripe(t, bin, "--webhook-url", app.URL+"/stripe/webhook", "--secret-file", secretFile)
		banner := strings.Join(srv.Banner, "\n")
		assert.Contains(t, banner, "Webhooks: every event is POSTed to "+app.URL+"/stripe/webhook (endpoint we_")
		assert.Contains(t, banner, "is in "+secretFile+" (mode 0600)")
		fi, err := os.Stat(secretFile)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		raw, err := os.ReadFile(secretFile)
		require.NoError(t, err)
		secret := strings.TrimSpace(string(raw))
		require.True(t, strings.HasPrefix(secret, "whsec_"), "the file holds no signing secret")
		assert.NotContains(t, banner, secret, "the secret on stdout")

		c, err := stripeTo(srv.URL).V1Customers.Create(context.Background(), &stripe.CustomerCreateParams{Email: stripe.String("hook@example.com")})
		require.NoError(t, err)
		timer := time.NewTimer(waitLimit)
		defer timer.Stop()
		var d delivery
		select {
		case d = <-got:
		case <-timer.C:
			t.Fatal("no webhook delivery")
		}
		ev, err := webhook.ConstructEvent([]byte(d.body), d.sig, secret)
		require.NoError(t, err, "the delivery does not verify with the secret in --secret-file")
		assert.Equal(t, stripe.EventTypeCustomerCreated, ev.Type)
		assert.Equal(t, c.ID, ev.Data.Object["id"])
		_, err = webhook.ConstructEvent([]byte(d.body), d.sig, "whsec_other")
		assert.ErrorIs(t, err, webhook.ErrNoValidSignature)

		// The file is new or nothing: a second serve does not overwrite it.
		code, _, errs := billingRun(t, bin, nil, "stripe", "serve", "--addr", "127.0.0.1:0",
			"--webhook-url", app.URL+"/stripe/webhook", "--secret-file", secretFile)
		assert.Equal(t, exitFailure, code)
		assert.Contains(t, errs, "--secret-file")
		again, err := os.ReadFile(secretFile)
		require.NoError(t, err)
		assert.Equal(t, raw, again)

		rest := srv.stop(syscall.SIGTERM)
		assert.NotContains(t, rest+srv.stderr.String(), "whsec_")
		assert.Contains(t, srv.stderr.String(), "stopping")
	})

	// On a pipe, without --secret-file, the secret is withheld: stdout and
	// stderr never show it, --json or not; SIGINT stops serve with 0.
	t.Run("secret not on a pipe", func(t *testing.T) {
		t.Parallel()
		for _, asJSON := range []bool{false, true} {
			args := []string{"--webhook-url", "http://127.0.0.1:9/stripe/webhook"}
			if asJSON {
				args = append(args, "--json")
			}
			srv := serveStripe(t, bin, args...)
			banner := strings.Join(srv.Banner, "\n")
			if asJSON {
				var res serveResult
				require.NoError(t, json.Unmarshal([]byte(banner), &res), banner)
				assert.True(t, res.SecretWithheld)
				assert.True(t, strings.HasPrefix(res.WebhookEndpoint, "we_"), res.WebhookEndpoint)
				assert.True(t, strings.HasPrefix(res.URL, "http://127.0.0.1:"), res.URL)
				assert.Empty(t, res.SecretFile)
			} else {
				assert.Contains(t, banner, "was not shown: stdout is not a terminal")
				assert.Contains(t, banner, "--secret-file")
			}
			rest := srv.stop(os.Interrupt)
			all := banner + rest + srv.stderr.String()
			assert.NotContains(t, all, "whsec_", "json=%v", asJSON)
			assert.Empty(t, rest, "json=%v: stdout after it was ready", asJSON)
		}
	})
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err)
	return tm
}

// stripeCLI runs billing in process with env.
func stripeCLI(env map[string]string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, stdio{in: strings.NewReader(""), out: &out, err: &errb, getenv: func(k string) string { return env[k] }})
	return code, out.String(), errb.String()
}

// The stripe commands' mistakes are usage errors (exit 2); a server that
// is not there is a failure (exit 1) that says what to check.
func TestStripeUsage(t *testing.T) {
	fake := billingtest.New(billingtest.Options{})
	t.Cleanup(fake.Close)
	base := map[string]string{"STRIPE_API_BASE": fake.URL()}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no subcommand", nil, []string{"stripe"}, "a stripe command is needed"},
		{"no duration", base, []string{"stripe", "advance"}, "say how far"},
		{"two ways", base, []string{"stripe", "advance", "1d", "--to-next"}, "say how far"},
		{"bad duration", base, []string{"stripe", "advance", "31days"}, "not a duration"},
		{"backwards", base, []string{"stripe", "advance", "--", "-1d"}, "only moves forward"},
		{"bad --to", base, []string{"stripe", "advance", "--to", "next week"}, "--to"},
		{"live key", map[string]string{"STRIPE_API_BASE": fake.URL(), "STRIPE_SECRET_KEY": "sk_live_abcdefgh"},
			[]string{"stripe", "events"}, "live key"},
		{"bad base", nil, []string{"stripe", "clock", "--api-base", "localhost:12111"}, "want an http(s) URL"},
		{"limit", base, []string{"stripe", "events", "--limit", "0"}, "--limit 0"},
		{"secret file alone", nil, []string{"stripe", "serve", "--secret-file", "x"}, "without --webhook-url"},
		{"bad start", nil, []string{"stripe", "serve", "--start", "soon"}, "--start"},
		{"bad addr", nil, []string{"stripe", "serve", "--addr", "12111"}, "--addr"},
		{"bad webhook url", nil, []string{"stripe", "serve", "--webhook-url", "localhost:8080/hook"}, "--webhook-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := stripeCLI(tc.env, tc.args...)
			assert.Equal(t, exitUsage, code, "stdout %s\nstderr %s", out, errs)
			assert.Contains(t, errs, tc.want)
		})
	}

	// Nothing there: exit 1 and a hint; with --json, one JSON document.
	code, out, errs := stripeCLI(nil, "stripe", "clock", "--api-base", "http://127.0.0.1:9", "--json")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errs, "is 'billing stripe serve' running there?")
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
	assert.Equal(t, float64(exitFailure), doc["exit_code"])

	// Not a billingtest: the control route is missing, and it says so.
	stripeLike := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"type":"invalid_request_error","message":"Unrecognized request URL (POST: /_billingtest/clock/advance)."}}`)
	}))
	t.Cleanup(stripeLike.Close)
	code, _, errs = stripeCLI(nil, "stripe", "advance", "1d", "--api-base", stripeLike.URL)
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errs, "Unrecognized request URL")
	assert.Contains(t, errs, "the clock routes are billingtest's own")

	// An address in use: exit 1.
	code, _, errs = stripeCLI(nil, "stripe", "serve", "--addr", strings.TrimPrefix(fake.URL(), "http://"))
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errs, "address already in use")

	// The default key reaches the offline Stripe (no STRIPE_SECRET_KEY).
	code, out, errs = stripeCLI(base, "stripe", "advance", "2h", "--json")
	require.Equal(t, exitOK, code, errs)
	var adv billingtest.ClockAdvance
	require.NoError(t, json.Unmarshal([]byte(out), &adv), out)
	assert.InDelta(t, 7200, adv.Now-adv.From, 2)
	assert.NotNil(t, adv.Events, "events is a list, even empty")
}

func TestFormatDays(t *testing.T) {
	for d, want := range map[time.Duration]string{
		31 * 24 * time.Hour: "31d", 36 * time.Hour: "1d12h0m0s", 2 * time.Hour: "2h0m0s", 0: "0s",
	} {
		assert.Equal(t, want, formatDays(d))
	}
}
