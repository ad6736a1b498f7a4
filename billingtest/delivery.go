package billingtest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"time"

	"github.com/gobilling/billing/billingtest/internal/httpapi"

	"github.com/gobilling/billing/billingtest/internal/delivery"
)

// Webhook delivery: endpoints (registered through the API or in-process
// with [Stripe.AddEndpoint]) receive every event the simulator emits after
// they were created, signed with their secret at the real time, and retried
// with exponential backoff until a 2xx or the last attempt. The engine is
// package internal/delivery, with a lock of its own (taken after the
// fake's, never held while sending), so a receiving handler may call the
// fake's API.

// Defaults of [DeliveryOptions].
const (
	DefaultRetryBase   = delivery.DefaultRetryBase
	DefaultMaxAttempts = delivery.DefaultMaxAttempts
	DefaultTimeout     = delivery.DefaultTimeout
)

// ErrClosed is returned by [Stripe.Flush] once the fake has been closed.
var ErrClosed = delivery.ErrClosed

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

// engineOptions flattens DeliveryOptions for the engine.
func (o DeliveryOptions) engineOptions() delivery.Options {
	c := o.Chaos
	return delivery.Options{RetryBase: o.RetryBase, MaxAttempts: o.MaxAttempts, Timeout: o.Timeout,
		Shuffle: c.Shuffle, Duplicate: c.Duplicate, DropThenRedeliver: c.DropThenRedeliver, Delay: c.Delay,
		SameSecond: c.SameSecond, Seed: c.Seed}
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
	o := opts.Delivery.engineOptions()
	if err := o.Validate(); err != nil {
		panic(err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := s.newEndpoint(opts.URL, events, opts.APIVersion, opts.Description, nil, opts.Secret)
	s.dl.Add(cfg, h, o)
	return Endpoint{ID: cfg.ID, Secret: cfg.Secret}
}

// newEndpoint makes a new endpoint's configuration. Called with s.mu held.
func (s *Stripe) newEndpoint(u string, events []string, version, desc string, md map[string]string, secret string) delivery.Endpoint {
	if secret == "" {
		secret = httpapi.NewID("whsec_", 32)
	}
	return delivery.Endpoint{ID: httpapi.NewID("we_", 24), URL: u, Enabled: slices.Clone(events), APIVersion: version,
		Description: desc, Metadata: md, Secret: secret, Created: s.unix()}
}

// SetDeliveryOptions changes how events reach an endpoint (one added with
// [Stripe.AddEndpoint] or created through the API). Turning Chaos.Shuffle
// off releases the held events in order. The chaos generator is reseeded
// from o.Chaos.Seed.
func (s *Stripe) SetDeliveryOptions(endpointID string, o DeliveryOptions) error {
	eo := o.engineOptions()
	if err := eo.Validate(); err != nil {
		return err
	}
	if !s.dl.SetOptions(endpointID, eo) {
		return fmt.Errorf("billingtest: no such webhook endpoint %q", endpointID)
	}
	return nil
}

// publish hands a new event to delivery. It is called with s.mu held and
// does not block.
func (s *Stripe) publish(ev Event) {
	s.dl.Publish(delivery.Event{ID: ev.ID, Type: ev.Type, Created: ev.Created, JSON: ev.JSON})
}

// Flush waits until every event published so far (and any published
// meanwhile) has been delivered with a 2xx answer or given up, to every
// endpoint, retries, duplicates and delays included. It first releases the
// events that Chaos.Shuffle holds. It returns ctx's error (with the count of
// deliveries still pending) if ctx ends first, and [ErrClosed] after
// [Stripe.Close].
func (s *Stripe) Flush(ctx context.Context) error { return s.dl.Flush(ctx) }

// Deliveries returns every delivery so far, in the order they were
// scheduled: one per event and endpoint, plus the copies of
// Chaos.Duplicate.
func (s *Stripe) Deliveries() []Delivery {
	recs := s.dl.Records()
	out := make([]Delivery, len(recs))
	for i, r := range recs {
		out[i] = Delivery(r)
	}
	return out
}

// Failed returns the deliveries that were given up, in the order they were
// scheduled. Stripe lists their events with delivery_success=false.
func (s *Stripe) Failed() []Delivery {
	var out []Delivery
	for _, d := range s.Deliveries() {
		if d.GaveUp {
			out = append(out, d)
		}
	}
	return out
}

// The webhook endpoints API.

var (
	versionRE   = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$`)
	eventTypeRE = regexp.MustCompile(`^[a-z_]+(\.[a-z_]+)+$`)
)

// deliveryRoutes sets up webhook delivery and registers the webhook
// endpoint API. New calls it once, through routes.
func (s *Stripe) deliveryRoutes() {
	s.dl = delivery.New(APIVersion)
	s.api.Handle("POST /v1/webhook_endpoints", s.createEndpoint)
	s.api.Handle("GET /v1/webhook_endpoints", s.listEndpoints)
	s.api.Handle("GET /v1/webhook_endpoints/{id}", s.getEndpoint)
	s.api.Handle("POST /v1/webhook_endpoints/{id}", s.updateEndpoint)
	s.api.Handle("DELETE /v1/webhook_endpoints/{id}", s.deleteEndpoint)
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

func (s *Stripe) endpointObj(ep delivery.Endpoint, withSecret bool) map[string]any {
	o := map[string]any{
		"id": ep.ID, "object": "webhook_endpoint", "api_version": null(ep.APIVersion), "application": nil,
		"created": ep.Created, "description": null(ep.Description), "enabled_events": slices.Clone(ep.Enabled),
		"livemode": false, "metadata": meta(ep.Metadata), "status": "enabled", "url": ep.URL,
	}
	if ep.Disabled {
		o["status"] = "disabled"
	}
	if withSecret {
		o["secret"] = ep.Secret
	}
	return o
}

// endpointParams are the parameters of creating an endpoint; an update
// takes the same but api_version, plus disabled.
var endpointParams = []string{"url", "enabled_events", "enabled_events[#]", "description",
	"metadata", "metadata[*]"}

func (s *Stripe) createEndpoint(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, append(endpointParams, "api_version")...); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(f); err != nil {
		return 0, err
	}
	u := f.Get("url")
	if u == "" {
		return 0, httpapi.Missing("url")
	}
	if msg := checkURL(u); msg != "" {
		return 0, httpapi.Invalid("url", msg)
	}
	events := enabledEvents(f)
	if len(events) == 0 {
		return 0, httpapi.Missing("enabled_events")
	}
	if msg := checkEvents(events); msg != "" {
		return 0, httpapi.Invalid("enabled_events", msg)
	}
	version := f.Get("api_version")
	if version != "" && !versionRE.MatchString(version) {
		return 0, httpapi.Invalid("api_version", "Invalid api_version: "+version)
	}
	md, _, err := httpapi.MetadataParam(f, "metadata")
	if err != nil {
		return 0, err
	}
	ep := s.newEndpoint(u, events, version, f.Get("description"), httpapi.ApplyMetadata(nil, md, false), "")
	s.dl.Add(ep, nil, delivery.Options{})
	return 200, s.endpointObj(ep, true)
}

// enabledEvents reads enabled_events[i]=… (or enabled_events[]=…,
// enabled_events=…), without empty values.
func enabledEvents(f url.Values) []string {
	vals := append(httpapi.ArrayParam(f, "enabled_events"), f["enabled_events"]...)
	return slices.DeleteFunc(vals, func(v string) bool { return v == "" })
}

func (s *Stripe) endpointParam(r *http.Request) (delivery.Endpoint, *httpapi.Error) {
	id := r.PathValue("id")
	ep, ok := s.dl.Endpoint(id)
	if !ok {
		return ep, httpapi.NoSuch(404, "webhook endpoint", id, "id")
	}
	return ep, nil
}

func (s *Stripe) getEndpoint(r *http.Request) (int, any) {
	if err := httpapi.CheckParams(r.Form); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(r.Form); err != nil {
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
	if err := httpapi.CheckParams(f, "limit", "starting_after", "ending_before"); err != nil {
		return 0, err
	}
	if _, err := httpapi.ListExpand(f); err != nil {
		return 0, err
	}
	eps := map[string]delivery.Endpoint{}
	var order []string
	for _, ep := range s.dl.Endpoints() {
		eps[ep.ID] = ep
		order = append(order, ep.ID)
	}
	all := httpapi.NewestFirst(order, func(id string) int64 { return eps[id].Created },
		func(id string) any { return s.endpointObj(eps[id], false) })
	l, err := httpapi.ListPage(f, "/v1/webhook_endpoints", "webhook endpoint", all, nil)
	if err != nil {
		return 0, err
	}
	return 200, l
}

func (s *Stripe) updateEndpoint(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, append(endpointParams, "disabled")...); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(f); err != nil {
		return 0, err
	}
	ep, apiErr := s.endpointParam(r)
	if apiErr != nil {
		return 0, apiErr
	}
	u := ep.URL
	if f.Has("url") {
		u = f.Get("url")
		if msg := checkURL(u); msg != "" {
			return 0, httpapi.Invalid("url", msg)
		}
	}
	events := ep.Enabled
	if f.Has("enabled_events") || len(httpapi.ArrayParam(f, "enabled_events")) > 0 {
		if events = enabledEvents(f); len(events) == 0 {
			return 0, httpapi.Invalid("enabled_events", "enabled_events must not be empty.")
		}
		if msg := checkEvents(events); msg != "" {
			return 0, httpapi.Invalid("enabled_events", msg)
		}
	}
	disabled, hasDisabled, apiErr := httpapi.BoolParam(f, "disabled")
	if apiErr != nil {
		return 0, apiErr
	}
	md, clear, apiErr := httpapi.MetadataParam(f, "metadata")
	if apiErr != nil {
		return 0, apiErr
	}
	ep, _ = s.dl.Update(ep.ID, func(c *delivery.Endpoint) {
		c.URL, c.Enabled = u, events
		if hasDisabled {
			c.Disabled = disabled
		}
		if f.Has("description") {
			c.Description = f.Get("description")
		}
		c.Metadata = httpapi.ApplyMetadata(c.Metadata, md, clear)
	})
	return 200, s.endpointObj(ep, false)
}

// deleteEndpoint removes an endpoint; its pending deliveries are given up.
func (s *Stripe) deleteEndpoint(r *http.Request) (int, any) {
	if err := httpapi.CheckParams(r.Form); err != nil {
		return 0, err
	}
	ep, err := s.endpointParam(r)
	if err != nil {
		return 0, err
	}
	s.dl.Delete(ep.ID)
	return 200, map[string]any{"id": ep.ID, "object": "webhook_endpoint", "deleted": true}
}
