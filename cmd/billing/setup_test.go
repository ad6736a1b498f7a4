package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/plansfile"
)

const hookURL = "https://app.example/stripe/webhook"

// setupCLI runs `billing setup args...` in process, as run does, with
// STRIPE_SECRET_KEY set. (Until main.go registers setupCmd, the helper adds
// it to the root command.)
func setupCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	io := stdio{in: strings.NewReader(""), out: &out, err: &errb, getenv: func(k string) string { return env[k] }}
	a := &app{io: io}
	root := a.rootCmd()
	if c, _, err := root.Find([]string{"setup"}); err != nil || c == root {
		root.AddCommand(a.setupCmd())
	}
	root.SetArgs(append([]string{"setup"}, args...))
	root.SetIn(io.in)
	root.SetOut(io.out)
	root.SetErr(io.err)
	started := false
	root.PersistentPreRun = func(*cobra.Command, []string) { started = true }
	err := root.Execute()
	if err == nil {
		return exitOK, out.String(), errb.String()
	}
	code = exitFailure
	var ue usageError
	if errors.As(err, &ue) || !started {
		code = exitUsage
	}
	errb.WriteString("billing: " + err.Error() + "\n")
	if a.json {
		_ = json.NewEncoder(&out).Encode(map[string]any{"error": err.Error(), "exit_code": code})
	}
	return code, out.String(), errb.String()
}

var testEnv = map[string]string{"STRIPE_SECRET_KEY": "sk_test_setup"}

// writePlans writes a plans file with a monthly and a yearly Pro, a Basic
// and a one-time pack.
func writePlans(t *testing.T, proAmount int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "billing.yaml")
	f := &plansfile.File{Version: 1, Checkout: "hosted", Plans: []plansfile.Spec{
		{Name: "Basic", LookupKey: "basic_monthly", Kind: "recurring", Amount: 900, Currency: "usd", Interval: "month", Tier: "basic"},
		{Name: "Pro", LookupKey: "pro_monthly", Kind: "recurring", Amount: proAmount, Currency: "usd", Interval: "month", Tier: "pro"},
		{Name: "Pro", LookupKey: "pro_yearly", Kind: "recurring", Amount: 29000, Currency: "usd", Interval: "year", Tier: "pro"},
		{Name: "Credits 100", LookupKey: "credits_100", Kind: "one_time", Amount: 500, Currency: "usd", Credits: 100},
	}}
	data, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// setAmount changes a plan's amount in the file, keeping the price IDs.
func setAmount(t *testing.T, path, key string, amount int64) {
	t.Helper()
	_, f, err := plansfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range f.Plans {
		if f.Plans[i].LookupKey == key {
			f.Plans[i].Amount = amount
		}
	}
	data, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func posts(fake *billingtest.Stripe) int {
	n := 0
	for k, v := range fake.Calls() {
		if strings.HasPrefix(k, "POST ") || strings.HasPrefix(k, "DELETE ") {
			n += v
		}
	}
	return n
}

func decodeResult(t *testing.T, out string) setupResult {
	t.Helper()
	var r setupResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, out)
	}
	return r
}

func kinds(r setupResult) []string {
	var ks []string
	for _, a := range r.Actions {
		ks = append(ks, a.Action)
	}
	return ks
}

func client(fake *billingtest.Stripe) *stripe.Client {
	return stripe.NewClient("sk_test_x", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL: stripe.String(fake.URL()), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}})))
}

func TestSetupFromEmptyThenNothingToDo(t *testing.T) {
	fake := billingtest.New(billingtest.Options{})
	defer fake.Close()
	path := writePlans(t, 2900)
	before, _ := os.ReadFile(path)

	// --dry-run: the plan, no write, the file untouched.
	code, out, errs := setupCLI(t, testEnv, "--api-base", fake.URL(), "-f", path, "--webhook-url", hookURL, "--dry-run", "--json")
	if code != exitOK {
		t.Fatalf("dry run: exit %d: %s", code, errs)
	}
	dry := decodeResult(t, out)
	want := []string{actCreatePrice, actCreatePrice, actCreatePrice, actCreatePrice, actWriteFile, actCreateEndpoint, actCreatePortalConf}
	if !slices.Equal(kinds(dry), want) || !dry.DryRun || dry.NothingToDo {
		t.Errorf("dry run actions = %v, want %v", kinds(dry), want)
	}
	if n := posts(fake); n != 0 {
		t.Errorf("dry run made %d writes: %v", n, fake.Calls())
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("dry run changed the plans file")
	}

	// The run.
	secretFile := filepath.Join(t.TempDir(), "whsec")
	code, out, errs = setupCLI(t, testEnv, "--api-base", fake.URL(), "-f", path, "--webhook-url", hookURL,
		"--secret-file", secretFile, "--json")
	if code != exitOK {
		t.Fatalf("setup: exit %d: %s\n%s", code, errs, out)
	}
	res := decodeResult(t, out)
	if !slices.Equal(kinds(res), want) {
		t.Errorf("actions = %v, want %v", kinds(res), want)
	}
	for _, a := range res.Actions {
		if !a.Done {
			t.Errorf("not done: %+v", a)
		}
	}
	// The file now names the prices: plansfile.Load returns billing.Plans.
	plans, f, err := plansfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) != 4 || len(f.Missing()) != 0 {
		t.Fatalf("plans = %+v, missing %v", plans, f.Missing())
	}
	sc := client(fake)
	ctx := context.Background()
	for _, s := range f.Plans {
		p, err := sc.V1Prices.Retrieve(ctx, s.PriceID, &stripe.PriceRetrieveParams{})
		if err != nil {
			t.Fatal(err)
		}
		if p.LookupKey != s.LookupKey || p.UnitAmount != s.Amount || !p.Active {
			t.Errorf("price %s: %+v", s.LookupKey, p)
		}
		if res.Prices[s.LookupKey] != s.PriceID {
			t.Errorf("result's %s = %q, file's %q", s.LookupKey, res.Prices[s.LookupKey], s.PriceID)
		}
	}
	// One product per name: Pro's two prices share one.
	pm, _ := sc.V1Prices.Retrieve(ctx, f.Plans[1].PriceID, nil)
	py, _ := sc.V1Prices.Retrieve(ctx, f.Plans[2].PriceID, nil)
	if pm.Product.ID != py.Product.ID {
		t.Errorf("Pro's prices on two products: %s, %s", pm.Product.ID, py.Product.ID)
	}
	// The endpoint: pinned, exactly billing's event types.
	var eps []*stripe.WebhookEndpoint
	for ep, err := range sc.V1WebhookEndpoints.List(ctx, &stripe.WebhookEndpointListParams{}) {
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	if len(eps) != 1 || eps[0].URL != hookURL || eps[0].APIVersion != pinnedVersion ||
		!slices.Equal(slices.Sorted(slices.Values(eps[0].EnabledEvents)), appliedEventTypes) {
		t.Fatalf("endpoints = %+v", eps)
	}
	// The portal configuration.
	conf, err := sc.V1BillingPortalConfigurations.Retrieve(ctx, res.PortalConfiguration, nil)
	if err != nil {
		t.Fatal(err)
	}
	ft := conf.Features
	if !ft.InvoiceHistory.Enabled || !ft.PaymentMethodUpdate.Enabled || !ft.SubscriptionCancel.Enabled ||
		ft.SubscriptionCancel.Mode != "at_period_end" || !ft.SubscriptionUpdate.Enabled ||
		len(ft.SubscriptionUpdate.Products) != 2 || len(ft.SubscriptionUpdate.Products[1].Prices) != 2 {
		t.Errorf("portal features = %+v", ft)
	}

	// The secret: in the file, 0600, and nowhere in the output.
	st, err := os.Stat(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v", st.Mode().Perm())
	}
	secret, _ := os.ReadFile(secretFile)
	if !strings.HasPrefix(string(secret), "whsec_") {
		t.Errorf("secret file holds %q", secret)
	}
	if s := strings.TrimSpace(string(secret)); strings.Contains(out, s) || strings.Contains(errs, s) {
		t.Error("the secret is in the output")
	}
	if res.SecretFile != secretFile {
		t.Errorf("secret_file = %q", res.SecretFile)
	}

	// Again: nothing to do, no write, the file unchanged.
	fake.ResetCalls()
	written, _ := os.ReadFile(path)
	code, out, errs = setupCLI(t, testEnv, "--api-base", fake.URL(), "-f", path, "--webhook-url", hookURL)
	if code != exitOK {
		t.Fatalf("second run: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "Nothing to do") {
		t.Errorf("second run says:\n%s", out)
	}
	if n := posts(fake); n != 0 {
		t.Errorf("second run made %d writes: %v", n, fake.Calls())
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(written, after) {
		t.Error("second run changed the plans file")
	}
}

func TestSetupAmountChange(t *testing.T) {
	fake := billingtest.New(billingtest.Options{})
	defer fake.Close()
	path := writePlans(t, 2900)
	if code, _, errs := setupCLI(t, testEnv, "--api-base", fake.URL(), "-f", path); code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	_, f, _ := plansfile.Load(path)
	old := f.Plans[1].PriceID

	setAmount(t, path, "pro_monthly", 3900)
	fake.ResetCalls()
	code, out, errs := setupCLI(t, testEnv, "--api-base", fake.URL(), "-f", path, "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	res := decodeResult(t, out)
	want := []string{actCreatePrice, actArchivePrice, actWriteFile, actUpdatePortalConf}
	if !slices.Equal(kinds(res), want) {
		t.Fatalf("actions = %v, want %v\n%s", kinds(res), want, out)
	}
	_, f, _ = plansfile.Load(path)
	nw := f.Plans[1].PriceID
	if nw == old || nw != res.Actions[0].ID {
		t.Fatalf("file's price %s, old %s, made %s", nw, old, res.Actions[0].ID)
	}
	sc := client(fake)
	ctx := context.Background()
	op, _ := sc.V1Prices.Retrieve(ctx, old, nil)
	np, _ := sc.V1Prices.Retrieve(ctx, nw, nil)
	if op.Active || op.LookupKey != "" || !np.Active || np.LookupKey != "pro_monthly" || np.UnitAmount != 3900 ||
		np.Product.ID != op.Product.ID {
		t.Errorf("old %+v\nnew %+v", op, np)
	}
	if fake.Calls()["POST /v1/prices"] != 1 {
		t.Errorf("calls: %v", fake.Calls())
	}
	// Nothing deleted; and settled: a third run does nothing.
	fake.ResetCalls()
	if code, out, _ := setupCLI(t, testEnv, "--api-base", fake.URL(), "-f", path); code != exitOK || !strings.Contains(out, "Nothing to do") || posts(fake) != 0 {
		t.Errorf("third run: exit %d, %d writes:\n%s", code, posts(fake), out)
	}
}

func TestSetupEndpointAtAnotherVersion(t *testing.T) {
	fake := billingtest.New(billingtest.Options{})
	defer fake.Close()
	sc := client(fake)
	old, err := sc.V1WebhookEndpoints.Create(context.Background(), &stripe.WebhookEndpointCreateParams{
		URL: stripe.String(hookURL), APIVersion: stripe.String("2025-03-31.basil"),
		EnabledEvents: []*string{stripe.String("invoice.paid")}})
	if err != nil {
		t.Fatal(err)
	}
	path := writePlans(t, 2900)
	fake.ResetCalls()
	code, out, errs := setupCLI(t, testEnv, "--api-base", fake.URL(), "-f", path, "--webhook-url", hookURL, "--json")
	if code != exitFailure {
		t.Fatalf("exit %d, want 1: %s", code, errs)
	}
	res := decodeResult(t, out) // one JSON document: the result
	var problem *setupAction
	for i, a := range res.Actions {
		if a.Action == actEndpointVersion {
			problem = &res.Actions[i]
		}
		if a.Action == actCreateEndpoint || a.Action == actUpdateEndpoint {
			t.Errorf("endpoint touched: %+v", a)
		}
	}
	if problem == nil || !problem.Problem || problem.Target != old.ID || problem.Fix == "" ||
		!strings.Contains(problem.Detail, "2025-03-31.basil") {
		t.Fatalf("problem = %+v", problem)
	}
	if fake.Calls()["POST /v1/webhook_endpoints"] != 0 || fake.Calls()["POST /v1/webhook_endpoints/{id}"] != 0 {
		t.Errorf("calls: %v", fake.Calls())
	}
	if !strings.Contains(errs, "problem") {
		t.Errorf("stderr: %s", errs)
	}
	// The rest was done all the same.
	if plans, _, _ := plansfile.Load(path); len(plans) != 4 {
		t.Errorf("plans: %+v", plans)
	}
}

// Without a terminal and without --secret-file, the secret is withheld
// (and the output says how to get it); never in JSON or on stderr.
func TestSetupSecretNotOnAPipe(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		fake := billingtest.New(billingtest.Options{})
		path := writePlans(t, 2900)
		args := []string{"--api-base", fake.URL(), "-f", path, "--webhook-url", hookURL}
		if asJSON {
			args = append(args, "--json")
		}
		code, out, errs := setupCLI(t, testEnv, args...)
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if strings.Contains(out, "whsec_") || strings.Contains(errs, "whsec_") {
			t.Errorf("json=%v: a signing secret in the output:\n%s\n%s", asJSON, out, errs)
		}
		if asJSON {
			if res := decodeResult(t, out); !res.SecretWithheld || res.WebhookEndpoint == "" {
				t.Errorf("result: %+v", res)
			}
		} else if !strings.Contains(out, "not shown: stdout is not a terminal") || !strings.Contains(out, "--secret-file") {
			t.Errorf("no word on the secret:\n%s", out)
		}
		fake.Close()
	}
}

func TestSetupKeys(t *testing.T) {
	path := writePlans(t, 2900)
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{}, nil, "STRIPE_SECRET_KEY"},
		{map[string]string{"STRIPE_SECRET_KEY": "sk_live_x"}, nil, "--live"},
		{map[string]string{"STRIPE_SECRET_KEY": "pk_test_x"}, nil, "publishable"},
		{map[string]string{"STRIPE_SECRET_KEY": "sk_test_x"}, []string{"--live"}, "test key"},
		{map[string]string{"STRIPE_SECRET_KEY": "sk_live_x"}, []string{"--live", "--webhook-url", "http://app.example/hook"}, "https"},
	} {
		code, _, errs := setupCLI(t, c.env, append([]string{"-f", path, "--api-base", "http://127.0.0.1:1"}, c.args...)...)
		if code != exitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("%v %v: exit %d, %q", c.env, c.args, code, errs)
		}
		if strings.Contains(errs, "sk_live_x") || strings.Contains(errs, "sk_test_x") {
			t.Errorf("the key echoed: %s", errs)
		}
	}
	// --key-file works where the environment is empty.
	fake := billingtest.New(billingtest.Options{})
	defer fake.Close()
	kf := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(kf, []byte("sk_test_fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := setupCLI(t, map[string]string{}, "-f", path, "--api-base", fake.URL(), "--key-file", kf, "--dry-run"); code != exitOK {
		t.Errorf("--key-file: exit %d: %s", code, errs)
	}
}
