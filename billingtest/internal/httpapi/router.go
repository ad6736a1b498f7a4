package httpapi

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Router serves the API's routes with Stripe's common behaviour: keys and
// versions, request counting, failure injection, idempotency, and the
// response headers.
type Router struct {
	mux    *http.ServeMux
	lock   sync.Locker
	now    func() time.Time
	before func()
	valid  map[string][]string

	calls    map[string]int
	fails    map[string]*injectedFailure
	idem     map[string]*idemEntry
	inflight map[string]bool // idempotency keys whose first request is running
	cur      reqInfo         // the request whose handler is running

	// beforeExecute, if set, is called without the lock after a request
	// passed the idempotency checks and before its handler runs.
	beforeExecute func(route, idempotencyKey string)
}

// NewRouter returns a router on mux. Handlers run with lock held; now
// reads the simulated clock and before runs before each handler (both
// with lock held); valid lists the parameters Stripe accepts by route, so
// that one the fake does not model is refused as not modelled.
func NewRouter(mux *http.ServeMux, lock sync.Locker, now func() time.Time, before func(), valid map[string][]string) *Router {
	return &Router{mux: mux, lock: lock, now: now, before: before, valid: valid,
		calls: map[string]int{}, fails: map[string]*injectedFailure{}, idem: map[string]*idemEntry{},
		inflight: map[string]bool{}}
}

// idempotencyTTL is how long Stripe keeps an idempotency key's result.
const idempotencyTTL = 24 * time.Hour

type injectedFailure struct{ status, n int }

// idemEntry is the saved result of an idempotent request.
type idemEntry struct {
	endpoint, params string
	status           int
	body             []byte
	requestID        string
	saved            time.Time // simulated
}

// reqInfo identifies the API request being handled.
type reqInfo struct{ id, key string }

// Current returns the ID and idempotency key of the request whose handler
// is running ("" outside one). Called with the lock held.
func (rt *Router) Current() (requestID, idempotencyKey string) { return rt.cur.id, rt.cur.key }

// Calls returns how many requests each route received.
func (rt *Router) Calls() map[string]int {
	rt.lock.Lock()
	defer rt.lock.Unlock()
	return maps.Clone(rt.calls)
}

// ResetCalls clears the request counters.
func (rt *Router) ResetCalls() {
	rt.lock.Lock()
	defer rt.lock.Unlock()
	clear(rt.calls)
}

// SetFail makes the next n requests to route fail with status (n <= 0
// clears it).
func (rt *Router) SetFail(route string, status int, n int) {
	rt.lock.Lock()
	defer rt.lock.Unlock()
	if n <= 0 {
		delete(rt.fails, route)
		return
	}
	rt.fails[route] = &injectedFailure{status: status, n: n}
}

// SetBeforeExecute sets the hook that each request calls, without the
// lock, once past the idempotency checks; nil removes it.
func (rt *Router) SetBeforeExecute(f func(route, idempotencyKey string)) {
	rt.lock.Lock()
	defer rt.lock.Unlock()
	rt.beforeExecute = f
}

// Handler answers one API request with a status and a JSON-able body (an
// *Error for an error). It runs with the router's Lock held, the request's
// form parsed (r.Form has the query and the body).
type Handler func(r *http.Request) (int, any)

// Handle registers an API route with the common Stripe behaviour: request
// counting, failure injection, idempotency, lazy session expiry and response
// headers.
func (rt *Router) Handle(pattern string, h Handler) {
	rt.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		parseErr := r.ParseForm()
		rt.lock.Lock()
		defer rt.lock.Unlock()
		route := r.Pattern
		if route == "/" {
			route = r.Method + " " + r.URL.Path
		}
		rt.calls[route]++
		reqID := NewID("req_", 14)
		w.Header().Set("Request-Id", reqID)
		if e := CheckKey(r); e != nil {
			rt.write(w, e.Status, e.Body())
			return
		}
		version, e := CheckVersion(r)
		if e != nil {
			rt.write(w, e.Status, e.Body())
			return
		}
		w.Header().Set("Stripe-Version", version)
		rt.before()
		if f := rt.fails[route]; f != nil {
			if f.n--; f.n <= 0 {
				delete(rt.fails, route)
			}
			e := &Error{Status: f.status, Type: "api_error", Message: "Injected failure (billingtest)."}
			if f.status == http.StatusTooManyRequests {
				e.Type, e.Code = "invalid_request_error", "rate_limit"
				e.Message = "Request rate limit exceeded."
			}
			rt.write(w, e.Status, e.Body())
			return
		}
		if parseErr != nil {
			rt.write(w, 400, BadRequest("Invalid request body: "+parseErr.Error()).Body())
			return
		}
		key := ""
		if r.Method == http.MethodPost || r.Method == http.MethodDelete {
			key = strings.TrimSpace(r.Header.Get("Idempotency-Key"))
		}
		endpoint, params := r.Method+" "+r.URL.Path, r.Form.Encode()
		if key != "" {
			w.Header().Set("Idempotency-Key", key)
			if rt.replay(w, key, endpoint, params) {
				return
			}
			rt.inflight[key] = true
			defer delete(rt.inflight, key)
		}
		if hook := rt.beforeExecute; hook != nil {
			rt.lock.Unlock()
			hook(route, key)
			rt.lock.Lock()
		}
		rt.cur = reqInfo{id: reqID, key: key}
		defer func() { rt.cur = reqInfo{} }()
		status, body := h(r)
		save := true
		if e, ok := body.(*Error); ok && e.Code == "parameter_unknown" && !e.PartlyModelled {
			if name := KeyParts(e.Param); len(name) > 0 && slices.Contains(rt.valid[route], name[0]) {
				body = NotModelled(e.Param, "the parameter "+e.Param+" on "+route)
			}
		}
		if e, ok := body.(*Error); ok {
			// An invalid request fails before the endpoint executes.
			status, body, save = e.Status, e.Body(), e.Type != "invalid_request_error"
		}
		raw, err := json.Marshal(body)
		if err != nil {
			panic(err)
		}
		if key != "" && save {
			rt.saveIdempotent(key, &idemEntry{endpoint: endpoint, params: params, status: status, body: raw,
				requestID: reqID, saved: rt.now()})
		}
		rt.writeRaw(w, status, raw)
	})
}

// replay answers a request whose idempotency key is known: the saved
// response, or an idempotency error. It reports whether it answered.
func (rt *Router) replay(w http.ResponseWriter, key, endpoint, params string) bool {
	var err *Error
	e := rt.idem[key]
	if e != nil && !rt.now().Before(e.saved.Add(idempotencyTTL)) {
		delete(rt.idem, key)
		e = nil
	}
	switch {
	case len(key) > 255:
		err = IdempotencyError(400, "", "Keys for idempotent requests can be no longer than 255 characters.")
	case rt.inflight[key]:
		err = IdempotencyError(409, "idempotency_key_in_use",
			"There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): '"+key+"'. Please try again later.")
	case e == nil:
		return false
	case e.endpoint != endpoint:
		err = IdempotencyError(400, "",
			"Keys for idempotent requests can only be used for the same endpoint they were first used for ('"+e.endpoint+"' vs '"+endpoint+"'). Try using a key other than '"+key+"' if you meant to execute a different request.")
	case e.params != params:
		err = IdempotencyError(400, "",
			"Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '"+key+"' if you meant to execute a different request.")
	default:
		w.Header().Set("Idempotent-Replayed", "true")
		w.Header().Set("Original-Request", e.requestID)
		rt.writeRaw(w, e.status, e.body)
		return true
	}
	rt.write(w, err.Status, err.Body())
	return true
}

// saveIdempotent saves a key's result and forgets the expired ones.
func (rt *Router) saveIdempotent(key string, e *idemEntry) {
	for k, old := range rt.idem {
		if !e.saved.Before(old.saved.Add(idempotencyTTL)) {
			delete(rt.idem, k)
		}
	}
	rt.idem[key] = e
}

func (rt *Router) write(w http.ResponseWriter, status int, body any) {
	raw, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	rt.writeRaw(w, status, raw)
}

func (rt *Router) writeRaw(w http.ResponseWriter, status int, raw []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Date", rt.now().UTC().Format(http.TimeFormat))
	if h.Get("Stripe-Version") == "" {
		h.Set("Stripe-Version", APIVersion)
	}
	w.WriteHeader(status)
	_, _ = w.Write(raw)
}
