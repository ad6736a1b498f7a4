// Package stripespec checks JSON against Stripe's OpenAPI schema, the
// spec3.json that stripe-mock embeds: every field the schema marks required
// is present, every value has the schema's type (and one of its enum values),
// and no object carries a field the schema does not list. Tests use it to
// hold billingtest to Stripe's shapes; the spec is read from the Go module
// cache at test time (.ci/run installs stripe-mock, which puts it there),
// never copied into the repository.
package stripespec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gobilling/billing/internal/testenv"
)

// Module is the stripe-mock module whose spec3.json is Stripe's schema for
// the API version it models (2025-05-28.basil).
const Module = "github.com/stripe/stripe-mock@v0.195.0"

// ErrNotFound is returned by [Locate] when the spec is not in the module
// cache.
var ErrNotFound = errors.New("stripespec: spec3.json not in the module cache")

// Locate finds spec3.json of [Module] in the Go module cache (as `go env
// GOMODCACHE` names it). `go install github.com/stripe/stripe-mock@v0.195.0`
// puts it there.
func Locate() (string, error) {
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		out, err := exec.Command("go", "env", "GOMODCACHE").Output()
		if err != nil {
			return "", fmt.Errorf("stripespec: go env GOMODCACHE: %w", err)
		}
		cache = strings.TrimSpace(string(out))
	}
	path := filepath.Join(cache, filepath.FromSlash(Module), "embedded", "openapi", "spec3.json")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%w (%s): run go install %s", ErrNotFound, path, Module)
	}
	return path, nil
}

// ForTest loads the spec for a test, with the fields of newer (as
// "schema.field") allowed. Without the module in the cache it skips the
// test, saying how to install it, or fails it under CI=true.
func ForTest(t testing.TB, newer ...string) *Spec {
	t.Helper()
	path, err := Locate()
	if errors.Is(err, ErrNotFound) {
		testenv.Unavailable(t, err.Error(), "go install "+Module)
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	spec, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range newer {
		spec.Newer[f] = true
	}
	return spec
}

// Schema is the part of an OpenAPI schema object the checks read.
type Schema struct {
	Ref                  string             `json:"$ref"`
	Type                 string             `json:"type"`
	Properties           map[string]*Schema `json:"properties"`
	Required             []string           `json:"required"`
	AdditionalProperties additional         `json:"additionalProperties"`
	Items                *Schema            `json:"items"`
	AnyOf                []*Schema          `json:"anyOf"`
	Enum                 []any              `json:"enum"`
	Nullable             bool               `json:"nullable"`
	ResourceID           string             `json:"x-resourceId"`
	BypassValidation     bool               `json:"x-stripeBypassValidation"`
}

// additional is additionalProperties: a schema, or a boolean (read as
// none).
type additional struct{ schema *Schema }

func (a *additional) UnmarshalJSON(b []byte) error {
	if t := strings.TrimSpace(string(b)); t == "true" || t == "false" {
		return nil
	}
	a.schema = new(Schema)
	return json.Unmarshal(b, a.schema)
}

type operation struct {
	Parameters []struct {
		Name string `json:"name"`
		In   string `json:"in"`
	} `json:"parameters"`
	RequestBody struct {
		Content map[string]struct {
			Schema *Schema `json:"schema"`
		} `json:"content"`
	} `json:"requestBody"`
	Responses map[string]struct {
		Content map[string]struct {
			Schema *Schema `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}

// Spec is a loaded spec3.json.
type Spec struct {
	schemas  map[string]*Schema
	byObject map[string]string // an object's "object" value → schema name
	routes   []route
	// Newer lists fields newer than the spec that an object may carry,
	// as "schema.field" (e.g. "subscription.billing_mode"): they are
	// checked for nothing but their presence being allowed.
	Newer map[string]bool
}

type route struct {
	method string
	parts  []string // path segments; "{...}" matches any one segment
	op     *operation
}

// Load reads a spec3.json.
func Load(path string) (*Spec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Paths      map[string]map[string]*operation `json:"paths"`
		Components struct {
			Schemas map[string]*Schema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("stripespec: %s: %w", path, err)
	}
	s := &Spec{schemas: doc.Components.Schemas, byObject: map[string]string{}, Newer: map[string]bool{}}
	for name, sc := range s.schemas {
		if sc.ResourceID != "" {
			s.byObject[sc.ResourceID] = name
		}
	}
	for p, ops := range doc.Paths {
		for m, op := range ops {
			s.routes = append(s.routes, route{method: strings.ToUpper(m), parts: strings.Split(p, "/"), op: op})
		}
	}
	// Literal segments before templated ones: /v1/invoices/upcoming
	// before /v1/invoices/{invoice}.
	sort.Slice(s.routes, func(i, j int) bool {
		return strings.Count(strings.Join(s.routes[i].parts, "/"), "{") <
			strings.Count(strings.Join(s.routes[j].parts, "/"), "{")
	})
	return s, nil
}

// Params returns the top-level parameters an operation takes (its query
// parameters and form fields), sorted, without expand; nil for an unknown
// operation.
func (s *Spec) Params(method, path string) []string {
	op := s.match(method, path)
	if op == nil {
		return nil
	}
	var out []string
	for _, p := range op.Parameters {
		if p.In == "query" && p.Name != "expand" {
			out = append(out, p.Name)
		}
	}
	if media, ok := op.RequestBody.Content["application/x-www-form-urlencoded"]; ok && media.Schema != nil {
		for name := range media.Schema.Properties {
			if name != "expand" {
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Problem is one way a JSON document differs from the schema.
type Problem struct {
	Kind string // "missing", "type", "enum", "unknown" or "schema"
	Path string // where, e.g. "subscription.items.data[0].price.recurring"
	Msg  string
}

func (p Problem) String() string { return p.Kind + " " + p.Path + ": " + p.Msg }

// Response checks the JSON body of a response to method path (a request
// path such as /v1/subscriptions/sub_1) with the given status against the
// schema of the operation's response (the error schema for a status other
// than 200).
func (s *Spec) Response(method, path string, status int, body []byte) []Problem {
	op := s.match(method, path)
	if op == nil {
		return []Problem{{Kind: "schema", Path: method + " " + path, Msg: "no such operation in the spec"}}
	}
	code := "default"
	if status == 200 {
		code = "200"
	}
	resp, ok := op.Responses[code]
	if !ok {
		return []Problem{{Kind: "schema", Path: method + " " + path, Msg: "no " + code + " response in the spec"}}
	}
	media, ok := resp.Content["application/json"]
	if !ok || media.Schema == nil {
		return []Problem{{Kind: "schema", Path: method + " " + path, Msg: "no JSON response in the spec"}}
	}
	v, err := decode(body)
	if err != nil {
		return []Problem{{Kind: "type", Path: method + " " + path, Msg: err.Error()}}
	}
	var c checker
	c.s = s
	c.value(media.Schema, v, "", "")
	return c.problems
}

// Object checks one API object (anything with an "object" field naming a
// resource, e.g. an event or a subscription) against its schema.
func (s *Spec) Object(body []byte) []Problem {
	v, err := decode(body)
	if err != nil {
		return []Problem{{Kind: "type", Msg: err.Error()}}
	}
	o, _ := v.(map[string]any)
	kind, _ := o["object"].(string)
	name, ok := s.byObject[kind]
	if !ok {
		return []Problem{{Kind: "schema", Msg: fmt.Sprintf("no schema for object %q", kind)}}
	}
	var c checker
	c.s = s
	c.value(&Schema{Ref: "#/components/schemas/" + name}, v, "", "")
	return c.problems
}

func decode(body []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return v, nil
}

func (s *Spec) match(method, path string) *operation {
	path, _, _ = strings.Cut(path, "?")
	parts := strings.Split(path, "/")
	for _, r := range s.routes {
		if r.method != method || len(r.parts) != len(parts) {
			continue
		}
		ok := true
		for i, p := range r.parts {
			if p != parts[i] && !strings.HasPrefix(p, "{") {
				ok = false
				break
			}
		}
		if ok {
			return r.op
		}
	}
	return nil
}

func (s *Spec) resolve(sc *Schema) (*Schema, string) {
	name := ""
	for sc != nil && sc.Ref != "" {
		name = strings.TrimPrefix(sc.Ref, "#/components/schemas/")
		sc = s.schemas[name]
	}
	return sc, name
}

type checker struct {
	s        *Spec
	problems []Problem
}

func (c *checker) add(kind, path, format string, args ...any) {
	c.problems = append(c.problems, Problem{Kind: kind, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// value checks v against sc at path; name is the schema's name when known
// (for Newer).
func (c *checker) value(sc *Schema, v any, path, name string) {
	if sc.Ref != "" {
		var n string
		sc, n = c.s.resolve(sc)
		if sc == nil {
			c.add("schema", path, "unresolvable reference")
			return
		}
		name = n
	}
	if v == nil {
		if !sc.Nullable {
			c.add("type", path, "null where the schema does not allow it")
		}
		return
	}
	if len(sc.AnyOf) > 0 {
		c.anyOf(sc.AnyOf, v, path)
		return
	}
	switch sc.Type {
	case "string":
		str, ok := v.(string)
		if !ok {
			c.add("type", path, "%s where the schema has a string", kindOf(v))
			return
		}
		if len(sc.Enum) > 0 && !sc.BypassValidation && !slices.Contains(sc.Enum, any(str)) {
			c.add("enum", path, "%q is not one of %v", str, sc.Enum)
		}
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			c.add("type", path, "%s where the schema has an integer", kindOf(v))
			return
		}
		if _, err := n.Int64(); err != nil {
			c.add("type", path, "%s is not an integer", n)
		}
	case "number":
		if _, ok := v.(json.Number); !ok {
			c.add("type", path, "%s where the schema has a number", kindOf(v))
		}
	case "boolean":
		b, ok := v.(bool)
		if !ok {
			c.add("type", path, "%s where the schema has a boolean", kindOf(v))
			return
		}
		if len(sc.Enum) > 0 && !slices.Contains(sc.Enum, any(b)) {
			c.add("enum", path, "%v is not one of %v", b, sc.Enum)
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			c.add("type", path, "%s where the schema has an array", kindOf(v))
			return
		}
		if sc.Items != nil {
			for i, e := range a {
				c.value(sc.Items, e, fmt.Sprintf("%s[%d]", path, i), "")
			}
		}
	case "object", "":
		o, ok := v.(map[string]any)
		if !ok {
			if sc.Type == "object" {
				c.add("type", path, "%s where the schema has an object", kindOf(v))
			}
			return
		}
		c.object(sc, o, path, name)
	}
}

// object checks an object's fields: required ones present, each known one
// of its type, no unknown one (unless the schema is free-form).
func (c *checker) object(sc *Schema, o map[string]any, path, name string) {
	if sc.Properties == nil {
		if sc.AdditionalProperties.schema != nil {
			for _, k := range sortedKeys(o) {
				c.value(sc.AdditionalProperties.schema, o[k], join(path, k), "")
			}
		}
		return // free-form (an event's data.object is checked by its caller)
	}
	for _, k := range sc.Required {
		if _, ok := o[k]; !ok {
			c.add("missing", join(path, k), "required by %s", orAnon(name))
		}
	}
	for _, k := range sortedKeys(o) {
		p, ok := sc.Properties[k]
		switch {
		case ok:
			c.value(p, o[k], join(path, k), "")
		case c.s.Newer[name+"."+k]:
		default:
			c.add("unknown", join(path, k), "not a field of %s", orAnon(name))
		}
	}
	// An event: its object is checked against the schema its "object"
	// names, previous_attributes against that schema's fields.
	if name == "event" {
		data, _ := o["data"].(map[string]any)
		obj, _ := data["object"].(map[string]any)
		kind, _ := obj["object"].(string)
		target, ok := c.s.byObject[kind]
		if !ok {
			c.add("schema", join(path, "data.object"), "no schema for object %q", kind)
			return
		}
		c.value(&Schema{Ref: "#/components/schemas/" + target}, obj, join(path, "data.object"), "")
		if prev, ok := data["previous_attributes"].(map[string]any); ok {
			tsc, _ := c.s.resolve(&Schema{Ref: "#/components/schemas/" + target})
			for _, k := range sortedKeys(prev) {
				p, ok := tsc.Properties[k]
				if !ok {
					c.add("unknown", join(path, "data.previous_attributes."+k), "not a field of %s", target)
					continue
				}
				c.value(p, prev[k], join(path, "data.previous_attributes."+k), "")
			}
		}
	}
}

// anyOf checks v against alternatives: valid if one fits. Otherwise the
// problems of the closest alternative (an object's own schema, chosen by
// its "object" field; else the one with fewest problems) are reported.
func (c *checker) anyOf(alts []*Schema, v any, path string) {
	var best []Problem
	for _, a := range alts {
		sub := checker{s: c.s}
		sub.value(a, v, path, "")
		if len(sub.problems) == 0 {
			return
		}
		if o, ok := v.(map[string]any); ok {
			if r, _ := c.s.resolve(a); r != nil && r.ResourceID != "" && r.ResourceID == o["object"] {
				c.problems = append(c.problems, sub.problems...)
				return
			}
		}
		if best == nil || len(sub.problems) < len(best) {
			best = sub.problems
		}
	}
	c.problems = append(c.problems, best...)
}

func orAnon(name string) string {
	if name == "" {
		return "the object"
	}
	return name
}

func kindOf(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys(o map[string]any) []string {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
