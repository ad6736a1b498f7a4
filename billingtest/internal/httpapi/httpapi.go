// Package httpapi is the plumbing of billingtest's HTTP API, as Stripe
// answers: errors and their bodies, parameter parsing and checks, list
// pages, keys and API versions, and the router that counts calls, injects
// failures and replays idempotent requests.
package httpapi

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Error is a Stripe error response.
type Error struct {
	Status            int
	Type, Code, Param string
	DeclineCode       string // a card error's decline code
	Message           string
	// partlyModelled marks an unknown parameter under a top-level name
	// billingtest models (line_items[0][foo]): unknown, not unmodelled.
	PartlyModelled bool
}

func (e *Error) Error() string { return e.Message }

// Body is the error as Stripe sends it.
func (e *Error) Body() map[string]any {
	m := map[string]any{"type": e.Type, "message": e.Message}
	if e.Code != "" {
		m["code"] = e.Code
		m["doc_url"] = "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(e.Code, "_", "-")
	}
	if e.Param != "" {
		m["param"] = e.Param
	}
	if e.DeclineCode != "" {
		m["decline_code"] = e.DeclineCode
	}
	return map[string]any{"error": m}
}

// Missing is the error of a required parameter not sent.
func Missing(param string) *Error {
	return &Error{Status: 400, Type: "invalid_request_error", Code: "parameter_missing", Param: param,
		Message: "Missing required param: " + param + "."}
}

// Invalid is the error of a parameter with a bad value.
func Invalid(param, msg string) *Error {
	return &Error{Status: 400, Type: "invalid_request_error", Code: "parameter_invalid", Param: param, Message: msg}
}

// InvalidInteger is the error of an integer parameter with a bad value.
func InvalidInteger(param, msg string) *Error {
	return &Error{Status: 400, Type: "invalid_request_error", Code: "parameter_invalid_integer", Param: param, Message: msg}
}

// Unknown is the error of a parameter Stripe does not know.
func Unknown(param string) *Error {
	return &Error{Status: 400, Type: "invalid_request_error", Code: "parameter_unknown", Param: param,
		Message: "Received unknown parameter: " + param}
}

// Exclusive is the error for parameters that cannot be given together.
func Exclusive(params ...string) *Error {
	return &Error{Status: 400, Type: "invalid_request_error", Code: "parameters_exclusive", Param: params[0],
		Message: "You may only specify one of these parameters: " + strings.Join(params, ", ") + "."}
}

// BadRequest is an invalid request that no parameter is to blame for.
func BadRequest(msg string) *Error {
	return &Error{Status: 400, Type: "invalid_request_error", Message: msg}
}

// NoSuch is the error for an unknown object: 404 for the object in the path,
// 400 for one referenced by a parameter.
func NoSuch(status int, kind, id, param string) *Error {
	return &Error{Status: status, Type: "invalid_request_error", Code: "resource_missing", Param: param,
		Message: fmt.Sprintf("No such %s: '%s'", kind, id)}
}

// IdempotencyError is an error of an idempotency key.
func IdempotencyError(status int, code, msg string) *Error {
	return &Error{Status: status, Type: "idempotency_error", Code: code, Message: msg}
}

// NotModelled is the error for a valid Stripe parameter billingtest does
// not model.
func NotModelled(param, what string) *Error {
	return &Error{Status: 400, Type: "invalid_request_error", Code: "parameter_not_modelled", Param: param,
		Message: "billingtest does not model " + what + ". The parameter is valid at Stripe; use Stripe's test mode for it."}
}

// Request parameter checks, with Stripe's errors.

// KeyParts splits a form key like line_items[0][price] into its parts
// ("line_items", "0", "price"). It returns nil for a malformed key.
func KeyParts(key string) []string {
	base, rest, _ := strings.Cut(key, "[")
	if base == "" {
		return nil
	}
	parts := []string{base}
	if rest == "" && !strings.Contains(key, "[") {
		return parts
	}
	rest = "[" + rest
	for rest != "" {
		if rest[0] != '[' {
			return nil
		}
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return nil
		}
		parts = append(parts, rest[1:end])
		rest = rest[end+1:]
	}
	return parts
}

// MatchKey reports whether a form key matches a pattern in the same
// notation, where the part "*" matches any one part and "#" an array index
// (digits, or empty as in expand[]).
func MatchKey(key []string, pattern string) bool {
	pat := KeyParts(pattern)
	if len(pat) != len(key) {
		return false
	}
	for i, p := range pat {
		switch p {
		case "*":
		case "#":
			if strings.Trim(key[i], "0123456789") != "" {
				return false
			}
		default:
			if p != key[i] {
				return false
			}
		}
	}
	return true
}

// CheckParams refuses the first parameter (in sorted order) that matches
// none of the patterns (see MatchKey), as Stripe refuses an unknown
// parameter. expand and expand[#] are always allowed.
func CheckParams(form url.Values, patterns ...string) *Error {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		parts := KeyParts(k)
		ok := parts != nil && (MatchKey(parts, "expand") || MatchKey(parts, "expand[#]"))
		for _, p := range patterns {
			if ok {
				break
			}
			ok = parts != nil && MatchKey(parts, p)
		}
		if !ok {
			e := Unknown(k)
			for _, p := range patterns {
				if pp := KeyParts(p); len(pp) > 0 && len(parts) > 0 && pp[0] == parts[0] {
					e.PartlyModelled = true
				}
			}
			return e
		}
	}
	return nil
}

// ListParams are the parameters every list endpoint takes.
var ListParams = []string{"limit", "starting_after", "ending_before", "created",
	"created[gt]", "created[gte]", "created[lt]", "created[lte]"}

// WithList returns the list parameters and more.
func WithList(more ...string) []string { return append(slices.Clone(ListParams), more...) }

// IntParam parses an integer parameter; ok is false when it is absent.
func IntParam(form url.Values, name string) (n int64, ok bool, err *Error) {
	if !form.Has(name) {
		return 0, false, nil
	}
	v := form.Get(name)
	n, perr := strconv.ParseInt(v, 10, 64)
	if perr != nil {
		return 0, false, InvalidInteger(name, "Invalid integer: "+v)
	}
	return n, true, nil
}

// BoolParam parses a boolean parameter; ok is false when it is absent.
func BoolParam(form url.Values, name string) (b, ok bool, err *Error) {
	if !form.Has(name) {
		return false, false, nil
	}
	switch v := form.Get(name); v {
	case "true":
		return true, true, nil
	case "false":
		return false, true, nil
	default:
		return false, false, Invalid(name, "Invalid boolean: "+v)
	}
}

// EnumParam checks that a present parameter is one of the allowed values.
func EnumParam(form url.Values, name string, allowed ...string) (string, *Error) {
	if !form.Has(name) {
		return "", nil
	}
	v := form.Get(name)
	if !slices.Contains(allowed, v) {
		return "", Invalid(name, fmt.Sprintf("Invalid %s: must be one of %s", name, OneOf(allowed)))
	}
	return v, nil
}

// OneOf lists values as Stripe's messages do: "a, b, or c".
func OneOf(vs []string) string {
	switch len(vs) {
	case 1:
		return vs[0]
	case 2:
		return vs[0] + " or " + vs[1]
	}
	return strings.Join(vs[:len(vs)-1], ", ") + ", or " + vs[len(vs)-1]
}

// ArrayParam returns the values of an array parameter (name[0]=a&name[1]=b,
// name[]=a&name[]=b), in index order.
func ArrayParam(form url.Values, name string) []string {
	type iv struct {
		i int
		v []string
	}
	var items []iv
	for k, vs := range form {
		parts := KeyParts(k)
		if len(parts) != 2 || parts[0] != name {
			continue
		}
		i := -1
		if parts[1] != "" {
			n, err := strconv.Atoi(parts[1])
			if err != nil {
				continue
			}
			i = n
		}
		items = append(items, iv{i, vs})
	}
	slices.SortFunc(items, func(a, b iv) int { return a.i - b.i })
	var out []string
	for _, it := range items {
		out = append(out, it.v...)
	}
	return out
}

// Indexes returns the sorted indexes i of the parameters name[i][...].
func Indexes(form url.Values, name string) ([]int, *Error) {
	var out []int
	for k := range form {
		parts := KeyParts(k)
		if len(parts) < 3 || parts[0] != name {
			continue
		}
		i, err := strconv.Atoi(parts[1])
		if err != nil || i < 0 {
			return nil, Invalid(k, "Invalid array index in "+k)
		}
		if !slices.Contains(out, i) {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out, nil
}

// MetadataParam reads metadata[key]=value parameters under prefix (e.g.
// "metadata" or "subscription_data[metadata]") and checks Stripe's limits.
// set is nil when there are none; clear reports prefix="" (unset all). On an
// update an empty value unsets the key.
func MetadataParam(form url.Values, prefix string) (set map[string]string, clear bool, err *Error) {
	if form.Has(prefix) {
		if form.Get(prefix) != "" {
			return nil, false, Invalid(prefix, "Invalid object")
		}
		clear = true
	}
	set = Prefixed(form, prefix)
	if len(set) > 50 {
		return nil, false, Invalid(prefix, "Metadata can have up to 50 keys.")
	}
	for k, v := range set {
		switch {
		case k == "":
			return nil, false, Invalid(prefix, "Metadata keys must not be empty.")
		case len(k) > 40:
			return nil, false, Invalid(prefix+"["+k+"]", "Metadata keys can be up to 40 characters long.")
		case len(v) > 500:
			return nil, false, Invalid(prefix+"["+k+"]", "Metadata values can be up to 500 characters long.")
		}
	}
	return set, clear, nil
}

// ApplyMetadata applies a metadata update to m and returns the result (nil
// when empty).
func ApplyMetadata(m map[string]string, set map[string]string, clear bool) map[string]string {
	out := map[string]string{}
	if !clear {
		for k, v := range m {
			out[k] = v
		}
	}
	for k, v := range set {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// ExpandParam returns the expand[] values after checking each against the
// expandable properties.
func ExpandParam(form url.Values, allowed ...string) (map[string]bool, *Error) {
	exp := Expands(form)
	for v := range exp {
		if !slices.Contains(allowed, v) {
			return nil, BadRequestParam("expand", "This property cannot be expanded ("+v+").")
		}
	}
	return exp, nil
}

// ListExpand is expandParam for a list: the expandable properties of its
// objects under data.
func ListExpand(form url.Values, allowed ...string) (map[string]bool, *Error) {
	data := make([]string, len(allowed))
	for i, a := range allowed {
		data[i] = "data." + a
	}
	exp, err := ExpandParam(form, data...)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for v := range exp {
		out[strings.TrimPrefix(v, "data.")] = true
	}
	return out, nil
}

// BadRequestParam is an invalid request blamed on a parameter, without a code.
func BadRequestParam(param, msg string) *Error {
	e := BadRequest(msg)
	e.Param = param
	return e
}

// Lists: Stripe's cursor pagination over objects newest first.

// Entry is one object of a list: its ID, creation time and rendering.
type Entry struct {
	ID      string
	Created int64
	Render  func() any
}

// NewestFirst turns IDs in creation order into list entries, newest first.
func NewestFirst(order []string, created func(id string) int64, render func(id string) any) []Entry {
	out := make([]Entry, 0, len(order))
	for _, id := range slices.Backward(order) {
		out = append(out, Entry{ID: id, Created: created(id), Render: func() any { return render(id) }})
	}
	return out
}

// CreatedFilter parses created=<unix> and created[gt|gte|lt|lte]=<unix>.
func CreatedFilter(form url.Values) (func(int64) bool, *Error) {
	type bound struct {
		op string
		ok func(c, v int64) bool
	}
	var checks []func(int64) bool
	for _, b := range []bound{
		{"created", func(c, v int64) bool { return c == v }},
		{"created[gt]", func(c, v int64) bool { return c > v }},
		{"created[gte]", func(c, v int64) bool { return c >= v }},
		{"created[lt]", func(c, v int64) bool { return c < v }},
		{"created[lte]", func(c, v int64) bool { return c <= v }},
	} {
		v, ok, err := IntParam(form, b.op)
		if err != nil {
			return nil, err
		}
		if ok {
			checks = append(checks, func(c int64) bool { return b.ok(c, v) })
		}
	}
	return func(c int64) bool {
		for _, ok := range checks {
			if !ok(c) {
				return false
			}
		}
		return true
	}, nil
}

// ListPage answers a list request. all holds every object of the kind
// (named kind in errors, e.g. "customer"), newest first; keep filters them
// (nil keeps all). It applies the created filters, the cursor
// (starting_after or ending_before, looked up among all) and limit.
func ListPage(form url.Values, path, kind string, all []Entry, keep func(Entry) bool) (map[string]any, *Error) {
	limit, ok, err := IntParam(form, "limit")
	switch {
	case err != nil:
		return nil, err
	case !ok:
		limit = 10
	case limit < 1:
		return nil, InvalidInteger("limit", "This value must be greater than or equal to 1.")
	case limit > 100:
		return nil, InvalidInteger("limit", "This value must be less than or equal to 100.")
	}
	created, err := CreatedFilter(form)
	if err != nil {
		return nil, err
	}
	after, before := form.Get("starting_after"), form.Get("ending_before")
	if after != "" && before != "" {
		return nil, Exclusive("ending_before", "starting_after")
	}
	cursor, param := after, "starting_after"
	if before != "" {
		cursor, param = before, "ending_before"
	}
	at := -1
	if cursor != "" {
		at = slices.IndexFunc(all, func(e Entry) bool { return e.ID == cursor })
		if at < 0 {
			return nil, NoSuch(400, kind, cursor, param)
		}
	}
	var picked []Entry
	for i, e := range all {
		if (keep != nil && !keep(e)) || !created(e.Created) {
			continue
		}
		if after != "" && i <= at || before != "" && i >= at {
			continue
		}
		picked = append(picked, e)
	}
	hasMore := len(picked) > int(limit)
	if hasMore {
		if before != "" {
			picked = picked[len(picked)-int(limit):] // the ones just before the cursor
		} else {
			picked = picked[:limit]
		}
	}
	data := make([]any, len(picked))
	for i, e := range picked {
		data[i] = e.Render()
	}
	l := List(path, data)
	l["has_more"] = hasMore
	return l, nil
}

// List renders a list object of data at url (one page, no more).
func List(url string, data []any) map[string]any {
	if data == nil {
		data = []any{}
	}
	return map[string]any{"object": "list", "data": data, "has_more": false, "url": url}
}

// Keys and versions: which requests the fake serves.

// apiKey returns the API key of a request, sent as Stripe takes it: Bearer
// auth, or Basic auth with the key as the user name.
func apiKey(r *http.Request) string {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if k, ok := cutPrefixFold(h, "Bearer "); ok {
		return strings.TrimSpace(k)
	}
	if b, ok := cutPrefixFold(h, "Basic "); ok {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b))
		if err != nil {
			return ""
		}
		user, _, _ := strings.Cut(string(raw), ":")
		return user
	}
	return ""
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return "", false
}

// redact shows a key as Stripe's errors do: its prefix, stars, and its
// last four characters (a short key is all stars).
func redact(key string) string {
	prefix := ""
	for _, p := range []string{"sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_"} {
		if strings.HasPrefix(key, p) {
			prefix = p
			break
		}
	}
	rest := key[len(prefix):]
	if len(rest) <= 4 {
		return prefix + strings.Repeat("*", len(rest))
	}
	return prefix + strings.Repeat("*", len(rest)-4) + rest[len(rest)-4:]
}

// Unauthorized is a 401 invalid_request_error.
func Unauthorized(msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Type: "invalid_request_error", Message: msg}
}

// CheckKey refuses a request without a test secret key: none, a
// publishable key and an unknown one as Stripe refuses them (401), a live
// key with billingtest's own error (it is test mode only). Any secret or
// restricted test key is accepted: the fake is one account.
func CheckKey(r *http.Request) *Error {
	key := apiKey(r)
	switch {
	case key == "":
		return Unauthorized("You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.")
	case strings.HasPrefix(key, "pk_"):
		return Unauthorized("This API call cannot be made with a publishable API key. Please use a secret API key. You can find a list of your API keys at https://dashboard.stripe.com/account/apikeys.")
	case strings.HasPrefix(key, "sk_live_"), strings.HasPrefix(key, "rk_live_"):
		return Unauthorized("billingtest is test mode only: it refuses live keys (" + redact(key) + "). Use a test key (sk_test_...).")
	case (strings.HasPrefix(key, "sk_test_") || strings.HasPrefix(key, "rk_test_")) && len(key) > len("sk_test_"):
		return nil
	}
	return Unauthorized("Invalid API Key provided: " + redact(key))
}

// APIVersion is the version the fake speaks (billingtest.APIVersion).
const APIVersion = "2025-08-27.basil"

var apiVersionRE = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})(?:\.([a-z]+))?$`)

// CheckVersion returns the API version a request is answered at: its
// Stripe-Version if that is a basil version (echoed back), else the
// account's default, [APIVersion]. Another release train is refused: Stripe
// would serve it, but the fake renders only basil's shapes, and a test on
// the wrong SDK must fail rather than pass with shapes it will never get.
func CheckVersion(r *http.Request) (string, *Error) {
	v := strings.TrimSpace(r.Header.Get("Stripe-Version"))
	if v == "" {
		return APIVersion, nil
	}
	m := apiVersionRE.FindStringSubmatch(v)
	if m == nil {
		return "", BadRequest("Invalid Stripe API version: " + v)
	}
	if m[4] == "basil" {
		return v, nil
	}
	return "", BadRequest("billingtest models only Stripe API version " + APIVersion + " (the basil release); " +
		"this request asks for " + v + ". Stripe itself would serve that version, but billingtest renders only " +
		"basil's shapes: use stripe-go v82 (or another SDK pinned to a basil version) against billingtest.")
}

// Expands returns the set of expand[] values of a request (expand[0]=x,
// expand[]=x or expand=x).
func Expands(form url.Values) map[string]bool {
	out := map[string]bool{}
	for k, vs := range form {
		if k == "expand" || strings.HasPrefix(k, "expand[") {
			for _, v := range vs {
				out[v] = true
			}
		}
	}
	return out
}

// Prefixed returns the form values under prefix[...], e.g.
// Prefixed(form, "metadata") for metadata[user_id]=u1. It returns nil when
// there are none.
func Prefixed(form url.Values, prefix string) map[string]string {
	var out map[string]string
	for k, vs := range form {
		rest, ok := strings.CutPrefix(k, prefix+"[")
		if !ok || !strings.HasSuffix(rest, "]") || strings.Contains(rest, "[") || len(vs) == 0 {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[strings.TrimSuffix(rest, "]")] = vs[0]
	}
	return out
}

const idChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// NewID returns prefix and n random letters and digits.
func NewID(prefix string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = idChars[rand.IntN(len(idChars))]
	}
	return prefix + string(b)
}

// PrefixedForm renames the parameters under prefix to be under as
// (subscription_details[items][0][price] → items[0][price]).
func PrefixedForm(f url.Values, prefix, as string) url.Values {
	out := url.Values{}
	for k, v := range f {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			out[as+rest] = v
		}
	}
	return out
}
