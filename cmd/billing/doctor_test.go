package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/plansfile"
)

// doctorCLI runs `billing doctor args...` through run, as main does.
func doctorCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"doctor"}, args...), stdio{in: strings.NewReader(""), out: &out, err: &errb,
		getenv: func(k string) string { return env[k] }})
	return code, out.String(), errb.String()
}

func decodeDoctor(t *testing.T, out string) doctorReport {
	t.Helper()
	var r doctorReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, out)
	}
	return r
}

// setUpAccount makes a correct account with billing setup and returns the
// fake, the plans file and its plans.
func setUpAccount(t *testing.T, opts billingtest.Options) (*billingtest.Stripe, string, *plansfile.File) {
	t.Helper()
	fake := billingtest.New(opts)
	t.Cleanup(fake.Close)
	path := writePlans(t, 2900)
	if code, out, errs := setupCLI(t, testEnv, "--api-base", fake.URL(), "-f", path, "--webhook-url", hookURL); code != exitOK {
		t.Fatalf("setup: exit %d: %s\n%s", code, errs, out)
	}
	_, f, err := plansfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return fake, path, f
}

func findingsOf(r doctorReport, code string) []billing.Finding {
	var fs []billing.Finding
	for _, f := range r.Findings {
		if f.Code == code {
			fs = append(fs, f)
		}
	}
	return fs
}

func TestDoctorCorrectAccount(t *testing.T) {
	fake, path, _ := setUpAccount(t, billingtest.Options{})
	health := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok","ok":true,"problems":[]}`))
	}))
	defer health.Close()
	fake.ResetCalls()
	code, out, errs := doctorCLI(t, testEnv, "--api-base", fake.URL(), "-f", path, "--webhook-url", hookURL,
		"--health-url", health.URL, "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%s", code, errs, out)
	}
	r := decodeDoctor(t, out)
	if len(r.Findings) != 0 || !r.OK || !r.KeyOK || len(r.Plans) != 4 || len(r.Endpoints) != 1 || r.PortalConfiguration == "" {
		t.Fatalf("report: %+v", r)
	}
	if n := posts(fake); n != 0 {
		t.Errorf("doctor wrote: %v", fake.Calls())
	}
	code, out, _ = doctorCLI(t, testEnv, "--api-base", fake.URL(), "-f", path, "--webhook-url", hookURL)
	if code != exitOK || !strings.Contains(out, "No findings") || strings.Contains(out, "\x1b[") {
		t.Errorf("exit %d:\n%q", code, out)
	}
}

// Accounts broken on purpose, one per check: each is found with its fix.
func TestDoctorFindsWhatIsBroken(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		args    []string
		breakIt func(t *testing.T, fake *billingtest.Stripe, path string, f *plansfile.File) []string
		code    string
		exit    int
		want    []string // in the problem or the fix
	}{
		{name: "price archived", code: "price_inactive", exit: exitFailure, want: []string{"archived", "active=true"},
			breakIt: func(t *testing.T, fake *billingtest.Stripe, _ string, f *plansfile.File) []string {
				if _, err := client(fake).V1Prices.Update(ctx, f.Plans[0].PriceID, &stripe.PriceUpdateParams{Active: stripe.Bool(false)}); err != nil {
					t.Fatal(err)
				}
				return nil
			}},
		{name: "missing endpoint", code: "endpoint_missing", exit: exitFailure, want: []string{"stripe webhook_endpoints create", pinnedVersion},
			breakIt: func(*testing.T, *billingtest.Stripe, string, *plansfile.File) []string {
				return []string{"--webhook-url", "https://app.example/other/webhook"}
			}},
		{name: "endpoint without an event type", code: "endpoint_events", exit: exitFailure, want: []string{"invoice.payment_failed", "webhook_endpoints update"},
			breakIt: func(t *testing.T, fake *billingtest.Stripe, _ string, _ *plansfile.File) []string {
				ep := onlyEndpoint(t, fake)
				up := &stripe.WebhookEndpointUpdateParams{}
				for _, ty := range appliedEventTypes {
					if ty != "invoice.payment_failed" {
						up.EnabledEvents = append(up.EnabledEvents, stripe.String(ty))
					}
				}
				if _, err := client(fake).V1WebhookEndpoints.Update(ctx, ep.ID, up); err != nil {
					t.Fatal(err)
				}
				return nil
			}},
		{name: "endpoint disabled", code: "endpoint_disabled", exit: exitFailure, want: []string{"disabled", "disabled=false"},
			breakIt: func(t *testing.T, fake *billingtest.Stripe, _ string, _ *plansfile.File) []string {
				ep := onlyEndpoint(t, fake)
				if _, err := client(fake).V1WebhookEndpoints.Update(ctx, ep.ID, &stripe.WebhookEndpointUpdateParams{Disabled: stripe.Bool(true)}); err != nil {
					t.Fatal(err)
				}
				return nil
			}},
		{name: "portal without cancellation", code: codePortalFeature, exit: exitFailure, want: []string{"cancel", "billing setup"},
			breakIt: func(t *testing.T, fake *billingtest.Stripe, _ string, _ *plansfile.File) []string {
				sc := client(fake)
				var id string
				for c, err := range sc.V1BillingPortalConfigurations.List(ctx, &stripe.BillingPortalConfigurationListParams{}) {
					if err != nil {
						t.Fatal(err)
					}
					if c.Metadata[managedByKey] == managedByValue {
						id = c.ID
					}
				}
				if _, err := sc.V1BillingPortalConfigurations.Update(ctx, id, &stripe.BillingPortalConfigurationUpdateParams{
					Features: &stripe.BillingPortalConfigurationUpdateFeaturesParams{
						SubscriptionCancel: &stripe.BillingPortalConfigurationUpdateFeaturesSubscriptionCancelParams{Enabled: stripe.Bool(false)}}}); err != nil {
					t.Fatal(err)
				}
				return nil
			}},
		{name: "checkout session without billing's linkage", code: codeCheckoutUnlinked, exit: exitOK, want: []string{"client_reference_id", "Billing.Checkout"},
			breakIt: func(t *testing.T, fake *billingtest.Stripe, _ string, f *plansfile.File) []string {
				sc := client(fake)
				// One made by billing's way (linked), one made elsewhere.
				for _, ref := range []string{"user_1", ""} {
					p := &stripe.CheckoutSessionCreateParams{Mode: stripe.String("subscription"),
						SuccessURL: stripe.String("https://app.example/ok"),
						LineItems:  []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String(f.Plans[0].PriceID), Quantity: stripe.Int64(1)}}}
					if ref != "" {
						p.ClientReferenceID = stripe.String(ref)
						p.Metadata = map[string]string{"billing_user_id": ref}
					}
					if _, err := sc.V1CheckoutSessions.Create(ctx, p); err != nil {
						t.Fatal(err)
					}
				}
				return nil
			}},
		{name: "health URL answering 503", code: codeHealthFailed, exit: exitFailure, want: []string{"503", "store unreachable"},
			breakIt: func(t *testing.T, _ *billingtest.Stripe, _ string, _ *plansfile.File) []string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusServiceUnavailable)
					_, _ = w.Write([]byte(`{"status":"down","ok":false,"store_ok":false,"problems":["store unreachable"]}`))
				}))
				t.Cleanup(srv.Close)
				return []string{"--health-url", srv.URL}
			}},
		{name: "health URL degraded", code: codeHealthDegraded, exit: exitOK, want: []string{"degraded", "3 parked"},
			breakIt: func(t *testing.T, _ *billingtest.Stripe, _ string, _ *plansfile.File) []string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					_, _ = w.Write([]byte(`{"status":"degraded","ok":false,"store_ok":true,"problems":["3 parked events"]}`))
				}))
				t.Cleanup(srv.Close)
				return []string{"--health-url", srv.URL}
			}},
		{name: "plan without a price ID", code: codePlanUnset, exit: exitFailure, want: []string{"billing setup"},
			breakIt: func(t *testing.T, _ *billingtest.Stripe, path string, f *plansfile.File) []string {
				nf := *f
				nf.Plans = slices.Clone(f.Plans)
				nf.Plans[3].PriceID = ""
				data, err := nf.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
				return nil
			}},
		{name: "file's amount changed", code: codePriceMismatch, exit: exitFailure, want: []string{"3900", "billing setup"},
			breakIt: func(t *testing.T, _ *billingtest.Stripe, path string, _ *plansfile.File) []string {
				setAmount(t, path, "pro_monthly", 3900)
				return nil
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake, path, f := setUpAccount(t, billingtest.Options{})
			// A later flag wins: what breakIt returns may replace --webhook-url.
			human := append([]string{"--api-base", fake.URL(), "-f", path, "--webhook-url", hookURL}, c.breakIt(t, fake, path, f)...)
			args := append(slices.Clone(human), "--json")
			code, out, errs := doctorCLI(t, testEnv, args...)
			if code != c.exit {
				t.Errorf("exit %d, want %d: %s", code, c.exit, errs)
			}
			r := decodeDoctor(t, out)
			fs := findingsOf(r, c.code)
			if len(fs) == 0 {
				t.Fatalf("no %s finding: %+v", c.code, r.Findings)
			}
			text := fs[0].Problem + " " + fs[0].Fix
			for _, w := range c.want {
				if !strings.Contains(text, w) {
					t.Errorf("%s finding lacks %q: %+v", c.code, w, fs[0])
				}
			}
			if len(fs) != len(r.Findings) {
				t.Errorf("other findings beside %s: %+v", c.code, r.Findings)
			}
			if fs[0].Fix == "" {
				t.Errorf("no fix: %+v", fs[0])
			}
			if r.OK != (c.exit == exitOK) {
				t.Errorf("ok = %v", r.OK)
			}
			// The same, for people: problem and fix printed.
			_, text2, _ := doctorCLI(t, testEnv, human...)
			if !strings.Contains(text2, c.code) || !strings.Contains(text2, "fix:") || !strings.Contains(text2, fs[0].Problem) {
				t.Errorf("human output:\n%s", text2)
			}
		})
	}
}

func onlyEndpoint(t *testing.T, fake *billingtest.Stripe) *stripe.WebhookEndpoint {
	t.Helper()
	var eps []*stripe.WebhookEndpoint
	for ep, err := range client(fake).V1WebhookEndpoints.List(context.Background(), &stripe.WebhookEndpointListParams{}) {
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	if len(eps) != 1 {
		t.Fatalf("endpoints: %+v", eps)
	}
	return eps[0]
}

// Events older than an hour that an endpoint has not acknowledged are
// reported (a warning: a heuristic). billingtest renders every event with
// pending_webhooks 1 and filters delivery_success=false by what its
// endpoints acknowledged; the fake's clock starts two hours back so that
// its events are old.
func TestDoctorPendingEvents(t *testing.T) {
	fake, path, f := setUpAccount(t, billingtest.Options{Start: time.Now().Add(-2 * time.Hour)})
	fake.AddEndpoint(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}), billingtest.EndpointOptions{URL: "https://other.example/hook", EnabledEvents: []string{"checkout.session.completed"}})
	sc := client(fake)
	s, err := sc.V1CheckoutSessions.Create(context.Background(), &stripe.CheckoutSessionCreateParams{Mode: stripe.String("subscription"),
		SuccessURL: stripe.String("https://app.example/ok"), ClientReferenceID: stripe.String("user_1"),
		Metadata:  map[string]string{"billing_user_id": "user_1"},
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String(f.Plans[0].PriceID), Quantity: stripe.Int64(1)}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fake.Pay(s.ID, billingtest.CardOK); err != nil {
		t.Fatal(err)
	}
	code, out, errs := doctorCLI(t, testEnv, "--api-base", fake.URL(), "-f", path, "--webhook-url", hookURL, "--json")
	if code != exitOK {
		t.Errorf("exit %d (a warning only): %s", code, errs)
	}
	r := decodeDoctor(t, out)
	fs := findingsOf(r, codeEventsPending)
	if len(fs) != 1 || r.PendingEvents == 0 || !strings.Contains(fs[0].Problem, "heuristic") ||
		!strings.Contains(fs[0].Problem, "checkout.session.completed") || !strings.Contains(fs[0].Fix, "Event deliveries") {
		t.Fatalf("findings: %+v", r.Findings)
	}
}

func TestDoctorUsage(t *testing.T) {
	path := writePlans(t, 2900)
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{}, nil, "STRIPE_SECRET_KEY"},
		{map[string]string{"STRIPE_SECRET_KEY": "sk_live_x"}, nil, "--live"},
		{testEnv, []string{"--webhook-url", "app.example/hook"}, "http(s)"},
		{testEnv, []string{"--health-url", "localhost:8080"}, "http(s)"},
		{testEnv, []string{"--sessions", "-1"}, "--sessions"},
		{testEnv, []string{"--key", "sk_test_x"}, "unknown flag"},
	} {
		code, _, errs := doctorCLI(t, c.env, append([]string{"-f", path, "--api-base", "http://127.0.0.1:1"}, c.args...)...)
		if code != exitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("%v %v: exit %d, %q", c.env, c.args, code, errs)
		}
		if strings.Contains(errs, "sk_live_x") {
			t.Errorf("the key echoed: %s", errs)
		}
	}
	// Before billing setup, no plan has a price: each is a finding whose
	// fix is billing setup.
	fake := billingtest.New(billingtest.Options{})
	defer fake.Close()
	code, out, _ := doctorCLI(t, testEnv, "-f", path, "--api-base", fake.URL(), "--json")
	r := decodeDoctor(t, out)
	if code != exitFailure || len(findingsOf(r, codePlanUnset)) != 4 || len(findingsOf(r, codeSelfCheckSkipped)) != 1 {
		t.Errorf("exit %d: %+v", code, r.Findings)
	}
}
