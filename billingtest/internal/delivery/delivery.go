// Package delivery is billingtest's webhook delivery: endpoints receive
// every event published after they were added, signed with their secret
// at the real time, and retried with exponential backoff until a 2xx or
// the last attempt, with the chaos a test asks for.
//
// An Engine has its own lock, which it never holds while sending, and it
// never calls back into the fake: the fake may publish with its own lock
// held (its lock is always taken first), and a receiving handler may call
// the fake's API.
package delivery

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"
)

// Defaults of [Options].
const (
	DefaultRetryBase   = 10 * time.Millisecond
	DefaultMaxAttempts = 8
	DefaultTimeout     = 10 * time.Second
)

// userAgent is the User-Agent of Stripe's webhook requests.
const userAgent = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"

// ErrClosed is returned by [Engine.Flush] once the engine is closed.
var ErrClosed = errors.New("billingtest: closed")

// Options tunes how events reach one endpoint (billingtest's
// DeliveryOptions and Chaos, flattened). Zero fields take the defaults.
type Options struct {
	RetryBase   time.Duration
	MaxAttempts int
	Timeout     time.Duration

	Shuffle           bool
	Duplicate         float64
	DropThenRedeliver float64
	Delay             time.Duration
	SameSecond        bool
	Seed              uint64
}

// withDefaults fills the zero fields of o.
func (o Options) withDefaults() Options {
	if o.RetryBase <= 0 {
		o.RetryBase = DefaultRetryBase
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return o
}

// Validate checks the chaos settings.
func (o Options) Validate() error {
	if o.Duplicate < 0 || o.Duplicate > 1 || o.DropThenRedeliver < 0 || o.DropThenRedeliver > 1 {
		return errors.New("billingtest: chaos probabilities must be between 0 and 1")
	}
	if o.Delay < 0 {
		return errors.New("billingtest: chaos delay must not be negative")
	}
	return nil
}

// Record is one event's delivery to one endpoint.
type Record struct {
	EndpointID, EventID, EventType string
	Duplicate                      bool
	Attempts, Status               int
	Err                            string
	Succeeded, GaveUp              bool
}

// Event is what is published: an event's ID, type, created second and
// JSON.
type Event struct {
	ID, Type string
	Created  int64
	JSON     []byte
}

// Endpoint is a webhook endpoint's configuration, as the API shows it.
type Endpoint struct {
	ID, URL, Description, APIVersion, Secret string
	Enabled                                  []string
	Metadata                                 map[string]string
	Disabled                                 bool
	Created                                  int64
}

// Wants reports whether the endpoint subscribes to an event type.
func (c Endpoint) Wants(typ string) bool {
	return slices.Contains(c.Enabled, "*") || slices.Contains(c.Enabled, typ)
}

type endpoint struct {
	cfg  Endpoint
	h    http.Handler // nil: POST to cfg.URL
	opts Options
	rng  chaosRand

	burst   int64         // SameSecond: the created second until the next Flush
	queue   []*task       // due deliveries of the ordered worker
	held    []*task       // Shuffle: waiting for Flush
	wake    chan struct{} // nudges the worker (capacity 1)
	gone    chan struct{} // closed on delete
	deleted bool
}

// task is one delivery of an event to an endpoint.
type task struct {
	ep      *endpoint
	seq     int
	payload []byte
	due     time.Time
	drop    bool // DropThenRedeliver: the first attempt is not sent
	done    bool
	rec     Record
}

// chaosRand holds one generator per kind of choice, so that timing-driven
// choices (delays) do not shift the others.
type chaosRand struct{ pick, delay, shuffle *rand.Rand }

func newChaosRand(seed uint64) chaosRand {
	if seed == 0 {
		seed = rand.Uint64()
	}
	return chaosRand{rand.New(rand.NewPCG(seed, 1)), rand.New(rand.NewPCG(seed, 2)), rand.New(rand.NewPCG(seed, 3))}
}

// Engine delivers events to endpoints. Create it with [New].
type Engine struct {
	defaultVersion string

	mu     sync.Mutex
	ctx    context.Context // cancelled by Close: in-flight requests end
	cancel context.CancelFunc
	stop   chan struct{} // closed by Close
	closed bool
	wg     sync.WaitGroup

	endpoints map[string]*endpoint
	epOrder   []string // endpoint IDs, oldest first
	tasks     []*task  // every delivery, in creation order
	byEvent   map[string][]*task
	seq       int

	pending int           // deliveries neither succeeded nor given up
	idle    chan struct{} // closed when pending drops to 0
	kick    chan struct{} // closed when an event is held for Flush

	transport *http.Transport
	client    *http.Client
}

// New returns an engine; events are stamped with an endpoint's API
// version unless it is defaultVersion.
func New(defaultVersion string) *Engine {
	ctx, cancel := context.WithCancel(context.Background())
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &Engine{
		defaultVersion: defaultVersion,
		ctx:            ctx, cancel: cancel, stop: make(chan struct{}),
		endpoints: map[string]*endpoint{}, byEvent: map[string][]*task{},
		idle: make(chan struct{}), kick: make(chan struct{}),
		transport: tr,
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // Stripe does not follow redirects: a 3xx is a failure
		}},
	}
}

// Add registers an endpoint, delivered to h in process (nil: POSTed to its
// URL), and starts its worker unless the engine is closed.
func (e *Engine) Add(cfg Endpoint, h http.Handler, o Options) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cfg.Enabled = slices.Clone(cfg.Enabled)
	ep := &endpoint{cfg: cfg, h: h, opts: o, rng: newChaosRand(o.Seed),
		wake: make(chan struct{}, 1), gone: make(chan struct{})}
	e.endpoints[cfg.ID] = ep
	e.epOrder = append(e.epOrder, cfg.ID)
	if !e.closed {
		e.wg.Add(1)
		go e.worker(ep)
	}
}

// Endpoint returns an endpoint's configuration.
func (e *Engine) Endpoint(id string) (Endpoint, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep := e.endpoints[id]
	if ep == nil {
		return Endpoint{}, false
	}
	return ep.snapshot(), true
}

func (ep *endpoint) snapshot() Endpoint {
	c := ep.cfg
	c.Enabled = slices.Clone(c.Enabled)
	return c
}

// Endpoints returns every endpoint's configuration, oldest first.
func (e *Engine) Endpoints() []Endpoint {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Endpoint, 0, len(e.epOrder))
	for _, id := range e.epOrder {
		out = append(out, e.endpoints[id].snapshot())
	}
	return out
}

// Update changes an endpoint's configuration (its ID and secret stay).
func (e *Engine) Update(id string, change func(*Endpoint)) (Endpoint, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep := e.endpoints[id]
	if ep == nil {
		return Endpoint{}, false
	}
	c := ep.snapshot()
	change(&c)
	c.ID, c.Secret = ep.cfg.ID, ep.cfg.Secret
	ep.cfg = c
	return ep.snapshot(), true
}

// SetOptions changes how events reach an endpoint. Turning Shuffle off
// releases the held events in order; the chaos generator is reseeded.
func (e *Engine) SetOptions(id string, o Options) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep := e.endpoints[id]
	if ep == nil {
		return false
	}
	ep.opts = o
	ep.rng = newChaosRand(o.Seed)
	if !o.Shuffle && len(ep.held) > 0 {
		ep.queue = append(ep.queue, ep.held...)
		ep.held = nil
		nudge(ep.wake)
	}
	return true
}

// Delete removes an endpoint; its pending deliveries are given up.
func (e *Engine) Delete(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep := e.endpoints[id]
	if ep == nil {
		return false
	}
	delete(e.endpoints, id)
	e.epOrder = slices.DeleteFunc(e.epOrder, func(x string) bool { return x == id })
	ep.deleted = true
	close(ep.gone)
	for _, t := range e.tasks {
		if t.ep == ep && !t.done {
			t.rec.GaveUp, t.rec.Err = true, "endpoint deleted"
			e.finish(t)
		}
	}
	ep.queue, ep.held = nil, nil
	return true
}

// Publish hands a new event to delivery: a delivery to every enabled
// endpoint that wants its type. It does not block.
func (e *Engine) Publish(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	for _, id := range e.epOrder {
		ep := e.endpoints[id]
		if ep.cfg.Disabled || !ep.cfg.Wants(ev.Type) {
			continue
		}
		payload := slices.Clone(ev.JSON)
		if v := ep.cfg.APIVersion; v != "" && v != e.defaultVersion {
			payload = StampField(payload, "api_version", v)
		}
		if ep.opts.SameSecond {
			if ep.burst == 0 {
				ep.burst = ev.Created
			}
			payload = StampField(payload, "created", ep.burst)
		}
		e.enqueue(ep, ev, payload, false)
		if d := ep.opts.Duplicate; d > 0 && ep.rng.pick.Float64() < d {
			e.enqueue(ep, ev, payload, true)
		}
	}
}

// StampField sets a top-level field of an event's JSON.
func StampField(payload []byte, field string, v any) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		panic("billingtest: " + err.Error())
	}
	m[field], _ = json.Marshal(v)
	out, err := json.Marshal(m)
	if err != nil {
		panic("billingtest: " + err.Error())
	}
	return out
}

// enqueue schedules one delivery. Called with e.mu held.
func (e *Engine) enqueue(ep *endpoint, ev Event, payload []byte, dup bool) {
	o := ep.opts.withDefaults()
	e.seq++
	t := &task{ep: ep, seq: e.seq, payload: payload, due: time.Now(),
		rec: Record{EndpointID: ep.cfg.ID, EventID: ev.ID, EventType: ev.Type, Duplicate: dup}}
	if dup {
		t.due = t.due.Add(o.RetryBase)
	}
	if p := o.DropThenRedeliver; p > 0 && o.MaxAttempts > 1 && ep.rng.pick.Float64() < p {
		t.drop = true
	}
	e.tasks = append(e.tasks, t)
	e.byEvent[ev.ID] = append(e.byEvent[ev.ID], t)
	if e.pending == 0 {
		e.idle = make(chan struct{})
	}
	e.pending++
	if o.Shuffle {
		ep.held = append(ep.held, t)
		close(e.kick)
		e.kick = make(chan struct{})
		return
	}
	ep.queue = append(ep.queue, t)
	nudge(ep.wake)
}

func nudge(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// finish ends a delivery. Called with e.mu held.
func (e *Engine) finish(t *task) {
	if t.done {
		return
	}
	t.done, t.payload = true, nil
	if e.pending--; e.pending == 0 {
		close(e.idle)
	}
}

// worker delivers an endpoint's queue one delivery at a time: the earliest
// due first, first attempts in the order the events were published. A
// failed delivery goes back to the queue, due after its backoff, so it
// does not hold later events back (Stripe's retries do not either).
func (e *Engine) worker(ep *endpoint) {
	defer e.wg.Done()
	for {
		e.mu.Lock()
		if e.closed || ep.deleted {
			e.mu.Unlock()
			return
		}
		var timer <-chan time.Time
		if i := nextDue(ep.queue); i >= 0 {
			t := ep.queue[i]
			if wait := time.Until(t.due); wait > 0 {
				timer = time.After(wait)
			} else {
				ep.queue = slices.Delete(ep.queue, i, i+1)
				e.mu.Unlock()
				if at, done := e.attempt(t); !done {
					e.mu.Lock()
					if !t.done {
						t.due = at
						ep.queue = append(ep.queue, t)
					}
					e.mu.Unlock()
				}
				continue
			}
		}
		e.mu.Unlock()
		select {
		case <-ep.wake:
		case <-timer:
		case <-ep.gone:
			return
		case <-e.stop:
			return
		}
	}
}

// nextDue returns the index of the task due first (ties: published
// first), or -1.
func nextDue(q []*task) int {
	best := -1
	for i, t := range q {
		if best < 0 || t.due.Before(q[best].due) || t.due.Equal(q[best].due) && t.seq < q[best].seq {
			best = i
		}
	}
	return best
}

// runAlone delivers one task of a shuffled batch, retries included.
func (e *Engine) runAlone(t *task) {
	defer e.wg.Done()
	for {
		at, done := e.attempt(t)
		if done || !e.sleep(t.ep, time.Until(at)) {
			return
		}
	}
}

// sleep waits d of real time; false if the engine closed or the endpoint
// was deleted meanwhile.
func (e *Engine) sleep(ep *endpoint, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ep.gone:
		return false
	case <-e.stop:
		return false
	}
}

// attempt makes one delivery attempt. It returns done once the delivery has
// succeeded or been given up (or was ended elsewhere), else when to retry.
func (e *Engine) attempt(t *task) (retryAt time.Time, done bool) {
	e.mu.Lock()
	if t.done || e.closed {
		e.mu.Unlock()
		return time.Time{}, true
	}
	ep := t.ep
	o := ep.opts.withDefaults()
	var delay time.Duration
	if o.Delay > 0 {
		delay = time.Duration(ep.rng.delay.Int64N(int64(o.Delay) + 1))
	}
	drop := t.drop && t.rec.Attempts == 0
	h, u, secret, payload := ep.h, ep.cfg.URL, ep.cfg.Secret, t.payload
	e.mu.Unlock()

	if !e.sleep(ep, delay) {
		return time.Time{}, true
	}
	status, errText := 0, "timed out (dropped by billingtest chaos)"
	if !drop {
		status, errText = e.send(h, u, secret, payload, o.Timeout)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if t.done {
		return time.Time{}, true
	}
	t.rec.Attempts++
	t.rec.Status, t.rec.Err = status, errText
	switch {
	case status >= 200 && status < 300:
		t.rec.Succeeded, t.rec.Err = true, ""
	case t.rec.Attempts >= o.MaxAttempts || e.closed:
		t.rec.GaveUp = true
	default:
		return time.Now().Add(backoff(o.RetryBase, t.rec.Attempts)), false
	}
	e.finish(t)
	return time.Time{}, true
}

// backoff is the wait after the n-th failed attempt: base, doubled for
// each attempt after the first (without overflowing).
func backoff(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < 24*time.Hour; i++ {
		d *= 2
	}
	return d
}

// send signs payload at the real time and POSTs it to the handler or URL.
// It returns the answer's status, or 0 and why there was none; for a
// non-2xx status the reason is "HTTP <status>".
func (e *Engine) send(h http.Handler, u, secret string, payload []byte, timeout time.Duration) (status int, reason string) {
	ctx, cancel := context.WithTimeout(e.ctx, timeout)
	defer cancel()
	var err error
	if h != nil {
		status, err = serveInProcess(ctx, h, u, secret, payload)
	} else {
		var req *http.Request
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(payload))
		if err == nil {
			SetHeaders(req, secret, payload)
			var resp *http.Response
			if resp, err = e.client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
				status = resp.StatusCode
			}
		}
	}
	if err != nil {
		return 0, err.Error()
	}
	if status < 200 || status >= 300 {
		return status, "HTTP " + strconv.Itoa(status)
	}
	return status, ""
}

func serveInProcess(ctx context.Context, h http.Handler, u, secret string, payload []byte) (status int, err error) {
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(payload))
	SetHeaders(req, secret, payload)
	rec := httptest.NewRecorder()
	defer func() {
		if p := recover(); p != nil {
			status, err = 0, fmt.Errorf("handler panicked: %v", p)
		}
	}()
	h.ServeHTTP(rec, req)
	return rec.Code, nil
}

// Sign returns the Stripe-Signature header for payload signed with secret
// at the real current time.
func Sign(secret string, payload []byte) string {
	now := time.Now()
	sig := webhook.ComputeSignature(now, payload, secret)
	return "t=" + strconv.FormatInt(now.Unix(), 10) + ",v1=" + hex.EncodeToString(sig)
}

// SetHeaders sets the headers of a webhook delivery: JSON, Stripe's
// User-Agent, and the signature.
func SetHeaders(req *http.Request, secret string, payload []byte) {
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("Stripe-Signature", Sign(secret, payload))
}

// Flush waits until every event published so far (and any published
// meanwhile) has been delivered with a 2xx answer or given up, to every
// endpoint. It first releases the events Shuffle holds. It returns ctx's
// error (with the count still pending) if ctx ends first, and [ErrClosed]
// once the engine is closed.
func (e *Engine) Flush(ctx context.Context) error {
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return ErrClosed
		}
		e.releaseHeld()
		for _, ep := range e.endpoints {
			ep.burst = 0
		}
		n, idle, kick := e.pending, e.idle, e.kick
		e.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-idle:
		case <-kick:
		case <-e.stop:
		case <-ctx.Done():
			return fmt.Errorf("billingtest: Flush: %d deliveries still pending: %w", n, ctx.Err())
		}
	}
}

// releaseHeld delivers the events Shuffle holds, each endpoint's batch in
// a random order and concurrently. Called with e.mu held.
func (e *Engine) releaseHeld() {
	for _, id := range e.epOrder {
		ep := e.endpoints[id]
		if len(ep.held) == 0 {
			continue
		}
		batch := ep.held
		ep.held = nil
		ep.rng.shuffle.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
		for _, t := range batch {
			e.wg.Add(1)
			go e.runAlone(t)
		}
	}
}

// Close ends every delivery goroutine: pending deliveries are abandoned,
// in-flight requests cancelled.
func (e *Engine) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	close(e.stop)
	e.cancel()
	e.mu.Unlock()
	e.wg.Wait()
	e.transport.CloseIdleConnections()
}

// Records returns every delivery so far, in the order they were scheduled.
func (e *Engine) Records() []Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Record, len(e.tasks))
	for i, t := range e.tasks {
		out[i] = t.rec
	}
	return out
}

// Unacknowledged reports whether an event is one that GET
// /v1/events?delivery_success=false lists: Stripe's "still pending or
// failed all delivery attempts to a webhook endpoint", that is, some
// endpoint it was sent to has not answered it with a 2xx (yet). A
// duplicate copy's success counts for its endpoint.
func (e *Engine) Unacknowledged(eventID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	ok := map[*endpoint]bool{}
	for _, t := range e.byEvent[eventID] {
		ok[t.ep] = ok[t.ep] || t.rec.Succeeded
	}
	for _, v := range ok {
		if !v {
			return true
		}
	}
	return false
}

// Await waits until no delivery of an event is in progress: each has
// succeeded, been given up, or is held for Flush (Shuffle). It reports
// whether every delivery that ended succeeded (true for an event no
// endpoint wanted), or false once ctx ends.
func (e *Engine) Await(ctx context.Context, eventID string) bool {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		e.mu.Lock()
		busy, failed := false, false
		for _, t := range e.byEvent[eventID] {
			switch {
			case t.rec.GaveUp:
				failed = true
			case !t.done && !slices.Contains(t.ep.held, t) && !e.closed:
				busy = true
			}
		}
		e.mu.Unlock()
		if !busy {
			return !failed
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}
