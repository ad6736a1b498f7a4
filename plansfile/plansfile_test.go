package plansfile_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/plansfile"
)

const good = `# yaml-language-server: $schema=x
version: 1
checkout: hosted
plans:
  - name: Basic
    lookup_key: basic_monthly
    price_id: price_basic
    kind: recurring
    amount: 900
    currency: usd
    interval: month
    tier: basic
  - name: Pro
    lookup_key: pro_monthly
    kind: recurring
    amount: 2900
    currency: usd
    interval: month
    tier: pro
    trial_days: 14
  - name: 100 credits
    lookup_key: credits_100
    price_id: price_credits
    kind: one_time
    amount: 500
    currency: eur
    credits: 100
`

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "billing.yaml")
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	plans, f, err := plansfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []billing.Plan{
		{PriceID: "price_basic", Tier: "basic"},
		{PriceID: "price_credits", Kind: billing.OneTime, Credits: 100},
	}
	if !reflect.DeepEqual(plans, want) {
		t.Errorf("plans = %+v, want %+v", plans, want)
	}
	if len(f.Plans) != 3 || f.Plans[1].TrialDays != 14 || f.Plans[2].Currency != "eur" {
		t.Errorf("specs = %+v", f.Plans)
	}
	if got := f.Missing(); !reflect.DeepEqual(got, []string{"pro_monthly"}) {
		t.Errorf("Missing = %v", got)
	}

	// Written again, it reads back the same.
	data, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "# yaml-language-server: $schema="+plansfile.SchemaURL+"\n") {
		t.Errorf("no modeline:\n%s", data)
	}
	g, err := plansfile.Parse("again", data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, g) {
		t.Errorf("round trip: %+v, want %+v", g, f)
	}
}

func TestSchemaIsJSON(t *testing.T) {
	var v map[string]any
	if err := json.Unmarshal(plansfile.Schema(), &v); err != nil {
		t.Fatal(err)
	}
	if v["$id"] != plansfile.SchemaURL {
		t.Errorf("$id = %v, want %s", v["$id"], plansfile.SchemaURL)
	}
	// The committed file is the embedded one.
	disk, err := os.ReadFile("plans.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(disk) != string(plansfile.Schema()) {
		t.Error("Schema() differs from plans.schema.json")
	}
}

// TestRejects: each broken file is refused with a message naming the
// field, its line, and what is wrong.
func TestRejects(t *testing.T) {
	plan := func(extra string) string {
		return "version: 1\nplans:\n  - name: Pro\n    lookup_key: pro\n    kind: recurring\n    amount: 2900\n    currency: usd\n    interval: month\n    tier: pro\n" + extra
	}
	oneTime := func(extra string) string {
		return "version: 1\nplans:\n  - name: Credits\n    lookup_key: credits\n    kind: one_time\n    amount: 500\n    currency: usd\n" + extra
	}
	for _, tc := range []struct {
		name, file string
		want       []string // substrings of the error
	}{
		{"empty", "", []string{"empty"}},
		{"no plans", "version: 1\nplans: []\n", []string{"line 2: plans: minItems"}},
		{"wrong version", strings.Replace(plan(""), "version: 1", "version: 2", 1), []string{"line 1: version:", "1"}},
		{"unknown field", plan("    colour: red\n"), []string{"line 3: plans[0]:", "colour"}},
		{"negative amount", strings.Replace(plan(""), "2900", "-5", 1), []string{"line 6: plans[0].amount:", "minimum"}},
		{"fractional amount", strings.Replace(plan(""), "2900", "29.00", 1), []string{"line 6: plans[0].amount: 29.00 is not a whole number"}},
		{"upper-case currency", strings.Replace(plan(""), "usd", "USD", 1), []string{"line 7: plans[0].currency:"}},
		{"bad kind", strings.Replace(plan(""), "recurring", "monthly", 1), []string{"line 5: plans[0].kind:", "recurring", "one_time"}},
		{"bad interval", strings.Replace(plan(""), "month", "fortnight", 1), []string{"line 8: plans[0].interval:"}},
		{"recurring without tier", strings.Replace(plan(""), "    tier: pro\n", "", 1), []string{"plans[0]:", "tier", "for a recurring plan"}},
		{"recurring with credits", plan("    credits: 5\n"), []string{"line 10: plans[0].credits:", "for a recurring plan"}},
		{"one-time with interval", oneTime("    interval: month\n"), []string{"line 8: plans[0].interval: not allowed (for a one_time plan)"}},
		{"one-time with trial", oneTime("    trial_days: 7\n"), []string{"line 8: plans[0].trial_days:", "for a one_time plan"}},
		{"trial too long", plan("    trial_days: 1000\n"), []string{"plans[0].trial_days:", "730"}},
		{"bad price id", plan("    price_id: prod_123\n"), []string{"plans[0].price_id:"}},
		{"missing name", strings.Replace(plan(""), "  - name: Pro\n    lookup_key", "  - lookup_key", 1), []string{"plans[0]:", "name"}},
		{"duplicate lookup key", plan("  - name: Pro 2\n    lookup_key: pro\n    kind: one_time\n    amount: 1\n    currency: usd\n"),
			[]string{"line 11: plans[1].lookup_key:", `"pro" is also plans[0]'s`}},
		{"duplicate price", plan("    price_id: price_1\n  - name: B\n    lookup_key: b\n    price_id: price_1\n    kind: one_time\n    amount: 1\n    currency: usd\n"),
			[]string{"plans[1].price_id:", "unique"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := plansfile.Parse("billing.yaml", []byte(tc.file))
			if err == nil {
				t.Fatal("accepted")
			}
			var ve *plansfile.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("%T %v, want a *ValidationError", err, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "billing.yaml") {
				t.Errorf("%q does not name the file", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not say %q", msg, w)
				}
			}
		})
	}
}

func TestNotYAML(t *testing.T) {
	_, err := plansfile.Parse("x.yaml", []byte("plans: [\n"))
	if err == nil || !strings.Contains(err.Error(), "not YAML") {
		t.Errorf("err = %v", err)
	}
}

func ExampleLoad() {
	plans, f, err := plansfile.Load("billing.yaml")
	if err != nil {
		return // the error names the file, the field, its line and what is wrong
	}
	if len(f.Missing()) > 0 {
		return // some plans have no price yet: run `billing setup`
	}
	_ = billing.Config{Plans: plans}
}
