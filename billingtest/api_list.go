package billingtest

import (
	"net/url"
	"slices"
)

// Lists: Stripe's cursor pagination over objects newest first.

// entry is one object of a list: its ID, creation time and rendering.
type entry struct {
	id      string
	created int64
	render  func() any
}

// newestFirst turns IDs in creation order into list entries, newest first.
func newestFirst(order []string, created func(id string) int64, render func(id string) any) []entry {
	out := make([]entry, 0, len(order))
	for _, id := range slices.Backward(order) {
		out = append(out, entry{id: id, created: created(id), render: func() any { return render(id) }})
	}
	return out
}

// createdFilter parses created=<unix> and created[gt|gte|lt|lte]=<unix>.
func createdFilter(form url.Values) (func(int64) bool, *apiError) {
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
		v, ok, err := intParam(form, b.op)
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

// listPage answers a list request. all holds every object of the kind
// (named kind in errors, e.g. "customer"), newest first; keep filters them
// (nil keeps all). It applies the created filters, the cursor
// (starting_after or ending_before, looked up among all) and limit.
func listPage(form url.Values, path, kind string, all []entry, keep func(entry) bool) (map[string]any, *apiError) {
	limit, ok, err := intParam(form, "limit")
	switch {
	case err != nil:
		return nil, err
	case !ok:
		limit = 10
	case limit < 1:
		return nil, invalidInteger("limit", "This value must be greater than or equal to 1.")
	case limit > 100:
		return nil, invalidInteger("limit", "This value must be less than or equal to 100.")
	}
	created, err := createdFilter(form)
	if err != nil {
		return nil, err
	}
	after, before := form.Get("starting_after"), form.Get("ending_before")
	if after != "" && before != "" {
		return nil, exclusive("ending_before", "starting_after")
	}
	cursor, param := after, "starting_after"
	if before != "" {
		cursor, param = before, "ending_before"
	}
	at := -1
	if cursor != "" {
		at = slices.IndexFunc(all, func(e entry) bool { return e.id == cursor })
		if at < 0 {
			return nil, noSuch(400, kind, cursor, param)
		}
	}
	var picked []entry
	for i, e := range all {
		if (keep != nil && !keep(e)) || !created(e.created) {
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
		data[i] = e.render()
	}
	l := list(path, data)
	l["has_more"] = hasMore
	return l, nil
}
