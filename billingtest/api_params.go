package billingtest

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Request parameter checks, with Stripe's errors.

// keyParts splits a form key like line_items[0][price] into its parts
// ("line_items", "0", "price"). It returns nil for a malformed key.
func keyParts(key string) []string {
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

// matchKey reports whether a form key matches a pattern in the same
// notation, where the part "*" matches any one part and "#" an array index
// (digits, or empty as in expand[]).
func matchKey(key []string, pattern string) bool {
	pat := keyParts(pattern)
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

// checkParams refuses the first parameter (in sorted order) that matches
// none of the patterns (see matchKey), as Stripe refuses an unknown
// parameter. expand and expand[#] are always allowed.
func checkParams(form url.Values, patterns ...string) *apiError {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		parts := keyParts(k)
		ok := parts != nil && (matchKey(parts, "expand") || matchKey(parts, "expand[#]"))
		for _, p := range patterns {
			if ok {
				break
			}
			ok = parts != nil && matchKey(parts, p)
		}
		if !ok {
			e := unknownParam(k)
			for _, p := range patterns {
				if pp := keyParts(p); len(pp) > 0 && len(parts) > 0 && pp[0] == parts[0] {
					e.partlyModelled = true
				}
			}
			return e
		}
	}
	return nil
}

// listParams are the parameters every list endpoint takes.
var listParams = []string{"limit", "starting_after", "ending_before", "created",
	"created[gt]", "created[gte]", "created[lt]", "created[lte]"}

// withList returns the list parameters and more.
func withList(more ...string) []string { return append(slices.Clone(listParams), more...) }

// intParam parses an integer parameter; ok is false when it is absent.
func intParam(form url.Values, name string) (n int64, ok bool, err *apiError) {
	if !form.Has(name) {
		return 0, false, nil
	}
	v := form.Get(name)
	n, perr := strconv.ParseInt(v, 10, 64)
	if perr != nil {
		return 0, false, invalidInteger(name, "Invalid integer: "+v)
	}
	return n, true, nil
}

// boolParam parses a boolean parameter; ok is false when it is absent.
func boolParam(form url.Values, name string) (b, ok bool, err *apiError) {
	if !form.Has(name) {
		return false, false, nil
	}
	switch v := form.Get(name); v {
	case "true":
		return true, true, nil
	case "false":
		return false, true, nil
	default:
		return false, false, invalid(name, "Invalid boolean: "+v)
	}
}

// enumParam checks that a present parameter is one of the allowed values.
func enumParam(form url.Values, name string, allowed ...string) (string, *apiError) {
	if !form.Has(name) {
		return "", nil
	}
	v := form.Get(name)
	if !slices.Contains(allowed, v) {
		return "", invalid(name, fmt.Sprintf("Invalid %s: must be one of %s", name, oneOf(allowed)))
	}
	return v, nil
}

// oneOf lists values as Stripe's messages do: "a, b, or c".
func oneOf(vs []string) string {
	switch len(vs) {
	case 1:
		return vs[0]
	case 2:
		return vs[0] + " or " + vs[1]
	}
	return strings.Join(vs[:len(vs)-1], ", ") + ", or " + vs[len(vs)-1]
}

// arrayParam returns the values of an array parameter (name[0]=a&name[1]=b,
// name[]=a&name[]=b), in index order.
func arrayParam(form url.Values, name string) []string {
	type iv struct {
		i int
		v []string
	}
	var items []iv
	for k, vs := range form {
		parts := keyParts(k)
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

// indexes returns the sorted indexes i of the parameters name[i][...].
func indexes(form url.Values, name string) ([]int, *apiError) {
	var out []int
	for k := range form {
		parts := keyParts(k)
		if len(parts) < 3 || parts[0] != name {
			continue
		}
		i, err := strconv.Atoi(parts[1])
		if err != nil || i < 0 {
			return nil, invalid(k, "Invalid array index in "+k)
		}
		if !slices.Contains(out, i) {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out, nil
}

// metadataParam reads metadata[key]=value parameters under prefix (e.g.
// "metadata" or "subscription_data[metadata]") and checks Stripe's limits.
// set is nil when there are none; clear reports prefix="" (unset all). On an
// update an empty value unsets the key.
func metadataParam(form url.Values, prefix string) (set map[string]string, clear bool, err *apiError) {
	if form.Has(prefix) {
		if form.Get(prefix) != "" {
			return nil, false, invalid(prefix, "Invalid object")
		}
		clear = true
	}
	set = prefixed(form, prefix)
	if len(set) > 50 {
		return nil, false, invalid(prefix, "Metadata can have up to 50 keys.")
	}
	for k, v := range set {
		switch {
		case k == "":
			return nil, false, invalid(prefix, "Metadata keys must not be empty.")
		case len(k) > 40:
			return nil, false, invalid(prefix+"["+k+"]", "Metadata keys can be up to 40 characters long.")
		case len(v) > 500:
			return nil, false, invalid(prefix+"["+k+"]", "Metadata values can be up to 500 characters long.")
		}
	}
	return set, clear, nil
}

// applyMetadata applies a metadata update to m and returns the result (nil
// when empty).
func applyMetadata(m map[string]string, set map[string]string, clear bool) map[string]string {
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

// expandParam returns the expand[] values after checking each against the
// expandable properties.
func expandParam(form url.Values, allowed ...string) (map[string]bool, *apiError) {
	exp := expands(form)
	for v := range exp {
		if !slices.Contains(allowed, v) {
			return nil, badRequestParam("expand", "This property cannot be expanded ("+v+").")
		}
	}
	return exp, nil
}

// listExpand is expandParam for a list: the expandable properties of its
// objects under data.
func listExpand(form url.Values, allowed ...string) (map[string]bool, *apiError) {
	data := make([]string, len(allowed))
	for i, a := range allowed {
		data[i] = "data." + a
	}
	exp, err := expandParam(form, data...)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for v := range exp {
		out[strings.TrimPrefix(v, "data.")] = true
	}
	return out, nil
}

// badRequestParam is an invalid request blamed on a parameter, without a code.
func badRequestParam(param, msg string) *apiError {
	e := badRequest(msg)
	e.param = param
	return e
}
