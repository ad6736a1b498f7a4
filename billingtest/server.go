// Package billingtest is an offline Stripe for testing apps that use
// package billing, and for running them without a Stripe account: a
// stateful fake of the Stripe API subset billing calls, served over HTTP
// in Stripe's shapes (API 2025-08-27.basil) so that a stripe-go v82
// client pointed at [Stripe.URL] works unchanged.
//
// It keeps state (customers, prices, Checkout Sessions, subscriptions,
// invoices, events), honours idempotency keys as Stripe does, and answers
// with Stripe-shaped errors. Its simulated clock keeps ticking in real
// time from [Options].Start and moves forward with [Stripe.Advance]; pass
// [Stripe.Now] as billing.Config.Now. Every response carries a Date header
// in simulated time.
//
// It needs no testing.T: the example site runs it in-process.
package billingtest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// APIVersion is the Stripe API version the fake speaks and stamps on events.
const APIVersion = "2025-08-27.basil"

// FailureOutcome is what happens to a subscription after the last automatic
// payment retry of an invoice has failed (Stripe's "subscription status"
// setting for failed payments).
type FailureOutcome string

// The possible failure outcomes.
const (
	OutcomeCancel  FailureOutcome = "cancel"   // the subscription is canceled (default)
	OutcomeUnpaid  FailureOutcome = "unpaid"   // the subscription is marked unpaid
	OutcomePastDue FailureOutcome = "past_due" // the subscription is left past_due
)

// Stripe is the fake Stripe. Create it with [New]; it is safe for concurrent
// use.
type Stripe struct {
	ts  *httptest.Server
	mux *http.ServeMux

	mu         sync.Mutex
	offset     time.Duration // simulated time = real time + offset
	prices     map[string]*price
	customers  map[string]*customer
	sessions   map[string]*session
	sessOrder  []string
	portals    map[string]*portalSession
	subs       map[string]*subscription
	subOrder   []string
	invoices   map[string]*invoice
	events     []Event
	eventIndex map[string]int
	calls      map[string]int
	fails      map[string]*injectedFailure
	idem       map[string]*idemEntry
	outcome    FailureOutcome
	retries    []time.Duration
	invoiceSeq int
}

type injectedFailure struct{ status, n int }

type idemEntry struct {
	fingerprint string
	status      int
	body        []byte
}

// Options configures [New].
type Options struct {
	// Start is what the simulated clock reads at New; it then ticks in
	// real time. Zero means the real current time.
	Start time.Time
}

// New starts an offline Stripe on a local port. Call [Stripe.Close] when
// done.
func New(opts Options) *Stripe {
	start := opts.Start
	s := &Stripe{
		mux:        http.NewServeMux(),
		prices:     map[string]*price{},
		customers:  map[string]*customer{},
		sessions:   map[string]*session{},
		portals:    map[string]*portalSession{},
		subs:       map[string]*subscription{},
		invoices:   map[string]*invoice{},
		eventIndex: map[string]int{},
		calls:      map[string]int{},
		fails:      map[string]*injectedFailure{},
		idem:       map[string]*idemEntry{},
		outcome:    OutcomeCancel,
		retries:    []time.Duration{24 * time.Hour, 3 * 24 * time.Hour, 5 * 24 * time.Hour},
	}
	if !start.IsZero() {
		s.offset = time.Until(start)
	}
	s.routes()
	s.ts = httptest.NewServer(s.mux)
	return s
}

// URL is the base URL of the fake API (for stripe.BackendConfig.URL).
func (s *Stripe) URL() string { return s.ts.URL }

// Close shuts the HTTP server down.
func (s *Stripe) Close() { s.ts.Close() }

// Now returns the simulated current time.
func (s *Stripe) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now()
}

func (s *Stripe) now() time.Time { return time.Now().Add(s.offset) }
func (s *Stripe) unix() int64    { return s.now().Unix() }

// Advance moves the simulated clock forward by d.
func (s *Stripe) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}

// SetFailureOutcome sets what happens after the last failed payment retry
// (default [OutcomeCancel]). It panics on an unknown outcome.
func (s *Stripe) SetFailureOutcome(o FailureOutcome) {
	switch o {
	case OutcomeCancel, OutcomeUnpaid, OutcomePastDue:
	default:
		panic(fmt.Sprintf("billingtest: unknown failure outcome %q", o))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcome = o
}

// SetRetrySchedule sets when automatic payment retries happen, as offsets
// from an invoice's first attempt. The default is 1, 3 and 5 days, so an
// invoice gets at most 4 attempts; after the last one next_payment_attempt is
// null and the failure outcome applies.
func (s *Stripe) SetRetrySchedule(after ...time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retries = append([]time.Duration(nil), after...)
}

// Calls returns how many requests each route received, keyed by method and
// route pattern, e.g. "GET /v1/subscriptions/{id}". Requests to unknown
// routes are keyed by their method and literal path.
func (s *Stripe) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// TotalCalls returns the number of API requests received since the last
// [Stripe.ResetCalls].
func (s *Stripe) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.calls {
		n += v
	}
	return n
}

// ResetCalls clears the request counters.
func (s *Stripe) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
}

// SetFail makes the next n requests to route (a key as in [Stripe.Calls],
// e.g. "POST /v1/checkout/sessions") fail with a Stripe-style api_error of
// the given HTTP status (429 gets code rate_limit). Failed requests are not
// saved for idempotent replay. n <= 0 clears the injection.
func (s *Stripe) SetFail(route string, status int, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.fails, route)
		return
	}
	s.fails[route] = &injectedFailure{status: status, n: n}
}

// apiError is a Stripe error response.
type apiError struct {
	status           int
	typ, code, param string
	message          string
}

func (e *apiError) Error() string { return e.message }

func (e *apiError) body() map[string]any {
	m := map[string]any{"type": e.typ, "message": e.message}
	if e.code != "" {
		m["code"] = e.code
		m["doc_url"] = "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(e.code, "_", "-")
	}
	if e.param != "" {
		m["param"] = e.param
	}
	return map[string]any{"error": m}
}

func missing(param string) *apiError {
	return &apiError{status: 400, typ: "invalid_request_error", code: "parameter_missing", param: param,
		message: "Missing required param: " + param + "."}
}

func invalid(param, msg string) *apiError {
	return &apiError{status: 400, typ: "invalid_request_error", code: "parameter_invalid", param: param, message: msg}
}

// noSuch is the error for an unknown object: 404 for the object in the path,
// 400 for one referenced by a parameter.
func noSuch(status int, kind, id, param string) *apiError {
	return &apiError{status: status, typ: "invalid_request_error", code: "resource_missing", param: param,
		message: fmt.Sprintf("No such %s: '%s'", kind, id)}
}

// handler answers one API request with a status and a JSON-able body. It
// runs with s.mu held.
type handler func(r *http.Request) (int, any)

// handle registers an API route with the common Stripe behaviour: request
// counting, failure injection, idempotency and response headers.
func (s *Stripe) handle(pattern string, h handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		route := r.Pattern
		if route == "/" {
			route = r.Method + " " + r.URL.Path
		}
		s.calls[route]++
		w.Header().Set("Request-Id", newID("req_", 14))
		if f := s.fails[route]; f != nil {
			if f.n--; f.n <= 0 {
				delete(s.fails, route)
			}
			e := &apiError{status: f.status, typ: "api_error", message: "Injected failure (billingtest)."}
			if f.status == http.StatusTooManyRequests {
				e.typ, e.code = "invalid_request_error", "rate_limit"
				e.message = "Request rate limit exceeded."
			}
			s.write(w, e.status, e.body())
			return
		}
		if err := r.ParseForm(); err != nil {
			s.write(w, 400, invalid("", "Invalid request body: "+err.Error()).body())
			return
		}
		key := ""
		if r.Method == http.MethodPost {
			key = r.Header.Get("Idempotency-Key")
		}
		fp := r.Method + " " + r.URL.Path + "?" + r.PostForm.Encode()
		if key != "" {
			w.Header().Set("Idempotency-Key", key)
			if e, ok := s.idem[key]; ok {
				if e.fingerprint != fp {
					err := &apiError{status: 400, typ: "idempotency_error",
						message: "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '" + key + "' if you meant to execute a different request."}
					s.write(w, err.status, err.body())
					return
				}
				w.Header().Set("Idempotent-Replayed", "true")
				s.writeRaw(w, e.status, e.body)
				return
			}
		}
		status, body := h(r)
		if e, ok := body.(*apiError); ok {
			status, body = e.status, e.body()
		}
		raw, err := json.Marshal(body)
		if err != nil {
			panic(err)
		}
		if key != "" && status < 300 {
			s.idem[key] = &idemEntry{fingerprint: fp, status: status, body: raw}
		}
		s.writeRaw(w, status, raw)
	})
}

func (s *Stripe) write(w http.ResponseWriter, status int, body any) {
	raw, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	s.writeRaw(w, status, raw)
}

func (s *Stripe) writeRaw(w http.ResponseWriter, status int, raw []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Date", s.now().UTC().Format(http.TimeFormat))
	h.Set("Stripe-Version", APIVersion)
	w.WriteHeader(status)
	_, _ = w.Write(raw)
}

// routes registers the API.
func (s *Stripe) routes() {
	s.handle("POST /v1/customers", s.createCustomer)
	s.handle("GET /v1/customers/{id}", s.getCustomer)
	s.handle("POST /v1/checkout/sessions", s.createSession)
	s.handle("GET /v1/checkout/sessions/{id}", s.getSession)
	s.handle("POST /v1/billing_portal/sessions", s.createPortal)
	s.handle("GET /v1/subscriptions/{id}", s.getSubscription)
	s.handle("GET /v1/invoices/{id}", s.getInvoice)
	s.handle("GET /v1/events/{id}", s.getEvent)
	s.deliveryRoutes()
	s.handle("/", func(r *http.Request) (int, any) {
		return 0, &apiError{status: 404, typ: "invalid_request_error",
			message: fmt.Sprintf("Unrecognized request URL (%s: %s). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.", r.Method, r.URL.Path)}
	})
	s.pageRoutes()
}

// expands returns the set of expand[] values of a request (expand[0]=x,
// expand[]=x or expand=x).
func expands(form url.Values) map[string]bool {
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

// prefixed returns the form values under prefix[...], e.g.
// prefixed(form, "metadata") for metadata[user_id]=u1. It returns nil when
// there are none.
func prefixed(form url.Values, prefix string) map[string]string {
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

func newID(prefix string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = idChars[rand.IntN(len(idChars))]
	}
	return prefix + string(b)
}
