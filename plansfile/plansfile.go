// Package plansfile reads and writes the plans file that `billing init`
// writes and `billing setup` reads (billing.yaml by convention): what the
// app sells, one entry per Stripe price, in YAML.
//
// The file's JSON Schema (plans.schema.json, published for editors and
// returned by [Schema]) is enforced on every read and write: a file that
// breaks it is refused with an error per problem, naming the field and its
// line. The app reads the same file at start-up:
//
//	plans, _, err := plansfile.Load("billing.yaml")
//	if err != nil {
//		return err
//	}
//	b, err := billing.New(billing.Config{Plans: plans, ...}, store, users)
//
// The package depends on the billing library and a YAML and a JSON Schema
// library only, never on the CLI's.
package plansfile

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gobilling/billing"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.yaml.in/yaml/v3"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

//go:embed plans.schema.json
var schemaJSON []byte

// SchemaURL is the schema's $id, where editors find it. A written file
// names it in its first line (the YAML language server's modeline).
const SchemaURL = "https://raw.githubusercontent.com/gobilling/billing/main/plansfile/plans.schema.json"

// Version is the file format's version, the only one Parse accepts.
const Version = 1

// Kinds of a plan, as the file spells them.
const (
	KindRecurring = "recurring"
	KindOneTime   = "one_time"
)

// Schema returns the plans file's JSON Schema (draft 2020-12).
func Schema() []byte { return bytes.Clone(schemaJSON) }

// File is a plans file.
type File struct {
	// Version is the format's version: Version.
	Version int `yaml:"version" json:"version"`
	// Checkout is how customers pay: "hosted" (Stripe Checkout), the only
	// mode billing supports.
	Checkout string `yaml:"checkout,omitempty" json:"checkout,omitempty"`
	// Plans are what the app sells, lowest tier first.
	Plans []Spec `yaml:"plans" json:"plans"`
}

// Spec is one plan of the file: one Stripe price and what it gives.
type Spec struct {
	// Name is the product's name, shown in Checkout and on invoices.
	Name string `yaml:"name" json:"name"`
	// LookupKey is the price's lookup key in Stripe.
	LookupKey string `yaml:"lookup_key" json:"lookup_key"`
	// PriceID is the Stripe price ID, empty until `billing setup` has
	// created the price.
	PriceID string `yaml:"price_id,omitempty" json:"price_id,omitempty"`
	// Kind is KindRecurring or KindOneTime.
	Kind string `yaml:"kind" json:"kind"`
	// Amount is the price in the currency's smallest unit (2900 is 29.00
	// USD).
	Amount int64 `yaml:"amount" json:"amount"`
	// Currency is the ISO code, lower case ("usd").
	Currency string `yaml:"currency" json:"currency"`
	// Interval is how often a recurring price bills: day, week, month or
	// year. Empty for one-time prices.
	Interval string `yaml:"interval,omitempty" json:"interval,omitempty"`
	// Tier is the membership tier the price gives; required for recurring
	// prices.
	Tier string `yaml:"tier,omitempty" json:"tier,omitempty"`
	// Credits is what one unit of a one-time price grants.
	Credits int64 `yaml:"credits,omitempty" json:"credits,omitempty"`
	// TrialDays is a recurring price's free trial.
	TrialDays int `yaml:"trial_days,omitempty" json:"trial_days,omitempty"`
}

// Plan is the spec as billing's Config wants it (PriceID may be empty).
func (s Spec) Plan() billing.Plan {
	p := billing.Plan{PriceID: s.PriceID, Tier: s.Tier, Credits: s.Credits}
	if s.Kind == KindOneTime {
		p.Kind = billing.OneTime
	}
	return p
}

// BillingPlans returns, in the file's order, the plans whose price ID is
// known: what Config.Plans takes. Plans still waiting for `billing setup`
// are left out (Missing lists them).
func (f *File) BillingPlans() []billing.Plan {
	var ps []billing.Plan
	for _, s := range f.Plans {
		if s.PriceID != "" {
			ps = append(ps, s.Plan())
		}
	}
	return ps
}

// Missing returns the lookup keys of the plans without a price ID.
func (f *File) Missing() []string {
	var keys []string
	for _, s := range f.Plans {
		if s.PriceID == "" {
			keys = append(keys, s.LookupKey)
		}
	}
	return keys
}

// Load reads and validates the plans file at path, and returns the plans
// with a price ID (for Config.Plans) and the whole file.
func Load(path string) ([]billing.Plan, *File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("plansfile: %w", err)
	}
	f, err := Parse(path, data)
	if err != nil {
		return nil, nil, err
	}
	return f.BillingPlans(), f, nil
}

// Parse validates data, a plans file named name in errors, against the
// schema and the checks the schema cannot express (lookup keys and price
// IDs unique), and decodes it. Its error is a *ValidationError when the
// file is YAML but breaks the rules.
func Parse(name string, data []byte) (*File, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("plansfile: %s: not YAML: %w", name, err)
	}
	if doc.Kind == 0 {
		return nil, &ValidationError{File: name, Problems: []Problem{{Message: "the file is empty"}}}
	}
	var v any
	if err := doc.Decode(&v); err != nil {
		return nil, fmt.Errorf("plansfile: %s: %w", name, err)
	}
	inst, err := jsonValue(v)
	if err != nil {
		return nil, fmt.Errorf("plansfile: %s: %w", name, err)
	}
	var floats []Problem
	decimals(&doc, nil, &floats)
	if err := validate(inst); err != nil || len(floats) > 0 {
		ve, ok := err.(*ValidationError)
		if err != nil && !ok {
			return nil, err
		}
		if ve == nil {
			ve = &ValidationError{}
		}
		ve.Problems = append(floats, ve.Problems...)
		return nil, withFile(ve, name, &doc)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("plansfile: %s: %w", name, err)
	}
	if err := f.crossCheck(); err != nil {
		return nil, withFile(err, name, &doc)
	}
	return &f, nil
}

// Validate checks f against the schema and the cross-plan rules, as Parse
// does a file.
func (f *File) Validate() error {
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("plansfile: %w", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("plansfile: %w", err)
	}
	if err := validate(inst); err != nil {
		return err
	}
	return f.crossCheck()
}

// Marshal validates f and returns it as YAML, with the schema's modeline
// on top for editors.
func (f *File) Marshal() ([]byte, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# yaml-language-server: $schema=%s\n", SchemaURL)
	buf.WriteString("# Written by `billing init`. price_id: empty until the price exists in Stripe. Amounts are in\n")
	buf.WriteString("# the currency's smallest unit (2900 = 29.00 USD). Plans: lowest tier first.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("plansfile: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("plansfile: %w", err)
	}
	return buf.Bytes(), nil
}

func (f *File) crossCheck() error {
	var ps []Problem
	keys := map[string]int{}
	prices := map[string]int{}
	for i, s := range f.Plans {
		if j, ok := keys[s.LookupKey]; ok {
			ps = append(ps, Problem{Path: []string{"plans", strconv.Itoa(i), "lookup_key"},
				Message: fmt.Sprintf("%q is also plans[%d]'s: lookup keys must be unique", s.LookupKey, j)})
		} else {
			keys[s.LookupKey] = i
		}
		if s.PriceID == "" {
			continue
		}
		if j, ok := prices[s.PriceID]; ok {
			ps = append(ps, Problem{Path: []string{"plans", strconv.Itoa(i), "price_id"},
				Message: fmt.Sprintf("%q is also plans[%d]'s: price IDs must be unique", s.PriceID, j)})
		} else {
			prices[s.PriceID] = i
		}
	}
	if len(ps) > 0 {
		return &ValidationError{Problems: ps}
	}
	return nil
}

// ValidationError is a plans file that breaks the schema or the rules
// across plans: one Problem per broken rule.
type ValidationError struct {
	File     string // the file's name, when read from one
	Problems []Problem
}

// Problem is one broken rule.
type Problem struct {
	// Path is the value's location: "plans", "0", "amount".
	Path []string
	// Line is the value's line in the file, when known (else 0).
	Line int
	// Message says what is wrong.
	Message string
}

// Field names the value: plans[0].amount (or "the file" for the top).
func (p Problem) Field() string {
	if len(p.Path) == 0 {
		return "the file"
	}
	var b strings.Builder
	for i, seg := range p.Path {
		if _, err := strconv.Atoi(seg); err == nil && i > 0 {
			b.WriteString("[" + seg + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", p.Line, p.Field(), p.Message)
	}
	return p.Field() + ": " + p.Message
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("plansfile: ")
	if e.File != "" {
		b.WriteString(e.File + ": ")
	}
	if len(e.Problems) == 1 {
		b.WriteString(e.Problems[0].String())
		return b.String()
	}
	fmt.Fprintf(&b, "%d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaURL, doc); err != nil {
		return nil, err
	}
	return c.Compile(SchemaURL)
})

// validate checks a JSON value against the schema.
func validate(inst any) error {
	sch, err := compiled()
	if err != nil {
		return fmt.Errorf("plansfile: the embedded schema: %w", err)
	}
	err = sch.Validate(inst)
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	var ps []Problem
	leaves(ve, &ps)
	return &ValidationError{Problems: ps}
}

var printer = message.NewPrinter(language.English)

// leaves collects the error tree's leaves as problems.
func leaves(e *jsonschema.ValidationError, ps *[]Problem) {
	if len(e.Causes) == 0 {
		msg := e.ErrorKind.LocalizedString(printer)
		if _, ok := e.ErrorKind.(*kind.FalseSchema); ok {
			msg = "not allowed"
		}
		// A rule of one of the schema's conditionals says which kind of
		// plan it is for.
		switch {
		case strings.Contains(e.SchemaURL, "/allOf/0/then"):
			msg += " (for a recurring plan)"
		case strings.Contains(e.SchemaURL, "/allOf/1/then"):
			msg += " (for a one_time plan)"
		}
		*ps = append(*ps, Problem{Path: e.InstanceLocation, Message: msg})
		return
	}
	for _, c := range e.Causes {
		leaves(c, ps)
	}
}

// decimals finds the numbers written with a fraction or an exponent, which
// the schema's integers would take when whole (29.00 is 29 in JSON): in this
// file they are mistakes, such as an amount in dollars.
func decimals(n *yaml.Node, path []string, ps *[]Problem) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			decimals(c, path, ps)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			decimals(n.Content[i+1], append(slices.Clip(path), n.Content[i].Value), ps)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			decimals(c, append(slices.Clip(path), strconv.Itoa(i)), ps)
		}
	case yaml.ScalarNode:
		if n.ShortTag() == "!!float" {
			*ps = append(*ps, Problem{Path: path, Line: n.Line, Message: fmt.Sprintf(
				"%s is not a whole number (amounts are in the currency's smallest unit: 2900 is 29.00 USD)", n.Value)})
		}
	}
}

// jsonValue turns a decoded YAML value into the JSON value the schema
// library validates (string keys, json.Number for numbers).
func jsonValue(v any) (any, error) {
	data, err := json.Marshal(stringKeys(v))
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(data))
}

func stringKeys(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = stringKeys(e)
		}
		return m
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = stringKeys(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = stringKeys(e)
		}
		return s
	}
	return v
}

// withFile names the file in a *ValidationError and finds each
// problem's line.
func withFile(err error, name string, doc *yaml.Node) error {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	ve.File = name
	for i := range ve.Problems {
		ve.Problems[i].Line = lineOf(doc, ve.Problems[i].Path)
	}
	return ve
}

// lineOf returns the line of the value at path in the YAML document, or
// of the nearest enclosing value that exists.
func lineOf(doc *yaml.Node, path []string) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, seg := range path {
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == seg {
					next = n.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
			}
		}
		if next == nil {
			return line
		}
		n, line = next, next.Line
	}
	return line
}
