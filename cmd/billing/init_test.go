package main

import (
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/plansfile"
)

// TestMain lets the test binary be the CLI: the pty test runs it with
// BILLING_TEST_RUN_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("BILLING_TEST_RUN_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// cli runs the CLI in process with no terminal and returns its exit code
// and output.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, stdio{in: strings.NewReader(""), out: &out, err: &errb, getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

func TestInitFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "billing.yaml")
	code, out, errs := cli(t, "init", "--out", path,
		"--plan", "Basic:900:usd:month",
		"--plan", "Pro:2900:USD:month:trial=14:key=pro_v2:price=price_pro",
		"--one-time", "Credits 100:500:eur:credits=100")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"Wrote " + path + " (3 plans)", "Plans: []billing.Plan{",
		`{PriceID: os.Getenv("BASIC_MONTHLY_PRICE_ID"), Tier: "basic"}`,
		`{PriceID: "price_pro", Tier: "pro"}, // "Pro": 29.00 USD a month, 14-day trial (lookup key pro_v2)`,
		`{PriceID: os.Getenv("CREDITS_100_PRICE_ID"), Kind: billing.OneTime, Credits: 100}`,
		"basic_monthly, credits_100"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour on a pipe")
	}

	plans, f, err := plansfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []billing.Plan{{PriceID: "price_pro", Tier: "pro"}}; !reflect.DeepEqual(plans, want) {
		t.Errorf("plans = %+v, want %+v", plans, want)
	}
	want := []plansfile.Spec{
		{Name: "Basic", LookupKey: "basic_monthly", Kind: "recurring", Amount: 900, Currency: "usd", Interval: "month", Tier: "basic"},
		{Name: "Pro", LookupKey: "pro_v2", PriceID: "price_pro", Kind: "recurring", Amount: 2900, Currency: "usd", Interval: "month", Tier: "pro", TrialDays: 14},
		{Name: "Credits 100", LookupKey: "credits_100", Kind: "one_time", Amount: 500, Currency: "eur", Credits: 100},
	}
	if !reflect.DeepEqual(f.Plans, want) {
		t.Errorf("specs = %+v\nwant %+v", f.Plans, want)
	}

	// Not replaced without --force (exit 1), replaced with it.
	before, _ := os.ReadFile(path)
	code, _, errs = cli(t, "init", "--out", path, "--plan", "Other:100:usd:year")
	if code != exitFailure || !strings.Contains(errs, "exists: --force replaces it") {
		t.Errorf("exit %d, %q", code, errs)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("replaced without --force")
	}
	code, _, errs = cli(t, "init", "--out", path, "--plan", "Other:100:usd:year", "--force")
	if code != exitOK {
		t.Fatalf("--force: exit %d: %s", code, errs)
	}
	if _, f, err := plansfile.Load(path); err != nil || len(f.Plans) != 1 || f.Plans[0].Interval != "year" {
		t.Errorf("after --force: %+v, %v", f, err)
	}
}

func TestInitJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plans.yaml")
	code, out, errs := cli(t, "--json", "init", "-o", path, "--plan", "Pro:2900:usd:year:tier=gold")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res initResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if res.File != path || len(res.Plans) != 1 || res.Plans[0].Tier != "gold" || res.Plans[0].LookupKey != "pro_yearly" ||
		!strings.HasPrefix(res.Snippet, "Plans: []billing.Plan{") {
		t.Errorf("result = %+v", res)
	}

	// An error is one JSON document too.
	code, out, _ = cli(t, "--json", "init", "-o", path, "--plan", "Pro:2900:usd:year")
	var e struct {
		Error    string `json:"error"`
		ExitCode int    `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(out), &e); err != nil || code != exitFailure || e.ExitCode != exitFailure || !strings.Contains(e.Error, "exists") {
		t.Errorf("exit %d, %q (%v)", code, out, err)
	}
}

// TestExitCodes: usage mistakes exit 2 and say what is wrong; nothing is
// written.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "billing.yaml")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{}, exitUsage, "a command is needed"},
		{[]string{"bogus"}, exitUsage, `unknown command "bogus"`},
		{[]string{"init", "--bogus"}, exitUsage, "unknown flag: --bogus"},
		{[]string{"init", "extra"}, exitUsage, "unknown command"},
		{[]string{"init", "-o", out}, exitUsage, "no plans: give --plan or --one-time"},
		{[]string{"init", "-o", out, "--plan", "Pro:2900:usd"}, exitUsage, "want NAME:AMOUNT:CURRENCY:INTERVAL"},
		{[]string{"init", "-o", out, "--plan", "Pro:29.00:usd:month"}, exitUsage, `amount "29.00": want a whole number`},
		{[]string{"init", "-o", out, "--plan", "Pro:2900:usd:month:credits=5"}, exitUsage, `unknown key "credits"`},
		{[]string{"init", "-o", out, "--plan", "Pro:2900:usd:month:trial=x"}, exitUsage, "trial=x: want a number of days"},
		{[]string{"init", "-o", out, "--plan", "Pro:2900:usd:fortnight"}, exitUsage, `--plan "Pro:2900:usd:fortnight": interval: value must be one of`},
		{[]string{"init", "-o", out, "--plan", "Pro:2900:dollars:month"}, exitUsage, `--plan "Pro:2900:dollars:month": currency:`},
		{[]string{"init", "-o", out, "--plan", "Pro:2900:usd:month", "--one-time", "Pro:500:usd:key=pro_monthly"}, exitUsage,
			`--one-time "Pro:500:usd:key=pro_monthly": lookup_key: "pro_monthly" is also plans[0]'s`},
		{[]string{"init", "-o", filepath.Join(dir, "missing", "billing.yaml"), "--plan", "Pro:2900:usd:month"}, exitFailure, "no such file or directory"},
		{[]string{"help"}, exitOK, ""},
		{[]string{"init", "--help"}, exitOK, ""},
	} {
		code, _, errs := cli(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("billing %q: exit %d, %q; want %d, %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a file was written: %v", err)
	}
}

func TestHelpEverywhere(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"init", "--help"}, {"schema", "--help"}} {
		code, out, _ := cli(t, args...)
		if code != exitOK || !strings.Contains(out, "Usage:") || !strings.Contains(out, "--json") {
			t.Errorf("%q: exit %d:\n%s", args, code, out)
		}
	}
}

func TestSchemaCommand(t *testing.T) {
	code, out, _ := cli(t, "schema")
	if code != exitOK || out != string(plansfile.Schema()) {
		t.Errorf("exit %d, %d bytes", code, len(out))
	}
}

// TestSnippetCompiles builds the printed snippet, in a file of this
// package laid over the source tree (go build -overlay), against the real
// billing package; and parses it as Go without the toolchain.
func TestSnippetCompiles(t *testing.T) {
	f := &plansfile.File{Version: 1, Plans: []plansfile.Spec{
		{Name: "Pro \"quoted\"\nname", LookupKey: "pro.monthly-1", Kind: "recurring", Amount: 2900, Currency: "usd", Interval: "month", Tier: "pro"},
		{Name: "Gold", LookupKey: "gold", PriceID: "price_gold", Kind: "recurring", Amount: 9900, Currency: "jpy", Interval: "year", Tier: "gold", TrialDays: 7},
		{Name: "Pack", LookupKey: "pack", Kind: "one_time", Amount: 1234, Currency: "kwd", Credits: 3},
		{Name: "Lifetime", LookupKey: "life", PriceID: "price_life", Kind: "one_time", Amount: 1, Currency: "usd", Tier: "gold"},
	}}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	src := "package main\n\nimport (\n\t\"os\"\n\n\t\"github.com/gobilling/billing\"\n)\n\nvar _ = billing.Config{\n" + snippet(f) + "}\n\nvar _ = os.Getenv\n"
	if _, err := parser.ParseFile(token.NewFileSet(), "snippet.go", src, 0); err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	if !strings.Contains(src, "1.234 KWD once, 3 credits") || !strings.Contains(src, "9900 JPY a year, 7-day trial") {
		t.Errorf("amounts:\n%s", src)
	}

	gobin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no go command under CI")
		}
		t.Skip("no go command: the snippet was only parsed")
	}
	wd, _ := os.Getwd()
	dir := t.TempDir()
	file := filepath.Join(dir, "snippet.go")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(wd, "zz_snippet_check.go"): file}})
	if err := os.WriteFile(filepath.Join(dir, "overlay.json"), overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gobin, "build", "-overlay", filepath.Join(dir, "overlay.json"), "-o", filepath.Join(dir, "bin"), ".")
	cmd.Dir = wd
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build with the snippet: %v\n%s\n%s", err, out, src)
	}
}
