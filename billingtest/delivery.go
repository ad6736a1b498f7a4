package billingtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Webhook delivery: endpoints (registered through the API or in-process
// with [Stripe.AddEndpoint]) receive every event the simulator emits after
// they were created, signed with their secret at the real time, and retried
// with exponential backoff until a 2xx or the last attempt.
//
// All state lives under s.mu. Delivery goroutines take it only to pick work
// and record results: a request is never sent with it held, so a receiving
// handler may call the fake's API.

// Defaults of [DeliveryOptions].
const (
	DefaultRetryBase   = 10 * time.Millisecond
	DefaultMaxAttempts = 8
	DefaultTimeout     = 10 * time.Second
)

// webhookUserAgent is the User-Agent of Stripe's webhook requests.
const webhookUserAgent = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"

// ErrClosed is returned by [Stripe.Flush] once the fake has been closed.
var ErrClosed = errors.New("billingtest: closed")

// Endpoint identifies a webhook endpoint added with [Stripe.AddEndpoint].
type Endpoint struct {
	ID     string // we_...
	Secret string // whsec_..., the signing secret
}

// EndpointOptions configures an in-process endpoint of [Stripe.AddEndpoint].
type EndpointOptions struct {
	// Secret is the signing secret. Empty means a random whsec_ secret; set
	// one when the receiver must be configured before the endpoint exists
	// (billing.Config.WebhookSecrets).
	Secret string

	// EnabledEvents are the event types delivered: "*" (the default, when
	// empty) or types such as "invoice.paid".
	EnabledEvents []string

	// APIVersion is the version events are rendered as. Empty means the
	// account's default, [APIVersion]; any other version (say
	// "2025-09-30.clover") is stamped into each delivered event's
	// api_version, as Stripe does for an endpoint pinned to it.
	APIVersion string

	// URL is the endpoint's url in the API and the URL of the requests
	// handed to the handler. Empty means
	// "https://in-process.invalid/stripe/webhook".
	URL string

	// Description is the endpoint's description in the API.
	Description string

	// Delivery tunes retries and chaos.
	Delivery DeliveryOptions
}

// DeliveryOptions tunes how events reach one endpoint. Zero fields take
// the defaults.
type DeliveryOptions struct {
	// RetryBase is the real-time wait before the first retry of a failed
	// delivery; each further retry waits twice as long as the one before
	// (default [DefaultRetryBase]).
	RetryBase time.Duration

	// MaxAttempts is how many attempts a delivery gets, the first one
	// included, before it is given up (default [DefaultMaxAttempts]).
	MaxAttempts int

	// Timeout bounds one attempt: the whole request for a URL endpoint, the
	// request context's deadline for an in-process handler (default
	// [DefaultTimeout]).
	Timeout time.Duration

	// Chaos makes delivery behave like the worst Stripe allows.
	Chaos Chaos
}

// Chaos makes delivery to one endpoint adversarial, as Stripe is allowed to
// be: at least once, in no particular order. Random choices are seeded with
// Seed: which events are duplicated or dropped, the order of each shuffled
// batch and the sequence of delays repeat from run to run (the arrival
// order of concurrent deliveries does not).
//
// Every event of one simulator step (one [Stripe.Pay], one renewal's
// charge, …) already has the same created second, and so do steps less
// than a second apart on the simulated clock; SameSecond goes further.
type Chaos struct {
	// Shuffle holds the endpoint's events until the next [Stripe.Flush],
	// then delivers that batch in a random order, all at once (each event,
	// with its retries, in a goroutine of its own).
	Shuffle bool

	// Duplicate is the probability that an event is sent twice: the copy is
	// a delivery of its own, due one RetryBase after the original.
	Duplicate float64

	// DropThenRedeliver is the probability that an event's first attempt is
	// not sent at all and counts as a timed-out attempt, so the receiver
	// sees it only once, on the retry, after later events. It applies only
	// when MaxAttempts allows a retry.
	DropThenRedeliver float64

	// Delay is the longest random real-time wait before each attempt.
	Delay time.Duration

	// SameSecond stamps every event sent to the endpoint between two
	// [Stripe.Flush] calls with the created second of the first of them,
	// as if Stripe had made all those changes within one second: a
	// receiver can then order them only by fetching the objects.
	SameSecond bool

	// Seed seeds the chaos; 0 means a random seed.
	Seed uint64
}

// Delivery is one event's delivery to one endpoint, as [Stripe.Deliveries]
// reports it.
type Delivery struct {
	EndpointID string
	EventID    string
	EventType  string
	// Duplicate marks the extra copy sent by Chaos.Duplicate.
	Duplicate bool
	// Attempts counts the attempts made so far, a dropped one included.
	Attempts int
	// Status is the HTTP status of the last attempt, 0 if it got no
	// response (transport error, timeout, chaos drop, handler panic).
	Status int
	// Err says why the last attempt failed; empty once delivered.
	Err string
	// Succeeded is set once an attempt got a 2xx answer.
	Succeeded bool
	// GaveUp is set when the last attempt failed (or the endpoint was
	// deleted): the event will not be sent to this endpoint again.
	GaveUp bool
}

// deliveries is the delivery state of a Stripe. It is guarded by s.mu.
type deliveries struct {
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

func newDeliveries() *deliveries {
	ctx, cancel := context.WithCancel(context.Background())
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &deliveries{
		ctx: ctx, cancel: cancel, stop: make(chan struct{}),
		endpoints: map[string]*endpoint{}, byEvent: map[string][]*task{},
		idle: make(chan struct{}), kick: make(chan struct{}),
		transport: tr,
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // Stripe does not follow redirects: a 3xx is a failure
		}},
	}
}

type endpoint struct {
	id, url, description, apiVersion, secret string
	enabled                                  []string
	metadata                                 map[string]string
	disabled                                 bool
	created                                  int64
	h                                        http.Handler // nil: POST to url
	opts                                     DeliveryOptions
	rng                                      chaosRand

	burst   int64         // Chaos.SameSecond: the created second until the next Flush
	queue   []*task       // due deliveries of the ordered worker
	held    []*task       // Chaos.Shuffle: waiting for Flush
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
	drop    bool // Chaos.DropThenRedeliver: the first attempt is not sent
	done    bool
	rec     Delivery
}

// withDefaults fills the zero fields of o.
func (o DeliveryOptions) withDefaults() DeliveryOptions {
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

func (o DeliveryOptions) validate() error {
	c := o.Chaos
	if c.Duplicate < 0 || c.Duplicate > 1 || c.DropThenRedeliver < 0 || c.DropThenRedeliver > 1 {
		return errors.New("billingtest: chaos probabilities must be between 0 and 1")
	}
	if c.Delay < 0 {
		return errors.New("billingtest: chaos delay must not be negative")
	}
	return nil
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

// wants reports whether the endpoint subscribes to an event type.
func (ep *endpoint) wants(typ string) bool {
	return slices.Contains(ep.enabled, "*") || slices.Contains(ep.enabled, typ)
}

// AddEndpoint adds an in-process webhook endpoint: every event emitted from
// now on whose type opts.EnabledEvents selects is handed to h.ServeHTTP as a
// signed POST, as Stripe would send it to a URL endpoint, and retried on a
// non-2xx answer (or a panic). The endpoint is listed by the webhook
// endpoints API like any other. It panics if opts are invalid.
func (s *Stripe) AddEndpoint(h http.Handler, opts EndpointOptions) Endpoint {
	if h == nil {
		panic("billingtest: AddEndpoint with a nil handler")
	}
	if opts.URL == "" {
		opts.URL = "https://in-process.invalid/stripe/webhook"
	}
	events := opts.EnabledEvents
	if len(events) == 0 {
		events = []string{"*"}
	}
	if msg := checkURL(opts.URL); msg != "" {
		panic("billingtest: AddEndpoint: " + msg)
	}
	if msg := checkEvents(events); msg != "" {
		panic("billingtest: AddEndpoint: " + msg)
	}
	if opts.APIVersion != "" && !versionRE.MatchString(opts.APIVersion) {
		panic(fmt.Sprintf("billingtest: AddEndpoint: invalid API version %q", opts.APIVersion))
	}
	if err := opts.Delivery.validate(); err != nil {
		panic(err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ep := s.newEndpoint(opts.URL, events, opts.APIVersion, opts.Description, nil, opts.Secret)
	ep.h = h
	ep.opts = opts.Delivery
	ep.rng = newChaosRand(opts.Delivery.Chaos.Seed)
	return Endpoint{ID: ep.id, Secret: ep.secret}
}

// newEndpoint registers an endpoint and starts its worker (unless closed).
func (s *Stripe) newEndpoint(u string, events []string, version, desc string, md map[string]string, secret string) *endpoint {
	d := s.dl
	if secret == "" {
		secret = newID("whsec_", 32)
	}
	ep := &endpoint{id: newID("we_", 24), url: u, enabled: slices.Clone(events), apiVersion: version,
		description: desc, metadata: md, secret: secret, created: s.unix(), rng: newChaosRand(0),
		wake: make(chan struct{}, 1), gone: make(chan struct{})}
	d.endpoints[ep.id] = ep
	d.epOrder = append(d.epOrder, ep.id)
	if !d.closed {
		d.wg.Add(1)
		go s.worker(ep)
	}
	return ep
}

// SetDeliveryOptions changes how events reach an endpoint (one added with
// [Stripe.AddEndpoint] or created through the API). Turning Chaos.Shuffle
// off releases the held events in order. The chaos generator is reseeded
// from o.Chaos.Seed.
func (s *Stripe) SetDeliveryOptions(endpointID string, o DeliveryOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ep := s.dl.endpoints[endpointID]
	if ep == nil {
		return fmt.Errorf("billingtest: no such webhook endpoint %q", endpointID)
	}
	ep.opts = o
	ep.rng = newChaosRand(o.Chaos.Seed)
	if !o.Chaos.Shuffle && len(ep.held) > 0 {
		ep.queue = append(ep.queue, ep.held...)
		ep.held = nil
		nudge(ep.wake)
	}
	return nil
}

// publish hands a new event to delivery. It is called with s.mu held and
// must not block.
func (s *Stripe) publish(ev Event) {
	d := s.dl
	if d == nil || d.closed {
		return
	}
	for _, id := range d.epOrder {
		ep := d.endpoints[id]
		if ep.disabled || !ep.wants(ev.Type) {
			continue
		}
		payload := slices.Clone(ev.JSON)
		if ep.apiVersion != "" && ep.apiVersion != APIVersion {
			payload = stampVersion(payload, ep.apiVersion)
		}
		c := ep.opts.Chaos
		if c.SameSecond {
			if ep.burst == 0 {
				ep.burst = ev.Created
			}
			payload = stampField(payload, "created", ep.burst)
		}
		s.enqueue(ep, ev, payload, false)
		if c.Duplicate > 0 && ep.rng.pick.Float64() < c.Duplicate {
			s.enqueue(ep, ev, payload, true)
		}
	}
}

// stampVersion sets an event's api_version.
func stampVersion(payload []byte, version string) []byte {
	return stampField(payload, "api_version", version)
}

// stampField sets a top-level field of an event.
func stampField(payload []byte, field string, v any) []byte {
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

func (s *Stripe) enqueue(ep *endpoint, ev Event, payload []byte, dup bool) {
	d := s.dl
	o := ep.opts.withDefaults()
	d.seq++
	t := &task{ep: ep, seq: d.seq, payload: payload, due: time.Now(),
		rec: Delivery{EndpointID: ep.id, EventID: ev.ID, EventType: ev.Type, Duplicate: dup}}
	if dup {
		t.due = t.due.Add(o.RetryBase)
	}
	if p := o.Chaos.DropThenRedeliver; p > 0 && o.MaxAttempts > 1 && ep.rng.pick.Float64() < p {
		t.drop = true
	}
	d.tasks = append(d.tasks, t)
	d.byEvent[ev.ID] = append(d.byEvent[ev.ID], t)
	if d.pending == 0 {
		d.idle = make(chan struct{})
	}
	d.pending++
	if o.Chaos.Shuffle {
		ep.held = append(ep.held, t)
		close(d.kick)
		d.kick = make(chan struct{})
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

// finish ends a delivery. Called with s.mu held.
func (s *Stripe) finish(t *task) {
	if t.done {
		return
	}
	d := s.dl
	t.done, t.payload = true, nil
	if d.pending--; d.pending == 0 {
		close(d.idle)
	}
}

// worker delivers an endpoint's queue one delivery at a time: the earliest
// due first, first attempts in the order the events were emitted. A failed
// delivery goes back to the queue, due after its backoff, so it does not
// hold later events back (Stripe's retries do not either).
func (s *Stripe) worker(ep *endpoint) {
	d := s.dl
	defer d.wg.Done()
	for {
		s.mu.Lock()
		if d.closed || ep.deleted {
			s.mu.Unlock()
			return
		}
		var timer <-chan time.Time
		if i := nextDue(ep.queue); i >= 0 {
			t := ep.queue[i]
			if wait := time.Until(t.due); wait > 0 {
				timer = time.After(wait)
			} else {
				ep.queue = slices.Delete(ep.queue, i, i+1)
				s.mu.Unlock()
				if at, done := s.attempt(t); !done {
					s.mu.Lock()
					if !t.done {
						t.due = at
						ep.queue = append(ep.queue, t)
					}
					s.mu.Unlock()
				}
				continue
			}
		}
		s.mu.Unlock()
		select {
		case <-ep.wake:
		case <-timer:
		case <-ep.gone:
			return
		case <-d.stop:
			return
		}
	}
}

// nextDue returns the index of the task due first (ties: emitted first), or
// -1.
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
func (s *Stripe) runAlone(t *task) {
	defer s.dl.wg.Done()
	for {
		at, done := s.attempt(t)
		if done || !s.sleep(t.ep, time.Until(at)) {
			return
		}
	}
}

// sleep waits d of real time; false if the fake closed or the endpoint was
// deleted meanwhile.
func (s *Stripe) sleep(ep *endpoint, d time.Duration) bool {
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
	case <-s.dl.stop:
		return false
	}
}

// attempt makes one delivery attempt. It returns done once the delivery has
// succeeded or been given up (or was ended elsewhere), else when to retry.
func (s *Stripe) attempt(t *task) (retryAt time.Time, done bool) {
	s.mu.Lock()
	if t.done || s.dl.closed {
		s.mu.Unlock()
		return time.Time{}, true
	}
	ep := t.ep
	o := ep.opts.withDefaults()
	var delay time.Duration
	if o.Chaos.Delay > 0 {
		delay = time.Duration(ep.rng.delay.Int64N(int64(o.Chaos.Delay) + 1))
	}
	drop := t.drop && t.rec.Attempts == 0
	h, u, secret, payload := ep.h, ep.url, ep.secret, t.payload
	s.mu.Unlock()

	if !s.sleep(ep, delay) {
		return time.Time{}, true
	}
	status, errText := 0, "timed out (dropped by billingtest chaos)"
	if !drop {
		status, errText = s.send(h, u, secret, payload, o.Timeout)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if t.done {
		return time.Time{}, true
	}
	t.rec.Attempts++
	t.rec.Status, t.rec.Err = status, errText
	switch {
	case status >= 200 && status < 300:
		t.rec.Succeeded, t.rec.Err = true, ""
	case t.rec.Attempts >= o.MaxAttempts || s.dl.closed:
		t.rec.GaveUp = true
	default:
		return time.Now().Add(backoff(o.RetryBase, t.rec.Attempts)), false
	}
	s.finish(t)
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
func (s *Stripe) send(h http.Handler, u, secret string, payload []byte, timeout time.Duration) (status int, reason string) {
	ctx, cancel := context.WithTimeout(s.dl.ctx, timeout)
	defer cancel()
	var err error
	if h != nil {
		status, err = serveInProcess(ctx, h, u, secret, payload)
	} else {
		var req *http.Request
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(payload))
		if err == nil {
			setWebhookHeaders(req, secret, payload)
			var resp *http.Response
			if resp, err = s.dl.client.Do(req); err == nil {
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
	setWebhookHeaders(req, secret, payload)
	rec := httptest.NewRecorder()
	defer func() {
		if p := recover(); p != nil {
			status, err = 0, fmt.Errorf("handler panicked: %v", p)
		}
	}()
	h.ServeHTTP(rec, req)
	return rec.Code, nil
}

func setWebhookHeaders(req *http.Request, secret string, payload []byte) {
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", webhookUserAgent)
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("Stripe-Signature", Sign(secret, payload))
}

// Flush waits until every event published so far (and any published
// meanwhile) has been delivered with a 2xx answer or given up, to every
// endpoint, retries, duplicates and delays included. It first releases the
// events that Chaos.Shuffle holds. It returns ctx's error (with the count of
// deliveries still pending) if ctx ends first, and [ErrClosed] after
// [Stripe.Close].
func (s *Stripe) Flush(ctx context.Context) error {
	d := s.dl
	for {
		s.mu.Lock()
		if d.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		s.releaseHeld()
		for _, ep := range d.endpoints {
			ep.burst = 0
		}
		n, idle, kick := d.pending, d.idle, d.kick
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-idle:
		case <-kick:
		case <-d.stop:
		case <-ctx.Done():
			return fmt.Errorf("billingtest: Flush: %d deliveries still pending: %w", n, ctx.Err())
		}
	}
}

// releaseHeld delivers the events Chaos.Shuffle holds, each endpoint's
// batch in a random order and concurrently. Called with s.mu held.
func (s *Stripe) releaseHeld() {
	d := s.dl
	for _, id := range d.epOrder {
		ep := d.endpoints[id]
		if len(ep.held) == 0 {
			continue
		}
		batch := ep.held
		ep.held = nil
		ep.rng.shuffle.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
		for _, t := range batch {
			d.wg.Add(1)
			go s.runAlone(t)
		}
	}
}

// stopDelivery ends every delivery goroutine: pending deliveries are
// abandoned, in-flight requests cancelled. Close calls it.
func (s *Stripe) stopDelivery() {
	s.mu.Lock()
	d := s.dl
	if d.closed {
		s.mu.Unlock()
		return
	}
	d.closed = true
	close(d.stop)
	d.cancel()
	s.mu.Unlock()
	d.wg.Wait()
	d.transport.CloseIdleConnections()
}

// Deliveries returns every delivery so far, in the order they were
// scheduled: one per event and endpoint, plus the copies of
// Chaos.Duplicate.
func (s *Stripe) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, len(s.dl.tasks))
	for i, t := range s.dl.tasks {
		out[i] = t.rec
	}
	return out
}

// Failed returns the deliveries that were given up, in the order they were
// scheduled. Stripe lists their events with delivery_success=false.
func (s *Stripe) Failed() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Delivery
	for _, t := range s.dl.tasks {
		if t.rec.GaveUp {
			out = append(out, t.rec)
		}
	}
	return out
}

// deliveryFailed reports whether an event is one that GET
// /v1/events?delivery_success=false lists: Stripe's "still pending or
// failed all delivery attempts to a webhook endpoint", that is, some
// endpoint it was sent to has not answered it with a 2xx (yet). A duplicate
// copy's success counts for its endpoint. Called with s.mu held.
func (s *Stripe) deliveryFailed(eventID string) bool {
	ok := map[*endpoint]bool{}
	for _, t := range s.dl.byEvent[eventID] {
		ok[t.ep] = ok[t.ep] || t.rec.Succeeded
	}
	for _, v := range ok {
		if !v {
			return true
		}
	}
	return false
}

// The webhook endpoints API.

var (
	versionRE   = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$`)
	eventTypeRE = regexp.MustCompile(`^[a-z_]+(\.[a-z_]+)+$`)
)

// deliveryRoutes sets up webhook delivery and registers the webhook
// endpoint API. New calls it once, through routes.
func (s *Stripe) deliveryRoutes() {
	s.dl = newDeliveries()
	s.handle("POST /v1/webhook_endpoints", s.createEndpoint)
	s.handle("GET /v1/webhook_endpoints", s.listEndpoints)
	s.handle("GET /v1/webhook_endpoints/{id}", s.getEndpoint)
	s.handle("POST /v1/webhook_endpoints/{id}", s.updateEndpoint)
	s.handle("DELETE /v1/webhook_endpoints/{id}", s.deleteEndpoint)
}

// checkURL returns Stripe's message for an invalid endpoint URL, or "".
func checkURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Sprintf("Invalid URL: %s. URLs must begin with http:// or https:// and name a host.", u)
	}
	return ""
}

// checkEvents returns Stripe's message for an invalid enabled_events list,
// or "".
func checkEvents(events []string) string {
	for i, e := range events {
		if e != "*" && !eventTypeRE.MatchString(e) {
			return fmt.Sprintf("Invalid enabled_events[%d]: %q is not an event type or \"*\".", i, e)
		}
	}
	return ""
}

func (s *Stripe) endpointObj(ep *endpoint, withSecret bool) map[string]any {
	o := map[string]any{
		"id": ep.id, "object": "webhook_endpoint", "api_version": null(ep.apiVersion), "application": nil,
		"created": ep.created, "description": null(ep.description), "enabled_events": slices.Clone(ep.enabled),
		"livemode": false, "metadata": meta(ep.metadata), "status": "enabled", "url": ep.url,
	}
	if ep.disabled {
		o["status"] = "disabled"
	}
	if withSecret {
		o["secret"] = ep.secret
	}
	return o
}

// endpointParams are the parameters of creating an endpoint; an update
// takes the same but api_version, plus disabled.
var endpointParams = []string{"url", "enabled_events", "enabled_events[#]", "description",
	"metadata", "metadata[*]"}

func (s *Stripe) createEndpoint(r *http.Request) (int, any) {
	f := r.Form
	if err := checkParams(f, append(endpointParams, "api_version")...); err != nil {
		return 0, err
	}
	if _, err := expandParam(f); err != nil {
		return 0, err
	}
	u := f.Get("url")
	if u == "" {
		return 0, missing("url")
	}
	if msg := checkURL(u); msg != "" {
		return 0, invalid("url", msg)
	}
	events := enabledEvents(f)
	if len(events) == 0 {
		return 0, missing("enabled_events")
	}
	if msg := checkEvents(events); msg != "" {
		return 0, invalid("enabled_events", msg)
	}
	version := f.Get("api_version")
	if version != "" && !versionRE.MatchString(version) {
		return 0, invalid("api_version", "Invalid api_version: "+version)
	}
	md, _, err := metadataParam(f, "metadata")
	if err != nil {
		return 0, err
	}
	ep := s.newEndpoint(u, events, version, f.Get("description"), applyMetadata(nil, md, false), "")
	return 200, s.endpointObj(ep, true)
}

// enabledEvents reads enabled_events[i]=… (or enabled_events[]=…,
// enabled_events=…), without empty values.
func enabledEvents(f url.Values) []string {
	vals := append(arrayParam(f, "enabled_events"), f["enabled_events"]...)
	return slices.DeleteFunc(vals, func(v string) bool { return v == "" })
}

func (s *Stripe) endpointParam(r *http.Request) (*endpoint, *apiError) {
	id := r.PathValue("id")
	ep := s.dl.endpoints[id]
	if ep == nil {
		return nil, noSuch(404, "webhook endpoint", id, "id")
	}
	return ep, nil
}

func (s *Stripe) getEndpoint(r *http.Request) (int, any) {
	if err := checkParams(r.Form); err != nil {
		return 0, err
	}
	if _, err := expandParam(r.Form); err != nil {
		return 0, err
	}
	ep, err := s.endpointParam(r)
	if err != nil {
		return 0, err
	}
	return 200, s.endpointObj(ep, false)
}

func (s *Stripe) listEndpoints(r *http.Request) (int, any) {
	f := r.Form
	if err := checkParams(f, "limit", "starting_after", "ending_before"); err != nil {
		return 0, err
	}
	if _, err := listExpand(f); err != nil {
		return 0, err
	}
	d := s.dl
	all := newestFirst(d.epOrder, func(id string) int64 { return d.endpoints[id].created },
		func(id string) any { return s.endpointObj(d.endpoints[id], false) })
	l, err := listPage(f, "/v1/webhook_endpoints", "webhook endpoint", all, nil)
	if err != nil {
		return 0, err
	}
	return 200, l
}

func (s *Stripe) updateEndpoint(r *http.Request) (int, any) {
	f := r.Form
	if err := checkParams(f, append(endpointParams, "disabled")...); err != nil {
		return 0, err
	}
	if _, err := expandParam(f); err != nil {
		return 0, err
	}
	ep, apiErr := s.endpointParam(r)
	if apiErr != nil {
		return 0, apiErr
	}
	u := ep.url
	if f.Has("url") {
		u = f.Get("url")
		if msg := checkURL(u); msg != "" {
			return 0, invalid("url", msg)
		}
	}
	events := ep.enabled
	if f.Has("enabled_events") || len(arrayParam(f, "enabled_events")) > 0 {
		if events = enabledEvents(f); len(events) == 0 {
			return 0, invalid("enabled_events", "enabled_events must not be empty.")
		}
		if msg := checkEvents(events); msg != "" {
			return 0, invalid("enabled_events", msg)
		}
	}
	disabled, hasDisabled, apiErr := boolParam(f, "disabled")
	if apiErr != nil {
		return 0, apiErr
	}
	md, clear, apiErr := metadataParam(f, "metadata")
	if apiErr != nil {
		return 0, apiErr
	}
	ep.url, ep.enabled = u, events
	if hasDisabled {
		ep.disabled = disabled
	}
	if f.Has("description") {
		ep.description = f.Get("description")
	}
	ep.metadata = applyMetadata(ep.metadata, md, clear)
	return 200, s.endpointObj(ep, false)
}

// deleteEndpoint removes an endpoint; its pending deliveries are given up.
func (s *Stripe) deleteEndpoint(r *http.Request) (int, any) {
	if err := checkParams(r.Form); err != nil {
		return 0, err
	}
	ep, err := s.endpointParam(r)
	if err != nil {
		return 0, err
	}
	d := s.dl
	delete(d.endpoints, ep.id)
	d.epOrder = slices.DeleteFunc(d.epOrder, func(id string) bool { return id == ep.id })
	ep.deleted = true
	close(ep.gone)
	for _, t := range d.tasks {
		if t.ep == ep && !t.done {
			t.rec.GaveUp, t.rec.Err = true, "endpoint deleted"
			s.finish(t)
		}
	}
	ep.queue, ep.held = nil, nil
	return 200, map[string]any{"id": ep.id, "object": "webhook_endpoint", "deleted": true}
}
