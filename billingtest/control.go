package billingtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gobilling/billing/billingtest/internal/httpapi"
)

// The control routes: billingtest's own, not Stripe's, under
// /_billingtest/, for clients that reach the fake over HTTP (the
// standalone server of `billing stripe serve`) and cannot call
// [Stripe.Advance]. They take the API's keys and answer errors in Stripe's
// shape, but are not API calls: [Stripe.Calls] does not count them, and
// [Stripe.SetFail] and idempotency keys do not apply.

// ControlPrefix is the path under which the control routes are served.
const ControlPrefix = "/_billingtest/"

// Control route paths.
const (
	controlClock   = ControlPrefix + "clock"
	controlAdvance = ControlPrefix + "clock/advance"
)

// ClockState is the answer of GET /_billingtest/clock.
type ClockState struct {
	// Object is "billingtest.clock".
	Object string `json:"object"`
	// Now is what the simulated clock reads, in Unix seconds.
	Now int64 `json:"now"`
	// NextEvent is when the clock next has something to do (see
	// [Stripe.NextEvent]), in Unix seconds; nil when nothing is scheduled.
	NextEvent *int64 `json:"next_event"`
	// APIVersion is the Stripe API version the fake speaks.
	APIVersion string `json:"api_version"`
}

// ClockAdvance is the answer of POST /_billingtest/clock/advance.
type ClockAdvance struct {
	// Object is "billingtest.clock_advance".
	Object string `json:"object"`
	// From is what the clock read before, Now what it reads after, in
	// Unix seconds.
	From int64 `json:"from"`
	Now  int64 `json:"now"`
	// NextEvent is when the clock next has something to do, in Unix
	// seconds; nil when nothing is scheduled.
	NextEvent *int64 `json:"next_event"`
	// Events are the events the advance emitted, in the order they were
	// emitted (oldest first, unlike /v1/events), each the full event
	// object as Stripe would POST it.
	Events []json.RawMessage `json:"events"`
}

// controlRoutes registers the control routes. New calls it once.
func (s *Stripe) controlRoutes() {
	s.mux.HandleFunc(ControlPrefix, s.serveControl)
}

func (s *Stripe) serveControl(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Request-Id", httpapi.NewID("req_", 14))
	if e := httpapi.CheckKey(r); e != nil {
		s.controlWrite(w, e.Status, e.Body())
		return
	}
	var (
		method string
		h      func(*http.Request) (any, *httpapi.Error)
	)
	switch r.URL.Path {
	case controlClock:
		method, h = http.MethodGet, s.controlClock
	case controlAdvance:
		method, h = http.MethodPost, s.controlAdvance
	default:
		e := &httpapi.Error{Status: http.StatusNotFound, Type: "invalid_request_error",
			Message: fmt.Sprintf("Unrecognized request URL (%s: %s). billingtest's control routes are GET %s and POST %s.",
				r.Method, r.URL.Path, controlClock, controlAdvance)}
		s.controlWrite(w, e.Status, e.Body())
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		e := &httpapi.Error{Status: http.StatusMethodNotAllowed, Type: "invalid_request_error",
			Message: fmt.Sprintf("%s takes %s, not %s.", r.URL.Path, method, r.Method)}
		s.controlWrite(w, e.Status, e.Body())
		return
	}
	if err := r.ParseForm(); err != nil {
		s.controlWrite(w, http.StatusBadRequest, httpapi.BadRequest("Invalid request body: "+err.Error()).Body())
		return
	}
	body, e := h(r)
	if e != nil {
		s.controlWrite(w, e.Status, e.Body())
		return
	}
	s.controlWrite(w, http.StatusOK, body)
}

// controlWrite answers a control request as the API answers: JSON, with a
// Date header in simulated time.
func (s *Stripe) controlWrite(w http.ResponseWriter, status int, body any) {
	raw, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Date", s.Now().UTC().Format(http.TimeFormat))
	w.WriteHeader(status)
	_, _ = w.Write(raw)
}

func (s *Stripe) nextEventUnix() *int64 {
	t, ok := s.NextEvent()
	if !ok {
		return nil
	}
	u := t.Unix()
	return &u
}

// controlParams refuses the parameters that are not among allowed, as the
// API refuses unknown ones (expand included: nothing here expands).
func controlParams(f url.Values, allowed ...string) *httpapi.Error {
	for k := range f {
		if k == "expand" || strings.HasPrefix(k, "expand[") {
			return httpapi.Unknown(k)
		}
	}
	return httpapi.CheckParams(f, allowed...)
}

// controlClock answers GET /_billingtest/clock.
func (s *Stripe) controlClock(r *http.Request) (any, *httpapi.Error) {
	if e := controlParams(r.Form); e != nil {
		return nil, e
	}
	return &ClockState{Object: "billingtest.clock", Now: s.Now().Unix(), NextEvent: s.nextEventUnix(), APIVersion: APIVersion}, nil
}

// controlAdvance answers POST /_billingtest/clock/advance: by=<duration>,
// to=<unix seconds> or to_next_event=true.
func (s *Stripe) controlAdvance(r *http.Request) (any, *httpapi.Error) {
	f := r.Form
	if e := controlParams(f, "by", "to", "to_next_event"); e != nil {
		return nil, e
	}
	var given []string
	for _, p := range []string{"by", "to", "to_next_event"} {
		if f.Has(p) {
			given = append(given, p)
		}
	}
	switch len(given) {
	case 0:
		return nil, &httpapi.Error{Status: 400, Type: "invalid_request_error", Code: "parameter_missing", Param: "by",
			Message: "Missing required param: by (a duration such as 31d or 36h), to (Unix seconds) or to_next_event=true."}
	case 1:
	default:
		return nil, httpapi.Exclusive(given...)
	}
	from := s.Now()
	var d time.Duration
	switch given[0] {
	case "by":
		v := f.Get("by")
		var err error
		if d, err = ParseDuration(v); err != nil {
			return nil, httpapi.Invalid("by", fmt.Sprintf("Invalid duration: %q. Use Go's units (h, m, s) and d for days, e.g. 31d or 1d12h.", v))
		}
		if d < 0 {
			return nil, httpapi.Invalid("by", fmt.Sprintf("Invalid duration: %q. The clock only moves forward.", v))
		}
	case "to":
		to, _, e := httpapi.IntParam(f, "to")
		if e != nil {
			return nil, e
		}
		d = time.Unix(to, 0).Sub(from)
		if d < -time.Second {
			return nil, httpapi.Invalid("to", fmt.Sprintf("to (%d) is before the clock's time (%d): the clock only moves forward.", to, from.Unix()))
		}
		d = max(d, 0)
	case "to_next_event":
		next, _, e := httpapi.BoolParam(f, "to_next_event")
		if e != nil {
			return nil, e
		}
		if !next {
			return nil, httpapi.Invalid("to_next_event", "to_next_event can only be true.")
		}
		if t, ok := s.NextEvent(); ok {
			d = max(t.Sub(from), 0)
		}
	}
	evs := s.Advance(d)
	out := &ClockAdvance{Object: "billingtest.clock_advance", From: from.Unix(), Now: s.Now().Unix(),
		NextEvent: s.nextEventUnix(), Events: make([]json.RawMessage, len(evs))}
	for i, ev := range evs {
		out.Events[i] = ev.JSON
	}
	return out, nil
}

// ParseDuration parses a duration as [time.ParseDuration] does, with d
// for days of 24 hours besides Go's units: "31d", "1d12h", "1.5d", "90m".
// The control route's by and `billing stripe advance` take it.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	bad := fmt.Errorf("billingtest: invalid duration %q: use Go's units (h, m, s, ms) and d for days, e.g. 31d or 1d12h", orig)
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, bad
	}
	isNum := func(c byte) bool { return c == '.' || '0' <= c && c <= '9' }
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && isNum(s[i]) {
			i++
		}
		j := i
		for j < len(s) && !isNum(s[j]) {
			j++
		}
		num, unit := s[:i], s[i:j]
		s = s[j:]
		if num == "" || unit == "" {
			return 0, bad
		}
		var d time.Duration
		if unit == "d" {
			n, err := strconv.ParseFloat(num, 64)
			if err != nil || n*24 > float64(1<<63-1)/float64(time.Hour) {
				return 0, bad
			}
			d = time.Duration(n * 24 * float64(time.Hour))
		} else {
			var err error
			if d, err = time.ParseDuration(num + unit); err != nil {
				return 0, bad
			}
		}
		if total+d < total {
			return 0, bad
		}
		total += d
	}
	if neg {
		total = -total
	}
	return total, nil
}
